/*
 * The landing-object event: the value of every message on
 * hl.landing.objects, written by hl-s3-notifier and hl-api-gateway and read
 * by hl-parser. Its JSON Schema is schemas/events/landing-object.schema.json.
 *
 *   {"uri":"s3://bucket/org=org-1/x.ndjson","bucket":"bucket","key":"org=org-1/x.ndjson",
 *    "size":1234,"etag":"\"9b2cf5…\"","event_time":"2026-11-25T16:00:00.000Z",
 *    "org":"org-1","job":"job-…"}
 *
 * The message key is "bucket/key". uri schemes: s3://bucket/key for S3, and
 * file:///absolute/path for a landing directory (bucket is then the name
 * given to the directory, HL_NOTIFIER_BUCKET).
 */
#ifndef HL_LANDING_H
#define HL_LANDING_H

#include <stdint.h>

#include "hl/buf.h"

typedef struct hl_landing_event {
  char *uri;
  char *bucket;
  char *key;
  int64_t size;       /* bytes, -1 when unknown */
  char *etag;         /* may be NULL */
  char *event_time;   /* RFC 3339 UTC */
  char *org;
  char *job;
} hl_landing_event;

/* Parses an event. On failure returns HL_EPARSE and writes why into err. */
int hl_landing_event_parse(const char *json, size_t len, hl_landing_event *ev, char *err,
                           size_t errlen);
/* Appends the event's JSON to out. */
int hl_landing_event_write(const hl_landing_event *ev, hl_buf *out);
/* Frees the strings of an event filled by hl_landing_event_parse. */
void hl_landing_event_clear(hl_landing_event *ev);

/*
 * The tenant of an object key: the value of the first path segment of the
 * form "org=<id>" (any depth), copied into org (size orglen). Returns 0, or
 * HL_ENOTFOUND when the key has none, or HL_EPARSE when the id is not
 * [A-Za-z0-9._-]{1,64}.
 */
int hl_landing_org_from_key(const char *key, char *org, size_t orglen);

#endif
