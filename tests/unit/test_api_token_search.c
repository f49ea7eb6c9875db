/*
 * hl-api-gateway: token searches of the SQLite store (store_sqlite.c,
 * sqlgen.c) on a real warehouse written by the warehouse's own writer: the
 * terms of curated_token_fts find the candidates, curated_token confirms
 * them. Every form of a token value, OR'ed values, :not and :missing, and
 * the boundaries of a term (tenant, type, parameter); a term planted on a
 * resource that lacks the value (what a hash collision would do) must not
 * make it match.
 */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "hl/warehouse.h"
#include "hl_api_test.h"
#include "hl_test.h"
#include "query.h"
#include "store.h"

HL_TEST_SUITE(api_token_search);

static char db_path[256];
static char json[4096];

#define LOINC "http://loinc.org"
#define CAT "http://terminology.hl7.org/CodeSystem/observation-category"

/* An Observation with the given code and category codings (JSON arrays' contents). */
static const char *observation(const char *id, const char *codings, const char *categories) {
  int n = snprintf(json, sizeof json,
                   "{\"resourceType\":\"Observation\",\"id\":\"%s\",\"status\":\"final\","
                   "\"subject\":{\"reference\":\"Patient/p1\"}",
                   id);
  if (codings)
    n += snprintf(json + n, sizeof json - n, ",\"code\":{\"coding\":[%s]}", codings);
  if (categories)
    n += snprintf(json + n, sizeof json - n, ",\"category\":[{\"coding\":[%s]}]", categories);
  snprintf(json + n, sizeof json - n, "}");
  return json;
}

static void add(hl_wh_batch *b, const char *tenant, const char *type, const char *id, const char *doc) {
  hl_wh_row r = {.tenant = tenant, .type = type, .id = id, .json = doc, .line = -1};
  int rc = hl_wh_batch_add(b, &r);
  cr_assert_geq(rc, 0, "%d: %s", rc, doc);
}

/*
 * org-1's Observations: o1 LOINC 8480-6 (vital signs), o2 8480-6 of another
 * system, o3 8480-6 without a system, o4 LOINC 8462-4 and a category
 * LOINC 8480-6, o5 no code. The same value in a Condition of org-1 and
 * an Observation of org-2 must never match.
 */
static void warehouse_setup(void) {
  snprintf(db_path, sizeof db_path, "/tmp/hl-api-token-%d.db", (int)getpid());
  unlink(db_path);
  hl_wh_opts o = {.backend = "sqlite", .path = db_path, .create = true};
  hl_wh *wh = NULL;
  char err[256] = "";
  cr_assert_eq(hl_wh_new(&o, &wh, err, sizeof err), 0, "%s", err);
  hl_wh_batch *b = NULL;
  cr_assert_eq(hl_wh_batch_new(0, 0, &b), 0);
  cr_assert_eq(hl_wh_batch_use(b, wh), 0);
  const char *vital = "{\"system\":\"" CAT "\",\"code\":\"vital-signs\"}";
  add(b, "org-1", "Observation", "o1",
      observation("o1", "{\"system\":\"" LOINC "\",\"code\":\"8480-6\"}", vital));
  add(b, "org-1", "Observation", "o2",
      observation("o2", "{\"system\":\"urn:other\",\"code\":\"8480-6\"}", NULL));
  add(b, "org-1", "Observation", "o3", observation("o3", "{\"code\":\"8480-6\"}", NULL));
  add(b, "org-1", "Observation", "o4",
      observation("o4", "{\"system\":\"" LOINC "\",\"code\":\"8462-4\"}",
                  "{\"system\":\"" LOINC "\",\"code\":\"8480-6\"}"));
  add(b, "org-1", "Observation", "o5", observation("o5", NULL, vital));
  add(b, "org-1", "Condition", "c1",
      "{\"resourceType\":\"Condition\",\"id\":\"c1\",\"subject\":{\"reference\":\"Patient/p1\"},"
      "\"code\":{\"coding\":[{\"system\":\"" LOINC "\",\"code\":\"8480-6\"}]}}");
  add(b, "org-2", "Observation", "x1",
      observation("x1", "{\"system\":\"" LOINC "\",\"code\":\"8480-6\"}", NULL));
  hl_wh_result res;
  cr_assert_eq(hl_wh_batch_commit(wh, b, &res), 0);
  cr_assert_eq(res.applied, 7);
  hl_wh_batch_free(b);
  hl_wh_free(wh);
}

static void warehouse_teardown(void) {
  char p[300];
  const char *sfx[] = {"", "-wal", "-shm"};
  for (int i = 0; i < 3; i++) {
    snprintf(p, sizeof p, "%s%s", db_path, sfx[i]);
    unlink(p);
  }
}

typedef struct answer {
  bool done;
  int rc;
  int64_t total;
  char ids[256];
} answer;

static void on_result(void *ud, int rc, hl_api_result *res) {
  answer *a = ud;
  a->done = true;
  a->rc = rc;
  if (rc != 0)
    return;
  a->total = res->total;
  size_t n = 0;
  for (size_t i = 0; i < res->nrows; i++)
    n += snprintf(a->ids + n, sizeof a->ids - n, "%s%s", i ? " " : "", res->rows[i].id);
}

/* The ids of org-1's Observations that match query, in id order; *total the count. */
static void search(const char *type, const char *query, char *ids, size_t len, int64_t *total) {
  uv_loop_t loop;
  cr_assert_eq(uv_loop_init(&loop), 0);
  hl_api_store *st = NULL;
  cr_assert_eq(hl_api_store_sqlite_new(db_path, &loop, 0, &st), 0);
  hl_api_query q;
  hl_api_search s;
  hl_test_api_search(type, query, &q, &s);
  answer a = {0};
  st->ops->search(st, "org-1", &s, on_result, &a);
  while (!a.done)
    uv_run(&loop, UV_RUN_ONCE);
  cr_assert_eq(a.rc, 0, "%s?%s: %d", type, query, a.rc);
  snprintf(ids, len, "%s", a.ids);
  *total = a.total;
  hl_api_search_clear(&s);
  hl_api_query_clear(&q);
  st = hl_api_store_free(st);
  uv_run(&loop, UV_RUN_DEFAULT);
  cr_assert_eq(uv_loop_close(&loop), 0);
}

/* Asserts the ids of a search's first page and, with _count=1, its total (the count statement). */
static void expect(const char *type, const char *query, const char *want) {
  char ids[256], one[512];
  int64_t total, want_total = *want ? 1 : 0;
  for (const char *p = want; *p; p++)
    want_total += *p == ' ';
  search(type, query, ids, sizeof ids, &total);
  cr_assert_str_eq(ids, want, "%s?%s", type, query);
  cr_assert_eq(total, want_total, "%s?%s: total %lld", type, query, (long long)total);
  snprintf(one, sizeof one, "%s&_count=1", query);
  search(type, one, ids, sizeof ids, &total);
  cr_assert_eq(total, want_total, "%s?%s: total %lld", type, one, (long long)total);
}

Test(api_token_search, every_form_of_a_value, .init = warehouse_setup, .fini = warehouse_teardown) {
  expect("Observation", "code=" LOINC "%7C8480-6", "o1");
  expect("Observation", "code=8480-6", "o1 o2 o3");
  expect("Observation", "code=%7C8480-6", "o3");
  expect("Observation", "code=" LOINC "%7C", "o1 o4");
  expect("Observation", "code=urn:none%7C8480-6", "");
  expect("Observation", "code=none", "");
  expect("Condition", "code=" LOINC "%7C8480-6", "c1");
}

Test(api_token_search, or_and_and, .init = warehouse_setup, .fini = warehouse_teardown) {
  expect("Observation", "code=urn:other%7C8480-6,8462-4", "o2 o4");
  expect("Observation", "code=" LOINC "%7C,%7C8480-6", "o1 o3 o4");
  expect("Observation", "code=8480-6&category=vital-signs", "o1");
  expect("Observation", "code=8480-6&code=" LOINC "%7C", "o1");
  expect("Observation", "category=" LOINC "%7C8480-6", "o4");
}

Test(api_token_search, not_and_missing, .init = warehouse_setup, .fini = warehouse_teardown) {
  expect("Observation", "code:not=8480-6", "o4 o5");
  expect("Observation", "code:not=" LOINC "%7C", "o2 o3 o5");
  expect("Observation", "code:missing=true", "o5");
  expect("Observation", "code:missing=false", "o1 o2 o3 o4");
  expect("Observation", "category:missing=true", "o2 o3");
}

/* A term on a resource without the value (a collision's effect) is confirmed away. */
Test(api_token_search, matches_are_confirmed, .init = warehouse_setup, .fini = warehouse_teardown) {
  sqlite3 *db = NULL;
  cr_assert_eq(sqlite3_open(db_path, &db), SQLITE_OK);
  sqlite3_stmt *st = NULL;
  cr_assert_eq(sqlite3_prepare_v2(db,
                                  "INSERT INTO curated_token_fts (rowid, terms) SELECT raw_id, ? "
                                  "FROM curated_observation WHERE tenant = 'org-1' AND id IN ('o4', 'o5')",
                                  -1, &st, NULL),
               SQLITE_OK, "%s", sqlite3_errmsg(db));
  /* The exact term of LOINC 8480-6 and one of 8480-6 under a system neither resource has. */
  char terms[2 * HL_WH_TERM_LEN + 2], *t = terms;
  hl_wh_token_term("org-1", "Observation", "code", LOINC, "8480-6", t);
  t[HL_WH_TERM_LEN] = ' ';
  hl_wh_token_term("org-1", "Observation", "code", "urn:planted", "8480-6", t + HL_WH_TERM_LEN + 1);
  sqlite3_bind_text(st, 1, terms, -1, SQLITE_STATIC);
  cr_assert_eq(sqlite3_step(st), SQLITE_DONE, "%s", sqlite3_errmsg(db));
  cr_assert_eq(sqlite3_changes(db), 2);
  sqlite3_finalize(st);
  /* The index now gives o4 and o5 as candidates of both searches. */
  const char *sql = "SELECT group_concat(id, ' ') FROM (SELECT c.id FROM curated_observation c "
                    "WHERE c.raw_id IN (SELECT rowid FROM curated_token_fts WHERE curated_token_fts "
                    "MATCH ?) ORDER BY c.id)";
  char exact[HL_WH_TERM_LEN + 3], any[HL_WH_TERM_LEN + 5];
  snprintf(exact, sizeof exact, "\"%.*s\"", HL_WH_TERM_LEN, terms);
  snprintf(any, sizeof any, "\"%.*s\" *", HL_WH_TERM_PREFIX_LEN, terms);
  const char *want[] = {exact, "o1 o4 o5", any, "o1 o2 o3 o4 o5"};
  for (int i = 0; i < 4; i += 2) {
    cr_assert_eq(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK, "%s", sqlite3_errmsg(db));
    sqlite3_bind_text(st, 1, want[i], -1, SQLITE_STATIC);
    cr_assert_eq(sqlite3_step(st), SQLITE_ROW, "%s", sqlite3_errmsg(db));
    cr_assert_str_eq((const char *)sqlite3_column_text(st, 0), want[i + 1], "%s", want[i]);
    sqlite3_finalize(st);
  }
  sqlite3_close(db);
  expect("Observation", "code=8480-6", "o1 o2 o3");
  expect("Observation", "code=" LOINC "%7C8480-6", "o1");
}
