/*
 * hl-test-whload FHIR_DIR DB: loads hl-synth's NDJSON output (FHIR_DIR/org=TENANT/TYPE.ndjson)
 * into the warehouse DB the way the loader does (hl_wh_batch_add/commit,
 * 500 rows a batch), for the API integration test and bench/api.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hl/jscan.h"
#include "hl/warehouse.h"

static long rows, failures;

static int flush(hl_wh *wh, hl_wh_batch *b) {
  if (hl_wh_batch_len(b) == 0)
    return 0;
  hl_wh_result res;
  int rc = hl_wh_batch_commit(wh, b, &res);
  if (rc < 0) {
    fprintf(stderr, "commit: %s\n", hl_wh_strerror(rc));
    return rc;
  }
  failures += (long)res.rejected;
  hl_wh_batch_reset(b);
  return 0;
}

static int load_file(hl_wh *wh, hl_wh_batch *b, const char *org, const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f)
    return -1;
  char *line = NULL;
  size_t cap = 0;
  ssize_t n;
  long ln = 0;
  char src[8300];
  snprintf(src, sizeof src, "file://%s", path);
  while ((n = getline(&line, &cap, f)) > 0) {
    ln++;
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
      n--;
    if (!n)
      continue;
    hl_jscan_field fl[2] = {{.key = "resourceType"}, {.key = "id"}};
    hl_jscan_result jr;
    if (hl_jscan(line, (size_t)n, 0, fl, 2, &jr) < 0 || fl[0].kind != HL_JSCAN_STRING || fl[1].kind != HL_JSCAN_STRING) {
      failures++;
      continue;
    }
    char key[512];
    snprintf(key, sizeof key, "%s/%.*s/%.*s", org, (int)fl[0].len, fl[0].val, (int)fl[1].len, fl[1].val);
    hl_wh_row row = {0};
    hl_wh_row_set_key(&row, key, strlen(key));
    row.json = line;
    row.json_len = (size_t)n;
    row.job = "job-synth";
    row.source = src;
    row.line = ln;
    int rc = hl_wh_batch_add(b, &row);
    if (rc == HL_ELIMIT) {
      if (flush(wh, b) < 0)
        break;
      rc = hl_wh_batch_add(b, &row);
    }
    if (rc < 0)
      failures++;
    rows++;
    if (hl_wh_batch_len(b) >= 500 && flush(wh, b) < 0)
      break;
  }
  free(line);
  fclose(f);
  return flush(wh, b);
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: hl-test-whload FHIR_DIR DB\n");
    return 2;
  }
  hl_wh_opts o = {.path = argv[2], .create = true};
  hl_wh *wh;
  hl_wh_batch *b;
  char err[256];
  if (hl_wh_new(&o, &wh, err, sizeof err) < 0) {
    fprintf(stderr, "warehouse: %s\n", err);
    return 1;
  }
  if (hl_wh_batch_new(0, 0, &b) < 0)
    return 1;
  DIR *d = opendir(argv[1]);
  struct dirent *e;
  int rc = 0;
  while (d && (e = readdir(d))) {
    if (strncmp(e->d_name, "org=", 4))
      continue;
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/%s", argv[1], e->d_name);
    DIR *d2 = opendir(dir);
    struct dirent *f;
    while (d2 && (f = readdir(d2))) {
      size_t l = strlen(f->d_name);
      if (l < 7 || strcmp(f->d_name + l - 7, ".ndjson"))
        continue;
      char path[8200];
      snprintf(path, sizeof path, "%s/%s", dir, f->d_name);
      if (load_file(wh, b, e->d_name + 4, path) < 0)
        rc = 1;
    }
    if (d2)
      closedir(d2);
  }
  if (d)
    closedir(d);
  else
    rc = 1;
  hl_wh_batch_free(b);
  hl_wh_free(wh);
  printf("loaded %ld rows, %ld failures\n", rows, failures);
  return rc || failures ? 1 : 0;
}
