/*
 * libFuzzer target for the Snowflake result reader: any bytes as the body
 * of a SQL API answer (partition 0), then the same bytes as a later
 * partition. A parsed result must hold only what the reader promises:
 * every row has every column, every cell is a string or NULL, and typing
 * a cell by its column never fails other than with HL_EPARSE.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hl/error.h"
#include "hl/snowflake.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  hl_snowflake_result *r = NULL;
  int rc = hl_snowflake_result_parse((const char *)data, size, 1 << 20, &r);
  if (rc != 0) {
    if (r || (rc != HL_EPARSE && rc != HL_ELIMIT && rc != -12 /* -ENOMEM */))
      abort();
    return 0;
  }
  if (hl_snowflake_result_partitions(r) > 1)
    (void)hl_snowflake_result_add_partition(r, (const char *)data, size);
  size_t rows = hl_snowflake_result_rows(r), cols = hl_snowflake_result_cols(r);
  for (size_t i = 0; i < rows; i++) {
    for (size_t c = 0; c < cols; c++) {
      hl_snowflake_value v;
      int vr = hl_snowflake_result_value(r, i, c, &v);
      if (vr != 0 && vr != HL_EPARSE)
        abort();
      if (v.text != hl_snowflake_result_str(r, i, c))
        abort();
    }
  }
  if (hl_snowflake_result_str(r, rows, 0) || hl_snowflake_result_column(r, cols))
    abort();
  hl_snowflake_result_free(r);
  return 0;
}
