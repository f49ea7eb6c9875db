/*
 * Internal interface of the HTTP server's connection state machine, so that
 * it can be driven without sockets (the fuzz target, tests). Not installed.
 */
#ifndef HL_HTTP_INTERNAL_H
#define HL_HTTP_INTERNAL_H

#include <stddef.h>

#include "hl/buf.h"
#include "hl/http.h"

typedef struct hl__http_conn hl__http_conn;

/*
 * A connection of server s with no socket: responses are appended to an
 * in-memory buffer (capped at 4 MiB, the rest is counted and dropped), and
 * timers do not run. The server need not listen.
 */
int hl__http_conn_new_detached(hl_http_server *s, hl__http_conn **out);
/* Feeds bytes as if read from the socket; bytes that cannot be parsed yet (pipeline full) are buffered. */
void hl__http_conn_feed(hl__http_conn *c, const char *data, size_t len);
/* The client closed its side. */
void hl__http_conn_eof(hl__http_conn *c);
/* Everything written so far. */
const hl_buf *hl__http_conn_output(const hl__http_conn *c);
/* True once the connection decided to close. */
int hl__http_conn_closed(const hl__http_conn *c);
/* Frees the connection; requests still held by the handler become orphans. NULL-safe. */
hl__http_conn *hl__http_conn_free_detached(hl__http_conn *c);

#endif
