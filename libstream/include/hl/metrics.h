/*
 * Prometheus metrics: counters, gauges and histograms with labels, and the
 * text exposition format (version 0.0.4) that `promtool check metrics`
 * accepts.
 *
 * A registry (hl_metrics) holds metric families (hl_metric); a family with
 * labels holds one series (hl_series) per combination of label values.
 * Families are created at start-up; series are looked up (and created on
 * first use) with hl_metric_at(). Every function is thread-safe. Update
 * functions accept a NULL series and do nothing, so a failed allocation
 * costs a metric, never a crash. Counter names end in "_total".
 */
#ifndef HL_METRICS_H
#define HL_METRICS_H

#include <stddef.h>

#include "hl/buf.h"

typedef struct hl_metrics hl_metrics;
typedef struct hl_metric hl_metric;
typedef struct hl_series hl_series;

int hl_metrics_new(hl_metrics **out);
hl_metrics *hl_metrics_free(hl_metrics *reg);

/*
 * Registers a family. labels is a comma-separated list of label names
 * ("topic,partition") or NULL for none. Registering the same name twice
 * returns the existing family when type and labels agree, NULL otherwise.
 * Returns NULL on an invalid name or out of memory. The registry owns it.
 */
hl_metric *hl_metrics_counter(hl_metrics *reg, const char *name, const char *help,
                              const char *labels);
hl_metric *hl_metrics_gauge(hl_metrics *reg, const char *name, const char *help,
                            const char *labels);
/* bounds: nbounds strictly increasing upper bounds; +Inf is implicit. */
hl_metric *hl_metrics_histogram(hl_metrics *reg, const char *name, const char *help,
                                const char *labels, const double *bounds, size_t nbounds);

/* Default latency buckets in seconds (0.0005 .. 10). */
extern const double hl_metrics_latency_buckets[];
extern const size_t hl_metrics_latency_nbuckets;

/*
 * The series for the given label values: exactly as many strings as the
 * family has labels (none for an unlabeled family). Returns NULL when m is
 * NULL or memory runs out. The pointer stays valid until the series is
 * removed or the registry freed.
 */
hl_series *hl_metric_at(hl_metric *m, ...);
hl_series *hl_metric_atv(hl_metric *m, const char *const *values);
/* Removes one series (e.g. a revoked partition); 0 or HL_ENOTFOUND. */
int hl_metric_remove(hl_metric *m, const char *const *values);

void hl_series_inc(hl_series *s);
void hl_series_add(hl_series *s, double v); /* counters: v >= 0 */
void hl_series_set(hl_series *s, double v); /* gauges */
void hl_series_observe(hl_series *s, double v); /* histograms */
double hl_series_value(hl_series *s); /* counter/gauge value, histogram count */

/* Appends the whole registry in text exposition format to out. */
int hl_metrics_render(hl_metrics *reg, hl_buf *out);

/* The Content-Type of the exposition. */
#define HL_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

#endif
