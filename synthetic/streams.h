/*
 * The output streams of hl-synth: one NDJSON file set per FHIR resource
 * type and one CSV file per OMOP table, under org=<id>/ of --out and --omop.
 */
#ifndef HL_SYNTH_STREAMS_H
#define HL_SYNTH_STREAMS_H

enum {
  HL_S_ORGANIZATION,
  HL_S_PRACTITIONER,
  HL_S_PATIENT,
  HL_S_ENCOUNTER,
  HL_S_CONDITION,
  HL_S_OBSERVATION,
  HL_S_MEDREQ,
  HL_S_PROCEDURE,
  HL_S_IMMUNIZATION,
  HL_S_FHIR_N,
  HL_S_PERSON = HL_S_FHIR_N,
  HL_S_OBS_PERIOD,
  HL_S_VISIT,
  HL_S_CONDITION_OCC,
  HL_S_MEASUREMENT,
  HL_S_DRUG,
  HL_S_PROC_OCC,
  HL_S_DEATH,
  HL_S_LOCATION,
  HL_S_CARE_SITE,
  HL_S_PROVIDER,
  HL_S_N,
  HL_S_BUNDLE = HL_S_N, /* one file per patient, bundle format only */
  HL_S_ALL
};

/* Resource type or table name of each stream. */
extern const char *const hl_stream_names[HL_S_ALL];
/* The CSV header line (with its newline) of each OMOP table, NULL for FHIR streams. */
extern const char *const hl_omop_headers[HL_S_N];

static inline int hl_stream_is_omop(int s) { return s >= HL_S_FHIR_N && s < HL_S_N; }

#endif
