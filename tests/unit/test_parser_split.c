#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "hl/buf.h"
#include "hl_test.h"
#include "split.h"

HL_TEST_SUITE(parser_split);

/* Collects everything the splitter reports as one line of text per event. */
typedef struct sink {
  hl_buf log;
  int records, rejects;
} sink;

static int on_record(void *ud, const hl_split_record *r) {
  sink *s = ud;
  s->records++;
  cr_assert_eq(r->type_len, strlen(r->type));
  cr_assert_eq(r->id_len, strlen(r->id));
  hl_buf_printf(&s->log, "R %s/%s line=%llu entry=%ld %.*s\n", r->type, r->id,
                (unsigned long long)r->line, r->entry, (int)r->len, r->json);
  return 0;
}

static int on_reject(void *ud, const hl_split_reject *r) {
  sink *s = ud;
  s->rejects++;
  hl_buf_printf(&s->log, "X %s line=%llu entry=%ld len=%zu | %s\n", r->code,
                (unsigned long long)r->line, r->entry, r->len, r->detail);
  return 0;
}

static const hl_split_cbs cbs = {on_record, on_reject};

/* Splits data fed in chunks of `chunk` bytes (0: all at once). */
static void run(const hl_split_opts *o, const void *data, size_t len, size_t chunk, sink *s) {
  hl_buf_init(&s->log, 0);
  s->records = s->rejects = 0;
  hl_split *sp = NULL;
  cr_assert_eq(hl_split_new(o, &cbs, s, &sp), 0);
  const char *p = data;
  size_t left = len;
  while (left) {
    size_t n = chunk && chunk < left ? chunk : left;
    cr_assert_eq(hl_split_feed(sp, p, n), 0);
    p += n;
    left -= n;
  }
  cr_assert_eq(hl_split_finish(sp), 0);
  const hl_split_stats *st = hl_split_get_stats(sp);
  cr_assert_eq(st->records, (uint64_t)s->records);
  cr_assert_eq(st->rejects, (uint64_t)s->rejects);
  hl_split_free(sp);
}

static bool has(const sink *s, const char *needle) {
  return s->log.data && strstr(s->log.data, needle) != NULL;
}

static const char ndjson[] =
    "{\"resourceType\":\"Patient\",\"id\":\"p1\",\"birthDate\":\"1970-01-01\"}\n"
    "\n"
    "{\"resourceType\":\"Observation\",\"id\":\"o1\",\"valueQuantity\":{\"value\":1.50}}\r\n"
    "{\"resourceType\":\"Patient\",\"id\":\"p2\"\n"           /* line 4: malformed */
    "[1,2,3]\n"                                                /* 5: not an object */
    "{\"id\":\"x\"}\n"                                         /* 6: no resourceType */
    "{\"resourceType\":\"Patient\"}\n"                         /* 7: no id */
    "{\"resourceType\":\"Patient\",\"id\":\"a/b\"}\n"          /* 8: bad id */
    "{\"resourceType\":\"Patient\",\"id\":\"p\xff\"}\n"        /* 9: bad UTF-8 */
    "{\"resourceType\":\"Condition\",\"id\":\"c1\"}\n"         /* 10: good */
    "{\"resourceType\":\"Condition\",\"id\":\"c2\",\"x\":[";   /* 11: truncated, no newline */

Test(parser_split, ndjson_good_and_bad_lines) {
  sink s;
  run(NULL, ndjson, sizeof ndjson - 1, 0, &s);
  cr_assert_eq(s.records, 3, "%s", s.log.data);
  cr_assert_eq(s.rejects, 7, "%s", s.log.data);
  cr_assert(has(&s, "R Patient/p1 line=1 entry=-1 {\"resourceType\""), "%s", s.log.data);
  cr_assert(has(&s, "R Observation/o1 line=3 entry=-1 {\"resourceType\":\"Observation\",\"id\":\"o1\","
                    "\"valueQuantity\":{\"value\":1.50}}\n"),
            "CR stripped, bytes unchanged: %s", s.log.data);
  cr_assert(has(&s, "X truncated line=4 "), "%s", s.log.data);
  cr_assert(has(&s, "X not-a-resource line=5 "));
  cr_assert(has(&s, "X not-a-resource line=6 "));
  cr_assert(has(&s, "X missing-id line=7 "));
  cr_assert(has(&s, "X invalid-id line=8 "));
  cr_assert(has(&s, "X invalid-utf8 line=9 "));
  cr_assert(has(&s, "R Condition/c1 line=10 "));
  cr_assert(has(&s, "X truncated line=11 "), "%s", s.log.data);
  hl_buf_free(&s.log);
}

Test(parser_split, chunking_does_not_matter) {
  sink whole, bytes, odd;
  run(NULL, ndjson, sizeof ndjson - 1, 0, &whole);
  run(NULL, ndjson, sizeof ndjson - 1, 1, &bytes);
  run(NULL, ndjson, sizeof ndjson - 1, 7, &odd);
  cr_assert_str_eq(whole.log.data, bytes.log.data);
  cr_assert_str_eq(whole.log.data, odd.log.data);
  hl_buf_free(&whole.log);
  hl_buf_free(&bytes.log);
  hl_buf_free(&odd.log);
}

Test(parser_split, line_too_long_then_continue) {
  hl_split_opts o = {.format = HL_SPLIT_NDJSON, .max_line_bytes = 64};
  char big[400];
  int n = snprintf(big, sizeof big,
                   "{\"resourceType\":\"Patient\",\"id\":\"ok1\"}\n"
                   "{\"resourceType\":\"Patient\",\"id\":\"big\",\"text\":\"%0150d\"}\n"
                   "{\"resourceType\":\"Patient\",\"id\":\"ok2\"}\n",
                   0);
  for (size_t chunk = 0; chunk < 12; chunk += 5) {
    sink s;
    run(&o, big, (size_t)n, chunk, &s);
    cr_assert_eq(s.records, 2, "chunk %zu: %s", chunk, s.log.data);
    cr_assert_eq(s.rejects, 1);
    cr_assert(has(&s, "X line-too-long line=2 entry=-1 len=64 "), "chunk %zu: %s", chunk, s.log.data);
    cr_assert(has(&s, "R Patient/ok2 line=3 "), "chunk %zu: %s", chunk, s.log.data);
    hl_buf_free(&s.log);
  }
}

static const char bundle[] =
    "{\n"
    "  \"resourceType\": \"Bundle\",\n"
    "  \"type\": \"transaction\",\n"
    "  \"entry\": [\n"
    "    {\"fullUrl\": \"urn:uuid:11111111-2222-3333-4444-555555555555\",\n"
    "     \"resource\": {\"resourceType\": \"Patient\", \"name\": [{\"family\": \"Doe\"}]},\n"
    "     \"request\": {\"method\": \"POST\", \"url\": \"Patient\"}},\n"
    "    {\"fullUrl\": \"urn:uuid:aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee\",\n"
    "     \"resource\": {\"resourceType\": \"Observation\", \"id\": \"obs-1\",\n"
    "       \"subject\": {\"reference\": \"urn:uuid:11111111-2222-3333-4444-555555555555\"},\n"
    "       \"performer\": [{\"reference\" : \"Practitioner/pr-9\"}],\n"
    "       \"valueQuantity\": {\"value\": 7.10, \"unit\": \"%\"}}},\n"
    "    {\"request\": {\"method\": \"DELETE\", \"url\": \"Patient/old\"}},\n"
    "    {\"fullUrl\": \"http://example.org/fhir/Encounter/e-5\",\n"
    "     \"resource\": {\"resourceType\": \"Encounter\",\n"
    "       \"subject\": {\"reference\": \"urn:uuid:11111111-2222-3333-4444-555555555555\"},\n"
    "       \"partOf\": {\"reference\": \"http://example.org/fhir/Encounter/e-5\"}}}\n"
    "  ]\n"
    "}\n";

Test(parser_split, bundle_resolves_urn_uuid_references) {
  hl_split_opts o;
  cr_assert_eq(hl_split_opts_for_name("org=org-1/x/bundle.json", &o), 0);
  cr_assert_eq(o.format, HL_SPLIT_JSON);
  sink s;
  run(&o, bundle, sizeof bundle - 1, 0, &s);
  cr_assert_eq(s.records, 3, "%s", s.log.data);
  cr_assert_eq(s.rejects, 1, "%s", s.log.data);
  cr_assert(has(&s, "R Patient/11111111-2222-3333-4444-555555555555 line=6 entry=0 "
                    "{\"id\":\"11111111-2222-3333-4444-555555555555\",\"resourceType\": \"Patient\""),
            "%s", s.log.data);
  cr_assert(has(&s, "\"subject\": {\"reference\": \"Patient/11111111-2222-3333-4444-555555555555\"}"),
            "%s", s.log.data);
  cr_assert(has(&s, "{\"reference\" : \"Practitioner/pr-9\"}"), "untouched: %s", s.log.data);
  cr_assert(has(&s, "\"value\": 7.10,"), "numbers keep their text: %s", s.log.data);
  cr_assert(has(&s, "X entry-without-resource line=13 entry=2 "), "%s", s.log.data);
  cr_assert(has(&s, "R Encounter/e-5 line=15 entry=3 {\"id\":\"e-5\""), "%s", s.log.data);
  cr_assert(has(&s, "\"partOf\": {\"reference\": \"Encounter/e-5\"}"), "%s", s.log.data);
  hl_buf_free(&s.log);
}

Test(parser_split, bundle_in_ndjson_and_bad_bundles) {
  const char text[] =
      "{\"resourceType\":\"Bundle\",\"type\":\"collection\",\"entry\":[{\"resource\":"
      "{\"resourceType\":\"Patient\",\"id\":\"p9\"}},{\"resource\":[1]}]}\n"
      "{\"resourceType\":\"Bundle\",\"type\":\"document\",\"entry\":[]}\n"
      "{\"resourceType\":\"Bundle\",\"type\":\"batch\"}\n";
  sink s;
  run(NULL, text, sizeof text - 1, 0, &s);
  cr_assert_eq(s.records, 1, "%s", s.log.data);
  cr_assert(has(&s, "R Patient/p9 line=1 entry=0 "), "%s", s.log.data);
  cr_assert(has(&s, "X not-a-resource line=1 entry=1 "), "%s", s.log.data);
  cr_assert(has(&s, "X unsupported-bundle line=2 "), "%s", s.log.data);
  cr_assert_eq(s.rejects, 2);
  hl_buf_free(&s.log);
}

static size_t gz(const char *in, size_t n, unsigned char *out, size_t cap) {
  z_stream z = {0};
  cr_assert_eq(deflateInit2(&z, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY), Z_OK);
  z.next_in = (unsigned char *)in;
  z.avail_in = (unsigned)n;
  z.next_out = out;
  z.avail_out = (unsigned)cap;
  cr_assert_eq(deflate(&z, Z_FINISH), Z_STREAM_END);
  size_t len = cap - z.avail_out;
  deflateEnd(&z);
  return len;
}

Test(parser_split, gzip_members_and_corruption) {
  hl_split_opts o;
  cr_assert_eq(hl_split_opts_for_name("a/b.ndjson.gz", &o), 0);
  cr_assert(o.gzip);
  const char m1[] = "{\"resourceType\":\"Patient\",\"id\":\"g1\"}\n{\"resourceType\":\"Patient\",\"id\":\"g2\"}\n";
  const char m2[] = "{\"resourceType\":\"Patient\",\"id\":\"g3\"}\n{\"resourceType\":\"Patient\",\"id\":\"g4\"}\n";
  const char m3[] = "{\"resourceType\":\"Patient\",\"id\":\"g5\"}\n";
  unsigned char buf[4096];
  size_t a = gz(m1, sizeof m1 - 1, buf, sizeof buf);
  size_t b = gz(m2, sizeof m2 - 1, buf + a, sizeof buf - a);
  size_t c = gz(m3, sizeof m3 - 1, buf + a + b, sizeof buf - a - b);
  sink s;
  run(&o, buf, a + b + c, 0, &s);
  cr_assert_eq(s.records, 5, "three members: %s", s.log.data);
  hl_buf_free(&s.log);
  /* Corrupt the deflate data of the second member: its records are lost as one
     reject, the third member still parses. */
  unsigned char bad[4096];
  memcpy(bad, buf, a + b + c);
  for (size_t i = a + 12; i < a + b - 10; i++)
    bad[i] ^= 0x5a;
  for (size_t chunk = 0; chunk < 20; chunk += 3) {
    run(&o, bad, a + b + c, chunk, &s);
    cr_assert(has(&s, "R Patient/g1 ") && has(&s, "R Patient/g2 "), "%s", s.log.data);
    cr_assert(has(&s, "X corrupt-gzip line=3 "), "chunk %zu: %s", chunk, s.log.data);
    cr_assert(has(&s, "R Patient/g5 "), "resumes at the next member (chunk %zu): %s", chunk,
              s.log.data);
    cr_assert_eq(s.rejects, 1, "chunk %zu: %s", chunk, s.log.data);
    hl_buf_free(&s.log);
  }
  /* A stream cut in the middle of a member. */
  run(&o, buf, a + b / 2, 0, &s);
  cr_assert(has(&s, "X corrupt-gzip "), "%s", s.log.data);
  cr_assert_eq(s.rejects, 1, "%s", s.log.data);
  hl_buf_free(&s.log);
}

Test(parser_split, document_too_large) {
  hl_split_opts o = {.format = HL_SPLIT_JSON, .max_document_bytes = 100};
  sink s;
  run(&o, bundle, sizeof bundle - 1, 9, &s);
  cr_assert_eq(s.records, 0);
  cr_assert_eq(s.rejects, 1);
  cr_assert(has(&s, "X document-too-large line=1 entry=-1 len="), "%s", s.log.data);
  hl_buf_free(&s.log);
}

Test(parser_split, names) {
  hl_split_opts o;
  cr_assert_eq(hl_split_opts_for_name("x.jsonl", &o), 0);
  cr_assert_eq(o.format, HL_SPLIT_NDJSON);
  cr_assert_not(o.gzip);
  cr_assert_eq(hl_split_opts_for_name("x.json.gz", &o), 0);
  cr_assert_eq(o.format, HL_SPLIT_JSON);
  cr_assert_eq(hl_split_opts_for_name("x.csv", &o), -1);
  cr_assert_eq(hl_split_opts_for_name(".gz", &o), -1);
}
