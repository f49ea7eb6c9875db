/*
 * A tiny test harness: librdkafka's mock cluster with the given topics,
 * served on 127.0.0.1 until stdin closes. Prints the bootstrap servers as
 * its first line. Used by integration tests until hl-devbroker is on main.
 *
 *   hl-test-mockbroker TOPIC:PARTITIONS ...
 */
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv) {
  char err[256];
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  rd_kafka_conf_set(conf, "log_level", "3", NULL, 0);
  rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
  if (!rk) {
    fprintf(stderr, "mockbroker: %s\n", err);
    return 1;
  }
  rd_kafka_mock_cluster_t *mc = rd_kafka_mock_cluster_new(rk, 1);
  if (!mc) {
    fprintf(stderr, "mockbroker: cannot start the mock cluster\n");
    rd_kafka_destroy(rk);
    return 1;
  }
  for (int i = 1; i < argc; i++) {
    char name[256];
    int parts = 1;
    if (sscanf(argv[i], "%255[^:]:%d", name, &parts) < 1 ||
        rd_kafka_mock_topic_create(mc, name, parts, 1) != 0) {
      fprintf(stderr, "mockbroker: bad topic %s\n", argv[i]);
      return 1;
    }
  }
  printf("%s\n", rd_kafka_mock_cluster_bootstraps(mc));
  fflush(stdout);
  char buf[64];
  while (read(0, buf, sizeof buf) > 0) {
  }
  rd_kafka_mock_cluster_destroy(mc);
  rd_kafka_destroy(rk);
  return 0;
}
