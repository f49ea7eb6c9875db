/*
 * The libuv driver of the Snowflake client: curl's multi interface with
 * its sockets watched by uv_poll and its timeout by a uv_timer. Each
 * statement runs the same state machine as the blocking driver
 * (hl__sf_op_*); waits between requests (backoff, polling) are uv_timers,
 * so the loop is never blocked.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "hl/error.h"
#include "snowflake_internal.h"

typedef struct sf_aop {
  hl__sf_op op;
  hl_snowflake_async *owner;
  hl_snowflake_done_fn cb;
  void *ud;
  uv_timer_t timer;       /* waits between requests */
  bool in_multi;
  struct sf_aop *prev, *next;
} sf_aop;

typedef struct sf_sock {
  uv_poll_t poll;
  curl_socket_t fd;
  hl_snowflake_async *owner;
  struct sf_sock *prev, *next;
} sf_sock;

struct hl_snowflake_async {
  hl_snowflake *sf;
  uv_loop_t *loop;
  CURLM *multi;
  uv_timer_t timeout;
  sf_aop *ops;
  sf_sock *socks;         /* sockets curl asked us to watch */
  size_t pending;
  size_t open_handles;   /* uv handles not yet closed */
  bool closing;
  void (*closed)(void *ud);
  void *closed_ud;
};

static void handle_closed(uv_handle_t *h);

static void sock_unlink(hl_snowflake_async *a, sf_sock *s) {
  if (s->prev)
    s->prev->next = s->next;
  else
    a->socks = s->next;
  if (s->next)
    s->next->prev = s->prev;
  s->prev = s->next = NULL;
}

/* Stops watching s; curl forgets it, its memory goes with its handle. */
static void sock_close(hl_snowflake_async *a, sf_sock *s) {
  uv_poll_stop(&s->poll);
  curl_multi_assign(a->multi, s->fd, NULL);
  sock_unlink(a, s);
  uv_close((uv_handle_t *)&s->poll, handle_closed);
}

static void maybe_finish_close(hl_snowflake_async *a) {
  if (!a->closing || a->open_handles)
    return;
  curl_multi_cleanup(a->multi);
  void (*closed)(void *) = a->closed;
  void *ud = a->closed_ud;
  free(a);
  if (closed)
    closed(ud);
}

static void handle_closed(uv_handle_t *h) {
  hl_snowflake_async *a = NULL;
  if (h->type == UV_POLL) {
    sf_sock *s = h->data;
    a = s->owner;
    free(s);
  } else if (h->data == NULL) {
    /* The multi timeout timer: its data is cleared before closing. */
    a = (hl_snowflake_async *)((char *)h - offsetof(hl_snowflake_async, timeout));
  } else {
    sf_aop *o = h->data;
    a = o->owner;
    hl__sf_op_clear(&o->op);
    free(o);
  }
  a->open_handles--;
  maybe_finish_close(a);
}

static void unlink_op(hl_snowflake_async *a, sf_aop *o) {
  if (o->prev)
    o->prev->next = o->next;
  else
    a->ops = o->next;
  if (o->next)
    o->next->prev = o->prev;
  o->prev = o->next = NULL;
  a->pending--;
}

/* Completes o: callback with its outcome, then its memory goes with its timer. */
static void complete(sf_aop *o, int rc) {
  hl_snowflake_async *a = o->owner;
  if (o->in_multi) {
    curl_multi_remove_handle(a->multi, o->op.easy);
    o->in_multi = false;
  }
  uv_timer_stop(&o->timer);
  unlink_op(a, o);
  hl_snowflake_result *res = NULL;
  if (rc == 0) {
    res = o->op.res;
    o->op.res = NULL;
  }
  hl_snowflake_error err = o->op.err;
  o->cb(o->ud, rc, res, &err);
  uv_close((uv_handle_t *)&o->timer, handle_closed);
}

static void start_request(sf_aop *o) {
  int rc = hl__sf_op_prepare(&o->op);
  if (rc == 0 && curl_multi_add_handle(o->owner->multi, o->op.easy) != CURLM_OK)
    rc = -ENOMEM;
  if (rc < 0) {
    complete(o, rc);
    return;
  }
  o->in_multi = true;
}

static void delay_fired(uv_timer_t *t) {
  start_request(t->data);
}

static void schedule(sf_aop *o) {
  if (o->op.delay_ms <= 0)
    start_request(o);
  else
    uv_timer_start(&o->timer, delay_fired, (uint64_t)o->op.delay_ms, 0);
}

static void check_done(hl_snowflake_async *a) {
  CURLMsg *m;
  int left;
  while ((m = curl_multi_info_read(a->multi, &left))) {
    if (m->msg != CURLMSG_DONE)
      continue;
    sf_aop *o = NULL;
    curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&o);
    CURLcode cc = m->data.result;
    curl_multi_remove_handle(a->multi, m->easy_handle);
    /* The op is the first member of sf_aop. */
    sf_aop *ao = (sf_aop *)o;
    ao->in_multi = false;
    if (hl__sf_op_step(&ao->op, cc) == HL__SF_DONE)
      complete(ao, ao->op.rc);
    else
      schedule(ao);
  }
}

static void poll_cb(uv_poll_t *p, int status, int events) {
  sf_sock *s = p->data;
  hl_snowflake_async *a = s->owner;
  int flags = 0;
  if (status < 0)
    flags = CURL_CSELECT_ERR;
  if (events & UV_READABLE)
    flags |= CURL_CSELECT_IN;
  if (events & UV_WRITABLE)
    flags |= CURL_CSELECT_OUT;
  int running;
  curl_multi_socket_action(a->multi, s->fd, flags, &running);
  check_done(a);
}

static int socket_cb(CURL *easy, curl_socket_t fd, int what, void *ud, void *sockp) {
  hl_snowflake_async *a = ud;
  sf_sock *s = sockp;
  if (a->closing)
    return what == CURL_POLL_REMOVE ? 0 : -1;
  if (what == CURL_POLL_REMOVE) {
    if (s)
      sock_close(a, s);
    return 0;
  }
  if (!s) {
    if (!(s = calloc(1, sizeof *s)))
      return -1;
    s->fd = fd;
    s->owner = a;
    if (uv_poll_init_socket(a->loop, &s->poll, fd) < 0) {
      free(s);
      return -1;
    }
    s->poll.data = s;
    a->open_handles++;
    s->next = a->socks;
    if (a->socks)
      a->socks->prev = s;
    a->socks = s;
    curl_multi_assign(a->multi, fd, s);
  }
  int ev = 0;
  if (what & CURL_POLL_IN)
    ev |= UV_READABLE;
  if (what & CURL_POLL_OUT)
    ev |= UV_WRITABLE;
  uv_poll_start(&s->poll, ev, poll_cb);
  return 0;
}

static void timeout_fired(uv_timer_t *t) {
  hl_snowflake_async *a = (hl_snowflake_async *)((char *)t - offsetof(hl_snowflake_async, timeout));
  int running;
  curl_multi_socket_action(a->multi, CURL_SOCKET_TIMEOUT, 0, &running);
  check_done(a);
}

static int timer_cb(CURLM *multi, long ms, void *ud) {
  hl_snowflake_async *a = ud;
  if (a->closing)
    return 0;
  if (ms < 0)
    uv_timer_stop(&a->timeout);
  else
    uv_timer_start(&a->timeout, timeout_fired, (uint64_t)ms, 0);
  return 0;
}

int hl_snowflake_async_new(hl_snowflake *sf, uv_loop_t *loop, hl_snowflake_async **out) {
  if (!sf || !loop || !out)
    return -EINVAL;
  hl_snowflake_async *a = calloc(1, sizeof *a);
  if (!a)
    return -ENOMEM;
  a->sf = sf;
  a->loop = loop;
  if (!(a->multi = curl_multi_init())) {
    free(a);
    return -ENOMEM;
  }
  uv_timer_init(loop, &a->timeout);
  a->timeout.data = NULL;
  a->open_handles = 1;
  curl_multi_setopt(a->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
  curl_multi_setopt(a->multi, CURLMOPT_SOCKETDATA, a);
  curl_multi_setopt(a->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
  curl_multi_setopt(a->multi, CURLMOPT_TIMERDATA, a);
  /* Bounded connections: more statements queue inside curl. */
  curl_multi_setopt(a->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)hl__sf_max_connections(sf));
  curl_multi_setopt(a->multi, CURLMOPT_MAXCONNECTS, (long)hl__sf_max_connections(sf));
  *out = a;
  return 0;
}

int hl_snowflake_async_exec(hl_snowflake_async *a, const hl_snowflake_stmt *st, hl_snowflake_done_fn cb,
                            void *ud) {
  if (!a || !st || !cb)
    return -EINVAL;
  if (a->closing)
    return HL_ECLOSED;
  sf_aop *o = calloc(1, sizeof *o);
  if (!o)
    return -ENOMEM;
  int rc = hl__sf_op_init(&o->op, a->sf, st);
  if (rc < 0) {
    hl__sf_op_clear(&o->op);
    free(o);
    return rc;
  }
  /* Prepare once now so that a failure is reported here, not through cb. */
  if ((rc = hl__sf_op_prepare(&o->op)) < 0 ||
      (curl_multi_add_handle(a->multi, o->op.easy) != CURLM_OK && (rc = -ENOMEM))) {
    hl__sf_op_clear(&o->op);
    free(o);
    return rc;
  }
  o->in_multi = true;
  o->owner = a;
  o->cb = cb;
  o->ud = ud;
  uv_timer_init(a->loop, &o->timer);
  o->timer.data = o;
  a->open_handles++;
  o->next = a->ops;
  if (a->ops)
    a->ops->prev = o;
  a->ops = o;
  a->pending++;
  return 0;
}

int hl_snowflake_async_cancel(hl_snowflake_async *a, void *ud) {
  if (!a || a->closing)
    return 0;
  int n = 0;
  for (sf_aop *o = a->ops, *next; o; o = next) {
    next = o->next;
    if (o->ud != ud || (o->op.phase == HL__SF_CANCEL && o->op.cancel_rc == -ECANCELED))
      continue;
    n++;
    if (o->in_multi) {
      curl_multi_remove_handle(a->multi, o->op.easy);
      o->in_multi = false;
    }
    uv_timer_stop(&o->timer);
    snprintf(o->op.err.message, sizeof o->op.err.message, "cancelled by the caller");
    if (!o->op.handle[0]) {
      complete(o, -ECANCELED);
      continue;
    }
    /* The server runs it: ask it to stop, then report -ECANCELED. */
    o->op.phase = HL__SF_CANCEL;
    o->op.cancel_rc = -ECANCELED;
    o->op.delay_ms = 0;
    schedule(o);
  }
  return n;
}

size_t hl_snowflake_async_pending(const hl_snowflake_async *a) {
  return a ? a->pending : 0;
}

void hl_snowflake_async_close(hl_snowflake_async *a, void (*closed)(void *ud), void *ud) {
  if (!a || a->closing)
    return;
  a->closing = true;
  a->closed = closed;
  a->closed_ud = ud;
  while (a->ops) {
    sf_aop *o = a->ops;
    snprintf(o->op.err.message, sizeof o->op.err.message, "closed before completion");
    complete(o, -ECANCELED);
  }
  /* Connections kept alive by curl still have watched sockets. */
  while (a->socks)
    sock_close(a, a->socks);
  uv_timer_stop(&a->timeout);
  uv_close((uv_handle_t *)&a->timeout, handle_closed);
}
