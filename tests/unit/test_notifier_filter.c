#include <string.h>

#include "filter.h"
#include "hl/error.h"
#include "hl_test.h"

HL_TEST_SUITE(notifier_filter);

Test(notifier_filter, prefix_and_suffixes) {
  hl_notifier_filter *f = NULL;
  cr_assert_eq(hl_notifier_filter_new("in/", ".ndjson, .ndjson.gz,.json", ".tmp,.part,~", &f), 0);
  cr_assert(hl_notifier_filter_match(f, "in/a.ndjson"));
  cr_assert(hl_notifier_filter_match(f, "in/org=x/a.NDJSON.GZ"));
  cr_assert(hl_notifier_filter_match(f, "in/b.json"));
  cr_assert_not(hl_notifier_filter_match(f, "out/a.ndjson"));
  cr_assert_not(hl_notifier_filter_match(f, "in/a.csv"));
  cr_assert_not(hl_notifier_filter_match(f, "in/a.ndjson.tmp"));
  cr_assert_not(hl_notifier_filter_match(f, "in/json"));
  hl_notifier_filter_free(f);
  cr_assert_eq(hl_notifier_filter_new(NULL, "", NULL, &f), 0);
  cr_assert(hl_notifier_filter_match(f, "anything"));
  hl_notifier_filter_free(f);
}

Test(notifier_filter, temporary_names) {
  hl_notifier_filter *f = NULL;
  cr_assert_eq(hl_notifier_filter_new("", "", ".tmp,.part,.partial,~", &f), 0);
  cr_assert(hl_notifier_filter_is_temp(f, ".hidden.ndjson"));
  cr_assert(hl_notifier_filter_is_temp(f, "a.ndjson.tmp"));
  cr_assert(hl_notifier_filter_is_temp(f, "a.ndjson.PART"));
  cr_assert(hl_notifier_filter_is_temp(f, "a.ndjson.partial"));
  cr_assert(hl_notifier_filter_is_temp(f, "a.ndjson~"));
  cr_assert_not(hl_notifier_filter_is_temp(f, "a.ndjson"));
  cr_assert_not(hl_notifier_filter_is_temp(f, "tmp.ndjson"));
  hl_notifier_filter_free(f);
}

Test(notifier_filter, list_caps) {
  hl_notifier_filter *f = NULL;
  char big[200];
  memset(big, 'x', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  cr_assert_eq(hl_notifier_filter_new("", big, NULL, &f), HL_ECONFIG);
  cr_assert_null(f);
}

Test(notifier_filter, org_from_key_or_default) {
  char org[65];
  cr_assert_eq(hl_notifier_org("org=acme/2026/a.ndjson", "dflt", org, sizeof org), 0);
  cr_assert_str_eq(org, "acme");
  cr_assert_eq(hl_notifier_org("in/org=b-2.x_y/a.ndjson", "dflt", org, sizeof org), 0);
  cr_assert_str_eq(org, "b-2.x_y");
  cr_assert_eq(hl_notifier_org("in/a.ndjson", "dflt", org, sizeof org), 0);
  cr_assert_str_eq(org, "dflt");
  cr_assert_eq(hl_notifier_org("in/a.ndjson", "", org, sizeof org), HL_ENOTFOUND);
  cr_assert_eq(hl_notifier_org("in/a.ndjson", NULL, org, sizeof org), HL_ENOTFOUND);
  cr_assert_eq(hl_notifier_org("org=bad org/a.ndjson", "dflt", org, sizeof org), HL_EPARSE);
  cr_assert_eq(hl_notifier_org("org=/a.ndjson", "dflt", org, sizeof org), HL_EPARSE);
}

Test(notifier_filter, job_from_segment_or_derived) {
  char job[65], job2[65];
  cr_assert_eq(hl_notifier_job("b", "org=a/job=run-7/x.ndjson", "e1", job, sizeof job), 0);
  cr_assert_str_eq(job, "run-7");
  cr_assert_eq(hl_notifier_job("b", "org=a/job=bad job/x.ndjson", "e1", job, sizeof job), HL_EPARSE);
  /* A file called job=... is not a job directory. */
  cr_assert_eq(hl_notifier_job("b", "org=a/job=x.ndjson", "e1", job, sizeof job), 0);
  cr_assert_eq(strncmp(job, "obj-", 4), 0);
  cr_assert_eq(strlen(job), 28);
  cr_assert_eq(hl_notifier_job("b", "org=a/job=x.ndjson", "e1", job2, sizeof job2), 0);
  cr_assert_str_eq(job, job2, "derived job ids are deterministic");
  cr_assert_eq(hl_notifier_job("b", "org=a/job=x.ndjson", "e2", job2, sizeof job2), 0);
  cr_assert_str_neq(job, job2, "a new version is a new job");
}

Test(notifier_filter, event_id) {
  char a[HL_NOTIFIER_EVENT_ID_LEN], b[HL_NOTIFIER_EVENT_ID_LEN], c[HL_NOTIFIER_EVENT_ID_LEN];
  hl_notifier_event_id("bkt", "k", "e", a);
  hl_notifier_event_id("bkt", "k", "e", b);
  hl_notifier_event_id("bk", "tk", "e", c);
  cr_assert_eq(strlen(a), 32);
  cr_assert_str_eq(a, b);
  cr_assert_str_neq(a, c, "fields are separated, not concatenated");
}

Test(notifier_filter, file_uri_and_decode) {
  hl_buf b;
  hl_buf_init(&b, 0);
  cr_assert_eq(hl_notifier_file_uri(&b, "/land/org=a/my file%.ndjson"), 0);
  cr_assert_str_eq(b.data, "file:///land/org=a/my%20file%25.ndjson");
  hl_buf_free(&b);
  char s1[] = "org%3Dacme/my+file%281%29.ndjson";
  cr_assert_eq(hl_notifier_url_decode(s1, true), (int)strlen("org=acme/my file(1).ndjson"));
  cr_assert_str_eq(s1, "org=acme/my file(1).ndjson");
  char s2[] = "a+b";
  hl_notifier_url_decode(s2, false);
  cr_assert_str_eq(s2, "a+b");
  char s3[] = "bad%zz", s4[] = "nul%00", s5[] = "cut%4";
  cr_assert_eq(hl_notifier_url_decode(s3, true), HL_EPARSE);
  cr_assert_eq(hl_notifier_url_decode(s4, true), HL_EPARSE);
  cr_assert_eq(hl_notifier_url_decode(s5, true), HL_EPARSE);
}

Test(notifier_filter, etag_and_time) {
  char e[64], t[40];
  hl_notifier_file_etag(255, 1000000001, 16, e, sizeof e);
  cr_assert_str_eq(e, "ff-3b9aca01-10");
  hl_notifier_time_rfc3339(1764086400123LL, t, sizeof t);
  cr_assert_str_eq(t, "2025-11-25T16:00:00.123Z");
}
