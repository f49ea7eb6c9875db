#include "dirsrc.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "hl/buf.h"
#include "hl/error.h"
#include "hl/log.h"

#define MAX_DEPTH 64

/* ---- A small string-keyed hash map ---------------------------------------- */

typedef struct node {
  struct node *next;
  uint64_t hash;
  char *key;
  void *val;
} node;

typedef struct strmap {
  node **slots;
  size_t nslots, n;
} strmap;

static uint64_t fnv1a(const char *s) {
  uint64_t h = 1469598103934665603ULL;
  for (; *s; s++)
    h = (h ^ (unsigned char)*s) * 1099511628211ULL;
  return h;
}

static node *map_find(const strmap *m, const char *key) {
  if (!m->nslots)
    return NULL;
  uint64_t h = fnv1a(key);
  for (node *n = m->slots[h % m->nslots]; n; n = n->next)
    if (n->hash == h && strcmp(n->key, key) == 0)
      return n;
  return NULL;
}

static int map_grow(strmap *m) {
  size_t ns = m->nslots ? m->nslots * 2 : 256;
  node **slots = calloc(ns, sizeof *slots);
  if (!slots)
    return -ENOMEM;
  for (size_t i = 0; i < m->nslots; i++) {
    for (node *n = m->slots[i], *next; n; n = next) {
      next = n->next;
      n->next = slots[n->hash % ns];
      slots[n->hash % ns] = n;
    }
  }
  free(m->slots);
  m->slots = slots;
  m->nslots = ns;
  return 0;
}

/* Adds key (copied) with val; the key must not be present. */
static node *map_add(strmap *m, const char *key, void *val) {
  if (m->n >= m->nslots && map_grow(m) < 0)
    return NULL;
  node *n = malloc(sizeof *n);
  if (!n)
    return NULL;
  n->key = strdup(key);
  if (!n->key) {
    free(n);
    return NULL;
  }
  n->hash = fnv1a(key);
  n->val = val;
  n->next = m->slots[n->hash % m->nslots];
  m->slots[n->hash % m->nslots] = n;
  m->n++;
  return n;
}

/* Unlinks n (which must be in m) and frees the node and its key, not its value. */
static void map_del(strmap *m, node *n) {
  node **pp = &m->slots[n->hash % m->nslots];
  while (*pp != n)
    pp = &(*pp)->next;
  *pp = n->next;
  free(n->key);
  free(n);
  m->n--;
}

/* ---- The source ------------------------------------------------------------ */

typedef struct file_ent {
  int64_t size, mtime_ns;
  uint64_t ino;
  uint64_t since_ms;  /* when this version was first seen */
  uint64_t gen;       /* scan generation that last saw it */
  bool handed;        /* this version was reported */
} file_ent;

typedef struct watch {
  uv_fs_event_t h;
  hl_dirsrc *d;
  char *rel;          /* "" for the root */
  uint64_t gen;
} watch;

struct hl_dirsrc {
  uv_loop_t *loop;
  char *root;          /* absolute, no trailing slash */
  char *bucket;
  const hl_notifier_filter *filter;
  uint64_t stable_ms, rescan_ms;
  size_t max_watches, max_files;
  hl_notifier_found_fn *found;
  void *ud;
  strmap files;        /* rel path -> file_ent */
  strmap watches;      /* rel dir -> watch */
  uint64_t gen;
  bool started, closing;
  size_t waiting;
  uint64_t scans, events, over_limit;
  uv_timer_t check_timer, rescan_timer;
  int open_handles;
  bool warned_limit;
};

int hl_dirsrc_new(uv_loop_t *loop, const hl_dirsrc_opts *o, hl_dirsrc **out) {
  if (!o->root || !o->bucket || !o->filter || !o->found)
    return -EINVAL;
  char abs[PATH_MAX];
  if (!realpath(o->root, abs))
    return -errno;
  struct stat st;
  if (stat(abs, &st) < 0)
    return -errno;
  if (!S_ISDIR(st.st_mode))
    return -ENOTDIR;
  hl_dirsrc *d = calloc(1, sizeof *d);
  if (!d)
    return -ENOMEM;
  d->loop = loop;
  d->root = strdup(strcmp(abs, "/") == 0 ? "" : abs);
  d->bucket = strdup(o->bucket);
  if (!d->root || !d->bucket) {
    free(d->root);
    free(d->bucket);
    free(d);
    return -ENOMEM;
  }
  d->filter = o->filter;
  d->stable_ms = o->stable_ms;
  d->rescan_ms = o->rescan_ms;
  d->max_watches = o->max_watches ? o->max_watches : 8192;
  d->max_files = o->max_files ? o->max_files : 1000000;
  d->found = o->found;
  d->ud = o->ud;
  *out = d;
  return 0;
}

static int build_path(const hl_dirsrc *d, const char *rel, char *out, size_t len) {
  int n = rel[0] ? snprintf(out, len, "%s/%s", d->root, rel) : snprintf(out, len, "%s/", d->root);
  return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

static int join_rel(const char *dir, const char *name, char *out, size_t len) {
  int n = dir[0] ? snprintf(out, len, "%s/%s", dir, name) : snprintf(out, len, "%s", name);
  return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

static void note_limit(hl_dirsrc *d, const char *what) {
  d->over_limit++;
  if (!d->warned_limit) {
    d->warned_limit = true;
    hl_log_kv(HL_LOG_WARN, "landing directory over a limit; the periodic rescan still finds files",
              "limit", what, NULL);
  }
}

static void set_waiting(hl_dirsrc *d, file_ent *e, bool handed) {
  if (e->handed && !handed)
    d->waiting++;
  else if (!e->handed && handed)
    d->waiting--;
  e->handed = handed;
}

/* Records what a stat of rel says; a new or changed version waits stable_ms again. */
static void observe(hl_dirsrc *d, const char *rel, const struct stat *st, uint64_t now) {
  int64_t mtime_ns = (int64_t)st->st_mtim.tv_sec * 1000000000LL + st->st_mtim.tv_nsec;
  node *n = map_find(&d->files, rel);
  file_ent *e;
  if (!n) {
    if (d->files.n >= d->max_files) {
      note_limit(d, "files");
      return;
    }
    e = calloc(1, sizeof *e);
    if (!e || !map_add(&d->files, rel, e)) {
      free(e);
      return;
    }
    e->handed = true; /* set_waiting below counts it */
    set_waiting(d, e, false);
  } else {
    e = n->val;
    if (e->size == (int64_t)st->st_size && e->mtime_ns == mtime_ns && e->ino == (uint64_t)st->st_ino) {
      e->gen = d->gen;
      return;
    }
    set_waiting(d, e, false);
  }
  e->size = (int64_t)st->st_size;
  e->mtime_ns = mtime_ns;
  e->ino = (uint64_t)st->st_ino;
  e->since_ms = now;
  e->gen = d->gen;
}

static void forget_file(hl_dirsrc *d, node *n) {
  file_ent *e = n->val;
  if (!e->handed)
    d->waiting--;
  free(e);
  map_del(&d->files, n);
}

static void on_handle_closed(uv_handle_t *h);
static void on_fs_event(uv_fs_event_t *h, const char *filename, int events, int status);

static void watch_close(hl_dirsrc *d, node *n) {
  watch *w = n->val;
  map_del(&d->watches, n);
  d->open_handles++;
  uv_close((uv_handle_t *)&w->h, on_handle_closed);
}

/* Makes sure dir rel has a watcher (only once started). */
static void ensure_watch(hl_dirsrc *d, const char *rel) {
  if (!d->started || d->closing)
    return;
  node *n = map_find(&d->watches, rel);
  if (n) {
    ((watch *)n->val)->gen = d->gen;
    return;
  }
  if (d->watches.n >= d->max_watches) {
    note_limit(d, "watches");
    return;
  }
  char path[PATH_MAX];
  if (build_path(d, rel, path, sizeof path) < 0)
    return;
  watch *w = calloc(1, sizeof *w);
  if (!w)
    return;
  w->d = d;
  w->rel = strdup(rel);
  w->gen = d->gen;
  if (!w->rel || uv_fs_event_init(d->loop, &w->h) < 0) {
    free(w->rel);
    free(w);
    return;
  }
  w->h.data = w;
  if (uv_fs_event_start(&w->h, on_fs_event, path, 0) < 0 || !map_add(&d->watches, rel, w)) {
    d->open_handles++;
    /* Not in the map: the close callback frees it all the same. */
    uv_close((uv_handle_t *)&w->h, on_handle_closed);
    note_limit(d, "watches");
  }
}

/* Scans directory rel recursively. */
static int scan_dir(hl_dirsrc *d, const char *rel, int depth, uint64_t now) {
  if (depth > MAX_DEPTH)
    return 0;
  char path[PATH_MAX];
  int r = build_path(d, rel, path, sizeof path);
  if (r < 0)
    return r;
  DIR *dir = opendir(path);
  if (!dir)
    return -errno;
  ensure_watch(d, rel);
  struct dirent *de;
  while ((de = readdir(dir)) != NULL) {
    const char *name = de->d_name;
    if (name[0] == '.')
      continue;
    char child[PATH_MAX], abs[PATH_MAX];
    if (join_rel(rel, name, child, sizeof child) < 0 || build_path(d, child, abs, sizeof abs) < 0)
      continue;
    struct stat st;
    if (lstat(abs, &st) < 0)
      continue;
    if (S_ISDIR(st.st_mode))
      scan_dir(d, child, depth + 1, now);
    else if (S_ISREG(st.st_mode) && !hl_notifier_filter_is_temp(d->filter, name))
      observe(d, child, &st, now);
  }
  closedir(dir);
  return 0;
}

int hl_dirsrc_scan(hl_dirsrc *d, uint64_t now_ms) {
  d->gen++;
  int r = scan_dir(d, "", 0, now_ms);
  if (r < 0)
    return r;
  d->scans++;
  /* Whatever this scan did not see is gone. */
  for (size_t i = 0; i < d->files.nslots; i++)
    for (node *n = d->files.slots[i], *next; n; n = next) {
      next = n->next;
      if (((file_ent *)n->val)->gen != d->gen)
        forget_file(d, n);
    }
  for (size_t i = 0; i < d->watches.nslots; i++)
    for (node *n = d->watches.slots[i], *next; n; n = next) {
      next = n->next;
      if (((watch *)n->val)->gen != d->gen)
        watch_close(d, n);
    }
  return 0;
}

static void obj_from(hl_dirsrc *d, const char *rel, const file_ent *e, hl_buf *uri, char *etag,
                     size_t etaglen, hl_notifier_object *o) {
  char abs[PATH_MAX];
  build_path(d, rel, abs, sizeof abs);
  hl_buf_reset(uri);
  hl_notifier_file_uri(uri, abs);
  hl_notifier_file_etag(e->size, e->mtime_ns, e->ino, etag, etaglen);
  *o = (hl_notifier_object){.source = "dir", .bucket = d->bucket, .key = rel,
                            .uri = uri->data ? uri->data : "", .size = e->size, .etag = etag,
                            .mtime_ms = e->mtime_ns / 1000000};
}

void hl_dirsrc_check(hl_dirsrc *d, uint64_t now_ms) {
  if (d->waiting == 0)
    return;
  hl_buf uri;
  hl_buf_init(&uri, 3 * PATH_MAX + 16);
  for (size_t i = 0; i < d->files.nslots; i++) {
    for (node *n = d->files.slots[i], *next; n; n = next) {
      next = n->next;
      file_ent *e = n->val;
      if (e->handed || now_ms - e->since_ms < d->stable_ms)
        continue;
      /* Confirm with a fresh stat: the version must still be the one that was stable. */
      char abs[PATH_MAX];
      struct stat st;
      if (build_path(d, n->key, abs, sizeof abs) < 0 || lstat(abs, &st) < 0 || !S_ISREG(st.st_mode)) {
        forget_file(d, n);
        continue;
      }
      observe(d, n->key, &st, now_ms);
      if (e->handed || now_ms - e->since_ms < d->stable_ms)
        continue;
      char etag[80];
      hl_notifier_object o;
      obj_from(d, n->key, e, &uri, etag, sizeof etag, &o);
      if (d->found(d->ud, &o) == -EAGAIN)
        goto done; /* the core is full: try again on the next check */
      set_waiting(d, e, true);
    }
  }
done:
  hl_buf_free(&uri);
}

void hl_dirsrc_stats_get(const hl_dirsrc *d, hl_dirsrc_stats *out) {
  *out = (hl_dirsrc_stats){.tracked = d->files.n, .waiting = d->waiting, .watches = d->watches.n,
                           .scans = d->scans, .events = d->events, .over_limit = d->over_limit};
}

/* ---- libuv plumbing --------------------------------------------------------- */

static void maybe_free(hl_dirsrc *d) {
  if (!d->closing || d->open_handles > 0)
    return;
  for (size_t i = 0; i < d->files.nslots; i++)
    for (node *n = d->files.slots[i], *next; n; n = next) {
      next = n->next;
      free(n->val);
      free(n->key);
      free(n);
    }
  free(d->files.slots);
  free(d->watches.slots);
  free(d->root);
  free(d->bucket);
  free(d);
}

static void on_handle_closed(uv_handle_t *h) {
  hl_dirsrc *d;
  if (h->type == UV_FS_EVENT) {
    watch *w = h->data;
    d = w->d;
    free(w->rel);
    free(w);
  } else {
    d = h->data;
  }
  d->open_handles--;
  maybe_free(d);
}

static void on_fs_event(uv_fs_event_t *h, const char *filename, int events, int status) {
  watch *w = h->data;
  hl_dirsrc *d = w->d;
  if (d->closing)
    return;
  d->events++;
  uint64_t now = uv_now(d->loop);
  if (status < 0 || !filename || !*filename) {
    scan_dir(d, w->rel, 0, now);
    return;
  }
  if (filename[0] == '.')
    return;
  char rel[PATH_MAX], abs[PATH_MAX];
  if (join_rel(w->rel, filename, rel, sizeof rel) < 0 || build_path(d, rel, abs, sizeof abs) < 0)
    return;
  struct stat st;
  if (lstat(abs, &st) < 0) {
    node *n = map_find(&d->files, rel);
    if (n)
      forget_file(d, n);
    n = map_find(&d->watches, rel);
    if (n)
      watch_close(d, n);
    return;
  }
  if (S_ISDIR(st.st_mode)) {
    /* A new directory may already hold files written before its watcher existed. */
    int depth = 1;
    for (const char *p = rel; *p; p++)
      depth += *p == '/';
    scan_dir(d, rel, depth, now);
  } else if (S_ISREG(st.st_mode) && !hl_notifier_filter_is_temp(d->filter, filename)) {
    observe(d, rel, &st, now);
  }
}

static void on_check(uv_timer_t *t) {
  hl_dirsrc *d = t->data;
  hl_dirsrc_check(d, uv_now(d->loop));
}

static void on_rescan(uv_timer_t *t) {
  hl_dirsrc *d = t->data;
  uv_update_time(d->loop);
  int r = hl_dirsrc_scan(d, uv_now(d->loop));
  if (r < 0)
    hl_log_kv(HL_LOG_ERROR, "landing directory rescan failed", "error", hl_strerror(r), NULL);
}

int hl_dirsrc_start(hl_dirsrc *d) {
  d->started = true;
  uv_timer_init(d->loop, &d->check_timer);
  uv_timer_init(d->loop, &d->rescan_timer);
  d->check_timer.data = d->rescan_timer.data = d;
  d->open_handles += 2;
  uv_update_time(d->loop);
  int r = hl_dirsrc_scan(d, uv_now(d->loop));
  if (r < 0)
    return r;
  uint64_t period = d->stable_ms / 4;
  period = period < 20 ? 20 : period > 500 ? 500 : period;
  uv_timer_start(&d->check_timer, on_check, period, period);
  if (d->rescan_ms)
    uv_timer_start(&d->rescan_timer, on_rescan, d->rescan_ms, d->rescan_ms);
  return 0;
}

hl_dirsrc *hl_dirsrc_close(hl_dirsrc *d) {
  if (!d)
    return NULL;
  d->closing = true;
  for (size_t i = 0; i < d->watches.nslots; i++)
    for (node *n = d->watches.slots[i], *next; n; n = next) {
      next = n->next;
      watch_close(d, n);
    }
  if (d->started) {
    uv_close((uv_handle_t *)&d->check_timer, on_handle_closed);
    uv_close((uv_handle_t *)&d->rescan_timer, on_handle_closed);
  }
  maybe_free(d);
  return NULL;
}
