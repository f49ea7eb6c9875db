#define _GNU_SOURCE
/*
 * hl-parser reading s3:// objects, end to end on 127.0.0.1: s3rver behind
 * tests/integration/s3/s3-front.js (which checks every SigV4 signature),
 * hl-devbroker, and the real hl-parser binary. NDJSON and gzip objects are
 * put into the bucket, landing events for them go to hl.landing.objects, and
 * the resources on hl.fhir.raw, the rejects on hl.dlq and the job-status
 * events are counted exactly. A connection broken in the middle of a large
 * object is resumed with a ranged GET without a duplicate or a gap.
 *
 *   test_parser_s3 HL_DEVBROKER HL_PARSER     (TAP; skips without node/s3rver)
 */
#include <errno.h>
#include <fcntl.h>
#include <librdkafka/rdkafka.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "hl/buf.h"
#include "hl/error.h"
#include "hl/landing.h"
#include "hl/s3.h"
#include "s3/s3front.h"

#define BUCKET "hl-parser-s3"
#define AK "HLPARSERKEY"
#define SK "hl-parser-secret"
#define MAXKEYS 40000

static int front_port;
static char tmpdir[128], bootstrap[600], failmsg[1024];
static pid_t broker_pid = -1, parser_pid = -1;
static rd_kafka_t *producer, *consumer;
static hl_s3 *s3;

#define CHECK(cond, ...)                                              \
  do {                                                                \
    if (!(cond)) {                                                    \
      int l_ = snprintf(failmsg, sizeof failmsg, "line %d: ", __LINE__); \
      snprintf(failmsg + l_, sizeof failmsg - (size_t)l_, __VA_ARGS__); \
      return 1;                                                       \
    }                                                                 \
  } while (0)

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* Starts a program with extra environment entries, its output to tmpdir/<name>.{out,err}. */
static pid_t spawn(const char *name, const char *prog, char *const env[]) {
  char out[256], err[256];
  snprintf(out, sizeof out, "%s/%s.out", tmpdir, name);
  snprintf(err, sizeof err, "%s/%s.err", tmpdir, name);
  pid_t pid = fork();
  if (pid == 0) {
    int o = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600), e = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (o < 0 || e < 0)
      _exit(127);
    dup2(o, 1);
    dup2(e, 2);
    for (size_t i = 0; env[i]; i++)
      putenv(env[i]);
    execl(prog, prog, (char *)NULL);
    _exit(127);
  }
  return pid;
}

static void stop(pid_t *pid) {
  if (*pid <= 0)
    return;
  kill(*pid, SIGTERM);
  for (int i = 0; i < 150; i++) {
    if (waitpid(*pid, NULL, WNOHANG) == *pid) {
      *pid = -1;
      return;
    }
    usleep(100000);
  }
  kill(*pid, SIGKILL);
  waitpid(*pid, NULL, 0);
  *pid = -1;
}

static int start_broker(const char *bin, const char *root) {
  static char topics[1200], addr[300];
  snprintf(topics, sizeof topics, "HL_DEVBROKER_TOPICS_FILE=%s/schemas/topics/topics.json", root);
  snprintf(addr, sizeof addr, "HL_DEVBROKER_ADDR_FILE=%s/devbroker.addr", tmpdir);
  char *env[] = {topics, addr, "HL_DEVBROKER_BROKERS=1", "HL_ADMIN_ADDR=127.0.0.1:0", NULL};
  broker_pid = spawn("devbroker", bin, env);
  char path[256], line[512];
  snprintf(path, sizeof path, "%s/devbroker.out", tmpdir);
  for (int i = 0; i < 300; i++) {
    FILE *f = fopen(path, "r");
    while (f && fgets(line, sizeof line, f))
      if (strncmp(line, "bootstrap=", 10) == 0) {
        line[strcspn(line, "\r\n")] = '\0';
        snprintf(bootstrap, sizeof bootstrap, "%s", line + 10);
      }
    if (f)
      fclose(f);
    if (bootstrap[0])
      return 0;
    usleep(100000);
  }
  return -1;
}

static int start_parser(const char *bin) {
  static char brokers[700], endpoint[100];
  snprintf(brokers, sizeof brokers, "HL_KAFKA_BROKERS=%s", bootstrap);
  snprintf(endpoint, sizeof endpoint, "HL_S3_ENDPOINT=http://127.0.0.1:%d", front_port);
  char *env[] = {brokers, endpoint, "HL_S3_FORCE_PATH_STYLE=true", "AWS_ACCESS_KEY_ID=" AK,
                 "AWS_SECRET_ACCESS_KEY=" SK, "AWS_REGION=us-east-1", "HL_S3_RETRY_BASE=10ms",
                 "HL_PARSER_DOWNSTREAM_GROUP=", "HL_ADMIN_ADDR=", "HL_LOG_LEVEL=info",
                 "HL_KAFKA_GROUP=test-parser-s3", NULL};
  parser_pid = spawn("parser", bin, env);
  return parser_pid > 0 ? 0 : -1;
}

static rd_kafka_t *kafka(rd_kafka_type_t type, const char *group) {
  char err[256];
  rd_kafka_conf_t *c = rd_kafka_conf_new();
  rd_kafka_conf_set(c, "bootstrap.servers", bootstrap, err, sizeof err);
  rd_kafka_conf_set(c, "log_level", "3", err, sizeof err);
  if (group) {
    rd_kafka_conf_set(c, "group.id", group, err, sizeof err);
    rd_kafka_conf_set(c, "auto.offset.reset", "earliest", err, sizeof err);
    rd_kafka_conf_set(c, "enable.auto.commit", "false", err, sizeof err);
  }
  rd_kafka_t *rk = rd_kafka_new(type, c, err, sizeof err);
  if (!rk)
    rd_kafka_conf_destroy(c);
  return rk;
}

static int64_t last_size;

/* Puts an object, gzip-compressed when gz; its size goes to last_size. */
static int put(const char *key, const hl_buf *body, bool gz) {
  hl_s3_error err;
  last_size = (int64_t)body->len;
  if (!gz)
    return hl_s3_put(s3, BUCKET, key, body->data, body->len, NULL, NULL, &err);
  uLongf cap = compressBound(body->len) + 64;
  unsigned char *z = malloc(cap);
  z_stream zs = {0};
  int r = -1;
  if (z && deflateInit2(&zs, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) == Z_OK) {
    zs.next_in = (unsigned char *)body->data;
    zs.avail_in = (uInt)body->len;
    zs.next_out = z;
    zs.avail_out = (uInt)cap;
    if (deflate(&zs, Z_FINISH) == Z_STREAM_END) {
      last_size = (int64_t)zs.total_out;
      r = hl_s3_put(s3, BUCKET, key, z, zs.total_out, "application/gzip", NULL, &err);
    }
    deflateEnd(&zs);
  }
  free(z);
  return r;
}

static int announce(const char *key, const char *org, const char *job, int64_t size) {
  char uri[512], mkey[512];
  snprintf(uri, sizeof uri, "s3://%s/%s", BUCKET, key);
  snprintf(mkey, sizeof mkey, "%s/%s", BUCKET, key);
  hl_landing_event ev = {uri, BUCKET, (char *)key, size, NULL, "2026-11-25T19:00:00.000Z", (char *)org,
                         (char *)job};
  hl_buf b;
  hl_buf_init(&b, 1 << 16);
  int r = hl_landing_event_write(&ev, &b);
  if (r == 0 && rd_kafka_producev(producer, RD_KAFKA_V_TOPIC("hl.landing.objects"),
                                  RD_KAFKA_V_KEY(mkey, strlen(mkey)), RD_KAFKA_V_VALUE(b.data, b.len),
                                  RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END) != 0)
    r = -1;
  hl_buf_free(&b);
  if (r == 0 && rd_kafka_flush(producer, 30000) != RD_KAFKA_RESP_ERR_NO_ERROR)
    r = -1;
  return r;
}

/* What came out so far. */
typedef struct seen {
  long raw, dlq, status;
  char **keys; /* keys on hl.fhir.raw */
  long nkeys;
  char dlq_codes[64][48];
  long dlq_lines[64];
  char status_json[16][600];
} seen;

static const char *header(const rd_kafka_message_t *m, const char *name, char *out, size_t len) {
  rd_kafka_headers_t *h = NULL;
  const void *v = NULL;
  size_t vl = 0;
  out[0] = '\0';
  if (rd_kafka_message_headers(m, &h) == RD_KAFKA_RESP_ERR_NO_ERROR &&
      rd_kafka_header_get_last(h, name, &v, &vl) == RD_KAFKA_RESP_ERR_NO_ERROR && v)
    snprintf(out, len, "%.*s", (int)vl, (const char *)v);
  return out;
}

/* Polls until want_status job-status events arrived and raw reaches want_raw, then 1.5 s more. */
static void drain(seen *s, long want_status, long want_raw, double timeout_s) {
  double end = now_s() + timeout_s, quiet_end = 0;
  for (;;) {
    double t = now_s();
    if (t > end || (quiet_end > 0 && t > quiet_end))
      return;
    if (quiet_end == 0 && s->status >= want_status && s->raw >= want_raw)
      quiet_end = t + 1.5;
    rd_kafka_message_t *m = rd_kafka_consumer_poll(consumer, 200);
    if (!m)
      continue;
    if (!m->err) {
      const char *topic = rd_kafka_topic_name(m->rkt);
      char buf[256];
      if (strcmp(topic, "hl.fhir.raw") == 0) {
        if (s->nkeys < MAXKEYS)
          s->keys[s->nkeys++] = strndup(m->key, m->key_len);
        s->raw++;
      } else if (strcmp(topic, "hl.dlq") == 0) {
        if (s->dlq < 64) {
          snprintf(s->dlq_codes[s->dlq], sizeof s->dlq_codes[0], "%s",
                   header(m, "hl-error-code", buf, sizeof buf));
          s->dlq_lines[s->dlq] = atol(header(m, "hl-line", buf, sizeof buf));
        }
        s->dlq++;
      } else if (strcmp(topic, "hl.jobs.status") == 0) {
        if (s->status < 16)
          snprintf(s->status_json[s->status], sizeof s->status_json[0], "%.*s", (int)m->len,
                   (const char *)m->payload);
        s->status++;
      }
    }
    rd_kafka_message_destroy(m);
  }
}

static int cmpstr(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static long duplicates(seen *s) {
  qsort(s->keys, (size_t)s->nkeys, sizeof *s->keys, cmpstr);
  long d = 0;
  for (long i = 1; i < s->nkeys; i++)
    d += strcmp(s->keys[i], s->keys[i - 1]) == 0;
  return d;
}

static bool has_key(seen *s, const char *key) {
  return bsearch(&key, s->keys, (size_t)s->nkeys, sizeof *s->keys, cmpstr) != NULL;
}

static const char *status_for(seen *s, const char *job) {
  char pat[80];
  snprintf(pat, sizeof pat, "\"job\":\"%s\"", job);
  for (long i = 0; i < s->status && i < 16; i++)
    if (strstr(s->status_json[i], pat))
      return s->status_json[i];
  return "";
}

static void ndjson(hl_buf *b, const char *type, const char *prefix, int n, int bad_every) {
  char line[512];
  for (int i = 1; i <= n; i++) {
    int l;
    if (bad_every && i % bad_every == 0)
      l = snprintf(line, sizeof line, "{\"resourceType\":\"%s\",\"id\":\"%s-%06d\",\"oops\n", type,
                   prefix, i);
    else
      l = snprintf(line, sizeof line,
                   "{\"resourceType\":\"%s\",\"id\":\"%s-%06d\",\"meta\":{\"lastUpdated\":"
                   "\"2026-11-25T19:00:00Z\"},\"text\":{\"status\":\"generated\",\"div\":"
                   "\"<div xmlns=\\\"http://www.w3.org/1999/xhtml\\\">%06d</div>\"}}\n",
                   type, prefix, i, i);
    hl_buf_append(b, line, (size_t)l);
  }
}

static seen got;

static int t_ndjson_and_gzip(void) {
  hl_buf b;
  hl_buf_init(&b, 64 << 20);
  /* 600 Patients, every 200th line truncated: 597 resources, 3 rejects (lines 200, 400, 600). */
  ndjson(&b, "Patient", "p", 600, 200);
  CHECK(put("org=org-a/2026/patients.ndjson", &b, false) == 0, "put patients");
  int64_t size1 = last_size;
  hl_buf_reset(&b);
  /* 400 Observations gzip-compressed, every 100th line bad: 396 + 4 rejects. */
  ndjson(&b, "Observation", "o", 400, 100);
  CHECK(put("org=org-b/obs.ndjson.gz", &b, true) == 0, "put gzip");
  hl_buf_free(&b);
  CHECK(announce("org=org-a/2026/patients.ndjson", "org-a", "job-p", size1) == 0, "announce 1");
  CHECK(announce("org=org-b/obs.ndjson.gz", "org-b", "job-o", last_size) == 0, "announce 2");
  CHECK(announce("org=org-a/missing.ndjson", "org-a", "job-m", 100) == 0, "announce 3");
  drain(&got, 3, 993, 120);
  CHECK(got.status == 3, "%ld job-status events, expected 3", got.status);
  CHECK(got.raw == 993, "%ld resources on hl.fhir.raw, expected 597 + 396", got.raw);
  CHECK(duplicates(&got) == 0, "duplicate keys on hl.fhir.raw");
  CHECK(has_key(&got, "org-a/Patient/p-000001") && has_key(&got, "org-b/Observation/o-000399") &&
            !has_key(&got, "org-a/Patient/p-000200"),
        "keys org/ResourceType/id");
  /* 3 + 4 bad lines and the missing object's event. */
  CHECK(got.dlq == 8, "%ld messages on hl.dlq, expected 8", got.dlq);
  int lines = 0, notfound = 0;
  for (long i = 0; i < got.dlq; i++) {
    if (strcmp(got.dlq_codes[i], "object-not-found") == 0)
      notfound++;
    else if (got.dlq_lines[i] % 100 == 0)
      lines++;
  }
  CHECK(notfound == 1 && lines == 7, "DLQ: %d not-found, %d line rejects with their line numbers",
        notfound, lines);
  const char *st = status_for(&got, "job-p");
  CHECK(strstr(st, "\"emitted\":597") && strstr(st, "\"rejected\":3") && strstr(st, "\"parsed\""),
        "status of job-p: %s", st);
  st = status_for(&got, "job-o");
  CHECK(strstr(st, "\"emitted\":396") && strstr(st, "\"rejected\":4"), "status of job-o: %s", st);
  st = status_for(&got, "job-m");
  CHECK(strstr(st, "\"failed\"") && strstr(st, "object-not-found"), "status of job-m: %s", st);
  return 0;
}

static long front_gets(void) {
  char cmd[200], line[4096] = "";
  snprintf(cmd, sizeof cmd, "curl -s http://127.0.0.1:%d/__hl/stats", front_port);
  FILE *p = popen(cmd, "r");
  if (p && !fgets(line, sizeof line, p))
    line[0] = '\0';
  if (p)
    pclose(p);
  const char *g = strstr(line, "\"GET\":");
  return g ? strtol(g + 6, NULL, 10) : -1;
}

static int t_broken_connection_resumes(void) {
  hl_buf b;
  hl_buf_init(&b, 64 << 20);
  /* About 5 MiB, 20,000 Encounters; the connection breaks after 2 MiB. */
  ndjson(&b, "Encounter", "e", 20000, 0);
  CHECK(put("org=org-c/big.ndjson", &b, false) == 0, "put big");
  hl_buf_free(&b);
  long gets = front_gets();
  char cmd[200];
  snprintf(cmd, sizeof cmd,
           "curl -s -o /dev/null -X POST 'http://127.0.0.1:%d/__hl/faults?mode=cut&after=2097152&method=GET'",
           front_port);
  CHECK(system(cmd) == 0, "fault injection");
  long raw0 = got.raw, dlq0 = got.dlq;
  CHECK(announce("org=org-c/big.ndjson", "org-c", "job-big", last_size) == 0, "announce");
  drain(&got, 4, raw0 + 20000, 120);
  CHECK(got.status == 4 && got.dlq == dlq0, "job-status events: %ld, DLQ %ld", got.status, got.dlq - dlq0);
  CHECK(got.raw - raw0 == 20000, "%ld resources from the resumed object, expected 20000", got.raw - raw0);
  CHECK(duplicates(&got) == 0, "duplicate keys after the resume");
  long after = front_gets();
  CHECK(after - gets == 2, "%ld GETs for the object: the cut one and one ranged resume expected",
        after - gets);
  const char *st = status_for(&got, "job-big");
  CHECK(strstr(st, "\"emitted\":20000") && strstr(st, "\"rejected\":0"), "status: %s", st);
  return 0;
}

int main(int argc, char **argv) {
  struct {
    const char *name;
    int (*fn)(void);
  } cases[] = {
      {"NDJSON and gzip objects from S3: every resource on hl.fhir.raw, every bad line and the "
       "missing object on hl.dlq",
       t_ndjson_and_gzip},
      {"a GET broken after 2 MiB resumes with a ranged GET: no duplicate, no gap", t_broken_connection_resumes},
  };
  size_t n = sizeof cases / sizeof cases[0];
  printf("TAP version 13\n1..%zu\n", n);
  const char *root = getenv("HL_SOURCE_ROOT");
  const char *why = NULL;
  if (argc < 3 || access(argv[1], X_OK) != 0 || access(argv[2], X_OK) != 0)
    why = "usage: test_parser_s3 HL_DEVBROKER HL_PARSER (built binaries)";
  else if (system("curl --version >/dev/null 2>&1") != 0)
    why = "curl is not installed";
  snprintf(tmpdir, sizeof tmpdir, "/tmp/hl-parser-s3-XXXXXX");
  if (!why && !mkdtemp(tmpdir)) {
    tmpdir[0] = '\0';
    why = "no temporary directory";
  }
  const char *bucket = BUCKET;
  if (!why)
    why = hl_test_s3front_start(AK, SK, &bucket, 1, &front_port);
  if (!why) {
    char ep[64];
    snprintf(ep, sizeof ep, "http://127.0.0.1:%d", front_port);
    hl_s3_config cfg = {.endpoint = ep, .region = "us-east-1", .access_key = AK, .secret_key = SK,
                        .path_style = true, .max_retries = 2};
    got.keys = calloc(MAXKEYS, sizeof *got.keys);
    if (hl_s3_new(&cfg, &s3) < 0 || !got.keys)
      why = "S3 client";
    else if (start_broker(argv[1], root) < 0)
      why = "hl-devbroker did not start";
  }
  if (!why) {
    const char *topics[] = {"hl.fhir.raw", "hl.dlq", "hl.jobs.status"};
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(3);
    for (int i = 0; i < 3; i++)
      rd_kafka_topic_partition_list_add(l, topics[i], RD_KAFKA_PARTITION_UA);
    producer = kafka(RD_KAFKA_PRODUCER, NULL);
    consumer = kafka(RD_KAFKA_CONSUMER, "test-parser-s3-reader");
    if (!producer || !consumer || rd_kafka_poll_set_consumer(consumer) != 0 ||
        rd_kafka_subscribe(consumer, l) != 0 || start_parser(argv[2]) < 0)
      why = "Kafka clients or hl-parser did not start";
    rd_kafka_topic_partition_list_destroy(l);
  }
  int failures = 0;
  for (size_t i = 0; i < n; i++) {
    if (why) {
      printf("ok %zu - %s # SKIP %s\n", i + 1, cases[i].name, why);
      continue;
    }
    failmsg[0] = '\0';
    double t0 = now_s();
    if (cases[i].fn()) {
      failures++;
      printf("not ok %zu - %s\n# %s\n", i + 1, cases[i].name, failmsg);
      char cmd[300];
      snprintf(cmd, sizeof cmd, "tail -n 20 %s/parser.err | sed 's/^/#   /'", tmpdir);
      fflush(stdout);
      if (system(cmd) != 0)
        printf("# (no parser log)\n");
    } else {
      printf("ok %zu - %s # %.2fs\n", i + 1, cases[i].name, now_s() - t0);
    }
    fflush(stdout);
  }
  stop(&parser_pid);
  if (consumer) {
    rd_kafka_consumer_close(consumer);
    rd_kafka_destroy(consumer);
  }
  if (producer)
    rd_kafka_destroy(producer);
  stop(&broker_pid);
  hl_test_s3front_stop();
  hl_s3_free(s3);
  for (long i = 0; i < got.nkeys; i++)
    free(got.keys[i]);
  free(got.keys);
  if (tmpdir[0] && !getenv("HL_IT_KEEP")) {
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
      fprintf(stderr, "could not remove %s\n", tmpdir);
  }
  return failures ? 1 : 0;
}
