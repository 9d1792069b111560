/* bench_sched.c — time of one scheduling pass (coordinator/sched.h) with
 * many pending jobs, beside the dense reference pass
 * (tests/reference/sched_ref.c) on the same work; bench/control.py prints
 * it.
 *
 *   bench_sched [PENDING] [WORKERS] [SLOTS] [RUNNING] [DEPTH] [REPS] [REF]
 *
 * A synthetic cluster: WORKERS workers of SLOTS slots (a quarter with 8
 * GPUs), RUNNING jobs of 1..8 ranks (one in eight a gang over 2..4 workers)
 * with time limits of 10 min to 10 h, placed while every worker keeps a
 * tenth of its slots; RUNNING 0 fills the cluster that way to 90 %.
 * PENDING jobs of 1..64 ranks (some GPU, some pinned to N nodes, most with
 * time limits). Prints, as one JSON line, the median pass time of each
 * side in milliseconds, their ratio, whether every decision was the same,
 * and how many jobs the pass started and reserved. REF 0 skips the
 * reference (it takes minutes on thousands of workers). Fixed seed: the
 * same work every run.
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "coordinator/sched.h"
#include "tests/reference/sched_ref.h"

static uint64_t st = 42;
static uint32_t rnd(uint32_t n) {
  st = st * 6364136223846793005ull + 1442695040888963407ull;
  return (uint32_t)((st >> 33) % n);
}
static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}
static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
  size_t np = argc > 1 ? strtoul(argv[1], NULL, 10) : 10000;
  size_t nw = argc > 2 ? strtoul(argv[2], NULL, 10) : 64;
  uint32_t slots = argc > 3 ? (uint32_t)strtoul(argv[3], NULL, 10) : 32;
  size_t nr = argc > 4 ? strtoul(argv[4], NULL, 10) : 500;
  size_t depth = argc > 5 ? strtoul(argv[5], NULL, 10) : 200;
  int reps = argc > 6 ? atoi(argv[6]) : 5, with_ref = argc > 7 ? atoi(argv[7]) : 1;
  if (!nw || !slots || reps < 1) {
    fprintf(stderr, "bench_sched: WORKERS, SLOTS and REPS must be at least 1\n");
    return 2;
  }
  int fill = nr == 0;
  size_t maxr = fill ? nw * slots : nr;
  sched_node *nodes = calloc(nw, sizeof *nodes);
  sched_running *run = calloc(maxr, sizeof *run);
  sched_place *pl = calloc(maxr * 4, sizeof *pl);
  sched_pending *p = calloc(np ? np : 1, sizeof *p);
  sched_result *res = calloc(np ? np : 1, sizeof *res);
  sched_ref_result *rres = calloc(np ? np : 1, sizeof *rres);
  double *times = calloc((size_t)reps, sizeof *times), *rtimes = calloc((size_t)reps, sizeof *rtimes);
  if (!nodes || !run || !pl || !p || !res || !rres || !times || !rtimes) return 1;
  for (size_t i = 0; i < nw; i++)
    nodes[i] = (sched_node){slots, i % 4 == 0 ? 8 : 0, slots, i % 4 == 0 ? 8 : 0, 1};
  size_t placed = 0, npl = 0, used = 0, misses = 0;
  uint32_t keep = slots / 10;
  for (size_t k = 0; fill ? used * 10 < (size_t)nw * slots * 9 && misses < 64 * nw : k < nr; k++) {
    uint32_t width = rnd(8) == 0 ? 2 + rnd(3) : 1, take = 1 + rnd(8);
    size_t at = npl, ok = 1;
    for (uint32_t w = 0; w < width && ok; w++) {
      size_t i = rnd((uint32_t)nw);
      for (size_t q = at; q < npl; q++) ok &= pl[q].node != i;
      if (!ok || take > nodes[i].slots_free || nodes[i].slots_free - take < keep) ok = 0;
      else pl[npl++] = (sched_place){(uint32_t)i, take};
    }
    if (!ok) {
      npl = at, misses++;
      continue;
    }
    for (size_t q = at; q < npl; q++) nodes[pl[q].node].slots_free -= take, used += take;
    run[placed++] = (sched_running){600.0 + rnd(36000), pl + at, npl - at, 0};
  }
  for (size_t k = 0; k < np; k++) {
    uint32_t ranks = 1u << rnd(7);
    p[k] = (sched_pending){ranks, rnd(10) == 0 && ranks <= 8 ? 1 : 0, rnd(5) == 0 && ranks >= 4 ? 2 : 0,
                           rnd(5) ? 60.0 * (1 + rnd(600)) : INFINITY, rnd(20) != 0, 0};
  }
  sched *s = NULL;
  if (sched_new(&s, NULL)) return 1;
  foil_err err = {0};
  for (int r = 0; r < reps; r++) {
    double t0 = now_s();
    if (sched_pass(s, 0, nodes, nw, run, placed, p, np, depth, res, &err)) {
      fprintf(stderr, "bench_sched: %s\n", err.msg);
      return 1;
    }
    times[r] = now_s() - t0;
  }
  qsort(times, (size_t)reps, sizeof *times, cmp_d);
  double ms = times[reps / 2] * 1e3, ref_ms = NAN;
  long same = -1;
  if (with_ref) { /* the anchor: the dense pass, ranks as rows of nw */
    uint32_t *dense = calloc(placed * nw, sizeof *dense);
    sched_ref_running *rrun = calloc(placed ? placed : 1, sizeof *rrun);
    sched_ref *ref = NULL;
    if (!dense || !rrun || sched_ref_new(&ref, NULL)) return 1;
    for (size_t k = 0; k < placed; k++) {
      for (size_t q = 0; q < run[k].n_place; q++) dense[k * nw + run[k].place[q].node] += run[k].place[q].ranks;
      rrun[k] = (sched_ref_running){run[k].end, dense + k * nw, run[k].gpus_per_rank};
    }
    for (int r = 0; r < reps; r++) {
      double t0 = now_s();
      if (sched_ref_pass(ref, 0, nodes, nw, rrun, placed, p, np, depth, rres, &err)) {
        fprintf(stderr, "bench_sched: reference: %s\n", err.msg);
        return 1;
      }
      rtimes[r] = now_s() - t0;
    }
    qsort(rtimes, (size_t)reps, sizeof *rtimes, cmp_d);
    ref_ms = rtimes[reps / 2] * 1e3;
    same = 1;
    for (size_t k = 0; k < np && same; k++) {
      same = res[k].verdict == rres[k].verdict && res[k].est_start == rres[k].est_start &&
             !res[k].place == !rres[k].ranks_on;
      size_t sum = 0;
      for (size_t q = 0; same && q < res[k].n_place; q++)
        same = res[k].place[q].ranks == rres[k].ranks_on[res[k].place[q].node], sum += res[k].place[q].ranks;
      for (size_t i = 0; same && res[k].place && i < nw; i++) sum -= rres[k].ranks_on[i];
      same = same && (!res[k].place || sum == 0);
    }
    sched_ref_destroy(&ref);
    free(dense), free(rrun);
  }
  size_t started = 0, reserved = 0;
  for (size_t k = 0; k < np; k++) {
    started += res[k].verdict == SCHED_START;
    reserved += res[k].verdict != SCHED_START && res[k].est_start > 0;
  }
  printf("{\"pending\": %zu, \"workers\": %zu, \"running\": %zu, \"used\": %.3f, \"depth\": %zu, "
         "\"pass_ms\": %.3f, ",
         np, nw, placed, (double)used / ((double)nw * slots), depth, ms);
  if (with_ref)
    printf("\"ref_ms\": %.3f, \"ratio\": %.1f, \"same\": %s, ", ref_ms, ref_ms / ms, same ? "true" : "false");
  printf("\"started\": %zu, \"reserved\": %zu, \"bytes\": %zu}\n", started, reserved, sched_bytes(s));
  sched_destroy(&s);
  free(nodes), free(run), free(pl), free(p), free(res), free(rres), free(times), free(rtimes);
  return with_ref && !same ? 3 : 0;
}
