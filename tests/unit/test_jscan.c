#include <jansson.h>
#include <stdint.h>
#include <string.h>

#include "hl/error.h"
#include "hl/jscan.h"
#include "hl_test.h"

HL_TEST_SUITE(jscan);

static hl_jscan_error check(const char *s) {
  hl_jscan_result r;
  int rc = hl_jscan(s, strlen(s), 0, NULL, 0, &r);
  cr_assert_eq(rc == 0, r.error == HL_JSCAN_OK);
  return r.error;
}

Test(jscan, valid_documents) {
  const char *ok[] = {
      "{}", "[]", " {\"a\":1} ", "\"x\"", "0", "-0.5e+10", "true", "false", "null",
      "{\"a\":[1,2,{\"b\":null}],\"c\":\"\\u00e9\\ud83d\\ude00\\n\"}", "[[[[]]]]",
      "\"h\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"", "1E5", "[-1,0.0,2e-3]",
  };
  for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
    cr_assert_eq(check(ok[i]), HL_JSCAN_OK, "rejected %s", ok[i]);
}

Test(jscan, invalid_documents_and_kinds) {
  struct { const char *s; hl_jscan_error e; } bad[] = {
      {"", HL_JSCAN_EEMPTY},
      {"  \n", HL_JSCAN_EEMPTY},
      {"{", HL_JSCAN_ETRUNCATED},
      {"{\"a\":1", HL_JSCAN_ETRUNCATED},
      {"{\"a\":\"abc", HL_JSCAN_ETRUNCATED},
      {"[1,2", HL_JSCAN_ETRUNCATED},
      {"tru", HL_JSCAN_ETRUNCATED},
      {"{\"a\" 1}", HL_JSCAN_ESYNTAX},
      {"{a:1}", HL_JSCAN_ESYNTAX},
      {"[1,]", HL_JSCAN_ESYNTAX},
      {"{\"a\":1,}", HL_JSCAN_ESYNTAX},
      {"01", HL_JSCAN_ESYNTAX},
      {"1.", HL_JSCAN_ETRUNCATED},
      {"1.e5", HL_JSCAN_ESYNTAX},
      {"+1", HL_JSCAN_ESYNTAX},
      {"{} {}", HL_JSCAN_ESYNTAX},
      {"\"a\tb\"", HL_JSCAN_ESYNTAX},
      {"\"\\x\"", HL_JSCAN_ESYNTAX},
      {"\"\\u12g4\"", HL_JSCAN_ESYNTAX},
      {"nul", HL_JSCAN_ETRUNCATED},
      {"nulx", HL_JSCAN_ESYNTAX},
      {"\"\xff\"", HL_JSCAN_EUTF8},
      {"\"\xc0\xaf\"", HL_JSCAN_EUTF8},
      {"\"\xe0\x80\xaf\"", HL_JSCAN_EUTF8},
      {"\"\xed\xa0\x80\"", HL_JSCAN_EUTF8},
      {"\"\xf4\x90\x80\x80\"", HL_JSCAN_EUTF8},
      {"\"\xc3\"", HL_JSCAN_EUTF8},
      {"\"\\ud800\"", HL_JSCAN_EUTF8},
      {"\"\\udc00\"", HL_JSCAN_EUTF8},
      {"\"\\ud800\\u0041\"", HL_JSCAN_EUTF8},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    hl_jscan_error e = check(bad[i].s);
    cr_assert_eq(e, bad[i].e, "case %zu '%s': got %s, want %s", i, bad[i].s,
                 hl_jscan_error_name(e), hl_jscan_error_name(bad[i].e));
  }
}

Test(jscan, depth_limit) {
  char deep[600];
  memset(deep, '[', 300);
  memset(deep + 300, ']', 300);
  hl_jscan_result r;
  cr_assert_eq(hl_jscan(deep, 600, 0, NULL, 0, &r), 0);
  cr_assert_eq(hl_jscan(deep, 600, 100, NULL, 0, &r), HL_EPARSE);
  cr_assert_eq(r.error, HL_JSCAN_EDEPTH);
  cr_assert_eq(r.offset, 100);
}

Test(jscan, top_level_fields) {
  const char *s = "{\"meta\":{\"id\":\"inner\"},\"resourceType\":\"Patient\",\"id\":\"p-1\","
                  "\"name\":[{\"family\":\"x\"}],\"active\":true,\"esc\":\"a\\\"b\"}";
  hl_jscan_field f[] = {{.key = "resourceType"}, {.key = "id"}, {.key = "name"},
                        {.key = "active"}, {.key = "esc"}, {.key = "absent"}};
  hl_jscan_result r;
  cr_assert_eq(hl_jscan(s, strlen(s), 0, f, 6, &r), 0);
  cr_assert_eq(r.top, HL_JSCAN_OBJECT);
  cr_assert_eq(f[0].kind, HL_JSCAN_STRING);
  cr_assert_eq(f[0].len, 7);
  cr_assert(memcmp(f[0].val, "Patient", 7) == 0);
  cr_assert_eq(f[1].len, 3, "the top-level id, not meta.id");
  cr_assert(memcmp(f[1].val, "p-1", 3) == 0);
  cr_assert_eq(f[2].kind, HL_JSCAN_ARRAY);
  cr_assert_eq(f[3].kind, HL_JSCAN_TRUE);
  cr_assert(f[4].escaped);
  cr_assert_eq(f[5].kind, HL_JSCAN_NONE);
}

/* xorshift for reproducible mutations. */
static uint64_t rng = 0x9e3779b97f4a7c15ULL;
static uint64_t next(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}

/*
 * Differential check against jansson on thousands of mutations of a FHIR
 * resource: both must agree on valid/invalid. jansson rejects \u0000 unless
 * told, and rejects integers that overflow; mutations avoid digits so the
 * latter cannot arise, and JSON_ALLOW_NUL covers the former.
 */
Test(jscan, agrees_with_jansson) {
  const char *base =
      "{\"resourceType\":\"Observation\",\"id\":\"o1\",\"status\":\"final\",\"code\":{\"coding\":"
      "[{\"system\":\"http://loinc.org\",\"code\":\"4548-4\",\"display\":\"Hemoglobin A1c\"}]},"
      "\"valueQuantity\":{\"value\":6.4,\"unit\":\"%\"},\"note\":[{\"text\":\"caf\xc3\xa9 \\u00e9\"}],"
      "\"flag\":[true,false,null]}";
  const char alphabet[] = "{}[]\":,\\ u\x80\xc3\xa9\xff\x01tfn.-eE";
  size_t blen = strlen(base);
  char buf[1024];
  int agree = 0, valid = 0;
  for (int iter = 0; iter < 20000; iter++) {
    memcpy(buf, base, blen);
    size_t len = blen;
    int edits = 1 + (int)(next() % 3);
    for (int e = 0; e < edits; e++) {
      size_t pos = next() % len;
      switch (next() % 3) {
      case 0: buf[pos] = alphabet[next() % (sizeof alphabet - 1)]; break;
      case 1: memmove(buf + pos, buf + pos + 1, len - pos - 1); len--; break;
      default:
        if (len + 1 < sizeof buf) {
          memmove(buf + pos + 1, buf + pos, len - pos);
          buf[pos] = alphabet[next() % (sizeof alphabet - 1)];
          len++;
        }
      }
    }
    hl_jscan_result r;
    bool ours = hl_jscan(buf, len, 0, NULL, 0, &r) == 0;
    json_error_t je;
    json_t *j = json_loadb(buf, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
    bool theirs = j != NULL;
    json_decref(j);
    cr_assert_eq(ours, theirs, "disagree on %.*s: jscan %s (%s), jansson %s (%s)", (int)len, buf,
                 ours ? "valid" : "invalid", r.message ? r.message : "", theirs ? "valid" : "invalid",
                 theirs ? "" : je.text);
    agree++;
    valid += ours;
  }
  cr_assert_eq(agree, 20000);
  cr_assert(valid > 100 && valid < 19000, "mutations should give a mix (%d valid)", valid);
}

/*
 * The word-at-a-time string scan reads eight bytes at a time: every kind of
 * byte that ends a plain run (closing quote, escape, control character,
 * UTF-8 sequence, invalid byte) is put at every offset modulo 8 and with
 * every distance to the end of the input, in an exactly sized heap buffer
 * (so that ASan sees any read past the end). Each case states its verdict
 * and the offset of the error, as the byte-at-a-time scan gives them.
 */
typedef struct str_case {
  const char *mid;      /* bytes placed after the plain run */
  hl_jscan_error error; /* verdict for the whole string */
  int err_at;           /* error offset from the start of mid; -1: end of input */
  bool escaped;
} str_case;

static void check_string_at(const str_case *c, size_t pre, size_t post, bool close) {
  size_t ml = strlen(c->mid), n = 1 + pre + ml + post + (close ? 1 : 0);
  char *s = malloc(n);
  cr_assert_not_null(s);
  s[0] = '"';
  memset(s + 1, 'a', pre);
  memcpy(s + 1 + pre, c->mid, ml);
  memset(s + 1 + pre + ml, 'z', post);
  if (close)
    s[n - 1] = '"';
  hl_jscan_result r;
  int rc = hl_jscan(s, n, 0, NULL, 0, &r);
  hl_jscan_error want = c->error;
  size_t want_at = c->err_at < 0 ? n : 1 + pre + (size_t)c->err_at;
  if (want == HL_JSCAN_OK && !close) {
    want = HL_JSCAN_ETRUNCATED; /* no closing quote: the scan runs to the end */
    want_at = n;
  }
  cr_assert_eq(r.error, want, "mid '%s' pre %zu post %zu close %d: got %s (%s), want %s", c->mid,
               pre, post, close, hl_jscan_error_name(r.error), r.message ? r.message : "",
               hl_jscan_error_name(want));
  cr_assert_eq(rc == 0, want == HL_JSCAN_OK);
  if (want != HL_JSCAN_OK)
    cr_assert_eq(r.offset, want_at, "mid '%s' pre %zu post %zu: error at %zu, want %zu", c->mid,
                 pre, post, r.offset, want_at);
  /* The same string as the value of a key: its span and escape flag. */
  if (want == HL_JSCAN_OK) {
    char *o = malloc(n + 6);
    cr_assert_not_null(o);
    memcpy(o, "{\"k\":", 5);
    memcpy(o + 5, s, n);
    o[n + 5] = '}';
    hl_jscan_field f = {.key = "k"};
    cr_assert_eq(hl_jscan(o, n + 6, 0, &f, 1, &r), 0);
    cr_assert_eq(f.kind, HL_JSCAN_STRING);
    cr_assert_eq(f.len, n - 2);
    cr_assert_eq(f.val, o + 6);
    cr_assert_eq(f.escaped, c->escaped, "mid '%s': escaped flag", c->mid);
    free(o);
  }
  free(s);
}

Test(jscan, string_scan_at_every_offset) {
  const str_case cases[] = {
      {"", HL_JSCAN_OK, 0, false},
      {"\\n", HL_JSCAN_OK, 0, true},
      {"\\\"", HL_JSCAN_OK, 0, true},
      {"\\\\", HL_JSCAN_OK, 0, true},
      {"\\u00e9", HL_JSCAN_OK, 0, true},
      {"\\ud83d\\ude00", HL_JSCAN_OK, 0, true},
      {"\xc3\xa9", HL_JSCAN_OK, 0, false},
      {"\xe2\x82\xac", HL_JSCAN_OK, 0, false},
      {"\xf0\x9f\x98\x80", HL_JSCAN_OK, 0, false},
      {"\x7f~ !#[]", HL_JSCAN_OK, 0, false}, /* the plain bytes next to the special ones */
      {"\x01", HL_JSCAN_ESYNTAX, 0, false},
      {"\x1f", HL_JSCAN_ESYNTAX, 0, false},
      {"\t", HL_JSCAN_ESYNTAX, 0, false},
      {"\\x", HL_JSCAN_ESYNTAX, 1, false},
      {"\\u12g4", HL_JSCAN_ESYNTAX, 2, false},
      {"\xff", HL_JSCAN_EUTF8, 0, false},
      {"\x80", HL_JSCAN_EUTF8, 0, false},
      {"\xc3\x28", HL_JSCAN_EUTF8, 0, false},
      {"\xe0\x80\xaf", HL_JSCAN_EUTF8, 0, false},
      {"\xed\xa0\x80", HL_JSCAN_EUTF8, 0, false},
      {"\\udc00", HL_JSCAN_EUTF8, 6, false},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    for (size_t pre = 0; pre < 17; pre++)
      for (size_t post = 0; post < 10; post++) {
        check_string_at(&cases[i], pre, post, true);
        check_string_at(&cases[i], pre, post, false);
      }
}

/* Input that ends inside an escape or a UTF-8 sequence, at every offset. */
Test(jscan, string_cut_inside_a_sequence) {
  const struct {
    const char *s;
    hl_jscan_error error;
  } cuts[] = {
      {"\\", HL_JSCAN_ETRUNCATED},        {"\\u00", HL_JSCAN_ETRUNCATED},
      {"\\ud83d", HL_JSCAN_EUTF8},        {"\\ud83d\\u", HL_JSCAN_ETRUNCATED},
      {"\xc3", HL_JSCAN_EUTF8},           {"\xe2\x82", HL_JSCAN_EUTF8},
      {"\xf0\x9f\x98", HL_JSCAN_EUTF8},
  };
  for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++)
    for (size_t pre = 0; pre < 17; pre++) {
      size_t cl = strlen(cuts[i].s), n = 1 + pre + cl;
      char *s = malloc(n);
      cr_assert_not_null(s);
      s[0] = '"';
      memset(s + 1, 'a', pre);
      memcpy(s + 1 + pre, cuts[i].s, cl);
      hl_jscan_result r;
      cr_assert_eq(hl_jscan(s, n, 0, NULL, 0, &r), HL_EPARSE);
      cr_assert_eq(r.error, cuts[i].error, "cut '%s' after %zu: got %s (%s)", cuts[i].s, pre,
                   hl_jscan_error_name(r.error), r.message);
      free(s);
    }
}
