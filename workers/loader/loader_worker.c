#include "loader_worker.h"

#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/time.h>
#include <time.h>

#include "hl/buf.h"
#include "hl/error.h"
#include "hl/kafka.h"
#include "hl/log.h"

/* Prefix of the event ids of the loader's own load events (already counted by the commit). */
#define OWN_EVENT_PREFIX "loader:"
#define FIELD_MAX 1024
/* Retry backoff of a busy warehouse: 50 ms doubling up to 5 s (as the worker's). */
#define BACKOFF_MIN_MS 50
#define BACKOFF_MAX_MS 5000
/* How often a thread waiting for the writer checks for a stop. */
#define WAIT_SLICE_MS 50

/* What one input of the batch is. */
enum { K_ROW, K_EVENT, K_DONE };

/* Load counts of one landed object within one transaction. */
typedef struct objagg {
  char org[128], job[256], uri[FIELD_MAX];
  size_t org_len, job_len, uri_len;
  uint64_t loaded, rejected;
  size_t carrier;
} objagg;

/* A deferred input: the worker's message (kept alive until completed) and its object. */
typedef struct lmsg {
  hl_kafka_msg m;
  long row; /* its row in the batch, -1 for a folded job-status event */
  long obj; /* its object in the batch's objs, -1 when none (an event, no job or no org) */
} lmsg;

/*
 * One warehouse transaction: filled by the worker's thread, committed by
 * the writer thread, completed (statuses, dead letters, events, offsets)
 * back in the worker's thread.
 */
typedef struct lbatch {
  hl_wh_batch *b;
  lmsg *msgs; /* deferred inputs in input order */
  hl_proc_result *res;
  size_t nmsgs, cap, nrows;
  /*
   * The objects (org, job, uri) of its rows in order of first appearance,
   * noted as rows are added (their key and headers are still in the cache
   * then); their counts are filled when the batch is completed.
   */
  objagg *objs;
  size_t nobjs, objcap, lastobj;
  /* Written by the writer while committing, read after it is done. */
  int rc;
  bool abandoned; /* a stop or a deadline cut its busy retries */
  hl_wh_result out;
  double secs;
} lbatch;

struct hl_loader_worker {
  hl_worker *w;
  hl_wh *wh; /* the writer thread's once it runs */
  char *in_topic, *status_topic, *committed_topic;
  long long retry_timeout_ms;
  lbatch lb[2];
  int fill; /* lb[fill] is being filled; the other is free or in flight */
  bool halted; /* a transaction failed for good: nothing more is handed to the writer */

  /* The writer thread and what it shares with the worker's thread (under mu). */
  pthread_t writer;
  bool writer_started;
  pthread_mutex_t mu;
  pthread_cond_t cv_work, cv_done;
  lbatch *inflight; /* handed to the writer, not yet completed */
  bool inflight_done, quit, detached, waking;
  _Atomic bool giveup; /* stop retrying a busy warehouse */

  _Atomic bool storage_failed;
  char storage_reason[256];
  hl_metric *m_rows, *m_commits, *m_events;
  hl_series *s_commit_seconds, *s_batch_rows, *s_busy, *s_busy_commits;
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

/* ---- The writer thread ------------------------------------------------------------ */

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/*
 * Commits lb in the writer thread. A busy warehouse is retried with backoff
 * until the retry timeout (then rc stays HL_WH_EBUSY) or until giveup is
 * set (a stop: lb->abandoned). Other failures are final.
 */
static void commit_batch(hl_loader_worker *lw, lbatch *lb) {
  double first = mono_s();
  long delay = BACKOFF_MIN_MS;
  lb->abandoned = false;
  for (;;) {
    double t0 = mono_s();
    lb->rc = hl_wh_batch_commit(lw->wh, lb->b, &lb->out);
    lb->secs = mono_s() - t0;
    if (lb->rc == HL_WH_EBUSY) {
      /* Metrics are thread-safe: a retrying writer shows on /metrics at once. */
      hl_series_inc(lw->s_busy_commits);
      hl_log_kv(HL_LOG_WARN, "warehouse busy; the batch is retried", NULL);
    } else if (lb->rc < 0) {
      bool storage = hl_wh_is_fatal(lb->rc);
      /* Readiness goes down at once; the worker stops when the batch is completed. */
      snprintf(lw->storage_reason, sizeof lw->storage_reason, "warehouse %s: %s",
               storage ? "storage error" : "error", hl_wh_strerror(lb->rc));
      atomic_store(&lw->storage_failed, true);
    }
    if (lb->rc != HL_WH_EBUSY || (mono_s() - first) * 1000 > (double)lw->retry_timeout_ms)
      break;
    for (long slept = 0; slept < delay && !atomic_load(&lw->giveup); slept += 10)
      sleep_ms(10);
    if (atomic_load(&lw->giveup)) {
      lb->abandoned = true;
      break;
    }
    delay = delay * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : delay * 2;
  }
  hl_wh_stats st;
  hl_wh_get_stats(lw->wh, &st);
  hl_series_set(lw->s_busy, (double)st.busy_retries);
}

static void *writer_main(void *arg) {
  hl_loader_worker *lw = arg;
  prctl(PR_SET_NAME, "hl-wh-writer"); /* its own line in top -H and /proc/<pid>/task */
  pthread_mutex_lock(&lw->mu);
  for (;;) {
    while (!lw->quit && (!lw->inflight || lw->inflight_done))
      pthread_cond_wait(&lw->cv_work, &lw->mu);
    if (lw->quit)
      break;
    lbatch *lb = lw->inflight;
    pthread_mutex_unlock(&lw->mu);
    commit_batch(lw, lb);
    pthread_mutex_lock(&lw->mu);
    lw->inflight_done = true;
    pthread_cond_broadcast(&lw->cv_done);
    /*
     * The worker's loop completes the batch on its next turn. The wake runs
     * outside the lock (it takes librdkafka's queue lock); waking keeps a
     * drain from detaching (and the worker from going away) meanwhile.
     */
    hl_worker *w = lw->detached ? NULL : lw->w;
    if (w) {
      lw->waking = true;
      pthread_mutex_unlock(&lw->mu);
      hl_worker_wake(w);
      pthread_mutex_lock(&lw->mu);
      lw->waking = false;
      pthread_cond_broadcast(&lw->cv_done);
    }
  }
  pthread_mutex_unlock(&lw->mu);
  return NULL;
}

/* ---- Life cycle ------------------------------------------------------------------- */

int hl_loader_worker_new(const hl_config *cfg, hl_metrics *reg, hl_loader_worker **out, char *err,
                         size_t errlen) {
  hl_loader_worker *lw = calloc(1, sizeof *lw);
  if (!lw)
    return -ENOMEM;
  int r = -ENOMEM;
  pthread_mutex_init(&lw->mu, NULL);
  pthread_cond_init(&lw->cv_work, NULL);
  pthread_cond_init(&lw->cv_done, NULL);
  lw->in_topic = strdup(hl_config_str(cfg, "HL_LOADER_INPUT_TOPIC"));
  lw->status_topic = strdup(hl_config_str(cfg, "HL_LOADER_STATUS_TOPIC"));
  lw->committed_topic = strdup(hl_config_str(cfg, "HL_LOADER_COMMITTED_TOPIC"));
  if (!lw->in_topic || !lw->status_topic || !lw->committed_topic)
    goto fail;
  lw->retry_timeout_ms = hl_config_int(cfg, "HL_WORKER_RETRY_TIMEOUT");
  size_t rows = (size_t)hl_config_int(cfg, "HL_WORKER_BATCH_MAX");
  size_t bytes = (size_t)hl_config_int(cfg, "HL_LOADER_BATCH_BYTES");
  for (int i = 0; i < 2; i++)
    if ((r = hl_wh_batch_new(rows, bytes, &lw->lb[i].b)) < 0)
      goto fail;
  hl_wh_opts wo;
  hl_wh_opts_from_config(cfg, &wo);
  if ((r = hl_wh_new(&wo, &lw->wh, err, errlen)) < 0)
    goto fail;
  /* Rows are extracted as they are added, in the worker's thread: the writer only binds them. */
  for (int i = 0; i < 2; i++)
    hl_wh_batch_use(lw->lb[i].b, lw->wh);
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
  lw->s_busy_commits = hl_metric_at(lw->m_commits, "busy");
  if ((r = -pthread_create(&lw->writer, NULL, writer_main, lw)) < 0) {
    if (err)
      snprintf(err, errlen, "cannot start the warehouse writer thread");
    goto fail;
  }
  lw->writer_started = true;
  *out = lw;
  return 0;
fail:
  hl_loader_worker_free(lw);
  return r;
}

hl_loader_worker *hl_loader_worker_free(hl_loader_worker *lw) {
  if (!lw)
    return NULL;
  if (lw->writer_started) {
    /* A commit in progress (given up by a drain deadline) ends first. */
    pthread_mutex_lock(&lw->mu);
    lw->quit = true;
    atomic_store(&lw->giveup, true);
    pthread_cond_broadcast(&lw->cv_work);
    pthread_mutex_unlock(&lw->mu);
    pthread_join(lw->writer, NULL);
  }
  for (int i = 0; i < 2; i++) {
    lbatch *lb = &lw->lb[i];
    /* Inputs still held (the worker never ran its drain) go back to librdkafka. */
    for (size_t j = 0; j < lb->nmsgs; j++)
      if (lb->msgs[j].m.rkm)
        rd_kafka_message_destroy(lb->msgs[j].m.rkm);
    hl_wh_batch_free(lb->b);
    free(lb->msgs);
    free(lb->res);
    free(lb->objs);
  }
  hl_wh_free(lw->wh);
  free(lw->in_topic);
  free(lw->status_topic);
  free(lw->committed_topic);
  pthread_cond_destroy(&lw->cv_work);
  pthread_cond_destroy(&lw->cv_done);
  pthread_mutex_destroy(&lw->mu);
  free(lw);
  return NULL;
}

void hl_loader_worker_attach(hl_loader_worker *lw, hl_worker *w) {
  pthread_mutex_lock(&lw->mu);
  lw->w = w;
  pthread_mutex_unlock(&lw->mu);
}

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

/* ---- Building a batch ---------------------------------------------------------------- */

/* The provenance headers of a resource, as views into the message's headers. */
typedef struct hdrs {
  const char *job, *src, *at, *line;
  size_t job_len, src_len, at_len, line_len;
} hdrs;

/* Sets *v to a header value under max bytes (an empty or longer one counts as absent). */
static void hdr_take(const hl_kafka_hview *hv, size_t max, const char **v, size_t *len) {
  bool ok = hv->val && hv->len > 0 && hv->len < max;
  *v = ok ? hv->val : NULL;
  *len = ok ? hv->len : 0;
}

/* One pass over the headers; the caps are those of the fields they end up in. */
static void read_hdrs(const hl_kafka_msg *msg, hdrs *h) {
  hl_kafka_hview v[] = {{.name = HL_HDR_JOB},
                        {.name = HL_HDR_SOURCE},
                        {.name = HL_HDR_INGESTED_AT},
                        {.name = HL_HDR_LINE}};
  hl_kafka_header_views(msg->rkm, v, sizeof v / sizeof v[0]);
  hdr_take(&v[0], 256, &h->job, &h->job_len);
  hdr_take(&v[1], FIELD_MAX, &h->src, &h->src_len);
  hdr_take(&v[2], 64, &h->at, &h->at_len);
  hdr_take(&v[3], 24, &h->line, &h->line_len);
}

/* hl-line as a number, -1 when absent or not a non-negative integer. */
static int64_t line_of(const hdrs *h) {
  if (!h->line)
    return -1;
  int64_t n = 0;
  for (size_t i = 0; i < h->line_len; i++) {
    if (h->line[i] < '0' || h->line[i] > '9' || n > (INT64_MAX - 9) / 10)
      return -1;
    n = n * 10 + (h->line[i] - '0');
  }
  return n;
}

/* Fills a warehouse row from msg (views into msg; hl_wh_batch_add copies them). */
static int make_row(const hl_kafka_msg *msg, const hdrs *h, hl_wh_row *row) {
  memset(row, 0, sizeof *row);
  if (!msg->key || hl_wh_row_set_key(row, msg->key, msg->key_len) < 0)
    return HL_EPARSE;
  row->json = msg->value ? msg->value : "";
  row->json_len = msg->value ? msg->len : 0;
  /* A length of 0 means NUL-terminated to the warehouse: absent fields are NULL. */
  row->job = h->job;
  row->job_len = h->job_len;
  row->source = h->src;
  row->source_len = h->src_len;
  row->ingested_at = h->at;
  row->ingested_at_len = h->at_len;
  row->line = line_of(h);
  row->topic = msg->topic;
  row->partition = msg->partition;
  row->offset = msg->offset;
  return 0;
}

/* Room for n more deferred inputs in lb. */
static int lb_reserve(lbatch *lb, size_t n) {
  if (lb->nmsgs + n <= lb->cap)
    return 0;
  size_t cap = lb->nmsgs + n;
  lmsg *m = realloc(lb->msgs, cap * sizeof *m);
  if (!m)
    return -ENOMEM;
  lb->msgs = m;
  hl_proc_result *r = realloc(lb->res, cap * sizeof *r);
  if (!r)
    return -ENOMEM;
  lb->res = r;
  lb->cap = cap;
  return 0;
}

static void lb_reset(lbatch *lb) {
  hl_wh_batch_reset(lb->b);
  lb->nmsgs = lb->nrows = 0;
  lb->nobjs = lb->lastobj = 0;
}

/*
 * The object (org, job, uri) of a row in lb->objs, added if new; -1
 * without a job or an org (or memory).
 */
static long obj_of(lbatch *lb, const hl_kafka_msg *msg, const hdrs *h) {
  const char *k = msg->key, *slash = k ? memchr(k, '/', msg->key_len) : NULL;
  size_t org_len = slash ? (size_t)(slash - k) : 0;
  if (!h->job || !org_len)
    return -1;
  /* As the fixed fields hold them (the org is cut to fit). */
  if (org_len >= sizeof lb->objs->org)
    org_len = sizeof lb->objs->org - 1;
  size_t src_len = h->src ? h->src_len : 0;
  /* Consecutive rows mostly come from one object: try the last match first. */
  for (size_t n = 0; n < lb->nobjs; n++) {
    size_t i = (lb->lastobj + n) % lb->nobjs;
    objagg *a = &lb->objs[i];
    if (a->uri_len == src_len && a->job_len == h->job_len && a->org_len == org_len &&
        !memcmp(a->uri, h->src ? h->src : "", src_len) && !memcmp(a->job, h->job, h->job_len) &&
        !memcmp(a->org, k, org_len)) {
      lb->lastobj = i;
      return (long)i;
    }
  }
  if (lb->nobjs == lb->objcap) {
    size_t cap = lb->objcap ? lb->objcap * 2 : 16;
    objagg *o = realloc(lb->objs, cap * sizeof *o);
    if (!o)
      return -1;
    lb->objs = o;
    lb->objcap = cap;
  }
  objagg *a = &lb->objs[lb->nobjs];
  memset(a, 0, sizeof *a);
  memcpy(a->org, k, org_len);
  a->org_len = org_len;
  memcpy(a->job, h->job, h->job_len);
  a->job_len = h->job_len;
  if (src_len)
    memcpy(a->uri, h->src, src_len);
  a->uri_len = src_len;
  lb->lastobj = lb->nobjs++;
  return (long)lb->lastobj;
}

/* Keeps msg in lb (the worker defers it): row -1 (and h NULL) for an event. */
static void lb_keep(lbatch *lb, const hl_kafka_msg *msg, long row, const hdrs *h) {
  lmsg *m = &lb->msgs[lb->nmsgs++];
  m->m = *msg;
  m->row = row;
  m->obj = row >= 0 && h ? obj_of(lb, msg, h) : -1;
  if (row >= 0)
    lb->nrows++;
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

/* ---- Completing a committed batch (the worker's thread) ------------------------------ */

static const char *type_label(const char *type) {
  return type && hl_wh_curated_table(type) ? type : "other";
}

/* Produces json on behalf of the carrier input; on failure the carrier stops the worker. */
static void emit(hl_worker *w, lbatch *lb, size_t carrier, const char *topic, const char *key,
                 hl_buf *json) {
  hl_kafka_out out = {topic, key, strlen(key), json->data, json->len, NULL};
  int r = hl_worker_produce(w, &lb->msgs[carrier].m, &out);
  if (r) {
    hl_log_kv(HL_LOG_ERROR, "event not enqueued; its input is not committed", "topic", topic,
              "error", hl_strerror(r), NULL);
    lb->res[carrier] = HL_PROC_FATAL;
  }
}

/* hl.load.committed: one event per (tenant, job) of the committed transaction. */
static void publish_committed(hl_loader_worker *lw, hl_worker *w, lbatch *lb, size_t fallback,
                              const char *now) {
  const hl_wh_result *res = &lb->out;
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
    size_t tl = strlen(c0->tenant), jl = strlen(c0->job);
    for (size_t k = 0; k < lb->nobjs; k++)
      if (lb->objs[k].org_len == tl && lb->objs[k].job_len == jl &&
          !memcmp(lb->objs[k].org, c0->tenant, tl) && !memcmp(lb->objs[k].job, c0->job, jl))
        carrier = lb->objs[k].carrier;
    char key[400];
    snprintf(key, sizeof key, "%s/%.250s", c0->tenant, c0->job);
    if (!r)
      emit(w, lb, carrier, lw->committed_topic, key, &ev);
    i = j;
  }
  hl_buf_free(&ev);
}

/* Load-stage job-status events: one per object with something new. */
static void publish_load_events(hl_loader_worker *lw, hl_worker *w, lbatch *lb, const char *now) {
  if (!*lw->status_topic)
    return;
  hl_buf ev;
  hl_buf_init(&ev, 64 * 1024);
  for (size_t i = 0; i < lb->nobjs; i++) {
    objagg *a = &lb->objs[i];
    if (a->loaded == 0 && a->rejected == 0)
      continue; /* a replay: nothing new */
    hl_buf_reset(&ev);
    int r = hl_buf_puts(&ev, "{\"job\":\"");
    r = r ? r : hl_buf_json_escape(&ev, a->job, a->job_len);
    r = r ? r : hl_buf_puts(&ev, "\",\"org\":\"");
    r = r ? r : hl_buf_json_escape(&ev, a->org, a->org_len);
    r = r ? r : hl_buf_puts(&ev, "\",\"uri\":\"");
    r = r ? r : hl_buf_json_escape(&ev, a->uri, a->uri_len);
    r = r ? r : hl_buf_printf(&ev,
                              "\",\"stage\":\"load\",\"state\":\"loaded\",\"emitted\":%llu,"
                              "\"rejected\":%llu,\"time\":\"%s\",\"event_id\":\"" OWN_EVENT_PREFIX
                              "%lld:%zu\"}",
                              (unsigned long long)a->loaded, (unsigned long long)a->rejected, now,
                              (long long)lb->out.batch_id, i);
    char key[400];
    snprintf(key, sizeof key, "%.127s/%.250s", a->org, a->job);
    if (!r)
      emit(w, lb, a->carrier, lw->status_topic, key, &ev);
  }
  hl_buf_free(&ev);
}

/* Completes every input of lb with one result. */
static void complete_all(hl_worker *w, lbatch *lb, hl_proc_result r) {
  for (size_t i = 0; i < lb->nmsgs; i++)
    if (lb->msgs[i].m.rkm)
      hl_worker_complete(w, &lb->msgs[i].m, r);
  lb_reset(lb);
}

/* Counts the rows of a committed batch by type and status (from its groups). */
static void count_rows(hl_loader_worker *lw, const hl_wh_result *res) {
  for (size_t i = 0; i < res->ncounts; i++) {
    const hl_wh_count *c = &res->counts[i];
    const char *type = type_label(c->type);
    const struct {
      const char *name;
      uint64_t n;
    } by[] = {{"applied", c->applied},     {"stale", c->stale},       {"raw_only", c->raw_only},
              {"duplicate", c->duplicate}, {"rejected", c->rejected}};
    for (size_t k = 0; k < sizeof by / sizeof by[0]; k++)
      if (by[k].n)
        hl_series_add(hl_metric_at(lw->m_rows, type, by[k].name), (double)by[k].n);
  }
}

/*
 * Finishes a batch the writer is done with, in the worker's thread: the
 * commit's metrics, then (on success) dead letters for rejected rows,
 * hl.load.committed and load events, and the completion of every input, so
 * that its offset is stored once those events are acknowledged.
 */
static void complete_batch(hl_loader_worker *lw, hl_worker *w, lbatch *lb) {
  if (lb->nmsgs == 0) { /* its inputs were given up by a deadline */
    lb_reset(lb);
    return;
  }
  if (lb->abandoned) {
    complete_all(w, lb, HL_PROC_RETRY);
    return;
  }
  if (lb->rc < 0) {
    if (lb->rc == HL_WH_EBUSY) {
      hl_log_kv(HL_LOG_ERROR, "warehouse still busy after the retry timeout; stopping", NULL);
    } else {
      bool storage = hl_wh_is_fatal(lb->rc);
      hl_series_inc(hl_metric_at(lw->m_commits, storage ? "storage" : "error"));
      hl_log_kv(HL_LOG_ERROR, "warehouse commit failed; stopping without committing the batch",
                "error", hl_wh_strerror(lb->rc), NULL);
    }
    lw->halted = true;
    complete_all(w, lb, HL_PROC_FATAL);
    return;
  }
  const hl_wh_result *res = &lb->out;
  hl_series_inc(hl_metric_at(lw->m_commits, "ok"));
  hl_series_observe(lw->s_commit_seconds, lb->secs);
  hl_series_observe(lw->s_batch_rows, (double)lb->nrows);
  hl_series_add(hl_metric_at(lw->m_events, "folded"), (double)res->events);
  hl_series_add(hl_metric_at(lw->m_events, "skipped"), (double)res->events_skipped);
  if (res->events_skipped)
    hl_log_kv(HL_LOG_WARN, "job-status events skipped by the warehouse (not valid events)", NULL);
  count_rows(lw, res);
  for (size_t i = 0; i < lb->nmsgs; i++) {
    lmsg *m = &lb->msgs[i];
    lb->res[i] = HL_PROC_OK;
    if (m->row < 0)
      continue;
    const char *code = NULL, *detail = NULL;
    hl_wh_row_status s = hl_wh_batch_status(lb->b, (size_t)m->row, &code, &detail);
    /* The carrier of an object's events: its last input. */
    objagg *a = m->obj >= 0 ? &lb->objs[m->obj] : NULL;
    if (a)
      a->carrier = i;
    if (s == HL_WH_ROW_REJECTED) {
      lb->res[i] = hl_worker_reject(w, &m->m, code ? code : "rejected",
                                    detail ? detail : "the warehouse refused the row");
      if (a)
        a->rejected++;
    } else if (a && s != HL_WH_ROW_DUPLICATE) {
      a->loaded++;
    }
  }
  char now[64];
  now_rfc3339(now, sizeof now);
  publish_committed(lw, w, lb, lb->nmsgs - 1, now);
  publish_load_events(lw, w, lb, now);
  for (size_t i = 0; i < lb->nmsgs; i++) {
    hl_proc_result r = lb->res[i];
    /* A dead letter that could not be enqueued: the input is not committed. */
    hl_worker_complete(w, &lb->msgs[i].m, r == HL_PROC_RETRY ? HL_PROC_FATAL : r);
  }
  lb_reset(lb);
}

/*
 * Waits until the writer is done with the batch in flight (until deadline_s
 * on the monotonic clock, <= 0: no limit). False when the deadline passed
 * first; else *done is that batch (NULL: none in flight), still in flight.
 */
static bool wait_done(hl_loader_worker *lw, hl_worker *w, double deadline_s, lbatch **done) {
  pthread_mutex_lock(&lw->mu);
  while (lw->inflight && !lw->inflight_done) {
    if (deadline_s > 0 && mono_s() >= deadline_s) {
      pthread_mutex_unlock(&lw->mu);
      return false;
    }
    /* A stop cuts the retries of a busy warehouse, as the worker's backoff would. */
    if (hl_worker_stopping(w))
      atomic_store(&lw->giveup, true);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += WAIT_SLICE_MS * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
      ts.tv_sec++;
      ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&lw->cv_done, &lw->mu, &ts);
  }
  *done = lw->inflight;
  pthread_mutex_unlock(&lw->mu);
  return true;
}

/*
 * Makes next (NULL: none) the batch in flight, waking the writer for it;
 * the batch it replaces must be done.
 */
static void hand_over(hl_loader_worker *lw, lbatch *next) {
  pthread_mutex_lock(&lw->mu);
  lw->inflight = next;
  lw->inflight_done = false;
  if (next)
    pthread_cond_signal(&lw->cv_work);
  pthread_mutex_unlock(&lw->mu);
}

/* Waits for the batch in flight as wait_done and completes it. */
static bool wait_inflight(hl_loader_worker *lw, hl_worker *w, double deadline_s) {
  lbatch *done;
  if (!wait_done(lw, w, deadline_s, &done))
    return false;
  hand_over(lw, NULL);
  if (done)
    complete_batch(lw, w, done);
  return true;
}

/*
 * Hands the filling batch to the writer once the one in flight is done:
 * one transaction commits while the next one fills. When the one in flight
 * committed, the filling batch is handed over first and the committed one
 * completed after (its events, dead letters and offsets), so the writer
 * does not wait for that; transactions still commit one at a time, in
 * input order, and none is handed over after a failed one. False when the
 * deadline passed (the batch stays filling).
 */
static bool submit(hl_loader_worker *lw, hl_worker *w, double deadline_s) {
  lbatch *f = &lw->lb[lw->fill];
  if (f->nmsgs == 0)
    return true;
  lbatch *done;
  if (!wait_done(lw, w, deadline_s, &done))
    return false;
  bool go = !lw->halted && (!done || (done->rc == 0 && !done->abandoned));
  hand_over(lw, go ? f : NULL);
  if (done)
    complete_batch(lw, w, done);
  if (!go)
    return true; /* stopping after a failed transaction: nothing more is written */
  lw->fill ^= 1;
  lb_reset(&lw->lb[lw->fill]);
  return true;
}

/* A full batch is handed over and the next one starts; false if the inputs must be retried. */
static bool rollover(hl_loader_worker *lw, hl_worker *w, size_t left) {
  return submit(lw, w, 0) && !lw->halted && lb_reserve(&lw->lb[lw->fill], left) == 0;
}

static void process_batch(void *ud, hl_worker *w, hl_kafka_msg *msgs, size_t n,
                          hl_proc_result *results) {
  hl_loader_worker *lw = ud;
  if (lw->w != w)
    hl_loader_worker_attach(lw, w);
  lbatch *f = &lw->lb[lw->fill];
  if (lw->halted || lb_reserve(f, n) < 0) {
    for (size_t i = 0; i < n; i++)
      results[i] = lw->halted ? HL_PROC_FATAL : HL_PROC_RETRY;
    return;
  }
  bool folding = *lw->status_topic != 0;
  size_t i = 0;
  for (; i < n; i++) {
    hl_kafka_msg *msg = &msgs[i];
    f = &lw->lb[lw->fill];
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
      int r = hl_wh_batch_add_event(f->b, ev, evlen);
      if (r == HL_ELIMIT && f->nmsgs) {
        if (!rollover(lw, w, n - i)) {
          free(norm);
          break;
        }
        f = &lw->lb[lw->fill];
        r = hl_wh_batch_add_event(f->b, ev, evlen);
      }
      free(norm);
      if (r < 0) {
        results[i] = r == HL_ELIMIT ? hl_worker_reject(w, msg, "too-large", "event too large")
                                    : HL_PROC_RETRY;
        continue;
      }
      lb_keep(f, msg, -1, NULL);
      results[i] = HL_PROC_DEFER;
      continue;
    }
    hl_wh_row row;
    hdrs h;
    read_hdrs(msg, &h);
    if (make_row(msg, &h, &row) < 0) {
      results[i] = hl_worker_reject(w, msg, "key", "the key is not org/Type/id");
      continue;
    }
    int r = hl_wh_batch_add(f->b, &row);
    if (r == HL_ELIMIT && f->nmsgs) {
      if (!rollover(lw, w, n - i))
        break;
      f = &lw->lb[lw->fill];
      r = hl_wh_batch_add(f->b, &row);
    }
    if (r < 0) {
      results[i] = r == HL_ELIMIT ? hl_worker_reject(w, msg, "too-large",
                                                     "the resource is larger than a whole batch")
                                  : HL_PROC_RETRY;
      continue;
    }
    lb_keep(f, msg, r, &h);
    results[i] = HL_PROC_DEFER;
  }
  /* Inputs not reached (a failed rollover) stay HL_PROC_RETRY, or stop the worker. */
  for (; i < n; i++)
    results[i] = lw->halted ? HL_PROC_FATAL : HL_PROC_RETRY;
  submit(lw, w, 0);
}

/* The worker's loop: completes the batch the writer finished. */
static void poll_batches(void *ud, hl_worker *w) {
  hl_loader_worker *lw = ud;
  pthread_mutex_lock(&lw->mu);
  bool done = lw->inflight && lw->inflight_done;
  pthread_mutex_unlock(&lw->mu);
  if (done)
    wait_inflight(lw, w, 0);
}

/*
 * Drain or revocation: commits what is filling (unless aborting after a
 * failure) and waits for the writer, until timeout_ms; what is left then is
 * given up (completed HL_PROC_RETRY: not committed).
 */
static void flush_batches(void *ud, hl_worker *w, long long timeout_ms, bool abort) {
  hl_loader_worker *lw = ud;
  double deadline = mono_s() + (double)(timeout_ms > 0 ? timeout_ms : 1) / 1000.0;
  bool stopping = hl_worker_stopping(w);
  if (stopping)
    atomic_store(&lw->giveup, true); /* as the worker's backoff: a stop ends busy retries */
  bool ok = true;
  if (!abort && !lw->halted)
    ok = submit(lw, w, deadline);
  if (ok)
    ok = wait_inflight(lw, w, deadline);
  if (!ok) {
    /* The writer keeps the batch in flight until its commit ends; its inputs are given up now. */
    pthread_mutex_lock(&lw->mu);
    lbatch *busy = lw->inflight;
    pthread_mutex_unlock(&lw->mu);
    if (busy) {
      for (size_t i = 0; i < busy->nmsgs; i++)
        hl_worker_complete(w, &busy->msgs[i].m, HL_PROC_RETRY);
      busy->nmsgs = 0;
    }
    hl_log_kv(HL_LOG_WARN, "warehouse commit still running at the deadline; its inputs are not "
                           "committed", NULL);
  }
  complete_all(w, &lw->lb[lw->fill], HL_PROC_RETRY);
  if (stopping) {
    /* The worker goes away after its drain: the writer must not wake it any more. */
    pthread_mutex_lock(&lw->mu);
    lw->detached = true;
    while (lw->waking)
      pthread_cond_wait(&lw->cv_done, &lw->mu);
    pthread_mutex_unlock(&lw->mu);
  }
}

void hl_loader_worker_processor(hl_loader_worker *lw, hl_processor *proc) {
  memset(proc, 0, sizeof *proc);
  proc->stage = "load";
  proc->ud = lw;
  proc->process_batch = process_batch;
  proc->poll = poll_batches;
  proc->flush = flush_batches;
}
