/*
 * The announcer against librdkafka's in-process mock cluster: explicit
 * partitions, offsets recorded on acknowledgement, and recovery of pending
 * rows after a simulated crash (some messages on the topic, some not).
 */
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "announcer.h"
#include "hl/error.h"
#include "hl_test.h"
#include "state.h"

HL_TEST_SUITE(notifier_announce);

#define TOPIC "hl.landing.objects"
#define NPART 4

typedef struct env {
  rd_kafka_t *owner;
  rd_kafka_mock_cluster_t *mc;
  char brokers[256];
  char path[128];
  hl_nstate *st;
} env;

static void env_up(env *e) {
  memset(e, 0, sizeof *e);
  char err[256];
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  rd_kafka_conf_set(conf, "log_level", "0", NULL, 0);
  e->owner = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
  cr_assert_not_null(e->owner, "%s", err);
  e->mc = rd_kafka_mock_cluster_new(e->owner, 1);
  cr_assert_not_null(e->mc);
  cr_assert_eq(rd_kafka_mock_topic_create(e->mc, TOPIC, NPART, 1), 0);
  snprintf(e->brokers, sizeof e->brokers, "%s", rd_kafka_mock_cluster_bootstraps(e->mc));
  snprintf(e->path, sizeof e->path, "/tmp/hl-nann-%d.db", (int)getpid());
  unlink(e->path);
  cr_assert_eq(hl_nstate_open(e->path, &e->st), 0);
}

static void env_down(env *e) {
  hl_nstate_close(e->st);
  rd_kafka_mock_cluster_destroy(e->mc);
  rd_kafka_destroy(e->owner);
  char p[160];
  unlink(e->path);
  snprintf(p, sizeof p, "%s-wal", e->path);
  unlink(p);
  snprintf(p, sizeof p, "%s-shm", e->path);
  unlink(p);
}

static hl_announcer *ann_new(env *e) {
  hl_announcer_opts o = {.brokers = e->brokers, .topic = TOPIC, .max_inflight = 100,
                         .props = "log_level=0", .recover_timeout_ms = 20000};
  hl_announcer *a = NULL;
  char err[256] = "";
  cr_assert_eq(hl_announcer_new(&o, e->st, NULL, &a, err, sizeof err), 0, "%s", err);
  cr_assert_eq(hl_announcer_connect(a), 0);
  cr_assert_eq(hl_announcer_partitions(a), NPART);
  return a;
}

typedef struct msg {
  int32_t partition;
  int64_t offset;
  char key[64], event_id[40];
} msg;

/* Reads every message of the topic. */
static int read_all(env *e, msg *out, int max) {
  char err[256];
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  rd_kafka_conf_set(conf, "bootstrap.servers", e->brokers, NULL, 0);
  rd_kafka_conf_set(conf, "group.id", "t", NULL, 0);
  rd_kafka_conf_set(conf, "enable.partition.eof", "true", NULL, 0);
  rd_kafka_conf_set(conf, "log_level", "0", NULL, 0);
  rd_kafka_t *c = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
  cr_assert_not_null(c);
  rd_kafka_topic_partition_list_t *tl = rd_kafka_topic_partition_list_new(NPART);
  for (int p = 0; p < NPART; p++)
    rd_kafka_topic_partition_list_add(tl, TOPIC, p)->offset = RD_KAFKA_OFFSET_BEGINNING;
  rd_kafka_assign(c, tl);
  rd_kafka_topic_partition_list_destroy(tl);
  int n = 0, eofs = 0, idle = 0;
  while (eofs < NPART && idle < 100) {
    rd_kafka_message_t *m = rd_kafka_consumer_poll(c, 100);
    if (!m) {
      idle++;
      continue;
    }
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      eofs++;
    } else if (!m->err && n < max) {
      out[n].partition = m->partition;
      out[n].offset = m->offset;
      snprintf(out[n].key, sizeof out[n].key, "%.*s", (int)m->key_len, (const char *)m->key);
      rd_kafka_headers_t *h;
      const void *v;
      size_t len;
      out[n].event_id[0] = '\0';
      if (rd_kafka_message_headers(m, &h) == 0 &&
          rd_kafka_header_get_last(h, "hl-event-id", &v, &len) == 0)
        snprintf(out[n].event_id, sizeof out[n].event_id, "%.*s", (int)len, (const char *)v);
      n++;
    }
    rd_kafka_message_destroy(m);
  }
  rd_kafka_consumer_close(c);
  rd_kafka_destroy(c);
  return n;
}

static void item(hl_announce_item *it, char *key, char *mkey, char *eid, int i) {
  snprintf(key, 32, "k%d.ndjson", i);
  snprintf(mkey, 48, "b/k%d.ndjson", i);
  snprintf(eid, 40, "event-%02d", i);
  *it = (hl_announce_item){.bucket = "b", .key = key, .etag = "e", .event_id = eid, .org = "o",
                           .job = "j", .uri = "s3://b/k", .msg_key = mkey, .value = "{\"v\":1}"};
}

Test(notifier_announce, produces_to_computed_partitions, .timeout = 60) {
  env e;
  env_up(&e);
  hl_announcer *a = ann_new(&e);
  hl_announce_item items[20];
  char keys[20][32], mkeys[20][48], eids[20][40];
  for (int i = 0; i < 20; i++)
    item(&items[i], keys[i], mkeys[i], eids[i], i);
  cr_assert_eq(hl_announcer_recover(a), 0, "nothing pending");
  cr_assert_eq(hl_announcer_submit(a, items, 20), 20);
  /* The same versions again are skipped, not produced. */
  cr_assert_eq(hl_announcer_submit(a, items, 5), 0);
  cr_assert_eq(hl_announcer_flush(a, 20000), 0);
  cr_assert_eq(hl_nstate_count(e.st, HL_NSTATE_ANNOUNCED), 20);
  cr_assert_eq(hl_nstate_count(e.st, HL_NSTATE_PENDING), 0);
  msg got[64];
  int n = read_all(&e, got, 64);
  cr_assert_eq(n, 20);
  for (int i = 0; i < n; i++)
    cr_assert_eq(got[i].partition, hl_announcer_partition_for(got[i].key, NPART), "%s", got[i].key);
  hl_announcer_free(a);
  env_down(&e);
}

/* Simulates a crash: rows recorded as pending, only some of their messages on the topic. */
Test(notifier_announce, recovery_finds_and_reproduces, .timeout = 60) {
  env e;
  env_up(&e);
  hl_announcer *a = ann_new(&e);
  hl_announce_item items[12];
  char keys[12][32], mkeys[12][48], eids[12][40];
  for (int i = 0; i < 12; i++)
    item(&items[i], keys[i], mkeys[i], eids[i], i);
  /* Earlier traffic so that watermarks are not all zero. */
  cr_assert_eq(hl_announcer_submit(a, items, 4), 4);
  cr_assert_eq(hl_announcer_flush(a, 20000), 0);
  /* Eight more are produced, but the acknowledgements are lost: purge before serving reports. */
  cr_assert_eq(hl_announcer_submit(a, items + 4, 8), 8);
  /* Wait until the messages are on the broker, then drop the announcer without serving reports. */
  msg got[64];
  int n = 0;
  for (int tries = 0; tries < 100 && n < 12; tries++)
    n = read_all(&e, got, 64);
  cr_assert_eq(n, 12);
  /* Four of the eight go back to pending as a crash before their reports would leave them; two more were never produced. */
  hl_announcer_flush(a, 20000);
  hl_announcer_free(a);
  cr_assert_eq(hl_nstate_count(e.st, HL_NSTATE_PENDING), 0);
  hl_nstate_close(e.st);
  {
    sqlite3 *db = NULL;
    cr_assert_eq(sqlite3_open(e.path, &db), SQLITE_OK);
    cr_assert_eq(sqlite3_exec(db,
                              "UPDATE objects SET status=0, offset=NULL WHERE event_id IN "
                              "('event-04','event-05','event-06','event-07')",
                              NULL, NULL, NULL),
                 SQLITE_OK);
    cr_assert_eq(sqlite3_changes(db), 4);
    sqlite3_close(db);
  }
  cr_assert_eq(hl_nstate_open(e.path, &e.st), 0);
  hl_nstate_row extra[2];
  char ek[2][32], emk[2][48], eid[2][40];
  cr_assert_eq(hl_nstate_begin(e.st), 0);
  for (int i = 0; i < 2; i++) {
    snprintf(ek[i], 32, "never%d.ndjson", i);
    snprintf(emk[i], 48, "b/never%d.ndjson", i);
    snprintf(eid[i], 40, "never-%d", i);
    extra[i] = (hl_nstate_row){.bucket = "b", .key = ek[i], .etag = "e", .event_id = eid[i],
                               .org = "o", .job = "j", .uri = "s3://b/n", .msg_key = emk[i],
                               .value = "{}", .partition = hl_announcer_partition_for(emk[i], NPART),
                               .watermark = 0, .created_ms = 1};
    cr_assert_eq(hl_nstate_insert_pending(e.st, &extra[i]), 0);
  }
  cr_assert_eq(hl_nstate_commit(e.st), 0);
  cr_assert_eq(hl_nstate_count(e.st, HL_NSTATE_PENDING), 6);

  a = ann_new(&e);
  cr_assert_eq(hl_announcer_recover(a), 0);
  cr_assert_eq(hl_announcer_inflight(a), 2, "only the two missing rows are produced again");
  cr_assert_eq(hl_announcer_flush(a, 20000), 0);
  cr_assert_eq(hl_nstate_count(e.st, HL_NSTATE_PENDING), 0);
  cr_assert_eq(hl_nstate_count(e.st, HL_NSTATE_ANNOUNCED), 14);
  n = read_all(&e, got, 64);
  cr_assert_eq(n, 14, "every event exactly once");
  for (int i = 0; i < n; i++)
    for (int j = i + 1; j < n; j++)
      cr_assert_str_neq(got[i].event_id, got[j].event_id);
  hl_announcer_free(a);
  env_down(&e);
}

/*
 * Regression: recovery must read each partition from the lowest watermark of
 * its pending rows, not from the watermark of the first row in event-id order.
 * Batch A (ids "z-..", low watermarks) and batch B (ids "a-..", higher
 * watermarks) are both on the topic; all their rows are pending again.
 */
Test(notifier_announce, recovery_reads_from_lowest_watermark, .timeout = 60) {
  env e;
  env_up(&e);
  hl_announcer *a = ann_new(&e);
  hl_announce_item items[32];
  char keys[32][32], mkeys[32][48], eids[32][40];
  for (int i = 0; i < 32; i++) {
    item(&items[i], keys[i], mkeys[i], eids[i], i);
    snprintf(eids[i], 40, "%s-%02d", i < 16 ? "z" : "a", i);
  }
  cr_assert_eq(hl_announcer_submit(a, items, 16), 16);
  cr_assert_eq(hl_announcer_flush(a, 20000), 0);
  cr_assert_eq(hl_announcer_submit(a, items + 16, 16), 16);
  cr_assert_eq(hl_announcer_flush(a, 20000), 0);
  hl_announcer_free(a);
  hl_nstate_close(e.st);
  sqlite3 *db = NULL;
  cr_assert_eq(sqlite3_open(e.path, &db), SQLITE_OK);
  cr_assert_eq(sqlite3_exec(db, "UPDATE objects SET status=0, offset=NULL", NULL, NULL, NULL), SQLITE_OK);
  cr_assert_eq(sqlite3_changes(db), 32);
  sqlite3_close(db);
  cr_assert_eq(hl_nstate_open(e.path, &e.st), 0);
  a = ann_new(&e);
  cr_assert_eq(hl_announcer_recover(a), 0);
  cr_assert_eq(hl_announcer_inflight(a), 0, "every pending row is already on the topic");
  cr_assert_eq(hl_nstate_count(e.st, HL_NSTATE_ANNOUNCED), 32);
  msg got[64];
  cr_assert_eq(read_all(&e, got, 64), 32);
  hl_announcer_free(a);
  env_down(&e);
}
