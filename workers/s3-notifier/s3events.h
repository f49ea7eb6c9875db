/*
 * The `s3-events` source: S3 event notifications in the AWS JSON format.
 *
 * hl_s3events_parse() accepts one HTTP body in any of these shapes:
 *   - an S3 notification: {"Records":[{"eventName":"ObjectCreated:Put",
 *     "eventTime":..., "s3":{"bucket":{"name":...},"object":{"key":...,
 *     "size":...,"eTag":...}}}]} (also what MinIO webhooks send, whose
 *     eventName reads "s3:ObjectCreated:Put"); object keys are URL-encoded
 *     with '+' for a space, and are decoded;
 *   - an SNS envelope {"Type":"Notification","Message":"<the notification as a JSON string>"};
 *   - an EventBridge event {"source":"aws.s3","detail-type":"Object Created",
 *     "time":..., "detail":{"bucket":{"name":...},"object":{"key":...,"size":...,"etag":...}}}
 *     whose keys are not URL-encoded;
 *   - the s3:TestEvent sent when a notification is configured (no objects).
 * Records other than ObjectCreated:* are skipped and counted.
 */
#ifndef HL_NOTIFIER_S3EVENTS_H
#define HL_NOTIFIER_S3EVENTS_H

#include <stddef.h>
#include <stdint.h>

#include "object.h"

/* Largest body accepted and records per body. */
#define HL_S3EVENTS_MAX_BODY (1024 * 1024)
#define HL_S3EVENTS_MAX_RECORDS 1000

/* A parsed body: the created objects, and how many records were something else. */
typedef struct hl_s3events {
  hl_notifier_object *objects; /* source "s3-events"; strings owned by the set */
  size_t count;
  size_t ignored;              /* records that are not ObjectCreated:* */
  char **strings;              /* owned copies behind objects */
  size_t nstrings;
} hl_s3events;

/*
 * Parses body. On success fills out (free with hl_s3events_clear). On
 * failure returns HL_EPARSE (with a reason in err), HL_ELIMIT or -ENOMEM,
 * and out is untouched.
 */
int hl_s3events_parse(const char *body, size_t len, hl_s3events *out, char *err, size_t errlen);
void hl_s3events_clear(hl_s3events *ev);

/*
 * Converts an RFC 3339 time ("2026-11-25T16:00:00.000Z", fraction optional)
 * to Unix ms. 0 or HL_EPARSE.
 */
int hl_s3events_time_ms(const char *s, int64_t *out);

#endif
