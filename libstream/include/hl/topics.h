/*
 * hl_topics: the topic catalogue of schemas/topics/topics.json, loaded and
 * checked.
 *
 * schemas/topics/topics.json is the one source of truth for topic names,
 * partition counts, retention and cleanup policy; hl-devbroker creates its
 * topics from it and the Kubernetes topic manifests follow it. This module
 * parses the file with jansson and enforces the same rules as
 * schemas/topics/topics.schema.json (names, bounds, unknown members refused,
 * no duplicate names), so a binary can trust what it reads.
 *
 * The catalogue is immutable once loaded, so it may be shared between threads
 * without locking.
 */
#ifndef HL_TOPICS_H
#define HL_TOPICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Well-known topic names; tests check that topics.json defines each one. */
#define HL_TOPIC_LANDING_OBJECTS "hl.landing.objects"
#define HL_TOPIC_FHIR_RAW "hl.fhir.raw"
#define HL_TOPIC_FHIR_VALID "hl.fhir.valid"
#define HL_TOPIC_DLQ "hl.dlq"
#define HL_TOPIC_LOAD_COMMITTED "hl.load.committed"
#define HL_TOPIC_JOBS_STATUS "hl.jobs.status"

/* Largest topics file accepted, and the most topics it may hold. */
#define HL_TOPICS_MAX_FILE (1024 * 1024)
#define HL_TOPICS_MAX_COUNT 256
/* Most partitions a topic may declare. */
#define HL_TOPICS_MAX_PARTITIONS 1024

/* One topic. Strings are owned by the catalogue and live as long as it does. */
typedef struct hl_topic {
  const char *name;
  const char *description;
  int partitions;
  int replication_factor;   /* production replicas */
  int min_insync_replicas;  /* production min.insync.replicas */
  int64_t retention_ms;     /* -1: forever */
  int64_t retention_bytes;  /* per partition; -1: no size limit */
  const char *cleanup_policy; /* "delete", "compact" or "compact,delete" */
  const char *key;          /* what the key is, in words */
  const char *value;        /* what the value is, in words */
} hl_topic;

typedef struct hl_topics hl_topics;

/*
 * Loads and checks the topics file at path. On failure returns HL_EPARSE
 * (malformed JSON or a rule broken), HL_ELIMIT (file too large) or -errno
 * (cannot read), writes a message naming the topic and member into err (which
 * may be NULL) and leaves *out untouched.
 */
int hl_topics_load(const char *path, hl_topics **out, char *err, size_t errlen);

/* As hl_topics_load, from len bytes of JSON text in memory. */
int hl_topics_parse(const char *json, size_t len, hl_topics **out, char *err, size_t errlen);

/* Frees the catalogue; accepts NULL; returns NULL. */
hl_topics *hl_topics_free(hl_topics *t);

size_t hl_topics_count(const hl_topics *t);
/* The i-th topic in file order; NULL when i is out of range. */
const hl_topic *hl_topics_at(const hl_topics *t, size_t i);
/* The topic named name, or NULL. */
const hl_topic *hl_topics_find(const hl_topics *t, const char *name);

/* True when name is a valid Kafka topic name ([A-Za-z0-9._-]{1,249}, not "." or ".."). */
bool hl_topics_name_valid(const char *name);

#endif
