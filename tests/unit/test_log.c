#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "hl/log.h"
#include "hl_test.h"

HL_TEST_SUITE(log);

static char *capture(void (*fn)(void)) {
  int p[2];
  cr_assert_eq(pipe(p), 0);
  hl_log_set_fd(p[1]);
  fn();
  hl_log_set_fd(2);
  close(p[1]);
  static char out[8192];
  ssize_t n = read(p[0], out, sizeof out - 1);
  close(p[0]);
  out[n > 0 ? n : 0] = '\0';
  return out;
}

static void write_json(void) {
  hl_log_init("hl-unit", HL_LOG_INFO, HL_LOG_JSON);
  hl_log(HL_LOG_DEBUG, "hidden %d", 1);
  hl_log_kv(HL_LOG_WARN, "disk \"full\"", "path", "/tmp/a\nb", "missing", NULL, NULL);
}

Test(log, json_line_parses) {
  char *out = capture(write_json);
  cr_assert(strchr(out, '\n') == out + strlen(out) - 1, "exactly one line: %s", out);
  json_error_t e;
  json_t *j = json_loads(out, 0, &e);
  cr_assert_not_null(j, "not JSON: %s (%s)", out, e.text);
  cr_assert_str_eq(json_string_value(json_object_get(j, "level")), "warn");
  cr_assert_str_eq(json_string_value(json_object_get(j, "binary")), "hl-unit");
  cr_assert_str_eq(json_string_value(json_object_get(j, "msg")), "disk \"full\"");
  cr_assert_str_eq(json_string_value(json_object_get(j, "path")), "/tmp/a\nb");
  cr_assert(json_is_null(json_object_get(j, "missing")));
  cr_assert_not_null(json_object_get(j, "time"));
  json_decref(j);
}

static void write_text(void) {
  hl_log_init("hl-unit", HL_LOG_DEBUG, HL_LOG_TEXT);
  hl_log_kv(HL_LOG_ERROR, "boom", "code", "7", NULL);
}

Test(log, text_format) {
  char *out = capture(write_text);
  cr_assert(strstr(out, "error hl-unit: boom code=7") != NULL, "%s", out);
}

Test(log, level_parse) {
  cr_assert_eq(hl_log_level_parse("warn"), HL_LOG_WARN);
  cr_assert_eq(hl_log_level_parse("loud"), -1);
}
