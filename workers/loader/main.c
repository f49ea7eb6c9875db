/* hl-loader: hl.fhir.valid (+ hl.jobs.status) -> warehouse transactions, then hl.load.committed. */
#include <stdio.h>
#include <stdlib.h>

#include "hl/config.h"
#include "hl/error.h"
#include "hl/kafka.h"
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

static void attach(void *ud, hl_worker *w) { hl_loader_worker_attach(ud, w); }

int main(int argc, char **argv) {
  hl_kafka_tune_malloc(); /* before librdkafka allocates its first buffer */
  hl_wh_tune_process();   /* before SQLite is first used */
  hl_config *cfg = hl_config_main(&spec, argc, argv);
  hl_log_configure(spec.binary, cfg);
  hl_metrics *reg = NULL;
  hl_loader_worker *lw = NULL;
  char err[1024] = "";
  int status = HL_EXIT_FAILURE;
  int r = hl_metrics_new(&reg);
  if (r == 0)
    r = hl_loader_worker_new(cfg, reg, &lw, err, sizeof err);
  if (r < 0) {
    hl_log_kv(HL_LOG_ERROR, "cannot start", "error", *err ? err : hl_wh_strerror(r), NULL);
    status = r == HL_ECONFIG ? HL_EXIT_CONFIG : HL_EXIT_FAILURE;
    goto done;
  }
  const char *topics[] = {hl_config_str(cfg, "HL_LOADER_INPUT_TOPIC"),
                          hl_config_str(cfg, "HL_LOADER_STATUS_TOPIC")};
  hl_processor proc;
  hl_loader_worker_processor(lw, &proc);
  hl_log_kv(HL_LOG_INFO, "started", "input", topics[0], "status", topics[1], "warehouse",
            hl_config_str(cfg, "HL_WAREHOUSE_PATH"), NULL);
  hl_worker_spec ws = {.cfg = cfg,
                       .metrics = reg,
                       .topics = topics,
                       .ntopics = *topics[1] ? 2 : 1,
                       .proc = &proc,
                       .attach = attach,
                       .attach_ud = lw,
                       .ready = hl_loader_worker_ready,
                       .ready_ud = lw};
  status = hl_worker_main(&ws);
done:
  lw = hl_loader_worker_free(lw);
  reg = hl_metrics_free(reg);
  hl_config_free(cfg);
  return status;
}
