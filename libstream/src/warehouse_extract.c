/*
 * Contract paths evaluated in C over a resource that hl_jscan() already
 * validated: no tree is built, values are spans of the resource. The
 * semantics are those of SQLite's JSON functions that the sqlite backend
 * used before (json_extract per column, json_each per [*]), so the stored
 * values are unchanged: the first occurrence of a duplicate key wins, [n]
 * and [*] apply to arrays only, strings are unescaped as SQLite does (a
 * \u0000 escape ends the string), objects and arrays come out minified.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "warehouse_internal.h"

#define MAX_STEPS 16
#define MAX_ALTS 8

struct hl__wh_xpath {
  bool self; /* "$this" */
  size_t nalts;
  struct {
    size_t nsteps;
    hl__wh_step steps[MAX_STEPS];
  } alts[MAX_ALTS];
};

/* ---- Compiling -------------------------------------------------------------------- */

static int compile_alt(const char *p, size_t n, hl__wh_step *steps, size_t *nsteps) {
  size_t k = 0, i = 0;
  while (i < n) {
    if (k == MAX_STEPS)
      return HL_WH_ESCHEMA;
    hl__wh_step *st = &steps[k++];
    if (p[i] == '[') {
      size_t j = i + 1;
      if (j < n && p[j] == '*') {
        st->index = HL__WH_STEP_STAR;
        j++;
      } else {
        long v = 0;
        if (j >= n || p[j] < '0' || p[j] > '9')
          return HL_WH_ESCHEMA;
        while (j < n && p[j] >= '0' && p[j] <= '9' && v < 1000000)
          v = v * 10 + (p[j++] - '0');
        st->index = v;
      }
      if (j >= n || p[j] != ']')
        return HL_WH_ESCHEMA;
      i = j + 1;
      if (i < n && p[i] == '.')
        i++;
      continue;
    }
    size_t j = i;
    while (j < n && p[j] != '.' && p[j] != '[')
      j++;
    if (j == i)
      return HL_WH_ESCHEMA;
    st->index = HL__WH_STEP_KEY;
    st->key = p + i;
    st->klen = j - i;
    i = j < n && p[j] == '.' ? j + 1 : j;
  }
  *nsteps = k;
  return k ? 0 : HL_WH_ESCHEMA;
}

int hl__wh_xpath_compile(const char *path, hl__wh_xpath **out) {
  hl__wh_xpath *x = calloc(1, sizeof(*x));
  if (!x)
    return -ENOMEM;
  if (!strcmp(path, "$this")) {
    x->self = true;
    *out = x;
    return 0;
  }
  const char *p = path;
  for (;;) {
    while (*p == ' ')
      p++;
    size_t n = strcspn(p, " |");
    if (x->nalts == MAX_ALTS || compile_alt(p, n, x->alts[x->nalts].steps, &x->alts[x->nalts].nsteps) < 0) {
      free(x);
      return HL_WH_ESCHEMA;
    }
    x->nalts++;
    p += n;
    p += strspn(p, " ");
    if (*p != '|')
      break;
    p++;
  }
  if (*p) {
    free(x);
    return HL_WH_ESCHEMA;
  }
  *out = x;
  return 0;
}

void hl__wh_xpath_free(hl__wh_xpath *x) {
  free(x);
}

/* ---- Walking ---------------------------------------------------------------------- */

static const char *ws(const char *p, const char *end) {
  while (p < end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t'))
    p++;
  return p;
}

/* Non-zero when a byte of x equals the byte repeated in b (exact for the word as a whole). */
static inline uint64_t has_byte(uint64_t x, uint64_t b) {
  uint64_t y = x ^ b;
  return (y - 0x0101010101010101ULL) & ~y & 0x8080808080808080ULL;
}

/*
 * The end of the string at p (after its closing quote). Half of a
 * resource's bytes or more are string bodies, and this walk runs over every
 * resource several times (the top-level index, then each path), so it
 * looks at 8 bytes at a time for a quote or a backslash.
 */
static const char *skip_string(const char *p, const char *end) {
  p++;
  for (;;) {
    while (end - p >= 8) {
      uint64_t x;
      memcpy(&x, p, 8);
      if (has_byte(x, 0x2222222222222222ULL) | has_byte(x, 0x5c5c5c5c5c5c5c5cULL))
        break;
      p += 8;
    }
    while (p < end && *p != '"' && *p != '\\')
      p++;
    if (p >= end)
      return end;
    if (*p == '"')
      return p + 1;
    p += 2; /* a backslash and the character it escapes */
  }
}

/* Bytes that matter inside an object or array: quotes and brackets. */
static const unsigned char structural[256] = {['"'] = 1, ['{'] = 2, ['['] = 2, ['}'] = 3, [']'] = 3};

/* The end of the value at p (validated JSON; never past end). */
static const char *skip_value(const char *p, const char *end) {
  if (p >= end)
    return end;
  if (*p == '"')
    return skip_string(p, end);
  if (*p == '{' || *p == '[') {
    int depth = 0;
    while (p < end) {
      switch (structural[(unsigned char)*p]) {
      case 0:
        p++;
        continue;
      case 1:
        p = skip_string(p, end);
        continue;
      case 2:
        depth++;
        break;
      default:
        if (--depth == 0)
          return p + 1;
      }
      p++;
    }
    return end;
  }
  while (p < end && *p != ',' && *p != '}' && *p != ']' && *p != ' ' && *p != '\n' && *p != '\r' &&
         *p != '\t')
    p++;
  return p;
}

/* The first member named key of the object span (or false). */
static bool member(const char *s, size_t n, const char *key, size_t klen, const char **v, size_t *vn) {
  const char *end = s + n, *p = ws(s, end);
  if (p >= end || *p != '{')
    return false;
  p = ws(p + 1, end);
  while (p < end && *p == '"') {
    const char *kend = skip_string(p, end);
    bool hit = (size_t)(kend - p) == klen + 2 && !memcmp(p + 1, key, klen);
    p = ws(kend, end);
    if (p >= end || *p != ':')
      return false;
    p = ws(p + 1, end);
    const char *vend = skip_value(p, end);
    if (hit) {
      *v = p;
      *vn = (size_t)(vend - p);
      return true;
    }
    p = ws(vend, end);
    if (p >= end || *p != ',')
      return false;
    p = ws(p + 1, end);
  }
  return false;
}

/* The slot of a key (not empty) in hl__wh_doc.slot: its length and first and last bytes. */
static inline size_t key_slot(const char *k, size_t n) {
  return (n * 7 + (unsigned char)k[0] * 3 + (unsigned char)k[n - 1]) & (HL__WH_DOC_SLOTS - 1);
}

/* Whether tape node a and b have the same key. */
static inline bool same_key(const hl__wh_doc *d, const hl_jscan_node *a, const hl_jscan_node *b) {
  return a->klen == b->klen && !memcmp(d->s + a->key, d->s + b->key, a->klen);
}

int hl__wh_doc_init_tape(hl__wh_doc *d, const char *s, size_t n, const hl_jscan_node *t, size_t nt) {
  if (!t || nt == 0)
    return hl__wh_doc_init(d, s, n);
  d->s = s;
  d->n = n;
  d->t = t;
  d->nt = nt;
  d->ntop = 0;
  d->indexed = false;
  d->hashed = false;
  if (s[t[0].start] != '{')
    return HL_EPARSE;
  /*
   * Every path starts with a top-level member: they are hashed once (the
   * first occurrence of a key wins; empty keys match no path) when they
   * leave a third of the slots free, so that most lookups compare one key.
   */
  size_t members = 0;
  for (size_t k = 1; k < nt && members <= HL__WH_DOC_SLOTS * 2 / 3; k = t[k].next)
    members++;
  if (members > HL__WH_DOC_SLOTS * 2 / 3)
    return 0;
  memset(d->slot, 0, sizeof(d->slot));
  for (size_t k = 1; k < nt; k = t[k].next) {
    if (t[k].klen == 0)
      continue;
    size_t h = key_slot(s + t[k].key, t[k].klen);
    while (d->slot[h] && !same_key(d, &t[d->slot[h]], &t[k]))
      h = (h + 1) & (HL__WH_DOC_SLOTS - 1);
    if (!d->slot[h])
      d->slot[h] = (uint32_t)k;
  }
  d->hashed = true;
  return 0;
}

int hl__wh_doc_init(hl__wh_doc *d, const char *s, size_t n) {
  d->s = s;
  d->n = n;
  d->t = NULL;
  d->nt = 0;
  d->ntop = 0;
  d->indexed = false;
  const char *end = s + n, *p = ws(s, end);
  if (p >= end || *p != '{')
    return HL_EPARSE;
  p = ws(p + 1, end);
  while (p < end && *p == '"') {
    const char *kend = skip_string(p, end);
    const char *k = p + 1;
    size_t kl = (size_t)(kend - 1 - k);
    p = ws(kend, end);
    if (p >= end || *p != ':')
      return HL_EPARSE;
    p = ws(p + 1, end);
    const char *vend = skip_value(p, end);
    if (d->ntop == HL__WH_DOC_TOP)
      return 0; /* too many members to index: lookups walk the object */
    bool dup = false;
    for (size_t i = 0; i < d->ntop && !dup; i++)
      dup = d->top[i].klen == kl && !memcmp(d->top[i].key, k, kl);
    if (!dup)
      d->top[d->ntop++] = (hl__wh_member){k, kl, p, (size_t)(vend - p)};
    p = ws(vend, end);
    if (p >= end || *p != ',')
      break;
    p = ws(p + 1, end);
  }
  d->indexed = true;
  return 0;
}

typedef struct walk {
  int (*cb)(void *ud, const char *v, size_t n);
  void *ud;
} walk;

static int eval(const walk *w, const char *s, size_t n, const hl__wh_step *st, size_t nst) {
  if (nst == 0)
    return w->cb(w->ud, s, n);
  const char *v;
  size_t vn;
  if (st->index == HL__WH_STEP_KEY)
    return member(s, n, st->key, st->klen, &v, &vn) ? eval(w, v, vn, st + 1, nst - 1) : 0;
  const char *end = s + n, *p = ws(s, end);
  if (p >= end || *p != '[')
    return 0;
  p = ws(p + 1, end);
  for (long i = 0; p < end && *p != ']'; i++) {
    const char *vend = skip_value(p, end);
    if (st->index == HL__WH_STEP_STAR) {
      int rc = eval(w, p, (size_t)(vend - p), st + 1, nst - 1);
      if (rc)
        return rc;
    } else if (i == st->index) {
      return eval(w, p, (size_t)(vend - p), st + 1, nst - 1);
    }
    p = ws(vend, end);
    if (p >= end || *p != ',')
      break;
    p = ws(p + 1, end);
  }
  return 0;
}

/* Whether the key of tape node k is the step's key (lengths compared first: most differ). */
static inline bool key_is(const hl__wh_doc *d, const hl_jscan_node *k, const hl__wh_step *st) {
  const char *a = d->s + k->key;
  return k->klen == st->klen && a[0] == st->key[0] && !memcmp(a, st->key, st->klen);
}

/*
 * eval() over the tape, from node i: a member or an element is found by
 * jumping from node to node (next), never reading the bytes of the values
 * passed over. Same results as eval() on the text.
 */
static int eval_tape(const walk *w, const hl__wh_doc *d, size_t i, const hl__wh_step *st, size_t nst) {
  const hl_jscan_node *t = d->t;
  for (; nst > 0; st++, nst--) {
    char c = d->s[t[i].start];
    size_t end = t[i].next, k = i + 1;
    if (st->index == HL__WH_STEP_KEY && i == 0 && d->hashed) {
      size_t h = key_slot(st->key, st->klen);
      while ((k = d->slot[h]) && !key_is(d, &t[k], st))
        h = (h + 1) & (HL__WH_DOC_SLOTS - 1);
      if (!k)
        return 0;
    } else if (st->index == HL__WH_STEP_KEY) {
      if (c != '{')
        return 0;
      while (k < end && !key_is(d, &t[k], st))
        k = t[k].next;
    } else {
      if (c != '[')
        return 0;
      if (st->index == HL__WH_STEP_STAR) {
        for (; k < end; k = t[k].next) {
          int rc = eval_tape(w, d, k, st + 1, nst - 1);
          if (rc)
            return rc;
        }
        return 0;
      }
      for (long n = 0; k < end && n < st->index; n++)
        k = t[k].next;
    }
    if (k >= end)
      return 0;
    i = k;
  }
  return w->cb(w->ud, d->s + t[i].start, t[i].end - t[i].start);
}

/* The tape node of the value that starts at byte off of the document (nodes are in byte order). */
static bool node_at(const hl__wh_doc *d, size_t off, size_t *i) {
  size_t lo = 0, hi = d->nt;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (d->t[mid].start < off)
      lo = mid + 1;
    else
      hi = mid;
  }
  if (lo >= d->nt || d->t[lo].start != off)
    return false;
  *i = lo;
  return true;
}

/* Evaluates one alternative from the root of the document. */
static int eval_root(const walk *w, const hl__wh_doc *d, const hl__wh_step *st, size_t nst) {
  if (d->t)
    return eval_tape(w, d, 0, st, nst);
  if (d->indexed && nst > 0 && st->index == HL__WH_STEP_KEY) {
    for (size_t i = 0; i < d->ntop; i++)
      if (d->top[i].klen == st->klen && !memcmp(d->top[i].key, st->key, st->klen))
        return eval(w, d->top[i].val, d->top[i].vlen, st + 1, nst - 1);
    return 0;
  }
  return eval(w, d->s, d->n, st, nst);
}

typedef struct first {
  const char *v;
  size_t n;
} first;

static int take_first(void *ud, const char *v, size_t n) {
  first *f = ud;
  f->v = v;
  f->n = n;
  return 1;
}

bool hl__wh_xpath_first(const hl__wh_xpath *x, const hl__wh_doc *d, const char **v, size_t *n) {
  if (x->self) {
    *v = d->s;
    *n = d->n;
    return true;
  }
  for (size_t a = 0; a < x->nalts; a++) {
    first f = {NULL, 0};
    walk w = {take_first, &f};
    eval_root(&w, d, x->alts[a].steps, x->alts[a].nsteps);
    if (f.v && !(f.n == 4 && !memcmp(f.v, "null", 4))) {
      *v = f.v;
      *n = f.n;
      return true;
    }
  }
  return false;
}

bool hl__wh_xpath_sub(const hl__wh_xpath *x, const hl__wh_doc *d, const char *s, size_t sn,
                      const char **v, size_t *n) {
  size_t node = 0;
  bool taped = d && d->t && s >= d->s && s < d->s + d->n && node_at(d, (size_t)(s - d->s), &node) &&
               d->t[node].end - d->t[node].start == sn;
  for (size_t a = 0; a < x->nalts; a++) {
    first f = {NULL, 0};
    walk w = {take_first, &f};
    if (taped)
      eval_tape(&w, d, node, x->alts[a].steps, x->alts[a].nsteps);
    else
      eval(&w, s, sn, x->alts[a].steps, x->alts[a].nsteps);
    if (f.v && !(f.n == 4 && !memcmp(f.v, "null", 4))) {
      *v = f.v;
      *n = f.n;
      return true;
    }
  }
  return false;
}

int hl__wh_xpath_each(const hl__wh_xpath *x, const hl__wh_doc *d,
                      int (*cb)(void *ud, const char *v, size_t n), void *ud) {
  walk w = {cb, ud};
  if (x->self)
    return cb(ud, d->s, d->n);
  for (size_t a = 0; a < x->nalts; a++) {
    int rc = eval_root(&w, d, x->alts[a].steps, x->alts[a].nsteps);
    if (rc)
      return rc;
  }
  return 0;
}

/* ---- Values ----------------------------------------------------------------------- */

static int hex4(const char *p) {
  int v = 0;
  for (int i = 0; i < 4; i++) {
    char c = p[i];
    v = v * 16 + (c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c - 'A' + 10);
  }
  return v;
}

int hl__wh_unescape(const char *s, size_t n, hl_buf *out) {
  if (hl_buf_reserve(out, n + 1) < 0)
    return -ENOMEM;
  char *o = out->data + out->len;
  size_t j = 0;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (c != '\\') {
      o[j++] = c;
      continue;
    }
    if (++i >= n)
      break;
    c = s[i];
    if (c == 'u' && i + 4 < n) {
      unsigned v = (unsigned)hex4(s + i + 1);
      i += 4;
      if (v == 0)
        break; /* as SQLite: a NUL escape ends the string */
      if (v <= 0x7f) {
        o[j++] = (char)v;
      } else if (v <= 0x7ff) {
        o[j++] = (char)(0xc0 | (v >> 6));
        o[j++] = (char)(0x80 | (v & 0x3f));
      } else {
        unsigned lo;
        if ((v & 0xfc00) == 0xd800 && i + 6 < n && s[i + 1] == '\\' && s[i + 2] == 'u' &&
            ((lo = (unsigned)hex4(s + i + 3)) & 0xfc00) == 0xdc00) {
          v = ((v & 0x3ff) << 10) + (lo & 0x3ff) + 0x10000;
          i += 6;
          o[j++] = (char)(0xf0 | (v >> 18));
          o[j++] = (char)(0x80 | ((v >> 12) & 0x3f));
          o[j++] = (char)(0x80 | ((v >> 6) & 0x3f));
          o[j++] = (char)(0x80 | (v & 0x3f));
        } else {
          o[j++] = (char)(0xe0 | (v >> 12));
          o[j++] = (char)(0x80 | ((v >> 6) & 0x3f));
          o[j++] = (char)(0x80 | (v & 0x3f));
        }
      }
      continue;
    }
    o[j++] = c == 'b' ? '\b' : c == 'f' ? '\f' : c == 'n' ? '\n' : c == 'r' ? '\r' : c == 't' ? '\t' : c;
  }
  out->len += j;
  out->data[out->len] = 0;
  return 0;
}

int hl__wh_minify(const char *s, size_t n, hl_buf *out) {
  if (hl_buf_reserve(out, n + 1) < 0)
    return -ENOMEM;
  char *o = out->data + out->len;
  size_t j = 0;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (c == '"') {
      size_t e = (size_t)(skip_string(s + i, s + n) - s);
      memcpy(o + j, s + i, e - i);
      j += e - i;
      i = e - 1;
      continue;
    }
    if (c != ' ' && c != '\n' && c != '\r' && c != '\t')
      o[j++] = c;
  }
  out->len += j;
  out->data[out->len] = 0;
  return 0;
}
