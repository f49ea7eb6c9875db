/*
 * bench/jscan: MB/s and records/s of hl_jscan (validate + key extraction) on
 * 640-byte FHIR Observations, against jansson's json_loadb on the same
 * records in the same run (the project's document library: the limit the
 * hot path must beat). Prints both and the ratio.
 *
 * With a file argument the records are that file's NDJSON lines instead
 * (e.g. hl-synth's output: bench_jscan landing/org=org-1/Patient.ndjson).
 *
 * Times are the thread's CPU time (CLOCK_THREAD_CPUTIME_ID), the best of
 * ROUNDS passes over the records, so that other processes on a shared
 * machine move the figures little.
 */
#include <ctype.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hl/jscan.h"

#define ROUNDS 5

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Loads the non-empty lines of an NDJSON file (at most max) into rec/len; returns their count. */
static size_t load_lines(const char *path, char **rec, size_t *len, size_t max, size_t *total) {
  FILE *f = fopen(path, "r");
  if (!f) {
    perror(path);
    exit(2);
  }
  char *line = NULL;
  size_t cap = 0, n = 0;
  ssize_t l;
  while (n < max && (l = getline(&line, &cap, f)) > 0) {
    while (l > 0 && (line[l - 1] == '\n' || line[l - 1] == '\r'))
      l--;
    if (l == 0)
      continue;
    rec[n] = malloc((size_t)l);
    memcpy(rec[n], line, (size_t)l);
    len[n++] = (size_t)l;
    *total += (size_t)l;
  }
  free(line);
  fclose(f);
  return n;
}

int main(int argc, char **argv) {
  bool file = argc > 1 && !isdigit((unsigned char)argv[1][0]);
  size_t n = argc > 1 && !file ? (size_t)atol(argv[1]) : 200000;
  char **rec = malloc(n * sizeof *rec);
  size_t *len = malloc(n * sizeof *len);
  size_t total = 0;
  if (file)
    n = load_lines(argv[1], rec, len, n, &total);
  for (size_t i = 0; !file && i < n; i++) {
    char b[1024];
    int l = snprintf(b, sizeof b,
        "{\"resourceType\":\"Observation\",\"id\":\"obs-%zu\",\"meta\":{\"versionId\":\"1\","
        "\"lastUpdated\":\"2024-05-01T10:00:00Z\"},\"status\":\"final\",\"category\":[{\"coding\":"
        "[{\"system\":\"http://terminology.hl7.org/CodeSystem/observation-category\",\"code\":"
        "\"laboratory\",\"display\":\"Laboratory\"}]}],\"code\":{\"coding\":[{\"system\":"
        "\"http://loinc.org\",\"code\":\"4548-4\",\"display\":\"Hemoglobin A1c/Hemoglobin.total in "
        "Blood\"}],\"text\":\"HbA1c\"},\"subject\":{\"reference\":\"Patient/pat-%zu\"},\"encounter\":"
        "{\"reference\":\"Encounter/enc-%zu\"},\"effectiveDateTime\":\"2024-05-01T09:30:00Z\","
        "\"valueQuantity\":{\"value\":%zu.%zu,\"unit\":\"%%\",\"system\":\"http://unitsofmeasure.org\","
        "\"code\":\"%%\"}}",
        i, i / 10, i / 3, 5 + i % 5, i % 10);
    rec[i] = strdup(b);
    len[i] = (size_t)l;
    total += (size_t)l;
  }
  double best = 1e30, best2 = 1e30;
  size_t ok = 0, ok2 = 0;
  for (int round = 0; round < ROUNDS; round++) {
    double t0 = now();
    ok = 0;
    for (size_t i = 0; i < n; i++) {
      hl_jscan_field f[2] = {{.key = "resourceType"}, {.key = "id"}};
      hl_jscan_result r;
      ok += hl_jscan(rec[i], len[i], 0, f, 2, &r) == 0 && f[1].len > 0;
    }
    double t = now() - t0;
    best = t < best ? t : best;
  }
  for (int round = 0; round < 2; round++) {
    double t0 = now();
    ok2 = 0;
    for (size_t i = 0; i < n; i++) {
      json_t *j = json_loadb(rec[i], len[i], 0, NULL);
      ok2 += j != NULL;
      json_decref(j);
    }
    double t = now() - t0;
    best2 = t < best2 ? t : best2;
  }
  double a = (double)total / best / 1e6, b = (double)total / best2 / 1e6;
  printf("records=%zu avg_bytes=%zu\n", n, total / n);
  printf("jscan:   %.0f MB/s, %.0f records/s, %.0f ns/record (valid %zu)\n", a, (double)n / best,
         best / (double)n * 1e9, ok);
  printf("jansson: %.0f MB/s, %.0f records/s, %.0f ns/record (valid %zu)\n", b, (double)n / best2,
         best2 / (double)n * 1e9, ok2);
  printf("ratio jscan/jansson: %.2f\n", a / b);
  for (size_t i = 0; i < n; i++)
    free(rec[i]);
  free(rec);
  free(len);
  return ok == n && ok2 == n ? 0 : 1;
}
