/*
 * Code tables of hl-synth: the clinical codes it writes (SNOMED CT, LOINC,
 * RxNorm, CVX, UCUM) with their displays and the OMOP standard concept ids
 * they map to, and the demographic frequency tables (age/sex pyramid,
 * race/ethnicity, names, states). This is the documented mapping table the
 * FHIR -> OMOP rules of docs/fhir-omop-mapping.md refer to.
 */
#ifndef HL_SYNTH_TABLES_H
#define HL_SYNTH_TABLES_H

#include <stddef.h>
#include <stdint.h>

#define HL_SNOMED "http://snomed.info/sct"
#define HL_LOINC "http://loinc.org"
#define HL_RXNORM "http://www.nlm.nih.gov/research/umls/rxnorm"
#define HL_CVX "http://hl7.org/fhir/sid/cvx"
#define HL_UCUM "http://unitsofmeasure.org"

/* Conditions. The first HL_COND_NCHRONIC are chronic. */
enum {
  HL_C_OBESITY,
  HL_C_HYPERTENSION,
  HL_C_HYPERLIPIDEMIA,
  HL_C_DIABETES,
  HL_C_CKD,
  HL_C_CAD,
  HL_C_ASTHMA,
  HL_C_COPD,
  HL_C_DEPRESSION,
  HL_COND_NCHRONIC,
  HL_C_PHARYNGITIS = HL_COND_NCHRONIC,
  HL_C_BRONCHITIS,
  HL_C_SINUSITIS,
  HL_C_OTITIS,
  HL_C_SPRAIN,
  HL_COND_N
};

typedef struct hl_code {
  const char *code;    /* code in its system */
  const char *display; /* the system's display for it */
  int32_t concept_id;  /* OMOP standard concept id */
} hl_code;

extern const hl_code hl_conditions[HL_COND_N];

/* Chronic condition model: prevalence by age is p_max * logistic((age - a50) / s). */
typedef struct hl_cond_model {
  double p_max, a50, s;
  double min_age;     /* no onset before this age */
} hl_cond_model;
extern const hl_cond_model hl_cond_models[HL_COND_NCHRONIC];

/* Observation codes (LOINC). */
enum {
  HL_O_BP_PANEL,
  HL_O_SYSTOLIC,
  HL_O_DIASTOLIC,
  HL_O_HEART_RATE,
  HL_O_HEIGHT,
  HL_O_WEIGHT,
  HL_O_BMI,
  HL_O_HBA1C,
  HL_O_GLUCOSE,
  HL_O_CHOLESTEROL,
  HL_O_TRIGLYCERIDE,
  HL_O_HDL,
  HL_O_LDL,
  HL_O_CREATININE,
  HL_O_EGFR,
  HL_OBS_N
};

typedef struct hl_obs_code {
  hl_code c;
  const char *unit;     /* UCUM code (also the unit display) */
  int32_t unit_concept; /* OMOP unit concept id */
  int decimals;         /* decimals written; values are stored scaled by 10^decimals */
  int vital;            /* 1: vital-signs category, 0: laboratory */
} hl_obs_code;
extern const hl_obs_code hl_obs_codes[HL_OBS_N];

/* Medications: RxNorm ingredient concepts (OMOP concept = the RxNorm ingredient). */
enum {
  HL_M_METFORMIN,
  HL_M_INSULIN,
  HL_M_LISINOPRIL,
  HL_M_AMLODIPINE,
  HL_M_HCTZ,
  HL_M_ATORVASTATIN,
  HL_M_ALBUTEROL,
  HL_M_FLUTICASONE,
  HL_M_TIOTROPIUM,
  HL_M_AMOXICILLIN,
  HL_M_IBUPROFEN,
  HL_M_ACETAMINOPHEN,
  HL_M_SERTRALINE,
  HL_M_METOPROLOL,
  HL_MED_N
};
typedef struct hl_med_code {
  hl_code c;
  double dose;          /* dose per administration */
  const char *dose_unit;/* UCUM */
  int per_day;          /* administrations per day */
  const char *route;    /* SNOMED route code */
  const char *route_display;
  int32_t route_concept;
  const char *sig;      /* dosage text */
} hl_med_code;
extern const hl_med_code hl_meds[HL_MED_N];

enum { HL_P_COLONOSCOPY, HL_P_MAMMOGRAPHY, HL_PROC_N };
extern const hl_code hl_procs[HL_PROC_N];

enum { HL_V_FLU_PF, HL_V_FLU, HL_VAX_N };
extern const hl_code hl_vaccines[HL_VAX_N];

/* Encounter kinds. */
enum { HL_E_WELLNESS_CHILD, HL_E_WELLNESS_ADULT, HL_E_CHECKUP, HL_E_SYMPTOM, HL_E_EMERGENCY,
       HL_E_INPATIENT, HL_ENC_N };
typedef struct hl_enc_code {
  hl_code c;           /* SNOMED encounter type */
  const char *cls;     /* v3 ActCode */
  const char *cls_display;
  int32_t visit_concept; /* OMOP visit concept */
} hl_enc_code;
extern const hl_enc_code hl_encs[HL_ENC_N];

/* Demographics. */
typedef struct hl_age_band {
  int lo, hi;          /* ages lo..hi inclusive */
  double share;        /* percent of the population */
  double male;         /* share of males in the band */
} hl_age_band;
extern const hl_age_band hl_age_bands[];
extern const size_t hl_age_nbands;

typedef struct hl_race {
  const char *code, *display; /* OMB category (urn:oid:2.16.840.1.113883.6.238) */
  int32_t concept;            /* OMOP race concept, 0 when none */
  double share;               /* percent */
} hl_race;
extern const hl_race hl_races[];
extern const size_t hl_nraces;
extern const double hl_hispanic_share; /* percent */

typedef struct hl_name {
  const char *name;
  double weight;
} hl_name;
extern const hl_name hl_male_names[], hl_female_names[], hl_surnames[];
extern const size_t hl_nmale_names, hl_nfemale_names, hl_nsurnames;
extern const char *const hl_streets[];
extern const size_t hl_nstreets;

typedef struct hl_state {
  const char *abbr, *city;
  int zip3;
  double pop; /* millions, 2020 census */
} hl_state;
extern const hl_state hl_states[];
extern const size_t hl_nstates;

/* Gender and ethnicity concepts. */
#define HL_OMOP_MALE 8507
#define HL_OMOP_FEMALE 8532
#define HL_OMOP_HISPANIC 38003563
#define HL_OMOP_NOT_HISPANIC 38003564
#define HL_OMOP_EHR 32817
#define HL_OMOP_EHR_PRESCRIPTION 32838
#define HL_OMOP_POS_INPATIENT 8717
#define HL_OMOP_POS_OFFICE 8940

#endif
