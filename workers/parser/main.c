/* hl-parser: landed objects -> one message per FHIR resource on hl.fhir.raw. */
#include <stdio.h>
#include <stdlib.h>

#include "hl/admin.h"
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

int main(int argc, char **argv) {
  hl_config *cfg = hl_config_main(&spec, argc, argv);
  hl_log_configure(spec.binary, cfg);
  hl_metrics *reg = NULL;
  hl_parser_worker *pw = NULL;
  hl_worker *w = NULL;
  hl_admin *admin = NULL;
  char err[512] = "";
  int r = hl_metrics_new(&reg);
  if (r == 0)
    r = hl_parser_worker_new(cfg, reg, &pw, err, sizeof err);
  if (r < 0)
    goto done;
  hl_worker_opts wo;
  hl_worker_opts_from_config(cfg, &wo);
  wo.kafka.metrics = reg;
  const char *topics[] = {hl_config_str(cfg, "HL_PARSER_INPUT_TOPIC")};
  wo.topics = topics;
  wo.ntopics = 1;
  hl_processor proc;
  hl_parser_worker_processor(pw, &proc);
  if ((r = hl_worker_new(&wo, &proc, &w, err, sizeof err)) < 0)
    goto done;
  hl_parser_worker_attach(pw, w);
  const char *addr = hl_config_str(cfg, "HL_ADMIN_ADDR");
  if (*addr) {
    if ((r = hl_admin_start(addr, reg, &admin)) < 0) {
      snprintf(err, sizeof err, "admin server on %s: %s", addr, hl_strerror(r));
      goto done;
    }
    hl_admin_set_readiness(admin, hl_worker_ready, w);
  }
  hl_worker_handle_signals(w);
  hl_log_kv(HL_LOG_INFO, "started", "input", topics[0], "s3",
            hl_parser_worker_reads_s3(pw) ? "on" : "off (no S3 credentials: s3:// objects are refused)",
            NULL);
  r = hl_worker_run(w);
done:
  if (r < 0)
    hl_log_kv(HL_LOG_ERROR, "stopped with an error", "error", *err ? err : hl_strerror(r), NULL);
  admin = hl_admin_stop(admin);
  w = hl_worker_free(w);
  pw = hl_parser_worker_free(pw);
  reg = hl_metrics_free(reg);
  hl_config_free(cfg);
  return r == HL_ECONFIG ? 2 : r < 0 ? 1 : 0;
}
