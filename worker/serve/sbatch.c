/* sbatch.c — see sbatch.h. */
#include "worker/serve/sbatch.h"

#include <stdlib.h>

#include "worker/serve/sreq.h"

int sbatch_joins(int have, int add, int batch_max) { return have == 0 || have + add <= batch_max; }

int sbatch_plan(const Foil__V1__SearchRequest *const *reqs, int n, sbatch_plan_t **out, foil_err *err) {
  *out = NULL;
  /* one block: the plan, at most n groups, n request indices */
  size_t bytes = sizeof(sbatch_plan_t) + (size_t)(n ? n : 1) * (sizeof(sbatch_group) + sizeof(int));
  sbatch_plan_t *p = calloc(1, bytes);
  if (!p) return foil_err_set(err, FOIL_ENOMEM, "no memory to plan a batch of %d requests", n);
  p->groups = (sbatch_group *)(p + 1);
  int *idx = (int *)(p->groups + (n ? n : 1));
  int *group_of = malloc(sizeof(int) * (size_t)(n ? n : 1));
  if (!group_of) {
    free(p);
    return foil_err_set(err, FOIL_ENOMEM, "no memory to plan a batch of %d requests", n);
  }
  for (int i = 0; i < n; i++) {
    int k = sreq_k(reqs[i]);
    int64_t lo, hi;
    sreq_range(reqs[i], &lo, &hi);
    int g = 0;
    for (; g < p->ngroups; g++) {
      sbatch_group *x = &p->groups[g];
      if (x->k == k && ((x->lo > x->hi && lo > hi) || (x->lo == lo && x->hi == hi))) break;
    }
    if (g == p->ngroups) p->groups[p->ngroups++] = (sbatch_group){.k = k, .lo = lo, .hi = hi};
    group_of[i] = g;
    p->groups[g].nreq++;
    p->groups[g].nq += (int)reqs[i]->n_queries;
  }
  int at = 0;
  for (int g = 0; g < p->ngroups; g++) {
    p->groups[g].req = idx + at;
    at += p->groups[g].nreq;
    p->groups[g].nreq = 0;
  }
  for (int i = 0; i < n; i++) {
    sbatch_group *x = &p->groups[group_of[i]];
    x->req[x->nreq++] = i;
  }
  free(group_of);
  *out = p;
  return FOIL_OK;
}

void sbatch_free(sbatch_plan_t **p) {
  free(*p);
  *p = NULL;
}
