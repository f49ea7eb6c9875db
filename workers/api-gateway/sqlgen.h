/*
 * The SQL of reads and searches, written once for both read-side stores:
 * a search (hl_api_search) becomes a count and a page statement with every
 * value bound as a parameter ("?", in order; never spliced into the text).
 * The two dialects differ in where the curated tables live (SQLite: the
 * main schema; Snowflake: a schema name in front), in how :contains is
 * written (SQLite: instr(), Snowflake: LIKE with escapes) and in how a
 * multi-valued token parameter is searched (SQLite: the full-text terms of
 * curated_token_fts, each match confirmed in curated_token by raw_id;
 * Snowflake: the rows of its curated_token table); the rest (HL_LO / HL_HI,
 * TRUE / FALSE, coalesce) reads the same in both.
 */
#ifndef HL_API_SQLGEN_H
#define HL_API_SQLGEN_H

#include <stdbool.h>
#include <stdint.h>

#include "fhirtypes.h"
#include "hl/buf.h"
#include "query.h"

/* Most bound values in one statement; past it the statement fails with HL_ELIMIT. */
#define HL_SQL_MAX_BINDS 512

typedef enum { HL_SQLV_TEXT, HL_SQLV_INT, HL_SQLV_REAL } hl_sqlv_kind;

/* A bound value: its kind, its text (owned; numbers printed too) and its number. */
typedef struct hl_sqlv {
  hl_sqlv_kind kind;
  char *text;
  int64_t i;
  double d;
} hl_sqlv;

/* A statement under construction. */
typedef struct hl_sqlb {
  hl_buf sql;
  hl_sqlv v[HL_SQL_MAX_BINDS];
  int n;
  int err;              /* first error: -ENOMEM or HL_ELIMIT; later calls do nothing */
  const char *schema;   /* "" (SQLite) or the schema of the curated tables */
  bool contains_like;   /* :contains as LIKE (Snowflake) instead of instr() (SQLite) */
  bool token_fts;       /* token side parameters through curated_token_fts (SQLite) */
} hl_sqlb;

/*
 * A statement over the curated tables of schema ("" : the main schema) that
 * reads token side parameters from the curated_token table (Snowflake).
 */
void hl_sqlb_init(hl_sqlb *b, const char *schema, bool contains_like);
/* A statement of the SQLite dialect: main schema, instr() and token_fts. */
void hl_sqlb_init_sqlite(hl_sqlb *b);
void hl_sqlb_free(hl_sqlb *b);
void hl_sqlb_put(hl_sqlb *b, const char *s);
/* Appends "?" and binds a value (text copied; NULL binds SQL NULL). */
void hl_sqlb_text(hl_sqlb *b, const char *s);
void hl_sqlb_int(hl_sqlb *b, int64_t v);
void hl_sqlb_real(hl_sqlb *b, double v);
/* Appends a table name, with the schema in front when there is one. */
void hl_sqlb_table(hl_sqlb *b, const char *name);

/* "SELECT t.id, t.version_id, t.last_updated, t.resource, <key>, <patient column or NULL>". */
void hl_sql_select_cols(hl_sqlb *b, const hl_api_type_def *t, const char *key);
/* "SELECT count(*) FROM <table> t WHERE ..." of a search. */
void hl_sql_search_count(hl_sqlb *b, const char *tenant, const hl_api_search *q);
/*
 * One page of a search in its sort order (or reversed, for a cursor that
 * pages backwards), count + 1 rows so that the caller sees whether more
 * follow; *key_is_int tells whether the sort key column is a number.
 */
void hl_sql_search_page(hl_sqlb *b, const char *tenant, const hl_api_search *q, bool *key_is_int);

#endif
