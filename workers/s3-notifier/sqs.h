/*
 * The SQS side of the `s3-events` source: S3 event notifications (the AWS
 * JSON format, bare or in an SNS envelope; see s3events.h) received from an
 * SQS queue by long polling.
 *
 * A thread loops: ReceiveMessage (WaitTimeSeconds up to 20,
 * MaxNumberOfMessages up to 10, a visibility timeout), hands the created
 * objects of every message to the core (offer), waits until the core is
 * done with each of them for good (settled: announced and acknowledged,
 * rejected, or filtered out), and only then deletes the messages with
 * DeleteMessageBatch. A message is deleted only when all of its objects
 * settled; the others become visible again when their visibility timeout
 * ends and are received again, and the core's state makes the second
 * delivery a no-op, so nothing is announced twice, a crash included. A body
 * that cannot be parsed is never deleted: it comes back until the queue's
 * redrive policy moves it to its dead-letter queue, and is counted and
 * logged each time.
 *
 * Requests use the SQS JSON protocol (POST / with X-Amz-Target:
 * AmazonSQS.<Action> and Content-Type: application/x-amz-json-1.0), signed
 * with SigV4 for service "sqs" by libstream's signer, with the credentials
 * of an hl_s3 client (static, container or web identity).
 */
#ifndef HL_NOTIFIER_SQS_H
#define HL_NOTIFIER_SQS_H

#include <stddef.h>
#include <stdint.h>

#include "hl/metrics.h"
#include "hl/s3.h"
#include "object.h"

#define HL_SQS_MAX_MESSAGES 10
#define HL_SQS_MAX_WAIT_S 20
/* Largest ReceiveMessage answer read: 10 messages of at most 256 KiB, JSON-escaped. */
#define HL_SQS_MAX_RESPONSE (8 * 1024 * 1024)

typedef struct hl_sqs hl_sqs;

/* Hands over count objects (borrowed for the call): 0, or -EAGAIN (full, try later). */
typedef int hl_sqs_offer_fn(void *ud, const hl_notifier_object *objs, size_t count);
/*
 * 1 when the core is done with obj for good, 0 when not yet, negative on
 * error. Called on the SQS thread.
 */
typedef int hl_sqs_settled_fn(void *ud, const hl_notifier_object *obj);

typedef struct hl_sqs_opts {
  const hl_s3_config *aws;     /* credentials and region (copied) */
  const char *queue_url;       /* required: https://sqs.<region>.amazonaws.com/<account>/<name> */
  const char *endpoint;        /* NULL/"": scheme://host[:port] of queue_url */
  int wait_s;                  /* WaitTimeSeconds, 0..20 */
  int max_messages;            /* MaxNumberOfMessages, 1..10; 0: 10 */
  int visibility_s;            /* VisibilityTimeout, 0..43200; 0: the queue's own */
  int settle_timeout_ms;       /* wait for settlement before leaving messages to come back;
                                  0: 3/4 of the visibility timeout, or 20 s */
  hl_sqs_offer_fn *offer;      /* required */
  hl_sqs_settled_fn *settled;  /* required */
  void *ud;
  hl_metrics *metrics;         /* may be NULL; borrowed */
} hl_sqs_opts;

typedef struct hl_sqs_stats {
  uint64_t receives;           /* ReceiveMessage calls answered */
  uint64_t errors;             /* failed calls (any action) */
  uint64_t messages;           /* messages received (redeliveries included) */
  uint64_t deleted;            /* messages deleted */
  uint64_t unparseable;        /* receptions of a body that is not an S3 notification */
  uint64_t left;               /* receptions left for redelivery (not settled in time) */
  uint64_t objects;            /* created objects handed to the core */
} hl_sqs_stats;

/* Creates the source (no thread yet). 0, -EINVAL (bad settings) or -ENOMEM. */
int hl_sqs_new(const hl_sqs_opts *opts, hl_sqs **out);
/*
 * One round on the calling thread: receive, hand over, wait for settlement,
 * delete. 0 or a negative error (a message in err, which may be NULL).
 */
int hl_sqs_once(hl_sqs *q, char *err, size_t errlen);
/* Starts the thread. 0 or -errno. */
int hl_sqs_start(hl_sqs *q);
/* Stops (a long poll in progress is aborted), joins and frees. NULL-safe. */
hl_sqs *hl_sqs_free(hl_sqs *q);
/* Thread-safe counters. */
void hl_sqs_stats_get(hl_sqs *q, hl_sqs_stats *out);

/* One received message; strings owned by the set. */
typedef struct hl_sqs_message {
  char *id, *receipt, *body;
  long receive_count;          /* ApproximateReceiveCount; 0 when not given */
} hl_sqs_message;

typedef struct hl_sqs_messages {
  hl_sqs_message *v;
  size_t n;
} hl_sqs_messages;

/* Parses a ReceiveMessage answer. 0, HL_EPARSE or -ENOMEM; out is cleared first. */
int hl_sqs_parse_receive(const char *json, size_t len, hl_sqs_messages *out);
void hl_sqs_messages_clear(hl_sqs_messages *m);

#endif
