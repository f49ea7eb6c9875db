/*
 * bench/validate: hl-validator's throughput on one core.
 *
 * Generates realistic FHIR resources (Patients, Observations with and
 * without components, Encounters, Conditions; about 600 bytes each), or
 * reads them from an NDJSON file, then measures in the same run:
 *   - jansson's json_loadb (parse only, the project's JSON library),
 *   - hl-validator with the schema only,
 *   - hl-validator with the schema and the profile rules,
 * and prints resources/s, MB/s and the ratio of each validator rate to
 * jansson's. Exits 1 when a generated resource is not valid (the
 * generator and the validator disagree) or, with --min-rate R, when the
 * full validation is slower than R resources/s.
 *
 *   bench_validate --schema FILE --profile FILE [--records N] [--seconds S]
 *                  [--ndjson FILE] [--min-rate R]
 */
#define _GNU_SOURCE
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hl/buf.h"
#include "profile.h"
#include "schema.h"
#include "validate.h"

typedef struct rec {
  char *s;
  size_t n;
} rec;

static uint64_t rng = 88172645463325252ull;
static unsigned rnd(unsigned n) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return (unsigned)(rng % n);
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static const char *const family[] = {"Smith", "Müller", "García", "Nguyen", "Kowalski", "Rossi", "Dubois"};
static const char *const given[] = {"Anna", "Jean", "María", "Li", "Olumide", "Zoë", "Søren", "Ahmed"};
static const char *const loinc[][4] = {
  {"8867-4", "Heart rate", "/min", "beats/min"}, {"29463-7", "Body weight", "kg", "kg"},
  {"8302-2", "Body height", "cm", "cm"},         {"2339-0", "Glucose", "mg/dL", "mg/dL"},
  {"718-7", "Hemoglobin", "g/dL", "g/dL"},       {"8310-5", "Body temperature", "Cel", "Cel"},
};
static const char *const snomed[][2] = {{"44054006", "Diabetes mellitus type 2"},
                                        {"38341003", "Hypertension"},
                                        {"195662009", "Acute viral pharyngitis"}};

static void uuid(char *out) {
  snprintf(out, 37, "%08x-%04x-4%03x-a%03x-%04x%08x", rnd(0xffffffffu), rnd(0xffff), rnd(0xfff), rnd(0xfff),
           rnd(0xffff), rnd(0xffffffffu));
}

static void datetime(char *out, size_t n) {
  snprintf(out, n, "20%02u-%02u-%02uT%02u:%02u:%02u%s", 10 + rnd(14), 1 + rnd(12), 1 + rnd(28), rnd(24), rnd(60),
           rnd(60), rnd(2) ? "Z" : "-05:00");
}

static int gen_one(hl_buf *b, unsigned i) {
  char id[40], pid[40], eid[40], dt[40], dt2[40];
  uuid(id);
  uuid(pid);
  uuid(eid);
  datetime(dt, sizeof dt);
  datetime(dt2, sizeof dt2);
  hl_buf_reset(b);
  switch (i % 5) {
  case 0:
    return hl_buf_printf(
      b,
      "{\"resourceType\":\"Patient\",\"id\":\"%s\",\"meta\":{\"versionId\":\"1\",\"lastUpdated\":\"%s\"},"
      "\"identifier\":[{\"system\":\"https://healthlake.example/mrn\",\"value\":\"%u\"}],"
      "\"active\":true,\"name\":[{\"use\":\"official\",\"family\":\"%s\",\"given\":[\"%s\",\"%s\"]}],"
      "\"telecom\":[{\"system\":\"phone\",\"value\":\"+1-555-%04u\",\"use\":\"home\"}],"
      "\"gender\":\"%s\",\"birthDate\":\"19%02u-%02u-%02u\",\"address\":[{\"line\":[\"%u Main St\"],"
      "\"city\":\"Springfield\",\"state\":\"MA\",\"postalCode\":\"0%04u\",\"country\":\"US\"}],"
      "\"maritalStatus\":{\"coding\":[{\"system\":\"http://terminology.hl7.org/CodeSystem/v3-MaritalStatus\","
      "\"code\":\"M\",\"display\":\"Married\"}]}}",
      id, dt, rnd(1000000000), family[rnd(7)], given[rnd(8)], given[rnd(8)], rnd(10000), rnd(2) ? "male" : "female",
      30 + rnd(70), 1 + rnd(12), 1 + rnd(28), 1 + rnd(999), rnd(10000));
  case 1: {
    unsigned k = rnd(6);
    return hl_buf_printf(
      b,
      "{\"resourceType\":\"Observation\",\"id\":\"%s\",\"meta\":{\"versionId\":\"1\",\"lastUpdated\":\"%s\"},"
      "\"status\":\"final\",\"category\":[{\"coding\":[{\"system\":"
      "\"http://terminology.hl7.org/CodeSystem/observation-category\",\"code\":\"vital-signs\"}]}],"
      "\"code\":{\"coding\":[{\"system\":\"http://loinc.org\",\"code\":\"%s\",\"display\":\"%s\"}],\"text\":\"%s\"},"
      "\"subject\":{\"reference\":\"Patient/%s\"},\"encounter\":{\"reference\":\"Encounter/%s\"},"
      "\"effectiveDateTime\":\"%s\",\"issued\":\"%s\",\"valueQuantity\":{\"value\":%u.%u,\"unit\":\"%s\","
      "\"system\":\"http://unitsofmeasure.org\",\"code\":\"%s\"}}",
      id, dt, loinc[k][0], loinc[k][1], loinc[k][1], pid, eid, dt2, dt2, 40 + rnd(100), rnd(10), loinc[k][3],
      loinc[k][2]);
  }
  case 2:
    return hl_buf_printf(
      b,
      "{\"resourceType\":\"Observation\",\"id\":\"%s\",\"status\":\"final\",\"category\":[{\"coding\":[{"
      "\"system\":\"http://terminology.hl7.org/CodeSystem/observation-category\",\"code\":\"vital-signs\"}]}],"
      "\"code\":{\"coding\":[{\"system\":\"http://loinc.org\",\"code\":\"85354-9\",\"display\":\"Blood pressure "
      "panel\"}]},\"subject\":{\"reference\":\"Patient/%s\"},\"effectiveDateTime\":\"%s\",\"component\":["
      "{\"code\":{\"coding\":[{\"system\":\"http://loinc.org\",\"code\":\"8480-6\",\"display\":\"Systolic\"}]},"
      "\"valueQuantity\":{\"value\":%u,\"unit\":\"mmHg\",\"system\":\"http://unitsofmeasure.org\",\"code\":"
      "\"mm[Hg]\"}},{\"code\":{\"coding\":[{\"system\":\"http://loinc.org\",\"code\":\"8462-4\",\"display\":"
      "\"Diastolic\"}]},\"valueQuantity\":{\"value\":%u,\"unit\":\"mmHg\",\"system\":"
      "\"http://unitsofmeasure.org\",\"code\":\"mm[Hg]\"}}]}",
      id, pid, dt, 100 + rnd(60), 60 + rnd(40));
  case 3:
    return hl_buf_printf(
      b,
      "{\"resourceType\":\"Encounter\",\"id\":\"%s\",\"meta\":{\"versionId\":\"1\",\"lastUpdated\":\"%s\"},"
      "\"status\":\"finished\",\"class\":{\"system\":\"http://terminology.hl7.org/CodeSystem/v3-ActCode\","
      "\"code\":\"AMB\",\"display\":\"ambulatory\"},\"type\":[{\"coding\":[{\"system\":\"http://snomed.info/sct\","
      "\"code\":\"185349003\",\"display\":\"Encounter for check up\"}]}],\"subject\":{\"reference\":"
      "\"Patient/%s\"},\"participant\":[{\"individual\":{\"reference\":\"Practitioner/%s\"}}],"
      "\"period\":{\"start\":\"%s\",\"end\":\"%s\"},\"serviceProvider\":{\"reference\":\"Organization/org%u\"}}",
      id, dt, pid, eid, dt, dt2, rnd(100));
  default: {
    unsigned k = rnd(3);
    return hl_buf_printf(
      b,
      "{\"resourceType\":\"Condition\",\"id\":\"%s\",\"meta\":{\"versionId\":\"1\",\"lastUpdated\":\"%s\"},"
      "\"clinicalStatus\":{\"coding\":[{\"system\":\"http://terminology.hl7.org/CodeSystem/condition-clinical\","
      "\"code\":\"active\"}]},\"verificationStatus\":{\"coding\":[{\"system\":"
      "\"http://terminology.hl7.org/CodeSystem/condition-ver-status\",\"code\":\"confirmed\"}]},"
      "\"code\":{\"coding\":[{\"system\":\"http://snomed.info/sct\",\"code\":\"%s\",\"display\":\"%s\"}]},"
      "\"subject\":{\"reference\":\"Patient/%s\"},\"encounter\":{\"reference\":\"Encounter/%s\"},"
      "\"onsetDateTime\":\"%s\",\"recordedDate\":\"%s\"}",
      id, dt, snomed[k][0], snomed[k][1], pid, eid, dt2, dt2);
  }
  }
}

static int load_ndjson(const char *path, rec **out, size_t *n, size_t max) {
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  char *line = NULL;
  size_t cap = 0, cnt = 0;
  ssize_t l;
  rec *r = calloc(max, sizeof *r);
  while (r && cnt < max && (l = getline(&line, &cap, f)) > 0) {
    if (line[l - 1] == '\n') l--;
    if (l == 0) continue;
    r[cnt].s = malloc((size_t)l);
    memcpy(r[cnt].s, line, (size_t)l);
    r[cnt].n = (size_t)l;
    cnt++;
  }
  free(line);
  fclose(f);
  *out = r;
  *n = cnt;
  return r ? 0 : -1;
}

typedef struct result {
  double rate, mbs;
  size_t valid;
} result;

/* Runs passes over the records until `seconds` have passed (at least one pass). */
static result run_validator(hl_validator *v, const rec *recs, size_t n, size_t bytes, double seconds) {
  result r = {0};
  size_t done = 0, passes = 0;
  double t0 = now(), t;
  do {
    for (size_t i = 0; i < n; i++) {
      hl_vresult res;
      hl_validator_check(v, recs[i].s, recs[i].n, &res);
      if (passes == 0 && res.valid) r.valid++;
    }
    done += n;
    passes++;
    t = now() - t0;
  } while (t < seconds);
  r.rate = done / t;
  r.mbs = (double)bytes * passes / t / 1e6;
  return r;
}

static result run_jansson(const rec *recs, size_t n, size_t bytes, double seconds) {
  result r = {0};
  size_t done = 0, passes = 0;
  double t0 = now(), t;
  do {
    for (size_t i = 0; i < n; i++) {
      json_t *j = json_loadb(recs[i].s, recs[i].n, 0, NULL);
      if (passes == 0 && j) r.valid++;
      json_decref(j);
    }
    done += n;
    passes++;
    t = now() - t0;
  } while (t < seconds);
  r.rate = done / t;
  r.mbs = (double)bytes * passes / t / 1e6;
  return r;
}

int main(int argc, char **argv) {
  const char *schema_path = NULL, *profile_path = NULL, *ndjson = NULL;
  size_t nrec = 20000;
  double seconds = 2.0, min_rate = 0;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--schema") && i + 1 < argc) schema_path = argv[++i];
    else if (!strcmp(argv[i], "--profile") && i + 1 < argc) profile_path = argv[++i];
    else if (!strcmp(argv[i], "--ndjson") && i + 1 < argc) ndjson = argv[++i];
    else if (!strcmp(argv[i], "--records") && i + 1 < argc) nrec = strtoul(argv[++i], NULL, 10);
    else if (!strcmp(argv[i], "--seconds") && i + 1 < argc) seconds = strtod(argv[++i], NULL);
    else if (!strcmp(argv[i], "--min-rate") && i + 1 < argc) min_rate = strtod(argv[++i], NULL);
    else {
      fprintf(stderr,
              "usage: %s --schema FILE [--profile FILE] [--records N] [--seconds S] [--ndjson FILE] "
              "[--min-rate R]\n",
              argv[0]);
      return 2;
    }
  }
  if (!schema_path || nrec == 0 || nrec > 10000000) {
    fprintf(stderr, "bench_validate: --schema is required, --records in 1..10000000\n");
    return 2;
  }
  char err[512];
  hl_fschema *fs = NULL;
  hl_profile *pr = NULL;
  hl_validator *v = NULL;
  rec *recs = NULL;
  size_t n = 0, bytes = 0;
  int rc = 1;
  double t0 = now();
  if (hl_fschema_load(schema_path, &fs, err, sizeof err) < 0) {
    fprintf(stderr, "schema: %s\n", err);
    goto out;
  }
  double tcompile = now() - t0;
  if (profile_path && hl_profile_load(fs, profile_path, &pr, err, sizeof err) < 0) {
    fprintf(stderr, "profile: %s\n", err);
    goto out;
  }
  if (ndjson) {
    if (load_ndjson(ndjson, &recs, &n, nrec) < 0) {
      fprintf(stderr, "cannot read %s\n", ndjson);
      goto out;
    }
  } else {
    recs = calloc(nrec, sizeof *recs);
    hl_buf b;
    hl_buf_init(&b, 0);
    for (n = 0; recs && n < nrec; n++) {
      if (gen_one(&b, (unsigned)n) < 0) break;
      recs[n].n = b.len;
      recs[n].s = hl_buf_steal(&b, NULL);
    }
    hl_buf_free(&b);
  }
  for (size_t i = 0; i < n; i++) bytes += recs[i].n;
  if (hl_validator_new(fs, NULL, NULL, &v) < 0) goto out;

  result js = run_jansson(recs, n, bytes, seconds);
  result st = run_validator(v, recs, n, bytes, seconds);
  hl_validator_set_profile(v, pr);
  result full = pr ? run_validator(v, recs, n, bytes, seconds) : st;

  printf("records=%zu avg_bytes=%.0f schema_compile_ms=%.1f\n", n, (double)bytes / n, tcompile * 1e3);
  printf("jansson_json_loadb    %10.0f resources/s %7.1f MB/s\n", js.rate, js.mbs);
  printf("validate_schema       %10.0f resources/s %7.1f MB/s ratio_to_jansson=%.2f valid=%zu/%zu\n", st.rate,
         st.mbs, st.rate / js.rate, st.valid, n);
  if (pr)
    printf("validate_full         %10.0f resources/s %7.1f MB/s ratio_to_jansson=%.2f valid=%zu/%zu\n",
           full.rate, full.mbs, full.rate / js.rate, full.valid, n);
  rc = 0;
  if (!ndjson && (st.valid != n || full.valid != n)) {
    fprintf(stderr, "bench_validate: generated resources were rejected\n");
    rc = 1;
  }
  if (min_rate > 0 && full.rate < min_rate) {
    fprintf(stderr, "bench_validate: %.0f resources/s is below the target of %.0f\n", full.rate, min_rate);
    rc = 1;
  }
out:
  for (size_t i = 0; i < n; i++) free(recs[i].s);
  free(recs);
  hl_validator_free(v);
  hl_profile_free(pr);
  hl_fschema_free(fs);
  return rc;
}
