/*
 * hl_buf: a growable byte buffer with a hard maximum.
 *
 * Every append checks the maximum and fails with HL_ELIMIT past it, leaving
 * the buffer as it was. The content is always NUL-terminated (the NUL is not
 * counted in len), so text can be used as a C string.
 */
#ifndef HL_BUF_H
#define HL_BUF_H

#include <stdarg.h>
#include <stddef.h>

typedef struct hl_buf {
  char *data;     /* NULL until the first append */
  size_t len;     /* bytes used, not counting the trailing NUL */
  size_t cap;     /* bytes allocated */
  size_t max;     /* maximum len; 0 means SIZE_MAX/2 */
} hl_buf;

/* Initializes an empty buffer that may grow to max bytes (0: no limit). */
void hl_buf_init(hl_buf *b, size_t max);
/* Frees the memory and resets the buffer to empty; max is kept. */
void hl_buf_free(hl_buf *b);
/* Sets len to 0 without freeing. */
void hl_buf_reset(hl_buf *b);
/* Makes room for at least n more bytes. 0, -ENOMEM or HL_ELIMIT. */
int hl_buf_reserve(hl_buf *b, size_t n);
int hl_buf_append(hl_buf *b, const void *data, size_t n);
int hl_buf_puts(hl_buf *b, const char *s);
int hl_buf_putc(hl_buf *b, char c);
int hl_buf_printf(hl_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int hl_buf_vprintf(hl_buf *b, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
/* Appends s as the body of a JSON string (no quotes), escaped. */
int hl_buf_json_escape(hl_buf *b, const char *s, size_t n);
/* Removes the first n bytes (n <= len). */
void hl_buf_consume(hl_buf *b, size_t n);
/* Hands the memory to the caller (who frees it) and resets the buffer. */
char *hl_buf_steal(hl_buf *b, size_t *len);

#endif
