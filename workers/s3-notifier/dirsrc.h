/*
 * The `dir` source: a local landing directory.
 *
 * A full recursive scan at start, libuv file-system events on every
 * directory (uv_fs_event is not recursive on Linux, so each directory gets
 * its own watcher and new subdirectories get one when they appear), and a
 * periodic full rescan as a safety net for lost events (an inotify queue
 * overflow, a watcher limit). Files with temporary names (leading '.', or a
 * temporary suffix of the filter) and everything inside directories whose
 * name starts with '.' are ignored; symbolic links are not followed. A file
 * is reported once its size, mtime and inode stayed the same for stable_ms
 * ("closed and stable"), and again whenever it changes and becomes stable
 * again (a new version: the etag is "<size>-<mtime ns>-<inode>" in hex).
 *
 * Runs on the caller's libuv loop; every function on that loop's thread.
 */
#ifndef HL_NOTIFIER_DIRSRC_H
#define HL_NOTIFIER_DIRSRC_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "filter.h"
#include "object.h"

typedef struct hl_dirsrc hl_dirsrc;

typedef struct hl_dirsrc_opts {
  const char *root;                   /* the landing directory; must exist */
  const char *bucket;                 /* the name given to it in events */
  const hl_notifier_filter *filter;   /* temporary names; borrowed, must outlive the source */
  uint64_t stable_ms;                 /* unchanged this long = complete */
  uint64_t rescan_ms;                 /* full rescan period; 0 disables */
  size_t max_watches;                 /* directories with a watcher; 0: 8192 */
  size_t max_files;                   /* files tracked; 0: 1,000,000 */
  hl_notifier_found_fn *found;        /* required */
  void *ud;
} hl_dirsrc_opts;

/* Counters for metrics and tests. */
typedef struct hl_dirsrc_stats {
  size_t tracked;        /* files known */
  size_t waiting;        /* files not yet reported in their current version */
  size_t watches;        /* directories with a watcher */
  uint64_t scans;        /* full scans done */
  uint64_t events;       /* file-system events received */
  uint64_t over_limit;   /* files or directories left out because of a cap */
} hl_dirsrc_stats;

/* Creates the source (nothing runs yet). 0, -ENOENT/-ENOTDIR (root), -EINVAL or -ENOMEM. */
int hl_dirsrc_new(uv_loop_t *loop, const hl_dirsrc_opts *opts, hl_dirsrc **out);
/* Scans, starts the watchers and the timers. 0 or a negative libuv/errno code. */
int hl_dirsrc_start(hl_dirsrc *d);
/*
 * Stops everything and frees the source once libuv has closed its handles
 * (the caller keeps running the loop). NULL-safe. Returns NULL.
 */
hl_dirsrc *hl_dirsrc_close(hl_dirsrc *d);

/* A full scan at time now_ms (watchers are added only after start). 0 or a negative errno. */
int hl_dirsrc_scan(hl_dirsrc *d, uint64_t now_ms);
/* Reports the files stable since now_ms - stable_ms. */
void hl_dirsrc_check(hl_dirsrc *d, uint64_t now_ms);
void hl_dirsrc_stats_get(const hl_dirsrc *d, hl_dirsrc_stats *out);

#endif
