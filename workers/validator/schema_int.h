/*
 * The compiled form of hl_fschema, shared by the validator's modules
 * (schema.c builds it; validate.c walks it; profile.c attaches rules to
 * its definitions and properties by index). Not a public header.
 */
#ifndef HL_VALIDATOR_SCHEMA_INT_H
#define HL_VALIDATOR_SCHEMA_INT_H

#include <regex.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "prim.h"
#include "schema.h"

/* JSON types, as bits. */
enum {
  HL__FT_NULL = 1,
  HL__FT_BOOL = 2,
  HL__FT_OBJECT = 4,
  HL__FT_ARRAY = 8,
  HL__FT_NUMBER = 16,
  HL__FT_INTEGER = 32, /* "integer": a number with no fractional part */
  HL__FT_STRING = 64,
};

#define HL__FNONE UINT32_MAX

/* One value schema. All keywords are applied as JSON Schema does: each to the JSON types it concerns. */
typedef struct hl__fnode {
  uint8_t types;       /* allowed JSON types, 0 = any */
  uint8_t prim;        /* hl_prim checker of "pattern" (HL_PRIM_NONE: none or regex) */
  uint8_t has_const;   /* enum holds the single "const" value */
  uint8_t resource;    /* the value must be a resource (discriminated oneOf) */
  uint32_t regex;      /* index into the fallback regexes, HL__FNONE: none */
  uint32_t def;        /* definition for properties/required/additionalProperties, HL__FNONE: none */
  uint32_t items;      /* node of array items, HL__FNONE: none */
  uint32_t enum_first; /* first string of enum/const in the string table */
  uint32_t nenum;      /* 0: no enum */
  uint32_t name;       /* the definition name this node was compiled from (HL__FNONE: inline) */
} hl__fnode;

typedef struct hl__fprop {
  const char *name;
  uint32_t len;
  uint32_t def;  /* owner definition */
  uint32_t node; /* value schema */
} hl__fprop;

typedef struct hl__fdef {
  const char *name;
  uint32_t name_len;
  uint32_t first_prop; /* properties are props[first_prop .. first_prop+nprops) */
  uint32_t nprops;
  uint32_t first_req;  /* property slots (relative to first_prop) in reqs[] */
  uint32_t nreq;
  uint32_t node;       /* the definition's own node */
  uint8_t closed;      /* additionalProperties: false */
  uint8_t has_props;   /* has properties/required/additionalProperties */
} hl__fdef;

typedef struct hl__fstr {
  const char *s;
  uint32_t len;
} hl__fstr;

struct hl_fschema {
  hl__fdef *defs;
  uint32_t ndefs;
  hl__fprop *props;
  uint32_t nprops;
  hl__fnode *nodes;
  uint32_t nnodes, capnodes;
  uint32_t *reqs;
  uint32_t nreqs;
  hl__fstr *strs; /* enum/const values */
  uint32_t nstrs, capstrs;
  regex_t *regexes;
  uint32_t nregexes;
  /* Property lookup: open addressing, entries are prop index + 1, 0 empty. */
  uint32_t *ptab;
  uint32_t pmask;
  /* Resource discriminator: open addressing over resource definitions (def + 1). */
  uint32_t *rtab;
  uint32_t rmask;
  uint32_t nresources;
  uint32_t resource_nonobject_ok; /* a oneOf of exactly one branch accepts non-objects */
  uint32_t root;                  /* node of the whole document */
  uint32_t max_props;             /* the most properties of one definition */
  char *pool;                     /* names and strings */
};

/* Loads 4 or 8 bytes at s (any alignment) as a number. */
static inline uint64_t hl__load8(const char *s) {
  uint64_t w;
  memcpy(&w, s, 8);
  return w;
}
static inline uint64_t hl__load4(const char *s) {
  uint32_t w;
  memcpy(&w, s, 4);
  return w;
}

/*
 * Hash of s[0..n) under seed, for the property and resource tables. It
 * runs for every member of every object, so it reads a word at a time
 * (the tail as two overlapping loads) instead of a multiply per byte.
 */
static inline uint32_t hl__fhash(uint32_t seed, const char *s, size_t n) {
  const uint64_t k = 0x9e3779b97f4a7c15ull;
  uint64_t h = ((uint64_t)seed + 1) * k ^ n;
  for (; n > 8; s += 8, n -= 8) {
    h = (h ^ hl__load8(s)) * k;
    h ^= h >> 29;
  }
  uint64_t w;
  if (n >= 4) w = hl__load4(s) | hl__load4(s + n - 4) << 32;
  else if (n > 0) w = (uint64_t)(unsigned char)s[0] | (uint64_t)(unsigned char)s[n / 2] << 8 |
                      (uint64_t)(unsigned char)s[n - 1] << 16;
  else w = 0;
  h = (h ^ w) * k;
  h ^= h >> 32;
  return (uint32_t)h;
}

/*
 * a[0..n) == b[0..n), a word at a time with overlapping loads at the tail:
 * property names are short, and a call to memcmp per lookup was ~14% of
 * hl-validator's main thread in bench/pipeline.
 */
static inline bool hl__feq(const char *a, const char *b, size_t n) {
  if (n >= 8) {
    for (size_t i = 0; i + 8 < n; i += 8)
      if (hl__load8(a + i) != hl__load8(b + i)) return false;
    return hl__load8(a + n - 8) == hl__load8(b + n - 8);
  }
  if (n >= 4) return hl__load4(a) == hl__load4(b) && hl__load4(a + n - 4) == hl__load4(b + n - 4);
  for (size_t i = 0; i < n; i++)
    if (a[i] != b[i]) return false;
  return true;
}

/* The property named s[0..n) of definition def, or NULL. */
static inline const hl__fprop *hl__fschema_prop(const hl_fschema *fs, uint32_t def, const char *s,
                                                size_t n) {
  uint32_t i = hl__fhash(def, s, n) & fs->pmask;
  for (;;) {
    uint32_t e = fs->ptab[i];
    if (e == 0) return NULL;
    const hl__fprop *p = &fs->props[e - 1];
    if (p->def == def && p->len == n && hl__feq(p->name, s, n)) return p;
    i = (i + 1) & fs->pmask;
  }
}

/* The definition of resource type s[0..n), or HL__FNONE. */
uint32_t hl__fschema_resource(const hl_fschema *fs, const char *s, size_t n);
/* The definition named name, or HL__FNONE. */
uint32_t hl__fschema_def(const hl_fschema *fs, const char *name, size_t n);

#endif
