/* The OMOP CDM writer: see omop.h and docs/fhir-omop-mapping.md. */
#include "omop.h"

#include <stdio.h>

#define DAY 86400LL
#define C(b) hl_sb_putc((b), ',')
#define NL(b) hl_sb_putc((b), '\n')

static void csv_i64(hl_sb *b, int64_t v) {
  C(b);
  hl_sb_i64(b, v);
}
static void csv_s(hl_sb *b, const char *s) {
  C(b);
  hl_sb_csv_str(b, s);
}
static void csv_empty(hl_sb *b, int n) {
  for (int i = 0; i < n; i++) C(b);
}
static void csv_date_dt(hl_sb *b, int64_t t) {
  C(b);
  hl_sb_date(b, t);
  C(b);
  hl_sb_omop_dt(b, t);
}

static int64_t visit_id(const hl_patient *p, int e) { return hl_row_id(p->k, e, HL_ID_WIDTH); }

void hl_omop_write_patient(const hl_synth_params *par, const hl_patient *p, hl_sb *out,
                           uint64_t *counts) {
  char pid[37];
  hl_synth_uuid(par->seed, HL_U_PATIENT, p->k, 0, pid);
  int64_t person = hl_person_id(p->k);
  const hl_race *rc = &hl_races[p->race];
  int y, m, d;
  hl_civil(p->birth / DAY, &y, &m, &d);

  hl_sb *b = &out[HL_S_PERSON];
  hl_sb_i64(b, person);
  csv_i64(b, p->male ? HL_OMOP_MALE : HL_OMOP_FEMALE);
  csv_i64(b, y);
  csv_i64(b, m);
  csv_i64(b, d);
  C(b);
  hl_sb_omop_dt(b, p->birth);
  csv_i64(b, rc->concept);
  csv_i64(b, p->hispanic ? HL_OMOP_HISPANIC : HL_OMOP_NOT_HISPANIC);
  csv_i64(b, person); /* location_id */
  csv_empty(b, 2);    /* provider_id, care_site_id */
  csv_s(b, pid);
  csv_s(b, p->male ? "male" : "female");
  csv_i64(b, 0);
  csv_s(b, rc->code);
  csv_i64(b, 0);
  csv_s(b, p->hispanic ? "2135-2" : "2186-5");
  csv_i64(b, 0);
  NL(b);
  counts[HL_S_PERSON]++;

  /* The patient's address. */
  b = &out[HL_S_LOCATION];
  const hl_state *st = &hl_states[p->state];
  char line[96], zip[8];
  snprintf(line, sizeof(line), "%d %s", p->house, p->street);
  snprintf(zip, sizeof(zip), "%05d", p->zip);
  hl_sb_i64(b, person);
  csv_s(b, line);
  C(b);
  csv_s(b, st->city);
  csv_s(b, st->abbr);
  csv_s(b, zip);
  C(b);
  C(b);
  HL_SB_LIT(b, "Patient/");
  hl_sb_cstr(b, pid);
  C(b);
  csv_s(b, "US");
  csv_empty(b, 2);
  NL(b);
  counts[HL_S_LOCATION]++;

  if (p->nenc > 0) {
    int64_t lo = p->enc[0].start, hi = p->enc[0].end;
    for (int i = 1; i < p->nenc; i++) {
      if (p->enc[i].start < lo) lo = p->enc[i].start;
      if (p->enc[i].end > hi) hi = p->enc[i].end;
    }
    b = &out[HL_S_OBS_PERIOD];
    hl_sb_i64(b, person);
    csv_i64(b, person);
    C(b);
    hl_sb_date(b, lo);
    C(b);
    hl_sb_date(b, hi);
    csv_i64(b, HL_OMOP_EHR);
    NL(b);
    counts[HL_S_OBS_PERIOD]++;
  }

  b = &out[HL_S_VISIT];
  for (int i = 0; i < p->nenc; i++) {
    const hl_enc *e = &p->enc[i];
    const hl_enc_code *ec = &hl_encs[e->kind];
    hl_sb_i64(b, visit_id(p, i));
    csv_i64(b, person);
    csv_i64(b, ec->visit_concept);
    csv_date_dt(b, e->start);
    csv_date_dt(b, e->end);
    csv_i64(b, HL_OMOP_EHR);
    csv_i64(b, hl_provider_id(p->org, e->practitioner));
    csv_i64(b, hl_care_site_id(p->org, e->facility));
    csv_s(b, ec->c.code);
    csv_i64(b, 0);
    csv_empty(b, 5);
    NL(b);
  }
  counts[HL_S_VISIT] += (uint64_t)p->nenc;

  b = &out[HL_S_CONDITION_OCC];
  for (int i = 0; i < p->ncond; i++) {
    const hl_cond *c = &p->cond[i];
    const hl_code *cc = &hl_conditions[c->code];
    hl_sb_i64(b, hl_row_id(p->k, i, HL_ID_WIDTH));
    csv_i64(b, person);
    csv_i64(b, cc->concept_id);
    csv_date_dt(b, c->onset);
    if (c->abatement) csv_date_dt(b, c->abatement);
    else csv_empty(b, 2);
    csv_i64(b, HL_OMOP_EHR);
    csv_empty(b, 3); /* status, stop_reason, provider */
    csv_i64(b, visit_id(p, c->enc));
    C(b);
    csv_s(b, cc->code);
    csv_i64(b, cc->concept_id);
    C(b);
    NL(b);
  }
  counts[HL_S_CONDITION_OCC] += (uint64_t)p->ncond;

  b = &out[HL_S_MEASUREMENT];
  int64_t meas = 0;
  for (int i = 0; i < p->nobs; i++) {
    const hl_obs *o = &p->obs[i];
    int n = o->code == HL_O_BP_PANEL ? 2 : 1;
    for (int j = 0; j < n; j++) {
      int code = o->code == HL_O_BP_PANEL ? (j ? HL_O_DIASTOLIC : HL_O_SYSTOLIC) : o->code;
      const hl_obs_code *oc = &hl_obs_codes[code];
      int32_t v = o->code == HL_O_BP_PANEL ? (j ? o->v2 : o->v) : o->v;
      hl_sb_i64(b, hl_row_id(p->k, meas++, HL_ID_WIDTH_MEAS));
      csv_i64(b, person);
      csv_i64(b, oc->c.concept_id);
      csv_date_dt(b, o->t);
      C(b);
      csv_i64(b, HL_OMOP_EHR);
      C(b);
      C(b);
      hl_sb_fixed(b, v, oc->decimals);
      C(b);
      csv_i64(b, oc->unit_concept);
      csv_empty(b, 3); /* range_low, range_high, provider */
      csv_i64(b, visit_id(p, o->enc));
      C(b);
      csv_s(b, oc->c.code);
      csv_i64(b, oc->c.concept_id);
      csv_s(b, oc->unit);
      C(b);
      C(b);
      hl_sb_fixed(b, v, oc->decimals);
      csv_empty(b, 2);
      NL(b);
      counts[HL_S_MEASUREMENT]++;
    }
  }

  b = &out[HL_S_DRUG];
  for (int i = 0; i < p->nmed; i++) {
    const hl_med *x = &p->med[i];
    const hl_med_code *mc = &hl_meds[x->code];
    int64_t ds = (x->end - x->start + DAY - 1) / DAY;
    hl_sb_i64(b, hl_row_id(p->k, i, HL_ID_WIDTH));
    csv_i64(b, person);
    csv_i64(b, mc->c.concept_id);
    csv_date_dt(b, x->start);
    csv_date_dt(b, x->end);
    C(b);
    csv_i64(b, HL_OMOP_EHR_PRESCRIPTION);
    csv_empty(b, 2); /* stop_reason, refills */
    csv_i64(b, ds * mc->per_day);
    csv_i64(b, ds);
    csv_s(b, mc->sig);
    csv_i64(b, mc->route_concept);
    C(b);
    csv_i64(b, hl_provider_id(p->org, p->enc[x->enc].practitioner));
    csv_i64(b, visit_id(p, x->enc));
    C(b);
    csv_s(b, mc->c.code);
    csv_i64(b, mc->c.concept_id);
    csv_s(b, mc->route);
    csv_s(b, mc->dose_unit);
    NL(b);
  }
  for (int i = 0; i < p->nimm; i++) {
    const hl_imm *x = &p->imm[i];
    const hl_code *vc = &hl_vaccines[x->code];
    hl_sb_i64(b, hl_row_id(p->k, p->nmed + i, HL_ID_WIDTH));
    csv_i64(b, person);
    csv_i64(b, vc->concept_id);
    csv_date_dt(b, x->t);
    csv_date_dt(b, x->t);
    C(b);
    csv_i64(b, HL_OMOP_EHR);
    csv_empty(b, 2);
    csv_i64(b, 1);
    csv_i64(b, 1);
    C(b);
    csv_i64(b, 4302612); /* intramuscular */
    C(b);
    csv_i64(b, hl_provider_id(p->org, p->enc[x->enc].practitioner));
    csv_i64(b, visit_id(p, x->enc));
    C(b);
    csv_s(b, vc->code);
    csv_i64(b, vc->concept_id);
    csv_s(b, "IM");
    C(b);
    NL(b);
  }
  counts[HL_S_DRUG] += (uint64_t)(p->nmed + p->nimm);

  b = &out[HL_S_PROC_OCC];
  for (int i = 0; i < p->nproc; i++) {
    const hl_proc *x = &p->proc[i];
    const hl_code *pc = &hl_procs[x->code];
    hl_sb_i64(b, hl_row_id(p->k, i, HL_ID_WIDTH));
    csv_i64(b, person);
    csv_i64(b, pc->concept_id);
    csv_date_dt(b, x->start);
    csv_date_dt(b, x->end);
    csv_i64(b, HL_OMOP_EHR);
    csv_empty(b, 2); /* modifier, quantity */
    csv_i64(b, hl_provider_id(p->org, p->enc[x->enc].practitioner));
    csv_i64(b, visit_id(p, x->enc));
    C(b);
    csv_s(b, pc->code);
    csv_i64(b, pc->concept_id);
    C(b);
    NL(b);
  }
  counts[HL_S_PROC_OCC] += (uint64_t)p->nproc;

  if (p->death) {
    b = &out[HL_S_DEATH];
    hl_sb_i64(b, person);
    csv_date_dt(b, p->death);
    csv_i64(b, HL_OMOP_EHR);
    csv_empty(b, 3);
    NL(b);
    counts[HL_S_DEATH]++;
  }
}

void hl_omop_write_org(const hl_synth_params *par, int org, const hl_org_info *o, hl_sb *out,
                       uint64_t *counts) {
  char name[16], id[37], full[128], line[96], zip[8];
  snprintf(name, sizeof(name), "org-%d", org + 1);
  const hl_state *st = &hl_states[o->state];
  snprintf(line, sizeof(line), "%d %s", o->house, o->street);
  snprintf(zip, sizeof(zip), "%05d", o->zip);
  for (int f = 0; f < HL_ORG_FACILITIES; f++) {
    hl_synth_uuid(par->seed, HL_U_FACILITY, (uint64_t)org, (uint64_t)f, id);
    hl_sb *b = &out[HL_S_LOCATION];
    hl_sb_i64(b, hl_facility_location_id(org, f));
    csv_s(b, line);
    C(b);
    csv_s(b, st->city);
    csv_s(b, st->abbr);
    csv_s(b, zip);
    C(b);
    C(b);
    HL_SB_LIT(b, "Organization/");
    hl_sb_cstr(b, id);
    C(b);
    csv_s(b, "US");
    csv_empty(b, 2);
    NL(b);
    counts[HL_S_LOCATION]++;

    b = &out[HL_S_CARE_SITE];
    snprintf(full, sizeof(full), "%s %s (%s)", st->city, f == 0 ? "General Hospital" : "Family Medicine",
             name);
    hl_sb_i64(b, hl_care_site_id(org, f));
    csv_s(b, full);
    csv_i64(b, f == 0 ? HL_OMOP_POS_INPATIENT : HL_OMOP_POS_OFFICE);
    csv_i64(b, hl_facility_location_id(org, f));
    csv_s(b, id);
    csv_s(b, f == 0 ? "HOSP" : "FMC");
    NL(b);
    counts[HL_S_CARE_SITE]++;
  }
  for (int i = 0; i < HL_ORG_PRACTITIONERS; i++) {
    hl_synth_uuid(par->seed, HL_U_PRACT, (uint64_t)org, (uint64_t)i, id);
    hl_sb *b = &out[HL_S_PROVIDER];
    char pname[128], npi[16];
    snprintf(pname, sizeof(pname), "%s %s", o->prac_given[i], o->prac_family[i]);
    snprintf(npi, sizeof(npi), "99%08lld", (long long)(hl_provider_id(org, i) % 100000000));
    hl_sb_i64(b, hl_provider_id(org, i));
    csv_s(b, pname);
    csv_s(b, npi);
    csv_empty(b, 4); /* dea, specialty, care_site, year_of_birth */
    csv_i64(b, o->prac_male[i] ? HL_OMOP_MALE : HL_OMOP_FEMALE);
    csv_s(b, id);
    csv_empty(b, 2);
    csv_s(b, o->prac_male[i] ? "male" : "female");
    csv_i64(b, 0);
    NL(b);
    counts[HL_S_PROVIDER]++;
  }
}
