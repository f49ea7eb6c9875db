/* Output files: see out.h. */
#include "out.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "hl/error.h"
#include "streams.h"

typedef struct ofile {
  int fd;               /* -1 when not open */
  int opened;           /* ever opened */
  unsigned part;        /* current part number (split) */
  uint64_t lines;       /* lines in the current part */
  char *buf;
  size_t len;
  z_stream z;
  int zinit;
  char tmp[4096], final[4096];
} ofile;

struct hl_out {
  hl_out_opts opt;
  size_t bufsize;
  ofile *files;         /* orgs * HL_S_N */
  uint64_t bytes, raw;
  char err[4400];
  char *zbuf;
  size_t zcap;
};

static int mkdir_p(const char *path) {
  char tmp[4096];
  size_t n = strlen(path);
  if (n == 0 || n >= sizeof(tmp)) return -ENAMETOOLONG;
  memcpy(tmp, path, n + 1);
  for (size_t i = 1; i <= n; i++) {
    if (tmp[i] == '/' || tmp[i] == 0) {
      char c = tmp[i];
      tmp[i] = 0;
      if (mkdir(tmp, 0777) != 0 && errno != EEXIST) return -errno;
      tmp[i] = c;
    }
  }
  return 0;
}

static int fail(hl_out *o, const char *path, int err) {
  snprintf(o->err, sizeof(o->err), "%s: %s", path, hl_strerror(err));
  return err;
}

int hl_out_new(const hl_out_opts *opt, hl_out **out) {
  hl_out *o = calloc(1, sizeof(*o));
  if (!o) return -ENOMEM;
  o->opt = *opt;
  o->files = calloc((size_t)opt->orgs * HL_S_N, sizeof(ofile));
  size_t per = ((size_t)32 << 20) / ((size_t)opt->orgs * HL_S_N);
  if (per < (64 << 10)) per = 64 << 10;
  if (per > (1 << 20)) per = 1 << 20;
  o->bufsize = per;
  if (!o->files) {
    free(o);
    return -ENOMEM;
  }
  for (size_t i = 0; i < (size_t)opt->orgs * HL_S_N; i++) o->files[i].fd = -1;
  *out = o;
  return 0;
}

static const char *dir_of(const hl_out *o, int s) {
  return hl_stream_is_omop(s) ? o->opt.omop_dir : o->opt.fhir_dir;
}

static void names(const hl_out *o, int org, int s, unsigned part, ofile *f) {
  const char *ext = hl_stream_is_omop(s) ? "csv" : "ndjson";
  const char *gz = o->opt.gzip ? ".gz" : "";
  char base[128];
  if (o->opt.split && !hl_stream_is_omop(s))
    snprintf(base, sizeof(base), "%s.%04u.%s%s", hl_stream_names[s], part, ext, gz);
  else
    snprintf(base, sizeof(base), "%s.%s%s", hl_stream_names[s], ext, gz);
  snprintf(f->final, sizeof(f->final), "%s/org=org-%d/%s", dir_of(o, s), org + 1, base);
  snprintf(f->tmp, sizeof(f->tmp), "%s/org=org-%d/.%s.tmp", dir_of(o, s), org + 1, base);
}

static int write_all(hl_out *o, int fd, const char *path, const char *p, size_t n) {
  while (n) {
    ssize_t w = write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return fail(o, path, -errno);
    }
    p += w;
    n -= (size_t)w;
    o->bytes += (uint64_t)w;
  }
  return 0;
}

/* Compresses (or copies) the file's buffer to its descriptor; finish ends the gzip stream. */
static int drain(hl_out *o, ofile *f, int finish) {
  if (!o->opt.gzip) {
    int rc = write_all(o, f->fd, f->tmp, f->buf, f->len);
    f->len = 0;
    return rc;
  }
  if (!o->zbuf) {
    o->zcap = 1 << 18;
    o->zbuf = malloc(o->zcap);
    if (!o->zbuf) return fail(o, f->tmp, -ENOMEM);
  }
  f->z.next_in = (unsigned char *)f->buf;
  f->z.avail_in = (unsigned)f->len;
  int zr;
  do {
    f->z.next_out = (unsigned char *)o->zbuf;
    f->z.avail_out = (unsigned)o->zcap;
    zr = deflate(&f->z, finish ? Z_FINISH : Z_NO_FLUSH);
    if (zr == Z_STREAM_ERROR) return fail(o, f->tmp, HL_EFATAL);
    size_t have = o->zcap - f->z.avail_out;
    int rc = write_all(o, f->fd, f->tmp, o->zbuf, have);
    if (rc) return rc;
  } while (f->z.avail_out == 0 || (finish && zr != Z_STREAM_END));
  f->len = 0;
  return 0;
}

static int open_file(hl_out *o, int org, int s, ofile *f) {
  names(o, org, s, f->part, f);
  char dir[4096];
  snprintf(dir, sizeof(dir), "%s/org=org-%d", dir_of(o, s), org + 1);
  int rc = mkdir_p(dir);
  if (rc) return fail(o, dir, rc);
  f->fd = open(f->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
  if (f->fd < 0) return fail(o, f->tmp, -errno);
  if (!f->buf) {
    f->buf = malloc(o->bufsize);
    if (!f->buf) return fail(o, f->tmp, -ENOMEM);
  }
  f->len = 0;
  f->lines = 0;
  f->opened = 1;
  if (o->opt.gzip) {
    memset(&f->z, 0, sizeof(f->z));
    if (deflateInit2(&f->z, 1, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY) != Z_OK)
      return fail(o, f->tmp, -ENOMEM);
    f->zinit = 1;
  }
  if (hl_stream_is_omop(s)) {
    const char *h = hl_omop_headers[s];
    memcpy(f->buf, h, strlen(h));
    f->len = strlen(h);
    o->raw += f->len;
  }
  return 0;
}

/* Flushes, syncs, closes and renames the current part. */
static int close_file(hl_out *o, ofile *f) {
  int rc = drain(o, f, 1);
  if (f->zinit) {
    deflateEnd(&f->z);
    f->zinit = 0;
  }
  if (!rc && fsync(f->fd) != 0) rc = fail(o, f->tmp, -errno);
  if (close(f->fd) != 0 && !rc) rc = fail(o, f->tmp, -errno);
  f->fd = -1;
  if (!rc && rename(f->tmp, f->final) != 0) rc = fail(o, f->final, -errno);
  if (rc) unlink(f->tmp);
  return rc;
}

static int put(hl_out *o, ofile *f, const char *data, size_t len) {
  o->raw += len;
  while (len) {
    size_t room = o->bufsize - f->len;
    size_t n = len < room ? len : room;
    memcpy(f->buf + f->len, data, n);
    f->len += n;
    data += n;
    len -= n;
    if (f->len == o->bufsize) {
      int rc = drain(o, f, 0);
      if (rc) return rc;
    }
  }
  return 0;
}

int hl_out_write(hl_out *o, int org, int s, const char *data, size_t len, uint64_t nlines) {
  if (!dir_of(o, s) || len == 0) return 0;
  ofile *f = &o->files[(size_t)org * HL_S_N + (size_t)s];
  int rc;
  if (f->fd < 0 && (rc = open_file(o, org, s, f))) return rc;
  uint64_t split = hl_stream_is_omop(s) ? 0 : o->opt.split;
  while (split && f->lines + nlines > split) {
    /* Fill the current part up to split lines, then start the next part. */
    uint64_t take = split - f->lines;
    size_t cut = 0;
    for (uint64_t i = 0; i < take; i++) {
      const char *nl = memchr(data + cut, '\n', len - cut);
      cut = (size_t)(nl - data) + 1;
    }
    if ((rc = put(o, f, data, cut))) return rc;
    f->lines += take;
    data += cut;
    len -= cut;
    nlines -= take;
    if ((rc = close_file(o, f))) return rc;
    f->part++;
    if (nlines == 0) return 0;
    if ((rc = open_file(o, org, s, f))) return rc;
  }
  f->lines += nlines;
  return put(o, f, data, len);
}

int hl_out_write_file(hl_out *o, int org, const char *name, const char *data, size_t len) {
  if (!o->opt.fhir_dir) return 0;
  ofile f;
  memset(&f, 0, sizeof(f));
  char dir[4096];
  snprintf(dir, sizeof(dir), "%s/org=org-%d/bundles", o->opt.fhir_dir, org + 1);
  int rc = mkdir_p(dir);
  if (rc) return fail(o, dir, rc);
  const char *gz = o->opt.gzip ? ".gz" : "";
  if (snprintf(f.final, sizeof(f.final), "%s/%s.json%s", dir, name, gz) >= (int)sizeof(f.final) ||
      snprintf(f.tmp, sizeof(f.tmp), "%s/.%s.json%s.tmp", dir, name, gz) >= (int)sizeof(f.tmp))
    return fail(o, dir, -ENAMETOOLONG);
  f.fd = open(f.tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
  if (f.fd < 0) return fail(o, f.tmp, -errno);
  f.buf = (char *)data;
  f.len = len;
  o->raw += len;
  if (o->opt.gzip) {
    if (deflateInit2(&f.z, 1, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
      close(f.fd);
      unlink(f.tmp);
      return fail(o, f.tmp, -ENOMEM);
    }
    f.zinit = 1;
  }
  rc = drain(o, &f, 1);
  if (f.zinit) deflateEnd(&f.z);
  /* One file per patient: no fsync each (it would dominate); hl_out_finish syncs the disk. */
  if (close(f.fd) != 0 && !rc) rc = fail(o, f.tmp, -errno);
  if (!rc && rename(f.tmp, f.final) != 0) rc = fail(o, f.final, -errno);
  if (rc) unlink(f.tmp);
  return rc;
}

int hl_out_finish(hl_out *o) {
  int rc = 0;
  for (int org = 0; org < o->opt.orgs; org++) {
    for (int s = 0; s < HL_S_N; s++) {
      ofile *f = &o->files[(size_t)org * HL_S_N + (size_t)s];
      /* Every OMOP table exists (header only when empty). */
      if (f->fd < 0 && !f->opened && hl_stream_is_omop(s) && o->opt.omop_dir && !rc)
        rc = open_file(o, org, s, f);
      if (f->fd >= 0) {
        if (rc) {
          close(f->fd);
          f->fd = -1;
          unlink(f->tmp);
        } else {
          rc = close_file(o, f);
        }
      }
    }
  }
  if (!rc && o->opt.bundle) sync();
  return rc;
}

hl_out *hl_out_free(hl_out *o) {
  if (!o) return NULL;
  for (size_t i = 0; i < (size_t)o->opt.orgs * HL_S_N; i++) {
    ofile *f = &o->files[i];
    if (f->fd >= 0) {
      close(f->fd);
      unlink(f->tmp);
    }
    if (f->zinit) deflateEnd(&f->z);
    free(f->buf);
  }
  free(o->files);
  free(o->zbuf);
  free(o);
  return NULL;
}

uint64_t hl_out_bytes(const hl_out *o) { return o->bytes; }
uint64_t hl_out_raw_bytes(const hl_out *o) { return o->raw; }
const char *hl_out_error(const hl_out *o) { return o->err; }
