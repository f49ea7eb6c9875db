/*
 * hl_devbroker: the embedded Kafka for one machine.
 *
 * Wraps librdkafka's mock cluster (rdkafka_mock.h): real Kafka protocol
 * listeners on 127.0.0.1 (random ports), brokers that can be taken down and
 * up, request errors and latency that can be injected. It creates every topic
 * of the topic catalogue (schemas/topics/topics.json), watches every topic of
 * the cluster (watermarks, optionally payload bytes) and exports what it
 * sees as Prometheus metrics. The HTTP control API is a transport-free
 * function (hl_devbroker_control) so that tests can drive it directly and the
 * binary can mount it on its admin server.
 *
 * Every function is thread-safe. See docs/devbroker.md.
 */
#ifndef HL_DEVBROKER_H
#define HL_DEVBROKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hl/buf.h"
#include "hl/metrics.h"
#include "hl/topics.h"

/* Most brokers a cluster may have, and most topics it watches. */
#define HL_DEVBROKER_MAX_BROKERS 16
#define HL_DEVBROKER_MAX_TOPICS 1024
/* Largest body the control API accepts. */
#define HL_DEVBROKER_MAX_CONTROL_BODY (64 * 1024)

typedef struct hl_devbroker hl_devbroker;

typedef struct hl_devbroker_opts {
  int brokers;                 /* 1..HL_DEVBROKER_MAX_BROKERS */
  const hl_topics *topics;     /* topics to create; may be NULL; read during new only */
  const char *extra_topics;    /* "name:partitions,..." also created; may be NULL or "" */
  int metrics_interval_ms;     /* how often watermarks are read; 0 means 1000 */
  bool byte_metrics;           /* run the internal reader that counts payload bytes */
} hl_devbroker_opts;

/*
 * Starts a mock cluster with opts->brokers brokers, creates the topics, and
 * starts the watcher (and, with byte_metrics, the reader) thread. Metrics are
 * registered in reg (which may be NULL: no metrics) and reg must outlive the
 * broker. 0 on success; HL_ECONFIG (bad extra_topics or options, message in
 * err), HL_EKAFKA (the cluster or a topic could not be created) or -ENOMEM.
 * *out is set only on success.
 */
int hl_devbroker_new(const hl_devbroker_opts *opts, hl_metrics *reg, hl_devbroker **out,
                     char *err, size_t errlen);

/* Stops the threads and the cluster; every client loses its connections. NULL-safe. */
hl_devbroker *hl_devbroker_free(hl_devbroker *db);

/* "127.0.0.1:port,127.0.0.1:port,..." for bootstrap.servers; lives as long as db. */
const char *hl_devbroker_bootstraps(const hl_devbroker *db);
int hl_devbroker_broker_count(const hl_devbroker *db);

/* Takes broker id (1..count) down or brings it up; id 0 means every broker. 0 or -EINVAL. */
int hl_devbroker_set_up(hl_devbroker *db, int id, bool up);
/* Sets the round-trip time added to every response of broker id (0 = all). 0 or -EINVAL. */
int hl_devbroker_set_rtt(hl_devbroker *db, int id, int rtt_ms);
/*
 * Makes the next cnt requests of api_key fail with errs[0..cnt-1], in order.
 * broker_id 0: on whichever broker receives them (cluster-wide); else only on
 * that broker, each answer delayed by rtt_ms. 0 or -EINVAL.
 */
int hl_devbroker_push_errors(hl_devbroker *db, int broker_id, int api_key, size_t cnt,
                             const int *errs, int rtt_ms);
/* Brings every broker up, removes latency and clears the cluster-wide injected errors. */
int hl_devbroker_reset(hl_devbroker *db);
/* True when at least one broker is up. */
bool hl_devbroker_ready(hl_devbroker *db);

/* Reads the watermarks of every topic now (the watcher does it periodically). 0 or HL_EKAFKA. */
int hl_devbroker_refresh(hl_devbroker *db);

/* Counts of one topic as last seen; HL_ENOTFOUND for an unknown topic. */
typedef struct hl_devbroker_topic_stats {
  int partitions;
  int64_t messages;  /* sum of high watermarks: messages ever appended */
  int64_t dropped;   /* sum of low watermarks: messages the mock's size cap dropped */
  int64_t bytes;     /* key + value bytes read back by the reader (-1 without byte_metrics) */
} hl_devbroker_topic_stats;
int hl_devbroker_topic_stats_get(hl_devbroker *db, const char *topic, hl_devbroker_topic_stats *out);

/* The whole state as a JSON object (brokers, topics), appended to out. */
int hl_devbroker_state_json(hl_devbroker *db, hl_buf *out);

/*
 * The control API: handles one request (method, path without query, body of
 * len bytes, which may be NULL when len is 0), appends a JSON answer to out
 * and returns the HTTP status (200, 400, 404, 405, 413 or 500). See
 * docs/devbroker.md for the routes.
 */
int hl_devbroker_control(hl_devbroker *db, const char *method, const char *path, const char *body,
                         size_t len, hl_buf *out);

/* Kafka API key of a name ("Produce", "produce" or "0"); -1 when unknown. */
int hl_devbroker_api_key(const char *name);
/* Kafka error code of a name ("NOT_LEADER_FOR_PARTITION", or a number); 0 when unknown. */
int hl_devbroker_error_code(const char *name);

#endif
