/*
 * hl-bench-poll: bench/pipeline's sampler. Reads one counter of each stage
 * from the workers' /metrics every INTERVAL ms, notes when each counter
 * first and last changed, and returns once the last stage's counter
 * reaches TARGET. One small process (libcurl, one handle per worker, so
 * its connection is kept) in place of a shell loop that started curl,
 * awk, date and sleep five times a second: on two cores that loop took
 * ~3% of the CPU the pipeline was being measured on, and its 0.2 s period
 * made the end time up to 0.2 s late.
 *
 *   hl-bench-poll INTERVAL_MS TIMEOUT_S TARGET PIDS STAGE=HOST:PORT=METRIC...
 *
 * PIDS: comma-separated processes that must stay alive. Prints, per stage
 * in order, "STAGE VALUE FIRST LAST" (CLOCK_REALTIME seconds; 0 when the
 * counter never changed). Exit status 0 when TARGET was reached, 3 on the
 * timeout, 4 when a process exited, 2 on bad arguments.
 */
#include <curl/curl.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_STAGES 8
#define MAX_PIDS 16
#define RESP_MAX (8 << 20)

typedef struct stage {
  const char *name, *metric;
  char url[256];
  CURL *curl; /* one per stage: the connection is kept between rounds */
  double value, first, last;
} stage;

typedef struct body {
  char *p;
  size_t len, cap;
} body;

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static size_t on_data(char *data, size_t size, size_t n, void *ud) {
  body *b = ud;
  size_t len = size * n;
  if (b->len + len + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 1 << 17;
    while (cap < b->len + len + 1)
      cap *= 2;
    char *p = cap <= RESP_MAX ? realloc(b->p, cap) : NULL;
    if (!p)
      return 0; /* libcurl fails the transfer */
    b->p = p;
    b->cap = cap;
  }
  memcpy(b->p + b->len, data, len);
  b->len += len;
  b->p[b->len] = 0;
  return len;
}

/* GET /metrics of a stage into b (NUL-terminated); 0, or -1 unless it answered 200. */
static int fetch(stage *s, body *b) {
  b->len = 0;
  if (b->p)
    b->p[0] = 0; /* an empty answer must not read as the previous stage's */
  long status = 0;
  if (curl_easy_perform(s->curl) != CURLE_OK ||
      curl_easy_getinfo(s->curl, CURLINFO_RESPONSE_CODE, &status) != CURLE_OK || status != 200 ||
      !b->p)
    return -1;
  return 0;
}

/* The sum of the samples of metric (with any labels) in a text exposition. */
static double sum_of(const char *text, const char *metric) {
  size_t ml = strlen(metric);
  double sum = 0;
  for (const char *l = text; *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : l + strlen(l)) {
    if (strncmp(l, metric, ml) || (l[ml] != ' ' && l[ml] != '{'))
      continue;
    const char *v = l + ml;
    if (*v == '{') {
      v = strchr(v, '}');
      if (!v)
        continue;
      v++;
    }
    sum += strtod(v, NULL);
  }
  return sum;
}

int main(int argc, char **argv) {
  if (argc < 6) {
    fprintf(stderr, "usage: hl-bench-poll INTERVAL_MS TIMEOUT_S TARGET PIDS STAGE=HOST:PORT=METRIC...\n");
    return 2;
  }
  long interval_ms = atol(argv[1]);
  double timeout_s = atof(argv[2]), target = atof(argv[3]);
  pid_t pids[MAX_PIDS];
  int npids = 0;
  for (char *p = argv[4], *e; *p && npids < MAX_PIDS; p = *e ? e + 1 : e) {
    pids[npids++] = (pid_t)strtol(p, &e, 10);
    if (*e && *e != ',')
      return fprintf(stderr, "hl-bench-poll: bad PIDS %s\n", argv[4]), 2;
  }
  stage st[MAX_STAGES];
  body b = {0};
  curl_global_init(CURL_GLOBAL_DEFAULT);
  int ns = 0;
  for (int i = 5; i < argc && ns < MAX_STAGES; i++, ns++) {
    stage *s = &st[ns];
    memset(s, 0, sizeof *s);
    char *eq = strchr(argv[i], '='), *eq2 = eq ? strchr(eq + 1, '=') : NULL;
    if (!eq2)
      return fprintf(stderr, "hl-bench-poll: bad stage %s\n", argv[i]), 2;
    *eq = *eq2 = 0;
    s->name = argv[i];
    s->metric = eq2 + 1;
    snprintf(s->url, sizeof s->url, "http://%s/metrics", eq + 1);
    if (!(s->curl = curl_easy_init()))
      return fprintf(stderr, "hl-bench-poll: curl_easy_init failed\n"), 2;
    curl_easy_setopt(s->curl, CURLOPT_URL, s->url);
    curl_easy_setopt(s->curl, CURLOPT_TIMEOUT_MS, 2000L);
    curl_easy_setopt(s->curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(s->curl, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(s->curl, CURLOPT_WRITEDATA, &b);
  }
  if (ns == 0 || interval_ms <= 0)
    return 2;
  double deadline = now_s() + timeout_s;
  int rc;
  for (;;) {
    double t = now_s();
    for (int i = 0; i < ns; i++) {
      if (fetch(&st[i], &b) < 0)
        continue; /* unreachable for a moment: the next round reads it */
      t = now_s(); /* when the change was seen, not when the round began */
      double v = sum_of(b.p, st[i].metric);
      if (v != st[i].value) {
        if (st[i].first == 0)
          st[i].first = t;
        st[i].last = t;
        st[i].value = v;
      }
    }
    if (st[ns - 1].value >= target) {
      rc = 0;
      break;
    }
    if (t >= deadline) {
      rc = 3;
      break;
    }
    int dead = 0;
    for (int i = 0; i < npids; i++)
      if (kill(pids[i], 0) < 0 && errno == ESRCH)
        dead = 1;
    if (dead) {
      rc = 4;
      break;
    }
    struct timespec ts = {interval_ms / 1000, (interval_ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
  }
  for (int i = 0; i < ns; i++) {
    printf("%s %.0f %.6f %.6f\n", st[i].name, st[i].value, st[i].first, st[i].last);
    curl_easy_cleanup(st[i].curl);
  }
  free(b.p);
  curl_global_cleanup();
  return rc;
}
