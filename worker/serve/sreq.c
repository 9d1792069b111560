/* sreq.c — see sreq.h. */
#include "worker/serve/sreq.h"

#include <math.h>
#include <string.h>

int sreq_k(const Foil__V1__SearchRequest *s) { return s->k ? (int)s->k : SREQ_DEFAULT_K; }

void sreq_range(const Foil__V1__SearchRequest *s, int64_t *lo, int64_t *hi) {
  if (s->id_range) {
    *lo = s->id_min, *hi = s->id_max;
  } else {
    *lo = 1, *hi = 0;
  }
}

int sreq_check_search(const Foil__V1__SearchRequest *s, int dim, const char *no_text, int *ntext,
                      foil_err *err) {
  if (ntext) *ntext = 0;
  if (!s->n_queries) return foil_err_set(err, FOIL_EINVAL, "search: no queries (give at least one)");
  if (s->n_queries > SREQ_MAX_QUERIES)
    return foil_err_set(err, FOIL_EINVAL, "search: %zu queries, over the limit of %d per request (split it)",
                        s->n_queries, SREQ_MAX_QUERIES);
  if (s->k > SREQ_MAX_K)
    return foil_err_set(err, FOIL_EINVAL, "search: k %u is over the limit of %d", s->k, SREQ_MAX_K);
  if (s->id_range && s->id_min > s->id_max)
    return foil_err_set(err, FOIL_EINVAL, "search: id range [%lld, %lld] is empty (id_min > id_max)",
                        (long long)s->id_min, (long long)s->id_max);
  int n = 0;
  for (size_t i = 0; i < s->n_queries; i++) {
    const Foil__V1__SearchQuery *q = s->queries[i];
    size_t tl = q->text ? strlen(q->text) : 0;
    if (q->n_vector && tl)
      return foil_err_set(err, FOIL_EINVAL, "search: query %zu has both a vector and a text (give one)", i);
    if (!q->n_vector && !tl)
      return foil_err_set(err, FOIL_EINVAL, "search: query %zu has neither a vector nor a text", i);
    if (tl > SREQ_MAX_TEXT)
      return foil_err_set(err, FOIL_EINVAL, "search: query %zu's text is %zu bytes, over the limit of %d", i,
                          tl, SREQ_MAX_TEXT);
    if (q->n_vector && dim && q->n_vector != (size_t)dim)
      return foil_err_set(err, FOIL_EINVAL, "search: query %zu's vector has %zu values; the index's dimension is %d",
                          i, q->n_vector, dim);
    for (size_t j = 0; j < q->n_vector; j++)
      if (!isfinite(q->vector[j]))
        return foil_err_set(err, FOIL_EINVAL, "search: query %zu's vector has a value that is not finite (at %zu)", i, j);
    if (tl) n++;
  }
  if (n && no_text)
    return foil_err_set(err, FOIL_EPRECOND, "search: this server cannot encode text queries: %s", no_text);
  if (ntext) *ntext = n;
  return FOIL_OK;
}

int sreq_authorize(const auth *a, zmq_msg_t *frame, int body_case, foil_err *err) {
  char who[AUTH_MAX_NAME + 1];
  int role = auth_peer(a, frame, who, sizeof who);
  if (role == AUTH_NONE) return foil_err_set(err, FOIL_EUNAUTH, "this connection carries no known identity");
  if (role == AUTH_WORKER)
    return foil_err_set(err, FOIL_EPERM, "key \"%s\" is a worker key: worker keys do not search", who);
  if (body_case == FOIL__V1__SERVE_REQUEST__BODY_RELOAD && role != AUTH_ADMIN)
    return foil_err_set(err, FOIL_EPERM, "key \"%s\" has the role %s: only admins ask foil-serve to reload", who,
                        auth_role_name(role));
  return FOIL_OK;
}
