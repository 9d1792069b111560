/* test_cuda_host.c — the CUDA backend's bit-level helpers, run on the host
 * (no GPU needed, so this is a `unit` test): the device code's Philox4x32-10
 * words and dropout decisions must be the CPU's (kernels/cpu/philox.h) bit
 * for bit, and its bf16 rounding must be round-to-nearest-even, the CPU
 * twin's (kernels/cpu/bf16.c) bit for bit. The same
 * inline functions are what the kernels run on the device. */
#include "tests/gpu/gpu_test.h"

static void test_philox(void) {
  const uint64_t seeds[] = {0, 1, 0x1234567890abcdefull, ~0ull};
  const uint64_t streams[] = {0, 7, 1ull << 40};
  int same = 1;
  for (size_t a = 0; a < 4; a++)
    for (size_t b = 0; b < 3; b++)
      for (uint64_t w = 0; w < 4099; w++) {
        uint64_t off = w < 4000 ? w : (1ull << 33) + w; /* high counter words too */
        same &= cuda_host_philox_word(seeds[a], streams[b], off) == rng_u32(seeds[a], streams[b], off);
      }
  CHECKF(same, "device Philox differs from rng_u32");
}

static void test_dropout_bits(void) {
  const float ps[] = {0.1f, 0.3f, 0.5f, 0.9f};
  int same = 1;
  for (size_t a = 0; a < 4; a++)
    for (uint64_t i = 0; i < 20001; i++)
      same &= cuda_host_dropout_kept(99, 3, 1000 + i, ps[a]) == dropout_kept(99, 3, 1000 + i, ps[a]);
  CHECKF(same, "device dropout decisions differ from dropout_kept");
  /* and from the CPU's dropout_forward over a buffer */
  const size_t n = 5003;
  float *x = malloc(sizeof(float) * n), *y = malloc(sizeof(float) * n);
  for (size_t i = 0; i < n; i++) x[i] = 1.0f;
  dropout_forward(y, x, n, 0.25f, 5, 6, 77);
  same = 1;
  for (size_t i = 0; i < n; i++) same &= (y[i] != 0.0f) == cuda_host_dropout_kept(5, 6, 77 + i, 0.25f);
  CHECKF(same, "device dropout mask differs from dropout_forward's");
  free(x);
  free(y);
}

static void test_bf16(void) {
  CHECK(cuda_host_bf16(1.0f) == 0x3f80);
  CHECK(cuda_host_bf16(1.00390625f) == 0x3f80); /* tie: to even */
  CHECK(cuda_host_bf16(1.01171875f) == 0x3f82); /* tie: up to even */
  CHECK(cuda_host_bf16(nextafterf(1.00390625f, 2.0f)) == 0x3f81); /* just above the tie */
  CHECK(cuda_host_bf16(-2.0f) == 0xc000);
  CHECK(cuda_host_bf16(INFINITY) == 0x7f80);
  CHECK((cuda_host_bf16(NAN) & 0x7fc0) == 0x7fc0);
  CHECK(cuda_host_bf16(3.4e38f) == 0x7f80); /* rounds up to inf, as a cast does */
  int same = 1;
  for (int i = 0; i < 100000; i++) {
    float f = frand() * 1000.0f;
    same &= cuda_host_bf16(f) == bf16_of(f);
  }
  CHECK(same);
  /* the CPU twin of cuda_f32_to_bf16 (kernels/cpu/bf16.c) rounds the same */
  const size_t n = 50000;
  float *x = randv(n, 3e4f);
  uint16_t *h = malloc(sizeof(uint16_t) * n);
  x[0] = NAN, x[1] = INFINITY, x[2] = -0.0f, x[3] = 1.00390625f, x[4] = 3.4e38f;
  f32_to_bf16(h, x, n);
  same = 1;
  for (size_t i = 0; i < n; i++) same &= h[i] == cuda_host_bf16(x[i]);
  CHECKF(same, "f32_to_bf16 (CPU) rounds as the device");
  free(x);
  free(h);
}

int main(void) {
  RUN(test_philox);
  RUN(test_dropout_bits);
  RUN(test_bf16);
  TEST_EXIT();
}
