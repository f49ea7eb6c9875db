/*
 * hl-s3-notifier: announces every complete landing object once on
 * hl.landing.objects. The logic lives in notifier.c and its modules; this
 * file reads the configuration, starts the admin server and runs the loop
 * until SIGTERM. See docs/notifier.md.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "hl/config.h"
#include "hl/error.h"
#include "hl/log.h"
#include "hl/metrics.h"
#include "config.h"
#include "notifier.h"
#include "routes.h"

typedef struct app {
  hl_notifier *n;
  const hl_config *cfg;
  uv_signal_t sigterm, sigint;
  uv_timer_t watchdog;
  bool stopped;
  int status;
} app;

static void stop(app *a) {
  if (a->stopped)
    return;
  a->stopped = true;
  hl_log(HL_LOG_INFO, "stopping");
  hl_notifier_stop(a->n, (int)hl_config_int(a->cfg, "HL_NOTIFIER_SHUTDOWN_TIMEOUT"));
  uv_close((uv_handle_t *)&a->sigterm, NULL);
  uv_close((uv_handle_t *)&a->sigint, NULL);
  uv_close((uv_handle_t *)&a->watchdog, NULL);
}

static void on_signal(uv_signal_t *s, int signum) { stop(s->data); }

static void on_watchdog(uv_timer_t *t) {
  app *a = t->data;
  if (hl_notifier_failed(a->n)) {
    a->status = 1;
    stop(a);
  }
}

static bool readiness(void *ud, char *reason, size_t len) { return hl_notifier_ready(ud, reason, len); }

int main(int argc, char **argv) {
  hl_config *cfg = hl_config_main(&hl_notifier_config_spec, argc, argv);
  hl_log_configure("hl-s3-notifier", cfg);
  app a = {.cfg = cfg};
  hl_metrics *reg = NULL;
  hl_admin *admin = NULL;
  char err[512] = "";
  uv_loop_t *loop = uv_default_loop();
  int r = hl_metrics_new(&reg);
  if (r < 0)
    goto out;
  hl_notifier_opts o;
  hl_s3_config s3;
  if ((r = hl_notifier_opts_from_config(cfg, reg, &o, &s3, err, sizeof err)) < 0)
    goto out;
  if ((r = hl_notifier_new(loop, &o, &a.n, err, sizeof err)) < 0)
    goto out;
  const char *addr = hl_config_str(cfg, "HL_ADMIN_ADDR");
  if (*addr) {
    if ((r = hl_admin_start(addr, reg, &admin)) < 0) {
      snprintf(err, sizeof err, "admin server on %s: %s", addr, hl_strerror(r));
      goto out;
    }
    hl_admin_set_readiness(admin, readiness, a.n);
    if (hl_config_bool(cfg, "HL_NOTIFIER_S3_EVENTS") && (r = hl_notifier_routes_add(admin, a.n)) < 0)
      goto out;
  } else if (hl_config_bool(cfg, "HL_NOTIFIER_S3_EVENTS")) {
    snprintf(err, sizeof err, "HL_NOTIFIER_S3_EVENTS needs the admin server (HL_ADMIN_ADDR)");
    r = HL_ECONFIG;
    goto out;
  }
  if ((r = hl_notifier_start(a.n, err, sizeof err)) < 0)
    goto out;
  uv_signal_init(loop, &a.sigterm);
  uv_signal_init(loop, &a.sigint);
  uv_timer_init(loop, &a.watchdog);
  a.sigterm.data = a.sigint.data = a.watchdog.data = &a;
  uv_signal_start(&a.sigterm, on_signal, SIGTERM);
  uv_signal_start(&a.sigint, on_signal, SIGINT);
  uv_timer_start(&a.watchdog, on_watchdog, 500, 500);
  hl_log_kv(HL_LOG_INFO, "started", "dir", o.dir, "topic", o.kafka.topic, NULL);
  uv_run(loop, UV_RUN_DEFAULT);
  r = 0;
out:
  if (r < 0) {
    hl_log_kv(HL_LOG_ERROR, "hl-s3-notifier failed", "error", *err ? err : hl_strerror(r), NULL);
    a.status = r == HL_ECONFIG ? 2 : 1;
  }
  if (a.n && !a.stopped) {
    hl_notifier_stop(a.n, 0);
    uv_run(loop, UV_RUN_DEFAULT);
  }
  hl_admin_stop(admin);
  hl_notifier_free(a.n);
  uv_loop_close(loop);
  hl_metrics_free(reg);
  hl_config_free(cfg);
  return a.status;
}
