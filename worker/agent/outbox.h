/* outbox.h — the worker's messages that must reach the coordinator:
 * `started` and `finished` of each attempt, kept until an Ack with the same
 * request_id arrives (worker.proto). Each entry keeps one request_id for
 * its whole life, so a late Ack of an earlier send still counts; the agent
 * resends every entry at every heartbeat, in the order they were added.
 * `finished` entries also travel in Register.finished; a Registered reply
 * to that register acknowledges them (outbox_ack_register).
 *
 * Ownership: the outbox owns copies of the strings it is given. Entries
 * are few (one or two per attempt while the coordinator is away): linear
 * scans. */
#ifndef FOIL_WORKER_AGENT_OUTBOX_H
#define FOIL_WORKER_AGENT_OUTBOX_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "foil/v1/worker.pb-c.h"

typedef enum { OUTBOX_STARTED = 1, OUTBOX_FINISHED = 2 } outbox_kind;

typedef struct {
  outbox_kind kind;
  uint64_t request_id;       /* fixed at add */
  uint64_t register_id;      /* the register that carried it (0 none) */
  Foil__V1__Started started; /* kind STARTED; strings owned */
  Foil__V1__Finished finished; /* kind FINISHED; strings owned */
} outbox_entry;

typedef struct outbox outbox;

int outbox_new(outbox **out, foil_err *err);
void outbox_destroy(outbox **o);

/* Copies s / f in, under request_id. FOIL_ENOMEM only. */
int outbox_add_started(outbox *o, const Foil__V1__Started *s, uint64_t request_id, foil_err *err);
int outbox_add_finished(outbox *o, const Foil__V1__Finished *f, uint64_t request_id, foil_err *err);

size_t outbox_len(const outbox *o);
/* The i-th entry (0 oldest); valid until the next add or removal. */
outbox_entry *outbox_at(outbox *o, size_t i);
/* The entry sent under request_id, or NULL. */
outbox_entry *outbox_find(outbox *o, uint64_t request_id);

/* An Ack for request_id: removes that entry. Returns 1 if there was one. */
int outbox_ack(outbox *o, uint64_t request_id);
/* A Registered for the register sent as register_id: removes the
 * `finished` entries it carried. Returns how many. */
int outbox_ack_register(outbox *o, uint64_t register_id);
/* Drops every entry of the attempt (job_id, token) (it was replaced).
 * Returns how many. */
int outbox_drop(outbox *o, uint64_t job_id, uint64_t token);

/* The finished entries as an array for Register.finished, marking them
 * with register_id. *out is malloc'ed (free it; the pointers are the
 * outbox's), NULL when there are none. */
int outbox_finished_for_register(outbox *o, uint64_t register_id, Foil__V1__Finished ***out, size_t *n,
                                 foil_err *err);

#endif
