#include "hl/buf.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hl/error.h"

static size_t buf_max(const hl_buf *b) { return b->max ? b->max : SIZE_MAX / 2; }

void hl_buf_init(hl_buf *b, size_t max) {
  b->data = NULL;
  b->len = 0;
  b->cap = 0;
  b->max = max;
}

void hl_buf_free(hl_buf *b) {
  free(b->data);
  b->data = NULL;
  b->len = 0;
  b->cap = 0;
}

void hl_buf_reset(hl_buf *b) {
  b->len = 0;
  if (b->data)
    b->data[0] = '\0';
}

int hl_buf_reserve(hl_buf *b, size_t n) {
  if (n > buf_max(b) - b->len)
    return HL_ELIMIT;
  size_t need = b->len + n + 1;
  if (need <= b->cap)
    return 0;
  size_t cap = b->cap ? b->cap : 64;
  while (cap < need)
    cap *= 2;
  char *p = realloc(b->data, cap);
  if (!p)
    return -ENOMEM;
  b->data = p;
  b->cap = cap;
  return 0;
}

int hl_buf_append(hl_buf *b, const void *data, size_t n) {
  int r = hl_buf_reserve(b, n);
  if (r < 0)
    return r;
  if (n)
    memcpy(b->data + b->len, data, n);
  b->len += n;
  b->data[b->len] = '\0';
  return 0;
}

int hl_buf_puts(hl_buf *b, const char *s) { return hl_buf_append(b, s, strlen(s)); }

int hl_buf_putc(hl_buf *b, char c) { return hl_buf_append(b, &c, 1); }

int hl_buf_vprintf(hl_buf *b, const char *fmt, va_list ap) {
  va_list ap2;
  va_copy(ap2, ap);
  int n = vsnprintf(NULL, 0, fmt, ap2);
  va_end(ap2);
  if (n < 0)
    return -EINVAL;
  int r = hl_buf_reserve(b, (size_t)n);
  if (r < 0)
    return r;
  vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
  b->len += (size_t)n;
  return 0;
}

int hl_buf_printf(hl_buf *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int r = hl_buf_vprintf(b, fmt, ap);
  va_end(ap);
  return r;
}

/*
 * Runs of characters that need no escape are copied whole: the loader
 * escapes every token value it indexes, and a byte at a time (a call and a
 * capacity check each) was ~12% of its worker thread. Room for the common
 * case (nothing to escape) is reserved once; an escape grows it as needed.
 */
int hl_buf_json_escape(hl_buf *b, const char *s, size_t n) {
  static const char hex[] = "0123456789abcdef";
  size_t start = b->len;
  int r = hl_buf_reserve(b, n);
  size_t i = 0;
  while (!r && i < n) {
    size_t j = i;
    while (j < n && (unsigned char)s[j] >= 0x20 && s[j] != '"' && s[j] != '\\')
      j++;
    if (j > i)
      r = hl_buf_append(b, s + i, j - i);
    if (r || j == n)
      break;
    unsigned char c = (unsigned char)s[j];
    switch (c) {
    case '"': r = hl_buf_append(b, "\\\"", 2); break;
    case '\\': r = hl_buf_append(b, "\\\\", 2); break;
    case '\n': r = hl_buf_append(b, "\\n", 2); break;
    case '\r': r = hl_buf_append(b, "\\r", 2); break;
    case '\t': r = hl_buf_append(b, "\\t", 2); break;
    default: {
      char u[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
      r = hl_buf_append(b, u, 6);
    }
    }
    i = j + 1;
  }
  if (r < 0) {
    b->len = start;
    if (b->data)
      b->data[start] = '\0';
    return r;
  }
  return 0;
}

void hl_buf_consume(hl_buf *b, size_t n) {
  if (n >= b->len) {
    hl_buf_reset(b);
    return;
  }
  memmove(b->data, b->data + n, b->len - n);
  b->len -= n;
  b->data[b->len] = '\0';
}

char *hl_buf_steal(hl_buf *b, size_t *len) {
  char *p = b->data;
  if (len)
    *len = b->len;
  b->data = NULL;
  b->len = 0;
  b->cap = 0;
  return p;
}
