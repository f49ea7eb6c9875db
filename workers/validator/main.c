/* hl-validator: hl.fhir.raw -> hl.fhir.valid (passed) or hl.dlq (with an OperationOutcome). */
#include <stdio.h>
#include <stdlib.h>

#include "hl/admin.h"
#include "hl/config.h"
#include "hl/error.h"
#include "hl/log.h"
#include "hl/metrics.h"
#include "hl/worker.h"
#include "validator_worker.h"

static const hl_config_var vars[] = {
    HL_VALIDATOR_CONFIG_VARS,
    HL_CONFIG_KAFKA_VARS("hl-validator"),
    HL_CONFIG_WORKER_VARS,
    HL_CONFIG_ADMIN_VARS("0.0.0.0:9103"),
};
static const hl_config_spec spec = {
    "hl-validator",
    "Validates every FHIR resource against the FHIR R4 JSON Schema and Healthlake's profile; "
    "valid ones go on unchanged, invalid ones to the dead-letter topic with an OperationOutcome.",
    vars, sizeof vars / sizeof vars[0]};

int main(int argc, char **argv) {
  hl_config *cfg = hl_config_main(&spec, argc, argv);
  hl_log_configure(spec.binary, cfg);
  hl_metrics *reg = NULL;
  hl_validator_worker *vw = NULL;
  hl_worker *w = NULL;
  hl_admin *admin = NULL;
  char err[1024] = "";
  int r = hl_metrics_new(&reg);
  if (r == 0)
    r = hl_validator_worker_new(cfg, reg, &vw, err, sizeof err);
  if (r < 0)
    goto done;
  hl_worker_opts wo;
  hl_worker_opts_from_config(cfg, &wo);
  wo.kafka.metrics = reg;
  const char *topics[] = {hl_config_str(cfg, "HL_VALIDATOR_INPUT_TOPIC")};
  wo.topics = topics;
  wo.ntopics = 1;
  hl_processor proc;
  hl_validator_worker_processor(vw, &proc);
  if ((r = hl_worker_new(&wo, &proc, &w, err, sizeof err)) < 0)
    goto done;
  const char *addr = hl_config_str(cfg, "HL_ADMIN_ADDR");
  if (*addr) {
    if ((r = hl_admin_start(addr, reg, &admin)) < 0) {
      snprintf(err, sizeof err, "admin server on %s: %s", addr, hl_strerror(r));
      goto done;
    }
    hl_admin_set_readiness(admin, hl_worker_ready, w);
  }
  hl_worker_handle_signals(w);
  hl_log_kv(HL_LOG_INFO, "started", "input", topics[0], "schema",
            hl_validator_worker_schema_path(vw), "profile", hl_validator_worker_profile_path(vw),
            NULL);
  r = hl_worker_run(w);
done:
  if (r < 0)
    hl_log_kv(HL_LOG_ERROR, "stopped with an error", "error", *err ? err : hl_strerror(r), NULL);
  admin = hl_admin_stop(admin);
  w = hl_worker_free(w);
  vw = hl_validator_worker_free(vw);
  reg = hl_metrics_free(reg);
  hl_config_free(cfg);
  return r == HL_ECONFIG ? 2 : r < 0 ? 1 : 0;
}
