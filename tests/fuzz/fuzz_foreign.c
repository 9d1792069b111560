/* fuzz_foreign.c — foil's readers of foreign file formats on hostile bytes.
 * The first input byte picks the reader, byte % 7; the rest is its input:
 *   0 safetensors: the rest written to a file, st_open, then every tensor
 *     (st_at, st_find, st_read_f32 of the float ones, a wrong count) and
 *     st_metadata lookups;
 *   1 R serialize() stream: rdata_unserialize of the rest, the tree walked
 *     (every value, attribute and string; rdata_attr, rdata_get,
 *     rdata_inherits at each node);
 *   2 R lazy-load database: the rest split into <base>.rdx (a piece, below)
 *     and <base>.rdb (what follows), rdata_db_open, then rdata_db_load and a
 *     walk of every variable it names;
 *   3 SWORD zText module: a mask byte, then one piece for each file whose
 *     bit is set — bit 0..5 ot.bzs, ot.bzv, ot.bzz, nt.bzs, nt.bzv, nt.bzz,
 *     bit 6 mods.d/fuzz.conf (sword_conf_datapath); sword_open, then every
 *     entry of both testaments read and turned into prose
 *     (sword_osis_text), appended verse after verse as foil's importer does;
 *   4 reST: rst_to_prose of the rest;
 *   5 OSIS: sword_osis_text of the rest, twice into one buffer;
 *   6 Hugging Face model folder: a mask byte, then one piece for each file
 *     whose bit is set — bit 0..6 config.json, vocab.txt, model.safetensors,
 *     modules.json, 1_Pooling/config.json, tokenizer_config.json,
 *     sentence_bert_config.json; hf_import of the folder.
 * A piece is a 4-byte little-endian length, then that many bytes (fewer
 * when the input ends first). Files live in one temporary folder under
 * FOIL_TEST_TMP (else /dev/shm or /tmp), rewritten for every input.
 * FOIL_FUZZ_DEBUG=1 prints each reader's error (to check that seeds reach
 * as deep as meant). */
#define _DEFAULT_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fileio.h"
#include "storage/hfmodel.h"
#include "storage/rdata.h"
#include "storage/rst.h"
#include "storage/safetensors.h"
#include "storage/sword.h"

static char dir[512];
static int debug = -1;

/* what refused the input, with FOIL_FUZZ_DEBUG */
static void note(const char *what, int rc, const foil_err *err) {
  if (debug < 0) debug = getenv("FOIL_FUZZ_DEBUG") != NULL;
  if (debug) fprintf(stderr, "fuzz_foreign: %s: %s\n", what, rc ? err->msg : "ok");
}

static const char *const files[] = {"x.safetensors", "Rdata.rdx", "Rdata.rdb", "ot.bzs", "ot.bzv", "ot.bzz",
                                    "nt.bzs", "nt.bzv", "nt.bzz", "mods.d/fuzz.conf", "hf/config.json",
                                    "hf/vocab.txt", "hf/model.safetensors", "hf/modules.json",
                                    "hf/1_Pooling/config.json", "hf/tokenizer_config.json",
                                    "hf/sentence_bert_config.json", "hf/1_Pooling", "hf", "mods.d", ""};

/* the temporary folder goes at exit (a replay run leaves nothing behind) */
static void cleanup(void) {
  char p[700];
  for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
    snprintf(p, sizeof p, "%s/%s", dir, files[i]);
    remove(p);
  }
}

static void setup(void) {
  if (dir[0]) return;
  foil_err err = {0};
  const char *tmp = getenv("FOIL_TEST_TMP");
  snprintf(dir, sizeof dir, "%s/foil-fuzz-foreign-XXXXXX",
           tmp && *tmp ? tmp : access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
  if (tmp && *tmp) foil_mkdirs(tmp, &err);
  if (!mkdtemp(dir)) abort();
  char p[600];
  snprintf(p, sizeof p, "%s/mods.d", dir);
  if (mkdir(p, 0755)) abort();
  snprintf(p, sizeof p, "%s/hf", dir);
  if (mkdir(p, 0755)) abort();
  snprintf(p, sizeof p, "%s/hf/1_Pooling", dir);
  if (mkdir(p, 0755)) abort();
  atexit(cleanup);
}

/* dir/name = bytes, or (data NULL) no such file */
static void put(const char *name, const uint8_t *data, size_t n) {
  char p[700];
  snprintf(p, sizeof p, "%s/%s", dir, name);
  if (!data) {
    unlink(p);
    return;
  }
  FILE *f = fopen(p, "wb");
  if (!f || (n && fwrite(data, 1, n, f) != n) || fclose(f)) abort();
}

/* The next piece of the input: 4-byte little-endian length, then the bytes. */
static void piece(const uint8_t **d, size_t *n, const uint8_t **out, size_t *len) {
  uint32_t l = 0;
  size_t k = *n < 4 ? *n : 4;
  for (size_t i = 0; i < k; i++) l |= (uint32_t)(*d)[i] << (8 * i);
  *d += k, *n -= k;
  *len = l < *n ? l : *n;
  *out = *d;
  *d += *len, *n -= *len;
}

/* ---- R trees: walked within a budget of work (an environment may refer
 * to itself, so the tree can be a graph with cycles; lookups cost a node's
 * length) ---------------------------------------------------------------- */

static volatile size_t sink;

static void touch_str(const char *s) {
  if (s) sink += strlen(s);
}

static void walk(const rdata_val *v, int depth, uint64_t *budget) {
  if (!v || depth > 2 * RDATA_MAX_DEPTH) return;
  uint64_t n = v->n, cost = 1 + n + (v->attr ? v->attr->n : 0);
  if (cost > *budget) {
    *budget = 0;
    return;
  }
  *budget -= cost;
  sink += (size_t)v->type + (size_t)v->is_object;
  /* arrays: the first elements and the last (ASan checks the length) */
  uint64_t head = n < 64 ? n : 64;
  for (uint64_t i = 0; i < n; i = i + 1 < head || i + 1 == n ? i + 1 : n - 1) {
    if (v->str) touch_str(v->str[i]);
    if (v->ints) sink += (size_t)v->ints[i];
    if (v->reals) sink += v->reals[i] > 0, sink += v->type == RDATA_CPLXSXP && v->reals[2 * i + 1] > 0;
    if (v->raw) sink += v->raw[i];
    if (v->tag) touch_str(v->tag[i]);
  }
  if (v->type == RDATA_SYMSXP || v->type == RDATA_CHARSXP) touch_str(v->str ? v->str[0] : NULL);
  sink += rdata_inherits(v, "data.frame") + rdata_inherits(v, "tbl_df");
  sink += rdata_attr(v, "names") != NULL;
  sink += rdata_get(v, "variables") != NULL;
  sink += rdata_get(v, "x") != NULL;
  if (v->elt)
    for (uint64_t i = 0; i < n && *budget; i++) walk(v->elt[i], depth + 1, budget);
  walk(v->attr, depth + 1, budget);
}

static void walk_root(const rdata_val *root) {
  uint64_t budget = 1 << 22;
  walk(root, 0, &budget);
}

/* ---- the readers ---------------------------------------------------------------- */

static void do_safetensors(const uint8_t *d, size_t n) {
  put("x.safetensors", d, n);
  char p[700];
  snprintf(p, sizeof p, "%s/x.safetensors", dir);
  foil_err err = {0};
  st_file *f = NULL;
  int rc = st_open(&f, p, &err);
  note("st_open", rc, &err);
  if (rc) return;
  sink += st_metadata(f, "format") != NULL;
  sink += st_metadata(f, "") != NULL;
  touch_str(st_path(f));
  for (int i = 0; i < st_count(f); i++) {
    const st_tensor *t = st_at(f, i);
    if (!t || st_find(f, t->name) == NULL) abort(); /* every listed tensor is found by name */
    touch_str(st_dtype_name(t->dtype));
    if (t->nbytes) sink += t->data[0] + t->data[t->nbytes - 1];
    float *out = malloc((t->nelem ? t->nelem : 1) * sizeof *out);
    if (!out) abort();
    if (!st_read_f32(f, t, out, t->nelem, &err) && t->nelem) sink += out[t->nelem - 1] > 0;
    st_read_f32(f, t, out, t->nelem + 1, &err); /* refused: the count */
    free(out);
  }
  sink += st_at(f, -1) == NULL && st_at(f, st_count(f)) == NULL;
  st_close(&f);
}

static void do_rdata(const uint8_t *d, size_t n) {
  foil_err err = {0};
  rdata_doc *doc = NULL;
  const rdata_val *root = NULL;
  int rc = rdata_unserialize(d, n, "fuzz.rds", &doc, &root, &err);
  note("rdata_unserialize", rc, &err);
  if (rc) {
    if (doc) abort();
    return;
  }
  walk_root(root);
  rdata_doc_free(&doc);
}

static void do_rdata_db(const uint8_t *d, size_t n) {
  const uint8_t *rdx;
  size_t rdx_n;
  piece(&d, &n, &rdx, &rdx_n);
  put("Rdata.rdx", rdx, rdx_n);
  put("Rdata.rdb", d, n);
  char base[600];
  snprintf(base, sizeof base, "%s/Rdata", dir);
  foil_err err = {0};
  rdata_db *db = NULL;
  int rc = rdata_db_open(&db, base, &err);
  note("rdata_db_open", rc, &err);
  if (rc) return;
  for (size_t i = 0; i < rdata_db_count(db); i++) {
    const char *name = rdata_db_name(db, i);
    rdata_doc *doc = NULL;
    const rdata_val *v = NULL;
    rc = rdata_db_load(db, name, &doc, &v, &err);
    note(name, rc, &err);
    if (!rc) walk_root(v);
    rdata_doc_free(&doc);
  }
  rdata_doc *doc = NULL;
  const rdata_val *v = NULL;
  if (rdata_db_load(db, "\x01no such variable", &doc, &v, &err) != FOIL_ENOTFOUND) abort();
  rdata_db_close(&db);
}

static void do_sword(const uint8_t *d, size_t n) {
  static const char *const names[] = {"ot.bzs", "ot.bzv", "ot.bzz", "nt.bzs", "nt.bzv", "nt.bzz",
                                      "mods.d/fuzz.conf"};
  uint8_t mask = n ? d[0] : 0;
  if (n) d++, n--;
  for (int k = 0; k < 7; k++) {
    const uint8_t *b = NULL;
    size_t bn = 0;
    if (mask >> k & 1) piece(&d, &n, &b, &bn);
    put(names[k], b, bn);
  }
  foil_err err = {0};
  char p[700];
  if (mask >> 6 & 1) {
    snprintf(p, sizeof p, "%s/mods.d/fuzz.conf", dir);
    char *dp = NULL;
    int rc = sword_conf_datapath(p, &dp, &err);
    note("sword_conf_datapath", rc, &err);
    if (!rc) touch_str(dp);
    free(dp);
  }
  sword_mod *m = NULL;
  int rc = sword_open(&m, dir, &err);
  note("sword_open", rc, &err);
  if (rc) return;
  char *buf = NULL;
  size_t len = 0, cap = 0;
  for (int t = 0; t < 2; t++) {
    size_t count = sword_count(m, t);
    for (size_t i = 0; i < count; i++) {
      const char *x;
      size_t xn;
      uint32_t b;
      rc = sword_verse(m, t, i, &x, &xn, &b, &err);
      if (rc) note("sword_verse", rc, &err);
      if (rc) continue;
      if (xn) sink += (uint8_t)x[0] + (uint8_t)x[xn - 1];
      if (sword_osis_text(x, xn, &buf, &len, &cap, &err)) break;
      if (len > (1u << 20)) len = 0; /* keep the prose buffer small */
    }
    const char *x;
    size_t xn;
    uint32_t b;
    if (sword_verse(m, t, count, &x, &xn, &b, &err) != FOIL_EINVAL) abort(); /* one past the end */
  }
  free(buf);
  sword_close(&m);
}

static void do_rst(const uint8_t *d, size_t n) {
  foil_err err = {0};
  char *out = NULL;
  size_t len = 0;
  int rc = rst_to_prose((const char *)d, n, &out, &len, &err);
  note("rst_to_prose", rc, &err);
  if (rc) return;
  if (!out || out[len] != '\0') abort();
  free(out);
}

static void do_osis(const uint8_t *d, size_t n) {
  foil_err err = {0};
  char *buf = NULL;
  size_t len = 0, cap = 0;
  for (int r = 0; r < 2; r++)
    if (sword_osis_text((const char *)d, n, &buf, &len, &cap, &err) || !buf || buf[len] != '\0' || len >= cap)
      abort();
  free(buf);
}

static void do_hf(const uint8_t *d, size_t n) {
  static const char *const names[] = {"hf/config.json",           "hf/vocab.txt",
                                      "hf/model.safetensors",     "hf/modules.json",
                                      "hf/1_Pooling/config.json", "hf/tokenizer_config.json",
                                      "hf/sentence_bert_config.json"};
  uint8_t mask = n ? d[0] : 0;
  if (n) d++, n--;
  for (int k = 0; k < 7; k++) {
    const uint8_t *b = NULL;
    size_t bn = 0;
    if (mask >> k & 1) piece(&d, &n, &b, &bn);
    put(names[k], b, bn);
  }
  char p[600];
  snprintf(p, sizeof p, "%s/hf", dir);
  foil_err err = {0};
  hf_model *m = NULL;
  int rc = hf_import(p, &m, &err);
  note("hf_import", rc, &err);
  if (rc) {
    if (m) abort();
    return;
  }
  sink += (size_t)m->normalize + (size_t)m->max_seq_length + (size_t)hf_model_encode_len(m);
  hf_model_destroy(&m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  setup();
  int which = data[0] % 7;
  data++, size--;
  switch (which) {
    case 0: do_safetensors(data, size); break;
    case 1: do_rdata(data, size); break;
    case 2: do_rdata_db(data, size); break;
    case 3: do_sword(data, size); break;
    case 4: do_rst(data, size); break;
    case 5: do_osis(data, size); break;
    default: do_hf(data, size); break;
  }
  return 0;
}
