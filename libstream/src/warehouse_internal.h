/*
 * Internals shared by the warehouse front (warehouse.c) and its backends
 * (warehouse_sqlite.c): the batch layout, the parsed column contract, the
 * parsed job-status event and the backend vtable.
 */
#ifndef HL_WAREHOUSE_INTERNAL_H
#define HL_WAREHOUSE_INTERNAL_H

#include <stdint.h>

#include "hl/buf.h"
#include "hl/jscan.h"
#include "hl/warehouse.h"

#define HL__WH_NONE SIZE_MAX /* offset of an absent string */

/* A row of a batch: strings are offsets into the batch arena (NUL-terminated there). */
typedef struct hl__wh_rec {
  size_t tenant, type, id, json, job, source, ingested_at, topic;
  size_t json_len;
  size_t version_id, last_updated; /* from meta, HL__WH_NONE when absent */
  int64_t line, offset;
  int32_t partition;
  hl_wh_row_status status;
  bool rejected_at_add;
  const char *code; /* static text */
  size_t detail;    /* offset, HL__WH_NONE when none */
  unsigned char key[32];
} hl__wh_rec;

/* Values a backend extracted from rows as they were added (hl_wh_batch_use); its own layout. */
typedef struct hl__wh_prep hl__wh_prep;
struct hl__wh_backend;

struct hl_wh_batch {
  hl_buf arena;
  /* hl_wh_batch_use: the backend that extracts each added row, and its state. */
  const struct hl__wh_backend *prep_be;
  void *prep_state;
  hl__wh_prep *prep;
  hl__wh_rec *recs;
  size_t n, cap, max_rows;
  size_t *events; /* arena offsets of event JSON */
  size_t *event_lens;
  size_t nevents, events_cap;
  void *md;       /* EVP_MD_CTX */
  void *sha256;   /* EVP_MD, fetched once */
  /*
   * The tape of the last resource hl_jscan_build_tape() checked (offsets
   * into its bytes, the same in the arena's copy), for row tape_row
   * (SIZE_MAX: none): the backend's prep_row walks it instead of the text.
   */
  hl_jscan_tape tape;
  size_t tape_row;
  /* Filled at commit. */
  int64_t batch_id;
  uint64_t events_folded, events_skipped;
  hl_wh_count *counts;
  size_t ncounts;
};

static inline const char *hl__wh_str(const hl_wh_batch *b, size_t off) {
  return off == HL__WH_NONE ? NULL : b->arena.data + off;
}

/* ---- Contract -------------------------------------------------------------------- */

typedef struct hl__wh_col {
  char *name, *type, *path, *transform; /* path/transform may be NULL */
  bool nullable;
  bool from_row; /* filled from the row, not the resource */
} hl__wh_col;

typedef struct hl__wh_param {
  char *param, *table, *path, *system, *code; /* system/code: token sub-paths */
} hl__wh_param;

typedef struct hl__wh_table {
  char *rtype, *table;
  hl__wh_col *cols; /* common columns first */
  size_t ncols;
  hl__wh_param *params;
  size_t nparams;
} hl__wh_table;

typedef struct hl__wh_side {
  char *table;
  hl__wh_col *cols;
  size_t ncols;
} hl__wh_side;

typedef struct hl__wh_contract {
  hl__wh_table *tables;
  size_t ntables;
  hl__wh_side *sides;
  size_t nsides;
  char *types_json; /* logical type -> {"sqlite": ...} as JSON text */
} hl__wh_contract;

/* Parses the embedded contract. 0, -ENOMEM or HL_WH_ESCHEMA (message in err). */
int hl__wh_contract_load(hl__wh_contract **out, char *err, size_t errlen);
void hl__wh_contract_free(hl__wh_contract *c);
/* The SQL type of a logical type for a backend ("sqlite"), NULL when unknown. */
const char *hl__wh_contract_sql_type(const hl__wh_contract *c, const char *logical,
                                     const char *backend);

/* ---- Contract paths in C (warehouse_extract.c) ---------------------------------- */

/*
 * A compiled contract path ('a.b[0].c', '[*]', 'a | b', '$this'), evaluated
 * over a resource that hl_jscan() validated, with the semantics of SQLite's
 * json_extract/json_each (see warehouse_extract.c).
 */
typedef struct hl__wh_xpath hl__wh_xpath;

#define HL__WH_STEP_KEY (-1)
#define HL__WH_STEP_STAR (-2)
typedef struct hl__wh_step {
  long index; /* HL__WH_STEP_KEY, HL__WH_STEP_STAR or an array index */
  const char *key; /* borrowed from the path text, which must outlive the xpath */
  size_t klen;
} hl__wh_step;

#define HL__WH_DOC_TOP 64
#define HL__WH_DOC_SLOTS 64 /* a power of two; hashed when a third or more stays free */
typedef struct hl__wh_member {
  const char *key;
  size_t klen;
  const char *val;
  size_t vlen;
} hl__wh_member;

/*
 * A resource: with its tape (hl_jscan_build_tape(), every lookup jumps
 * over values without reading them), or else with its top-level members
 * indexed once (first occurrence of a key) and the rest walked as text.
 */
typedef struct hl__wh_doc {
  const char *s;
  size_t n;
  const hl_jscan_node *t; /* the tape, NULL without one */
  size_t nt;
  /* With a tape: the top-level members' nodes by a hash of their key (0: empty), if hashed. */
  uint32_t slot[HL__WH_DOC_SLOTS];
  bool hashed;
  hl__wh_member top[HL__WH_DOC_TOP];
  size_t ntop;
  bool indexed; /* false: more members than HL__WH_DOC_TOP, lookups walk the object */
} hl__wh_doc;

/* 0, HL_WH_ESCHEMA (bad path) or -ENOMEM. */
int hl__wh_xpath_compile(const char *path, hl__wh_xpath **out);
void hl__wh_xpath_free(hl__wh_xpath *x);
/* 0 or HL_EPARSE (not an object). */
int hl__wh_doc_init(hl__wh_doc *d, const char *s, size_t n);
/* The same with the tape t[0..nt) of s (borrowed; NULL: as hl__wh_doc_init). */
int hl__wh_doc_init_tape(hl__wh_doc *d, const char *s, size_t n, const hl_jscan_node *t, size_t nt);
/* The first non-null value of the first alternative that has one (COALESCE of json_extract). */
bool hl__wh_xpath_first(const hl__wh_xpath *x, const hl__wh_doc *d, const char **v, size_t *n);
/*
 * The same, from the value span s (a sub-path such as "system" of a
 * token); d (may be NULL) is the document s lies in, whose tape is used.
 */
bool hl__wh_xpath_sub(const hl__wh_xpath *x, const hl__wh_doc *d, const char *s, size_t sn,
                      const char **v, size_t *n);
/* Calls cb for every value of every alternative ([*] expands arrays); a non-zero cb stops. */
int hl__wh_xpath_each(const hl__wh_xpath *x, const hl__wh_doc *d,
                      int (*cb)(void *ud, const char *v, size_t n), void *ud);
/* Appends the unescaped text of a JSON string body (between the quotes) to out (NUL-terminated). */
int hl__wh_unescape(const char *s, size_t n, hl_buf *out);
/* Appends a JSON value without insignificant whitespace (as json_extract renders objects). */
int hl__wh_minify(const char *s, size_t n, hl_buf *out);

/* ---- Job-status events --------------------------------------------------------- */

typedef enum { HL__WH_ACCEPT, HL__WH_PARSE, HL__WH_VALIDATE, HL__WH_LOAD } hl__wh_stage;

typedef struct hl__wh_event {
  char org[65], job[257], uri[2049], event_id[257], state[16], code[129], detail[1025];
  hl__wh_stage stage;
  long long received, emitted, rejected; /* -1 when absent */
  bool has_event_id, failed;
} hl__wh_event;

/* Parses and checks one event (schemas/events/job-status.schema.json). 0 or HL_EPARSE. */
int hl__wh_event_parse(const char *json, size_t len, hl__wh_event *ev);

/* ---- Backends -------------------------------------------------------------------- */

typedef struct hl__wh_backend {
  const char *name;
  int (*open)(const hl_wh_opts *opts, const hl__wh_contract *c, hl_wh_stats *stats, void **state,
              char *err, size_t errlen);
  void (*close)(void *state);
  /* Writes the batch in one transaction, setting statuses, batch_id and event counts. */
  int (*commit)(void *state, hl_wh_batch *b);
  int (*job_get)(void *state, const char *tenant, const char *job, const char *uri, hl_wh_job *out);
  int (*get)(void *state, const char *table, const char *tenant, const char *id, char **json,
             size_t *len, char *version, size_t version_len);
  int (*checksum)(void *state, const char *table, char hex[65]);
  int (*count_rows)(void *state, const char *table, int64_t *n);
  /*
   * Optional: extracts what the commit will need from row i of b, just
   * added, into b->prep (created on first use), in the adding thread: it
   * may read only what open() set up, never what a commit changes. A
   * failure leaves the row to be extracted at commit. prep_reset empties
   * b->prep for the next batch; prep_free frees it.
   */
  int (*prep_row)(void *state, hl_wh_batch *b, size_t i);
  void (*prep_reset)(hl__wh_prep *p);
  void (*prep_free)(hl__wh_prep *p);
} hl__wh_backend;

extern const hl__wh_backend hl__wh_sqlite;
extern const hl__wh_backend hl__wh_snowflake; /* warehouse_snowflake.c */

/* Hex SHA-256 of data (65 bytes with NUL). */
void hl__wh_sha256_hex(const void *data, size_t len, char hex[65]);

#endif
