#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <unistd.h>

#include "hl/config.h"
#include "hl/error.h"
#include "hl_test.h"

HL_TEST_SUITE(config);

static const hl_config_var vars[] = {
    {"HL_T_NAME", HL_CFG_STRING, "hello", 0, 10, NULL, "A name."},
    {"HL_T_COUNT", HL_CFG_INT, "5", 1, 100, NULL, "A count."},
    {"HL_T_FLAG", HL_CFG_BOOL, "false", 0, 0, NULL, "A flag."},
    {"HL_T_MODE", HL_CFG_ENUM, "fast", 0, 0, "fast|safe", "A mode."},
    {"HL_T_WAIT", HL_CFG_DURATION, "2s", 0, 60000, NULL, "A wait."},
    {"HL_T_MAX", HL_CFG_SIZE, "1MiB", 1, 1 << 30, NULL, "A size."},
    {"HL_T_NEEDED", HL_CFG_STRING, NULL, 1, 100, NULL, "Required."},
};
static const hl_config_spec spec = {"hl-test", "Tests config.", vars, sizeof vars / sizeof vars[0]};

typedef struct { const char *k[8]; const char *v[8]; } env;

static const char *lookup(const char *name, void *ud) {
  env *e = ud;
  for (int i = 0; i < 8 && e->k[i]; i++)
    if (strcmp(e->k[i], name) == 0)
      return e->v[i];
  return NULL;
}

Test(config, defaults_and_values) {
  env e = {{"HL_T_NEEDED", "HL_T_COUNT", "HL_T_FLAG", "HL_T_WAIT", "HL_T_MAX"},
           {"x", "42", "yes", "1500ms", "64KiB"}};
  hl_config *cfg = NULL;
  char err[256] = "";
  cr_assert_eq(hl_config_load_from(&spec, lookup, &e, &cfg, err, sizeof err), 0, "%s", err);
  cr_assert_str_eq(hl_config_str(cfg, "HL_T_NAME"), "hello");
  cr_assert_eq(hl_config_int(cfg, "HL_T_COUNT"), 42);
  cr_assert(hl_config_bool(cfg, "HL_T_FLAG"));
  cr_assert_eq(hl_config_int(cfg, "HL_T_WAIT"), 1500);
  cr_assert_eq(hl_config_int(cfg, "HL_T_MAX"), 65536);
  cr_assert_str_eq(hl_config_str(cfg, "HL_LOG_LEVEL"), "info");
  cr_assert(hl_config_is_set(cfg, "HL_T_COUNT"));
  cr_assert_not(hl_config_is_set(cfg, "HL_T_NAME"));
  hl_config_free(cfg);
}

static void expect_error(const char *k, const char *v, const char *needle) {
  env e = {{"HL_T_NEEDED", k}, {"x", v}};
  hl_config *cfg = NULL;
  char err[256] = "";
  cr_assert_eq(hl_config_load_from(&spec, lookup, &e, &cfg, err, sizeof err), HL_ECONFIG,
               "%s=%s accepted", k, v);
  cr_assert_null(cfg);
  cr_assert(strstr(err, k) != NULL, "message names the variable: %s", err);
  cr_assert(strstr(err, needle) != NULL, "message '%s' lacks '%s'", err, needle);
}

Test(config, errors_name_the_variable) {
  expect_error("HL_T_COUNT", "abc", "not an integer");
  expect_error("HL_T_COUNT", "12x", "not an integer");
  expect_error("HL_T_COUNT", "0", "outside");
  expect_error("HL_T_COUNT", "101", "outside");
  expect_error("HL_T_COUNT", "99999999999999999999", "not an integer");
  expect_error("HL_T_FLAG", "maybe", "not a boolean");
  expect_error("HL_T_MODE", "slow", "not one of fast|safe");
  expect_error("HL_T_WAIT", "5 parsecs", "not a duration");
  expect_error("HL_T_WAIT", "2m", "outside");
  expect_error("HL_T_MAX", "12 apples", "not a size");
  expect_error("HL_T_MAX", "2GiB", "outside");
  expect_error("HL_T_NAME", "much-too-long-name", "longer than");
  expect_error("HL_LOG_FORMAT", "xml", "not one of json|text");
}

Test(config, required_missing) {
  env e = {{NULL}, {NULL}};
  hl_config *cfg = NULL;
  char err[256] = "";
  cr_assert_eq(hl_config_load_from(&spec, lookup, &e, &cfg, err, sizeof err), HL_ECONFIG);
  cr_assert(strstr(err, "HL_T_NEEDED is required") != NULL, "%s", err);
}

Test(config, main_exits_2_on_bad_value) {
  pid_t pid = fork();
  if (pid == 0) {
    int fd = open("/dev/null", 1);
    dup2(fd, 2);
    setenv("HL_T_NEEDED", "x", 1);
    setenv("HL_T_COUNT", "-3", 1);
    char *argv[] = {"hl-test", NULL};
    hl_config_main(&spec, 1, argv);
    _exit(0);
  }
  int st = 0;
  waitpid(pid, &st, 0);
  cr_assert(WIFEXITED(st));
  cr_assert_eq(WEXITSTATUS(st), 2);
}

Test(config, help_lists_every_variable) {
  char *text = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&text, &len);
  hl_config_print_help(&spec, f);
  fclose(f);
  for (size_t i = 0; i < spec.nvars; i++)
    cr_assert(strstr(text, vars[i].name) != NULL, "%s missing from help", vars[i].name);
  cr_assert(strstr(text, "HL_LOG_FORMAT") != NULL);
  free(text);
  f = open_memstream(&text, &len);
  hl_config_print_markdown(&spec, f);
  fclose(f);
  cr_assert(strstr(text, "| `HL_T_NEEDED` | string | **required** |") != NULL, "%s", text);
  free(text);
}
