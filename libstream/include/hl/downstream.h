/*
 * A bound on how far a downstream consumer group may fall behind on a topic
 * this process produces to. On one machine hl-devbroker keeps at most
 * 5 MiB per partition and drops the oldest messages beyond it (DESIGN.md
 * section 7), so a stage that outruns its consumer by more than that loses
 * data there (the consumer then stops at an out-of-range offset). Every
 * producing stage therefore measures its downstream group's lag and holds
 * back while it is over the bound: hl-parser before hl-validator, and
 * hl-validator before hl-loader (through hl_worker_opts.downstream_*).
 *
 * The lag is the sum over the topic's partitions of the high watermark
 * minus the group's committed offset (the low watermark when the group has
 * none or an older one), measured with the client's own connections: one
 * OffsetFetch for the group and a watermark query per partition, plus the
 * messages the client produced and the broker has not acknowledged yet
 * (rd_kafka_outq_len: with a 50 ms linger, tens of thousands).
 *
 * The broker's limit is per partition, so one partition far behind loses
 * data while the sum is well under the bound: a consumer does not drain its
 * partitions evenly (in the long soak, 12 of hl.fhir.raw's 64 partitions
 * ran past the mock's limit while the sum stayed
 * under 100,000; the mock held ~3,150 of those messages per partition).
 * The stage therefore also holds back while any one partition is more than
 * max_partition_lag behind (by default its share of the bound:
 * max_lag / partitions).
 *
 * The mock's limit is in bytes, the bound in messages: at ~1 KB per
 * resource 1,562 messages a partition are ~1.5 MiB, but at 256 KiB they
 * would be 390 MiB. The messages noted as produced (hl_downstream_note)
 * give a mean size, and the per-partition bound is also at most
 * max_partition_bytes / that mean (2 MiB by default): large resources
 * hold the stage back after fewer messages.
 */
#ifndef HL_DOWNSTREAM_H
#define HL_DOWNSTREAM_H

#include <librdkafka/rdkafka.h>
#include <stdbool.h>
#include <stdint.h>

#include "hl/metrics.h"

typedef struct hl_downstream hl_downstream;

/* The default byte bound of one partition: well under the mock's 5 MiB. */
#define HL_DOWNSTREAM_PARTITION_BYTES (2 * 1024 * 1024)

typedef struct hl_downstream_opts {
  const char *group;       /* the downstream consumer group; required */
  const char *topic;       /* the topic it consumes and this process produces to; required */
  int64_t max_lag;         /* most messages it may be behind; >= 1 */
  int64_t max_partition_lag; /* most on any one partition; 0: max_lag / partitions (at least 1) */
  /* Most bytes on any one partition, by the mean size noted; 0: HL_DOWNSTREAM_PARTITION_BYTES. */
  int64_t max_partition_bytes;
  int check_interval_ms;   /* how often hl_downstream_over measures again; 0: 1000 */
  hl_metrics *metrics;     /* may be NULL */
  const char *lag_metric;  /* gauge of the last measured lag; NULL: hl_downstream_lag_messages */
  const char *waits_metric; /* counter of times over the bound; NULL: hl_downstream_waits_total */
} hl_downstream_opts;

/* 0, -EINVAL (missing group or topic, max_lag < 1) or -ENOMEM. Strings are copied. */
int hl_downstream_new(const hl_downstream_opts *o, hl_downstream **out);
hl_downstream *hl_downstream_free(hl_downstream *d);

/* Measures the lag now through rk (any client of the cluster); -1 when it cannot be known. */
int64_t hl_downstream_lag(hl_downstream *d, rd_kafka_t *rk);

/*
 * Counts n messages of bytes bytes in all produced to the topic: they make
 * the next measurement come sooner, and their mean size (over the last
 * tens of thousands of messages) sets the byte bound of a partition.
 */
void hl_downstream_note(hl_downstream *d, int64_t n, int64_t bytes);

/* The per-partition bound in messages now in force (its share of max_lag, or fewer by bytes). */
int64_t hl_downstream_partition_bound(const hl_downstream *d);

/*
 * Whether the producer should hold back: the last measured lag is over the
 * bound, or one partition's is over hl_downstream_partition_bound. Measures
 * again when check_interval_ms passed since the last measurement (now_ms:
 * any monotonic clock in ms), or a quarter of the bound, or a quarter of
 * partitions * max_partition_bytes, was noted as produced since, so a
 * fast producer overshoots the bound by at most about a quarter. An
 * unknown lag never holds back (the broker may simply be starting); after
 * a failed measurement, which blocks for up to a few seconds, the next
 * waits five intervals. While over the bound the next measurement comes
 * after a tenth of check_interval_ms, so the stage goes on soon after its
 * consumer caught up. Counts each change from under to over the bound in
 * the waits counter.
 */
bool hl_downstream_over(hl_downstream *d, rd_kafka_t *rk, uint64_t now_ms);

/* The last measured lag (-1 before the first or after a failed measurement). */
int64_t hl_downstream_last(const hl_downstream *d);

/* The largest lag of one partition in the last measurement (-1 as above). */
int64_t hl_downstream_last_partition(const hl_downstream *d);

#endif
