/*
 * The stand-in's reading of Snowflake's OpenAPI description (sqlapi.yaml,
 * converted to JSON at build time): requests are checked against the
 * operation's parameters and request body, and the stand-in's own answers
 * against the response schemas. The checks are derived from the document
 * at run time, not copied by hand: a subset of OpenAPI 3.0 / JSON Schema
 * (type, nullable, properties, required, items, minItems, minimum, enum,
 * format uuid, $ref to #/components/...).
 */
#ifndef SF_STANDIN_SPEC_H
#define SF_STANDIN_SPEC_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct sf_spec sf_spec;

/* Reads the JSON document at path. NULL and a message in err on failure. */
sf_spec *sf_spec_load(const char *path, char *err, size_t errlen);
sf_spec *sf_spec_free(sf_spec *s);

/* Returns the value of a request header, NULL if absent. */
typedef const char *(*sf_spec_header_fn)(void *ud, const char *name);

/*
 * Checks a request for operation (path template, lower-case method):
 * required headers present and not empty unless allowed, query parameters
 * known (or in extra_query, a '|'-separated list of documented extras) and
 * of their schema's type, path parameters (names and values in pairs), and
 * the JSON body against the request body schema (body NULL: absent).
 * Returns the HTTP status to answer (400 or 415) with a message in err, or
 * 0 when the request conforms.
 */
int sf_spec_check_request(const sf_spec *s, const char *tmpl, const char *method, const char *query,
                          const char *const *path_params, sf_spec_header_fn header, void *ud,
                          const char *content_type, json_t *body, const char *extra_query, char *err,
                          size_t errlen);

/* Checks an answer body against the operation's response schema for status. */
bool sf_spec_check_response(const sf_spec *s, const char *tmpl, const char *method, int status, json_t *body,
                            char *err, size_t errlen);

/* Whether v (n bytes) is a UUID: 8-4-4-4-12 hexadecimal digits. */
bool sf_spec_is_uuid(const char *v, size_t n);

/* Validates value against a schema of the document (exposed for tests). */
bool sf_spec_validate(const sf_spec *s, json_t *schema, json_t *value, const char *where, char *err,
                      size_t errlen);

#endif
