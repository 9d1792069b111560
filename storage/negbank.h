/* negbank.h — a bank of hard negatives mined from one index version:
 * <root>/negatives/<name>.h5 (foil_format "foil.negbank.v1").
 *
 * Row i of the bank belongs to pair i of one split of a dataset's
 * pairs.h5; it holds m corpus rows of the index's corpus, best first.
 *   /rows    int64 [P, m]   corpus rows; -1 where the index ran out of
 *                           candidates (the pair has fewer than m)
 *   /texts   strings [P·m]  the negatives' texts, row-major like /rows
 *                           ("" where /rows is -1), so the bank is
 *                           self-contained
 *   attrs    index, version (of the index), checkpoint, step (of the
 *            encoder that made the index), dataset, split, n_pairs, m,
 *            fingerprint (of the split's pair texts, 16 hex digits),
 *            skip_top, margin (NaN: no margin rule), created (epoch s)
 *
 * Written atomically (storage/h5io.h): a reader sees the old bank or the
 * new one, never half of one; negbank_write_newer never replaces a bank by
 * one mined from an older version of the same index. Reads are checked: a missing, truncated or
 * foreign file, shapes that disagree with n_pairs·m, rows below -1 or a
 * missing attribute are refused with the path and the reason;
 * negbank_check refuses a bank made for other data (another split, pair
 * count or fingerprint) or with fewer negatives per pair than wanted.
 *
 * Ownership: negbank_read fills a struct whose arrays are malloc'ed and
 * freed by negbank_free (which zeroes it). negbank_write borrows.
 * Cost: reads and writes are whole-file, linear in P·m and the texts.
 */
#ifndef FOIL_STORAGE_NEGBANK_H
#define FOIL_STORAGE_NEGBANK_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "storage/dataset.h"

#define NEGBANK_FORMAT "foil.negbank.v1"

typedef struct {
  char index[129];       /* index name */
  int version;           /* index version the negatives were mined from */
  char checkpoint[1024]; /* the encoder that made that version */
  int64_t step;          /* its training step */
  char dataset[129], split[16];
  int64_t n_pairs;       /* P */
  int m;                 /* negatives per pair */
  uint64_t fingerprint;  /* negbank_fingerprint of the split */
  int skip_top;
  double margin;         /* NaN: none */
  double created;        /* epoch seconds */
} negbank_meta;

typedef struct {
  negbank_meta meta;
  int64_t *rows;         /* [P·m] */
  char **texts;          /* [P·m] */
} negbank;

/* 1 when name is 1 to 128 characters of [A-Za-z0-9._-] (not "." or ".."). */
int negbank_name_ok(const char *name);

/* <root>/negatives/<name>.h5; FOIL_EINVAL for a name outside
 * [A-Za-z0-9._-]{1,128}. */
int negbank_path(const char *root, const char *name, char *out, size_t n, foil_err *err);

/* A fingerprint of a split's pairs: FNV-1a over every query and positive
 * text (with their lengths) and the pair count. */
uint64_t negbank_fingerprint(const dataset_pairs *p);

/* Writes b to path atomically (parent directories are created); created
 * is set to now when 0. */
int negbank_write(const char *path, const negbank *b, foil_err *err);

/* Banks of one index are ordered by the index version they were mined
 * from: 1 when a bank of `cand` is newer than one of (index, version), 0
 * when it is of that same version, -1 when older. A bank of another index
 * (or none: version 0) is not ordered against it: 1, the later one wins. */
int negbank_cmp(const negbank_meta *cand, const char *index, int version);

/* negbank_write that never goes backwards: under an exclusive lock on
 * "<path>.lock" (foil_lock: cluster-wide where flock is), reads the bank
 * at path and writes b only when negbank_cmp(b, that bank) >= 0 (the same
 * version mined again replaces it); else leaves the newer bank and sets
 * *kept (may be NULL) to its version, 0 when b was written. Concurrent
 * writers of one bank (refreshes of several checkpoints mining at once)
 * thus always leave the bank of the newest version. A bank there that
 * cannot be read is replaced. Cost: negbank_read_meta + negbank_write. */
int negbank_write_newer(const char *path, const negbank *b, int *kept, foil_err *err);

/* Only the attributes (cheap: for a trainer polling for a newer bank). */
int negbank_read_meta(const char *path, negbank_meta *m, foil_err *err);
/* The whole bank, checked. */
int negbank_read(const char *path, negbank *b, foil_err *err);
void negbank_free(negbank *b);

/* FOIL_EPRECOND, naming both, unless the bank was made for `split` of a
 * dataset with n_pairs pairs and this fingerprint and has at least m
 * negatives per pair. */
int negbank_check(const negbank_meta *b, const char *path, const char *split, int64_t n_pairs,
                  uint64_t fingerprint, int m, foil_err *err);

#endif
