/* Unit tests of the profile rules (schemas/fhir/profile.json and the rule kinds). */
#include <jansson.h>
#include <stdlib.h>

#include "hl/error.h"
#include "validator_test.h"

HL_TEST_SUITE(validator_profile);

static hl_fschema *fs;
static hl_profile *pr;
static hl_validator *v;

static void setup(void) {
  fs = vt_schema();
  char err[256];
  cr_assert_eq(hl_profile_load(fs, HL_TEST_PROFILE, &pr, err, sizeof err), 0, "%s", err);
  cr_assert_eq(hl_validator_new(fs, pr, NULL, &v), 0);
}
static void teardown(void) {
  v = hl_validator_free(v);
  pr = hl_profile_free(pr);
  fs = hl_fschema_free(fs);
}

/* Compiles a profile from text; returns the result code (err filled). */
static int compile_text(const char *text, hl_profile **out, char *err, size_t errlen) {
  json_t *doc = json_loads(text, 0, NULL);
  cr_assert_not_null(doc, "bad test JSON: %s", text);
  int rc = hl_profile_compile(fs, doc, out, err, errlen);
  json_decref(doc);
  return rc;
}

#define PAT_OK "\"identifier\":[{\"value\":\"1\"}],\"name\":[{\"family\":\"S\"}],\"gender\":\"male\""

Test(validator_profile, shipped_profile_compiles, .init = setup, .fini = teardown) {
  cr_expect_str_eq(hl_profile_name(pr), "healthlake-core");
  cr_expect_gt(hl_profile_nrules(pr), 10);
}

Test(validator_profile, patient_required_elements, .init = setup, .fini = teardown) {
  hl_vresult r = vt_check(v, "{\"resourceType\":\"Patient\",\"name\":[{\"family\":\"S\"}]}");
  cr_expect(!r.valid);
  cr_expect_eq(r.nissues, 3);
  cr_expect_not_null(vt_issue_at(v, "Patient.identifier", "hl-patient-core"));
  cr_expect_not_null(vt_issue_at(v, "Patient.gender", "hl-patient-core"));
  const hl_vissue *is = vt_issue_at(v, "Patient.birthDate", "hl-patient-core");
  cr_assert_not_null(is);
  cr_expect_str_eq(is->code, "required");
  cr_expect_not_null(strstr(is->text, "A Patient needs"));
  /* birthDate only as an extension ("_birthDate") counts. */
  r = vt_check(v, "{\"resourceType\":\"Patient\"," PAT_OK ",\"_birthDate\":{\"extension\":[{\"url\":\"u\","
                  "\"valueString\":\"x\"}]}}");
  cr_expect(r.valid);
  /* Without the profile the same resource is valid. */
  hl_validator_set_profile(v, NULL);
  r = vt_check(v, "{\"resourceType\":\"Patient\"}");
  cr_expect(r.valid);
}

Test(validator_profile, references, .init = setup, .fini = teardown) {
  const char *pre = "{\"resourceType\":\"Observation\",\"status\":\"final\",\"code\":{\"text\":\"x\"},"
                    "\"subject\":{\"reference\":\"";
  const struct {
    const char *ref;
    bool ok;
  } cases[] = {
    {"Patient/123", true},
    {"Patient/123/_history/2", true},
    {"https://fhir.example.org/r4/Patient/abc", true},
    {"urn:uuid:c757873d-ec9a-4326-a141-556f43239520", true},
    {"#p1", true},
    {"Group/1", false},                 /* not an allowed target */
    {"https://x.org/Group/1", false},
    {"Patient", false},
    {"Patient/", false},
    {"Patient/a b", false},
    {"patient/1", false},
    {"Foo/1", false},
    {"x/Patient/1", false},
    {"urn:oid:1.2.3", false},            /* a form the profile does not allow */
    {"urn:uuid:not-a-uuid", false},
  };
  char buf[512];
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    snprintf(buf, sizeof buf, "%s%s\"}}", pre, cases[i].ref);
    hl_vresult r = vt_check(v, buf);
    cr_expect_eq(r.valid, cases[i].ok, "%s", cases[i].ref);
    if (!cases[i].ok) cr_expect_not_null(vt_issue_at(v, "Observation.subject.reference", NULL), "%s", cases[i].ref);
  }
  /* Reference.type decides when the reference itself does not name the type. */
  hl_vresult r = vt_check(v, "{\"resourceType\":\"Observation\",\"status\":\"final\",\"code\":{\"text\":\"x\"},"
                             "\"subject\":{\"reference\":\"#g\",\"type\":\"Group\"}}");
  cr_expect(!r.valid);
  cr_expect_not_null(vt_issue_at(v, "Observation.subject.reference", "hl-ref-observation-subject"));
  /* An array of references: every element is checked, with its index. */
  r = vt_check(v, "{\"resourceType\":\"Patient\"," PAT_OK ",\"birthDate\":\"2000\",\"generalPractitioner\":["
                  "{\"reference\":\"Practitioner/1\"},{\"reference\":\"Patient/2\"}]}");
  cr_expect(!r.valid);
  cr_expect_eq(r.nissues, 1);
  cr_expect_not_null(vt_issue_at(v, "Patient.generalPractitioner[1].reference", "hl-ref-practitioner"));
}

Test(validator_profile, ref_parse) {
  fs = vt_schema();
  const char *t;
  size_t tl;
  cr_expect_eq(hl_profile_ref_parse(fs, "Patient/1", 9, &t, &tl), HL_REF_RELATIVE);
  cr_expect_eq(tl, 7);
  cr_expect_eq(hl_profile_ref_parse(fs, "http://h/Encounter/e/_history/1", 31, &t, &tl), HL_REF_ABSOLUTE);
  cr_expect_eq(tl, 9);
  cr_expect_eq(strncmp(t, "Encounter", 9), 0);
  cr_expect_eq(hl_profile_ref_parse(fs, "#", 1, &t, &tl), HL_REF_CONTAINED);
  cr_expect_eq(hl_profile_ref_parse(fs, "urn:oid:1.2.3", 13, &t, &tl), HL_REF_URN_OID);
  cr_expect_eq(hl_profile_ref_parse(fs, "http://h", 8, &t, &tl), HL_REF_INVALID);
  cr_expect_eq(hl_profile_ref_parse(fs, "Patient/1?x=1", 13, &t, &tl), HL_REF_INVALID);
  fs = hl_fschema_free(fs);
}

Test(validator_profile, calendar_dates, .init = setup, .fini = teardown) {
  cr_expect(hl_profile_calendar_ok(2020, 2, 29));
  cr_expect(!hl_profile_calendar_ok(2021, 2, 29));
  cr_expect(!hl_profile_calendar_ok(1900, 2, 29));
  cr_expect(hl_profile_calendar_ok(2000, 2, 29));
  cr_expect(!hl_profile_calendar_ok(2021, 4, 31));
  cr_expect(hl_profile_calendar_ok(2021, 12, 31));
  cr_expect(hl_profile_calendar_ok(2021, 0, 0));
  cr_expect(hl_profile_calendar_ok(2021, 6, 0));
  hl_vresult r = vt_check(v, "{\"resourceType\":\"Patient\"," PAT_OK ",\"birthDate\":\"2021-02-29\","
                             "\"deceasedDateTime\":\"2022-04-31T10:00:00Z\",\"meta\":{\"lastUpdated\":"
                             "\"2023-06-31T00:00:00Z\"}}");
  cr_expect(!r.valid);
  cr_expect_eq(r.nissues, 3);
  cr_expect_not_null(vt_issue_at(v, "Patient.birthDate", "hl-date-calendar"));
  cr_expect_not_null(vt_issue_at(v, "Patient.deceasedDateTime", "hl-date-calendar"));
  cr_expect_not_null(vt_issue_at(v, "Patient.meta.lastUpdated", "hl-date-calendar"));
  r = vt_check(v, "{\"resourceType\":\"Patient\"," PAT_OK ",\"birthDate\":\"2020-02-29\"}");
  cr_expect(r.valid);
}

Test(validator_profile, loinc_check_digit, .init = setup, .fini = teardown) {
  const char *good[] = {"8867-4", "2339-0", "8480-6", "85354-9", "29463-7", "718-7", "LP12345-6", "LA4489-6", "LA4489-0"};
  const char *bad[] = {"8867-5", "8867", "8867-", "-4", "88674", "12345678-0", "8867-44", "LX1-1", "8a67-4", "LA4489-x", "LA-1"};
  for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
    cr_expect(hl_profile_loinc_ok(good[i], strlen(good[i])), "%s", good[i]);
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    cr_expect(!hl_profile_loinc_ok(bad[i], strlen(bad[i])), "%s", bad[i]);
  hl_vresult r = vt_check(v, "{\"resourceType\":\"Observation\",\"status\":\"final\",\"subject\":{\"reference\":"
                             "\"Patient/1\"},\"code\":{\"coding\":[{\"system\":\"http://loinc.org\",\"code\":"
                             "\"8867-4\"},{\"system\":\"http://loinc.org\",\"code\":\"8867-3\"},{\"system\":"
                             "\"http://snomed.info/sct\",\"code\":\"8867-3\"}]}}");
  cr_expect(!r.valid);
  cr_expect_eq(r.nissues, 1);
  cr_expect_not_null(vt_issue_at(v, "Observation.code.coding[1].code", "hl-loinc-check-digit"));
}

Test(validator_profile, ucum_units, .init = setup, .fini = teardown) {
  const char *good[] = {"mg",  "mg/dL",  "kg/m2",     "mm[Hg]", "/min",     "{beats}/min", "%",      "10*3/uL",
                        "Cel", "[degF]", "kg.m-2",    "1",      "mL/min/{1.73_m2}", "ug/(24.h)", "[in_i]", "{tbl}",
                        "m+2", "[ppm]",  "10^6"};
  const char *bad[] = {"",       "mg per dL", "mg//dL", "(mg", "kg/",  "[mm",   "{a",   "\xc2\xb0""C",
                       "mg/dL ", "m-",        "a..b",   "()",  "[]",   "mg)",   "kg{a}{b}", "-2"};
  for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
    cr_expect(hl_profile_ucum_ok(good[i], strlen(good[i])), "%s", good[i]);
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    cr_expect(!hl_profile_ucum_ok(bad[i], strlen(bad[i])), "\"%s\"", bad[i]);
  hl_vresult r = vt_check(v, "{\"resourceType\":\"Observation\",\"status\":\"final\",\"subject\":{\"reference\":"
                             "\"Patient/1\"},\"code\":{\"text\":\"x\"},\"valueQuantity\":{\"value\":1,\"system\":"
                             "\"http://unitsofmeasure.org\",\"code\":\"mg per dL\"},\"component\":[{\"code\":"
                             "{\"text\":\"y\"},\"valueQuantity\":{\"value\":2,\"system\":\"http://other\","
                             "\"code\":\"mg per dL\"}}]}");
  cr_expect(!r.valid);
  cr_expect_eq(r.nissues, 1);
  cr_expect_not_null(vt_issue_at(v, "Observation.valueQuantity.code", "hl-ucum-unit"));
}

Test(validator_profile, json_rules, .init = setup, .fini = teardown) {
  hl_vresult r = vt_check(v, "{\"resourceType\":\"Patient\"," PAT_OK ",\"birthDate\":\"2000\","
                             "\"maritalStatus\":\"M\",\"multipleBirthInteger\":1.5,\"telecom\":[],"
                             "\"address\":[{\"city\":\"\"}],\"communication\":[{}]}");
  cr_expect(!r.valid);
  cr_expect_not_null(vt_issue_at(v, "Patient.maritalStatus", "hl-json-object"));
  cr_expect_not_null(vt_issue_at(v, "Patient.multipleBirthInteger", "hl-json-integer"));
  cr_expect_not_null(vt_issue_at(v, "Patient.telecom", "hl-json-empty"));
  cr_expect_not_null(vt_issue_at(v, "Patient.communication[0]", "hl-json-empty"));
  cr_expect_not_null(vt_issue_at(v, "Patient.address[0].city", NULL)); /* the schema refuses "" already */
  cr_expect_not_null(vt_issue_at(v, "Patient.communication[0].language", NULL));
  cr_expect_eq(r.nissues, 6, "got %zu", r.nissues);
  /* Nulls hold places in "_element" arrays. */
  r = vt_check(v, "{\"resourceType\":\"Patient\",\"identifier\":[{\"value\":\"1\"}],\"gender\":\"male\","
                  "\"birthDate\":\"2000\",\"name\":[{\"given\":[\"a\","
                  "\"b\"],\"_given\":[null,{\"extension\":[{\"url\":\"u\",\"valueCode\":\"c\"}]}]}]}");
  cr_expect(r.valid);
  r = vt_check(v, "{\"resourceType\":\"Patient\"," PAT_OK ",\"birthDate\":\"2000\",\"photo\":[null]}");
  cr_expect(!r.valid);
  r = vt_check(v, "{\"resourceType\":\"Patient\"," PAT_OK ",\"birthDate\":\"2000\",\"multipleBirthInteger\":"
                  "2147483648}");
  cr_expect(!r.valid);
}

Test(validator_profile, severity_warning_keeps_valid, .init = setup, .fini = teardown) {
  hl_profile *w = NULL;
  char err[256];
  cr_assert_eq(compile_text("{\"profile\":\"w\",\"rules\":[{\"id\":\"w1\",\"kind\":\"required\",\"on\":\"Patient\","
                            "\"elements\":[\"gender\"],\"severity\":\"warning\",\"code\":\"business-rule\","
                            "\"message\":\"gender please\"},{\"id\":\"off\",\"kind\":\"required\",\"on\":\"Patient\","
                            "\"elements\":[\"name\"],\"enabled\":false,\"message\":\"m\"}]}",
                            &w, err, sizeof err),
               0, "%s", err);
  cr_expect_eq(hl_profile_nrules(w), 1);
  hl_validator_set_profile(v, w);
  hl_vresult r = vt_check(v, "{\"resourceType\":\"Patient\"}");
  cr_expect(r.valid);
  cr_expect_eq(r.warnings, 1);
  cr_expect_eq(r.nissues, 1);
  const hl_vissue *is = vt_issue_at(v, "Patient.gender", "w1");
  cr_assert_not_null(is);
  cr_expect_eq(is->severity, HL_VSEV_WARNING);
  cr_expect_str_eq(is->code, "business-rule");
  hl_validator_set_profile(v, NULL);
  hl_profile_free(w);
}

Test(validator_profile, path_rules_on_backbone_elements, .init = setup, .fini = teardown) {
  hl_profile *p2 = NULL;
  char err[256];
  cr_assert_eq(compile_text("{\"rules\":[{\"id\":\"c1\",\"kind\":\"required\",\"on\":\"Observation.component\","
                            "\"elements\":[\"value[x]\"],\"message\":\"m\"}]}",
                            &p2, err, sizeof err),
               HL_EPARSE);
  cr_assert_eq(compile_text("{\"rules\":[{\"id\":\"c1\",\"kind\":\"required\",\"on\":\"Observation.component\","
                            "\"elements\":[\"valueQuantity\"],\"message\":\"component needs a quantity\"}]}",
                            &p2, err, sizeof err),
               0, "%s", err);
  hl_validator_set_profile(v, p2);
  hl_vresult r = vt_check(v, "{\"resourceType\":\"Observation\",\"code\":{\"text\":\"x\"},\"component\":["
                             "{\"code\":{\"text\":\"a\"},\"valueQuantity\":{\"value\":1}},{\"code\":{\"text\":\"b\"}}]}");
  cr_expect(!r.valid);
  cr_expect_eq(r.nissues, 1);
  cr_expect_not_null(vt_issue_at(v, "Observation.component[1].valueQuantity", "c1"));
  hl_validator_set_profile(v, NULL);
  hl_profile_free(p2);
}

Test(validator_profile, bad_profiles_are_refused, .init = setup, .fini = teardown) {
  const struct {
    const char *text, *err;
  } cases[] = {
    {"{\"rules\":[{\"id\":\"a\",\"kind\":\"nope\",\"message\":\"m\"}]}", "unknown kind"},
    {"{\"rules\":[{\"id\":\"a\",\"kind\":\"required\",\"on\":\"Patient\",\"elements\":[\"nope\"],\"message\":\"m\"}]}",
     "no element"},
    {"{\"rules\":[{\"id\":\"a\",\"kind\":\"required\",\"on\":\"Nope\",\"elements\":[\"x\"],\"message\":\"m\"}]}",
     "not a complex type"},
    {"{\"rules\":[{\"id\":\"a\",\"kind\":\"calendar-date\",\"message\":\"m\",\"colour\":1}]}", "unknown member"},
    {"{\"rules\":[{\"id\":\"a\",\"kind\":\"calendar-date\",\"message\":\"m\"},"
     "{\"id\":\"a\",\"kind\":\"json-empty\",\"message\":\"m\"}]}",
     "twice"},
    {"{\"rules\":[{\"id\":\"a\",\"kind\":\"reference-target\",\"on\":\"Observation.subject\",\"types\":[\"Nope\"],"
     "\"message\":\"m\"}]}",
     "not a resource type"},
    {"{\"rules\":[{\"id\":\"a\",\"kind\":\"json-empty\",\"message\":\"m\",\"severity\":\"loud\"}]}", "severity"},
    {"{\"rules\":[{\"id\":\"a\",\"kind\":\"json-empty\"}]}", "message"},
    {"{\"rules\":{}}", "rules"},
    {"{\"rules\":[],\"extra\":1}", "extra"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    hl_profile *bad = NULL;
    char err[256] = "";
    cr_expect_eq(compile_text(cases[i].text, &bad, err, sizeof err), HL_EPARSE, "case %zu", i);
    cr_expect_null(bad);
    cr_expect_not_null(strstr(err, cases[i].err), "case %zu: %s", i, err);
  }
}
