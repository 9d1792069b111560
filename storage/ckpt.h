/* ckpt.h — self-contained training checkpoints in HDF5.
 *
 * One file per checkpoint, jobs/<id>/ckpt/step_<n>.h5, written to a
 * temporary name, fsynced and renamed (storage/h5io.h), by one rank.
 * Layout (foil_format "foil.ckpt.v1"; every name readable in h5py):
 *   /                 attrs: step, seed, call (the RNG counter), spec (JSON)
 *   /model            attrs: kind = "decoder" for a decoder (an encoder has
 *                     no kind attribute, as before decoders existed; a
 *                     reader also accepts kind = "encoder"), then the
 *                     model's config: an encoder's (n_layers, d_model,
 *                     n_heads, d_ff, vocab, max_len, proj_dim, pre_ln,
 *                     pooling, dropout, ln_eps) or a decoder's (n_layers,
 *                     d_model, n_heads, d_ff, vocab, max_len, dropout,
 *                     ln_eps; model/decoder.h)
 *   /model/<tensor>   float32, the tensor's shape (wte, qkv_w [L,3d,d], ...;
 *                     a decoder's names are decoder.h's: wte is also its
 *                     LM head)
 *   /optim            attrs: t, lr, beta1, beta2, eps, weight_decay,
 *                     max_grad_norm;  /optim/m/<tensor>, /optim/v/<tensor>
 *   /momentum/<tensor>  the MoCo key encoder's parameters (optional)
 *   /queue/keys       float32 [K, D] negatives queue, attrs ptr, fill (optional)
 *   /loader/cursor    int64 [n], the data loader's cursor (optional)
 *   /scalars          float32 [n], the caller's small extra state (optional)
 * The tokenizer is stored under /tokenizer by the caller
 * (storage/tokenizer_h5.h) when it has one.
 *
 * Loading checks what it reads: a missing, truncated or foreign file, a
 * checkpoint of the other kind (a decoder into an encoder or back), or a
 * model whose config or tensor shapes differ from the one it is loaded
 * into, is refused with a message that names the file and what differs;
 * so is a MoCo queue position outside its ring (0 <= ptr < K,
 * 0 <= fill <= K, ptr == fill until full) or an optimizer step count t
 * outside [0, INT_MAX] (a hand-edited or foreign writer's file).
 *
 * A decoder is given to ckpt as its views (ckpt_decoder: config, tensor
 * views, parameter buffer), so storage/ needs only decoder.h's types;
 * ckpt_decoder_of(d) fills one from a decoder. A decoder checkpoint has no
 * momentum encoder or queue.
 * Ownership: ckpt_state holds borrowed pointers; nothing is freed here.
 */
#ifndef FOIL_STORAGE_CKPT_H
#define FOIL_STORAGE_CKPT_H

#include <limits.h>
#include <stdint.h>

#include "common/err.h"
#include "model/decoder.h"
#include "model/encoder.h"
#include "model/optim.h"
#include "model/tokenizer.h"
#include "storage/h5io.h"

#define CKPT_FORMAT "foil.ckpt.v1"

enum { CKPT_ENCODER = 1, CKPT_DECODER = 2 };

/* A decoder as ckpt sees it: its config, its DEC_NTENSORS views and the
 * parameter buffer they point into (borrowed). */
typedef struct {
  decoder_config cfg;
  const encoder_tensor *tensors;
  float *params;
} ckpt_decoder;

/* The views of d (valid while d lives). */
static inline ckpt_decoder ckpt_decoder_of(decoder *d) {
  ckpt_decoder v = {*decoder_cfg(d), decoder_tensors(d), decoder_params(d)};
  return v;
}

typedef struct {
  int64_t step;
  const char *spec_json; /* save: may be NULL. load: malloc'ed copy or NULL (caller frees) */
  encoder *enc;          /* an encoder checkpoint: exactly one of enc and dec */
  const ckpt_decoder *dec; /* a decoder checkpoint (opt's moments use its views) */
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

/* Reads the encoder config stored in a checkpoint (to build the encoder).
 * A decoder checkpoint is refused (FOIL_EINVAL, saying it is a decoder). */
int ckpt_read_config(const char *path, encoder_config *cfg, foil_err *err);

/* Opens an encoder checkpoint for inference (text metrics, serving by
 * text, `foil model encode`): builds the encoder from its config, loads its
 * parameters and reads the tokenizer stored with it (a checkpoint without
 * one is FOIL_ENOTFOUND naming the file; one whose vocabulary is not the
 * model's FOIL_EINVAL). step may be NULL. On error nothing is returned. The caller
 * destroys both. Cost: one read of the parameters. */
int ckpt_open_encoder(const char *path, encoder **enc, tokenizer **tok, int64_t *step, foil_err *err);

/* The kind of model a checkpoint holds: CKPT_ENCODER or CKPT_DECODER. */
int ckpt_read_kind(const char *path, int *kind, foil_err *err);

/* Reads the decoder config stored in a decoder checkpoint (to build the
 * decoder with decoder_new); an encoder checkpoint is refused. */
int ckpt_read_decoder_config(const char *path, decoder_config *cfg, foil_err *err);

/* Opens a decoder checkpoint for use (decode-eval, text metrics): builds
 * the decoder from its config with model.dropout as stored (callers that
 * only run inference pass train = 0 to the forward), loads its parameters,
 * and reads the tokenizer stored with it (tok may be NULL: not read; a
 * checkpoint without one is then FOIL_ENOTFOUND naming the file). step may
 * be NULL. On error nothing is returned. The caller destroys both. */
int ckpt_open_decoder(const char *path, decoder **dec, tokenizer **tok, int64_t *step, foil_err *err);

/* Loads into the objects s points to (enc or dec required; opt, key_enc, queue,
 * cursor filled when both the file and s have them; a file lacking one that
 * s asks for is an error naming it). s->spec_json receives a malloc'ed copy. */
int ckpt_load(const char *path, ckpt_state *s, foil_err *err);

/* Path of the newest checkpoint in dir (step_<n>.h5 with the largest n)
 * that opens as a foil checkpoint; truncated or foreign ones are skipped
 * and reported through skipped (may be NULL) as "<file>: <reason>" lines.
 * Returns FOIL_ENOTFOUND when there is none: dir does not exist, or holds
 * no usable checkpoint. A dir that cannot be listed (not a directory, no
 * permission, an I/O error) is another error naming it (FOIL_EPERM,
 * FOIL_EUNAVAIL), and running out of memory is FOIL_ENOMEM: a caller
 * resuming a job must not take those for "start from step 0". out is
 * malloc'ed. */
int ckpt_latest(const char *dir, char **out, char **skipped, foil_err *err);

/* What a spec's checkpoint key names, as an absolute path in out: a
 * checkpoint file, or a job directory (its ckpt/ subdirectory when it has
 * one) whose newest usable checkpoint is taken (ckpt_latest; the damaged
 * ones it skipped come back in *skipped, malloc'ed, NULL if none: the
 * caller logs them and frees). key names the spec key in messages.
 * FOIL_ENOTFOUND when the path or a usable checkpoint is missing. */
int ckpt_resolve(const char *key, const char *path, char out[PATH_MAX], char **skipped, foil_err *err);

/* Retention after saving step `newest` in dir: keeps the keep_last (at
 * least 1) newest checkpoints with steps <= newest, step `newest` itself
 * always, and every one whose step is a multiple of keep_every (0: none);
 * removes the others. Files with a higher step than newest (left by an
 * earlier attempt, typically the damaged ones ckpt_latest skipped before
 * this run restarted from an older step) are neither counted nor removed:
 * they must not push the checkpoint just written out. A file already gone
 * is not an error; another unlink failure is FOIL_EINTERNAL naming it (the
 * others are still tried). Cost: one directory scan. */
int ckpt_prune(const char *dir, int keep_last, int64_t keep_every, int64_t newest, foil_err *err);

#endif
