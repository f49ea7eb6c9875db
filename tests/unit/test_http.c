/*
 * Tests of hl_http: a real server on 127.0.0.1 running its loop on a thread,
 * and blocking clients on real sockets.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "../../libstream/src/http_internal.h"
#include "hl/error.h"
#include "hl/http.h"
#include "hl_test.h"

HL_TEST_SUITE(http);

/* ---- Server fixture ------------------------------------------------------- */

typedef struct fixture {
  uv_loop_t loop;
  uv_async_t async;
  pthread_t thread;
  hl_http_server *srv;
  int port;
  uint64_t close_timeout_ms;
  atomic_int close_requested;
  atomic_int closed_done;
  atomic_int handled;
  atomic_int orphan_result;
  /* Streamed bodies (fx_start_stream). */
  atomic_int started;
  atomic_int aborted;
  atomic_size_t max_piece;
} fixture;

/* The state of one streamed body: its byte count and a checksum of its bytes. */
typedef struct stream_st {
  size_t bytes;
  uint32_t sum;
  size_t fail_after;
} stream_st;

static uint32_t sum_bytes(uint32_t sum, const char *p, size_t n) {
  for (size_t i = 0; i < n; i++)
    sum = sum * 31 + (unsigned char)p[i];
  return sum;
}

typedef struct late {
  uv_timer_t timer;
  hl_http_req *req;
  fixture *fx;
} late;

static void late_closed(uv_handle_t *h) { free(h->data); }

static void late_fire(uv_timer_t *t) {
  late *l = t->data;
  char body[64];
  int n = snprintf(body, sizeof(body), "late %s", hl_http_req_path(l->req));
  int rc = hl_http_respond(l->req, 200, "text/plain", body, (size_t)n);
  atomic_store(&l->fx->orphan_result, rc);
  uv_close((uv_handle_t *)&l->timer, late_closed);
}

/*
 * Routes: /late?ms=N answers "late <path>" after N ms; /big?kb=N answers N
 * KiB; /hdr echoes header X-Test; anything else echoes
 * "<method> <path> <query> <body>".
 */
static void handler(hl_http_req *req, void *ud) {
  fixture *fx = ud;
  atomic_fetch_add(&fx->handled, 1);
  const char *path = hl_http_req_path(req);
  const char *q = hl_http_req_query(req);
  stream_st *st = hl_http_req_user(req);
  if (st) {
    size_t blen;
    hl_http_req_body(req, &blen);
    char out[128];
    int n = snprintf(out, sizeof(out), "streamed %zu %08x buffered %zu", st->bytes, st->sum, blen);
    free(st);
    hl_http_respond(req, 200, "text/plain", out, (size_t)n);
    return;
  }
  if (strncmp(path, "/late", 5) == 0) {
    late *l = calloc(1, sizeof(*l));
    l->req = req;
    l->fx = fx;
    l->timer.data = l;
    uv_timer_init(&fx->loop, &l->timer);
    uv_timer_start(&l->timer, late_fire, (uint64_t)atoi(q + 3), 0);
    return;
  }
  if (strcmp(path, "/big") == 0) {
    size_t n = (size_t)atoi(q + 3) * 1024;
    char *b = malloc(n);
    memset(b, 'x', n);
    hl_http_respond(req, 200, "application/octet-stream", b, n);
    free(b);
    return;
  }
  if (strcmp(path, "/hdr") == 0) {
    const char *v = hl_http_req_header(req, "x-test");
    const char *h[] = {"X-Seen", v ? v : "(none)", "Content-Type", "text/plain", NULL};
    hl_http_respond_headers(req, 200, h, v ? v : "", v ? strlen(v) : 0);
    return;
  }
  size_t blen;
  const char *body = hl_http_req_body(req, &blen);
  char out[4096];
  int n = snprintf(out, sizeof(out), "%s %s %s %.*s", hl_http_req_method(req), path, q, (int)blen, body);
  hl_http_respond(req, 200, "text/plain", out, (size_t)n < sizeof(out) ? (size_t)n : sizeof(out) - 1);
}

static void on_closed(void *ud) {
  fixture *fx = ud;
  atomic_store(&fx->closed_done, 1);
  uv_close((uv_handle_t *)&fx->async, NULL);
}

static void on_async(uv_async_t *a) {
  fixture *fx = a->data;
  if (atomic_load(&fx->close_requested) == 1) {
    atomic_store(&fx->close_requested, 2);
    hl_http_server_close(fx->srv, fx->close_timeout_ms, on_closed, fx);
  }
}

static void *fx_run(void *arg) {
  fixture *fx = arg;
  uv_run(&fx->loop, UV_RUN_DEFAULT);
  return NULL;
}

/* Streams the bodies of /stream (fail=N: refuse with 500 after N bytes), refuses /refuse with 403. */
static int body_fn(hl_http_req *req, int event, const char *data, size_t len, void *ud) {
  fixture *fx = ud;
  stream_st *st = hl_http_req_user(req);
  switch (event) {
  case HL_HTTP_BODY_START:
    if (!strcmp(hl_http_req_path(req), "/refuse"))
      return 403;
    if (strcmp(hl_http_req_path(req), "/stream"))
      return 0;
    st = calloc(1, sizeof(*st));
    st->fail_after = SIZE_MAX;
    if (!strncmp(hl_http_req_query(req), "fail=", 5))
      st->fail_after = (size_t)atol(hl_http_req_query(req) + 5);
    hl_http_req_set_user(req, st);
    atomic_fetch_add(&fx->started, 1);
    return 1;
  case HL_HTTP_BODY_DATA:
    st->bytes += len;
    st->sum = sum_bytes(st->sum, data, len);
    if (len > atomic_load(&fx->max_piece))
      atomic_store(&fx->max_piece, len);
    return st->bytes > st->fail_after ? 500 : 0;
  case HL_HTTP_BODY_ABORT:
    free(st);
    hl_http_req_set_user(req, NULL);
    atomic_fetch_add(&fx->aborted, 1);
    return 0;
  }
  return 0;
}

static fixture *fx_start_with(const hl_http_limits *lim, bool stream) {
  fixture *fx = calloc(1, sizeof(*fx));
  cr_assert_eq(uv_loop_init(&fx->loop), 0);
  cr_assert_eq(hl_http_server_new(&fx->loop, lim, handler, fx, &fx->srv), 0);
  if (stream)
    hl_http_server_set_body_fn(fx->srv, body_fn, fx);
  cr_assert_eq(hl_http_server_listen(fx->srv, "127.0.0.1:0"), 0);
  fx->port = hl_http_server_port(fx->srv);
  cr_assert_gt(fx->port, 0);
  uv_async_init(&fx->loop, &fx->async, on_async);
  fx->async.data = fx;
  fx->close_timeout_ms = 5000;
  cr_assert_eq(pthread_create(&fx->thread, NULL, fx_run, fx), 0);
  return fx;
}

static fixture *fx_start(const hl_http_limits *lim) { return fx_start_with(lim, false); }

static void fx_request_close(fixture *fx) {
  atomic_store(&fx->close_requested, 1);
  uv_async_send(&fx->async);
}

static void fx_stop(fixture *fx) {
  if (!atomic_load(&fx->close_requested))
    fx_request_close(fx);
  pthread_join(fx->thread, NULL);
  cr_assert_eq(atomic_load(&fx->closed_done), 1);
  hl_http_server_free(fx->srv);
  cr_assert_eq(uv_loop_close(&fx->loop), 0);
  free(fx);
}

static hl_http_limits limits(void) {
  hl_http_limits l;
  hl_http_limits_default(&l);
  return l;
}

static uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- Client ------------------------------------------------------------------ */

typedef struct client {
  int fd;
  char buf[1 << 20];
  size_t len;
} client;

typedef struct response {
  int status;
  char head[8192];
  char *body;
  size_t body_len;
} response;

static client *cl_connect(int port) {
  client *c = calloc(1, sizeof(*c));
  c->fd = socket(AF_INET, SOCK_STREAM, 0);
  cr_assert_geq(c->fd, 0);
  struct timeval tv = {.tv_sec = 10};
  setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  int one = 1;
  setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  cr_assert_eq(connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)), 0, "connect: %s", strerror(errno));
  return c;
}

static void cl_close(client *c) {
  close(c->fd);
  free(c);
}

static void cl_send(client *c, const char *s, size_t n) {
  size_t off = 0;
  while (off < n) {
    ssize_t w = send(c->fd, s + off, n - off, MSG_NOSIGNAL);
    cr_assert_gt(w, 0, "send: %s", strerror(errno));
    off += (size_t)w;
  }
}

static void cl_sends(client *c, const char *s) { cl_send(c, s, strlen(s)); }

/* Reads more bytes; 0 on EOF or reset, -1 on timeout. */
static int cl_fill(client *c) {
  cr_assert_lt(c->len, sizeof(c->buf));
  ssize_t n = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, 0);
  if (n > 0) {
    c->len += (size_t)n;
    return 1;
  }
  if (n == 0 || errno == ECONNRESET)
    return 0;
  return -1;
}

static const char *find_header(const char *head, const char *name, char *out, size_t outlen) {
  size_t nl = strlen(name);
  for (const char *p = strstr(head, "\r\n"); p && p[2]; p = strstr(p + 2, "\r\n")) {
    if (strncasecmp(p + 2, name, nl) == 0 && p[2 + nl] == ':') {
      const char *v = p + 3 + nl;
      while (*v == ' ')
        v++;
      size_t n = strcspn(v, "\r");
      snprintf(out, outlen, "%.*s", (int)n, v);
      return out;
    }
  }
  return NULL;
}

/*
 * Reads one response (interim 1xx ones included) into r; head_only for
 * answers to HEAD. Returns the status, 0 on EOF before a response, -1 on
 * timeout.
 */
static int cl_response(client *c, response *r, bool head_only) {
  memset(r, 0, sizeof(*r));
  char *end;
  while (!(end = memmem(c->buf, c->len, "\r\n\r\n", 4))) {
    int f = cl_fill(c);
    if (f <= 0)
      return f;
  }
  size_t hlen = (size_t)(end - c->buf) + 4;
  cr_assert_lt(hlen, sizeof(r->head));
  memcpy(r->head, c->buf, hlen);
  r->head[hlen] = '\0';
  r->status = atoi(r->head + 9);
  char v[64];
  size_t blen = 0;
  if (!head_only && r->status >= 200 && find_header(r->head, "Content-Length", v, sizeof(v)))
    blen = (size_t)strtoull(v, NULL, 10);
  while (c->len < hlen + blen) {
    int f = cl_fill(c);
    cr_assert_gt(f, 0, "connection ended inside a body");
  }
  r->body = malloc(blen + 1);
  memcpy(r->body, c->buf + hlen, blen);
  r->body[blen] = '\0';
  r->body_len = blen;
  memmove(c->buf, c->buf + hlen + blen, c->len - hlen - blen);
  c->len -= hlen + blen;
  return r->status;
}

static void resp_free(response *r) {
  free(r->body);
  r->body = NULL;
}

/* True when the server closes the connection (EOF or reset) with no more data. */
static bool cl_eof(client *c) {
  for (;;) {
    int f = cl_fill(c);
    if (f == 0)
      return c->len == 0;
    if (f < 0)
      return false;
  }
}

static int simple(client *c, const char *req, response *r) {
  cl_sends(c, req);
  return cl_response(c, r, false);
}

/* ---- Tests ---------------------------------------------------------------------- */

Test(http, simple_get) {
  fixture *fx = fx_start(NULL);
  client *c = cl_connect(fx->port);
  response r;
  cr_assert_eq(simple(c, "GET /echo/a%20b?x=1&y=%41 HTTP/1.1\r\nHost: t\r\n\r\n", &r), 200);
  cr_assert_str_eq(r.body, "GET /echo/a b x=1&y=%41 ");
  char v[128];
  cr_assert_str_eq(find_header(r.head, "Content-Length", v, sizeof(v)), "24");
  cr_assert_str_eq(find_header(r.head, "Connection", v, sizeof(v)), "keep-alive");
  cr_assert_str_eq(find_header(r.head, "Content-Type", v, sizeof(v)), "text/plain");
  cr_assert_not_null(find_header(r.head, "Date", v, sizeof(v)));
  cr_assert(strstr(v, " GMT") != NULL, "%s", v);
  resp_free(&r);
  /* Absolute-form target, header lookup, custom headers. */
  cr_assert_eq(simple(c, "GET http://h:1/hdr?q HTTP/1.1\r\nHost: t\r\nX-TEST: v1\r\n\r\n", &r), 200);
  cr_assert_str_eq(r.body, "v1");
  cr_assert_str_eq(find_header(r.head, "X-Seen", v, sizeof(v)), "v1");
  resp_free(&r);
  cl_close(c);
  fx_stop(fx);
}

Test(http, keep_alive_and_http10) {
  fixture *fx = fx_start(NULL);
  client *c = cl_connect(fx->port);
  response r;
  char v[64];
  for (int i = 0; i < 5; i++) {
    cr_assert_eq(simple(c, "GET /k HTTP/1.1\r\nHost: t\r\n\r\n", &r), 200);
    resp_free(&r);
  }
  cr_assert_eq(simple(c, "GET /k HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", &r), 200);
  cr_assert_str_eq(find_header(r.head, "Connection", v, sizeof(v)), "keep-alive");
  resp_free(&r);
  cr_assert_eq(simple(c, "GET /k HTTP/1.0\r\n\r\n", &r), 200);
  cr_assert_str_eq(find_header(r.head, "Connection", v, sizeof(v)), "close");
  resp_free(&r);
  cr_assert(cl_eof(c));
  cl_close(c);
  /* Connection: close on HTTP/1.1. */
  c = cl_connect(fx->port);
  cr_assert_eq(simple(c, "GET /k HTTP/1.1\r\nConnection: close\r\n\r\n", &r), 200);
  cr_assert_str_eq(find_header(r.head, "Connection", v, sizeof(v)), "close");
  resp_free(&r);
  cr_assert(cl_eof(c));
  cl_close(c);
  fx_stop(fx);
}

Test(http, pipelining_in_order_with_late_first_answer) {
  fixture *fx = fx_start(NULL);
  client *c = cl_connect(fx->port);
  cl_sends(c, "GET /late?ms=200 HTTP/1.1\r\nHost: t\r\n\r\n"
              "GET /p2 HTTP/1.1\r\nHost: t\r\n\r\n"
              "POST /p3 HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc"
              "GET /late?ms=1 HTTP/1.1\r\nHost: t\r\n\r\n"
              "GET /p5?z HTTP/1.1\r\nHost: t\r\n\r\n");
  const char *want[] = {"late /late", "GET /p2  ", "POST /p3  abc", "late /late", "GET /p5 z "};
  for (int i = 0; i < 5; i++) {
    response r;
    cr_assert_eq(cl_response(c, &r, false), 200);
    cr_assert_str_eq(r.body, want[i], "response %d", i);
    resp_free(&r);
  }
  cl_close(c);
  fx_stop(fx);
}

Test(http, request_split_byte_by_byte) {
  fixture *fx = fx_start(NULL);
  client *c = cl_connect(fx->port);
  const char *req = "POST /split?a=b HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                    "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
  for (size_t i = 0; req[i]; i++)
    cl_send(c, req + i, 1);
  response r;
  cr_assert_eq(cl_response(c, &r, false), 200);
  cr_assert_str_eq(r.body, "POST /split a=b abcde");
  resp_free(&r);
  cl_close(c);
  fx_stop(fx);
}

static void expect_error_and_close(fixture *fx, const char *req, int status) {
  client *c = cl_connect(fx->port);
  response r;
  cl_sends(c, req);
  cr_assert_eq(cl_response(c, &r, false), status, "%s", req);
  char v[64];
  cr_assert_str_eq(find_header(r.head, "Content-Type", v, sizeof(v)), "application/json");
  cr_assert_str_eq(find_header(r.head, "Connection", v, sizeof(v)), "close");
  cr_assert(strncmp(r.body, "{\"error\":\"", 10) == 0, "%s", r.body);
  resp_free(&r);
  cr_assert(cl_eof(c), "connection not closed after %d", status);
  cl_close(c);
}

Test(http, malformed_requests_400) {
  fixture *fx = fx_start(NULL);
  expect_error_and_close(fx, "GARBAGE\r\n\r\n", 400);
  expect_error_and_close(fx, "GET / HTTP/9.9\r\n\r\n", 400);
  expect_error_and_close(fx, "GET / HTTP/1.1\r\nbad header line\r\n\r\n", 400);
  expect_error_and_close(fx, "GET /a%zz HTTP/1.1\r\n\r\n", 400);
  expect_error_and_close(fx, "GET /a%00b HTTP/1.1\r\n\r\n", 400);
  expect_error_and_close(fx, "POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400);
  expect_error_and_close(fx, "CONNECT h:443 HTTP/1.1\r\n\r\n", 400);
  /* A good request before the bad one is answered first. */
  client *c = cl_connect(fx->port);
  cl_sends(c, "GET /ok HTTP/1.1\r\n\r\nBAD\x01\r\n\r\n");
  response r;
  cr_assert_eq(cl_response(c, &r, false), 200);
  resp_free(&r);
  cr_assert_eq(cl_response(c, &r, false), 400);
  resp_free(&r);
  cr_assert(cl_eof(c));
  cl_close(c);
  fx_stop(fx);
}

Test(http, limits_414_431_413) {
  hl_http_limits l = limits();
  l.max_url_bytes = 100;
  l.max_header_bytes = 1024;
  l.max_headers = 5;
  l.max_body_bytes = 100;
  fixture *fx = fx_start(&l);
  char req[8192];
  char big[4096];
  memset(big, 'a', sizeof(big) - 1);
  big[sizeof(big) - 1] = '\0';
  snprintf(req, sizeof(req), "GET /%.150s HTTP/1.1\r\n\r\n", big);
  expect_error_and_close(fx, req, 414);
  snprintf(req, sizeof(req), "GET / HTTP/1.1\r\nX-Big: %.2000s\r\n\r\n", big);
  expect_error_and_close(fx, req, 431);
  expect_error_and_close(fx, "GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\nE: 5\r\nF: 6\r\n\r\n", 431);
  /* Many small headers within the count but beyond the byte limit. */
  snprintf(req, sizeof(req), "GET / HTTP/1.1\r\nA: %.300s\r\nB: %.300s\r\nC: %.300s\r\nD: %.300s\r\n\r\n",
           big, big, big, big);
  expect_error_and_close(fx, req, 431);
  /* Exactly at the limits is fine. */
  client *c = cl_connect(fx->port);
  response r;
  snprintf(req, sizeof(req),
           "POST /%.99s HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\nContent-Length: 100\r\n\r\n%.100s", big,
           big);
  cr_assert_eq(simple(c, req, &r), 200);
  resp_free(&r);
  cl_close(c);
  /* Content-Length beyond the limit: answered before the body is sent. */
  expect_error_and_close(fx, "POST / HTTP/1.1\r\nContent-Length: 1000\r\n\r\n", 413);
  /* Chunked bodies count too. */
  snprintf(req, sizeof(req),
           "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n40\r\n%.64s\r\n40\r\n%.64s\r\n0\r\n\r\n", big,
           big);
  expect_error_and_close(fx, req, 413);
  fx_stop(fx);
}

Test(http, slow_client_408) {
  hl_http_limits l = limits();
  l.request_timeout_ms = 300;
  fixture *fx = fx_start(&l);
  client *c = cl_connect(fx->port);
  uint64_t t0 = now_ms();
  cl_sends(c, "GET / HTTP/1.1\r\nHost: t\r\n");
  response r;
  cr_assert_eq(cl_response(c, &r, false), 408);
  uint64_t dt = now_ms() - t0;
  cr_assert_geq(dt, 250);
  cr_assert_lt(dt, 5000);
  resp_free(&r);
  cr_assert(cl_eof(c));
  cl_close(c);
  /* Trickling bytes does not extend the deadline. */
  c = cl_connect(fx->port);
  t0 = now_ms();
  const char *part = "GET / HTTP/1.1\r\nX: ";
  cl_sends(c, part);
  int status = 0;
  for (int i = 0; i < 40 && !status; i++) {
    struct pollfd p = {.fd = c->fd, .events = POLLIN};
    if (poll(&p, 1, 50) > 0) {
      status = cl_response(c, &r, false);
      resp_free(&r);
    } else {
      send(c->fd, "a", 1, MSG_NOSIGNAL);
    }
  }
  cr_assert_eq(status, 408);
  cr_assert_lt(now_ms() - t0, 1900);
  cl_close(c);
  fx_stop(fx);
}

Test(http, idle_keep_alive_closed) {
  hl_http_limits l = limits();
  l.idle_timeout_ms = 200;
  fixture *fx = fx_start(&l);
  client *c = cl_connect(fx->port);
  response r;
  /* Requests spaced below the idle timeout keep the connection. */
  for (int i = 0; i < 3; i++) {
    cr_assert_eq(simple(c, "GET / HTTP/1.1\r\n\r\n", &r), 200);
    resp_free(&r);
    usleep(120 * 1000);
  }
  uint64_t t0 = now_ms();
  cr_assert(cl_eof(c));
  cr_assert_lt(now_ms() - t0, 3000);
  cl_close(c);
  /* A connection that never sends is closed too. */
  c = cl_connect(fx->port);
  cr_assert(cl_eof(c));
  cl_close(c);
  fx_stop(fx);
}

Test(http, head_has_no_body) {
  fixture *fx = fx_start(NULL);
  client *c = cl_connect(fx->port);
  response r;
  cl_sends(c, "HEAD /h HTTP/1.1\r\n\r\nGET /g HTTP/1.1\r\n\r\n");
  cr_assert_eq(cl_response(c, &r, true), 200);
  char v[64];
  cr_assert_str_eq(find_header(r.head, "Content-Length", v, sizeof(v)), "9", "length of \"HEAD /h  \"");
  resp_free(&r);
  cr_assert_eq(cl_response(c, &r, false), 200);
  cr_assert_str_eq(r.body, "GET /g  ");
  resp_free(&r);
  cl_close(c);
  fx_stop(fx);
}

Test(http, expect_100_continue) {
  fixture *fx = fx_start(NULL);
  client *c = cl_connect(fx->port);
  response r;
  cl_sends(c, "POST /up HTTP/1.1\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n");
  cr_assert_eq(cl_response(c, &r, false), 100);
  resp_free(&r);
  cl_sends(c, "hello");
  cr_assert_eq(cl_response(c, &r, false), 200);
  cr_assert_str_eq(r.body, "POST /up  hello");
  resp_free(&r);
  cl_close(c);
  /* Too large: 413 instead of 100. */
  expect_error_and_close(fx, "POST /up HTTP/1.1\r\nContent-Length: 99999999\r\nExpect: 100-continue\r\n\r\n", 413);
  expect_error_and_close(fx, "POST /up HTTP/1.1\r\nContent-Length: 1\r\nExpect: tea\r\n\r\n", 417);
  fx_stop(fx);
}

Test(http, connection_limit_503) {
  hl_http_limits l = limits();
  l.max_connections = 2;
  fixture *fx = fx_start(&l);
  client *a = cl_connect(fx->port), *b = cl_connect(fx->port);
  response r;
  cr_assert_eq(simple(a, "GET / HTTP/1.1\r\n\r\n", &r), 200);
  resp_free(&r);
  cr_assert_eq(simple(b, "GET / HTTP/1.1\r\n\r\n", &r), 200);
  resp_free(&r);
  client *c = cl_connect(fx->port);
  cl_sends(c, "GET / HTTP/1.1\r\n\r\n");
  cr_assert_eq(cl_response(c, &r, false), 503);
  resp_free(&r);
  cr_assert(cl_eof(c));
  cl_close(c);
  /* Once one closes, a new connection is served. */
  cl_close(a);
  int status = 0;
  for (int i = 0; i < 100 && status != 200; i++) {
    c = cl_connect(fx->port);
    status = simple(c, "GET / HTTP/1.1\r\n\r\n", &r);
    resp_free(&r);
    cl_close(c);
    if (status != 200)
      usleep(20 * 1000);
  }
  cr_assert_eq(status, 200);
  cl_close(b);
  fx_stop(fx);
}

Test(http, graceful_close_finishes_in_flight) {
  fixture *fx = fx_start(NULL);
  client *c = cl_connect(fx->port);
  client *idle = cl_connect(fx->port);
  cl_sends(c, "GET /late?ms=300 HTTP/1.1\r\n\r\n");
  for (int i = 0; i < 500 && atomic_load(&fx->handled) < 1; i++)
    usleep(10 * 1000);
  cr_assert_eq(atomic_load(&fx->handled), 1);
  fx_request_close(fx);
  /* The idle keep-alive connection is closed at once. */
  cr_assert(cl_eof(idle));
  cl_close(idle);
  response r;
  cr_assert_eq(cl_response(c, &r, false), 200);
  cr_assert_str_eq(r.body, "late /late");
  char v[64];
  cr_assert_str_eq(find_header(r.head, "Connection", v, sizeof(v)), "close");
  resp_free(&r);
  cr_assert(cl_eof(c));
  cl_close(c);
  int answer = atomic_load(&fx->orphan_result);
  fx_stop(fx);
  cr_assert_eq(answer, 0);
}

Test(http, close_timeout_orphans_request) {
  fixture *fx = fx_start(NULL);
  fx->close_timeout_ms = 100;
  client *c = cl_connect(fx->port);
  cl_sends(c, "GET /late?ms=600 HTTP/1.1\r\n\r\n");
  for (int i = 0; i < 500 && atomic_load(&fx->handled) < 1; i++)
    usleep(10 * 1000);
  fx_request_close(fx);
  cr_assert(cl_eof(c));
  cl_close(c);
  /* The loop ends once the late answer (to an orphan) ran. */
  pthread_join(fx->thread, NULL);
  cr_assert_eq(atomic_load(&fx->closed_done), 1);
  cr_assert_eq(atomic_load(&fx->orphan_result), HL_ECLOSED);
  hl_http_server_free(fx->srv);
  cr_assert_eq(uv_loop_close(&fx->loop), 0);
  free(fx);
}

Test(http, client_not_reading_pauses_server) {
  hl_http_limits l = limits();
  l.max_pipelined = 4;
  fixture *fx = fx_start(&l);
  client *c = calloc(1, sizeof(*c));
  c->fd = socket(AF_INET, SOCK_STREAM, 0);
  int small = 32 * 1024;
  setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
  struct timeval tv = {.tv_sec = 10};
  setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)fx->port)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  cr_assert_eq(connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
  enum { N = 60 };
  char reqs[N * 40];
  size_t off = 0;
  for (int i = 0; i < N; i++)
    off += (size_t)sprintf(reqs + off, "GET /big?kb=256 HTTP/1.1\r\n\r\n");
  cl_send(c, reqs, off);
  /* Without reading, the server must stop well short of N (about 2 MiB in kernel buffers). */
  int last = -1;
  for (int i = 0; i < 20 && last != atomic_load(&fx->handled); i++) {
    last = atomic_load(&fx->handled);
    usleep(100 * 1000);
  }
  int paused_at = atomic_load(&fx->handled);
  cr_assert_lt(paused_at, 40, "server kept answering a client that does not read: %d", paused_at);
  for (int i = 0; i < N; i++) {
    response r;
    cr_assert_eq(cl_response(c, &r, false), 200, "response %d", i);
    cr_assert_eq(r.body_len, 256 * 1024);
    resp_free(&r);
  }
  cr_assert_eq(atomic_load(&fx->handled), N);
  cl_close(c);
  fx_stop(fx);
}

/* ---- The connection state machine without sockets ---------------------------------- */

static void sync_handler(hl_http_req *req, void *ud) {
  size_t n;
  const char *b = hl_http_req_body(req, &n);
  char out[256];
  int len = snprintf(out, sizeof(out), "%s|%s|%s|%.*s", hl_http_req_method(req), hl_http_req_path(req),
                     hl_http_req_header(req, "x") ? hl_http_req_header(req, "x") : "-", (int)n, b);
  hl_http_respond(req, 200, NULL, out, (size_t)len);
}

/* Drops the Date header so that outputs compare equal. */
static char *strip_dates(const hl_buf *b) {
  char *s = strndup(b->data ? b->data : "", b->len);
  char *p;
  while ((p = strstr(s, "Date: "))) {
    char *e = strstr(p, "\r\n");
    memmove(p, e + 2, strlen(e + 2) + 1);
  }
  return s;
}

Test(http, detached_every_split_point_same_answer) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  hl_http_server *s;
  cr_assert_eq(hl_http_server_new(&loop, NULL, sync_handler, NULL, &s), 0);
  const char *in = "GET /a HTTP/1.1\r\nX: 1\r\n\r\n"
                   "POST /b%2Fc HTTP/1.1\r\nTransfer-Encoding: chunked\r\nX:\r\n\r\n4\r\nbody\r\n0\r\n\r\n"
                   "PUT /d HTTP/1.1\r\nContent-Length: 2\r\n\r\nok";
  size_t n = strlen(in);
  hl__http_conn *c;
  cr_assert_eq(hl__http_conn_new_detached(s, &c), 0);
  hl__http_conn_feed(c, in, n);
  char *want = strip_dates(hl__http_conn_output(c));
  hl__http_conn_free_detached(c);
  cr_assert(strstr(want, "GET|/a|1|") != NULL, "%s", want);
  cr_assert(strstr(want, "POST|/b/c||body") != NULL, "%s", want);
  cr_assert(strstr(want, "PUT|/d|-|ok") != NULL, "%s", want);
  for (size_t i = 1; i < n; i++) {
    for (size_t j = i; j < n; j += 7) {
      cr_assert_eq(hl__http_conn_new_detached(s, &c), 0);
      hl__http_conn_feed(c, in, i);
      hl__http_conn_feed(c, in + i, j - i);
      hl__http_conn_feed(c, in + j, n - j);
      char *got = strip_dates(hl__http_conn_output(c));
      cr_assert_str_eq(got, want, "split at %zu,%zu", i, j);
      free(got);
      hl__http_conn_free_detached(c);
    }
  }
  free(want);
  hl_http_server_free(s);
  uv_loop_close(&loop);
}

/* ---- Streamed bodies -------------------------------------------------------------- */

/* Connects and sends the head of a 50,000-byte POST /stream and its first n bytes; waits until it started. */
static client *partial_post(fixture *fx, const char *big, size_t n) {
  int before = atomic_load(&fx->started);
  client *c = cl_connect(fx->port);
  cl_sends(c, "POST /stream HTTP/1.1\r\nContent-Length: 50000\r\n\r\n");
  cl_send(c, big, n);
  for (int i = 0; i < 1000 && atomic_load(&fx->started) == before; i++)
    usleep(10000);
  cr_assert_gt(atomic_load(&fx->started), before);
  return c;
}

static bool wait_aborted(fixture *fx, int n) {
  for (int i = 0; i < 1000 && atomic_load(&fx->aborted) < n; i++)
    usleep(10000);
  return atomic_load(&fx->aborted) == n;
}

Test(http, stream_body_in_pieces) {
  hl_http_limits l = limits();
  l.max_body_bytes = 8u << 20;
  fixture *fx = fx_start_with(&l, true);
  size_t n = 4u << 20;
  char *big = malloc(n);
  for (size_t i = 0; i < n; i++)
    big[i] = (char)('a' + i % 26);
  char want[128];
  snprintf(want, sizeof(want), "streamed %zu %08x buffered 0", n, sum_bytes(0, big, n));
  client *c = cl_connect(fx->port);
  response r;
  char head[256];
  snprintf(head, sizeof(head), "POST /stream HTTP/1.1\r\nHost: t\r\nContent-Length: %zu\r\n\r\n", n);
  cl_sends(c, head);
  cl_send(c, big, n);
  cr_assert_eq(cl_response(c, &r, false), 200);
  cr_assert_str_eq(r.body, want);
  resp_free(&r);
  /* Pieces as they arrive, never the whole body at once. */
  cr_assert_leq(atomic_load(&fx->max_piece), 256u * 1024);
  cr_assert_gt(atomic_load(&fx->max_piece), 0);
  /* Chunked, on the same connection, with Expect: 100-continue. */
  cl_sends(c, "POST /stream HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nTransfer-Encoding: chunked\r\n\r\n");
  cr_assert_eq(cl_response(c, &r, false), 100);
  resp_free(&r);
  cl_sends(c, "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n");
  cr_assert_eq(cl_response(c, &r, false), 200);
  snprintf(want, sizeof(want), "streamed 11 %08x buffered 0", sum_bytes(0, "hello world", 11));
  cr_assert_str_eq(r.body, want);
  resp_free(&r);
  /* Other paths keep the buffered mode, pipelined behind a streamed one. */
  cl_sends(c, "POST /stream HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcPOST /echo HTTP/1.1\r\nContent-Length: 4\r\n\r\nbody");
  cr_assert_eq(cl_response(c, &r, false), 200);
  snprintf(want, sizeof(want), "streamed 3 %08x buffered 0", sum_bytes(0, "abc", 3));
  cr_assert_str_eq(r.body, want);
  resp_free(&r);
  cr_assert_eq(cl_response(c, &r, false), 200);
  cr_assert_str_eq(r.body, "POST /echo  body");
  resp_free(&r);
  /* A streamed request without a body reaches the handler too. */
  cr_assert_eq(simple(c, "GET /stream HTTP/1.1\r\n\r\n", &r), 200);
  snprintf(want, sizeof(want), "streamed 0 %08x buffered 0", 0u);
  cr_assert_str_eq(r.body, want);
  resp_free(&r);
  cl_close(c);
  cr_assert_eq(atomic_load(&fx->started), 4);
  cr_assert_eq(atomic_load(&fx->aborted), 0);
  fx_stop(fx);
  free(big);
}

Test(http, stream_limits_refusals_and_aborts) {
  hl_http_limits l = limits();
  l.max_body_bytes = 64 * 1024;
  l.request_timeout_ms = 300;
  fixture *fx = fx_start_with(&l, true);
  char *big = malloc(100 * 1024);
  memset(big, 'z', 100 * 1024);
  char head[256];
  /* Past max_body_bytes while streaming (chunked, no Content-Length to check first): 413, then ABORT. */
  client *c = cl_connect(fx->port);
  response r;
  cl_sends(c, "POST /stream HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n19000\r\n");
  cl_send(c, big, 100 * 1024);
  cl_sends(c, "\r\n0\r\n\r\n");
  cr_assert_eq(cl_response(c, &r, false), 413);
  resp_free(&r);
  cr_assert(cl_eof(c));
  cl_close(c);
  cr_assert(wait_aborted(fx, 1));
  /* Content-Length over the limit: 413 before the body function hears of it. */
  expect_error_and_close(fx, "POST /stream HTTP/1.1\r\nContent-Length: 70000\r\n\r\n", 413);
  cr_assert_eq(atomic_load(&fx->started), 1);
  /* Refused at the start. */
  expect_error_and_close(fx, "POST /refuse HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc", 403);
  /* Refused by a piece: the body function's status, then ABORT. */
  snprintf(head, sizeof(head), "POST /stream?fail=1000 HTTP/1.1\r\nContent-Length: %d\r\n\r\n", 50 * 1024);
  c = cl_connect(fx->port);
  cl_sends(c, head);
  cl_send(c, big, 50 * 1024);
  cr_assert_eq(cl_response(c, &r, false), 500);
  resp_free(&r);
  cl_close(c);
  cr_assert(wait_aborted(fx, 2));
  /* The client goes away in the middle of the body. */
  c = partial_post(fx, big, 20000);
  cl_close(c);
  cr_assert(wait_aborted(fx, 3));
  /* A body that does not complete in time: 408, then ABORT. */
  c = partial_post(fx, big, 1000);
  cr_assert_eq(cl_response(c, &r, false), 408);
  resp_free(&r);
  cl_close(c);
  cr_assert(wait_aborted(fx, 4));
  cr_assert_eq(atomic_load(&fx->handled), 0);
  /* The server closing with a body in flight aborts it too. */
  c = partial_post(fx, big, 100);
  fx_request_close(fx);
  cr_assert(wait_aborted(fx, 5));
  cl_close(c);
  fx_stop(fx);
  free(big);
}
