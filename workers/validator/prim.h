/*
 * Hand-written checkers for the patterns of FHIR R4's JSON Schema.
 *
 * fhir.schema.json expresses each primitive type (id, date, dateTime, ...)
 * as a JavaScript regular expression. JSON Schema validators such as ajv
 * evaluate them with JavaScript semantics (no "u" flag): \s is the
 * ECMAScript white-space set, ^ and $ anchor at the ends of the whole
 * string. Each checker here reproduces exactly one of those patterns on a
 * UTF-8 string (already unescaped), in one pass, without a regex engine.
 * Patterns the table does not know fall back to POSIX regcomp() after a
 * translation of the JavaScript escapes (see hl_prim_regex_translate).
 */
#ifndef HL_VALIDATOR_PRIM_H
#define HL_VALIDATOR_PRIM_H

#include <stdbool.h>
#include <stddef.h>

typedef enum hl_prim {
  HL_PRIM_NONE = 0,
  HL_PRIM_BOOLEAN,     /* ^true|false$ (only ever applied to strings) */
  HL_PRIM_URI,         /* ^\S*$ (uri, url, canonical) */
  HL_PRIM_CODE,        /* ^[^\s]+(\s[^\s]+)*$ */
  HL_PRIM_DATE,
  HL_PRIM_DATETIME,
  HL_PRIM_INSTANT,
  HL_PRIM_TIME,
  HL_PRIM_DECIMAL,     /* ^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?$ */
  HL_PRIM_INTEGER,     /* ^-?([0]|([1-9][0-9]*))$ */
  HL_PRIM_POSITIVEINT, /* ^[1-9][0-9]*$ */
  HL_PRIM_UNSIGNEDINT, /* ^[0]|([1-9][0-9]*)$ */
  HL_PRIM_ID,          /* ^[A-Za-z0-9\-\.]{1,64}$ */
  HL_PRIM_STRING,      /* ^[ \r\n\t\S]+$ (string, markdown) */
  HL_PRIM_OID,         /* ^urn:oid:[0-2](\.(0|[1-9][0-9]*))+$ */
  HL_PRIM_UUID,        /* ^urn:uuid:[0-9a-f]{8}-...-[0-9a-f]{12}$ */
  HL_PRIM_BASE64,      /* ^(\s*([0-9a-zA-Z\+/=]){4}\s*)+$ */
  HL_PRIM__COUNT
} hl_prim;

/* The checker for a pattern string written exactly as in fhir.schema.json, or HL_PRIM_NONE. */
hl_prim hl_prim_for_pattern(const char *pattern);
/* The pattern text of a checker (NULL for HL_PRIM_NONE). */
const char *hl_prim_pattern(hl_prim p);
/* A short name ("dateTime", "id", ...) for messages. */
const char *hl_prim_name(hl_prim p);

/* Whether s[0..n) (UTF-8, unescaped) matches the checker's pattern. */
bool hl_prim_check(hl_prim p, const char *s, size_t n);

/*
 * Whether the code point that starts at s[i] is ECMAScript white space
 * (\s of a JavaScript regex). *len gets its length in bytes (1 for an
 * invalid sequence). s must hold n bytes.
 */
bool hl_prim_js_space(const unsigned char *s, size_t n, size_t i, size_t *len);

/*
 * Translates a JavaScript pattern to a POSIX extended regex: \s, \S and \d
 * outside brackets, escaped punctuation, and \t \r \n in brackets. Fails
 * (returns -EINVAL) on constructs POSIX cannot express, such as \S inside
 * brackets. The translation is ASCII-only: it is used as a fallback for
 * unknown patterns and to cross-check the hand-written checkers.
 */
int hl_prim_regex_translate(const char *js, char *out, size_t outlen);

/*
 * For the date-like checkers (date, dateTime, instant): reads year, month
 * and day of a string that passed hl_prim_check (month/day 0 when absent).
 */
void hl_prim_date_parts(const char *s, size_t n, int *year, int *month, int *day);

#endif
