#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hl/error.h"
#include "hl_test.h"
#include "state.h"

HL_TEST_SUITE(notifier_state);

static char path[256];

static void tmp_path(void) {
  snprintf(path, sizeof path, "/tmp/hl-nstate-%d.db", (int)getpid());
  unlink(path);
}

static void cleanup(void) {
  char p[300];
  unlink(path);
  snprintf(p, sizeof p, "%s-wal", path);
  unlink(p);
  snprintf(p, sizeof p, "%s-shm", path);
  unlink(p);
}

static hl_nstate_row row(const char *key, const char *etag, const char *eid) {
  return (hl_nstate_row){.bucket = "b", .key = key, .etag = etag, .event_id = eid, .org = "o",
                         .job = "j", .uri = "file:///x", .msg_key = "b/k", .value = "{}",
                         .partition = 3, .watermark = 42, .created_ms = 7};
}

typedef struct seen {
  int n;
  int64_t ids[8];
  char eids[8][40];
  int32_t part;
  int64_t wm;
} seen;

static int collect(void *ud, const hl_nstate_row *r) {
  seen *s = ud;
  s->ids[s->n] = r->id;
  snprintf(s->eids[s->n], sizeof s->eids[0], "%s", r->event_id);
  s->part = r->partition;
  s->wm = r->watermark;
  s->n++;
  return 0;
}

Test(notifier_state, lifecycle_survives_reopen) {
  tmp_path();
  hl_nstate *st = NULL;
  cr_assert_eq(hl_nstate_open(path, &st), 0);
  hl_nstate_status status;
  cr_assert_eq(hl_nstate_lookup(st, "b", "k", "e1", &status), HL_ENOTFOUND);
  cr_assert_eq(hl_nstate_begin(st), 0);
  hl_nstate_row r1 = row("k", "e1", "id1"), r2 = row("k", "e2", "id2"), dup = row("k", "e1", "id1");
  cr_assert_eq(hl_nstate_insert_pending(st, &r1), 0);
  cr_assert_eq(hl_nstate_insert_pending(st, &r2), 0);
  cr_assert_eq(hl_nstate_insert_pending(st, &dup), 1, "the same version twice is refused");
  cr_assert_eq(hl_nstate_commit(st), 0);
  cr_assert_eq(hl_nstate_insert_rejected(st, "b", "bad", "e", "invalid_org"), 0);
  cr_assert_eq(hl_nstate_insert_rejected(st, "b", "bad", "e", "invalid_org"), 1);
  cr_assert_eq(hl_nstate_lookup(st, "b", "k", "e1", &status), 0);
  cr_assert_eq(status, HL_NSTATE_PENDING);
  cr_assert_eq(hl_nstate_mark_announced(st, r1.id, 99), 0);
  cr_assert_eq(hl_nstate_mark_announced(st, r1.id, 99), HL_ENOTFOUND, "only pending rows");
  st = hl_nstate_close(st);

  /* A reopened file has the same rows. */
  cr_assert_eq(hl_nstate_open(path, &st), 0);
  cr_assert_eq(hl_nstate_lookup(st, "b", "k", "e1", &status), 0);
  cr_assert_eq(status, HL_NSTATE_ANNOUNCED);
  cr_assert_eq(hl_nstate_lookup(st, "b", "bad", "e", &status), 0);
  cr_assert_eq(status, HL_NSTATE_REJECTED);
  seen s = {0};
  cr_assert_eq(hl_nstate_each_pending(st, collect, &s), 0);
  cr_assert_eq(s.n, 1);
  cr_assert_eq(s.ids[0], r2.id);
  cr_assert_str_eq(s.eids[0], "id2");
  cr_assert_eq(s.part, 3);
  cr_assert_eq(s.wm, 42);
  cr_assert_eq(hl_nstate_count(st, HL_NSTATE_PENDING), 1);
  cr_assert_eq(hl_nstate_count(st, HL_NSTATE_ANNOUNCED), 1);
  cr_assert_eq(hl_nstate_count(st, HL_NSTATE_REJECTED), 1);
  hl_nstate_close(st);
  cleanup();
}

Test(notifier_state, rollback_leaves_nothing) {
  tmp_path();
  hl_nstate *st = NULL;
  cr_assert_eq(hl_nstate_open(path, &st), 0);
  cr_assert_eq(hl_nstate_begin(st), 0);
  hl_nstate_row r1 = row("k", "e1", "id1");
  cr_assert_eq(hl_nstate_insert_pending(st, &r1), 0);
  cr_assert_eq(hl_nstate_rollback(st), 0);
  hl_nstate_status status;
  cr_assert_eq(hl_nstate_lookup(st, "b", "k", "e1", &status), HL_ENOTFOUND);
  hl_nstate_close(st);
  cleanup();
}

Test(notifier_state, unopenable_path) {
  hl_nstate *st = NULL;
  cr_assert_eq(hl_nstate_open("/nonexistent-dir/x/state.db", &st), HL_EIO);
  cr_assert_null(st);
}
