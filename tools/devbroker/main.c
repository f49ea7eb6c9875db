/*
 * hl-devbroker: the embedded Kafka for one machine (librdkafka's mock
 * cluster), with the topics of schemas/topics/topics.json, metrics and a
 * control API on the admin server. See docs/devbroker.md.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "devbroker.h"
#include "hl/admin.h"
#include "hl/config.h"
#include "hl/error.h"
#include "hl/http.h"
#include "hl/kafka.h"
#include "hl/log.h"
#include "hl/metrics.h"
#include "hl/topics.h"

static const hl_config_var vars[] = {
    {"HL_DEVBROKER_BROKERS", HL_CFG_INT, "3", 1, HL_DEVBROKER_MAX_BROKERS, NULL,
     "Number of brokers in the mock cluster, each listening on 127.0.0.1 on a random port."},
    {"HL_DEVBROKER_TOPICS_FILE", HL_CFG_STRING, "schemas/topics/topics.json", 1, 4096, NULL,
     "The topic catalogue; every topic in it is created at start."},
    {"HL_DEVBROKER_EXTRA_TOPICS", HL_CFG_STRING, "", 0, 4096, NULL,
     "More topics to create, as name:partitions,name:partitions (for tests and benchmarks)."},
    {"HL_DEVBROKER_ADDR_FILE", HL_CFG_STRING, ".hl/devbroker.addr", 0, 4096, NULL,
     "File that receives the bootstrap address list once the cluster is up (removed at exit); "
     "empty disables it."},
    {"HL_DEVBROKER_METRICS_INTERVAL", HL_CFG_DURATION, "1s", 100, 60000, NULL,
     "How often the watermarks of every topic are read for the metrics."},
    {"HL_DEVBROKER_BYTE_METRICS", HL_CFG_BOOL, "true", 0, 0, NULL,
     "Run an internal reader that counts the key and value bytes of every topic "
     "(hl_devbroker_bytes_total); costs a second read of every message."},
    HL_CONFIG_ADMIN_VARS("127.0.0.1:9644"),
};
static const hl_config_spec spec = {
    "hl-devbroker", "The embedded Kafka for one machine: librdkafka's mock cluster with the "
    "Healthlake topics, metrics and a control API.", vars, sizeof vars / sizeof vars[0]};

static bool ready(void *ud, char *msg, size_t n) {
  if (hl_devbroker_ready(ud))
    return true;
  snprintf(msg, n, "every broker is down");
  return false;
}

static void control(hl_http_req *req, void *ud) {
  hl_buf out;
  hl_buf_init(&out, 16 * 1024 * 1024);
  size_t len = 0;
  const char *body = hl_http_req_body(req, &len);
  int status = hl_devbroker_control(ud, hl_http_req_method(req), hl_http_req_path(req), body, len,
                                    &out);
  hl_http_respond(req, status, "application/json", out.data ? out.data : "{}",
                  out.data ? out.len : 2);
  hl_buf_free(&out);
}

/* Writes text to path through a temporary file and a rename, so readers never see half. */
static int write_addr_file(const char *path, const char *text) {
  char tmp[4200];
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  char dir[4200];
  snprintf(dir, sizeof dir, "%s", path);
  char *slash = strrchr(dir, '/');
  if (slash && slash != dir) {
    *slash = '\0';
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
      return -errno;
  }
  FILE *f = fopen(tmp, "w");
  if (!f)
    return -errno;
  bool ok = fprintf(f, "%s\n", text) > 0;
  ok = fclose(f) == 0 && ok;
  if (!ok || rename(tmp, path) != 0) {
    int rc = ok ? -errno : -EIO;
    unlink(tmp);
    return rc;
  }
  return 0;
}

int main(int argc, char **argv) {
  hl_kafka_tune_malloc(); /* the mock cluster's message sets: megabytes, allocated and freed all the time */
  hl_config *cfg = hl_config_main(&spec, argc, argv);
  hl_log_configure("hl-devbroker", cfg);
  const char *addr_file = hl_config_str(cfg, "HL_DEVBROKER_ADDR_FILE");
  int status = 1, rc;
  char err[512] = "";
  hl_topics *topics = NULL;
  hl_metrics *reg = NULL;
  hl_devbroker *db = NULL;
  hl_admin *admin = NULL;

  if ((rc = hl_topics_load(hl_config_str(cfg, "HL_DEVBROKER_TOPICS_FILE"), &topics, err,
                           sizeof err)) != 0) {
    fprintf(stderr, "hl-devbroker: configuration error: HL_DEVBROKER_TOPICS_FILE: %s\n", err);
    status = 2;
    goto cleanup;
  }
  /* Threads started from here on inherit the mask, so only sigwait() sees these signals. */
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &sigs, NULL);

  if ((rc = hl_metrics_new(&reg)) != 0)
    goto fail;
  hl_devbroker_opts opts = {
      .brokers = (int)hl_config_int(cfg, "HL_DEVBROKER_BROKERS"),
      .topics = topics,
      .extra_topics = hl_config_str(cfg, "HL_DEVBROKER_EXTRA_TOPICS"),
      .metrics_interval_ms = (int)hl_config_int(cfg, "HL_DEVBROKER_METRICS_INTERVAL"),
      .byte_metrics = hl_config_bool(cfg, "HL_DEVBROKER_BYTE_METRICS"),
  };
  if ((rc = hl_devbroker_new(&opts, reg, &db, err, sizeof err)) != 0) {
    if (rc == HL_ECONFIG) {
      fprintf(stderr, "hl-devbroker: configuration error: HL_DEVBROKER_EXTRA_TOPICS: %s\n", err);
      status = 2;
      goto cleanup;
    }
    goto fail;
  }
  const char *admin_addr = hl_config_str(cfg, "HL_ADMIN_ADDR");
  if (*admin_addr) {
    if ((rc = hl_admin_start(admin_addr, reg, &admin)) != 0) {
      snprintf(err, sizeof err, "admin server on %s", admin_addr);
      goto fail;
    }
    hl_admin_set_readiness(admin, ready, db);
    if ((rc = hl_admin_route(admin, NULL, "/control/", control, db)) != 0) {
      snprintf(err, sizeof err, "control route");
      goto fail;
    }
  }
  if (*addr_file && (rc = write_addr_file(addr_file, hl_devbroker_bootstraps(db))) != 0) {
    snprintf(err, sizeof err, "%s", addr_file);
    goto fail;
  }
  printf("bootstrap=%s\n", hl_devbroker_bootstraps(db));
  if (admin)
    printf("admin=127.0.0.1:%d\n", hl_admin_port(admin));
  fflush(stdout);
  char nb[16], nt[16];
  snprintf(nb, sizeof nb, "%d", hl_devbroker_broker_count(db));
  snprintf(nt, sizeof nt, "%zu", hl_topics_count(topics));
  hl_log_kv(HL_LOG_INFO, "mock cluster up", "bootstrap", hl_devbroker_bootstraps(db), "brokers",
            nb, "topics", nt, NULL);

  int sig = 0;
  sigwait(&sigs, &sig);
  hl_log_kv(HL_LOG_INFO, "stopping", "signal", sig == SIGINT ? "SIGINT" : "SIGTERM", NULL);
  status = 0;
  goto cleanup;
fail:
  hl_log_kv(HL_LOG_ERROR, "cannot start", "what", err, "error", hl_strerror(rc), NULL);
cleanup:
  if (*addr_file && db)
    unlink(addr_file);
  admin = hl_admin_stop(admin);
  db = hl_devbroker_free(db);
  reg = hl_metrics_free(reg);
  topics = hl_topics_free(topics);
  hl_config_free(cfg);
  return status;
}
