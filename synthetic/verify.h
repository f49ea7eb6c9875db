/*
 * `hl-synth verify`: derives the OMOP rows from the FHIR output by the rules
 * of docs/fhir-omop-mapping.md (independently of the generator, from the
 * JSON alone) and compares them with the OMOP CSV files, row by row and
 * column by column. Prints a report; returns 0 when both describe the same
 * people and events, 1 on any mismatch or unreadable input.
 */
#ifndef HL_SYNTH_VERIFY_H
#define HL_SYNTH_VERIFY_H

#include <stdio.h>

int hl_verify_run(const char *fhir_dir, const char *omop_dir, FILE *report);

#endif
