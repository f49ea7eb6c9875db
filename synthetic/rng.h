/*
 * Small, fast, deterministic random numbers for hl-synth.
 *
 * xoshiro256** seeded through splitmix64. Every patient gets its own
 * generator seeded from (seed, patient index, stream), so patient k is the
 * same whatever the number of patients or threads.
 */
#ifndef HL_SYNTH_RNG_H
#define HL_SYNTH_RNG_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

typedef struct hl_rng {
  uint64_t s[4];
} hl_rng;

static inline uint64_t hl_splitmix64(uint64_t *x) {
  uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

/* A well-mixed 64-bit hash of three words; used for seeds and ids. */
static inline uint64_t hl_mix3(uint64_t a, uint64_t b, uint64_t c) {
  uint64_t x = a;
  uint64_t h = hl_splitmix64(&x);
  x = h ^ (b * 0xd6e8feb86659fd93ULL);
  h = hl_splitmix64(&x);
  x = h ^ (c * 0x9fb21c651e98df25ULL);
  return hl_splitmix64(&x);
}

static inline void hl_rng_seed(hl_rng *r, uint64_t seed, uint64_t k, uint64_t stream) {
  uint64_t x = hl_mix3(seed, k, stream);
  for (int i = 0; i < 4; i++) r->s[i] = hl_splitmix64(&x);
}

static inline uint64_t hl_rng_next(hl_rng *r) {
  uint64_t *s = r->s;
  uint64_t v = s[1] * 5;
  uint64_t result = ((v << 7) | (v >> 57)) * 9;
  uint64_t t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = (s[3] << 45) | (s[3] >> 19);
  return result;
}

/* Uniform in [0, 1). */
static inline double hl_rng_unif(hl_rng *r) {
  return (double)(hl_rng_next(r) >> 11) * (1.0 / 9007199254740992.0);
}

/* Uniform integer in [0, n), n > 0. */
static inline uint64_t hl_rng_below(hl_rng *r, uint64_t n) {
  return (uint64_t)(hl_rng_unif(r) * (double)n) % n;
}

/* Uniform in [a, b). */
static inline double hl_rng_range(hl_rng *r, double a, double b) {
  return a + (b - a) * hl_rng_unif(r);
}

static inline int hl_rng_bern(hl_rng *r, double p) { return hl_rng_unif(r) < p; }

/* Normal(mu, sd) by Box-Muller (one value per call; deterministic). */
static inline double hl_rng_normal(hl_rng *r, double mu, double sd) {
  double u1 = hl_rng_unif(r);
  double u2 = hl_rng_unif(r);
  if (u1 < 1e-300) u1 = 1e-300;
  return mu + sd * sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

/* Exponential with the given mean. */
static inline double hl_rng_exp(hl_rng *r, double mean) {
  double u = hl_rng_unif(r);
  return -mean * log(1.0 - u);
}

/* Index drawn from n non-negative weights (their sum must be > 0). */
static inline size_t hl_rng_weighted(hl_rng *r, const double *w, size_t n, size_t stride) {
  double total = 0;
  for (size_t i = 0; i < n; i++) total += *(const double *)((const char *)w + i * stride);
  double x = hl_rng_unif(r) * total;
  for (size_t i = 0; i < n; i++) {
    x -= *(const double *)((const char *)w + i * stride);
    if (x < 0) return i;
  }
  return n - 1;
}

#endif
