/* outbox.c — see outbox.h. */
#define _POSIX_C_SOURCE 200809L
#include "worker/agent/outbox.h"

#include <stdlib.h>
#include <string.h>

struct outbox {
  outbox_entry *e;
  size_t n, cap;
};

int outbox_new(outbox **out, foil_err *err) {
  *out = calloc(1, sizeof **out);
  return *out ? FOIL_OK : foil_err_set(err, FOIL_ENOMEM, "out of memory");
}

static void entry_free(outbox_entry *e) {
  if (e->kind == OUTBOX_STARTED) free(e->started.resume_from);
  else free(e->finished.message);
}

void outbox_destroy(outbox **op) {
  outbox *o = *op;
  if (!o) return;
  for (size_t i = 0; i < o->n; i++) entry_free(&o->e[i]);
  free(o->e);
  free(o);
  *op = NULL;
}

static outbox_entry *grow(outbox *o, foil_err *err) {
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
  char *m = strdup(f->message ? f->message : "");
  if (!m) return foil_err_set(err, FOIL_ENOMEM, "out of memory");
  x->kind = OUTBOX_FINISHED;
  x->request_id = request_id;
  foil__v1__finished__init(&x->finished);
  x->finished.job_id = f->job_id, x->finished.token = f->token, x->finished.state = f->state;
  x->finished.exit_code = f->exit_code, x->finished.signal = f->signal, x->finished.end_time = f->end_time;
  x->finished.message = m;
  o->n++;
  return FOIL_OK;
}

size_t outbox_len(const outbox *o) { return o->n; }
outbox_entry *outbox_at(outbox *o, size_t i) { return i < o->n ? &o->e[i] : NULL; }

outbox_entry *outbox_find(outbox *o, uint64_t request_id) {
  for (size_t i = 0; i < o->n; i++)
    if (o->e[i].request_id == request_id) return &o->e[i];
  return NULL;
}

static void remove_at(outbox *o, size_t i) {
  entry_free(&o->e[i]);
  memmove(&o->e[i], &o->e[i + 1], (o->n - i - 1) * sizeof *o->e);
  o->n--;
}

int outbox_ack(outbox *o, uint64_t request_id) {
  for (size_t i = 0; i < o->n; i++)
    if (o->e[i].request_id == request_id) {
      remove_at(o, i);
      return 1;
    }
  return 0;
}

int outbox_ack_register(outbox *o, uint64_t register_id) {
  int k = 0;
  for (size_t i = 0; i < o->n;)
    if (register_id && o->e[i].kind == OUTBOX_FINISHED && o->e[i].register_id == register_id) {
      remove_at(o, i);
      k++;
    } else {
      i++;
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
  for (size_t i = 0; i < o->n;)
    if (job_of(&o->e[i]) == job_id && token_of(&o->e[i]) == token) {
      remove_at(o, i);
      k++;
    } else {
      i++;
    }
  return k;
}

int outbox_finished_for_register(outbox *o, uint64_t register_id, Foil__V1__Finished ***out, size_t *n,
                                 foil_err *err) {
  *out = NULL, *n = 0;
  size_t k = 0;
  for (size_t i = 0; i < o->n; i++) k += o->e[i].kind == OUTBOX_FINISHED;
  if (!k) return FOIL_OK;
  Foil__V1__Finished **v = malloc(k * sizeof *v);
  if (!v) return foil_err_set(err, FOIL_ENOMEM, "out of memory");
  k = 0;
  for (size_t i = 0; i < o->n; i++)
    if (o->e[i].kind == OUTBOX_FINISHED) {
      o->e[i].register_id = register_id;
      v[k++] = &o->e[i].finished;
    }
  *out = v, *n = k;
  return FOIL_OK;
}
