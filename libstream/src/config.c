#include "hl/config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "hl/error.h"

static const hl_config_var common_vars[] = {HL_CONFIG_LOG_VARS};
#define NCOMMON (sizeof(common_vars) / sizeof(common_vars[0]))

typedef struct cfg_value {
  const hl_config_var *var;
  char *text;     /* the raw value (default or from the environment) */
  long long num;  /* parsed number / bool */
  bool set;
} cfg_value;

struct hl_config {
  size_t n;
  cfg_value *values;
};

static const hl_config_var *spec_var(const hl_config_spec *spec, size_t i) {
  return i < spec->nvars ? &spec->vars[i] : &common_vars[i - spec->nvars];
}

static size_t spec_count(const hl_config_spec *spec) { return spec->nvars + NCOMMON; }

static bool enum_has(const char *choices, const char *text) {
  size_t tl = strlen(text);
  const char *p = choices;
  while (p && *p) {
    const char *bar = strchr(p, '|');
    size_t l = bar ? (size_t)(bar - p) : strlen(p);
    if (l == tl && strncmp(p, text, l) == 0)
      return true;
    p = bar ? bar + 1 : NULL;
  }
  return false;
}

static int parse_suffixed(const char *text, long long *out, bool duration) {
  errno = 0;
  char *end = NULL;
  while (isspace((unsigned char)*text))
    text++;
  if (*text == '\0')
    return -1;
  long long v = strtoll(text, &end, 10);
  if (errno || end == text)
    return -1;
  long long mul = 1;
  if (*end) {
    struct { const char *s; long long m; } const dur[] = {
        {"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {NULL, 0}};
    struct { const char *s; long long m; } const size[] = {
        {"b", 1}, {"k", 1024}, {"kb", 1024}, {"kib", 1024}, {"m", 1048576}, {"mb", 1048576},
        {"mib", 1048576}, {"g", 1073741824}, {"gb", 1073741824}, {"gib", 1073741824}, {NULL, 0}};
    mul = 0;
    for (int i = 0; duration ? dur[i].s != NULL : size[i].s != NULL; i++) {
      const char *s = duration ? dur[i].s : size[i].s;
      if (strcasecmp(end, s) == 0) {
        mul = duration ? dur[i].m : size[i].m;
        break;
      }
    }
    if (mul == 0)
      return -1;
  }
  if (v != 0 && (v > LLONG_MAX / mul || v < LLONG_MIN / mul))
    return -1;
  *out = v * mul;
  return 0;
}

int hl_config_parse_value(const hl_config_var *var, const char *text, long long *num, char *err,
                          size_t errlen) {
  long long v = 0;
  switch (var->type) {
  case HL_CFG_STRING:
    if (var->max > 0 && (long long)strlen(text) > var->max) {
      snprintf(err, errlen, "%s: value is longer than %lld characters", var->name, var->max);
      return HL_ECONFIG;
    }
    if (var->min > 0 && (long long)strlen(text) < var->min) {
      snprintf(err, errlen, "%s: value must not be empty", var->name);
      return HL_ECONFIG;
    }
    *num = 0;
    return 0;
  case HL_CFG_BOOL:
    if (!strcasecmp(text, "true") || !strcmp(text, "1") || !strcasecmp(text, "yes") ||
        !strcasecmp(text, "on"))
      *num = 1;
    else if (!strcasecmp(text, "false") || !strcmp(text, "0") || !strcasecmp(text, "no") ||
             !strcasecmp(text, "off"))
      *num = 0;
    else {
      snprintf(err, errlen, "%s: '%s' is not a boolean (true/false)", var->name, text);
      return HL_ECONFIG;
    }
    return 0;
  case HL_CFG_ENUM:
    if (!enum_has(var->choices, text)) {
      snprintf(err, errlen, "%s: '%s' is not one of %s", var->name, text, var->choices);
      return HL_ECONFIG;
    }
    *num = 0;
    return 0;
  case HL_CFG_INT: {
    char *end = NULL;
    errno = 0;
    v = strtoll(text, &end, 10);
    if (errno || end == text || *end != '\0') {
      snprintf(err, errlen, "%s: '%s' is not an integer", var->name, text);
      return HL_ECONFIG;
    }
    break;
  }
  case HL_CFG_DURATION:
  case HL_CFG_SIZE:
    if (parse_suffixed(text, &v, var->type == HL_CFG_DURATION) < 0) {
      snprintf(err, errlen, "%s: '%s' is not a %s", var->name, text,
               var->type == HL_CFG_DURATION ? "duration (e.g. 500ms, 30s, 5m)"
                                            : "size (e.g. 4096, 64KiB, 16MiB)");
      return HL_ECONFIG;
    }
    break;
  }
  if ((var->min || var->max) && (v < var->min || v > var->max)) {
    snprintf(err, errlen, "%s: %s is outside [%lld, %lld]", var->name, text, var->min, var->max);
    return HL_ECONFIG;
  }
  *num = v;
  return 0;
}

static const char *env_lookup(const char *name, void *ud) {
  (void)ud;
  return getenv(name);
}

int hl_config_load(const hl_config_spec *spec, hl_config **out, char *err, size_t errlen) {
  return hl_config_load_from(spec, env_lookup, NULL, out, err, errlen);
}

int hl_config_load_from(const hl_config_spec *spec, const char *(*lookup)(const char *, void *),
                        void *ud, hl_config **out, char *err, size_t errlen) {
  char dummy[1];
  if (!err) {
    err = dummy;
    errlen = sizeof dummy;
  }
  size_t n = spec_count(spec);
  hl_config *cfg = calloc(1, sizeof *cfg);
  if (!cfg)
    return -ENOMEM;
  cfg->values = calloc(n, sizeof *cfg->values);
  if (!cfg->values) {
    free(cfg);
    return -ENOMEM;
  }
  cfg->n = n;
  int r = 0;
  for (size_t i = 0; i < n; i++) {
    const hl_config_var *var = spec_var(spec, i);
    cfg_value *cv = &cfg->values[i];
    cv->var = var;
    const char *text = lookup(var->name, ud);
    cv->set = text != NULL;
    if (!text)
      text = var->def;
    if (!text) {
      snprintf(err, errlen, "%s is required: %s", var->name, var->doc);
      r = HL_ECONFIG;
      goto fail;
    }
    cv->text = strdup(text);
    if (!cv->text) {
      r = -ENOMEM;
      goto fail;
    }
    r = hl_config_parse_value(var, text, &cv->num, err, errlen);
    if (r < 0)
      goto fail;
  }
  *out = cfg;
  return 0;
fail:
  hl_config_free(cfg);
  return r;
}

hl_config *hl_config_free(hl_config *cfg) {
  if (!cfg)
    return NULL;
  for (size_t i = 0; i < cfg->n; i++)
    free(cfg->values[i].text);
  free(cfg->values);
  free(cfg);
  return NULL;
}

static const cfg_value *find(const hl_config *cfg, const char *name) {
  for (size_t i = 0; i < cfg->n; i++)
    if (strcmp(cfg->values[i].var->name, name) == 0)
      return &cfg->values[i];
  fprintf(stderr, "hl_config: unknown variable %s (programming error)\n", name);
  abort();
}

const char *hl_config_str(const hl_config *cfg, const char *name) { return find(cfg, name)->text; }
long long hl_config_int(const hl_config *cfg, const char *name) { return find(cfg, name)->num; }
bool hl_config_bool(const hl_config *cfg, const char *name) { return find(cfg, name)->num != 0; }
bool hl_config_is_set(const hl_config *cfg, const char *name) { return find(cfg, name)->set; }

bool hl_config_has(const hl_config *cfg, const char *name) {
  for (size_t i = 0; i < cfg->n; i++)
    if (strcmp(cfg->values[i].var->name, name) == 0)
      return true;
  return false;
}

static const char *type_name(const hl_config_var *v) {
  switch (v->type) {
  case HL_CFG_STRING: return "string";
  case HL_CFG_INT: return "integer";
  case HL_CFG_BOOL: return "boolean";
  case HL_CFG_ENUM: return v->choices;
  case HL_CFG_DURATION: return "duration";
  case HL_CFG_SIZE: return "size";
  }
  return "?";
}

static void print_bounds(const hl_config_var *v, FILE *f) {
  if ((v->min || v->max) && v->type != HL_CFG_STRING && v->type != HL_CFG_ENUM)
    fprintf(f, "%lld..%lld%s", v->min, v->max,
            v->type == HL_CFG_DURATION ? " ms" : v->type == HL_CFG_SIZE ? " bytes" : "");
}

void hl_config_print_help(const hl_config_spec *spec, FILE *f) {
  fprintf(f, "%s: %s\n\nUsage: %s [--help] [--config-markdown]\n\n", spec->binary, spec->summary,
          spec->binary);
  fprintf(f, "Configuration (environment variables):\n");
  for (size_t i = 0; i < spec_count(spec); i++) {
    const hl_config_var *v = spec_var(spec, i);
    fprintf(f, "  %-28s %s (%s", v->name, v->doc, type_name(v));
    if ((v->min || v->max) && v->type != HL_CFG_STRING && v->type != HL_CFG_ENUM) {
      fprintf(f, ", ");
      print_bounds(v, f);
    }
    if (v->def)
      fprintf(f, ", default \"%s\")\n", v->def);
    else
      fprintf(f, ", required)\n");
  }
}

/* Writes s for a Markdown table cell: '|' is escaped. */
static void md_cell(FILE *f, const char *s) {
  for (; *s; s++) {
    if (*s == '|')
      fputc('\\', f);
    fputc(*s, f);
  }
}

void hl_config_print_markdown(const hl_config_spec *spec, FILE *f) {
  fprintf(f, "## %s\n\n%s\n\n", spec->binary, spec->summary);
  fprintf(f, "| variable | type | default | bounds | description |\n");
  fprintf(f, "|---|---|---|---|---|\n");
  for (size_t i = 0; i < spec_count(spec); i++) {
    const hl_config_var *v = spec_var(spec, i);
    fprintf(f, "| `%s` | ", v->name);
    md_cell(f, type_name(v));
    fprintf(f, " | %s", v->def ? "`" : "");
    md_cell(f, v->def ? (*v->def ? v->def : "(empty)") : "**required**");
    fprintf(f, "%s | ", v->def ? "`" : "");
    print_bounds(v, f);
    fprintf(f, " | ");
    md_cell(f, v->doc);
    fprintf(f, " |\n");
  }
  fprintf(f, "\n");
}

hl_config *hl_config_main(const hl_config_spec *spec, int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      hl_config_print_help(spec, stdout);
      exit(0);
    }
    if (strcmp(argv[i], "--config-markdown") == 0) {
      hl_config_print_markdown(spec, stdout);
      exit(0);
    }
    fprintf(stderr, "%s: unknown argument '%s' (configuration comes from HL_* variables; see --help)\n",
            spec->binary, argv[i]);
    exit(2);
  }
  char err[512];
  hl_config *cfg = NULL;
  int r = hl_config_load(spec, &cfg, err, sizeof err);
  if (r < 0) {
    if (r == HL_ECONFIG)
      fprintf(stderr, "%s: configuration error: %s\n", spec->binary, err);
    else
      fprintf(stderr, "%s: configuration error: %s\n", spec->binary, hl_strerror(r));
    exit(2);
  }
  return cfg;
}
