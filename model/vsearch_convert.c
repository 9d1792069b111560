/* vsearch_convert.c — the storage conversions of vsearch.h: float32 ↔ IEEE
 * half and float32 → int8 with a per-row scale, and a block's rows back as
 * float32. Kept apart from the search itself: index shards are written
 * with these and read back by the scan.
 */
#include "model/vsearch.h"

#include <float.h>
#include <math.h>
#include <string.h>

/* One float32 → binary16, round to nearest, ties to even. Overflow gives
 * ±inf, NaN stays a (quiet) NaN, tiny values become subnormals or ±0. */
static uint16_t f32_to_f16(float f) {
  uint32_t x;
  memcpy(&x, &f, sizeof x);
  uint32_t sign = (x >> 16) & 0x8000u;
  uint32_t exp = (x >> 23) & 0xffu;
  uint32_t man = x & 0x7fffffu;
  if (exp == 0xffu) return (uint16_t)(sign | 0x7c00u | (man ? 0x200u : 0)); /* inf, NaN */
  int e = (int)exp - 127 + 15;                                              /* half exponent */
  if (e >= 31) return (uint16_t)(sign | 0x7c00u);                           /* overflow */
  if (e <= 0) {                                                             /* subnormal or zero */
    if (e < -10) return (uint16_t)sign;
    man |= 0x800000u;                  /* the implicit bit */
    int shift = 14 - e;                /* 24-bit mantissa → 10 bits at exponent 1 */
    uint32_t half = man >> shift;
    uint32_t rest = man & ((1u << shift) - 1), mid = 1u << (shift - 1);
    if (rest > mid || (rest == mid && (half & 1u))) half++;
    return (uint16_t)(sign | half);    /* a carry into the exponent is the right answer */
  }
  uint32_t half = ((uint32_t)e << 10) | (man >> 13);
  uint32_t rest = man & 0x1fffu;
  if (rest > 0x1000u || (rest == 0x1000u && (half & 1u))) half++; /* may carry to inf: right too */
  return (uint16_t)(sign | half);
}

static float f16_to_f32(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu, man = h & 0x3ffu, x;
  if (exp == 0x1fu) {
    x = sign | 0x7f800000u | (man << 13);
  } else if (exp) {
    x = sign | ((exp - 15 + 127) << 23) | (man << 13);
  } else if (!man) {
    x = sign;
  } else { /* subnormal: man · 2^-24 exactly */
    float v = ldexpf((float)man, -24);
    memcpy(&x, &v, sizeof x);
    x |= sign;
  }
  float f;
  memcpy(&f, &x, sizeof f);
  return f;
}

void vs_to_f16(uint16_t *dst, const float *src, int64_t n) {
  for (int64_t i = 0; i < n; i++) dst[i] = f32_to_f16(src[i]);
}

void vs_from_f16(float *dst, const uint16_t *src, int64_t n) {
  for (int64_t i = 0; i < n; i++) dst[i] = f16_to_f32(src[i]);
}

/* The scale comes from the finite elements only, so it is always finite;
 * NaN is stored as 0 and ±inf saturates to ±127 (0 when the row has no
 * nonzero finite element, scale 0): no float→int conversion of a value
 * outside int's range, which C leaves undefined. */
void vs_to_i8(int8_t *dst, float *scales, const float *src, int64_t rows, int d) {
  for (int64_t r = 0; r < rows; r++) {
    const float *x = src + r * d;
    int8_t *q = dst + r * d;
    float amax = 0.0f;
    for (int j = 0; j < d; j++) {
      float a = fabsf(x[j]);
      if (a <= FLT_MAX && a > amax) amax = a; /* false for NaN and inf */
    }
    float scale = amax / 127.0f;
    scales[r] = scale;
    for (int j = 0; j < d; j++) {
      float v = scale > 0.0f && !isnan(x[j]) ? nearbyintf(x[j] / scale) : 0.0f;
      q[j] = (int8_t)(v >= 127.0f ? 127 : v <= -127.0f ? -127 : (int)v);
    }
  }
}

void vs_rows_f32(const vs_block *b, int64_t r0, int64_t m, float *out) {
  size_t d = (size_t)b->d, n = (size_t)m * d, at = (size_t)r0 * d;
  if (b->exact) {
    memcpy(out, b->exact + at, n * sizeof *out);
  } else if (b->dtype == VS_F32) {
    memcpy(out, (const float *)b->data + at, n * sizeof *out);
  } else if (b->dtype == VS_F16) {
    vs_from_f16(out, (const uint16_t *)b->data + at, (int64_t)n);
  } else {
    const int8_t *x = (const int8_t *)b->data + at;
    for (int64_t r = 0; r < m; r++)
      for (size_t j = 0; j < d; j++) out[(size_t)r * d + j] = b->scales[r0 + r] * (float)x[(size_t)r * d + j];
  }
}
