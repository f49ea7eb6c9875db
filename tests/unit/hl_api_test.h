/* Helpers shared by the API gateway's unit tests (tests/unit/test_api_*.c). */
#ifndef HL_API_TEST_H
#define HL_API_TEST_H

#include <string.h>

#include "hl_test.h"
#include "query.h"

/*
 * Parses type?query into q and s as the gateway does (default _count 20,
 * at most 50), asserting that both steps succeed. The caller clears both.
 */
static inline void hl_test_api_search(const char *type, const char *query, hl_api_query *q,
                                      hl_api_search *s) {
  char err[256] = "";
  cr_assert_eq(hl_api_query_parse(query, strlen(query), q, err, sizeof err), 0, "%s", err);
  hl_api_search_opts so = {20, 50};
  cr_assert_eq(hl_api_search_parse(hl_api_type_find(type), q, &so, s, err, sizeof err), 0, "%s?%s: %s",
               type, query, err);
}

#endif
