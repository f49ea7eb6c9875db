/*
 * hl-api-gateway: the text and the bound values of the search SQL
 * (workers/api-gateway/sqlgen.c) in both dialects. On SQLite a token side
 * parameter reads the FTS5 terms of curated_token_fts and confirms each
 * match in curated_token by raw_id; Snowflake keeps its curated_token
 * subquery, byte for byte as before.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "hl/warehouse.h"
#include "hl_api_test.h"
#include "hl_test.h"
#include "query.h"
#include "sqlgen.h"

HL_TEST_SUITE(api_sqlgen);

/* The count statement of type?query for tenant org-1: SQLite's dialect, or Snowflake's in schema HL. */
static void count_sql(const char *type, const char *query, bool sqlite, hl_sqlb *b) {
  hl_api_query q;
  hl_api_search s;
  hl_test_api_search(type, query, &q, &s);
  if (sqlite)
    hl_sqlb_init_sqlite(b);
  else
    hl_sqlb_init(b, "HL", true);
  hl_sql_search_count(b, "org-1", &s);
  cr_assert_eq(b->err, 0);
  hl_api_search_clear(&s);
  hl_api_query_clear(&q);
}

/* Asserts the statement's text after "WHERE t.tenant = ? AND " and its bound texts (NULL ends them). */
static void expect(const hl_sqlb *b, const char *where, ...) {
  static const char head[] = "SELECT count(*) FROM ";
  cr_assert(!strncmp(b->sql.data, head, strlen(head)), "%s", b->sql.data);
  const char *w = strstr(b->sql.data, " t WHERE t.tenant = ? AND ");
  cr_assert_not_null(w, "%s", b->sql.data);
  cr_assert_str_eq(w + strlen(" t WHERE t.tenant = ? AND "), where);
  cr_assert_str_eq(b->v[0].text, "org-1");
  va_list ap;
  va_start(ap, where);
  int i = 1;
  for (const char *v; (v = va_arg(ap, const char *)); i++) {
    cr_assert_lt(i, b->n, "fewer bound values than expected (%d)", b->n);
    cr_assert_eq(b->v[i].kind, HL_SQLV_TEXT);
    cr_assert_str_eq(b->v[i].text, v, "value %d", i);
  }
  va_end(ap);
  cr_assert_eq(i, b->n, "%d bound values, expected %d", b->n, i);
}

/* The FTS5 query of one value: its term quoted, a prefix query when it has no system. */
static const char *phrase(char *out, const char *type, const char *param, const char *system,
                          const char *code) {
  char term[HL_WH_TERM_LEN + 1];
  hl_wh_token_term("org-1", type, param, system, code, term);
  sprintf(out, "\"%s\"%s", term, system ? "" : " *");
  return out;
}

#define FTS "(t.raw_id IN (SELECT rowid FROM curated_token_fts WHERE curated_token_fts MATCH ?) AND "
#define CONFIRM "EXISTS (SELECT 1 FROM curated_token k WHERE k.raw_id = t.raw_id AND k.param = ?"

Test(api_sqlgen, sqlite_system_and_code_match_the_exact_term) {
  hl_sqlb b;
  char m[40];
  count_sql("Observation", "code=http://loinc.org|8480-6", true, &b);
  expect(&b, FTS CONFIRM " AND ((1 = 1 AND system = ? AND code = ?))))",
         phrase(m, "Observation", "code", "http://loinc.org", "8480-6"), "code",
         "http://loinc.org", "8480-6", NULL);
  hl_sqlb_free(&b);
}

/* The code under any system: the prefix query of the code's part, which every exact term of it extends. */
Test(api_sqlgen, sqlite_code_alone_is_the_prefix_query_of_the_code) {
  hl_sqlb b;
  char m[40];
  count_sql("Patient", "identifier=123", true, &b);
  expect(&b, FTS CONFIRM " AND ((1 = 1 AND code = ?))))",
         phrase(m, "Patient", "identifier", NULL, "123"), "identifier", "123", NULL);
  cr_assert_eq(strlen(m), HL_WH_TERM_PREFIX_LEN + 4, "%s", m);
  cr_assert_str_eq(m + 1 + HL_WH_TERM_PREFIX_LEN, "\" *");
  const char *systems[] = {"", "urn:mrn", "urn:oid:1.2"};
  for (int i = 0; i < 3; i++) {
    char exact[HL_WH_TERM_LEN + 1];
    hl_wh_token_term("org-1", "Patient", "identifier", systems[i], "123", exact);
    cr_assert_eq(strlen(exact), HL_WH_TERM_LEN);
    cr_assert(!strncmp(exact, m + 1, HL_WH_TERM_PREFIX_LEN), "%s does not extend %s", exact, m);
  }
  hl_sqlb_free(&b);
}

Test(api_sqlgen, sqlite_empty_system_matches_the_exact_term_of_no_system) {
  hl_sqlb b;
  char m[40], other[40];
  count_sql("Patient", "identifier=%7C123", true, &b);
  expect(&b, FTS CONFIRM " AND ((1 = 1 AND system = ? AND code = ?))))",
         phrase(m, "Patient", "identifier", "", "123"), "identifier", "", "123", NULL);
  cr_assert_eq(strlen(m), HL_WH_TERM_LEN + 2, "%s", m);
  cr_assert_str_neq(m, phrase(other, "Patient", "identifier", "urn:mrn", "123"));
  hl_sqlb_free(&b);
}

/* The same code of another tenant, type or parameter is another term. */
Test(api_sqlgen, sqlite_terms_belong_to_the_tenant_type_and_parameter) {
  hl_sqlb b;
  char m[40], other[40];
  count_sql("Observation", "code=x", true, &b);
  cr_assert_str_eq(b.v[1].text, phrase(m, "Observation", "code", NULL, "x"));
  cr_assert_str_neq(m, phrase(other, "Condition", "code", NULL, "x"));
  cr_assert_str_neq(m, phrase(other, "Observation", "category", NULL, "x"));
  char t[HL_WH_TERM_LEN + 1];
  hl_wh_token_term("org-2", "Observation", "code", NULL, "x", t);
  snprintf(other, sizeof other, "\"%s\" *", t);
  cr_assert_str_neq(m, other);
  hl_sqlb_free(&b);
}

Test(api_sqlgen, sqlite_system_without_code_is_the_confirmation_alone) {
  hl_sqlb b;
  count_sql("Observation", "category=http://terminology.hl7.org/CodeSystem/observation-category%7C",
            true, &b);
  expect(&b, "(" CONFIRM " AND ((1 = 1 AND system = ?))))", "category",
         "http://terminology.hl7.org/CodeSystem/observation-category", NULL);
  cr_assert_null(strstr(b.sql.data, "curated_token_fts"));
  hl_sqlb_free(&b);
}

Test(api_sqlgen, sqlite_or_values_or_their_terms) {
  hl_sqlb b;
  char m1[40], m2[40], m[96];
  count_sql("Condition", "code=http://snomed.info/sct%7C44054006,38341003", true, &b);
  snprintf(m, sizeof m, "%s OR %s", phrase(m1, "Condition", "code", "http://snomed.info/sct", "44054006"),
           phrase(m2, "Condition", "code", NULL, "38341003"));
  expect(&b, FTS CONFIRM " AND ((1 = 1 AND system = ? AND code = ?) OR (1 = 1 AND code = ?))))", m,
         "code", "http://snomed.info/sct", "44054006", "38341003", NULL);
  hl_sqlb_free(&b);
}

Test(api_sqlgen, sqlite_or_values_one_without_a_term_confirm_alone) {
  hl_sqlb b;
  count_sql("Condition", "code=44054006,http://snomed.info/sct%7C", true, &b);
  expect(&b, "(" CONFIRM " AND ((1 = 1 AND code = ?) OR (1 = 1 AND system = ?))))", "code",
         "44054006", "http://snomed.info/sct", NULL);
  cr_assert_null(strstr(b.sql.data, "curated_token_fts"));
  hl_sqlb_free(&b);
}

/* :not negates the same test: only the candidates of the terms are confirmed. */
Test(api_sqlgen, sqlite_not_is_the_negated_search) {
  hl_sqlb b;
  char m1[40], m2[40], m[96];
  count_sql("Observation", "code:not=http://loinc.org%7C8480-6,8462-4", true, &b);
  snprintf(m, sizeof m, "%s OR %s", phrase(m1, "Observation", "code", "http://loinc.org", "8480-6"),
           phrase(m2, "Observation", "code", NULL, "8462-4"));
  expect(&b, "NOT " FTS CONFIRM " AND ((1 = 1 AND system = ? AND code = ?) OR (1 = 1 AND code = ?))))",
         m, "code", "http://loinc.org", "8480-6", "8462-4", NULL);
  hl_sqlb_free(&b);
  count_sql("Observation", "code:not=http://loinc.org%7C", true, &b);
  expect(&b, "NOT (" CONFIRM " AND ((1 = 1 AND system = ?))))", "code", "http://loinc.org", NULL);
  cr_assert_null(strstr(b.sql.data, "curated_token_fts"));
  hl_sqlb_free(&b);
}

Test(api_sqlgen, sqlite_missing_is_the_parameter_without_values) {
  hl_sqlb b;
  count_sql("Patient", "identifier:missing=true", true, &b);
  expect(&b, "NOT (" CONFIRM "))", "identifier", NULL);
  hl_sqlb_free(&b);
  count_sql("Patient", "identifier:missing=false", true, &b);
  expect(&b, "(" CONFIRM "))", "identifier", NULL);
  hl_sqlb_free(&b);
}

/* Every clause takes its own terms; columns and string side parameters are as before. */
Test(api_sqlgen, sqlite_clauses_combine) {
  hl_sqlb b;
  char m1[40], m2[40];
  count_sql("Observation", "code=8480-6&category=vital-signs&status=final&patient=Patient/p-1", true,
            &b);
  expect(&b,
         FTS CONFIRM " AND ((1 = 1 AND code = ?)))) AND " FTS CONFIRM
                     " AND ((1 = 1 AND code = ?)))) AND (t.status = ?) AND (t.patient = ?)",
         phrase(m1, "Observation", "code", NULL, "8480-6"), "code", "8480-6",
         phrase(m2, "Observation", "category", NULL, "vital-signs"), "category", "vital-signs",
         "final", "p-1", NULL);
  hl_sqlb_free(&b);
  count_sql("Patient", "name=jo", true, &b);
  expect(&b,
         "t.id IN (SELECT id FROM curated_string WHERE tenant = ? AND type = ? AND param = ? AND "
         "((value >= ? AND value < ?)))",
         "org-1", "Patient", "name", "jo", "jo\xf4\x8f\xbf\xbf", NULL);
  hl_sqlb_free(&b);
}

/* Snowflake keeps a curated_token table: its SQL is the same as before the FTS5 index. */
Test(api_sqlgen, snowflake_token_sql_is_unchanged) {
  hl_sqlb b;
  count_sql("Observation", "code=http://loinc.org|8480-6,8462-4", false, &b);
  cr_assert_str_eq(b.sql.data,
                   "SELECT count(*) FROM HL.curated_observation t WHERE t.tenant = ? AND t.id IN "
                   "(SELECT id FROM HL.curated_token WHERE tenant = ? AND type = ? AND param = ? AND "
                   "((1 = 1 AND system = ? AND code = ?) OR (1 = 1 AND code = ?)))");
  expect(&b,
         "t.id IN (SELECT id FROM HL.curated_token WHERE tenant = ? AND type = ? AND param = ? AND "
         "((1 = 1 AND system = ? AND code = ?) OR (1 = 1 AND code = ?)))",
         "org-1", "Observation", "code", "http://loinc.org", "8480-6", "8462-4", NULL);
  hl_sqlb_free(&b);
  count_sql("Patient", "identifier:not=%7C123&identifier=urn:oid:1.2%7C", false, &b);
  expect(&b,
         "t.id NOT IN (SELECT id FROM HL.curated_token WHERE tenant = ? AND type = ? AND param = ? "
         "AND ((1 = 1 AND system = ? AND code = ?))) AND t.id IN (SELECT id FROM HL.curated_token "
         "WHERE tenant = ? AND type = ? AND param = ? AND ((1 = 1 AND system = ?)))",
         "org-1", "Patient", "identifier", "", "123", "org-1", "Patient", "identifier", "urn:oid:1.2",
         NULL);
  hl_sqlb_free(&b);
  count_sql("Patient", "identifier:missing=true", false, &b);
  expect(&b,
         "t.id NOT IN (SELECT id FROM HL.curated_token WHERE tenant = ? AND type = ? AND param = ?)",
         "org-1", "Patient", "identifier", NULL);
  hl_sqlb_free(&b);
  count_sql("Patient", "identifier:missing=false", false, &b);
  expect(&b, "t.id IN (SELECT id FROM HL.curated_token WHERE tenant = ? AND type = ? AND param = ?)",
         "org-1", "Patient", "identifier", NULL);
  hl_sqlb_free(&b);
}
