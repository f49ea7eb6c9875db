/*
 * hl-validator's processor for the libstream run loop: hl.fhir.raw in; each
 * resource that passes the FHIR R4 schema and the Healthlake profile goes
 * unchanged (key, value, headers) to hl.fhir.valid, each one that does not
 * goes to hl.dlq with an OperationOutcome listing every issue. Per batch,
 * one job-status event (stage validate) per landed object on hl.jobs.status.
 */
#ifndef HL_VALIDATOR_WORKER_H
#define HL_VALIDATOR_WORKER_H

#include "hl/config.h"
#include "hl/metrics.h"
#include "hl/worker.h"

#define HL_VALIDATOR_CONFIG_VARS                                                        \
  {"HL_VALIDATOR_INPUT_TOPIC", HL_CFG_STRING, "hl.fhir.raw", 1, 249, NULL,              \
   "Topic of FHIR resources to validate."},                                             \
  {"HL_VALIDATOR_OUTPUT_TOPIC", HL_CFG_STRING, "hl.fhir.valid", 1, 249, NULL,           \
   "Topic that receives the resources that passed, unchanged."},                        \
  {"HL_VALIDATOR_STATUS_TOPIC", HL_CFG_STRING, "hl.jobs.status", 1, 249, NULL,          \
   "Topic that receives the validate-stage job-status events (one per object and "      \
   "batch)."},                                                                          \
  {"HL_VALIDATOR_SCHEMA", HL_CFG_STRING, "", 0, 4096, NULL,                             \
   "The FHIR R4 JSON Schema (fhir.schema.json); empty looks in the installed data "     \
   "directory, then in tools/npm of the source tree."},                                 \
  {"HL_VALIDATOR_PROFILE", HL_CFG_STRING, "", 0, 4096, NULL,                            \
   "Healthlake's profile rules (profile.json); empty looks in the installed data "      \
   "directory, then in schemas/fhir of the source tree; \"none\" checks the schema "    \
   "only."},                                                                            \
  {"HL_VALIDATOR_MAX_ISSUES", HL_CFG_INT, "100", 1, 10000, NULL,                        \
   "Most issues listed in one OperationOutcome (more are counted in a last issue)."},   \
  {"HL_VALIDATOR_DOWNSTREAM_GROUP", HL_CFG_STRING, "hl-loader", 0, 255, NULL,           \
   "Consumer group whose lag on the output topic bounds the validator (consumption "    \
   "pauses above HL_VALIDATOR_MAX_DOWNSTREAM_LAG); empty disables."},                    \
  {"HL_VALIDATOR_MAX_DOWNSTREAM_LAG", HL_CFG_INT, "100000", 1, 1000000000, NULL,        \
   "Most messages the downstream group may be behind on the output topic before the "   \
   "validator pauses."},                                                                 \
  {"HL_VALIDATOR_MAX_DOWNSTREAM_PARTITION_BYTES", HL_CFG_SIZE, "2MiB", 1024,            \
   1073741824, NULL,                                                                     \
   "Most bytes (by the mean resource size) one partition of the output topic may be "   \
   "behind before the validator pauses (hl-devbroker keeps 5 MiB a partition)."}

typedef struct hl_validator_worker hl_validator_worker;

/*
 * Loads the schema and profile named by cfg (or found by the defaults) and
 * builds the processor state; reg may be NULL. 0, -ENOMEM, or HL_ECONFIG
 * with a message in err (a file missing or not compilable).
 */
int hl_validator_worker_new(const hl_config *cfg, hl_metrics *reg, hl_validator_worker **out,
                            char *err, size_t errlen);
hl_validator_worker *hl_validator_worker_free(hl_validator_worker *vw);
/* The processor to hand to hl_worker_new (ud = vw; batches). */
void hl_validator_worker_processor(hl_validator_worker *vw, hl_processor *proc);

/* The paths in use (after the defaults were resolved). */
const char *hl_validator_worker_schema_path(const hl_validator_worker *vw);
const char *hl_validator_worker_profile_path(const hl_validator_worker *vw);

#endif
