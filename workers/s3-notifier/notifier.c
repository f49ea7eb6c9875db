#include "notifier.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dirsrc.h"
#include "filter.h"
#include "hl/error.h"
#include "hl/landing.h"
#include "hl/log.h"
#include "s3poll.h"
#include "sqs.h"
#include "state.h"

#define TICK_MS 10
#define CONNECT_RETRY_MS 1000
#define RETRY_MS 1000
#define ASYNC_MAX 10000

/* A candidate waiting for room; one allocation holds every string. */
typedef struct qitem {
  hl_announce_item it;
  char *mem;
} qitem;

typedef struct aitem {
  hl_notifier_object o;
  char *mem;
} aitem;

struct hl_notifier {
  uv_loop_t *loop;
  hl_notifier_filter *filter;
  hl_nstate *st;
  hl_announcer *ann;
  hl_dirsrc *dir;
  hl_s3poll *poll;
  hl_sqs *sqs;
  hl_nstate *sqs_st;     /* a second connection to the state file, for the SQS thread only */
  char *default_org;
  char *dir_path, *dir_bucket;
  uint64_t stable_ms, rescan_ms;
  size_t max_watches;
  int batch_max;
  size_t max_queue;
  qitem *q;              /* ring buffer of max_queue slots */
  size_t qhead, qlen;
  hl_announce_item *batch;
  uv_timer_t tick;
  uv_async_t async;
  bool started, stopping, recovered;
  uint64_t next_connect_ms;
  uint64_t retry_at_ms;  /* after a failed recovery or batch, wait until then */
  _Atomic bool ready, failed;
  _Atomic int not_ready_why; /* 0 ok, 1 connecting, 2 recovering, 3 fatal, 4 stopping */
  pthread_mutex_t amu;   /* guards ain */
  aitem *ain;
  size_t nain;
  hl_notifier_stats stats;
  /* metrics */
  hl_metric *m_seen, *m_skipped, *m_pending, *m_recovered;
  hl_series *s_announced, *s_latency, *s_queued, *s_inflight, *s_dir_waiting, *s_dir_watches;
};

static int64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void on_announced(void *ud, int64_t latency_ms, bool recovered) {
  hl_notifier *n = ud;
  n->stats.announced++;
  hl_series_inc(n->s_announced);
  if (latency_ms >= 0)
    hl_series_observe(n->s_latency, (double)latency_ms / 1000.0);
  if (recovered)
    hl_series_inc(hl_metric_at(n->m_recovered, "confirmed"));
}

static void on_reproduced(void *ud, bool unverifiable) {
  hl_notifier *n = ud;
  hl_series_inc(hl_metric_at(n->m_recovered, unverifiable ? "unverifiable" : "produced_again"));
}

static void metrics_init(hl_notifier *n, hl_metrics *reg) {
  if (!reg)
    return;
  n->m_seen = hl_metrics_counter(reg, "hl_notifier_objects_seen_total",
                                 "Candidate objects reported by a source.", "source");
  n->m_skipped = hl_metrics_counter(reg, "hl_notifier_objects_skipped_total",
                                    "Candidates not announced, by reason.", "reason");
  hl_metric *ann = hl_metrics_counter(reg, "hl_notifier_objects_announced_total",
                                      "Objects acknowledged on hl.landing.objects.", NULL);
  n->s_announced = hl_metric_at(ann);
  n->m_pending = hl_metrics_gauge(reg, "hl_notifier_pending",
                                  "Announcements not yet acknowledged: queued or in flight.", "stage");
  n->s_queued = hl_metric_at(n->m_pending, "queued");
  n->s_inflight = hl_metric_at(n->m_pending, "inflight");
  hl_metric *lat = hl_metrics_histogram(
      reg, "hl_notifier_announce_latency_seconds",
      "From an object's discovery by a source to the broker's acknowledgement.", NULL,
      hl_metrics_latency_buckets, hl_metrics_latency_nbuckets);
  n->s_latency = hl_metric_at(lat);
  n->m_recovered = hl_metrics_counter(reg, "hl_notifier_recovered_total",
                                      "Pending rows resolved at recovery, by outcome.", "outcome");
  hl_metric *w = hl_metrics_gauge(reg, "hl_notifier_dir_files_waiting",
                                  "Landing files not yet stable (or waiting for room).", NULL);
  n->s_dir_waiting = hl_metric_at(w);
  w = hl_metrics_gauge(reg, "hl_notifier_dir_watches", "Directories watched for events.", NULL);
  n->s_dir_watches = hl_metric_at(w);
}

/* The s3-poll hand-over: anything but success means "offer again later". */
static int poll_offer(void *ud, const hl_notifier_object *objs, size_t count) {
  return hl_notifier_offer_async(ud, objs, count) == 0 ? 0 : -EAGAIN;
}

/*
 * The SQS source's question, on its thread: is the core done with this
 * object for good? Filtered-out keys are; otherwise its version must be in
 * the state file as announced (acknowledged by the broker) or rejected. A
 * pending row is not enough: the message is deleted only after the
 * acknowledgement, and a redelivery meanwhile finds the version known.
 */
static int sqs_settled(void *ud, const hl_notifier_object *o) {
  hl_notifier *n = ud;
  if (!hl_notifier_filter_match(n->filter, o->key))
    return 1;
  hl_nstate_status status;
  int r = hl_nstate_lookup(n->sqs_st, o->bucket, o->key, o->etag, &status);
  if (r == HL_ENOTFOUND)
    return 0;
  if (r < 0)
    return r;
  return status == HL_NSTATE_PENDING ? 0 : 1;
}

int hl_notifier_new(uv_loop_t *loop, const hl_notifier_opts *o, hl_notifier **out, char *err,
                    size_t errlen) {
  if (!o->state_path || !*o->state_path) {
    snprintf(err, errlen, "a state file is required");
    return HL_ECONFIG;
  }
  hl_notifier *n = calloc(1, sizeof *n);
  if (!n)
    return -ENOMEM;
  pthread_mutex_init(&n->amu, NULL);
  n->loop = loop;
  n->batch_max = o->batch_max > 0 ? o->batch_max : 500;
  n->max_queue = o->max_queue ? o->max_queue : 100000;
  n->stable_ms = o->stable_ms;
  n->rescan_ms = o->rescan_ms;
  n->max_watches = o->max_watches;
  atomic_store(&n->not_ready_why, 1);
  int r = -ENOMEM;
  n->default_org = strdup(o->default_org ? o->default_org : "");
  n->dir_path = strdup(o->dir ? o->dir : "");
  n->dir_bucket = strdup(o->dir_bucket ? o->dir_bucket : "landing");
  n->q = calloc(n->max_queue, sizeof *n->q);
  n->batch = calloc((size_t)n->batch_max, sizeof *n->batch);
  if (!n->default_org || !n->dir_path || !n->dir_bucket || !n->q || !n->batch)
    goto fail;
  if ((r = hl_notifier_filter_new(o->prefix, o->suffixes, o->temp_suffixes, &n->filter)) < 0) {
    snprintf(err, errlen, "invalid prefix, suffix or temporary-suffix list");
    goto fail;
  }
  if ((r = hl_nstate_open(o->state_path, &n->st)) < 0) {
    snprintf(err, errlen, "cannot open the state file %s", o->state_path);
    goto fail;
  }
  metrics_init(n, o->metrics);
  if (o->s3_bucket && *o->s3_bucket) {
    hl_s3poll_opts po = {.s3 = o->s3, .bucket = o->s3_bucket, .prefix = o->prefix,
                         .interval_ms = o->poll_ms, .offer = poll_offer, .ud = n};
    if (!o->s3 || (r = hl_s3poll_new(&po, &n->poll)) < 0) {
      snprintf(err, errlen, "s3-poll: invalid S3 settings");
      r = o->s3 ? r : HL_ECONFIG;
      goto fail;
    }
  }
  if (o->sqs_queue_url && *o->sqs_queue_url) {
    hl_sqs_opts so = {.aws = o->s3, .queue_url = o->sqs_queue_url, .endpoint = o->sqs_endpoint,
                      .wait_s = o->sqs_wait_s, .max_messages = o->sqs_max_messages,
                      .visibility_s = o->sqs_visibility_s, .offer = poll_offer,
                      .settled = sqs_settled, .ud = n, .metrics = o->metrics};
    if ((r = hl_nstate_open(o->state_path, &n->sqs_st)) < 0) {
      snprintf(err, errlen, "cannot open the state file %s", o->state_path);
      goto fail;
    }
    if (!o->s3 || (r = hl_sqs_new(&so, &n->sqs)) < 0) {
      snprintf(err, errlen, "SQS: invalid settings (queue URL, endpoint or credentials)");
      r = o->s3 && r != -ENOMEM ? HL_ECONFIG : r;
      goto fail;
    }
  }
  hl_announcer_hooks hooks = {.ud = n, .announced = on_announced, .reproduced = on_reproduced};
  if ((r = hl_announcer_new(&o->kafka, n->st, &hooks, &n->ann, err, errlen)) < 0)
    goto fail;
  *out = n;
  return 0;
fail:
  hl_notifier_free(n);
  return r;
}

static void qitem_clear(qitem *q) {
  free(q->mem);
  memset(q, 0, sizeof *q);
}

static void aitems_free(aitem *v, size_t n) {
  for (size_t i = 0; i < n; i++)
    free(v[i].mem);
  free(v);
}

hl_notifier *hl_notifier_free(hl_notifier *n) {
  if (!n)
    return NULL;
  n->poll = hl_s3poll_free(n->poll);
  n->sqs = hl_sqs_free(n->sqs);
  n->sqs_st = hl_nstate_close(n->sqs_st);
  n->ann = hl_announcer_free(n->ann);
  n->st = hl_nstate_close(n->st);
  n->filter = hl_notifier_filter_free(n->filter);
  if (n->q)
    for (size_t i = 0; i < n->qlen; i++)
      qitem_clear(&n->q[(n->qhead + i) % n->max_queue]);
  aitems_free(n->ain, n->nain);
  free(n->q);
  free(n->batch);
  free(n->default_org);
  free(n->dir_path);
  free(n->dir_bucket);
  pthread_mutex_destroy(&n->amu);
  free(n);
  return NULL;
}

static void skip(hl_notifier *n, const char *reason) {
  n->stats.skipped++;
  hl_series_inc(hl_metric_at(n->m_skipped, reason));
}

/* Packs the strings of an item into one allocation. */
static int qitem_fill(qitem *q, const char *const src[9]) {
  size_t len[9], total = 0;
  for (int i = 0; i < 9; i++)
    total += (len[i] = strlen(src[i])) + 1;
  char *mem = malloc(total), *p = mem;
  if (!mem)
    return -ENOMEM;
  const char *dst[9];
  for (int i = 0; i < 9; i++) {
    memcpy(p, src[i], len[i] + 1);
    dst[i] = p;
    p += len[i] + 1;
  }
  q->mem = mem;
  q->it = (hl_announce_item){.bucket = dst[0], .key = dst[1], .etag = dst[2], .event_id = dst[3],
                             .org = dst[4], .job = dst[5], .uri = dst[6], .msg_key = dst[7],
                             .value = dst[8]};
  return 0;
}

int hl_notifier_offer(void *ud, const hl_notifier_object *o) {
  hl_notifier *n = ud;
  if (n->qlen == n->max_queue)
    return -EAGAIN;
  n->stats.seen++;
  hl_series_inc(hl_metric_at(n->m_seen, o->source ? o->source : "unknown"));
  if (!hl_notifier_filter_match(n->filter, o->key)) {
    skip(n, "filtered");
    return 0;
  }
  hl_nstate_status status;
  int r = hl_nstate_lookup(n->st, o->bucket, o->key, o->etag, &status);
  if (r == 0) {
    skip(n, "known");
    return 0;
  }
  if (r != HL_ENOTFOUND)
    return -EAGAIN; /* the state file failed: keep the object for a later try */
  char org[HL_NOTIFIER_ID_MAX + 1], job[HL_NOTIFIER_ID_MAX + 1];
  r = hl_notifier_org(o->key, n->default_org, org, sizeof org);
  const char *reject = r == HL_EPARSE ? "invalid_org" : r < 0 ? "no_org" : NULL;
  if (!reject && hl_notifier_job(o->bucket, o->key, o->etag, job, sizeof job) < 0)
    reject = "invalid_job";
  if (reject) {
    /* Recorded so that a rescan does not count (and log) the same version again. */
    if (hl_nstate_insert_rejected(n->st, o->bucket, o->key, o->etag, reject) == 0)
      hl_log_kv(HL_LOG_WARN, "object not announced", "reason", reject, "bucket", o->bucket, "key",
                o->key, NULL);
    skip(n, reject);
    return 0;
  }
  char event_id[HL_NOTIFIER_EVENT_ID_LEN], when[40];
  hl_notifier_event_id(o->bucket, o->key, o->etag, event_id);
  struct timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  int64_t t = o->mtime_ms > 0 ? o->mtime_ms : (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
  hl_notifier_time_rfc3339(t, when, sizeof when);
  hl_landing_event ev = {.uri = (char *)o->uri, .bucket = (char *)o->bucket, .key = (char *)o->key,
                         .size = o->size, .etag = (char *)o->etag, .event_time = when, .org = org,
                         .job = job};
  hl_buf value, msg_key;
  hl_buf_init(&value, 64 * 1024);
  hl_buf_init(&msg_key, 4096);
  r = hl_landing_event_write(&ev, &value);
  if (r == 0)
    r = hl_buf_printf(&msg_key, "%s/%s", o->bucket, o->key);
  qitem *q = &n->q[(n->qhead + n->qlen) % n->max_queue];
  if (r == 0) {
    const char *src[9] = {o->bucket, o->key, o->etag, event_id, org, job, o->uri, msg_key.data,
                          value.data};
    r = qitem_fill(q, src);
  }
  hl_buf_free(&value);
  hl_buf_free(&msg_key);
  if (r < 0) {
    skip(n, "too_large");
    return 0;
  }
  q->it.t0_ms = mono_ms();
  n->qlen++;
  n->stats.queued++;
  return 0;
}

int hl_notifier_offer_async(hl_notifier *n, const hl_notifier_object *objs, size_t count) {
  pthread_mutex_lock(&n->amu);
  int r = 0;
  if (n->stopping || n->nain + count > ASYNC_MAX) {
    r = -EAGAIN;
    goto done;
  }
  aitem *v = realloc(n->ain, (n->nain + count) * sizeof *v);
  if (!v) {
    r = -ENOMEM;
    goto done;
  }
  n->ain = v;
  for (size_t i = 0; i < count; i++) {
    const hl_notifier_object *o = &objs[i];
    const char *src[5] = {o->source ? o->source : "unknown", o->bucket, o->key, o->uri, o->etag};
    size_t len[5], total = 0;
    for (int k = 0; k < 5; k++)
      total += (len[k] = strlen(src[k])) + 1;
    char *mem = malloc(total), *p = mem;
    if (!mem) {
      r = -ENOMEM;
      goto done;
    }
    const char *dst[5];
    for (int k = 0; k < 5; k++) {
      memcpy(p, src[k], len[k] + 1);
      dst[k] = p;
      p += len[k] + 1;
    }
    n->ain[n->nain++] = (aitem){.o = {.source = dst[0], .bucket = dst[1], .key = dst[2],
                                      .uri = dst[3], .size = o->size, .etag = dst[4],
                                      .mtime_ms = o->mtime_ms},
                                .mem = mem};
  }
done:
  pthread_mutex_unlock(&n->amu);
  if (r == 0 && n->started)
    uv_async_send(&n->async);
  return r;
}

/* Moves what other threads handed over into the queue. */
static void drain_async(hl_notifier *n) {
  pthread_mutex_lock(&n->amu);
  size_t i = 0;
  for (; i < n->nain; i++)
    if (hl_notifier_offer(n, &n->ain[i].o) == -EAGAIN)
      break;
    else
      free(n->ain[i].mem);
  if (i > 0 && i < n->nain)
    memmove(n->ain, n->ain + i, (n->nain - i) * sizeof *n->ain);
  n->nain -= i;
  pthread_mutex_unlock(&n->amu);
}

static void set_ready(hl_notifier *n) {
  int why = 0;
  if (hl_announcer_fatal(n->ann, NULL, 0))
    why = 3;
  else if (n->stopping)
    why = 4;
  else if (!hl_announcer_connected(n->ann))
    why = 1;
  else if (!n->recovered)
    why = 2;
  atomic_store(&n->not_ready_why, why);
  atomic_store(&n->ready, why == 0);
}

void hl_notifier_pump(hl_notifier *n) {
  hl_announcer_poll(n->ann, 0);
  drain_async(n);
  char reason[256];
  if (hl_announcer_fatal(n->ann, reason, sizeof reason)) {
    if (!atomic_exchange(&n->failed, true))
      hl_log_kv(HL_LOG_ERROR, "kafka producer failed; stopping", "error", reason, NULL);
    set_ready(n);
    return;
  }
  if (!hl_announcer_connected(n->ann)) {
    uint64_t now = (uint64_t)mono_ms();
    if (now < n->next_connect_ms)
      goto out;
    n->next_connect_ms = now + CONNECT_RETRY_MS;
    int r = hl_announcer_connect(n->ann);
    if (r < 0) {
      hl_log_kv(HL_LOG_WARN, "cannot reach the topic yet", "error", hl_strerror(r), NULL);
      goto out;
    }
  }
  if ((uint64_t)mono_ms() < n->retry_at_ms)
    goto out;
  if ((!n->recovered || hl_announcer_need_recover(n->ann)) && hl_announcer_inflight(n->ann) == 0) {
    int r = hl_announcer_recover(n->ann);
    if (r < 0) {
      hl_log_kv(HL_LOG_WARN, "recovery of pending announcements failed; will retry", "error",
                hl_strerror(r), NULL);
      n->retry_at_ms = (uint64_t)mono_ms() + RETRY_MS;
      goto out;
    }
    n->recovered = true;
  }
  if (!n->recovered || hl_announcer_need_recover(n->ann))
    goto out;
  while (n->qlen > 0) {
    int room = hl_announcer_room(n->ann);
    size_t k = (size_t)(room < n->batch_max ? room : n->batch_max);
    if (k > n->qlen)
      k = n->qlen;
    if (k == 0)
      break;
    for (size_t i = 0; i < k; i++)
      n->batch[i] = n->q[(n->qhead + i) % n->max_queue].it;
    int r = hl_announcer_submit(n->ann, n->batch, k);
    if (r < 0) {
      hl_log_kv(HL_LOG_WARN, "announcing a batch failed; will retry", "error", hl_strerror(r), NULL);
      n->retry_at_ms = (uint64_t)mono_ms() + RETRY_MS;
      break;
    }
    if ((size_t)r < k)
      for (size_t i = r; i < k; i++)
        skip(n, "known");
    for (size_t i = 0; i < k; i++)
      qitem_clear(&n->q[(n->qhead + i) % n->max_queue]);
    n->qhead = (n->qhead + k) % n->max_queue;
    n->qlen -= k;
  }
out:
  set_ready(n);
  hl_series_set(n->s_queued, (double)n->qlen);
  hl_series_set(n->s_inflight, hl_announcer_inflight(n->ann));
  if (n->dir) {
    hl_dirsrc_stats ds;
    hl_dirsrc_stats_get(n->dir, &ds);
    hl_series_set(n->s_dir_waiting, (double)ds.waiting);
    hl_series_set(n->s_dir_watches, (double)ds.watches);
  }
}

static void on_tick(uv_timer_t *t) { hl_notifier_pump(t->data); }
static void on_async(uv_async_t *a) { hl_notifier_pump(a->data); }

int hl_notifier_start(hl_notifier *n, char *err, size_t errlen) {
  uv_timer_init(n->loop, &n->tick);
  uv_async_init(n->loop, &n->async, on_async);
  n->tick.data = n->async.data = n;
  n->started = true;
  uv_timer_start(&n->tick, on_tick, 0, TICK_MS);
  if (*n->dir_path) {
    hl_dirsrc_opts d = {.root = n->dir_path, .bucket = n->dir_bucket, .filter = n->filter,
                        .stable_ms = n->stable_ms, .rescan_ms = n->rescan_ms,
                        .max_watches = n->max_watches, .found = hl_notifier_offer, .ud = n};
    int r = hl_dirsrc_new(n->loop, &d, &n->dir);
    if (r == 0 && (r = hl_dirsrc_start(n->dir)) < 0)
      n->dir = hl_dirsrc_close(n->dir);
    if (r < 0) {
      snprintf(err, errlen, "landing directory %s: %s", n->dir_path, hl_strerror(r));
      return r;
    }
  }
  if (n->poll) {
    int r = hl_s3poll_start(n->poll);
    if (r < 0) {
      snprintf(err, errlen, "s3-poll thread: %s", hl_strerror(r));
      return r;
    }
  }
  if (n->sqs) {
    int r = hl_sqs_start(n->sqs);
    if (r < 0) {
      snprintf(err, errlen, "SQS thread: %s", hl_strerror(r));
      return r;
    }
  }
  return 0;
}

void hl_notifier_stop(hl_notifier *n, int timeout_ms) {
  pthread_mutex_lock(&n->amu);
  n->stopping = true;
  pthread_mutex_unlock(&n->amu);
  set_ready(n);
  n->dir = hl_dirsrc_close(n->dir);
  n->poll = hl_s3poll_free(n->poll);
  n->sqs = hl_sqs_free(n->sqs);
  if (!n->started)
    return;
  /*
   * Announce what is queued (events accepted over HTTP exist nowhere else),
   * then wait for the acknowledgements.
   */
  int64_t end = mono_ms() + timeout_ms;
  while ((n->qlen > 0 || n->nain > 0) && !atomic_load(&n->failed) && mono_ms() < end) {
    hl_notifier_pump(n);
    hl_announcer_poll(n->ann, 10);
  }
  int64_t left = end - mono_ms();
  if (n->qlen > 0 || n->nain > 0 || hl_announcer_flush(n->ann, left > 0 ? (int)left : 0) < 0)
    hl_log_kv(HL_LOG_WARN, "stopping with announcements in flight; they are resolved on the next start",
              NULL);
  uv_close((uv_handle_t *)&n->tick, NULL);
  uv_close((uv_handle_t *)&n->async, NULL);
  n->started = false;
}

bool hl_notifier_ready(hl_notifier *n, char *reason, size_t len) {
  static const char *const why[] = {"", "connecting to the topic", "recovering pending announcements",
                                    "the kafka producer failed", "stopping"};
  int w = atomic_load(&n->not_ready_why);
  if (w && reason)
    snprintf(reason, len, "%s", why[w]);
  return w == 0;
}

bool hl_notifier_failed(hl_notifier *n) { return atomic_load(&n->failed); }

void hl_notifier_stats_get(hl_notifier *n, hl_notifier_stats *out) {
  *out = n->stats;
  out->inflight = hl_announcer_inflight(n->ann);
}
