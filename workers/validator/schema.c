/* Compiles fhir.schema.json into flat tables; see schema.h and schema_int.h. */
#include "schema_int.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "hl/error.h"

/* A chunked arena for names and strings: pointers stay valid as it grows. */
typedef struct pool_chunk {
  struct pool_chunk *next;
  size_t used, cap;
  char data[];
} pool_chunk;

typedef struct compiler {
  hl_fschema *fs;
  const json_t *defs; /* the "definitions" object */
  pool_chunk *chunks;
  uint32_t caprops, capreqs;
  bool have_resources;
  char *err;
  size_t errlen;
} compiler;

static int fail(compiler *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(compiler *c, const char *fmt, ...) {
  if (c->err && c->errlen) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err, c->errlen, fmt, ap);
    va_end(ap);
  }
  return HL_EPARSE;
}

static const char *pool_dup(compiler *c, const char *s, size_t n) {
  pool_chunk *k = c->chunks;
  if (!k || k->cap - k->used < n + 1) {
    size_t cap = n + 1 > 65536 ? n + 1 : 65536;
    pool_chunk *nk = malloc(sizeof *nk + cap);
    if (!nk) return NULL;
    nk->next = k;
    nk->used = 0;
    nk->cap = cap;
    c->chunks = nk;
    k = nk;
  }
  char *out = k->data + k->used;
  memcpy(out, s, n);
  out[n] = 0;
  k->used += n + 1;
  return out;
}

static int grow(void **arr, uint32_t *cap, uint32_t need, size_t elem) {
  if (need <= *cap) return 0;
  uint32_t nc = *cap ? *cap : 64;
  while (nc < need) nc *= 2;
  void *na = realloc(*arr, (size_t)nc * elem);
  if (!na) return -ENOMEM;
  *arr = na;
  *cap = nc;
  return 0;
}

static uint32_t new_node(compiler *c) {
  hl_fschema *fs = c->fs;
  if (grow((void **)&fs->nodes, &fs->capnodes, fs->nnodes + 1, sizeof *fs->nodes) < 0) return HL__FNONE;
  hl__fnode *n = &fs->nodes[fs->nnodes];
  memset(n, 0, sizeof *n);
  n->regex = n->def = n->items = n->name = HL__FNONE;
  return fs->nnodes++;
}

static int add_str(compiler *c, const char *s, size_t n) {
  hl_fschema *fs = c->fs;
  if (grow((void **)&fs->strs, &fs->capstrs, fs->nstrs + 1, sizeof *fs->strs) < 0) return -ENOMEM;
  const char *d = pool_dup(c, s, n);
  if (!d) return -ENOMEM;
  fs->strs[fs->nstrs].s = d;
  fs->strs[fs->nstrs].len = (uint32_t)n;
  fs->nstrs++;
  return 0;
}

/* "#/definitions/X" -> index of X. */
static uint32_t resolve_ref(compiler *c, const char *ref) {
  const char *pfx = "#/definitions/";
  if (strncmp(ref, pfx, strlen(pfx)) != 0) return HL__FNONE;
  const char *name = ref + strlen(pfx);
  return hl__fschema_def(c->fs, name, strlen(name));
}

static bool annotation(const char *k) {
  return !strcmp(k, "description") || !strcmp(k, "title") || !strcmp(k, "$comment") ||
         !strcmp(k, "$schema") || !strcmp(k, "id") || !strcmp(k, "$id");
}

static int type_bits(compiler *c, const json_t *t, const char *where, uint8_t *out) {
  const json_t *one;
  size_t i;
  uint8_t bits = 0;
  if (json_is_string(t)) {
    json_t *arr = json_array();
    if (!arr) return -ENOMEM;
    json_array_append(arr, (json_t *)t);
    int rc = type_bits(c, arr, where, out);
    json_decref(arr);
    return rc;
  }
  if (!json_is_array(t)) return fail(c, "%s: \"type\" is neither a string nor an array", where);
  json_array_foreach(t, i, one) {
    const char *s = json_string_value(one);
    if (!s) return fail(c, "%s: \"type\" holds a non-string", where);
    if (!strcmp(s, "null")) bits |= HL__FT_NULL;
    else if (!strcmp(s, "boolean")) bits |= HL__FT_BOOL;
    else if (!strcmp(s, "object")) bits |= HL__FT_OBJECT;
    else if (!strcmp(s, "array")) bits |= HL__FT_ARRAY;
    else if (!strcmp(s, "number")) bits |= HL__FT_NUMBER | HL__FT_INTEGER;
    else if (!strcmp(s, "integer")) bits |= HL__FT_INTEGER;
    else if (!strcmp(s, "string")) bits |= HL__FT_STRING;
    else return fail(c, "%s: unknown type \"%s\"", where, s);
  }
  *out = bits;
  return 0;
}

static int compile_pattern(compiler *c, hl__fnode *n, const char *pat, const char *where) {
  hl_prim p = hl_prim_for_pattern(pat);
  if (p != HL_PRIM_NONE) {
    n->prim = (uint8_t)p;
    return 0;
  }
  char ere[1024];
  if (hl_prim_regex_translate(pat, ere, sizeof ere) < 0)
    return fail(c, "%s: pattern %s has no checker and cannot be translated to POSIX", where, pat);
  hl_fschema *fs = c->fs;
  regex_t *nr = realloc(fs->regexes, (fs->nregexes + 1) * sizeof *nr);
  if (!nr) return -ENOMEM;
  fs->regexes = nr;
  if (regcomp(&fs->regexes[fs->nregexes], ere, REG_EXTENDED | REG_NOSUB) != 0)
    return fail(c, "%s: pattern %s does not compile as POSIX %s", where, pat, ere);
  n->regex = fs->nregexes++;
  return 0;
}

static uint32_t compile_inline(compiler *c, const json_t *sch, const char *where, int *rc);

/* The discriminated oneOf: every branch a $ref to a definition that requires
   resourceType and holds it as a const equal to its own name. */
static int compile_oneof(compiler *c, hl__fnode *n, const json_t *arr, const char *where) {
  hl_fschema *fs = c->fs;
  size_t i;
  const json_t *br;
  if (!json_is_array(arr) || json_array_size(arr) == 0)
    return fail(c, "%s: \"oneOf\" is not a non-empty array", where);
  if (c->have_resources && json_array_size(arr) != fs->nresources)
    return fail(c, "%s: a second \"oneOf\" with another set of branches", where);
  if (!c->have_resources) {
    uint32_t size = 16;
    while (size < json_array_size(arr) * 2) size *= 2;
    fs->rtab = calloc(size, sizeof *fs->rtab);
    if (!fs->rtab) return -ENOMEM;
    fs->rmask = size - 1;
  }
  json_array_foreach(arr, i, br) {
    const char *ref = json_string_value(json_object_get(br, "$ref"));
    uint32_t d = ref ? resolve_ref(c, ref) : HL__FNONE;
    if (d == HL__FNONE || json_object_size(br) != 1)
      return fail(c, "%s/oneOf[%zu]: only {\"$ref\": \"#/definitions/...\"} branches are supported", where, i);
    const json_t *dj = json_object_get(c->defs, fs->defs[d].name);
    const json_t *rt = json_object_get(json_object_get(dj, "properties"), "resourceType");
    const char *cv = json_string_value(json_object_get(rt, "const"));
    bool required = false;
    size_t k;
    const json_t *r;
    json_array_foreach(json_object_get(dj, "required"), k, r) {
      if (json_is_string(r) && !strcmp(json_string_value(r), "resourceType")) required = true;
    }
    if (!cv || strcmp(cv, fs->defs[d].name) != 0 || !required || json_object_get(dj, "type"))
      return fail(c, "%s/oneOf[%zu]: %s is not discriminated by a required const resourceType", where, i,
                  fs->defs[d].name);
    if (c->have_resources) {
      if (hl__fschema_resource(fs, cv, strlen(cv)) != d)
        return fail(c, "%s: a second \"oneOf\" with another set of branches", where);
      continue;
    }
    uint32_t h = hl__fhash(UINT32_MAX, cv, strlen(cv)) & fs->rmask;
    while (fs->rtab[h]) {
      if (fs->rtab[h] == d + 1) return fail(c, "%s: resource %s listed twice", where, cv);
      h = (h + 1) & fs->rmask;
    }
    fs->rtab[h] = d + 1;
    fs->nresources++;
  }
  c->have_resources = true;
  fs->resource_nonobject_ok = fs->nresources == 1;
  n->resource = 1;
  return 0;
}

/* Compiles the keywords of sch into node ni; def is the definition being compiled (or HL__FNONE). */
static int compile_into(compiler *c, uint32_t ni, const json_t *sch, uint32_t def, const char *where) {
  hl_fschema *fs = c->fs;
  const char *k;
  const json_t *v;
  int rc;
  if (!json_is_object(sch)) return fail(c, "%s: a schema that is not an object", where);
  if (json_object_get(sch, "$ref")) return fail(c, "%s: \"$ref\" at definition level is not supported", where);
  json_object_foreach((json_t *)sch, k, v) {
    hl__fnode *n = &fs->nodes[ni]; /* re-read: nodes may move as others are added */
    if (annotation(k)) continue;
    if (!strcmp(k, "definitions") || !strcmp(k, "discriminator")) {
      if (def != HL__FNONE || ni != fs->root) return fail(c, "%s: \"%s\" below the top level", where, k);
      continue;
    }
    if (!strcmp(k, "type")) {
      if ((rc = type_bits(c, v, where, &n->types)) < 0) return rc;
    } else if (!strcmp(k, "pattern")) {
      if (!json_is_string(v)) return fail(c, "%s: \"pattern\" is not a string", where);
      if ((rc = compile_pattern(c, n, json_string_value(v), where)) < 0) return rc;
    } else if (!strcmp(k, "enum") || !strcmp(k, "const")) {
      const json_t *vals = v;
      json_t *tmp = NULL;
      if (!strcmp(k, "const")) {
        tmp = json_array();
        if (!tmp) return -ENOMEM;
        json_array_append(tmp, (json_t *)v);
        vals = tmp;
        n->has_const = 1;
      }
      if (n->nenum) {
        json_decref(tmp);
        return fail(c, "%s: both \"enum\" and \"const\"", where);
      }
      if (!json_is_array(vals) || json_array_size(vals) == 0) {
        json_decref(tmp);
        return fail(c, "%s: \"enum\" is not a non-empty array", where);
      }
      uint32_t first = fs->nstrs;
      size_t i;
      const json_t *e;
      json_array_foreach(vals, i, e) {
        if (!json_is_string(e)) {
          json_decref(tmp);
          return fail(c, "%s: only string values are supported in \"%s\"", where, k);
        }
        if ((rc = add_str(c, json_string_value(e), json_string_length(e))) < 0) {
          json_decref(tmp);
          return rc;
        }
      }
      json_decref(tmp);
      n = &fs->nodes[ni];
      n->enum_first = first;
      n->nenum = fs->nstrs - first;
    } else if (!strcmp(k, "items")) {
      char sub[512];
      snprintf(sub, sizeof sub, "%s/items", where);
      uint32_t it = compile_inline(c, v, sub, &rc);
      if (it == HL__FNONE) return rc;
      fs->nodes[ni].items = it;
    } else if (!strcmp(k, "oneOf")) {
      if ((rc = compile_oneof(c, n, v, where)) < 0) return rc;
    } else if (!strcmp(k, "additionalProperties")) {
      if (def == HL__FNONE) return fail(c, "%s: \"additionalProperties\" outside a definition", where);
      if (json_is_false(v)) fs->defs[def].closed = 1;
      else if (!json_is_true(v)) return fail(c, "%s: only boolean \"additionalProperties\" is supported", where);
      fs->defs[def].has_props = 1;
      n->def = def;
    } else if (!strcmp(k, "properties")) {
      if (def == HL__FNONE) return fail(c, "%s: \"properties\" outside a definition", where);
      if (!json_is_object(v)) return fail(c, "%s: \"properties\" is not an object", where);
      hl__fdef *d = &fs->defs[def];
      d->has_props = 1;
      n->def = def;
      if (d->nprops) return fail(c, "%s: \"properties\" twice", where);
      d->first_prop = fs->nprops;
      const char *pk;
      const json_t *pv;
      json_object_foreach((json_t *)v, pk, pv) {
        char sub[512];
        snprintf(sub, sizeof sub, "%s/properties/%s", where, pk);
        uint32_t pn = compile_inline(c, pv, sub, &rc);
        if (pn == HL__FNONE) return rc;
        if (grow((void **)&fs->props, &c->caprops, fs->nprops + 1, sizeof *fs->props) < 0) return -ENOMEM;
        const char *name = pool_dup(c, pk, strlen(pk));
        if (!name) return -ENOMEM;
        fs->props[fs->nprops++] = (hl__fprop){name, (uint32_t)strlen(pk), def, pn};
        fs->defs[def].nprops++;
      }
      if (fs->defs[def].nprops > fs->max_props) fs->max_props = fs->defs[def].nprops;
    } else if (!strcmp(k, "required")) {
      /* Resolved after "properties" (below), whatever the key order. */
      if (def == HL__FNONE) return fail(c, "%s: \"required\" outside a definition", where);
      if (!json_is_array(v)) return fail(c, "%s: \"required\" is not an array", where);
      fs->defs[def].has_props = 1;
      n->def = def;
    } else {
      return fail(c, "%s: keyword \"%s\" is not supported by the compiler", where, k);
    }
  }
  const json_t *req = json_object_get(sch, "required");
  if (req && def != HL__FNONE) {
    hl__fdef *d = &fs->defs[def];
    d->first_req = fs->nreqs;
    size_t i;
    const json_t *r;
    json_array_foreach(req, i, r) {
      const char *name = json_string_value(r);
      const hl__fprop *p = NULL;
      if (name)
        for (uint32_t j = 0; j < d->nprops && !p; j++)
          if (!strcmp(fs->props[d->first_prop + j].name, name)) p = &fs->props[d->first_prop + j];
      if (!p) return fail(c, "%s: required \"%s\" is not one of the properties", where, name ? name : "?");
      if (grow((void **)&fs->reqs, &c->capreqs, fs->nreqs + 1, sizeof *fs->reqs) < 0) return -ENOMEM;
      fs->reqs[fs->nreqs++] = (uint32_t)(p - fs->props) - d->first_prop;
      d->nreq++;
    }
  }
  return 0;
}

static uint32_t compile_inline(compiler *c, const json_t *sch, const char *where, int *rc) {
  if (!json_is_object(sch)) {
    *rc = fail(c, "%s: a schema that is not an object", where);
    return HL__FNONE;
  }
  const json_t *ref = json_object_get(sch, "$ref");
  if (ref) {
    /* draft-06: the siblings of $ref are ignored. */
    uint32_t d = json_is_string(ref) ? resolve_ref(c, json_string_value(ref)) : HL__FNONE;
    if (d == HL__FNONE) {
      *rc = fail(c, "%s: unresolvable $ref", where);
      return HL__FNONE;
    }
    return c->fs->defs[d].node;
  }
  uint32_t ni = new_node(c);
  if (ni == HL__FNONE) {
    *rc = -ENOMEM;
    return HL__FNONE;
  }
  *rc = compile_into(c, ni, sch, HL__FNONE, where);
  return *rc < 0 ? HL__FNONE : ni;
}

uint32_t hl__fschema_def(const hl_fschema *fs, const char *name, size_t n) {
  /* Definitions are sorted by name (see build_defs): binary search. */
  uint32_t lo = 0, hi = fs->ndefs;
  while (lo < hi) {
    uint32_t mid = (lo + hi) / 2;
    const char *dn = fs->defs[mid].name;
    size_t dl = strlen(dn);
    int cmp = memcmp(dn, name, dl < n ? dl : n);
    if (cmp == 0) cmp = dl < n ? -1 : dl > n ? 1 : 0;
    if (cmp == 0) return mid;
    if (cmp < 0) lo = mid + 1;
    else hi = mid;
  }
  return HL__FNONE;
}

uint32_t hl__fschema_resource(const hl_fschema *fs, const char *s, size_t n) {
  if (!fs->rtab) return HL__FNONE;
  uint32_t h = hl__fhash(UINT32_MAX, s, n) & fs->rmask;
  for (;;) {
    uint32_t e = fs->rtab[h];
    if (e == 0) return HL__FNONE;
    const hl__fdef *d = &fs->defs[e - 1];
    if (d->name_len == n && memcmp(d->name, s, n) == 0) return e - 1;
    h = (h + 1) & fs->rmask;
  }
}

int hl_fschema_is_resource(const hl_fschema *s, const char *name, size_t len) {
  return hl__fschema_resource(s, name, len) != HL__FNONE;
}

static int cmp_name(const void *a, const void *b) {
  return strcmp(((const hl__fdef *)a)->name, ((const hl__fdef *)b)->name);
}

hl_fschema *hl_fschema_free(hl_fschema *s) {
  if (!s) return NULL;
  for (uint32_t i = 0; i < s->nregexes; i++) regfree(&s->regexes[i]);
  free(s->regexes);
  free(s->defs);
  free(s->props);
  free(s->nodes);
  free(s->reqs);
  free(s->strs);
  free(s->ptab);
  free(s->rtab);
  pool_chunk *k = (pool_chunk *)s->pool;
  while (k) {
    pool_chunk *next = k->next;
    free(k);
    k = next;
  }
  free(s);
  return NULL;
}

int hl_fschema_compile(const json_t *doc, hl_fschema **out, char *err, size_t errlen) {
  compiler c = {.err = err, .errlen = errlen};
  int rc = -ENOMEM;
  if (err && errlen) err[0] = 0;
  hl_fschema *fs = calloc(1, sizeof *fs);
  if (!fs) return -ENOMEM;
  c.fs = fs;
  fs->root = HL__FNONE;
  if (!json_is_object(doc)) {
    rc = fail(&c, "the schema is not a JSON object");
    goto fail;
  }
  c.defs = json_object_get(doc, "definitions");
  if (!json_is_object(c.defs) || json_object_size(c.defs) == 0 ||
      json_object_size(c.defs) > HL_FSCHEMA_MAX_DEFS) {
    rc = fail(&c, "the schema has no usable \"definitions\" object");
    goto fail;
  }
  /* Definitions first, sorted by name, each with its own node at the same index. */
  fs->ndefs = (uint32_t)json_object_size(c.defs);
  fs->defs = calloc(fs->ndefs, sizeof *fs->defs);
  if (!fs->defs) goto fail;
  {
    const char *k;
    const json_t *v;
    uint32_t i = 0;
    json_object_foreach((json_t *)c.defs, k, v) {
      fs->defs[i].name = pool_dup(&c, k, strlen(k));
      if (!fs->defs[i].name) goto fail;
      fs->defs[i].name_len = (uint32_t)strlen(k);
      i++;
    }
  }
  qsort(fs->defs, fs->ndefs, sizeof *fs->defs, cmp_name);
  for (uint32_t i = 0; i < fs->ndefs; i++) {
    uint32_t ni = new_node(&c);
    if (ni == HL__FNONE) goto fail;
    fs->nodes[ni].name = i;
    fs->defs[i].node = ni;
  }
  fs->root = new_node(&c);
  if (fs->root == HL__FNONE) goto fail;
  for (uint32_t i = 0; i < fs->ndefs; i++) {
    char where[300];
    snprintf(where, sizeof where, "#/definitions/%s", fs->defs[i].name);
    if ((rc = compile_into(&c, i, json_object_get(c.defs, fs->defs[i].name), i, where)) < 0) goto fail;
  }
  if ((rc = compile_into(&c, fs->root, doc, HL__FNONE, "#")) < 0) goto fail;
  /* The property hash table. */
  {
    uint32_t size = 64;
    while (size < fs->nprops * 2u) size *= 2;
    fs->ptab = calloc(size, sizeof *fs->ptab);
    if (!fs->ptab) {
      rc = -ENOMEM;
      goto fail;
    }
    fs->pmask = size - 1;
    for (uint32_t i = 0; i < fs->nprops; i++) {
      uint32_t h = hl__fhash(fs->props[i].def, fs->props[i].name, fs->props[i].len) & fs->pmask;
      while (fs->ptab[h]) h = (h + 1) & fs->pmask;
      fs->ptab[h] = i + 1;
    }
  }
  fs->pool = (char *)c.chunks;
  *out = fs;
  return 0;
fail:
  fs->pool = (char *)c.chunks;
  hl_fschema_free(fs);
  return rc;
}

int hl_fschema_load(const char *path, hl_fschema **out, char *err, size_t errlen) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    int e = errno;
    if (err && errlen) snprintf(err, errlen, "%s: %s", path, strerror(e));
    return -e;
  }
  struct stat st;
  if (fstat(fileno(f), &st) == 0 && st.st_size > (off_t)HL_FSCHEMA_MAX_BYTES) {
    fclose(f);
    if (err && errlen) snprintf(err, errlen, "%s: larger than %u bytes", path, HL_FSCHEMA_MAX_BYTES);
    return HL_ELIMIT;
  }
  json_error_t je;
  json_t *doc = json_loadf(f, JSON_REJECT_DUPLICATES, &je);
  fclose(f);
  if (!doc) {
    if (err && errlen) snprintf(err, errlen, "%s:%d: %s", path, je.line, je.text);
    return HL_EPARSE;
  }
  int rc = hl_fschema_compile(doc, out, err, errlen);
  json_decref(doc);
  return rc;
}

void hl_fschema_get_stats(const hl_fschema *s, hl_fschema_stats *out) {
  out->definitions = s->ndefs;
  out->resources = s->nresources;
  out->properties = s->nprops;
  out->nodes = s->nnodes;
  out->regexes = s->nregexes;
}
