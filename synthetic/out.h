/*
 * Output files of hl-synth: one file set per (organization, stream) under
 * <dir>/org=<id>/, split every `split` lines for NDJSON, optionally gzip.
 *
 * Every file is written under a temporary name (".<name>.tmp") and renamed
 * to its final name only once complete (after fsync), so a failed or
 * interrupted run never leaves a truncated file that looks complete; on
 * failure hl_out_free(..., 0) removes the temporary files.
 */
#ifndef HL_SYNTH_OUT_H
#define HL_SYNTH_OUT_H

#include <stddef.h>
#include <stdint.h>

typedef struct hl_out hl_out;

typedef struct hl_out_opts {
  const char *fhir_dir;  /* NULL: no FHIR output */
  const char *omop_dir;  /* NULL: no OMOP output */
  int orgs;
  uint64_t split;        /* lines per NDJSON file, 0: one file per stream */
  int gzip;
  int bundle;            /* FHIR as one Bundle file per patient */
} hl_out_opts;

int hl_out_new(const hl_out_opts *o, hl_out **out);
/* Closes everything; keep=1 finishes and renames, keep=0 removes temporary files. */
int hl_out_finish(hl_out *o);
hl_out *hl_out_free(hl_out *o);

/* Appends len bytes holding nlines lines to stream s of organization org. */
int hl_out_write(hl_out *o, int org, int s, const char *data, size_t len, uint64_t nlines);
/* Writes one complete file <dir>/org=<id>/bundles/<name>.json (bundle format). */
int hl_out_write_file(hl_out *o, int org, const char *name, const char *data, size_t len);

/* Bytes written so far (after compression) and before compression. */
uint64_t hl_out_bytes(const hl_out *o);
uint64_t hl_out_raw_bytes(const hl_out *o);
/* A description of the last error (a path and a reason). */
const char *hl_out_error(const hl_out *o);

#endif
