/*
 * Internals shared by the Snowflake client's files: the statement state
 * machine (snowflake.c) that both drivers run, the blocking driver
 * (snowflake.c) and the libuv driver (snowflake_async.c).
 */
#ifndef HL_SNOWFLAKE_INTERNAL_H
#define HL_SNOWFLAKE_INTERNAL_H

#include <curl/curl.h>
#include <stdint.h>
#include <time.h>

#include "hl/buf.h"
#include "hl/snowflake.h"

/* Caps on what the server sends outside a result. */
#define HL__SF_MAX_ERROR_BODY (256 * 1024)
#define HL__SF_MAX_SQL (1024 * 1024)
#define HL__SF_MAX_BODY (16 * 1024 * 1024)

/* What the state machine wants next. */
typedef enum hl__sf_next {
  HL__SF_SEND,  /* send the next request after delay_ms */
  HL__SF_DONE,  /* finished: rc, res and err are final */
} hl__sf_next;

typedef enum hl__sf_phase {
  HL__SF_SUBMIT,
  HL__SF_POLL,
  HL__SF_FETCH,
  HL__SF_CANCEL,
} hl__sf_phase;

/* One statement in flight, whichever driver runs it. */
typedef struct hl__sf_op {
  hl_snowflake *sf;
  CURL *easy;
  struct curl_slist *headers;
  char request_id[40];
  char *submit_body;       /* the JSON body of POST /api/v2/statements */
  bool async;              /* async=true on submission */
  hl__sf_phase phase;
  bool resubmit;           /* the next submission carries retry=true */
  char handle[64];
  size_t partition;        /* next partition to fetch */
  int retries;             /* retries of the current step */
  bool refreshed;          /* a 401 already minted a new token */
  uint64_t deadline_ms;    /* client deadline (monotonic ms) */
  long poll_ms;            /* current poll interval */
  int cancel_rc;           /* what to report once the cancel is answered */
  hl_buf resp;             /* body of the current answer */
  bool overflow;           /* the answer went past the cap */
  long retry_after_ms;     /* Retry-After of the current answer, -1 if none */
  char url[2048];
  hl_snowflake_result *res;
  hl_snowflake_error err;
  int rc;
  long delay_ms;           /* with HL__SF_SEND */
  uint64_t started_ms;     /* for the duration metric */
} hl__sf_op;

/* Prepares op from a statement (copies what it needs). 0, -EINVAL or -ENOMEM. */
int hl__sf_op_init(hl__sf_op *op, hl_snowflake *sf, const hl_snowflake_stmt *st);
void hl__sf_op_clear(hl__sf_op *op);
/* Configures op->easy (created if needed) for the request of the current phase. */
int hl__sf_op_prepare(hl__sf_op *op);
/* Feeds the outcome of the request just made; returns what comes next. */
hl__sf_next hl__sf_op_step(hl__sf_op *op, CURLcode cc);

uint64_t hl__sf_now_ms(void);

/* What Snowpipe Streaming keeps per client (snowflake_stream.c). */
typedef struct hl__sf_stream_state {
  char *ingest_url;     /* scheme://hostname of the ingest host */
  char *scoped_token;   /* from POST /oauth/token */
  time_t scoped_exp;    /* renew after this */
} hl__sf_stream_state;
hl__sf_stream_state *hl__sf_stream(hl_snowflake *sf);

/* Accessors of the client for the module's other files. */
const char *hl__sf_url(const hl_snowflake *sf);
const char *hl__sf_user_agent(const hl_snowflake *sf);
const char *hl__sf_database(const hl_snowflake *sf);
const char *hl__sf_schema(const hl_snowflake *sf);
long hl__sf_request_timeout(const hl_snowflake *sf);
long long hl__sf_max_result(const hl_snowflake *sf);
int hl__sf_max_retries(const hl_snowflake *sf);
int hl__sf_max_connections(const hl_snowflake *sf);
/* Full-jitter backoff before retry number retry (0-based), at least retry_after_ms. */
long hl__sf_backoff(hl_snowflake *sf, int retry, long retry_after_ms);
/* Forces a new JWT at the next request (after a 401). */
void hl__sf_token_invalidate(hl_snowflake *sf);
/*
 * Metrics (no-ops until hl_snowflake_set_metrics): one answer of endpoint
 * (status 0: transport error), one retry for reason, one statement's
 * duration, streamed bytes.
 */
void hl__sf_count(hl_snowflake *sf, const char *endpoint, long status);
void hl__sf_retry(hl_snowflake *sf, const char *reason);
void hl__sf_duration(hl_snowflake *sf, bool ok, double seconds);
void hl__sf_bytes(hl_snowflake *sf, size_t n);
/* A random UUID v4. */
int hl__sf_uuid(hl_snowflake *sf, char out[37]);
void hl__sf_sleep_ms(long ms);

/*
 * Common options of every request: URL, Authorization with token (NULL:
 * the client's JWT) of token_type ("KEYPAIR_JWT" or "OAUTH"), Accept,
 * User-Agent, Content-Type when content_type is not NULL, the extra header
 * lines (NULL-terminated, may be NULL), timeouts. *headers is replaced.
 */
int hl__sf_easy_setup(hl_snowflake *sf, CURL *c, struct curl_slist **headers, const char *url,
                      const char *token, const char *token_type, const char *content_type,
                      const char *const *extra);

#endif
