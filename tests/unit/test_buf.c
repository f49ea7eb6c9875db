#include <string.h>

#include "hl/buf.h"
#include "hl/error.h"
#include "hl_test.h"

HL_TEST_SUITE(buf);

Test(buf, append_and_terminate) {
  hl_buf b;
  hl_buf_init(&b, 0);
  cr_assert_eq(hl_buf_puts(&b, "abc"), 0);
  cr_assert_eq(hl_buf_printf(&b, "-%d", 42), 0);
  cr_assert_str_eq(b.data, "abc-42");
  cr_assert_eq(b.len, 6);
  hl_buf_consume(&b, 4);
  cr_assert_str_eq(b.data, "42");
  hl_buf_free(&b);
}

Test(buf, limit_leaves_buffer_unchanged) {
  hl_buf b;
  hl_buf_init(&b, 8);
  cr_assert_eq(hl_buf_puts(&b, "12345"), 0);
  cr_assert_eq(hl_buf_puts(&b, "6789"), HL_ELIMIT);
  cr_assert_str_eq(b.data, "12345");
  cr_assert_eq(hl_buf_printf(&b, "%s", "abcd"), HL_ELIMIT);
  cr_assert_eq(b.len, 5);
  cr_assert_eq(hl_buf_puts(&b, "678"), 0);
  cr_assert_str_eq(b.data, "12345678");
  hl_buf_free(&b);
}

Test(buf, json_escape) {
  hl_buf b;
  hl_buf_init(&b, 0);
  const char in[] = "a\"b\\c\n\x01";
  cr_assert_eq(hl_buf_json_escape(&b, in, sizeof in - 1), 0);
  cr_assert_str_eq(b.data, "a\\\"b\\\\c\\n\\u0001");
  hl_buf_free(&b);
}

/* Runs between escapes, escapes at either end, NUL, UTF-8 and the limit. */
Test(buf, json_escape_runs_and_limits) {
  hl_buf b;
  hl_buf_init(&b, 0);
  hl_buf_puts(&b, "x=");
  const char in[] = "\tstart \xc3\xa9t\xc3\xa9\0mid\r\\end\"";
  cr_assert_eq(hl_buf_json_escape(&b, in, sizeof in - 1), 0);
  cr_assert_str_eq(b.data, "x=\\tstart \xc3\xa9t\xc3\xa9\\u0000mid\\r\\\\end\\\"");
  cr_assert_eq(b.len, strlen(b.data));
  cr_assert_eq(hl_buf_json_escape(&b, "", 0), 0);
  cr_assert_str_eq(b.data, "x=\\tstart \xc3\xa9t\xc3\xa9\\u0000mid\\r\\\\end\\\"");
  hl_buf_free(&b);

  /* Past the buffer's limit nothing is left half-written. */
  hl_buf_init(&b, 16);
  hl_buf_puts(&b, "ab");
  cr_assert_eq(hl_buf_json_escape(&b, "0123456789\"\"\"", 13), HL_ELIMIT);
  cr_assert_str_eq(b.data, "ab");
  cr_assert_eq(b.len, 2);
  cr_assert_eq(hl_buf_json_escape(&b, "01234567\n", 9), 0);
  cr_assert_str_eq(b.data, "ab01234567\\n");
  cr_assert_eq(hl_buf_json_escape(&b, "abcd\x01", 5), HL_ELIMIT);
  cr_assert_str_eq(b.data, "ab01234567\\n");
  hl_buf_free(&b);
}

Test(buf, steal) {
  hl_buf b;
  hl_buf_init(&b, 0);
  hl_buf_puts(&b, "x");
  size_t n = 0;
  char *p = hl_buf_steal(&b, &n);
  cr_assert_eq(n, 1);
  cr_assert_null(b.data);
  free(p);
}
