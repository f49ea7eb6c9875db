/* hl-api-gateway: query strings, search parameters, dates, cursors (workers/api-gateway/query.c). */
#include <stdio.h>
#include <string.h>

#include "hl/error.h"
#include "hl_test.h"
#include "query.h"

HL_TEST_SUITE(api_query);

static int parse(const char *type, const char *raw, hl_api_query *q, hl_api_search *s, char *err) {
  int rc = hl_api_query_parse(raw, strlen(raw), q, err, 256);
  if (rc < 0)
    return rc;
  hl_api_search_opts o = {20, 50};
  rc = hl_api_search_parse(hl_api_type_find(type), q, &o, s, err, 256);
  if (rc < 0)
    hl_api_query_clear(q);
  return rc;
}

Test(api_query, decodes_pairs) {
  hl_api_query q;
  char err[256];
  const char *raw = "name=J%C3%B6rg+X&&gender=male&empty=&flag";
  cr_assert_eq(hl_api_query_parse(raw, strlen(raw), &q, err, sizeof err), 0, "%s", err);
  cr_assert_eq(q.n, 4);
  cr_assert_str_eq(q.kv[0].name, "name");
  cr_assert_str_eq(q.kv[0].value, "J\xc3\xb6rg X");
  cr_assert_str_eq(hl_api_query_get(&q, "gender"), "male");
  cr_assert_str_eq(hl_api_query_get(&q, "empty"), "");
  cr_assert_str_eq(hl_api_query_get(&q, "flag"), "");
  cr_assert_null(hl_api_query_get(&q, "nope"));
  hl_api_query_clear(&q);
}

Test(api_query, refuses_bad_escapes_nul_and_too_many) {
  hl_api_query q;
  char err[256];
  cr_assert_eq(hl_api_query_parse("a=%zz", 5, &q, err, sizeof err), HL_EPARSE);
  cr_assert_eq(hl_api_query_parse("a=%4", 4, &q, err, sizeof err), HL_EPARSE);
  cr_assert_eq(hl_api_query_parse("a=%00", 5, &q, err, sizeof err), HL_EPARSE);
  cr_assert_eq(hl_api_query_parse("=x", 2, &q, err, sizeof err), HL_EPARSE);
  char many[1024] = "";
  for (int i = 0; i < 70; i++)
    strcat(many, "a=1&");
  cr_assert_eq(hl_api_query_parse(many, strlen(many), &q, err, sizeof err), HL_ELIMIT);
}

Test(api_query, date_ranges_by_precision) {
  int64_t lo, hi;
  cr_assert_eq(hl_api_date_range("1970", 4, &lo, &hi), 0);
  cr_assert_eq(lo, 0);
  cr_assert_eq(hi, 365LL * 86400000);
  cr_assert_eq(hl_api_date_range("2020-02", 7, &lo, &hi), 0);
  cr_assert_eq(hi - lo, 29LL * 86400000); /* leap year */
  cr_assert_eq(hl_api_date_range("2020-12-31", 10, &lo, &hi), 0);
  cr_assert_eq(hi - lo, 86400000LL);
  cr_assert_eq(hl_api_date_range("1970-01-01T01:00:00+01:00", 25, &lo, &hi), 0);
  cr_assert_eq(lo, 0);
  cr_assert_eq(hi, 1000);
  cr_assert_eq(hl_api_date_range("1970-01-01T00:00:00.5Z", 22, &lo, &hi), 0);
  cr_assert_eq(lo, 500);
  cr_assert_eq(hi, 600);
  cr_assert_eq(hl_api_date_range("1969-12-31T23:59Z", 17, &lo, &hi), 0);
  cr_assert_eq(lo, -60000);
  char out[40];
  hl_api_format_instant(lo, out, sizeof out);
  cr_assert_str_eq(out, "1969-12-31T23:59:00.000Z");
  const char *bad[] = {"20", "2020-13", "2021-02-29", "2020-01-01T25:00", "2020-01-01T", "2020-1-1",
                       "2020-01-01Z", "2020-01-01T10:00:00+15:00", "abcd", "2020-01-01 10:00"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    cr_assert_eq(hl_api_date_range(bad[i], strlen(bad[i]), &lo, &hi), HL_EPARSE, "%s", bad[i]);
}

Test(api_query, search_clauses_or_and_prefixes) {
  hl_api_query q;
  hl_api_search s;
  char err[256];
  cr_assert_eq(parse("Observation", "code=http://loinc.org|8480-6,1234-5&code=http://loinc.org|&date=ge2020-01&date=lt2021"
                     "&value-quantity=le5.40||mg&patient=Patient/abc-1", &q, &s, err), 0, "%s", err);
  cr_assert_eq(s.nclauses, 6);
  cr_assert_str_eq(s.clauses[5].values[0].text, "abc-1");
  cr_assert_eq(s.clauses[0].nvalues, 2);
  cr_assert_str_eq(s.clauses[0].values[0].system, "http://loinc.org");
  cr_assert_str_eq(s.clauses[0].values[0].text, "8480-6");
  cr_assert_null(s.clauses[0].values[1].system);
  cr_assert_str_eq(s.clauses[0].values[1].text, "1234-5");
  cr_assert_null(s.clauses[1].values[0].text); /* system| : any code */
  cr_assert_eq(s.clauses[2].values[0].prefix, HL_PFX_GE);
  cr_assert_eq(s.clauses[3].values[0].prefix, HL_PFX_LT);
  cr_assert_eq(s.clauses[4].def->kind, HL_SP_QUANTITY);
  cr_assert_float_eq(s.clauses[4].values[0].num_lo, 5.395, 1e-9);
  cr_assert_str_eq(s.clauses[4].values[0].unit, "mg");
  cr_assert_eq(s.count, 20);
  hl_api_search_clear(&s);
  hl_api_query_clear(&q);
}

Test(api_query, string_values_are_normalized) {
  hl_api_query q;
  hl_api_search s;
  char err[256];
  cr_assert_eq(parse("Patient", "name=J%C3%96RG&_count=500&_sort=-birthdate&_include=Patient:organization", &q, &s, err),
               HL_EPARSE);
  cr_assert_eq(parse("Patient", "name=J%C3%96RG&_count=500&_sort=-birthdate", &q, &s, err), 0, "%s", err);
  cr_assert_str_eq(s.clauses[0].values[0].text, "jorg");
  cr_assert_eq(s.count, 50, "capped");
  cr_assert(s.sort_desc);
  cr_assert_str_eq(s.sort->name, "birthdate");
  hl_api_search_clear(&s);
  hl_api_query_clear(&q);
}

Test(api_query, errors_are_400_material) {
  hl_api_query q;
  hl_api_search s;
  char err[256];
  const char *bad[] = {"foo=bar", "name:exact=x", "gender:missing=maybe", "birthdate=xx2020", "birthdate=2020-02-30",
                       "_count=-1", "_count=abc", "_sort=gender", "_summary=true", "_include=Observation:patient",
                       "organization=Practitioner/x", "organization=bad id", "_cursor=%%%", "_cursor=AAAA",
                       "name=", "identifier=|", "_total=maybe"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    cr_assert_lt(parse("Patient", bad[i], &q, &s, err), 0, "%s accepted", bad[i]);
    cr_assert_gt(strlen(err), 0);
  }
}

Test(api_query, cursor_round_trip) {
  char enc[256], raw[300];
  cr_assert_eq(hl_api_cursor_encode(1, true, -12345, NULL, "id-1", enc, sizeof enc), 0);
  snprintf(raw, sizeof raw, "_sort=birthdate&_cursor=%s", enc);
  hl_api_query q;
  hl_api_search s;
  char err[256];
  cr_assert_eq(parse("Patient", raw, &q, &s, err), 0, "%s", err);
  cr_assert_eq(s.cursor.dir, 1);
  cr_assert(s.cursor.key_is_int);
  cr_assert_eq(s.cursor.key_int, -12345);
  cr_assert_str_eq(s.cursor.id, "id-1");
  hl_api_search_clear(&s);
  hl_api_query_clear(&q);
  /* The same cursor under another sort kind is refused. */
  snprintf(raw, sizeof raw, "_cursor=%s", enc);
  cr_assert_eq(parse("Patient", raw, &q, &s, err), HL_EPARSE);
  cr_assert_eq(hl_api_cursor_encode(-1, false, 0, "sm\xc3\xadth", "x", enc, sizeof enc), 0);
  snprintf(raw, sizeof raw, "_sort=family&_cursor=%s", enc);
  cr_assert_eq(parse("Patient", raw, &q, &s, err), 0, "%s", err);
  cr_assert_eq(s.cursor.dir, -1);
  cr_assert_str_eq(s.cursor.key_text, "sm\xc3\xadth");
  hl_api_search_clear(&s);
  hl_api_query_clear(&q);
}

Test(api_query, valid_ids) {
  cr_assert(hl_api_valid_id("abc-1.2"));
  cr_assert_not(hl_api_valid_id(""));
  cr_assert_not(hl_api_valid_id("a/b"));
  cr_assert_not(hl_api_valid_id("1' OR '1'='1"));
  char l[70];
  memset(l, 'a', 65);
  l[65] = 0;
  cr_assert_not(hl_api_valid_id(l));
  l[64] = 0;
  cr_assert(hl_api_valid_id(l));
}
