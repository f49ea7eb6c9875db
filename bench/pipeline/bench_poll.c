/*
 * hl-bench-poll: bench/pipeline's sampler. Reads one counter of each stage
 * from the workers' /metrics every INTERVAL ms, notes when each counter
 * first and last changed, and returns once the last stage's counter
 * reaches TARGET. One small process with plain HTTP/1.0 requests in place
 * of a shell loop that started curl, awk, date and sleep five times a
 * second: on two cores that loop took ~3% of the CPU the pipeline was
 * being measured on, and its 0.2 s period made the end time up to 0.2 s
 * late.
 *
 *   hl-bench-poll INTERVAL_MS TIMEOUT_S TARGET PIDS STAGE=HOST:PORT=METRIC...
 *
 * PIDS: comma-separated processes that must stay alive. Prints, per stage
 * in order, "STAGE VALUE FIRST LAST" (CLOCK_REALTIME seconds; 0 when the
 * counter never changed). Exit status 0 when TARGET was reached, 3 on the
 * timeout, 4 when a process exited, 2 on bad arguments.
 */
#include <errno.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define MAX_STAGES 8
#define MAX_PIDS 16
#define RESP_MAX (8 << 20)

typedef struct stage {
  char *name, *host, *port, *metric;
  double value, first, last;
  struct addrinfo *ai;
} stage;

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The body of GET /metrics into *buf (NUL-terminated); its length, or -1. */
static long fetch(const stage *s, char **buf, size_t *cap) {
  int fd = socket(s->ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -1;
  struct timeval tv = {2, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  if (connect(fd, s->ai->ai_addr, s->ai->ai_addrlen) < 0) {
    close(fd);
    return -1;
  }
  char req[256];
  int n = snprintf(req, sizeof req, "GET /metrics HTTP/1.0\r\nHost: %s:%s\r\n\r\n", s->host, s->port);
  if (write(fd, req, (size_t)n) != n) {
    close(fd);
    return -1;
  }
  size_t len = 0;
  for (;;) {
    if (len + 65536 + 1 > *cap) {
      size_t nc = *cap ? *cap * 2 : 1 << 17;
      char *nb = nc <= RESP_MAX ? realloc(*buf, nc) : NULL;
      if (!nb) {
        close(fd);
        return -1;
      }
      *buf = nb;
      *cap = nc;
    }
    ssize_t r = read(fd, *buf + len, *cap - len - 1);
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0) {
      close(fd);
      return -1;
    }
    if (r == 0)
      break;
    len += (size_t)r;
  }
  close(fd);
  (*buf)[len] = 0;
  if (strncmp(*buf, "HTTP/1.", 7) || strncmp(*buf + 8, " 200", 4))
    return -1;
  char *body = strstr(*buf, "\r\n\r\n");
  if (!body)
    return -1;
  body += 4;
  len -= (size_t)(body - *buf);
  memmove(*buf, body, len + 1);
  return (long)len;
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
  int ns = 0;
  for (int i = 5; i < argc && ns < MAX_STAGES; i++, ns++) {
    stage *s = &st[ns];
    memset(s, 0, sizeof *s);
    s->name = argv[i];
    char *eq = strchr(s->name, '='), *colon = eq ? strchr(eq + 1, ':') : NULL,
         *eq2 = colon ? strchr(colon + 1, '=') : NULL;
    if (!eq2)
      return fprintf(stderr, "hl-bench-poll: bad stage %s\n", argv[i]), 2;
    *eq = *colon = *eq2 = 0;
    s->host = eq + 1;
    s->port = colon + 1;
    s->metric = eq2 + 1;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    if (getaddrinfo(s->host, s->port, &hints, &s->ai) != 0)
      return fprintf(stderr, "hl-bench-poll: cannot resolve %s:%s\n", s->host, s->port), 2;
  }
  if (ns == 0 || interval_ms <= 0)
    return 2;
  char *buf = NULL;
  size_t cap = 0;
  double deadline = now_s() + timeout_s;
  int rc;
  for (;;) {
    double t = now_s();
    for (int i = 0; i < ns; i++) {
      if (fetch(&st[i], &buf, &cap) < 0)
        continue; /* unreachable for a moment: the next round reads it */
      t = now_s(); /* when the change was seen, not when the round began */
      double v = sum_of(buf, st[i].metric);
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
    freeaddrinfo(st[i].ai);
  }
  free(buf);
  return rc;
}
