/*
 * Unit tests of hl-synth's model, writers and options: determinism, time
 * consistency, treatment response, and the statistical checks of
 * docs/synth.md (age/sex shares and prevalence for 10,000 patients).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fhir.h"
#include "hl/error.h"
#include "hl_test.h"
#include "model.h"
#include "omop.h"
#include "opts.h"
#include "sb.h"

HL_TEST_SUITE(synth);

static hl_synth_params params(void) {
  hl_synth_params p = {.seed = 42, .orgs = 3};
  hl_synth_parse_date("2014-01-01", &p.start);
  hl_synth_parse_date("2024-01-01", &p.end);
  return p;
}

Test(synth, sb_formats) {
  hl_sb b = {0};
  hl_sb_fixed(&b, 725, 1);
  hl_sb_putc(&b, ' ');
  hl_sb_fixed(&b, -5, 2);
  hl_sb_putc(&b, ' ');
  hl_sb_i64(&b, -1234567890123LL);
  hl_sb_putc(&b, ' ');
  hl_sb_fhir_dt(&b, 951782400 + 3600 * 9 + 61); /* 2000-02-29 */
  hl_sb_putc(&b, ' ');
  hl_sb_json_str(&b, "a\"b\\c\n\x01");
  hl_sb_putc(&b, ' ');
  hl_sb_csv_str(&b, "x,\"y\"");
  hl_sb_putc(&b, 0);
  cr_assert_str_eq(b.d, "72.5 -0.05 -1234567890123 2000-02-29T09:01:01Z \"a\\\"b\\\\c\\u000a\\u0001\" \"x,\"\"y\"\"\"");
  hl_sb_free(&b);
}

Test(synth, dates_roundtrip) {
  for (int64_t d = -30000; d < 60000; d += 7) {
    int y, m, dd;
    hl_civil(d, &y, &m, &dd);
    cr_assert_eq(hl_days_from_civil(y, m, dd), d);
  }
  int64_t t;
  cr_assert_eq(hl_synth_parse_date("2023-02-29", &t), HL_ECONFIG);
  cr_assert_eq(hl_synth_parse_date("2024-02-29", &t), 0);
  cr_assert_eq(hl_synth_parse_date("24-02-29", &t), HL_ECONFIG);
}

Test(synth, patient_deterministic_and_independent_of_n) {
  hl_synth_params p = params();
  hl_patient *a = malloc(sizeof(*a)), *b = malloc(sizeof(*b));
  hl_patient_generate(&p, 17, a);
  hl_patient_generate(&p, 3, b); /* other patients in between change nothing */
  hl_patient_generate(&p, 17, b);
  cr_assert_eq(a->nobs, b->nobs);
  cr_assert_eq(memcmp(a->obs, b->obs, sizeof(hl_obs) * (size_t)a->nobs), 0);
  cr_assert_eq(memcmp(a->enc, b->enc, sizeof(hl_enc) * (size_t)a->nenc), 0);
  cr_assert_eq(a->birth, b->birth);
  p.seed = 43;
  hl_patient_generate(&p, 17, b);
  cr_assert(a->birth != b->birth || a->nenc != b->nenc);
  free(a);
  free(b);
}

Test(synth, time_consistency) {
  hl_synth_params p = params();
  hl_patient *x = malloc(sizeof(*x));
  for (uint64_t k = 0; k < 2000; k++) {
    hl_patient_generate(&p, k, x);
    int64_t last = x->death ? x->death : p.end;
    for (int i = 0; i < x->nenc; i++) {
      cr_assert(x->enc[i].start >= x->birth && x->enc[i].start >= p.start);
      cr_assert(x->enc[i].end > x->enc[i].start && x->enc[i].end <= last);
      if (i) cr_assert(x->enc[i].start >= x->enc[i - 1].end, "encounters overlap");
    }
    for (int i = 0; i < x->nobs; i++) {
      const hl_enc *e = &x->enc[x->obs[i].enc];
      cr_assert(x->obs[i].t >= e->start && x->obs[i].t <= e->end, "observation outside its encounter");
    }
    for (int i = 0; i < x->ncond; i++) {
      cr_assert(x->cond[i].onset >= x->birth);
      cr_assert(x->cond[i].onset <= x->enc[x->cond[i].enc].end);
      if (x->cond[i].abatement) cr_assert(x->cond[i].abatement <= last);
    }
    for (int i = 0; i < x->nmed; i++) {
      cr_assert(x->med[i].start >= x->enc[x->med[i].enc].start && x->med[i].start <= x->enc[x->med[i].enc].end);
      cr_assert(x->med[i].end <= last && x->med[i].end > x->med[i].start);
    }
    for (int i = 0; i < x->nproc; i++)
      cr_assert(x->proc[i].start >= x->enc[x->proc[i].enc].start && x->proc[i].end <= x->enc[x->proc[i].enc].end);
    for (int i = 0; i < x->nimm; i++)
      cr_assert(x->imm[i].t >= x->enc[x->imm[i].enc].start && x->imm[i].t <= x->enc[x->imm[i].enc].end);
    if (x->death) cr_assert(x->death > x->birth && x->death < p.end);
  }
  free(x);
}

/* HbA1c of diabetic patients falls after metformin starts. */
Test(synth, hba1c_falls_after_metformin) {
  hl_synth_params p = params();
  hl_patient *x = malloc(sizeof(*x));
  double before = 0, after = 0;
  int nb = 0, na = 0;
  for (uint64_t k = 0; k < 4000; k++) {
    hl_patient_generate(&p, k, x);
    int64_t met = 0, onset = 0;
    for (int i = 0; i < x->nmed && !met; i++)
      if (x->med[i].code == HL_M_METFORMIN) met = x->med[i].start;
    for (int i = 0; i < x->ncond; i++)
      if (x->cond[i].code == HL_C_DIABETES) onset = x->cond[i].onset;
    if (!met || !onset) continue;
    for (int i = 0; i < x->nobs; i++) {
      if (x->obs[i].code != HL_O_HBA1C) continue;
      if (x->obs[i].t >= onset && x->obs[i].t <= met + 3600) {
        before += x->obs[i].v / 10.0;
        nb++;
      } else if (x->obs[i].t > met + 120 * 86400LL) {
        after += x->obs[i].v / 10.0;
        na++;
      }
    }
  }
  free(x);
  cr_assert(nb > 20 && na > 20, "too few diabetic patients (%d, %d)", nb, na);
  before /= nb;
  after /= na;
  cr_assert(before > 7.5, "HbA1c at diagnosis %.2f", before);
  cr_assert(after < before - 0.6, "HbA1c %.2f -> %.2f", before, after);
}

/* The documented ranges of docs/synth.md, for 10,000 patients. */
Test(synth, statistics_10000, .timeout = 120) {
  hl_synth_params p = params();
  p.orgs = 1;
  hl_patient *x = malloc(sizeof(*x));
  const int N = 10000;
  int male = 0, kids = 0, seniors = 0, alive = 0, hisp = 0, white = 0, black = 0;
  int adults = 0, a40 = 0, a65 = 0, deaths = 0;
  int has[HL_COND_N] = {0}, has65[HL_COND_N] = {0}, states_ca = 0;
  for (int k = 0; k < N; k++) {
    hl_patient_generate(&p, (uint64_t)k, x);
    double age = (double)(p.end - x->birth) / (365.2425 * 86400);
    male += x->male;
    hisp += x->hispanic;
    white += x->race == 0;
    black += x->race == 1;
    kids += age < 18;
    seniors += age >= 65;
    states_ca += !strcmp(hl_states[x->state].abbr, "CA");
    if (x->death) {
      deaths++;
      continue;
    }
    alive++;
    int seen[HL_COND_N] = {0};
    for (int i = 0; i < x->ncond; i++) seen[x->cond[i].code] = 1;
    if (age >= 18) {
      adults++;
      for (int c = 0; c < HL_COND_NCHRONIC; c++) has[c] += seen[c];
    }
    if (age >= 40) a40++;
    if (age >= 65) {
      a65++;
      for (int c = 0; c < HL_COND_NCHRONIC; c++) has65[c] += seen[c];
    }
  }
  free(x);
#define SHARE(a, b) ((double)(a) / (double)(b))
#define IN(v, lo, hi) cr_assert((v) >= (lo) && (v) <= (hi), #v " = %.3f not in [%.3f, %.3f]", (v), (double)(lo), (double)(hi))
  IN(SHARE(male, N), 0.47, 0.52);
  IN(SHARE(kids, N), 0.19, 0.25);
  IN(SHARE(seniors, N), 0.14, 0.20);
  IN(SHARE(hisp, N), 0.16, 0.215);
  IN(SHARE(white, N), 0.585, 0.645);
  IN(SHARE(black, N), 0.10, 0.145);
  IN(SHARE(states_ca, N), 0.10, 0.14);
  IN(SHARE(deaths, N), 0.04, 0.12);
  /* Diagnosed prevalence among living adults (18+) and seniors (65+). */
  IN(SHARE(has[HL_C_HYPERTENSION], adults), 0.25, 0.45);
  IN(SHARE(has65[HL_C_HYPERTENSION], a65), 0.50, 0.80);
  IN(SHARE(has[HL_C_DIABETES], adults), 0.06, 0.15);
  IN(SHARE(has65[HL_C_DIABETES], a65), 0.15, 0.32);
  IN(SHARE(has[HL_C_HYPERLIPIDEMIA], adults), 0.18, 0.38);
  IN(SHARE(has[HL_C_OBESITY], adults), 0.30, 0.45);
  IN(SHARE(has[HL_C_ASTHMA], adults), 0.05, 0.11);
  IN(SHARE(has[HL_C_COPD], adults), 0.02, 0.08);
  IN(SHARE(has[HL_C_CKD], adults), 0.02, 0.09);
  IN(SHARE(has[HL_C_CAD], adults), 0.02, 0.09);
  IN(SHARE(has[HL_C_DEPRESSION], adults), 0.05, 0.11);
  (void)a40;
}

Test(synth, options) {
  hl_synth_opts o;
  char err[256];
  char *ok[] = {"hl-synth", "--patients", "10", "--out=/tmp/x", "--orgs", "3", "--gzip", NULL};
  cr_assert_eq(hl_synth_opts_parse(7, ok, &o, err, sizeof(err)), 0, "%s", err);
  cr_assert_eq(o.patients, 10);
  cr_assert_eq(o.orgs, 3);
  cr_assert_eq(o.gzip, 1);
  char *bad1[] = {"hl-synth", "--patients", "-1", "--out", "/tmp/x", NULL};
  cr_assert_eq(hl_synth_opts_parse(5, bad1, &o, err, sizeof(err)), HL_ECONFIG);
  cr_assert(strstr(err, "--patients"));
  char *bad2[] = {"hl-synth", "--out", "/tmp/x", "--start", "2020-01-01", "--end", "2019-01-01", NULL};
  cr_assert_eq(hl_synth_opts_parse(7, bad2, &o, err, sizeof(err)), HL_ECONFIG);
  char *bad3[] = {"hl-synth", "--out", "/tmp/x", "--format", "xml", NULL};
  cr_assert_eq(hl_synth_opts_parse(5, bad3, &o, err, sizeof(err)), HL_ECONFIG);
  char *bad4[] = {"hl-synth", "--patients", "5", NULL};
  cr_assert_eq(hl_synth_opts_parse(3, bad4, &o, err, sizeof(err)), HL_ECONFIG);
  cr_assert(strstr(err, "--out"));
  char *bad5[] = {"hl-synth", "--out", "/x", "--orgs", "0", NULL};
  cr_assert_eq(hl_synth_opts_parse(5, bad5, &o, err, sizeof(err)), HL_ECONFIG);
  char *v[] = {"hl-synth", "verify", "--fhir", "a", "--omop", "b", NULL};
  cr_assert_eq(hl_synth_opts_parse(6, v, &o, err, sizeof(err)), 0, "%s", err);
  cr_assert_eq(o.command, HL_SYNTH_VERIFY);
  cr_assert_str_eq(o.verify_omop, "b");
}

/* The writers produce one NDJSON line per resource, and BP panels two measurement rows. */
Test(synth, writers_line_counts) {
  hl_synth_params p = params();
  hl_patient *x = malloc(sizeof(*x));
  hl_sb out[HL_S_ALL];
  memset(out, 0, sizeof(out));
  uint64_t counts[HL_S_ALL] = {0};
  hl_patient_generate(&p, 5, x);
  hl_fhir_write_patient(&p, x, 0, out, counts);
  hl_omop_write_patient(&p, x, out, counts);
  for (int s = 0; s < HL_S_N; s++) {
    uint64_t lines = 0;
    for (size_t i = 0; i < out[s].len; i++) lines += out[s].d[i] == '\n';
    cr_assert_eq(lines, counts[s], "%s: %llu lines, %llu counted", hl_stream_names[s],
                 (unsigned long long)lines, (unsigned long long)counts[s]);
  }
  int bp = 0;
  for (int i = 0; i < x->nobs; i++) bp += x->obs[i].code == HL_O_BP_PANEL;
  cr_assert_eq(counts[HL_S_MEASUREMENT], (uint64_t)(x->nobs + bp));
  cr_assert_eq(counts[HL_S_OBSERVATION], (uint64_t)x->nobs);
  for (int s = 0; s < HL_S_ALL; s++) hl_sb_free(&out[s]);
  free(x);
}
