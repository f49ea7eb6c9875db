#include "parser_worker.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "hl/downstream.h"
#include "hl/error.h"
#include "hl/kafka.h"
#include "hl/log.h"
#include "hl/s3.h"

/* The downstream bound is consulted every this many resources, or bytes of them (large resources). */
#define LAG_CHECK_EVERY 5000
#define LAG_CHECK_BYTES (1 << 20)
/* Delivery reports are served (and the pending bound checked) every this many messages. */
#define POLL_EVERY 256

struct hl_parser_worker {
  hl_worker *w;
  hl_parser_opts popts;
  hl_s3 *s3; /* NULL: s3:// objects are refused */
  char *out_topic, *status_topic, *dlq_topic, *landing_dir;
  hl_downstream *down; /* NULL: no downstream bound */
  int max_pending;
  uint64_t since_poll, resources_unreported;
  uint64_t since_check, bytes_since_check;
  /* The input being processed. */
  hl_kafka_msg *msg;
  char now[64];
  /* Lengths of the per-object header values, computed once per object. */
  size_t org_len, job_len, uri_len, now_len;
  hl_buf buf;
  hl_metric *m_objects, *m_rejects;
  hl_series *s_resources, *s_bytes;
};

static char *dup_or_null(const char *s) { return s && *s ? strdup(s) : NULL; }

static void now_rfc3339(char *out, size_t n) {
  struct timeval tv;
  struct tm tm;
  gettimeofday(&tv, NULL);
  gmtime_r(&tv.tv_sec, &tm);
  snprintf(out, n, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
           tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(tv.tv_usec / 1000));
}

/* Whether cfg names any S3 credential source (partial ones are caught by hl_s3_config_from). */
static bool s3_configured(const hl_config *cfg) {
  static const char *const names[] = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                                      "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                                      "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                                      "AWS_WEB_IDENTITY_TOKEN_FILE"};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    if (*hl_config_str(cfg, names[i]))
      return true;
  return false;
}

static int s3_client(const hl_config *cfg, hl_s3 **out, char *err, size_t errlen) {
  if (!s3_configured(cfg))
    return 0;
  hl_s3_config sc;
  int r = hl_s3_config_from(cfg, &sc, err, errlen);
  if (r < 0)
    return r;
  if ((r = hl_s3_new(&sc, out)) < 0)
    snprintf(err, errlen, "S3 client: %s (check HL_S3_ENDPOINT)", hl_strerror(r));
  return r == -EINVAL ? HL_ECONFIG : r;
}

bool hl_parser_worker_reads_s3(const hl_parser_worker *pw) { return pw->s3 != NULL; }

int hl_parser_worker_new(const hl_config *cfg, hl_metrics *reg, hl_parser_worker **out, char *err,
                         size_t errlen) {
  hl_parser_worker *pw = calloc(1, sizeof *pw);
  if (!pw)
    return -ENOMEM;
  int r = s3_client(cfg, &pw->s3, err, errlen);
  if (r < 0)
    return hl_parser_worker_free(pw), r;
  pw->out_topic = strdup(hl_config_str(cfg, "HL_PARSER_OUTPUT_TOPIC"));
  pw->status_topic = strdup(hl_config_str(cfg, "HL_PARSER_STATUS_TOPIC"));
  pw->dlq_topic = strdup(hl_config_str(cfg, "HL_KAFKA_DLQ_TOPIC"));
  pw->landing_dir = dup_or_null(hl_config_str(cfg, "HL_PARSER_LANDING_DIR"));
  pw->max_pending = (int)hl_config_int(cfg, "HL_PARSER_MAX_PENDING");
  if (!pw->out_topic || !pw->status_topic || !pw->dlq_topic)
    return hl_parser_worker_free(pw), -ENOMEM;
  pw->popts.landing_dir = pw->landing_dir;
  pw->popts.max_line_bytes = (size_t)hl_config_int(cfg, "HL_PARSER_MAX_LINE");
  pw->popts.max_document_bytes = (size_t)hl_config_int(cfg, "HL_PARSER_MAX_DOCUMENT");
  pw->popts.read_chunk = (size_t)hl_config_int(cfg, "HL_PARSER_READ_CHUNK");
  if (pw->s3) {
    pw->popts.s3_read = hl_parser_s3_reader;
    pw->popts.s3_ud = pw->s3;
  }
  hl_buf_init(&pw->buf, 1 << 20);
  pw->m_objects = hl_metrics_counter(reg, "hl_parser_objects_total",
                                     "Landed objects processed, by result.", "result");
  pw->m_rejects = hl_metrics_counter(reg, "hl_parser_rejects_total",
                                     "Pieces of input sent to the DLQ, by error code.", "code");
  pw->s_resources = hl_metric_at(hl_metrics_counter(reg, "hl_parser_resources_total",
                                                    "FHIR resources emitted to the output topic.", NULL));
  pw->s_bytes = hl_metric_at(hl_metrics_counter(reg, "hl_parser_bytes_total",
                                                "Object bytes read (compressed size for gzip).", NULL));
  const char *down = hl_config_str(cfg, "HL_PARSER_DOWNSTREAM_GROUP");
  if (*down) {
    hl_downstream_opts dopts = {.group = down,
                                .topic = pw->out_topic,
                                .max_lag = hl_config_int(cfg, "HL_PARSER_MAX_DOWNSTREAM_LAG"),
                                .max_partition_bytes =
                                    hl_config_int(cfg, "HL_PARSER_MAX_DOWNSTREAM_PARTITION_BYTES"),
                                .metrics = reg,
                                .lag_metric = "hl_parser_downstream_lag_messages",
                                .waits_metric = "hl_parser_lag_waits_total"};
    if ((r = hl_downstream_new(&dopts, &pw->down)) < 0)
      return hl_parser_worker_free(pw), r;
  }
  *out = pw;
  return 0;
}

hl_parser_worker *hl_parser_worker_free(hl_parser_worker *pw) {
  if (!pw)
    return NULL;
  free(pw->out_topic);
  free(pw->status_topic);
  free(pw->dlq_topic);
  free(pw->landing_dir);
  hl_downstream_free(pw->down);
  hl_s3_free(pw->s3);
  hl_buf_free(&pw->buf);
  free(pw);
  return NULL;
}

void hl_parser_worker_attach(hl_parser_worker *pw, hl_worker *w) { pw->w = w; }

/* ---- downstream lag guard ---- */

static uint64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/*
 * Waits while the downstream group is too far behind (hl/downstream.h:
 * measured at most once a second), serving delivery reports meanwhile, for
 * as long as it takes: a slow or stopped validator holds the parser back,
 * it does not make it fail. 0, or HL_ETIMEOUT when the worker is stopping.
 */
static int lag_guard(hl_parser_worker *pw) {
  if (!pw->down || !pw->w)
    return 0;
  hl_downstream_note(pw->down, (int64_t)pw->since_check, (int64_t)pw->bytes_since_check);
  pw->since_check = pw->bytes_since_check = 0;
  rd_kafka_t *rk = hl_producer_handle(hl_worker_producer(pw->w));
  if (!hl_downstream_over(pw->down, rk, mono_ms()))
    return 0;
  hl_log_kv(HL_LOG_INFO, "downstream lag over the bound, waiting", "topic", pw->out_topic, NULL);
  while (!hl_worker_stopping(pw->w)) {
    hl_producer_poll(hl_worker_producer(pw->w), 250);
    if (!hl_downstream_over(pw->down, rk, mono_ms()))
      return 0;
  }
  return HL_ETIMEOUT;
}

/* ---- sink: resources and rejects become messages ---- */

/* Writes v in decimal into out (at least 21 bytes); returns the length. */
static size_t u64_dec(uint64_t v, char *out) {
  char tmp[24];
  size_t n = 0;
  do {
    tmp[n++] = (char)('0' + v % 10);
    v /= 10;
  } while (v);
  for (size_t i = 0; i < n; i++)
    out[i] = tmp[n - 1 - i];
  return n;
}

/* The provenance headers of one message (the per-object values' lengths are cached). */
static rd_kafka_headers_t *prov_headers(const hl_parser_worker *pw, const hl_landing_event *ev,
                                        uint64_t line) {
  rd_kafka_headers_t *h = rd_kafka_headers_new(8);
  char ln[24];
  size_t lnl = u64_dec(line, ln);
  rd_kafka_header_add(h, HL_HDR_ORG, sizeof HL_HDR_ORG - 1, ev->org, (ssize_t)pw->org_len);
  rd_kafka_header_add(h, HL_HDR_JOB, sizeof HL_HDR_JOB - 1, ev->job, (ssize_t)pw->job_len);
  rd_kafka_header_add(h, HL_HDR_SOURCE, sizeof HL_HDR_SOURCE - 1, ev->uri, (ssize_t)pw->uri_len);
  rd_kafka_header_add(h, HL_HDR_LINE, sizeof HL_HDR_LINE - 1, ln, (ssize_t)lnl);
  rd_kafka_header_add(h, HL_HDR_INGESTED_AT, sizeof HL_HDR_INGESTED_AT - 1, pw->now,
                      (ssize_t)pw->now_len);
  return h;
}

static int send_out(hl_parser_worker *pw, hl_kafka_out *out) {
  int r = hl_worker_produce(pw->w, pw->msg, out);
  if (r < 0 && out->headers)
    rd_kafka_headers_destroy(out->headers);
  return r;
}

/*
 * Serves delivery reports, so acknowledged messages are released as the
 * object streams (not only when it ends), and waits while more than
 * max_pending messages are unacknowledged: the parser's memory stays bounded
 * by that, not by the object's size.
 */
static void pending_guard(hl_parser_worker *pw) {
  hl_producer *p = hl_worker_producer(pw->w);
  hl_producer_poll(p, 0);
  while (hl_producer_outq_len(p) > pw->max_pending)
    hl_producer_poll(p, 5);
}

/* Adds the resources counted since the last report to the metric. */
static void report_resources(hl_parser_worker *pw) {
  if (pw->resources_unreported) {
    hl_series_add(pw->s_resources, (double)pw->resources_unreported);
    pw->resources_unreported = 0;
  }
}

static int on_resource(void *ud, const hl_landing_event *ev, const hl_split_record *r) {
  hl_parser_worker *pw = ud;
  pw->bytes_since_check += r->len;
  if (++pw->since_check >= LAG_CHECK_EVERY || pw->bytes_since_check >= LAG_CHECK_BYTES) {
    int g = lag_guard(pw);
    if (g < 0)
      return g;
  }
  if (++pw->since_poll >= POLL_EVERY) {
    pw->since_poll = 0;
    report_resources(pw);
    pending_guard(pw);
  }
  /* org/ResourceType/id: at most 64 + 1 + 64 + 1 + 64 bytes (all three are checked ids). */
  char key[256];
  size_t tl = r->type_len, il = r->id_len, kl = pw->org_len + 1 + tl + 1 + il;
  if (kl >= sizeof key)
    return HL_ELIMIT;
  memcpy(key, ev->org, pw->org_len);
  key[pw->org_len] = '/';
  memcpy(key + pw->org_len + 1, r->type, tl);
  key[pw->org_len + 1 + tl] = '/';
  memcpy(key + pw->org_len + 2 + tl, r->id, il);
  hl_kafka_out out = {pw->out_topic, key, kl, r->json, r->len, prov_headers(pw, ev, r->line)};
  int rc = send_out(pw, &out);
  if (rc == 0)
    pw->resources_unreported++;
  return rc;
}

static int on_reject(void *ud, const hl_landing_event *ev, const hl_split_reject *r) {
  hl_parser_worker *pw = ud;
  rd_kafka_headers_t *h = prov_headers(pw, ev, r->line);
  hl_buf_reset(&pw->buf);
  hl_kafka_outcome_json(&pw->buf, "structure", r->code, r->detail);
  rd_kafka_header_add(h, HL_HDR_ERROR_STAGE, -1, "parse", -1);
  rd_kafka_header_add(h, HL_HDR_ERROR_CODE, -1, r->code, -1);
  rd_kafka_header_add(h, HL_HDR_ERROR_DETAIL, -1, pw->buf.data ? pw->buf.data : "", -1);
  hl_kafka_out out = {pw->dlq_topic, pw->msg->key, pw->msg->key_len, r->raw, r->len, h};
  int rc = send_out(pw, &out);
  if (rc == 0)
    hl_series_inc(hl_metric_at(pw->m_rejects, r->code));
  return rc;
}

/* One job-status event per object on the status topic, keyed org/job. */
static int status_event(hl_parser_worker *pw, const hl_landing_event *ev, const hl_parser_result *res,
                        const char *state) {
  json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:s, s:s*, s:s*}",
                        "job", ev->job, "org", ev->org, "uri", ev->uri, "stage", "parse", "state",
                        state, "received", (json_int_t)(res->emitted + res->rejected), "emitted",
                        (json_int_t)res->emitted, "rejected", (json_int_t)res->rejected, "lines",
                        (json_int_t)res->lines, "bytes", (json_int_t)res->bytes, "time", pw->now,
                        "code", res->code, "detail", res->code ? res->detail : NULL);
  if (!o)
    return -ENOMEM;
  char *s = json_dumps(o, JSON_COMPACT);
  json_decref(o);
  if (!s)
    return -ENOMEM;
  char key[200];
  int kl = snprintf(key, sizeof key, "%s/%.120s", ev->org, ev->job);
  hl_kafka_out out = {pw->status_topic, key, (size_t)kl, s, strlen(s), NULL};
  int r = send_out(pw, &out);
  free(s);
  return r;
}

static hl_proc_result on_error(int r) {
  return r == HL_EFATAL || r == -ENOMEM ? HL_PROC_FATAL : HL_PROC_RETRY;
}

static hl_proc_result process(void *ud, hl_worker *w, hl_kafka_msg *msg) {
  hl_parser_worker *pw = ud;
  pw->w = w;
  pw->msg = msg;
  char err[300];
  hl_landing_event ev;
  if (hl_landing_event_parse(msg->value ? msg->value : "", msg->len, &ev, err, sizeof err) < 0) {
    hl_series_inc(hl_metric_at(pw->m_objects, "invalid-event"));
    return hl_worker_reject(w, msg, "invalid-event", err);
  }
  int r = lag_guard(pw);
  if (r < 0) {
    hl_landing_event_clear(&ev);
    return HL_PROC_RETRY;
  }
  now_rfc3339(pw->now, sizeof pw->now);
  pw->org_len = strlen(ev.org);
  pw->job_len = strlen(ev.job);
  pw->uri_len = strlen(ev.uri);
  pw->now_len = strlen(pw->now);
  hl_parser_sink sink = {pw, on_resource, on_reject};
  hl_parser_result res;
  r = hl_parser_process(&pw->popts, &ev, &sink, &res);
  report_resources(pw);
  hl_series_add(pw->s_bytes, (double)res.bytes);
  hl_proc_result out;
  if (r == 0) {
    hl_series_inc(hl_metric_at(pw->m_objects, res.rejected ? "parsed-with-rejects" : "parsed"));
    r = status_event(pw, &ev, &res, "parsed");
    out = r < 0 ? on_error(r) : HL_PROC_OK;
  } else if (r == HL_EPARSE) {
    hl_series_inc(hl_metric_at(pw->m_objects, res.code));
    r = status_event(pw, &ev, &res, "failed");
    out = r < 0 ? on_error(r) : hl_worker_reject(w, msg, res.code, res.detail);
  } else {
    hl_log_kv(HL_LOG_WARN, "object read failed, will retry", "uri", ev.uri, "error",
              res.code ? res.detail : hl_strerror(r), NULL);
    out = on_error(r);
  }
  hl_landing_event_clear(&ev);
  pw->msg = NULL;
  return out;
}

void hl_parser_worker_processor(hl_parser_worker *pw, hl_processor *proc) {
  memset(proc, 0, sizeof *proc);
  proc->stage = "parse";
  proc->ud = pw;
  proc->process = process;
}
