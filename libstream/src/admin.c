/*
 * The admin server: an hl_http_server on a private loop and thread.
 *
 * Start-up (bind, listen) happens on the caller's thread so that errors and
 * the port are known when hl_admin_start returns; the loop then runs on the
 * admin thread until hl_admin_stop wakes it with an async handle.
 */
#include "hl/admin.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>

#include "hl/buf.h"
#include "hl/error.h"

#define MAX_ROUTES 32
#define METRICS_MAX_BYTES (64u * 1024 * 1024)
#define STOP_TIMEOUT_MS 2000

typedef struct admin_route {
  char *method; /* NULL: any */
  char *prefix;
  hl_http_handler_fn fn;
  void *ud;
} admin_route;

struct hl_admin {
  uv_loop_t loop;
  bool loop_init;
  uv_async_t stop_async;
  bool async_init;
  pthread_t thread;
  bool thread_started;
  hl_http_server *srv;
  hl_metrics *reg;
  hl_metric *m_requests;
  hl_metric *m_duration;
  hl_series *s_ready;
  pthread_mutex_t lock;
  bool (*ready_fn)(void *ud, char *reason, size_t len);
  void *ready_ud;
  admin_route routes[MAX_ROUTES];
  size_t nroutes;
  int port;
};

static void respond_json(hl_http_req *req, int status, const char *json) {
  hl_http_respond(req, status, "application/json", json, strlen(json));
}

/* The route a path belongs to, for dispatch and for the metrics label. */
static const char *builtin_route(const char *path) {
  if (strcmp(path, "/metrics") == 0)
    return "/metrics";
  if (strcmp(path, "/healthz") == 0)
    return "/healthz";
  if (strcmp(path, "/readyz") == 0)
    return "/readyz";
  return NULL;
}

/* The index of the longest matching route, or -1. Called with the lock held. */
static int find_route(const hl_admin *a, const char *method, const char *path, bool any_method) {
  int best = -1;
  size_t best_len = 0;
  for (size_t i = 0; i < a->nroutes; i++) {
    const admin_route *r = &a->routes[i];
    size_t n = strlen(r->prefix);
    if (strncmp(path, r->prefix, n) != 0)
      continue;
    if (!any_method && r->method && strcmp(r->method, method) != 0)
      continue;
    if (best < 0 || n > best_len) {
      best = (int)i;
      best_len = n;
    }
  }
  return best;
}

/*
 * Asks the readiness function and records the answer in hl_ready, so the
 * gauge a scrape reads is the answer /readyz gives at that moment.
 */
static bool check_ready(hl_admin *a, char *reason, size_t len) {
  pthread_mutex_lock(&a->lock);
  bool (*fn)(void *, char *, size_t) = a->ready_fn;
  void *ud = a->ready_ud;
  pthread_mutex_unlock(&a->lock);
  bool ready = !fn || fn(ud, reason, len);
  hl_series_set(a->s_ready, ready ? 1 : 0);
  return ready;
}

static void serve_metrics(hl_admin *a, hl_http_req *req) {
  char reason[256];
  check_ready(a, reason, sizeof reason);
  hl_buf b;
  hl_buf_init(&b, METRICS_MAX_BYTES);
  int rc = a->reg ? hl_metrics_render(a->reg, &b) : 0;
  if (rc < 0)
    respond_json(req, 500, "{\"error\":\"cannot render metrics\"}\n");
  else
    hl_http_respond(req, 200, HL_METRICS_CONTENT_TYPE, b.data ? b.data : "", b.len);
  hl_buf_free(&b);
}

static void serve_readyz(hl_admin *a, hl_http_req *req) {
  char reason[256] = "";
  if (check_ready(a, reason, sizeof(reason))) {
    respond_json(req, 200, "{\"ready\":true}\n");
    return;
  }
  reason[sizeof(reason) - 1] = '\0';
  hl_buf b;
  hl_buf_init(&b, 1024);
  hl_buf_puts(&b, "{\"ready\":false,\"reason\":\"");
  hl_buf_json_escape(&b, reason, strlen(reason));
  hl_buf_puts(&b, "\"}\n");
  respond_json(req, 503, b.data ? b.data : "{\"ready\":false}\n");
  hl_buf_free(&b);
}

static void admin_handle(hl_http_req *req, void *ud) {
  hl_admin *a = ud;
  const char *path = hl_http_req_path(req);
  const char *method = hl_http_req_method(req);
  const char *builtin = builtin_route(path);
  if (builtin) {
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
      const char *h[] = {"Content-Type", "application/json", "Allow", "GET, HEAD", NULL};
      static const char body[] = "{\"error\":\"method not allowed\"}\n";
      hl_http_respond_headers(req, 405, h, body, sizeof(body) - 1);
    } else if (builtin[1] == 'm') {
      serve_metrics(a, req);
    } else if (builtin[1] == 'h') {
      respond_json(req, 200, "{\"status\":\"ok\"}\n");
    } else {
      serve_readyz(a, req);
    }
    return;
  }
  pthread_mutex_lock(&a->lock);
  int i = find_route(a, method, path, false);
  bool other_method = i < 0 && find_route(a, method, path, true) >= 0;
  hl_http_handler_fn fn = i >= 0 ? a->routes[i].fn : NULL;
  void *fud = i >= 0 ? a->routes[i].ud : NULL;
  pthread_mutex_unlock(&a->lock);
  if (fn)
    fn(req, fud);
  else if (other_method)
    respond_json(req, 405, "{\"error\":\"method not allowed\"}\n");
  else
    respond_json(req, 404, "{\"error\":\"not found\"}\n");
}

static void admin_observe(const hl_http_req *req, int status, double seconds, void *ud) {
  hl_admin *a = ud;
  if (!a->m_requests)
    return;
  const char *path = hl_http_req_path(req);
  const char *route = builtin_route(path);
  char prefix[128];
  if (!route) {
    route = path[0] ? "other" : "none";
    pthread_mutex_lock(&a->lock);
    int i = find_route(a, "", path, true);
    if (i >= 0) {
      snprintf(prefix, sizeof(prefix), "%s", a->routes[i].prefix);
      route = prefix;
    }
    pthread_mutex_unlock(&a->lock);
  }
  char code[16];
  snprintf(code, sizeof(code), "%d", status);
  hl_series_inc(hl_metric_at(a->m_requests, route, code));
  hl_series_observe(hl_metric_at(a->m_duration, route), seconds);
}

static void *admin_thread(void *arg) {
  hl_admin *a = arg;
  prctl(PR_SET_NAME, "hl-admin");
  uv_run(&a->loop, UV_RUN_DEFAULT);
  return NULL;
}

static void on_server_closed(void *ud) {
  hl_admin *a = ud;
  uv_close((uv_handle_t *)&a->stop_async, NULL);
}

static void on_stop(uv_async_t *h) {
  hl_admin *a = h->data;
  hl_http_server_close(a->srv, STOP_TIMEOUT_MS, on_server_closed, a);
}

/* Frees a half-built or stopped admin; the thread is not running. When the
   loop never ran, its handles are closed here first. */
static void admin_destroy(hl_admin *a, bool loop_ran) {
  if (!loop_ran && a->loop_init) {
    if (a->async_init)
      uv_close((uv_handle_t *)&a->stop_async, NULL);
    if (a->srv)
      hl_http_server_close(a->srv, 0, NULL, NULL);
    uv_run(&a->loop, UV_RUN_DEFAULT);
  }
  a->srv = hl_http_server_free(a->srv);
  if (a->loop_init)
    uv_loop_close(&a->loop);
  for (size_t i = 0; i < a->nroutes; i++) {
    free(a->routes[i].method);
    free(a->routes[i].prefix);
  }
  pthread_mutex_destroy(&a->lock);
  free(a);
}

int hl_admin_start(const char *host_port, hl_metrics *reg, hl_admin **out) {
  if (!host_port || !out)
    return -EINVAL;
  hl_admin *a = calloc(1, sizeof(*a));
  if (!a)
    return -ENOMEM;
  pthread_mutex_init(&a->lock, NULL);
  a->reg = reg;
  int rc = uv_loop_init(&a->loop);
  if (rc < 0)
    goto fail;
  a->loop_init = true;
  if (reg) {
    a->m_requests = hl_metrics_counter(reg, "hl_admin_http_requests_total",
                                       "Requests answered by the admin server, by route and status code.",
                                       "route,code");
    a->m_duration = hl_metrics_histogram(
        reg, "hl_admin_http_request_duration_seconds",
        "Time from a complete admin request to its answer, in seconds.", "route",
        hl_metrics_latency_buckets, hl_metrics_latency_nbuckets);
    a->s_ready = hl_metric_at(hl_metrics_gauge(
        reg, "hl_ready", HL_READY_HELP, NULL));
    hl_series_set(a->s_ready, 1);
  }
  hl_http_limits lim;
  hl_http_limits_default(&lim);
  lim.max_connections = 64;
  lim.request_timeout_ms = 5000;
  rc = hl_http_server_new(&a->loop, &lim, admin_handle, a, &a->srv);
  if (rc < 0)
    goto fail;
  hl_http_server_set_observer(a->srv, admin_observe, a);
  rc = hl_http_server_listen(a->srv, host_port);
  if (rc < 0)
    goto fail;
  a->port = hl_http_server_port(a->srv);
  rc = uv_async_init(&a->loop, &a->stop_async, on_stop);
  if (rc < 0)
    goto fail;
  a->async_init = true;
  a->stop_async.data = a;
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  rc = -pthread_create(&a->thread, NULL, admin_thread, a);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (rc < 0)
    goto fail;
  a->thread_started = true;
  *out = a;
  return 0;
fail:
  admin_destroy(a, false);
  return rc;
}

int hl_admin_port(const hl_admin *a) { return a ? a->port : -1; }

void hl_admin_set_readiness(hl_admin *a, bool (*fn)(void *ud, char *reason, size_t len), void *ud) {
  pthread_mutex_lock(&a->lock);
  a->ready_fn = fn;
  a->ready_ud = ud;
  pthread_mutex_unlock(&a->lock);
}

int hl_admin_route(hl_admin *a, const char *method, const char *path_prefix, hl_http_handler_fn fn,
                   void *ud) {
  if (!a || !path_prefix || path_prefix[0] != '/' || !fn)
    return -EINVAL;
  char *m = method ? strdup(method) : NULL;
  char *p = strdup(path_prefix);
  if (!p || (method && !m)) {
    free(m);
    free(p);
    return -ENOMEM;
  }
  pthread_mutex_lock(&a->lock);
  if (a->nroutes == MAX_ROUTES) {
    pthread_mutex_unlock(&a->lock);
    free(m);
    free(p);
    return HL_ELIMIT;
  }
  a->routes[a->nroutes++] = (admin_route){.method = m, .prefix = p, .fn = fn, .ud = ud};
  pthread_mutex_unlock(&a->lock);
  return 0;
}

hl_admin *hl_admin_stop(hl_admin *a) {
  if (!a)
    return NULL;
  uv_async_send(&a->stop_async);
  pthread_join(a->thread, NULL);
  admin_destroy(a, true);
  return NULL;
}
