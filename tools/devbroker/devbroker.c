#include "devbroker.h"

#include <errno.h>
#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "hl/error.h"
#include "hl/log.h"

/* How long one metadata or watermark query may take before it gives up. */
#define QUERY_TIMEOUT_MS 2000
/* Highest Kafka API key the reset clears and the state reports. */
#define MAX_API_KEY 67

typedef struct broker_state {
  int id;
  char addr[64];
  bool up;
  int rtt_ms;
  hl_series *up_s, *rtt_s;
} broker_state;

typedef struct topic_state {
  char *name;
  int partitions;
  int assigned;       /* partitions handed to the reader so far */
  int64_t *hw, *lw;   /* per partition, last known; -1 until read */
  int64_t messages, dropped, bytes;
  hl_series *messages_s, *dropped_s, *retained_s, *bytes_s, *partitions_s;
} topic_state;

struct hl_devbroker {
  pthread_mutex_t lock; /* guards everything below that changes after new */
  pthread_cond_t wake;
  bool stop;

  rd_kafka_t *mrk;             /* the handle the mock cluster belongs to */
  rd_kafka_mock_cluster_t *mc;
  char *bootstraps;
  int nbrokers;
  broker_state brokers[HL_DEVBROKER_MAX_BROKERS];

  topic_state *topics;
  size_t ntopics;

  rd_kafka_t *watch;  /* metadata and watermark queries */
  rd_kafka_t *reader; /* counts payload bytes; NULL without byte_metrics */
  rd_kafka_queue_t *reader_q;
  int interval_ms;

  pthread_t watcher_thr, reader_thr;
  bool watcher_started, reader_started;

  hl_metrics *reg;
  hl_metric *m_messages, *m_dropped, *m_retained, *m_bytes, *m_partitions, *m_up, *m_rtt,
      *m_injected, *m_refresh_errors;
  hl_series *refresh_errors_s;
  uint64_t errors_pushed;
};

/* Kafka API keys by name, as the protocol numbers them. */
static const char *const api_names[] = {
    [0] = "Produce", [1] = "Fetch", [2] = "ListOffsets", [3] = "Metadata",
    [4] = "LeaderAndIsr", [5] = "StopReplica", [6] = "UpdateMetadata",
    [7] = "ControlledShutdown", [8] = "OffsetCommit", [9] = "OffsetFetch",
    [10] = "FindCoordinator", [11] = "JoinGroup", [12] = "Heartbeat", [13] = "LeaveGroup",
    [14] = "SyncGroup", [15] = "DescribeGroups", [16] = "ListGroups", [17] = "SaslHandshake",
    [18] = "ApiVersions", [19] = "CreateTopics", [20] = "DeleteTopics", [21] = "DeleteRecords",
    [22] = "InitProducerId", [23] = "OffsetForLeaderEpoch", [24] = "AddPartitionsToTxn",
    [25] = "AddOffsetsToTxn", [26] = "EndTxn", [27] = "WriteTxnMarkers",
    [28] = "TxnOffsetCommit", [29] = "DescribeAcls", [30] = "CreateAcls", [31] = "DeleteAcls",
    [32] = "DescribeConfigs", [33] = "AlterConfigs", [34] = "AlterReplicaLogDirs",
    [35] = "DescribeLogDirs", [36] = "SaslAuthenticate", [37] = "CreatePartitions",
    [38] = "CreateDelegationToken", [39] = "RenewDelegationToken",
    [40] = "ExpireDelegationToken", [41] = "DescribeDelegationToken", [42] = "DeleteGroups",
    [43] = "ElectLeaders", [44] = "IncrementalAlterConfigs",
    [45] = "AlterPartitionReassignments", [46] = "ListPartitionReassignments",
    [47] = "OffsetDelete", [48] = "DescribeClientQuotas", [49] = "AlterClientQuotas",
    [50] = "DescribeUserScramCredentials", [51] = "AlterUserScramCredentials",
};
#define NAPI_NAMES ((int)(sizeof api_names / sizeof api_names[0]))

static int seterr(char *err, size_t errlen, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int seterr(char *err, size_t errlen, int rc, const char *fmt, ...) {
  if (err && errlen) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
  }
  return rc;
}

/* Parses a whole decimal number within [min, max]; -1 when it is not one. */
static int parse_num(const char *s, long min, long max, long *out) {
  if (!s || !*s)
    return -1;
  char *end = NULL;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno || *end || v < min || v > max)
    return -1;
  *out = v;
  return 0;
}

int hl_devbroker_api_key(const char *name) {
  long v;
  if (!name)
    return -1;
  if (parse_num(name, 0, 32767, &v) == 0)
    return (int)v;
  for (int i = 0; i < NAPI_NAMES; i++)
    if (api_names[i] && strcasecmp(api_names[i], name) == 0)
      return i;
  return -1;
}

static const char *api_name(int key, char *buf, size_t n) {
  if (key >= 0 && key < NAPI_NAMES && api_names[key])
    return api_names[key];
  snprintf(buf, n, "%d", key);
  return buf;
}

int hl_devbroker_error_code(const char *name) {
  if (!name)
    return 0;
  const struct rd_kafka_err_desc *descs;
  size_t n;
  rd_kafka_get_err_descs(&descs, &n);
  long v;
  bool numeric = parse_num(name, 1, 32767, &v) == 0;
  if (!numeric && strncasecmp(name, "RD_KAFKA_RESP_ERR_", 18) == 0)
    name += 18;
  /* Only broker errors (positive codes) travel over the wire. */
  for (size_t i = 0; i < n; i++) {
    if (descs[i].code <= 0 || !descs[i].name)
      continue;
    if (numeric ? descs[i].code == v : strcasecmp(descs[i].name, name) == 0)
      return descs[i].code;
  }
  return 0;
}

/* librdkafka's own logs go to our log at debug level. */
static void kafka_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf) {
  if (hl_log_enabled(HL_LOG_DEBUG))
    hl_log_kv(HL_LOG_DEBUG, "librdkafka", "client", rd_kafka_name(rk), "facility", fac,
              "message", buf, NULL);
}

static rd_kafka_t *new_client(rd_kafka_type_t type, const char *const *props, char *err,
                              size_t errlen) {
  char kerr[512];
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  rd_kafka_conf_set_log_cb(conf, kafka_log);
  for (size_t i = 0; props && props[i]; i += 2) {
    if (rd_kafka_conf_set(conf, props[i], props[i + 1], kerr, sizeof kerr) != RD_KAFKA_CONF_OK) {
      seterr(err, errlen, 0, "librdkafka %s: %s", props[i], kerr);
      rd_kafka_conf_destroy(conf);
      return NULL;
    }
  }
  rd_kafka_t *rk = rd_kafka_new(type, conf, kerr, sizeof kerr);
  if (!rk) {
    seterr(err, errlen, 0, "librdkafka: %s", kerr);
    rd_kafka_conf_destroy(conf);
  }
  return rk;
}

static void topic_state_clear(topic_state *t) {
  free(t->name);
  free(t->hw);
  free(t->lw);
  memset(t, 0, sizeof *t);
}

static topic_state *topic_find(hl_devbroker *db, const char *name) {
  for (size_t i = 0; i < db->ntopics; i++)
    if (strcmp(db->topics[i].name, name) == 0)
      return &db->topics[i];
  return NULL;
}

/* Sets the partition count of a topic (never shrinks), adding it when new. Lock held. */
static topic_state *topic_track(hl_devbroker *db, const char *name, int partitions) {
  topic_state *t = topic_find(db, name);
  if (!t) {
    if (db->ntopics >= HL_DEVBROKER_MAX_TOPICS)
      return NULL;
    topic_state *arr = realloc(db->topics, (db->ntopics + 1) * sizeof *arr);
    if (!arr)
      return NULL;
    db->topics = arr;
    t = &db->topics[db->ntopics];
    memset(t, 0, sizeof *t);
    if (!(t->name = strdup(name)))
      return NULL;
    t->bytes = db->reader ? 0 : -1;
    t->messages_s = hl_metric_at(db->m_messages, name);
    t->dropped_s = hl_metric_at(db->m_dropped, name);
    t->retained_s = hl_metric_at(db->m_retained, name);
    t->partitions_s = hl_metric_at(db->m_partitions, name);
    if (db->reader)
      t->bytes_s = hl_metric_at(db->m_bytes, name);
    db->ntopics++;
  }
  if (partitions > t->partitions) {
    int64_t *hw = realloc(t->hw, (size_t)partitions * sizeof *hw);
    if (!hw)
      return NULL;
    t->hw = hw;
    int64_t *lw = realloc(t->lw, (size_t)partitions * sizeof *lw);
    if (!lw)
      return NULL;
    t->lw = lw;
    for (int p = t->partitions; p < partitions; p++)
      t->hw[p] = t->lw[p] = 0;
    t->partitions = partitions;
    hl_series_set(t->partitions_s, partitions);
  }
  return t;
}

/* Reads the cluster's topics and the watermarks of every partition. */
int hl_devbroker_refresh(hl_devbroker *db) {
  const struct rd_kafka_metadata *md = NULL;
  rd_kafka_topic_partition_list_t *hi = NULL, *lo = NULL, *fresh = NULL;
  int rc = HL_EKAFKA;
  rd_kafka_resp_err_t kerr = rd_kafka_metadata(db->watch, 1, NULL, &md, QUERY_TIMEOUT_MS);
  if (kerr) {
    md = NULL;
    goto cleanup;
  }
  hi = rd_kafka_topic_partition_list_new(256);
  lo = rd_kafka_topic_partition_list_new(256);
  fresh = rd_kafka_topic_partition_list_new(16);
  pthread_mutex_lock(&db->lock);
  for (int i = 0; i < md->topic_cnt; i++) {
    const struct rd_kafka_metadata_topic *mt = &md->topics[i];
    if (mt->err || strncmp(mt->topic, "__", 2) == 0 || mt->partition_cnt <= 0)
      continue;
    topic_state *t = topic_track(db, mt->topic, mt->partition_cnt);
    if (!t)
      continue;
    for (int p = 0; p < t->partitions; p++) {
      rd_kafka_topic_partition_list_add(hi, t->name, p)->offset = RD_KAFKA_OFFSET_END;
      rd_kafka_topic_partition_list_add(lo, t->name, p)->offset = RD_KAFKA_OFFSET_BEGINNING;
    }
    if (db->reader) {
      for (int p = t->assigned; p < t->partitions; p++)
        rd_kafka_topic_partition_list_add(fresh, t->name, p)->offset = RD_KAFKA_OFFSET_BEGINNING;
      t->assigned = t->partitions;
    }
  }
  pthread_mutex_unlock(&db->lock);

  if (db->reader && fresh->cnt > 0) {
    rd_kafka_error_t *e = rd_kafka_incremental_assign(db->reader, fresh);
    if (e) {
      hl_log_kv(HL_LOG_DEBUG, "reader assignment failed", "error", rd_kafka_error_string(e), NULL);
      rd_kafka_error_destroy(e);
    }
  }
  if (hi->cnt == 0) {
    rc = 0;
    goto cleanup;
  }
  /* ListOffsets with the special times -1 and -2 answers the high and low watermarks. */
  rd_kafka_offsets_for_times(db->watch, hi, QUERY_TIMEOUT_MS);
  rd_kafka_offsets_for_times(db->watch, lo, QUERY_TIMEOUT_MS);

  int failed = 0;
  pthread_mutex_lock(&db->lock);
  for (int i = 0; i < hi->cnt; i++) {
    topic_state *t = topic_find(db, hi->elems[i].topic);
    int32_t p = hi->elems[i].partition;
    if (!t || p >= t->partitions)
      continue;
    /* A partition whose leader is down keeps its last known watermarks. */
    if (hi->elems[i].err == 0 && hi->elems[i].offset >= 0 && hi->elems[i].offset >= t->hw[p])
      t->hw[p] = hi->elems[i].offset;
    else
      failed++;
    if (lo->elems[i].err == 0 && lo->elems[i].offset >= 0 && lo->elems[i].offset >= t->lw[p])
      t->lw[p] = lo->elems[i].offset;
  }
  for (size_t i = 0; i < db->ntopics; i++) {
    topic_state *t = &db->topics[i];
    int64_t msgs = 0, dropped = 0;
    for (int p = 0; p < t->partitions; p++) {
      msgs += t->hw[p];
      dropped += t->lw[p];
    }
    if (msgs > t->messages)
      hl_series_add(t->messages_s, (double)(msgs - t->messages));
    if (dropped > t->dropped)
      hl_series_add(t->dropped_s, (double)(dropped - t->dropped));
    t->messages = msgs > t->messages ? msgs : t->messages;
    t->dropped = dropped > t->dropped ? dropped : t->dropped;
    hl_series_set(t->retained_s, (double)(t->messages - t->dropped));
  }
  pthread_mutex_unlock(&db->lock);
  rc = failed ? HL_EKAFKA : 0;
cleanup:
  if (rc)
    hl_series_inc(db->refresh_errors_s);
  if (md)
    rd_kafka_metadata_destroy(md);
  if (hi)
    rd_kafka_topic_partition_list_destroy(hi);
  if (lo)
    rd_kafka_topic_partition_list_destroy(lo);
  if (fresh)
    rd_kafka_topic_partition_list_destroy(fresh);
  return rc;
}

static void *watcher_main(void *arg) {
  hl_devbroker *db = arg;
  pthread_mutex_lock(&db->lock);
  while (!db->stop) {
    pthread_mutex_unlock(&db->lock);
    hl_devbroker_refresh(db);
    pthread_mutex_lock(&db->lock);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += db->interval_ms / 1000;
    ts.tv_nsec += (long)(db->interval_ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
      ts.tv_sec++;
      ts.tv_nsec -= 1000000000L;
    }
    while (!db->stop && pthread_cond_timedwait(&db->wake, &db->lock, &ts) != ETIMEDOUT)
      ;
  }
  pthread_mutex_unlock(&db->lock);
  return NULL;
}

/*
 * The reader consumes every assigned partition from the start and adds up key
 * and value sizes per topic. Messages the mock drops before the reader gets to
 * them are not counted (they show in hl_devbroker_messages_dropped_total).
 */
static void *reader_main(void *arg) {
  hl_devbroker *db = arg;
  enum { BATCH = 1024, CACHE = 8 };
  rd_kafka_message_t *msgs[BATCH];
  struct { rd_kafka_topic_t *rkt; int64_t bytes; } cache[CACHE];
  for (;;) {
    pthread_mutex_lock(&db->lock);
    bool stop = db->stop;
    pthread_mutex_unlock(&db->lock);
    if (stop)
      break;
    ssize_t n = rd_kafka_consume_batch_queue(db->reader_q, 200, msgs, BATCH);
    int ncache = 0;
    for (ssize_t i = 0; i < n; i++) {
      rd_kafka_message_t *m = msgs[i];
      if (!m->err) {
        int c = 0;
        while (c < ncache && cache[c].rkt != m->rkt)
          c++;
        if (c == ncache && ncache < CACHE) {
          cache[c].rkt = m->rkt;
          cache[c].bytes = 0;
          ncache++;
        }
        if (c < ncache)
          cache[c].bytes += (int64_t)(m->len + m->key_len);
      }
      rd_kafka_message_destroy(m);
      /* Flush when the cache is full and the next message is of another topic. */
      if (ncache == CACHE || i == n - 1) {
        pthread_mutex_lock(&db->lock);
        for (int c = 0; c < ncache; c++) {
          topic_state *t = topic_find(db, rd_kafka_topic_name(cache[c].rkt));
          if (t) {
            t->bytes += cache[c].bytes;
            hl_series_add(t->bytes_s, (double)cache[c].bytes);
          }
        }
        pthread_mutex_unlock(&db->lock);
        ncache = 0;
      }
    }
  }
  return NULL;
}

/* Parses "name:partitions,..." and creates each topic; db NULL only checks the syntax. */
static int create_extra_topics(hl_devbroker *db, const char *spec, char *err, size_t errlen) {
  if (!spec || !*spec)
    return 0;
  char *copy = strdup(spec);
  if (!copy)
    return -ENOMEM;
  int rc = 0;
  char *save = NULL;
  for (char *item = strtok_r(copy, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
    while (*item == ' ')
      item++;
    char *colon = strrchr(item, ':');
    long parts;
    if (!colon) {
      rc = seterr(err, errlen, HL_ECONFIG, "extra topic '%.64s' has no ':partitions'", item);
      break;
    }
    *colon = '\0';
    if (!hl_topics_name_valid(item) || parse_num(colon + 1, 1, HL_TOPICS_MAX_PARTITIONS, &parts)) {
      rc = seterr(err, errlen, HL_ECONFIG, "extra topic '%.64s:%.16s' is not name:partitions "
                  "(1..%d)", item, colon + 1, HL_TOPICS_MAX_PARTITIONS);
      break;
    }
    if (!db)
      continue;
    int rf = db->nbrokers < 3 ? db->nbrokers : 3;
    rd_kafka_resp_err_t kerr = rd_kafka_mock_topic_create(db->mc, item, (int)parts, rf);
    if (kerr) {
      rc = seterr(err, errlen, HL_EKAFKA, "cannot create topic %s: %s", item,
                  rd_kafka_err2str(kerr));
      break;
    }
    pthread_mutex_lock(&db->lock);
    topic_state *t = topic_track(db, item, (int)parts);
    pthread_mutex_unlock(&db->lock);
    if (!t) {
      rc = -ENOMEM;
      break;
    }
  }
  free(copy);
  return rc;
}

static int register_metrics(hl_devbroker *db) {
  hl_metrics *r = db->reg;
  if (!r)
    return 0;
  db->m_messages = hl_metrics_counter(r, "hl_devbroker_messages_total",
      "Messages appended to the topic since the broker started (sum of high watermarks).", "topic");
  db->m_dropped = hl_metrics_counter(r, "hl_devbroker_messages_dropped_total",
      "Messages the mock cluster dropped to stay within 5 MiB per partition (sum of low watermarks).",
      "topic");
  db->m_retained = hl_metrics_gauge(r, "hl_devbroker_messages_retained",
      "Messages the topic holds now (high minus low watermarks).", "topic");
  db->m_partitions = hl_metrics_gauge(r, "hl_devbroker_partitions",
      "Partitions of the topic.", "topic");
  db->m_up = hl_metrics_gauge(r, "hl_devbroker_broker_up",
      "1 when the broker accepts connections, 0 when taken down through the control API.", "broker");
  db->m_rtt = hl_metrics_gauge(r, "hl_devbroker_broker_rtt_seconds",
      "Round-trip time added to every response of the broker.", "broker");
  db->m_injected = hl_metrics_counter(r, "hl_devbroker_injected_errors_total",
      "Request errors injected through the control API, by Kafka API.", "api");
  db->m_refresh_errors = hl_metrics_counter(r, "hl_devbroker_refresh_errors_total",
      "Watermark refreshes that failed or missed a partition (for example while a broker is down).",
      NULL);
  if (!db->m_messages || !db->m_dropped || !db->m_retained || !db->m_partitions || !db->m_up ||
      !db->m_rtt || !db->m_injected || !db->m_refresh_errors)
    return -ENOMEM;
  db->refresh_errors_s = hl_metric_at(db->m_refresh_errors);
  return 0;
}

int hl_devbroker_new(const hl_devbroker_opts *opts, hl_metrics *reg, hl_devbroker **out,
                     char *err, size_t errlen) {
  if (!opts || !out)
    return -EINVAL;
  if (opts->brokers < 1 || opts->brokers > HL_DEVBROKER_MAX_BROKERS)
    return seterr(err, errlen, HL_ECONFIG, "broker count %d is outside 1..%d", opts->brokers,
                  HL_DEVBROKER_MAX_BROKERS);
  int rc = create_extra_topics(NULL, opts->extra_topics, err, errlen);
  if (rc != 0)
    return rc;
  const struct rd_kafka_metadata *md = NULL;
  hl_devbroker *db = calloc(1, sizeof *db);
  if (!db)
    return -ENOMEM;
  pthread_mutex_init(&db->lock, NULL);
  pthread_cond_init(&db->wake, NULL);
  db->reg = reg;
  db->nbrokers = opts->brokers;
  db->interval_ms = opts->metrics_interval_ms > 0 ? opts->metrics_interval_ms : 1000;
  if ((rc = register_metrics(db)) != 0)
    goto fail;

  rc = HL_EKAFKA;
  const char *mock_props[] = {"client.id", "hl-devbroker-mock", NULL};
  if (!(db->mrk = new_client(RD_KAFKA_PRODUCER, mock_props, err, errlen)))
    goto fail;
  if (!(db->mc = rd_kafka_mock_cluster_new(db->mrk, db->nbrokers))) {
    seterr(err, errlen, 0, "rd_kafka_mock_cluster_new failed");
    goto fail;
  }
  rc = -ENOMEM;
  if (!(db->bootstraps = strdup(rd_kafka_mock_cluster_bootstraps(db->mc))))
    goto fail;

  rc = HL_EKAFKA;
  const char *watch_props[] = {"client.id", "hl-devbroker-watch", "bootstrap.servers",
                               db->bootstraps, "topic.metadata.refresh.interval.ms", "10000",
                               NULL};
  if (!(db->watch = new_client(RD_KAFKA_CONSUMER, watch_props, err, errlen)))
    goto fail;
  if (opts->byte_metrics) {
    const char *reader_props[] = {
        "client.id", "hl-devbroker-reader", "bootstrap.servers", db->bootstraps,
        "group.id", "hl-devbroker-reader", "enable.auto.commit", "false",
        "enable.auto.offset.store", "false", "auto.offset.reset", "earliest",
        "enable.partition.eof", "false", "fetch.wait.max.ms", "200",
        "queued.max.messages.kbytes", "16384", "check.crcs", "false", NULL};
    if (!(db->reader = new_client(RD_KAFKA_CONSUMER, reader_props, err, errlen)))
      goto fail;
    db->m_bytes = reg ? hl_metrics_counter(reg, "hl_devbroker_bytes_total",
        "Key plus value bytes of the topic's messages, read back by hl-devbroker's internal reader.",
        "topic") : NULL;
    if (!(db->reader_q = rd_kafka_queue_get_consumer(db->reader))) {
      seterr(err, errlen, 0, "no consumer queue for the reader");
      goto fail;
    }
  }

  /* Broker ids and addresses as the cluster advertises them. */
  rd_kafka_resp_err_t kerr = rd_kafka_metadata(db->watch, 0, NULL, &md, 10000);
  if (kerr) {
    md = NULL;
    seterr(err, errlen, 0, "metadata from the mock cluster: %s", rd_kafka_err2str(kerr));
    goto fail;
  }
  for (int i = 0; i < md->broker_cnt && i < HL_DEVBROKER_MAX_BROKERS; i++) {
    broker_state *b = &db->brokers[i];
    b->id = md->brokers[i].id;
    snprintf(b->addr, sizeof b->addr, "%s:%d", md->brokers[i].host, md->brokers[i].port);
    b->up = true;
  }
  /* Metadata lists brokers in no fixed order; keep them sorted by id. */
  for (int i = 1; i < md->broker_cnt && i < HL_DEVBROKER_MAX_BROKERS; i++)
    for (int j = i; j > 0 && db->brokers[j - 1].id > db->brokers[j].id; j--) {
      broker_state tmp = db->brokers[j];
      db->brokers[j] = db->brokers[j - 1];
      db->brokers[j - 1] = tmp;
    }
  if (md->broker_cnt != db->nbrokers) {
    seterr(err, errlen, 0, "the mock cluster reports %d brokers, not %d", md->broker_cnt,
           db->nbrokers);
    goto fail;
  }
  for (int i = 0; i < db->nbrokers; i++) {
    char id[16];
    snprintf(id, sizeof id, "%d", db->brokers[i].id);
    db->brokers[i].up_s = hl_metric_at(db->m_up, id);
    db->brokers[i].rtt_s = hl_metric_at(db->m_rtt, id);
    hl_series_set(db->brokers[i].up_s, 1);
    hl_series_set(db->brokers[i].rtt_s, 0);
  }

  for (size_t i = 0; i < hl_topics_count(opts->topics); i++) {
    const hl_topic *t = hl_topics_at(opts->topics, i);
    int rf = t->replication_factor < db->nbrokers ? t->replication_factor : db->nbrokers;
    kerr = rd_kafka_mock_topic_create(db->mc, t->name, t->partitions, rf);
    if (kerr) {
      seterr(err, errlen, 0, "cannot create topic %s: %s", t->name, rd_kafka_err2str(kerr));
      goto fail;
    }
    pthread_mutex_lock(&db->lock);
    topic_state *ts = topic_track(db, t->name, t->partitions);
    pthread_mutex_unlock(&db->lock);
    if (!ts) {
      rc = -ENOMEM;
      goto fail;
    }
  }
  if ((rc = create_extra_topics(db, opts->extra_topics, err, errlen)) != 0)
    goto fail;

  rc = -ENOMEM;
  if (pthread_create(&db->watcher_thr, NULL, watcher_main, db) != 0)
    goto fail;
  db->watcher_started = true;
  if (db->reader) {
    if (pthread_create(&db->reader_thr, NULL, reader_main, db) != 0)
      goto fail;
    db->reader_started = true;
  }
  rd_kafka_metadata_destroy(md);
  *out = db;
  return 0;
fail:
  if (md)
    rd_kafka_metadata_destroy(md);
  hl_devbroker_free(db);
  return rc;
}

hl_devbroker *hl_devbroker_free(hl_devbroker *db) {
  if (!db)
    return NULL;
  pthread_mutex_lock(&db->lock);
  db->stop = true;
  pthread_cond_broadcast(&db->wake);
  pthread_mutex_unlock(&db->lock);
  if (db->watcher_started)
    pthread_join(db->watcher_thr, NULL);
  if (db->reader_started)
    pthread_join(db->reader_thr, NULL);
  if (db->reader_q)
    rd_kafka_queue_destroy(db->reader_q);
  /* The reader never joined a group (it assigns partitions itself): nothing to leave. */
  if (db->reader)
    rd_kafka_destroy_flags(db->reader, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
  if (db->watch)
    rd_kafka_destroy(db->watch);
  if (db->mc)
    rd_kafka_mock_cluster_destroy(db->mc);
  if (db->mrk)
    rd_kafka_destroy(db->mrk);
  for (size_t i = 0; i < db->ntopics; i++)
    topic_state_clear(&db->topics[i]);
  free(db->topics);
  free(db->bootstraps);
  pthread_cond_destroy(&db->wake);
  pthread_mutex_destroy(&db->lock);
  free(db);
  return NULL;
}

const char *hl_devbroker_bootstraps(const hl_devbroker *db) { return db->bootstraps; }

int hl_devbroker_broker_count(const hl_devbroker *db) { return db->nbrokers; }

static broker_state *broker_find(hl_devbroker *db, int id) {
  for (int i = 0; i < db->nbrokers; i++)
    if (db->brokers[i].id == id)
      return &db->brokers[i];
  return NULL;
}

int hl_devbroker_set_up(hl_devbroker *db, int id, bool up) {
  if (id != 0 && !broker_find(db, id))
    return -EINVAL;
  for (int i = 0; i < db->nbrokers; i++) {
    broker_state *b = &db->brokers[i];
    if (id != 0 && b->id != id)
      continue;
    rd_kafka_resp_err_t kerr = up ? rd_kafka_mock_broker_set_up(db->mc, b->id)
                                  : rd_kafka_mock_broker_set_down(db->mc, b->id);
    if (kerr)
      return HL_EKAFKA;
    pthread_mutex_lock(&db->lock);
    b->up = up;
    pthread_mutex_unlock(&db->lock);
    hl_series_set(b->up_s, up ? 1 : 0);
  }
  return 0;
}

int hl_devbroker_set_rtt(hl_devbroker *db, int id, int rtt_ms) {
  if ((id != 0 && !broker_find(db, id)) || rtt_ms < 0 || rtt_ms > 60000)
    return -EINVAL;
  for (int i = 0; i < db->nbrokers; i++) {
    broker_state *b = &db->brokers[i];
    if (id != 0 && b->id != id)
      continue;
    if (rd_kafka_mock_broker_set_rtt(db->mc, b->id, rtt_ms))
      return HL_EKAFKA;
    pthread_mutex_lock(&db->lock);
    b->rtt_ms = rtt_ms;
    pthread_mutex_unlock(&db->lock);
    hl_series_set(b->rtt_s, rtt_ms / 1000.0);
  }
  return 0;
}

int hl_devbroker_push_errors(hl_devbroker *db, int broker_id, int api_key, size_t cnt,
                             const int *errs, int rtt_ms) {
  if ((broker_id != 0 && !broker_find(db, broker_id)) || api_key < 0 || api_key > 32767 ||
      cnt == 0 || cnt > 1000 || !errs || rtt_ms < 0 || rtt_ms > 60000)
    return -EINVAL;
  rd_kafka_resp_err_t *arr = calloc(cnt, sizeof *arr);
  if (!arr)
    return -ENOMEM;
  for (size_t i = 0; i < cnt; i++)
    arr[i] = (rd_kafka_resp_err_t)errs[i];
  int rc = 0;
  if (broker_id == 0) {
    rd_kafka_mock_push_request_errors_array(db->mc, (int16_t)api_key, cnt, arr);
  } else {
    /* The per-broker call is variadic; push one (error, rtt) pair at a time, in order. */
    for (size_t i = 0; i < cnt && rc == 0; i++)
      if (rd_kafka_mock_broker_push_request_error_rtts(db->mc, broker_id, (int16_t)api_key, 1,
                                                       arr[i], rtt_ms))
        rc = HL_EKAFKA;
  }
  free(arr);
  if (rc == 0) {
    char buf[16];
    hl_series_add(hl_metric_at(db->m_injected, api_name(api_key, buf, sizeof buf)), (double)cnt);
    pthread_mutex_lock(&db->lock);
    db->errors_pushed += cnt;
    pthread_mutex_unlock(&db->lock);
  }
  return rc;
}

int hl_devbroker_reset(hl_devbroker *db) {
  int rc = hl_devbroker_set_up(db, 0, true);
  int rc2 = hl_devbroker_set_rtt(db, 0, 0);
  for (int k = 0; k <= MAX_API_KEY; k++)
    rd_kafka_mock_clear_request_errors(db->mc, (int16_t)k);
  return rc ? rc : rc2;
}

bool hl_devbroker_ready(hl_devbroker *db) {
  bool any = false;
  pthread_mutex_lock(&db->lock);
  for (int i = 0; i < db->nbrokers; i++)
    any = any || db->brokers[i].up;
  pthread_mutex_unlock(&db->lock);
  return any;
}

int hl_devbroker_topic_stats_get(hl_devbroker *db, const char *topic,
                                 hl_devbroker_topic_stats *out) {
  int rc = HL_ENOTFOUND;
  pthread_mutex_lock(&db->lock);
  topic_state *t = topic ? topic_find(db, topic) : NULL;
  if (t) {
    out->partitions = t->partitions;
    out->messages = t->messages;
    out->dropped = t->dropped;
    out->bytes = t->bytes;
    rc = 0;
  }
  pthread_mutex_unlock(&db->lock);
  return rc;
}

/* Requests still waiting in the per-broker error stacks (they cannot be cleared). */
static size_t pending_broker_errors(hl_devbroker *db, int id) {
  size_t total = 0;
  for (int k = 0; k < NAPI_NAMES; k++) {
    size_t cnt = 0;
    if (rd_kafka_mock_broker_error_stack_cnt(db->mc, id, (int16_t)k, &cnt) == 0)
      total += cnt;
  }
  return total;
}

int hl_devbroker_state_json(hl_devbroker *db, hl_buf *out) {
  int rc = -ENOMEM;
  json_t *root = json_object(), *brokers = json_array(), *topics = json_array();
  char *text = NULL;
  if (!root || !brokers || !topics)
    goto cleanup;
  json_object_set_new(root, "bootstrap", json_string(db->bootstraps));
  size_t pending[HL_DEVBROKER_MAX_BROKERS];
  for (int i = 0; i < db->nbrokers; i++)
    pending[i] = pending_broker_errors(db, db->brokers[i].id);
  pthread_mutex_lock(&db->lock);
  for (int i = 0; i < db->nbrokers; i++) {
    broker_state *b = &db->brokers[i];
    json_array_append_new(brokers, json_pack("{s:i, s:s, s:b, s:i, s:I}", "id", b->id, "address",
                                             b->addr, "up", b->up, "rtt_ms", b->rtt_ms,
                                             "pending_errors", (json_int_t)pending[i]));
  }
  for (size_t i = 0; i < db->ntopics; i++) {
    topic_state *t = &db->topics[i];
    json_t *o = json_pack("{s:s, s:i, s:I, s:I, s:I}", "name", t->name, "partitions",
                          t->partitions, "messages", (json_int_t)t->messages, "dropped",
                          (json_int_t)t->dropped, "retained",
                          (json_int_t)(t->messages - t->dropped));
    if (o && t->bytes >= 0)
      json_object_set_new(o, "bytes", json_integer(t->bytes));
    json_array_append_new(topics, o);
  }
  json_object_set_new(root, "errors_injected", json_integer((json_int_t)db->errors_pushed));
  pthread_mutex_unlock(&db->lock);
  json_object_set(root, "brokers", brokers);
  json_object_set(root, "topics", topics);
  text = json_dumps(root, JSON_COMPACT);
  if (!text)
    goto cleanup;
  rc = hl_buf_puts(out, text);
cleanup:
  free(text);
  json_decref(topics);
  json_decref(brokers);
  json_decref(root);
  return rc;
}

/* ---- The control API ---- */

static int answer_error(hl_buf *out, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int answer_error(hl_buf *out, int status, const char *fmt, ...) {
  char msg[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  hl_buf_puts(out, "{\"error\":\"");
  hl_buf_json_escape(out, msg, strlen(msg));
  hl_buf_puts(out, "\"}");
  return status;
}

static int answer_state(hl_devbroker *db, hl_buf *out) {
  return hl_devbroker_state_json(db, out) == 0 ? 200 : answer_error(out, 500, "out of memory");
}

/* A broker id from the path: "all" (0) or a broker's id. -1 when neither. */
static int path_broker(hl_devbroker *db, const char *s, size_t n) {
  char tmp[16];
  if (n == 0 || n >= sizeof tmp)
    return -1;
  memcpy(tmp, s, n);
  tmp[n] = '\0';
  if (strcmp(tmp, "all") == 0)
    return 0;
  long v;
  if (parse_num(tmp, 0, 1000000, &v) || !broker_find(db, (int)v))
    return -1;
  return (int)v;
}

/* Optional "broker" member: absent or "all" means 0 (all), else a known id; -1 if invalid. */
static int body_broker(hl_devbroker *db, json_t *body) {
  json_t *b = json_object_get(body, "broker");
  if (!b || (json_is_string(b) && strcmp(json_string_value(b), "all") == 0))
    return 0;
  if (!json_is_integer(b) || !broker_find(db, (int)json_integer_value(b)))
    return -1;
  return (int)json_integer_value(b);
}

static int control_latency(hl_devbroker *db, json_t *body, hl_buf *out) {
  int id = body_broker(db, body);
  json_t *rtt = json_object_get(body, "rtt_ms");
  if (id < 0)
    return answer_error(out, 400, "\"broker\" must be a broker id or \"all\"");
  if (!json_is_integer(rtt) || json_integer_value(rtt) < 0 || json_integer_value(rtt) > 60000)
    return answer_error(out, 400, "\"rtt_ms\" must be an integer in 0..60000");
  if (hl_devbroker_set_rtt(db, id, (int)json_integer_value(rtt)) != 0)
    return answer_error(out, 500, "the mock cluster refused the latency");
  char idbuf[16], msbuf[16];
  snprintf(idbuf, sizeof idbuf, "%d", id);
  snprintf(msbuf, sizeof msbuf, "%d", (int)json_integer_value(rtt));
  hl_log_kv(HL_LOG_INFO, "control: latency set", "broker", id ? idbuf : "all", "rtt_ms", msbuf,
            NULL);
  return answer_state(db, out);
}

static int control_errors(hl_devbroker *db, json_t *body, hl_buf *out) {
  int id = body_broker(db, body);
  if (id < 0)
    return answer_error(out, 400, "\"broker\" must be a broker id or \"all\"");
  json_t *api = json_object_get(body, "api");
  int key = -1;
  if (json_is_string(api))
    key = hl_devbroker_api_key(json_string_value(api));
  else if (json_is_integer(api) && json_integer_value(api) >= 0 && json_integer_value(api) <= 32767)
    key = (int)json_integer_value(api);
  if (key < 0)
    return answer_error(out, 400, "\"api\" must be a Kafka API name (\"Produce\") or key (0)");
  json_t *errs = json_object_get(body, "errors");
  size_t n = json_array_size(errs);
  if (!json_is_array(errs) || n == 0 || n > 1000)
    return answer_error(out, 400, "\"errors\" must be an array of 1 to 1000 error names or codes");
  json_t *rtt = json_object_get(body, "rtt_ms");
  if (rtt && (!json_is_integer(rtt) || json_integer_value(rtt) < 0 ||
              json_integer_value(rtt) > 60000 || id == 0))
    return answer_error(out, 400, "\"rtt_ms\" must be an integer in 0..60000 and needs \"broker\"");
  int codes[1000];
  for (size_t i = 0; i < n; i++) {
    json_t *e = json_array_get(errs, i);
    int code = 0;
    if (json_is_string(e))
      code = hl_devbroker_error_code(json_string_value(e));
    else if (json_is_integer(e) && json_integer_value(e) > 0 && json_integer_value(e) < 32768) {
      char num[16];
      snprintf(num, sizeof num, "%d", (int)json_integer_value(e));
      code = hl_devbroker_error_code(num);
    }
    if (code <= 0)
      return answer_error(out, 400, "errors[%zu] is not a Kafka broker error name or code", i);
    codes[i] = code;
  }
  if (hl_devbroker_push_errors(db, id, key, n, codes, rtt ? (int)json_integer_value(rtt) : 0))
    return answer_error(out, 500, "the mock cluster refused the errors");
  char kbuf[16], nbuf[16];
  snprintf(nbuf, sizeof nbuf, "%zu", n);
  hl_log_kv(HL_LOG_INFO, "request errors injected", "api", api_name(key, kbuf, sizeof kbuf),
            "count", nbuf, NULL);
  return answer_state(db, out);
}

int hl_devbroker_control(hl_devbroker *db, const char *method, const char *path, const char *body,
                         size_t len, hl_buf *out) {
  static const char broker_prefix[] = "/control/broker/";
  bool post = strcmp(method, "POST") == 0, get = strcmp(method, "GET") == 0;
  if (len > HL_DEVBROKER_MAX_CONTROL_BODY)
    return answer_error(out, 413, "body larger than %d bytes", HL_DEVBROKER_MAX_CONTROL_BODY);

  if (strcmp(path, "/control/state") == 0) {
    if (!get)
      return answer_error(out, 405, "use GET");
    return answer_state(db, out);
  }
  if (strcmp(path, "/control/reset") == 0) {
    if (!post)
      return answer_error(out, 405, "use POST");
    if (hl_devbroker_reset(db) != 0)
      return answer_error(out, 500, "reset failed");
    hl_log(HL_LOG_INFO, "control: reset");
    return answer_state(db, out);
  }
  if (strncmp(path, broker_prefix, sizeof broker_prefix - 1) == 0) {
    const char *idp = path + sizeof broker_prefix - 1;
    const char *slash = strchr(idp, '/');
    if (!slash || (strcmp(slash, "/down") != 0 && strcmp(slash, "/up") != 0))
      return answer_error(out, 404, "use /control/broker/{id|all}/down or /up");
    int id = path_broker(db, idp, (size_t)(slash - idp));
    if (id < 0)
      return answer_error(out, 404, "no broker '%.*s'", (int)(slash - idp > 16 ? 16 : slash - idp),
                          idp);
    if (!post)
      return answer_error(out, 405, "use POST");
    bool up = strcmp(slash, "/up") == 0;
    if (hl_devbroker_set_up(db, id, up) != 0)
      return answer_error(out, 500, "the mock cluster refused");
    char idbuf[16];
    snprintf(idbuf, sizeof idbuf, "%d", id);
    hl_log_kv(HL_LOG_INFO, up ? "control: broker up" : "control: broker down", "broker",
              id ? idbuf : "all", NULL);
    return answer_state(db, out);
  }
  bool is_latency = strcmp(path, "/control/latency") == 0;
  bool is_errors = strcmp(path, "/control/errors") == 0;
  if (!is_latency && !is_errors)
    return answer_error(out, 404, "no such control endpoint");
  if (!post)
    return answer_error(out, 405, "use POST");
  json_error_t jerr;
  json_t *doc = len ? json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr) : NULL;
  if (!json_is_object(doc)) {
    json_decref(doc);
    return answer_error(out, 400, "the body must be a JSON object");
  }
  int status = is_latency ? control_latency(db, doc, out) : control_errors(db, doc, out);
  json_decref(doc);
  return status;
}
