/*
 * The notifier's state file: one SQLite database in WAL mode that records
 * every object version (bucket, key, etag) the notifier has decided about.
 *
 * A row is `pending` from just before its message is produced until the
 * broker acknowledges it, then `announced` with its offset; `rejected` rows
 * are versions that will never be announced (for example an invalid org).
 * Pending rows carry what recovery needs: the partition the message was
 * produced to, a lower bound of its offset (the partition's high watermark
 * before producing), the event id carried in the hl-event-id header, and
 * the exact message (key, value, org, job, first production time) so a
 * re-produced message is identical. Writes are synchronous=FULL: a committed
 * transaction survives kill -9 and power loss. See docs/notifier.md.
 */
#ifndef HL_NOTIFIER_STATE_H
#define HL_NOTIFIER_STATE_H

#include <stdint.h>

typedef enum hl_nstate_status {
  HL_NSTATE_PENDING = 0,
  HL_NSTATE_ANNOUNCED = 1,
  HL_NSTATE_REJECTED = 2,
} hl_nstate_status;

/* One row; strings are borrowed (for inserts) or valid during a callback. */
typedef struct hl_nstate_row {
  int64_t id;
  const char *bucket;
  const char *key;
  const char *etag;
  const char *event_id;
  const char *org;
  const char *job;
  const char *uri;        /* the object uri (the hl-source header) */
  const char *msg_key;    /* the Kafka message key ("bucket/key") */
  const char *value;      /* the landing event JSON */
  int32_t partition;
  int64_t watermark;      /* offset lower bound */
  int64_t created_ms;     /* first production (the hl-ingested-at header) */
} hl_nstate_row;

typedef struct hl_nstate hl_nstate;

/* Opens (creating if needed) the state file at path. 0, HL_EIO or -ENOMEM. */
int hl_nstate_open(const char *path, hl_nstate **out);
hl_nstate *hl_nstate_close(hl_nstate *st);

/* Transactions group many inserts or updates into one fsync. 0 or HL_EIO. */
int hl_nstate_begin(hl_nstate *st);
int hl_nstate_commit(hl_nstate *st);
int hl_nstate_rollback(hl_nstate *st);

/* Status of (bucket, key, etag): 0 with *status set, HL_ENOTFOUND, or HL_EIO. */
int hl_nstate_lookup(hl_nstate *st, const char *bucket, const char *key, const char *etag,
                     hl_nstate_status *status);

/*
 * Inserts a pending row unless (bucket, key, etag) is already recorded.
 * Returns 0 with row->id set, 1 when the version was already recorded
 * (nothing inserted), or HL_EIO.
 */
int hl_nstate_insert_pending(hl_nstate *st, hl_nstate_row *row);

/* Records a version that will never be announced, with a reason. 0, 1 (known) or HL_EIO. */
int hl_nstate_insert_rejected(hl_nstate *st, const char *bucket, const char *key, const char *etag,
                              const char *reason);

/* Marks a pending row announced at offset. 0, HL_ENOTFOUND (not pending) or HL_EIO. */
int hl_nstate_mark_announced(hl_nstate *st, int64_t id, int64_t offset);

/* Calls fn for each pending row in id order; a non-zero return stops and is returned. */
typedef int hl_nstate_row_fn(void *ud, const hl_nstate_row *row);
int hl_nstate_each_pending(hl_nstate *st, hl_nstate_row_fn *fn, void *ud);

/* Number of rows with status; negative on error. */
int64_t hl_nstate_count(hl_nstate *st, hl_nstate_status status);

#endif
