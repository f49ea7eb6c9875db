/*
 * hl-api-gateway's snowflake store against an in-process hl-sf-standin:
 * the response cache answers repeated statements without a request (the
 * stand-in's execution counter does not move), is keyed by tenant, evicts
 * the least recently used entry past its entry cap, forgets entries after
 * the TTL and never keeps a result larger than its byte cap; a search
 * runs with the tenant bound (a tenant full of SQL finds nothing).
 */
#define _GNU_SOURCE
#include <curl/curl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "hl/buf.h"
#include "hl/config.h"
#include "hl/error.h"
#include "hl/metrics.h"
#include "hl/snowflake.h"
#include "hl_sf_test.h"
#include "hl_test.h"
#include "standin.h"
#include "store.h"

#ifndef SF_STANDIN_SPEC
#error "SF_STANDIN_SPEC must name sqlapi.json"
#endif

static char g_dir[256], g_key_path[300], g_url[64];
static sf_standin_thread *g_si;

static void setup(void) {
  snprintf(g_dir, sizeof g_dir, "/tmp/hl-api-sfXXXXXX");
  cr_assert_not_null(mkdtemp(g_dir));
  snprintf(g_key_path, sizeof g_key_path, "%s/key.pem", g_dir);
  char *pem = hl_sf_test_key_pem(NULL);
  FILE *f = fopen(g_key_path, "w");
  cr_assert(f && fputs(pem, f) >= 0);
  fclose(f);
  free(pem);
  sf_standin_config c = {.dir = g_dir, .account = "hltest", .user = "api", .public_key_file = g_key_path,
                         .spec_path = SF_STANDIN_SPEC, .sync_wait_ms = 5000};
  char err[512];
  cr_assert_eq(sf_standin_thread_start(&c, &g_si, err, sizeof err), 0, "%s", err);
  snprintf(g_url, sizeof g_url, "http://127.0.0.1:%d", sf_standin_thread_port(g_si));
  /* A curated_patient table with two tenants' rows; the resource of p-big is over 2 KiB. */
  hl_snowflake_config sc = {.account = "HLTEST", .user = "API", .private_key_file = g_key_path, .url = g_url};
  hl_snowflake *sf;
  cr_assert_eq(hl_snowflake_new(&sc, &sf, err, sizeof err), 0, "%s", err);
  const char *ddl[] = {
      "CREATE SCHEMA CURATED",
      "CREATE TABLE CURATED.curated_patient (tenant TEXT NOT NULL, id TEXT NOT NULL, version_id TEXT, "
      "last_updated TEXT, raw_id INTEGER, resource TEXT NOT NULL, birthdate TEXT)",
  };
  hl_snowflake_error e;
  for (size_t i = 0; i < 2; i++)
    cr_assert_eq(hl_snowflake_query(sf, ddl[i], NULL, 0, NULL, &e), 0, "%s", e.message);
  for (int i = 1; i <= 4; i++) {
    char id[16], res[128];
    snprintf(id, sizeof id, "p%d", i);
    snprintf(res, sizeof res, "{\"resourceType\":\"Patient\",\"id\":\"%s\"}", id);
    const char *a[] = {i == 4 ? "org-2" : "org-1", id, res, i == 1 ? "1990-05-17" : "2001"};
    cr_assert_eq(hl_snowflake_query(sf, "INSERT INTO CURATED.curated_patient VALUES (?, ?, '1', "
                                        "'2024-01-01T00:00:00Z', 0, ?, ?)", a, 4, NULL, &e), 0, "%s", e.message);
  }
  char big[4096] = "{\"resourceType\":\"Patient\",\"id\":\"p-big\",\"text\":\"";
  memset(big + strlen(big), 'x', 3000);
  strcpy(big + strlen(big), "\"}");
  const char *a[] = {"org-1", "p-big", big};
  cr_assert_eq(hl_snowflake_query(sf, "INSERT INTO CURATED.curated_patient VALUES (?, ?, '1', "
                                      "'2024-01-01T00:00:00Z', 0, ?, NULL)", a, 3, NULL, &e), 0, "%s", e.message);
  hl_snowflake_free(sf);
}

static void teardown(void) {
  g_si = sf_standin_thread_stop(g_si);
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf %s", g_dir);
  if (system(cmd) != 0)
    fprintf(stderr, "could not remove %s\n", g_dir);
  hl_test_leak_check();
}

TestSuite(apisfstore, .init = setup, .fini = teardown, .timeout = 120);

typedef struct env {
  const char *entries, *bytes, *ttl;
} env;

static const char *lookup(const char *name, void *ud) {
  const env *e = ud;
  if (!strcmp(name, "HL_SNOWFLAKE_ACCOUNT"))
    return "HLTEST";
  if (!strcmp(name, "HL_SNOWFLAKE_USER"))
    return "API";
  if (!strcmp(name, "HL_SNOWFLAKE_PRIVATE_KEY_FILE"))
    return g_key_path;
  if (!strcmp(name, "HL_SNOWFLAKE_URL"))
    return g_url;
  if (!strcmp(name, "HL_API_SNOWFLAKE_JOBS_SCHEMA"))
    return "CURATED";
  if (!strcmp(name, "HL_API_CACHE_ENTRIES"))
    return e->entries;
  if (!strcmp(name, "HL_API_CACHE_BYTES"))
    return e->bytes;
  if (!strcmp(name, "HL_API_CACHE_TTL"))
    return e->ttl;
  return NULL;
}

typedef struct fixture {
  uv_loop_t loop;
  hl_metrics *reg;
  hl_config *cfg;
  hl_api_store *st;
} fixture;

static void open_store(fixture *f, env e) {
  static const hl_config_var vars[] = {HL_CONFIG_SNOWFLAKE_VARS, HL_API_STORE_SNOWFLAKE_VARS};
  static const hl_config_spec spec = {"test", "test", vars, sizeof vars / sizeof vars[0]};
  char err[512];
  cr_assert_eq(uv_loop_init(&f->loop), 0);
  cr_assert_eq(hl_metrics_new(&f->reg), 0);
  cr_assert_eq(hl_config_load_from(&spec, lookup, &e, &f->cfg, err, sizeof err), 0, "%s", err);
  cr_assert_eq(hl_api_store_snowflake_new(f->cfg, &f->loop, f->reg, &f->st, err, sizeof err), 0, "%s", err);
  char reason[256];
  cr_assert(f->st->ops->ready(f->st, reason, sizeof reason), "%s", reason);
}

static void close_store(fixture *f) {
  f->st = hl_api_store_free(f->st);
  uv_run(&f->loop, UV_RUN_DEFAULT);
  cr_assert_eq(uv_loop_close(&f->loop), 0);
  hl_config_free(f->cfg);
  hl_metrics_free(f->reg);
}

typedef struct answer {
  bool done;
  int rc;
  int64_t total;
  size_t nrows;
  char first[64];
} answer;

static void on_result(void *ud, int rc, hl_api_result *res) {
  answer *a = ud;
  a->done = true;
  a->rc = rc;
  if (rc == 0) {
    a->total = res->total;
    a->nrows = res->nrows;
    snprintf(a->first, sizeof a->first, "%s", res->nrows ? res->rows[0].id : "");
  }
}

static void wait_answer(fixture *f, answer *a) {
  while (!a->done)
    uv_run(&f->loop, UV_RUN_ONCE);
}

static int read_id(fixture *f, const char *tenant, const char *id) {
  answer a = {0};
  f->st->ops->read(f->st, tenant, hl_api_type_find("Patient"), id, on_result, &a);
  wait_answer(f, &a);
  return a.rc;
}

static double metric(fixture *f, const char *name) {
  hl_buf b;
  hl_buf_init(&b, 1 << 20);
  cr_assert_eq(hl_metrics_render(f->reg, &b), 0);
  hl_buf_putc(&b, 0);
  double v = -1;
  for (char *l = b.data; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
    if (!strncmp(l, name, strlen(name)) && l[strlen(name)] == ' ')
      v = strtod(l + strlen(name) + 1, NULL);
  hl_buf_free(&b);
  return v;
}

/* The stand-in's count of statements actually executed. */
static long executions(void) {
  char *text = NULL;
  size_t len = 0;
  FILE *out = open_memstream(&text, &len);
  CURL *c = curl_easy_init();
  char url[128];
  snprintf(url, sizeof url, "%s/_standin/stats", g_url);
  curl_easy_setopt(c, CURLOPT_URL, url);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
  cr_assert_eq(curl_easy_perform(c), CURLE_OK);
  curl_easy_cleanup(c);
  fclose(out);
  json_t *j = json_loads(text, 0, NULL);
  long n = (long)json_integer_value(json_object_get(j, "executions"));
  json_decref(j);
  free(text);
  return n;
}

Test(apisfstore, repeated_read_is_served_from_cache) {
  fixture f;
  open_store(&f, (env){"100", "1MiB", "60s"});
  cr_assert_eq(read_id(&f, "org-1", "p1"), 0);
  long before = executions();
  for (int i = 0; i < 5; i++)
    cr_assert_eq(read_id(&f, "org-1", "p1"), 0);
  cr_assert_eq(executions(), before, "cached reads sent no statement");
  cr_assert_eq(metric(&f, "hl_api_cache_hits_total"), 5);
  cr_assert_eq(metric(&f, "hl_api_cache_misses_total"), 1);
  cr_assert_eq(metric(&f, "hl_api_cache_entries"), 1);
  close_store(&f);
}

Test(apisfstore, cache_is_keyed_by_tenant) {
  fixture f;
  open_store(&f, (env){"100", "1MiB", "60s"});
  cr_assert_eq(read_id(&f, "org-1", "p1"), 0);
  cr_assert_eq(read_id(&f, "org-2", "p1"), HL_ENOTFOUND, "another tenant never sees org-1's cached row");
  cr_assert_eq(read_id(&f, "org-2", "p4"), 0);
  cr_assert_eq(read_id(&f, "org-1", "p4"), HL_ENOTFOUND);
  cr_assert_eq(metric(&f, "hl_api_cache_hits_total"), 0);
  close_store(&f);
}

Test(apisfstore, lru_by_entries_ttl_and_bytes) {
  fixture f;
  open_store(&f, (env){"2", "2KiB", "300ms"});
  cr_assert_eq(read_id(&f, "org-1", "p1"), 0);
  cr_assert_eq(read_id(&f, "org-1", "p2"), 0);
  cr_assert_eq(read_id(&f, "org-1", "p1"), 0); /* hit: p1 is now the most recent */
  cr_assert_eq(read_id(&f, "org-1", "p3"), 0); /* evicts p2, the least recently used */
  cr_assert_eq(metric(&f, "hl_api_cache_evictions_total"), 1);
  cr_assert_eq(read_id(&f, "org-1", "p1"), 0); /* still cached */
  cr_assert_eq(metric(&f, "hl_api_cache_hits_total"), 2);
  cr_assert_eq(read_id(&f, "org-1", "p2"), 0); /* was evicted: a miss */
  cr_assert_eq(metric(&f, "hl_api_cache_misses_total"), 4);
  /* Past the TTL every entry answers a miss. */
  usleep(400000);
  cr_assert_eq(read_id(&f, "org-1", "p1"), 0);
  cr_assert_eq(metric(&f, "hl_api_cache_misses_total"), 5);
  /* A result over the byte cap is never kept. */
  cr_assert_eq(read_id(&f, "org-1", "p-big"), 0);
  cr_assert_eq(read_id(&f, "org-1", "p-big"), 0);
  cr_assert_eq(metric(&f, "hl_api_cache_misses_total"), 7);
  cr_assert_leq(metric(&f, "hl_api_cache_bytes"), 2048);
  close_store(&f);
}

Test(apisfstore, search_binds_tenant_and_dates) {
  fixture f;
  open_store(&f, (env){"0", "1MiB", "60s"});
  hl_api_search s;
  char err[256];
  hl_api_query q;
  const char *qs = "birthdate=ge1990&birthdate=lt2000";
  cr_assert_eq(hl_api_query_parse(qs, strlen(qs), &q, err, sizeof err), 0, "%s", err);
  cr_assert_eq(hl_api_search_parse(hl_api_type_find("Patient"), &q, NULL, &s, err, sizeof err), 0, "%s", err);
  answer a = {0};
  f.st->ops->search(f.st, "org-1", &s, on_result, &a);
  wait_answer(&f, &a);
  cr_assert_eq(a.rc, 0);
  cr_assert_eq(a.total, 1);
  cr_assert_str_eq(a.first, "p1");
  answer b = {0};
  f.st->ops->search(f.st, "org-1' OR '1'='1", &s, on_result, &b);
  wait_answer(&f, &b);
  cr_assert_eq(b.rc, 0);
  cr_assert_eq(b.total, 0, "the tenant is a bound value, not SQL");
  hl_api_search_clear(&s);
  hl_api_query_clear(&q);
  cr_assert_eq(metric(&f, "hl_api_cache_hits_total"), 0, "entries 0: no cache");
  close_store(&f);
}
