/* tokenizer_h5.h — a tokenizer inside an HDF5 file (checkpoints embed one).
 *
 * Layout, readable with h5py: group <group> (e.g. "tokenizer") with
 *   attribute "kind"   "wordpiece" | "bpe"
 *   dataset  "vocab"   strings, the token of id i at row i
 *   dataset  "merges"  strings "left right" in rank order (BPE only)
 * Reading rebuilds the tokenizer with the same checks as loading files.
 *
 * Ownership: the tokenizer read is the caller's (tokenizer_destroy). The
 * h5io handle stays the caller's. Cost: one pass over the vocabulary.
 */
#ifndef FOIL_STORAGE_TOKENIZER_H5_H
#define FOIL_STORAGE_TOKENIZER_H5_H

#include "common/err.h"
#include "model/tokenizer.h"
#include "storage/h5io.h"

/* Writes t under group (created) of a file opened with h5io_create. */
int tokenizer_h5_write(h5io *f, const char *group, const tokenizer *t, foil_err *err);
/* Reads the tokenizer under group; FOIL_ENOTFOUND when the group is absent. */
int tokenizer_h5_read(h5io *f, const char *group, tokenizer **out, foil_err *err);

#endif
