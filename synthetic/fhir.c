/* The FHIR R4 writer: see fhir.h and docs/synth.md for the resource shapes. */
#include "fhir.h"

#include <stdio.h>
#include <string.h>

#define DAY 86400LL

typedef struct w {
  const hl_synth_params *par;
  const hl_patient *p;
  hl_sb *out;
  hl_sb *b;          /* the buffer of the resource being written */
  uint64_t *counts;
  int bundle;
  int nentries;
  char patient_id[37];
} w;

void hl_org_name(int org, char *buf) { snprintf(buf, 16, "org-%d", org + 1); }

static void uuid(const w *x, int kind, uint64_t a, uint64_t b, char out[37]) {
  hl_synth_uuid(x->par->seed, (uint64_t)kind, a, b, out);
}

static const char *const types[HL_S_FHIR_N] = {
  "Organization", "Practitioner", "Patient", "Encounter", "Condition", "Observation",
  "MedicationRequest", "Procedure", "Immunization"};

/* The version written (--version): 1 when the caller left it 0. */
static int64_t version(const w *x) { return x->par->version > 1 ? (int64_t)x->par->version : 1; }

/* Starts a resource of stream s with id: the entry header in bundle mode. */
static void begin(w *x, int s, const char *id) {
  if (x->bundle) {
    x->b = &x->out[HL_S_BUNDLE];
    if (x->nentries++) hl_sb_putc(x->b, ',');
    HL_SB_LIT(x->b, "{\"fullUrl\":\"urn:uuid:");
    hl_sb_cstr(x->b, id);
    HL_SB_LIT(x->b, "\",\"resource\":");
  } else {
    x->b = &x->out[s];
  }
  hl_sb *b = x->b;
  HL_SB_LIT(b, "{\"resourceType\":\"");
  hl_sb_cstr(b, types[s]);
  HL_SB_LIT(b, "\",\"id\":\"");
  hl_sb_cstr(b, id);
  HL_SB_LIT(b, "\",\"meta\":{\"versionId\":\"");
  hl_sb_i64(b, version(x));
  HL_SB_LIT(b, "\",\"lastUpdated\":\"");
  hl_sb_fhir_dt(b, x->par->end + (version(x) - 1) * 3600);
  HL_SB_LIT(b, "\"}");
}

static void end(w *x, int s, const char *id) {
  hl_sb *b = x->b;
  hl_sb_putc(b, '}');
  if (x->bundle) {
    if (s == HL_S_ORGANIZATION || s == HL_S_PRACTITIONER) {
      HL_SB_LIT(b, ",\"request\":{\"method\":\"PUT\",\"url\":\"");
      hl_sb_cstr(b, types[s]);
      hl_sb_putc(b, '/');
      hl_sb_cstr(b, id);
      HL_SB_LIT(b, "\"}}");
    } else {
      HL_SB_LIT(b, ",\"request\":{\"method\":\"POST\",\"url\":\"");
      hl_sb_cstr(b, types[s]);
      HL_SB_LIT(b, "\"}}");
    }
  } else {
    hl_sb_putc(b, '\n');
  }
  x->counts[s]++;
}

/* "reference":"Type/id" or "urn:uuid:id" for patient resources inside a bundle. */
static void ref(w *x, const char *key, int s, const char *id) {
  hl_sb *b = x->b;
  hl_sb_putc(b, ',');
  hl_sb_putc(b, '"');
  hl_sb_cstr(b, key);
  HL_SB_LIT(b, "\":{\"reference\":\"");
  if (x->bundle && s != HL_S_ORGANIZATION && s != HL_S_PRACTITIONER) {
    HL_SB_LIT(b, "urn:uuid:");
  } else {
    hl_sb_cstr(b, types[s]);
    hl_sb_putc(b, '/');
  }
  hl_sb_cstr(b, id);
  HL_SB_LIT(b, "\"}");
}

static void omop_ident(hl_sb *b, const char *table, int64_t id) {
  HL_SB_LIT(b, "{\"system\":\"" HL_OMOP_SYSTEM);
  hl_sb_cstr(b, table);
  HL_SB_LIT(b, "\",\"value\":\"");
  hl_sb_i64(b, id);
  HL_SB_LIT(b, "\"}");
}

static void coding(hl_sb *b, const char *system, const char *code, const char *display) {
  HL_SB_LIT(b, "{\"system\":\"");
  hl_sb_cstr(b, system);
  HL_SB_LIT(b, "\",\"code\":\"");
  hl_sb_cstr(b, code);
  HL_SB_LIT(b, "\",\"display\":");
  hl_sb_json_str(b, display);
  hl_sb_putc(b, '}');
}

static void concept(hl_sb *b, const char *key, const char *system, const char *code,
                    const char *display) {
  hl_sb_putc(b, ',');
  hl_sb_putc(b, '"');
  hl_sb_cstr(b, key);
  HL_SB_LIT(b, "\":{\"coding\":[");
  coding(b, system, code, display);
  HL_SB_LIT(b, "],\"text\":");
  hl_sb_json_str(b, display);
  hl_sb_putc(b, '}');
}

static void dt(hl_sb *b, const char *key, int64_t t) {
  hl_sb_putc(b, ',');
  hl_sb_putc(b, '"');
  hl_sb_cstr(b, key);
  HL_SB_LIT(b, "\":\"");
  hl_sb_fhir_dt(b, t);
  hl_sb_putc(b, '"');
}

static void quantity(hl_sb *b, int64_t v, int dec, const char *unit) {
  HL_SB_LIT(b, "{\"value\":");
  hl_sb_fixed(b, v, dec);
  HL_SB_LIT(b, ",\"unit\":");
  hl_sb_json_str(b, unit);
  HL_SB_LIT(b, ",\"system\":\"" HL_UCUM "\",\"code\":");
  hl_sb_json_str(b, unit);
  hl_sb_putc(b, '}');
}

static void prac_ref(w *x, const char *key, int pr) {
  char id[37];
  uuid(x, HL_U_PRACT, (uint64_t)x->p->org, (uint64_t)pr, id);
  ref(x, key, HL_S_PRACTITIONER, id);
}

static void write_patient(w *x) {
  const hl_patient *p = x->p;
  begin(x, HL_S_PATIENT, x->patient_id);
  hl_sb *b = x->b;
  const hl_race *rc = &hl_races[p->race];
  HL_SB_LIT(b, ",\"extension\":[{\"url\":\"http://hl7.org/fhir/us/core/StructureDefinition/"
               "us-core-race\",\"extension\":[{\"url\":\"");
  if (rc->concept) HL_SB_LIT(b, "ombCategory");
  else HL_SB_LIT(b, "detailed");
  HL_SB_LIT(b, "\",\"valueCoding\":");
  coding(b, "urn:oid:2.16.840.1.113883.6.238", rc->code, rc->display);
  HL_SB_LIT(b, "},{\"url\":\"text\",\"valueString\":");
  hl_sb_json_str(b, rc->display);
  HL_SB_LIT(b, "}]},{\"url\":\"http://hl7.org/fhir/us/core/StructureDefinition/"
               "us-core-ethnicity\",\"extension\":[{\"url\":\"ombCategory\",\"valueCoding\":");
  const char *ec = p->hispanic ? "2135-2" : "2186-5";
  const char *ed = p->hispanic ? "Hispanic or Latino" : "Not Hispanic or Latino";
  coding(b, "urn:oid:2.16.840.1.113883.6.238", ec, ed);
  HL_SB_LIT(b, "},{\"url\":\"text\",\"valueString\":");
  hl_sb_json_str(b, ed);
  HL_SB_LIT(b, "}]},{\"url\":\"http://hl7.org/fhir/us/core/StructureDefinition/"
               "us-core-birthsex\",\"valueCode\":\"");
  hl_sb_putc(b, p->male ? 'M' : 'F');
  HL_SB_LIT(b, "\"}],\"identifier\":[");
  omop_ident(b, "person", hl_person_id(p->k));
  HL_SB_LIT(b, ",{\"system\":\"" HL_OMOP_SYSTEM "location\",\"value\":\"");
  hl_sb_i64(b, hl_person_id(p->k));
  HL_SB_LIT(b, "\"},{\"type\":{\"coding\":[{\"system\":\"http://terminology.hl7.org/CodeSystem/"
               "v2-0203\",\"code\":\"SS\",\"display\":\"Social Security number\"}]},"
               "\"system\":\"http://hl7.org/fhir/sid/us-ssn\",\"value\":\"999-");
  char tmp[64];
  snprintf(tmp, sizeof(tmp), "%02d-%04d", p->ssn_group % 100, p->ssn_serial % 10000);
  hl_sb_cstr(b, tmp);
  HL_SB_LIT(b, "\"}],\"name\":[{\"use\":\"official\",\"family\":");
  hl_sb_json_str(b, p->family);
  HL_SB_LIT(b, ",\"given\":[");
  hl_sb_json_str(b, p->given);
  hl_sb_putc(b, ',');
  hl_sb_json_str(b, p->given2);
  hl_sb_putc(b, ']');
  if (p->prefix) {
    HL_SB_LIT(b, ",\"prefix\":[");
    hl_sb_json_str(b, p->prefix);
    hl_sb_putc(b, ']');
  }
  HL_SB_LIT(b, "}],\"telecom\":[{\"system\":\"phone\",\"value\":\"");
  hl_sb_cstr(b, p->phone);
  HL_SB_LIT(b, "\",\"use\":\"home\"}],\"gender\":\"");
  if (p->male) HL_SB_LIT(b, "male");
  else HL_SB_LIT(b, "female");
  HL_SB_LIT(b, "\",\"birthDate\":\"");
  hl_sb_date(b, p->birth);
  hl_sb_putc(b, '"');
  if (p->death) dt(b, "deceasedDateTime", p->death);
  const hl_state *st = &hl_states[p->state];
  HL_SB_LIT(b, ",\"address\":[{\"use\":\"home\",\"line\":[\"");
  hl_sb_i64(b, p->house);
  hl_sb_putc(b, ' ');
  hl_sb_cstr(b, p->street);
  HL_SB_LIT(b, "\"],\"city\":");
  hl_sb_json_str(b, st->city);
  HL_SB_LIT(b, ",\"state\":\"");
  hl_sb_cstr(b, st->abbr);
  HL_SB_LIT(b, "\",\"postalCode\":\"");
  snprintf(tmp, sizeof(tmp), "%05d", p->zip);
  hl_sb_cstr(b, tmp);
  HL_SB_LIT(b, "\",\"country\":\"US\"}]");
  char org[37];
  uuid(x, HL_U_ORG, (uint64_t)p->org, 0, org);
  ref(x, "managingOrganization", HL_S_ORGANIZATION, org);
  /* A later version (--version > 1) marks the record active. */
  if (version(x) > 1) HL_SB_LIT(b, ",\"active\":true");
  end(x, HL_S_PATIENT, x->patient_id);
}

static void write_encounter(w *x, int i) {
  const hl_patient *p = x->p;
  const hl_enc *e = &p->enc[i];
  const hl_enc_code *ec = &hl_encs[e->kind];
  char id[37];
  uuid(x, HL_U_ENC, p->k, (uint64_t)i, id);
  begin(x, HL_S_ENCOUNTER, id);
  hl_sb *b = x->b;
  HL_SB_LIT(b, ",\"identifier\":[");
  omop_ident(b, "visit_occurrence", hl_row_id(p->k, i, HL_ID_WIDTH));
  HL_SB_LIT(b, "],\"status\":\"finished\",\"class\":{\"system\":\"http://terminology.hl7.org/"
               "CodeSystem/v3-ActCode\",\"code\":\"");
  hl_sb_cstr(b, ec->cls);
  HL_SB_LIT(b, "\",\"display\":\"");
  hl_sb_cstr(b, ec->cls_display);
  HL_SB_LIT(b, "\"},\"type\":[{\"coding\":[");
  coding(b, HL_SNOMED, ec->c.code, ec->c.display);
  HL_SB_LIT(b, "],\"text\":");
  hl_sb_json_str(b, ec->c.display);
  hl_sb_putc(b, '}');
  hl_sb_putc(b, ']');
  ref(x, "subject", HL_S_PATIENT, x->patient_id);
  char pr[37];
  uuid(x, HL_U_PRACT, (uint64_t)p->org, e->practitioner, pr);
  HL_SB_LIT(b, ",\"participant\":[{\"type\":[{\"coding\":[{\"system\":\"http://terminology.hl7.org/"
               "CodeSystem/v3-ParticipationType\",\"code\":\"PPRF\",\"display\":\"primary "
               "performer\"}]}],\"individual\":{\"reference\":\"Practitioner/");
  hl_sb_cstr(b, pr);
  HL_SB_LIT(b, "\"}}],\"period\":{\"start\":\"");
  hl_sb_fhir_dt(b, e->start);
  HL_SB_LIT(b, "\",\"end\":\"");
  hl_sb_fhir_dt(b, e->end);
  HL_SB_LIT(b, "\"}");
  if (e->reason >= 0) {
    char cid[37];
    uuid(x, HL_U_COND, p->k, (uint64_t)e->reason, cid);
    HL_SB_LIT(b, ",\"reasonReference\":[{\"reference\":\"");
    if (x->bundle) HL_SB_LIT(b, "urn:uuid:");
    else HL_SB_LIT(b, "Condition/");
    hl_sb_cstr(b, cid);
    HL_SB_LIT(b, "\"}]");
  }
  char fac[37];
  uuid(x, HL_U_FACILITY, (uint64_t)p->org, e->facility, fac);
  ref(x, "serviceProvider", HL_S_ORGANIZATION, fac);
  end(x, HL_S_ENCOUNTER, id);
}

static void enc_ref(w *x, int e) {
  char id[37];
  uuid(x, HL_U_ENC, x->p->k, (uint64_t)e, id);
  ref(x, "encounter", HL_S_ENCOUNTER, id);
}

static void write_condition(w *x, int i) {
  const hl_patient *p = x->p;
  const hl_cond *c = &p->cond[i];
  const hl_code *cc = &hl_conditions[c->code];
  char id[37];
  uuid(x, HL_U_COND, p->k, (uint64_t)i, id);
  begin(x, HL_S_CONDITION, id);
  hl_sb *b = x->b;
  HL_SB_LIT(b, ",\"identifier\":[");
  omop_ident(b, "condition_occurrence", hl_row_id(p->k, i, HL_ID_WIDTH));
  HL_SB_LIT(b, "],\"clinicalStatus\":{\"coding\":[{\"system\":\"http://terminology.hl7.org/"
               "CodeSystem/condition-clinical\",\"code\":\"");
  if (c->abatement) HL_SB_LIT(b, "resolved");
  else HL_SB_LIT(b, "active");
  HL_SB_LIT(b, "\"}]},\"verificationStatus\":{\"coding\":[{\"system\":\"http://terminology.hl7.org/"
               "CodeSystem/condition-ver-status\",\"code\":\"confirmed\"}]},\"category\":[{"
               "\"coding\":[{\"system\":\"http://terminology.hl7.org/CodeSystem/condition-category\","
               "\"code\":\"");
  if (c->code < HL_COND_NCHRONIC)
    HL_SB_LIT(b, "problem-list-item\",\"display\":\"Problem List Item\"}]}]");
  else
    HL_SB_LIT(b, "encounter-diagnosis\",\"display\":\"Encounter Diagnosis\"}]}]");
  concept(b, "code", HL_SNOMED, cc->code, cc->display);
  ref(x, "subject", HL_S_PATIENT, x->patient_id);
  enc_ref(x, c->enc);
  dt(b, "onsetDateTime", c->onset);
  if (c->abatement) dt(b, "abatementDateTime", c->abatement);
  dt(b, "recordedDate", p->enc[c->enc].start);
  end(x, HL_S_CONDITION, id);
}

static void write_observation(w *x, int i, int64_t *meas) {
  const hl_patient *p = x->p;
  const hl_obs *o = &p->obs[i];
  const hl_obs_code *oc = &hl_obs_codes[o->code];
  char id[37];
  uuid(x, HL_U_OBS, p->k, (uint64_t)i, id);
  begin(x, HL_S_OBSERVATION, id);
  hl_sb *b = x->b;
  HL_SB_LIT(b, ",\"identifier\":[");
  omop_ident(b, "measurement", hl_row_id(p->k, (*meas)++, HL_ID_WIDTH_MEAS));
  if (o->code == HL_O_BP_PANEL) {
    hl_sb_putc(b, ',');
    omop_ident(b, "measurement", hl_row_id(p->k, (*meas)++, HL_ID_WIDTH_MEAS));
  }
  /* A later version (--version > 1) is an amended result. */
  if (version(x) > 1) HL_SB_LIT(b, "],\"status\":\"amended\",\"category\"");
  else HL_SB_LIT(b, "],\"status\":\"final\",\"category\"");
  HL_SB_LIT(b, ":[{\"coding\":[{\"system\":\"http://"
               "terminology.hl7.org/CodeSystem/observation-category\",\"code\":\"");
  if (oc->vital) HL_SB_LIT(b, "vital-signs\",\"display\":\"Vital Signs\"}]}]");
  else HL_SB_LIT(b, "laboratory\",\"display\":\"Laboratory\"}]}]");
  concept(b, "code", HL_LOINC, oc->c.code, oc->c.display);
  ref(x, "subject", HL_S_PATIENT, x->patient_id);
  enc_ref(x, o->enc);
  dt(b, "effectiveDateTime", o->t);
  HL_SB_LIT(b, ",\"issued\":\"");
  hl_sb_fhir_dt(b, o->t);
  hl_sb_putc(b, '"');
  if (o->code == HL_O_BP_PANEL) {
    const hl_obs_code *sc = &hl_obs_codes[HL_O_SYSTOLIC], *dc = &hl_obs_codes[HL_O_DIASTOLIC];
    HL_SB_LIT(b, ",\"component\":[{\"code\":{\"coding\":[");
    coding(b, HL_LOINC, sc->c.code, sc->c.display);
    HL_SB_LIT(b, "],\"text\":");
    hl_sb_json_str(b, sc->c.display);
    HL_SB_LIT(b, "},\"valueQuantity\":");
    quantity(b, o->v, 0, sc->unit);
    HL_SB_LIT(b, "},{\"code\":{\"coding\":[");
    coding(b, HL_LOINC, dc->c.code, dc->c.display);
    HL_SB_LIT(b, "],\"text\":");
    hl_sb_json_str(b, dc->c.display);
    HL_SB_LIT(b, "},\"valueQuantity\":");
    quantity(b, o->v2, 0, dc->unit);
    HL_SB_LIT(b, "}]");
  } else {
    HL_SB_LIT(b, ",\"valueQuantity\":");
    quantity(b, o->v, oc->decimals, oc->unit);
  }
  end(x, HL_S_OBSERVATION, id);
}

static int64_t days_supply(int64_t start, int64_t end) { return (end - start + DAY - 1) / DAY; }

static void write_medreq(w *x, int i) {
  const hl_patient *p = x->p;
  const hl_med *m = &p->med[i];
  const hl_med_code *mc = &hl_meds[m->code];
  char id[37];
  uuid(x, HL_U_MED, p->k, (uint64_t)i, id);
  begin(x, HL_S_MEDREQ, id);
  hl_sb *b = x->b;
  HL_SB_LIT(b, ",\"identifier\":[");
  omop_ident(b, "drug_exposure", hl_row_id(p->k, i, HL_ID_WIDTH));
  HL_SB_LIT(b, "],\"status\":\"");
  if (m->end < x->par->end) HL_SB_LIT(b, "completed");
  else HL_SB_LIT(b, "active");
  HL_SB_LIT(b, "\",\"intent\":\"order\"");
  concept(b, "medicationCodeableConcept", HL_RXNORM, mc->c.code, mc->c.display);
  ref(x, "subject", HL_S_PATIENT, x->patient_id);
  enc_ref(x, m->enc);
  dt(b, "authoredOn", m->start);
  prac_ref(x, "requester", p->enc[m->enc].practitioner);
  if (m->reason >= 0) {
    char cid[37];
    uuid(x, HL_U_COND, p->k, (uint64_t)m->reason, cid);
    HL_SB_LIT(b, ",\"reasonReference\":[{\"reference\":\"");
    if (x->bundle) HL_SB_LIT(b, "urn:uuid:");
    else HL_SB_LIT(b, "Condition/");
    hl_sb_cstr(b, cid);
    HL_SB_LIT(b, "\"}]");
  }
  HL_SB_LIT(b, ",\"dosageInstruction\":[{\"sequence\":1,\"text\":");
  hl_sb_json_str(b, mc->sig);
  HL_SB_LIT(b, ",\"timing\":{\"repeat\":{\"frequency\":");
  hl_sb_i64(b, mc->per_day);
  HL_SB_LIT(b, ",\"period\":1,\"periodUnit\":\"d\"}},\"route\":{\"coding\":[");
  coding(b, HL_SNOMED, mc->route, mc->route_display);
  HL_SB_LIT(b, "]},\"doseAndRate\":[{\"doseQuantity\":");
  int64_t dose1000 = (int64_t)(mc->dose * 1000 + 0.5);
  quantity(b, dose1000, 3, mc->dose_unit);
  HL_SB_LIT(b, "}]}],\"dispenseRequest\":{\"validityPeriod\":{\"start\":\"");
  hl_sb_fhir_dt(b, m->start);
  HL_SB_LIT(b, "\",\"end\":\"");
  hl_sb_fhir_dt(b, m->end);
  int64_t ds = days_supply(m->start, m->end);
  HL_SB_LIT(b, "\"},\"quantity\":{\"value\":");
  hl_sb_i64(b, ds * mc->per_day);
  HL_SB_LIT(b, ",\"unit\":\"doses\"},\"expectedSupplyDuration\":{\"value\":");
  hl_sb_i64(b, ds);
  HL_SB_LIT(b, ",\"unit\":\"days\",\"system\":\"" HL_UCUM "\",\"code\":\"d\"}}");
  end(x, HL_S_MEDREQ, id);
}

static void write_procedure(w *x, int i) {
  const hl_patient *p = x->p;
  const hl_proc *pr = &p->proc[i];
  const hl_code *pc = &hl_procs[pr->code];
  char id[37];
  uuid(x, HL_U_PROC, p->k, (uint64_t)i, id);
  begin(x, HL_S_PROCEDURE, id);
  hl_sb *b = x->b;
  HL_SB_LIT(b, ",\"identifier\":[");
  omop_ident(b, "procedure_occurrence", hl_row_id(p->k, i, HL_ID_WIDTH));
  HL_SB_LIT(b, "],\"status\":\"completed\"");
  concept(b, "code", HL_SNOMED, pc->code, pc->display);
  ref(x, "subject", HL_S_PATIENT, x->patient_id);
  enc_ref(x, pr->enc);
  HL_SB_LIT(b, ",\"performedPeriod\":{\"start\":\"");
  hl_sb_fhir_dt(b, pr->start);
  HL_SB_LIT(b, "\",\"end\":\"");
  hl_sb_fhir_dt(b, pr->end);
  HL_SB_LIT(b, "\"},\"performer\":[{");
  char prid[37];
  uuid(x, HL_U_PRACT, (uint64_t)p->org, p->enc[pr->enc].practitioner, prid);
  HL_SB_LIT(b, "\"actor\":{\"reference\":\"Practitioner/");
  hl_sb_cstr(b, prid);
  HL_SB_LIT(b, "\"}}]");
  end(x, HL_S_PROCEDURE, id);
}

static void write_immunization(w *x, int i) {
  const hl_patient *p = x->p;
  const hl_imm *im = &p->imm[i];
  const hl_code *vc = &hl_vaccines[im->code];
  char id[37];
  uuid(x, HL_U_IMM, p->k, (uint64_t)i, id);
  begin(x, HL_S_IMMUNIZATION, id);
  hl_sb *b = x->b;
  HL_SB_LIT(b, ",\"identifier\":[");
  omop_ident(b, "drug_exposure", hl_row_id(p->k, p->nmed + i, HL_ID_WIDTH));
  HL_SB_LIT(b, "],\"status\":\"completed\"");
  concept(b, "vaccineCode", HL_CVX, vc->code, vc->display);
  ref(x, "patient", HL_S_PATIENT, x->patient_id);
  enc_ref(x, im->enc);
  dt(b, "occurrenceDateTime", im->t);
  HL_SB_LIT(b, ",\"primarySource\":true,\"route\":{\"coding\":[{\"system\":\"http://"
               "terminology.hl7.org/CodeSystem/v3-RouteOfAdministration\",\"code\":\"IM\","
               "\"display\":\"Injection, intramuscular\"}]},\"performer\":[{");
  char prid[37];
  uuid(x, HL_U_PRACT, (uint64_t)p->org, p->enc[im->enc].practitioner, prid);
  HL_SB_LIT(b, "\"actor\":{\"reference\":\"Practitioner/");
  hl_sb_cstr(b, prid);
  HL_SB_LIT(b, "\"}}]");
  end(x, HL_S_IMMUNIZATION, id);
}

void hl_fhir_write_patient(const hl_synth_params *par, const hl_patient *p, int bundle,
                           hl_sb *out, uint64_t *counts) {
  w x = {.par = par, .p = p, .out = out, .counts = counts, .bundle = bundle};
  hl_synth_uuid(par->seed, HL_U_PATIENT, p->k, 0, x.patient_id);
  if (bundle) HL_SB_LIT(&out[HL_S_BUNDLE], "{\"resourceType\":\"Bundle\",\"type\":\"transaction\",\"entry\":[");
  write_patient(&x);
  for (int i = 0; i < p->nenc; i++) write_encounter(&x, i);
  for (int i = 0; i < p->ncond; i++) write_condition(&x, i);
  int64_t meas = 0;
  for (int i = 0; i < p->nobs; i++) write_observation(&x, i, &meas);
  for (int i = 0; i < p->nmed; i++) write_medreq(&x, i);
  for (int i = 0; i < p->nproc; i++) write_procedure(&x, i);
  for (int i = 0; i < p->nimm; i++) write_immunization(&x, i);
  if (bundle) {
    HL_SB_LIT(&out[HL_S_BUNDLE], "]}\n");
    counts[HL_S_BUNDLE]++;
  }
}

static void address(hl_sb *b, const hl_org_info *o) {
  const hl_state *st = &hl_states[o->state];
  char tmp[16];
  HL_SB_LIT(b, ",\"address\":[{\"line\":[\"");
  hl_sb_i64(b, o->house);
  hl_sb_putc(b, ' ');
  hl_sb_cstr(b, o->street);
  HL_SB_LIT(b, "\"],\"city\":");
  hl_sb_json_str(b, st->city);
  HL_SB_LIT(b, ",\"state\":\"");
  hl_sb_cstr(b, st->abbr);
  HL_SB_LIT(b, "\",\"postalCode\":\"");
  snprintf(tmp, sizeof(tmp), "%05d", o->zip);
  hl_sb_cstr(b, tmp);
  HL_SB_LIT(b, "\",\"country\":\"US\"}]");
}

void hl_fhir_write_org(const hl_synth_params *par, int org, const hl_org_info *o, int bundle,
                       hl_sb *out, uint64_t *counts) {
  w x = {.par = par, .out = out, .counts = counts, .bundle = bundle};
  x.p = NULL;
  char name[16], id[37], tenant[37];
  hl_org_name(org, name);
  if (bundle) HL_SB_LIT(&out[HL_S_BUNDLE], "{\"resourceType\":\"Bundle\",\"type\":\"transaction\",\"entry\":[");
  hl_synth_uuid(par->seed, HL_U_ORG, (uint64_t)org, 0, tenant);
  begin(&x, HL_S_ORGANIZATION, tenant);
  hl_sb *b = x.b;
  HL_SB_LIT(b, ",\"identifier\":[{\"system\":\"urn:healthlake:org\",\"value\":\"");
  hl_sb_cstr(b, name);
  HL_SB_LIT(b, "\"}],\"active\":true,\"type\":[{\"coding\":[{\"system\":\"http://terminology.hl7.org/"
               "CodeSystem/organization-type\",\"code\":\"prov\",\"display\":\"Healthcare "
               "Provider\"}]}],\"name\":");
  char full[128];
  snprintf(full, sizeof(full), "%s Health (%s)", hl_states[o->state].city, name);
  hl_sb_json_str(b, full);
  address(b, o);
  end(&x, HL_S_ORGANIZATION, tenant);
  for (int f = 0; f < HL_ORG_FACILITIES; f++) {
    hl_synth_uuid(par->seed, HL_U_FACILITY, (uint64_t)org, (uint64_t)f, id);
    begin(&x, HL_S_ORGANIZATION, id);
    b = x.b;
    HL_SB_LIT(b, ",\"identifier\":[");
    omop_ident(b, "care_site", hl_care_site_id(org, f));
    hl_sb_putc(b, ',');
    omop_ident(b, "location", hl_facility_location_id(org, f));
    HL_SB_LIT(b, "],\"active\":true,\"type\":[{\"coding\":[{\"system\":\"http://terminology.hl7.org/"
                 "CodeSystem/v3-RoleCode\",\"code\":\"");
    if (f == 0) HL_SB_LIT(b, "HOSP\",\"display\":\"Hospital\"}]}],\"name\":");
    else HL_SB_LIT(b, "FMC\",\"display\":\"Family Medicine Clinic\"}]}],\"name\":");
    snprintf(full, sizeof(full), "%s %s (%s)", hl_states[o->state].city,
             f == 0 ? "General Hospital" : "Family Medicine", name);
    hl_sb_json_str(b, full);
    address(b, o);
    HL_SB_LIT(b, ",\"partOf\":{\"reference\":\"Organization/");
    hl_sb_cstr(b, tenant);
    HL_SB_LIT(b, "\"}");
    end(&x, HL_S_ORGANIZATION, id);
  }
  for (int i = 0; i < HL_ORG_PRACTITIONERS; i++) {
    hl_synth_uuid(par->seed, HL_U_PRACT, (uint64_t)org, (uint64_t)i, id);
    begin(&x, HL_S_PRACTITIONER, id);
    b = x.b;
    HL_SB_LIT(b, ",\"identifier\":[");
    omop_ident(b, "provider", hl_provider_id(org, i));
    HL_SB_LIT(b, ",{\"system\":\"http://hl7.org/fhir/sid/us-npi\",\"value\":\"");
    char npi[16];
    snprintf(npi, sizeof(npi), "99%08lld", (long long)(hl_provider_id(org, i) % 100000000));
    hl_sb_cstr(b, npi);
    HL_SB_LIT(b, "\"}],\"active\":true,\"name\":[{\"family\":");
    hl_sb_json_str(b, o->prac_family[i]);
    HL_SB_LIT(b, ",\"given\":[");
    hl_sb_json_str(b, o->prac_given[i]);
    HL_SB_LIT(b, "],\"prefix\":[\"Dr.\"]}],\"gender\":\"");
    if (o->prac_male[i]) HL_SB_LIT(b, "male");
    else HL_SB_LIT(b, "female");
    hl_sb_putc(b, '"');
    end(&x, HL_S_PRACTITIONER, id);
  }
  if (bundle) {
    HL_SB_LIT(&out[HL_S_BUNDLE], "]}\n");
    counts[HL_S_BUNDLE]++;
  }
}
