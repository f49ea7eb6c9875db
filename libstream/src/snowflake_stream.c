#define _GNU_SOURCE
/*
 * Snowpipe Streaming, REST API of the high-performance architecture: the
 * ingest host and a scoped token are discovered once per client; a channel
 * is opened on a pipe, rows are appended as NDJSON with an offset token,
 * and the committed offset token is read back with bulk-channel-status.
 * Blocking calls (the loader is the user). See docs/snowflake.md.
 */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "hl/error.h"
#include "snowflake_internal.h"

#define SF_MAX_APPEND (16 * 1024 * 1024)
#define SF_MAX_NAME 255
/* The scoped token is renewed after this long (Snowflake issues it for about an hour). */
#define SF_SCOPED_TTL_S 1800

struct hl_snowflake_channel {
  hl_snowflake *sf;
  char *db, *schema, *pipe, *name;
  char *continuation;   /* next_continuation_token */
  char *committed;      /* last_committed_offset_token, or NULL */
  CURL *easy;
  struct curl_slist *headers;
};

typedef struct sf_resp {
  hl_buf body;
  long retry_after_ms;
} sf_resp;

static size_t resp_write(char *p, size_t sz, size_t n, void *ud) {
  sf_resp *r = ud;
  return hl_buf_append(&r->body, p, sz * n) < 0 ? 0 : sz * n;
}

static size_t resp_header(char *p, size_t sz, size_t n, void *ud) {
  sf_resp *r = ud;
  size_t len = sz * n;
  if (len > 12 && strncasecmp(p, "Retry-After:", 12) == 0) {
    long s = strtol(p + 12, NULL, 10);
    if (s >= 0 && s < 3600)
      r->retry_after_ms = s * 1000;
  }
  return len;
}

static void read_error(hl_snowflake_error *err, long status, const hl_buf *b) {
  err->http_status = (int)status;
  json_t *j = b->len ? json_loadb(b->data, b->len, 0, NULL) : NULL;
  const char *code = json_string_value(json_object_get(j, "code"));
  const char *msg = json_string_value(json_object_get(j, "message"));
  if (code)
    snprintf(err->code, sizeof err->code, "%s", code);
  if (msg)
    snprintf(err->message, sizeof err->message, "%s", msg);
  else if (b->len)
    snprintf(err->message, sizeof err->message, "%.*s", (int)(b->len > 200 ? 200 : b->len), b->data);
  json_decref(j);
}

typedef enum { AUTH_JWT, AUTH_SCOPED } sf_auth;

static int scoped_token(hl_snowflake *sf, CURL *c, struct curl_slist **hdrs, hl_snowflake_error *err);

/*
 * One request with the retry policy of the module: 429/503/504 with
 * backoff; transport errors too when idempotent; a 401 renews the token
 * once. resp->body holds the final answer. Returns 0 for 2xx.
 */
static int request(hl_snowflake *sf, CURL *c, struct curl_slist **hdrs, const char *endpoint, const char *method,
                   const char *url, sf_auth auth, const char *ctype, const char *const *extra, const void *body, size_t len,
                   bool idempotent, sf_resp *resp, hl_snowflake_error *err) {
  bool renewed = false;
  hl__sf_stream_state *st = hl__sf_stream(sf);
  for (int retry = 0;;) {
    if (auth == AUTH_SCOPED && st->scoped_token && time(NULL) >= st->scoped_exp) {
      free(st->scoped_token);
      st->scoped_token = NULL;
    }
    if (auth == AUTH_SCOPED && !st->scoped_token) {
      int rc = scoped_token(sf, c, hdrs, err);
      if (rc < 0)
        return rc;
    }
    int rc = hl__sf_easy_setup(sf, c, hdrs, url, auth == AUTH_SCOPED ? st->scoped_token : NULL,
                               auth == AUTH_SCOPED ? "OAUTH" : "KEYPAIR_JWT", ctype, extra);
    if (rc < 0)
      return rc;
    hl_buf_reset(&resp->body);
    resp->retry_after_ms = -1;
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (body) {
      curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
      curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    }
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, resp_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, resp);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, resp_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, resp);
    err->attempts++;
    CURLcode cc = curl_easy_perform(c);
    long status = 0;
    if (cc == CURLE_OK)
      curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    hl__sf_count(sf, endpoint, status);
    if (cc == CURLE_OK && status >= 200 && status < 300) {
      err->http_status = 0;
      err->message[0] = err->code[0] = '\0';
      return 0;
    }
    if (cc != CURLE_OK) {
      err->http_status = 0;
      snprintf(err->message, sizeof err->message, "%s", curl_easy_strerror(cc));
      if (cc == CURLE_WRITE_ERROR)
        return HL_ELIMIT;
      if (!idempotent || retry >= hl__sf_max_retries(sf))
        return HL_EIO;
    } else {
      read_error(err, status, &resp->body);
      if (status == 401 && !renewed) {
        renewed = true;
        if (auth == AUTH_SCOPED) {
          free(st->scoped_token);
          st->scoped_token = NULL;
        }
        hl__sf_token_invalidate(sf);
        hl__sf_retry(sf, "401");
        continue;
      }
      if (!(status == 429 || status == 503 || status == 504) || retry >= hl__sf_max_retries(sf))
        return HL_EHTTP;
    }
    hl__sf_retry(sf, cc != CURLE_OK ? "transport" : status == 429 ? "429" : status == 503 ? "503" : "504");
    hl__sf_sleep_ms(hl__sf_backoff(sf, retry++, resp->retry_after_ms));
  }
}

/* A text answer, or the string field name of a JSON one. malloc'ed. */
static char *text_or_field(const hl_buf *b, const char *name) {
  json_t *j = json_loadb(b->data ? b->data : "", b->len, 0, NULL);
  char *out = NULL;
  if (json_is_object(j)) {
    const char *v = json_string_value(json_object_get(j, name));
    out = v && *v ? strdup(v) : NULL;
  } else if (json_is_string(j)) {
    out = strdup(json_string_value(j));
  } else if (!j && b->len && b->len < 4096) {
    size_t n = b->len;
    while (n && (b->data[n - 1] == '\n' || b->data[n - 1] == '\r' || b->data[n - 1] == ' '))
      n--;
    out = n ? strndup(b->data, n) : NULL;
  }
  json_decref(j);
  return out;
}

/* Discovers the ingest host, then exchanges the JWT for a scoped token. */
static int scoped_token(hl_snowflake *sf, CURL *c, struct curl_slist **hdrs, hl_snowflake_error *err) {
  hl__sf_stream_state *st = hl__sf_stream(sf);
  sf_resp resp;
  hl_buf_init(&resp.body, 64 * 1024);
  char url[1024];
  char *host = NULL, *tok = NULL, *form = NULL, *enc = NULL;
  int rc;
  if (!st->ingest_url) {
    snprintf(url, sizeof url, "%s/v2/streaming/hostname", hl__sf_url(sf));
    if ((rc = request(sf, c, hdrs, "hostname", "GET", url, AUTH_JWT, NULL, NULL, NULL, 0, true, &resp, err)) < 0)
      goto done;
    rc = HL_EPARSE;
    host = text_or_field(&resp.body, "hostname");
    if (!host || strpbrk(host, "/ ?#@") || strlen(host) > 253) {
      snprintf(err->message, sizeof err->message, "unreadable ingest hostname");
      goto done;
    }
    const char *base = hl__sf_url(sf);
    const char *scheme_end = strstr(base, "://");
    int sl = scheme_end ? (int)(scheme_end - base) : 5;
    if (asprintf(&st->ingest_url, "%.*s://%s", sl, scheme_end ? base : "https", host) < 0) {
      st->ingest_url = NULL;
      rc = -ENOMEM;
      goto done;
    }
  } else {
    const char *p = strstr(st->ingest_url, "://");
    host = strdup(p ? p + 3 : st->ingest_url);
    if (!host) {
      rc = -ENOMEM;
      goto done;
    }
  }
  snprintf(url, sizeof url, "%s/oauth/token", hl__sf_url(sf));
  enc = curl_easy_escape(c, host, 0);
  if (!enc || asprintf(&form, "grant_type=urn%%3Aietf%%3Aparams%%3Aoauth%%3Agrant-type%%3Ajwt-bearer&scope=%s",
                       enc) < 0) {
    form = NULL;
    rc = -ENOMEM;
    goto done;
  }
  if ((rc = request(sf, c, hdrs, "oauth", "POST", url, AUTH_JWT, "application/x-www-form-urlencoded", NULL, form,
                    strlen(form), true, &resp, err)) < 0)
    goto done;
  if (!(tok = text_or_field(&resp.body, "token")) || strpbrk(tok, "\r\n")) {
    snprintf(err->message, sizeof err->message, "unreadable scoped token");
    rc = HL_EPARSE;
    goto done;
  }
  free(st->scoped_token);
  st->scoped_token = tok;
  tok = NULL;
  st->scoped_exp = time(NULL) + SF_SCOPED_TTL_S;
  rc = 0;
done:
  curl_free(enc);
  free(form);
  free(host);
  free(tok);
  hl_buf_free(&resp.body);
  return rc;
}

static int path_url(hl_snowflake_channel *ch, char *out, size_t cap, bool data, bool with_channel,
                    const char *suffix) {
  hl__sf_stream_state *st = hl__sf_stream(ch->sf);
  char *e[4] = {curl_easy_escape(ch->easy, ch->db, 0), curl_easy_escape(ch->easy, ch->schema, 0),
                curl_easy_escape(ch->easy, ch->pipe, 0), curl_easy_escape(ch->easy, ch->name, 0)};
  int rc = 0;
  if (!e[0] || !e[1] || !e[2] || !e[3]) {
    rc = -ENOMEM;
  } else {
    int n = snprintf(out, cap, "%s/v2/streaming/%sdatabases/%s/schemas/%s/pipes/%s%s%s%s", st->ingest_url,
                     data ? "data/" : "", e[0], e[1], e[2], with_channel ? "/channels/" : "",
                     with_channel ? e[3] : "", suffix ? suffix : "");
    if (n < 0 || (size_t)n >= cap)
      rc = HL_ELIMIT;
  }
  for (int i = 0; i < 4; i++)
    curl_free(e[i]);
  return rc;
}

/* Reads last_committed_offset_token of a channel_status object. */
static int take_status(hl_snowflake_channel *ch, json_t *status) {
  if (!json_is_object(status))
    return HL_EPARSE;
  json_t *t = json_object_get(status, "last_committed_offset_token");
  if (t && !json_is_string(t) && !json_is_null(t))
    return HL_EPARSE;
  char *v = json_is_string(t) ? strdup(json_string_value(t)) : NULL;
  if (json_is_string(t) && !v)
    return -ENOMEM;
  free(ch->committed);
  ch->committed = v;
  return 0;
}

static bool valid_name(const char *s) {
  return s && *s && strlen(s) <= SF_MAX_NAME;
}

int hl_snowflake_channel_open(hl_snowflake *sf, const char *db, const char *schema, const char *pipe,
                              const char *channel, hl_snowflake_channel **out, hl_snowflake_error *err) {
  hl_snowflake_error scratch;
  if (!err)
    err = &scratch;
  memset(err, 0, sizeof *err);
  db = db ? db : hl__sf_database(sf);
  schema = schema ? schema : hl__sf_schema(sf);
  if (!sf || !out || !valid_name(db) || !valid_name(schema) || !valid_name(pipe) || !valid_name(channel))
    return -EINVAL;
  hl_snowflake_channel *ch = calloc(1, sizeof *ch);
  if (!ch)
    return -ENOMEM;
  ch->sf = sf;
  int rc = -ENOMEM;
  sf_resp resp;
  hl_buf_init(&resp.body, 1024 * 1024);
  json_t *j = NULL;
  ch->db = strdup(db);
  ch->schema = strdup(schema);
  ch->pipe = strdup(pipe);
  ch->name = strdup(channel);
  if (!ch->db || !ch->schema || !ch->pipe || !ch->name || !(ch->easy = curl_easy_init()))
    goto fail;
  if (!hl__sf_stream(sf)->ingest_url && (rc = scoped_token(sf, ch->easy, &ch->headers, err)) < 0)
    goto fail;
  char url[4096];
  if ((rc = path_url(ch, url, sizeof url, false, true, NULL)) < 0)
    goto fail;
  if ((rc = request(sf, ch->easy, &ch->headers, "channel", "PUT", url, AUTH_SCOPED, "application/json", NULL, "{}", 2,
                    true, &resp, err)) < 0)
    goto fail;
  rc = HL_EPARSE;
  j = json_loadb(resp.body.data, resp.body.len, 0, NULL);
  const char *cont = json_string_value(json_object_get(j, "next_continuation_token"));
  if (!cont || (rc = take_status(ch, json_object_get(j, "channel_status"))) < 0) {
    snprintf(err->message, sizeof err->message, "unreadable open-channel answer");
    rc = rc < 0 ? rc : HL_EPARSE;
    goto fail;
  }
  if (!(ch->continuation = strdup(cont))) {
    rc = -ENOMEM;
    goto fail;
  }
  json_decref(j);
  hl_buf_free(&resp.body);
  *out = ch;
  return 0;
fail:
  json_decref(j);
  hl_buf_free(&resp.body);
  hl_snowflake_channel_free(ch);
  return rc;
}

const char *hl_snowflake_channel_committed(const hl_snowflake_channel *ch) {
  return ch ? ch->committed : NULL;
}

static int gzip_buf(const char *in, size_t len, hl_buf *out) {
  z_stream z = {0};
  if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) != Z_OK)
    return -ENOMEM;
  uLong bound = deflateBound(&z, (uLong)len);
  int rc = hl_buf_reserve(out, bound + 1);
  if (rc == 0) {
    z.next_in = (Bytef *)in;
    z.avail_in = (uInt)len;
    z.next_out = (Bytef *)out->data + out->len;
    z.avail_out = (uInt)bound;
    rc = deflate(&z, Z_FINISH) == Z_STREAM_END ? 0 : HL_ELIMIT;
    if (rc == 0)
      out->len += z.total_out;
  }
  deflateEnd(&z);
  return rc;
}

int hl_snowflake_channel_append(hl_snowflake_channel *ch, const char *ndjson, size_t len,
                                const char *offset_token, bool gzip, hl_snowflake_error *err) {
  hl_snowflake_error scratch;
  if (!err)
    err = &scratch;
  memset(err, 0, sizeof *err);
  if (!ch || !ndjson || !len)
    return -EINVAL;
  if (len > SF_MAX_APPEND)
    return HL_ELIMIT;
  hl_buf zbody;
  hl_buf_init(&zbody, SF_MAX_APPEND);
  sf_resp resp;
  hl_buf_init(&resp.body, 64 * 1024);
  char *ec = curl_easy_escape(ch->easy, ch->continuation, 0);
  char *eo = offset_token ? curl_easy_escape(ch->easy, offset_token, 0) : NULL;
  json_t *j = NULL;
  int rc = -ENOMEM;
  char url[8192], suffix[4096];
  if (!ec || (offset_token && !eo))
    goto done;
  int n = snprintf(suffix, sizeof suffix, "/rows?continuationToken=%s%s%s", ec, eo ? "&offsetToken=" : "",
                   eo ? eo : "");
  if (n < 0 || (size_t)n >= sizeof suffix) {
    rc = HL_ELIMIT;
    goto done;
  }
  if ((rc = path_url(ch, url, sizeof url, true, true, suffix)) < 0)
    goto done;
  const char *body = ndjson;
  size_t blen = len;
  const char *extra[] = {gzip ? "Content-Encoding: gzip" : NULL, NULL};
  if (gzip) {
    if ((rc = gzip_buf(ndjson, len, &zbody)) < 0)
      goto done;
    body = zbody.data;
    blen = zbody.len;
  }
  /* Not idempotent after a transport error: the rows may have been taken. */
  if ((rc = request(ch->sf, ch->easy, &ch->headers, "rows", "POST", url, AUTH_SCOPED, "application/x-ndjson",
                    gzip ? extra : NULL, body, blen, false, &resp, err)) < 0)
    goto done;
  j = json_loadb(resp.body.data, resp.body.len, 0, NULL);
  const char *cont = json_string_value(json_object_get(j, "next_continuation_token"));
  if (!cont) {
    snprintf(err->message, sizeof err->message, "append answer without next_continuation_token");
    rc = HL_EPARSE;
    goto done;
  }
  char *c = strdup(cont);
  if (!c) {
    rc = -ENOMEM;
    goto done;
  }
  free(ch->continuation);
  ch->continuation = c;
  hl__sf_bytes(ch->sf, len);
  rc = 0;
done:
  json_decref(j);
  curl_free(ec);
  curl_free(eo);
  hl_buf_free(&zbody);
  hl_buf_free(&resp.body);
  return rc;
}

int hl_snowflake_channel_status(hl_snowflake_channel *ch, hl_snowflake_error *err) {
  hl_snowflake_error scratch;
  if (!err)
    err = &scratch;
  memset(err, 0, sizeof *err);
  if (!ch)
    return -EINVAL;
  char url[4096];
  sf_resp resp;
  hl_buf_init(&resp.body, 1024 * 1024);
  json_t *req = json_pack("{s:[s]}", "channel_names", ch->name), *j = NULL;
  char *body = req ? json_dumps(req, JSON_COMPACT) : NULL;
  int rc = -ENOMEM;
  if (!body)
    goto done;
  if ((rc = path_url(ch, url, sizeof url, false, false, ":bulk-channel-status")) < 0)
    goto done;
  if ((rc = request(ch->sf, ch->easy, &ch->headers, "status", "POST", url, AUTH_SCOPED, "application/json", NULL, body,
                    strlen(body), true, &resp, err)) < 0)
    goto done;
  j = json_loadb(resp.body.data, resp.body.len, 0, NULL);
  json_t *st = json_object_get(json_object_get(j, "channel_statuses"), ch->name);
  rc = take_status(ch, st);
  if (rc < 0)
    snprintf(err->message, sizeof err->message, "no status for channel %s", ch->name);
done:
  json_decref(j);
  json_decref(req);
  free(body);
  hl_buf_free(&resp.body);
  return rc;
}

hl_snowflake_channel *hl_snowflake_channel_free(hl_snowflake_channel *ch) {
  if (!ch)
    return NULL;
  if (ch->easy)
    curl_easy_cleanup(ch->easy);
  curl_slist_free_all(ch->headers);
  free(ch->db);
  free(ch->schema);
  free(ch->pipe);
  free(ch->name);
  free(ch->continuation);
  free(ch->committed);
  free(ch);
  return NULL;
}
