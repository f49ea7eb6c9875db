/*
 * hl_profile: Healthlake's own validation rules, read as data from a JSON
 * file (schemas/fhir/profile.json) and compiled against a schema.
 *
 * Each rule has an id, a kind (one of a fixed set of checks implemented
 * here, parameterized by the file), a target ("on": a type such as
 * "Patient" or a path such as "Observation.subject"), a severity, an
 * OperationOutcome issue code and a message. docs/validator.md lists the
 * kinds and their parameters. A compiled profile is immutable and may be
 * shared between validators and threads; it borrows the schema, which
 * must outlive it.
 */
#ifndef HL_VALIDATOR_PROFILE_H
#define HL_VALIDATOR_PROFILE_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "schema.h"

typedef struct hl_profile hl_profile;

#define HL_PROFILE_MAX_BYTES (4u << 20)
#define HL_PROFILE_MAX_RULES 4096u

/* Reads and compiles the profile file at path. 0, -errno, or HL_EPARSE with a message in err (may be NULL). */
int hl_profile_load(const hl_fschema *schema, const char *path, hl_profile **out, char *err,
                    size_t errlen);
/* Compiles an already-parsed profile document (borrowed). */
int hl_profile_compile(const hl_fschema *schema, const json_t *doc, hl_profile **out, char *err,
                       size_t errlen);
hl_profile *hl_profile_free(hl_profile *p);

/* Number of rules, and the name given by the document's "profile" member (never NULL). */
size_t hl_profile_nrules(const hl_profile *p);
const char *hl_profile_name(const hl_profile *p);

/* ---- The checks behind the rule kinds, usable on their own ---------------------- */

/* Whether year-month-day is a real Gregorian calendar date (month/day 0: absent). */
bool hl_profile_calendar_ok(int year, int month, int day);

/*
 * LOINC: "NNNNN-C" (1 to 7 digits) whose check digit C is the mod-10
 * (Luhn) digit of the number part. Part and answer codes (LA, LG, LL or
 * LP prefix, up to 8 digits) are checked for their form only.
 */
bool hl_profile_loinc_ok(const char *code, size_t n);

/* UCUM: the conservative grammar check described in docs/validator.md. */
bool hl_profile_ucum_ok(const char *code, size_t n);

/* Forms of a reference string. */
typedef enum hl_ref_form {
  HL_REF_INVALID = 0,
  HL_REF_RELATIVE = 1, /* Type/id[/_history/vid] */
  HL_REF_ABSOLUTE = 2, /* absolute: http(s) URL ending in Type/id[/_history/vid] */
  HL_REF_URN_UUID = 4, /* urn:uuid:... */
  HL_REF_URN_OID = 8,  /* urn:oid:... */
  HL_REF_CONTAINED = 16, /* #id */
} hl_ref_form;

/*
 * Classifies a reference string. For relative and absolute references,
 * type and tlen get the resource type (which must be a resource of schema)
 * and the id must be a FHIR id.
 */
hl_ref_form hl_profile_ref_parse(const hl_fschema *schema, const char *s, size_t n,
                                 const char **type, size_t *tlen);

#endif
