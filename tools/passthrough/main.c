/*
 * hl-passthrough: copies every message (key, value, headers) from one topic
 * to another with the libstream run loop. Offsets are committed only after
 * the copy is acknowledged. It is also the base of the dead-letter replay
 * tool (hl.dlq -> the stage's input topic).
 */
#include <stdio.h>
#include <string.h>

#include "hl/config.h"
#include "hl/error.h"
#include "hl/log.h"
#include "hl/metrics.h"
#include "hl/worker.h"

static const hl_config_var vars[] = {
    {"HL_PT_INPUT_TOPIC", HL_CFG_STRING, NULL, 1, 249, NULL, "Topic to copy from."},
    {"HL_PT_OUTPUT_TOPIC", HL_CFG_STRING, NULL, 1, 249, NULL, "Topic to copy to."},
    HL_CONFIG_KAFKA_VARS("hl-passthrough"),
    HL_CONFIG_WORKER_VARS,
    HL_CONFIG_ADMIN_VARS(""),
};

static const hl_config_spec spec = {
    .binary = "hl-passthrough",
    .summary = "Copies every message (key, value, headers) of one Kafka topic to another.",
    .vars = vars,
    .nvars = sizeof vars / sizeof vars[0],
};

static hl_proc_result forward(void *ud, hl_worker *w, hl_kafka_msg *msg) {
  int r = hl_worker_forward(w, msg, ud);
  if (r == 0)
    return HL_PROC_OK;
  return r == HL_EFATAL || r == HL_EKAFKA ? HL_PROC_FATAL : HL_PROC_RETRY;
}

int main(int argc, char **argv) {
  hl_config *cfg = hl_config_main(&spec, argc, argv);
  hl_log_configure(spec.binary, cfg);
  const char *in = hl_config_str(cfg, "HL_PT_INPUT_TOPIC");
  const char *out = hl_config_str(cfg, "HL_PT_OUTPUT_TOPIC");
  hl_worker_opts opts;
  hl_worker_opts_from_config(cfg, &opts);
  char err[512] = "";
  if (strcmp(in, out) == 0)
    snprintf(err, sizeof err, "HL_PT_INPUT_TOPIC and HL_PT_OUTPUT_TOPIC must differ");
  else
    hl_kafka_opts_check(&opts.kafka, err, sizeof err);
  if (err[0]) {
    fprintf(stderr, "%s: configuration error: %s\n", spec.binary, err);
    hl_config_free(cfg);
    return HL_EXIT_CONFIG;
  }
  int status = HL_EXIT_FAILURE;
  hl_metrics *metrics = NULL;
  if (hl_metrics_new(&metrics) == 0) {
    hl_processor proc = {.stage = "passthrough", .ud = (void *)out, .process = forward};
    hl_log_kv(HL_LOG_INFO, "copying", "from", in, "to", out, NULL);
    hl_worker_spec ws = {.cfg = cfg, .metrics = metrics, .topics = &in, .ntopics = 1, .proc = &proc};
    status = hl_worker_main(&ws);
  }
  hl_metrics_free(metrics);
  hl_config_free(cfg);
  return status;
}
