/* philox.h — Philox4x32-10 (Salmon et al., "Parallel random numbers: as
 * easy as 1, 2, 3", SC'11), the counter-based generator cuRAND and PyTorch's
 * CUDA dropout use. Key = seed; counter = (block, stream). One block gives
 * four 32-bit words, so element `offset` is word offset%4 of block offset/4.
 * Cost: 10 multiply rounds per 4 numbers; no state, so any thread can
 * produce any element. Internal to the CPU kernels. */
#ifndef FOIL_KERNELS_CPU_PHILOX_H
#define FOIL_KERNELS_CPU_PHILOX_H

#include <stdint.h>

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

/* 1 when element idx of the (seed, stream) dropout mask is kept. */
static inline int dropout_keep(uint32_t u, float p) { return to_uniform(u) >= p; }

#endif
