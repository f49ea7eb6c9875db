/*
 * hl_admin: the admin HTTP server every long-running binary runs.
 *
 * It serves GET (and HEAD) /metrics (the registry in Prometheus text
 * format), /healthz (200 while the process runs) and /readyz (200
 * {"ready":true}, or 503 {"ready":false,"reason":"..."}), plus extra routes.
 * It runs on its own thread with its own libuv loop, because a worker's main
 * loop is a blocking librdkafka loop. All signals are blocked on that
 * thread, so SIGTERM reaches the main thread.
 *
 * Metrics it adds to the registry (see docs/libstream.md, section "admin"):
 *   hl_admin_http_requests_total{route,code}
 *   hl_admin_http_request_duration_seconds{route}
 *   hl_ready  (1/0: the readiness function's answer, asked on every scrape and /readyz)
 */
#ifndef HL_ADMIN_H
#define HL_ADMIN_H

#include <stdbool.h>
#include <stddef.h>

#include "hl/http.h"
#include "hl/metrics.h"

/* Help text of the hl_ready gauge, shared by every server that exports it. */
#define HL_READY_HELP                                                                          \
  "1 while the process is ready (/readyz answers 200), 0 while not; refreshed on every "      \
  "scrape and every /readyz."

typedef struct hl_admin hl_admin;

/*
 * Binds host_port ("0.0.0.0:9090", "127.0.0.1:0" for any free port) and
 * starts the admin thread. reg is borrowed and must outlive the admin server;
 * it may be NULL (then /metrics is empty and no admin metrics are kept).
 * 0 or a negative code (bind errors are libuv codes, e.g. UV_EADDRINUSE);
 * *out is set on success only.
 */
int hl_admin_start(const char *host_port, hl_metrics *reg, hl_admin **out);
/* The bound port. */
int hl_admin_port(const hl_admin *a);
/*
 * Readiness is asked of fn on every /readyz, on the admin thread; when not
 * ready, fn returns false and writes a NUL-terminated reason into reason
 * (len bytes). fn NULL restores the default: always ready. Thread-safe.
 */
void hl_admin_set_readiness(hl_admin *a, bool (*fn)(void *ud, char *reason, size_t len), void *ud);
/*
 * Adds a route: requests whose method equals method (NULL: any method) and
 * whose decoded path starts with path_prefix go to fn, on the admin thread;
 * fn answers with hl_http_respond* as any handler. The built-in paths win;
 * among routes, the longest matching prefix wins. Call before traffic or
 * from the admin thread. 0, -EINVAL, -ENOMEM or HL_ELIMIT (32 routes).
 */
int hl_admin_route(hl_admin *a, const char *method, const char *path_prefix, hl_http_handler_fn fn,
                   void *ud);
/* Graceful stop (in-flight requests get up to 2 s), joins the thread, frees. NULL-safe; returns NULL. */
hl_admin *hl_admin_stop(hl_admin *a);

#endif
