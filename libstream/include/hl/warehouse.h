/*
 * The warehouse: RAW, curated and job-status tables behind one interface,
 * with a backend per store ("sqlite" now, "snowflake" later).
 *
 * A loader fills a batch with one row per input message (hl_wh_batch_add)
 * and commits it (hl_wh_batch_commit): every RAW row, every curated row and
 * side-table row, the job counters and the batch record go into the store in
 * ONE transaction, or nothing does. Then the loader commits its Kafka
 * offsets and publishes the counts of hl_wh_result.
 *
 * Rules (docs/warehouse.md):
 * - Idempotent: a RAW row's key is SHA-256 over (tenant, type, id, job,
 *   source, line, resource bytes); a row already present is a "duplicate"
 *   and changes nothing, so a replay of a batch inserts nothing.
 * - Newest wins: a curated row is replaced only by a strictly newer version
 *   (meta.versionId compared as numbers when both are digits, else as
 *   bytes; then meta.lastUpdated as instants). An older or equal version is
 *   "stale": kept in RAW, not applied.
 * - Errors are classified: a bad row (not JSON, key and resource disagree)
 *   is rejected on its own and the rest commits; SQLITE_BUSY/LOCKED are
 *   retried inside with backoff up to retry_budget_ms and then give
 *   HL_WH_EBUSY (retriable, nothing written); a full disk, an I/O error, a
 *   read-only or unopenable file give HL_WH_ESTORAGE (nothing written; the
 *   loader stops consuming and turns readiness down until an operator acts).
 *
 * A hl_wh and its batches are used by one thread at a time, except that a
 * batch bound with hl_wh_batch_use may be filled in one thread while
 * another commits a different batch (the sqlite backend also runs its own
 * WAL checkpointer thread, stopped by hl_wh_free). Other processes
 * may read the SQLite file at any time (WAL mode): readers never block the
 * writer and see whole batches only.
 */
#ifndef HL_WAREHOUSE_H
#define HL_WAREHOUSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hl/config.h"
#include "hl/error.h"
#include "hl/snowflake.h"

/* Warehouse error codes, in their own range below the HL_E* codes. */
enum hl_wh_error {
  HL_WH_EBUSY = HL__ERR_BASE - 100,    /* the store stayed busy/locked past the retry budget: retry later */
  HL_WH_ESTORAGE = HL__ERR_BASE - 101, /* full, I/O error, read-only, cannot open: stop, lose nothing */
  HL_WH_ESCHEMA = HL__ERR_BASE - 102,  /* the store's schema is newer than this binary or breaks the contract */
};

/* Names 0, -errno, HL_E* and HL_WH_E* codes. */
const char *hl_wh_strerror(int err);

/* True for the codes a loader must treat as "stop consuming, readiness down". */
bool hl_wh_is_fatal(int err);

/* The configuration variables of a warehouse writer, spliced into a worker's table. */
#define HL_CONFIG_WAREHOUSE_VARS                                                             \
  {"HL_WAREHOUSE_BACKEND", HL_CFG_ENUM, "sqlite", 0, 0, "sqlite|snowflake",                 \
   "Warehouse backend: sqlite (embedded) or snowflake (Snowpipe Streaming into RAW)."},     \
  {"HL_WAREHOUSE_PATH", HL_CFG_STRING, "healthlake.db", 1, 4096, NULL,                      \
   "SQLite backend: the database file (created and migrated at start-up)."},                \
  {"HL_WAREHOUSE_BUSY_TIMEOUT", HL_CFG_DURATION, "1s", 1, 600000, NULL,                     \
   "SQLite busy timeout of one attempt to take the write lock."},                          \
  {"HL_WAREHOUSE_RETRY_BUDGET", HL_CFG_DURATION, "30s", 0, 3600000, NULL,                   \
   "Longest time a batch is retried with backoff while the database is busy or locked."},    \
  {"HL_SNOWFLAKE_PIPE", HL_CFG_STRING, "FHIR_RESOURCES_STREAM", 1, 255, NULL,               \
   "Snowflake backend: the streaming pipe into RAW.FHIR_RESOURCES (schema: HL_SNOWFLAKE_SCHEMA)."}, \
  {"HL_SNOWFLAKE_COMMIT_TIMEOUT", HL_CFG_DURATION, "60s", 100, 3600000, NULL,              \
   "Snowflake backend: longest wait for the channels to report a batch committed."},        \
  HL_CONFIG_SNOWFLAKE_VARS

typedef struct hl_wh hl_wh;
typedef struct hl_wh_batch hl_wh_batch;

typedef struct hl_wh_opts {
  const char *backend;       /* "sqlite" or "snowflake" (NULL: "sqlite") */
  const char *path;          /* sqlite: the database file */
  bool create;               /* create the file when missing */
  bool read_only;            /* open for reads only (no migration) */
  long long busy_timeout_ms; /* one attempt's wait for the lock (0: 1000) */
  long long retry_budget_ms; /* total retry time on busy/locked (0: 30000; <0: no retry) */
  long long max_pages;       /* PRAGMA max_page_count, a size quota (0: none) */
  long long wal_checkpoint_pages; /* sqlite: WAL growth (pages) that calls for a background checkpoint (0: 2000; at most 2^20) */
  /* snowflake: the client settings (strings borrowed), the pipe and the commit wait. */
  hl_snowflake_config snowflake;
  const char *sf_pipe;             /* NULL: "FHIR_RESOURCES_STREAM" */
  long long sf_commit_timeout_ms;  /* 0: 60000 */
} hl_wh_opts;

/*
 * Fills opts from HL_CONFIG_WAREHOUSE_VARS (create = true); strings borrow
 * from cfg. With the snowflake backend, a missing account, user or key
 * leaves opts->snowflake empty and hl_wh_new reports it.
 */
void hl_wh_opts_from_config(const hl_config *cfg, hl_wh_opts *opts);

/*
 * Turns off SQLite's global memory statistics for a process that writes a
 * warehouse (call first in main, before any thread uses SQLite; later it
 * changes nothing). Debian's SQLite keeps them by default: a global mutex
 * and counters around every allocation of every connection. Off, the
 * SQLite backend's commits take ~3% less CPU (bench/warehouse). Nothing in
 * Healthlake reads those statistics.
 */
void hl_wh_tune_process(void);

/*
 * Opens (and with create, creates) the warehouse and applies the pending
 * migrations in order. Returns 0, -EINVAL, HL_WH_ESTORAGE (cannot open or
 * write), HL_WH_ESCHEMA, HL_WH_EBUSY; a message goes to err (may be NULL).
 */
int hl_wh_new(const hl_wh_opts *opts, hl_wh **out, char *err, size_t errlen);
hl_wh *hl_wh_free(hl_wh *wh);

/* ---- Batches ------------------------------------------------------------------ */

/*
 * One input row. Strings are (pointer, length); a length of 0 means the
 * string is NUL-terminated (or NULL: absent). Everything is copied by
 * hl_wh_batch_add.
 */
typedef struct hl_wh_row {
  const char *tenant; size_t tenant_len;   /* required: the hl-org header */
  const char *type; size_t type_len;       /* required: resourceType (from the key) */
  const char *id; size_t id_len;           /* required: id (from the key) */
  const char *json; size_t json_len;       /* required: the FHIR resource */
  const char *job; size_t job_len;         /* hl-job */
  const char *source; size_t source_len;   /* hl-source: the object uri */
  const char *ingested_at; size_t ingested_at_len; /* hl-ingested-at (NULL: now) */
  int64_t line;                            /* hl-line, -1 when unknown */
  const char *topic; size_t topic_len;     /* Kafka coordinates (topic NULL: none) */
  int32_t partition;
  int64_t offset;
} hl_wh_row;

/* Fills row->tenant, type and id by splitting a key "org/Type/id" (borrowed). 0 or HL_EPARSE. */
int hl_wh_row_set_key(hl_wh_row *row, const char *key, size_t key_len);

/* Most rows and bytes a batch holds (0: 100000 rows, 256 MiB). */
int hl_wh_batch_new(size_t max_rows, size_t max_bytes, hl_wh_batch **out);
hl_wh_batch *hl_wh_batch_free(hl_wh_batch *b);
/*
 * Optional: lets hl_wh_batch_add extract each row's curated columns and
 * search values as it is added, in the adding thread (sqlite backend; a
 * no-op for others), so that hl_wh_batch_commit with the same wh only binds
 * them. Adding to b while another thread commits another batch with wh is
 * safe: the extraction reads only what hl_wh_new set up. wh must outlive
 * the batch's commits; committed with another hl_wh, the rows are
 * extracted at commit as without this call. 0 (always).
 */
int hl_wh_batch_use(hl_wh_batch *b, const hl_wh *wh);
/* Empties the batch (keeps its memory). */
void hl_wh_batch_reset(hl_wh_batch *b);
size_t hl_wh_batch_len(const hl_wh_batch *b);

/*
 * Adds a row (copied). Returns its index (>= 0); HL_ELIMIT when the batch is
 * full (nothing added: commit first); -ENOMEM. A malformed row (missing
 * field, invalid JSON, resourceType/id not those of the key, oversized) is
 * still added, already marked rejected: see hl_wh_batch_status.
 */
int hl_wh_batch_add(hl_wh_batch *b, const hl_wh_row *row);

/*
 * Adds a job-status event (the JSON value of hl.jobs.status, copied), folded
 * into the job table in the batch's transaction. HL_ELIMIT, -ENOMEM.
 */
int hl_wh_batch_add_event(hl_wh_batch *b, const char *json, size_t len);

/* What became of a row at commit. */
typedef enum hl_wh_row_status {
  HL_WH_ROW_PENDING = 0,   /* not committed yet */
  HL_WH_ROW_APPLIED,       /* new in RAW, and now the curated version */
  HL_WH_ROW_STALE,         /* new in RAW; the curated version is newer or equal */
  HL_WH_ROW_RAW_ONLY,      /* new in RAW; the type has no curated table */
  HL_WH_ROW_DUPLICATE,     /* already in RAW (a replay): nothing changed */
  HL_WH_ROW_REJECTED,      /* bad input: goes to the dead-letter topic */
} hl_wh_row_status;

/*
 * Status of row i; for a rejected row, code ("json", "key-mismatch",
 * "missing-field", "too-large", "unsupported-type") and detail (may be NULL)
 * stay valid until the batch is reset.
 */
hl_wh_row_status hl_wh_batch_status(const hl_wh_batch *b, size_t i, const char **code,
                                    const char **detail);

/* Counts of one (tenant, job, type) of a committed batch (job "" when none). */
typedef struct hl_wh_count {
  const char *tenant, *job, *type;
  uint64_t rows, applied, stale, raw_only, duplicate, rejected;
} hl_wh_count;

typedef struct hl_wh_result {
  int64_t batch_id;           /* the warehouse batch id (load_batch) */
  const hl_wh_count *counts;  /* sorted by tenant, job, type; owned by the batch */
  size_t ncounts;
  uint64_t rows, applied, stale, raw_only, duplicate, rejected;
  uint64_t events, events_skipped; /* job-status events folded / not valid */
} hl_wh_result;

/*
 * Writes the batch in one transaction: RAW rows, curated and side-table
 * rows, rejected-row records, job counters, folded events and the batch
 * record. On 0 the row statuses and *res (may be NULL) are filled and stay
 * valid until reset. On failure nothing was written and the batch can be
 * committed again: HL_WH_EBUSY (retry later), HL_WH_ESTORAGE (stop),
 * -ENOMEM, HL_EFATAL (an unexpected store error; message in the log).
 * An event that is not a valid job-status event is skipped and counted in
 * res->events_skipped (hl_wh_job_event gives a per-event verdict).
 */
int hl_wh_batch_commit(hl_wh *wh, hl_wh_batch *b, hl_wh_result *res);

/* ---- Job status ------------------------------------------------------------- */

/*
 * Folds one job-status event in its own transaction. 0, HL_EPARSE (not a
 * valid event: dead-letter it), or the codes of hl_wh_batch_commit.
 */
int hl_wh_job_event(hl_wh *wh, const char *json, size_t len);

typedef struct hl_wh_job {
  char state[32]; /* accepted | processing | completed | completed-with-errors */
  uint64_t received, valid, rejected, loaded;
  uint64_t parse_rejected, validate_rejected, load_rejected;
  bool parsed;
  char updated_at[40];
} hl_wh_job;

/* Reads the status of (tenant, job, uri). 0, HL_ENOTFOUND, or a store error. */
int hl_wh_job_get(hl_wh *wh, const char *tenant, const char *job, const char *uri,
                  hl_wh_job *out);

/* ---- Reads -------------------------------------------------------------------- */

/*
 * The current (curated) version of a resource: *json is malloc'ed (caller
 * frees), version may be NULL or receives meta.versionId ("" when none).
 * 0, HL_ENOTFOUND, -EINVAL (unsupported type), or a store error.
 */
int hl_wh_get(hl_wh *wh, const char *tenant, const char *type, const char *id, char **json,
              size_t *len, char *version, size_t version_len);

/* SHA-256 (hex, 65 bytes with NUL) of a table's or view's rows in a stable order. */
int hl_wh_checksum(hl_wh *wh, const char *table, char hex[65]);

/* Number of rows of a table or view. */
int hl_wh_count_rows(hl_wh *wh, const char *table, int64_t *n);

/* The curated table of a resource type ("curated_patient"), NULL when unsupported. */
const char *hl_wh_curated_table(const char *type);

/*
 * Token search on SQLite (docs/warehouse.md, "Token search"): each curated
 * resource's token values live in one curated_token_doc row, and its
 * full-text terms in the contentless FTS5 table curated_token_fts (rowid =
 * raw_id), one term per value (system, code) of a parameter: "k", 16
 * lower-case hex digits of a 64-bit hash over (tenant, type, param, code),
 * then 8 of a hash of the system ("" when the value has none). The code's
 * part comes first, so the code under any system is the FTS5 prefix query
 * `k<16 digits>*`: with system NULL, out is that prefix (HL_WH_TERM_PREFIX_LEN
 * characters, without the '*'). Terms are one FTS5 token (tokenizer
 * 'ascii'). They only narrow a search: a reader confirms each match against
 * curated_token (hash collisions cost time, never a wrong answer). The hash
 * must never change: the warehouse deletes a replaced version's terms by
 * recomputing them.
 */
#define HL_WH_TERM_PREFIX_LEN 17
#define HL_WH_TERM_LEN 25
void hl_wh_token_term(const char *tenant, const char *type, const char *param, const char *system,
                      const char *code, char out[HL_WH_TERM_LEN + 1]);

/* Statistics for tests, benchmarks and metrics. */
typedef struct hl_wh_stats {
  uint64_t commits;      /* batches committed */
  uint64_t busy_retries; /* attempts that met SQLITE_BUSY/LOCKED and were retried */
  uint64_t busy_failures;/* commits given up with HL_WH_EBUSY */
  uint64_t storage_errors;
  uint64_t checkpoints;  /* sqlite: WAL checkpoints run (by the background checkpointer or the writer) */
} hl_wh_stats;
void hl_wh_get_stats(const hl_wh *wh, hl_wh_stats *out);

/* ---- Helpers exposed for tests ------------------------------------------------ */

/* Compares two versions (versionId, lastUpdated) by the newest-wins rule: <0, 0, >0. Any may be NULL. */
int hl_wh_version_cmp(const char *vid_a, const char *lu_a, const char *vid_b, const char *lu_b);

/* Lower-cases and strips accents of UTF-8 text for prefix search (malloc'ed; NULL on ENOMEM). */
char *hl_wh_normalize(const char *s, size_t len);

/* The id of a literal reference (Type/id, urn:uuid:id, .../Type/id/_history/v); borrowed span. */
int hl_wh_reference_id(const char *ref, size_t len, const char **id, size_t *id_len);

#endif
