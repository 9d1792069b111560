/* sreq.h — the limits of a ServeRequest (proto/foil/v1/search.proto) and
 * the checks foil-serve and its router make before any work is done.
 *
 * A search is refused with FOIL_EINVAL (INVALID_ARGUMENT), naming the field
 * and the query, when it has no queries or more than SREQ_MAX_QUERIES, a k
 * over SREQ_MAX_K, a query with both or neither of vector and text, a text
 * over SREQ_MAX_TEXT bytes, a vector whose length is not the index's
 * dimension or holds a value that is not finite, or an id range with id_min > id_max. A text query against an
 * index that cannot encode text is FOIL_EPRECOND (FAILED_PRECONDITION) with
 * the reason the caller gives. Pure functions; no allocation.
 */
#ifndef FOIL_WORKER_SERVE_SREQ_H
#define FOIL_WORKER_SERVE_SREQ_H

#include <stdint.h>

#include <zmq.h>

#include "common/auth.h"
#include "common/err.h"
#include "foil/v1/search.pb-c.h"

#define SREQ_MAX_FRAME (16u << 20)  /* bytes of one request frame */
#define SREQ_MAX_QUERIES 1024
#define SREQ_MAX_K 1000
#define SREQ_DEFAULT_K 10
#define SREQ_MAX_TEXT 8192

/* The k a search asks for (0 means SREQ_DEFAULT_K). */
int sreq_k(const Foil__V1__SearchRequest *s);

/* The id filter as vs_search takes it: [lo, hi], or lo > hi for none. */
void sreq_range(const Foil__V1__SearchRequest *s, int64_t *lo, int64_t *hi);

/* Checks s against the limits. dim: the index's dimension, or 0 not to
 * check vector lengths (the router, which holds no index). no_text: NULL if
 * text queries can be answered, else why not (for FOIL_EPRECOND). *ntext
 * (may be NULL) receives the number of text queries. */
int sreq_check_search(const Foil__V1__SearchRequest *s, int dim, const char *no_text, int *ntext,
                      foil_err *err);

/* May the sender of frame (common/auth.h) make a request of this kind?
 * search and status: admin, submitter, reader; reload: admin; worker keys
 * nothing (FOIL_EPERM with a message). Without CURVE everyone is admin. */
int sreq_authorize(const auth *a, zmq_msg_t *frame, int body_case, foil_err *err);

#endif
