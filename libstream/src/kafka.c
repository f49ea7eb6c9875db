#include "hl/kafka.h"

#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hl/buf.h"
#include "hl/error.h"
#include "hl/lag.h"
#include "hl/log.h"

/* Output topics whose handles and metric series a producer caches. */
#define PRODUCER_TOPICS_MAX 32
/* Partitions whose out-of-range event is remembered (to log it once). */
#define OOR_SEEN_MAX 256
/* How long the assign callback waits for the committed offsets. */
#define COMMITTED_TIMEOUT_MS 10000

/* ---- Configuration ---------------------------------------------------------- */

void hl_kafka_opts_from_config(const hl_config *cfg, hl_kafka_opts *o) {
  memset(o, 0, sizeof *o);
  o->brokers = hl_config_str(cfg, "HL_KAFKA_BROKERS");
  o->group = hl_config_str(cfg, "HL_KAFKA_GROUP");
  o->client_id = hl_config_str(cfg, "HL_KAFKA_CLIENT_ID");
  o->dlq_topic = hl_config_str(cfg, "HL_KAFKA_DLQ_TOPIC");
  o->props = hl_config_str(cfg, "HL_KAFKA_PROPS");
  o->stats_interval_ms = hl_config_int(cfg, "HL_KAFKA_STATS_INTERVAL");
}

static int conf_set(rd_kafka_conf_t *conf, const char *k, const char *v, char *err, size_t errlen) {
  char rerr[256];
  if (rd_kafka_conf_set(conf, k, v, rerr, sizeof rerr) != RD_KAFKA_CONF_OK) {
    if (err)
      snprintf(err, errlen, "librdkafka property %s: %s", k, rerr);
    return HL_ECONFIG;
  }
  return 0;
}

int hl_kafka_props_apply(rd_kafka_conf_t *conf, const char *props, char *err, size_t errlen) {
  if (!props || !*props)
    return 0;
  size_t n = strlen(props);
  char *buf = malloc(n + 1);
  if (!buf)
    return -ENOMEM;
  int r = 0;
  const char *s = props;
  while (*s && r == 0) {
    /* Unescapes one "k=v" item into buf. */
    size_t len = 0;
    char *eq = NULL;
    for (; *s && *s != ','; s++) {
      if (*s == '\\' && s[1])
        s++;
      else if (*s == '=' && !eq) {
        buf[len] = '\0';
        eq = buf + len;
        len++;
        continue;
      }
      buf[len++] = *s;
    }
    buf[len] = '\0';
    if (*s == ',')
      s++;
    if (len == 0)
      continue; /* an empty item, e.g. a trailing comma */
    if (!eq || eq == buf) {
      if (err)
        snprintf(err, errlen, "HL_KAFKA_PROPS: item '%s' is not key=value", buf);
      r = HL_ECONFIG;
      break;
    }
    r = conf_set(conf, buf, eq + 1, err, errlen);
  }
  free(buf);
  return r;
}

static const char *client_id_of(const hl_kafka_opts *o) {
  if (o->client_id && *o->client_id)
    return o->client_id;
  if (o->group && *o->group)
    return o->group;
  return "healthlake";
}

/*
 * librdkafka's own log lines (connection failures and the like, from its
 * threads) become JSON lines like every other: syslog levels up to 4 as
 * warn, 5 and 6 as info, 7 as debug.
 */
static void log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf) {
  hl_log_level l = level <= 4 ? HL_LOG_WARN : level <= 6 ? HL_LOG_INFO : HL_LOG_DEBUG;
  if (hl_log_enabled(l))
    hl_log_kv(l, buf, "source", "librdkafka", "client", rd_kafka_name(rk), "facility", fac, NULL);
}

static int base_conf(const hl_kafka_opts *o, bool consumer, rd_kafka_conf_t **out, char *err,
                     size_t errlen) {
  if (!o->brokers || !*o->brokers) {
    if (err)
      snprintf(err, errlen, "no Kafka brokers configured");
    return HL_ECONFIG;
  }
  if (consumer && (!o->group || !*o->group)) {
    if (err)
      snprintf(err, errlen, "no consumer group configured");
    return HL_ECONFIG;
  }
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  if (!conf)
    return -ENOMEM;
  rd_kafka_conf_set_log_cb(conf, log_cb);
  char stats[32];
  snprintf(stats, sizeof stats, "%lld", o->stats_interval_ms > 0 ? o->stats_interval_ms : 0);
  int r = conf_set(conf, "bootstrap.servers", o->brokers, err, errlen);
  if (!r)
    r = conf_set(conf, "client.id", client_id_of(o), err, errlen);
  if (!r && consumer) {
    const char *kv[][2] = {
        {"group.id", o->group},
        {"partition.assignment.strategy", "cooperative-sticky"},
        {"enable.auto.commit", "true"},
        /* 200 ms rather than librdkafka's 5 s (or 1 s): an upstream stage's
           downstream bound (hl/downstream.h) reads this group's committed
           offsets, and in bench/pipeline offsets up to 1 s old held
           hl-validator paused while hl-loader ran dry (+15% end to end). */
        {"auto.commit.interval.ms", "200"},
        {"enable.auto.offset.store", "false"},
        {"auto.offset.reset", "error"},
        {"enable.partition.eof", "false"},
        /* 4 MiB per partition fetch instead of 1 MiB: the mock cluster (and a
           busy real broker) answers with one message set per partition per
           fetch, so a small value caps a worker's input rate. */
        {"max.partition.fetch.bytes", "4194304"},
        /* 50 ms rather than 500: hl-devbroker (librdkafka's mock cluster)
           holds a fetch that found no data for the whole fetch.wait.max.ms
           and does not answer early when data arrives, as a real broker
           does. A consumer that had caught up (hl-loader at the start of a
           load, behind a paused stage) got its next data up to 0.5 s late:
           in bench/pipeline hl-loader began ~0.5 s later than hl-validator
           (+5-10% end to end at 50 ms). Against a real broker this only
           bounds an idle consumer's empty fetches to 20 a second. */
        {"fetch.wait.max.ms", "50"},
        {"statistics.interval.ms", stats},
    };
    for (size_t i = 0; !r && i < sizeof kv / sizeof kv[0]; i++)
      r = conf_set(conf, kv[i][0], kv[i][1], err, errlen);
  } else if (!r) {
    const char *kv[][2] = {
        {"enable.idempotence", "true"},
        {"acks", "all"},
        /* 50 ms rather than 5: resources are keyed over 64 partitions, so at tens of
           thousands of messages per second a 5 ms linger sent batches of 2-3
           messages per partition; 50 ms cut the broker's CPU per resource by
           ~40% in bench/pipeline. */
        {"linger.ms", "50"},
        /* lz4 message sets: FHIR JSON shrinks several times, so brokers store,
           copy and send a fraction of the bytes. bench/pipeline, where
           hl-devbroker shares the two cores: its CPU 4.4-5.4 s -> 1.4-2.0 s,
           end to end +10-20%, hl-parser's and hl-validator's CPU unchanged
           (snappy measured the same; zstd cost the producers more CPU). */
        {"compression.type", "lz4"},
        {"statistics.interval.ms", "0"},
    };
    for (size_t i = 0; !r && i < sizeof kv / sizeof kv[0]; i++)
      r = conf_set(conf, kv[i][0], kv[i][1], err, errlen);
  }
  if (!r)
    r = hl_kafka_props_apply(conf, o->props, err, errlen);
  if (r) {
    rd_kafka_conf_destroy(conf);
    return r;
  }
  *out = conf;
  return 0;
}

int hl_kafka_opts_check(const hl_kafka_opts *o, char *err, size_t errlen) {
  rd_kafka_conf_t *conf = NULL;
  int r = base_conf(o, false, &conf, err, errlen);
  if (r)
    return r;
  rd_kafka_conf_destroy(conf);
  conf = NULL;
  if (o->group && *o->group) {
    r = base_conf(o, true, &conf, err, errlen);
    if (r)
      return r;
    rd_kafka_conf_destroy(conf);
  }
  return 0;
}

/* ---- Errors ------------------------------------------------------------------- */

hl_kafka_errclass hl_kafka_classify(rd_kafka_resp_err_t err) {
  switch (err) {
  case RD_KAFKA_RESP_ERR_NO_ERROR:
    return HL_KAFKA_OK;
  case RD_KAFKA_RESP_ERR__TRANSPORT:
  case RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN:
  case RD_KAFKA_RESP_ERR__QUEUE_FULL:
  case RD_KAFKA_RESP_ERR__TIMED_OUT:
  case RD_KAFKA_RESP_ERR__MSG_TIMED_OUT:
  case RD_KAFKA_RESP_ERR__TIMED_OUT_QUEUE:
  case RD_KAFKA_RESP_ERR__RESOLVE:
  case RD_KAFKA_RESP_ERR__WAIT_COORD:
  case RD_KAFKA_RESP_ERR__PARTITION_EOF:
  case RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT:
  case RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS:
  case RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS_AFTER_APPEND:
  case RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE:
  case RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION:
  case RD_KAFKA_RESP_ERR_NETWORK_EXCEPTION:
  case RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS:
  case RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE:
  case RD_KAFKA_RESP_ERR_NOT_COORDINATOR:
  case RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS:
  case RD_KAFKA_RESP_ERR_KAFKA_STORAGE_ERROR:
  case RD_KAFKA_RESP_ERR_BROKER_NOT_AVAILABLE:
  case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART:
  case RD_KAFKA_RESP_ERR_THROTTLING_QUOTA_EXCEEDED:
    return HL_KAFKA_RETRIABLE;
  default:
    return HL_KAFKA_FATAL;
  }
}

int hl_kafka_error(rd_kafka_resp_err_t err) {
  switch (err) {
  case RD_KAFKA_RESP_ERR_NO_ERROR:
    return 0;
  case RD_KAFKA_RESP_ERR__FATAL:
    return HL_EFATAL;
  case RD_KAFKA_RESP_ERR__TIMED_OUT:
  case RD_KAFKA_RESP_ERR__MSG_TIMED_OUT:
    return HL_ETIMEOUT;
  case RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET:
  case RD_KAFKA_RESP_ERR_OFFSET_OUT_OF_RANGE:
    return HL_EOFFSET;
  default:
    return HL_EKAFKA;
  }
}

/* ---- Messages and headers ------------------------------------------------------ */

void hl_kafka_msg_init(hl_kafka_msg *m, rd_kafka_message_t *rkm) {
  rd_kafka_timestamp_type_t tstype;
  m->rkm = rkm;
  m->topic = rd_kafka_topic_name(rkm->rkt);
  m->partition = rkm->partition;
  m->offset = rkm->offset;
  m->timestamp_ms = rd_kafka_message_timestamp(rkm, &tstype);
  m->key = rkm->key;
  m->key_len = rkm->key_len;
  m->value = rkm->payload;
  m->len = rkm->len;
  m->priv = NULL;
}

int hl_kafka_header_view(const rd_kafka_headers_t *hdrs, const char *name, const void **val,
                         size_t *len) {
  if (!hdrs || !name)
    return HL_ENOTFOUND;
  if (rd_kafka_header_get_last(hdrs, name, val, len) != RD_KAFKA_RESP_ERR_NO_ERROR)
    return HL_ENOTFOUND;
  if (!*val)
    *len = 0;
  return 0;
}

int hl_kafka_header_get(const rd_kafka_message_t *rkm, const char *name, char *buf,
                        size_t buflen) {
  rd_kafka_headers_t *hdrs = NULL;
  if (!buf || buflen == 0)
    return -EINVAL;
  /* rd_kafka_message_headers parses lazily and needs a non-const message. */
  if (rd_kafka_message_headers((rd_kafka_message_t *)rkm, &hdrs) != RD_KAFKA_RESP_ERR_NO_ERROR)
    return HL_ENOTFOUND;
  const void *val;
  size_t len;
  if (hl_kafka_header_view(hdrs, name, &val, &len) < 0)
    return HL_ENOTFOUND;
  size_t n = len < buflen - 1 ? len : buflen - 1;
  if (n)
    memcpy(buf, val, n);
  buf[n] = '\0';
  if (len > buflen - 1)
    return HL_ELIMIT;
  return len > INT32_MAX ? HL_ELIMIT : (int)len;
}

int hl_kafka_header_views(const rd_kafka_message_t *rkm, hl_kafka_hview *views, size_t n) {
  for (size_t k = 0; k < n; k++) {
    views[k].val = NULL;
    views[k].len = 0;
  }
  rd_kafka_headers_t *hdrs = NULL;
  if (!rkm || rd_kafka_message_headers((rd_kafka_message_t *)rkm, &hdrs) != RD_KAFKA_RESP_ERR_NO_ERROR ||
      !hdrs)
    return 0;
  /*
   * The prefix all wanted names share ("hl-" for the pipeline's): a header
   * without it is passed over with one comparison, and the names are told
   * apart by their first byte after it before a full comparison, so a
   * message costs about one string comparison per header, not one per
   * header and name (hl-loader's worker thread, five headers and four names).
   */
  size_t pre = n ? strlen(views[0].name) : 0;
  for (size_t k = 1; k < n && pre; k++) {
    size_t j = 0;
    while (j < pre && views[k].name[j] == views[0].name[j])
      j++;
    pre = j;
  }
  int found = 0;
  const char *name;
  const void *val;
  size_t size;
  /* One pass; a later header of a name replaces an earlier one (the last wins). */
  for (size_t i = 0; rd_kafka_header_get_all(hdrs, i, &name, &val, &size) == RD_KAFKA_RESP_ERR_NO_ERROR;
       i++) {
    if (pre && strncmp(name, views[0].name, pre) != 0)
      continue;
    for (size_t k = 0; k < n; k++) {
      if (name[pre] != views[k].name[pre] || strcmp(name + pre, views[k].name + pre) != 0)
        continue;
      found += views[k].val == NULL;
      views[k].val = val ? val : "";
      views[k].len = val ? size : 0;
      break;
    }
  }
  return found;
}

int hl_kafka_header_set(rd_kafka_headers_t *hdrs, const char *name, const char *value) {
  if (!hdrs || !name || !value)
    return -EINVAL;
  rd_kafka_resp_err_t e = rd_kafka_header_remove(hdrs, name);
  if (e != RD_KAFKA_RESP_ERR_NO_ERROR && e != RD_KAFKA_RESP_ERR__NOENT)
    return HL_EKAFKA;
  if (rd_kafka_header_add(hdrs, name, -1, value, -1) != RD_KAFKA_RESP_ERR_NO_ERROR)
    return HL_EKAFKA;
  return 0;
}

/* ---- Producer -------------------------------------------------------------------- */

typedef struct out_topic {
  char *name;
  rd_kafka_topic_t *rkt;
  hl_series *ok, *failed;
} out_topic;

struct hl_producer {
  rd_kafka_t *rk;
  hl_ticket_done_fn *done;
  void *ud;
  char *dlq_topic;
  hl_metric *m_ok, *m_failed;
  out_topic topics[PRODUCER_TOPICS_MAX];
  size_t ntopics;
  _Atomic bool fatal;
  char fatal_reason[256]; /* written once before fatal is set */
};

static void producer_set_fatal(hl_producer *p) {
  if (atomic_load(&p->fatal))
    return;
  char buf[200];
  rd_kafka_resp_err_t e = rd_kafka_fatal_error(p->rk, buf, sizeof buf);
  snprintf(p->fatal_reason, sizeof p->fatal_reason, "kafka producer fatal error: %s: %s",
           rd_kafka_err2name(e), buf);
  atomic_store(&p->fatal, true);
}

static out_topic *producer_topic(hl_producer *p, const char *name) {
  for (size_t i = 0; i < p->ntopics; i++)
    if (strcmp(p->topics[i].name, name) == 0)
      return &p->topics[i];
  if (p->ntopics == PRODUCER_TOPICS_MAX)
    return NULL;
  out_topic *t = &p->topics[p->ntopics];
  t->name = strdup(name);
  t->rkt = t->name ? rd_kafka_topic_new(p->rk, name, NULL) : NULL;
  if (!t->rkt) {
    free(t->name);
    t->name = NULL;
    return NULL;
  }
  t->ok = hl_metric_at(p->m_ok, name);
  t->failed = hl_metric_at(p->m_failed, name);
  p->ntopics++;
  return t;
}

static out_topic *topic_by_rkt(hl_producer *p, const rd_kafka_topic_t *rkt) {
  for (size_t i = 0; i < p->ntopics; i++)
    if (p->topics[i].rkt == rkt)
      return &p->topics[i];
  return NULL;
}

static void dr_msg_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
  hl_producer *p = opaque;
  hl_kafka_ticket *t = m->_private;
  out_topic *ot = topic_by_rkt(p, m->rkt);
  if (m->err) {
    if (ot)
      hl_series_inc(ot->failed);
    if (m->err == RD_KAFKA_RESP_ERR__FATAL)
      producer_set_fatal(p);
    if (hl_log_enabled(HL_LOG_DEBUG))
      hl_log_kv(HL_LOG_DEBUG, "kafka delivery failed", "topic", rd_kafka_topic_name(m->rkt),
                "error", rd_kafka_err2str(m->err), NULL);
  } else if (ot) {
    hl_series_inc(ot->ok);
  }
  if (t) {
    if (m->err && !t->err)
      t->err = m->err;
    if (t->pending > 0 && --t->pending == 0 && p->done)
      p->done(p->ud, t);
  }
}

static void producer_error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque) {
  hl_producer *p = opaque;
  if (err == RD_KAFKA_RESP_ERR__FATAL)
    producer_set_fatal(p);
  if (hl_log_enabled(HL_LOG_DEBUG))
    hl_log_kv(HL_LOG_DEBUG, "kafka producer error", "error", rd_kafka_err2name(err), "reason",
              reason, NULL);
}

int hl_producer_new(const hl_kafka_opts *o, hl_ticket_done_fn *done, void *ud, hl_producer **out,
                    char *err, size_t errlen) {
  hl_producer *p = calloc(1, sizeof *p);
  if (!p)
    return -ENOMEM;
  p->done = done;
  p->ud = ud;
  p->dlq_topic = strdup(o->dlq_topic && *o->dlq_topic ? o->dlq_topic : "hl.dlq");
  if (!p->dlq_topic) {
    free(p);
    return -ENOMEM;
  }
  if (o->metrics) {
    p->m_ok = hl_metrics_counter(o->metrics, "hl_kafka_messages_produced_total",
                                 "Messages acknowledged by the brokers, by topic.", "topic");
    p->m_failed = hl_metrics_counter(o->metrics, "hl_kafka_produce_errors_total",
                                     "Messages whose delivery failed, by topic.", "topic");
  }
  rd_kafka_conf_t *conf = NULL;
  int r = base_conf(o, false, &conf, err, errlen);
  if (r) {
    hl_producer_free(p);
    return r;
  }
  rd_kafka_conf_set_dr_msg_cb(conf, dr_msg_cb);
  rd_kafka_conf_set_error_cb(conf, producer_error_cb);
  rd_kafka_conf_set_opaque(conf, p);
  char rerr[256];
  p->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, rerr, sizeof rerr);
  if (!p->rk) {
    rd_kafka_conf_destroy(conf);
    if (err)
      snprintf(err, errlen, "kafka producer: %s", rerr);
    hl_producer_free(p);
    return HL_EKAFKA;
  }
  *out = p;
  return 0;
}

hl_producer *hl_producer_free(hl_producer *p) {
  if (!p)
    return NULL;
  if (p->rk) {
    /* Reports of purged messages are served here so no ticket is left behind. */
    rd_kafka_purge(p->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    rd_kafka_poll(p->rk, 0);
  }
  for (size_t i = 0; i < p->ntopics; i++) {
    rd_kafka_topic_destroy(p->topics[i].rkt);
    free(p->topics[i].name);
  }
  if (p->rk)
    rd_kafka_destroy(p->rk);
  free(p->dlq_topic);
  free(p);
  return NULL;
}

rd_kafka_t *hl_producer_handle(hl_producer *p) { return p->rk; }

int hl_producer_send(hl_producer *p, const hl_kafka_out *m, hl_kafka_ticket *t,
                     int enqueue_timeout_ms) {
  if (!m->topic)
    return -EINVAL;
  if (atomic_load(&p->fatal))
    return HL_EFATAL;
  out_topic *ot = producer_topic(p, m->topic);
  if (!ot)
    return HL_ELIMIT;
  rd_kafka_vu_t vu[6];
  size_t n = 0;
  vu[n].vtype = RD_KAFKA_VTYPE_RKT;
  vu[n++].u.rkt = ot->rkt;
  vu[n].vtype = RD_KAFKA_VTYPE_MSGFLAGS;
  vu[n++].u.i = m->borrowed ? 0 : RD_KAFKA_MSG_F_COPY;
  vu[n].vtype = RD_KAFKA_VTYPE_KEY;
  vu[n].u.mem.ptr = (void *)m->key;
  vu[n++].u.mem.size = m->key ? m->key_len : 0;
  vu[n].vtype = RD_KAFKA_VTYPE_VALUE;
  vu[n].u.mem.ptr = (void *)m->value;
  vu[n++].u.mem.size = m->value ? m->len : 0;
  vu[n].vtype = RD_KAFKA_VTYPE_OPAQUE;
  vu[n++].u.ptr = t;
  if (m->headers) {
    vu[n].vtype = RD_KAFKA_VTYPE_HEADERS;
    vu[n++].u.headers = m->headers;
  }
  if (t)
    t->pending++;
  int waited = 0;
  for (;;) {
    rd_kafka_error_t *e = rd_kafka_produceva(p->rk, vu, n);
    if (!e)
      return 0;
    rd_kafka_resp_err_t code = rd_kafka_error_code(e);
    bool fatal = rd_kafka_error_is_fatal(e) || code == RD_KAFKA_RESP_ERR__FATAL;
    bool retriable = rd_kafka_error_is_retriable(e) || code == RD_KAFKA_RESP_ERR__QUEUE_FULL;
    rd_kafka_error_destroy(e);
    if (!fatal && retriable && waited < enqueue_timeout_ms) {
      /* The local queue is full: let deliveries drain it, then retry. */
      rd_kafka_poll(p->rk, 10);
      waited += 10;
      continue;
    }
    if (t)
      t->pending--;
    if (fatal) {
      producer_set_fatal(p);
      return HL_EFATAL;
    }
    return retriable ? HL_ETIMEOUT : HL_EKAFKA;
  }
}

void hl_kafka_ticket_release(hl_producer *p, hl_kafka_ticket *t) {
  if (t->pending > 0 && --t->pending == 0 && p->done)
    p->done(p->ud, t);
}

int hl_producer_poll(hl_producer *p, int timeout_ms) { return rd_kafka_poll(p->rk, timeout_ms); }

int hl_producer_flush(hl_producer *p, int timeout_ms) {
  return rd_kafka_flush(p->rk, timeout_ms) == RD_KAFKA_RESP_ERR_NO_ERROR ? 0 : HL_ETIMEOUT;
}

int hl_producer_outq_len(hl_producer *p) { return rd_kafka_outq_len(p->rk); }

void hl_producer_purge(hl_producer *p) {
  rd_kafka_purge(p->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
  rd_kafka_poll(p->rk, 0);
}

bool hl_producer_fatal(hl_producer *p, char *reason, size_t len) {
  if (!atomic_load(&p->fatal))
    return false;
  if (reason && len)
    snprintf(reason, len, "%s", p->fatal_reason);
  return true;
}

/* ---- Dead letters -------------------------------------------------------------- */

/* Bytes of a detail that fit in the header, cut at a UTF-8 character boundary. */
static size_t utf8_prefix(const char *s, size_t max) {
  size_t n = strlen(s);
  if (n <= max)
    return n;
  n = max;
  while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
    n--;
  return n;
}

int hl_kafka_outcome_json(hl_buf *b, const char *issue_type, const char *code,
                          const char *detail) {
  if (!issue_type)
    issue_type = "processing";
  if (!code)
    code = "error";
  if (!detail)
    detail = "";
  int r = hl_buf_puts(b, "{\"resourceType\":\"OperationOutcome\",\"issue\":[{\"severity\":"
                         "\"error\",\"code\":\"");
  if (!r)
    r = hl_buf_json_escape(b, issue_type, strlen(issue_type));
  if (!r)
    r = hl_buf_puts(b, "\",\"details\":{\"coding\":[{\"system\":\"urn:healthlake:error-code\","
                       "\"code\":\"");
  if (!r)
    r = hl_buf_json_escape(b, code, strlen(code));
  if (!r)
    r = hl_buf_puts(b, "\"}],\"text\":\"");
  if (!r)
    r = hl_buf_json_escape(b, code, strlen(code));
  if (!r)
    r = hl_buf_puts(b, "\"},\"diagnostics\":\"");
  if (!r)
    r = hl_buf_json_escape(b, detail, utf8_prefix(detail, HL_KAFKA_DETAIL_MAX / 2));
  if (!r)
    r = hl_buf_puts(b, "\"}]}");
  return r;
}

int hl_kafka_dlq_outcome(hl_producer *p, const rd_kafka_message_t *msg, const char *stage,
                         const char *code, const char *outcome_json, hl_kafka_ticket *t) {
  rd_kafka_headers_t *orig = NULL, *h = NULL;
  if (rd_kafka_message_headers((rd_kafka_message_t *)msg, &orig) == RD_KAFKA_RESP_ERR_NO_ERROR &&
      orig)
    h = rd_kafka_headers_copy(orig);
  else
    h = rd_kafka_headers_new(8);
  if (!h)
    return -ENOMEM;
  char part[16], off[32];
  snprintf(part, sizeof part, "%d", (int)msg->partition);
  snprintf(off, sizeof off, "%lld", (long long)msg->offset);
  /* A dead letter replayed and rejected again keeps one set of error headers. */
  const char *kv[][2] = {
      {HL_HDR_ERROR_STAGE, stage ? stage : "unknown"},
      {HL_HDR_ERROR_CODE, code ? code : "error"},
      {HL_HDR_SOURCE_TOPIC, rd_kafka_topic_name(msg->rkt)},
      {HL_HDR_SOURCE_PARTITION, part},
      {HL_HDR_SOURCE_OFFSET, off},
  };
  int r = 0;
  for (size_t i = 0; !r && i < sizeof kv / sizeof kv[0]; i++)
    r = hl_kafka_header_set(h, kv[i][0], kv[i][1]);
  if (!r) {
    const char *d = outcome_json ? outcome_json : "";
    rd_kafka_header_remove(h, HL_HDR_ERROR_DETAIL);
    if (rd_kafka_header_add(h, HL_HDR_ERROR_DETAIL, -1, d,
                            (ssize_t)utf8_prefix(d, HL_KAFKA_DETAIL_MAX)) != 0)
      r = HL_EKAFKA;
  }
  if (!r) {
    hl_kafka_out out = {.topic = p->dlq_topic,
                        .key = msg->key,
                        .key_len = msg->key_len,
                        .value = msg->payload,
                        .len = msg->len,
                        .headers = h};
    r = hl_producer_send(p, &out, t, 30000);
  }
  if (r)
    rd_kafka_headers_destroy(h);
  return r;
}

int hl_kafka_dlq(hl_producer *p, const rd_kafka_message_t *msg, const char *stage, const char *code,
                 const char *detail, hl_kafka_ticket *t) {
  hl_buf b;
  hl_buf_init(&b, HL_KAFKA_DETAIL_MAX);
  int r = hl_kafka_outcome_json(&b, "processing", code, detail);
  if (!r)
    r = hl_kafka_dlq_outcome(p, msg, stage, code, b.data, t);
  hl_buf_free(&b);
  return r;
}

/* ---- Consumer -------------------------------------------------------------------- */

typedef struct oor_seen {
  char *topic;
  int32_t partition;
} oor_seen;

struct hl_consumer {
  rd_kafka_t *rk;
  hl_consumer_hooks hooks;
  hl_lag *lag;
  hl_metric *m_oor;
  hl_metric *m_errors;
  oor_seen seen[OOR_SEEN_MAX];
  size_t nseen;
  bool closed;
  bool bounded;   /* closing under a deadline: commits on revoke do not wait */
  bool abandoned; /* the close deadline passed: destroy without closing */
  bool paused;    /* the application's pause state, applied to partitions as they arrive */
  bool subscribed;
  _Atomic bool assigned_once; /* the group gave it an assignment (even an empty one) */
  _Atomic bool connected, joined, fatal, oor;
  _Atomic long n_oor, n_rebalances;
  char fatal_reason[256]; /* written once before fatal is set */
  char oor_reason[256];   /* written once before oor is set */
};

static void consumer_set_fatal(hl_consumer *c, const char *what) {
  if (atomic_load(&c->fatal))
    return;
  char buf[160];
  rd_kafka_resp_err_t e = rd_kafka_fatal_error(c->rk, buf, sizeof buf);
  snprintf(c->fatal_reason, sizeof c->fatal_reason, "kafka consumer fatal error: %s: %s", what,
           e ? buf : "");
  atomic_store(&c->fatal, true);
}

/* Sets partitions without a committed offset to start at the beginning. */
static void start_new_partitions(hl_consumer *c, rd_kafka_topic_partition_list_t *parts) {
  rd_kafka_topic_partition_list_t *q = rd_kafka_topic_partition_list_copy(parts);
  if (!q)
    return;
  rd_kafka_resp_err_t e = rd_kafka_committed(c->rk, q, COMMITTED_TIMEOUT_MS);
  if (e) {
    /*
     * Without the committed offsets librdkafka fetches them itself; a
     * partition that truly has none then reports an out-of-range error
     * rather than being skipped.
     */
    if (hl_log_enabled(HL_LOG_DEBUG))
      hl_log_kv(HL_LOG_DEBUG, "kafka committed offsets lookup failed", "error",
                rd_kafka_err2str(e), NULL);
  } else {
    for (int i = 0; i < q->cnt; i++) {
      rd_kafka_topic_partition_t *dst =
          rd_kafka_topic_partition_list_find(parts, q->elems[i].topic, q->elems[i].partition);
      if (!dst)
        continue;
      if (q->elems[i].err == 0 && q->elems[i].offset >= 0)
        dst->offset = q->elems[i].offset;
      else if (q->elems[i].err == 0 && q->elems[i].offset == RD_KAFKA_OFFSET_INVALID)
        dst->offset = RD_KAFKA_OFFSET_BEGINNING;
    }
  }
  rd_kafka_topic_partition_list_destroy(q);
}

static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque) {
  hl_consumer *c = opaque;
  atomic_fetch_add(&c->n_rebalances, 1);
  rd_kafka_error_t *e = NULL;
  if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
    atomic_store(&c->assigned_once, true);
    start_new_partitions(c, parts);
    e = rd_kafka_incremental_assign(rk, parts);
    if (!e) {
      /*
       * librdkafka keeps a partition's pause flag while it is away: one that
       * left paused and comes back after a resume would stay paused for ever.
       * Arriving partitions take the consumer's state, whatever they carry.
       */
      if (c->paused)
        rd_kafka_pause_partitions(rk, parts);
      else
        rd_kafka_resume_partitions(rk, parts);
      atomic_store(&c->connected, true);
      atomic_store(&c->joined, true);
      if (c->hooks.assigned)
        c->hooks.assigned(c->hooks.ud, parts);
    }
  } else {
    bool lost = err != RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS || rd_kafka_assignment_lost(rk);
    if (c->hooks.revoking)
      c->hooks.revoking(c->hooks.ud, parts, lost);
    if (!lost) {
      /* Under a close deadline the commit is only started: no broker may answer it. */
      rd_kafka_resp_err_t ce = rd_kafka_commit(rk, NULL, c->bounded ? 1 : 0);
      if (ce && ce != RD_KAFKA_RESP_ERR__NO_OFFSET && hl_log_enabled(HL_LOG_DEBUG))
        hl_log_kv(HL_LOG_DEBUG, "kafka commit on revoke failed", "error", rd_kafka_err2str(ce),
                  NULL);
    }
    e = rd_kafka_incremental_unassign(rk, parts);
  }
  if (e) {
    if (rd_kafka_error_is_fatal(e))
      consumer_set_fatal(c, rd_kafka_error_string(e));
    else if (hl_log_enabled(HL_LOG_DEBUG))
      hl_log_kv(HL_LOG_DEBUG, "kafka rebalance failed", "error", rd_kafka_error_string(e), NULL);
    rd_kafka_error_destroy(e);
  }
}

static void consumer_error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque) {
  hl_consumer *c = opaque;
  if (err == RD_KAFKA_RESP_ERR__FATAL)
    consumer_set_fatal(c, reason);
  else if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN)
    atomic_store(&c->connected, false);
  if (c->m_errors)
    hl_series_inc(hl_metric_at(c->m_errors, rd_kafka_err2name(err)));
  if (hl_log_enabled(HL_LOG_DEBUG))
    hl_log_kv(HL_LOG_DEBUG, "kafka consumer error", "error", rd_kafka_err2name(err), "reason",
              reason, NULL);
}

static int stats_cb(rd_kafka_t *rk, char *json, size_t len, void *opaque) {
  hl_consumer *c = opaque;
  if (!c->lag)
    return 0;
  hl_lag_summary sum;
  if (hl_lag_update(c->lag, json, len, hl_lag_now_ms(), &sum) == 0) {
    atomic_store(&c->connected, sum.brokers_up > 0);
    if (sum.group_steady)
      atomic_store(&c->joined, true);
  }
  return 0; /* librdkafka frees json */
}

int hl_consumer_new(const hl_kafka_opts *o, const hl_consumer_hooks *hooks, hl_consumer **out,
                    char *err, size_t errlen) {
  hl_consumer *c = calloc(1, sizeof *c);
  if (!c)
    return -ENOMEM;
  if (hooks)
    c->hooks = *hooks;
  c->closed = true; /* until rd_kafka_new succeeds */
  if (o->metrics) {
    c->m_oor = hl_metrics_counter(o->metrics, "hl_kafka_offset_out_of_range_total",
                                  "Fetches whose offset was out of range (data aged out of the "
                                  "broker); the partition stops instead of skipping.",
                                  "topic,partition");
    c->m_errors = hl_metrics_counter(o->metrics, "hl_kafka_client_errors_total",
                                     "Errors reported by the consumer client, by code.", "error");
    int r = hl_lag_new(o->metrics, o->group, &c->lag);
    if (r) {
      hl_consumer_free(c);
      return r;
    }
  }
  rd_kafka_conf_t *conf = NULL;
  int r = base_conf(o, true, &conf, err, errlen);
  if (r) {
    hl_consumer_free(c);
    return r;
  }
  rd_kafka_conf_set_rebalance_cb(conf, rebalance_cb);
  rd_kafka_conf_set_error_cb(conf, consumer_error_cb);
  rd_kafka_conf_set_stats_cb(conf, stats_cb);
  rd_kafka_conf_set_opaque(conf, c);
  char rerr[256];
  c->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, rerr, sizeof rerr);
  if (!c->rk) {
    rd_kafka_conf_destroy(conf);
    if (err)
      snprintf(err, errlen, "kafka consumer: %s", rerr);
    hl_consumer_free(c);
    return HL_EKAFKA;
  }
  c->closed = false;
  rd_kafka_poll_set_consumer(c->rk);
  *out = c;
  return 0;
}

/*
 * Handles of consumers whose close passed its deadline. librdkafka 2.0.2
 * cannot destroy them: rd_kafka_destroy() joins its main thread, which
 * waits for the consumer group to terminate, which waits for an offset
 * commit that only a group coordinator can answer. They are released to
 * the process's exit instead (kept reachable here so that leak checkers
 * do not report them; their threads serve no callback of ours, since
 * nothing polls their queues any more).
 */
#define ABANDONED_MAX 16
static rd_kafka_t *abandoned[ABANDONED_MAX];
static pthread_mutex_t abandoned_lock = PTHREAD_MUTEX_INITIALIZER;

/* Keeps rk reachable and never destroys it (a full table leaves it unreachable). */
static void park_abandoned(rd_kafka_t *rk) {
  pthread_mutex_lock(&abandoned_lock);
  for (size_t i = 0; i < ABANDONED_MAX; i++)
    if (!abandoned[i]) {
      abandoned[i] = rk;
      break;
    }
  pthread_mutex_unlock(&abandoned_lock);
}

hl_consumer *hl_consumer_free(hl_consumer *c) {
  if (!c)
    return NULL;
  if (c->rk) {
    hl_consumer_close(c);
    /*
     * Two kinds of handle are parked (kept, never destroyed):
     * - one whose close was abandoned at its deadline: rd_kafka_destroy
     *   would close it again and wait for the group coordinator;
     * - one that subscribed and was never assigned: librdkafka 2.0
     *   (Debian bookworm's) aborts in rd_kafka_sticky_assignor_state_destroy
     *   when such a cooperative-sticky consumer is destroyed (librdkafka
     *   issue 4312, fixed in 2.3; hl-parser died with status 134 when
     *   stopped in the middle of its first rebalance). It is closed (it
     *   left the group) and holds no partitions and no offsets.
     */
    if (c->abandoned || (c->subscribed && !atomic_load(&c->assigned_once)))
      park_abandoned(c->rk);
    else
      rd_kafka_destroy(c->rk);
  }
  for (size_t i = 0; i < c->nseen; i++)
    free(c->seen[i].topic);
  hl_lag_free(c->lag);
  free(c);
  return NULL;
}

rd_kafka_t *hl_consumer_handle(hl_consumer *c) { return c->rk; }
hl_lag *hl_consumer_lag(hl_consumer *c) { return c->lag; }

int hl_consumer_subscribe(hl_consumer *c, const char *const *topics, size_t n) {
  if (n == 0 || n > INT32_MAX)
    return -EINVAL;
  rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)n);
  if (!l)
    return -ENOMEM;
  for (size_t i = 0; i < n; i++)
    rd_kafka_topic_partition_list_add(l, topics[i], RD_KAFKA_PARTITION_UA);
  rd_kafka_resp_err_t e = rd_kafka_subscribe(c->rk, l);
  rd_kafka_topic_partition_list_destroy(l);
  if (!e)
    c->subscribed = true;
  return e ? HL_EKAFKA : 0;
}

/* True the first time a partition reports out of range. */
static bool oor_first(hl_consumer *c, const char *topic, int32_t partition) {
  for (size_t i = 0; i < c->nseen; i++)
    if (c->seen[i].partition == partition && strcmp(c->seen[i].topic, topic) == 0)
      return false;
  if (c->nseen < OOR_SEEN_MAX) {
    c->seen[c->nseen].topic = strdup(topic);
    if (c->seen[c->nseen].topic) {
      c->seen[c->nseen].partition = partition;
      c->nseen++;
    }
  }
  return true;
}

static void consumer_msg_error(hl_consumer *c, rd_kafka_message_t *m) {
  const char *topic = m->rkt ? rd_kafka_topic_name(m->rkt) : "";
  char part[16];
  snprintf(part, sizeof part, "%d", (int)m->partition);
  switch (m->err) {
  case RD_KAFKA_RESP_ERR__PARTITION_EOF:
    return;
  case RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET:
  case RD_KAFKA_RESP_ERR_OFFSET_OUT_OF_RANGE:
    atomic_fetch_add(&c->n_oor, 1);
    if (c->m_oor)
      hl_series_inc(hl_metric_at(c->m_oor, topic, part));
    if (oor_first(c, topic, m->partition)) {
      char reason[200];
      snprintf(reason, sizeof reason, "%s", rd_kafka_message_errstr(m));
      if (!atomic_load(&c->oor)) {
        snprintf(c->oor_reason, sizeof c->oor_reason, "offset out of range on %s/%d: %s", topic,
                 (int)m->partition, reason);
        atomic_store(&c->oor, true);
      }
      /*
       * This is the one place the event is handled, so it is logged here,
       * once per partition, at error level (see hl/log.h).
       */
      hl_log_kv(HL_LOG_ERROR, "consumer offset out of range: the partition is stopped, not skipped",
                "topic", topic, "partition", part, "error", reason, NULL);
    }
    return;
  default:
    if (m->err == RD_KAFKA_RESP_ERR__FATAL)
      consumer_set_fatal(c, rd_kafka_message_errstr(m));
    if (c->m_errors)
      hl_series_inc(hl_metric_at(c->m_errors, rd_kafka_err2name(m->err)));
    if (hl_log_enabled(HL_LOG_DEBUG))
      hl_log_kv(HL_LOG_DEBUG, "kafka consumer event", "topic", topic, "partition", part, "error",
                rd_kafka_message_errstr(m), NULL);
    return;
  }
}

rd_kafka_message_t *hl_consumer_poll(hl_consumer *c, int timeout_ms) {
  if (c->closed)
    return NULL;
  rd_kafka_message_t *m = rd_kafka_consumer_poll(c->rk, timeout_ms);
  if (!m)
    return NULL;
  if (!m->err) {
    if (!atomic_load_explicit(&c->connected, memory_order_relaxed))
      atomic_store(&c->connected, true);
    return m;
  }
  consumer_msg_error(c, m);
  rd_kafka_message_destroy(m);
  return NULL;
}

int hl_consumer_store(hl_consumer *c, rd_kafka_topic_t *rkt, int32_t partition,
                      int64_t next_offset) {
  if (next_offset < 1)
    return -EINVAL;
  /* The legacy call stores its argument + 1, i.e. it takes the last done offset. */
  rd_kafka_resp_err_t e = rd_kafka_offset_store(rkt, partition, next_offset - 1);
  return e ? HL_EKAFKA : 0;
}

int hl_consumer_commit(hl_consumer *c) {
  if (c->closed)
    return HL_ECLOSED;
  rd_kafka_resp_err_t e = rd_kafka_commit(c->rk, NULL, 0);
  return e && e != RD_KAFKA_RESP_ERR__NO_OFFSET ? HL_EKAFKA : 0;
}

static int64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Milliseconds left until deadline (a mono_ms() value), at least 0, at most step. */
static int left_ms(int64_t deadline, int step) {
  int64_t d = deadline - mono_ms();
  return d <= 0 ? 0 : d > step ? step : (int)d;
}

int hl_consumer_commit_within(hl_consumer *c, long long timeout_ms) {
  if (c->closed)
    return HL_ECLOSED;
  rd_kafka_queue_t *q = rd_kafka_queue_new(c->rk);
  if (!q)
    return -ENOMEM;
  int r = HL_ETIMEOUT;
  /* With a queue the commit is asynchronous; its result arrives there as an event. */
  rd_kafka_resp_err_t e = rd_kafka_commit_queue(c->rk, NULL, q, NULL, NULL);
  if (e) {
    r = e == RD_KAFKA_RESP_ERR__NO_OFFSET ? 0 : HL_EKAFKA;
    goto out;
  }
  int64_t deadline = mono_ms() + (timeout_ms < 0 ? 0 : timeout_ms);
  do {
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, left_ms(deadline, 100));
    if (!ev)
      continue;
    bool done = rd_kafka_event_type(ev) == RD_KAFKA_EVENT_OFFSET_COMMIT;
    if (done) {
      e = rd_kafka_event_error(ev);
      r = e && e != RD_KAFKA_RESP_ERR__NO_OFFSET ? HL_EKAFKA : 0;
    }
    rd_kafka_event_destroy(ev);
    if (done)
      break;
  } while (mono_ms() < deadline);
out:
  /* A commit still in flight keeps its own reference to the queue. */
  rd_kafka_queue_destroy(q);
  return r;
}

int hl_consumer_pause(hl_consumer *c, bool pause) {
  if (c->closed)
    return HL_ECLOSED;
  c->paused = pause;
  rd_kafka_topic_partition_list_t *l = NULL;
  if (rd_kafka_assignment(c->rk, &l) != RD_KAFKA_RESP_ERR_NO_ERROR)
    return HL_EKAFKA;
  rd_kafka_resp_err_t e = RD_KAFKA_RESP_ERR_NO_ERROR;
  if (l->cnt > 0)
    e = pause ? rd_kafka_pause_partitions(c->rk, l) : rd_kafka_resume_partitions(c->rk, l);
  rd_kafka_topic_partition_list_destroy(l);
  return e ? HL_EKAFKA : 0;
}

int hl_consumer_close(hl_consumer *c) {
  if (c->closed)
    return 0;
  rd_kafka_resp_err_t e = rd_kafka_consumer_close(c->rk);
  c->closed = true;
  atomic_store(&c->joined, false);
  return e ? HL_EKAFKA : 0;
}

int hl_consumer_close_within(hl_consumer *c, long long timeout_ms) {
  if (c->closed)
    return 0;
  if (timeout_ms < 0)
    return hl_consumer_close(c);
  rd_kafka_queue_t *q = rd_kafka_queue_new(c->rk);
  if (!q)
    return -ENOMEM;
  c->bounded = true;
  int r = 0;
  rd_kafka_error_t *err = rd_kafka_consumer_close_queue(c->rk, q);
  if (err) {
    r = rd_kafka_error_is_fatal(err) ? HL_EFATAL : HL_EKAFKA;
    rd_kafka_error_destroy(err);
    c->abandoned = true;
    goto out;
  }
  int64_t deadline = mono_ms() + timeout_ms;
  while (!rd_kafka_consumer_closed(c->rk)) {
    if (mono_ms() >= deadline) {
      c->abandoned = true;
      r = HL_ETIMEOUT;
      break;
    }
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, left_ms(deadline, 100));
    if (!ev)
      continue;
    /* Rebalances arrive as events here: serve them as the callback would. */
    if (rd_kafka_event_type(ev) == RD_KAFKA_EVENT_REBALANCE)
      rebalance_cb(c->rk, rd_kafka_event_error(ev), rd_kafka_event_topic_partition_list(ev), c);
    rd_kafka_event_destroy(ev);
  }
out:
  c->closed = true;
  atomic_store(&c->joined, false);
  rd_kafka_queue_destroy(q);
  return r;
}

bool hl_consumer_fatal(hl_consumer *c, char *reason, size_t len) {
  if (!atomic_load(&c->fatal))
    return false;
  if (reason && len)
    snprintf(reason, len, "%s", c->fatal_reason);
  return true;
}

bool hl_consumer_ready(hl_consumer *c, char *reason, size_t len) {
  const char *why = NULL;
  if (hl_consumer_fatal(c, reason, len))
    return false;
  if (atomic_load(&c->oor))
    why = c->oor_reason;
  else if (!atomic_load(&c->connected))
    why = "no Kafka broker reachable yet";
  else if (!atomic_load(&c->joined))
    why = "consumer group not joined yet";
  if (why && reason && len)
    snprintf(reason, len, "%s", why);
  else if (!why && reason && len)
    reason[0] = '\0';
  return why == NULL;
}

long hl_consumer_out_of_range(hl_consumer *c) { return atomic_load(&c->n_oor); }
long hl_consumer_rebalances(hl_consumer *c) { return atomic_load(&c->n_rebalances); }

void hl_kafka_tune_malloc(void) {
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 256 << 20);
  mallopt(M_MXFAST, 0);
}
