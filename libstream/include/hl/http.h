/*
 * hl_http: an HTTP/1.1 server on a libuv loop, parsing with llhttp.
 *
 * One server runs on one loop and every function here must be called on that
 * loop's thread. The handler is called once per complete request; it answers
 * with hl_http_respond() or hl_http_respond_headers(), either before it
 * returns or later from the same thread (asynchronous handlers). Every
 * request must be answered exactly once: the request object is freed by the
 * answer. Responses on a pipelined connection are written in request order.
 *
 * Every input is capped (hl_http_limits); violations are answered by the
 * server itself with a small JSON body {"error":"..."} and the connection is
 * closed: 400 malformed request, 408 request not complete within
 * request_timeout_ms, 413 body too large, 414 URL too long, 431 header block
 * too large or too many headers, 503 too many connections. See
 * docs/libstream.md, section "http".
 */
#ifndef HL_HTTP_H
#define HL_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct hl_http_server hl_http_server;
/* A request; valid until the response to it is sent. */
typedef struct hl_http_req hl_http_req;

typedef struct hl_http_limits {
  size_t max_url_bytes;        /* 414 beyond; default 8 KiB */
  size_t max_header_bytes;     /* request line + headers; 431 beyond; default 16 KiB */
  size_t max_headers;          /* 431 beyond; default 100 */
  size_t max_body_bytes;       /* 413 beyond (Content-Length checked before reading); default 1 MiB */
  uint64_t idle_timeout_ms;    /* keep-alive idle close; default 30000 */
  uint64_t request_timeout_ms; /* a started request must be complete within this, else 408 and close; default 10000 */
  size_t max_connections;      /* beyond: 503 and close; default 1024 */
  size_t max_pipelined;        /* parsed-but-unanswered requests per connection before reading pauses; default 16 */
} hl_http_limits;

/* Fills l with the defaults above. */
void hl_http_limits_default(hl_http_limits *l);

typedef void (*hl_http_handler_fn)(hl_http_req *req, void *ud);

/*
 * Creates a server on loop. limits may be NULL (defaults); zero fields take
 * their default. The handler is called on the loop thread for each complete
 * request. 0, -EINVAL or -ENOMEM; *out is set on success only.
 */
int hl_http_server_new(uv_loop_t *loop, const hl_http_limits *limits, hl_http_handler_fn handler,
                       void *ud, hl_http_server **out);
/* Binds and listens on "host:port" ("127.0.0.1:0" picks a free port, "[::1]:80" for IPv6). 0 or a negative code. */
int hl_http_server_listen(hl_http_server *s, const char *host_port);
/* The bound port, or -1 when not listening. */
int hl_http_server_port(const hl_http_server *s);
/*
 * Graceful close: stops accepting, lets in-flight requests (those handed to
 * the handler) finish, closes keep-alive connections after their current
 * response, then calls done(ud) once every connection is closed. Whatever
 * remains after timeout_ms is closed by force; requests still held by the
 * handler then become orphans whose answer returns HL_ECLOSED. done may be
 * NULL. Call once.
 */
void hl_http_server_close(hl_http_server *s, uint64_t timeout_ms, void (*done)(void *ud), void *ud);
/* Frees the server; only after close's done ran (or if it never listened and close was never called). NULL-safe; returns NULL. */
hl_http_server *hl_http_server_free(hl_http_server *s);

/* Counters of a server, for metrics and tests. */
typedef struct hl_http_stats {
  uint64_t connections_open;     /* accepted and not yet closed */
  uint64_t connections_total;    /* accepted since start, rejected ones included */
  uint64_t connections_rejected; /* answered 503 because of max_connections */
  uint64_t requests_total;       /* complete requests handed to the handler */
  uint64_t errors_total;         /* requests answered by the server with 400/408/413/414/431 */
} hl_http_stats;
void hl_http_server_stats(const hl_http_server *s, hl_http_stats *out);

/*
 * Optional observer, called on the loop thread each time a response is sent
 * (handler answers and server-generated errors alike) with the request (its
 * method and path may be "" for a request that failed to parse), the status
 * and the seconds since the request was complete. For access logs and
 * metrics.
 */
typedef void (*hl_http_observe_fn)(const hl_http_req *req, int status, double seconds, void *ud);
void hl_http_server_set_observer(hl_http_server *s, hl_http_observe_fn fn, void *ud);

/*
 * Streamed request bodies (optional). By default a body is buffered in
 * memory (up to max_body_bytes) and handed to the handler with the request.
 * With a body function set, the server asks it, once a request's headers
 * are complete, whether to stream that request's body instead:
 *
 *   HL_HTTP_BODY_START  data NULL: return 0 to buffer the body as usual, 1
 *                       to stream it, or a status 400..599 to refuse the
 *                       request (the server answers it and closes, and no
 *                       further event comes). The request's method, path,
 *                       query and headers are readable; hl_http_req_set_user()
 *                       attaches the function's state to the request.
 *   HL_HTTP_BODY_DATA   each piece of a streamed body as it arrives (chunked
 *                       encoding already removed). Return 0 to go on or a
 *                       status 400..599 to refuse (answered as above, then
 *                       HL_HTTP_BODY_ABORT). A streamed body is still capped
 *                       by max_body_bytes while it arrives: past it, 413,
 *                       then HL_HTTP_BODY_ABORT.
 *   HL_HTTP_BODY_ABORT  the request will never reach the handler (the
 *                       client went away, timeout, malformed input, a cap,
 *                       the server closed): release the state. Return value
 *                       ignored.
 *
 * Once the body is complete, the request goes to the handler as usual with an
 * empty body (hl_http_req_body() gives ""), and the handler takes over the
 * state attached with hl_http_req_set_user(): no ABORT follows a request
 * that reached the handler. Every event runs on the loop thread, inside the
 * parser: the function must not answer the request or close the server.
 */
enum { HL_HTTP_BODY_START = 1, HL_HTTP_BODY_DATA = 2, HL_HTTP_BODY_ABORT = 3 };
typedef int (*hl_http_body_fn)(hl_http_req *req, int event, const char *data, size_t len, void *ud);
/* Sets (or with NULL clears) the body function; for requests whose headers complete afterwards. */
void hl_http_server_set_body_fn(hl_http_server *s, hl_http_body_fn fn, void *ud);
/* Attaches an opaque pointer to the request (not owned by the server); NULL until set. */
void hl_http_req_set_user(hl_http_req *r, void *user);
void *hl_http_req_user(const hl_http_req *r);
/* True when the request's body was streamed to the body function. */
bool hl_http_req_streamed(const hl_http_req *r);

/* Request accessors; the strings live as long as the request. */
const char *hl_http_req_method(const hl_http_req *r); /* "GET", ...; "" if unknown */
const char *hl_http_req_path(const hl_http_req *r);   /* percent-decoded path, no query */
const char *hl_http_req_target(const hl_http_req *r); /* raw request target */
const char *hl_http_req_query(const hl_http_req *r);  /* raw query string without '?', "" if none */
/* Case-insensitive; the first header of that name, NULL if absent. */
const char *hl_http_req_header(const hl_http_req *r, const char *name);
/* The body (NUL-terminated, so text can be used as a string; len may be NULL). */
const char *hl_http_req_body(const hl_http_req *r, size_t *len);
/* The server the request arrived on, or NULL once its connection is gone. */
hl_http_server *hl_http_req_server(const hl_http_req *r);

/*
 * Sends the response and frees the request. May be called from the handler
 * or later on the same loop thread. content_type may be NULL (no header).
 * headers: NULL or name, value, ..., NULL; names must be tokens and values
 * must not contain CR, LF or NUL (-EINVAL otherwise, and the request stays
 * unanswered). Content-Length, Date and Connection are added by the server;
 * the same names (and Transfer-Encoding) given by the caller are dropped.
 * Responses to HEAD carry no body; 204 and 304 carry neither body nor
 * Content-Length. The body is copied. Returns 0, -EINVAL (bad status or
 * header; request still unanswered), -ENOMEM, or HL_ECLOSED when the client
 * is gone (the request is freed all the same).
 */
int hl_http_respond(hl_http_req *r, int status, const char *content_type, const void *body, size_t len);
int hl_http_respond_headers(hl_http_req *r, int status, const char *const *headers, const void *body,
                            size_t len);

/* The reason phrase of a status ("Not Found"), "Unknown" if not in the table. */
const char *hl_http_status_reason(int status);

#endif
