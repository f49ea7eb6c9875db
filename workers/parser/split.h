/*
 * hl-parser's splitter: turns the bytes of one landed object into FHIR
 * resources, one callback per resource, and one reject callback per piece of
 * bad input. It is fed in chunks (the object is streamed, never held whole,
 * except a single JSON document which is bounded by max_document_bytes).
 *
 * Formats:
 *   - NDJSON (.ndjson, .jsonl): one resource per line; blank lines are
 *     skipped. A line that is a Bundle is expanded like a Bundle file.
 *   - JSON (.json): one document, a resource or a Bundle, any layout.
 *   - gzip (.gz suffix on either): inflated first, several members allowed.
 * Bundles (collection, transaction, batch, searchset, history) are expanded
 * into their entries' resources; `urn:uuid:` (and absolute) fullUrls are
 * resolved the way a FHIR server resolves a transaction: an entry without
 * an id gets the uuid as id, and every `reference` to a fullUrl of the same
 * Bundle is rewritten to `Type/id`. Resource bytes are otherwise passed on
 * unchanged (numbers keep their exact text).
 *
 * Bad input never stops the stream: each malformed line, bad entry or
 * corrupt gzip member gives one reject with a code, a detail and the line
 * number, and splitting goes on with the next line.
 */
#ifndef HL_PARSER_SPLIT_H
#define HL_PARSER_SPLIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum hl_split_format { HL_SPLIT_NDJSON = 0, HL_SPLIT_JSON = 1 } hl_split_format;

typedef struct hl_split_opts {
  hl_split_format format;
  bool gzip;
  size_t max_line_bytes;     /* NDJSON line cap; default 4 MiB */
  size_t max_document_bytes; /* JSON document cap; default 64 MiB */
} hl_split_opts;

/* Chooses format and gzip from an object name; returns -1 for an unsupported name. */
int hl_split_opts_for_name(const char *name, hl_split_opts *opts);

typedef struct hl_split_record {
  const char *type;  /* resourceType, NUL-terminated */
  const char *id;    /* id, NUL-terminated, valid FHIR id */
  const char *json;  /* the resource */
  size_t len;
  uint64_t line;     /* 1-based line where the resource starts */
  long entry;        /* Bundle entry index, or -1 */
  size_t type_len;   /* strlen(type) */
  size_t id_len;     /* strlen(id) */
} hl_split_record;

typedef struct hl_split_reject {
  const char *code;   /* short stable code, see docs/parser.md */
  const char *detail; /* a sentence for people */
  uint64_t line;
  long entry;         /* Bundle entry index, or -1 */
  const char *raw;    /* the rejected bytes (a line may be cut at max_line_bytes) */
  size_t len;
} hl_split_reject;

typedef struct hl_split_cbs {
  /* Either may return a negative value to stop; the split call returns it. */
  int (*record)(void *ud, const hl_split_record *r);
  int (*reject)(void *ud, const hl_split_reject *r);
} hl_split_cbs;

typedef struct hl_split_stats {
  uint64_t records;
  uint64_t rejects;
  uint64_t lines;
  uint64_t bytes_in;  /* bytes fed (compressed when gzip) */
} hl_split_stats;

typedef struct hl_split hl_split;

/* opts may be NULL (NDJSON, defaults). Returns 0 or -ENOMEM. */
int hl_split_new(const hl_split_opts *opts, const hl_split_cbs *cbs, void *ud, hl_split **out);
hl_split *hl_split_free(hl_split *sp);
/* Feeds the next chunk. Returns 0, or a negative value a callback returned. */
int hl_split_feed(hl_split *sp, const void *data, size_t len);
/* Ends the object: flushes a last line without newline, the JSON document,
   and reports a gzip stream that ended early. */
int hl_split_finish(hl_split *sp);
const hl_split_stats *hl_split_get_stats(const hl_split *sp);

#endif
