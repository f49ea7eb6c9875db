/* hl_sb: see sb.h. */
#include "sb.h"

#include <errno.h>

#include "hl/error.h"

int hl_sb__grow(hl_sb *b, size_t n) {
  if (b->err) return b->err;
  size_t need = b->len + n;
  if (need > HL_SB_MAX) {
    b->err = HL_ELIMIT;
    return b->err;
  }
  size_t cap = b->cap ? b->cap : 4096;
  while (cap < need) cap *= 2;
  char *d = realloc(b->d, cap);
  if (!d) {
    b->err = -ENOMEM;
    return b->err;
  }
  b->d = d;
  b->cap = cap;
  return 0;
}

void hl_sb_free(hl_sb *b) {
  free(b->d);
  b->d = NULL;
  b->len = b->cap = 0;
  b->err = 0;
}

void hl_sb_json_str(hl_sb *b, const char *s) {
  static const char hex[] = "0123456789abcdef";
  size_t n = strlen(s);
  if (!hl_sb_need(b, n * 6 + 2)) return;
  char *o = b->d + b->len;
  *o++ = '"';
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '"' || c == '\\') {
      *o++ = '\\';
      *o++ = (char)c;
    } else if (c < 0x20) {
      *o++ = '\\';
      *o++ = 'u';
      *o++ = '0';
      *o++ = '0';
      *o++ = hex[c >> 4];
      *o++ = hex[c & 15];
    } else {
      *o++ = (char)c;
    }
  }
  *o++ = '"';
  b->len = (size_t)(o - b->d);
}

void hl_sb_csv_str(hl_sb *b, const char *s) {
  if (!strpbrk(s, ",\"\r\n")) {
    hl_sb_cstr(b, s);
    return;
  }
  hl_sb_putc(b, '"');
  for (; *s; s++) {
    if (*s == '"') hl_sb_putc(b, '"');
    hl_sb_putc(b, *s);
  }
  hl_sb_putc(b, '"');
}

void hl_sb_i64(hl_sb *b, int64_t v) {
  char tmp[24];
  int n = 0;
  uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
  do {
    tmp[n++] = (char)('0' + u % 10);
    u /= 10;
  } while (u);
  if (!hl_sb_need(b, (size_t)n + 1)) return;
  if (v < 0) b->d[b->len++] = '-';
  while (n) b->d[b->len++] = tmp[--n];
}

void hl_sb_fixed(hl_sb *b, int64_t v, int dec) {
  if (dec <= 0) {
    hl_sb_i64(b, v);
    return;
  }
  int64_t m = 1;
  for (int i = 0; i < dec; i++) m *= 10;
  uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
  if (v < 0) hl_sb_putc(b, '-');
  hl_sb_i64(b, (int64_t)(u / (uint64_t)m));
  hl_sb_putc(b, '.');
  uint64_t f = u % (uint64_t)m;
  char tmp[8];
  for (int i = dec - 1; i >= 0; i--) {
    tmp[i] = (char)('0' + f % 10);
    f /= 10;
  }
  hl_sb_put(b, tmp, (size_t)dec);
}

void hl_civil(int64_t days, int *y, int *m, int *d) {
  int64_t z = days + 719468;
  int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  int64_t doe = z - era * 146097;
  int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  int64_t mp = (5 * doy + 2) / 153;
  *d = (int)(doy - (153 * mp + 2) / 5 + 1);
  *m = (int)(mp < 10 ? mp + 3 : mp - 9);
  *y = (int)(yoe + era * 400 + (*m <= 2));
}

int64_t hl_days_from_civil(int y, int m, int d) {
  y -= m <= 2;
  int64_t era = (y >= 0 ? y : y - 399) / 400;
  int64_t yoe = y - era * 400;
  int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

static inline void put2(char *o, int v) {
  o[0] = (char)('0' + v / 10);
  o[1] = (char)('0' + v % 10);
}

static void put_date(char *o, int64_t t) {
  int64_t days = t >= 0 ? t / 86400 : -((-t + 86399) / 86400);
  int y, m, d;
  hl_civil(days, &y, &m, &d);
  o[0] = (char)('0' + (y / 1000) % 10);
  o[1] = (char)('0' + (y / 100) % 10);
  o[2] = (char)('0' + (y / 10) % 10);
  o[3] = (char)('0' + y % 10);
  o[4] = '-';
  put2(o + 5, m);
  o[7] = '-';
  put2(o + 8, d);
}

static void put_time(char *o, int64_t t) {
  int64_t s = t % 86400;
  if (s < 0) s += 86400;
  put2(o, (int)(s / 3600));
  o[2] = ':';
  put2(o + 3, (int)(s / 60 % 60));
  o[5] = ':';
  put2(o + 6, (int)(s % 60));
}

void hl_sb_date(hl_sb *b, int64_t t) {
  if (!hl_sb_need(b, 10)) return;
  put_date(b->d + b->len, t);
  b->len += 10;
}

void hl_sb_fhir_dt(hl_sb *b, int64_t t) {
  if (!hl_sb_need(b, 20)) return;
  char *o = b->d + b->len;
  put_date(o, t);
  o[10] = 'T';
  put_time(o + 11, t);
  o[19] = 'Z';
  b->len += 20;
}

void hl_sb_omop_dt(hl_sb *b, int64_t t) {
  if (!hl_sb_need(b, 19)) return;
  char *o = b->d + b->len;
  put_date(o, t);
  o[10] = ' ';
  put_time(o + 11, t);
  b->len += 19;
}
