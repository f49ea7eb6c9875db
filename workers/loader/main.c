/* hl-loader: hl.fhir.valid (+ hl.jobs.status) -> warehouse transactions, then hl.load.committed. */
#include <stdio.h>
#include <stdlib.h>

#include "hl/admin.h"
#include "hl/config.h"
#include "hl/error.h"
#include "hl/log.h"
#include "hl/metrics.h"
#include "hl/warehouse.h"
#include "hl/worker.h"
#include "loader_worker.h"

static const hl_config_var vars[] = {
    HL_LOADER_CONFIG_VARS,
    HL_CONFIG_WAREHOUSE_VARS,
    HL_CONFIG_KAFKA_VARS("hl-loader"),
    HL_LOADER_WORKER_VARS,
    HL_CONFIG_ADMIN_VARS("0.0.0.0:9104"),
};
static const hl_config_spec spec = {
    "hl-loader",
    "Writes validated FHIR resources to the warehouse (RAW, curated and OMOP layers) in one "
    "transaction per batch, folds job-status events into the jobs table, commits offsets after "
    "the transaction and publishes hl.load.committed.",
    vars, sizeof vars / sizeof vars[0]};

int main(int argc, char **argv) {
  hl_config *cfg = hl_config_main(&spec, argc, argv);
  hl_log_configure(spec.binary, cfg);
  hl_metrics *reg = NULL;
  hl_loader_worker *lw = NULL;
  hl_worker *w = NULL;
  hl_admin *admin = NULL;
  char err[1024] = "";
  int r = hl_metrics_new(&reg);
  if (r == 0)
    r = hl_loader_worker_new(cfg, reg, &lw, err, sizeof err);
  if (r < 0)
    goto done;
  hl_worker_opts wo;
  hl_worker_opts_from_config(cfg, &wo);
  wo.kafka.metrics = reg;
  const char *topics[] = {hl_config_str(cfg, "HL_LOADER_INPUT_TOPIC"),
                          hl_config_str(cfg, "HL_LOADER_STATUS_TOPIC")};
  wo.topics = topics;
  wo.ntopics = *topics[1] ? 2 : 1;
  hl_processor proc;
  hl_loader_worker_processor(lw, &proc);
  if ((r = hl_worker_new(&wo, &proc, &w, err, sizeof err)) < 0)
    goto done;
  hl_loader_worker_attach(lw, w);
  const char *addr = hl_config_str(cfg, "HL_ADMIN_ADDR");
  if (*addr) {
    if ((r = hl_admin_start(addr, reg, &admin)) < 0) {
      snprintf(err, sizeof err, "admin server on %s: %s", addr, hl_strerror(r));
      goto done;
    }
    hl_admin_set_readiness(admin, hl_loader_worker_ready, lw);
  }
  hl_worker_handle_signals(w);
  hl_log_kv(HL_LOG_INFO, "started", "input", topics[0], "status", topics[1], "warehouse",
            hl_config_str(cfg, "HL_WAREHOUSE_PATH"), NULL);
  r = hl_worker_run(w);
done:
  if (r < 0)
    hl_log_kv(HL_LOG_ERROR, "stopped with an error", "error", *err ? err : hl_wh_strerror(r), NULL);
  admin = hl_admin_stop(admin);
  w = hl_worker_free(w);
  lw = hl_loader_worker_free(lw);
  reg = hl_metrics_free(reg);
  hl_config_free(cfg);
  return r == HL_ECONFIG ? 2 : r < 0 ? 1 : 0;
}
