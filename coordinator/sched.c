/* sched.c — see sched.h.
 *
 * The profile. What node i has free at time T is its free capacity now
 * (s0/g0, already less the jobs this pass started) plus the changes in its
 * list with times ≤ T. A change is a (time, Δslots, Δgpus) in uint32
 * arithmetic modulo 2^32, the same arithmetic as the dense reference, so
 * every value is the reference's to the bit: a running job's end adds its
 * ranks (capped at the node's total), a reservation subtracts its ranks at
 * its start and adds them back at its end, a started job adds them back at
 * its end. One change per node and time (two at the same time are merged:
 * a window's minimum is taken over whole segments). The global time axis
 * t[] (now, then every change time, sorted) is the reference's segment
 * starts, hence the candidate start times, in the same order; each time
 * lists the nodes that change there.
 *
 * A reservation sweeps the candidate times k = 1, 2, … keeping, per node,
 * the minimum over the window [t[k], t[k] + duration). Moving to the next
 * candidate only touches the nodes that change at t[k] (left edge) or in
 * the times entering on the right; the histogram of their capacities (ranks
 * they can take, for the job's GPUs per rank) is updated, and whether the
 * gang fits is read off the histogram in O(H) — the same answer sched_fit
 * gives on the window, since a fit depends only on the multiset of
 * capacities. The placement itself is sched_fit's, on the window, once.
 *
 * Memory: changes, per-time lists and the started jobs' places in pools
 * kept between passes; per node O(1) arrays.
 */
#include "coordinator/sched.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define NIL UINT32_MAX
/* histograms up to this many buckets; beyond (nodes of more than 65,535
 * slots) every fit is sched_fit's O(N) */
#define HIST_MAX (1u << 16)
#define MEMO 1024 /* failed shapes remembered per profile version */

typedef struct {
  double t;
  uint32_t ds, dg;  /* changes, modulo 2^32 */
  uint32_t next;    /* the node's next change (NIL: last) */
} schange;

typedef struct {
  uint32_t node, next;  /* a node changing at one time; next in that time's list */
} stnode;

typedef struct {
  uint64_t total, m;  /* Σ over a histogram's nodes of their (capped) capacity; nodes with room */
} shsum;

typedef struct {
  uint32_t gpr;
  size_t off;         /* histograms at hist + off: over totals, then free now (H each) */
  shsum tot, now;
} sclass;

/* Gangs of one kind (GPUs per rank, nodes, max_nodes, within the depth or
 * not) that found no window in the profile of `version`: any gang of that
 * kind with at least as many ranks and at least as long a time limit finds
 * none either (its windows hold theirs, its fit needs more), so it fails
 * at once. */
#define MEMO_WAYS 4
typedef struct {
  uint64_t version;  /* 0: empty */
  uint32_t gpr, nodes, max_nodes, within, n, next;
  uint32_t ranks[MEMO_WAYS];
  double dur[MEMO_WAYS];
} smemo;

typedef struct {
  double end;
  size_t r;
} send;

struct sched {
  size_t n;                           /* nodes of the current pass */
  uint32_t *s0, *g0, *tot_s, *tot_g;  /* per node: free now, total */
  int *usable;
  uint32_t *head, *tail;              /* per node: its changes, by time */
  uint32_t *ws, *wg;                  /* per node: window minimum */
  uint32_t *vs, *vg;                  /* a node's value at the last release (building) */
  uint32_t *off, *ea, *eb;            /* sweep: node i's entries [off[i], off[i+1]), window [ea, eb);
                                       * (ea, before the releases: the last running job naming node i) */
  uint32_t *hs, *ts, *hg, *tg;        /* sweep: node i's deques (slots, GPUs): dq*[h*, t*) */
  double *et;                         /* sweep: entries' times, values, deques (cape each) */
  uint32_t *es, *eg, *dqs, *dqg;
  size_t cape;
  uint32_t *stamp, epoch;             /* sweep: nodes touched at this step */
  uint8_t *dips;                      /* node has a change that lowers it */
  uint32_t *dlist;                    /* those nodes */
  size_t ndips;
  uint32_t *ro;                       /* a placement tried (n) */
  uint32_t *scratch, *bucket;         /* sched_fit: 2n; counting sort: nbucket */
  size_t nbucket, capbucket;
  schange *ch;                        /* pool of changes */
  size_t nch, capch;
  double *t;                          /* change times, sorted; t[0] = now */
  uint32_t *thead;                    /* per time: its nodes (into tn) */
  size_t nt, capt;
  stnode *tn;
  size_t ntn, captn;
  size_t H;                           /* histogram buckets (0: none this pass) */
  sclass *cls;                        /* per GPUs-per-rank value seen */
  size_t ncls, capcls;
  uint32_t *hist, *hw;                /* classes' histograms (2H each); a working one (H) */
  shsum hwsum;
  size_t caphist, caphw;
  smemo *memo;
  uint64_t version;
  sched_place *pl;                    /* the places of the jobs started, in pending order */
  size_t npl, cappl;
  send *order;                        /* running jobs by end */
  size_t capord;
};

int sched_new(sched **out, foil_err *err) {
  *out = calloc(1, sizeof **out);
  return *out ? FOIL_OK : foil_err_set(err, FOIL_ENOMEM, "no memory for the scheduler");
}

static void free_nodes(sched *s) {
  free(s->s0), free(s->g0), free(s->tot_s), free(s->tot_g), free(s->usable), free(s->head), free(s->tail);
  free(s->ws), free(s->wg), free(s->vs), free(s->vg), free(s->off), free(s->ea), free(s->eb), free(s->hs);
  free(s->ts), free(s->hg), free(s->tg), free(s->stamp), free(s->dips);
  free(s->dlist), free(s->ro), free(s->scratch);
}

void sched_destroy(sched **sp) {
  sched *s = *sp;
  if (!s) return;
  free_nodes(s);
  free(s->bucket), free(s->ch), free(s->t), free(s->thead), free(s->tn), free(s->cls), free(s->hist);
  free(s->hw), free(s->memo), free(s->pl), free(s->order), free(s->et), free(s->es), free(s->eg), free(s->dqs);
  free(s->dqg);
  free(s);
  *sp = NULL;
}

/* ranks a node can take: one slot each, gpus_per_rank GPUs each */
static uint32_t cap(uint32_t slots, uint32_t gpus, uint32_t gpr) {
  if (!gpr) return slots;
  uint32_t g = gpus / gpr;
  return g < slots ? g : slots;
}

/* a before b: more capacity, or as much and a lower index */
static int before(uint32_t a, uint32_t b, const uint32_t *caps) {
  return caps[a] > caps[b] || (caps[a] == caps[b] && a < b);
}

/* Heap sort's sift-down of idx[p] in idx[0..end): the last in order on top. */
static void sift(uint32_t *idx, size_t p, size_t end, const uint32_t *caps) {
  for (size_t c; (c = 2 * p + 1) < end; p = c) {
    if (c + 1 < end && before(idx[c], idx[c + 1], caps)) c++;
    if (!before(idx[p], idx[c], caps)) break;
    uint32_t x = idx[p];
    idx[p] = idx[c], idx[c] = x;
  }
}

/* Orders idx[0..m) by capacity, largest first, then by index: counting
 * sort, O(m + max) when bucket has room, else a heap sort, O(m log m).
 * (A total order, so both give the same sequence.) */
static void by_cap_desc(uint32_t *idx, size_t m, const uint32_t *caps, size_t n, uint32_t *bucket,
                        size_t nbucket) {
  uint32_t hi = 0;
  for (size_t k = 0; k < m; k++)
    if (caps[idx[k]] > hi) hi = caps[idx[k]];
  if (bucket && hi < nbucket && hi <= 4 * m + 64) {
    memset(bucket, 0, (hi + 1) * sizeof *bucket);
    for (size_t k = 0; k < m; k++) bucket[caps[idx[k]]]++;
    uint32_t at = 0;
    for (uint32_t c = hi; c > 0; c--) {
      uint32_t cnt = bucket[c];
      bucket[c] = at;
      at += cnt;
    }
    for (size_t i = 0; i < n; i++)
      if (caps[i]) idx[bucket[caps[i]]++] = (uint32_t)i;
    return;
  }
  for (size_t r = m / 2; r-- > 0;) sift(idx, r, m, caps);
  for (size_t end = m; end > 1; end--) {
    uint32_t x = idx[0];
    idx[0] = idx[end - 1], idx[end - 1] = x;
    sift(idx, 0, end - 1, caps);
  }
}

static int fit(const uint32_t *slots, const uint32_t *gpus, const int *usable, size_t n, const sched_pending *job,
               uint32_t *ranks_on, uint32_t *scratch, uint32_t *bucket, size_t nbucket) {
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
    by_cap_desc(idx, m, caps, n, bucket, nbucket);
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
  by_cap_desc(idx, m, caps, n, bucket, nbucket);
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

int sched_fit(const uint32_t *slots, const uint32_t *gpus, const int *usable, size_t n,
              const sched_pending *job, uint32_t *ranks_on, uint32_t *scratch) {
  return fit(slots, gpus, usable, n, job, ranks_on, scratch, NULL, 0);
}

/* Whether a gang fits on nodes whose capacities h counts (h[c]: nodes that
 * take c ranks, the last bucket also counting larger ones): sched_fit's
 * answer without placing, O(H). Capping at H - 1 changes no answer: H - 1
 * is at least the gang's ranks, or no node reaches it. */
static int hist_fit(const uint32_t *h, size_t H, const shsum *x, const sched_pending *j) {
  uint64_t ranks = j->ranks ? j->ranks : 1, m = x->m;
  if (x->total < ranks) return 0;
  if (!j->nodes) {
    if (!j->max_nodes) return 1;  /* all of them, if need be */
    for (size_t c = ranks; c < H; c++)
      if (h[c]) return 1;  /* one worker takes it all */
    uint64_t left = ranks, budget = j->max_nodes ? j->max_nodes : UINT64_MAX;
    for (size_t c = H - 1; c >= 1 && left && budget; c--) {
      uint64_t take = h[c] < budget ? h[c] : budget, got = take * c;
      left = got >= left ? 0 : left - got;
      budget -= take;
    }
    return left == 0;
  }
  uint64_t want = j->nodes;
  if (want > ranks || want > m || (j->max_nodes && want > j->max_nodes)) return 0;
  /* sorted largest first, node k needs base (+1 for the first `extra`) */
  uint64_t base = ranks / want, extra = ranks % want, ge_base = 0, ge_more = 0;
  for (size_t c = H - 1; c >= 1 && c >= base; c--) {
    ge_base += h[c];
    if (c > base) ge_more += h[c];
  }
  return ge_base >= want && ge_more >= extra;
}

static size_t bkt(uint32_t c, size_t H) { return c < H ? c : H - 1; }

/* A node moves from bucket `from` to bucket `to`. */
static void hmove(uint32_t *h, shsum *x, size_t from, size_t to) {
  h[from]--, h[to]++;
  x->total = x->total - from + to;
  x->m = x->m - (from > 0) + (to > 0);
}

static int grow(void **p, size_t *cap_, size_t need, size_t elem) {
  if (need <= *cap_) return 0;
  size_t c = *cap_ ? *cap_ : 16;
  while (c < need) c *= 2;
  if (c > SIZE_MAX / elem) return -1;
  void *q = realloc(*p, c * elem);
  if (!q) return -1;
  *p = q;
  *cap_ = c;
  return 0;
}

/* grow() for k parallel arrays sharing one capacity *cap_: all or, on
 * failure (-1), *cap_ unchanged (an array already grown stays valid). */
static int grow_all(void **const *ps, const size_t *elem, size_t k, size_t *cap_, size_t need) {
  if (need <= *cap_) return 0;
  size_t c = *cap_ ? *cap_ : 16;
  while (c < need) c *= 2;
  for (size_t a = 0; a < k; a++) {
    void *q = c > SIZE_MAX / elem[a] ? NULL : realloc(*ps[a], c * elem[a]);
    if (!q) return -1;
    *ps[a] = q;
  }
  *cap_ = c;
  return 0;
}

/* The index of time e in t[], inserted (with an empty node list) if new.
 * O(log S + S) (the shift). -1: no memory. */
static long time_at(sched *s, double e) {
  size_t lo = 0, hi = s->nt;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (s->t[mid] < e) lo = mid + 1;
    else hi = mid;
  }
  if (lo < s->nt && s->t[lo] == e) return (long)lo;
  void **arrays[] = {(void **)&s->t, (void **)&s->thead};
  const size_t elems[] = {sizeof *s->t, sizeof *s->thead};
  if (grow_all(arrays, elems, 2, &s->capt, s->nt + 1)) return -1;
  memmove(s->t + lo + 1, s->t + lo, (s->nt - lo) * sizeof *s->t);
  memmove(s->thead + lo + 1, s->thead + lo, (s->nt - lo) * sizeof *s->thead);
  s->t[lo] = e;
  s->thead[lo] = NIL;
  s->nt++;
  return (long)lo;
}

/* Adds (ds, dg) to node i at time t[ti]: merged into its change at that
 * time, or a new change listed under t[ti]. O(changes of i) (O(1) at its
 * end). -1: no memory. */
static int change(sched *s, uint32_t i, size_t ti, uint32_t ds, uint32_t dg) {
  double t = s->t[ti];
  uint32_t prev = NIL, e = s->head[i];
  if (s->tail[i] != NIL && s->ch[s->tail[i]].t <= t) prev = s->tail[i], e = NIL;
  while (e != NIL && s->ch[e].t < t) prev = e, e = s->ch[e].next;
  if (prev != NIL && s->ch[prev].t == t) e = prev;
  if (e != NIL && s->ch[e].t == t) {
    s->ch[e].ds += ds;
    s->ch[e].dg += dg;
    return 0;
  }
  if (grow((void **)&s->ch, &s->capch, s->nch + 1, sizeof *s->ch) ||
      grow((void **)&s->tn, &s->captn, s->ntn + 1, sizeof *s->tn))
    return -1;
  uint32_t x = (uint32_t)s->nch++;
  s->ch[x] = (schange){t, ds, dg, e};
  if (prev == NIL) s->head[i] = x;
  else s->ch[prev].next = x;
  if (e == NIL) s->tail[i] = x;
  s->tn[s->ntn] = (stnode){i, s->thead[ti]};
  s->thead[ti] = (uint32_t)s->ntn++;
  return 0;
}

static void dip(sched *s, uint32_t i) {
  if (!s->dips[i]) s->dips[i] = 1, s->dlist[s->ndips++] = i;
}

/* Node i's minimum over the changes from c while their time is < e,
 * starting from (vs, vg). O(changes in the window). */
static void window(const sched *s, uint32_t c, double e, uint32_t vs, uint32_t vg, uint32_t *ms, uint32_t *mg) {
  uint32_t a = vs, b = vg;
  for (; c != NIL && s->ch[c].t < e; c = s->ch[c].next) {
    vs += s->ch[c].ds, vg += s->ch[c].dg;
    if (vs < a) a = vs;
    if (vg < b) b = vg;
  }
  *ms = a, *mg = b;
}

/* The histograms of the class for gpus_per_rank gpr (built on first use:
 * O(N)); NULL: no memory. */
static sclass *class_of(sched *s, uint32_t gpr) {
  for (size_t k = 0; k < s->ncls; k++)
    if (s->cls[k].gpr == gpr) return &s->cls[k];
  size_t H = s->H, off = s->ncls * 2 * H;
  if (grow((void **)&s->cls, &s->capcls, s->ncls + 1, sizeof *s->cls) ||
      grow((void **)&s->hist, &s->caphist, off + 2 * H, sizeof *s->hist))
    return NULL;
  uint32_t *tot = s->hist + off, *now = tot + H;
  memset(tot, 0, 2 * H * sizeof *tot);
  sclass c = {gpr, off, {0, 0}, {0, 0}};
  for (size_t i = 0; i < s->n; i++) {
    if (!s->usable[i]) continue;
    size_t a = bkt(cap(s->tot_s[i], s->tot_g[i], gpr), H), b = bkt(cap(s->s0[i], s->g0[i], gpr), H);
    tot[a]++, now[b]++;
    c.tot.total += a, c.tot.m += a > 0, c.now.total += b, c.now.m += b > 0;
  }
  s->cls[s->ncls] = c;
  return &s->cls[s->ncls++];
}

/* Window minima for the window [now, now + dur): free now, except on the
 * nodes with a change that lowers them. O(N + their changes). */
static void window0(sched *s, double dur) {
  memcpy(s->ws, s->s0, s->n * sizeof *s->ws);
  memcpy(s->wg, s->g0, s->n * sizeof *s->wg);
  double e = s->t[0] + dur;
  for (size_t d = 0; d < s->ndips; d++) {
    uint32_t i = s->dlist[d];
    window(s, s->head[i], e, s->s0[i], s->g0[i], &s->ws[i], &s->wg[i]);
  }
}

/* Whether the job fits over [now, now + dur), given that it fits now:
 * the class's histogram of free-now corrected on the nodes whose capacity
 * dips in the window. O(H + dipping nodes' changes); without histograms
 * O(N) (the minima are left in ws/wg). */
static int fits0(sched *s, const sclass *c, const sched_pending *j, double dur) {
  if (!s->H) {
    window0(s, dur);
    return fit(s->ws, s->wg, s->usable, s->n, j, s->ro, s->scratch, s->bucket, s->nbucket);
  }
  size_t H = s->H;
  uint32_t gpr = j->gpus_per_rank;
  memcpy(s->hw, s->hist + c->off + H, H * sizeof *s->hw);
  s->hwsum = c->now;
  double e = s->t[0] + dur;
  for (size_t d = 0; d < s->ndips; d++) {
    uint32_t i = s->dlist[d], ms, mg;
    window(s, s->head[i], e, s->s0[i], s->g0[i], &ms, &mg);
    size_t from = bkt(cap(s->s0[i], s->g0[i], gpr), H), to = bkt(cap(ms, mg, gpr), H);
    if (from != to) hmove(s->hw, &s->hwsum, from, to);
  }
  return hist_fit(s->hw, H, &s->hwsum, j);
}

/* Node i's window after its edges moved to T and e: the sweep lays out
 * each node's values as entries (the value now, then the value after each
 * change, in time order); the window is the entries [a, b) — a the last at
 * or before T, b the first at or after e (past a) — and a deque per
 * resource holds the entries in it that a later entry does not undercut,
 * so its front is the minimum. Both edges only move right: amortized O(1)
 * per entry over a sweep. */
static void slide(sched *s, uint32_t i, double T, double e) {
  uint32_t a = s->ea[i], b = s->eb[i], end = s->off[i + 1];
  while (a + 1 < end && s->et[a + 1] <= T) a++;
  for (; b < end && (s->et[b] < e || b <= a); b++) {
    while (s->ts[i] > s->hs[i] && s->es[s->dqs[s->ts[i] - 1]] >= s->es[b]) s->ts[i]--;
    s->dqs[s->ts[i]++] = b;
    while (s->tg[i] > s->hg[i] && s->eg[s->dqg[s->tg[i] - 1]] >= s->eg[b]) s->tg[i]--;
    s->dqg[s->tg[i]++] = b;
  }
  while (s->dqs[s->hs[i]] < a) s->hs[i]++;
  while (s->dqg[s->hg[i]] < a) s->hg[i]++;
  s->ws[i] = s->es[s->dqs[s->hs[i]]], s->wg[i] = s->eg[s->dqg[s->hg[i]]];
  s->ea[i] = a, s->eb[i] = b;
}

/* slide() for a node once per step, keeping the histogram. */
static void touch(sched *s, uint32_t i, double T, double e, uint32_t gpr) {
  if (s->stamp[i] == s->epoch) return;
  s->stamp[i] = s->epoch;
  size_t H = s->H, from = H ? bkt(cap(s->ws[i], s->wg[i], gpr), H) : 0;
  slide(s, i, T, e);
  if (H) hmove(s->hw, &s->hwsum, from, bkt(cap(s->ws[i], s->wg[i], gpr), H));
}

/* The first candidate k in [1, last) whose window [t[k], t[k] + dur) holds
 * the gang, or -1 (-2: no memory); ws/wg then hold that window's minima. */
static long sweep(sched *s, const sched_pending *j, double dur, size_t last) {
  size_t n = s->n, H = s->H, r;
  uint32_t gpr = j->gpus_per_rank;
  double T = s->t[1], e = T + dur;
  if (H) memset(s->hw, 0, H * sizeof *s->hw);
  s->hwsum = (shsum){0, 0};
  /* entries: O(N + changes) */
  void **arrays[] = {(void **)&s->et, (void **)&s->es, (void **)&s->eg, (void **)&s->dqs, (void **)&s->dqg};
  const size_t elems[] = {sizeof *s->et, sizeof *s->es, sizeof *s->eg, sizeof *s->dqs, sizeof *s->dqg};
  if (grow_all(arrays, elems, 5, &s->cape, s->nch + n + 1)) return -2;
  uint32_t o = 0;
  for (size_t i = 0; i < n; i++) {
    s->off[i] = s->ea[i] = s->eb[i] = s->hs[i] = s->ts[i] = s->hg[i] = s->tg[i] = o;
    if (!s->usable[i]) {
      s->ws[i] = s->wg[i] = 0;
      continue;
    }
    uint32_t vs = s->s0[i], vg = s->g0[i];
    s->et[o] = s->t[0], s->es[o] = vs, s->eg[o++] = vg;
    for (uint32_t c = s->head[i]; c != NIL; c = s->ch[c].next) {
      vs += s->ch[c].ds, vg += s->ch[c].dg;
      s->et[o] = s->ch[c].t, s->es[o] = vs, s->eg[o++] = vg;
    }
  }
  s->off[n] = o;
  for (size_t i = 0; i < n; i++) {
    if (!s->usable[i]) continue;
    slide(s, (uint32_t)i, T, e);
    if (H) {
      size_t b = bkt(cap(s->ws[i], s->wg[i], gpr), H);
      s->hw[b]++, s->hwsum.total += b, s->hwsum.m += b > 0;
    }
  }
  for (r = 2; r < s->nt && s->t[r] < e; r++) {}
  for (size_t k = 1; k < last; k++) {
    if (k > 1) {
      T = s->t[k], e = T + dur;
      if (++s->epoch == 0) {
        memset(s->stamp, 0, n * sizeof *s->stamp);
        s->epoch = 1;
      }
      /* the nodes that change at t[k], then those changing in [old e, e) */
      for (uint32_t x = s->thead[k]; x != NIL; x = s->tn[x].next) touch(s, s->tn[x].node, T, e, gpr);
      for (; r < s->nt && s->t[r] < e; r++)
        for (uint32_t x = s->thead[r]; x != NIL; x = s->tn[x].next) touch(s, s->tn[x].node, T, e, gpr);
    }
    if (H ? hist_fit(s->hw, H, &s->hwsum, j) : fit(s->ws, s->wg, s->usable, n, j, s->ro, s->scratch, s->bucket, s->nbucket))
      return (long)k;
  }
  return -1;
}

static int by_end(const void *a, const void *b) {
  double x = ((const send *)a)->end, y = ((const send *)b)->end;
  return x < y ? -1 : x > y;
}

static smemo *memo_of(sched *s, const sched_pending *j, int within) {
  uint64_t h = (j->gpus_per_rank + 1) * 0x9E3779B97F4A7C15ull ^ (j->nodes + 7) * 0xC2B2AE3D27D4EB4Full ^
               (j->max_nodes + 3) * 0x165667B19E3779F9ull ^ (uint64_t)within;
  h ^= h >> 29;
  h *= 0xBF58476D1CE4E5B9ull;
  smemo *m = &s->memo[(h >> 40) % MEMO];
  if (m->version != s->version || m->gpr != j->gpus_per_rank || m->nodes != j->nodes ||
      m->max_nodes != j->max_nodes || m->within != (uint32_t)within)
    *m = (smemo){s->version, j->gpus_per_rank, j->nodes, j->max_nodes, (uint32_t)within, 0, 0, {0}, {0}};
  return m;
}

static int memo_fails(const smemo *m, uint32_t ranks, double dur) {
  for (uint32_t k = 0; k < m->n; k++)
    if (ranks >= m->ranks[k] && dur >= m->dur[k]) return 1;
  return 0;
}

static void memo_add(smemo *m, uint32_t ranks, double dur) {
  uint32_t k = m->n < MEMO_WAYS ? m->n++ : m->next++ % MEMO_WAYS;
  m->ranks[k] = ranks, m->dur[k] = dur;
}

/* Node i's capacity becomes (ns, ng) from time t[ti] on, as the running
 * jobs' releases are laid out in time order (vs/vg: its capacity so far).
 * At t[0] (now + 1 == now: now ≥ 2^53) that is its capacity now, as the
 * reference's first segment. -1: no memory. */
static int release(sched *s, uint32_t i, size_t ti, uint32_t ns, uint32_t ng) {
  if (ns == s->vs[i] && ng == s->vg[i]) return 0;
  if (!ti) {
    s->s0[i] = ns, s->g0[i] = ng;
  } else {
    if (change(s, i, ti, ns - s->vs[i], ng - s->vg[i])) return -1;
    if (ns < s->vs[i] || ng < s->vg[i]) dip(s, i);
  }
  s->vs[i] = ns, s->vg[i] = ng;
  return 0;
}

/* (Re)allocates the per-node arrays for n nodes. */
static int nodes_alloc(sched *s, size_t n) {
  free_nodes(s);
  size_t m = n ? n : 1;
  uint32_t **u[] = {&s->s0, &s->g0, &s->tot_s, &s->tot_g, &s->head, &s->tail, &s->ws, &s->wg,
                    &s->vs, &s->vg, &s->ea, &s->eb, &s->hs, &s->ts, &s->hg, &s->tg, &s->dlist, &s->ro};
  for (size_t k = 0; k < sizeof u / sizeof *u; k++) *u[k] = malloc(m * sizeof(uint32_t));
  s->stamp = calloc(m, sizeof *s->stamp);
  s->off = malloc((m + 1) * sizeof *s->off);
  s->usable = malloc(m * sizeof *s->usable);
  s->dips = calloc(m, 1);
  s->scratch = malloc(2 * m * sizeof *s->scratch);
  s->n = n, s->ndips = 0, s->epoch = 0;
  for (size_t k = 0; k < sizeof u / sizeof *u; k++)
    if (!*u[k]) return -1;
  return s->stamp && s->off && s->usable && s->dips && s->scratch ? 0 : -1;
}

int sched_pass(sched *s, double now, const sched_node *nodes, size_t n, const sched_running *running,
               size_t n_running, const sched_pending *pending, size_t n_pending, size_t depth,
               sched_result *out, foil_err *err) {
  if (!depth) depth = 200;
  if (n >= NIL) return foil_err_set(err, FOIL_EINVAL, "%zu workers: more than the scheduler takes", n);
  if ((n != s->n || !s->s0) && nodes_alloc(s, n)) {
    s->n = 0;
    return foil_err_set(err, FOIL_ENOMEM, "no memory for the scheduler");
  }
  for (size_t d = 0; d < s->ndips; d++) s->dips[s->dlist[d]] = 0;
  s->ndips = s->nch = s->ntn = s->ncls = s->npl = 0;
  s->version++;
  /* nodes; histograms up to the largest capacity any gang here can use */
  uint32_t maxcap = 0, maxranks = 0;
  for (size_t i = 0; i < n; i++) {
    int u = nodes[i].usable != 0;
    s->usable[i] = u;
    s->s0[i] = s->vs[i] = u ? nodes[i].slots_free : 0;
    s->g0[i] = s->vg[i] = u ? nodes[i].gpus_free : 0;
    s->tot_s[i] = u ? nodes[i].slots : 0;
    s->tot_g[i] = u ? nodes[i].gpus : 0;
    s->head[i] = s->tail[i] = NIL;
    if (s->s0[i] > maxcap) maxcap = s->s0[i];
    if (s->tot_s[i] > maxcap) maxcap = s->tot_s[i];
  }
  for (size_t p = 0; p < n_pending; p++) {
    uint32_t r = pending[p].ranks ? pending[p].ranks : 1;
    if (pending[p].eligible && r > maxranks) maxranks = r;
  }
  size_t C = maxcap < maxranks ? maxcap : maxranks;
  s->H = C + 1 <= HIST_MAX ? C + 1 : 0;
  s->nbucket = maxcap < HIST_MAX ? (size_t)maxcap + 1 : 0;
  if ((s->H && grow((void **)&s->hw, &s->caphw, s->H, sizeof *s->hw)) ||
      grow((void **)&s->bucket, &s->capbucket, s->nbucket ? s->nbucket : 1, sizeof *s->bucket) ||
      (!s->memo && !(s->memo = calloc(MEMO, sizeof *s->memo))) ||
      grow((void **)&s->order, &s->capord, n_running ? n_running : 1, sizeof *s->order) ||
      (s->nt = 0, time_at(s, now) < 0))
    return foil_err_set(err, FOIL_ENOMEM, "no memory for the scheduler");
  /* each running job on distinct nodes of this pass */
  if (n_running >= NIL) return foil_err_set(err, FOIL_EINVAL, "%zu running jobs: more than the scheduler takes", n_running);
  for (size_t i = 0; i < n; i++) s->ea[i] = NIL;
  for (size_t r = 0; r < n_running; r++)
    for (size_t k = 0; k < running[r].n_place; k++) {
      uint32_t i = running[r].place[k].node;
      if (i >= n) return foil_err_set(err, FOIL_EINVAL, "running job %zu is on worker %u of %zu", r, i, n);
      if (s->ea[i] == r) return foil_err_set(err, FOIL_EINVAL, "running job %zu lists worker %u twice", r, i);
      s->ea[i] = (uint32_t)r;
    }
  /* releases of the running jobs, in end order; overdue ones end "soon" */
  for (size_t r = 0; r < n_running; r++) s->order[r] = (send){running[r].end, r};
  qsort(s->order, n_running, sizeof *s->order, by_end);
  for (size_t q = 0; q < n_running; q++) {
    const sched_running *r = &running[s->order[q].r];
    if (!isfinite(r->end)) break;
    double t = r->end > now ? r->end : now + 1;
    if (s->t[s->nt - 1] < t && time_at(s, t) < 0)
      return foil_err_set(err, FOIL_ENOMEM, "no memory for the scheduler");
    size_t ti = s->nt - 1;
    for (size_t k = 0; k < r->n_place; k++) {
      uint32_t i = r->place[k].node, x = r->place[k].ranks;
      if (!s->usable[i]) continue;
      uint32_t ns = s->vs[i] + x, ng = s->vg[i] + x * r->gpus_per_rank;
      if (ns > s->tot_s[i]) ns = s->tot_s[i];
      if (ng > s->tot_g[i]) ng = s->tot_g[i];
      if (release(s, i, ti, ns, ng)) return foil_err_set(err, FOIL_ENOMEM, "no memory for the scheduler");
    }
    for (size_t i = 0; q == 0 && i < n; i++) /* the first release caps every node at its total */
      if (release(s, (uint32_t)i, ti, s->vs[i] < s->tot_s[i] ? s->vs[i] : s->tot_s[i],
                  s->vg[i] < s->tot_g[i] ? s->vg[i] : s->tot_g[i]))
        return foil_err_set(err, FOIL_ENOMEM, "no memory for the scheduler");
  }
  size_t reserved = 0;
  for (size_t p = 0; p < n_pending; p++) {
    const sched_pending *j = &pending[p];
    sched_result *o = &out[p];
    o->est_start = 0;
    o->place = NULL;
    o->n_place = 0;
    if (!j->eligible) {
      o->verdict = SCHED_DEPENDENCY;
      continue;
    }
    double dur = j->duration > 0 ? j->duration : INFINITY;
    int within = reserved < depth;
    sclass *c = NULL;
    if (s->H && !(c = class_of(s, j->gpus_per_rank)))
      return foil_err_set(err, FOIL_ENOMEM, "no memory for the scheduler");
    const uint32_t *ht = c ? s->hist + c->off : NULL, *hn = c ? ht + s->H : NULL;
    long found = -1;
    int fits_now = 0;
    if (!(c ? hist_fit(ht, s->H, &c->tot, j)
            : fit(s->tot_s, s->tot_g, s->usable, n, j, s->ro, s->scratch, s->bucket, s->nbucket))) {
      sched_pending any = *j;  /* would it fit over any number of workers? */
      any.max_nodes = 0;
      o->verdict = j->max_nodes && (c ? hist_fit(ht, s->H, &c->tot, &any)
                                      : fit(s->tot_s, s->tot_g, s->usable, n, &any, s->ro, s->scratch, s->bucket,
                                            s->nbucket))
                       ? SCHED_TOO_WIDE
                       : SCHED_NEVER;
    } else {
      fits_now = c ? hist_fit(hn, s->H, &c->now, j)
                   : fit(s->s0, s->g0, s->usable, n, j, s->ro, s->scratch, s->bucket, s->nbucket);
      size_t last = within ? s->nt : 1;  /* beyond depth: now or not at all */
      uint32_t ranks = j->ranks ? j->ranks : 1;
      smemo *mo = memo_of(s, j, within);
      if (!memo_fails(mo, ranks, dur)) {
        if (fits_now && fits0(s, c, j, dur)) found = 0;
        if (found < 0 && last > 1 && (found = sweep(s, j, dur, last)) == -2)
          return foil_err_set(err, FOIL_ENOMEM, "no memory for the scheduler");
        if (found < 0) memo_add(mo, ranks, dur);
      }
      o->verdict = fits_now ? SCHED_PRIORITY : SCHED_RESOURCES;
    }
    if (found < 0) continue;
    /* place it on the window's minima, and take it out of the profile */
    if (found == 0 && s->H) window0(s, dur);
    uint32_t *ro = s->ro, gpr = j->gpus_per_rank;
    if (!fit(s->ws, s->wg, s->usable, n, j, ro, s->scratch, s->bucket, s->nbucket))
      return foil_err_set(err, FOIL_EINTERNAL, "scheduler: job %zu fits its window but cannot be placed", p);
    double start = s->t[found], e = start + dur;
    long te = -1;
    if (isfinite(e) && (te = time_at(s, e)) < 0) return foil_err_set(err, FOIL_ENOMEM, "no memory for the scheduler");
    for (size_t i = 0; i < n; i++) {
      if (!ro[i]) continue;
      if (found == 0) { /* the start's places */
        if (grow((void **)&s->pl, &s->cappl, s->npl + 1, sizeof *s->pl))
          return foil_err_set(err, FOIL_ENOMEM, "no memory for the places of the jobs started");
        s->pl[s->npl++] = (sched_place){(uint32_t)i, ro[i]};
        o->n_place++;
      }
      if (te == found) continue; /* a window too short to end after its start reserves nothing */
      uint32_t dg = ro[i] * gpr;
      if (found == 0) {
        uint32_t ns = s->s0[i] - ro[i], ng = s->g0[i] - dg;
        for (size_t k = 0; s->H && k < s->ncls; k++) {
          sclass *x = &s->cls[k];
          hmove(s->hist + x->off + s->H, &x->now, bkt(cap(s->s0[i], s->g0[i], x->gpr), s->H),
                bkt(cap(ns, ng, x->gpr), s->H));
        }
        s->s0[i] = ns, s->g0[i] = ng;
      } else {
        if (change(s, (uint32_t)i, (size_t)found, 0u - ro[i], 0u - dg))
          return foil_err_set(err, FOIL_ENOMEM, "no memory for the scheduler");
        dip(s, (uint32_t)i);
      }
      if (te >= 0 && change(s, (uint32_t)i, (size_t)te, ro[i], dg))
        return foil_err_set(err, FOIL_ENOMEM, "no memory for the scheduler");
    }
    s->version++;
    if (found == 0) {
      o->verdict = SCHED_START;
      o->est_start = now;
    } else {
      o->verdict = fits_now ? SCHED_PRIORITY : SCHED_RESOURCES;
      o->est_start = start;
      reserved++;
    }
  }
  /* the starts' places, in order (the pool no longer moves) */
  size_t at = 0;
  for (size_t p = 0; p < n_pending; p++)
    if (out[p].verdict == SCHED_START) out[p].place = s->pl + at, at += out[p].n_place;
  return FOIL_OK;
}

size_t sched_bytes(const sched *s) {
  size_t n = s->n ? s->n : 1;
  return sizeof *s + n * (16 * sizeof(uint32_t) + sizeof(int) + 1) + s->capbucket * sizeof *s->bucket +
         s->capch * sizeof *s->ch + s->capt * (sizeof *s->t + sizeof *s->thead) + s->captn * sizeof *s->tn +
         s->capcls * sizeof *s->cls + (s->caphist + s->caphw) * sizeof(uint32_t) +
         (s->memo ? MEMO * sizeof *s->memo : 0) + s->cappl * sizeof *s->pl + s->capord * sizeof *s->order;
}
