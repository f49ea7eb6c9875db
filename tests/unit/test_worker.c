#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "hl/error.h"
#include "hl/kafka.h"
#include "hl/metrics.h"
#include "hl/worker.h"
#include "hl_kafka_test.h"
#include "hl_worker_test.h"

HL_TEST_SUITE(worker);

static hl_worker_stats stats_of(hl_worker *w) {
  hl_worker_stats s;
  hl_worker_get_stats(w, &s);
  return s;
}

/* Waits until the worker has done n inputs; false after secs. */
static bool wait_done(hl_worker *w, uint64_t n, double secs) {
  double end = hl_test_now() + secs;
  while (hl_test_now() < end) {
    if (stats_of(w).done >= n)
      return true;
    struct timespec ts = {0, 20000000};
    nanosleep(&ts, NULL);
  }
  return false;
}

static bool wait_consumed(hl_worker *w, uint64_t n, double secs) {
  double end = hl_test_now() + secs;
  while (hl_test_now() < end) {
    if (stats_of(w).consumed >= n)
      return true;
    struct timespec ts = {0, 10000000};
    nanosleep(&ts, NULL);
  }
  return false;
}

static hl_worker_opts wopts(const char *bs, const char *group, const char **topic,
                            hl_metrics *reg) {
  hl_worker_opts o = {0};
  o.kafka.brokers = bs;
  o.kafka.group = group;
  o.kafka.props = HL_TEST_KAFKA_PROPS;
  o.kafka.stats_interval_ms = 200;
  o.kafka.metrics = reg;
  o.topics = topic;
  o.ntopics = 1;
  o.batch_max = 100;
  o.batch_wait_ms = 2;
  o.max_inflight = 1000;
  o.max_inflight_bytes = 16u << 20;
  o.drain_timeout_ms = 20000;
  o.retry_timeout_ms = 20000;
  return o;
}

static int key_number(const void *key, size_t len) {
  char buf[16];
  snprintf(buf, sizeof buf, "%.*s", (int)len, (const char *)key);
  return atoi(buf + 1);
}

#define HL_COPIES_MAX 16384

/* Checks one copied message: key kN, value "vN:...", headers hl-org and hl-line=N. */
typedef struct copies {
  int n, bad, dups;
  unsigned char seen[HL_COPIES_MAX];
} copies;

static void check_copy(void *ud, const rd_kafka_message_t *m) {
  copies *c = ud;
  c->n++;
  int k = key_number(m->key, m->key_len);
  char line[16], org[16], prefix[16];
  snprintf(prefix, sizeof prefix, "v%d:", k);
  if (k >= 0 && k < HL_COPIES_MAX && c->seen[k]) {
    c->dups++;
    return;
  }
  if (k < 0 || k >= HL_COPIES_MAX ||
      hl_kafka_header_get(m, HL_HDR_LINE, line, sizeof line) < 0 || atoi(line) != k ||
      hl_kafka_header_get(m, HL_HDR_ORG, org, sizeof org) != 5 ||
      m->len < strlen(prefix) || memcmp(m->payload, prefix, strlen(prefix)) != 0) {
    c->bad++;
    return;
  }
  c->seen[k] = 1;
}

static void assert_committed_at_end(hl_mock *m, const char *group, const char *topic, int parts) {
  for (int p = 0; p < parts; p++) {
    int64_t end = hl_test_end(m->bootstraps, topic, p);
    int64_t c = hl_test_committed(m->bootstraps, group, topic, p);
    cr_assert_eq(c, end, "partition %d: committed %lld, end %lld", p, (long long)c,
                 (long long)end);
  }
}

Test(worker, passes_messages_through_and_commits_end_offsets, .timeout = 120) {
  hl_mock m;
  hl_mock_start(&m, 2);
  hl_mock_topic(&m, "pt.in", 4);
  hl_mock_topic(&m, "pt.out", 3);
  const int n = 2000;
  hl_test_produce(m.bootstraps, "pt.in", 0, n, 256, -1);
  hl_metrics *reg = NULL;
  hl_metrics_new(&reg);
  const char *topic[] = {"pt.in"};
  hl_worker_opts o = wopts(m.bootstraps, "g-pt", topic, reg);
  hl_processor proc = {.stage = "test", .ud = "pt.out", .process = forward};
  run r = {0};
  char err[256] = "";
  cr_assert_eq(hl_worker_new(&o, &proc, &r.w, err, sizeof err), 0, "%s", err);
  char reason[256];
  cr_assert_not(hl_worker_ready(r.w, reason, sizeof reason));
  cr_assert_eq(hl_worker_handle_signals(r.w), 0);
  run_start(&r);
  cr_assert(wait_done(r.w, n, 60), "done %llu of %d", (unsigned long long)stats_of(r.w).done, n);
  double end = hl_test_now() + 20;
  while (!hl_worker_ready(r.w, reason, sizeof reason) && hl_test_now() < end)
    nanosleep(&(struct timespec){0, 50000000}, NULL);
  cr_assert(hl_worker_ready(r.w, reason, sizeof reason), "%s", reason);
  /* Lag from the statistics falls to 0 once the offsets are stored. */
  end = hl_test_now() + 20;
  double total = -1;
  while (hl_test_now() < end) {
    total = 0;
    for (int p = 0; p < 4; p++) {
      char needle[160];
      snprintf(needle, sizeof needle,
               "hl_consumer_lag_messages{group=\"g-pt\",topic=\"pt.in\",partition=\"%d\"} ", p);
      double v = metric_value(reg, needle);
      total = v < 0 || total < 0 ? -1 : total + v;
    }
    if (total == 0)
      break;
    nanosleep(&(struct timespec){0, 100000000}, NULL);
  }
  cr_assert_eq(total, 0, "consumer lag gauges did not reach 0");
  cr_assert_eq(metric_value(reg, "hl_worker_messages_in_total{topic=\"pt.in\"} "), n);
  /* SIGTERM (the handler only sets the stop flag) drains and ends the run cleanly. */
  cr_assert_eq(kill(getpid(), SIGTERM), 0);
  pthread_join(r.th, NULL);
  cr_assert_eq(r.rc, 0);
  cr_assert_not(hl_worker_ready(r.w, reason, sizeof reason));
  hl_worker_stats s = stats_of(r.w);
  cr_assert_eq(s.consumed, (uint64_t)n, "each input once (no rebalance here)");
  cr_assert_eq(s.inflight, 0);
  assert_committed_at_end(&m, "g-pt", "pt.in", 4);
  copies c = {0};
  cr_assert_eq(hl_test_read(m.bootstraps, "pt.out", 3, n, 30, check_copy, &c), n);
  cr_assert_eq(c.bad, 0);
  cr_assert_eq(c.dups, 0);
  hl_worker_free(r.w);
  hl_metrics_free(reg);
  hl_mock_stop(&m);
}

/*
 * Forwards each input to two topics, reading its headers before, between
 * and after: the forward moves the parsed headers to the output, and the
 * input must still show the same headers (parsed again) for the second.
 */
static _Atomic int header_mismatch;
static hl_proc_result forward_twice(void *ud, hl_worker *w, hl_kafka_msg *msg) {
  (void)ud;
  char before[16], between[16], after[16];
  if (hl_kafka_header_get(msg->rkm, HL_HDR_LINE, before, sizeof before) < 0)
    atomic_fetch_add(&header_mismatch, 1);
  int r = hl_worker_forward(w, msg, "ft.a");
  if (r == 0 && (hl_kafka_header_get(msg->rkm, HL_HDR_LINE, between, sizeof between) < 0 ||
                 strcmp(before, between) != 0))
    atomic_fetch_add(&header_mismatch, 1);
  r = r ? r : hl_worker_forward(w, msg, "ft.b");
  if (r == 0 && (hl_kafka_header_get(msg->rkm, HL_HDR_LINE, after, sizeof after) < 0 ||
                 strcmp(before, after) != 0))
    atomic_fetch_add(&header_mismatch, 1);
  return r == 0 ? HL_PROC_OK : r == HL_EFATAL ? HL_PROC_FATAL : HL_PROC_RETRY;
}

Test(worker, forward_keeps_the_input_headers_readable, .timeout = 120) {
  hl_mock m;
  hl_mock_start(&m, 1);
  hl_mock_topic(&m, "ft.in", 2);
  hl_mock_topic(&m, "ft.a", 2);
  hl_mock_topic(&m, "ft.b", 1);
  const int n = 500;
  hl_test_produce(m.bootstraps, "ft.in", 0, n, 128, -1);
  const char *topic[] = {"ft.in"};
  hl_worker_opts o = wopts(m.bootstraps, "g-ft", topic, NULL);
  hl_processor proc = {.stage = "test", .process = forward_twice};
  run r = {0};
  char err[256] = "";
  atomic_store(&header_mismatch, 0);
  cr_assert_eq(hl_worker_new(&o, &proc, &r.w, err, sizeof err), 0, "%s", err);
  run_start(&r);
  cr_assert(wait_done(r.w, n, 60), "done %llu of %d", (unsigned long long)stats_of(r.w).done, n);
  cr_assert_eq(run_stop(&r), 0);
  cr_assert_eq(atomic_load(&header_mismatch), 0);
  copies a = {0}, b = {0};
  cr_assert_eq(hl_test_read(m.bootstraps, "ft.a", 2, n, 30, check_copy, &a), n);
  cr_assert_eq(hl_test_read(m.bootstraps, "ft.b", 1, n, 30, check_copy, &b), n);
  cr_assert_eq(a.bad + a.dups + b.bad + b.dups, 0);
  hl_worker_free(r.w);
  hl_mock_stop(&m);
}

Test(worker, offsets_wait_for_output_acknowledgement, .timeout = 120) {
  hl_mock m;
  hl_mock_start(&m, 1);
  hl_mock_topic(&m, "ack.in", 1);
  hl_mock_topic(&m, "ack.out", 1);
  hl_test_produce(m.bootstraps, "ack.in", 0, 50, 64, 0);
  /* The next 25 Produce requests (about 4 s of retries) fail with a retriable error. */
  rd_kafka_resp_err_t errs[25];
  for (int i = 0; i < 25; i++)
    errs[i] = RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS;
  rd_kafka_mock_push_request_errors_array(m.mc, 0 /* Produce */, 25, errs);
  const char *topic[] = {"ack.in"};
  hl_worker_opts o = wopts(m.bootstraps, "g-ack", topic, NULL);
  o.kafka.props = HL_TEST_KAFKA_PROPS ",retry.backoff.ms=150";
  hl_processor proc = {.stage = "test", .ud = "ack.out", .process = forward};
  run r = {0};
  cr_assert_eq(hl_worker_new(&o, &proc, &r.w, NULL, 0), 0);
  run_start(&r);
  cr_assert(wait_consumed(r.w, 50, 60));
  /*
   * Processed but not acknowledged: the committed offset never passes the
   * inputs whose outputs are acknowledged (done), and while nothing is
   * acknowledged nothing is committed.
   */
  double end = hl_test_now() + 2;
  int held = 0;
  while (hl_test_now() < end) {
    uint64_t before = stats_of(r.w).done;
    int64_t c = hl_test_committed(m.bootstraps, "g-ack", "ack.in", 0);
    uint64_t after = stats_of(r.w).done;
    cr_assert_leq(c < 0 ? 0 : c, (int64_t)after, "committed %lld with %llu done", (long long)c,
                  (unsigned long long)after);
    held += before == 0 && after == 0 && c == RD_KAFKA_OFFSET_INVALID;
    nanosleep(&(struct timespec){0, 100000000}, NULL);
  }
  cr_assert_gt(held, 0, "the produce errors did not hold the deliveries back");
  cr_assert(wait_done(r.w, 50, 60), "the retried deliveries never completed");
  cr_assert_eq(run_stop(&r), 0);
  assert_committed_at_end(&m, "g-ack", "ack.in", 1);
  hl_worker_free(r.w);
  hl_mock_stop(&m);
}

Test(worker, failed_delivery_is_fatal_and_not_committed, .timeout = 120) {
  hl_mock m;
  hl_mock_start(&m, 1);
  hl_mock_topic(&m, "fail.in", 1);
  hl_mock_topic(&m, "fail.out", 1);
  hl_test_produce(m.bootstraps, "fail.in", 0, 20, 64, 0);
  rd_kafka_resp_err_t errs[200];
  for (int i = 0; i < 200; i++)
    errs[i] = RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED;
  rd_kafka_mock_push_request_errors_array(m.mc, 0 /* Produce */, 200, errs);
  const char *topic[] = {"fail.in"};
  hl_worker_opts o = wopts(m.bootstraps, "g-fail", topic, NULL);
  hl_processor proc = {.stage = "test", .ud = "fail.out", .process = forward};
  run r = {0};
  cr_assert_eq(hl_worker_new(&o, &proc, &r.w, NULL, 0), 0);
  run_start(&r);
  pthread_join(r.th, NULL); /* stops by itself */
  cr_assert_eq(r.rc, HL_EFATAL);
  char reason[256];
  cr_assert_not(hl_worker_ready(r.w, reason, sizeof reason));
  cr_assert(strstr(reason, "not delivered") != NULL || strstr(reason, "fatal") != NULL, "%s",
            reason);
  cr_assert_eq(stats_of(r.w).done, 0);
  cr_assert_eq(hl_test_committed(m.bootstraps, "g-fail", "fail.in", 0), RD_KAFKA_OFFSET_INVALID);
  hl_worker_free(r.w);
  hl_mock_stop(&m);
}

/*
 * Batch processor: multiples of 5 are bad input (multiples of 10 rejected with
 * a ready OperationOutcome, the others with a text detail), multiples of 7
 * fail twice first.
 */
#define TEST_OUTCOME "{\"resourceType\":\"OperationOutcome\",\"issue\":[]}"
static _Atomic int attempts[512];
static void mixed_batch(void *ud, hl_worker *w, hl_kafka_msg *msgs, size_t n,
                        hl_proc_result *res) {
  for (size_t i = 0; i < n; i++) {
    int k = key_number(msgs[i].key, msgs[i].key_len);
    if (k % 10 == 0) {
      res[i] = hl_worker_reject_outcome(w, &msgs[i], "outcome-code", TEST_OUTCOME);
      continue;
    }
    if (k % 5 == 0) {
      res[i] = hl_worker_reject(w, &msgs[i], "bad-number", "multiples of five are refused");
      continue;
    }
    if (k % 7 == 0 && atomic_fetch_add(&attempts[k], 1) < 2) {
      res[i] = HL_PROC_RETRY;
      continue;
    }
    res[i] = forward(ud, w, &msgs[i]);
  }
}

typedef struct dlq_seen {
  int n, bad;
} dlq_seen;

static void check_dlq(void *ud, const rd_kafka_message_t *m) {
  dlq_seen *d = ud;
  d->n++;
  char stage[32], code[32], detail[256];
  int k = key_number(m->key, m->key_len);
  if (k % 5 != 0 || hl_kafka_header_get(m, HL_HDR_ERROR_STAGE, stage, sizeof stage) < 0 ||
      strcmp(stage, "test") != 0 || hl_kafka_header_get(m, HL_HDR_ERROR_CODE, code, sizeof code) < 0 ||
      strcmp(code, k % 10 == 0 ? "outcome-code" : "bad-number") != 0 ||
      hl_kafka_header_get(m, HL_HDR_ERROR_DETAIL, detail, sizeof detail) < 0)
    d->bad++;
  else if (k % 10 == 0 && strcmp(detail, TEST_OUTCOME) != 0)
    d->bad++; /* the outcome is written as given */
  else if (k % 10 != 0 && !strstr(detail, "multiples of five are refused"))
    d->bad++;
}

Test(worker, dead_letters_and_retries_in_batches, .timeout = 120) {
  hl_mock m;
  hl_mock_start(&m, 1);
  hl_mock_topic(&m, "mix.in", 2);
  hl_mock_topic(&m, "mix.out", 1);
  hl_mock_topic(&m, "hl.dlq", 1);
  const int n = 200;
  hl_test_produce(m.bootstraps, "mix.in", 0, n, 32, -1);
  hl_metrics *reg = NULL;
  hl_metrics_new(&reg);
  const char *topic[] = {"mix.in"};
  hl_worker_opts o = wopts(m.bootstraps, "g-mix", topic, reg);
  hl_processor proc = {.stage = "test", .ud = "mix.out", .process_batch = mixed_batch};
  run r = {0};
  cr_assert_eq(hl_worker_new(&o, &proc, &r.w, NULL, 0), 0);
  run_start(&r);
  cr_assert(wait_done(r.w, n, 60));
  cr_assert_eq(run_stop(&r), 0);
  hl_worker_stats s = stats_of(r.w);
  cr_assert_eq(s.dlq, 40);
  int sevens = 0;
  for (int k = 0; k < n; k++)
    sevens += k % 7 == 0 && k % 5 != 0;
  cr_assert_eq(s.retries, (uint64_t)sevens * 2);
  cr_assert_eq(
      metric_value(reg, "hl_worker_messages_dlq_total{topic=\"mix.in\",reason=\"bad-number\"} "), 20);
  cr_assert_eq(
      metric_value(reg, "hl_worker_messages_dlq_total{topic=\"mix.in\",reason=\"outcome-code\"} "),
      20);
  assert_committed_at_end(&m, "g-mix", "mix.in", 2);
  dlq_seen d = {0};
  cr_assert_eq(hl_test_read(m.bootstraps, "hl.dlq", 1, 40, 30, check_dlq, &d), 40);
  cr_assert_eq(d.bad, 0);
  cr_assert_eq(hl_test_read(m.bootstraps, "mix.out", 1, n - 40, 30, NULL, NULL), n - 40);
  hl_worker_free(r.w);
  hl_metrics_free(reg);
  hl_mock_stop(&m);
}

/*
 * rtt_ms: the broker's delay on every answer, which keeps inputs in flight
 * until their outputs are acknowledged. pause_after_ms: the worker's
 * (0: its default, 2 s). Holds shorter than that must not pause the
 * partitions (a pause drops librdkafka's prefetch); longer ones must.
 */
static void backpressure_case(const char *group, size_t max_msgs, size_t max_bytes,
                              size_t expect_max, int rtt_ms, long long pause_after_ms) {
  hl_mock m;
  hl_mock_start(&m, 1);
  hl_mock_topic(&m, "bp.in", 1);
  hl_mock_topic(&m, "bp.out", 1);
  const int n = max_bytes < 100000 ? 100 : 400;
  hl_test_produce(m.bootstraps, "bp.in", 0, n, 1000, 0);
  /* Slow acknowledgements keep inputs in flight. */
  rd_kafka_mock_broker_set_rtt(m.mc, 1, rtt_ms);
  const char *topic[] = {"bp.in"};
  hl_worker_opts o = wopts(m.bootstraps, group, topic, NULL);
  o.max_inflight = max_msgs;
  o.max_inflight_bytes = max_bytes;
  o.batch_max = 10;
  o.pause_after_ms = pause_after_ms;
  o.kafka.props = HL_TEST_KAFKA_PROPS ",fetch.wait.max.ms=20";
  hl_processor proc = {.stage = "test", .ud = "bp.out", .process = forward};
  run r = {0};
  cr_assert_eq(hl_worker_new(&o, &proc, &r.w, NULL, 0), 0);
  run_start(&r);
  cr_assert(wait_done(r.w, n, 90), "done %llu", (unsigned long long)stats_of(r.w).done);
  cr_assert_eq(run_stop(&r), 0);
  hl_worker_stats s = stats_of(r.w);
  cr_assert_leq(s.max_inflight_seen, expect_max, "in flight peaked at %zu", s.max_inflight_seen);
  cr_assert_gt(s.pauses, 0, "the bound was never reached");
  if ((pause_after_ms ? pause_after_ms : 2000) >= rtt_ms * 20)
    cr_assert_eq(s.partition_pauses, 0, "holds of ~%d ms paused the partitions %llu times", rtt_ms,
                 (unsigned long long)s.partition_pauses);
  else
    cr_assert_gt(s.partition_pauses, 0, "holds of ~%d ms never paused the partitions", rtt_ms);
  assert_committed_at_end(&m, group, "bp.in", 1);
  hl_worker_free(r.w);
  hl_mock_stop(&m);
}

Test(worker, backpressure_bounds_messages_in_flight, .timeout = 150) {
  backpressure_case("g-bp1", 20, 16u << 20, 20, 30, 0);
}

Test(worker, backpressure_bounds_bytes_in_flight, .timeout = 150) {
  /* About 1 KiB per input: the byte bound (4 KiB) is hit after 4 or 5 of them. */
  backpressure_case("g-bp2", 1000, 4096, 5, 30, 0);
}

/* A hold past pause_after_ms pauses the partitions, and the bound and every input still hold. */
Test(worker, a_long_hold_pauses_the_partitions, .timeout = 150) {
  backpressure_case("g-bp3", 20, 16u << 20, 20, 300, 100);
}

Test(worker, stop_drains_in_flight_work_before_committing, .timeout = 120) {
  hl_mock m;
  hl_mock_start(&m, 1);
  hl_mock_topic(&m, "dr.in", 1);
  hl_mock_topic(&m, "dr.out", 1);
  hl_test_produce(m.bootstraps, "dr.in", 0, 300, 64, 0);
  rd_kafka_mock_broker_set_rtt(m.mc, 1, 200);
  const char *topic[] = {"dr.in"};
  hl_worker_opts o = wopts(m.bootstraps, "g-dr", topic, NULL);
  o.batch_max = 20;
  hl_processor proc = {.stage = "test", .ud = "dr.out", .process = forward};
  run r = {0};
  cr_assert_eq(hl_worker_new(&o, &proc, &r.w, NULL, 0), 0);
  run_start(&r);
  cr_assert(wait_consumed(r.w, 20, 60));
  cr_assert_eq(run_stop(&r), 0, "the drain finished within its deadline");
  hl_worker_stats s = stats_of(r.w);
  cr_assert_eq(s.done, s.consumed, "everything consumed was finished");
  cr_assert_eq(s.inflight, 0);
  int64_t committed = hl_test_committed(m.bootstraps, "g-dr", "dr.in", 0);
  cr_assert_eq(committed, (int64_t)s.done, "committed %lld, done %llu", (long long)committed,
               (unsigned long long)s.done);
  rd_kafka_mock_broker_set_rtt(m.mc, 1, 0);
  cr_assert_geq(hl_test_read(m.bootstraps, "dr.out", 1, (int)committed, 30, NULL, NULL),
                committed, "every committed input has its output");
  hl_worker_free(r.w);
  hl_mock_stop(&m);
}

Test(worker, drain_deadline_drops_undelivered_without_committing, .timeout = 120) {
  hl_mock m;
  hl_mock_start(&m, 1);
  hl_mock_topic(&m, "dd.in", 1);
  hl_mock_topic(&m, "dd.out", 1);
  hl_test_produce(m.bootstraps, "dd.in", 0, 100, 64, 0);
  const char *topic[] = {"dd.in"};
  hl_worker_opts o = wopts(m.bootstraps, "g-dd", topic, NULL);
  o.drain_timeout_ms = 300;
  hl_processor proc = {.stage = "test", .ud = "dd.out", .process = forward};
  run r = {0};
  cr_assert_eq(hl_worker_new(&o, &proc, &r.w, NULL, 0), 0);
  run_start(&r);
  cr_assert(wait_consumed(r.w, 1, 60));
  rd_kafka_mock_broker_set_rtt(m.mc, 1, 3000); /* acknowledgements now come too late */
  nanosleep(&(struct timespec){0, 100000000}, NULL);
  int rc = run_stop(&r);
  hl_worker_stats s = stats_of(r.w);
  cr_assert(rc == HL_ETIMEOUT || s.done == s.consumed, "rc %d", rc);
  rd_kafka_mock_broker_set_rtt(m.mc, 1, 0);
  int64_t committed = hl_test_committed(m.bootstraps, "g-dd", "dd.in", 0);
  if (committed < 0)
    committed = 0;
  cr_assert_leq(committed, (int64_t)s.done);
  int out = hl_test_read(m.bootstraps, "dd.out", 1, (int)s.consumed, 10, NULL, NULL);
  cr_assert_geq(out, committed, "a committed input lost its output");
  hl_worker_free(r.w);
  hl_mock_stop(&m);
}

Test(worker, out_of_range_offset_makes_the_worker_unready, .timeout = 120) {
  hl_mock m;
  hl_mock_start(&m, 1);
  hl_mock_topic(&m, "wo.in", 1);
  hl_test_produce(m.bootstraps, "wo.in", 0, 10, 16, 0);
  hl_test_commit(m.bootstraps, "g-wo", "wo.in", 0, 500);
  const char *topic[] = {"wo.in"};
  hl_worker_opts o = wopts(m.bootstraps, "g-wo", topic, NULL);
  hl_processor proc = {.stage = "test", .ud = "wo.out", .process = forward};
  run r = {0};
  cr_assert_eq(hl_worker_new(&o, &proc, &r.w, NULL, 0), 0);
  run_start(&r);
  char reason[256] = "";
  double end = hl_test_now() + 30;
  while (hl_test_now() < end) {
    hl_worker_ready(r.w, reason, sizeof reason);
    if (strstr(reason, "out of range"))
      break;
    nanosleep(&(struct timespec){0, 50000000}, NULL);
  }
  cr_assert(strstr(reason, "out of range") != NULL, "%s", reason);
  cr_assert_eq(run_stop(&r), 0);
  cr_assert_eq(stats_of(r.w).consumed, 0);
  cr_assert_eq(hl_test_committed(m.bootstraps, "g-wo", "wo.in", 0), 500);
  hl_worker_free(r.w);
  hl_mock_stop(&m);
}

Test(worker, readiness_and_stop_before_run) {
  const char *topic[] = {"x"};
  hl_worker_opts o = wopts("127.0.0.1:1", "g-x", topic, NULL);
  hl_processor none = {0};
  hl_worker *w = NULL;
  char err[128];
  cr_assert_eq(hl_worker_new(&o, &none, &w, err, sizeof err), -EINVAL);
  hl_processor proc = {.ud = "y", .process = forward};
  o.ntopics = 0;
  cr_assert_eq(hl_worker_new(&o, &proc, &w, err, sizeof err), -EINVAL);
  o.ntopics = 1;
  o.kafka.props = "bogus.property=1";
  cr_assert_eq(hl_worker_new(&o, &proc, &w, err, sizeof err), HL_ECONFIG);
  cr_assert(strstr(err, "bogus.property") != NULL, "%s", err);
  o.kafka.props = NULL;
  cr_assert_eq(hl_worker_new(&o, &proc, &w, err, sizeof err), 0);
  char reason[64];
  cr_assert_not(hl_worker_ready(w, reason, sizeof reason));
  cr_assert_str_eq(reason, "not started");
  hl_worker_stop(w); /* a stop before run makes run drain at once */
  cr_assert_eq(hl_worker_run(w), 0);
  cr_assert_eq(hl_worker_run(w), HL_ECLOSED, "a worker runs once");
  hl_worker_free(w);
}

/*
 * Regression (issue 5, the demo's hang under ASan): a SIGTERM that came
 * after the worker was freed, while the process exited, made the handler
 * write into the freed worker. Under ASan that report deadlocked with
 * LeakSanitizer's exit-time check; without it, it wrote into freed heap.
 * The ASan run of this test fails on such a write. Then: a worker that
 * installs the handlers does not see a signal from before, and sees its own.
 * raise() returns after the handler ran in this thread, so each check right
 * after it is deterministic (kill() to the process may pick another thread).
 */
Test(worker, a_signal_after_the_worker_is_freed_touches_no_freed_memory) {
  const char *topic[] = {"x"};
  hl_worker_opts o = wopts("127.0.0.1:1", "g-x", topic, NULL);
  hl_processor proc = {.ud = "y", .process = forward};
  hl_worker *w = NULL;
  char err[128];
  cr_assert_eq(hl_worker_new(&o, &proc, &w, err, sizeof err), 0, "%s", err);
  cr_assert_eq(hl_worker_handle_signals(w), 0);
  cr_assert_not(hl_worker_stopping(w));
  cr_assert_eq(raise(SIGTERM), 0);
  cr_assert(hl_worker_stopping(w), "SIGTERM stops the worker that handles signals");
  hl_worker_free(w);
  cr_assert_eq(raise(SIGTERM), 0); /* the handler stays: the process lives on */
  cr_assert_eq(raise(SIGINT), 0);
  cr_assert_eq(hl_worker_new(&o, &proc, &w, err, sizeof err), 0, "%s", err);
  cr_assert_not(hl_worker_stopping(w), "a worker without the handlers ignores signals");
  cr_assert_eq(hl_worker_handle_signals(w), 0);
  cr_assert_not(hl_worker_stopping(w), "signals from before the handlers are forgotten");
  cr_assert_eq(raise(SIGINT), 0);
  cr_assert(hl_worker_stopping(w), "SIGINT stops it too");
  hl_worker_free(w);
}

typedef struct feeder {
  const char *bs;
  _Atomic bool stop;
  int n;
  pthread_t th;
} feeder;

/*
 * Produces 20 inputs every 100 ms until told to stop, then 10 chunks more,
 * so that input keeps arriving during and after a rebalance.
 */
static void *feed(void *arg) {
  feeder *f = arg;
  int extra = 10;
  while ((!atomic_load(&f->stop) || extra-- > 0) && f->n + 20 <= HL_COPIES_MAX) {
    hl_test_produce(f->bs, "rb.in", f->n, 20, 128, -1);
    f->n += 20;
    nanosleep(&(struct timespec){0, 100000000}, NULL);
  }
  return NULL;
}

static int assigned_count(hl_worker *w) {
  rd_kafka_topic_partition_list_t *l = NULL;
  if (rd_kafka_assignment(hl_consumer_handle(hl_worker_consumer(w)), &l) != 0)
    return 0;
  int n = l->cnt;
  rd_kafka_topic_partition_list_destroy(l);
  return n;
}

Test(worker, cooperative_rebalance_between_two_workers_loses_nothing, .timeout = 180) {
  hl_mock m;
  hl_mock_start(&m, 1);
  hl_mock_topic(&m, "rb.in", 6);
  hl_mock_topic(&m, "rb.out", 2);
  const char *topic[] = {"rb.in"};
  hl_worker_opts o = wopts(m.bootstraps, "g-rb", topic, NULL);
  o.max_inflight = 200;
  /* Slow acknowledgements so that the revoke finds outputs in flight. */
  rd_kafka_mock_broker_set_rtt(m.mc, 1, 20);
  hl_processor proc = {.stage = "test", .ud = "rb.out", .process = forward};
  run a = {0}, b = {0};
  cr_assert_eq(hl_worker_new(&o, &proc, &a.w, NULL, 0), 0);
  cr_assert_eq(hl_worker_new(&o, &proc, &b.w, NULL, 0), 0);
  feeder f = {.bs = m.bootstraps};
  run_start(&a);
  cr_assert_eq(pthread_create(&f.th, NULL, feed, &f), 0);
  cr_assert(wait_consumed(a.w, 100, 60));
  run_start(&b); /* joins: some partitions move from a to b while input flows */
  double end = hl_test_now() + 60;
  while (assigned_count(b.w) == 0 && hl_test_now() < end)
    nanosleep(&(struct timespec){0, 50000000}, NULL);
  atomic_store(&f.stop, true);
  pthread_join(f.th, NULL);
  cr_assert_gt(assigned_count(b.w), 0, "the second worker got no partitions");
  const int n = f.n;
  end = hl_test_now() + 90;
  bool caught_up = false;
  while (!caught_up && hl_test_now() < end) {
    caught_up = true;
    for (int p = 0; p < 6 && caught_up; p++) {
      int64_t c = hl_test_committed(m.bootstraps, "g-rb", "rb.in", p);
      caught_up = c == hl_test_end(m.bootstraps, "rb.in", p);
    }
    if (!caught_up)
      nanosleep(&(struct timespec){0, 250000000}, NULL);
  }
  cr_assert(caught_up, "committed offsets did not reach the end");
  cr_assert_gt(stats_of(b.w).done, 0);
  cr_assert_eq(run_stop(&b), 0);
  cr_assert_eq(run_stop(&a), 0);
  assert_committed_at_end(&m, "g-rb", "rb.in", 6);
  rd_kafka_mock_broker_set_rtt(m.mc, 1, 0);
  /* At-least-once: every input has an output (duplicates are allowed). */
  copies *c = calloc(1, sizeof *c);
  uint64_t consumed = stats_of(a.w).consumed + stats_of(b.w).consumed;
  hl_test_read(m.bootstraps, "rb.out", 2, (int)consumed, 30, check_copy, c);
  int distinct = 0;
  for (int k = 0; k < n; k++)
    distinct += c->seen[k];
  cr_assert_eq(distinct, n, "%d of %d inputs reached the output", distinct, n);
  cr_assert_eq(c->bad, 0);
  free(c);
  hl_worker_free(a.w);
  hl_worker_free(b.w);
  hl_mock_stop(&m);
}

/* ---- Deferred inputs (a processor that finishes work in another thread) ------------- */

#define DEFER_MAX 4096

/* Holds every input until released, then forwards and completes it from its poll hook. */
typedef struct dproc {
  hl_kafka_msg held[DEFER_MAX];
  size_t nheld;
  _Atomic bool release;
  _Atomic int flushes, aborts;
  bool inline_complete; /* complete inside the call that defers */
  const char *out;
} dproc;

static void defer_batch(void *ud, hl_worker *w, hl_kafka_msg *msgs, size_t n,
                        hl_proc_result *res) {
  dproc *d = ud;
  for (size_t i = 0; i < n; i++) {
    if (d->nheld == DEFER_MAX) {
      res[i] = HL_PROC_RETRY;
      continue;
    }
    d->held[d->nheld++] = msgs[i];
    res[i] = HL_PROC_DEFER;
  }
  /* Completing inside the call: the worker applies it when the call returns. */
  if (d->inline_complete) {
    for (size_t i = 0; i < d->nheld; i++) {
      cr_assert_eq(hl_worker_forward(w, &d->held[i], d->out), 0);
      cr_assert_eq(hl_worker_complete(w, &d->held[i], HL_PROC_OK), 0);
    }
    d->nheld = 0;
  }
}

static void defer_poll(void *ud, hl_worker *w) {
  dproc *d = ud;
  if (!atomic_load(&d->release))
    return;
  for (size_t i = 0; i < d->nheld; i++) {
    cr_assert_eq(hl_worker_forward(w, &d->held[i], d->out), 0);
    cr_assert_eq(hl_worker_complete(w, &d->held[i], HL_PROC_OK), 0);
    /* A second completion of the same input is refused. */
    cr_assert_eq(hl_worker_complete(w, &d->held[i], HL_PROC_OK), -EINVAL);
  }
  d->nheld = 0;
}

static void defer_flush(void *ud, hl_worker *w, long long timeout_ms, bool abort) {
  dproc *d = ud;
  (void)timeout_ms;
  atomic_fetch_add(&d->flushes, 1);
  atomic_fetch_add(&d->aborts, abort);
  if (atomic_load(&d->release)) {
    defer_poll(ud, w);
    return;
  }
  for (size_t i = 0; i < d->nheld; i++)
    cr_assert_eq(hl_worker_complete(w, &d->held[i], HL_PROC_RETRY), 0);
  d->nheld = 0;
}

/* A deferring worker on a fresh mock cluster, n inputs waiting on in (parts partitions). */
typedef struct dcase {
  hl_mock m;
  dproc d;
  run r;
  const char *topic[1];
} dcase;

static dcase *defer_start(const char *in, int parts, const char *out, const char *group, int n,
                          bool inline_complete) {
  static dcase c; /* one per test (criterion runs each test in its own process) */
  memset(&c, 0, sizeof c);
  hl_mock_start(&c.m, 1);
  hl_mock_topic(&c.m, in, parts);
  hl_mock_topic(&c.m, out, 1);
  hl_test_produce(c.m.bootstraps, in, 0, n, 64, parts > 1 ? -1 : 0);
  c.topic[0] = in;
  c.d.out = out;
  c.d.inline_complete = inline_complete;
  hl_worker_opts o = wopts(c.m.bootstraps, group, c.topic, NULL);
  hl_processor proc = {.stage = "test",
                       .ud = &c.d,
                       .process_batch = defer_batch,
                       .poll = defer_poll,
                       .flush = defer_flush};
  cr_assert_eq(hl_worker_new(&o, &proc, &c.r.w, NULL, 0), 0);
  run_start(&c.r);
  return &c;
}

static void *release_later(void *arg) {
  void **a = arg;
  nanosleep(&(struct timespec){0, 300000000}, NULL);
  atomic_store(&((dproc *)a[0])->release, true);
  hl_worker_wake(a[1]);
  return NULL;
}

Test(worker, deferred_inputs_are_stored_only_once_completed, .timeout = 120) {
  const int n = 300;
  dcase *c = defer_start("df.in", 2, "df.out", "g-df", n, false);
  hl_worker *w = c->r.w;
  cr_assert(wait_consumed(w, n, 60));
  /* Held by the processor: nothing is done and nothing is committed, however long it takes. */
  nanosleep(&(struct timespec){1, 0}, NULL);
  hl_worker_stats s = stats_of(w);
  cr_assert_eq(s.deferred, (size_t)n);
  cr_assert_eq(s.done, 0);
  for (int p = 0; p < 2; p++)
    cr_assert_eq(hl_test_committed(c->m.bootstraps, "g-df", "df.in", p), RD_KAFKA_OFFSET_INVALID);
  /* Released from another thread, which wakes the loop. */
  pthread_t th;
  void *args[2] = {&c->d, w};
  cr_assert_eq(pthread_create(&th, NULL, release_later, args), 0);
  cr_assert(wait_done(w, n, 60), "done %llu", (unsigned long long)stats_of(w).done);
  pthread_join(th, NULL);
  cr_assert_eq(run_stop(&c->r), 0);
  s = stats_of(w);
  cr_assert_eq(s.deferred, 0);
  cr_assert_eq(s.inflight, 0);
  assert_committed_at_end(&c->m, "g-df", "df.in", 2);
  cr_assert_eq(hl_test_read(c->m.bootstraps, "df.out", 1, n, 30, NULL, NULL), n);
  hl_worker_free(c->r.w);
  hl_mock_stop(&c->m);
}

Test(worker, stop_gives_deferred_inputs_up_uncommitted, .timeout = 120) {
  dcase *c = defer_start("dg.in", 1, "dg.out", "g-dg", 50, false);
  hl_worker *w = c->r.w;
  dproc *d = &c->d;
  cr_assert(wait_consumed(w, 50, 60));
  /* The drain asks the processor to flush; what it gives up is neither done nor committed. */
  cr_assert_eq(run_stop(&c->r), 0);
  cr_assert_eq(atomic_load(&d->flushes), 1);
  cr_assert_eq(atomic_load(&d->aborts), 0);
  hl_worker_stats s = stats_of(w);
  cr_assert_eq(s.deferred, 0);
  cr_assert_eq(s.done, 0);
  cr_assert_eq(hl_test_committed(c->m.bootstraps, "g-dg", "dg.in", 0), RD_KAFKA_OFFSET_INVALID);
  hl_worker_free(c->r.w);
  hl_mock_stop(&c->m);
}

Test(worker, completion_inside_the_deferring_call_is_applied, .timeout = 120) {
  dcase *c = defer_start("di.in", 1, "di.out", "g-di", 200, true);
  hl_worker *w = c->r.w;
  cr_assert(wait_done(w, 200, 60));
  cr_assert_eq(run_stop(&c->r), 0);
  cr_assert_eq(stats_of(w).deferred, 0);
  assert_committed_at_end(&c->m, "g-di", "di.in", 1);
  cr_assert_eq(hl_test_read(c->m.bootstraps, "di.out", 1, 200, 30, NULL, NULL), 200);
  hl_worker_free(c->r.w);
  hl_mock_stop(&c->m);
}

/* Fails its first call after sleeping 400 ms (longer than the test's retry timeout), then forwards. */
static atomic_int slow_calls;
static hl_proc_result slow_then_ok(void *ud, hl_worker *w, hl_kafka_msg *msg) {
  if (atomic_fetch_add(&slow_calls, 1) == 0) {
    struct timespec ts = {0, 400000000};
    nanosleep(&ts, NULL);
    return HL_PROC_RETRY;
  }
  return forward(ud, w, msg);
}

/*
 * Regression: the retry timeout ran from the batch's first try, so a call
 * that took longer than the timeout and then failed once (hl-parser
 * waiting on its downstream bound inside a large object) stopped the worker
 * as fatal without a single retry.
 */
Test(worker, a_slow_call_that_fails_once_is_retried, .timeout = 90) {
  hl_mock m;
  hl_mock_start(&m, 1);
  hl_mock_topic(&m, "sr.in", 1);
  hl_mock_topic(&m, "sr.out", 1);
  hl_test_produce(m.bootstraps, "sr.in", 0, 20, 64, 0);
  const char *topic[] = {"sr.in"};
  hl_worker_opts o = wopts(m.bootstraps, "g-sr", topic, NULL);
  o.retry_timeout_ms = 200;
  hl_processor proc = {.stage = "test", .ud = "sr.out", .process = slow_then_ok};
  run r = {0};
  cr_assert_eq(hl_worker_new(&o, &proc, &r.w, NULL, 0), 0);
  run_start(&r);
  cr_assert(wait_done(r.w, 20, 60), "done %llu", (unsigned long long)stats_of(r.w).done);
  cr_assert_eq(run_stop(&r), 0, "the worker did not stop cleanly");
  cr_assert_geq(stats_of(r.w).retries, 1);
  assert_committed_at_end(&m, "g-sr", "sr.in", 1);
  hl_worker_free(r.w);
  hl_mock_stop(&m);
}

/* Holds its input until the worker stops, then gives it back as retriable (as hl-parser's lag guard does). */
static atomic_int held_calls;
static hl_proc_result hold_until_stop(void *ud, hl_worker *w, hl_kafka_msg *msg) {
  (void)ud;
  (void)msg;
  atomic_fetch_add(&held_calls, 1);
  while (!hl_worker_stopping(w)) {
    struct timespec ts = {0, 10000000};
    nanosleep(&ts, NULL);
  }
  return HL_PROC_RETRY;
}

/*
 * Regression: an input a processor gave back because the worker was
 * stopping counted as a failure past the retry timeout, and a SIGTERM'd
 * hl-parser exited with status 1 (the faults soak). It is left uncommitted
 * for the next owner, and the worker stops cleanly.
 */
Test(worker, an_input_given_back_at_stop_is_no_failure, .timeout = 90) {
  hl_mock m;
  hl_mock_start(&m, 1);
  hl_mock_topic(&m, "hs.in", 1);
  hl_test_produce(m.bootstraps, "hs.in", 0, 5, 64, 0);
  const char *topic[] = {"hs.in"};
  hl_worker_opts o = wopts(m.bootstraps, "g-hs", topic, NULL);
  o.retry_timeout_ms = 200;
  o.batch_max = 1;
  hl_processor proc = {.stage = "test", .process = hold_until_stop};
  run r = {0};
  cr_assert_eq(hl_worker_new(&o, &proc, &r.w, NULL, 0), 0);
  run_start(&r);
  double end = hl_test_now() + 60;
  while (atomic_load(&held_calls) == 0 && hl_test_now() < end) {
    struct timespec ts = {0, 20000000};
    nanosleep(&ts, NULL);
  }
  cr_assert_gt(atomic_load(&held_calls), 0, "the input never reached the processor");
  /* Held well past the retry timeout before the stop. */
  struct timespec ts = {0, 500000000};
  nanosleep(&ts, NULL);
  cr_assert_eq(run_stop(&r), 0, "a stop during processing ended as a failure");
  cr_assert_eq(stats_of(r.w).done, 0);
  cr_assert_lt(hl_test_committed(m.bootstraps, "g-hs", "hs.in", 0), 5);
  hl_worker_free(r.w);
  hl_mock_stop(&m);
}
