/*
 * The OMOP CDM v5.4 writer of hl-synth: CSV rows for the same patients and
 * events the FHIR writer writes, following docs/fhir-omop-mapping.md.
 */
#ifndef HL_SYNTH_OMOP_H
#define HL_SYNTH_OMOP_H

#include <stdint.h>

#include "model.h"
#include "sb.h"
#include "streams.h"

/* Appends patient p's rows to out[table]; counts[table] grows by the rows written. */
void hl_omop_write_patient(const hl_synth_params *par, const hl_patient *p, hl_sb *out,
                           uint64_t *counts);

/* Appends organization org's care_site, provider and facility location rows. */
void hl_omop_write_org(const hl_synth_params *par, int org, const hl_org_info *o, hl_sb *out,
                       uint64_t *counts);

#endif
