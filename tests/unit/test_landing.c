#include <string.h>

#include "hl/error.h"
#include "hl/landing.h"
#include "hl_test.h"

HL_TEST_SUITE(landing);

Test(landing, round_trip) {
  hl_landing_event ev = {"s3://b/org=org-2/x.ndjson", "b", "org=org-2/x.ndjson", 42, "\"e1\"",
                         "2026-11-25T16:00:00.000Z", "org-2", "job-1"};
  hl_buf b;
  hl_buf_init(&b, 0);
  cr_assert_eq(hl_landing_event_write(&ev, &b), 0);
  hl_landing_event back;
  char err[200];
  cr_assert_eq(hl_landing_event_parse(b.data, b.len, &back, err, sizeof err), 0, "%s", err);
  cr_assert_str_eq(back.uri, ev.uri);
  cr_assert_str_eq(back.key, ev.key);
  cr_assert_eq(back.size, 42);
  cr_assert_str_eq(back.etag, "\"e1\"");
  cr_assert_str_eq(back.org, "org-2");
  cr_assert_str_eq(back.job, "job-1");
  hl_landing_event_clear(&back);
  hl_buf_free(&b);
}

Test(landing, rejects_bad_events) {
  const char *bad[] = {
      "[]", "{", "{\"uri\":\"s3://b/k\"}",
      "{\"uri\":\"http://x/k\",\"bucket\":\"b\",\"key\":\"k\",\"event_time\":\"t\",\"org\":\"o\",\"job\":\"j\"}",
      "{\"uri\":\"s3://b/k\",\"bucket\":\"b\",\"key\":\"k\",\"event_time\":\"t\",\"org\":\"o/../x\",\"job\":\"j\"}",
      "{\"uri\":\"s3://b/k\",\"bucket\":\"b\",\"key\":\"k\",\"event_time\":\"t\",\"org\":\"o\",\"job\":\"j\",\"size\":-1}",
      "{\"uri\":\"s3://b/k\",\"bucket\":\"b\",\"key\":\"k\",\"event_time\":\"t\",\"org\":\"o\",\"job\":7}",
      "{\"uri\":\"s3://b/k\",\"uri\":\"s3://b/k\",\"bucket\":\"b\",\"key\":\"k\",\"event_time\":\"t\",\"org\":\"o\",\"job\":\"j\"}",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    hl_landing_event ev;
    char err[200] = "";
    cr_assert_eq(hl_landing_event_parse(bad[i], strlen(bad[i]), &ev, err, sizeof err), HL_EPARSE,
                 "accepted %s", bad[i]);
    cr_assert(strstr(err, "landing event") != NULL, "%s", err);
  }
}

Test(landing, org_from_key) {
  char org[65];
  cr_assert_eq(hl_landing_org_from_key("org=org-1/Patient.000.ndjson", org, sizeof org), 0);
  cr_assert_str_eq(org, "org-1");
  cr_assert_eq(hl_landing_org_from_key("landing/2026/org=acme_2/x.json", org, sizeof org), 0);
  cr_assert_str_eq(org, "acme_2");
  cr_assert_eq(hl_landing_org_from_key("x/y.json", org, sizeof org), HL_ENOTFOUND);
  cr_assert_eq(hl_landing_org_from_key("xorg=a/y.json", org, sizeof org), HL_ENOTFOUND);
  cr_assert_eq(hl_landing_org_from_key("org=/y.json", org, sizeof org), HL_EPARSE);
  cr_assert_eq(hl_landing_org_from_key("org=a b/y.json", org, sizeof org), HL_EPARSE);
}
