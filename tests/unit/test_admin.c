/*
 * Tests of hl_admin over real sockets on 127.0.0.1.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "hl/admin.h"
#include "hl/error.h"
#include "hl_test.h"

HL_TEST_SUITE(admin);

static int connect_to(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  cr_assert_geq(fd, 0);
  struct timeval tv = {.tv_sec = 10};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0, "connect: %s", strerror(errno));
  return fd;
}

/* Reads until EOF; returns the bytes (caller frees). */
static char *read_all(int fd) {
  size_t cap = 1 << 16, len = 0;
  char *b = malloc(cap);
  for (;;) {
    if (len + 1 == cap)
      b = realloc(b, cap *= 2);
    ssize_t n = recv(fd, b + len, cap - len - 1, 0);
    if (n <= 0)
      break;
    len += (size_t)n;
  }
  b[len] = '\0';
  return b;
}

/* One request with Connection: close; returns the status and the raw response in *out. */
static int request(int port, const char *method, const char *path, const char *body, char **out) {
  int fd = connect_to(port);
  char req[1024];
  int n = snprintf(req, sizeof(req), "%s %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: %zu\r\n\r\n%s",
                   method, path, body ? strlen(body) : 0, body ? body : "");
  cr_assert_eq(send(fd, req, (size_t)n, MSG_NOSIGNAL), n);
  char *resp = read_all(fd);
  close(fd);
  int status = strncmp(resp, "HTTP/1.1 ", 9) == 0 ? atoi(resp + 9) : -1;
  if (out)
    *out = resp;
  else
    free(resp);
  return status;
}

static const char *body_of(const char *resp) {
  const char *p = strstr(resp, "\r\n\r\n");
  return p ? p + 4 : "";
}

static bool have_promtool(void) { return system("command -v promtool >/dev/null 2>&1") == 0; }

Test(admin, metrics_healthz_and_admin_metrics) {
  hl_metrics *reg;
  cr_assert_eq(hl_metrics_new(&reg), 0);
  hl_series_add(hl_metric_at(hl_metrics_counter(reg, "hl_test_things_total", "Things.", "kind"), "a"), 7);
  hl_admin *a;
  cr_assert_eq(hl_admin_start("127.0.0.1:0", reg, &a), 0);
  int port = hl_admin_port(a);
  cr_assert_gt(port, 0);
  char *resp;
  cr_assert_eq(request(port, "GET", "/healthz", NULL, &resp), 200);
  cr_assert(strstr(body_of(resp), "\"ok\"") != NULL, "%s", resp);
  free(resp);
  cr_assert_eq(request(port, "GET", "/nope", NULL, NULL), 404);
  cr_assert_eq(request(port, "POST", "/metrics", "x", NULL), 405);
  cr_assert_eq(request(port, "GET", "/metrics", NULL, &resp), 200);
  cr_assert(strstr(resp, "Content-Type: " HL_METRICS_CONTENT_TYPE "\r\n") != NULL, "%s", resp);
  const char *m = body_of(resp);
  cr_assert(strstr(m, "hl_test_things_total{kind=\"a\"} 7\n") != NULL, "%s", m);
  cr_assert(strstr(m, "hl_admin_http_requests_total{route=\"/healthz\",code=\"200\"} 1\n") != NULL, "%s", m);
  cr_assert(strstr(m, "hl_admin_http_requests_total{route=\"other\",code=\"404\"} 1\n") != NULL, "%s", m);
  cr_assert(strstr(m, "hl_admin_http_request_duration_seconds_count{route=\"/healthz\"} 1\n") != NULL, "%s", m);
  if (have_promtool()) {
    char path[] = "/tmp/hl_admin_metrics_XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, m, strlen(m)), (ssize_t)strlen(m));
    close(fd);
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "promtool check metrics < %s >/dev/null 2>&1", path);
    int st = system(cmd);
    unlink(path);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "promtool rejected:\n%s", m);
  } else {
    cr_log_warn("promtool not found; exposition checked by substring only");
  }
  free(resp);
  cr_assert_null(hl_admin_stop(a));
  hl_metrics_free(reg);
}

static atomic_int ready_flag;

static bool readiness(void *ud, char *reason, size_t len) {
  if (atomic_load(&ready_flag))
    return true;
  snprintf(reason, len, "%s \"quoted\"", (const char *)ud);
  return false;
}

Test(admin, readyz_toggles) {
  hl_admin *a;
  cr_assert_eq(hl_admin_start("127.0.0.1:0", NULL, &a), 0);
  int port = hl_admin_port(a);
  char *resp;
  cr_assert_eq(request(port, "GET", "/readyz", NULL, &resp), 200, "default is ready");
  free(resp);
  atomic_store(&ready_flag, 0);
  hl_admin_set_readiness(a, readiness, "consumer not assigned");
  cr_assert_eq(request(port, "GET", "/readyz", NULL, &resp), 503);
  cr_assert_str_eq(body_of(resp), "{\"ready\":false,\"reason\":\"consumer not assigned \\\"quoted\\\"\"}\n");
  free(resp);
  atomic_store(&ready_flag, 1);
  cr_assert_eq(request(port, "GET", "/readyz", NULL, &resp), 200);
  cr_assert_str_eq(body_of(resp), "{\"ready\":true}\n");
  free(resp);
  atomic_store(&ready_flag, 0);
  cr_assert_eq(request(port, "GET", "/readyz", NULL, NULL), 503);
  hl_admin_set_readiness(a, NULL, NULL);
  cr_assert_eq(request(port, "GET", "/readyz", NULL, NULL), 200);
  hl_admin_stop(a);
}

/* hl_ready follows the readiness function on every scrape, without a /readyz in between. */
Test(admin, ready_gauge) {
  hl_metrics *reg;
  cr_assert_eq(hl_metrics_new(&reg), 0);
  hl_admin *a;
  cr_assert_eq(hl_admin_start("127.0.0.1:0", reg, &a), 0);
  int port = hl_admin_port(a);
  char *resp;
  cr_assert_eq(request(port, "GET", "/metrics", NULL, &resp), 200);
  cr_assert(strstr(resp, "\n# TYPE hl_ready gauge\nhl_ready 1\n"), "default: ready\n%s", resp);
  free(resp);
  atomic_store(&ready_flag, 0);
  hl_admin_set_readiness(a, readiness, "not yet");
  cr_assert_eq(request(port, "GET", "/metrics", NULL, &resp), 200);
  cr_assert(strstr(resp, "\nhl_ready 0\n"), "not ready on the scrape itself\n%s", resp);
  free(resp);
  atomic_store(&ready_flag, 1);
  cr_assert_eq(request(port, "GET", "/metrics", NULL, &resp), 200);
  cr_assert(strstr(resp, "\nhl_ready 1\n"), "ready again\n%s", resp);
  free(resp);
  atomic_store(&ready_flag, 0);
  cr_assert_eq(request(port, "GET", "/readyz", NULL, NULL), 503);
  hl_admin_stop(a);
  hl_metrics_free(reg);
}

static void control(hl_http_req *req, void *ud) {
  size_t n;
  const char *b = hl_http_req_body(req, &n);
  char out[512];
  int len = snprintf(out, sizeof(out), "%s:%s:%s:%.*s", (const char *)ud, hl_http_req_method(req),
                     hl_http_req_path(req), (int)n, b);
  hl_http_respond(req, 200, "text/plain", out, (size_t)len);
}

Test(admin, custom_routes) {
  hl_metrics *reg;
  cr_assert_eq(hl_metrics_new(&reg), 0);
  hl_admin *a;
  cr_assert_eq(hl_admin_start("127.0.0.1:0", reg, &a), 0);
  cr_assert_eq(hl_admin_route(a, "POST", "/control/", control, "ctl"), 0);
  cr_assert_eq(hl_admin_route(a, NULL, "/control/topics", control, "topics"), 0);
  cr_assert_eq(hl_admin_route(a, "GET", "bad", control, NULL), -EINVAL);
  int port = hl_admin_port(a);
  char *resp;
  cr_assert_eq(request(port, "POST", "/control/outage", "{\"on\":true}", &resp), 200);
  cr_assert_str_eq(body_of(resp), "ctl:POST:/control/outage:{\"on\":true}");
  free(resp);
  cr_assert_eq(request(port, "GET", "/control/outage", NULL, NULL), 405);
  cr_assert_eq(request(port, "DELETE", "/control/topics/x", NULL, &resp), 200, "longest prefix wins");
  cr_assert_str_eq(body_of(resp), "topics:DELETE:/control/topics/x:");
  free(resp);
  cr_assert_eq(request(port, "GET", "/metrics", NULL, &resp), 200);
  cr_assert(strstr(resp, "hl_admin_http_requests_total{route=\"/control/\",code=\"200\"} 1\n") != NULL, "%s", resp);
  cr_assert(strstr(resp, "hl_admin_http_requests_total{route=\"/control/topics\",code=\"200\"} 1\n") != NULL, "%s",
            resp);
  free(resp);
  hl_admin_stop(a);
  hl_metrics_free(reg);
}

static uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

Test(admin, stop_with_clients_connected) {
  hl_admin *a;
  cr_assert_eq(hl_admin_start("127.0.0.1:0", NULL, &a), 0);
  int port = hl_admin_port(a);
  /* A keep-alive connection after one answer, and one with half a request. */
  int idle = connect_to(port);
  const char *req = "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n";
  cr_assert_eq(send(idle, req, strlen(req), MSG_NOSIGNAL), (ssize_t)strlen(req));
  char buf[1024];
  cr_assert_gt(recv(idle, buf, sizeof(buf), 0), 0);
  int partial = connect_to(port);
  cr_assert_eq(send(partial, "GET /heal", 9, MSG_NOSIGNAL), 9);
  uint64_t t0 = now_ms();
  cr_assert_null(hl_admin_stop(a));
  cr_assert_lt(now_ms() - t0, 3000);
  cr_assert_leq(recv(idle, buf, sizeof(buf), 0), 0, "idle connection closed");
  cr_assert_leq(recv(partial, buf, sizeof(buf), 0), 0, "partial connection closed");
  close(idle);
  close(partial);
  /* The port is free again. */
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  cr_assert_neq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
  close(fd);
}

Test(admin, start_errors) {
  hl_admin *a, *b = NULL;
  cr_assert_eq(hl_admin_start("127.0.0.1:0", NULL, &a), 0);
  char hp[64];
  snprintf(hp, sizeof(hp), "127.0.0.1:%d", hl_admin_port(a));
  cr_assert_eq(hl_admin_start(hp, NULL, &b), UV_EADDRINUSE);
  cr_assert_null(b);
  cr_assert_eq(hl_admin_start("nonsense", NULL, &b), -EINVAL);
  cr_assert_eq(hl_admin_start("999.1.1.1:80", NULL, &b), -EINVAL);
  cr_assert_null(b);
  hl_admin_stop(a);
  cr_assert_null(hl_admin_stop(NULL));
}
