/*
 * libFuzzer target for the S3 XML reader: ListObjectsV2 pages and <Error>
 * documents. Any input must parse or fail cleanly, and a parsed page must
 * hold only what the parser promises (keys within the S3 limit, a token
 * whenever the page is truncated).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hl/s3.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  hl_s3_list_page page = {0};
  if (hl_s3_parse_list((const char *)data, size, &page) == 0) {
    for (size_t i = 0; i < page.count; i++) {
      size_t n = strlen(page.objects[i].key);
      if (n == 0 || n > HL_S3_MAX_KEY || page.objects[i].size < 0)
        abort();
    }
    if (page.truncated && !page.next_token)
      abort();
  } else if (page.objects || page.next_token || page.count) {
    abort();
  }
  hl_s3_list_page_clear(&page);
  hl_s3_error err = {0};
  hl_s3_parse_error((const char *)data, size, &err);
  if (strlen(err.code) >= sizeof err.code || strlen(err.message) >= sizeof err.message)
    abort();
  return 0;
}
