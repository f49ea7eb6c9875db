/*
 * The read side of the warehouse as the gateway needs it: read one
 * resource, run a search (one page, its total, the included patients) and
 * report an ingestion job. One interface (hl_api_store_ops) with a backend
 * per store: SQLite now (store_sqlite.c, read-only connections on the
 * curated tables, queried on reader threads), Snowflake later. Every
 * operation completes through a callback, later on the loop thread (or
 * before the call returns: callers must cope with both). Every call and
 * callback happens on the gateway's loop thread. What a call borrows
 * (the search, the type definition) must stay valid until its callback.
 */
#ifndef HL_API_STORE_H
#define HL_API_STORE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "fhirtypes.h"
#include "hl/config.h"
#include "hl/metrics.h"
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

/*
 * Filling one page of a search from rows that come in scan order, count + 1
 * at most (sqlgen.h): hl_api_page_begin allocates the rows; before each row,
 * hl_api_page_full tells whether the page already holds count (the extra
 * row only says that more follow: more_after, or more_before when paging
 * backwards); hl_api_page_end puts a backward page back in sort order and
 * sets the flag of the side the cursor came from.
 */
int hl_api_page_begin(hl_api_result *res, const hl_api_search *q);
bool hl_api_page_full(hl_api_result *res, const hl_api_search *q);
void hl_api_page_end(hl_api_result *res, const hl_api_search *q);
/* Frees one row's strings (their one block) and zeroes the row. */
void hl_api_row_clear(hl_api_row *r);

/* Fills r from the six column strings id, version, last_updated, resource,
 * sort key, patient (v[i] NULL: absent; n[i] their lengths) in one
 * allocation that starts at r->id and that hl_api_result_clear frees. */
int hl_api_row_set(hl_api_row *r, const char *const v[6], const size_t n[6], bool key_is_int,
                   int64_t key_int);

/* A job document ({"id", "objects": [...]}, store.c) filled from the job's
 * rows in the jobs table, one object per landed object: totals, the least
 * advanced state, the newest updated_at. */
#define HL_API_JOB_NCOUNTS 7 /* received valid rejected loaded parse_ validate_ load_rejected */

typedef struct hl_api_job_doc {
  json_t *job;
  long long totals[HL_API_JOB_NCOUNTS];
  int worst;
  size_t nobjects;
  char updated[64];
} hl_api_job_doc;

void hl_api_job_doc_begin(hl_api_job_doc *d, json_t *job);
void hl_api_job_doc_object(hl_api_job_doc *d, const char *uri, const char *state,
                           const long long counts[HL_API_JOB_NCOUNTS], const char *error_code,
                           const char *error_detail, const char *updated_at);
/* Sets state, totals and updated_at; HL_ENOTFOUND when no object was added. */
int hl_api_job_doc_end(hl_api_job_doc *d);
/* One load_reject row as an OperationOutcome (NULL on a missing code or no memory). */
json_t *hl_api_job_rejection(const char *type, const char *id, const char *source, long long line,
                             const char *code, const char *detail);

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

/*
 * Opens the SQLite read side on path (read-only; opened again lazily while
 * missing). readers: threads that run the queries, each with its own
 * connection, answering on loop through a uv_async; 0 runs every query on
 * the calling (loop) thread. Free it before the loop's last run: operations
 * still queued then are answered with HL_EIO. 0, -EINVAL, -ENOMEM or a
 * libuv/pthread error.
 */
int hl_api_store_sqlite_new(const char *path, uv_loop_t *loop, size_t readers, hl_api_store **out);

/* The configuration variables of the snowflake read side (with HL_CONFIG_SNOWFLAKE_VARS). */
#define HL_API_STORE_SNOWFLAKE_VARS                                                                  \
  {"HL_API_SNOWFLAKE_SCHEMA", HL_CFG_STRING, "CURATED", 1, 120, NULL,                               \
   "Snowflake backend: schema of the curated tables and the HL_LO/HL_HI date UDFs (API: the views)."}, \
  {"HL_API_SNOWFLAKE_JOBS_SCHEMA", HL_CFG_STRING, "RAW", 1, 120, NULL,                              \
   "Snowflake backend: schema of the jobs and load_reject tables (API: the views)."},              \
  {"HL_API_CACHE_ENTRIES", HL_CFG_INT, "4096", 0, 10000000, NULL,                                   \
   "Snowflake backend: most statements kept in the response cache (0: no cache)."},                \
  {"HL_API_CACHE_BYTES", HL_CFG_SIZE, "64MiB", 0, 1LL << 34, NULL,                                  \
   "Snowflake backend: most bytes of results kept in the response cache."},                        \
  {"HL_API_CACHE_TTL", HL_CFG_DURATION, "30s", 0, 86400000, NULL,                                   \
   "Snowflake backend: how long a cached result answers (0: no cache)."}

/*
 * Opens the Snowflake read side from cfg (HL_CONFIG_SNOWFLAKE_VARS and
 * HL_API_STORE_SNOWFLAKE_VARS in its table): statements run on loop
 * through hl_snowflake_async; the cache's metrics go to reg. Free it
 * before the loop's last run: pending operations then answer HL_EIO.
 * 0, HL_ECONFIG (message in err), -ENOMEM.
 */
int hl_api_store_snowflake_new(const hl_config *cfg, uv_loop_t *loop, hl_metrics *reg,
                               hl_api_store **out, char *err, size_t errlen);

static inline hl_api_store *hl_api_store_free(hl_api_store *st) {
  if (st)
    st->ops->free(st);
  return NULL;
}

#endif
