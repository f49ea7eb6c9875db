/*
 * hl_sb: the fast output buffer of hl-synth's writers.
 *
 * Resources are written straight into bytes (no document tree): literal
 * pieces, JSON-escaped strings, integers, fixed-point decimals and
 * timestamps. The buffer grows by doubling up to a hard maximum; a failed
 * growth sets err, and every later write is a no-op, so a writer checks err
 * once at the end.
 */
#ifndef HL_SYNTH_SB_H
#define HL_SYNTH_SB_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct hl_sb {
  char *d;
  size_t len, cap;
  int err; /* 0, or -ENOMEM / HL_ELIMIT after a failed growth */
} hl_sb;

#define HL_SB_MAX ((size_t)1 << 31)

int hl_sb__grow(hl_sb *b, size_t n);
void hl_sb_free(hl_sb *b);

static inline int hl_sb_need(hl_sb *b, size_t n) {
  if (b->cap - b->len >= n) return 1;
  return hl_sb__grow(b, n) == 0;
}

static inline void hl_sb_put(hl_sb *b, const void *s, size_t n) {
  if (!hl_sb_need(b, n)) return;
  memcpy(b->d + b->len, s, n);
  b->len += n;
}
#define HL_SB_LIT(b, lit) hl_sb_put((b), (lit), sizeof(lit) - 1)

static inline void hl_sb_putc(hl_sb *b, char c) {
  if (!hl_sb_need(b, 1)) return;
  b->d[b->len++] = c;
}

static inline void hl_sb_cstr(hl_sb *b, const char *s) { hl_sb_put(b, s, strlen(s)); }

/* Appends s as a JSON string with quotes, escaping ", \ and control characters. */
void hl_sb_json_str(hl_sb *b, const char *s);
/* Appends s as one CSV field, quoted when it holds a comma, quote or newline. */
void hl_sb_csv_str(hl_sb *b, const char *s);

void hl_sb_i64(hl_sb *b, int64_t v);
/* Appends v / 10^dec with exactly dec decimals (dec 0..6). */
void hl_sb_fixed(hl_sb *b, int64_t v, int dec);

/* Timestamps (seconds since 1970, UTC). */
void hl_sb_date(hl_sb *b, int64_t t);        /* 2020-01-31 */
void hl_sb_fhir_dt(hl_sb *b, int64_t t);     /* 2020-01-31T09:15:00Z */
void hl_sb_omop_dt(hl_sb *b, int64_t t);     /* 2020-01-31 09:15:00 */

/* Civil date of a day number (days since 1970-01-01). */
void hl_civil(int64_t days, int *y, int *m, int *d);
/* Day number of a civil date. */
int64_t hl_days_from_civil(int y, int m, int d);

#endif
