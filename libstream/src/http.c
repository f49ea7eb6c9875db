/*
 * HTTP/1.1 server: libuv for the sockets, llhttp for the parsing.
 *
 * The connection is a state machine fed with bytes (conn_parse) that queues
 * requests in arrival order and writes answered responses from the head of
 * that queue (conn_flush). A "transport" is either a TCP socket or, for the
 * fuzz target, an in-memory sink (see http_internal.h).
 *
 * Flow control: parsing stops while max_pipelined requests are unanswered,
 * while more than WRITE_HIGH_WATER bytes wait to be written (a client that
 * does not read), or once no further request will be accepted. Bytes read
 * but not parsed stay in the connection's input buffer and reading from the
 * socket stops, so memory per connection is bounded by the limits.
 *
 * Every error answer closes the connection with a "lingering close": the
 * write side is shut down and input is read and discarded for up to
 * LINGER_MS, so that the client reads the answer instead of a reset.
 */
#include "hl/http.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <llhttp.h>

#include "hl/buf.h"
#include "hl/error.h"
#include "http_internal.h"

#define READ_BUF_SIZE (64 * 1024)
#define INBUF_MAX (4 * READ_BUF_SIZE)
#define WRITE_HIGH_WATER (256 * 1024)
#define LINGER_MS 1000
#define LINGER_MAX_BYTES (1024 * 1024)
#define DETACHED_OUT_MAX (4 * 1024 * 1024)
#define NO_VALUE UINT32_MAX

enum req_state { REQ_PARSING, REQ_DISPATCHED, REQ_ANSWERED };
enum conn_kind { CONN_SOCKET, CONN_DETACHED };
enum timer_mode { T_NONE, T_REQUEST, T_IDLE, T_WRITE, T_LINGER };

typedef struct req_hdr {
  uint32_t name;
  uint32_t value;
} req_hdr;

struct hl_http_req {
  hl__http_conn *conn; /* NULL once orphaned */
  hl_http_req *next;
  /* The target at offset 0, then header names and values, then the decoded
     path and the query, each NUL-terminated. */
  hl_buf head;
  hl_buf body;
  req_hdr *hdrs;
  size_t nhdrs;
  size_t caphdrs;
  size_t path_off;
  size_t query_off;
  size_t piece_start;
  bool piece_open;
  bool headers_done;
  const char *method;
  uint8_t state;
  bool keep_alive;
  bool is_head;
  bool want_continue;
  bool continue_sent;
  uint64_t done_ns;
  /* Streamed body: the body function while the stream is open (NULL once
     the request reached the handler or was aborted). */
  hl_http_body_fn body_fn;
  void *body_ud;
  bool streamed;
  uint64_t body_seen;
  void *user;
  hl_buf out;          /* the response: head (without Connection) then body */
  size_t out_head_len;
};

struct hl__http_conn {
  hl_http_server *srv;
  hl__http_conn *prev;
  hl__http_conn *next;
  int kind;
  llhttp_t parser;
  hl_http_req *cur;   /* the request being parsed */
  hl_http_req *qhead; /* dispatched requests, in order, until written */
  hl_http_req *qtail;
  size_t nqueued;
  hl_buf inbuf;       /* read but not yet parsed */
  uint64_t fed;       /* bytes parsed before the current chunk */
  const char *chunk;  /* start of the chunk being parsed */
  uint64_t msg_start; /* position of the current request's first byte */
  size_t url_len;
  int fail_status;
  const char *fail_msg;
  bool in_message;
  bool no_more;  /* no further request will be parsed */
  bool eof;
  bool closing;
  bool aborted;
  bool pumping;
  bool reading;
  bool rejected;
  bool timer_restart; /* activity: restart the idle or write timer */
  bool req_restart;   /* a request began: restart the request timer */
  bool method_seen;
  /* Socket transport. */
  uv_tcp_t tcp;
  uv_timer_t timer;
  uv_shutdown_t shutdown;
  int handles_open;
  int tmode;
  size_t wq_bytes;
  size_t lingered;
  /* Detached transport. */
  hl_buf sink;
};

struct hl_http_server {
  uv_loop_t *loop;
  hl_http_limits lim;
  hl_http_handler_fn handler;
  void *ud;
  hl_http_observe_fn observe;
  void *observe_ud;
  hl_http_body_fn body_fn;
  void *body_ud;
  llhttp_settings_t settings;
  uv_tcp_t listener;
  bool listener_open;
  uv_timer_t close_timer;
  bool close_timer_open;
  bool close_timer_closing;
  int port;
  hl__http_conn *conns;
  size_t nconns;    /* open connection objects, rejected ones included */
  size_t nrejected; /* of which rejected (answered 503) */
  hl_http_stats stats;
  bool closing;
  bool done_called;
  void (*done)(void *ud);
  void *done_ud;
  char *rbuf;
  time_t date_time;
  char date[64];
};

typedef struct write_req {
  uv_write_t w;
  char *data;
  size_t len;
} write_req;

static void conn_pump(hl__http_conn *c);
static void conn_flush(hl__http_conn *c);
static void conn_fail(hl__http_conn *c, int status, const char *msg);
static void conn_close_graceful(hl__http_conn *c);
static void conn_abort(hl__http_conn *c);
static void server_check_done(hl_http_server *s);

/* ---- Limits, reasons, dates ---------------------------------------------- */

void hl_http_limits_default(hl_http_limits *l) {
  l->max_url_bytes = 8 * 1024;
  l->max_header_bytes = 16 * 1024;
  l->max_headers = 100;
  l->max_body_bytes = 1024 * 1024;
  l->idle_timeout_ms = 30000;
  l->request_timeout_ms = 10000;
  l->max_connections = 1024;
  l->max_pipelined = 16;
}

const char *hl_http_status_reason(int status) {
  switch (status) {
  case 100: return "Continue";
  case 101: return "Switching Protocols";
  case 200: return "OK";
  case 201: return "Created";
  case 202: return "Accepted";
  case 204: return "No Content";
  case 206: return "Partial Content";
  case 301: return "Moved Permanently";
  case 302: return "Found";
  case 303: return "See Other";
  case 304: return "Not Modified";
  case 307: return "Temporary Redirect";
  case 308: return "Permanent Redirect";
  case 400: return "Bad Request";
  case 401: return "Unauthorized";
  case 403: return "Forbidden";
  case 404: return "Not Found";
  case 405: return "Method Not Allowed";
  case 406: return "Not Acceptable";
  case 408: return "Request Timeout";
  case 409: return "Conflict";
  case 410: return "Gone";
  case 411: return "Length Required";
  case 412: return "Precondition Failed";
  case 413: return "Content Too Large";
  case 414: return "URI Too Long";
  case 415: return "Unsupported Media Type";
  case 416: return "Range Not Satisfiable";
  case 417: return "Expectation Failed";
  case 422: return "Unprocessable Content";
  case 428: return "Precondition Required";
  case 429: return "Too Many Requests";
  case 431: return "Request Header Fields Too Large";
  case 500: return "Internal Server Error";
  case 501: return "Not Implemented";
  case 502: return "Bad Gateway";
  case 503: return "Service Unavailable";
  case 504: return "Gateway Timeout";
  case 505: return "HTTP Version Not Supported";
  default: return "Unknown";
  }
}

/* The IMF-fixdate of now, recomputed at most once a second. */
static const char *http_date(hl_http_server *s) {
  static const char *const days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  time_t now = time(NULL);
  if (now != s->date_time || !s->date[0]) {
    struct tm tm;
    gmtime_r(&now, &tm);
    snprintf(s->date, sizeof(s->date), "%s, %02d %s %04d %02d:%02d:%02d GMT", days[tm.tm_wday % 7],
             tm.tm_mday, months[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
    s->date_time = now;
  }
  return s->date;
}

/* ---- Requests ------------------------------------------------------------ */

static hl_http_req *req_new(hl__http_conn *c) {
  hl_http_req *r = calloc(1, sizeof(*r));
  if (!r)
    return NULL;
  const hl_http_limits *l = &c->srv->lim;
  r->conn = c;
  hl_buf_init(&r->head, l->max_header_bytes + 2 * l->max_url_bytes + 64);
  hl_buf_init(&r->body, l->max_body_bytes);
  hl_buf_init(&r->out, 0);
  r->path_off = SIZE_MAX;
  r->query_off = SIZE_MAX;
  r->method = "";
  return r;
}

/* Releases what the request read; its answer (out) is kept. */
static void req_release_input(hl_http_req *r) {
  hl_buf_free(&r->head);
  hl_buf_free(&r->body);
  free(r->hdrs);
  r->hdrs = NULL;
  r->nhdrs = r->caphdrs = 0;
  r->path_off = r->query_off = SIZE_MAX;
}

/* Tells the body function that a streamed request will never reach the handler. */
static void req_abort_stream(hl_http_req *r) {
  hl_http_body_fn fn = r->body_fn;
  if (!fn)
    return;
  r->body_fn = NULL;
  fn(r, HL_HTTP_BODY_ABORT, NULL, 0, r->body_ud);
}

static void req_free(hl_http_req *r) {
  if (!r)
    return;
  req_abort_stream(r);
  req_release_input(r);
  hl_buf_free(&r->out);
  free(r);
}

static const char *req_str(const hl_http_req *r, size_t off) {
  if (!r->head.data || off >= r->head.len + 1)
    return "";
  return r->head.data + off;
}

const char *hl_http_req_method(const hl_http_req *r) { return r->method; }
const char *hl_http_req_target(const hl_http_req *r) { return req_str(r, 0); }
const char *hl_http_req_path(const hl_http_req *r) { return req_str(r, r->path_off); }
const char *hl_http_req_query(const hl_http_req *r) { return req_str(r, r->query_off); }

const char *hl_http_req_header(const hl_http_req *r, const char *name) {
  if (!r || !name)
    return NULL;
  for (size_t i = 0; i < r->nhdrs; i++) {
    if (strcasecmp(r->head.data + r->hdrs[i].name, name) == 0)
      return r->hdrs[i].value == NO_VALUE ? "" : r->head.data + r->hdrs[i].value;
  }
  return NULL;
}

const char *hl_http_req_body(const hl_http_req *r, size_t *len) {
  if (len)
    *len = r->body.len;
  return r->body.data ? r->body.data : "";
}

hl_http_server *hl_http_req_server(const hl_http_req *r) { return r->conn ? r->conn->srv : NULL; }

void hl_http_req_set_user(hl_http_req *r, void *user) { r->user = user; }
void *hl_http_req_user(const hl_http_req *r) { return r->user; }
bool hl_http_req_streamed(const hl_http_req *r) { return r->streamed; }

static int hexval(int ch) {
  if (ch >= '0' && ch <= '9')
    return ch - '0';
  if (ch >= 'a' && ch <= 'f')
    return ch - 'a' + 10;
  if (ch >= 'A' && ch <= 'F')
    return ch - 'A' + 10;
  return -1;
}

/*
 * Splits the target (origin-form, absolute-form or "*") into a
 * percent-decoded path and the raw query, appended to head. A decoded NUL or
 * a broken escape is an error.
 */
static int req_parse_target(hl_http_req *r) {
  size_t tlen = r->head.data ? strlen(r->head.data) : 0;
  if (tlen == 0)
    return HL_EPARSE;
  /* Reserve first: the pointers below point into head. */
  int rc = hl_buf_reserve(&r->head, 2 * tlen + 4);
  if (rc < 0)
    return rc;
  const char *t = r->head.data;
  const char *end = t + tlen;
  const char *p = t;
  if (*p != '/' && !(p[0] == '*' && p[1] == '\0')) {
    const char *s = strstr(p, "://");
    if (!s)
      return HL_EPARSE;
    p = s + 3;
    while (p < end && *p != '/' && *p != '?' && *p != '#')
      p++;
  }
  const char *pend = p;
  while (pend < end && *pend != '?' && *pend != '#')
    pend++;
  const char *q = pend, *qend = pend;
  if (q < end && *q == '?') {
    q++;
    qend = q;
    while (qend < end && *qend != '#')
      qend++;
  }
  r->path_off = r->head.len;
  if (p == pend)
    hl_buf_putc(&r->head, '/');
  for (const char *x = p; x < pend; x++) {
    char ch = *x;
    if (ch == '%') {
      if (pend - x < 3)
        return HL_EPARSE;
      int a = hexval((unsigned char)x[1]), b = hexval((unsigned char)x[2]);
      if (a < 0 || b < 0 || (a == 0 && b == 0))
        return HL_EPARSE;
      ch = (char)(a * 16 + b);
      x += 2;
    }
    hl_buf_putc(&r->head, ch);
  }
  hl_buf_putc(&r->head, '\0');
  r->query_off = r->head.len;
  hl_buf_append(&r->head, q, (size_t)(qend - q));
  hl_buf_putc(&r->head, '\0');
  return 0;
}

/* ---- llhttp callbacks ------------------------------------------------------ */

static int fail_cb(hl__http_conn *c, int status, const char *msg) {
  if (!c->fail_status) {
    c->fail_status = status;
    c->fail_msg = msg;
  }
  return -1;
}

static uint64_t conn_pos(const hl__http_conn *c, const char *p) { return c->fed + (uint64_t)(p - c->chunk); }

static int check_head(hl__http_conn *c, const char *end) {
  if (conn_pos(c, end) - c->msg_start > c->srv->lim.max_header_bytes)
    return fail_cb(c, 431, "request header block too large");
  return 0;
}

static int head_append(hl__http_conn *c, const char *at, size_t len) {
  hl_http_req *r = c->cur;
  if (!r->piece_open) {
    r->piece_start = r->head.len;
    r->piece_open = true;
  }
  int rc = hl_buf_append(&r->head, at, len);
  if (rc == HL_ELIMIT)
    return fail_cb(c, 431, "request header block too large");
  if (rc < 0)
    return fail_cb(c, 500, "out of memory");
  return 0;
}

static int head_end_piece(hl__http_conn *c) {
  hl_http_req *r = c->cur;
  if (!r->piece_open)
    r->piece_start = r->head.len;
  r->piece_open = false;
  int rc = hl_buf_append(&r->head, "", 1);
  if (rc == HL_ELIMIT)
    return fail_cb(c, 431, "request header block too large");
  if (rc < 0)
    return fail_cb(c, 500, "out of memory");
  return 0;
}

static int on_message_begin(llhttp_t *p) {
  hl__http_conn *c = p->data;
  c->fail_status = 0;
  c->fail_msg = NULL;
  if (!c->cur) {
    c->cur = req_new(c);
    if (!c->cur)
      return fail_cb(c, 500, "out of memory");
  }
  c->in_message = true;
  c->req_restart = true;
  c->url_len = 0;
  c->method_seen = false;
  /* Corrected by on_method, which sees the first byte. */
  c->msg_start = c->fed;
  return 0;
}

static int on_method(llhttp_t *p, const char *at, size_t len) {
  hl__http_conn *c = p->data;
  if (!c->method_seen) {
    c->method_seen = true;
    c->msg_start = conn_pos(c, at);
  }
  return check_head(c, at + len);
}

static int on_url(llhttp_t *p, const char *at, size_t len) {
  hl__http_conn *c = p->data;
  c->url_len += len;
  if (c->url_len > c->srv->lim.max_url_bytes)
    return fail_cb(c, 414, "request target too long");
  if (check_head(c, at + len))
    return -1;
  return head_append(c, at, len);
}

static int on_url_complete(llhttp_t *p) { return head_end_piece(p->data); }

static int on_header_field(llhttp_t *p, const char *at, size_t len) {
  hl__http_conn *c = p->data;
  hl_http_req *r = c->cur;
  if (r->headers_done)
    return 0; /* Trailers are ignored. */
  if (check_head(c, at + len))
    return -1;
  if (!r->piece_open && r->nhdrs >= c->srv->lim.max_headers)
    return fail_cb(c, 431, "too many request headers");
  return head_append(c, at, len);
}

static int on_header_field_complete(llhttp_t *p) {
  hl__http_conn *c = p->data;
  hl_http_req *r = c->cur;
  if (r->headers_done)
    return 0;
  if (r->nhdrs >= c->srv->lim.max_headers)
    return fail_cb(c, 431, "too many request headers");
  if (head_end_piece(c))
    return -1;
  if (r->nhdrs == r->caphdrs) {
    size_t cap = r->caphdrs ? r->caphdrs * 2 : 16;
    if (cap > c->srv->lim.max_headers)
      cap = c->srv->lim.max_headers;
    req_hdr *h = realloc(r->hdrs, cap * sizeof(*h));
    if (!h)
      return fail_cb(c, 500, "out of memory");
    r->hdrs = h;
    r->caphdrs = cap;
  }
  r->hdrs[r->nhdrs].name = (uint32_t)r->piece_start;
  r->hdrs[r->nhdrs].value = NO_VALUE;
  r->nhdrs++;
  return 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t len) {
  hl__http_conn *c = p->data;
  if (c->cur->headers_done)
    return 0;
  if (check_head(c, at + len))
    return -1;
  return head_append(c, at, len);
}

static int on_header_value_complete(llhttp_t *p) {
  hl__http_conn *c = p->data;
  hl_http_req *r = c->cur;
  if (r->headers_done)
    return 0;
  if (head_end_piece(c))
    return -1;
  if (r->nhdrs > 0 && r->hdrs[r->nhdrs - 1].value == NO_VALUE)
    r->hdrs[r->nhdrs - 1].value = (uint32_t)r->piece_start;
  return 0;
}

static void conn_transport_write(hl__http_conn *c, uv_buf_t *bufs, unsigned n, hl_buf *owner);

static void maybe_send_continue(hl__http_conn *c) {
  hl_http_req *r = c->cur;
  if (!r || !r->want_continue || r->continue_sent || c->qhead || c->closing)
    return;
  static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
  uv_buf_t b = uv_buf_init((char *)cont, sizeof(cont) - 1);
  r->continue_sent = true;
  conn_transport_write(c, &b, 1, NULL);
}

static int on_headers_complete(llhttp_t *p) {
  hl__http_conn *c = p->data;
  hl_http_req *r = c->cur;
  const hl_http_limits *l = &c->srv->lim;
  r->headers_done = true;
  r->method = llhttp_method_name((llhttp_method_t)p->method);
  if (!r->method)
    r->method = "";
  if (p->method == HTTP_CONNECT)
    return fail_cb(c, 400, "CONNECT is not supported");
  r->is_head = p->method == HTTP_HEAD;
  r->keep_alive = llhttp_should_keep_alive(p) != 0;
  /* Upgrades are not offered; the request is answered as plain HTTP/1.1. */
  p->upgrade = 0;
  int rc = req_parse_target(r);
  if (rc == HL_ELIMIT)
    return fail_cb(c, 431, "request header block too large");
  if (rc == -ENOMEM)
    return fail_cb(c, 500, "out of memory");
  if (rc < 0)
    return fail_cb(c, 400, "invalid request target");
  if ((p->flags & F_CONTENT_LENGTH) && !(p->flags & F_CHUNKED) && p->content_length > l->max_body_bytes)
    return fail_cb(c, 413, "request body too large");
  const char *expect = hl_http_req_header(r, "Expect");
  if (expect && p->http_major == 1 && p->http_minor >= 1 && strcasecmp(expect, "100-continue") != 0)
    return fail_cb(c, 417, "unsupported expectation");
  if (c->srv->body_fn) {
    int want = c->srv->body_fn(r, HL_HTTP_BODY_START, NULL, 0, c->srv->body_ud);
    if (want >= 400 && want <= 599)
      return fail_cb(c, want, "request refused");
    if (want == 1) {
      r->streamed = true;
      r->body_fn = c->srv->body_fn;
      r->body_ud = c->srv->body_ud;
    }
  }
  if (expect && p->http_major == 1 && p->http_minor >= 1) {
    if ((p->flags & F_CHUNKED) || p->content_length > 0) {
      r->want_continue = true;
      maybe_send_continue(c);
    }
  }
  return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t len) {
  hl__http_conn *c = p->data;
  hl_http_req *r = c->cur;
  if (r->streamed) {
    if (!r->body_fn)
      return fail_cb(c, 500, "request body refused");
    r->body_seen += len;
    if (r->body_seen > c->srv->lim.max_body_bytes)
      return fail_cb(c, 413, "request body too large");
    int st = r->body_fn(r, HL_HTTP_BODY_DATA, at, len, r->body_ud);
    if (st != 0)
      return fail_cb(c, st >= 400 && st <= 599 ? st : 500, "request body refused");
    return 0;
  }
  int rc = hl_buf_append(&r->body, at, len);
  if (rc == HL_ELIMIT)
    return fail_cb(c, 413, "request body too large");
  if (rc < 0)
    return fail_cb(c, 500, "out of memory");
  return 0;
}

static int on_message_complete(llhttp_t *p) {
  hl__http_conn *c = p->data;
  c->in_message = false;
  /* Pause so that the handler runs outside the parser. */
  return HPE_PAUSED;
}

static void settings_init(llhttp_settings_t *s) {
  llhttp_settings_init(s);
  s->on_message_begin = on_message_begin;
  s->on_method = on_method;
  s->on_url = on_url;
  s->on_url_complete = on_url_complete;
  s->on_header_field = on_header_field;
  s->on_header_field_complete = on_header_field_complete;
  s->on_header_value = on_header_value;
  s->on_header_value_complete = on_header_value_complete;
  s->on_headers_complete = on_headers_complete;
  s->on_body = on_body;
  s->on_message_complete = on_message_complete;
}

/* ---- Connection state machine ------------------------------------------- */

static bool conn_can_parse(const hl__http_conn *c) {
  return !c->no_more && !c->closing && c->nqueued < c->srv->lim.max_pipelined &&
         c->wq_bytes <= WRITE_HIGH_WATER;
}

static void queue_push(hl__http_conn *c, hl_http_req *r) {
  r->next = NULL;
  if (c->qtail)
    c->qtail->next = r;
  else
    c->qhead = r;
  c->qtail = r;
  c->nqueued++;
}

static void conn_dispatch(hl__http_conn *c) {
  hl_http_req *r = c->cur;
  c->cur = NULL;
  c->timer_restart = true;
  if (!r)
    return;
  r->state = REQ_DISPATCHED;
  r->done_ns = uv_hrtime();
  r->body_fn = NULL; /* the handler takes over a streamed request's state */
  queue_push(c, r);
  c->srv->stats.requests_total++;
  if (!r->keep_alive)
    c->no_more = true;
  c->srv->handler(r, c->srv->ud);
}

/* Parses from data as far as flow control allows; returns the bytes used. */
static size_t conn_parse(hl__http_conn *c, const char *data, size_t len) {
  size_t off = 0;
  while (off < len && conn_can_parse(c)) {
    const char *p = data + off;
    size_t n = len - off;
    c->chunk = p;
    llhttp_errno_t e = llhttp_execute(&c->parser, p, n);
    size_t used = n;
    if (e == HPE_PAUSED) {
      const char *pos = llhttp_get_error_pos(&c->parser);
      used = pos && pos >= p && pos <= p + n ? (size_t)(pos - p) : n;
      llhttp_resume(&c->parser);
    }
    c->fed += used;
    off += used;
    if (e == HPE_OK) {
      if (c->in_message && c->cur && !c->cur->headers_done &&
          c->fed - c->msg_start > c->srv->lim.max_header_bytes)
        conn_fail(c, 431, "request header block too large");
    } else if (e == HPE_PAUSED) {
      conn_dispatch(c);
    } else {
      const char *msg = c->fail_msg ? c->fail_msg : llhttp_get_error_reason(&c->parser);
      conn_fail(c, c->fail_status ? c->fail_status : 400, msg ? msg : "malformed request");
      break;
    }
  }
  return off;
}

/* Queues a server-generated error answer behind the requests in flight and stops parsing. */
static void conn_fail(hl__http_conn *c, int status, const char *msg) {
  if (c->closing)
    return;
  c->no_more = true;
  c->in_message = false;
  hl_http_req *r = c->cur;
  c->cur = NULL;
  if (r)
    req_abort_stream(r);
  else
    r = req_new(c);
  if (!r) {
    conn_abort(c);
    return;
  }
  r->keep_alive = false;
  r->is_head = false;
  r->state = REQ_DISPATCHED;
  r->done_ns = uv_hrtime();
  queue_push(c, r);
  if (status == 503 && c->rejected)
    c->srv->stats.connections_rejected++;
  else
    c->srv->stats.errors_total++;
  char body[256];
  hl_buf b;
  hl_buf_init(&b, sizeof(body) - 1);
  hl_buf_puts(&b, "{\"error\":\"");
  hl_buf_json_escape(&b, msg, strlen(msg) > 180 ? 180 : strlen(msg));
  hl_buf_puts(&b, "\"}\n");
  snprintf(body, sizeof(body), "%s", b.data ? b.data : "{}\n");
  hl_buf_free(&b);
  if (hl_http_respond(r, status, "application/json", body, strlen(body)) < 0 && !c->closing)
    conn_abort(c);
}

/* Orphans the requests held by the handler and frees the rest. */
static void conn_drop_requests(hl__http_conn *c) {
  req_free(c->cur);
  c->cur = NULL;
  c->in_message = false;
  hl_http_req *r = c->qhead;
  while (r) {
    hl_http_req *next = r->next;
    if (r->state == REQ_DISPATCHED) {
      r->conn = NULL;
      r->next = NULL;
    } else {
      req_free(r);
    }
    r = next;
  }
  c->qhead = c->qtail = NULL;
  c->nqueued = 0;
}

static void conn_write_response(hl__http_conn *c, hl_http_req *r, bool last) {
  static const char close_line[] = "Connection: close\r\n\r\n";
  static const char keep_line[] = "Connection: keep-alive\r\n\r\n";
  uv_buf_t b[3];
  b[0] = uv_buf_init(r->out.data, (unsigned)r->out_head_len);
  b[1] = last ? uv_buf_init((char *)close_line, sizeof(close_line) - 1)
              : uv_buf_init((char *)keep_line, sizeof(keep_line) - 1);
  b[2] = uv_buf_init(r->out.data + r->out_head_len, (unsigned)(r->out.len - r->out_head_len));
  conn_transport_write(c, b, 3, &r->out);
}

/* Writes the answered responses at the head of the queue. */
static void conn_flush(hl__http_conn *c) {
  while (!c->closing && c->qhead && c->qhead->state == REQ_ANSWERED) {
    hl_http_req *r = c->qhead;
    c->qhead = r->next;
    if (!c->qhead)
      c->qtail = NULL;
    c->nqueued--;
    bool last = !r->keep_alive || (c->no_more && !c->qhead);
    conn_write_response(c, r, last);
    req_free(r);
    if (last) {
      conn_close_graceful(c);
      return;
    }
  }
  if (!c->closing && !c->qhead)
    maybe_send_continue(c);
}

/* ---- Responses -------------------------------------------------------------- */

static bool is_token(const char *s) {
  if (!*s)
    return false;
  for (; *s; s++) {
    unsigned char ch = (unsigned char)*s;
    if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9'))
      continue;
    if (!strchr("!#$%&'*+-.^_`|~", ch))
      return false;
  }
  return true;
}

static bool is_field_value(const char *s) {
  for (; *s; s++) {
    if (*s == '\r' || *s == '\n')
      return false;
  }
  return true;
}

static bool server_owned_header(const char *name) {
  return strcasecmp(name, "Content-Length") == 0 || strcasecmp(name, "Date") == 0 ||
         strcasecmp(name, "Connection") == 0 || strcasecmp(name, "Transfer-Encoding") == 0;
}

static int build_response(hl_http_req *r, hl_http_server *s, int status, const char *const *headers, const void *body, size_t len) {
  hl_buf *o = &r->out;
  bool no_body = status == 204 || status == 304;
  int rc = hl_buf_reserve(o, 256 + (r->is_head || no_body ? 0 : len));
  if (rc < 0)
    return rc;
  rc = hl_buf_printf(o, "HTTP/1.1 %d %s\r\nDate: %s\r\n", status, hl_http_status_reason(status),
                     http_date(s));
  for (size_t i = 0; headers && headers[i] && headers[i + 1] && !rc; i += 2) {
    if (server_owned_header(headers[i]))
      continue;
    rc = hl_buf_printf(o, "%s: %s\r\n", headers[i], headers[i + 1]);
  }
  if (!rc && !no_body)
    rc = hl_buf_printf(o, "Content-Length: %zu\r\n", len);
  r->out_head_len = o->len;
  if (!rc && !no_body && !r->is_head && len)
    rc = hl_buf_append(o, body, len);
  if (rc < 0)
    hl_buf_free(o);
  return rc;
}

int hl_http_respond_headers(hl_http_req *r, int status, const char *const *headers, const void *body,
                            size_t len) {
  if (!r || r->state != REQ_DISPATCHED || status < 200 || status > 999 || (len && !body))
    return -EINVAL;
  for (size_t i = 0; headers && headers[i]; i += 2) {
    if (!headers[i + 1] || !is_token(headers[i]) || !is_field_value(headers[i + 1]))
      return -EINVAL;
  }
  hl__http_conn *c = r->conn;
  if (!c) {
    req_free(r);
    return HL_ECLOSED;
  }
  int rc = build_response(r, c->srv, status, headers, body, len);
  if (rc < 0)
    return rc;
  r->state = REQ_ANSWERED;
  if (c->srv->observe)
    c->srv->observe(r, status, (double)(uv_hrtime() - r->done_ns) / 1e9, c->srv->observe_ud);
  req_release_input(r);
  conn_flush(c);
  conn_pump(c);
  return 0;
}

int hl_http_respond(hl_http_req *r, int status, const char *content_type, const void *body, size_t len) {
  if (content_type && (!is_field_value(content_type) || !*content_type))
    return -EINVAL;
  const char *h[] = {"Content-Type", content_type, NULL};
  return hl_http_respond_headers(r, status, content_type ? h : NULL, body, len);
}

/* ---- Socket transport ---------------------------------------------------------- */

static void on_write(uv_write_t *w, int status) {
  write_req *wr = (write_req *)w;
  hl__http_conn *c = w->handle->data;
  c->wq_bytes -= wr->len;
  free(wr->data);
  free(wr);
  if (c->aborted)
    return;
  if (status < 0) {
    conn_abort(c);
    return;
  }
  if (c->closing) {
    if (c->wq_bytes == 0)
      conn_close_graceful(c);
    return;
  }
  c->timer_restart = true;
  conn_pump(c);
}

static void conn_transport_write(hl__http_conn *c, uv_buf_t *bufs, unsigned n, hl_buf *owner) {
  if (c->kind == CONN_DETACHED) {
    for (unsigned i = 0; i < n; i++) {
      if (c->sink.len + bufs[i].len <= DETACHED_OUT_MAX)
        hl_buf_append(&c->sink, bufs[i].base, bufs[i].len);
    }
    if (owner)
      hl_buf_free(owner);
    return;
  }
  if (c->aborted || (c->closing && c->tmode == T_LINGER)) {
    if (owner)
      hl_buf_free(owner);
    return;
  }
  size_t total = 0;
  for (unsigned i = 0; i < n; i++)
    total += bufs[i].len;
  size_t done = 0;
  if (c->wq_bytes == 0) {
    int w = uv_try_write((uv_stream_t *)&c->tcp, bufs, n);
    if (w < 0 && w != UV_EAGAIN && w != UV_ENOSYS) {
      if (owner)
        hl_buf_free(owner);
      conn_abort(c);
      return;
    }
    done = w > 0 ? (size_t)w : 0;
  }
  if (done == total) {
    if (owner)
      hl_buf_free(owner);
    return;
  }
  write_req *wr = calloc(1, sizeof(*wr));
  if (!wr) {
    if (owner)
      hl_buf_free(owner);
    conn_abort(c);
    return;
  }
  /* The remaining pieces keep pointing into owner's memory, which wr now owns. */
  uv_buf_t rest[3];
  unsigned nrest = 0;
  size_t skip = done;
  for (unsigned i = 0; i < n && nrest < 3; i++) {
    if (skip >= bufs[i].len) {
      skip -= bufs[i].len;
      continue;
    }
    rest[nrest++] = uv_buf_init(bufs[i].base + skip, (unsigned)(bufs[i].len - skip));
    skip = 0;
  }
  wr->data = owner ? hl_buf_steal(owner, NULL) : NULL;
  wr->len = total - done;
  c->wq_bytes += wr->len;
  int rc = uv_write(&wr->w, (uv_stream_t *)&c->tcp, rest, nrest, on_write);
  if (rc < 0) {
    c->wq_bytes -= wr->len;
    free(wr->data);
    free(wr);
    conn_abort(c);
  }
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  hl__http_conn *c = h->data;
  *buf = uv_buf_init(c->srv->rbuf, READ_BUF_SIZE);
}

static void on_timer(uv_timer_t *t);

static void timer_start(hl__http_conn *c, int mode, uint64_t ms) {
  uv_timer_stop(&c->timer);
  c->tmode = mode;
  if (mode != T_NONE)
    uv_timer_start(&c->timer, on_timer, ms, 0);
}

static void on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf) {
  hl__http_conn *c = st->data;
  if (c->aborted)
    return;
  if (c->closing) {
    /* Lingering close: discard until EOF, a cap or the timer. */
    if (n < 0 || (c->lingered += (size_t)n) > LINGER_MAX_BYTES)
      conn_abort(c);
    return;
  }
  if (n == 0)
    return;
  if (n < 0) {
    if (n == UV_EOF) {
      c->eof = true;
      conn_pump(c);
    } else {
      conn_abort(c);
    }
    return;
  }
  c->pumping = true;
  size_t used = conn_parse(c, buf->base, (size_t)n);
  c->pumping = false;
  if (used < (size_t)n && !c->closing && !c->no_more) {
    if (hl_buf_append(&c->inbuf, buf->base + used, (size_t)n - used) < 0) {
      conn_abort(c);
      return;
    }
  }
  conn_pump(c);
}

static void on_timer(uv_timer_t *t) {
  hl__http_conn *c = t->data;
  int mode = c->tmode;
  c->tmode = T_NONE;
  switch (mode) {
  case T_REQUEST:
    conn_fail(c, 408, "request not complete in time");
    conn_pump(c);
    break;
  case T_IDLE:
    c->no_more = true;
    conn_close_graceful(c);
    break;
  default:
    conn_abort(c);
    break;
  }
}

static void conn_update_socket(hl__http_conn *c) {
  bool want_read = conn_can_parse(c) && c->inbuf.len == 0 && !c->eof;
  if (want_read && !c->reading) {
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) < 0) {
      conn_abort(c);
      return;
    }
    c->reading = true;
  } else if (!want_read && c->reading) {
    uv_read_stop((uv_stream_t *)&c->tcp);
    c->reading = false;
  }
  const hl_http_limits *l = &c->srv->lim;
  int mode;
  uint64_t ms = 0;
  if (c->in_message && c->reading) {
    mode = T_REQUEST;
    ms = l->request_timeout_ms;
  } else if (!c->qhead && !c->in_message && c->reading) {
    mode = T_IDLE;
    ms = l->idle_timeout_ms;
  } else if (c->wq_bytes > 0) {
    mode = T_WRITE;
    ms = l->idle_timeout_ms;
  } else {
    mode = T_NONE;
  }
  /* The request deadline restarts only when a new request begins, so
     trickled bytes (or reading our answers) do not extend it. */
  bool restart = mode == T_REQUEST ? c->req_restart : c->timer_restart;
  if (mode != c->tmode || restart)
    timer_start(c, mode, ms);
  c->timer_restart = false;
  c->req_restart = false;
}

/* Parses buffered input when allowed, closes finished connections, and
   adjusts reading and timers. Not reentrant: inner calls return at once and
   the outer one sees their effects. */
static void conn_pump(hl__http_conn *c) {
  if (c->pumping || c->closing)
    return;
  c->pumping = true;
  if (c->inbuf.len && conn_can_parse(c)) {
    size_t used = conn_parse(c, c->inbuf.data, c->inbuf.len);
    if (c->inbuf.len)
      hl_buf_consume(&c->inbuf, used);
  }
  c->pumping = false;
  if (c->closing)
    return;
  /* Nothing in flight and nothing more to parse (a partial request at EOF
     is dropped). Buffered input at EOF waits for the writes to drain. */
  if (!c->qhead && (c->no_more || (c->eof && c->inbuf.len == 0))) {
    conn_close_graceful(c);
    return;
  }
  if (c->kind == CONN_SOCKET)
    conn_update_socket(c);
}

static void on_handle_closed(uv_handle_t *h) {
  hl__http_conn *c = h->data;
  if (--c->handles_open > 0)
    return;
  hl_http_server *s = c->srv;
  if (c->prev)
    c->prev->next = c->next;
  else
    s->conns = c->next;
  if (c->next)
    c->next->prev = c->prev;
  s->nconns--;
  if (c->rejected)
    s->nrejected--;
  s->stats.connections_open--;
  hl_buf_free(&c->inbuf);
  free(c);
  server_check_done(s);
}

/* Closes at once: pending writes are cancelled. */
static void conn_abort(hl__http_conn *c) {
  if (c->aborted)
    return;
  c->aborted = true;
  c->closing = true;
  c->no_more = true;
  conn_drop_requests(c);
  if (c->kind == CONN_DETACHED)
    return;
  uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
  uv_close((uv_handle_t *)&c->timer, on_handle_closed);
}

static void on_shutdown(uv_shutdown_t *sr, int status) {
  hl__http_conn *c = sr->data;
  if (c->aborted)
    return;
  if (status < 0 || uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) < 0) {
    conn_abort(c);
    return;
  }
  c->reading = true;
  timer_start(c, T_LINGER, LINGER_MS);
}

/* Closes after the pending writes: shutdown, then a short lingering read. */
static void conn_close_graceful(hl__http_conn *c) {
  if (c->aborted)
    return;
  if (!c->closing) {
    c->closing = true;
    c->no_more = true;
    conn_drop_requests(c);
    if (c->kind == CONN_DETACHED)
      return;
    if (c->reading) {
      uv_read_stop((uv_stream_t *)&c->tcp);
      c->reading = false;
    }
    if (c->wq_bytes > 0) {
      timer_start(c, T_WRITE, c->srv->lim.idle_timeout_ms);
      return;
    }
  } else if (c->kind == CONN_DETACHED || c->wq_bytes > 0 || c->tmode == T_LINGER || c->shutdown.data) {
    return;
  }
  uv_timer_stop(&c->timer);
  c->tmode = T_NONE;
  c->shutdown.data = c;
  if (uv_shutdown(&c->shutdown, (uv_stream_t *)&c->tcp, on_shutdown) < 0)
    conn_abort(c);
}

static hl__http_conn *conn_new(hl_http_server *s, int kind) {
  hl__http_conn *c = calloc(1, sizeof(*c));
  if (!c)
    return NULL;
  c->srv = s;
  c->kind = kind;
  llhttp_init(&c->parser, HTTP_REQUEST, &s->settings);
  c->parser.data = c;
  hl_buf_init(&c->inbuf, INBUF_MAX);
  hl_buf_init(&c->sink, 0);
  return c;
}

static void on_connection(uv_stream_t *l, int status) {
  hl_http_server *s = l->data;
  if (status < 0 || s->closing)
    return;
  hl__http_conn *c = conn_new(s, CONN_SOCKET);
  if (!c)
    return;
  if (uv_tcp_init(s->loop, &c->tcp) < 0) {
    free(c);
    return;
  }
  c->tcp.data = c;
  c->timer.data = c;
  uv_timer_init(s->loop, &c->timer);
  c->handles_open = 2;
  c->next = s->conns;
  if (s->conns)
    s->conns->prev = c;
  s->conns = c;
  s->nconns++;
  s->stats.connections_open++;
  if (uv_accept(l, (uv_stream_t *)&c->tcp) < 0) {
    conn_abort(c);
    return;
  }
  s->stats.connections_total++;
  uv_tcp_nodelay(&c->tcp, 1);
  if (s->nconns - s->nrejected > s->lim.max_connections) {
    /* Rejected connections are answered 503; beyond as many again, they are dropped. */
    c->rejected = true;
    s->nrejected++;
    if (s->nrejected > s->lim.max_connections) {
      s->stats.connections_rejected++;
      conn_abort(c);
      return;
    }
    conn_fail(c, 503, "too many connections");
    return;
  }
  conn_pump(c);
}

/* ---- Server -------------------------------------------------------------- */

int hl_http_server_new(uv_loop_t *loop, const hl_http_limits *limits, hl_http_handler_fn handler,
                       void *ud, hl_http_server **out) {
  if (!loop || !handler || !out)
    return -EINVAL;
  hl_http_limits def, l;
  hl_http_limits_default(&def);
  l = limits ? *limits : def;
  if (!l.max_url_bytes)
    l.max_url_bytes = def.max_url_bytes;
  if (!l.max_header_bytes)
    l.max_header_bytes = def.max_header_bytes;
  if (!l.max_headers)
    l.max_headers = def.max_headers;
  if (!l.max_body_bytes)
    l.max_body_bytes = def.max_body_bytes;
  if (!l.idle_timeout_ms)
    l.idle_timeout_ms = def.idle_timeout_ms;
  if (!l.request_timeout_ms)
    l.request_timeout_ms = def.request_timeout_ms;
  if (!l.max_connections)
    l.max_connections = def.max_connections;
  if (!l.max_pipelined)
    l.max_pipelined = def.max_pipelined;
  if (l.max_header_bytes > UINT32_MAX / 4 || l.max_url_bytes > UINT32_MAX / 4 ||
      l.max_headers > UINT32_MAX / 4)
    return -EINVAL;
  hl_http_server *s = calloc(1, sizeof(*s));
  if (!s)
    return -ENOMEM;
  s->rbuf = malloc(READ_BUF_SIZE);
  if (!s->rbuf) {
    free(s);
    return -ENOMEM;
  }
  s->loop = loop;
  s->lim = l;
  s->handler = handler;
  s->ud = ud;
  s->port = -1;
  settings_init(&s->settings);
  *out = s;
  return 0;
}

static int parse_host_port(const char *hp, struct sockaddr_storage *ss) {
  char host[256];
  const char *colon = strrchr(hp, ':');
  if (!colon || colon == hp)
    return -EINVAL;
  size_t hlen = (size_t)(colon - hp);
  const char *h = hp;
  if (hp[0] == '[') {
    if (hlen < 2 || hp[hlen - 1] != ']')
      return -EINVAL;
    h = hp + 1;
    hlen -= 2;
  }
  if (hlen >= sizeof(host))
    return -EINVAL;
  memcpy(host, h, hlen);
  host[hlen] = '\0';
  char *end;
  long port = strtol(colon + 1, &end, 10);
  if (*end || end == colon + 1 || port < 0 || port > 65535)
    return -EINVAL;
  if (uv_ip4_addr(host, (int)port, (struct sockaddr_in *)ss) == 0)
    return 0;
  if (uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)ss) == 0)
    return 0;
  return -EINVAL;
}

int hl_http_server_listen(hl_http_server *s, const char *host_port) {
  if (!s || !host_port || s->listener_open || s->closing)
    return -EINVAL;
  struct sockaddr_storage ss;
  memset(&ss, 0, sizeof(ss));
  int rc = parse_host_port(host_port, &ss);
  if (rc < 0)
    return rc;
  rc = uv_tcp_init(s->loop, &s->listener);
  if (rc < 0)
    return rc;
  s->listener.data = s;
  s->listener_open = true;
  rc = uv_tcp_bind(&s->listener, (const struct sockaddr *)&ss, 0);
  if (rc == 0)
    rc = uv_listen((uv_stream_t *)&s->listener, 511, on_connection);
  if (rc < 0)
    return rc;
  struct sockaddr_storage bound;
  int len = sizeof(bound);
  rc = uv_tcp_getsockname(&s->listener, (struct sockaddr *)&bound, &len);
  if (rc < 0)
    return rc;
  if (bound.ss_family == AF_INET)
    s->port = ntohs(((struct sockaddr_in *)&bound)->sin_port);
  else
    s->port = ntohs(((struct sockaddr_in6 *)&bound)->sin6_port);
  return 0;
}

int hl_http_server_port(const hl_http_server *s) { return s ? s->port : -1; }

void hl_http_server_stats(const hl_http_server *s, hl_http_stats *out) { *out = s->stats; }

void hl_http_server_set_observer(hl_http_server *s, hl_http_observe_fn fn, void *ud) {
  s->observe = fn;
  s->observe_ud = ud;
}

void hl_http_server_set_body_fn(hl_http_server *s, hl_http_body_fn fn, void *ud) {
  s->body_fn = fn;
  s->body_ud = ud;
}

static void on_close_timer_closed(uv_handle_t *h) {
  hl_http_server *s = h->data;
  s->close_timer_open = false;
  server_check_done(s);
}

static void server_check_done(hl_http_server *s) {
  if (!s->closing || s->done_called || s->listener_open || s->nconns > 0)
    return;
  if (s->close_timer_open) {
    if (!s->close_timer_closing) {
      s->close_timer_closing = true;
      uv_close((uv_handle_t *)&s->close_timer, on_close_timer_closed);
    }
    return;
  }
  s->done_called = true;
  if (s->done)
    s->done(s->done_ud);
}

static void on_listener_closed(uv_handle_t *h) {
  hl_http_server *s = h->data;
  s->listener_open = false;
  s->port = -1;
  server_check_done(s);
}

static void on_close_timeout(uv_timer_t *t) {
  hl_http_server *s = t->data;
  for (hl__http_conn *c = s->conns; c; c = c->next)
    conn_abort(c);
}

void hl_http_server_close(hl_http_server *s, uint64_t timeout_ms, void (*done)(void *ud), void *ud) {
  if (!s || s->closing)
    return;
  s->closing = true;
  s->done = done;
  s->done_ud = ud;
  if (s->listener_open)
    uv_close((uv_handle_t *)&s->listener, on_listener_closed);
  for (hl__http_conn *c = s->conns; c; c = c->next) {
    if (c->closing)
      continue;
    c->no_more = true;
    req_free(c->cur);
    c->cur = NULL;
    c->in_message = false;
    conn_pump(c);
  }
  uv_timer_init(s->loop, &s->close_timer);
  s->close_timer.data = s;
  s->close_timer_open = true;
  uv_timer_start(&s->close_timer, on_close_timeout, timeout_ms, 0);
  server_check_done(s);
}

hl_http_server *hl_http_server_free(hl_http_server *s) {
  if (!s)
    return NULL;
  free(s->rbuf);
  free(s);
  return NULL;
}

/* ---- Detached connections (fuzzing) ----------------------------------------- */

int hl__http_conn_new_detached(hl_http_server *s, hl__http_conn **out) {
  hl__http_conn *c = conn_new(s, CONN_DETACHED);
  if (!c)
    return -ENOMEM;
  *out = c;
  return 0;
}

void hl__http_conn_feed(hl__http_conn *c, const char *data, size_t len) {
  if (c->closing || c->eof)
    return;
  c->pumping = true;
  size_t used = conn_parse(c, data, len);
  c->pumping = false;
  if (used < len && !c->closing && !c->no_more)
    hl_buf_append(&c->inbuf, data + used, len - used); /* Beyond INBUF_MAX, input is dropped. */
  conn_pump(c);
}

void hl__http_conn_eof(hl__http_conn *c) {
  c->eof = true;
  conn_pump(c);
}

const hl_buf *hl__http_conn_output(const hl__http_conn *c) { return &c->sink; }

int hl__http_conn_closed(const hl__http_conn *c) { return c->closing; }

hl__http_conn *hl__http_conn_free_detached(hl__http_conn *c) {
  if (!c)
    return NULL;
  c->closing = true;
  conn_drop_requests(c);
  hl_buf_free(&c->inbuf);
  hl_buf_free(&c->sink);
  free(c);
  return NULL;
}
