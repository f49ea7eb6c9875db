#define _GNU_SOURCE
/*
 * The S3 client: SigV4 signer, a small XML reader for the few answers S3
 * gives, credentials, and one request engine with retries that every
 * operation goes through. See hl/s3.h and docs/s3.md.
 */
#include "hl/s3.h"

#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hl/error.h"

#define S3_MAX_HEADERS 16
#define S3_MAX_QUERY 16
#define S3_MAX_ERROR_BODY (64 * 1024)
#define S3_MAX_LIST_OBJECTS 100000
#define S3_XML_MAX_DEPTH 16
#define S3_XML_MAX_TEXT (64 * 1024)
#define S3_EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

/* ------------------------------------------------------------------------ */
/* Hashing and encoding.                                                     */

static void hex_encode(const unsigned char *in, size_t n, char *out) {
  static const char digits[] = "0123456789abcdef";
  for (size_t i = 0; i < n; i++) {
    out[2 * i] = digits[in[i] >> 4];
    out[2 * i + 1] = digits[in[i] & 15];
  }
  out[2 * n] = '\0';
}

void hl_s3_sha256_hex(const void *data, size_t len, char out[65]) {
  unsigned char md[SHA256_DIGEST_LENGTH];
  SHA256(data, len, md);
  hex_encode(md, sizeof md, out);
}

static void hmac256(const void *key, size_t klen, const void *msg, size_t mlen, unsigned char out[32]) {
  unsigned int olen = 32;
  HMAC(EVP_sha256(), key, (int)klen, msg, mlen, out, &olen);
}

void hl_s3_sigv4_key(const char *secret, const char *date, const char *region, const char *service,
                     unsigned char out[32]) {
  unsigned char k1[32], k2[32], k3[32];
  size_t slen = strlen(secret);
  char *ksecret = malloc(slen + 5);
  if (!ksecret) {
    /* Without memory the key cannot be derived; a zero key never verifies. */
    memset(out, 0, 32);
    return;
  }
  memcpy(ksecret, "AWS4", 4);
  memcpy(ksecret + 4, secret, slen + 1);
  hmac256(ksecret, slen + 4, date, strlen(date), k1);
  OPENSSL_cleanse(ksecret, slen + 4);
  free(ksecret);
  hmac256(k1, 32, region, strlen(region), k2);
  hmac256(k2, 32, service, strlen(service), k3);
  hmac256(k3, 32, "aws4_request", 12, out);
  OPENSSL_cleanse(k1, sizeof k1);
  OPENSSL_cleanse(k2, sizeof k2);
  OPENSSL_cleanse(k3, sizeof k3);
}

static bool unreserved(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_' || c == '.' || c == '~';
}

int hl_s3_uri_encode(hl_buf *out, const char *s, size_t n, bool keep_slash) {
  static const char digits[] = "0123456789ABCDEF";
  int r = hl_buf_reserve(out, n * 3);
  if (r < 0)
    return r;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (unreserved(c) || (keep_slash && c == '/')) {
      out->data[out->len++] = (char)c;
    } else {
      out->data[out->len++] = '%';
      out->data[out->len++] = digits[c >> 4];
      out->data[out->len++] = digits[c & 15];
    }
  }
  out->data[out->len] = '\0';
  return 0;
}

/* ------------------------------------------------------------------------ */
/* The SigV4 signer.                                                         */

typedef struct enc_pair {
  char *name;
  char *value;
} enc_pair;

static int cmp_pair(const void *a, const void *b) {
  const enc_pair *x = a, *y = b;
  int c = strcmp(x->name, y->name);
  return c ? c : strcmp(x->value, y->value);
}

static void free_pairs(enc_pair *p, size_t n) {
  for (size_t i = 0; i < n; i++) {
    free(p[i].name);
    free(p[i].value);
  }
}

static char *encode_dup(const char *s, bool keep_slash) {
  hl_buf b;
  hl_buf_init(&b, 0);
  if (hl_s3_uri_encode(&b, s ? s : "", s ? strlen(s) : 0, keep_slash) < 0 ||
      hl_buf_reserve(&b, 0) < 0) {
    hl_buf_free(&b);
    return NULL;
  }
  return hl_buf_steal(&b, NULL);
}

/* Appends the sorted, encoded query (extra pairs included) to out. */
static int canonical_query(const hl_s3_kv *q, size_t nq, const hl_s3_kv *extra, size_t nextra,
                           hl_buf *out) {
  size_t n = nq + nextra;
  if (n > 2 * S3_MAX_QUERY)
    return -EINVAL;
  enc_pair pairs[2 * S3_MAX_QUERY];
  size_t made = 0;
  int r = 0;
  for (size_t i = 0; i < n; i++) {
    const hl_s3_kv *kv = i < nq ? &q[i] : &extra[i - nq];
    if (!kv->name) {
      r = -EINVAL;
      goto out;
    }
    pairs[made].name = encode_dup(kv->name, false);
    pairs[made].value = encode_dup(kv->value, false);
    made++;
    if (!pairs[made - 1].name || !pairs[made - 1].value) {
      r = -ENOMEM;
      goto out;
    }
  }
  qsort(pairs, made, sizeof pairs[0], cmp_pair);
  for (size_t i = 0; i < made && r == 0; i++)
    r = hl_buf_printf(out, "%s%s=%s", i ? "&" : "", pairs[i].name, pairs[i].value);
out:
  free_pairs(pairs, made);
  return r;
}

typedef struct canon_header {
  char name[64];
  const char *value;
} canon_header;

static int cmp_header(const void *a, const void *b) {
  return strcmp(((const canon_header *)a)->name, ((const canon_header *)b)->name);
}

/* Appends value trimmed, with runs of spaces folded to one. */
static int append_trimmed(hl_buf *out, const char *v) {
  while (*v == ' ' || *v == '\t')
    v++;
  size_t n = strlen(v);
  while (n && (v[n - 1] == ' ' || v[n - 1] == '\t'))
    n--;
  bool space = false;
  for (size_t i = 0; i < n; i++) {
    char c = v[i] == '\t' ? ' ' : v[i];
    if (c == ' ') {
      if (space)
        continue;
      space = true;
    } else {
      space = false;
    }
    int r = hl_buf_putc(out, c);
    if (r < 0)
      return r;
  }
  return 0;
}

static void amz_dates(time_t now, char amz[17], char day[9]) {
  struct tm tm;
  gmtime_r(&now, &tm);
  strftime(amz, 17, "%Y%m%dT%H%M%SZ", &tm);
  strftime(day, 9, "%Y%m%d", &tm);
}

/*
 * Builds the canonical request of req with the given extra query pairs into
 * canon, and the signed-header list into signed_hdrs.
 */
static int build_canonical(const hl_s3_sigv4 *req, const hl_s3_kv *extra, size_t nextra,
                           hl_buf *canon, hl_buf *signed_hdrs) {
  if (!req->method || !req->path || !req->payload_hash || req->nheaders > S3_MAX_HEADERS ||
      req->nquery > S3_MAX_QUERY)
    return -EINVAL;
  int r = hl_buf_printf(canon, "%s\n", req->method);
  if (r < 0)
    return r;
  const char *path = req->path[0] ? req->path : "/";
  if ((r = hl_s3_uri_encode(canon, path, strlen(path), true)) < 0 || (r = hl_buf_putc(canon, '\n')) < 0)
    return r;
  if ((r = canonical_query(req->query, req->nquery, extra, nextra, canon)) < 0 ||
      (r = hl_buf_putc(canon, '\n')) < 0)
    return r;
  canon_header hs[S3_MAX_HEADERS];
  for (size_t i = 0; i < req->nheaders; i++) {
    const char *nm = req->headers[i].name;
    size_t len = nm ? strlen(nm) : 0;
    if (len == 0 || len >= sizeof hs[i].name || !req->headers[i].value)
      return -EINVAL;
    for (size_t j = 0; j <= len; j++)
      hs[i].name[j] = (char)tolower((unsigned char)nm[j]);
    hs[i].value = req->headers[i].value;
  }
  qsort(hs, req->nheaders, sizeof hs[0], cmp_header);
  for (size_t i = 0; i < req->nheaders; i++) {
    if ((r = hl_buf_printf(canon, "%s:", hs[i].name)) < 0 || (r = append_trimmed(canon, hs[i].value)) < 0 ||
        (r = hl_buf_putc(canon, '\n')) < 0)
      return r;
    if ((r = hl_buf_printf(signed_hdrs, "%s%s", i ? ";" : "", hs[i].name)) < 0)
      return r;
  }
  if ((r = hl_buf_printf(canon, "\n%s\n%s", signed_hdrs->data ? signed_hdrs->data : "", req->payload_hash)) < 0)
    return r;
  return 0;
}

/* Signature (hex) of a canonical request. */
static void sign_canonical(const hl_s3_sigv4 *req, const hl_buf *canon, char sig[65]) {
  char amz[17], day[9], chash[65];
  amz_dates(req->now, amz, day);
  hl_s3_sha256_hex(canon->data, canon->len, chash);
  char sts[512];
  snprintf(sts, sizeof sts, "AWS4-HMAC-SHA256\n%s\n%s/%s/%s/aws4_request\n%s", amz, day, req->region,
           req->service, chash);
  unsigned char key[32], mac[32];
  hl_s3_sigv4_key(req->secret_key, day, req->region, req->service, key);
  hmac256(key, 32, sts, strlen(sts), mac);
  OPENSSL_cleanse(key, sizeof key);
  hex_encode(mac, 32, sig);
}

static bool sign_input_ok(const hl_s3_sigv4 *req) {
  return req && req->region && req->service && req->access_key && req->secret_key &&
         strlen(req->region) < 64 && strlen(req->service) < 32 && strlen(req->access_key) < 256;
}

int hl_s3_sigv4_sign(const hl_s3_sigv4 *req, hl_buf *auth, hl_buf *canonical) {
  if (!sign_input_ok(req) || !auth)
    return -EINVAL;
  hl_buf canon, sh;
  hl_buf_init(&canon, 1 << 20);
  hl_buf_init(&sh, 4096);
  int r = build_canonical(req, NULL, 0, &canon, &sh);
  if (r < 0)
    goto out;
  char sig[65], amz[17], day[9];
  sign_canonical(req, &canon, sig);
  amz_dates(req->now, amz, day);
  r = hl_buf_printf(auth, "AWS4-HMAC-SHA256 Credential=%s/%s/%s/%s/aws4_request,SignedHeaders=%s,Signature=%s",
                    req->access_key, day, req->region, req->service, sh.data, sig);
  if (r == 0 && canonical)
    r = hl_buf_append(canonical, canon.data, canon.len);
out:
  hl_buf_free(&canon);
  hl_buf_free(&sh);
  return r;
}

int hl_s3_sigv4_presign(const hl_s3_sigv4 *req, long expires, const char *session_token, hl_buf *out) {
  if (!sign_input_ok(req) || !out || expires < 1 || expires > 604800 || req->nheaders == 0)
    return -EINVAL;
  char amz[17], day[9], cred[512], exp[24];
  amz_dates(req->now, amz, day);
  snprintf(cred, sizeof cred, "%s/%s/%s/%s/aws4_request", req->access_key, day, req->region, req->service);
  snprintf(exp, sizeof exp, "%ld", expires);
  /* The signed-header list is known before the canonical request is built. */
  hl_buf canon, sh;
  hl_buf_init(&canon, 1 << 20);
  hl_buf_init(&sh, 4096);
  int r = build_canonical(req, NULL, 0, &canon, &sh);
  if (r < 0)
    goto out;
  char *signed_list = hl_buf_steal(&sh, NULL);
  hl_buf_reset(&canon);
  hl_s3_kv extra[6] = {
      {"X-Amz-Algorithm", "AWS4-HMAC-SHA256"}, {"X-Amz-Credential", cred}, {"X-Amz-Date", amz},
      {"X-Amz-Expires", exp}, {"X-Amz-SignedHeaders", signed_list}, {"X-Amz-Security-Token", session_token},
  };
  size_t nextra = session_token && *session_token ? 6 : 5;
  r = build_canonical(req, extra, nextra, &canon, &sh);
  if (r == 0) {
    char sig[65];
    sign_canonical(req, &canon, sig);
    r = canonical_query(req->query, req->nquery, extra, nextra, out);
    if (r == 0)
      r = hl_buf_printf(out, "&X-Amz-Signature=%s", sig);
  }
  free(signed_list);
out:
  hl_buf_free(&canon);
  hl_buf_free(&sh);
  return r;
}

/* ------------------------------------------------------------------------ */
/* A small XML reader: elements, text, entities, CDATA; no DTDs.             */

typedef struct xml_name {
  const char *p;
  size_t n;
} xml_name;

typedef struct xml_handler {
  /* Called at a start tag; stack[depth-1] is the new element. */
  int (*start)(void *ud, const xml_name *stack, int depth);
  /* Called at an end tag with the element's decoded text (since its last child). */
  int (*end)(void *ud, const xml_name *stack, int depth, const char *text, size_t len);
  void *ud;
} xml_handler;

static bool xml_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

static bool xml_name_char(char c) {
  return !xml_space(c) && c != '/' && c != '>' && c != '<' && c != '=' && c != '"' && c != '\'' && c != '&';
}

static const char *find_seq(const char *p, const char *end, const char *seq) {
  size_t n = strlen(seq);
  for (; p + n <= end; p++)
    if (memcmp(p, seq, n) == 0)
      return p;
  return NULL;
}

static int utf8_put(hl_buf *b, unsigned long cp) {
  char u[4];
  size_t n;
  if (cp == 0 || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
    return HL_EPARSE;
  if (cp < 0x80) {
    u[0] = (char)cp;
    n = 1;
  } else if (cp < 0x800) {
    u[0] = (char)(0xC0 | (cp >> 6));
    u[1] = (char)(0x80 | (cp & 0x3F));
    n = 2;
  } else if (cp < 0x10000) {
    u[0] = (char)(0xE0 | (cp >> 12));
    u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
    u[2] = (char)(0x80 | (cp & 0x3F));
    n = 3;
  } else {
    u[0] = (char)(0xF0 | (cp >> 18));
    u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    u[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    u[3] = (char)(0x80 | (cp & 0x3F));
    n = 4;
  }
  return hl_buf_append(b, u, n);
}

/* Decodes text (p..end) with entities into b. */
static int xml_decode(hl_buf *b, const char *p, const char *end) {
  while (p < end) {
    const char *amp = memchr(p, '&', (size_t)(end - p));
    const char *stop = amp ? amp : end;
    int r = hl_buf_append(b, p, (size_t)(stop - p));
    if (r < 0 || !amp)
      return r;
    const char *semi = memchr(amp, ';', (size_t)(end - amp) < 12 ? (size_t)(end - amp) : 12);
    if (!semi)
      return HL_EPARSE;
    const char *e = amp + 1;
    size_t n = (size_t)(semi - e);
    if (n == 2 && memcmp(e, "lt", 2) == 0)
      r = hl_buf_putc(b, '<');
    else if (n == 2 && memcmp(e, "gt", 2) == 0)
      r = hl_buf_putc(b, '>');
    else if (n == 3 && memcmp(e, "amp", 3) == 0)
      r = hl_buf_putc(b, '&');
    else if (n == 4 && memcmp(e, "quot", 4) == 0)
      r = hl_buf_putc(b, '"');
    else if (n == 4 && memcmp(e, "apos", 4) == 0)
      r = hl_buf_putc(b, '\'');
    else if (n >= 2 && e[0] == '#') {
      bool hexa = e[1] == 'x' || e[1] == 'X';
      const char *d = e + (hexa ? 2 : 1);
      if (d == semi)
        return HL_EPARSE;
      unsigned long cp = 0;
      for (; d < semi; d++) {
        int v;
        if (*d >= '0' && *d <= '9')
          v = *d - '0';
        else if (hexa && *d >= 'a' && *d <= 'f')
          v = *d - 'a' + 10;
        else if (hexa && *d >= 'A' && *d <= 'F')
          v = *d - 'A' + 10;
        else
          return HL_EPARSE;
        cp = cp * (hexa ? 16 : 10) + (unsigned long)v;
        if (cp > 0x10FFFF)
          return HL_EPARSE;
      }
      r = utf8_put(b, cp);
    } else {
      return HL_EPARSE;
    }
    if (r < 0)
      return r;
    p = semi + 1;
  }
  return 0;
}

static int xml_parse(const char *xml, size_t len, const xml_handler *h) {
  const char *p = xml, *end = xml + len;
  xml_name stack[S3_XML_MAX_DEPTH];
  int depth = 0;
  bool seen_root = false;
  hl_buf text;
  hl_buf_init(&text, S3_XML_MAX_TEXT);
  int r = 0;
  while (p < end && r == 0) {
    if (*p != '<') {
      const char *lt = memchr(p, '<', (size_t)(end - p));
      const char *stop = lt ? lt : end;
      if (depth == 0) {
        for (const char *q = p; q < stop; q++)
          if (!xml_space(*q))
            r = HL_EPARSE;
      } else {
        r = xml_decode(&text, p, stop);
      }
      p = stop;
      continue;
    }
    size_t left = (size_t)(end - p);
    if (left >= 2 && p[1] == '?') {
      const char *q = find_seq(p + 2, end, "?>");
      if (!q || seen_root)
        r = HL_EPARSE;
      else
        p = q + 2;
    } else if (left >= 4 && memcmp(p, "<!--", 4) == 0) {
      const char *q = find_seq(p + 4, end, "-->");
      if (!q)
        r = HL_EPARSE;
      else
        p = q + 3;
    } else if (left >= 9 && memcmp(p, "<![CDATA[", 9) == 0) {
      const char *q = find_seq(p + 9, end, "]]>");
      if (!q || depth == 0)
        r = HL_EPARSE;
      else {
        r = hl_buf_append(&text, p + 9, (size_t)(q - (p + 9)));
        p = q + 3;
      }
    } else if (left >= 2 && p[1] == '!') {
      r = HL_EPARSE; /* DOCTYPE and other declarations are refused. */
    } else if (left >= 2 && p[1] == '/') {
      const char *n = p + 2, *q = n;
      while (q < end && xml_name_char(*q))
        q++;
      const char *name_end = q;
      while (q < end && xml_space(*q))
        q++;
      if (q >= end || *q != '>' || depth == 0 || (size_t)(name_end - n) != stack[depth - 1].n ||
          memcmp(n, stack[depth - 1].p, stack[depth - 1].n) != 0) {
        r = HL_EPARSE;
      } else {
        r = h->end ? h->end(h->ud, stack, depth, text.data ? text.data : "", text.len) : 0;
        hl_buf_reset(&text);
        depth--;
        p = q + 1;
      }
    } else {
      const char *n = p + 1, *q = n;
      while (q < end && xml_name_char(*q))
        q++;
      if (q == n || (depth == 0 && seen_root) || depth >= S3_XML_MAX_DEPTH) {
        r = depth >= S3_XML_MAX_DEPTH ? HL_ELIMIT : HL_EPARSE;
        break;
      }
      stack[depth].p = n;
      stack[depth].n = (size_t)(q - n);
      /* Attributes are skipped; quoted values may hold '>' and '/'. */
      bool self_close = false;
      while (q < end && *q != '>') {
        if (*q == '"' || *q == '\'') {
          const char *cq = memchr(q + 1, *q, (size_t)(end - q - 1));
          if (!cq) {
            q = end;
            break;
          }
          q = cq + 1;
          continue;
        }
        if (*q == '<') {
          q = end;
          break;
        }
        self_close = *q == '/';
        q++;
      }
      if (q >= end) {
        r = HL_EPARSE;
        break;
      }
      depth++;
      seen_root = true;
      hl_buf_reset(&text);
      r = h->start ? h->start(h->ud, stack, depth) : 0;
      if (r == 0 && self_close) {
        r = h->end ? h->end(h->ud, stack, depth, "", 0) : 0;
        depth--;
      }
      p = q + 1;
    }
  }
  if (r == 0 && (depth != 0 || !seen_root))
    r = HL_EPARSE;
  hl_buf_free(&text);
  return r;
}

/* Compares an element's local name (any "prefix:" dropped) with s. */
static bool xml_is(const xml_name *n, const char *s) {
  const char *p = n->p;
  size_t len = n->n;
  const char *colon = memchr(p, ':', len);
  if (colon) {
    len -= (size_t)(colon + 1 - p);
    p = colon + 1;
  }
  return strlen(s) == len && memcmp(p, s, len) == 0;
}

static int copy_text(char *dst, size_t cap, const char *text, size_t len) {
  if (len >= cap)
    return HL_ELIMIT;
  memcpy(dst, text, len);
  dst[len] = '\0';
  return 0;
}

static int parse_size(const char *text, size_t len, long long *out) {
  long long v = 0;
  if (len == 0 || len > 19)
    return HL_EPARSE;
  for (size_t i = 0; i < len; i++) {
    if (text[i] < '0' || text[i] > '9')
      return HL_EPARSE;
    if (v > (LLONG_MAX - (text[i] - '0')) / 10)
      return HL_EPARSE;
    v = v * 10 + (text[i] - '0');
  }
  *out = v;
  return 0;
}

typedef struct list_state {
  hl_s3_list_page *page;
  size_t cap, pcap;
  bool in_contents, have_key, have_size;
} list_state;

static int list_start(void *ud, const xml_name *stack, int depth) {
  list_state *st = ud;
  hl_s3_list_page *pg = st->page;
  if (depth == 1 && !xml_is(&stack[0], "ListBucketResult"))
    return HL_EPARSE;
  if (depth == 2 && xml_is(&stack[1], "Contents")) {
    if (pg->count >= S3_MAX_LIST_OBJECTS)
      return HL_ELIMIT;
    if (pg->count == st->cap) {
      size_t ncap = st->cap ? st->cap * 2 : 64;
      hl_s3_object *o = realloc(pg->objects, ncap * sizeof *o);
      if (!o)
        return -ENOMEM;
      pg->objects = o;
      st->cap = ncap;
    }
    memset(&pg->objects[pg->count], 0, sizeof pg->objects[0]);
    pg->count++;
    st->in_contents = true;
    st->have_key = st->have_size = false;
  }
  return 0;
}

static char *dup_text(const char *text, size_t len) {
  char *s = malloc(len + 1);
  if (s) {
    memcpy(s, text, len);
    s[len] = '\0';
  }
  return s;
}

static int list_end(void *ud, const xml_name *stack, int depth, const char *text, size_t len) {
  list_state *st = ud;
  hl_s3_list_page *pg = st->page;
  if (depth == 3 && st->in_contents) {
    hl_s3_object *o = &pg->objects[pg->count - 1];
    const xml_name *n = &stack[2];
    if (xml_is(n, "Key")) {
      if (st->have_key || len == 0 || len > HL_S3_MAX_KEY || memchr(text, '\0', len))
        return HL_EPARSE;
      if (!(o->key = dup_text(text, len)))
        return -ENOMEM;
      st->have_key = true;
    } else if (xml_is(n, "Size")) {
      if (parse_size(text, len, &o->size) < 0)
        return HL_EPARSE;
      st->have_size = true;
    } else if (xml_is(n, "ETag")) {
      return copy_text(o->etag, sizeof o->etag, text, len);
    } else if (xml_is(n, "LastModified")) {
      return copy_text(o->last_modified, sizeof o->last_modified, text, len);
    }
    return 0;
  }
  if (depth == 3 && xml_is(&stack[1], "CommonPrefixes") && xml_is(&stack[2], "Prefix")) {
    if (len > HL_S3_MAX_KEY || pg->nprefixes >= S3_MAX_LIST_OBJECTS)
      return HL_ELIMIT;
    if (pg->nprefixes == st->pcap) {
      size_t ncap = st->pcap ? st->pcap * 2 : 16;
      char **np = realloc(pg->common_prefixes, ncap * sizeof *np);
      if (!np)
        return -ENOMEM;
      pg->common_prefixes = np;
      st->pcap = ncap;
    }
    if (!(pg->common_prefixes[pg->nprefixes] = dup_text(text, len)))
      return -ENOMEM;
    pg->nprefixes++;
    return 0;
  }
  if (depth == 2) {
    const xml_name *n = &stack[1];
    if (xml_is(n, "Contents")) {
      st->in_contents = false;
      if (!st->have_key || !st->have_size)
        return HL_EPARSE;
    } else if (xml_is(n, "IsTruncated")) {
      if (len == 4 && memcmp(text, "true", 4) == 0)
        pg->truncated = true;
      else if (len == 5 && memcmp(text, "false", 5) == 0)
        pg->truncated = false;
      else
        return HL_EPARSE;
    } else if (xml_is(n, "NextContinuationToken")) {
      if (pg->next_token || len == 0 || len > 4096)
        return HL_EPARSE;
      if (!(pg->next_token = dup_text(text, len)))
        return -ENOMEM;
    }
  }
  return 0;
}

void hl_s3_list_page_clear(hl_s3_list_page *page) {
  if (!page)
    return;
  for (size_t i = 0; i < page->count; i++)
    free(page->objects[i].key);
  for (size_t i = 0; i < page->nprefixes; i++)
    free(page->common_prefixes[i]);
  free(page->objects);
  free(page->common_prefixes);
  free(page->next_token);
  memset(page, 0, sizeof *page);
}

int hl_s3_parse_list(const char *xml, size_t len, hl_s3_list_page *page) {
  if (!xml || !page)
    return -EINVAL;
  hl_s3_list_page_clear(page);
  list_state st = {.page = page};
  xml_handler h = {list_start, list_end, &st};
  int r = xml_parse(xml, len, &h);
  /* A truncated page must say where to go on. */
  if (r == 0 && page->truncated && !page->next_token)
    r = HL_EPARSE;
  if (r < 0)
    hl_s3_list_page_clear(page);
  return r;
}

static int error_start(void *ud, const xml_name *stack, int depth) {
  (void)ud;
  if (depth == 1 && !xml_is(&stack[0], "Error"))
    return HL_EPARSE;
  return 0;
}

static void copy_trunc(char *dst, size_t cap, const char *text, size_t len) {
  if (len >= cap)
    len = cap - 1;
  memcpy(dst, text, len);
  dst[len] = '\0';
}

static int error_end(void *ud, const xml_name *stack, int depth, const char *text, size_t len) {
  hl_s3_error *e = ud;
  if (depth != 2)
    return 0;
  if (xml_is(&stack[1], "Code"))
    copy_trunc(e->code, sizeof e->code, text, len);
  else if (xml_is(&stack[1], "Message"))
    copy_trunc(e->message, sizeof e->message, text, len);
  else if (xml_is(&stack[1], "RequestId"))
    copy_trunc(e->request_id, sizeof e->request_id, text, len);
  return 0;
}

int hl_s3_parse_error(const char *xml, size_t len, hl_s3_error *err) {
  if (!xml || !err)
    return -EINVAL;
  hl_s3_error tmp = *err;
  xml_handler h = {error_start, error_end, &tmp};
  int r = xml_parse(xml, len, &h);
  if (r == 0)
    *err = tmp;
  return r;
}

/* ------------------------------------------------------------------------ */
/* The client.                                                               */

typedef struct s3_creds {
  char *access_key;
  char *secret_key;
  char *token;
  time_t expires; /* 0: never */
} s3_creds;

struct hl_s3 {
  CURL *curl;
  char *scheme;        /* "http" or "https" */
  char *host;          /* host[:port] of the endpoint, default port dropped */
  char *region;
  bool path_style;
  int max_retries;
  long retry_base_ms, retry_max_ms, timeout_ms;
  size_t max_response;
  s3_creds creds;
  char *container_uri;
  char *container_auth;
  char *container_auth_file;
  char *web_token_file;
  char *role_arn;
  char *role_session;
  char *sts_endpoint;
  long clock_skew;     /* seconds to add to the local clock, learnt from RequestTimeTooSkewed */
  uint64_t rng;
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }

static char *sdup(const char *s) { return strdup(s ? s : ""); }
static bool empty(const char *s) { return !s || !*s; }

static void creds_clear(s3_creds *c) {
  if (c->secret_key)
    OPENSSL_cleanse(c->secret_key, strlen(c->secret_key));
  free(c->access_key);
  free(c->secret_key);
  free(c->token);
  memset(c, 0, sizeof *c);
}

hl_s3 *hl_s3_free(hl_s3 *s3) {
  if (!s3)
    return NULL;
  if (s3->curl)
    curl_easy_cleanup(s3->curl);
  creds_clear(&s3->creds);
  free(s3->scheme);
  free(s3->host);
  free(s3->region);
  free(s3->container_uri);
  free(s3->container_auth);
  free(s3->container_auth_file);
  free(s3->web_token_file);
  free(s3->role_arn);
  free(s3->role_session);
  free(s3->sts_endpoint);
  free(s3);
  return NULL;
}

/* Splits "scheme://host[:port][/]" into its parts; the default port is dropped. */
static int parse_endpoint(const char *ep, char **scheme, char **host) {
  const char *sep = strstr(ep, "://");
  if (!sep)
    return -EINVAL;
  size_t sl = (size_t)(sep - ep);
  bool https = sl == 5 && strncasecmp(ep, "https", 5) == 0;
  if (!https && !(sl == 4 && strncasecmp(ep, "http", 4) == 0))
    return -EINVAL;
  const char *h = sep + 3;
  size_t hl = strcspn(h, "/?#");
  if (hl == 0 || hl > 255 || (h[hl] && strcmp(h + hl, "/") != 0) || memchr(h, '@', hl))
    return -EINVAL;
  for (size_t i = 0; i < hl; i++)
    if (!isalnum((unsigned char)h[i]) && !strchr(".-:[]_", h[i]))
      return -EINVAL;
  char *hs = strndup(h, hl);
  if (!hs)
    return -ENOMEM;
  for (char *q = hs; *q; q++)
    *q = (char)tolower((unsigned char)*q);
  const char *defport = https ? ":443" : ":80";
  size_t dl = strlen(defport), n = strlen(hs);
  if (n > dl && strcmp(hs + n - dl, defport) == 0)
    hs[n - dl] = '\0';
  *scheme = strdup(https ? "https" : "http");
  *host = hs;
  if (!*scheme) {
    free(hs);
    *host = NULL;
    return -ENOMEM;
  }
  return 0;
}

int hl_s3_new(const hl_s3_config *cfg, hl_s3 **out) {
  if (!cfg || !out)
    return -EINVAL;
  bool static_keys = !empty(cfg->access_key) || !empty(cfg->secret_key);
  if (static_keys && (empty(cfg->access_key) || empty(cfg->secret_key)))
    return -EINVAL;
  bool web_identity = !empty(cfg->web_identity_token_file) && !empty(cfg->role_arn);
  if (!static_keys && empty(cfg->container_credentials_uri) && !web_identity)
    return -EINVAL;
  if (cfg->max_retries < 0 || cfg->max_retries > 20 || cfg->retry_base_ms < 0 || cfg->retry_max_ms < 0 ||
      cfg->timeout_ms < 0 || cfg->max_response < 0)
    return -EINVAL;
  pthread_once(&curl_once, curl_init_once);
  int r = -ENOMEM;
  hl_s3 *s3 = calloc(1, sizeof *s3);
  if (!s3)
    return -ENOMEM;
  const char *region = empty(cfg->region) ? "us-east-1" : cfg->region;
  if (strlen(region) > 63) {
    r = -EINVAL;
    goto fail;
  }
  char defep[128];
  const char *ep = cfg->endpoint;
  if (empty(ep)) {
    snprintf(defep, sizeof defep, "https://s3.%s.amazonaws.com", region);
    ep = defep;
  }
  if ((r = parse_endpoint(ep, &s3->scheme, &s3->host)) < 0)
    goto fail;
  r = -ENOMEM;
  if (!(s3->region = sdup(region)) || !(s3->curl = curl_easy_init()))
    goto fail;
  if (static_keys) {
    if (!(s3->creds.access_key = sdup(cfg->access_key)) || !(s3->creds.secret_key = sdup(cfg->secret_key)) ||
        !(s3->creds.token = sdup(cfg->session_token)))
      goto fail;
  } else if (!empty(cfg->container_credentials_uri)) {
    if (!(s3->container_uri = sdup(cfg->container_credentials_uri)) ||
        !(s3->container_auth = sdup(cfg->container_authorization)) ||
        !(s3->container_auth_file = sdup(cfg->container_authorization_file)))
      goto fail;
  } else {
    char defsts[128];
    snprintf(defsts, sizeof defsts, "https://sts.%s.amazonaws.com/", region);
    if (!(s3->web_token_file = sdup(cfg->web_identity_token_file)) || !(s3->role_arn = sdup(cfg->role_arn)) ||
        !(s3->role_session = sdup(empty(cfg->role_session_name) ? "healthlake" : cfg->role_session_name)) ||
        !(s3->sts_endpoint = sdup(empty(cfg->sts_endpoint) ? defsts : cfg->sts_endpoint)))
      goto fail;
  }
  s3->path_style = cfg->path_style;
  s3->max_retries = cfg->max_retries;
  s3->retry_base_ms = cfg->retry_base_ms ? cfg->retry_base_ms : 100;
  s3->retry_max_ms = cfg->retry_max_ms ? cfg->retry_max_ms : 20000;
  s3->timeout_ms = cfg->timeout_ms ? cfg->timeout_ms : 60000;
  s3->max_response = cfg->max_response ? (size_t)cfg->max_response : 16u << 20;
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  s3->rng = ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)ts.tv_sec ^ ((uint64_t)getpid() << 40) ^ (uintptr_t)s3;
  if (!s3->rng)
    s3->rng = 0x9E3779B97F4A7C15ull;
  *out = s3;
  return 0;
fail:
  hl_s3_free(s3);
  return r;
}

static void set_msg(char *err, size_t errlen, const char *msg) {
  if (err && errlen)
    snprintf(err, errlen, "%s", msg);
}

int hl_s3_config_from(const hl_config *src, hl_s3_config *cfg, char *err, size_t errlen) {
  static char relative_uri[1100];
  memset(cfg, 0, sizeof *cfg);
  cfg->endpoint = hl_config_str(src, "HL_S3_ENDPOINT");
  cfg->region = hl_config_str(src, "AWS_REGION");
  if (empty(cfg->region))
    cfg->region = hl_config_str(src, "AWS_DEFAULT_REGION");
  cfg->access_key = hl_config_str(src, "AWS_ACCESS_KEY_ID");
  cfg->secret_key = hl_config_str(src, "AWS_SECRET_ACCESS_KEY");
  cfg->session_token = hl_config_str(src, "AWS_SESSION_TOKEN");
  cfg->path_style = hl_config_bool(src, "HL_S3_FORCE_PATH_STYLE");
  cfg->max_retries = (int)hl_config_int(src, "HL_S3_MAX_RETRIES");
  cfg->retry_base_ms = (long)hl_config_int(src, "HL_S3_RETRY_BASE");
  cfg->retry_max_ms = (long)hl_config_int(src, "HL_S3_RETRY_MAX");
  cfg->timeout_ms = (long)hl_config_int(src, "HL_S3_TIMEOUT");
  const char *full = hl_config_str(src, "AWS_CONTAINER_CREDENTIALS_FULL_URI");
  const char *rel = hl_config_str(src, "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
  if (!empty(rel)) {
    snprintf(relative_uri, sizeof relative_uri, "http://169.254.170.2%s%s", rel[0] == '/' ? "" : "/", rel);
    cfg->container_credentials_uri = relative_uri;
  } else if (!empty(full)) {
    cfg->container_credentials_uri = full;
  }
  cfg->container_authorization = hl_config_str(src, "AWS_CONTAINER_AUTHORIZATION_TOKEN");
  cfg->container_authorization_file = hl_config_str(src, "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE");
  cfg->web_identity_token_file = hl_config_str(src, "AWS_WEB_IDENTITY_TOKEN_FILE");
  cfg->role_arn = hl_config_str(src, "AWS_ROLE_ARN");
  cfg->role_session_name = hl_config_str(src, "AWS_ROLE_SESSION_NAME");
  cfg->sts_endpoint = hl_config_str(src, "HL_S3_STS_ENDPOINT");
  bool web_identity = !empty(cfg->web_identity_token_file) && !empty(cfg->role_arn);
  bool ak = !empty(cfg->access_key), sk = !empty(cfg->secret_key);
  if (ak != sk) {
    set_msg(err, errlen, "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set together");
    return HL_ECONFIG;
  }
  if (!ak && empty(cfg->container_credentials_uri) && !web_identity) {
    set_msg(err, errlen,
             "no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or "
             "AWS_CONTAINER_CREDENTIALS_FULL_URI / AWS_CONTAINER_CREDENTIALS_RELATIVE_URI, or "
             "AWS_WEB_IDENTITY_TOKEN_FILE with AWS_ROLE_ARN");
    return HL_ECONFIG;
  }
  return 0;
}

/* ---- Credentials from a container credentials endpoint. ---- */

/* Only https, or http to loopback and the ECS / EKS Pod Identity agents. */
static bool container_uri_allowed(const char *uri) {
  if (strncmp(uri, "https://", 8) == 0)
    return true;
  if (strncmp(uri, "http://", 7) != 0)
    return false;
  const char *h = uri + 7;
  static const char *const hosts[] = {"127.", "localhost:", "localhost/", "[::1]", "169.254.170.2:",
                                      "169.254.170.2/", "169.254.170.23:", "169.254.170.23/"};
  for (size_t i = 0; i < sizeof hosts / sizeof hosts[0]; i++)
    if (strncmp(h, hosts[i], strlen(hosts[i])) == 0)
      return true;
  return strcmp(h, "localhost") == 0 || strcmp(h, "169.254.170.2") == 0 || strcmp(h, "169.254.170.23") == 0;
}

static size_t buf_write_cb(char *data, size_t size, size_t n, void *ud) {
  hl_buf *b = ud;
  return hl_buf_append(b, data, size * n) == 0 ? size * n : 0;
}

static int parse_iso8601(const char *s, time_t *out) {
  struct tm tm;
  memset(&tm, 0, sizeof tm);
  const char *rest = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
  if (!rest)
    return HL_EPARSE;
  *out = timegm(&tm);
  return 0;
}

static int fetch_container_creds(hl_s3 *s3, hl_s3_error *err) {
  if (!container_uri_allowed(s3->container_uri)) {
    snprintf(err->message, sizeof err->message, "container credentials URI must be https or a local agent");
    return HL_ECONFIG;
  }
  char auth[4200] = "";
  if (!empty(s3->container_auth_file)) {
    FILE *f = fopen(s3->container_auth_file, "r");
    if (!f) {
      snprintf(err->message, sizeof err->message, "cannot read %s", s3->container_auth_file);
      return -errno;
    }
    size_t n = fread(auth, 1, sizeof auth - 1, f);
    fclose(f);
    auth[n] = '\0';
    while (n && isspace((unsigned char)auth[n - 1]))
      auth[--n] = '\0';
  } else if (!empty(s3->container_auth)) {
    snprintf(auth, sizeof auth, "%s", s3->container_auth);
  }
  if (strpbrk(auth, "\r\n"))
    return HL_ECONFIG;
  int r = HL_EIO;
  hl_buf body;
  hl_buf_init(&body, 64 * 1024);
  struct curl_slist *hdrs = NULL;
  char hline[4300];
  CURL *c = curl_easy_init();
  json_t *doc = NULL;
  if (!c) {
    r = -ENOMEM;
    goto out;
  }
  if (*auth) {
    snprintf(hline, sizeof hline, "Authorization: %s", auth);
    if (!(hdrs = curl_slist_append(NULL, hline))) {
      r = -ENOMEM;
      goto out;
    }
  }
  for (int attempt = 0; attempt < 3; attempt++) {
    hl_buf_reset(&body);
    curl_easy_reset(c);
    curl_easy_setopt(c, CURLOPT_URL, s3->container_uri);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, buf_write_cb);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &body);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 10000L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    CURLcode cc = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    if (cc == CURLE_OK && status == 200)
      break;
    err->http_status = (int)status;
    snprintf(err->message, sizeof err->message, "container credentials: %s",
             cc != CURLE_OK ? curl_easy_strerror(cc) : "HTTP error");
    if (cc == CURLE_OK && status < 500) {
      r = HL_EHTTP;
      goto out;
    }
    if (attempt == 2)
      goto out;
    usleep(200000u << attempt);
  }
  doc = json_loadb(body.data ? body.data : "", body.len, 0, NULL);
  const char *ak = doc ? json_string_value(json_object_get(doc, "AccessKeyId")) : NULL;
  const char *sk = doc ? json_string_value(json_object_get(doc, "SecretAccessKey")) : NULL;
  const char *tok = doc ? json_string_value(json_object_get(doc, "Token")) : NULL;
  const char *exp = doc ? json_string_value(json_object_get(doc, "Expiration")) : NULL;
  time_t expires = 0;
  if (empty(ak) || empty(sk) || (exp && parse_iso8601(exp, &expires) < 0)) {
    snprintf(err->message, sizeof err->message, "container credentials: unreadable answer");
    r = HL_EPARSE;
    goto out;
  }
  s3_creds nc = {strdup(ak), strdup(sk), sdup(tok), expires};
  if (!nc.access_key || !nc.secret_key || !nc.token) {
    creds_clear(&nc);
    r = -ENOMEM;
    goto out;
  }
  creds_clear(&s3->creds);
  s3->creds = nc;
  r = 0;
out:
  json_decref(doc);
  if (c)
    curl_easy_cleanup(c);
  curl_slist_free_all(hdrs);
  OPENSSL_cleanse(auth, sizeof auth);
  hl_buf_free(&body);
  return r;
}

/* ---- Credentials from STS AssumeRoleWithWebIdentity (EKS IRSA). ---- */

typedef struct sts_creds {
  char ak[256], sk[256], token[4096], expiration[64];
  bool ok;
} sts_creds;

static int sts_start(void *ud, const xml_name *stack, int depth) {
  (void)ud;
  if (depth == 1 && !xml_is(&stack[0], "AssumeRoleWithWebIdentityResponse"))
    return HL_EPARSE;
  return 0;
}

static int sts_end(void *ud, const xml_name *stack, int depth, const char *text, size_t len) {
  sts_creds *c = ud;
  if (depth != 4 || !xml_is(&stack[1], "AssumeRoleWithWebIdentityResult") || !xml_is(&stack[2], "Credentials"))
    return 0;
  if (xml_is(&stack[3], "AccessKeyId"))
    return copy_text(c->ak, sizeof c->ak, text, len);
  if (xml_is(&stack[3], "SecretAccessKey"))
    return copy_text(c->sk, sizeof c->sk, text, len);
  if (xml_is(&stack[3], "SessionToken"))
    return copy_text(c->token, sizeof c->token, text, len);
  if (xml_is(&stack[3], "Expiration"))
    return copy_text(c->expiration, sizeof c->expiration, text, len);
  return 0;
}

static int form_kv(hl_buf *b, const char *name, const char *value) {
  int r = hl_buf_printf(b, "%s%s=", b->len ? "&" : "", name);
  return r < 0 ? r : hl_s3_uri_encode(b, value, strlen(value), false);
}

static int fetch_web_identity(hl_s3 *s3, hl_s3_error *err) {
  if (strncmp(s3->sts_endpoint, "https://", 8) != 0 && !container_uri_allowed(s3->sts_endpoint)) {
    snprintf(err->message, sizeof err->message, "STS endpoint must be https or local");
    return HL_ECONFIG;
  }
  int r;
  hl_buf form, body, tok;
  hl_buf_init(&form, 64 * 1024);
  hl_buf_init(&body, 256 * 1024);
  hl_buf_init(&tok, 16 * 1024);
  struct curl_slist *hdrs = NULL;
  CURL *c = NULL;
  sts_creds *cr = calloc(1, sizeof *cr);
  FILE *f = fopen(s3->web_token_file, "r");
  if (!cr || !f) {
    r = !cr ? -ENOMEM : -errno;
    snprintf(err->message, sizeof err->message, "cannot read the web identity token %s", s3->web_token_file);
    goto out;
  }
  char chunk[4096];
  size_t n;
  r = 0;
  while (r == 0 && (n = fread(chunk, 1, sizeof chunk, f)) > 0)
    r = hl_buf_append(&tok, chunk, n);
  while (r == 0 && tok.len && isspace((unsigned char)tok.data[tok.len - 1]))
    tok.data[--tok.len] = '\0';
  if (r < 0 || tok.len == 0) {
    r = r < 0 ? r : HL_EPARSE;
    snprintf(err->message, sizeof err->message, "empty or oversized web identity token");
    goto out;
  }
  if ((r = form_kv(&form, "Action", "AssumeRoleWithWebIdentity")) < 0 ||
      (r = form_kv(&form, "Version", "2011-06-15")) < 0 || (r = form_kv(&form, "RoleArn", s3->role_arn)) < 0 ||
      (r = form_kv(&form, "RoleSessionName", s3->role_session)) < 0 ||
      (r = form_kv(&form, "WebIdentityToken", tok.data)) < 0)
    goto out;
  r = -ENOMEM;
  if (!(c = curl_easy_init()) ||
      !(hdrs = curl_slist_append(NULL, "Content-Type: application/x-www-form-urlencoded; charset=utf-8")))
    goto out;
  r = HL_EIO;
  for (int attempt = 0; attempt < 3; attempt++) {
    hl_buf_reset(&body);
    curl_easy_reset(c);
    curl_easy_setopt(c, CURLOPT_URL, s3->sts_endpoint);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, form.data);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)form.len);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, buf_write_cb);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &body);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 15000L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    CURLcode cc = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    if (cc == CURLE_OK && status == 200) {
      r = 0;
      break;
    }
    err->http_status = (int)status;
    snprintf(err->message, sizeof err->message, "STS AssumeRoleWithWebIdentity: %s",
             cc != CURLE_OK ? curl_easy_strerror(cc) : "HTTP error");
    if (cc == CURLE_OK && status < 500) {
      r = HL_EHTTP;
      break;
    }
    if (attempt < 2)
      usleep(200000u << attempt);
  }
  if (r < 0)
    goto out;
  xml_handler h = {sts_start, sts_end, cr};
  time_t expires = 0;
  if (xml_parse(body.data ? body.data : "", body.len, &h) < 0 || !cr->ak[0] || !cr->sk[0] || !cr->token[0] ||
      (cr->expiration[0] && parse_iso8601(cr->expiration, &expires) < 0)) {
    snprintf(err->message, sizeof err->message, "STS: unreadable AssumeRoleWithWebIdentity answer");
    r = HL_EPARSE;
    goto out;
  }
  s3_creds nc = {strdup(cr->ak), strdup(cr->sk), strdup(cr->token), expires};
  if (!nc.access_key || !nc.secret_key || !nc.token) {
    creds_clear(&nc);
    r = -ENOMEM;
    goto out;
  }
  creds_clear(&s3->creds);
  s3->creds = nc;
  r = 0;
out:
  if (f)
    fclose(f);
  if (cr) {
    OPENSSL_cleanse(cr, sizeof *cr);
    free(cr);
  }
  if (c)
    curl_easy_cleanup(c);
  curl_slist_free_all(hdrs);
  if (tok.data)
    OPENSSL_cleanse(tok.data, tok.len);
  if (form.data)
    OPENSSL_cleanse(form.data, form.len);
  hl_buf_free(&tok);
  hl_buf_free(&form);
  hl_buf_free(&body);
  return r;
}

static bool refreshable(const hl_s3 *s3) { return s3->container_uri || s3->role_arn; }

/* Makes sure usable credentials are at hand (refreshing 5 minutes early). */
static int ensure_creds(hl_s3 *s3, bool force, hl_s3_error *err) {
  if (!refreshable(s3))
    return 0;
  if (!force && s3->creds.access_key && (s3->creds.expires == 0 || time(NULL) + 300 < s3->creds.expires))
    return 0;
  return s3->container_uri ? fetch_container_creds(s3, err) : fetch_web_identity(s3, err);
}

/* ---- The request engine. ---- */

typedef struct s3_req {
  const char *method;
  const char *bucket;
  const char *key;           /* NULL: the bucket itself */
  hl_s3_kv query[S3_MAX_QUERY];
  size_t nquery;
  long long first, last;     /* range; first < 0: none */
  const char *content_type;
  /* Request body. */
  const char *body;
  int body_fd;               /* >= 0: stream from this file */
  long long body_len;
  const char *payload_hash;
  bool upload;
  /* Answer. */
  hl_s3_write_cb cb;
  void *ud;
  hl_buf *out;               /* buffered body of a 2xx answer */
  hl_s3_object_info *info;
  char *etag_out;
} s3_req;

typedef struct s3_attempt {
  hl_s3 *s3;
  s3_req *r;
  long long body_off;
  long long delivered;       /* bytes handed to cb in this attempt */
  bool stopped, limited, bad_resume;
  bool resuming;
  long long expect_start;    /* for a resumed GET: the first byte asked for */
  hl_buf errbody;
  char etag[128], last_modified[64], content_type[128], request_id[80], date[64];
  long long content_length, total;
  long retry_after;
  bool got_range;
  long long range_start;
} s3_attempt;

static size_t read_cb(char *dst, size_t size, size_t n, void *ud) {
  s3_attempt *a = ud;
  s3_req *r = a->r;
  size_t want = size * n;
  long long left = r->body_len - a->body_off;
  if (left <= 0)
    return 0;
  if ((long long)want > left)
    want = (size_t)left;
  if (r->body_fd >= 0) {
    ssize_t got = pread(r->body_fd, dst, want, a->body_off);
    if (got <= 0)
      return CURL_READFUNC_ABORT;
    want = (size_t)got;
  } else {
    memcpy(dst, r->body + a->body_off, want);
  }
  a->body_off += (long long)want;
  return want;
}

static bool status_ok(long st) { return st >= 200 && st < 300; }

static size_t write_cb(char *data, size_t size, size_t n, void *ud) {
  s3_attempt *a = ud;
  size_t len = size * n;
  long st = 0;
  curl_easy_getinfo(a->s3->curl, CURLINFO_RESPONSE_CODE, &st);
  if (!status_ok(st)) {
    size_t room = S3_MAX_ERROR_BODY > a->errbody.len ? S3_MAX_ERROR_BODY - a->errbody.len : 0;
    if (room)
      hl_buf_append(&a->errbody, data, len < room ? len : room);
    return len;
  }
  if (a->resuming && (st != 206 || !a->got_range || a->range_start != a->expect_start)) {
    a->bad_resume = true;
    return 0;
  }
  if (a->r->cb) {
    if (a->r->cb(a->r->ud, data, len) != 0) {
      a->stopped = true;
      return 0;
    }
  } else if (a->r->out) {
    if (hl_buf_append(a->r->out, data, len) < 0) {
      a->limited = true;
      return 0;
    }
  }
  a->delivered += (long long)len;
  return len;
}

static void header_value(char *dst, size_t cap, const char *v, size_t n) {
  while (n && (v[n - 1] == '\r' || v[n - 1] == '\n' || v[n - 1] == ' '))
    n--;
  while (n && *v == ' ') {
    v++;
    n--;
  }
  copy_trunc(dst, cap, v, n);
}

static size_t header_cb(char *data, size_t size, size_t n, void *ud) {
  s3_attempt *a = ud;
  size_t len = size * n;
  if (len >= 5 && memcmp(data, "HTTP/", 5) == 0) {
    /* A new answer (after a 100 Continue): forget the previous headers. */
    a->etag[0] = a->last_modified[0] = a->content_type[0] = a->request_id[0] = a->date[0] = '\0';
    a->content_length = a->total = -1;
    a->retry_after = 0;
    a->got_range = false;
    return len;
  }
  const char *colon = memchr(data, ':', len);
  if (!colon)
    return len;
  size_t nl = (size_t)(colon - data);
  const char *v = colon + 1;
  size_t vl = len - nl - 1;
  char tmp[128];
#define IS(name) (nl == strlen(name) && strncasecmp(data, name, nl) == 0)
  if (IS("ETag")) {
    header_value(a->etag, sizeof a->etag, v, vl);
  } else if (IS("Last-Modified")) {
    header_value(a->last_modified, sizeof a->last_modified, v, vl);
  } else if (IS("Content-Type")) {
    header_value(a->content_type, sizeof a->content_type, v, vl);
  } else if (IS("x-amz-request-id")) {
    header_value(a->request_id, sizeof a->request_id, v, vl);
  } else if (IS("Date")) {
    header_value(a->date, sizeof a->date, v, vl);
  } else if (IS("Content-Length")) {
    header_value(tmp, sizeof tmp, v, vl);
    if (parse_size(tmp, strlen(tmp), &a->content_length) < 0)
      a->content_length = -1;
  } else if (IS("Retry-After")) {
    header_value(tmp, sizeof tmp, v, vl);
    long long s;
    if (parse_size(tmp, strlen(tmp), &s) == 0 && s < 3600)
      a->retry_after = (long)s;
  } else if (IS("Content-Range")) {
    /* bytes first-last/total */
    header_value(tmp, sizeof tmp, v, vl);
    long long f, l, t;
    if (sscanf(tmp, "bytes %lld-%lld/%lld", &f, &l, &t) == 3 && f >= 0 && l >= f && t > l) {
      a->got_range = true;
      a->range_start = f;
      a->total = t;
    }
  }
#undef IS
  return len;
}

static bool valid_bucket(const char *b, bool vhost) {
  size_t n = b ? strlen(b) : 0;
  if (n < 1 || n > 255)
    return false;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)b[i];
    if (vhost ? !(islower(c) || isdigit(c) || c == '.' || c == '-')
              : !(isalnum(c) || c == '.' || c == '-' || c == '_'))
      return false;
  }
  return true;
}

static int add_header(struct curl_slist **l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int add_header(struct curl_slist **l, const char *fmt, ...) {
  char line[8192];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  if (n < 0 || (size_t)n >= sizeof line || strpbrk(line, "\r\n"))
    return -EINVAL;
  struct curl_slist *nl = curl_slist_append(*l, line);
  if (!nl)
    return -ENOMEM;
  *l = nl;
  return 0;
}

/* The host to send and the unencoded path of a request. */
static int target(hl_s3 *s3, const char *bucket, const char *key, char *host, size_t hcap, hl_buf *path) {
  if (!valid_bucket(bucket, !s3->path_style))
    return -EINVAL;
  if (key && (!*key || strlen(key) > HL_S3_MAX_KEY))
    return -EINVAL;
  int r;
  if (s3->path_style) {
    snprintf(host, hcap, "%s", s3->host);
    r = hl_buf_printf(path, "/%s%s%s", bucket, key ? "/" : "", key ? key : "");
  } else {
    if ((size_t)snprintf(host, hcap, "%s.%s", bucket, s3->host) >= hcap)
      return -EINVAL;
    r = hl_buf_printf(path, "/%s", key ? key : "");
  }
  return r;
}

/* Builds, signs and sends one attempt. Returns the curl result. */
static CURLcode perform(hl_s3 *s3, s3_req *r, s3_attempt *a, long long resume_from, const char *if_match,
                        int *err) {
  CURL *c = s3->curl;
  char host[600], amz[17], day[9], range[64] = "";
  hl_buf path, url, auth;
  hl_buf_init(&path, 4096);
  hl_buf_init(&url, 16384);
  hl_buf_init(&auth, 4096);
  struct curl_slist *hdrs = NULL;
  CURLcode cc = CURLE_FAILED_INIT;
  *err = target(s3, r->bucket, r->key, host, sizeof host, &path);
  if (*err < 0)
    goto out;
  time_t now = time(NULL) + s3->clock_skew;
  amz_dates(now, amz, day);
  long long first = r->first;
  if (resume_from > 0)
    first = (first < 0 ? 0 : first) + resume_from;
  if (first >= 0) {
    if (r->last >= 0)
      snprintf(range, sizeof range, "bytes=%lld-%lld", first, r->last);
    else
      snprintf(range, sizeof range, "bytes=%lld-", first);
  }
  hl_s3_kv h[S3_MAX_HEADERS];
  size_t nh = 0;
  h[nh++] = (hl_s3_kv){"host", host};
  h[nh++] = (hl_s3_kv){"x-amz-content-sha256", r->payload_hash};
  h[nh++] = (hl_s3_kv){"x-amz-date", amz};
  if (*range)
    h[nh++] = (hl_s3_kv){"range", range};
  if (if_match && *if_match)
    h[nh++] = (hl_s3_kv){"if-match", if_match};
  if (r->content_type && *r->content_type)
    h[nh++] = (hl_s3_kv){"content-type", r->content_type};
  if (!empty(s3->creds.token))
    h[nh++] = (hl_s3_kv){"x-amz-security-token", s3->creds.token};
  hl_s3_sigv4 sv = {.method = r->method, .path = path.data, .query = r->query, .nquery = r->nquery,
                    .headers = h, .nheaders = nh, .payload_hash = r->payload_hash, .region = s3->region,
                    .service = "s3", .access_key = s3->creds.access_key, .secret_key = s3->creds.secret_key,
                    .now = now};
  if ((*err = hl_s3_sigv4_sign(&sv, &auth, NULL)) < 0)
    goto out;
  if ((*err = hl_buf_printf(&url, "%s://%s", s3->scheme, host)) < 0 ||
      (*err = hl_s3_uri_encode(&url, path.data, path.len, true)) < 0)
    goto out;
  if (r->nquery) {
    if ((*err = hl_buf_putc(&url, '?')) < 0 || (*err = canonical_query(r->query, r->nquery, NULL, 0, &url)) < 0)
      goto out;
  }
  for (size_t i = 0; i < nh; i++) {
    if ((*err = add_header(&hdrs, "%s: %s", h[i].name, h[i].value)) < 0)
      goto out;
  }
  if ((*err = add_header(&hdrs, "Authorization: %s", auth.data)) < 0)
    goto out;
  if (!r->content_type && (*err = add_header(&hdrs, "Content-Type:")) < 0)
    goto out;

  curl_easy_reset(c);
  curl_easy_setopt(c, CURLOPT_URL, url.data);
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, s3->timeout_ms);
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, (s3->timeout_ms + 999) / 1000);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, write_cb);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, a);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, header_cb);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, a);
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  if (strcmp(r->method, "HEAD") == 0) {
    curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
  } else if (r->upload) {
    curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(c, CURLOPT_READFUNCTION, read_cb);
    curl_easy_setopt(c, CURLOPT_READDATA, a);
    curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, (curl_off_t)r->body_len);
  } else if (strcmp(r->method, "GET") != 0) {
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, r->method);
  }
  a->resuming = resume_from > 0;
  a->expect_start = first;
  a->content_length = a->total = -1;
  cc = curl_easy_perform(c);
out:
  curl_slist_free_all(hdrs);
  hl_buf_free(&path);
  hl_buf_free(&url);
  OPENSSL_cleanse(auth.data ? auth.data : (char *)"", auth.len);
  hl_buf_free(&auth);
  return cc;
}

static bool curl_retriable(CURLcode cc) {
  switch (cc) {
  case CURLE_COULDNT_RESOLVE_HOST:
  case CURLE_COULDNT_CONNECT:
  case CURLE_OPERATION_TIMEDOUT:
  case CURLE_SEND_ERROR:
  case CURLE_RECV_ERROR:
  case CURLE_GOT_NOTHING:
  case CURLE_PARTIAL_FILE:
  case CURLE_HTTP2:
  case CURLE_HTTP2_STREAM:
  case CURLE_SSL_CONNECT_ERROR:
  case CURLE_WEIRD_SERVER_REPLY:
    return true;
  default:
    return false;
  }
}

static uint64_t next_rand(hl_s3 *s3) {
  uint64_t x = s3->rng;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  s3->rng = x;
  return x;
}

/* Full jitter: a random wait in [0, min(max, base * 2^n)], at least Retry-After. */
static void backoff(hl_s3 *s3, int n, long retry_after_s) {
  long long cap = s3->retry_base_ms;
  for (int i = 0; i < n && cap < s3->retry_max_ms; i++)
    cap *= 2;
  if (cap > s3->retry_max_ms)
    cap = s3->retry_max_ms;
  long long ms = (long long)(next_rand(s3) % (uint64_t)(cap + 1));
  if (retry_after_s * 1000 > ms)
    ms = retry_after_s * 1000 < s3->retry_max_ms ? retry_after_s * 1000 : s3->retry_max_ms;
  struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
  }
}

static void fill_info(const s3_attempt *a, long status, hl_s3_object_info *info) {
  if (!info)
    return;
  memset(info, 0, sizeof *info);
  info->content_length = a->content_length;
  info->size = status == 206 && a->total >= 0 ? a->total : a->content_length;
  snprintf(info->etag, sizeof info->etag, "%s", a->etag);
  snprintf(info->last_modified, sizeof info->last_modified, "%s", a->last_modified);
  snprintf(info->content_type, sizeof info->content_type, "%s", a->content_type);
}

/* Runs a request with retries; see docs/s3.md for the policy. */
static int run(hl_s3 *s3, s3_req *r, hl_s3_error *errp) {
  hl_s3_error scratch;
  hl_s3_error *err = errp ? errp : &scratch;
  memset(err, 0, sizeof *err);
  s3_attempt a;
  memset(&a, 0, sizeof a);
  hl_buf_init(&a.errbody, S3_MAX_ERROR_BODY + 1);
  a.s3 = s3;
  a.r = r;
  long long resumed = 0;          /* bytes of a GET already handed over */
  char pin_etag[128] = "";        /* the ETag a resumed GET must match */
  bool refreshed = false, skew_fixed = false;
  int rc = HL_EIO;
  for (int attempt = 0;; attempt++) {
    int e = ensure_creds(s3, false, err);
    if (e < 0) {
      rc = e;
      break;
    }
    a.body_off = 0;
    a.delivered = 0;
    a.stopped = a.limited = a.bad_resume = false;
    hl_buf_reset(&a.errbody);
    if (r->out)
      hl_buf_reset(r->out);
    err->attempts++;
    CURLcode cc = perform(s3, r, &a, resumed, pin_etag, &e);
    if (e < 0) {
      rc = e;
      break;
    }
    long status = 0;
    curl_easy_getinfo(s3->curl, CURLINFO_RESPONSE_CODE, &status);
    bool streaming = r->cb != NULL && status_ok(status);
    if (streaming && a.delivered > 0 && !pin_etag[0])
      snprintf(pin_etag, sizeof pin_etag, "%s", a.etag);
    /* A resumed GET keeps the metadata of its first answer. */
    if (status_ok(status) && resumed == 0)
      fill_info(&a, status, r->info);
    resumed += streaming ? a.delivered : 0;
    bool retry = false;
    err->http_status = (int)status;
    if (a.stopped) {
      rc = -ECANCELED;
      snprintf(err->message, sizeof err->message, "stopped by the callback");
      break;
    }
    if (a.limited) {
      rc = HL_ELIMIT;
      snprintf(err->message, sizeof err->message, "answer larger than %zu bytes", s3->max_response);
      break;
    }
    if (a.bad_resume) {
      rc = HL_EIO;
      snprintf(err->message, sizeof err->message, "server ignored the resume range");
      break;
    }
    if (cc != CURLE_OK) {
      snprintf(err->message, sizeof err->message, "%s", curl_easy_strerror(cc));
      err->http_status = 0;
      rc = cc == CURLE_OPERATION_TIMEDOUT ? HL_ETIMEOUT : HL_EIO;
      if (cc == CURLE_ABORTED_BY_CALLBACK || cc == CURLE_READ_ERROR)
        rc = HL_EIO;
      /* A stream that broke after its last byte is complete. */
      if (streaming && r->info && r->info->size >= 0 && r->first < 0 && resumed == r->info->size) {
        rc = 0;
        err->message[0] = '\0';
        break;
      }
      retry = curl_retriable(cc);
    } else if (status_ok(status)) {
      rc = 0;
      if (r->etag_out)
        snprintf(r->etag_out, 128, "%s", a.etag);
      break;
    } else {
      if (a.errbody.len)
        hl_s3_parse_error(a.errbody.data, a.errbody.len, err);
      if (!err->code[0] && strcmp(r->method, "HEAD") == 0)
        snprintf(err->code, sizeof err->code, "%s", status == 404 ? "NotFound" : "HttpError");
      if (!err->request_id[0])
        snprintf(err->request_id, sizeof err->request_id, "%s", a.request_id);
      rc = status == 404 ? HL_ENOTFOUND : HL_EHTTP;
      if (status >= 500 || status == 429 || strcmp(err->code, "SlowDown") == 0 ||
          (status == 400 && strcmp(err->code, "RequestTimeout") == 0)) {
        retry = true;
      } else if ((strcmp(err->code, "ExpiredToken") == 0 || strcmp(err->code, "InvalidToken") == 0) &&
                 refreshable(s3) && !refreshed) {
        refreshed = true;
        if (ensure_creds(s3, true, err) == 0) {
          attempt--; /* A refresh is not a retry of the same failure. */
          continue;
        }
      } else if (strcmp(err->code, "RequestTimeTooSkewed") == 0 && !skew_fixed && a.date[0]) {
        time_t server = curl_getdate(a.date, NULL);
        if (server > 0) {
          skew_fixed = true;
          s3->clock_skew = (long)(server - time(NULL));
          attempt--;
          continue;
        }
      }
    }
    if (!retry || attempt >= s3->max_retries)
      break;
    backoff(s3, attempt, a.retry_after);
    memset(err->code, 0, sizeof err->code);
    memset(err->message, 0, sizeof err->message);
    memset(err->request_id, 0, sizeof err->request_id);
  }
  if (rc == 0) {
    int attempts = err->attempts;
    memset(err, 0, sizeof *err);
    err->attempts = attempts;
  } else if (!err->message[0]) {
    snprintf(err->message, sizeof err->message, "%s", hl_strerror(rc));
  }
  hl_buf_free(&a.errbody);
  return rc;
}

static void req_init(s3_req *r, const char *method, const char *bucket, const char *key) {
  memset(r, 0, sizeof *r);
  r->method = method;
  r->bucket = bucket;
  r->key = key;
  r->first = r->last = -1;
  r->body_fd = -1;
  r->payload_hash = S3_EMPTY_SHA256;
}

int hl_s3_get(hl_s3 *s3, const char *bucket, const char *key, long long first, long long last,
              hl_s3_write_cb cb, void *ud, hl_s3_object_info *info, hl_s3_error *err) {
  if (!s3 || !key || !cb || (first < 0 && last >= 0) || (last >= 0 && last < first))
    return -EINVAL;
  s3_req r;
  hl_s3_object_info tmp;
  req_init(&r, "GET", bucket, key);
  r.first = first;
  r.last = first >= 0 ? last : -1;
  r.cb = cb;
  r.ud = ud;
  r.info = info ? info : &tmp;
  return run(s3, &r, err);
}

int hl_s3_head(hl_s3 *s3, const char *bucket, const char *key, hl_s3_object_info *info, hl_s3_error *err) {
  if (!s3 || !key)
    return -EINVAL;
  s3_req r;
  req_init(&r, "HEAD", bucket, key);
  r.info = info;
  return run(s3, &r, err);
}

int hl_s3_delete(hl_s3 *s3, const char *bucket, const char *key, hl_s3_error *err) {
  if (!s3 || !key)
    return -EINVAL;
  s3_req r;
  req_init(&r, "DELETE", bucket, key);
  return run(s3, &r, err);
}

int hl_s3_put(hl_s3 *s3, const char *bucket, const char *key, const void *data, size_t len,
              const char *content_type, char etag[128], hl_s3_error *err) {
  if (!s3 || !key || (!data && len) || (long long)len > HL_S3_MAX_PUT)
    return -EINVAL;
  char hash[65];
  hl_s3_sha256_hex(data ? data : "", len, hash);
  s3_req r;
  req_init(&r, "PUT", bucket, key);
  r.upload = true;
  r.body = data ? data : "";
  r.body_len = (long long)len;
  r.payload_hash = hash;
  r.content_type = content_type;
  r.etag_out = etag;
  return run(s3, &r, err);
}

int hl_s3_put_file(hl_s3 *s3, const char *bucket, const char *key, const char *path,
                   const char *content_type, char etag[128], hl_s3_error *err) {
  if (!s3 || !key || !path)
    return -EINVAL;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return -errno;
  int rc;
  struct stat stt;
  EVP_MD_CTX *md = NULL;
  char *chunk = malloc(1 << 16);
  if (!chunk) {
    rc = -ENOMEM;
    goto out;
  }
  if (fstat(fd, &stt) < 0) {
    rc = -errno;
    goto out;
  }
  if (!S_ISREG(stt.st_mode)) {
    rc = -EINVAL;
    goto out;
  }
  if (stt.st_size > HL_S3_MAX_PUT) {
    rc = HL_ELIMIT;
    goto out;
  }
  /* First pass: the payload hash, streamed. */
  md = EVP_MD_CTX_new();
  if (!md || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
    rc = -ENOMEM;
    goto out;
  }
  long long off = 0;
  while (off < stt.st_size) {
    ssize_t got = pread(fd, chunk, 1 << 16, off);
    if (got < 0 && errno == EINTR)
      continue;
    if (got <= 0) {
      rc = got < 0 ? -errno : HL_EIO;
      goto out;
    }
    EVP_DigestUpdate(md, chunk, (size_t)got);
    off += got;
  }
  unsigned char dig[32];
  unsigned int dl = 32;
  EVP_DigestFinal_ex(md, dig, &dl);
  char hash[65];
  hex_encode(dig, 32, hash);
  s3_req r;
  req_init(&r, "PUT", bucket, key);
  r.upload = true;
  r.body_fd = fd;
  r.body_len = stt.st_size;
  r.payload_hash = hash;
  r.content_type = content_type;
  r.etag_out = etag;
  rc = run(s3, &r, err);
out:
  EVP_MD_CTX_free(md);
  free(chunk);
  close(fd);
  return rc;
}

int hl_s3_list(hl_s3 *s3, const char *bucket, const hl_s3_list_opts *opts, hl_s3_list_page *page,
               hl_s3_error *err) {
  if (!s3 || !page)
    return -EINVAL;
  hl_s3_list_opts none = {0};
  if (!opts)
    opts = &none;
  if (opts->max_keys < 0 || opts->max_keys > 1000)
    return -EINVAL;
  hl_s3_list_page_clear(page);
  s3_req r;
  req_init(&r, "GET", bucket, NULL);
  char mk[16];
  r.query[r.nquery++] = (hl_s3_kv){"list-type", "2"};
  if (opts->prefix && *opts->prefix)
    r.query[r.nquery++] = (hl_s3_kv){"prefix", opts->prefix};
  if (opts->delimiter && *opts->delimiter)
    r.query[r.nquery++] = (hl_s3_kv){"delimiter", opts->delimiter};
  if (opts->continuation_token && *opts->continuation_token)
    r.query[r.nquery++] = (hl_s3_kv){"continuation-token", opts->continuation_token};
  if (opts->start_after && *opts->start_after)
    r.query[r.nquery++] = (hl_s3_kv){"start-after", opts->start_after};
  if (opts->max_keys > 0) {
    snprintf(mk, sizeof mk, "%d", opts->max_keys);
    r.query[r.nquery++] = (hl_s3_kv){"max-keys", mk};
  }
  hl_buf body;
  hl_buf_init(&body, s3->max_response);
  r.out = &body;
  int rc = run(s3, &r, err);
  if (rc == 0) {
    rc = hl_s3_parse_list(body.data ? body.data : "", body.len, page);
    if (rc < 0 && err)
      snprintf(err->message, sizeof err->message, "unreadable ListObjectsV2 answer");
  }
  hl_buf_free(&body);
  return rc;
}

int hl_s3_list_each(hl_s3 *s3, const char *bucket, const char *prefix, int page_size, hl_s3_object_cb cb,
                    void *ud, hl_s3_error *err) {
  if (!s3 || !cb || page_size < 0 || page_size > 1000)
    return -EINVAL;
  hl_s3_list_page page = {0};
  char *token = NULL;
  int rc;
  for (;;) {
    hl_s3_list_opts o = {.prefix = prefix, .continuation_token = token, .max_keys = page_size};
    rc = hl_s3_list(s3, bucket, &o, &page, err);
    if (rc < 0)
      break;
    for (size_t i = 0; i < page.count && rc == 0; i++)
      if (cb(ud, &page.objects[i]) != 0)
        rc = -ECANCELED;
    if (rc < 0 || !page.truncated)
      break;
    /* A server that repeats its token would loop forever. */
    if (token && strcmp(token, page.next_token) == 0) {
      rc = HL_EPARSE;
      break;
    }
    free(token);
    token = page.next_token;
    page.next_token = NULL;
  }
  free(token);
  hl_s3_list_page_clear(&page);
  return rc;
}

int hl_s3_presign_at(hl_s3 *s3, const char *method, const char *bucket, const char *key, long expires,
                     time_t now, char **url) {
  if (!s3 || !method || !key || !url || (strcmp(method, "GET") != 0 && strcmp(method, "PUT") != 0))
    return -EINVAL;
  hl_s3_error e = {0};
  int rc = ensure_creds(s3, false, &e);
  if (rc < 0)
    return rc;
  char host[600];
  hl_buf path, q, u;
  hl_buf_init(&path, 4096);
  hl_buf_init(&q, 16384);
  hl_buf_init(&u, 32768);
  if ((rc = target(s3, bucket, key, host, sizeof host, &path)) < 0)
    goto out;
  hl_s3_kv h[1] = {{"host", host}};
  hl_s3_sigv4 sv = {.method = method, .path = path.data, .headers = h, .nheaders = 1,
                    .payload_hash = "UNSIGNED-PAYLOAD", .region = s3->region, .service = "s3",
                    .access_key = s3->creds.access_key, .secret_key = s3->creds.secret_key, .now = now};
  if ((rc = hl_s3_sigv4_presign(&sv, expires, s3->creds.token, &q)) < 0)
    goto out;
  if ((rc = hl_buf_printf(&u, "%s://%s", s3->scheme, host)) < 0 ||
      (rc = hl_s3_uri_encode(&u, path.data, path.len, true)) < 0 || (rc = hl_buf_printf(&u, "?%s", q.data)) < 0)
    goto out;
  *url = hl_buf_steal(&u, NULL);
out:
  hl_buf_free(&path);
  hl_buf_free(&q);
  hl_buf_free(&u);
  return rc;
}

int hl_s3_presign(hl_s3 *s3, const char *method, const char *bucket, const char *key, long expires,
                  char **url) {
  return hl_s3_presign_at(s3, method, bucket, key, expires, time(NULL) + (s3 ? s3->clock_skew : 0), url);
}

int hl_s3_get_credentials(hl_s3 *s3, hl_s3_credentials *out, hl_s3_error *errp) {
  hl_s3_error scratch;
  hl_s3_error *err = errp ? errp : &scratch;
  memset(err, 0, sizeof *err);
  if (!s3 || !out)
    return -EINVAL;
  int r = ensure_creds(s3, false, err);
  if (r < 0)
    return r;
  const s3_creds *c = &s3->creds;
  if (!c->access_key || !c->secret_key)
    return HL_ECONFIG;
  if (strlen(c->access_key) >= sizeof out->access_key || strlen(c->secret_key) >= sizeof out->secret_key ||
      (c->token && strlen(c->token) >= sizeof out->session_token) || strlen(s3->region) >= sizeof out->region)
    return HL_ELIMIT;
  snprintf(out->access_key, sizeof out->access_key, "%s", c->access_key);
  snprintf(out->secret_key, sizeof out->secret_key, "%s", c->secret_key);
  snprintf(out->session_token, sizeof out->session_token, "%s", c->token ? c->token : "");
  snprintf(out->region, sizeof out->region, "%s", s3->region);
  return 0;
}

const char *hl_s3_error_str(const hl_s3_error *err, char *out, size_t outlen) {
  if (!err || !out || outlen == 0)
    return "";
  if (err->http_status)
    snprintf(out, outlen, "HTTP %d %s: %s (request id %s, %d attempts)", err->http_status,
             err->code[0] ? err->code : "-", err->message, err->request_id[0] ? err->request_id : "-",
             err->attempts);
  else
    snprintf(out, outlen, "%s (%d attempts)", err->message[0] ? err->message : "no error", err->attempts);
  return out;
}
