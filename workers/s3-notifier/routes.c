#include "routes.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "hl/error.h"
#include "hl/log.h"
#include "s3events.h"

static void respond_json(hl_http_req *req, int status, const char *body) {
  hl_http_respond(req, status, "application/json", body, strlen(body));
}

static void on_s3_events(hl_http_req *req, void *ud) {
  hl_notifier *n = ud;
  size_t len = 0;
  const char *body = hl_http_req_body(req, &len);
  hl_s3events ev;
  char err[256], out[320];
  int r = hl_s3events_parse(body, len, &ev, err, sizeof err);
  if (r < 0) {
    if (hl_log_enabled(HL_LOG_DEBUG))
      hl_log_kv(HL_LOG_DEBUG, "rejected an S3 event body", "error", err, NULL);
    hl_buf b;
    hl_buf_init(&b, 1024);
    hl_buf_puts(&b, "{\"error\":\"");
    hl_buf_json_escape(&b, err, strlen(err));
    hl_buf_puts(&b, "\"}");
    respond_json(req, r == HL_ELIMIT ? 413 : 400, b.data ? b.data : "{}");
    hl_buf_free(&b);
    return;
  }
  r = hl_notifier_offer_async(n, ev.objects, ev.count);
  if (r < 0) {
    respond_json(req, 503, "{\"error\":\"busy, retry later\"}");
  } else {
    snprintf(out, sizeof out, "{\"accepted\":%zu,\"ignored\":%zu}", ev.count, ev.ignored);
    respond_json(req, 202, out);
  }
  hl_s3events_clear(&ev);
}

int hl_notifier_routes_add(hl_admin *admin, hl_notifier *n) {
  return hl_admin_route(admin, "POST", "/events/s3", on_s3_events, n);
}
