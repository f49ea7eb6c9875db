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

/*
 * A reference tape built with the text walkers (hl_jscan_members and
 * hl_jscan_elements): the node of a value, then those of its members or
 * elements, each with its key, its span and the node after its subtree.
 */
typedef struct ref_tape {
  const char *s;
  hl_jscan_node nodes[256];
  size_t n;
} ref_tape;

static void ref_value(ref_tape *t, const char *key, size_t klen, const char *v, size_t vn);

static int ref_member(void *ud, const char *key, size_t klen, const char *val, size_t vlen) {
  ref_value(ud, key, klen, val, vlen);
  return 0;
}

static int ref_element(void *ud, size_t index, const char *val, size_t vlen) {
  (void)index;
  ref_value(ud, NULL, 0, val, vlen);
  return 0;
}

static void ref_value(ref_tape *t, const char *key, size_t klen, const char *v, size_t vn) {
  cr_assert_lt(t->n, 256);
  size_t i = t->n++;
  t->nodes[i] = (hl_jscan_node){key ? (uint32_t)(key - t->s) : 0, (uint32_t)klen,
                                (uint32_t)(v - t->s), (uint32_t)(v + vn - t->s), 0};
  if (v[0] == '{')
    cr_assert_eq(hl_jscan_members(v, vn, ref_member, t), 0);
  else if (v[0] == '[')
    cr_assert_eq(hl_jscan_elements(v, vn, ref_element, t), 0);
  t->nodes[i].next = (uint32_t)t->n;
}

/* The tape of valid documents is the one the text walkers see; too small a tape says so. */
Test(jscan, tape_matches_the_text_walkers) {
  const char *docs[] = {
      "{}", "[]", "  7 ", "\"x\"", "{\"a\":1}", "[1, [], {}, [[]], \"s\"]",
      " {\"resourceType\" : \"Observation\", \"id\":\"o1\",\"meta\":{\"versionId\":\"2\"},"
      "\"code\":{\"coding\":[{\"system\":\"http://loinc.org\",\"code\":\"4548-4\"},{}]},"
      "\"esc\\\"key\":\"v\\\\\\\"\",\"\":null,\"n\":[-1.5e3,true,false,null],"
      "\"deep\":[[[{\"x\":[{}]}]]],\"utf\":\"caf\xc3\xa9\"} ",
  };
  for (size_t d = 0; d < sizeof docs / sizeof docs[0]; d++) {
    const char *s = docs[d];
    size_t n = strlen(s);
    ref_tape want = {.s = s};
    const char *p = s;
    while (*p == ' ')
      p++;
    size_t vn = strlen(p);
    while (vn && p[vn - 1] == ' ')
      vn--;
    ref_value(&want, NULL, 0, p, vn);
    hl_jscan_node nodes[256];
    hl_jscan_tape tape = {nodes, 256, 0};
    hl_jscan_field f[1] = {{.key = "id"}};
    hl_jscan_result r, r0;
    hl_jscan_field f0[1] = {{.key = "id"}};
    cr_assert_eq(hl_jscan_build_tape(s, n, 0, f, 1, &tape, &r), 0, "%s", s);
    cr_assert_eq(hl_jscan(s, n, 0, f0, 1, &r0), 0);
    cr_assert_eq(f[0].kind, f0[0].kind);
    cr_assert_eq(f[0].val, f0[0].val);
    cr_assert_eq(r.top, r0.top);
    cr_assert_eq(tape.n, want.n, "doc %zu: %zu nodes, want %zu", d, tape.n, want.n);
    for (size_t i = 0; i < want.n; i++) {
      const hl_jscan_node *a = &nodes[i], *b = &want.nodes[i];
      cr_assert(a->start == b->start && a->end == b->end && a->next == b->next && a->klen == b->klen &&
                    (b->klen == 0 || a->key == b->key),
                "doc %zu node %zu: key %u+%u [%u, %u) next %u; want key %u+%u [%u, %u) next %u", d, i,
                a->key, a->klen, a->start, a->end, a->next, b->key, b->klen, b->start, b->end, b->next);
    }
    /* One node short: the count is still right, and nothing is written past the end. */
    if (want.n > 1) {
      hl_jscan_node small[256];
      memset(small, 0xab, sizeof small);
      hl_jscan_tape st = {small, want.n - 1, 0};
      cr_assert_eq(hl_jscan_build_tape(s, n, 0, NULL, 0, &st, &r), 0);
      cr_assert_eq(st.n, want.n);
      unsigned char *tail = (unsigned char *)&small[want.n - 1];
      for (size_t k = 0; k < sizeof(hl_jscan_node); k++)
        cr_assert_eq(tail[k], 0xab, "doc %zu: node written past the tape's cap", d);
    }
  }
}

/* Invalid documents fail as hl_jscan() fails them, at the same offset, with or without room. */
Test(jscan, tape_scan_fails_as_hl_jscan) {
  const char *bad[] = {"", "{", "{\"a\":1,}", "[1,]", "{\"a\" 1}", "\"\\ud800\"", "[[[", "{} {}",
                       "{\"a\":[1,2,{\"b\":tru}]}", "\"\xc3\""};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    for (size_t cap = 0; cap < 4; cap += 3) {
      hl_jscan_node nodes[4];
      hl_jscan_tape tape = {nodes, cap, 0};
      hl_jscan_result r, r0;
      cr_assert_eq(hl_jscan_build_tape(bad[i], strlen(bad[i]), 0, NULL, 0, &tape, &r), HL_EPARSE);
      cr_assert_eq(hl_jscan(bad[i], strlen(bad[i]), 0, NULL, 0, &r0), HL_EPARSE);
      cr_assert(r.error == r0.error && r.offset == r0.offset, "'%s'", bad[i]);
    }
  }
}
