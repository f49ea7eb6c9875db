/*
 * The query string and FHIR search parameters of a request.
 *
 * hl_api_query_parse splits a raw query string into decoded name/value
 * pairs (percent escapes and '+' decoded, caps on count and size).
 * hl_api_search_parse turns the pairs into a search of one type: clauses
 * (parameter, modifier, OR-list of parsed values; repeated parameters are
 * ANDed), the result parameters (_count, _sort, _summary, _include,
 * _format, _pretty) and the keyset cursor of a page. Both are pure: no I/O,
 * fuzzed by tests/fuzz/fuzz_api_query.c.
 */
#ifndef HL_API_QUERY_H
#define HL_API_QUERY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fhirtypes.h"

#define HL_API_MAX_PARAMS 64      /* name=value pairs in one query */
#define HL_API_MAX_VALUES 32      /* comma-separated values of one parameter */
#define HL_API_MAX_VALUE_BYTES 1024

typedef struct hl_api_kv {
  char *name;  /* decoded, NUL-terminated */
  char *value; /* decoded, NUL-terminated ("" when absent) */
} hl_api_kv;

typedef struct hl_api_query {
  size_t n;
  hl_api_kv kv[HL_API_MAX_PARAMS];
  char *arena; /* owns every string */
} hl_api_query;

/*
 * Parses the raw query (without '?'). 0, HL_EPARSE (bad escape, NUL, a
 * value over HL_API_MAX_VALUE_BYTES; message in err), HL_ELIMIT (more than
 * HL_API_MAX_PARAMS pairs), -ENOMEM. Clear q with hl_api_query_clear.
 */
int hl_api_query_parse(const char *raw, size_t len, hl_api_query *q, char *err, size_t errlen);
void hl_api_query_clear(hl_api_query *q);
/* The first value of name, NULL when absent. */
const char *hl_api_query_get(const hl_api_query *q, const char *name);

typedef enum hl_api_prefix {
  HL_PFX_EQ, HL_PFX_NE, HL_PFX_LT, HL_PFX_GT, HL_PFX_LE, HL_PFX_GE, HL_PFX_SA, HL_PFX_EB,
} hl_api_prefix;

typedef enum hl_api_modifier {
  HL_MOD_NONE, HL_MOD_MISSING, HL_MOD_CONTAINS, HL_MOD_NOT,
} hl_api_modifier;

/* One value of a clause (borrowed strings live in the search's arena). */
typedef struct hl_api_value {
  hl_api_prefix prefix;
  const char *text;   /* string: normalized prefix; token: code (NULL: any); reference: id */
  const char *system; /* token: system (NULL: any system, "" : no system) */
  int64_t lo, hi;     /* date: [lo, hi) in ms since 1970 UTC */
  double num, num_lo, num_hi; /* quantity: value and its precision range [lo, hi) */
  const char *unit;   /* quantity: unit code (NULL: any) */
  bool missing;       /* :missing=true */
} hl_api_value;

typedef struct hl_api_clause {
  const hl_api_param_def *def;
  hl_api_modifier modifier;
  size_t nvalues;
  hl_api_value values[HL_API_MAX_VALUES];
} hl_api_clause;

typedef enum hl_api_format { HL_FMT_FHIR_JSON, HL_FMT_JSON } hl_api_format;

/* The keyset position of a page: after (next) or before (previous) a row. */
typedef struct hl_api_cursor {
  int dir;          /* 0 none, 1 after, -1 before */
  bool key_is_int;
  int64_t key_int;  /* the sort key of the row (ints: dates as ms) */
  char *key_text;
  char *id;
} hl_api_cursor;

typedef struct hl_api_search {
  const hl_api_type_def *type;
  size_t nclauses;
  hl_api_clause *clauses;      /* malloc'ed */
  int count;                   /* page size */
  bool summary_count;          /* _summary=count */
  const hl_api_param_def *sort;/* NULL: by _id */
  bool sort_desc;
  bool include_patient;        /* _include=<Type>:patient|subject */
  hl_api_cursor cursor;
  /* Set by the caller, not by the parser: the SMART patient context. */
  const char *compartment_patient;
  char *arena;                 /* owns the strings of values and cursor */
} hl_api_search;

typedef struct hl_api_search_opts {
  int default_count; /* 0: 20 */
  int max_count;     /* 0: 100; a larger _count is capped to it */
} hl_api_search_opts;

/*
 * Builds the search of type t from q. Unknown parameters, unsupported
 * modifiers and malformed values are HL_EPARSE with a message for an
 * OperationOutcome. Result parameters that only shape the answer (_format,
 * _pretty) are accepted and ignored here. Clear s with hl_api_search_clear.
 */
int hl_api_search_parse(const hl_api_type_def *t, const hl_api_query *q,
                        const hl_api_search_opts *opts, hl_api_search *s, char *err, size_t errlen);
void hl_api_search_clear(hl_api_search *s);

/*
 * Parses a FHIR date, dateTime or instant ("2020", "2020-02", "2020-02-03",
 * "2020-02-03T04:05", "...:06", "...:06.789", with Z or +hh:mm; no zone =
 * UTC) into the range [lo, hi) of ms since 1970 UTC that its precision
 * covers. 0 or HL_EPARSE.
 */
int hl_api_date_range(const char *s, size_t len, int64_t *lo, int64_t *hi);
/* Formats ms since 1970 as "YYYY-MM-DDTHH:MM:SS.mmmZ" (out >= 32 bytes). */
void hl_api_format_instant(int64_t ms, char *out, size_t outlen);

/* Encodes a cursor as the value of the _cursor parameter (base64url; out >= 4*(keylen+idlen)/3+16). */
int hl_api_cursor_encode(int dir, bool key_is_int, int64_t key_int, const char *key_text,
                         const char *id, char *out, size_t outlen);

/* The allowed characters of a FHIR id: [A-Za-z0-9\-\.]{1,64}. */
bool hl_api_valid_id(const char *s);

#endif
