/*
 * libFuzzer target for hl-s3-notifier's S3 event reader (AWS notifications,
 * SNS envelopes, EventBridge events). Any input must parse or fail cleanly;
 * a parsed body must hold only what the reader promises: at most
 * HL_S3EVENTS_MAX_RECORDS objects, each with a bucket, a decoded key of at
 * most 1,024 bytes without NUL, an unquoted ETag and an s3:// uri.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "s3events.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  hl_s3events ev;
  char err[256];
  memset(&ev, 0xa5, sizeof ev);
  if (hl_s3events_parse((const char *)data, size, &ev, err, sizeof err) != 0)
    return 0;
  if (ev.count > HL_S3EVENTS_MAX_RECORDS)
    abort();
  for (size_t i = 0; i < ev.count; i++) {
    const hl_notifier_object *o = &ev.objects[i];
    size_t kl = strlen(o->key), el = strlen(o->etag);
    if (!*o->bucket || kl == 0 || kl > 1024 || el == 0 || o->etag[0] == '"' ||
        strncmp(o->uri, "s3://", 5) != 0 || strcmp(o->source, "s3-events") != 0)
      abort();
  }
  hl_s3events_clear(&ev);
  return 0;
}
