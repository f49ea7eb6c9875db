/*
 * hl-bench-kafka: the measuring half of bench/passthrough.
 *
 *   hl-bench-kafka produce BOOTSTRAP TOPIC COUNT SIZE
 *       Produces COUNT messages of SIZE bytes with distinct keys as fast as
 *       one librdkafka producer can (acks=all, idempotent, as the workers
 *       produce), waits for every delivery report, and prints
 *       "produce count=N seconds=S rate=R".
 *   hl-bench-kafka wait BOOTSTRAP TOPIC COUNT TIMEOUT_S
 *       Polls the topic's high watermarks every 10 ms until they add up to
 *       COUNT and prints "copy count=N seconds=S rate=R", timed from the
 *       first message seen (so a consumer group's start-up is not counted).
 *
 * Exit status 0 on success, 1 on a failed delivery or a timeout, 2 on usage.
 */
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static rd_kafka_t *client(rd_kafka_type_t type, const char *bootstrap, const char *const *props,
                          void (*dr)(rd_kafka_t *, const rd_kafka_message_t *, void *),
                          void *opaque) {
  char err[512];
  rd_kafka_conf_t *c = rd_kafka_conf_new();
  if (rd_kafka_conf_set(c, "bootstrap.servers", bootstrap, err, sizeof err) != RD_KAFKA_CONF_OK)
    goto fail;
  for (size_t i = 0; props && props[i]; i += 2)
    if (rd_kafka_conf_set(c, props[i], props[i + 1], err, sizeof err) != RD_KAFKA_CONF_OK)
      goto fail;
  if (dr)
    rd_kafka_conf_set_dr_msg_cb(c, dr);
  rd_kafka_conf_set_opaque(c, opaque);
  rd_kafka_t *rk = rd_kafka_new(type, c, err, sizeof err);
  if (rk)
    return rk;
fail:
  fprintf(stderr, "hl-bench-kafka: %s\n", err);
  rd_kafka_conf_destroy(c);
  return NULL;
}

typedef struct counts { long ok, failed; rd_kafka_resp_err_t last; } counts;

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
  counts *c = opaque;
  (void)rk;
  if (m->err) {
    c->failed++;
    c->last = m->err;
  } else {
    c->ok++;
  }
}

static int produce(const char *bootstrap, const char *topic, long count, long size) {
  counts c = {0, 0, 0};
  const char *props[] = {"acks", "all", "enable.idempotence", "true", "linger.ms", "5",
                         "batch.size", "1000000", "queue.buffering.max.messages", "500000",
                         "queue.buffering.max.kbytes", "1048576", "compression.type", "none",
                         NULL};
  rd_kafka_t *p = client(RD_KAFKA_PRODUCER, bootstrap, props, on_delivery, &c);
  if (!p)
    return 1;
  char *value = malloc((size_t)size);
  if (!value) {
    rd_kafka_destroy(p);
    return 1;
  }
  /* Payload bytes that vary, so nothing in the path can shortcut identical values. */
  for (long i = 0; i < size; i++)
    value[i] = (char)('a' + (i * 7) % 26);
  double t0 = now_s();
  for (long i = 0; i < count; i++) {
    char key[32];
    int kl = snprintf(key, sizeof key, "bench-%09ld", i);
    memcpy(value, key, (size_t)kl < (size_t)size ? (size_t)kl : (size_t)size);
    rd_kafka_resp_err_t e;
    while ((e = rd_kafka_producev(p, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, (size_t)kl),
                                  RD_KAFKA_V_VALUE(value, (size_t)size),
                                  RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END)) ==
           RD_KAFKA_RESP_ERR__QUEUE_FULL)
      rd_kafka_poll(p, 1);
    if (e) {
      fprintf(stderr, "hl-bench-kafka: produce: %s\n", rd_kafka_err2str(e));
      break;
    }
    rd_kafka_poll(p, 0);
  }
  rd_kafka_flush(p, 120000);
  double secs = now_s() - t0;
  rd_kafka_destroy(p);
  free(value);
  if (c.ok != count) {
    fprintf(stderr, "hl-bench-kafka: %ld of %ld delivered, %ld failed (last: %s)\n", c.ok, count,
            c.failed, rd_kafka_err2name(c.last));
    return 1;
  }
  printf("produce count=%ld seconds=%.3f rate=%.0f\n", count, secs, count / secs);
  return 0;
}

/* The topic's partition count, or -1 when it is unknown. */
static int partitions_of(rd_kafka_t *rk, const char *topic) {
  const struct rd_kafka_metadata *md;
  rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
  rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 0, rkt, &md, 5000);
  rd_kafka_topic_destroy(rkt);
  if (e)
    return -1;
  int parts = md->topic_cnt == 1 && !md->topics[0].err ? md->topics[0].partition_cnt : -1;
  rd_kafka_metadata_destroy(md);
  return parts > 0 ? parts : -1;
}

/* The sum of the topic's high watermarks, or -1 on error. */
static long high_sum(rd_kafka_t *rk, const char *topic, int parts) {
  rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(parts);
  for (int i = 0; i < parts; i++)
    rd_kafka_topic_partition_list_add(l, topic, i)->offset = RD_KAFKA_OFFSET_END;
  long sum = -1;
  if (rd_kafka_offsets_for_times(rk, l, 5000) == 0) {
    sum = 0;
    for (int i = 0; i < l->cnt; i++) {
      if (l->elems[i].err || l->elems[i].offset < 0) {
        sum = -1;
        break;
      }
      sum += (long)l->elems[i].offset;
    }
  }
  rd_kafka_topic_partition_list_destroy(l);
  return sum;
}

static int wait_count(const char *bootstrap, const char *topic, long count, double timeout) {
  rd_kafka_t *rk = client(RD_KAFKA_CONSUMER, bootstrap, NULL, NULL, NULL);
  if (!rk)
    return 1;
  double start = now_s(), first = 0, done = 0;
  long base = 0, seen = 0;
  int parts = -1;
  while (now_s() - start < timeout) {
    if (parts < 0 && (parts = partitions_of(rk, topic)) < 0) {
      struct timespec ts = {0, 100000000};
      nanosleep(&ts, NULL);
      continue;
    }
    seen = high_sum(rk, topic, parts);
    double t = now_s();
    if (seen > 0 && first == 0) {
      first = t;
      base = seen;
    }
    if (seen >= count) {
      done = t;
      break;
    }
    struct timespec ts = {0, 10000000};
    nanosleep(&ts, NULL);
  }
  rd_kafka_destroy(rk);
  if (done == 0) {
    fprintf(stderr, "hl-bench-kafka: %s holds %ld of %ld messages after %.0f s\n", topic, seen,
            count, timeout);
    return 1;
  }
  double secs = done - first;
  /* The messages present at the first look arrived before the clock started. */
  long timed = count - base;
  if (secs <= 0 || timed <= 0) {
    fprintf(stderr, "hl-bench-kafka: the copy finished before it could be timed\n");
    return 1;
  }
  printf("copy count=%ld seconds=%.3f rate=%.0f\n", count, secs, timed / secs);
  return 0;
}

int main(int argc, char **argv) {
  if (argc == 6 && strcmp(argv[1], "produce") == 0) {
    long count = atol(argv[4]), size = atol(argv[5]);
    if (count > 0 && size > 0 && size <= 1048576)
      return produce(argv[2], argv[3], count, size);
  } else if (argc == 6 && strcmp(argv[1], "wait") == 0) {
    long count = atol(argv[4]);
    double timeout = atof(argv[5]);
    if (count > 0 && timeout > 0)
      return wait_count(argv[2], argv[3], count, timeout);
  }
  fprintf(stderr, "usage: hl-bench-kafka produce BOOTSTRAP TOPIC COUNT SIZE\n"
                  "       hl-bench-kafka wait BOOTSTRAP TOPIC COUNT TIMEOUT_S\n");
  return 2;
}
