/*
 * hl-sf-standin: a stand-in for Snowflake's SQL API v2 and Snowpipe
 * Streaming REST API on 127.0.0.1, for tests. See standin.h and
 * docs/snowflake.md ("Stand-in").
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "hl/config.h"
#include "sql.h"
#include "standin.h"

#ifndef SF_STANDIN_SPEC_DEFAULT
#define SF_STANDIN_SPEC_DEFAULT "sqlapi.json"
#endif

static const hl_config_var vars[] = {
    {"HL_SF_STANDIN_ADDR", HL_CFG_STRING, "127.0.0.1:0", 1, 255, NULL,
     "host:port to listen on (127.0.0.1 only; port 0 picks a free one)."},
    {"HL_SF_STANDIN_DIR", HL_CFG_STRING, NULL, 1, 4096, NULL,
     "Data directory: SQLite files of the schemas, streaming channels and their offset tokens."},
    {"HL_SF_STANDIN_ACCOUNT", HL_CFG_STRING, "HLTEST", 1, 255, NULL, "Account expected in the JWTs."},
    {"HL_SF_STANDIN_USER", HL_CFG_STRING, "LOADER", 1, 255, NULL, "User expected in the JWTs."},
    {"HL_SF_STANDIN_PUBLIC_KEY_FILE", HL_CFG_STRING, NULL, 1, 4096, NULL,
     "PEM file with the user's RSA public key (a private key file works too)."},
    {"HL_SF_STANDIN_SPEC", HL_CFG_STRING, SF_STANDIN_SPEC_DEFAULT, 1, 4096, NULL,
     "sqlapi.json: Snowflake's OpenAPI description converted by the build."},
    {"HL_SF_STANDIN_PARTITION_ROWS", HL_CFG_INT, "1000", 1, 1000000, NULL, "Rows per result partition."},
    {"HL_SF_STANDIN_SYNC_WAIT", HL_CFG_DURATION, "45s", 1, 600000, NULL,
     "A submitted statement still running after this is answered 202 with its handle."},
    {"HL_SF_STANDIN_PORT_FILE", HL_CFG_STRING, "", 0, 4096, NULL,
     "File that receives the bound port once listening; empty: none."},
    {"HL_SF_STANDIN_VERBOSE", HL_CFG_BOOL, "false", 0, 0, NULL, "Log every request on stderr."},
    {"HL_SF_STANDIN_INIT_SQL", HL_CFG_STRING, "", 0, 4096, NULL,
     "File of ';'-separated statements run once at start-up, before listening (e.g. the RAW DDL); empty: none."},
};

/* Runs the statements of path through the stand-in's translation. 0, or -1 with a message in err. */
static int init_sql(const char *dir, const char *path, char *err, size_t errlen) {
  FILE *f = fopen(path, "r");
  if (!f) {
    snprintf(err, errlen, "cannot open %s", path);
    return -1;
  }
  static char text[1 << 20];
  size_t n = fread(text, 1, sizeof text - 1, f);
  fclose(f);
  text[n] = 0;
  /* Whole-line "--" comments are blanked: the translation reads head words. */
  for (char *l = text; *l;) {
    char *e = strchr(l, '\n');
    char *p = l + strspn(l, " \t");
    if (p[0] == '-' && p[1] == '-')
      memset(l, ' ', e ? (size_t)(e - l) : strlen(l));
    l = e ? e + 1 : l + strlen(l);
  }
  sf_sql *q;
  (void)mkdir(dir, 0700); /* sf_standin_new does the same; an existing directory is fine. */
  if (sf_sql_open(dir, &q, err, errlen) < 0)
    return -1;
  json_t *parts = sf_sql_split(text);
  int rc = 0;
  for (size_t i = 0; i < json_array_size(parts) && rc == 0; i++) {
    sf_exec e;
    sf_sql_exec(q, "PUBLIC", json_string_value(json_array_get(parts, i)), NULL, false, &e);
    if (e.failed) {
      snprintf(err, errlen, "statement %zu: %.400s", i + 1, e.message);
      rc = -1;
    }
    sf_exec_clear(&e);
  }
  json_decref(parts);
  sf_sql_close(q);
  return rc;
}
static const hl_config_spec spec = {"hl-sf-standin",
                                    "A stand-in for Snowflake's SQL API v2 and Snowpipe Streaming REST API, "
                                    "on SQLite, for tests.",
                                    vars, sizeof vars / sizeof vars[0]};

static sf_standin *g_standin;
static uv_signal_t g_sigterm, g_sigint;

static void closed(void *ud) {
  uv_close((uv_handle_t *)&g_sigterm, NULL);
  uv_close((uv_handle_t *)&g_sigint, NULL);
}

static void on_signal(uv_signal_t *h, int signum) {
  uv_signal_stop(&g_sigterm);
  uv_signal_stop(&g_sigint);
  sf_standin_close(g_standin, closed, NULL);
}

int main(int argc, char **argv) {
  hl_config *cfg = hl_config_main(&spec, argc, argv);
  sf_standin_config c = {
      .addr = hl_config_str(cfg, "HL_SF_STANDIN_ADDR"),
      .dir = hl_config_str(cfg, "HL_SF_STANDIN_DIR"),
      .account = hl_config_str(cfg, "HL_SF_STANDIN_ACCOUNT"),
      .user = hl_config_str(cfg, "HL_SF_STANDIN_USER"),
      .public_key_file = hl_config_str(cfg, "HL_SF_STANDIN_PUBLIC_KEY_FILE"),
      .spec_path = hl_config_str(cfg, "HL_SF_STANDIN_SPEC"),
      .partition_rows = (int)hl_config_int(cfg, "HL_SF_STANDIN_PARTITION_ROWS"),
      .sync_wait_ms = (long)hl_config_int(cfg, "HL_SF_STANDIN_SYNC_WAIT"),
      .verbose = hl_config_bool(cfg, "HL_SF_STANDIN_VERBOSE"),
  };
  uv_loop_t *loop = uv_default_loop();
  char err[512];
  const char *init = hl_config_str(cfg, "HL_SF_STANDIN_INIT_SQL");
  if (*init && init_sql(c.dir, init, err, sizeof err) < 0) {
    fprintf(stderr, "hl-sf-standin: %s\n", err);
    hl_config_free(cfg);
    return 1;
  }
  if (sf_standin_new(loop, &c, &g_standin, err, sizeof err) < 0) {
    fprintf(stderr, "hl-sf-standin: %s\n", err);
    hl_config_free(cfg);
    return 1;
  }
  int port = sf_standin_port(g_standin);
  const char *port_file = hl_config_str(cfg, "HL_SF_STANDIN_PORT_FILE");
  if (*port_file) {
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", port_file);
    FILE *f = fopen(tmp, "w");
    if (!f || fprintf(f, "%d\n", port) < 0 || fclose(f) != 0 || rename(tmp, port_file) != 0) {
      fprintf(stderr, "hl-sf-standin: cannot write %s\n", port_file);
      return 1;
    }
  }
  printf("hl-sf-standin listening on 127.0.0.1:%d\n", port);
  fflush(stdout);
  uv_signal_init(loop, &g_sigterm);
  uv_signal_init(loop, &g_sigint);
  uv_signal_start(&g_sigterm, on_signal, SIGTERM);
  uv_signal_start(&g_sigint, on_signal, SIGINT);
  uv_run(loop, UV_RUN_DEFAULT);
  sf_standin_free(g_standin);
  uv_loop_close(loop);
  hl_config_free(cfg);
  return 0;
}
