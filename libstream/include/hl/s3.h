/*
 * hl_s3: a small S3 client on libcurl with its own AWS Signature Version 4
 * signer.
 *
 * Operations: GetObject streamed to a callback in the chunks libcurl
 * receives (never the whole object in memory), ranged GET, HeadObject,
 * ListObjectsV2 with pagination, PutObject from memory or streamed from a
 * file, DeleteObject, and presigned GET/PUT URLs. Path-style and
 * virtual-hosted-style addressing, any region, optional session token.
 * Failed calls are retried with exponential backoff and full jitter on
 * transport errors, 5xx, 429 and SlowDown; 4xx answers are final except the
 * cases listed in docs/s3.md. A GET that breaks after some bytes were
 * delivered resumes with a ranged GET pinned to the object's ETag, so the
 * callback sees every byte exactly once.
 *
 * A handle is not thread-safe: use one per thread. Every function returns 0
 * or a negative error (hl/error.h): HL_ENOTFOUND for 404, HL_EHTTP for any
 * other HTTP error (details in hl_s3_error), HL_EIO for transport errors
 * after the last retry, HL_ETIMEOUT, HL_EPARSE for an unreadable answer,
 * HL_ELIMIT past a cap, -ECANCELED when a callback stopped the transfer.
 */
#ifndef HL_S3_H
#define HL_S3_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "hl/buf.h"
#include "hl/config.h"

/* S3 limits a key to 1,024 bytes of UTF-8. */
#define HL_S3_MAX_KEY 1024
/* A single PutObject carries at most 5 GiB. */
#define HL_S3_MAX_PUT (5LL * 1024 * 1024 * 1024)

/*
 * The configuration variables of the S3 client, for a binary's config table
 * (see hl/config.h). hl_s3_config_from() reads them back.
 */
#define HL_CONFIG_S3_VARS                                                                        \
  {"AWS_ACCESS_KEY_ID", HL_CFG_STRING, "", 0, 128, NULL,                                         \
   "S3 access key id; empty: container or web-identity credentials are used."},                 \
  {"AWS_SECRET_ACCESS_KEY", HL_CFG_STRING, "", 0, 256, NULL,                                     \
   "S3 secret access key (with AWS_ACCESS_KEY_ID)."},                                            \
  {"AWS_SESSION_TOKEN", HL_CFG_STRING, "", 0, 4096, NULL,                                        \
   "Session token of temporary credentials (sent as X-Amz-Security-Token)."},                   \
  {"AWS_REGION", HL_CFG_STRING, "", 0, 64, NULL,                                                 \
   "Region used in signatures and the default endpoint; falls back to AWS_DEFAULT_REGION."},    \
  {"AWS_DEFAULT_REGION", HL_CFG_STRING, "us-east-1", 0, 64, NULL,                                \
   "Region when AWS_REGION is empty."},                                                          \
  {"HL_S3_ENDPOINT", HL_CFG_STRING, "", 0, 512, NULL,                                            \
   "Endpoint URL of an S3-compatible store (http://host:port); empty: AWS S3 of the region."},  \
  {"HL_S3_FORCE_PATH_STYLE", HL_CFG_BOOL, "false", 0, 0, NULL,                                   \
   "Address buckets as host/bucket/key instead of bucket.host/key."},                           \
  {"HL_S3_MAX_RETRIES", HL_CFG_INT, "5", 0, 20, NULL,                                            \
   "Retries of a failed S3 call (transport error, 5xx, 429, SlowDown)."},                       \
  {"HL_S3_RETRY_BASE", HL_CFG_DURATION, "100ms", 1, 60000, NULL,                                 \
   "First backoff step of S3 retries; doubles each retry, with full jitter."},                  \
  {"HL_S3_RETRY_MAX", HL_CFG_DURATION, "20s", 1, 600000, NULL,                                   \
   "Longest backoff between two S3 retries."},                                                   \
  {"HL_S3_TIMEOUT", HL_CFG_DURATION, "60s", 1000, 3600000, NULL,                                 \
   "An S3 transfer fails when no byte moves for this long (connect and idle timeout)."},        \
  {"AWS_CONTAINER_CREDENTIALS_FULL_URI", HL_CFG_STRING, "", 0, 1024, NULL,                       \
   "URL serving temporary credentials (ECS/EKS Pod Identity); used without static keys."},      \
  {"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", HL_CFG_STRING, "", 0, 1024, NULL,                   \
   "Path on http://169.254.170.2 serving temporary credentials (ECS tasks)."},                  \
  {"AWS_CONTAINER_AUTHORIZATION_TOKEN", HL_CFG_STRING, "", 0, 4096, NULL,                        \
   "Authorization header sent to the container credentials URL."},                              \
  {"AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", HL_CFG_STRING, "", 0, 1024, NULL,                   \
   "File holding the Authorization header for the container credentials URL (read each time)."}, \
  {"AWS_WEB_IDENTITY_TOKEN_FILE", HL_CFG_STRING, "", 0, 1024, NULL,                              \
   "Web identity token file (EKS IRSA); with AWS_ROLE_ARN, credentials come from STS."},        \
  {"AWS_ROLE_ARN", HL_CFG_STRING, "", 0, 2048, NULL,                                             \
   "Role assumed with the web identity token (AssumeRoleWithWebIdentity)."},                    \
  {"AWS_ROLE_SESSION_NAME", HL_CFG_STRING, "healthlake", 1, 64, NULL,                            \
   "Session name of the assumed role."},                                                         \
  {"HL_S3_STS_ENDPOINT", HL_CFG_STRING, "", 0, 512, NULL,                                        \
   "STS endpoint for web identity; empty: https://sts.<region>.amazonaws.com."}

/* Settings of a client. Strings are copied by hl_s3_new; NULL means empty. */
typedef struct hl_s3_config {
  const char *endpoint;       /* "http://127.0.0.1:9000"; NULL/"": https://s3.<region>.amazonaws.com */
  const char *region;         /* NULL/"": us-east-1 */
  const char *access_key;     /* static credentials; NULL/"": container or web-identity credentials */
  const char *secret_key;
  const char *session_token;  /* may be NULL */
  const char *container_credentials_uri;   /* full URL of a credentials endpoint, or NULL */
  const char *container_authorization;     /* Authorization header for it, or NULL */
  const char *container_authorization_file;/* file holding it, or NULL */
  const char *web_identity_token_file;     /* with role_arn: STS AssumeRoleWithWebIdentity */
  const char *role_arn;
  const char *role_session_name;           /* NULL/"": "healthlake" */
  const char *sts_endpoint;                /* NULL/"": https://sts.<region>.amazonaws.com/ */
  bool path_style;            /* host/bucket/key instead of bucket.host/key */
  int max_retries;            /* 0..20 */
  long retry_base_ms;         /* first backoff step; 0: 100 */
  long retry_max_ms;          /* longest backoff; 0: 20000 */
  long timeout_ms;            /* connect and idle (no progress) timeout; 0: 60000 */
  long long max_response;     /* cap on a buffered answer (list, error); 0: 16 MiB */
} hl_s3_config;

/* Details of a failed call; every field is empty when the call succeeded. */
typedef struct hl_s3_error {
  int http_status;       /* 0 when no HTTP answer came (transport error) */
  char code[64];         /* S3 error Code, e.g. "NoSuchKey", "SignatureDoesNotMatch" */
  char message[256];     /* S3 error Message, or the transport error text */
  char request_id[80];   /* x-amz-request-id or RequestId, when given */
  int attempts;          /* HTTP attempts made, retries included */
} hl_s3_error;

/* Metadata of an object, from GetObject or HeadObject. */
typedef struct hl_s3_object_info {
  long long size;              /* size of the whole object */
  long long content_length;    /* bytes in this answer (a range: its length) */
  char etag[128];              /* as sent, quotes included */
  char last_modified[64];      /* HTTP date as sent */
  char content_type[128];
} hl_s3_object_info;

/* One entry of a ListObjectsV2 page. */
typedef struct hl_s3_object {
  char *key;                   /* decoded key */
  long long size;
  char etag[128];              /* decoded, quotes included */
  char last_modified[64];      /* ISO 8601, e.g. 2026-01-02T03:04:05.000Z */
} hl_s3_object;

/* One page of ListObjectsV2. Owned by the caller: hl_s3_list_page_clear(). */
typedef struct hl_s3_list_page {
  hl_s3_object *objects;
  size_t count;
  char **common_prefixes;      /* with a delimiter */
  size_t nprefixes;
  bool truncated;              /* IsTruncated */
  char *next_token;            /* NextContinuationToken, or NULL */
} hl_s3_list_page;

typedef struct hl_s3_list_opts {
  const char *prefix;               /* NULL: every key */
  const char *delimiter;            /* NULL: none */
  const char *continuation_token;   /* from the previous page, or NULL */
  const char *start_after;          /* NULL: from the first key */
  int max_keys;                     /* 1..1000; 0: the server default (1000) */
} hl_s3_list_opts;

typedef struct hl_s3 hl_s3;

/*
 * Receives the body of a GetObject in order, in chunks of at most the
 * libcurl buffer size (16 KiB by default). Returns 0 to go on, anything
 * else to stop the transfer (the call then fails with -ECANCELED).
 */
typedef int (*hl_s3_write_cb)(void *ud, const void *data, size_t len);
/* Called once per listed object; non-zero stops hl_s3_list_each (-ECANCELED). */
typedef int (*hl_s3_object_cb)(void *ud, const hl_s3_object *obj);

/*
 * Fills cfg from a configuration loaded with HL_CONFIG_S3_VARS in its table.
 * The strings point into cfg_src, which must outlive the use of cfg.
 * AWS_CONTAINER_CREDENTIALS_RELATIVE_URI becomes http://169.254.170.2<uri>.
 * Returns 0, or HL_ECONFIG (and a message in err) when the credentials are
 * incomplete (an access key without a secret, or no credential source).
 */
int hl_s3_config_from(const hl_config *cfg_src, hl_s3_config *cfg, char *err, size_t errlen);

/* Creates a client; returns 0, -EINVAL (bad endpoint or settings) or -ENOMEM. */
int hl_s3_new(const hl_s3_config *cfg, hl_s3 **out);
hl_s3 *hl_s3_free(hl_s3 *s3);

/*
 * GetObject: streams the object (or bytes [first, last] of it when
 * first >= 0; last < 0 means to the end) to cb. info and err may be NULL.
 */
int hl_s3_get(hl_s3 *s3, const char *bucket, const char *key, long long first, long long last,
              hl_s3_write_cb cb, void *ud, hl_s3_object_info *info, hl_s3_error *err);
/* HeadObject. info may be NULL; HL_ENOTFOUND when the object does not exist. */
int hl_s3_head(hl_s3 *s3, const char *bucket, const char *key, hl_s3_object_info *info,
               hl_s3_error *err);
/* PutObject from memory. content_type may be NULL. etag (may be NULL) receives the ETag. */
int hl_s3_put(hl_s3 *s3, const char *bucket, const char *key, const void *data, size_t len,
              const char *content_type, char etag[128], hl_s3_error *err);
/* PutObject streamed from a file (hashed once, then sent; at most HL_S3_MAX_PUT bytes). */
int hl_s3_put_file(hl_s3 *s3, const char *bucket, const char *key, const char *path,
                   const char *content_type, char etag[128], hl_s3_error *err);
/* DeleteObject (S3 answers 204 for a missing key too). */
int hl_s3_delete(hl_s3 *s3, const char *bucket, const char *key, hl_s3_error *err);

/* One ListObjectsV2 page into page (cleared first). opts may be NULL. */
int hl_s3_list(hl_s3 *s3, const char *bucket, const hl_s3_list_opts *opts, hl_s3_list_page *page,
               hl_s3_error *err);
/* Every object under prefix (may be NULL), page after page of page_size (0: 1000). */
int hl_s3_list_each(hl_s3 *s3, const char *bucket, const char *prefix, int page_size,
                    hl_s3_object_cb cb, void *ud, hl_s3_error *err);
void hl_s3_list_page_clear(hl_s3_list_page *page);

/*
 * A presigned URL (query-string SigV4, UNSIGNED-PAYLOAD, host the only
 * signed header) for method "GET" or "PUT", valid for expires seconds
 * (1..604800). *url is malloc'ed (free it). hl_s3_presign_at signs as of
 * time now (for tests); hl_s3_presign uses the current time.
 */
int hl_s3_presign(hl_s3 *s3, const char *method, const char *bucket, const char *key, long expires,
                  char **url);
int hl_s3_presign_at(hl_s3 *s3, const char *method, const char *bucket, const char *key,
                     long expires, time_t now, char **url);

/* Credentials as a client signs with them now, for other AWS services (SQS). */
typedef struct hl_s3_credentials {
  char access_key[129];
  char secret_key[257];
  char session_token[4097];   /* "" when none */
  char region[65];
} hl_s3_credentials;

/*
 * Fills out with the client's current credentials and region, first
 * fetching or refreshing temporary ones (container or web identity) when
 * they are missing or expire within 5 minutes. 0, or the error of the
 * credentials fetch (details in err, which may be NULL), or HL_ELIMIT when a
 * value does not fit. Wipe out (OPENSSL_cleanse) when done.
 */
int hl_s3_get_credentials(hl_s3 *s3, hl_s3_credentials *out, hl_s3_error *err);

/* Static description of the last error for logs: "403 SignatureDoesNotMatch: ...". */
const char *hl_s3_error_str(const hl_s3_error *err, char *out, size_t outlen);

/* ---- The signer and the XML reader, public for tests and fuzzing. ---- */

typedef struct hl_s3_kv {
  const char *name;
  const char *value;
} hl_s3_kv;

/* One request to sign. path and query are raw (not yet URI-encoded). */
typedef struct hl_s3_sigv4 {
  const char *method;        /* "GET" */
  const char *path;          /* "/test$file.text": each segment is URI-encoded */
  const hl_s3_kv *query;     /* names and values, any order */
  size_t nquery;
  const hl_s3_kv *headers;   /* every header to sign, host included; names in any case */
  size_t nheaders;
  const char *payload_hash;  /* hex SHA-256 of the body, or "UNSIGNED-PAYLOAD" */
  const char *region;
  const char *service;       /* "s3" */
  const char *access_key;
  const char *secret_key;
  time_t now;
} hl_s3_sigv4;

/*
 * Computes the Authorization header value of req into auth (appended).
 * canonical (may be NULL) receives the canonical request. 0, -EINVAL,
 * -ENOMEM or HL_ELIMIT.
 */
int hl_s3_sigv4_sign(const hl_s3_sigv4 *req, hl_buf *auth, hl_buf *canonical);
/*
 * Appends the presigned query string (X-Amz-* parameters with the
 * signature, after req's own query) to out. session_token may be NULL.
 */
int hl_s3_sigv4_presign(const hl_s3_sigv4 *req, long expires, const char *session_token,
                        hl_buf *out);
/* kSigning of SigV4 for date "YYYYMMDD". */
void hl_s3_sigv4_key(const char *secret, const char *date, const char *region,
                     const char *service, unsigned char out[32]);
/* Appends s URI-encoded the SigV4 way; '/' is kept when keep_slash. */
int hl_s3_uri_encode(hl_buf *out, const char *s, size_t n, bool keep_slash);
/* Hex SHA-256 of data into out[65]. */
void hl_s3_sha256_hex(const void *data, size_t len, char out[65]);

/*
 * Parses a ListObjectsV2 answer (ListBucketResult) into page (cleared
 * first). 0, HL_EPARSE, HL_ELIMIT or -ENOMEM.
 */
int hl_s3_parse_list(const char *xml, size_t len, hl_s3_list_page *page);
/* Parses an S3 <Error> document into err's code, message and request id. */
int hl_s3_parse_error(const char *xml, size_t len, hl_s3_error *err);

#endif
