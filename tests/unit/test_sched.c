/* test_sched.c — the scheduling pass (coordinator/sched.h).
 *
 * What it proves:
 *  - gang placement: one worker when one fits (the tightest), else the
 *    largest first; `nodes` N splits evenly over exactly N workers; GPUs per
 *    rank limit a worker; drained/down workers are never used;
 *  - conservative backfill on a hand-worked timeline: the head waits for a
 *    running job's end (its estimate is that end), a shorter job runs ahead
 *    of it, jobs that would delay it wait with reason Priority and get the
 *    start time after it;
 *  - dependencies and impossible requests are reported, not placed; a
 *    gang that would span more than max_nodes workers does not fit;
 *  - on random clusters no pass ever places more than is free, and every
 *    placement holds exactly the ranks asked for;
 *  - a pass over a long queue on many workers keeps room for the jobs it
 *    starts only, not for every pending job;
 *  - the sparse pass decides bit for bit as the dense reference
 *    (tests/reference/sched_ref.c) on 30,000 random clusters and queues:
 *    the same verdicts, start estimates and placements — with equal and
 *    overdue ends, jobs without time limits, drained workers, GPU gangs,
 *    pinned node counts, max_nodes, repeated shapes, depths from 1, windows
 *    too short to end after their start, workers too large for the
 *    histograms, and one scheduler reused across passes and worker counts.
 */
#include <math.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "coordinator/sched.h"
#include "tests/reference/sched_ref.h"
#include "tests/test.h"

/* ranks a started job has on node i */
static uint32_t ranks_at(const sched_result *r, size_t i) {
  for (size_t k = 0; k < r->n_place; k++)
    if (r->place[k].node == i) return r->place[k].ranks;
  return 0;
}

static void test_fit(void) {
  uint32_t slots[3] = {8, 3, 4}, gpus[3] = {0, 0, 0}, ro[3], scratch[6];
  int usable[3] = {1, 1, 1};
  sched_pending j = {.ranks = 3};
  CHECK(sched_fit(slots, gpus, usable, 3, &j, ro, scratch));
  CHECK(ro[0] == 0 && ro[1] == 3 && ro[2] == 0);  /* tightest that fits */
  j.ranks = 10;
  CHECK(sched_fit(slots, gpus, usable, 3, &j, ro, scratch));
  CHECK(ro[0] == 8 && ro[1] == 0 && ro[2] == 2);  /* largest first */
  j.ranks = 16;
  CHECK(!sched_fit(slots, gpus, usable, 3, &j, ro, scratch));
  j.ranks = 5, j.nodes = 2;
  CHECK(sched_fit(slots, gpus, usable, 3, &j, ro, scratch));
  CHECK(ro[0] == 3 && ro[2] == 2 && ro[1] == 0);  /* 3 + 2 on the two largest */
  j.ranks = 9, j.nodes = 3;  /* 3 each: fits 8,3,4 */
  CHECK(sched_fit(slots, gpus, usable, 3, &j, ro, scratch));
  CHECK(ro[0] == 3 && ro[1] == 3 && ro[2] == 3);
  j.ranks = 10, j.nodes = 3;  /* 4,3,3: the 3-slot worker takes 3 */
  CHECK(sched_fit(slots, gpus, usable, 3, &j, ro, scratch));
  CHECK(ro[0] == 4 && ro[1] == 3 && ro[2] == 3);
  j.ranks = 13, j.nodes = 3;  /* 5,4,4: the 3-slot worker cannot */
  CHECK(!sched_fit(slots, gpus, usable, 3, &j, ro, scratch));
  /* GPUs: 2 per rank, 4 GPUs → 2 ranks on worker 2 */
  uint32_t g2[3] = {0, 1, 4};
  sched_pending gj = {.ranks = 2, .gpus_per_rank = 2};
  CHECK(sched_fit(slots, g2, usable, 3, &gj, ro, scratch));
  CHECK(ro[2] == 2 && ro[0] == 0 && ro[1] == 0);
  gj.ranks = 3;
  CHECK(!sched_fit(slots, g2, usable, 3, &gj, ro, scratch));
  usable[0] = 0;  /* drained: never used */
  j.ranks = 8, j.nodes = 0;
  CHECK(!sched_fit(slots, gpus, usable, 3, &j, ro, scratch));
}

static void test_backfill(void) {
  sched *s = NULL;
  CHECK(!sched_new(&s, NULL));
  /* one worker of 6 slots; A runs 2 ranks until t=100 */
  sched_node node = {.slots = 6, .slots_free = 4, .usable = 1};
  sched_place a_place[1] = {{0, 2}};
  sched_running run = {.end = 100, .place = a_place, .n_place = 1};
  sched_pending p[7] = {
      {.ranks = 6, .duration = 50, .eligible = 1},        /* B: head, waits for A */
      {.ranks = 2, .duration = 50, .eligible = 1},        /* C: ends by 50, runs now */
      {.ranks = 2, .duration = INFINITY, .eligible = 1},  /* D: would delay B */
      {.ranks = 2, .duration = 101, .eligible = 1},       /* E: would cross t=100 */
      {.ranks = 2, .duration = 100, .eligible = 1},       /* E2: ends as B starts */
      {.ranks = 1, .duration = 10, .eligible = 0},        /* F: dependency */
      {.ranks = 7, .duration = 10, .eligible = 1},        /* G: never fits */
  };
  sched_result r[7];
  CHECK(!sched_pass(s, 0, &node, 1, &run, 1, p, 7, 0, r, NULL));
  CHECK(r[0].verdict == SCHED_RESOURCES && r[0].est_start == 100);
  CHECK(r[1].verdict == SCHED_START && ranks_at(&r[1], 0) == 2);
  /* after B: D from 150 (B holds all 6 in [100,150)) */
  CHECKF(r[2].verdict == SCHED_PRIORITY && r[2].est_start == 150, "D %d %g", r[2].verdict, r[2].est_start);
  CHECKF(r[3].verdict == SCHED_PRIORITY && r[3].est_start == 150, "E %d %g", r[3].verdict, r[3].est_start);
  CHECK(r[4].verdict == SCHED_START && ranks_at(&r[4], 0) == 2);
  CHECK(r[5].verdict == SCHED_DEPENDENCY);
  CHECK(r[6].verdict == SCHED_NEVER);
  /* no time limits anywhere: a full worker means "Resources", no estimate */
  sched_node full = {.slots = 4, .slots_free = 4, .usable = 1};
  sched_pending q[2] = {{.ranks = 4, .duration = INFINITY, .eligible = 1},
                        {.ranks = 1, .duration = INFINITY, .eligible = 1}};
  CHECK(!sched_pass(s, 0, &full, 1, NULL, 0, q, 2, 0, r, NULL));
  CHECK(r[0].verdict == SCHED_START && r[1].verdict == SCHED_RESOURCES && r[1].est_start == 0);
  /* priority order is the caller's: a 1-rank job first takes a slot; the
   * 4-rank job then waits for it */
  sched_pending q2[2] = {{.ranks = 1, .duration = 30, .eligible = 1},
                         {.ranks = 4, .duration = INFINITY, .eligible = 1}};
  CHECK(!sched_pass(s, 0, &full, 1, NULL, 0, q2, 2, 0, r, NULL));
  CHECK(r[0].verdict == SCHED_START && r[1].verdict == SCHED_RESOURCES && r[1].est_start == 30);
  /* gang over two workers: 4 ranks on 2 + 2 */
  sched_node two[2] = {{.slots = 2, .slots_free = 2, .usable = 1}, {.slots = 2, .slots_free = 2, .usable = 1}};
  sched_pending g = {.ranks = 4, .duration = INFINITY, .eligible = 1};
  CHECK(!sched_pass(s, 0, two, 2, NULL, 0, &g, 1, 0, r, NULL));
  CHECK(r[0].verdict == SCHED_START && ranks_at(&r[0], 0) == 2 && ranks_at(&r[0], 1) == 2);
  two[1].usable = 0;  /* one worker down: the gang waits, all or nothing */
  CHECK(!sched_pass(s, 0, two, 2, NULL, 0, &g, 1, 0, r, NULL));
  CHECK(r[0].verdict == SCHED_NEVER);
  sched_destroy(&s);
  CHECK(s == NULL);
}

/* A gang never spans more than max_nodes workers: one that would need more
 * does not fit (it is not cut to the first max_nodes). */
static void test_too_wide(void) {
  enum { N = 100 };
  uint32_t slots[N], gpus[N], ro[N], scratch[2 * N];
  int usable[N];
  sched_node nodes[N];
  for (int i = 0; i < N; i++) {
    slots[i] = 8, gpus[i] = 8, usable[i] = 1;
    nodes[i] = (sched_node){.slots = 8, .gpus = 8, .slots_free = 8, .gpus_free = 8, .usable = 1};
  }
  /* one rank of 8 GPUs per worker: 100 ranks need 100 workers */
  sched_pending j = {.ranks = 100, .gpus_per_rank = 8, .duration = INFINITY, .eligible = 1, .max_nodes = 64};
  CHECK(!sched_fit(slots, gpus, usable, N, &j, ro, scratch));
  uint32_t sum = 0;
  for (int i = 0; i < N; i++) sum += ro[i];
  CHECK(sum == 0);
  j.ranks = 64;  /* exactly the limit */
  CHECK(sched_fit(slots, gpus, usable, N, &j, ro, scratch));
  j.ranks = 100, j.gpus_per_rank = 1;  /* 8 per worker: 13 workers */
  CHECK(sched_fit(slots, gpus, usable, N, &j, ro, scratch));
  j.gpus_per_rank = 8, j.max_nodes = 0;  /* no limit: all 100 */
  CHECK(sched_fit(slots, gpus, usable, N, &j, ro, scratch));
  j.nodes = 65, j.max_nodes = 64;
  CHECK(!sched_fit(slots, gpus, usable, N, &j, ro, scratch));
  /* the pass: too wide is its own verdict, and nothing starts */
  sched *s = NULL;
  CHECK(!sched_new(&s, NULL));
  sched_pending p[2] = {{.ranks = 100, .gpus_per_rank = 8, .duration = INFINITY, .eligible = 1, .max_nodes = 64},
                        {.ranks = 1000, .duration = INFINITY, .eligible = 1, .max_nodes = 64}};
  sched_result r[2];
  CHECK(!sched_pass(s, 0, nodes, N, NULL, 0, p, 2, 0, r, NULL));
  CHECK(r[0].verdict == SCHED_TOO_WIDE && r[0].place == NULL);
  CHECK(r[1].verdict == SCHED_NEVER);  /* 1000 ranks: more than the 800 slots */
  p[0].max_nodes = 0;
  CHECK(!sched_pass(s, 0, nodes, N, NULL, 0, p, 1, 0, r, NULL));
  CHECK(r[0].verdict == SCHED_START);
  sched_destroy(&s);
}

static uint64_t st = 12345;
static uint32_t rnd(uint32_t n) {
  st = st * 6364136223846793005ull + 1442695040888963407ull;
  return (uint32_t)((st >> 33) % n);
}

static void test_random(void) {
  sched *s = NULL;
  CHECK(!sched_new(&s, NULL));
  enum { NN = 7, NP = 60, NR = 5 };
  for (int round = 0; round < 200; round++) {
    sched_node nodes[NN];
    uint32_t used[NN] = {0}, gused[NN] = {0};
    sched_place rp[NR][NN];
    sched_running run[NR];
    for (int i = 0; i < NN; i++)
      nodes[i] = (sched_node){.slots = 1 + rnd(8), .gpus = rnd(3) * 2, .usable = rnd(5) != 0};
    int nr = 0;
    for (int k = 0; k < NR; k++) {  /* running jobs on what is there */
      uint32_t gpr = rnd(2);
      size_t np_ = 0;
      for (int i = 0; i < NN; i++) {
        uint32_t take = rnd(nodes[i].slots - used[i] + 1);
        if (gpr && take * gpr > nodes[i].gpus - gused[i]) take = (nodes[i].gpus - gused[i]) / gpr;
        if (take) rp[k][np_++] = (sched_place){(uint32_t)i, take};
        used[i] += take, gused[i] += take * gpr;
      }
      run[nr++] = (sched_running){rnd(3) ? 10.0 + rnd(100) : INFINITY, rp[k], np_, gpr};
    }
    for (int i = 0; i < NN; i++) nodes[i].slots_free = nodes[i].slots - used[i], nodes[i].gpus_free = nodes[i].gpus - gused[i];
    sched_pending p[NP];
    for (int k = 0; k < NP; k++)
      p[k] = (sched_pending){1 + rnd(12), rnd(4) == 0, rnd(3) == 0 ? 1 + rnd(3) : 0,
                             rnd(4) ? 5.0 + rnd(200) : INFINITY, rnd(8) != 0, 0};
    sched_result r[NP];
    CHECK(!sched_pass(s, 0, nodes, NN, run, (size_t)nr, p, NP, 10, r, NULL));
    uint32_t take[NN] = {0}, gtake[NN] = {0};
    for (int k = 0; k < NP; k++) {
      if (r[k].verdict != SCHED_START) continue;
      uint32_t sum = 0, on = 0;
      for (int i = 0; i < NN; i++) {
        sum += ranks_at(&r[k], i);
        on += ranks_at(&r[k], i) > 0;
        take[i] += ranks_at(&r[k], i);
        gtake[i] += ranks_at(&r[k], i) * p[k].gpus_per_rank;
        if (ranks_at(&r[k], i)) CHECK(nodes[i].usable);
      }
      CHECK(sum == p[k].ranks && p[k].eligible);
      if (p[k].nodes) CHECK(on == p[k].nodes);
    }
    for (int i = 0; i < NN; i++) CHECK(take[i] <= nodes[i].slots_free && gtake[i] <= nodes[i].gpus_free);
  }
  sched_destroy(&s);
}

/* One random case, run through both passes; returns the mismatches. */
static int diff_case(sched *s, sched_ref *ref, int big) {
  enum { MAXN = 48, MAXR = 24, MAXP = 120 };
  size_t nn = 1 + rnd(big ? MAXN : 10), nr = rnd(big ? MAXR : 8), np = rnd(big ? MAXP : 40);
  int huge = rnd(25) == 0;  /* workers past the histograms' range */
  double now = rnd(6) == 0 ? 1e9 : 0;
  sched_node nodes[MAXN];
  uint32_t used[MAXN] = {0}, gused[MAXN] = {0}, dense[MAXR][MAXN];
  sched_place sp[MAXR][MAXN];
  sched_running run[MAXR];
  sched_ref_running rrun[MAXR];
  memset(dense, 0, sizeof dense);
  for (size_t i = 0; i < nn; i++) {
    uint32_t slots = huge ? 65530 + rnd(40) : 1 + rnd(rnd(4) ? 8 : 40);
    nodes[i] = (sched_node){.slots = slots, .gpus = rnd(3) ? 0 : 4 * (1 + rnd(2)), .usable = rnd(6) != 0};
  }
  for (size_t k = 0; k < nr; k++) {
    uint32_t gpr = rnd(3) ? 0 : 1 + rnd(2);
    size_t npl = 0;
    for (size_t i = 0; i < nn; i++) {
      if (rnd(3)) continue;
      uint32_t take = rnd(nodes[i].slots - used[i] + 1);
      if (gpr && take * gpr > nodes[i].gpus - gused[i]) take = (nodes[i].gpus - gused[i]) / gpr;
      if (!take) continue;
      sp[k][npl++] = (sched_place){(uint32_t)i, take};
      dense[k][i] = take, used[i] += take, gused[i] += take * gpr;
    }
    int e = (int)rnd(10);
    double end = e < 2 ? INFINITY : e < 4 ? now - rnd(50) : e == 4 ? now + 0.5 : now + 5 * (1 + rnd(12));
    run[k] = (sched_running){end, sp[k], npl, gpr};
    rrun[k] = (sched_ref_running){end, dense[k], gpr};
  }
  for (size_t i = 0; i < nn; i++) {
    nodes[i].slots_free = nodes[i].slots - used[i], nodes[i].gpus_free = nodes[i].gpus - gused[i];
    if (rnd(40) == 0) nodes[i].slots_free += 2;  /* a report above the total */
  }
  sched_pending p[MAXP];
  for (size_t k = 0; k < np; k++) {
    if (k && rnd(5) == 0) {  /* the same shape again */
      p[k] = p[rnd((uint32_t)k)];
      continue;
    }
    uint32_t ranks = huge && rnd(2) ? 60000 + rnd(80000) : rnd(12) == 0 ? 0 : 1 + rnd(rnd(3) ? 10 : 60);
    int d = (int)rnd(12);
    double dur = d < 3 ? INFINITY : d == 3 ? 0 : d == 4 && now > 0 ? 1e-8 : 5.0 * (1 + rnd(20));
    p[k] = (sched_pending){ranks, rnd(4) ? 0 : 1 + rnd(2), rnd(4) ? 0 : 1 + rnd(4), dur, rnd(10) != 0,
                           rnd(3) ? 0 : 1 + rnd(4)};
  }
  size_t depth = rnd(3) ? 1 + rnd(6) : 0;
  sched_result a[MAXP];
  sched_ref_result b[MAXP];
  foil_err e1 = {0}, e2 = {0};
  int rc1 = sched_pass(s, now, nodes, nn, run, nr, p, np, depth, a, &e1);
  int rc2 = sched_ref_pass(ref, now, nodes, nn, rrun, nr, p, np, depth, b, &e2);
  CHECKF(rc1 == 0 && rc2 == 0, "%s / %s", e1.msg, e2.msg);
  if (rc1 || rc2) return 1;
  int bad = 0;
  for (size_t k = 0; k < np; k++) {
    int same = a[k].verdict == b[k].verdict && a[k].est_start == b[k].est_start &&
               (a[k].place == NULL) == (b[k].ranks_on == NULL);
    for (size_t i = 0; same && a[k].place && i < nn; i++) same = ranks_at(&a[k], i) == b[k].ranks_on[i];
    for (size_t q = 1; same && q < a[k].n_place; q++) same = a[k].place[q - 1].node < a[k].place[q].node;
    if (!same && !bad++)
      fprintf(stderr, "job %zu of %zu (ranks %u gpr %u nodes %u max %u dur %g): %d at %g, reference %d at %g\n",
              k, np, p[k].ranks, p[k].gpus_per_rank, p[k].nodes, p[k].max_nodes, p[k].duration, a[k].verdict,
              a[k].est_start, b[k].verdict, b[k].est_start);
    if (!same && bad == 1 && getenv("SCHED_DEBUG") && a[k].place && b[k].ranks_on)
      for (size_t i = 0; i < nn; i++)
        fprintf(stderr, "  node %zu: slots %u/%u gpus %u/%u usable %d: %u vs %u\n", i, nodes[i].slots_free,
                nodes[i].slots, nodes[i].gpus_free, nodes[i].gpus, nodes[i].usable, ranks_at(&a[k], i),
                b[k].ranks_on[i]);
  }
  return bad;
}

/* Edges the random cases do not reach (found by an adversarial review):
 * a clock so large that now + 1 == now, where an overdue job's release is
 * free capacity now; uint32 sums at the first release's cap; and running
 * jobs that list a node twice, or one past the last, are refused whatever
 * their end. */
static void test_edges(void) {
  sched *s = NULL;
  sched_ref *ref = NULL;
  CHECK(!sched_new(&s, NULL) && !sched_ref_new(&ref, NULL));
  sched_result a[1];
  sched_ref_result b[1];
  /* 2^53: the release of an overdue job lands on now itself */
  double big = 9007199254740992.0;
  sched_node n1 = {4, 0, 0, 0, 1};
  sched_place p4[] = {{0, 4}};
  uint32_t d4[] = {4};
  sched_running r1 = {big - 10, p4, 1, 0};
  sched_ref_running rr1 = {big - 10, d4, 0};
  sched_pending j4 = {4, 0, 0, 100, 1, 0};
  CHECK(!sched_pass(s, big, &n1, 1, &r1, 1, &j4, 1, 0, a, NULL));
  CHECK(!sched_ref_pass(ref, big, &n1, 1, &rr1, 1, &j4, 1, 0, b, NULL));
  CHECKF(a[0].verdict == SCHED_START && b[0].verdict == SCHED_START && a[0].n_place == 1 && ranks_at(&a[0], 0) == 4,
         "%d / %d", a[0].verdict, b[0].verdict);
  /* the first release adds, then caps (uint32 sums wrap as the reference's) */
  sched_node n2 = {4, 0, 5, 0, 1};
  sched_place pw[] = {{0, 4294967295u}};
  uint32_t dw[] = {4294967295u};
  sched_running r2 = {1e9 + 0.5, pw, 1, 0};
  sched_ref_running rr2 = {1e9 + 0.5, dw, 0};
  sched_pending j20 = {4, 0, 0, 20, 1, 0};
  CHECK(!sched_pass(s, 1e9, &n2, 1, &r2, 1, &j20, 1, 0, a, NULL));
  CHECK(!sched_ref_pass(ref, 1e9, &n2, 1, &rr2, 1, &j20, 1, 0, b, NULL));
  CHECKF(a[0].verdict == b[0].verdict && a[0].est_start == b[0].est_start, "%d at %g / %d at %g", a[0].verdict,
         a[0].est_start, b[0].verdict, b[0].est_start);
  /* a node twice, or past the last even on a job without an end: refused */
  sched_place twice[] = {{0, 1}, {0, 2}}, past[] = {{7, 1}};
  sched_running bad[2] = {{10, twice, 2, 0}, {INFINITY, past, 1, 0}};
  foil_err e = {0};
  CHECK(sched_pass(s, 0, &n1, 1, &bad[0], 1, &j4, 1, 0, a, &e) == FOIL_EINVAL && strstr(e.msg, "twice"));
  CHECK(sched_pass(s, 0, &n1, 1, &bad[1], 1, &j4, 1, 0, a, &e) == FOIL_EINVAL && strstr(e.msg, "worker 7 of 1"));
  CHECK(!sched_pass(s, 0, &n1, 1, NULL, 0, &j4, 1, 0, a, NULL) && a[0].verdict == SCHED_RESOURCES);
  sched_destroy(&s);
  sched_ref_destroy(&ref);
}

static void test_differential(void) {
  sched *s = NULL;
  sched_ref *ref = NULL;
  CHECK(!sched_new(&s, NULL) && !sched_ref_new(&ref, NULL));
  int bad = 0, cases = 0;
  for (int c = 0; c < 30000; c++, cases++) {
    int b = diff_case(s, ref, c % 4 == 3);
    if (b) CHECKF(0, "case %d: %d jobs differ from the reference", c, b);
    bad += b != 0;
    if (bad > 3) break;
  }
  CHECKF(!bad, "%d of %d cases differ", bad, cases);
  sched_destroy(&s);
  sched_ref_destroy(&ref);
}

/* A long queue on a wide cluster: 200,000 jobs waiting for dependencies
 * and 2,000 1-rank jobs on 1,024 one-slot workers. 1,024 start, each on its
 * own worker; the pass keeps O(workers + places) bytes: not one row per
 * pending job (which would be ~830 MB here), nor one per start (4 MB). */
static void test_long_queue(void) {
  enum { NN = 1024, NE = 2000, NW = 200000 };
  sched *s = NULL;
  CHECK(!sched_new(&s, NULL));
  sched_node *nodes = calloc(NN, sizeof *nodes);
  sched_pending *p = calloc(NE + NW, sizeof *p);
  sched_result *r = calloc(NE + NW, sizeof *r);
  uint8_t *taken = calloc(NN, 1);
  CHECK(nodes && p && r && taken);
  if (!nodes || !p || !r || !taken) goto out;
  for (int i = 0; i < NN; i++) nodes[i] = (sched_node){.slots = 1, .slots_free = 1, .usable = 1};
  for (int k = 0; k < NE + NW; k++) p[k] = (sched_pending){.ranks = 1, .duration = INFINITY, .eligible = k < NE};
  foil_err e = {0};
  CHECKF(sched_pass(s, 0, nodes, NN, NULL, 0, p, NE + NW, 0, r, &e) == 0, "%s", e.msg);
  int starts = 0, waits = 0, deps = 0;
  for (int k = 0; k < NE + NW; k++) {
    if (r[k].verdict == SCHED_DEPENDENCY) deps++;
    if (r[k].verdict == SCHED_RESOURCES) waits++;
    if (r[k].verdict != SCHED_START) continue;
    starts++;
    int on = -1, n = 0;
    for (int i = 0; i < NN; i++)
      if (ranks_at(&r[k], i)) on = i, n++;
    CHECK(n == 1 && on >= 0 && !taken[on] && ranks_at(&r[k], on) == 1);
    if (on >= 0) taken[on] = 1;
  }
  CHECKF(starts == NN && waits == NE - NN && deps == NW, "%d starts, %d wait, %d on dependencies", starts, waits,
         deps);
  size_t bytes = sched_bytes(s), bound = 1u << 20;
  CHECKF(bytes <= bound, "the scheduler keeps %zu bytes, more than %zu", bytes, bound);
out:
  free(nodes), free(p), free(r), free(taken);
  sched_destroy(&s);
}

int main(void) {
  RUN(test_fit);
  RUN(test_backfill);
  RUN(test_too_wide);
  RUN(test_random);
  RUN(test_long_queue);
  RUN(test_edges);
  RUN(test_differential);
  TEST_EXIT();
}
