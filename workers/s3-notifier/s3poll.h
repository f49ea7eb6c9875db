/*
 * The `s3-poll` source: ListObjectsV2 of a bucket (and prefix) every
 * interval, against AWS S3 or any S3-compatible store (libstream's hl_s3).
 *
 * An S3 object is complete as soon as it is listed (PutObject and multipart
 * uploads are atomic), so every listed object is a candidate; the core drops
 * the versions its state file already knows. Listing runs on its own thread
 * (libcurl calls block); objects are handed over in chunks through offer(),
 * which may answer -EAGAIN (full): the chunk is offered again shortly.
 */
#ifndef HL_NOTIFIER_S3POLL_H
#define HL_NOTIFIER_S3POLL_H

#include <stddef.h>
#include <stdint.h>

#include "hl/s3.h"
#include "object.h"

typedef struct hl_s3poll hl_s3poll;

/* Hands over count objects (borrowed for the call); 0 or -EAGAIN. Called on the poll thread. */
typedef int hl_s3poll_offer_fn(void *ud, const hl_notifier_object *objs, size_t count);

typedef struct hl_s3poll_opts {
  const hl_s3_config *s3;     /* copied by hl_s3_new */
  const char *bucket;         /* required */
  const char *prefix;         /* NULL: the whole bucket */
  uint64_t interval_ms;       /* between the end of one listing and the next; 0: 30000 */
  int page_size;              /* ListObjectsV2 max-keys; 0: 1000 */
  size_t chunk;               /* objects per offer; 0: 500 */
  hl_s3poll_offer_fn *offer;  /* required */
  void *ud;
} hl_s3poll_opts;

typedef struct hl_s3poll_stats {
  uint64_t listings, listing_errors, objects;
} hl_s3poll_stats;

/* Creates the poller (no thread yet). 0, -EINVAL or -ENOMEM. */
int hl_s3poll_new(const hl_s3poll_opts *opts, hl_s3poll **out);
/* Lists once, on the calling thread. 0 or the S3 error (details in err, which may be NULL). */
int hl_s3poll_once(hl_s3poll *p, hl_s3_error *err);
/* Starts the polling thread (first listing at once). 0 or -errno. */
int hl_s3poll_start(hl_s3poll *p);
/* Stops and joins the thread (a listing in progress ends at its next page), then frees. NULL-safe. */
hl_s3poll *hl_s3poll_free(hl_s3poll *p);
/* Thread-safe counters. */
void hl_s3poll_stats_get(hl_s3poll *p, hl_s3poll_stats *out);

#endif
