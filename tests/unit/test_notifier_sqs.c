#include <errno.h>
#include <string.h>

#include "hl/error.h"
#include "hl_test.h"
#include "sqs.h"

HL_TEST_SUITE(notifier_sqs);

/* A ReceiveMessage answer of the SQS JSON protocol, body JSON-escaped. */
static const char two[] =
    "{\"Messages\":[{\"MessageId\":\"5fea7756-0ea4-451a-a703-a558b933e274\","
    "\"ReceiptHandle\":\"MbZj6wDWli+JvwwJaBV+3dcjk2YW2vA3+STFFljTM8tJJg6HRG6PYSasuWXPJB+Cw\","
    "\"MD5OfBody\":\"fafb00f5732ab283681e124bf8747ed1\","
    "\"Body\":\"{\\\"Records\\\":[]}\",\"Attributes\":{\"ApproximateReceiveCount\":\"3\"}},"
    "{\"MessageId\":\"m2\",\"ReceiptHandle\":\"r2\",\"Body\":\"not json\"}]}";

Test(notifier_sqs, parse_receive) {
  hl_sqs_messages m;
  cr_assert_eq(hl_sqs_parse_receive(two, strlen(two), &m), 0);
  cr_assert_eq(m.n, 2);
  cr_assert_str_eq(m.v[0].id, "5fea7756-0ea4-451a-a703-a558b933e274");
  cr_assert_str_eq(m.v[0].body, "{\"Records\":[]}");
  cr_assert_eq(m.v[0].receive_count, 3);
  cr_assert_str_eq(m.v[1].receipt, "r2");
  cr_assert_eq(m.v[1].receive_count, 0, "no attribute: 0");
  hl_sqs_messages_clear(&m);
  cr_assert_eq(m.n, 0);
}

Test(notifier_sqs, parse_receive_empty_and_bad) {
  hl_sqs_messages m;
  cr_assert_eq(hl_sqs_parse_receive("{}", 2, &m), 0, "an empty long poll answers {}");
  cr_assert_eq(m.n, 0);
  const char *bad[] = {"", "[]", "{\"Messages\":{}}", "{\"Messages\":[{\"MessageId\":\"x\"}]}",
                       "{\"Messages\":[{\"MessageId\":\"x\",\"ReceiptHandle\":\"r\",\"Body\":7}]}",
                       "{\"Messages\":[1,2,3,4,5,6,7,8,9,10,11]}"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    cr_assert_eq(hl_sqs_parse_receive(bad[i], strlen(bad[i]), &m), HL_EPARSE, "%s", bad[i]);
    cr_assert_eq(m.n, 0);
  }
}

static int offer(void *ud, const hl_notifier_object *o, size_t n) { return (void)ud, (void)o, (void)n, 0; }
static int settled(void *ud, const hl_notifier_object *o) { return (void)ud, (void)o, 1; }

Test(notifier_sqs, settings_are_checked) {
  hl_s3_config aws = {.access_key = "AK", .secret_key = "SK", .region = "eu-west-1"};
  hl_sqs_opts o = {.aws = &aws, .queue_url = "https://sqs.eu-west-1.amazonaws.com/123456789012/q",
                   .wait_s = 20, .max_messages = 10, .visibility_s = 60, .offer = offer, .settled = settled};
  hl_sqs *q = NULL;
  cr_assert_eq(hl_sqs_new(&o, &q), 0);
  q = hl_sqs_free(q);
  cr_assert_null(q);
  hl_sqs_opts b = o;
  b.wait_s = 21;
  cr_assert_eq(hl_sqs_new(&b, &q), -EINVAL, "WaitTimeSeconds is at most 20");
  b = o;
  b.max_messages = 11;
  cr_assert_eq(hl_sqs_new(&b, &q), -EINVAL, "MaxNumberOfMessages is at most 10");
  b = o;
  b.queue_url = "sqs.eu-west-1.amazonaws.com/1/q";
  cr_assert_eq(hl_sqs_new(&b, &q), -EINVAL, "a queue URL needs a scheme");
  b = o;
  b.queue_url = "ftp://host/1/q";
  cr_assert_eq(hl_sqs_new(&b, &q), -EINVAL);
  b = o;
  b.endpoint = "http://127.0.0.1:9324";
  cr_assert_eq(hl_sqs_new(&b, &q), 0, "an endpoint other than the queue URL's host");
  hl_sqs_free(q);
}
