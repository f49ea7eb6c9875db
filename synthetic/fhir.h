/*
 * The FHIR R4 writer of hl-synth: writes a patient's resources (or an
 * organization's) as JSON straight into byte buffers, either one NDJSON
 * line per resource into the stream of its type, or one transaction Bundle
 * per patient with urn:uuid: fullUrls and references.
 */
#ifndef HL_SYNTH_FHIR_H
#define HL_SYNTH_FHIR_H

#include <stdint.h>

#include "model.h"
#include "sb.h"
#include "streams.h"

/* Identifier systems that link FHIR resources to their OMOP rows. */
#define HL_OMOP_SYSTEM "urn:healthlake:omop:"

/*
 * Appends patient p's resources to out (indexed by stream). In NDJSON mode
 * each resource is one line of its type's stream; in bundle mode the whole
 * patient is one transaction Bundle on out[HL_S_BUNDLE]. counts[stream] is
 * increased by the number of resources written per type.
 */
void hl_fhir_write_patient(const hl_synth_params *par, const hl_patient *p, int bundle,
                           hl_sb *out, uint64_t *counts);

/*
 * Appends organization org's Organization resources (the tenant and its
 * facilities) and Practitioners: NDJSON lines on their streams, or in bundle
 * mode one transaction Bundle (PUT, so the ids are kept) on out[HL_S_BUNDLE].
 */
void hl_fhir_write_org(const hl_synth_params *par, int org, const hl_org_info *o, int bundle,
                       hl_sb *out, uint64_t *counts);

/* The name of organization org: "org-<org+1>". buf has at least 16 bytes. */
void hl_org_name(int org, char *buf);

#endif
