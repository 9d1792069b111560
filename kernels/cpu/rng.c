/* rng.c — the public face of the Philox generator (philox.h). */
#include "kernels/cpu/philox.h"
#include "kernels/cpu/threads.h"
#include "kernels/kernels.h"

uint32_t rng_u32(uint64_t seed, uint64_t stream, uint64_t offset) {
  return block_at(seed, stream, offset >> 2).v[offset & 3];
}

float rng_uniform(uint64_t seed, uint64_t stream, uint64_t offset) {
  return to_uniform(rng_u32(seed, stream, offset));
}

void rng_uniform_fill(float *out, size_t n, uint64_t seed, uint64_t stream,
                      uint64_t offset) {
  kernels_sync_threads();
  /* Blocks are independent, so the loop splits across threads freely. */
  uint64_t first = offset >> 2, last = (offset + n + 3) >> 2;
#pragma omp parallel for schedule(static) if (n > 65536)
  for (uint64_t blk = first; blk < last; blk++) {
    philox_ctr c = block_at(seed, stream, blk);
    for (int w = 0; w < 4; w++) {
      uint64_t idx = blk * 4 + (uint64_t)w;
      if (idx >= offset && idx < offset + n) out[idx - offset] = to_uniform(c.v[w]);
    }
  }
}
