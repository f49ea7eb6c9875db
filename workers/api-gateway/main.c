/* hl-api-gateway: FHIR read/search, ingestion and job status over HTTP. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include "gateway.h"
#include "hl/config.h"
#include "hl/error.h"
#include "hl/log.h"
#include "hl/metrics.h"

typedef struct run {
  uv_loop_t loop;
  uv_signal_t sigterm, sigint;
  hl_api_gw *gw;
} run;

static void on_drained(void *ud) {
  run *r = ud;
  uv_close((uv_handle_t *)&r->sigterm, NULL);
  uv_close((uv_handle_t *)&r->sigint, NULL);
}

static void on_signal(uv_signal_t *h, int signum) {
  run *r = h->data;
  hl_log_kv(HL_LOG_INFO, "draining", "signal", signum == SIGTERM ? "SIGTERM" : "SIGINT", NULL);
  hl_api_gw_drain(r->gw, on_drained, r);
}

int main(int argc, char **argv) {
  static const hl_config_spec spec_base = {"hl-api-gateway",
                                           "Serves FHIR R4 read and search over the curated warehouse, the "
                                           "ingestion API and job status, behind JWT authentication.",
                                           NULL, 0};
  hl_config_spec spec = spec_base;
  spec.vars = hl_api_config_vars;
  spec.nvars = hl_api_nconfig_vars;
  hl_config *cfg = hl_config_main(&spec, argc, argv);
  hl_log_configure(spec.binary, cfg);
  signal(SIGPIPE, SIG_IGN);
  hl_metrics *reg = NULL;
  run r = {0};
  char err[512] = "";
  int rc = uv_loop_init(&r.loop);
  if (rc == 0)
    rc = hl_metrics_new(&reg);
  if (rc == 0)
    rc = hl_api_gw_new(&r.loop, cfg, reg, &r.gw, err, sizeof err);
  if (rc == HL_ECONFIG) {
    fprintf(stderr, "hl-api-gateway: %s\n", err);
    uv_run(&r.loop, UV_RUN_DEFAULT);
    uv_loop_close(&r.loop);
    hl_metrics_free(reg);
    hl_config_free(cfg);
    return 2;
  }
  if (rc == 0 && (rc = hl_api_gw_listen(r.gw, NULL)) < 0)
    snprintf(err, sizeof err, "listen on %s: %s", hl_config_str(cfg, "HL_API_ADDR"), uv_strerror(rc));
  if (rc == 0) {
    uv_signal_init(&r.loop, &r.sigterm);
    uv_signal_init(&r.loop, &r.sigint);
    r.sigterm.data = r.sigint.data = &r;
    uv_signal_start(&r.sigterm, on_signal, SIGTERM);
    uv_signal_start(&r.sigint, on_signal, SIGINT);
    char port[16];
    snprintf(port, sizeof port, "%d", hl_api_gw_port(r.gw));
    hl_log_kv(HL_LOG_INFO, "listening", "addr", hl_config_str(cfg, "HL_API_ADDR"), "port", port, NULL);
    uv_run(&r.loop, UV_RUN_DEFAULT);
    hl_log_kv(HL_LOG_INFO, "stopped", NULL);
  }
  if (rc < 0)
    hl_log_kv(HL_LOG_ERROR, "stopped with an error", "error", *err ? err : hl_strerror(rc), NULL);
  r.gw = hl_api_gw_free(r.gw);
  uv_run(&r.loop, UV_RUN_DEFAULT);
  uv_loop_close(&r.loop);
  reg = hl_metrics_free(reg);
  hl_config_free(cfg);
  return rc < 0 ? 1 : 0;
}
