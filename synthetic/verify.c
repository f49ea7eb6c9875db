/*
 * hl-synth verify: see verify.h. The FHIR -> OMOP rules implemented here
 * are the ones documented in docs/fhir-omop-mapping.md; they read only the
 * FHIR JSON (with jansson) and the code tables of tables.c.
 */
#include "verify.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "streams.h"
#include "tables.h"

#define MAXF 32
#define FLEN 512
#define MAX_REPORT 20

typedef struct row {
  int n;
  char f[MAXF][FLEN];
} row;

typedef struct vctx {
  FILE *rep;
  int problems;
  int reported;
  json_t *exp[HL_S_N];   /* table -> {id: "f1\x1ff2..."} */
  json_t *ids;           /* uuid -> omop id (persons, visits, providers, care sites) */
  json_t *period;        /* patient uuid -> [min start, max end] */
  json_t *resources;     /* all resources of the organization */
  const char *org;
} vctx;

static void problem(vctx *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void problem(vctx *v, const char *fmt, ...) {
  v->problems++;
  if (v->reported++ >= MAX_REPORT) return;
  va_list ap;
  va_start(ap, fmt);
  fprintf(v->rep, "  MISMATCH [%s] ", v->org);
  vfprintf(v->rep, fmt, ap);
  fputc('\n', v->rep);
  va_end(ap);
}

static void add(row *r, const char *s) {
  if (r->n >= MAXF) return;
  snprintf(r->f[r->n++], FLEN, "%s", s ? s : "");
}
static void addi(row *r, long long x) {
  char b[32];
  snprintf(b, sizeof(b), "%lld", x);
  add(r, b);
}
static void addnum(row *r, json_t *j) {
  char b[64] = "";
  if (json_is_integer(j)) snprintf(b, sizeof(b), "%lld", (long long)json_integer_value(j));
  else if (json_is_real(j)) snprintf(b, sizeof(b), "%.10g", json_real_value(j));
  add(r, b);
}
static void empty(row *r, int n) {
  for (int i = 0; i < n; i++) add(r, "");
}
/* FHIR dateTime -> OMOP date and datetime columns. */
static void add_dt(row *r, const char *t) {
  char d[16] = "", dt[32] = "";
  if (t && strlen(t) >= 10) {
    memcpy(d, t, 10);
    if (strlen(t) >= 19) snprintf(dt, sizeof(dt), "%.10s %.8s", t, t + 11);
    else snprintf(dt, sizeof(dt), "%.10s 00:00:00", t);
  }
  add(r, d);
  add(r, dt);
}

static void put_row(vctx *v, int table, row *r) {
  char *s = malloc((size_t)r->n * FLEN + 1);
  if (!s) return;
  size_t o = 0;
  for (int i = 0; i < r->n; i++) {
    size_t n = strlen(r->f[i]);
    memcpy(s + o, r->f[i], n);
    o += n;
    if (i + 1 < r->n) s[o++] = '\x1f';
  }
  s[o] = 0;
  if (json_object_get(v->exp[table], r->f[0]))
    problem(v, "%s: two FHIR resources map to row id %s", hl_stream_names[table], r->f[0]);
  json_object_set_new(v->exp[table], r->f[0], json_string(s));
  free(s);
}

static const char *sget(json_t *o, const char *path) {
  /* Dotted path with numeric indexes: "code.coding.0.code". */
  char buf[256];
  snprintf(buf, sizeof(buf), "%s", path);
  json_t *cur = o;
  for (char *tok = strtok(buf, "."); tok && cur; tok = strtok(NULL, ".")) {
    if (json_is_array(cur)) cur = json_array_get(cur, (size_t)atoi(tok));
    else cur = json_object_get(cur, tok);
  }
  return json_is_string(cur) ? json_string_value(cur) : NULL;
}
static json_t *jget(json_t *o, const char *path) {
  char buf[256];
  snprintf(buf, sizeof(buf), "%s", path);
  json_t *cur = o;
  for (char *tok = strtok(buf, "."); tok && cur; tok = strtok(NULL, ".")) {
    if (json_is_array(cur)) cur = json_array_get(cur, (size_t)atoi(tok));
    else cur = json_object_get(cur, tok);
  }
  return cur;
}

/* The OMOP id carried by a resource: identifier with system urn:healthlake:omop:<table>. */
static const char *omop_id(json_t *res, const char *table, int nth) {
  char sys[96];
  snprintf(sys, sizeof(sys), "urn:healthlake:omop:%s", table);
  size_t i;
  json_t *id;
  json_array_foreach(json_object_get(res, "identifier"), i, id) {
    const char *s = sget(id, "system");
    if (s && !strcmp(s, sys) && nth-- == 0) return sget(id, "value");
  }
  return NULL;
}

static const char *uuid_of(const char *ref) {
  if (!ref) return NULL;
  if (!strncmp(ref, "urn:uuid:", 9)) return ref + 9;
  const char *slash = strrchr(ref, '/');
  return slash ? slash + 1 : ref;
}

static const char *resolve(vctx *v, json_t *res, const char *path, const char *what) {
  const char *ref = sget(res, path);
  if (!ref) return "";
  json_t *x = json_object_get(v->ids, uuid_of(ref));
  if (!x) {
    problem(v, "%s %s: reference %s (%s) does not resolve", sget(res, "resourceType"),
            sget(res, "id"), ref, what);
    return "";
  }
  return json_string_value(x);
}

static long long concept_of(const char *system, const char *code) {
  if (!system || !code) return 0;
  if (!strcmp(system, HL_SNOMED)) {
    for (int i = 0; i < HL_COND_N; i++)
      if (!strcmp(hl_conditions[i].code, code)) return hl_conditions[i].concept_id;
    for (int i = 0; i < HL_PROC_N; i++)
      if (!strcmp(hl_procs[i].code, code)) return hl_procs[i].concept_id;
  } else if (!strcmp(system, HL_LOINC)) {
    for (int i = 0; i < HL_OBS_N; i++)
      if (!strcmp(hl_obs_codes[i].c.code, code)) return hl_obs_codes[i].c.concept_id;
  } else if (!strcmp(system, HL_RXNORM)) {
    for (int i = 0; i < HL_MED_N; i++)
      if (!strcmp(hl_meds[i].c.code, code)) return hl_meds[i].c.concept_id;
  } else if (!strcmp(system, HL_CVX)) {
    for (int i = 0; i < HL_VAX_N; i++)
      if (!strcmp(hl_vaccines[i].code, code)) return hl_vaccines[i].concept_id;
  }
  return 0;
}
static long long unit_concept(const char *unit) {
  for (int i = 0; unit && i < HL_OBS_N; i++)
    if (hl_obs_codes[i].unit && !strcmp(hl_obs_codes[i].unit, unit)) return hl_obs_codes[i].unit_concept;
  return 0;
}
static long long route_concept(const char *code) {
  for (int i = 0; code && i < HL_MED_N; i++)
    if (!strcmp(hl_meds[i].route, code)) return hl_meds[i].route_concept;
  return 0;
}

static void index_ids(vctx *v, json_t *res) {
  const char *type = sget(res, "resourceType"), *id = sget(res, "id");
  if (!type || !id) return;
  const char *x = NULL;
  if (!strcmp(type, "Patient")) x = omop_id(res, "person", 0);
  else if (!strcmp(type, "Encounter")) x = omop_id(res, "visit_occurrence", 0);
  else if (!strcmp(type, "Practitioner")) x = omop_id(res, "provider", 0);
  else if (!strcmp(type, "Organization")) x = omop_id(res, "care_site", 0);
  else if (!strcmp(type, "Condition")) x = omop_id(res, "condition_occurrence", 0);
  if (!strcmp(type, "Organization") && !x) x = "";
  if (x) json_object_set_new(v->ids, id, json_string(x));
  if (!strcmp(type, "Encounter")) {
    const char *pat = uuid_of(sget(res, "subject.reference"));
    const char *s = sget(res, "period.start"), *e = sget(res, "period.end");
    if (!pat || !s || !e) return;
    json_t *p = json_object_get(v->period, pat);
    if (!p) {
      json_object_set_new(v->period, pat, json_pack("[ss]", s, e));
    } else {
      if (strcmp(s, json_string_value(json_array_get(p, 0))) < 0) json_array_set_new(p, 0, json_string(s));
      if (strcmp(e, json_string_value(json_array_get(p, 1))) > 0) json_array_set_new(p, 1, json_string(e));
    }
  }
}

static void derive(vctx *v, json_t *res) {
  const char *type = sget(res, "resourceType");
  row r;
  if (!type) return;
  r.n = 0;
  if (!strcmp(type, "Patient")) {
    const char *pid = omop_id(res, "person", 0), *id = sget(res, "id");
    const char *bd = sget(res, "birthDate");
    if (!pid || !bd) {
      problem(v, "Patient %s: no person identifier or birthDate", id);
      return;
    }
    const char *g = sget(res, "gender");
    int male = g && !strcmp(g, "male");
    const char *race = NULL, *eth = NULL;
    size_t i;
    json_t *ext;
    json_array_foreach(json_object_get(res, "extension"), i, ext) {
      const char *url = sget(ext, "url");
      if (url && strstr(url, "us-core-race")) race = sget(ext, "extension.0.valueCoding.code");
      if (url && strstr(url, "us-core-ethnicity")) eth = sget(ext, "extension.0.valueCoding.code");
    }
    long long rc = 0;
    for (size_t k = 0; race && k < hl_nraces; k++)
      if (!strcmp(hl_races[k].code, race)) rc = hl_races[k].concept;
    addi(&r, atoll(pid));
    addi(&r, male ? HL_OMOP_MALE : HL_OMOP_FEMALE);
    addi(&r, atoi(bd));
    addi(&r, atoi(bd + 5));
    addi(&r, atoi(bd + 8));
    add_dt(&r, bd);
    memmove(r.f[5], r.f[6], FLEN); /* keep only the datetime of the pair */
    r.n--;
    addi(&r, rc);
    addi(&r, eth && !strcmp(eth, "2135-2") ? HL_OMOP_HISPANIC : HL_OMOP_NOT_HISPANIC);
    add(&r, omop_id(res, "location", 0));
    empty(&r, 2);
    add(&r, id);
    add(&r, g);
    addi(&r, 0);
    add(&r, race);
    addi(&r, 0);
    add(&r, eth);
    addi(&r, 0);
    put_row(v, HL_S_PERSON, &r);

    r.n = 0;
    add(&r, omop_id(res, "location", 0));
    add(&r, sget(res, "address.0.line.0"));
    add(&r, "");
    add(&r, sget(res, "address.0.city"));
    add(&r, sget(res, "address.0.state"));
    add(&r, sget(res, "address.0.postalCode"));
    add(&r, "");
    char src[128];
    snprintf(src, sizeof(src), "Patient/%s", id);
    add(&r, src);
    add(&r, "");
    add(&r, sget(res, "address.0.country"));
    empty(&r, 2);
    put_row(v, HL_S_LOCATION, &r);

    json_t *p = json_object_get(v->period, id);
    if (p) {
      r.n = 0;
      add(&r, pid);
      add(&r, pid);
      char d[11];
      snprintf(d, sizeof(d), "%.10s", json_string_value(json_array_get(p, 0)));
      add(&r, d);
      snprintf(d, sizeof(d), "%.10s", json_string_value(json_array_get(p, 1)));
      add(&r, d);
      addi(&r, HL_OMOP_EHR);
      put_row(v, HL_S_OBS_PERIOD, &r);
    }
    const char *dd = sget(res, "deceasedDateTime");
    if (dd) {
      r.n = 0;
      add(&r, pid);
      add_dt(&r, dd);
      addi(&r, HL_OMOP_EHR);
      empty(&r, 3);
      put_row(v, HL_S_DEATH, &r);
    }
  } else if (!strcmp(type, "Organization")) {
    const char *cs = omop_id(res, "care_site", 0);
    if (!cs) return; /* the tenant itself has no care_site row */
    const char *pos = sget(res, "type.0.coding.0.code");
    addi(&r, atoll(cs));
    add(&r, sget(res, "name"));
    addi(&r, pos && !strcmp(pos, "HOSP") ? HL_OMOP_POS_INPATIENT : HL_OMOP_POS_OFFICE);
    add(&r, omop_id(res, "location", 0));
    add(&r, sget(res, "id"));
    add(&r, pos);
    put_row(v, HL_S_CARE_SITE, &r);
    r.n = 0;
    add(&r, omop_id(res, "location", 0));
    add(&r, sget(res, "address.0.line.0"));
    add(&r, "");
    add(&r, sget(res, "address.0.city"));
    add(&r, sget(res, "address.0.state"));
    add(&r, sget(res, "address.0.postalCode"));
    add(&r, "");
    char src[128];
    snprintf(src, sizeof(src), "Organization/%s", sget(res, "id"));
    add(&r, src);
    add(&r, "");
    add(&r, sget(res, "address.0.country"));
    empty(&r, 2);
    put_row(v, HL_S_LOCATION, &r);
  } else if (!strcmp(type, "Practitioner")) {
    char name[256];
    snprintf(name, sizeof(name), "%s %s", sget(res, "name.0.given.0") ? sget(res, "name.0.given.0") : "",
             sget(res, "name.0.family") ? sget(res, "name.0.family") : "");
    const char *g = sget(res, "gender");
    add(&r, omop_id(res, "provider", 0));
    add(&r, name);
    const char *npi = NULL;
    size_t i;
    json_t *id;
    json_array_foreach(json_object_get(res, "identifier"), i, id) {
      const char *s = sget(id, "system");
      if (s && !strcmp(s, "http://hl7.org/fhir/sid/us-npi")) npi = sget(id, "value");
    }
    add(&r, npi);
    empty(&r, 4);
    addi(&r, g && !strcmp(g, "male") ? HL_OMOP_MALE : HL_OMOP_FEMALE);
    add(&r, sget(res, "id"));
    empty(&r, 2);
    add(&r, g);
    addi(&r, 0);
    put_row(v, HL_S_PROVIDER, &r);
  } else if (!strcmp(type, "Encounter")) {
    const char *cls = sget(res, "class.code");
    long long vc = cls && !strcmp(cls, "EMER") ? 9203 : cls && !strcmp(cls, "IMP") ? 9201 : 9202;
    add(&r, omop_id(res, "visit_occurrence", 0));
    add(&r, resolve(v, res, "subject.reference", "subject"));
    addi(&r, vc);
    add_dt(&r, sget(res, "period.start"));
    add_dt(&r, sget(res, "period.end"));
    addi(&r, HL_OMOP_EHR);
    add(&r, resolve(v, res, "participant.0.individual.reference", "participant"));
    add(&r, resolve(v, res, "serviceProvider.reference", "serviceProvider"));
    add(&r, sget(res, "type.0.coding.0.code"));
    addi(&r, 0);
    empty(&r, 5);
    put_row(v, HL_S_VISIT, &r);
  } else if (!strcmp(type, "Condition")) {
    const char *code = sget(res, "code.coding.0.code");
    long long c = concept_of(sget(res, "code.coding.0.system"), code);
    add(&r, omop_id(res, "condition_occurrence", 0));
    add(&r, resolve(v, res, "subject.reference", "subject"));
    addi(&r, c);
    add_dt(&r, sget(res, "onsetDateTime"));
    if (sget(res, "abatementDateTime")) add_dt(&r, sget(res, "abatementDateTime"));
    else empty(&r, 2);
    addi(&r, HL_OMOP_EHR);
    empty(&r, 3);
    add(&r, resolve(v, res, "encounter.reference", "encounter"));
    add(&r, "");
    add(&r, code);
    addi(&r, c);
    add(&r, "");
    put_row(v, HL_S_CONDITION_OCC, &r);
  } else if (!strcmp(type, "Observation")) {
    json_t *comps = json_object_get(res, "component");
    size_t n = comps ? json_array_size(comps) : 1;
    for (size_t i = 0; i < n; i++) {
      json_t *src = comps ? json_array_get(comps, i) : res;
      const char *code = sget(src, "code.coding.0.code");
      long long c = concept_of(sget(src, "code.coding.0.system"), code);
      json_t *val = jget(src, "valueQuantity.value");
      const char *unit = sget(src, "valueQuantity.code");
      r.n = 0;
      add(&r, omop_id(res, "measurement", (int)i));
      add(&r, resolve(v, res, "subject.reference", "subject"));
      addi(&r, c);
      add_dt(&r, sget(res, "effectiveDateTime"));
      add(&r, "");
      addi(&r, HL_OMOP_EHR);
      add(&r, "");
      addnum(&r, val);
      add(&r, "");
      addi(&r, unit_concept(unit));
      empty(&r, 3);
      add(&r, resolve(v, res, "encounter.reference", "encounter"));
      add(&r, "");
      add(&r, code);
      addi(&r, c);
      add(&r, unit);
      add(&r, "");
      addnum(&r, val);
      empty(&r, 2);
      put_row(v, HL_S_MEASUREMENT, &r);
    }
  } else if (!strcmp(type, "MedicationRequest")) {
    const char *code = sget(res, "medicationCodeableConcept.coding.0.code");
    long long c = concept_of(sget(res, "medicationCodeableConcept.coding.0.system"), code);
    const char *route = sget(res, "dosageInstruction.0.route.coding.0.code");
    add(&r, omop_id(res, "drug_exposure", 0));
    add(&r, resolve(v, res, "subject.reference", "subject"));
    addi(&r, c);
    add_dt(&r, sget(res, "authoredOn"));
    add_dt(&r, sget(res, "dispenseRequest.validityPeriod.end"));
    add(&r, "");
    addi(&r, HL_OMOP_EHR_PRESCRIPTION);
    empty(&r, 2);
    addnum(&r, jget(res, "dispenseRequest.quantity.value"));
    addnum(&r, jget(res, "dispenseRequest.expectedSupplyDuration.value"));
    add(&r, sget(res, "dosageInstruction.0.text"));
    addi(&r, route_concept(route));
    add(&r, "");
    add(&r, resolve(v, res, "requester.reference", "requester"));
    add(&r, resolve(v, res, "encounter.reference", "encounter"));
    add(&r, "");
    add(&r, code);
    addi(&r, c);
    add(&r, route);
    add(&r, sget(res, "dosageInstruction.0.doseAndRate.0.doseQuantity.code"));
    put_row(v, HL_S_DRUG, &r);
  } else if (!strcmp(type, "Immunization")) {
    const char *code = sget(res, "vaccineCode.coding.0.code");
    long long c = concept_of(sget(res, "vaccineCode.coding.0.system"), code);
    add(&r, omop_id(res, "drug_exposure", 0));
    add(&r, resolve(v, res, "patient.reference", "patient"));
    addi(&r, c);
    add_dt(&r, sget(res, "occurrenceDateTime"));
    add_dt(&r, sget(res, "occurrenceDateTime"));
    add(&r, "");
    addi(&r, HL_OMOP_EHR);
    empty(&r, 2);
    addi(&r, 1);
    addi(&r, 1);
    add(&r, "");
    addi(&r, 4302612);
    add(&r, "");
    add(&r, resolve(v, res, "performer.0.actor.reference", "performer"));
    add(&r, resolve(v, res, "encounter.reference", "encounter"));
    add(&r, "");
    add(&r, code);
    addi(&r, c);
    add(&r, sget(res, "route.coding.0.code"));
    add(&r, "");
    put_row(v, HL_S_DRUG, &r);
  } else if (!strcmp(type, "Procedure")) {
    const char *code = sget(res, "code.coding.0.code");
    long long c = concept_of(sget(res, "code.coding.0.system"), code);
    add(&r, omop_id(res, "procedure_occurrence", 0));
    add(&r, resolve(v, res, "subject.reference", "subject"));
    addi(&r, c);
    add_dt(&r, sget(res, "performedPeriod.start"));
    add_dt(&r, sget(res, "performedPeriod.end"));
    addi(&r, HL_OMOP_EHR);
    empty(&r, 2);
    add(&r, resolve(v, res, "performer.0.actor.reference", "performer"));
    add(&r, resolve(v, res, "encounter.reference", "encounter"));
    add(&r, "");
    add(&r, code);
    addi(&r, c);
    add(&r, "");
    put_row(v, HL_S_PROC_OCC, &r);
  }
}

/* Reads a whole (possibly gzip) file. */
static char *slurp(const char *path, size_t *len) {
  gzFile f = gzopen(path, "rb");
  if (!f) return NULL;
  size_t cap = 1 << 16, n = 0;
  char *b = malloc(cap + 1);
  while (b) {
    if (n == cap) {
      char *nb = realloc(b, cap * 2 + 1);
      if (!nb) {
        free(b);
        b = NULL;
        break;
      }
      b = nb;
      cap *= 2;
    }
    int r = gzread(f, b + n, (unsigned)(cap - n));
    if (r < 0) {
      free(b);
      b = NULL;
      break;
    }
    if (r == 0) break;
    n += (size_t)r;
  }
  gzclose(f);
  if (b) {
    b[n] = 0;
    *len = n;
  }
  return b;
}

static int ends_with(const char *s, const char *suf) {
  size_t a = strlen(s), b = strlen(suf);
  return a >= b && !strcmp(s + a - b, suf);
}

static void load_json_file(vctx *v, const char *path, int bundle) {
  size_t len;
  char *data = slurp(path, &len);
  if (!data) {
    problem(v, "%s: cannot read", path);
    return;
  }
  char *p = data;
  size_t line = 0;
  while (*p) {
    char *nl = strchr(p, '\n');
    if (nl) *nl = 0;
    line++;
    if (*p) {
      json_error_t je;
      json_t *doc = json_loads(p, 0, &je);
      if (!doc) {
        problem(v, "%s:%zu: invalid JSON: %s", path, line, je.text);
      } else if (bundle) {
        size_t i;
        json_t *e;
        json_array_foreach(json_object_get(doc, "entry"), i, e) {
          json_t *res = json_object_get(e, "resource");
          if (res) json_array_append(v->resources, res);
        }
        json_decref(doc);
      } else {
        json_array_append_new(v->resources, doc);
      }
    }
    if (!nl) break;
    p = nl + 1;
  }
  free(data);
}

static void load_fhir_dir(vctx *v, const char *dir, int bundle) {
  DIR *d = opendir(dir);
  if (!d) return;
  struct dirent *e;
  char **names = NULL;
  size_t n = 0;
  while ((e = readdir(d))) {
    if (e->d_name[0] == '.') continue;
    if (!strcmp(e->d_name, "bundles")) {
      char sub[4096];
      snprintf(sub, sizeof(sub), "%s/bundles", dir);
      load_fhir_dir(v, sub, 1);
      continue;
    }
    int ok = bundle ? (ends_with(e->d_name, ".json") || ends_with(e->d_name, ".json.gz"))
                    : (ends_with(e->d_name, ".ndjson") || ends_with(e->d_name, ".ndjson.gz"));
    if (!ok) continue;
    char **nn = realloc(names, (n + 1) * sizeof(*names));
    if (!nn) break;
    names = nn;
    names[n++] = strdup(e->d_name);
  }
  closedir(d);
  for (size_t i = 0; i < n; i++) {
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
    load_json_file(v, path, bundle);
    free(names[i]);
  }
  free(names);
}

/* Splits one CSV record (RFC 4180 quoting) of text at *pp; advances *pp. */
static int csv_record(char **pp, row *r) {
  char *p = *pp;
  r->n = 0;
  if (!*p) return 0;
  for (;;) {
    char field[FLEN];
    size_t n = 0;
    if (*p == '"') {
      p++;
      for (;;) {
        if (!*p) break;
        if (*p == '"' && p[1] == '"') {
          if (n + 1 < FLEN) field[n++] = '"';
          p += 2;
        } else if (*p == '"') {
          p++;
          break;
        } else {
          if (n + 1 < FLEN) field[n++] = *p;
          p++;
        }
      }
    }
    while (*p && *p != ',' && *p != '\n') {
      if (n + 1 < FLEN) field[n++] = *p;
      p++;
    }
    field[n] = 0;
    if (r->n < MAXF) snprintf(r->f[r->n++], FLEN, "%s", field);
    else r->n++;
    if (*p == ',') {
      p++;
      continue;
    }
    if (*p == '\n') p++;
    break;
  }
  *pp = p;
  return 1;
}

static int field_equal(const char *a, const char *b) {
  if (!strcmp(a, b)) return 1;
  char *ea, *eb;
  if (!*a || !*b) return 0;
  double x = strtod(a, &ea), y = strtod(b, &eb);
  return !*ea && !*eb && fabs(x - y) <= 1e-9 * (fabs(x) + fabs(y) + 1);
}

static int count_cols(const char *header) {
  int n = 1;
  for (const char *p = header; *p && *p != '\n'; p++) n += *p == ',';
  return n;
}

static void compare_table(vctx *v, const char *omop_org_dir, int table) {
  char path[4096];
  const char *name = hl_stream_names[table];
  struct stat sb;
  if (snprintf(path, sizeof(path), "%s/%s.csv", omop_org_dir, name) >= (int)sizeof(path) ||
      (stat(path, &sb) != 0 &&
       snprintf(path, sizeof(path), "%s/%s.csv.gz", omop_org_dir, name) >= (int)sizeof(path))) {
    problem(v, "%s: path too long", omop_org_dir);
    return;
  }
  size_t len;
  char *data = slurp(path, &len);
  json_t *exp = v->exp[table];
  size_t nexp = json_object_size(exp), found = 0, extra = 0, diff = 0;
  if (!data) {
    problem(v, "%s: cannot read (%zu rows expected)", path, nexp);
    return;
  }
  const char *hdr = hl_omop_headers[table];
  if (strncmp(data, hdr, strlen(hdr)) != 0) problem(v, "%s: header differs from OMOP CDM v5.4", path);
  int ncols = count_cols(hdr);
  char *p = strchr(data, '\n');
  p = p ? p + 1 : data + len;
  row r;
  size_t line = 1;
  static row e;
  while (csv_record(&p, &r)) {
    line++;
    found++;
    if (r.n != ncols) {
      problem(v, "%s:%zu: %d columns, expected %d", path, line, r.n, ncols);
      continue;
    }
    json_t *x = json_object_get(exp, r.f[0]);
    if (!x) {
      extra++;
      problem(v, "%s:%zu: extra row id %s (no FHIR resource maps to it)", path, line, r.f[0]);
      continue;
    }
    /* Split the expected row. */
    const char *s = json_string_value(x);
    e.n = 0;
    for (;;) {
      const char *sep = strchr(s, '\x1f');
      size_t n = sep ? (size_t)(sep - s) : strlen(s);
      if (e.n < MAXF) {
        snprintf(e.f[e.n], FLEN, "%.*s", (int)n, s);
        e.n++;
      }
      if (!sep) break;
      s = sep + 1;
    }
    for (int i = 0; i < ncols; i++) {
      const char *want = i < e.n ? e.f[i] : "";
      if (!field_equal(want, r.f[i])) {
        diff++;
        const char *h = hdr;
        for (int k = 0; k < i; k++) h = strchr(h, ',') + 1;
        problem(v, "%s:%zu: row id %s column %.*s is '%s', FHIR says '%s'", path, line, r.f[0],
                (int)strcspn(h, ",\n"), h, r.f[i], want);
        break;
      }
    }
    json_object_del(exp, r.f[0]);
  }
  const char *key;
  json_t *val;
  size_t missing = 0;
  json_object_foreach(exp, key, val) {
    missing++;
    problem(v, "%s: row id %s missing (FHIR has it)", path, key);
  }
  fprintf(v->rep, "  %-22s expected %8zu  found %8zu  missing %zu  extra %zu  differing %zu\n", name,
          nexp, found, missing, extra, diff);
  free(data);
}

static int verify_org(vctx *v, const char *fhir_org, const char *omop_org) {
  v->resources = json_array();
  v->ids = json_object();
  v->period = json_object();
  for (int s = HL_S_FHIR_N; s < HL_S_N; s++) v->exp[s] = json_object();
  load_fhir_dir(v, fhir_org, 0);
  size_t i;
  json_t *res;
  json_array_foreach(v->resources, i, res) index_ids(v, res);
  json_array_foreach(v->resources, i, res) derive(v, res);
  fprintf(v->rep, "org %s: %zu FHIR resources\n", v->org, json_array_size(v->resources));
  for (int s = HL_S_FHIR_N; s < HL_S_N; s++) compare_table(v, omop_org, s);
  for (int s = HL_S_FHIR_N; s < HL_S_N; s++) json_decref(v->exp[s]);
  json_decref(v->resources);
  json_decref(v->ids);
  json_decref(v->period);
  return 0;
}

static int list_orgs(const char *dir, char ***out, size_t *n) {
  DIR *d = opendir(dir);
  if (!d) return -errno;
  struct dirent *e;
  *out = NULL;
  *n = 0;
  while ((e = readdir(d))) {
    if (strncmp(e->d_name, "org=", 4) != 0) continue;
    char **nn = realloc(*out, (*n + 1) * sizeof(char *));
    if (!nn) break;
    *out = nn;
    (*out)[(*n)++] = strdup(e->d_name);
  }
  closedir(d);
  return 0;
}

static int cmpstr(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

int hl_verify_run(const char *fhir_dir, const char *omop_dir, FILE *rep) {
  vctx v;
  memset(&v, 0, sizeof(v));
  v.rep = rep;
  char **fo = NULL, **oo = NULL;
  size_t nf = 0, no = 0;
  if (list_orgs(fhir_dir, &fo, &nf) != 0 || list_orgs(omop_dir, &oo, &no) != 0) {
    fprintf(rep, "verify: cannot read %s or %s: %s\n", fhir_dir, omop_dir, strerror(errno));
    for (size_t i = 0; i < nf; i++) free(fo[i]);
    free(fo);
    return 1;
  }
  qsort(fo, nf, sizeof(char *), cmpstr);
  qsort(oo, no, sizeof(char *), cmpstr);
  if (nf == 0) {
    v.org = "-";
    problem(&v, "%s holds no org=* directory", fhir_dir);
  }
  for (size_t i = 0; i < no; i++) {
    int match = 0;
    for (size_t j = 0; j < nf; j++) match |= !strcmp(oo[i], fo[j]);
    if (!match) {
      v.org = oo[i];
      problem(&v, "OMOP organization %s has no FHIR counterpart", oo[i]);
    }
  }
  for (size_t i = 0; i < nf; i++) {
    char a[4096], b[4096];
    snprintf(a, sizeof(a), "%s/%s", fhir_dir, fo[i]);
    snprintf(b, sizeof(b), "%s/%s", omop_dir, fo[i]);
    v.org = fo[i];
    v.reported = 0;
    verify_org(&v, a, b);
  }
  if (v.problems) fprintf(rep, "verify: FAILED, %d mismatches\n", v.problems);
  else fprintf(rep, "verify: OK, FHIR and OMOP describe the same people and events\n");
  for (size_t i = 0; i < nf; i++) free(fo[i]);
  for (size_t i = 0; i < no; i++) free(oo[i]);
  free(fo);
  free(oo);
  return v.problems ? 1 : 0;
}
