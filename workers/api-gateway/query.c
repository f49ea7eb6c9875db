/* Query strings and FHIR search parameters (see query.h). */
#include "query.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hl/error.h"
#include "hl/warehouse.h"

static int fail(char *err, size_t errlen, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail(char *err, size_t errlen, int rc, const char *fmt, ...) {
  if (err && errlen) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
  }
  return rc;
}

static int hexval(int c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

/* Decodes src[0..n) into dst (NUL-terminated); returns the decoded length or -1. */
static long decode(const char *src, size_t n, char *dst) {
  size_t o = 0;
  for (size_t i = 0; i < n; i++) {
    char c = src[i];
    if (c == '+') {
      c = ' ';
    } else if (c == '%') {
      if (i + 2 >= n)
        return -1;
      int h = hexval((unsigned char)src[i + 1]), l = hexval((unsigned char)src[i + 2]);
      if (h < 0 || l < 0)
        return -1;
      c = (char)(h * 16 + l);
      i += 2;
      if (c == 0)
        return -1;
    } else if (c == 0) {
      return -1;
    }
    dst[o++] = c;
  }
  dst[o] = 0;
  return (long)o;
}

int hl_api_query_parse(const char *raw, size_t len, hl_api_query *q, char *err, size_t errlen) {
  hl_api_query tmp = {0};
  if (!raw)
    raw = "";
  tmp.arena = malloc(len + 2 * HL_API_MAX_PARAMS + 2);
  if (!tmp.arena)
    return -ENOMEM;
  char *out = tmp.arena;
  size_t i = 0;
  int rc = 0;
  while (i < len) {
    size_t j = i;
    while (j < len && raw[j] != '&')
      j++;
    if (j > i) {
      if (tmp.n == HL_API_MAX_PARAMS) {
        rc = fail(err, errlen, HL_ELIMIT, "more than %d query parameters", HL_API_MAX_PARAMS);
        goto out;
      }
      const char *eq = memchr(raw + i, '=', j - i);
      size_t nlen = eq ? (size_t)(eq - (raw + i)) : j - i;
      const char *v = eq ? eq + 1 : raw + j;
      size_t vlen = eq ? (size_t)(raw + j - v) : 0;
      hl_api_kv *kv = &tmp.kv[tmp.n];
      kv->name = out;
      long dn = decode(raw + i, nlen, out);
      if (dn <= 0) {
        rc = fail(err, errlen, HL_EPARSE, dn == 0 ? "empty parameter name" : "malformed escape in a parameter name");
        goto out;
      }
      out += dn + 1;
      kv->value = out;
      long dv = decode(v, vlen, out);
      if (dv < 0) {
        rc = fail(err, errlen, HL_EPARSE, "malformed escape in the value of %s", kv->name);
        goto out;
      }
      if ((size_t)dv > HL_API_MAX_VALUE_BYTES) {
        rc = fail(err, errlen, HL_EPARSE, "the value of %s is longer than %d bytes", kv->name,
                  HL_API_MAX_VALUE_BYTES);
        goto out;
      }
      out += dv + 1;
      tmp.n++;
    }
    i = j + 1;
  }
out:
  if (rc < 0) {
    free(tmp.arena);
    return rc;
  }
  *q = tmp;
  return 0;
}

void hl_api_query_clear(hl_api_query *q) {
  if (!q)
    return;
  free(q->arena);
  memset(q, 0, sizeof *q);
}

const char *hl_api_query_get(const hl_api_query *q, const char *name) {
  for (size_t i = 0; i < q->n; i++)
    if (!strcmp(q->kv[i].name, name))
      return q->kv[i].value;
  return NULL;
}

bool hl_api_valid_id(const char *s) {
  size_t n = 0;
  for (; s[n]; n++) {
    char c = s[n];
    if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
          c == '.'))
      return false;
    if (n >= 64)
      return false;
  }
  return n > 0;
}

/* ---- Dates ---------------------------------------------------------------------- */

static int64_t days_from_civil(int64_t y, int m, int d) {
  y -= m <= 2;
  int64_t era = (y >= 0 ? y : y - 399) / 400;
  int64_t yoe = y - era * 400;
  int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, int *m, int *d) {
  z += 719468;
  int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  int64_t doe = z - era * 146097;
  int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  int64_t mp = (5 * doy + 2) / 153;
  *d = (int)(doy - (153 * mp + 2) / 5 + 1);
  *m = (int)(mp < 10 ? mp + 3 : mp - 9);
  *y = yoe + era * 400 + (*m <= 2);
}

static int digits(const char *s, size_t len, size_t at, size_t n, int *out) {
  if (at + n > len)
    return -1;
  int v = 0;
  for (size_t i = 0; i < n; i++) {
    char c = s[at + i];
    if (c < '0' || c > '9')
      return -1;
    v = v * 10 + (c - '0');
  }
  *out = v;
  return 0;
}

static int month_days(int y, int m) {
  static const int md[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
    return 29;
  return md[m - 1];
}

int hl_api_date_range(const char *s, size_t len, int64_t *lo, int64_t *hi) {
  int y, mo = 1, d = 1, h = 0, mi = 0, sec = 0, ms = 0;
  size_t p = 0;
  int prec; /* 0 year, 1 month, 2 day, 3 minute, 4 second, 5+ fraction digits */
  int64_t step_ms = 0;
  if (digits(s, len, 0, 4, &y) < 0 || y < 1)
    return HL_EPARSE;
  p = 4;
  prec = 0;
  if (p < len && s[p] == '-') {
    if (digits(s, len, p + 1, 2, &mo) < 0 || mo < 1 || mo > 12)
      return HL_EPARSE;
    p += 3;
    prec = 1;
    if (p < len && s[p] == '-') {
      if (digits(s, len, p + 1, 2, &d) < 0 || d < 1 || d > month_days(y, mo))
        return HL_EPARSE;
      p += 3;
      prec = 2;
      if (p < len && s[p] == 'T') {
        if (digits(s, len, p + 1, 2, &h) < 0 || h > 23 || p + 3 >= len || s[p + 3] != ':' ||
            digits(s, len, p + 4, 2, &mi) < 0 || mi > 59)
          return HL_EPARSE;
        p += 6;
        prec = 3;
        step_ms = 60000;
        if (p < len && s[p] == ':') {
          if (digits(s, len, p + 1, 2, &sec) < 0 || sec > 60)
            return HL_EPARSE;
          if (sec == 60)
            sec = 59;
          p += 3;
          prec = 4;
          step_ms = 1000;
          if (p < len && s[p] == '.') {
            size_t nd = 0;
            p++;
            int scale = 100;
            while (p < len && s[p] >= '0' && s[p] <= '9') {
              if (nd < 3)
                ms += (s[p] - '0') * scale;
              scale /= 10;
              nd++;
              p++;
              if (nd > 9)
                return HL_EPARSE;
            }
            if (nd == 0)
              return HL_EPARSE;
            step_ms = nd >= 3 ? 1 : (nd == 2 ? 10 : 100);
          }
        }
      }
    }
  }
  int64_t off_min = 0;
  if (prec >= 3) {
    if (p < len && s[p] == 'Z') {
      p++;
    } else if (p < len && (s[p] == '+' || s[p] == '-')) {
      int oh, om;
      if (digits(s, len, p + 1, 2, &oh) < 0 || oh > 14 || p + 3 >= len || s[p + 3] != ':' ||
          digits(s, len, p + 4, 2, &om) < 0 || om > 59)
        return HL_EPARSE;
      off_min = (oh * 60 + om) * (s[p] == '-' ? -1 : 1);
      p += 6;
    }
  }
  if (p != len)
    return HL_EPARSE;
  int64_t day = days_from_civil(y, mo, d);
  int64_t start = ((day * 24 + h) * 60 + mi - off_min) * 60000 + (int64_t)sec * 1000 + ms;
  int64_t end;
  if (prec == 0)
    end = days_from_civil((int64_t)y + 1, 1, 1) * 86400000LL;
  else if (prec == 1)
    end = (mo == 12 ? days_from_civil((int64_t)y + 1, 1, 1) : days_from_civil(y, mo + 1, 1)) * 86400000LL;
  else if (prec == 2)
    end = (day + 1) * 86400000LL;
  else
    end = start + step_ms;
  *lo = start;
  *hi = end;
  return 0;
}

void hl_api_format_instant(int64_t ms, char *out, size_t outlen) {
  int64_t days = ms >= 0 ? ms / 86400000LL : -((-ms + 86399999LL) / 86400000LL);
  int64_t rem = ms - days * 86400000LL;
  int64_t y;
  int m, d;
  civil_from_days(days, &y, &m, &d);
  snprintf(out, outlen, "%04lld-%02d-%02dT%02d:%02d:%02d.%03dZ", (long long)y, m, d,
           (int)(rem / 3600000), (int)(rem / 60000 % 60), (int)(rem / 1000 % 60), (int)(rem % 1000));
}

/* ---- base64url for cursors ------------------------------------------------------------- */

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static size_t b64url_encode(const unsigned char *in, size_t n, char *out) {
  size_t o = 0;
  for (size_t i = 0; i < n; i += 3) {
    uint32_t v = (uint32_t)in[i] << 16;
    if (i + 1 < n)
      v |= (uint32_t)in[i + 1] << 8;
    if (i + 2 < n)
      v |= in[i + 2];
    out[o++] = b64[(v >> 18) & 63];
    out[o++] = b64[(v >> 12) & 63];
    if (i + 1 < n)
      out[o++] = b64[(v >> 6) & 63];
    if (i + 2 < n)
      out[o++] = b64[v & 63];
  }
  out[o] = 0;
  return o;
}

static long b64url_decode(const char *in, size_t n, unsigned char *out) {
  uint32_t acc = 0;
  int bits = 0;
  size_t o = 0;
  for (size_t i = 0; i < n; i++) {
    const char *p = memchr(b64, in[i], 64);
    if (!p || !in[i])
      return -1;
    acc = (acc << 6) | (uint32_t)(p - b64);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (unsigned char)((acc >> bits) & 0xff);
    }
  }
  return (long)o;
}

int hl_api_cursor_encode(int dir, bool key_is_int, int64_t key_int, const char *key_text,
                         const char *id, char *out, size_t outlen) {
  char raw[3 * HL_API_MAX_VALUE_BYTES / 4];
  int n = key_is_int
              ? snprintf(raw, sizeof raw, "%c\x1fi\x1f%lld\x1f%s", dir < 0 ? 'b' : 'a', (long long)key_int, id)
              : snprintf(raw, sizeof raw, "%c\x1fs\x1f%s\x1f%s", dir < 0 ? 'b' : 'a', key_text ? key_text : "", id);
  if (n < 0 || (size_t)n >= sizeof raw || outlen < ((size_t)n + 2) / 3 * 4 + 1)
    return HL_ELIMIT;
  b64url_encode((const unsigned char *)raw, (size_t)n, out);
  return 0;
}

/* ---- Search parameters ---------------------------------------------------------------- */

/* Splits s in place on unescaped sep; unescapes "\," "\|" "\$" "\\". Returns the pieces. */
static size_t split_escaped(char *s, char sep, char **parts, size_t max) {
  size_t n = 0;
  char *w = s, *start = s;
  for (char *r = s;; r++) {
    if (*r == '\\' && r[1]) {
      *w++ = *++r;
      continue;
    }
    if (*r == sep || !*r) {
      bool end = !*r;
      *w = 0;
      if (n < max)
        parts[n] = start;
      n++;
      if (end)
        break;
      w = r + 1;
      start = w;
      continue;
    }
    *w++ = *r;
  }
  return n;
}

/* The first unescaped sep in s, NULL if none. */
static char *find_unescaped(char *s, char sep) {
  for (char *p = s; *p; p++) {
    if (*p == '\\' && p[1]) {
      p++;
      continue;
    }
    if (*p == sep)
      return p;
  }
  return NULL;
}

/* Removes backslash escapes in place. */
static void unescape(char *s) {
  char *w = s;
  for (char *r = s; *r; r++) {
    if (*r == '\\' && r[1])
      r++;
    *w++ = *r;
  }
  *w = 0;
}

static int parse_prefix(const char *v, hl_api_prefix *p) {
  static const struct { const char *s; hl_api_prefix p; } t[] = {
      {"eq", HL_PFX_EQ}, {"ne", HL_PFX_NE}, {"lt", HL_PFX_LT}, {"gt", HL_PFX_GT},
      {"le", HL_PFX_LE}, {"ge", HL_PFX_GE}, {"sa", HL_PFX_SA}, {"eb", HL_PFX_EB}};
  *p = HL_PFX_EQ;
  if (v[0] >= 'a' && v[0] <= 'z' && v[1] >= 'a' && v[1] <= 'z') {
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
      if (v[0] == t[i].s[0] && v[1] == t[i].s[1]) {
        *p = t[i].p;
        return 2;
      }
    return -1;
  }
  return 0;
}

/* Arena of strings kept by a search; simple list of malloc'ed blocks. */
typedef struct arena_blk {
  struct arena_blk *next;
  char data[];
} arena_blk;

static char *arena_dup(hl_api_search *s, const char *src, size_t n) {
  arena_blk *b = malloc(sizeof *b + n + 1);
  if (!b)
    return NULL;
  memcpy(b->data, src, n);
  b->data[n] = 0;
  b->next = (arena_blk *)s->arena;
  s->arena = (char *)b;
  return b->data;
}

static int parse_number(const char *v, double *num, double *half) {
  const char *p = v;
  if (*p == '-' || *p == '+')
    p++;
  size_t intd = 0, fracd = 0;
  while (*p >= '0' && *p <= '9')
    p++, intd++;
  if (*p == '.') {
    p++;
    while (*p >= '0' && *p <= '9')
      p++, fracd++;
  }
  bool expo = false;
  if ((*p == 'e' || *p == 'E') && intd + fracd > 0) {
    p++;
    if (*p == '-' || *p == '+')
      p++;
    if (!(*p >= '0' && *p <= '9'))
      return -1;
    while (*p >= '0' && *p <= '9')
      p++;
    expo = true;
  }
  if (*p || intd + fracd == 0 || fracd > 15)
    return -1;
  char *end;
  errno = 0;
  double d = strtod(v, &end);
  if (*end || errno || !isfinite(d))
    return -1;
  *num = d;
  *half = expo ? fabs(d) * 1e-12 : 0.5 * pow(10.0, -(double)fracd);
  return 0;
}

static int parse_value(hl_api_search *s, const hl_api_param_def *def, hl_api_modifier mod,
                       char *v, hl_api_value *out, char *err, size_t errlen) {
  memset(out, 0, sizeof *out);
  if (mod == HL_MOD_MISSING) {
    if (strcmp(v, "true") && strcmp(v, "false"))
      return fail(err, errlen, HL_EPARSE, "%s:missing takes true or false", def->name);
    out->missing = !strcmp(v, "true");
    return 0;
  }
  switch (def->kind) {
  case HL_SP_STRING: {
    unescape(v);
    if (!*v)
      return fail(err, errlen, HL_EPARSE, "empty value for %s", def->name);
    char *norm = hl_wh_normalize(v, strlen(v));
    if (!norm)
      return -ENOMEM;
    out->text = arena_dup(s, norm, strlen(norm));
    free(norm);
    return out->text ? 0 : -ENOMEM;
  }
  case HL_SP_TOKEN: {
    char *bar = find_unescaped(v, '|');
    if (bar) {
      *bar = 0;
      unescape(v);
      unescape(bar + 1);
      if (!*v && !bar[1])
        return fail(err, errlen, HL_EPARSE, "empty token for %s", def->name);
      out->system = arena_dup(s, v, strlen(v));
      out->text = bar[1] ? arena_dup(s, bar + 1, strlen(bar + 1)) : NULL;
      if (!out->system || (bar[1] && !out->text))
        return -ENOMEM;
    } else {
      unescape(v);
      if (!*v)
        return fail(err, errlen, HL_EPARSE, "empty token for %s", def->name);
      out->text = arena_dup(s, v, strlen(v));
      if (!out->text)
        return -ENOMEM;
    }
    return 0;
  }
  case HL_SP_REFERENCE: {
    unescape(v);
    const char *id = v;
    char *slash = strrchr(v, '/');
    if (slash) {
      *slash = 0;
      const char *type = strrchr(v, '/') ? strrchr(v, '/') + 1 : v;
      if (strcmp(type, def->target))
        return fail(err, errlen, HL_EPARSE, "%s refers to %s, not %s", def->name, def->target, type);
      id = slash + 1;
    }
    if (!hl_api_valid_id(id))
      return fail(err, errlen, HL_EPARSE, "%s: not a valid id", def->name);
    out->text = arena_dup(s, id, strlen(id));
    return out->text ? 0 : -ENOMEM;
  }
  case HL_SP_DATE: {
    int k = parse_prefix(v, &out->prefix);
    if (k < 0)
      return fail(err, errlen, HL_EPARSE, "%s: unknown prefix", def->name);
    if (hl_api_date_range(v + k, strlen(v + k), &out->lo, &out->hi) < 0)
      return fail(err, errlen, HL_EPARSE, "%s: not a FHIR date or dateTime", def->name);
    return 0;
  }
  case HL_SP_QUANTITY: {
    int k = parse_prefix(v, &out->prefix);
    if (k < 0)
      return fail(err, errlen, HL_EPARSE, "%s: unknown prefix", def->name);
    char *parts[4];
    size_t np = split_escaped(v + k, '|', parts, 4);
    if (np != 1 && np != 3)
      return fail(err, errlen, HL_EPARSE, "%s: expected number or number|system|code", def->name);
    double half;
    if (parse_number(parts[0], &out->num, &half) < 0)
      return fail(err, errlen, HL_EPARSE, "%s: not a number", def->name);
    out->num_lo = out->num - half;
    out->num_hi = out->num + half;
    if (np == 3 && *parts[2]) {
      out->unit = arena_dup(s, parts[2], strlen(parts[2]));
      if (!out->unit)
        return -ENOMEM;
    }
    return 0;
  }
  }
  return fail(err, errlen, HL_EPARSE, "unsupported parameter %s", def->name);
}

static int parse_cursor(hl_api_search *s, const char *v, char *err, size_t errlen) {
  size_t n = strlen(v);
  unsigned char raw[HL_API_MAX_VALUE_BYTES];
  long dn = b64url_decode(v, n, raw);
  if (dn < 5 || memchr(raw, 0, (size_t)dn))
    return fail(err, errlen, HL_EPARSE, "invalid _cursor");
  char *f[5];
  char *copy = arena_dup(s, (const char *)raw, (size_t)dn);
  if (!copy)
    return -ENOMEM;
  size_t nf = 0;
  for (char *p = copy;; ) {
    char *sep = strchr(p, '\x1f');
    if (nf < 5)
      f[nf] = p;
    nf++;
    if (!sep)
      break;
    *sep = 0;
    p = sep + 1;
  }
  if (nf != 4 || (strcmp(f[0], "a") && strcmp(f[0], "b")) ||
      (strcmp(f[1], "i") && strcmp(f[1], "s")) || !hl_api_valid_id(f[3]))
    return fail(err, errlen, HL_EPARSE, "invalid _cursor");
  s->cursor.dir = f[0][0] == 'a' ? 1 : -1;
  s->cursor.key_is_int = f[1][0] == 'i';
  if (s->cursor.key_is_int) {
    char *end;
    errno = 0;
    long long k = strtoll(f[2], &end, 10);
    if (*end || errno || !*f[2])
      return fail(err, errlen, HL_EPARSE, "invalid _cursor");
    s->cursor.key_int = k;
  } else {
    s->cursor.key_text = f[2];
  }
  s->cursor.id = f[3];
  return 0;
}

static bool is_result_param(const char *n) {
  return !strcmp(n, "_count") || !strcmp(n, "_sort") || !strcmp(n, "_summary") ||
         !strcmp(n, "_include") || !strcmp(n, "_format") || !strcmp(n, "_pretty") ||
         !strcmp(n, "_cursor") || !strcmp(n, "_total");
}

int hl_api_search_parse(const hl_api_type_def *t, const hl_api_query *q,
                        const hl_api_search_opts *opts, hl_api_search *out, char *err, size_t errlen) {
  hl_api_search s = {0};
  int rc = 0;
  int defc = opts && opts->default_count > 0 ? opts->default_count : 20;
  int maxc = opts && opts->max_count > 0 ? opts->max_count : 100;
  bool seen_count = false, seen_sort = false, seen_summary = false, seen_cursor = false;
  s.type = t;
  s.count = defc < maxc ? defc : maxc;
  s.clauses = calloc(q->n ? q->n : 1, sizeof *s.clauses);
  if (!s.clauses)
    return -ENOMEM;
  char namebuf[128];
  for (size_t i = 0; i < q->n; i++) {
    const char *name = q->kv[i].name, *value = q->kv[i].value;
    if (strlen(name) >= sizeof namebuf) {
      rc = fail(err, errlen, HL_EPARSE, "parameter name too long");
      goto fail;
    }
    if (is_result_param(name)) {
      if (!strcmp(name, "_count")) {
        char *end;
        errno = 0;
        long c = strtol(value, &end, 10);
        if (seen_count || !*value || *end || errno || c < 0) {
          rc = fail(err, errlen, HL_EPARSE, "_count must be one non-negative integer");
          goto fail;
        }
        seen_count = true;
        if (c == 0)
          s.summary_count = true;
        else
          s.count = c > maxc ? maxc : (int)c;
      } else if (!strcmp(name, "_summary")) {
        if (seen_summary || (strcmp(value, "count") && strcmp(value, "false"))) {
          rc = fail(err, errlen, HL_EPARSE, "_summary supports count and false");
          goto fail;
        }
        seen_summary = true;
        if (!strcmp(value, "count"))
          s.summary_count = true;
      } else if (!strcmp(name, "_sort")) {
        const char *k = value;
        bool desc = false;
        if (*k == '-') {
          desc = true;
          k++;
        }
        const hl_api_param_def *d = hl_api_param_find(t, k);
        if (seen_sort || strchr(k, ',') || !d || !d->sortable) {
          rc = fail(err, errlen, HL_EPARSE, "_sort: one sortable parameter of %s expected", t->type);
          goto fail;
        }
        seen_sort = true;
        s.sort = strcmp(d->name, "_id") ? d : NULL;
        s.sort_desc = desc;
      } else if (!strcmp(name, "_include")) {
        size_t tl = strlen(t->type);
        const char *p = value + tl + 1;
        const hl_api_param_def *d = NULL;
        if (!strncmp(value, t->type, tl) && value[tl] == ':') {
          char pn[64];
          size_t pl = strcspn(p, ":");
          if (pl < sizeof pn && (!p[pl] || !strcmp(p + pl + 1, "Patient"))) {
            memcpy(pn, p, pl);
            pn[pl] = 0;
            d = hl_api_param_find(t, pn);
          }
        }
        if (!d || d->kind != HL_SP_REFERENCE || strcmp(d->target, "Patient") || !t->patient_col ||
            strcmp(d->col, t->patient_col)) {
          rc = fail(err, errlen, HL_EPARSE, "_include supports %s:patient (the subject patient)", t->type);
          goto fail;
        }
        s.include_patient = true;
      } else if (!strcmp(name, "_cursor")) {
        if (seen_cursor) {
          rc = fail(err, errlen, HL_EPARSE, "invalid _cursor");
          goto fail;
        }
        seen_cursor = true;
        if ((rc = parse_cursor(&s, value, err, errlen)) < 0)
          goto fail;
      } else if (!strcmp(name, "_total")) {
        if (strcmp(value, "accurate") && strcmp(value, "estimate") && strcmp(value, "none")) {
          rc = fail(err, errlen, HL_EPARSE, "_total takes none, estimate or accurate");
          goto fail;
        }
      }
      continue;
    }
    snprintf(namebuf, sizeof namebuf, "%s", name);
    char *colon = strchr(namebuf, ':');
    hl_api_modifier mod = HL_MOD_NONE;
    if (colon)
      *colon = 0;
    const hl_api_param_def *d = hl_api_param_find(t, namebuf);
    if (!d) {
      rc = fail(err, errlen, HL_EPARSE, "unknown search parameter '%s' for %s", namebuf, t->type);
      goto fail;
    }
    if (colon) {
      const char *m = colon + 1;
      if (!strcmp(m, "missing"))
        mod = HL_MOD_MISSING;
      else if (!strcmp(m, "contains") && d->kind == HL_SP_STRING)
        mod = HL_MOD_CONTAINS;
      else if (!strcmp(m, "not") && d->kind == HL_SP_TOKEN)
        mod = HL_MOD_NOT;
      else if (d->kind == HL_SP_REFERENCE && !strcmp(m, d->target))
        mod = HL_MOD_NONE;
      else {
        rc = fail(err, errlen, HL_EPARSE, "unsupported modifier '%s' on %s", m, d->name);
        goto fail;
      }
    }
    hl_api_clause *c = &s.clauses[s.nclauses];
    c->def = d;
    c->modifier = mod;
    char *vcopy = arena_dup(&s, value, strlen(value));
    if (!vcopy) {
      rc = -ENOMEM;
      goto fail;
    }
    char *parts[HL_API_MAX_VALUES];
    size_t np;
    if (d->kind == HL_SP_STRING || d->kind == HL_SP_TOKEN || d->kind == HL_SP_QUANTITY) {
      /* Keep escapes of '|' for tokens and quantities: split on commas only. */
      np = 0;
      char *start = vcopy;
      for (char *p = vcopy;; p++) {
        if (*p == '\\' && p[1]) {
          p++;
          continue;
        }
        if (*p == ',' || !*p) {
          bool end = !*p;
          *p = 0;
          if (np < HL_API_MAX_VALUES)
            parts[np] = start;
          np++;
          if (end)
            break;
          start = p + 1;
        }
      }
    } else {
      np = split_escaped(vcopy, ',', parts, HL_API_MAX_VALUES);
    }
    if (np > HL_API_MAX_VALUES) {
      rc = fail(err, errlen, HL_EPARSE, "%s: more than %d values", d->name, HL_API_MAX_VALUES);
      goto fail;
    }
    if (mod == HL_MOD_MISSING && np != 1) {
      rc = fail(err, errlen, HL_EPARSE, "%s:missing takes one value", d->name);
      goto fail;
    }
    for (size_t k = 0; k < np; k++) {
      if ((rc = parse_value(&s, d, mod, parts[k], &c->values[k], err, errlen)) < 0)
        goto fail;
    }
    c->nvalues = np;
    s.nclauses++;
  }
  if (s.cursor.dir) {
    bool want_int = s.sort && s.sort->kind == HL_SP_DATE;
    if (want_int != s.cursor.key_is_int) {
      rc = fail(err, errlen, HL_EPARSE, "invalid _cursor for this _sort");
      goto fail;
    }
  }
  *out = s;
  return 0;
fail:
  hl_api_search_clear(&s);
  return rc;
}

void hl_api_search_clear(hl_api_search *s) {
  if (!s)
    return;
  arena_blk *b = (arena_blk *)s->arena;
  while (b) {
    arena_blk *n = b->next;
    free(b);
    b = n;
  }
  free(s->clauses);
  memset(s, 0, sizeof *s);
}
