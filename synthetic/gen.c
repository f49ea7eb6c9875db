/* The generator driver: see gen.h. */
#include "gen.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fhir.h"
#include "hl/error.h"
#include "hl/log.h"
#include "model.h"
#include "omop.h"
#include "out.h"

#define CHUNK 16

typedef struct seg {
  size_t off[HL_S_ALL], len[HL_S_ALL];
  uint64_t lines[HL_S_ALL];
  int org;
  char id[37];
} seg;

typedef struct chunk {
  int state;            /* 0 free, 1 claimed, 2 ready */
  uint64_t index, first, n;
  hl_sb buf[HL_S_ALL];
  seg segs[CHUNK];
  int err;
} chunk;

typedef struct gen {
  const hl_synth_opts *o;
  hl_synth_params par;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  chunk *ring;
  size_t nring;
  uint64_t nchunks, next;
  uint64_t consumed; /* chunks the writer has taken out of the ring, in order */
  uint64_t stall;    /* test hook: the worker that claims chunk stall-1 pauses (0: none) */
  int stop;
} gen;

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void build_chunk(gen *g, chunk *c, hl_patient *p) {
  for (int s = 0; s < HL_S_ALL; s++) c->buf[s].len = 0;
  c->err = 0;
  uint64_t counts[HL_S_ALL];
  for (uint64_t i = 0; i < c->n; i++) {
    seg *sg = &c->segs[i];
    hl_patient_generate(&g->par, c->first + i, p);
    sg->org = p->org;
    hl_synth_uuid(g->par.seed, HL_U_PATIENT, p->k, 0, sg->id);
    for (int s = 0; s < HL_S_ALL; s++) sg->off[s] = c->buf[s].len;
    memset(counts, 0, sizeof(counts));
    hl_fhir_write_patient(&g->par, p, g->o->bundle, c->buf, counts);
    if (g->o->omop) hl_omop_write_patient(&g->par, p, c->buf, counts);
    for (int s = 0; s < HL_S_ALL; s++) {
      sg->len[s] = c->buf[s].len - sg->off[s];
      sg->lines[s] = counts[s];
    }
  }
  for (int s = 0; s < HL_S_ALL; s++)
    if (c->buf[s].err) c->err = c->buf[s].err;
}

static void *worker(void *arg) {
  gen *g = arg;
  hl_patient *p = malloc(sizeof(*p));
  pthread_mutex_lock(&g->mu);
  if (!p) {
    g->stop = -ENOMEM;
    pthread_cond_broadcast(&g->cv);
  }
  while (!g->stop && g->next < g->nchunks) {
    uint64_t ci = g->next++;
    chunk *c = &g->ring[ci % g->nring];
    if (g->stall && ci == g->stall - 1) {
      pthread_mutex_unlock(&g->mu);
      usleep(300 * 1000);
      pthread_mutex_lock(&g->mu);
    }
    /* Chunk ci owns its slot only once the writer has taken out chunk
     * ci - nring, the slot's previous occupant. Waiting for the slot to be
     * merely free is not enough: a worker descheduled here could find the
     * slot taken by chunk ci + nring, which another worker claimed later,
     * and the writer, waiting for ci, would wait forever. */
    while (!g->stop && ci >= g->consumed + g->nring) pthread_cond_wait(&g->cv, &g->mu);
    if (g->stop) break;
    c->state = 1;
    c->index = ci;
    c->first = ci * CHUNK;
    c->n = g->o->patients - c->first < CHUNK ? g->o->patients - c->first : CHUNK;
    pthread_mutex_unlock(&g->mu);
    build_chunk(g, c, p);
    pthread_mutex_lock(&g->mu);
    c->state = 2;
    pthread_cond_broadcast(&g->cv);
  }
  pthread_mutex_unlock(&g->mu);
  free(p);
  return NULL;
}

static int dir_has_orgs(const char *path, char *err, size_t errlen) {
  struct stat sb;
  if (stat(path, &sb) != 0) {
    if (errno == ENOENT) return 0;
    snprintf(err, errlen, "%s: %s", path, strerror(errno));
    return HL_ECONFIG;
  }
  if (!S_ISDIR(sb.st_mode)) {
    snprintf(err, errlen, "%s: not a directory", path);
    return HL_ECONFIG;
  }
  if (access(path, W_OK | X_OK) != 0) {
    snprintf(err, errlen, "%s: not writable: %s", path, strerror(errno));
    return HL_ECONFIG;
  }
  DIR *d = opendir(path);
  if (!d) {
    snprintf(err, errlen, "%s: %s", path, strerror(errno));
    return HL_ECONFIG;
  }
  struct dirent *e;
  int found = 0;
  while ((e = readdir(d)))
    if (!strncmp(e->d_name, "org=", 4)) found = 1;
  closedir(d);
  if (found) {
    snprintf(err, errlen, "%s already holds org=* output; use an empty directory", path);
    return HL_ECONFIG;
  }
  return 0;
}

static int mkdirs(const char *path, char *err, size_t errlen) {
  char tmp[4096];
  snprintf(tmp, sizeof(tmp), "%s", path);
  size_t n = strlen(tmp);
  for (size_t i = 1; i <= n; i++) {
    if (tmp[i] == '/' || tmp[i] == 0) {
      char c = tmp[i];
      tmp[i] = 0;
      if (mkdir(tmp, 0777) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "%s: cannot create: %s", tmp, strerror(errno));
        return HL_ECONFIG;
      }
      tmp[i] = c;
    }
  }
  return 0;
}

int hl_gen_check_dirs(const hl_synth_opts *o, char *err, size_t errlen) {
  int rc = dir_has_orgs(o->out, err, errlen);
  if (!rc && o->omop) rc = dir_has_orgs(o->omop, err, errlen);
  if (rc) return rc;
  /* Open files: at most one per stream and organization at a time. */
  struct rlimit rl;
  rlim_t need = (rlim_t)o->orgs * HL_S_N + 32;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < need) {
    rlim_t want = need < rl.rlim_max ? need : rl.rlim_max;
    rl.rlim_cur = want;
    setrlimit(RLIMIT_NOFILE, &rl);
    if (want < need) {
      snprintf(err, errlen, "--orgs %d needs %llu open files; the limit is %llu", o->orgs,
               (unsigned long long)need, (unsigned long long)want);
      return HL_ECONFIG;
    }
  }
  rc = mkdirs(o->out, err, errlen);
  if (!rc && o->omop) rc = mkdirs(o->omop, err, errlen);
  if (rc) return rc;
  if (access(o->out, W_OK | X_OK) != 0 || (o->omop && access(o->omop, W_OK | X_OK) != 0)) {
    snprintf(err, errlen, "output directory not writable: %s", strerror(errno));
    return HL_ECONFIG;
  }
  return 0;
}

static void progress(const hl_synth_opts *o, uint64_t done, double t0, uint64_t bytes) {
  double el = now() - t0;
  double frac = o->patients ? (double)done / (double)o->patients : 1;
  char bar[41];
  int fill = (int)(frac * 40);
  for (int i = 0; i < 40; i++) bar[i] = i < fill ? '#' : '.';
  bar[40] = 0;
  fprintf(stderr, "\r[%s] %5.1f%% %llu/%llu patients %.0f/s %.1f MB/s ", bar, frac * 100,
          (unsigned long long)done, (unsigned long long)o->patients, el > 0 ? done / el : 0,
          el > 0 ? bytes / el / 1e6 : 0);
}

static int write_orgs(gen *g, hl_out *out, hl_gen_stats *st) {
  hl_sb buf[HL_S_ALL];
  memset(buf, 0, sizeof(buf));
  int rc = 0;
  for (int org = 0; org < g->o->orgs && !rc; org++) {
    hl_org_info info;
    uint64_t counts[HL_S_ALL] = {0};
    hl_org_generate(&g->par, org, &info);
    for (int s = 0; s < HL_S_ALL; s++) buf[s].len = 0;
    hl_fhir_write_org(&g->par, org, &info, g->o->bundle, buf, counts);
    if (g->o->omop) hl_omop_write_org(&g->par, org, &info, buf, counts);
    for (int s = 0; s < HL_S_ALL && !rc; s++) {
      if (buf[s].err) rc = buf[s].err;
      else if (s == HL_S_BUNDLE && buf[s].len)
        rc = hl_out_write_file(out, org, "organizations", buf[s].d, buf[s].len);
      else if (s != HL_S_BUNDLE)
        rc = hl_out_write(out, org, s, buf[s].d, buf[s].len, counts[s]);
      st->counts[s] += counts[s];
    }
    if (g->o->bundle) {
      st->counts[HL_S_BUNDLE] -= counts[HL_S_BUNDLE];
    }
  }
  for (int s = 0; s < HL_S_ALL; s++) hl_sb_free(&buf[s]);
  return rc;
}

int hl_gen_run(const hl_synth_opts *o, hl_gen_stats *st, char *err, size_t errlen) {
  gen g;
  memset(&g, 0, sizeof(g));
  memset(st, 0, sizeof(*st));
  g.o = o;
  g.par.seed = o->seed;
  g.par.orgs = o->orgs;
  g.par.start = o->start;
  g.par.end = o->end;
  g.par.version = o->version;
  g.nchunks = (o->patients + CHUNK - 1) / CHUNK;
  g.nring = (size_t)o->threads * 2 + 2;
  /* Test hook (tests/integration/test_synth.sh): HL_SYNTH_TEST_STALL_CHUNK=k
   * pauses the worker that claims chunk k (from 1) before it takes its slot. */
  const char *stall = getenv("HL_SYNTH_TEST_STALL_CHUNK");
  g.stall = stall ? strtoull(stall, NULL, 10) : 0;
  pthread_mutex_init(&g.mu, NULL);
  pthread_cond_init(&g.cv, NULL);
  hl_out *out = NULL;
  pthread_t *th = NULL;
  int nth = 0, rc;
  double t0 = now(), last = 0;
  int show = o->progress == 1 || (o->progress == -1 && isatty(2));

  hl_out_opts oo = {.fhir_dir = o->out, .omop_dir = o->omop, .orgs = o->orgs, .split = o->split,
                    .gzip = o->gzip, .bundle = o->bundle};
  if ((rc = hl_out_new(&oo, &out))) {
    snprintf(err, errlen, "out of memory");
    goto cleanup;
  }
  g.ring = calloc(g.nring, sizeof(chunk));
  th = calloc((size_t)o->threads, sizeof(pthread_t));
  if (!g.ring || !th) {
    rc = -ENOMEM;
    snprintf(err, errlen, "out of memory");
    goto cleanup;
  }
  if ((rc = write_orgs(&g, out, st))) {
    snprintf(err, errlen, "%s", hl_out_error(out));
    goto cleanup;
  }
  for (nth = 0; nth < o->threads; nth++) {
    if (pthread_create(&th[nth], NULL, worker, &g) != 0) {
      rc = -EAGAIN;
      snprintf(err, errlen, "cannot start a thread");
      goto cleanup;
    }
  }
  for (uint64_t ci = 0; ci < g.nchunks; ci++) {
    chunk *c = &g.ring[ci % g.nring];
    pthread_mutex_lock(&g.mu);
    while (!(c->state == 2 && c->index == ci) && !g.stop) pthread_cond_wait(&g.cv, &g.mu);
    int stopped = g.stop;
    pthread_mutex_unlock(&g.mu);
    if (stopped) {
      rc = stopped;
      snprintf(err, errlen, "generator failed: %s", hl_strerror(rc));
      goto cleanup;
    }
    if (c->err) {
      rc = c->err;
      snprintf(err, errlen, "generator buffer: %s", hl_strerror(rc));
      goto cleanup;
    }
    for (uint64_t i = 0; i < c->n && !rc; i++) {
      seg *sg = &c->segs[i];
      for (int s = 0; s < HL_S_ALL && !rc; s++) {
        st->counts[s] += sg->lines[s];
        if (!sg->len[s]) continue;
        if (s == HL_S_BUNDLE)
          rc = hl_out_write_file(out, sg->org, sg->id, c->buf[s].d + sg->off[s], sg->len[s]);
        else
          rc = hl_out_write(out, sg->org, s, c->buf[s].d + sg->off[s], sg->len[s], sg->lines[s]);
      }
    }
    if (rc) {
      snprintf(err, errlen, "%s", hl_out_error(out));
      goto cleanup;
    }
    st->patients += c->n;
    pthread_mutex_lock(&g.mu);
    c->state = 0;
    g.consumed = ci + 1;
    pthread_cond_broadcast(&g.cv);
    pthread_mutex_unlock(&g.mu);
    if (show && now() - last > 0.2) {
      last = now();
      progress(o, st->patients, t0, hl_out_raw_bytes(out));
    }
  }
  if ((rc = hl_out_finish(out))) {
    snprintf(err, errlen, "%s", hl_out_error(out));
    goto cleanup;
  }
  if (show) {
    progress(o, st->patients, t0, hl_out_raw_bytes(out));
    fputc('\n', stderr);
  }

cleanup:
  pthread_mutex_lock(&g.mu);
  if (rc && !g.stop) g.stop = rc;
  pthread_cond_broadcast(&g.cv);
  pthread_mutex_unlock(&g.mu);
  for (int i = 0; i < nth; i++) pthread_join(th[i], NULL);
  free(th);
  if (out) {
    st->bytes = hl_out_bytes(out);
    st->raw_bytes = hl_out_raw_bytes(out);
  }
  hl_out_free(out);
  if (g.ring) {
    for (size_t i = 0; i < g.nring; i++)
      for (int s = 0; s < HL_S_ALL; s++) hl_sb_free(&g.ring[i].buf[s]);
    free(g.ring);
  }
  pthread_cond_destroy(&g.cv);
  pthread_mutex_destroy(&g.mu);
  st->seconds = now() - t0;
  return rc;
}

void hl_gen_print_summary(const hl_synth_opts *o, const hl_gen_stats *st, FILE *f) {
  uint64_t fhir = 0, omop = 0;
  fprintf(f, "hl-synth: %llu patients, %d organizations, seed %llu, %.2f s\n",
          (unsigned long long)st->patients, o->orgs, (unsigned long long)o->seed, st->seconds);
  fprintf(f, "  FHIR resources (%s):\n", o->bundle ? "bundle" : "ndjson");
  for (int s = 0; s < HL_S_FHIR_N; s++) {
    fprintf(f, "    %-22s %12llu\n", hl_stream_names[s], (unsigned long long)st->counts[s]);
    fhir += st->counts[s];
  }
  if (o->bundle)
    fprintf(f, "    %-22s %12llu\n", "(Bundle files)", (unsigned long long)st->counts[HL_S_BUNDLE]);
  if (o->omop) {
    fprintf(f, "  OMOP rows:\n");
    for (int s = HL_S_FHIR_N; s < HL_S_N; s++) {
      fprintf(f, "    %-22s %12llu\n", hl_stream_names[s], (unsigned long long)st->counts[s]);
      omop += st->counts[s];
    }
  }
  double sec = st->seconds > 0 ? st->seconds : 1e-9;
  fprintf(f, "  totals: %llu resources, %llu rows, %.1f MB written (%.1f MB uncompressed)\n",
          (unsigned long long)fhir, (unsigned long long)omop, st->bytes / 1e6, st->raw_bytes / 1e6);
  fprintf(f, "  rates: %.0f patients/s, %.0f resources/s, %.1f MB/s\n", st->patients / sec,
          fhir / sec, st->raw_bytes / sec / 1e6);
}
