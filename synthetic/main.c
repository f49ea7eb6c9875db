/*
 * hl-synth: the correlated synthetic FHIR R4 + OMOP CDM generator, and its
 * `verify` command. The work lives in the modules of synthetic/ (see
 * docs/synth.md); main parses options, sets up logging and dispatches.
 */
#include <signal.h>
#include <stdio.h>

#include "gen.h"
#include "hl/config.h"
#include "hl/log.h"
#include "opts.h"
#include "verify.h"

static const hl_config_spec log_spec = {"hl-synth", "synthetic FHIR + OMOP generator", NULL, 0};

int main(int argc, char **argv) {
  char err[8192];
  hl_config *cfg = NULL;
  if (hl_config_load(&log_spec, &cfg, err, sizeof(err)) != 0) {
    fprintf(stderr, "hl-synth: %s\n", err);
    return 2;
  }
  hl_log_configure("hl-synth", cfg);
  cfg = hl_config_free(cfg);

  hl_synth_opts o;
  if (hl_synth_opts_parse(argc, argv, &o, err, sizeof(err)) != 0) {
    fprintf(stderr, "hl-synth: %s\n", err);
    return 2;
  }
  if (o.command == HL_SYNTH_HELP) {
    hl_synth_opts_help(stdout);
    return 0;
  }
  if (o.command == HL_SYNTH_HELP_MD) {
    hl_synth_opts_markdown(stdout);
    return 0;
  }
  if (o.command == HL_SYNTH_VERIFY) return hl_verify_run(o.verify_fhir, o.verify_omop, stdout);

  if (hl_gen_check_dirs(&o, err, sizeof(err)) != 0) {
    fprintf(stderr, "hl-synth: %s\n", err);
    return 2;
  }
  /* A file size limit must surface as a write error, not kill the process mid-file. */
  signal(SIGXFSZ, SIG_IGN);
  hl_gen_stats st;
  if (hl_gen_run(&o, &st, err, sizeof(err)) != 0) {
    hl_log_kv(HL_LOG_ERROR, "generation failed", "error", err, NULL);
    fprintf(stderr, "hl-synth: %s\n", err);
    return 1;
  }
  hl_gen_print_summary(&o, &st, stdout);
  return 0;
}
