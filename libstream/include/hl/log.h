/*
 * Structured logging: one JSON object per line on stderr (time, level,
 * binary, msg, then fields), or a text line for people (HL_LOG_FORMAT=text).
 *
 * Thread-safe: each line is formatted in memory and written with one
 * write(2). Libraries log at debug only; a worker logs each error once, where
 * it is handled. Check hl_log_enabled() before building costly fields.
 */
#ifndef HL_LOG_H
#define HL_LOG_H

#include <stdbool.h>

#include "hl/config.h"

typedef enum hl_log_level {
  HL_LOG_DEBUG = 0,
  HL_LOG_INFO = 1,
  HL_LOG_WARN = 2,
  HL_LOG_ERROR = 3,
} hl_log_level;

typedef enum hl_log_format { HL_LOG_JSON = 0, HL_LOG_TEXT = 1 } hl_log_format;

/* Sets the binary name, the lowest level written, and the format. */
void hl_log_init(const char *binary, hl_log_level level, hl_log_format format);
/* hl_log_init from HL_LOG_LEVEL and HL_LOG_FORMAT of a loaded configuration. */
void hl_log_configure(const char *binary, const hl_config *cfg);
/* Redirects output to fd (default 2). For tests and for separate streams. */
void hl_log_set_fd(int fd);

bool hl_log_enabled(hl_log_level level);

/* Writes msg (printf format) with no fields. */
void hl_log(hl_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * Writes msg with fields given as pairs of strings, ended by NULL:
 *   hl_log_kv(HL_LOG_ERROR, "commit failed", "topic", t, "error", e, NULL);
 * A NULL value is written as JSON null.
 */
void hl_log_kv(hl_log_level level, const char *msg, ...) __attribute__((sentinel));

/* Parses "debug|info|warn|error"; returns -1 when unknown. */
int hl_log_level_parse(const char *s);

#endif
