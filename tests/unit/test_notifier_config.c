/* hl-s3-notifier's configuration table and its translation into hl_notifier_opts. */
#include <string.h>

#include "config.h"
#include "hl/error.h"
#include "hl_test.h"

HL_TEST_SUITE(notifier_config);

typedef struct {
  const char *k[12];
  const char *v[12];
} env;

static const char *lookup(const char *name, void *ud) {
  env *e = ud;
  for (int i = 0; i < 12 && e->k[i]; i++)
    if (strcmp(e->k[i], name) == 0)
      return e->v[i];
  return NULL;
}

static hl_config *load(env *e) {
  hl_config *cfg = NULL;
  char err[256] = "";
  cr_assert_eq(hl_config_load_from(&hl_notifier_config_spec, lookup, e, &cfg, err, sizeof err), 0,
               "%s", err);
  return cfg;
}

Test(notifier_config, defaults_leave_s3_unconfigured) {
  env e = {{"HL_NOTIFIER_DIR"}, {"/landing"}};
  hl_config *cfg = load(&e);
  hl_notifier_opts o;
  hl_s3_config s3;
  char err[256] = "";
  cr_assert_eq(hl_notifier_opts_from_config(cfg, NULL, &o, &s3, err, sizeof err), 0, "%s", err);
  cr_assert_str_eq(o.dir, "/landing");
  cr_assert_str_eq(o.dir_bucket, "landing");
  cr_assert_eq(o.stable_ms, 2000);
  cr_assert_eq(o.rescan_ms, 60000);
  cr_assert_eq(o.batch_max, 500);
  cr_assert_eq(o.max_queue, 100000);
  cr_assert_str_eq(o.kafka.topic, "hl.landing.objects");
  cr_assert_eq(o.kafka.max_inflight, 1000);
  cr_assert_str_eq(o.default_org, "default");
  cr_assert_str_eq(o.state_path, "hl-s3-notifier.db");
  cr_assert_str_eq(o.s3_bucket, "");
  cr_assert_str_eq(o.sqs_queue_url, "");
  cr_assert_eq(o.s3, &s3);
  /* No S3 source: the S3 settings are not read. */
  cr_assert_null(s3.access_key);
  cr_assert_null(s3.endpoint);
  hl_config_free(cfg);
}

Test(notifier_config, sources_and_limits_are_mapped) {
  env e = {{"HL_NOTIFIER_S3_BUCKET", "HL_S3_ENDPOINT", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
            "HL_NOTIFIER_POLL_INTERVAL", "HL_NOTIFIER_SQS_QUEUE_URL", "HL_NOTIFIER_SQS_WAIT",
            "HL_NOTIFIER_SQS_MAX_MESSAGES", "HL_NOTIFIER_SQS_VISIBILITY_TIMEOUT",
            "HL_NOTIFIER_PREFIX", "HL_NOTIFIER_MAX_PENDING"},
           {"landing-bucket", "http://127.0.0.1:9000", "AK", "SK", "1500ms",
            "http://127.0.0.1:9324/1/q", "7", "3", "45", "org=a/", "17"}};
  hl_config *cfg = load(&e);
  hl_notifier_opts o;
  hl_s3_config s3;
  char err[256] = "";
  cr_assert_eq(hl_notifier_opts_from_config(cfg, NULL, &o, &s3, err, sizeof err), 0, "%s", err);
  cr_assert_str_eq(o.s3_bucket, "landing-bucket");
  cr_assert_eq(o.poll_ms, 1500);
  cr_assert_str_eq(o.sqs_queue_url, "http://127.0.0.1:9324/1/q");
  cr_assert_eq(o.sqs_wait_s, 7);
  cr_assert_eq(o.sqs_max_messages, 3);
  cr_assert_eq(o.sqs_visibility_s, 45);
  cr_assert_str_eq(o.prefix, "org=a/");
  cr_assert_eq(o.kafka.max_inflight, 17);
  cr_assert_eq(o.s3, &s3);
  cr_assert_str_eq(s3.endpoint, "http://127.0.0.1:9000");
  cr_assert_str_eq(s3.access_key, "AK");
  cr_assert_str_eq(s3.secret_key, "SK");
  hl_config_free(cfg);
}

Test(notifier_config, out_of_range_values_are_refused) {
  env e = {{"HL_NOTIFIER_SQS_WAIT"}, {"21"}};
  hl_config *cfg = NULL;
  char err[256] = "";
  cr_assert_eq(hl_config_load_from(&hl_notifier_config_spec, lookup, &e, &cfg, err, sizeof err),
               HL_ECONFIG);
  cr_assert(strstr(err, "HL_NOTIFIER_SQS_WAIT"), "%s", err);
  cr_assert_null(cfg);
}
