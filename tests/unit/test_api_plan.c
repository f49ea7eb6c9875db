/*
 * hl-api-gateway: the SQLite plans of the searches the API generates
 * (workers/api-gateway/sqlgen.c) on a freshly migrated warehouse, whose
 * planner statistics come from schemas/warehouse/sqlite/008_planner_stats.sql.
 * A search narrowed to a patient or a code must start from that index, not
 * walk every row of the tenant in id order.
 */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hl/buf.h"
#include "hl/warehouse.h"
#include "hl_api_test.h"
#include "hl_test.h"
#include "query.h"
#include "sqlgen.h"

HL_TEST_SUITE(api_plan);

static char db_path[256];
static sqlite3 *db;

/* The date functions are only needed to prepare; a plan never calls them. */
static void fn_none(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  (void)argc;
  (void)argv;
  sqlite3_result_null(ctx);
}

static void plan_setup(void) {
  snprintf(db_path, sizeof db_path, "/tmp/hl-api-plan-%d.db", (int)getpid());
  unlink(db_path);
  hl_wh_opts o = {.backend = "sqlite", .path = db_path, .create = true};
  hl_wh *wh = NULL;
  char err[256] = "";
  cr_assert_eq(hl_wh_new(&o, &wh, err, sizeof err), 0, "%s", err);
  hl_wh_free(wh);
  cr_assert_eq(sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
  sqlite3_create_function(db, "hl_lo", 1, SQLITE_UTF8, NULL, fn_none, NULL, NULL);
  sqlite3_create_function(db, "hl_hi", 1, SQLITE_UTF8, NULL, fn_none, NULL, NULL);
}

static void plan_teardown(void) {
  sqlite3_close(db);
  db = NULL;
  char p[300];
  const char *sfx[] = {"", "-wal", "-shm"};
  for (int i = 0; i < 3; i++) {
    snprintf(p, sizeof p, "%s%s", db_path, sfx[i]);
    unlink(p);
  }
}

/* The plan of a search's page statement, one "detail" per line. */
static void page_plan(const char *type, const char *query, hl_buf *out) {
  hl_api_query q;
  hl_api_search s;
  hl_test_api_search(type, query, &q, &s);
  hl_sqlb b;
  hl_sqlb_init_sqlite(&b);
  bool is_int;
  hl_sql_search_page(&b, "org-1", &s, &is_int);
  cr_assert_eq(b.err, 0);
  hl_buf sql;
  hl_buf_init(&sql, 0);
  cr_assert_eq(hl_buf_printf(&sql, "EXPLAIN QUERY PLAN %s", b.sql.data), 0);
  sqlite3_stmt *st = NULL;
  cr_assert_eq(sqlite3_prepare_v2(db, sql.data, -1, &st, NULL), SQLITE_OK, "%s: %s",
               sqlite3_errmsg(db), sql.data);
  while (sqlite3_step(st) == SQLITE_ROW)
    hl_buf_printf(out, "%s\n", (const char *)sqlite3_column_text(st, 3));
  sqlite3_finalize(st);
  hl_buf_free(&sql);
  hl_sqlb_free(&b);
  hl_api_search_clear(&s);
  hl_api_query_clear(&q);
}

/* Asserts that the plan of type?query mentions want (and not avoid, when given). */
static void expect_plan(const char *type, const char *query, const char *want, const char *avoid) {
  hl_buf plan;
  hl_buf_init(&plan, 0);
  page_plan(type, query, &plan);
  cr_assert(strstr(plan.data, want) != NULL, "%s?%s: want %s in the plan:\n%s", type, query, want,
            plan.data);
  if (avoid)
    cr_assert(strstr(plan.data, avoid) == NULL, "%s?%s: %s in the plan:\n%s", type, query, avoid,
              plan.data);
  hl_buf_free(&plan);
}

/* Regression: patient= walked the whole (tenant, id) index (0.4 s at 20,000 patients). */
Test(api_plan, patient_searches_start_from_the_patient_index, .init = plan_setup,
     .fini = plan_teardown) {
  expect_plan("Observation", "patient=Patient/p-1", "USING INDEX curated_observation_patient",
              "sqlite_autoindex_curated_observation_row_1 (tenant=?)");
  expect_plan("Observation", "subject=Patient/p-1&_sort=-date",
              "USING INDEX curated_observation_patient", NULL);
  expect_plan("Encounter", "patient=Patient/p-1", "USING INDEX curated_encounter_patient", NULL);
  expect_plan("Condition", "patient=Patient/p-1", "USING INDEX curated_condition_patient", NULL);
  expect_plan("Procedure", "patient=Patient/p-1", "USING INDEX curated_procedure_patient", NULL);
  expect_plan("MedicationRequest", "patient=Patient/p-1",
              "USING INDEX curated_medication_request_patient", NULL);
  expect_plan("Immunization", "patient=Patient/p-1", "USING INDEX curated_immunization_patient",
              NULL);
}

/*
 * A token search with a code starts from the FTS5 index curated_token_fts
 * (migration 009) and reads the matching rows by raw_id, the primary key
 * of the curated table (c in its view): never every row of the tenant.
 */
static void expect_fts_plan(const char *type, const char *query, const char *tenant_index) {
  expect_plan(type, query, "SCAN curated_token_fts VIRTUAL TABLE INDEX 0:M", tenant_index);
  expect_plan(type, query, "SEARCH c USING INTEGER PRIMARY KEY (rowid=?)", "SCAN c\n");
  expect_plan(type, query, "SEARCH c USING INTEGER PRIMARY KEY (rowid=?)", "SCAN c USING");
}

Test(api_plan, token_searches_start_from_the_fts_index, .init = plan_setup, .fini = plan_teardown) {
  expect_fts_plan("Observation", "code=http://loinc.org|8480-6",
                  "sqlite_autoindex_curated_observation_row_1 (tenant=?)");
  expect_fts_plan("Observation", "code=8480-6,8462-4&_sort=-date",
                  "sqlite_autoindex_curated_observation_row_1 (tenant=?)");
  expect_fts_plan("Observation", "category=vital-signs&code=%7C8480-6",
                  "sqlite_autoindex_curated_observation_row_1 (tenant=?)");
  expect_fts_plan("Patient", "identifier=urn:oid:1.2|123",
                  "sqlite_autoindex_curated_patient_row_1 (tenant=?)");
  expect_fts_plan("Condition", "code=44054006", "sqlite_autoindex_curated_condition_row_1 (tenant=?)");
}

/* Without a narrowing parameter a page is read in id order from the index: no sort of every row. */
Test(api_plan, unfiltered_pages_read_the_id_index_in_order, .init = plan_setup,
     .fini = plan_teardown) {
  expect_plan("Patient", "_count=10", "sqlite_autoindex_curated_patient_row_1", "TEMP B-TREE");
  expect_plan("Observation", "_count=10", "sqlite_autoindex_curated_observation_row_1",
              "TEMP B-TREE");
}
