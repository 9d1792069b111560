/* outbox.c — see outbox.h. */
#define _POSIX_C_SOURCE 200809L
#include "worker/agent/outbox.h"

#include <stdlib.h>
#include <string.h>

struct outbox {
  outbox_entry *e;
  size_t n, cap;
  size_t dead;  /* removed entries (kind 0) among the n, squeezed out by tidy */
};

int outbox_new(outbox **out, foil_err *err) {
  *out = calloc(1, sizeof **out);
  return *out ? FOIL_OK : foil_err_set(err, FOIL_ENOMEM, "out of memory");
}

static void entry_free(outbox_entry *e) {
  if (e->kind == OUTBOX_STARTED) free(e->started.resume_from);
  else if (e->kind == OUTBOX_FINISHED) free(e->finished.message);
}

void outbox_destroy(outbox **op) {
  outbox *o = *op;
  if (!o) return;
  for (size_t i = 0; i < o->n; i++) entry_free(&o->e[i]);
  free(o->e);
  free(o);
  *op = NULL;
}

/* Squeezes out the removed entries, keeping the order: O(n), once per
 * burst of acks (a removal in place would move the whole tail each time). */
static void tidy(outbox *o) {
  if (!o->dead) return;
  size_t k = 0;
  for (size_t i = 0; i < o->n; i++)
    if (o->e[i].kind) o->e[k++] = o->e[i];
  o->n = k, o->dead = 0;
}

static outbox_entry *grow(outbox *o, foil_err *err) {
  tidy(o);
  if (o->n == o->cap) {
    size_t cap = o->cap ? 2 * o->cap : 8;
    outbox_entry *e = realloc(o->e, cap * sizeof *e);
    if (!e) {
      foil_err_set(err, FOIL_ENOMEM, "out of memory");
      return NULL;
    }
    o->e = e, o->cap = cap;
  }
  outbox_entry *x = &o->e[o->n];
  memset(x, 0, sizeof *x);
  return x;
}

int outbox_add_started(outbox *o, const Foil__V1__Started *s, uint64_t request_id, foil_err *err) {
  outbox_entry *x = grow(o, err);
  if (!x) return FOIL_ENOMEM;
  char *rf = strdup(s->resume_from ? s->resume_from : "");
  if (!rf) return foil_err_set(err, FOIL_ENOMEM, "out of memory");
  x->kind = OUTBOX_STARTED;
  x->request_id = request_id;
  foil__v1__started__init(&x->started);
  x->started.job_id = s->job_id, x->started.token = s->token, x->started.pid = s->pid;
  x->started.resume_from = rf;
  o->n++;
  return FOIL_OK;
}

int outbox_add_finished(outbox *o, const Foil__V1__Finished *f, uint64_t request_id, foil_err *err) {
  outbox_entry *x = grow(o, err);
  if (!x) return FOIL_ENOMEM;
  const char *text = f->message ? f->message : "";
  size_t len = strnlen(text, OUTBOX_MAX_MESSAGE);
  char *m = malloc(len + 1);
  if (!m) return foil_err_set(err, FOIL_ENOMEM, "out of memory");
  foil_utf8_copy(m, len + 1, text);  /* cut at a character: proto3 strings are UTF-8 */
  x->kind = OUTBOX_FINISHED;
  x->request_id = request_id;
  foil__v1__finished__init(&x->finished);
  x->finished.job_id = f->job_id, x->finished.token = f->token, x->finished.state = f->state;
  x->finished.exit_code = f->exit_code, x->finished.signal = f->signal, x->finished.end_time = f->end_time;
  x->finished.not_started = f->not_started;
  x->finished.message = m;
  o->n++;
  return FOIL_OK;
}

size_t outbox_len(const outbox *o) { return o->n - o->dead; }

outbox_entry *outbox_at(outbox *o, size_t i) {
  tidy(o);
  return i < o->n ? &o->e[i] : NULL;
}

outbox_entry *outbox_find(outbox *o, uint64_t request_id) {
  for (size_t i = 0; i < o->n; i++)
    if (o->e[i].kind && o->e[i].request_id == request_id) return &o->e[i];
  return NULL;
}

static void remove_at(outbox *o, size_t i) {
  entry_free(&o->e[i]);
  o->e[i].kind = 0;
  o->dead++;
}

int outbox_ack(outbox *o, uint64_t request_id) {
  outbox_entry *e = outbox_find(o, request_id);
  if (!e) return 0;
  remove_at(o, (size_t)(e - o->e));
  return 1;
}

int outbox_ack_register(outbox *o, uint64_t register_id) {
  int k = 0;
  for (size_t i = 0; i < o->n; i++)
    if (register_id && o->e[i].kind == OUTBOX_FINISHED && o->e[i].register_id == register_id) {
      remove_at(o, i);
      k++;
    }
  return k;
}

static uint64_t job_of(const outbox_entry *e) {
  return e->kind == OUTBOX_STARTED ? e->started.job_id : e->finished.job_id;
}
static uint64_t token_of(const outbox_entry *e) {
  return e->kind == OUTBOX_STARTED ? e->started.token : e->finished.token;
}

int outbox_drop(outbox *o, uint64_t job_id, uint64_t token) {
  int k = 0;
  for (size_t i = 0; i < o->n; i++)
    if (o->e[i].kind && job_of(&o->e[i]) == job_id && token_of(&o->e[i]) == token) {
      remove_at(o, i);
      k++;
    }
  return k;
}

/* Bytes of a length-delimited field of a message: its tag (1 byte for the
 * field numbers used here, below 16), its length as a varint, its body. */
static size_t field_size(size_t body) {
  size_t n = 2;
  for (size_t v = body; v >= 0x80; v >>= 7) n++;
  return n + body;
}

static size_t ref_size(const outbox_entry *e) {
  Foil__V1__AttemptRef r = FOIL__V1__ATTEMPT_REF__INIT;
  r.job_id = e->finished.job_id, r.token = e->finished.token;
  return field_size(foil__v1__attempt_ref__get_packed_size(&r));
}

void outbox_register_free(outbox_register_mem *m) {
  free(m->finished);
  free(m->refs);
  free(m->running);
  memset(m, 0, sizeof *m);
}

int outbox_register(outbox *o, uint64_t register_id, Foil__V1__Register *r, size_t max_bytes,
                    outbox_register_mem *mem, size_t *left_out, foil_err *err) {
  memset(mem, 0, sizeof *mem);
  *left_out = 0;
  tidy(o);
  size_t nfin = 0;
  for (size_t i = 0; i < o->n; i++) nfin += o->e[i].kind == OUTBOX_FINISHED;
  if (!nfin) return FOIL_OK;
  mem->finished = malloc(nfin * sizeof *mem->finished);
  mem->refs = malloc(nfin * sizeof *mem->refs);
  mem->running = malloc((r->n_running + nfin) * sizeof *mem->running);
  if (!mem->finished || !mem->refs || !mem->running) {
    outbox_register_free(mem);
    return foil_err_set(err, FOIL_ENOMEM, "out of memory for a register of %zu finished report(s)", nfin);
  }
  for (size_t i = 0; i < r->n_running; i++) mem->running[i] = r->running[i];
  /* first every report by reference, then the oldest carried whole while
   * they fit: a carried one no longer needs its reference */
  size_t total = foil__v1__register__get_packed_size(r);
  for (size_t i = 0; i < o->n; i++)
    if (o->e[i].kind == OUTBOX_FINISHED) total += ref_size(&o->e[i]);
  size_t i = 0, k = 0, nref = 0, nrun = r->n_running;
  for (; i < o->n; i++) {
    outbox_entry *e = &o->e[i];
    if (e->kind != OUTBOX_FINISHED) continue;
    size_t whole = total - ref_size(e) + field_size(foil__v1__finished__get_packed_size(&e->finished));
    if (whole > max_bytes) break;
    total = whole;
    e->register_id = register_id;
    mem->finished[k++] = &e->finished;
  }
  for (; i < o->n; i++) {  /* the others: by reference (their own register_id, if any, stays) */
    outbox_entry *e = &o->e[i];
    if (e->kind != OUTBOX_FINISHED) continue;
    if (total > max_bytes) {  /* even the references do not fit: as few as needed are left out */
      total -= ref_size(e);
      ++*left_out;
      continue;
    }
    Foil__V1__AttemptRef *ref = &mem->refs[nref++];
    foil__v1__attempt_ref__init(ref);
    ref->job_id = e->finished.job_id, ref->token = e->finished.token;
    mem->running[nrun++] = ref;
  }
  r->finished = mem->finished, r->n_finished = k;
  r->running = mem->running, r->n_running = nrun;
  return FOIL_OK;
}

size_t outbox_finished_refs(outbox *o, Foil__V1__AttemptRef *refs, Foil__V1__AttemptRef **ptrs, size_t cap) {
  size_t n = 0;
  for (size_t i = 0; i < o->n && n < cap; i++) {
    if (o->e[i].kind != OUTBOX_FINISHED) continue;
    foil__v1__attempt_ref__init(&refs[n]);
    refs[n].job_id = o->e[i].finished.job_id, refs[n].token = o->e[i].finished.token;
    ptrs[n] = &refs[n];
    n++;
  }
  return n;
}
