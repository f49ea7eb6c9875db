#include "hl/metrics.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hl/error.h"

#define MAX_LABELS 8

typedef enum { M_COUNTER, M_GAUGE, M_HISTOGRAM } mtype;

struct hl_series {
  hl_series *next;
  hl_metric *family;
  char **values;
  double value;     /* counter / gauge */
  double sum;       /* histogram */
  uint64_t count;   /* histogram */
  uint64_t *buckets; /* histogram, non-cumulative, nbounds + 1 */
};

struct hl_metric {
  hl_metric *next;
  hl_metrics *reg;
  mtype type;
  char *name;
  char *help;
  size_t nlabels;
  char *labels[MAX_LABELS];
  double *bounds;
  size_t nbounds;
  hl_series *series;
  hl_series *tail;
};

struct hl_metrics {
  pthread_mutex_t lock;
  hl_metric *families;
  hl_metric *tail;
};

const double hl_metrics_latency_buckets[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                             0.05,   0.1,   0.25,   0.5,   1,    2.5,
                                             5,      10};
const size_t hl_metrics_latency_nbuckets =
    sizeof hl_metrics_latency_buckets / sizeof hl_metrics_latency_buckets[0];

int hl_metrics_new(hl_metrics **out) {
  hl_metrics *reg = calloc(1, sizeof *reg);
  if (!reg)
    return -ENOMEM;
  pthread_mutex_init(&reg->lock, NULL);
  *out = reg;
  return 0;
}

static void series_free(hl_series *s, size_t nlabels) {
  for (size_t i = 0; i < nlabels; i++)
    free(s->values[i]);
  free(s->values);
  free(s->buckets);
  free(s);
}

static void metric_free(hl_metric *m) {
  hl_series *s = m->series;
  while (s) {
    hl_series *n = s->next;
    series_free(s, m->nlabels);
    s = n;
  }
  for (size_t i = 0; i < m->nlabels; i++)
    free(m->labels[i]);
  free(m->name);
  free(m->help);
  free(m->bounds);
  free(m);
}

hl_metrics *hl_metrics_free(hl_metrics *reg) {
  if (!reg)
    return NULL;
  hl_metric *m = reg->families;
  while (m) {
    hl_metric *n = m->next;
    metric_free(m);
    m = n;
  }
  pthread_mutex_destroy(&reg->lock);
  free(reg);
  return NULL;
}

static bool valid_name(const char *s, bool label) {
  if (!s || !*s)
    return false;
  for (const char *p = s; *p; p++) {
    char c = *p;
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
              (!label && c == ':') || (p != s && c >= '0' && c <= '9');
    if (!ok)
      return false;
  }
  if (label && strncmp(s, "__", 2) == 0)
    return false;
  return true;
}

static int split_labels(hl_metric *m, const char *labels) {
  if (!labels || !*labels)
    return 0;
  const char *p = labels;
  while (*p) {
    const char *comma = strchr(p, ',');
    size_t l = comma ? (size_t)(comma - p) : strlen(p);
    if (m->nlabels == MAX_LABELS)
      return -EINVAL;
    char *name = strndup(p, l);
    if (!name)
      return -ENOMEM;
    m->labels[m->nlabels++] = name;
    if (!valid_name(name, true) || (m->type == M_HISTOGRAM && strcmp(name, "le") == 0))
      return -EINVAL;
    p = comma ? comma + 1 : p + l;
  }
  return 0;
}

static bool same_labels(const hl_metric *m, const char *labels) {
  size_t i = 0;
  const char *p = labels ? labels : "";
  while (*p) {
    const char *comma = strchr(p, ',');
    size_t l = comma ? (size_t)(comma - p) : strlen(p);
    if (i >= m->nlabels || strlen(m->labels[i]) != l || strncmp(m->labels[i], p, l) != 0)
      return false;
    i++;
    p = comma ? comma + 1 : p + l;
  }
  return i == m->nlabels;
}

static hl_metric *add_family(hl_metrics *reg, mtype type, const char *name, const char *help,
                             const char *labels, const double *bounds, size_t nbounds) {
  if (!reg || !valid_name(name, false))
    return NULL;
  pthread_mutex_lock(&reg->lock);
  for (hl_metric *e = reg->families; e; e = e->next) {
    if (strcmp(e->name, name) == 0) {
      hl_metric *r = (e->type == type && same_labels(e, labels)) ? e : NULL;
      pthread_mutex_unlock(&reg->lock);
      return r;
    }
  }
  hl_metric *m = calloc(1, sizeof *m);
  if (!m)
    goto fail;
  m->reg = reg;
  m->type = type;
  m->name = strdup(name);
  m->help = strdup(help ? help : "");
  if (!m->name || !m->help || split_labels(m, labels) < 0)
    goto fail;
  if (type == M_HISTOGRAM) {
    if (nbounds == 0)
      goto fail;
    m->bounds = malloc(nbounds * sizeof *bounds);
    if (!m->bounds)
      goto fail;
    for (size_t i = 0; i < nbounds; i++) {
      if (i > 0 && !(bounds[i] > bounds[i - 1]))
        goto fail;
      m->bounds[i] = bounds[i];
    }
    m->nbounds = nbounds;
  }
  if (reg->tail)
    reg->tail->next = m;
  else
    reg->families = m;
  reg->tail = m;
  pthread_mutex_unlock(&reg->lock);
  return m;
fail:
  pthread_mutex_unlock(&reg->lock);
  if (m)
    metric_free(m);
  return NULL;
}

hl_metric *hl_metrics_counter(hl_metrics *reg, const char *name, const char *help,
                              const char *labels) {
  return add_family(reg, M_COUNTER, name, help, labels, NULL, 0);
}

hl_metric *hl_metrics_gauge(hl_metrics *reg, const char *name, const char *help,
                            const char *labels) {
  return add_family(reg, M_GAUGE, name, help, labels, NULL, 0);
}

hl_metric *hl_metrics_histogram(hl_metrics *reg, const char *name, const char *help,
                                const char *labels, const double *bounds, size_t nbounds) {
  return add_family(reg, M_HISTOGRAM, name, help, labels, bounds, nbounds);
}

static bool series_match(const hl_series *s, size_t n, const char *const *values) {
  for (size_t i = 0; i < n; i++)
    if (strcmp(s->values[i], values[i] ? values[i] : "") != 0)
      return false;
  return true;
}

hl_series *hl_metric_atv(hl_metric *m, const char *const *values) {
  if (!m)
    return NULL;
  hl_metrics *reg = m->reg;
  pthread_mutex_lock(&reg->lock);
  for (hl_series *s = m->series; s; s = s->next) {
    if (series_match(s, m->nlabels, values)) {
      pthread_mutex_unlock(&reg->lock);
      return s;
    }
  }
  hl_series *s = calloc(1, sizeof *s);
  if (!s)
    goto fail;
  s->family = m;
  s->values = calloc(m->nlabels ? m->nlabels : 1, sizeof(char *));
  if (!s->values)
    goto fail;
  for (size_t i = 0; i < m->nlabels; i++) {
    s->values[i] = strdup(values[i] ? values[i] : "");
    if (!s->values[i])
      goto fail;
  }
  if (m->type == M_HISTOGRAM) {
    s->buckets = calloc(m->nbounds + 1, sizeof *s->buckets);
    if (!s->buckets)
      goto fail;
  }
  if (m->tail)
    m->tail->next = s;
  else
    m->series = s;
  m->tail = s;
  pthread_mutex_unlock(&reg->lock);
  return s;
fail:
  pthread_mutex_unlock(&reg->lock);
  if (s)
    series_free(s, m->nlabels);
  return NULL;
}

hl_series *hl_metric_at(hl_metric *m, ...) {
  if (!m)
    return NULL;
  const char *values[MAX_LABELS];
  va_list ap;
  va_start(ap, m);
  for (size_t i = 0; i < m->nlabels; i++)
    values[i] = va_arg(ap, const char *);
  va_end(ap);
  return hl_metric_atv(m, values);
}

int hl_metric_remove(hl_metric *m, const char *const *values) {
  if (!m)
    return HL_ENOTFOUND;
  hl_metrics *reg = m->reg;
  pthread_mutex_lock(&reg->lock);
  hl_series *prev = NULL;
  for (hl_series *s = m->series; s; prev = s, s = s->next) {
    if (series_match(s, m->nlabels, values)) {
      if (prev)
        prev->next = s->next;
      else
        m->series = s->next;
      if (m->tail == s)
        m->tail = prev;
      pthread_mutex_unlock(&reg->lock);
      series_free(s, m->nlabels);
      return 0;
    }
  }
  pthread_mutex_unlock(&reg->lock);
  return HL_ENOTFOUND;
}

void hl_series_inc(hl_series *s) { hl_series_add(s, 1); }

void hl_series_add(hl_series *s, double v) {
  if (!s)
    return;
  pthread_mutex_lock(&s->family->reg->lock);
  s->value += v;
  pthread_mutex_unlock(&s->family->reg->lock);
}

void hl_series_set(hl_series *s, double v) {
  if (!s)
    return;
  pthread_mutex_lock(&s->family->reg->lock);
  s->value = v;
  pthread_mutex_unlock(&s->family->reg->lock);
}

void hl_series_observe(hl_series *s, double v) {
  if (!s || !s->buckets)
    return;
  hl_metric *m = s->family;
  size_t i = 0;
  while (i < m->nbounds && v > m->bounds[i])
    i++;
  pthread_mutex_lock(&m->reg->lock);
  s->buckets[i]++;
  s->count++;
  s->sum += v;
  pthread_mutex_unlock(&m->reg->lock);
}

double hl_series_value(hl_series *s) {
  if (!s)
    return 0;
  pthread_mutex_lock(&s->family->reg->lock);
  double v = s->buckets ? (double)s->count : s->value;
  pthread_mutex_unlock(&s->family->reg->lock);
  return v;
}

static void put_escaped(hl_buf *b, const char *s, bool label) {
  for (; *s; s++) {
    if (*s == '\\')
      hl_buf_puts(b, "\\\\");
    else if (*s == '\n')
      hl_buf_puts(b, "\\n");
    else if (label && *s == '"')
      hl_buf_puts(b, "\\\"");
    else
      hl_buf_putc(b, *s);
  }
}

static void put_double(hl_buf *b, double v) {
  if (isnan(v))
    hl_buf_puts(b, "NaN");
  else if (isinf(v))
    hl_buf_puts(b, v > 0 ? "+Inf" : "-Inf");
  else if (v == (double)(long long)v && fabs(v) < 1e15)
    hl_buf_printf(b, "%lld", (long long)v);
  else
    hl_buf_printf(b, "%.17g", v);
}

static void put_labels(hl_buf *b, const hl_metric *m, const hl_series *s, const char *le) {
  if (m->nlabels == 0 && !le)
    return;
  hl_buf_putc(b, '{');
  for (size_t i = 0; i < m->nlabels; i++) {
    hl_buf_printf(b, "%s%s=\"", i ? "," : "", m->labels[i]);
    put_escaped(b, s->values[i], true);
    hl_buf_putc(b, '"');
  }
  if (le)
    hl_buf_printf(b, "%sle=\"%s\"", m->nlabels ? "," : "", le);
  hl_buf_putc(b, '}');
}

int hl_metrics_render(hl_metrics *reg, hl_buf *b) {
  static const char *const types[] = {"counter", "gauge", "histogram"};
  pthread_mutex_lock(&reg->lock);
  for (hl_metric *m = reg->families; m; m = m->next) {
    hl_buf_printf(b, "# HELP %s ", m->name);
    put_escaped(b, m->help, false);
    hl_buf_printf(b, "\n# TYPE %s %s\n", m->name, types[m->type]);
    for (hl_series *s = m->series; s; s = s->next) {
      if (m->type != M_HISTOGRAM) {
        hl_buf_puts(b, m->name);
        put_labels(b, m, s, NULL);
        hl_buf_putc(b, ' ');
        put_double(b, s->value);
        hl_buf_putc(b, '\n');
        continue;
      }
      uint64_t cum = 0;
      for (size_t i = 0; i <= m->nbounds; i++) {
        char le[40];
        cum += s->buckets[i];
        if (i == m->nbounds) {
          snprintf(le, sizeof le, "+Inf");
        } else {
          hl_buf tmp;
          hl_buf_init(&tmp, sizeof le - 1);
          put_double(&tmp, m->bounds[i]);
          snprintf(le, sizeof le, "%s", tmp.data ? tmp.data : "0");
          hl_buf_free(&tmp);
        }
        hl_buf_printf(b, "%s_bucket", m->name);
        put_labels(b, m, s, le);
        hl_buf_printf(b, " %llu\n", (unsigned long long)cum);
      }
      hl_buf_printf(b, "%s_sum", m->name);
      put_labels(b, m, s, NULL);
      hl_buf_putc(b, ' ');
      put_double(b, s->sum);
      hl_buf_printf(b, "\n%s_count", m->name);
      put_labels(b, m, s, NULL);
      hl_buf_printf(b, " %llu\n", (unsigned long long)s->count);
    }
  }
  pthread_mutex_unlock(&reg->lock);
  return 0;
}
