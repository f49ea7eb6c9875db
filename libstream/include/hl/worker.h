/*
 * The worker run loop: consume -> process -> produce -> commit.
 *
 * A worker owns a group consumer and an idempotent producer (hl/kafka.h)
 * and drives a processor: callbacks that turn one input message (or a
 * batch) into zero or more output messages and/or dead letters. An input's
 * offset is stored for commit only when the processor is done with it AND
 * everything produced for it is acknowledged AND every earlier input of the
 * same partition is done too. Delivery is therefore at-least-once: after a
 * crash the uncommitted inputs are processed again.
 *
 * Backpressure: at most max_inflight inputs (and about max_inflight_bytes
 * of input bytes) are held between consume and done; over either bound the
 * worker holds: it stops taking input and only serves delivery reports
 * until it is back under three quarters of the bound. A hold longer than
 * pause_after_ms also pauses the partitions (then group events are served
 * every 100 ms): librdkafka drops what it prefetched for a paused partition
 * and fetches it again on resume, so short holds leave the partitions be.
 *
 * Shutdown (hl_worker_stop, e.g. from SIGTERM/SIGINT): stop consuming,
 * finish the inputs in hand, wait for the producer until the drain
 * deadline, store and commit the offsets of what is done, close the
 * consumer (leaving the group), then drop what is still undelivered (it is
 * not committed, so it is processed again by the next owner). The final
 * commit and the close are bounded by close_timeout_ms: with no broker to
 * answer, the consumer is destroyed without waiting any longer.
 */
#ifndef HL_WORKER_H
#define HL_WORKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hl/config.h"
#include "hl/kafka.h"
#include "hl/metrics.h"

/* The variables of the run loop, spliced into a worker's table. */
#define HL_CONFIG_WORKER_VARS                                                           \
  {"HL_DRAIN_TIMEOUT", HL_CFG_DURATION, "30s", 0, 3600000, NULL,                        \
   "On SIGTERM/SIGINT, time allowed to finish in-flight work, flush and commit."},      \
  {"HL_WORKER_BATCH_MAX", HL_CFG_INT, "500", 1, 100000, NULL,                           \
   "Most input messages handed to the processor at once."},                             \
  {"HL_WORKER_BATCH_WAIT", HL_CFG_DURATION, "5ms", 0, 60000, NULL,                      \
   "Longest wait for more input to fill a batch once one message is in hand."},         \
  {"HL_WORKER_MAX_INFLIGHT", HL_CFG_INT, "100000", 1, 10000000, NULL,                    \
   "Most input messages consumed and not yet done (backpressure bound)."},              \
  {"HL_WORKER_MAX_INFLIGHT_BYTES", HL_CFG_SIZE, "128MiB", 1024, 68719476736LL, NULL,     \
   "Most input bytes consumed and not yet done (backpressure bound)."},                 \
  {"HL_WORKER_RETRY_TIMEOUT", HL_CFG_DURATION, "60s", 0, 3600000, NULL,                 \
   "How long an input whose processing fails with a retriable error is retried "        \
   "before the worker stops with a fatal error."},                                      \
  {"HL_WORKER_CLOSE_TIMEOUT", HL_CFG_DURATION, "10s", 1, 600000, NULL,                  \
   "After the drain, time allowed for the final offset commit and leaving the group; "  \
   "past it the consumer is destroyed without waiting (uncommitted inputs are "         \
   "delivered again) and the process exits with status 3."}

/* What a processor made of an input. */
typedef enum hl_proc_result {
  HL_PROC_OK = 0,        /* done; its outputs (if any) were produced */
  HL_PROC_RETRY = 1,     /* transient failure: process it again after a backoff */
  HL_PROC_BAD_INPUT = 2, /* it can never be processed: it goes to the dead-letter topic */
  HL_PROC_FATAL = 3,     /* stop the worker; the input is not committed */
  HL_PROC_DEFER = 4,     /* the processor keeps it and finishes it later (hl_worker_complete) */
} hl_proc_result;

typedef struct hl_worker hl_worker;

/*
 * A processor. Set process, or process_batch, or both (then batches are
 * used). Callbacks run in the worker's thread; msg pointers are valid only
 * during the call. Outputs are produced with hl_worker_produce /
 * hl_worker_forward / hl_worker_reject, naming the input they belong to.
 * A retried input may have produced outputs in the failed attempt; they
 * are not taken back (sinks are idempotent).
 *
 * Deferred inputs (a processor that finishes work in another thread, e.g.
 * hl-loader's warehouse writer): a result of HL_PROC_DEFER keeps the input
 * open. The processor keeps a copy of the hl_kafka_msg (it stays valid,
 * rkm included, until completed) and later calls hl_worker_complete() from
 * the worker's thread, typically from its poll hook. Until then nothing at
 * or after the input's offset is stored for its partition. Every deferred
 * input must be completed before hl_worker_run returns: the worker calls
 * flush when it drains (and before partitions are revoked).
 */
typedef struct hl_processor {
  const char *stage; /* hl-error-stage of dead letters, e.g. "parser" */
  void *ud;
  hl_proc_result (*process)(void *ud, hl_worker *w, hl_kafka_msg *msg);
  /* Fills results[i] for msgs[i], 0 <= i < n. */
  void (*process_batch)(void *ud, hl_worker *w, hl_kafka_msg *msgs, size_t n,
                        hl_proc_result *results);
  /*
   * Optional, for processors that defer: called in the worker's thread on
   * every turn of the loop (at least every 100 ms, and soon after
   * hl_worker_wake) to complete the deferred inputs that are finished.
   */
  void (*poll)(void *ud, hl_worker *w);
  /*
   * Optional, for processors that defer: finish every deferred input within
   * timeout_ms and complete it; what cannot be finished in time is
   * completed with HL_PROC_RETRY (given up, not committed). With abort
   * (after a fatal error) no new work may start: only what is already
   * running is waited for. Called at drain and before a revocation.
   */
  void (*flush)(void *ud, hl_worker *w, long long timeout_ms, bool abort);
} hl_processor;

typedef struct hl_worker_opts {
  hl_kafka_opts kafka;         /* kafka.metrics is also the worker's registry (may be NULL) */
  const char *const *topics;   /* input topics (copied) */
  size_t ntopics;
  size_t batch_max;            /* 0: 500 */
  long long batch_wait_ms;
  size_t max_inflight;         /* 0: 100000 */
  size_t max_inflight_bytes;   /* 0: 128 MiB */
  long long drain_timeout_ms;
  long long retry_timeout_ms;
  long long close_timeout_ms;  /* final commit + leaving the group; 0: 10 s */
  long long pause_after_ms;    /* a hold this long pauses the partitions; 0: 2 s */
  /*
   * The downstream bound (hl/downstream.h): while downstream_group is more
   * than max_downstream_lag messages behind on downstream_topic (the
   * worker's output), or one partition more than its share or than
   * max_downstream_partition_bytes (0: 2 MiB) by the inputs' mean size,
   * consumption is held as under the in-flight bound. NULL or "" group:
   * no bound.
   */
  const char *downstream_group;
  const char *downstream_topic;
  long long max_downstream_lag;
  long long max_downstream_partition_bytes;
} hl_worker_opts;

/* Fills opts from HL_CONFIG_KAFKA_VARS and HL_CONFIG_WORKER_VARS (topics stay empty). */
void hl_worker_opts_from_config(const hl_config *cfg, hl_worker_opts *opts);

/*
 * Creates a worker (its producer and consumer). proc is copied; proc->ud
 * stays the caller's. 0, HL_ECONFIG or HL_EKAFKA with a message in err
 * (may be NULL).
 */
int hl_worker_new(const hl_worker_opts *opts, const hl_processor *proc, hl_worker **out,
                  char *err, size_t errlen);
hl_worker *hl_worker_free(hl_worker *w);

/*
 * Runs until hl_worker_stop() or a fatal error, then drains (see above).
 * Returns 0 after a clean stop, HL_EFATAL after a fatal error (logged
 * once), HL_ETIMEOUT when the drain deadline passed with work left or the
 * final commit and group leave did not finish within close_timeout_ms
 * (e.g. the brokers are gone: the consumer is then destroyed without
 * waiting, and what was not committed is delivered again).
 * A worker runs once.
 */
int hl_worker_run(hl_worker *w);

/* Process exit statuses of workers (documented in docs/operations). */
#define HL_EXIT_OK 0       /* stopped cleanly: everything done was committed */
#define HL_EXIT_FAILURE 1  /* fatal error (or could not start) */
#define HL_EXIT_CONFIG 2   /* bad configuration (hl_config) */
#define HL_EXIT_DEADLINE 3 /* stopped at the drain/close deadline; uncommitted work is redelivered */

/* Maps a result of hl_worker_run to one of the HL_EXIT_* statuses. */
int hl_worker_exit_status(int run_result);

/* Asks the loop to stop. Async-signal-safe; may be called from any thread. */
void hl_worker_stop(hl_worker *w);

/*
 * True once the worker was asked to stop or stops on a fatal error: a
 * processor that waits on something (a downstream bound) gives up and
 * returns HL_PROC_RETRY, and the input is delivered again after the drain.
 * Thread-safe.
 */
bool hl_worker_stopping(hl_worker *w);

/* Installs SIGTERM and SIGINT handlers that call hl_worker_stop(w) (one worker per process). */
int hl_worker_handle_signals(hl_worker *w);

/*
 * Readiness for /readyz, shaped for hl_admin_set_readiness(): false with a
 * reason while no broker is reachable, before the first assignment, after
 * an out-of-range offset or a fatal error, and while draining. ud is the
 * hl_worker. Thread-safe.
 */
bool hl_worker_ready(void *ud, char *reason, size_t len);

/* ---- A worker binary's main ------------------------------------------------------ */

/* What hl_worker_main needs; everything is borrowed for the call. */
typedef struct hl_worker_spec {
  const hl_config *cfg;       /* HL_CONFIG_KAFKA_VARS, the worker variables, HL_ADMIN_ADDR */
  hl_metrics *metrics;        /* the registry /metrics serves; may be NULL */
  const char *const *topics;  /* input topics */
  size_t ntopics;
  const hl_processor *proc;
  /* Called once the worker exists, before it runs (may be NULL). */
  void (*attach)(void *ud, hl_worker *w);
  void *attach_ud;
  /* Readiness for /readyz and hl_ready; NULL: hl_worker_ready of the worker. */
  bool (*ready)(void *ud, char *reason, size_t len);
  void *ready_ud;
  /* The downstream bound (see hl_worker_opts); NULL or "" group: none. */
  const char *downstream_group;
  const char *downstream_topic;
  long long max_downstream_lag;
  long long max_downstream_partition_bytes;
} hl_worker_spec;

/*
 * The run of a worker binary after its configuration and processor are
 * built: creates the worker, starts the admin server on HL_ADMIN_ADDR (none
 * when empty) with the readiness function, installs the SIGTERM/SIGINT
 * handlers, runs until stopped, drains, stops the admin server and frees
 * the worker. Logs a failure once. Returns the process exit status
 * (HL_EXIT_*): 2 when the worker's options are invalid, 1 when it cannot
 * start or stops on a fatal error, 3 at the drain/close deadline, else 0.
 */
int hl_worker_main(const hl_worker_spec *spec);

/* ---- Inside processor callbacks ------------------------------------------------ */

/* Produces out on behalf of msg. Returns as hl_producer_send. */
int hl_worker_produce(hl_worker *w, hl_kafka_msg *msg, const hl_kafka_out *out);
/*
 * Copies msg (key, value, headers) unchanged to topic. The parsed header
 * list of msg->rkm moves to the output (no copy): header values read
 * from it before the call must not be used after it, and a later read
 * parses the input's headers again, as they came from the broker.
 */
int hl_worker_forward(hl_worker *w, hl_kafka_msg *msg, const char *topic);
/*
 * Sends msg to the dead-letter topic (hl_kafka_dlq with the processor's
 * stage) and returns HL_PROC_BAD_INPUT, or HL_PROC_RETRY / HL_PROC_FATAL
 * when it could not be enqueued. A processor returning HL_PROC_BAD_INPUT
 * without calling it gets code "rejected".
 */
hl_proc_result hl_worker_reject(hl_worker *w, hl_kafka_msg *msg, const char *code,
                                const char *detail);
/*
 * As hl_worker_reject with a ready OperationOutcome JSON (borrowed, may be
 * cut at HL_KAFKA_DETAIL_MAX) as hl-error-detail, for processors that have
 * their own issues (the validator). code is the hl-error-code and the
 * reason label of hl_worker_messages_dlq_total.
 */
hl_proc_result hl_worker_reject_outcome(hl_worker *w, hl_kafka_msg *msg, const char *code,
                                        const char *outcome_json);

/*
 * Completes an input the processor deferred (msg: the processor's copy of
 * it). result: HL_PROC_OK (done: stored once its outputs are acknowledged),
 * HL_PROC_BAD_INPUT (dead-lettered, as from process), HL_PROC_FATAL (the
 * worker stops; the input is not committed) or HL_PROC_RETRY (given up,
 * e.g. when stopping: not committed, so delivered again after a restart;
 * nothing after it is stored for its partition). Releases msg->rkm. Call it
 * from the worker's thread. 0 or -EINVAL (not a deferred input).
 */
int hl_worker_complete(hl_worker *w, hl_kafka_msg *msg, hl_proc_result result);

/*
 * Asks the loop to call the processor's poll hook soon (it returns from a
 * wait for input). Thread-safe; for the threads of a deferring processor.
 */
void hl_worker_wake(hl_worker *w);

/* The worker's producer (to produce outputs not tied to an input). */
hl_producer *hl_worker_producer(hl_worker *w);
hl_consumer *hl_worker_consumer(hl_worker *w);

/* Counters for tests and benchmarks; read from the worker's thread or after run. */
typedef struct hl_worker_stats {
  uint64_t consumed;      /* input messages received */
  uint64_t done;          /* inputs done and stored */
  uint64_t dlq;           /* inputs sent to the dead-letter topic */
  uint64_t retries;       /* processor retries */
  size_t inflight;        /* inputs held now */
  size_t inflight_bytes;
  size_t max_inflight_seen;
  uint64_t pauses;        /* times a bound held consumption */
  uint64_t partition_pauses; /* holds that lasted pause_after_ms and paused the partitions */
  size_t deferred;        /* inputs the processor deferred and has not completed */
} hl_worker_stats;
void hl_worker_get_stats(hl_worker *w, hl_worker_stats *out);

#endif
