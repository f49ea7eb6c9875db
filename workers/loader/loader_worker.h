/*
 * hl-loader's processor for the libstream run loop. Each batch of
 * hl.fhir.valid resources (and of hl.jobs.status events, when folding is
 * on) becomes ONE warehouse transaction (hl_wh_batch_commit): RAW rows,
 * curated rows, job counters and folded job events. Only after it commits
 * does the processor return, so the worker commits offsets after the
 * transaction. Then it publishes one hl.load.committed event per (org, job)
 * and one load-stage job-status event per landed object.
 *
 * Errors: a busy or locked database (HL_WH_EBUSY) retries the batch; a
 * storage error (full disk, unwritable file: hl_wh_is_fatal) stops the
 * worker (HL_PROC_FATAL): readiness turns down, nothing of the batch is
 * written or committed, and the process exits non-zero for an operator or
 * the orchestrator to act; the next run resumes from the committed offsets.
 */
#ifndef HL_LOADER_WORKER_H
#define HL_LOADER_WORKER_H

#include <stdbool.h>

#include "hl/config.h"
#include "hl/metrics.h"
#include "hl/warehouse.h"
#include "hl/worker.h"

#define HL_LOADER_CONFIG_VARS                                                           \
  {"HL_LOADER_INPUT_TOPIC", HL_CFG_STRING, "hl.fhir.valid", 1, 249, NULL,               \
   "Topic of validated FHIR resources to load."},                                       \
  {"HL_LOADER_STATUS_TOPIC", HL_CFG_STRING, "hl.jobs.status", 0, 249, NULL,             \
   "Job-status topic: consumed and folded into the warehouse's jobs table, and the "    \
   "topic of the loader's own load-stage events; empty turns both off."},               \
  {"HL_LOADER_COMMITTED_TOPIC", HL_CFG_STRING, "hl.load.committed", 1, 249, NULL,       \
   "Topic that receives one event per (org, job) and committed warehouse batch."},      \
  {"HL_LOADER_BATCH_BYTES", HL_CFG_SIZE, "64MiB", 65536, 1073741824, NULL,              \
   "Most resource bytes in one warehouse transaction; a larger batch of input is "      \
   "committed in several transactions."}

/* The run-loop variables with the loader's defaults (bigger, slower-filling batches). */
#define HL_LOADER_WORKER_VARS                                                           \
  {"HL_DRAIN_TIMEOUT", HL_CFG_DURATION, "30s", 0, 3600000, NULL,                        \
   "On SIGTERM/SIGINT, time allowed to finish in-flight work, flush and commit."},      \
  {"HL_WORKER_BATCH_MAX", HL_CFG_INT, "20000", 1, 100000, NULL,                         \
   "Most input messages in one batch, i.e. in one warehouse transaction."},             \
  {"HL_WORKER_BATCH_WAIT", HL_CFG_DURATION, "100ms", 0, 60000, NULL,                    \
   "Longest wait for more input to fill a batch once one message is in hand."},         \
  {"HL_WORKER_MAX_INFLIGHT", HL_CFG_INT, "40000", 1, 10000000, NULL,                    \
   "Most input messages consumed and not yet done (backpressure bound)."},              \
  {"HL_WORKER_MAX_INFLIGHT_BYTES", HL_CFG_SIZE, "128MiB", 1024, 68719476736LL, NULL,    \
   "Most input bytes consumed and not yet done (backpressure bound)."},                 \
  {"HL_WORKER_RETRY_TIMEOUT", HL_CFG_DURATION, "5m", 0, 3600000, NULL,                  \
   "How long a batch that keeps failing with a retriable error (the database busy) "    \
   "is retried before the worker stops with a fatal error."}

typedef struct hl_loader_worker hl_loader_worker;

/*
 * Opens the warehouse named by cfg (created and migrated) and builds the
 * processor state; reg may be NULL. 0, -ENOMEM, or a warehouse error with a
 * message in err.
 */
int hl_loader_worker_new(const hl_config *cfg, hl_metrics *reg, hl_loader_worker **out, char *err,
                         size_t errlen);
hl_loader_worker *hl_loader_worker_free(hl_loader_worker *lw);
/* The processor to hand to hl_worker_new (ud = lw; batches). */
void hl_loader_worker_processor(hl_loader_worker *lw, hl_processor *proc);
/* Must be called once the hl_worker exists (readiness asks it too). */
void hl_loader_worker_attach(hl_loader_worker *lw, hl_worker *w);
/* Readiness for hl_admin_set_readiness (ud = lw): the worker's, and down after a storage error. */
bool hl_loader_worker_ready(void *ud, char *reason, size_t len);

#endif
