#define _GNU_SOURCE
/*
 * hl-s3-notifier's s3-poll source against a real S3 server on 127.0.0.1:
 * s3rver behind tests/integration/s3/s3-front.js (which checks SigV4).
 * TAP; every case is skipped (never passed) without node or s3rver.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "hl/error.h"
#include "hl/s3.h"
#include "s3/s3front.h"
#include "s3poll.h"

#define BUCKET "hl-notifier-poll"
#define AK "HLPOLLKEY"
#define SK "hl-poll-secret"
#define MAXOBJ 64

static int front_port;
static char failmsg[512];

#define CHECK(cond, ...)                                          \
  do {                                                            \
    if (!(cond)) {                                                \
      snprintf(failmsg, sizeof failmsg, __VA_ARGS__);             \
      return -1;                                                  \
    }                                                             \
  } while (0)

typedef struct got {
  pthread_mutex_t mu;
  int n, offers, refuse;
  char keys[MAXOBJ][128], etags[MAXOBJ][80], uris[MAXOBJ][200];
  long long sizes[MAXOBJ];
  int64_t mtimes[MAXOBJ];
} got;

static int on_offer(void *ud, const hl_notifier_object *objs, size_t count) {
  got *g = ud;
  pthread_mutex_lock(&g->mu);
  g->offers++;
  if (g->refuse > 0) {
    g->refuse--;
    pthread_mutex_unlock(&g->mu);
    return -EAGAIN;
  }
  for (size_t i = 0; i < count && g->n < MAXOBJ; i++, g->n++) {
    snprintf(g->keys[g->n], sizeof g->keys[0], "%s", objs[i].key);
    snprintf(g->etags[g->n], sizeof g->etags[0], "%s", objs[i].etag);
    snprintf(g->uris[g->n], sizeof g->uris[0], "%s", objs[i].uri);
    g->sizes[g->n] = objs[i].size;
    g->mtimes[g->n] = objs[i].mtime_ms;
  }
  pthread_mutex_unlock(&g->mu);
  return 0;
}

static hl_s3_config s3cfg(char *ep, size_t len) {
  snprintf(ep, len, "http://127.0.0.1:%d", front_port);
  return (hl_s3_config){.endpoint = ep, .region = "us-east-1", .access_key = AK, .secret_key = SK,
                        .path_style = true, .max_retries = 2};
}

static int put(hl_s3 *s3, const char *key, const char *body) {
  hl_s3_error err;
  return hl_s3_put(s3, BUCKET, key, body, strlen(body), "application/x-ndjson", NULL, &err);
}

static int find(got *g, const char *key) {
  for (int i = 0; i < g->n; i++)
    if (strcmp(g->keys[i], key) == 0)
      return i;
  return -1;
}

static int t_lists_every_page(void) {
  char ep[64];
  hl_s3_config cfg = s3cfg(ep, sizeof ep);
  hl_s3 *s3 = NULL;
  CHECK(hl_s3_new(&cfg, &s3) == 0, "hl_s3_new");
  char key[64];
  for (int i = 0; i < 7; i++) {
    snprintf(key, sizeof key, "in/org=o%d/f%d.ndjson", i % 2, i);
    CHECK(put(s3, key, "{\"resourceType\":\"Patient\"}\n") == 0, "put %s", key);
  }
  CHECK(put(s3, "out/ignored.ndjson", "{}\n") == 0, "put out/");
  got g = {.mu = PTHREAD_MUTEX_INITIALIZER, .refuse = 1};
  hl_s3poll_opts o = {.s3 = &cfg, .bucket = BUCKET, .prefix = "in/", .page_size = 2, .chunk = 3,
                      .offer = on_offer, .ud = &g};
  hl_s3poll *p = NULL;
  CHECK(hl_s3poll_new(&o, &p) == 0, "hl_s3poll_new");
  hl_s3_error err;
  int r = hl_s3poll_once(p, &err);
  hl_s3poll_stats st;
  hl_s3poll_stats_get(p, &st);
  hl_s3poll_free(p);
  hl_s3_free(s3);
  CHECK(r == 0, "listing failed: %d", r);
  CHECK(g.n == 7, "%d objects reported, expected 7 (pages of 2)", g.n);
  CHECK(g.offers == 4, "%d offers: 3 chunks of at most 3 and one refused", g.offers);
  CHECK(st.objects == 7 && st.listings == 1, "stats");
  int i = find(&g, "in/org=o1/f3.ndjson");
  CHECK(i >= 0, "in/org=o1/f3.ndjson missing");
  CHECK(strcmp(g.uris[i], "s3://" BUCKET "/in/org=o1/f3.ndjson") == 0, "uri %.100s", g.uris[i]);
  CHECK(g.sizes[i] == 27, "size %lld", g.sizes[i]);
  CHECK(strlen(g.etags[i]) == 32 && g.etags[i][0] != '"', "etag %.60s (MD5 hex, no quotes)", g.etags[i]);
  CHECK(g.mtimes[i] > 1600000000000LL, "mtime %lld", (long long)g.mtimes[i]);
  return 0;
}

static int t_thread_polls_until_stopped(void) {
  char ep[64];
  hl_s3_config cfg = s3cfg(ep, sizeof ep);
  hl_s3 *s3 = NULL;
  CHECK(hl_s3_new(&cfg, &s3) == 0, "hl_s3_new");
  got g = {.mu = PTHREAD_MUTEX_INITIALIZER};
  hl_s3poll_opts o = {.s3 = &cfg, .bucket = BUCKET, .prefix = "late/", .interval_ms = 100,
                      .offer = on_offer, .ud = &g};
  hl_s3poll *p = NULL;
  CHECK(hl_s3poll_new(&o, &p) == 0, "hl_s3poll_new");
  CHECK(hl_s3poll_start(p) == 0, "start");
  int r = put(s3, "late/x.ndjson", "{}\n");
  int found = -1;
  for (int i = 0; i < 300 && found < 0; i++) {
    usleep(50000);
    pthread_mutex_lock(&g.mu);
    found = find(&g, "late/x.ndjson");
    pthread_mutex_unlock(&g.mu);
  }
  hl_s3poll_stats st;
  hl_s3poll_stats_get(p, &st);
  hl_s3poll_free(p);
  hl_s3_free(s3);
  CHECK(r == 0, "put");
  CHECK(found >= 0, "an object put after start was not listed within 15 s");
  CHECK(st.listings >= 1, "listings %llu", (unsigned long long)st.listings);
  return 0;
}

static int t_listing_error_is_reported(void) {
  char ep[64];
  hl_s3_config cfg = s3cfg(ep, sizeof ep);
  cfg.secret_key = "wrong-secret";
  got g = {.mu = PTHREAD_MUTEX_INITIALIZER};
  hl_s3poll_opts o = {.s3 = &cfg, .bucket = BUCKET, .offer = on_offer, .ud = &g};
  hl_s3poll *p = NULL;
  CHECK(hl_s3poll_new(&o, &p) == 0, "hl_s3poll_new");
  hl_s3_error err;
  memset(&err, 0, sizeof err);
  int r = hl_s3poll_once(p, &err);
  hl_s3poll_stats st;
  hl_s3poll_stats_get(p, &st);
  hl_s3poll_free(p);
  CHECK(r == HL_EHTTP && err.http_status == 403, "bad credentials: %d, HTTP %d", r, err.http_status);
  CHECK(st.listing_errors == 1 && g.n == 0, "stats");
  return 0;
}

int main(void) {
  struct {
    const char *name;
    int (*fn)(void);
  } cases[] = {
      {"s3-poll lists every page under the prefix, retries a refused chunk", t_lists_every_page},
      {"s3-poll thread finds an object put after start, stops promptly", t_thread_polls_until_stopped},
      {"s3-poll reports a listing refused with 403", t_listing_error_is_reported},
  };
  size_t n = sizeof cases / sizeof cases[0];
  printf("TAP version 13\n1..%zu\n", n);
  const char *bucket = BUCKET;
  const char *why = hl_test_s3front_start(AK, SK, &bucket, 1, &front_port);
  int failures = 0;
  for (size_t i = 0; i < n; i++) {
    if (why) {
      printf("ok %zu - %s # SKIP %s\n", i + 1, cases[i].name, why);
      continue;
    }
    failmsg[0] = '\0';
    if (cases[i].fn()) {
      failures++;
      printf("not ok %zu - %s\n# %s\n", i + 1, cases[i].name, failmsg);
    } else {
      printf("ok %zu - %s\n", i + 1, cases[i].name);
    }
    fflush(stdout);
  }
  hl_test_s3front_stop();
  return failures ? 1 : 0;
}
