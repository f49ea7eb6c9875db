/*
 * hl-s3-notifier's configuration: the HL_* table (docs/CONFIG.md is generated
 * from it) and its translation into hl_notifier_opts.
 */
#include <stdio.h>

#include "config.h"

#include "hl/admin.h"
#include "hl/error.h"

/*
 * The producer-side subset of libstream's HL_CONFIG_KAFKA_VARS (same names and
 * meaning): the notifier runs its own producer because exactly-once
 * announcement needs explicit partitions and per-message delivery offsets.
 */
#define NOTIFIER_KAFKA_VARS                                                                    \
  {"HL_KAFKA_BROKERS", HL_CFG_STRING, "127.0.0.1:9092", 1, 1024, NULL,                         \
   "Comma-separated host:port list of bootstrap brokers."},                                    \
  {"HL_KAFKA_PROPS", HL_CFG_STRING, "", 0, 8192, NULL,                                         \
   "Extra librdkafka properties as k=v,k=v (write \\, for a comma in a value)."}

static const hl_config_var vars[] = {
    {"HL_NOTIFIER_DIR", HL_CFG_STRING, "", 0, 4096, NULL,
     "Landing directory to watch (the dir source); empty disables it."},
    {"HL_NOTIFIER_BUCKET", HL_CFG_STRING, "landing", 1, 255, NULL,
     "Bucket name given to the landing directory in events."},
    {"HL_NOTIFIER_STABLE_FOR", HL_CFG_DURATION, "2s", 0, 3600000, NULL,
     "A file is complete once its size, mtime and inode stayed unchanged this long."},
    {"HL_NOTIFIER_RESCAN_INTERVAL", HL_CFG_DURATION, "60s", 0, 86400000, NULL,
     "Full rescan of the landing directory (a safety net for lost events); 0 disables it."},
    {"HL_NOTIFIER_MAX_WATCHES", HL_CFG_INT, "8192", 1, 1000000, NULL,
     "Most directories watched for events; deeper trees rely on the rescan."},
    {"HL_NOTIFIER_TEMP_SUFFIXES", HL_CFG_STRING, ".tmp,.part,.partial,~", 0, 4096, NULL,
     "Comma-separated endings of temporary file names, ignored until renamed (a leading '.' always is)."},
    {"HL_NOTIFIER_S3_BUCKET", HL_CFG_STRING, "", 0, 63, NULL,
     "Bucket listed with ListObjectsV2 every HL_NOTIFIER_POLL_INTERVAL (the s3-poll source); empty disables it."},
    {"HL_NOTIFIER_POLL_INTERVAL", HL_CFG_DURATION, "30s", 100, 86400000, NULL,
     "Pause between two listings of HL_NOTIFIER_S3_BUCKET."},
    {"HL_NOTIFIER_S3_EVENTS", HL_CFG_BOOL, "false", 0, 0, NULL,
     "Accept S3 event notifications on POST /events/s3 of the admin server (the s3-events source)."},
    {"HL_NOTIFIER_SQS_QUEUE_URL", HL_CFG_STRING, "", 0, 1024, NULL,
     "SQS queue receiving S3 event notifications (the s3-events source by long polling); empty disables it."},
    {"HL_NOTIFIER_SQS_ENDPOINT", HL_CFG_STRING, "", 0, 512, NULL,
     "Endpoint the SQS requests go to (http://host:port); empty: the queue URL's scheme and host."},
    {"HL_NOTIFIER_SQS_WAIT", HL_CFG_INT, "20", 0, 20, NULL,
     "WaitTimeSeconds of ReceiveMessage: how long one long poll waits for a message."},
    {"HL_NOTIFIER_SQS_MAX_MESSAGES", HL_CFG_INT, "10", 1, 10, NULL,
     "MaxNumberOfMessages of ReceiveMessage."},
    {"HL_NOTIFIER_SQS_VISIBILITY_TIMEOUT", HL_CFG_INT, "120", 0, 43200, NULL,
     "VisibilityTimeout (s) of received messages: a message not deleted by then is delivered again; 0: the queue's."},
    {"HL_NOTIFIER_PREFIX", HL_CFG_STRING, "", 0, 1024, NULL,
     "Only keys starting with this prefix are announced."},
    {"HL_NOTIFIER_SUFFIXES", HL_CFG_STRING, ".ndjson,.ndjson.gz,.json,.json.gz,.jsonl,.jsonl.gz", 0,
     4096, NULL, "Comma-separated key endings (any case) that are announced; empty: every key."},
    {"HL_NOTIFIER_DEFAULT_ORG", HL_CFG_STRING, "default", 0, 64, NULL,
     "Tenant of keys without an org=<id>/ segment; empty: such objects are rejected."},
    {"HL_NOTIFIER_STATE", HL_CFG_STRING, "hl-s3-notifier.db", 1, 4096, NULL,
     "SQLite state file recording every announced object version (must survive restarts)."},
    {"HL_NOTIFIER_TOPIC", HL_CFG_STRING, "hl.landing.objects", 1, 249, NULL,
     "Topic the landing events are produced to."},
    {"HL_NOTIFIER_MAX_PENDING", HL_CFG_INT, "1000", 1, 4096, NULL,
     "Most announcements produced and not yet acknowledged."},
    {"HL_NOTIFIER_BATCH", HL_CFG_INT, "500", 1, 4096, NULL,
     "Announcements recorded in one state transaction and produced together."},
    {"HL_NOTIFIER_MAX_QUEUE", HL_CFG_INT, "100000", 1, 10000000, NULL,
     "Most candidates waiting for room; sources retry later beyond it."},
    {"HL_NOTIFIER_SHUTDOWN_TIMEOUT", HL_CFG_DURATION, "10s", 0, 600000, NULL,
     "On SIGTERM, how long to wait for acknowledgements of what is in flight."},
    NOTIFIER_KAFKA_VARS,
    HL_CONFIG_S3_VARS,
    HL_CONFIG_ADMIN_VARS("0.0.0.0:9101"),
};

const hl_config_spec hl_notifier_config_spec = {"hl-s3-notifier",
                                    "Announces every complete landing object once on hl.landing.objects.",
                                    vars, sizeof vars / sizeof vars[0]};

int hl_notifier_opts_from_config(const hl_config *cfg, hl_metrics *reg, hl_notifier_opts *o,
                                 hl_s3_config *s3, char *err, size_t errlen) {
  *o = (hl_notifier_opts){
      .state_path = hl_config_str(cfg, "HL_NOTIFIER_STATE"),
      .default_org = hl_config_str(cfg, "HL_NOTIFIER_DEFAULT_ORG"),
      .prefix = hl_config_str(cfg, "HL_NOTIFIER_PREFIX"),
      .suffixes = hl_config_str(cfg, "HL_NOTIFIER_SUFFIXES"),
      .temp_suffixes = hl_config_str(cfg, "HL_NOTIFIER_TEMP_SUFFIXES"),
      .batch_max = (int)hl_config_int(cfg, "HL_NOTIFIER_BATCH"),
      .max_queue = (size_t)hl_config_int(cfg, "HL_NOTIFIER_MAX_QUEUE"),
      .kafka = {.brokers = hl_config_str(cfg, "HL_KAFKA_BROKERS"),
                .props = hl_config_str(cfg, "HL_KAFKA_PROPS"),
                .topic = hl_config_str(cfg, "HL_NOTIFIER_TOPIC"),
                .max_inflight = (int)hl_config_int(cfg, "HL_NOTIFIER_MAX_PENDING")},
      .dir = hl_config_str(cfg, "HL_NOTIFIER_DIR"),
      .dir_bucket = hl_config_str(cfg, "HL_NOTIFIER_BUCKET"),
      .stable_ms = (uint64_t)hl_config_int(cfg, "HL_NOTIFIER_STABLE_FOR"),
      .rescan_ms = (uint64_t)hl_config_int(cfg, "HL_NOTIFIER_RESCAN_INTERVAL"),
      .max_watches = (size_t)hl_config_int(cfg, "HL_NOTIFIER_MAX_WATCHES"),
      .s3_bucket = hl_config_str(cfg, "HL_NOTIFIER_S3_BUCKET"),
      .poll_ms = (uint64_t)hl_config_int(cfg, "HL_NOTIFIER_POLL_INTERVAL"),
      .sqs_queue_url = hl_config_str(cfg, "HL_NOTIFIER_SQS_QUEUE_URL"),
      .sqs_endpoint = hl_config_str(cfg, "HL_NOTIFIER_SQS_ENDPOINT"),
      .sqs_wait_s = (int)hl_config_int(cfg, "HL_NOTIFIER_SQS_WAIT"),
      .sqs_max_messages = (int)hl_config_int(cfg, "HL_NOTIFIER_SQS_MAX_MESSAGES"),
      .sqs_visibility_s = (int)hl_config_int(cfg, "HL_NOTIFIER_SQS_VISIBILITY_TIMEOUT"),
      .metrics = reg,
  };
  *s3 = (hl_s3_config){0};
  /* S3 credentials are needed only by the sources that call S3 or SQS. */
  if (*o->s3_bucket || *o->sqs_queue_url) {
    int r = hl_s3_config_from(cfg, s3, err, errlen);
    if (r < 0)
      return r;
  }
  o->s3 = s3;
  return 0;
}
