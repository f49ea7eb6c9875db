#define _GNU_SOURCE
/*
 * Results of the SQL API v2: the reader of ResultSet bodies (metadata of
 * partition 0, data of every partition) and the typing of cells by their
 * column's rowType. Input comes from the network: every field is checked
 * for its JSON type and every size is capped.
 */
#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "hl/error.h"
#include "hl/snowflake.h"

#define SF_MAX_COLUMNS 4096
#define SF_MAX_PARTITIONS 100000
#define SF_MAX_CHILDREN 1000

struct hl_snowflake_result {
  json_t *meta;                 /* partition 0's body (keeps names and types alive) */
  json_t **parts;               /* every partition's "data" array */
  size_t nparts_loaded, nparts; /* loaded / announced */
  hl_snowflake_column *cols;
  size_t ncols;
  json_t **rows;                /* borrowed from parts: one JSON array per row */
  size_t nrows, rows_cap;
  long long bytes, max_bytes;
  const char *handle;
  int64_t inserted, updated, deleted;
  const char **children;
  size_t nchildren;
};

size_t hl_snowflake_result_rows(const hl_snowflake_result *r) { return r ? r->nrows : 0; }
size_t hl_snowflake_result_cols(const hl_snowflake_result *r) { return r ? r->ncols : 0; }
const char *hl_snowflake_result_handle(const hl_snowflake_result *r) { return r ? r->handle : NULL; }
int64_t hl_snowflake_result_inserted(const hl_snowflake_result *r) { return r ? r->inserted : 0; }
int64_t hl_snowflake_result_updated(const hl_snowflake_result *r) { return r ? r->updated : 0; }
int64_t hl_snowflake_result_deleted(const hl_snowflake_result *r) { return r ? r->deleted : 0; }
size_t hl_snowflake_result_partitions(const hl_snowflake_result *r) { return r ? r->nparts : 0; }

size_t hl_snowflake_result_children(const hl_snowflake_result *r, const char *const **handles) {
  if (handles)
    *handles = r ? r->children : NULL;
  return r ? r->nchildren : 0;
}

const hl_snowflake_column *hl_snowflake_result_column(const hl_snowflake_result *r, size_t col) {
  return r && col < r->ncols ? &r->cols[col] : NULL;
}

int hl_snowflake_result_find(const hl_snowflake_result *r, const char *name) {
  for (size_t i = 0; r && name && i < r->ncols; i++)
    if (strcasecmp(r->cols[i].name, name) == 0)
      return (int)i;
  return -1;
}

hl_snowflake_result *hl_snowflake_result_free(hl_snowflake_result *r) {
  if (!r)
    return NULL;
  for (size_t i = 0; i < r->nparts_loaded; i++)
    json_decref(r->parts[i]);
  free(r->parts);
  free(r->cols);
  free(r->rows);
  free(r->children);
  json_decref(r->meta);
  free(r);
  return NULL;
}

static int64_t int_field(json_t *obj, const char *name) {
  json_t *v = json_object_get(obj, name);
  return json_is_integer(v) ? (int64_t)json_integer_value(v) : 0;
}

/* Checks and indexes one partition's data array (taking a reference). */
static int add_rows(hl_snowflake_result *r, json_t *data, size_t len) {
  if (!data)
    data = json_array(); /* a partition may carry no rows */
  else
    json_incref(data);
  if (!json_is_array(data)) {
    json_decref(data);
    return HL_EPARSE;
  }
  size_t n = json_array_size(data);
  for (size_t i = 0; i < n; i++) {
    json_t *row = json_array_get(data, i);
    if (!json_is_array(row) || json_array_size(row) != r->ncols) {
      json_decref(data);
      return HL_EPARSE;
    }
    for (size_t c = 0; c < r->ncols; c++) {
      json_t *v = json_array_get(row, c);
      if (!json_is_string(v) && !json_is_null(v)) {
        json_decref(data);
        return HL_EPARSE;
      }
    }
  }
  r->bytes += (long long)len;
  if (r->bytes > r->max_bytes) {
    json_decref(data);
    return HL_ELIMIT;
  }
  if (r->nrows + n > r->rows_cap) {
    size_t cap = r->rows_cap ? r->rows_cap : 64;
    while (cap < r->nrows + n)
      cap *= 2;
    json_t **rows = realloc(r->rows, cap * sizeof *rows);
    if (!rows) {
      json_decref(data);
      return -ENOMEM;
    }
    r->rows = rows;
    r->rows_cap = cap;
  }
  for (size_t i = 0; i < n; i++)
    r->rows[r->nrows++] = json_array_get(data, i);
  r->parts[r->nparts_loaded++] = data;
  return 0;
}

static int read_columns(hl_snowflake_result *r, json_t *meta) {
  json_t *rt = json_object_get(meta, "rowType");
  if (!rt)
    return 0; /* DML and DDL answers may carry no columns */
  if (!json_is_array(rt) || json_array_size(rt) > SF_MAX_COLUMNS)
    return HL_EPARSE;
  r->ncols = json_array_size(rt);
  if (r->ncols && !(r->cols = calloc(r->ncols, sizeof *r->cols)))
    return -ENOMEM;
  for (size_t i = 0; i < r->ncols; i++) {
    json_t *c = json_array_get(rt, i);
    const char *name = json_string_value(json_object_get(c, "name"));
    const char *type = json_string_value(json_object_get(c, "type"));
    if (!json_is_object(c) || !name || !type)
      return HL_EPARSE;
    json_t *nl = json_object_get(c, "nullable");
    r->cols[i] = (hl_snowflake_column){.name = name, .type = type,
                                       .precision = int_field(c, "precision"),
                                       .scale = int_field(c, "scale"),
                                       .length = int_field(c, "length"),
                                       .nullable = !json_is_false(nl)};
  }
  return 0;
}

int hl_snowflake_result_parse(const char *json, size_t len, long long max_bytes, hl_snowflake_result **out) {
  if (!json || !out)
    return -EINVAL;
  json_error_t jerr;
  json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
  if (!json_is_object(root)) {
    json_decref(root);
    return HL_EPARSE;
  }
  hl_snowflake_result *r = calloc(1, sizeof *r);
  if (!r) {
    json_decref(root);
    return -ENOMEM;
  }
  r->meta = root;
  r->max_bytes = max_bytes > 0 ? max_bytes : 256LL << 20;
  int rc = HL_EPARSE;
  json_t *h = json_object_get(root, "statementHandle");
  if (h && !json_is_string(h))
    goto fail;
  r->handle = json_string_value(h);
  json_t *meta = json_object_get(root, "resultSetMetaData");
  if (meta && !json_is_object(meta))
    goto fail;
  if ((rc = read_columns(r, meta)) < 0)
    goto fail;
  rc = HL_EPARSE;
  json_t *pi = json_object_get(meta, "partitionInfo");
  if (pi && (!json_is_array(pi) || json_array_size(pi) > SF_MAX_PARTITIONS))
    goto fail;
  r->nparts = pi && json_array_size(pi) ? json_array_size(pi) : 1;
  json_t *stats = json_object_get(root, "stats");
  if (stats && !json_is_object(stats))
    goto fail;
  r->inserted = int_field(stats, "numRowsInserted");
  r->updated = int_field(stats, "numRowsUpdated");
  r->deleted = int_field(stats, "numRowsDeleted");
  json_t *kids = json_object_get(root, "statementHandles");
  if (kids) {
    if (!json_is_array(kids) || json_array_size(kids) > SF_MAX_CHILDREN)
      goto fail;
    r->nchildren = json_array_size(kids);
    if (r->nchildren && !(r->children = calloc(r->nchildren, sizeof *r->children))) {
      rc = -ENOMEM;
      goto fail;
    }
    for (size_t i = 0; i < r->nchildren; i++)
      if (!(r->children[i] = json_string_value(json_array_get(kids, i))))
        goto fail;
  }
  if (!(r->parts = calloc(r->nparts, sizeof *r->parts))) {
    rc = -ENOMEM;
    goto fail;
  }
  json_t *data = json_object_get(root, "data");
  if (!data && r->ncols && r->nparts == 1 && int_field(meta, "numRows") > 0)
    goto fail;
  if ((rc = add_rows(r, data, len)) < 0)
    goto fail;
  *out = r;
  return 0;
fail:
  hl_snowflake_result_free(r);
  return rc;
}

int hl_snowflake_result_add_partition(hl_snowflake_result *r, const char *json, size_t len) {
  if (!r || !json)
    return -EINVAL;
  if (r->nparts_loaded >= r->nparts)
    return HL_ELIMIT;
  json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, NULL);
  if (!json_is_object(root)) {
    json_decref(root);
    return HL_EPARSE;
  }
  json_t *data = json_object_get(root, "data");
  int rc = data ? add_rows(r, data, len) : HL_EPARSE;
  json_decref(root);
  return rc;
}

const char *hl_snowflake_result_str(const hl_snowflake_result *r, size_t row, size_t col) {
  if (!r || row >= r->nrows || col >= r->ncols)
    return NULL;
  return json_string_value(json_array_get(r->rows[row], col));
}

/* ------------------------------------------------------------------------ */
/* Typing by rowType.                                                        */

/* "1597090533.987000000" -> ns since the epoch. */
static int parse_epoch_ns(const char *s, int64_t *ns, const char **rest) {
  const char *p = s;
  bool neg = false;
  if (*p == '-') {
    neg = true;
    p++;
  }
  if (!isdigit((unsigned char)*p))
    return HL_EPARSE;
  int64_t sec = 0;
  while (isdigit((unsigned char)*p)) {
    if (sec > (INT64_MAX / 1000000000LL - 10) / 10)
      return HL_EPARSE;
    sec = sec * 10 + (*p++ - '0');
  }
  int64_t frac = 0;
  int digits = 0;
  if (*p == '.') {
    p++;
    while (isdigit((unsigned char)*p)) {
      if (digits < 9) {
        frac = frac * 10 + (*p - '0');
        digits++;
      }
      p++;
    }
  }
  for (; digits < 9; digits++)
    frac *= 10;
  int64_t v = sec * 1000000000LL + frac;
  *ns = neg ? -v : v;
  *rest = p;
  return 0;
}

int hl_snowflake_value_parse(const hl_snowflake_column *col, const char *text, hl_snowflake_value *out) {
  memset(out, 0, sizeof *out);
  out->text = text;
  if (!text) {
    out->kind = HL_SFV_NULL;
    return 0;
  }
  const char *t = col && col->type ? col->type : "TEXT";
  char *end = NULL;
  errno = 0;
  if (strcasecmp(t, "FIXED") == 0) {
    if (col->scale == 0) {
      long long v = strtoll(text, &end, 10);
      if (errno == 0 && end != text && *end == '\0') {
        out->kind = HL_SFV_INT;
        out->i = v;
        return 0;
      }
    }
    errno = 0;
    out->kind = HL_SFV_DOUBLE;
    out->d = strtod(text, &end);
    return end != text && *end == '\0' ? 0 : HL_EPARSE;
  }
  if (strcasecmp(t, "REAL") == 0) {
    out->kind = HL_SFV_DOUBLE;
    if (strcasecmp(text, "NaN") == 0) {
      out->d = NAN;
      return 0;
    }
    if (strcasecmp(text, "inf") == 0 || strcasecmp(text, "-inf") == 0) {
      out->d = text[0] == '-' ? -INFINITY : INFINITY;
      return 0;
    }
    out->d = strtod(text, &end);
    return end != text && *end == '\0' ? 0 : HL_EPARSE;
  }
  if (strcasecmp(t, "BOOLEAN") == 0) {
    out->kind = HL_SFV_BOOL;
    if (strcasecmp(text, "true") == 0 || strcmp(text, "1") == 0)
      out->b = true;
    else if (strcasecmp(text, "false") == 0 || strcmp(text, "0") == 0)
      out->b = false;
    else
      return HL_EPARSE;
    return 0;
  }
  if (strcasecmp(t, "DATE") == 0) {
    out->kind = HL_SFV_DATE;
    long long v = strtoll(text, &end, 10);
    if (errno || end == text || *end)
      return HL_EPARSE;
    out->i = v;
    return 0;
  }
  if (strcasecmp(t, "TIME") == 0 || strncasecmp(t, "TIMESTAMP", 9) == 0) {
    bool is_time = strcasecmp(t, "TIME") == 0;
    out->kind = is_time ? HL_SFV_TIME : HL_SFV_TIMESTAMP;
    const char *rest;
    if (parse_epoch_ns(text, &out->ns, &rest) < 0)
      return HL_EPARSE;
    if (strcasecmp(t, "TIMESTAMP_TZ") == 0) {
      /* "<epoch> <offset>": offset in minutes plus 1440. */
      if (*rest != ' ')
        return HL_EPARSE;
      long off = strtol(rest + 1, &end, 10);
      if (end == rest + 1 || *end || off < 0 || off > 2880)
        return HL_EPARSE;
      out->tz_minutes = (int)(off - 1440);
      return 0;
    }
    return *rest ? HL_EPARSE : 0;
  }
  out->kind = HL_SFV_TEXT;
  return 0;
}

int hl_snowflake_result_value(const hl_snowflake_result *r, size_t row, size_t col, hl_snowflake_value *out) {
  if (!r || !out || row >= r->nrows || col >= r->ncols)
    return -ERANGE;
  return hl_snowflake_value_parse(&r->cols[col], hl_snowflake_result_str(r, row, col), out);
}
