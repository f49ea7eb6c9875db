#define _GNU_SOURCE
/* See sql.h. */
#include "sql.h"

#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "hl/buf.h"
#include "query.h"

#define SQL_MAX_TEXT (4 * 1024 * 1024)
#define SQL_MAX_ROWS 1000000
#define SQL_MAX_SCHEMAS 32

struct sf_sql {
  sqlite3 *db;
  char *dir;
};

sqlite3 *sf_sql_db(sf_sql *q) {
  return q->db;
}

static void set_error(sf_exec *e, const char *code, const char *state, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void set_error(sf_exec *e, const char *code, const char *state, const char *fmt, ...) {
  e->failed = true;
  snprintf(e->code, sizeof e->code, "%s", code);
  snprintf(e->sql_state, sizeof e->sql_state, "%s", state);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(e->message, sizeof e->message, fmt, ap);
  va_end(ap);
}

void sf_exec_clear(sf_exec *e) {
  json_decref(e->row_type);
  json_decref(e->rows);
  json_decref(e->stats);
  memset(e, 0, sizeof *e);
}

/* Snowflake functions the translation keeps as calls: registered on SQLite. */
static void fn_parse_json(sqlite3_context *c, int n, sqlite3_value **v) {
  const char *t = (const char *)sqlite3_value_text(v[0]);
  if (!t) {
    sqlite3_result_null(c);
    return;
  }
  json_t *j = json_loads(t, JSON_DECODE_ANY, NULL);
  if (!j) {
    if (sqlite3_user_data(c)) { /* TRY_PARSE_JSON */
      sqlite3_result_null(c);
      return;
    }
    sqlite3_result_error(c, "Error parsing JSON", -1);
    return;
  }
  char *s = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
  json_decref(j);
  if (!s) {
    sqlite3_result_error_nomem(c);
    return;
  }
  sqlite3_result_text(c, s, -1, free);
}

/*
 * HL_LO(text) / HL_HI(text): the [lo, hi) range in ms of a FHIR date,
 * dateTime or instant (NULL when it does not read as one), the UDFs that
 * hl-api-gateway's snowflake store expects in its schema (docs/snowflake.md).
 */
static void fn_hl_range(sqlite3_context *c, sqlite3_value **v, bool hi) {
  const unsigned char *t = sqlite3_value_text(v[0]);
  int64_t l, h;
  if (!t || hl_api_date_range((const char *)t, (size_t)sqlite3_value_bytes(v[0]), &l, &h) < 0)
    sqlite3_result_null(c);
  else
    sqlite3_result_int64(c, hi ? h : l);
}
static void fn_hl_lo(sqlite3_context *c, int n, sqlite3_value **v) { (void)n, fn_hl_range(c, v, false); }
static void fn_hl_hi(sqlite3_context *c, int n, sqlite3_value **v) { (void)n, fn_hl_range(c, v, true); }

static void fn_nvl(sqlite3_context *c, int n, sqlite3_value **v) {
  sqlite3_result_value(c, sqlite3_value_type(v[0]) == SQLITE_NULL ? v[1] : v[0]);
}

static void fn_wait(sqlite3_context *c, int n, sqlite3_value **v) {
  /* The wait itself is modelled by the server's clock (sf_sql_wait_seconds). */
  sqlite3_result_text(c, "waited", -1, SQLITE_STATIC);
}

static int attach(sf_sql *q, const char *schema) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s.sqlite", q->dir, schema);
  char *sql = sqlite3_mprintf("ATTACH DATABASE %Q AS \"%w\"; PRAGMA \"%w\".journal_mode=WAL; "
                              "PRAGMA \"%w\".synchronous=NORMAL", path, schema, schema, schema);
  int rc = sql ? sqlite3_exec(q->db, sql, NULL, NULL, NULL) : SQLITE_NOMEM;
  sqlite3_free(sql);
  return rc;
}

static bool attached(sf_sql *q, const char *schema) {
  if (!strcasecmp(schema, "PUBLIC") || !strcasecmp(schema, "main"))
    return true;
  sqlite3_stmt *st;
  bool yes = false;
  if (sqlite3_prepare_v2(q->db, "SELECT 1 FROM pragma_database_list WHERE name = ?1 COLLATE NOCASE", -1, &st,
                         NULL) == SQLITE_OK) {
    sqlite3_bind_text(st, 1, schema, -1, SQLITE_TRANSIENT);
    yes = sqlite3_step(st) == SQLITE_ROW;
  }
  sqlite3_finalize(st);
  return yes;
}

int sf_sql_open(const char *dir, sf_sql **out, char *err, size_t errlen) {
  sf_sql *q = calloc(1, sizeof *q);
  if (!q || !(q->dir = strdup(dir))) {
    free(q);
    snprintf(err, errlen, "out of memory");
    return -ENOMEM;
  }
  char path[4096];
  snprintf(path, sizeof path, "%s/standin.sqlite", dir);
  if (sqlite3_open(path, &q->db) != SQLITE_OK) {
    snprintf(err, errlen, "cannot open %s: %s", path, sqlite3_errmsg(q->db));
    sf_sql_close(q);
    return -EIO;
  }
  sqlite3_busy_timeout(q->db, 5000);
  static const char ddl[] =
      "PRAGMA journal_mode=WAL;"
      "PRAGMA synchronous=NORMAL;"
      "CREATE TABLE IF NOT EXISTS _standin_schemas(name TEXT PRIMARY KEY COLLATE NOCASE);"
      "CREATE TABLE IF NOT EXISTS _standin_pipes(schema_name TEXT COLLATE NOCASE, pipe TEXT COLLATE NOCASE,"
      " target TEXT, PRIMARY KEY(schema_name, pipe));"
      "CREATE TABLE IF NOT EXISTS _standin_channels(db TEXT COLLATE NOCASE, schema_name TEXT COLLATE NOCASE,"
      " pipe TEXT COLLATE NOCASE, channel TEXT COLLATE NOCASE, sequencer INTEGER NOT NULL,"
      " continuation TEXT NOT NULL, committed TEXT, rows_inserted INTEGER NOT NULL DEFAULT 0,"
      " created_ms INTEGER NOT NULL, PRIMARY KEY(db, schema_name, pipe, channel));";
  if (sqlite3_exec(q->db, ddl, NULL, NULL, NULL) != SQLITE_OK) {
    snprintf(err, errlen, "cannot set up %s: %s", path, sqlite3_errmsg(q->db));
    sf_sql_close(q);
    return -EIO;
  }
  sqlite3_create_function(q->db, "PARSE_JSON", 1, SQLITE_UTF8 | SQLITE_DETERMINISTIC, NULL, fn_parse_json, NULL,
                          NULL);
  sqlite3_create_function(q->db, "TRY_PARSE_JSON", 1, SQLITE_UTF8 | SQLITE_DETERMINISTIC, q, fn_parse_json,
                          NULL, NULL);
  sqlite3_create_function(q->db, "TO_VARIANT", 1, SQLITE_UTF8 | SQLITE_DETERMINISTIC, NULL, fn_parse_json, NULL,
                          NULL);
  sqlite3_create_function(q->db, "HL_LO", 1, SQLITE_UTF8 | SQLITE_DETERMINISTIC, NULL, fn_hl_lo, NULL, NULL);
  sqlite3_create_function(q->db, "HL_HI", 1, SQLITE_UTF8 | SQLITE_DETERMINISTIC, NULL, fn_hl_hi, NULL, NULL);
  sqlite3_create_function(q->db, "NVL", 2, SQLITE_UTF8 | SQLITE_DETERMINISTIC, NULL, fn_nvl, NULL, NULL);
  sqlite3_create_function(q->db, "SYSTEM$WAIT", -1, SQLITE_UTF8, NULL, fn_wait, NULL, NULL);
  /* Schemas created earlier come back. */
  sqlite3_stmt *st;
  char names[SQL_MAX_SCHEMAS][256];
  int n = 0;
  if (sqlite3_prepare_v2(q->db, "SELECT name FROM _standin_schemas", -1, &st, NULL) == SQLITE_OK) {
    while (n < SQL_MAX_SCHEMAS && sqlite3_step(st) == SQLITE_ROW)
      snprintf(names[n++], sizeof names[0], "%s", (const char *)sqlite3_column_text(st, 0));
  }
  sqlite3_finalize(st);
  for (int i = 0; i < n; i++)
    attach(q, names[i]);
  *out = q;
  return 0;
}

sf_sql *sf_sql_close(sf_sql *q) {
  if (q) {
    sqlite3_close(q->db);
    free(q->dir);
    free(q);
  }
  return NULL;
}

/* ------------------------------------------------------------------------ */
/* Lexing.                                                                   */

static bool ident_start(int c) {
  return isalpha(c) || c == '_';
}
static bool ident_char(int c) {
  return isalnum(c) || c == '_' || c == '$';
}

/* Length of a quoted string, quoted identifier, $$ string or comment at p; 0 if none. */
static size_t skip_quoted(const char *p) {
  const char *s = p;
  if (*p == '\'' || *p == '"') {
    char q = *p++;
    while (*p) {
      if (*p == q && p[1] == q) {
        p += 2;
      } else if (*p == q) {
        return (size_t)(p + 1 - s);
      } else if (q == '\'' && *p == '\\' && p[1]) {
        p += 2;
      } else {
        p++;
      }
    }
    return (size_t)(p - s);
  }
  if (p[0] == '$' && p[1] == '$') {
    const char *e = strstr(p + 2, "$$");
    return e ? (size_t)(e + 2 - s) : strlen(s);
  }
  if (p[0] == '-' && p[1] == '-') {
    const char *e = strchr(p, '\n');
    return e ? (size_t)(e - s) : strlen(s);
  }
  if (p[0] == '/' && p[1] == '*') {
    const char *e = strstr(p + 2, "*/");
    return e ? (size_t)(e + 2 - s) : strlen(s);
  }
  return 0;
}

json_t *sf_sql_split(const char *sql) {
  json_t *out = json_array();
  const char *start = sql, *p = sql;
  while (out && *p) {
    size_t q = skip_quoted(p);
    if (q) {
      p += q;
      continue;
    }
    if (*p == ';') {
      char *one = strndup(start, (size_t)(p - start));
      size_t k = strspn(one ? one : "", " \t\r\n");
      if (one && one[k])
        json_array_append_new(out, json_string(one));
      free(one);
      start = p + 1;
    }
    p++;
  }
  size_t k = strspn(start, " \t\r\n");
  if (out && start[k])
    json_array_append_new(out, json_string(start));
  return out;
}

/* Upper-cased words of the statement's head (comments skipped), up to n. */
static int head_words(const char *sql, char words[][64], int n) {
  int got = 0;
  const char *p = sql;
  while (*p && got < n) {
    if (isspace((unsigned char)*p)) {
      p++;
      continue;
    }
    if ((p[0] == '-' && p[1] == '-') || (p[0] == '/' && p[1] == '*')) {
      p += skip_quoted(p);
      continue;
    }
    if (!ident_start((unsigned char)*p))
      break;
    size_t len = 0;
    while (ident_char((unsigned char)p[len]))
      len++;
    size_t l = len < 63 ? len : 63;
    for (size_t i = 0; i < l; i++)
      words[got][i] = (char)toupper((unsigned char)p[i]);
    words[got][l] = '\0';
    got++;
    p += len;
  }
  return got;
}

double sf_sql_wait_seconds(const char *sql) {
  char w[3][64];
  int n = head_words(sql, w, 2);
  if (n < 2 || (strcmp(w[0], "CALL") && strcmp(w[0], "SELECT")) || strcmp(w[1], "SYSTEM$WAIT"))
    return -1;
  const char *p = strcasestr(sql, "SYSTEM$WAIT");
  p = p ? strchr(p, '(') : NULL;
  if (!p)
    return -1;
  char *end;
  double v = strtod(p + 1, &end);
  if (end == p + 1 || v < 0)
    return -1;
  if (strcasestr(end, "MILLISECONDS"))
    v /= 1000;
  else if (strcasestr(end, "MINUTES"))
    v *= 60;
  return v;
}

/*
 * The translation: three-part names db.schema.object lose the database
 * (schemas are attached SQLite files), CURRENT_TIMESTAMP() and friends
 * lose their parentheses, SYSDATE() becomes CURRENT_TIMESTAMP, expr::TYPE
 * casts are dropped and col:a.b[0] paths into VARIANT become
 * json_extract(col, '$.a.b[0]'). Strings, quoted identifiers and comments
 * are copied unchanged.
 */
static int rewrite(const char *sql, hl_buf *out) {
  const char *p = sql;
  int rc = 0, nbind = 0;
  while (*p && rc == 0) {
    size_t q = skip_quoted(p);
    if (q) {
      rc = hl_buf_append(out, p, q);
      p += q;
      continue;
    }
    /* expr::TYPE casts: SQLite's values are dynamically typed, the cast is dropped. */
    if (p[0] == ':' && p[1] == ':') {
      const char *t = p + 2;
      while (isspace((unsigned char)*t))
        t++;
      if (ident_start((unsigned char)*t)) {
        while (ident_char((unsigned char)*t))
          t++;
        if (*t == '(') { /* NUMBER(38,0) */
          const char *close = strchr(t, ')');
          t = close ? close + 1 : t;
        }
        p = t;
        continue;
      }
    }
    /* Anonymous binds are numbered (?1, ?2, ...) so that a statement split in parts keeps them. */
    if (*p == '?' && !isdigit((unsigned char)p[1])) {
      rc = hl_buf_printf(out, "?%d", ++nbind);
      p++;
      continue;
    }
    if (!ident_start((unsigned char)*p) || (p > sql && (ident_char((unsigned char)p[-1]) || p[-1] == '.'))) {
      rc = hl_buf_putc(out, *p++);
      continue;
    }
    /* An identifier chain a[.b[.c]]. */
    const char *parts[3];
    size_t lens[3];
    int np = 0;
    const char *c = p;
    while (np < 3) {
      if (*c == '"') {
        size_t l = skip_quoted(c);
        parts[np] = c;
        lens[np++] = l;
        c += l;
      } else if (ident_start((unsigned char)*c)) {
        size_t l = 0;
        while (ident_char((unsigned char)c[l]))
          l++;
        parts[np] = c;
        lens[np++] = l;
        c += l;
      } else {
        break;
      }
      if (*c != '.' || !(ident_start((unsigned char)c[1]) || c[1] == '"'))
        break;
      c++;
    }
    int first = np == 3 ? 1 : 0;
    /* col:path.to[0].field (a path into VARIANT) -> json_extract(col, '$.path.to[0].field'). */
    bool path = *c == ':' && c[1] != ':' && (ident_start((unsigned char)c[1]) || c[1] == '"');
    if (path)
      rc = hl_buf_puts(out, "json_extract(");
    for (int i = first; i < np && rc == 0; i++) {
      if (i > first)
        rc = hl_buf_putc(out, '.');
      if (rc == 0)
        rc = hl_buf_append(out, parts[i], lens[i]);
    }
    if (path && rc == 0) {
      rc = hl_buf_puts(out, ", '$.");
      c++;
      while (rc == 0 && (ident_char((unsigned char)*c) || *c == '.' || *c == '[' || *c == ']' || *c == '"')) {
        if (*c != '"' && *c != '\'')
          rc = hl_buf_putc(out, *c);
        c++;
      }
      if (rc == 0)
        rc = hl_buf_puts(out, "')");
    }
    if (np == 1 && rc == 0) {
      static const char *const niladic[] = {"CURRENT_TIMESTAMP", "CURRENT_DATE", "CURRENT_TIME", "SYSDATE",
                                            "LOCALTIMESTAMP"};
      for (size_t k = 0; k < sizeof niladic / sizeof *niladic; k++) {
        if (lens[0] == strlen(niladic[k]) && !strncasecmp(parts[0], niladic[k], lens[0])) {
          const char *e = c;
          while (isspace((unsigned char)*e))
            e++;
          if (*e == '(') {
            e++;
            while (isspace((unsigned char)*e))
              e++;
            if (*e == ')')
              c = e + 1;
          }
          if (k == 3 || k == 4) { /* SYSDATE, LOCALTIMESTAMP */
            out->len -= lens[0];
            rc = hl_buf_puts(out, "CURRENT_TIMESTAMP");
          }
        }
      }
    }
    p = c;
  }
  return rc;
}

/* ------------------------------------------------------------------------ */
/* Results.                                                                  */

typedef struct coltype {
  const char *type;   /* Snowflake's name, lower case as the API sends it */
  int64_t precision, scale, length;
} coltype;

static coltype map_decltype(const char *decl) {
  coltype t = {"text", 0, 0, 16777216};
  if (!decl)
    return t;
  char u[64];
  size_t n = strlen(decl) < 63 ? strlen(decl) : 63;
  for (size_t i = 0; i < n; i++)
    u[i] = (char)toupper((unsigned char)decl[i]);
  u[n] = '\0';
  if (strstr(u, "TIMESTAMP_TZ"))
    return (coltype){"timestamp_tz", 0, 9, 0};
  if (strstr(u, "TIMESTAMP_LTZ"))
    return (coltype){"timestamp_ltz", 0, 9, 0};
  if (strstr(u, "TIMESTAMP") || strstr(u, "DATETIME"))
    return (coltype){"timestamp_ntz", 0, 9, 0};
  if (!strcmp(u, "DATE"))
    return (coltype){"date", 0, 0, 0};
  if (!strncmp(u, "TIME", 4))
    return (coltype){"time", 0, 9, 0};
  if (strstr(u, "VARIANT"))
    return (coltype){"variant", 0, 0, 16777216};
  if (strstr(u, "OBJECT"))
    return (coltype){"object", 0, 0, 16777216};
  if (strstr(u, "ARRAY"))
    return (coltype){"array", 0, 0, 16777216};
  if (strstr(u, "BOOL"))
    return (coltype){"boolean", 0, 0, 0};
  if (strstr(u, "BINARY") || strstr(u, "BLOB"))
    return (coltype){"binary", 0, 0, 8388608};
  if (strstr(u, "FLOAT") || strstr(u, "DOUBLE") || strstr(u, "REAL"))
    return (coltype){"real", 0, 0, 0};
  if (strstr(u, "INT"))
    return (coltype){"fixed", 38, 0, 0};
  if (strstr(u, "NUMBER") || strstr(u, "NUMERIC") || strstr(u, "DECIMAL")) {
    coltype f = {"fixed", 38, 0, 0};
    const char *par = strchr(u, '(');
    if (par) {
      int p = 38, s = 0;
      if (sscanf(par, "(%d,%d)", &p, &s) >= 1) {
        f.precision = p;
        f.scale = s;
      }
    }
    return f;
  }
  return t;
}

static int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  int64_t era = (y >= 0 ? y : y - 399) / 400;
  unsigned yoe = (unsigned)(y - era * 400);
  unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + (int64_t)doe - 719468;
}

/* "YYYY-MM-DD[ T]HH:MM:SS[.fff][Z|+hh:mm]" -> epoch seconds, ns and offset minutes. */
static bool parse_iso(const char *s, int64_t *sec, long *ns, int *offmin, bool *has_time) {
  int y, mo, d, h = 0, mi = 0, se = 0, used = 0;
  if (sscanf(s, "%4d-%2d-%2d%n", &y, &mo, &d, &used) != 3 || mo < 1 || mo > 12 || d < 1 || d > 31)
    return false;
  const char *p = s + used;
  *has_time = false;
  *ns = 0;
  *offmin = 0;
  if (*p == 'T' || *p == ' ') {
    int u2 = 0;
    if (sscanf(p + 1, "%2d:%2d:%2d%n", &h, &mi, &se, &u2) != 3)
      return false;
    *has_time = true;
    p += 1 + u2;
    if (*p == '.') {
      p++;
      long f = 0;
      int dig = 0;
      while (isdigit((unsigned char)*p)) {
        if (dig < 9) {
          f = f * 10 + (*p - '0');
          dig++;
        }
        p++;
      }
      for (; dig < 9; dig++)
        f *= 10;
      *ns = f;
    }
    if (*p == 'Z') {
      p++;
    } else if (*p == '+' || *p == '-') {
      int oh, om;
      if (sscanf(p + 1, "%2d:%2d", &oh, &om) != 2)
        return false;
      *offmin = (*p == '-' ? -1 : 1) * (oh * 60 + om);
      p += 6;
    }
  }
  if (*p)
    return false;
  *sec = days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 + h * 3600 + mi * 60 + se - *offmin * 60;
  return true;
}

/* A cell as the API sends it: text in the format of the column's type. */
static json_t *cell(sqlite3_stmt *st, int col, const coltype *t) {
  int vt = sqlite3_column_type(st, col);
  if (vt == SQLITE_NULL)
    return json_null();
  const char *txt = (const char *)sqlite3_column_text(st, col);
  char buf[96];
  if (!strcmp(t->type, "boolean")) {
    if (vt == SQLITE_INTEGER || vt == SQLITE_FLOAT)
      return json_string(sqlite3_column_double(st, col) != 0 ? "true" : "false");
    return json_string(txt && (!strcasecmp(txt, "true") || !strcmp(txt, "1")) ? "true" : "false");
  }
  if (!strncmp(t->type, "timestamp", 9) || !strcmp(t->type, "date") || !strcmp(t->type, "time")) {
    int64_t sec;
    long ns = 0;
    int off = 0;
    bool has_time = false;
    if (vt == SQLITE_INTEGER || vt == SQLITE_FLOAT) {
      double v = sqlite3_column_double(st, col);
      sec = (int64_t)v;
      ns = (long)((v - (double)sec) * 1e9);
    } else if (!strcmp(t->type, "time")) {
      int h, m, s;
      if (!txt || sscanf(txt, "%d:%d:%d", &h, &m, &s) != 3)
        return json_string(txt ? txt : "");
      sec = h * 3600 + m * 60 + s;
    } else if (!txt || !parse_iso(txt, &sec, &ns, &off, &has_time)) {
      return json_string(txt ? txt : ""); /* not a date: sent as stored */
    }
    if (!strcmp(t->type, "date"))
      snprintf(buf, sizeof buf, "%lld", (long long)(sec >= 0 ? sec / 86400 : (sec - 86399) / 86400));
    else if (!strcmp(t->type, "timestamp_tz"))
      snprintf(buf, sizeof buf, "%lld.%09ld %d", (long long)sec, ns, 1440 + off);
    else
      snprintf(buf, sizeof buf, "%lld.%09ld", (long long)sec, ns);
    return json_string(buf);
  }
  if (!strcmp(t->type, "binary") && vt == SQLITE_BLOB) {
    const unsigned char *b = sqlite3_column_blob(st, col);
    int n = sqlite3_column_bytes(st, col);
    char *hex = malloc((size_t)n * 2 + 1);
    if (!hex)
      return NULL;
    for (int i = 0; i < n; i++)
      snprintf(hex + 2 * i, 3, "%02X", b[i]);
    json_t *j = json_string(hex);
    free(hex);
    return j;
  }
  if (vt == SQLITE_FLOAT) {
    snprintf(buf, sizeof buf, "%.17g", sqlite3_column_double(st, col));
    return json_string(buf);
  }
  return json_stringn(txt ? txt : "", txt ? (size_t)sqlite3_column_bytes(st, col) : 0);
}

static json_t *column_json(const char *name, const coltype *t) {
  char up[256];
  size_t n = strlen(name) < 255 ? strlen(name) : 255;
  for (size_t i = 0; i < n; i++)
    up[i] = (char)toupper((unsigned char)name[i]);
  up[n] = '\0';
  return json_pack("{s:s,s:s,s:I,s:I,s:I,s:b}", "name", up, "type", t->type, "length", (json_int_t)t->length,
                   "precision", (json_int_t)t->precision, "scale", (json_int_t)t->scale, "nullable", 1);
}

/* Binds one value of a binding by its declared type. */
static int bind_one(sqlite3_stmt *st, int idx, const char *type, json_t *v) {
  if (json_is_null(v))
    return sqlite3_bind_null(st, idx);
  const char *s = json_string_value(v);
  char *end;
  if (!strcmp(type, "FIXED")) {
    errno = 0;
    long long n = strtoll(s, &end, 10);
    if (!errno && *s && !*end)
      return sqlite3_bind_int64(st, idx, n);
    double d = strtod(s, &end);
    if (*s && !*end)
      return sqlite3_bind_double(st, idx, d);
  } else if (!strcmp(type, "REAL")) {
    double d = strtod(s, &end);
    if (*s && !*end)
      return sqlite3_bind_double(st, idx, d);
  } else if (!strcmp(type, "BOOLEAN")) {
    return sqlite3_bind_int(st, idx, !strcasecmp(s, "true") || !strcmp(s, "1"));
  }
  return sqlite3_bind_text(st, idx, s, -1, SQLITE_TRANSIENT);
}

/* The binding for parameter idx of st: "?", "?N" and ":N" name binding "N". */
static json_t *binding_for(sqlite3_stmt *st, int idx, json_t *bindings) {
  const char *pn = sqlite3_bind_parameter_name(st, idx);
  char key[16];
  if (!pn)
    snprintf(key, sizeof key, "%d", idx);
  else if ((pn[0] == '?' || pn[0] == ':') && isdigit((unsigned char)pn[1]))
    snprintf(key, sizeof key, "%s", pn + 1);
  else
    return NULL;
  return json_object_get(bindings, key);
}

static void sqlite_error(sf_exec *e, sqlite3 *db) {
  const char *m = sqlite3_errmsg(db);
  int ext = sqlite3_extended_errcode(db);
  if (strstr(m, "no such table"))
    set_error(e, "002003", "42S02", "SQL compilation error:\nObject does not exist or not authorized (%s).", m);
  else if (strstr(m, "no such column"))
    set_error(e, "000904", "42000", "SQL compilation error: invalid identifier (%s).", m);
  else if (strstr(m, "syntax error") || strstr(m, "unrecognized token") || strstr(m, "incomplete input"))
    set_error(e, "001003", "42000", "SQL compilation error:\nsyntax error (%s).", m);
  else if ((ext & 0xff) == SQLITE_CONSTRAINT)
    set_error(e, "100072", "22000", "constraint violated (%s).", m);
  else if (strstr(m, "already exists"))
    set_error(e, "002002", "42710", "SQL compilation error:\nObject already exists (%s).", m);
  else
    set_error(e, "100000", "22000", "execution error (%s).", m);
}

static void status_result(sf_exec *e, const char *name, const char *type, const char *value) {
  coltype t = {type, !strcmp(type, "fixed") ? 38 : 0, 0, !strcmp(type, "text") ? 16777216 : 0};
  e->row_type = json_pack("[o]", column_json(name, &t));
  e->rows = json_pack("[[s]]", value);
}

/* Runs the translated text (one statement) with bindings. */
static void run(sf_sql *q, const char *sql, json_t *bindings, sf_exec *e) {
  sqlite3_stmt *st = NULL;
  const char *tail = NULL;
  if (sqlite3_prepare_v2(q->db, sql, -1, &st, &tail) != SQLITE_OK) {
    sqlite_error(e, q->db);
    return;
  }
  if (!st) {
    status_result(e, "status", "text", "Statement executed successfully.");
    return;
  }
  if (tail && tail[strspn(tail, " \t\r\n;")]) {
    sqlite3_finalize(st);
    set_error(e, "000008", "0A000",
              "Actual statement count 2 did not match the desired statement count 1.");
    return;
  }
  /* Array bindings: every binding holds n values and the statement runs n times. */
  size_t runs = 1;
  bool arrays = false;
  const char *k;
  json_t *b;
  json_object_foreach(bindings, k, b) {
    json_t *v = json_object_get(b, "value");
    if (json_is_array(v)) {
      if (arrays && json_array_size(v) != runs) {
        sqlite3_finalize(st);
        set_error(e, "002049", "22000", "Bind variable arrays differ in length.");
        return;
      }
      arrays = true;
      runs = json_array_size(v);
    }
  }
  int nparams = sqlite3_bind_parameter_count(st);
  int ncols = sqlite3_column_count(st);
  coltype types[256];
  if (ncols > 256) {
    sqlite3_finalize(st);
    set_error(e, "100000", "22000", "too many columns for the stand-in");
    return;
  }
  json_t *rows = json_array();
  int64_t changes = 0;
  bool typed = false;
  /* A statement is atomic: the runs of an array binding share one transaction. */
  bool txn = runs > 1 && sqlite3_get_autocommit(q->db);
  if (txn)
    sqlite3_exec(q->db, "BEGIN", NULL, NULL, NULL);
  for (size_t r = 0; r < runs && !e->failed; r++) {
    sqlite3_reset(st);
    for (int i = 1; i <= nparams; i++) {
      json_t *bd = binding_for(st, i, bindings);
      if (!bd) {
        set_error(e, "002049", "42601", "SQL compilation error: bind variable %d has no value.", i);
        break;
      }
      json_t *v = json_object_get(bd, "value");
      if (json_is_array(v))
        v = json_array_get(v, r);
      bind_one(st, i, json_string_value(json_object_get(bd, "type")), v);
    }
    if (e->failed)
      break;
    int src;
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
      if (!typed) {
        for (int c = 0; c < ncols; c++) {
          const char *decl = sqlite3_column_decltype(st, c);
          types[c] = map_decltype(decl);
          if (!decl) {
            int vt = sqlite3_column_type(st, c);
            types[c] = vt == SQLITE_INTEGER ? (coltype){"fixed", 38, 0, 0}
                       : vt == SQLITE_FLOAT ? (coltype){"real", 0, 0, 0}
                                            : (coltype){"text", 0, 0, 16777216};
          }
        }
        typed = true;
      }
      if (json_array_size(rows) >= SQL_MAX_ROWS) {
        set_error(e, "100000", "22000", "result larger than the stand-in allows");
        break;
      }
      json_t *row = json_array();
      for (int c = 0; c < ncols; c++)
        json_array_append_new(row, cell(st, c, &types[c]));
      json_array_append_new(rows, row);
    }
    if (!e->failed && src != SQLITE_DONE)
      sqlite_error(e, q->db);
    changes += sqlite3_changes(q->db);
  }
  if (e->failed) {
    json_decref(rows);
    sqlite3_finalize(st);
    if (txn)
      sqlite3_exec(q->db, "ROLLBACK", NULL, NULL, NULL);
    return;
  }
  if (txn && sqlite3_exec(q->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
    sqlite_error(e, q->db);
    json_decref(rows);
    sqlite3_finalize(st);
    sqlite3_exec(q->db, "ROLLBACK", NULL, NULL, NULL);
    return;
  }
  if (ncols > 0) {
    e->row_type = json_array();
    for (int c = 0; c < ncols; c++) {
      if (!typed)
        types[c] = map_decltype(sqlite3_column_decltype(st, c));
      json_array_append_new(e->row_type, column_json(sqlite3_column_name(st, c), &types[c]));
    }
    e->rows = rows;
  } else {
    json_decref(rows);
    char w[2][64];
    head_words(sql, w, 1);
    char num[32];
    snprintf(num, sizeof num, "%lld", (long long)changes);
    if (!strcmp(w[0], "INSERT") || !strcmp(w[0], "REPLACE")) {
      status_result(e, "number of rows inserted", "fixed", num);
      e->stats = json_pack("{s:I}", "numRowsInserted", (json_int_t)changes);
    } else if (!strcmp(w[0], "UPDATE")) {
      status_result(e, "number of rows updated", "fixed", num);
      e->stats = json_pack("{s:I}", "numRowsUpdated", (json_int_t)changes);
    } else if (!strcmp(w[0], "DELETE")) {
      status_result(e, "number of rows deleted", "fixed", num);
      e->stats = json_pack("{s:I}", "numRowsDeleted", (json_int_t)changes);
    } else {
      status_result(e, "status", "text", "Statement executed successfully.");
    }
  }
  sqlite3_finalize(st);
}

/* Statements about objects SQLite has no notion of: accepted, recorded nowhere. */
static bool admin_noop(char w[][64], int n) {
  static const char *const kinds[] = {"WAREHOUSE", "ROLE", "USER", "STAGE", "STORAGE", "FILE",
                                      "ROW", "DATABASE", "NETWORK", "TAG", "TASK", "STREAM",
                                      "INTEGRATION", "SEQUENCE", "MASKING", "RESOURCE", "SECRET"};
  if (n < 1)
    return false;
  if (!strcmp(w[0], "GRANT") || !strcmp(w[0], "REVOKE") || !strcmp(w[0], "COMMENT"))
    return true;
  if (strcmp(w[0], "CREATE") && strcmp(w[0], "ALTER") && strcmp(w[0], "DROP"))
    return false;
  int i = 1;
  if (i + 1 < n && !strcmp(w[i], "OR") && !strcmp(w[i + 1], "REPLACE"))
    i += 2;
  while (i < n && (!strcmp(w[i], "TRANSIENT") || !strcmp(w[i], "SECURE") || !strcmp(w[i], "EXTERNAL") ||
                   !strcmp(w[i], "API")))
    i++;
  for (size_t k = 0; i < n && k < sizeof kinds / sizeof *kinds; k++)
    if (!strcmp(w[i], kinds[k]))
      return true;
  return false;
}

/* The name after the head words: CREATE SCHEMA [IF NOT EXISTS] [db.]name. */
static void object_name(const char *sql, const char *kind, char *out, size_t cap) {
  out[0] = '\0';
  const char *p = strcasestr(sql, kind);
  if (!p)
    return;
  p += strlen(kind);
  for (;;) {
    while (isspace((unsigned char)*p))
      p++;
    if (!strncasecmp(p, "IF", 2) && isspace((unsigned char)p[2])) {
      p += 2;
      continue;
    }
    if (!strncasecmp(p, "NOT", 3) && isspace((unsigned char)p[3])) {
      p += 3;
      continue;
    }
    if (!strncasecmp(p, "EXISTS", 6) && isspace((unsigned char)p[6])) {
      p += 6;
      continue;
    }
    break;
  }
  size_t len = 0;
  while (ident_char((unsigned char)p[len]) || p[len] == '.' || p[len] == '"' || p[len] == '-')
    len++;
  char name[512];
  snprintf(name, sizeof name, "%.*s", (int)len, p);
  const char *last = strrchr(name, '.');
  const char *n = last ? last + 1 : name;
  size_t o = 0;
  for (; *n && o + 1 < cap; n++)
    if (*n != '"')
      out[o++] = (char)toupper((unsigned char)*n);
  out[o] = '\0';
  /* For a pipe also keep the schema: "SCHEMA.PIPE" when qualified. */
  if (!strcmp(kind, "PIPE") && last) {
    char schema[256];
    const char *prev = last;
    while (prev > name && prev[-1] != '.')
      prev--;
    snprintf(schema, sizeof schema, "%.*s", (int)(last - prev), prev);
    char tmp[512];
    snprintf(tmp, sizeof tmp, "%s.%s", schema, out);
    snprintf(out, cap, "%s", tmp);
  }
}

static bool valid_schema_name(const char *s) {
  if (!*s || strlen(s) > 128)
    return false;
  for (const char *p = s; *p; p++)
    if (!ident_char((unsigned char)*p))
      return false;
  return true;
}


/* ------------------------------------------------------------------------ */
/* Top-level tokens: words (identifier chains), strings, parenthesised groups, characters. */

typedef struct tok {
  const char *p;
  size_t n;
} tok;

#define SQL_MAX_TOKENS 4096

static size_t match_paren(const char *p) {
  int depth = 0;
  const char *s = p;
  while (*p) {
    size_t q = skip_quoted(p);
    if (q) {
      p += q;
      continue;
    }
    if (*p == '(')
      depth++;
    else if (*p == ')' && --depth == 0)
      return (size_t)(p + 1 - s);
    p++;
  }
  return (size_t)(p - s);
}

static size_t tokenize(const char *s, size_t len, tok *out, size_t cap) {
  size_t n = 0;
  const char *p = s, *end = s + len;
  while (p < end && n < cap) {
    if (isspace((unsigned char)*p)) {
      p++;
      continue;
    }
    size_t l = skip_quoted(p);
    if (l && *p != '"' && !(p[0] == '$' && p[1] == '$')) {
      if ((p[0] == '-' && p[1] == '-') || (p[0] == '/' && p[1] == '*')) {
        p += l; /* comments are dropped */
        continue;
      }
    } else if (*p == '"' || ident_start((unsigned char)*p)) {
      l = 0;
      while (p + l < end && (ident_char((unsigned char)p[l]) || p[l] == '.' || p[l] == '"')) {
        if (p[l] == '"')
          l += skip_quoted(p + l);
        else
          l++;
      }
    } else if (*p == '(') {
      l = match_paren(p);
    } else if (!l) {
      l = 1;
      while (p + l < end && (isdigit((unsigned char)p[l]) || (isdigit((unsigned char)*p) && p[l] == '.')))
        l++;
    }
    if (p + l > end)
      l = (size_t)(end - p);
    out[n++] = (tok){p, l};
    p += l;
  }
  return n;
}

static bool is_kw(const tok *t, const char *kw) {
  return t->n == strlen(kw) && !strncasecmp(t->p, kw, t->n);
}

static int put_toks(hl_buf *b, const tok *t, size_t from, size_t to) {
  int rc = 0;
  for (size_t i = from; i < to && rc == 0; i++) {
    if (i > from)
      rc = hl_buf_putc(b, ' ');
    if (rc == 0)
      rc = hl_buf_append(b, t[i].p, t[i].n);
  }
  return rc;
}

/* The last part of an identifier chain, unquoted. */
static void last_part(const tok *t, char *out, size_t cap) {
  const char *p = t->p + t->n;
  while (p > t->p && p[-1] != '.')
    p--;
  size_t o = 0;
  for (; p < t->p + t->n && o + 1 < cap; p++)
    if (*p != '"')
      out[o++] = *p;
  out[o] = '\0';
}

/*
 * CREATE TABLE t (columns) options: column COMMENT '...' and the table
 * options after the column list (CLUSTER BY, CHANGE_TRACKING, COMMENT =,
 * DATA_RETENTION_TIME_IN_DAYS, ...) are dropped; AUTOINCREMENT / IDENTITY
 * columns are filled after insert with the SQLite rowid (increasing in load
 * order) by a trigger. Returns 0 when handled (e set), 1 when the
 * statement is not of that form.
 */
static int create_table(sf_sql *q, const char *sql, json_t *bindings, sf_exec *e) {
  const char *kw = strcasestr(sql, "TABLE");
  if (!kw)
    return 1;
  tok head[16];
  size_t nh = tokenize(kw, strlen(kw), head, 16);
  size_t i = 1;
  if (i + 2 < nh && is_kw(&head[i], "IF") && is_kw(&head[i + 1], "NOT") && is_kw(&head[i + 2], "EXISTS"))
    i += 3;
  if (i + 1 >= nh || head[i + 1].p[0] != '(')
    return 1; /* CREATE TABLE ... AS SELECT, LIKE, CLONE */
  const tok name = head[i], cols = head[i + 1];
  hl_buf b;
  hl_buf_init(&b, SQL_MAX_TEXT);
  hl_buf_append(&b, sql, (size_t)(cols.p - sql));
  hl_buf_putc(&b, '(');
  tok *t = malloc(SQL_MAX_TOKENS * sizeof *t);
  if (!t) {
    hl_buf_free(&b);
    set_error(e, "100000", "22000", "out of memory");
    return 0;
  }
  size_t nt = tokenize(cols.p + 1, cols.n >= 2 ? cols.n - 2 : 0, t, SQL_MAX_TOKENS);
  char autoinc[8][128];
  int nauto = 0;
  for (size_t s0 = 0; s0 < nt;) {
    size_t s1 = s0;
    while (s1 < nt && !(t[s1].n == 1 && t[s1].p[0] == ','))
      s1++;
    bool ai = false;
    for (size_t k = s0; k < s1; k++)
      ai |= is_kw(&t[k], "AUTOINCREMENT") || is_kw(&t[k], "IDENTITY");
    if (ai && nauto < 8)
      last_part(&t[s0], autoinc[nauto++], sizeof autoinc[0]);
    bool first = true;
    for (size_t k = s0; k < s1; k++) {
      if (is_kw(&t[k], "COMMENT")) {
        k += (k + 1 < s1 && t[k + 1].n == 1 && t[k + 1].p[0] == '=') ? 2 : 1;
        continue;
      }
      if (is_kw(&t[k], "AUTOINCREMENT") || is_kw(&t[k], "IDENTITY")) {
        if (k + 1 < s1 && t[k + 1].p[0] == '(')
          k++;
        while (k + 2 < s1 && (is_kw(&t[k + 1], "START") || is_kw(&t[k + 1], "INCREMENT")))
          k += 2;
        if (k + 1 < s1 && (is_kw(&t[k + 1], "ORDER") || is_kw(&t[k + 1], "NOORDER")))
          k++;
        continue;
      }
      if (ai && is_kw(&t[k], "NOT") && k + 1 < s1 && is_kw(&t[k + 1], "NULL")) {
        k++;
        continue;
      }
      if (!first)
        hl_buf_putc(&b, ' ');
      hl_buf_append(&b, t[k].p, t[k].n);
      first = false;
    }
    if (s1 < nt)
      hl_buf_putc(&b, ',');
    s0 = s1 + 1;
  }
  free(t);
  if (hl_buf_putc(&b, ')') < 0) {
    hl_buf_free(&b);
    set_error(e, "100000", "22000", "statement too long for the stand-in");
    return 0;
  }
  run(q, b.data, bindings, e);
  hl_buf_free(&b);
  char table[256], schema[256] = "main";
  last_part(&name, table, sizeof table);
  const char *dot = memchr(name.p, '.', name.n);
  if (dot) {
    tok st = {name.p, (size_t)(dot - name.p)};
    last_part(&st, schema, sizeof schema);
  }
  for (int a = 0; a < nauto && !e->failed; a++) {
    char *trig = sqlite3_mprintf("CREATE TRIGGER IF NOT EXISTS \"%w\".\"%w__autoinc_%w\" AFTER INSERT ON \"%w\" "
                                 "WHEN NEW.\"%w\" IS NULL BEGIN UPDATE \"%w\" SET \"%w\" = NEW.rowid "
                                 "WHERE rowid = NEW.rowid; END",
                                 schema, table, autoinc[a], table, autoinc[a], table, autoinc[a]);
    if (!trig || sqlite3_exec(q->db, trig, NULL, NULL, NULL) != SQLITE_OK) {
      sf_exec_clear(e);
      sqlite_error(e, q->db);
    }
    sqlite3_free(trig);
  }
  return 0;
}

/* Appends pre, then "<object> AS <alias>". */
static void put_as(hl_buf *b, const char *pre, const tok *obj, const tok *alias) {
  hl_buf_puts(b, pre);
  put_toks(b, obj, 0, 1);
  hl_buf_puts(b, " AS ");
  put_toks(b, alias, 0, 1);
}

/* Appends pre, then "(<tokens from..to>)", then post. */
static void put_group(hl_buf *b, const char *pre, const tok *t, size_t from, size_t to, const char *post) {
  hl_buf_puts(b, pre);
  put_toks(b, t, from, to);
  hl_buf_puts(b, post);
}

/* Adds one sub-statement's changes to the MERGE's counters. */
static bool merge_part(sf_sql *q, const hl_buf *sql, json_t *bindings, sf_exec *e, const char *stat, int64_t *count) {
  sf_exec part = {0};
  run(q, sql->data, bindings, &part);
  if (part.failed) {
    *e = part;
    return false;
  }
  *count += json_integer_value(json_object_get(part.stats, stat));
  sf_exec_clear(&part);
  return true;
}

/*
 * MERGE INTO target [AS] t USING source [AS] s ON cond
 *   [WHEN MATCHED [AND c] THEN UPDATE SET ... | DELETE]
 *   [WHEN NOT MATCHED [AND c] THEN INSERT (cols) VALUES (vals)]
 * as UPDATE ... FROM / DELETE ... WHERE EXISTS, then INSERT ... SELECT ...
 * WHERE NOT EXISTS, in one savepoint. One clause of each kind at most.
 */
static void merge_tokens(sf_sql *q, const tok *t, size_t n, json_t *bindings, sf_exec *e);

static void merge(sf_sql *q, const char *sql, json_t *bindings, sf_exec *e) {
  tok *t = malloc(SQL_MAX_TOKENS * sizeof *t);
  if (!t) {
    set_error(e, "100000", "22000", "out of memory");
    return;
  }
  merge_tokens(q, t, tokenize(sql, strlen(sql), t, SQL_MAX_TOKENS), bindings, e);
  free(t);
}

static void merge_tokens(sf_sql *q, const tok *t, size_t n, json_t *bindings, sf_exec *e) {
  size_t i = 2;
  const tok *target, *source;
  tok ta = {0}, sa = {0};
  if (n < 8 || !is_kw(&t[1], "INTO"))
    goto unsupported;
  target = &t[i++];
  if (is_kw(&t[i], "AS"))
    i++;
  if (!is_kw(&t[i], "USING"))
    ta = t[i++];
  if (i >= n || !is_kw(&t[i++], "USING"))
    goto unsupported;
  source = &t[i++];
  if (i < n && is_kw(&t[i], "AS"))
    i++;
  if (i < n && !is_kw(&t[i], "ON"))
    sa = t[i++];
  if (i >= n || !is_kw(&t[i++], "ON") || !ta.n || !sa.n)
    goto unsupported;
  size_t cond0 = i;
  while (i < n && !is_kw(&t[i], "WHEN"))
    i++;
  size_t cond1 = i;
  hl_buf matched, insert;
  hl_buf_init(&matched, SQL_MAX_TEXT);
  hl_buf_init(&insert, SQL_MAX_TEXT);
  bool has_m = false, has_i = false, ok = true;
  const char *mstat = "numRowsUpdated";
  while (i < n && ok) {
    /* WHEN [NOT] MATCHED [AND c] THEN action */
    bool not = i + 1 < n && is_kw(&t[i + 1], "NOT");
    i += not ? 3 : 2;
    size_t c0 = i, c1;
    if (i < n && is_kw(&t[i], "AND"))
      c0 = ++i;
    while (i < n && !is_kw(&t[i], "THEN"))
      i++;
    c1 = i++;
    size_t a0 = i;
    while (i < n && !is_kw(&t[i], "WHEN"))
      i++;
    size_t a1 = i;
    if (a0 >= a1 || (not ? has_i : has_m)) {
      ok = false;
      break;
    }
    hl_buf *b = not ? &insert : &matched;
    if (!not && is_kw(&t[a0], "UPDATE") && a0 + 1 < a1 && is_kw(&t[a0 + 1], "SET")) {
      put_as(b, "UPDATE ", target, &ta);
      hl_buf_puts(b, " SET ");
      /* SQLite wants unqualified columns on the left of SET. */
      bool lhs = true;
      for (size_t k = a0 + 2; k < a1; k++) {
        const char *p = t[k].p;
        size_t len = t[k].n;
        if (lhs && len > ta.n + 1 && !strncasecmp(p, ta.p, ta.n) && p[ta.n] == '.') {
          p += ta.n + 1;
          len -= ta.n + 1;
        }
        if (k > a0 + 2)
          hl_buf_putc(b, ' ');
        hl_buf_append(b, p, len);
        if (t[k].n == 1 && t[k].p[0] == '=')
          lhs = false;
        else if (t[k].n == 1 && t[k].p[0] == ',')
          lhs = true;
      }
      put_as(b, " FROM ", source, &sa);
      put_group(b, " WHERE (", t, cond0, cond1, ")");
    } else if (!not && is_kw(&t[a0], "DELETE") && a1 == a0 + 1) {
      mstat = "numRowsDeleted";
      put_as(b, "DELETE FROM ", target, &ta);
      put_as(b, " WHERE EXISTS (SELECT 1 FROM ", source, &sa);
      put_group(b, " WHERE (", t, cond0, cond1, ")");
      if (c1 > c0)
        put_group(b, " AND (", t, c0, c1, ")");
      hl_buf_putc(b, ')');
      c1 = c0; /* the condition went inside EXISTS */
    } else if (not && is_kw(&t[a0], "INSERT") && a0 + 3 < a1 + 1 && is_kw(&t[a0 + 2], "VALUES") &&
               t[a0 + 1].p[0] == '(' && a0 + 4 == a1 && t[a0 + 3].p[0] == '(') {
      hl_buf_puts(b, "INSERT INTO ");
      put_toks(b, target, 0, 1);
      hl_buf_putc(b, ' ');
      put_toks(b, t, a0 + 1, a0 + 2);
      hl_buf_puts(b, " SELECT ");
      hl_buf_append(b, t[a0 + 3].p + 1, t[a0 + 3].n - 2);
      put_as(b, " FROM ", source, &sa);
      put_as(b, " WHERE NOT EXISTS (SELECT 1 FROM ", target, &ta);
      put_group(b, " WHERE (", t, cond0, cond1, "))");
    } else {
      ok = false;
      break;
    }
    if (c1 > c0)
      put_group(b, " AND (", t, c0, c1, ")");
    if (not)
      has_i = true;
    else
      has_m = true;
  }
  if (!ok || (!has_m && !has_i)) {
    hl_buf_free(&matched);
    hl_buf_free(&insert);
    goto unsupported;
  }
  int64_t changed = 0, inserted = 0;
  sqlite3_exec(q->db, "SAVEPOINT sf_merge", NULL, NULL, NULL);
  bool good = (!has_m || merge_part(q, &matched, bindings, e, mstat, &changed)) &&
              (!has_i || merge_part(q, &insert, bindings, e, "numRowsInserted", &inserted));
  hl_buf_free(&matched);
  hl_buf_free(&insert);
  if (!good) {
    sqlite3_exec(q->db, "ROLLBACK TO sf_merge; RELEASE sf_merge", NULL, NULL, NULL);
    return;
  }
  sqlite3_exec(q->db, "RELEASE sf_merge", NULL, NULL, NULL);
  bool del = !strcmp(mstat, "numRowsDeleted");
  coltype fx = {"fixed", 38, 0, 0};
  e->row_type = json_pack("[o,o]", column_json("number of rows inserted", &fx),
                          column_json(del ? "number of rows deleted" : "number of rows updated", &fx));
  char a[32], c[32];
  snprintf(a, sizeof a, "%lld", (long long)inserted);
  snprintf(c, sizeof c, "%lld", (long long)changed);
  e->rows = json_pack("[[s,s]]", a, c);
  e->stats = json_pack("{s:I,s:I}", "numRowsInserted", (json_int_t)inserted, mstat, (json_int_t)changed);
  return;
unsupported:
  set_error(e, "391912", "0A000",
            "this MERGE form is not supported by the stand-in (see docs/snowflake.md): one WHEN MATCHED "
            "(UPDATE SET or DELETE) and one WHEN NOT MATCHED (INSERT (...) VALUES (...)), both aliases given.");
}

void sf_sql_exec(sf_sql *q, const char *schema, const char *sql, json_t *bindings, bool in_multi, sf_exec *e) {
  memset(e, 0, sizeof *e);
  char w[8][64];
  int n = head_words(sql, w, 8);
  if (n == 0) {
    set_error(e, "001003", "42000", "SQL compilation error:\nsyntax error: empty statement.");
    return;
  }
  if (!strcmp(w[0], "USE") || !strcmp(w[0], "PUT") || !strcmp(w[0], "GET") || !strcmp(w[0], "SET") ||
      !strcmp(w[0], "UNSET") || (!strcmp(w[0], "ALTER") && n > 1 && !strcmp(w[1], "SESSION")) ||
      (!in_multi && (!strcmp(w[0], "BEGIN") || !strcmp(w[0], "START") || !strcmp(w[0], "COMMIT") ||
                     !strcmp(w[0], "ROLLBACK")))) {
    set_error(e, "391911", "0A000", "Unsupported statement type '%s' in the SQL API.", w[0]);
    return;
  }
  if (!strcmp(w[0], "SHOW") || !strcmp(w[0], "DESCRIBE") || !strcmp(w[0], "DESC") ||
      !strcmp(w[0], "COPY") || !strcmp(w[0], "LIST")) {
    set_error(e, "391912", "0A000", "'%s' is not supported by the stand-in (see docs/snowflake.md).", w[0]);
    return;
  }
  int k = 1;
  bool or_replace = false;
  if (!strcmp(w[0], "CREATE") && n > 2 && !strcmp(w[1], "OR") && !strcmp(w[2], "REPLACE")) {
    or_replace = true;
    k = 3;
  }
  while (k < n && (!strcmp(w[k], "TRANSIENT") || !strcmp(w[k], "TEMPORARY") || !strcmp(w[k], "TEMP")))
    k++;
  const char *kind = k < n ? w[k] : "";
  if ((!strcmp(w[0], "CREATE") || !strcmp(w[0], "DROP")) && !strcmp(kind, "SCHEMA")) {
    char name[256];
    object_name(sql, "SCHEMA", name, sizeof name);
    if (!valid_schema_name(name)) {
      set_error(e, "001003", "42000", "SQL compilation error:\ninvalid schema name.");
      return;
    }
    if (!strcmp(w[0], "CREATE") && !attached(q, name)) {
      char *ins = sqlite3_mprintf("INSERT OR IGNORE INTO _standin_schemas(name) VALUES(%Q)", name);
      int rc = attach(q, name);
      if (rc == SQLITE_OK)
        rc = sqlite3_exec(q->db, ins, NULL, NULL, NULL);
      sqlite3_free(ins);
      if (rc != SQLITE_OK) {
        sqlite_error(e, q->db);
        return;
      }
    } else if (!strcmp(w[0], "DROP") && attached(q, name) && strcasecmp(name, "PUBLIC")) {
      char *sq = sqlite3_mprintf("DETACH DATABASE \"%w\"; DELETE FROM _standin_schemas WHERE name = %Q", name, name);
      sqlite3_exec(q->db, sq, NULL, NULL, NULL);
      sqlite3_free(sq);
    }
    char msg[320];
    snprintf(msg, sizeof msg, "Schema %s successfully %s.", name, w[0][0] == 'C' ? "created" : "dropped");
    status_result(e, "status", "text", msg);
    return;
  }
  if (!strcmp(w[0], "CREATE") && !strcmp(kind, "PIPE")) {
    /* CREATE PIPE s.p AS COPY INTO s.t FROM ...: the pipe's target is recorded. */
    char name[512], target[512];
    object_name(sql, "PIPE", name, sizeof name);
    const char *ci = strcasestr(sql, "COPY INTO");
    object_name(ci ? ci : "", "COPY INTO", target, sizeof target);
    if (!name[0] || !target[0]) {
      set_error(e, "001003", "42000", "SQL compilation error:\nCREATE PIPE needs AS COPY INTO <table>.");
      return;
    }
    char pschema[256];
    const char *dot = strchr(name, '.');
    snprintf(pschema, sizeof pschema, "%.*s", dot ? (int)(dot - name) : (int)strlen(schema), dot ? name : schema);
    char *sq = sqlite3_mprintf("INSERT OR REPLACE INTO _standin_pipes VALUES(%Q, %Q, %Q)", pschema,
                               dot ? dot + 1 : name, target);
    int rc = sq ? sqlite3_exec(q->db, sq, NULL, NULL, NULL) : SQLITE_NOMEM;
    sqlite3_free(sq);
    if (rc != SQLITE_OK) {
      sqlite_error(e, q->db);
      return;
    }
    status_result(e, "status", "text", "Pipe successfully created.");
    return;
  }
  if (admin_noop(w, n)) {
    status_result(e, "status", "text", "Statement executed successfully.");
    return;
  }
  hl_buf t;
  hl_buf_init(&t, SQL_MAX_TEXT);
  if (!strcmp(w[0], "CALL")) {
    /* CALL f(...) of a built-in (SYSTEM$WAIT) runs as SELECT f(...). */
    const char *c = strcasestr(sql, "CALL");
    hl_buf_append(&t, sql, (size_t)(c - sql));
    hl_buf_puts(&t, "SELECT");
    sql = c + 4;
  }
  if (rewrite(sql, &t) < 0) {
    hl_buf_free(&t);
    set_error(e, "100000", "22000", "statement too long for the stand-in");
    return;
  }
  char *text = t.data, *owned = NULL;
  if (or_replace && (!strcmp(kind, "TABLE") || !strcmp(kind, "VIEW"))) {
    /* CREATE OR REPLACE T: DROP T IF EXISTS, then CREATE T. */
    char name[512];
    char *create = strcasestr(t.data, kind);
    const char *np = create + strlen(kind);
    while (isspace((unsigned char)*np))
      np++;
    size_t len = 0;
    while (ident_char((unsigned char)np[len]) || np[len] == '.' || np[len] == '"')
      len++;
    snprintf(name, sizeof name, "%.*s", (int)len, np);
    char *drop = sqlite3_mprintf("DROP %s IF EXISTS %s", kind, name);
    int rc = drop ? sqlite3_exec(q->db, drop, NULL, NULL, NULL) : SQLITE_NOMEM;
    sqlite3_free(drop);
    if (rc != SQLITE_OK) {
      sqlite_error(e, q->db);
      hl_buf_free(&t);
      return;
    }
    text = owned = sqlite3_mprintf("CREATE %s", create);
  }
  if (!text)
    set_error(e, "100000", "22000", "out of memory");
  else if (!strcmp(w[0], "MERGE"))
    merge(q, text, bindings, e);
  else if (!(!strcmp(w[0], "CREATE") && !strcmp(kind, "TABLE") && create_table(q, text, bindings, e) == 0))
    run(q, text, bindings, e);
  sqlite3_free(owned);
  hl_buf_free(&t);
}

char *sf_sql_pipe_table(sf_sql *q, const char *schema, const char *pipe) {
  size_t n = strlen(pipe);
  if (n > 10 && !strcasecmp(pipe + n - 10, "-STREAMING"))
    return strndup(pipe, n - 10);
  sqlite3_stmt *st;
  char *out = NULL;
  if (sqlite3_prepare_v2(q->db, "SELECT target FROM _standin_pipes WHERE schema_name = ?1 AND pipe = ?2", -1,
                         &st, NULL) == SQLITE_OK) {
    sqlite3_bind_text(st, 1, schema, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, pipe, -1, SQLITE_TRANSIENT);
    if (sqlite3_step(st) == SQLITE_ROW)
      out = strdup((const char *)sqlite3_column_text(st, 0));
  }
  sqlite3_finalize(st);
  return out;
}

bool sf_sql_table_exists(sf_sql *q, const char *schema, const char *table) {
  if (!attached(q, schema))
    return false;
  char *sql = sqlite3_mprintf("SELECT 1 FROM \"%w\".sqlite_master WHERE type = 'table' AND name = %Q COLLATE NOCASE",
                              strcasecmp(schema, "PUBLIC") ? schema : "main", table);
  sqlite3_stmt *st;
  bool yes = false;
  if (sql && sqlite3_prepare_v2(q->db, sql, -1, &st, NULL) == SQLITE_OK) {
    yes = sqlite3_step(st) == SQLITE_ROW;
    sqlite3_finalize(st);
  }
  sqlite3_free(sql);
  return yes;
}
