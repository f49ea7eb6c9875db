/*
 * hl_fschema: the FHIR R4 JSON Schema (fhir.schema.json), compiled.
 *
 * At start-up the schema document is read with jansson and compiled into
 * flat tables: one node per distinct value schema (JSON types, a pattern
 * checker, enum/const strings, an object definition, array items), one
 * definition per "definitions" entry with its properties (looked up
 * through one hash table keyed by definition and name), its required
 * properties and whether unknown properties are refused, and the resource
 * discriminator (resourceType -> definition) that replaces the schema's
 * top-level oneOf. The compiler accepts exactly the keywords it
 * implements and refuses the document otherwise, so a schema that needs
 * more fails at start-up instead of being half-checked.
 *
 * A compiled schema is immutable: one instance may be shared by any
 * number of validators and threads.
 */
#ifndef HL_VALIDATOR_SCHEMA_H
#define HL_VALIDATOR_SCHEMA_H

#include <stddef.h>

#include <jansson.h>

typedef struct hl_fschema hl_fschema;

/* Hard limits on the schema document. */
#define HL_FSCHEMA_MAX_BYTES (64u << 20)
#define HL_FSCHEMA_MAX_DEFS 65536u

/*
 * Reads and compiles the schema file at path. Returns 0, -errno when the
 * file cannot be read, HL_EPARSE when it is not JSON or uses something the
 * compiler does not implement (err, which may be NULL, says what and where).
 */
int hl_fschema_load(const char *path, hl_fschema **out, char *err, size_t errlen);

/* Compiles an already-parsed schema document (borrowed). Returns as hl_fschema_load. */
int hl_fschema_compile(const json_t *doc, hl_fschema **out, char *err, size_t errlen);

hl_fschema *hl_fschema_free(hl_fschema *s);

/* Counts for logs and tests. */
typedef struct hl_fschema_stats {
  size_t definitions; /* "definitions" entries */
  size_t resources;   /* resource types of the discriminator */
  size_t properties;  /* properties over all definitions */
  size_t nodes;       /* compiled value schemas */
  size_t regexes;     /* patterns without a hand-written checker (POSIX fallback) */
} hl_fschema_stats;
void hl_fschema_get_stats(const hl_fschema *s, hl_fschema_stats *out);

/* Whether name is a resource type of the schema (len bytes, not NUL-terminated). */
int hl_fschema_is_resource(const hl_fschema *s, const char *name, size_t len);

#endif
