/*
 * The SQLite read side: read-only connections on the warehouse file (WAL
 * mode lets the loader write meanwhile), prepared statements cached by SQL
 * text per connection, searches compiled from hl_api_search to SQL with
 * every value bound as a parameter (never spliced into the text).
 *
 * Queries run on a small pool of reader threads, each with its own
 * connection, so that the loop thread only parses, answers and writes:
 * operations are queued (mutex + condition variable), a reader runs one and
 * puts the result on a done list, and a uv_async wakes the loop thread,
 * which calls the callbacks. Reads by id, and every operation when there
 * are no readers, run on the loop thread before the call returns.
 */
#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hl/buf.h"
#include "hl/error.h"
#include "hl/log.h"
#include "sqlgen.h"
#include "store.h"

#define CACHE_MAX 64
#define JOB_MAX_ISSUES 100

typedef struct cached {
  char *sql;
  sqlite3_stmt *st;
  uint64_t used;
} cached;

/* One connection and its statements; used by one thread at a time. */
typedef struct sq_conn {
  const char *path;
  sqlite3 *db;
  cached cache[CACHE_MAX];
  uint64_t tick;
  sqlite3_stmt *read_st[32]; /* per type index: the read of one resource */
} sq_conn;

/* ---- SQL functions: the [lo, hi) range of a FHIR date in ms --------------------------- */

static void fn_range(sqlite3_context *ctx, int argc, sqlite3_value **argv, bool hi) {
  (void)argc;
  const unsigned char *t = sqlite3_value_text(argv[0]);
  int64_t l, h;
  if (!t || hl_api_date_range((const char *)t, (size_t)sqlite3_value_bytes(argv[0]), &l, &h) < 0) {
    sqlite3_result_null(ctx);
    return;
  }
  sqlite3_result_int64(ctx, hi ? h : l);
}
static void fn_lo(sqlite3_context *c, int n, sqlite3_value **v) { fn_range(c, n, v, false); }
static void fn_hi(sqlite3_context *c, int n, sqlite3_value **v) { fn_range(c, n, v, true); }

/* ---- Connection and statement cache --------------------------------------------------- */

static int ensure_open(sq_conn *s) {
  if (s->db)
    return 0;
  sqlite3 *db = NULL;
  int rc = sqlite3_open_v2(s->path, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL);
  if (rc != SQLITE_OK) {
    sqlite3_close(db);
    return HL_EIO;
  }
  sqlite3_busy_timeout(db, 2000);
  sqlite3_create_function(db, "hl_lo", 1, SQLITE_UTF8 | SQLITE_DETERMINISTIC, NULL, fn_lo, NULL, NULL);
  sqlite3_create_function(db, "hl_hi", 1, SQLITE_UTF8 | SQLITE_DETERMINISTIC, NULL, fn_hi, NULL, NULL);
  sqlite3_stmt *st = NULL;
  rc = sqlite3_prepare_v2(db, "SELECT 1 FROM curated_patient LIMIT 1", -1, &st, NULL);
  sqlite3_finalize(st);
  if (rc != SQLITE_OK) {
    sqlite3_close(db);
    return HL_EIO;
  }
  s->db = db;
  return 0;
}

static void close_db(sq_conn *s) {
  for (int i = 0; i < 32; i++) {
    sqlite3_finalize(s->read_st[i]);
    s->read_st[i] = NULL;
  }
  for (int i = 0; i < CACHE_MAX; i++) {
    sqlite3_finalize(s->cache[i].st);
    free(s->cache[i].sql);
    s->cache[i] = (cached){0};
  }
  sqlite3_close(s->db);
  s->db = NULL;
}

static sqlite3_stmt *prepare(sq_conn *s, const char *sql, int *rc) {
  int victim = 0;
  for (int i = 0; i < CACHE_MAX; i++) {
    if (s->cache[i].sql && !strcmp(s->cache[i].sql, sql)) {
      s->cache[i].used = ++s->tick;
      sqlite3_reset(s->cache[i].st);
      sqlite3_clear_bindings(s->cache[i].st);
      return s->cache[i].st;
    }
    if (s->cache[i].used < s->cache[victim].used)
      victim = i;
  }
  sqlite3_stmt *st = NULL;
  if (sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL) != SQLITE_OK) {
    hl_log_kv(HL_LOG_DEBUG, "prepare failed", "error", sqlite3_errmsg(s->db), NULL);
    *rc = HL_EFATAL;
    return NULL;
  }
  char *copy = strdup(sql);
  if (!copy) {
    sqlite3_finalize(st);
    *rc = -ENOMEM;
    return NULL;
  }
  sqlite3_finalize(s->cache[victim].st);
  free(s->cache[victim].sql);
  s->cache[victim] = (cached){copy, st, ++s->tick};
  return st;
}

/* Binds a statement's values in order (texts stay owned by b until the step is done). */
static int bind_all(sqlite3_stmt *st, const hl_sqlb *b) {
  for (int i = 0; i < b->n; i++) {
    int rc;
    const hl_sqlv *v = &b->v[i];
    if (v->kind == HL_SQLV_INT)
      rc = sqlite3_bind_int64(st, i + 1, v->i);
    else if (v->kind == HL_SQLV_REAL)
      rc = sqlite3_bind_double(st, i + 1, v->d);
    else
      rc = sqlite3_bind_text(st, i + 1, v->text, -1, SQLITE_STATIC);
    if (rc != SQLITE_OK)
      return HL_EFATAL;
  }
  return 0;
}

/* Binds ?1 and ?2 (tenant and id, tenant and job). */
static int bind_pair(sqlite3_stmt *st, const char *a, const char *b) {
  if (sqlite3_bind_text(st, 1, a, -1, SQLITE_STATIC) != SQLITE_OK ||
      sqlite3_bind_text(st, 2, b, -1, SQLITE_STATIC) != SQLITE_OK)
    return HL_EFATAL;
  return 0;
}

static int step_error(sq_conn *s, int rc) {
  if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED)
    return HL_EIO;
  hl_log_kv(HL_LOG_WARN, "warehouse read failed", "error", sqlite3_errmsg(s->db), NULL);
  if (rc == SQLITE_CORRUPT || rc == SQLITE_NOTADB || rc == SQLITE_IOERR || rc == SQLITE_CANTOPEN) {
    close_db(s);
    return HL_EIO;
  }
  return HL_EFATAL;
}

/*
 * Columns: id, version_id, last_updated, resource, sort key, patient. The
 * strings of a row share one allocation (the block starts at r->id), so a
 * page costs one malloc per row.
 */
static int take_row(sqlite3_stmt *st, hl_api_row *r, bool key_is_int) {
  const char *v[6];
  size_t n[6];
  for (int c = 0; c < 6; c++) {
    bool skip = (c == 4 && key_is_int) || sqlite3_column_type(st, c) == SQLITE_NULL;
    v[c] = skip ? NULL : (const char *)sqlite3_column_text(st, c);
    n[c] = v[c] ? (size_t)sqlite3_column_bytes(st, c) : 0;
  }
  return hl_api_row_set(r, v, n, key_is_int, key_is_int ? sqlite3_column_int64(st, 4) : 0);
}

/* ---- Read ------------------------------------------------------------------------------- */

static int read_one(sq_conn *s, const char *tenant, const hl_api_type_def *t, const char *id,
                    hl_api_row *row) {
  int rc = 0, ti = hl_api_type_index(t->type);
  if (ti < 0 || ti >= 32)
    return -EINVAL;
  sqlite3_stmt *st = s->read_st[ti];
  if (!st) {
    char sql[256];
    snprintf(sql, sizeof sql,
             "SELECT id, version_id, last_updated, resource, id, %s FROM %s WHERE tenant = ?1 AND id = ?2",
             t->patient_col ? t->patient_col : "NULL", t->table);
    if (sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL) != SQLITE_OK) {
      sqlite3_finalize(st);
      return HL_EFATAL;
    }
    s->read_st[ti] = st;
  }
  if (bind_pair(st, tenant, id) < 0) {
    sqlite3_reset(st);
    return HL_EFATAL;
  }
  int sr = sqlite3_step(st);
  if (sr == SQLITE_DONE)
    rc = HL_ENOTFOUND;
  else if (sr == SQLITE_ROW)
    rc = take_row(st, row, false);
  else
    rc = step_error(s, sr);
  if (s->db)
    sqlite3_reset(st);
  if (rc < 0 && rc != HL_ENOTFOUND)
    hl_api_row_clear(row);
  return rc;
}

static int conn_read(sq_conn *s, const char *tenant, const hl_api_type_def *t, const char *id,
                     hl_api_result *res) {
  int rc = ensure_open(s);
  hl_api_row row = {0};
  if (rc == 0)
    rc = read_one(s, tenant, t, id, &row);
  if (rc == 0) {
    res->rows = malloc(sizeof *res->rows);
    if (!res->rows) {
      hl_api_row_clear(&row);
      return -ENOMEM;
    }
    res->rows[0] = row;
    res->nrows = 1;
    res->total = 1;
  }
  return rc;
}

/* ---- Search ----------------------------------------------------------------------------- */

static int run_count(sq_conn *s, const char *tenant, const hl_api_search *q, int64_t *total) {
  hl_sqlb b;
  hl_sqlb_init_sqlite(&b);
  hl_sql_search_count(&b, tenant, q);
  int rc = b.err;
  if (rc == 0) {
    sqlite3_stmt *st = prepare(s, b.sql.data, &rc);
    if (st && (rc = bind_all(st, &b)) == 0) {
      int sr = sqlite3_step(st);
      if (sr == SQLITE_ROW)
        *total = sqlite3_column_int64(st, 0);
      else
        rc = step_error(s, sr);
      if (s->db)
        sqlite3_reset(st);
    }
  }
  hl_sqlb_free(&b);
  return rc;
}

static int run_page(sq_conn *s, const char *tenant, const hl_api_search *q, hl_api_result *res) {
  hl_sqlb b;
  hl_sqlb_init_sqlite(&b);
  bool is_int;
  hl_sql_search_page(&b, tenant, q, &is_int);
  int rc = b.err;
  if (rc == 0) {
    sqlite3_stmt *st = prepare(s, b.sql.data, &rc);
    if (st && (rc = bind_all(st, &b)) == 0 && (rc = hl_api_page_begin(res, q)) == 0) {
      int sr = SQLITE_ROW;
      while (rc == 0 && (sr = sqlite3_step(st)) == SQLITE_ROW && !hl_api_page_full(res, q)) {
        rc = take_row(st, &res->rows[res->nrows], is_int);
        res->nrows++;
      }
      if (rc == 0 && sr != SQLITE_ROW && sr != SQLITE_DONE)
        rc = step_error(s, sr);
      if (s->db)
        sqlite3_reset(st);
    }
  }
  if (rc == 0)
    hl_api_page_end(res, q);
  hl_sqlb_free(&b);
  return rc;
}

static int run_include(sq_conn *s, const char *tenant, const hl_api_search *q, hl_api_result *res) {
  const hl_api_type_def *pt = hl_api_type_find("Patient");
  res->included = calloc(res->nrows ? res->nrows : 1, sizeof *res->included);
  if (!res->included)
    return -ENOMEM;
  for (size_t i = 0; i < res->nrows; i++) {
    const char *pid = res->rows[i].patient;
    if (!pid || (q->compartment_patient && strcmp(pid, q->compartment_patient)))
      continue;
    bool dup = false;
    for (size_t k = 0; k < res->nincluded && !dup; k++)
      dup = !strcmp(res->included[k].id, pid);
    if (dup)
      continue;
    int rc = read_one(s, tenant, pt, pid, &res->included[res->nincluded]);
    if (rc == HL_ENOTFOUND)
      continue;
    if (rc < 0)
      return rc;
    res->nincluded++;
  }
  return 0;
}

/* Runs one of the cached transaction statements ("BEGIN", "COMMIT"). */
static void exec_cached(sq_conn *s, const char *sql) {
  int rc = 0;
  sqlite3_stmt *st = prepare(s, sql, &rc);
  if (st) {
    sqlite3_step(st);
    sqlite3_reset(st);
  }
}

static int conn_search(sq_conn *s, const char *tenant, const hl_api_search *q, hl_api_result *res) {
  int rc = ensure_open(s);
  if (rc == 0)
    exec_cached(s, "BEGIN"); /* one snapshot for page, count and includes */
  if (rc == 0 && !q->summary_count)
    rc = run_page(s, tenant, q, res);
  /* A first page that holds every match is its own total; otherwise count. */
  if (rc == 0 && !q->summary_count && !q->cursor.dir && !res->more_after)
    res->total = (int64_t)res->nrows;
  else if (rc == 0)
    rc = run_count(s, tenant, q, &res->total);
  if (rc == 0 && q->include_patient && !q->summary_count)
    rc = run_include(s, tenant, q, res);
  if (s->db)
    exec_cached(s, "COMMIT");
  return rc;
}

/* ---- Jobs ------------------------------------------------------------------------------- */

static int conn_job(sq_conn *s, const char *tenant, const char *job, json_t **jout) {
  json_t *out = NULL;
  int rc = ensure_open(s);
  if (rc < 0)
    goto out;
  sqlite3_stmt *st = prepare(
      s,
      "SELECT uri, state, received, valid, rejected, loaded, parse_rejected, validate_rejected, "
      "load_rejected, error_code, error_detail, created_at, updated_at FROM jobs "
      "WHERE tenant = ?1 AND job = ?2 ORDER BY uri",
      &rc);
  if (!st || (rc = bind_pair(st, tenant, job)) < 0)
    goto out;
  out = json_pack("{s:s, s:[]}", "id", job, "objects");
  if (!out) {
    rc = -ENOMEM;
    goto out;
  }
  hl_api_job_doc jd;
  hl_api_job_doc_begin(&jd, out);
  int sr;
  while ((sr = sqlite3_step(st)) == SQLITE_ROW) {
    long long counts[HL_API_JOB_NCOUNTS];
    for (int i = 0; i < HL_API_JOB_NCOUNTS; i++)
      counts[i] = sqlite3_column_int64(st, 2 + i);
    hl_api_job_doc_object(&jd, (const char *)sqlite3_column_text(st, 0), (const char *)sqlite3_column_text(st, 1),
                          counts, (const char *)sqlite3_column_text(st, 9),
                          (const char *)sqlite3_column_text(st, 10), (const char *)sqlite3_column_text(st, 12));
  }
  if (sr != SQLITE_DONE)
    rc = step_error(s, sr);
  else if (s->db)
    sqlite3_reset(st);
  if (rc < 0)
    goto out;
  if ((rc = hl_api_job_doc_end(&jd)) < 0)
    goto out;
  /* Records the loader rejected, as OperationOutcomes (parse and validate rejects are counted). */
  st = prepare(s,
               "SELECT type, id, source, line, code, detail FROM load_reject WHERE tenant = ?1 AND job = ?2 "
               "ORDER BY source, line LIMIT " "100",
               &rc);
  if (!st || (rc = bind_pair(st, tenant, job)) < 0)
    goto out;
  json_t *issues = json_array();
  while ((sr = sqlite3_step(st)) == SQLITE_ROW) {
    json_t *oo = hl_api_job_rejection(
        (const char *)sqlite3_column_text(st, 0), (const char *)sqlite3_column_text(st, 1),
        (const char *)sqlite3_column_text(st, 2), (long long)sqlite3_column_int64(st, 3),
        (const char *)sqlite3_column_text(st, 4), (const char *)sqlite3_column_text(st, 5));
    if (oo)
      json_array_append_new(issues, oo);
  }
  if (s->db)
    sqlite3_reset(st);
  json_object_set_new(out, "rejections", issues);
out:
  if (rc < 0) {
    json_decref(out);
    out = NULL;
  }
  *jout = out;
  return rc;
}

/* ---- The store: reader threads, or the loop thread --------------------------------------- */

enum { OP_READ, OP_SEARCH, OP_JOB };

typedef struct op {
  struct op *next;
  int kind;
  char tenant[128];
  char id[160]; /* resource id or job id */
  const hl_api_type_def *type;
  const hl_api_search *search; /* borrowed: the caller keeps it until done */
  hl_api_result_fn done_result;
  hl_api_job_fn done_job;
  void *ud;
  int rc;
  hl_api_result res;
  json_t *job;
} op;

typedef struct sq_store {
  hl_api_store base;
  char *path;
  sq_conn probe; /* the loop thread's: readiness, and every query when there are no readers */
  uv_async_t *async; /* freed by its close callback */
  pthread_t *threads;
  sq_conn *conns;
  size_t nthreads;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  op *qhead, *qtail;     /* waiting for a reader */
  op *dhead, *dtail;     /* done, waiting for the loop thread */
  op *recycled;          /* answered; freed by a reader, in the malloc arena that built them */
  bool stop;
} sq_store;

static void op_run(sq_conn *c, op *o) {
  if (o->kind == OP_READ)
    o->rc = conn_read(c, o->tenant, o->type, o->id, &o->res);
  else if (o->kind == OP_SEARCH)
    o->rc = conn_search(c, o->tenant, o->search, &o->res);
  else
    o->rc = conn_job(c, o->tenant, o->id, &o->job);
}

/* Calls the operation's callback (loop thread). */
static void op_answer(op *o) {
  if (o->kind == OP_JOB)
    o->done_job(o->ud, o->rc, o->rc == 0 ? o->job : NULL);
  else
    o->done_result(o->ud, o->rc, o->rc == 0 ? &o->res : NULL);
}

static void op_free(op *o) {
  hl_api_result_clear(&o->res);
  json_decref(o->job);
  free(o);
}

static void op_free_list(op *o) {
  while (o) {
    op *next = o->next;
    op_free(o);
    o = next;
  }
}

static void op_finish(op *o) {
  op_answer(o);
  op_free(o);
}

static void push(op **head, op **tail, op *o) {
  o->next = NULL;
  if (*tail)
    (*tail)->next = o;
  else
    *head = o;
  *tail = o;
}

typedef struct reader_arg {
  sq_store *st;
  sq_conn *conn;
} reader_arg;

static void *reader_main(void *arg) {
  sq_store *st = ((reader_arg *)arg)->st;
  sq_conn *conn = ((reader_arg *)arg)->conn;
  free(arg);
  pthread_mutex_lock(&st->mu);
  for (;;) {
    while (!st->qhead && !st->stop)
      pthread_cond_wait(&st->cv, &st->mu);
    if (!st->qhead)
      break;
    op *o = st->qhead;
    st->qhead = o->next;
    if (!st->qhead)
      st->qtail = NULL;
    op *old = st->recycled;
    st->recycled = NULL;
    pthread_mutex_unlock(&st->mu);
    op_free_list(old);
    op_run(conn, o);
    pthread_mutex_lock(&st->mu);
    push(&st->dhead, &st->dtail, o);
    uv_async_send(st->async);
  }
  pthread_mutex_unlock(&st->mu);
  return NULL;
}

static void on_done(uv_async_t *a) {
  sq_store *st = a->data;
  pthread_mutex_lock(&st->mu);
  op *o = st->dhead;
  st->dhead = st->dtail = NULL;
  pthread_mutex_unlock(&st->mu);
  op *answered = o;
  while (o) {
    op_answer(o);
    if (!o->next)
      break;
    o = o->next;
  }
  /* Back to the readers for freeing: a free in another thread's arena takes that arena's lock. */
  if (answered) {
    pthread_mutex_lock(&st->mu);
    o->next = st->recycled;
    st->recycled = answered;
    pthread_mutex_unlock(&st->mu);
  }
}

/*
 * Runs o on a reader, or here when there is none. A read by id (one
 * primary-key lookup) always runs here: it costs less than the hand-off to
 * a reader and back (about 21 against 27 us of CPU per request, bench/api).
 */
static void submit(sq_store *st, op *o) {
  if (st->nthreads == 0 || o->kind == OP_READ) {
    op_run(&st->probe, o);
    op_finish(o);
    return;
  }
  pthread_mutex_lock(&st->mu);
  push(&st->qhead, &st->qtail, o);
  pthread_cond_signal(&st->cv);
  pthread_mutex_unlock(&st->mu);
}

/* Queues an operation; what is the type (read) or the search. A failed allocation is answered -ENOMEM at once. */
static void submit_new(hl_api_store *base, int kind, const char *tenant, const char *id, const void *what,
                       hl_api_result_fn done_result, hl_api_job_fn done_job, void *ud) {
  op *o = calloc(1, sizeof *o);
  if (!o) {
    if (done_job)
      done_job(ud, -ENOMEM, NULL);
    else
      done_result(ud, -ENOMEM, NULL);
    return;
  }
  o->kind = kind;
  snprintf(o->tenant, sizeof o->tenant, "%s", tenant);
  snprintf(o->id, sizeof o->id, "%s", id ? id : "");
  if (kind == OP_READ)
    o->type = what;
  else if (kind == OP_SEARCH)
    o->search = what;
  o->done_result = done_result;
  o->done_job = done_job;
  o->ud = ud;
  submit((sq_store *)base, o);
}

static void sq_read(hl_api_store *base, const char *tenant, const hl_api_type_def *t, const char *id,
                    hl_api_result_fn done, void *ud) {
  submit_new(base, OP_READ, tenant, id, t, done, NULL, ud);
}

static void sq_search(hl_api_store *base, const char *tenant, const hl_api_search *q, hl_api_result_fn done,
                      void *ud) {
  submit_new(base, OP_SEARCH, tenant, NULL, q, done, NULL, ud);
}

static void sq_job(hl_api_store *base, const char *tenant, const char *job, hl_api_job_fn done, void *ud) {
  submit_new(base, OP_JOB, tenant, job, NULL, NULL, done, ud);
}

static bool sq_ready(hl_api_store *base, char *reason, size_t len) {
  sq_store *st = (sq_store *)base;
  if (ensure_open(&st->probe) < 0) {
    snprintf(reason, len, "warehouse %s not readable", st->path);
    return false;
  }
  return true;
}

static void on_async_closed(uv_handle_t *h) { free(h); }

static void sq_free(hl_api_store *base) {
  sq_store *st = (sq_store *)base;
  if (st->threads) {
    pthread_mutex_lock(&st->mu);
    st->stop = true;
    pthread_cond_broadcast(&st->cv);
    pthread_mutex_unlock(&st->mu);
    for (size_t i = 0; i < st->nthreads; i++)
      pthread_join(st->threads[i], NULL);
    /* What the readers finished is answered; what they never started too, with HL_EIO. */
    on_done(st->async);
    op_free_list(st->recycled);
    st->recycled = NULL;
    for (op *o = st->qhead, *next; o; o = next) {
      next = o->next;
      o->rc = HL_EIO;
      op_finish(o);
    }
    for (size_t i = 0; i < st->nthreads; i++)
      close_db(&st->conns[i]);
  }
  if (st->async)
    uv_close((uv_handle_t *)st->async, on_async_closed);
  if (st->threads) {
    pthread_cond_destroy(&st->cv);
    pthread_mutex_destroy(&st->mu);
  }
  free(st->threads);
  free(st->conns);
  close_db(&st->probe);
  free(st->path);
  free(st);
}

static const hl_api_store_ops sq_ops = {"sqlite", sq_read, sq_search, sq_job, sq_ready, sq_free};

int hl_api_store_sqlite_new(const char *path, uv_loop_t *loop, size_t readers, hl_api_store **out) {
  if (!path || !*path || (readers && !loop) || readers > 64)
    return -EINVAL;
  sq_store *st = calloc(1, sizeof *st);
  if (!st)
    return -ENOMEM;
  st->base.ops = &sq_ops;
  st->path = strdup(path);
  if (!st->path) {
    free(st);
    return -ENOMEM;
  }
  st->probe.path = st->path;
  int rc = 0;
  if (readers) {
    st->async = calloc(1, sizeof *st->async);
    st->conns = calloc(readers, sizeof *st->conns);
    st->threads = calloc(readers, sizeof *st->threads);
    if (!st->async || !st->conns || !st->threads) {
      free(st->async);
      st->async = NULL;
      free(st->threads);
      st->threads = NULL;
      rc = -ENOMEM;
      goto fail;
    }
    if ((rc = uv_async_init(loop, st->async, on_done)) < 0) {
      free(st->async);
      st->async = NULL;
      free(st->threads);
      st->threads = NULL;
      goto fail;
    }
    st->async->data = st;
    uv_unref((uv_handle_t *)st->async); /* in-flight requests keep the loop alive, not the store */
    pthread_mutex_init(&st->mu, NULL);
    pthread_cond_init(&st->cv, NULL);
    for (size_t i = 0; i < readers; i++) {
      st->conns[i].path = st->path;
      reader_arg *ra = malloc(sizeof *ra);
      if (!ra) {
        rc = -ENOMEM;
        goto fail;
      }
      *ra = (reader_arg){st, &st->conns[i]};
      int e = pthread_create(&st->threads[i], NULL, reader_main, ra);
      if (e) {
        free(ra);
        rc = -e;
        goto fail;
      }
      st->nthreads++;
    }
  }
  ensure_open(&st->probe);
  *out = &st->base;
  return 0;
fail:
  sq_free(&st->base);
  return rc;
}
