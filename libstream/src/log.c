#include "hl/log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "hl/buf.h"

static char log_binary[64] = "healthlake";
static _Atomic int log_level = HL_LOG_INFO;
static _Atomic int log_format = HL_LOG_JSON;
static _Atomic int log_fd = 2;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void hl_log_init(const char *binary, hl_log_level level, hl_log_format format) {
  if (binary)
    snprintf(log_binary, sizeof log_binary, "%s", binary);
  atomic_store(&log_level, (int)level);
  atomic_store(&log_format, (int)format);
}

int hl_log_level_parse(const char *s) {
  for (int i = 0; i < 4; i++)
    if (strcmp(s, level_names[i]) == 0)
      return i;
  return -1;
}

void hl_log_configure(const char *binary, const hl_config *cfg) {
  int lvl = hl_log_level_parse(hl_config_str(cfg, "HL_LOG_LEVEL"));
  const char *fmt = hl_config_str(cfg, "HL_LOG_FORMAT");
  hl_log_init(binary, lvl < 0 ? HL_LOG_INFO : (hl_log_level)lvl,
              strcmp(fmt, "text") == 0 ? HL_LOG_TEXT : HL_LOG_JSON);
}

void hl_log_set_fd(int fd) { atomic_store(&log_fd, fd); }

bool hl_log_enabled(hl_log_level level) { return (int)level >= atomic_load(&log_level); }

static void put_time(hl_buf *b) {
  struct timeval tv;
  struct tm tm;
  gettimeofday(&tv, NULL);
  gmtime_r(&tv.tv_sec, &tm);
  hl_buf_printf(b, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(tv.tv_usec / 1000));
}

static void begin(hl_buf *b, hl_log_level level, const char *msg, size_t msglen) {
  if (atomic_load(&log_format) == HL_LOG_TEXT) {
    put_time(b);
    hl_buf_printf(b, " %-5s %s: ", level_names[level], log_binary);
    hl_buf_append(b, msg, msglen);
    return;
  }
  hl_buf_puts(b, "{\"time\":\"");
  put_time(b);
  hl_buf_printf(b, "\",\"level\":\"%s\",\"binary\":\"", level_names[level]);
  hl_buf_json_escape(b, log_binary, strlen(log_binary));
  hl_buf_puts(b, "\",\"msg\":\"");
  hl_buf_json_escape(b, msg, msglen);
  hl_buf_putc(b, '"');
}

static void field(hl_buf *b, const char *k, const char *v) {
  if (atomic_load(&log_format) == HL_LOG_TEXT) {
    hl_buf_printf(b, " %s=%s", k, v ? v : "null");
    return;
  }
  hl_buf_puts(b, ",\"");
  hl_buf_json_escape(b, k, strlen(k));
  if (!v) {
    hl_buf_puts(b, "\":null");
    return;
  }
  hl_buf_puts(b, "\":\"");
  hl_buf_json_escape(b, v, strlen(v));
  hl_buf_putc(b, '"');
}

static void finish(hl_buf *b) {
  if (atomic_load(&log_format) != HL_LOG_TEXT)
    hl_buf_putc(b, '}');
  hl_buf_putc(b, '\n');
  if (b->data) {
    ssize_t w = write(atomic_load(&log_fd), b->data, b->len);
    (void)w;
  }
  hl_buf_free(b);
}

void hl_log(hl_log_level level, const char *fmt, ...) {
  if (!hl_log_enabled(level))
    return;
  hl_buf msg, b;
  hl_buf_init(&msg, 64 * 1024);
  hl_buf_init(&b, 128 * 1024);
  va_list ap;
  va_start(ap, fmt);
  hl_buf_vprintf(&msg, fmt, ap);
  va_end(ap);
  begin(&b, level, msg.data ? msg.data : "", msg.len);
  hl_buf_free(&msg);
  finish(&b);
}

void hl_log_kv(hl_log_level level, const char *msg, ...) {
  if (!hl_log_enabled(level))
    return;
  hl_buf b;
  hl_buf_init(&b, 128 * 1024);
  begin(&b, level, msg, strlen(msg));
  va_list ap;
  va_start(ap, msg);
  const char *k;
  while ((k = va_arg(ap, const char *)) != NULL) {
    const char *v = va_arg(ap, const char *);
    field(&b, k, v);
  }
  va_end(ap);
  finish(&b);
}
