/*
 * Unit tests of the warehouse (hl/warehouse.h) on real SQLite files:
 * the contract against the DDL, idempotent replay, newest-wins with
 * out-of-order versions, bad rows, job-status folding, a reader in another
 * process during writes (WAL), busy retry and a full database.
 */
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hl/warehouse.h"
#include "hl_test.h"

HL_TEST_SUITE(warehouse);

/* The number of the newest migration in schemas/warehouse/sqlite (one line to change with a new one). */
#define LATEST_MIGRATION 9

static char dir[256], dbpath[300];

static void mkdb(void) {
  snprintf(dir, sizeof(dir), "%s/hl-wh-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
  cr_assert_not_null(mkdtemp(dir));
  snprintf(dbpath, sizeof(dbpath), "%s/wh.db", dir);
}

static void rmdb(void) {
  char cmd[400];
  snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
  cr_assert_eq(system(cmd), 0);
}

static hl_wh *open_wh(long long busy_ms, long long budget_ms, long long max_pages) {
  hl_wh_opts o = {.path = dbpath, .create = true, .busy_timeout_ms = busy_ms,
                  .retry_budget_ms = budget_ms, .max_pages = max_pages};
  hl_wh *wh = NULL;
  char err[256] = "";
  int rc = hl_wh_new(&o, &wh, err, sizeof(err));
  cr_assert_eq(rc, 0, "open: %s: %s", hl_wh_strerror(rc), err);
  return wh;
}

static char json_buf[8][2048];

/* A Patient with a given version, lastUpdated and family name. */
static const char *patient(int slot, const char *id, const char *vid, const char *lu, const char *family) {
  snprintf(json_buf[slot], sizeof(json_buf[slot]),
           "{\"resourceType\":\"Patient\",\"id\":\"%s\",\"meta\":{\"versionId\":\"%s\",\"lastUpdated\":"
           "\"%s\"},\"identifier\":[{\"system\":\"urn:mrn\",\"value\":\"%s-%s\"}],\"name\":[{\"family\":"
           "\"%s\",\"given\":[\"Zoë\"]}],\"gender\":\"female\",\"birthDate\":\"1980-02-03\"}",
           id, vid, lu, id, vid, family);
  return json_buf[slot];
}

static int add(hl_wh_batch *b, const char *tenant, const char *type, const char *id, const char *json,
               long line) {
  hl_wh_row r = {.tenant = tenant, .type = type, .id = id, .json = json, .job = "job-1",
                 .source = "file:///landing/org=a/Patient.ndjson", .line = line,
                 .topic = "hl.fhir.valid", .partition = 1, .offset = line};
  return hl_wh_batch_add(b, &r);
}

static char *sql_text(const char *sql) {
  sqlite3 *db;
  cr_assert_eq(sqlite3_open_v2(dbpath, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
  sqlite3_stmt *st;
  cr_assert_eq(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK, "%s", sqlite3_errmsg(db));
  char *out = NULL;
  if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
    out = strdup((const char *)sqlite3_column_text(st, 0));
  sqlite3_finalize(st);
  sqlite3_close(db);
  return out;
}

static long long sql_int(const char *sql) {
  char *t = sql_text(sql);
  long long v = t ? atoll(t) : -1;
  free(t);
  return v;
}

static char *fts_match(const char *tenant, const char *type, const char *param, const char *system,
                       const char *code);

/* ---- The contract is the DDL -------------------------------------------------------------- */

/*
 * Checks a table's (or view's) columns against the contract's: names, types
 * and order; NOT NULL and primary-key positions when pk is given (a view has
 * neither). Columns named skip are left out.
 */
static void check_table(sqlite3 *db, json_t *types, const char *table, json_t *cols, json_t *pk,
                        const char *skip, bool computed) {
  char sql[200];
  snprintf(sql, sizeof(sql), "PRAGMA table_info(%s)", table);
  sqlite3_stmt *st;
  cr_assert_eq(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
  size_t i = 0, n = 0;
  while (sqlite3_step(st) == SQLITE_ROW) {
    json_t *c = json_array_get(cols, i);
    if (c && skip && !strcmp(json_string_value(json_object_get(c, "name")), skip))
      c = json_array_get(cols, ++i);
    cr_assert_not_null(c, "%s: more columns in the DDL than in the contract", table);
    const char *name = json_string_value(json_object_get(c, "name"));
    const char *type = json_string_value(
        json_object_get(json_object_get(types, json_string_value(json_object_get(c, "type"))), "sqlite"));
    cr_assert_str_eq((const char *)sqlite3_column_text(st, 1), name, "%s column %zu", table, i);
    /* computed: a view's computed column (curated_token's) has no declared type. */
    const char *decl = (const char *)sqlite3_column_text(st, 2);
    if (!computed || *decl)
      cr_assert_str_eq(decl, type, "%s.%s type", table, name);
    if (pk) {
      cr_assert_eq(sqlite3_column_int(st, 3), !json_is_true(json_object_get(c, "nullable")),
                   "%s.%s NOT NULL", table, name);
      /* pk: 1-based position in the primary key, 0 when not part of it. */
      int pkpos = 0;
      for (size_t k = 0; k < json_array_size(pk); k++)
        if (!strcmp(json_string_value(json_array_get(pk, k)), name))
          pkpos = (int)k + 1;
      cr_assert_eq(sqlite3_column_int(st, 5), pkpos, "%s.%s primary key position", table, name);
    }
    i++;
    n++;
  }
  sqlite3_finalize(st);
  json_t *last = json_array_get(cols, i);
  if (last && skip && !strcmp(json_string_value(json_object_get(last, "name")), skip))
    i++;
  cr_assert_eq(i, json_array_size(cols), "%s: %zu columns in the DDL, %zu in the contract", table, n,
               json_array_size(cols));
}

/* The columns of the UNIQUE index of a table, comma-separated ("" when none). */
static void unique_key(sqlite3 *db, const char *table, char *out, size_t outlen) {
  char sql[400];
  snprintf(sql, sizeof(sql),
           "SELECT group_concat(c.name, ',') FROM pragma_index_list('%s') l,"
           " pragma_index_info(l.name) c WHERE l.[unique] AND l.origin = 'u' GROUP BY l.name",
           table);
  sqlite3_stmt *st;
  cr_assert_eq(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK, "%s", sqlite3_errmsg(db));
  snprintf(out, outlen, "%s",
           sqlite3_step(st) == SQLITE_ROW ? (const char *)sqlite3_column_text(st, 0) : "");
  sqlite3_finalize(st);
}

/*
 * A curated table of the contract is a view with exactly its columns
 * (migration 007); its rows are in <table>_row: the same columns without
 * `resource`, NOT NULL as the contract says, raw_id as the rowid and
 * UNIQUE (tenant, id) as the contract's primary key.
 */
Test(warehouse, contract_equals_sqlite_ddl) {
  mkdb();
  hl_wh_free(open_wh(0, 0, 0));
  json_error_t je;
  json_t *c = json_load_file(HL_SOURCE_ROOT "/schemas/warehouse/curated_contract.json", 0, &je);
  cr_assert_not_null(c, "%s", je.text);
  sqlite3 *db;
  cr_assert_eq(sqlite3_open_v2(dbpath, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
  json_t *types = json_object_get(c, "types"), *common = json_object_get(c, "common_columns");
  size_t i;
  json_t *t;
  json_t *rowid_pk = json_pack("[s]", "raw_id");
  json_array_foreach(json_object_get(c, "tables"), i, t) {
    json_t *cols = json_array();
    json_array_extend(cols, common);
    json_array_extend(cols, json_object_get(t, "columns"));
    const char *table = json_string_value(json_object_get(t, "table"));
    char row[160], key[200], pk[200] = "";
    check_table(db, types, table, cols, NULL, NULL, false);
    snprintf(row, sizeof(row), "%s_row", table);
    check_table(db, types, row, cols, rowid_pk, "resource", false);
    unique_key(db, row, key, sizeof(key));
    json_t *k;
    size_t j;
    json_array_foreach(json_object_get(c, "primary_key"), j, k)
      snprintf(pk + strlen(pk), sizeof(pk) - strlen(pk), "%s%s", j ? "," : "", json_string_value(k));
    cr_assert_str_eq(key, pk, "%s: UNIQUE (%s), contract primary key (%s)", row, key, pk);
    cr_assert_str_eq(hl_wh_curated_table(json_string_value(json_object_get(t, "resourceType"))), table);
    json_decref(cols);
  }
  json_decref(rowid_pk);
  cr_assert_eq(i, 9);
  /*
   * curated_string is a table with the contract's primary key; curated_token
   * a view over curated_token_doc (migration 009), whose writer keeps the
   * contract's key unique (token_values_are_kept_once_per_resource).
   */
  json_array_foreach(json_object_get(c, "side_tables"), i, t) {
    const char *name = json_string_value(json_object_get(t, "table"));
    bool view = !strcmp(name, "curated_token");
    check_table(db, types, name, json_object_get(t, "columns"), view ? NULL : json_object_get(t, "primary_key"),
                NULL, view);
  }
  sqlite3_close(db);
  json_decref(c);
  cr_assert_str_eq(sql_text("PRAGMA journal_mode"), "wal");
  cr_assert_eq(sql_int("SELECT max(version) FROM schema_version"), LATEST_MIGRATION);
  cr_assert_str_eq(sql_text("SELECT type FROM sqlite_schema WHERE name = 'curated_token'"), "view");
  cr_assert_str_eq(sql_text("SELECT type FROM sqlite_schema WHERE name = 'curated_token_fts'"), "table");
  rmdb();
}

Test(warehouse, reopen_does_not_migrate_again_and_newer_schema_is_refused) {
  mkdb();
  hl_wh_free(open_wh(0, 0, 0));
  hl_wh_free(open_wh(0, 0, 0));
  cr_assert_eq(sql_int("SELECT count(*) FROM schema_version"), LATEST_MIGRATION);
  sqlite3 *db;
  cr_assert_eq(sqlite3_open(dbpath, &db), SQLITE_OK);
  cr_assert_eq(sqlite3_exec(db, "INSERT INTO schema_version VALUES (999, 'future', 'now')", 0, 0, 0), SQLITE_OK);
  sqlite3_close(db);
  hl_wh_opts o = {.path = dbpath};
  hl_wh *wh = NULL;
  char err[256];
  cr_assert_eq(hl_wh_new(&o, &wh, err, sizeof(err)), HL_WH_ESCHEMA);
  cr_assert_null(wh);
  rmdb();
}

/* Runs a schema file of the source tree on db. */
static void run_sql_file(sqlite3 *db, const char *name) {
  char path[512];
  snprintf(path, sizeof(path), "%s/schemas/warehouse/sqlite/%s", HL_SOURCE_ROOT, name);
  FILE *f = fopen(path, "rb");
  cr_assert_not_null(f, "%s", path);
  static char sql[1 << 16];
  size_t n = fread(sql, 1, sizeof(sql) - 1, f);
  fclose(f);
  cr_assert_lt(n, sizeof(sql) - 1, "%s is larger than the test's buffer", path);
  sql[n] = 0;
  char *err = NULL;
  cr_assert_eq(sqlite3_exec(db, sql, NULL, NULL, &err), SQLITE_OK, "%s: %s", name, err ? err : "");
}

/* A new database file (mkdb) at schema version, built from the migrations of the source tree. */
static sqlite3 *db_at_schema(int version) {
  static const char *const files[] = {"001_raw.sql", "002_jobs.sql", "003_curated.sql",
                                      "004_omop_concepts.sql", "005_omop_views.sql",
                                      "006_side_by_raw_id.sql"};
  cr_assert_leq(version, 6);
  mkdb();
  sqlite3 *db;
  cr_assert_eq(sqlite3_open(dbpath, &db), SQLITE_OK);
  for (int i = 0; i < version; i++)
    run_sql_file(db, files[i]);
  cr_assert_eq(sqlite3_exec(db,
      "CREATE TABLE schema_version (version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
      " applied_at TEXT NOT NULL)", NULL, NULL, NULL), SQLITE_OK);
  for (int v = 1; v <= version; v++) {
    char sql[128];
    snprintf(sql, sizeof(sql), "INSERT INTO schema_version VALUES (%d, 'v%d', 'now')", v, v);
    cr_assert_eq(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
  }
  return db;
}

/* A database at schema 5 (side tables keyed by tenant, type, id) is migrated with its rows. */
Test(warehouse, migration_6_moves_side_rows_to_raw_id_keys) {
  sqlite3 *db = db_at_schema(5);
  cr_assert_eq(sqlite3_exec(db,
      "INSERT INTO raw (raw_id, tenant, type, id, resource, ingested_at, batch_id, dedup_key)"
      " VALUES (42, 't', 'Patient', 'p1', '{}', 'now', 1, x'01');"
      "INSERT INTO curated_patient (tenant, id, version_id, last_updated, raw_id, resource, gender,"
      " birthdate) VALUES ('t', 'p1', '1', '2024-01-01T00:00:00Z', 42, '{}', 'female', '1980-02-03');"
      "INSERT INTO curated_token VALUES ('t', 'Patient', 'p1', 'identifier',"
      " 'urn:healthlake:omop:person', '7');"
      "INSERT INTO curated_string VALUES ('t', 'Patient', 'p1', 'family', 'doe');",
      NULL, NULL, NULL), SQLITE_OK, "%s", sqlite3_errmsg(db));
  sqlite3_close(db);
  hl_wh_free(open_wh(0, 0, 0));
  cr_assert_eq(sql_int("SELECT max(version) FROM schema_version"), LATEST_MIGRATION);
  cr_assert_str_eq(sql_text("SELECT raw_id || '|' || tenant || '|' || type || '|' || id || '|' || code"
                            " FROM curated_token"), "42|t|Patient|p1|7");
  cr_assert_str_eq(sql_text("SELECT raw_id || '|' || value FROM curated_string"), "42|doe");
  cr_assert_str_eq(sql_text("SELECT person_id || '|' || year_of_birth FROM omop_person"), "7|1980");
  rmdb();
}

/* Every row of a table or view as text (columns separated by |, rows by newlines), ordered. */
static char *dump(const char *table) {
  char sql[300];
  snprintf(sql, sizeof(sql), "SELECT * FROM %s ORDER BY 1, 2, 3, 4, 5", table);
  sqlite3 *db;
  cr_assert_eq(sqlite3_open_v2(dbpath, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
  sqlite3_stmt *st;
  cr_assert_eq(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK, "%s", sqlite3_errmsg(db));
  size_t cap = 1 << 16, len = 0;
  char *out = calloc(1, cap);
  cr_assert_not_null(out);
  while (sqlite3_step(st) == SQLITE_ROW)
    for (int i = 0; i < sqlite3_column_count(st); i++) {
      const char *v = (const char *)sqlite3_column_text(st, i);
      int n = snprintf(out + len, cap - len, "%s%s", v ? v : "NULL",
                       i + 1 < sqlite3_column_count(st) ? "|" : "\n");
      cr_assert_lt((size_t)n, cap - len, "%s: more than the test's buffer", table);
      len += (size_t)n;
    }
  sqlite3_finalize(st);
  sqlite3_close(db);
  return out;
}

/*
 * A database at schema 6, written by the module (curated tables holding the
 * resource), is migrated to curated views over <table>_row: every curated
 * view and OMOP view reads the same rows as before, and the migrated
 * database takes new versions as a new one does.
 */
Test(warehouse, migration_7_keeps_rows_and_reads_resources_from_raw) {
  sqlite3 *db = db_at_schema(6);
  /* The rows schema 6's writer would have written for two patients, an encounter and an organization. */
  cr_assert_eq(sqlite3_exec(db,
      "CREATE TEMP TABLE src (raw_id, type, id, vid, json);"
      "INSERT INTO src VALUES"
      " (3, 'Patient', 'p1', '1', '{\"resourceType\":\"Patient\",\"id\":\"p1\",\"gender\":\"female\","
      "\"birthDate\":\"1980-02-03\",\"name\":[{\"family\":\"Doe\"}],\"address\":[{\"city\":\"Lyon\"}]}'),"
      " (5, 'Patient', 'p2', '2', '{\"resourceType\":\"Patient\",\"id\":\"p2\",\"gender\":\"male\","
      "\"birthDate\":\"1990-05-06\"}'),"
      " (7, 'Encounter', 'e1', '1', '{\"resourceType\":\"Encounter\",\"id\":\"e1\",\"status\":\"finished\"}'),"
      " (9, 'Organization', 'o1', '1', '{\"resourceType\":\"Organization\",\"id\":\"o1\",\"name\":\"Clinic\"}');"
      "INSERT INTO raw (raw_id, tenant, type, id, version_id, resource, ingested_at, batch_id, dedup_key)"
      " SELECT raw_id, 't', type, id, vid, json, 'now', 1, randomblob(32) FROM src;"
      "INSERT INTO curated_patient (tenant, id, version_id, last_updated, raw_id, resource, gender, birthdate,"
      " family) SELECT 't', id, vid, '2024-01-01T00:00:00Z', raw_id, json, json_extract(json, '$.gender'),"
      " json_extract(json, '$.birthDate'), json_extract(json, '$.name[0].family') FROM src WHERE type = 'Patient';"
      "INSERT INTO curated_encounter (tenant, id, version_id, raw_id, resource, status)"
      " SELECT 't', id, vid, raw_id, json, 'finished' FROM src WHERE type = 'Encounter';"
      "INSERT INTO curated_organization (tenant, id, version_id, raw_id, resource, name, org_type)"
      " SELECT 't', id, vid, raw_id, json, 'Clinic', 'HOSP' FROM src WHERE type = 'Organization';"
      "INSERT INTO curated_token VALUES (3, 't', 'Patient', 'p1', 'identifier', 'urn:healthlake:omop:person', '7'),"
      " (3, 't', 'Patient', 'p1', 'identifier', 'urn:healthlake:omop:location', '70'),"
      " (5, 't', 'Patient', 'p2', 'identifier', 'urn:healthlake:omop:person', '8'),"
      " (9, 't', 'Organization', 'o1', 'identifier', 'urn:healthlake:omop:care_site', '90');"
      "INSERT INTO curated_string VALUES (3, 't', 'Patient', 'p1', 'family', 'doe');",
      NULL, NULL, NULL), SQLITE_OK, "%s", sqlite3_errmsg(db));
  sqlite3_close(db);
  static const char *const views[] = {"curated_patient", "curated_encounter", "curated_organization",
                                      "curated_token", "curated_string", "omop_person", "omop_location",
                                      "omop_care_site"};
  char *before[8];
  for (int i = 0; i < 8; i++)
    before[i] = dump(views[i]);
  cr_assert_not_null(strstr(before[0], "Lyon"));
  hl_wh *wh = open_wh(0, 0, 0);
  cr_assert_eq(sql_int("SELECT max(version) FROM schema_version"), LATEST_MIGRATION);
  cr_assert_str_eq(sql_text("SELECT type FROM sqlite_schema WHERE name = 'curated_patient'"), "view");
  cr_assert_eq(sql_int("SELECT count(*) FROM curated_patient_row"), 2);
  for (int i = 0; i < 8; i++) {
    char *after = dump(views[i]);
    cr_assert_str_eq(after, before[i], "%s after migration 7", views[i]);
    free(after);
    free(before[i]);
  }
  /* A newer version of p1 replaces the migrated row and its side rows. */
  hl_wh_batch *b;
  cr_assert_eq(hl_wh_batch_new(0, 0, &b), 0);
  cr_assert_eq(add(b, "t", "Patient", "p1", patient(0, "p1", "2", "2024-02-01T00:00:00Z", "Later"), 1), 0);
  hl_wh_result res;
  cr_assert_eq(hl_wh_batch_commit(wh, b, &res), 0);
  cr_assert_eq(res.applied, 1);
  hl_wh_batch_free(b);
  hl_wh_free(wh);
  cr_assert_str_eq(sql_text("SELECT family || '|' || version_id || '|' || json_extract(resource, '$.name[0].family')"
                            " FROM curated_patient WHERE id = 'p1'"), "later|2|Later");
  cr_assert_eq(sql_int("SELECT count(*) FROM curated_token WHERE raw_id = 3"), 0);
  /* Migration 009 indexed the migrated values; the replaced version's are out of the index. */
  cr_assert_null(fts_match("t", "Patient", "identifier", "urn:healthlake:omop:person", "7"));
  cr_assert_str_eq(fts_match("t", "Patient", "identifier", NULL, "8"), "5");
  cr_assert_str_eq(fts_match("t", "Organization", "identifier", "urn:healthlake:omop:care_site", "90"), "9");
  cr_assert_eq(sql_int("SELECT count(*) FROM curated_string WHERE id = 'p1' AND param = 'family' AND value = 'later'"), 1);
  cr_assert_eq(sql_int("SELECT count(*) FROM curated_patient_row"), 2);
  rmdb();
}

Test(warehouse, missing_directory_is_a_storage_error) {
  hl_wh_opts o = {.path = "/nonexistent-dir/x/wh.db", .create = true};
  hl_wh *wh = NULL;
  int rc = hl_wh_new(&o, &wh, NULL, 0);
  cr_assert_eq(rc, HL_WH_ESTORAGE, "%s", hl_wh_strerror(rc));
  cr_assert(hl_wh_is_fatal(rc));
}

/* ---- Idempotency and newest wins ------------------------------------------------------------ */

static const char *const tables[] = {"raw", "curated_patient", "curated_token", "curated_string", "jobs",
                                     "load_reject", "omop_person"};
#define NT (sizeof(tables) / sizeof(tables[0]))

Test(warehouse, replaying_a_batch_changes_nothing) {
  mkdb();
  hl_wh *wh = open_wh(0, 0, 0);
  hl_wh_batch *b;
  cr_assert_eq(hl_wh_batch_new(0, 0, &b), 0);
  cr_assert_eq(add(b, "org-a", "Patient", "p1", patient(0, "p1", "1", "2024-01-01T00:00:00Z", "Smith"), 1), 0);
  cr_assert_eq(add(b, "org-a", "Patient", "p2", patient(1, "p2", "1", "2024-01-01T00:00:00Z", "Jones"), 2), 1);
  cr_assert_eq(add(b, "org-a", "Patient", "p3", "{not json", 3), 2);
  hl_wh_result res;
  cr_assert_eq(hl_wh_batch_commit(wh, b, &res), 0);
  cr_assert_eq(res.rows, 3);
  cr_assert_eq(res.applied, 2);
  cr_assert_eq(res.rejected, 1);
  cr_assert_eq(res.ncounts, 1);
  cr_assert_str_eq(res.counts[0].tenant, "org-a");
  cr_assert_str_eq(res.counts[0].job, "job-1");
  cr_assert_str_eq(res.counts[0].type, "Patient");
  const char *code, *detail;
  cr_assert_eq(hl_wh_batch_status(b, 2, &code, &detail), HL_WH_ROW_REJECTED);
  cr_assert_str_eq(code, "json");
  cr_assert_not_null(detail);
  char sums[NT][65], again[NT][65];
  for (size_t i = 0; i < NT; i++)
    cr_assert_eq(hl_wh_checksum(wh, tables[i], sums[i]), 0, "%s", tables[i]);
  int64_t batch1 = res.batch_id;
  cr_assert_eq(hl_wh_batch_commit(wh, b, &res), 0);
  cr_assert_eq(res.duplicate, 2);
  cr_assert_eq(res.rejected, 1);
  cr_assert_eq(res.applied, 0);
  cr_assert_gt(res.batch_id, batch1);
  for (size_t i = 0; i < NT; i++) {
    cr_assert_eq(hl_wh_checksum(wh, tables[i], again[i]), 0);
    cr_assert_str_eq(sums[i], again[i], "%s changed on replay", tables[i]);
  }
  /* The job counted 2 loaded and 1 rejected once. */
  hl_wh_job j;
  cr_assert_eq(hl_wh_job_get(wh, "org-a", "job-1", "file:///landing/org=a/Patient.ndjson", &j), 0);
  cr_assert_eq(j.loaded, 2);
  cr_assert_eq(j.load_rejected, 1);
  cr_assert_str_eq(j.state, "processing");
  hl_wh_batch_free(b);
  hl_wh_free(wh);
  rmdb();
}

/*
 * hl-loader's batches interleave partitions; a batch is written in dedup
 * key order, i.e. by source and line (warehouse_sqlite.c, sort_rows), so
 * that index inserts follow the input files. Of two rows with one key in a
 * batch (a message and its replay) the first added is the one kept.
 */
/*
 * hl_wh_tune_process (hl-loader calls it first in main) turns SQLite's
 * global memory statistics off: with them on (Debian's default) every
 * allocation of every connection takes a global mutex and updates counters.
 * Off, SQLite counts nothing: sqlite3_memory_used() stays 0 through a
 * commit. (Criterion runs each test in its own process, so SQLite is not
 * initialized before this test's first call.)
 */
Test(warehouse, a_tuned_process_keeps_no_sqlite_memory_statistics) {
  hl_wh_tune_process();
  hl_wh_tune_process(); /* again, once SQLite may be in use: changes nothing */
  mkdb();
  hl_wh *wh = open_wh(0, 0, 0);
  hl_wh_batch *b;
  cr_assert_eq(hl_wh_batch_new(0, 0, &b), 0);
  cr_assert_eq(add(b, "org-a", "Patient", "p1", patient(0, "p1", "1", "2024-01-01T00:00:00Z", "Smith"), 1), 0);
  hl_wh_result res;
  cr_assert_eq(hl_wh_batch_commit(wh, b, &res), 0);
  cr_assert_eq(res.applied, 1);
  cr_assert_eq(sqlite3_memory_used(), 0, "no memory statistics kept");
  hl_wh_batch_free(b);
  hl_wh_free(wh);
}

Test(warehouse, a_batch_is_written_in_input_line_order) {
  mkdb();
  hl_wh *wh = open_wh(0, 0, 0);
  hl_wh_batch *b;
  cr_assert_eq(hl_wh_batch_new(0, 0, &b), 0);
  const long lines[] = {7, 2, 9, 1, 5};
  char id[16];
  for (size_t i = 0; i < 5; i++) {
    snprintf(id, sizeof id, "p%ld", lines[i]);
    cr_assert_eq(add(b, "org-a", "Patient", id, patient(0, id, "1", "2024-01-01T00:00:00Z", "Smith"),
                     lines[i]),
                 (int)i);
  }
  /* Line 2 again, as a replayed message at another offset: same key. */
  hl_wh_row again = {.tenant = "org-a", .type = "Patient", .id = "p2",
                     .json = patient(0, "p2", "1", "2024-01-01T00:00:00Z", "Smith"), .job = "job-1",
                     .source = "file:///landing/org=a/Patient.ndjson", .line = 2,
                     .topic = "hl.fhir.valid", .partition = 1, .offset = 1000};
  cr_assert_eq(hl_wh_batch_add(b, &again), 5);
  hl_wh_result res;
  cr_assert_eq(hl_wh_batch_commit(wh, b, &res), 0);
  cr_assert_eq(res.applied, 5);
  cr_assert_eq(res.duplicate, 1);
  cr_assert_eq(hl_wh_batch_status(b, 5, NULL, NULL), HL_WH_ROW_DUPLICATE);
  cr_assert_eq(hl_wh_batch_status(b, 1, NULL, NULL), HL_WH_ROW_APPLIED);
  char *order = sql_text("SELECT group_concat(line, ',') FROM (SELECT line FROM raw ORDER BY raw_id)");
  cr_assert_str_eq(order, "1,2,5,7,9");
  free(order);
  cr_assert_eq(sql_int("SELECT kafka_offset FROM raw WHERE line = 2"), 2, "the first of the two was kept");
  hl_wh_batch_free(b);
  hl_wh_free(wh);
  rmdb();
}

Test(warehouse, newest_version_wins_whatever_the_arrival_order) {
  mkdb();
  hl_wh *wh = open_wh(0, 0, 0);
  hl_wh_batch *b;
  cr_assert_eq(hl_wh_batch_new(0, 0, &b), 0);
  /* Versions 3, 1, 10, 9, 2 of p1: "10" > "9" numerically. */
  add(b, "t", "Patient", "p1", patient(0, "p1", "3", "2024-01-03T00:00:00Z", "Three"), 1);
  add(b, "t", "Patient", "p1", patient(1, "p1", "1", "2024-01-01T00:00:00Z", "One"), 2);
  hl_wh_result res;
  cr_assert_eq(hl_wh_batch_commit(wh, b, &res), 0);
  cr_assert_eq(hl_wh_batch_status(b, 0, NULL, NULL), HL_WH_ROW_APPLIED);
  cr_assert_eq(hl_wh_batch_status(b, 1, NULL, NULL), HL_WH_ROW_STALE);
  hl_wh_batch_reset(b);
  add(b, "t", "Patient", "p1", patient(2, "p1", "10", "2024-01-10T00:00:00Z", "Ten"), 3);
  add(b, "t", "Patient", "p1", patient(3, "p1", "9", "2024-01-09T00:00:00Z", "Nine"), 4);
  add(b, "t", "Patient", "p1", patient(4, "p1", "2", "2024-01-02T00:00:00Z", "Two"), 5);
  /* Same versionId as the current one, later lastUpdated: wins on lastUpdated. */
  add(b, "t", "Patient", "p1", patient(5, "p1", "10", "2024-01-10T00:00:01+00:00", "TenLater"), 6);
  /* Equal version and instant (another offset): does not overwrite. */
  add(b, "t", "Patient", "p1", patient(6, "p1", "10", "2024-01-10T01:00:01+01:00", "TenSame"), 7);
  cr_assert_eq(hl_wh_batch_commit(wh, b, &res), 0);
  cr_assert_eq(res.applied, 2);
  cr_assert_eq(res.stale, 3);
  char *json = NULL, ver[16];
  size_t len;
  cr_assert_eq(hl_wh_get(wh, "t", "Patient", "p1", &json, &len, ver, sizeof(ver)), 0);
  cr_assert_str_eq(ver, "10");
  cr_assert_not_null(strstr(json, "TenLater"));
  free(json);
  cr_assert_eq(hl_wh_get(wh, "other-tenant", "Patient", "p1", &json, &len, NULL, 0), HL_ENOTFOUND);
  /* Search columns and side tables follow the current version only. */
  cr_assert_str_eq(sql_text("SELECT family || '|' || given FROM curated_patient"), "tenlater|zoe");
  cr_assert_eq(sql_int("SELECT count(*) FROM curated_token WHERE param = 'identifier'"), 1);
  cr_assert_str_eq(sql_text("SELECT code FROM curated_token WHERE param = 'identifier'"), "p1-10");
  cr_assert_eq(sql_int("SELECT count(*) FROM curated_string WHERE param = 'family'"), 1);
  /* Side rows are keyed by the raw_id of the current version; none of an older one is left. */
  cr_assert_eq(sql_int("SELECT count(*) FROM curated_token t JOIN curated_patient c ON c.raw_id = t.raw_id"),
               sql_int("SELECT count(*) FROM curated_token"));
  cr_assert_eq(sql_int("SELECT count(*) FROM curated_string t JOIN curated_patient c ON c.raw_id = t.raw_id"),
               sql_int("SELECT count(*) FROM curated_string"));
  cr_assert_eq(sql_int("SELECT count(*) FROM raw"), 7);
  hl_wh_batch_free(b);
  hl_wh_free(wh);
  rmdb();
}

Test(warehouse, version_compare_rules) {
  cr_assert_gt(hl_wh_version_cmp("10", NULL, "9", NULL), 0);
  cr_assert_gt(hl_wh_version_cmp("010", NULL, "9", NULL), 0);
  cr_assert_eq(hl_wh_version_cmp("007", "2024-01-01T00:00:00Z", "7", "2024-01-01T00:00:00.000Z"), 0);
  cr_assert_lt(hl_wh_version_cmp("a", NULL, "b", NULL), 0);
  cr_assert_gt(hl_wh_version_cmp("1", NULL, NULL, NULL), 0);
  cr_assert_gt(hl_wh_version_cmp("1", "2024-01-01T00:00:00.5Z", "1", "2024-01-01T00:00:00Z"), 0);
  cr_assert_lt(hl_wh_version_cmp("1", "2024-01-01T00:00:00+01:00", "1", "2024-01-01T00:00:00Z"), 0);
  cr_assert_gt(hl_wh_version_cmp("1", "2024-01-01T00:00:00Z", "1", NULL), 0);
}

Test(warehouse, normalize_and_references) {
  char *n = hl_wh_normalize("Zoë Ærøskøbing-ŁÓDŹ Straße", strlen("Zoë Ærøskøbing-ŁÓDŹ Straße"));
  cr_assert_str_eq(n, "zoe aeroskobing-lodz strasse");
  free(n);
  const char *id;
  size_t len;
  cr_assert_eq(hl_wh_reference_id("Patient/abc", 11, &id, &len), 0);
  cr_assert_eq(len, 3);
  cr_assert_eq(strncmp(id, "abc", 3), 0);
  const char *u = "https://x.org/fhir/Patient/p9/_history/2";
  cr_assert_eq(hl_wh_reference_id(u, strlen(u), &id, &len), 0);
  cr_assert_eq(len, 2);
  cr_assert_eq(strncmp(id, "p9", 2), 0);
  cr_assert_eq(hl_wh_reference_id("urn:uuid:1234", 13, &id, &len), 0);
  cr_assert_eq(len, 4);
  cr_assert_eq(hl_wh_reference_id("#contained", 10, &id, &len), HL_EPARSE);
  /* The first "/_history/" ends the reference: underscores elsewhere, at the edges, twice. */
  const struct {
    const char *ref, *id;
  } hist[] = {
      {"Patient/p_1/_history/2", "p_1"},     {"Pa_tient/p/_history/_history/2", "p"},
      {"a/b/_history/", "b"},               {"a/b/_histor", "_histor"},
      {"/_history/x", NULL},                {"x_/_history/1/_history/2", "x_"},
      {"Patient/p/_historyx/3", "3"},       {"_/_history/", "_"},
  };
  for (size_t i = 0; i < sizeof(hist) / sizeof(hist[0]); i++) {
    int rc = hl_wh_reference_id(hist[i].ref, strlen(hist[i].ref), &id, &len);
    if (!hist[i].id) {
      cr_assert_eq(rc, HL_EPARSE, "%s", hist[i].ref);
      continue;
    }
    cr_assert_eq(rc, 0, "%s", hist[i].ref);
    cr_assert(len == strlen(hist[i].id) && !memcmp(id, hist[i].id, len), "%s: %.*s", hist[i].ref, (int)len, id);
  }
  hl_wh_row r = {0};
  cr_assert_eq(hl_wh_row_set_key(&r, "org-1/Patient/x1", 16), 0);
  cr_assert_eq(r.tenant_len, 5);
  cr_assert_eq(r.type_len, 7);
  cr_assert_eq(r.id_len, 2);
  cr_assert_eq(hl_wh_row_set_key(&r, "org-1/Patient", 13), HL_EPARSE);
  cr_assert_eq(hl_wh_row_set_key(&r, "a/b/c/d", 7), HL_EPARSE);
}

Test(warehouse, rows_whose_key_disagrees_are_rejected_alone) {
  mkdb();
  hl_wh *wh = open_wh(0, 0, 0);
  hl_wh_batch *b;
  cr_assert_eq(hl_wh_batch_new(0, 0, &b), 0);
  add(b, "t", "Patient", "p1", patient(0, "p2", "1", "2024-01-01T00:00:00Z", "X"), 1);
  add(b, "t", "Observation", "p1", patient(1, "p1", "1", "2024-01-01T00:00:00Z", "X"), 2);
  add(b, "t", "Patient", "p1", patient(2, "p1", "1", "2024-01-01T00:00:00Z", "X"), 3);
  add(b, "t", "Basic", "b1", "{\"resourceType\":\"Basic\",\"id\":\"b1\"}", 4);
  hl_wh_result res;
  cr_assert_eq(hl_wh_batch_commit(wh, b, &res), 0);
  const char *code;
  cr_assert_eq(hl_wh_batch_status(b, 0, &code, NULL), HL_WH_ROW_REJECTED);
  cr_assert_str_eq(code, "key-mismatch");
  cr_assert_eq(hl_wh_batch_status(b, 1, &code, NULL), HL_WH_ROW_REJECTED);
  cr_assert_eq(hl_wh_batch_status(b, 2, NULL, NULL), HL_WH_ROW_APPLIED);
  cr_assert_eq(hl_wh_batch_status(b, 3, NULL, NULL), HL_WH_ROW_RAW_ONLY);
  cr_assert_eq(res.ncounts, 3); /* Basic, Observation, Patient */
  cr_assert_eq(sql_int("SELECT count(*) FROM load_reject"), 2);
  hl_wh_batch_free(b);
  hl_wh_free(wh);
  rmdb();
}

/* ---- Job status ------------------------------------------------------------------------------ */

Test(warehouse, job_events_fold_into_states) {
  mkdb();
  hl_wh *wh = open_wh(0, 0, 0);
  const char *uri = "file:///landing/org=t/Patient.ndjson";
  char ev[512];
  snprintf(ev, sizeof(ev), "{\"job\":\"job-1\",\"org\":\"t\",\"uri\":\"%s\",\"stage\":\"accept\","
                           "\"state\":\"accepted\",\"time\":\"2024-01-01T00:00:00Z\"}", uri);
  cr_assert_eq(hl_wh_job_event(wh, ev, strlen(ev)), 0);
  hl_wh_job j;
  cr_assert_eq(hl_wh_job_get(wh, "t", "job-1", uri, &j), 0);
  cr_assert_str_eq(j.state, "accepted");
  snprintf(ev, sizeof(ev), "{\"job\":\"job-1\",\"org\":\"t\",\"uri\":\"%s\",\"stage\":\"parse\","
                           "\"state\":\"parsed\",\"received\":4,\"emitted\":3,\"rejected\":1,"
                           "\"time\":\"2024-01-01T00:00:01Z\"}", uri);
  cr_assert_eq(hl_wh_job_event(wh, ev, strlen(ev)), 0);
  cr_assert_eq(hl_wh_job_event(wh, ev, strlen(ev)), 0); /* totals: a replay changes nothing */
  snprintf(ev, sizeof(ev), "{\"job\":\"job-1\",\"org\":\"t\",\"uri\":\"%s\",\"stage\":\"validate\","
                           "\"state\":\"validated\",\"emitted\":2,\"rejected\":1,\"event_id\":\"v:0:10\","
                           "\"time\":\"2024-01-01T00:00:02Z\"}", uri);
  cr_assert_eq(hl_wh_job_event(wh, ev, strlen(ev)), 0);
  cr_assert_eq(hl_wh_job_event(wh, ev, strlen(ev)), 0); /* deltas: folded once per event_id */
  cr_assert_eq(hl_wh_job_get(wh, "t", "job-1", uri, &j), 0);
  cr_assert_str_eq(j.state, "processing");
  cr_assert_eq(j.received, 4);
  cr_assert_eq(j.valid, 2);
  cr_assert_eq(j.rejected, 2);
  hl_wh_batch *b;
  cr_assert_eq(hl_wh_batch_new(0, 0, &b), 0);
  hl_wh_row r1 = {.tenant = "t", .type = "Patient", .id = "p1",
                  .json = patient(0, "p1", "1", "2024-01-01T00:00:00Z", "A"), .job = "job-1",
                  .source = uri, .line = 1};
  hl_wh_batch_add(b, &r1);
  hl_wh_result res;
  cr_assert_eq(hl_wh_batch_commit(wh, b, &res), 0);
  hl_wh_batch_reset(b);
  hl_wh_row r = {.tenant = "t", .type = "Patient", .id = "p2", .json = patient(1, "p2", "1", "2024-01-01T00:00:00Z", "B"),
                 .job = "job-1", .source = uri, .line = 2};
  hl_wh_batch_add(b, &r);
  /* Events ride in a batch too, in the same transaction. */
  snprintf(ev, sizeof(ev), "{\"job\":\"job-2\",\"org\":\"t\",\"uri\":\"%s\",\"stage\":\"accept\","
                           "\"state\":\"accepted\",\"time\":\"2024-01-01T00:00:00Z\"}", uri);
  cr_assert_eq(hl_wh_batch_add_event(b, ev, strlen(ev)), 0);
  cr_assert_eq(hl_wh_batch_add_event(b, "{\"nope\":1}", 10), 0);
  cr_assert_eq(hl_wh_batch_commit(wh, b, &res), 0);
  cr_assert_eq(res.events, 1);
  cr_assert_eq(res.events_skipped, 1);
  cr_assert_eq(hl_wh_job_get(wh, "t", "job-1", uri, &j), 0);
  cr_assert_eq(j.loaded, 2);
  cr_assert_str_eq(j.state, "completed-with-errors", "state %s", j.state);
  cr_assert_eq(hl_wh_job_get(wh, "t", "job-2", uri, &j), 0);
  cr_assert_eq(hl_wh_job_get(wh, "t", "job-3", uri, &j), HL_ENOTFOUND);
  /* Bad events. */
  cr_assert_eq(hl_wh_job_event(wh, "{\"job\":\"j\"}", 11), HL_EPARSE);
  snprintf(ev, sizeof(ev), "{\"job\":\"j\",\"org\":\"bad org\",\"uri\":\"u\",\"stage\":\"parse\","
                           "\"state\":\"parsed\",\"time\":\"2024-01-01T00:00:00Z\"}");
  cr_assert_eq(hl_wh_job_event(wh, ev, strlen(ev)), HL_EPARSE);
  snprintf(ev, sizeof(ev), "{\"job\":\"j\",\"org\":\"o\",\"uri\":\"u\",\"stage\":\"parse\","
                           "\"state\":\"validated\",\"time\":\"2024-01-01T00:00:00Z\"}");
  cr_assert_eq(hl_wh_job_event(wh, ev, strlen(ev)), HL_EPARSE);
  hl_wh_batch_free(b);
  hl_wh_free(wh);
  rmdb();
}

Test(warehouse, a_clean_object_completes) {
  mkdb();
  hl_wh *wh = open_wh(0, 0, 0);
  const char *uri = "s3://bucket/org=t/x.ndjson";
  char ev[512];
  snprintf(ev, sizeof(ev), "{\"job\":\"j\",\"org\":\"t\",\"uri\":\"%s\",\"stage\":\"parse\","
                           "\"state\":\"parsed\",\"received\":1,\"emitted\":1,\"rejected\":0,"
                           "\"time\":\"2024-01-01T00:00:01Z\"}", uri);
  cr_assert_eq(hl_wh_job_event(wh, ev, strlen(ev)), 0);
  hl_wh_batch *b;
  cr_assert_eq(hl_wh_batch_new(0, 0, &b), 0);
  hl_wh_row r = {.tenant = "t", .type = "Patient", .id = "p1",
                 .json = patient(0, "p1", "1", "2024-01-01T00:00:00Z", "A"), .job = "j", .source = uri, .line = 1};
  hl_wh_batch_add(b, &r);
  cr_assert_eq(hl_wh_batch_commit(wh, b, NULL), 0);
  hl_wh_job j;
  cr_assert_eq(hl_wh_job_get(wh, "t", "j", uri, &j), 0);
  cr_assert_str_eq(j.state, "completed");
  hl_wh_batch_free(b);
  hl_wh_free(wh);
  rmdb();
}

/* ---- Concurrency and storage errors ----------------------------------------------------------- */

static void fill(hl_wh_batch *b, int from, int n) {
  for (int i = from; i < from + n; i++) {
    char id[32], json[512];
    snprintf(id, sizeof(id), "o%d", i);
    snprintf(json, sizeof(json),
             "{\"resourceType\":\"Observation\",\"id\":\"%s\",\"meta\":{\"versionId\":\"1\"},"
             "\"status\":\"final\",\"code\":{\"coding\":[{\"system\":\"http://loinc.org\",\"code\":\"8867-4\"}]},"
             "\"subject\":{\"reference\":\"Patient/p1\"},\"valueQuantity\":{\"value\":%d,\"code\":\"/min\"}}",
             id, 60 + i % 40);
    hl_wh_row r = {.tenant = "t", .type = "Observation", .id = id, .json = json, .line = i};
    cr_assert_geq(hl_wh_batch_add(b, &r), 0);
  }
}

Test(warehouse, a_reader_in_another_process_sees_whole_batches_and_never_blocks, .timeout = 120) {
  mkdb();
  hl_wh *wh = open_wh(0, 0, 0);
  enum { BATCHES = 30, ROWS = 200 };
  int pipefd[2];
  cr_assert_eq(pipe(pipefd), 0);
  pid_t pid = fork();
  cr_assert_geq(pid, 0);
  if (pid == 0) {
    /* The reader: counts rows until it has seen them all; every count must be whole batches. */
    close(pipefd[1]);
    sqlite3 *db;
    if (sqlite3_open_v2(dbpath, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK)
      _exit(2);
    char go;
    if (read(pipefd[0], &go, 1) != 1)
      _exit(3);
    long reads = 0;
    for (;;) {
      sqlite3_stmt *st;
      if (sqlite3_prepare_v2(db, "SELECT count(*) FROM curated_observation", -1, &st, NULL) != SQLITE_OK)
        _exit(4);
      int r = sqlite3_step(st);
      if (r != SQLITE_ROW)
        _exit(5); /* BUSY here would mean the writer blocked a reader */
      long n = sqlite3_column_int(st, 0);
      sqlite3_finalize(st);
      reads++;
      if (n % ROWS != 0)
        _exit(6);
      if (n == BATCHES * ROWS)
        break;
    }
    sqlite3_close(db);
    _exit(reads > 1 ? 0 : 7);
  }
  close(pipefd[0]);
  hl_wh_batch *b;
  cr_assert_eq(hl_wh_batch_new(0, 0, &b), 0);
  cr_assert_eq(write(pipefd[1], "g", 1), 1);
  for (int k = 0; k < BATCHES; k++) {
    hl_wh_batch_reset(b);
    fill(b, k * ROWS, ROWS);
    cr_assert_eq(hl_wh_batch_commit(wh, b, NULL), 0);
  }
  int status;
  cr_assert_eq(waitpid(pid, &status, 0), pid);
  cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "reader exit %d", WEXITSTATUS(status));
  close(pipefd[1]);
  hl_wh_batch_free(b);
  hl_wh_free(wh);
  rmdb();
}

typedef struct holder {
  int hold_ms;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int locked;
} holder;

/* Holds the write lock from another connection for hold_ms. */
static void *hold_lock(void *ud) {
  holder *h = ud;
  sqlite3 *db;
  sqlite3_open(dbpath, &db);
  int rc = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
  pthread_mutex_lock(&h->mu);
  h->locked = rc == SQLITE_OK ? 1 : -1;
  pthread_cond_signal(&h->cv);
  pthread_mutex_unlock(&h->mu);
  usleep((useconds_t)h->hold_ms * 1000);
  sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
  sqlite3_close(db);
  return NULL;
}

static pthread_t start_holder(holder *h, int ms) {
  memset(h, 0, sizeof(*h));
  h->hold_ms = ms;
  pthread_mutex_init(&h->mu, NULL);
  pthread_cond_init(&h->cv, NULL);
  pthread_t t;
  cr_assert_eq(pthread_create(&t, NULL, hold_lock, h), 0);
  pthread_mutex_lock(&h->mu);
  while (!h->locked)
    pthread_cond_wait(&h->cv, &h->mu);
  pthread_mutex_unlock(&h->mu);
  cr_assert_eq(h->locked, 1);
  return t;
}

Test(warehouse, busy_is_retried_then_given_up_cleanly, .timeout = 120) {
  mkdb();
  /* Each attempt waits 20 ms for the lock; the budget is 10 s. */
  hl_wh *wh = open_wh(20, 10000, 0);
  hl_wh_batch *b;
  cr_assert_eq(hl_wh_batch_new(0, 0, &b), 0);
  fill(b, 0, 50);
  holder h;
  pthread_t t = start_holder(&h, 400);
  cr_assert_eq(hl_wh_batch_commit(wh, b, NULL), 0);
  pthread_join(t, NULL);
  hl_wh_stats st;
  hl_wh_get_stats(wh, &st);
  cr_assert_gt(st.busy_retries, 0, "the lock was held: the commit must have retried");
  cr_assert_eq(st.busy_failures, 0);
  hl_wh_free(wh);

  /* A budget shorter than the lock: HL_WH_EBUSY, nothing written, then it goes through. */
  wh = open_wh(20, 150, 0);
  char before[65], after[65];
  cr_assert_eq(hl_wh_checksum(wh, "raw", before), 0);
  hl_wh_batch_reset(b);
  fill(b, 50, 50);
  t = start_holder(&h, 1500);
  int rc = hl_wh_batch_commit(wh, b, NULL);
  cr_assert_eq(rc, HL_WH_EBUSY, "%s", hl_wh_strerror(rc));
  cr_assert_not(hl_wh_is_fatal(rc));
  cr_assert_eq(hl_wh_batch_status(b, 0, NULL, NULL), HL_WH_ROW_PENDING);
  pthread_join(t, NULL);
  cr_assert_eq(hl_wh_checksum(wh, "raw", after), 0);
  cr_assert_str_eq(before, after);
  cr_assert_eq(hl_wh_batch_commit(wh, b, NULL), 0);
  cr_assert_eq(sql_int("SELECT count(*) FROM curated_observation"), 100);
  hl_wh_batch_free(b);
  hl_wh_free(wh);
  rmdb();
}

Test(warehouse, a_full_database_is_fatal_and_loses_nothing, .timeout = 120) {
  mkdb();
  hl_wh *wh = open_wh(0, 0, 0);
  hl_wh_batch *b;
  cr_assert_eq(hl_wh_batch_new(0, 0, &b), 0);
  fill(b, 0, 100);
  cr_assert_eq(hl_wh_batch_commit(wh, b, NULL), 0);
  hl_wh_free(wh);
  long long pages = sql_int("PRAGMA page_count");
  cr_assert_gt(pages, 0);
  /* A quota a few pages above the current size stands for a full disk. */
  wh = open_wh(0, 0, pages + 4);
  char sums[NT][65], after[NT][65];
  for (size_t i = 0; i < NT; i++)
    cr_assert_eq(hl_wh_checksum(wh, tables[i], sums[i]), 0);
  char obs_before[65], obs_after[65];
  cr_assert_eq(hl_wh_checksum(wh, "curated_observation", obs_before), 0);
  hl_wh_batch_reset(b);
  fill(b, 100, 2000);
  int rc = hl_wh_batch_commit(wh, b, NULL);
  cr_assert_eq(rc, HL_WH_ESTORAGE, "%s", hl_wh_strerror(rc));
  cr_assert(hl_wh_is_fatal(rc));
  for (size_t i = 0; i < NT; i++) {
    cr_assert_eq(hl_wh_checksum(wh, tables[i], after[i]), 0);
    cr_assert_str_eq(sums[i], after[i], "%s changed by a failed commit", tables[i]);
  }
  cr_assert_eq(hl_wh_checksum(wh, "curated_observation", obs_after), 0);
  cr_assert_str_eq(obs_before, obs_after);
  hl_wh_stats st;
  hl_wh_get_stats(wh, &st);
  cr_assert_eq(st.storage_errors, 1);
  hl_wh_free(wh);
  /* Space back: the same batch commits in full. */
  wh = open_wh(0, 0, 0);
  cr_assert_eq(hl_wh_batch_commit(wh, b, NULL), 0);
  cr_assert_eq(sql_int("SELECT count(*) FROM curated_observation"), 2100);
  hl_wh_batch_free(b);
  hl_wh_free(wh);
  rmdb();
}

/* Polls the warehouse's checkpoint count until it reaches want (at most ~30 s). */
static uint64_t wait_checkpoints(hl_wh *wh, uint64_t want) {
  hl_wh_stats st;
  for (int i = 0; i < 3000; i++) {
    hl_wh_get_stats(wh, &st);
    if (st.checkpoints >= want)
      break;
    usleep(10000);
  }
  return st.checkpoints;
}

/*
 * The WAL is checkpointed by the backend's own thread: once a commit leaves
 * more pages in the WAL than the threshold, a checkpoint happens while the
 * writer does nothing; commits go on beside it, every row stays readable
 * by another connection, and closing joins the thread (the leak check).
 */
Test(warehouse, the_wal_is_checkpointed_by_a_background_thread, .timeout = 120) {
  mkdb();
  hl_wh_opts o = {.path = dbpath, .create = true, .wal_checkpoint_pages = 32};
  hl_wh *wh = NULL;
  char err[256] = "";
  cr_assert_eq(hl_wh_new(&o, &wh, err, sizeof(err)), 0, "%s", err);
  hl_wh_batch *b;
  cr_assert_eq(hl_wh_batch_new(0, 0, &b), 0);
  /* The migrations and 600 rows leave more than 32 pages (32 KiB) in the WAL, fewer than 4 x 32. */
  fill(b, 0, 600);
  cr_assert_eq(hl_wh_batch_commit(wh, b, NULL), 0);
  /* The WAL's size after that commit: between the threshold and the writer's own checkpoint (4 x). */
  char wal[320];
  snprintf(wal, sizeof(wal), "%s-wal", dbpath);
  struct stat sb;
  cr_assert_eq(stat(wal, &sb), 0);
  long long frames = ((long long)sb.st_size - 32) / (32768 + 24);
  cr_assert(frames >= 32 && frames < 4 * 32, "%lld WAL frames after the first commit", frames);
  cr_assert_geq(wait_checkpoints(wh, 1), 1, "no background checkpoint while the writer was idle");
  for (int i = 0; i < 30; i++) {
    hl_wh_batch_reset(b);
    fill(b, 600 + i * 100, 100);
    cr_assert_eq(hl_wh_batch_commit(wh, b, NULL), 0);
  }
  cr_assert_eq(sql_int("SELECT count(*) FROM curated_observation"), 3600);
  cr_assert_eq(sql_int("SELECT count(*) FROM raw"), 3600);
  hl_wh_batch_free(b);
  hl_wh_free(wh);
  /* Reopened (no thread until a checkpoint is due): the rows are whole. */
  wh = open_wh(0, 0, 0);
  cr_assert_eq(sql_int("SELECT count(*) FROM curated_token WHERE param = 'code'"), 3600);
  cr_assert_eq(sql_int("SELECT count(*) FROM curated_token WHERE tenant IS NULL OR id IS NULL"), 0);
  hl_wh_free(wh);
  rmdb();
}

Test(warehouse, batch_limits) {
  hl_wh_batch *b;
  cr_assert_eq(hl_wh_batch_new(2, 0, &b), 0);
  hl_wh_row r = {.tenant = "t", .type = "Basic", .id = "b", .json = "{\"resourceType\":\"Basic\",\"id\":\"b\"}"};
  cr_assert_eq(hl_wh_batch_add(b, &r), 0);
  cr_assert_eq(hl_wh_batch_add(b, &r), 1);
  cr_assert_eq(hl_wh_batch_add(b, &r), HL_ELIMIT);
  cr_assert_eq(hl_wh_batch_len(b), 2);
  hl_wh_batch_free(b);
  cr_assert_eq(hl_wh_batch_new(0, 100, &b), 0);
  char big[300];
  snprintf(big, sizeof(big), "{\"resourceType\":\"Basic\",\"id\":\"b\",\"x\":\"%0200d\"}", 0);
  r.json = big;
  cr_assert_eq(hl_wh_batch_add(b, &r), HL_ELIMIT);
  cr_assert_eq(hl_wh_batch_len(b), 0);
  hl_wh_batch_free(b);
}

/* ---- Values extracted in C equal SQLite's JSON functions ------------------------------- */

/* Resources with the awkward cases: escapes, duplicate keys, numbers, nulls, wrong shapes. */
static const char *const tricky[] = {
    "{\"resourceType\":\"Observation\",\"id\":\"o1\",\"status\":\"fin\\u00e9\\\"al\\n\",\"code\":{\"coding\":"
    "[{\"system\":\"http://loinc.org\",\"code\":\"85354-9\"},{\"code\":\"c2\"},\"s\",{\"system\":\"x\"},"
    "{\"system\":5,\"code\":7.50},{\"system\":null,\"code\":true},{\"system\":{\"a\" : [1, \"b c\"]},"
    "\"code\":12345678901234567890}]},\"category\":[{\"coding\":[{\"system\":\"c\",\"code\":\"vital\"}]},"
    "{\"coding\":{\"code\":\"notarr\"}},{\"text\":\"t\"}],\"effectivePeriod\":{\"start\":\"2020-01-01\"},"
    "\"valueQuantity\":{\"value\":72.50,\"unit\":\"kg\"},\"component\":[{\"code\":{\"coding\":[{\"code\":"
    "\"8480-6\"}]}},{\"code\":\"str\"}],\"subject\":{\"reference\":\"Patient/p\\/1/_history/2\"}}",
    "{\"resourceType\":\"Observation\",\"id\":\"o2\",\"effectiveDateTime\":null,\"effectiveInstant\":"
    "\"2021-01-01T00:00:00.123+02:00\",\"valueQuantity\":{\"value\":-3,\"code\":\"mm[Hg]\",\"unit\":\"u\"},"
    "\"code\":{\"coding\":[]},\"status\":\"a\",\"status\":\"b\",\"category\":[[{\"code\":\"x\"}]]}",
    "{\"resourceType\":\"Observation\",\"id\":\"o3\",\"valueQuantity\":{\"value\":1.5e3},\"status\":\"a\\u0000b\","
    "\"code\":{\"coding\":[{\"code\":-0.0},{\"code\":[1, 2]},{\"code\":\"\\ud83d\\ude00\"}]},\"effectiveDateTime\":7}",
    "{\"resourceType\":\"Observation\",\"id\":\"o4\",\"valueQuantity\":{\"value\":9007199254740993},"
    "\"code\":{\"coding\":{\"code\":\"obj\"}},\"status\":{ \"x\" : null },\"subject\":{\"reference\":\"#c\"}}",
};

/*
 * Strings are skipped 8 bytes at a time (warehouse_extract.c): escaped
 * quotes and backslashes at every offset of a word, before and inside the
 * members that are extracted, give the values json_extract gives.
 */
Test(warehouse, escapes_at_every_offset_are_skipped_exactly) {
  mkdb();
  hl_wh *wh = open_wh(0, 0, 0);
  hl_wh_batch *b;
  cr_assert_eq(hl_wh_batch_new(0, 0, &b), 0);
  static char json[24][512];
  static const char *const tails[] = {"\\\"", "\\\\", "\\\\\\\"", "\\\\\\\\\\\"x\\\"", "\\u0022"};
  for (int i = 0; i < 24; i++) {
    char pad[32];
    memset(pad, 'x', (size_t)i % 17);
    pad[i % 17] = 0;
    const char *t = tails[i % 5];
    snprintf(json[i], sizeof(json[i]),
             "{\"resourceType\":\"Observation\",\"id\":\"e%d\",\"note\":[{\"text\":\"%s%s\"},\"%s%s%s\"],"
             "\"extension\":{\"a\":\"%s]}\",\"b\":[\"%s[{\"]},\"status\":\"st%s%s\",\"code\":{\"coding\":"
             "[{\"system\":\"s%s\",\"code\":\"c%s%s\"}]}}",
             i, pad, t, t, pad, t, t, pad, pad, t, t, pad, t);
    char id[8];
    snprintf(id, sizeof(id), "e%d", i);
    cr_assert_geq(add(b, "a", "Observation", id, json[i], i + 1), 0, "%s", json[i]);
  }
  hl_wh_result res;
  cr_assert_eq(hl_wh_batch_commit(wh, b, &res), 0);
  cr_assert_eq(res.applied, 24, "applied %llu rejected %llu", (unsigned long long)res.applied,
               (unsigned long long)res.rejected);
  hl_wh_batch_free(b);
  hl_wh_free(wh);
  cr_assert_eq(sql_int("SELECT count(*) FROM curated_observation WHERE status IS json_extract(resource, '$.status')"
                       " AND code IS json_extract(resource, '$.code.coding[0].code')"
                       " AND code_system IS json_extract(resource, '$.code.coding[0].system')"),
               24);
  cr_assert_eq(sql_int("SELECT count(*) FROM curated_token t JOIN curated_observation o ON o.raw_id = t.raw_id"
                       " WHERE t.param = 'code' AND t.code = o.code AND t.system = o.code_system"),
               24);
  rmdb();
}

/* use: the rows are extracted as they are added (hl_wh_batch_use), else at commit. */
static void extracted_values_equal(bool use) {
  mkdb();
  hl_wh *wh = open_wh(0, 0, 0);
  hl_wh_batch *b;
  cr_assert_eq(hl_wh_batch_new(0, 0, &b), 0);
  if (use)
    cr_assert_eq(hl_wh_batch_use(b, wh), 0);
  for (size_t i = 0; i < sizeof(tricky) / sizeof(tricky[0]); i++) {
    char id[8];
    snprintf(id, sizeof(id), "o%zu", i + 1);
    cr_assert_geq(add(b, "a", "Observation", id, tricky[i], (long)i + 1), 0);
  }
  hl_wh_result res;
  cr_assert_eq(hl_wh_batch_commit(wh, b, &res), 0);
  cr_assert_eq(res.applied, 4);
  /* Every column against json_extract (COALESCE for 'a | b'), compared through the column's affinity. */
  const char *cols[][2] = {
      {"status", "json_extract(resource, '$.status')"},
      {"code_system", "json_extract(resource, '$.code.coding[0].system')"},
      {"code", "json_extract(resource, '$.code.coding[0].code')"},
      {"category", "json_extract(resource, '$.category[0].coding[0].code')"},
      {"effective", "COALESCE(json_extract(resource, '$.effectiveDateTime'), json_extract(resource, "
                    "'$.effectiveInstant'), json_extract(resource, '$.effectivePeriod.start'))"},
      {"value_quantity", "CAST(json_extract(resource, '$.valueQuantity.value') AS REAL)"},
      {"value_unit", "COALESCE(json_extract(resource, '$.valueQuantity.code'), json_extract(resource, "
                     "'$.valueQuantity.unit'))"},
  };
  char sql[1024];
  for (size_t i = 0; i < sizeof(cols) / sizeof(cols[0]); i++) {
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM curated_observation WHERE NOT (%s IS %s)", cols[i][0],
             cols[i][1]);
    cr_expect_eq(sql_int(sql), 0, "column %s differs from %s", cols[i][0], cols[i][1]);
  }
  char *t = sql_text("SELECT group_concat(id || '=' || quote(patient), ',') FROM "
                     "(SELECT id, patient FROM curated_observation ORDER BY id)");
  cr_expect_str_eq(t, "o1='1',o2=NULL,o3=NULL,o4=NULL"); /* Patient/p\/1/_history/2 */
  free(t);
  /* Token rows against json_each, as the backend generated them in SQL before. */
  static const char tok_sql[] =
           "WITH want AS ("
           " SELECT o.id, 'code' AS param, COALESCE(CAST(json_extract(j.value, '$.system') AS TEXT), '') AS "
           " system, CAST(json_extract(j.value, '$.code') AS TEXT) AS code FROM curated_observation o, "
           " json_each(o.resource, '$.code.coding') j WHERE typeof(j.key) = 'integer' AND j.type = 'object'"
           " UNION SELECT o.id, 'category', COALESCE(CAST(json_extract(j1.value, '$.system') AS TEXT), ''),"
           " CAST(json_extract(j1.value, '$.code') AS TEXT) FROM curated_observation o,"
           " json_each(o.resource, '$.category') j0, json_each(j0.value, '$.coding') j1 WHERE"
           " typeof(j0.key) = 'integer' AND j0.type = 'object' AND typeof(j1.key) = 'integer' AND"
           " j1.type = 'object'"
           " UNION SELECT o.id, 'component-code', COALESCE(CAST(json_extract(j1.value, '$.system') AS TEXT), ''),"
           " CAST(json_extract(j1.value, '$.code') AS TEXT) FROM curated_observation o,"
           " json_each(o.resource, '$.component') j0, json_each(j0.value, '$.code.coding') j1 WHERE"
           " typeof(j0.key) = 'integer' AND j0.type = 'object' AND typeof(j1.key) = 'integer' AND"
           " j1.type = 'object'), "
           "w AS (SELECT * FROM want WHERE code IS NOT NULL), "
           "h AS (SELECT id, param, system, code FROM curated_token WHERE type = 'Observation') "
           "SELECT (SELECT count(*) FROM (SELECT * FROM w EXCEPT SELECT * FROM h)) + "
           "(SELECT count(*) FROM (SELECT * FROM h EXCEPT SELECT * FROM w)) * 1000 + "
           "(SELECT count(*) FROM h) * 1000000";
  long long got = sql_int(tok_sql);
  cr_expect_eq(got, 10 * 1000000, "%lld: token rows differ from json_each (missing + 1000 x extra + 1e6 x count)");
  hl_wh_batch_free(b);
  hl_wh_free(wh);
  rmdb();
}

Test(warehouse, extracted_values_equal_sqlite_json_functions) {
  extracted_values_equal(false);
}

Test(warehouse, values_extracted_when_added_equal_sqlite_json_functions) {
  extracted_values_equal(true);
}

/* Adds a row with fixed provenance (ingested_at too, so that two loads are alike). */
static int add_at(hl_wh_batch *b, const char *type, const char *id, const char *json, long line) {
  hl_wh_row r = {.tenant = "org-a", .type = type, .id = id, .json = json, .job = "job-1",
                 .source = "file:///landing/org=a/mix.ndjson", .line = line,
                 .ingested_at = "2024-03-01T00:00:00Z"};
  return hl_wh_batch_add(b, &r);
}

/*
 * Loads the same rows (new versions in one batch and across batches, a
 * stale one, a replayed one, a raw-only type, a rejected row, names with
 * accents) into a new file, and returns the checksums of what they gave.
 * use: 0 extracted at commit, 1 when added (hl_wh_batch_use), 2 added for
 * another warehouse than the one committed to (extracted at commit).
 */
/*
 * Every curated_token row is found by its term, exact and under any system,
 * and curated_token_fts holds no more rows than curated_token_doc.
 */
static void all_tokens_indexed(void) {
  sqlite3 *db;
  cr_assert_eq(sqlite3_open_v2(dbpath, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
  sqlite3_stmt *st, *m;
  cr_assert_eq(sqlite3_prepare_v2(db, "SELECT raw_id, tenant, type, param, system, code FROM curated_token",
                                  -1, &st, NULL), SQLITE_OK);
  cr_assert_eq(sqlite3_prepare_v2(db, "SELECT count(*) FROM curated_token_fts WHERE curated_token_fts"
                                      " MATCH ?1 AND rowid = ?2", -1, &m, NULL), SQLITE_OK);
  int n = 0;
  while (sqlite3_step(st) == SQLITE_ROW) {
    const char *f[5];
    for (int k = 0; k < 5; k++)
      f[k] = (const char *)sqlite3_column_text(st, k + 1);
    for (int any = 0; any < 2; any++) {
      char term[HL_WH_TERM_LEN + 2];
      hl_wh_token_term(f[0], f[1], f[2], any ? NULL : f[3], f[4], term);
      if (any)
        strcat(term, "*");
      sqlite3_bind_text(m, 1, term, -1, SQLITE_TRANSIENT);
      sqlite3_bind_int64(m, 2, sqlite3_column_int64(st, 0));
      cr_assert_eq(sqlite3_step(m), SQLITE_ROW);
      cr_assert_eq(sqlite3_column_int(m, 0), 1, "%s %s %s|%s (any %d) not indexed", f[1], f[2], f[3], f[4], any);
      sqlite3_reset(m);
    }
    n++;
  }
  cr_assert_gt(n, 0);
  sqlite3_finalize(st);
  sqlite3_finalize(m);
  sqlite3_close(db);
}

static const char *const mix_views[] = {"raw", "curated_patient", "curated_observation", "curated_token",
                                        "curated_string", "omop_person"};
#define NMIX (sizeof(mix_views) / sizeof(mix_views[0]))
static void load_mix(int use, char sums[NMIX][65], uint64_t counts[2][5]) {
  mkdb();
  hl_wh *wh = open_wh(0, 0, 0), *other = NULL;
  hl_wh_batch *b;
  cr_assert_eq(hl_wh_batch_new(0, 0, &b), 0);
  if (use == 2) {
    char path[400];
    snprintf(path, sizeof(path), "%s/other.db", dir);
    hl_wh_opts o = {.path = path, .create = true};
    cr_assert_eq(hl_wh_new(&o, &other, NULL, 0), 0);
  }
  if (use)
    cr_assert_eq(hl_wh_batch_use(b, use == 2 ? other : wh), 0);
  cr_assert_geq(add_at(b, "Patient", "p1", patient(0, "p1", "1", "2024-01-01T00:00:00Z", "Smith"), 1), 0);
  cr_assert_geq(add_at(b, "Patient", "p2", patient(1, "p2", "1", "2024-01-01T00:00:00Z", "Jones"), 2), 0);
  cr_assert_geq(add_at(b, "Patient", "p1", patient(2, "p1", "2", "2024-01-02T00:00:00Z", "Śmith-Ærø"), 3), 0);
  cr_assert_geq(add_at(b, "Basic", "x1", "{\"resourceType\":\"Basic\",\"id\":\"x1\"}", 4), 0);
  cr_assert_geq(add_at(b, "Patient", "p9", patient(3, "p8", "1", "2024-01-01T00:00:00Z", "Key"), 5), 0);
  for (size_t i = 0; i < sizeof(tricky) / sizeof(tricky[0]); i++) {
    char id[8];
    snprintf(id, sizeof(id), "o%zu", i + 1);
    cr_assert_geq(add_at(b, "Observation", id, tricky[i], (long)i + 10), 0);
  }
  hl_wh_result res;
  cr_assert_eq(hl_wh_batch_commit(wh, b, &res), 0);
  uint64_t c0[5] = {res.applied, res.stale, res.raw_only, res.duplicate, res.rejected};
  memcpy(counts[0], c0, sizeof(c0));
  hl_wh_batch_reset(b);
  cr_assert_geq(add_at(b, "Patient", "p2", patient(4, "p2", "3", "2024-01-03T00:00:00Z", "Émile"), 20), 0);
  cr_assert_geq(add_at(b, "Patient", "p1", patient(5, "p1", "1", "2024-01-01T00:00:00Z", "Smith"), 21), 0);
  cr_assert_geq(add_at(b, "Patient", "p1", patient(6, "p1", "1", "2024-01-01T00:00:00Z", "Smith"), 1), 0);
  cr_assert_eq(hl_wh_batch_commit(wh, b, &res), 0);
  uint64_t c1[5] = {res.applied, res.stale, res.raw_only, res.duplicate, res.rejected};
  memcpy(counts[1], c1, sizeof(c1));
  for (size_t i = 0; i < NMIX; i++)
    cr_assert_eq(hl_wh_checksum(wh, mix_views[i], sums[i]), 0);
  all_tokens_indexed();
  hl_wh_batch_free(b);
  hl_wh_free(other);
  hl_wh_free(wh);
  rmdb();
}

Test(warehouse, rows_extracted_when_added_are_written_alike) {
  char sums[3][NMIX][65];
  uint64_t counts[3][2][5];
  for (int use = 0; use < 3; use++)
    load_mix(use, sums[use], counts[use]);
  uint64_t want[2][5] = {{7, 0, 1, 0, 1}, {1, 1, 0, 1, 0}};
  for (int use = 0; use < 3; use++) {
    cr_assert_arr_eq(counts[use], want, sizeof(want), "row statuses (use %d)", use);
    for (size_t i = 0; i < NMIX; i++)
      cr_assert_str_eq(sums[use][i], sums[0][i], "%s differs (use %d)", mix_views[i], use);
  }
}

/*
 * Rows are extracted on the tape hl_wh_batch_add keeps of each resource:
 * one that needs a bigger tape (it grows and the resource is scanned
 * again) and one too large for any (its text is walked) give the values
 * json_extract gives, as a small one does.
 */
Test(warehouse, values_extracted_with_and_without_a_tape) {
  mkdb();
  hl_wh *wh = open_wh(0, 0, 0);
  hl_wh_batch *b;
  cr_assert_eq(hl_wh_batch_new(0, 0, &b), 0);
  cr_assert_eq(hl_wh_batch_use(b, wh), 0);
  static const size_t notes[] = {0, 3000, 1100000, 5};
  for (size_t i = 0; i < sizeof notes / sizeof notes[0]; i++) {
    hl_buf j;
    hl_buf_init(&j, 64u << 20);
    cr_assert_eq(hl_buf_printf(&j, "{\"resourceType\":\"Observation\",\"id\":\"t%zu\",\"note\":[", i), 0);
    for (size_t k = 0; k < notes[i]; k++)
      cr_assert_eq(hl_buf_puts(&j, k ? ",0" : "0"), 0);
    cr_assert_eq(hl_buf_printf(&j, "],\"meta\":{\"versionId\":\"%zu\",\"lastUpdated\":\"2024-01-01T00:00:00Z\"},"
                                   "\"status\":\"s%zu\",\"code\":{\"coding\":[{\"system\":\"sys\",\"code\":\"c%zu\"},"
                                   "{\"code\":\"d\"}]},\"subject\":{\"reference\":\"Patient/p%zu\"}}",
                               i + 1, i, i, i),
                 0);
    char id[8];
    snprintf(id, sizeof(id), "t%zu", i);
    cr_assert_geq(add(b, "a", "Observation", id, j.data, (long)i + 1), 0);
    hl_buf_free(&j);
  }
  hl_wh_result res;
  cr_assert_eq(hl_wh_batch_commit(wh, b, &res), 0);
  cr_assert_eq(res.applied, 4);
  hl_wh_batch_free(b);
  hl_wh_free(wh);
  cr_assert_eq(sql_int("SELECT count(*) FROM curated_observation WHERE status = 's' || substr(id, 2)"
                       " AND status IS json_extract(resource, '$.status')"
                       " AND code IS json_extract(resource, '$.code.coding[0].code')"
                       " AND code_system IS json_extract(resource, '$.code.coding[0].system')"
                       " AND version_id IS json_extract(resource, '$.meta.versionId')"
                       " AND patient = 'p' || substr(id, 2)"),
               4);
  cr_assert_eq(sql_int("SELECT count(*) FROM curated_token WHERE param = 'code'"
                       " AND ((system = 'sys' AND code = 'c' || substr(id, 2)) OR (system = '' AND code = 'd'))"),
               8);
  rmdb();
}

/* ---- Token search: curated_token_doc and curated_token_fts (migration 009) ---------- */

/*
 * The raw_ids (ascending, comma-separated) whose FTS5 terms hold the value
 * (system NULL: the code under any system, a prefix query); NULL: none.
 */
static char *fts_match(const char *tenant, const char *type, const char *param, const char *system,
                       const char *code) {
  char term[HL_WH_TERM_LEN + 1], sql[300];
  hl_wh_token_term(tenant, type, param, system, code, term);
  snprintf(sql, sizeof sql,
           "SELECT group_concat(rowid) FROM (SELECT rowid FROM curated_token_fts"
           " WHERE curated_token_fts MATCH '%s%s' ORDER BY rowid)",
           term, system ? "" : "*");
  return sql_text(sql);
}

/* The terms are part of the stored data: they must never change (deletes recompute them). */
Test(warehouse, token_terms_are_stable) {
  char t[HL_WH_TERM_LEN + 1];
  hl_wh_token_term("org-1", "Observation", "code", "http://loinc.org", "8480-6", t);
  cr_assert_str_eq(t, "kb4fc15898681f30acb93d4b6");
  /* Any system: the code's part alone, a prefix of every system's term. */
  hl_wh_token_term("org-1", "Observation", "code", NULL, "8480-6", t);
  cr_assert_str_eq(t, "kb4fc15898681f30a");
  /* No system ("|code") is not any system. */
  hl_wh_token_term("org-1", "Observation", "code", "", "8480-6", t);
  cr_assert_str_eq(t, "kb4fc15898681f30a0fbc67ca");
  hl_wh_token_term("org-2", "Observation", "code", NULL, "8480-6", t);
  cr_assert_str_neq(t, "kb4fc15898681f30a");
}

/*
 * A resource's token values are found through its terms (exact and any
 * system), in its tenant only; a newer version's replace the older one's,
 * whose terms are taken out of the index (a contentless FTS5 'delete').
 */
Test(warehouse, token_terms_follow_the_current_version) {
  mkdb();
  hl_wh *wh = open_wh(0, 0, 0);
  hl_wh_batch *b;
  cr_assert_eq(hl_wh_batch_new(0, 0, &b), 0);
  add(b, "t", "Patient", "p1", patient(0, "p1", "1", "2024-01-01T00:00:00Z", "One"), 1);
  add(b, "t", "Patient", "p2", patient(1, "p2", "1", "2024-01-01T00:00:00Z", "Other"), 2);
  hl_wh_result res;
  cr_assert_eq(hl_wh_batch_commit(wh, b, &res), 0);
  char *r1 = sql_text("SELECT raw_id FROM curated_patient WHERE id = 'p1'");
  cr_assert_str_eq(fts_match("t", "Patient", "identifier", "urn:mrn", "p1-1"), r1);
  cr_assert_str_eq(fts_match("t", "Patient", "identifier", NULL, "p1-1"), r1);
  cr_assert_null(fts_match("t", "Patient", "identifier", "urn:other", "p1-1"));
  cr_assert_null(fts_match("t", "Patient", "identifier", "", "p1-1"));
  cr_assert_null(fts_match("u", "Patient", "identifier", "urn:mrn", "p1-1"));
  cr_assert_null(fts_match("t", "Practitioner", "identifier", "urn:mrn", "p1-1"));
  hl_wh_batch_reset(b);
  add(b, "t", "Patient", "p1", patient(2, "p1", "2", "2024-01-02T00:00:00Z", "Two"), 3);
  cr_assert_eq(hl_wh_batch_commit(wh, b, &res), 0);
  cr_assert_eq(res.applied, 1);
  char *r2 = sql_text("SELECT raw_id FROM curated_patient WHERE id = 'p1'");
  cr_assert_str_neq(r1, r2);
  cr_assert_null(fts_match("t", "Patient", "identifier", "urn:mrn", "p1-1"));
  cr_assert_null(fts_match("t", "Patient", "identifier", NULL, "p1-1"));
  cr_assert_str_eq(fts_match("t", "Patient", "identifier", "urn:mrn", "p1-2"), r2);
  cr_assert_eq(sql_int("SELECT count(*) FROM curated_token_doc"), 2);
  cr_assert_eq(sql_int("SELECT count(*) FROM curated_token WHERE id = 'p1'"), 1);
  hl_wh_batch_free(b);
  hl_wh_free(wh);
  /* The index is consistent after the delete (FTS5's own check). */
  sqlite3 *db;
  cr_assert_eq(sqlite3_open(dbpath, &db), SQLITE_OK);
  cr_assert_eq(sqlite3_exec(db, "INSERT INTO curated_token_fts (curated_token_fts) VALUES ('integrity-check')",
                            NULL, NULL, NULL),
               SQLITE_OK, "%s", sqlite3_errmsg(db));
  sqlite3_close(db);
  free(r1);
  free(r2);
  rmdb();
}

/* A value given twice is one curated_token row, as under the former table's primary key. */
Test(warehouse, token_values_are_kept_once_per_resource) {
  mkdb();
  hl_wh *wh = open_wh(0, 0, 0);
  hl_wh_batch *b;
  cr_assert_eq(hl_wh_batch_new(0, 0, &b), 0);
  add(b, "t", "Patient", "p1",
      "{\"resourceType\":\"Patient\",\"id\":\"p1\",\"identifier\":[{\"system\":\"urn:a\",\"value\":\"1\"},"
      "{\"system\":\"urn:a\",\"value\":\"1\"},{\"value\":\"1\"},{\"system\":\"urn:a\",\"value\":\"2\"}]}",
      1);
  hl_wh_result res;
  cr_assert_eq(hl_wh_batch_commit(wh, b, &res), 0);
  cr_assert_eq(res.applied, 1);
  cr_assert_str_eq(sql_text("SELECT group_concat(system || '|' || code, ' ') FROM (SELECT system, code"
                            " FROM curated_token WHERE param = 'identifier' ORDER BY 1, 2)"),
                   "|1 urn:a|1 urn:a|2");
  hl_wh_batch_free(b);
  hl_wh_free(wh);
  rmdb();
}
