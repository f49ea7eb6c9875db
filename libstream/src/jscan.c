#include "hl/jscan.h"

#include <stdint.h>
#include <string.h>

#include "hl/buf.h"
#include "hl/error.h"

/* Character classes inside strings: 0 plain ASCII, 1 quote/backslash, 2 control, 3 UTF-8 lead. */
static const uint8_t str_class[256] = {
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
};

typedef struct scan {
  const unsigned char *p, *end, *start;
  hl_jscan_result *res;
} scan;

static int fail(scan *s, hl_jscan_error e, const char *msg) {
  if (s->p >= s->end && e == HL_JSCAN_ESYNTAX) {
    e = HL_JSCAN_ETRUNCATED;
    msg = "unexpected end of input";
  }
  s->res->error = e;
  s->res->message = msg;
  s->res->offset = (size_t)(s->p - s->start);
  return HL_EPARSE;
}

/* Whether c is JSON whitespace; the first test lets every byte above ' ' through at once. */
static inline bool is_ws(unsigned char c) {
  return c <= ' ' && (c == ' ' || c == '\n' || c == '\r' || c == '\t');
}

static inline void skip_ws(scan *s) {
  while (s->p < s->end && is_ws(*s->p))
    s->p++;
}

/*
 * Word-at-a-time string scan (SWAR): eight bytes are tested at once for the
 * bytes that end a run of plain ASCII inside a string, so the byte loop only
 * runs near the end of the input. Little-endian only (the first special byte
 * is the lowest set bit); other machines use the byte loop alone.
 */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__ && defined(__GNUC__)
#define JSCAN_SWAR 1
#define ONES 0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL

/*
 * Bit 7 of a byte of the result is set where w holds '"', '\\', a control
 * character (< 0x20) or a byte >= 0x80 (a UTF-8 sequence). Subtraction
 * borrows only run towards higher bytes and start at a true match, so the
 * lowest set bit always marks the first special byte (bits above it may be
 * spurious and are never used).
 */
static inline uint64_t swar_special(uint64_t w) {
  uint64_t q = w ^ (ONES * '"'), b = w ^ (ONES * '\\');
  return (((q - ONES) & ~q) | ((b - ONES) & ~b) | (w - ONES * 0x20) | w) & HIGHS;
}

#endif

/* The first byte at or after p that ends a run of plain ASCII in a string, or end. */
static inline const unsigned char *next_special(const unsigned char *p, const unsigned char *end) {
#ifdef JSCAN_SWAR
  while (end - p >= 8) {
    uint64_t w;
    memcpy(&w, p, 8);
    uint64_t m = swar_special(w);
    if (m)
      return p + (__builtin_ctzll(m) >> 3);
    p += 8;
  }
#endif
  while (p < end && str_class[*p] == 0)
    p++;
  return p;
}

static int hexval(unsigned char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  c |= 0x20;
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  return -1;
}

static int read_u4(scan *s, unsigned *out) {
  if (s->end - s->p < 4)
    return fail(s, HL_JSCAN_ETRUNCATED, "unexpected end of input in \\u escape");
  unsigned v = 0;
  for (int i = 0; i < 4; i++) {
    int h = hexval(s->p[i]);
    if (h < 0)
      return fail(s, HL_JSCAN_ESYNTAX, "invalid \\u escape");
    v = v << 4 | (unsigned)h;
  }
  s->p += 4;
  *out = v;
  return 0;
}

/* Validates one UTF-8 sequence starting at s->p (a byte >= 0x80). */
static int utf8_seq(scan *s) {
  const unsigned char *p = s->p;
  size_t avail = (size_t)(s->end - p);
  unsigned char c = p[0];
  size_t n;
  unsigned cp;
  if (c >= 0xc2 && c <= 0xdf) {
    n = 2;
    cp = c & 0x1f;
  } else if (c >= 0xe0 && c <= 0xef) {
    n = 3;
    cp = c & 0x0f;
  } else if (c >= 0xf0 && c <= 0xf4) {
    n = 4;
    cp = c & 0x07;
  } else {
    return fail(s, HL_JSCAN_EUTF8, "invalid UTF-8 lead byte");
  }
  if (avail < n)
    return fail(s, HL_JSCAN_EUTF8, "truncated UTF-8 sequence");
  for (size_t i = 1; i < n; i++) {
    if ((p[i] & 0xc0) != 0x80)
      return fail(s, HL_JSCAN_EUTF8, "invalid UTF-8 continuation byte");
    cp = cp << 6 | (p[i] & 0x3f);
  }
  if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)))
    return fail(s, HL_JSCAN_EUTF8, "overlong or out-of-range UTF-8 sequence");
  if (cp >= 0xd800 && cp <= 0xdfff)
    return fail(s, HL_JSCAN_EUTF8, "UTF-8 encoded surrogate");
  s->p += n;
  return 0;
}

/* s->p is at a backslash inside a string: checks the escape and moves past it. */
static int escape(scan *s) {
  s->p++;
  if (s->p >= s->end)
    return fail(s, HL_JSCAN_ETRUNCATED, "unterminated escape");
  unsigned char c = *s->p++;
  switch (c) {
  case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't':
    return 0;
  case 'u': {
    unsigned u;
    if (read_u4(s, &u) < 0)
      return HL_EPARSE;
    if (u >= 0xdc00 && u <= 0xdfff)
      return fail(s, HL_JSCAN_EUTF8, "unpaired low surrogate escape");
    if (u >= 0xd800 && u <= 0xdbff) {
      if (s->end - s->p < 2 || s->p[0] != '\\' || s->p[1] != 'u')
        return fail(s, HL_JSCAN_EUTF8, "unpaired high surrogate escape");
      s->p += 2;
      unsigned lo;
      if (read_u4(s, &lo) < 0)
        return HL_EPARSE;
      if (lo < 0xdc00 || lo > 0xdfff)
        return fail(s, HL_JSCAN_EUTF8, "unpaired high surrogate escape");
    }
    return 0;
  }
  default:
    s->p--;
    return fail(s, HL_JSCAN_ESYNTAX, "invalid escape in string");
  }
}

/*
 * s->p is just past the opening quote. On success s->p is past the closing
 * quote. Plain runs are scanned with a local pointer; escapes and UTF-8
 * sequences (rarer) go through s.
 */
static inline int string(scan *s, bool *escaped) {
  const unsigned char *p = s->p, *end = s->end;
  bool esc = false;
  for (;;) {
    p = next_special(p, end);
    s->p = p;
    if (p >= end)
      return fail(s, HL_JSCAN_ETRUNCATED, "unterminated string");
    unsigned char c = *p;
    if (c == '"') {
      s->p = p + 1;
      *escaped = esc;
      return 0;
    }
    if (c == '\\') {
      esc = true;
      if (escape(s) < 0)
        return HL_EPARSE;
    } else if (c < 0x20) {
      return fail(s, HL_JSCAN_ESYNTAX, "control character in string");
    } else if (utf8_seq(s) < 0) {
      return HL_EPARSE;
    }
    p = s->p;
  }
}

static int number(scan *s) {
  if (*s->p == '-')
    s->p++;
  if (s->p >= s->end)
    return fail(s, HL_JSCAN_ETRUNCATED, "unexpected end of input in number");
  if (*s->p == '0') {
    s->p++;
  } else if (*s->p >= '1' && *s->p <= '9') {
    while (s->p < s->end && *s->p >= '0' && *s->p <= '9')
      s->p++;
  } else {
    return fail(s, HL_JSCAN_ESYNTAX, "invalid number");
  }
  if (s->p < s->end && *s->p == '.') {
    s->p++;
    if (s->p >= s->end || *s->p < '0' || *s->p > '9')
      return fail(s, HL_JSCAN_ESYNTAX, "digit expected after decimal point");
    while (s->p < s->end && *s->p >= '0' && *s->p <= '9')
      s->p++;
  }
  if (s->p < s->end && (*s->p == 'e' || *s->p == 'E')) {
    s->p++;
    if (s->p < s->end && (*s->p == '+' || *s->p == '-'))
      s->p++;
    if (s->p >= s->end || *s->p < '0' || *s->p > '9')
      return fail(s, HL_JSCAN_ESYNTAX, "digit expected in exponent");
    while (s->p < s->end && *s->p >= '0' && *s->p <= '9')
      s->p++;
  }
  return 0;
}

static int literal(scan *s, const char *word, size_t n) {
  if ((size_t)(s->end - s->p) < n) {
    if (memcmp(s->p, word, (size_t)(s->end - s->p)) == 0)
      return fail(s, HL_JSCAN_ETRUNCATED, "unexpected end of input in literal");
    return fail(s, HL_JSCAN_ESYNTAX, "invalid literal");
  }
  if (memcmp(s->p, word, n) != 0)
    return fail(s, HL_JSCAN_ESYNTAX, "invalid literal");
  s->p += n;
  return 0;
}

static hl_jscan_kind kind_of(unsigned char c) {
  switch (c) {
  case '{': return HL_JSCAN_OBJECT;
  case '[': return HL_JSCAN_ARRAY;
  case '"': return HL_JSCAN_STRING;
  case 't': return HL_JSCAN_TRUE;
  case 'f': return HL_JSCAN_FALSE;
  case 'n': return HL_JSCAN_NULL;
  default: return (c == '-' || (c >= '0' && c <= '9')) ? HL_JSCAN_NUMBER : HL_JSCAN_NONE;
  }
}

/* Scalar values: strings, numbers, literals. */
static inline __attribute__((always_inline)) int scalar(scan *s, hl_jscan_kind k, const unsigned char **sval, size_t *slen, bool *esc) {
  switch (k) {
  case HL_JSCAN_STRING: {
    s->p++;
    const unsigned char *b = s->p;
    if (string(s, esc) < 0)
      return HL_EPARSE;
    if (sval) {
      *sval = b;
      *slen = (size_t)(s->p - 1 - b);
    }
    return 0;
  }
  case HL_JSCAN_NUMBER: return number(s);
  case HL_JSCAN_TRUE: return literal(s, "true", 4);
  case HL_JSCAN_FALSE: return literal(s, "false", 5);
  case HL_JSCAN_NULL: return literal(s, "null", 4);
  default: return fail(s, HL_JSCAN_ESYNTAX, "value expected");
  }
}

/*
 * The scanner of hl_jscan() and hl_jscan_tape(): always inlined into both,
 * so that without a tape (the parser's hot path) the recording compiles
 * away.
 */
static inline __attribute__((always_inline)) int scan_doc(const char *str, size_t n,
                                                          unsigned max_depth, hl_jscan_field *fields,
                                                          size_t nfields, hl_jscan_tape *tape,
                                                          hl_jscan_result *res) {
  enum { MAXD = 512 };
  unsigned char stack[MAXD]; /* '{' or '[' per open container */
  /* With a tape: the node of each open container, and the key of the value that comes next. */
  uint32_t open[MAXD];
  size_t nodes = 0;
  uint32_t key = 0, klen = 0;
  if (tape && n > UINT32_MAX)
    tape = NULL; /* offsets would not fit: no tape (n stays above cap) */
  if (max_depth == 0 || max_depth > MAXD)
    max_depth = MAXD;
  scan s = {(const unsigned char *)str, (const unsigned char *)str + n,
            (const unsigned char *)str, res};
  memset(res, 0, sizeof *res);
  /* Key lengths, measured once per call rather than once per top-level key. */
  enum { KEYLENS = 8 };
  size_t keylen[KEYLENS];
  for (size_t i = 0; i < nfields; i++) {
    if (i < KEYLENS)
      keylen[i] = strlen(fields[i].key);
    fields[i].kind = HL_JSCAN_NONE;
    fields[i].val = NULL;
    fields[i].len = 0;
    fields[i].escaped = false;
  }
  skip_ws(&s);
  if (s.p >= s.end) {
    res->error = HL_JSCAN_EEMPTY;
    res->message = "no JSON value";
    return HL_EPARSE;
  }
  res->top = kind_of(*s.p);
  unsigned depth = 0;
  hl_jscan_field *want = NULL; /* the field whose value comes next */

  /* Values are parsed iteratively; containers push onto stack. */
  for (;;) {
    /* Parse a value at s.p. */
    skip_ws(&s);
    if (s.p >= s.end)
      return fail(&s, HL_JSCAN_ETRUNCATED, "unexpected end of input");
    hl_jscan_kind k = kind_of(*s.p);
    size_t node = nodes;
    if (tape) {
      if (node < tape->cap)
        tape->nodes[node] = (hl_jscan_node){key, klen, (uint32_t)(s.p - s.start), 0, 0};
      nodes++;
      key = klen = 0;
    }
    if (k == HL_JSCAN_OBJECT || k == HL_JSCAN_ARRAY) {
      if (want)
        want->kind = k;
      want = NULL;
      if (depth == max_depth)
        return fail(&s, HL_JSCAN_EDEPTH, "nesting too deep");
      if (tape)
        open[depth] = (uint32_t)node;
      stack[depth++] = *s.p++;
      skip_ws(&s);
      if (s.p >= s.end)
        return fail(&s, HL_JSCAN_ETRUNCATED, "unexpected end of input");
      if (*s.p == (k == HL_JSCAN_OBJECT ? '}' : ']')) {
        s.p++;
        depth--;
        goto closed;
      }
      if (k == HL_JSCAN_ARRAY)
        continue; /* first element */
      goto object_key;
    }
    {
      const unsigned char *sv = NULL;
      size_t sl = 0;
      bool esc = false;
      if (scalar(&s, k, want ? &sv : NULL, &sl, &esc) < 0)
        return HL_EPARSE;
      if (want) {
        want->kind = k;
        want->val = (const char *)sv;
        want->len = sl;
        want->escaped = esc;
        want = NULL;
      }
      if (tape && node < tape->cap) {
        tape->nodes[node].end = (uint32_t)(s.p - s.start);
        tape->nodes[node].next = (uint32_t)(node + 1);
      }
    }
    goto after_value;
  closed:
    /* A container just ended (depth is already that of its parent). */
    if (tape && open[depth] < tape->cap) {
      tape->nodes[open[depth]].end = (uint32_t)(s.p - s.start);
      tape->nodes[open[depth]].next = (uint32_t)nodes;
    }
  after_value:
    if (depth == 0) {
      skip_ws(&s);
      if (s.p != s.end)
        return fail(&s, HL_JSCAN_ESYNTAX, "unexpected data after the JSON value");
      if (tape)
        tape->n = nodes;
      return 0;
    }
    skip_ws(&s);
    if (s.p >= s.end)
      return fail(&s, HL_JSCAN_ETRUNCATED, "unexpected end of input");
    if (*s.p == ',') {
      s.p++;
      if (stack[depth - 1] == '[')
        continue;
      skip_ws(&s);
      goto object_key;
    }
    if (*s.p == (stack[depth - 1] == '{' ? '}' : ']')) {
      s.p++;
      depth--;
      goto closed;
    }
    return fail(&s, HL_JSCAN_ESYNTAX,
                stack[depth - 1] == '{' ? "',' or '}' expected" : "',' or ']' expected");

  object_key:
    if (s.p >= s.end)
      return fail(&s, HL_JSCAN_ETRUNCATED, "unexpected end of input");
    if (*s.p != '"')
      return fail(&s, HL_JSCAN_ESYNTAX, "object key expected");
    {
      s.p++;
      const unsigned char *kb = s.p;
      bool esc;
      if (string(&s, &esc) < 0)
        return HL_EPARSE;
      size_t kl = (size_t)(s.p - 1 - kb);
      if (tape) {
        key = (uint32_t)(kb - s.start);
        klen = (uint32_t)kl;
      }
      if (depth == 1 && !esc) {
        for (size_t i = 0; i < nfields; i++) {
          size_t fl = i < KEYLENS ? keylen[i] : strlen(fields[i].key);
          if (fl == kl && memcmp(fields[i].key, kb, kl) == 0) {
            want = &fields[i];
            break;
          }
        }
      }
    }
    skip_ws(&s);
    if (s.p >= s.end)
      return fail(&s, HL_JSCAN_ETRUNCATED, "unexpected end of input");
    if (*s.p != ':')
      return fail(&s, HL_JSCAN_ESYNTAX, "':' expected");
    s.p++;
  }
}

int hl_jscan(const char *str, size_t n, unsigned max_depth, hl_jscan_field *fields, size_t nfields,
             hl_jscan_result *res) {
  return scan_doc(str, n, max_depth, fields, nfields, NULL, res);
}

int hl_jscan_build_tape(const char *str, size_t n, unsigned max_depth, hl_jscan_field *fields,
                        size_t nfields, hl_jscan_tape *tape, hl_jscan_result *res) {
  tape->n = tape->cap + 1; /* no tape unless the scan says otherwise */
  return scan_doc(str, n, max_depth, fields, nfields, tape, res);
}

const char *hl_jscan_error_name(hl_jscan_error e) {
  switch (e) {
  case HL_JSCAN_OK: return "ok";
  case HL_JSCAN_ESYNTAX: return "syntax";
  case HL_JSCAN_ETRUNCATED: return "truncated";
  case HL_JSCAN_EUTF8: return "utf8";
  case HL_JSCAN_EDEPTH: return "depth";
  case HL_JSCAN_EEMPTY: return "empty";
  }
  return "?";
}

/* ---- walking validated JSON ---- */

/* Returns the end of the string starting at p (p at the opening quote). */
static const char *skip_string(const char *p, const char *end) {
  p++;
  while (p < end) {
    if (*p == '\\') {
      p += 2;
      continue;
    }
    if (*p == '"')
      return p + 1;
    p++;
  }
  return NULL;
}

/* Returns the end of the value starting at p (no leading whitespace). */
static const char *skip_value(const char *p, const char *end) {
  if (p >= end)
    return NULL;
  if (*p == '"')
    return skip_string(p, end);
  if (*p == '{' || *p == '[') {
    int depth = 0;
    while (p < end) {
      char c = *p;
      if (c == '"') {
        p = skip_string(p, end);
        if (!p)
          return NULL;
        continue;
      }
      if (c == '{' || c == '[')
        depth++;
      else if (c == '}' || c == ']') {
        if (--depth == 0)
          return p + 1;
      }
      p++;
    }
    return NULL;
  }
  while (p < end && *p != ',' && *p != '}' && *p != ']' && *p != ' ' && *p != '\n' &&
         *p != '\r' && *p != '\t')
    p++;
  return p;
}

static const char *ws(const char *p, const char *end) {
  while (p < end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t'))
    p++;
  return p;
}

int hl_jscan_members(const char *s, size_t n,
                     int (*cb)(void *, const char *, size_t, const char *, size_t), void *ud) {
  const char *p = ws(s, s + n), *end = s + n;
  if (p >= end || *p != '{')
    return HL_EPARSE;
  p = ws(p + 1, end);
  if (p < end && *p == '}')
    return 0;
  while (p < end) {
    if (*p != '"')
      return HL_EPARSE;
    const char *kend = skip_string(p, end);
    if (!kend)
      return HL_EPARSE;
    const char *key = p + 1;
    size_t klen = (size_t)(kend - 1 - key);
    p = ws(kend, end);
    if (p >= end || *p != ':')
      return HL_EPARSE;
    p = ws(p + 1, end);
    const char *vend = skip_value(p, end);
    if (!vend)
      return HL_EPARSE;
    int r = cb(ud, key, klen, p, (size_t)(vend - p));
    if (r < 0)
      return r;
    p = ws(vend, end);
    if (p < end && *p == ',') {
      p = ws(p + 1, end);
      continue;
    }
    return (p < end && *p == '}') ? 0 : HL_EPARSE;
  }
  return HL_EPARSE;
}

int hl_jscan_elements(const char *s, size_t n, int (*cb)(void *, size_t, const char *, size_t),
                      void *ud) {
  const char *p = ws(s, s + n), *end = s + n;
  if (p >= end || *p != '[')
    return HL_EPARSE;
  p = ws(p + 1, end);
  if (p < end && *p == ']')
    return 0;
  size_t index = 0;
  while (p < end) {
    const char *vend = skip_value(p, end);
    if (!vend)
      return HL_EPARSE;
    int r = cb(ud, index++, p, (size_t)(vend - p));
    if (r < 0)
      return r;
    p = ws(vend, end);
    if (p < end && *p == ',') {
      p = ws(p + 1, end);
      continue;
    }
    return (p < end && *p == ']') ? 0 : HL_EPARSE;
  }
  return HL_EPARSE;
}

int hl_jscan_rewrite_refs(const char *s, size_t n, const char *(*map)(void *, const char *, size_t),
                          void *ud, struct hl_buf *out) {
  const char *p = s, *end = s + n, *copied = s;
  /* State: 0 nothing, 1 saw key "reference", 2 saw its ':'. */
  int state = 0;
  while (p < end) {
    char c = *p;
    if (c == '"') {
      const char *send = skip_string(p, end);
      if (!send)
        return HL_EPARSE;
      if (state == 2) {
        const char *rep = map(ud, p + 1, (size_t)(send - 1 - p - 1));
        if (rep) {
          int r = hl_buf_append(out, copied, (size_t)(p - copied));
          if (r == 0)
            r = hl_buf_putc(out, '"');
          if (r == 0)
            r = hl_buf_json_escape(out, rep, strlen(rep));
          if (r == 0)
            r = hl_buf_putc(out, '"');
          if (r < 0)
            return r;
          copied = send;
        }
        state = 0;
      } else {
        /* A key is a string followed by ':'. */
        const char *q = ws(send, end);
        state = (q < end && *q == ':' && send - p == 11 && memcmp(p, "\"reference\"", 11) == 0) ? 1 : 0;
      }
      p = send;
      continue;
    }
    if (c == ':' && state == 1)
      state = 2;
    else if (c != ' ' && c != '\n' && c != '\r' && c != '\t' && c != ':')
      state = 0;
    p++;
  }
  return hl_buf_append(out, copied, (size_t)(end - copied));
}
