/*
 * hl-sf-standin: a test server on 127.0.0.1 that speaks the parts of
 * Snowflake's SQL API v2 and Snowpipe Streaming REST API that Healthlake
 * uses, validates requests against Snowflake's OpenAPI description,
 * verifies key-pair JWTs, and executes statements on SQLite. Fault
 * injection and counters are served under /_standin/. See
 * docs/snowflake.md, section "Stand-in".
 */
#ifndef SF_STANDIN_H
#define SF_STANDIN_H

#include <stddef.h>
#include <uv.h>

typedef struct sf_standin_config {
  const char *addr;            /* "127.0.0.1:0" picks a free port */
  const char *dir;             /* data directory (SQLite files); created if missing */
  const char *account;         /* expected in iss/sub (any case; region suffix ignored) */
  const char *user;
  const char *public_key_file; /* PEM public key (a private key file works too) */
  const char *spec_path;       /* sqlapi.json (the build converts sqlapi.yaml) */
  int partition_rows;          /* rows per result partition; 0: 1000 */
  long sync_wait_ms;           /* a POST answers 202 when the statement runs longer; 0: 45000 */
  long scoped_token_ttl_s;     /* lifetime of streaming scoped tokens; 0: 3600 */
  int verbose;                 /* log every request on stderr */
} sf_standin_config;

typedef struct sf_standin sf_standin;

int sf_standin_new(uv_loop_t *loop, const sf_standin_config *cfg, sf_standin **out, char *err, size_t errlen);
int sf_standin_port(const sf_standin *s);
/* Stops listening and closes every handle; done(ud) runs when all are closed. */
void sf_standin_close(sf_standin *s, void (*done)(void *ud), void *ud);
/* After close's done ran. NULL-safe; returns NULL. */
sf_standin *sf_standin_free(sf_standin *s);

/* A stand-in on its own thread and loop, for tests in the same process. */
typedef struct sf_standin_thread sf_standin_thread;
int sf_standin_thread_start(const sf_standin_config *cfg, sf_standin_thread **out, char *err, size_t errlen);
int sf_standin_thread_port(const sf_standin_thread *t);
sf_standin_thread *sf_standin_thread_stop(sf_standin_thread *t);

#endif
