/* philox.h — Philox4x32-10 (Salmon et al., "Parallel random numbers: as
 * easy as 1, 2, 3", SC'11), the counter-based generator cuRAND and PyTorch's
 * CUDA dropout use. Key = seed; counter = (block, stream). One block gives
 * four 32-bit words, so element `offset` is word offset%4 of block offset/4.
 * Cost: 10 multiply rounds per 4 numbers; no state, so any thread can
 * produce any element. Internal to the CPU kernels. */
#ifndef FOIL_KERNELS_CPU_PHILOX_H
#define FOIL_KERNELS_CPU_PHILOX_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef struct { uint32_t v[4]; } philox_ctr;

static inline philox_ctr philox4x32_10(philox_ctr c, uint32_t k0,
                                       uint32_t k1) {
  for (int r = 0; r < 10; r++) {
    uint64_t p0 = (uint64_t)0xD2511F53u * c.v[0];
    uint64_t p1 = (uint64_t)0xCD9E8D57u * c.v[2];
    philox_ctr n;
    n.v[0] = (uint32_t)(p1 >> 32) ^ c.v[1] ^ k0;
    n.v[1] = (uint32_t)p1;
    n.v[2] = (uint32_t)(p0 >> 32) ^ c.v[3] ^ k1;
    n.v[3] = (uint32_t)p0;
    c = n;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  return c;
}

static inline philox_ctr block_at(uint64_t seed, uint64_t stream,
                                  uint64_t block) {
  philox_ctr c = {{(uint32_t)block, (uint32_t)(block >> 32), (uint32_t)stream,
                   (uint32_t)(stream >> 32)}};
  return philox4x32_10(c, (uint32_t)seed, (uint32_t)(seed >> 32));
}

static inline float to_uniform(uint32_t u) {
  return (float)(u >> 8) * (1.0f / 16777216.0f);
}


/* Words [off, off+n) of the (seed, stream) sequence, the same values as
 * block_at gives, computed lane-parallel so GCC vectorizes the 32x32->64-bit
 * multiplies (vpmuludq): several times faster than block_at in a loop.
 * n <= PHILOX_MAX_WORDS. */
#define PHILOX_MAX_WORDS 248
static inline void philox_words(uint32_t *out, size_t n, uint64_t seed, uint64_t stream,
                                uint64_t off) {
  enum { NB = PHILOX_MAX_WORDS / 4 + 2 };
  uint32_t c0[NB], c1[NB], c2[NB], c3[NB];
  uint64_t blk0 = off >> 2;
  int nb = (int)(((off + n + 3) >> 2) - blk0);
  for (int i = 0; i < nb; i++) {
    uint64_t b = blk0 + (uint64_t)i;
    c0[i] = (uint32_t)b;
    c1[i] = (uint32_t)(b >> 32);
    c2[i] = (uint32_t)stream;
    c3[i] = (uint32_t)(stream >> 32);
  }
  uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
  for (int r = 0; r < 10; r++) {
    for (int i = 0; i < nb; i++) {
      uint64_t p0 = (uint64_t)0xD2511F53u * c0[i];
      uint64_t p1 = (uint64_t)0xCD9E8D57u * c2[i];
      uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1[i] ^ k0;
      uint32_t n2 = (uint32_t)(p0 >> 32) ^ c3[i] ^ k1;
      c1[i] = (uint32_t)p1;
      c3[i] = (uint32_t)p0;
      c0[i] = n0;
      c2[i] = n2;
    }
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  uint32_t all[4 * NB];
  for (int i = 0; i < nb; i++) {
    all[4 * i] = c0[i];
    all[4 * i + 1] = c1[i];
    all[4 * i + 2] = c2[i];
    all[4 * i + 3] = c3[i];
  }
  memcpy(out, all + (off & 3), n * sizeof(uint32_t));
}

/* Dropout masks use 16 random bits per element: element i takes half
 * (i % 2) of word i/2 (low half first) and is kept when that half is
 * >= dropout_threshold(p) = ceil(p·65536). The keep probability is then
 * within 1/65536 of 1-p; survivors are scaled by exactly 1/(1-p). */
static inline uint32_t dropout_threshold(float p) {
  return (uint32_t)ceil((double)p * 65536.0);
}

/* keep[k] = 1/(1-p) or 0 for mask elements [off, off+n), n <= DROPOUT_SPAN,
 * times src[k] (src may be NULL: the scales themselves). */
#define DROPOUT_SPAN (2 * PHILOX_MAX_WORDS - 8)
static inline void dropout_scales(float *out, const float *src, size_t n, float p,
                                  uint64_t seed, uint64_t stream, uint64_t off) {
  uint32_t w[PHILOX_MAX_WORDS];
  uint64_t w0 = off >> 1;
  size_t nw = (size_t)(((off + n + 1) >> 1) - w0), skip = off & 1;
  philox_words(w, nw, seed, stream, w0);
  uint32_t h[2 * PHILOX_MAX_WORDS]; /* the 16-bit halves, low first */
  for (size_t i = 0; i < nw; i++) {
    h[2 * i] = w[i] & 0xFFFFu;
    h[2 * i + 1] = w[i] >> 16;
  }
  const uint32_t *hk = h + skip, thr = dropout_threshold(p);
  const float scale = 1.0f / (1.0f - p);
  if (src)
    for (size_t k = 0; k < n; k++) out[k] = hk[k] >= thr ? src[k] * scale : 0.0f;
  else
    for (size_t k = 0; k < n; k++) out[k] = hk[k] >= thr ? scale : 0.0f;
}

#endif
