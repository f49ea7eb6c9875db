/*
 * jscan: a fast, one-pass JSON validator (RFC 8259, strict UTF-8) that also
 * picks out the values of chosen top-level keys of an object, without
 * building a tree.
 *
 * It is the hot path of the parser: every NDJSON line is checked once, and
 * the key of its Kafka message (resourceType, id) comes from the same pass.
 * The bytes themselves travel on unchanged. Strings are checked for valid
 * escapes, valid UTF-8 (no overlong forms, no surrogates, nothing above
 * U+10FFFF) and paired \u surrogate escapes; numbers follow the JSON grammar;
 * nesting is capped.
 */
#ifndef HL_JSCAN_H
#define HL_JSCAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum hl_jscan_kind {
  HL_JSCAN_NONE = 0,
  HL_JSCAN_OBJECT,
  HL_JSCAN_ARRAY,
  HL_JSCAN_STRING,
  HL_JSCAN_NUMBER,
  HL_JSCAN_TRUE,
  HL_JSCAN_FALSE,
  HL_JSCAN_NULL,
} hl_jscan_kind;

typedef enum hl_jscan_error {
  HL_JSCAN_OK = 0,
  HL_JSCAN_ESYNTAX,    /* not JSON */
  HL_JSCAN_ETRUNCATED, /* the input ended inside a value */
  HL_JSCAN_EUTF8,      /* invalid UTF-8 or an unpaired surrogate escape */
  HL_JSCAN_EDEPTH,     /* nested deeper than max_depth */
  HL_JSCAN_EEMPTY,     /* only whitespace */
} hl_jscan_error;

/* A top-level key to look for (set key), and what was found (the rest). */
typedef struct hl_jscan_field {
  const char *key;     /* in: the key, plain ASCII */
  hl_jscan_kind kind;  /* out: kind of the value, NONE when absent */
  const char *val;     /* out: for strings, the bytes between the quotes, still escaped */
  size_t len;          /* out: their length */
  bool escaped;        /* out: the string contains backslash escapes */
} hl_jscan_field;

typedef struct hl_jscan_result {
  hl_jscan_kind top;      /* kind of the top-level value */
  hl_jscan_error error;   /* HL_JSCAN_OK when valid */
  size_t offset;          /* byte offset of the error */
  const char *message;    /* static text describing the error */
} hl_jscan_result;

/*
 * Validates s[0..n) as exactly one JSON value with optional surrounding
 * whitespace. When the value is an object, fills fields[] (which may be
 * NULL when nfields is 0) from its top-level keys (the last occurrence wins).
 * max_depth of 0 means 512. Returns 0 when valid, HL_EPARSE otherwise; res
 * is always filled.
 */
int hl_jscan(const char *s, size_t n, unsigned max_depth, hl_jscan_field *fields, size_t nfields,
             hl_jscan_result *res);

/* Name of an error kind: "syntax", "truncated", "utf8", "depth", "empty". */
const char *hl_jscan_error_name(hl_jscan_error e);

/*
 * A tape: one node per value of the document in document order (a
 * container before its members or elements), so that later lookups jump
 * over whole values instead of scanning their bytes again. Offsets are
 * byte offsets into the scanned text.
 */
typedef struct hl_jscan_node {
  uint32_t key, klen; /* an object member's key (between the quotes, still escaped); klen 0 otherwise */
  uint32_t start, end; /* the value's bytes [start, end) */
  uint32_t next;       /* index of the first node after this value (and all it contains) */
} hl_jscan_node;

typedef struct hl_jscan_tape {
  hl_jscan_node *nodes; /* in: room for cap nodes (owned by the caller) */
  size_t cap;
  size_t n; /* out: the number of values of the document (nodes[] holds them when n <= cap) */
} hl_jscan_tape;

/*
 * hl_jscan_build_tape(): hl_jscan() that also records the tape of a valid document: on success
 * tape->n is the number of values, and nodes[0..n) are filled when
 * n <= cap (otherwise nodes[] is unusable: grow it to n and scan again).
 * Inputs of 4 GiB or more get no tape (n > cap). Same return and res as
 * hl_jscan(); tape->n is meaningless on failure.
 */
int hl_jscan_build_tape(const char *s, size_t n, unsigned max_depth, hl_jscan_field *fields,
                        size_t nfields, hl_jscan_tape *tape, hl_jscan_result *res);

#endif

/*
 * Walking already-validated JSON without a tree. These functions assume
 * s[0..n) passed hl_jscan(); on other input they stop with HL_EPARSE but
 * never read out of bounds. Spans point into s.
 */

/* Calls cb for each member of the object s (key without quotes, still escaped;
   value span with surrounding whitespace trimmed). A negative return from cb
   stops the walk and is returned. */
int hl_jscan_members(const char *s, size_t n,
                     int (*cb)(void *ud, const char *key, size_t klen, const char *val, size_t vlen),
                     void *ud);
/* Calls cb for each element of the array s. */
int hl_jscan_elements(const char *s, size_t n,
                      int (*cb)(void *ud, size_t index, const char *val, size_t vlen), void *ud);

/*
 * Copies s to out, replacing the string value of every member named
 * "reference" (at any depth) for which map returns a replacement. map gets
 * the raw (escaped) bytes between the quotes and returns a NUL-terminated
 * replacement to write (JSON-escaped by this function) or NULL to keep the
 * value. Returns 0, HL_ELIMIT (out is full) or HL_EPARSE.
 */
struct hl_buf;
int hl_jscan_rewrite_refs(const char *s, size_t n,
                          const char *(*map)(void *ud, const char *val, size_t len), void *ud,
                          struct hl_buf *out);
