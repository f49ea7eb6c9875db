/* The option table of hl-synth and its parser: see opts.h. */
#include "opts.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hl/error.h"
#include "sb.h"

typedef enum { O_UINT, O_DATE, O_STR, O_ENUM, O_FLAG, O_PROGRESS } otype;

typedef struct opt_def {
  const char *name;   /* without the leading "--" */
  otype type;
  const char *arg;    /* metavariable for help */
  const char *def;    /* default as text, NULL: none */
  unsigned long long min, max;
  const char *doc;
  int verify;         /* 1: an option of `hl-synth verify` */
} opt_def;

static const opt_def defs[] = {
  {"patients", O_UINT, "N", "1000", 1, 1000000000ULL, "Number of patients to generate.", 0},
  {"seed", O_UINT, "S", "1", 0, UINT64_MAX, "Random seed; the same seed and options give byte-identical output.", 0},
  {"orgs", O_UINT, "K", "1", 1, 1000, "Number of organizations (tenants org-1 .. org-K); each patient belongs to one.", 0},
  {"start", O_DATE, "YYYY-MM-DD", "2014-01-01", 0, 0, "First day of the simulated period (UTC).", 0},
  {"end", O_DATE, "YYYY-MM-DD", "2024-01-01", 0, 0, "Day after the simulated period; also the meta.lastUpdated of every resource.", 0},
  {"version", O_UINT, "V", "1", 1, 1000000, "Version of every resource: meta.versionId V, meta.lastUpdated --end plus V-1 hours; V > 1 changes some values (docs/synth.md). Same ids for every V.", 0},
  {"out", O_STR, "DIR", NULL, 0, 0, "Directory for the FHIR output (created if missing; must hold no org=* entries).", 0},
  {"format", O_ENUM, "ndjson|bundle", "ndjson", 0, 0, "FHIR Bulk Data NDJSON per resource type, or one transaction Bundle per patient.", 0},
  {"omop", O_STR, "DIR", NULL, 0, 0, "Directory for the OMOP CDM v5.4 CSV output (none when omitted).", 0},
  {"split", O_UINT, "N", "0", 0, 1000000000ULL, "Resources per NDJSON file (0: one file per type and organization).", 0},
  {"gzip", O_FLAG, NULL, NULL, 0, 0, "Compress every output file with gzip (level 1).", 0},
  {"threads", O_UINT, "T", "0", 0, 256, "Generator threads (0: one per online CPU); output does not depend on it.", 0},
  {"progress", O_PROGRESS, "auto|always|never", "auto", 0, 0, "Progress bar on stderr: auto shows it when stderr is a terminal.", 0},
  {"fhir", O_STR, "DIR", NULL, 0, 0, "verify: the FHIR output directory to check.", 1},
  {"omop", O_STR, "DIR", NULL, 0, 0, "verify: the OMOP output directory to check.", 1},
};
#define NDEFS (sizeof(defs) / sizeof(defs[0]))

int hl_synth_parse_date(const char *s, int64_t *out) {
  int y, m, d;
  char tail;
  if (strlen(s) != 10 || sscanf(s, "%4d-%2d-%2d%c", &y, &m, &d, &tail) != 3) return HL_ECONFIG;
  if (s[4] != '-' || s[7] != '-') return HL_ECONFIG;
  if (y < 1900 || y > 2100 || m < 1 || m > 12 || d < 1 || d > 31) return HL_ECONFIG;
  int64_t days = hl_days_from_civil(y, m, d);
  int yy, mm, dd;
  hl_civil(days, &yy, &mm, &dd);
  if (yy != y || mm != m || dd != d) return HL_ECONFIG;
  *out = days * 86400;
  return 0;
}

static int set(hl_synth_opts *o, const opt_def *d, const char *v, char *err, size_t errlen) {
  if (d->type == O_UINT) {
    char *endp;
    errno = 0;
    if (!*v || *v == '-' || *v == '+') goto bad;
    unsigned long long x = strtoull(v, &endp, 10);
    if (errno || *endp) goto bad;
    if (x < d->min || x > d->max) {
      snprintf(err, errlen, "--%s: %s is out of range [%llu, %llu]", d->name, v, d->min, d->max);
      return HL_ECONFIG;
    }
    if (!strcmp(d->name, "patients")) o->patients = x;
    else if (!strcmp(d->name, "seed")) o->seed = x;
    else if (!strcmp(d->name, "orgs")) o->orgs = (int)x;
    else if (!strcmp(d->name, "split")) o->split = x;
    else if (!strcmp(d->name, "threads")) o->threads = (int)x;
    else if (!strcmp(d->name, "version")) o->version = (uint32_t)x;
    return 0;
  bad:
    snprintf(err, errlen, "--%s: '%s' is not a whole number", d->name, v);
    return HL_ECONFIG;
  }
  if (d->type == O_DATE) {
    int64_t t;
    if (hl_synth_parse_date(v, &t)) {
      snprintf(err, errlen, "--%s: '%s' is not a date YYYY-MM-DD between 1900 and 2100", d->name, v);
      return HL_ECONFIG;
    }
    if (!strcmp(d->name, "start")) o->start = t;
    else o->end = t;
    return 0;
  }
  if (d->type == O_ENUM) {
    if (!strcmp(v, "ndjson")) o->bundle = 0;
    else if (!strcmp(v, "bundle")) o->bundle = 1;
    else {
      snprintf(err, errlen, "--format: '%s' is not one of ndjson|bundle", v);
      return HL_ECONFIG;
    }
    return 0;
  }
  if (d->type == O_PROGRESS) {
    if (!strcmp(v, "auto")) o->progress = -1;
    else if (!strcmp(v, "always")) o->progress = 1;
    else if (!strcmp(v, "never")) o->progress = 0;
    else {
      snprintf(err, errlen, "--progress: '%s' is not one of auto|always|never", v);
      return HL_ECONFIG;
    }
    return 0;
  }
  if (!*v || strlen(v) > 3000) {
    snprintf(err, errlen, "--%s: the directory name is empty or longer than 3000 bytes", d->name);
    return HL_ECONFIG;
  }
  if (!strcmp(d->name, "out")) o->out = v;
  else if (!strcmp(d->name, "fhir")) o->verify_fhir = v;
  else if (o->command == HL_SYNTH_VERIFY) o->verify_omop = v;
  else o->omop = v;
  return 0;
}

int hl_synth_opts_parse(int argc, char **argv, hl_synth_opts *o, char *err, size_t errlen) {
  memset(o, 0, sizeof(*o));
  o->command = HL_SYNTH_GENERATE;
  o->patients = 1000;
  o->seed = 1;
  o->version = 1;
  o->orgs = 1;
  o->progress = -1;
  hl_synth_parse_date("2014-01-01", &o->start);
  hl_synth_parse_date("2024-01-01", &o->end);
  int i = 1;
  if (argc > 1 && !strcmp(argv[1], "verify")) {
    o->command = HL_SYNTH_VERIFY;
    i = 2;
  }
  int seen[NDEFS] = {0};
  for (; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
      o->command = HL_SYNTH_HELP;
      return 0;
    }
    if (!strcmp(a, "--help-markdown")) {
      o->command = HL_SYNTH_HELP_MD;
      return 0;
    }
    if (strncmp(a, "--", 2) != 0) {
      snprintf(err, errlen, "unexpected argument '%s' (see --help)", a);
      return HL_ECONFIG;
    }
    const char *name = a + 2, *eq = strchr(name, '=');
    size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
    const opt_def *d = NULL;
    size_t di = 0;
    for (di = 0; di < NDEFS; di++) {
      if (strlen(defs[di].name) == nlen && !strncmp(defs[di].name, name, nlen) &&
          defs[di].verify == (o->command == HL_SYNTH_VERIFY)) {
        d = &defs[di];
        break;
      }
    }
    if (!d) {
      snprintf(err, errlen, "unknown option '%.*s'%s (see --help)", (int)(nlen + 2), a,
               o->command == HL_SYNTH_VERIFY ? " for verify" : "");
      return HL_ECONFIG;
    }
    if (seen[di]++) {
      snprintf(err, errlen, "--%s given twice", d->name);
      return HL_ECONFIG;
    }
    if (d->type == O_FLAG) {
      if (eq) {
        snprintf(err, errlen, "--%s takes no value", d->name);
        return HL_ECONFIG;
      }
      o->gzip = 1;
      continue;
    }
    const char *v = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
    if (!v) {
      snprintf(err, errlen, "--%s needs a value (%s)", d->name, d->arg);
      return HL_ECONFIG;
    }
    int rc = set(o, d, v, err, errlen);
    if (rc) return rc;
  }
  if (o->command == HL_SYNTH_VERIFY) {
    if (!o->verify_fhir || !o->verify_omop) {
      snprintf(err, errlen, "verify needs --fhir DIR and --omop DIR");
      return HL_ECONFIG;
    }
    return 0;
  }
  if (!o->out) {
    snprintf(err, errlen, "--out DIR is required");
    return HL_ECONFIG;
  }
  if (o->start >= o->end) {
    snprintf(err, errlen, "--start must be before --end");
    return HL_ECONFIG;
  }
  if (o->bundle && o->split) {
    snprintf(err, errlen, "--split applies to --format ndjson only");
    return HL_ECONFIG;
  }
  if (o->threads == 0) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    o->threads = n < 1 ? 1 : n > 64 ? 64 : (int)n;
  }
  return 0;
}

void hl_synth_opts_help(FILE *f) {
  fprintf(f, "hl-synth: correlated synthetic FHIR R4 and OMOP CDM v5.4 generator\n\n"
             "usage: hl-synth --out DIR [options]\n"
             "       hl-synth verify --fhir DIR --omop DIR\n\noptions:\n");
  for (size_t i = 0; i < NDEFS; i++) {
    const opt_def *d = &defs[i];
    if (d->verify) continue;
    char left[64];
    snprintf(left, sizeof(left), "--%s%s%s", d->name, d->arg ? " " : "", d->arg ? d->arg : "");
    fprintf(f, "  %-28s %s", left, d->doc);
    if (d->def) fprintf(f, " [default: %s]", d->def);
    fputc('\n', f);
  }
  fprintf(f, "\nverify options:\n");
  for (size_t i = 0; i < NDEFS; i++) {
    const opt_def *d = &defs[i];
    if (!d->verify) continue;
    char left[64];
    snprintf(left, sizeof(left), "--%s %s", d->name, d->arg);
    fprintf(f, "  %-28s %s\n", left, d->doc);
  }
  fprintf(f, "\nExit status: 0 success, 1 failure (I/O error, verify mismatch), 2 bad options.\n"
             "Logging: HL_LOG_LEVEL (debug|info|warn|error), HL_LOG_FORMAT (json|text).\n");
}

void hl_synth_opts_markdown(FILE *f) {
  fprintf(f, "| option | value | default | meaning |\n|---|---|---|---|\n");
  for (size_t i = 0; i < NDEFS; i++) {
    const opt_def *d = &defs[i];
    fprintf(f, "| `%s--%s` | ", d->verify ? "verify " : "", d->name);
    /* A '|' inside a cell must be escaped in a Markdown table. */
    for (const char *a = d->arg ? d->arg : "(flag)"; *a; a++) {
      if (*a == '|') fputc('\\', f);
      fputc(*a, f);
    }
    fprintf(f, " | %s | %s |\n", d->def ? d->def : "", d->doc);
  }
}
