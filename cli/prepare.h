/* prepare.h — the sources of `foil data prepare` (cli/cmd_data.c dispatches
 * here) and the parsers they are built from, exposed for unit tests.
 *
 * Each prepare_<source> reads installed files (never the network), builds
 * its dataset in memory and writes it under <root>/datasets/<name>/ in the
 * formats of docs/datasets.md. Output is a pure function of the inputs and
 * the seed. Files are written to temporary names and published only after
 * every file of the dataset was written: on error nothing new appears
 * (an earlier version of the dataset stays as it was). A one-paragraph
 * summary goes to stdout. Errors come back as foil error codes with a
 * message naming the file and line ("FILE:LINE: ...").
 *
 * Cost: memory is a few times the size of the source text; time is
 * linear in it (plus sorting).
 */
#ifndef FOIL_CLI_PREPARE_H
#define FOIL_CLI_PREPARE_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

/* The longest text (query, positive, negative, document) a dataset may hold. */
#define PREP_MAX_TEXT ((size_t)1 << 20)

/* ---- the sources ------------------------------------------------------------------- */
int prepare_wordnet(const char *root, uint64_t seed, foil_err *err);
int prepare_code(const char *root, uint64_t seed, foil_err *err);
int prepare_lm(const char *root, uint64_t seed, foil_err *err); /* cli/prepare_lm*.c */

typedef struct {
  const char *name;      /* dataset name: [A-Za-z0-9._-]+, not starting with '.' */
  const char *pairs;     /* .jsonl or .tsv (required) */
  const char *corpus;    /* .jsonl or .tsv, optional -> corpus.h5 */
  const char *queries;   /* .jsonl or .tsv, with qrels -> benchmarks/<benchmark>.h5 */
  const char *qrels;     /* .tsv: query-id, corpus-id, score */
  const char *benchmark; /* benchmark name, default "test" */
  double dev_fraction, test_fraction; /* of distinct queries; default 0 */
} prepare_custom_opts;
int prepare_custom(const char *root, uint64_t seed, const prepare_custom_opts *o, foil_err *err);

/* ---- wordnet (cli/prepare_wordnet.c) ---------------------------------------------------- */
enum { WORDNET_MAX_WORDS = 255 };

/* One line of a WordNet data.<pos> file, parsed in place. */
typedef struct {
  uint32_t offset;  /* synset offset (byte offset in its file) */
  int lex_filenum;  /* lexicographer file number */
  char ss_type;     /* n v a s r */
  int w_cnt;        /* number of words */
  char *words[WORDNET_MAX_WORDS]; /* lemmas: '_' -> ' ', adjective markers "(a)" "(p)" "(ip)" removed */
  int p_cnt;        /* number of pointers (parsed and checked, not kept) */
  char *gloss;      /* the whole gloss, trimmed */
  size_t def_len;   /* the definition is gloss[0 .. def_len) (see docs/datasets.md) */
} wordnet_synset;

/* Parses one data line (without its newline); modifies line. Returns 1 for
 * a synset, 0 for a licence header line (starts with two spaces) or an empty
 * line, or a negative foil code with "file:lineno: ..." in err. */
int wordnet_parse_line(char *line, wordnet_synset *s, const char *file, long lineno, foil_err *err);
/* The length of the definition part of a gloss: everything before the
 * first '"' that starts the gloss or follows ';' or ':' (spaces between
 * allowed), without trailing spaces, ';' and ':'. */
size_t wordnet_definition_len(const char *gloss);

typedef struct {
  const char *dir;     /* holds data.noun data.verb data.adj data.adv */
  const char *license; /* copied to datasets/wordnet/LICENSE */
  int n_test, n_dev;   /* held-out synsets */
  const char *name;    /* dataset name (default "wordnet") */
} wordnet_opts;
int prepare_wordnet_with(const char *root, uint64_t seed, const wordnet_opts *o, foil_err *err);

/* ---- code (cli/prepare_code.c) -------------------------------------------------------------- */
/* A function found by the Python scanner; offsets are bytes into the source. */
typedef struct {
  size_t start, end;        /* the function's text: first decorator (or def) line .. end of its last line */
  size_t def_line;          /* 1-based line of the `def` keyword */
  size_t indent;            /* columns of indentation of the def */
  size_t doc_start, doc_end;/* the docstring statement's whole lines; 0,0 when there is none */
  char *name;               /* malloc'ed */
  char *doc;                /* malloc'ed first paragraph, dedented; NULL when no docstring */
  char *source;             /* malloc'ed: text without the docstring lines, dedented by indent */
  int body_only_doc;        /* 1 when the docstring is the whole body */
} pyscan_func;

/* Finds every def / async def in src (methods and nested functions too).
 * *out is a malloc'ed array of *n functions, freed by pyscan_free. */
int pyscan_functions(const char *src, size_t len, pyscan_func **out, size_t *n, foil_err *err);
void pyscan_free(pyscan_func *f, size_t n);

typedef struct {
  const char *libdir;  /* e.g. /usr/lib/python3.11 */
  const char *license; /* copied to datasets/code/LICENSE */
  const char *name;    /* dataset name (default "code") */
} code_opts;
int prepare_code_with(const char *root, uint64_t seed, const code_opts *o, foil_err *err);

/* ---- custom (cli/prepare_custom.c) ------------------------------------------------------------ */
/* Pairs read from a user's file (strings malloc'ed, freed by custom_pairs_free). */
typedef struct {
  size_t n;
  char **query, **positive;
  size_t *neg_off; /* [n+1] */
  char **neg;
  size_t n_neg;
} custom_pairs;
int custom_read_pairs(const char *path, custom_pairs *out, foil_err *err);
void custom_pairs_free(custom_pairs *p);

/* id -> text records (a corpus or BEIR queries). */
typedef struct {
  size_t n;
  char **id, **text;
} custom_records;
int custom_read_records(const char *path, const char *what, custom_records *out, foil_err *err);
void custom_records_free(custom_records *r);

#endif
