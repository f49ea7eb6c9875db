/*
 * The generator driver: worker threads build patients in chunks into their
 * own buffers; the calling thread writes the chunks in patient order, so the
 * output is byte-identical whatever the number of threads. Memory is bounded
 * by the ring of chunks, not by the number of patients.
 */
#ifndef HL_SYNTH_GEN_H
#define HL_SYNTH_GEN_H

#include <stdint.h>
#include <stdio.h>

#include "opts.h"
#include "streams.h"

typedef struct hl_gen_stats {
  uint64_t patients;
  uint64_t counts[HL_S_ALL];  /* resources per FHIR type, rows per OMOP table */
  uint64_t bytes, raw_bytes;  /* written (after gzip) and uncompressed */
  double seconds;
} hl_gen_stats;

/*
 * Checks the output directories (status-2 problems: returns HL_ECONFIG with
 * a message in err) without writing anything but the directories.
 */
int hl_gen_check_dirs(const hl_synth_opts *o, char *err, size_t errlen);

/* Runs the generator. 0, or a negative error with a message in err. */
int hl_gen_run(const hl_synth_opts *o, hl_gen_stats *st, char *err, size_t errlen);

/* Prints the end-of-run summary. */
void hl_gen_print_summary(const hl_synth_opts *o, const hl_gen_stats *st, FILE *f);

#endif
