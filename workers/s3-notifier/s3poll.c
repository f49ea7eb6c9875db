#include "s3poll.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hl/buf.h"
#include "hl/error.h"
#include "hl/log.h"
#include "s3events.h"

#define RETRY_MS 100

struct hl_s3poll {
  hl_s3 *s3;
  char *bucket, *prefix;
  uint64_t interval_ms;
  int page_size;
  size_t chunk;
  hl_s3poll_offer_fn *offer;
  void *ud;
  pthread_t thread;
  bool running;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  bool stop;
  hl_s3poll_stats stats;
  /* The chunk being filled: objects and the strings behind them. */
  hl_notifier_object *objs;
  char **mem;
  size_t n;
};

int hl_s3poll_new(const hl_s3poll_opts *o, hl_s3poll **out) {
  if (!o->s3 || !o->bucket || !*o->bucket || !o->offer)
    return -EINVAL;
  hl_s3poll *p = calloc(1, sizeof *p);
  if (!p)
    return -ENOMEM;
  pthread_mutex_init(&p->mu, NULL);
  pthread_cond_init(&p->cv, NULL);
  p->interval_ms = o->interval_ms ? o->interval_ms : 30000;
  p->page_size = o->page_size;
  p->chunk = o->chunk ? o->chunk : 500;
  p->offer = o->offer;
  p->ud = o->ud;
  p->bucket = strdup(o->bucket);
  p->prefix = o->prefix && *o->prefix ? strdup(o->prefix) : NULL;
  p->objs = calloc(p->chunk, sizeof *p->objs);
  p->mem = calloc(p->chunk, sizeof *p->mem);
  int r = -ENOMEM;
  if (!p->bucket || (o->prefix && *o->prefix && !p->prefix) || !p->objs || !p->mem)
    goto fail;
  if ((r = hl_s3_new(o->s3, &p->s3)) < 0)
    goto fail;
  *out = p;
  return 0;
fail:
  hl_s3poll_free(p);
  return r;
}

static bool stopping(hl_s3poll *p) {
  pthread_mutex_lock(&p->mu);
  bool s = p->stop;
  pthread_mutex_unlock(&p->mu);
  return s;
}

/* Waits ms or until stopped; true when stopped. */
static bool wait_ms(hl_s3poll *p, uint64_t ms) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  ts.tv_sec += (time_t)(ms / 1000);
  ts.tv_nsec += (long)(ms % 1000) * 1000000L;
  if (ts.tv_nsec >= 1000000000L) {
    ts.tv_sec++;
    ts.tv_nsec -= 1000000000L;
  }
  pthread_mutex_lock(&p->mu);
  while (!p->stop && pthread_cond_timedwait(&p->cv, &p->mu, &ts) != ETIMEDOUT) {
  }
  bool s = p->stop;
  pthread_mutex_unlock(&p->mu);
  return s;
}

static void chunk_clear(hl_s3poll *p) {
  for (size_t i = 0; i < p->n; i++) {
    free(p->mem[i]);
    p->mem[i] = NULL;
  }
  p->n = 0;
}

/* Offers the chunk until taken or stopped. 0 or -ECANCELED. */
static int flush_chunk(hl_s3poll *p) {
  while (p->n > 0) {
    if (p->offer(p->ud, p->objs, p->n) == 0) {
      pthread_mutex_lock(&p->mu);
      p->stats.objects += p->n;
      pthread_mutex_unlock(&p->mu);
      chunk_clear(p);
      return 0;
    }
    if (wait_ms(p, RETRY_MS))
      return -ECANCELED;
  }
  return 0;
}

static int on_object(void *ud, const hl_s3_object *obj) {
  hl_s3poll *p = ud;
  if (stopping(p))
    return -ECANCELED;
  /* The ETag without quotes, as every source names versions. */
  const char *e = obj->etag;
  size_t elen = strlen(e);
  if (elen >= 2 && e[0] == '"' && e[elen - 1] == '"') {
    e++;
    elen -= 2;
  }
  if (elen == 0 || memchr(e, '"', elen) || !obj->key || !*obj->key)
    return 0;
  hl_buf b;
  hl_buf_init(&b, 4 * HL_S3_MAX_KEY);
  /* One allocation: bucket, key, uri, etag. */
  size_t lb = strlen(p->bucket) + 1, lk = strlen(obj->key) + 1;
  int r = hl_buf_append(&b, p->bucket, lb);
  if (!r)
    r = hl_buf_append(&b, obj->key, lk);
  if (!r)
    r = hl_buf_printf(&b, "s3://%s/%s", p->bucket, obj->key);
  size_t lu = r ? 0 : b.len - lb - lk + 1;
  if (!r)
    r = hl_buf_putc(&b, '\0');
  if (!r)
    r = hl_buf_append(&b, e, elen);
  if (!r)
    r = hl_buf_putc(&b, '\0');
  if (r) {
    hl_buf_free(&b);
    return 0; /* too long for a key: S3 never lists such */
  }
  char *mem = hl_buf_steal(&b, NULL);
  int64_t t = 0;
  hl_s3events_time_ms(obj->last_modified, &t);
  p->mem[p->n] = mem;
  p->objs[p->n] = (hl_notifier_object){.source = "s3-poll", .bucket = mem, .key = mem + lb,
                                       .uri = mem + lb + lk, .size = obj->size,
                                       .etag = mem + lb + lk + lu, .mtime_ms = t};
  p->n++;
  if (p->n == p->chunk)
    return flush_chunk(p);
  return 0;
}

int hl_s3poll_once(hl_s3poll *p, hl_s3_error *err) {
  int r = hl_s3_list_each(p->s3, p->bucket, p->prefix, p->page_size, on_object, p, err);
  if (r == 0)
    r = flush_chunk(p);
  chunk_clear(p);
  pthread_mutex_lock(&p->mu);
  if (r == 0)
    p->stats.listings++;
  else if (r != -ECANCELED)
    p->stats.listing_errors++;
  pthread_mutex_unlock(&p->mu);
  return r;
}

static void *run(void *arg) {
  hl_s3poll *p = arg;
  do {
    hl_s3_error err;
    memset(&err, 0, sizeof err);
    int r = hl_s3poll_once(p, &err);
    if (r < 0 && r != -ECANCELED) {
      char msg[512];
      hl_log_kv(HL_LOG_WARN, "listing the landing bucket failed; will retry", "bucket", p->bucket,
                "error", hl_s3_error_str(&err, msg, sizeof msg), NULL);
    }
  } while (!wait_ms(p, p->interval_ms));
  return NULL;
}

int hl_s3poll_start(hl_s3poll *p) {
  int r = pthread_create(&p->thread, NULL, run, p);
  if (r)
    return -r;
  p->running = true;
  return 0;
}

hl_s3poll *hl_s3poll_free(hl_s3poll *p) {
  if (!p)
    return NULL;
  if (p->running) {
    pthread_mutex_lock(&p->mu);
    p->stop = true;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
    pthread_join(p->thread, NULL);
  }
  chunk_clear(p);
  hl_s3_free(p->s3);
  free(p->objs);
  free(p->mem);
  free(p->bucket);
  free(p->prefix);
  pthread_cond_destroy(&p->cv);
  pthread_mutex_destroy(&p->mu);
  free(p);
  return NULL;
}

void hl_s3poll_stats_get(hl_s3poll *p, hl_s3poll_stats *out) {
  pthread_mutex_lock(&p->mu);
  *out = p->stats;
  pthread_mutex_unlock(&p->mu);
}
