/* Bearer JWT verification and SMART scopes (see auth.h). */
#include "auth.h"

#include <cjose/cjose.h>
#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fhirtypes.h"
#include "hl/buf.h"
#include "hl/error.h"
#include "hl/log.h"

#define MAX_KEYS 64
#define MAX_JWKS_BYTES (256 * 1024)

typedef struct key {
  char kid[128];
  int kty;          /* CJOSE_JWK_KTY_* */
  char alg[16];     /* the JWK's own alg, "" when absent */
  cjose_jwk_t *jwk;
} key;

/* Verified tokens, so that a client reusing its token pays one signature check. */
#define CACHE_SLOTS 1024
typedef struct cached_token {
  char *token;
  double exp, nbf; /* nbf 0 when absent */
  hl_api_principal p;
} cached_token;

struct hl_api_auth {
  cached_token cache[CACHE_SLOTS];
  hl_api_auth_opts o;
  char *issuer, *audience, *tenant_claim, *ingest_scope, *jwks_url;
  key file_keys[MAX_KEYS];
  size_t nfile;
  key url_keys[MAX_KEYS];
  size_t nurl;
  time_t last_fetch;
  cjose_jwk_t *hs_key;
};

static int fail(char *err, size_t errlen, int rc, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int fail(char *err, size_t errlen, int rc, const char *fmt, ...) {
  if (err && errlen) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
  }
  return rc;
}

static void keys_clear(key *k, size_t *n) {
  for (size_t i = 0; i < *n; i++)
    cjose_jwk_release(k[i].jwk);
  *n = 0;
}

/* Loads the public signing keys of a JWKS document; keys that are not RSA or EC P-256, or not for signing, are skipped. */
static int jwks_load(const char *text, size_t len, key *keys, size_t *n, char *err, size_t errlen) {
  json_error_t je;
  json_t *doc = json_loadb(text, len, 0, &je);
  json_t *arr = doc ? json_object_get(doc, "keys") : NULL;
  if (!json_is_array(arr)) {
    json_decref(doc);
    return fail(err, errlen, HL_EPARSE, "not a JWKS document (an object with a keys array)");
  }
  key tmp[MAX_KEYS];
  size_t nk = 0;
  size_t i;
  json_t *k;
  json_array_foreach(arr, i, k) {
    const char *kty = json_string_value(json_object_get(k, "kty"));
    const char *use = json_string_value(json_object_get(k, "use"));
    const char *alg = json_string_value(json_object_get(k, "alg"));
    const char *kid = json_string_value(json_object_get(k, "kid"));
    const char *crv = json_string_value(json_object_get(k, "crv"));
    if (!kty || (use && strcmp(use, "sig")) || nk == MAX_KEYS)
      continue;
    if (strcmp(kty, "RSA") && !(!strcmp(kty, "EC") && crv && !strcmp(crv, "P-256")))
      continue;
    if (json_object_get(k, "d"))
      continue; /* a private key has no place in a verification key set */
    char *s = json_dumps(k, JSON_COMPACT);
    cjose_err ce;
    cjose_jwk_t *jwk = s ? cjose_jwk_import(s, strlen(s), &ce) : NULL;
    free(s);
    if (!jwk)
      continue;
    key *o = &tmp[nk++];
    memset(o, 0, sizeof *o);
    snprintf(o->kid, sizeof o->kid, "%s", kid ? kid : "");
    snprintf(o->alg, sizeof o->alg, "%s", alg ? alg : "");
    o->kty = cjose_jwk_get_kty(jwk, &ce);
    o->jwk = jwk;
  }
  json_decref(doc);
  keys_clear(keys, n);
  memcpy(keys, tmp, nk * sizeof *tmp);
  *n = nk;
  return 0;
}

static size_t curl_write(char *ptr, size_t size, size_t nmemb, void *ud) {
  hl_buf *b = ud;
  return hl_buf_append(b, ptr, size * nmemb) < 0 ? 0 : size * nmemb;
}

static int fetch_url(hl_api_auth *a, time_t now) {
  a->last_fetch = now;
  CURL *c = curl_easy_init();
  if (!c)
    return -ENOMEM;
  hl_buf b;
  hl_buf_init(&b, MAX_JWKS_BYTES);
  curl_easy_setopt(c, CURLOPT_URL, a->jwks_url);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, curl_write);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, a->o.fetch_timeout_ms > 0 ? a->o.fetch_timeout_ms : 3000L);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  CURLcode cr = curl_easy_perform(c);
  long code = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
  curl_easy_cleanup(c);
  int rc = 0;
  char err[256];
  if (cr != CURLE_OK || code != 200) {
    hl_log_kv(HL_LOG_WARN, "JWKS fetch failed", "url", a->jwks_url, "error",
              cr != CURLE_OK ? curl_easy_strerror(cr) : "status not 200", NULL);
    rc = HL_EIO;
  } else if ((rc = jwks_load(b.data ? b.data : "", b.len, a->url_keys, &a->nurl, err, sizeof err)) < 0) {
    hl_log_kv(HL_LOG_WARN, "JWKS fetch unreadable", "url", a->jwks_url, "error", err, NULL);
  } else {
    for (size_t i = 0; i < CACHE_SLOTS; i++) {
      free(a->cache[i].token);
      a->cache[i].token = NULL;
    }
  }
  hl_buf_free(&b);
  return rc;
}

static char *dup_or_empty(const char *s) { return strdup(s ? s : ""); }

int hl_api_auth_new(const hl_api_auth_opts *opts, hl_api_auth **out, char *err, size_t errlen) {
  if (!opts->issuer || !*opts->issuer || !opts->audience || !*opts->audience)
    return fail(err, errlen, HL_ECONFIG, "an issuer and an audience are required");
  bool file = opts->jwks_file && *opts->jwks_file, url = opts->jwks_url && *opts->jwks_url;
  if (!file && !url && !opts->allow_hs256)
    return fail(err, errlen, HL_ECONFIG, "no keys: set HL_API_JWKS_FILE or HL_API_JWKS_URL (or HS256 for local use)");
  if (opts->allow_hs256 && (!opts->hs256_secret || strlen(opts->hs256_secret) < 32))
    return fail(err, errlen, HL_ECONFIG, "HS256 needs a secret of at least 32 bytes");
  hl_api_auth *a = calloc(1, sizeof *a);
  if (!a)
    return -ENOMEM;
  a->o = *opts;
  a->issuer = dup_or_empty(opts->issuer);
  a->audience = dup_or_empty(opts->audience);
  a->tenant_claim = dup_or_empty(opts->tenant_claim && *opts->tenant_claim ? opts->tenant_claim : "tenant");
  a->ingest_scope = dup_or_empty(opts->ingest_scope && *opts->ingest_scope ? opts->ingest_scope : "system/hl.ingest");
  a->jwks_url = url ? strdup(opts->jwks_url) : NULL;
  int rc = 0;
  if (!a->issuer || !a->audience || !a->tenant_claim || !a->ingest_scope || (url && !a->jwks_url)) {
    rc = -ENOMEM;
    goto fail;
  }
  if (file) {
    FILE *f = fopen(opts->jwks_file, "rb");
    if (!f) {
      rc = fail(err, errlen, HL_ECONFIG, "HL_API_JWKS_FILE %s: %s", opts->jwks_file, strerror(errno));
      goto fail;
    }
    char *buf = malloc(MAX_JWKS_BYTES);
    size_t n = buf ? fread(buf, 1, MAX_JWKS_BYTES, f) : 0;
    fclose(f);
    if (!buf) {
      rc = -ENOMEM;
      goto fail;
    }
    char e2[200];
    rc = jwks_load(buf, n, a->file_keys, &a->nfile, e2, sizeof e2);
    free(buf);
    if (rc < 0) {
      rc = fail(err, errlen, HL_ECONFIG, "HL_API_JWKS_FILE %s: %s", opts->jwks_file, e2);
      goto fail;
    }
  }
  if (opts->allow_hs256) {
    cjose_err ce;
    a->hs_key = cjose_jwk_create_oct_spec((const uint8_t *)opts->hs256_secret, strlen(opts->hs256_secret), &ce);
    if (!a->hs_key) {
      rc = -ENOMEM;
      goto fail;
    }
  }
  if (url)
    fetch_url(a, time(NULL));
  *out = a;
  return 0;
fail:
  hl_api_auth_free(a);
  return rc;
}

hl_api_auth *hl_api_auth_free(hl_api_auth *a) {
  if (!a)
    return NULL;
  keys_clear(a->file_keys, &a->nfile);
  keys_clear(a->url_keys, &a->nurl);
  for (size_t i = 0; i < CACHE_SLOTS; i++)
    free(a->cache[i].token);
  if (a->hs_key)
    cjose_jwk_release(a->hs_key);
  free(a->issuer);
  free(a->audience);
  free(a->tenant_claim);
  free(a->ingest_scope);
  free(a->jwks_url);
  free(a);
  return NULL;
}

size_t hl_api_auth_nkeys(const hl_api_auth *a) { return a->nfile + a->nurl; }

/* ---- Scopes --------------------------------------------------------------------------- */

static void scope_one(const char *s, size_t n, const char *ingest, hl_api_principal *p) {
  char buf[160];
  if (n == 0 || n >= sizeof buf)
    return;
  memcpy(buf, s, n);
  buf[n] = 0;
  if (!strcmp(buf, ingest)) {
    p->ingest = true;
    return;
  }
  if (strchr(buf, '?'))
    return; /* granular v2 scopes are not supported: they grant nothing here */
  char *slash = strchr(buf, '/'), *dot = strrchr(buf, '.');
  if (!slash || !dot || dot < slash)
    return;
  *slash = 0;
  *dot = 0;
  const char *ctx = buf, *type = slash + 1, *perm = dot + 1;
  bool patient = !strcmp(ctx, "patient");
  if (!patient && strcmp(ctx, "user") && strcmp(ctx, "system"))
    return;
  bool rd = false, sr = false;
  if (!strcmp(perm, "read") || !strcmp(perm, "*")) {
    rd = sr = true;
  } else if (!strcmp(perm, "write")) {
    return;
  } else {
    /* SMART v2: a subset of c r u d s, in that order. */
    const char *order = "cruds";
    const char *o = order;
    for (const char *q = perm; *q; q++) {
      const char *at = strchr(o, *q);
      if (!at)
        return;
      o = at + 1;
      if (*q == 'r')
        rd = true;
      if (*q == 's')
        sr = true;
    }
  }
  uint32_t bits = 0;
  if (!strcmp(type, "*")) {
    bits = (uint32_t)((1ULL << hl_api_ntypes) - 1);
  } else {
    int i = hl_api_type_index(type);
    if (i < 0)
      return;
    bits = 1u << i;
  }
  if (patient) {
    if (rd)
      p->read_patient |= bits;
    if (sr)
      p->search_patient |= bits;
  } else {
    if (rd)
      p->read_broad |= bits;
    if (sr)
      p->search_broad |= bits;
  }
}

void hl_api_scopes_parse(const char *scopes, const char *ingest_scope, hl_api_principal *p) {
  const char *s = scopes ? scopes : "";
  while (*s) {
    while (*s == ' ')
      s++;
    size_t n = strcspn(s, " ");
    scope_one(s, n, ingest_scope ? ingest_scope : "system/hl.ingest", p);
    s += n;
  }
}

/* ---- Verification ---------------------------------------------------------------------- */

static long b64url_decode(const char *in, size_t n, unsigned char *out, size_t cap) {
  static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  uint32_t acc = 0;
  int bits = 0;
  size_t o = 0;
  for (size_t i = 0; i < n; i++) {
    const char *p = in[i] ? memchr(tbl, in[i], 64) : NULL;
    if (!p)
      return -1;
    acc = (acc << 6) | (uint32_t)(p - tbl);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      if (o == cap)
        return -1;
      out[o++] = (unsigned char)((acc >> bits) & 0xff);
    }
  }
  return (long)o;
}

static json_t *decode_part(const char *s, size_t n) {
  unsigned char buf[HL_API_MAX_TOKEN_BYTES];
  long dn = b64url_decode(s, n, buf, sizeof buf);
  if (dn <= 0)
    return NULL;
  return json_loadb((const char *)buf, (size_t)dn, JSON_REJECT_DUPLICATES, NULL);
}

static const key *find_key(const key *keys, size_t n, const char *kid, int kty) {
  const key *only = NULL;
  size_t matches = 0;
  for (size_t i = 0; i < n; i++) {
    if (keys[i].kty != kty)
      continue;
    if (kid && !strcmp(keys[i].kid, kid))
      return &keys[i];
    if (!kid) {
      only = &keys[i];
      matches++;
    }
  }
  return matches == 1 ? only : NULL;
}

static bool valid_tenant(const char *t) {
  size_t n = strlen(t);
  if (n == 0 || n > 64)
    return false;
  for (size_t i = 0; i < n; i++) {
    char c = t[i];
    if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
          c == '_' || c == '-'))
      return false;
  }
  return true;
}

#define DENY(r, ...) do { *reason = (r); rc = fail(err, errlen, HL_EPARSE, __VA_ARGS__); goto out; } while (0)

int hl_api_auth_verify(hl_api_auth *a, const char *authz, time_t now, hl_api_principal *p,
                       const char **reason, char *err, size_t errlen) {
  json_t *hdr = NULL, *claims = NULL;
  cjose_jws_t *jws = NULL;
  int rc = 0;
  *reason = "ok";
  if (!authz)
    DENY("missing", "no Authorization header");
  if (strncasecmp(authz, "Bearer ", 7))
    DENY("malformed", "Authorization is not a Bearer token");
  const char *tok = authz + 7;
  while (*tok == ' ')
    tok++;
  size_t tl = strlen(tok);
  if (tl == 0 || tl > HL_API_MAX_TOKEN_BYTES)
    DENY("malformed", "empty or oversized token");
  uint64_t h = 1469598103934665603ULL;
  for (size_t i = 0; i < tl; i++)
    h = (h ^ (unsigned char)tok[i]) * 1099511628211ULL;
  cached_token *ct = &a->cache[h % CACHE_SLOTS];
  if (ct->token && !strcmp(ct->token, tok)) {
    if ((double)now > ct->exp + (double)a->o.skew_s)
      DENY("expired", "token expired");
    if (ct->nbf && (double)now + (double)a->o.skew_s < ct->nbf)
      DENY("not_yet_valid", "token not valid yet (nbf)");
    *p = ct->p;
    return 0;
  }
  const char *d1 = memchr(tok, '.', tl);
  const char *d2 = d1 ? memchr(d1 + 1, '.', tl - (size_t)(d1 + 1 - tok)) : NULL;
  if (!d1 || !d2 || memchr(d2 + 1, '.', tl - (size_t)(d2 + 1 - tok)) || d2 + 1 == tok + tl)
    DENY("malformed", "not a compact JWS (three parts, signed)");
  hdr = decode_part(tok, (size_t)(d1 - tok));
  if (!json_is_object(hdr))
    DENY("malformed", "unreadable JOSE header");
  const char *alg = json_string_value(json_object_get(hdr, "alg"));
  const char *kid = json_string_value(json_object_get(hdr, "kid"));
  if (json_object_get(hdr, "kid") && !kid)
    DENY("malformed", "kid is not a string");
  if (!alg)
    DENY("malformed", "no alg");
  if (json_object_get(hdr, "crit"))
    DENY("alg", "crit headers are not supported");
  int kty;
  if (!strcmp(alg, "RS256"))
    kty = CJOSE_JWK_KTY_RSA;
  else if (!strcmp(alg, "ES256"))
    kty = CJOSE_JWK_KTY_EC;
  else if (!strcmp(alg, "HS256") && a->hs_key)
    kty = CJOSE_JWK_KTY_OCT;
  else
    DENY("alg", "alg %.16s is not accepted", alg);
  const cjose_jwk_t *jwk = NULL;
  if (kty == CJOSE_JWK_KTY_OCT) {
    jwk = a->hs_key;
  } else {
    const key *k = find_key(a->file_keys, a->nfile, kid, kty);
    if (!k)
      k = find_key(a->url_keys, a->nurl, kid, kty);
    if (!k && a->jwks_url) {
      long min = a->o.refresh_min_s >= 0 ? a->o.refresh_min_s : 30;
      if (a->last_fetch == 0 || now - a->last_fetch >= min || now < a->last_fetch) {
        fetch_url(a, now);
        k = find_key(a->url_keys, a->nurl, kid, kty);
      }
    }
    if (!k)
      DENY("unknown_kid", "no key for kid %.64s", kid ? kid : "(none)");
    if (k->alg[0] && strcmp(k->alg, alg))
      DENY("alg", "the key is for %s, not %s", k->alg, alg);
    jwk = k->jwk;
  }
  cjose_err ce;
  jws = cjose_jws_import(tok, tl, &ce);
  if (!jws)
    DENY("malformed", "unreadable JWS");
  if (!cjose_jws_verify(jws, jwk, &ce))
    DENY("signature", "bad signature");
  uint8_t *plain = NULL;
  size_t plen = 0;
  if (!cjose_jws_get_plaintext(jws, &plain, &plen, &ce))
    DENY("malformed", "no payload");
  claims = json_loadb((const char *)plain, plen, JSON_REJECT_DUPLICATES, NULL);
  if (!json_is_object(claims))
    DENY("malformed", "claims are not a JSON object");
  json_t *exp = json_object_get(claims, "exp"), *nbf = json_object_get(claims, "nbf");
  if (!json_is_number(exp))
    DENY("expired", "exp is required");
  if ((double)now > json_number_value(exp) + (double)a->o.skew_s)
    DENY("expired", "token expired");
  if (nbf && !json_is_number(nbf))
    DENY("malformed", "nbf is not a number");
  if (nbf && (double)now + (double)a->o.skew_s < json_number_value(nbf))
    DENY("not_yet_valid", "token not valid yet (nbf)");
  const char *iss = json_string_value(json_object_get(claims, "iss"));
  if (!iss || strcmp(iss, a->issuer))
    DENY("issuer", "wrong issuer");
  json_t *aud = json_object_get(claims, "aud");
  bool aud_ok = false;
  if (json_is_string(aud)) {
    aud_ok = !strcmp(json_string_value(aud), a->audience);
  } else if (json_is_array(aud)) {
    size_t i;
    json_t *v;
    json_array_foreach(aud, i, v) aud_ok |= json_is_string(v) && !strcmp(json_string_value(v), a->audience);
  }
  if (!aud_ok)
    DENY("audience", "wrong audience");
  const char *tenant = json_string_value(json_object_get(claims, a->tenant_claim));
  if (!tenant || !valid_tenant(tenant))
    DENY("tenant", "no valid %s claim", a->tenant_claim);
  hl_api_principal pr;
  memset(&pr, 0, sizeof pr);
  const char *sub = json_string_value(json_object_get(claims, "sub"));
  snprintf(pr.sub, sizeof pr.sub, "%s", sub ? sub : "");
  snprintf(pr.tenant, sizeof pr.tenant, "%s", tenant);
  const char *pat = json_string_value(json_object_get(claims, "patient"));
  if (pat && strlen(pat) < sizeof pr.patient)
    snprintf(pr.patient, sizeof pr.patient, "%s", pat);
  json_t *scope = json_object_get(claims, "scope");
  if (json_is_string(scope)) {
    hl_api_scopes_parse(json_string_value(scope), a->ingest_scope, &pr);
  } else {
    json_t *scp = json_object_get(claims, "scp");
    size_t i;
    json_t *v;
    json_array_foreach(scp, i, v) if (json_is_string(v)) hl_api_scopes_parse(json_string_value(v), a->ingest_scope, &pr);
  }
  if (!pr.patient[0]) {
    /* Patient scopes without a patient in context grant nothing. */
    pr.read_patient = pr.search_patient = 0;
  }
  *p = pr;
  /* Remember the verified token; the cache is emptied whenever the JWKS
     URL's keys are replaced, so a key removed there stops working. */
  char *copy = strdup(tok);
  if (copy) {
    free(ct->token);
    ct->token = copy;
    ct->exp = json_number_value(exp);
    ct->nbf = nbf ? json_number_value(nbf) : 0;
    ct->p = pr;
  }
out:
  if (jws)
    cjose_jws_release(jws);
  json_decref(hdr);
  json_decref(claims);
  return rc;
}
