/* hl-wh-oracle: answers with libstream's own warehouse rules, so that
 * tests/dbt/check_semantics.py can compare the dbt macros with them.
 *
 * One request per line on stdin, fields separated by tabs, every field hex
 * encoded ("~" for NULL), one answer line per request on stdout:
 *
 *   cmp VID_A LU_A VID_B LU_B   ->  -1, 0 or 1 (hl_wh_version_cmp)
 *   norm TEXT                   ->  hex of hl_wh_normalize(TEXT)
 *   ref TEXT                    ->  hex of the id of hl_wh_reference_id, or ~
 *   range TEXT                  ->  "LO HI", the [lo, hi) milliseconds of the FHIR
 *                                   date TEXT as hl-api-gateway's hl_api_date_range
 *                                   computes them (its SQLite hl_lo / hl_hi), or ~
 *
 * A malformed request answers "error" and the program goes on. Lines are
 * capped at 64 KiB.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hl/warehouse.h"
#include "query.h"

#define MAX_LINE 65536
#define MAX_FIELDS 5

static int hexval(int c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

/* Decodes a hex field in place; "~" is NULL. Returns 0, or -1 on bad hex. */
static int unhex(char *s, char **out, size_t *len) {
  if (!strcmp(s, "~")) {
    *out = NULL;
    *len = 0;
    return 0;
  }
  size_t n = strlen(s);
  if (n % 2)
    return -1;
  for (size_t i = 0; i < n / 2; i++) {
    int hi = hexval((unsigned char)s[2 * i]), lo = hexval((unsigned char)s[2 * i + 1]);
    if (hi < 0 || lo < 0)
      return -1;
    s[i] = (char)(hi * 16 + lo);
  }
  s[n / 2] = 0;
  *out = s;
  *len = n / 2;
  return 0;
}

static void puthex(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++)
    printf("%02x", (unsigned char)s[i]);
  putchar('\n');
}

static void answer(char *line) {
  char *f[MAX_FIELDS + 1];
  size_t len[MAX_FIELDS + 1];
  int n = 0;
  char *rest = line, *t;
  /* strsep keeps empty fields (an empty string is an empty hex field). */
  while ((t = strsep(&rest, "\t")) != NULL) {
    if (n > MAX_FIELDS) {
      puts("error");
      return;
    }
    f[n++] = t;
  }
  if (n < 2) {
    puts("error");
    return;
  }
  for (int i = 1; i < n; i++) {
    if (unhex(f[i], &f[i], &len[i]) != 0) {
      puts("error");
      return;
    }
  }
  if (!strcmp(f[0], "cmp") && n == 5) {
    printf("%d\n", hl_wh_version_cmp(f[1], f[2], f[3], f[4]));
  } else if (!strcmp(f[0], "norm") && n == 2 && f[1]) {
    char *r = hl_wh_normalize(f[1], len[1]);
    if (!r) {
      puts("error");
      return;
    }
    puthex(r, strlen(r));
    free(r);
  } else if (!strcmp(f[0], "ref") && n == 2 && f[1]) {
    const char *id;
    size_t id_len;
    if (hl_wh_reference_id(f[1], len[1], &id, &id_len) == 0)
      puthex(id, id_len);
    else
      puts("~");
  } else if (!strcmp(f[0], "range") && n == 2 && f[1]) {
    int64_t lo, hi;
    if (hl_api_date_range(f[1], len[1], &lo, &hi) == 0)
      printf("%" PRId64 " %" PRId64 "\n", lo, hi);
    else
      puts("~");
  } else {
    puts("error");
  }
}

int main(void) {
  static char line[MAX_LINE];
  while (fgets(line, sizeof(line), stdin)) {
    size_t n = strlen(line);
    if (n && line[n - 1] == '\n')
      line[--n] = 0;
    else if (n == sizeof(line) - 1) {
      puts("error"); /* too long: skip the rest of it */
      int c;
      while ((c = getchar()) != EOF && c != '\n')
        ;
      fflush(stdout);
      continue;
    }
    answer(line);
    fflush(stdout);
  }
  return 0;
}
