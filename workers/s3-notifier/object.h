/*
 * The one interface between hl-s3-notifier's sources and its core: a source
 * reports each candidate object it finds through an hl_notifier_found_fn.
 */
#ifndef HL_NOTIFIER_OBJECT_H
#define HL_NOTIFIER_OBJECT_H

#include <stdint.h>

/* A candidate object. Every string is borrowed for the duration of the call. */
typedef struct hl_notifier_object {
  const char *source;     /* "dir", "s3-poll" or "s3-events" */
  const char *bucket;     /* bucket name, or the name given to the landing directory */
  const char *key;        /* object key (decoded), relative path for a directory */
  const char *uri;        /* s3://bucket/key or file:///absolute/path (percent-encoded) */
  int64_t size;           /* bytes, -1 when unknown */
  const char *etag;       /* version fingerprint; never NULL or empty */
  int64_t mtime_ms;       /* last modification (or event) time, Unix ms; 0 when unknown */
} hl_notifier_object;

/*
 * Called by a source for each candidate. Returns 0 when the core took it (or
 * decided to skip it for good), or -EAGAIN when its backlog is full: the
 * source keeps the object and offers it again later.
 */
typedef int hl_notifier_found_fn(void *ud, const hl_notifier_object *obj);

#endif
