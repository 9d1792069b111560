/* bench_sched.c — time of one scheduling pass (coordinator/sched.h) with
 * many pending jobs, as bench/control.py prints it.
 *
 *   bench_sched [PENDING] [WORKERS] [SLOTS] [RUNNING] [DEPTH] [REPS]
 *
 * A synthetic cluster: WORKERS workers of SLOTS slots (a quarter with 8
 * GPUs), RUNNING jobs filling most of it with time limits of 10 min to 10 h,
 * PENDING jobs of 1..64 ranks (some GPU, some pinned to N nodes, most with
 * time limits). Prints the median pass time in milliseconds and how many
 * jobs it started and reserved. Fixed seed: the same work every run.
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "coordinator/sched.h"

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
  int reps = argc > 6 ? atoi(argv[6]) : 5;
  sched_node *nodes = calloc(nw, sizeof *nodes);
  sched_running *run = calloc(nr, sizeof *run);
  uint32_t *rr = calloc(nr * nw, sizeof *rr);
  sched_pending *p = calloc(np, sizeof *p);
  sched_result *res = calloc(np, sizeof *res);
  double *times = calloc((size_t)reps, sizeof *times);
  if (!nodes || !run || !rr || !p || !res || !times) return 1;
  for (size_t i = 0; i < nw; i++)
    nodes[i] = (sched_node){slots, i % 4 == 0 ? 8 : 0, slots, i % 4 == 0 ? 8 : 0, 1};
  size_t placed = 0;
  for (size_t k = 0; k < nr; k++) {  /* fill ~90% of the slots */
    size_t i = rnd((uint32_t)nw);
    uint32_t take = 1 + rnd(8);
    if (take > nodes[i].slots_free || nodes[i].slots_free - take < slots / 10) continue;
    nodes[i].slots_free -= take;
    rr[placed * nw + i] = take;
    run[placed] = (sched_running){600.0 + rnd(36000), rr + placed * nw, 0};
    placed++;
  }
  for (size_t k = 0; k < np; k++) {
    uint32_t ranks = 1u << rnd(7);
    p[k] = (sched_pending){ranks, rnd(10) == 0 && ranks <= 8 ? 1 : 0, rnd(5) == 0 && ranks >= 4 ? 2 : 0,
                           rnd(5) ? 60.0 * (1 + rnd(600)) : INFINITY, rnd(20) != 0, 0};
  }
  sched *s = NULL;
  if (sched_new(&s, NULL)) return 1;
  size_t started = 0, reserved = 0;
  for (int r = 0; r < reps; r++) {
    double t0 = now_s();
    if (sched_pass(s, 0, nodes, nw, run, placed, p, np, depth, res, NULL)) return 1;
    times[r] = now_s() - t0;
  }
  for (size_t k = 0; k < np; k++) {
    started += res[k].verdict == SCHED_START;
    reserved += res[k].verdict != SCHED_START && res[k].est_start > 0;
  }
  qsort(times, (size_t)reps, sizeof *times, cmp_d);
  printf("{\"pending\": %zu, \"workers\": %zu, \"running\": %zu, \"depth\": %zu, \"pass_ms\": %.3f, "
         "\"started\": %zu, \"reserved\": %zu}\n",
         np, nw, placed, depth, times[reps / 2] * 1e3, started, reserved);
  sched_destroy(&s);
  free(nodes), free(run), free(rr), free(p), free(res), free(times);
  return 0;
}
