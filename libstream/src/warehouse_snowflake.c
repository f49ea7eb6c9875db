/*
 * The snowflake warehouse backend: RAW rows through Snowpipe Streaming with
 * exactly-once effect, job status through the SQL API. Curated and OMOP
 * tables are dbt's on Snowflake, so a committed row is RAW_ONLY here.
 *
 * Exactly-once follows the snowflake-kafka-connector: one channel per Kafka
 * topic-partition, named "<topic>-<partition>", whose offset token is the
 * Kafka offset of the last row appended. A channel is opened the first
 * time its partition appears in a batch (and again after any failure, or
 * when another holder took it over), and its last committed offset token
 * is read then; rows at or below it are duplicates and are not sent. A
 * commit returns 0 only once every channel it appended to reports a
 * committed offset token at or past its last row, so the loader stores
 * Kafka offsets only for rows Snowflake holds. See docs/snowflake.md.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "hl/buf.h"
#include "hl/log.h"
#include "hl/snowflake.h"
#include "warehouse_internal.h"

#define SF_APPEND_MAX (15u << 20) /* below the 16 MB request cap */
#define SF_CHANNEL_MAX 512

typedef struct sf_chan {
  char *topic; /* NULL: rows without Kafka coordinates */
  int32_t partition;
  char name[300];
  hl_snowflake_channel *ch;
  int64_t committed; /* -1: none */
  int64_t last;      /* last offset appended by this commit, -1 when none */
} sf_chan;

typedef struct sfw {
  hl_snowflake *sf;
  hl_wh_stats *stats;
  char *pipe;
  long long commit_timeout_ms;
  sf_chan *chans;
  size_t nchans, capchans;
  hl_buf nd;
  int64_t last_batch;
} sfw;

/* ---- Helpers -------------------------------------------------------------------- */

static int64_t now_us(void) {
  struct timeval tv;
  gettimeofday(&tv, NULL);
  return (int64_t)tv.tv_sec * 1000000 + tv.tv_usec;
}

static void now_iso(char out[64]) {
  struct timeval tv;
  struct tm tm;
  gettimeofday(&tv, NULL);
  gmtime_r(&tv.tv_sec, &tm);
  snprintf(out, 64, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
           tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(tv.tv_usec / 1000));
}

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* Maps a client error to the warehouse's classes: retry later, or stop. */
static int classify(int rc, const hl_snowflake_error *e, const char *what) {
  char line[700];
  if (hl_log_enabled(HL_LOG_DEBUG))
    hl_log_kv(HL_LOG_DEBUG, "snowflake warehouse call failed", "call", what, "error",
              hl_snowflake_error_str(e, line, sizeof line), NULL);
  if (rc == -ENOMEM)
    return rc;
  if (hl_snowflake_error_retriable(rc, e))
    return HL_WH_EBUSY;
  /* 401 after a fresh token, 403, 404 (no table or pipe), 422: an operator must act. */
  return HL_WH_ESTORAGE;
}

static int64_t parse_offset(const char *tok) {
  if (!tok || !*tok)
    return -1;
  char *end;
  long long v = strtoll(tok, &end, 10);
  return *end || v < 0 ? -1 : (int64_t)v;
}

/* ---- Channels ------------------------------------------------------------------- */

static sf_chan *chan_find(sfw *s, const char *topic, int32_t partition) {
  for (size_t i = 0; i < s->nchans; i++) {
    sf_chan *c = &s->chans[i];
    if (c->partition == partition && ((!c->topic && !topic) || (c->topic && topic && !strcmp(c->topic, topic))))
      return c;
  }
  if (s->nchans == SF_CHANNEL_MAX)
    return NULL;
  if (s->nchans == s->capchans) {
    size_t nc = s->capchans ? 2 * s->capchans : 16;
    sf_chan *n = realloc(s->chans, nc * sizeof(*n));
    if (!n)
      return NULL;
    s->chans = n;
    s->capchans = nc;
  }
  sf_chan *c = &s->chans[s->nchans];
  memset(c, 0, sizeof(*c));
  c->topic = topic ? strdup(topic) : NULL;
  if (topic && !c->topic)
    return NULL;
  c->partition = partition;
  c->committed = -1;
  if (topic)
    snprintf(c->name, sizeof c->name, "%s-%" PRId32, topic, partition);
  else
    snprintf(c->name, sizeof c->name, "hl-no-kafka");
  s->nchans++;
  return c;
}

/* Opens (or reopens) a channel and reads its committed offset token. */
static int chan_open(sfw *s, sf_chan *c) {
  hl_snowflake_error e;
  c->ch = hl_snowflake_channel_free(c->ch);
  int rc = hl_snowflake_channel_open(s->sf, NULL, NULL, s->pipe, c->name, &c->ch, &e);
  if (rc < 0)
    return classify(rc, &e, "channel open");
  c->committed = parse_offset(hl_snowflake_channel_committed(c->ch));
  hl_log_kv(HL_LOG_DEBUG, "snowflake channel opened", "channel", c->name, "committed",
            hl_snowflake_channel_committed(c->ch) ? hl_snowflake_channel_committed(c->ch) : "", NULL);
  return 0;
}

static void chan_drop(sf_chan *c) { c->ch = hl_snowflake_channel_free(c->ch); }

/* ---- Rows ----------------------------------------------------------------------- */

static void put_str(hl_buf *o, const char *key, const char *v, bool first) {
  hl_buf_printf(o, "%s\"%s\":", first ? "" : ",", key);
  if (!v) {
    hl_buf_puts(o, "null");
    return;
  }
  hl_buf_putc(o, '"');
  hl_buf_json_escape(o, v, strlen(v));
  hl_buf_putc(o, '"');
}

/* One NDJSON line: the columns of RAW.FHIR_RESOURCES (keys = column names). */
static int row_json(hl_buf *o, const hl_wh_batch *b, const hl__wh_rec *r, int64_t batch_id) {
  char now[64], hex[65];
  static const char digits[] = "0123456789abcdef";
  for (int i = 0; i < 32; i++) {
    hex[2 * i] = digits[r->key[i] >> 4];
    hex[2 * i + 1] = digits[r->key[i] & 15];
  }
  hex[64] = 0;
  const char *at = hl__wh_str(b, r->ingested_at);
  if (!at || !*at) {
    now_iso(now);
    at = now;
  }
  size_t before = o->len;
  hl_buf_putc(o, '{');
  put_str(o, "tenant", hl__wh_str(b, r->tenant), true);
  put_str(o, "type", hl__wh_str(b, r->type), false);
  put_str(o, "id", hl__wh_str(b, r->id), false);
  put_str(o, "version_id", hl__wh_str(b, r->version_id), false);
  put_str(o, "last_updated", hl__wh_str(b, r->last_updated), false);
  hl_buf_puts(o, ",\"resource\":");
  hl_buf_append(o, hl__wh_str(b, r->json), r->json_len);
  put_str(o, "job", hl__wh_str(b, r->job), false);
  put_str(o, "source", hl__wh_str(b, r->source), false);
  if (r->line >= 0)
    hl_buf_printf(o, ",\"line\":%" PRId64, r->line);
  else
    hl_buf_puts(o, ",\"line\":null");
  put_str(o, "kafka_topic", hl__wh_str(b, r->topic), false);
  if (hl__wh_str(b, r->topic))
    hl_buf_printf(o, ",\"kafka_partition\":%" PRId32 ",\"kafka_offset\":%" PRId64, r->partition, r->offset);
  put_str(o, "ingested_at", at, false);
  hl_buf_printf(o, ",\"batch_id\":%" PRId64, batch_id);
  put_str(o, "dedup_key", hex, false);
  /* A failed append above leaves a partial line: report it once, here. */
  if (hl_buf_puts(o, "}\n") < 0) {
    o->len = before;
    return -ENOMEM;
  }
  return 0;
}

/* Appends o to c as one request whose offset token is last. */
static int append(sfw *s, sf_chan *c, hl_buf *o, int64_t last) {
  char tok[32];
  snprintf(tok, sizeof tok, "%" PRId64, last);
  hl_snowflake_error e;
  int rc = hl_snowflake_channel_append(c->ch, o->data, o->len, c->topic ? tok : NULL, o->len > 4096, &e);
  hl_buf_reset(o);
  if (rc < 0) {
    /* The rows may or may not have been taken: reopen and resume after the committed token. */
    chan_drop(c);
    return classify(rc, &e, "append");
  }
  c->last = last;
  return 0;
}

/*
 * Sends c's rows of the batch above its committed offset token; marks the
 * skipped ones duplicate and the sent ones raw-only (once committed).
 */
static int send_chan(sfw *s, hl_wh_batch *b, sf_chan *c, int64_t batch_id) {
  c->last = -1;
  hl_buf_reset(&s->nd);
  int64_t pend = -1;
  for (size_t i = 0; i < b->n; i++) {
    hl__wh_rec *r = &b->recs[i];
    const char *topic = hl__wh_str(b, r->topic);
    if (r->rejected_at_add || (topic ? !c->topic || strcmp(topic, c->topic) || r->partition != c->partition
                                     : c->topic != NULL))
      continue;
    if (topic && r->offset <= c->committed) {
      r->status = HL_WH_ROW_DUPLICATE;
      continue;
    }
    if (s->nd.len + r->json_len + 4096 > SF_APPEND_MAX && s->nd.len) {
      int rc = append(s, c, &s->nd, pend);
      if (rc < 0)
        return rc;
    }
    int rc = row_json(&s->nd, b, r, batch_id);
    if (rc < 0)
      return rc;
    r->status = HL_WH_ROW_RAW_ONLY;
    pend = r->offset > pend ? r->offset : pend;
  }
  return s->nd.len ? append(s, c, &s->nd, pend) : 0;
}

/* Waits until every channel appended to reports its last offset committed. */
static int wait_committed(sfw *s) {
  int64_t deadline = now_us() + s->commit_timeout_ms * 1000;
  long wait = 20;
  for (;;) {
    bool all = true;
    for (size_t i = 0; i < s->nchans; i++) {
      sf_chan *c = &s->chans[i];
      if (c->last < 0 || !c->topic || c->committed >= c->last)
        continue;
      hl_snowflake_error e;
      int rc = hl_snowflake_channel_status(c->ch, &e);
      if (rc < 0) {
        chan_drop(c);
        return classify(rc, &e, "channel status");
      }
      c->committed = parse_offset(hl_snowflake_channel_committed(c->ch));
      if (c->committed < c->last)
        all = false;
    }
    if (all)
      return 0;
    if (now_us() > deadline) {
      hl_log_kv(HL_LOG_DEBUG, "snowflake channels did not report the batch committed in time", NULL);
      return HL_WH_ESTORAGE;
    }
    sleep_ms(wait);
    wait = wait * 2 > 1000 ? 1000 : wait * 2;
  }
}

/* ---- Job status through the SQL API ------------------------------------------- */

#define JOB_PK " WHERE tenant = ? AND job = ? AND uri = ?"
#define JOB_REJ "parse_rejected + validate_rejected + load_rejected"
#define JOB_STATE                                                                             \
  "CASE WHEN error_code IS NOT NULL THEN 'completed-with-errors' "                            \
  "WHEN parsed = 1 AND loaded + " JOB_REJ " >= received THEN "                                \
  "CASE WHEN " JOB_REJ " > 0 THEN 'completed-with-errors' ELSE 'completed' END "              \
  "WHEN parsed = 1 OR valid > 0 OR loaded > 0 OR " JOB_REJ " > 0 THEN 'processing' "          \
  "ELSE 'accepted' END"

/*
 * Runs one statement with TEXT bindings. rid (may be NULL) is a request id
 * derived from what the statement does, so that a resubmission after a
 * crash answers the first outcome instead of running again.
 */
static int sql(sfw *s, const char *text, const char *const *args, size_t n, const char *rid,
               hl_snowflake_result **out) {
  hl_snowflake_bind binds[16];
  for (size_t i = 0; i < n; i++)
    binds[i] = (hl_snowflake_bind){.type = HL_SF_TEXT, .value = args[i]};
  hl_snowflake_stmt st = {.sql = text, .binds = binds, .nbinds = n, .request_id = rid};
  hl_snowflake_error e;
  int rc = hl_snowflake_exec(s->sf, &st, out, &e);
  return rc < 0 ? classify(rc, &e, "statement") : 0;
}

/* A UUID (v4 layout) from the SHA-256 of a text: the same text, the same request id. */
static void uuid_of(const char *text, char out[37]) {
  char hex[65];
  hl__wh_sha256_hex(text, strlen(text), hex);
  hex[12] = '4';
  hex[16] = "89ab"[hex[16] % 4];
  snprintf(out, 37, "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12, hex + 16, hex + 20);
}

static int job_ensure(sfw *s, const char *t, const char *j, const char *u) {
  const char *a[] = {t, j, u, t, j, u};
  return sql(s,
             "INSERT INTO RAW.JOBS (tenant, job, uri, state, created_at, updated_at) "
             "SELECT ?, ?, ?, 'accepted', CURRENT_TIMESTAMP(), CURRENT_TIMESTAMP() WHERE NOT EXISTS "
             "(SELECT 1 FROM RAW.JOBS" JOB_PK ")",
             a, 6, NULL, NULL);
}

static int job_recompute(sfw *s, const char *t, const char *j, const char *u) {
  const char *a[] = {t, j, u};
  return sql(s,
             "UPDATE RAW.JOBS SET rejected = " JOB_REJ ", state = " JOB_STATE
             ", updated_at = CURRENT_TIMESTAMP()" JOB_PK " AND (rejected <> " JOB_REJ " OR state <> " JOB_STATE ")",
             a, 3, NULL, NULL);
}

/*
 * The loader's counts of an object, recomputed from RAW and LOAD_REJECT
 * (idempotent: a replay or a crash between the append and this statement
 * leaves the same numbers once a later commit touches the object again).
 */
static int job_loaded(sfw *s, const char *t, const char *j, const char *u) {
  const char *a[] = {t, j, u, t, j, u, t, j, u};
  return sql(s,
             "UPDATE RAW.JOBS SET loaded = (SELECT COUNT(DISTINCT dedup_key) FROM RAW.FHIR_RESOURCES r "
             "WHERE r.tenant = ? AND r.job = ? AND r.source = ?), load_rejected = (SELECT COUNT(*) FROM "
             "RAW.LOAD_REJECT x WHERE x.tenant = ? AND x.job = ? AND x.source = ?), "
             "updated_at = CURRENT_TIMESTAMP()" JOB_PK,
             a, 9, NULL, NULL);
}

static int fold_event(sfw *s, const hl__wh_event *ev) {
  const char *t = ev->org, *j = ev->job, *u = ev->uri;
  int rc = job_ensure(s, t, j, u);
  if (rc < 0)
    return rc;
  char em[24], rj[24], rid[37], key[2400];
  snprintf(em, sizeof em, "%lld", ev->emitted > 0 ? ev->emitted : 0);
  snprintf(rj, sizeof rj, "%lld", ev->rejected > 0 ? ev->rejected : 0);
  const char *code = ev->code[0] ? ev->code : ev->failed ? "failed" : NULL;
  const char *detail = ev->detail[0] ? ev->detail : NULL;
  if (ev->stage == HL__WH_PARSE) {
    char rcv[24];
    snprintf(rcv, sizeof rcv, "%lld", ev->received >= 0 ? ev->received : (ev->emitted > 0 ? ev->emitted : 0) +
                                                                           (ev->rejected > 0 ? ev->rejected : 0));
    const char *a[] = {rcv, rj, t, j, u};
    rc = sql(s, "UPDATE RAW.JOBS SET parsed = 1, received = ?, parse_rejected = ?, updated_at = "
                "CURRENT_TIMESTAMP()" JOB_PK, a, 5, NULL, NULL);
  } else if (ev->stage == HL__WH_VALIDATE || ev->stage == HL__WH_LOAD) {
    /*
     * Increments, once per event id: the update is guarded by the seen
     * table and its request id is derived from the event, so a
     * resubmission after a crash between the two statements does not run
     * it again (Snowflake answers a retried requestId with its first outcome).
     */
    const char *col = ev->stage == HL__WH_VALIDATE ? "valid" : "loaded";
    const char *rcol = ev->stage == HL__WH_VALIDATE ? "validate_rejected" : "load_rejected";
    char q[512];
    snprintf(q, sizeof q,
             "UPDATE RAW.JOBS SET %s = %s + ?, %s = %s + ?, updated_at = CURRENT_TIMESTAMP()" JOB_PK
             " AND NOT EXISTS (SELECT 1 FROM RAW.JOB_EVENT_SEEN WHERE event_id = ?)",
             col, col, rcol, rcol);
    const char *a[] = {em, rj, t, j, u, ev->event_id};
    snprintf(key, sizeof key, "hl-job-event-fold:%s", ev->event_id);
    uuid_of(key, rid);
    if ((rc = sql(s, q, a, 6, rid, NULL)) < 0)
      return rc;
    const char *b2[] = {ev->event_id, ev->event_id};
    snprintf(key, sizeof key, "hl-job-event-seen:%s", ev->event_id);
    uuid_of(key, rid);
    rc = sql(s, "INSERT INTO RAW.JOB_EVENT_SEEN (event_id, applied_at) SELECT ?, CURRENT_TIMESTAMP() "
                "WHERE NOT EXISTS (SELECT 1 FROM RAW.JOB_EVENT_SEEN WHERE event_id = ?)", b2, 2, rid, NULL);
  }
  if (rc == 0 && ev->failed) {
    const char *a[] = {code, detail, t, j, u};
    rc = sql(s, "UPDATE RAW.JOBS SET error_code = ?, error_detail = ?" JOB_PK, a, 5, NULL, NULL);
  }
  return rc < 0 ? rc : job_recompute(s, t, j, u);
}

/* Records a row rejected at add in LOAD_REJECT, once per dedup key. */
static int record_reject(sfw *s, const hl_wh_batch *b, const hl__wh_rec *r, int64_t batch_id) {
  char hex[65], line[24], bid[24];
  static const char digits[] = "0123456789abcdef";
  for (int i = 0; i < 32; i++) {
    hex[2 * i] = digits[r->key[i] >> 4];
    hex[2 * i + 1] = digits[r->key[i] & 15];
  }
  hex[64] = 0;
  snprintf(line, sizeof line, "%" PRId64, r->line);
  snprintf(bid, sizeof bid, "%" PRId64, batch_id);
  const char *t = hl__wh_str(b, r->tenant);
  const char *a[] = {hex, t ? t : "", hl__wh_str(b, r->type), hl__wh_str(b, r->id), hl__wh_str(b, r->job),
                     hl__wh_str(b, r->source), r->line >= 0 ? line : NULL, r->code ? r->code : "rejected",
                     hl__wh_str(b, r->detail), bid, hex};
  return sql(s,
             "INSERT INTO RAW.LOAD_REJECT (dedup_key, tenant, type, id, job, source, line, code, detail, "
             "batch_id, rejected_at) SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, CURRENT_TIMESTAMP() WHERE NOT EXISTS "
             "(SELECT 1 FROM RAW.LOAD_REJECT WHERE dedup_key = ?)",
             a, 11, NULL, NULL);
}

/* Recomputes the job rows of every (tenant, job, source) of the batch's rows. */
static int update_jobs(sfw *s, hl_wh_batch *b) {
  for (size_t i = 0; i < b->n; i++) {
    const hl__wh_rec *r = &b->recs[i];
    const char *t = hl__wh_str(b, r->tenant), *j = hl__wh_str(b, r->job), *u = hl__wh_str(b, r->source);
    if (!t || !j || !*j)
      continue;
    bool seen = false;
    for (size_t k = 0; k < i && !seen; k++) {
      const hl__wh_rec *p = &b->recs[k];
      const char *pt = hl__wh_str(b, p->tenant), *pj = hl__wh_str(b, p->job), *pu = hl__wh_str(b, p->source);
      seen = pt && pj && !strcmp(pt, t) && !strcmp(pj, j) && !strcmp(pu ? pu : "", u ? u : "");
    }
    if (seen)
      continue;
    int rc;
    if ((rc = job_ensure(s, t, j, u ? u : "")) < 0 || (rc = job_loaded(s, t, j, u ? u : "")) < 0 ||
        (rc = job_recompute(s, t, j, u ? u : "")) < 0)
      return rc;
  }
  return 0;
}

/* ---- The backend ---------------------------------------------------------------- */

static int sfw_commit(void *state, hl_wh_batch *b) {
  sfw *s = state;
  int64_t batch_id = now_us();
  if (batch_id <= s->last_batch)
    batch_id = s->last_batch + 1;
  s->last_batch = batch_id;
  int rc = 0;
  /* Channels of the batch, opened when first seen or after a failure. */
  for (size_t i = 0; i < b->n && rc == 0; i++) {
    hl__wh_rec *r = &b->recs[i];
    if (r->rejected_at_add)
      continue;
    sf_chan *c = chan_find(s, hl__wh_str(b, r->topic), r->partition);
    if (!c)
      rc = -ENOMEM;
    else if (!c->ch)
      rc = chan_open(s, c);
  }
  for (size_t i = 0; i < s->nchans; i++)
    s->chans[i].last = -1;
  for (size_t i = 0; i < s->nchans && rc == 0; i++) {
    sf_chan *c = &s->chans[i];
    if (!c->ch)
      continue;
    rc = send_chan(s, b, c, batch_id);
    if (rc == HL_WH_ESTORAGE && !c->ch) {
      /* Another holder reopened the channel (a rebalance): take it back and resume once. */
      if ((rc = chan_open(s, c)) == 0)
        rc = send_chan(s, b, c, batch_id);
    }
  }
  if (rc == 0)
    rc = wait_committed(s);
  for (size_t i = 0; i < b->n && rc == 0; i++)
    if (b->recs[i].rejected_at_add)
      rc = record_reject(s, b, &b->recs[i], batch_id);
  if (rc == 0)
    rc = update_jobs(s, b);
  for (size_t i = 0; i < b->nevents && rc == 0; i++) {
    hl__wh_event ev;
    if (hl__wh_event_parse(b->arena.data + b->events[i], b->event_lens[i], &ev) < 0) {
      b->events_skipped++;
      continue;
    }
    if ((rc = fold_event(s, &ev)) == 0)
      b->events_folded++;
  }
  if (rc < 0) {
    if (rc == HL_WH_ESTORAGE)
      s->stats->storage_errors++;
    else if (rc == HL_WH_EBUSY)
      s->stats->busy_failures++;
    return rc;
  }
  b->batch_id = batch_id;
  return 0;
}

static int sfw_open(const hl_wh_opts *o, const hl__wh_contract *c, hl_wh_stats *stats, void **state,
                    char *err, size_t errlen) {
  (void)c;
  if (!o->snowflake.account || !*o->snowflake.account || !o->snowflake.user || !*o->snowflake.user ||
      ((!o->snowflake.private_key_file || !*o->snowflake.private_key_file) && !o->snowflake.private_key_pem)) {
    snprintf(err, errlen, "snowflake warehouse: HL_SNOWFLAKE_ACCOUNT, HL_SNOWFLAKE_USER and "
                          "HL_SNOWFLAKE_PRIVATE_KEY_FILE are required");
    return HL_ECONFIG;
  }
  sfw *s = calloc(1, sizeof(*s));
  if (!s)
    return -ENOMEM;
  s->stats = stats;
  s->commit_timeout_ms = o->sf_commit_timeout_ms > 0 ? o->sf_commit_timeout_ms : 60000;
  hl_buf_init(&s->nd, SF_APPEND_MAX + (64u << 20));
  s->pipe = strdup(o->sf_pipe && *o->sf_pipe ? o->sf_pipe : "FHIR_RESOURCES_STREAM");
  int rc = s->pipe ? hl_snowflake_new(&o->snowflake, &s->sf, err, errlen) : -ENOMEM;
  if (rc < 0) {
    free(s->pipe);
    hl_buf_free(&s->nd);
    free(s);
    return rc;
  }
  *state = s;
  return 0;
}

static void sfw_close(void *state) {
  sfw *s = state;
  for (size_t i = 0; i < s->nchans; i++) {
    hl_snowflake_channel_free(s->chans[i].ch);
    free(s->chans[i].topic);
  }
  free(s->chans);
  hl_buf_free(&s->nd);
  hl_snowflake_free(s->sf);
  free(s->pipe);
  free(s);
}

static int sfw_job_get(void *state, const char *tenant, const char *job, const char *uri, hl_wh_job *out) {
  sfw *s = state;
  const char *a[] = {tenant, job, uri};
  hl_snowflake_result *res = NULL;
  int rc = sql(s,
               "SELECT state, received, valid, rejected, loaded, parse_rejected, validate_rejected, "
               "load_rejected, parsed, updated_at FROM RAW.JOBS" JOB_PK,
               a, 3, NULL, &res);
  if (rc < 0)
    return rc;
  if (hl_snowflake_result_rows(res) == 0) {
    hl_snowflake_result_free(res);
    return HL_ENOTFOUND;
  }
  memset(out, 0, sizeof(*out));
  const char *v;
  uint64_t *nums[] = {&out->received, &out->valid, &out->rejected, &out->loaded,
                      &out->parse_rejected, &out->validate_rejected, &out->load_rejected};
  snprintf(out->state, sizeof out->state, "%s", (v = hl_snowflake_result_str(res, 0, 0)) ? v : "");
  for (size_t i = 0; i < 7; i++)
    *nums[i] = (v = hl_snowflake_result_str(res, 0, i + 1)) ? strtoull(v, NULL, 10) : 0;
  out->parsed = (v = hl_snowflake_result_str(res, 0, 8)) && strcmp(v, "0");
  snprintf(out->updated_at, sizeof out->updated_at, "%s", (v = hl_snowflake_result_str(res, 0, 9)) ? v : "");
  hl_snowflake_result_free(res);
  return 0;
}

static int sfw_get(void *state, const char *table, const char *tenant, const char *id, char **json,
                   size_t *len, char *version, size_t version_len) {
  /* Curated reads are hl-api-gateway's (store_snowflake.c) over dbt's tables. */
  (void)state, (void)table, (void)tenant, (void)id, (void)json, (void)len, (void)version, (void)version_len;
  return -ENOTSUP;
}

static int sfw_checksum(void *state, const char *table, char hex[65]) {
  (void)state, (void)table, (void)hex;
  return -ENOTSUP;
}

static int sfw_count_rows(void *state, const char *table, int64_t *n) {
  sfw *s = state;
  char q[160];
  /* "raw" is RAW.FHIR_RESOURCES; the other RAW tables keep their names. */
  snprintf(q, sizeof q, "SELECT COUNT(*) FROM RAW.%s", !strcmp(table, "raw") ? "FHIR_RESOURCES" : table);
  hl_snowflake_result *res = NULL;
  int rc = sql(s, q, NULL, 0, NULL, &res);
  if (rc == 0) {
    const char *v = hl_snowflake_result_str(res, 0, 0);
    *n = v ? strtoll(v, NULL, 10) : 0;
  }
  hl_snowflake_result_free(res);
  return rc;
}

const hl__wh_backend hl__wh_snowflake = {
    .name = "snowflake",
    .open = sfw_open,
    .close = sfw_close,
    .commit = sfw_commit,
    .job_get = sfw_job_get,
    .get = sfw_get,
    .checksum = sfw_checksum,
    .count_rows = sfw_count_rows,
};
