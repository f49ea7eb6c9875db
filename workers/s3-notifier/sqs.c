#include "sqs.h"

#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <openssl/crypto.h>
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

#define SETTLE_SCAN_MS 50
#define BACKOFF_MIN_MS 500
#define BACKOFF_MAX_MS 30000
#define MAX_ERROR_BODY 4096

struct hl_sqs {
  hl_s3 *aws;           /* only for its credentials */
  CURL *curl;
  char *queue_url, *url, *host;
  int wait_s, max_messages, visibility_s, settle_ms;
  hl_sqs_offer_fn *offer;
  hl_sqs_settled_fn *settled;
  void *ud;
  pthread_t thread;
  bool running;
  pthread_mutex_t mu;   /* guards stop and stats */
  pthread_cond_t cv;
  bool stop;
  hl_sqs_stats stats;
  hl_series *s_deleted, *s_unparseable, *s_left, *s_errors_receive, *s_errors_delete;
};

/* ---- Small helpers. ---- */

static bool stopping(hl_sqs *q) {
  pthread_mutex_lock(&q->mu);
  bool s = q->stop;
  pthread_mutex_unlock(&q->mu);
  return s;
}

/* Waits ms or until stopped; true when stopped. */
static bool wait_ms(hl_sqs *q, long ms) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  ts.tv_sec += ms / 1000;
  ts.tv_nsec += (ms % 1000) * 1000000L;
  if (ts.tv_nsec >= 1000000000L) {
    ts.tv_sec++;
    ts.tv_nsec -= 1000000000L;
  }
  pthread_mutex_lock(&q->mu);
  while (!q->stop && pthread_cond_timedwait(&q->cv, &q->mu, &ts) == 0)
    ;
  bool s = q->stop;
  pthread_mutex_unlock(&q->mu);
  return s;
}

static int64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void count(hl_sqs *q, uint64_t *field, uint64_t n, hl_series *s) {
  pthread_mutex_lock(&q->mu);
  *field += n;
  pthread_mutex_unlock(&q->mu);
  hl_series_add(s, (double)n);
}

/* Splits "scheme://host[:port]/..." into the origin URL and the host. */
static int origin_of(const char *url, char **origin, char **host) {
  const char *p = strstr(url, "://");
  if (!p || (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0))
    return -EINVAL;
  const char *h = p + 3;
  size_t hl = strcspn(h, "/?#");
  if (hl == 0 || hl > 255 || memchr(h, '@', hl))
    return -EINVAL;
  *origin = strndup(url, (size_t)(h - url) + hl);
  *host = strndup(h, hl);
  return *origin && *host ? 0 : -ENOMEM;
}

/* ---- Lifecycle. ---- */

int hl_sqs_new(const hl_sqs_opts *o, hl_sqs **out) {
  if (!o->aws || !o->queue_url || !*o->queue_url || !o->offer || !o->settled || o->wait_s < 0 ||
      o->wait_s > HL_SQS_MAX_WAIT_S || o->max_messages < 0 || o->max_messages > HL_SQS_MAX_MESSAGES ||
      o->visibility_s < 0 || o->visibility_s > 43200)
    return -EINVAL;
  hl_sqs *q = calloc(1, sizeof *q);
  if (!q)
    return -ENOMEM;
  pthread_mutex_init(&q->mu, NULL);
  pthread_cond_init(&q->cv, NULL);
  q->wait_s = o->wait_s;
  q->max_messages = o->max_messages ? o->max_messages : HL_SQS_MAX_MESSAGES;
  q->visibility_s = o->visibility_s;
  q->settle_ms = o->settle_timeout_ms > 0 ? o->settle_timeout_ms
                 : o->visibility_s > 0    ? o->visibility_s * 750
                                          : 20000;
  q->offer = o->offer;
  q->settled = o->settled;
  q->ud = o->ud;
  int r = -ENOMEM;
  char *origin = NULL;
  if (!(q->queue_url = strdup(o->queue_url)))
    goto fail;
  if ((r = origin_of(o->endpoint && *o->endpoint ? o->endpoint : o->queue_url, &origin, &q->host)) < 0)
    goto fail;
  q->url = malloc(strlen(origin) + 2);
  if (!q->url) {
    r = -ENOMEM;
    goto fail;
  }
  sprintf(q->url, "%s/", origin);
  if ((r = hl_s3_new(o->aws, &q->aws)) < 0)
    goto fail;
  if (!(q->curl = curl_easy_init())) {
    r = -ENOMEM;
    goto fail;
  }
  hl_metric *m = hl_metrics_counter(o->metrics, "hl_notifier_sqs_messages_total",
                                    "SQS messages received, by what became of them.", "outcome");
  q->s_deleted = hl_metric_at(m, "deleted");
  q->s_unparseable = hl_metric_at(m, "unparseable");
  q->s_left = hl_metric_at(m, "left");
  m = hl_metrics_counter(o->metrics, "hl_notifier_sqs_errors_total", "Failed SQS calls, by action.",
                         "action");
  q->s_errors_receive = hl_metric_at(m, "ReceiveMessage");
  q->s_errors_delete = hl_metric_at(m, "DeleteMessageBatch");
  free(origin);
  *out = q;
  return 0;
fail:
  free(origin);
  hl_sqs_free(q);
  return r;
}

hl_sqs *hl_sqs_free(hl_sqs *q) {
  if (!q)
    return NULL;
  if (q->running) {
    pthread_mutex_lock(&q->mu);
    q->stop = true;
    pthread_cond_broadcast(&q->cv);
    pthread_mutex_unlock(&q->mu);
    pthread_join(q->thread, NULL);
  }
  if (q->curl)
    curl_easy_cleanup(q->curl);
  hl_s3_free(q->aws);
  free(q->queue_url);
  free(q->url);
  free(q->host);
  pthread_cond_destroy(&q->cv);
  pthread_mutex_destroy(&q->mu);
  free(q);
  return NULL;
}

void hl_sqs_stats_get(hl_sqs *q, hl_sqs_stats *out) {
  pthread_mutex_lock(&q->mu);
  *out = q->stats;
  pthread_mutex_unlock(&q->mu);
}

/* ---- One signed call. ---- */

typedef struct sink {
  hl_sqs *q;
  hl_buf *out;
  bool limited;
} sink;

static size_t on_body(char *data, size_t size, size_t n, void *ud) {
  sink *s = ud;
  if (hl_buf_append(s->out, data, size * n) < 0) {
    s->limited = true;
    return 0;
  }
  return size * n;
}

static int on_progress(void *ud, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un) {
  (void)dt, (void)dn, (void)ut, (void)un;
  return stopping(((sink *)ud)->q) ? 1 : 0;
}

/* The code and message of an SQS JSON error ({"__type":"com.amazonaws.sqs#Code","message":...}). */
static void error_of(const hl_buf *body, long status, char *err, size_t errlen) {
  json_t *o = body->len ? json_loadb(body->data, body->len, 0, NULL) : NULL;
  const char *type = o ? json_string_value(json_object_get(o, "__type")) : NULL;
  const char *msg = o ? json_string_value(json_object_get(o, "message")) : NULL;
  if (o && !msg)
    msg = json_string_value(json_object_get(o, "Message"));
  const char *code = type ? strrchr(type, '#') : NULL;
  snprintf(err, errlen, "HTTP %ld %s: %s", status, code ? code + 1 : type ? type : "-", msg ? msg : "-");
  json_decref(o);
}

/* POSTs body as AmazonSQS.<action>; a 200 answer goes to out. 0, HL_EHTTP, HL_EIO, -ECANCELED... */
static int call(hl_sqs *q, const char *action, const char *body, hl_buf *out, char *err, size_t errlen) {
  hl_s3_credentials cr;
  hl_s3_error se;
  int r = hl_s3_get_credentials(q->aws, &cr, &se);
  if (r < 0) {
    hl_s3_error_str(&se, err, errlen);
    return r;
  }
  time_t now = time(NULL);
  struct tm tm;
  gmtime_r(&now, &tm);
  char amz_date[20], target[64], payload[65];
  strftime(amz_date, sizeof amz_date, "%Y%m%dT%H%M%SZ", &tm);
  snprintf(target, sizeof target, "AmazonSQS.%s", action);
  hl_s3_sha256_hex(body, strlen(body), payload);
  hl_s3_kv hdr[5] = {{"content-type", "application/x-amz-json-1.0"},
                     {"host", q->host},
                     {"x-amz-date", amz_date},
                     {"x-amz-target", target},
                     {"x-amz-security-token", cr.session_token}};
  hl_s3_sigv4 req = {.method = "POST", .path = "/", .headers = hdr, .nheaders = cr.session_token[0] ? 5 : 4,
                     .payload_hash = payload, .region = cr.region, .service = "sqs",
                     .access_key = cr.access_key, .secret_key = cr.secret_key, .now = now};
  hl_buf auth, line;
  hl_buf_init(&auth, 4096);
  hl_buf_init(&line, 8192);
  hl_buf_puts(&auth, "Authorization: ");
  r = hl_s3_sigv4_sign(&req, &auth, NULL);
  OPENSSL_cleanse(&cr, sizeof cr);
  struct curl_slist *h = NULL;
  if (r == 0) {
    const char *fixed[] = {"Content-Type: application/x-amz-json-1.0", "Expect:", auth.data};
    for (size_t i = 0; i < 3; i++)
      h = curl_slist_append(h, fixed[i]);
    hl_buf_printf(&line, "Host: %s", q->host);
    h = curl_slist_append(h, line.data);
    hl_buf_reset(&line);
    hl_buf_printf(&line, "X-Amz-Date: %s", amz_date);
    h = curl_slist_append(h, line.data);
    hl_buf_reset(&line);
    hl_buf_printf(&line, "X-Amz-Target: %s", target);
    h = curl_slist_append(h, line.data);
    if (hdr[4].value[0]) {
      hl_buf_reset(&line);
      hl_buf_printf(&line, "X-Amz-Security-Token: %s", hdr[4].value);
      h = curl_slist_append(h, line.data);
    }
  }
  OPENSSL_cleanse(auth.data ? auth.data : "", auth.data ? auth.len : 0);
  hl_buf_free(&line);
  if (r < 0 || !h) {
    hl_buf_free(&auth);
    curl_slist_free_all(h);
    snprintf(err, errlen, "signing the request failed");
    return r < 0 ? r : -ENOMEM;
  }
  sink s = {q, out, false};
  CURL *c = q->curl;
  curl_easy_reset(c);
  curl_easy_setopt(c, CURLOPT_URL, q->url);
  curl_easy_setopt(c, CURLOPT_POST, 1L);
  curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
  curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &s);
  curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
  curl_easy_setopt(c, CURLOPT_XFERINFODATA, &s);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
  /* A long poll holds the answer up to WaitTimeSeconds. */
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)(q->wait_s + 30) * 1000L);
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  hl_buf_reset(out);
  CURLcode cc = curl_easy_perform(c);
  long status = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  curl_slist_free_all(h);
  hl_buf_free(&auth);
  if (cc == CURLE_ABORTED_BY_CALLBACK && !s.limited) {
    snprintf(err, errlen, "stopped");
    return -ECANCELED;
  }
  if (s.limited) {
    snprintf(err, errlen, "%s answer larger than the cap", action);
    return HL_ELIMIT;
  }
  if (cc != CURLE_OK) {
    snprintf(err, errlen, "%s: %s", action, curl_easy_strerror(cc));
    return cc == CURLE_OPERATION_TIMEDOUT ? HL_ETIMEOUT : HL_EIO;
  }
  if (status != 200) {
    error_of(out, status, err, errlen);
    return HL_EHTTP;
  }
  return 0;
}

/* ---- Messages. ---- */

void hl_sqs_messages_clear(hl_sqs_messages *m) {
  for (size_t i = 0; i < m->n; i++) {
    free(m->v[i].id);
    free(m->v[i].receipt);
    free(m->v[i].body);
  }
  free(m->v);
  m->v = NULL;
  m->n = 0;
}

int hl_sqs_parse_receive(const char *json, size_t len, hl_sqs_messages *out) {
  memset(out, 0, sizeof *out);
  json_t *o = json_loadb(json, len, 0, NULL);
  if (!o || !json_is_object(o)) {
    json_decref(o);
    return HL_EPARSE;
  }
  json_t *arr = json_object_get(o, "Messages");
  int r = 0;
  if (!arr || json_is_null(arr))
    goto done;
  if (!json_is_array(arr) || json_array_size(arr) > HL_SQS_MAX_MESSAGES) {
    r = HL_EPARSE;
    goto done;
  }
  out->v = calloc(json_array_size(arr) + 1, sizeof *out->v);
  if (!out->v) {
    r = -ENOMEM;
    goto done;
  }
  size_t i;
  json_t *m;
  json_array_foreach(arr, i, m) {
    const char *id = json_string_value(json_object_get(m, "MessageId"));
    const char *rh = json_string_value(json_object_get(m, "ReceiptHandle"));
    json_t *b = json_object_get(m, "Body");
    const char *rc = json_string_value(json_object_get(json_object_get(m, "Attributes"), "ApproximateReceiveCount"));
    if (!id || !rh || !json_is_string(b)) {
      r = HL_EPARSE;
      break;
    }
    hl_sqs_message *x = &out->v[out->n++];
    x->id = strdup(id);
    x->receipt = strdup(rh);
    x->body = strndup(json_string_value(b), json_string_length(b));
    x->receive_count = rc ? strtol(rc, NULL, 10) : 0;
    if (!x->id || !x->receipt || !x->body) {
      r = -ENOMEM;
      break;
    }
  }
done:
  if (r < 0)
    hl_sqs_messages_clear(out);
  json_decref(o);
  return r;
}

/* What became of one message of a round. */
enum { WAITING = 0, SETTLED = 1, LEAVE = 2 };

/* Hands over the objects of message i; LEAVE when the core stays full past the deadline. */
static int hand_over(hl_sqs *q, const hl_s3events *ev, int64_t deadline) {
  for (;;) {
    int r = q->offer(q->ud, ev->objects, ev->count);
    if (r == 0) {
      count(q, &q->stats.objects, ev->count, NULL);
      return WAITING;
    }
    if (r != -EAGAIN || mono_ms() > deadline || wait_ms(q, SETTLE_SCAN_MS))
      return LEAVE;
  }
}

static bool all_settled(hl_sqs *q, const hl_s3events *ev) {
  for (size_t k = 0; k < ev->count; k++)
    if (q->settled(q->ud, &ev->objects[k]) != 1)
      return false;
  return true;
}

/* Deletes the settled messages with one DeleteMessageBatch. */
static int delete_settled(hl_sqs *q, const hl_sqs_messages *m, const int *state, char *err, size_t errlen) {
  json_t *entries = json_array();
  char id[24];
  for (size_t i = 0; i < m->n; i++)
    if (state[i] == SETTLED) {
      snprintf(id, sizeof id, "m%zu", i);
      json_array_append_new(entries, json_pack("{s:s, s:s}", "Id", id, "ReceiptHandle", m->v[i].receipt));
    }
  size_t n = json_array_size(entries);
  if (n == 0) {
    json_decref(entries);
    return 0;
  }
  json_t *req = json_pack("{s:s, s:o}", "QueueUrl", q->queue_url, "Entries", entries);
  char *body = req ? json_dumps(req, JSON_COMPACT) : NULL;
  json_decref(req);
  if (!body)
    return -ENOMEM;
  hl_buf out;
  hl_buf_init(&out, 1 << 20);
  int r = call(q, "DeleteMessageBatch", body, &out, err, errlen);
  free(body);
  if (r == 0) {
    json_t *o = json_loadb(out.data ? out.data : "", out.len, 0, NULL);
    size_t ok = json_array_size(json_object_get(o, "Successful"));
    json_t *failed = json_object_get(o, "Failed");
    count(q, &q->stats.deleted, ok, q->s_deleted);
    if (json_array_size(failed) > 0) {
      json_t *f = json_array_get(failed, 0);
      const char *code = json_string_value(json_object_get(f, "Code"));
      snprintf(err, errlen, "DeleteMessageBatch: %zu of %zu entries failed (%s); they come back and are deleted then",
               json_array_size(failed), n, code ? code : "-");
      r = HL_EHTTP;
    }
    json_decref(o);
  }
  if (r < 0)
    count(q, &q->stats.errors, 1, q->s_errors_delete);
  hl_buf_free(&out);
  return r;
}

int hl_sqs_once(hl_sqs *q, char *errp, size_t errlen) {
  char scratch[512];
  char *err = errp && errlen ? errp : scratch;
  errlen = errp && errlen ? errlen : sizeof scratch;
  err[0] = '\0';
  json_t *req = json_pack("{s:s, s:i, s:i, s:[s], s:[s]}", "QueueUrl", q->queue_url, "MaxNumberOfMessages",
                          q->max_messages, "WaitTimeSeconds", q->wait_s, "AttributeNames",
                          "ApproximateReceiveCount", "MessageSystemAttributeNames", "ApproximateReceiveCount");
  if (req && q->visibility_s > 0)
    json_object_set_new(req, "VisibilityTimeout", json_integer(q->visibility_s));
  char *body = req ? json_dumps(req, JSON_COMPACT) : NULL;
  json_decref(req);
  if (!body)
    return -ENOMEM;
  hl_buf out;
  hl_buf_init(&out, HL_SQS_MAX_RESPONSE);
  int r = call(q, "ReceiveMessage", body, &out, err, errlen);
  free(body);
  hl_sqs_messages m = {0};
  if (r == 0 && (r = hl_sqs_parse_receive(out.data ? out.data : "", out.len, &m)) < 0)
    snprintf(err, errlen, "ReceiveMessage: unreadable answer");
  hl_buf_free(&out);
  if (r < 0) {
    if (r != -ECANCELED)
      count(q, &q->stats.errors, 1, q->s_errors_receive);
    return r;
  }
  count(q, &q->stats.receives, 1, NULL);
  count(q, &q->stats.messages, m.n, NULL);
  hl_s3events *ev = calloc(m.n + 1, sizeof *ev);
  int *state = calloc(m.n + 1, sizeof *state);
  if (!ev || !state) {
    free(ev);
    free(state);
    hl_sqs_messages_clear(&m);
    return -ENOMEM;
  }
  int64_t deadline = mono_ms() + q->settle_ms;
  size_t waiting = 0;
  for (size_t i = 0; i < m.n; i++) {
    char why[256];
    int pr = hl_s3events_parse(m.v[i].body, strlen(m.v[i].body), &ev[i], why, sizeof why);
    if (pr < 0) {
      state[i] = LEAVE;
      count(q, &q->stats.unparseable, 1, q->s_unparseable);
      char rc[24];
      snprintf(rc, sizeof rc, "%ld", m.v[i].receive_count);
      hl_log_kv(HL_LOG_WARN, "SQS message is not an S3 event notification; left for the queue's redrive policy",
                "message_id", m.v[i].id, "receive_count", rc, "error", why, NULL);
      continue;
    }
    state[i] = ev[i].count == 0 ? SETTLED : hand_over(q, &ev[i], deadline);
    waiting += state[i] == WAITING;
  }
  /* Wait until the core is done with every object of a message (announced and acknowledged). */
  while (waiting > 0 && mono_ms() <= deadline) {
    for (size_t i = 0; i < m.n; i++)
      if (state[i] == WAITING && all_settled(q, &ev[i])) {
        state[i] = SETTLED;
        waiting--;
      }
    if (waiting > 0 && wait_ms(q, SETTLE_SCAN_MS))
      break;
  }
  for (size_t i = 0; i < m.n; i++)
    if (state[i] == WAITING || (state[i] == LEAVE && ev[i].objects)) {
      state[i] = LEAVE;
      count(q, &q->stats.left, 1, q->s_left);
    }
  /* Deleting is worth doing even when stopping: what settled need not come back. */
  r = delete_settled(q, &m, state, err, errlen);
  for (size_t i = 0; i < m.n; i++)
    hl_s3events_clear(&ev[i]);
  free(ev);
  free(state);
  hl_sqs_messages_clear(&m);
  return r;
}

static void *run(void *arg) {
  hl_sqs *q = arg;
  long backoff = 0;
  char err[512];
  while (!stopping(q)) {
    int r = hl_sqs_once(q, err, sizeof err);
    if (r == -ECANCELED)
      break;
    if (r < 0) {
      backoff = backoff ? (backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2) : BACKOFF_MIN_MS;
      hl_log_kv(HL_LOG_WARN, "SQS call failed; will retry", "queue", q->queue_url, "error", err, NULL);
      if (wait_ms(q, backoff))
        break;
      continue;
    }
    backoff = 0;
    /* Without long polling an empty queue would be asked in a tight loop. */
    if (q->wait_s == 0 && wait_ms(q, 1000))
      break;
  }
  return NULL;
}

int hl_sqs_start(hl_sqs *q) {
  if (q->running)
    return -EALREADY;
  int r = pthread_create(&q->thread, NULL, run, q);
  if (r != 0)
    return -r;
  q->running = true;
  return 0;
}
