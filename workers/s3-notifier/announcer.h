/*
 * The announcer: produces landing events to hl.landing.objects exactly once,
 * with the state file (state.h) as its memory.
 *
 * submit() computes each message's partition itself (CRC-32 of the key
 * modulo the topic's partition count, librdkafka's consistent partitioner),
 * asks the broker for the high watermark of each partition in the batch,
 * inserts the rows as pending with that partition and watermark in one
 * transaction, and only then produces to the explicit partition. Delivery
 * reports (served by poll()) mark rows announced with their offsets, in one
 * transaction per poll. recover() resolves pending rows left by a crash or a
 * failed delivery: it reads each partition from the lowest recorded
 * watermark to the current end, marks announced the rows whose hl-event-id
 * it finds, and produces again only the others.
 *
 * It runs on librdkafka directly (not hl_producer) because it needs explicit
 * partitions and the offset of each delivered message. Single-threaded: all
 * calls from one thread.
 */
#ifndef HL_NOTIFIER_ANNOUNCER_H
#define HL_NOTIFIER_ANNOUNCER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "state.h"

typedef struct hl_announcer hl_announcer;

typedef struct hl_announcer_opts {
  const char *brokers;   /* bootstrap.servers; required */
  const char *props;     /* extra librdkafka properties "k=v,k=v" (may be NULL) */
  const char *topic;     /* NULL: hl.landing.objects */
  int max_inflight;      /* produced and not yet acknowledged; 0: 1000 */
  int timeout_ms;        /* metadata and watermark round trips; 0: 10000 */
  int recover_timeout_ms;/* reading partitions during recovery; 0: 60000 */
} hl_announcer_opts;

/* What the core hands over; strings are borrowed for the call. */
typedef struct hl_announce_item {
  const char *bucket, *key, *etag, *event_id, *org, *job, *uri;
  const char *msg_key;   /* "bucket/key" */
  const char *value;     /* landing event JSON */
  int64_t t0_ms;         /* when the object was offered (monotonic ms), for latency */
} hl_announce_item;

/* Outcome counters and callbacks the core uses for metrics. */
typedef struct hl_announcer_hooks {
  void *ud;
  /* A row became announced; latency_ms is -1 when unknown (after a restart). */
  void (*announced)(void *ud, int64_t latency_ms, bool recovered);
  /* A row was produced again by recovery. */
  void (*reproduced)(void *ud, bool unverifiable);
} hl_announcer_hooks;

/* Creates the producer. hooks may be NULL. 0, HL_ECONFIG (message in err) or -ENOMEM. */
int hl_announcer_new(const hl_announcer_opts *opts, hl_nstate *st, const hl_announcer_hooks *hooks,
                     hl_announcer **out, char *err, size_t errlen);
/* Purges what is unacknowledged (those rows stay pending) and frees. NULL-safe. */
hl_announcer *hl_announcer_free(hl_announcer *a);

/* Learns the topic's partition count. 0, HL_ETIMEOUT or HL_EKAFKA (topic missing). */
int hl_announcer_connect(hl_announcer *a);
bool hl_announcer_connected(const hl_announcer *a);
int32_t hl_announcer_partitions(const hl_announcer *a);

/* The partition of a message key for n partitions. */
int32_t hl_announcer_partition_for(const char *msg_key, int32_t n);

/*
 * Resolves every pending row (see above). Only with nothing in flight.
 * 0, HL_ETIMEOUT, HL_EKAFKA or HL_EIO; on error the rows stay pending.
 */
int hl_announcer_recover(hl_announcer *a);
/* True after a failed delivery: recover() must run once nothing is in flight. */
bool hl_announcer_need_recover(const hl_announcer *a);

/*
 * Records and produces up to n items (n <= hl_announcer_room()). Items whose
 * version is already recorded are skipped. Returns the number produced, or
 * a negative error (nothing produced; rows inserted stay pending and need
 * recovery).
 */
int hl_announcer_submit(hl_announcer *a, const hl_announce_item *items, size_t n);
/* How many more messages may be in flight. */
int hl_announcer_room(const hl_announcer *a);
int hl_announcer_inflight(const hl_announcer *a);

/* Serves delivery reports for up to timeout_ms and records them. Returns reports served or HL_EIO. */
int hl_announcer_poll(hl_announcer *a, int timeout_ms);
/* Polls until nothing is in flight or timeout_ms passed. 0 or HL_ETIMEOUT. */
int hl_announcer_flush(hl_announcer *a, int timeout_ms);
/* True when the producer hit a fatal error (the process should stop); reason may be NULL. */
bool hl_announcer_fatal(hl_announcer *a, char *reason, size_t len);

#endif
