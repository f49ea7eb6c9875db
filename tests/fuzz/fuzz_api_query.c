/*
 * libFuzzer target for hl-api-gateway's query-string and search-parameter
 * parser: the first byte picks the resource type, the rest is a raw query
 * string. Checks the parser's invariants: parsed pairs are NUL-free and
 * within their caps, a search has at most one clause per pair, every
 * clause has 1..HL_API_MAX_VALUES values, date ranges are non-empty, the
 * page size is within bounds, and a cursor survives an encode/parse round trip.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fhirtypes.h"
#include "query.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1 || size > 16384)
    return 0;
  const hl_api_type_def *t = &hl_api_types[data[0] % hl_api_ntypes];
  const char *raw = (const char *)data + 1;
  size_t len = size - 1;
  hl_api_query q;
  char err[256];
  if (hl_api_query_parse(raw, len, &q, err, sizeof err) < 0)
    return 0;
  if (q.n > HL_API_MAX_PARAMS)
    abort();
  for (size_t i = 0; i < q.n; i++)
    if (!q.kv[i].name[0] || strlen(q.kv[i].value) > HL_API_MAX_VALUE_BYTES)
      abort();
  hl_api_search_opts o = {20, 100};
  hl_api_search s;
  if (hl_api_search_parse(t, &q, &o, &s, err, sizeof err) == 0) {
    if (s.nclauses > q.n || s.count < 1 || s.count > 100)
      abort();
    for (size_t i = 0; i < s.nclauses; i++) {
      const hl_api_clause *c = &s.clauses[i];
      if (c->nvalues < 1 || c->nvalues > HL_API_MAX_VALUES || !c->def)
        abort();
      for (size_t k = 0; k < c->nvalues; k++) {
        const hl_api_value *v = &c->values[k];
        if (c->modifier != HL_MOD_MISSING && c->def->kind == HL_SP_DATE && v->hi <= v->lo)
          abort();
        if (c->modifier != HL_MOD_MISSING && c->def->kind == HL_SP_REFERENCE && !hl_api_valid_id(v->text))
          abort();
      }
    }
    if (s.cursor.dir) {
      char enc[2048], again[2100];
      if (hl_api_cursor_encode(s.cursor.dir, s.cursor.key_is_int, s.cursor.key_int, s.cursor.key_text, s.cursor.id,
                               enc, sizeof enc) == 0) {
        snprintf(again, sizeof again, "%s_cursor=%s", s.sort ? (s.sort->kind == HL_SP_DATE ? "_sort=_lastUpdated&" : "_sort=family&") : "", enc);
        hl_api_query q2;
        hl_api_search s2;
        const hl_api_type_def *pt = hl_api_type_find("Patient");
        if (hl_api_query_parse(again, strlen(again), &q2, err, sizeof err) != 0)
          abort();
        if (hl_api_search_parse(pt, &q2, &o, &s2, err, sizeof err) != 0 || s2.cursor.dir != s.cursor.dir ||
            strcmp(s2.cursor.id, s.cursor.id) ||
            (s.cursor.key_is_int ? s2.cursor.key_int != s.cursor.key_int : strcmp(s2.cursor.key_text, s.cursor.key_text)))
          abort();
        hl_api_search_clear(&s2);
        hl_api_query_clear(&q2);
      }
    }
    hl_api_search_clear(&s);
  }
  hl_api_query_clear(&q);
  return 0;
}
