/*
 * Helpers for tests that run an hl_worker on librdkafka's mock cluster: the
 * worker on a thread of its own, a processor that copies every input to the
 * topic named by its ud, and one value read from a metrics registry.
 */
#ifndef HL_WORKER_TEST_H
#define HL_WORKER_TEST_H

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "hl/buf.h"
#include "hl/error.h"
#include "hl/metrics.h"
#include "hl/worker.h"
#include "hl_test.h"

/* A worker running hl_worker_run on its own thread; rc is its result. */
typedef struct run {
  hl_worker *w;
  pthread_t th;
  int rc;
} run;

static inline void *hl_test_runner(void *arg) {
  run *r = arg;
  r->rc = hl_worker_run(r->w);
  return NULL;
}

static inline void run_start(run *r) { cr_assert_eq(pthread_create(&r->th, NULL, hl_test_runner, r), 0); }

/* Stops the worker, waits for its thread and returns hl_worker_run's result. */
static inline int run_stop(run *r) {
  hl_worker_stop(r->w);
  pthread_join(r->th, NULL);
  return r->rc;
}

/* A processor that copies each input unchanged to the topic ud. */
static inline hl_proc_result forward(void *ud, hl_worker *w, hl_kafka_msg *msg) {
  int r = hl_worker_forward(w, msg, ud);
  return r == 0 ? HL_PROC_OK : r == HL_EFATAL ? HL_PROC_FATAL : HL_PROC_RETRY;
}

/* The number after the first occurrence of needle in the rendered registry, or -1. */
static inline double metric_value(hl_metrics *reg, const char *needle) {
  hl_buf b;
  hl_buf_init(&b, 0);
  hl_metrics_render(reg, &b);
  char *at = strstr(b.data, needle);
  double v = at ? strtod(at + strlen(needle), NULL) : -1;
  hl_buf_free(&b);
  return v;
}

#endif
