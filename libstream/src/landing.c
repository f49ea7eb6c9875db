#include "hl/landing.h"

#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hl/error.h"

static int take_str(json_t *o, const char *k, bool required, char **out, char *err, size_t errlen) {
  json_t *v = json_object_get(o, k);
  if (!v || json_is_null(v)) {
    if (required) {
      snprintf(err, errlen, "landing event: \"%s\" is missing", k);
      return HL_EPARSE;
    }
    *out = NULL;
    return 0;
  }
  if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) > 4096) {
    snprintf(err, errlen, "landing event: \"%s\" must be a non-empty string of at most 4096 bytes", k);
    return HL_EPARSE;
  }
  *out = strdup(json_string_value(v));
  return *out ? 0 : -ENOMEM;
}

void hl_landing_event_clear(hl_landing_event *ev) {
  free(ev->uri);
  free(ev->bucket);
  free(ev->key);
  free(ev->etag);
  free(ev->event_time);
  free(ev->org);
  free(ev->job);
  memset(ev, 0, sizeof *ev);
}

int hl_landing_event_parse(const char *json, size_t len, hl_landing_event *out, char *err,
                           size_t errlen) {
  hl_landing_event ev = {.size = -1};
  json_error_t je;
  json_t *o = json_loadb(json, len, JSON_REJECT_DUPLICATES, &je);
  int r = HL_EPARSE;
  if (!o || !json_is_object(o)) {
    snprintf(err, errlen, "landing event: not a JSON object (%s)", o ? "other JSON value" : je.text);
    goto done;
  }
  if ((r = take_str(o, "uri", true, &ev.uri, err, errlen)) < 0 ||
      (r = take_str(o, "bucket", true, &ev.bucket, err, errlen)) < 0 ||
      (r = take_str(o, "key", true, &ev.key, err, errlen)) < 0 ||
      (r = take_str(o, "etag", false, &ev.etag, err, errlen)) < 0 ||
      (r = take_str(o, "event_time", true, &ev.event_time, err, errlen)) < 0 ||
      (r = take_str(o, "org", true, &ev.org, err, errlen)) < 0 ||
      (r = take_str(o, "job", true, &ev.job, err, errlen)) < 0)
    goto done;
  json_t *size = json_object_get(o, "size");
  if (size && !json_is_null(size)) {
    if (!json_is_integer(size) || json_integer_value(size) < 0) {
      snprintf(err, errlen, "landing event: \"size\" must be a non-negative integer");
      r = HL_EPARSE;
      goto done;
    }
    ev.size = json_integer_value(size);
  }
  if (strncmp(ev.uri, "s3://", 5) != 0 && strncmp(ev.uri, "file:///", 8) != 0) {
    snprintf(err, errlen, "landing event: uri must start with s3:// or file:///");
    r = HL_EPARSE;
    goto done;
  }
  if (strspn(ev.org, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") !=
          strlen(ev.org) ||
      strlen(ev.org) > 64) {
    snprintf(err, errlen, "landing event: \"org\" must match [A-Za-z0-9._-]{1,64}");
    r = HL_EPARSE;
    goto done;
  }
  *out = ev;
  memset(&ev, 0, sizeof ev);
  r = 0;
done:
  hl_landing_event_clear(&ev);
  json_decref(o);
  return r;
}

int hl_landing_event_write(const hl_landing_event *ev, hl_buf *out) {
  json_t *o = json_pack("{s:s, s:s, s:s, s:I, s:s?, s:s, s:s, s:s}", "uri", ev->uri, "bucket",
                        ev->bucket, "key", ev->key, "size", (json_int_t)ev->size, "etag", ev->etag,
                        "event_time", ev->event_time, "org", ev->org, "job", ev->job);
  if (!o)
    return -EINVAL;
  char *s = json_dumps(o, JSON_COMPACT);
  json_decref(o);
  if (!s)
    return -ENOMEM;
  int r = hl_buf_puts(out, s);
  free(s);
  return r;
}

int hl_landing_org_from_key(const char *key, char *org, size_t orglen) {
  const char *p = key;
  while (p && *p) {
    if (strncmp(p, "org=", 4) == 0) {
      const char *v = p + 4;
      size_t n = strcspn(v, "/");
      if (n == 0 || n > 64 || n >= orglen)
        return HL_EPARSE;
      for (size_t i = 0; i < n; i++) {
        char c = v[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
          return HL_EPARSE;
      }
      memcpy(org, v, n);
      org[n] = '\0';
      return 0;
    }
    p = strchr(p, '/');
    if (p)
      p++;
  }
  return HL_ENOTFOUND;
}
