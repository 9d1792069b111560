/* sched_ref.c — the scheduling pass as first written: a dense profile of
 * free capacity (segments × workers), every operation walking it whole.
 * O(S·N) per segment tried; slow on thousands of workers, but short and
 * plainly right. It is the oracle coordinator/sched.c must agree with bit
 * for bit (tests/unit/test_sched.c) and the anchor bench/bench_sched.c
 * times it against. Same policy and types as sched.h, except that a
 * running job's ranks are a dense row (one count per worker).
 */
#include "tests/reference/sched_ref.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct sched_ref {
  size_t n;                 /* nodes of the current pass */
  size_t nseg, capseg;      /* profile: segment k holds [t[k], t[k+1]) */
  double *t;
  uint32_t *slots, *gpus;   /* nseg × n */
  uint32_t *wslots, *wgpus; /* window minimum, n each */
  uint32_t *tot_slots, *tot_gpus, *scratch;
  int *usable;
  uint32_t *alloc;          /* ranks_on of the jobs started, n each */
  size_t nalloc, capalloc;
  size_t *order;            /* running jobs by end */
};

int sched_ref_new(sched_ref **out, foil_err *err) {
  *out = calloc(1, sizeof **out);
  return *out ? FOIL_OK : foil_err_set(err, FOIL_ENOMEM, "no memory for the scheduler");
}

void sched_ref_destroy(sched_ref **sp) {
  sched_ref *s = *sp;
  if (!s) return;
  free(s->t), free(s->slots), free(s->gpus), free(s->wslots), free(s->wgpus);
  free(s->tot_slots), free(s->tot_gpus), free(s->scratch), free(s->usable), free(s->alloc);
  free(s->order);
  free(s);
  *sp = NULL;
}

/* ranks a node can take: one slot each, gpus_per_rank GPUs each */
static uint32_t cap(uint32_t slots, uint32_t gpus, uint32_t gpr) {
  if (!gpr) return slots;
  uint32_t g = gpus / gpr;
  return g < slots ? g : slots;
}

static const uint32_t *g_caps; /* qsort context (single-threaded pass) */
static int by_cap_desc(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  if (g_caps[x] != g_caps[y]) return g_caps[x] > g_caps[y] ? -1 : 1;
  return x < y ? -1 : x > y;
}

int sched_ref_fit(const uint32_t *slots, const uint32_t *gpus, const int *usable, size_t n,
              const sched_pending *job, uint32_t *ranks_on, uint32_t *scratch) {
  uint32_t ranks = job->ranks ? job->ranks : 1;
  memset(ranks_on, 0, n * sizeof *ranks_on);
  /* scratch: capacities in the first n, node indices in the next n */
  uint32_t *caps = scratch, *idx = scratch + n;
  uint64_t total = 0;
  size_t m = 0;
  for (size_t i = 0; i < n; i++) {
    caps[i] = usable[i] ? cap(slots[i], gpus[i], job->gpus_per_rank) : 0;
    total += caps[i];
    if (caps[i]) idx[m++] = (uint32_t)i;
  }
  if (total < ranks) return 0;
  if (job->nodes == 0) {
    /* one worker if one fits: the tightest */
    size_t best = n;
    for (size_t k = 0; k < m; k++)
      if (caps[idx[k]] >= ranks && (best == n || caps[idx[k]] < caps[best])) best = idx[k];
    if (best < n) {
      ranks_on[best] = ranks;
      return 1;
    }
    g_caps = caps;
    qsort(idx, m, sizeof *idx, by_cap_desc);
    /* largest first: the fewest workers; more than max_nodes does not fit */
    uint32_t left = ranks;
    for (size_t k = 0; k < m && left && (!job->max_nodes || k < job->max_nodes); k++) {
      uint32_t take = caps[idx[k]] < left ? caps[idx[k]] : left;
      ranks_on[idx[k]] = take;
      left -= take;
    }
    if (left) {
      memset(ranks_on, 0, n * sizeof *ranks_on);
      return 0;
    }
    return 1;
  }
  /* exactly `nodes` workers, shares as even as possible (larger first) */
  uint32_t want = job->nodes;
  if (want > ranks || want > m || (job->max_nodes && want > job->max_nodes)) return 0;
  g_caps = caps;
  qsort(idx, m, sizeof *idx, by_cap_desc);
  uint32_t base = ranks / want, extra = ranks % want;
  for (uint32_t k = 0; k < want; k++) {
    uint32_t share = base + (k < extra);
    if (caps[idx[k]] < share) {
      memset(ranks_on, 0, n * sizeof *ranks_on);
      return 0;
    }
    ranks_on[idx[k]] = share;
  }
  return 1;
}

static int grow(void **p, size_t *cap_, size_t need, size_t elem) {
  if (need <= *cap_) return 0;
  size_t c = *cap_ ? *cap_ : 16;
  while (c < need) c *= 2;
  void *q = realloc(*p, c * elem);
  if (!q) return -1;
  *p = q;
  *cap_ = c;
  return 0;
}

/* Makes room for nseg+1 segments. */
static int seg_room(sched_ref *s) {
  if (s->nseg + 1 <= s->capseg) return 0;
  size_t c = s->capseg ? s->capseg * 2 : 64, n = s->n ? s->n : 1;
  double *t = realloc(s->t, c * sizeof *t);
  if (!t) return -1;
  s->t = t;
  uint32_t *a = realloc(s->slots, c * n * sizeof *a);
  if (!a) return -1;
  s->slots = a;
  uint32_t *b = realloc(s->gpus, c * n * sizeof *b);
  if (!b) return -1;
  s->gpus = b;
  s->capseg = c;
  return 0;
}

/* Inserts a segment starting at time e (a copy of the one covering e);
 * returns its index, or the index of the segment already starting at e. */
static long split_at(sched_ref *s, double e) {
  size_t j = 0;
  while (j + 1 < s->nseg && s->t[j + 1] <= e) j++;
  if (s->t[j] == e) return (long)j;
  if (seg_room(s)) return -1;
  size_t n = s->n, at = j + 1;
  memmove(s->t + at + 1, s->t + at, (s->nseg - at) * sizeof *s->t);
  memmove(s->slots + (at + 1) * n, s->slots + at * n, (s->nseg - at) * n * sizeof *s->slots);
  memmove(s->gpus + (at + 1) * n, s->gpus + at * n, (s->nseg - at) * n * sizeof *s->gpus);
  s->t[at] = e;
  memcpy(s->slots + at * n, s->slots + j * n, n * sizeof *s->slots);
  memcpy(s->gpus + at * n, s->gpus + j * n, n * sizeof *s->gpus);
  s->nseg++;
  return (long)at;
}

/* Minimum over segments [k, end of window) into wslots/wgpus; the window
 * ends at t[k] + dur. Returns 0 early when the window can no longer hold
 * `ranks` ranks in all. */
static int window_min(sched_ref *s, size_t k, double dur, uint32_t ranks) {
  size_t n = s->n;
  memcpy(s->wslots, s->slots + k * n, n * sizeof *s->wslots);
  memcpy(s->wgpus, s->gpus + k * n, n * sizeof *s->wgpus);
  double e = s->t[k] + dur;
  for (size_t j = k + 1; j < s->nseg && s->t[j] < e; j++) {
    uint64_t sum = 0;
    const uint32_t *a = s->slots + j * n, *b = s->gpus + j * n;
    for (size_t i = 0; i < n; i++) {
      if (a[i] < s->wslots[i]) s->wslots[i] = a[i];
      if (b[i] < s->wgpus[i]) s->wgpus[i] = b[i];
      sum += s->usable[i] ? s->wslots[i] : 0;
    }
    if (sum < ranks) return 0;
  }
  return 1;
}

/* Takes ranks_on out of every segment of [k, k + dur), splitting at the end. */
static int reserve(sched_ref *s, size_t k, double dur, const uint32_t *ranks_on, uint32_t gpr) {
  double e = s->t[k] + dur;
  long stop = (long)s->nseg;
  if (isfinite(e)) {
    stop = split_at(s, e);
    if (stop < 0) return -1;
  }
  for (long j = (long)k; j < stop; j++)
    for (size_t i = 0; i < s->n; i++) {
      s->slots[j * s->n + i] -= ranks_on[i];
      s->gpus[j * s->n + i] -= ranks_on[i] * gpr;
    }
  return 0;
}

static const sched_ref_running *g_run; /* qsort context */
static int by_end(const void *a, const void *b) {
  double x = g_run[*(const size_t *)a].end, y = g_run[*(const size_t *)b].end;
  return x < y ? -1 : x > y;
}

int sched_ref_pass(sched_ref *s, double now, const sched_node *nodes, size_t n, const sched_ref_running *running,
               size_t n_running, const sched_pending *pending, size_t n_pending, size_t depth,
               sched_ref_result *out, foil_err *err) {
  if (!depth) depth = 200;
  if (n != s->n) {  /* new node count: per-node buffers and profile resized */
    free(s->slots), free(s->gpus), free(s->t);
    s->slots = s->gpus = NULL, s->t = NULL, s->capseg = 0;
    s->n = n;
    size_t m = n ? n : 1;
    uint32_t **bufs[] = {&s->wslots, &s->wgpus, &s->tot_slots, &s->tot_gpus};
    for (size_t b = 0; b < 4; b++) {
      free(*bufs[b]);
      *bufs[b] = malloc(m * sizeof(uint32_t));
    }
    free(s->scratch), free(s->usable);
    s->scratch = malloc(2 * m * sizeof *s->scratch);
    s->usable = malloc(m * sizeof *s->usable);
    if (!s->wslots || !s->wgpus || !s->tot_slots || !s->tot_gpus || !s->scratch || !s->usable)
      return foil_err_set(err, FOIL_ENOMEM, "no memory for the scheduler");
  }
  s->nseg = 0;
  s->nalloc = 0;
  if (seg_room(s)) return foil_err_set(err, FOIL_ENOMEM, "no memory for the scheduler");
  s->t[0] = now;
  for (size_t i = 0; i < n; i++) {
    s->usable[i] = nodes[i].usable;
    s->slots[i] = nodes[i].usable ? nodes[i].slots_free : 0;
    s->gpus[i] = nodes[i].usable ? nodes[i].gpus_free : 0;
    s->tot_slots[i] = nodes[i].usable ? nodes[i].slots : 0;
    s->tot_gpus[i] = nodes[i].usable ? nodes[i].gpus : 0;
  }
  s->nseg = 1;
  /* releases of the running jobs, in end order; overdue ones end "soon" */
  size_t tmp = 0;
  if (grow((void **)&s->order, &tmp, n_running ? n_running : 1, sizeof *s->order))
    return foil_err_set(err, FOIL_ENOMEM, "no memory for the scheduler");
  for (size_t r = 0; r < n_running; r++) s->order[r] = r;
  g_run = running;
  qsort(s->order, n_running, sizeof *s->order, by_end);
  for (size_t q = 0; q < n_running; q++) {
    const sched_ref_running *r = &running[s->order[q]];
    if (!isfinite(r->end)) break;
    double t = r->end > now ? r->end : now + 1;
    if (s->t[s->nseg - 1] < t) {
      if (seg_room(s)) return foil_err_set(err, FOIL_ENOMEM, "no memory for the scheduler");
      s->t[s->nseg] = t;
      memcpy(s->slots + s->nseg * n, s->slots + (s->nseg - 1) * n, n * sizeof *s->slots);
      memcpy(s->gpus + s->nseg * n, s->gpus + (s->nseg - 1) * n, n * sizeof *s->gpus);
      s->nseg++;
    }
    uint32_t *a = s->slots + (s->nseg - 1) * n, *b = s->gpus + (s->nseg - 1) * n;
    for (size_t i = 0; i < n; i++) {
      if (!s->usable[i]) continue;
      a[i] += r->ranks_on[i];
      b[i] += r->ranks_on[i] * r->gpus_per_rank;
      if (a[i] > s->tot_slots[i]) a[i] = s->tot_slots[i];
      if (b[i] > s->tot_gpus[i]) b[i] = s->tot_gpus[i];
    }
  }
  /* placements: one row of n per job started (plus the row being tried),
   * grown as jobs start — O(starts × n), not O(pending × n). The rows may
   * move while they grow: out[].ranks_on is set once the pass is done. */
  size_t reserved = 0, m = n ? n : 1;
  for (size_t p = 0; p < n_pending; p++) {
    const sched_pending *j = &pending[p];
    sched_ref_result *o = &out[p];
    o->est_start = 0;
    o->ranks_on = NULL;
    uint32_t ranks = j->ranks ? j->ranks : 1;
    double dur = j->duration > 0 ? j->duration : INFINITY;
    if (!j->eligible) {
      o->verdict = SCHED_DEPENDENCY;
      continue;
    }
    if ((s->nalloc + 1) > SIZE_MAX / m / sizeof *s->alloc ||
        grow((void **)&s->alloc, &s->capalloc, (s->nalloc + 1) * m, sizeof *s->alloc))
      return foil_err_set(err, FOIL_ENOMEM, "no memory for the placements of %zu jobs on %zu workers",
                          s->nalloc + 1, n);
    uint32_t *ro = s->alloc + s->nalloc * n;
    if (!sched_ref_fit(s->tot_slots, s->tot_gpus, s->usable, n, j, ro, s->scratch)) {
      sched_pending any = *j;  /* would it fit over any number of workers? */
      any.max_nodes = 0;
      o->verdict = j->max_nodes && sched_ref_fit(s->tot_slots, s->tot_gpus, s->usable, n, &any, ro, s->scratch)
                       ? SCHED_TOO_WIDE
                       : SCHED_NEVER;
      continue;
    }
    int fits_now = sched_ref_fit(s->slots, s->gpus, s->usable, n, j, ro, s->scratch);
    size_t last = reserved < depth ? s->nseg : 1;  /* beyond depth: now or not at all */
    long found = -1;
    for (size_t k = 0; k < last && found < 0; k++) {
      if (k == 0 && !fits_now) continue;
      if (window_min(s, k, dur, ranks) && sched_ref_fit(s->wslots, s->wgpus, s->usable, n, j, ro, s->scratch))
        found = (long)k;
    }
    if (found < 0) {
      o->verdict = fits_now ? SCHED_PRIORITY : SCHED_RESOURCES;
      continue;
    }
    double start = s->t[found];
    if (reserve(s, (size_t)found, dur, ro, j->gpus_per_rank))
      return foil_err_set(err, FOIL_ENOMEM, "no memory for the scheduler");
    if (found == 0) {
      o->verdict = SCHED_START;
      o->est_start = now;
      s->nalloc++;
    } else {
      o->verdict = fits_now ? SCHED_PRIORITY : SCHED_RESOURCES;
      o->est_start = start;
      reserved++;
    }
  }
  /* the k-th start holds row k (alloc no longer moves) */
  size_t k = 0;
  for (size_t p = 0; p < n_pending; p++)
    if (out[p].verdict == SCHED_START) out[p].ranks_on = s->alloc + (k++) * n;
  return FOIL_OK;
}
