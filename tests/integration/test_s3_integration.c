/*
 * The S3 client against a real S3 server on 127.0.0.1: s3rver (npm) behind
 * tests/integration/s3/s3-front.js, which re-derives and checks every SigV4
 * signature (s3rver 3.7.1 itself does not), injects faults and serves
 * container credentials.
 *
 * Output is TAP. Without node or the s3rver package every case is reported
 * as skipped, never as passed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "hl/error.h"
#include "hl/s3.h"
#include "s3/s3front.h"

#define BUCKET "hl-test"
#define AK "HLTESTKEY"
#define SK "hl-test-secret"

static int front_port;
static char tmpdir[256];
static int failures;
static char failmsg[1024];

#define CHECK(cond, ...)                                                        \
  do {                                                                          \
    if (!(cond)) {                                                              \
      snprintf(failmsg, sizeof failmsg, "%s:%d: %s: ", __FILE__, __LINE__, #cond); \
      size_t l_ = strlen(failmsg);                                              \
      snprintf(failmsg + l_, sizeof failmsg - l_, __VA_ARGS__);                 \
      return 1;                                                                 \
    }                                                                           \
  } while (0)

/* ---- Helpers. ---- */

static int run_cmd(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int run_cmd(const char *fmt, ...) {
  char cmd[8192];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(cmd, sizeof cmd, fmt, ap);
  va_end(ap);
  int st = system(cmd);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Runs a command and returns its first line of output (static buffer). */
static const char *cmd_out(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static const char *cmd_out(const char *fmt, ...) {
  static char line[4096];
  char cmd[8192];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(cmd, sizeof cmd, fmt, ap);
  va_end(ap);
  line[0] = '\0';
  FILE *p = popen(cmd, "r");
  if (!p)
    return line;
  if (!fgets(line, sizeof line, p))
    line[0] = '\0';
  pclose(p);
  line[strcspn(line, "\r\n")] = '\0';
  return line;
}

static void control(const char *path_query) {
  run_cmd("curl -s -o /dev/null -X POST 'http://127.0.0.1:%d/__hl/%s'", front_port, path_query);
}

static long front_requests(void) {
  const char *s = cmd_out("curl -s http://127.0.0.1:%d/__hl/stats", front_port);
  long n = -1;
  const char *p = strstr(s, "\"requests\":");
  if (p)
    n = strtol(p + 11, NULL, 10);
  return n;
}

static hl_s3 *client_with(const char *ak, const char *sk, bool path_style) {
  char ep[128];
  if (path_style)
    snprintf(ep, sizeof ep, "http://127.0.0.1:%d", front_port);
  else
    snprintf(ep, sizeof ep, "http://s3.localhost:%d", front_port);
  hl_s3_config cfg = {.endpoint = ep, .region = "us-east-1", .access_key = ak, .secret_key = sk,
                      .path_style = path_style, .max_retries = 4, .retry_base_ms = 10, .retry_max_ms = 200,
                      .timeout_ms = 30000};
  hl_s3 *s3 = NULL;
  if (hl_s3_new(&cfg, &s3) < 0)
    return NULL;
  return s3;
}

static hl_s3 *client(void) { return client_with(AK, SK, true); }

typedef struct sink {
  hl_buf data;
  EVP_MD_CTX *md;
  size_t max_chunk;
  long long total;
  long max_rss_kb;
} sink;

static long rss_kb(void) {
  FILE *f = fopen("/proc/self/status", "r");
  char line[256];
  long kb = -1;
  while (f && fgets(line, sizeof line, f))
    if (strncmp(line, "VmRSS:", 6) == 0)
      kb = strtol(line + 6, NULL, 10);
  if (f)
    fclose(f);
  return kb;
}

static int to_buf(void *ud, const void *d, size_t n) {
  sink *s = ud;
  return hl_buf_append(&s->data, d, n);
}

static int to_hash(void *ud, const void *d, size_t n) {
  sink *s = ud;
  if (n > s->max_chunk)
    s->max_chunk = n;
  EVP_DigestUpdate(s->md, d, n);
  long long before = s->total;
  s->total += (long long)n;
  if (before / (4 << 20) != s->total / (4 << 20)) {
    long kb = rss_kb();
    if (kb > s->max_rss_kb)
      s->max_rss_kb = kb;
  }
  return 0;
}

static void hex32(const unsigned char *d, char out[65]) {
  for (int i = 0; i < 32; i++)
    snprintf(out + 2 * i, 3, "%02x", d[i]);
}

/* Writes len pseudo-random bytes to path (streamed) and returns their SHA-256. */
static int make_file(const char *path, long long len, char hash[65]) {
  FILE *f = fopen(path, "wb");
  if (!f)
    return -1;
  EVP_MD_CTX *md = EVP_MD_CTX_new();
  EVP_DigestInit_ex(md, EVP_sha256(), NULL);
  static unsigned char chunk[1 << 16];
  unsigned long long x = 0x243F6A8885A308D3ull;
  for (long long off = 0; off < len; off += (long long)sizeof chunk) {
    size_t n = len - off < (long long)sizeof chunk ? (size_t)(len - off) : sizeof chunk;
    for (size_t i = 0; i < n; i++) {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      chunk[i] = (unsigned char)(x >> 32);
    }
    fwrite(chunk, 1, n, f);
    EVP_DigestUpdate(md, chunk, n);
  }
  unsigned char d[32];
  unsigned int dl = 32;
  EVP_DigestFinal_ex(md, d, &dl);
  EVP_MD_CTX_free(md);
  hex32(d, hash);
  return fclose(f);
}

static int get_hashed(hl_s3 *s3, const char *key, char hash[65], sink *s, hl_s3_error *err) {
  memset(s, 0, sizeof *s);
  s->md = EVP_MD_CTX_new();
  EVP_DigestInit_ex(s->md, EVP_sha256(), NULL);
  int r = hl_s3_get(s3, BUCKET, key, -1, -1, to_hash, s, NULL, err);
  unsigned char d[32];
  unsigned int dl = 32;
  EVP_DigestFinal_ex(s->md, d, &dl);
  EVP_MD_CTX_free(s->md);
  hex32(d, hash);
  return r;
}

/* ---- Cases. ---- */

static int t_put_get_head_delete(void) {
  hl_s3 *s3 = client();
  CHECK(s3, "client");
  hl_s3_error e;
  char etag[128] = "";
  const char *key = "org=1/dir with space/obj+1.ndjson";
  CHECK(hl_s3_put(s3, BUCKET, key, "hello world\n", 12, "application/x-ndjson", etag, &e) == 0, "%s", e.message);
  CHECK(strcmp(etag, "\"6f5902ac237024bdd0c176cb93063dc4\"") == 0, "etag %s", etag);
  hl_s3_object_info info;
  CHECK(hl_s3_head(s3, BUCKET, key, &info, &e) == 0, "%s", e.message);
  CHECK(info.size == 12 && strcmp(info.etag, etag) == 0, "size %lld etag %s", info.size, info.etag);
  sink s = {0};
  hl_buf_init(&s.data, 1024);
  CHECK(hl_s3_get(s3, BUCKET, key, -1, -1, to_buf, &s, &info, &e) == 0, "%s", e.message);
  CHECK(s.data.len == 12 && memcmp(s.data.data, "hello world\n", 12) == 0, "body");
  CHECK(e.attempts == 1, "attempts %d", e.attempts);
  hl_buf_free(&s.data);
  CHECK(hl_s3_delete(s3, BUCKET, key, &e) == 0, "%s", e.message);
  CHECK(hl_s3_head(s3, BUCKET, key, &info, &e) == HL_ENOTFOUND, "head after delete");
  CHECK(e.http_status == 404 && e.attempts == 1, "status %d attempts %d", e.http_status, e.attempts);
  hl_buf_init(&s.data, 1024);
  CHECK(hl_s3_get(s3, BUCKET, key, -1, -1, to_buf, &s, NULL, &e) == HL_ENOTFOUND, "get after delete");
  CHECK(strcmp(e.code, "NoSuchKey") == 0, "code %s", e.code);
  CHECK(s.data.len == 0, "an error body never reaches the callback");
  hl_buf_free(&s.data);
  hl_s3_free(s3);
  return 0;
}

static int t_bad_credentials_rejected(void) {
  hl_s3 *s3 = client_with(AK, "wrong-secret", true);
  CHECK(s3, "client");
  hl_s3_error e;
  control("reset");
  CHECK(hl_s3_put(s3, BUCKET, "nope", "x", 1, NULL, NULL, &e) == HL_EHTTP, "put with a bad secret");
  CHECK(e.http_status == 403 && strcmp(e.code, "SignatureDoesNotMatch") == 0, "%d %s", e.http_status, e.code);
  CHECK(e.attempts == 1 && front_requests() == 1, "a 403 is not retried");
  hl_s3_free(s3);
  s3 = client_with("NOSUCHKEY", SK, true);
  CHECK(hl_s3_head(s3, BUCKET, "nope", NULL, &e) == HL_EHTTP && e.http_status == 403, "unknown key");
  hl_s3_list_page p = {0};
  CHECK(hl_s3_list(s3, BUCKET, NULL, &p, &e) == HL_EHTTP, "list with an unknown key");
  CHECK(strcmp(e.code, "InvalidAccessKeyId") == 0, "code %s", e.code);
  hl_s3_free(s3);
  /* The good key reads what a bad key could not write: nothing. */
  s3 = client();
  CHECK(hl_s3_head(s3, BUCKET, "nope", NULL, &e) == HL_ENOTFOUND, "nothing was written");
  hl_s3_free(s3);
  return 0;
}

static int t_large_object_flat_memory(void) {
  char path[512], hash[65], got[65];
  snprintf(path, sizeof path, "%s/large.bin", tmpdir);
  const long long size = 64LL << 20;
  CHECK(make_file(path, size, hash) == 0, "make file");
  hl_s3 *s3 = client();
  hl_s3_error e;
  long before = rss_kb();
  CHECK(hl_s3_put_file(s3, BUCKET, "large.bin", path, "application/octet-stream", NULL, &e) == 0, "%s",
        e.message);
  long after_put = rss_kb();
  sink s;
  CHECK(get_hashed(s3, "large.bin", got, &s, &e) == 0, "%s", e.message);
  CHECK(s.total == size, "got %lld bytes", s.total);
  CHECK(strcmp(got, hash) == 0, "content differs");
  long growth_kb = (s.max_rss_kb > after_put ? s.max_rss_kb : after_put) - before;
  printf("# 64 MiB object: put RSS growth %ld KiB, get peak RSS growth %ld KiB, largest chunk %zu bytes\n",
         after_put - before, s.max_rss_kb - before, s.max_chunk);
  CHECK(growth_kb < 24 * 1024, "RSS grew by %ld KiB for a 64 MiB object", growth_kb);
  CHECK(s.max_chunk <= 1 << 20, "chunk of %zu bytes", s.max_chunk);
  unlink(path);
  hl_s3_free(s3);
  return 0;
}

static int t_ranged_get(void) {
  hl_s3 *s3 = client();
  hl_s3_error e;
  const char *text = "0123456789abcdefghijklmnopqrstuvwxyz";
  CHECK(hl_s3_put(s3, BUCKET, "range.txt", text, 36, "text/plain", NULL, &e) == 0, "%s", e.message);
  sink s = {0};
  hl_buf_init(&s.data, 1024);
  hl_s3_object_info info;
  CHECK(hl_s3_get(s3, BUCKET, "range.txt", 10, 19, to_buf, &s, &info, &e) == 0, "%s", e.message);
  CHECK(s.data.len == 10 && memcmp(s.data.data, "abcdefghij", 10) == 0, "range body %s", s.data.data);
  CHECK(info.size == 36 && info.content_length == 10, "size %lld length %lld", info.size, info.content_length);
  hl_buf_reset(&s.data);
  CHECK(hl_s3_get(s3, BUCKET, "range.txt", 30, -1, to_buf, &s, &info, &e) == 0, "%s", e.message);
  CHECK(s.data.len == 6 && memcmp(s.data.data, "uvwxyz", 6) == 0, "open range %s", s.data.data);
  hl_buf_free(&s.data);
  hl_s3_free(s3);
  return 0;
}

static int t_resume_after_broken_stream(void) {
  char path[512], hash[65], got[65];
  snprintf(path, sizeof path, "%s/resume.bin", tmpdir);
  CHECK(make_file(path, 4 << 20, hash) == 0, "make file");
  hl_s3 *s3 = client();
  hl_s3_error e;
  CHECK(hl_s3_put_file(s3, BUCKET, "resume.bin", path, NULL, NULL, &e) == 0, "%s", e.message);
  control("reset");
  control("faults?mode=cut&after=1000000&count=1&method=GET");
  sink s;
  CHECK(get_hashed(s3, "resume.bin", got, &s, &e) == 0, "%s", e.message);
  CHECK(s.total == 4 << 20, "got %lld bytes", s.total);
  CHECK(strcmp(got, hash) == 0, "every byte once, in order");
  CHECK(e.attempts == 2, "attempts %d", e.attempts);
  unlink(path);
  hl_s3_free(s3);
  return 0;
}

typedef struct seen {
  int n;
  char last[HL_S3_MAX_KEY + 1];
  bool ordered;
  long long bytes;
} seen;

static int count_obj(void *ud, const hl_s3_object *o) {
  seen *s = ud;
  if (s->n && strcmp(o->key, s->last) <= 0)
    s->ordered = false;
  snprintf(s->last, sizeof s->last, "%s", o->key);
  s->bytes += o->size;
  s->n++;
  return 0;
}

static int t_pagination(void) {
  hl_s3 *s3 = client();
  hl_s3_error e;
  char key[64];
  for (int i = 0; i < 1005; i++) {
    snprintf(key, sizeof key, "many/k%05d & <x>", i);
    CHECK(hl_s3_put(s3, BUCKET, key, "ab", 2, NULL, NULL, &e) == 0, "%s", e.message);
  }
  seen s = {.ordered = true};
  control("reset");
  CHECK(hl_s3_list_each(s3, BUCKET, "many/", 0, count_obj, &s, &e) == 0, "%s", e.message);
  CHECK(s.n == 1005 && s.ordered && s.bytes == 2010, "n %d ordered %d", s.n, s.ordered);
  CHECK(front_requests() == 2, "1005 keys take two pages of 1000, took %ld", front_requests());
  s = (seen){.ordered = true};
  control("reset");
  CHECK(hl_s3_list_each(s3, BUCKET, "many/k0010", 3, count_obj, &s, &e) == 0, "%s", e.message);
  CHECK(s.n == 10 && s.ordered, "n %d", s.n);
  CHECK(front_requests() == 4, "10 keys in pages of 3: %ld requests", front_requests());
  hl_s3_list_page p = {0};
  hl_s3_list_opts o = {.prefix = "many/", .max_keys = 5};
  CHECK(hl_s3_list(s3, BUCKET, &o, &p, &e) == 0, "%s", e.message);
  CHECK(p.count == 5 && p.truncated && p.next_token, "page");
  CHECK(strcmp(p.objects[0].key, "many/k00000 & <x>") == 0, "key %s", p.objects[0].key);
  hl_s3_list_page_clear(&p);
  hl_s3_free(s3);
  return 0;
}

static int t_presigned_urls_with_curl(void) {
  hl_s3 *s3 = client();
  char in[512], out[512], hash[65], hash2[65];
  snprintf(in, sizeof in, "%s/presign-in.bin", tmpdir);
  snprintf(out, sizeof out, "%s/presign-out.bin", tmpdir);
  CHECK(make_file(in, 300000, hash) == 0, "make file");
  char *put = NULL, *get = NULL;
  CHECK(hl_s3_presign(s3, "PUT", BUCKET, "presigned/a b+c.bin", 600, &put) == 0, "presign put");
  const char *code = cmd_out("curl -s -o /dev/null -w '%%{http_code}' -T '%s' '%s'", in, put);
  CHECK(strcmp(code, "200") == 0, "curl PUT answered %s", code);
  CHECK(hl_s3_presign(s3, "GET", BUCKET, "presigned/a b+c.bin", 600, &get) == 0, "presign get");
  code = cmd_out("curl -s -o '%s' -w '%%{http_code}' '%s'", out, get);
  CHECK(strcmp(code, "200") == 0, "curl GET answered %s", code);
  char name[600];
  snprintf(name, sizeof name, "%s", cmd_out("sha256sum '%s'", out));
  snprintf(hash2, sizeof hash2, "%.64s", name);
  CHECK(strcmp(hash, hash2) == 0, "downloaded content differs");
  /* A URL signed for one key does not open another. */
  char *other = strdup(get);
  char *k = strstr(other, "a%20b");
  k[0] = 'z';
  code = cmd_out("curl -s -o /dev/null -w '%%{http_code}' '%s'", other);
  CHECK(strcmp(code, "403") == 0, "tampered URL answered %s", code);
  free(other);
  /* A GET URL does not allow a PUT. */
  code = cmd_out("curl -s -o /dev/null -w '%%{http_code}' -T '%s' '%s'", in, get);
  CHECK(strcmp(code, "403") == 0, "PUT on a GET URL answered %s", code);
  free(get);
  /* An expired URL is refused. */
  CHECK(hl_s3_presign_at(s3, "GET", BUCKET, "presigned/a b+c.bin", 60, time(NULL) - 3600, &get) == 0, "presign");
  code = cmd_out("curl -s -o /dev/null -w '%%{http_code}' '%s'", get);
  CHECK(strcmp(code, "403") == 0, "expired URL answered %s", code);
  free(get);
  free(put);
  unlink(in);
  unlink(out);
  hl_s3_free(s3);
  return 0;
}

static int t_retries_on_5xx_and_transport_errors(void) {
  hl_s3 *s3 = client();
  hl_s3_error e;
  CHECK(hl_s3_put(s3, BUCKET, "retry.txt", "retry", 5, NULL, NULL, &e) == 0, "%s", e.message);
  sink s = {0};
  hl_buf_init(&s.data, 1024);
  control("reset");
  control("faults?status=503&code=SlowDown&count=2&method=GET");
  control("faults?status=500&code=InternalError&count=1&method=GET");
  CHECK(hl_s3_get(s3, BUCKET, "retry.txt", -1, -1, to_buf, &s, NULL, &e) == 0, "%s", e.message);
  CHECK(e.attempts == 4 && front_requests() == 4, "attempts %d", e.attempts);
  CHECK(s.data.len == 5 && memcmp(s.data.data, "retry", 5) == 0, "an error body never reaches the callback");
  control("reset");
  control("faults?status=429&code=TooManyRequests&count=1&method=PUT");
  control("faults?mode=reset&count=2&method=PUT");
  CHECK(hl_s3_put(s3, BUCKET, "retry2.txt", "again", 5, NULL, NULL, &e) == 0, "%s", e.message);
  CHECK(e.attempts == 4, "attempts %d", e.attempts);
  /* Past max_retries (4) the last error comes back with its details. */
  control("reset");
  control("faults?status=503&code=SlowDown&count=10&method=HEAD");
  CHECK(hl_s3_head(s3, BUCKET, "retry.txt", NULL, &e) == HL_EHTTP, "gives up");
  CHECK(e.attempts == 5 && e.http_status == 503 && front_requests() == 5, "attempts %d status %d", e.attempts,
        e.http_status);
  control("reset");
  hl_buf_free(&s.data);
  hl_s3_free(s3);
  return 0;
}

static int t_no_retry_on_4xx(void) {
  hl_s3 *s3 = client();
  hl_s3_error e;
  control("reset");
  control("faults?status=400&code=InvalidArgument&count=5&method=GET");
  sink s = {0};
  hl_buf_init(&s.data, 1024);
  CHECK(hl_s3_get(s3, BUCKET, "retry.txt", -1, -1, to_buf, &s, NULL, &e) == HL_EHTTP, "fails");
  CHECK(e.attempts == 1 && e.http_status == 400 && strcmp(e.code, "InvalidArgument") == 0, "attempts %d",
        e.attempts);
  CHECK(front_requests() == 1, "one request, got %ld", front_requests());
  control("reset");
  /* RequestTimeout is the documented 4xx that is retried. */
  control("faults?status=400&code=RequestTimeout&count=1&method=GET");
  CHECK(hl_s3_get(s3, BUCKET, "retry.txt", -1, -1, to_buf, &s, NULL, &e) == 0, "%s", e.message);
  CHECK(e.attempts == 2, "attempts %d", e.attempts);
  control("reset");
  hl_buf_free(&s.data);
  hl_s3_free(s3);
  return 0;
}

static int t_virtual_hosted_style(void) {
  hl_s3 *s3 = client_with(AK, SK, false);
  CHECK(s3, "client");
  hl_s3_error e;
  CHECK(hl_s3_put(s3, BUCKET, "vhost/key.txt", "vh", 2, NULL, NULL, &e) == 0, "%s", e.message);
  hl_s3_free(s3);
  s3 = client();
  hl_s3_object_info info;
  CHECK(hl_s3_head(s3, BUCKET, "vhost/key.txt", &info, &e) == 0 && info.size == 2, "path-style sees it");
  hl_s3_free(s3);
  return 0;
}

static int t_container_credentials(void) {
  char uri[128];
  snprintf(uri, sizeof uri, "http://127.0.0.1:%d/__hl/creds", front_port);
  char ep[128];
  snprintf(ep, sizeof ep, "http://127.0.0.1:%d", front_port);
  char tokfile[512];
  snprintf(tokfile, sizeof tokfile, "%s/token", tmpdir);
  FILE *f = fopen(tokfile, "w");
  CHECK(f, "token file");
  fputs("Bearer hl-test-token\n", f);
  fclose(f);
  hl_s3_config cfg = {.endpoint = ep, .path_style = true, .container_credentials_uri = uri,
                      .container_authorization_file = tokfile, .max_retries = 1, .retry_base_ms = 10};
  hl_s3 *s3 = NULL;
  CHECK(hl_s3_new(&cfg, &s3) == 0, "client");
  hl_s3_error e;
  CHECK(hl_s3_put(s3, BUCKET, "temp-creds.txt", "tc", 2, NULL, NULL, &e) == 0, "%s", e.message);
  char *url = NULL;
  CHECK(hl_s3_presign(s3, "GET", BUCKET, "temp-creds.txt", 60, &url) == 0, "presign");
  CHECK(strstr(url, "X-Amz-Security-Token=hl-temp-token%2B%2F%3D"), "%s", url);
  const char *code = cmd_out("curl -s -o /dev/null -w '%%{http_code}' '%s'", url);
  CHECK(strcmp(code, "200") == 0, "presigned with a session token answered %s", code);
  free(url);
  hl_s3_free(s3);
  cfg.container_authorization_file = NULL;
  cfg.container_authorization = "Bearer wrong";
  CHECK(hl_s3_new(&cfg, &s3) == 0, "client");
  CHECK(hl_s3_head(s3, BUCKET, "temp-creds.txt", NULL, &e) == HL_EHTTP && e.http_status == 401,
        "a refused credentials fetch fails the call: %d", e.http_status);
  hl_s3_free(s3);
  /* Plain http to a non-local host is refused before any request. */
  cfg.container_credentials_uri = "http://192.0.2.1/creds";
  CHECK(hl_s3_new(&cfg, &s3) == 0, "client");
  CHECK(hl_s3_head(s3, BUCKET, "temp-creds.txt", NULL, &e) == HL_ECONFIG, "non-local http refused");
  hl_s3_free(s3);
  return 0;
}

static int t_web_identity(void) {
  char sts[128], ep[128], tokfile[512];
  snprintf(sts, sizeof sts, "http://127.0.0.1:%d/__hl/sts", front_port);
  snprintf(ep, sizeof ep, "http://127.0.0.1:%d", front_port);
  snprintf(tokfile, sizeof tokfile, "%s/web-token", tmpdir);
  FILE *f = fopen(tokfile, "w");
  CHECK(f, "token file");
  fputs("hl-web-identity-token\n", f);
  fclose(f);
  hl_s3_config cfg = {.endpoint = ep, .path_style = true, .web_identity_token_file = tokfile,
                      .role_arn = "arn:aws:iam::123456789012:role/hl-test", .sts_endpoint = sts,
                      .max_retries = 1, .retry_base_ms = 10};
  hl_s3 *s3 = NULL;
  CHECK(hl_s3_new(&cfg, &s3) == 0, "client");
  hl_s3_error e;
  CHECK(hl_s3_put(s3, BUCKET, "web-identity.txt", "wi", 2, NULL, NULL, &e) == 0, "%s", e.message);
  hl_s3_object_info info;
  CHECK(hl_s3_head(s3, BUCKET, "web-identity.txt", &info, &e) == 0 && info.size == 2, "%s", e.message);
  hl_s3_free(s3);
  cfg.role_arn = "arn:aws:iam::123456789012:role/other";
  CHECK(hl_s3_new(&cfg, &s3) == 0, "client");
  CHECK(hl_s3_head(s3, BUCKET, "web-identity.txt", NULL, &e) == HL_EHTTP && e.http_status == 403,
        "a refused AssumeRoleWithWebIdentity fails the call: %d", e.http_status);
  hl_s3_free(s3);
  return 0;
}

static int t_transport_error_without_server(void) {
  hl_s3_config cfg = {.endpoint = "http://127.0.0.1:1", .access_key = AK, .secret_key = SK, .path_style = true,
                      .max_retries = 2, .retry_base_ms = 5};
  hl_s3 *s3 = NULL;
  CHECK(hl_s3_new(&cfg, &s3) == 0, "client");
  hl_s3_error e;
  CHECK(hl_s3_head(s3, BUCKET, "k", NULL, &e) == HL_EIO, "no server");
  CHECK(e.attempts == 3 && e.http_status == 0, "attempts %d", e.attempts);
  hl_s3_free(s3);
  return 0;
}

/* ---- Harness. ---- */

int main(void) {
  struct {
    const char *name;
    int (*fn)(void);
  } cases[] = {
      {"put, get, head and delete", t_put_get_head_delete},
      {"bad credentials are rejected with 403 and not retried", t_bad_credentials_rejected},
      {"a 64 MiB object streams with flat memory", t_large_object_flat_memory},
      {"ranged GET", t_ranged_get},
      {"a broken GET resumes with a ranged GET", t_resume_after_broken_stream},
      {"ListObjectsV2 pagination over 1005 keys and small pages", t_pagination},
      {"presigned GET and PUT URLs work with curl", t_presigned_urls_with_curl},
      {"retries on 5xx, 429 and transport errors", t_retries_on_5xx_and_transport_errors},
      {"no retry on 4xx", t_no_retry_on_4xx},
      {"virtual-hosted-style addressing", t_virtual_hosted_style},
      {"container credentials", t_container_credentials},
      {"web identity credentials from STS", t_web_identity},
      {"transport error without a server", t_transport_error_without_server},
  };
  size_t n = sizeof cases / sizeof cases[0];
  printf("TAP version 13\n1..%zu\n", n);
  const char *why = NULL;
  if (run_cmd("curl --version >/dev/null 2>&1") != 0)
    why = "curl is not installed";
  snprintf(tmpdir, sizeof tmpdir, "/tmp/hl-s3-test-XXXXXX");
  if (!why && !mkdtemp(tmpdir)) {
    tmpdir[0] = '\0';
    why = "no temporary directory";
  }
  const char *bucket = BUCKET;
  if (!why)
    why = hl_test_s3front_start(AK, SK, &bucket, 1, &front_port);
  for (size_t i = 0; i < n; i++) {
    if (why) {
      printf("ok %zu - %s # SKIP %s\n", i + 1, cases[i].name, why);
      continue;
    }
    failmsg[0] = '\0';
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int r = cases[i].fn();
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    if (r) {
      failures++;
      printf("not ok %zu - %s\n# %s\n", i + 1, cases[i].name, failmsg);
    } else {
      printf("ok %zu - %s # %.2fs\n", i + 1, cases[i].name, secs);
    }
    fflush(stdout);
  }
  hl_test_s3front_stop();
  if (tmpdir[0])
    run_cmd("rm -rf '%s'", tmpdir);
  return failures ? 1 : 0;
}
