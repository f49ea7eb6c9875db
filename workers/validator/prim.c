/* Hand-written checkers for the FHIR R4 JSON Schema patterns; see prim.h. */
#include "prim.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>

static const char *const patterns[HL_PRIM__COUNT] = {
  [HL_PRIM_BOOLEAN] = "^true|false$",
  [HL_PRIM_URI] = "^\\S*$",
  [HL_PRIM_CODE] = "^[^\\s]+(\\s[^\\s]+)*$",
  [HL_PRIM_DATE] = "^([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)(-(0[1-9]|1[0-2])(-(0[1-9]|[1-2][0-9]|3[0-1]))?)?$",
  [HL_PRIM_DATETIME] = "^([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)(-(0[1-9]|1[0-2])(-(0[1-9]|[1-2][0-9]|3[0-1])(T([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\\.[0-9]+)?(Z|(\\+|-)((0[0-9]|1[0-3]):[0-5][0-9]|14:00)))?)?)?$",
  [HL_PRIM_INSTANT] = "^([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)-(0[1-9]|1[0-2])-(0[1-9]|[1-2][0-9]|3[0-1])T([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\\.[0-9]+)?(Z|(\\+|-)((0[0-9]|1[0-3]):[0-5][0-9]|14:00))$",
  [HL_PRIM_TIME] = "^([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\\.[0-9]+)?$",
  [HL_PRIM_DECIMAL] = "^-?(0|[1-9][0-9]*)(\\.[0-9]+)?([eE][+-]?[0-9]+)?$",
  [HL_PRIM_INTEGER] = "^-?([0]|([1-9][0-9]*))$",
  [HL_PRIM_POSITIVEINT] = "^[1-9][0-9]*$",
  [HL_PRIM_UNSIGNEDINT] = "^[0]|([1-9][0-9]*)$",
  [HL_PRIM_ID] = "^[A-Za-z0-9\\-\\.]{1,64}$",
  [HL_PRIM_STRING] = "^[ \\r\\n\\t\\S]+$",
  [HL_PRIM_OID] = "^urn:oid:[0-2](\\.(0|[1-9][0-9]*))+$",
  [HL_PRIM_UUID] = "^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$",
  [HL_PRIM_BASE64] = "^(\\s*([0-9a-zA-Z\\+/=]){4}\\s*)+$",
};

static const char *const names[HL_PRIM__COUNT] = {
  [HL_PRIM_NONE] = "none",         [HL_PRIM_BOOLEAN] = "boolean",
  [HL_PRIM_URI] = "uri",           [HL_PRIM_CODE] = "code",
  [HL_PRIM_DATE] = "date",         [HL_PRIM_DATETIME] = "dateTime",
  [HL_PRIM_INSTANT] = "instant",   [HL_PRIM_TIME] = "time",
  [HL_PRIM_DECIMAL] = "decimal",   [HL_PRIM_INTEGER] = "integer",
  [HL_PRIM_POSITIVEINT] = "positiveInt", [HL_PRIM_UNSIGNEDINT] = "unsignedInt",
  [HL_PRIM_ID] = "id",             [HL_PRIM_STRING] = "string",
  [HL_PRIM_OID] = "oid",           [HL_PRIM_UUID] = "uuid",
  [HL_PRIM_BASE64] = "base64Binary",
};

hl_prim hl_prim_for_pattern(const char *pattern) {
  for (int i = 1; i < HL_PRIM__COUNT; i++)
    if (strcmp(pattern, patterns[i]) == 0) return (hl_prim)i;
  return HL_PRIM_NONE;
}

const char *hl_prim_pattern(hl_prim p) {
  return p > HL_PRIM_NONE && p < HL_PRIM__COUNT ? patterns[p] : NULL;
}

const char *hl_prim_name(hl_prim p) {
  return p >= HL_PRIM_NONE && p < HL_PRIM__COUNT ? names[p] : "?";
}

/* ECMAScript WhiteSpace + LineTerminator (the \s class), as code points:
   U+0009-000D, U+0020, U+00A0, U+1680, U+2000-200A, U+2028, U+2029, U+202F,
   U+205F, U+3000, U+FEFF. */
bool hl_prim_js_space(const unsigned char *s, size_t n, size_t i, size_t *len) {
  unsigned char c = s[i];
  *len = 1;
  if (c < 0x80) return c == ' ' || (c >= 0x09 && c <= 0x0d);
  if (c == 0xc2 && i + 1 < n) {
    *len = 2;
    return s[i + 1] == 0xa0;
  }
  if (c >= 0xc3 && c < 0xe0) {
    *len = 2;
    return false;
  }
  if (c >= 0xe0 && c < 0xf0 && i + 2 < n) {
    unsigned cp = ((unsigned)(c & 0x0f) << 12) | ((unsigned)(s[i + 1] & 0x3f) << 6) | (s[i + 2] & 0x3f);
    *len = 3;
    return cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200a) || cp == 0x2028 || cp == 0x2029 ||
           cp == 0x202f || cp == 0x205f || cp == 0x3000 || cp == 0xfeff;
  }
  if (c >= 0xf0 && i + 3 < n) *len = 4;
  return false;
}

static inline bool dig(char c) { return c >= '0' && c <= '9'; }

/* [A-Za-z0-9.-] as a bit set over ASCII: bits 45, 46, 48-57 of the first word, 65-90 and 97-122 of the second. */
static inline bool id_char(unsigned char c) {
  static const uint64_t set[2] = {0x03ff600000000000ull, 0x07fffffe07fffffeull};
  return c < 128 && (set[c >> 6] >> (c & 63)) & 1;
}

/* Reads exactly two digits at s[*i] in [lo, hi]. */
static bool two(const char *s, size_t n, size_t *i, int lo, int hi) {
  if (*i + 2 > n || !dig(s[*i]) || !dig(s[*i + 1])) return false;
  int v = (s[*i] - '0') * 10 + (s[*i + 1] - '0');
  *i += 2;
  return v >= lo && v <= hi;
}

/* Year: four digits, not 0000. */
static bool year(const char *s, size_t n, size_t *i) {
  if (*i + 4 > n) return false;
  for (int k = 0; k < 4; k++)
    if (!dig(s[*i + k])) return false;
  bool zero = memcmp(s + *i, "0000", 4) == 0;
  *i += 4;
  return !zero;
}

/* hh:mm:ss(.f+)? */
static bool clock(const char *s, size_t n, size_t *i) {
  if (!two(s, n, i, 0, 23) || *i >= n || s[(*i)++] != ':') return false;
  if (!two(s, n, i, 0, 59) || *i >= n || s[(*i)++] != ':') return false;
  if (!two(s, n, i, 0, 60)) return false;
  if (*i < n && s[*i] == '.') {
    size_t st = ++*i;
    while (*i < n && dig(s[*i])) ++*i;
    if (*i == st) return false;
  }
  return true;
}

/* Z | (+|-)((0[0-9]|1[0-3]):[0-5][0-9] | 14:00) */
static bool zone(const char *s, size_t n, size_t *i) {
  if (*i >= n) return false;
  if (s[*i] == 'Z') {
    ++*i;
    return true;
  }
  if (s[*i] != '+' && s[*i] != '-') return false;
  ++*i;
  if (*i + 5 > n) return false;
  if (memcmp(s + *i, "14:00", 5) == 0) {
    *i += 5;
    return true;
  }
  if (!two(s, n, i, 0, 13) || s[(*i)++] != ':') return false;
  return two(s, n, i, 0, 59);
}

static bool check_datelike(hl_prim p, const char *s, size_t n) {
  size_t i = 0;
  if (p == HL_PRIM_TIME) return clock(s, n, &i) && i == n;
  if (!year(s, n, &i)) return false;
  if (i == n) return p != HL_PRIM_INSTANT;
  if (s[i++] != '-' || !two(s, n, &i, 1, 12)) return false;
  if (i == n) return p != HL_PRIM_INSTANT;
  if (s[i++] != '-' || !two(s, n, &i, 1, 31)) return false;
  if (i == n) return p != HL_PRIM_INSTANT;
  if (p == HL_PRIM_DATE || s[i++] != 'T') return false;
  if (!clock(s, n, &i) || !zone(s, n, &i)) return false;
  return i == n;
}

/* -?(0|[1-9][0-9]*) at s[*i]; neg says whether '-' is allowed. */
static bool intpart(const char *s, size_t n, size_t *i, bool neg) {
  if (neg && *i < n && s[*i] == '-') ++*i;
  if (*i >= n || !dig(s[*i])) return false;
  if (s[*i] == '0') {
    ++*i;
    return true;
  }
  while (*i < n && dig(s[*i])) ++*i;
  return true;
}

static bool check_decimal(const char *s, size_t n) {
  size_t i = 0;
  if (!intpart(s, n, &i, true)) return false;
  if (i < n && s[i] == '.') {
    size_t st = ++i;
    while (i < n && dig(s[i])) i++;
    if (i == st) return false;
  }
  if (i < n && (s[i] == 'e' || s[i] == 'E')) {
    i++;
    if (i < n && (s[i] == '+' || s[i] == '-')) i++;
    size_t st = i;
    while (i < n && dig(s[i])) i++;
    if (i == st) return false;
  }
  return i == n;
}

/* ^[0]|([1-9][0-9]*)$: starts with 0, or the trailing run of digits holds a 1-9. */
static bool check_unsigned(const char *s, size_t n) {
  if (n > 0 && s[0] == '0') return true;
  for (size_t i = n; i > 0 && dig(s[i - 1]); i--)
    if (s[i - 1] != '0') return true;
  return false;
}

/* ^[^\s]+(\s[^\s]+)*$: non-empty, no white space at the ends, no two in a row. */
static bool check_code(const unsigned char *s, size_t n) {
  if (n == 0) return false;
  bool prev_space = true; /* a leading space fails */
  for (size_t i = 0; i < n;) {
    size_t l = 1;
    bool sp = s[i] < 0x80 ? s[i] == ' ' || (s[i] >= 0x09 && s[i] <= 0x0d) : hl_prim_js_space(s, n, i, &l);
    if (sp && prev_space) return false;
    prev_space = sp;
    i += l;
  }
  return !prev_space;
}

static bool check_base64(const unsigned char *s, size_t n) {
  size_t count = 0;
  for (size_t i = 0; i < n;) {
    size_t l;
    if (hl_prim_js_space(s, n, i, &l)) {
      if (count % 4 != 0) return false;
      i += l;
      continue;
    }
    unsigned char c = s[i];
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '+' ||
          c == '/' || c == '='))
      return false;
    count++;
    i++;
  }
  return count > 0 && count % 4 == 0;
}

static bool hex_lower(const char *s, size_t k) {
  for (size_t i = 0; i < k; i++)
    if (!dig(s[i]) && !(s[i] >= 'a' && s[i] <= 'f')) return false;
  return true;
}

bool hl_prim_check(hl_prim p, const char *str, size_t n) {
  const unsigned char *s = (const unsigned char *)str;
  switch (p) {
  case HL_PRIM_NONE:
    return true;
  case HL_PRIM_BOOLEAN:
    return (n >= 4 && memcmp(s, "true", 4) == 0) || (n >= 5 && memcmp(s + n - 5, "false", 5) == 0);
  case HL_PRIM_URI:
    for (size_t i = 0; i < n;) {
      if (s[i] < 0x80) { /* the common case, without a call */
        if (s[i] == ' ' || (s[i] >= 0x09 && s[i] <= 0x0d)) return false;
        i++;
        continue;
      }
      size_t l;
      if (hl_prim_js_space(s, n, i, &l)) return false;
      i += l;
    }
    return true;
  case HL_PRIM_STRING:
    if (n == 0) return false;
    for (size_t i = 0; i < n;) {
      if (s[i] < 0x80) {
        if (s[i] == 0x0b || s[i] == 0x0c) return false;
        i++;
        continue;
      }
      size_t l;
      if (hl_prim_js_space(s, n, i, &l)) return false;
      i += l;
    }
    return true;
  case HL_PRIM_CODE:
    return check_code(s, n);
  case HL_PRIM_DATE:
  case HL_PRIM_DATETIME:
  case HL_PRIM_INSTANT:
  case HL_PRIM_TIME:
    return check_datelike(p, str, n);
  case HL_PRIM_DECIMAL:
    return check_decimal(str, n);
  case HL_PRIM_INTEGER: {
    size_t i = 0;
    return intpart(str, n, &i, true) && i == n;
  }
  case HL_PRIM_POSITIVEINT:
    if (n == 0 || s[0] < '1' || s[0] > '9') return false;
    for (size_t i = 1; i < n; i++)
      if (!dig(str[i])) return false;
    return true;
  case HL_PRIM_UNSIGNEDINT:
    return check_unsigned(str, n);
  case HL_PRIM_ID:
    if (n < 1 || n > 64) return false;
    for (size_t i = 0; i < n; i++)
      if (!id_char(s[i])) return false;
    return true;
  case HL_PRIM_OID: {
    if (n < 8 || memcmp(s, "urn:oid:", 8) != 0) return false;
    size_t i = 8;
    if (i >= n || s[i] < '0' || s[i] > '2') return false;
    i++;
    int arcs = 0;
    while (i < n) {
      if (s[i] != '.') return false;
      i++;
      if (!intpart(str, n, &i, false)) return false;
      arcs++;
    }
    return arcs > 0;
  }
  case HL_PRIM_UUID:
    return n == 45 && memcmp(s, "urn:uuid:", 9) == 0 && hex_lower(str + 9, 8) && s[17] == '-' &&
           hex_lower(str + 18, 4) && s[22] == '-' && hex_lower(str + 23, 4) && s[27] == '-' &&
           hex_lower(str + 28, 4) && s[32] == '-' && hex_lower(str + 33, 12);
  case HL_PRIM_BASE64:
    return check_base64(s, n);
  case HL_PRIM__COUNT:
    break;
  }
  return false;
}

void hl_prim_date_parts(const char *s, size_t n, int *y, int *m, int *d) {
  *y = *m = *d = 0;
  if (n >= 4) *y = (s[0] - '0') * 1000 + (s[1] - '0') * 100 + (s[2] - '0') * 10 + (s[3] - '0');
  if (n >= 7) *m = (s[5] - '0') * 10 + (s[6] - '0');
  if (n >= 10) *d = (s[8] - '0') * 10 + (s[9] - '0');
}

int hl_prim_regex_translate(const char *js, char *out, size_t outlen) {
  size_t o = 0;
  bool in_class = false;
#define PUT(str)                                                                                  \
  do {                                                                                            \
    size_t l_ = strlen(str);                                                                      \
    if (o + l_ >= outlen) return -ENOSPC;                                                         \
    memcpy(out + o, str, l_);                                                                     \
    o += l_;                                                                                      \
  } while (0)
  for (const char *p = js; *p; p++) {
    char c = *p;
    if (c == '[' && !in_class) {
      in_class = true;
      PUT("[");
      if (p[1] == '^') {
        PUT("^");
        p++;
      }
      continue;
    }
    if (c == ']' && in_class) {
      in_class = false;
      PUT("]");
      continue;
    }
    if (c != '\\') {
      char one[2] = {c, 0};
      PUT(one);
      continue;
    }
    char e = *++p;
    if (e == 0) return -EINVAL;
    if (in_class) {
      /* Inside brackets POSIX has no escapes: emit the literal character.
         A '-' goes last so that it is not read as a range. */
      if (e == 't') PUT("\t");
      else if (e == 'r') PUT("\r");
      else if (e == 'n') PUT("\n");
      else if (e == 's') PUT("[:space:]");
      else if (e == 'd') PUT("0-9");
      else if (e == 'S' || e == 'D' || e == 'w' || e == 'W' || e == 'b') return -EINVAL;
      else if (e == '-') {
        /* Moves the dash to the end of the bracket expression. */
        const char *close = strchr(p, ']');
        if (!close) return -EINVAL;
        size_t rest = (size_t)(close - p - 1);
        if (o + rest + 2 >= outlen) return -ENOSPC;
        /* Copies the rest of the class, translating nothing more than \. escapes. */
        for (const char *q = p + 1; q < close; q++) {
          if (*q == '\\') {
            q++;
            if (q >= close || (*q != '.' && *q != '+' && *q != '/')) return -EINVAL;
          }
          out[o++] = *q;
        }
        out[o++] = '-';
        p = close - 1;
      } else {
        char one[2] = {e, 0};
        PUT(one);
      }
    } else {
      if (e == 's') PUT("[[:space:]]");
      else if (e == 'S') PUT("[^[:space:]]");
      else if (e == 'd') PUT("[0-9]");
      else if (e == 't') PUT("\t");
      else if (e == 'r') PUT("\r");
      else if (e == 'n') PUT("\n");
      else if (strchr(".+*?()[]{}|^$\\/-", e)) {
        char two_[3] = {'\\', e, 0};
        if (e == '/' || e == '-') two_[0] = e, two_[1] = 0;
        PUT(two_);
      } else
        return -EINVAL;
    }
  }
  if (in_class) return -EINVAL;
  if (o >= outlen) return -ENOSPC;
  out[o] = 0;
  return 0;
#undef PUT
}
