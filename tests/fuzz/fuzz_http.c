/*
 * libFuzzer target for the HTTP server's request path: arbitrary bytes go
 * through the connection state machine (llhttp parsing, limits, pipelining,
 * answers in order) without sockets.
 *
 * The first input byte picks a mode: bit 0 answers requests asynchronously
 * (after each chunk), bit 1 answers held requests newest first, bits 2-4
 * pick the chunk size the rest of the input is fed in, bit 5 streams the
 * bodies of requests whose path has an odd length to a body function
 * (bit 6: which refuses them with 413 once past 100 bytes).
 *
 * Oracle: the bytes written must parse as a sequence of HTTP/1.1 responses
 * (llhttp in response mode), with exactly one final response per request
 * handed to the handler plus one per server-generated error; every streamed
 * body either reaches the handler or is aborted, exactly once.
 */
#include <llhttp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../libstream/src/http_internal.h"
#include "hl/http.h"

#define MAX_HELD 64
#define MAX_REQS 4096

static uv_loop_t loop;
static hl_http_server *srv;
static bool async_mode;
static hl_http_req *held[MAX_HELD];
static size_t nheld;
static bool req_is_head[MAX_REQS];
static size_t nreqs;
static bool refuse_mode;
static long streams_open;

/* A streamed body's state: its byte count. */
static int body_fn(hl_http_req *req, int event, const char *data, size_t len, void *ud) {
  (void)data;
  (void)ud;
  size_t *st = hl_http_req_user(req);
  switch (event) {
  case HL_HTTP_BODY_START:
    if (strlen(hl_http_req_path(req)) % 2 == 0)
      return 0;
    st = calloc(1, sizeof(*st));
    if (!st)
      abort();
    hl_http_req_set_user(req, st);
    streams_open++;
    return 1;
  case HL_HTTP_BODY_DATA:
    *st += len;
    return refuse_mode && *st > 100 ? 413 : 0;
  case HL_HTTP_BODY_ABORT:
    free(st);
    hl_http_req_set_user(req, NULL);
    streams_open--;
    return 0;
  default:
    abort();
  }
}

static void answer(hl_http_req *req) {
  size_t n;
  const char *body = hl_http_req_body(req, &n);
  char out[128];
  int len = snprintf(out, sizeof(out), "%s %s %s %zu %s", hl_http_req_method(req), hl_http_req_path(req),
                     hl_http_req_query(req), n, hl_http_req_header(req, "x") ? "x" : "-");
  size_t olen = len < 0 ? 0 : (size_t)len >= sizeof(out) ? sizeof(out) - 1 : (size_t)len;
  int rc = hl_http_respond(req, 200, "text/plain", out, olen);
  if (rc != 0) {
    fprintf(stderr, "respond failed: %d\n", rc);
    abort();
  }
  (void)body;
}

static void handler(hl_http_req *req, void *ud) {
  (void)ud;
  size_t *st = hl_http_req_user(req);
  if (st) {
    size_t n;
    hl_http_req_body(req, &n);
    if (n != 0 || !hl_http_req_streamed(req))
      abort();
    free(st);
    hl_http_req_set_user(req, NULL);
    streams_open--;
  }
  if (nreqs < MAX_REQS)
    req_is_head[nreqs] = strcmp(hl_http_req_method(req), "HEAD") == 0;
  nreqs++;
  if (async_mode && nheld < MAX_HELD) {
    held[nheld++] = req;
    return;
  }
  answer(req);
}

static void answer_held(bool newest_first) {
  while (nheld) {
    hl_http_req *r;
    if (newest_first) {
      r = held[--nheld];
    } else {
      r = held[0];
      memmove(held, held + 1, (nheld - 1) * sizeof(*held));
      nheld--;
    }
    answer(r);
  }
}

typedef struct oracle {
  size_t finals;
  size_t interims;
} oracle;

static int on_resp_headers(llhttp_t *p) {
  oracle *o = p->data;
  if (p->status_code < 200) {
    o->interims++;
    return 0;
  }
  size_t i = o->finals++;
  return i < MAX_REQS && i < nreqs && req_is_head[i] ? 1 : 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!srv) {
    uv_loop_init(&loop);
    hl_http_limits l;
    hl_http_limits_default(&l);
    l.max_url_bytes = 256;
    l.max_header_bytes = 1024;
    l.max_headers = 16;
    l.max_body_bytes = 4096;
    l.max_pipelined = 4;
    if (hl_http_server_new(&loop, &l, handler, NULL, &srv) != 0)
      abort();
  }
  if (size == 0)
    return 0;
  uint8_t mode = data[0];
  data++;
  size--;
  async_mode = mode & 1;
  bool newest_first = mode & 2;
  refuse_mode = mode & 64;
  hl_http_server_set_body_fn(srv, (mode & 32) ? body_fn : NULL, NULL);
  streams_open = 0;
  size_t chunk = (size_t)1 << ((mode >> 2) & 7); /* 1 .. 128 */
  if (((mode >> 2) & 7) == 7)
    chunk = size ? size : 1;
  nreqs = 0;
  nheld = 0;
  hl_http_stats before;
  hl_http_server_stats(srv, &before);

  hl__http_conn *c;
  if (hl__http_conn_new_detached(srv, &c) != 0)
    abort();
  for (size_t off = 0; off < size; off += chunk) {
    size_t n = size - off < chunk ? size - off : chunk;
    hl__http_conn_feed(c, (const char *)data + off, n);
    answer_held(newest_first);
  }
  hl__http_conn_eof(c);
  /* Answers may let buffered input be parsed, which may hold more requests. */
  for (int i = 0; i < 1000 && nheld; i++)
    answer_held(newest_first);
  if (nheld)
    abort();

  hl_http_stats after;
  hl_http_server_stats(srv, &after);
  size_t expected = nreqs + (size_t)(after.errors_total - before.errors_total);
  if (after.requests_total - before.requests_total != nreqs)
    abort();

  const hl_buf *out = hl__http_conn_output(c);
  llhttp_settings_t st;
  llhttp_settings_init(&st);
  st.on_headers_complete = on_resp_headers;
  llhttp_t p;
  llhttp_init(&p, HTTP_RESPONSE, &st);
  oracle o = {0, 0};
  p.data = &o;
  if (out->len) {
    llhttp_errno_t e = llhttp_execute(&p, out->data, out->len);
    if (e != HPE_OK) {
      fprintf(stderr, "server output does not parse: %s (%s)\n%.*s\n", llhttp_errno_name(e),
              llhttp_get_error_reason(&p), (int)out->len, out->data);
      abort();
    }
  }
  if (o.finals != expected) {
    fprintf(stderr, "responses %zu, expected %zu (requests %zu)\n%.*s\n", o.finals, expected, nreqs,
            (int)out->len, out->data);
    abort();
  }
  hl__http_conn_free_detached(c);
  if (streams_open != 0) {
    fprintf(stderr, "streamed bodies neither handled nor aborted: %ld\n", streams_open);
    abort();
  }
  return 0;
}
