/*
 * The person model of hl-synth: one patient's life over the simulated
 * period, as plain data that the FHIR and OMOP writers both serialize, so
 * the two outputs describe exactly the same people and events.
 *
 * A patient is generated from (seed, k) alone: its own random stream, its
 * own ids. Times are seconds since 1970-01-01 UTC. Every array is capped;
 * the generator stops adding events at a cap, so memory per patient is
 * bounded.
 */
#ifndef HL_SYNTH_MODEL_H
#define HL_SYNTH_MODEL_H

#include <stdint.h>

#include "rng.h"
#include "tables.h"

#define HL_MAX_ENC 600
#define HL_MAX_COND 64
#define HL_MAX_OBS 6000
#define HL_MAX_MED 200
#define HL_MAX_PROC 32
#define HL_MAX_IMM 120

/* Facilities and practitioners per organization (tenant). */
#define HL_ORG_FACILITIES 2
#define HL_ORG_PRACTITIONERS 12

typedef struct hl_synth_params {
  uint64_t seed;
  int orgs;          /* K >= 1 */
  int64_t start;     /* simulated period [start, end), seconds */
  int64_t end;
  uint32_t version;  /* meta.versionId, >= 1; lastUpdated is end + (version - 1) hours */
} hl_synth_params;

typedef struct hl_enc {
  int64_t start, end;
  uint8_t kind;      /* HL_E_* */
  int8_t reason;     /* condition index in the patient, -1 none */
  uint8_t facility;  /* 0..HL_ORG_FACILITIES-1 */
  uint8_t practitioner; /* 0..HL_ORG_PRACTITIONERS-1 */
} hl_enc;

typedef struct hl_cond {
  int64_t onset, abatement; /* abatement 0: still active */
  uint8_t code;      /* HL_C_* */
  int16_t enc;       /* encounter where it was recorded */
} hl_cond;

typedef struct hl_obs {
  int64_t t;
  int32_t v, v2;     /* value scaled by 10^decimals; v2: diastolic for a BP panel */
  uint8_t code;      /* HL_O_* */
  int16_t enc;
} hl_obs;

typedef struct hl_med {
  int64_t start, end;/* end: planned end of the prescription (validity period) */
  uint8_t code;      /* HL_M_* */
  int8_t reason;     /* condition index in the patient */
  int16_t enc;
} hl_med;

typedef struct hl_proc {
  int64_t start, end;
  uint8_t code;
  int16_t enc;
} hl_proc;

typedef struct hl_imm {
  int64_t t;
  uint8_t code;
  int16_t enc;
} hl_imm;

typedef struct hl_patient {
  uint64_t k;          /* 0-based index in the cohort */
  int org;             /* 0-based organization */
  int male;
  int64_t birth;       /* birth date-time */
  int64_t death;       /* 0: alive at the end */
  int race;            /* index in hl_races */
  int hispanic;
  const char *given, *given2, *family;
  const char *prefix;  /* "Mr." / "Mrs." / "Ms." or NULL for children */
  int house;
  const char *street;
  int state;           /* index in hl_states */
  int zip;             /* 5 digits */
  char phone[16];
  int ssn_area, ssn_group, ssn_serial;

  int nenc, ncond, nobs, nmed, nproc, nimm;
  hl_enc enc[HL_MAX_ENC];
  hl_cond cond[HL_MAX_COND];
  hl_obs obs[HL_MAX_OBS];
  hl_med med[HL_MAX_MED];
  hl_proc proc[HL_MAX_PROC];
  hl_imm imm[HL_MAX_IMM];
} hl_patient;

/* Fills *p with patient k of the cohort described by par. p is about 250 KB. */
void hl_patient_generate(const hl_synth_params *par, uint64_t k, hl_patient *p);

/* A deterministic UUID (version 4 layout) for (seed, kind, a, b); out has 37 bytes. */
void hl_synth_uuid(uint64_t seed, uint64_t kind, uint64_t a, uint64_t b, char out[37]);

/* Organization-level facts (deterministic from seed and org index). */
typedef struct hl_org_info {
  int state;
  int zip;
  int house;
  const char *street;
  const char *prac_given[HL_ORG_PRACTITIONERS];
  const char *prac_family[HL_ORG_PRACTITIONERS];
  int prac_male[HL_ORG_PRACTITIONERS];
  int prac_birth_year[HL_ORG_PRACTITIONERS];
  int prac_facility[HL_ORG_PRACTITIONERS];
} hl_org_info;
void hl_org_generate(const hl_synth_params *par, int org, hl_org_info *o);

/* OMOP ids: documented in docs/fhir-omop-mapping.md. */
static inline int64_t hl_person_id(uint64_t k) { return (int64_t)k + 1; }
static inline int64_t hl_row_id(uint64_t k, int64_t idx, int64_t width) {
  return ((int64_t)k + 1) * width + idx;
}
#define HL_ID_WIDTH 10000      /* visits, conditions, drugs, procedures per person */
#define HL_ID_WIDTH_MEAS 100000 /* measurements per person */
static inline int64_t hl_care_site_id(int org, int f) { return (int64_t)org * 100 + f + 1; }
static inline int64_t hl_provider_id(int org, int i) { return (int64_t)org * 1000 + i + 1; }
static inline int64_t hl_facility_location_id(int org, int f) {
  return 9000000000000LL + (int64_t)org * 100 + f + 1;
}

/* Kinds for hl_synth_uuid. */
enum { HL_U_PATIENT = 1, HL_U_ENC, HL_U_COND, HL_U_OBS, HL_U_MED, HL_U_PROC, HL_U_IMM, HL_U_ORG,
       HL_U_FACILITY, HL_U_PRACT };

#endif
