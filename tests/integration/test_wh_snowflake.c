/*
 * The snowflake warehouse backend against hl-sf-standin (in-process, real
 * HTTP on 127.0.0.1): a replayed batch loads nothing twice, a new writer
 * (a restart after a crash) resumes after the committed offset tokens, a
 * writer whose channel was taken over by another one reopens and skips,
 * a failed append loads nothing twice once retried, rejected rows land in
 * LOAD_REJECT once, and job-status events fold once per event id.
 */
#define _GNU_SOURCE
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hl/error.h"
#include "hl/snowflake.h"
#include "hl/warehouse.h"
#include "hl_sf_test.h"
#include "hl_test.h"
#include "standin.h"

#ifndef SF_STANDIN_SPEC
#error "SF_STANDIN_SPEC must name sqlapi.json"
#endif
#ifndef SF_RAW_SQL
#error "SF_RAW_SQL must name tests/integration/sf_raw.sql"
#endif

static char g_dir[256], g_key_path[300], g_url[64];
static char *g_key_pem;
static sf_standin_thread *g_si;

static hl_snowflake_config sf_config(void) {
  return (hl_snowflake_config){.account = "HLTEST", .user = "LOADER", .private_key_pem = g_key_pem,
                               .url = g_url, .database = "HEALTHLAKE", .schema = "RAW", .max_retries = 2,
                               .retry_base_ms = 10, .retry_max_ms = 100, .poll_max_ms = 100,
                               .request_timeout_ms = 20000};
}

/* Applies sf_raw.sql through the client (comment lines blanked, split on ';'). */
static void apply_ddl(void) {
  FILE *f = fopen(SF_RAW_SQL, "r");
  cr_assert_not_null(f);
  static char text[65536];
  size_t n = fread(text, 1, sizeof text - 1, f);
  fclose(f);
  text[n] = 0;
  for (char *l = text; *l;) {
    char *e = strchr(l, '\n');
    if (l[0] == '-' && l[1] == '-')
      memset(l, ' ', e ? (size_t)(e - l) : strlen(l));
    l = e ? e + 1 : l + strlen(l);
  }
  hl_snowflake_config c = sf_config();
  hl_snowflake *sf = NULL;
  char err[256];
  cr_assert_eq(hl_snowflake_new(&c, &sf, err, sizeof err), 0, "%s", err);
  char *save = NULL;
  for (char *s = strtok_r(text, ";", &save); s; s = strtok_r(NULL, ";", &save)) {
    if (strspn(s, " \t\r\n") == strlen(s))
      continue;
    hl_snowflake_error e;
    char line[700];
    cr_assert_eq(hl_snowflake_query(sf, s, NULL, 0, NULL, &e), 0, "%s: %s", s,
                 hl_snowflake_error_str(&e, line, sizeof line));
  }
  hl_snowflake_free(sf);
}

static void setup(void) {
  snprintf(g_dir, sizeof g_dir, "/tmp/hl-wh-sfXXXXXX");
  cr_assert_not_null(mkdtemp(g_dir));
  snprintf(g_key_path, sizeof g_key_path, "%s/key.pem", g_dir);
  g_key_pem = hl_sf_test_key_pem(NULL);
  FILE *f = fopen(g_key_path, "w");
  cr_assert_not_null(f);
  fputs(g_key_pem, f);
  fclose(f);
  sf_standin_config c = {.dir = g_dir, .account = "hltest", .user = "loader", .public_key_file = g_key_path,
                         .spec_path = SF_STANDIN_SPEC, .sync_wait_ms = 5000};
  char err[512];
  cr_assert_eq(sf_standin_thread_start(&c, &g_si, err, sizeof err), 0, "%s", err);
  snprintf(g_url, sizeof g_url, "http://127.0.0.1:%d", sf_standin_thread_port(g_si));
  apply_ddl();
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

TestSuite(whsnowflake, .init = setup, .fini = teardown, .timeout = 120);

static hl_wh *open_wh(void) {
  hl_wh_opts o = {.backend = "snowflake", .snowflake = sf_config(), .sf_commit_timeout_ms = 10000};
  hl_wh *wh = NULL;
  char err[512];
  cr_assert_eq(hl_wh_new(&o, &wh, err, sizeof err), 0, "%s", err);
  return wh;
}

/* Adds rows for topic "hl.fhir.valid", partition p, offsets [lo, hi). */
static void add_rows(hl_wh_batch *b, int p, int64_t lo, int64_t hi) {
  for (int64_t off = lo; off < hi; off++) {
    char key[64], json[256];
    snprintf(key, sizeof key, "org-1/Patient/p%d-%lld", p, (long long)off);
    snprintf(json, sizeof json,
             "{\"resourceType\":\"Patient\",\"id\":\"p%d-%lld\",\"meta\":{\"versionId\":\"1\","
             "\"lastUpdated\":\"2024-01-01T00:00:00Z\"}}",
             p, (long long)off);
    hl_wh_row r = {.json = json, .job = "j1", .source = "s3://landing/a.ndjson", .line = off,
                   .topic = "hl.fhir.valid", .partition = p, .offset = off};
    cr_assert_eq(hl_wh_row_set_key(&r, key, strlen(key)), 0);
    cr_assert_geq(hl_wh_batch_add(b, &r), 0);
  }
}

static int64_t raw_rows(hl_wh *wh) {
  int64_t n = -1;
  cr_assert_eq(hl_wh_count_rows(wh, "raw", &n), 0);
  return n;
}

static int faults(const char *json) {
  CURL *c = curl_easy_init();
  char url[128];
  snprintf(url, sizeof url, "%s/_standin/faults", g_url);
  struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
  curl_easy_setopt(c, CURLOPT_URL, url);
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
  curl_easy_setopt(c, CURLOPT_POSTFIELDS, json);
  CURLcode rc = curl_easy_perform(c);
  long status = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  curl_slist_free_all(h);
  curl_easy_cleanup(c);
  return rc == CURLE_OK && status < 300 ? 0 : -1;
}

Test(whsnowflake, replay_loads_nothing_twice) {
  hl_wh *wh = open_wh();
  hl_wh_batch *b;
  cr_assert_eq(hl_wh_batch_new(0, 0, &b), 0);
  add_rows(b, 0, 0, 10);
  add_rows(b, 1, 0, 5);
  hl_wh_result res;
  cr_assert_eq(hl_wh_batch_commit(wh, b, &res), 0);
  cr_assert_eq(res.raw_only, 15);
  cr_assert_eq(res.duplicate, 0);
  cr_assert_gt(res.batch_id, 0);
  cr_assert_eq(raw_rows(wh), 15);
  /* The same batch again (the loader crashed before storing offsets): nothing new. */
  cr_assert_eq(hl_wh_batch_commit(wh, b, &res), 0);
  cr_assert_eq(res.duplicate, 15);
  cr_assert_eq(res.raw_only, 0);
  cr_assert_eq(raw_rows(wh), 15);
  /* The loader's counts come from RAW: the job has 15 loaded rows, not 30. */
  hl_wh_job j;
  cr_assert_eq(hl_wh_job_get(wh, "org-1", "j1", "s3://landing/a.ndjson", &j), 0);
  cr_assert_eq(j.loaded, 15);
  cr_assert_str_eq(j.state, "processing");
  hl_wh_batch_free(b);
  hl_wh_free(wh);
}

Test(whsnowflake, restart_resumes_after_committed_token) {
  hl_wh *wh = open_wh();
  hl_wh_batch *b;
  cr_assert_eq(hl_wh_batch_new(0, 0, &b), 0);
  add_rows(b, 0, 0, 10);
  cr_assert_eq(hl_wh_batch_commit(wh, b, NULL), 0);
  wh = hl_wh_free(wh);
  /* A new process: its batch overlaps the committed rows (Kafka offsets were not stored). */
  wh = open_wh();
  hl_wh_batch_reset(b);
  add_rows(b, 0, 5, 15);
  hl_wh_result res;
  cr_assert_eq(hl_wh_batch_commit(wh, b, &res), 0);
  cr_assert_eq(res.duplicate, 5);
  cr_assert_eq(res.raw_only, 5);
  for (size_t i = 0; i < 5; i++)
    cr_assert_eq(hl_wh_batch_status(b, i, NULL, NULL), HL_WH_ROW_DUPLICATE);
  for (size_t i = 5; i < 10; i++)
    cr_assert_eq(hl_wh_batch_status(b, i, NULL, NULL), HL_WH_ROW_RAW_ONLY);
  cr_assert_eq(raw_rows(wh), 15);
  hl_wh_batch_free(b);
  hl_wh_free(wh);
}

Test(whsnowflake, taken_over_channel_reopens_and_skips) {
  hl_wh *a = open_wh(), *b2 = open_wh();
  hl_wh_batch *b;
  cr_assert_eq(hl_wh_batch_new(0, 0, &b), 0);
  add_rows(b, 2, 0, 4);
  cr_assert_eq(hl_wh_batch_commit(a, b, NULL), 0);
  /* A rebalance: the other loader gets the partition, reopens the channel and loads more. */
  hl_wh_batch_reset(b);
  add_rows(b, 2, 0, 8);
  hl_wh_result res;
  cr_assert_eq(hl_wh_batch_commit(b2, b, &res), 0);
  cr_assert_eq(res.duplicate, 4);
  cr_assert_eq(res.raw_only, 4);
  /* The partition comes back to the first one, whose channel handle is now stale. */
  hl_wh_batch_reset(b);
  add_rows(b, 2, 6, 10);
  cr_assert_eq(hl_wh_batch_commit(a, b, &res), 0);
  cr_assert_eq(res.duplicate, 2);
  cr_assert_eq(res.raw_only, 2);
  cr_assert_eq(raw_rows(a), 10);
  hl_wh_batch_free(b);
  hl_wh_free(a);
  hl_wh_free(b2);
}

Test(whsnowflake, failed_append_is_retried_without_duplicates) {
  hl_wh *wh = open_wh();
  hl_wh_batch *b;
  cr_assert_eq(hl_wh_batch_new(0, 0, &b), 0);
  add_rows(b, 0, 0, 3);
  cr_assert_eq(hl_wh_batch_commit(wh, b, NULL), 0);
  hl_wh_batch_reset(b);
  add_rows(b, 0, 3, 6);
  add_rows(b, 1, 0, 3);
  /* Every streaming data request fails past the client's retries: retry later, nothing stored. */
  cr_assert_eq(faults("{\"status\":503,\"count\":50,\"path\":\"/v2/streaming/data\"}"), 0);
  cr_assert_eq(hl_wh_batch_commit(wh, b, NULL), HL_WH_EBUSY);
  cr_assert_eq(faults("{\"clear\":true}"), 0);
  hl_wh_result res;
  cr_assert_eq(hl_wh_batch_commit(wh, b, &res), 0);
  cr_assert_eq(res.raw_only + res.duplicate, 6);
  cr_assert_eq(raw_rows(wh), 9);
  hl_wh_batch_free(b);
  hl_wh_free(wh);
}

Test(whsnowflake, rejects_and_job_events_fold_once) {
  hl_wh *wh = open_wh();
  hl_wh_batch *b;
  cr_assert_eq(hl_wh_batch_new(0, 0, &b), 0);
  const char *parse = "{\"job\":\"j1\",\"org\":\"org-1\",\"uri\":\"s3://landing/a.ndjson\",\"stage\":\"parse\","
                      "\"state\":\"parsed\",\"received\":4,\"emitted\":4,\"rejected\":0,"
                      "\"time\":\"2024-01-01T00:00:00Z\"}";
  const char *valid = "{\"job\":\"j1\",\"org\":\"org-1\",\"uri\":\"s3://landing/a.ndjson\",\"stage\":\"validate\","
                      "\"state\":\"validated\",\"emitted\":3,\"rejected\":1,\"event_id\":\"v-1\","
                      "\"time\":\"2024-01-01T00:00:01Z\"}";
  cr_assert_eq(hl_wh_batch_add_event(b, parse, strlen(parse)), 0);
  cr_assert_eq(hl_wh_batch_add_event(b, valid, strlen(valid)), 0);
  cr_assert_eq(hl_wh_batch_add_event(b, "{\"not\":\"an event\"}", 18), 0);
  add_rows(b, 0, 0, 2);
  hl_wh_row bad = {.json = "{not json", .job = "j1", .source = "s3://landing/a.ndjson", .line = 9,
                   .topic = "hl.fhir.valid", .partition = 0, .offset = 2};
  cr_assert_eq(hl_wh_row_set_key(&bad, "org-1/Patient/x", 15), 0);
  cr_assert_geq(hl_wh_batch_add(b, &bad), 0);
  hl_wh_result res;
  for (int round = 0; round < 2; round++) {
    cr_assert_eq(hl_wh_batch_commit(wh, b, &res), 0);
    cr_assert_eq(res.events, 2);
    cr_assert_eq(res.events_skipped, 1);
    cr_assert_eq(res.rejected, 1);
  }
  hl_wh_job j;
  cr_assert_eq(hl_wh_job_get(wh, "org-1", "j1", "s3://landing/a.ndjson", &j), 0);
  cr_assert(j.parsed);
  cr_assert_eq(j.received, 4);
  cr_assert_eq(j.valid, 3, "valid %llu", (unsigned long long)j.valid);
  cr_assert_eq(j.validate_rejected, 1);
  cr_assert_eq(j.loaded, 2);
  cr_assert_eq(j.load_rejected, 1);
  cr_assert_eq(j.rejected, 2);
  /* 4 received = 2 loaded + 2 rejected: done, with errors. */
  cr_assert_str_eq(j.state, "completed-with-errors");
  cr_assert_eq(raw_rows(wh), 2);
  int64_t n = 0;
  cr_assert_eq(hl_wh_count_rows(wh, "load_reject", &n), 0);
  cr_assert_eq(n, 1);
  cr_assert_eq(hl_wh_job_get(wh, "org-1", "nope", "", &j), HL_ENOTFOUND);
  hl_wh_batch_free(b);
  hl_wh_free(wh);
}

Test(whsnowflake, missing_settings_refused) {
  hl_wh_opts o = {.backend = "snowflake"};
  hl_wh *wh = NULL;
  char err[512];
  cr_assert_eq(hl_wh_new(&o, &wh, err, sizeof err), HL_ECONFIG);
  cr_assert(strstr(err, "HL_SNOWFLAKE_ACCOUNT"));
  cr_assert_null(wh);
}
