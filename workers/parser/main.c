/* hl-parser: landed objects -> one message per FHIR resource on hl.fhir.raw. */
#include <stdio.h>
#include <stdlib.h>

#include "hl/config.h"
#include "hl/error.h"
#include "hl/log.h"
#include "hl/metrics.h"
#include "hl/s3.h"
#include "hl/worker.h"
#include "parser_worker.h"

static const hl_config_var vars[] = {
    HL_PARSER_CONFIG_VARS,
    HL_CONFIG_KAFKA_VARS("hl-parser"),
    HL_CONFIG_WORKER_VARS,
    HL_CONFIG_S3_VARS,
    HL_CONFIG_ADMIN_VARS("0.0.0.0:9102"),
};
static const hl_config_spec spec = {
    "hl-parser",
    "Reads every landed object (NDJSON, JSON, Bundles, gzip) and emits one message per FHIR "
    "resource; bad input goes to the dead-letter topic.",
    vars, sizeof vars / sizeof vars[0]};

static void attach(void *ud, hl_worker *w) { hl_parser_worker_attach(ud, w); }

int main(int argc, char **argv) {
  hl_kafka_tune_malloc(); /* before librdkafka allocates its first buffer */
  hl_config *cfg = hl_config_main(&spec, argc, argv);
  hl_log_configure(spec.binary, cfg);
  hl_metrics *reg = NULL;
  hl_parser_worker *pw = NULL;
  char err[1024] = "";
  int status = HL_EXIT_FAILURE;
  int r = hl_metrics_new(&reg);
  if (r == 0)
    r = hl_parser_worker_new(cfg, reg, &pw, err, sizeof err);
  if (r < 0) {
    hl_log_kv(HL_LOG_ERROR, "cannot start", "error", *err ? err : hl_strerror(r), NULL);
    status = r == HL_ECONFIG ? HL_EXIT_CONFIG : HL_EXIT_FAILURE;
    goto done;
  }
  const char *topics[] = {hl_config_str(cfg, "HL_PARSER_INPUT_TOPIC")};
  hl_processor proc;
  hl_parser_worker_processor(pw, &proc);
  hl_log_kv(HL_LOG_INFO, "started", "input", topics[0], "s3",
            hl_parser_worker_reads_s3(pw) ? "on" : "off (no S3 credentials: s3:// objects are refused)",
            NULL);
  hl_worker_spec ws = {.cfg = cfg,
                       .metrics = reg,
                       .topics = topics,
                       .ntopics = 1,
                       .proc = &proc,
                       .attach = attach,
                       .attach_ud = pw};
  status = hl_worker_main(&ws);
done:
  pw = hl_parser_worker_free(pw);
  reg = hl_metrics_free(reg);
  hl_config_free(cfg);
  return status;
}
