/*
 * What every read-side backend shares (store.h): the row layout, the
 * result's release, and the job document built from the jobs and
 * load_reject rows, so that SQLite and Snowflake answer a job alike.
 */
#include "store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hl/error.h"

int hl_api_row_set(hl_api_row *r, const char *const v[6], const size_t n[6], bool key_is_int,
                   int64_t key_int) {
  memset(r, 0, sizeof *r);
  size_t total = 0;
  for (int i = 0; i < 6; i++)
    total += (v[i] ? n[i] : 0) + 1;
  char *block = malloc(total);
  if (!block)
    return -ENOMEM;
  char *p = block;
  char *out[6];
  for (int i = 0; i < 6; i++) {
    size_t len = v[i] ? n[i] : 0;
    out[i] = p;
    if (len)
      memcpy(p, v[i], len);
    p[len] = '\0';
    p += len + 1;
  }
  r->id = out[0];
  r->version = out[1];
  r->last_updated = out[2];
  r->json = out[3];
  r->json_len = v[3] ? n[3] : 0;
  r->key_is_int = key_is_int;
  if (key_is_int)
    r->key_int = key_int;
  else
    r->key_text = out[4];
  if (v[5])
    r->patient = out[5];
  return 0;
}

void hl_api_row_clear(hl_api_row *r) {
  free(r->id); /* the block of every string of the row */
  memset(r, 0, sizeof *r);
}

void hl_api_result_clear(hl_api_result *r) {
  for (size_t i = 0; i < r->nrows; i++)
    hl_api_row_clear(&r->rows[i]);
  for (size_t i = 0; i < r->nincluded; i++)
    hl_api_row_clear(&r->included[i]);
  free(r->rows);
  free(r->included);
  memset(r, 0, sizeof *r);
}

/* ---- Job documents ------------------------------------------------------------------------ */

static const char *const job_counts[HL_API_JOB_NCOUNTS] = {
    "received", "valid", "rejected", "loaded", "parse_rejected", "validate_rejected", "load_rejected"};

/* The job's state is the least advanced of its objects' states. */
static const char *const state_rank[] = {"completed", "completed-with-errors", "processing", "accepted"};

static int rank(const char *st) {
  for (int i = 0; i < 4; i++)
    if (st && !strcmp(st, state_rank[i]))
      return i;
  return 2;
}

void hl_api_job_doc_begin(hl_api_job_doc *d, json_t *job) {
  memset(d, 0, sizeof *d);
  d->job = job;
}

void hl_api_job_doc_object(hl_api_job_doc *d, const char *uri, const char *state,
                           const long long counts[HL_API_JOB_NCOUNTS], const char *error_code,
                           const char *error_detail, const char *updated_at) {
  json_t *ob = json_pack("{s:s?, s:s?}", "uri", uri, "state", state);
  if (!ob)
    return;
  for (int k = 0; k < HL_API_JOB_NCOUNTS; k++) {
    d->totals[k] += counts[k];
    json_object_set_new(ob, job_counts[k], json_integer(counts[k]));
  }
  if (error_code)
    json_object_set_new(ob, "error", json_pack("{s:s, s:s?}", "code", error_code, "detail", error_detail));
  if (updated_at && strcmp(updated_at, d->updated) > 0)
    snprintf(d->updated, sizeof d->updated, "%s", updated_at);
  int r = rank(state);
  if (r > d->worst)
    d->worst = r;
  json_array_append_new(json_object_get(d->job, "objects"), ob);
  d->nobjects++;
}

int hl_api_job_doc_end(hl_api_job_doc *d) {
  if (d->nobjects == 0)
    return HL_ENOTFOUND;
  json_object_set_new(d->job, "state", json_string(state_rank[d->worst]));
  for (int k = 0; k < HL_API_JOB_NCOUNTS; k++)
    json_object_set_new(d->job, job_counts[k], json_integer(d->totals[k]));
  json_object_set_new(d->job, "updated_at", json_string(d->updated));
  return 0;
}

json_t *hl_api_job_rejection(const char *type, const char *id, const char *source, long long line,
                             const char *code, const char *detail) {
  return json_pack("{s:s, s:[{s:s, s:s, s:{s:s}, s:s?}], s:{s:s?, s:s?, s:s?, s:I}}", "resourceType",
                   "OperationOutcome", "issue", "severity", "error", "code", "invalid", "details", "text", code,
                   "diagnostics", detail, "record", "type", type, "id", id, "source", source, "line",
                   (json_int_t)line);
}

/* ---- Pages ------------------------------------------------------------------------------ */

int hl_api_page_begin(hl_api_result *res, const hl_api_search *q) {
  res->rows = calloc((size_t)q->count + 1, sizeof *res->rows);
  return res->rows ? 0 : -ENOMEM;
}

bool hl_api_page_full(hl_api_result *res, const hl_api_search *q) {
  if (res->nrows < (size_t)q->count)
    return false;
  if (q->cursor.dir < 0)
    res->more_before = true;
  else
    res->more_after = true;
  return true;
}

void hl_api_page_end(hl_api_result *res, const hl_api_search *q) {
  if (q->cursor.dir < 0) {
    for (size_t i = 0; i < res->nrows / 2; i++) {
      hl_api_row tmp = res->rows[i];
      res->rows[i] = res->rows[res->nrows - 1 - i];
      res->rows[res->nrows - 1 - i] = tmp;
    }
    res->more_after = true;
  } else if (q->cursor.dir > 0) {
    res->more_before = true;
  }
}
