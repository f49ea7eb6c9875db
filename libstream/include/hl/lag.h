/*
 * Consumer lag from librdkafka's statistics JSON (statistics.interval.ms).
 *
 * hl_lag_update() parses one statistics document with jansson and sets:
 *   hl_consumer_lag_messages{group,topic,partition}  consumer_lag_stored
 *       (high watermark - stored offset), else consumer_lag (- committed)
 *   hl_consumer_lag_seconds{group,topic,partition}   see below
 *   hl_kafka_broker_up{broker}                       1 when state is UP
 *   hl_kafka_rebalances_total{group}                 from cgrp.rebalance_cnt
 * Partitions that leave the assignment lose their series.
 *
 * Lag in seconds is the age of the oldest message not yet done:
 *   - if the worker holds messages of the partition that are not done, now
 *     minus the timestamp of the oldest of them (asked through age_fn);
 *   - else, if lag in messages is 0, 0;
 *   - else (the next message is still in the broker: paused, backpressure,
 *     fetch errors), now minus the last time the partition was seen caught
 *     up. The oldest pending message was written after that moment, so this
 *     is an upper bound, off by at most one statistics interval.
 */
#ifndef HL_LAG_H
#define HL_LAG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hl/metrics.h"

typedef struct hl_lag hl_lag;

/*
 * Returns the timestamp (ms since the epoch) of the oldest message of
 * topic/partition the caller has received and not finished, or -1 when it
 * holds none.
 */
typedef int64_t hl_lag_age_fn(void *ud, const char *topic, int32_t partition);

/* What one statistics document said about the client. */
typedef struct hl_lag_summary {
  int brokers;          /* brokers known (bootstrap entries excluded) */
  int brokers_up;       /* of which in state UP */
  bool group_steady;    /* cgrp.join_state is "steady" */
  int assigned;         /* partitions assigned (desired) to this member */
  int64_t lag_total;    /* sum of partition lags (messages, known ones) */
} hl_lag_summary;

/* metrics must not be NULL; group labels every series (may be NULL: ""). */
int hl_lag_new(hl_metrics *metrics, const char *group, hl_lag **out);
hl_lag *hl_lag_free(hl_lag *lag);

/* Sets the source of in-flight message ages (fn may be NULL). */
void hl_lag_set_age_fn(hl_lag *lag, hl_lag_age_fn *fn, void *ud);

/*
 * Parses a statistics document of len bytes and updates the gauges as of
 * now_ms (ms since the epoch). summary may be NULL. 0 or HL_EPARSE (the
 * metrics are left as they were).
 */
int hl_lag_update(hl_lag *lag, const char *json, size_t len, int64_t now_ms,
                  hl_lag_summary *summary);

/* Wall clock in ms since the epoch. */
int64_t hl_lag_now_ms(void);

#endif
