/*
 * The read side of the warehouse as the gateway needs it: read one
 * resource, run a search (one page, its total, the included patients) and
 * report an ingestion job. One interface (hl_api_store_ops) with a backend
 * per store: SQLite now (store_sqlite.c, its own read-only connection on
 * the curated tables), Snowflake later. Every operation completes through
 * a callback, so an asynchronous backend can answer later on the loop
 * thread; the SQLite backend calls it before returning. Every call and
 * callback happens on the gateway's loop thread.
 */
#ifndef HL_API_STORE_H
#define HL_API_STORE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fhirtypes.h"
#include "query.h"

typedef struct hl_api_row {
  char *id;
  char *version;      /* meta.versionId ("" when none) */
  char *last_updated; /* meta.lastUpdated ("" when none) */
  char *json;         /* the resource */
  size_t json_len;
  char *patient;      /* the subject patient id (NULL when none) */
  bool key_is_int;    /* the sort key of the row, for cursors */
  int64_t key_int;
  char *key_text;
} hl_api_row;

typedef struct hl_api_result {
  hl_api_row *rows;
  size_t nrows;
  hl_api_row *included; /* _include'd patients */
  size_t nincluded;
  int64_t total;        /* matches of the whole search */
  bool more_after;      /* rows follow the last one in sort order */
  bool more_before;     /* rows precede the first one */
} hl_api_result;

void hl_api_result_clear(hl_api_result *r);

/* rc: 0, HL_ENOTFOUND (read, job), HL_EIO (store unavailable), -ENOMEM, HL_EFATAL. res/job owned by the store; valid during the call. */
typedef void (*hl_api_result_fn)(void *ud, int rc, hl_api_result *res);
typedef void (*hl_api_job_fn)(void *ud, int rc, json_t *job);

typedef struct hl_api_store hl_api_store;

typedef struct hl_api_store_ops {
  const char *name;
  void (*read)(hl_api_store *st, const char *tenant, const hl_api_type_def *t, const char *id,
               hl_api_result_fn done, void *ud);
  void (*search)(hl_api_store *st, const char *tenant, const hl_api_search *s,
                 hl_api_result_fn done, void *ud);
  void (*job)(hl_api_store *st, const char *tenant, const char *job, hl_api_job_fn done, void *ud);
  bool (*ready)(hl_api_store *st, char *reason, size_t len);
  void (*free)(hl_api_store *st);
} hl_api_store_ops;

struct hl_api_store {
  const hl_api_store_ops *ops;
};

/* Opens the SQLite read side on path (read-only; opened again lazily while missing). */
int hl_api_store_sqlite_new(const char *path, hl_api_store **out);

static inline hl_api_store *hl_api_store_free(hl_api_store *st) {
  if (st)
    st->ops->free(st);
  return NULL;
}

#endif
