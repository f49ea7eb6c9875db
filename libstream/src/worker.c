#include "hl/worker.h"

#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hl/admin.h"
#include "hl/downstream.h"
#include "hl/error.h"
#include "hl/lag.h"
#include "hl/log.h"

#define NONE UINT32_MAX
/* Highest partition number a worker tracks (Kafka's practical limits are far below). */
#define PARTITION_MAX 100000
/*
 * Largest value hl_worker_forward lends to the producer instead of copying:
 * librdkafka's message.copy.max.bytes default, below which it copies the
 * value into the produce request when it builds it, so that only
 * building the request reads the lent bytes.
 */
#define LEND_MAX 65535
/* How often the loop refreshes its gauges and, when paused, serves group events. */
#define TICK_NS 100000000ull
/*
 * A hold (a bound reached) pauses the partitions only after this long.
 * Pausing makes librdkafka drop what it prefetched for the partitions
 * (tens of MB for a busy worker) and fetch it again on resume: in
 * bench/pipeline every resume of hl-validator after a downstream hold of a
 * fraction of a second left it with nothing to do for ~0.5 s, and hl-loader
 * ran dry behind it. Holding without pausing keeps the prefetch, which
 * librdkafka bounds itself (queued.max.messages.kbytes); a long hold (a
 * downstream consumer down) still pauses, to serve group events.
 */
#define PAUSE_AFTER_MS 2000
/* Retry backoff of a failing processor: 50 ms doubling up to 5 s. */
#define BACKOFF_MIN_MS 50
#define BACKOFF_MAX_MS 5000
/* Longest single wait for input while a processor holds deferred inputs. */
#define DEFER_SLICE_MS 10
/* How long a producer call may wait for room in the local queue. */
#define ENQUEUE_TIMEOUT_MS 30000
/* Distinct reason labels of hl_worker_messages_dlq_total; later codes count as "other". */
#define DLQ_REASONS_MAX 32
#define DLQ_REASON_LEN 64

struct part;

/* One input between consume and done. The ticket is first: a ticket pointer is a slot pointer. */
typedef struct slot {
  hl_kafka_ticket ticket;
  struct part *part; /* NULL once abandoned by a revoke: freed when its deliveries end */
  uint32_t next;     /* next in the partition's FIFO, or in the free list */
  bool in_use;
  bool processed; /* the processor is done with it (the guard was released) */
  bool rejected;  /* hl_worker_reject was called */
  bool deferred;  /* the processor holds it (HL_PROC_DEFER) until hl_worker_complete */
  bool early;     /* completed inside the processor call that deferred it */
  hl_proc_result early_result;
  hl_series *dlq; /* the dead-letter counter (topic, reason) of its rejection */
  bool lent;      /* an output points at the input's value (hl_worker_forward) */
  bool zombie;    /* freed while lent with outputs pending: kept until hl_worker_free */
  rd_kafka_message_t *held; /* the input, kept while lent; destroyed with the slot */
  int64_t offset;
  int64_t ts_ms;
  uint64_t recv_ns;
  size_t bytes;
} slot;

typedef struct wtopic wtopic;

typedef struct part {
  wtopic *topic;
  int32_t partition;
  uint32_t head, tail; /* FIFO of slots in offset order */
  bool dirty;          /* in the dirty list */
  bool blocked;        /* the head failed: nothing after it may be stored */
} part;

struct wtopic {
  char *name;
  rd_kafka_topic_t *rkt; /* the consumer's handle, for offset stores */
  part **parts;          /* indexed by partition number */
  int32_t nparts;
  hl_series *in;
};

struct hl_worker {
  hl_worker_opts o;
  hl_processor proc;
  char **topics;
  hl_producer *producer;
  hl_consumer *consumer;

  slot *slots;
  uint32_t nslots;
  uint32_t free_head;
  size_t inflight, inflight_bytes;

  wtopic **wtopics;
  size_t nwtopics;
  wtopic *last_topic;
  part **dirty;
  size_t ndirty, capdirty, nparts_total;

  hl_kafka_msg *batch;
  hl_proc_result *results;
  size_t nbatch;

  bool paused, draining_now;
  uint64_t hold_since; /* when a bound started holding consumption (ns); 0: not holding */
  hl_downstream *down; /* NULL: no downstream bound */
  uint64_t down_noted;  /* inputs consumed when last noted (each input: about one output) */
  uint64_t consumed_bytes, down_noted_bytes; /* their bytes, as the bound's mean size */
  size_t ndeferred;      /* inputs deferred and not completed */
  bool in_call;          /* inside the processor's process/process_batch */
  rd_kafka_queue_t *cq;  /* the consumer's queue, to wake a waiting poll */
  _Atomic bool started, draining, fatal, woken;
  _Atomic int stop;
  _Atomic bool on_signals; /* hl_worker_handle_signals: SIGTERM/SIGINT stop it too */
  char fatal_reason[256]; /* written once before fatal is set */

  hl_metric *m_in, *m_dlq;
  char *dlq_reasons[DLQ_REASONS_MAX]; /* reason labels seen (worker thread only) */
  size_t ndlq_reasons;
  hl_series *s_latency, *s_inflight, *s_inflight_bytes, *s_paused, *s_retries;

  _Atomic uint64_t n_consumed, n_done, n_dlq, n_retries, n_pauses, n_partition_pauses;
  _Atomic size_t a_inflight, a_inflight_bytes, a_max_inflight, a_deferred;
};

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void hl_worker_opts_from_config(const hl_config *cfg, hl_worker_opts *o) {
  memset(o, 0, sizeof *o);
  hl_kafka_opts_from_config(cfg, &o->kafka);
  o->drain_timeout_ms = hl_config_int(cfg, "HL_DRAIN_TIMEOUT");
  o->batch_max = (size_t)hl_config_int(cfg, "HL_WORKER_BATCH_MAX");
  o->batch_wait_ms = hl_config_int(cfg, "HL_WORKER_BATCH_WAIT");
  o->max_inflight = (size_t)hl_config_int(cfg, "HL_WORKER_MAX_INFLIGHT");
  o->max_inflight_bytes = (size_t)hl_config_int(cfg, "HL_WORKER_MAX_INFLIGHT_BYTES");
  o->retry_timeout_ms = hl_config_int(cfg, "HL_WORKER_RETRY_TIMEOUT");
  /* A binary with its own copy of the worker variables may lack it: 0 is the default. */
  if (hl_config_has(cfg, "HL_WORKER_CLOSE_TIMEOUT"))
    o->close_timeout_ms = hl_config_int(cfg, "HL_WORKER_CLOSE_TIMEOUT");
}

int hl_worker_exit_status(int run_result) {
  if (run_result == 0)
    return HL_EXIT_OK;
  return run_result == HL_ETIMEOUT ? HL_EXIT_DEADLINE : HL_EXIT_FAILURE;
}

static void set_fatal(hl_worker *w, const char *why) {
  if (atomic_load(&w->fatal))
    return;
  snprintf(w->fatal_reason, sizeof w->fatal_reason, "%s", why);
  atomic_store(&w->fatal, true);
  hl_log_kv(HL_LOG_ERROR, "worker stopping on a fatal error", "error", w->fatal_reason, NULL);
}

/* ---- Slots and partitions ------------------------------------------------------ */

static slot *slot_alloc(hl_worker *w) {
  if (w->free_head == NONE)
    return NULL;
  slot *s = &w->slots[w->free_head];
  w->free_head = s->next;
  memset(s, 0, sizeof *s);
  s->in_use = true;
  s->next = NONE;
  s->ticket.pending = 1; /* the processing guard */
  return s;
}

static void slot_link_free(hl_worker *w, slot *s) {
  s->next = w->free_head;
  w->free_head = (uint32_t)(s - w->slots);
}

static void slot_free(hl_worker *w, slot *s) {
  w->inflight--;
  w->inflight_bytes -= s->bytes;
  s->in_use = false;
  s->part = NULL;
  if (s->held) {
    if (s->ticket.pending > 0) {
      /* An output may still read the input's value: neither may go before the producer. */
      s->zombie = true;
      return;
    }
    rd_kafka_message_destroy(s->held);
    s->held = NULL;
  }
  slot_link_free(w, s);
}

/*
 * Lets go of an input's message: destroyed now, or, when an output still
 * points at its value, kept with its slot until the outputs are delivered
 * (slot_free). A slot already freed had its outputs delivered.
 */
static void input_drop(hl_kafka_msg *m) {
  slot *s = m->priv;
  if (s && s->lent && s->in_use && !s->held)
    s->held = m->rkm;
  else
    rd_kafka_message_destroy(m->rkm);
  m->rkm = NULL;
}

static wtopic *topic_get(hl_worker *w, const char *name) {
  if (w->last_topic && strcmp(w->last_topic->name, name) == 0)
    return w->last_topic;
  for (size_t i = 0; i < w->nwtopics; i++)
    if (strcmp(w->wtopics[i]->name, name) == 0)
      return w->last_topic = w->wtopics[i];
  wtopic **v = realloc(w->wtopics, (w->nwtopics + 1) * sizeof *v);
  if (!v)
    return NULL;
  w->wtopics = v;
  wtopic *t = calloc(1, sizeof *t);
  if (!t)
    return NULL;
  t->name = strdup(name);
  t->rkt = t->name ? rd_kafka_topic_new(hl_consumer_handle(w->consumer), name, NULL) : NULL;
  if (!t->rkt) {
    free(t->name);
    free(t);
    return NULL;
  }
  t->in = hl_metric_at(w->m_in, name);
  w->wtopics[w->nwtopics++] = t;
  return w->last_topic = t;
}

static part *part_get(hl_worker *w, const char *topic, int32_t partition) {
  if (partition < 0 || partition >= PARTITION_MAX)
    return NULL;
  wtopic *t = topic_get(w, topic);
  if (!t)
    return NULL;
  if (partition >= t->nparts) {
    int32_t n = partition + 1;
    part **v = realloc(t->parts, (size_t)n * sizeof *v);
    if (!v)
      return NULL;
    for (int32_t i = t->nparts; i < n; i++)
      v[i] = NULL;
    t->parts = v;
    t->nparts = n;
  }
  if (t->parts[partition])
    return t->parts[partition];
  if (w->nparts_total + 1 > w->capdirty) {
    size_t cap = w->capdirty ? w->capdirty * 2 : 64;
    part **d = realloc(w->dirty, cap * sizeof *d);
    if (!d)
      return NULL;
    w->dirty = d;
    w->capdirty = cap;
  }
  part *p = calloc(1, sizeof *p);
  if (!p)
    return NULL;
  p->topic = t;
  p->partition = partition;
  p->head = p->tail = NONE;
  w->nparts_total++;
  t->parts[partition] = p;
  return p;
}

static void mark_dirty(hl_worker *w, part *p) {
  if (!p->dirty) {
    p->dirty = true;
    w->dirty[w->ndirty++] = p;
  }
}

/* Ticket completion: the processor and every delivery are done. */
static void ticket_done(void *ud, hl_kafka_ticket *t) {
  hl_worker *w = ud;
  slot *s = (slot *)t;
  if (s->zombie) {
    rd_kafka_message_destroy(s->held);
    s->held = NULL;
    s->zombie = false;
    slot_link_free(w, s);
    return;
  }
  if (!s->part) {
    slot_free(w, s); /* abandoned by a revoke or drain */
    return;
  }
  mark_dirty(w, s->part);
}

/* Pops the done prefix of p's FIFO and stores the offset after it. */
static void sweep_part(hl_worker *w, part *p, uint64_t now) {
  int64_t last = -1;
  while (p->head != NONE && !p->blocked) {
    slot *s = &w->slots[p->head];
    if (s->ticket.pending != 0)
      break;
    if (s->ticket.err) {
      char why[400];
      snprintf(why, sizeof why, "output of %s/%d offset %lld not delivered: %s", p->topic->name,
               (int)p->partition, (long long)s->offset, rd_kafka_err2str(s->ticket.err));
      set_fatal(w, why);
      p->blocked = true;
      break;
    }
    last = s->offset;
    hl_series_observe(w->s_latency, (double)(now - s->recv_ns) / 1e9);
    p->head = s->next;
    if (p->head == NONE)
      p->tail = NONE;
    slot_free(w, s);
    atomic_fetch_add_explicit(&w->n_done, 1, memory_order_relaxed);
  }
  if (last >= 0 && hl_consumer_store(w->consumer, p->topic->rkt, p->partition, last + 1) < 0 &&
      hl_log_enabled(HL_LOG_DEBUG))
    hl_log_kv(HL_LOG_DEBUG, "offset store refused (partition no longer assigned)", "topic",
              p->topic->name, NULL);
}

static void sweep_dirty(hl_worker *w) {
  if (w->ndirty == 0)
    return;
  uint64_t now = now_ns();
  for (size_t i = 0; i < w->ndirty; i++) {
    w->dirty[i]->dirty = false;
    sweep_part(w, w->dirty[i], now);
  }
  w->ndirty = 0;
}

/*
 * Lets go of every slot of p: those waiting for deliveries are orphaned
 * (freed when their reports arrive), the rest are freed now.
 */
static void abandon_part(hl_worker *w, part *p) {
  uint32_t i = p->head;
  while (i != NONE) {
    slot *s = &w->slots[i];
    i = s->next;
    if (s->deferred || (s->processed && s->ticket.pending > 0))
      s->part = NULL; /* freed when completed, or when its deliveries end */
    else
      slot_free(w, s);
  }
  p->head = p->tail = NONE;
  p->blocked = false;
}

static bool part_waiting(hl_worker *w, part *p) {
  for (uint32_t i = p->head; i != NONE; i = w->slots[i].next)
    if (w->slots[i].processed && w->slots[i].ticket.pending > 0)
      return true;
  return false;
}

static int64_t age_fn(void *ud, const char *topic, int32_t partition) {
  hl_worker *w = ud;
  for (size_t i = 0; i < w->nwtopics; i++) {
    wtopic *t = w->wtopics[i];
    if (strcmp(t->name, topic) != 0 || partition < 0 || partition >= t->nparts)
      continue;
    part *p = t->parts[partition];
    if (!p || p->head == NONE)
      return -1;
    return w->slots[p->head].ts_ms;
  }
  return -1;
}

/* ---- Rebalance hooks ------------------------------------------------------------- */

static void on_assigned(void *ud, const rd_kafka_topic_partition_list_t *parts) {
  hl_worker *w = ud;
  for (int i = 0; i < parts->cnt; i++) {
    part *p = part_get(w, parts->elems[i].topic, parts->elems[i].partition);
    if (p)
      p->blocked = false;
  }
  /* New partitions start paused while the worker is (hl_consumer_pause holds the state). */
  if (hl_log_enabled(HL_LOG_INFO)) {
    char n[16];
    snprintf(n, sizeof n, "%d", parts->cnt);
    hl_log_kv(HL_LOG_INFO, "partitions assigned", "count", n, NULL);
  }
}

static void on_revoking(void *ud, const rd_kafka_topic_partition_list_t *parts, bool lost) {
  hl_worker *w = ud;
  /* Deferred inputs are finished first, so that what they wrote gets its offsets stored. */
  if (!lost && !w->draining_now && w->ndeferred && w->proc.flush)
    w->proc.flush(w->proc.ud, w, w->o.drain_timeout_ms, atomic_load(&w->fatal));
  /* Inputs of these partitions not yet processed are dropped (they are not stored). */
  for (size_t i = 0; i < w->nbatch; i++) {
    hl_kafka_msg *m = &w->batch[i];
    if (!m->rkm)
      continue;
    for (int j = 0; j < parts->cnt; j++) {
      if (m->partition == parts->elems[j].partition && strcmp(m->topic, parts->elems[j].topic) == 0) {
        input_drop(m);
        break;
      }
    }
  }
  /* Wait for what was already produced, then store what is done. */
  uint64_t deadline = now_ns() + (uint64_t)w->o.drain_timeout_ms * 1000000ull;
  for (int j = 0; j < parts->cnt; j++) {
    part *p = part_get(w, parts->elems[j].topic, parts->elems[j].partition);
    if (!p)
      continue;
    while (!lost && !w->draining_now && part_waiting(w, p) && now_ns() < deadline)
      hl_producer_poll(w->producer, 10);
    if (!lost)
      sweep_part(w, p, now_ns());
    abandon_part(w, p);
  }
  if (hl_log_enabled(HL_LOG_INFO)) {
    char n[16];
    snprintf(n, sizeof n, "%d", parts->cnt);
    hl_log_kv(HL_LOG_INFO, lost ? "partitions lost" : "partitions revoked", "count", n, NULL);
  }
}

/* ---- Creation ---------------------------------------------------------------------- */

int hl_worker_new(const hl_worker_opts *opts, const hl_processor *proc, hl_worker **out,
                  char *err, size_t errlen) {
  if (!opts || !proc || (!proc->process && !proc->process_batch) || opts->ntopics == 0) {
    if (err)
      snprintf(err, errlen, "worker: a processor and at least one input topic are required");
    return -EINVAL;
  }
  hl_worker *w = calloc(1, sizeof *w);
  if (!w)
    return -ENOMEM;
  w->o = *opts;
  w->proc = *proc;
  if (!w->proc.stage)
    w->proc.stage = "worker";
  if (!w->o.batch_max)
    w->o.batch_max = 500;
  if (w->o.close_timeout_ms <= 0)
    w->o.close_timeout_ms = 10000;
  if (w->o.pause_after_ms <= 0)
    w->o.pause_after_ms = PAUSE_AFTER_MS;
  if (!w->o.max_inflight)
    w->o.max_inflight = 100000;
  if (!w->o.max_inflight_bytes)
    w->o.max_inflight_bytes = 128u << 20;
  if (w->o.max_inflight > 10000000)
    w->o.max_inflight = 10000000;
  if (w->o.batch_max > w->o.max_inflight)
    w->o.batch_max = w->o.max_inflight;
  int r = -ENOMEM;
  w->topics = calloc(opts->ntopics, sizeof *w->topics);
  if (!w->topics)
    goto fail;
  for (size_t i = 0; i < opts->ntopics; i++)
    if (!(w->topics[i] = strdup(opts->topics[i])))
      goto fail;
  w->o.topics = (const char *const *)w->topics;
  /* One spare slot per batch entry, so a batch in hand always fits. */
  w->nslots = (uint32_t)(w->o.max_inflight + w->o.batch_max);
  w->slots = calloc(w->nslots, sizeof *w->slots);
  w->batch = calloc(w->o.batch_max, sizeof *w->batch);
  w->results = calloc(w->o.batch_max, sizeof *w->results);
  if (!w->slots || !w->batch || !w->results)
    goto fail;
  for (uint32_t i = 0; i < w->nslots; i++)
    w->slots[i].next = i + 1 < w->nslots ? i + 1 : NONE;
  w->free_head = 0;

  hl_metrics *m = opts->kafka.metrics;
  if (m) {
    w->m_in = hl_metrics_counter(m, "hl_worker_messages_in_total", "Input messages consumed.",
                                 "topic");
    w->m_dlq = hl_metrics_counter(m, "hl_worker_messages_dlq_total",
                                  "Input messages sent to the dead-letter topic, by input topic "
                                  "and reason (the hl-error-code).",
                                  "topic,reason");
    w->s_latency = hl_metric_at(hl_metrics_histogram(m, "hl_worker_processing_seconds",
                                                     "Time from consuming an input to its offset "
                                                     "being stored (outputs acknowledged).",
                                                     NULL, hl_metrics_latency_buckets,
                                                     hl_metrics_latency_nbuckets));
    w->s_inflight = hl_metric_at(hl_metrics_gauge(m, "hl_worker_inflight_messages",
                                                  "Inputs consumed and not yet done.", NULL));
    w->s_inflight_bytes = hl_metric_at(hl_metrics_gauge(
        m, "hl_worker_inflight_bytes", "Bytes of inputs consumed and not yet done.", NULL));
    w->s_paused = hl_metric_at(hl_metrics_gauge(
        m, "hl_worker_paused", "1 while consumption is held by the in-flight or the downstream bound.",
        NULL));
    w->s_retries = hl_metric_at(hl_metrics_counter(
        m, "hl_worker_retries_total", "Inputs processed again after a retriable error.", NULL));
  }

  if (opts->downstream_group && *opts->downstream_group) {
    hl_downstream_opts dopts = {.group = opts->downstream_group,
                                .topic = opts->downstream_topic,
                                .max_lag = opts->max_downstream_lag,
                                .max_partition_bytes = opts->max_downstream_partition_bytes,
                                .metrics = m,
                                .lag_metric = "hl_worker_downstream_lag_messages",
                                .waits_metric = "hl_worker_downstream_waits_total"};
    if ((r = hl_downstream_new(&dopts, &w->down)) < 0) {
      if (err)
        snprintf(err, errlen, "worker: the downstream bound needs a group, an output topic, a lag >= 1 "
                              "and partition bytes >= 0");
      goto fail;
    }
  }
  w->o.downstream_group = w->o.downstream_topic = NULL; /* not kept: the bound holds copies */
  r = hl_producer_new(&opts->kafka, ticket_done, w, &w->producer, err, errlen);
  if (r)
    goto fail;
  hl_consumer_hooks hooks = {.ud = w, .assigned = on_assigned, .revoking = on_revoking};
  r = hl_consumer_new(&opts->kafka, &hooks, &w->consumer, err, errlen);
  if (r)
    goto fail;
  if (hl_consumer_lag(w->consumer))
    hl_lag_set_age_fn(hl_consumer_lag(w->consumer), age_fn, w);
  w->cq = rd_kafka_queue_get_consumer(hl_consumer_handle(w->consumer));
  *out = w;
  return 0;
fail:
  hl_worker_free(w);
  return r;
}

hl_worker *hl_worker_free(hl_worker *w) {
  if (!w)
    return NULL;
  /*
   * Order matters: closing the consumer runs the revoke hook, which uses the
   * producer and the topic handles; the topic handles belong to the
   * consumer's rd_kafka_t and must go before it is destroyed.
   */
  w->draining_now = true;
  if (w->consumer)
    hl_consumer_close_within(w->consumer, w->o.close_timeout_ms);
  for (size_t i = 0; i < w->nbatch; i++)
    if (w->batch[i].rkm)
      input_drop(&w->batch[i]);
  /*
   * The producer goes next: an output may still point at an input's value,
   * and every input must be destroyed before the consumer is.
   */
  w->producer = hl_producer_free(w->producer);
  for (uint32_t i = 0; w->slots && i < w->nslots; i++)
    if (w->slots[i].held) {
      rd_kafka_message_destroy(w->slots[i].held);
      w->slots[i].held = NULL;
    }
  for (size_t i = 0; i < w->nwtopics; i++) {
    wtopic *t = w->wtopics[i];
    for (int32_t j = 0; j < t->nparts; j++)
      free(t->parts[j]);
    free(t->parts);
    if (t->rkt)
      rd_kafka_topic_destroy(t->rkt);
    free(t->name);
    free(t);
  }
  w->nwtopics = 0;
  if (w->cq)
    rd_kafka_queue_destroy(w->cq);
  w->consumer = hl_consumer_free(w->consumer);
  w->down = hl_downstream_free(w->down);
  free(w->wtopics);
  free(w->dirty);
  for (size_t i = 0; i < w->ndlq_reasons; i++)
    free(w->dlq_reasons[i]);
  if (w->topics)
    for (size_t i = 0; i < w->o.ntopics; i++)
      free(w->topics[i]);
  free(w->topics);
  free(w->slots);
  free(w->batch);
  free(w->results);
  free(w);
  return NULL;
}

hl_producer *hl_worker_producer(hl_worker *w) { return w->producer; }
hl_consumer *hl_worker_consumer(hl_worker *w) { return w->consumer; }

void hl_worker_stop(hl_worker *w) { atomic_store(&w->stop, 1); }

/*
 * Set by the SIGTERM/SIGINT handler. The handler touches nothing else: a
 * signal may come after the worker was freed (a second SIGTERM while the
 * process exits), and a pointer to the worker would then be a write into
 * freed memory (under ASan, a report that deadlocked with LeakSanitizer's
 * exit-time check: issue 5's demo hang).
 */
static _Atomic int signal_stop;

/* A stop was asked for: hl_worker_stop, or a signal for the worker that handles them. */
static bool stop_asked(hl_worker *w) {
  return atomic_load(&w->stop) || (atomic_load(&w->on_signals) && atomic_load(&signal_stop));
}

bool hl_worker_stopping(hl_worker *w) { return stop_asked(w) || atomic_load(&w->fatal); }

void hl_worker_wake(hl_worker *w) {
  atomic_store(&w->woken, true);
  if (w->cq)
    rd_kafka_queue_yield(w->cq);
}

static void on_signal(int sig) {
  (void)sig;
  atomic_store(&signal_stop, 1);
}

int hl_worker_handle_signals(hl_worker *w) {
  /* A signal before this would have ended the process: none is pending for w. */
  atomic_store(&signal_stop, 0);
  atomic_store(&w->on_signals, true);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  if (sigaction(SIGTERM, &sa, NULL) < 0 || sigaction(SIGINT, &sa, NULL) < 0)
    return -errno;
  return 0;
}

bool hl_worker_ready(void *ud, char *reason, size_t len) {
  hl_worker *w = ud;
  const char *why = NULL;
  if (atomic_load(&w->fatal))
    why = w->fatal_reason;
  else if (atomic_load(&w->draining))
    why = "draining";
  else if (!atomic_load(&w->started))
    why = "not started";
  if (why) {
    if (reason && len)
      snprintf(reason, len, "%s", why);
    return false;
  }
  if (hl_producer_fatal(w->producer, reason, len))
    return false;
  return hl_consumer_ready(w->consumer, reason, len);
}

void hl_worker_get_stats(hl_worker *w, hl_worker_stats *st) {
  st->consumed = atomic_load(&w->n_consumed);
  st->done = atomic_load(&w->n_done);
  st->dlq = atomic_load(&w->n_dlq);
  st->retries = atomic_load(&w->n_retries);
  st->inflight = atomic_load(&w->a_inflight);
  st->inflight_bytes = atomic_load(&w->a_inflight_bytes);
  st->max_inflight_seen = atomic_load(&w->a_max_inflight);
  st->pauses = atomic_load(&w->n_pauses);
  st->partition_pauses = atomic_load(&w->n_partition_pauses);
  st->deferred = atomic_load(&w->a_deferred);
}

/* ---- Producing from processors ----------------------------------------------------- */

int hl_worker_produce(hl_worker *w, hl_kafka_msg *msg, const hl_kafka_out *out) {
  slot *s = msg ? msg->priv : NULL;
  return hl_producer_send(w->producer, out, s ? &s->ticket : NULL, ENQUEUE_TIMEOUT_MS);
}

int hl_worker_forward(hl_worker *w, hl_kafka_msg *msg, const char *topic) {
  /*
   * The input's parsed headers move to the output instead of being copied
   * (a copy is one allocation per header, and so is its destruction). A
   * consumed message keeps its headers' wire form: a later read of them
   * parses that again, so the input still shows the same headers.
   */
  rd_kafka_headers_t *h = NULL;
  if (rd_kafka_message_detach_headers(msg->rkm, &h) != RD_KAFKA_RESP_ERR_NO_ERROR)
    h = NULL;
  /*
   * The value is lent rather than copied when the input is the worker's:
   * its slot then keeps the input until the outputs are delivered.
   */
  slot *s = msg->priv;
  hl_kafka_out out = {.topic = topic,
                      .key = msg->key,
                      .key_len = msg->key_len,
                      .value = msg->value,
                      .len = msg->len,
                      .headers = h,
                      .borrowed = s && s->in_use && msg->len <= LEND_MAX};
  int r = hl_worker_produce(w, msg, &out);
  if (r && h)
    rd_kafka_message_set_headers(msg->rkm, h); /* not enqueued: the list is still ours */
  if (!r && out.borrowed)
    s->lent = true;
  return r;
}

/*
 * The reason label of a dead-letter code: the code itself for the first
 * DLQ_REASONS_MAX distinct codes (cut to DLQ_REASON_LEN bytes), then
 * "other", so that a processor's codes cannot grow the series without bound.
 */
static const char *dlq_reason(hl_worker *w, const char *code) {
  char cut[DLQ_REASON_LEN + 1];
  snprintf(cut, sizeof cut, "%s", code && *code ? code : "rejected");
  for (size_t i = 0; i < w->ndlq_reasons; i++)
    if (strcmp(w->dlq_reasons[i], cut) == 0)
      return w->dlq_reasons[i];
  if (w->ndlq_reasons == DLQ_REASONS_MAX)
    return "other";
  char *d = strdup(cut);
  if (!d)
    return "other";
  w->dlq_reasons[w->ndlq_reasons++] = d;
  return d;
}

/* Sends msg to the dead-letter topic with detail (text) or outcome (OperationOutcome JSON). */
static hl_proc_result reject(hl_worker *w, hl_kafka_msg *msg, const char *code, const char *detail,
                             const char *outcome) {
  slot *s = msg->priv;
  hl_kafka_ticket *t = s ? &s->ticket : NULL;
  int r = outcome ? hl_kafka_dlq_outcome(w->producer, msg->rkm, w->proc.stage, code, outcome, t)
                  : hl_kafka_dlq(w->producer, msg->rkm, w->proc.stage, code, detail, t);
  if (r == HL_EFATAL)
    return HL_PROC_FATAL;
  if (r)
    return HL_PROC_RETRY;
  if (s) {
    s->rejected = true;
    /* Counted when the input is finished as rejected (a later retry does not count twice). */
    if (w->m_dlq)
      s->dlq = hl_metric_at(w->m_dlq, msg->topic, dlq_reason(w, code));
  }
  return HL_PROC_BAD_INPUT;
}

hl_proc_result hl_worker_reject(hl_worker *w, hl_kafka_msg *msg, const char *code,
                                const char *detail) {
  return reject(w, msg, code, detail ? detail : "", NULL);
}

hl_proc_result hl_worker_reject_outcome(hl_worker *w, hl_kafka_msg *msg, const char *code,
                                        const char *outcome_json) {
  return reject(w, msg, code, NULL, outcome_json ? outcome_json : "");
}

/* ---- The loop ------------------------------------------------------------------------ */

static void update_gauges(hl_worker *w) {
  hl_series_set(w->s_inflight, (double)w->inflight);
  hl_series_set(w->s_inflight_bytes, (double)w->inflight_bytes);
  hl_series_set(w->s_paused, w->hold_since ? 1 : 0);
}

/* Takes rkm into the batch with a slot; false (rkm untouched) when no slot is free. */
static bool batch_add(hl_worker *w, rd_kafka_message_t *rkm, uint64_t now) {
  hl_kafka_msg *m = &w->batch[w->nbatch];
  hl_kafka_msg_init(m, rkm);
  part *p = part_get(w, m->topic, m->partition);
  if (!p)
    return false;
  slot *s = slot_alloc(w);
  if (!s)
    return false;
  s->part = p;
  s->offset = m->offset;
  s->ts_ms = m->timestamp_ms >= 0 ? m->timestamp_ms : hl_lag_now_ms();
  s->recv_ns = now;
  s->bytes = m->len + m->key_len;
  uint32_t idx = (uint32_t)(s - w->slots);
  if (p->tail == NONE)
    p->head = idx;
  else
    w->slots[p->tail].next = idx;
  p->tail = idx;
  w->inflight++;
  w->inflight_bytes += s->bytes;
  w->consumed_bytes += s->bytes;
  if (w->inflight > atomic_load_explicit(&w->a_max_inflight, memory_order_relaxed))
    atomic_store_explicit(&w->a_max_inflight, w->inflight, memory_order_relaxed);
  m->priv = s;
  w->nbatch++;
  hl_series_inc(p->topic->in);
  atomic_fetch_add_explicit(&w->n_consumed, 1, memory_order_relaxed);
  return true;
}

/* Collects a batch: waits up to 100 ms for a first message, then up to batch_wait for more. */
static void collect(hl_worker *w, size_t limit) {
  uint64_t deadline = now_ns() + TICK_NS;
  while (w->nbatch < limit && w->inflight_bytes < w->o.max_inflight_bytes &&
         !stop_asked(w)) {
    rd_kafka_message_t *rkm = hl_consumer_poll(w->consumer, 0);
    if (!rkm) {
      uint64_t now = now_ns();
      if (now >= deadline || atomic_load_explicit(&w->woken, memory_order_relaxed))
        return;
      /* Error events and rebalances return early: the loop checks the deadline again. */
      int wait_ms = (int)((deadline - now + 999999) / 1000000);
      /* With deferred inputs the wait is sliced, in case the wake does not cut it short. */
      if (w->ndeferred && w->proc.poll && wait_ms > DEFER_SLICE_MS)
        wait_ms = DEFER_SLICE_MS;
      rkm = hl_consumer_poll(w->consumer, wait_ms);
      if (!rkm)
        continue;
    }
    uint64_t now = now_ns();
    if (!batch_add(w, rkm, now)) {
      /* Only memory exhaustion gets here; the input is not stored, so nothing is lost. */
      rd_kafka_message_destroy(rkm);
      set_fatal(w, "out of memory tracking partitions");
      return;
    }
    if (w->nbatch == 1)
      deadline = now + (uint64_t)w->o.batch_wait_ms * 1000000ull;
  }
}

static void run_processor(hl_worker *w, hl_kafka_msg *msgs, size_t n, hl_proc_result *res) {
  w->in_call = true;
  if (w->proc.process_batch) {
    for (size_t i = 0; i < n; i++)
      res[i] = HL_PROC_FATAL;
    w->proc.process_batch(w->proc.ud, w, msgs, n, res);
  } else {
    for (size_t i = 0; i < n; i++)
      res[i] = w->proc.process(w->proc.ud, w, &msgs[i]);
  }
  w->in_call = false;
}

/* Finishes one input after the processor: dead letter if needed, then drop the guard. */
static bool finish(hl_worker *w, hl_kafka_msg *m, hl_proc_result r) {
  slot *s = m->priv;
  if (r == HL_PROC_BAD_INPUT && !s->rejected)
    r = hl_worker_reject(w, m, "rejected", "the processor rejected the input");
  if (r == HL_PROC_BAD_INPUT) {
    hl_series_inc(s->dlq);
    atomic_fetch_add_explicit(&w->n_dlq, 1, memory_order_relaxed);
  } else if (r != HL_PROC_OK) {
    return false;
  }
  s->processed = true;
  hl_kafka_ticket_release(w->producer, &s->ticket);
  return true;
}

/* Lets the processor complete its finished deferred inputs. */
static void poll_processor(hl_worker *w) {
  if (!w->proc.poll)
    return;
  atomic_store_explicit(&w->woken, false, memory_order_relaxed);
  if (w->ndeferred)
    w->proc.poll(w->proc.ud, w);
}

int hl_worker_complete(hl_worker *w, hl_kafka_msg *msg, hl_proc_result r) {
  slot *s = msg ? msg->priv : NULL;
  if (!s || !msg->rkm || (!s->deferred && (!w->in_call || s->processed || s->early)))
    return -EINVAL;
  if (!s->deferred) {
    /* Completed before the call that defers it returned: applied when it returns. */
    s->early = true;
    s->early_result = r == HL_PROC_DEFER ? HL_PROC_RETRY : r;
    return 0;
  }
  s->deferred = false;
  w->ndeferred--;
  atomic_store_explicit(&w->a_deferred, w->ndeferred, memory_order_relaxed);
  if (r == HL_PROC_OK || r == HL_PROC_BAD_INPUT) {
    if (!finish(w, msg, r))
      r = HL_PROC_FATAL; /* the dead letter could not be enqueued */
  } else if (r != HL_PROC_FATAL) {
    r = HL_PROC_RETRY;
  }
  if (r == HL_PROC_FATAL || (r == HL_PROC_RETRY && !hl_worker_stopping(w))) {
    char why[400];
    snprintf(why, sizeof why, "deferred processing %s on %s/%d offset %lld",
             r == HL_PROC_FATAL ? "failed fatally" : "was given up", msg->topic,
             (int)msg->partition, (long long)msg->offset);
    set_fatal(w, why);
  }
  bool orphaned = r != HL_PROC_OK && r != HL_PROC_BAD_INPUT && !s->part;
  input_drop(msg); /* before the release below, which may free the slot */
  if (orphaned)
    hl_kafka_ticket_release(w->producer, &s->ticket); /* orphaned: freed when its deliveries end */
  msg->priv = NULL;
  return 0;
}

/* Backoff that keeps serving delivery reports; false when a stop was requested. */
static bool backoff(hl_worker *w, int ms) {
  uint64_t end = now_ns() + (uint64_t)ms * 1000000ull;
  while (now_ns() < end) {
    if (stop_asked(w))
      return false;
    hl_producer_poll(w->producer, 10);
    poll_processor(w);
    sweep_dirty(w);
  }
  return true;
}

static void process_batch(hl_worker *w) {
  /* Drop entries a revoke took away. */
  size_t n = 0;
  for (size_t i = 0; i < w->nbatch; i++)
    if (w->batch[i].rkm)
      w->batch[n++] = w->batch[i];
  w->nbatch = n;
  uint64_t first_fail = 0; /* when the first retriable failure came back */
  int delay = BACKOFF_MIN_MS;
  while (n > 0) {
    run_processor(w, w->batch, n, w->results);
    size_t again = 0;
    for (size_t i = 0; i < n; i++) {
      hl_proc_result r = w->results[i];
      slot *s = w->batch[i].priv;
      if (s->early) {
        s->early = false;
        r = s->early_result; /* completed within the call */
      }
      if (r == HL_PROC_DEFER) {
        /* The processor holds the message now, rkm included. */
        s->deferred = true;
        w->ndeferred++;
        continue;
      }
      if (r == HL_PROC_OK || r == HL_PROC_BAD_INPUT) {
        if (finish(w, &w->batch[i], r)) {
          input_drop(&w->batch[i]);
          continue;
        }
        r = HL_PROC_RETRY; /* the dead letter could not be enqueued */
      }
      if (r == HL_PROC_FATAL || hl_producer_fatal(w->producer, NULL, 0)) {
        char why[400];
        snprintf(why, sizeof why, "processing failed fatally on %s/%d offset %lld",
                 w->batch[i].topic, (int)w->batch[i].partition, (long long)w->batch[i].offset);
        set_fatal(w, why);
      }
      w->batch[again++] = w->batch[i];
    }
    n = again;
    w->nbatch = n;
    atomic_store_explicit(&w->a_deferred, w->ndeferred, memory_order_relaxed);
    if (n == 0 || atomic_load(&w->fatal))
      break;
    /*
     * Stopping: a processor interrupted by the stop (hl_worker_stopping)
     * gives its input back as retriable. It stays unprocessed and
     * uncommitted (the next owner processes it); it is no failure.
     */
    if (stop_asked(w))
      break;
    atomic_fetch_add_explicit(&w->n_retries, n, memory_order_relaxed);
    hl_series_add(w->s_retries, (double)n);
    /*
     * The timeout runs from the first failure, not from the first try: a
     * call that took long (hl-parser waiting on its downstream bound inside
     * one object) and then failed once is retried like any other.
     */
    if (!first_fail)
      first_fail = now_ns();
    else if ((int64_t)(now_ns() - first_fail) / 1000000 > w->o.retry_timeout_ms) {
      char why[400];
      snprintf(why, sizeof why, "processing still failing after the retry timeout on %s/%d",
               w->batch[0].topic, (int)w->batch[0].partition);
      set_fatal(w, why);
      break;
    }
    if (!backoff(w, delay))
      break; /* stopping: the inputs stay unprocessed and uncommitted */
    delay = delay * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : delay * 2;
  }
  /* Inputs left (fatal or stopping) are never stored; their slots go at drain. */
  for (size_t i = 0; i < w->nbatch; i++)
    input_drop(&w->batch[i]);
  w->nbatch = 0;
}

static void check_clients(hl_worker *w) {
  char why[256];
  if (hl_producer_fatal(w->producer, why, sizeof why))
    set_fatal(w, why);
  else if (hl_consumer_fatal(w->consumer, why, sizeof why))
    set_fatal(w, why);
}

static int drain(hl_worker *w) {
  atomic_store(&w->draining, true);
  uint64_t deadline = now_ns() + (uint64_t)w->o.drain_timeout_ms * 1000000ull;
  /* Deferred inputs first: the processor finishes them (or gives them up) by the deadline. */
  if (w->ndeferred && w->proc.flush)
    w->proc.flush(w->proc.ud, w, w->o.drain_timeout_ms, atomic_load(&w->fatal));
  if (w->ndeferred) {
    char n[24];
    snprintf(n, sizeof n, "%zu", w->ndeferred);
    hl_log_kv(HL_LOG_ERROR, "the processor left deferred inputs uncompleted (not committed)",
              "inputs", n, NULL);
  }
  /* Finish what was produced: wait for every acknowledgement (or the deadline). */
  while (hl_producer_outq_len(w->producer) > 0 && now_ns() < deadline) {
    hl_producer_poll(w->producer, 10);
    sweep_dirty(w);
  }
  hl_producer_poll(w->producer, 0);
  sweep_dirty(w);
  int left = hl_producer_outq_len(w->producer);
  /*
   * The final commit and leaving the group share one deadline: with the
   * brokers gone neither would ever finish, and what is not committed is
   * delivered again to the next owner anyway.
   */
  uint64_t close_deadline = now_ns() + (uint64_t)w->o.close_timeout_ms * 1000000ull;
  int r = hl_consumer_commit_within(w->consumer, w->o.close_timeout_ms);
  if (r && hl_log_enabled(HL_LOG_WARN))
    hl_log_kv(HL_LOG_WARN, "final offset commit failed", "error", hl_strerror(r), NULL);
  /* Leaving the group runs the revoke hook, which must not wait any more. */
  w->draining_now = true;
  uint64_t now = now_ns();
  long long close_ms = now < close_deadline ? (long long)((close_deadline - now) / 1000000ull) : 0;
  int cr = hl_consumer_close_within(w->consumer, close_ms);
  if (cr == HL_ETIMEOUT)
    hl_log_kv(HL_LOG_WARN,
              "close deadline passed: consumer destroyed without leaving the group "
              "(uncommitted inputs will be delivered again)",
              NULL);
  if (left > 0) {
    char n[16];
    snprintf(n, sizeof n, "%d", left);
    hl_log_kv(HL_LOG_WARN, "drain deadline passed; undelivered outputs dropped (inputs not committed)",
              "messages", n, NULL);
    hl_producer_purge(w->producer);
  }
  update_gauges(w);
  return left > 0 || cr == HL_ETIMEOUT ? HL_ETIMEOUT : 0;
}

int hl_worker_run(hl_worker *w) {
  if (atomic_exchange(&w->started, true))
    return HL_ECLOSED;
  int r = hl_consumer_subscribe(w->consumer, (const char *const *)w->topics, w->o.ntopics);
  if (r) {
    set_fatal(w, "cannot subscribe to the input topics");
    return HL_EFATAL;
  }
  size_t lo_msgs = w->o.max_inflight * 3 / 4, lo_bytes = w->o.max_inflight_bytes / 4 * 3;
  uint64_t last_tick = 0;
  while (!hl_worker_stopping(w)) {
    hl_producer_poll(w->producer, 0);
    poll_processor(w);
    sweep_dirty(w);
    uint64_t now = now_ns();
    if (now - last_tick >= TICK_NS) {
      last_tick = now;
      check_clients(w);
      update_gauges(w);
      atomic_store_explicit(&w->a_inflight, w->inflight, memory_order_relaxed);
      atomic_store_explicit(&w->a_inflight_bytes, w->inflight_bytes, memory_order_relaxed);
    }
    bool over = w->inflight >= w->o.max_inflight || w->inflight_bytes >= w->o.max_inflight_bytes;
    /* Measured once a second or every quarter of the bound (hl/downstream.h); an unknown lag never pauses. */
    bool down_over = false;
    if (w->down) {
      uint64_t consumed = atomic_load_explicit(&w->n_consumed, memory_order_relaxed);
      hl_downstream_note(w->down, (int64_t)(consumed - w->down_noted),
                         (int64_t)(w->consumed_bytes - w->down_noted_bytes));
      w->down_noted = consumed;
      w->down_noted_bytes = w->consumed_bytes;
      down_over = hl_downstream_over(w->down, hl_producer_handle(w->producer), now / 1000000);
    }
    /* A hold lasts until both bounds are clear and the in-flight inputs are back under 3/4. */
    if (over || down_over ||
        (w->hold_since && (w->inflight > lo_msgs || w->inflight_bytes > lo_bytes))) {
      if (!w->hold_since) {
        w->hold_since = now ? now : 1;
        atomic_fetch_add(&w->n_pauses, 1);
        update_gauges(w);
      }
      if (!w->paused && now - w->hold_since >= (uint64_t)w->o.pause_after_ms * 1000000ull) {
        w->paused = true;
        hl_consumer_pause(w->consumer, true);
        atomic_fetch_add(&w->n_partition_pauses, 1);
      }
      /* Paused: serve group events now and then; a message fetched before the pause is still taken. */
      if (w->paused && last_tick == now && w->inflight < w->nslots) {
        rd_kafka_message_t *rkm = hl_consumer_poll(w->consumer, 0);
        if (rkm) {
          if (batch_add(w, rkm, now))
            process_batch(w);
          else
            rd_kafka_message_destroy(rkm);
        }
      }
      hl_producer_poll(w->producer, 10);
      continue;
    }
    if (w->hold_since) {
      w->hold_since = 0;
      if (w->paused) {
        w->paused = false;
        hl_consumer_pause(w->consumer, false);
      }
      update_gauges(w);
    }
    size_t room = w->o.max_inflight - w->inflight;
    collect(w, room < w->o.batch_max ? room : w->o.batch_max);
    if (w->nbatch)
      process_batch(w);
  }
  r = drain(w);
  atomic_store(&w->a_inflight, w->inflight);
  atomic_store(&w->a_inflight_bytes, w->inflight_bytes);
  return atomic_load(&w->fatal) ? HL_EFATAL : r;
}

/* ---- A worker binary's main ------------------------------------------------------------ */

int hl_worker_main(const hl_worker_spec *spec) {
  hl_worker_opts wo;
  hl_worker_opts_from_config(spec->cfg, &wo);
  wo.kafka.metrics = spec->metrics;
  wo.downstream_group = spec->downstream_group;
  wo.downstream_topic = spec->downstream_topic;
  wo.max_downstream_lag = spec->max_downstream_lag;
  wo.max_downstream_partition_bytes = spec->max_downstream_partition_bytes;
  wo.topics = spec->topics;
  wo.ntopics = spec->ntopics;
  hl_worker *w = NULL;
  hl_admin *admin = NULL;
  char err[512] = "";
  int r = hl_worker_new(&wo, spec->proc, &w, err, sizeof err);
  if (r < 0)
    goto done;
  if (spec->attach)
    spec->attach(spec->attach_ud, w);
  const char *addr = hl_config_str(spec->cfg, "HL_ADMIN_ADDR");
  if (*addr) {
    if ((r = hl_admin_start(addr, spec->metrics, &admin)) < 0) {
      snprintf(err, sizeof err, "admin server on %s: %s", addr, hl_strerror(r));
      goto done;
    }
    if (spec->ready)
      hl_admin_set_readiness(admin, spec->ready, spec->ready_ud);
    else
      hl_admin_set_readiness(admin, hl_worker_ready, w);
  }
  if ((r = hl_worker_handle_signals(w)) < 0) {
    snprintf(err, sizeof err, "signal handlers: %s", hl_strerror(r));
    goto done;
  }
  r = hl_worker_run(w);
done:
  /* hl_worker_run's own failures were logged where they happened. */
  if (r < 0 && *err)
    hl_log_kv(HL_LOG_ERROR, "cannot run", "error", err, NULL);
  else if (r < 0 && hl_log_enabled(HL_LOG_INFO))
    hl_log_kv(HL_LOG_INFO, "stopped", "result", hl_strerror(r), NULL);
  else if (hl_log_enabled(HL_LOG_INFO))
    hl_log_kv(HL_LOG_INFO, "stopped", NULL);
  admin = hl_admin_stop(admin);
  w = hl_worker_free(w);
  return r == HL_ECONFIG ? HL_EXIT_CONFIG : hl_worker_exit_status(r);
}
