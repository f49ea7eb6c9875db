/*
 * The Snowflake client against hl-sf-standin over real HTTP on 127.0.0.1:
 * synchronous and asynchronous (202 + poll) statements, multi-partition
 * results, typed and array bindings, every error and retry path (429, 503
 * after execution with retry=true not re-executing, 504 exhausted, 401 and
 * token renewal, 408, 422), tokens the stand-in must refuse (expired,
 * wrong key, wrong token type), request validation against sqlapi.yaml,
 * the libuv driver, and Snowpipe Streaming channels with offset tokens
 * that survive a restart of the stand-in.
 */
#define _GNU_SOURCE
#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "hl/buf.h"
#include "hl/error.h"
#include "hl/snowflake.h"
#include "hl_sf_test.h"
#include "hl_test.h"
#include "standin.h"

#ifndef SF_STANDIN_SPEC
#error "SF_STANDIN_SPEC must name sqlapi.json"
#endif

static char g_dir[256];
static char g_key_path[300];
static char *g_key_pem;
static sf_standin_thread *g_si;
static int g_port;

static void start_standin(void) {
  sf_standin_config c = {.dir = g_dir, .account = "hltest", .user = "loader", .public_key_file = g_key_path,
                         .spec_path = SF_STANDIN_SPEC, .partition_rows = 3, .sync_wait_ms = 300,
                         .verbose = getenv("HL_SF_STANDIN_VERBOSE") != NULL};
  char err[512];
  cr_assert_eq(sf_standin_thread_start(&c, &g_si, err, sizeof err), 0, "%s", err);
  g_port = sf_standin_thread_port(g_si);
}

static void setup(void) {
  snprintf(g_dir, sizeof g_dir, "/tmp/hl-sf-standinXXXXXX");
  cr_assert_not_null(mkdtemp(g_dir));
  snprintf(g_key_path, sizeof g_key_path, "%s/key.pem", g_dir);
  g_key_pem = hl_sf_test_key_pem(NULL);
  FILE *f = fopen(g_key_path, "w");
  cr_assert_not_null(f);
  fputs(g_key_pem, f);
  fclose(f);
  start_standin();
}

static void teardown(void) {
  g_si = sf_standin_thread_stop(g_si);
  free(g_key_pem);
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf %s", g_dir);
  if (system(cmd) != 0)
    fprintf(stderr, "could not remove %s\n", g_dir);
  hl_test_leak_check();
}

TestSuite(sfstandin, .init = setup, .fini = teardown, .timeout = 120);

static long long g_max_result; /* 0: the default cap */

static hl_snowflake *client_with(const char *pem, int max_retries) {
  char url[64];
  snprintf(url, sizeof url, "http://127.0.0.1:%d", g_port);
  hl_snowflake_config c = {.account = "HLTEST.eu-central-1", .user = "Loader", .private_key_pem = pem,
                           .url = url, .database = "HEALTHLAKE", .schema = "RAW", .warehouse = "HL_WH",
                           .role = "HL_LOADER", .max_retries = max_retries, .retry_base_ms = 10,
                           .retry_max_ms = 200, .poll_max_ms = 100, .request_timeout_ms = 20000,
                           .max_result = g_max_result};
  hl_snowflake *sf = NULL;
  char err[256];
  cr_assert_eq(hl_snowflake_new(&c, &sf, err, sizeof err), 0, "%s", err);
  return sf;
}

static hl_snowflake *client(void) {
  return client_with(g_key_pem, 4);
}

static void exec_ok(hl_snowflake *sf, const char *sql) {
  hl_snowflake_error e;
  hl_snowflake_stmt st = {.sql = sql};
  int rc = hl_snowflake_exec(sf, &st, NULL, &e);
  char buf[700];
  cr_assert_eq(rc, 0, "%s: %s", sql, hl_snowflake_error_str(&e, buf, sizeof buf));
}

static size_t collect(char *p, size_t sz, size_t n, void *ud) {
  return hl_buf_append(ud, p, sz * n) < 0 ? 0 : sz * n;
}

/* A raw request (for what the client never sends); returns the status. hdrs (may be NULL) gets the header block. */
static long raw_h(const char *method, const char *path, const char *const *headers, const char *body, hl_buf *out,
                  hl_buf *hdrs) {
  CURL *c = curl_easy_init();
  char url[512];
  snprintf(url, sizeof url, "http://127.0.0.1:%d%s", g_port, path);
  struct curl_slist *h = NULL;
  for (size_t i = 0; headers && headers[i]; i++)
    h = curl_slist_append(h, headers[i]);
  curl_easy_setopt(c, CURLOPT_URL, url);
  curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
  curl_easy_setopt(c, CURLOPT_USERAGENT, "");
  if (body)
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
  if (hdrs) {
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, hdrs);
  }
  curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
  long status = 0;
  if (curl_easy_perform(c) == CURLE_OK)
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  curl_slist_free_all(h);
  curl_easy_cleanup(c);
  return status;
}

static long raw(const char *method, const char *path, const char *const *headers, const char *body, hl_buf *out) {
  return raw_h(method, path, headers, body, out, NULL);
}

static long long stat_of(const char *name) {
  hl_buf b;
  hl_buf_init(&b, 1 << 20);
  cr_assert_eq(raw("GET", "/_standin/stats", NULL, NULL, &b), 200);
  json_t *j = json_loads(b.data, 0, NULL);
  long long v = json_integer_value(json_object_get(j, name));
  json_decref(j);
  hl_buf_free(&b);
  return v;
}

static void fault(const char *json) {
  hl_buf b;
  hl_buf_init(&b, 1 << 16);
  const char *h[] = {"Content-Type: application/json", NULL};
  cr_assert_eq(raw("POST", "/_standin/faults", h, json, &b), 200, "%s", b.data ? b.data : "");
  hl_buf_free(&b);
}

static void make_table(hl_snowflake *sf) {
  exec_ok(sf, "CREATE SCHEMA IF NOT EXISTS HEALTHLAKE.RAW");
  exec_ok(sf, "CREATE OR REPLACE TABLE HEALTHLAKE.RAW.T (ID NUMBER(38,0), NAME VARCHAR, AMOUNT FLOAT, "
              "OK BOOLEAN, AT TIMESTAMP_NTZ, DOC VARIANT)");
}

static long long count_rows(hl_snowflake *sf, const char *table) {
  char sql[256];
  snprintf(sql, sizeof sql, "SELECT COUNT(*) AS N FROM %s", table);
  hl_snowflake_result *r = NULL;
  cr_assert_eq(hl_snowflake_query(sf, sql, NULL, 0, &r, NULL), 0);
  hl_snowflake_value v;
  cr_assert_eq(hl_snowflake_result_value(r, 0, 0, &v), 0);
  cr_assert_eq(v.kind, HL_SFV_INT);
  hl_snowflake_result_free(r);
  return v.i;
}

Test(sfstandin, typed_bindings_and_values) {
  hl_snowflake *sf = client();
  make_table(sf);
  hl_snowflake_bind b[] = {{HL_SF_FIXED, "7", NULL, 0},
                           {HL_SF_TEXT, "O'Brien \"quoted\"", NULL, 0},
                           {HL_SF_REAL, "2.25", NULL, 0},
                           {HL_SF_BOOLEAN, "true", NULL, 0},
                           {HL_SF_TEXT, "2024-02-03T04:05:06.5Z", NULL, 0},
                           {HL_SF_TEXT, "{\"a\":[1,2]}", NULL, 0}};
  hl_snowflake_stmt ins = {.sql = "INSERT INTO RAW.T (ID, NAME, AMOUNT, OK, AT, DOC) VALUES (?, ?, ?, ?, ?, PARSE_JSON(?))",
                           .binds = b, .nbinds = 6, .query_tag = "hl-test"};
  hl_snowflake_result *r = NULL;
  hl_snowflake_error e;
  cr_assert_eq(hl_snowflake_exec(sf, &ins, &r, &e), 0, "%s", e.message);
  cr_assert_eq(hl_snowflake_result_inserted(r), 1);
  hl_snowflake_result_free(r);
  hl_snowflake_bind nb[] = {{HL_SF_FIXED, "8", NULL, 0}, {HL_SF_TEXT, NULL, NULL, 0}};
  hl_snowflake_stmt ins2 = {.sql = "INSERT INTO RAW.T (ID, NAME) VALUES (?, ?)", .binds = nb, .nbinds = 2};
  cr_assert_eq(hl_snowflake_exec(sf, &ins2, NULL, &e), 0, "%s", e.message);
  cr_assert_eq(hl_snowflake_query(sf, "SELECT ID, NAME, AMOUNT, OK, AT, DOC FROM RAW.T ORDER BY ID", NULL, 0, &r, &e), 0);
  cr_assert_eq(hl_snowflake_result_rows(r), 2);
  cr_assert_str_eq(hl_snowflake_result_column(r, 4)->type, "timestamp_ntz");
  hl_snowflake_value v;
  cr_assert_eq(hl_snowflake_result_value(r, 0, 0, &v), 0);
  cr_assert(v.kind == HL_SFV_INT && v.i == 7);
  cr_assert_str_eq(hl_snowflake_result_str(r, 0, 1), "O'Brien \"quoted\"");
  cr_assert_eq(hl_snowflake_result_value(r, 0, 2, &v), 0);
  cr_assert(v.kind == HL_SFV_DOUBLE && v.d == 2.25);
  cr_assert_eq(hl_snowflake_result_value(r, 0, 3, &v), 0);
  cr_assert(v.kind == HL_SFV_BOOL && v.b);
  cr_assert_eq(hl_snowflake_result_value(r, 0, 4, &v), 0);
  cr_assert_eq(v.kind, HL_SFV_TIMESTAMP);
  cr_assert_eq(v.ns, 1706933106500000000LL);
  cr_assert_str_eq(hl_snowflake_result_str(r, 0, 5), "{\"a\":[1,2]}");
  cr_assert_eq(hl_snowflake_result_value(r, 1, 1, &v), 0);
  cr_assert_eq(v.kind, HL_SFV_NULL);
  hl_snowflake_result_free(r);
  /* Paths into VARIANT and casts, as the API backends write them. */
  cr_assert_eq(hl_snowflake_query(sf, "SELECT DOC:a[1]::NUMBER(38,0) AS X, '5'::INT AS Y, DOC:\"a\"::string AS Z "
                                      "FROM HEALTHLAKE.RAW.T WHERE ID = 7", NULL, 0, &r, &e), 0, "%s", e.message);
  cr_assert_str_eq(hl_snowflake_result_str(r, 0, 0), "2");
  cr_assert_str_eq(hl_snowflake_result_str(r, 0, 1), "5");
  cr_assert_str_eq(hl_snowflake_result_str(r, 0, 2), "[1,2]");
  hl_snowflake_result_free(r);
  /* Named positional binds :1 :2 refer to bindings "1" and "2". */
  const char *args[] = {"8", "x"};
  cr_assert_eq(hl_snowflake_query(sf, "SELECT :2 AS A, ID FROM RAW.T WHERE ID = :1", args, 2, &r, &e), 0, "%s", e.message);
  cr_assert_eq(hl_snowflake_result_rows(r), 1);
  cr_assert_str_eq(hl_snowflake_result_str(r, 0, 0), "x");
  hl_snowflake_result_free(r);
  cr_assert_eq(stat_of("spec_violations"), 0);
  hl_snowflake_free(sf);
}

Test(sfstandin, array_bindings_and_partitions) {
  hl_snowflake *sf = client();
  make_table(sf);
  const char *ids[10], *names[10];
  char idbuf[10][8], namebuf[10][16];
  for (int i = 0; i < 10; i++) {
    snprintf(idbuf[i], sizeof idbuf[i], "%d", i);
    snprintf(namebuf[i], sizeof namebuf[i], "name-%d", i);
    ids[i] = idbuf[i];
    names[i] = namebuf[i];
  }
  names[4] = NULL;
  hl_snowflake_bind b[] = {{HL_SF_FIXED, NULL, ids, 10}, {HL_SF_TEXT, NULL, names, 10}};
  hl_snowflake_stmt ins = {.sql = "INSERT INTO RAW.T (ID, NAME) VALUES (?, ?)", .binds = b, .nbinds = 2};
  hl_snowflake_result *r = NULL;
  hl_snowflake_error e;
  cr_assert_eq(hl_snowflake_exec(sf, &ins, &r, &e), 0, "%s", e.message);
  cr_assert_eq(hl_snowflake_result_inserted(r), 10);
  hl_snowflake_result_free(r);
  cr_assert_eq(hl_snowflake_query(sf, "SELECT ID, NAME FROM RAW.T ORDER BY ID", NULL, 0, &r, &e), 0);
  /* Three rows per partition: four partitions, every row once and in order. */
  cr_assert_eq(hl_snowflake_result_partitions(r), 4);
  cr_assert_eq(hl_snowflake_result_rows(r), 10);
  for (size_t i = 0; i < 10; i++) {
    hl_snowflake_value v;
    cr_assert_eq(hl_snowflake_result_value(r, i, 0, &v), 0);
    cr_assert_eq(v.i, (int64_t)i);
  }
  cr_assert_null(hl_snowflake_result_str(r, 4, 1));
  cr_assert_geq(e.attempts, 4);
  /* The partitions carry Link headers (first, prev, next, last). */
  char path[200], auth[4096];
  snprintf(path, sizeof path, "/api/v2/statements/%s?partition=1", hl_snowflake_result_handle(r));
  snprintf(auth, sizeof auth, "Authorization: Bearer %s", hl_snowflake_token(sf));
  const char *h[] = {auth, "X-Snowflake-Authorization-Token-Type: KEYPAIR_JWT", "User-Agent: hl-test/1", NULL};
  hl_buf body, hdrs;
  hl_buf_init(&body, 1 << 20);
  hl_buf_init(&hdrs, 1 << 16);
  cr_assert_eq(raw_h("GET", path, h, NULL, &body, &hdrs), 200, "%s", body.data);
  cr_assert(strstr(hdrs.data, "partition=0>; rel=\"first\""), "%s", hdrs.data);
  cr_assert(strstr(hdrs.data, "partition=2>; rel=\"next\""), "%s", hdrs.data);
  cr_assert(strstr(hdrs.data, "partition=3>; rel=\"last\""), "%s", hdrs.data);
  cr_assert(strstr(body.data, "[\"3\",\"name-3\"]"), "%s", body.data);
  hl_buf_free(&body);
  hl_buf_free(&hdrs);
  /* A result past the client's cap fails with HL_ELIMIT, without retries. */
  g_max_result = 1024;
  hl_snowflake *small = client();
  g_max_result = 0;
  hl_snowflake_result *big = NULL;
  cr_assert_eq(hl_snowflake_query(small, "SELECT printf('%.2000c', 'x') AS X", NULL, 0, &big, &e), HL_ELIMIT);
  cr_assert_null(big);
  cr_assert_eq(e.attempts, 1);
  hl_snowflake_free(small);
  hl_snowflake_result_free(r);
  hl_snowflake_free(sf);
}

Test(sfstandin, slow_statement_polls_after_202) {
  hl_snowflake *sf = client();
  hl_snowflake_result *r = NULL;
  hl_snowflake_error e;
  /* One second of work: the POST answers 202 after 300 ms, then the client polls. */
  hl_snowflake_stmt st = {.sql = "CALL SYSTEM$WAIT(1)"};
  cr_assert_eq(hl_snowflake_exec(sf, &st, &r, &e), 0, "%s", e.message);
  cr_assert_geq(e.attempts, 2);
  cr_assert_str_eq(hl_snowflake_result_str(r, 0, 0), "waited");
  hl_snowflake_result_free(r);
  /* async=true: 202 at once. */
  hl_snowflake_stmt as = {.sql = "SELECT 42 AS X", .async = true};
  cr_assert_eq(hl_snowflake_exec(sf, &as, &r, &e), 0, "%s", e.message);
  cr_assert_str_eq(hl_snowflake_result_str(r, 0, 0), "42");
  cr_assert_geq(e.attempts, 2);
  hl_snowflake_result_free(r);
  hl_snowflake_free(sf);
}

static bool metrics_has(hl_metrics *reg, const char *line) {
  hl_buf out;
  hl_buf_init(&out, 1 << 20);
  cr_assert_eq(hl_metrics_render(reg, &out), 0);
  bool yes = strstr(out.data, line) != NULL;
  if (!yes)
    fprintf(stderr, "missing %s in:\n%s", line, out.data);
  hl_buf_free(&out);
  return yes;
}

Test(sfstandin, retry_429_then_success) {
  hl_snowflake *sf = client();
  hl_metrics *reg = NULL;
  cr_assert_eq(hl_metrics_new(&reg), 0);
  cr_assert_eq(hl_snowflake_set_metrics(sf, reg), 0);
  fault("{\"status\":429,\"count\":2,\"method\":\"POST\",\"path\":\"/api/v2/statements\"}");
  hl_snowflake_error e;
  hl_snowflake_result *r = NULL;
  cr_assert_eq(hl_snowflake_query(sf, "SELECT 1 AS ONE", NULL, 0, &r, &e), 0, "%s", e.message);
  cr_assert_eq(e.attempts, 3);
  cr_assert_eq(stat_of("faults_served"), 2);
  hl_snowflake_result_free(r);
  cr_assert(metrics_has(reg, "hl_snowflake_retries_total{reason=\"429\"} 2"));
  cr_assert(metrics_has(reg, "hl_snowflake_requests_total{endpoint=\"statements\",code=\"429\"} 2"));
  cr_assert(metrics_has(reg, "hl_snowflake_requests_total{endpoint=\"statements\",code=\"200\"} 1"));
  cr_assert(metrics_has(reg, "hl_snowflake_statement_duration_seconds_count{outcome=\"ok\"} 1"));
  /* A statement slowed down by the stand-in: 202, then polls until it is done. */
  fault("{\"delay_ms\":600,\"delay_count\":1}");
  cr_assert_eq(hl_snowflake_query(sf, "SELECT 2 AS TWO", NULL, 0, &r, &e), 0, "%s", e.message);
  cr_assert_geq(e.attempts, 2);
  cr_assert_str_eq(hl_snowflake_result_str(r, 0, 0), "2");
  hl_snowflake_result_free(r);
  cr_assert(metrics_has(reg, "hl_snowflake_requests_total{endpoint=\"statements\",code=\"202\"} 1"));
  hl_snowflake_free(sf);
  hl_metrics_free(reg);
}

Test(sfstandin, retry_after_503_never_runs_twice) {
  hl_snowflake *sf = client();
  make_table(sf);
  long long before = stat_of("executions");
  /* The stand-in runs the INSERT, then loses the answer (503). */
  fault("{\"status\":503,\"count\":1,\"after\":true,\"retry_after\":0}");
  hl_snowflake_error e;
  const char *args[] = {"1", "once"};
  cr_assert_eq(hl_snowflake_query(sf, "INSERT INTO RAW.T (ID, NAME) VALUES (?, ?)", args, 2, NULL, &e), 0, "%s",
               e.message);
  cr_assert_eq(e.attempts, 2);
  cr_assert_eq(stat_of("executions") - before, 1);
  cr_assert_eq(stat_of("dedup_hits"), 1);
  cr_assert_eq(count_rows(sf, "RAW.T"), 1);
  hl_snowflake_free(sf);
}

Test(sfstandin, retries_exhausted_504) {
  hl_snowflake *sf = client_with(g_key_pem, 2);
  fault("{\"status\":504,\"count\":10,\"path\":\"/api/v2/statements\"}");
  hl_snowflake_error e;
  cr_assert_eq(hl_snowflake_query(sf, "SELECT 1", NULL, 0, NULL, &e), HL_EHTTP);
  cr_assert_eq(e.http_status, 504);
  cr_assert_eq(e.attempts, 3);
  cr_assert(hl_snowflake_error_retriable(HL_EHTTP, &e));
  fault("{\"clear\":true}");
  hl_snowflake_free(sf);
}

Test(sfstandin, unauthorized_renews_token_once) {
  hl_snowflake *sf = client();
  hl_snowflake_error e;
  fault("{\"unauthorized\":1}");
  char *before = strdup(hl_snowflake_token(sf));
  cr_assert_eq(hl_snowflake_query(sf, "SELECT 1", NULL, 0, NULL, &e), 0, "%s", e.message);
  cr_assert_eq(e.attempts, 2);
  fault("{\"unauthorized\":2}");
  cr_assert_eq(hl_snowflake_query(sf, "SELECT 1", NULL, 0, NULL, &e), HL_EHTTP);
  cr_assert_eq(e.http_status, 401);
  cr_assert_str_eq(e.code, "390144");
  free(before);
  hl_snowflake_free(sf);
}

Test(sfstandin, statement_errors_are_final) {
  hl_snowflake *sf = client();
  hl_snowflake_error e;
  cr_assert_eq(hl_snowflake_query(sf, "SELECT * FROM RAW.NOPE", NULL, 0, NULL, &e), HL_EHTTP);
  cr_assert_eq(e.http_status, 422);
  cr_assert_str_eq(e.code, "002003");
  cr_assert_str_eq(e.sql_state, "42S02");
  cr_assert_neq(e.statement_handle[0], '\0');
  cr_assert_eq(e.attempts, 1);
  cr_assert_not(hl_snowflake_error_retriable(HL_EHTTP, &e));
  cr_assert_eq(hl_snowflake_query(sf, "SELEC 1", NULL, 0, NULL, &e), HL_EHTTP);
  cr_assert_str_eq(e.sql_state, "42000");
  cr_assert_eq(hl_snowflake_query(sf, "USE SCHEMA RAW", NULL, 0, NULL, &e), HL_EHTTP);
  cr_assert_eq(e.http_status, 422);
  /* The server's timeout: the statement is cancelled, never run. Seen while polling: 422 000630. */
  long long before = stat_of("executions");
  hl_snowflake_stmt slow = {.sql = "CALL SYSTEM$WAIT(3)", .timeout_ms = 1000};
  cr_assert_eq(hl_snowflake_exec(sf, &slow, NULL, &e), HL_ETIMEOUT);
  cr_assert_eq(e.http_status, 422);
  cr_assert_str_eq(e.code, "000630");
  /* Seen by the submission itself (the server holds it longer than the timeout): 408. */
  fault("{\"sync_wait_ms\":5000}");
  cr_assert_eq(hl_snowflake_exec(sf, &slow, NULL, &e), HL_ETIMEOUT);
  cr_assert_eq(e.http_status, 408);
  cr_assert_str_eq(e.code, "000630");
  cr_assert_str_eq(e.sql_state, "57014");
  cr_assert_eq(e.attempts, 1);
  cr_assert_eq(stat_of("executions"), before);
  hl_snowflake_free(sf);
}

Test(sfstandin, cancel_running_statement) {
  hl_snowflake *sf = client();
  hl_snowflake_error e;
  char rid[] = "2f0b5c8e-3a42-4c1e-9d2a-2b7f4b1c9e11";
  hl_snowflake_stmt st = {.sql = "CALL SYSTEM$WAIT(30)", .async = true, .request_id = rid, .timeout_ms = 2000};
  /* Started asynchronously over raw HTTP, cancelled by the client by its handle. */
  hl_buf b;
  hl_buf_init(&b, 1 << 16);
  char auth[4096];
  snprintf(auth, sizeof auth, "Authorization: Bearer %s", hl_snowflake_token(sf));
  const char *h[] = {auth, "X-Snowflake-Authorization-Token-Type: KEYPAIR_JWT", "User-Agent: hl-test/1",
                     "Content-Type: application/json", "Accept: application/json", NULL};
  cr_assert_eq(raw("POST", "/api/v2/statements?requestId=2f0b5c8e-3a42-4c1e-9d2a-2b7f4b1c9e11&async=true", h,
                   "{\"statement\":\"CALL SYSTEM$WAIT(30)\",\"timeout\":60}", &b),
               202, "%s", b.data);
  json_t *j = json_loads(b.data, 0, NULL);
  char handle[64];
  snprintf(handle, sizeof handle, "%s", json_string_value(json_object_get(j, "statementHandle")));
  json_decref(j);
  cr_assert_eq(hl_snowflake_cancel(sf, handle, &e), 0, "%s", e.message);
  cr_assert_eq(stat_of("cancels"), 1);
  /* Resubmitting the same requestId (retry=true) reports the cancelled statement: 422, not a new run. */
  cr_assert_eq(hl_snowflake_exec(sf, &st, NULL, &e), HL_EHTTP);
  cr_assert_eq(e.http_status, 422);
  cr_assert_str_eq(e.sql_state, "57014");
  cr_assert_eq(hl_snowflake_cancel(sf, "not-a-handle/../x", &e), -EINVAL);
  hl_buf_free(&b);
  hl_snowflake_free(sf);
}

Test(sfstandin, client_deadline_cancels) {
  /* A server that lets the statement run past its timeout: the client cancels at its own deadline. */
  fault("{\"ignore_timeouts\":true}");
  hl_snowflake *sf = client();
  hl_snowflake_error e;
  hl_snowflake_stmt st = {.sql = "CALL SYSTEM$WAIT(60)", .timeout_ms = 500};
  cr_assert_eq(hl_snowflake_exec(sf, &st, NULL, &e), HL_ETIMEOUT);
  cr_assert_eq(stat_of("cancels"), 1);
  cr_assert(strstr(e.message, "cancelled"), "%s", e.message);
  cr_assert_eq(stat_of("executions"), 0);
  hl_snowflake_free(sf);
}

/* A JWT signed with key_pem over the given claims (to forge what the client never makes). */
static char *sign_jwt(const char *key_pem, const char *claims) {
  BIO *bio = BIO_new_mem_buf(key_pem, -1);
  EVP_PKEY *k = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
  BIO_free(bio);
  cr_assert_not_null(k);
  const char *parts[2] = {"{\"alg\":\"RS256\",\"typ\":\"JWT\"}", claims};
  char out[4096] = "";
  size_t o = 0;
  for (int i = 0; i < 2; i++) {
    unsigned char enc[2048];
    int n = EVP_EncodeBlock(enc, (const unsigned char *)parts[i], (int)strlen(parts[i]));
    while (n > 0 && enc[n - 1] == '=')
      n--;
    for (int j = 0; j < n; j++)
      out[o++] = enc[j] == '+' ? '-' : enc[j] == '/' ? '_' : (char)enc[j];
    out[o++] = i == 0 ? '.' : '\0';
  }
  o--;
  unsigned char sig[512];
  size_t sl = sizeof sig;
  EVP_MD_CTX *md = EVP_MD_CTX_new();
  cr_assert_eq(EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, k), 1);
  cr_assert_eq(EVP_DigestSign(md, sig, &sl, (const unsigned char *)out, o), 1);
  EVP_MD_CTX_free(md);
  EVP_PKEY_free(k);
  unsigned char enc[1024];
  int n = EVP_EncodeBlock(enc, sig, (int)sl);
  while (n > 0 && enc[n - 1] == '=')
    n--;
  out[o++] = '.';
  for (int j = 0; j < n; j++)
    out[o++] = enc[j] == '+' ? '-' : enc[j] == '/' ? '_' : (char)enc[j];
  out[o] = '\0';
  return strdup(out);
}

Test(sfstandin, refused_tokens_and_requests) {
  hl_snowflake *sf = client();
  hl_buf b;
  hl_buf_init(&b, 1 << 16);
  const char *path = "/api/v2/statements?requestId=0b1f4b9e-8f6c-4b2a-9a57-0d3c1e5f7a21";
  const char *body = "{\"statement\":\"SELECT 1\"}";
  char auth[4096];
  const char *h[] = {auth, "X-Snowflake-Authorization-Token-Type: KEYPAIR_JWT", "User-Agent: hl-test/1",
                     "Content-Type: application/json", NULL};
  /* Expired: issued two hours ago for one hour. */
  char *tok = NULL;
  cr_assert_eq(hl_snowflake_jwt_at(sf, time(NULL) - 7200, 3600, &tok), 0);
  snprintf(auth, sizeof auth, "Authorization: Bearer %s", tok);
  cr_assert_eq(raw("POST", path, h, body, &b), 401);
  cr_assert(strstr(b.data, "expired"), "%s", b.data);
  free(tok);
  /* Longer than an hour. */
  cr_assert_eq(hl_snowflake_jwt_at(sf, time(NULL), 7200, &tok), 0);
  snprintf(auth, sizeof auth, "Authorization: Bearer %s", tok);
  hl_buf_reset(&b);
  cr_assert_eq(raw("POST", path, h, body, &b), 401);
  free(tok);
  /* Another key: wrong fingerprint and signature. */
  char *other = hl_sf_test_key_pem(NULL);
  hl_snowflake *sf2 = client_with(other, 0);
  hl_snowflake_error e;
  cr_assert_eq(hl_snowflake_query(sf2, "SELECT 1", NULL, 0, NULL, &e), HL_EHTTP);
  cr_assert_eq(e.http_status, 401);
  hl_snowflake_free(sf2);
  free(other);
  /* The right key, but a fingerprint in iss that is not the key's; a wrong sub; then both right. */
  long long now = (long long)time(NULL);
  struct {
    const char *iss_fp, *sub, *path;
    long status;
    const char *says;
  } forged[] = {
      {"SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", "HLTEST.LOADER", path, 401, "iss must be"},
      {hl_snowflake_fingerprint(sf), "HLTEST.OTHER", path, 401, "sub must be"},
      {hl_snowflake_fingerprint(sf), "HLTEST.LOADER", "/api/v2/statements?requestId=0b1f4b9e-8f6c-4b2a-9a57-0d3c1e5f7a99",
       200, "\"data\""},
  };
  for (size_t i = 0; i < sizeof forged / sizeof *forged; i++) {
    char claims[512];
    snprintf(claims, sizeof claims, "{\"iss\":\"HLTEST.LOADER.%s\",\"sub\":\"%s\",\"iat\":%lld,\"exp\":%lld}",
             forged[i].iss_fp, forged[i].sub, now, now + 600);
    tok = sign_jwt(g_key_pem, claims);
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", tok);
    free(tok);
    hl_buf_reset(&b);
    cr_assert_eq(raw("POST", forged[i].path, h, body, &b), forged[i].status, "case %zu: %s", i, b.data);
    cr_assert(strstr(b.data, forged[i].says), "case %zu: %s", i, b.data);
  }
  /* The right token with the wrong token type. */
  snprintf(auth, sizeof auth, "Authorization: Bearer %s", hl_snowflake_token(sf));
  const char *h2[] = {auth, "X-Snowflake-Authorization-Token-Type: OAUTH", "User-Agent: hl-test/1",
                      "Content-Type: application/json", NULL};
  hl_buf_reset(&b);
  cr_assert_eq(raw("POST", path, h2, body, &b), 401);
  /* Expired, too long, the other key twice (the client renews once), fingerprint, sub, the wrong type. */
  cr_assert_eq(stat_of("auth_failures"), 7);
  /* Validation from sqlapi.yaml: User-Agent is required, requestId is a UUID, timeout an integer >= 0. */
  const char *h3[] = {auth, "X-Snowflake-Authorization-Token-Type: KEYPAIR_JWT", "Content-Type: application/json",
                      NULL};
  hl_buf_reset(&b);
  cr_assert_eq(raw("POST", path, h3, body, &b), 400);
  cr_assert(strstr(b.data, "User-Agent"), "%s", b.data);
  hl_buf_reset(&b);
  cr_assert_eq(raw("POST", "/api/v2/statements?requestId=42", h, body, &b), 400);
  hl_buf_reset(&b);
  cr_assert_eq(raw("POST", path, h, "{\"statement\":\"SELECT 1\",\"timeout\":-1}", &b), 400);
  hl_buf_reset(&b);
  cr_assert_eq(raw("POST", path, h, "{\"statement\":\"SELECT 1\",\"timeout\":\"10\"}", &b), 400);
  hl_buf_reset(&b);
  cr_assert_eq(raw("POST", "/api/v2/statements?requestId=0b1f4b9e-8f6c-4b2a-9a57-0d3c1e5f7a22&bogus=1", h, body, &b), 400);
  hl_buf_reset(&b);
  cr_assert_eq(raw("POST", path, h, "{\"statement\":\"SELECT 1\",\"bindings\":{\"1\":{\"type\":\"NOPE\",\"value\":\"1\"}}}", &b),
               400);
  const char *h4[] = {auth, "X-Snowflake-Authorization-Token-Type: KEYPAIR_JWT", "User-Agent: hl-test/1",
                      "Content-Type: text/plain", NULL};
  hl_buf_reset(&b);
  cr_assert_eq(raw("POST", path, h4, body, &b), 415);
  /* A requestId reused without retry=true is refused; with it, the first result comes back. */
  hl_buf_reset(&b);
  cr_assert_eq(raw("POST", path, h, body, &b), 200, "%s", b.data);
  hl_buf_reset(&b);
  cr_assert_eq(raw("POST", path, h, body, &b), 400);
  hl_buf_reset(&b);
  char retry_path[200];
  snprintf(retry_path, sizeof retry_path, "%s&retry=true", path);
  cr_assert_eq(raw("POST", retry_path, h, body, &b), 200, "%s", b.data);
  hl_buf_free(&b);
  hl_snowflake_free(sf);
}

/* ---- The libuv driver ---- */

typedef struct async_case {
  int done;
  int rc[4];
  hl_snowflake_result *res[4];
  hl_snowflake_error err[4];
} async_case;

typedef struct async_slot {
  async_case *c;
  int i;
} async_slot;

static void on_done(void *ud, int rc, hl_snowflake_result *res, const hl_snowflake_error *err) {
  async_slot *s = ud;
  s->c->rc[s->i] = rc;
  s->c->res[s->i] = res;
  s->c->err[s->i] = *err;
  s->c->done++;
}

static void on_closed(void *ud) {
  *(int *)ud = 1;
}

Test(sfstandin, async_driver_on_libuv) {
  hl_snowflake *sf = client();
  make_table(sf);
  uv_loop_t loop;
  uv_loop_init(&loop);
  hl_snowflake_async *a = NULL;
  cr_assert_eq(hl_snowflake_async_new(sf, &loop, &a), 0);
  async_case c = {0};
  async_slot slots[4] = {{&c, 0}, {&c, 1}, {&c, 2}, {&c, 3}};
  const char *ids[] = {"1", "2", "3", "4", "5", "6", "7"};
  hl_snowflake_bind b[] = {{HL_SF_FIXED, NULL, ids, 7}};
  hl_snowflake_stmt s0 = {.sql = "INSERT INTO RAW.T (ID) VALUES (?)", .binds = b, .nbinds = 1};
  hl_snowflake_stmt s1 = {.sql = "CALL SYSTEM$WAIT(700, 'MILLISECONDS')"};
  hl_snowflake_stmt s2 = {.sql = "SELECT * FROM RAW.MISSING"};
  cr_assert_eq(hl_snowflake_async_exec(a, &s0, on_done, &slots[0]), 0);
  cr_assert_eq(hl_snowflake_async_exec(a, &s1, on_done, &slots[1]), 0);
  cr_assert_eq(hl_snowflake_async_exec(a, &s2, on_done, &slots[2]), 0);
  cr_assert_eq(hl_snowflake_async_pending(a), 3);
  hl_snowflake_stmt bad = {.sql = NULL};
  cr_assert_eq(hl_snowflake_async_exec(a, &bad, on_done, &slots[3]), -EINVAL);
  while (c.done < 3)
    uv_run(&loop, UV_RUN_ONCE);
  cr_assert_eq(c.rc[0], 0, "%s", c.err[0].message);
  cr_assert_eq(hl_snowflake_result_inserted(c.res[0]), 7);
  cr_assert_eq(c.rc[1], 0, "%s", c.err[1].message);
  cr_assert_geq(c.err[1].attempts, 2); /* 202, then polls */
  cr_assert_eq(c.rc[2], HL_EHTTP);
  cr_assert_eq(c.err[2].http_status, 422);
  /* A multi-partition read, with a 503 retried on the way. */
  fault("{\"status\":503,\"count\":1,\"method\":\"GET\"}");
  hl_snowflake_stmt s3 = {.sql = "SELECT ID FROM RAW.T ORDER BY ID"};
  cr_assert_eq(hl_snowflake_async_exec(a, &s3, on_done, &slots[3]), 0);
  while (c.done < 4)
    uv_run(&loop, UV_RUN_ONCE);
  cr_assert_eq(c.rc[3], 0, "%s", c.err[3].message);
  cr_assert_eq(hl_snowflake_result_rows(c.res[3]), 7);
  cr_assert_eq(hl_snowflake_result_partitions(c.res[3]), 3);
  for (int i = 0; i < 4; i++)
    hl_snowflake_result_free(c.res[i]);
  /* Cancelled by the caller: before any answer (no handle yet), and while the server runs it. */
  async_case c3 = {0};
  async_slot early = {&c3, 0}, running = {&c3, 1};
  hl_snowflake_stmt w30 = {.sql = "CALL SYSTEM$WAIT(30)"};
  cr_assert_eq(hl_snowflake_async_exec(a, &w30, on_done, &early), 0);
  cr_assert_eq(hl_snowflake_async_cancel(a, &early), 1);
  cr_assert_eq(c3.rc[0], -ECANCELED);
  long long cancels = stat_of("cancels");
  cr_assert_eq(hl_snowflake_async_exec(a, &w30, on_done, &running), 0);
  /* Past the stand-in's 300 ms sync wait the client holds a handle and polls (margin for a loaded machine). */
  uv_update_time(&loop);
  uint64_t until = uv_now(&loop) + 2500;
  while (uv_now(&loop) < until)
    uv_run(&loop, UV_RUN_ONCE);
  cr_assert_eq(c3.done, 1);
  cr_assert_eq(hl_snowflake_async_cancel(a, &running), 1);
  while (c3.done < 2)
    uv_run(&loop, UV_RUN_ONCE);
  cr_assert_eq(c3.rc[1], -ECANCELED);
  cr_assert_eq(stat_of("cancels"), cancels + 1);
  cr_assert_eq(hl_snowflake_async_pending(a), 0);
  /* Closing cancels what is pending: the callback reports -ECANCELED. */
  async_case c2 = {0};
  async_slot s2slot = {&c2, 0};
  hl_snowflake_stmt longer = {.sql = "CALL SYSTEM$WAIT(5)"};
  cr_assert_eq(hl_snowflake_async_exec(a, &longer, on_done, &s2slot), 0);
  for (int i = 0; i < 20; i++)
    uv_run(&loop, UV_RUN_NOWAIT);
  int closed = 0;
  hl_snowflake_async_close(a, on_closed, &closed);
  cr_assert_eq(c2.rc[0], -ECANCELED);
  while (!closed)
    uv_run(&loop, UV_RUN_ONCE);
  cr_assert_eq(uv_run(&loop, UV_RUN_NOWAIT), 0);
  cr_assert_eq(uv_loop_close(&loop), 0);
  hl_snowflake_free(sf);
}

Test(sfstandin, multi_statement_request) {
  hl_snowflake *sf = client();
  make_table(sf);
  hl_snowflake_stmt st = {.sql = "BEGIN; INSERT INTO RAW.T (ID) VALUES (1); INSERT INTO RAW.T (ID) VALUES (2); COMMIT",
                          .multi_statement_count = 4};
  hl_snowflake_result *r = NULL;
  hl_snowflake_error e;
  cr_assert_eq(hl_snowflake_exec(sf, &st, &r, &e), 0, "%s", e.message);
  const char *const *kids;
  cr_assert_eq(hl_snowflake_result_children(r, &kids), 4);
  /* Each statement's own result, by its handle. */
  hl_snowflake_result *kid = NULL;
  cr_assert_eq(hl_snowflake_fetch(sf, kids[1], &kid, &e), 0, "%s", e.message);
  cr_assert_str_eq(hl_snowflake_result_column(kid, 0)->name, "NUMBER OF ROWS INSERTED");
  cr_assert_str_eq(hl_snowflake_result_str(kid, 0, 0), "1");
  hl_snowflake_result_free(kid);
  cr_assert_eq(hl_snowflake_fetch(sf, "../x", &kid, &e), -EINVAL);
  hl_snowflake_result_free(r);
  hl_snowflake_stmt sel = {.sql = "SELECT 1 AS A; SELECT ID FROM RAW.T ORDER BY ID", .multi_statement_count = 2};
  cr_assert_eq(hl_snowflake_exec(sf, &sel, &r, &e), 0, "%s", e.message);
  cr_assert_eq(hl_snowflake_result_children(r, &kids), 2);
  cr_assert_eq(hl_snowflake_fetch(sf, kids[1], &kid, &e), 0, "%s", e.message);
  cr_assert_eq(hl_snowflake_result_rows(kid), 2);
  hl_snowflake_result_free(kid);
  hl_snowflake_result_free(r);
  cr_assert_eq(count_rows(sf, "RAW.T"), 2);
  /* A failing statement rolls the transaction back. */
  hl_snowflake_stmt bad = {.sql = "BEGIN; INSERT INTO RAW.T (ID) VALUES (3); INSERT INTO RAW.NOPE VALUES (1); COMMIT",
                           .multi_statement_count = 4};
  cr_assert_eq(hl_snowflake_exec(sf, &bad, NULL, &e), HL_EHTTP);
  cr_assert_eq(e.http_status, 422);
  cr_assert_eq(count_rows(sf, "RAW.T"), 2);
  hl_snowflake_stmt wrong = {.sql = "SELECT 1; SELECT 2", .multi_statement_count = 3};
  cr_assert_eq(hl_snowflake_exec(sf, &wrong, NULL, &e), HL_EHTTP);
  cr_assert_str_eq(e.code, "000008");
  hl_snowflake_free(sf);
}

/* ---- Snowpipe Streaming ---- */

static char *ndjson(int from, int to) {
  hl_buf b;
  hl_buf_init(&b, 1 << 20);
  for (int i = from; i <= to; i++)
    hl_buf_printf(&b, "{\"ID\":%d,\"BODY\":{\"resourceType\":\"Patient\",\"id\":\"p%d\"},\"SRC\":\"k/%d\"}\n", i, i, i);
  return hl_buf_steal(&b, NULL);
}

Test(sfstandin, streaming_channel_resume) {
  hl_snowflake *sf = client();
  exec_ok(sf, "CREATE SCHEMA IF NOT EXISTS RAW");
  exec_ok(sf, "CREATE TABLE IF NOT EXISTS RAW.EVENTS (ID NUMBER, BODY VARIANT, SRC VARCHAR)");
  hl_snowflake_channel *ch = NULL;
  hl_snowflake_error e;
  cr_assert_eq(hl_snowflake_channel_open(sf, NULL, NULL, "EVENTS-STREAMING", "hl.fhir.valid-0", &ch, &e), 0,
               "%d %s", e.http_status, e.message);
  cr_assert_null(hl_snowflake_channel_committed(ch));
  char *rows = ndjson(0, 4);
  cr_assert_eq(hl_snowflake_channel_append(ch, rows, strlen(rows), "4", false, &e), 0, "%s", e.message);
  free(rows);
  rows = ndjson(5, 9);
  cr_assert_eq(hl_snowflake_channel_append(ch, rows, strlen(rows), "9", true, &e), 0, "%s", e.message);
  free(rows);
  cr_assert_eq(hl_snowflake_channel_status(ch, &e), 0, "%s", e.message);
  cr_assert_str_eq(hl_snowflake_channel_committed(ch), "9");
  /* A second opener bumps the sequencer: the first handle is now stale. */
  hl_snowflake_channel *ch2 = NULL;
  cr_assert_eq(hl_snowflake_channel_open(sf, "HEALTHLAKE", "RAW", "EVENTS-STREAMING", "hl.fhir.valid-0", &ch2, &e), 0);
  cr_assert_str_eq(hl_snowflake_channel_committed(ch2), "9");
  rows = ndjson(10, 10);
  cr_assert_eq(hl_snowflake_channel_append(ch, rows, strlen(rows), "10", false, &e), HL_EHTTP);
  cr_assert_eq(e.http_status, 400);
  cr_assert_str_eq(e.code, "STALE_CONTINUATION_TOKEN_SEQUENCER");
  /* A bad row: nothing of the request is taken, the offset does not move. */
  const char *badrow = "{\"ID\":11}\nnot json\n";
  cr_assert_eq(hl_snowflake_channel_append(ch2, badrow, strlen(badrow), "11", false, &e), HL_EHTTP);
  cr_assert_eq(hl_snowflake_channel_status(ch2, &e), 0);
  cr_assert_str_eq(hl_snowflake_channel_committed(ch2), "9");
  cr_assert_eq(hl_snowflake_channel_append(ch2, rows, strlen(rows), "10", false, &e), 0, "%s", e.message);
  free(rows);
  hl_snowflake_channel_free(ch);
  hl_snowflake_channel_free(ch2);
  cr_assert_eq(count_rows(sf, "RAW.EVENTS"), 11);
  /* Scoped tokens expire: the client exchanges a new one and goes on. */
  fault("{\"expire_scoped_tokens\":true}");
  cr_assert_eq(hl_snowflake_channel_open(sf, NULL, NULL, "EVENTS-STREAMING", "hl.fhir.valid-1", &ch, &e), 0,
               "%s", e.message);
  cr_assert_null(hl_snowflake_channel_committed(ch));
  hl_snowflake_channel_free(ch);
  hl_snowflake_free(sf);
  /* A restart of the stand-in keeps rows and committed offset tokens. */
  g_si = sf_standin_thread_stop(g_si);
  start_standin();
  sf = client();
  cr_assert_eq(hl_snowflake_channel_open(sf, NULL, NULL, "EVENTS-STREAMING", "hl.fhir.valid-0", &ch, &e), 0,
               "%s", e.message);
  cr_assert_str_eq(hl_snowflake_channel_committed(ch), "10");
  hl_snowflake_channel_free(ch);
  cr_assert_eq(count_rows(sf, "RAW.EVENTS"), 11);
  /* An unknown pipe. */
  cr_assert_eq(hl_snowflake_channel_open(sf, NULL, NULL, "NOPE-STREAMING", "c", &ch, &e), HL_EHTTP);
  cr_assert_eq(e.http_status, 404);
  hl_snowflake_free(sf);
}

Test(sfstandin, ddl_merge_and_pipes) {
  hl_snowflake *sf = client();
  /* A DDL file as one multi-statement request: comments, no-op objects, table options. */
  hl_snowflake_stmt ddl = {
      .sql = "-- role: SYSADMIN\n"
             "CREATE DATABASE IF NOT EXISTS HEALTHLAKE;\n"
             "CREATE WAREHOUSE IF NOT EXISTS HL_LOAD_WH WAREHOUSE_SIZE = XSMALL;\n"
             "CREATE SCHEMA IF NOT EXISTS HEALTHLAKE.RAW;\n"
             "CREATE SCHEMA IF NOT EXISTS HEALTHLAKE.GOVERNANCE;\n"
             "CREATE TABLE IF NOT EXISTS HEALTHLAKE.RAW.FR (\n"
             "  raw_id NUMBER(38,0) COMMENT 'Row number; in load order' AUTOINCREMENT START 1 INCREMENT 1 ORDER NOT NULL,\n"
             "  tenant VARCHAR COMMENT 'The organization' NOT NULL,\n"
             "  resource VARIANT,\n"
             "  loaded_at TIMESTAMP_LTZ COMMENT 'When' DEFAULT CURRENT_TIMESTAMP() NOT NULL\n"
             ") CLUSTER BY (tenant) CHANGE_TRACKING = TRUE COMMENT = 'Append-only; one row per arrival';\n"
             "CREATE TABLE IF NOT EXISTS HEALTHLAKE.GOVERNANCE.TA (role_name VARCHAR NOT NULL, tenant VARCHAR NOT NULL,"
             " PRIMARY KEY (role_name, tenant));\n"
             "CREATE TABLE IF NOT EXISTS HEALTHLAKE.RAW.JOBS (job VARCHAR NOT NULL, state VARCHAR, n NUMBER DEFAULT 0);\n"
             "CREATE PIPE IF NOT EXISTS HEALTHLAKE.RAW.FR_STREAM COMMENT = 'streaming' AS COPY INTO HEALTHLAKE.RAW.FR (tenant)"
             " FROM (SELECT $1:tenant::VARCHAR FROM TABLE(DATA_SOURCE(TYPE => 'STREAMING')));\n"
             "GRANT USAGE ON WAREHOUSE HL_LOAD_WH TO ROLE HL_LOADER;\n",
      .multi_statement_count = HL_SF_MULTI_ANY};
  hl_snowflake_error e;
  cr_assert_eq(hl_snowflake_exec(sf, &ddl, NULL, &e), 0, "%s", e.message);
  exec_ok(sf, "INSERT INTO RAW.FR (tenant, resource) SELECT 'org-1', PARSE_JSON('{\"id\":\"a\"}')");
  exec_ok(sf, "INSERT INTO RAW.FR (tenant) VALUES ('org-2')");
  hl_snowflake_result *r = NULL;
  cr_assert_eq(hl_snowflake_query(sf, "SELECT raw_id, tenant, loaded_at, resource:id::string AS rid FROM RAW.FR ORDER BY raw_id",
                                  NULL, 0, &r, &e), 0, "%s", e.message);
  cr_assert_eq(hl_snowflake_result_rows(r), 2);
  hl_snowflake_value v;
  cr_assert_eq(hl_snowflake_result_value(r, 1, 0, &v), 0);
  cr_assert_eq(v.i, 2);
  cr_assert_eq(hl_snowflake_result_value(r, 0, 2, &v), 0, "%s", v.text);
  cr_assert_eq(v.kind, HL_SFV_TIMESTAMP);
  cr_assert_str_eq(hl_snowflake_result_str(r, 0, 3), "a");
  hl_snowflake_result_free(r);
  /* MERGE, insert-only, twice: one row. */
  const char *m1 = "MERGE INTO HEALTHLAKE.GOVERNANCE.TA t USING (SELECT 'HL_API_READER' AS role_name, '*' AS tenant) s"
                   " ON t.role_name = s.role_name AND t.tenant = s.tenant"
                   " WHEN NOT MATCHED THEN INSERT (role_name, tenant) VALUES (s.role_name, s.tenant)";
  for (int i = 0; i < 2; i++) {
    cr_assert_eq(hl_snowflake_query(sf, m1, NULL, 0, &r, &e), 0, "%s", e.message);
    cr_assert_eq(hl_snowflake_result_inserted(r), i == 0 ? 1 : 0);
    hl_snowflake_result_free(r);
  }
  cr_assert_eq(count_rows(sf, "GOVERNANCE.TA"), 1);
  /* MERGE with bindings: insert, then update. */
  const char *m2 = "MERGE INTO RAW.JOBS AS t USING (SELECT ? AS job, ? AS state) AS s ON t.job = s.job"
                   " WHEN MATCHED THEN UPDATE SET t.state = s.state, n = t.n + 1"
                   " WHEN NOT MATCHED THEN INSERT (job, state) VALUES (s.job, s.state)";
  const char *a1[] = {"j1", "accepted"}, *a2[] = {"j1", "completed"};
  cr_assert_eq(hl_snowflake_query(sf, m2, a1, 2, &r, &e), 0, "%s", e.message);
  cr_assert_eq(hl_snowflake_result_inserted(r), 1);
  hl_snowflake_result_free(r);
  cr_assert_eq(hl_snowflake_query(sf, m2, a2, 2, &r, &e), 0, "%s", e.message);
  cr_assert_eq(hl_snowflake_result_inserted(r), 0);
  cr_assert_eq(hl_snowflake_result_updated(r), 1);
  hl_snowflake_result_free(r);
  cr_assert_eq(hl_snowflake_query(sf, "SELECT state, n FROM RAW.JOBS", NULL, 0, &r, &e), 0);
  cr_assert_str_eq(hl_snowflake_result_str(r, 0, 0), "completed");
  cr_assert_str_eq(hl_snowflake_result_str(r, 0, 1), "1");
  hl_snowflake_result_free(r);
  cr_assert_eq(hl_snowflake_query(sf, "MERGE INTO RAW.JOBS USING RAW.FR ON 1 = 1 WHEN MATCHED THEN DELETE", NULL, 0,
                                  NULL, &e), HL_EHTTP);
  cr_assert_eq(e.http_status, 422);
  /* The named pipe loads its table; the AUTOINCREMENT column goes on counting. */
  hl_snowflake_channel *ch = NULL;
  cr_assert_eq(hl_snowflake_channel_open(sf, NULL, "RAW", "FR_STREAM", "p0", &ch, &e), 0, "%s", e.message);
  const char *rows = "{\"tenant\":\"org-3\",\"resource\":{\"id\":\"b\"}}\n";
  cr_assert_eq(hl_snowflake_channel_append(ch, rows, strlen(rows), "0", false, &e), 0, "%s", e.message);
  hl_snowflake_channel_free(ch);
  cr_assert_eq(hl_snowflake_query(sf, "SELECT MAX(raw_id) AS M FROM RAW.FR", NULL, 0, &r, &e), 0);
  cr_assert_str_eq(hl_snowflake_result_str(r, 0, 0), "3");
  hl_snowflake_result_free(r);
  cr_assert_eq(stat_of("spec_violations"), 0);
  hl_snowflake_free(sf);
}
