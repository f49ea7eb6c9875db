/*
 * hl-parser's processor for the libstream run loop: one hl.landing.objects
 * event in; one hl.fhir.raw message per resource, one hl.dlq message per
 * rejected piece, and one job-status event on hl.jobs.status out.
 */
#ifndef HL_PARSER_WORKER_H
#define HL_PARSER_WORKER_H

#include <stdbool.h>
#include <stddef.h>

#include "hl/config.h"
#include "hl/metrics.h"
#include "hl/worker.h"
#include "parser.h"

#define HL_PARSER_CONFIG_VARS                                                           \
  {"HL_PARSER_INPUT_TOPIC", HL_CFG_STRING, "hl.landing.objects", 1, 249, NULL,          \
   "Topic of landing-object events to parse."},                                         \
  {"HL_PARSER_OUTPUT_TOPIC", HL_CFG_STRING, "hl.fhir.raw", 1, 249, NULL,                \
   "Topic that receives one message per FHIR resource."},                               \
  {"HL_PARSER_STATUS_TOPIC", HL_CFG_STRING, "hl.jobs.status", 1, 249, NULL,             \
   "Topic that receives one job-status event per parsed object."},                      \
  {"HL_PARSER_LANDING_DIR", HL_CFG_STRING, "", 0, 4096, NULL,                           \
   "Landing directory; file:// objects must lie inside it (empty refuses file://)."},   \
  {"HL_PARSER_MAX_LINE", HL_CFG_SIZE, "4MiB", 1024, 1073741824, NULL,                   \
   "Longest NDJSON line; longer lines go to the DLQ (first bytes only)."},              \
  {"HL_PARSER_MAX_DOCUMENT", HL_CFG_SIZE, "64MiB", 1024, 4294967296LL, NULL,            \
   "Largest single JSON document (.json object or Bundle)."},                           \
  {"HL_PARSER_READ_CHUNK", HL_CFG_SIZE, "1MiB", 4096, 67108864, NULL,                    \
   "Bytes read from a landing file at a time (S3 objects arrive in libcurl's chunks)."}, \
  {"HL_PARSER_MAX_PENDING", HL_CFG_INT, "20000", 100, 1000000, NULL,                    \
   "Most messages produced and not yet acknowledged; the parser waits for "             \
   "acknowledgements beyond it (bounds its memory whatever the object's size)."},       \
  {"HL_PARSER_DOWNSTREAM_GROUP", HL_CFG_STRING, "hl-validator", 0, 255, NULL,           \
   "Consumer group whose lag on the output topic bounds the parser; empty disables."},  \
  {"HL_PARSER_MAX_DOWNSTREAM_LAG", HL_CFG_INT, "100000", 1, 1000000000, NULL,           \
   "Most messages the downstream group may be behind on the output topic before the "   \
   "parser waits."},                                                                     \
  {"HL_PARSER_MAX_DOWNSTREAM_PARTITION_BYTES", HL_CFG_SIZE, "2MiB", 1024, 1073741824,   \
   NULL,                                                                                 \
   "Most bytes (by the mean resource size) one partition of the output topic may be "   \
   "behind before the parser waits (hl-devbroker keeps 5 MiB a partition)."}

typedef struct hl_parser_worker hl_parser_worker;

/*
 * Builds the processor state from cfg (HL_PARSER_CONFIG_VARS, and
 * HL_CONFIG_S3_VARS for s3:// objects); reg may be NULL. s3:// objects are
 * read when cfg names an S3 credential source (static keys, container
 * credentials or a web identity) and refused otherwise. 0, -ENOMEM, or
 * HL_ECONFIG with a message in err (incomplete S3 settings).
 */
int hl_parser_worker_new(const hl_config *cfg, hl_metrics *reg, hl_parser_worker **out, char *err,
                         size_t errlen);
/* Whether s3:// objects are read (an S3 client was configured). */
bool hl_parser_worker_reads_s3(const hl_parser_worker *pw);
hl_parser_worker *hl_parser_worker_free(hl_parser_worker *pw);
/* The processor to hand to hl_worker_new (ud = pw). */
void hl_parser_worker_processor(hl_parser_worker *pw, hl_processor *proc);
/* Must be called once the hl_worker exists (the lag guard uses its producer). */
void hl_parser_worker_attach(hl_parser_worker *pw, hl_worker *w);

#endif
