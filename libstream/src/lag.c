#include "hl/lag.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hl/error.h"

/* Statistics documents larger than this are refused (a client with many thousand partitions). */
#define LAG_JSON_MAX (64u << 20)

typedef struct lag_part {
  char *topic;
  int32_t partition;
  int64_t caught_up_ms; /* last time seen with lag 0, or when first seen */
  bool seen;
} lag_part;

typedef struct lag_broker {
  char *name;
  bool seen;
} lag_broker;

struct hl_lag {
  char *group;
  hl_metric *lag_messages;
  hl_metric *lag_seconds;
  hl_metric *broker_up;
  hl_metric *rebalances;
  hl_lag_age_fn *age_fn;
  void *age_ud;
  lag_part *parts;
  size_t nparts, capparts;
  lag_broker *brokers;
  size_t nbrokers, capbrokers;
  int64_t rebalance_cnt;
};

int64_t hl_lag_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int hl_lag_new(hl_metrics *metrics, const char *group, hl_lag **out) {
  if (!metrics || !out)
    return -EINVAL;
  hl_lag *lag = calloc(1, sizeof *lag);
  if (!lag)
    return -ENOMEM;
  lag->group = strdup(group ? group : "");
  lag->lag_messages = hl_metrics_gauge(
      metrics, "hl_consumer_lag_messages",
      "Messages between the stored (else committed) offset and the high watermark.",
      "group,topic,partition");
  lag->lag_seconds = hl_metrics_gauge(
      metrics, "hl_consumer_lag_seconds",
      "Age of the oldest message of the partition not yet done by this consumer.",
      "group,topic,partition");
  lag->broker_up = hl_metrics_gauge(metrics, "hl_kafka_broker_up",
                                    "1 when the connection to the broker is up, else 0.", "broker");
  lag->rebalances = hl_metrics_counter(metrics, "hl_kafka_rebalances_total",
                                       "Consumer group rebalances seen by this member.", "group");
  if (!lag->group || !lag->lag_messages || !lag->lag_seconds || !lag->broker_up ||
      !lag->rebalances) {
    hl_lag_free(lag);
    return -ENOMEM;
  }
  *out = lag;
  return 0;
}

hl_lag *hl_lag_free(hl_lag *lag) {
  if (!lag)
    return NULL;
  for (size_t i = 0; i < lag->nparts; i++)
    free(lag->parts[i].topic);
  for (size_t i = 0; i < lag->nbrokers; i++)
    free(lag->brokers[i].name);
  free(lag->parts);
  free(lag->brokers);
  free(lag->group);
  free(lag);
  return NULL;
}

void hl_lag_set_age_fn(hl_lag *lag, hl_lag_age_fn *fn, void *ud) {
  lag->age_fn = fn;
  lag->age_ud = ud;
}

static lag_part *part_get(hl_lag *lag, const char *topic, int32_t partition, int64_t now_ms) {
  for (size_t i = 0; i < lag->nparts; i++)
    if (lag->parts[i].partition == partition && strcmp(lag->parts[i].topic, topic) == 0)
      return &lag->parts[i];
  if (lag->nparts == lag->capparts) {
    size_t cap = lag->capparts ? lag->capparts * 2 : 16;
    lag_part *p = realloc(lag->parts, cap * sizeof *p);
    if (!p)
      return NULL;
    lag->parts = p;
    lag->capparts = cap;
  }
  char *t = strdup(topic);
  if (!t)
    return NULL;
  lag_part *p = &lag->parts[lag->nparts++];
  *p = (lag_part){.topic = t, .partition = partition, .caught_up_ms = now_ms};
  return p;
}

static lag_broker *broker_get(hl_lag *lag, const char *name) {
  for (size_t i = 0; i < lag->nbrokers; i++)
    if (strcmp(lag->brokers[i].name, name) == 0)
      return &lag->brokers[i];
  if (lag->nbrokers == lag->capbrokers) {
    size_t cap = lag->capbrokers ? lag->capbrokers * 2 : 8;
    lag_broker *b = realloc(lag->brokers, cap * sizeof *b);
    if (!b)
      return NULL;
    lag->brokers = b;
    lag->capbrokers = cap;
  }
  char *n = strdup(name);
  if (!n)
    return NULL;
  lag_broker *b = &lag->brokers[lag->nbrokers++];
  *b = (lag_broker){.name = n};
  return b;
}

static int64_t int_member(json_t *obj, const char *key, int64_t def) {
  json_t *v = json_object_get(obj, key);
  return json_is_integer(v) ? (int64_t)json_integer_value(v) : def;
}

static void update_brokers(hl_lag *lag, json_t *brokers, hl_lag_summary *sum) {
  for (size_t i = 0; i < lag->nbrokers; i++)
    lag->brokers[i].seen = false;
  const char *name;
  json_t *b;
  json_object_foreach(brokers, name, b) {
    if (!json_is_object(b))
      continue;
    const char *source = json_string_value(json_object_get(b, "source"));
    if (source && strcmp(source, "logical") == 0)
      continue; /* the GroupCoordinator alias of a real broker */
    const char *state = json_string_value(json_object_get(b, "state"));
    bool up = state && strcmp(state, "UP") == 0;
    sum->brokers++;
    sum->brokers_up += up;
    lag_broker *lb = broker_get(lag, name);
    if (lb)
      lb->seen = true;
    hl_series_set(hl_metric_at(lag->broker_up, name), up ? 1 : 0);
  }
  /* Brokers no longer reported (decommissioned) drop their series. */
  for (size_t i = 0; i < lag->nbrokers;) {
    if (lag->brokers[i].seen) {
      i++;
      continue;
    }
    const char *v[] = {lag->brokers[i].name};
    hl_metric_remove(lag->broker_up, v);
    free(lag->brokers[i].name);
    lag->brokers[i] = lag->brokers[--lag->nbrokers];
  }
}

/*
 * The lag of a partition from this member's fetch position, when librdkafka
 * gives none. librdkafka 2.0.2 knows the committed offset only once this
 * member has committed itself (it does not report the one it fetched from the
 * group at assignment), so a restarted worker with nothing left to read would
 * report no lag at all for as long as nothing arrives. A member that has
 * handed nothing of the partition to the application and holds nothing of it
 * in the fetch queue is still at the offset it started from, the group's
 * committed offset: the lag is the end of the partition (the last stable
 * offset, else the high watermark) minus the next offset to fetch. -1 when
 * that does not hold (unknown).
 */
static int64_t lag_from_position(json_t *p) {
  const char *state = json_string_value(json_object_get(p, "fetch_state"));
  int64_t next = int_member(p, "next_offset", -1);
  int64_t end = int_member(p, "ls_offset", -1);
  if (end < 0)
    end = int_member(p, "hi_offset", -1);
  if (!state || strcmp(state, "active") != 0 || next < 0 || end < 0 || next > end ||
      int_member(p, "app_offset", -1) >= 0 || int_member(p, "fetchq_cnt", -1) != 0)
    return -1;
  return end - next;
}

static void update_partition(hl_lag *lag, const char *topic, json_t *p, int64_t now_ms,
                             hl_lag_summary *sum) {
  int64_t partition = int_member(p, "partition", -1);
  if (partition < 0 || partition > INT32_MAX)
    return; /* -1 is librdkafka's internal "unassigned" partition */
  if (!json_is_true(json_object_get(p, "desired")))
    return;
  lag_part *lp = part_get(lag, topic, (int32_t)partition, now_ms);
  if (!lp)
    return;
  lp->seen = true;
  sum->assigned++;
  int64_t msgs = int_member(p, "consumer_lag_stored", -1);
  if (msgs < 0)
    msgs = int_member(p, "consumer_lag", -1);
  if (msgs < 0)
    msgs = lag_from_position(p);
  char pbuf[16];
  snprintf(pbuf, sizeof pbuf, "%d", (int)partition);
  const char *labels[] = {lag->group, topic, pbuf};
  if (msgs >= 0) {
    sum->lag_total += msgs;
    hl_series_set(hl_metric_atv(lag->lag_messages, labels), (double)msgs);
  }
  int64_t oldest = lag->age_fn ? lag->age_fn(lag->age_ud, topic, (int32_t)partition) : -1;
  double secs;
  if (oldest >= 0) {
    secs = oldest < now_ms ? (double)(now_ms - oldest) / 1000.0 : 0.0;
    if (msgs == 0)
      lp->caught_up_ms = now_ms;
  } else if (msgs == 0) {
    lp->caught_up_ms = now_ms;
    secs = 0.0;
  } else if (msgs > 0) {
    secs = lp->caught_up_ms < now_ms ? (double)(now_ms - lp->caught_up_ms) / 1000.0 : 0.0;
  } else {
    return; /* lag unknown (no offset yet): no claim either way */
  }
  hl_series_set(hl_metric_atv(lag->lag_seconds, labels), secs);
}

int hl_lag_update(hl_lag *lag, const char *json, size_t len, int64_t now_ms,
                  hl_lag_summary *summary) {
  if (!lag || !json || len > LAG_JSON_MAX)
    return HL_EPARSE;
  json_error_t jerr;
  json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
  if (!json_is_object(root)) {
    json_decref(root);
    return HL_EPARSE;
  }
  hl_lag_summary sum = {0};
  json_t *brokers = json_object_get(root, "brokers");
  if (json_is_object(brokers))
    update_brokers(lag, brokers, &sum);

  for (size_t i = 0; i < lag->nparts; i++)
    lag->parts[i].seen = false;
  json_t *topics = json_object_get(root, "topics");
  const char *tname;
  json_t *t;
  if (json_is_object(topics)) {
    json_object_foreach(topics, tname, t) {
      json_t *parts = json_object_get(t, "partitions");
      if (!json_is_object(parts))
        continue;
      const char *pkey;
      json_t *p;
      json_object_foreach(parts, pkey, p) {
        if (json_is_object(p))
          update_partition(lag, tname, p, now_ms, &sum);
      }
    }
  }
  /* Partitions no longer assigned here drop their series. */
  for (size_t i = 0; i < lag->nparts;) {
    if (lag->parts[i].seen) {
      i++;
      continue;
    }
    char pbuf[16];
    snprintf(pbuf, sizeof pbuf, "%d", (int)lag->parts[i].partition);
    const char *labels[] = {lag->group, lag->parts[i].topic, pbuf};
    hl_metric_remove(lag->lag_messages, labels);
    hl_metric_remove(lag->lag_seconds, labels);
    free(lag->parts[i].topic);
    lag->parts[i] = lag->parts[--lag->nparts];
  }

  json_t *cgrp = json_object_get(root, "cgrp");
  if (json_is_object(cgrp)) {
    const char *js = json_string_value(json_object_get(cgrp, "join_state"));
    sum.group_steady = js && strcmp(js, "steady") == 0;
    int64_t cnt = int_member(cgrp, "rebalance_cnt", -1);
    if (cnt > lag->rebalance_cnt) {
      hl_series_add(hl_metric_at(lag->rebalances, lag->group), (double)(cnt - lag->rebalance_cnt));
      lag->rebalance_cnt = cnt;
    } else {
      hl_metric_at(lag->rebalances, lag->group); /* expose the series at 0 */
    }
  }
  json_decref(root);
  if (summary)
    *summary = sum;
  return 0;
}
