/* hl-devbroker's logic (tools/devbroker/devbroker.c) against a real mock cluster. */
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "devbroker.h"
#include "hl/error.h"
#include "hl_test.h"

HL_TEST_SUITE(devbroker);

#define DATA_DIR HL_SOURCE_ROOT "/tests/data/topics"

typedef struct fixture {
  hl_topics *topics;
  hl_metrics *reg;
  hl_devbroker *db;
} fixture;

static void start(fixture *f, int brokers, bool bytes) {
  char err[512] = "";
  memset(f, 0, sizeof *f);
  cr_assert_eq(hl_topics_load(DATA_DIR "/good.json", &f->topics, err, sizeof err), 0, "%s", err);
  cr_assert_eq(hl_metrics_new(&f->reg), 0);
  hl_devbroker_opts o = {.brokers = brokers, .topics = f->topics, .extra_topics = "x.extra:3",
                         .metrics_interval_ms = 200, .byte_metrics = bytes};
  cr_assert_eq(hl_devbroker_new(&o, f->reg, &f->db, err, sizeof err), 0, "%s", err);
}

static void stop(fixture *f) {
  f->db = hl_devbroker_free(f->db);
  f->reg = hl_metrics_free(f->reg);
  f->topics = hl_topics_free(f->topics);
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void on_dr(rd_kafka_t *rk, const rd_kafka_message_t *m, void *ud) {
  int *errs = rd_kafka_opaque(rk);
  (void)ud;
  if (m->err)
    errs[0]++, errs[1] = m->err;
}

/* Produces n keyed messages (key "k<i>", value of vlen bytes); returns the failed count. */
static int produce(const char *bootstraps, const char *topic, int n, size_t vlen, int *last_err,
                   const char *extra_k, const char *extra_v) {
  char err[512];
  int errs[2] = {0, 0};
  rd_kafka_conf_t *c = rd_kafka_conf_new();
  cr_assert_eq(rd_kafka_conf_set(c, "bootstrap.servers", bootstraps, err, sizeof err), 0);
  cr_assert_eq(rd_kafka_conf_set(c, "linger.ms", "5", err, sizeof err), 0);
  cr_assert_eq(rd_kafka_conf_set(c, "message.timeout.ms", "10000", err, sizeof err), 0);
  if (extra_k)
    cr_assert_eq(rd_kafka_conf_set(c, extra_k, extra_v, err, sizeof err), 0, "%s", err);
  rd_kafka_conf_set_dr_msg_cb(c, on_dr);
  rd_kafka_conf_set_opaque(c, errs);
  rd_kafka_t *p = rd_kafka_new(RD_KAFKA_PRODUCER, c, err, sizeof err);
  cr_assert_not_null(p, "%s", err);
  char *val = malloc(vlen + 1);
  memset(val, 'v', vlen);
  for (int i = 0; i < n; i++) {
    char key[32];
    int kl = snprintf(key, sizeof key, "k%06d", i);
    rd_kafka_resp_err_t e;
    while ((e = rd_kafka_producev(p, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, (size_t)kl),
                                  RD_KAFKA_V_VALUE(val, vlen),
                                  RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END)) ==
           RD_KAFKA_RESP_ERR__QUEUE_FULL)
      rd_kafka_poll(p, 10);
    cr_assert_eq(e, 0, "produce: %s", rd_kafka_err2str(e));
  }
  rd_kafka_flush(p, 20000);
  cr_assert_eq(rd_kafka_outq_len(p), 0);
  rd_kafka_destroy(p);
  free(val);
  if (last_err)
    *last_err = errs[1];
  return errs[0];
}

/*
 * Refreshes until the topic shows n messages: right after a broker comes
 * back, the watcher's client may still be reconnecting. Fails after 30 s.
 */
static void refresh_until(fixture *f, const char *topic, int64_t n) {
  hl_devbroker_topic_stats st = {0};
  double deadline = now_s() + 30;
  int rc;
  do {
    rc = hl_devbroker_refresh(f->db);
    if (rc == 0 && hl_devbroker_topic_stats_get(f->db, topic, &st) == 0 && st.messages == n)
      return;
    struct timespec ts = {0, 100000000};
    nanosleep(&ts, NULL);
  } while (now_s() < deadline);
  cr_assert_fail("%s: %lld messages, not %lld, after 30 s (last refresh: %d)", topic,
                 (long long)st.messages, (long long)n, rc);
}

static bool metrics_have(hl_metrics *reg, const char *needle) {
  hl_buf b;
  hl_buf_init(&b, 0);
  cr_assert_eq(hl_metrics_render(reg, &b), 0);
  bool found = b.data && strstr(b.data, needle) != NULL;
  hl_buf_free(&b);
  return found;
}

static int control(fixture *f, const char *method, const char *path, const char *body,
                   char *out, size_t outlen) {
  hl_buf b;
  hl_buf_init(&b, 0);
  int status = hl_devbroker_control(f->db, method, path, body, body ? strlen(body) : 0, &b);
  snprintf(out, outlen, "%s", b.data ? b.data : "");
  hl_buf_free(&b);
  return status;
}

Test(devbroker, creates_topics_and_counts_messages_and_bytes, .timeout = 120) {
  fixture f;
  start(&f, 2, true);
  const char *bs = hl_devbroker_bootstraps(f.db);
  cr_assert_not_null(strchr(bs, ','), "two brokers: %s", bs);
  cr_assert_eq(strncmp(bs, "127.0.0.1:", 10), 0);

  hl_devbroker_topic_stats st;
  cr_assert_eq(hl_devbroker_topic_stats_get(f.db, "t.one", &st), 0);
  cr_assert_eq(st.partitions, 4);
  cr_assert_eq(hl_devbroker_topic_stats_get(f.db, "x.extra", &st), 0);
  cr_assert_eq(st.partitions, 3);
  cr_assert_eq(hl_devbroker_topic_stats_get(f.db, "nope", &st), HL_ENOTFOUND);

  cr_assert_eq(produce(bs, "t.one", 1000, 100, NULL, NULL, NULL), 0);
  refresh_until(&f, "t.one", 1000);
  cr_assert_eq(hl_devbroker_topic_stats_get(f.db, "t.one", &st), 0);
  cr_assert_eq(st.messages, 1000);
  cr_assert_eq(st.dropped, 0);
  /* The reader catches up on its own; every key is 7 bytes. */
  double deadline = now_s() + 60;
  while (hl_devbroker_topic_stats_get(f.db, "t.one", &st) == 0 && st.bytes < 1000 * 107 &&
         now_s() < deadline) {
    struct timespec ts = {0, 50000000};
    nanosleep(&ts, NULL);
  }
  cr_assert_eq(st.bytes, 1000 * 107);
  cr_assert(metrics_have(f.reg, "hl_devbroker_messages_total{topic=\"t.one\"} 1000"));
  cr_assert(metrics_have(f.reg, "hl_devbroker_bytes_total{topic=\"t.one\"} 107000"));
  cr_assert(metrics_have(f.reg, "hl_devbroker_messages_retained{topic=\"t.one\"} 1000"));
  cr_assert(metrics_have(f.reg, "hl_devbroker_partitions{topic=\"x.extra\"} 3"));

  /* A topic the mock creates on first use is watched as well. */
  cr_assert_eq(produce(bs, "auto.created", 10, 10, NULL, NULL, NULL), 0);
  refresh_until(&f, "auto.created", 10);
  stop(&f);
}

Test(devbroker, control_brokers_state_and_metrics, .timeout = 120) {
  fixture f;
  start(&f, 3, false);
  char out[8192];
  cr_assert_eq(control(&f, "GET", "/control/state", NULL, out, sizeof out), 200, "%s", out);
  cr_assert(strstr(out, "\"bootstrap\":\"127.0.0.1:") != NULL, "%s", out);
  cr_assert(strstr(out, "\"name\":\"t.one\"") != NULL, "%s", out);
  cr_assert(strstr(out, "\"bytes\"") == NULL, "no byte counts without the reader: %s", out);
  cr_assert(metrics_have(f.reg, "hl_devbroker_broker_up{broker=\"2\"} 1"));

  cr_assert_eq(control(&f, "POST", "/control/broker/2/down", NULL, out, sizeof out), 200, "%s", out);
  cr_assert(strstr(out, "{\"id\":2,") != NULL, "%s", out);
  cr_assert(metrics_have(f.reg, "hl_devbroker_broker_up{broker=\"2\"} 0"));
  cr_assert(metrics_have(f.reg, "hl_devbroker_broker_up{broker=\"1\"} 1"));
  cr_assert(hl_devbroker_ready(f.db));
  cr_assert_eq(control(&f, "POST", "/control/broker/all/down", "", out, sizeof out), 200);
  cr_assert_not(hl_devbroker_ready(f.db));
  cr_assert(metrics_have(f.reg, "hl_devbroker_broker_up{broker=\"1\"} 0"));
  cr_assert_eq(control(&f, "POST", "/control/broker/1/up", NULL, out, sizeof out), 200);
  cr_assert(hl_devbroker_ready(f.db));
  cr_assert_eq(control(&f, "POST", "/control/reset", NULL, out, sizeof out), 200);
  cr_assert(metrics_have(f.reg, "hl_devbroker_broker_up{broker=\"3\"} 1"));
  cr_assert(strstr(out, "\"up\":false") == NULL, "%s", out);

  /* Errors of the caller. */
  cr_assert_eq(control(&f, "POST", "/control/broker/9/down", NULL, out, sizeof out), 404);
  cr_assert_eq(control(&f, "POST", "/control/broker/1/sideways", NULL, out, sizeof out), 404);
  cr_assert_eq(control(&f, "GET", "/control/broker/1/down", NULL, out, sizeof out), 405);
  cr_assert_eq(control(&f, "POST", "/control/state", NULL, out, sizeof out), 405);
  cr_assert_eq(control(&f, "GET", "/control/nothing", NULL, out, sizeof out), 404);
  cr_assert(strstr(out, "\"error\":") != NULL, "%s", out);
  cr_assert_eq(control(&f, "POST", "/control/latency", "{", out, sizeof out), 400);
  cr_assert_eq(control(&f, "POST", "/control/latency", "{\"rtt_ms\":-1}", out, sizeof out), 400);
  cr_assert_eq(control(&f, "POST", "/control/latency", "{\"rtt_ms\":5,\"broker\":7}", out,
                       sizeof out), 400);
  cr_assert_eq(control(&f, "POST", "/control/errors", "{\"api\":\"Nope\",\"errors\":[1]}", out,
                       sizeof out), 400);
  cr_assert(strstr(out, "\\\"api\\\"") != NULL, "%s", out);
  cr_assert_eq(control(&f, "POST", "/control/errors", "{\"api\":\"Produce\",\"errors\":[]}", out,
                       sizeof out), 400);
  cr_assert_eq(control(&f, "POST", "/control/errors",
                       "{\"api\":\"Produce\",\"errors\":[\"NO_SUCH_ERROR\"]}", out, sizeof out), 400);
  cr_assert_eq(control(&f, "POST", "/control/errors",
                       "{\"api\":\"Produce\",\"errors\":[\"REQUEST_TIMED_OUT\"],\"rtt_ms\":5}", out,
                       sizeof out), 400, "rtt_ms needs a broker");

  /* Per-broker errors wait in that broker's stack, visible in the state. */
  cr_assert_eq(control(&f, "POST", "/control/errors",
                       "{\"api\":\"Fetch\",\"broker\":3,\"errors\":[\"NOT_LEADER_FOR_PARTITION\",6],"
                       "\"rtt_ms\":10}", out, sizeof out), 200, "%s", out);
  cr_assert(strstr(out, "\"pending_errors\":2") != NULL, "%s", out);
  cr_assert(strstr(out, "\"errors_injected\":2") != NULL, "%s", out);
  cr_assert(metrics_have(f.reg, "hl_devbroker_injected_errors_total{api=\"Fetch\"} 2"));
  stop(&f);
}

/* Injected errors and latency change what a real client sees. */
Test(devbroker, injected_errors_and_latency_reach_clients, .timeout = 120) {
  fixture f;
  start(&f, 1, false);
  const char *bs = hl_devbroker_bootstraps(f.db);
  char out[8192];
  int last = 0;
  cr_assert_eq(control(&f, "POST", "/control/errors",
                       "{\"api\":\"Produce\",\"errors\":[\"TOPIC_AUTHORIZATION_FAILED\"]}", out,
                       sizeof out), 200, "%s", out);
  cr_assert_eq(produce(bs, "t.two", 1, 10, &last, "retries", "0"), 1);
  cr_assert_eq(last, RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED, "%s", rd_kafka_err2name(last));
  cr_assert_eq(produce(bs, "t.two", 1, 10, &last, "retries", "0"), 0, "only the next request fails");

  cr_assert_eq(control(&f, "POST", "/control/latency", "{\"rtt_ms\":400}", out, sizeof out), 200,
               "%s", out);
  cr_assert(strstr(out, "\"rtt_ms\":400") != NULL, "%s", out);
  cr_assert(metrics_have(f.reg, "hl_devbroker_broker_rtt_seconds{broker=\"1\"} 0.4"));
  double t0 = now_s();
  cr_assert_eq(produce(bs, "t.two", 1, 10, NULL, NULL, NULL), 0);
  double slow = now_s() - t0;
  cr_assert_geq(slow, 0.8, "ApiVersions, Metadata and Produce each wait 400 ms: %.3f s", slow);
  cr_assert_eq(control(&f, "POST", "/control/reset", NULL, out, sizeof out), 200);
  cr_assert(strstr(out, "\"rtt_ms\":0") != NULL, "%s", out);

  /* A broker that is down refuses clients until it is up again. */
  cr_assert_eq(hl_devbroker_set_up(f.db, 1, false), 0);
  cr_assert_eq(produce(bs, "t.two", 1, 10, &last, "message.timeout.ms", "1500"), 1);
  cr_assert_eq(last, RD_KAFKA_RESP_ERR__MSG_TIMED_OUT, "%s", rd_kafka_err2name(last));
  cr_assert_eq(hl_devbroker_set_up(f.db, 1, true), 0);
  cr_assert_eq(produce(bs, "t.two", 1, 10, NULL, NULL, NULL), 0);
  refresh_until(&f, "t.two", 3);
  stop(&f);
}

Test(devbroker, names_and_bad_options) {
  cr_assert_eq(hl_devbroker_api_key("Produce"), 0);
  cr_assert_eq(hl_devbroker_api_key("fetch"), 1);
  cr_assert_eq(hl_devbroker_api_key("InitProducerId"), 22);
  cr_assert_eq(hl_devbroker_api_key("3"), 3);
  cr_assert_eq(hl_devbroker_api_key("Teleport"), -1);
  cr_assert_eq(hl_devbroker_api_key("-1"), -1);
  cr_assert_eq(hl_devbroker_error_code("NOT_LEADER_FOR_PARTITION"), 6);
  cr_assert_eq(hl_devbroker_error_code("rd_kafka_resp_err_request_timed_out"), 7);
  cr_assert_eq(hl_devbroker_error_code("29"), 29);
  cr_assert_eq(hl_devbroker_error_code("_MSG_TIMED_OUT"), 0, "client-side errors refused");
  cr_assert_eq(hl_devbroker_error_code("0"), 0);
  cr_assert_eq(hl_devbroker_error_code("99999"), 0);

  hl_devbroker *db = NULL;
  char err[256] = "";
  hl_devbroker_opts o = {.brokers = 0};
  cr_assert_eq(hl_devbroker_new(&o, NULL, &db, err, sizeof err), HL_ECONFIG);
  o.brokers = 1;
  o.extra_topics = "a:1,bad topic:2";
  cr_assert_eq(hl_devbroker_new(&o, NULL, &db, err, sizeof err), HL_ECONFIG);
  cr_assert(strstr(err, "bad topic") != NULL, "%s", err);
  o.extra_topics = "a";
  cr_assert_eq(hl_devbroker_new(&o, NULL, &db, err, sizeof err), HL_ECONFIG);
  o.extra_topics = "a:0";
  cr_assert_eq(hl_devbroker_new(&o, NULL, &db, err, sizeof err), HL_ECONFIG);
  cr_assert_null(db);
  cr_assert_null(hl_devbroker_free(NULL));
}
