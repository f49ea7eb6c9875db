/*
 * hl_validator: validates one FHIR R4 resource (JSON bytes) against a
 * compiled schema and, optionally, a profile, in a single pass over the
 * bytes: a strict JSON scanner (RFC 8259, UTF-8 checked) drives the
 * compiled schema directly, without building a tree. Every issue found is
 * collected with its location in FHIRPath style
 * (Patient.name[0].given[1]), up to a cap, and can be written out as an
 * OperationOutcome.
 *
 * A validator holds scratch memory reused across calls (issues, path,
 * unescaped strings): after warm-up, validating a resource allocates
 * nothing. One validator per thread; the schema and profile it borrows
 * may be shared and must outlive it.
 *
 * Typical use, one Kafka message at a time:
 *
 *   hl_vresult r;
 *   hl_validator_check(v, msg, len, &r);
 *   if (r.valid) forward(msg);
 *   else { hl_buf_reset(&oo); hl_validator_outcome(v, &oo); reject(msg, "invalid", oo.data); }
 */
#ifndef HL_VALIDATOR_VALIDATE_H
#define HL_VALIDATOR_VALIDATE_H

#include <stdbool.h>
#include <stddef.h>

#include "hl/buf.h"
#include "profile.h"
#include "schema.h"

typedef struct hl_validator hl_validator;

/* Issue severities, as OperationOutcome.issue.severity. */
typedef enum hl_vsev {
  HL_VSEV_FATAL = 0,
  HL_VSEV_ERROR = 1,
  HL_VSEV_WARNING = 2,
  HL_VSEV_INFORMATION = 3,
} hl_vsev;

/* "fatal", "error", "warning", "information". */
const char *hl_vsev_name(hl_vsev s);

typedef struct hl_vissue {
  hl_vsev severity;
  const char *code;     /* issue type: structure, required, value, invalid, too-long, business-rule, ... */
  const char *rule;     /* id of the profile rule, NULL for the schema and the JSON syntax */
  const char *text;     /* details.text */
  const char *location; /* FHIRPath expression of the element */
} hl_vissue;

typedef struct hl_validator_opts {
  size_t max_issues;  /* issues kept per resource (more are counted); 0: 100 */
  unsigned max_depth; /* JSON nesting; deeper is a fatal issue; 0: 64, at most 1024 */
  size_t max_bytes;   /* larger resources are rejected unread; 0: 16 MiB */
} hl_validator_opts;

typedef struct hl_vresult {
  bool valid;           /* no fatal or error issue */
  size_t errors;        /* fatal + error issues found (also those past max_issues) */
  size_t warnings;      /* warning + information issues found */
  size_t nissues;       /* issues kept */
  char resource_type[64]; /* the resource type when known, else "" */
} hl_vresult;

/*
 * Creates a validator. schema must not be NULL; profile may be NULL
 * (schema only). opts may be NULL for defaults. 0, -ENOMEM or -EINVAL.
 */
int hl_validator_new(const hl_fschema *schema, const hl_profile *profile,
                     const hl_validator_opts *opts, hl_validator **out);
hl_validator *hl_validator_free(hl_validator *v);

/*
 * Replaces the profile (NULL: schema only) for the following checks. The
 * profile must be compiled against the validator's schema: 0 or -EINVAL.
 */
int hl_validator_set_profile(hl_validator *v, const hl_profile *profile);

/*
 * Validates json[0..len) as one resource and fills res. Returns 0, or
 * -ENOMEM when scratch memory could not grow (res then says invalid).
 * The issues stay readable until the next call.
 */
int hl_validator_check(hl_validator *v, const char *json, size_t len, hl_vresult *res);

/* The issues kept by the last check (*n of them). */
const hl_vissue *hl_validator_issues(const hl_validator *v, size_t *n);

/*
 * Appends the last check's OperationOutcome to out (JSON, one line): one
 * issue per kept issue (severity, code, details.text, details.coding with
 * the rule id when there is one, expression), plus an information issue
 * when issues were dropped, or a single information issue when there was
 * none. 0 or the hl_buf error.
 */
int hl_validator_outcome(const hl_validator *v, hl_buf *out);

#endif
