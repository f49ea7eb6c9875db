/*
 * The command line of hl-synth, driven by one option table (opts.c) that
 * parses argv, prints --help and the Markdown table of docs/synth.md
 * (`hl-synth --help-markdown`). hl-synth takes its options from argv rather
 * than HL_* variables because a generator run is a one-off command whose
 * options differ per run; logging still follows HL_LOG_LEVEL/HL_LOG_FORMAT.
 */
#ifndef HL_SYNTH_OPTS_H
#define HL_SYNTH_OPTS_H

#include <stdint.h>
#include <stdio.h>

enum { HL_SYNTH_GENERATE, HL_SYNTH_VERIFY, HL_SYNTH_HELP, HL_SYNTH_HELP_MD };

typedef struct hl_synth_opts {
  int command;
  uint64_t patients;
  uint64_t seed;
  int orgs;
  uint32_t version;    /* meta.versionId of every resource, >= 1 */
  int64_t start, end;  /* seconds since 1970 */
  const char *out;     /* FHIR directory */
  int bundle;
  const char *omop;    /* OMOP directory or NULL */
  uint64_t split;
  int gzip;
  int threads;
  int progress;        /* -1 auto (a terminal), 0 never, 1 always */
  const char *verify_fhir, *verify_omop;
} hl_synth_opts;

/*
 * Parses argv (argv[1] may be the word "verify"). Returns 0, or HL_ECONFIG
 * with a message in err. Checks every value and their combination; the
 * output directories are checked by the generator before it writes.
 */
int hl_synth_opts_parse(int argc, char **argv, hl_synth_opts *o, char *err, size_t errlen);
void hl_synth_opts_help(FILE *f);
void hl_synth_opts_markdown(FILE *f);

/* Parses YYYY-MM-DD into seconds since 1970 (UTC midnight); 0 or HL_ECONFIG. */
int hl_synth_parse_date(const char *s, int64_t *out);

#endif
