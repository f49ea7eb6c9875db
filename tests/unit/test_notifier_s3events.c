#include <string.h>

#include "hl/error.h"
#include "hl_test.h"
#include "s3events.h"

HL_TEST_SUITE(notifier_s3events);

/* The S3 notification of the AWS documentation, with an encoded key. */
static const char s3_put[] =
    "{\"Records\":[{\"eventVersion\":\"2.1\",\"eventSource\":\"aws:s3\",\"awsRegion\":\"us-west-2\","
    "\"eventTime\":\"1970-01-01T00:00:00.000Z\",\"eventName\":\"ObjectCreated:Put\","
    "\"userIdentity\":{\"principalId\":\"AIDAJDPLRKLG7UEXAMPLE\"},"
    "\"requestParameters\":{\"sourceIPAddress\":\"127.0.0.1\"},"
    "\"responseElements\":{\"x-amz-request-id\":\"C3D13FE58DE4C810\","
    "\"x-amz-id-2\":\"FMyUVURIY8/IgAtTv8xRjskZQpcIZ9KG4V5Wp6S7S/JRWeUWerMUE5JgHvANOjpD\"},"
    "\"s3\":{\"s3SchemaVersion\":\"1.0\",\"configurationId\":\"testConfigRule\","
    "\"bucket\":{\"name\":\"amzn-s3-demo-bucket\",\"ownerIdentity\":{\"principalId\":\"A3NL1KOZZKExample\"},"
    "\"arn\":\"arn:aws:s3:::amzn-s3-demo-bucket\"},"
    "\"object\":{\"key\":\"org%3Dacme/job%3Dj1/my+file%281%29.ndjson\",\"size\":1024,"
    "\"eTag\":\"d41d8cd98f00b204e9800998ecf8427e\",\"versionId\":\"096fKKXTRTtl3on89fVO.nfljtsv6qko\","
    "\"sequencer\":\"0055AED6DCD90281E5\"}}},"
    "{\"eventName\":\"ObjectRemoved:Delete\",\"s3\":{\"bucket\":{\"name\":\"b\"},\"object\":{\"key\":\"x\"}}}]}";

Test(notifier_s3events, s3_notification) {
  hl_s3events ev;
  char err[256];
  cr_assert_eq(hl_s3events_parse(s3_put, strlen(s3_put), &ev, err, sizeof err), 0, "%s", err);
  cr_assert_eq(ev.count, 1);
  cr_assert_eq(ev.ignored, 1);
  hl_notifier_object *o = &ev.objects[0];
  cr_assert_str_eq(o->bucket, "amzn-s3-demo-bucket");
  cr_assert_str_eq(o->key, "org=acme/job=j1/my file(1).ndjson");
  cr_assert_str_eq(o->uri, "s3://amzn-s3-demo-bucket/org=acme/job=j1/my file(1).ndjson");
  cr_assert_eq(o->size, 1024);
  cr_assert_str_eq(o->etag, "d41d8cd98f00b204e9800998ecf8427e");
  cr_assert_eq(o->mtime_ms, 0);
  cr_assert_str_eq(o->source, "s3-events");
  hl_s3events_clear(&ev);
}

Test(notifier_s3events, minio_webhook) {
  const char *body =
      "{\"EventName\":\"s3:ObjectCreated:Put\",\"Key\":\"landing/a%20b.ndjson\",\"Records\":[{"
      "\"eventVersion\":\"2.0\",\"eventSource\":\"minio:s3\",\"eventTime\":\"2026-11-25T16:00:01.5Z\","
      "\"eventName\":\"s3:ObjectCreated:Put\",\"s3\":{\"bucket\":{\"name\":\"landing\"},"
      "\"object\":{\"key\":\"a%20b.ndjson\",\"size\":5,\"eTag\":\"\\\"abc\\\"\"}}}]}";
  hl_s3events ev;
  char err[256];
  cr_assert_eq(hl_s3events_parse(body, strlen(body), &ev, err, sizeof err), 0, "%s", err);
  cr_assert_eq(ev.count, 1);
  cr_assert_str_eq(ev.objects[0].key, "a b.ndjson");
  cr_assert_str_eq(ev.objects[0].etag, "abc", "quotes are removed");
  cr_assert_eq(ev.objects[0].mtime_ms, 1795622401500LL);
  hl_s3events_clear(&ev);
}

Test(notifier_s3events, sns_envelope) {
  const char *body =
      "{\"Type\":\"Notification\",\"MessageId\":\"22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324\","
      "\"TopicArn\":\"arn:aws:sns:us-west-2:123456789012:MyTopic\",\"Subject\":\"Amazon S3 Notification\","
      "\"Message\":\"{\\\"Records\\\":[{\\\"eventName\\\":\\\"ObjectCreated:CompleteMultipartUpload\\\","
      "\\\"eventTime\\\":\\\"2026-01-02T03:04:05.000Z\\\",\\\"s3\\\":{\\\"bucket\\\":{\\\"name\\\":\\\"lake\\\"},"
      "\\\"object\\\":{\\\"key\\\":\\\"org%3Db/x.ndjson.gz\\\",\\\"size\\\":77,\\\"eTag\\\":\\\"e-2\\\"}}}]}\","
      "\"Timestamp\":\"2026-01-02T03:04:06.000Z\",\"SignatureVersion\":\"1\"}";
  hl_s3events ev;
  char err[256];
  cr_assert_eq(hl_s3events_parse(body, strlen(body), &ev, err, sizeof err), 0, "%s", err);
  cr_assert_eq(ev.count, 1);
  cr_assert_str_eq(ev.objects[0].bucket, "lake");
  cr_assert_str_eq(ev.objects[0].key, "org=b/x.ndjson.gz");
  cr_assert_eq(ev.objects[0].size, 77);
  hl_s3events_clear(&ev);
}

Test(notifier_s3events, eventbridge) {
  const char *body =
      "{\"version\":\"0\",\"id\":\"17793124-05d4-b198-2fde-7ededc63b103\",\"detail-type\":\"Object Created\","
      "\"source\":\"aws.s3\",\"account\":\"111122223333\",\"time\":\"2021-11-12T00:00:00Z\","
      "\"region\":\"ca-central-1\",\"resources\":[\"arn:aws:s3:::amzn-s3-demo-bucket1\"],"
      "\"detail\":{\"version\":\"0\",\"bucket\":{\"name\":\"amzn-s3-demo-bucket1\"},"
      "\"object\":{\"key\":\"org=c/a+b.ndjson\",\"size\":5,\"etag\":\"b1946ac92492d2347c6235b4d2611184\","
      "\"version-id\":\"IYV3p45BT0ac8hjHg1houSdS1a.Mro8e\",\"sequencer\":\"617f08299329d189\"},"
      "\"request-id\":\"N4N7GDK58NMKJ12R\",\"requester\":\"123456789012\","
      "\"source-ip-address\":\"1.2.3.4\",\"reason\":\"PutObject\"}}";
  hl_s3events ev;
  char err[256];
  cr_assert_eq(hl_s3events_parse(body, strlen(body), &ev, err, sizeof err), 0, "%s", err);
  cr_assert_eq(ev.count, 1);
  cr_assert_str_eq(ev.objects[0].key, "org=c/a+b.ndjson", "EventBridge keys are not encoded");
  cr_assert_eq(ev.objects[0].mtime_ms, 1636675200000LL);
  hl_s3events_clear(&ev);
  const char *deleted = "{\"detail-type\":\"Object Deleted\",\"source\":\"aws.s3\",\"detail\":{}}";
  cr_assert_eq(hl_s3events_parse(deleted, strlen(deleted), &ev, err, sizeof err), 0);
  cr_assert_eq(ev.count, 0);
  cr_assert_eq(ev.ignored, 1);
  hl_s3events_clear(&ev);
}

Test(notifier_s3events, test_event_and_errors) {
  hl_s3events ev;
  char err[256];
  const char *test_event = "{\"Service\":\"Amazon S3\",\"Event\":\"s3:TestEvent\","
                           "\"Time\":\"2014-10-13T15:57:02.089Z\",\"Bucket\":\"bucketname\"}";
  cr_assert_eq(hl_s3events_parse(test_event, strlen(test_event), &ev, err, sizeof err), 0);
  cr_assert_eq(ev.count, 0);
  hl_s3events_clear(&ev);
  const char *bad[] = {"not json", "[1,2]", "{\"Records\":{}}", "{\"foo\":1}",
                       "{\"Type\":\"SubscriptionConfirmation\",\"SubscribeURL\":\"https://x\"}",
                       "{\"Type\":\"Notification\",\"Message\":\"{oops\"}",
                       "{\"detail-type\":\"Object Created\",\"source\":\"aws.ec2\",\"detail\":{}}"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    cr_assert_eq(hl_s3events_parse(bad[i], strlen(bad[i]), &ev, err, sizeof err), HL_EPARSE, "%s", bad[i]);
  /* A record with a broken key escape or no etag is skipped and counted. */
  const char *partial =
      "{\"Records\":[{\"eventName\":\"ObjectCreated:Put\",\"s3\":{\"bucket\":{\"name\":\"b\"},"
      "\"object\":{\"key\":\"a%zz\",\"size\":1,\"eTag\":\"e\"}}},"
      "{\"eventName\":\"ObjectCreated:Put\",\"s3\":{\"bucket\":{\"name\":\"b\"},\"object\":{\"key\":\"k\"}}},"
      "{\"eventName\":\"ObjectCreated:Copy\",\"s3\":{\"bucket\":{\"name\":\"b\"},"
      "\"object\":{\"key\":\"ok\",\"eTag\":\"e\"}}},"
      /* Found by fuzz_s3events: an ETag with a stray quote. */
      "{\"eventName\":\"ObjectCreated:Put\",\"s3\":{\"bucket\":{\"name\":\"b\"},"
      "\"object\":{\"key\":\"q\",\"eTag\":\"\\\"q\\\"x\"}}},"
      "{\"eventName\":\"ObjectCreated:Put\",\"s3\":{\"bucket\":{\"name\":\"b\"},"
      "\"object\":{\"key\":\"q\",\"eTag\":\"\\\"\\\"\"}}}]}";
  cr_assert_eq(hl_s3events_parse(partial, strlen(partial), &ev, err, sizeof err), 0);
  cr_assert_eq(ev.count, 1);
  cr_assert_eq(ev.ignored, 4);
  cr_assert_eq(ev.objects[0].size, -1, "a missing size is unknown");
  hl_s3events_clear(&ev);
}

Test(notifier_s3events, time_parsing) {
  int64_t t;
  cr_assert_eq(hl_s3events_time_ms("1970-01-01T00:00:01.25Z", &t), 0);
  cr_assert_eq(t, 1250);
  cr_assert_eq(hl_s3events_time_ms("1970-01-01T00:00:01+00:00", &t), 0);
  cr_assert_eq(t, 1000);
  cr_assert_eq(hl_s3events_time_ms("yesterday", &t), HL_EPARSE);
  cr_assert_eq(hl_s3events_time_ms("1970-01-01T00:00:01.Z", &t), HL_EPARSE);
}
