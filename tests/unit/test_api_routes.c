/*
 * hl-api-gateway: the router table against docs/api/openapi.yaml (a route in
 * one and not the other fails) and the CapabilityStatement against the type table.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fhirtypes.h"
#include "gateway.h"
#include "hl_test.h"

HL_TEST_SUITE(api_routes);

typedef struct op {
  char method[8];
  char path[128];
} op;

/* Reads "paths:" of the document: 2-space keys are paths, 4-space get:/post:/... are methods. */
static size_t openapi_ops(op *ops, size_t max, char types[][32], size_t *ntypes) {
  FILE *f = fopen(HL_SOURCE_ROOT "/docs/api/openapi.yaml", "r");
  cr_assert_not_null(f);
  char line[1024], cur[128] = "";
  bool in_paths = false;
  size_t n = 0;
  *ntypes = 0;
  while (fgets(line, sizeof line, f)) {
    line[strcspn(line, "\r\n")] = 0;
    if (line[0] && line[0] != ' ' && line[0] != '#')
      in_paths = !strcmp(line, "paths:");
    if (strstr(line, "enum: [Patient")) {
      char *p = strchr(line, '[') + 1;
      for (char *tok = strtok(p, ", ]"); tok; tok = strtok(NULL, ", ]"))
        snprintf(types[(*ntypes)++], 32, "%s", tok);
    }
    if (!in_paths)
      continue;
    if (!strncmp(line, "  /", 3) && line[strlen(line) - 1] == ':') {
      snprintf(cur, sizeof cur, "%.*s", (int)strlen(line) - 3, line + 2);
    } else if (!strncmp(line, "    ", 4) && line[4] != ' ') {
      static const char *methods[] = {"get:", "post:", "put:", "delete:", "patch:", "head:", "options:"};
      for (size_t i = 0; i < 7; i++)
        if (!strcmp(line + 4, methods[i]) && n < max) {
          for (size_t k = 0; methods[i][k] != ':'; k++)
            ops[n].method[k] = (char)(methods[i][k] - 32);
          snprintf(ops[n].path, sizeof ops[n].path, "%s", cur);
          n++;
        }
    }
  }
  fclose(f);
  return n;
}

Test(api_routes, router_equals_openapi) {
  op ops[64] = {0};
  char types[16][32];
  size_t ntypes;
  size_t n = openapi_ops(ops, 64, types, &ntypes);
  const hl_api_route_info *r;
  size_t nr = hl_api_routes(&r);
  cr_assert_gt(nr, 5);
  for (size_t i = 0; i < nr; i++) {
    bool found = false;
    for (size_t k = 0; k < n && !found; k++)
      found = !strcmp(ops[k].method, r[i].method) && !strcmp(ops[k].path, r[i].pattern);
    cr_expect(found, "route %s %s is not in docs/api/openapi.yaml", r[i].method, r[i].pattern);
  }
  for (size_t k = 0; k < n; k++) {
    bool found = false;
    for (size_t i = 0; i < nr && !found; i++)
      found = !strcmp(ops[k].method, r[i].method) && !strcmp(ops[k].path, r[i].pattern);
    cr_expect(found, "docs/api/openapi.yaml has %s %s, the server does not", ops[k].method, ops[k].path);
  }
  cr_assert_eq(ntypes, hl_api_ntypes, "the type enum of openapi.yaml lists every served type");
  for (size_t i = 0; i < ntypes; i++)
    cr_expect_not_null(hl_api_type_find(types[i]), "%s", types[i]);
}

Test(api_routes, capability_statement_lists_the_tables) {
  char *s = hl_api_capability_statement("http://x");
  cr_assert_not_null(s);
  json_t *cs = json_loads(s, 0, NULL);
  free(s);
  cr_assert_not_null(cs);
  cr_assert_str_eq(json_string_value(json_object_get(cs, "resourceType")), "CapabilityStatement");
  cr_assert_str_eq(json_string_value(json_object_get(cs, "fhirVersion")), "4.0.1");
  json_t *res = json_object_get(json_array_get(json_object_get(cs, "rest"), 0), "resource");
  cr_assert_eq(json_array_size(res), hl_api_ntypes);
  for (size_t i = 0; i < hl_api_ntypes; i++) {
    json_t *r = json_array_get(res, i);
    const hl_api_type_def *t = &hl_api_types[i];
    cr_assert_str_eq(json_string_value(json_object_get(r, "type")), t->type);
    json_t *sp = json_object_get(r, "searchParam");
    cr_assert_eq(json_array_size(sp), t->nparams + hl_api_ncommon_params);
    size_t k;
    json_t *p;
    json_array_foreach(sp, k, p) {
      const char *name = json_string_value(json_object_get(p, "name"));
      const hl_api_param_def *d = hl_api_param_find(t, name);
      cr_assert_not_null(d, "%s %s", t->type, name);
      cr_assert_str_eq(json_string_value(json_object_get(p, "type")), hl_api_sp_kind_name(d->kind));
    }
  }
  json_decref(cs);
}
