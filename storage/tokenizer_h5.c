/* tokenizer_h5.c — see tokenizer_h5.h. */
#include "storage/tokenizer_h5.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int tokenizer_h5_write(h5io *f, const char *group, const tokenizer *t, foil_err *err) {
  char name[512];
  int nv = tokenizer_vocab_size(t), nm = tokenizer_n_merges(t);
  const char **strs = malloc((size_t)(nv > nm ? nv : nm) * sizeof *strs + 1);
  if (!strs) return foil_err_set(err, FOIL_ENOMEM, "out of memory writing the tokenizer");
  for (int i = 0; i < nv; i++) strs[i] = tokenizer_token(t, i);
  snprintf(name, sizeof name, "%s/vocab", group);
  int rc = h5io_write_strings(f, name, strs, (size_t)nv, err);
  if (!rc && tokenizer_kind(t) == TOKENIZER_BPE) {
    for (int i = 0; i < nm; i++) strs[i] = tokenizer_merge(t, i);
    snprintf(name, sizeof name, "%s/merges", group);
    rc = h5io_write_strings(f, name, strs, (size_t)nm, err);
  }
  free(strs);
  if (!rc)
    rc = h5io_attr_str(f, group, "kind", tokenizer_kind(t) == TOKENIZER_BPE ? "bpe" : "wordpiece", err);
  return rc;
}

int tokenizer_h5_read(h5io *f, const char *group, tokenizer **out, foil_err *err) {
  *out = NULL;
  if (!h5io_exists(f, group))
    return foil_err_set(err, FOIL_ENOTFOUND, "%s: no tokenizer group '%s'", h5io_path(f), group);
  char *kind = NULL, name[512];
  char **vocab = NULL, **merges = NULL;
  size_t nv = 0, nm = 0;
  int rc = h5io_get_attr_str(f, group, "kind", &kind, err);
  int k = 0;
  if (!rc) {
    k = !strcmp(kind, "wordpiece") ? TOKENIZER_WORDPIECE : !strcmp(kind, "bpe") ? TOKENIZER_BPE : 0;
    if (!k)
      rc = foil_err_set(err, FOIL_EINVAL, "%s: %s: unknown tokenizer kind '%s'", h5io_path(f), group,
                        kind);
  }
  if (!rc) {
    snprintf(name, sizeof name, "%s/vocab", group);
    rc = h5io_read_strings(f, name, &vocab, &nv, err);
  }
  if (!rc && k == TOKENIZER_BPE) {
    snprintf(name, sizeof name, "%s/merges", group);
    rc = h5io_read_strings(f, name, &merges, &nm, err);
  }
  if (!rc && (nv > INT32_MAX || nm > INT32_MAX))
    rc = foil_err_set(err, FOIL_EINVAL, "%s: %s: too many tokens", h5io_path(f), group);
  if (!rc) {
    rc = tokenizer_from_strings(out, k, (const char *const *)vocab, (int)nv,
                                (const char *const *)merges, (int)nm, err);
    if (rc) {
      char m[sizeof err->msg];
      memcpy(m, err ? err->msg : "", err ? sizeof m : 1);
      foil_err_set(err, rc, "%s: %s: %s", h5io_path(f), group, m);
    }
  }
  free(kind);
  h5io_free_strings(vocab, nv);
  h5io_free_strings(merges, nm);
  return rc;
}
