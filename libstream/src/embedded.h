/* Files embedded in the library at build time (libstream/tools/embed.py). */
#ifndef HL_EMBEDDED_H
#define HL_EMBEDDED_H

#include <stddef.h>

typedef struct hl__embedded {
  const char *name; /* path relative to the embedding base, NULL ends the table */
  const char *data; /* NUL-terminated */
  size_t len;       /* without the NUL */
} hl__embedded;

/* schemas/warehouse: curated_contract.json and sqlite/NNN_*.sql, in name order. */
extern const hl__embedded hl__wh_schema_files[];

#endif
