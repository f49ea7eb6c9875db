/*
 * hl-s3-notifier's core: takes candidate objects from the sources (dir,
 * s3-poll, s3-events), filters them, derives tenant and job, drops versions
 * the state file already knows, and hands the rest in batches to the
 * announcer, within a bound of pending announcements. See docs/notifier.md.
 *
 * Runs on one libuv loop; hl_notifier_offer_async() and hl_notifier_ready()
 * may be called from other threads (the admin server).
 */
#ifndef HL_NOTIFIER_H
#define HL_NOTIFIER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "announcer.h"
#include "hl/metrics.h"
#include "hl/s3.h"
#include "object.h"

typedef struct hl_notifier hl_notifier;

typedef struct hl_notifier_opts {
  const char *state_path;     /* SQLite state file; required */
  const char *default_org;    /* tenant of keys without org=; NULL/"": such keys are rejected */
  const char *prefix;         /* key filters (see filter.h) */
  const char *suffixes;
  const char *temp_suffixes;
  int batch_max;              /* rows per state transaction and produce batch; 0: 500 */
  size_t max_queue;           /* candidates waiting for room; 0: 100000 */
  hl_announcer_opts kafka;
  /* dir source; dir NULL or "" disables it */
  const char *dir;
  const char *dir_bucket;
  uint64_t stable_ms, rescan_ms;
  size_t max_watches;
  /* s3-poll source; s3_bucket NULL or "" disables it (the list prefix is `prefix`) */
  const hl_s3_config *s3;
  const char *s3_bucket;
  uint64_t poll_ms;
  /* s3-events from SQS; sqs_queue_url NULL or "" disables it (credentials from s3) */
  const char *sqs_queue_url;
  const char *sqs_endpoint;   /* NULL/"": the queue URL's scheme://host */
  int sqs_wait_s;             /* WaitTimeSeconds 0..20 */
  int sqs_max_messages;       /* 1..10 */
  int sqs_visibility_s;       /* 0..43200; 0: the queue's */
  hl_metrics *metrics;        /* may be NULL; borrowed */
} hl_notifier_opts;

/* Creates the core: opens the state file and the producer. 0, HL_ECONFIG (err), HL_EIO or -ENOMEM. */
int hl_notifier_new(uv_loop_t *loop, const hl_notifier_opts *opts, hl_notifier **out, char *err,
                    size_t errlen);
/* Starts the sources and the pump timer on the loop. 0 or a negative code (err). */
int hl_notifier_start(hl_notifier *n, char *err, size_t errlen);
/*
 * Stops the sources, waits up to timeout_ms for what is in flight, and
 * closes the libuv handles; the caller then runs the loop to its end and
 * calls hl_notifier_free. Rows still pending are resolved on the next start.
 */
void hl_notifier_stop(hl_notifier *n, int timeout_ms);
hl_notifier *hl_notifier_free(hl_notifier *n);

/* The source callback (hl_notifier_found_fn); ud is the notifier. Loop thread only. */
int hl_notifier_offer(void *ud, const hl_notifier_object *obj);
/*
 * Offers objects from another thread (copied). 0, or -EAGAIN when the
 * hand-over queue is full (the caller should ask the sender to retry).
 */
int hl_notifier_offer_async(hl_notifier *n, const hl_notifier_object *objs, size_t count);
/* One round of work: delivery reports, connection, recovery, a batch. Loop thread only. */
void hl_notifier_pump(hl_notifier *n);

/* Ready once connected and recovered, and while the producer is healthy. Thread-safe. */
bool hl_notifier_ready(hl_notifier *n, char *reason, size_t len);
/* True after a fatal producer error: the process should exit and restart. */
bool hl_notifier_failed(hl_notifier *n);

/* Counters for tests. */
typedef struct hl_notifier_stats {
  uint64_t seen, announced, skipped, queued;
  int inflight;
} hl_notifier_stats;
void hl_notifier_stats_get(hl_notifier *n, hl_notifier_stats *out);

#endif
