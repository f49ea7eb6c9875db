#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hl/error.h"
#include "hl_test.h"
#include "parser.h"

HL_TEST_SUITE(parser_object);

typedef struct counts {
  int resources, rejects;
  char last_org[32];
} counts;

static int on_resource(void *ud, const hl_landing_event *ev, const hl_split_record *r) {
  counts *c = ud;
  c->resources++;
  snprintf(c->last_org, sizeof c->last_org, "%s", ev->org);
  cr_assert(r->len > 0);
  return 0;
}

static int on_reject(void *ud, const hl_landing_event *ev, const hl_split_reject *r) {
  counts *c = ud;
  (void)ev;
  c->rejects++;
  cr_assert_not_null(r->code);
  return 0;
}

static char root[256];

static void write_file(const char *rel, const char *text) {
  char path[512];
  snprintf(path, sizeof path, "%s/%s", root, rel);
  char *slash = strrchr(path, '/');
  *slash = '\0';
  char cmd[600];
  snprintf(cmd, sizeof cmd, "mkdir -p '%s'", path);
  cr_assert_eq(system(cmd), 0);
  *slash = '/';
  FILE *f = fopen(path, "w");
  cr_assert_not_null(f);
  fputs(text, f);
  fclose(f);
}

static hl_landing_event event(const char *uri, const char *key) {
  hl_landing_event ev = {(char *)uri, "landing", (char *)key, -1, NULL, "2026-01-01T00:00:00Z",
                         "org-1", "job-1"};
  return ev;
}

static void setup(void) {
  snprintf(root, sizeof root, "/tmp/hl-test-parser-%d", (int)getpid());
  write_file("org=org-1/a.ndjson",
             "{\"resourceType\":\"Patient\",\"id\":\"p1\"}\nnot json\n"
             "{\"resourceType\":\"Patient\",\"id\":\"p2\"}\n");
  write_file("org=org-1/b.txt", "hello\n");
}

static void teardown(void) {
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
  cr_assert_eq(system(cmd), 0);
  hl_test_leak_check();
}

TestSuite(parser_files, .init = setup, .fini = teardown);

Test(parser_files, file_object_counts) {
  char uri[600];
  snprintf(uri, sizeof uri, "file://%s/org=org-1/a.ndjson", root);
  hl_landing_event ev = event(uri, "org=org-1/a.ndjson");
  hl_parser_opts o = {.landing_dir = root, .read_chunk = 7};
  counts c = {0};
  hl_parser_sink sink = {&c, on_resource, on_reject};
  hl_parser_result res;
  cr_assert_eq(hl_parser_process(&o, &ev, &sink, &res), 0, "%s", res.detail);
  cr_assert_eq(c.resources, 2);
  cr_assert_eq(c.rejects, 1);
  cr_assert_eq(res.emitted, 2);
  cr_assert_eq(res.rejected, 1);
  cr_assert_eq(res.lines, 3);
  cr_assert_str_eq(c.last_org, "org-1");
}

Test(parser_files, object_level_errors) {
  hl_parser_opts o = {.landing_dir = root};
  counts c = {0};
  hl_parser_sink sink = {&c, on_resource, on_reject};
  hl_parser_result res;
  char uri[600];

  snprintf(uri, sizeof uri, "file://%s/org=org-1/gone.ndjson", root);
  hl_landing_event ev = event(uri, "org=org-1/gone.ndjson");
  cr_assert_eq(hl_parser_process(&o, &ev, &sink, &res), HL_EPARSE);
  cr_assert_str_eq(res.code, "object-not-found");

  snprintf(uri, sizeof uri, "file://%s/org=org-1/b.txt", root);
  ev = event(uri, "org=org-1/b.txt");
  cr_assert_eq(hl_parser_process(&o, &ev, &sink, &res), HL_EPARSE);
  cr_assert_str_eq(res.code, "unsupported-format");

  /* Path traversal out of the landing directory, plain and percent-encoded. */
  snprintf(uri, sizeof uri, "file://%s/../../etc/hostname.json", root);
  ev = event(uri, "x.json");
  cr_assert_eq(hl_parser_process(&o, &ev, &sink, &res), HL_EPARSE);
  cr_assert(strcmp(res.code, "forbidden-uri") == 0 || strcmp(res.code, "object-not-found") == 0,
            "%s", res.code);
  snprintf(uri, sizeof uri, "file://%s/%%2e%%2e/%%2e%%2e/etc/passwd.json", root);
  ev = event(uri, "passwd.json");
  cr_assert_eq(hl_parser_process(&o, &ev, &sink, &res), HL_EPARSE);
  /* A symlink pointing outside. */
  char link[400];
  snprintf(link, sizeof link, "%s/org=org-1/evil.json", root);
  cr_assert_eq(symlink("/etc/hostname", link), 0);
  snprintf(uri, sizeof uri, "file://%s", link);
  ev = event(uri, "org=org-1/evil.json");
  cr_assert_eq(hl_parser_process(&o, &ev, &sink, &res), HL_EPARSE);
  cr_assert_str_eq(res.code, "forbidden-uri");

  /* s3:// without a reader. */
  ev = event("s3://b/org=org-1/a.ndjson", "org=org-1/a.ndjson");
  cr_assert_eq(hl_parser_process(&o, &ev, &sink, &res), HL_EPARSE);
  cr_assert_str_eq(res.code, "forbidden-uri");
  cr_assert_eq(c.resources, 0, "nothing was emitted by refused objects");
}

static int fake_s3(void *ud, const char *bucket, const char *key,
                   int (*chunk)(void *, const void *, size_t), void *cud, char *detail,
                   size_t detail_len) {
  (void)ud;
  if (strcmp(key, "archived.ndjson") == 0) {
    snprintf(detail, detail_len, "403 InvalidObjectState: archived");
    return HL_EPARSE;
  }
  if (strcmp(key, "missing.ndjson") == 0)
    return HL_ENOTFOUND;
  if (strcmp(key, "flaky.ndjson") == 0)
    return HL_EIO;
  cr_assert_str_eq(bucket, "landing");
  const char *t = "{\"resourceType\":\"Patient\",\"id\":\"s1\"}\n";
  return chunk(cud, t, strlen(t));
}

Test(parser_object, s3_reader_results) {
  hl_parser_opts o = {.s3_read = fake_s3};
  counts c = {0};
  hl_parser_sink sink = {&c, on_resource, on_reject};
  hl_parser_result res;
  hl_landing_event ev = event("s3://landing/ok.ndjson", "ok.ndjson");
  cr_assert_eq(hl_parser_process(&o, &ev, &sink, &res), 0);
  cr_assert_eq(c.resources, 1);
  ev = event("s3://landing/missing.ndjson", "missing.ndjson");
  cr_assert_eq(hl_parser_process(&o, &ev, &sink, &res), HL_EPARSE);
  cr_assert_str_eq(res.code, "object-not-found");
  ev = event("s3://landing/flaky.ndjson", "flaky.ndjson");
  cr_assert_eq(hl_parser_process(&o, &ev, &sink, &res), HL_EIO);
  cr_assert_str_eq(res.code, "read-error");
  ev = event("s3://landing/archived.ndjson", "archived.ndjson");
  cr_assert_eq(hl_parser_process(&o, &ev, &sink, &res), HL_EPARSE);
  cr_assert_str_eq(res.code, "unreadable-object");
  cr_assert(strstr(res.detail, "InvalidObjectState") != NULL, "%s", res.detail);
}
