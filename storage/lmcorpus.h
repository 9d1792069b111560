/* lmcorpus.h — the `lm` dataset: public-domain English prose for a small
 * decoder, split by document, plus decoding prompts (docs/datasets.md,
 * foil.lm.v1).
 *
 * Sources (installed Debian packages, read in C; R is not needed):
 *   r-cran-janeaustenr  the six novels (character vectors in the package's
 *                       lazy-load database, storage/rdata.h); a document
 *                       is a chapter (front matter of 100+ words is one too);
 *   sword-text-web      the World English Bible (SWORD zText module,
 *                       storage/sword.h); a document is a book;
 *   python3.11-doc      the reST sources of the Python documentation
 *                       (storage/rst.h); a document is one file.
 * r-cran-tidytext ships word lists only (stop_words, sentiments,
 * parts_of_speech, nma_words), no running prose, so it is not a source.
 *
 * Split: a document goes to train / valid / test when a 64-bit hash of
 * (its id, the seed) mod 1000 is < 900 / < 950 / else (~90/5/5 by count).
 * Prompts: n_prompts windows from test documents, at distinct
 * non-overlapping places, each starting at a sentence start: a prompt of
 * 16..24 whitespace words whose estimated GPT-2 token count is <= 32
 * (see lmcorpus_token_estimate), and its continuation, the next 64 words.
 * prompt + continuation is a substring of the document (the continuation
 * begins with the whitespace that followed the prompt). Everything is a
 * pure function of the inputs and the seed.
 *
 * Output: <root>/datasets/<name>/lm.h5 and LICENSE, written to temporary
 * names and published only when both are complete (on error nothing new
 * appears). Ownership: nothing is retained by the caller. Cost: about
 * three times the text size in memory; time linear in the input.
 */
#ifndef FOIL_STORAGE_LMCORPUS_H
#define FOIL_STORAGE_LMCORPUS_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

#define LMCORPUS_FORMAT "foil.lm.v1"

typedef struct {
  const char *name;          /* dataset name, default "lm" */
  const char *janeaustenr;   /* lazy-load base (".../janeaustenr/data/Rdata"); NULL: skip */
  const char *sword_conf;    /* ".../mods.d/engWEB2015eb.conf"; NULL: skip */
  const char *rst_dir;       /* ".../python3.11/html/_sources"; NULL: skip */
  /* copyright files whose notices LICENSE quotes (NULL: skipped) */
  const char *copyright_austen, *copyright_web, *copyright_python;
  size_t n_prompts;          /* default 500 */
  uint64_t min_bytes;        /* refuse a corpus smaller than this; default 0 */
  const char *created_by;    /* root attribute; default "foil data prepare lm" */
  int quiet;                 /* no summary on stdout */
} lmcorpus_opts;

typedef struct {
  size_t docs[3];            /* train, valid, test */
  uint64_t bytes[3];
  uint64_t bytes_by_source[3]; /* austen, web, python docs */
  size_t prompts;
  double seconds;
} lmcorpus_stats;

/* Builds the dataset under root. stats may be NULL. */
int lmcorpus_build(const char *root, uint64_t seed, const lmcorpus_opts *o, lmcorpus_stats *stats,
                   foil_err *err);

/* Reads the documents of one split ("train", "valid" or "test") of an
 * lm.h5: *texts gets n malloc'ed strings (free with h5io_free_strings).
 * A missing file, a foreign format or a missing split is an error naming
 * the file. Cost: the split's text in memory. */
int lmcorpus_read_split(const char *path, const char *split, char ***texts, size_t *n, foil_err *err);

/* 0 train, 1 valid, 2 test for a document id under a seed. */
int lmcorpus_split_of(const char *doc_id, uint64_t seed);

/* A conservative estimate of the GPT-2 tokens of text[0..n): per letter run
 * 1 + len/8, per digit run 1 + len/3, 1 per ASCII punctuation mark, 2 per
 * non-ASCII character. */
int lmcorpus_token_estimate(const char *text, size_t n);

/* Replaces invalid UTF-8 sequences in s[0..n) by U+FFFD; returns a
 * malloc'ed NUL-terminated copy (NULL when out of memory). */
char *lmcorpus_utf8_clean(const char *s, size_t n, size_t *outn);

#endif
