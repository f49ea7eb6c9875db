/*
 * The single-pass validator: a strict JSON scanner that walks the compiled
 * schema while it reads. See validate.h.
 */
#include "validate.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hl/error.h"
#include "profile_int.h"
#include "schema_int.h"

#define DEFAULT_MAX_ISSUES 100
#define DEFAULT_MAX_DEPTH 64
#define DEFAULT_MAX_BYTES (16u << 20)
#define TEXT_MAX (1u << 20)
#define LOC_MAX 512

/* A string token: raw bytes between the quotes, still escaped when esc. */
typedef struct span {
  const char *s;
  uint32_t len;
  uint8_t esc;
  uint8_t set;
} span;

/* One level of the location: an object member name and, inside an array, the index. */
typedef struct seg {
  const char *name;
  uint32_t len;
  int32_t index;
} seg;

/* Issues refer to the text arena by offset until the check ends. */
typedef struct issue_rec {
  hl_vsev severity;
  const char *code;
  const char *rule;
  size_t text, loc;
} issue_rec;

enum { K_NONE, K_OBJECT, K_ARRAY, K_STRING, K_NUMBER, K_BOOL, K_NULL };

struct hl_validator {
  const hl_fschema *fs;
  const hl_profile *pr;
  size_t max_issues, max_bytes;
  unsigned max_depth;
  /* Input. */
  const char *start, *p, *end;
  bool fatal;
  unsigned depth;
  /* Location stack. */
  seg *path;
  unsigned npath;
  /* Seen-property bits, one frame of seen_words per object depth. */
  uint64_t *seen;
  size_t seen_words;
  /* Last scalar read by value(). */
  int last_kind;
  span last_str;
  /* Scratch for unescaped strings (one for values, two for rule fields, one for resourceType). */
  hl_buf sbuf, abuf, bbuf, rtbuf;
  /* Issues. */
  issue_rec *recs;
  size_t nrecs, caprecs;
  size_t errors, warnings, dropped;
  hl_buf text;
  hl_vissue *out;
  size_t capout;
  bool oom;
  char rt[64];
};

const char *hl_vsev_name(hl_vsev s) {
  switch (s) {
  case HL_VSEV_FATAL: return "fatal";
  case HL_VSEV_ERROR: return "error";
  case HL_VSEV_WARNING: return "warning";
  case HL_VSEV_INFORMATION: return "information";
  }
  return "error";
}

/* ---- Issues --------------------------------------------------------------------- */

/* Writes the current location (plus an optional extra member name) into the text arena. */
static int put_location(hl_validator *v, const char *extra, size_t elen) {
  size_t start = v->text.len;
  for (unsigned i = 0; i < v->npath; i++) {
    const seg *s = &v->path[i];
    if (i > 0 && hl_buf_putc(&v->text, '.') < 0) return -1;
    if (s->name && hl_buf_append(&v->text, s->name, s->len < 64 ? s->len : 64) < 0) return -1;
    if (s->index >= 0 && hl_buf_printf(&v->text, "[%d]", (int)s->index) < 0) return -1;
    if (v->text.len - start > LOC_MAX) break;
  }
  if (extra) {
    if (v->npath && hl_buf_putc(&v->text, '.') < 0) return -1;
    if (hl_buf_append(&v->text, extra, elen < 64 ? elen : 64) < 0) return -1;
  }
  return hl_buf_putc(&v->text, 0);
}

static void add_issue(hl_validator *v, hl_vsev sev, const char *code, const char *rule, const char *extra,
                      size_t elen, const char *fmt, ...) __attribute__((format(printf, 7, 8)));
static void add_issue(hl_validator *v, hl_vsev sev, const char *code, const char *rule, const char *extra,
                      size_t elen, const char *fmt, ...) {
  if (sev <= HL_VSEV_ERROR) v->errors++;
  else v->warnings++;
  if (v->nrecs >= v->max_issues) {
    v->dropped++;
    return;
  }
  if (v->nrecs == v->caprecs) {
    size_t nc = v->caprecs ? v->caprecs * 2 : 16;
    issue_rec *nr = realloc(v->recs, nc * sizeof *nr);
    if (!nr) {
      v->oom = true;
      v->dropped++;
      return;
    }
    v->recs = nr;
    v->caprecs = nc;
  }
  size_t mark = v->text.len;
  issue_rec *r = &v->recs[v->nrecs];
  r->severity = sev;
  r->code = code;
  r->rule = rule;
  r->text = v->text.len;
  va_list ap;
  va_start(ap, fmt);
  int rc = hl_buf_vprintf(&v->text, fmt, ap);
  va_end(ap);
  if (rc == 0) rc = hl_buf_putc(&v->text, 0);
  r->loc = v->text.len;
  if (rc == 0) rc = put_location(v, extra, elen);
  if (rc < 0) {
    /* The text arena is full: the issue is counted, not kept. */
    v->text.len = mark;
    if (v->text.data) v->text.data[mark] = 0;
    v->dropped++;
    return;
  }
  v->nrecs++;
}

/* Up to 64 bytes of s for a message, cut on a UTF-8 boundary. */
static int shown(const char *s, size_t n) {
  if (n <= 64) return (int)n;
  n = 64;
  while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80) n--;
  return (int)n;
}

static void syntax(hl_validator *v, const char *what) {
  if (v->fatal) return;
  v->fatal = true;
  add_issue(v, HL_VSEV_FATAL, "structure", NULL, NULL, 0, "Invalid JSON at byte %zu: %s",
            (size_t)(v->p - v->start), what);
}

/* ---- Scanner -------------------------------------------------------------------- */

/* Byte classes inside strings: 0 plain, 1 quote, 2 backslash, 3 control, 4 non-ASCII. */
static const uint8_t sclass[256] = {
  3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
  0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0,
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
  4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4,
  4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4,
  4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4,
  4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4,
};

static inline void ws(hl_validator *v) {
  const char *p = v->p, *e = v->end;
  while (p < e && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t')) p++;
  v->p = p;
}

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

static int hex4(const char *p) {
  int a = hexval(p[0]), b = hexval(p[1]), c = hexval(p[2]), d = hexval(p[3]);
  if ((a | b | c | d) < 0) return -1;
  return (a << 12) | (b << 8) | (c << 4) | d;
}

/* Length of the valid UTF-8 sequence at p (lead byte >= 0x80), 0 if invalid. */
static size_t utf8_len(const unsigned char *p, const unsigned char *e) {
  unsigned char c = p[0];
  if (c >= 0xc2 && c <= 0xdf) return e - p >= 2 && (p[1] & 0xc0) == 0x80 ? 2 : 0;
  if (c >= 0xe0 && c <= 0xef) {
    if (e - p < 3 || (p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80) return 0;
    if (c == 0xe0 && p[1] < 0xa0) return 0;
    if (c == 0xed && p[1] > 0x9f) return 0;
    return 3;
  }
  if (c >= 0xf0 && c <= 0xf4) {
    if (e - p < 4 || (p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80 || (p[3] & 0xc0) != 0x80) return 0;
    if (c == 0xf0 && p[1] < 0x90) return 0;
    if (c == 0xf4 && p[1] > 0x8f) return 0;
    return 4;
  }
  return 0;
}

/* Reads the string at v->p (on its opening quote) into *out. */
static bool scan_string(hl_validator *v, span *out) {
  const unsigned char *p = (const unsigned char *)v->p + 1, *e = (const unsigned char *)v->end;
  const unsigned char *s = p;
  uint8_t esc = 0;
  for (;;) {
    while (p + 4 <= e && !sclass[p[0]] && !sclass[p[1]] && !sclass[p[2]] && !sclass[p[3]]) p += 4;
    while (p < e && !sclass[*p]) p++;
    if (p >= e) {
      v->p = (const char *)p;
      syntax(v, "unterminated string");
      return false;
    }
    switch (sclass[*p]) {
    case 1:
      out->s = (const char *)s;
      out->len = (uint32_t)(p - s);
      out->esc = esc;
      out->set = 1;
      v->p = (const char *)p + 1;
      return true;
    case 2:
      esc = 1;
      if (p + 1 >= e) break;
      switch (p[1]) {
      case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't':
        p += 2;
        continue;
      case 'u': {
        if (e - p < 6) break;
        int cp = hex4((const char *)p + 2);
        if (cp < 0) break;
        if (cp >= 0xdc00 && cp <= 0xdfff) {
          v->p = (const char *)p;
          syntax(v, "unpaired surrogate escape");
          return false;
        }
        if (cp >= 0xd800 && cp <= 0xdbff) {
          int lo = e - p >= 12 && p[6] == '\\' && p[7] == 'u' ? hex4((const char *)p + 8) : -1;
          if (lo < 0xdc00 || lo > 0xdfff) {
            v->p = (const char *)p;
            syntax(v, "unpaired surrogate escape");
            return false;
          }
          p += 12;
        } else {
          p += 6;
        }
        continue;
      }
      default:
        break;
      }
      v->p = (const char *)p;
      syntax(v, "invalid escape in string");
      return false;
    case 3:
      v->p = (const char *)p;
      syntax(v, "control character in string");
      return false;
    default: {
      size_t l = utf8_len(p, e);
      if (!l) {
        v->p = (const char *)p;
        syntax(v, "invalid UTF-8");
        return false;
      }
      p += l;
      continue;
    }
    }
    v->p = (const char *)p;
    syntax(v, "invalid escape in string");
    return false;
  }
}

/* Unescapes a string already checked by scan_string into b (NUL-terminated). */
static const char *unescape(const span *sp, hl_buf *b, size_t *n) {
  hl_buf_reset(b);
  if (hl_buf_reserve(b, sp->len + 1) < 0) return NULL;
  const char *p = sp->s, *e = sp->s + sp->len;
  char *o = b->data;
  while (p < e) {
    if (*p != '\\') {
      *o++ = *p++;
      continue;
    }
    char c = p[1];
    p += 2;
    switch (c) {
    case 'b': *o++ = '\b'; break;
    case 'f': *o++ = '\f'; break;
    case 'n': *o++ = '\n'; break;
    case 'r': *o++ = '\r'; break;
    case 't': *o++ = '\t'; break;
    case 'u': {
      unsigned cp = (unsigned)hex4(p);
      p += 4;
      if (cp >= 0xd800 && cp <= 0xdbff) {
        unsigned lo = (unsigned)hex4(p + 2);
        p += 6;
        cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
      }
      if (cp < 0x80) {
        *o++ = (char)cp;
      } else if (cp < 0x800) {
        *o++ = (char)(0xc0 | (cp >> 6));
        *o++ = (char)(0x80 | (cp & 0x3f));
      } else if (cp < 0x10000) {
        *o++ = (char)(0xe0 | (cp >> 12));
        *o++ = (char)(0x80 | ((cp >> 6) & 0x3f));
        *o++ = (char)(0x80 | (cp & 0x3f));
      } else {
        *o++ = (char)(0xf0 | (cp >> 18));
        *o++ = (char)(0x80 | ((cp >> 12) & 0x3f));
        *o++ = (char)(0x80 | ((cp >> 6) & 0x3f));
        *o++ = (char)(0x80 | (cp & 0x3f));
      }
      break;
    }
    default: *o++ = c; break; /* '"', '\\', '/' */
    }
  }
  *o = 0;
  b->len = (size_t)(o - b->data);
  *n = b->len;
  return b->data;
}

/* The string's value: the raw bytes, or their unescaped copy in b. */
static const char *str_value(hl_validator *v, const span *sp, hl_buf *b, size_t *n) {
  if (!sp->esc) {
    *n = sp->len;
    return sp->s;
  }
  const char *s = unescape(sp, b, n);
  if (!s) v->oom = true;
  return s;
}

/* Reads a number at v->p; *integral says whether it has no fraction and no exponent. */
static bool scan_number(hl_validator *v, bool *integral) {
  const char *p = v->p, *e = v->end;
  *integral = true;
  if (p < e && *p == '-') p++;
  if (p >= e || *p < '0' || *p > '9') goto bad;
  if (*p == '0') p++;
  else
    while (p < e && *p >= '0' && *p <= '9') p++;
  if (p < e && *p == '.') {
    *integral = false;
    p++;
    if (p >= e || *p < '0' || *p > '9') goto bad;
    while (p < e && *p >= '0' && *p <= '9') p++;
  }
  if (p < e && (*p == 'e' || *p == 'E')) {
    *integral = false;
    p++;
    if (p < e && (*p == '+' || *p == '-')) p++;
    if (p >= e || *p < '0' || *p > '9') goto bad;
    while (p < e && *p >= '0' && *p <= '9') p++;
  }
  v->p = p;
  return true;
bad:
  v->p = p;
  syntax(v, "invalid number");
  return false;
}

static bool literal(hl_validator *v, const char *word, size_t n) {
  if ((size_t)(v->end - v->p) < n || memcmp(v->p, word, n) != 0) {
    syntax(v, "invalid literal");
    return false;
  }
  v->p += n;
  return true;
}

/* ---- Schema walk ---------------------------------------------------------------- */

static void value(hl_validator *v, uint32_t ni, const hl__fprop *via);

static const char *kind_name(int k) {
  switch (k) {
  case K_OBJECT: return "an object";
  case K_ARRAY: return "an array";
  case K_STRING: return "a string";
  case K_NUMBER: return "a number";
  case K_BOOL: return "a boolean";
  case K_NULL: return "null";
  }
  return "nothing";
}

static const char *types_name(uint8_t t) {
  if (t == HL__FT_STRING) return "a string";
  if (t == HL__FT_BOOL) return "a boolean";
  if (t == (HL__FT_NUMBER | HL__FT_INTEGER)) return "a number";
  if (t == HL__FT_INTEGER) return "an integer";
  if (t == HL__FT_ARRAY) return "an array";
  if (t == HL__FT_OBJECT) return "an object";
  if (t == HL__FT_NULL) return "null";
  return "another type";
}

/* The FHIR type a node stands for, for messages. */
static const char *node_type(const hl_validator *v, const hl__fnode *n) {
  if (n->name != HL__FNONE) return v->fs->defs[n->name].name;
  if (n->prim) return hl_prim_name((hl_prim)n->prim);
  return "value";
}

static bool type_ok(const hl__fnode *n, int kind, bool integral) {
  if (!n->types) return true;
  switch (kind) {
  case K_OBJECT: return n->types & HL__FT_OBJECT;
  case K_ARRAY: return n->types & HL__FT_ARRAY;
  case K_STRING: return n->types & HL__FT_STRING;
  case K_NUMBER: return (n->types & HL__FT_NUMBER) || ((n->types & HL__FT_INTEGER) && integral);
  case K_BOOL: return n->types & HL__FT_BOOL;
  case K_NULL: return n->types & HL__FT_NULL;
  }
  return false;
}

static void type_issue(hl_validator *v, const hl__fnode *n, int kind) {
  add_issue(v, HL_VSEV_ERROR, "structure", NULL, NULL, 0, "Expected %s (%s), found %s",
            types_name(n->types), node_type(v, n), kind_name(kind));
}

/* enum/const against a value that is not a string (all enum values are strings). */
static void enum_nonstring(hl_validator *v, const hl__fnode *n, int kind) {
  if (!n->nenum) return;
  add_issue(v, HL_VSEV_ERROR, "value", NULL, NULL, 0, "%s is not one of the allowed values",
            kind_name(kind));
}

static bool in_enum(const hl_validator *v, const hl__fnode *n, const char *s, size_t len) {
  for (uint32_t i = 0; i < n->nenum; i++) {
    const hl__fstr *e = &v->fs->strs[n->enum_first + i];
    if (e->len == len && memcmp(e->s, s, len) == 0) return true;
  }
  return false;
}

static bool push(hl_validator *v, const char *name, size_t len) {
  if (v->npath >= v->max_depth + 2) return false;
  v->path[v->npath++] = (seg){name, (uint32_t)len, -1};
  return true;
}

static void profile_object_end(hl_validator *v, uint32_t def, const hl__fprop *via, const uint64_t *seen,
                               const span *caps);

/* Skips whitespace and expects c. */
static inline bool expect(hl_validator *v, char c, const char *what) {
  ws(v);
  if (v->p < v->end && *v->p == c) {
    v->p++;
    return true;
  }
  syntax(v, what);
  return false;
}

/* Walks the object at v->p against definition def (HL__FNONE: any members). */
static void object(hl_validator *v, uint32_t def, const hl__fprop *via) {
  const hl_fschema *fs = v->fs;
  const hl_profile *pr = v->pr;
  const hl__fdef *d = def != HL__FNONE ? &fs->defs[def] : NULL;
  if (v->depth >= v->max_depth) {
    if (!v->fatal) {
      v->fatal = true;
      add_issue(v, HL_VSEV_FATAL, "structure", NULL, NULL, 0, "JSON nested deeper than %u levels",
                v->max_depth);
    }
    return;
  }
  uint64_t *seen = v->seen + (size_t)v->depth * v->seen_words;
  size_t words = d ? (d->nprops + 63) / 64 : 0;
  for (size_t i = 0; i < words; i++) seen[i] = 0;
  span caps[HL__PCAP_MAX];
  memset(caps, 0, sizeof caps);
  v->depth++;
  v->p++; /* '{' */
  ws(v);
  if (v->p < v->end && *v->p == '}') {
    v->p++;
    if (pr && pr->json_empty) {
      const hl__prule *r = pr->json_empty;
      add_issue(v, (hl_vsev)r->severity, r->code, r->id, NULL, 0, "%s (empty object)", r->message);
    }
    goto end;
  }
  for (;;) {
    ws(v);
    if (v->p >= v->end || *v->p != '"') {
      syntax(v, "expected a member name");
      goto out;
    }
    span key;
    if (!scan_string(v, &key) || !expect(v, ':', "expected ':'")) goto out;
    const char *kname = key.s;
    size_t klen = key.len;
    if (key.esc && !(kname = str_value(v, &key, &v->sbuf, &klen))) goto out;
    const hl__fprop *p = d ? hl__fschema_prop(fs, def, kname, klen) : NULL;
    if (!push(v, key.s, key.len)) {
      syntax(v, "nesting too deep");
      goto out;
    }
    if (p) {
      uint32_t slot = (uint32_t)(p - fs->props) - d->first_prop;
      uint64_t bit = 1ull << (slot & 63);
      if (seen[slot >> 6] & bit)
        add_issue(v, HL_VSEV_ERROR, "structure", NULL, NULL, 0, "Duplicate member \"%.*s\"",
                  shown(key.s, key.len), key.s);
      seen[slot >> 6] |= bit;
      value(v, p->node, p);
      if (pr && pr->capture[p - fs->props] && v->last_kind == K_STRING)
        caps[pr->capture[p - fs->props] - 1] = v->last_str;
    } else {
      if (d && d->closed)
        add_issue(v, HL_VSEV_ERROR, "structure", NULL, NULL, 0, "Unknown element \"%.*s\" in %s",
                  shown(key.s, key.len), key.s, d->name);
      value(v, HL__FNONE, NULL);
    }
    v->npath--;
    if (v->fatal) goto out;
    ws(v);
    if (v->p < v->end && *v->p == ',') {
      v->p++;
      continue;
    }
    if (v->p < v->end && *v->p == '}') {
      v->p++;
      break;
    }
    syntax(v, "expected ',' or '}'");
    goto out;
  }
end:
  if (d) {
    for (uint32_t i = 0; i < d->nreq; i++) {
      uint32_t slot = fs->reqs[d->first_req + i];
      if (!(seen[slot >> 6] & (1ull << (slot & 63)))) {
        const hl__fprop *rp = &fs->props[d->first_prop + slot];
        add_issue(v, HL_VSEV_ERROR, "required", NULL, rp->name, rp->len, "Missing required element \"%s\"",
                  rp->name);
      }
    }
    if (pr) profile_object_end(v, def, via, seen, caps);
  }
out:
  v->depth--;
  v->last_kind = K_OBJECT;
}

/*
 * Finds the string value of the member "resourceType" of the object at
 * p (on '{') without validating: the real pass does that. Returns false
 * when there is none or it is not a string.
 */
static bool find_resource_type(const char *p, const char *e, span *out, bool *present) {
  static const char rtk[] = "\"resourceType\"";
  int depth = 0;
  bool want_key = true;
  *present = false;
  p++;
  while (p < e) {
    char c = *p;
    if (c == '"') {
      const char *s = p;
      p++;
      while (p < e && *p != '"') p += *p == '\\' && p + 1 < e ? 2 : 1;
      if (p >= e) return false;
      p++;
      if (depth == 0 && want_key) {
        want_key = false;
        if ((size_t)(p - s) == sizeof rtk - 1 && memcmp(s, rtk, sizeof rtk - 1) == 0) {
          *present = true;
          while (p < e && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t' || *p == ':')) p++;
          if (p >= e || *p != '"') return false;
          const char *vs = ++p;
          uint8_t esc = 0;
          while (p < e && *p != '"') {
            if (*p == '\\' && p + 1 < e) esc = 1, p++;
            p++;
          }
          if (p >= e) return false;
          out->s = vs;
          out->len = (uint32_t)(p - vs);
          out->esc = esc;
          out->set = 1;
          return true;
        }
      }
      continue;
    }
    if (c == '{' || c == '[') depth++;
    else if (c == '}' || c == ']') {
      if (depth == 0) return false;
      depth--;
    } else if (c == ',' && depth == 0)
      want_key = true;
    p++;
  }
  return false;
}

/* Whether s[0..n) is valid UTF-8 (the prescan of resourceType does not check it). */
static bool utf8_ok(const char *s, size_t n) {
  const unsigned char *p = (const unsigned char *)s, *e = p + n;
  while (p < e) {
    if (*p < 0x80) {
      p++;
      continue;
    }
    size_t l = utf8_len(p, e);
    if (!l) return false;
    p += l;
  }
  return true;
}

/* Whether the raw string body s[0..n) is valid: escapes, paired surrogates, UTF-8, no controls. */
static bool string_ok(const char *s, size_t n) {
  const char *p = s, *e = s + n;
  while (p < e) {
    unsigned char c = (unsigned char)*p;
    if (c < 0x20 || c == '"') return false;
    if (c != '\\') {
      p++;
      continue;
    }
    if (e - p < 2) return false;
    char x = p[1];
    if (x == 'u') {
      if (e - p < 6) return false;
      int cp = hex4(p + 2);
      if (cp < 0 || (cp >= 0xdc00 && cp <= 0xdfff)) return false;
      if (cp >= 0xd800 && cp <= 0xdbff) {
        int lo = e - p >= 12 && p[6] == '\\' && p[7] == 'u' ? hex4(p + 8) : -1;
        if (lo < 0xdc00 || lo > 0xdfff) return false;
        p += 12;
      } else {
        p += 6;
      }
    } else if (strchr("\"\\/bfnrt", x) && x) {
      p += 2;
    } else {
      return false;
    }
  }
  return utf8_ok(s, n);
}

/* A value that must be a resource (the schema's discriminated oneOf). */
static void resource(hl_validator *v, const hl__fprop *via) {
  span rts = {0};
  bool present;
  const char *rt = NULL;
  size_t rtlen = 0;
  uint32_t def = HL__FNONE;
  bool root = v->npath == 0;
  bool malformed = false;
  if (find_resource_type(v->p, v->end, &rts, &present)) {
    /* The prescan does not validate: a malformed string is left to the real pass, which reports it. */
    if (!string_ok(rts.s, rts.len)) malformed = true;
    else if ((rt = str_value(v, &rts, &v->rtbuf, &rtlen)))
      def = hl__fschema_resource(v->fs, rt, rtlen);
  }
  if (root) {
    const char *name = def != HL__FNONE ? v->fs->defs[def].name : "Resource";
    push(v, name, strlen(name));
    if (def != HL__FNONE) snprintf(v->rt, sizeof v->rt, "%s", name);
  }
  if (def == HL__FNONE && !malformed) {
    if (!present)
      add_issue(v, HL_VSEV_ERROR, "required", NULL, NULL, 0, "Missing resourceType");
    else if (!rt)
      add_issue(v, HL_VSEV_ERROR, "invalid", NULL, NULL, 0, "resourceType is not a string");
    else if (!utf8_ok(rt, rtlen))
      add_issue(v, HL_VSEV_ERROR, "invalid", NULL, NULL, 0, "Unknown resourceType (not UTF-8)");
    else
      add_issue(v, HL_VSEV_ERROR, "invalid", NULL, NULL, 0, "Unknown resourceType \"%.*s\"",
                shown(rt, rtlen), rt);
  }
  object(v, def, via);
}

/* Value-level profile rules on a string that passed its pattern. */
static void profile_string(hl_validator *v, const hl__fnode *n, const char *s, size_t len) {
  const hl__prule *r = v->pr->calendar;
  if (r && (n->prim == HL_PRIM_DATE || n->prim == HL_PRIM_DATETIME || n->prim == HL_PRIM_INSTANT)) {
    int y, m, d;
    hl_prim_date_parts(s, len, &y, &m, &d);
    if (!hl_profile_calendar_ok(y, m, d))
      add_issue(v, (hl_vsev)r->severity, r->code, r->id, NULL, 0, "%s (%.*s)", r->message, shown(s, len), s);
  }
}

static void profile_number(hl_validator *v, const hl__fnode *n, const char *s, size_t len, bool integral) {
  const hl__prule *r = v->pr->json_integer;
  if (!r || (n->prim != HL_PRIM_INTEGER && n->prim != HL_PRIM_POSITIVEINT && n->prim != HL_PRIM_UNSIGNEDINT))
    return;
  bool ok = integral && len <= 11;
  if (ok) {
    char num[16];
    memcpy(num, s, len);
    num[len] = 0;
    long long x = strtoll(num, NULL, 10);
    ok = x >= -2147483648LL && x <= 2147483647LL;
    if (n->prim == HL_PRIM_POSITIVEINT) ok = ok && x >= 1;
    if (n->prim == HL_PRIM_UNSIGNEDINT) ok = ok && x >= 0;
  }
  if (!ok)
    add_issue(v, (hl_vsev)r->severity, r->code, r->id, NULL, 0, "%s (%.*s is not a valid %s)", r->message,
              shown(s, len), s, hl_prim_name((hl_prim)n->prim));
}

static void value(hl_validator *v, uint32_t ni, const hl__fprop *via) {
  const hl__fnode *n = ni != HL__FNONE ? &v->fs->nodes[ni] : NULL;
  const hl_profile *pr = v->pr;
  ws(v);
  if (v->p >= v->end) {
    syntax(v, "unexpected end of input");
    return;
  }
  char c = *v->p;
  int kind;
  if (c == '{') {
    if (n && n->resource) {
      resource(v, via);
      return;
    }
    if (n && !type_ok(n, K_OBJECT, false)) type_issue(v, n, K_OBJECT);
    if (n) enum_nonstring(v, n, K_OBJECT);
    object(v, n ? n->def : HL__FNONE, via);
    return;
  }
  if (c == '[') {
    if (n && !type_ok(n, K_ARRAY, false)) type_issue(v, n, K_ARRAY);
    if (n) enum_nonstring(v, n, K_ARRAY);
    uint32_t items = n ? n->items : HL__FNONE;
    bool null_ok = via && via->name[0] == '_'; /* FHIR's primitive extension arrays hold nulls */
    if (v->depth >= v->max_depth) {
      if (!v->fatal) {
        v->fatal = true;
        add_issue(v, HL_VSEV_FATAL, "structure", NULL, NULL, 0, "JSON nested deeper than %u levels",
                  v->max_depth);
      }
      return;
    }
    v->depth++;
    v->p++;
    ws(v);
    seg *top = v->npath ? &v->path[v->npath - 1] : NULL;
    if (v->p < v->end && *v->p == ']') {
      v->p++;
      if (pr && pr->json_empty) {
        const hl__prule *r = pr->json_empty;
        add_issue(v, (hl_vsev)r->severity, r->code, r->id, NULL, 0, "%s (empty array)", r->message);
      }
    } else {
      for (int32_t i = 0;; i++) {
        if (top) top->index = i;
        ws(v);
        if (pr && pr->json_object && null_ok && v->p + 4 <= v->end && !memcmp(v->p, "null", 4)) {
          /* A null placeholder: allowed by FHIR, checked against the schema all the same. */
          const hl_profile *save = v->pr;
          v->pr = NULL;
          value(v, items, via);
          v->pr = save;
        } else {
          value(v, items, via);
        }
        if (v->fatal) break;
        ws(v);
        if (v->p < v->end && *v->p == ',') {
          v->p++;
          continue;
        }
        if (v->p < v->end && *v->p == ']') {
          v->p++;
          break;
        }
        syntax(v, "expected ',' or ']'");
        break;
      }
      if (top) top->index = -1;
    }
    v->depth--;
    v->last_kind = K_ARRAY;
    if (!n || v->fatal) return;
    kind = K_ARRAY;
    goto tail;
  }
  if (c == '"') {
    span sp;
    if (!scan_string(v, &sp)) return;
    v->last_kind = K_STRING;
    v->last_str = sp;
    if (!n) {
      if (pr && pr->json_empty && sp.len == 0) {
        const hl__prule *r = pr->json_empty;
        add_issue(v, (hl_vsev)r->severity, r->code, r->id, NULL, 0, "%s (empty string)", r->message);
      }
      return;
    }
    kind = K_STRING;
    if (!type_ok(n, K_STRING, false)) {
      type_issue(v, n, K_STRING);
    } else if (n->prim || n->regex != HL__FNONE || n->nenum || pr) {
      size_t len;
      const char *s = str_value(v, &sp, &v->sbuf, &len);
      if (!s) return;
      bool ok = true;
      if (n->prim && !hl_prim_check((hl_prim)n->prim, s, len)) {
        ok = false;
        add_issue(v, HL_VSEV_ERROR, "value", NULL, NULL, 0, "\"%.*s\" is not a valid %s", shown(s, len), s,
                  node_type(v, n));
      } else if (n->regex != HL__FNONE) {
        if (s != v->sbuf.data) {
          hl_buf_reset(&v->sbuf);
          if (hl_buf_append(&v->sbuf, s, len) < 0) {
            v->oom = true;
            return;
          }
          s = v->sbuf.data;
        }
        if (memchr(s, 0, len) || regexec(&v->fs->regexes[n->regex], s, 0, NULL, 0) != 0) {
          ok = false;
          add_issue(v, HL_VSEV_ERROR, "value", NULL, NULL, 0, "\"%.*s\" does not match the pattern of %s",
                    shown(s, len), s, node_type(v, n));
        }
      }
      if (n->nenum && !in_enum(v, n, s, len)) {
        ok = false;
        add_issue(v, HL_VSEV_ERROR, "value", NULL, NULL, 0, "\"%.*s\" is not one of the allowed values",
                  shown(s, len), s);
      }
      if (pr && ok) {
        if (len == 0 && pr->json_empty) {
          const hl__prule *r = pr->json_empty;
          add_issue(v, (hl_vsev)r->severity, r->code, r->id, NULL, 0, "%s (empty string)", r->message);
        }
        profile_string(v, n, s, len);
      }
    }
  } else if (c == '-' || (c >= '0' && c <= '9')) {
    const char *s = v->p;
    bool integral;
    if (!scan_number(v, &integral)) return;
    kind = K_NUMBER;
    v->last_kind = K_NUMBER;
    if (!n) return;
    if (!type_ok(n, K_NUMBER, integral)) type_issue(v, n, K_NUMBER);
    else if (pr) profile_number(v, n, s, (size_t)(v->p - s), integral);
    enum_nonstring(v, n, K_NUMBER);
  } else if (c == 't' || c == 'f') {
    if (!literal(v, c == 't' ? "true" : "false", c == 't' ? 4 : 5)) return;
    kind = K_BOOL;
    v->last_kind = K_BOOL;
    if (!n) return;
    if (!type_ok(n, K_BOOL, false)) type_issue(v, n, K_BOOL);
    enum_nonstring(v, n, K_BOOL);
  } else if (c == 'n') {
    if (!literal(v, "null", 4)) return;
    kind = K_NULL;
    v->last_kind = K_NULL;
    if (!n) return;
    if (!type_ok(n, K_NULL, false)) type_issue(v, n, K_NULL);
    enum_nonstring(v, n, K_NULL);
  } else {
    syntax(v, "unexpected character");
    return;
  }
tail:
  /* A scalar or an array where the schema describes a resource or a complex type. */
  if (n->resource) {
    if (!v->fs->resource_nonobject_ok)
      add_issue(v, HL_VSEV_ERROR, "invalid", NULL, NULL, 0, "Expected a resource (a JSON object), found %s",
                kind_name(kind));
  } else if (n->def != HL__FNONE && pr && pr->json_object) {
    const hl__prule *r = pr->json_object;
    add_issue(v, (hl_vsev)r->severity, r->code, r->id, NULL, 0, "%s (%s is %s)", r->message,
              v->fs->defs[n->def].name, kind_name(kind));
  }
}

/* ---- Profile rules at the end of an object -------------------------------------- */

static bool seen_slot(const uint64_t *seen, uint32_t slot) {
  return slot != HL__FNONE && (seen[slot >> 6] & (1ull << (slot & 63)));
}

static void run_rule(hl_validator *v, const hl__prule *r, uint32_t def, const uint64_t *seen, const span *caps) {
  const hl_fschema *fs = v->fs;
  switch (r->kind) {
  case HL__PK_REQUIRED:
    for (uint32_t i = 0; i < r->nslots; i++)
      if (!seen_slot(seen, r->slots[i]) && !seen_slot(seen, r->twin_slots[i]))
        add_issue(v, (hl_vsev)r->severity, r->code, r->id, r->names[i], strlen(r->names[i]), "%s (%s is missing)",
                  r->message, r->names[i]);
    return;
  case HL__PK_REF_FORMAT:
  case HL__PK_REF_TARGET: {
    const span *ref = &caps[r->cap_a];
    size_t rlen = 0, tlen = 0;
    const char *rs = ref->set ? str_value(v, ref, &v->abuf, &rlen) : NULL;
    const char *type = NULL;
    hl_ref_form form = rs ? hl_profile_ref_parse(fs, rs, rlen, &type, &tlen) : HL_REF_INVALID;
    if (r->kind == HL__PK_REF_FORMAT) {
      if (rs && !(form & r->allow))
        add_issue(v, (hl_vsev)r->severity, r->code, r->id, "reference", 9, "%s (\"%.*s\")", r->message,
                  shown(rs, rlen), rs);
      return;
    }
    /* Target types: from the reference itself, else from Reference.type. */
    if (!type && caps[r->cap_b].set) {
      const char *ts = str_value(v, &caps[r->cap_b], &v->bbuf, &tlen);
      type = ts;
    }
    if (!type) return;
    for (uint32_t i = 0; i < r->ntargets; i++) {
      const hl__fdef *td = &fs->defs[r->targets[i]];
      if (td->name_len == tlen && memcmp(td->name, type, tlen) == 0) return;
    }
    add_issue(v, (hl_vsev)r->severity, r->code, r->id, "reference", 9, "%s (found %.*s)", r->message,
              shown(type, tlen), type);
    return;
  }
  case HL__PK_LOINC:
  case HL__PK_UCUM: {
    const span *sys = &caps[r->cap_a], *code = &caps[r->cap_b];
    if (!sys->set || !code->set) return;
    size_t sl, cl;
    const char *ss = str_value(v, sys, &v->abuf, &sl);
    if (!ss || sl != r->syslen || memcmp(ss, r->system, sl) != 0) return;
    const char *cs = str_value(v, code, &v->bbuf, &cl);
    if (!cs) return;
    bool ok = r->kind == HL__PK_LOINC ? hl_profile_loinc_ok(cs, cl) : hl_profile_ucum_ok(cs, cl);
    if (!ok)
      add_issue(v, (hl_vsev)r->severity, r->code, r->id, "code", 4, "%s (\"%.*s\")", r->message, shown(cs, cl),
                cs);
    return;
  }
  default:
    (void)def;
    return;
  }
}

static void profile_object_end(hl_validator *v, uint32_t def, const hl__fprop *via, const uint64_t *seen,
                               const span *caps) {
  const hl_profile *pr = v->pr;
  for (uint32_t i = pr->def_first[def]; i < pr->def_first[def + 1]; i++)
    run_rule(v, &pr->rules[pr->def_list[i]], def, seen, caps);
  if (via) {
    uint32_t pi = (uint32_t)(via - v->fs->props);
    for (uint32_t i = pr->prop_first[pi]; i < pr->prop_first[pi + 1]; i++)
      run_rule(v, &pr->rules[pr->prop_list[i]], def, seen, caps);
  }
}

/* ---- Public API ----------------------------------------------------------------- */

int hl_validator_new(const hl_fschema *schema, const hl_profile *profile, const hl_validator_opts *opts,
                     hl_validator **out) {
  if (!schema || !out) return -EINVAL;
  if (profile && profile->fs != schema) return -EINVAL;
  hl_validator *v = calloc(1, sizeof *v);
  if (!v) return -ENOMEM;
  v->fs = schema;
  v->pr = profile;
  v->max_issues = opts && opts->max_issues ? opts->max_issues : DEFAULT_MAX_ISSUES;
  v->max_depth = opts && opts->max_depth ? opts->max_depth : DEFAULT_MAX_DEPTH;
  if (v->max_depth > 1024) v->max_depth = 1024;
  v->max_bytes = opts && opts->max_bytes ? opts->max_bytes : DEFAULT_MAX_BYTES;
  v->seen_words = (schema->max_props + 63) / 64;
  if (v->seen_words == 0) v->seen_words = 1;
  v->path = calloc(v->max_depth + 2, sizeof *v->path);
  v->seen = calloc((size_t)(v->max_depth + 1) * v->seen_words, sizeof *v->seen);
  hl_buf_init(&v->sbuf, v->max_bytes + 1);
  hl_buf_init(&v->abuf, v->max_bytes + 1);
  hl_buf_init(&v->bbuf, v->max_bytes + 1);
  hl_buf_init(&v->rtbuf, v->max_bytes + 1);
  hl_buf_init(&v->text, TEXT_MAX);
  if (!v->path || !v->seen) return hl_validator_free(v), -ENOMEM;
  *out = v;
  return 0;
}

hl_validator *hl_validator_free(hl_validator *v) {
  if (!v) return NULL;
  free(v->path);
  free(v->seen);
  free(v->recs);
  free(v->out);
  hl_buf_free(&v->sbuf);
  hl_buf_free(&v->abuf);
  hl_buf_free(&v->bbuf);
  hl_buf_free(&v->rtbuf);
  hl_buf_free(&v->text);
  free(v);
  return NULL;
}

int hl_validator_set_profile(hl_validator *v, const hl_profile *profile) {
  if (profile && profile->fs != v->fs) return -EINVAL;
  v->pr = profile;
  return 0;
}

int hl_validator_check(hl_validator *v, const char *json, size_t len, hl_vresult *res) {
  v->start = v->p = json;
  v->end = json + len;
  v->fatal = false;
  v->oom = false;
  v->depth = 0;
  v->npath = 0;
  v->nrecs = v->errors = v->warnings = v->dropped = 0;
  v->rt[0] = 0;
  hl_buf_reset(&v->text);
  if (len > v->max_bytes) {
    add_issue(v, HL_VSEV_FATAL, "too-long", NULL, NULL, 0, "The resource is %zu bytes, more than the limit of %zu",
              len, v->max_bytes);
  } else {
    ws(v);
    if (v->p >= v->end) {
      syntax(v, "empty input");
    } else {
      value(v, v->fs->root, NULL);
      if (!v->fatal) {
        ws(v);
        if (v->p != v->end) {
          v->npath = 0;
          syntax(v, "content after the resource");
        }
      }
    }
  }
  /* Pointers into the arena, now that it no longer moves. */
  if (v->capout < v->nrecs) {
    hl_vissue *no = realloc(v->out, v->nrecs * sizeof *no);
    if (!no) {
      v->oom = true;
      v->nrecs = v->capout;
    } else {
      v->out = no;
      v->capout = v->nrecs;
    }
  }
  for (size_t i = 0; i < v->nrecs; i++) {
    const issue_rec *r = &v->recs[i];
    v->out[i] = (hl_vissue){r->severity, r->code, r->rule, v->text.data + r->text, v->text.data + r->loc};
  }
  memset(res, 0, sizeof *res);
  res->errors = v->errors;
  res->warnings = v->warnings;
  res->nissues = v->nrecs;
  res->valid = v->errors == 0 && !v->oom;
  memcpy(res->resource_type, v->rt, sizeof res->resource_type);
  return v->oom ? -ENOMEM : 0;
}

const hl_vissue *hl_validator_issues(const hl_validator *v, size_t *n) {
  *n = v->nrecs;
  return v->out;
}

static int put_json_str(hl_buf *b, const char *s) {
  int rc = hl_buf_putc(b, '"');
  if (rc == 0) rc = hl_buf_json_escape(b, s, strlen(s));
  if (rc == 0) rc = hl_buf_putc(b, '"');
  return rc;
}

int hl_validator_outcome(const hl_validator *v, hl_buf *out) {
  int rc = hl_buf_puts(out, "{\"resourceType\":\"OperationOutcome\",\"issue\":[");
  for (size_t i = 0; i < v->nrecs && rc == 0; i++) {
    const hl_vissue *is = &v->out[i];
    if (i) rc = hl_buf_putc(out, ',');
    if (rc == 0) rc = hl_buf_printf(out, "{\"severity\":\"%s\",\"code\":", hl_vsev_name(is->severity));
    if (rc == 0) rc = put_json_str(out, is->code);
    if (rc == 0) rc = hl_buf_puts(out, ",\"details\":{");
    if (rc == 0 && is->rule) {
      rc = hl_buf_puts(out, "\"coding\":[{\"system\":\"urn:healthlake:validator:rule\",\"code\":");
      if (rc == 0) rc = put_json_str(out, is->rule);
      if (rc == 0) rc = hl_buf_puts(out, "}],");
    }
    if (rc == 0) rc = hl_buf_puts(out, "\"text\":");
    if (rc == 0) rc = put_json_str(out, is->text);
    if (rc == 0) rc = hl_buf_puts(out, "}");
    if (rc == 0 && is->location[0]) {
      rc = hl_buf_puts(out, ",\"expression\":[");
      if (rc == 0) rc = put_json_str(out, is->location);
      if (rc == 0) rc = hl_buf_puts(out, "]");
    }
    if (rc == 0) rc = hl_buf_putc(out, '}');
  }
  if (rc == 0 && v->dropped)
    rc = hl_buf_printf(out,
                       "%s{\"severity\":\"information\",\"code\":\"informational\",\"details\":{\"text\":"
                       "\"%zu more issues were found and not listed\"}}",
                       v->nrecs ? "," : "", v->dropped);
  else if (rc == 0 && v->nrecs == 0)
    rc = hl_buf_puts(out, "{\"severity\":\"information\",\"code\":\"informational\",\"details\":{\"text\":"
                          "\"No issues\"}}");
  if (rc == 0) rc = hl_buf_puts(out, "]}");
  return rc;
}
