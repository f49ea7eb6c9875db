/*
 * Search SQL for both read-side stores (sqlgen.h). A FHIR date is compared
 * as a range [lo, hi) of milliseconds: HL_LO/HL_HI of the column (SQL
 * functions in SQLite, UDFs in Snowflake) against the value's range from
 * query.c, by prefix; quantities as a [num_lo, num_hi) range for eq/ne
 * and plain comparisons otherwise; multi-valued parameters (identifier,
 * codes, names) through the curated_token / curated_string side tables,
 * or on SQLite, for tokens, through the terms of curated_token_fts.
 */
#include "sqlgen.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hl/error.h"
#include "hl/warehouse.h"

/* 4-byte UTF-8 maximum: text || U+10FFFF bounds every string that starts with text. */
static const char utf8_max[] = "\xf4\x8f\xbf\xbf";

void hl_sqlb_init(hl_sqlb *b, const char *schema, bool contains_like) {
  memset(b, 0, sizeof *b);
  hl_buf_init(&b->sql, 1 << 20);
  b->schema = schema ? schema : "";
  b->contains_like = contains_like;
}

void hl_sqlb_init_sqlite(hl_sqlb *b) {
  hl_sqlb_init(b, "", false);
  b->token_fts = true;
}

void hl_sqlb_free(hl_sqlb *b) {
  for (int i = 0; i < b->n; i++)
    free(b->v[i].text);
  b->n = 0;
  hl_buf_free(&b->sql);
}

void hl_sqlb_put(hl_sqlb *b, const char *s) {
  if (!b->err && hl_buf_puts(&b->sql, s) < 0)
    b->err = -ENOMEM;
}

/* Binds one value; text is taken (freed on failure). */
static void bind_value(hl_sqlb *b, hl_sqlv v, bool is_null) {
  if (!b->err && b->n >= HL_SQL_MAX_BINDS)
    b->err = HL_ELIMIT;
  if (!b->err && !v.text && !is_null)
    b->err = -ENOMEM;
  if (b->err) {
    free(v.text);
    return;
  }
  b->v[b->n++] = v;
  hl_sqlb_put(b, "?");
}

void hl_sqlb_text(hl_sqlb *b, const char *s) {
  bind_value(b, (hl_sqlv){.kind = HL_SQLV_TEXT, .text = s ? strdup(s) : NULL}, !s);
}

void hl_sqlb_int(hl_sqlb *b, int64_t v) {
  char t[32];
  snprintf(t, sizeof t, "%" PRId64, v);
  bind_value(b, (hl_sqlv){.kind = HL_SQLV_INT, .text = strdup(t), .i = v}, false);
}

void hl_sqlb_real(hl_sqlb *b, double v) {
  char t[40];
  snprintf(t, sizeof t, "%.17g", v);
  bind_value(b, (hl_sqlv){.kind = HL_SQLV_REAL, .text = strdup(t), .d = v}, false);
}

void hl_sqlb_table(hl_sqlb *b, const char *name) {
  if (*b->schema)
    hl_sqlb_put(b, b->schema), hl_sqlb_put(b, ".");
  hl_sqlb_put(b, name);
}

#define put hl_sqlb_put
#define bind_text hl_sqlb_text
#define bind_int hl_sqlb_int

void hl_sql_select_cols(hl_sqlb *b, const hl_api_type_def *t, const char *key) {
  put(b, "SELECT t.id, t.version_id, t.last_updated, t.resource, "), put(b, key), put(b, ", ");
  if (t->patient_col)
    put(b, "t."), put(b, t->patient_col);
  else
    put(b, "NULL");
}

/* FHIR date prefixes: the value's range [v->lo, v->hi) against the target's [lo, hi). */
static void date_pred(hl_sqlb *b, const char *lo, const char *hi, const hl_api_value *v) {
  switch (v->prefix) {
  case HL_PFX_EQ:
  case HL_PFX_NE:
    put(b, v->prefix == HL_PFX_NE ? "NOT (" : "(");
    put(b, lo), put(b, " >= "), bind_int(b, v->lo), put(b, " AND "), put(b, hi), put(b, " <= "), bind_int(b, v->hi);
    put(b, ")");
    break;
  case HL_PFX_GT:
    put(b, hi), put(b, " > "), bind_int(b, v->hi);
    break;
  case HL_PFX_LT:
    put(b, lo), put(b, " < "), bind_int(b, v->lo);
    break;
  case HL_PFX_GE:
  case HL_PFX_LE: {
    bool ge = v->prefix == HL_PFX_GE;
    put(b, "("), put(b, ge ? hi : lo), put(b, ge ? " > " : " < "), bind_int(b, ge ? v->hi : v->lo);
    put(b, " OR ("), put(b, lo), put(b, " >= "), bind_int(b, v->lo), put(b, " AND "), put(b, hi), put(b, " <= ");
    bind_int(b, v->hi), put(b, "))");
    break;
  }
  case HL_PFX_SA:
    put(b, lo), put(b, " >= "), bind_int(b, v->hi);
    break;
  case HL_PFX_EB:
    put(b, hi), put(b, " <= "), bind_int(b, v->lo);
    break;
  }
}

static void quantity_pred(hl_sqlb *b, const char *col, const hl_api_value *v) {
  static const char *const ops[] = {[HL_PFX_GT] = " > ", [HL_PFX_SA] = " > ", [HL_PFX_LT] = " < ",
                                    [HL_PFX_EB] = " < ", [HL_PFX_GE] = " >= ", [HL_PFX_LE] = " <= "};
  put(b, "(");
  if (v->prefix == HL_PFX_EQ || v->prefix == HL_PFX_NE) {
    put(b, v->prefix == HL_PFX_NE ? "NOT (" : "(");
    put(b, col), put(b, " >= "), hl_sqlb_real(b, v->num_lo), put(b, " AND "), put(b, col), put(b, " < ");
    hl_sqlb_real(b, v->num_hi), put(b, ")");
  } else {
    put(b, col), put(b, ops[v->prefix]), hl_sqlb_real(b, v->num);
  }
  if (v->unit)
    put(b, " AND t.value_unit = "), bind_text(b, v->unit);
  put(b, ")");
}

/*
 * Binds the LIKE pattern of a substring: % _ and ! escaped with '!', an
 * escape character that reads the same in every SQL dialect (a backslash
 * is itself an escape in Snowflake's string literals).
 */
static void bind_like_contains(hl_sqlb *b, const char *s) {
  size_t n = strlen(s);
  char *p = malloc(2 * n + 3), *o = p;
  if (p) {
    *o++ = '%';
    for (; *s; s++) {
      if (*s == '%' || *s == '_' || *s == '!')
        *o++ = '!';
      *o++ = *s;
    }
    *o++ = '%';
    *o = 0;
  }
  bind_value(b, (hl_sqlv){.kind = HL_SQLV_TEXT, .text = p}, false);
}

/* Binds text || U+10FFFF, the upper bound of a prefix match. */
static void bind_prefix_end(hl_sqlb *b, const char *s) {
  size_t n = strlen(s);
  char *hi = malloc(n + sizeof utf8_max);
  if (hi)
    memcpy(hi, s, n), memcpy(hi + n, utf8_max, sizeof utf8_max);
  bind_value(b, (hl_sqlv){.kind = HL_SQLV_TEXT, .text = hi}, false);
}

/* "t.id [NOT] IN (SELECT id FROM <side table> WHERE tenant = ? AND type = ? AND param = ?" */
static void side_sql(hl_sqlb *b, const char *tenant, const hl_api_type_def *t, const hl_api_param_def *d,
                     bool negate) {
  put(b, negate ? "t.id NOT IN (SELECT id FROM " : "t.id IN (SELECT id FROM ");
  hl_sqlb_table(b, d->store == HL_SP_SIDE_TOKEN ? "curated_token" : "curated_string");
  put(b, " WHERE tenant = "), bind_text(b, tenant), put(b, " AND type = "), bind_text(b, t->type);
  put(b, " AND param = "), bind_text(b, d->col);
}

/* The values of a side-table parameter, OR'ed. */
static void side_values(hl_sqlb *b, const hl_api_clause *c) {
  bool tok = c->def->store == HL_SP_SIDE_TOKEN;
  for (size_t i = 0; i < c->nvalues; i++) {
    const hl_api_value *v = &c->values[i];
    if (i)
      put(b, " OR ");
    if (tok) {
      put(b, "(1 = 1");
      if (v->system)
        put(b, " AND system = "), bind_text(b, v->system);
      if (v->text)
        put(b, " AND code = "), bind_text(b, v->text);
      put(b, ")");
    } else if (c->modifier == HL_MOD_CONTAINS && b->contains_like) {
      put(b, "value LIKE "), bind_like_contains(b, v->text), put(b, " ESCAPE '!'");
    } else if (c->modifier == HL_MOD_CONTAINS) {
      put(b, "instr(value, "), bind_text(b, v->text), put(b, ") > 0");
    } else {
      /* A prefix match as a range, so that the index on value serves it. */
      put(b, "(value >= "), bind_text(b, v->text), put(b, " AND value < "), bind_prefix_end(b, v->text);
      put(b, ")");
    }
  }
}

/* Whether every value of a token clause has a code, hence a term or prefix ("system|" has none). */
static bool token_terms(const hl_api_clause *c) {
  for (size_t i = 0; i < c->nvalues; i++)
    if (!c->values[i].text)
      return false;
  return true;
}

/*
 * Binds the FTS5 query of a token clause whose values all have a code
 * (hl_wh_token_term): each value's exact term when it has a system (""
 * included), the prefix query of its code's part (k<16 digits>*, the code
 * under any system) otherwise; quoted, OR'ed.
 */
static void bind_token_match(hl_sqlb *b, const char *tenant, const hl_api_type_def *t,
                             const hl_api_clause *c) {
  /* Quotes, " *" and " OR " add 8 characters to a term. */
  char *q = malloc(c->nvalues * (HL_WH_TERM_LEN + 8) + 1), *o = q;
  for (size_t i = 0; q && i < c->nvalues; i++) {
    const hl_api_value *v = &c->values[i];
    char term[HL_WH_TERM_LEN + 1];
    hl_wh_token_term(tenant, t->type, c->def->col, v->system, v->text, term);
    o += sprintf(o, "%s\"%s\"%s", i ? " OR " : "", term, v->system ? "" : " *");
  }
  bind_value(b, (hl_sqlv){.kind = HL_SQLV_TEXT, .text = q}, false);
}

/*
 * A token side parameter on SQLite: the resources whose curated_token_fts
 * document holds a term of one of the values, each confirmed in curated_token
 * by its raw_id (a term is a hash: it narrows, the confirmation decides).
 * Every resource with a value has its terms, so :not is the negation of
 * the same: the confirmation runs for the candidates only. Without a term
 * for every value (a value "system|"), and for :missing, the confirmation
 * alone: a lookup by raw_id per row of the tenant's type.
 */
static void token_fts_sql(hl_sqlb *b, const char *tenant, const hl_api_type_def *t,
                          const hl_api_clause *c) {
  bool missing = c->modifier == HL_MOD_MISSING;
  bool negate = c->modifier == HL_MOD_NOT || (missing && c->values[0].missing);
  put(b, negate ? "NOT (" : "(");
  if (!missing && token_terms(c)) {
    put(b, "t.raw_id IN (SELECT rowid FROM curated_token_fts WHERE curated_token_fts MATCH ");
    bind_token_match(b, tenant, t, c);
    put(b, ") AND ");
  }
  put(b, "EXISTS (SELECT 1 FROM curated_token k WHERE k.raw_id = t.raw_id AND k.param = ");
  bind_text(b, c->def->col);
  if (!missing) {
    put(b, " AND (");
    side_values(b, c);
    put(b, ")");
  }
  put(b, "))");
}

/* One value of a parameter stored in a column of the curated table. */
static void column_value(hl_sqlb *b, const hl_api_param_def *d, const char *col, const hl_api_value *v) {
  switch (d->kind) {
  case HL_SP_TOKEN:
    /* A system given must be the column's own system (ids have none to check). */
    if (v->system && strcmp(d->name, "_id") && !(d->system && !strcmp(v->system, d->system)))
      put(b, "1 = 0");
    else if (v->text)
      put(b, col), put(b, " = "), bind_text(b, v->text);
    else
      put(b, col), put(b, " IS NOT NULL");
    break;
  case HL_SP_REFERENCE:
  case HL_SP_STRING:
    put(b, col), put(b, " = "), bind_text(b, v->text);
    break;
  case HL_SP_DATE: {
    char lo[128], hi[200];
    snprintf(lo, sizeof lo, "HL_LO(%s)", col);
    if (d->col_end)
      snprintf(hi, sizeof hi, "HL_HI(coalesce(t.%s, %s))", d->col_end, col);
    else
      snprintf(hi, sizeof hi, "HL_HI(%s)", col);
    date_pred(b, lo, hi, v);
    break;
  }
  case HL_SP_QUANTITY:
    quantity_pred(b, col, v);
    break;
  }
}

static void clause_sql(hl_sqlb *b, const char *tenant, const hl_api_type_def *t, const hl_api_clause *c) {
  const hl_api_param_def *d = c->def;
  char col[96];
  snprintf(col, sizeof col, "t.%s", d->col);
  bool side = d->store == HL_SP_SIDE_TOKEN || d->store == HL_SP_SIDE_STRING;
  if (d->store == HL_SP_SIDE_TOKEN && b->token_fts) {
    token_fts_sql(b, tenant, t, c);
    return;
  }
  if (c->modifier == HL_MOD_MISSING) {
    bool missing = c->values[0].missing;
    if (side)
      side_sql(b, tenant, t, d, missing), put(b, ")");
    else
      put(b, col), put(b, missing ? " IS NULL" : " IS NOT NULL");
    return;
  }
  if (side) {
    side_sql(b, tenant, t, d, c->modifier == HL_MOD_NOT);
    put(b, " AND (");
    side_values(b, c);
    put(b, "))");
    return;
  }
  put(b, c->modifier == HL_MOD_NOT ? "NOT coalesce((" : "(");
  for (size_t i = 0; i < c->nvalues; i++) {
    if (i)
      put(b, " OR ");
    column_value(b, d, col, &c->values[i]);
  }
  put(b, c->modifier == HL_MOD_NOT ? "), FALSE)" : ")");
}

/* " FROM <table> t WHERE ...": the conditions shared by the page and the count. */
static void from_where(hl_sqlb *b, const char *tenant, const hl_api_search *q) {
  put(b, " FROM "), hl_sqlb_table(b, q->type->table), put(b, " t WHERE t.tenant = "), bind_text(b, tenant);
  for (size_t i = 0; i < q->nclauses; i++) {
    put(b, " AND ");
    clause_sql(b, tenant, q->type, &q->clauses[i]);
  }
  if (q->compartment_patient && q->type->patient_col)
    put(b, " AND t."), put(b, q->type->patient_col), put(b, " = "), bind_text(b, q->compartment_patient);
}

void hl_sql_search_count(hl_sqlb *b, const char *tenant, const hl_api_search *q) {
  put(b, "SELECT count(*)");
  from_where(b, tenant, q);
}

/* The sort key: the id, a date's lower bound (a number; no date sorts first) or a column's text. */
static void sort_expr(const hl_api_search *q, char *out, size_t n, bool *is_int) {
  *is_int = false;
  if (!q->sort) {
    snprintf(out, n, "t.id");
  } else if (q->sort->kind == HL_SP_DATE) {
    *is_int = true;
    snprintf(out, n, "coalesce(HL_LO(t.%s), %lld)", q->sort->col, (long long)INT64_MIN);
  } else {
    snprintf(out, n, "coalesce(t.%s, '')", q->sort->col);
  }
}

/* Binds the cursor's sort key. */
static void bind_key(hl_sqlb *b, const hl_api_search *q) {
  if (q->cursor.key_is_int)
    bind_int(b, q->cursor.key_int);
  else
    bind_text(b, q->cursor.key_text ? q->cursor.key_text : "");
}

void hl_sql_search_page(hl_sqlb *b, const char *tenant, const hl_api_search *q, bool *key_is_int) {
  char sk[160];
  sort_expr(q, sk, sizeof sk, key_is_int);
  bool before = q->cursor.dir < 0, desc = q->sort_desc != before; /* the scan order */
  hl_sql_select_cols(b, q->type, sk);
  from_where(b, tenant, q);
  if (q->cursor.dir) {
    /* Rows after the cursor in scan order: (key, id) past (cursor key, cursor id). */
    const char *op = desc ? " < " : " > ";
    put(b, " AND ("), put(b, sk), put(b, op), bind_key(b, q);
    put(b, " OR ("), put(b, sk), put(b, " = "), bind_key(b, q);
    put(b, " AND t.id"), put(b, op), bind_text(b, q->cursor.id), put(b, "))");
  }
  if (q->sort)
    put(b, " ORDER BY "), put(b, sk), put(b, desc ? " DESC" : " ASC"), put(b, ", t.id");
  else
    put(b, " ORDER BY t.id");
  put(b, desc ? " DESC" : " ASC");
  put(b, " LIMIT "), bind_int(b, (int64_t)q->count + 1);
}
