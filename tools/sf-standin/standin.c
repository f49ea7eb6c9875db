#define _GNU_SOURCE
/*
 * The stand-in's server: routes, key-pair JWT verification, statements
 * with their lifecycle (running, done, failed, cancelled, timed out),
 * result partitions, requestId deduplication, Snowpipe Streaming channels
 * and the /_standin/ control endpoints (faults, counters). See standin.h.
 */
#include "standin.h"

#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <zlib.h>

#include "hl/buf.h"
#include "hl/http.h"
#include "spec.h"
#include "sql.h"

#define SI_MAX_STATEMENTS 4096
#define SI_MAX_FAULTS 32
#define SI_MAX_SCOPED 256
#define SI_MAX_ROWS_BODY (16 * 1024 * 1024)
#define SI_MAX_INFLATED (64 * 1024 * 1024)
#define SI_EXTRA_QUERY "retry"  /* documented by Snowflake, absent from sqlapi.yaml */

#define T_STATEMENTS "/api/v2/statements"
#define T_STATEMENT "/api/v2/statements/{statementHandle}"
#define T_CANCEL "/api/v2/statements/{statementHandle}/cancel"

typedef enum { ST_RUNNING, ST_DONE, ST_FAILED, ST_CANCELLED, ST_TIMEDOUT } st_state;

typedef struct stmt stmt;
typedef struct waiter {
  hl_http_req *req;
  stmt *st;
  uv_timer_t *timer;
  struct waiter *next;
} waiter;

struct stmt {
  sf_standin *owner;
  char handle[37], request_id[40];
  char *sql, *schema;
  json_t *bindings;
  int multi;               /* multi_statement_count, -1 when not a multi-statement request */
  int64_t created_ms;
  long timeout_ms;
  st_state state;
  sf_exec res;
  json_t *children;        /* handles of a multi-statement request */
  uv_timer_t *timer;       /* runs or times out the statement */
  waiter *waiters;
  stmt *next;
};

typedef struct fault {
  char method[8], path[128];
  int status, count, retry_after;
  bool after;              /* POST statements: run the statement, then answer the fault */
} fault;

typedef struct scoped {
  char token[65];
  time_t exp;
} scoped;

struct sf_standin {
  uv_loop_t *loop;
  hl_http_server *http;
  sf_spec *spec;
  sf_sql *sql;
  EVP_PKEY *pub;
  char qualified[512];     /* ACCOUNT.USER */
  char fingerprint[64];    /* SHA256:... */
  int partition_rows;
  long sync_wait_ms, scoped_ttl_s;
  int verbose;
  stmt *stmts;
  size_t nstmts;
  fault faults[SI_MAX_FAULTS];
  int nfaults;
  int unauthorized;        /* next N authenticated requests answer 401 */
  bool ignore_timeouts;    /* statements run past their timeout (tests the client's deadline) */
  long delay_ms;           /* next delay_count statements take this much longer */
  int delay_count;
  scoped tokens[SI_MAX_SCOPED];
  size_t ntokens;
  size_t open_timers;
  bool closing;
  void (*done)(void *);
  void *done_ud;
  struct {
    long long requests, executions, dedup_hits, auth_failures, spec_violations, faults_served, cancels,
        rows_appended, bad_requests;
  } stats;
};

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void uuid4(char out[37]) {
  unsigned char b[16];
  RAND_bytes(b, sizeof b);
  b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
  b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
  snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1], b[2],
           b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
}

static void random_hex(char *out, size_t bytes) {
  unsigned char b[64];
  RAND_bytes(b, (int)bytes);
  for (size_t i = 0; i < bytes; i++)
    snprintf(out + 2 * i, 3, "%02x", b[i]);
}

/* ------------------------------------------------------------------------ */
/* Answers.                                                                  */

static void reply_json(hl_http_req *req, int status, json_t *body, const char *const *extra) {
  char *text = json_dumps(body, JSON_COMPACT);
  const char *headers[12] = {"Content-Type", "application/json"};
  size_t n = 2;
  for (size_t i = 0; extra && extra[i] && n + 2 < 11; i += 2) {
    headers[n++] = extra[i];
    headers[n++] = extra[i + 1];
  }
  headers[n] = NULL;
  hl_http_respond_headers(req, status, headers, text ? text : "{}", text ? strlen(text) : 2);
  free(text);
}

static void reply_error(sf_standin *s, hl_http_req *req, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static void reply_error(sf_standin *s, hl_http_req *req, int status, const char *code, const char *fmt, ...) {
  char msg[600];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (status == 400 || status == 415)
    s->stats.bad_requests++;
  if (s->verbose)
    fprintf(stderr, "sf-standin: %d %s %s: %s\n", status, hl_http_req_method(req), hl_http_req_path(req), msg);
  json_t *b = json_pack("{s:s,s:s}", "code", code, "message", msg);
  reply_json(req, status, b, NULL);
  json_decref(b);
}

/* An answer of the SQL API, checked against the response schema first. */
static void reply_api(sf_standin *s, hl_http_req *req, const char *tmpl, const char *method, int status,
                      json_t *body, const char *const *extra) {
  char err[512];
  if (!sf_spec_check_response(s->spec, tmpl, method, status, body, err, sizeof err)) {
    s->stats.spec_violations++;
    fprintf(stderr, "sf-standin: own answer violates sqlapi.yaml: %s\n", err);
    reply_error(s, req, 500, "000000", "stand-in answer violates the API description: %s", err);
    return;
  }
  reply_json(req, status, body, extra);
}

/* ------------------------------------------------------------------------ */
/* Key-pair JWT.                                                             */

static int b64url_decode(const char *in, size_t n, unsigned char *out, size_t cap, size_t *outlen) {
  if (n > cap)
    return -1;
  char buf[4096];
  size_t m = 0;
  if (n + 4 > sizeof buf)
    return -1;
  for (size_t i = 0; i < n; i++) {
    char c = in[i];
    if (c == '-')
      c = '+';
    else if (c == '_')
      c = '/';
    else if (!isalnum((unsigned char)c))
      return -1;
    buf[m++] = c;
  }
  while (m % 4)
    buf[m++] = '=';
  int pad = (m >= 1 && buf[m - 1] == '=') + (m >= 2 && buf[m - 2] == '=');
  int w = EVP_DecodeBlock(out, (unsigned char *)buf, (int)m);
  if (w < 0)
    return -1;
  *outlen = (size_t)w - (size_t)pad;
  return 0;
}

/* Verifies a key-pair JWT; NULL when valid, else the reason. */
static const char *verify_jwt(sf_standin *s, const char *tok, char *why, size_t whylen) {
  const char *d1 = strchr(tok, '.');
  const char *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
  if (!d1 || !d2 || strchr(d2 + 1, '.'))
    return "not a JWT";
  unsigned char hdr[1024], pl[2048], sig[1024];
  size_t hl, plen, sl;
  if (b64url_decode(tok, (size_t)(d1 - tok), hdr, sizeof hdr - 1, &hl) < 0 ||
      b64url_decode(d1 + 1, (size_t)(d2 - d1 - 1), pl, sizeof pl - 1, &plen) < 0 ||
      b64url_decode(d2 + 1, strlen(d2 + 1), sig, sizeof sig, &sl) < 0)
    return "bad base64url";
  json_t *h = json_loadb((const char *)hdr, hl, 0, NULL);
  json_t *p = json_loadb((const char *)pl, plen, 0, NULL);
  const char *reason = NULL;
  const char *alg = json_string_value(json_object_get(h, "alg"));
  if (!alg || strcmp(alg, "RS256")) {
    reason = "alg must be RS256";
    goto done;
  }
  EVP_MD_CTX *md = EVP_MD_CTX_new();
  int ok = md && EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, s->pub) == 1 &&
           EVP_DigestVerify(md, sig, sl, (const unsigned char *)tok, (size_t)(d2 - tok)) == 1;
  EVP_MD_CTX_free(md);
  ERR_clear_error();
  if (!ok) {
    reason = "signature does not verify with the user's public key";
    goto done;
  }
  const char *iss = json_string_value(json_object_get(p, "iss"));
  const char *sub = json_string_value(json_object_get(p, "sub"));
  json_t *iat = json_object_get(p, "iat"), *exp = json_object_get(p, "exp");
  char want[600];
  snprintf(want, sizeof want, "%s.%s", s->qualified, s->fingerprint);
  time_t now = time(NULL);
  if (!iss || strcmp(iss, want)) {
    snprintf(why, whylen, "iss must be %.500s", want);
    reason = why;
  } else if (!sub || strcmp(sub, s->qualified)) {
    snprintf(why, whylen, "sub must be %s", s->qualified);
    reason = why;
  } else if (!json_is_integer(iat) || !json_is_integer(exp)) {
    reason = "iat and exp must be integers";
  } else if (json_integer_value(exp) <= now) {
    reason = "JWT token has expired";
  } else if (json_integer_value(iat) > now + 60) {
    reason = "iat is in the future";
  } else if (json_integer_value(exp) - json_integer_value(iat) > 3600) {
    reason = "lifetime longer than one hour";
  }
done:
  json_decref(h);
  json_decref(p);
  return reason;
}

typedef enum { AUTH_KEYPAIR, AUTH_SCOPED } auth_kind;

/* 0 when the request is authenticated; otherwise it was answered 401. */
static int authenticate(sf_standin *s, hl_http_req *req, auth_kind kind) {
  const char *auth = hl_http_req_header(req, "Authorization");
  const char *type = hl_http_req_header(req, "X-Snowflake-Authorization-Token-Type");
  char why[600];
  const char *reason = NULL;
  if (s->unauthorized > 0) {
    s->unauthorized--;
    s->stats.faults_served++;
    reason = "token expired (injected)";
  } else if (!auth || strncmp(auth, "Bearer ", 7) || !auth[7]) {
    reason = "missing bearer token";
  } else if (kind == AUTH_KEYPAIR) {
    if (!type || strcmp(type, "KEYPAIR_JWT"))
      reason = "X-Snowflake-Authorization-Token-Type must be KEYPAIR_JWT for a key-pair JWT";
    else
      reason = verify_jwt(s, auth + 7, why, sizeof why);
  } else {
    bool found = false;
    time_t now = time(NULL);
    for (size_t i = 0; i < s->ntokens && !found; i++)
      found = !strcmp(s->tokens[i].token, auth + 7) && s->tokens[i].exp > now;
    if (!found)
      reason = "scoped token unknown or expired";
    else if (type && strcmp(type, "OAUTH"))
      reason = "X-Snowflake-Authorization-Token-Type must be OAUTH for a scoped token";
  }
  if (!reason)
    return 0;
  s->stats.auth_failures++;
  reply_error(s, req, 401, "390144", "JWT token is invalid: %s", reason);
  return -1;
}

/* ------------------------------------------------------------------------ */
/* Statements.                                                               */

static void timer_closed(uv_handle_t *h) {
  sf_standin *s = h->data;
  free(h);
  s->open_timers--;
  if (s->closing && s->open_timers == 0 && s->done && !s->http) {
    void (*done)(void *) = s->done;
    s->done = NULL;
    done(s->done_ud);
  }
}

static void close_timer(sf_standin *s, uv_timer_t **t) {
  if (*t) {
    uv_timer_stop(*t);
    (*t)->data = s;
    uv_close((uv_handle_t *)*t, timer_closed);
    *t = NULL;
  }
}

static uv_timer_t *new_timer(sf_standin *s, void *data) {
  uv_timer_t *t = malloc(sizeof *t);
  if (!t)
    return NULL;
  uv_timer_init(s->loop, t);
  t->data = data;
  s->open_timers++;
  return t;
}

static void status_url(const stmt *st, char *out, size_t cap) {
  snprintf(out, cap, "/api/v2/statements/%s?requestId=%s", st->handle, st->request_id);
}

static size_t npartitions(const sf_standin *s, const stmt *st) {
  size_t rows = json_array_size(st->res.rows);
  return rows == 0 ? 1 : (rows + (size_t)s->partition_rows - 1) / (size_t)s->partition_rows;
}

static json_t *partition_data(const sf_standin *s, const stmt *st, size_t part) {
  json_t *out = json_array();
  size_t from = part * (size_t)s->partition_rows, rows = json_array_size(st->res.rows);
  for (size_t i = from; i < rows && i < from + (size_t)s->partition_rows; i++)
    json_array_append(out, json_array_get(st->res.rows, i));
  return out;
}

/* Link header of a result: first, prev, next and last partitions. */
static void link_header(const stmt *st, size_t part, size_t nparts, char *out, size_t cap) {
  size_t o = 0;
  struct {
    const char *rel;
    long p;
  } links[] = {{"first", 0}, {"prev", (long)part - 1}, {"next", (long)part + 1}, {"last", (long)nparts - 1}};
  for (size_t i = 0; i < 4; i++) {
    if (links[i].p < 0 || links[i].p >= (long)nparts)
      continue;
    int n = snprintf(out + o, cap - o, "%s</api/v2/statements/%s?requestId=%s&partition=%ld>; rel=\"%s\"",
                     o ? "," : "", st->handle, st->request_id, links[i].p, links[i].rel);
    if (n < 0 || (size_t)n >= cap - o)
      break;
    o += (size_t)n;
  }
}

/* Answers the current state of st: 200 (partition part), 202, 408 or 422. */
static void reply_statement(sf_standin *s, hl_http_req *req, stmt *st, const char *tmpl, const char *method,
                            size_t part) {
  char url[256];
  status_url(st, url, sizeof url);
  json_t *b = NULL;
  int status;
  char link[1024] = "";
  switch (st->state) {
  case ST_RUNNING:
    status = 202;
    b = json_pack("{s:s,s:s,s:s,s:s,s:I}", "code", "333334", "message",
                  "Asynchronous execution in progress. Use provided query id to perform query monitoring and "
                  "management.",
                  "statementHandle", st->handle, "statementStatusUrl", url, "createdOn", (json_int_t)st->created_ms);
    break;
  case ST_TIMEDOUT:
    /* sqlapi.yaml documents 408 for the submission only; a later GET reports 422. */
    status = strcmp(method, "post") ? 422 : 408;
    b = json_pack("{s:s,s:s,s:s,s:s,s:s,s:I}", "code", "000630", "sqlState", "57014", "message",
                  "Statement reached its statement or warehouse timeout and was canceled.", "statementHandle",
                  st->handle, "statementStatusUrl", url, "createdOn", (json_int_t)st->created_ms);
    break;
  case ST_CANCELLED:
  case ST_FAILED:
    status = 422;
    b = json_pack("{s:s,s:s,s:s,s:s,s:s,s:I}", "code", st->state == ST_CANCELLED ? "000604" : st->res.code,
                  "sqlState", st->state == ST_CANCELLED ? "57014" : st->res.sql_state, "message",
                  st->state == ST_CANCELLED ? "SQL execution canceled" : st->res.message, "statementHandle",
                  st->handle, "statementStatusUrl", url, "createdOn", (json_int_t)st->created_ms);
    break;
  case ST_DONE:
  default: {
    size_t np = npartitions(s, st);
    if (part >= np) {
      reply_error(s, req, 400, "000001", "partition %zu does not exist (0..%zu)", part, np - 1);
      return;
    }
    status = 200;
    link_header(st, part, np, link, sizeof link);
    if (part > 0) {
      b = json_pack("{s:o}", "data", partition_data(s, st, part));
      break;
    }
    json_t *pinfo = json_array();
    for (size_t i = 0; i < np; i++) {
      json_t *d = partition_data(s, st, i);
      char *txt = json_dumps(d, JSON_COMPACT);
      json_array_append_new(pinfo, json_pack("{s:I,s:I}", "rowCount", (json_int_t)json_array_size(d),
                                             "uncompressedSize", (json_int_t)(txt ? strlen(txt) : 0)));
      free(txt);
      json_decref(d);
    }
    json_t *meta = json_pack("{s:I,s:s,s:O,s:o,s:b}", "numRows", (json_int_t)json_array_size(st->res.rows),
                             "format", "jsonv2", "rowType", st->res.row_type, "partitionInfo", pinfo,
                             "nullable", 1);
    b = json_pack("{s:o,s:o,s:s,s:s,s:s,s:s,s:s,s:I}", "resultSetMetaData", meta, "data",
                  partition_data(s, st, 0), "code", "090001", "statementStatusUrl", url, "sqlState", "00000",
                  "statementHandle", st->handle, "message", "Statement executed successfully.", "createdOn",
                  (json_int_t)st->created_ms);
    if (st->res.stats)
      json_object_set(b, "stats", st->res.stats);
    if (st->children)
      json_object_set(b, "statementHandles", st->children);
  }
  }
  const char *extra[] = {"Link", link, NULL};
  reply_api(s, req, tmpl, method, status, b, link[0] ? extra : NULL);
  json_decref(b);
}

static void finish_waiters(sf_standin *s, stmt *st) {
  while (st->waiters) {
    waiter *w = st->waiters;
    st->waiters = w->next;
    close_timer(s, &w->timer);
    reply_statement(s, w->req, st, T_STATEMENTS, "post", 0);
    free(w);
  }
}

static stmt *find_handle(sf_standin *s, const char *h) {
  for (stmt *st = s->stmts; st; st = st->next)
    if (!strcmp(st->handle, h))
      return st;
  return NULL;
}

static stmt *find_request(sf_standin *s, const char *rid) {
  for (stmt *st = s->stmts; st; st = st->next)
    if (!strcmp(st->request_id, rid))
      return st;
  return NULL;
}

static stmt *register_child(sf_standin *s, const stmt *parent, const char *sql, sf_exec *res);

/* Runs st's SQL now (once, ever). */
static void execute(sf_standin *s, stmt *st) {
  s->stats.executions++;
  if (st->multi < 0) {
    sf_sql_exec(s->sql, st->schema, st->sql, st->bindings, false, &st->res);
    st->state = st->res.failed ? ST_FAILED : ST_DONE;
    return;
  }
  json_t *parts = sf_sql_split(st->sql);
  size_t n = json_array_size(parts);
  if (st->multi > 0 && n != (size_t)st->multi) {
    st->res.failed = true;
    snprintf(st->res.code, sizeof st->res.code, "000008");
    snprintf(st->res.sql_state, sizeof st->res.sql_state, "0A000");
    snprintf(st->res.message, sizeof st->res.message,
             "Actual statement count %zu did not match the desired statement count %d.", n, st->multi);
    st->state = ST_FAILED;
    json_decref(parts);
    return;
  }
  st->children = json_array();
  for (size_t i = 0; i < n; i++) {
    sf_exec r;
    sf_sql_exec(s->sql, st->schema, json_string_value(json_array_get(parts, i)), NULL, true, &r);
    stmt *child = register_child(s, st, json_string_value(json_array_get(parts, i)), &r);
    if (child)
      json_array_append_new(st->children, json_string(child->handle));
    if (r.failed || !child) {
      /* A failing statement stops the request; an open transaction is rolled back. */
      st->res.failed = true;
      snprintf(st->res.code, sizeof st->res.code, "%s", child ? child->res.code : "100000");
      snprintf(st->res.sql_state, sizeof st->res.sql_state, "%s", child ? child->res.sql_state : "22000");
      snprintf(st->res.message, sizeof st->res.message, "%s", child ? child->res.message : "out of memory");
      if (!sqlite3_get_autocommit(sf_sql_db(s->sql)))
        sqlite3_exec(sf_sql_db(s->sql), "ROLLBACK", NULL, NULL, NULL);
      st->state = ST_FAILED;
      if (!child)
        sf_exec_clear(&r);
      json_decref(parts);
      return;
    }
  }
  json_decref(parts);
  st->res.row_type = json_pack("[{s:s,s:s,s:i,s:i,s:i,s:b}]", "name", "multiple statement execution", "type",
                               "text", "length", 16777216, "precision", 0, "scale", 0, "nullable", 0);
  st->res.rows = json_pack("[[s]]", "Multiple statements executed successfully.");
  st->state = ST_DONE;
}

static void free_stmt(sf_standin *s, stmt *st) {
  close_timer(s, &st->timer);
  free(st->sql);
  free(st->schema);
  json_decref(st->bindings);
  json_decref(st->children);
  sf_exec_clear(&st->res);
  free(st);
}

/* Keeps at most SI_MAX_STATEMENTS: the oldest finished ones go first. */
static void evict(sf_standin *s) {
  while (s->nstmts >= SI_MAX_STATEMENTS) {
    stmt **pp = &s->stmts, **victim = NULL;
    for (; *pp; pp = &(*pp)->next)
      if ((*pp)->state != ST_RUNNING && !(*pp)->waiters)
        victim = pp; /* the list is newest first: the last match is the oldest */
    if (!victim)
      return;
    stmt *v = *victim;
    *victim = v->next;
    free_stmt(s, v);
    s->nstmts--;
  }
}

static stmt *new_stmt(sf_standin *s, const char *rid, const char *sql, const char *schema) {
  evict(s);
  stmt *st = calloc(1, sizeof *st);
  if (!st)
    return NULL;
  st->owner = s;
  uuid4(st->handle);
  snprintf(st->request_id, sizeof st->request_id, "%s", rid);
  st->sql = strdup(sql ? sql : "");
  st->schema = strdup(schema ? schema : "PUBLIC");
  st->created_ms = now_ms();
  st->multi = -1;
  if (!st->sql || !st->schema) {
    free(st->sql);
    free(st->schema);
    free(st);
    return NULL;
  }
  st->next = s->stmts;
  s->stmts = st;
  s->nstmts++;
  return st;
}

static stmt *register_child(sf_standin *s, const stmt *parent, const char *sql, sf_exec *res) {
  char rid[37];
  uuid4(rid);
  stmt *c = new_stmt(s, rid, sql, parent->schema);
  if (!c)
    return NULL;
  c->res = *res;
  c->state = res->failed ? ST_FAILED : ST_DONE;
  return c;
}

static void stmt_timer(uv_timer_t *t) {
  stmt *st = t->data;
  sf_standin *s = st->owner;
  close_timer(s, &st->timer);
  if (st->state != ST_RUNNING)
    return;
  int64_t ran = now_ms() - st->created_ms;
  if (st->timeout_ms > 0 && ran >= st->timeout_ms - 5 && !s->ignore_timeouts) {
    st->state = ST_TIMEDOUT; /* never executed: cancelled at its timeout */
  } else {
    execute(s, st);
  }
  finish_waiters(s, st);
}

static void waiter_timer(uv_timer_t *t) {
  waiter *w = t->data;
  stmt *st = w->st;
  sf_standin *s = st->owner;
  for (waiter **pp = &st->waiters; *pp; pp = &(*pp)->next)
    if (*pp == w) {
      *pp = w->next;
      break;
    }
  close_timer(s, &w->timer);
  reply_statement(s, w->req, st, T_STATEMENTS, "post", 0);
  free(w);
}

/* A POST waits up to sync_wait_ms for its statement, then answers 202. */
static void hold(sf_standin *s, hl_http_req *req, stmt *st) {
  waiter *w = calloc(1, sizeof *w);
  if (!w || !(w->timer = new_timer(s, w))) {
    free(w);
    reply_statement(s, req, st, T_STATEMENTS, "post", 0);
    return;
  }
  w->req = req;
  w->st = st;
  w->next = st->waiters;
  st->waiters = w;
  uv_timer_start(w->timer, waiter_timer, (uint64_t)s->sync_wait_ms, 0);
}

static const char *req_header(void *ud, const char *name) {
  return hl_http_req_header(ud, name);
}

static bool query_flag(const char *query, const char *name) {
  char pat[64];
  snprintf(pat, sizeof pat, "%s=true", name);
  for (const char *p = query; p && *p;) {
    if (!strncmp(p, pat, strlen(pat)) && (p[strlen(pat)] == '&' || !p[strlen(pat)]))
      return true;
    p = strchr(p, '&');
    p = p ? p + 1 : NULL;
  }
  return false;
}

static bool query_value(const char *query, const char *name, char *out, size_t cap) {
  size_t n = strlen(name);
  for (const char *p = query; p && *p;) {
    const char *amp = strchr(p, '&');
    size_t len = amp ? (size_t)(amp - p) : strlen(p);
    if (len > n && !strncmp(p, name, n) && p[n] == '=') {
      size_t o = 0;
      for (size_t i = n + 1; i < len && o + 1 < cap; i++) {
        if (p[i] == '%' && i + 2 < len && isxdigit((unsigned char)p[i + 1]) && isxdigit((unsigned char)p[i + 2])) {
          char hex[3] = {p[i + 1], p[i + 2], 0};
          out[o++] = (char)strtol(hex, NULL, 16);
          i += 2;
        } else {
          out[o++] = p[i] == '+' ? ' ' : p[i];
        }
      }
      out[o] = '\0';
      return true;
    }
    p = amp ? amp + 1 : NULL;
  }
  return false;
}

static bool valid_bindings(json_t *b, char *err, size_t errlen) {
  static const char *const types[] = {"TEXT", "FIXED", "REAL", "BOOLEAN", "DATE", "TIME", "TIMESTAMP_NTZ",
                                      "TIMESTAMP_LTZ", "TIMESTAMP_TZ", "BINARY"};
  const char *k;
  json_t *v;
  json_object_foreach(b, k, v) {
    char *end;
    long idx = strtol(k, &end, 10);
    const char *type = json_string_value(json_object_get(v, "type"));
    json_t *val = json_object_get(v, "value");
    bool known = false;
    for (size_t i = 0; type && i < sizeof types / sizeof *types; i++)
      known |= !strcmp(type, types[i]);
    if (!*k || *end || idx < 1 || !json_is_object(v) || !known) {
      snprintf(err, errlen, "binding %s: needs a positive index, a known type and a value", k);
      return false;
    }
    if (json_is_array(val)) {
      for (size_t i = 0; i < json_array_size(val); i++)
        if (!json_is_string(json_array_get(val, i)) && !json_is_null(json_array_get(val, i))) {
          snprintf(err, errlen, "binding %s: array values must be strings or null", k);
          return false;
        }
    } else if (!json_is_string(val) && !json_is_null(val)) {
      snprintf(err, errlen, "binding %s: the value must be a string, null or an array of them", k);
      return false;
    }
  }
  return true;
}

static fault *take_fault(sf_standin *s, const char *method, const char *path, bool after) {
  for (int i = 0; i < s->nfaults; i++) {
    fault *f = &s->faults[i];
    if (f->count <= 0 || f->after != after)
      continue;
    if (f->method[0] && strcasecmp(f->method, method))
      continue;
    if (f->path[0] && strncmp(path, f->path, strlen(f->path)))
      continue;
    f->count--;
    s->stats.faults_served++;
    return f;
  }
  return NULL;
}

static void reply_fault(sf_standin *s, hl_http_req *req, const fault *f) {
  char ra[16];
  snprintf(ra, sizeof ra, "%d", f->retry_after);
  const char *extra[] = {"Retry-After", ra, NULL};
  json_t *b = json_pack("{s:s,s:s}", "code", "000000", "message",
                        f->status == 429 ? "Too many requests (injected)" : "Service unavailable (injected)");
  reply_json(req, f->status, b, f->retry_after > 0 ? extra : NULL);
  json_decref(b);
}

static void submit(sf_standin *s, hl_http_req *req) {
  const char *query = hl_http_req_query(req);
  size_t blen;
  const char *btext = hl_http_req_body(req, &blen);
  json_t *body = blen ? json_loadb(btext, blen, 0, NULL) : NULL;
  char err[512];
  if (blen && !body) {
    reply_error(s, req, 400, "000001", "the body is not JSON");
    return;
  }
  int status = sf_spec_check_request(s->spec, T_STATEMENTS, "post", query, NULL, req_header, req,
                                     hl_http_req_header(req, "Content-Type"), body, SI_EXTRA_QUERY, err,
                                     sizeof err);
  if (status == 0 && !json_is_string(json_object_get(body, "statement"))) {
    status = 400;
    snprintf(err, sizeof err, "body.statement is required");
  }
  json_t *bindings = json_object_get(body, "bindings");
  if (status == 0 && bindings && !valid_bindings(bindings, err, sizeof err))
    status = 400;
  if (status) {
    json_decref(body);
    reply_error(s, req, status, "000001", "%s", err);
    return;
  }
  char rid[64];
  if (!query_value(query, "requestId", rid, sizeof rid))
    uuid4(rid);
  bool retry = query_flag(query, "retry");
  stmt *st = find_request(s, rid);
  if (st) {
    if (!retry) {
      json_decref(body);
      reply_error(s, req, 400, "000001", "requestId %s was already used; resubmit it with retry=true", rid);
      return;
    }
    s->stats.dedup_hits++;
    json_decref(body);
    if (st->state == ST_RUNNING && !query_flag(query, "async"))
      hold(s, req, st);
    else
      reply_statement(s, req, st, T_STATEMENTS, "post", 0);
    return;
  }
  const char *sql = json_string_value(json_object_get(body, "statement"));
  const char *schema = json_string_value(json_object_get(body, "schema"));
  st = new_stmt(s, rid, sql, schema);
  if (!st) {
    json_decref(body);
    reply_error(s, req, 503, "000000", "out of memory");
    return;
  }
  st->bindings = json_incref(bindings);
  json_t *params = json_object_get(body, "parameters");
  json_t *msc = json_object_get(params, "multi_statement_count");
  if (json_is_integer(msc))
    st->multi = (int)json_integer_value(msc);
  json_t *tmo = json_object_get(body, "timeout");
  st->timeout_ms = json_is_integer(tmo) && json_integer_value(tmo) > 0 ? (long)json_integer_value(tmo) * 1000
                                                                       : 604800000L;
  json_decref(body);
  double wait_s = sf_sql_wait_seconds(st->sql);
  long delay = wait_s > 0 ? (long)(wait_s * 1000) : 0;
  if (s->delay_count > 0) {
    s->delay_count--;
    delay += s->delay_ms;
  }
  if (delay > 0) {
    /* The statement "runs" for delay ms: it executes then, or times out first. */
    if (!(st->timer = new_timer(s, st))) {
      execute(s, st);
    } else {
      long at = delay < st->timeout_ms || s->ignore_timeouts ? delay : st->timeout_ms;
      uv_timer_start(st->timer, stmt_timer, (uint64_t)at, 0);
    }
  } else {
    execute(s, st);
  }
  fault *f = take_fault(s, "POST", T_STATEMENTS, true);
  if (f) {
    reply_fault(s, req, f); /* it ran (or runs); the answer is lost */
    return;
  }
  if (query_flag(query, "async")) {
    /* async=true: the handle at once, whatever the state. */
    st_state real = st->state;
    st->state = ST_RUNNING;
    reply_statement(s, req, st, T_STATEMENTS, "post", 0);
    st->state = real;
  } else if (st->state == ST_RUNNING) {
    hold(s, req, st);
  } else {
    reply_statement(s, req, st, T_STATEMENTS, "post", 0);
  }
}

static void get_statement(sf_standin *s, hl_http_req *req, const char *handle, bool cancel) {
  const char *query = hl_http_req_query(req);
  const char *pp[] = {"statementHandle", handle, NULL};
  char err[512];
  size_t blen;
  hl_http_req_body(req, &blen);
  int status = sf_spec_check_request(s->spec, cancel ? T_CANCEL : T_STATEMENT, cancel ? "post" : "get", query, pp,
                                     req_header, req, NULL, NULL, SI_EXTRA_QUERY, err, sizeof err);
  if (status) {
    reply_error(s, req, status, "000001", "%s", err);
    return;
  }
  stmt *st = find_handle(s, handle);
  if (!st) {
    reply_error(s, req, 404, "000709", "Statement %s not found", handle);
    return;
  }
  if (cancel) {
    s->stats.cancels++;
    if (st->state == ST_RUNNING) {
      close_timer(s, &st->timer);
      st->state = ST_CANCELLED;
      finish_waiters(s, st);
    }
    char url[256];
    status_url(st, url, sizeof url);
    json_t *b = json_pack("{s:s,s:s,s:s,s:s}", "code", "000000", "message", "successfully canceled",
                          "statementHandle", st->handle, "statementStatusUrl", url);
    reply_api(s, req, T_CANCEL, "post", 200, b, NULL);
    json_decref(b);
    return;
  }
  char part[32];
  size_t pn = 0;
  if (query_value(query, "partition", part, sizeof part))
    pn = (size_t)strtoull(part, NULL, 10);
  reply_statement(s, req, st, T_STATEMENT, "get", pn);
}

/* ------------------------------------------------------------------------ */
/* Snowpipe Streaming.                                                       */

typedef struct chan_key {
  char db[256], schema[256], pipe[256], channel[256];
} chan_key;

static json_t *channel_status(sf_standin *s, const chan_key *k) {
  sqlite3_stmt *q;
  json_t *out = NULL;
  if (sqlite3_prepare_v2(sf_sql_db(s->sql),
                         "SELECT committed, rows_inserted, created_ms FROM _standin_channels WHERE db = ?1 AND "
                         "schema_name = ?2 AND pipe = ?3 AND channel = ?4",
                         -1, &q, NULL) != SQLITE_OK)
    return NULL;
  sqlite3_bind_text(q, 1, k->db, -1, SQLITE_TRANSIENT);
  sqlite3_bind_text(q, 2, k->schema, -1, SQLITE_TRANSIENT);
  sqlite3_bind_text(q, 3, k->pipe, -1, SQLITE_TRANSIENT);
  sqlite3_bind_text(q, 4, k->channel, -1, SQLITE_TRANSIENT);
  if (sqlite3_step(q) == SQLITE_ROW) {
    const char *committed = (const char *)sqlite3_column_text(q, 0);
    out = json_pack("{s:s,s:s,s:s,s:s,s:s,s:o,s:I,s:I,s:I,s:I}", "database_name", k->db, "schema_name", k->schema,
                    "pipe_name", k->pipe, "channel_name", k->channel, "channel_status_code", "SUCCESS",
                    "last_committed_offset_token", committed ? json_string(committed) : json_null(),
                    "created_on_ms", (json_int_t)sqlite3_column_int64(q, 2), "rows_inserted_count",
                    (json_int_t)sqlite3_column_int64(q, 1), "rows_parsed_count",
                    (json_int_t)sqlite3_column_int64(q, 1), "rows_error_count", (json_int_t)0);
  }
  sqlite3_finalize(q);
  return out;
}

/* Splits /v2/streaming/[data/]databases/D/schemas/S/pipes/P[/channels/C[/rows]] */
static bool parse_stream_path(const char *path, bool data, chan_key *k, const char **rest) {
  const char *p = path + strlen(data ? "/v2/streaming/data/databases/" : "/v2/streaming/databases/");
  char *fields[4] = {k->db, k->schema, k->pipe, k->channel};
  static const char *const seps[] = {"/schemas/", "/pipes/", "/channels/"};
  memset(k, 0, sizeof *k);
  for (int i = 0; i < 4; i++) {
    const char *end = i < 3 ? strstr(p, seps[i]) : NULL;
    const char *stop = end ? end : p + strcspn(p, "/:");
    if (i == 3)
      stop = p + strcspn(p, "/");
    size_t n = (size_t)(stop - p);
    if (n == 0 || n > 255)
      return false;
    memcpy(fields[i], p, n);
    fields[i][n] = '\0';
    if (i < 3 && !end) {
      *rest = stop;
      return i == 2;
    }
    p = end ? end + strlen(seps[i]) : stop;
    if (i == 3)
      *rest = stop;
  }
  return true;
}

static void new_continuation(long long seq, char out[64]) {
  char r[33];
  random_hex(r, 16);
  snprintf(out, 64, "%lld_%s", seq, r);
}

static void open_channel(sf_standin *s, hl_http_req *req, const chan_key *k) {
  char *table = sf_sql_pipe_table(s->sql, k->schema, k->pipe);
  if (!table || !sf_sql_table_exists(s->sql, k->schema, table)) {
    free(table);
    reply_error(s, req, 404, "ERR_PIPE_DOES_NOT_EXIST_OR_NOT_AUTHORIZED", "pipe %s.%s.%s does not exist", k->db,
                k->schema, k->pipe);
    return;
  }
  free(table);
  sqlite3 *db = sf_sql_db(s->sql);
  sqlite3_stmt *q;
  char cont[64];
  long long seq = 1;
  if (sqlite3_prepare_v2(db, "SELECT sequencer FROM _standin_channels WHERE db=?1 AND schema_name=?2 AND pipe=?3 AND channel=?4",
                         -1, &q, NULL) == SQLITE_OK) {
    sqlite3_bind_text(q, 1, k->db, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(q, 2, k->schema, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(q, 3, k->pipe, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(q, 4, k->channel, -1, SQLITE_TRANSIENT);
    if (sqlite3_step(q) == SQLITE_ROW)
      seq = sqlite3_column_int64(q, 0) + 1;
  }
  sqlite3_finalize(q);
  new_continuation(seq, cont);
  int rc = sqlite3_prepare_v2(db,
                              "INSERT INTO _standin_channels(db, schema_name, pipe, channel, sequencer, continuation,"
                              " created_ms) VALUES(?1,?2,?3,?4,?5,?6,?7) ON CONFLICT(db, schema_name, pipe, channel)"
                              " DO UPDATE SET sequencer = excluded.sequencer, continuation = excluded.continuation",
                              -1, &q, NULL);
  if (rc == SQLITE_OK) {
    sqlite3_bind_text(q, 1, k->db, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(q, 2, k->schema, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(q, 3, k->pipe, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(q, 4, k->channel, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(q, 5, seq);
    sqlite3_bind_text(q, 6, cont, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(q, 7, now_ms());
    rc = sqlite3_step(q) == SQLITE_DONE ? SQLITE_OK : SQLITE_ERROR;
  }
  sqlite3_finalize(q);
  if (rc != SQLITE_OK) {
    reply_error(s, req, 500, "ERR_INTERNAL", "%s", sqlite3_errmsg(db));
    return;
  }
  json_t *b = json_pack("{s:s,s:o}", "next_continuation_token", cont, "channel_status", channel_status(s, k));
  reply_json(req, 200, b, NULL);
  json_decref(b);
}

static int inflate_gzip(const char *in, size_t len, hl_buf *out) {
  z_stream z = {0};
  if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK)
    return -1;
  z.next_in = (Bytef *)in;
  z.avail_in = (uInt)len;
  int zrc = Z_OK;
  while (zrc != Z_STREAM_END) {
    if (hl_buf_reserve(out, 65536) < 0) {
      inflateEnd(&z);
      return -1;
    }
    z.next_out = (Bytef *)out->data + out->len;
    z.avail_out = 65536;
    zrc = inflate(&z, Z_NO_FLUSH);
    if (zrc != Z_OK && zrc != Z_STREAM_END) {
      inflateEnd(&z);
      return -1;
    }
    out->len = z.total_out;
    out->data[out->len] = '\0';
    if (zrc == Z_OK && z.avail_in == 0 && z.avail_out != 0)
      break; /* truncated input */
  }
  inflateEnd(&z);
  return zrc == Z_STREAM_END ? 0 : -1;
}

/* Inserts one NDJSON row into schema.table; 0 or an error message in err. */
static int insert_row(sqlite3 *db, const char *schema, const char *table, json_t *row, char *err, size_t errlen) {
  hl_buf sql;
  hl_buf_init(&sql, 1 << 20);
  const char *k;
  json_t *v;
  int rc = 0;
  char *head = sqlite3_mprintf("INSERT INTO \"%w\".\"%w\"(", strcasecmp(schema, "PUBLIC") ? schema : "main", table);
  hl_buf_puts(&sql, head);
  sqlite3_free(head);
  size_t n = 0;
  json_object_foreach(row, k, v) {
    char *col = sqlite3_mprintf("%s\"%w\"", n ? "," : "", k);
    hl_buf_puts(&sql, col);
    sqlite3_free(col);
    n++;
  }
  hl_buf_puts(&sql, ") VALUES(");
  for (size_t i = 0; i < n; i++)
    hl_buf_puts(&sql, i ? ",?" : "?");
  if (hl_buf_puts(&sql, ")") < 0 || n == 0) {
    snprintf(err, errlen, "row has no columns");
    hl_buf_free(&sql);
    return -1;
  }
  sqlite3_stmt *q;
  if (sqlite3_prepare_v2(db, sql.data, -1, &q, NULL) != SQLITE_OK) {
    snprintf(err, errlen, "%s", sqlite3_errmsg(db));
    hl_buf_free(&sql);
    return -1;
  }
  int i = 1;
  json_object_foreach(row, k, v) {
    if (json_is_null(v))
      sqlite3_bind_null(q, i);
    else if (json_is_string(v))
      sqlite3_bind_text(q, i, json_string_value(v), (int)json_string_length(v), SQLITE_TRANSIENT);
    else if (json_is_integer(v))
      sqlite3_bind_int64(q, i, json_integer_value(v));
    else if (json_is_real(v))
      sqlite3_bind_double(q, i, json_real_value(v));
    else if (json_is_boolean(v))
      sqlite3_bind_int(q, i, json_is_true(v));
    else {
      char *t = json_dumps(v, JSON_COMPACT);
      sqlite3_bind_text(q, i, t ? t : "null", -1, SQLITE_TRANSIENT);
      free(t);
    }
    i++;
  }
  if (sqlite3_step(q) != SQLITE_DONE) {
    snprintf(err, errlen, "%s", sqlite3_errmsg(db));
    rc = -1;
  }
  sqlite3_finalize(q);
  hl_buf_free(&sql);
  return rc;
}

static void append_rows(sf_standin *s, hl_http_req *req, const chan_key *k) {
  const char *query = hl_http_req_query(req);
  char cont[256], offset[1024];
  bool has_offset = query_value(query, "offsetToken", offset, sizeof offset);
  const char *ct = hl_http_req_header(req, "Content-Type");
  if (!query_value(query, "continuationToken", cont, sizeof cont)) {
    reply_error(s, req, 400, "ERR_CONTINUATION_TOKEN_MISSING", "continuationToken is required");
    return;
  }
  if (!ct || strncasecmp(ct, "application/x-ndjson", 20)) {
    reply_error(s, req, 415, "ERR_UNSUPPORTED_MEDIA_TYPE", "rows are sent as application/x-ndjson");
    return;
  }
  sqlite3 *db = sf_sql_db(s->sql);
  sqlite3_stmt *q;
  char current[64] = "";
  long long seq = 0;
  if (sqlite3_prepare_v2(db, "SELECT continuation, sequencer FROM _standin_channels WHERE db=?1 AND schema_name=?2 "
                             "AND pipe=?3 AND channel=?4", -1, &q, NULL) == SQLITE_OK) {
    sqlite3_bind_text(q, 1, k->db, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(q, 2, k->schema, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(q, 3, k->pipe, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(q, 4, k->channel, -1, SQLITE_TRANSIENT);
    if (sqlite3_step(q) == SQLITE_ROW) {
      snprintf(current, sizeof current, "%s", (const char *)sqlite3_column_text(q, 0));
      seq = sqlite3_column_int64(q, 1);
    }
  }
  sqlite3_finalize(q);
  if (!current[0]) {
    reply_error(s, req, 404, "ERR_CHANNEL_DOES_NOT_EXIST_OR_IS_NOT_AUTHORIZED", "channel %s is not open",
                k->channel);
    return;
  }
  if (strcmp(current, cont)) {
    reply_error(s, req, 400, "STALE_CONTINUATION_TOKEN_SEQUENCER",
                "the continuation token is stale (the channel was reopened or a request was replayed)");
    return;
  }
  size_t blen;
  const char *body = hl_http_req_body(req, &blen);
  hl_buf plain;
  hl_buf_init(&plain, SI_MAX_INFLATED);
  const char *enc = hl_http_req_header(req, "Content-Encoding");
  if (enc && !strcasecmp(enc, "gzip")) {
    if (inflate_gzip(body, blen, &plain) < 0) {
      hl_buf_free(&plain);
      reply_error(s, req, 400, "ERR_INVALID_PAYLOAD", "the body is not valid gzip");
      return;
    }
    body = plain.data;
    blen = plain.len;
  } else if (enc && strcasecmp(enc, "identity")) {
    hl_buf_free(&plain);
    reply_error(s, req, 415, "ERR_UNSUPPORTED_ENCODING", "Content-Encoding %s is not supported", enc);
    return;
  }
  char *table = sf_sql_pipe_table(s->sql, k->schema, k->pipe);
  char err[512] = "";
  long long n = 0, line = 0;
  sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
  for (const char *p = body; table && p < body + blen && !err[0];) {
    const char *nl = memchr(p, '\n', (size_t)(body + blen - p));
    size_t len = nl ? (size_t)(nl - p) : (size_t)(body + blen - p);
    line++;
    if (len && strspn(p, " \t\r") < len) {
      json_t *row = json_loadb(p, len, 0, NULL);
      if (!json_is_object(row))
        snprintf(err, sizeof err, "line %lld is not a JSON object", line);
      else if (insert_row(db, k->schema, table, row, err, sizeof err) == 0)
        n++;
      json_decref(row);
    }
    p += len + 1;
  }
  char next[64];
  new_continuation(seq, next);
  if (!table)
    snprintf(err, sizeof err, "pipe %s has no table", k->pipe);
  if (!err[0] && sqlite3_prepare_v2(db, "UPDATE _standin_channels SET continuation=?1, committed=CASE WHEN ?2 THEN ?3"
                                        " ELSE committed END, rows_inserted=rows_inserted+?4 WHERE db=?5 AND "
                                        "schema_name=?6 AND pipe=?7 AND channel=?8", -1, &q, NULL) == SQLITE_OK) {
    sqlite3_bind_text(q, 1, next, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(q, 2, has_offset);
    sqlite3_bind_text(q, 3, offset, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(q, 4, n);
    sqlite3_bind_text(q, 5, k->db, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(q, 6, k->schema, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(q, 7, k->pipe, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(q, 8, k->channel, -1, SQLITE_TRANSIENT);
    if (sqlite3_step(q) != SQLITE_DONE)
      snprintf(err, sizeof err, "%s", sqlite3_errmsg(db));
    sqlite3_finalize(q);
  }
  free(table);
  hl_buf_free(&plain);
  if (err[0]) {
    sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    reply_error(s, req, 400, "ERR_INVALID_ROWS", "no row was taken: %s", err);
    return;
  }
  sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
  s->stats.rows_appended += n;
  json_t *b = json_pack("{s:s}", "next_continuation_token", next);
  reply_json(req, 200, b, NULL);
  json_decref(b);
}

static void bulk_status(sf_standin *s, hl_http_req *req, const chan_key *k) {
  size_t blen;
  const char *body = hl_http_req_body(req, &blen);
  json_t *j = json_loadb(body, blen, 0, NULL);
  json_t *names = json_object_get(j, "channel_names");
  if (!json_is_array(names)) {
    json_decref(j);
    reply_error(s, req, 400, "ERR_INVALID_REQUEST", "channel_names (an array) is required");
    return;
  }
  json_t *out = json_object();
  for (size_t i = 0; i < json_array_size(names); i++) {
    const char *n = json_string_value(json_array_get(names, i));
    if (!n || strlen(n) > 255)
      continue;
    chan_key ck = *k;
    snprintf(ck.channel, sizeof ck.channel, "%s", n);
    json_t *st = channel_status(s, &ck);
    if (st)
      json_object_set_new(out, n, st);
  }
  json_decref(j);
  json_t *b = json_pack("{s:o}", "channel_statuses", out);
  reply_json(req, 200, b, NULL);
  json_decref(b);
}

static void oauth_token(sf_standin *s, hl_http_req *req) {
  size_t blen;
  const char *body = hl_http_req_body(req, &blen);
  const char *ct = hl_http_req_header(req, "Content-Type");
  char grant[256] = "", scope[256] = "";
  if (!ct || strncasecmp(ct, "application/x-www-form-urlencoded", 33)) {
    reply_error(s, req, 400, "invalid_request", "Content-Type must be application/x-www-form-urlencoded");
    return;
  }
  query_value(body, "grant_type", grant, sizeof grant);
  query_value(body, "scope", scope, sizeof scope);
  char host[64];
  snprintf(host, sizeof host, "127.0.0.1:%d", hl_http_server_port(s->http));
  if (strcmp(grant, "urn:ietf:params:oauth:grant-type:jwt-bearer")) {
    reply_error(s, req, 400, "unsupported_grant_type", "grant_type must be urn:ietf:params:oauth:grant-type:jwt-bearer");
    return;
  }
  if (strcmp(scope, host)) {
    reply_error(s, req, 400, "invalid_scope", "scope must be the ingest hostname %s", host);
    return;
  }
  scoped *t = NULL;
  time_t now = time(NULL);
  for (size_t i = 0; i < s->ntokens && !t; i++)
    if (s->tokens[i].exp <= now)
      t = &s->tokens[i];
  if (!t)
    t = s->ntokens < SI_MAX_SCOPED ? &s->tokens[s->ntokens++] : &s->tokens[0];
  random_hex(t->token, 32);
  t->exp = now + s->scoped_ttl_s;
  json_t *b = json_pack("{s:s}", "token", t->token);
  reply_json(req, 200, b, NULL);
  json_decref(b);
}

/* ------------------------------------------------------------------------ */
/* Control endpoints.                                                        */

static void control(sf_standin *s, hl_http_req *req, const char *path, const char *method) {
  if (!strcmp(path, "/_standin/stats") && !strcmp(method, "GET")) {
    json_t *b = json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "requests", s->stats.requests,
                          "executions", s->stats.executions, "dedup_hits", s->stats.dedup_hits,
                          "auth_failures", s->stats.auth_failures, "spec_violations", s->stats.spec_violations,
                          "faults_served", s->stats.faults_served, "cancels", s->stats.cancels,
                          "rows_appended", s->stats.rows_appended, "bad_requests", s->stats.bad_requests,
                          "statements", (json_int_t)s->nstmts);
    reply_json(req, 200, b, NULL);
    json_decref(b);
    return;
  }
  if (!strcmp(path, "/_standin/faults") && !strcmp(method, "POST")) {
    size_t blen;
    const char *body = hl_http_req_body(req, &blen);
    json_t *j = json_loadb(body, blen, 0, NULL);
    if (!json_is_object(j)) {
      json_decref(j);
      reply_error(s, req, 400, "000001", "the body must be a JSON object");
      return;
    }
    if (json_is_true(json_object_get(j, "clear"))) {
      s->nfaults = 0;
      s->unauthorized = 0;
      s->delay_count = 0;
    }
    json_t *st = json_object_get(j, "status");
    if (json_is_integer(st) && s->nfaults < SI_MAX_FAULTS) {
      fault *f = &s->faults[s->nfaults++];
      memset(f, 0, sizeof *f);
      f->status = (int)json_integer_value(st);
      f->count = json_is_integer(json_object_get(j, "count")) ? (int)json_integer_value(json_object_get(j, "count")) : 1;
      f->retry_after = (int)json_integer_value(json_object_get(j, "retry_after"));
      f->after = json_is_true(json_object_get(j, "after"));
      snprintf(f->method, sizeof f->method, "%s", json_string_value(json_object_get(j, "method")) ?: "");
      snprintf(f->path, sizeof f->path, "%s", json_string_value(json_object_get(j, "path")) ?: "");
    }
    if (json_is_integer(json_object_get(j, "unauthorized")))
      s->unauthorized = (int)json_integer_value(json_object_get(j, "unauthorized"));
    if (json_is_integer(json_object_get(j, "delay_ms"))) {
      s->delay_ms = (long)json_integer_value(json_object_get(j, "delay_ms"));
      json_t *c = json_object_get(j, "delay_count");
      s->delay_count = json_is_integer(c) ? (int)json_integer_value(c) : 1;
    }
    if (json_is_boolean(json_object_get(j, "ignore_timeouts")))
      s->ignore_timeouts = json_is_true(json_object_get(j, "ignore_timeouts"));
    if (json_is_integer(json_object_get(j, "sync_wait_ms")))
      s->sync_wait_ms = (long)json_integer_value(json_object_get(j, "sync_wait_ms"));
    if (json_is_true(json_object_get(j, "expire_scoped_tokens")))
      s->ntokens = 0;
    json_decref(j);
    json_t *ok = json_object();
    reply_json(req, 200, ok, NULL);
    json_decref(ok);
    return;
  }
  reply_error(s, req, 404, "000404", "no control endpoint %s %s", method, path);
}

/* ------------------------------------------------------------------------ */
/* Routing.                                                                  */

static void handler(hl_http_req *req, void *ud) {
  sf_standin *s = ud;
  const char *path = hl_http_req_path(req);
  const char *method = hl_http_req_method(req);
  s->stats.requests++;
  if (s->verbose)
    fprintf(stderr, "sf-standin: %s %s\n", method, hl_http_req_target(req));
  if (!strncmp(path, "/_standin/", 10)) {
    control(s, req, path, method);
    return;
  }
  fault *f = take_fault(s, method, path, false);
  if (f) {
    reply_fault(s, req, f);
    return;
  }
  static const char stmts[] = "/api/v2/statements";
  if (!strncmp(path, stmts, sizeof stmts - 1)) {
    const char *rest = path + sizeof stmts - 1;
    if (!*rest) {
      if (strcmp(method, "POST")) {
        reply_error(s, req, 405, "000001", "use POST");
        return;
      }
      if (authenticate(s, req, AUTH_KEYPAIR) == 0)
        submit(s, req);
      return;
    }
    if (*rest == '/') {
      const char *h = rest + 1;
      size_t hl = strcspn(h, "/");
      bool cancel = !strcmp(h + hl, "/cancel");
      if (!sf_spec_is_uuid(h, hl) || (h[hl] && !cancel)) {
        reply_error(s, req, 404, "000001", "no such endpoint %s", path);
        return;
      }
      if (strcmp(method, cancel ? "POST" : "GET")) {
        reply_error(s, req, 405, "000001", "use %s", cancel ? "POST" : "GET");
        return;
      }
      char handle[37];
      memcpy(handle, h, 36);
      handle[36] = '\0';
      if (authenticate(s, req, AUTH_KEYPAIR) == 0)
        get_statement(s, req, handle, cancel);
      return;
    }
  }
  if (!strcmp(path, "/v2/streaming/hostname") && !strcmp(method, "GET")) {
    if (authenticate(s, req, AUTH_KEYPAIR) == 0) {
      char host[64];
      snprintf(host, sizeof host, "127.0.0.1:%d", hl_http_server_port(s->http));
      json_t *b = json_pack("{s:s}", "hostname", host);
      reply_json(req, 200, b, NULL);
      json_decref(b);
    }
    return;
  }
  if (!strcmp(path, "/oauth/token") && !strcmp(method, "POST")) {
    if (authenticate(s, req, AUTH_KEYPAIR) == 0)
      oauth_token(s, req);
    return;
  }
  chan_key k;
  const char *rest = NULL;
  if (!strncmp(path, "/v2/streaming/data/databases/", 29) && parse_stream_path(path, true, &k, &rest) &&
      !strcmp(rest, "/rows") && !strcmp(method, "POST")) {
    if (authenticate(s, req, AUTH_SCOPED) == 0)
      append_rows(s, req, &k);
    return;
  }
  if (!strncmp(path, "/v2/streaming/databases/", 24) && parse_stream_path(path, false, &k, &rest)) {
    if (!strcmp(rest, "") && k.channel[0] && !strcmp(method, "PUT")) {
      if (authenticate(s, req, AUTH_SCOPED) == 0)
        open_channel(s, req, &k);
      return;
    }
    if (!strcmp(rest, ":bulk-channel-status") && !k.channel[0] && !strcmp(method, "POST")) {
      if (authenticate(s, req, AUTH_SCOPED) == 0)
        bulk_status(s, req, &k);
      return;
    }
  }
  reply_error(s, req, 404, "000001", "no such endpoint %s %s", method, path);
}

/* ------------------------------------------------------------------------ */
/* Lifecycle.                                                                */

static int load_public_key(sf_standin *s, const char *path, char *err, size_t errlen) {
  BIO *bio = BIO_new_file(path, "r");
  if (!bio) {
    snprintf(err, errlen, "cannot read the public key %s", path);
    return -1;
  }
  s->pub = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
  if (!s->pub) {
    (void)BIO_reset(bio);
    s->pub = PEM_read_bio_PrivateKey(bio, NULL, NULL, (void *)"");
  }
  BIO_free(bio);
  ERR_clear_error();
  if (!s->pub || EVP_PKEY_base_id(s->pub) != EVP_PKEY_RSA) {
    snprintf(err, errlen, "%s holds no RSA key", path);
    return -1;
  }
  unsigned char *der = NULL;
  int n = i2d_PUBKEY(s->pub, &der);
  if (n <= 0)
    return -1;
  unsigned char md[SHA256_DIGEST_LENGTH];
  SHA256(der, (size_t)n, md);
  OPENSSL_free(der);
  memcpy(s->fingerprint, "SHA256:", 7);
  EVP_EncodeBlock((unsigned char *)s->fingerprint + 7, md, sizeof md);
  return 0;
}

int sf_standin_new(uv_loop_t *loop, const sf_standin_config *cfg, sf_standin **out, char *err, size_t errlen) {
  if (!cfg->dir || !cfg->account || !cfg->user || !cfg->public_key_file || !cfg->spec_path) {
    snprintf(err, errlen, "dir, account, user, public key and spec are required");
    return -EINVAL;
  }
  sf_standin *s = calloc(1, sizeof *s);
  if (!s)
    return -ENOMEM;
  s->loop = loop;
  s->partition_rows = cfg->partition_rows > 0 ? cfg->partition_rows : 1000;
  s->sync_wait_ms = cfg->sync_wait_ms > 0 ? cfg->sync_wait_ms : 45000;
  s->scoped_ttl_s = cfg->scoped_token_ttl_s > 0 ? cfg->scoped_token_ttl_s : 3600;
  s->verbose = cfg->verbose;
  size_t al = strcspn(cfg->account, ".");
  snprintf(s->qualified, sizeof s->qualified, "%.*s.%s", (int)al, cfg->account, cfg->user);
  for (char *p = s->qualified; *p; p++)
    *p = (char)toupper((unsigned char)*p);
  int rc = -EINVAL;
  mkdir(cfg->dir, 0755);
  hl_http_limits lim;
  hl_http_limits_default(&lim);
  lim.max_body_bytes = SI_MAX_ROWS_BODY + 1024;
  lim.max_url_bytes = 16384;
  if (load_public_key(s, cfg->public_key_file, err, errlen) < 0)
    goto fail;
  if (!(s->spec = sf_spec_load(cfg->spec_path, err, errlen)))
    goto fail;
  if ((rc = sf_sql_open(cfg->dir, &s->sql, err, errlen)) < 0)
    goto fail;
  if ((rc = hl_http_server_new(loop, &lim, handler, s, &s->http)) < 0 ||
      (rc = hl_http_server_listen(s->http, cfg->addr ? cfg->addr : "127.0.0.1:0")) < 0) {
    snprintf(err, errlen, "cannot listen on %s", cfg->addr ? cfg->addr : "127.0.0.1:0");
    goto fail;
  }
  *out = s;
  return 0;
fail:
  if (s->http) {
    hl_http_server_free(s->http);
    s->http = NULL;
  }
  sf_standin_free(s);
  return rc;
}

int sf_standin_port(const sf_standin *s) {
  return s->http ? hl_http_server_port(s->http) : -1;
}

static void http_closed(void *ud) {
  sf_standin *s = ud;
  hl_http_server_free(s->http);
  s->http = NULL;
  if (s->open_timers == 0 && s->done) {
    void (*done)(void *) = s->done;
    s->done = NULL;
    done(s->done_ud);
  }
}

void sf_standin_close(sf_standin *s, void (*done)(void *ud), void *ud) {
  s->closing = true;
  s->done = done;
  s->done_ud = ud;
  for (stmt *st = s->stmts; st; st = st->next) {
    close_timer(s, &st->timer);
    while (st->waiters) {
      waiter *w = st->waiters;
      st->waiters = w->next;
      close_timer(s, &w->timer);
      reply_error(s, w->req, 503, "000000", "the stand-in is stopping");
      free(w);
    }
  }
  hl_http_server_close(s->http, 2000, http_closed, s);
}

sf_standin *sf_standin_free(sf_standin *s) {
  if (!s)
    return NULL;
  while (s->stmts) {
    stmt *st = s->stmts;
    s->stmts = st->next;
    free_stmt(s, st);
  }
  sf_sql_close(s->sql);
  sf_spec_free(s->spec);
  EVP_PKEY_free(s->pub);
  free(s);
  return NULL;
}

/* ------------------------------------------------------------------------ */
/* On a thread, for tests.                                                   */

struct sf_standin_thread {
  uv_loop_t loop;
  uv_async_t stop;
  pthread_t tid;
  sf_standin *s;
  int port;
};

static void thread_closed(void *ud) {
  sf_standin_thread *t = ud;
  uv_close((uv_handle_t *)&t->stop, NULL);
}

static void thread_stop_cb(uv_async_t *a) {
  sf_standin_thread *t = a->data;
  sf_standin_close(t->s, thread_closed, t);
}

static void *thread_main(void *ud) {
  sf_standin_thread *t = ud;
  uv_run(&t->loop, UV_RUN_DEFAULT);
  return NULL;
}

int sf_standin_thread_start(const sf_standin_config *cfg, sf_standin_thread **out, char *err, size_t errlen) {
  sf_standin_thread *t = calloc(1, sizeof *t);
  if (!t)
    return -ENOMEM;
  uv_loop_init(&t->loop);
  int rc = sf_standin_new(&t->loop, cfg, &t->s, err, errlen);
  if (rc < 0) {
    uv_loop_close(&t->loop);
    free(t);
    return rc;
  }
  t->port = sf_standin_port(t->s);
  uv_async_init(&t->loop, &t->stop, thread_stop_cb);
  t->stop.data = t;
  if (pthread_create(&t->tid, NULL, thread_main, t) != 0) {
    snprintf(err, errlen, "cannot start the stand-in thread");
    thread_stop_cb(&t->stop);
    uv_run(&t->loop, UV_RUN_DEFAULT);
    sf_standin_free(t->s);
    uv_loop_close(&t->loop);
    free(t);
    return -EAGAIN;
  }
  *out = t;
  return 0;
}

int sf_standin_thread_port(const sf_standin_thread *t) {
  return t->port;
}

sf_standin_thread *sf_standin_thread_stop(sf_standin_thread *t) {
  if (!t)
    return NULL;
  uv_async_send(&t->stop);
  pthread_join(t->tid, NULL);
  sf_standin_free(t->s);
  uv_loop_close(&t->loop);
  free(t);
  return NULL;
}
