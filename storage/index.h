/* index.h — embedding index versions on disk:
 *
 *   <root>/indexes/<name>/v<k>/shard_<r>.h5   one per refresh rank
 *   <root>/indexes/<name>/v<k>/manifest.h5    the version: its shards and their checksums
 *   <root>/indexes/<name>/CURRENT             "v<k>\n": the live version
 *
 * A shard holds /ids (int64 [n]), /vectors ([n, dim] float32, float16 or
 * int8), /scales (float32 [n], int8 only), /exact (float32 [n, dim], for
 * float16/int8 shards: the rescoring copy), optionally /keys
 * (variable-length UTF-8 strings [n]: the documents' own ids, e.g. a
 * corpus's), and attributes: name, version, shard, n_shards, dim, count,
 * dtype ("float32" | "float16" | "int8"),
 * normalized (0/1), checkpoint (path), step, model_hash. The manifest holds
 * the same version attributes plus /shards (file names), /counts and /crc32
 * (zlib CRC-32 of each shard file), total count, created (epoch seconds).
 *
 * Publishing: every file is written to a temporary name, fsynced and
 * renamed (h5io); a version becomes visible only when CURRENT is replaced
 * (write-temp, fsync, rename) after its manifest is in place, so a refresh
 * killed at any point leaves CURRENT on the old, complete version. All
 * readers check what they read: a truncated, foreign or mismatched file is
 * refused with its path and the reason, never half-loaded.
 *
 * Ownership: index_shard and index_version are the caller's (destroy).
 * Cost: reads and writes are sequential, whole-file; checksum = one pass.
 */
#ifndef FOIL_STORAGE_INDEX_H
#define FOIL_STORAGE_INDEX_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "model/encoder.h"
#include "model/vsearch.h"

typedef struct {
  char name[129];
  int version;           /* k of v<k> */
  int shard, n_shards;
  int dim;
  vs_dtype dtype;
  int normalized;
  char checkpoint[1024];
  int64_t step;
  char model_hash[65];   /* hex */
  int64_t count;         /* rows in this shard (manifest: in all) */
} index_meta;

typedef struct {
  index_meta meta;
  int64_t n;
  int64_t *ids;
  void *vectors;         /* n×dim in meta.dtype */
  float *scales;         /* int8: n; else NULL */
  float *exact;          /* float16/int8: n×dim float32; else NULL */
  char **keys;           /* the documents' own string ids (/keys), or NULL */
} index_shard;

/* The model hash shards carry and foil-serve checks before it encodes text
 * for an index: zlib CRC-32 over the encoder's flat float32 parameters,
 * then over its config (layers, d_model, heads, d_ff, max_len, proj_dim,
 * norm, pooling) as text; 8 lowercase hex digits. */
int index_model_hash(const float *params, size_t n_params, const char *config_text, char out[65]);

/* The config text both sides hash, so that refresh and foil-serve agree:
 * "layers=L d_model=D heads=H d_ff=F max_len=M proj_dim=P norm=post|pre
 * pooling=mean|first". FOIL_EINVAL when it does not fit in n (256 does). */
int index_model_config_text(const encoder_config *cfg, char *out, size_t n);
/* index_model_hash of an encoder's parameters and that text. */
int index_model_hash_encoder(encoder *enc, char out[65]);

/* Directory of an index: <root>/indexes/<name>. FOIL_EINVAL for a name
 * outside [A-Za-z0-9._-]{1,128}. */
int index_dir(const char *root, const char *name, char *out, size_t n, foil_err *err);

/* Picks the next version number (one more than any v<k> there, complete or
 * not) and creates its directory with a writer's marker v<k>/.writing
 * ("<host> <pid>\n", foil_tmp_name's host), all under the index's lock
 * (indexes/<name>/.lock, foil_lock: cluster-wide only where the
 * filesystem's flock is), so concurrent refreshes never share a number
 * and a prune never sees the directory without its marker. */
int index_version_begin(const char *root, const char *name, int *version, foil_err *err);
/* The same, and *hold gets a descriptor holding a flock on the marker for
 * as long as the caller keeps it (-1 where the filesystem has no locks):
 * prunes on any host with cluster-wide flock then know the writer lives,
 * however long it writes. The caller releases it (index_version_release)
 * after index_publish(_ex) or when it gives up; a killed writer's lock
 * goes with it. */
int index_version_begin_held(const char *root, const char *name, int *version, int *hold, foil_err *err);
void index_version_release(int *hold);

/* Writes shard m->shard of m->version from float32 vectors (n×m->dim),
 * converting to m->dtype (vsearch.h); keys may be NULL; published
 * atomically. A vector holding a NaN or an infinity (a diverged
 * checkpoint) is refused before anything is written: FOIL_EINVAL naming
 * the checkpoint, the row, its id and key. */
int index_shard_write(const char *root, const index_meta *m, const int64_t *ids, char *const *keys,
                      const float *vectors, int64_t n, foil_err *err);

/* Makes version `version` live: checks that its n_shards shards are there
 * and agree (dim, dtype, model_hash, version), writes the manifest with
 * their CRC-32s, removes its .writing marker, replaces CURRENT, then
 * keeps only the newest `keep` complete versions (the live one and this
 * one always among those kept) and removes the incomplete ones older than
 * the newest complete one whose writer is gone (no flock on its marker
 * and foil_writer_may_live says so: of this host with its pid gone, or
 * untouched for FOIL_STALE_S); a live writer's version is never removed.
 * Manifest, CURRENT and prune run under the index's lock, so concurrent
 * publishers are serialized and CURRENT never names a removed version.
 *
 * Never backwards: when the live version's checkpoint is in the same
 * directory as this one's (one training run: jobs/<id>/ckpt/) and has a
 * higher step, CURRENT stays where it is; this version is still complete
 * (manifest written, kept until a later prune) and the call succeeds
 * without switching: index_publish_ex tells it (out->switched 0, both
 * steps); the caller reports it. Checkpoints of different runs are not
 * ordered by step: the later publish wins. Temporaries of killed writers
 * of CURRENT and of the manifest are swept first (foil_tmp_sweep). */
typedef struct {
  int live;          /* the version CURRENT names after the call */
  int switched;      /* 1: CURRENT names `version` */
  int64_t step;      /* this version's checkpoint step */
  int64_t live_step; /* the live version's (= step when switched) */
} index_pub;
int index_publish_ex(const char *root, const char *name, int version, int n_shards, int keep, index_pub *out,
                     foil_err *err);
/* index_publish_ex without the report. */
int index_publish(const char *root, const char *name, int version, int n_shards, int keep, foil_err *err);

/* The live version (from CURRENT); FOIL_ENOTFOUND if none is published. */
int index_current(const char *root, const char *name, int *version, foil_err *err);

/* Reads one shard file, checked. */
int index_shard_read(const char *path, index_shard **out, foil_err *err);
void index_shard_destroy(index_shard **s);

/* A whole version (or the shards in `which`, n_which of them; NULL: all),
 * each shard checked against the manifest's CRC-32. */
typedef struct {
  index_meta meta;       /* of the version; count = rows loaded */
  int n_shards;          /* loaded */
  int *shard_ids;
  index_shard **shards;
} index_version;

int index_version_open(const char *root, const char *name, int version, const int *which, int n_which,
                       index_version **out, foil_err *err);
void index_version_destroy(index_version **v);

#endif
