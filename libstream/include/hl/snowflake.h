/*
 * hl_snowflake: a Snowflake client on libcurl, jansson and OpenSSL.
 *
 * Three parts share one handle (hl_snowflake):
 *
 *  - key-pair JWT authentication (RS256, iss ACCOUNT.USER.SHA256:<fp>, sub
 *    ACCOUNT.USER), minted on demand and renewed before it expires;
 *  - the SQL API v2 (/api/v2/statements): a statement is submitted with a
 *    requestId, polled while the server answers 202, and every partition
 *    of its result is fetched; values are typed by the result's rowType.
 *    Two drivers run the same request logic: hl_snowflake_exec() blocks
 *    (for the loader), hl_snowflake_async_exec() runs on a libuv loop
 *    through curl's multi interface (for hl-api-gateway);
 *  - the Snowpipe Streaming REST API (high-performance architecture):
 *    channels with offset tokens, NDJSON appends, committed offsets.
 *
 * Retries: 429, 503 and 504 (and transport errors) are retried with
 * exponential backoff and full jitter, honouring Retry-After, at most
 * max_retries times; a resubmitted statement carries the same requestId
 * with retry=true, so the server never runs it twice. A 401 mints a new
 * token and retries once. 408 (timed out and cancelled by the server) and
 * 422 (the statement failed) are final and report code, sqlState and
 * message in hl_snowflake_error. When the client's own deadline passes
 * while it polls, it cancels the statement (POST .../cancel) and returns
 * HL_ETIMEOUT.
 *
 * Return values: 0, or a negative code from hl/error.h: HL_EHTTP (the
 * server answered an error; see err->http_status), HL_ETIMEOUT (408 or the
 * client deadline), HL_EIO (transport error after the last retry),
 * HL_EPARSE (an unreadable answer), HL_ELIMIT (an answer past a cap),
 * HL_ECONFIG (bad key or settings), -ENOMEM, -EINVAL, -ECANCELED.
 *
 * A handle is not thread-safe: use it from one thread (the loop's thread
 * when an hl_snowflake_async is attached). See docs/snowflake.md.
 */
#ifndef HL_SNOWFLAKE_H
#define HL_SNOWFLAKE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include <uv.h>

#include "hl/config.h"
#include "hl/metrics.h"

/* The configuration variables of the client, for a binary's config table. */
#define HL_CONFIG_SNOWFLAKE_VARS                                                                 \
  {"HL_SNOWFLAKE_ACCOUNT", HL_CFG_STRING, "", 0, 255, NULL,                                      \
   "Account identifier (orgname-account or locator, e.g. xy12345.us-east-1)."},                 \
  {"HL_SNOWFLAKE_USER", HL_CFG_STRING, "", 0, 255, NULL,                                         \
   "User the key pair belongs to."},                                                             \
  {"HL_SNOWFLAKE_PRIVATE_KEY_FILE", HL_CFG_STRING, "", 0, 1024, NULL,                            \
   "PEM file with the user's RSA private key (PKCS#8, or PKCS#1)."},                            \
  {"HL_SNOWFLAKE_PRIVATE_KEY_PASSPHRASE", HL_CFG_STRING, "", 0, 1024, NULL,                      \
   "Passphrase of an encrypted private key; empty for an unencrypted key."},                    \
  {"HL_SNOWFLAKE_URL", HL_CFG_STRING, "", 0, 512, NULL,                                          \
   "Base URL of the account; empty: https://<account>.snowflakecomputing.com (tests: a stand-in)."}, \
  {"HL_SNOWFLAKE_DATABASE", HL_CFG_STRING, "HEALTHLAKE", 0, 255, NULL,                           \
   "Database of statements and streaming channels."},                                            \
  {"HL_SNOWFLAKE_SCHEMA", HL_CFG_STRING, "RAW", 0, 255, NULL,                                    \
   "Default schema of statements."},                                                             \
  {"HL_SNOWFLAKE_WAREHOUSE", HL_CFG_STRING, "", 0, 255, NULL,                                    \
   "Virtual warehouse running the statements; empty: the user's default."},                     \
  {"HL_SNOWFLAKE_ROLE", HL_CFG_STRING, "", 0, 255, NULL,                                         \
   "Role of the statements; empty: the user's default role."},                                  \
  {"HL_SNOWFLAKE_JWT_LIFETIME", HL_CFG_DURATION, "59m", 60000, 3600000, NULL,                    \
   "Lifetime of a key-pair JWT (Snowflake accepts at most one hour)."},                         \
  {"HL_SNOWFLAKE_STATEMENT_TIMEOUT", HL_CFG_DURATION, "10m", 1000, 604800000, NULL,              \
   "A statement still running after this is cancelled (server timeout and client deadline)."}, \
  {"HL_SNOWFLAKE_REQUEST_TIMEOUT", HL_CFG_DURATION, "60s", 1000, 600000, NULL,                   \
   "One HTTP request fails after this long."},                                                   \
  {"HL_SNOWFLAKE_MAX_RETRIES", HL_CFG_INT, "6", 0, 30, NULL,                                     \
   "Retries of one request after 429, 503, 504 or a transport error."},                         \
  {"HL_SNOWFLAKE_RETRY_BASE", HL_CFG_DURATION, "200ms", 1, 60000, NULL,                          \
   "First backoff step; doubles each retry, with full jitter."},                                \
  {"HL_SNOWFLAKE_RETRY_MAX", HL_CFG_DURATION, "30s", 1, 600000, NULL,                            \
   "Longest wait between two retries (a longer Retry-After wins)."},                            \
  {"HL_SNOWFLAKE_MAX_RESULT", HL_CFG_SIZE, "256MiB", 1024, 1LL << 34, NULL,                      \
   "Cap on the bytes of one statement's result, all partitions together."},                     \
  {"HL_SNOWFLAKE_MAX_CONNECTIONS", HL_CFG_INT, "16", 1, 256, NULL,                               \
   "Connections to Snowflake of the asynchronous driver; more statements wait in turn."}

/* Settings of a client. Strings are copied by hl_snowflake_new; NULL means empty. */
typedef struct hl_snowflake_config {
  const char *account;          /* required */
  const char *user;             /* required */
  const char *private_key_file; /* PEM file; or private_key_pem */
  const char *private_key_pem;  /* PEM text in memory (tests); used when set */
  const char *passphrase;       /* NULL/"": the key is not encrypted */
  const char *url;              /* NULL/"": https://<account>.snowflakecomputing.com */
  const char *database, *schema, *warehouse, *role; /* NULL/"": not sent */
  const char *user_agent;       /* NULL/"": "Healthlake/<version>" */
  long jwt_lifetime_s;          /* 60..3600; 0: 3540 */
  long statement_timeout_ms;    /* 0: 600000 */
  long request_timeout_ms;      /* 0: 60000 */
  int max_retries;              /* 0..30 (-1: the default, 6) */
  long retry_base_ms;           /* 0: 200 */
  long retry_max_ms;            /* 0: 30000 */
  long poll_max_ms;             /* longest wait between two polls; 0: 1000 */
  long long max_result;         /* 0: 256 MiB */
  int max_connections;          /* asynchronous driver; 0: 16 */
} hl_snowflake_config;

/* Details of a failed call; cleared at the start of every call. */
typedef struct hl_snowflake_error {
  int http_status;            /* 0 when no HTTP answer came */
  char code[64];              /* Snowflake error code, e.g. "002003" (streaming: a name) */
  char sql_state[8];          /* e.g. "42S02" */
  char message[512];          /* server message, or the transport error */
  char statement_handle[64];  /* when the server gave one */
  char request_id[40];        /* the requestId the statement was sent with */
  int attempts;               /* HTTP requests made, retries and polls included */
} hl_snowflake_error;

/* Types of a binding, as the SQL API names them. */
typedef enum hl_snowflake_type {
  HL_SF_TEXT,
  HL_SF_FIXED,
  HL_SF_REAL,
  HL_SF_BOOLEAN,
  HL_SF_DATE,
  HL_SF_TIME,
  HL_SF_TIMESTAMP_NTZ,
  HL_SF_TIMESTAMP_LTZ,
  HL_SF_TIMESTAMP_TZ,
  HL_SF_BINARY,
} hl_snowflake_type;

/*
 * One bind variable ("1", "2", ... in order). Either a single value
 * (value; NULL binds SQL NULL) or, when values is not NULL, an array of
 * nvalues values: the statement then runs once per element (batch insert).
 */
typedef struct hl_snowflake_bind {
  hl_snowflake_type type;
  const char *value;
  const char *const *values;
  size_t nvalues;
} hl_snowflake_bind;

/* multi_statement_count for "any number of statements" (the API's 0). */
#define HL_SF_MULTI_ANY (-1)

/* A statement. Only sql is required; the strings are borrowed for the call. */
typedef struct hl_snowflake_stmt {
  const char *sql;
  const hl_snowflake_bind *binds;
  size_t nbinds;
  long timeout_ms;          /* 0: the client's statement timeout */
  const char *query_tag;    /* NULL: none */
  int multi_statement_count;/* 0: a single statement (the parameter is not sent); N: exactly N
                               statements; HL_SF_MULTI_ANY: any number (sent as 0) */
  const char *request_id;   /* NULL: a new UUID v4; set it to make a resubmission idempotent */
  bool async;               /* async=true: the server answers 202 at once */
} hl_snowflake_stmt;

/* How a value of a result column is typed on access. */
typedef enum hl_snowflake_kind {
  HL_SFV_NULL,
  HL_SFV_INT,       /* FIXED with scale 0 that fits int64: i */
  HL_SFV_DOUBLE,    /* REAL, or FIXED with a scale / beyond int64: d */
  HL_SFV_BOOL,      /* BOOLEAN: b */
  HL_SFV_TEXT,      /* TEXT, VARIANT, OBJECT, ARRAY, BINARY (hex): text */
  HL_SFV_DATE,      /* DATE: i = days since 1970-01-01 */
  HL_SFV_TIME,      /* TIME: ns = nanoseconds since midnight */
  HL_SFV_TIMESTAMP, /* TIMESTAMP_*: ns since the epoch (UTC); tz_minutes for _TZ */
} hl_snowflake_kind;

typedef struct hl_snowflake_value {
  hl_snowflake_kind kind;
  const char *text;   /* the value as sent (NULL for NULL); lives as long as the result */
  int64_t i;
  double d;
  bool b;
  int64_t ns;
  int tz_minutes;     /* offset from UTC of a TIMESTAMP_TZ */
} hl_snowflake_value;

typedef struct hl_snowflake_column {
  const char *name;
  const char *type;   /* "FIXED", "TEXT", "VARIANT", "TIMESTAMP_NTZ", ... */
  int64_t precision, scale, length;
  bool nullable;
} hl_snowflake_column;

typedef struct hl_snowflake hl_snowflake;
typedef struct hl_snowflake_result hl_snowflake_result;

/*
 * Fills cfg from a configuration loaded with HL_CONFIG_SNOWFLAKE_VARS in its
 * table; the strings point into src. HL_ECONFIG (message in err) when the
 * account, user or key file is missing.
 */
int hl_snowflake_config_from(const hl_config *src, hl_snowflake_config *cfg, char *err, size_t errlen);

/* Creates a client and loads the key. 0, HL_ECONFIG (message in err), -EINVAL, -ENOMEM. */
int hl_snowflake_new(const hl_snowflake_config *cfg, hl_snowflake **out, char *err, size_t errlen);
/* Frees the client; an attached hl_snowflake_async must be closed first. NULL-safe; returns NULL. */
hl_snowflake *hl_snowflake_free(hl_snowflake *sf);

/*
 * Runs a statement and waits for its whole result (every partition).
 * *out (may be NULL when the result is not wanted) receives the result,
 * owned by the caller. err may be NULL.
 */
int hl_snowflake_exec(hl_snowflake *sf, const hl_snowflake_stmt *st, hl_snowflake_result **out,
                      hl_snowflake_error *err);
/*
 * hl_snowflake_exec with only SQL and TEXT bindings: args holds nargs
 * values (at most 64, -EINVAL beyond; NULL entries bind NULL; args may be
 * NULL when nargs is 0).
 */
int hl_snowflake_query(hl_snowflake *sf, const char *sql, const char *const *args, size_t nargs,
                       hl_snowflake_result **out, hl_snowflake_error *err);
/*
 * The result of a statement by handle (GET /api/v2/statements/{handle},
 * polled while running, every partition): a statement of a multi-statement
 * request (hl_snowflake_result_children), or one submitted earlier. out and
 * err may be NULL.
 */
int hl_snowflake_fetch(hl_snowflake *sf, const char *handle, hl_snowflake_result **out, hl_snowflake_error *err);
/* Cancels a statement by handle (POST /api/v2/statements/{handle}/cancel). err may be NULL. */
int hl_snowflake_cancel(hl_snowflake *sf, const char *handle, hl_snowflake_error *err);

/*
 * Registers the client's metrics in reg (which must outlive sf) and counts
 * from then on (docs/snowflake.md, "Metrics"): requests by endpoint and
 * status, retries by reason, statement durations by outcome, streamed
 * bytes. 0 or -ENOMEM.
 */
int hl_snowflake_set_metrics(hl_snowflake *sf, hl_metrics *reg);

/* ---- Results (accessors accept NULL: 0 or NULL) ---- */

size_t hl_snowflake_result_rows(const hl_snowflake_result *r);
size_t hl_snowflake_result_cols(const hl_snowflake_result *r);
/* Column col (< cols), or NULL. */
const hl_snowflake_column *hl_snowflake_result_column(const hl_snowflake_result *r, size_t col);
/* Index of the column named name (case-insensitive), or -1. */
int hl_snowflake_result_find(const hl_snowflake_result *r, const char *name);
/* The raw string of a cell (NULL for SQL NULL or out of range). */
const char *hl_snowflake_result_str(const hl_snowflake_result *r, size_t row, size_t col);
/*
 * The cell typed by its column's rowType. 0, -ERANGE (no such cell) or
 * HL_EPARSE (the string does not read as its type; out->text still set).
 */
int hl_snowflake_result_value(const hl_snowflake_result *r, size_t row, size_t col,
                              hl_snowflake_value *out);
/* statementHandle of the result. */
const char *hl_snowflake_result_handle(const hl_snowflake_result *r);
/* stats.numRowsInserted / Updated / Deleted (0 when absent). */
int64_t hl_snowflake_result_inserted(const hl_snowflake_result *r);
int64_t hl_snowflake_result_updated(const hl_snowflake_result *r);
int64_t hl_snowflake_result_deleted(const hl_snowflake_result *r);
/* Number of partitions the server announced (1 when partitionInfo is absent). */
size_t hl_snowflake_result_partitions(const hl_snowflake_result *r);
/* Handles of the statements of a multi-statement request (statementHandles), or 0. */
size_t hl_snowflake_result_children(const hl_snowflake_result *r, const char *const **handles);
hl_snowflake_result *hl_snowflake_result_free(hl_snowflake_result *r);

/*
 * The result reader, public for tests and fuzzing: parses the body of a
 * 200 answer (partition 0) into a new result. max_bytes caps the data kept
 * (0: 256 MiB). 0, HL_EPARSE, HL_ELIMIT or -ENOMEM.
 */
int hl_snowflake_result_parse(const char *json, size_t len, long long max_bytes,
                              hl_snowflake_result **out);
/* Adds the rows of a later partition's body (only "data" is read). */
int hl_snowflake_result_add_partition(hl_snowflake_result *r, const char *json, size_t len);
/* Types a raw cell string by a column description (what result_value does). */
int hl_snowflake_value_parse(const hl_snowflake_column *col, const char *text, hl_snowflake_value *out);

/* ---- Asynchronous use on a libuv loop ---- */

typedef struct hl_snowflake_async hl_snowflake_async;

/*
 * Called once per hl_snowflake_async_exec on the loop's thread with the
 * outcome: rc 0 and the result (owned by the callee: free it), or rc < 0,
 * res NULL and err describing it. -ECANCELED when the async was closed.
 */
typedef void (*hl_snowflake_done_fn)(void *ud, int rc, hl_snowflake_result *res,
                                     const hl_snowflake_error *err);

/* Drives sf's statements on loop (curl multi on uv_poll/uv_timer). 0 or -ENOMEM. */
int hl_snowflake_async_new(hl_snowflake *sf, uv_loop_t *loop, hl_snowflake_async **out);
/*
 * Starts a statement; st and its strings are copied. On failure (-EINVAL,
 * -ENOMEM, HL_ECLOSED) returns the error and cb is never called.
 */
int hl_snowflake_async_exec(hl_snowflake_async *a, const hl_snowflake_stmt *st, hl_snowflake_done_fn cb,
                            void *ud);
/*
 * Cancels the pending statements started with user data ud (a request
 * whose client went away): one the server already runs is cancelled there
 * (POST .../cancel) first. Each callback still runs once, with -ECANCELED.
 * Returns how many statements were cancelled.
 */
int hl_snowflake_async_cancel(hl_snowflake_async *a, void *ud);
/* Statements started and not yet completed. */
size_t hl_snowflake_async_pending(const hl_snowflake_async *a);
/*
 * Completes every pending statement with -ECANCELED, closes the loop
 * handles and frees a; closed(ud) (may be NULL) runs once that is done.
 */
void hl_snowflake_async_close(hl_snowflake_async *a, void (*closed)(void *ud), void *ud);

/* ---- Snowpipe Streaming (REST, high-performance architecture) ---- */

typedef struct hl_snowflake_channel hl_snowflake_channel;

/*
 * Opens (or reopens) channel on database.schema.pipe; the default pipe of a
 * table T is "T-STREAMING". Reopening bumps the channel's sequencer: an
 * earlier handle of the same channel is then refused by the server. The
 * first call discovers the ingest host (GET /v2/streaming/hostname) and a
 * scoped token (POST /oauth/token). db/schema NULL: the client's.
 */
int hl_snowflake_channel_open(hl_snowflake *sf, const char *db, const char *schema, const char *pipe,
                              const char *channel, hl_snowflake_channel **out, hl_snowflake_error *err);
/* The last committed offset token reported at open (or by the last status), NULL if none. */
const char *hl_snowflake_channel_committed(const hl_snowflake_channel *ch);
/*
 * Appends NDJSON rows (one JSON object per line, at most 16 MB, sent
 * gzip-compressed when gzip is true) with offset_token (may be NULL) as
 * the position of the last row. Not retried after a transport error: the
 * rows may or may not have been taken, so the caller reopens the channel
 * and resumes after the committed offset token.
 */
int hl_snowflake_channel_append(hl_snowflake_channel *ch, const char *ndjson, size_t len,
                                const char *offset_token, bool gzip, hl_snowflake_error *err);
/* Refreshes the committed offset token (bulk-channel-status for this channel). */
int hl_snowflake_channel_status(hl_snowflake_channel *ch, hl_snowflake_error *err);
hl_snowflake_channel *hl_snowflake_channel_free(hl_snowflake_channel *ch);

/* ---- Key-pair JWT, public for tests ---- */

/* "ACCOUNT.USER" as Snowflake wants it in sub: upper-cased, region suffix dropped. */
int hl_snowflake_qualified_user(const char *account, const char *user, char *out, size_t outlen);
/* "SHA256:<base64 of the SHA-256 of the DER public key>" of sf's key. */
const char *hl_snowflake_fingerprint(const hl_snowflake *sf);
/* Mints a JWT issued at now, valid lifetime_s; *out is malloc'ed. */
int hl_snowflake_jwt_at(hl_snowflake *sf, time_t now, long lifetime_s, char **out);
/*
 * The current token, minted or renewed as needed: renewed two minutes (or
 * a quarter of a short lifetime) before it expires. Valid until the next
 * call. hl_snowflake_token_at takes the time (tests); NULL if signing fails
 * and no token exists yet.
 */
const char *hl_snowflake_token(hl_snowflake *sf);
const char *hl_snowflake_token_at(hl_snowflake *sf, time_t now);

/* One line for logs: "422 002003/42S02: SQL compilation error ...". */
const char *hl_snowflake_error_str(const hl_snowflake_error *err, char *out, size_t outlen);
/* True when a failed call may succeed later unchanged (429/5xx/transport/timeouts). */
bool hl_snowflake_error_retriable(int rc, const hl_snowflake_error *err);

#endif
