/* Unit tests of the hand-written FHIR primitive checkers (workers/validator/prim.c). */
#include <regex.h>
#include <stdlib.h>
#include <string.h>

#include "hl_test.h"
#include "prim.h"

HL_TEST_SUITE(validator_prim);

#define OK(p, s) cr_expect(hl_prim_check(p, s, strlen(s)), "%s should accept \"%s\"", hl_prim_name(p), s)
#define BAD(p, s) cr_expect(!hl_prim_check(p, s, strlen(s)), "%s should refuse \"%s\"", hl_prim_name(p), s)

Test(validator_prim, patterns_map_to_checkers) {
  for (int p = 1; p < HL_PRIM__COUNT; p++)
    cr_expect_eq(hl_prim_for_pattern(hl_prim_pattern((hl_prim)p)), p);
  cr_expect_eq(hl_prim_for_pattern("^[a-z]+$"), HL_PRIM_NONE);
}

Test(validator_prim, dates) {
  OK(HL_PRIM_DATE, "2020");
  OK(HL_PRIM_DATE, "2020-02");
  OK(HL_PRIM_DATE, "2020-02-31"); /* the pattern does not know the calendar; a profile rule does */
  OK(HL_PRIM_DATE, "0001-01-01");
  BAD(HL_PRIM_DATE, "0000");
  BAD(HL_PRIM_DATE, "2020-13");
  BAD(HL_PRIM_DATE, "2020-1-1");
  BAD(HL_PRIM_DATE, "2020-01-01T00:00:00Z");
  BAD(HL_PRIM_DATE, "");
  OK(HL_PRIM_DATETIME, "2020-01-01T10:00:00Z");
  OK(HL_PRIM_DATETIME, "2020-01-01T23:59:60.123+14:00");
  OK(HL_PRIM_DATETIME, "2020-01-01T10:00:00-13:59");
  OK(HL_PRIM_DATETIME, "2020-01");
  BAD(HL_PRIM_DATETIME, "2020-01-01T10:00:00");
  BAD(HL_PRIM_DATETIME, "2020-01-01T10:00Z");
  BAD(HL_PRIM_DATETIME, "2020-01-01T24:00:00Z");
  BAD(HL_PRIM_DATETIME, "2020-01-01T10:00:00+14:01");
  BAD(HL_PRIM_DATETIME, "2020-01-01T10:00:00.Z");
  BAD(HL_PRIM_DATETIME, "2020-01T10:00:00Z");
  OK(HL_PRIM_INSTANT, "2020-01-01T10:00:00.5Z");
  BAD(HL_PRIM_INSTANT, "2020-01-01");
  OK(HL_PRIM_TIME, "23:59:59.999");
  BAD(HL_PRIM_TIME, "24:00:00");
  BAD(HL_PRIM_TIME, "10:00");
}

Test(validator_prim, ids_codes_strings) {
  OK(HL_PRIM_ID, "a");
  OK(HL_PRIM_ID, "A-b.9");
  char id64[65], id65[66];
  memset(id64, 'x', 64);
  id64[64] = 0;
  memset(id65, 'x', 65);
  id65[65] = 0;
  OK(HL_PRIM_ID, id64);
  BAD(HL_PRIM_ID, id65);
  BAD(HL_PRIM_ID, "");
  BAD(HL_PRIM_ID, "a_b");
  BAD(HL_PRIM_ID, "a b");
  OK(HL_PRIM_CODE, "a b c");
  OK(HL_PRIM_CODE, "in-progress");
  BAD(HL_PRIM_CODE, "a  b");
  BAD(HL_PRIM_CODE, " a");
  BAD(HL_PRIM_CODE, "a ");
  BAD(HL_PRIM_CODE, "");
  BAD(HL_PRIM_CODE, "a\xc2\xa0"); /* U+00A0 is JavaScript white space */
  OK(HL_PRIM_CODE, "a\xc2\xa0z");
  BAD(HL_PRIM_CODE, "a\xe3\x80\x80\xe3\x80\x80z"); /* two U+3000 */
  OK(HL_PRIM_STRING, "line\nbreak\tand \r");
  OK(HL_PRIM_STRING, "\xf0\x9f\x98\x80");
  BAD(HL_PRIM_STRING, "");
  BAD(HL_PRIM_STRING, "form\ffeed");
  BAD(HL_PRIM_STRING, "vertical\vtab");
  BAD(HL_PRIM_STRING, "nbsp\xc2\xa0");
  BAD(HL_PRIM_STRING, "bom\xef\xbb\xbf");
  OK(HL_PRIM_STRING, "\x01");
  OK(HL_PRIM_URI, "");
  OK(HL_PRIM_URI, "http://loinc.org");
  BAD(HL_PRIM_URI, "http://a b");
  BAD(HL_PRIM_URI, "x\xe2\x80\xa8");
}

Test(validator_prim, numbers_and_identifiers) {
  OK(HL_PRIM_DECIMAL, "-0.5e+10");
  OK(HL_PRIM_DECIMAL, "0");
  BAD(HL_PRIM_DECIMAL, "01");
  BAD(HL_PRIM_DECIMAL, "1.");
  BAD(HL_PRIM_DECIMAL, ".5");
  OK(HL_PRIM_INTEGER, "-0");
  BAD(HL_PRIM_INTEGER, "+1");
  OK(HL_PRIM_POSITIVEINT, "10");
  BAD(HL_PRIM_POSITIVEINT, "0");
  /* ^[0]|([1-9][0-9]*)$: "0..." or any string ending in a digit run holding a 1-9. */
  OK(HL_PRIM_UNSIGNEDINT, "0abc");
  OK(HL_PRIM_UNSIGNEDINT, "abc10");
  BAD(HL_PRIM_UNSIGNEDINT, "abc00");
  BAD(HL_PRIM_UNSIGNEDINT, "");
  OK(HL_PRIM_BOOLEAN, "trueish");
  OK(HL_PRIM_BOOLEAN, "isfalse");
  BAD(HL_PRIM_BOOLEAN, "True");
  OK(HL_PRIM_OID, "urn:oid:2.16.840.1");
  BAD(HL_PRIM_OID, "urn:oid:3.1");
  BAD(HL_PRIM_OID, "urn:oid:1.02");
  BAD(HL_PRIM_OID, "urn:oid:1");
  OK(HL_PRIM_UUID, "urn:uuid:c757873d-ec9a-4326-a141-556f43239520");
  BAD(HL_PRIM_UUID, "urn:uuid:C757873D-ec9a-4326-a141-556f43239520");
  OK(HL_PRIM_BASE64, "aGVsbG8=");
  OK(HL_PRIM_BASE64, " aGVs bG8= ");
  BAD(HL_PRIM_BASE64, "aGV sbG8=");
  BAD(HL_PRIM_BASE64, "aGVsbG8");
  BAD(HL_PRIM_BASE64, "");
}

/* Cross-check: each checker whose pattern POSIX can express agrees with
   regcomp() on many ASCII strings built by editing valid examples. */
static const struct {
  hl_prim p;
  const char *seed;
} seeds[] = {
  {HL_PRIM_DATE, "2020-02-29"},          {HL_PRIM_DATETIME, "2021-12-31T23:59:60.25+13:45"},
  {HL_PRIM_INSTANT, "2000-01-01T00:00:00Z"}, {HL_PRIM_TIME, "12:30:45.5"},
  {HL_PRIM_DECIMAL, "-12.50e-3"},        {HL_PRIM_INTEGER, "-120"},
  {HL_PRIM_POSITIVEINT, "42"},           {HL_PRIM_UNSIGNEDINT, "0"},
  {HL_PRIM_ID, "abc-12.X"},              {HL_PRIM_CODE, "in progress"},
  {HL_PRIM_URI, "http://x.org/a"},       {HL_PRIM_OID, "urn:oid:1.2.840.10"},
  {HL_PRIM_UUID, "urn:uuid:c757873d-ec9a-4326-a141-556f43239520"},
  {HL_PRIM_BASE64, "aGVs bG8="},         {HL_PRIM_BOOLEAN, "true"},
};

Test(validator_prim, agrees_with_posix_regex) {
  static const char alphabet[] = "0123456789-:.TZ+ e\tabcfxuEnoi/=A";
  unsigned seed = 12345;
  for (size_t k = 0; k < sizeof seeds / sizeof seeds[0]; k++) {
    char ere[1024];
    cr_assert_eq(hl_prim_regex_translate(hl_prim_pattern(seeds[k].p), ere, sizeof ere), 0, "%s",
                 hl_prim_name(seeds[k].p));
    regex_t re;
    cr_assert_eq(regcomp(&re, ere, REG_EXTENDED | REG_NOSUB), 0, "%s", ere);
    int accepted = 0;
    for (int i = 0; i < 4000; i++) {
      char s[96];
      size_t n = strlen(seeds[k].seed);
      memcpy(s, seeds[k].seed, n);
      int edits = i % 4;
      for (int e = 0; e < edits; e++) {
        seed = seed * 1103515245u + 12345u;
        unsigned r = seed >> 8, pos = n ? r % (unsigned)(n + 1) : 0;
        char c = alphabet[(r >> 8) % (sizeof alphabet - 1)];
        switch ((r >> 16) % 3) {
        case 0: /* replace */
          if (pos < n) s[pos] = c;
          break;
        case 1: /* insert */
          if (n < sizeof s - 2) {
            memmove(s + pos + 1, s + pos, n - pos);
            s[pos] = c;
            n++;
          }
          break;
        default: /* delete */
          if (pos < n) {
            memmove(s + pos, s + pos + 1, n - pos - 1);
            n--;
          }
        }
      }
      s[n] = 0;
      bool mine = hl_prim_check(seeds[k].p, s, n);
      bool theirs = regexec(&re, s, 0, NULL, 0) == 0;
      accepted += mine;
      cr_assert_eq(mine, theirs, "%s on \"%s\": checker %d, regex %d", hl_prim_name(seeds[k].p), s, mine, theirs);
    }
    cr_expect_gt(accepted, 0, "%s: no accepted input", hl_prim_name(seeds[k].p));
    regfree(&re);
  }
}

Test(validator_prim, translate_refuses_what_posix_cannot_say) {
  char out[256];
  cr_expect_lt(hl_prim_regex_translate(hl_prim_pattern(HL_PRIM_STRING), out, sizeof out), 0);
  cr_expect_lt(hl_prim_regex_translate("^[a", out, sizeof out), 0);
  cr_expect_eq(hl_prim_regex_translate("^\\d+$", out, sizeof out), 0);
  cr_expect_str_eq(out, "^[0-9]+$");
}

Test(validator_prim, js_space) {
  size_t l;
  const unsigned char s[] = "\xe2\x80\x83x\xe1\x9a\x80\xef\xbb\xbf\xc3\xa9";
  cr_expect(hl_prim_js_space(s, sizeof s - 1, 0, &l) && l == 3);
  cr_expect(!hl_prim_js_space(s, sizeof s - 1, 3, &l) && l == 1);
  cr_expect(hl_prim_js_space(s, sizeof s - 1, 4, &l) && l == 3);
  cr_expect(hl_prim_js_space(s, sizeof s - 1, 7, &l) && l == 3);
  cr_expect(!hl_prim_js_space(s, sizeof s - 1, 10, &l) && l == 2);
}
