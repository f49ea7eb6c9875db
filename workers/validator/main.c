/* hl-validator: hl.fhir.raw -> hl.fhir.valid (passed) or hl.dlq (with an OperationOutcome). */
#include <stdio.h>
#include <stdlib.h>

#include "hl/config.h"
#include "hl/error.h"
#include "hl/kafka.h"
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
  hl_kafka_tune_malloc(); /* before librdkafka allocates its first buffer */
  hl_config *cfg = hl_config_main(&spec, argc, argv);
  hl_log_configure(spec.binary, cfg);
  hl_metrics *reg = NULL;
  hl_validator_worker *vw = NULL;
  char err[1024] = "";
  int status = HL_EXIT_FAILURE;
  int r = hl_metrics_new(&reg);
  if (r == 0)
    r = hl_validator_worker_new(cfg, reg, &vw, err, sizeof err);
  if (r < 0) {
    hl_log_kv(HL_LOG_ERROR, "cannot start", "error", *err ? err : hl_strerror(r), NULL);
    status = r == HL_ECONFIG ? HL_EXIT_CONFIG : HL_EXIT_FAILURE;
    goto done;
  }
  const char *topics[] = {hl_config_str(cfg, "HL_VALIDATOR_INPUT_TOPIC")};
  hl_processor proc;
  hl_validator_worker_processor(vw, &proc);
  hl_log_kv(HL_LOG_INFO, "started", "input", topics[0], "schema",
            hl_validator_worker_schema_path(vw), "profile", hl_validator_worker_profile_path(vw),
            NULL);
  hl_worker_spec ws = {.cfg = cfg,
                       .metrics = reg,
                       .topics = topics,
                       .ntopics = 1,
                       .proc = &proc,
                       .downstream_group = hl_config_str(cfg, "HL_VALIDATOR_DOWNSTREAM_GROUP"),
                       .downstream_topic = hl_config_str(cfg, "HL_VALIDATOR_OUTPUT_TOPIC"),
                       .max_downstream_lag = hl_config_int(cfg, "HL_VALIDATOR_MAX_DOWNSTREAM_LAG"),
                       .max_downstream_partition_bytes =
                           hl_config_int(cfg, "HL_VALIDATOR_MAX_DOWNSTREAM_PARTITION_BYTES")};
  status = hl_worker_main(&ws);
done:
  vw = hl_validator_worker_free(vw);
  reg = hl_metrics_free(reg);
  hl_config_free(cfg);
  return status;
}
