#include <jansson.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>

#include "hl/error.h"
#include "hl/kafka.h"
#include "hl/metrics.h"
#include "hl_kafka_test.h"

HL_TEST_SUITE(kafka);

static hl_kafka_opts opts_for(const char *bs, const char *group, hl_metrics *reg) {
  hl_kafka_opts o = {.brokers = bs,
                     .group = group,
                     .props = HL_TEST_KAFKA_PROPS,
                     .stats_interval_ms = 200,
                     .metrics = reg};
  return o;
}

Test(kafka, props_parse_escapes_and_errors) {
  char err[256];
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  cr_assert_eq(hl_kafka_props_apply(conf, "linger.ms=7,client.id=a\\,b,,", err, sizeof err), 0,
               "%s", err);
  char v[64];
  size_t n = sizeof v;
  cr_assert_eq(rd_kafka_conf_get(conf, "linger.ms", v, &n), RD_KAFKA_CONF_OK);
  cr_assert_str_eq(v, "7");
  n = sizeof v;
  rd_kafka_conf_get(conf, "client.id", v, &n);
  cr_assert_str_eq(v, "a,b");
  cr_assert_eq(hl_kafka_props_apply(conf, "linger.ms", err, sizeof err), HL_ECONFIG);
  cr_assert(strstr(err, "linger.ms") != NULL, "%s", err);
  cr_assert_eq(hl_kafka_props_apply(conf, "=5", err, sizeof err), HL_ECONFIG);
  cr_assert_eq(hl_kafka_props_apply(conf, "no.such.thing=1", err, sizeof err), HL_ECONFIG);
  cr_assert(strstr(err, "no.such.thing") != NULL, "%s", err);
  cr_assert_eq(hl_kafka_props_apply(conf, NULL, err, sizeof err), 0);
  rd_kafka_conf_destroy(conf);

  hl_kafka_opts o = {.brokers = "127.0.0.1:1", .group = "g", .props = "linger.ms=-3"};
  cr_assert_eq(hl_kafka_opts_check(&o, err, sizeof err), HL_ECONFIG);
  o.props = "fetch.wait.max.ms=10";
  cr_assert_eq(hl_kafka_opts_check(&o, err, sizeof err), 0, "%s", err);
  o.brokers = "";
  cr_assert_eq(hl_kafka_opts_check(&o, err, sizeof err), HL_ECONFIG);
}

/*
 * After hl_kafka_tune_malloc no freed small chunk waits in a fastbin (where
 * the next allocation of ~1 KiB would consolidate them all): more small
 * chunks than the thread cache holds are freed, and none is left as a free
 * fastbin block. glibc's defaults leave them there (checked by removing the
 * M_MXFAST call). Each criterion test runs in a process of its own, so the
 * setting stays in this one.
 */
Test(kafka, tuned_malloc_keeps_no_fastbin_chunks) {
  hl_kafka_tune_malloc();
  enum { N = 200 };
  void *p[N];
  for (int i = 0; i < N; i++) {
    p[i] = malloc(40 + (i % 3) * 16); /* three small sizes, each past the thread cache's 7 */
    cr_assert_not_null(p[i]);
  }
  for (int i = 0; i < N; i++)
    free(p[i]);
  struct mallinfo2 mi = mallinfo2();
  cr_assert_eq(mi.smblks, 0, "%zu free fastbin blocks (%zu bytes)", mi.smblks, mi.fsmblks);
  /* The mmap threshold: a 1 MiB block comes from the heap, not a mapping. */
  size_t mapped = mallinfo2().hblkhd;
  void *big = malloc(1 << 20);
  cr_assert_not_null(big);
  cr_assert_eq(mallinfo2().hblkhd, mapped);
  free(big);
}

Test(kafka, error_classes) {
  cr_assert_eq(hl_kafka_classify(RD_KAFKA_RESP_ERR_NO_ERROR), HL_KAFKA_OK);
  cr_assert_eq(hl_kafka_classify(RD_KAFKA_RESP_ERR__TRANSPORT), HL_KAFKA_RETRIABLE);
  cr_assert_eq(hl_kafka_classify(RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS), HL_KAFKA_RETRIABLE);
  cr_assert_eq(hl_kafka_classify(RD_KAFKA_RESP_ERR__QUEUE_FULL), HL_KAFKA_RETRIABLE);
  cr_assert_eq(hl_kafka_classify(RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE), HL_KAFKA_FATAL);
  cr_assert_eq(hl_kafka_classify(RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED), HL_KAFKA_FATAL);
  cr_assert_eq(hl_kafka_classify(RD_KAFKA_RESP_ERR__FATAL), HL_KAFKA_FATAL);
  cr_assert_eq(hl_kafka_error(RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET), HL_EOFFSET);
  cr_assert_eq(hl_kafka_error(RD_KAFKA_RESP_ERR__FATAL), HL_EFATAL);
  cr_assert_eq(hl_kafka_error(RD_KAFKA_RESP_ERR__MSG_TIMED_OUT), HL_ETIMEOUT);
  cr_assert_eq(hl_kafka_error(RD_KAFKA_RESP_ERR_NO_ERROR), 0);
}

Test(kafka, header_helpers) {
  rd_kafka_headers_t *h = rd_kafka_headers_new(4);
  cr_assert_eq(hl_kafka_header_set(h, HL_HDR_ORG, "org-1"), 0);
  cr_assert_eq(hl_kafka_header_set(h, HL_HDR_ORG, "org-2"), 0);
  cr_assert_eq(hl_kafka_header_set(h, HL_HDR_JOB, ""), 0);
  cr_assert_eq(rd_kafka_header_cnt(h), 2, "set replaces");
  const void *v;
  size_t n;
  cr_assert_eq(hl_kafka_header_view(h, HL_HDR_ORG, &v, &n), 0);
  cr_assert_eq(n, 5);
  cr_assert_eq(memcmp(v, "org-2", 5), 0);
  cr_assert_eq(hl_kafka_header_view(h, HL_HDR_JOB, &v, &n), 0);
  cr_assert_eq(n, 0);
  cr_assert_eq(hl_kafka_header_view(h, HL_HDR_LINE, &v, &n), HL_ENOTFOUND);
  cr_assert_eq(hl_kafka_header_view(NULL, HL_HDR_LINE, &v, &n), HL_ENOTFOUND);
  rd_kafka_headers_destroy(h);
}

/* Checks hl_kafka_header_views on the message produced by the test below. */
static void check_views(void *ud, const rd_kafka_message_t *m) {
  (void)ud;
  hl_kafka_hview v[] = {{.name = HL_HDR_JOB}, {.name = HL_HDR_LINE}, {.name = HL_HDR_SOURCE},
                        {.name = HL_HDR_INGESTED_AT}};
  cr_assert_eq(hl_kafka_header_views(m, v, 4), 2);
  cr_assert_eq(v[0].len, 2, "the last hl-job wins, not hl-jab sharing its first byte");
  cr_assert_eq(memcmp(v[0].val, "j2", 2), 0);
  cr_assert_eq(v[1].len, 1);
  cr_assert_eq(memcmp(v[1].val, "7", 1), 0);
  cr_assert_null(v[2].val);
  cr_assert_null(v[3].val);
  /* A wanted name that is the shared prefix itself, and one without any prefix in common. */
  hl_kafka_hview w[] = {{.name = "hl-"}, {.name = HL_HDR_JOB}, {.name = "x-other"}};
  cr_assert_eq(hl_kafka_header_views(m, w, 3), 3);
  cr_assert_eq(memcmp(w[0].val, "p", w[0].len), 0);
  cr_assert_eq(w[0].len, 1);
  cr_assert_eq(memcmp(w[1].val, "j2", 2), 0);
  cr_assert_eq(w[2].len, 1);
  cr_assert_eq(memcmp(w[2].val, "o", 1), 0);
  hl_kafka_hview one[] = {{.name = "x-other"}};
  cr_assert_eq(hl_kafka_header_views(m, one, 1), 1);
  cr_assert_eq(hl_kafka_header_views(m, NULL, 0), 0);
}

Test(kafka, header_views_tell_names_apart_after_their_shared_prefix, .timeout = 60) {
  hl_mock m;
  hl_mock_start(&m, 1);
  hl_mock_topic(&m, "hv.t", 1);
  char err[256];
  rd_kafka_t *p = rd_kafka_new(RD_KAFKA_PRODUCER, hl_test_conf(m.bootstraps), err, sizeof err);
  cr_assert_not_null(p, "%s", err);
  rd_kafka_headers_t *h = rd_kafka_headers_new(8);
  rd_kafka_header_add(h, HL_HDR_JOB, -1, "j1", -1);
  rd_kafka_header_add(h, "x-other", -1, "o", -1);
  rd_kafka_header_add(h, HL_HDR_LINE, -1, "7", -1);
  rd_kafka_header_add(h, HL_HDR_JOB, -1, "j2", -1);
  rd_kafka_header_add(h, "hl-", -1, "p", -1);
  rd_kafka_header_add(h, "hl-jab", -1, "no", -1); /* after the last hl-job: must not replace it */
  cr_assert_eq(rd_kafka_producev(p, RD_KAFKA_V_TOPIC("hv.t"), RD_KAFKA_V_PARTITION(0),
                                 RD_KAFKA_V_VALUE("v", 1), RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_END),
               0);
  cr_assert_eq(rd_kafka_flush(p, 30000), 0);
  rd_kafka_destroy(p);
  cr_assert_eq(hl_test_read(m.bootstraps, "hv.t", 1, 1, 30, check_views, NULL), 1);
  hl_mock_stop(&m);
}

Test(kafka, outcome_json_is_valid_and_capped) {
  hl_buf b;
  hl_buf_init(&b, HL_KAFKA_DETAIL_MAX);
  cr_assert_eq(hl_kafka_outcome_json(&b, "invalid", "json-parse", "bad \"quote\"\n at 3"), 0);
  json_error_t je;
  json_t *j = json_loads(b.data, 0, &je);
  cr_assert_not_null(j, "%s: %s", je.text, b.data);
  cr_assert_str_eq(json_string_value(json_object_get(j, "resourceType")), "OperationOutcome");
  json_t *issue = json_array_get(json_object_get(j, "issue"), 0);
  cr_assert_str_eq(json_string_value(json_object_get(issue, "severity")), "error");
  cr_assert_str_eq(json_string_value(json_object_get(issue, "code")), "invalid");
  cr_assert_str_eq(json_string_value(json_object_get(issue, "diagnostics")), "bad \"quote\"\n at 3");
  json_decref(j);
  hl_buf_free(&b);
  /* A huge detail is cut, and the result still parses. */
  char *big = malloc(100000);
  memset(big, 'a', 99999);
  big[99999] = '\0';
  hl_buf_init(&b, HL_KAFKA_DETAIL_MAX);
  cr_assert_eq(hl_kafka_outcome_json(&b, NULL, "x", big), 0);
  cr_assert_lt(b.len, HL_KAFKA_DETAIL_MAX);
  j = json_loads(b.data, 0, &je);
  cr_assert_not_null(j);
  json_decref(j);
  hl_buf_free(&b);
  free(big);
}

static int done_calls;
static void on_done(void *ud, hl_kafka_ticket *t) {
  (void)ud;
  (void)t;
  done_calls++;
}

typedef struct seen {
  int n;
  int with_headers;
  int dlq_ok;
} seen;

/* Produce through hl_producer with a ticket, then read back with hl_consumer. */
Test(kafka, roundtrip_tickets_headers_and_new_group_from_earliest, .timeout = 90) {
  hl_mock m;
  hl_mock_start(&m, 1);
  hl_mock_topic(&m, "rt.in", 2);
  hl_metrics *reg = NULL;
  hl_metrics_new(&reg);
  hl_kafka_opts o = opts_for(m.bootstraps, "g-rt", reg);
  char err[256] = "";
  hl_producer *p = NULL;
  cr_assert_eq(hl_producer_new(&o, on_done, NULL, &p, err, sizeof err), 0, "%s", err);

  done_calls = 0;
  hl_kafka_ticket t = {.pending = 1};
  for (int i = 0; i < 20; i++) {
    char key[8], val[16];
    snprintf(key, sizeof key, "k%d", i);
    snprintf(val, sizeof val, "value-%d", i);
    rd_kafka_headers_t *h = rd_kafka_headers_new(2);
    hl_kafka_header_set(h, HL_HDR_ORG, "org-7");
    hl_kafka_header_set(h, HL_HDR_LINE, key + 1);
    hl_kafka_out out = {.topic = "rt.in", .key = key, .key_len = strlen(key), .value = val,
                        .len = strlen(val), .headers = h};
    cr_assert_eq(hl_producer_send(p, &out, &t, 1000), 0);
  }
  cr_assert_eq(t.pending, 21);
  /* The guard keeps the ticket open even when every delivery is in. */
  cr_assert_eq(hl_producer_flush(p, 20000), 0);
  cr_assert_eq(t.pending, 1);
  cr_assert_eq(done_calls, 0);
  hl_kafka_ticket_release(p, &t);
  cr_assert_eq(t.pending, 0);
  cr_assert_eq(t.err, 0);
  cr_assert_eq(done_calls, 1);
  cr_assert_eq(hl_series_value(hl_metric_at(hl_metrics_counter(reg, "hl_kafka_messages_produced_total", "", "topic"), "rt.in")), 20);

  hl_consumer *c = NULL;
  cr_assert_eq(hl_consumer_new(&o, NULL, &c, err, sizeof err), 0, "%s", err);
  char reason[256];
  cr_assert_not(hl_consumer_ready(c, reason, sizeof reason));
  const char *topics[] = {"rt.in"};
  cr_assert_eq(hl_consumer_subscribe(c, topics, 1), 0);
  int got = 0, hdr_ok = 0;
  double end = hl_test_now() + 30;
  while (got < 20 && hl_test_now() < end) {
    rd_kafka_message_t *msg = hl_consumer_poll(c, 100);
    if (!msg)
      continue;
    got++;
    char org[16], line[16], key[16];
    snprintf(key, sizeof key, "%.*s", (int)msg->key_len, (const char *)msg->key);
    if (hl_kafka_header_get(msg, HL_HDR_ORG, org, sizeof org) == 5 &&
        strcmp(org, "org-7") == 0 && hl_kafka_header_get(msg, HL_HDR_LINE, line, sizeof line) > 0 &&
        strcmp(line, key + 1) == 0)
      hdr_ok++;
    char tiny[3];
    cr_assert_eq(hl_kafka_header_get(msg, HL_HDR_ORG, tiny, sizeof tiny), HL_ELIMIT);
    cr_assert_eq(hl_kafka_header_get(msg, HL_HDR_JOB, tiny, sizeof tiny), HL_ENOTFOUND);
    rd_kafka_message_destroy(msg);
  }
  cr_assert_eq(got, 20, "a new group starts at the earliest offset");
  cr_assert_eq(hdr_ok, 20);
  end = hl_test_now() + 10;
  while (!hl_consumer_ready(c, reason, sizeof reason) && hl_test_now() < end)
    hl_consumer_poll(c, 100);
  cr_assert(hl_consumer_ready(c, reason, sizeof reason), "%s", reason);
  cr_assert_geq(hl_consumer_rebalances(c), 1);
  /* Nothing was stored, so nothing is committed. */
  hl_consumer_commit(c);
  cr_assert_eq(hl_test_committed(m.bootstraps, "g-rt", "rt.in", 0), RD_KAFKA_OFFSET_INVALID);
  hl_consumer_free(c);
  hl_producer_free(p);
  hl_metrics_free(reg);
  hl_mock_stop(&m);
}

/* Bytes a plain consumer received from the brokers, from its statistics. */
typedef struct wire {
  long long rx;
  int stats;
} wire;

static int wire_stats(rd_kafka_t *rk, char *json, size_t len, void *opaque) {
  (void)rk;
  wire *w = opaque;
  json_t *j = json_loadb(json, len, 0, NULL);
  cr_assert_not_null(j);
  long long rx = 0;
  const char *name;
  json_t *b;
  json_object_foreach(json_object_get(j, "brokers"), name, b) rx += json_integer_value(json_object_get(b, "rxbytes"));
  json_decref(j);
  w->rx = rx;
  w->stats++;
  return 0;
}

/*
 * Produces n values of vlen bytes of FHIR-like JSON through hl_producer with
 * props, reads them back with a plain consumer, checks every value arrived
 * unchanged, and returns the bytes that consumer received from the broker.
 */
static long long produce_and_measure(const char *props, const char *topic, int n, size_t vlen) {
  hl_mock m;
  hl_mock_start(&m, 1);
  hl_mock_topic(&m, topic, 1);
  hl_kafka_opts o = {.brokers = m.bootstraps, .group = "g-z", .props = props};
  char err[256] = "";
  hl_producer *p = NULL;
  cr_assert_eq(hl_producer_new(&o, on_done, NULL, &p, err, sizeof err), 0, "%s", err);
  char v[32];
  size_t vn = sizeof v;
  cr_assert_eq(rd_kafka_conf_get(rd_kafka_conf(hl_producer_handle(p)), "compression.type", v, &vn),
               RD_KAFKA_CONF_OK);
  cr_assert_str_eq(v, props ? "none" : "lz4");
  char *val = malloc(vlen + 1);
  cr_assert_not_null(val);
  hl_kafka_ticket t = {.pending = 1};
  for (int i = 0; i < n; i++) {
    size_t l = 0;
    while (l < vlen) {
      int w = snprintf(val + l, vlen + 1 - l,
                       "{\"resourceType\":\"Observation\",\"id\":\"%08d-%06zu\",\"status\":\"final\"},", i, l);
      l += (size_t)w < vlen + 1 - l ? (size_t)w : vlen - l;
    }
    hl_kafka_out out = {.topic = topic, .key = "k", .key_len = 1, .value = val, .len = vlen};
    cr_assert_eq(hl_producer_send(p, &out, &t, 5000), 0);
  }
  cr_assert_eq(hl_producer_flush(p, 30000), 0);
  hl_kafka_ticket_release(p, &t);
  cr_assert_eq(t.err, 0);
  hl_producer_free(p);

  wire w = {0};
  rd_kafka_conf_t *conf = hl_test_conf(m.bootstraps);
  cr_assert_eq(rd_kafka_conf_set(conf, "group.id", "hl-test-wire", err, sizeof err), 0);
  cr_assert_eq(rd_kafka_conf_set(conf, "statistics.interval.ms", "100", err, sizeof err), 0);
  rd_kafka_conf_set_stats_cb(conf, wire_stats);
  rd_kafka_conf_set_opaque(conf, &w);
  rd_kafka_t *c = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
  cr_assert_not_null(c, "%s", err);
  rd_kafka_poll_set_consumer(c);
  rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(l, topic, 0)->offset = RD_KAFKA_OFFSET_BEGINNING;
  cr_assert_eq(rd_kafka_assign(c, l), 0);
  rd_kafka_topic_partition_list_destroy(l);
  int got = 0;
  double end = hl_test_now() + 30;
  while (got < n && hl_test_now() < end) {
    rd_kafka_message_t *msg = rd_kafka_consumer_poll(c, 100);
    if (!msg)
      continue;
    if (!msg->err) {
      cr_assert_eq(msg->len, vlen);
      static const char head[] = "{\"resourceType\":\"Observation\",\"id\":\"";
      cr_assert_eq(memcmp(msg->payload, head, sizeof head - 1), 0);
      char id[16];
      snprintf(id, sizeof id, "%08d-", got);
      cr_assert_eq(memcmp((char *)msg->payload + sizeof head - 1, id, 9), 0, "message %d in order and intact", got);
      got++;
    }
    rd_kafka_message_destroy(msg);
  }
  cr_assert_eq(got, n);
  /* Statistics taken after the last message arrived count all its bytes. */
  int after = w.stats;
  end = hl_test_now() + 10;
  while (w.stats < after + 2 && hl_test_now() < end)
    rd_kafka_poll(c, 100);
  cr_assert_geq(w.stats, after + 2);
  rd_kafka_consumer_close(c);
  rd_kafka_destroy(c);
  free(val);
  hl_mock_stop(&m);
  return w.rx;
}

Test(kafka, producer_sends_lz4_message_sets_by_default, .timeout = 120) {
  enum { N = 200, VLEN = 8192 };
  long long plain = produce_and_measure("compression.type=none", "z.none", N, VLEN);
  long long dflt = produce_and_measure(NULL, "z.default", N, VLEN);
  /* Uncompressed, the consumer receives every value byte; lz4 cuts this JSON several times. */
  cr_assert_geq(plain, (long long)N * VLEN, "uncompressed: %lld bytes received", plain);
  cr_assert_lt(dflt * 4, (long long)N * VLEN, "by default: %lld bytes received for %d bytes of values",
               dflt, N * VLEN);

}

static void check_dlq(void *ud, const rd_kafka_message_t *msg) {
  seen *s = ud;
  s->n++;
  cr_assert_eq(msg->key_len, 3);
  cr_assert_eq(memcmp(msg->key, "k\0x", 3), 0, "key bytes unchanged");
  cr_assert_eq(msg->len, 5);
  cr_assert_eq(memcmp(msg->payload, "\x01{\0}\xff", 5), 0, "value bytes unchanged");
  char b[HL_KAFKA_DETAIL_MAX];
  cr_assert_eq(hl_kafka_header_get(msg, HL_HDR_ORG, b, sizeof b), 5);
  cr_assert_str_eq(b, "org-9");
  cr_assert_gt(hl_kafka_header_get(msg, HL_HDR_ERROR_STAGE, b, sizeof b), 0);
  cr_assert_str_eq(b, "validator");
  cr_assert_gt(hl_kafka_header_get(msg, HL_HDR_ERROR_CODE, b, sizeof b), 0);
  cr_assert_str_eq(b, "schema");
  cr_assert_gt(hl_kafka_header_get(msg, HL_HDR_SOURCE_TOPIC, b, sizeof b), 0);
  cr_assert_str_eq(b, "dlq.in");
  cr_assert_gt(hl_kafka_header_get(msg, HL_HDR_SOURCE_PARTITION, b, sizeof b), 0);
  cr_assert_str_eq(b, "0");
  cr_assert_gt(hl_kafka_header_get(msg, HL_HDR_SOURCE_OFFSET, b, sizeof b), 0);
  cr_assert_str_eq(b, "0");
  cr_assert_gt(hl_kafka_header_get(msg, HL_HDR_ERROR_DETAIL, b, sizeof b), 0);
  json_error_t je;
  json_t *j = json_loads(b, 0, &je);
  cr_assert_not_null(j, "%s", b);
  cr_assert_str_eq(json_string_value(json_object_get(j, "resourceType")), "OperationOutcome");
  json_t *issue = json_array_get(json_object_get(j, "issue"), 0);
  cr_assert_str_eq(json_string_value(json_object_get(issue, "diagnostics")),
                   "Observation.status: required");
  json_decref(j);
  /* Exactly one of each error header, even though the input carried a stale one. */
  rd_kafka_headers_t *h = NULL;
  rd_kafka_message_headers((rd_kafka_message_t *)msg, &h);
  const void *v;
  size_t n;
  int count = 0;
  for (size_t i = 0; rd_kafka_header_get(h, i, HL_HDR_ERROR_CODE, &v, &n) == 0; i++)
    count++;
  cr_assert_eq(count, 1);
  s->dlq_ok++;
}

Test(kafka, dlq_keeps_original_bytes_and_headers, .timeout = 90) {
  hl_mock m;
  hl_mock_start(&m, 1);
  hl_mock_topic(&m, "dlq.in", 1);
  hl_mock_topic(&m, "hl.dlq", 1);
  /* An input with binary key and value and a stale error header. */
  char err[256];
  rd_kafka_t *raw = rd_kafka_new(RD_KAFKA_PRODUCER, hl_test_conf(m.bootstraps), err, sizeof err);
  rd_kafka_headers_t *h = rd_kafka_headers_new(2);
  rd_kafka_header_add(h, HL_HDR_ORG, -1, "org-9", -1);
  rd_kafka_header_add(h, HL_HDR_ERROR_CODE, -1, "old", -1);
  cr_assert_eq(rd_kafka_producev(raw, RD_KAFKA_V_TOPIC("dlq.in"), RD_KAFKA_V_KEY("k\0x", 3),
                                 RD_KAFKA_V_VALUE("\x01{\0}\xff", 5),
                                 RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADERS(h),
                                 RD_KAFKA_V_END),
               0);
  rd_kafka_flush(raw, 10000);
  rd_kafka_destroy(raw);

  hl_kafka_opts o = opts_for(m.bootstraps, "g-dlq", NULL);
  hl_producer *p = NULL;
  hl_consumer *c = NULL;
  cr_assert_eq(hl_producer_new(&o, NULL, NULL, &p, err, sizeof err), 0);
  cr_assert_eq(hl_consumer_new(&o, NULL, &c, err, sizeof err), 0);
  const char *topics[] = {"dlq.in"};
  hl_consumer_subscribe(c, topics, 1);
  rd_kafka_message_t *in = NULL;
  double end = hl_test_now() + 30;
  while (!in && hl_test_now() < end)
    in = hl_consumer_poll(c, 100);
  cr_assert_not_null(in);
  hl_kafka_ticket t = {.pending = 1};
  cr_assert_eq(hl_kafka_dlq(p, in, "validator", "schema", "Observation.status: required", &t), 0);
  hl_kafka_ticket_release(p, &t);
  cr_assert_eq(hl_producer_flush(p, 20000), 0);
  cr_assert_eq(t.pending, 0);
  cr_assert_eq(t.err, 0);
  rd_kafka_message_destroy(in);
  seen s = {0};
  cr_assert_eq(hl_test_read(m.bootstraps, "hl.dlq", 1, 1, 30, check_dlq, &s), 1);
  cr_assert_eq(s.dlq_ok, 1);
  hl_consumer_free(c);
  hl_producer_free(p);
  hl_mock_stop(&m);
}

/* Consumes with hl_consumer until an out-of-range event; returns messages seen. */
static int poll_until_oor(hl_consumer *c, double secs) {
  int msgs = 0;
  double end = hl_test_now() + secs;
  while (hl_consumer_out_of_range(c) == 0 && hl_test_now() < end) {
    rd_kafka_message_t *msg = hl_consumer_poll(c, 100);
    if (msg) {
      msgs++;
      rd_kafka_message_destroy(msg);
    }
  }
  /* Keep polling a little: nothing may arrive after the error either. */
  end = hl_test_now() + 1;
  while (hl_test_now() < end) {
    rd_kafka_message_t *msg = hl_consumer_poll(c, 100);
    if (msg) {
      msgs++;
      rd_kafka_message_destroy(msg);
    }
  }
  return msgs;
}

static void assert_oor(hl_mock *m, const char *topic, const char *group, int64_t committed) {
  hl_metrics *reg = NULL;
  hl_metrics_new(&reg);
  hl_kafka_opts o = opts_for(m->bootstraps, group, reg);
  hl_consumer *c = NULL;
  char err[256];
  cr_assert_eq(hl_consumer_new(&o, NULL, &c, err, sizeof err), 0);
  const char *topics[] = {topic};
  hl_consumer_subscribe(c, topics, 1);
  int msgs = poll_until_oor(c, 30);
  cr_assert_gt(hl_consumer_out_of_range(c), 0, "out-of-range not detected");
  cr_assert_eq(msgs, 0, "the consumer skipped ahead instead of stopping");
  char reason[256];
  cr_assert_not(hl_consumer_ready(c, reason, sizeof reason));
  cr_assert(strstr(reason, "out of range") != NULL, "%s", reason);
  hl_metric *fam = hl_metrics_counter(reg, "hl_kafka_offset_out_of_range_total", "",
                                      "topic,partition");
  cr_assert_geq(hl_series_value(hl_metric_at(fam, topic, "0")), 1);
  hl_consumer_free(c);
  /* The committed offset was not moved by a reset. */
  cr_assert_eq(hl_test_committed(m->bootstraps, group, topic, 0), committed);
  hl_metrics_free(reg);
}

Test(kafka, offset_beyond_end_is_an_error_not_a_skip, .timeout = 90) {
  hl_mock m;
  hl_mock_start(&m, 1);
  hl_mock_topic(&m, "oor.ahead", 1);
  hl_test_produce(m.bootstraps, "oor.ahead", 0, 10, 16, 0);
  hl_test_commit(m.bootstraps, "g-oor1", "oor.ahead", 0, 1000);
  assert_oor(&m, "oor.ahead", "g-oor1", 1000);
  hl_mock_stop(&m);
}

Test(kafka, data_aged_out_is_an_error_not_a_skip, .timeout = 120) {
  hl_mock m;
  hl_mock_start(&m, 1);
  hl_mock_topic(&m, "oor.aged", 1);
  /* The group has read 5 messages; then > 5 MiB more push offset 5 out of the mock's log. */
  hl_test_produce(m.bootstraps, "oor.aged", 0, 10, 16, 0);
  hl_test_commit(m.bootstraps, "g-oor2", "oor.aged", 0, 5);
  hl_test_produce(m.bootstraps, "oor.aged", 10, 7000, 1024, 0);
  assert_oor(&m, "oor.aged", "g-oor2", 5);
  hl_mock_stop(&m);
}

static bool poll_until_ready(hl_consumer *c, bool want, double secs, char *reason, size_t len) {
  double end = hl_test_now() + secs;
  while (hl_test_now() < end) {
    rd_kafka_message_t *msg = hl_consumer_poll(c, 100);
    if (msg)
      rd_kafka_message_destroy(msg);
    if (hl_consumer_ready(c, reason, len) == want)
      return true;
  }
  return false;
}

Test(kafka, readiness_follows_broker_connectivity, .timeout = 120) {
  hl_mock m;
  hl_mock_start(&m, 1);
  hl_mock_topic(&m, "conn.in", 1);
  hl_metrics *reg = NULL;
  hl_metrics_new(&reg);
  hl_kafka_opts o = opts_for(m.bootstraps, "g-conn", reg);
  hl_consumer *c = NULL;
  char err[256], reason[256] = "";
  cr_assert_eq(hl_consumer_new(&o, NULL, &c, err, sizeof err), 0);
  const char *topics[] = {"conn.in"};
  hl_consumer_subscribe(c, topics, 1);
  cr_assert(poll_until_ready(c, true, 30, reason, sizeof reason), "%s", reason);
  rd_kafka_mock_broker_set_down(m.mc, 1);
  cr_assert(poll_until_ready(c, false, 30, reason, sizeof reason), "still ready with the broker down");
  cr_assert(strstr(reason, "broker") != NULL, "%s", reason);
  rd_kafka_mock_broker_set_up(m.mc, 1);
  cr_assert(poll_until_ready(c, true, 30, reason, sizeof reason), "%s", reason);
  /* The broker gauge says the same thing. */
  hl_buf b;
  hl_buf_init(&b, 0);
  hl_metrics_render(reg, &b);
  cr_assert(strstr(b.data, "hl_kafka_broker_up{broker=") != NULL, "%s", b.data);
  hl_buf_free(&b);
  hl_consumer_free(c);
  hl_metrics_free(reg);
  hl_mock_stop(&m);
}

/*
 * Regression: with the broker gone, the final commit and the close used to
 * wait for ever for a group coordinator. Bounded, they give up in time, and
 * freeing the consumer does not wait either.
 */
Test(kafka, commit_and_close_are_bounded_without_a_broker, .timeout = 120) {
  hl_mock m;
  hl_mock_start(&m, 1);
  hl_mock_topic(&m, "gone.in", 1);
  hl_test_produce(m.bootstraps, "gone.in", 0, 10, 16, -1);
  hl_kafka_opts o = opts_for(m.bootstraps, "g-gone", NULL);
  hl_consumer *c = NULL;
  char err[256], reason[256] = "";
  cr_assert_eq(hl_consumer_new(&o, NULL, &c, err, sizeof err), 0);
  const char *topics[] = {"gone.in"};
  hl_consumer_subscribe(c, topics, 1);
  rd_kafka_message_t *msg = NULL;
  double end = hl_test_now() + 30;
  while (!msg && hl_test_now() < end)
    msg = hl_consumer_poll(c, 100);
  cr_assert_not_null(msg, "no message consumed");
  cr_assert_eq(hl_consumer_store(c, msg->rkt, msg->partition, msg->offset + 1), 0);
  rd_kafka_message_destroy(msg);
  /* With the broker up, a bounded commit answers. */
  cr_assert_eq(hl_consumer_commit_within(c, 10000), 0);
  msg = hl_consumer_poll(c, 100);
  if (msg) {
    hl_consumer_store(c, msg->rkt, msg->partition, msg->offset + 1);
    rd_kafka_message_destroy(msg);
  }
  rd_kafka_mock_broker_set_down(m.mc, 1);
  cr_assert(poll_until_ready(c, false, 30, reason, sizeof reason), "still ready with the broker down");
  double t0 = hl_test_now();
  int r = hl_consumer_commit_within(c, 500);
  double t1 = hl_test_now();
  cr_assert(r == HL_ETIMEOUT || r == HL_EKAFKA || r == 0, "commit: %s", hl_strerror(r));
  cr_assert_lt(t1 - t0, 5.0, "the commit waited %.1f s", t1 - t0);
  r = hl_consumer_close_within(c, 500);
  double t2 = hl_test_now();
  cr_assert(r == HL_ETIMEOUT || r == 0, "close: %s", hl_strerror(r));
  cr_assert_lt(t2 - t1, 5.0, "the close waited %.1f s", t2 - t1);
  cr_assert_eq(hl_consumer_close_within(c, 500), 0, "closing twice is a no-op");
  hl_consumer_free(c);
  cr_assert_lt(hl_test_now() - t2, 5.0, "freeing the consumer waited");
  hl_mock_stop(&m);
}

/* Counts a consumer's assigned partitions through its rebalance hooks. */
static void count_assigned(void *ud, const rd_kafka_topic_partition_list_t *parts) {
  *(int *)ud += parts->cnt;
}
static void count_revoking(void *ud, const rd_kafka_topic_partition_list_t *parts, bool lost) {
  (void)lost;
  *(int *)ud -= parts->cnt;
}

/* Polls both consumers (b may be NULL) until *na and *nb hold the wanted counts. */
static bool poll_until_assigned(hl_consumer *a, int *na, int want_a, hl_consumer *b, int *nb,
                                int want_b, double secs) {
  double end = hl_test_now() + secs;
  while (hl_test_now() < end) {
    rd_kafka_message_t *msg = hl_consumer_poll(a, 50);
    if (msg)
      rd_kafka_message_destroy(msg);
    if (b && (msg = hl_consumer_poll(b, 50)) != NULL)
      rd_kafka_message_destroy(msg);
    if (*na == want_a && (!b || *nb == want_b))
      return true;
  }
  return false;
}

/*
 * Regression (broker_outage stalled in CI): librdkafka keeps a partition's
 * pause flag when it leaves the assignment. A consumer paused, then resumed
 * while a partition was away (revoked, or lost in an outage), got that
 * partition back still paused and never read it again. The pause state is
 * the consumer's, so a partition that comes back follows it.
 */
Test(kafka, partition_returning_after_a_resume_is_not_left_paused, .timeout = 120) {
  hl_mock m;
  hl_mock_start(&m, 1);
  hl_mock_topic(&m, "pz.in", 2);
  hl_kafka_opts o = opts_for(m.bootstraps, "g-pz", NULL);
  char err[256] = "";
  int na = 0, nb = 0;
  hl_consumer_hooks ha = {.ud = &na, .assigned = count_assigned, .revoking = count_revoking};
  hl_consumer_hooks hb = {.ud = &nb, .assigned = count_assigned, .revoking = count_revoking};
  hl_consumer *a = NULL, *b = NULL;
  cr_assert_eq(hl_consumer_new(&o, &ha, &a, err, sizeof err), 0, "%s", err);
  const char *topics[] = {"pz.in"};
  cr_assert_eq(hl_consumer_subscribe(a, topics, 1), 0);
  cr_assert(poll_until_assigned(a, &na, 2, NULL, NULL, 0, 60), "a owns both partitions (%d)", na);
  cr_assert_eq(hl_consumer_pause(a, true), 0);

  /* b joins: one partition moves away from a, still carrying a's pause. */
  cr_assert_eq(hl_consumer_new(&o, &hb, &b, err, sizeof err), 0, "%s", err);
  cr_assert_eq(hl_consumer_subscribe(b, topics, 1), 0);
  cr_assert(poll_until_assigned(a, &na, 1, b, &nb, 1, 60), "one each (a %d, b %d)", na, nb);
  /* a resumes what it owns now; then b leaves and the partition comes back. */
  cr_assert_eq(hl_consumer_pause(a, false), 0);
  b = hl_consumer_free(b);
  cr_assert(poll_until_assigned(a, &na, 2, NULL, NULL, 0, 60), "a owns both again (%d)", na);

  hl_test_produce(m.bootstraps, "pz.in", 0, 10, 16, 0);
  hl_test_produce(m.bootstraps, "pz.in", 10, 10, 16, 1);
  int got[2] = {0, 0};
  double end = hl_test_now() + 20;
  while (got[0] + got[1] < 20 && hl_test_now() < end) {
    rd_kafka_message_t *msg = hl_consumer_poll(a, 100);
    if (!msg)
      continue;
    if (!msg->err && msg->partition >= 0 && msg->partition < 2)
      got[msg->partition]++;
    rd_kafka_message_destroy(msg);
  }
  cr_assert_eq(got[0], 10, "partition 0: %d of 10 read", got[0]);
  cr_assert_eq(got[1], 10, "partition 1: %d of 10 read", got[1]);
  hl_consumer_free(a);
  hl_mock_stop(&m);
}

/*
 * Regression: an upstream stage's downstream bound reads this group's
 * committed offsets. Committed once a second, they were up to 1 s stale,
 * and in bench/pipeline hl-validator stayed paused on offsets hl-loader had
 * long passed while the loader ran dry. Stored offsets are committed every
 * 200 ms.
 */
Test(kafka, stored_offsets_reach_the_group_within_a_fraction_of_a_second, .timeout = 90) {
  hl_mock m;
  hl_mock_start(&m, 1);
  hl_mock_topic(&m, "fresh.in", 1);
  hl_test_produce(m.bootstraps, "fresh.in", 0, 30, 16, 0);
  hl_kafka_opts o = opts_for(m.bootstraps, "g-fresh", NULL);
  /* HL_TEST_KAFKA_PROPS leaves auto.commit.interval.ms alone: this is the library's own. */
  char err[256] = "", val[32];
  size_t vlen = sizeof val;
  hl_consumer *c = NULL;
  cr_assert_eq(hl_consumer_new(&o, NULL, &c, err, sizeof err), 0, "%s", err);
  cr_assert_eq(rd_kafka_conf_get(rd_kafka_conf(hl_consumer_handle(c)), "auto.commit.interval.ms",
                                 val, &vlen),
               RD_KAFKA_CONF_OK);
  cr_assert_leq(atoi(val), 200, "auto.commit.interval.ms = %s", val);
  /* Same kind of regression: a caught-up consumer waited up to 0.5 s on hl-devbroker (kafka.c). */
  vlen = sizeof val;
  cr_assert_eq(rd_kafka_conf_get(rd_kafka_conf(hl_consumer_handle(c)), "fetch.wait.max.ms", val,
                                 &vlen),
               RD_KAFKA_CONF_OK);
  cr_assert_leq(atoi(val), 50, "fetch.wait.max.ms = %s", val);
  const char *topics[] = {"fresh.in"};
  cr_assert_eq(hl_consumer_subscribe(c, topics, 1), 0);
  rd_kafka_topic_t *rkt = NULL;
  int got = 0;
  double end = hl_test_now() + 30;
  while (got < 30 && hl_test_now() < end) {
    rd_kafka_message_t *msg = hl_consumer_poll(c, 100);
    if (!msg)
      continue;
    if (!rkt)
      rkt = rd_kafka_topic_new(hl_consumer_handle(c), "fresh.in", NULL);
    got++;
    rd_kafka_message_destroy(msg);
  }
  cr_assert_eq(got, 30);
  /* Three stores, each seen by the group soon after (polling as a worker does). */
  for (int64_t at = 10; at <= 30; at += 10) {
    cr_assert_eq(hl_consumer_store(c, rkt, 0, at), 0);
    double t0 = hl_test_now();
    while (hl_test_committed(m.bootstraps, "g-fresh", "fresh.in", 0) != at &&
           hl_test_now() < t0 + 5)
      hl_consumer_poll(c, 50);
    cr_assert_eq(hl_test_committed(m.bootstraps, "g-fresh", "fresh.in", 0), at);
  }
  rd_kafka_topic_destroy(rkt);
  hl_consumer_free(c);
  hl_mock_stop(&m);
}

/*
 * Regression: librdkafka 2.0 (Debian bookworm's) aborts in
 * rd_kafka_sticky_assignor_state_destroy (assertion `assignor_state`)
 * when a cooperative-sticky consumer that joined its group but never
 * received an assignment is destroyed (librdkafka issue 4312, fixed in
 * 2.3). pipeline_faults hit it: hl-parser restarted while dead members
 * still held the group, then stopped before the rebalance ended, and died
 * with status 134. Every SyncGroup fails here, so the consumer joins again
 * and again and is never assigned; freeing it must not abort.
 */
Test(kafka, a_consumer_freed_before_its_first_assignment_does_not_abort, .timeout = 60) {
  hl_mock m;
  hl_mock_start(&m, 1);
  hl_mock_topic(&m, "unassigned.in", 1);
  rd_kafka_resp_err_t errs[64];
  for (size_t i = 0; i < 64; i++)
    errs[i] = RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS;
  /* 14: the Kafka protocol's SyncGroup API key (rdkafka_protocol.h is not installed). */
  rd_kafka_mock_push_request_errors_array(m.mc, 14, 64, errs);
  hl_kafka_opts o = opts_for(m.bootstraps, "g-unassigned", NULL);
  char err[256] = "";
  hl_consumer *c = NULL;
  int assigned = 0;
  hl_consumer_hooks hooks = {.assigned = count_assigned, .ud = &assigned};
  cr_assert_eq(hl_consumer_new(&o, &hooks, &c, err, sizeof err), 0, "%s", err);
  const char *topics[] = {"unassigned.in"};
  cr_assert_eq(hl_consumer_subscribe(c, topics, 1), 0);
  /* Long enough for JoinGroup (and the failing SyncGroups) to be answered. */
  double end = hl_test_now() + 3;
  while (hl_test_now() < end) {
    rd_kafka_message_t *msg = hl_consumer_poll(c, 100);
    if (msg)
      rd_kafka_message_destroy(msg);
  }
  cr_assert_eq(assigned, 0, "the group assigned partitions after all");
  hl_consumer_free(c);
  hl_mock_stop(&m);
}
