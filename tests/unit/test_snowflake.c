/*
 * Unit tests of hl/snowflake.h without a server: the account/user
 * qualification, the key fingerprint (checked against the openssl command
 * line, the recipe of Snowflake's documentation), the JWT (decoded and
 * verified here with the public key), the result reader and the typing of
 * values by rowType.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hl/error.h"
#include "hl/snowflake.h"
#include "hl_sf_test.h"
#include "hl_test.h"

HL_TEST_SUITE(snowflake);

static hl_snowflake *make_client(const char *pem, const char *account) {
  hl_snowflake_config c = {.account = account, .user = "jane_doe", .private_key_pem = pem,
                           .url = "http://127.0.0.1:9", .max_retries = -1};
  hl_snowflake *sf = NULL;
  char err[256];
  cr_assert_eq(hl_snowflake_new(&c, &sf, err, sizeof err), 0, "%s", err);
  return sf;
}

Test(snowflake, qualified_user) {
  char out[64];
  cr_assert_eq(hl_snowflake_qualified_user("xy12345.us-east-1.aws", "jane", out, sizeof out), 0);
  cr_assert_str_eq(out, "XY12345.JANE");
  cr_assert_eq(hl_snowflake_qualified_user("myorg-myaccount", "Loader_1", out, sizeof out), 0);
  cr_assert_str_eq(out, "MYORG-MYACCOUNT.LOADER_1");
  cr_assert_eq(hl_snowflake_qualified_user("", "x", out, sizeof out), -EINVAL);
  cr_assert_eq(hl_snowflake_qualified_user("abc", "defgh", out, 6), HL_ELIMIT);
}

Test(snowflake, fingerprint_matches_openssl_cli) {
  char *pem = hl_sf_test_key_pem(NULL);
  char path[] = "/tmp/hl-sf-keyXXXXXX";
  int fd = mkstemp(path);
  cr_assert(fd >= 0);
  cr_assert_eq(write(fd, pem, strlen(pem)), (ssize_t)strlen(pem));
  close(fd);
  char cmd[512];
  snprintf(cmd, sizeof cmd,
           "openssl pkey -in %s -pubout -outform DER 2>/dev/null | openssl dgst -sha256 -binary | "
           "openssl enc -base64",
           path);
  FILE *p = popen(cmd, "r");
  cr_assert_not_null(p);
  char want[128] = "";
  cr_assert_not_null(fgets(want, sizeof want, p));
  pclose(p);
  want[strcspn(want, "\n")] = '\0';
  unlink(path);
  hl_snowflake *sf = make_client(pem, "xy12345");
  char expect[160];
  snprintf(expect, sizeof expect, "SHA256:%s", want);
  cr_assert_str_eq(hl_snowflake_fingerprint(sf), expect);
  hl_snowflake_free(sf);
  free(pem);
}

static json_t *decode_part(const char *p, size_t n) {
  char buf[2048];
  cr_assert(n + 4 < sizeof buf);
  size_t m = 0;
  for (size_t i = 0; i < n; i++)
    buf[m++] = p[i] == '-' ? '+' : p[i] == '_' ? '/' : p[i];
  while (m % 4)
    buf[m++] = '=';
  unsigned char out[2048];
  int w = EVP_DecodeBlock(out, (unsigned char *)buf, (int)m);
  cr_assert(w > 0);
  while (w > 0 && out[w - 1] == '\0')
    w--;
  return json_loadb((const char *)out, (size_t)w, 0, NULL);
}

Test(snowflake, jwt_claims_and_signature) {
  EVP_PKEY *key;
  char *pem = hl_sf_test_key_pem(&key);
  hl_snowflake *sf = make_client(pem, "xy12345.eu-west-1");
  char *tok = NULL;
  cr_assert_eq(hl_snowflake_jwt_at(sf, 1700000000, 3540, &tok), 0);
  const char *d1 = strchr(tok, '.'), *d2 = strrchr(tok, '.');
  cr_assert(d1 && d2 && d1 != d2);
  json_t *h = decode_part(tok, (size_t)(d1 - tok));
  json_t *p = decode_part(d1 + 1, (size_t)(d2 - d1 - 1));
  cr_assert_str_eq(json_string_value(json_object_get(h, "alg")), "RS256");
  char iss[200];
  snprintf(iss, sizeof iss, "XY12345.JANE_DOE.%s", hl_snowflake_fingerprint(sf));
  cr_assert_str_eq(json_string_value(json_object_get(p, "iss")), iss);
  cr_assert_str_eq(json_string_value(json_object_get(p, "sub")), "XY12345.JANE_DOE");
  cr_assert_eq(json_integer_value(json_object_get(p, "iat")), 1700000000);
  cr_assert_eq(json_integer_value(json_object_get(p, "exp")), 1700000000 + 3540);
  /* The signature verifies with the public half over header.payload. */
  char buf[1024];
  size_t n = strlen(d2 + 1), m = 0;
  for (size_t i = 0; i < n; i++)
    buf[m++] = d2[1 + i] == '-' ? '+' : d2[1 + i] == '_' ? '/' : d2[1 + i];
  while (m % 4)
    buf[m++] = '=';
  unsigned char sig[512];
  int sl = EVP_DecodeBlock(sig, (unsigned char *)buf, (int)m);
  cr_assert_eq(sl - (buf[m - 1] == '=') - (buf[m - 2] == '='), 256);
  EVP_MD_CTX *md = EVP_MD_CTX_new();
  cr_assert_eq(EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, key), 1);
  cr_assert_eq(EVP_DigestVerify(md, sig, 256, (const unsigned char *)tok, (size_t)(d2 - tok)), 1);
  /* A changed payload no longer verifies. */
  tok[d1 - tok + 3] ^= 1;
  cr_assert_neq(EVP_DigestVerify(md, sig, 256, (const unsigned char *)tok, (size_t)(d2 - tok)), 1);
  EVP_MD_CTX_free(md);
  json_decref(h);
  json_decref(p);
  free(tok);
  /* The current token is cached until close to its expiry. */
  const char *t1 = hl_snowflake_token(sf);
  cr_assert_not_null(t1);
  char *copy = strdup(t1);
  cr_assert_str_eq(hl_snowflake_token(sf), copy);
  free(copy);
  hl_snowflake_free(sf);
  EVP_PKEY_free(key);
  free(pem);
}

Test(snowflake, bad_key_and_config) {
  hl_snowflake_config c = {.account = "a", .user = "u", .private_key_pem = "-----BEGIN PRIVATE KEY-----\nAAAA\n"
                                                                         "-----END PRIVATE KEY-----\n"};
  hl_snowflake *sf = NULL;
  char err[256] = "";
  cr_assert_eq(hl_snowflake_new(&c, &sf, err, sizeof err), HL_ECONFIG);
  cr_assert_null(sf);
  cr_assert(strstr(err, "private key"));
  c.private_key_pem = NULL;
  c.private_key_file = "/nonexistent/key.p8";
  cr_assert_eq(hl_snowflake_new(&c, &sf, err, sizeof err), HL_ECONFIG);
  char *pem = hl_sf_test_key_pem(NULL);
  c.private_key_pem = pem;
  c.jwt_lifetime_s = 7200; /* Snowflake refuses tokens living longer than an hour */
  cr_assert_eq(hl_snowflake_new(&c, &sf, err, sizeof err), HL_ECONFIG);
  free(pem);
}

static const char result_json[] =
    "{\"resultSetMetaData\":{\"numRows\":3,\"format\":\"jsonv2\",\"rowType\":["
    "{\"name\":\"ID\",\"type\":\"fixed\",\"precision\":38,\"scale\":0,\"nullable\":false},"
    "{\"name\":\"AMOUNT\",\"type\":\"fixed\",\"precision\":10,\"scale\":2,\"nullable\":true},"
    "{\"name\":\"NAME\",\"type\":\"text\",\"length\":100,\"nullable\":true},"
    "{\"name\":\"OK\",\"type\":\"boolean\",\"nullable\":true},"
    "{\"name\":\"AT\",\"type\":\"timestamp_ntz\",\"scale\":9,\"nullable\":true},"
    "{\"name\":\"TZ\",\"type\":\"timestamp_tz\",\"scale\":9,\"nullable\":true},"
    "{\"name\":\"D\",\"type\":\"date\",\"nullable\":true},"
    "{\"name\":\"R\",\"type\":\"real\",\"nullable\":true}],"
    "\"partitionInfo\":[{\"rowCount\":2},{\"rowCount\":1}]},"
    "\"data\":[[\"1\",\"12.50\",\"alice\",\"true\",\"1597090533.987000000\",\"1597090533.000000000 1500\",\"18000\",\"1.5\"],"
    "[\"2\",null,null,\"false\",null,null,null,\"NaN\"]],"
    "\"statementHandle\":\"e4ce975e-f7ff-4b5e-b15e-bf25f59371ae\",\"stats\":{\"numRowsInserted\":0}}";

Test(snowflake, result_reader_and_types) {
  hl_snowflake_result *r = NULL;
  cr_assert_eq(hl_snowflake_result_parse(result_json, strlen(result_json), 0, &r), 0);
  cr_assert_eq(hl_snowflake_result_cols(r), 8);
  cr_assert_eq(hl_snowflake_result_rows(r), 2);
  cr_assert_eq(hl_snowflake_result_partitions(r), 2);
  cr_assert_str_eq(hl_snowflake_result_handle(r), "e4ce975e-f7ff-4b5e-b15e-bf25f59371ae");
  cr_assert_eq(hl_snowflake_result_find(r, "name"), 2);
  cr_assert_eq(hl_snowflake_result_find(r, "nope"), -1);
  const char *p1 = "{\"data\":[[\"9223372036854775807\",\"1\",\"x\",\"1\",\"0\",\"-1.5 1440\",\"-1\",\"-2e3\"]]}";
  cr_assert_eq(hl_snowflake_result_add_partition(r, p1, strlen(p1)), 0);
  cr_assert_eq(hl_snowflake_result_rows(r), 3);
  /* A third partition was never announced. */
  cr_assert_eq(hl_snowflake_result_add_partition(r, p1, strlen(p1)), HL_ELIMIT);
  hl_snowflake_value v;
  cr_assert_eq(hl_snowflake_result_value(r, 0, 0, &v), 0);
  cr_assert_eq(v.kind, HL_SFV_INT);
  cr_assert_eq(v.i, 1);
  cr_assert_eq(hl_snowflake_result_value(r, 0, 1, &v), 0);
  cr_assert_eq(v.kind, HL_SFV_DOUBLE);
  cr_assert_float_eq(v.d, 12.5, 1e-9);
  cr_assert_eq(hl_snowflake_result_value(r, 0, 2, &v), 0);
  cr_assert_eq(v.kind, HL_SFV_TEXT);
  cr_assert_str_eq(v.text, "alice");
  cr_assert_eq(hl_snowflake_result_value(r, 0, 3, &v), 0);
  cr_assert(v.kind == HL_SFV_BOOL && v.b);
  cr_assert_eq(hl_snowflake_result_value(r, 0, 4, &v), 0);
  cr_assert_eq(v.kind, HL_SFV_TIMESTAMP);
  cr_assert_eq(v.ns, 1597090533987000000LL);
  cr_assert_eq(hl_snowflake_result_value(r, 0, 5, &v), 0);
  cr_assert_eq(v.tz_minutes, 60);
  cr_assert_eq(hl_snowflake_result_value(r, 0, 6, &v), 0);
  cr_assert(v.kind == HL_SFV_DATE && v.i == 18000);
  cr_assert_eq(hl_snowflake_result_value(r, 1, 1, &v), 0);
  cr_assert_eq(v.kind, HL_SFV_NULL);
  cr_assert_null(v.text);
  cr_assert_eq(hl_snowflake_result_value(r, 1, 7, &v), 0);
  cr_assert(isnan(v.d));
  cr_assert_eq(hl_snowflake_result_value(r, 2, 0, &v), 0);
  cr_assert_eq(v.i, INT64_MAX);
  cr_assert_eq(hl_snowflake_result_value(r, 2, 5, &v), 0);
  cr_assert_eq(v.ns, -1500000000LL);
  cr_assert_eq(v.tz_minutes, 0);
  cr_assert_eq(hl_snowflake_result_value(r, 3, 0, &v), -ERANGE);
  hl_snowflake_result_free(r);
}

Test(snowflake, value_parse_rejects_bad_text) {
  hl_snowflake_column fixed = {.name = "N", .type = "FIXED"}, ts = {.name = "T", .type = "TIMESTAMP_NTZ"},
                      b = {.name = "B", .type = "BOOLEAN"}, tz = {.name = "Z", .type = "TIMESTAMP_TZ"};
  hl_snowflake_value v;
  cr_assert_eq(hl_snowflake_value_parse(&fixed, "12x", &v), HL_EPARSE);
  cr_assert_eq(hl_snowflake_value_parse(&fixed, "123456789012345678901234567890", &v), 0);
  cr_assert_eq(v.kind, HL_SFV_DOUBLE);
  cr_assert_eq(hl_snowflake_value_parse(&ts, "2024-01-01", &v), HL_EPARSE);
  cr_assert_eq(hl_snowflake_value_parse(&b, "maybe", &v), HL_EPARSE);
  cr_assert_eq(hl_snowflake_value_parse(&tz, "10.5", &v), HL_EPARSE);
  cr_assert_eq(hl_snowflake_value_parse(&tz, "10.5 9999", &v), HL_EPARSE);
}

Test(snowflake, result_reader_rejects_malformed) {
  const char *bad[] = {
      "[]",
      "{\"resultSetMetaData\":{\"rowType\":[{\"name\":\"A\",\"type\":\"text\"}]},\"data\":[[\"a\",\"b\"]]}",
      "{\"resultSetMetaData\":{\"rowType\":[{\"name\":\"A\",\"type\":\"text\"}]},\"data\":[[1]]}",
      "{\"resultSetMetaData\":{\"rowType\":[{\"name\":\"A\"}]},\"data\":[]}",
      "{\"resultSetMetaData\":{\"rowType\":{}},\"data\":[]}",
      "{\"resultSetMetaData\":{\"rowType\":[{\"name\":\"A\",\"type\":\"text\"}]},\"data\":{}}",
      "{\"statementHandle\":5}",
      "{\"resultSetMetaData\":{\"rowType\":[{\"name\":\"A\",\"type\":\"text\"}],\"numRows\":1}}",
      "{\"a\":1,\"a\":2}",
      "{\"resultSetMetaData\":{\"rowType\":[],\"partitionInfo\":5}}",
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    hl_snowflake_result *r = NULL;
    int rc = hl_snowflake_result_parse(bad[i], strlen(bad[i]), 0, &r);
    cr_assert_eq(rc, HL_EPARSE, "case %zu: %d", i, rc);
    cr_assert_null(r);
  }
  /* The cap on result bytes. */
  hl_snowflake_result *r = NULL;
  cr_assert_eq(hl_snowflake_result_parse(result_json, strlen(result_json), 100, &r), HL_ELIMIT);
  cr_assert_null(r);
}

Test(snowflake, error_helpers) {
  hl_snowflake_error e = {.http_status = 422};
  snprintf(e.code, sizeof e.code, "002003");
  snprintf(e.sql_state, sizeof e.sql_state, "42S02");
  snprintf(e.message, sizeof e.message, "Object does not exist");
  char buf[256];
  cr_assert_str_eq(hl_snowflake_error_str(&e, buf, sizeof buf), "422 002003/42S02: Object does not exist");
  cr_assert_not(hl_snowflake_error_retriable(HL_EHTTP, &e));
  e.http_status = 503;
  cr_assert(hl_snowflake_error_retriable(HL_EHTTP, &e));
  cr_assert(hl_snowflake_error_retriable(HL_EIO, NULL));
  cr_assert_not(hl_snowflake_error_retriable(HL_EPARSE, NULL));
}

Test(snowflake, config_from_table) {
  static const hl_config_var vars[] = {HL_CONFIG_SNOWFLAKE_VARS};
  hl_config_spec spec = {"test", "test", vars, sizeof vars / sizeof vars[0]};
  setenv("HL_SNOWFLAKE_ACCOUNT", "xy12345", 1);
  setenv("HL_SNOWFLAKE_USER", "loader", 1);
  unsetenv("HL_SNOWFLAKE_PRIVATE_KEY_FILE");
  hl_config *cfg = NULL;
  char err[256];
  cr_assert_eq(hl_config_load(&spec, &cfg, err, sizeof err), 0, "%s", err);
  hl_snowflake_config c;
  cr_assert_eq(hl_snowflake_config_from(cfg, &c, err, sizeof err), HL_ECONFIG);
  cr_assert(strstr(err, "HL_SNOWFLAKE_PRIVATE_KEY_FILE"));
  hl_config_free(cfg);
  setenv("HL_SNOWFLAKE_PRIVATE_KEY_FILE", "/k.p8", 1);
  setenv("HL_SNOWFLAKE_JWT_LIFETIME", "30m", 1);
  cr_assert_eq(hl_config_load(&spec, &cfg, err, sizeof err), 0, "%s", err);
  cr_assert_eq(hl_snowflake_config_from(cfg, &c, err, sizeof err), 0);
  cr_assert_eq(c.jwt_lifetime_s, 1800);
  cr_assert_str_eq(c.database, "HEALTHLAKE");
  hl_config_free(cfg);
  setenv("HL_SNOWFLAKE_JWT_LIFETIME", "2h", 1);
  cr_assert_eq(hl_config_load(&spec, &cfg, err, sizeof err), HL_ECONFIG);
}

Test(snowflake, token_renewed_before_expiry) {
  char *pem = hl_sf_test_key_pem(NULL);
  hl_snowflake_config c = {.account = "xy12345", .user = "u", .private_key_pem = pem, .jwt_lifetime_s = 600,
                           .max_retries = -1};
  hl_snowflake *sf = NULL;
  char err[256];
  cr_assert_eq(hl_snowflake_new(&c, &sf, err, sizeof err), 0, "%s", err);
  time_t t0 = 1700000000;
  char *first = strdup(hl_snowflake_token_at(sf, t0));
  /* Kept while more than two minutes remain. */
  cr_assert_str_eq(hl_snowflake_token_at(sf, t0 + 600 - 121), first);
  /* Renewed two minutes before it expires: a new iat. */
  char *second = strdup(hl_snowflake_token_at(sf, t0 + 600 - 120));
  cr_assert_str_neq(second, first);
  const char *d1 = strchr(second, '.');
  json_t *p = decode_part(d1 + 1, (size_t)(strchr(d1 + 1, '.') - d1 - 1));
  cr_assert_eq(json_integer_value(json_object_get(p, "iat")), t0 + 480);
  cr_assert_eq(json_integer_value(json_object_get(p, "exp")), t0 + 480 + 600);
  json_decref(p);
  free(first);
  free(second);
  hl_snowflake_free(sf);
  free(pem);
}
