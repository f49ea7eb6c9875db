/* The compiled form of hl_profile, walked by validate.c. Not a public header. */
#ifndef HL_VALIDATOR_PROFILE_INT_H
#define HL_VALIDATOR_PROFILE_INT_H

#include <stdint.h>

#include "profile.h"
#include "schema_int.h"

#define HL__PCAP_MAX 4

typedef enum hl__pkind {
  HL__PK_REQUIRED = 1,
  HL__PK_REF_FORMAT,
  HL__PK_REF_TARGET,
  HL__PK_CALENDAR,
  HL__PK_LOINC,
  HL__PK_UCUM,
  HL__PK_JSON_OBJECT,
  HL__PK_JSON_INTEGER,
  HL__PK_JSON_EMPTY,
} hl__pkind;

typedef struct hl__prule {
  const char *id;
  const char *code;    /* OperationOutcome issue type */
  const char *message;
  uint8_t kind;        /* hl__pkind */
  uint8_t severity;    /* hl_vsev (validate.h) */
  uint8_t cap_a;       /* capture slot: reference / system */
  uint8_t cap_b;       /* capture slot: type / code */
  unsigned allow;      /* hl_ref_form bits (reference-format) */
  const char *system;  /* loinc / ucum: the code system */
  size_t syslen;
  /* required: slots of the elements and of their "_" twins (HL__FNONE when absent). */
  uint32_t *slots, *twin_slots;
  const char **names;
  uint32_t nslots;
  /* reference-target: allowed resource definitions. */
  uint32_t *targets;
  uint32_t ntargets;
} hl__prule;

struct hl_profile {
  const hl_fschema *fs;
  char *name;
  hl__prule *rules;
  uint32_t nrules;
  /* Rules per definition and per property (CSR: list[first[i] .. first[i+1])). */
  uint32_t *def_first, *def_list;
  uint32_t *prop_first, *prop_list;
  /* Per property: capture slot + 1 of its string value (0: none). */
  uint8_t *capture;
  /* Value-level rules (NULL when not in the profile). */
  const hl__prule *calendar, *json_object, *json_integer, *json_empty;
  void *strings; /* owned copies of ids/messages */
};

#endif
