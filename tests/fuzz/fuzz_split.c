/*
 * libFuzzer target for hl-parser's splitter: the first byte picks the
 * format, gzip and a chunk size; the rest is fed as the object. Checks the
 * splitter's own invariants: every callback's bytes lie inside what it was
 * given, and records + rejects are counted consistently.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hl/jscan.h"
#include "split.h"

/*
 * The tape of a valid document: node 0 spans it all, every value lies in
 * the input, its members or elements (reached by next) lie inside it in
 * byte order, and a member's key comes before its value.
 */
static void check_tape(const hl_jscan_node *t, size_t n, size_t len) {
  if (n == 0 || t[0].next != n)
    abort();
  for (size_t i = 0; i < n; i++) {
    if (t[i].start >= t[i].end || t[i].end > len || t[i].next <= i || t[i].next > n)
      abort();
    if (t[i].klen && (size_t)t[i].key + t[i].klen >= t[i].start)
      abort();
    uint32_t at = t[i].start;
    for (size_t c = i + 1; c < t[i].next; c = t[c].next) {
      if (t[c].start <= at || t[c].end >= t[i].end || t[c].next <= c)
        abort();
      at = t[c].end - 1;
    }
  }
}

static int on_record(void *ud, const hl_split_record *r) {
  (void)ud;
  /* A record is always a valid JSON object. */
  hl_jscan_result res;
  if (hl_jscan(r->json, r->len, 0, NULL, 0, &res) != 0 || res.top != HL_JSCAN_OBJECT)
    abort();
  static hl_jscan_node nodes[4096];
  hl_jscan_tape tape = {nodes, sizeof nodes / sizeof nodes[0], 0};
  if (hl_jscan_build_tape(r->json, r->len, 0, NULL, 0, &tape, &res) != 0)
    abort();
  if (tape.n <= tape.cap)
    check_tape(nodes, tape.n, r->len);
  /*
   * And jansson agrees (big integers are read as reals, \u0000 is
   * allowed), except on reals beyond a double's range (1e400), which JSON
   * allows and jansson refuses.
   */
  json_error_t je;
  json_t *j = json_loadb(r->json, r->len, JSON_ALLOW_NUL | JSON_DECODE_INT_AS_REAL, &je);
  if (!j && strstr(je.text, "overflow"))
    return 0;
  if (!json_is_object(j))
    abort();
  json_decref(j);
  if (!r->type[0] || !r->id[0] || r->type_len != strlen(r->type) || r->id_len != strlen(r->id))
    abort();
  return 0;
}

static int on_reject(void *ud, const hl_split_reject *r) {
  (void)ud;
  if (!r->code || !r->detail || (r->len && !r->raw))
    abort();
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1)
    return 0;
  hl_split_opts o = {.format = (data[0] & 1) ? HL_SPLIT_JSON : HL_SPLIT_NDJSON,
                     .gzip = (data[0] & 2) != 0,
                     .max_line_bytes = 256,
                     .max_document_bytes = 4096};
  size_t chunk = 1 + (data[0] >> 2);
  hl_split_cbs cbs = {on_record, on_reject};
  hl_split *sp = NULL;
  if (hl_split_new(&o, &cbs, NULL, &sp) != 0)
    return 0;
  data++;
  size--;
  while (size) {
    size_t n = size < chunk ? size : chunk;
    hl_split_feed(sp, data, n);
    data += n;
    size -= n;
  }
  hl_split_finish(sp);
  const hl_split_stats *st = hl_split_get_stats(sp);
  if (st->bytes_in > 0 && st->records + st->rejects > st->bytes_in * 64)
    abort();
  hl_split_free(sp);
  return 0;
}
