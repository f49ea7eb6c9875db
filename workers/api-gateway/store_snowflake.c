/*
 * The Snowflake read side: the same answers as store_sqlite.c, by SQL over
 * the curated tables that dbt builds (schema HL_API_SNOWFLAKE_SCHEMA, the
 * table and column names of schemas/warehouse/curated_contract.json) and
 * the job tables (HL_API_SNOWFLAKE_JOBS_SCHEMA), through hl_snowflake_async
 * on the gateway's loop. Every value, the tenant first, is a bound
 * parameter; only identifiers from the static type table are spliced.
 *
 * Dates compare as [lo, hi) ranges in ms, as on SQLite, through two SQL
 * UDFs HL_LO(text) and HL_HI(text) in the curated schema (docs/snowflake.md
 * gives their definition; the stand-in provides them).
 *
 * A response cache sits in front: the result of a statement is kept under
 * SHA-256(tenant, SQL, bindings) for HL_API_CACHE_TTL, bounded by entries
 * and bytes, least recently used first out. The tenant is part of the key
 * and is compared again on a hit, so one tenant never reads another's
 * entry.
 */
#include <errno.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hl/buf.h"
#include "hl/error.h"
#include "hl/log.h"
#include "hl/snowflake.h"
#include "sqlgen.h"
#include "store.h"


/* ---- Response cache ------------------------------------------------------------- */

/* Monotonic ms, read at each use (uv_now is only updated once per loop iteration). */
static uint64_t now_ms(void) { return uv_hrtime() / 1000000; }

typedef struct centry {
  unsigned char key[32];
  char *tenant;
  hl_snowflake_result *res;
  size_t bytes;
  uint64_t expires; /* now_ms() */
  struct centry *prev, *next; /* LRU list: head = most recent */
} centry;

typedef struct cache {
  centry *head, *tail;
  size_t n, bytes, max_n, max_bytes;
  uint64_t ttl_ms;
  hl_series *hits, *misses, *evictions, *g_bytes, *g_entries;
} cache;

static void c_unlink(cache *c, centry *e) {
  if (e->prev)
    e->prev->next = e->next;
  else
    c->head = e->next;
  if (e->next)
    e->next->prev = e->prev;
  else
    c->tail = e->prev;
  e->prev = e->next = NULL;
}

static void c_push(cache *c, centry *e) {
  e->next = c->head;
  e->prev = NULL;
  if (c->head)
    c->head->prev = e;
  c->head = e;
  if (!c->tail)
    c->tail = e;
}

static void c_drop(cache *c, centry *e) {
  c_unlink(c, e);
  c->n--;
  c->bytes -= e->bytes;
  hl_snowflake_result_free(e->res);
  free(e->tenant);
  free(e);
}

static void c_gauges(cache *c) {
  hl_series_set(c->g_bytes, (double)c->bytes);
  hl_series_set(c->g_entries, (double)c->n);
}

/* The cached result of key for tenant, or NULL (an expired entry is dropped). */
static const hl_snowflake_result *c_get(cache *c, const unsigned char key[32], const char *tenant, uint64_t now) {
  for (centry *e = c->head; e; e = e->next) {
    if (memcmp(e->key, key, 32) || strcmp(e->tenant, tenant))
      continue;
    if (e->expires <= now) {
      c_drop(c, e);
      c_gauges(c);
      return NULL;
    }
    c_unlink(c, e);
    c_push(c, e);
    return e->res;
  }
  return NULL;
}

static size_t result_bytes(const hl_snowflake_result *r) {
  size_t n = 256, rows = hl_snowflake_result_rows(r), cols = hl_snowflake_result_cols(r);
  for (size_t i = 0; i < rows; i++)
    for (size_t k = 0; k < cols; k++) {
      const char *v = hl_snowflake_result_str(r, i, k);
      n += 16 + (v ? strlen(v) : 0);
    }
  return n;
}

/* Keeps res (takes ownership) under key; returns the result to use (res, or NULL when not kept). */
static bool c_put(cache *c, const unsigned char key[32], const char *tenant, hl_snowflake_result *res,
                  uint64_t now) {
  if (!c->max_n || !c->ttl_ms)
    return false;
  size_t bytes = result_bytes(res);
  if (bytes > c->max_bytes)
    return false;
  centry *e = calloc(1, sizeof *e);
  if (!e || !(e->tenant = strdup(tenant))) {
    free(e);
    return false;
  }
  memcpy(e->key, key, 32);
  e->res = res;
  e->bytes = bytes;
  e->expires = now + c->ttl_ms;
  while (c->tail && (c->n + 1 > c->max_n || c->bytes + bytes > c->max_bytes)) {
    c_drop(c, c->tail);
    hl_series_inc(c->evictions);
  }
  c_push(c, e);
  c->n++;
  c->bytes += bytes;
  c_gauges(c);
  return true;
}

/* ---- The store ------------------------------------------------------------------ */

typedef struct sf_store {
  hl_api_store base;
  uv_loop_t *loop;
  hl_snowflake *sf;
  hl_snowflake_async *a;
  char schema[128], jobs_schema[128];
  cache cache;
  bool ready, probing;
  char reason[256];
} sf_store;

/* SHA-256 over tenant, SQL and every binding (kind and value, NULL distinct from ""). */
static void stmt_key(const char *tenant, const hl_sqlb *b, unsigned char out[32]) {
  EVP_MD_CTX *md = EVP_MD_CTX_new();
  unsigned int n = 0;
  EVP_DigestInit_ex(md, EVP_sha256(), NULL);
  EVP_DigestUpdate(md, tenant, strlen(tenant) + 1);
  EVP_DigestUpdate(md, b->sql.data, b->sql.len + 1);
  for (int i = 0; i < b->n; i++) {
    unsigned char t = (unsigned char)b->v[i].kind, nul = b->v[i].text ? 1 : 0;
    EVP_DigestUpdate(md, &t, 1);
    EVP_DigestUpdate(md, &nul, 1);
    if (b->v[i].text)
      EVP_DigestUpdate(md, b->v[i].text, strlen(b->v[i].text) + 1);
  }
  EVP_DigestFinal_ex(md, out, &n);
  EVP_MD_CTX_free(md);
}

/* ---- Statements through the cache ------------------------------------------------- */

typedef void (*stmt_fn)(void *ud, int rc, const hl_snowflake_result *res);

typedef struct stmt_call {
  sf_store *s;
  unsigned char key[32];
  char *tenant;
  stmt_fn cb;
  void *ud;
} stmt_call;

static int map_rc(int rc, const hl_snowflake_error *err) {
  if (rc == -ENOMEM)
    return rc;
  if (rc == -ECANCELED || hl_snowflake_error_retriable(rc, err))
    return HL_EIO;
  return HL_EFATAL;
}

static void stmt_done(void *ud, int rc, hl_snowflake_result *res, const hl_snowflake_error *err) {
  stmt_call *sc = ud;
  sf_store *s = sc->s;
  if (rc < 0) {
    char line[700];
    hl_log_kv(HL_LOG_WARN, "snowflake read failed", "error", hl_snowflake_error_str(err, line, sizeof line), NULL);
    if (rc != -ECANCELED && hl_snowflake_error_retriable(rc, err)) {
      s->ready = false;
      snprintf(s->reason, sizeof s->reason, "snowflake unavailable: %.200s", line);
    }
    sc->cb(sc->ud, map_rc(rc, err), NULL);
  } else {
    s->ready = true;
    bool kept = c_put(&s->cache, sc->key, sc->tenant, res, now_ms());
    sc->cb(sc->ud, 0, res);
    if (!kept)
      hl_snowflake_result_free(res);
  }
  free(sc->tenant);
  free(sc);
}

/*
 * Runs b (its bindings are copied by the client) for tenant: from the cache
 * when a fresh entry exists (cb runs before the call returns), else on the
 * loop. cb runs exactly once; res is valid during cb only.
 */
static void run_stmt(sf_store *s, const char *tenant, hl_sqlb *b, stmt_fn cb, void *ud) {
  if (b->err) {
    cb(ud, b->err == HL_ELIMIT ? HL_EFATAL : b->err, NULL);
    return;
  }
  unsigned char key[32];
  stmt_key(tenant, b, key);
  const hl_snowflake_result *hit = c_get(&s->cache, key, tenant, now_ms());
  if (hit) {
    hl_series_inc(s->cache.hits);
    cb(ud, 0, hit);
    return;
  }
  hl_series_inc(s->cache.misses);
  stmt_call *sc = calloc(1, sizeof *sc);
  if (!sc || !(sc->tenant = strdup(tenant))) {
    free(sc);
    cb(ud, -ENOMEM, NULL);
    return;
  }
  sc->s = s;
  memcpy(sc->key, key, 32);
  sc->cb = cb;
  sc->ud = ud;
  static const hl_snowflake_type types[] = {[HL_SQLV_TEXT] = HL_SF_TEXT, [HL_SQLV_INT] = HL_SF_FIXED,
                                            [HL_SQLV_REAL] = HL_SF_REAL};
  hl_snowflake_bind binds[HL_SQL_MAX_BINDS];
  for (int i = 0; i < b->n; i++)
    binds[i] = (hl_snowflake_bind){.type = types[b->v[i].kind], .value = b->v[i].text};
  hl_snowflake_stmt st = {.sql = b->sql.data, .binds = binds, .nbinds = (size_t)b->n};
  int rc = hl_snowflake_async_exec(s->a, &st, stmt_done, sc);
  if (rc < 0) {
    free(sc->tenant);
    free(sc);
    cb(ud, rc == HL_ECLOSED ? HL_EIO : rc, NULL);
  }
}

/* ---- Rows ----------------------------------------------------------------------- */

/* Columns: id, version_id, last_updated, resource, sort key, patient; one
 * allocation per row, as every store (hl_api_row_set). */
static int take_row(const hl_snowflake_result *res, size_t i, hl_api_row *r, bool key_is_int) {
  const char *v[6];
  size_t n[6];
  for (size_t c = 0; c < 6; c++) {
    v[c] = hl_snowflake_result_str(res, i, c);
    if (!v[c] && c < 4)
      v[c] = ""; /* a NULL id, version, lastUpdated or resource reads as "" */
    n[c] = v[c] ? strlen(v[c]) : 0;
  }
  const char *k = v[4];
  if (key_is_int)
    v[4] = NULL;
  else if (!k)
    v[4] = "";
  n[4] = v[4] ? strlen(v[4]) : 0;
  return hl_api_row_set(r, v, n, key_is_int, key_is_int && k ? strtoll(k, NULL, 10) : 0);
}

/* ---- Read ----------------------------------------------------------------------- */

typedef struct op {
  sf_store *s;
  hl_api_result_fn done;
  hl_api_job_fn jdone;
  void *ud;
  char *tenant;
  const hl_api_search *q;
  hl_api_result res;
  bool key_is_int;
  json_t *job;
} op;

/* A new operation; on -ENOMEM, done (or jdone) is answered at once and NULL returned. */
static op *op_new(sf_store *s, const char *tenant, hl_api_result_fn done, hl_api_job_fn jdone, void *ud) {
  op *o = calloc(1, sizeof *o);
  if (o && !(o->tenant = strdup(tenant))) {
    free(o);
    o = NULL;
  }
  if (!o) {
    if (done)
      done(ud, -ENOMEM, NULL);
    else
      jdone(ud, -ENOMEM, NULL);
    return NULL;
  }
  o->s = s;
  o->done = done;
  o->jdone = jdone;
  o->ud = ud;
  return o;
}

static void op_finish(op *o, int rc) {
  if (o->done)
    o->done(o->ud, rc, rc == 0 ? &o->res : NULL);
  hl_api_result_clear(&o->res);
  free(o->tenant);
  free(o);
}

static void read_done(void *ud, int rc, const hl_snowflake_result *res) {
  op *o = ud;
  if (rc == 0 && hl_snowflake_result_rows(res) == 0)
    rc = HL_ENOTFOUND;
  if (rc == 0 && !(o->res.rows = calloc(1, sizeof *o->res.rows)))
    rc = -ENOMEM;
  if (rc == 0 && (rc = take_row(res, 0, &o->res.rows[0], false)) == 0) {
    o->res.nrows = 1;
    o->res.total = 1;
  }
  op_finish(o, rc);
}

static void sf_read(hl_api_store *base, const char *tenant, const hl_api_type_def *t, const char *id,
                    hl_api_result_fn done, void *ud) {
  sf_store *s = (sf_store *)base;
  op *o = op_new(s, tenant, done, NULL, ud);
  if (!o)
    return;
  hl_sqlb b;
  hl_sqlb_init(&b, s->schema, true);
  hl_sql_select_cols(&b, t, "t.id");
  hl_sqlb_put(&b, " FROM "), hl_sqlb_table(&b, t->table), hl_sqlb_put(&b, " t WHERE t.tenant = ");
  hl_sqlb_text(&b, tenant);
  hl_sqlb_put(&b, " AND t.id = "), hl_sqlb_text(&b, id);
  run_stmt(s, tenant, &b, read_done, o);
  hl_sqlb_free(&b);
}

/* ---- Search --------------------------------------------------------------------- */

static void search_include(op *o);
static void search_page(op *o);

static void include_done(void *ud, int rc, const hl_snowflake_result *res) {
  op *o = ud;
  size_t n = res ? hl_snowflake_result_rows(res) : 0;
  if (rc == 0 && !(o->res.included = calloc(n ? n : 1, sizeof *o->res.included)))
    rc = -ENOMEM;
  /* In the order the rows name them, as store_sqlite.c. */
  for (size_t i = 0; i < o->res.nrows && rc == 0; i++) {
    const char *pid = o->res.rows[i].patient;
    bool dup = !pid || (o->q->compartment_patient && strcmp(pid, o->q->compartment_patient));
    for (size_t k = 0; k < o->res.nincluded && !dup; k++)
      dup = !strcmp(o->res.included[k].id, pid);
    for (size_t k = 0; k < n && !dup; k++) {
      const char *id = hl_snowflake_result_str(res, k, 0);
      if (id && !strcmp(id, pid)) {
        if ((rc = take_row(res, k, &o->res.included[o->res.nincluded], false)) == 0)
          o->res.nincluded++;
        break;
      }
    }
  }
  op_finish(o, rc);
}

static void search_include(op *o) {
  const hl_api_search *q = o->q;
  const hl_api_type_def *pt = hl_api_type_find("Patient");
  hl_sqlb b;
  hl_sqlb_init(&b, o->s->schema, true);
  hl_sql_select_cols(&b, pt, "t.id");
  hl_sqlb_put(&b, " FROM "), hl_sqlb_table(&b, pt->table), hl_sqlb_put(&b, " t WHERE t.tenant = ");
  hl_sqlb_text(&b, o->tenant);
  hl_sqlb_put(&b, " AND t.id IN (");
  size_t n = 0;
  for (size_t i = 0; i < o->res.nrows; i++) {
    const char *pid = o->res.rows[i].patient;
    if (!pid || (q->compartment_patient && strcmp(pid, q->compartment_patient)))
      continue;
    if (n++)
      hl_sqlb_put(&b, ", ");
    hl_sqlb_text(&b, pid);
  }
  hl_sqlb_put(&b, ")");
  if (n == 0) {
    hl_sqlb_free(&b);
    op_finish(o, 0);
    return;
  }
  run_stmt(o->s, o->tenant, &b, include_done, o);
  hl_sqlb_free(&b);
}

static void page_done(void *ud, int rc, const hl_snowflake_result *res) {
  op *o = ud;
  const hl_api_search *q = o->q;
  size_t n = res ? hl_snowflake_result_rows(res) : 0;
  if (rc == 0)
    rc = hl_api_page_begin(&o->res, q);
  for (size_t i = 0; i < n && rc == 0 && !hl_api_page_full(&o->res, q); i++)
    if ((rc = take_row(res, i, &o->res.rows[o->res.nrows], o->key_is_int)) == 0)
      o->res.nrows++;
  if (rc == 0)
    hl_api_page_end(&o->res, q);
  if (rc == 0 && q->include_patient)
    search_include(o);
  else
    op_finish(o, rc);
}

static void search_page(op *o) {
  hl_sqlb b;
  hl_sqlb_init(&b, o->s->schema, true);
  hl_sql_search_page(&b, o->tenant, o->q, &o->key_is_int);
  run_stmt(o->s, o->tenant, &b, page_done, o);
  hl_sqlb_free(&b);
}

static void count_done(void *ud, int rc, const hl_snowflake_result *res) {
  op *o = ud;
  if (rc == 0) {
    const char *v = hl_snowflake_result_str(res, 0, 0);
    o->res.total = v ? strtoll(v, NULL, 10) : 0;
  }
  if (rc == 0 && !o->q->summary_count)
    search_page(o);
  else
    op_finish(o, rc);
}

static void sf_search(hl_api_store *base, const char *tenant, const hl_api_search *q, hl_api_result_fn done,
                      void *ud) {
  sf_store *s = (sf_store *)base;
  op *o = op_new(s, tenant, done, NULL, ud);
  if (!o)
    return;
  o->q = q;
  hl_sqlb b;
  hl_sqlb_init(&b, s->schema, true);
  hl_sql_search_count(&b, tenant, q);
  run_stmt(s, tenant, &b, count_done, o);
  hl_sqlb_free(&b);
}

/* ---- Jobs ----------------------------------------------------------------------- */

static void job_finish(op *o, int rc) {
  if (rc < 0) {
    json_decref(o->job);
    o->job = NULL;
  }
  o->jdone(o->ud, rc, o->job);
  json_decref(o->job);
  free(o->tenant);
  free(o);
}

static void rejects_done(void *ud, int rc, const hl_snowflake_result *res) {
  op *o = ud;
  if (rc == 0) {
    json_t *issues = json_array();
    for (size_t i = 0; i < hl_snowflake_result_rows(res); i++) {
      const char *ln = hl_snowflake_result_str(res, i, 3);
      json_t *oo = hl_api_job_rejection(hl_snowflake_result_str(res, i, 0), hl_snowflake_result_str(res, i, 1),
                                        hl_snowflake_result_str(res, i, 2), ln ? strtoll(ln, NULL, 10) : 0,
                                        hl_snowflake_result_str(res, i, 4), hl_snowflake_result_str(res, i, 5));
      if (oo)
        json_array_append_new(issues, oo);
    }
    json_object_set_new(o->job, "rejections", issues);
  }
  job_finish(o, rc);
}

static void jobs_done(void *ud, int rc, const hl_snowflake_result *res) {
  op *o = ud;
  size_t n = res ? hl_snowflake_result_rows(res) : 0;
  if (rc == 0 && n == 0)
    rc = HL_ENOTFOUND;
  if (rc < 0) {
    job_finish(o, rc);
    return;
  }
  hl_api_job_doc jd;
  hl_api_job_doc_begin(&jd, o->job);
  for (size_t i = 0; i < n; i++) {
    long long counts[HL_API_JOB_NCOUNTS];
    for (int k = 0; k < HL_API_JOB_NCOUNTS; k++) {
      const char *v = hl_snowflake_result_str(res, i, 2 + (size_t)k);
      counts[k] = v ? strtoll(v, NULL, 10) : 0;
    }
    hl_api_job_doc_object(&jd, hl_snowflake_result_str(res, i, 0), hl_snowflake_result_str(res, i, 1), counts,
                          hl_snowflake_result_str(res, i, 9), hl_snowflake_result_str(res, i, 10),
                          hl_snowflake_result_str(res, i, 12));
  }
  if ((rc = hl_api_job_doc_end(&jd)) < 0) {
    job_finish(o, rc);
    return;
  }
  hl_sqlb b;
  hl_sqlb_init(&b, o->s->jobs_schema, true);
  hl_sqlb_put(&b, "SELECT type, id, source, line, code, detail FROM "), hl_sqlb_table(&b, "load_reject");
  hl_sqlb_put(&b, " WHERE tenant = "), hl_sqlb_text(&b, o->tenant), hl_sqlb_put(&b, " AND job = ");
  hl_sqlb_text(&b, json_string_value(json_object_get(o->job, "id")));
  hl_sqlb_put(&b, " ORDER BY source, line LIMIT 100");
  run_stmt(o->s, o->tenant, &b, rejects_done, o);
  hl_sqlb_free(&b);
}

static void sf_job(hl_api_store *base, const char *tenant, const char *job, hl_api_job_fn done, void *ud) {
  sf_store *s = (sf_store *)base;
  op *o = op_new(s, tenant, NULL, done, ud);
  if (!o)
    return;
  if (!(o->job = json_pack("{s:s, s:[]}", "id", job, "objects"))) {
    job_finish(o, -ENOMEM);
    return;
  }
  hl_sqlb b;
  hl_sqlb_init(&b, s->jobs_schema, true);
  hl_sqlb_put(&b, "SELECT uri, state, received, valid, rejected, loaded, parse_rejected, validate_rejected, "
                  "load_rejected, error_code, error_detail, created_at, updated_at FROM ");
  hl_sqlb_table(&b, "jobs");
  hl_sqlb_put(&b, " WHERE tenant = "), hl_sqlb_text(&b, tenant), hl_sqlb_put(&b, " AND job = "), hl_sqlb_text(&b, job);
  hl_sqlb_put(&b, " ORDER BY uri");
  run_stmt(s, tenant, &b, jobs_done, o);
  hl_sqlb_free(&b);
}

/* ---- Readiness, lifecycle ------------------------------------------------------- */

static void probe_done(void *ud, int rc, hl_snowflake_result *res, const hl_snowflake_error *err) {
  sf_store *s = ud;
  s->probing = false;
  if (rc == -ECANCELED)
    return;
  s->ready = rc == 0;
  if (rc < 0) {
    char line[600];
    snprintf(s->reason, sizeof s->reason, "snowflake not readable: %.200s",
             hl_snowflake_error_str(err, line, sizeof line));
  }
  hl_snowflake_result_free(res);
}

static void probe(sf_store *s) {
  if (s->probing)
    return;
  char sql[300];
  snprintf(sql, sizeof sql, "SELECT 1 FROM %s.curated_patient LIMIT 1", s->schema);
  hl_snowflake_stmt st = {.sql = sql};
  if (hl_snowflake_async_exec(s->a, &st, probe_done, s) == 0)
    s->probing = true;
}

static bool sf_ready(hl_api_store *base, char *reason, size_t len) {
  sf_store *s = (sf_store *)base;
  if (!s->ready) {
    probe(s);
    snprintf(reason, len, "%s", s->reason[0] ? s->reason : "snowflake not checked yet");
  }
  return s->ready;
}

static void closed(void *ud) {
  sf_store *s = ud;
  hl_snowflake_free(s->sf);
  free(s);
}

static void sf_free(hl_api_store *base) {
  sf_store *s = (sf_store *)base;
  while (s->cache.head)
    c_drop(&s->cache, s->cache.head);
  /* Pending statements complete with HL_EIO; the client goes once the loop closed its handles. */
  hl_snowflake_async_close(s->a, closed, s);
}

static const hl_api_store_ops sf_ops = {"snowflake", sf_read, sf_search, sf_job, sf_ready, sf_free};

static bool ident_ok(const char *t) {
  if (!*t || strlen(t) > 120)
    return false;
  for (; *t; t++)
    if (!(*t == '_' || *t == '.' || (*t >= 'A' && *t <= 'Z') || (*t >= 'a' && *t <= 'z') ||
          (*t >= '0' && *t <= '9')))
      return false;
  return true;
}

int hl_api_store_snowflake_new(const hl_config *cfg, uv_loop_t *loop, hl_metrics *reg, hl_api_store **out,
                               char *err, size_t errlen) {
  hl_snowflake_config sc;
  int rc = hl_snowflake_config_from(cfg, &sc, err, errlen);
  if (rc < 0)
    return rc;
  const char *schema = hl_config_str(cfg, "HL_API_SNOWFLAKE_SCHEMA");
  const char *jobs = hl_config_str(cfg, "HL_API_SNOWFLAKE_JOBS_SCHEMA");
  if (!ident_ok(schema) || !ident_ok(jobs)) {
    snprintf(err, errlen, "HL_API_SNOWFLAKE_SCHEMA and HL_API_SNOWFLAKE_JOBS_SCHEMA must be identifiers");
    return HL_ECONFIG;
  }
  /* Unqualified names (the date UDFs) resolve in the curated schema. */
  sc.schema = schema;
  sf_store *s = calloc(1, sizeof *s);
  if (!s)
    return -ENOMEM;
  s->base.ops = &sf_ops;
  s->loop = loop;
  snprintf(s->schema, sizeof s->schema, "%s", schema);
  snprintf(s->jobs_schema, sizeof s->jobs_schema, "%s", jobs);
  cache *c = &s->cache;
  c->max_n = (size_t)hl_config_int(cfg, "HL_API_CACHE_ENTRIES");
  c->max_bytes = (size_t)hl_config_int(cfg, "HL_API_CACHE_BYTES");
  c->ttl_ms = (uint64_t)hl_config_int(cfg, "HL_API_CACHE_TTL");
  c->hits = hl_metric_at(hl_metrics_counter(reg, "hl_api_cache_hits_total",
                                            "Warehouse statements answered from the response cache.", NULL));
  c->misses = hl_metric_at(hl_metrics_counter(reg, "hl_api_cache_misses_total",
                                              "Warehouse statements sent to Snowflake (not in the cache).", NULL));
  c->evictions = hl_metric_at(hl_metrics_counter(reg, "hl_api_cache_evictions_total",
                                                 "Cache entries dropped to stay within the entry and byte caps.",
                                                 NULL));
  c->g_bytes = hl_metric_at(hl_metrics_gauge(reg, "hl_api_cache_bytes", "Bytes held by the response cache.", NULL));
  c->g_entries =
      hl_metric_at(hl_metrics_gauge(reg, "hl_api_cache_entries", "Entries held by the response cache.", NULL));
  if ((rc = hl_snowflake_new(&sc, &s->sf, err, errlen)) < 0 || (rc = hl_snowflake_set_metrics(s->sf, reg)) < 0 ||
      (rc = hl_snowflake_async_new(s->sf, loop, &s->a)) < 0) {
    hl_snowflake_free(s->sf);
    free(s);
    return rc;
  }
  /* The first check blocks (before the gateway listens), so /readyz is right from the start. */
  char sql[300];
  snprintf(sql, sizeof sql, "SELECT 1 FROM %s.curated_patient LIMIT 1", s->schema);
  hl_snowflake_stmt st = {.sql = sql, .timeout_ms = 10000};
  hl_snowflake_error e;
  probe_done(s, hl_snowflake_exec(s->sf, &st, NULL, &e), NULL, &e);
  *out = &s->base;
  return 0;
}
