#include "announcer.h"

#include <errno.h>
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hl/error.h"
#include "hl/kafka.h"
#include "hl/log.h"

#define ACK_BATCH 4096

typedef struct inflight {
  int64_t id;
  int64_t t0_ms; /* monotonic; -1 when unknown */
  bool recovered;
} inflight;

typedef struct ack {
  inflight *f;
  int64_t offset;
  rd_kafka_resp_err_t err;
} ack;

struct hl_announcer {
  hl_nstate *st;
  hl_announcer_hooks hooks;
  rd_kafka_t *rk;
  rd_kafka_topic_t *rkt;
  char *topic, *brokers, *props;
  int32_t partitions; /* 0 until connected */
  int max_inflight, timeout_ms, recover_timeout_ms;
  int inflight;
  bool need_recover;
  int64_t *known_hw;  /* per partition: a lower bound of the next offset */
  ack *acks;          /* reports collected during one poll */
  size_t nacks;
};

static int64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int conf_set(rd_kafka_conf_t *conf, const char *k, const char *v, char *err, size_t errlen) {
  char rerr[256];
  if (rd_kafka_conf_set(conf, k, v, rerr, sizeof rerr) != RD_KAFKA_CONF_OK) {
    snprintf(err, errlen, "kafka property %s: %s", k, rerr);
    return HL_ECONFIG;
  }
  return 0;
}

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
  hl_announcer *a = opaque;
  inflight *f = m->_private;
  if (!f)
    return;
  if (a->nacks == ACK_BATCH) {
    /* Never more than max_inflight (<= ACK_BATCH) reports are outstanding. */
    free(f);
    a->inflight--;
    a->need_recover = true;
    return;
  }
  a->acks[a->nacks++] = (ack){.f = f, .offset = m->offset, .err = m->err};
}

int hl_announcer_new(const hl_announcer_opts *o, hl_nstate *st, const hl_announcer_hooks *hooks,
                     hl_announcer **out, char *err, size_t errlen) {
  if (!o->brokers || !*o->brokers) {
    snprintf(err, errlen, "kafka brokers are required");
    return HL_ECONFIG;
  }
  hl_announcer *a = calloc(1, sizeof *a);
  if (!a)
    return -ENOMEM;
  int r = -ENOMEM;
  rd_kafka_conf_t *conf = NULL;
  a->st = st;
  if (hooks)
    a->hooks = *hooks;
  a->max_inflight = o->max_inflight > 0 ? o->max_inflight : 1000;
  if (a->max_inflight > ACK_BATCH)
    a->max_inflight = ACK_BATCH;
  a->timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : 10000;
  a->recover_timeout_ms = o->recover_timeout_ms > 0 ? o->recover_timeout_ms : 60000;
  a->topic = strdup(o->topic && *o->topic ? o->topic : "hl.landing.objects");
  a->brokers = strdup(o->brokers);
  a->props = strdup(o->props ? o->props : "");
  a->acks = calloc(ACK_BATCH, sizeof *a->acks);
  if (!a->topic || !a->brokers || !a->props || !a->acks)
    goto fail;
  conf = rd_kafka_conf_new();
  if ((r = conf_set(conf, "bootstrap.servers", o->brokers, err, errlen)) < 0 ||
      (r = conf_set(conf, "enable.idempotence", "true", err, errlen)) < 0 ||
      (r = conf_set(conf, "acks", "all", err, errlen)) < 0 ||
      (r = conf_set(conf, "linger.ms", "5", err, errlen)) < 0 ||
      (r = conf_set(conf, "client.id", "hl-s3-notifier", err, errlen)) < 0 ||
      (r = hl_kafka_props_apply(conf, o->props, err, errlen)) < 0)
    goto fail;
  rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
  rd_kafka_conf_set_opaque(conf, a);
  char rerr[256];
  a->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, rerr, sizeof rerr);
  if (!a->rk) {
    snprintf(err, errlen, "kafka producer: %s", rerr);
    r = HL_ECONFIG;
    goto fail;
  }
  conf = NULL;
  a->rkt = rd_kafka_topic_new(a->rk, a->topic, NULL);
  if (!a->rkt) {
    r = -ENOMEM;
    goto fail;
  }
  *out = a;
  return 0;
fail:
  if (conf)
    rd_kafka_conf_destroy(conf);
  hl_announcer_free(a);
  return r;
}

static void serve_acks(hl_announcer *a);

hl_announcer *hl_announcer_free(hl_announcer *a) {
  if (!a)
    return NULL;
  if (a->rk) {
    rd_kafka_purge(a->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    /* Purged reports come back as errors: their rows stay pending. */
    for (int i = 0; i < 100 && a->inflight > 0; i++) {
      rd_kafka_poll(a->rk, 10);
      serve_acks(a);
    }
  }
  if (a->rkt)
    rd_kafka_topic_destroy(a->rkt);
  if (a->rk)
    rd_kafka_destroy(a->rk);
  free(a->known_hw);
  free(a->acks);
  free(a->topic);
  free(a->brokers);
  free(a->props);
  free(a);
  return NULL;
}

int hl_announcer_connect(hl_announcer *a) {
  const struct rd_kafka_metadata *md = NULL;
  rd_kafka_resp_err_t e = rd_kafka_metadata(a->rk, 0, a->rkt, &md, a->timeout_ms);
  if (e)
    return e == RD_KAFKA_RESP_ERR__TIMED_OUT ? HL_ETIMEOUT : HL_EKAFKA;
  int r = HL_EKAFKA;
  if (md->topic_cnt == 1 && md->topics[0].err == 0 && md->topics[0].partition_cnt > 0) {
    int32_t n = md->topics[0].partition_cnt;
    int64_t *hw = calloc((size_t)n, sizeof *hw);
    if (!hw) {
      r = -ENOMEM;
    } else {
      free(a->known_hw);
      a->known_hw = hw;
      a->partitions = n;
      r = 0;
    }
  }
  rd_kafka_metadata_destroy(md);
  return r;
}

bool hl_announcer_connected(const hl_announcer *a) { return a->partitions > 0; }
int32_t hl_announcer_partitions(const hl_announcer *a) { return a->partitions; }

int32_t hl_announcer_partition_for(const char *msg_key, int32_t n) {
  return rd_kafka_msg_partitioner_consistent(NULL, msg_key, strlen(msg_key), n, NULL, NULL);
}

bool hl_announcer_need_recover(const hl_announcer *a) { return a->need_recover; }
int hl_announcer_room(const hl_announcer *a) {
  return a->max_inflight > a->inflight ? a->max_inflight - a->inflight : 0;
}
int hl_announcer_inflight(const hl_announcer *a) { return a->inflight; }

/* Produces one recorded row to its partition. 0 or HL_EKAFKA (the row stays pending). */
static int produce_row(hl_announcer *a, const hl_nstate_row *row, int64_t t0_ms, bool recovered) {
  inflight *f = malloc(sizeof *f);
  if (!f)
    return -ENOMEM;
  *f = (inflight){.id = row->id, .t0_ms = t0_ms, .recovered = recovered};
  rd_kafka_headers_t *h = rd_kafka_headers_new(6);
  char ingested[32];
  snprintf(ingested, sizeof ingested, "%lld", (long long)row->created_ms);
  rd_kafka_header_add(h, "hl-event-id", -1, row->event_id, -1);
  rd_kafka_header_add(h, "hl-org", -1, row->org, -1);
  rd_kafka_header_add(h, "hl-job", -1, row->job, -1);
  rd_kafka_header_add(h, "hl-etag", -1, row->etag, -1);
  if (row->uri)
    rd_kafka_header_add(h, "hl-source", -1, row->uri, -1);
  rd_kafka_header_add(h, "hl-ingested-at", -1, ingested, -1);
  rd_kafka_resp_err_t e = rd_kafka_producev(
      a->rk, RD_KAFKA_V_RKT(a->rkt), RD_KAFKA_V_PARTITION(row->partition),
      RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
      RD_KAFKA_V_KEY(row->msg_key, strlen(row->msg_key)),
      RD_KAFKA_V_VALUE((void *)row->value, strlen(row->value)), RD_KAFKA_V_HEADERS(h),
      RD_KAFKA_V_OPAQUE(f), RD_KAFKA_V_END);
  if (e) {
    rd_kafka_headers_destroy(h);
    free(f);
    a->need_recover = true;
    if (hl_log_enabled(HL_LOG_DEBUG))
      hl_log_kv(HL_LOG_DEBUG, "notifier produce failed", "error", rd_kafka_err2str(e), NULL);
    return HL_EKAFKA;
  }
  a->inflight++;
  return 0;
}

/* Asks for a partition's watermarks. 0, HL_ETIMEOUT or HL_EKAFKA. */
static int watermarks(hl_announcer *a, int32_t p, int64_t *lo, int64_t *hi) {
  rd_kafka_resp_err_t e = rd_kafka_query_watermark_offsets(a->rk, a->topic, p, lo, hi, a->timeout_ms);
  if (e)
    return e == RD_KAFKA_RESP_ERR__TIMED_OUT ? HL_ETIMEOUT : HL_EKAFKA;
  return 0;
}

int hl_announcer_submit(hl_announcer *a, const hl_announce_item *items, size_t n) {
  if (!a->partitions)
    return HL_ECLOSED;
  if (n == 0)
    return 0;
  if ((int)n > hl_announcer_room(a))
    return HL_ELIMIT;
  int r = -ENOMEM;
  int32_t *parts = malloc(n * sizeof *parts);
  hl_nstate_row *rows = calloc(n, sizeof *rows);
  bool *fresh = calloc(n, sizeof *fresh);
  bool *asked = calloc((size_t)a->partitions, sizeof *asked);
  if (!parts || !rows || !fresh || !asked)
    goto done;
  /* One watermark query per partition of the batch. */
  for (size_t i = 0; i < n; i++) {
    int32_t p = parts[i] = hl_announcer_partition_for(items[i].msg_key, a->partitions);
    if (asked[p])
      continue;
    int64_t lo, hi;
    if ((r = watermarks(a, p, &lo, &hi)) < 0)
      goto done;
    if (hi > a->known_hw[p])
      a->known_hw[p] = hi;
    asked[p] = true;
  }
  int64_t now = wall_ms();
  if ((r = hl_nstate_begin(a->st)) < 0)
    goto done;
  for (size_t i = 0; i < n; i++) {
    const hl_announce_item *it = &items[i];
    rows[i] = (hl_nstate_row){.bucket = it->bucket, .key = it->key, .etag = it->etag,
                              .event_id = it->event_id, .org = it->org, .job = it->job, .uri = it->uri,
                              .msg_key = it->msg_key, .value = it->value, .partition = parts[i],
                              .watermark = a->known_hw[parts[i]], .created_ms = now};
    r = hl_nstate_insert_pending(a->st, &rows[i]);
    if (r < 0) {
      hl_nstate_rollback(a->st);
      goto done;
    }
    fresh[i] = r == 0;
  }
  if ((r = hl_nstate_commit(a->st)) < 0) {
    hl_nstate_rollback(a->st);
    goto done;
  }
  /* The rows are durable: only now may their messages exist. */
  int produced = 0;
  for (size_t i = 0; i < n; i++) {
    if (!fresh[i])
      continue;
    if (produce_row(a, &rows[i], items[i].t0_ms, false) == 0)
      produced++;
  }
  r = produced;
done:
  free(parts);
  free(rows);
  free(fresh);
  free(asked);
  return r;
}

static void serve_acks(hl_announcer *a) {
  if (a->nacks == 0)
    return;
  int64_t now = mono_ms();
  bool txn = hl_nstate_begin(a->st) == 0;
  for (size_t i = 0; i < a->nacks; i++) {
    ack *k = &a->acks[i];
    if (k->err) {
      /* The row stays pending; recovery finds out whether it landed. */
      a->need_recover = true;
      if (hl_log_enabled(HL_LOG_DEBUG))
        hl_log_kv(HL_LOG_DEBUG, "notifier delivery failed", "error", rd_kafka_err2str(k->err), NULL);
    } else if (!txn || hl_nstate_mark_announced(a->st, k->f->id, k->offset) < 0) {
      a->need_recover = true;
    } else if (a->hooks.announced) {
      a->hooks.announced(a->hooks.ud, k->f->t0_ms >= 0 ? now - k->f->t0_ms : -1, k->f->recovered);
    }
    free(k->f);
    a->inflight--;
  }
  a->nacks = 0;
  if (txn && hl_nstate_commit(a->st) < 0) {
    hl_nstate_rollback(a->st);
    a->need_recover = true;
  }
}

int hl_announcer_poll(hl_announcer *a, int timeout_ms) {
  int n = rd_kafka_poll(a->rk, timeout_ms);
  serve_acks(a);
  return n;
}

int hl_announcer_flush(hl_announcer *a, int timeout_ms) {
  int64_t end = mono_ms() + timeout_ms;
  while (a->inflight > 0) {
    int64_t left = end - mono_ms();
    if (left <= 0)
      return HL_ETIMEOUT;
    hl_announcer_poll(a, left > 50 ? 50 : (int)left);
  }
  return 0;
}

bool hl_announcer_fatal(hl_announcer *a, char *reason, size_t len) {
  char buf[256];
  rd_kafka_resp_err_t e = rd_kafka_fatal_error(a->rk, buf, sizeof buf);
  if (e && reason)
    snprintf(reason, len, "%s", buf);
  return e != 0;
}

/* ---- Recovery ------------------------------------------------------------ */

typedef struct prow {
  hl_nstate_row row;   /* strings owned (strdup) */
  bool found;
  int64_t offset;
  bool unverifiable;
} prow;

typedef struct pset {
  prow *v;
  size_t n, cap;
  int err;
} pset;

static char *dup0(const char *s) { return strdup(s ? s : ""); }

static int collect(void *ud, const hl_nstate_row *r) {
  pset *s = ud;
  if (s->n == s->cap) {
    size_t cap = s->cap ? s->cap * 2 : 64;
    prow *v = realloc(s->v, cap * sizeof *v);
    if (!v)
      return -ENOMEM;
    s->v = v;
    s->cap = cap;
  }
  prow *p = &s->v[s->n];
  memset(p, 0, sizeof *p);
  p->row = *r;
  p->row.bucket = dup0(r->bucket);
  p->row.key = dup0(r->key);
  p->row.etag = dup0(r->etag);
  p->row.event_id = dup0(r->event_id);
  p->row.org = dup0(r->org);
  p->row.job = dup0(r->job);
  p->row.uri = dup0(r->uri);
  p->row.msg_key = dup0(r->msg_key);
  p->row.value = dup0(r->value);
  s->n++;
  if (!p->row.bucket || !p->row.key || !p->row.etag || !p->row.event_id || !p->row.org ||
      !p->row.job || !p->row.uri || !p->row.msg_key || !p->row.value)
    return -ENOMEM;
  return 0;
}

static void pset_free(pset *s) {
  for (size_t i = 0; i < s->n; i++) {
    hl_nstate_row *r = &s->v[i].row;
    free((char *)r->bucket);
    free((char *)r->key);
    free((char *)r->etag);
    free((char *)r->event_id);
    free((char *)r->org);
    free((char *)r->job);
    free((char *)r->uri);
    free((char *)r->msg_key);
    free((char *)r->value);
  }
  free(s->v);
}

/* Orders by partition, then event id, for binary search. */
static int prow_cmp(const void *x, const void *y) {
  const prow *a = x, *b = y;
  if (a->row.partition != b->row.partition)
    return a->row.partition < b->row.partition ? -1 : 1;
  return strcmp(a->row.event_id, b->row.event_id);
}

static prow *prow_find(pset *s, int32_t part, const char *event_id) {
  size_t lo = 0, hi = s->n;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    prow *m = &s->v[mid];
    int c = m->row.partition != part ? (m->row.partition < part ? -1 : 1)
                                     : strcmp(m->row.event_id, event_id);
    if (c == 0)
      return m;
    if (c < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  return NULL;
}

typedef struct scan_part {
  int32_t partition;
  int64_t from, end; /* read [from, end) */
  bool done;
} scan_part;

/* Reads the partitions in parts and marks the rows found in s. */
static int scan(hl_announcer *a, pset *s, scan_part *parts, size_t nparts) {
  char err[512];
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  int r = 0;
  if ((r = conf_set(conf, "bootstrap.servers", a->brokers, err, sizeof err)) < 0 ||
      (r = conf_set(conf, "group.id", "hl-s3-notifier-recovery", err, sizeof err)) < 0 ||
      (r = conf_set(conf, "enable.auto.commit", "false", err, sizeof err)) < 0 ||
      (r = conf_set(conf, "enable.auto.offset.store", "false", err, sizeof err)) < 0 ||
      (r = conf_set(conf, "enable.partition.eof", "true", err, sizeof err)) < 0 ||
      (r = conf_set(conf, "isolation.level", "read_uncommitted", err, sizeof err)) < 0 ||
      (r = conf_set(conf, "client.id", "hl-s3-notifier-recovery", err, sizeof err)) < 0) {
    rd_kafka_conf_destroy(conf);
    return r;
  }
  /* Producer-only properties are ignored by a consumer (librdkafka warns, that is all). */
  hl_kafka_props_apply(conf, a->props, err, sizeof err);
  rd_kafka_t *c = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
  if (!c) {
    rd_kafka_conf_destroy(conf);
    return HL_EKAFKA;
  }
  rd_kafka_topic_partition_list_t *tl = rd_kafka_topic_partition_list_new((int)nparts);
  size_t left = 0;
  for (size_t i = 0; i < nparts; i++) {
    if (parts[i].done)
      continue;
    rd_kafka_topic_partition_list_add(tl, a->topic, parts[i].partition)->offset = parts[i].from;
    left++;
  }
  if (left == 0 || rd_kafka_assign(c, tl) != 0) {
    r = left == 0 ? 0 : HL_EKAFKA;
    goto done;
  }
  int64_t deadline = mono_ms() + a->recover_timeout_ms;
  while (left > 0) {
    if (mono_ms() > deadline) {
      r = HL_ETIMEOUT;
      break;
    }
    rd_kafka_message_t *m = rd_kafka_consumer_poll(c, 100);
    if (!m)
      continue;
    scan_part *sp = NULL;
    for (size_t i = 0; i < nparts; i++)
      if (parts[i].partition == m->partition)
        sp = &parts[i];
    if (m->err && m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      if (m->err == RD_KAFKA_RESP_ERR_OFFSET_OUT_OF_RANGE)
        r = HL_EOFFSET;
      else if (hl_log_enabled(HL_LOG_DEBUG))
        hl_log_kv(HL_LOG_DEBUG, "notifier recovery read error", "error",
                  rd_kafka_message_errstr(m), NULL);
      rd_kafka_message_destroy(m);
      if (r)
        break;
      continue;
    }
    if (!m->err && sp) {
      rd_kafka_headers_t *h = NULL;
      const void *v;
      size_t vlen;
      char id[64];
      if (rd_kafka_message_headers(m, &h) == 0 &&
          rd_kafka_header_get_last(h, "hl-event-id", &v, &vlen) == 0 && vlen < sizeof id) {
        memcpy(id, v, vlen);
        id[vlen] = '\0';
        prow *p = prow_find(s, m->partition, id);
        if (p && !p->found && m->offset >= p->row.watermark) {
          p->found = true;
          p->offset = m->offset;
        }
      }
    }
    int64_t next = m->err ? m->offset : m->offset + 1;
    if (sp && !sp->done && next >= sp->end) {
      sp->done = true;
      left--;
    }
    rd_kafka_message_destroy(m);
  }
done:
  rd_kafka_topic_partition_list_destroy(tl);
  rd_kafka_consumer_close(c);
  rd_kafka_destroy(c);
  return r;
}

int hl_announcer_recover(hl_announcer *a) {
  if (!a->partitions)
    return HL_ECLOSED;
  if (a->inflight > 0)
    return -EBUSY;
  pset s = {0};
  scan_part *parts = NULL;
  size_t nparts = 0;
  int r = hl_nstate_each_pending(a->st, collect, &s);
  if (r < 0)
    goto done;
  a->need_recover = false;
  if (s.n == 0)
    goto done;
  qsort(s.v, s.n, sizeof *s.v, prow_cmp);
  parts = calloc(s.n, sizeof *parts);
  if (!parts) {
    r = -ENOMEM;
    goto done;
  }
  /* One range per partition: from the lowest recorded watermark of its rows to the end now. */
  for (size_t i = 0; i < s.n; i++) {
    prow *p = &s.v[i];
    if (nparts == 0 || parts[nparts - 1].partition != p->row.partition) {
      parts[nparts].partition = p->row.partition;
      parts[nparts].from = p->row.watermark;
      nparts++;
    } else if (p->row.watermark < parts[nparts - 1].from) {
      parts[nparts - 1].from = p->row.watermark;
    }
  }
  size_t k = 0;
  for (size_t j = 0; j < nparts; j++) {
    scan_part *sp = &parts[j];
    int64_t lo, hi;
    if ((r = watermarks(a, sp->partition, &lo, &hi)) < 0)
      goto done;
    /* Messages below the low watermark are gone: such rows cannot be verified. */
    for (; k < s.n && s.v[k].row.partition == sp->partition; k++)
      if (s.v[k].row.watermark < lo)
        s.v[k].unverifiable = true;
    sp->end = hi;
    if (sp->from < lo)
      sp->from = lo;
    sp->done = sp->from >= sp->end;
  }
  if ((r = scan(a, &s, parts, nparts)) < 0)
    goto done;
  if ((r = hl_nstate_begin(a->st)) < 0)
    goto done;
  size_t found = 0;
  for (size_t i = 0; i < s.n; i++) {
    if (!s.v[i].found)
      continue;
    if ((r = hl_nstate_mark_announced(a->st, s.v[i].row.id, s.v[i].offset)) < 0) {
      hl_nstate_rollback(a->st);
      goto done;
    }
    found++;
    if (a->hooks.announced)
      a->hooks.announced(a->hooks.ud, -1, true);
  }
  if ((r = hl_nstate_commit(a->st)) < 0) {
    hl_nstate_rollback(a->st);
    goto done;
  }
  size_t again = 0;
  for (size_t i = 0; i < s.n; i++) {
    prow *p = &s.v[i];
    if (p->found)
      continue;
    /* Recovery may exceed the in-flight bound once: these rows were already counted as pending. */
    if ((r = produce_row(a, &p->row, -1, true)) < 0)
      goto done;
    again++;
    if (a->hooks.reproduced)
      a->hooks.reproduced(a->hooks.ud, p->unverifiable);
  }
  if (hl_log_enabled(HL_LOG_INFO)) {
    char nf[32], na[32];
    snprintf(nf, sizeof nf, "%zu", found);
    snprintf(na, sizeof na, "%zu", again);
    hl_log_kv(HL_LOG_INFO, "notifier recovered pending announcements", "found_on_topic", nf,
              "produced_again", na, NULL);
  }
  r = 0;
done:
  free(parts);
  pset_free(&s);
  return r;
}
