/* Profile rules as data: loading, compiling, and the checks behind each kind. See profile.h. */
#include "profile_int.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "hl/error.h"
#include "validate.h"

/* ---- The checks ----------------------------------------------------------------- */

bool hl_profile_calendar_ok(int year, int month, int day) {
  static const int dim[13] = {0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (month == 0) return day == 0;
  if (month < 1 || month > 12) return false;
  if (day == 0) return true;
  int max = dim[month];
  if (month == 2 && ((year % 4 == 0 && year % 100 != 0) || year % 400 == 0)) max = 29;
  return day >= 1 && day <= max;
}

bool hl_profile_loinc_ok(const char *s, size_t n) {
  size_t i = 0, maxd = 7;
  if (n >= 2 && s[0] == 'L' && (s[1] == 'A' || s[1] == 'G' || s[1] == 'L' || s[1] == 'P')) {
    i = 2;
    maxd = 8;
  }
  size_t st = i;
  while (i < n && s[i] >= '0' && s[i] <= '9') i++;
  size_t nd = i - st;
  if (nd < 1 || nd > maxd || i + 2 != n || s[i] != '-' || s[i + 1] < '0' || s[i + 1] > '9') return false;
  /* Part and answer codes (LP, LA, ...) are checked for their form only: their
     check digit is not the plain mod 10 of the number part. */
  if (st > 0) return true;
  /* Luhn: from the rightmost digit of the number part, every other digit doubled. */
  int sum = 0;
  bool dbl = true;
  for (size_t k = i; k > st; k--) {
    int d = s[k - 1] - '0';
    if (dbl) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
    dbl = !dbl;
  }
  return (10 - sum % 10) % 10 == s[i + 1] - '0';
}

/* UCUM, conservatively (see docs/validator.md):
     main      := '/'? term
     term      := component (('.' | '/') component)*
     component := '(' term ')' annotation? | annotation | unit annotation?
     unit      := a run of [A-Za-z0-9%'*_^] and '[...]' groups, either all digits (a
                  factor) or an atom with an optional signed integer exponent at its end
     annotation:= '{' printable ASCII other than braces '}'
   Only printable ASCII without spaces, at most 128 bytes, parentheses at most 8 deep. */
static bool ucum_term(const char *s, size_t n, size_t *i, int depth);

static bool ucum_annotation(const char *s, size_t n, size_t *i) {
  if (*i >= n || s[*i] != '{') return false;
  (*i)++;
  while (*i < n && s[*i] != '}') {
    if (s[*i] == '{') return false;
    (*i)++;
  }
  if (*i >= n) return false;
  (*i)++;
  return true;
}

static bool ucum_atomchar(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '%' || c == '\'' ||
         c == '*' || c == '_' || c == '^';
}

static bool ucum_unit(const char *s, size_t n, size_t *i) {
  size_t st = *i;
  bool nondigit = false;
  size_t last_nondigit_end = st; /* end of the atom part */
  while (*i < n) {
    char c = s[*i];
    if (c == '[') {
      size_t b = ++*i;
      while (*i < n && s[*i] != ']') {
        if (s[*i] == '[' || s[*i] == '{' || s[*i] == '}') return false;
        (*i)++;
      }
      if (*i >= n || *i == b) return false;
      (*i)++;
      nondigit = true;
      last_nondigit_end = *i;
    } else if (ucum_atomchar(c)) {
      (*i)++;
      if (c < '0' || c > '9') {
        nondigit = true;
        last_nondigit_end = *i;
      }
    } else if ((c == '+' || c == '-') && nondigit && *i + 1 < n && s[*i + 1] >= '0' && s[*i + 1] <= '9' &&
               last_nondigit_end == *i) {
      /* The sign of the exponent: only digits may follow. */
      (*i)++;
      while (*i < n && s[*i] >= '0' && s[*i] <= '9') (*i)++;
      break;
    } else {
      break;
    }
  }
  return *i > st;
}

static bool ucum_component(const char *s, size_t n, size_t *i, int depth) {
  if (*i >= n) return false;
  if (s[*i] == '(') {
    if (depth >= 8) return false;
    (*i)++;
    if (!ucum_term(s, n, i, depth + 1) || *i >= n || s[*i] != ')') return false;
    (*i)++;
  } else if (s[*i] == '{') {
    return ucum_annotation(s, n, i);
  } else if (!ucum_unit(s, n, i)) {
    return false;
  }
  if (*i < n && s[*i] == '{') return ucum_annotation(s, n, i);
  return true;
}

static bool ucum_term(const char *s, size_t n, size_t *i, int depth) {
  if (!ucum_component(s, n, i, depth)) return false;
  while (*i < n && (s[*i] == '.' || s[*i] == '/')) {
    (*i)++;
    if (!ucum_component(s, n, i, depth)) return false;
  }
  return true;
}

bool hl_profile_ucum_ok(const char *s, size_t n) {
  if (n == 0 || n > 128) return false;
  for (size_t k = 0; k < n; k++)
    if ((unsigned char)s[k] < 0x21 || (unsigned char)s[k] > 0x7e) return false;
  size_t i = 0;
  if (s[0] == '/') i = 1;
  return ucum_term(s, n, &i, 0) && i == n;
}

/* Type/id[/_history/vid] at the end of s[0..n); fills type. */
static bool ref_tail(const hl_fschema *fs, const char *s, size_t n, const char **type, size_t *tlen) {
  /* Splits on '/' from the right: up to four segments matter. */
  const char *segs[5];
  size_t lens[5], k = 0;
  size_t end = n;
  while (k < 4) {
    size_t j = end;
    while (j > 0 && s[j - 1] != '/') j--;
    segs[k] = s + j;
    lens[k] = end - j;
    k++;
    if (j == 0) break;
    end = j - 1;
  }
  size_t ti = 1, ii = 0; /* indexes of type and id among the segments from the right */
  if (k >= 4 && lens[1] == 8 && memcmp(segs[1], "_history", 8) == 0) {
    if (!hl_prim_check(HL_PRIM_ID, segs[0], lens[0])) return false;
    ti = 3;
    ii = 2;
  }
  if (k <= ti) return false;
  if (!hl_prim_check(HL_PRIM_ID, segs[ii], lens[ii])) return false;
  if (!hl_fschema_is_resource(fs, segs[ti], lens[ti])) return false;
  *type = segs[ti];
  *tlen = lens[ti];
  /* Relative references have nothing before Type. */
  return true;
}

hl_ref_form hl_profile_ref_parse(const hl_fschema *fs, const char *s, size_t n, const char **type,
                                 size_t *tlen) {
  *type = NULL;
  *tlen = 0;
  if (n == 0) return HL_REF_INVALID;
  if (s[0] == '#') return n == 1 || hl_prim_check(HL_PRIM_ID, s + 1, n - 1) ? HL_REF_CONTAINED : HL_REF_INVALID;
  if (n > 9 && memcmp(s, "urn:uuid:", 9) == 0)
    return hl_prim_check(HL_PRIM_UUID, s, n) ? HL_REF_URN_UUID : HL_REF_INVALID;
  if (n > 8 && memcmp(s, "urn:oid:", 8) == 0)
    return hl_prim_check(HL_PRIM_OID, s, n) ? HL_REF_URN_OID : HL_REF_INVALID;
  const char *t;
  size_t tl;
  size_t pfx = 0;
  if (n > 7 && memcmp(s, "http://", 7) == 0) pfx = 7;
  else if (n > 8 && memcmp(s, "https://", 8) == 0) pfx = 8;
  for (size_t i = 0; i < n; i++)
    if ((unsigned char)s[i] <= 0x20 || s[i] == '?' || s[i] == '#') return HL_REF_INVALID;
  if (pfx) {
    /* host, then at least Type/id */
    const char *slash = memchr(s + pfx, '/', n - pfx);
    if (!slash || slash == s + pfx) return HL_REF_INVALID;
    if (!ref_tail(fs, slash + 1, n - (size_t)(slash + 1 - s), &t, &tl)) return HL_REF_INVALID;
    *type = t;
    *tlen = tl;
    return HL_REF_ABSOLUTE;
  }
  if (!ref_tail(fs, s, n, &t, &tl) || t != s) return HL_REF_INVALID;
  *type = t;
  *tlen = tl;
  return HL_REF_RELATIVE;
}

/* ---- Compiling a profile -------------------------------------------------------- */

typedef struct pair {
  uint32_t target; /* def or prop index */
  uint32_t rule;
} pair;

typedef struct pc {
  const hl_fschema *fs;
  hl_profile *p;
  uint8_t *ncap; /* captures used per definition */
  pair *defp, *propp;
  size_t ndefp, npropp, capdefp, cappropp;
  char **owned;
  size_t nowned;
  char *err;
  size_t errlen;
} pc;

static int fail(pc *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(pc *c, const char *fmt, ...) {
  if (c->err && c->errlen) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err, c->errlen, fmt, ap);
    va_end(ap);
  }
  return HL_EPARSE;
}

static const char *own(pc *c, const char *s) {
  char *d = strdup(s);
  if (!d) return NULL;
  char **no = realloc(c->owned, (c->nowned + 1) * sizeof *no);
  if (!no) {
    free(d);
    return NULL;
  }
  c->owned = no;
  c->owned[c->nowned++] = d;
  return d;
}

static int add_pair(pair **arr, size_t *n, size_t *cap, uint32_t target, uint32_t rule) {
  if (*n == *cap) {
    size_t nc = *cap ? *cap * 2 : 32;
    pair *na = realloc(*arr, nc * sizeof *na);
    if (!na) return -ENOMEM;
    *arr = na;
    *cap = nc;
  }
  (*arr)[(*n)++] = (pair){target, rule};
  return 0;
}

/* The definition of the values of property pi (through array items), or HL__FNONE. */
static uint32_t prop_target(const hl_fschema *fs, uint32_t pi) {
  const hl__fnode *n = &fs->nodes[fs->props[pi].node];
  if (n->items != HL__FNONE) n = &fs->nodes[n->items];
  return n->def;
}

/* "Type" -> (def, HL__FNONE); "Type.a.b" -> (def of b's values, prop b). */
static int resolve_on(pc *c, const char *on, uint32_t *def, uint32_t *prop, const char *rid) {
  const hl_fschema *fs = c->fs;
  const char *dot = strchr(on, '.');
  size_t l = dot ? (size_t)(dot - on) : strlen(on);
  uint32_t d = hl__fschema_def(fs, on, l);
  if (d == HL__FNONE || !fs->defs[d].has_props) return fail(c, "rule %s: \"%s\" is not a complex type", rid, on);
  uint32_t pi = HL__FNONE;
  while (dot) {
    const char *seg = dot + 1;
    dot = strchr(seg, '.');
    l = dot ? (size_t)(dot - seg) : strlen(seg);
    const hl__fprop *p = hl__fschema_prop(fs, d, seg, l);
    if (!p) return fail(c, "rule %s: %s has no element \"%.*s\"", rid, fs->defs[d].name, (int)l, seg);
    pi = (uint32_t)(p - fs->props);
    d = prop_target(fs, pi);
    if (d == HL__FNONE) return fail(c, "rule %s: \"%s\" does not lead to a complex element", rid, on);
  }
  *def = d;
  *prop = pi;
  return 0;
}

/* The capture slot of the string element name in def. */
static int capture(pc *c, uint32_t def, const char *name, uint8_t *slot, const char *rid) {
  const hl__fprop *p = hl__fschema_prop(c->fs, def, name, strlen(name));
  if (!p) return fail(c, "rule %s: %s has no element \"%s\"", rid, c->fs->defs[def].name, name);
  uint32_t pi = (uint32_t)(p - c->fs->props);
  if (!c->p->capture[pi]) {
    if (c->ncap[def] >= HL__PCAP_MAX)
      return fail(c, "rule %s: too many captured elements on %s", rid, c->fs->defs[def].name);
    c->p->capture[pi] = ++c->ncap[def];
  }
  *slot = (uint8_t)(c->p->capture[pi] - 1);
  return 0;
}

static const char *const known_members[] = {"id",    "kind",    "on",     "severity", "code",  "message",
                                            "elements", "types", "allow", "system",   "enabled",
                                            "description", NULL};

static int compile_rule(pc *c, const json_t *j, uint32_t ri) {
  hl_profile *p = c->p;
  hl__prule *r = &p->rules[ri];
  const char *id = json_string_value(json_object_get(j, "id"));
  const char *kind = json_string_value(json_object_get(j, "kind"));
  const char *msg = json_string_value(json_object_get(j, "message"));
  const char *sev = json_string_value(json_object_get(j, "severity"));
  const char *code = json_string_value(json_object_get(j, "code"));
  int rc;
  if (!json_is_object(j) || !id || !*id) return fail(c, "rules[%u]: needs a string \"id\"", ri);
  const char *k;
  const json_t *val;
  json_object_foreach((json_t *)j, k, val) {
    bool ok = false;
    for (int i = 0; known_members[i]; i++) ok = ok || !strcmp(k, known_members[i]);
    if (!ok) return fail(c, "rule %s: unknown member \"%s\"", id, k);
  }
  if (!kind) return fail(c, "rule %s: needs a string \"kind\"", id);
  if (!msg || !*msg) return fail(c, "rule %s: needs a \"message\"", id);
  for (uint32_t i = 0; i < ri; i++)
    if (!strcmp(p->rules[i].id, id)) return fail(c, "rule %s: id used twice", id);
  if (!(r->id = own(c, id)) || !(r->message = own(c, msg))) return -ENOMEM;
  r->severity = HL_VSEV_ERROR;
  if (sev) {
    if (!strcmp(sev, "fatal")) r->severity = HL_VSEV_FATAL;
    else if (!strcmp(sev, "error")) r->severity = HL_VSEV_ERROR;
    else if (!strcmp(sev, "warning")) r->severity = HL_VSEV_WARNING;
    else if (!strcmp(sev, "information")) r->severity = HL_VSEV_INFORMATION;
    else return fail(c, "rule %s: unknown severity \"%s\"", id, sev);
  }
  static const struct {
    const char *name;
    hl__pkind kind;
    const char *code;
    bool needs_on;
  } kinds[] = {
    {"required", HL__PK_REQUIRED, "required", true},
    {"reference-format", HL__PK_REF_FORMAT, "value", true},
    {"reference-target", HL__PK_REF_TARGET, "value", true},
    {"calendar-date", HL__PK_CALENDAR, "value", false},
    {"loinc-check-digit", HL__PK_LOINC, "code-invalid", true},
    {"ucum-unit", HL__PK_UCUM, "code-invalid", true},
    {"json-object", HL__PK_JSON_OBJECT, "structure", false},
    {"json-integer", HL__PK_JSON_INTEGER, "value", false},
    {"json-empty", HL__PK_JSON_EMPTY, "structure", false},
  };
  size_t ki = 0;
  while (ki < sizeof kinds / sizeof kinds[0] && strcmp(kinds[ki].name, kind) != 0) ki++;
  if (ki == sizeof kinds / sizeof kinds[0]) return fail(c, "rule %s: unknown kind \"%s\"", id, kind);
  r->kind = (uint8_t)kinds[ki].kind;
  if (!(r->code = own(c, code ? code : kinds[ki].code))) return -ENOMEM;
  const json_t *on = json_object_get(j, "on");
  if (!kinds[ki].needs_on) {
    if (on) return fail(c, "rule %s: kind %s applies to every value and takes no \"on\"", id, kind);
    const hl__prule **slot = r->kind == HL__PK_CALENDAR      ? &p->calendar
                             : r->kind == HL__PK_JSON_OBJECT ? &p->json_object
                             : r->kind == HL__PK_JSON_INTEGER ? &p->json_integer
                                                              : &p->json_empty;
    if (*slot) return fail(c, "rule %s: a second rule of kind %s", id, kind);
    *slot = r;
    return 0;
  }
  /* "on": a string or an array of strings. */
  size_t non = json_is_array(on) ? json_array_size(on) : on ? 1 : 0;
  if (non == 0) return fail(c, "rule %s: needs \"on\"", id);
  uint32_t first_def = HL__FNONE;
  for (size_t oi = 0; oi < non; oi++) {
    const char *os = json_string_value(json_is_array(on) ? json_array_get(on, oi) : on);
    if (!os) return fail(c, "rule %s: \"on\" holds a non-string", id);
    uint32_t def = HL__FNONE, prop = HL__FNONE;
    if ((rc = resolve_on(c, os, &def, &prop, id)) < 0) return rc;
    if (first_def == HL__FNONE) first_def = def;
    else if (r->kind == HL__PK_REQUIRED && def != first_def)
      return fail(c, "rule %s: a required rule applies to one type", id);
    rc = prop == HL__FNONE ? add_pair(&c->defp, &c->ndefp, &c->capdefp, def, ri)
                           : add_pair(&c->propp, &c->npropp, &c->cappropp, prop, ri);
    if (rc < 0) return rc;
    switch (r->kind) {
    case HL__PK_REF_FORMAT:
    case HL__PK_REF_TARGET:
      if ((rc = capture(c, def, "reference", &r->cap_a, id)) < 0) return rc;
      if (r->kind == HL__PK_REF_TARGET && (rc = capture(c, def, "type", &r->cap_b, id)) < 0) return rc;
      break;
    case HL__PK_LOINC:
    case HL__PK_UCUM:
      if ((rc = capture(c, def, "system", &r->cap_a, id)) < 0) return rc;
      if ((rc = capture(c, def, "code", &r->cap_b, id)) < 0) return rc;
      break;
    default:
      break;
    }
    /* Slots are per definition: every target of one rule must agree. */
    if (oi > 0 && r->kind != HL__PK_REQUIRED) {
      uint8_t a = 0, b = 0;
      if (r->kind == HL__PK_REF_FORMAT || r->kind == HL__PK_REF_TARGET) capture(c, def, "reference", &a, id);
      else capture(c, def, "system", &a, id);
      if (r->kind == HL__PK_LOINC || r->kind == HL__PK_UCUM) capture(c, def, "code", &b, id);
      if (r->kind == HL__PK_REF_TARGET) capture(c, def, "type", &b, id);
      if (a != r->cap_a || (b != r->cap_b && r->kind != HL__PK_REF_FORMAT))
        return fail(c, "rule %s: split it into one rule per target type", id);
    }
  }
  const hl_fschema *fs = c->fs;
  if (r->kind == HL__PK_REQUIRED) {
    const json_t *els = json_object_get(j, "elements");
    if (!json_is_array(els) || json_array_size(els) == 0) return fail(c, "rule %s: needs \"elements\"", id);
    r->nslots = (uint32_t)json_array_size(els);
    r->slots = calloc(r->nslots, sizeof *r->slots);
    r->twin_slots = calloc(r->nslots, sizeof *r->twin_slots);
    r->names = calloc(r->nslots, sizeof *r->names);
    if (!r->slots || !r->twin_slots || !r->names) return -ENOMEM;
    const hl__fdef *d = &fs->defs[first_def];
    for (uint32_t i = 0; i < r->nslots; i++) {
      const char *name = json_string_value(json_array_get(els, i));
      const hl__fprop *pp = name ? hl__fschema_prop(fs, first_def, name, strlen(name)) : NULL;
      if (!pp) return fail(c, "rule %s: %s has no element \"%s\"", id, d->name, name ? name : "?");
      r->slots[i] = (uint32_t)(pp - fs->props) - d->first_prop;
      r->names[i] = pp->name;
      char twin[256];
      snprintf(twin, sizeof twin, "_%s", name);
      const hl__fprop *tp = hl__fschema_prop(fs, first_def, twin, strlen(twin));
      r->twin_slots[i] = tp ? (uint32_t)(tp - fs->props) - d->first_prop : HL__FNONE;
    }
  }
  if (r->kind == HL__PK_REF_TARGET) {
    const json_t *types = json_object_get(j, "types");
    if (!json_is_array(types) || json_array_size(types) == 0) return fail(c, "rule %s: needs \"types\"", id);
    r->ntargets = (uint32_t)json_array_size(types);
    r->targets = calloc(r->ntargets, sizeof *r->targets);
    if (!r->targets) return -ENOMEM;
    for (uint32_t i = 0; i < r->ntargets; i++) {
      const char *t = json_string_value(json_array_get(types, i));
      uint32_t d = t ? hl__fschema_resource(fs, t, strlen(t)) : HL__FNONE;
      if (d == HL__FNONE) return fail(c, "rule %s: \"%s\" is not a resource type", id, t ? t : "?");
      r->targets[i] = d;
    }
  }
  if (r->kind == HL__PK_REF_FORMAT) {
    const json_t *allow = json_object_get(j, "allow");
    r->allow = HL_REF_RELATIVE | HL_REF_ABSOLUTE | HL_REF_URN_UUID | HL_REF_URN_OID | HL_REF_CONTAINED;
    if (allow) {
      r->allow = 0;
      size_t i;
      const json_t *a;
      if (!json_is_array(allow)) return fail(c, "rule %s: \"allow\" is not an array", id);
      json_array_foreach(allow, i, a) {
        const char *s = json_string_value(a);
        if (s && !strcmp(s, "relative")) r->allow |= HL_REF_RELATIVE;
        else if (s && !strcmp(s, "absolute")) r->allow |= HL_REF_ABSOLUTE;
        else if (s && !strcmp(s, "urn:uuid")) r->allow |= HL_REF_URN_UUID;
        else if (s && !strcmp(s, "urn:oid")) r->allow |= HL_REF_URN_OID;
        else if (s && !strcmp(s, "contained")) r->allow |= HL_REF_CONTAINED;
        else return fail(c, "rule %s: unknown reference form \"%s\"", id, s ? s : "?");
      }
    }
  }
  if (r->kind == HL__PK_LOINC || r->kind == HL__PK_UCUM) {
    const char *sys = json_string_value(json_object_get(j, "system"));
    if (!sys) sys = r->kind == HL__PK_LOINC ? "http://loinc.org" : "http://unitsofmeasure.org";
    if (!(r->system = own(c, sys))) return -ENOMEM;
    r->syslen = strlen(sys);
  }
  return 0;
}

/* Builds first[0..n] / list[] from pairs. */
static int csr(const pair *pairs, size_t np, uint32_t n, uint32_t **first, uint32_t **list) {
  *first = calloc((size_t)n + 1, sizeof **first);
  *list = calloc(np ? np : 1, sizeof **list);
  if (!*first || !*list) return -ENOMEM;
  for (size_t i = 0; i < np; i++) (*first)[pairs[i].target + 1]++;
  for (uint32_t i = 0; i < n; i++) (*first)[i + 1] += (*first)[i];
  uint32_t *fill = calloc((size_t)n + 1, sizeof *fill);
  if (!fill) return -ENOMEM;
  for (size_t i = 0; i < np; i++) {
    uint32_t t = pairs[i].target;
    (*list)[(*first)[t] + fill[t]++] = pairs[i].rule;
  }
  free(fill);
  return 0;
}

hl_profile *hl_profile_free(hl_profile *p) {
  if (!p) return NULL;
  for (uint32_t i = 0; i < p->nrules; i++) {
    free(p->rules[i].slots);
    free(p->rules[i].twin_slots);
    free(p->rules[i].names);
    free(p->rules[i].targets);
  }
  free(p->rules);
  free(p->def_first);
  free(p->def_list);
  free(p->prop_first);
  free(p->prop_list);
  free(p->capture);
  free(p->name);
  char **owned = p->strings;
  if (owned) {
    for (size_t i = 0; owned[i]; i++) free(owned[i]);
    free(owned);
  }
  free(p);
  return NULL;
}

int hl_profile_compile(const hl_fschema *fs, const json_t *doc, hl_profile **out, char *err, size_t errlen) {
  pc c = {.fs = fs, .err = err, .errlen = errlen};
  int rc = -ENOMEM;
  if (err && errlen) err[0] = 0;
  hl_profile *p = calloc(1, sizeof *p);
  if (!p) return -ENOMEM;
  c.p = p;
  p->fs = fs;
  const json_t *rules = json_object_get(doc, "rules");
  const char *name = json_string_value(json_object_get(doc, "profile"));
  {
    const char *k;
    const json_t *val;
    json_object_foreach((json_t *)doc, k, val) {
      if (strcmp(k, "profile") && strcmp(k, "version") && strcmp(k, "description") && strcmp(k, "rules")) {
        rc = fail(&c, "unknown top-level member \"%s\"", k);
        goto done;
      }
    }
  }
  if (!json_is_object(doc) || !json_is_array(rules) || json_array_size(rules) > HL_PROFILE_MAX_RULES) {
    rc = fail(&c, "a profile is an object with a \"rules\" array (at most %u rules)", HL_PROFILE_MAX_RULES);
    goto done;
  }
  p->name = strdup(name ? name : "");
  p->capture = calloc(fs->nprops ? fs->nprops : 1, 1);
  c.ncap = calloc(fs->ndefs, 1);
  p->rules = calloc(json_array_size(rules) + 1, sizeof *p->rules);
  if (!p->name || !p->capture || !c.ncap || !p->rules) goto done;
  size_t i;
  const json_t *r;
  json_array_foreach(rules, i, r) {
    const json_t *en = json_object_get(r, "enabled");
    if (en && !json_is_boolean(en)) {
      rc = fail(&c, "rules[%zu]: \"enabled\" is not a boolean", i);
      goto done;
    }
    if (json_is_false(en)) continue;
    p->nrules++;
    if ((rc = compile_rule(&c, r, p->nrules - 1)) < 0) goto done;
  }
  if ((rc = csr(c.defp, c.ndefp, fs->ndefs, &p->def_first, &p->def_list)) < 0) goto done;
  if ((rc = csr(c.propp, c.npropp, fs->nprops, &p->prop_first, &p->prop_list)) < 0) goto done;
  rc = 0;
done:
  /* The owned strings, NULL-terminated, move to the profile. */
  {
    char **owned = realloc(c.owned, (c.nowned + 1) * sizeof *owned);
    if (owned) {
      owned[c.nowned] = NULL;
      p->strings = owned;
    } else {
      for (size_t k = 0; k < c.nowned; k++) free(c.owned[k]);
      free(c.owned);
      if (rc == 0) rc = -ENOMEM;
    }
  }
  free(c.ncap);
  free(c.defp);
  free(c.propp);
  if (rc < 0) {
    hl_profile_free(p);
    return rc;
  }
  *out = p;
  return 0;
}

int hl_profile_load(const hl_fschema *fs, const char *path, hl_profile **out, char *err, size_t errlen) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    int e = errno;
    if (err && errlen) snprintf(err, errlen, "%s: %s", path, strerror(e));
    return -e;
  }
  struct stat st;
  if (fstat(fileno(f), &st) == 0 && st.st_size > (off_t)HL_PROFILE_MAX_BYTES) {
    fclose(f);
    if (err && errlen) snprintf(err, errlen, "%s: larger than %u bytes", path, HL_PROFILE_MAX_BYTES);
    return HL_ELIMIT;
  }
  json_error_t je;
  json_t *doc = json_loadf(f, JSON_REJECT_DUPLICATES, &je);
  fclose(f);
  if (!doc) {
    if (err && errlen) snprintf(err, errlen, "%s:%d: %s", path, je.line, je.text);
    return HL_EPARSE;
  }
  int rc = hl_profile_compile(fs, doc, out, err, errlen);
  json_decref(doc);
  return rc;
}

size_t hl_profile_nrules(const hl_profile *p) { return p->nrules; }

const char *hl_profile_name(const hl_profile *p) { return p->name ? p->name : ""; }
