#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hl/error.h"
#include "hl/lag.h"
#include "hl/metrics.h"
#include "hl_test.h"

HL_TEST_SUITE(lag);

/*
 * stats_consumer_1.json was captured from librdkafka 2.0.2 consuming a
 * 3-partition topic of a 3-broker mock cluster with group hl-parser (only
 * partition 0 had a stored offset: 21 of 95). stats_consumer_2.json is the
 * same document as a later snapshot: partition 0 caught up, partition 1
 * stored 100 of 105, partition 2 revoked, broker 3 down, rebalance_cnt 3.
 */
static char *load(const char *name, size_t *len) {
  char path[512];
  snprintf(path, sizeof path, "%s/kafka/%s", HL_TEST_DATA, name);
  FILE *f = fopen(path, "rb");
  cr_assert_not_null(f, "%s", path);
  static char buf[1 << 20];
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = '\0';
  char *copy = malloc(n + 1);
  memcpy(copy, buf, n + 1);
  *len = n;
  return copy;
}

/* Value of a labelled series, or -1 when the series does not exist in the rendering. */
static double value_of(hl_metrics *reg, const char *needle) {
  hl_buf b;
  hl_buf_init(&b, 0);
  hl_metrics_render(reg, &b);
  char *at = strstr(b.data, needle);
  double v = -1;
  if (at)
    v = strtod(at + strlen(needle), NULL);
  hl_buf_free(&b);
  return v;
}

#define LAG(p) "hl_consumer_lag_messages{group=\"hl-parser\",topic=\"hl.fhir.raw\",partition=\"" p "\"} "
#define SECS(p) "hl_consumer_lag_seconds{group=\"hl-parser\",topic=\"hl.fhir.raw\",partition=\"" p "\"} "

static int64_t fake_oldest[3];
static int64_t fake_age(void *ud, const char *topic, int32_t partition) {
  (void)ud;
  if (strcmp(topic, "hl.fhir.raw") != 0 || partition < 0 || partition > 2)
    return -1;
  return fake_oldest[partition];
}

Test(lag, captured_statistics_set_gauges) {
  hl_metrics *reg = NULL;
  hl_metrics_new(&reg);
  hl_lag *lag = NULL;
  cr_assert_eq(hl_lag_new(reg, "hl-parser", &lag), 0);
  size_t len;
  char *json = load("stats_consumer_1.json", &len);
  int64_t t0 = 1800000000000;
  hl_lag_summary sum;
  cr_assert_eq(hl_lag_update(lag, json, len, t0, &sum), 0);
  free(json);
  cr_assert_eq(sum.brokers, 3, "the logical GroupCoordinator is not a broker");
  cr_assert_eq(sum.brokers_up, 2);
  cr_assert(sum.group_steady);
  cr_assert_eq(sum.assigned, 3);
  cr_assert_eq(sum.lag_total, 74);
  cr_assert_eq(value_of(reg, LAG("0")), 74);
  cr_assert_eq(value_of(reg, LAG("1")), -1, "unknown lag (no offset yet) is not exported");
  cr_assert_eq(value_of(reg, LAG("-1")), -1, "the internal UA partition is skipped");
  /* Never seen caught up and nothing in flight: measured from first sight (0 s). */
  cr_assert_eq(value_of(reg, SECS("0")), 0);
  cr_assert_eq(value_of(reg, "hl_kafka_broker_up{broker=\"127.0.0.1:40889/3\"} "), 1);
  cr_assert_eq(value_of(reg, "hl_kafka_broker_up{broker=\"127.0.0.1:39489/2\"} "), 0);
  cr_assert_eq(value_of(reg, "hl_kafka_broker_up{broker=\"GroupCoordinator\"} "), -1);
  cr_assert_eq(value_of(reg, "hl_kafka_rebalances_total{group=\"hl-parser\"} "), 1);

  /* Ten seconds later. */
  json = load("stats_consumer_2.json", &len);
  fake_oldest[0] = fake_oldest[1] = fake_oldest[2] = -1;
  hl_lag_set_age_fn(lag, fake_age, NULL);
  cr_assert_eq(hl_lag_update(lag, json, len, t0 + 10000, &sum), 0);
  cr_assert_eq(sum.assigned, 2);
  cr_assert_eq(sum.brokers_up, 1);
  cr_assert_eq(value_of(reg, LAG("0")), 0);
  cr_assert_eq(value_of(reg, SECS("0")), 0);
  cr_assert_eq(value_of(reg, LAG("1")), 5, "consumer_lag_stored wins over consumer_lag");
  cr_assert_eq(value_of(reg, SECS("1")), 10, "upper bound: since first seen, never caught up");
  cr_assert_eq(value_of(reg, LAG("2")), -1, "a revoked partition loses its series");
  cr_assert_eq(value_of(reg, "hl_kafka_broker_up{broker=\"127.0.0.1:40889/3\"} "), 0);
  cr_assert_eq(value_of(reg, "hl_kafka_rebalances_total{group=\"hl-parser\"} "), 3);

  /* A message in flight for 2.5 s is the age, whatever the bound says. */
  fake_oldest[1] = t0 + 20000 - 2500;
  cr_assert_eq(hl_lag_update(lag, json, len, t0 + 20000, &sum), 0);
  cr_assert_eq(value_of(reg, SECS("1")), 2.5);
  /* Caught up at t0+10 s (partition 0); later lag without in-flight counts from then. */
  fake_oldest[1] = -1;
  free(json);
  json = load("stats_consumer_1.json", &len); /* partition 0 lag 74 again */
  cr_assert_eq(hl_lag_update(lag, json, len, t0 + 25000, &sum), 0);
  cr_assert_eq(value_of(reg, SECS("0")), 5, "now - last caught up (t0 + 20 s)");
  cr_assert_eq(value_of(reg, "hl_kafka_rebalances_total{group=\"hl-parser\"} "), 3,
               "a lower rebalance_cnt never decrements the counter");
  free(json);
  hl_lag_free(lag);
  hl_metrics_free(reg);
}

Test(lag, malformed_statistics_are_refused_and_change_nothing) {
  hl_metrics *reg = NULL;
  hl_metrics_new(&reg);
  hl_lag *lag = NULL;
  cr_assert_eq(hl_lag_new(reg, "g", &lag), 0);
  size_t len;
  char *json = load("stats_consumer_1.json", &len);
  cr_assert_eq(hl_lag_update(lag, json, len / 2, 1000, NULL), HL_EPARSE, "truncated");
  cr_assert_eq(hl_lag_update(lag, "[1,2]", 5, 1000, NULL), HL_EPARSE, "not an object");
  cr_assert_eq(hl_lag_update(lag, "{\"a\":1,\"a\":2}", 13, 1000, NULL), HL_EPARSE, "duplicate key");
  cr_assert_eq(value_of(reg, "hl_consumer_lag_messages{"), -1);
  /* Odd but valid documents are tolerated: wrong types are ignored. */
  const char *odd = "{\"brokers\":[],\"topics\":{\"t\":{\"partitions\":{\"0\":{\"partition\":\"x\"},"
                    "\"1\":{\"partition\":1,\"desired\":true,\"consumer_lag\":\"7\"}}}},\"cgrp\":5}";
  hl_lag_summary sum;
  cr_assert_eq(hl_lag_update(lag, odd, strlen(odd), 1000, &sum), 0);
  cr_assert_eq(sum.assigned, 1);
  cr_assert_eq(value_of(reg, "hl_consumer_lag_messages{"), -1);
  free(json);
  hl_lag_free(lag);
  hl_metrics_free(reg);
}

/*
 * stats_consumer_restarted.json was captured from hl-loader (librdkafka
 * 2.0.2, group it-lag) restarted against hl-devbroker after its group had
 * committed every offset of hl.fhir.valid, with nothing new to read; trimmed
 * to partitions 0-2. librdkafka reports committed_offset and consumer_lag as
 * unknown until the member commits itself, so such a worker showed no lag
 * series at all (loader_snowflake_kill's last run waited for one in vain).
 */
#define RLAG(p) "hl_consumer_lag_messages{group=\"it-lag\",topic=\"hl.fhir.valid\",partition=\"" p "\"} "
#define RSECS(p) "hl_consumer_lag_seconds{group=\"it-lag\",topic=\"hl.fhir.valid\",partition=\"" p "\"} "

/* Sets an integer member of partition p of hl.fhir.valid in doc. */
static void set_part(json_t *doc, const char *p, const char *key, json_int_t v) {
  json_t *part = json_object_get(
      json_object_get(json_object_get(json_object_get(doc, "topics"), "hl.fhir.valid"), "partitions"), p);
  cr_assert_not_null(part, "partition %s", p);
  cr_assert_eq(json_object_set_new(part, key, json_integer(v)), 0);
}

/* hl_lag_update on a fresh registry; returns the registry (the caller frees it). */
static hl_metrics *update_fresh(json_t *doc, hl_lag_summary *sum) {
  hl_metrics *reg = NULL;
  hl_metrics_new(&reg);
  hl_lag *lag = NULL;
  cr_assert_eq(hl_lag_new(reg, "it-lag", &lag), 0);
  char *s = json_dumps(doc, JSON_COMPACT);
  cr_assert_not_null(s);
  cr_assert_eq(hl_lag_update(lag, s, strlen(s), 1800000000000, sum), 0);
  free(s);
  hl_lag_free(lag);
  return reg;
}

Test(lag, restarted_member_with_nothing_to_read_reports_its_position) {
  size_t len;
  char *text = load("stats_consumer_restarted.json", &len);
  json_t *doc = json_loadb(text, len, 0, NULL);
  free(text);
  cr_assert_not_null(doc);
  hl_lag_summary sum;
  hl_metrics *reg = update_fresh(doc, &sum);
  cr_assert_eq(sum.assigned, 3);
  for (int p = 0; p < 3; p++) {
    char needle[160];
    snprintf(needle, sizeof needle, RLAG("%d"), p);
    cr_assert_eq(value_of(reg, needle), 0, "partition %d: at the end, lag 0", p);
  }
  cr_assert_eq(value_of(reg, RSECS("0")), 0);
  cr_assert_eq(sum.lag_total, 0);
  hl_metrics_free(reg);

  /*
   * Behind the end with nothing fetched yet: the end minus the next offset.
   * Something handed to the application, or fetched and queued, leaves the
   * start unknown: no series, as before.
   */
  set_part(doc, "0", "next_offset", 2); /* hi_offset and ls_offset are 6 */
  set_part(doc, "1", "app_offset", 6);
  set_part(doc, "2", "fetchq_cnt", 3);
  reg = update_fresh(doc, &sum);
  cr_assert_eq(value_of(reg, RLAG("0")), 4);
  cr_assert_eq(value_of(reg, RLAG("1")), -1);
  cr_assert_eq(value_of(reg, RLAG("2")), -1);
  hl_metrics_free(reg);
  /* The last stable offset is the end when it is known (read_committed). */
  set_part(doc, "0", "ls_offset", 5);
  reg = update_fresh(doc, &sum);
  cr_assert_eq(value_of(reg, RLAG("0")), 3);
  hl_metrics_free(reg);
  /* A position past the end says nothing. */
  set_part(doc, "0", "next_offset", 7);
  reg = update_fresh(doc, &sum);
  cr_assert_eq(value_of(reg, RLAG("0")), -1);
  hl_metrics_free(reg);
  json_decref(doc);
}
