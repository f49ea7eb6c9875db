#include "loader_worker.h"

#include <errno.h>
#include <jansson.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "hl/buf.h"
#include "hl/error.h"
#include "hl/kafka.h"
#include "hl/log.h"

/* Prefix of the event ids of the loader's own load events (already counted by the commit). */
#define OWN_EVENT_PREFIX "loader:"
#define FIELD_MAX 1024

/* What one input of the batch is. */
enum { K_ROW, K_EVENT, K_DONE };

/* Load counts of one landed object within one transaction. */
typedef struct objagg {
  char org[128], job[256], uri[FIELD_MAX];
  uint64_t loaded, rejected;
  size_t carrier;
} objagg;

struct hl_loader_worker {
  hl_worker *w;
  hl_wh *wh;
  hl_wh_batch *b;
  char *in_topic, *status_topic, *committed_topic;
  size_t *rowmsg;  /* wh row index -> input index */
  size_t *evmsg;   /* inputs folded as events in the current transaction */
  unsigned char *kind;
  size_t cap;
  objagg *objs;
  size_t nobjs, objcap;
  _Atomic bool storage_failed;
  char storage_reason[256];
  hl_metric *m_rows, *m_commits, *m_events;
  hl_series *s_commit_seconds, *s_batch_rows, *s_busy;
};

static void now_rfc3339(char *out, size_t n) {
  struct timeval tv;
  struct tm tm;
  gettimeofday(&tv, NULL);
  gmtime_r(&tv.tv_sec, &tm);
  snprintf(out, n, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
           tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(tv.tv_usec / 1000));
}

static double mono_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static const double batch_bounds[] = {1, 10, 100, 500, 1000, 2000, 5000, 10000, 50000};

int hl_loader_worker_new(const hl_config *cfg, hl_metrics *reg, hl_loader_worker **out, char *err,
                         size_t errlen) {
  hl_loader_worker *lw = calloc(1, sizeof *lw);
  if (!lw)
    return -ENOMEM;
  int r = -ENOMEM;
  lw->in_topic = strdup(hl_config_str(cfg, "HL_LOADER_INPUT_TOPIC"));
  lw->status_topic = strdup(hl_config_str(cfg, "HL_LOADER_STATUS_TOPIC"));
  lw->committed_topic = strdup(hl_config_str(cfg, "HL_LOADER_COMMITTED_TOPIC"));
  if (!lw->in_topic || !lw->status_topic || !lw->committed_topic)
    goto fail;
  size_t rows = (size_t)hl_config_int(cfg, "HL_WORKER_BATCH_MAX");
  if ((r = hl_wh_batch_new(rows, (size_t)hl_config_int(cfg, "HL_LOADER_BATCH_BYTES"), &lw->b)) < 0)
    goto fail;
  hl_wh_opts wo;
  hl_wh_opts_from_config(cfg, &wo);
  if ((r = hl_wh_new(&wo, &lw->wh, err, errlen)) < 0)
    goto fail;
  lw->m_rows = hl_metrics_counter(reg, "hl_loader_rows_total",
                                  "Resources written to the warehouse, by type and row status "
                                  "(applied, stale, raw_only, duplicate, rejected).",
                                  "type,status");
  lw->m_commits = hl_metrics_counter(reg, "hl_loader_commits_total",
                                     "Warehouse transactions, by result (ok, busy, storage, error).",
                                     "result");
  lw->m_events = hl_metrics_counter(reg, "hl_loader_job_events_total",
                                    "Job-status events consumed, by result (folded, own, invalid, "
                                    "skipped).",
                                    "result");
  lw->s_commit_seconds = hl_metric_at(hl_metrics_histogram(
      reg, "hl_loader_commit_seconds", "Duration of one warehouse transaction.", NULL,
      hl_metrics_latency_buckets, hl_metrics_latency_nbuckets));
  lw->s_batch_rows = hl_metric_at(hl_metrics_histogram(reg, "hl_loader_batch_rows",
                                                       "Rows per committed warehouse transaction.",
                                                       NULL, batch_bounds,
                                                       sizeof batch_bounds / sizeof batch_bounds[0]));
  lw->s_busy = hl_metric_at(hl_metrics_gauge(reg, "hl_loader_busy_retries",
                                             "Warehouse attempts that met a busy or locked database "
                                             "and were retried (since start).",
                                             NULL));
  *out = lw;
  return 0;
fail:
  hl_loader_worker_free(lw);
  return r;
}

hl_loader_worker *hl_loader_worker_free(hl_loader_worker *lw) {
  if (!lw)
    return NULL;
  hl_wh_batch_free(lw->b);
  hl_wh_free(lw->wh);
  free(lw->in_topic);
  free(lw->status_topic);
  free(lw->committed_topic);
  free(lw->rowmsg);
  free(lw->evmsg);
  free(lw->kind);
  free(lw->objs);
  free(lw);
  return NULL;
}

void hl_loader_worker_attach(hl_loader_worker *lw, hl_worker *w) { lw->w = w; }

bool hl_loader_worker_ready(void *ud, char *reason, size_t len) {
  hl_loader_worker *lw = ud;
  if (atomic_load(&lw->storage_failed)) {
    if (reason && len)
      snprintf(reason, len, "%s", lw->storage_reason);
    return false;
  }
  if (!lw->w) {
    if (reason && len)
      snprintf(reason, len, "starting");
    return false;
  }
  return hl_worker_ready(lw->w, reason, len);
}

/* ---- helpers ---- */

static void hdr(const hl_kafka_msg *msg, const char *name, char *buf, size_t len) {
  if (hl_kafka_header_get(msg->rkm, name, buf, len) < 0)
    buf[0] = 0;
}

static const char *type_label(const char *type) {
  return type && hl_wh_curated_table(type) ? type : "other";
}

static int grow(hl_loader_worker *lw, size_t n) {
  if (n <= lw->cap)
    return 0;
  size_t *a = realloc(lw->rowmsg, n * sizeof *a);
  if (!a)
    return -ENOMEM;
  lw->rowmsg = a;
  size_t *e = realloc(lw->evmsg, n * sizeof *e);
  if (!e)
    return -ENOMEM;
  lw->evmsg = e;
  unsigned char *k = realloc(lw->kind, n);
  if (!k)
    return -ENOMEM;
  lw->kind = k;
  lw->cap = n;
  return 0;
}

/*
 * Decides what to do with a job-status event: K_EVENT (fold it; *norm is
 * set to a malloc'ed copy without null members when it had some, since
 * the schema has no nulls), K_DONE with *bad = false (one of the loader's
 * own load events: the commit that published it counted it already), or
 * K_DONE with *bad = true.
 */
static int classify_event(const hl_kafka_msg *msg, bool *bad, char **norm) {
  *bad = false;
  *norm = NULL;
  json_error_t je;
  json_t *o = msg->value ? json_loadb(msg->value, msg->len, 0, &je) : NULL;
  if (!json_is_object(o)) {
    json_decref(o);
    *bad = true;
    return K_DONE;
  }
  const char *id = json_string_value(json_object_get(o, "event_id"));
  const char *stage = json_string_value(json_object_get(o, "stage"));
  int k = K_EVENT;
  if (stage && !strcmp(stage, "load") && id && !strncmp(id, OWN_EVENT_PREFIX, strlen(OWN_EVENT_PREFIX)))
    k = K_DONE;
  bool nulls = false;
  const char *name;
  json_t *v;
  void *tmp;
  json_object_foreach_safe(o, tmp, name, v) {
    if (json_is_null(v)) {
      json_object_del(o, name);
      nulls = true;
    }
  }
  if (k == K_EVENT && nulls)
    *norm = json_dumps(o, JSON_COMPACT);
  json_decref(o);
  return k;
}

/* Fills a warehouse row from msg (views into msg and the caller's buffers). */
static int make_row(const hl_kafka_msg *msg, hl_wh_row *row, char *job, char *src, char *at,
                    char *line) {
  memset(row, 0, sizeof *row);
  if (!msg->key || hl_wh_row_set_key(row, msg->key, msg->key_len) < 0)
    return HL_EPARSE;
  hdr(msg, HL_HDR_JOB, job, 256);
  hdr(msg, HL_HDR_SOURCE, src, FIELD_MAX);
  hdr(msg, HL_HDR_INGESTED_AT, at, 64);
  hdr(msg, HL_HDR_LINE, line, 24);
  row->json = msg->value ? msg->value : "";
  row->json_len = msg->value ? msg->len : 0;
  row->job = job[0] ? job : NULL;
  row->source = src[0] ? src : NULL;
  row->ingested_at = at[0] ? at : NULL;
  char *end;
  long long ln = line[0] ? strtoll(line, &end, 10) : -1;
  row->line = line[0] && !*end && ln >= 0 ? ln : -1;
  row->topic = msg->topic;
  row->partition = msg->partition;
  row->offset = msg->offset;
  return 0;
}

static objagg *obj_note(hl_loader_worker *lw, const hl_kafka_msg *msg, size_t idx) {
  char org[128], job[256], uri[FIELD_MAX];
  hdr(msg, HL_HDR_JOB, job, sizeof job);
  hdr(msg, HL_HDR_SOURCE, uri, sizeof uri);
  /* The tenant is the key's first segment, as in the warehouse. */
  const char *k = msg->key, *slash = k ? memchr(k, '/', msg->key_len) : NULL;
  snprintf(org, sizeof org, "%.*s", slash ? (int)(slash - k) : 0, k ? k : "");
  if (!job[0] || !org[0])
    return NULL;
  for (size_t i = 0; i < lw->nobjs; i++) {
    objagg *a = &lw->objs[i];
    if (!strcmp(a->uri, uri) && !strcmp(a->job, job) && !strcmp(a->org, org)) {
      a->carrier = idx;
      return a;
    }
  }
  if (lw->nobjs == lw->objcap) {
    size_t cap = lw->objcap ? lw->objcap * 2 : 16;
    objagg *o = realloc(lw->objs, cap * sizeof *o);
    if (!o)
      return NULL;
    lw->objs = o;
    lw->objcap = cap;
  }
  objagg *a = &lw->objs[lw->nobjs++];
  memset(a, 0, sizeof *a);
  snprintf(a->org, sizeof a->org, "%s", org);
  snprintf(a->job, sizeof a->job, "%s", job);
  snprintf(a->uri, sizeof a->uri, "%s", uri);
  a->carrier = idx;
  return a;
}

static hl_proc_result send_error(int r) {
  return r == HL_EFATAL || r == -ENOMEM ? HL_PROC_FATAL : HL_PROC_RETRY;
}

/* Produces json on behalf of msgs[carrier]; on failure the carrier is retried. */
static void emit(hl_loader_worker *lw, hl_worker *w, hl_kafka_msg *msgs, hl_proc_result *results,
                 size_t carrier, const char *topic, const char *key, hl_buf *json) {
  hl_kafka_out out = {topic, key, strlen(key), json->data, json->len, NULL};
  int r = hl_worker_produce(w, &msgs[carrier], &out);
  if (r) {
    hl_log_kv(HL_LOG_WARN, "event not enqueued; its input is retried", "topic", topic, "error",
              hl_strerror(r), NULL);
    if (results[carrier] == HL_PROC_OK)
      results[carrier] = send_error(r);
  }
  (void)lw;
}

/* hl.load.committed: one event per (tenant, job) of the committed transaction. */
static void publish_committed(hl_loader_worker *lw, hl_worker *w, hl_kafka_msg *msgs,
                              hl_proc_result *results, const hl_wh_result *res, size_t fallback,
                              const char *now) {
  hl_buf ev;
  hl_buf_init(&ev, 1 << 20);
  for (size_t i = 0; i < res->ncounts;) {
    const hl_wh_count *c0 = &res->counts[i];
    size_t j = i;
    hl_buf_reset(&ev);
    int r = hl_buf_puts(&ev, "{\"org\":\"");
    r = r ? r : hl_buf_json_escape(&ev, c0->tenant, strlen(c0->tenant));
    r = r ? r : hl_buf_puts(&ev, "\",\"job\":\"");
    r = r ? r : hl_buf_json_escape(&ev, c0->job, strlen(c0->job));
    r = r ? r : hl_buf_printf(&ev, "\",\"batch_id\":%lld,\"time\":\"%s\",\"counts\":{",
                              (long long)res->batch_id, now);
    uint64_t rows = 0, loaded = 0, rejected = 0;
    for (; j < res->ncounts && !strcmp(res->counts[j].tenant, c0->tenant) &&
           !strcmp(res->counts[j].job, c0->job);
         j++) {
      const hl_wh_count *c = &res->counts[j];
      r = r ? r : hl_buf_printf(&ev, "%s\"", j > i ? "," : "");
      r = r ? r : hl_buf_json_escape(&ev, c->type, strlen(c->type));
      r = r ? r : hl_buf_printf(&ev,
                                "\":{\"rows\":%llu,\"applied\":%llu,\"stale\":%llu,\"raw_only\":%llu,"
                                "\"duplicate\":%llu,\"rejected\":%llu}",
                                (unsigned long long)c->rows, (unsigned long long)c->applied,
                                (unsigned long long)c->stale, (unsigned long long)c->raw_only,
                                (unsigned long long)c->duplicate, (unsigned long long)c->rejected);
      rows += c->rows;
      loaded += c->applied + c->stale + c->raw_only;
      rejected += c->rejected;
    }
    r = r ? r : hl_buf_printf(&ev, "},\"rows\":%llu,\"loaded\":%llu,\"rejected\":%llu}",
                              (unsigned long long)rows, (unsigned long long)loaded,
                              (unsigned long long)rejected);
    /* The carrier: the last input of this (tenant, job) when one is known. */
    size_t carrier = fallback;
    for (size_t k = 0; k < lw->nobjs; k++)
      if (!strcmp(lw->objs[k].org, c0->tenant) && !strcmp(lw->objs[k].job, c0->job))
        carrier = lw->objs[k].carrier;
    char key[400];
    snprintf(key, sizeof key, "%s/%.250s", c0->tenant, c0->job);
    if (!r)
      emit(lw, w, msgs, results, carrier, lw->committed_topic, key, &ev);
    i = j;
  }
  hl_buf_free(&ev);
}

/* Load-stage job-status events: one per object with something new. */
static void publish_load_events(hl_loader_worker *lw, hl_worker *w, hl_kafka_msg *msgs,
                                hl_proc_result *results, int64_t batch_id, const char *now) {
  if (!*lw->status_topic)
    return;
  hl_buf ev;
  hl_buf_init(&ev, 64 * 1024);
  for (size_t i = 0; i < lw->nobjs; i++) {
    objagg *a = &lw->objs[i];
    if (a->loaded == 0 && a->rejected == 0)
      continue; /* a replay: nothing new */
    hl_buf_reset(&ev);
    int r = hl_buf_puts(&ev, "{\"job\":\"");
    r = r ? r : hl_buf_json_escape(&ev, a->job, strlen(a->job));
    r = r ? r : hl_buf_puts(&ev, "\",\"org\":\"");
    r = r ? r : hl_buf_json_escape(&ev, a->org, strlen(a->org));
    r = r ? r : hl_buf_puts(&ev, "\",\"uri\":\"");
    r = r ? r : hl_buf_json_escape(&ev, a->uri, strlen(a->uri));
    r = r ? r : hl_buf_printf(&ev,
                              "\",\"stage\":\"load\",\"state\":\"loaded\",\"emitted\":%llu,"
                              "\"rejected\":%llu,\"time\":\"%s\",\"event_id\":\"" OWN_EVENT_PREFIX
                              "%lld:%zu\"}",
                              (unsigned long long)a->loaded, (unsigned long long)a->rejected, now,
                              (long long)batch_id, i);
    char key[400];
    snprintf(key, sizeof key, "%s/%.250s", a->org, a->job);
    if (!r)
      emit(lw, w, msgs, results, a->carrier, lw->status_topic, key, &ev);
  }
  hl_buf_free(&ev);
}

/*
 * Commits the rows and events added so far (inputs rowmsg[0..nrows),
 * evmsg[0..nev)) and fills their results. Returns the commit's code.
 */
static int commit(hl_loader_worker *lw, hl_worker *w, hl_kafka_msg *msgs, size_t nrows,
                  size_t nev, hl_proc_result *results) {
  if (nrows == 0 && nev == 0)
    return 0;
  hl_wh_result res;
  double t0 = mono_s();
  int rc = hl_wh_batch_commit(lw->wh, lw->b, &res);
  hl_wh_stats st;
  hl_wh_get_stats(lw->wh, &st);
  hl_series_set(lw->s_busy, (double)st.busy_retries);
  hl_proc_result fail = HL_PROC_OK;
  if (rc == HL_WH_EBUSY) {
    hl_series_inc(hl_metric_at(lw->m_commits, "busy"));
    hl_log_kv(HL_LOG_WARN, "warehouse busy; the batch is retried", NULL);
    fail = HL_PROC_RETRY;
  } else if (rc < 0) {
    bool storage = hl_wh_is_fatal(rc);
    hl_series_inc(hl_metric_at(lw->m_commits, storage ? "storage" : "error"));
    snprintf(lw->storage_reason, sizeof lw->storage_reason, "warehouse %s: %s",
             storage ? "storage error" : "error", hl_wh_strerror(rc));
    atomic_store(&lw->storage_failed, true);
    hl_log_kv(HL_LOG_ERROR, "warehouse commit failed; stopping without committing the batch",
              "error", hl_wh_strerror(rc), NULL);
    fail = HL_PROC_FATAL;
  }
  if (fail != HL_PROC_OK) {
    for (size_t i = 0; i < nrows; i++)
      results[lw->rowmsg[i]] = fail;
    for (size_t i = 0; i < nev; i++)
      results[lw->evmsg[i]] = fail;
    return rc;
  }
  hl_series_inc(hl_metric_at(lw->m_commits, "ok"));
  hl_series_observe(lw->s_commit_seconds, mono_s() - t0);
  hl_series_observe(lw->s_batch_rows, (double)nrows);
  hl_series_add(hl_metric_at(lw->m_events, "folded"), (double)res.events);
  hl_series_add(hl_metric_at(lw->m_events, "skipped"), (double)res.events_skipped);
  if (res.events_skipped)
    hl_log_kv(HL_LOG_WARN, "job-status events skipped by the warehouse (not valid events)", NULL);
  for (size_t i = 0; i < nev; i++)
    results[lw->evmsg[i]] = HL_PROC_OK;
  lw->nobjs = 0;
  static const char *const names[] = {"pending", "applied", "stale", "raw_only", "duplicate",
                                      "rejected"};
  for (size_t i = 0; i < nrows; i++) {
    size_t m = lw->rowmsg[i];
    const char *code = NULL, *detail = NULL;
    hl_wh_row_status s = hl_wh_batch_status(lw->b, i, &code, &detail);
    char type[64] = "";
    const char *k = msgs[m].key, *s1 = k ? memchr(k, '/', msgs[m].key_len) : NULL;
    const char *s2 = s1 ? memchr(s1 + 1, '/', msgs[m].key_len - (size_t)(s1 + 1 - k)) : NULL;
    if (s2)
      snprintf(type, sizeof type, "%.*s", (int)(s2 - s1 - 1), s1 + 1);
    hl_series_inc(hl_metric_at(lw->m_rows, type_label(type), names[s]));
    objagg *a = obj_note(lw, &msgs[m], m);
    if (s == HL_WH_ROW_REJECTED) {
      results[m] = hl_worker_reject(w, &msgs[m], code ? code : "rejected",
                                    detail ? detail : "the warehouse refused the row");
      if (a)
        a->rejected++;
    } else {
      results[m] = HL_PROC_OK;
      if (a && s != HL_WH_ROW_DUPLICATE)
        a->loaded++;
    }
  }
  char now[64];
  now_rfc3339(now, sizeof now);
  size_t fallback = nrows ? lw->rowmsg[nrows - 1] : lw->evmsg[nev - 1];
  publish_committed(lw, w, msgs, results, &res, fallback, now);
  publish_load_events(lw, w, msgs, results, res.batch_id, now);
  return 0;
}

static void process_batch(void *ud, hl_worker *w, hl_kafka_msg *msgs, size_t n,
                          hl_proc_result *results) {
  hl_loader_worker *lw = ud;
  lw->w = w;
  if (grow(lw, n) < 0) {
    for (size_t i = 0; i < n; i++)
      results[i] = HL_PROC_RETRY;
    return;
  }
  hl_wh_batch_reset(lw->b);
  size_t nrows = 0, nev = 0;
  bool folding = *lw->status_topic != 0;
  for (size_t i = 0; i < n; i++) {
    hl_kafka_msg *msg = &msgs[i];
    results[i] = HL_PROC_RETRY;
    if (folding && !strcmp(msg->topic, lw->status_topic)) {
      bool bad;
      char *norm;
      if (classify_event(msg, &bad, &norm) == K_DONE) {
        hl_series_inc(hl_metric_at(lw->m_events, bad ? "invalid" : "own"));
        results[i] = bad ? hl_worker_reject(w, msg, "invalid-event", "not a JSON object")
                         : HL_PROC_OK;
        continue;
      }
      const char *ev = norm ? norm : msg->value;
      size_t evlen = norm ? strlen(norm) : msg->len;
      int r = hl_wh_batch_add_event(lw->b, ev, evlen);
      if (r == HL_ELIMIT) {
        if (commit(lw, w, msgs, nrows, nev, results) < 0) {
          free(norm);
          return; /* the rest stays RETRY (or the worker stops) */
        }
        hl_wh_batch_reset(lw->b);
        nrows = nev = 0;
        r = hl_wh_batch_add_event(lw->b, ev, evlen);
      }
      free(norm);
      if (r < 0) {
        results[i] = r == HL_ELIMIT ? hl_worker_reject(w, msg, "too-large", "event too large")
                                    : HL_PROC_RETRY;
        continue;
      }
      lw->evmsg[nev++] = i;
      continue;
    }
    hl_wh_row row;
    char job[256], src[FIELD_MAX], at[64], line[24];
    if (make_row(msg, &row, job, src, at, line) < 0) {
      results[i] = hl_worker_reject(w, msg, "key", "the key is not org/Type/id");
      continue;
    }
    int r = hl_wh_batch_add(lw->b, &row);
    if (r == HL_ELIMIT && (nrows || nev)) {
      if (commit(lw, w, msgs, nrows, nev, results) < 0)
        return;
      hl_wh_batch_reset(lw->b);
      nrows = nev = 0;
      r = hl_wh_batch_add(lw->b, &row);
    }
    if (r < 0) {
      results[i] = r == HL_ELIMIT ? hl_worker_reject(w, msg, "too-large",
                                                     "the resource is larger than a whole batch")
                                  : HL_PROC_RETRY;
      continue;
    }
    lw->rowmsg[nrows++] = i;
  }
  commit(lw, w, msgs, nrows, nev, results);
}

void hl_loader_worker_processor(hl_loader_worker *lw, hl_processor *proc) {
  memset(proc, 0, sizeof *proc);
  proc->stage = "load";
  proc->ud = lw;
  proc->process_batch = process_batch;
}
