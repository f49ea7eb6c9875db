#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hl/error.h"
#include "hl/topics.h"
#include "hl_test.h"

HL_TEST_SUITE(topics);

#define TOPICS_FILE HL_SOURCE_ROOT "/schemas/topics/topics.json"
#define DATA_DIR HL_SOURCE_ROOT "/tests/data/topics"

Test(topics, project_file_defines_every_well_known_topic) {
  hl_topics *t = NULL;
  char err[512] = "";
  cr_assert_eq(hl_topics_load(TOPICS_FILE, &t, err, sizeof err), 0, "%s", err);
  const char *names[] = {HL_TOPIC_LANDING_OBJECTS, HL_TOPIC_FHIR_RAW, HL_TOPIC_FHIR_VALID,
                         HL_TOPIC_DLQ, HL_TOPIC_LOAD_COMMITTED, HL_TOPIC_JOBS_STATUS};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    const hl_topic *tp = hl_topics_find(t, names[i]);
    cr_assert_not_null(tp, "%s missing from topics.json", names[i]);
    cr_assert_str_eq(tp->name, names[i]);
    cr_assert_gt(tp->partitions, 0);
    cr_assert(tp->retention_ms == -1 || tp->retention_ms > 0);
  }
  /* The high-volume topics need many partitions to live with the mock's 5 MiB per partition. */
  cr_assert_geq(hl_topics_find(t, HL_TOPIC_FHIR_RAW)->partitions, 32);
  cr_assert_geq(hl_topics_find(t, HL_TOPIC_FHIR_VALID)->partitions, 32);
  cr_assert_eq(hl_topics_count(t), 6);
  hl_topics_free(t);
}

Test(topics, good_file_values) {
  hl_topics *t = NULL;
  char err[512] = "";
  cr_assert_eq(hl_topics_load(DATA_DIR "/good.json", &t, err, sizeof err), 0, "%s", err);
  cr_assert_eq(hl_topics_count(t), 2);
  const hl_topic *a = hl_topics_at(t, 0);
  cr_assert_str_eq(a->name, "t.one");
  cr_assert_str_eq(a->description, "first");
  cr_assert_eq(a->partitions, 4);
  cr_assert_eq(a->replication_factor, 3);
  cr_assert_eq(a->min_insync_replicas, 2);
  cr_assert_eq(a->retention_ms, 60000);
  cr_assert_eq(a->retention_bytes, -1);
  cr_assert_str_eq(a->cleanup_policy, "delete");
  cr_assert_str_eq(a->key, "id");
  cr_assert_str_eq(a->value, "bytes");
  const hl_topic *b = hl_topics_find(t, "t.two");
  cr_assert_eq(b, hl_topics_at(t, 1));
  cr_assert_eq(b->retention_ms, -1);
  cr_assert_eq(b->retention_bytes, 1048576);
  cr_assert_str_eq(b->cleanup_policy, "compact,delete");
  cr_assert_null(hl_topics_at(t, 2));
  cr_assert_null(hl_topics_find(t, "t.three"));
  cr_assert_null(hl_topics_find(t, NULL));
  hl_topics_free(t);
}

/* Every file in tests/data/topics/bad is refused, with a message; the schema test refuses them too. */
Test(topics, bad_files_refused) {
  DIR *d = opendir(DATA_DIR "/bad");
  cr_assert_not_null(d);
  int seen = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (!strstr(e->d_name, ".json"))
      continue;
    char path[1024];
    snprintf(path, sizeof path, "%s/bad/%s", DATA_DIR, e->d_name);
    hl_topics *t = (hl_topics *)0x1;
    char err[512] = "";
    cr_assert_eq(hl_topics_load(path, &t, err, sizeof err), HL_EPARSE, "%s was accepted",
                 e->d_name);
    cr_assert_eq(t, (hl_topics *)0x1, "output touched on failure");
    cr_assert(strstr(err, path) != NULL && strlen(err) > strlen(path) + 4, "message: %s", err);
    seen++;
  }
  closedir(d);
  cr_assert_geq(seen, 19);
}

static void expect_parse_error(const char *json, const char *needle) {
  hl_topics *t = NULL;
  char err[512] = "";
  cr_assert_eq(hl_topics_parse(json, strlen(json), &t, err, sizeof err), HL_EPARSE, "%s", json);
  cr_assert_null(t);
  cr_assert(strstr(err, needle) != NULL, "message '%s' lacks '%s'", err, needle);
}

Test(topics, messages_name_topic_and_member) {
  expect_parse_error("{", "line 1");
  expect_parse_error("[]", "not an object");
  expect_parse_error("{\"version\":1,\"version\":1,\"topics\":[]}", "duplicate");
  expect_parse_error("{\"version\":1,\"topics\":[{\"name\":\"x\"}]}", "topic x: missing member");
  expect_parse_error("{\"version\":1,\"topics\":[{\"name\":\"x\",\"colour\":1}]}",
                     "unknown member \"colour\"");
  expect_parse_error("{\"version\":1,\"topics\":[7]}", "topic #0: not an object");
  expect_parse_error("{\"version\":1,\"topics\":[{\"name\":\"a b\"}]}", "not a valid Kafka topic");
}

Test(topics, limits_and_io_errors) {
  hl_topics *t = NULL;
  char err[256] = "";
  size_t big = HL_TOPICS_MAX_FILE + 1;
  char *buf = malloc(big);
  cr_assert_not_null(buf);
  memset(buf, ' ', big);
  cr_assert_eq(hl_topics_parse(buf, big, &t, err, sizeof err), HL_ELIMIT);
  cr_assert_null(t);
  free(buf);
  cr_assert_eq(hl_topics_load("/nonexistent/topics.json", &t, err, sizeof err), -ENOENT);
  cr_assert(strstr(err, "/nonexistent/topics.json") != NULL);
  cr_assert_eq(hl_topics_load(NULL, &t, NULL, 0), -EINVAL);
  cr_assert_null(t);
  cr_assert_null(hl_topics_free(NULL));
  cr_assert_eq(hl_topics_count(NULL), 0);
}

Test(topics, name_rules) {
  cr_assert(hl_topics_name_valid("hl.fhir.raw"));
  cr_assert(hl_topics_name_valid("A-b_c.9"));
  cr_assert_not(hl_topics_name_valid(""));
  cr_assert_not(hl_topics_name_valid("."));
  cr_assert_not(hl_topics_name_valid(".."));
  cr_assert_not(hl_topics_name_valid("a/b"));
  cr_assert_not(hl_topics_name_valid("a b"));
  cr_assert_not(hl_topics_name_valid(NULL));
  char longname[251];
  memset(longname, 'a', 250);
  longname[250] = '\0';
  cr_assert_not(hl_topics_name_valid(longname));
  longname[249] = '\0';
  cr_assert(hl_topics_name_valid(longname));
}
