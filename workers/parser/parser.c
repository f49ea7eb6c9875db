#include "parser.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hl/error.h"
#include "hl/s3.h"

typedef struct run {
  const hl_landing_event *ev;
  const hl_parser_sink *sink;
  hl_split *sp;
} run;

static int on_record(void *ud, const hl_split_record *r) {
  run *x = ud;
  return x->sink->resource ? x->sink->resource(x->sink->ud, x->ev, r) : 0;
}

static int on_reject(void *ud, const hl_split_reject *r) {
  run *x = ud;
  return x->sink->reject ? x->sink->reject(x->sink->ud, x->ev, r) : 0;
}

static int feed(void *ud, const void *data, size_t len) {
  run *x = ud;
  return hl_split_feed(x->sp, data, len);
}

/* Decodes %XX in a file:// path into out. */
static int uri_path(const char *uri, char *out, size_t outlen) {
  const char *p = uri + 7; /* "file://" */
  size_t o = 0;
  for (; *p; p++) {
    char c = *p;
    if (c == '%') {
      int hi, lo;
      if (sscanf(p + 1, "%1x%1x", &hi, &lo) != 2)
        return -EINVAL;
      c = (char)(hi << 4 | lo);
      if (c == '\0')
        return -EINVAL;
      p += 2;
    }
    if (o + 1 >= outlen)
      return -ENAMETOOLONG;
    out[o++] = c;
  }
  out[o] = '\0';
  return 0;
}

static int read_file(const hl_parser_opts *opts, const hl_landing_event *ev, run *x,
                     hl_parser_result *res) {
  char path[PATH_MAX], real[PATH_MAX], root[PATH_MAX];
  if (!opts->landing_dir || !realpath(opts->landing_dir, root)) {
    res->code = "forbidden-uri";
    snprintf(res->detail, sizeof res->detail, "file:// objects are not accepted (no landing directory)");
    return HL_EPARSE;
  }
  if (uri_path(ev->uri, path, sizeof path) < 0) {
    res->code = "forbidden-uri";
    snprintf(res->detail, sizeof res->detail, "malformed file:// uri");
    return HL_EPARSE;
  }
  if (!realpath(path, real)) {
    int e = errno;
    res->code = (e == ENOENT || e == ENOTDIR) ? "object-not-found" : "read-error";
    snprintf(res->detail, sizeof res->detail, "%.400s: %s", path, strerror(e));
    return e == ENOENT || e == ENOTDIR ? HL_EPARSE : HL_EIO;
  }
  size_t rl = strlen(root);
  if (strncmp(real, root, rl) != 0 || (real[rl] != '/' && real[rl] != '\0')) {
    res->code = "forbidden-uri";
    snprintf(res->detail, sizeof res->detail, "%.400s is outside the landing directory", path);
    return HL_EPARSE;
  }
  int fd = open(real, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int e = errno;
    res->code = e == ENOENT ? "object-not-found" : "read-error";
    snprintf(res->detail, sizeof res->detail, "%.400s: %s", path, strerror(e));
    return e == ENOENT ? HL_EPARSE : HL_EIO;
  }
  size_t chunk = opts->read_chunk ? opts->read_chunk : (1u << 20);
  char *buf = malloc(chunk);
  int r = buf ? 0 : -ENOMEM;
  while (r == 0) {
    ssize_t n = read(fd, buf, chunk);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      res->code = "read-error";
      snprintf(res->detail, sizeof res->detail, "%.400s: %s", path, strerror(errno));
      r = HL_EIO;
      break;
    }
    if (n == 0)
      break;
    r = feed(x, buf, (size_t)n);
  }
  free(buf);
  close(fd);
  return r;
}

typedef struct s3_run {
  int (*chunk)(void *cud, const void *data, size_t len);
  void *cud;
  int stopped; /* what chunk() returned when it stopped the transfer */
} s3_run;

static int s3_chunk(void *ud, const void *data, size_t len) {
  s3_run *s = ud;
  int r = s->chunk(s->cud, data, len);
  if (r < 0)
    s->stopped = r;
  return r;
}

int hl_parser_s3_reader(void *ud, const char *bucket, const char *key,
                        int (*chunk)(void *cud, const void *data, size_t len), void *cud,
                        char *detail, size_t detail_len) {
  s3_run s = {chunk, cud, 0};
  hl_s3_error err;
  memset(&err, 0, sizeof err);
  int r = hl_s3_get(ud, bucket, key, -1, -1, s3_chunk, &s, NULL, &err);
  if (r == 0)
    return 0;
  if (r == -ECANCELED && s.stopped < 0)
    return s.stopped;
  hl_s3_error_str(&err, detail, detail_len);
  if (r == HL_ENOTFOUND)
    return HL_ENOTFOUND;
  int st = err.http_status;
  if (r == HL_EHTTP && st >= 400 && st < 500 && st != 403 && st != 408 && st != 429)
    return HL_EPARSE;
  return r == -ENOMEM ? r : HL_EIO;
}

/* The object name is the last path segment of the key. */
static const char *base_name(const char *key) {
  const char *s = strrchr(key, '/');
  return s ? s + 1 : key;
}

int hl_parser_process(const hl_parser_opts *opts, const hl_landing_event *ev,
                      const hl_parser_sink *sink, hl_parser_result *res) {
  memset(res, 0, sizeof *res);
  hl_split_opts so;
  if (hl_split_opts_for_name(base_name(ev->key), &so) < 0) {
    res->code = "unsupported-format";
    snprintf(res->detail, sizeof res->detail,
             "%s: not .ndjson, .jsonl or .json (optionally .gz)", ev->key);
    return HL_EPARSE;
  }
  so.max_line_bytes = opts->max_line_bytes;
  so.max_document_bytes = opts->max_document_bytes;
  run x = {ev, sink, NULL};
  hl_split_cbs cbs = {on_record, on_reject};
  int r = hl_split_new(&so, &cbs, &x, &x.sp);
  if (r < 0)
    return r;
  if (strncmp(ev->uri, "file://", 7) == 0) {
    r = read_file(opts, ev, &x, res);
  } else if (strncmp(ev->uri, "s3://", 5) == 0 && opts->s3_read) {
    char why[300] = "";
    r = opts->s3_read(opts->s3_ud, ev->bucket, ev->key, feed, &x, why, sizeof why);
    if (r == HL_ENOTFOUND) {
      res->code = "object-not-found";
      snprintf(res->detail, sizeof res->detail, "s3://%.100s/%.300s does not exist", ev->bucket, ev->key);
      r = HL_EPARSE;
    } else if (r == HL_EPARSE || r == HL_EIO) {
      res->code = r == HL_EPARSE ? "unreadable-object" : "read-error";
      snprintf(res->detail, sizeof res->detail, "s3://%.100s/%.200s: %s", ev->bucket, ev->key,
               why[0] ? why : "read failed");
    }
  } else {
    res->code = "forbidden-uri";
    snprintf(res->detail, sizeof res->detail, "%s: scheme not accepted by this parser", ev->uri);
    r = HL_EPARSE;
  }
  if (r == 0)
    r = hl_split_finish(x.sp);
  const hl_split_stats *st = hl_split_get_stats(x.sp);
  res->emitted = st->records;
  res->rejected = st->rejects;
  res->lines = st->lines;
  res->bytes = st->bytes_in;
  hl_split_free(x.sp);
  return r;
}
