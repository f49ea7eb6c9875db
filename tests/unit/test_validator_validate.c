/* Unit tests of the single-pass validator against the compiled FHIR R4 schema. */
#include <dirent.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>

#include "hl/buf.h"
#include "schema_int.h"
#include "validator_test.h"

HL_TEST_SUITE(validator_validate);

static hl_fschema *fs;
static hl_validator *v;

static void setup(void) {
  fs = vt_schema();
  cr_assert_eq(hl_validator_new(fs, NULL, NULL, &v), 0);
}
static void teardown(void) {
  v = hl_validator_free(v);
  fs = hl_fschema_free(fs);
}

static const char patient[] =
  "{\"resourceType\":\"Patient\",\"id\":\"p1\",\"identifier\":[{\"system\":\"urn:x\",\"value\":\"1\"}],"
  "\"name\":[{\"family\":\"Smith\",\"given\":[\"Anna\",\"Zoë\"]}],\"gender\":\"female\","
  "\"birthDate\":\"1970-01-02\",\"multipleBirthInteger\":2,\"deceasedBoolean\":false,"
  "\"managingOrganization\":{\"reference\":\"Organization/o1\"}}";

Test(validator_validate, schema_compiles, .init = setup, .fini = teardown) {
  hl_fschema_stats st;
  hl_fschema_get_stats(fs, &st);
  cr_expect_eq(st.resources, 146);
  cr_expect_gt(st.definitions, 600);
  cr_expect_gt(st.properties, 10000);
  cr_expect_eq(st.regexes, 0, "every pattern has a hand-written checker");
  cr_expect(hl_fschema_is_resource(fs, "Patient", 7));
  cr_expect(!hl_fschema_is_resource(fs, "HumanName", 9));
}

Test(validator_validate, valid_patient, .init = setup, .fini = teardown) {
  hl_vresult r = vt_check(v, patient);
  cr_expect(r.valid);
  cr_expect_eq(r.nissues, 0);
  cr_expect_str_eq(r.resource_type, "Patient");
}

Test(validator_validate, location_in_nested_arrays, .init = setup, .fini = teardown) {
  hl_vresult r = vt_check(v, "{\"resourceType\":\"Patient\",\"name\":[{\"given\":[\"a\",\"b\"]},"
                             "{\"family\":\"x\",\"given\":[\"a\",5]}]}");
  cr_expect(!r.valid);
  cr_expect_eq(r.nissues, 1);
  const hl_vissue *is = vt_issue_at(v, "Patient.name[1].given[1]", NULL);
  cr_assert_not_null(is);
  cr_expect_str_eq(is->code, "structure");
  cr_expect_eq(is->severity, HL_VSEV_ERROR);
  cr_expect_null(is->rule);
}

Test(validator_validate, collects_every_issue, .init = setup, .fini = teardown) {
  hl_vresult r = vt_check(v, "{\"resourceType\":\"Observation\",\"status\":\"done\",\"foo\":1,"
                             "\"subject\":{\"reference\":\"Patient/1\",\"bar\":true},"
                             "\"effectiveDateTime\":\"2020-01-01T10:00\","
                             "\"component\":[{\"valueQuantity\":{\"value\":\"1\"}}]}");
  cr_expect(!r.valid);
  cr_expect_eq(r.nissues, 7, "got %zu issues", r.nissues);
  cr_expect_eq(r.errors, 7);
  const struct {
    const char *loc, *code;
  } want[] = {
    {"Observation.status", "value"},          {"Observation.foo", "structure"},
    {"Observation.subject.bar", "structure"}, {"Observation.effectiveDateTime", "value"},
    {"Observation.component[0].valueQuantity.value", "structure"},
    {"Observation.component[0].code", "required"}, {"Observation.code", "required"},
  };
  for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
    const hl_vissue *is = vt_issue_at(v, want[i].loc, NULL);
    cr_assert_not_null(is, "no issue at %s", want[i].loc);
    cr_expect_str_eq(is->code, want[i].code, "%s", want[i].loc);
  }
}

Test(validator_validate, resource_type_discriminator, .init = setup, .fini = teardown) {
  hl_vresult r = vt_check(v, "{\"id\":\"x\",\"gender\":\"male\",\"resourceType\":\"Patient\"}");
  cr_expect(r.valid, "resourceType may come last");
  cr_expect_str_eq(r.resource_type, "Patient");
  r = vt_check(v, "{\"resourceType\":\"Patient\",\"status\":\"final\"}");
  cr_expect(!r.valid, "Observation's elements are unknown to Patient");
  cr_expect_not_null(vt_issue_at(v, "Patient.status", NULL));
  r = vt_check(v, "{\"resourceType\":\"Foo\"}");
  cr_expect(!r.valid);
  cr_expect_str_eq(r.resource_type, "");
  r = vt_check(v, "{\"id\":\"x\"}");
  cr_expect(!r.valid);
  r = vt_check(v, "{\"resourceType\":7}");
  cr_expect(!r.valid);
  r = vt_check(v, "[{\"resourceType\":\"Patient\"}]");
  cr_expect(!r.valid);
  r = vt_check(v, "\"Patient\"");
  cr_expect(!r.valid);
  r = vt_check(v, "{\"resourceType\":\"Patient\",\"contained\":[{\"resourceType\":\"Organization\","
                  "\"name\":5}]}");
  cr_expect(!r.valid);
  cr_expect_not_null(vt_issue_at(v, "Patient.contained[0].name", NULL));
}

Test(validator_validate, json_syntax_is_fatal, .init = setup, .fini = teardown) {
  const char *bad[] = {
    "",
    "{\"resourceType\":\"Patient\"",
    "{\"resourceType\":\"Patient\"} x",
    "{\"resourceType\":\"Patient\",}",
    "{\"resourceType\":\"Pat\xff\"}",
    "{\"resourceType\":\"Patient\",\"id\":\"\\ud800\"}",
    "{\"resourceType\":\"Patient\",\"id\":\"a\x01\"}",
    "{\"resourceType\":\"Patient\",\"multipleBirthInteger\":01}",
    "{\"resourceType\":\"Patient\",\"active\":tru}",
    "{\"resourceType\":\"Patient\",\"id\":\"\\x\"}",
    "\xef\xbb\xbf{\"resourceType\":\"Patient\"}",
    /* Found by fuzzing: malformed resourceType strings seen by the discriminator's prescan. */
    "{\"resourceType\":\"\\u0{\"",
    "{\"resourceType\":\"Org\xeeization\",\"id\":\"1\"}",
    "{\"resourceType\":\"Patient\\",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    hl_vresult r = vt_check(v, bad[i]);
    cr_expect(!r.valid, "case %zu", i);
    size_t n;
    const hl_vissue *is = hl_validator_issues(v, &n);
    bool fatal = false;
    for (size_t k = 0; k < n; k++) fatal = fatal || is[k].severity == HL_VSEV_FATAL;
    cr_expect(fatal, "case %zu has no fatal issue", i);
  }
}

Test(validator_validate, escapes_are_decoded, .init = setup, .fini = teardown) {
  hl_vresult r = vt_check(v, "{\"resourceType\":\"Pat\\u0069ent\",\"birth\\u0044ate\":\"2020\\u002d01\","
                             "\"gender\":\"m\\u0061le\",\"name\":[{\"text\":\"\\ud83d\\ude00 \\\"q\\\"\"}]}");
  cr_expect(r.valid);
  r = vt_check(v, "{\"resourceType\":\"Patient\",\"gender\":\"m\\u0061les\"}");
  cr_expect(!r.valid);
  r = vt_check(v, "{\"resourceType\":\"Patient\",\"id\":\"a\\u00a0b\"}");
  cr_expect(!r.valid);
}

Test(validator_validate, duplicate_members, .init = setup, .fini = teardown) {
  hl_vresult r = vt_check(v, "{\"resourceType\":\"Patient\",\"gender\":\"male\",\"gender\":\"female\"}");
  cr_expect(!r.valid);
  cr_expect_not_null(vt_issue_at(v, "Patient.gender", NULL));
}

Test(validator_validate, schema_semantics_kept, .init = setup, .fini = teardown) {
  /* The JSON Schema constrains complex types only when they are objects,
     and number-typed primitives only by their JSON type: ajv accepts these,
     so must the schema-only validator (the profile refuses them). */
  hl_vresult r = vt_check(v, "{\"resourceType\":\"Patient\",\"maritalStatus\":\"M\","
                             "\"multipleBirthInteger\":-1.5,\"name\":[]}");
  cr_expect(r.valid);
  /* Unknown members are checked for syntax only. */
  r = vt_check(v, "{\"resourceType\":\"Patient\",\"x\":{\"y\":[1,{\"z\":null}]}}");
  cr_expect(!r.valid);
  cr_expect_eq(r.nissues, 1);
  /* xhtml accepts any JSON value. */
  r = vt_check(v, "{\"resourceType\":\"Patient\",\"text\":{\"status\":\"generated\",\"div\":{\"a\":1}}}");
  cr_expect(r.valid);
  r = vt_check(v, "{\"resourceType\":\"Patient\",\"text\":{\"status\":\"generated\"}}");
  cr_expect(!r.valid);
  cr_expect_not_null(vt_issue_at(v, "Patient.text.div", NULL));
}

Test(validator_validate, issue_cap, .init = setup, .fini = teardown) {
  hl_validator *small = NULL;
  hl_validator_opts o = {.max_issues = 10};
  cr_assert_eq(hl_validator_new(fs, NULL, &o, &small), 0);
  hl_buf b;
  hl_buf_init(&b, 0);
  hl_buf_puts(&b, "{\"resourceType\":\"Patient\"");
  for (int i = 0; i < 150; i++) hl_buf_printf(&b, ",\"x%d\":%d", i, i);
  hl_buf_puts(&b, "}");
  hl_vresult r;
  cr_assert_eq(hl_validator_check(small, b.data, b.len, &r), 0);
  cr_expect(!r.valid);
  cr_expect_eq(r.nissues, 10);
  cr_expect_eq(r.errors, 150);
  hl_buf oo;
  hl_buf_init(&oo, 0);
  cr_assert_eq(hl_validator_outcome(small, &oo), 0);
  cr_expect_not_null(strstr(oo.data, "140 more issues"));
  hl_buf_free(&oo);
  hl_buf_free(&b);
  hl_validator_free(small);
}

Test(validator_validate, depth_and_size_limits, .init = setup, .fini = teardown) {
  hl_validator *small = NULL;
  hl_validator_opts o = {.max_depth = 8, .max_bytes = 4096};
  cr_assert_eq(hl_validator_new(fs, NULL, &o, &small), 0);
  hl_buf b;
  hl_buf_init(&b, 0);
  hl_buf_puts(&b, "{\"resourceType\":\"Patient\",\"x\":");
  for (int i = 0; i < 20; i++) hl_buf_puts(&b, "[");
  for (int i = 0; i < 20; i++) hl_buf_puts(&b, "]");
  hl_buf_puts(&b, "}");
  hl_vresult r;
  cr_assert_eq(hl_validator_check(small, b.data, b.len, &r), 0);
  cr_expect(!r.valid);
  hl_buf_reset(&b);
  hl_buf_puts(&b, "{\"resourceType\":\"Patient\",\"id\":\"");
  for (int i = 0; i < 5000; i++) hl_buf_putc(&b, 'a');
  hl_buf_puts(&b, "\"}");
  cr_assert_eq(hl_validator_check(small, b.data, b.len, &r), 0);
  cr_expect(!r.valid);
  size_t n;
  const hl_vissue *is = hl_validator_issues(small, &n);
  cr_assert_eq(n, 1);
  cr_expect_str_eq(is[0].code, "too-long");
  /* The validator is reusable after a failure. */
  cr_assert_eq(hl_validator_check(small, patient, strlen(patient), &r), 0);
  cr_expect(r.valid);
  hl_buf_free(&b);
  hl_validator_free(small);
}

Test(validator_validate, operation_outcome_shape, .init = setup, .fini = teardown) {
  vt_check(v, "{\"resourceType\":\"Patient\",\"gender\":\"x\\\"y\",\"name\":[{\"given\":[1]}]}");
  hl_buf oo;
  hl_buf_init(&oo, 0);
  cr_assert_eq(hl_validator_outcome(v, &oo), 0);
  json_error_t je;
  json_t *j = json_loads(oo.data, 0, &je);
  cr_assert_not_null(j, "%s: %s", je.text, oo.data);
  cr_expect_str_eq(json_string_value(json_object_get(j, "resourceType")), "OperationOutcome");
  json_t *issues = json_object_get(j, "issue");
  cr_assert_eq(json_array_size(issues), 2);
  json_t *i0 = json_array_get(issues, 0);
  cr_expect_str_eq(json_string_value(json_object_get(i0, "severity")), "error");
  cr_expect_str_eq(json_string_value(json_object_get(i0, "code")), "value");
  cr_expect_not_null(strstr(json_string_value(json_object_get(json_object_get(i0, "details"), "text")), "x\"y"));
  cr_expect_str_eq(json_string_value(json_array_get(json_object_get(i0, "expression"), 0)), "Patient.gender");
  cr_expect_str_eq(
    json_string_value(json_array_get(json_object_get(json_array_get(issues, 1), "expression"), 0)),
    "Patient.name[0].given[0]");
  json_decref(j);
  /* A valid resource gets one information issue. */
  vt_check(v, patient);
  hl_buf_reset(&oo);
  cr_assert_eq(hl_validator_outcome(v, &oo), 0);
  cr_expect_not_null(strstr(oo.data, "\"severity\":\"information\""));
  hl_buf_free(&oo);
}

Test(validator_validate, compiler_refuses_unknown_keywords) {
  char err[256];
  hl_fschema *s = NULL;
  json_t *doc = json_loads("{\"definitions\":{\"A\":{\"properties\":{\"x\":{\"minLength\":1}}}},"
                           "\"oneOf\":[{\"$ref\":\"#/definitions/A\"}]}",
                           0, NULL);
  cr_assert_not_null(doc);
  cr_expect_lt(hl_fschema_compile(doc, &s, err, sizeof err), 0);
  cr_expect_not_null(strstr(err, "minLength"), "%s", err);
  json_decref(doc);
  /* A tiny schema of our own compiles and validates, with a regex fallback pattern. */
  doc = json_loads("{\"definitions\":{\"T\":{\"properties\":{\"resourceType\":{\"const\":\"T\"},"
                   "\"v\":{\"type\":\"string\",\"pattern\":\"^[a-c]+\\\\d$\"},\"n\":{\"type\":\"integer\"}},"
                   "\"required\":[\"resourceType\"],\"additionalProperties\":false}},"
                   "\"oneOf\":[{\"$ref\":\"#/definitions/T\"}]}",
                   0, NULL);
  cr_assert_not_null(doc);
  cr_assert_eq(hl_fschema_compile(doc, &s, err, sizeof err), 0, "%s", err);
  json_decref(doc);
  hl_validator *tv = NULL;
  cr_assert_eq(hl_validator_new(s, NULL, NULL, &tv), 0);
  cr_expect(vt_check(tv, "{\"resourceType\":\"T\",\"v\":\"abc1\",\"n\":2}").valid);
  cr_expect(!vt_check(tv, "{\"resourceType\":\"T\",\"v\":\"abd1\"}").valid);
  cr_expect(!vt_check(tv, "{\"resourceType\":\"T\",\"n\":2.5}").valid);
  /* A oneOf of one branch accepts non-objects, as JSON Schema does. */
  cr_expect(vt_check(tv, "5").valid);
  hl_validator_free(tv);
  hl_fschema_free(s);
}

Test(validator_validate, missing_schema_file) {
  char err[256];
  hl_fschema *s = NULL;
  cr_expect_lt(hl_fschema_load("/nonexistent/fhir.schema.json", &s, err, sizeof err), 0);
  cr_expect_null(s);
  cr_expect_not_null(strstr(err, "nonexistent"));
}

/* Replays the fuzz seed corpus (tests/fuzz/corpus/validator, regressions
   included): no crash, a stable verdict, and an OperationOutcome that is
   valid JSON for each. */
Test(validator_validate, fuzz_corpus_replay, .init = setup, .fini = teardown) {
  DIR *d = opendir(HL_SOURCE_ROOT "/tests/fuzz/corpus/validator");
  cr_assert_not_null(d);
  struct dirent *de;
  int files = 0;
  hl_buf oo, in;
  hl_buf_init(&oo, 0);
  hl_buf_init(&in, 1 << 20);
  while ((de = readdir(d))) {
    if (de->d_name[0] == '.') continue;
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", HL_SOURCE_ROOT "/tests/fuzz/corpus/validator", de->d_name);
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "%s", path);
    hl_buf_reset(&in);
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) cr_assert_eq(hl_buf_append(&in, chunk, n), 0);
    fclose(f);
    hl_vresult r1, r2;
    cr_assert_eq(hl_validator_check(v, in.data, in.len, &r1), 0);
    cr_assert_eq(hl_validator_check(v, in.data, in.len, &r2), 0);
    cr_expect_eq(r1.valid, r2.valid, "%s", de->d_name);
    if (!strncmp(de->d_name, "valid_", 6)) cr_expect(r1.valid, "%s", de->d_name);
    hl_buf_reset(&oo);
    cr_assert_eq(hl_validator_outcome(v, &oo), 0);
    json_t *j = json_loadb(oo.data, oo.len, 0, NULL);
    cr_expect_not_null(j, "%s: outcome is not JSON: %s", de->d_name, oo.data);
    json_decref(j);
    files++;
  }
  closedir(d);
  cr_expect_gt(files, 10);
  hl_buf_free(&oo);
  hl_buf_free(&in);
}

/*
 * Property lookup (hl__fschema_prop compares names a word at a time): every
 * property of every definition of the official schema is found under its
 * own definition, and a copy with any one byte changed is not (unless the
 * change happens to spell another property of that definition).
 */
Test(validator_validate, every_property_is_found_and_no_near_miss, .init = setup, .fini = teardown) {
  char buf[256];
  size_t checked = 0;
  for (uint32_t i = 0; i < fs->nprops; i++) {
    const hl__fprop *p = &fs->props[i];
    cr_assert_lt(p->len, sizeof buf);
    memcpy(buf, p->name, p->len);
    cr_assert_eq(hl__fschema_prop(fs, p->def, buf, p->len), p, "%.*s", (int)p->len, p->name);
    for (uint32_t k = 0; k < p->len; k++) {
      buf[k] ^= 0x20;
      const hl__fprop *q = hl__fschema_prop(fs, p->def, buf, p->len);
      cr_assert(q == NULL || (q != p && q->len == p->len && memcmp(q->name, buf, p->len) == 0),
                "%.*s with byte %u changed", (int)p->len, p->name, k);
      buf[k] ^= 0x20;
      checked++;
    }
  }
  cr_assert_gt(checked, 10000);
}
