/* outbox.h — the worker's messages that must reach the coordinator:
 * `started` and `finished` of each attempt, kept until an Ack with the same
 * request_id arrives (worker.proto). Each entry keeps one request_id for
 * its whole life, so a late Ack of an earlier send still counts; the agent
 * resends every entry at every heartbeat, in the order they were added.
 * `finished` entries also travel in Register.finished, as many as fit in
 * the coordinator's frame (outbox_register); a Registered reply to that
 * register acknowledges them (outbox_ack_register).
 *
 * Ownership: the outbox owns copies of the strings it is given. Entries
 * are few (one or two per attempt while the coordinator is away, so up to
 * a few thousand on a node of 4096 slots): linear scans; a removal only
 * marks its entry, and the next add or outbox_at squeezes the marks out,
 * so a burst of acks costs O(n) in all. */
#ifndef FOIL_WORKER_AGENT_OUTBOX_H
#define FOIL_WORKER_AGENT_OUTBOX_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "foil/v1/worker.pb-c.h"

typedef enum { OUTBOX_STARTED = 1, OUTBOX_FINISHED = 2 } outbox_kind;

/* Finished.message is kept to this many bytes (cut at a character), so a
 * report packs to at most ~570 bytes whatever it was given (the
 * coordinator keeps 255 of them). */
#define OUTBOX_MAX_MESSAGE 512
/* The agent's Registers pack to at most this: the coordinator takes
 * frames of 1 MiB (COORD_MAX_FRAME); the rest is room for WorkerMessage's
 * own fields. */
#define OUTBOX_REGISTER_BYTES ((1u << 20) - (16u << 10))

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

/* Copies s / f in, under request_id (f->message cut to
 * OUTBOX_MAX_MESSAGE). FOIL_ENOMEM only. */
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

/* What outbox_register allocated; r's arrays point into it (and into the
 * outbox: valid until the next add or removal). */
typedef struct {
  Foil__V1__Finished **finished;
  Foil__V1__AttemptRef *refs, **running;
} outbox_register_mem;

/* Fills in r's finished and running so that r packs to at most max_bytes
 * (measured with get_packed_size, so whatever the messages hold): r comes
 * with its other fields and, in running, the attempts still running. The
 * oldest finished entries that fit go into r->finished, marked with
 * register_id; each of the others is listed in r->running by reference
 * (job_id, token), so the coordinator keeps that attempt running, neither
 * ended nor missing (it NODE_FAILs an attempt a Register leaves out),
 * until its Finished, sent on its own like any entry, arrives. So a
 * worker registers with thousands of reports pending: a reference takes
 * at most 24 bytes, so at least 40,000 fit in 1 MiB; past that *left_out
 * counts the oldest left out, which the coordinator then takes for lost.
 * Without finished entries r is left as it is. FOIL_ENOMEM only;
 * outbox_register_free(mem) after sending r, whatever the result. Cost:
 * O(entries), two get_packed_size per report. */
int outbox_register(outbox *o, uint64_t register_id, Foil__V1__Register *r, size_t max_bytes,
                    outbox_register_mem *mem, size_t *left_out, foil_err *err);
void outbox_register_free(outbox_register_mem *mem);

/* A reference (job_id, token) in refs/ptrs (room for cap) to each finished
 * entry, oldest first; returns how many. A Heartbeat lists them as running
 * too, until acknowledged, for the reason above. */
size_t outbox_finished_refs(outbox *o, Foil__V1__AttemptRef *refs, Foil__V1__AttemptRef **ptrs, size_t cap);

#endif
