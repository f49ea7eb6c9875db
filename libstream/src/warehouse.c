/*
 * The warehouse front: batches, row checks, idempotency keys, the
 * newest-wins comparison, the column contract, job-status events and the
 * dispatch to a backend. See hl/warehouse.h and docs/warehouse.md.
 */
#define _GNU_SOURCE /* qsort_r */
#include "hl/warehouse.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include "embedded.h"
#include "hl/jscan.h"
#include "warehouse_internal.h"

#define DEFAULT_MAX_ROWS 100000
#define DEFAULT_MAX_BYTES (256u * 1024 * 1024)
#define MAX_FIELD 4096            /* tenant, type, id, job, ... */
#define MAX_RESOURCE (64u << 20)  /* one resource */
#define MAX_TAPE (1u << 20)       /* tape nodes kept for a resource (20 MiB); larger ones are walked */

struct hl_wh {
  const hl__wh_backend *be;
  void *state;
  hl__wh_contract *contract;
  hl_wh_stats stats;
};

/* ---- Errors -------------------------------------------------------------------- */

const char *hl_wh_strerror(int err) {
  switch (err) {
  case HL_WH_EBUSY:
    return "warehouse busy or locked past the retry budget";
  case HL_WH_ESTORAGE:
    return "warehouse storage unavailable (full, I/O error, read-only or cannot open)";
  case HL_WH_ESCHEMA:
    return "warehouse schema newer than this binary or not matching the column contract";
  default:
    return hl_strerror(err);
  }
}

bool hl_wh_is_fatal(int err) {
  return err == HL_WH_ESTORAGE || err == HL_WH_ESCHEMA || err == HL_EFATAL;
}

void hl_wh_opts_from_config(const hl_config *cfg, hl_wh_opts *opts) {
  memset(opts, 0, sizeof(*opts));
  opts->backend = hl_config_str(cfg, "HL_WAREHOUSE_BACKEND");
  opts->path = hl_config_str(cfg, "HL_WAREHOUSE_PATH");
  opts->create = true;
  opts->busy_timeout_ms = hl_config_int(cfg, "HL_WAREHOUSE_BUSY_TIMEOUT");
  opts->retry_budget_ms = hl_config_int(cfg, "HL_WAREHOUSE_RETRY_BUDGET");
  if (opts->retry_budget_ms == 0)
    opts->retry_budget_ms = -1;
  if (opts->backend && !strcmp(opts->backend, "snowflake")) {
    opts->sf_pipe = hl_config_str(cfg, "HL_SNOWFLAKE_PIPE");
    opts->sf_commit_timeout_ms = hl_config_int(cfg, "HL_SNOWFLAKE_COMMIT_TIMEOUT");
    (void)hl_snowflake_config_from(cfg, &opts->snowflake, NULL, 0);
  }
}

/* ---- Small helpers ------------------------------------------------------------- */

void hl__wh_sha256_hex(const void *data, size_t len, char hex[65]) {
  unsigned char md[32];
  unsigned int n = 0;
  static const char digits[] = "0123456789abcdef";
  if (!EVP_Digest(data, len, md, &n, EVP_sha256(), NULL))
    memset(md, 0, sizeof(md));
  for (int i = 0; i < 32; i++) {
    hex[2 * i] = digits[md[i] >> 4];
    hex[2 * i + 1] = digits[md[i] & 15];
  }
  hex[64] = 0;
}

static size_t slen(const char *s, size_t n) {
  return s && n == 0 ? strlen(s) : n;
}

int hl_wh_reference_id(const char *ref, size_t len, const char **id, size_t *id_len) {
  if (!ref || len == 0)
    return HL_EPARSE;
  const char *end = ref + len;
  if (len > 9 && (!memcmp(ref, "urn:uuid:", 9) || !memcmp(ref, "urn:oid:", 8))) {
    const char *s = ref + (ref[4] == 'u' ? 9 : 8);
    *id = s;
    *id_len = (size_t)(end - s);
    return 0;
  }
  if (ref[0] == '#')
    return HL_EPARSE; /* a contained resource, not a literal reference */
  /* Drop a /_history/<version> suffix (found by its rare '_' first). */
  for (const char *p = ref + 1; p + 9 <= end && (p = memchr(p, '_', (size_t)(end - p - 8))); p++) {
    if (p[-1] == '/' && !memcmp(p, "_history/", 9)) {
      end = p - 1;
      break;
    }
  }
  const char *s = end;
  while (s > ref && s[-1] != '/')
    s--;
  if (s == end)
    return HL_EPARSE;
  *id = s;
  *id_len = (size_t)(end - s);
  return 0;
}

/* Latin-1 supplement (U+00C0..U+00FF) and Latin Extended-A (U+0100..U+017F)
   folded to base letters: '*' keeps the character, 'A' = "ae", 'T' = "th",
   'S' = "ss", 'J' = "ij", 'O' = "oe". */
static const char fold_c0[] = "aaaaaaAceeeeiiiidnooooo*ouuuuyTSaaaaaaAceeeeiiiidnooooo*ouuuuyTy";
static const char fold_100[] =
    "aaaaaaccccccccddddeeeeeeeeeegggggggghhhhiiiiiiiiiiJJjjkkkllllllllllnnnnnnnnnooooooOOrrrrrr"
    "ssssssssttttttuuuuuuuuuuuuwwyyyzzzzzzs";

char *hl_wh_normalize(const char *s, size_t len) {
  char *out = malloc(len * 2 + 1); /* a fold writes at most two bytes per two-byte character */
  if (!out)
    return NULL;
  size_t o = 0;
  const unsigned char *p = (const unsigned char *)s, *end = p + len;
  while (p < end) {
    unsigned c = *p;
    if (c < 0x80) {
      out[o++] = (char)tolower((int)c);
      p++;
      continue;
    }
    if ((c & 0xe0) == 0xc0 && p + 1 < end && (p[1] & 0xc0) == 0x80) {
      unsigned cp = ((c & 0x1fu) << 6) | (p[1] & 0x3fu);
      char f = 0;
      if (cp >= 0xc0 && cp <= 0xff)
        f = fold_c0[cp - 0xc0];
      else if (cp >= 0x100 && cp <= 0x17f)
        f = fold_100[cp - 0x100];
      else if (cp >= 0x300 && cp <= 0x36f) {
        p += 2; /* a combining mark: dropped */
        continue;
      }
      if (f && f != '*') {
        const char *rep = f == 'A' ? "ae" : f == 'T' ? "th" : f == 'S' ? "ss" : f == 'J' ? "ij"
                        : f == 'O' ? "oe" : NULL;
        if (rep) {
          out[o++] = rep[0];
          out[o++] = rep[1];
        } else {
          out[o++] = f;
        }
        p += 2;
        continue;
      }
    }
    out[o++] = (char)*p++;
  }
  out[o] = 0;
  return out;
}

static bool all_digits(const char *s) {
  if (!*s)
    return false;
  for (; *s; s++)
    if (*s < '0' || *s > '9')
      return false;
  return true;
}

static int cmp_numeric(const char *a, const char *b) {
  while (*a == '0' && a[1])
    a++;
  while (*b == '0' && b[1])
    b++;
  size_t la = strlen(a), lb = strlen(b);
  if (la != lb)
    return la < lb ? -1 : 1;
  int r = memcmp(a, b, la);
  return (r > 0) - (r < 0);
}

static long long days_from_civil(long long y, unsigned m, unsigned d) {
  y -= m <= 2;
  long long era = (y >= 0 ? y : y - 399) / 400;
  unsigned yoe = (unsigned)(y - era * 400);
  unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + (long long)doe - 719468;
}

static int num(const char *s, int n) {
  int v = 0;
  for (int i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9')
      return -1;
    v = v * 10 + (s[i] - '0');
  }
  return v;
}

/* Parses a FHIR instant to UTC seconds and a 9-digit fraction. 0 or -1. */
static int parse_instant(const char *s, long long *secs, long *nanos) {
  size_t n = strlen(s);
  if (n < 20 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':')
    return -1;
  int y = num(s, 4), mo = num(s + 5, 2), d = num(s + 8, 2), h = num(s + 11, 2),
      mi = num(s + 14, 2), se = num(s + 17, 2);
  if (y < 0 || mo < 1 || mo > 12 || d < 1 || d > 31 || h < 0 || h > 24 || mi < 0 || mi > 59 ||
      se < 0 || se > 60)
    return -1;
  const char *p = s + 19;
  long frac = 0;
  int digits = 0;
  if (*p == '.') {
    p++;
    while (*p >= '0' && *p <= '9') {
      if (digits < 9) {
        frac = frac * 10 + (*p - '0');
        digits++;
      }
      p++;
    }
    if (digits == 0)
      return -1;
  }
  for (; digits < 9; digits++)
    frac *= 10;
  long long off = 0;
  if (*p == 'Z') {
    p++;
  } else if ((*p == '+' || *p == '-') && p[3] == ':') {
    int oh = num(p + 1, 2), om = num(p + 4, 2);
    if (oh < 0 || om < 0)
      return -1;
    off = (oh * 3600LL + om * 60LL) * (*p == '-' ? -1 : 1);
    p += 6;
  } else {
    return -1;
  }
  if (*p)
    return -1;
  *secs = days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400LL + h * 3600LL + mi * 60LL + se - off;
  *nanos = frac;
  return 0;
}

static int cmp_instant(const char *a, const char *b) {
  if (!a || !b)
    return (a != NULL) - (b != NULL);
  long long sa, sb;
  long na, nb;
  if (parse_instant(a, &sa, &na) == 0 && parse_instant(b, &sb, &nb) == 0) {
    if (sa != sb)
      return sa < sb ? -1 : 1;
    return (na > nb) - (na < nb);
  }
  int r = strcmp(a, b);
  return (r > 0) - (r < 0);
}

int hl_wh_version_cmp(const char *vid_a, const char *lu_a, const char *vid_b, const char *lu_b) {
  if (vid_a && !*vid_a)
    vid_a = NULL;
  if (vid_b && !*vid_b)
    vid_b = NULL;
  if (!vid_a || !vid_b) {
    if (vid_a != vid_b)
      return vid_a ? 1 : -1;
  } else {
    int r = all_digits(vid_a) && all_digits(vid_b) ? cmp_numeric(vid_a, vid_b) : strcmp(vid_a, vid_b);
    if (r)
      return r > 0 ? 1 : -1;
  }
  return cmp_instant(lu_a && *lu_a ? lu_a : NULL, lu_b && *lu_b ? lu_b : NULL);
}

/* ---- Contract ------------------------------------------------------------------ */

static const char *embedded(const char *name, size_t *len) {
  for (const hl__embedded *e = hl__wh_schema_files; e->name; e++) {
    if (!strcmp(e->name, name)) {
      if (len)
        *len = e->len;
      return e->data;
    }
  }
  return NULL;
}

static char *dup_or_null(json_t *o, const char *key) {
  const char *s = json_string_value(json_object_get(o, key));
  return s ? strdup(s) : NULL;
}

/* Contract paths are plain element names, [n], [*], '.', ' | ': nothing to escape in SQL. */
static bool path_ok(const char *p) {
  if (!p)
    return true;
  if (!strcmp(p, "$this"))
    return true;
  for (; *p; p++)
    if (!isalnum((unsigned char)*p) && !strchr("_.[]*| -", *p))
      return false;
  return true;
}

static int load_cols(json_t *arr, hl__wh_col *cols, size_t *n, char *err, size_t errlen) {
  size_t i;
  json_t *c;
  json_array_foreach(arr, i, c) {
    hl__wh_col *col = &cols[(*n)++];
    col->name = dup_or_null(c, "name");
    col->type = dup_or_null(c, "type");
    col->path = dup_or_null(c, "path");
    col->transform = dup_or_null(c, "transform");
    col->nullable = json_is_true(json_object_get(c, "nullable"));
    col->from_row = json_object_get(c, "from") != NULL;
    if (!col->name || !col->type || !path_ok(col->path)) {
      snprintf(err, errlen, "contract: bad column #%zu", i);
      return HL_WH_ESCHEMA;
    }
  }
  return 0;
}

void hl__wh_contract_free(hl__wh_contract *c) {
  if (!c)
    return;
  for (size_t i = 0; i < c->ntables; i++) {
    hl__wh_table *t = &c->tables[i];
    for (size_t k = 0; k < t->ncols; k++) {
      free(t->cols[k].name);
      free(t->cols[k].type);
      free(t->cols[k].path);
      free(t->cols[k].transform);
    }
    for (size_t k = 0; k < t->nparams; k++) {
      free(t->params[k].param);
      free(t->params[k].table);
      free(t->params[k].path);
      free(t->params[k].system);
      free(t->params[k].code);
    }
    free(t->cols);
    free(t->params);
    free(t->rtype);
    free(t->table);
  }
  for (size_t i = 0; i < c->nsides; i++) {
    for (size_t k = 0; k < c->sides[i].ncols; k++) {
      free(c->sides[i].cols[k].name);
      free(c->sides[i].cols[k].type);
      free(c->sides[i].cols[k].path);
      free(c->sides[i].cols[k].transform);
    }
    free(c->sides[i].cols);
    free(c->sides[i].table);
  }
  free(c->tables);
  free(c->sides);
  free(c->types_json);
  free(c);
}

int hl__wh_contract_load(hl__wh_contract **out, char *err, size_t errlen) {
  size_t len;
  const char *text = embedded("curated_contract.json", &len);
  if (!text) {
    snprintf(err, errlen, "contract: not embedded");
    return HL_WH_ESCHEMA;
  }
  json_error_t je;
  json_t *doc = json_loadb(text, len, 0, &je);
  if (!doc) {
    snprintf(err, errlen, "contract: %s (line %d)", je.text, je.line);
    return HL_WH_ESCHEMA;
  }
  int rc = -ENOMEM;
  hl__wh_contract *c = calloc(1, sizeof(*c));
  json_t *common = json_object_get(doc, "common_columns"), *tables = json_object_get(doc, "tables"),
         *sides = json_object_get(doc, "side_tables"), *params = json_object_get(doc, "search_params");
  if (!c)
    goto fail;
  rc = HL_WH_ESCHEMA;
  if (!json_is_array(common) || !json_is_array(tables) || !json_is_array(sides) ||
      !json_is_array(params) || !json_is_object(json_object_get(doc, "types"))) {
    snprintf(err, errlen, "contract: missing sections");
    goto fail;
  }
  rc = -ENOMEM;
  c->types_json = json_dumps(json_object_get(doc, "types"), JSON_COMPACT);
  c->tables = calloc(json_array_size(tables) + 1, sizeof(*c->tables));
  c->sides = calloc(json_array_size(sides) + 1, sizeof(*c->sides));
  if (!c->types_json || !c->tables || !c->sides)
    goto fail;
  size_t i;
  json_t *t;
  json_array_foreach(tables, i, t) {
    hl__wh_table *tb = &c->tables[c->ntables++];
    json_t *cols = json_object_get(t, "columns");
    tb->rtype = dup_or_null(t, "resourceType");
    tb->table = dup_or_null(t, "table");
    tb->cols = calloc(json_array_size(common) + json_array_size(cols) + 1, sizeof(*tb->cols));
    tb->params = calloc(json_array_size(params) + 1, sizeof(*tb->params));
    if (!tb->cols || !tb->params)
      goto fail;
    rc = HL_WH_ESCHEMA;
    if (!tb->rtype || !tb->table || !json_is_array(cols)) {
      snprintf(err, errlen, "contract: bad table #%zu", i);
      goto fail;
    }
    if ((rc = load_cols(common, tb->cols, &tb->ncols, err, errlen)) < 0 ||
        (rc = load_cols(cols, tb->cols, &tb->ncols, err, errlen)) < 0)
      goto fail;
    size_t k;
    json_t *p;
    json_array_foreach(params, k, p) {
      const char *rt = json_string_value(json_object_get(p, "resourceType"));
      if (!rt || strcmp(rt, tb->rtype))
        continue;
      hl__wh_param *pa = &tb->params[tb->nparams++];
      pa->param = dup_or_null(p, "param");
      pa->table = dup_or_null(p, "table");
      pa->path = dup_or_null(p, "path");
      pa->system = dup_or_null(p, "system");
      pa->code = dup_or_null(p, "code");
      if (!pa->param || !pa->table || !pa->path || !path_ok(pa->path) || !path_ok(pa->system) ||
          !path_ok(pa->code) || strchr(pa->param, '\'')) {
        snprintf(err, errlen, "contract: bad search parameter #%zu", k);
        rc = HL_WH_ESCHEMA;
        goto fail;
      }
    }
    rc = -ENOMEM;
  }
  json_array_foreach(sides, i, t) {
    hl__wh_side *sd = &c->sides[c->nsides++];
    json_t *cols = json_object_get(t, "columns");
    sd->table = dup_or_null(t, "table");
    sd->cols = calloc(json_array_size(cols) + 1, sizeof(*sd->cols));
    if (!sd->cols)
      goto fail;
    rc = HL_WH_ESCHEMA;
    if (!sd->table || (rc = load_cols(cols, sd->cols, &sd->ncols, err, errlen)) < 0)
      goto fail;
    rc = -ENOMEM;
  }
  json_decref(doc);
  *out = c;
  return 0;
fail:
  if (rc == -ENOMEM)
    snprintf(err, errlen, "contract: out of memory");
  json_decref(doc);
  hl__wh_contract_free(c);
  return rc;
}

const char *hl__wh_contract_sql_type(const hl__wh_contract *c, const char *logical,
                                     const char *backend) {
  /* types_json is small; find "<logical>":{"<backend>":"<TYPE>" by parsing once per call. */
  static __thread char buf[64];
  json_t *types = json_loads(c->types_json, 0, NULL);
  const char *s = json_string_value(json_object_get(json_object_get(types, logical), backend));
  const char *r = NULL;
  if (s && strlen(s) < sizeof(buf)) {
    strcpy(buf, s);
    r = buf;
  }
  json_decref(types);
  return r;
}

const char *hl_wh_curated_table(const char *type) {
  static const char *const map[][2] = {
      {"Patient", "curated_patient"},
      {"Encounter", "curated_encounter"},
      {"Observation", "curated_observation"},
      {"Condition", "curated_condition"},
      {"MedicationRequest", "curated_medication_request"},
      {"Procedure", "curated_procedure"},
      {"Immunization", "curated_immunization"},
      {"Organization", "curated_organization"},
      {"Practitioner", "curated_practitioner"},
  };
  for (size_t i = 0; type && i < sizeof(map) / sizeof(map[0]); i++)
    if (!strcmp(map[i][0], type))
      return map[i][1];
  return NULL;
}

/*
 * FNV-1a over each field and a separator byte, then a final mix
 * (MurmurHash3's fmix64) so that every input bit reaches the hex digits.
 */
static uint64_t term_field(uint64_t h, const char *s) {
  for (const unsigned char *p = (const unsigned char *)s; *p; p++)
    h = (h ^ *p) * 0x100000001b3ULL;
  return (h ^ 0x1f) * 0x100000001b3ULL;
}

static uint64_t term_mix(uint64_t h) {
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdULL;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ULL;
  return h ^ (h >> 33);
}

static void term_hex(uint64_t h, int digits, char *out) {
  static const char hex[] = "0123456789abcdef";
  for (int i = 0; i < digits; i++)
    out[i] = hex[(h >> (4 * (digits - 1 - i))) & 0xf];
}

void hl_wh_token_term(const char *tenant, const char *type, const char *param, const char *system,
                      const char *code, char out[HL_WH_TERM_LEN + 1]) {
  uint64_t h = 0xcbf29ce484222325ULL;
  h = term_field(h, tenant ? tenant : "");
  h = term_field(h, type ? type : "");
  h = term_field(h, param ? param : "");
  h = term_field(h, code ? code : "");
  out[0] = 'k';
  term_hex(term_mix(h), 16, out + 1);
  if (!system) {
    out[HL_WH_TERM_PREFIX_LEN] = 0;
    return;
  }
  term_hex(term_mix(term_field(0xcbf29ce484222325ULL, system)), 8, out + HL_WH_TERM_PREFIX_LEN);
  out[HL_WH_TERM_LEN] = 0;
}

/* ---- Job-status events ---------------------------------------------------------- */

static bool org_ok(const char *s) {
  size_t n = strlen(s);
  if (n < 1 || n > 64)
    return false;
  for (; *s; s++)
    if (!isalnum((unsigned char)*s) && !strchr("._-", *s))
      return false;
  return true;
}

static int copy_str(json_t *o, const char *key, char *dst, size_t cap, bool required) {
  json_t *v = json_object_get(o, key);
  if (!v)
    return required ? -1 : 0;
  const char *s = json_string_value(v);
  if (!s || strlen(s) >= cap || (required && !*s))
    return -1;
  strcpy(dst, s);
  return 1;
}

static int count_of(json_t *o, const char *key, long long *out) {
  json_t *v = json_object_get(o, key);
  *out = -1;
  if (!v)
    return 0;
  if (!json_is_integer(v) || json_integer_value(v) < 0)
    return -1;
  *out = (long long)json_integer_value(v);
  return 0;
}

int hl__wh_event_parse(const char *json, size_t len, hl__wh_event *ev) {
  static const char *const allowed[] = {"job", "org", "uri", "stage", "state", "received",
                                        "emitted", "rejected", "lines", "bytes", "time",
                                        "code", "detail", "event_id"};
  json_t *o = json_loadb(json, len, 0, NULL);
  int rc = HL_EPARSE;
  char stage[16], time[64];
  long long tmp;
  memset(ev, 0, sizeof(*ev));
  if (!json_is_object(o))
    goto out;
  const char *k;
  json_t *v;
  json_object_foreach(o, k, v) {
    bool ok = false;
    for (size_t i = 0; i < sizeof(allowed) / sizeof(allowed[0]); i++)
      ok |= !strcmp(k, allowed[i]);
    if (!ok)
      goto out;
  }
  if (copy_str(o, "job", ev->job, sizeof(ev->job), true) < 0 ||
      copy_str(o, "org", ev->org, sizeof(ev->org), true) < 0 || !org_ok(ev->org) ||
      !json_is_string(json_object_get(o, "uri")) ||
      copy_str(o, "uri", ev->uri, sizeof(ev->uri), false) < 0 ||
      copy_str(o, "stage", stage, sizeof(stage), true) < 0 ||
      copy_str(o, "state", ev->state, sizeof(ev->state), true) < 0 ||
      copy_str(o, "time", time, sizeof(time), true) < 0 ||
      copy_str(o, "code", ev->code, sizeof(ev->code), false) < 0 ||
      copy_str(o, "detail", ev->detail, sizeof(ev->detail), false) < 0)
    goto out;
  int has_id = copy_str(o, "event_id", ev->event_id, sizeof(ev->event_id), false);
  if (has_id < 0)
    goto out;
  ev->has_event_id = has_id > 0;
  if (count_of(o, "received", &ev->received) < 0 || count_of(o, "emitted", &ev->emitted) < 0 ||
      count_of(o, "rejected", &ev->rejected) < 0 || count_of(o, "lines", &tmp) < 0 ||
      count_of(o, "bytes", &tmp) < 0)
    goto out;
  long long secs;
  long nanos;
  if (parse_instant(time, &secs, &nanos) < 0)
    goto out;
  const char *st = ev->state;
  if (!strcmp(stage, "accept") && !strcmp(st, "accepted"))
    ev->stage = HL__WH_ACCEPT;
  else if (!strcmp(stage, "parse") && (!strcmp(st, "parsed") || !strcmp(st, "failed")))
    ev->stage = HL__WH_PARSE;
  else if (!strcmp(stage, "validate") && (!strcmp(st, "validated") || !strcmp(st, "failed")))
    ev->stage = HL__WH_VALIDATE;
  else if (!strcmp(stage, "load") && (!strcmp(st, "loaded") || !strcmp(st, "failed")))
    ev->stage = HL__WH_LOAD;
  else
    goto out;
  ev->failed = !strcmp(st, "failed");
  /* Delta events need an identity so that a replay is folded once. */
  if (!ev->has_event_id) {
    char hex[65];
    hl__wh_sha256_hex(json, len, hex);
    snprintf(ev->event_id, sizeof(ev->event_id), "sha256:%s", hex);
  }
  rc = 0;
out:
  json_decref(o);
  return rc;
}

/* ---- Batches -------------------------------------------------------------------- */

int hl_wh_row_set_key(hl_wh_row *row, const char *key, size_t key_len) {
  const char *end = key + key_len, *a = memchr(key, '/', key_len);
  if (!a || a == key)
    return HL_EPARSE;
  const char *b = memchr(a + 1, '/', (size_t)(end - a - 1));
  if (!b || b == a + 1 || b + 1 >= end || memchr(b + 1, '/', (size_t)(end - b - 1)))
    return HL_EPARSE;
  row->tenant = key;
  row->tenant_len = (size_t)(a - key);
  row->type = a + 1;
  row->type_len = (size_t)(b - a - 1);
  row->id = b + 1;
  row->id_len = (size_t)(end - b - 1);
  return 0;
}

int hl_wh_batch_new(size_t max_rows, size_t max_bytes, hl_wh_batch **out) {
  hl_wh_batch *b = calloc(1, sizeof(*b));
  if (!b)
    return -ENOMEM;
  b->max_rows = max_rows ? max_rows : DEFAULT_MAX_ROWS;
  b->tape_row = SIZE_MAX;
  hl_buf_init(&b->arena, max_bytes ? max_bytes : DEFAULT_MAX_BYTES);
  b->md = EVP_MD_CTX_new();
  /* Fetched once: EVP_sha256() in EVP_DigestInit_ex looks the algorithm up at every call. */
  b->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
  if (!b->md || !b->sha256) {
    EVP_MD_CTX_free(b->md);
    EVP_MD_free(b->sha256);
    free(b);
    return -ENOMEM;
  }
  *out = b;
  return 0;
}

int hl_wh_batch_use(hl_wh_batch *b, const hl_wh *wh) {
  /* Values kept for another backend are its own layout: dropped (rows of another store are not used). */
  if (b->prep && b->prep_be != wh->be) {
    b->prep_be->prep_free(b->prep);
    b->prep = NULL;
  }
  b->prep_be = wh->be->prep_row ? wh->be : NULL;
  b->prep_state = wh->state;
  return 0;
}

hl_wh_batch *hl_wh_batch_free(hl_wh_batch *b) {
  if (!b)
    return NULL;
  if (b->prep)
    b->prep_be->prep_free(b->prep);
  hl_buf_free(&b->arena);
  free(b->tape.nodes);
  EVP_MD_CTX_free(b->md);
  EVP_MD_free(b->sha256);
  free(b->recs);
  free(b->events);
  free(b->event_lens);
  free(b->counts);
  free(b);
  return NULL;
}

void hl_wh_batch_reset(hl_wh_batch *b) {
  hl_buf_reset(&b->arena);
  if (b->prep)
    b->prep_be->prep_reset(b->prep);
  b->n = 0;
  b->nevents = 0;
  b->ncounts = 0;
  b->batch_id = 0;
  b->events_folded = b->events_skipped = 0;
}

size_t hl_wh_batch_len(const hl_wh_batch *b) {
  return b->n;
}

/* Appends s[0..n) and a NUL to the arena; *off receives its offset. */
static int put(hl_wh_batch *b, const char *s, size_t n, size_t *off) {
  if (!s) {
    *off = HL__WH_NONE;
    return 0;
  }
  size_t at = b->arena.len;
  int rc = hl_buf_append(&b->arena, s, n);
  if (rc == 0 && (rc = hl_buf_putc(&b->arena, 0)) < 0)
    b->arena.len = at;
  if (rc == 0)
    *off = at;
  return rc;
}

static void reject(hl_wh_batch *b, hl__wh_rec *r, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void reject(hl_wh_batch *b, hl__wh_rec *r, const char *code, const char *fmt, ...) {
  char detail[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(detail, sizeof(detail), fmt, ap);
  va_end(ap);
  r->status = HL_WH_ROW_REJECTED;
  r->rejected_at_add = true;
  r->code = code;
  if (put(b, detail, strlen(detail), &r->detail) < 0)
    r->detail = HL__WH_NONE;
}

typedef struct meta_find {
  const char *val;
  size_t len;
  const char *want;
  size_t wlen;
} meta_find;

static int find_member(void *ud, const char *key, size_t klen, const char *val, size_t vlen) {
  meta_find *m = ud;
  if (klen == m->wlen && !memcmp(key, m->want, klen)) {
    m->val = val;
    m->len = vlen;
    return -1; /* stop */
  }
  return 0;
}

/* The string value of member want of object s[0..n) (between the quotes), or absent. */
static int member_string(const char *s, size_t n, const char *want, const char **val, size_t *len) {
  meta_find m = {NULL, 0, want, strlen(want)};
  hl_jscan_members(s, n, find_member, &m);
  if (!m.val)
    return 0;
  if (m.len < 2 || m.val[0] != '"')
    return -1;
  *val = m.val + 1;
  *len = m.len - 2;
  return 1;
}

/* Two optional strings are equal (both absent, or both present with the same bytes). */
static bool same(const char *a, const char *b) {
  return a == b || (a && b && !strcmp(a, b));
}

static void hash_field(EVP_MD_CTX *md, const char *s) {
  /* Each field is length-prefixed so that no two field lists hash alike. */
  uint64_t n = s ? strlen(s) : UINT64_MAX;
  EVP_DigestUpdate(md, &n, sizeof(n));
  if (s)
    EVP_DigestUpdate(md, s, strlen(s));
}

/*
 * Checks a resource with hl_jscan_build_tape() into b->tape: a tape too
 * small for it grows (up to MAX_TAPE nodes) and the resource is scanned
 * again; past that, or without memory, it has no tape (tape.n > tape.cap).
 */
static int scan_resource(hl_wh_batch *b, const char *json, size_t len, hl_jscan_field *f,
                         size_t nf, hl_jscan_result *res) {
  hl_jscan_tape *t = &b->tape;
  int rc = hl_jscan_build_tape(json, len, 0, f, nf, t, res);
  if (rc < 0 || t->n <= t->cap || t->n > MAX_TAPE)
    return rc;
  size_t cap = t->cap ? t->cap : 1024;
  while (cap < t->n)
    cap *= 2;
  hl_jscan_node *nodes = realloc(t->nodes, cap * sizeof(*nodes));
  if (!nodes)
    return rc;
  t->nodes = nodes;
  t->cap = cap;
  return hl_jscan_build_tape(json, len, 0, f, nf, t, res);
}

/* The value of the first member named want of the top-level object (on the tape, else walked). */
static void top_member(const hl_wh_batch *b, const char *json, size_t len, meta_find *m) {
  const hl_jscan_tape *t = &b->tape;
  if (t->n > t->cap) {
    hl_jscan_members(json, len, find_member, m);
    return;
  }
  for (size_t k = 1; k < t->n; k = t->nodes[k].next) {
    const hl_jscan_node *nd = &t->nodes[k];
    if (nd->klen == m->wlen && !memcmp(json + nd->key, m->want, m->wlen)) {
      m->val = json + nd->start;
      m->len = nd->end - nd->start;
      return;
    }
  }
}

int hl_wh_batch_add(hl_wh_batch *b, const hl_wh_row *row) {
  if (b->n >= b->max_rows)
    return HL_ELIMIT;
  if (b->n == b->cap) {
    size_t cap = b->cap ? b->cap * 2 : 256;
    hl__wh_rec *r = realloc(b->recs, cap * sizeof(*r));
    if (!r)
      return -ENOMEM;
    b->recs = r;
    b->cap = cap;
  }
  size_t mark = b->arena.len;
  b->tape_row = SIZE_MAX;
  hl__wh_rec *r = &b->recs[b->n];
  memset(r, 0, sizeof(*r));
  r->detail = r->version_id = r->last_updated = HL__WH_NONE;
  r->line = row->line;
  r->partition = row->topic ? row->partition : -1;
  r->offset = row->topic ? row->offset : -1;
  size_t tl = slen(row->tenant, row->tenant_len), yl = slen(row->type, row->type_len),
         il = slen(row->id, row->id_len), jl = slen(row->json, row->json_len);
  int rc;
  if ((rc = put(b, row->tenant, tl, &r->tenant)) < 0 || (rc = put(b, row->type, yl, &r->type)) < 0 ||
      (rc = put(b, row->id, il, &r->id)) < 0 ||
      (rc = put(b, row->job, slen(row->job, row->job_len), &r->job)) < 0 ||
      (rc = put(b, row->source, slen(row->source, row->source_len), &r->source)) < 0 ||
      (rc = put(b, row->ingested_at, slen(row->ingested_at, row->ingested_at_len), &r->ingested_at)) < 0 ||
      (rc = put(b, row->topic, slen(row->topic, row->topic_len), &r->topic)) < 0)
    goto undo;
  if (!row->tenant || !tl || !row->type || !yl || !row->id || !il || !row->json || !jl) {
    reject(b, r, "missing-field", "tenant, type, id and resource are required");
    goto done;
  }
  if (tl > MAX_FIELD || yl > 64 || il > 64 || jl > MAX_RESOURCE) {
    reject(b, r, "too-large", "a key field or the resource exceeds its limit");
    goto done;
  }
  hl_jscan_field f[2] = {{.key = "resourceType"}, {.key = "id"}};
  hl_jscan_result res;
  if (scan_resource(b, row->json, jl, f, 2, &res) < 0) {
    reject(b, r, "json", "invalid JSON at byte %zu: %s", res.offset, res.message);
    goto done;
  }
  if (res.top != HL_JSCAN_OBJECT || f[0].kind != HL_JSCAN_STRING || f[1].kind != HL_JSCAN_STRING) {
    reject(b, r, "missing-field", "the resource needs string resourceType and id");
    goto done;
  }
  if (f[0].len != yl || memcmp(f[0].val, row->type, yl) || f[1].len != il ||
      memcmp(f[1].val, row->id, il)) {
    reject(b, r, "key-mismatch", "resourceType/id of the resource are not those of the key");
    goto done;
  }
  const char *meta;
  size_t meta_len;
  meta_find m = {NULL, 0, "meta", 4};
  top_member(b, row->json, jl, &m);
  meta = m.val;
  meta_len = m.len;
  if (meta && meta_len && meta[0] == '{') {
    const char *v;
    size_t vl;
    int k = member_string(meta, meta_len, "versionId", &v, &vl);
    if (k > 0)
      rc = put(b, v, vl, &r->version_id);
    if (k >= 0 && rc == 0 && (k = member_string(meta, meta_len, "lastUpdated", &v, &vl)) > 0)
      rc = put(b, v, vl, &r->last_updated);
    if (rc < 0)
      goto undo;
    if (k < 0) {
      reject(b, r, "json", "meta.versionId and meta.lastUpdated must be strings");
      goto done;
    }
  }
  if ((rc = put(b, row->json, jl, &r->json)) < 0)
    goto undo;
  r->json_len = jl;
done:;
  /*
   * The idempotency key identifies the input record: 8 bytes of SHA-256 over
   * (tenant, job, source), the line as 8 big-endian bytes, then 16 bytes of
   * SHA-256 over (type, id, resource bytes). Rows of one object sort
   * together in line order, so the unique index grows at a few points
   * instead of at random ones.
   */
  EVP_MD_CTX *md = b->md;
  unsigned char d[32];
  unsigned int mdlen = 0;
  const char *tenant = hl__wh_str(b, r->tenant), *job = hl__wh_str(b, r->job),
             *source = hl__wh_str(b, r->source);
  const hl__wh_rec *p = b->n ? &b->recs[b->n - 1] : NULL;
  if (p && same(tenant, hl__wh_str(b, p->tenant)) && same(job, hl__wh_str(b, p->job)) &&
      same(source, hl__wh_str(b, p->source))) {
    memcpy(r->key, p->key, 8); /* the rows of an object follow each other */
  } else {
    EVP_DigestInit_ex(md, b->sha256, NULL);
    hash_field(md, tenant);
    hash_field(md, job);
    hash_field(md, source);
    EVP_DigestFinal_ex(md, d, &mdlen);
    memcpy(r->key, d, 8);
  }
  uint64_t ln = (uint64_t)r->line;
  for (int k = 0; k < 8; k++)
    r->key[8 + k] = (unsigned char)(ln >> (56 - 8 * k));
  EVP_DigestInit_ex(md, b->sha256, NULL);
  hash_field(md, hl__wh_str(b, r->type));
  hash_field(md, hl__wh_str(b, r->id));
  uint64_t n = row->json ? jl : 0;
  EVP_DigestUpdate(md, &n, sizeof(n));
  if (row->json)
    EVP_DigestUpdate(md, row->json, jl);
  EVP_DigestFinal_ex(md, d, &mdlen);
  memcpy(r->key + 16, d, 16);
  if (b->prep_be && r->status != HL_WH_ROW_REJECTED) {
    if (b->tape.n <= b->tape.cap)
      b->tape_row = b->n;
    (void)b->prep_be->prep_row(b->prep_state, b, b->n); /* on failure the commit extracts the row */
  }
  return (int)b->n++;
undo:
  b->arena.len = mark;
  if (b->arena.data)
    b->arena.data[mark] = 0;
  return rc;
}

int hl_wh_batch_add_event(hl_wh_batch *b, const char *json, size_t len) {
  if (b->nevents == b->events_cap) {
    size_t cap = b->events_cap ? b->events_cap * 2 : 16;
    size_t *e = realloc(b->events, cap * sizeof(*e));
    if (!e)
      return -ENOMEM;
    b->events = e;
    size_t *l = realloc(b->event_lens, cap * sizeof(*l));
    if (!l)
      return -ENOMEM;
    b->event_lens = l;
    b->events_cap = cap;
  }
  size_t off = 0;
  int rc = put(b, json, len, &off);
  if (rc < 0)
    return rc;
  b->events[b->nevents] = off;
  b->event_lens[b->nevents++] = len;
  return 0;
}

hl_wh_row_status hl_wh_batch_status(const hl_wh_batch *b, size_t i, const char **code,
                                    const char **detail) {
  if (i >= b->n)
    return HL_WH_ROW_PENDING;
  const hl__wh_rec *r = &b->recs[i];
  if (code)
    *code = r->code;
  if (detail)
    *detail = hl__wh_str(b, r->detail);
  return r->status;
}

/* ---- Commit --------------------------------------------------------------------- */

static int strcmp0(const char *a, const char *b) {
  return strcmp(a ? a : "", b ? b : "");
}

static int cmp_recs(const hl_wh_batch *b, const hl__wh_rec *x, const hl__wh_rec *y) {
  int r = strcmp0(hl__wh_str(b, x->tenant), hl__wh_str(b, y->tenant));
  if (!r)
    r = strcmp0(hl__wh_str(b, x->job), hl__wh_str(b, y->job));
  if (!r)
    r = strcmp0(hl__wh_str(b, x->type), hl__wh_str(b, y->type));
  return r;
}

static int cmp_group(const void *x, const void *y, void *ud) {
  const hl_wh_batch *b = ud;
  return cmp_recs(b, &b->recs[*(const size_t *)x], &b->recs[*(const size_t *)y]);
}

/* Groups the committed rows by (tenant, job, type) into b->counts and fills res. */
static int build_result(hl_wh_batch *b, hl_wh_result *res) {
  size_t *idx = malloc((b->n + 1) * sizeof(*idx));
  hl_wh_count *counts = calloc(b->n + 1, sizeof(*counts));
  if (!idx || !counts) {
    free(idx);
    free(counts);
    return -ENOMEM;
  }
  for (size_t i = 0; i < b->n; i++)
    idx[i] = i;
  qsort_r(idx, b->n, sizeof(*idx), cmp_group, b);
  memset(res, 0, sizeof(*res));
  size_t nc = 0;
  for (size_t k = 0; k < b->n; k++) {
    const hl__wh_rec *r = &b->recs[idx[k]];
    if (nc == 0 || cmp_recs(b, &b->recs[idx[k - 1]], r)) {
      hl_wh_count *c = &counts[nc++];
      c->tenant = hl__wh_str(b, r->tenant) ? hl__wh_str(b, r->tenant) : "";
      c->job = hl__wh_str(b, r->job) ? hl__wh_str(b, r->job) : "";
      c->type = hl__wh_str(b, r->type) ? hl__wh_str(b, r->type) : "";
    }
    hl_wh_count *c = &counts[nc - 1];
    c->rows++;
    res->rows++;
    switch (r->status) {
    case HL_WH_ROW_APPLIED: c->applied++; res->applied++; break;
    case HL_WH_ROW_STALE: c->stale++; res->stale++; break;
    case HL_WH_ROW_RAW_ONLY: c->raw_only++; res->raw_only++; break;
    case HL_WH_ROW_DUPLICATE: c->duplicate++; res->duplicate++; break;
    case HL_WH_ROW_REJECTED: c->rejected++; res->rejected++; break;
    case HL_WH_ROW_PENDING: break;
    }
  }
  free(idx);
  free(b->counts);
  b->counts = counts;
  b->ncounts = nc;
  res->counts = counts;
  res->ncounts = nc;
  res->batch_id = b->batch_id;
  res->events = b->events_folded;
  res->events_skipped = b->events_skipped;
  return 0;
}

int hl_wh_batch_commit(hl_wh *wh, hl_wh_batch *b, hl_wh_result *res) {
  for (size_t i = 0; i < b->n; i++) {
    hl__wh_rec *r = &b->recs[i];
    if (!r->rejected_at_add) {
      r->status = HL_WH_ROW_PENDING;
      r->code = NULL;
    }
  }
  b->events_folded = b->events_skipped = 0;
  int rc = wh->be->commit(wh->state, b);
  if (rc < 0) {
    for (size_t i = 0; i < b->n; i++)
      if (!b->recs[i].rejected_at_add)
        b->recs[i].status = HL_WH_ROW_PENDING;
    return rc;
  }
  wh->stats.commits++;
  hl_wh_result tmp;
  rc = build_result(b, res ? res : &tmp);
  return rc;
}

int hl_wh_job_event(hl_wh *wh, const char *json, size_t len) {
  hl__wh_event ev;
  if (hl__wh_event_parse(json, len, &ev) < 0)
    return HL_EPARSE;
  hl_wh_batch *b;
  int rc = hl_wh_batch_new(1, len + 64, &b);
  if (rc < 0)
    return rc;
  if ((rc = hl_wh_batch_add_event(b, json, len)) == 0)
    rc = hl_wh_batch_commit(wh, b, NULL);
  hl_wh_batch_free(b);
  return rc;
}

/* ---- Open, reads ---------------------------------------------------------------- */

int hl_wh_new(const hl_wh_opts *opts, hl_wh **out, char *err, size_t errlen) {
  char dummy[8];
  if (!err) {
    err = dummy;
    errlen = sizeof(dummy);
  }
  if (errlen)
    err[0] = 0;
  if (!opts || !out) {
    snprintf(err, errlen, "no options");
    return -EINVAL;
  }
  const char *name = opts->backend ? opts->backend : "sqlite";
  const hl__wh_backend *be = NULL;
  if (!strcmp(name, hl__wh_sqlite.name))
    be = &hl__wh_sqlite;
  else if (!strcmp(name, hl__wh_snowflake.name))
    be = &hl__wh_snowflake;
  if (!be) {
    snprintf(err, errlen, "unknown warehouse backend '%s'", name);
    return -EINVAL;
  }
  hl_wh *wh = calloc(1, sizeof(*wh));
  if (!wh)
    return -ENOMEM;
  wh->be = be;
  int rc = hl__wh_contract_load(&wh->contract, err, errlen);
  if (rc == 0)
    rc = be->open(opts, wh->contract, &wh->stats, &wh->state, err, errlen);
  if (rc < 0) {
    hl__wh_contract_free(wh->contract);
    free(wh);
    return rc;
  }
  *out = wh;
  return 0;
}

hl_wh *hl_wh_free(hl_wh *wh) {
  if (!wh)
    return NULL;
  if (wh->state)
    wh->be->close(wh->state);
  hl__wh_contract_free(wh->contract);
  free(wh);
  return NULL;
}

int hl_wh_job_get(hl_wh *wh, const char *tenant, const char *job, const char *uri, hl_wh_job *out) {
  if (!tenant || !job)
    return -EINVAL;
  return wh->be->job_get(wh->state, tenant, job, uri ? uri : "", out);
}

int hl_wh_get(hl_wh *wh, const char *tenant, const char *type, const char *id, char **json,
              size_t *len, char *version, size_t version_len) {
  const char *table = hl_wh_curated_table(type);
  if (!table || !tenant || !id || !json)
    return -EINVAL;
  return wh->be->get(wh->state, table, tenant, id, json, len, version, version_len);
}

static bool ident_ok(const char *t) {
  if (!t || !*t || strlen(t) > 64)
    return false;
  for (; *t; t++)
    if (!islower((unsigned char)*t) && *t != '_' && !isdigit((unsigned char)*t))
      return false;
  return true;
}

int hl_wh_checksum(hl_wh *wh, const char *table, char hex[65]) {
  if (!ident_ok(table))
    return -EINVAL;
  return wh->be->checksum(wh->state, table, hex);
}

int hl_wh_count_rows(hl_wh *wh, const char *table, int64_t *n) {
  if (!ident_ok(table))
    return -EINVAL;
  return wh->be->count_rows(wh->state, table, n);
}

void hl_wh_get_stats(const hl_wh *wh, hl_wh_stats *out) {
  *out = wh->stats;
  /* Counted by the sqlite backend's checkpointer thread too. */
  out->checkpoints = __atomic_load_n(&wh->stats.checkpoints, __ATOMIC_RELAXED);
}
