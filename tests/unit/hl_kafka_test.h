/*
 * Helpers for tests that run against librdkafka's in-process mock cluster:
 * start a cluster, create topics, produce and read raw messages, and look
 * up committed and end offsets with plain librdkafka handles (so the code
 * under test is not used to check itself).
 */
#ifndef HL_KAFKA_TEST_H
#define HL_KAFKA_TEST_H

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "hl_test.h"

typedef struct hl_mock {
  rd_kafka_t *rk;
  rd_kafka_mock_cluster_t *mc;
  char bootstraps[512];
} hl_mock;

static inline rd_kafka_conf_t *hl_test_conf(const char *bootstraps) {
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  char err[256];
  if (bootstraps)
    cr_assert_eq(rd_kafka_conf_set(conf, "bootstrap.servers", bootstraps, err, sizeof err), 0);
  rd_kafka_conf_set(conf, "log_level", "3", err, sizeof err);
  return conf;
}

static inline void hl_mock_start(hl_mock *m, int brokers) {
  char err[256];
  m->rk = rd_kafka_new(RD_KAFKA_PRODUCER, hl_test_conf(NULL), err, sizeof err);
  cr_assert_not_null(m->rk, "%s", err);
  m->mc = rd_kafka_mock_cluster_new(m->rk, brokers);
  cr_assert_not_null(m->mc);
  snprintf(m->bootstraps, sizeof m->bootstraps, "%s", rd_kafka_mock_cluster_bootstraps(m->mc));
}

static inline void hl_mock_stop(hl_mock *m) {
  rd_kafka_mock_cluster_destroy(m->mc);
  rd_kafka_destroy(m->rk);
}

static inline void hl_mock_topic(hl_mock *m, const char *topic, int partitions) {
  cr_assert_eq(rd_kafka_mock_topic_create(m->mc, topic, partitions, 1), 0);
}

static inline double hl_test_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/*
 * Produces n messages to topic (partition -1: by key) with key "k<i>",
 * a value of vlen bytes starting "v<i>:", and headers hl-org=org-1 and
 * hl-line=<i>. Waits for every acknowledgement.
 */
static inline void hl_test_produce(const char *bs, const char *topic, int first, int n,
                                   size_t vlen, int32_t partition) {
  char err[256];
  rd_kafka_conf_t *conf = hl_test_conf(bs);
  rd_kafka_conf_set(conf, "linger.ms", "5", err, sizeof err);
  rd_kafka_t *p = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
  cr_assert_not_null(p, "%s", err);
  char *val = malloc(vlen + 32);
  cr_assert_not_null(val);
  for (int i = first; i < first + n; i++) {
    char key[32], line[16];
    snprintf(key, sizeof key, "k%d", i);
    snprintf(line, sizeof line, "%d", i);
    int l = snprintf(val, vlen + 32, "v%d:", i);
    size_t len = (size_t)l > vlen ? (size_t)l : vlen;
    memset(val + l, 'x', len - (size_t)l);
    rd_kafka_headers_t *h = rd_kafka_headers_new(2);
    rd_kafka_header_add(h, "hl-org", -1, "org-1", -1);
    rd_kafka_header_add(h, "hl-line", -1, line, -1);
    rd_kafka_resp_err_t e;
    while ((e = rd_kafka_producev(p, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(partition),
                                  RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                  RD_KAFKA_V_KEY(key, strlen(key)), RD_KAFKA_V_VALUE(val, len),
                                  RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_END)) ==
           RD_KAFKA_RESP_ERR__QUEUE_FULL)
      rd_kafka_poll(p, 10);
    cr_assert_eq(e, 0, "%s", rd_kafka_err2str(e));
  }
  free(val);
  cr_assert_eq(rd_kafka_flush(p, 30000), 0);
  rd_kafka_destroy(p);
}

/* The committed offset of group on topic/partition (RD_KAFKA_OFFSET_INVALID when none). */
static inline int64_t hl_test_committed(const char *bs, const char *group, const char *topic,
                                        int32_t partition) {
  char err[256];
  rd_kafka_conf_t *conf = hl_test_conf(bs);
  rd_kafka_conf_set(conf, "group.id", group, err, sizeof err);
  rd_kafka_t *c = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
  cr_assert_not_null(c);
  rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(l, topic, partition);
  rd_kafka_resp_err_t e = rd_kafka_committed(c, l, 10000);
  cr_assert_eq(e, 0, "committed: %s", rd_kafka_err2str(e));
  int64_t off = l->elems[0].offset;
  rd_kafka_topic_partition_list_destroy(l);
  rd_kafka_destroy(c);
  return off;
}

/* Commits offset for group on topic/partition directly. */
static inline void hl_test_commit(const char *bs, const char *group, const char *topic,
                                  int32_t partition, int64_t offset) {
  char err[256];
  rd_kafka_conf_t *conf = hl_test_conf(bs);
  rd_kafka_conf_set(conf, "group.id", group, err, sizeof err);
  rd_kafka_t *c = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
  cr_assert_not_null(c);
  rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(l, topic, partition)->offset = offset;
  rd_kafka_resp_err_t e = rd_kafka_commit(c, l, 0);
  cr_assert_eq(e, 0, "commit: %s", rd_kafka_err2str(e));
  rd_kafka_topic_partition_list_destroy(l);
  rd_kafka_destroy(c);
}

/* The high watermark (end offset) of topic/partition. */
static inline int64_t hl_test_end(const char *bs, const char *topic, int32_t partition) {
  char err[256];
  rd_kafka_t *p = rd_kafka_new(RD_KAFKA_PRODUCER, hl_test_conf(bs), err, sizeof err);
  int64_t lo = -1, hi = -1;
  rd_kafka_resp_err_t e = rd_kafka_query_watermark_offsets(p, topic, partition, &lo, &hi, 10000);
  cr_assert_eq(e, 0, "watermarks: %s", rd_kafka_err2str(e));
  rd_kafka_destroy(p);
  return hi;
}

/*
 * Reads every partition of topic from the beginning until want messages
 * arrived or timeout_s passed; calls fn for each. Returns the count.
 */
typedef void hl_test_msg_fn(void *ud, const rd_kafka_message_t *m);
static inline int hl_test_read(const char *bs, const char *topic, int partitions, int want,
                               double timeout_s, hl_test_msg_fn *fn, void *ud) {
  char err[256];
  rd_kafka_conf_t *conf = hl_test_conf(bs);
  rd_kafka_conf_set(conf, "group.id", "hl-test-reader", err, sizeof err);
  rd_kafka_conf_set(conf, "enable.auto.commit", "false", err, sizeof err);
  rd_kafka_t *c = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
  cr_assert_not_null(c);
  rd_kafka_poll_set_consumer(c);
  rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(partitions);
  for (int i = 0; i < partitions; i++)
    rd_kafka_topic_partition_list_add(l, topic, i)->offset = RD_KAFKA_OFFSET_BEGINNING;
  cr_assert_eq(rd_kafka_assign(c, l), 0);
  rd_kafka_topic_partition_list_destroy(l);
  int got = 0;
  double end = hl_test_now() + timeout_s;
  while (got < want && hl_test_now() < end) {
    rd_kafka_message_t *m = rd_kafka_consumer_poll(c, 100);
    if (!m)
      continue;
    if (!m->err) {
      got++;
      if (fn)
        fn(ud, m);
    }
    rd_kafka_message_destroy(m);
  }
  rd_kafka_consumer_close(c);
  rd_kafka_destroy(c);
  return got;
}

/* librdkafka properties that make group tests quick on the mock cluster. */
#define HL_TEST_KAFKA_PROPS                                                             \
  "session.timeout.ms=6000,heartbeat.interval.ms=300,topic.metadata.refresh.interval.ms=500," \
  "log_level=3"

#endif
