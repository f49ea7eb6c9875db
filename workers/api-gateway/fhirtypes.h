/*
 * The FHIR types, search parameters and sort keys the gateway serves: one
 * table that drives the search parser (query.c), the SQL of the read-side
 * store (store_sqlite.c), the CapabilityStatement (GET /v1/fhir/metadata)
 * and, through a test, docs/api/openapi.yaml.
 */
#ifndef HL_API_FHIRTYPES_H
#define HL_API_FHIRTYPES_H

#include <stdbool.h>
#include <stddef.h>

/* The FHIR search parameter kinds the gateway implements. */
typedef enum hl_api_sp_kind {
  HL_SP_STRING,    /* case- and accent-insensitive prefix (side table curated_string) */
  HL_SP_TOKEN,     /* system|code, code, |code, system| */
  HL_SP_DATE,      /* eq ne lt gt le ge sa eb, partial dates */
  HL_SP_REFERENCE, /* Type/id or id */
  HL_SP_QUANTITY,  /* number with prefixes, optional |system|code unit */
} hl_api_sp_kind;

/* Where the values of a parameter live in a curated table. */
typedef enum hl_api_sp_store {
  HL_SP_COLUMN,      /* a column of the type's curated table (col, col_end for ranges) */
  HL_SP_SIDE_TOKEN,  /* rows of curated_token (param = side) */
  HL_SP_SIDE_STRING, /* rows of curated_string (param = side) */
} hl_api_sp_store;

typedef struct hl_api_param_def {
  const char *name;         /* "birthdate" */
  hl_api_sp_kind kind;
  hl_api_sp_store store;
  const char *col;          /* column (HL_SP_COLUMN), or side-table param name */
  const char *col_end;      /* dates: column of the end of the period (may be NULL) */
  const char *system;       /* column tokens: the code system of the values (may be NULL) */
  const char *target;       /* references: the type referred to ("Patient") */
  bool sortable;            /* may appear in _sort */
  const char *doc;          /* one line for the CapabilityStatement */
} hl_api_param_def;

typedef struct hl_api_type_def {
  const char *type;                  /* "Observation" */
  const char *table;                 /* "curated_observation" */
  const char *patient_col;           /* the column holding the subject patient id, NULL if none */
  const hl_api_param_def *params;
  size_t nparams;
} hl_api_type_def;

/* Parameters every type has (_id, _lastUpdated). */
extern const hl_api_param_def hl_api_common_params[];
extern const size_t hl_api_ncommon_params;

/* Every served type, in CapabilityStatement order. */
extern const hl_api_type_def hl_api_types[];
extern const size_t hl_api_ntypes;

/* The type definition of a name (case-sensitive), NULL when not served. */
const hl_api_type_def *hl_api_type_find(const char *type);
/* Index of a type in hl_api_types (for scope bit masks), -1 when not served. */
int hl_api_type_index(const char *type);
/* A parameter of a type by name (common ones included), NULL when unknown. */
const hl_api_param_def *hl_api_param_find(const hl_api_type_def *t, const char *name);
/* The FHIR name of a kind ("string", "token", ...). */
const char *hl_api_sp_kind_name(hl_api_sp_kind k);

#endif
