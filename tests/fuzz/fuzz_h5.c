/* fuzz_h5.c — foil's HDF5 readers on mutated files. The first byte picks
 * the reader, byte % 3: 0 a checkpoint (ckpt_read_config; when the config
 * is small, an encoder of it, ckpt_load with optimizer, MoCo key encoder,
 * queue, cursor and scalars asked for, and the /tokenizer group read), 1 an
 * embedding shard (index_shard_read), 2 a negatives bank (negbank_read);
 * and the path, byte / 3 % 2:
 *   0 raw: the rest of the input is the whole file, integrity header and
 *     all: h5io's gate must refuse whatever does not match its checksum
 *     before libhdf5 parses it (this path must run clean);
 *   1 re-signed: the rest is the file past its 512-byte user block; the
 *     target writes a zeroed user block in front and a valid integrity
 *     header for the mutated bytes (h5io_sign), so foil's own checks after
 *     the gate keep being fuzzed. A crash inside libhdf5 on this path is
 *     reported, not failed, by deploy/fuzz.sh (tests/fuzz/README.md). */
#define _DEFAULT_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <hdf5.h>

#include "common/fileio.h"
#include "model/encoder.h"
#include "model/optim.h"
#include "model/tokenizer.h"
#include "storage/ckpt.h"
#include "storage/h5io.h"
#include "storage/index.h"
#include "storage/negbank.h"
#include "storage/tokenizer_h5.h"

static char path[600];

static void load_ckpt(void) {
  foil_err err = {0};
  encoder_config cfg;
  if (ckpt_read_config(path, &cfg, &err)) return;
  /* a mutated config may ask for gigabytes: the fuzz target keeps to small
   * models (a real loader would try, and fail or succeed on malloc) */
  if ((double)cfg.vocab * cfg.d_model + (double)cfg.n_layers * cfg.d_model * (4.0 * cfg.d_model + 2.0 * cfg.d_ff) +
          (double)cfg.max_len * cfg.d_model > 1e6)
    return;
  encoder *enc = NULL, *key = NULL;
  optim *opt = NULL;
  if (encoder_new(&enc, &cfg, &err)) return;
  encoder_new(&key, &cfg, &err);
  optim_config oc;
  optim_config_default(&oc);
  optim_new(&opt, encoder_num_params(enc), &oc, &err);
  float queue[8 * 64] = {0}, scalars[4] = {0};
  int64_t cursor[4] = {0};
  ckpt_state s = {.enc = enc, .opt = opt, .key_enc = key, .queue = queue, .queue_k = 8,
                  .queue_d = cfg.proj_dim ? cfg.proj_dim : cfg.d_model, .cursor = cursor, .ncursor = 4,
                  .scalars = scalars, .nscalars = 4};
  if (s.queue_d > 64) s.queue = NULL, s.queue_k = 0, s.queue_d = 0;
  if (!ckpt_load(path, &s, &err)) free((void *)s.spec_json);
  ckpt_state bare = {.enc = enc};  /* what refresh and serve ask for */
  if (!ckpt_load(path, &bare, &err)) free((void *)bare.spec_json);
  h5io *f = NULL;
  if (!h5io_open(&f, path, CKPT_FORMAT, &err)) {
    tokenizer *t = NULL;
    if (h5io_exists(f, "tokenizer") && !tokenizer_h5_read(f, "tokenizer", &t, &err)) tokenizer_destroy(&t);
    h5io_close(&f);
  }
  optim_destroy(&opt);
  encoder_destroy(&key);
  encoder_destroy(&enc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  foil_err err = {0};
  if (!path[0]) {
    const char *tmp = getenv("FOIL_TEST_TMP");
    char dir[512];
    snprintf(dir, sizeof dir, "%s/foil-fuzz-h5-XXXXXX",
             tmp && *tmp ? tmp : access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
    if (tmp && *tmp) foil_mkdirs(tmp, &err);
    if (!mkdtemp(dir)) abort();
    snprintf(path, sizeof path, "%s/input.h5", dir);
  }
  int which = data[0] % 3, resign = data[0] / 3 % 2;
  static const uint8_t zeros[H5IO_HEADER_BYTES];
  FILE *f = fopen(path, "wb");
  if (!f || (resign && fwrite(zeros, 1, sizeof zeros, f) != sizeof zeros) ||
      fwrite(data + 1, 1, size - 1, f) != size - 1 || fclose(f))
    abort();
  if (resign && h5io_sign(path, &err)) abort();
  if (which == 0) load_ckpt();
  if (which == 1) {
    index_shard *s = NULL;
    if (!index_shard_read(path, &s, &err)) index_shard_destroy(&s);
  }
  if (which == 2) {
    negbank b;
    memset(&b, 0, sizeof b);
    if (!negbank_read(path, &b, &err)) negbank_free(&b);
  }
  /* libhdf5 keeps what it frees on its own free lists (H5FL): a damaged
   * variable-length string's ~1 GB block (H5T__conv_vlen, the known
   * hdf5/h5t-conv-vlen-oom) stayed resident, and the next such input took
   * the process past libFuzzer's 2 GB RSS limit with no allocation to
   * blame. Released after every input, the limit stays a per-input check. */
  H5garbage_collect();
  return 0;
}
