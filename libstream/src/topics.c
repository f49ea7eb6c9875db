#include "hl/topics.h"

#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hl/error.h"

struct hl_topics {
  size_t n;
  hl_topic *topics;
  json_t *root; /* owns every string the topics point to */
};

/* The members a topic may have; anything else is refused, as in the schema. */
static const char *const topic_members[] = {
    "name", "description", "partitions", "replication_factor", "min_insync_replicas",
    "retention_ms", "retention_bytes", "cleanup_policy", "key", "value", "headers",
    "producers", "consumers", NULL};

static int fail(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t errlen, const char *fmt, ...) {
  if (err && errlen) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
  }
  return HL_EPARSE;
}

bool hl_topics_name_valid(const char *name) {
  if (!name)
    return false;
  size_t n = strlen(name);
  if (n == 0 || n > 249 || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
    return false;
  for (size_t i = 0; i < n; i++) {
    char c = name[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-';
    if (!ok)
      return false;
  }
  return true;
}

static bool word_valid(const char *s) {
  size_t n = strlen(s);
  if (n == 0 || n > 64)
    return false;
  for (size_t i = 0; i < n; i++)
    if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
      return false;
  return true;
}

/* A required string member of 1..1024 bytes. */
static int get_text(json_t *obj, const char *topic, const char *member, const char **out,
                    char *err, size_t errlen) {
  json_t *v = json_object_get(obj, member);
  if (!v)
    return fail(err, errlen, "topic %s: missing member \"%s\"", topic, member);
  if (!json_is_string(v))
    return fail(err, errlen, "topic %s: \"%s\" is not a string", topic, member);
  size_t len = json_string_length(v);
  if (len == 0 || len > 1024)
    return fail(err, errlen, "topic %s: \"%s\" must be 1 to 1024 bytes long", topic, member);
  *out = json_string_value(v);
  return 0;
}

/* A required integer member within [min, max]; zero refused when nonzero is set. */
static int get_int(json_t *obj, const char *topic, const char *member, long long min,
                   long long max, bool nonzero, long long *out, char *err, size_t errlen) {
  json_t *v = json_object_get(obj, member);
  if (!v)
    return fail(err, errlen, "topic %s: missing member \"%s\"", topic, member);
  if (!json_is_integer(v))
    return fail(err, errlen, "topic %s: \"%s\" is not an integer", topic, member);
  long long x = json_integer_value(v);
  if (x < min || x > max || (nonzero && x == 0))
    return fail(err, errlen, "topic %s: \"%s\" is %lld, outside %lld..%lld%s", topic, member, x,
                min, max, nonzero ? " (and not 0)" : "");
  *out = x;
  return 0;
}

/* An optional array of distinct lowercase words (headers, producers, consumers). */
static int check_words(json_t *obj, const char *topic, const char *member, char *err,
                       size_t errlen) {
  json_t *arr = json_object_get(obj, member);
  if (!arr)
    return 0;
  if (!json_is_array(arr) || json_array_size(arr) > 64)
    return fail(err, errlen, "topic %s: \"%s\" must be an array of at most 64 names", topic,
                member);
  for (size_t i = 0; i < json_array_size(arr); i++) {
    json_t *w = json_array_get(arr, i);
    if (!json_is_string(w) || !word_valid(json_string_value(w)))
      return fail(err, errlen, "topic %s: \"%s\"[%zu] is not a name of [a-z0-9-]{1,64}", topic,
                  member, i);
    for (size_t j = 0; j < i; j++)
      if (json_equal(w, json_array_get(arr, j)))
        return fail(err, errlen, "topic %s: \"%s\" lists \"%s\" twice", topic, member,
                    json_string_value(w));
  }
  return 0;
}

static int parse_topic(json_t *obj, size_t idx, hl_topic *t, char *err, size_t errlen) {
  char where[32];
  snprintf(where, sizeof where, "#%zu", idx);
  if (!json_is_object(obj))
    return fail(err, errlen, "topic %s: not an object", where);
  json_t *name = json_object_get(obj, "name");
  if (!json_is_string(name))
    return fail(err, errlen, "topic %s: \"name\" is missing or not a string", where);
  const char *n = json_string_value(name);
  if (!hl_topics_name_valid(n))
    return fail(err, errlen, "topic %s: name \"%.64s\" is not a valid Kafka topic name", where, n);

  const char *key;
  json_t *val;
  json_object_foreach(obj, key, val) {
    bool known = false;
    for (size_t i = 0; topic_members[i]; i++)
      if (strcmp(topic_members[i], key) == 0)
        known = true;
    if (!known)
      return fail(err, errlen, "topic %s: unknown member \"%.64s\"", n, key);
  }

  hl_topic tmp = {.name = n};
  long long parts, rf, isr, rms, rbytes;
  int rc;
  if ((rc = get_text(obj, n, "description", &tmp.description, err, errlen)) ||
      (rc = get_text(obj, n, "key", &tmp.key, err, errlen)) ||
      (rc = get_text(obj, n, "value", &tmp.value, err, errlen)) ||
      (rc = get_text(obj, n, "cleanup_policy", &tmp.cleanup_policy, err, errlen)) ||
      (rc = get_int(obj, n, "partitions", 1, HL_TOPICS_MAX_PARTITIONS, false, &parts, err,
                    errlen)) ||
      (rc = get_int(obj, n, "replication_factor", 1, 16, false, &rf, err, errlen)) ||
      (rc = get_int(obj, n, "min_insync_replicas", 1, 16, false, &isr, err, errlen)) ||
      (rc = get_int(obj, n, "retention_ms", -1, INT64_MAX, true, &rms, err, errlen)) ||
      (rc = get_int(obj, n, "retention_bytes", -1, INT64_MAX, true, &rbytes, err, errlen)) ||
      (rc = check_words(obj, n, "headers", err, errlen)) ||
      (rc = check_words(obj, n, "producers", err, errlen)) ||
      (rc = check_words(obj, n, "consumers", err, errlen)))
    return rc;
  if (strcmp(tmp.cleanup_policy, "delete") != 0 && strcmp(tmp.cleanup_policy, "compact") != 0 &&
      strcmp(tmp.cleanup_policy, "compact,delete") != 0)
    return fail(err, errlen, "topic %s: cleanup_policy \"%.64s\" is not delete, compact or "
                "compact,delete", n, tmp.cleanup_policy);
  if (isr > rf)
    return fail(err, errlen, "topic %s: min_insync_replicas %lld exceeds replication_factor %lld",
                n, isr, rf);
  tmp.partitions = (int)parts;
  tmp.replication_factor = (int)rf;
  tmp.min_insync_replicas = (int)isr;
  tmp.retention_ms = rms;
  tmp.retention_bytes = rbytes;
  *t = tmp;
  return 0;
}

int hl_topics_parse(const char *json, size_t len, hl_topics **out, char *err, size_t errlen) {
  if (!json || !out)
    return -EINVAL;
  if (len > HL_TOPICS_MAX_FILE) {
    if (err && errlen)
      snprintf(err, errlen, "topics file is %zu bytes, more than the limit of %d", len,
               HL_TOPICS_MAX_FILE);
    return HL_ELIMIT;
  }
  int rc = HL_EPARSE;
  hl_topics *t = NULL;
  json_error_t jerr;
  json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
  if (!root) {
    rc = fail(err, errlen, "topics file: line %d column %d: %s", jerr.line, jerr.column,
              jerr.text);
    goto cleanup;
  }
  if (!json_is_object(root)) {
    rc = fail(err, errlen, "topics file: the top level is not an object");
    goto cleanup;
  }
  const char *key;
  json_t *val;
  json_object_foreach(root, key, val) {
    if (strcmp(key, "$schema") != 0 && strcmp(key, "version") != 0 && strcmp(key, "topics") != 0) {
      rc = fail(err, errlen, "topics file: unknown member \"%.64s\"", key);
      goto cleanup;
    }
  }
  json_t *version = json_object_get(root, "version");
  if (!json_is_integer(version) || json_integer_value(version) != 1) {
    rc = fail(err, errlen, "topics file: \"version\" must be 1");
    goto cleanup;
  }
  json_t *arr = json_object_get(root, "topics");
  if (!json_is_array(arr) || json_array_size(arr) == 0) {
    rc = fail(err, errlen, "topics file: \"topics\" must be a non-empty array");
    goto cleanup;
  }
  size_t n = json_array_size(arr);
  if (n > HL_TOPICS_MAX_COUNT) {
    rc = fail(err, errlen, "topics file: %zu topics, more than the limit of %d", n,
              HL_TOPICS_MAX_COUNT);
    goto cleanup;
  }
  t = calloc(1, sizeof *t);
  if (!t || !(t->topics = calloc(n, sizeof *t->topics))) {
    rc = -ENOMEM;
    goto cleanup;
  }
  for (size_t i = 0; i < n; i++) {
    if ((rc = parse_topic(json_array_get(arr, i), i, &t->topics[i], err, errlen)) != 0)
      goto cleanup;
    for (size_t j = 0; j < i; j++) {
      if (strcmp(t->topics[j].name, t->topics[i].name) == 0) {
        rc = fail(err, errlen, "topic %s: defined twice", t->topics[i].name);
        goto cleanup;
      }
    }
    t->n = i + 1;
  }
  t->root = root;
  root = NULL;
  *out = t;
  t = NULL;
  rc = 0;
cleanup:
  hl_topics_free(t);
  json_decref(root);
  return rc;
}

int hl_topics_load(const char *path, hl_topics **out, char *err, size_t errlen) {
  if (!path || !out)
    return -EINVAL;
  int rc = 0;
  char *data = NULL;
  size_t len = 0;
  FILE *f = fopen(path, "rb");
  if (!f) {
    rc = -errno;
    if (err && errlen)
      snprintf(err, errlen, "%s: %s", path, strerror(-rc));
    goto cleanup;
  }
  /* Read at most one byte past the limit, so an oversized file is detected. */
  data = malloc(HL_TOPICS_MAX_FILE + 1);
  if (!data) {
    rc = -ENOMEM;
    goto cleanup;
  }
  len = fread(data, 1, HL_TOPICS_MAX_FILE + 1, f);
  if (ferror(f)) {
    rc = -EIO;
    if (err && errlen)
      snprintf(err, errlen, "%s: read error", path);
    goto cleanup;
  }
  rc = hl_topics_parse(data, len, out, err, errlen);
  if (rc && err && errlen) {
    /* Prefix the message with the path. */
    char msg[512];
    snprintf(msg, sizeof msg, "%s", err);
    snprintf(err, errlen, "%s: %s", path, msg);
  }
cleanup:
  free(data);
  if (f)
    fclose(f);
  return rc;
}

hl_topics *hl_topics_free(hl_topics *t) {
  if (!t)
    return NULL;
  free(t->topics);
  json_decref(t->root);
  free(t);
  return NULL;
}

size_t hl_topics_count(const hl_topics *t) { return t ? t->n : 0; }

const hl_topic *hl_topics_at(const hl_topics *t, size_t i) {
  return t && i < t->n ? &t->topics[i] : NULL;
}

const hl_topic *hl_topics_find(const hl_topics *t, const char *name) {
  if (!t || !name)
    return NULL;
  for (size_t i = 0; i < t->n; i++)
    if (strcmp(t->topics[i].name, name) == 0)
      return &t->topics[i];
  return NULL;
}
