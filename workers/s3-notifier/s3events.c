#define _GNU_SOURCE
#include "s3events.h"

#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "filter.h"
#include "hl/error.h"

#define MAX_KEY 1024
#define MAX_DEPTH_SNS 2

static char *keep(hl_s3events *ev, char *s) {
  if (!s)
    return NULL;
  char **v = realloc(ev->strings, (ev->nstrings + 1) * sizeof *v);
  if (!v) {
    free(s);
    return NULL;
  }
  ev->strings = v;
  ev->strings[ev->nstrings++] = s;
  return s;
}

void hl_s3events_clear(hl_s3events *ev) {
  for (size_t i = 0; i < ev->nstrings; i++)
    free(ev->strings[i]);
  free(ev->strings);
  free(ev->objects);
  memset(ev, 0, sizeof *ev);
}

int hl_s3events_time_ms(const char *s, int64_t *out) {
  struct tm tm = {0};
  int ms = 0;
  const char *p = s ? strptime(s, "%Y-%m-%dT%H:%M:%S", &tm) : NULL;
  if (!p)
    return HL_EPARSE;
  if (*p == '.') {
    int digits = 0;
    for (p++; *p >= '0' && *p <= '9'; p++, digits++)
      if (digits < 3)
        ms = ms * 10 + (*p - '0');
    if (digits == 0)
      return HL_EPARSE;
    for (; digits < 3; digits++)
      ms *= 10;
  }
  if (strcmp(p, "Z") != 0 && strcmp(p, "+00:00") != 0)
    return HL_EPARSE;
  *out = (int64_t)timegm(&tm) * 1000 + ms;
  return 0;
}

/* Copies an ETag without surrounding quotes, so every source names a version the same way. */
static char *etag_copy(const char *e) {
  size_t n = strlen(e);
  if (n >= 2 && e[0] == '"' && e[n - 1] == '"')
    return strndup(e + 1, n - 2);
  return strdup(e);
}

/* Adds one created object; returns 0, 1 (record unusable, counted as ignored) or -ENOMEM. */
static int add(hl_s3events *ev, const char *bucket, const char *key_in, bool encoded, json_t *size,
               const char *etag, const char *time, char *err, size_t errlen) {
  if (!bucket || !*bucket || !key_in || !*key_in || !etag || !*etag || strlen(key_in) > 3 * MAX_KEY)
    return 1;
  if (ev->count == HL_S3EVENTS_MAX_RECORDS)
    return HL_ELIMIT;
  char *key = keep(ev, strdup(key_in));
  if (!key)
    return -ENOMEM;
  if (encoded && hl_notifier_url_decode(key, true) < 0)
    return 1;
  if (strlen(key) > MAX_KEY)
    return 1;
  char *b = keep(ev, strdup(bucket));
  char *e = keep(ev, etag_copy(etag));
  /* An ETag is a quoted or bare token: an empty one or a stray quote is malformed. */
  if (e && (!*e || strchr(e, '"')))
    return 1;
  hl_buf uri;
  hl_buf_init(&uri, 8 + 64 + 2 * MAX_KEY);
  int r = hl_buf_printf(&uri, "s3://%s/%s", bucket, key);
  char *u = r == 0 ? keep(ev, hl_buf_steal(&uri, NULL)) : NULL;
  hl_buf_free(&uri);
  if (!b || !e || !u)
    return -ENOMEM;
  int64_t t = 0;
  if (time)
    hl_s3events_time_ms(time, &t);
  hl_notifier_object *o = realloc(ev->objects, (ev->count + 1) * sizeof *o);
  if (!o)
    return -ENOMEM;
  ev->objects = o;
  ev->objects[ev->count++] = (hl_notifier_object){
      .source = "s3-events", .bucket = b, .key = key, .uri = u,
      .size = json_is_integer(size) && json_integer_value(size) >= 0 ? json_integer_value(size) : -1,
      .etag = e, .mtime_ms = t};
  (void)err;
  (void)errlen;
  return 0;
}

static const char *str(json_t *o, const char *k) { return json_string_value(json_object_get(o, k)); }

static int parse_records(hl_s3events *ev, json_t *records, char *err, size_t errlen) {
  if (!json_is_array(records)) {
    snprintf(err, errlen, "\"Records\" is not an array");
    return HL_EPARSE;
  }
  size_t i;
  json_t *rec;
  json_array_foreach(records, i, rec) {
    const char *name = str(rec, "eventName");
    if (name && strncmp(name, "s3:", 3) == 0)
      name += 3;
    if (!name || strncmp(name, "ObjectCreated:", 14) != 0) {
      ev->ignored++;
      continue;
    }
    json_t *s3 = json_object_get(rec, "s3");
    json_t *obj = json_object_get(s3, "object");
    int r = add(ev, str(json_object_get(s3, "bucket"), "name"), str(obj, "key"), true,
                json_object_get(obj, "size"), str(obj, "eTag"), str(rec, "eventTime"), err, errlen);
    if (r < 0)
      return r;
    ev->ignored += (size_t)r;
  }
  return 0;
}

static int parse_value(hl_s3events *ev, json_t *root, int depth, char *err, size_t errlen) {
  if (!json_is_object(root)) {
    snprintf(err, errlen, "the body is not a JSON object");
    return HL_EPARSE;
  }
  json_t *records = json_object_get(root, "Records");
  if (records)
    return parse_records(ev, records, err, errlen);
  const char *type = str(root, "Type");
  if (type && strcmp(type, "Notification") == 0) {
    const char *msg = str(root, "Message");
    if (!msg || depth >= MAX_DEPTH_SNS) {
      snprintf(err, errlen, "SNS notification without a usable \"Message\"");
      return HL_EPARSE;
    }
    json_error_t je;
    json_t *inner = json_loads(msg, JSON_REJECT_DUPLICATES, &je);
    if (!inner) {
      snprintf(err, errlen, "SNS \"Message\" is not JSON: %s", je.text);
      return HL_EPARSE;
    }
    int r = parse_value(ev, inner, depth + 1, err, errlen);
    json_decref(inner);
    return r;
  }
  if (type) {
    /* SubscriptionConfirmation and other SNS messages carry no object. */
    snprintf(err, errlen, "SNS message of type \"%s\" is not handled", type);
    return HL_EPARSE;
  }
  const char *dtype = str(root, "detail-type");
  if (dtype) {
    const char *source = str(root, "source");
    if (source && strcmp(source, "aws.s3") != 0) {
      snprintf(err, errlen, "EventBridge event from \"%s\", not aws.s3", source);
      return HL_EPARSE;
    }
    if (strcmp(dtype, "Object Created") != 0) {
      ev->ignored++;
      return 0;
    }
    json_t *detail = json_object_get(root, "detail");
    json_t *obj = json_object_get(detail, "object");
    int r = add(ev, str(json_object_get(detail, "bucket"), "name"), str(obj, "key"), false,
                json_object_get(obj, "size"), str(obj, "etag"), str(root, "time"), err, errlen);
    if (r < 0)
      return r;
    ev->ignored += (size_t)r;
    return 0;
  }
  const char *event = str(root, "Event");
  if (event && strcmp(event, "s3:TestEvent") == 0)
    return 0;
  snprintf(err, errlen, "not an S3, SNS or EventBridge notification");
  return HL_EPARSE;
}

int hl_s3events_parse(const char *body, size_t len, hl_s3events *out, char *err, size_t errlen) {
  if (len > HL_S3EVENTS_MAX_BODY) {
    snprintf(err, errlen, "body larger than %d bytes", HL_S3EVENTS_MAX_BODY);
    return HL_ELIMIT;
  }
  json_error_t je;
  json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
  if (!root) {
    snprintf(err, errlen, "not JSON: %s", je.text);
    return HL_EPARSE;
  }
  hl_s3events ev = {0};
  int r = parse_value(&ev, root, 0, err, errlen);
  json_decref(root);
  if (r < 0) {
    if (r == HL_ELIMIT)
      snprintf(err, errlen, "more than %d records", HL_S3EVENTS_MAX_RECORDS);
    hl_s3events_clear(&ev);
    return r;
  }
  *out = ev;
  return 0;
}
