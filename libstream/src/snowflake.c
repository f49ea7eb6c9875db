#define _GNU_SOURCE
/*
 * The Snowflake client: configuration, key-pair JWT, the statement state
 * machine that both drivers run, and the blocking driver. Results are read
 * in snowflake_result.c, the libuv driver is snowflake_async.c and
 * Snowpipe Streaming is snowflake_stream.c. See hl/snowflake.h and
 * docs/snowflake.md.
 */
#include "hl/snowflake.h"

#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hl/error.h"
#include "snowflake_internal.h"

#define SF_DEFAULT_UA "Healthlake/0.1.0"
/* A token is renewed this long before it expires. */
#define SF_RENEW_MARGIN_S 120

struct hl_snowflake {
  char *account_upper;     /* "XY12345" (region dropped) */
  char *qualified;         /* "XY12345.JANE" */
  char *url;               /* base URL without trailing '/' */
  char *database, *schema, *warehouse, *role, *user_agent;
  long jwt_lifetime_s, statement_timeout_ms, request_timeout_ms, retry_base_ms, retry_max_ms,
      poll_max_ms;
  int max_retries, max_connections;
  long long max_result;
  EVP_PKEY *key;
  char fingerprint[64];    /* "SHA256:..." */
  char *token;             /* current JWT */
  time_t token_exp;
  uint64_t rng;
  hl__sf_stream_state stream;
  hl_metric *m_requests, *m_retries, *m_duration, *m_bytes;
};

int hl_snowflake_set_metrics(hl_snowflake *sf, hl_metrics *reg) {
  sf->m_requests = hl_metrics_counter(reg, "hl_snowflake_requests_total",
                                      "Answers from Snowflake by endpoint and HTTP status (0: transport error).",
                                      "endpoint,code");
  sf->m_retries = hl_metrics_counter(reg, "hl_snowflake_retries_total",
                                     "Requests sent again, by reason (429, 503, 504, transport, 401).", "reason");
  sf->m_duration = hl_metrics_histogram(reg, "hl_snowflake_statement_duration_seconds",
                                        "Seconds from submission to the whole result (or the final error).",
                                        "outcome", hl_metrics_latency_buckets, hl_metrics_latency_nbuckets);
  sf->m_bytes = hl_metrics_counter(reg, "hl_snowflake_stream_bytes_total",
                                   "NDJSON bytes appended to Snowpipe Streaming channels (before compression).",
                                   NULL);
  return sf->m_requests && sf->m_retries && sf->m_duration && sf->m_bytes ? 0 : -ENOMEM;
}

void hl__sf_count(hl_snowflake *sf, const char *endpoint, long status) {
  if (!sf->m_requests)
    return;
  char code[16];
  snprintf(code, sizeof code, "%ld", status);
  hl_series_inc(hl_metric_at(sf->m_requests, endpoint, code));
}

void hl__sf_retry(hl_snowflake *sf, const char *reason) {
  if (sf->m_retries)
    hl_series_inc(hl_metric_at(sf->m_retries, reason));
}

void hl__sf_duration(hl_snowflake *sf, bool ok, double seconds) {
  if (sf->m_duration)
    hl_series_observe(hl_metric_at(sf->m_duration, ok ? "ok" : "error"), seconds);
}

void hl__sf_bytes(hl_snowflake *sf, size_t n) {
  if (sf->m_bytes)
    hl_series_add(hl_metric_at(sf->m_bytes), (double)n);
}

static const char *retry_reason(CURLcode cc, long status) {
  return cc != CURLE_OK ? "transport" : status == 429 ? "429" : status == 503 ? "503" : "504";
}

hl__sf_stream_state *hl__sf_stream(hl_snowflake *sf) {
  return &sf->stream;
}

uint64_t hl__sf_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static char *dup_or_null(const char *s) {
  return s && *s ? strdup(s) : NULL;
}

/* ------------------------------------------------------------------------ */
/* Configuration.                                                            */

int hl_snowflake_config_from(const hl_config *src, hl_snowflake_config *cfg, char *err, size_t errlen) {
  hl_snowflake_config c = {0};
  c.account = hl_config_str(src, "HL_SNOWFLAKE_ACCOUNT");
  c.user = hl_config_str(src, "HL_SNOWFLAKE_USER");
  c.private_key_file = hl_config_str(src, "HL_SNOWFLAKE_PRIVATE_KEY_FILE");
  c.passphrase = hl_config_str(src, "HL_SNOWFLAKE_PRIVATE_KEY_PASSPHRASE");
  c.url = hl_config_str(src, "HL_SNOWFLAKE_URL");
  c.database = hl_config_str(src, "HL_SNOWFLAKE_DATABASE");
  c.schema = hl_config_str(src, "HL_SNOWFLAKE_SCHEMA");
  c.warehouse = hl_config_str(src, "HL_SNOWFLAKE_WAREHOUSE");
  c.role = hl_config_str(src, "HL_SNOWFLAKE_ROLE");
  c.jwt_lifetime_s = (long)(hl_config_int(src, "HL_SNOWFLAKE_JWT_LIFETIME") / 1000);
  c.statement_timeout_ms = (long)hl_config_int(src, "HL_SNOWFLAKE_STATEMENT_TIMEOUT");
  c.request_timeout_ms = (long)hl_config_int(src, "HL_SNOWFLAKE_REQUEST_TIMEOUT");
  c.max_retries = (int)hl_config_int(src, "HL_SNOWFLAKE_MAX_RETRIES");
  c.retry_base_ms = (long)hl_config_int(src, "HL_SNOWFLAKE_RETRY_BASE");
  c.retry_max_ms = (long)hl_config_int(src, "HL_SNOWFLAKE_RETRY_MAX");
  c.max_result = hl_config_int(src, "HL_SNOWFLAKE_MAX_RESULT");
  c.max_connections = (int)hl_config_int(src, "HL_SNOWFLAKE_MAX_CONNECTIONS");
  const char *missing = !*c.account ? "HL_SNOWFLAKE_ACCOUNT"
                        : !*c.user ? "HL_SNOWFLAKE_USER"
                        : !*c.private_key_file ? "HL_SNOWFLAKE_PRIVATE_KEY_FILE"
                                               : NULL;
  if (missing) {
    if (err && errlen)
      snprintf(err, errlen, "%s is required with the snowflake backend", missing);
    return HL_ECONFIG;
  }
  *cfg = c;
  return 0;
}

int hl_snowflake_qualified_user(const char *account, const char *user, char *out, size_t outlen) {
  if (!account || !user || !*account || !*user)
    return -EINVAL;
  /* The account locator without its region and cloud: up to the first '.'. */
  size_t alen = strcspn(account, ".");
  size_t ulen = strlen(user);
  if (alen + 1 + ulen + 1 > outlen)
    return HL_ELIMIT;
  for (size_t i = 0; i < alen; i++)
    out[i] = (char)toupper((unsigned char)account[i]);
  out[alen] = '.';
  for (size_t i = 0; i < ulen; i++)
    out[alen + 1 + i] = (char)toupper((unsigned char)user[i]);
  out[alen + 1 + ulen] = '\0';
  return 0;
}

static int load_key(hl_snowflake *sf, const hl_snowflake_config *cfg, char *err, size_t errlen) {
  BIO *bio = NULL;
  if (cfg->private_key_pem && *cfg->private_key_pem)
    bio = BIO_new_mem_buf(cfg->private_key_pem, -1);
  else if (cfg->private_key_file && *cfg->private_key_file)
    bio = BIO_new_file(cfg->private_key_file, "r");
  if (!bio) {
    if (err && errlen)
      snprintf(err, errlen, "snowflake: cannot read the private key %s",
               cfg->private_key_file ? cfg->private_key_file : "(none given)");
    return HL_ECONFIG;
  }
  const char *pass = cfg->passphrase && *cfg->passphrase ? cfg->passphrase : "";
  sf->key = PEM_read_bio_PrivateKey(bio, NULL, NULL, (void *)pass);
  BIO_free(bio);
  if (!sf->key || EVP_PKEY_base_id(sf->key) != EVP_PKEY_RSA) {
    ERR_clear_error();
    if (err && errlen)
      snprintf(err, errlen, "snowflake: the private key is not a readable RSA key (wrong passphrase?)");
    return HL_ECONFIG;
  }
  /* Fingerprint: SHA-256 of the DER SubjectPublicKeyInfo, base64. */
  unsigned char *der = NULL;
  int dlen = i2d_PUBKEY(sf->key, &der);
  if (dlen <= 0)
    return HL_ECONFIG;
  unsigned char md[SHA256_DIGEST_LENGTH];
  SHA256(der, (size_t)dlen, md);
  OPENSSL_free(der);
  memcpy(sf->fingerprint, "SHA256:", 7);
  EVP_EncodeBlock((unsigned char *)sf->fingerprint + 7, md, sizeof md);
  return 0;
}

int hl_snowflake_new(const hl_snowflake_config *cfg, hl_snowflake **out, char *err, size_t errlen) {
  if (!cfg || !out)
    return -EINVAL;
  char q[600];
  if (hl_snowflake_qualified_user(cfg->account, cfg->user, q, sizeof q) < 0) {
    if (err && errlen)
      snprintf(err, errlen, "snowflake: account and user are required");
    return HL_ECONFIG;
  }
  hl_snowflake *sf = calloc(1, sizeof *sf);
  if (!sf)
    return -ENOMEM;
  int rc = -ENOMEM;
  sf->qualified = strdup(q);
  sf->account_upper = strndup(q, strcspn(q, "."));
  if (cfg->url && *cfg->url) {
    sf->url = strdup(cfg->url);
  } else if (asprintf(&sf->url, "https://%s.snowflakecomputing.com", cfg->account) < 0) {
    sf->url = NULL;
  }
  if (!sf->qualified || !sf->account_upper || !sf->url)
    goto fail;
  size_t ul = strlen(sf->url);
  while (ul > 0 && sf->url[ul - 1] == '/')
    sf->url[--ul] = '\0';
  sf->database = dup_or_null(cfg->database);
  sf->schema = dup_or_null(cfg->schema);
  sf->warehouse = dup_or_null(cfg->warehouse);
  sf->role = dup_or_null(cfg->role);
  sf->user_agent = strdup(cfg->user_agent && *cfg->user_agent ? cfg->user_agent : SF_DEFAULT_UA);
  if (!sf->user_agent)
    goto fail;
  sf->jwt_lifetime_s = cfg->jwt_lifetime_s > 0 ? cfg->jwt_lifetime_s : 3540;
  if (sf->jwt_lifetime_s < 60 || sf->jwt_lifetime_s > 3600) {
    rc = HL_ECONFIG;
    if (err && errlen)
      snprintf(err, errlen, "snowflake: the JWT lifetime must be 60..3600 s");
    goto fail;
  }
  sf->statement_timeout_ms = cfg->statement_timeout_ms > 0 ? cfg->statement_timeout_ms : 600000;
  sf->request_timeout_ms = cfg->request_timeout_ms > 0 ? cfg->request_timeout_ms : 60000;
  sf->max_retries = cfg->max_retries < 0 ? 6 : cfg->max_retries > 30 ? 30 : cfg->max_retries;
  sf->retry_base_ms = cfg->retry_base_ms > 0 ? cfg->retry_base_ms : 200;
  sf->retry_max_ms = cfg->retry_max_ms > 0 ? cfg->retry_max_ms : 30000;
  sf->poll_max_ms = cfg->poll_max_ms > 0 ? cfg->poll_max_ms : 1000;
  sf->max_result = cfg->max_result > 0 ? cfg->max_result : 256LL << 20;
  sf->max_connections = cfg->max_connections > 0 ? cfg->max_connections : 16;
  if (RAND_bytes((unsigned char *)&sf->rng, sizeof sf->rng) != 1)
    sf->rng = (uint64_t)time(NULL) * 2654435761u;
  sf->rng |= 1;
  rc = load_key(sf, cfg, err, errlen);
  if (rc < 0)
    goto fail;
  *out = sf;
  return 0;
fail:
  hl_snowflake_free(sf);
  return rc;
}

hl_snowflake *hl_snowflake_free(hl_snowflake *sf) {
  if (!sf)
    return NULL;
  free(sf->account_upper);
  free(sf->qualified);
  free(sf->url);
  free(sf->database);
  free(sf->schema);
  free(sf->warehouse);
  free(sf->role);
  free(sf->user_agent);
  if (sf->token) {
    OPENSSL_cleanse(sf->token, strlen(sf->token));
    free(sf->token);
  }
  EVP_PKEY_free(sf->key);
  free(sf->stream.ingest_url);
  free(sf->stream.scoped_token);
  free(sf);
  return NULL;
}

const char *hl_snowflake_fingerprint(const hl_snowflake *sf) {
  return sf->fingerprint;
}

const char *hl__sf_url(const hl_snowflake *sf) { return sf->url; }
const char *hl__sf_user_agent(const hl_snowflake *sf) { return sf->user_agent; }
const char *hl__sf_database(const hl_snowflake *sf) { return sf->database; }
const char *hl__sf_schema(const hl_snowflake *sf) { return sf->schema; }
long hl__sf_request_timeout(const hl_snowflake *sf) { return sf->request_timeout_ms; }
long long hl__sf_max_result(const hl_snowflake *sf) { return sf->max_result; }
int hl__sf_max_retries(const hl_snowflake *sf) { return sf->max_retries; }
int hl__sf_max_connections(const hl_snowflake *sf) { return sf->max_connections; }

static uint64_t rng_next(hl_snowflake *sf) {
  /* xorshift64*: jitter only, never security. */
  uint64_t x = sf->rng;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  sf->rng = x;
  return x * 0x2545F4914F6CDD1DULL;
}

/* Full jitter: a random wait in [0, min(max, base * 2^retry)], at least Retry-After. */
long hl__sf_backoff(hl_snowflake *sf, int retry, long retry_after_ms) {
  long cap = sf->retry_base_ms;
  for (int i = 0; i < retry && cap < sf->retry_max_ms; i++)
    cap *= 2;
  if (cap > sf->retry_max_ms)
    cap = sf->retry_max_ms;
  long wait = (long)(rng_next(sf) % (uint64_t)(cap + 1));
  if (retry_after_ms > wait)
    wait = retry_after_ms;
  return wait;
}

int hl__sf_uuid(hl_snowflake *sf, char out[37]) {
  unsigned char b[16];
  if (RAND_bytes(b, sizeof b) != 1) {
    for (size_t i = 0; i < sizeof b; i++)
      b[i] = (unsigned char)rng_next(sf);
  }
  b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
  b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
  snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
           b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
  return 0;
}

/* ------------------------------------------------------------------------ */
/* Key-pair JWT.                                                             */

static int b64url(hl_buf *out, const unsigned char *in, size_t n) {
  size_t enc = 4 * ((n + 2) / 3);
  int rc = hl_buf_reserve(out, enc + 1);
  if (rc < 0)
    return rc;
  unsigned char *p = (unsigned char *)out->data + out->len;
  int w = EVP_EncodeBlock(p, in, (int)n);
  /* base64 -> base64url without padding. */
  while (w > 0 && p[w - 1] == '=')
    w--;
  for (int i = 0; i < w; i++)
    p[i] = p[i] == '+' ? '-' : p[i] == '/' ? '_' : p[i];
  out->len += (size_t)w;
  out->data[out->len] = '\0';
  return 0;
}

int hl_snowflake_jwt_at(hl_snowflake *sf, time_t now, long lifetime_s, char **out) {
  hl_buf tok;
  hl_buf_init(&tok, 16384);
  char payload[1024];
  int rc;
  static const char header[] = "{\"alg\":\"RS256\",\"typ\":\"JWT\"}";
  int plen = snprintf(payload, sizeof payload,
                      "{\"iss\":\"%s.%s\",\"sub\":\"%s\",\"iat\":%lld,\"exp\":%lld}", sf->qualified,
                      sf->fingerprint, sf->qualified, (long long)now, (long long)now + lifetime_s);
  if (plen < 0 || (size_t)plen >= sizeof payload)
    return HL_ELIMIT;
  if ((rc = b64url(&tok, (const unsigned char *)header, sizeof header - 1)) < 0 ||
      (rc = hl_buf_putc(&tok, '.')) < 0 ||
      (rc = b64url(&tok, (const unsigned char *)payload, (size_t)plen)) < 0)
    goto done;
  unsigned char sig[1024];
  size_t siglen = sizeof sig;
  EVP_MD_CTX *md = EVP_MD_CTX_new();
  if (!md) {
    rc = -ENOMEM;
    goto done;
  }
  if (EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, sf->key) != 1 ||
      EVP_DigestSign(md, sig, &siglen, (const unsigned char *)tok.data, tok.len) != 1) {
    EVP_MD_CTX_free(md);
    ERR_clear_error();
    rc = HL_ECONFIG;
    goto done;
  }
  EVP_MD_CTX_free(md);
  if ((rc = hl_buf_putc(&tok, '.')) < 0 || (rc = b64url(&tok, sig, siglen)) < 0)
    goto done;
  *out = hl_buf_steal(&tok, NULL);
  return 0;
done:
  hl_buf_free(&tok);
  return rc;
}

const char *hl_snowflake_token(hl_snowflake *sf) {
  return hl_snowflake_token_at(sf, time(NULL));
}

const char *hl_snowflake_token_at(hl_snowflake *sf, time_t now) {
  /* Renewed ahead of expiry: two minutes, or a quarter of a short lifetime. */
  long margin = sf->jwt_lifetime_s / 4 < SF_RENEW_MARGIN_S ? sf->jwt_lifetime_s / 4 : SF_RENEW_MARGIN_S;
  if (sf->token && now + margin < sf->token_exp)
    return sf->token;
  char *tok = NULL;
  if (hl_snowflake_jwt_at(sf, now, sf->jwt_lifetime_s, &tok) < 0)
    return sf->token; /* keep the old one; the server will say 401 */
  free(sf->token);
  sf->token = tok;
  sf->token_exp = now + sf->jwt_lifetime_s;
  return sf->token;
}

void hl__sf_token_invalidate(hl_snowflake *sf) {
  sf->token_exp = 0;
}

/* ------------------------------------------------------------------------ */
/* Errors.                                                                   */

const char *hl_snowflake_error_str(const hl_snowflake_error *err, char *out, size_t outlen) {
  if (!err || !outlen)
    return "";
  if (err->http_status)
    snprintf(out, outlen, "%d %s/%s: %s", err->http_status, err->code[0] ? err->code : "-",
             err->sql_state[0] ? err->sql_state : "-", err->message);
  else
    snprintf(out, outlen, "transport: %s", err->message);
  return out;
}

bool hl_snowflake_error_retriable(int rc, const hl_snowflake_error *err) {
  if (rc == HL_EIO || rc == HL_ETIMEOUT)
    return true;
  if (rc != HL_EHTTP || !err)
    return false;
  int s = err->http_status;
  return s == 429 || s == 500 || s == 503 || s == 504;
}

static void copy_field(char *dst, size_t cap, json_t *obj, const char *name) {
  const char *v = json_string_value(json_object_get(obj, name));
  if (v)
    snprintf(dst, cap, "%s", v);
}

/* Reads code, sqlState, message and statementHandle of an answer into err. */
static void read_status(hl_snowflake_error *err, const char *body, size_t len) {
  json_t *j = len ? json_loadb(body, len, 0, NULL) : NULL;
  if (json_is_object(j)) {
    copy_field(err->code, sizeof err->code, j, "code");
    copy_field(err->sql_state, sizeof err->sql_state, j, "sqlState");
    copy_field(err->message, sizeof err->message, j, "message");
    copy_field(err->statement_handle, sizeof err->statement_handle, j, "statementHandle");
  } else if (len) {
    snprintf(err->message, sizeof err->message, "%.*s", (int)(len > 200 ? 200 : len), body);
  }
  json_decref(j);
}

/* ------------------------------------------------------------------------ */
/* HTTP plumbing shared by every request.                                    */

static size_t write_cb(char *p, size_t sz, size_t n, void *ud) {
  hl__sf_op *op = ud;
  size_t len = sz * n;
  if (hl_buf_append(&op->resp, p, len) < 0) {
    op->overflow = true;
    return 0; /* past the cap: curl fails with CURLE_WRITE_ERROR */
  }
  return len;
}

static size_t header_cb(char *p, size_t sz, size_t n, void *ud) {
  hl__sf_op *op = ud;
  size_t len = sz * n;
  if (len > 12 && strncasecmp(p, "Retry-After:", 12) == 0) {
    char v[32];
    size_t vl = len - 12 < sizeof v - 1 ? len - 12 : sizeof v - 1;
    memcpy(v, p + 12, vl);
    v[vl] = '\0';
    char *end;
    long s = strtol(v, &end, 10);
    if (end != v && s >= 0 && s < 3600)
      op->retry_after_ms = s * 1000;
  }
  return len;
}

int hl__sf_easy_setup(hl_snowflake *sf, CURL *c, struct curl_slist **headers, const char *url,
                      const char *token, const char *token_type, const char *content_type,
                      const char *const *extra) {
  curl_easy_reset(c);
  curl_slist_free_all(*headers);
  *headers = NULL;
  const char *tok = token ? token : hl_snowflake_token(sf);
  if (!tok)
    return HL_ECONFIG;
  size_t need = strlen(tok) + 32;
  char *auth = malloc(need);
  if (!auth)
    return -ENOMEM;
  snprintf(auth, need, "Authorization: Bearer %s", tok);
  char tt[96];
  snprintf(tt, sizeof tt, "X-Snowflake-Authorization-Token-Type: %s", token_type);
  char ct[128];
  snprintf(ct, sizeof ct, "Content-Type: %s", content_type ? content_type : "application/json");
  struct curl_slist *h = NULL, *t;
  const char *lines[] = {auth, tt, "Accept: application/json", content_type ? ct : NULL};
  for (size_t i = 0; i < sizeof lines / sizeof *lines; i++) {
    if (!lines[i])
      continue;
    if (!(t = curl_slist_append(h, lines[i])))
      goto nomem;
    h = t;
  }
  for (size_t i = 0; extra && extra[i]; i++) {
    if (!(t = curl_slist_append(h, extra[i])))
      goto nomem;
    h = t;
  }
  OPENSSL_cleanse(auth, strlen(auth));
  free(auth);
  *headers = h;
  curl_easy_setopt(c, CURLOPT_URL, url);
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
  curl_easy_setopt(c, CURLOPT_USERAGENT, sf->user_agent);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, sf->request_timeout_ms);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, sf->request_timeout_ms < 10000 ? sf->request_timeout_ms : 10000L);
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_ACCEPT_ENCODING, "");
  return 0;
nomem:
  OPENSSL_cleanse(auth, strlen(auth));
  free(auth);
  curl_slist_free_all(h);
  return -ENOMEM;
}

/* ------------------------------------------------------------------------ */
/* The statement state machine.                                              */

static const char *const type_names[] = {
    [HL_SF_TEXT] = "TEXT",
    [HL_SF_FIXED] = "FIXED",
    [HL_SF_REAL] = "REAL",
    [HL_SF_BOOLEAN] = "BOOLEAN",
    [HL_SF_DATE] = "DATE",
    [HL_SF_TIME] = "TIME",
    [HL_SF_TIMESTAMP_NTZ] = "TIMESTAMP_NTZ",
    [HL_SF_TIMESTAMP_LTZ] = "TIMESTAMP_LTZ",
    [HL_SF_TIMESTAMP_TZ] = "TIMESTAMP_TZ",
    [HL_SF_BINARY] = "BINARY",
};

static json_t *str_or_null(const char *s) {
  return s ? json_string(s) : json_null();
}

/* The body of POST /api/v2/statements. */
static char *submit_body(hl_snowflake *sf, const hl_snowflake_stmt *st, int *rc) {
  json_t *b = json_object(), *binds = NULL, *params = NULL;
  char *out = NULL;
  *rc = -ENOMEM;
  if (!b)
    return NULL;
  long tmo = st->timeout_ms > 0 ? st->timeout_ms : sf->statement_timeout_ms;
  if (json_object_set_new(b, "statement", json_string(st->sql)) < 0 ||
      json_object_set_new(b, "timeout", json_integer((tmo + 999) / 1000)) < 0)
    goto done;
  const char *ctx[][2] = {{"database", sf->database}, {"schema", sf->schema},
                          {"warehouse", sf->warehouse}, {"role", sf->role}};
  for (size_t i = 0; i < 4; i++)
    if (ctx[i][1] && json_object_set_new(b, ctx[i][0], json_string(ctx[i][1])) < 0)
      goto done;
  if (st->nbinds) {
    if (!(binds = json_object()))
      goto done;
    for (size_t i = 0; i < st->nbinds; i++) {
      const hl_snowflake_bind *bd = &st->binds[i];
      if ((unsigned)bd->type > HL_SF_BINARY) {
        *rc = -EINVAL;
        goto done;
      }
      json_t *one = json_object(), *v;
      if (!one)
        goto done;
      if (bd->values) {
        v = json_array();
        for (size_t k = 0; v && k < bd->nvalues; k++)
          if (json_array_append_new(v, str_or_null(bd->values[k])) < 0) {
            json_decref(v);
            v = NULL;
          }
      } else {
        v = str_or_null(bd->value);
      }
      char key[24];
      snprintf(key, sizeof key, "%zu", i + 1);
      if (!v || json_object_set_new(one, "type", json_string(type_names[bd->type])) < 0 ||
          json_object_set_new(one, "value", v) < 0 || json_object_set_new(binds, key, one) < 0) {
        json_decref(one);
        goto done;
      }
    }
    if (json_object_set_new(b, "bindings", binds) < 0) {
      binds = NULL;
      goto done;
    }
    binds = NULL;
  }
  if (st->query_tag || st->multi_statement_count) {
    if (!(params = json_object()))
      goto done;
    if (st->query_tag && json_object_set_new(params, "query_tag", json_string(st->query_tag)) < 0)
      goto done;
    if (st->multi_statement_count &&
        json_object_set_new(params, "multi_statement_count",
                            json_integer(st->multi_statement_count < 0 ? 0 : st->multi_statement_count)) < 0)
      goto done;
    if (json_object_set_new(b, "parameters", params) < 0) {
      params = NULL;
      goto done;
    }
    params = NULL;
  }
  out = json_dumps(b, JSON_COMPACT);
  *rc = out ? 0 : -ENOMEM;
done:
  json_decref(binds);
  json_decref(params);
  json_decref(b);
  return out;
}

static bool valid_request_id(const char *s) {
  size_t n = strlen(s);
  if (n != 36)
    return false;
  for (size_t i = 0; i < n; i++) {
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (s[i] != '-')
        return false;
    } else if (!isxdigit((unsigned char)s[i])) {
      return false;
    }
  }
  return true;
}

int hl__sf_op_init(hl__sf_op *op, hl_snowflake *sf, const hl_snowflake_stmt *st) {
  memset(op, 0, sizeof *op);
  if (!sf || !st || !st->sql || strlen(st->sql) > HL__SF_MAX_SQL || (st->nbinds && !st->binds))
    return -EINVAL;
  if (st->request_id && !valid_request_id(st->request_id))
    return -EINVAL;
  op->sf = sf;
  hl_buf_init(&op->resp, HL__SF_MAX_ERROR_BODY);
  if (st->request_id) {
    /* The caller's id may have been sent before (a restart): never run it twice. */
    snprintf(op->request_id, sizeof op->request_id, "%s", st->request_id);
    op->resubmit = true;
  } else
    hl__sf_uuid(sf, op->request_id);
  int rc;
  op->submit_body = submit_body(sf, st, &rc);
  if (!op->submit_body)
    return rc;
  op->async = st->async;
  op->phase = HL__SF_SUBMIT;
  long tmo = st->timeout_ms > 0 ? st->timeout_ms : sf->statement_timeout_ms;
  /* The server cancels at the timeout; the client gives it a little longer. */
  op->deadline_ms = hl__sf_now_ms() + (uint64_t)tmo + 5000;
  op->poll_ms = 25;
  op->retry_after_ms = -1;
  op->started_ms = hl__sf_now_ms();
  snprintf(op->err.request_id, sizeof op->err.request_id, "%s", op->request_id);
  return 0;
}

void hl__sf_op_clear(hl__sf_op *op) {
  if (op->easy)
    curl_easy_cleanup(op->easy);
  curl_slist_free_all(op->headers);
  free(op->submit_body);
  hl_buf_free(&op->resp);
  hl_snowflake_result_free(op->res);
  memset(op, 0, sizeof *op);
}

int hl__sf_op_prepare(hl__sf_op *op) {
  hl_snowflake *sf = op->sf;
  if (!op->easy && !(op->easy = curl_easy_init()))
    return -ENOMEM;
  switch (op->phase) {
  case HL__SF_SUBMIT:
    snprintf(op->url, sizeof op->url, "%s/api/v2/statements?requestId=%s%s%s", sf->url, op->request_id,
             op->resubmit ? "&retry=true" : "", op->async ? "&async=true" : "");
    break;
  case HL__SF_POLL:
    snprintf(op->url, sizeof op->url, "%s/api/v2/statements/%s?requestId=%s", sf->url, op->handle,
             op->request_id);
    break;
  case HL__SF_FETCH:
    snprintf(op->url, sizeof op->url, "%s/api/v2/statements/%s?partition=%zu", sf->url, op->handle,
             op->partition);
    break;
  case HL__SF_CANCEL:
    snprintf(op->url, sizeof op->url, "%s/api/v2/statements/%s/cancel", sf->url, op->handle);
    break;
  }
  int rc = hl__sf_easy_setup(sf, op->easy, &op->headers, op->url, NULL, "KEYPAIR_JWT",
                             op->phase == HL__SF_SUBMIT || op->phase == HL__SF_CANCEL ? "application/json" : NULL,
                             NULL);
  if (rc < 0)
    return rc;
  if (op->phase == HL__SF_SUBMIT) {
    curl_easy_setopt(op->easy, CURLOPT_POSTFIELDS, op->submit_body);
    curl_easy_setopt(op->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(op->submit_body));
  } else if (op->phase == HL__SF_CANCEL) {
    curl_easy_setopt(op->easy, CURLOPT_POSTFIELDS, "");
    curl_easy_setopt(op->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)0);
  }
  curl_easy_setopt(op->easy, CURLOPT_WRITEFUNCTION, write_cb);
  curl_easy_setopt(op->easy, CURLOPT_WRITEDATA, op);
  curl_easy_setopt(op->easy, CURLOPT_HEADERFUNCTION, header_cb);
  curl_easy_setopt(op->easy, CURLOPT_HEADERDATA, op);
  curl_easy_setopt(op->easy, CURLOPT_PRIVATE, op);
  /* A result partition may be large; error and status bodies stay small. */
  hl_buf_free(&op->resp);
  hl_buf_init(&op->resp, (size_t)sf->max_result);
  op->retry_after_ms = -1;
  op->overflow = false;
  op->err.attempts++;
  return 0;
}

static hl__sf_next finish(hl__sf_op *op, int rc) {
  op->rc = rc;
  if (op->started_ms)
    hl__sf_duration(op->sf, rc == 0, (double)(hl__sf_now_ms() - op->started_ms) / 1000.0);
  if (rc < 0) {
    op->res = hl_snowflake_result_free(op->res);
  } else {
    /* Success: the error fields say nothing. */
    int attempts = op->err.attempts;
    char rid[40];
    memcpy(rid, op->err.request_id, sizeof rid);
    memset(&op->err, 0, sizeof op->err);
    op->err.attempts = attempts;
    memcpy(op->err.request_id, rid, sizeof rid);
  }
  return HL__SF_DONE;
}

static hl__sf_next send_after(hl__sf_op *op, long delay_ms) {
  op->delay_ms = delay_ms;
  return HL__SF_SEND;
}

/* Moves to polling (or to cancelling when the deadline is near). */
static hl__sf_next poll_later(hl__sf_op *op) {
  if (hl__sf_now_ms() + (uint64_t)op->poll_ms >= op->deadline_ms) {
    op->phase = HL__SF_CANCEL;
    op->cancel_rc = HL_ETIMEOUT;
    op->retries = 0;
    snprintf(op->err.message, sizeof op->err.message, "statement still running at the client deadline; cancelled");
    return send_after(op, 0);
  }
  op->phase = HL__SF_POLL;
  long d = op->poll_ms;
  op->poll_ms = op->poll_ms * 2 > op->sf->poll_max_ms ? op->sf->poll_max_ms : op->poll_ms * 2;
  return send_after(op, d);
}

/* A whole result (partition 0) arrived. */
static hl__sf_next got_result(hl__sf_op *op) {
  hl_snowflake_result *r = NULL;
  int rc = hl_snowflake_result_parse(op->resp.data, op->resp.len, op->sf->max_result, &r);
  if (rc < 0) {
    snprintf(op->err.message, sizeof op->err.message, "unreadable result: %s", hl_strerror(rc));
    return finish(op, rc);
  }
  op->res = r;
  const char *h = hl_snowflake_result_handle(r);
  if (h)
    snprintf(op->handle, sizeof op->handle, "%s", h);
  if (hl_snowflake_result_partitions(r) > 1) {
    if (!op->handle[0])
      return finish(op, HL_EPARSE);
    op->phase = HL__SF_FETCH;
    op->partition = 1;
    op->retries = 0;
    return send_after(op, 0);
  }
  return finish(op, 0);
}

static bool retriable_status(long s) {
  return s == 429 || s == 503 || s == 504;
}

hl__sf_next hl__sf_op_step(hl__sf_op *op, CURLcode cc) {
  long status = 0;
  if (cc == CURLE_OK)
    curl_easy_getinfo(op->easy, CURLINFO_RESPONSE_CODE, &status);
  hl_snowflake_error *e = &op->err;
  static const char *const endpoints[] = {[HL__SF_SUBMIT] = "statements", [HL__SF_POLL] = "statement",
                                          [HL__SF_FETCH] = "partition", [HL__SF_CANCEL] = "cancel"};
  hl__sf_count(op->sf, endpoints[op->phase], status);

  if (op->phase == HL__SF_CANCEL) {
    /* Whatever the answer, the statement's outcome is what made us cancel. */
    e->http_status = status == 200 ? e->http_status : (int)status;
    return finish(op, op->cancel_rc);
  }

  if (cc != CURLE_OK || retriable_status(status)) {
    if (cc == CURLE_WRITE_ERROR && op->overflow) {
      snprintf(e->message, sizeof e->message, "answer larger than the result cap");
      return finish(op, HL_ELIMIT);
    }
    e->http_status = (int)status;
    if (cc != CURLE_OK)
      snprintf(e->message, sizeof e->message, "%s", curl_easy_strerror(cc));
    else
      read_status(e, op->resp.data, op->resp.len);
    if (op->retries >= op->sf->max_retries)
      return finish(op, cc != CURLE_OK ? HL_EIO : HL_EHTTP);
    if (op->phase == HL__SF_SUBMIT)
      op->resubmit = true; /* the server may have started it: never twice */
    hl__sf_retry(op->sf, retry_reason(cc, status));
    return send_after(op, hl__sf_backoff(op->sf, op->retries++, op->retry_after_ms));
  }

  if (status == 401) {
    e->http_status = 401;
    read_status(e, op->resp.data, op->resp.len);
    if (op->refreshed)
      return finish(op, HL_EHTTP);
    op->refreshed = true;
    hl__sf_retry(op->sf, "401");
    hl__sf_token_invalidate(op->sf);
    if (op->phase == HL__SF_SUBMIT)
      op->resubmit = true;
    return send_after(op, 0);
  }

  switch (status) {
  case 200:
    op->retries = 0;
    if (op->phase == HL__SF_FETCH) {
      int rc = hl_snowflake_result_add_partition(op->res, op->resp.data, op->resp.len);
      if (rc < 0) {
        snprintf(e->message, sizeof e->message, "unreadable partition %zu: %s", op->partition, hl_strerror(rc));
        return finish(op, rc);
      }
      if (++op->partition < hl_snowflake_result_partitions(op->res))
        return send_after(op, 0);
      return finish(op, 0);
    }
    return got_result(op);
  case 202: {
    op->retries = 0;
    json_t *j = json_loadb(op->resp.data, op->resp.len, 0, NULL);
    const char *h = json_string_value(json_object_get(j, "statementHandle"));
    if (h && strlen(h) < sizeof op->handle && strspn(h, "0123456789abcdefABCDEF-") == strlen(h))
      snprintf(op->handle, sizeof op->handle, "%s", h);
    json_decref(j);
    if (!op->handle[0]) {
      snprintf(e->message, sizeof e->message, "202 without a statement handle");
      return finish(op, HL_EPARSE);
    }
    snprintf(e->statement_handle, sizeof e->statement_handle, "%s", op->handle);
    return poll_later(op);
  }
  case 408:
    e->http_status = 408;
    read_status(e, op->resp.data, op->resp.len);
    return finish(op, HL_ETIMEOUT);
  default:
    e->http_status = (int)status;
    read_status(e, op->resp.data, op->resp.len);
    /* A statement that reached its timeout while we polled: 422 with 000630. */
    if (status == 422 && !strcmp(e->code, "000630"))
      return finish(op, HL_ETIMEOUT);
    return finish(op, HL_EHTTP);
  }
}

/* ------------------------------------------------------------------------ */
/* The blocking driver.                                                      */

void hl__sf_sleep_ms(long ms) {
  if (ms <= 0)
    return;
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
  }
}

static bool valid_handle(const char *h) {
  return h && *h && strlen(h) < 64 && strspn(h, "0123456789abcdefABCDEF-") == strlen(h);
}

/* Runs op (initialised) to its end with blocking requests. */
static int drive(hl__sf_op *op, hl_snowflake_result **out, hl_snowflake_error *err);

int hl_snowflake_exec(hl_snowflake *sf, const hl_snowflake_stmt *st, hl_snowflake_result **out,
                      hl_snowflake_error *err) {
  hl__sf_op op;
  int rc = hl__sf_op_init(&op, sf, st);
  if (rc < 0) {
    hl__sf_op_clear(&op);
    if (err)
      memset(err, 0, sizeof *err);
    return rc;
  }
  return drive(&op, out, err);
}

int hl_snowflake_fetch(hl_snowflake *sf, const char *handle, hl_snowflake_result **out, hl_snowflake_error *err) {
  hl__sf_op op;
  hl_snowflake_stmt st = {.sql = ""};
  int rc = valid_handle(handle) ? hl__sf_op_init(&op, sf, &st) : -EINVAL;
  if (rc < 0) {
    if (rc != -EINVAL)
      hl__sf_op_clear(&op);
    if (err)
      memset(err, 0, sizeof *err);
    return rc;
  }
  snprintf(op.handle, sizeof op.handle, "%s", handle);
  op.phase = HL__SF_POLL;
  return drive(&op, out, err);
}

static int drive(hl__sf_op *op, hl_snowflake_result **out, hl_snowflake_error *err) {
  int rc;
  for (;;) {
    rc = hl__sf_op_prepare(op);
    if (rc < 0) {
      op->rc = rc;
      break;
    }
    CURLcode cc = curl_easy_perform(op->easy);
    if (hl__sf_op_step(op, cc) == HL__SF_DONE)
      break;
    hl__sf_sleep_ms(op->delay_ms);
  }
  rc = op->rc;
  if (err)
    *err = op->err;
  if (rc == 0 && out) {
    *out = op->res;
    op->res = NULL;
  }
  hl__sf_op_clear(op);
  return rc;
}

int hl_snowflake_query(hl_snowflake *sf, const char *sql, const char *const *args, size_t nargs,
                       hl_snowflake_result **out, hl_snowflake_error *err) {
  hl_snowflake_bind binds[64];
  if (nargs > sizeof binds / sizeof *binds)
    return -EINVAL;
  for (size_t i = 0; i < nargs; i++)
    binds[i] = (hl_snowflake_bind){.type = HL_SF_TEXT, .value = args[i]};
  hl_snowflake_stmt st = {.sql = sql, .binds = binds, .nbinds = nargs};
  return hl_snowflake_exec(sf, &st, out, err);
}

int hl_snowflake_cancel(hl_snowflake *sf, const char *handle, hl_snowflake_error *err) {
  if (!sf || !valid_handle(handle))
    return -EINVAL;
  hl__sf_op op;
  hl_snowflake_stmt st = {.sql = ""};
  int rc = hl__sf_op_init(&op, sf, &st);
  if (rc == 0) {
    snprintf(op.handle, sizeof op.handle, "%s", handle);
    op.phase = HL__SF_CANCEL;
    for (int attempt = 0;; attempt++) {
      if ((rc = hl__sf_op_prepare(&op)) < 0)
        break;
      CURLcode cc = curl_easy_perform(op.easy);
      long status = 0;
      curl_easy_getinfo(op.easy, CURLINFO_RESPONSE_CODE, &status);
      hl__sf_count(sf, "cancel", status);
      op.err.http_status = (int)status;
      if (cc == CURLE_OK && status == 200) {
        rc = 0;
        break;
      }
      if (cc == CURLE_OK)
        read_status(&op.err, op.resp.data, op.resp.len);
      else
        snprintf(op.err.message, sizeof op.err.message, "%s", curl_easy_strerror(cc));
      if (status == 401 && attempt == 0) {
        hl__sf_token_invalidate(sf);
        continue;
      }
      if ((cc != CURLE_OK || retriable_status(status)) && attempt < sf->max_retries) {
        hl__sf_sleep_ms(hl__sf_backoff(sf, attempt, op.retry_after_ms));
        continue;
      }
      rc = cc != CURLE_OK ? HL_EIO : HL_EHTTP;
      break;
    }
  }
  if (err)
    *err = op.err;
  hl__sf_op_clear(&op);
  return rc;
}
