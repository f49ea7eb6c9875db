#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "hl/metrics.h"
#include "hl_test.h"

HL_TEST_SUITE(metrics);

static char *render(hl_metrics *reg) {
  hl_buf b;
  hl_buf_init(&b, 0);
  cr_assert_eq(hl_metrics_render(reg, &b), 0);
  return hl_buf_steal(&b, NULL);
}

Test(metrics, counter_gauge_labels_and_escaping) {
  hl_metrics *reg = NULL;
  cr_assert_eq(hl_metrics_new(&reg), 0);
  hl_metric *c = hl_metrics_counter(reg, "hl_messages_total", "Messages\\seen\nnow", "topic");
  hl_metric *g = hl_metrics_gauge(reg, "hl_up", "Up.", NULL);
  cr_assert_not_null(c);
  hl_series_add(hl_metric_at(c, "a\"b\\c\nd"), 3);
  hl_series_inc(hl_metric_at(c, "plain"));
  hl_series_set(hl_metric_at(g), 1.5);
  char *t = render(reg);
  cr_assert(strstr(t, "# HELP hl_messages_total Messages\\\\seen\\nnow\n") != NULL, "%s", t);
  cr_assert(strstr(t, "# TYPE hl_messages_total counter\n") != NULL);
  cr_assert(strstr(t, "hl_messages_total{topic=\"a\\\"b\\\\c\\nd\"} 3\n") != NULL, "%s", t);
  cr_assert(strstr(t, "hl_messages_total{topic=\"plain\"} 1\n") != NULL);
  cr_assert(strstr(t, "hl_up 1.5\n") != NULL, "%s", t);
  free(t);
  cr_assert_null(hl_metrics_counter(reg, "bad name", "x", NULL));
  cr_assert_null(hl_metrics_gauge(reg, "hl_messages_total", "x", "topic"), "type clash");
  cr_assert_eq(hl_metrics_counter(reg, "hl_messages_total", "x", "topic"), c);
  const char *v[] = {"plain"};
  cr_assert_eq(hl_metric_remove(c, v), 0);
  t = render(reg);
  cr_assert_null(strstr(t, "plain"));
  free(t);
  hl_metrics_free(reg);
}

Test(metrics, histogram_buckets_cumulative) {
  hl_metrics *reg = NULL;
  hl_metrics_new(&reg);
  const double bounds[] = {0.1, 1, 10};
  hl_metric *h = hl_metrics_histogram(reg, "hl_latency_seconds", "Latency.", "route", bounds, 3);
  hl_series *s = hl_metric_at(h, "/x");
  hl_series_observe(s, 0.05);
  hl_series_observe(s, 0.1); /* le is inclusive */
  hl_series_observe(s, 5);
  hl_series_observe(s, 50);
  char *t = render(reg);
  cr_assert(strstr(t, "hl_latency_seconds_bucket{route=\"/x\",le=\"0.10000000000000001\"} 2\n") ||
                strstr(t, "hl_latency_seconds_bucket{route=\"/x\",le=\"0.1\"} 2\n"),
            "%s", t);
  cr_assert(strstr(t, "hl_latency_seconds_bucket{route=\"/x\",le=\"1\"} 2\n") != NULL, "%s", t);
  cr_assert(strstr(t, "hl_latency_seconds_bucket{route=\"/x\",le=\"10\"} 3\n") != NULL, "%s", t);
  cr_assert(strstr(t, "hl_latency_seconds_bucket{route=\"/x\",le=\"+Inf\"} 4\n") != NULL, "%s", t);
  cr_assert(strstr(t, "hl_latency_seconds_sum{route=\"/x\"} 55.149999999999999\n") ||
                strstr(t, "hl_latency_seconds_sum{route=\"/x\"} 55.15\n"),
            "%s", t);
  cr_assert(strstr(t, "hl_latency_seconds_count{route=\"/x\"} 4\n") != NULL, "%s", t);
  free(t);
  const double bad[] = {1, 1};
  cr_assert_null(hl_metrics_histogram(reg, "hl_bad", "x", NULL, bad, 2));
  hl_metrics_free(reg);
}

/* promtool (Debian package prometheus) must accept the exposition. */
Test(metrics, promtool_accepts) {
  if (system("command -v promtool >/dev/null 2>&1") != 0)
    cr_skip_test("promtool not installed");
  hl_metrics *reg = NULL;
  hl_metrics_new(&reg);
  hl_series_add(hl_metric_at(hl_metrics_counter(reg, "hl_records_total", "Records.", "topic,stage"),
                             "hl.fhir.raw", "parse\"r"),
                7);
  hl_series_set(hl_metric_at(hl_metrics_gauge(reg, "hl_lag_messages", "Lag.", "partition"), "0"), 3);
  hl_series_observe(hl_metric_at(hl_metrics_histogram(reg, "hl_batch_seconds", "Batch time.", NULL,
                                                      hl_metrics_latency_buckets,
                                                      hl_metrics_latency_nbuckets)),
                    0.02);
  char *t = render(reg);
  FILE *p = popen("promtool check metrics >/dev/null 2>&1", "w");
  fputs(t, p);
  int st = pclose(p);
  cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "promtool rejected:\n%s", t);
  free(t);
  hl_metrics_free(reg);
}
