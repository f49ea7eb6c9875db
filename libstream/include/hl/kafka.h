/*
 * The Kafka layer: an idempotent producer with per-input delivery tickets,
 * a group consumer with manual offset storing, header and dead-letter
 * helpers, and the HL_KAFKA_* configuration shared by every worker.
 *
 * Threading: librdkafka callbacks (delivery reports, rebalances, errors,
 * statistics) run in the thread that calls hl_producer_poll/flush or
 * hl_consumer_poll. A worker calls both from its one loop thread, so tickets
 * and hooks need no locks. Only the readiness functions are meant to be
 * called from other threads (an admin server); they read atomics.
 *
 * Offsets: the consumer runs with enable.auto.commit=true and
 * enable.auto.offset.store=false; nothing is committed until the caller
 * stores an offset with hl_consumer_store(), which a worker does only when
 * an input and everything produced for it are acknowledged. A group with no
 * committed offset starts at the earliest offset; a committed offset that is
 * out of range is an error (auto.offset.reset=error), never a silent skip.
 */
#ifndef HL_KAFKA_H
#define HL_KAFKA_H

#include <librdkafka/rdkafka.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hl/config.h"
#include "hl/metrics.h"

/* Header names carried by every Healthlake message. */
#define HL_HDR_ORG "hl-org"
#define HL_HDR_JOB "hl-job"
#define HL_HDR_SOURCE "hl-source"
#define HL_HDR_LINE "hl-line"
#define HL_HDR_INGESTED_AT "hl-ingested-at"
/* Extra headers on hl.dlq. */
#define HL_HDR_ERROR_STAGE "hl-error-stage"
#define HL_HDR_ERROR_CODE "hl-error-code"
#define HL_HDR_ERROR_DETAIL "hl-error-detail"
#define HL_HDR_SOURCE_TOPIC "hl-source-topic"
#define HL_HDR_SOURCE_PARTITION "hl-source-partition"
#define HL_HDR_SOURCE_OFFSET "hl-source-offset"

/* Longest hl-error-detail header written; longer details are truncated. */
#define HL_KAFKA_DETAIL_MAX 8192

/* The Kafka variables of every worker; default_group is the binary's group id. */
#define HL_CONFIG_KAFKA_VARS(default_group)                                             \
  {"HL_KAFKA_BROKERS", HL_CFG_STRING, "127.0.0.1:9092", 1, 1024, NULL,                  \
   "Comma-separated host:port list of bootstrap brokers."},                             \
  {"HL_KAFKA_GROUP", HL_CFG_STRING, default_group, 1, 255, NULL,                        \
   "Consumer group id; every replica of a worker shares it."},                          \
  {"HL_KAFKA_CLIENT_ID", HL_CFG_STRING, "", 0, 255, NULL,                               \
   "client.id sent to the brokers; empty uses the group id."},                          \
  {"HL_KAFKA_DLQ_TOPIC", HL_CFG_STRING, "hl.dlq", 1, 249, NULL,                         \
   "Dead-letter topic for inputs that cannot be processed."},                           \
  {"HL_KAFKA_STATS_INTERVAL", HL_CFG_DURATION, "10s", 0, 3600000, NULL,                 \
   "How often librdkafka statistics (consumer lag, broker state) are refreshed; 0 "     \
   "disables them."},                                                                   \
  {"HL_KAFKA_PROPS", HL_CFG_STRING, "", 0, 8192, NULL,                                  \
   "Extra librdkafka properties as k=v,k=v (write \\, for a comma in a value); "        \
   "applied to both producer and consumer after the defaults."}

/* Options of a producer or consumer; strings are borrowed for the call. */
typedef struct hl_kafka_opts {
  const char *brokers;       /* bootstrap.servers; required */
  const char *group;         /* group.id; required for a consumer */
  const char *client_id;     /* NULL or "": the group id, or "healthlake" */
  const char *dlq_topic;     /* NULL: "hl.dlq" */
  const char *props;         /* extra "k=v,k=v" properties, may be NULL */
  long long stats_interval_ms; /* statistics.interval.ms; 0 disables */
  hl_metrics *metrics;       /* registry for the kafka metrics; may be NULL */
} hl_kafka_opts;

/* Fills opts from the HL_CONFIG_KAFKA_VARS of cfg (strings point into cfg). */
void hl_kafka_opts_from_config(const hl_config *cfg, hl_kafka_opts *opts);

/*
 * Applies "k=v,k=v" to conf. A backslash escapes the next character (so
 * "\," is a comma inside a value). 0 or HL_ECONFIG with a message in err.
 */
int hl_kafka_props_apply(rd_kafka_conf_t *conf, const char *props, char *err, size_t errlen);

/* Checks that opts would build a producer and a consumer: 0 or HL_ECONFIG. */
int hl_kafka_opts_check(const hl_kafka_opts *opts, char *err, size_t errlen);

/* How an error should be handled. */
typedef enum hl_kafka_errclass {
  HL_KAFKA_OK = 0,
  HL_KAFKA_RETRIABLE = 1, /* transient: try again later */
  HL_KAFKA_FATAL = 2,     /* the client (or the input) cannot go on */
} hl_kafka_errclass;

/* Classifies a response code (errors the broker or client may clear are retriable). */
hl_kafka_errclass hl_kafka_classify(rd_kafka_resp_err_t err);

/* Maps a librdkafka error to 0 / HL_EKAFKA / HL_EFATAL / HL_ETIMEOUT / HL_EOFFSET. */
int hl_kafka_error(rd_kafka_resp_err_t err);

/* ---- Messages and headers ------------------------------------------------ */

/*
 * A consumed message as a processor sees it. Pointers are borrowed from rkm
 * and valid only during the processing callback.
 */
typedef struct hl_kafka_msg {
  rd_kafka_message_t *rkm;
  const char *topic;
  int32_t partition;
  int64_t offset;
  int64_t timestamp_ms; /* message timestamp, -1 if none */
  const void *key;      /* may be NULL */
  size_t key_len;
  const void *value;    /* may be NULL (tombstone) */
  size_t len;
  void *priv;           /* owned by the worker */
} hl_kafka_msg;

/* Fills m from rkm (priv is cleared). */
void hl_kafka_msg_init(hl_kafka_msg *m, rd_kafka_message_t *rkm);

/*
 * Finds the last header called name. On success *val points into the
 * headers (not NUL-terminated) and *len is its size. 0 or HL_ENOTFOUND.
 */
int hl_kafka_header_view(const rd_kafka_headers_t *hdrs, const char *name, const void **val,
                         size_t *len);

/*
 * Copies the last header called name of rkm into buf as a NUL-terminated
 * string. Returns its length, HL_ENOTFOUND, or HL_ELIMIT when it does not
 * fit in buflen (buf then holds a truncated copy).
 */
int hl_kafka_header_get(const rd_kafka_message_t *rkm, const char *name, char *buf,
                        size_t buflen);

/* A header looked up by name: val points into the message's headers (not NUL-terminated). */
typedef struct hl_kafka_hview {
  const char *name; /* set by the caller */
  const void *val;  /* NULL when absent ("" for a header without a value) */
  size_t len;
} hl_kafka_hview;

/*
 * Looks up n headers of rkm in one pass over them (the last header of a
 * name wins, as hl_kafka_header_get), for per-message hot paths that need
 * several. Views stay valid while rkm lives. Returns how many were found.
 */
int hl_kafka_header_views(const rd_kafka_message_t *rkm, hl_kafka_hview *views, size_t n);

/* Replaces every header called name by one with the string value. 0 or HL_EKAFKA. */
int hl_kafka_header_set(rd_kafka_headers_t *hdrs, const char *name, const char *value);

/* ---- Producer ------------------------------------------------------------- */

/*
 * Delivery tracking for everything produced on behalf of one input. The
 * caller owns the ticket and keeps it alive (and unmoved) until pending is 0.
 * pending counts messages produced and not yet reported; err keeps the first
 * delivery error. Set pending to 1 while still producing (a guard) and drop
 * the guard with hl_kafka_ticket_release(), so the ticket cannot complete
 * half-way.
 */
typedef struct hl_kafka_ticket {
  uint32_t pending;
  rd_kafka_resp_err_t err;
} hl_kafka_ticket;

typedef struct hl_producer hl_producer;

/*
 * Called (in the polling thread) whenever a ticket's pending count drops to
 * zero, from delivery reports or hl_kafka_ticket_release().
 */
typedef void hl_ticket_done_fn(void *ud, hl_kafka_ticket *t);

/*
 * Creates an idempotent producer (enable.idempotence=true, acks=all,
 * linger.ms=5) with delivery reports. done may be NULL. err may be NULL.
 * 0, HL_ECONFIG or HL_EKAFKA.
 */
int hl_producer_new(const hl_kafka_opts *opts, hl_ticket_done_fn *done, void *ud,
                    hl_producer **out, char *err, size_t errlen);
/* Destroys the producer without waiting; undelivered messages are purged. */
hl_producer *hl_producer_free(hl_producer *p);
rd_kafka_t *hl_producer_handle(hl_producer *p);

/* One output message. key and value are copied; headers are taken on success. */
typedef struct hl_kafka_out {
  const char *topic;
  const void *key;
  size_t key_len;
  const void *value;
  size_t len;
  rd_kafka_headers_t *headers; /* may be NULL; owned by the producer on success */
  /*
   * The value is not copied: it must stay valid and unchanged until the
   * message's delivery report has been served (hl_worker_forward uses it).
   */
  bool borrowed;
} hl_kafka_out;

/*
 * Enqueues m; its delivery report updates ticket (which may be NULL). When
 * the local queue is full it serves delivery reports and retries for up to
 * enqueue_timeout_ms. Returns 0, HL_ETIMEOUT (still full), HL_EFATAL (the
 * producer hit a fatal error) or HL_EKAFKA (this message can never be sent,
 * e.g. too large). On failure nothing was enqueued and headers stay the
 * caller's.
 */
int hl_producer_send(hl_producer *p, const hl_kafka_out *m, hl_kafka_ticket *ticket,
                     int enqueue_timeout_ms);

/* Drops the guard of a ticket (see hl_kafka_ticket); may complete it. */
void hl_kafka_ticket_release(hl_producer *p, hl_kafka_ticket *t);

/* Serves delivery reports for up to timeout_ms; returns how many were served. */
int hl_producer_poll(hl_producer *p, int timeout_ms);
/* Waits until every message is acknowledged. 0 or HL_ETIMEOUT. */
int hl_producer_flush(hl_producer *p, int timeout_ms);
/* Messages produced and not yet acknowledged. */
int hl_producer_outq_len(hl_producer *p);
/* Drops every queued and in-flight message (their reports fail with _PURGE_*). */
void hl_producer_purge(hl_producer *p);
/* True when the producer hit a fatal error; writes it to reason (may be NULL). */
bool hl_producer_fatal(hl_producer *p, char *reason, size_t len);

/*
 * Writes the original key and value of msg unchanged to the dead-letter
 * topic, with its headers plus hl-error-stage, hl-error-code,
 * hl-error-detail (an OperationOutcome JSON built from detail, a
 * human-readable diagnostic) and hl-source-topic/partition/offset.
 * Same returns as hl_producer_send.
 */
int hl_kafka_dlq(hl_producer *p, const rd_kafka_message_t *msg, const char *stage, const char *code,
                 const char *detail, hl_kafka_ticket *ticket);
/* As hl_kafka_dlq with a ready OperationOutcome JSON as hl-error-detail. */
int hl_kafka_dlq_outcome(hl_producer *p, const rd_kafka_message_t *msg, const char *stage,
                         const char *code, const char *outcome_json, hl_kafka_ticket *ticket);
/*
 * Appends an OperationOutcome with one error issue (FHIR issue type
 * issue_type, e.g. "processing"; details.coding = our code; diagnostics =
 * detail) to out as compact JSON. 0 or HL_ELIMIT/-ENOMEM.
 */
int hl_kafka_outcome_json(hl_buf *out, const char *issue_type, const char *code,
                          const char *detail);

/* ---- Consumer ------------------------------------------------------------- */

typedef struct hl_consumer hl_consumer;
typedef struct hl_lag hl_lag;

/* Called by the consumer from its polling thread. Every member may be NULL. */
typedef struct hl_consumer_hooks {
  void *ud;
  /* After partitions were added to the assignment. */
  void (*assigned)(void *ud, const rd_kafka_topic_partition_list_t *parts);
  /*
   * Before partitions leave the assignment. The hook finishes (or abandons)
   * work on them and stores the offsets of what is done; then the consumer
   * commits stored offsets (unless lost) and unassigns. lost is true when
   * the group already gave them to someone else (nothing may be committed).
   */
  void (*revoking)(void *ud, const rd_kafka_topic_partition_list_t *parts, bool lost);
} hl_consumer_hooks;

/*
 * Creates a group consumer (cooperative-sticky, manual offset store,
 * auto.offset.reset=error). hooks may be NULL. 0, HL_ECONFIG or HL_EKAFKA.
 */
int hl_consumer_new(const hl_kafka_opts *opts, const hl_consumer_hooks *hooks, hl_consumer **out,
                    char *err, size_t errlen);
/* Closes the consumer if needed and destroys it. */
hl_consumer *hl_consumer_free(hl_consumer *c);
rd_kafka_t *hl_consumer_handle(hl_consumer *c);
/* The lag tracker fed by this consumer's statistics (NULL without metrics). */
hl_lag *hl_consumer_lag(hl_consumer *c);

/* Subscribes to n topics. 0 or HL_EKAFKA. */
int hl_consumer_subscribe(hl_consumer *c, const char *const *topics, size_t n);

/*
 * Returns the next message (the caller destroys it with
 * rd_kafka_message_destroy) or NULL after timeout_ms. Error events are
 * handled here and never returned: partition EOF is ignored, an
 * out-of-range offset is logged once per partition, counted in
 * hl_kafka_offset_out_of_range_total and makes the consumer not ready, a
 * fatal error is remembered (see hl_consumer_fatal), others are logged.
 * Rebalance hooks run inside this call.
 */
rd_kafka_message_t *hl_consumer_poll(hl_consumer *c, int timeout_ms);

/*
 * Stores next_offset (the offset of the next message to read, i.e. last
 * done + 1) for commit. rkt may come from a consumed message. 0 or HL_EKAFKA
 * (e.g. the partition is no longer assigned).
 */
int hl_consumer_store(hl_consumer *c, rd_kafka_topic_t *rkt, int32_t partition,
                      int64_t next_offset);
/* Commits the stored offsets synchronously. 0 (also when nothing to commit) or HL_EKAFKA. */
int hl_consumer_commit(hl_consumer *c);
/*
 * As hl_consumer_commit, waiting at most timeout_ms for the result: 0,
 * HL_EKAFKA, or HL_ETIMEOUT when no answer came in time (e.g. no broker).
 * The commit may still complete later; what it does not commit is simply
 * delivered again to the next owner of the partitions.
 */
int hl_consumer_commit_within(hl_consumer *c, long long timeout_ms);
/*
 * Pauses (true) or resumes (false) every assigned partition, and every
 * partition assigned later until the next call. 0 or HL_EKAFKA.
 */
int hl_consumer_pause(hl_consumer *c, bool pause);
/* Leaves the group (the revoking hook runs) and closes. Idempotent. */
int hl_consumer_close(hl_consumer *c);
/*
 * As hl_consumer_close, but gives up after timeout_ms (negative: no limit).
 * The revoking hook still runs while the group answers; its offset commit
 * is started, not awaited. When the deadline passes (e.g. the brokers are
 * gone) it returns HL_ETIMEOUT and the consumer counts as closed:
 * hl_consumer_free then frees it without leaving the group, and offsets
 * not committed are delivered again to the next member (at-least-once).
 * librdkafka cannot destroy such a client without a coordinator, so its
 * handle and threads are left to the process's exit: call this at
 * shutdown, not in a loop.
 * 0, HL_ETIMEOUT, HL_EKAFKA or HL_EFATAL. Idempotent.
 */
int hl_consumer_close_within(hl_consumer *c, long long timeout_ms);

/*
 * Readiness: false (with a reason) until the group has assigned partitions
 * to this member at least once, while no broker is reachable, after a fatal
 * error, and after an out-of-range offset. Thread-safe.
 */
bool hl_consumer_ready(hl_consumer *c, char *reason, size_t len);
bool hl_consumer_fatal(hl_consumer *c, char *reason, size_t len);
/* Number of out-of-range events seen. */
long hl_consumer_out_of_range(hl_consumer *c);
/* Number of rebalance callbacks served (assign, revoke or lost). */
long hl_consumer_rebalances(hl_consumer *c);

/*
 * Sets glibc's malloc thresholds for a process that consumes a high-volume
 * topic (call first in main): librdkafka's fetch buffers are megabytes each
 * and come and go all the time; with glibc's defaults each one above the
 * moving mmap threshold is a fresh mapping and freed heap tops go back to
 * the system, so every page is faulted in and zeroed again. A fixed 32 MiB
 * mmap threshold and a 256 MiB trim threshold keep them in the heap
 * (hl-validator: ~45% fewer page faults, ~5% less CPU; hl-loader ~4%).
 * It also turns glibc's fastbins off (M_MXFAST 0): every message frees a
 * handful of small chunks (its parsed headers) and allocates one of ~1 KiB
 * (a message copy), and each such allocation with small chunks sitting in
 * the fastbins first consolidated all of them (malloc_consolidate and
 * unlink_chunk were ~20% of hl-parser's main thread). Freed small chunks now
 * go to the thread cache or are merged as they are freed (bench/pipeline:
 * hl-validator 2.4-2.5 CPU s against 2.7-2.8).
 */
void hl_kafka_tune_malloc(void);

#endif
