/* hl-api-gateway: JWT verification and SMART scopes (workers/api-gateway/auth.c). */
#include <cjose/cjose.h>
#include <jansson.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth.h"
#include "fhirtypes.h"
#include "hl/error.h"
#include "hl_test.h"

HL_TEST_SUITE(api_auth);

#define ISS "https://issuer.test"
#define AUD "hl-test"
#define SECRET "0123456789abcdef0123456789abcdef-local"

static cjose_jwk_t *rsa, *ec, *rsa_other;
static char jwks_path[64];

static cjose_jwk_t *gen(bool is_rsa, const char *kid) {
  cjose_err e;
  static const uint8_t ex[] = {1, 0, 1};
  cjose_jwk_t *k = is_rsa ? cjose_jwk_create_RSA_random(2048, ex, 3, &e) : cjose_jwk_create_EC_random(CJOSE_JWK_EC_P_256, &e);
  cr_assert_not_null(k);
  cr_assert(cjose_jwk_set_kid(k, kid, strlen(kid), &e));
  return k;
}

static void setup_keys(void) {
  rsa = gen(true, "rsa-1");
  ec = gen(false, "ec-1");
  rsa_other = gen(true, "rsa-unknown");
  cjose_err e;
  char *a = cjose_jwk_to_json(rsa, false, &e), *b = cjose_jwk_to_json(ec, false, &e);
  snprintf(jwks_path, sizeof jwks_path, "/tmp/hl-test-jwks-%d.json", (int)getpid());
  FILE *f = fopen(jwks_path, "w");
  fprintf(f, "{\"keys\":[%s,%s]}", a, b);
  fclose(f);
  free(a);
  free(b);
}

static void teardown_keys(void) {
  cjose_jwk_release(rsa);
  cjose_jwk_release(ec);
  cjose_jwk_release(rsa_other);
  unlink(jwks_path);
}

static hl_api_auth *new_auth(bool hs) {
  hl_api_auth_opts o = {.jwks_file = jwks_path, .issuer = ISS, .audience = AUD, .skew_s = 30,
                        .allow_hs256 = hs, .hs256_secret = SECRET, .tenant_claim = "org"};
  hl_api_auth *a;
  char err[256];
  cr_assert_eq(hl_api_auth_new(&o, &a, err, sizeof err), 0, "%s", err);
  return a;
}

/* Signs claims (JSON text) with key under alg; returns "Bearer <jws>" (malloc'ed). */
static char *bearer(cjose_jwk_t *k, const char *alg, const char *kid, const char *claims) {
  cjose_err e;
  cjose_header_t *h = cjose_header_new(&e);
  cjose_header_set(h, CJOSE_HDR_ALG, alg, &e);
  if (kid)
    cjose_header_set(h, CJOSE_HDR_KID, kid, &e);
  cjose_jws_t *jws = cjose_jws_sign(k, h, (const uint8_t *)claims, strlen(claims), &e);
  cr_assert_not_null(jws, "%s", e.message);
  const char *s;
  cr_assert(cjose_jws_export(jws, &s, &e));
  char *out = malloc(strlen(s) + 8);
  sprintf(out, "Bearer %s", s);
  cjose_jws_release(jws);
  cjose_header_release(h);
  return out;
}

static char *claims(const char *extra, long exp_in, long nbf_in) {
  static char buf[1024];
  time_t now = time(NULL);
  snprintf(buf, sizeof buf, "{\"iss\":\"%s\",\"aud\":[\"x\",\"%s\"],\"sub\":\"u1\",\"org\":\"org-1\",\"exp\":%ld,\"nbf\":%ld,"
           "\"scope\":\"system/*.read system/hl.ingest\"%s}",
           ISS, AUD, (long)now + exp_in, (long)now + nbf_in, extra ? extra : "");
  return buf;
}

static void b64url(const unsigned char *in, size_t n, char *out) {
  static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  size_t o = 0;
  for (size_t i = 0; i < n; i += 3) {
    unsigned v = in[i] << 16 | (i + 1 < n ? in[i + 1] << 8 : 0) | (i + 2 < n ? in[i + 2] : 0);
    out[o++] = t[v >> 18 & 63];
    out[o++] = t[v >> 12 & 63];
    if (i + 1 < n)
      out[o++] = t[v >> 6 & 63];
    if (i + 2 < n)
      out[o++] = t[v & 63];
  }
  out[o] = 0;
}

/* A token built by hand: header and claims as given, HMAC-SHA256 with key (NULL: empty signature). */
static char *handmade(const char *hdr, const char *cl, const void *key, size_t keylen) {
  static char out[8192];
  char h[1024], c[2048], sig[128] = "";
  b64url((const unsigned char *)hdr, strlen(hdr), h);
  b64url((const unsigned char *)cl, strlen(cl), c);
  char input[4096];
  snprintf(input, sizeof input, "%s.%s", h, c);
  if (key) {
    unsigned char mac[32];
    unsigned int ml;
    HMAC(EVP_sha256(), key, (int)keylen, (const unsigned char *)input, strlen(input), mac, &ml);
    b64url(mac, ml, sig);
  }
  snprintf(out, sizeof out, "Bearer %s.%s", input, sig);
  return out;
}

static int verify(hl_api_auth *a, const char *b, const char **reason) {
  hl_api_principal p;
  char err[256];
  return hl_api_auth_verify(a, b, time(NULL), &p, reason, err, sizeof err);
}

Test(api_auth, accepts_rs256_and_es256, .init = setup_keys, .fini = teardown_keys) {
  hl_api_auth *a = new_auth(false);
  cr_assert_eq(hl_api_auth_nkeys(a), 2);
  char *t1 = bearer(rsa, "RS256", "rsa-1", claims(",\"patient\":\"p1\"", 600, -5));
  char *t2 = bearer(ec, "ES256", "ec-1", claims(NULL, 600, 0));
  hl_api_principal p;
  const char *reason;
  char err[256];
  cr_assert_eq(hl_api_auth_verify(a, t1, time(NULL), &p, &reason, err, sizeof err), 0, "%s", err);
  cr_assert_str_eq(p.tenant, "org-1");
  cr_assert_str_eq(p.sub, "u1");
  cr_assert_str_eq(p.patient, "p1");
  cr_assert_eq(p.read_broad, (1u << hl_api_ntypes) - 1);
  cr_assert(p.ingest);
  cr_assert_eq(hl_api_auth_verify(a, t2, time(NULL), &p, &reason, err, sizeof err), 0, "%s", err);
  free(t1);
  free(t2);
  hl_api_auth_free(a);
}

Test(api_auth, refuses_bad_tokens, .init = setup_keys, .fini = teardown_keys) {
  hl_api_auth *a = new_auth(false);
  const char *r;
  char *t;
  cr_assert_lt(verify(a, NULL, &r), 0);
  cr_assert_str_eq(r, "missing");
  cr_assert_lt(verify(a, "Basic dXNlcjpwdw==", &r), 0);
  cr_assert_lt(verify(a, "Bearer abc.def", &r), 0);
  cr_assert_lt(verify(a, "Bearer a.b.c.d", &r), 0);
  cr_assert_lt(verify(a, "Bearer !!!.???.###", &r), 0);
  cr_assert_str_eq(r, "malformed");
  t = bearer(rsa, "RS256", "rsa-1", claims(NULL, -120, -600)); /* expired beyond the skew */
  cr_assert_lt(verify(a, t, &r), 0);
  cr_assert_str_eq(r, "expired");
  free(t);
  t = bearer(rsa, "RS256", "rsa-1", claims(NULL, -10, -600)); /* expired within the skew */
  cr_assert_eq(verify(a, t, &r), 0);
  free(t);
  t = bearer(rsa, "RS256", "rsa-1", claims(NULL, 3600, 600)); /* not yet valid */
  cr_assert_lt(verify(a, t, &r), 0);
  cr_assert_str_eq(r, "not_yet_valid");
  free(t);
  t = bearer(rsa, "RS256", "rsa-1", "{\"iss\":\"https://evil\",\"aud\":\"hl-test\",\"org\":\"o\",\"exp\":9999999999}");
  cr_assert_lt(verify(a, t, &r), 0);
  cr_assert_str_eq(r, "issuer");
  free(t);
  t = bearer(rsa, "RS256", "rsa-1", "{\"iss\":\"" ISS "\",\"aud\":\"other\",\"org\":\"o\",\"exp\":9999999999}");
  cr_assert_lt(verify(a, t, &r), 0);
  cr_assert_str_eq(r, "audience");
  free(t);
  t = bearer(rsa, "RS256", "rsa-1", "{\"iss\":\"" ISS "\",\"aud\":\"hl-test\",\"exp\":9999999999}");
  cr_assert_lt(verify(a, t, &r), 0);
  cr_assert_str_eq(r, "tenant");
  free(t);
  t = bearer(rsa, "RS256", "rsa-1", "{\"iss\":\"" ISS "\",\"aud\":\"hl-test\",\"org\":\"o\"}");
  cr_assert_lt(verify(a, t, &r), 0, "exp is required");
  free(t);
  t = bearer(rsa_other, "RS256", "rsa-unknown", claims(NULL, 600, 0));
  cr_assert_lt(verify(a, t, &r), 0);
  cr_assert_str_eq(r, "unknown_kid");
  free(t);
  t = bearer(rsa_other, "RS256", "rsa-1", claims(NULL, 600, 0)); /* known kid, wrong key */
  cr_assert_lt(verify(a, t, &r), 0);
  cr_assert_str_eq(r, "signature");
  free(t);
  /* alg none, with and without a signature part. */
  cr_assert_lt(verify(a, handmade("{\"alg\":\"none\"}", claims(NULL, 600, 0), NULL, 0), &r), 0);
  cr_assert_lt(verify(a, handmade("{\"alg\":\"none\",\"kid\":\"rsa-1\"}", claims(NULL, 600, 0), "x", 1), &r), 0);
  cr_assert_str_eq(r, "alg");
  /* Algorithm confusion: HS256 keyed with the RSA public key (its JWK text and its modulus). */
  cjose_err e;
  char *pub = cjose_jwk_to_json(rsa, false, &e);
  cr_assert_lt(verify(a, handmade("{\"alg\":\"HS256\",\"kid\":\"rsa-1\"}", claims(NULL, 600, 0), pub, strlen(pub)), &r), 0);
  cr_assert_str_eq(r, "alg");
  /* ES256 header with the RSA key id: the key type does not fit the alg. */
  t = bearer(rsa, "RS256", "rsa-1", claims(NULL, 600, 0));
  char *dot = strchr(t + 7, '.');
  char hdr[128];
  b64url((const unsigned char *)"{\"alg\":\"ES256\",\"kid\":\"rsa-1\"}", 29, hdr);
  char forged[8192];
  snprintf(forged, sizeof forged, "Bearer %s%s", hdr, dot);
  cr_assert_lt(verify(a, forged, &r), 0);
  free(t);
  hl_api_auth_free(a);
  /* With HS256 enabled, the confusion token still fails: HS256 uses only the configured secret. */
  a = new_auth(true);
  cr_assert_lt(verify(a, handmade("{\"alg\":\"HS256\",\"kid\":\"rsa-1\"}", claims(NULL, 600, 0), pub, strlen(pub)), &r), 0);
  cr_assert_str_eq(r, "signature");
  cr_assert_eq(verify(a, handmade("{\"alg\":\"HS256\"}", claims(NULL, 600, 0), SECRET, strlen(SECRET)), &r), 0);
  free(pub);
  hl_api_auth_free(a);
}

Test(api_auth, smart_scopes) {
  hl_api_principal p;
  int pat = hl_api_type_index("Patient"), obs = hl_api_type_index("Observation"), enc = hl_api_type_index("Encounter");
  memset(&p, 0, sizeof p);
  hl_api_scopes_parse("user/Observation.rs patient/Patient.read launch openid", "system/hl.ingest", &p);
  cr_assert_eq(p.read_broad, 1u << obs);
  cr_assert_eq(p.search_broad, 1u << obs);
  cr_assert_eq(p.read_patient, 1u << pat);
  cr_assert_not(p.ingest);
  memset(&p, 0, sizeof p);
  hl_api_scopes_parse("user/Encounter.s user/Observation.r system/Patient.write user/Condition.rsx "
                      "user/Procedure.sr user/Immunization.rs?category=x system/hl.ingest",
                      "system/hl.ingest", &p);
  cr_assert_eq(p.read_broad, 1u << obs);
  cr_assert_eq(p.search_broad, 1u << enc);
  cr_assert(p.ingest);
  memset(&p, 0, sizeof p);
  hl_api_scopes_parse("system/*.*", "x", &p);
  cr_assert_eq(p.read_broad, (1u << hl_api_ntypes) - 1);
}

Test(api_auth, config_errors) {
  hl_api_auth_opts o = {.issuer = ISS, .audience = AUD};
  hl_api_auth *a;
  char err[256];
  cr_assert_eq(hl_api_auth_new(&o, &a, err, sizeof err), HL_ECONFIG, "no keys at all");
  o.allow_hs256 = true;
  o.hs256_secret = "short";
  cr_assert_eq(hl_api_auth_new(&o, &a, err, sizeof err), HL_ECONFIG, "short secret");
  o.allow_hs256 = false;
  o.jwks_file = "/nonexistent/jwks.json";
  cr_assert_eq(hl_api_auth_new(&o, &a, err, sizeof err), HL_ECONFIG);
}
