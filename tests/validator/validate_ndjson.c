/*
 * Test helper: validates NDJSON resources from stdin and prints one line
 * per input line: "valid" or "invalid", followed by a tab and the
 * OperationOutcome with --outcome.
 *
 *   validate_ndjson --schema fhir.schema.json [--profile profile.json] [--outcome]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hl/buf.h"
#include "profile.h"
#include "schema.h"
#include "validate.h"

int main(int argc, char **argv) {
  const char *schema_path = NULL, *profile_path = NULL;
  int outcome = 0;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--schema") && i + 1 < argc) schema_path = argv[++i];
    else if (!strcmp(argv[i], "--profile") && i + 1 < argc) profile_path = argv[++i];
    else if (!strcmp(argv[i], "--outcome")) outcome = 1;
    else {
      fprintf(stderr, "usage: %s --schema FILE [--profile FILE] [--outcome]\n", argv[0]);
      return 2;
    }
  }
  if (!schema_path) {
    fprintf(stderr, "--schema is required\n");
    return 2;
  }
  char err[512];
  hl_fschema *fs = NULL;
  hl_profile *pr = NULL;
  hl_validator *v = NULL;
  int rc = 1;
  if (hl_fschema_load(schema_path, &fs, err, sizeof err) < 0) {
    fprintf(stderr, "schema: %s\n", err);
    goto out;
  }
  if (profile_path && hl_profile_load(fs, profile_path, &pr, err, sizeof err) < 0) {
    fprintf(stderr, "profile: %s\n", err);
    goto out;
  }
  if (hl_validator_new(fs, pr, NULL, &v) < 0) goto out;
  hl_buf oo;
  hl_buf_init(&oo, 0);
  char *line = NULL;
  size_t cap = 0;
  ssize_t n;
  while ((n = getline(&line, &cap, stdin)) >= 0) {
    if (n > 0 && line[n - 1] == '\n') n--;
    hl_vresult r;
    hl_validator_check(v, line, (size_t)n, &r);
    fputs(r.valid ? "valid" : "invalid", stdout);
    if (outcome) {
      hl_buf_reset(&oo);
      hl_validator_outcome(v, &oo);
      printf("\t%s", oo.data);
    }
    putchar('\n');
  }
  free(line);
  hl_buf_free(&oo);
  rc = 0;
out:
  hl_validator_free(v);
  hl_profile_free(pr);
  hl_fschema_free(fs);
  return rc;
}
