#include "split.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "hl/buf.h"
#include "hl/error.h"
#include "hl/jscan.h"

#define DEFAULT_MAX_LINE (4u << 20)
#define DEFAULT_MAX_DOC (64u << 20)
#define INFLATE_CHUNK (64u << 10)
#define MAX_REF_LEN 4096

struct hl_split {
  hl_split_opts opts;
  hl_split_cbs cbs;
  void *ud;
  hl_split_stats stats;
  hl_buf line;          /* NDJSON: the current partial line; JSON: the document */
  bool skipping;        /* dropping the rest of an over-long line / document */
  uint64_t lineno;      /* number of the line being assembled (1-based) */
  /* gzip */
  z_stream zs;
  bool z_init;
  bool z_in_member;     /* inside a gzip member (bytes consumed, no end yet) */
  int z_resync;         /* 0: inflating; >0: hunting for a member header, bytes matched + 1 */
  unsigned char *zout;
  char detail[512];
};

static const char *const bundle_types[] = {"collection", "transaction", "batch", "searchset",
                                           "history", NULL};

int hl_split_opts_for_name(const char *name, hl_split_opts *opts) {
  memset(opts, 0, sizeof *opts);
  size_t n = strlen(name);
  if (n > 3 && strcmp(name + n - 3, ".gz") == 0) {
    opts->gzip = true;
    n -= 3;
  }
#define ENDS(s) (n >= sizeof(s) - 1 && strncmp(name + n - (sizeof(s) - 1), s, sizeof(s) - 1) == 0)
  if (ENDS(".ndjson") || ENDS(".jsonl"))
    opts->format = HL_SPLIT_NDJSON;
  else if (ENDS(".json"))
    opts->format = HL_SPLIT_JSON;
  else
    return -1;
#undef ENDS
  return 0;
}

int hl_split_new(const hl_split_opts *opts, const hl_split_cbs *cbs, void *ud, hl_split **out) {
  hl_split *sp = calloc(1, sizeof *sp);
  if (!sp)
    return -ENOMEM;
  if (opts)
    sp->opts = *opts;
  if (!sp->opts.max_line_bytes)
    sp->opts.max_line_bytes = DEFAULT_MAX_LINE;
  if (!sp->opts.max_document_bytes)
    sp->opts.max_document_bytes = DEFAULT_MAX_DOC;
  sp->cbs = *cbs;
  sp->ud = ud;
  sp->lineno = 1;
  hl_buf_init(&sp->line, sp->opts.format == HL_SPLIT_JSON ? sp->opts.max_document_bytes
                                                          : sp->opts.max_line_bytes);
  if (sp->opts.gzip) {
    sp->zout = malloc(INFLATE_CHUNK);
    if (!sp->zout || inflateInit2(&sp->zs, 16 + MAX_WBITS) != Z_OK) {
      free(sp->zout);
      free(sp);
      return -ENOMEM;
    }
    sp->z_init = true;
  }
  *out = sp;
  return 0;
}

hl_split *hl_split_free(hl_split *sp) {
  if (!sp)
    return NULL;
  if (sp->z_init)
    inflateEnd(&sp->zs);
  free(sp->zout);
  hl_buf_free(&sp->line);
  free(sp);
  return NULL;
}

const hl_split_stats *hl_split_get_stats(const hl_split *sp) { return &sp->stats; }

static int reject(hl_split *sp, const char *code, uint64_t line, long entry, const char *raw,
                  size_t len) {
  hl_split_reject r = {code, sp->detail, line, entry, raw, len};
  sp->stats.rejects++;
  return sp->cbs.reject ? sp->cbs.reject(sp->ud, &r) : 0;
}

/* Byte classes of ids and resource types: 1 a letter, 2 a digit, '-' or '.'. */
static const unsigned char id_class[256] = {
    ['-'] = 2, ['.'] = 2,
    ['0'] = 2, ['1'] = 2, ['2'] = 2, ['3'] = 2, ['4'] = 2,
    ['5'] = 2, ['6'] = 2, ['7'] = 2, ['8'] = 2, ['9'] = 2,
    ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1, ['G'] = 1,
    ['H'] = 1, ['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1, ['M'] = 1, ['N'] = 1,
    ['O'] = 1, ['P'] = 1, ['Q'] = 1, ['R'] = 1, ['S'] = 1, ['T'] = 1, ['U'] = 1,
    ['V'] = 1, ['W'] = 1, ['X'] = 1, ['Y'] = 1, ['Z'] = 1,
    ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1, ['g'] = 1,
    ['h'] = 1, ['i'] = 1, ['j'] = 1, ['k'] = 1, ['l'] = 1, ['m'] = 1, ['n'] = 1,
    ['o'] = 1, ['p'] = 1, ['q'] = 1, ['r'] = 1, ['s'] = 1, ['t'] = 1, ['u'] = 1,
    ['v'] = 1, ['w'] = 1, ['x'] = 1, ['y'] = 1, ['z'] = 1,
};

/* A FHIR id: [A-Za-z0-9-.]{1,64}. */
static bool valid_id(const char *s, size_t n) {
  if (n < 1 || n > 64)
    return false;
  unsigned char bad = 0;
  for (size_t i = 0; i < n; i++)
    bad |= id_class[(unsigned char)s[i]] == 0;
  return !bad;
}

/* A resource type: an upper-case letter then letters, 2 to 64 bytes. */
static bool valid_type(const char *s, size_t n) {
  if (n < 2 || n > 64 || s[0] < 'A' || s[0] > 'Z')
    return false;
  unsigned char bad = 0;
  for (size_t i = 1; i < n; i++)
    bad |= id_class[(unsigned char)s[i]] != 1;
  return !bad;
}

static const char *kind_name(hl_jscan_kind k) {
  switch (k) {
  case HL_JSCAN_ARRAY: return "an array";
  case HL_JSCAN_STRING: return "a string";
  case HL_JSCAN_NUMBER: return "a number";
  case HL_JSCAN_TRUE:
  case HL_JSCAN_FALSE: return "a boolean";
  case HL_JSCAN_NULL: return "null";
  default: return "an object";
  }
}

/* ---- Bundles ---- */

typedef struct bentry {
  const char *raw;      /* the whole entry */
  size_t rawlen;
  const char *res;      /* the resource value, or NULL */
  size_t reslen;
  const char *full;     /* fullUrl (escaped bytes) or NULL */
  size_t fulllen;
  char type[65];
  char id[65];
  bool insert_id;       /* the id came from the fullUrl */
  const char *bad;      /* reject code, or NULL */
} bentry;

typedef struct bundle {
  hl_split *sp;
  const char *type;
  size_t typelen;
  const char *entries;
  size_t entrieslen;
  bentry *e;
  size_t n, cap;
  json_t *map; /* fullUrl -> "Type/id" */
  char refkey[MAX_REF_LEN + 1];
} bundle;

static int bundle_member(void *ud, const char *key, size_t klen, const char *val, size_t vlen) {
  bundle *b = ud;
  if (klen == 4 && memcmp(key, "type", 4) == 0 && vlen >= 2 && val[0] == '"') {
    b->type = val + 1;
    b->typelen = vlen - 2;
  } else if (klen == 5 && memcmp(key, "entry", 5) == 0) {
    b->entries = val;
    b->entrieslen = vlen;
  }
  return 0;
}

static int entry_member(void *ud, const char *key, size_t klen, const char *val, size_t vlen) {
  bentry *e = ud;
  if (klen == 8 && memcmp(key, "resource", 8) == 0) {
    e->res = val;
    e->reslen = vlen;
  } else if (klen == 7 && memcmp(key, "fullUrl", 7) == 0 && vlen >= 2 && val[0] == '"') {
    e->full = val + 1;
    e->fulllen = vlen - 2;
  }
  return 0;
}

/* The id a fullUrl gives: urn:uuid:<id>, or .../<Type>/<id>[/_history/<v>]. */
static bool id_from_fullurl(const bentry *e, char *id) {
  const char *f = e->full;
  size_t n = e->fulllen;
  if (!f)
    return false;
  if (n > 9 && memcmp(f, "urn:uuid:", 9) == 0 && valid_id(f + 9, n - 9)) {
    memcpy(id, f + 9, n - 9);
    id[n - 9] = '\0';
    return true;
  }
  const char *h = NULL;
  for (size_t i = 0; i + 10 <= n; i++)
    if (memcmp(f + i, "/_history/", 10) == 0)
      h = f + i;
  size_t end = h ? (size_t)(h - f) : n;
  size_t slash = end;
  while (slash > 0 && f[slash - 1] != '/')
    slash--;
  size_t tl = strlen(e->type);
  if (slash < tl + 2 || memcmp(f + slash - tl - 1, e->type, tl) != 0 || f[slash - tl - 2] != '/')
    return false;
  if (!valid_id(f + slash, end - slash))
    return false;
  memcpy(id, f + slash, end - slash);
  id[end - slash] = '\0';
  return true;
}

static int bundle_entry(void *ud, size_t index, const char *val, size_t vlen) {
  bundle *b = ud;
  if (b->n == b->cap) {
    size_t cap = b->cap ? b->cap * 2 : 64;
    bentry *ne = realloc(b->e, cap * sizeof *ne);
    if (!ne)
      return -ENOMEM;
    b->e = ne;
    b->cap = cap;
  }
  bentry *e = &b->e[b->n++];
  memset(e, 0, sizeof *e);
  e->raw = val;
  e->rawlen = vlen;
  (void)index;
  if (vlen == 0 || val[0] != '{') {
    e->bad = "entry-without-resource";
    return 0;
  }
  if (hl_jscan_members(val, vlen, entry_member, e) < 0 || !e->res) {
    e->bad = "entry-without-resource";
    return 0;
  }
  hl_jscan_field f[2] = {{.key = "resourceType"}, {.key = "id"}};
  hl_jscan_result r;
  if (hl_jscan(e->res, e->reslen, 0, f, 2, &r) < 0 || r.top != HL_JSCAN_OBJECT ||
      f[0].kind != HL_JSCAN_STRING || f[0].escaped || !valid_type(f[0].val, f[0].len)) {
    e->bad = "not-a-resource";
    return 0;
  }
  memcpy(e->type, f[0].val, f[0].len);
  e->type[f[0].len] = '\0';
  if (f[1].kind == HL_JSCAN_NONE) {
    if (!id_from_fullurl(e, e->id)) {
      e->bad = "missing-id";
      return 0;
    }
    e->insert_id = true;
  } else if (f[1].kind != HL_JSCAN_STRING || f[1].escaped || !valid_id(f[1].val, f[1].len)) {
    e->bad = "invalid-id";
    return 0;
  } else {
    memcpy(e->id, f[1].val, f[1].len);
    e->id[f[1].len] = '\0';
  }
  if (e->full && e->fulllen <= MAX_REF_LEN) {
    memcpy(b->refkey, e->full, e->fulllen);
    b->refkey[e->fulllen] = '\0';
    char ref[131];
    snprintf(ref, sizeof ref, "%s/%s", e->type, e->id);
    if (json_object_set_new(b->map, b->refkey, json_string(ref)) < 0)
      return -ENOMEM;
  }
  return 0;
}

static const char *bundle_map(void *ud, const char *val, size_t len) {
  bundle *b = ud;
  if (len > MAX_REF_LEN)
    return NULL;
  memcpy(b->refkey, val, len);
  b->refkey[len] = '\0';
  return json_string_value(json_object_get(b->map, b->refkey));
}

static uint64_t count_lines(const char *from, const char *to) {
  uint64_t n = 0;
  for (const char *p = from; p < to; p++) {
    p = memchr(p, '\n', (size_t)(to - p));
    if (!p)
      break;
    n++;
  }
  return n;
}

static int expand_bundle(hl_split *sp, const char *s, size_t n, uint64_t line) {
  bundle b = {.sp = sp};
  int r = 0;
  hl_buf out;
  hl_buf_init(&out, sp->opts.max_document_bytes);
  b.map = json_object();
  if (!b.map)
    return -ENOMEM;
  hl_jscan_members(s, n, bundle_member, &b);
  bool known = false;
  for (int i = 0; b.type && bundle_types[i]; i++)
    if (strlen(bundle_types[i]) == b.typelen && memcmp(bundle_types[i], b.type, b.typelen) == 0)
      known = true;
  if (!known) {
    snprintf(sp->detail, sizeof sp->detail, "line %llu: Bundle.type %s%.*s%s is not one of collection, "
             "transaction, batch, searchset, history", (unsigned long long)line, b.type ? "'" : "",
             b.type ? (int)(b.typelen > 40 ? 40 : b.typelen) : 7, b.type ? b.type : "missing",
             b.type ? "'" : "");
    r = reject(sp, "unsupported-bundle", line, -1, s, n);
    goto done;
  }
  if (!b.entries)
    goto done; /* an empty Bundle carries no resources */
  if (b.entrieslen == 0 || b.entries[0] != '[') {
    snprintf(sp->detail, sizeof sp->detail, "line %llu: Bundle.entry is not an array",
             (unsigned long long)line);
    r = reject(sp, "not-a-resource", line, -1, s, n);
    goto done;
  }
  r = hl_jscan_elements(b.entries, b.entrieslen, bundle_entry, &b);
  if (r < 0)
    goto done;
  const char *at = s;
  for (size_t i = 0; i < b.n; i++) {
    bentry *e = &b.e[i];
    line += count_lines(at, e->raw);
    at = e->raw;
    uint64_t eline = line + (e->res ? count_lines(e->raw, e->res) : 0);
    if (e->bad) {
      snprintf(sp->detail, sizeof sp->detail, "line %llu: Bundle.entry[%zu]: %s",
               (unsigned long long)eline, i,
               strcmp(e->bad, "entry-without-resource") == 0 ? "entry has no resource object"
               : strcmp(e->bad, "missing-id") == 0 ? "resource has no id and fullUrl gives none"
               : strcmp(e->bad, "invalid-id") == 0 ? "resource id is not a valid FHIR id"
                                                   : "resource has no valid resourceType");
      r = reject(sp, e->bad, eline, (long)i, e->raw, e->rawlen);
      if (r < 0)
        goto done;
      continue;
    }
    hl_buf_reset(&out);
    const char *res = e->res;
    size_t rlen = e->reslen;
    if (e->insert_id) {
      /* res starts with '{' (it parsed as an object); put the id first. */
      r = hl_buf_printf(&out, "{\"id\":\"%s\",", e->id);
      res++;
      rlen--;
      while (rlen && (*res == ' ' || *res == '\n' || *res == '\r' || *res == '\t')) {
        res++;
        rlen--;
      }
    }
    if (r == 0)
      r = hl_jscan_rewrite_refs(res, rlen, bundle_map, &b, &out);
    if (r < 0)
      goto done;
    hl_split_record rec = {e->type, e->id, out.data, out.len, eline, (long)i, strlen(e->type),
                           strlen(e->id)};
    sp->stats.records++;
    r = sp->cbs.record ? sp->cbs.record(sp->ud, &rec) : 0;
    if (r < 0)
      goto done;
  }
done:
  free(b.e);
  json_decref(b.map);
  hl_buf_free(&out);
  return r;
}

/* ---- one JSON value (an NDJSON line or a document) ---- */

static int process_value(hl_split *sp, const char *s, size_t n, uint64_t line) {
  hl_jscan_field f[2] = {{.key = "resourceType"}, {.key = "id"}};
  hl_jscan_result r;
  if (hl_jscan(s, n, 0, f, 2, &r) < 0) {
    if (r.error == HL_JSCAN_EEMPTY && sp->opts.format == HL_SPLIT_NDJSON)
      return 0; /* blank line */
    static const char *const codes[] = {"ok", "invalid-json", "truncated", "invalid-utf8",
                                        "too-deep", "empty"};
    snprintf(sp->detail, sizeof sp->detail, "line %llu: %s at byte %zu",
             (unsigned long long)line, r.message, r.offset);
    return reject(sp, codes[r.error], line, -1, s, n);
  }
  if (r.top != HL_JSCAN_OBJECT) {
    snprintf(sp->detail, sizeof sp->detail, "line %llu: %s is not a FHIR resource",
             (unsigned long long)line, kind_name(r.top));
    return reject(sp, "not-a-resource", line, -1, s, n);
  }
  if (f[0].kind != HL_JSCAN_STRING || f[0].escaped || !valid_type(f[0].val, f[0].len)) {
    snprintf(sp->detail, sizeof sp->detail, "line %llu: object has no valid resourceType",
             (unsigned long long)line);
    return reject(sp, "not-a-resource", line, -1, s, n);
  }
  if (f[0].len == 6 && memcmp(f[0].val, "Bundle", 6) == 0)
    return expand_bundle(sp, s, n, line);
  char type[65], id[65];
  memcpy(type, f[0].val, f[0].len);
  type[f[0].len] = '\0';
  if (f[1].kind == HL_JSCAN_NONE) {
    snprintf(sp->detail, sizeof sp->detail, "line %llu: %s has no id", (unsigned long long)line,
             type);
    return reject(sp, "missing-id", line, -1, s, n);
  }
  if (f[1].kind != HL_JSCAN_STRING || f[1].escaped || !valid_id(f[1].val, f[1].len)) {
    snprintf(sp->detail, sizeof sp->detail,
             "line %llu: %s.id is not a valid FHIR id ([A-Za-z0-9-.]{1,64})",
             (unsigned long long)line, type);
    return reject(sp, "invalid-id", line, -1, s, n);
  }
  memcpy(id, f[1].val, f[1].len);
  id[f[1].len] = '\0';
  hl_split_record rec = {type, id, s, n, line, -1, f[0].len, f[1].len};
  sp->stats.records++;
  return sp->cbs.record ? sp->cbs.record(sp->ud, &rec) : 0;
}

static int end_line(hl_split *sp, const char *s, size_t n) {
  uint64_t line = sp->lineno++;
  sp->stats.lines++;
  if (n && s[n - 1] == '\r')
    n--;
  return process_value(sp, s, n, line);
}

static int too_long(hl_split *sp) {
  snprintf(sp->detail, sizeof sp->detail,
           "line %llu: longer than the limit of %zu bytes (the dead letter holds the first %zu bytes)",
           (unsigned long long)sp->lineno, sp->opts.max_line_bytes, sp->line.len);
  return reject(sp, "line-too-long", sp->lineno, -1, sp->line.data, sp->line.len);
}

/* Text after decompression. */
static int text_feed(hl_split *sp, const char *p, size_t n) {
  int r;
  if (sp->opts.format == HL_SPLIT_JSON) {
    if (sp->skipping)
      return 0;
    for (const char *q = p; (q = memchr(q, '\n', (size_t)(p + n - q))) != NULL; q++)
      sp->stats.lines++;
    if (hl_buf_append(&sp->line, p, n) < 0) {
      sp->skipping = true;
      snprintf(sp->detail, sizeof sp->detail,
               "document is larger than the limit of %zu bytes (the dead letter holds the first %zu bytes)",
               sp->opts.max_document_bytes, sp->line.len);
      return reject(sp, "document-too-large", 1, -1, sp->line.data, sp->line.len);
    }
    return 0;
  }
  while (n) {
    const char *nl = memchr(p, '\n', n);
    size_t take = nl ? (size_t)(nl - p) : n;
    if (sp->skipping) {
      /* Dropping the tail of an over-long line. */
    } else if (sp->line.len == 0 && nl) {
      if (take > sp->opts.max_line_bytes) {
        hl_buf_append(&sp->line, p, sp->opts.max_line_bytes);
        if ((r = too_long(sp)) < 0)
          return r;
        hl_buf_reset(&sp->line);
        sp->lineno++;
        sp->stats.lines++;
        p += take + 1;
        n -= take + 1;
        continue;
      }
      if ((r = end_line(sp, p, take)) < 0) /* fast path: no copy */
        return r;
      p += take + 1;
      n -= take + 1;
      continue;
    } else if (hl_buf_append(&sp->line, p, take) < 0) {
      size_t room = sp->opts.max_line_bytes - sp->line.len;
      hl_buf_append(&sp->line, p, room);
      if ((r = too_long(sp)) < 0)
        return r;
      hl_buf_reset(&sp->line);
      sp->skipping = true;
    }
    if (!nl)
      return 0;
    p += take + 1;
    n -= take + 1;
    if (sp->skipping) {
      sp->skipping = false;
      sp->lineno++;
      sp->stats.lines++;
      continue;
    }
    r = end_line(sp, sp->line.data ? sp->line.data : "", sp->line.len);
    hl_buf_reset(&sp->line);
    if (r < 0)
      return r;
  }
  return 0;
}

static int corrupt_gzip(hl_split *sp, const char *why) {
  snprintf(sp->detail, sizeof sp->detail, "line %llu: corrupt gzip data (%s); the partial line is "
           "dropped and parsing resumes at the next gzip member", (unsigned long long)sp->lineno, why);
  int r = reject(sp, "corrupt-gzip", sp->lineno, -1, sp->line.data ? sp->line.data : "",
                 sp->line.len);
  if (sp->opts.format == HL_SPLIT_NDJSON) {
    hl_buf_reset(&sp->line);
    sp->skipping = false;
    sp->lineno++;
  } else {
    sp->skipping = true; /* a document cannot be resumed */
  }
  sp->z_in_member = false;
  sp->z_resync = 1;
  return r;
}

static int gz_feed(hl_split *sp, const unsigned char *p, size_t n) {
  static const unsigned char magic[3] = {0x1f, 0x8b, 0x08};
  int r;
  while (n) {
    if (sp->z_resync) {
      /* Hunt for the next member header, byte by byte across chunks. */
      size_t matched = (size_t)sp->z_resync - 1;
      while (n && matched < 3) {
        if (*p == magic[matched])
          matched++;
        else
          matched = (*p == magic[0]) ? 1 : 0;
        p++;
        n--;
      }
      if (matched < 3) {
        sp->z_resync = (int)matched + 1;
        return 0;
      }
      sp->z_resync = 0;
      inflateReset(&sp->zs);
      sp->zs.next_in = (unsigned char *)magic;
      sp->zs.avail_in = 3;
      sp->zs.next_out = sp->zout;
      sp->zs.avail_out = INFLATE_CHUNK;
      int zr = inflate(&sp->zs, Z_NO_FLUSH);
      if (zr != Z_OK && zr != Z_BUF_ERROR) {
        if ((r = corrupt_gzip(sp, sp->zs.msg ? sp->zs.msg : "bad header")) < 0)
          return r;
        continue;
      }
      sp->z_in_member = true;
    }
    sp->zs.next_in = (unsigned char *)p;
    sp->zs.avail_in = (unsigned)(n > (1u << 30) ? (1u << 30) : n);
    size_t given = sp->zs.avail_in;
    int zr;
    do {
      sp->zs.next_out = sp->zout;
      sp->zs.avail_out = INFLATE_CHUNK;
      zr = inflate(&sp->zs, Z_NO_FLUSH);
      if (zr == Z_OK || zr == Z_STREAM_END || zr == Z_BUF_ERROR)
        sp->z_in_member = zr != Z_STREAM_END;
      size_t have = INFLATE_CHUNK - sp->zs.avail_out;
      if (have && (zr == Z_OK || zr == Z_STREAM_END || zr == Z_BUF_ERROR))
        if ((r = text_feed(sp, (const char *)sp->zout, have)) < 0)
          return r;
    } while (zr == Z_OK && sp->zs.avail_out == 0);
    size_t used = given - sp->zs.avail_in;
    p += used;
    n -= used;
    if (zr == Z_STREAM_END) {
      inflateReset(&sp->zs);
      continue; /* another member may follow */
    }
    if (zr == Z_DATA_ERROR || zr == Z_NEED_DICT || zr == Z_MEM_ERROR) {
      if (zr == Z_MEM_ERROR)
        return -ENOMEM;
      if ((r = corrupt_gzip(sp, sp->zs.msg ? sp->zs.msg : "invalid data")) < 0)
        return r;
      continue;
    }
    if (used == 0 && n)
      break; /* no progress; cannot happen with valid zlib */
  }
  return 0;
}

int hl_split_feed(hl_split *sp, const void *data, size_t len) {
  sp->stats.bytes_in += len;
  if (sp->opts.gzip)
    return gz_feed(sp, data, len);
  return text_feed(sp, data, len);
}

int hl_split_finish(hl_split *sp) {
  int r = 0;
  if (sp->opts.gzip && sp->z_in_member) {
    r = corrupt_gzip(sp, "the stream ends inside a gzip member");
    if (r < 0)
      return r;
  }
  if (sp->opts.format == HL_SPLIT_JSON) {
    if (!sp->skipping) {
      sp->stats.lines++;
      r = process_value(sp, sp->line.data ? sp->line.data : "", sp->line.len, 1);
    }
  } else if (sp->line.len && !sp->skipping) {
    r = end_line(sp, sp->line.data, sp->line.len);
  }
  hl_buf_reset(&sp->line);
  sp->skipping = false;
  return r;
}
