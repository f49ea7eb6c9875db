/*
 * Configuration from HL_* environment variables, driven by one table per
 * binary.
 *
 * Each binary declares a static array of hl_config_var (name, type, default,
 * bounds, doc). The same table drives parsing, `--help`, and the Markdown
 * section of docs/CONFIG.md (`--config-markdown`). Variables every binary
 * shares (logging) are added automatically; groups such as the Kafka or
 * admin-server variables are spliced into a table with the HL_CONFIG_*_VARS
 * macros so they are written once.
 */
#ifndef HL_CONFIG_H
#define HL_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

typedef enum hl_config_type {
  HL_CFG_STRING,   /* any text; bounds are on its length when max > 0 */
  HL_CFG_INT,      /* decimal integer within [min, max] */
  HL_CFG_BOOL,     /* true/false, 1/0, yes/no, on/off */
  HL_CFG_ENUM,     /* one of the words in choices, separated by '|' */
  HL_CFG_DURATION, /* milliseconds; accepts suffixes ms, s, m, h (e.g. "30s") */
  HL_CFG_SIZE,     /* bytes; accepts suffixes k, KiB, M, MiB, G, GiB (binary) */
} hl_config_type;

typedef struct hl_config_var {
  const char *name;    /* "HL_KAFKA_BROKERS" */
  hl_config_type type;
  const char *def;     /* default, written as a user would; NULL = required */
  long long min, max;  /* inclusive bounds for numbers (both 0: none) */
  const char *choices; /* HL_CFG_ENUM: "json|text" */
  const char *doc;     /* one sentence for --help and docs */
} hl_config_var;

typedef struct hl_config_spec {
  const char *binary;          /* "hl-parser" */
  const char *summary;         /* one line: what the binary does */
  const hl_config_var *vars;   /* the binary's own table */
  size_t nvars;
} hl_config_spec;

/* Variables shared by every binary; appended to every table. */
#define HL_CONFIG_LOG_VARS                                                              \
  {"HL_LOG_LEVEL", HL_CFG_ENUM, "info", 0, 0, "debug|info|warn|error",                  \
   "Lowest level written to the log."},                                                 \
  {"HL_LOG_FORMAT", HL_CFG_ENUM, "json", 0, 0, "json|text",                             \
   "Log line format: one JSON object per line, or text for people."}

/* The admin HTTP server of every long-running binary. */
#define HL_CONFIG_ADMIN_VARS(default_addr)                                              \
  {"HL_ADMIN_ADDR", HL_CFG_STRING, default_addr, 0, 255, NULL,                          \
   "host:port of the admin server (/metrics, /healthz, /readyz); empty disables it."}

typedef struct hl_config hl_config;

/*
 * Parses the spec's variables (plus the shared ones) from the environment
 * (getenv). On failure returns HL_ECONFIG and writes a message naming the
 * variable into err (which may be NULL). *out is set only on success.
 */
int hl_config_load(const hl_config_spec *spec, hl_config **out, char *err, size_t errlen);

/* As hl_config_load, but values come from lookup(name, ud) instead of getenv. */
int hl_config_load_from(const hl_config_spec *spec, const char *(*lookup)(const char *name, void *ud),
                        void *ud, hl_config **out, char *err, size_t errlen);

/*
 * The usual start of a main(): handles `--help` (prints the table, exits 0),
 * `--config-markdown` (prints the docs section, exits 0), refuses unknown
 * arguments, and loads the configuration; on any error prints the message to
 * stderr and exits with status 2. Binaries with their own command line (such
 * as hl-synth) call hl_config_load and the print functions directly.
 */
hl_config *hl_config_main(const hl_config_spec *spec, int argc, char **argv);

hl_config *hl_config_free(hl_config *cfg);

/* Accessors; name must be in the spec (aborts otherwise: a programming error). */
const char *hl_config_str(const hl_config *cfg, const char *name);
long long hl_config_int(const hl_config *cfg, const char *name);
bool hl_config_bool(const hl_config *cfg, const char *name);
/* True when the variable was set in the environment (not defaulted). */
bool hl_config_is_set(const hl_config *cfg, const char *name);
/* True when name is in the binary's table (for shared readers of optional variables). */
bool hl_config_has(const hl_config *cfg, const char *name);

void hl_config_print_help(const hl_config_spec *spec, FILE *f);
void hl_config_print_markdown(const hl_config_spec *spec, FILE *f);

/* Parses one value of the given type; exposed for tests. 0 or HL_ECONFIG. */
int hl_config_parse_value(const hl_config_var *var, const char *text, long long *num, char *err,
                          size_t errlen);

#endif
