#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "dirsrc.h"
#include "hl_test.h"

HL_TEST_SUITE(notifier_dir);

#define MAXF 16

typedef struct found {
  int n;
  char keys[MAXF][128];
  char etags[MAXF][80];
  char uris[MAXF][256];
  int64_t sizes[MAXF];
  int eagain; /* refuse this many offers */
} found;

static int on_found(void *ud, const hl_notifier_object *o) {
  found *f = ud;
  if (f->eagain > 0) {
    f->eagain--;
    return -EAGAIN;
  }
  cr_assert_lt(f->n, MAXF);
  snprintf(f->keys[f->n], sizeof f->keys[0], "%s", o->key);
  snprintf(f->etags[f->n], sizeof f->etags[0], "%s", o->etag);
  snprintf(f->uris[f->n], sizeof f->uris[0], "%s", o->uri);
  f->sizes[f->n] = o->size;
  cr_assert_str_eq(o->bucket, "land");
  cr_assert_str_eq(o->source, "dir");
  f->n++;
  return 0;
}

static char root[128];

static void mkroot(void) {
  snprintf(root, sizeof root, "/tmp/hl-ndir-XXXXXX");
  cr_assert_not_null(mkdtemp(root));
}

static void rmroot(void) {
  char cmd[256];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
  cr_assert_eq(system(cmd), 0);
}

static void put(const char *rel, const char *data) {
  char p[512];
  snprintf(p, sizeof p, "%s/%s", root, rel);
  FILE *f = fopen(p, "a");
  cr_assert_not_null(f, "%s: %s", p, strerror(errno));
  fputs(data, f);
  fclose(f);
}

static void mk(const char *rel) {
  char p[512];
  snprintf(p, sizeof p, "%s/%s", root, rel);
  cr_assert_eq(mkdir(p, 0755), 0);
}

static void mv(const char *from, const char *to) {
  char a[512], b[512];
  snprintf(a, sizeof a, "%s/%s", root, from);
  snprintf(b, sizeof b, "%s/%s", root, to);
  cr_assert_eq(rename(a, b), 0);
}

typedef struct fixture {
  uv_loop_t loop;
  hl_notifier_filter *filter;
  hl_dirsrc *d;
  found f;
  uint64_t t0;
} fixture;

static void setup(fixture *x, uint64_t stable_ms) {
  memset(x, 0, sizeof *x);
  mkroot();
  cr_assert_eq(uv_loop_init(&x->loop), 0);
  cr_assert_eq(hl_notifier_filter_new("", "", ".tmp,.part", &x->filter), 0);
  hl_dirsrc_opts o = {.root = root, .bucket = "land", .filter = x->filter, .stable_ms = stable_ms,
                      .found = on_found, .ud = &x->f};
  cr_assert_eq(hl_dirsrc_new(&x->loop, &o, &x->d), 0);
}

static void teardown(fixture *x) {
  hl_dirsrc_close(x->d);
  uv_run(&x->loop, UV_RUN_DEFAULT);
  cr_assert_eq(uv_loop_close(&x->loop), 0);
  hl_notifier_filter_free(x->filter);
  rmroot();
}

Test(notifier_dir, reported_only_when_stable) {
  fixture x;
  setup(&x, 2000);
  mk("org=a");
  put("org=a/one.ndjson", "{}\n");
  put("org=a/.hidden.ndjson", "{}\n");
  put("two.ndjson.tmp", "{}\n");
  cr_assert_eq(hl_dirsrc_scan(x.d, 1000), 0);
  hl_dirsrc_check(x.d, 1000);
  hl_dirsrc_check(x.d, 2999);
  cr_assert_eq(x.f.n, 0, "nothing before stable_ms");
  /* Still being written: the clock restarts. */
  put("org=a/one.ndjson", "{\"more\":1}\n");
  cr_assert_eq(hl_dirsrc_scan(x.d, 2500), 0);
  hl_dirsrc_check(x.d, 3100);
  cr_assert_eq(x.f.n, 0, "a growing file is not complete");
  hl_dirsrc_check(x.d, 4500);
  cr_assert_eq(x.f.n, 1);
  cr_assert_str_eq(x.f.keys[0], "org=a/one.ndjson");
  cr_assert_eq(x.f.sizes[0], 14);
  char want[300];
  snprintf(want, sizeof want, "file://%s/org=a/one.ndjson", root);
  cr_assert_str_eq(x.f.uris[0], want);
  /* Reported once, not at every check or rescan. */
  hl_dirsrc_check(x.d, 9000);
  cr_assert_eq(hl_dirsrc_scan(x.d, 9000), 0);
  hl_dirsrc_check(x.d, 20000);
  cr_assert_eq(x.f.n, 1);
  /* The temporary file counts once renamed. */
  mv("two.ndjson.tmp", "two.ndjson");
  cr_assert_eq(hl_dirsrc_scan(x.d, 21000), 0);
  hl_dirsrc_check(x.d, 23000);
  cr_assert_eq(x.f.n, 2);
  cr_assert_str_eq(x.f.keys[1], "two.ndjson");
  /* A rewritten file is a new version with a new etag. */
  put("two.ndjson", "{}\n");
  cr_assert_eq(hl_dirsrc_scan(x.d, 24000), 0);
  hl_dirsrc_check(x.d, 26000);
  cr_assert_eq(x.f.n, 3);
  cr_assert_str_eq(x.f.keys[2], "two.ndjson");
  cr_assert_str_neq(x.f.etags[1], x.f.etags[2]);
  hl_dirsrc_stats st;
  hl_dirsrc_stats_get(x.d, &st);
  cr_assert_eq(st.tracked, 2);
  cr_assert_eq(st.waiting, 0);
  teardown(&x);
}

Test(notifier_dir, backlog_is_retried) {
  fixture x;
  setup(&x, 0);
  put("a.ndjson", "{}\n");
  x.f.eagain = 2;
  cr_assert_eq(hl_dirsrc_scan(x.d, 0), 0);
  hl_dirsrc_check(x.d, 10);
  hl_dirsrc_check(x.d, 20);
  cr_assert_eq(x.f.n, 0);
  hl_dirsrc_check(x.d, 30);
  cr_assert_eq(x.f.n, 1, "a refused file is offered again");
  teardown(&x);
}

Test(notifier_dir, deleted_files_are_forgotten) {
  fixture x;
  setup(&x, 100);
  put("a.ndjson", "{}\n");
  cr_assert_eq(hl_dirsrc_scan(x.d, 0), 0);
  char p[512];
  snprintf(p, sizeof p, "%s/a.ndjson", root);
  unlink(p);
  hl_dirsrc_check(x.d, 200);
  cr_assert_eq(x.f.n, 0);
  hl_dirsrc_stats st;
  hl_dirsrc_stats_get(x.d, &st);
  cr_assert_eq(st.tracked, 0);
  cr_assert_eq(st.waiting, 0);
  teardown(&x);
}

/* Events: stop the loop once the file was reported. */
static void on_poll(uv_timer_t *t) {
  fixture *x = t->data;
  if (x->f.n > 0 || uv_now(&x->loop) - x->t0 > 20000)
    uv_stop(&x->loop);
}

static void on_write_late(uv_timer_t *t) {
  /* Created after start, inside a directory that did not exist at start. */
  mk("late");
  mk("late/deeper");
  put("late/deeper/x.ndjson.part", "{}\n");
  mv("late/deeper/x.ndjson.part", "late/deeper/x.ndjson");
  uv_close((uv_handle_t *)t, NULL);
}

Test(notifier_dir, events_in_new_subdirectories, .timeout = 60) {
  fixture x;
  setup(&x, 50);
  /* No periodic rescan: only the file-system events can find the file. */
  cr_assert_eq(hl_dirsrc_start(x.d), 0);
  uv_timer_t poll, late;
  uv_timer_init(&x.loop, &poll);
  uv_timer_init(&x.loop, &late);
  poll.data = late.data = &x;
  x.t0 = uv_now(&x.loop);
  uv_timer_start(&poll, on_poll, 20, 20);
  uv_timer_start(&late, on_write_late, 50, 0);
  uv_run(&x.loop, UV_RUN_DEFAULT);
  cr_assert_eq(x.f.n, 1, "the file in a new subdirectory was found through events");
  cr_assert_str_eq(x.f.keys[0], "late/deeper/x.ndjson");
  hl_dirsrc_stats st;
  hl_dirsrc_stats_get(x.d, &st);
  cr_assert_eq(st.scans, 1, "one scan only, at start");
  cr_assert_geq(st.watches, 3);
  uv_close((uv_handle_t *)&poll, NULL);
  teardown(&x);
}
