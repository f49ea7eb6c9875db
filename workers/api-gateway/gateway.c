/*
 * hl-api-gateway: routes, FHIR read/search, ingestion, auth, rate limits,
 * audit and metrics on one libuv loop. See docs/api.md.
 */
#include "gateway.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "auth.h"
#include "embedded.h"
#include "fhirtypes.h"
#include "hl/admin.h"
#include "hl/buf.h"
#include "hl/error.h"
#include "hl/http.h"
#include "hl/log.h"
#include "hl/snowflake.h"
#include "hl/s3.h"
#include "query.h"
#include "store.h"

extern const hl__embedded hl__api_embedded[];

const hl_config_var hl_api_config_vars[] = {
    {"HL_API_ADDR", HL_CFG_STRING, "127.0.0.1:8080", 1, 255, NULL,
     "host:port the API listens on (FHIR, ingestion, /healthz, /readyz, /metrics)."},
    {"HL_API_PUBLIC_URL", HL_CFG_STRING, "", 0, 512, NULL,
     "Base URL written in links and Location headers (e.g. https://api.example.org); empty: http://<Host header>."},
    {"HL_WAREHOUSE_BACKEND", HL_CFG_ENUM, "sqlite", 0, 0, "sqlite|snowflake",
     "Warehouse the API reads: sqlite (HL_WAREHOUSE_PATH) or snowflake (curated tables built by dbt)."},
    {"HL_WAREHOUSE_PATH", HL_CFG_STRING, "healthlake.db", 1, 4096, NULL,
     "SQLite warehouse file, opened read-only (the loader writes it)."},
    HL_API_STORE_SNOWFLAKE_VARS,
    HL_CONFIG_SNOWFLAKE_VARS,
    {"HL_API_READERS", HL_CFG_INT, "2", 0, 64, NULL,
     "Threads that run warehouse searches and job queries, each with its own read-only connection (reads "
     "by id stay on the event loop thread); 0 runs every query on the event loop thread."},
    {"HL_API_DEFAULT_COUNT", HL_CFG_INT, "20", 1, 1000, NULL, "Page size of a search without _count."},
    {"HL_API_MAX_COUNT", HL_CFG_INT, "100", 1, 1000, NULL, "Largest page size; a larger _count is capped to it."},
    {"HL_API_MAX_BODY", HL_CFG_SIZE, "16MiB", 1024, 1073741824LL, NULL,
     "Largest request body (ingestion); larger bodies get 413."},
    {"HL_API_MAX_CONNECTIONS", HL_CFG_INT, "1024", 1, 100000, NULL, "Open connections beyond this get 503."},
    {"HL_API_MAX_URL", HL_CFG_SIZE, "8KiB", 256, 1048576, NULL, "Longest request target; longer gets 414."},
    {"HL_API_MAX_HEADERS", HL_CFG_SIZE, "16KiB", 1024, 1048576, NULL,
     "Largest request header block; larger gets 431."},
    {"HL_API_DRAIN_TIMEOUT", HL_CFG_DURATION, "10s", 0, 600000, NULL,
     "On SIGTERM, how long in-flight requests may take before connections are closed."},
    {"HL_API_ISSUER", HL_CFG_STRING, "https://healthlake.local/dev", 1, 512, NULL,
     "Required iss claim of tokens."},
    {"HL_API_AUDIENCE", HL_CFG_STRING, "healthlake-api", 1, 512, NULL, "Required aud claim of tokens."},
    {"HL_API_JWKS_FILE", HL_CFG_STRING, "", 0, 4096, NULL, "JWKS file with the RS256/ES256 verification keys."},
    {"HL_API_JWKS_URL", HL_CFG_STRING, "", 0, 2048, NULL,
     "JWKS URL (fetched at start, cached, fetched again on an unknown kid at most every HL_API_JWKS_REFRESH)."},
    {"HL_API_JWKS_REFRESH", HL_CFG_DURATION, "30s", 0, 86400000LL, NULL,
     "Least time between two fetches of HL_API_JWKS_URL (a token with an unknown kid triggers one)."},
    {"HL_API_CLOCK_SKEW", HL_CFG_DURATION, "60s", 0, 300000, NULL, "Clock skew allowed on exp and nbf."},
    {"HL_API_ALLOW_HS256", HL_CFG_BOOL, "false", 0, 0, NULL,
     "Accept HS256 tokens signed with HL_API_HS256_SECRET (local use only)."},
    {"HL_API_HS256_SECRET", HL_CFG_STRING, "", 0, 1024, NULL, "HS256 secret (at least 32 bytes)."},
    {"HL_API_TENANT_CLAIM", HL_CFG_STRING, "tenant", 1, 128, NULL,
     "The token claim that names the caller's tenant (organization)."},
    {"HL_API_INGEST_SCOPE", HL_CFG_STRING, "system/hl.ingest", 1, 128, NULL,
     "The scope the ingestion API requires."},
    {"HL_API_RATE_LIMIT", HL_CFG_INT, "200", 0, 10000000, NULL,
     "Requests per second per caller (token bucket); 0 disables rate limiting."},
    {"HL_API_RATE_BURST", HL_CFG_INT, "400", 1, 10000000, NULL, "Bucket size of the per-caller rate limit."},
    {"HL_API_AUDIT", HL_CFG_STRING, "stdout", 0, 4096, NULL,
     "Audit log destination: stdout, stderr, a file path (appended), or empty for none."},
    {"HL_API_LANDING", HL_CFG_STRING, "", 0, 4096, NULL,
     "Where ingestion writes: a directory (/data/landing or file:///data/landing) or s3://bucket[/prefix]; "
     "empty disables ingestion."},
    {"HL_API_UPLOAD_URL_TTL", HL_CFG_DURATION, "15m", 1000, 604800000LL, NULL,
     "Validity of presigned upload URLs."},
    HL_CONFIG_S3_VARS,
};
const size_t hl_api_nconfig_vars = sizeof hl_api_config_vars / sizeof hl_api_config_vars[0];

/* ---- State ------------------------------------------------------------------------------ */

typedef struct bucket {
  char key[200];
  double tokens;
  uint64_t at_ns;
} bucket;

#define RATE_SLOTS 4096

struct hl_api_gw {
  uv_loop_t *loop;
  const hl_config *cfg;
  hl_http_server *http;
  hl_api_store *store;
  hl_api_auth *auth;
  hl_metrics *reg;
  hl_metric *m_requests, *m_duration, *m_auth_fail, *m_limited;
  hl_series *s_ready;
  int audit_fd;
  bool audit_close;
  hl_api_search_opts sopts;
  double rate, burst;
  bucket *rate_tab;
  char *landing_dir;
  char *landing_bucket, *landing_prefix;
  hl_s3 *s3;
  long upload_ttl_s;
  const char *public_url;
  const char *openapi;
  size_t openapi_len;
  uint64_t req_seq;
  bool answering;
  bool draining;
  void (*drain_done)(void *);
  void *drain_ud;
};

typedef struct call call;
typedef void (*route_fn)(call *c);

typedef struct call {
  hl_api_gw *gw;
  hl_http_req *req;
  int route;
  uint64_t t0;
  char reqid[72];
  bool authed;
  hl_api_principal who;
  hl_buf ids;      /* audit: "Type/id" returned, JSON array items */
  size_t nids;
  bool json_plain; /* application/json instead of application/fhir+json */
  bool pretty;
  char base[600];  /* base URL, no trailing slash */
  char seg[6][160];
  size_t nseg;
  const hl_api_type_def *type;
  hl_api_query q;
  hl_api_search search;
  struct ingest_stream *stream; /* a streamed ingestion body, until landed or discarded */
} call;

/* ---- Routes ----------------------------------------------------------------------------- */

static void h_healthz(call *c);
static void h_readyz(call *c);
static void h_metrics(call *c);
static void h_openapi(call *c);
static void h_metadata(call *c);
static void h_search(call *c);
static void h_read(call *c);
static void h_compartment(call *c);
static void h_ingest(call *c);
static void h_upload_url(call *c);
static void h_job(call *c);

static const hl_api_route_info route_info[] = {
    {"GET", "/healthz", "none"},
    {"GET", "/readyz", "none"},
    {"GET", "/metrics", "none"},
    {"GET", "/v1/openapi.yaml", "none"},
    {"GET", "/v1/fhir/metadata", "none"},
    {"GET", "/v1/fhir/{type}", "read"},
    {"GET", "/v1/fhir/{type}/{id}", "read"},
    {"GET", "/v1/fhir/Patient/{id}/{type}", "read"},
    {"POST", "/v1/ingestion/fhir/Bundle", "ingest"},
    {"POST", "/v1/ingestion/upload-url", "ingest"},
    {"GET", "/v1/ingestion/jobs/{id}", "ingest"},
};
static const route_fn route_fns[] = {h_healthz, h_readyz, h_metrics, h_openapi, h_metadata, h_search,
                                     h_read, h_compartment, h_ingest, h_upload_url, h_job};
_Static_assert(sizeof route_info / sizeof route_info[0] == sizeof route_fns / sizeof route_fns[0],
               "one handler per route");
#define NROUTES (sizeof route_info / sizeof route_info[0])

size_t hl_api_routes(const hl_api_route_info **out) {
  *out = route_info;
  return NROUTES;
}

/* Splits a decoded path into segments; -1 when too many or too long. */
static int split_path(const char *path, char seg[][160], size_t max, size_t *n) {
  *n = 0;
  const char *p = path;
  if (*p != '/')
    return -1;
  while (*p) {
    p++;
    size_t l = strcspn(p, "/");
    if (*n == max || l >= 160)
      return -1;
    memcpy(seg[*n], p, l);
    seg[*n][l] = 0;
    (*n)++;
    p += l;
  }
  return 0;
}

/* Matches segments against a pattern; 1 when it does. */
static int match_pattern(const char *pat, char seg[][160], size_t n) {
  char ps[8][160];
  size_t np;
  if (split_path(pat, ps, 8, &np) < 0 || np != n)
    return 0;
  for (size_t i = 0; i < n; i++) {
    if (ps[i][0] == '{')
      continue;
    if (strcmp(ps[i], seg[i]))
      return 0;
  }
  return 1;
}

/* ---- Answers ---------------------------------------------------------------------------- */

/* hl_buf_json_escape, appending runs of plain bytes at once (the hot path of Bundles and links). */
static void jesc(hl_buf *b, const char *s, size_t n) {
  size_t i = 0;
  while (i < n) {
    size_t j = i;
    while (j < n && (unsigned char)s[j] >= 0x20 && s[j] != '"' && s[j] != '\\')
      j++;
    if (j > i)
      hl_buf_append(b, s + i, j - i);
    if (j < n)
      hl_buf_json_escape(b, s + j, 1);
    i = j + 1;
  }
}

static void audit(call *c, int status, double secs) {
  hl_api_gw *gw = c->gw;
  if (gw->audit_fd < 0)
    return;
  hl_buf b;
  hl_buf_init(&b, 1 << 20);
  char t[40];
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  struct tm tm;
  gmtime_r(&ts.tv_sec, &tm);
  strftime(t, sizeof t, "%Y-%m-%dT%H:%M:%S", &tm);
  hl_buf_printf(&b, "{\"time\":\"%s.%03ldZ\",\"request_id\":\"%s\",\"method\":\"", t, ts.tv_nsec / 1000000, c->reqid);
  const char *m = hl_http_req_method(c->req), *path = hl_http_req_path(c->req);
  hl_buf_json_escape(&b, m, strlen(m));
  hl_buf_puts(&b, "\",\"route\":\"");
  const char *r = c->route >= 0 ? route_info[c->route].pattern : "-";
  hl_buf_json_escape(&b, r, strlen(r));
  hl_buf_puts(&b, "\",\"path\":\"");
  hl_buf_json_escape(&b, path, strlen(path));
  hl_buf_puts(&b, "\",\"sub\":");
  if (c->authed) {
    hl_buf_putc(&b, '"');
    hl_buf_json_escape(&b, c->who.sub, strlen(c->who.sub));
    hl_buf_printf(&b, "\",\"tenant\":\"%s\"", c->who.tenant);
  } else {
    hl_buf_puts(&b, "null,\"tenant\":null");
  }
  /* The ids (up to 100) are appended as they are: printf's %s is slow on long strings. */
  hl_buf_printf(&b, ",\"status\":%d,\"latency_ms\":%.3f,\"ids\":[", status, secs * 1000.0);
  if (c->ids.len)
    hl_buf_append(&b, c->ids.data, c->ids.len);
  hl_buf_puts(&b, "]}\n");
  if (b.data) {
    ssize_t w = write(gw->audit_fd, b.data, b.len);
    (void)w;
  }
  hl_buf_free(&b);
}

static void ingest_discard(struct ingest_stream *st);

static void call_free(call *c) {
  ingest_discard(c->stream);
  hl_buf_free(&c->ids);
  hl_api_query_clear(&c->q);
  hl_api_search_clear(&c->search);
  free(c);
}

static void note_id(call *c, const char *type, const char *id) {
  if (c->nids >= 100)
    return;
  if (c->nids)
    hl_buf_putc(&c->ids, ',');
  hl_buf_putc(&c->ids, '"');
  jesc(&c->ids, type, strlen(type));
  hl_buf_putc(&c->ids, '/');
  jesc(&c->ids, id, strlen(id));
  hl_buf_putc(&c->ids, '"');
  c->nids++;
}

/* Sends the answer with the request id header, records metrics and audit, frees the call. */
static void answer(call *c, int status, const char *ctype, const char *body, size_t len, const char *const *extra) {
  const char *h[24];
  size_t n = 0;
  h[n++] = "X-Request-Id";
  h[n++] = c->reqid;
  if (ctype) {
    h[n++] = "Content-Type";
    h[n++] = ctype;
  }
  for (size_t i = 0; extra && extra[i] && n < 22; i += 2) {
    h[n++] = extra[i];
    h[n++] = extra[i + 1];
  }
  h[n] = NULL;
  hl_api_gw *gw = c->gw;
  double secs = (double)(uv_hrtime() - c->t0) / 1e9;
  const char *route = c->route >= 0 ? route_info[c->route].pattern : "unmatched";
  char code[8];
  snprintf(code, sizeof code, "%d", status);
  hl_series_inc(hl_metric_at(gw->m_requests, route, code));
  hl_series_observe(hl_metric_at(gw->m_duration, route), secs);
  audit(c, status, secs);
  gw->answering = true;
  int rc = hl_http_respond_headers(c->req, status, h, body, len);
  gw->answering = false;
  if (rc == -EINVAL)
    hl_http_respond(c->req, 500, "application/json", "{\"error\":\"internal\"}", 20);
  call_free(c);
}

static const char *fhir_ctype(const call *c) {
  return c->json_plain ? "application/json; charset=utf-8" : "application/fhir+json; charset=utf-8";
}

/* Answers a JSON body, pretty-printed when _pretty=true. */
static void answer_json(call *c, int status, const char *body, size_t len, const char *const *extra) {
  if (c->pretty) {
    json_t *j = json_loadb(body, len, 0, NULL);
    char *p = j ? json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
    json_decref(j);
    if (p) {
      answer(c, status, fhir_ctype(c), p, strlen(p), extra);
      free(p);
      return;
    }
  }
  answer(c, status, fhir_ctype(c), body, len, extra);
}

static const char *issue_code(int status) {
  switch (status) {
  case 400: return "invalid";
  case 401: return "login";
  case 403: return "forbidden";
  case 404: return "not-found";
  case 405: case 406: case 501: return "not-supported";
  case 409: return "conflict";
  case 413: return "too-costly";
  case 429: return "throttled";
  case 503: return "transient";
  default: return "exception";
  }
}

static void outcome_h(call *c, int status, const char *const *extra, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void outcome_h(call *c, int status, const char *const *extra, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  hl_buf b;
  hl_buf_init(&b, 8192);
  hl_buf_printf(&b, "{\"resourceType\":\"OperationOutcome\",\"issue\":[{\"severity\":\"%s\",\"code\":\"%s\",\"diagnostics\":\"",
                status >= 500 ? "fatal" : "error", issue_code(status));
  hl_buf_json_escape(&b, msg, strlen(msg));
  hl_buf_puts(&b, "\"}]}");
  answer_json(c, status, b.data ? b.data : "{}", b.data ? b.len : 2, extra);
  hl_buf_free(&b);
}
#define outcome(c, status, ...) outcome_h(c, status, NULL, __VA_ARGS__)

/* ---- Handlers: operations --------------------------------------------------------------- */

static void h_healthz(call *c) { answer(c, 200, "application/json", "{\"status\":\"ok\"}", 15, NULL); }

/*
 * The gateway's readiness (not draining, and the store answers), recorded in
 * hl_ready so that a scrape of /metrics reads what /readyz would answer.
 */
static bool check_ready(hl_api_gw *gw, char *reason, size_t len) {
  bool ready;
  if (gw->draining) {
    snprintf(reason, len, "draining");
    ready = false;
  } else {
    ready = gw->store->ops->ready(gw->store, reason, len);
  }
  hl_series_set(gw->s_ready, ready ? 1 : 0);
  return ready;
}

static void h_readyz(call *c) {
  char reason[300] = "";
  if (!check_ready(c->gw, reason, sizeof reason)) {
    hl_buf b;
    hl_buf_init(&b, 4096);
    hl_buf_puts(&b, "{\"ready\":false,\"reason\":\"");
    hl_buf_json_escape(&b, reason, strlen(reason));
    hl_buf_puts(&b, "\"}");
    answer(c, 503, "application/json", b.data, b.len, NULL);
    hl_buf_free(&b);
    return;
  }
  answer(c, 200, "application/json", "{\"ready\":true}", 14, NULL);
}

static void h_metrics(call *c) {
  char reason[300];
  check_ready(c->gw, reason, sizeof reason);
  hl_buf b;
  hl_buf_init(&b, 64 << 20);
  hl_metrics_render(c->gw->reg, &b);
  answer(c, 200, HL_METRICS_CONTENT_TYPE, b.data ? b.data : "", b.len, NULL);
  hl_buf_free(&b);
}

static void h_openapi(call *c) {
  answer(c, 200, "application/yaml", c->gw->openapi, c->gw->openapi_len, NULL);
}

char *hl_api_capability_statement(const char *base) {
  json_t *rs = json_array();
  for (size_t i = 0; i < hl_api_ntypes; i++) {
    const hl_api_type_def *t = &hl_api_types[i];
    json_t *sp = json_array();
    for (size_t k = 0; k < hl_api_ncommon_params + t->nparams; k++) {
      const hl_api_param_def *d = k < hl_api_ncommon_params ? &hl_api_common_params[k]
                                                            : &t->params[k - hl_api_ncommon_params];
      json_array_append_new(sp, json_pack("{s:s, s:s, s:s}", "name", d->name, "type",
                                          hl_api_sp_kind_name(d->kind), "documentation", d->doc));
    }
    json_t *inc = json_array();
    for (size_t k = 0; k < t->nparams; k++) {
      const hl_api_param_def *d = &t->params[k];
      if (d->kind == HL_SP_REFERENCE && !strcmp(d->target, "Patient") && t->patient_col &&
          !strcmp(d->col, t->patient_col)) {
        char s[96];
        snprintf(s, sizeof s, "%s:%s", t->type, d->name);
        json_array_append_new(inc, json_string(s));
      }
    }
    json_array_append_new(
        rs, json_pack("{s:s, s:[{s:s}, {s:s}], s:s, s:b, s:b, s:o, s:o}", "type", t->type, "interaction",
                      "code", "read", "code", "search-type", "versioning", "versioned", "readHistory", 0,
                      "conditionalRead", 0, "searchInclude", inc, "searchParam", sp));
  }
  json_t *cs = json_pack(
      "{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:[s], s:{s:s, s:s}, s:{s:s, s:s}, s:[{s:s, s:{s:b, s:[{s:[{s:s, s:s}]}], s:s}, s:o, s:[{s:s}]}]}",
      "resourceType", "CapabilityStatement", "status", "active", "date", "2026-11-25", "kind",
      "instance", "fhirVersion", "4.0.1", "publisher", "Healthlake", "name", "HealthlakeApiGateway",
      "format", "application/fhir+json", "software", "name", "hl-api-gateway", "version", "0.1.0",
      "implementation", "description", "Healthlake FHIR R4 API (read and search)", "url", base,
      "rest", "mode", "server", "security", "cors", 0, "service", "coding", "system",
      "http://terminology.hl7.org/CodeSystem/restful-security-service", "code", "SMART-on-FHIR",
      "description", "Bearer JWT (RS256/ES256 against the JWKS); SMART v1/v2 scopes; the tenant claim scopes every query.",
      "resource", rs, "compartment", "canonical", "http://hl7.org/fhir/CompartmentDefinition/patient");
  char *s = cs ? json_dumps(cs, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
  json_decref(cs);
  return s;
}

static void h_metadata(call *c) {
  char *s = hl_api_capability_statement(c->base);
  if (!s) {
    outcome(c, 500, "out of memory");
    return;
  }
  answer_json(c, 200, s, strlen(s), NULL);
  free(s);
}

/* ---- FHIR read -------------------------------------------------------------------------- */

static bool may_read(const call *c, const hl_api_type_def *t, bool search, bool *compartment) {
  int i = hl_api_type_index(t->type);
  uint32_t bit = 1u << i;
  uint32_t broad = search ? c->who.search_broad : c->who.read_broad;
  uint32_t pat = search ? c->who.search_patient : c->who.read_patient;
  *compartment = false;
  if (broad & bit)
    return true;
  if (pat & bit) {
    *compartment = t->patient_col != NULL;
    return true;
  }
  return false;
}

static void http_date(const char *instant, char *out, size_t n) {
  int64_t lo, hi;
  out[0] = 0;
  if (!instant || !*instant || hl_api_date_range(instant, strlen(instant), &lo, &hi) < 0)
    return;
  time_t t = (time_t)(lo / 1000);
  struct tm tm;
  gmtime_r(&t, &tm);
  strftime(out, n, "%a, %d %b %Y %H:%M:%S GMT", &tm);
}

static bool etag_matches(const char *inm, const char *etag) {
  /* If-None-Match: a list of entity tags or "*"; weak comparison. */
  const char *want = etag + 2; /* skip W/ */
  size_t wl = strlen(want);
  const char *p = inm;
  while (*p) {
    while (*p == ' ' || *p == ',')
      p++;
    if (*p == '*')
      return true;
    if (!strncmp(p, "W/", 2))
      p += 2;
    size_t l = strcspn(p, ",");
    while (l && p[l - 1] == ' ')
      l--;
    if (l == wl && !strncmp(p, want, l))
      return true;
    p += strcspn(p, ",");
  }
  return false;
}

static void read_done(void *ud, int rc, hl_api_result *res) {
  call *c = ud;
  const char *id = c->seg[c->nseg - 1];
  if (rc == HL_ENOTFOUND) {
    outcome(c, 404, "%s/%s is not known", c->type->type, id);
    return;
  }
  if (rc < 0) {
    outcome(c, rc == HL_EIO ? 503 : 500, "warehouse read failed: %s", hl_strerror(rc));
    return;
  }
  const hl_api_row *r = &res->rows[0];
  if (c->search.compartment_patient) {
    const char *pid = !strcmp(c->type->type, "Patient") ? r->id : r->patient;
    if (!pid || strcmp(pid, c->search.compartment_patient)) {
      outcome(c, 404, "%s/%s is not known", c->type->type, id);
      return;
    }
  }
  note_id(c, c->type->type, r->id);
  char etag[160] = "", lm[64];
  const char *h[8];
  size_t n = 0;
  if (r->version[0] && strlen(r->version) < 100 && !strpbrk(r->version, "\"\\\r\n")) {
    snprintf(etag, sizeof etag, "W/\"%s\"", r->version);
    h[n++] = "ETag";
    h[n++] = etag;
  }
  http_date(r->last_updated, lm, sizeof lm);
  if (lm[0]) {
    h[n++] = "Last-Modified";
    h[n++] = lm;
  }
  h[n] = NULL;
  const char *inm = hl_http_req_header(c->req, "If-None-Match");
  if (inm && etag[0] && etag_matches(inm, etag)) {
    answer(c, 304, NULL, NULL, 0, h);
    return;
  }
  answer_json(c, 200, r->json, r->json_len, h);
}

static void h_read(call *c) {
  const char *id = c->seg[3];
  bool comp;
  if (!may_read(c, c->type, false, &comp)) {
    outcome(c, 403, "the token's scopes do not allow reading %s", c->type->type);
    return;
  }
  if (comp)
    c->search.compartment_patient = c->who.patient;
  if (!hl_api_valid_id(id)) {
    outcome(c, 404, "%s/%s is not known", c->type->type, "(invalid id)");
    return;
  }
  for (size_t i = 0; i < c->q.n; i++)
    if (strcmp(c->q.kv[i].name, "_format") && strcmp(c->q.kv[i].name, "_pretty")) {
      outcome(c, 400, "parameter '%s' is not supported on a read", c->q.kv[i].name);
      return;
    }
  c->gw->store->ops->read(c->gw->store, c->who.tenant, c->type, id, read_done, c);
}

/* ---- FHIR search ------------------------------------------------------------------------ */

/* Percent-encodes s into b; keep_slash leaves '/' as is (paths). Runs of safe bytes go in one append. */
static void put_encoded(hl_buf *b, const char *s, bool keep_slash) {
  static const char hex[] = "0123456789ABCDEF";
  const unsigned char *p = (const unsigned char *)s;
  while (*p) {
    const unsigned char *q = p;
    while (*q && ((*q >= 'A' && *q <= 'Z') || (*q >= 'a' && *q <= 'z') || (*q >= '0' && *q <= '9') ||
                  strchr("-._~:,|", *q) || (keep_slash && *q == '/')))
      q++;
    if (q > p)
      hl_buf_append(b, p, (size_t)(q - p));
    if (!*q)
      break;
    char e[3] = {'%', hex[*q >> 4], hex[*q & 15]};
    hl_buf_append(b, e, 3);
    p = q + 1;
  }
}

/* Appends a JSON string with the URL of this search with another cursor (NULL: none). */
static void link_url(call *c, hl_buf *b, const char *cursor) {
  hl_buf u;
  hl_buf_init(&u, 1 << 20);
  hl_buf_puts(&u, c->base);
  put_encoded(&u, hl_http_req_path(c->req), true);
  char sep = '?';
  for (size_t i = 0; i < c->q.n; i++) {
    if (!strcmp(c->q.kv[i].name, "_cursor"))
      continue;
    hl_buf_putc(&u, sep);
    sep = '&';
    put_encoded(&u, c->q.kv[i].name, false);
    hl_buf_putc(&u, '=');
    put_encoded(&u, c->q.kv[i].value, false);
  }
  if (cursor) {
    hl_buf_putc(&u, sep);
    hl_buf_puts(&u, "_cursor=");
    hl_buf_puts(&u, cursor);
  }
  hl_buf_putc(b, '"');
  if (u.data)
    jesc(b, u.data, u.len);
  hl_buf_putc(b, '"');
  hl_buf_free(&u);
}

static void add_link(call *c, hl_buf *b, bool *first, const char *rel, const char *cursor) {
  hl_buf_printf(b, "%s{\"relation\":\"%s\",\"url\":", *first ? "" : ",", rel);
  link_url(c, b, cursor);
  hl_buf_putc(b, '}');
  *first = false;
}

static void add_entry(call *c, hl_buf *b, bool *first, const char *type, const hl_api_row *r, const char *mode) {
  hl_buf_puts(b, *first ? "{\"fullUrl\":\"" : ",{\"fullUrl\":\"");
  jesc(b, c->base, strlen(c->base));
  hl_buf_puts(b, "/v1/fhir/");
  hl_buf_puts(b, type);
  hl_buf_putc(b, '/');
  jesc(b, r->id, strlen(r->id));
  hl_buf_puts(b, "\",\"resource\":");
  hl_buf_append(b, r->json, r->json_len);
  hl_buf_puts(b, ",\"search\":{\"mode\":\"");
  hl_buf_puts(b, mode);
  hl_buf_puts(b, "\"}}");
  *first = false;
  note_id(c, type, r->id);
}

static void search_done(void *ud, int rc, hl_api_result *res) {
  call *c = ud;
  if (rc < 0) {
    outcome(c, rc == HL_EIO ? 503 : 500, "warehouse search failed: %s", hl_strerror(rc));
    return;
  }
  hl_buf b;
  hl_buf_init(&b, 512u << 20);
  size_t want = 2048;
  for (size_t i = 0; i < res->nrows; i++)
    want += res->rows[i].json_len + 256;
  for (size_t i = 0; i < res->nincluded; i++)
    want += res->included[i].json_len + 256;
  hl_buf_reserve(&b, want);
  hl_buf_printf(&b, "{\"resourceType\":\"Bundle\",\"id\":\"%s\",\"meta\":{\"lastUpdated\":\"", c->reqid);
  char now[40];
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  hl_api_format_instant((int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000, now, sizeof now);
  hl_buf_printf(&b, "%s\"},\"type\":\"searchset\",\"total\":%lld,\"link\":[", now, (long long)res->total);
  bool first = true;
  add_link(c, &b, &first, "self", NULL);
  char cur[1600];
  if (!c->search.summary_count && res->nrows) {
    if (res->more_after) {
      const hl_api_row *r = &res->rows[res->nrows - 1];
      if (hl_api_cursor_encode(1, r->key_is_int, r->key_int, r->key_text, r->id, cur, sizeof cur) == 0)
        add_link(c, &b, &first, "next", cur);
    }
    if (res->more_before) {
      const hl_api_row *r = &res->rows[0];
      if (hl_api_cursor_encode(-1, r->key_is_int, r->key_int, r->key_text, r->id, cur, sizeof cur) == 0)
        add_link(c, &b, &first, "previous", cur);
    }
  }
  hl_buf_puts(&b, "]");
  if (!c->search.summary_count) {
    hl_buf_puts(&b, ",\"entry\":[");
    first = true;
    for (size_t i = 0; i < res->nrows; i++)
      add_entry(c, &b, &first, c->type->type, &res->rows[i], "match");
    for (size_t i = 0; i < res->nincluded; i++)
      add_entry(c, &b, &first, "Patient", &res->included[i], "include");
    hl_buf_puts(&b, "]");
  }
  hl_buf_puts(&b, "}");
  if (!b.data) {
    outcome(c, 500, "answer too large or out of memory");
  } else {
    answer_json(c, 200, b.data, b.len, NULL);
  }
  hl_buf_free(&b);
}

static void run_search(call *c, const char *compartment_of) {
  bool comp;
  char err[300];
  if (!may_read(c, c->type, true, &comp)) {
    outcome(c, 403, "the token's scopes do not allow searching %s", c->type->type);
    return;
  }
  int rc = hl_api_search_parse(c->type, &c->q, &c->gw->sopts, &c->search, err, sizeof err);
  if (rc == -ENOMEM) {
    outcome(c, 500, "out of memory");
    return;
  }
  if (rc < 0) {
    outcome(c, 400, "%s", err);
    return;
  }
  if (c->search.include_patient) {
    bool pc;
    const hl_api_type_def *pt = hl_api_type_find("Patient");
    if (!may_read(c, pt, false, &pc))
      c->search.include_patient = false; /* includes only what the caller may read */
  }
  if (comp)
    c->search.compartment_patient = c->who.patient;
  if (compartment_of) {
    if (c->search.compartment_patient && strcmp(c->search.compartment_patient, compartment_of)) {
      outcome(c, 404, "Patient/%s is not known", compartment_of);
      return;
    }
    if (!c->type->patient_col) {
      outcome(c, 400, "%s is not in the patient compartment", c->type->type);
      return;
    }
    c->search.compartment_patient = compartment_of;
  }
  c->gw->store->ops->search(c->gw->store, c->who.tenant, &c->search, search_done, c);
}

static void h_search(call *c) { run_search(c, NULL); }

static void h_compartment(call *c) {
  const char *pid = c->seg[3];
  if (!hl_api_valid_id(pid)) {
    outcome(c, 404, "Patient/(invalid id) is not known");
    return;
  }
  run_search(c, pid);
}

/* ---- Ingestion -------------------------------------------------------------------------- */

static void new_job_id(char out[40]) {
  unsigned char r[12];
  if (uv_random(NULL, NULL, r, sizeof r, 0, NULL) != 0) {
    uint64_t t = uv_hrtime();
    memcpy(r, &t, 8);
    memset(r + 8, 0x5a, 4);
  }
  char *p = out + sprintf(out, "api-");
  for (size_t i = 0; i < sizeof r; i++)
    p += sprintf(p, "%02x", r[i]);
}

static int mkdirs(const char *path) {
  char tmp[4096];
  snprintf(tmp, sizeof tmp, "%s", path);
  for (char *p = tmp + 1; *p; p++) {
    if (*p == '/') {
      *p = 0;
      if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
        return -errno;
      *p = '/';
    }
  }
  if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
    return -errno;
  return 0;
}

/* Writes data as dir/name atomically (temporary dot-file, fsync, rename). */
static int write_atomic(const char *dir, const char *name, const char *data, size_t len) {
  char tmp[4608], fin[4608];
  int a = snprintf(tmp, sizeof tmp, "%s/.%s.tmp", dir, name);
  int b = snprintf(fin, sizeof fin, "%s/%s", dir, name);
  if (a < 0 || b < 0 || (size_t)a >= sizeof tmp || (size_t)b >= sizeof fin)
    return -ENAMETOOLONG;
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0)
    return -errno;
  size_t off = 0;
  while (off < len) {
    ssize_t w = write(fd, data + off, len - off);
    if (w < 0) {
      if (errno == EINTR)
        continue;
      int e = -errno;
      close(fd);
      unlink(tmp);
      return e;
    }
    off += (size_t)w;
  }
  if (fsync(fd) < 0 || close(fd) < 0) {
    int e = -errno;
    unlink(tmp);
    return e;
  }
  if (rename(tmp, fin) < 0) {
    int e = -errno;
    unlink(tmp);
    return e;
  }
  return 0;
}

static bool ctype_is(const char *ct, const char *want) {
  size_t n = strlen(want);
  return ct && !strncasecmp(ct, want, n) && (ct[n] == 0 || ct[n] == ';' || ct[n] == ' ');
}

/* The ingestion media type of a Content-Type: 1 NDJSON, 0 JSON (a Bundle), -1 neither. */
static int ingest_kind(const char *ct) {
  if (ctype_is(ct, "application/fhir+ndjson") || ctype_is(ct, "application/x-ndjson") ||
      ctype_is(ct, "application/ndjson"))
    return 1;
  if (ctype_is(ct, "application/fhir+json") || ctype_is(ct, "application/json"))
    return 0;
  return -1;
}

/*
 * A streamed ingestion body (landing directory only): written as it arrives
 * to a temporary dot-file in the job's directory, renamed to its final name
 * once complete and checked (so the notifier only ever sees whole objects),
 * removed with the job directory otherwise.
 */
#define BUNDLE_FULL_CHECK_MAX (1u << 20)

typedef struct ingest_stream {
  char job[40];
  char tenant[65];
  char dir[4400];
  char tmp[4608];
  int fd;          /* -1: the body is read and dropped (caller not allowed, or a write failed) */
  int err;         /* the first write error (negative errno) */
  bool ndjson;
  bool bad_line;   /* an NDJSON line that is not a JSON object */
  char first;      /* first and last non-blank byte of the current NDJSON line, or of the whole body */
  char last;
  uint64_t bytes;
} ingest_stream;

/* Releases a stream that did not land: the temporary file and the job directory go. */
static void ingest_discard(ingest_stream *st) {
  if (!st)
    return;
  if (st->fd >= 0) {
    close(st->fd);
    unlink(st->tmp);
  }
  if (st->dir[0])
    rmdir(st->dir);
  free(st);
}

/* Tracks what the checks need: NDJSON lines must be objects; a Bundle starts with '{' and ends with '}'. */
static void ingest_scan(ingest_stream *st, const char *p, size_t n) {
  for (size_t i = 0; i < n; i++) {
    char ch = p[i];
    if (st->ndjson && ch == '\n') {
      if (st->first && (st->first != '{' || st->last != '}'))
        st->bad_line = true;
      st->first = st->last = 0;
    } else if (ch != ' ' && ch != '\t' && ch != '\r' && ch != '\n') {
      if (!st->first)
        st->first = ch;
      st->last = ch;
    }
  }
}

/* HL_HTTP_BODY_START for POST /v1/ingestion/fhir/Bundle with a landing directory. */
static int ingest_start(hl_api_gw *gw, hl_http_req *req) {
  ingest_stream *st = calloc(1, sizeof *st);
  if (!st)
    return 500;
  st->fd = -1;
  hl_api_principal who;
  const char *reason;
  char aerr[256];
  int kind = ingest_kind(hl_http_req_header(req, "Content-Type"));
  st->ndjson = kind == 1;
  /* Only an allowed caller gets a file; the handler answers the others after the body. */
  if (kind >= 0 && hl_api_auth_verify(gw->auth, hl_http_req_header(req, "Authorization"), time(NULL), &who,
                                      &reason, aerr, sizeof aerr) == 0 && who.ingest) {
    new_job_id(st->job);
    snprintf(st->tenant, sizeof st->tenant, "%s", who.tenant);
    const char *name = st->ndjson ? "data.ndjson" : "bundle.json";
    int a = snprintf(st->dir, sizeof st->dir, "%s/org=%s/job=%s", gw->landing_dir, who.tenant, st->job);
    int b = snprintf(st->tmp, sizeof st->tmp, "%s/.%s.tmp", st->dir, name);
    int rc = a < 0 || b < 0 || (size_t)a >= sizeof st->dir || (size_t)b >= sizeof st->tmp ? -ENAMETOOLONG
                                                                                              : mkdirs(st->dir);
    if (rc == 0 && (st->fd = open(st->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644)) < 0)
      rc = -errno;
    if (rc < 0) {
      st->err = rc;
      if (rc == -ENAMETOOLONG)
        st->dir[0] = 0;
    }
  }
  hl_http_req_set_user(req, st);
  return 1;
}

static int ingest_data(ingest_stream *st, const char *p, size_t n) {
  st->bytes += n;
  ingest_scan(st, p, n);
  size_t off = 0;
  while (st->fd >= 0 && off < n) {
    ssize_t w = write(st->fd, p + off, n - off);
    if (w < 0 && errno == EINTR)
      continue;
    if (w < 0) {
      /* Keep reading the body to answer 503 at its end; the file goes now. */
      st->err = -errno;
      close(st->fd);
      unlink(st->tmp);
      st->fd = -1;
      break;
    }
    off += (size_t)w;
  }
  return 0;
}

static int body_fn(hl_http_req *req, int event, const char *data, size_t len, void *ud) {
  hl_api_gw *gw = ud;
  switch (event) {
  case HL_HTTP_BODY_START:
    if (!gw->landing_dir || strcmp(hl_http_req_method(req), "POST") ||
        strcmp(hl_http_req_path(req), "/v1/ingestion/fhir/Bundle"))
      return 0;
    return ingest_start(gw, req);
  case HL_HTTP_BODY_DATA:
    return ingest_data(hl_http_req_user(req), data, len);
  case HL_HTTP_BODY_ABORT:
    ingest_discard(hl_http_req_user(req));
    hl_http_req_set_user(req, NULL);
    return 0;
  }
  return 0;
}

/* Checks a body held in memory: a Bundle with entries, or NDJSON lines that are objects. NULL or the problem. */
static const char *ingest_check_mem(bool ndjson, const char *body, size_t len) {
  if (!ndjson) {
    json_error_t je;
    json_t *j = json_loadb(body, len, 0, &je);
    const char *rt = j ? json_string_value(json_object_get(j, "resourceType")) : NULL;
    bool ok = rt && !strcmp(rt, "Bundle") && json_is_array(json_object_get(j, "entry"));
    json_decref(j);
    return ok ? NULL : "the body is not a FHIR Bundle with entries";
  }
  for (const char *p = body; p < body + len;) {
    const char *nl = memchr(p, '\n', (size_t)(body + len - p));
    size_t l = nl ? (size_t)(nl - p) : (size_t)(body + len - p);
    while (l && (p[l - 1] == '\r' || p[l - 1] == ' '))
      l--;
    if (l && (p[0] != '{' || p[l - 1] != '}'))
      return "NDJSON lines must be JSON objects";
    p = nl ? nl + 1 : body + len;
  }
  return NULL;
}

/*
 * Checks a streamed body: NDJSON line by line as it arrived; a Bundle up to
 * BUNDLE_FULL_CHECK_MAX is parsed from the file, a larger one must be one
 * JSON object (the parser rejects what is not a Bundle, with its reason).
 */
static const char *ingest_check_stream(ingest_stream *st) {
  if (st->ndjson) {
    if (st->first && (st->first != '{' || st->last != '}'))
      st->bad_line = true;
    return st->bad_line ? "NDJSON lines must be JSON objects" : NULL;
  }
  if (st->first != '{' || st->last != '}')
    return "the body is not a FHIR Bundle with entries";
  if (st->bytes > BUNDLE_FULL_CHECK_MAX)
    return NULL;
  json_error_t je;
  json_t *j = json_load_file(st->tmp, 0, &je);
  const char *rt = j ? json_string_value(json_object_get(j, "resourceType")) : NULL;
  bool ok = rt && !strcmp(rt, "Bundle") && json_is_array(json_object_get(j, "entry"));
  json_decref(j);
  return ok ? NULL : "the body is not a FHIR Bundle with entries";
}

/* Lands a complete streamed body under its final name. 0 or a negative errno. */
static int ingest_land(ingest_stream *st, const char *name) {
  char fin[4608];
  snprintf(fin, sizeof fin, "%s/%s", st->dir, name);
  int rc = 0;
  if (fsync(st->fd) < 0)
    rc = -errno;
  if (close(st->fd) < 0 && rc == 0)
    rc = -errno;
  st->fd = -1;
  if (rc == 0 && rename(st->tmp, fin) < 0)
    rc = -errno;
  if (rc < 0)
    unlink(st->tmp);
  return rc;
}

static void h_ingest(call *c) {
  hl_api_gw *gw = c->gw;
  if (!c->who.ingest) {
    outcome(c, 403, "the ingestion API needs the scope %s", hl_config_str(gw->cfg, "HL_API_INGEST_SCOPE"));
    return;
  }
  if (!gw->landing_dir && !gw->s3) {
    outcome(c, 503, "ingestion is not configured (HL_API_LANDING)");
    return;
  }
  ingest_stream *st = c->stream;
  size_t len;
  const char *body = hl_http_req_body(c->req, &len);
  int kind = ingest_kind(hl_http_req_header(c->req, "Content-Type"));
  if (kind < 0) {
    outcome(c, 415, "Content-Type must be application/fhir+json (a Bundle) or application/fhir+ndjson");
    return;
  }
  bool ndjson = kind == 1;
  if (st)
    len = (size_t)st->bytes;
  if (len == 0) {
    outcome(c, 400, "empty body");
    return;
  }
  /* The caller was not allowed when the body began (a token that became valid since): nothing was kept. */
  if (st && ((st->err == 0 && st->fd < 0) || strcmp(st->tenant, c->who.tenant))) {
    outcome(c, 503, "the body was not kept; retry");
    return;
  }
  const char *bad = st ? (st->err ? NULL : ingest_check_stream(st)) : ingest_check_mem(ndjson, body, len);
  if (bad) {
    outcome(c, 400, "%s", bad);
    return;
  }
  char job[40];
  const char *name = ndjson ? "data.ndjson" : "bundle.json";
  int rc;
  if (st) {
    snprintf(job, sizeof job, "%s", st->job);
    rc = st->err ? st->err : ingest_land(st, name);
    if (rc == 0) {
      free(st);
      c->stream = NULL;
    }
  } else if (gw->landing_dir) {
    char dir[4400];
    new_job_id(job);
    snprintf(dir, sizeof dir, "%s/org=%s/job=%s", gw->landing_dir, c->who.tenant, job);
    rc = mkdirs(dir);
    if (rc == 0)
      rc = write_atomic(dir, name, body, len);
  } else {
    char key[1200], etag[128];
    hl_s3_error se;
    new_job_id(job);
    snprintf(key, sizeof key, "%sorg=%s/job=%s/%s", gw->landing_prefix, c->who.tenant, job, name);
    rc = hl_s3_put(gw->s3, gw->landing_bucket, key, body, len,
                   ndjson ? "application/fhir+ndjson" : "application/fhir+json", etag, &se);
  }
  if (rc < 0) {
    hl_log_kv(HL_LOG_ERROR, "ingestion write failed", "job", job, "error", hl_strerror(rc), NULL);
    outcome(c, 503, "the landing area refused the object; retry later");
    return;
  }
  char loc[900], body_out[1200];
  snprintf(loc, sizeof loc, "%s/v1/ingestion/jobs/%s", c->base, job);
  hl_buf lb;
  hl_buf_init(&lb, 4096);
  hl_buf_json_escape(&lb, loc, strlen(loc));
  snprintf(body_out, sizeof body_out, "{\"job\":\"%s\",\"state\":\"accepted\",\"status_url\":\"%s\"}", job,
           lb.data ? lb.data : "");
  hl_buf_free(&lb);
  const char *h[] = {"Location", loc, NULL};
  hl_log_kv(HL_LOG_INFO, "ingestion accepted", "job", job, "tenant", c->who.tenant, NULL);
  note_id(c, "job", job);
  answer(c, 202, "application/json", body_out, strlen(body_out), h);
}

static void h_upload_url(call *c) {
  hl_api_gw *gw = c->gw;
  if (!c->who.ingest) {
    outcome(c, 403, "the ingestion API needs the scope %s", hl_config_str(gw->cfg, "HL_API_INGEST_SCOPE"));
    return;
  }
  if (!gw->s3) {
    outcome(c, 501, "presigned upload URLs need an S3 landing area (HL_API_LANDING=s3://...)");
    return;
  }
  size_t len;
  const char *body = hl_http_req_body(c->req, &len);
  char name[129] = "data.ndjson";
  if (len) {
    json_t *j = json_loadb(body, len, 0, NULL);
    const char *fn = json_string_value(json_object_get(j, "filename"));
    bool ok = j && (!json_object_get(j, "filename") || (fn && *fn && strlen(fn) < sizeof name && fn[0] != '.'));
    for (const char *p = fn; ok && p && *p; p++)
      ok = (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || strchr("._-", *p);
    if (ok && fn)
      snprintf(name, sizeof name, "%s", fn);
    json_decref(j);
    if (!ok) {
      outcome(c, 400, "body: {\"filename\": \"[A-Za-z0-9._-]{1,128}\"}");
      return;
    }
  }
  char job[40], key[1200];
  new_job_id(job);
  snprintf(key, sizeof key, "%sorg=%s/job=%s/%s", gw->landing_prefix, c->who.tenant, job, name);
  char *url = NULL;
  int rc = hl_s3_presign(gw->s3, "PUT", gw->landing_bucket, key, gw->upload_ttl_s, &url);
  if (rc < 0) {
    outcome(c, 500, "presign failed: %s", hl_strerror(rc));
    return;
  }
  json_t *o = json_pack("{s:s, s:s, s:s, s:I, s:s}", "job", job, "method", "PUT", "url", url, "expires_in",
                        (json_int_t)gw->upload_ttl_s, "status_url", "");
  char loc[900];
  snprintf(loc, sizeof loc, "%s/v1/ingestion/jobs/%s", c->base, job);
  json_object_set_new(o, "status_url", json_string(loc));
  char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
  json_decref(o);
  free(url);
  note_id(c, "job", job);
  const char *h[] = {"Location", loc, NULL};
  if (s)
    answer(c, 201, "application/json", s, strlen(s), h);
  else
    outcome(c, 500, "out of memory");
  free(s);
}

static void job_done(void *ud, int rc, json_t *job) {
  call *c = ud;
  const char *id = c->seg[3];
  if (rc == HL_ENOTFOUND) {
    /* Landed but not yet announced: the landing directory knows it. */
    char dir[4400];
    struct stat st;
    if (c->gw->landing_dir) {
      snprintf(dir, sizeof dir, "%s/org=%s/job=%s", c->gw->landing_dir, c->who.tenant, id);
      if (stat(dir, &st) == 0 && S_ISDIR(st.st_mode)) {
        char b[300];
        int n = snprintf(b, sizeof b,
                         "{\"id\":\"%s\",\"state\":\"accepted\",\"received\":0,\"valid\":0,\"rejected\":0,"
                         "\"loaded\":0,\"objects\":[],\"rejections\":[]}",
                         id);
        answer(c, 200, "application/json", b, (size_t)n, NULL);
        return;
      }
    }
    outcome(c, 404, "job %s is not known", id);
    return;
  }
  if (rc < 0) {
    outcome(c, rc == HL_EIO ? 503 : 500, "warehouse read failed: %s", hl_strerror(rc));
    return;
  }
  char *s = json_dumps(job, JSON_COMPACT | JSON_PRESERVE_ORDER);
  note_id(c, "job", id);
  if (s)
    answer(c, 200, "application/json", s, strlen(s), NULL);
  else
    outcome(c, 500, "out of memory");
  free(s);
}

static void h_job(call *c) {
  const char *id = c->seg[3];
  if (!c->who.ingest) {
    outcome(c, 403, "the ingestion API needs the scope %s", hl_config_str(c->gw->cfg, "HL_API_INGEST_SCOPE"));
    return;
  }
  if (!hl_api_valid_id(id)) {
    outcome(c, 404, "job is not known");
    return;
  }
  c->gw->store->ops->job(c->gw->store, c->who.tenant, id, job_done, c);
}

/* ---- Dispatch --------------------------------------------------------------------------- */

static bool rate_ok(hl_api_gw *gw, const char *key, double *retry_after) {
  if (gw->rate <= 0)
    return true;
  uint64_t h = 1469598103934665603ULL;
  for (const char *p = key; *p; p++)
    h = (h ^ (unsigned char)*p) * 1099511628211ULL;
  bucket *b = &gw->rate_tab[h % RATE_SLOTS];
  uint64_t now = uv_hrtime();
  if (strcmp(b->key, key)) {
    /* A new caller takes the slot (a collision resets the other caller's bucket: bounded memory). */
    snprintf(b->key, sizeof b->key, "%s", key);
    b->tokens = gw->burst;
    b->at_ns = now;
  }
  b->tokens += (double)(now - b->at_ns) / 1e9 * gw->rate;
  if (b->tokens > gw->burst)
    b->tokens = gw->burst;
  b->at_ns = now;
  if (b->tokens >= 1.0) {
    b->tokens -= 1.0;
    return true;
  }
  *retry_after = (1.0 - b->tokens) / gw->rate;
  return false;
}

static bool valid_reqid(const char *s) {
  size_t n = strlen(s);
  if (n == 0 || n > 64)
    return false;
  for (size_t i = 0; i < n; i++)
    if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') ||
          strchr("-_.:", s[i])))
      return false;
  return true;
}

static bool valid_host(const char *h) {
  size_t n = strlen(h);
  if (n == 0 || n > 255)
    return false;
  for (size_t i = 0; i < n; i++)
    if (!((h[i] >= 'A' && h[i] <= 'Z') || (h[i] >= 'a' && h[i] <= 'z') || (h[i] >= '0' && h[i] <= '9') ||
          strchr("-.:[]", h[i])))
      return false;
  return true;
}

/* Content negotiation: Accept, _format, _pretty. false when the answer was sent (406/400). */
static bool negotiate(call *c) {
  const char *fmt = hl_api_query_get(&c->q, "_format");
  const char *acc = hl_http_req_header(c->req, "Accept");
  if (fmt) {
    if (!strcmp(fmt, "json") || !strcmp(fmt, "application/json"))
      c->json_plain = true;
    else if (!strcmp(fmt, "application/fhir+json") || !strcmp(fmt, "fhir+json") ||
             !strcmp(fmt, "application/json+fhir"))
      c->json_plain = false;
    else {
      outcome(c, 406, "_format %s is not supported (json only)", fmt);
      return false;
    }
  } else if (acc && *acc) {
    bool fhir = strstr(acc, "application/fhir+json") || strstr(acc, "application/json+fhir");
    bool plain = strstr(acc, "application/json") != NULL;
    bool any = strstr(acc, "*/*") || strstr(acc, "application/*");
    if (!fhir && !plain && !any) {
      outcome(c, 406, "only application/fhir+json and application/json are served");
      return false;
    }
    c->json_plain = plain && !fhir;
  }
  const char *pr = hl_api_query_get(&c->q, "_pretty");
  if (pr) {
    if (strcmp(pr, "true") && strcmp(pr, "false")) {
      outcome(c, 400, "_pretty takes true or false");
      return false;
    }
    c->pretty = !strcmp(pr, "true");
  }
  return true;
}

static void handle(hl_http_req *req, void *ud) {
  hl_api_gw *gw = ud;
  call *c = calloc(1, sizeof *c);
  if (!c) {
    hl_http_respond(req, 500, "application/json", "{\"error\":\"out of memory\"}", 25);
    return;
  }
  c->gw = gw;
  c->req = req;
  c->stream = hl_http_req_user(req);
  c->route = -1;
  c->t0 = uv_hrtime();
  hl_buf_init(&c->ids, 64 * 1024);
  const char *rid = hl_http_req_header(req, "X-Request-Id");
  if (rid && valid_reqid(rid))
    snprintf(c->reqid, sizeof c->reqid, "%s", rid);
  else
    snprintf(c->reqid, sizeof c->reqid, "%016llx%08llx", (unsigned long long)c->t0,
             (unsigned long long)++gw->req_seq);
  const char *host = hl_http_req_header(req, "Host");
  if (*gw->public_url)
    snprintf(c->base, sizeof c->base, "%s", gw->public_url);
  else
    snprintf(c->base, sizeof c->base, "http://%s", host && valid_host(host) ? host : "localhost");

  const char *method = hl_http_req_method(req), *path = hl_http_req_path(req);
  bool head = !strcmp(method, "HEAD");
  if (split_path(path, c->seg, 6, &c->nseg) < 0) {
    outcome(c, 404, "no such resource");
    return;
  }
  int matched = -1;
  bool path_known = false;
  for (size_t i = 0; i < NROUTES; i++) {
    if (!match_pattern(route_info[i].pattern, c->seg, c->nseg))
      continue;
    path_known = true;
    if (!strcmp(route_info[i].method, method) || (head && !strcmp(route_info[i].method, "GET"))) {
      matched = (int)i;
      break;
    }
  }
  char qerr[256];
  const char *rawq = hl_http_req_query(req);
  int qrc = hl_api_query_parse(rawq, strlen(rawq), &c->q, qerr, sizeof qerr);
  if (matched < 0) {
    if (path_known) {
      char allow[64] = "";
      for (size_t i = 0; i < NROUTES; i++)
        if (match_pattern(route_info[i].pattern, c->seg, c->nseg) && !strstr(allow, route_info[i].method))
          snprintf(allow + strlen(allow), sizeof allow - strlen(allow), "%s%s", allow[0] ? ", " : "",
                   route_info[i].method);
      const char *h[] = {"Allow", allow, NULL};
      outcome_h(c, 405, h, "method %s is not allowed here", method);
    } else {
      outcome(c, 404, "no such resource");
    }
    return;
  }
  c->route = matched;
  if (qrc < 0) {
    outcome(c, qrc == -ENOMEM ? 500 : 400, "%s", qerr);
    return;
  }
  if (!negotiate(c))
    return;
  const char *scope = route_info[matched].scope;
  if (strcmp(scope, "none")) {
    const char *reason;
    char aerr[256];
    time_t now = time(NULL);
    if (hl_api_auth_verify(gw->auth, hl_http_req_header(req, "Authorization"), now, &c->who, &reason, aerr,
                           sizeof aerr) < 0) {
      hl_series_inc(hl_metric_at(gw->m_auth_fail, reason));
      const char *h[] = {"WWW-Authenticate", "Bearer realm=\"healthlake\", error=\"invalid_token\"", NULL};
      outcome_h(c, 401, h, "%s", aerr);
      return;
    }
    c->authed = true;
    char key[200];
    snprintf(key, sizeof key, "%s/%s", c->who.tenant, c->who.sub);
    double retry;
    if (!rate_ok(gw, key, &retry)) {
      char ra[32];
      snprintf(ra, sizeof ra, "%ld", (long)ceil(retry));
      const char *h[] = {"Retry-After", ra, NULL};
      hl_series_inc(hl_metric_at(gw->m_limited));
      outcome_h(c, 429, h, "rate limit of %.0f requests/s exceeded", gw->rate);
      return;
    }
  }
  /* Routes on /v1/fhir/{type}: the type must be served. */
  const char *pat = route_info[matched].pattern;
  if (!strncmp(pat, "/v1/fhir/", 9) && strcmp(pat, "/v1/fhir/metadata")) {
    const char *tname = !strcmp(pat, "/v1/fhir/Patient/{id}/{type}") ? c->seg[4] : c->seg[2];
    c->type = hl_api_type_find(tname);
    if (!c->type) {
      outcome(c, 404, "resource type %.64s is not served", tname);
      return;
    }
  }
  route_fns[matched](c);
}

/* Server-generated answers (400/408/413/414/431/503 before a handler ran) still count. */
static void observe(const hl_http_req *req, int status, double secs, void *ud) {
  hl_api_gw *gw = ud;
  if (gw->answering)
    return;
  char code[8];
  snprintf(code, sizeof code, "%d", status);
  hl_series_inc(hl_metric_at(gw->m_requests, "server", code));
  hl_series_observe(hl_metric_at(gw->m_duration, "server"), secs);
  if (gw->audit_fd >= 0) {
    char line[256];
    int n = snprintf(line, sizeof line,
                     "{\"request_id\":null,\"route\":\"server\",\"method\":\"%s\",\"status\":%d,\"latency_ms\":%.3f}\n",
                     valid_reqid(hl_http_req_method(req)) ? hl_http_req_method(req) : "", status, secs * 1000.0);
    ssize_t w = write(gw->audit_fd, line, (size_t)n);
    (void)w;
  }
}

static int setup_landing(hl_api_gw *gw, char *err, size_t errlen) {
  const char *l = hl_config_str(gw->cfg, "HL_API_LANDING");
  if (!*l)
    return 0;
  if (!strncmp(l, "s3://", 5)) {
    const char *b = l + 5;
    size_t bl = strcspn(b, "/");
    if (bl == 0 || bl > 63) {
      snprintf(err, errlen, "HL_API_LANDING: bad bucket in %s", l);
      return HL_ECONFIG;
    }
    gw->landing_bucket = strndup(b, bl);
    const char *pre = b[bl] ? b + bl + 1 : "";
    size_t pl = strlen(pre);
    gw->landing_prefix = malloc(pl + 2);
    if (!gw->landing_bucket || !gw->landing_prefix)
      return -ENOMEM;
    snprintf(gw->landing_prefix, pl + 2, "%s%s", pre, pl && pre[pl - 1] != '/' ? "/" : "");
    hl_s3_config sc;
    if (hl_s3_config_from(gw->cfg, &sc, err, errlen) < 0)
      return HL_ECONFIG;
    if (hl_s3_new(&sc, &gw->s3) < 0) {
      snprintf(err, errlen, "HL_API_LANDING: cannot create the S3 client");
      return HL_ECONFIG;
    }
    return 0;
  }
  if (!strncmp(l, "file://", 7))
    l += 7;
  if (l[0] != '/') {
    snprintf(err, errlen, "HL_API_LANDING must be an absolute directory, file:///dir or s3://bucket");
    return HL_ECONFIG;
  }
  gw->landing_dir = strdup(l);
  if (!gw->landing_dir)
    return -ENOMEM;
  size_t n = strlen(gw->landing_dir);
  while (n > 1 && gw->landing_dir[n - 1] == '/')
    gw->landing_dir[--n] = 0;
  int rc = mkdirs(gw->landing_dir);
  if (rc < 0) {
    snprintf(err, errlen, "HL_API_LANDING %s: %s", gw->landing_dir, strerror(-rc));
    return HL_ECONFIG;
  }
  return 0;
}

int hl_api_gw_new(uv_loop_t *loop, const hl_config *cfg, hl_metrics *reg, hl_api_gw **out, char *err,
                  size_t errlen) {
  hl_api_gw *gw = calloc(1, sizeof *gw);
  if (!gw)
    return -ENOMEM;
  gw->loop = loop;
  gw->cfg = cfg;
  gw->reg = reg;
  gw->audit_fd = -1;
  int rc = 0;
  gw->m_requests = hl_metrics_counter(reg, "hl_api_requests_total", "Requests answered, by route and status.",
                                      "route,code");
  gw->m_duration = hl_metrics_histogram(reg, "hl_api_request_duration_seconds",
                                        "Time from a complete request to its answer, by route.", "route",
                                        hl_metrics_latency_buckets, hl_metrics_latency_nbuckets);
  gw->m_auth_fail = hl_metrics_counter(reg, "hl_api_auth_failures_total",
                                       "Requests refused with 401, by reason.", "reason");
  gw->m_limited = hl_metrics_counter(reg, "hl_api_rate_limited_total", "Requests refused with 429.", NULL);
  gw->s_ready = hl_metric_at(hl_metrics_gauge(reg, "hl_ready", HL_READY_HELP, NULL));
  gw->sopts.default_count = (int)hl_config_int(cfg, "HL_API_DEFAULT_COUNT");
  gw->sopts.max_count = (int)hl_config_int(cfg, "HL_API_MAX_COUNT");
  gw->rate = (double)hl_config_int(cfg, "HL_API_RATE_LIMIT");
  gw->burst = (double)hl_config_int(cfg, "HL_API_RATE_BURST");
  gw->upload_ttl_s = (long)(hl_config_int(cfg, "HL_API_UPLOAD_URL_TTL") / 1000);
  gw->public_url = hl_config_str(cfg, "HL_API_PUBLIC_URL");
  gw->rate_tab = calloc(RATE_SLOTS, sizeof *gw->rate_tab);
  if (!gw->rate_tab) {
    rc = -ENOMEM;
    goto fail;
  }
  for (const hl__embedded *e = hl__api_embedded; e->name; e++)
    if (!strcmp(e->name, "openapi.yaml")) {
      gw->openapi = e->data;
      gw->openapi_len = e->len;
    }
  const char *audit = hl_config_str(cfg, "HL_API_AUDIT");
  if (!strcmp(audit, "stdout")) {
    gw->audit_fd = 1;
  } else if (!strcmp(audit, "stderr")) {
    gw->audit_fd = 2;
  } else if (*audit) {
    gw->audit_fd = open(audit, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (gw->audit_fd < 0) {
      snprintf(err, errlen, "HL_API_AUDIT %s: %s", audit, strerror(errno));
      rc = HL_ECONFIG;
      goto fail;
    }
    gw->audit_close = true;
  }
  hl_api_auth_opts ao = {
      .jwks_file = hl_config_str(cfg, "HL_API_JWKS_FILE"),
      .jwks_url = hl_config_str(cfg, "HL_API_JWKS_URL"),
      .issuer = hl_config_str(cfg, "HL_API_ISSUER"),
      .audience = hl_config_str(cfg, "HL_API_AUDIENCE"),
      .skew_s = (long)(hl_config_int(cfg, "HL_API_CLOCK_SKEW") / 1000),
      .allow_hs256 = hl_config_bool(cfg, "HL_API_ALLOW_HS256"),
      .hs256_secret = hl_config_str(cfg, "HL_API_HS256_SECRET"),
      .tenant_claim = hl_config_str(cfg, "HL_API_TENANT_CLAIM"),
      .ingest_scope = hl_config_str(cfg, "HL_API_INGEST_SCOPE"),
      .refresh_min_s = (long)(hl_config_int(cfg, "HL_API_JWKS_REFRESH") / 1000),
  };
  if ((rc = hl_api_auth_new(&ao, &gw->auth, err, errlen)) < 0)
    goto fail;
  if ((rc = setup_landing(gw, err, errlen)) < 0)
    goto fail;
  if (!strcmp(hl_config_str(cfg, "HL_WAREHOUSE_BACKEND"), "snowflake"))
    rc = hl_api_store_snowflake_new(cfg, loop, reg, &gw->store, err, errlen);
  else
    rc = hl_api_store_sqlite_new(hl_config_str(cfg, "HL_WAREHOUSE_PATH"), loop,
                                 (size_t)hl_config_int(cfg, "HL_API_READERS"), &gw->store);
  if (rc < 0)
    goto fail;
  hl_http_limits lim;
  hl_http_limits_default(&lim);
  lim.max_body_bytes = (size_t)hl_config_int(cfg, "HL_API_MAX_BODY");
  lim.max_connections = (size_t)hl_config_int(cfg, "HL_API_MAX_CONNECTIONS");
  lim.max_url_bytes = (size_t)hl_config_int(cfg, "HL_API_MAX_URL");
  lim.max_header_bytes = (size_t)hl_config_int(cfg, "HL_API_MAX_HEADERS");
  if ((rc = hl_http_server_new(loop, &lim, handle, gw, &gw->http)) < 0)
    goto fail;
  hl_http_server_set_observer(gw->http, observe, gw);
  hl_http_server_set_body_fn(gw->http, body_fn, gw);
  *out = gw;
  return 0;
fail:
  hl_api_gw_free(gw);
  return rc;
}

int hl_api_gw_listen(hl_api_gw *gw, const char *addr) {
  return hl_http_server_listen(gw->http, addr ? addr : hl_config_str(gw->cfg, "HL_API_ADDR"));
}

int hl_api_gw_port(const hl_api_gw *gw) { return hl_http_server_port(gw->http); }

static void drained(void *ud) {
  hl_api_gw *gw = ud;
  if (gw->drain_done)
    gw->drain_done(gw->drain_ud);
}

void hl_api_gw_drain(hl_api_gw *gw, void (*done)(void *ud), void *ud) {
  if (gw->draining)
    return;
  gw->draining = true;
  gw->drain_done = done;
  gw->drain_ud = ud;
  hl_http_server_close(gw->http, (uint64_t)hl_config_int(gw->cfg, "HL_API_DRAIN_TIMEOUT"), drained, gw);
}

hl_api_gw *hl_api_gw_free(hl_api_gw *gw) {
  if (!gw)
    return NULL;
  /* The store first: queries still queued are answered (to orphaned requests after a forced drain). */
  gw->store = hl_api_store_free(gw->store);
  gw->http = hl_http_server_free(gw->http);
  gw->auth = hl_api_auth_free(gw->auth);
  gw->s3 = hl_s3_free(gw->s3);
  if (gw->audit_close)
    close(gw->audit_fd);
  free(gw->rate_tab);
  free(gw->landing_dir);
  free(gw->landing_bucket);
  free(gw->landing_prefix);
  free(gw);
  return NULL;
}
