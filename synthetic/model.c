/*
 * The person model: demographics, chronic conditions with age-dependent
 * onset and comorbidity, mortality, and a discrete-event simulation of
 * encounters with the vitals, labs, medications, procedures and
 * immunizations recorded at each. See docs/synth.md for the rules and the
 * sources of the numbers.
 */
#include "model.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define DAY 86400LL
#define YEAR (365.2425 * 86400.0)

void hl_synth_uuid(uint64_t seed, uint64_t kind, uint64_t a, uint64_t b, char out[37]) {
  static const char hex[] = "0123456789abcdef";
  uint64_t h1 = hl_mix3(seed, (kind << 48) ^ a, b);
  uint64_t h2 = hl_mix3(h1, a, (kind << 32) ^ b ^ 0x5bd1e995ULL);
  uint8_t by[16];
  for (int i = 0; i < 8; i++) {
    by[i] = (uint8_t)(h1 >> (i * 8));
    by[8 + i] = (uint8_t)(h2 >> (i * 8));
  }
  by[6] = (uint8_t)((by[6] & 0x0f) | 0x40);
  by[8] = (uint8_t)((by[8] & 0x3f) | 0x80);
  int o = 0;
  for (int i = 0; i < 16; i++) {
    if (i == 4 || i == 6 || i == 8 || i == 10) out[o++] = '-';
    out[o++] = hex[by[i] >> 4];
    out[o++] = hex[by[i] & 15];
  }
  out[o] = 0;
}

static const char *pick_name(hl_rng *r, const hl_name *t, size_t n) {
  return t[hl_rng_weighted(r, &t[0].weight, n, sizeof(t[0]))].name;
}

/* Fraction of adult height reached at a given age (CDC growth charts, rounded). */
static double height_fraction(double age) {
  static const double ages[] = {0, 1, 2, 4, 6, 8, 10, 12, 14, 16, 18};
  static const double frac[] = {0.29, 0.43, 0.50, 0.59, 0.67, 0.74, 0.80, 0.86, 0.93, 0.98, 1.0};
  if (age >= 18) return 1.0;
  if (age <= 0) return frac[0];
  for (int i = 1; i < 11; i++) {
    if (age <= ages[i]) {
      double f = (age - ages[i - 1]) / (ages[i] - ages[i - 1]);
      return frac[i - 1] + f * (frac[i] - frac[i - 1]);
    }
  }
  return 1.0;
}

/* Annual probability of death at an age (Gompertz fit to the US 2019 period life table). */
static double mortality(double age) {
  if (age < 1) return 0.0056;
  double q = 0.0002 + exp(-10.2 + 0.0905 * age);
  return q > 0.5 ? 0.5 : q;
}

typedef struct state {
  hl_patient *p;
  hl_rng *r;
  const hl_synth_params *par;
  int64_t to;                  /* end of life within the period */
  int64_t onset[HL_COND_NCHRONIC]; /* 0: never */
  int cidx[HL_COND_NCHRONIC];  /* index in p->cond once recorded, -1 before */
  int64_t med_since[HL_MED_N]; /* 0: not on it */
  int64_t med_last[HL_MED_N];  /* last prescription */
  int8_t med_reason[HL_MED_N];
  /* Person-level physiology. */
  double h_adult, bmi_lean, bmi_obese, sbp_off, dbp_off, hr_base, a1c_dm, tc_base, tc_hld, hdl,
      tg, scr_base, egfr_ckd;
  int64_t last_lipid, last_colo, last_mammo, last_a1c;
  int flu_season;              /* last season vaccinated (year of its September) */
} state;

static double age_at(const hl_patient *p, int64_t t) { return (double)(t - p->birth) / YEAR; }

static int active(const state *s, int c, int64_t t) { return s->onset[c] && s->onset[c] <= t; }
static int diagnosed(const state *s, int c) { return s->cidx[c] >= 0; }

static int32_t scaled(double v, int code) {
  double m = 1;
  for (int i = 0; i < hl_obs_codes[code].decimals; i++) m *= 10;
  return (int32_t)lround(v * m);
}
static double unscale(int32_t v, int code) {
  double m = 1;
  for (int i = 0; i < hl_obs_codes[code].decimals; i++) m *= 10;
  return v / m;
}

static void add_obs(state *s, int enc, int64_t t, int code, double v, double v2) {
  hl_patient *p = s->p;
  if (p->nobs >= HL_MAX_OBS) return;
  hl_obs *o = &p->obs[p->nobs++];
  o->t = t;
  o->code = (uint8_t)code;
  o->enc = (int16_t)enc;
  if (code == HL_O_BP_PANEL) {
    o->v = (int32_t)lround(v);
    o->v2 = (int32_t)lround(v2);
  } else {
    o->v = scaled(v, code);
    o->v2 = 0;
  }
}

static void prescribe(state *s, int enc, int64_t t, int m, int reason, int days) {
  hl_patient *p = s->p;
  if (p->nmed >= HL_MAX_MED) return;
  int64_t end = t + (int64_t)days * DAY;
  if (end > s->to) end = s->to;
  if (end <= t) return;
  hl_med *x = &p->med[p->nmed++];
  x->start = t;
  x->end = end;
  x->code = (uint8_t)m;
  x->reason = (int8_t)reason;
  x->enc = (int16_t)enc;
  if (!s->med_since[m]) s->med_since[m] = t;
  s->med_last[m] = t;
  s->med_reason[m] = (int8_t)reason;
}

static void start_chronic_med(state *s, int enc, int64_t t, int m, int c) {
  if (s->med_since[m]) return;
  prescribe(s, enc, t, m, s->cidx[c], 90);
}

static int record_condition(state *s, int enc, int c, int64_t onset, int64_t abatement) {
  hl_patient *p = s->p;
  if (p->ncond >= HL_MAX_COND) return -1;
  hl_cond *x = &p->cond[p->ncond];
  x->code = (uint8_t)c;
  x->onset = onset;
  x->abatement = abatement;
  x->enc = (int16_t)enc;
  return p->ncond++;
}

static void treat_new(state *s, int enc, int64_t t, int c) {
  switch (c) {
  case HL_C_HYPERTENSION: start_chronic_med(s, enc, t, HL_M_LISINOPRIL, c); break;
  case HL_C_HYPERLIPIDEMIA: start_chronic_med(s, enc, t, HL_M_ATORVASTATIN, c); break;
  case HL_C_DIABETES: start_chronic_med(s, enc, t, HL_M_METFORMIN, c); break;
  case HL_C_ASTHMA:
    start_chronic_med(s, enc, t, HL_M_ALBUTEROL, c);
    start_chronic_med(s, enc, t, HL_M_FLUTICASONE, c);
    break;
  case HL_C_COPD:
    start_chronic_med(s, enc, t, HL_M_TIOTROPIUM, c);
    start_chronic_med(s, enc, t, HL_M_ALBUTEROL, c);
    break;
  case HL_C_DEPRESSION: start_chronic_med(s, enc, t, HL_M_SERTRALINE, c); break;
  case HL_C_CAD:
    start_chronic_med(s, enc, t, HL_M_METOPROLOL, c);
    start_chronic_med(s, enc, t, HL_M_ATORVASTATIN, c);
    break;
  default: break;
  }
}

static double days_on(const state *s, int m, int64_t t) {
  return s->med_since[m] ? (double)(t - s->med_since[m]) / DAY : 0;
}

/* Vitals, following the person's conditions and treatment. */
static void vitals(state *s, int enc, int64_t t, int full) {
  hl_patient *p = s->p;
  hl_rng *r = s->r;
  double age = age_at(p, t);
  if (age >= 3) {
    double sbp, dbp;
    if (age < 18) {
      sbp = 95 + age * 1.2 + hl_rng_normal(r, 0, 6);
      dbp = 58 + age * 0.6 + hl_rng_normal(r, 0, 5);
    } else {
      sbp = 108 + 0.45 * (age - 18) + s->sbp_off + hl_rng_normal(r, 0, 6);
      dbp = 70 + 0.12 * (age - 18) + s->dbp_off + hl_rng_normal(r, 0, 4);
      if (active(s, HL_C_HYPERTENSION, t)) {
        sbp += 26;
        dbp += 12;
        static const int bp_meds[] = {HL_M_LISINOPRIL, HL_M_AMLODIPINE, HL_M_HCTZ, HL_M_METOPROLOL};
        for (int i = 0; i < 4; i++) {
          double d = days_on(s, bp_meds[i], t);
          double eff = d > 28 ? 1 : d / 28;
          sbp -= 11 * eff;
          dbp -= 5 * eff;
        }
      }
      if (age > 60) dbp -= 0.2 * (age - 60);
    }
    if (dbp > sbp - 20) dbp = sbp - 20;
    add_obs(s, enc, t, HL_O_BP_PANEL, sbp, dbp);
  }
  double hr = age < 12 ? 120 - 4 * age : s->hr_base;
  hr += hl_rng_normal(r, 0, 5);
  if (days_on(s, HL_M_METOPROLOL, t) > 7) hr -= 10;
  add_obs(s, enc, t, HL_O_HEART_RATE, hr, 0);
  if (!full) return;
  double h = s->h_adult * height_fraction(age);
  double bmi;
  if (age < 2) {
    bmi = 16.5 + hl_rng_normal(r, 0, 0.6);
  } else if (age < 18) {
    bmi = 15.5 + 0.25 * age + hl_rng_normal(r, 0, 0.7);
    if (active(s, HL_C_OBESITY, t)) bmi += 5.5;
  } else {
    bmi = active(s, HL_C_OBESITY, t) ? s->bmi_obese : s->bmi_lean;
    bmi += hl_rng_normal(r, 0, 0.4);
  }
  double w = bmi * (h / 100) * (h / 100);
  int32_t hs = scaled(h, HL_O_HEIGHT), ws = scaled(w, HL_O_WEIGHT);
  add_obs(s, enc, t, HL_O_HEIGHT, unscale(hs, HL_O_HEIGHT), 0);
  add_obs(s, enc, t, HL_O_WEIGHT, unscale(ws, HL_O_WEIGHT), 0);
  if (age >= 2) {
    double hm = unscale(hs, HL_O_HEIGHT) / 100;
    add_obs(s, enc, t, HL_O_BMI, unscale(ws, HL_O_WEIGHT) / (hm * hm), 0);
  }
}

static void lab_a1c(state *s, int enc, int64_t t) {
  hl_rng *r = s->r;
  double a1c = 5.3 + hl_rng_normal(r, 0, 0.2);
  if (active(s, HL_C_DIABETES, t)) {
    double yrs = (double)(t - s->onset[HL_C_DIABETES]) / YEAR;
    a1c = s->a1c_dm + 0.08 * yrs + hl_rng_normal(r, 0, 0.25);
    double dm = days_on(s, HL_M_METFORMIN, t);
    a1c -= 1.2 * (dm > 90 ? 1 : dm / 90);
    double di = days_on(s, HL_M_INSULIN, t);
    a1c -= 1.3 * (di > 90 ? 1 : di / 90);
  } else if (active(s, HL_C_OBESITY, t)) {
    a1c += 0.3;
  }
  if (a1c < 4.2) a1c = 4.2;
  int32_t a = scaled(a1c, HL_O_HBA1C);
  add_obs(s, enc, t, HL_O_HBA1C, unscale(a, HL_O_HBA1C), 0);
  double glu = 28.7 * unscale(a, HL_O_HBA1C) - 46.7 + hl_rng_normal(r, 0, 10);
  add_obs(s, enc, t, HL_O_GLUCOSE, glu, 0);
  s->last_a1c = t;
  /* Escalation: insulin when HbA1c stays above 8% after six months of metformin. */
  if (unscale(a, HL_O_HBA1C) > 8.0 && days_on(s, HL_M_METFORMIN, t) > 180 && !s->med_since[HL_M_INSULIN])
    prescribe(s, enc, t, HL_M_INSULIN, s->cidx[HL_C_DIABETES], 90);
}

static void lab_lipids(state *s, int enc, int64_t t) {
  hl_rng *r = s->r;
  double tc = active(s, HL_C_HYPERLIPIDEMIA, t) ? s->tc_hld : s->tc_base;
  tc += hl_rng_normal(r, 0, 8);
  double ds = days_on(s, HL_M_ATORVASTATIN, t);
  tc *= 1 - 0.25 * (ds > 60 ? 1 : ds / 60);
  double tg = s->tg + hl_rng_normal(r, 0, 15) + (active(s, HL_C_DIABETES, t) ? 50 : 0);
  double hdl = s->hdl + hl_rng_normal(r, 0, 3);
  int32_t tcs = scaled(tc, HL_O_CHOLESTEROL), tgs = scaled(tg, HL_O_TRIGLYCERIDE),
          hdls = scaled(hdl, HL_O_HDL);
  add_obs(s, enc, t, HL_O_CHOLESTEROL, tcs, 0);
  add_obs(s, enc, t, HL_O_TRIGLYCERIDE, tgs, 0);
  add_obs(s, enc, t, HL_O_HDL, hdls, 0);
  /* Friedewald: LDL = TC - HDL - TG/5. */
  add_obs(s, enc, t, HL_O_LDL, tcs - hdls - tgs / 5.0, 0);
  s->last_lipid = t;
}

static void lab_renal(state *s, int enc, int64_t t) {
  hl_patient *p = s->p;
  double age = age_at(p, t);
  double fsex = p->male ? 1.0 : 0.742;
  double frace = p->race == 1 ? 1.212 : 1.0;
  double scr;
  if (active(s, HL_C_CKD, t)) {
    double yrs = (double)(t - s->onset[HL_C_CKD]) / YEAR;
    double egfr = s->egfr_ckd - 1.5 * yrs + hl_rng_normal(s->r, 0, 2);
    if (egfr < 12) egfr = 12;
    scr = pow(egfr / (175 * pow(age, -0.203) * fsex * frace), -1 / 1.154);
  } else {
    scr = s->scr_base + 0.002 * (age - 18) + hl_rng_normal(s->r, 0, 0.04);
  }
  int32_t sc = scaled(scr, HL_O_CREATININE);
  if (sc < 30) sc = 30;
  double scru = unscale(sc, HL_O_CREATININE);
  add_obs(s, enc, t, HL_O_CREATININE, scru, 0);
  add_obs(s, enc, t, HL_O_EGFR, 175 * pow(scru, -1.154) * pow(age, -0.203) * fsex * frace, 0);
}

static int64_t business_time(hl_rng *r, int64_t t) {
  int64_t day = t - (t % DAY);
  int64_t tod = 8 * 3600 + (int64_t)hl_rng_below(r, 9 * 4) * 900;
  int64_t x = day + tod;
  return x < t ? x + DAY : x;
}

static void do_encounter(state *s, int64_t t, int kind) {
  hl_patient *p = s->p;
  hl_rng *r = s->r;
  if (p->nenc >= HL_MAX_ENC) return;
  double age = age_at(p, t);
  int e = p->nenc;
  hl_enc *E = &p->enc[e];
  int64_t dur;
  switch (kind) {
  case HL_E_EMERGENCY: dur = 7200 + (int64_t)hl_rng_below(r, 4 * 3600); break;
  case HL_E_INPATIENT: dur = (2 + (int64_t)hl_rng_below(r, 5)) * DAY; break;
  default: dur = 900 + 300 * (int64_t)hl_rng_below(r, 4); break;
  }
  if (t + dur >= s->to) return;
  p->nenc++;
  E->start = t;
  E->end = t + dur;
  E->kind = (uint8_t)kind;
  E->reason = -1;
  int hosp = kind == HL_E_EMERGENCY || kind == HL_E_INPATIENT;
  int pr = (int)hl_rng_below(r, HL_ORG_PRACTITIONERS / HL_ORG_FACILITIES);
  E->facility = (uint8_t)(hosp ? 0 : 1);
  E->practitioner = (uint8_t)(pr * HL_ORG_FACILITIES + E->facility);

  int64_t tv = t + 300, tl = t + 600;
  int new_dm = 0;
  /* Conditions whose onset has passed are diagnosed now. */
  for (int c = 0; c < HL_COND_NCHRONIC; c++) {
    if (active(s, c, t) && !diagnosed(s, c)) {
      new_dm |= c == HL_C_DIABETES;
      s->cidx[c] = record_condition(s, e, c, s->onset[c], 0);
      if (s->cidx[c] >= 0) treat_new(s, e, t, c);
    }
  }
  /* The reason for the visit. */
  if (kind == HL_E_SYMPTOM || (kind == HL_E_EMERGENCY && hl_rng_bern(r, 0.4))) {
    int c;
    double u = hl_rng_unif(r);
    if (kind == HL_E_EMERGENCY) c = HL_C_SPRAIN;
    else if (age < 10) c = u < 0.45 ? HL_C_OTITIS : u < 0.8 ? HL_C_PHARYNGITIS : HL_C_BRONCHITIS;
    else c = u < 0.35 ? HL_C_PHARYNGITIS : u < 0.6 ? HL_C_SINUSITIS : u < 0.85 ? HL_C_BRONCHITIS : HL_C_SPRAIN;
    int64_t onset = t - (1 + (int64_t)hl_rng_below(r, 5)) * DAY;
    if (onset < p->birth) onset = p->birth;
    int64_t ab = t + (7 + (int64_t)hl_rng_below(r, 15)) * DAY;
    if (ab > s->to) ab = s->to;
    int ci = record_condition(s, e, c, onset, ab);
    if (ci >= 0) {
      E->reason = (int8_t)ci;
      if (c == HL_C_SPRAIN) prescribe(s, e, t, HL_M_IBUPROFEN, ci, 7);
      else if (c == HL_C_BRONCHITIS) prescribe(s, e, t, HL_M_ACETAMINOPHEN, ci, 5);
      else if (c == HL_C_OTITIS || (c == HL_C_SINUSITIS && hl_rng_bern(r, 0.5)) ||
               (c == HL_C_PHARYNGITIS && hl_rng_bern(r, 0.3)))
        prescribe(s, e, t, HL_M_AMOXICILLIN, ci, 10);
    }
  } else if (kind == HL_E_EMERGENCY || kind == HL_E_INPATIENT) {
    static const int causes[] = {HL_C_ASTHMA, HL_C_COPD, HL_C_CAD, HL_C_CKD, HL_C_DIABETES};
    for (int i = 0; i < 5; i++)
      if (diagnosed(s, causes[i]) && hl_rng_bern(r, 0.6)) {
        E->reason = (int8_t)s->cidx[causes[i]];
        break;
      }
  } else if (kind == HL_E_CHECKUP) {
    for (int c = 0; c < HL_COND_NCHRONIC; c++)
      if (diagnosed(s, c) && c != HL_C_OBESITY) {
        E->reason = (int8_t)s->cidx[c];
        break;
      }
  }

  int full = kind == HL_E_WELLNESS_CHILD || kind == HL_E_WELLNESS_ADULT || kind == HL_E_CHECKUP ||
             kind == HL_E_INPATIENT;
  vitals(s, e, tv, full);

  /* Labs. */
  int dm = diagnosed(s, HL_C_DIABETES), hld = diagnosed(s, HL_C_HYPERLIPIDEMIA);
  int renal = dm || diagnosed(s, HL_C_HYPERTENSION) || diagnosed(s, HL_C_CKD);
  if (age >= 18) {
    if (kind == HL_E_WELLNESS_ADULT) {
      if ((age >= 40 || hld) && t - s->last_lipid > 300 * DAY) lab_lipids(s, e, tl);
      if (age >= 35 || dm || active(s, HL_C_OBESITY, t)) lab_a1c(s, e, tl);
      if (renal) lab_renal(s, e, tl);
    } else if (kind == HL_E_CHECKUP) {
      if (dm && t - s->last_a1c > 80 * DAY) lab_a1c(s, e, tl);
      if (renal) lab_renal(s, e, tl);
      if (hld && t - s->last_lipid > 300 * DAY) lab_lipids(s, e, tl);
    } else if (kind == HL_E_INPATIENT) {
      lab_renal(s, e, tl);
      if (dm) lab_a1c(s, e, tl);
    }
    /* A new diabetes diagnosis is confirmed by an HbA1c at the same visit. */
    if (new_dm && s->last_a1c != tl) lab_a1c(s, e, tl);
  }

  /* Medication adjustments and renewals at planned visits. */
  if (kind == HL_E_CHECKUP || kind == HL_E_WELLNESS_ADULT || kind == HL_E_WELLNESS_CHILD) {
    if (diagnosed(s, HL_C_HYPERTENSION) && p->nobs > 0) {
      const hl_obs *bp = NULL;
      for (int i = p->nobs - 1; i >= 0 && p->obs[i].enc == e; i--)
        if (p->obs[i].code == HL_O_BP_PANEL) bp = &p->obs[i];
      if (bp && bp->v >= 140) {
        int ci = s->cidx[HL_C_HYPERTENSION];
        if (!s->med_since[HL_M_AMLODIPINE] && days_on(s, HL_M_LISINOPRIL, t) > 90)
          prescribe(s, e, t, HL_M_AMLODIPINE, ci, 90);
        else if (!s->med_since[HL_M_HCTZ] && days_on(s, HL_M_AMLODIPINE, t) > 90)
          prescribe(s, e, t, HL_M_HCTZ, ci, 90);
      }
    }
    for (int m = 0; m < HL_MED_N; m++) {
      if (m == HL_M_AMOXICILLIN || m == HL_M_IBUPROFEN || m == HL_M_ACETAMINOPHEN) continue;
      if (s->med_since[m] && s->med_last[m] != t && t - s->med_last[m] > 60 * DAY)
        prescribe(s, e, t, m, s->med_reason[m], 90);
    }
  }

  /* Screening procedures at wellness visits. */
  if (kind == HL_E_WELLNESS_ADULT && p->nproc < HL_MAX_PROC) {
    if (age >= 50 && age < 76 && (!s->last_colo || t - s->last_colo > (int64_t)(10 * YEAR)) &&
        hl_rng_bern(r, 0.35)) {
      hl_proc *x = &p->proc[p->nproc++];
      x->code = HL_P_COLONOSCOPY;
      x->start = tl;
      x->end = tl + 1800 < E->end ? tl + 1800 : E->end;
      x->enc = (int16_t)e;
      s->last_colo = t;
    }
    if (!p->male && age >= 50 && age < 75 && p->nproc < HL_MAX_PROC &&
        (!s->last_mammo || t - s->last_mammo > (int64_t)(1.9 * YEAR)) && hl_rng_bern(r, 0.7)) {
      hl_proc *x = &p->proc[p->nproc++];
      x->code = HL_P_MAMMOGRAPHY;
      x->start = tl;
      x->end = tl + 900 < E->end ? tl + 900 : E->end;
      x->enc = (int16_t)e;
      s->last_mammo = t;
    }
  }
  /* Seasonal influenza vaccine, September to March, from six months of age. */
  if (kind != HL_E_INPATIENT && kind != HL_E_EMERGENCY && age >= 0.5 && p->nimm < HL_MAX_IMM) {
    int64_t days = t / DAY;
    /* civil month and year */
    int64_t z = days + 719468, era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097, yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100), mp = (5 * doy + 2) / 153;
    int month = (int)(mp < 10 ? mp + 3 : mp - 9);
    int year = (int)(yoe + era * 400 + (month <= 2));
    int season = month >= 9 ? year : month <= 3 ? year - 1 : -1;
    if (season >= 0 && season != s->flu_season && hl_rng_bern(r, age >= 65 ? 0.75 : 0.5)) {
      hl_imm *x = &p->imm[p->nimm++];
      x->t = tv;
      x->code = hl_rng_bern(r, 0.8) ? HL_V_FLU_PF : HL_V_FLU;
      x->enc = (int16_t)e;
      s->flu_season = season;
    }
  }
}

static double wellness_interval_years(double age) {
  if (age < 0.25) return 0.16;
  if (age < 1.5) return 0.25;
  if (age < 3) return 0.5;
  if (age < 18) return 1;
  if (age < 50) return 2;
  return 1;
}

static int nchronic(const state *s) {
  int n = 0;
  for (int c = 0; c < HL_COND_NCHRONIC; c++) n += diagnosed(s, c) && c != HL_C_OBESITY;
  return n;
}

void hl_patient_generate(const hl_synth_params *par, uint64_t k, hl_patient *p) {
  hl_rng rng;
  hl_rng_seed(&rng, par->seed, k, 0);
  hl_rng *r = &rng;
  state st;
  memset(&st, 0, sizeof(st));
  st.p = p;
  st.r = r;
  st.par = par;
  p->k = k;
  p->nenc = p->ncond = p->nobs = p->nmed = p->nproc = p->nimm = 0;
  p->org = (int)hl_rng_below(r, (uint64_t)par->orgs);

  /* Age at the end of the period from the census pyramid; sex by band. */
  size_t b = hl_rng_weighted(r, &hl_age_bands[0].share, hl_age_nbands, sizeof(hl_age_bands[0]));
  const hl_age_band *band = &hl_age_bands[b];
  double age_end = band->lo + hl_rng_unif(r) * (band->hi - band->lo + 1);
  p->male = hl_rng_bern(r, band->male);
  p->birth = par->end - (int64_t)(age_end * YEAR);
  p->birth -= p->birth % DAY; /* birthDate is a date: life starts at its midnight */
  p->race = (int)hl_rng_weighted(r, &hl_races[0].share, hl_nraces, sizeof(hl_races[0]));
  p->hispanic = hl_rng_bern(r, hl_hispanic_share / 100);
  if (p->male) {
    p->given = pick_name(r, hl_male_names, hl_nmale_names);
    p->given2 = pick_name(r, hl_male_names, hl_nmale_names);
  } else {
    p->given = pick_name(r, hl_female_names, hl_nfemale_names);
    p->given2 = pick_name(r, hl_female_names, hl_nfemale_names);
  }
  p->family = pick_name(r, hl_surnames, hl_nsurnames);
  p->prefix = age_end < 18 ? NULL : p->male ? "Mr." : hl_rng_bern(r, 0.6) ? "Mrs." : "Ms.";
  p->state = (int)hl_rng_weighted(r, &hl_states[0].pop, hl_nstates, sizeof(hl_states[0]));
  p->zip = hl_states[p->state].zip3 * 100 + (int)hl_rng_below(r, 100);
  p->house = 1 + (int)hl_rng_below(r, 9999);
  p->street = hl_streets[hl_rng_below(r, hl_nstreets)];
  snprintf(p->phone, sizeof(p->phone), "555-%03d-%04d", (int)hl_rng_below(r, 1000),
           (int)hl_rng_below(r, 10000));
  p->ssn_area = 1 + (int)hl_rng_below(r, 665);
  p->ssn_group = 1 + (int)hl_rng_below(r, 99);
  p->ssn_serial = 1 + (int)hl_rng_below(r, 9999);

  /* Physiology. */
  st.h_adult = p->male ? hl_rng_normal(r, 176, 7) : hl_rng_normal(r, 162.5, 6.5);
  st.bmi_lean = hl_rng_normal(r, 25, 2.5);
  if (st.bmi_lean < 18.8) st.bmi_lean = 18.8;
  if (st.bmi_lean > 29.3) st.bmi_lean = 29.3;
  st.bmi_obese = 30.5 + hl_rng_exp(r, 4);
  st.sbp_off = hl_rng_normal(r, 0, 7);
  st.dbp_off = hl_rng_normal(r, 0, 4);
  st.hr_base = hl_rng_normal(r, 72, 7);
  st.a1c_dm = hl_rng_normal(r, 8.3, 0.7);
  st.tc_base = hl_rng_normal(r, 182, 22);
  st.tc_hld = hl_rng_normal(r, 245, 20);
  st.hdl = p->male ? hl_rng_normal(r, 47, 7) : hl_rng_normal(r, 58, 9);
  st.tg = hl_rng_normal(r, 115, 30);
  st.scr_base = p->male ? hl_rng_normal(r, 0.98, 0.1) : hl_rng_normal(r, 0.78, 0.08);
  st.egfr_ckd = hl_rng_normal(r, 50, 6);
  st.flu_season = -1;
  for (int c = 0; c < HL_COND_NCHRONIC; c++) st.cidx[c] = -1;

  /* Chronic condition onsets, in an order that lets comorbidity raise risk. */
  static const int order[] = {HL_C_OBESITY, HL_C_ASTHMA, HL_C_DEPRESSION, HL_C_HYPERTENSION,
                              HL_C_HYPERLIPIDEMIA, HL_C_DIABETES, HL_C_COPD, HL_C_CKD, HL_C_CAD};
  double smoker = hl_rng_bern(r, 0.2) ? 1 : 0;
  for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
    int c = order[i];
    const hl_cond_model *m = &hl_cond_models[c];
    double mult = 1;
    int ob = st.onset[HL_C_OBESITY] != 0, ht = st.onset[HL_C_HYPERTENSION] != 0,
        dmx = st.onset[HL_C_DIABETES] != 0, hl = st.onset[HL_C_HYPERLIPIDEMIA] != 0;
    switch (c) {
    case HL_C_HYPERTENSION: mult = ob ? 1.45 : 0.85; break;
    case HL_C_HYPERLIPIDEMIA: mult = ob ? 1.3 : 0.9; break;
    case HL_C_DIABETES: mult = ob ? 2.2 : 0.5; break;
    case HL_C_COPD: mult = smoker ? 3.2 : 0.45; break;
    case HL_C_CKD: mult = (dmx ? 2.2 : 0.8) * (ht ? 1.4 : 0.7); break;
    case HL_C_CAD: mult = (ht ? 1.4 : 0.7) * (hl ? 1.4 : 0.8) * (dmx ? 1.5 : 0.9) * (smoker ? 1.6 : 0.9); break;
    default: break;
    }
    double pm = m->p_max * mult;
    if (pm > 0.95) pm = 0.95;
    double u = hl_rng_unif(r);
    if (u >= pm) continue;
    double q = u / pm;
    if (q < 1e-6) q = 1e-6;
    double onset_age = m->a50 + m->s * log(q / (1 - q));
    if (onset_age < m->min_age) onset_age = m->min_age + hl_rng_unif(r);
    int64_t t = p->birth + (int64_t)(onset_age * YEAR);
    if (t < par->end) st.onset[c] = t + (t == 0);
  }

  /* Mortality, year by year over the period, raised by chronic disease. */
  int64_t from = p->birth > par->start ? p->birth : par->start;
  p->death = 0;
  for (int64_t t = from; t < par->end; t += (int64_t)YEAR) {
    double mult = 1;
    if (active(&st, HL_C_CAD, t)) mult *= 1.8;
    if (active(&st, HL_C_COPD, t)) mult *= 1.9;
    if (active(&st, HL_C_CKD, t)) mult *= 1.5;
    if (active(&st, HL_C_DIABETES, t)) mult *= 1.4;
    int64_t span = par->end - t < (int64_t)YEAR ? par->end - t : (int64_t)YEAR;
    double q = mortality(age_at(p, t)) * mult * (double)span / YEAR;
    if (hl_rng_bern(r, q)) {
      p->death = t + (int64_t)(hl_rng_unif(r) * (double)span);
      p->death -= p->death % 60;
      if (p->death <= from) p->death = from + 60;
      break;
    }
  }
  st.to = p->death ? p->death : par->end;
  for (int c = 0; c < HL_COND_NCHRONIC; c++)
    if (st.onset[c] >= st.to) st.onset[c] = 0;

  /* Encounters: a discrete-event loop over the planned and unplanned visits. */
  int64_t t = from;
  double a0 = age_at(p, t);
  int64_t next_well = t + (int64_t)(hl_rng_unif(r) * wellness_interval_years(a0) * YEAR);
  int64_t next_sym = t + (int64_t)(hl_rng_exp(r, 1.0 / (a0 < 10 ? 0.9 : 0.45)) * YEAR);
  int64_t next_er = t + (int64_t)(hl_rng_exp(r, 1.0 / 0.06) * YEAR);
  int64_t next_ip = t + (int64_t)(hl_rng_exp(r, 1.0 / 0.01) * YEAR);
  int64_t next_chk = INT64_MAX;
  int64_t busy_until = t;
  while (p->nenc < HL_MAX_ENC) {
    int64_t tn = next_well;
    int kind = -1;
    if (next_sym < tn) tn = next_sym;
    if (next_er < tn) tn = next_er;
    if (next_ip < tn) tn = next_ip;
    if (next_chk < tn) tn = next_chk;
    if (tn >= st.to) break;
    int n = nchronic(&st);
    double age = age_at(p, tn);
    if (tn == next_well) {
      kind = age < 18 ? HL_E_WELLNESS_CHILD : HL_E_WELLNESS_ADULT;
      next_well = tn + (int64_t)(wellness_interval_years(age) * YEAR * hl_rng_range(r, 0.9, 1.1));
    } else if (tn == next_sym) {
      kind = HL_E_SYMPTOM;
      next_sym = tn + (int64_t)(hl_rng_exp(r, 1.0 / ((age < 10 ? 0.9 : 0.45) + 0.1 * n)) * YEAR);
    } else if (tn == next_er) {
      kind = HL_E_EMERGENCY;
      next_er = tn + (int64_t)(hl_rng_exp(r, 1.0 / (0.06 + 0.05 * n)) * YEAR);
    } else if (tn == next_ip) {
      kind = HL_E_INPATIENT;
      double rate = 0.01 + 0.015 * n + (age > 70 ? 0.03 : 0);
      next_ip = tn + (int64_t)(hl_rng_exp(r, 1.0 / rate) * YEAR);
    } else {
      kind = HL_E_CHECKUP;
      next_chk = INT64_MAX;
    }
    int64_t when = kind == HL_E_EMERGENCY ? tn - tn % 60 : business_time(r, tn);
    if (when < busy_until) when = busy_until + 3600;
    if (when <= p->birth) when = p->birth + 3600;
    if (when >= st.to) break;
    int before = p->nenc;
    do_encounter(&st, when, kind);
    if (p->nenc > before) busy_until = p->enc[p->nenc - 1].end;
    /* Chronic disease brings follow-up visits: every 6, 4 or 3 months. */
    n = nchronic(&st);
    if (n > 0 && next_chk == INT64_MAX) {
      double months = n == 1 ? 6 : n == 2 ? 4 : 3;
      next_chk = when + (int64_t)(months / 12 * YEAR * hl_rng_range(r, 0.85, 1.15));
    }
  }
}

void hl_org_generate(const hl_synth_params *par, int org, hl_org_info *o) {
  hl_rng rng;
  hl_rng_seed(&rng, par->seed, (uint64_t)org, 0x0a9);
  hl_rng *r = &rng;
  o->state = (int)hl_rng_weighted(r, &hl_states[0].pop, hl_nstates, sizeof(hl_states[0]));
  o->zip = hl_states[o->state].zip3 * 100 + (int)hl_rng_below(r, 100);
  o->house = 1 + (int)hl_rng_below(r, 999);
  o->street = hl_streets[hl_rng_below(r, hl_nstreets)];
  int end_year = 1970 + (int)((double)par->end / YEAR);
  for (int i = 0; i < HL_ORG_PRACTITIONERS; i++) {
    o->prac_male[i] = hl_rng_bern(r, 0.6);
    o->prac_given[i] = o->prac_male[i] ? pick_name(r, hl_male_names, hl_nmale_names)
                                       : pick_name(r, hl_female_names, hl_nfemale_names);
    o->prac_family[i] = pick_name(r, hl_surnames, hl_nsurnames);
    o->prac_birth_year[i] = end_year - 30 - (int)hl_rng_below(r, 35);
    o->prac_facility[i] = i % HL_ORG_FACILITIES;
  }
}
