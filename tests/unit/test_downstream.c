/*
 * The downstream lag bound (hl/downstream.h) on librdkafka's mock cluster,
 * alone and in a worker: a stage stops consuming while the group that reads
 * its output is too far behind, and goes on once that group caught up.
 * Regression: in the long pipeline_faults soak, hl-validator ran more than
 * the mock's 5 MiB per partition ahead of a killed hl-loader; the oldest
 * messages of hl.fhir.valid were dropped and the loader stopped at
 * out-of-range offsets.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hl/downstream.h"
#include "hl/error.h"
#include "hl/kafka.h"
#include "hl/metrics.h"
#include "hl/worker.h"
#include "hl_kafka_test.h"
#include "hl_worker_test.h"

HL_TEST_SUITE(downstream);

#define PARTS 4

static int64_t end_sum(hl_mock *m, const char *topic) {
  int64_t n = 0;
  for (int p = 0; p < PARTS; p++)
    n += hl_test_end(m->bootstraps, topic, p);
  return n;
}

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
  nanosleep(&ts, NULL);
}

Test(downstream, refuses_incomplete_options) {
  hl_downstream *d = (hl_downstream *)1;
  cr_assert_eq(hl_downstream_new(&(hl_downstream_opts){.topic = "t", .max_lag = 1}, &d), -EINVAL);
  cr_assert_null(d);
  cr_assert_eq(hl_downstream_new(&(hl_downstream_opts){.group = "g", .max_lag = 1}, &d), -EINVAL);
  cr_assert_eq(hl_downstream_new(&(hl_downstream_opts){.group = "g", .topic = "t"}, &d), -EINVAL);
}

Test(downstream, lag_is_what_the_group_has_not_committed) {
  hl_mock m;
  hl_mock_start(&m, 1);
  hl_mock_topic(&m, "ds.out", PARTS);
  hl_test_produce(m.bootstraps, "ds.out", 0, 200, 50, -1);
  hl_metrics *reg = NULL;
  cr_assert_eq(hl_metrics_new(&reg), 0);
  hl_downstream *d = NULL;
  /* The per-partition bound out of the way: this test is about the sum. */
  hl_downstream_opts o = {.group = "ds-group", .topic = "ds.out", .max_lag = 150,
                          .max_partition_lag = 1000, .check_interval_ms = 1000, .metrics = reg};
  cr_assert_eq(hl_downstream_new(&o, &d), 0);
  char err[256];
  rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, hl_test_conf(m.bootstraps), err, sizeof err);
  cr_assert_not_null(rk, "%s", err);

  /* Nothing committed: everything is lag. */
  cr_assert_eq(hl_downstream_lag(d, rk), 200);
  cr_assert(hl_downstream_over(d, rk, 10000));
  cr_assert_eq(metric_value(reg, "\nhl_downstream_waits_total "), 1);
  cr_assert_eq(metric_value(reg, "\nhl_downstream_lag_messages "), 200);

  /* Partition 0 committed at its end, partition 1 half way. */
  int64_t e0 = hl_test_end(m.bootstraps, "ds.out", 0), e1 = hl_test_end(m.bootstraps, "ds.out", 1);
  hl_test_commit(m.bootstraps, "ds-group", "ds.out", 0, e0);
  hl_test_commit(m.bootstraps, "ds-group", "ds.out", 1, e1 / 2);
  int64_t want = 200 - e0 - e1 / 2;
  /*
   * Over the bound, the next measurement comes after a tenth of the
   * interval (nothing is produced meanwhile): within it the last answer
   * stands, after it a new measurement.
   */
  cr_assert(hl_downstream_over(d, rk, 10050));
  bool over = hl_downstream_over(d, rk, 10150);
  cr_assert_eq(hl_downstream_last(d), want);
  cr_assert_eq(over, want > 150);

  /* Everything committed: under the bound, and the waits counter did not move. */
  for (int p = 0; p < PARTS; p++)
    hl_test_commit(m.bootstraps, "ds-group", "ds.out", p, hl_test_end(m.bootstraps, "ds.out", p));
  cr_assert_not(hl_downstream_over(d, rk, 12000));
  cr_assert_eq(hl_downstream_last(d), 0);
  cr_assert_eq(metric_value(reg, "\nhl_downstream_waits_total "), 1);

  /* The brokers gone: the lag cannot be known, and that never holds back. */
  hl_mock_stop(&m);
  cr_assert_not(hl_downstream_over(d, rk, 20000));
  cr_assert_eq(hl_downstream_last(d), -1);
  /* The next try waits five intervals: a call within them answers at once, without the broker. */
  double t0 = hl_test_now();
  cr_assert_not(hl_downstream_over(d, rk, 24000));
  cr_assert_lt(hl_test_now() - t0, 0.5, "no measurement within five intervals of a failed one");

  rd_kafka_destroy(rk);
  hl_downstream_free(d);
  hl_metrics_free(reg);
}

/*
 * Regression: in the 10-year pipeline_faults soak, 12 of hl.fhir.raw's 64
 * partitions fell ~4,700 messages behind, past the mock's 5 MiB, while the
 * sum stayed under the bound; their oldest messages were dropped and
 * hl-validator stopped on them (offset out of range).
 */
Test(downstream, one_partition_far_behind_holds_back_under_the_sum) {
  hl_mock m;
  hl_mock_start(&m, 1);
  hl_mock_topic(&m, "ds.part", PARTS);
  hl_test_produce(m.bootstraps, "ds.part", 0, 100, 50, 0);
  char err[256];
  rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, hl_test_conf(m.bootstraps), err, sizeof err);
  cr_assert_not_null(rk, "%s", err);

  /* Default per-partition bound: 150 / 4 = 37; partition 0 is 100 behind, the sum 100. */
  hl_downstream *d = NULL;
  hl_downstream_opts o = {.group = "ds-part", .topic = "ds.part", .max_lag = 150};
  cr_assert_eq(hl_downstream_new(&o, &d), 0);
  cr_assert(hl_downstream_over(d, rk, 10000), "one partition 100 behind, over 37");
  cr_assert_eq(hl_downstream_last(d), 100);
  cr_assert_eq(hl_downstream_last_partition(d), 100);

  /* Committed up to 70: 30 behind, under both bounds. */
  hl_test_commit(m.bootstraps, "ds-part", "ds.part", 0, 70);
  cr_assert_not(hl_downstream_over(d, rk, 12000));
  cr_assert_eq(hl_downstream_last_partition(d), 30);
  hl_downstream_free(d);

  /* An explicit per-partition bound over the lag: only the sum counts. */
  hl_test_commit(m.bootstraps, "ds-part", "ds.part", 0, 0);
  o.max_partition_lag = 120;
  cr_assert_eq(hl_downstream_new(&o, &d), 0);
  cr_assert_not(hl_downstream_over(d, rk, 10000));
  cr_assert_eq(hl_downstream_last_partition(d), 100);
  hl_downstream_free(d);

  o.max_partition_lag = -1;
  cr_assert_eq(hl_downstream_new(&o, &d), -EINVAL);

  rd_kafka_destroy(rk);
  hl_mock_stop(&m);
}

/*
 * Starts a worker copying <name>.in to <name>.out (group <name>-copier)
 * bounded by the lag of group <name>-reader on <name>.out.
 */
static void start_copier(hl_mock *m, const char *name, size_t batch_max, long long max_lag,
                         hl_metrics **reg, run *r) {
  static char in[64], out[64], group[64], reader[64];
  snprintf(in, sizeof in, "%s.in", name);
  snprintf(out, sizeof out, "%s.out", name);
  snprintf(group, sizeof group, "%s-copier", name);
  snprintf(reader, sizeof reader, "%s-reader", name);
  for (char *c = group; *c; c++)
    *c = *c == '.' ? '-' : *c;
  for (char *c = reader; *c; c++)
    *c = *c == '.' ? '-' : *c;
  cr_assert_eq(hl_metrics_new(reg), 0);
  static const char *topic;
  topic = in;
  hl_worker_opts o = {0};
  o.kafka.brokers = m->bootstraps;
  o.kafka.group = group;
  o.kafka.props = HL_TEST_KAFKA_PROPS;
  o.kafka.metrics = *reg;
  o.topics = &topic;
  o.ntopics = 1;
  o.batch_max = batch_max;
  o.batch_wait_ms = 2;
  o.drain_timeout_ms = 20000;
  o.retry_timeout_ms = 20000;
  o.downstream_group = reader;
  o.downstream_topic = out;
  o.max_downstream_lag = max_lag;
  static hl_processor proc;
  proc = (hl_processor){.stage = "test", .ud = out, .process = forward};
  char err[256] = "";
  cr_assert_eq(hl_worker_new(&o, &proc, &r->w, err, sizeof err), 0, "%s", err);
  run_start(r);
}

/* The low watermark of topic/partition: above 0 once the mock dropped its oldest messages. */
static int64_t begin_of(hl_mock *m, const char *topic, int32_t partition) {
  char err[256];
  rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, hl_test_conf(m->bootstraps), err, sizeof err);
  cr_assert_not_null(rk, "%s", err);
  int64_t lo = -1, hi = -1;
  cr_assert_eq(rd_kafka_query_watermark_offsets(rk, topic, partition, &lo, &hi, 10000), 0);
  rd_kafka_destroy(rk);
  return lo;
}

#define BIG (256 * 1024)

/*
 * The per-partition bound also counts bytes: 12 messages of 256 KiB on one
 * partition are 3 MiB, over the default 2 MiB, while 12 is far under the
 * count bound (1000 / 4 = 250). Noting 3 MiB produced also calls for a new
 * measurement before the interval is up (a quarter of 4 * 2 MiB).
 */
Test(downstream, large_messages_hold_back_by_bytes) {
  hl_mock m;
  hl_mock_start(&m, 1);
  hl_mock_topic(&m, "ds.bytes", PARTS);
  hl_test_produce(m.bootstraps, "ds.bytes", 0, 12, BIG, 0);
  char err[256];
  rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, hl_test_conf(m.bootstraps), err, sizeof err);
  cr_assert_not_null(rk, "%s", err);
  hl_downstream *d = NULL;
  hl_downstream_opts o = {.group = "ds-bytes", .topic = "ds.bytes", .max_lag = 1000,
                          .check_interval_ms = 1000};
  cr_assert_eq(hl_downstream_new(&o, &d), 0);

  /* Nothing noted yet: no mean size, the count bound alone. */
  cr_assert_not(hl_downstream_over(d, rk, 10000), "12 behind, under 250");
  cr_assert_eq(hl_downstream_partition_bound(d), 250);

  hl_downstream_note(d, 12, 12 * (int64_t)(BIG + 8));
  cr_assert_eq(hl_downstream_partition_bound(d), 7, "2 MiB / ~256 KiB, rounded down");
  cr_assert(hl_downstream_over(d, rk, 10010), "measured again at once: 12 behind, over 7");
  cr_assert_eq(hl_downstream_last_partition(d), 12);

  /* Read up to 6: 6 behind, under 7 (measured a tenth of the interval later). */
  hl_test_commit(m.bootstraps, "ds-bytes", "ds.bytes", 0, 6);
  cr_assert_not(hl_downstream_over(d, rk, 10200));
  hl_downstream_free(d);

  /* An explicit byte bound: 4 MiB allows 15. */
  o.max_partition_bytes = 4 << 20;
  cr_assert_eq(hl_downstream_new(&o, &d), 0);
  hl_downstream_note(d, 12, 12 * (int64_t)(BIG + 8));
  cr_assert_eq(hl_downstream_partition_bound(d), 15);
  hl_downstream_free(d);
  o.max_partition_bytes = -1;
  cr_assert_eq(hl_downstream_new(&o, &d), -EINVAL);

  rd_kafka_destroy(rk);
  hl_mock_stop(&m);
}

/*
 * Regression: the bound counted messages only. A stage copying 256 KiB
 * resources ran 40 of them (10 MiB) ahead of a reader that was not
 * reading, under its count bound; the mock keeps 5 MiB a partition and
 * dropped the oldest, which the reader never saw. Now the worker holds
 * after about 2 MiB and nothing is dropped; once the reader reads, every
 * message is copied.
 */
Test(downstream, worker_holds_large_messages_before_the_broker_drops_them) {
  hl_mock m;
  hl_mock_start(&m, 1);
  hl_mock_topic(&m, "ds.big.in", PARTS); /* 2.5 MiB a partition: the input fits the mock */
  hl_mock_topic(&m, "ds.big.out", 1);
  hl_metrics *reg = NULL;
  run r = {0};
  start_copier(&m, "ds.big", 2, 100000, &reg, &r);

  hl_test_produce(m.bootstraps, "ds.big.in", 0, 40, BIG, -1);
  double end = hl_test_now() + 30;
  while (hl_test_now() < end && metric_value(reg, "\nhl_worker_paused ") != 1)
    sleep_ms(50);
  cr_assert_eq(metric_value(reg, "\nhl_worker_paused "), 1, "held by the downstream bound");
  sleep_ms(1500); /* what was in hand when the hold came is copied */
  int64_t copied = hl_test_end(m.bootstraps, "ds.big.out", 0);
  cr_assert(copied >= 8 && copied <= 16, "%lld of 40 copied before the hold (2 MiB is 8)",
            (long long)copied);
  cr_assert_eq(begin_of(&m, "ds.big.out", 0), 0, "nothing dropped by the broker");

  /* The reader reads (commits at the end again and again): all 40 are copied. */
  end = hl_test_now() + 60;
  while (hl_test_now() < end && hl_test_end(m.bootstraps, "ds.big.out", 0) < 40) {
    hl_test_commit(m.bootstraps, "ds-big-reader", "ds.big.out", 0,
                   hl_test_end(m.bootstraps, "ds.big.out", 0));
    sleep_ms(200);
  }
  cr_assert_eq(hl_test_end(m.bootstraps, "ds.big.out", 0), 40);

  cr_assert_eq(run_stop(&r), 0);
  hl_worker_free(r.w);
  hl_metrics_free(reg);
  hl_mock_stop(&m);
}

Test(downstream, worker_pauses_while_the_downstream_group_is_behind) {
  hl_mock m;
  hl_mock_start(&m, 1);
  hl_mock_topic(&m, "ds.in", PARTS);
  hl_mock_topic(&m, "ds.out", PARTS);
  hl_metrics *reg = NULL;
  run r = {0};
  start_copier(&m, "ds", 50, 100, &reg, &r);

  /*
   * 300 inputs: the worker copies them until a measurement (once a second)
   * finds the reader more than 100 behind, then pauses; all 300 may be
   * copied by then, or only part of them.
   */
  hl_test_produce(m.bootstraps, "ds.in", 0, 300, 40, -1);
  double end = hl_test_now() + 30;
  while (hl_test_now() < end && metric_value(reg, "\nhl_worker_paused ") != 1)
    sleep_ms(50);
  cr_assert_eq(metric_value(reg, "\nhl_worker_paused "), 1, "paused by the downstream bound");
  cr_assert_eq(metric_value(reg, "\nhl_worker_downstream_waits_total "), 1);
  sleep_ms(300); /* a batch in hand when the pause came is finished */
  int64_t copied = end_sum(&m, "ds.out");
  cr_assert(copied > 100 && copied <= 300, "%lld copied before the pause", (long long)copied);
  cr_assert_gt(metric_value(reg, "\nhl_worker_downstream_lag_messages "), 100);

  /* More input waits while the reader is behind. */
  hl_test_produce(m.bootstraps, "ds.in", 300, 500, 40, -1);
  sleep_ms(2500);
  cr_assert_eq(end_sum(&m, "ds.out"), copied, "nothing copied while the downstream group is behind");

  /* The reader keeps up (commits at the end again and again): the worker copies the rest. */
  end = hl_test_now() + 60;
  while (hl_test_now() < end && end_sum(&m, "ds.out") < 800) {
    for (int p = 0; p < PARTS; p++)
      hl_test_commit(m.bootstraps, "ds-reader", "ds.out", p, hl_test_end(m.bootstraps, "ds.out", p));
    sleep_ms(200);
  }
  cr_assert_eq(end_sum(&m, "ds.out"), 800, "the other 500 are copied while the reader keeps up");

  cr_assert_eq(run_stop(&r), 0);
  hl_worker_free(r.w);
  hl_metrics_free(reg);
  hl_mock_stop(&m);
}

Test(downstream, worker_refuses_a_bound_without_output_topic) {
  const char *topic = "ds.in";
  hl_worker_opts o = {0};
  o.kafka.brokers = "127.0.0.1:1";
  o.kafka.group = "g";
  o.topics = &topic;
  o.ntopics = 1;
  o.downstream_group = "ds-reader";
  o.max_downstream_lag = 100;
  hl_processor proc = {.stage = "test", .ud = "ds.out", .process = forward};
  hl_worker *w = NULL;
  char err[256] = "";
  cr_assert_eq(hl_worker_new(&o, &proc, &w, err, sizeof err), -EINVAL);
  cr_assert(strstr(err, "downstream"), "%s", err);
  cr_assert_null(w);
}
