/*
 * The warehouse against hl-synth's known truth: generate patients (FHIR
 * NDJSON + OMOP CSV for the same people), load the FHIR through the
 * warehouse module exactly as the loader would (row per NDJSON line: key
 * org/Type/id, headers job/source/line, Kafka coordinates; commits of 500
 * rows), then check
 *   - curated row counts per type = resources generated per type,
 *   - every OMOP view equals hl-synth's CSV row for row, per tenant,
 *   - a full replay inserts nothing and leaves every checksum unchanged,
 *   - the job table: loaded = received per object, state completed.
 *
 * usage: test_warehouse_synth HL_SYNTH_BINARY
 * 300 patients by default, 2,000 with HL_TEST_LONG=1 (HL_WH_TEST_PATIENTS overrides).
 * Output is TAP.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "hl/jscan.h"
#include "hl/warehouse.h"

#define BATCH 500
#define MAX_REPORT 10

static int tap_n, tap_failed;

static void ok(int cond, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void ok(int cond, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  printf("%s %d - ", cond ? "ok" : "not ok", ++tap_n);
  vprintf(fmt, ap);
  printf("\n");
  va_end(ap);
  fflush(stdout);
  if (!cond)
    tap_failed++;
}

static char *slurp(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f)
    return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *b = malloc((size_t)n + 1);
  if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
    free(b);
    b = NULL;
  }
  fclose(f);
  if (b) {
    b[n] = 0;
    *len = (size_t)n;
  }
  return b;
}

static int cmpstr(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted entries of dir starting with prefix and ending with suffix. */
static size_t list_dir(const char *dir, const char *prefix, const char *suffix, char ***out) {
  DIR *d = opendir(dir);
  size_t n = 0;
  *out = NULL;
  if (!d)
    return 0;
  struct dirent *e;
  while ((e = readdir(d))) {
    size_t l = strlen(e->d_name), sl = strlen(suffix);
    if (strncmp(e->d_name, prefix, strlen(prefix)) || l < sl || strcmp(e->d_name + l - sl, suffix))
      continue;
    *out = realloc(*out, (n + 1) * sizeof(char *));
    (*out)[n++] = strdup(e->d_name);
  }
  closedir(d);
  qsort(*out, n, sizeof(char *), cmpstr);
  return n;
}

static void free_list(char **l, size_t n) {
  for (size_t i = 0; i < n; i++)
    free(l[i]);
  free(l);
}

/* ---- Loading as the loader would ---------------------------------------------- */

typedef struct loader {
  hl_wh *wh;
  hl_wh_batch *batch;
  int64_t offset;
  uint64_t rows, applied, duplicate, rejected, stale;
  int failures;
} loader;

static int flush(loader *L) {
  if (hl_wh_batch_len(L->batch) == 0)
    return 0;
  hl_wh_result res;
  int rc = hl_wh_batch_commit(L->wh, L->batch, &res);
  if (rc < 0) {
    fprintf(stderr, "# commit: %s\n", hl_wh_strerror(rc));
    L->failures++;
    return rc;
  }
  uint64_t per_group = 0;
  for (size_t i = 0; i < res.ncounts; i++)
    per_group += res.counts[i].rows;
  if (per_group != res.rows)
    L->failures++;
  L->rows += res.rows;
  L->applied += res.applied;
  L->duplicate += res.duplicate;
  L->rejected += res.rejected;
  L->stale += res.stale;
  hl_wh_batch_reset(L->batch);
  return 0;
}

/* Loads one NDJSON file of tenant org; returns its line count. */
static long load_file(loader *L, const char *org, const char *path) {
  size_t len;
  char *data = slurp(path, &len);
  if (!data)
    return -1;
  char uri[8300], job[128];
  snprintf(uri, sizeof(uri), "file://%s", path);
  snprintf(job, sizeof(job), "job-%s", org);
  long line = 0;
  for (char *p = data; *p;) {
    char *nl = strchr(p, '\n');
    size_t n = nl ? (size_t)(nl - p) : strlen(p);
    line++;
    if (n) {
      /* The parser's part: the key comes from resourceType and id. */
      hl_jscan_field f[2] = {{.key = "resourceType"}, {.key = "id"}};
      hl_jscan_result jr;
      if (hl_jscan(p, n, 0, f, 2, &jr) < 0 || f[0].kind != HL_JSCAN_STRING ||
          f[1].kind != HL_JSCAN_STRING) {
        L->failures++;
      } else {
        char key[512];
        snprintf(key, sizeof(key), "%s/%.*s/%.*s", org, (int)f[0].len, f[0].val, (int)f[1].len,
                 f[1].val);
        hl_wh_row row = {0};
        hl_wh_row_set_key(&row, key, strlen(key));
        row.json = p;
        row.json_len = n;
        row.job = job;
        row.source = uri;
        row.line = line;
        row.ingested_at = "2024-01-02T03:04:05Z";
        row.topic = "hl.fhir.valid";
        row.partition = (int32_t)(strlen(key) % 8);
        row.offset = L->offset++;
        int rc = hl_wh_batch_add(L->batch, &row);
        if (rc == HL_ELIMIT) {
          flush(L);
          rc = hl_wh_batch_add(L->batch, &row);
        }
        if (rc < 0)
          L->failures++;
        if (hl_wh_batch_len(L->batch) >= BATCH)
          flush(L);
      }
    }
    if (!nl)
      break;
    p = nl + 1;
  }
  free(data);
  return line;
}

typedef struct type_count {
  char type[64];
  long n;
} type_count;

/* Loads every org=* directory; files are taken in reverse name order so that
   references point at resources not loaded yet. */
static int load_all(loader *L, const char *fhir, type_count *tc, size_t *ntc, bool events) {
  char **orgs;
  size_t norgs = list_dir(fhir, "org=", "", &orgs);
  for (size_t o = 0; o < norgs; o++) {
    char dir[4096];
    snprintf(dir, sizeof(dir), "%s/%s", fhir, orgs[o]);
    char **files;
    size_t nf = list_dir(dir, "", ".ndjson", &files);
    for (size_t i = nf; i-- > 0;) {
      char path[8192];
      snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
      long lines = load_file(L, orgs[o] + 4, path);
      if (lines < 0)
        return -1;
      if (tc) {
        char type[64];
        snprintf(type, sizeof(type), "%.*s", (int)strcspn(files[i], "."), files[i]);
        size_t k = 0;
        while (k < *ntc && strcmp(tc[k].type, type))
          k++;
        if (k == *ntc) {
          snprintf(tc[k].type, sizeof(tc[k].type), "%s", type);
          tc[k].n = 0;
          (*ntc)++;
        }
        tc[k].n += lines;
      }
      if (events) {
        /* The parser's job-status event for this object. */
        char ev[8400];
        snprintf(ev, sizeof(ev),
                 "{\"job\":\"job-%s\",\"org\":\"%s\",\"uri\":\"file://%s\",\"stage\":\"parse\","
                 "\"state\":\"parsed\",\"received\":%ld,\"emitted\":%ld,\"rejected\":0,"
                 "\"time\":\"2024-01-02T03:04:05Z\"}",
                 orgs[o] + 4, orgs[o] + 4, path, lines, lines);
        if (hl_wh_job_event(L->wh, ev, strlen(ev)) != 0)
          L->failures++;
      }
    }
    free_list(files, nf);
  }
  free_list(orgs, norgs);
  return flush(L);
}

/* ---- CSV and comparison -------------------------------------------------------------- */

#define MAXF 40

typedef struct row {
  int n;
  char *f[MAXF];
} row;

/* Splits one RFC 4180 record at *pp in place; advances *pp. */
static int csv_record(char **pp, row *r) {
  char *p = *pp;
  r->n = 0;
  if (!*p)
    return 0;
  for (;;) {
    char *out = p, *start = p;
    if (*p == '"') {
      p++;
      for (;;) {
        if (!*p)
          break;
        if (*p == '"' && p[1] == '"') {
          *out++ = '"';
          p += 2;
        } else if (*p == '"') {
          p++;
          break;
        } else {
          *out++ = *p++;
        }
      }
    }
    while (*p && *p != ',' && *p != '\n')
      *out++ = *p++;
    char sep = *p;
    *out = 0;
    if (r->n < MAXF)
      r->f[r->n++] = start;
    if (sep == ',') {
      p++;
      continue;
    }
    if (sep == '\n')
      p++;
    break;
  }
  *pp = p;
  return 1;
}

static int field_equal(const char *a, const char *b) {
  if (!strcmp(a, b))
    return 1;
  char *ea, *eb;
  if (!*a || !*b)
    return 0;
  double x = strtod(a, &ea), y = strtod(b, &eb);
  return !*ea && !*eb && fabs(x - y) <= 1e-9 * (fabs(x) + fabs(y) + 1);
}

static void cell(sqlite3_stmt *st, int i, char *buf, size_t cap) {
  switch (sqlite3_column_type(st, i)) {
  case SQLITE_NULL:
    buf[0] = 0;
    break;
  case SQLITE_INTEGER:
    snprintf(buf, cap, "%lld", (long long)sqlite3_column_int64(st, i));
    break;
  case SQLITE_FLOAT:
    snprintf(buf, cap, "%.15g", sqlite3_column_double(st, i));
    break;
  default:
    snprintf(buf, cap, "%s", (const char *)sqlite3_column_text(st, i));
  }
}

typedef struct dbrow {
  long long id;
  char *text; /* fields joined by \x1f */
} dbrow;

static int cmp_dbrow(const void *a, const void *b) {
  long long x = ((const dbrow *)a)->id, y = ((const dbrow *)b)->id;
  return (x > y) - (x < y);
}

/* Compares view omop_<table> for tenant with <omop>/org=<tenant>/<table>.csv. */
static void compare_table(sqlite3 *db, const char *omop, const char *tenant, const char *table) {
  char path[8400];
  snprintf(path, sizeof(path), "%s/org=%s/%s.csv", omop, tenant, table);
  size_t len;
  char *csv = slurp(path, &len);
  if (!csv) {
    ok(0, "%s/%s: cannot read %s", tenant, table, path);
    return;
  }
  char *p = csv;
  row hdr;
  csv_record(&p, &hdr);
  char sql[4096];
  size_t o = (size_t)snprintf(sql, sizeof(sql), "SELECT ");
  for (int i = 0; i < hdr.n; i++)
    o += (size_t)snprintf(sql + o, sizeof(sql) - o, "%s\"%s\"", i ? ", " : "", hdr.f[i]);
  snprintf(sql + o, sizeof(sql) - o, " FROM omop_%s WHERE tenant = ?1", table);
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
    ok(0, "%s/%s: %s", tenant, table, sqlite3_errmsg(db));
    free(csv);
    return;
  }
  sqlite3_bind_text(st, 1, tenant, -1, SQLITE_STATIC);
  dbrow *rows = NULL;
  size_t nrows = 0, cap = 0;
  while (sqlite3_step(st) == SQLITE_ROW) {
    if (nrows == cap) {
      cap = cap ? cap * 2 : 1024;
      rows = realloc(rows, cap * sizeof(*rows));
    }
    char text[8192];
    size_t t = 0;
    for (int i = 0; i < hdr.n; i++) {
      char c[1024];
      cell(st, i, c, sizeof(c));
      t += (size_t)snprintf(text + t, sizeof(text) - t, "%s%s", i ? "\x1f" : "", c);
    }
    rows[nrows].id = sqlite3_column_int64(st, 0);
    rows[nrows++].text = strdup(text);
  }
  sqlite3_finalize(st);
  qsort(rows, nrows, sizeof(*rows), cmp_dbrow);
  size_t ncsv = 0, missing = 0, differing = 0, reported = 0;
  row r;
  char *used = calloc(nrows + 1, 1);
  while (csv_record(&p, &r)) {
    ncsv++;
    dbrow key = {atoll(r.f[0]), NULL};
    dbrow *d = bsearch(&key, rows, nrows, sizeof(*rows), cmp_dbrow);
    if (!d) {
      if (reported++ < MAX_REPORT)
        printf("# %s/%s: row id %s missing from the view\n", tenant, table, r.f[0]);
      missing++;
      continue;
    }
    used[d - rows] = 1;
    char *save, *f = d->text;
    int col = 0, bad = -1;
    char *dup = strdup(f);
    char *tok = dup;
    for (col = 0; col < r.n; col++) {
      char *sep = strchr(tok, '\x1f');
      if (sep)
        *sep = 0;
      if (!field_equal(r.f[col], tok)) {
        bad = col;
        save = tok;
        break;
      }
      tok = sep ? sep + 1 : tok + strlen(tok);
    }
    if (bad >= 0) {
      differing++;
      if (reported++ < MAX_REPORT)
        printf("# %s/%s: row id %s column %s: view '%s', CSV '%s'\n", tenant, table, r.f[0],
               hdr.f[bad], save, r.f[bad]);
    }
    free(dup);
  }
  size_t extra = 0;
  for (size_t i = 0; i < nrows; i++) {
    if (!used[i]) {
      extra++;
      if (reported++ < MAX_REPORT)
        printf("# %s/%s: view row id %lld not in the CSV\n", tenant, table, rows[i].id);
    }
  }
  ok(ncsv > 0 || !strcmp(table, "death"), "%s/%s: the CSV has rows (%zu)", tenant, table, ncsv);
  ok(missing == 0 && differing == 0 && extra == 0 && nrows == ncsv,
     "omop_%s = %s.csv for %s row for row (%zu rows; missing %zu, differing %zu, extra %zu)", table,
     table, tenant, ncsv, missing, differing, extra);
  for (size_t i = 0; i < nrows; i++)
    free(rows[i].text);
  free(rows);
  free(used);
  free(csv);
}

static const char *const tables[] = {"person", "observation_period", "visit_occurrence",
                                     "condition_occurrence", "measurement", "drug_exposure",
                                     "procedure_occurrence", "death", "location", "care_site",
                                     "provider"};
static const char *const checked[] = {"raw", "curated_patient", "curated_encounter",
                                      "curated_observation", "curated_condition",
                                      "curated_medication_request", "curated_procedure",
                                      "curated_immunization", "curated_organization",
                                      "curated_practitioner", "curated_token", "curated_string",
                                      "jobs"};
#define NCHECKED (sizeof(checked) / sizeof(checked[0]))

static int run_synth(const char *bin, long patients, const char *out, const char *omop) {
  char n[32];
  snprintf(n, sizeof(n), "%ld", patients);
  pid_t pid = fork();
  if (pid == 0) {
    int null = open("/dev/null", 1);
    if (null >= 0)
      dup2(null, 1);
    execl(bin, bin, "--patients", n, "--orgs", "2", "--seed", "11", "--out", out, "--omop", omop,
          "--progress", "never", "--threads", "2", (char *)NULL);
    _exit(127);
  }
  int status = 0;
  if (pid < 0 || waitpid(pid, &status, 0) < 0)
    return -1;
  return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
  printf("TAP version 13\n");
  if (argc < 2) {
    printf("1..0 # SKIP no hl-synth binary given\n");
    return 0;
  }
  const char *lng = getenv("HL_TEST_LONG");
  long patients = lng && !strcmp(lng, "1") ? 2000 : 300;
  if (getenv("HL_WH_TEST_PATIENTS"))
    patients = atol(getenv("HL_WH_TEST_PATIENTS"));
  const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
  char dir[4096], fhir[4200], omop[4200], db[4200];
  snprintf(dir, sizeof(dir), "%s/hl-wh-synth-XXXXXX", tmp);
  if (!mkdtemp(dir)) {
    printf("not ok 1 - mkdtemp: %s\n1..1\n", strerror(errno));
    return 1;
  }
  snprintf(fhir, sizeof(fhir), "%s/fhir", dir);
  snprintf(omop, sizeof(omop), "%s/omop", dir);
  snprintf(db, sizeof(db), "%s/wh.db", dir);
  ok(run_synth(argv[1], patients, fhir, omop) == 0, "hl-synth generated %ld patients in 2 orgs", patients);

  hl_wh_opts o = {.path = db, .create = true};
  loader L = {0};
  char err[256];
  int rc = hl_wh_new(&o, &L.wh, err, sizeof(err));
  ok(rc == 0, "warehouse opened (%s)", rc ? err : "ok");
  if (rc)
    goto done;
  hl_wh_batch_new(0, 0, &L.batch);
  type_count tc[32];
  size_t ntc = 0;
  double t0 = now_s();
  rc = load_all(&L, fhir, tc, &ntc, true);
  double t1 = now_s();
  ok(rc == 0 && L.failures == 0, "loaded %llu rows in %.2f s (%.0f rows/s), no failures",
     (unsigned long long)L.rows, t1 - t0, (double)L.rows / (t1 - t0));
  ok(L.applied == L.rows && L.duplicate == 0 && L.rejected == 0 && L.stale == 0,
     "every row applied (applied %llu, duplicate %llu, rejected %llu, stale %llu)",
     (unsigned long long)L.applied, (unsigned long long)L.duplicate, (unsigned long long)L.rejected,
     (unsigned long long)L.stale);

  for (size_t i = 0; i < ntc; i++) {
    char table[96];
    int64_t n = -1;
    const char *t = hl_wh_curated_table(tc[i].type);
    snprintf(table, sizeof(table), "%s", t ? t : "?");
    hl_wh_count_rows(L.wh, table, &n);
    ok(n == tc[i].n, "%s: %lld curated rows, hl-synth wrote %ld", tc[i].type, (long long)n, tc[i].n);
  }

  sqlite3 *rd = NULL;
  ok(sqlite3_open_v2(db, &rd, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK,
     "a second, read-only connection opens the database");
  char **orgs;
  size_t norgs = list_dir(omop, "org=", "", &orgs);
  ok(norgs == 2, "hl-synth wrote 2 organizations of OMOP CSV");
  for (size_t i = 0; i < norgs; i++)
    for (size_t t = 0; t < sizeof(tables) / sizeof(tables[0]); t++) {
      double c0 = now_s();
      compare_table(rd, omop, orgs[i] + 4, tables[t]);
      printf("# %s/%s compared in %.2f s\n", orgs[i] + 4, tables[t], now_s() - c0);
    }

  /* Jobs: one row per object, loaded = received, completed. */
  sqlite3_stmt *st;
  long jobs = 0, done_jobs = 0;
  if (sqlite3_prepare_v2(rd, "SELECT count(*), sum(state = 'completed' AND loaded = received "
                             "AND rejected = 0) FROM jobs", -1, &st, NULL) == SQLITE_OK &&
      sqlite3_step(st) == SQLITE_ROW) {
    jobs = sqlite3_column_int(st, 0);
    done_jobs = sqlite3_column_int(st, 1);
  }
  sqlite3_finalize(st);
  ok(jobs > 0 && jobs == done_jobs, "jobs: %ld objects, %ld completed with loaded = received", jobs,
     done_jobs);

  /* A full replay inserts nothing and changes no checksum. */
  char before[NCHECKED][65], after[NCHECKED][65];
  for (size_t i = 0; i < NCHECKED; i++)
    hl_wh_checksum(L.wh, checked[i], before[i]);
  loader R = {.wh = L.wh, .batch = L.batch};
  double r0 = now_s();
  rc = load_all(&R, fhir, NULL, NULL, true);
  printf("# replay in %.2f s\n", now_s() - r0);
  ok(rc == 0 && R.failures == 0 && R.duplicate == R.rows && R.rows == L.rows,
     "replay: %llu rows, all duplicates", (unsigned long long)R.rows);
  int same = 1;
  for (size_t i = 0; i < NCHECKED; i++) {
    hl_wh_checksum(L.wh, checked[i], after[i]);
    if (strcmp(before[i], after[i])) {
      printf("# checksum of %s changed\n", checked[i]);
      same = 0;
    }
  }
  ok(same, "replay: RAW, curated, side and job tables unchanged (checksums)");

  sqlite3_close(rd);
  free_list(orgs, norgs);
  hl_wh_batch_free(L.batch);
done:
  hl_wh_free(L.wh);
  if (!tap_failed) {
    char cmd[4200];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
      printf("# could not remove %s\n", dir);
  } else {
    printf("# kept %s for inspection\n", dir);
  }
  printf("1..%d\n", tap_n);
  return tap_failed ? 1 : 0;
}
