/* ckpt.h — self-contained training checkpoints in HDF5.
 *
 * One file per checkpoint, jobs/<id>/ckpt/step_<n>.h5, written to a
 * temporary name, fsynced and renamed (storage/h5io.h), by one rank.
 * Layout (foil_format "foil.ckpt.v1"; every name readable in h5py):
 *   /                 attrs: step, seed, call (the RNG counter), spec (JSON)
 *   /model            attrs: the encoder config (n_layers, d_model, ...)
 *   /model/<tensor>   float32, the tensor's shape (wte, qkv_w [L,3d,d], ...)
 *   /optim            attrs: t, lr, beta1, beta2, eps, weight_decay,
 *                     max_grad_norm;  /optim/m/<tensor>, /optim/v/<tensor>
 *   /momentum/<tensor>  the MoCo key encoder's parameters (optional)
 *   /queue/keys       float32 [K, D] negatives queue, attrs ptr, fill (optional)
 *   /loader/cursor    int64 [n], the data loader's cursor (optional)
 *   /scalars          float32 [n], the caller's small extra state (optional)
 * The tokenizer is stored under /tokenizer by the caller
 * (storage/tokenizer_h5.h) when it has one.
 *
 * Loading checks what it reads: a missing, truncated or foreign file, or a
 * model whose config or tensor shapes differ from the encoder it is loaded
 * into, is refused with a message that names the file and what differs.
 * Ownership: ckpt_state holds borrowed pointers; nothing is freed here.
 */
#ifndef FOIL_STORAGE_CKPT_H
#define FOIL_STORAGE_CKPT_H

#include <stdint.h>

#include "common/err.h"
#include "model/encoder.h"
#include "model/optim.h"
#include "storage/h5io.h"

#define CKPT_FORMAT "foil.ckpt.v1"

typedef struct {
  int64_t step;
  const char *spec_json; /* save: may be NULL. load: malloc'ed copy or NULL (caller frees) */
  encoder *enc;          /* required */
  optim *opt;            /* may be NULL */
  encoder *key_enc;      /* MoCo key encoder, may be NULL */
  float *queue;          /* [queue_k, queue_d], may be NULL */
  int64_t queue_k, queue_d, queue_ptr, queue_fill;
  uint64_t seed, call;
  int64_t *cursor; /* may be NULL */
  int ncursor;
  float *scalars;  /* small named-by-the-caller state (a learnable temperature
                    * and its moments), may be NULL */
  int nscalars;
} ckpt_state;

/* Writes s to path atomically. extra (may be NULL) is called with the open
 * file before publishing, to add more (the tokenizer); its error aborts the
 * write and leaves nothing behind. Cost: one pass over parameters and
 * optimizer moments (3× the parameters with AdamW). */
int ckpt_save(const char *path, const ckpt_state *s,
              int (*extra)(h5io *f, void *ctx, foil_err *err), void *ctx, foil_err *err);

/* Reads the encoder config stored in a checkpoint (to build the encoder). */
int ckpt_read_config(const char *path, encoder_config *cfg, foil_err *err);

/* Loads into the objects s points to (enc required; opt, key_enc, queue,
 * cursor filled when both the file and s have them; a file lacking one that
 * s asks for is an error naming it). s->spec_json receives a malloc'ed copy. */
int ckpt_load(const char *path, ckpt_state *s, foil_err *err);

/* Path of the newest checkpoint in dir (step_<n>.h5 with the largest n)
 * that opens as a foil checkpoint; truncated or foreign ones are skipped
 * and reported through skipped (may be NULL) as "<file>: <reason>" lines.
 * Returns FOIL_ENOTFOUND when there is none. out is malloc'ed. */
int ckpt_latest(const char *dir, char **out, char **skipped, foil_err *err);

/* Keeps the newest keep_last checkpoints plus every one whose step is a
 * multiple of keep_every (0: none); removes the others. */
int ckpt_prune(const char *dir, int keep_last, int64_t keep_every, foil_err *err);

#endif
