#include "state.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include "hl/error.h"
#include "hl/log.h"

struct hl_nstate {
  sqlite3 *db;
  sqlite3_stmt *lookup, *ins_pending, *ins_rejected, *mark, *pending, *count;
};

static const char schema[] =
    "CREATE TABLE IF NOT EXISTS objects ("
    " id INTEGER PRIMARY KEY,"
    " bucket TEXT NOT NULL, key TEXT NOT NULL, etag TEXT NOT NULL,"
    " status INTEGER NOT NULL,"
    " event_id TEXT, org TEXT, job TEXT, uri TEXT, msg_key TEXT, value TEXT,"
    " partition INTEGER, watermark INTEGER, offset INTEGER,"
    " reason TEXT, created_ms INTEGER, done_ms INTEGER,"
    " UNIQUE (bucket, key, etag));"
    "CREATE INDEX IF NOT EXISTS objects_pending ON objects (status) WHERE status = 0;";

static int fail(hl_nstate *st, const char *what) {
  if (hl_log_enabled(HL_LOG_DEBUG))
    hl_log_kv(HL_LOG_DEBUG, "notifier state error", "op", what, "error", sqlite3_errmsg(st->db),
              NULL);
  return HL_EIO;
}

static int exec(hl_nstate *st, const char *sql) {
  return sqlite3_exec(st->db, sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : fail(st, sql);
}

static int prepare(hl_nstate *st, sqlite3_stmt **s, const char *sql) {
  return sqlite3_prepare_v2(st->db, sql, -1, s, NULL) == SQLITE_OK ? 0 : fail(st, sql);
}

int hl_nstate_open(const char *path, hl_nstate **out) {
  hl_nstate *st = calloc(1, sizeof *st);
  if (!st)
    return -ENOMEM;
  int r = HL_EIO;
  if (sqlite3_open_v2(path, &st->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
      SQLITE_OK)
    goto fail;
  sqlite3_busy_timeout(st->db, 5000);
  if ((r = exec(st, "PRAGMA journal_mode=WAL")) < 0 || (r = exec(st, "PRAGMA synchronous=FULL")) < 0 ||
      (r = exec(st, schema)) < 0)
    goto fail;
  if ((r = prepare(st, &st->lookup,
                   "SELECT status FROM objects WHERE bucket=?1 AND key=?2 AND etag=?3")) < 0 ||
      (r = prepare(st, &st->ins_pending,
                   "INSERT OR IGNORE INTO objects (bucket,key,etag,status,event_id,org,job,msg_key,"
                   "value,partition,watermark,created_ms,uri) "
                   "VALUES (?1,?2,?3,0,?4,?5,?6,?7,?8,?9,?10,?11,?12)")) < 0 ||
      (r = prepare(st, &st->ins_rejected,
                   "INSERT OR IGNORE INTO objects (bucket,key,etag,status,reason,done_ms) "
                   "VALUES (?1,?2,?3,2,?4,CAST(strftime('%s','now') AS INTEGER)*1000)")) < 0 ||
      (r = prepare(st, &st->mark,
                   "UPDATE objects SET status=1, offset=?2, "
                   "done_ms=CAST(strftime('%s','now') AS INTEGER)*1000 WHERE id=?1 AND status=0")) < 0 ||
      (r = prepare(st, &st->pending,
                   "SELECT id,bucket,key,etag,event_id,org,job,msg_key,value,partition,watermark,"
                   "created_ms,uri FROM objects WHERE status=0 ORDER BY id")) < 0 ||
      (r = prepare(st, &st->count, "SELECT count(*) FROM objects WHERE status=?1")) < 0)
    goto fail;
  *out = st;
  return 0;
fail:
  hl_nstate_close(st);
  return r;
}

hl_nstate *hl_nstate_close(hl_nstate *st) {
  if (!st)
    return NULL;
  sqlite3_finalize(st->lookup);
  sqlite3_finalize(st->ins_pending);
  sqlite3_finalize(st->ins_rejected);
  sqlite3_finalize(st->mark);
  sqlite3_finalize(st->pending);
  sqlite3_finalize(st->count);
  sqlite3_close(st->db);
  free(st);
  return NULL;
}

int hl_nstate_begin(hl_nstate *st) { return exec(st, "BEGIN IMMEDIATE"); }
int hl_nstate_commit(hl_nstate *st) { return exec(st, "COMMIT"); }
int hl_nstate_rollback(hl_nstate *st) { return exec(st, "ROLLBACK"); }

static void bind_text(sqlite3_stmt *s, int i, const char *v) {
  if (v)
    sqlite3_bind_text(s, i, v, -1, SQLITE_TRANSIENT);
  else
    sqlite3_bind_null(s, i);
}

int hl_nstate_lookup(hl_nstate *st, const char *bucket, const char *key, const char *etag,
                     hl_nstate_status *status) {
  sqlite3_stmt *s = st->lookup;
  bind_text(s, 1, bucket);
  bind_text(s, 2, key);
  bind_text(s, 3, etag);
  int rc = sqlite3_step(s);
  int r;
  if (rc == SQLITE_ROW) {
    *status = (hl_nstate_status)sqlite3_column_int(s, 0);
    r = 0;
  } else {
    r = rc == SQLITE_DONE ? HL_ENOTFOUND : fail(st, "lookup");
  }
  sqlite3_reset(s);
  sqlite3_clear_bindings(s);
  return r;
}

int hl_nstate_insert_pending(hl_nstate *st, hl_nstate_row *row) {
  sqlite3_stmt *s = st->ins_pending;
  bind_text(s, 1, row->bucket);
  bind_text(s, 2, row->key);
  bind_text(s, 3, row->etag);
  bind_text(s, 4, row->event_id);
  bind_text(s, 5, row->org);
  bind_text(s, 6, row->job);
  bind_text(s, 7, row->msg_key);
  bind_text(s, 8, row->value);
  sqlite3_bind_int(s, 9, row->partition);
  sqlite3_bind_int64(s, 10, row->watermark);
  sqlite3_bind_int64(s, 11, row->created_ms);
  bind_text(s, 12, row->uri);
  int rc = sqlite3_step(s);
  int r;
  if (rc != SQLITE_DONE) {
    r = fail(st, "insert pending");
  } else if (sqlite3_changes(st->db) == 0) {
    r = 1;
  } else {
    row->id = sqlite3_last_insert_rowid(st->db);
    r = 0;
  }
  sqlite3_reset(s);
  sqlite3_clear_bindings(s);
  return r;
}

int hl_nstate_insert_rejected(hl_nstate *st, const char *bucket, const char *key, const char *etag,
                              const char *reason) {
  sqlite3_stmt *s = st->ins_rejected;
  bind_text(s, 1, bucket);
  bind_text(s, 2, key);
  bind_text(s, 3, etag);
  bind_text(s, 4, reason);
  int rc = sqlite3_step(s);
  int r = rc != SQLITE_DONE ? fail(st, "insert rejected") : sqlite3_changes(st->db) == 0 ? 1 : 0;
  sqlite3_reset(s);
  sqlite3_clear_bindings(s);
  return r;
}

int hl_nstate_mark_announced(hl_nstate *st, int64_t id, int64_t offset) {
  sqlite3_stmt *s = st->mark;
  sqlite3_bind_int64(s, 1, id);
  sqlite3_bind_int64(s, 2, offset);
  int rc = sqlite3_step(s);
  int r = rc != SQLITE_DONE ? fail(st, "mark") : sqlite3_changes(st->db) == 0 ? HL_ENOTFOUND : 0;
  sqlite3_reset(s);
  return r;
}

static const char *col(sqlite3_stmt *s, int i) { return (const char *)sqlite3_column_text(s, i); }

int hl_nstate_each_pending(hl_nstate *st, hl_nstate_row_fn *fn, void *ud) {
  sqlite3_stmt *s = st->pending;
  int r = 0, rc;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    hl_nstate_row row = {
        .id = sqlite3_column_int64(s, 0),
        .bucket = col(s, 1),
        .key = col(s, 2),
        .etag = col(s, 3),
        .event_id = col(s, 4),
        .org = col(s, 5),
        .job = col(s, 6),
        .msg_key = col(s, 7),
        .value = col(s, 8),
        .partition = sqlite3_column_int(s, 9),
        .watermark = sqlite3_column_int64(s, 10),
        .created_ms = sqlite3_column_int64(s, 11),
        .uri = col(s, 12),
    };
    if ((r = fn(ud, &row)) != 0)
      break;
  }
  if (r == 0 && rc != SQLITE_DONE)
    r = fail(st, "pending");
  sqlite3_reset(s);
  return r;
}

int64_t hl_nstate_count(hl_nstate *st, hl_nstate_status status) {
  sqlite3_stmt *s = st->count;
  sqlite3_bind_int(s, 1, (int)status);
  int64_t n = sqlite3_step(s) == SQLITE_ROW ? sqlite3_column_int64(s, 0) : fail(st, "count");
  sqlite3_reset(s);
  return n;
}
