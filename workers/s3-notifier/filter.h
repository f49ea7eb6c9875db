/*
 * Pure helpers of hl-s3-notifier: which keys are wanted (prefix and suffix
 * filters), which file names are still being written (temporary names), the
 * tenant and job of an object, its event id, and file:// URIs.
 */
#ifndef HL_NOTIFIER_FILTER_H
#define HL_NOTIFIER_FILTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hl/buf.h"

/* Longest org or job id (the landing contract: [A-Za-z0-9._-]{1,64}). */
#define HL_NOTIFIER_ID_MAX 64
/* An event id: 32 lowercase hex digits and a NUL. */
#define HL_NOTIFIER_EVENT_ID_LEN 33

typedef struct hl_notifier_filter hl_notifier_filter;

/*
 * Builds a filter. prefix: keys must start with it (NULL or "": any).
 * suffixes: comma-separated list of wanted endings, compared without regard
 * to case (NULL or "": any). temp_suffixes: comma-separated endings of
 * temporary names (NULL: none besides a leading '.'). At most 64 entries per
 * list, 64 bytes each. 0, HL_ECONFIG or -ENOMEM.
 */
int hl_notifier_filter_new(const char *prefix, const char *suffixes, const char *temp_suffixes,
                           hl_notifier_filter **out);
hl_notifier_filter *hl_notifier_filter_free(hl_notifier_filter *f);

/* True when key passes the prefix and suffix filters. */
bool hl_notifier_filter_match(const hl_notifier_filter *f, const char *key);

/*
 * True when a file name (one path segment) is a temporary name: it starts
 * with '.', or ends with one of the temporary suffixes (case-insensitive).
 */
bool hl_notifier_filter_is_temp(const hl_notifier_filter *f, const char *name);

/*
 * The tenant of key: the first "org=<id>" segment, else default_org (NULL or
 * "": none). Returns 0, HL_EPARSE when the key's org value is invalid, or
 * HL_ENOTFOUND when there is no org segment and no default.
 */
int hl_notifier_org(const char *key, const char *default_org, char *org, size_t len);

/*
 * The job of an object: the value of the first "job=<id>" path segment
 * (any depth, [A-Za-z0-9._-]{1,64}), else "obj-" followed by 24 hex digits
 * of the SHA-256 of bucket, key and etag, so the same object version always
 * gets the same job id. Returns 0 or HL_EPARSE (invalid job= value).
 * len must be at least HL_NOTIFIER_ID_MAX + 1.
 */
int hl_notifier_job(const char *bucket, const char *key, const char *etag, char *job, size_t len);

/*
 * The event id of an object version: 32 hex digits of SHA-256 over bucket,
 * key and etag (NUL-separated). It travels as the hl-event-id header.
 */
void hl_notifier_event_id(const char *bucket, const char *key, const char *etag,
                          char out[HL_NOTIFIER_EVENT_ID_LEN]);

/* Appends "file://" and the absolute path percent-encoded (RFC 3986 path characters kept). */
int hl_notifier_file_uri(hl_buf *out, const char *abs_path);

/*
 * Decodes an S3 event key in place: %XX escapes, and '+' as a space when
 * plus_is_space. Returns the new length, or HL_EPARSE on a bad escape or an
 * embedded NUL.
 */
int hl_notifier_url_decode(char *s, bool plus_is_space);

/* The etag of a local file version: "<size>-<mtime ns>-<inode>" in hex. */
void hl_notifier_file_etag(int64_t size, int64_t mtime_ns, uint64_t ino, char *out, size_t len);

/* Writes t (Unix ms) as RFC 3339 UTC with milliseconds ("2026-11-25T16:00:00.000Z"). */
void hl_notifier_time_rfc3339(int64_t t_ms, char *out, size_t len);

#endif
