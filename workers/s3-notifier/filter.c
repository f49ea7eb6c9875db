#include "filter.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "hl/error.h"
#include "hl/landing.h"

#define LIST_MAX 64
#define ENTRY_MAX 64

typedef struct strlist {
  char *items[LIST_MAX];
  size_t n;
} strlist;

struct hl_notifier_filter {
  char *prefix;
  strlist suffixes;
  strlist temp;
};

static void strlist_clear(strlist *l) {
  for (size_t i = 0; i < l->n; i++)
    free(l->items[i]);
  l->n = 0;
}

/* Splits a comma-separated list, trimming spaces; empty entries are skipped. */
static int strlist_parse(strlist *l, const char *csv) {
  const char *p = csv ? csv : "";
  while (*p) {
    size_t n = strcspn(p, ",");
    const char *s = p, *e = p + n;
    while (s < e && (*s == ' ' || *s == '\t'))
      s++;
    while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
      e--;
    if (e > s) {
      if (l->n == LIST_MAX || (size_t)(e - s) > ENTRY_MAX)
        return HL_ECONFIG;
      l->items[l->n] = strndup(s, (size_t)(e - s));
      if (!l->items[l->n])
        return -ENOMEM;
      l->n++;
    }
    p += n;
    if (*p == ',')
      p++;
  }
  return 0;
}

int hl_notifier_filter_new(const char *prefix, const char *suffixes, const char *temp_suffixes,
                           hl_notifier_filter **out) {
  hl_notifier_filter *f = calloc(1, sizeof *f);
  if (!f)
    return -ENOMEM;
  int r = -ENOMEM;
  f->prefix = strdup(prefix ? prefix : "");
  if (!f->prefix)
    goto fail;
  if ((r = strlist_parse(&f->suffixes, suffixes)) < 0 ||
      (r = strlist_parse(&f->temp, temp_suffixes)) < 0)
    goto fail;
  *out = f;
  return 0;
fail:
  hl_notifier_filter_free(f);
  return r;
}

hl_notifier_filter *hl_notifier_filter_free(hl_notifier_filter *f) {
  if (!f)
    return NULL;
  free(f->prefix);
  strlist_clear(&f->suffixes);
  strlist_clear(&f->temp);
  free(f);
  return NULL;
}

static bool ends_with_ci(const char *s, size_t n, const char *suffix) {
  size_t m = strlen(suffix);
  return m <= n && strncasecmp(s + n - m, suffix, m) == 0;
}

bool hl_notifier_filter_match(const hl_notifier_filter *f, const char *key) {
  if (strncmp(key, f->prefix, strlen(f->prefix)) != 0)
    return false;
  if (f->suffixes.n == 0)
    return true;
  size_t n = strlen(key);
  for (size_t i = 0; i < f->suffixes.n; i++)
    if (ends_with_ci(key, n, f->suffixes.items[i]))
      return true;
  return false;
}

bool hl_notifier_filter_is_temp(const hl_notifier_filter *f, const char *name) {
  if (name[0] == '.')
    return true;
  size_t n = strlen(name);
  for (size_t i = 0; i < f->temp.n; i++)
    if (ends_with_ci(name, n, f->temp.items[i]))
      return true;
  return false;
}

int hl_notifier_org(const char *key, const char *default_org, char *org, size_t len) {
  int r = hl_landing_org_from_key(key, org, len);
  if (r != HL_ENOTFOUND)
    return r;
  if (!default_org || !*default_org)
    return HL_ENOTFOUND;
  if (strlen(default_org) >= len)
    return HL_EPARSE;
  memcpy(org, default_org, strlen(default_org) + 1);
  return 0;
}

static bool id_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == '-';
}

static void sha256_hex(const char *bucket, const char *key, const char *etag, char *hex,
                       size_t ndigits) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int mdlen = 0;
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  /* A failed allocation leaves an all-zero digest rather than crashing. */
  memset(md, 0, sizeof md);
  if (ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1) {
    EVP_DigestUpdate(ctx, bucket, strlen(bucket) + 1);
    EVP_DigestUpdate(ctx, key, strlen(key) + 1);
    EVP_DigestUpdate(ctx, etag, strlen(etag));
    EVP_DigestFinal_ex(ctx, md, &mdlen);
  }
  EVP_MD_CTX_free(ctx);
  static const char digits[] = "0123456789abcdef";
  for (size_t i = 0; i < ndigits; i++)
    hex[i] = digits[(md[i / 2] >> (i % 2 ? 0 : 4)) & 0xf];
  hex[ndigits] = '\0';
}

int hl_notifier_job(const char *bucket, const char *key, const char *etag, char *job, size_t len) {
  const char *p = key;
  while (p && *p) {
    if (strncmp(p, "job=", 4) == 0) {
      const char *v = p + 4;
      size_t n = strcspn(v, "/");
      /* The last segment is the file name, not a directory: "job=x.ndjson" is not a job. */
      if (v[n] != '/')
        break;
      if (n == 0 || n > HL_NOTIFIER_ID_MAX || n >= len)
        return HL_EPARSE;
      for (size_t i = 0; i < n; i++)
        if (!id_char(v[i]))
          return HL_EPARSE;
      memcpy(job, v, n);
      job[n] = '\0';
      return 0;
    }
    p = strchr(p, '/');
    if (p)
      p++;
  }
  if (len < 29)
    return HL_EPARSE;
  memcpy(job, "obj-", 4);
  sha256_hex(bucket, key, etag, job + 4, 24);
  return 0;
}

void hl_notifier_event_id(const char *bucket, const char *key, const char *etag,
                          char out[HL_NOTIFIER_EVENT_ID_LEN]) {
  sha256_hex(bucket, key, etag, out, 32);
}

int hl_notifier_file_uri(hl_buf *out, const char *abs_path) {
  int r = hl_buf_puts(out, "file://");
  static const char digits[] = "0123456789ABCDEF";
  for (const unsigned char *p = (const unsigned char *)abs_path; *p && r == 0; p++) {
    unsigned char c = *p;
    bool keep = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                strchr("-._~/!$&'()*+,;=:@", c) != NULL;
    if (keep) {
      r = hl_buf_putc(out, (char)c);
    } else {
      char esc[3] = {'%', digits[c >> 4], digits[c & 15]};
      r = hl_buf_append(out, esc, 3);
    }
  }
  return r;
}

static int hexval(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

int hl_notifier_url_decode(char *s, bool plus_is_space) {
  char *w = s;
  for (const char *p = s; *p; p++) {
    if (*p == '%') {
      int hi = hexval(p[1]), lo = hi < 0 ? -1 : hexval(p[2]);
      if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
        return HL_EPARSE;
      *w++ = (char)(hi * 16 + lo);
      p += 2;
    } else if (*p == '+' && plus_is_space) {
      *w++ = ' ';
    } else {
      *w++ = *p;
    }
  }
  *w = '\0';
  return (int)(w - s);
}

void hl_notifier_file_etag(int64_t size, int64_t mtime_ns, uint64_t ino, char *out, size_t len) {
  snprintf(out, len, "%llx-%llx-%llx", (unsigned long long)size, (unsigned long long)mtime_ns,
           (unsigned long long)ino);
}

void hl_notifier_time_rfc3339(int64_t t_ms, char *out, size_t len) {
  time_t secs = (time_t)(t_ms / 1000);
  struct tm tm;
  gmtime_r(&secs, &tm);
  char base[32];
  strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(out, len, "%s.%03dZ", base, (int)(t_ms % 1000));
}
