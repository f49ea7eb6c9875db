/*
 * bench/jscan: MB/s and records/s of hl_jscan (validate + key extraction) on
 * 640-byte FHIR Observations, against jansson's json_loadb on the same
 * records in the same run (the project's document library: the limit the
 * hot path must beat). Prints both and the ratio.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hl/jscan.h"

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
  size_t n = argc > 1 ? (size_t)atol(argv[1]) : 200000;
  char **rec = malloc(n * sizeof *rec);
  size_t *len = malloc(n * sizeof *len);
  size_t total = 0;
  for (size_t i = 0; i < n; i++) {
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
  double t0 = now();
  size_t ok = 0;
  for (size_t i = 0; i < n; i++) {
    hl_jscan_field f[2] = {{.key = "resourceType"}, {.key = "id"}};
    hl_jscan_result r;
    ok += hl_jscan(rec[i], len[i], 0, f, 2, &r) == 0 && f[1].len > 0;
  }
  double t1 = now();
  size_t ok2 = 0;
  for (size_t i = 0; i < n; i++) {
    json_t *j = json_loadb(rec[i], len[i], 0, NULL);
    ok2 += j != NULL;
    json_decref(j);
  }
  double t2 = now();
  double a = (double)total / (t1 - t0) / 1e6, b = (double)total / (t2 - t1) / 1e6;
  printf("records=%zu avg_bytes=%zu\n", n, total / n);
  printf("jscan:   %.0f MB/s, %.0f records/s (valid %zu)\n", a, (double)n / (t1 - t0), ok);
  printf("jansson: %.0f MB/s, %.0f records/s (valid %zu)\n", b, (double)n / (t2 - t1), ok2);
  printf("ratio jscan/jansson: %.2f\n", a / b);
  for (size_t i = 0; i < n; i++)
    free(rec[i]);
  free(rec);
  free(len);
  return ok == n && ok2 == n ? 0 : 1;
}
