/* The downstream lag bound (hl/downstream.h). */
#include "hl/downstream.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Timeout of each broker request of one measurement. */
#define REQUEST_TIMEOUT_MS 2000
/* Intervals to wait after a measurement that failed. */
#define FAILED_BACKOFF 5
/* While over the bound, measured this many times as often. */
#define OVER_DIVISOR 10
/* The mean message size follows about the last this many messages noted. */
#define MEAN_WINDOW 20000

struct hl_downstream {
  char *group, *topic;
  int64_t max_lag;
  int64_t max_part_lag; /* 0: derived from max_lag once the partition count is known */
  int64_t max_part_bytes;
  uint64_t interval_ms;
  int32_t partitions; /* 0 until the topic's metadata was read */
  bool measured, over;
  uint64_t last_ms;
  int64_t since, since_bytes; /* produced since the last measurement (hl_downstream_note) */
  int64_t mean_n, mean_bytes; /* what the mean size is taken over (halved past 2 * MEAN_WINDOW) */
  int64_t last, last_part;
  hl_series *s_lag, *s_waits;
};

int hl_downstream_new(const hl_downstream_opts *o, hl_downstream **out) {
  *out = NULL;
  if (!o || !o->group || !*o->group || !o->topic || !*o->topic || o->max_lag < 1 ||
      o->max_partition_lag < 0 || o->max_partition_bytes < 0)
    return -EINVAL;
  hl_downstream *d = calloc(1, sizeof *d);
  if (!d)
    return -ENOMEM;
  d->group = strdup(o->group);
  d->topic = strdup(o->topic);
  if (!d->group || !d->topic) {
    hl_downstream_free(d);
    return -ENOMEM;
  }
  d->max_lag = o->max_lag;
  d->max_part_lag = o->max_partition_lag;
  d->max_part_bytes = o->max_partition_bytes > 0 ? o->max_partition_bytes : HL_DOWNSTREAM_PARTITION_BYTES;
  d->interval_ms = o->check_interval_ms > 0 ? (uint64_t)o->check_interval_ms : 1000;
  d->last = d->last_part = -1;
  if (o->metrics) {
    d->s_lag = hl_metric_at(hl_metrics_gauge(
        o->metrics, o->lag_metric ? o->lag_metric : "hl_downstream_lag_messages",
        "Last measured lag of the downstream consumer group on the output topic.", NULL));
    d->s_waits = hl_metric_at(hl_metrics_counter(
        o->metrics, o->waits_metric ? o->waits_metric : "hl_downstream_waits_total",
        "Times the downstream group's lag went over the bound and this stage held back.", NULL));
  }
  *out = d;
  return 0;
}

hl_downstream *hl_downstream_free(hl_downstream *d) {
  if (d) {
    free(d->group);
    free(d->topic);
    free(d);
  }
  return NULL;
}

/* The partition count of the topic, read once. */
static int32_t partitions(hl_downstream *d, rd_kafka_t *rk) {
  if (d->partitions > 0)
    return d->partitions;
  const rd_kafka_metadata_t *md = NULL;
  rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, d->topic, NULL);
  if (rkt && rd_kafka_metadata(rk, 0, rkt, &md, REQUEST_TIMEOUT_MS) == RD_KAFKA_RESP_ERR_NO_ERROR &&
      md->topic_cnt == 1 && md->topics[0].err == RD_KAFKA_RESP_ERR_NO_ERROR)
    d->partitions = md->topics[0].partition_cnt > 0 ? md->topics[0].partition_cnt : 0;
  if (md)
    rd_kafka_metadata_destroy(md);
  if (rkt)
    rd_kafka_topic_destroy(rkt);
  return d->partitions;
}

/* The group's committed offsets on every partition of the topic, or NULL. */
static rd_kafka_topic_partition_list_t *committed(hl_downstream *d, rd_kafka_t *rk, int32_t n) {
  rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(n);
  for (int32_t p = 0; p < n; p++)
    rd_kafka_topic_partition_list_add(parts, d->topic, p);
  rd_kafka_ListConsumerGroupOffsets_t *req = rd_kafka_ListConsumerGroupOffsets_new(d->group, parts);
  rd_kafka_topic_partition_list_destroy(parts);
  rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
  rd_kafka_ListConsumerGroupOffsets(rk, &req, 1, NULL, q);
  rd_kafka_ListConsumerGroupOffsets_destroy(req);
  rd_kafka_event_t *ev = rd_kafka_queue_poll(q, REQUEST_TIMEOUT_MS);
  rd_kafka_topic_partition_list_t *out = NULL;
  if (ev && rd_kafka_event_error(ev) == RD_KAFKA_RESP_ERR_NO_ERROR) {
    const rd_kafka_ListConsumerGroupOffsets_result_t *res = rd_kafka_event_ListConsumerGroupOffsets_result(ev);
    size_t ng = 0;
    const rd_kafka_group_result_t **groups = res ? rd_kafka_ListConsumerGroupOffsets_result_groups(res, &ng) : NULL;
    const rd_kafka_topic_partition_list_t *got =
        ng == 1 && !rd_kafka_group_result_error(groups[0]) ? rd_kafka_group_result_partitions(groups[0]) : NULL;
    if (got)
      out = rd_kafka_topic_partition_list_copy(got);
  }
  if (ev)
    rd_kafka_event_destroy(ev);
  rd_kafka_queue_destroy(q);
  return out;
}

int64_t hl_downstream_lag(hl_downstream *d, rd_kafka_t *rk) {
  int32_t n = partitions(d, rk);
  int64_t lag = -1, part = -1;
  rd_kafka_topic_partition_list_t *got = n > 0 ? committed(d, rk, n) : NULL;
  if (got) {
    lag = part = 0;
    for (int i = 0; i < got->cnt; i++) {
      int64_t lo = 0, hi = 0;
      if (rd_kafka_query_watermark_offsets(rk, d->topic, got->elems[i].partition, &lo, &hi,
                                           REQUEST_TIMEOUT_MS) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        lag = -1;
        break;
      }
      /* No commit yet (a negative offset) or one older than the log counts from its start. */
      int64_t at = got->elems[i].offset < lo ? lo : got->elems[i].offset;
      int64_t behind = hi > at ? hi - at : 0;
      lag += behind;
      part = behind > part ? behind : part;
    }
    rd_kafka_topic_partition_list_destroy(got);
  }
  /*
   * Messages this client produced that the broker has not acknowledged yet
   * are not in the watermarks; they will be, so they count (outq_len counts
   * every topic of the client: an upper bound).
   */
  if (lag >= 0)
    lag += rd_kafka_outq_len(rk);
  else
    part = -1;
  d->last = lag;
  d->last_part = part;
  if (lag >= 0 && d->s_lag)
    hl_series_set(d->s_lag, (double)lag);
  return lag;
}

void hl_downstream_note(hl_downstream *d, int64_t n, int64_t bytes) {
  if (n <= 0)
    return;
  bytes = bytes > 0 ? bytes : 0;
  d->since += n;
  d->since_bytes += bytes;
  d->mean_n += n;
  d->mean_bytes += bytes;
  if (d->mean_n > 2 * MEAN_WINDOW) {
    d->mean_n /= 2;
    d->mean_bytes /= 2;
  }
}

int64_t hl_downstream_partition_bound(const hl_downstream *d) {
  int64_t bound = d->max_part_lag;
  if (bound == 0)
    bound = d->partitions > 0 ? d->max_lag / d->partitions : d->max_lag;
  if (d->mean_n > 0 && d->mean_bytes > 0) {
    /* max_part_bytes / mean size, rounded down */
    double mean = (double)d->mean_bytes / (double)d->mean_n;
    int64_t by_bytes = (int64_t)((double)d->max_part_bytes / mean);
    bound = by_bytes < bound ? by_bytes : bound;
  }
  return bound < 1 ? 1 : bound;
}

bool hl_downstream_over(hl_downstream *d, rd_kafka_t *rk, uint64_t now_ms) {
  if (d->measured) {
    /*
     * A quarter of the bound produced since the last measurement also counts
     * as time up. After a failed measurement (brokers unreachable: each try
     * blocks the caller for up to REQUEST_TIMEOUT_MS per request) the next
     * waits FAILED_BACKOFF intervals, whatever was produced meanwhile.
     */
    bool failed = d->last < 0;
    /*
     * While over the bound nothing is produced, so only time calls for the
     * next measurement: it comes OVER_DIVISOR times sooner, or the stage
     * would stay stopped for most of an interval after its consumer caught
     * up (in bench/pipeline the two bounds, measured once a second, held
     * the pipeline at ~26k resources/s while its CPU allowed ~45k).
     */
    uint64_t wait = failed ? d->interval_ms * FAILED_BACKOFF
                    : d->over ? d->interval_ms / OVER_DIVISOR
                              : d->interval_ms;
    int64_t quarter_bytes = (d->partitions > 0 ? d->partitions : 1) * (d->max_part_bytes / 4);
    if (now_ms - d->last_ms < wait &&
        (failed || (d->since < d->max_lag / 4 + 1 && d->since_bytes < quarter_bytes)))
      return d->over;
  }
  d->measured = true;
  d->last_ms = now_ms;
  d->since = d->since_bytes = 0;
  int64_t lag = hl_downstream_lag(d, rk);
  int64_t part_bound = hl_downstream_partition_bound(d);
  bool over = lag > d->max_lag || (lag >= 0 && d->partitions > 0 && d->last_part > part_bound);
  if (over && !d->over && d->s_waits)
    hl_series_inc(d->s_waits);
  d->over = over;
  return over;
}

int64_t hl_downstream_last(const hl_downstream *d) { return d->last; }

int64_t hl_downstream_last_partition(const hl_downstream *d) { return d->last_part; }
