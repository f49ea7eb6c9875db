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
#include <limits.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hl/buf.h"
#include "hl/error.h"
#include "hl/log.h"
#include "store.h"

#define CACHE_MAX 64
#define MAX_BINDS 512
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

typedef struct bindv {
  int kind; /* 0 text, 1 int, 2 double */
  const char *s;
  int64_t i;
  double d;
} bindv;

typedef struct sqlb {
  hl_buf sql;
  bindv binds[MAX_BINDS];
  int nbinds;
  int err;
} sqlb;

static void put(sqlb *b, const char *s) {
  if (!b->err && hl_buf_puts(&b->sql, s) < 0)
    b->err = -ENOMEM;
}

/* Appends "?N" for a new bound value. */
static void bind_text(sqlb *b, const char *s) {
  if (b->nbinds >= MAX_BINDS) {
    b->err = HL_ELIMIT;
    return;
  }
  b->binds[b->nbinds] = (bindv){.kind = 0, .s = s};
  b->nbinds++;
  if (!b->err && hl_buf_printf(&b->sql, "?%d", b->nbinds + 1) < 0)
    b->err = -ENOMEM;
}
static void bind_int(sqlb *b, int64_t v) {
  if (b->nbinds >= MAX_BINDS) {
    b->err = HL_ELIMIT;
    return;
  }
  b->binds[b->nbinds] = (bindv){.kind = 1, .i = v};
  b->nbinds++;
  if (!b->err && hl_buf_printf(&b->sql, "?%d", b->nbinds + 1) < 0)
    b->err = -ENOMEM;
}
static void bind_double(sqlb *b, double v) {
  if (b->nbinds >= MAX_BINDS) {
    b->err = HL_ELIMIT;
    return;
  }
  b->binds[b->nbinds] = (bindv){.kind = 2, .d = v};
  b->nbinds++;
  if (!b->err && hl_buf_printf(&b->sql, "?%d", b->nbinds + 1) < 0)
    b->err = -ENOMEM;
}

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

static int bind_all(sqlite3_stmt *st, const char *tenant, const sqlb *b) {
  if (sqlite3_bind_text(st, 1, tenant, -1, SQLITE_STATIC) != SQLITE_OK)
    return HL_EFATAL;
  for (int i = 0; i < b->nbinds; i++) {
    int rc;
    const bindv *v = &b->binds[i];
    if (v->kind == 0)
      rc = sqlite3_bind_text(st, i + 2, v->s, -1, SQLITE_STATIC);
    else if (v->kind == 1)
      rc = sqlite3_bind_int64(st, i + 2, v->i);
    else
      rc = sqlite3_bind_double(st, i + 2, v->d);
    if (rc != SQLITE_OK)
      return HL_EFATAL;
  }
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
  if (sqlite3_bind_text(st, 1, tenant, -1, SQLITE_STATIC) != SQLITE_OK ||
      sqlite3_bind_text(st, 2, id, -1, SQLITE_STATIC) != SQLITE_OK) {
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

static void date_pred(sqlb *b, const char *lo, const char *hi, const hl_api_value *v) {
  /* FHIR date prefixes on a target range [lo, hi) and the value's range [v->lo, v->hi). */
#define LO() put(b, lo)
#define HI() put(b, hi)
  switch (v->prefix) {
  case HL_PFX_EQ:
  case HL_PFX_NE:
    put(b, v->prefix == HL_PFX_NE ? "NOT (" : "(");
    LO(), put(b, " >= "), bind_int(b, v->lo), put(b, " AND "), HI(), put(b, " <= "), bind_int(b, v->hi);
    put(b, ")");
    break;
  case HL_PFX_GT:
    HI(), put(b, " > "), bind_int(b, v->hi);
    break;
  case HL_PFX_LT:
    LO(), put(b, " < "), bind_int(b, v->lo);
    break;
  case HL_PFX_GE:
    put(b, "("), HI(), put(b, " > "), bind_int(b, v->hi), put(b, " OR ("), LO(), put(b, " >= "),
        bind_int(b, v->lo), put(b, " AND "), HI(), put(b, " <= "), bind_int(b, v->hi), put(b, "))");
    break;
  case HL_PFX_LE:
    put(b, "("), LO(), put(b, " < "), bind_int(b, v->lo), put(b, " OR ("), LO(), put(b, " >= "),
        bind_int(b, v->lo), put(b, " AND "), HI(), put(b, " <= "), bind_int(b, v->hi), put(b, "))");
    break;
  case HL_PFX_SA:
    LO(), put(b, " >= "), bind_int(b, v->hi);
    break;
  case HL_PFX_EB:
    HI(), put(b, " <= "), bind_int(b, v->lo);
    break;
  }
#undef LO
#undef HI
}

static void quantity_pred(sqlb *b, const char *col, const hl_api_value *v) {
  put(b, "(");
  switch (v->prefix) {
  case HL_PFX_EQ:
  case HL_PFX_NE:
    put(b, v->prefix == HL_PFX_NE ? "NOT (" : "(");
    put(b, col), put(b, " >= "), bind_double(b, v->num_lo), put(b, " AND "), put(b, col),
        put(b, " < "), bind_double(b, v->num_hi), put(b, ")");
    break;
  case HL_PFX_GT:
  case HL_PFX_SA:
    put(b, col), put(b, " > "), bind_double(b, v->num);
    break;
  case HL_PFX_LT:
  case HL_PFX_EB:
    put(b, col), put(b, " < "), bind_double(b, v->num);
    break;
  case HL_PFX_GE:
    put(b, col), put(b, " >= "), bind_double(b, v->num);
    break;
  case HL_PFX_LE:
    put(b, col), put(b, " <= "), bind_double(b, v->num);
    break;
  }
  if (v->unit)
    put(b, " AND t.value_unit = "), bind_text(b, v->unit);
  put(b, ")");
}

/* 4-byte UTF-8 maximum: an upper bound above every string that starts with a prefix. */
static const char utf8_max[] = "\xf4\x8f\xbf\xbf";

static void clause_sql(sqlb *b, const hl_api_type_def *t, const hl_api_clause *c, hl_buf *scratch) {
  const hl_api_param_def *d = c->def;
  char col[96];
  snprintf(col, sizeof col, "t.%s", d->col);
  if (c->modifier == HL_MOD_MISSING) {
    bool missing = c->values[0].missing;
    if (d->store == HL_SP_COLUMN) {
      put(b, col), put(b, missing ? " IS NULL" : " IS NOT NULL");
    } else {
      put(b, missing ? "t.id NOT IN" : "t.id IN");
      put(b, d->store == HL_SP_SIDE_TOKEN ? " (SELECT id FROM curated_token" : " (SELECT id FROM curated_string");
      put(b, " WHERE tenant = ?1 AND type = "), bind_text(b, t->type), put(b, " AND param = "),
          bind_text(b, d->col), put(b, ")");
    }
    return;
  }
  if (d->store == HL_SP_SIDE_TOKEN || d->store == HL_SP_SIDE_STRING) {
    bool tok = d->store == HL_SP_SIDE_TOKEN;
    put(b, c->modifier == HL_MOD_NOT ? "t.id NOT IN" : "t.id IN");
    put(b, tok ? " (SELECT id FROM curated_token" : " (SELECT id FROM curated_string");
    put(b, " WHERE tenant = ?1 AND type = "), bind_text(b, t->type), put(b, " AND param = "),
        bind_text(b, d->col), put(b, " AND (");
    for (size_t i = 0; i < c->nvalues; i++) {
      const hl_api_value *v = &c->values[i];
      if (i)
        put(b, " OR ");
      if (tok) {
        put(b, "(1");
        if (v->system)
          put(b, " AND system = "), bind_text(b, v->system);
        if (v->text)
          put(b, " AND code = "), bind_text(b, v->text);
        put(b, ")");
      } else if (c->modifier == HL_MOD_CONTAINS) {
        put(b, "instr(value, "), bind_text(b, v->text), put(b, ") > 0");
      } else {
        /* Prefix match as a range, so the index on value serves it. */
        size_t off = scratch->len;
        if (hl_buf_puts(scratch, v->text) < 0 || hl_buf_append(scratch, utf8_max, 5) < 0) {
          b->err = -ENOMEM;
          return;
        }
        (void)off;
        put(b, "(value >= "), bind_text(b, v->text), put(b, " AND value < ");
        /* The upper bound is text||U+10FFFF, built in the search's scratch buffer below. */
        b->binds[b->nbinds].kind = 0;
        b->binds[b->nbinds].s = NULL; /* filled in search_sql from scratch */
        if (b->nbinds >= MAX_BINDS) {
          b->err = HL_ELIMIT;
          return;
        }
        b->binds[b->nbinds].i = (int64_t)off; /* offset into scratch */
        b->binds[b->nbinds].kind = 3;
        b->nbinds++;
        if (!b->err && hl_buf_printf(&b->sql, "?%d", b->nbinds + 1) < 0)
          b->err = -ENOMEM;
        put(b, ")");
      }
    }
    put(b, "))");
    return;
  }
  /* Columns of the curated table. */
  put(b, c->modifier == HL_MOD_NOT ? "NOT coalesce((" : "(");
  for (size_t i = 0; i < c->nvalues; i++) {
    const hl_api_value *v = &c->values[i];
    if (i)
      put(b, " OR ");
    switch (d->kind) {
    case HL_SP_TOKEN: {
      /* A system given must be the column's own system (ids have none to check). */
      bool is_id = !strcmp(d->name, "_id");
      if (v->system && !is_id && !(d->system && !strcmp(v->system, d->system)))
        put(b, "0");
      else if (v->text)
        put(b, col), put(b, " = "), bind_text(b, v->text);
      else
        put(b, col), put(b, " IS NOT NULL");
      break;
    }
    case HL_SP_REFERENCE:
    case HL_SP_STRING:
      put(b, col), put(b, " = "), bind_text(b, v->text);
      break;
    case HL_SP_DATE: {
      char lo[128], hi[128];
      snprintf(lo, sizeof lo, "hl_lo(%s)", col);
      if (d->col_end)
        snprintf(hi, sizeof hi, "hl_hi(coalesce(t.%s, %s))", d->col_end, col);
      else
        snprintf(hi, sizeof hi, "hl_hi(%s)", col);
      date_pred(b, lo, hi, v);
      break;
    }
    case HL_SP_QUANTITY:
      quantity_pred(b, col, v);
      break;
    }
  }
  put(b, c->modifier == HL_MOD_NOT ? "), 0)" : ")");
}

/* The WHERE clause shared by the page and the count. */
static void where_sql(sqlb *b, const hl_api_search *q, hl_buf *scratch) {
  put(b, " WHERE t.tenant = ?1");
  for (size_t i = 0; i < q->nclauses; i++) {
    put(b, " AND ");
    clause_sql(b, q->type, &q->clauses[i], scratch);
  }
  if (q->compartment_patient && q->type->patient_col) {
    put(b, " AND t."), put(b, q->type->patient_col), put(b, " = "), bind_text(b, q->compartment_patient);
  }
}

static void sort_expr(const hl_api_search *q, char *out, size_t n, bool *is_int) {
  *is_int = false;
  if (!q->sort) {
    snprintf(out, n, "t.id");
  } else if (q->sort->kind == HL_SP_DATE) {
    *is_int = true;
    snprintf(out, n, "coalesce(hl_lo(t.%s), %lld)", q->sort->col, (long long)INT64_MIN);
  } else {
    snprintf(out, n, "coalesce(t.%s, '')", q->sort->col);
  }
}

static void fix_binds(sqlb *b, hl_buf *scratch) {
  for (int i = 0; i < b->nbinds; i++)
    if (b->binds[i].kind == 3) {
      b->binds[i].kind = 0;
      b->binds[i].s = scratch->data + b->binds[i].i;
    }
}

static int run_count(sq_conn *s, const char *tenant, const hl_api_search *q, int64_t *total) {
  sqlb b = {0};
  hl_buf scratch;
  hl_buf_init(&b.sql, 1 << 20);
  hl_buf_init(&scratch, 1 << 20);
  put(&b, "SELECT count(*) FROM "), put(&b, q->type->table), put(&b, " t");
  where_sql(&b, q, &scratch);
  int rc = b.err;
  if (rc == 0) {
    fix_binds(&b, &scratch);
    sqlite3_stmt *st = prepare(s, b.sql.data, &rc);
    if (st && (rc = bind_all(st, tenant, &b)) == 0) {
      int sr = sqlite3_step(st);
      if (sr == SQLITE_ROW)
        *total = sqlite3_column_int64(st, 0);
      else
        rc = step_error(s, sr);
      if (s->db)
        sqlite3_reset(st);
    }
  }
  hl_buf_free(&b.sql);
  hl_buf_free(&scratch);
  return rc;
}

static int run_page(sq_conn *s, const char *tenant, const hl_api_search *q, hl_api_result *res) {
  sqlb b = {0};
  hl_buf scratch;
  hl_buf_init(&b.sql, 1 << 20);
  hl_buf_init(&scratch, 1 << 20);
  char sk[160];
  bool is_int;
  sort_expr(q, sk, sizeof sk, &is_int);
  bool before = q->cursor.dir < 0;
  bool desc = q->sort_desc != before; /* the scan order */
  hl_buf_printf(&b.sql, "SELECT t.id, t.version_id, t.last_updated, t.resource, %s, %s%s FROM %s t", sk,
                q->type->patient_col ? "t." : "", q->type->patient_col ? q->type->patient_col : "NULL",
                q->type->table);
  where_sql(&b, q, &scratch);
  if (q->cursor.dir) {
    const char *op = desc ? "<" : ">";
    put(&b, " AND ("), put(&b, sk), put(&b, " "), put(&b, op), put(&b, " ");
    if (q->cursor.key_is_int)
      bind_int(&b, q->cursor.key_int);
    else
      bind_text(&b, q->cursor.key_text ? q->cursor.key_text : "");
    put(&b, " OR ("), put(&b, sk), put(&b, " = ");
    if (q->cursor.key_is_int)
      bind_int(&b, q->cursor.key_int);
    else
      bind_text(&b, q->cursor.key_text ? q->cursor.key_text : "");
    put(&b, " AND t.id "), put(&b, op), put(&b, " "), bind_text(&b, q->cursor.id), put(&b, "))");
  }
  if (q->sort)
    hl_buf_printf(&b.sql, " ORDER BY %s %s, t.id %s", sk, desc ? "DESC" : "ASC", desc ? "DESC" : "ASC");
  else
    hl_buf_printf(&b.sql, " ORDER BY t.id %s", desc ? "DESC" : "ASC");
  put(&b, " LIMIT "), bind_int(&b, (int64_t)q->count + 1);
  int rc = b.err;
  if (rc == 0) {
    fix_binds(&b, &scratch);
    sqlite3_stmt *st = prepare(s, b.sql.data, &rc);
    if (st && (rc = bind_all(st, tenant, &b)) == 0) {
      res->rows = calloc((size_t)q->count + 1, sizeof *res->rows);
      if (!res->rows)
        rc = -ENOMEM;
      int sr = SQLITE_ROW;
      while (rc == 0 && (sr = sqlite3_step(st)) == SQLITE_ROW) {
        if (res->nrows == (size_t)q->count) {
          if (before)
            res->more_before = true;
          else
            res->more_after = true;
          break;
        }
        rc = take_row(st, &res->rows[res->nrows], is_int);
        res->nrows++;
      }
      if (rc == 0 && sr != SQLITE_ROW && sr != SQLITE_DONE)
        rc = step_error(s, sr);
      if (s->db)
        sqlite3_reset(st);
    }
  }
  if (rc == 0 && before) {
    for (size_t i = 0; i < res->nrows / 2; i++) {
      hl_api_row tmp = res->rows[i];
      res->rows[i] = res->rows[res->nrows - 1 - i];
      res->rows[res->nrows - 1 - i] = tmp;
    }
    res->more_after = true;
  } else if (rc == 0 && q->cursor.dir > 0) {
    res->more_before = true;
  }
  hl_buf_free(&b.sql);
  hl_buf_free(&scratch);
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
  sqlb bj = {.nbinds = 1, .binds = {{.kind = 0, .s = job}}};
  if (!st || (rc = bind_all(st, tenant, &bj)) < 0)
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
  if (!st || (rc = bind_all(st, tenant, &bj)) < 0)
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
