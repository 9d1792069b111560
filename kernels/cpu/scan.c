/* scan.c — exact inner-product scan of stored vectors fused with top-k
 * (kernels.h "top-k scan of stored vectors").
 *
 * Two ways to score a chunk of SCAN_ROWS rows:
 *  - few queries (nq <= SCAN_DIRECT_MAX): row-by-row dot products. The
 *    chunk is read from memory once; the other queries find it in L2.
 *    This is the single-query serving path and is memory-bound: four rows
 *    at a time, one vector accumulator per row, so the loads of four
 *    streams are in flight and the FMA chains overlap.
 *  - a batch: the chunk is widened to float32 (float16, int8) once, then
 *    one single-threaded sgemm per tile of SCAN_QTILE queries writes a
 *    score tile that stays in L2 while the top-k lists take from it.
 * A score is ONE function of (query, row): scan_dot's, one vector
 * accumulator per row, summed in a fixed order (lanes over j, the lanes in
 * a fixed tree, then a scalar tail). sgemm does not give that: OpenBLAS
 * sums a column differently by its place in the micro-kernel (measured:
 * equal rows get different bits), so the sgemm tile only SELECTS. A row
 * whose sgemm score reaches the list's worst minus a rounding margin is
 * rescored by scan_dot, and that score is what the list keeps. The margin
 * bounds the gap between any two float32 summation orders of d products:
 * |a − b| <= 2·γ·Σ|q_j·x_j| <= 2·γ·‖q‖·‖x‖ with γ = (d+2)·2^-24 (one more
 * rounding each for an int8 row's scale), with ‖x‖ the chunk's largest row
 * norm; so no row whose true score would enter is missed, and duplicates,
 * single queries and batches all get the same bits.
 *
 * SIMD: AVX-512F, else AVX2+FMA (+F16C for float16), else portable C that
 * GCC vectorizes; the three give slightly different bits (summation
 * order), each deterministic.
 *
 * Contraction: foil_kernels is built with -ffp-contract=fast, so GCC may
 * fuse any a·b + c it sees into an FMA, and whether it does depends on the
 * code around it (seen: the scalar tail `s += q·x` fused in one of the
 * four-row and one-row loops and not in the other, under ASan+UBSan and
 * with -mavx512f -mno-fma, so a query got other bits alone than in a
 * batch whenever d was not a multiple of the lanes). Every multiply-add
 * of a score is therefore written as SCAN_MADD, an explicit fmaf where the
 * target has a fused multiply-add (one rounding, as the vector lanes'
 * FMA), else a product and a sum, which no compiler can fuse there; so a
 * (query, row) score is one sequence of roundings in every loop, whatever
 * the compiler chooses. The other float expressions here (the margin) only
 * SELECT rows and tolerate either rounding. */
#include <cblas.h>
#include <math.h>
#include <string.h>

#include "kernels/cpu/threads.h"
#include "kernels/cpu/topk_list.h"
#include "kernels/kernels.h"

#if defined(__AVX512F__) || defined(__AVX2__) /* scan_widen: AVX2+F16C alone too */
#include <immintrin.h>
#endif

/* c + a·b rounded once where the target has a fused multiply-add (GCC
 * says so with FP_FAST_FMAF, which -mavx512f sets without __FMA__; clang
 * 14 sets no FP_FAST_FMAF, but __FMA__ / __ARM_FEATURE_FMA): fmaf is then
 * one instruction (vfmadd231ss), no call. Elsewhere the product and the
 * sum are rounded apart: with no fused instruction no compiler contracts
 * them. Cost: the same as `c += a*b` (measured, d 13 to 256). */
#if defined(FP_FAST_FMAF) || defined(__FMA__) || defined(__AVX512F__) || \
    defined(__ARM_FEATURE_FMA)
#define SCAN_MADD(a, b, c) fmaf((a), (b), (c))
#else
#define SCAN_MADD(a, b, c) ((a) * (b) + (c))
#endif

/* ---- portable float16 -> float32 ------------------------------------------ */

static inline float half_to_float(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu, man = h & 0x3ffu, bits;
  if (exp == 0x1f) {
    bits = sign | 0x7f800000u | (man << 13); /* inf / NaN */
  } else if (exp != 0) {
    bits = sign | ((exp + 112u) << 23) | (man << 13);
  } else if (man == 0) {
    bits = sign; /* ±0 */
  } else {
    /* subnormal half: normalize into a float32 normal */
    int e = -1;
    do {
      man <<= 1;
      e++;
    } while (!(man & 0x400u));
    bits = sign | ((uint32_t)(112 - e) << 23) | ((man & 0x3ffu) << 13);
  }
  float f;
  memcpy(&f, &bits, sizeof f);
  return f;
}

/* ---- dot products: out[i] = Σ_j q[j]·x_i[j] (· scales[i] for int8) -------- */

#if defined(__AVX512F__)
#define VW 16
typedef __m512 vec;
static inline vec v_zero(void) { return _mm512_setzero_ps(); }
static inline vec v_q(const float *q) { return _mm512_loadu_ps(q); }
static inline vec v_fma_f32(vec qv, const float *x, vec a) {
  return _mm512_fmadd_ps(qv, _mm512_loadu_ps(x), a);
}
static inline vec v_fma_f16(vec qv, const uint16_t *x, vec a) {
  return _mm512_fmadd_ps(qv, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)x)), a);
}
static inline vec v_fma_i8(vec qv, const int8_t *x, vec a) {
  __m512i w = _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)x));
  return _mm512_fmadd_ps(qv, _mm512_cvtepi32_ps(w), a);
}
static inline float v_sum(vec a) { return _mm512_reduce_add_ps(a); }
#elif defined(__AVX2__) && defined(__FMA__)
#define VW 8
typedef __m256 vec;
static inline vec v_zero(void) { return _mm256_setzero_ps(); }
static inline vec v_q(const float *q) { return _mm256_loadu_ps(q); }
static inline vec v_fma_f32(vec qv, const float *x, vec a) {
  return _mm256_fmadd_ps(qv, _mm256_loadu_ps(x), a);
}
#if defined(__F16C__)
static inline vec v_fma_f16(vec qv, const uint16_t *x, vec a) {
  return _mm256_fmadd_ps(qv, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)x)), a);
}
#else
static inline vec v_fma_f16(vec qv, const uint16_t *x, vec a) {
  float t[8];
  for (int l = 0; l < 8; l++) t[l] = half_to_float(x[l]);
  return _mm256_fmadd_ps(qv, _mm256_loadu_ps(t), a);
}
#endif
static inline vec v_fma_i8(vec qv, const int8_t *x, vec a) {
  __m256i w = _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)x));
  return _mm256_fmadd_ps(qv, _mm256_cvtepi32_ps(w), a);
}
static inline float v_sum(vec a) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
#else
/* Portable: 8 lanes in a struct, lane-wise loops GCC turns into SIMD
 * (each lane's multiply-add is SCAN_MADD, as the tail's). */
#define VW 8
typedef struct {
  float l[8];
} vec;
static inline vec v_zero(void) {
  vec v;
  for (int l = 0; l < 8; l++) v.l[l] = 0.0f;
  return v;
}
static inline vec v_q(const float *q) {
  vec v;
  memcpy(v.l, q, sizeof v.l);
  return v;
}
static inline vec v_fma_f32(vec qv, const float *x, vec a) {
  for (int l = 0; l < 8; l++) a.l[l] = SCAN_MADD(qv.l[l], x[l], a.l[l]);
  return a;
}
static inline vec v_fma_f16(vec qv, const uint16_t *x, vec a) {
  for (int l = 0; l < 8; l++) a.l[l] = SCAN_MADD(qv.l[l], half_to_float(x[l]), a.l[l]);
  return a;
}
static inline vec v_fma_i8(vec qv, const int8_t *x, vec a) {
  for (int l = 0; l < 8; l++) a.l[l] = SCAN_MADD(qv.l[l], (float)x[l], a.l[l]);
  return a;
}
static inline float v_sum(vec a) {
  return ((a.l[0] + a.l[4]) + (a.l[2] + a.l[6])) + ((a.l[1] + a.l[5]) + (a.l[3] + a.l[7]));
}
#endif

/* Software prefetch SCAN_AHEAD rows ahead (one line per vector of row
 * data: over-prefetches int8 and float16 rows, harmless). Prefetching past
 * the chunk's end is a hint, never a fault. */
#define SCAN_AHEAD 16
#define SCAN_PREFETCH(p) __builtin_prefetch((const void *)(p), 0, 0)

/* One macro body per dtype keeps the loads typed (and inlined). R rows at a
 * time (R = 4, then 1 for the remainder): the same per-row operations in
 * both (vector FMAs, the fixed lane tree, SCAN_MADD tail), so a row's bits
 * do not depend on where in a chunk it falls. */
#define DOT_ROWS(T, FMA)                                                                  \
  static void dot_##T(float *out, const float *q, const T *x, int n, int d) {           \
    int dv = d - d % VW, i = 0;                                                          \
    for (; i + 4 <= n; i += 4) {                                                         \
      const T *r0 = x + (size_t)i * d, *r1 = r0 + d, *r2 = r1 + d, *r3 = r2 + d;         \
      vec a0 = v_zero(), a1 = v_zero(), a2 = v_zero(), a3 = v_zero();                    \
      for (int j = 0; j < dv; j += VW) {                                                 \
        vec qv = v_q(q + j);                                                             \
        SCAN_PREFETCH(r0 + j + SCAN_AHEAD * (size_t)d);                                  \
        SCAN_PREFETCH(r1 + j + SCAN_AHEAD * (size_t)d);                                  \
        SCAN_PREFETCH(r2 + j + SCAN_AHEAD * (size_t)d);                                  \
        SCAN_PREFETCH(r3 + j + SCAN_AHEAD * (size_t)d);                                  \
        a0 = FMA(qv, r0 + j, a0);                                                        \
        a1 = FMA(qv, r1 + j, a1);                                                        \
        a2 = FMA(qv, r2 + j, a2);                                                        \
        a3 = FMA(qv, r3 + j, a3);                                                        \
      }                                                                                  \
      float s0 = v_sum(a0), s1 = v_sum(a1), s2 = v_sum(a2), s3 = v_sum(a3);             \
      for (int j = dv; j < d; j++) {                                                     \
        s0 = SCAN_MADD(q[j], (float)r0[j], s0);                                          \
        s1 = SCAN_MADD(q[j], (float)r1[j], s1);                                          \
        s2 = SCAN_MADD(q[j], (float)r2[j], s2);                                          \
        s3 = SCAN_MADD(q[j], (float)r3[j], s3);                                          \
      }                                                                                  \
      out[i] = s0, out[i + 1] = s1, out[i + 2] = s2, out[i + 3] = s3;                    \
    }                                                                                    \
    for (; i < n; i++) {                                                                 \
      const T *r0 = x + (size_t)i * d;                                                   \
      vec a0 = v_zero();                                                                 \
      for (int j = 0; j < dv; j += VW) a0 = FMA(v_q(q + j), r0 + j, a0);                 \
      float s0 = v_sum(a0);                                                              \
      for (int j = dv; j < d; j++) s0 = SCAN_MADD(q[j], (float)r0[j], s0);               \
      out[i] = s0;                                                                       \
    }                                                                                    \
  }

DOT_ROWS(float, v_fma_f32)
DOT_ROWS(int8_t, v_fma_i8)
/* float16's scalar tail widens each element (T is the storage type). */
static void dot_uint16_t(float *out, const float *q, const uint16_t *x, int n, int d) {
  int dv = d - d % VW, i = 0;
  for (; i + 4 <= n; i += 4) {
    const uint16_t *r0 = x + (size_t)i * d, *r1 = r0 + d, *r2 = r1 + d, *r3 = r2 + d;
    vec a0 = v_zero(), a1 = v_zero(), a2 = v_zero(), a3 = v_zero();
    for (int j = 0; j < dv; j += VW) {
      vec qv = v_q(q + j);
      SCAN_PREFETCH(r0 + j + SCAN_AHEAD * (size_t)d);
      SCAN_PREFETCH(r1 + j + SCAN_AHEAD * (size_t)d);
      SCAN_PREFETCH(r2 + j + SCAN_AHEAD * (size_t)d);
      SCAN_PREFETCH(r3 + j + SCAN_AHEAD * (size_t)d);
      a0 = v_fma_f16(qv, r0 + j, a0);
      a1 = v_fma_f16(qv, r1 + j, a1);
      a2 = v_fma_f16(qv, r2 + j, a2);
      a3 = v_fma_f16(qv, r3 + j, a3);
    }
    float s0 = v_sum(a0), s1 = v_sum(a1), s2 = v_sum(a2), s3 = v_sum(a3);
    for (int j = dv; j < d; j++) {
      s0 = SCAN_MADD(q[j], half_to_float(r0[j]), s0);
      s1 = SCAN_MADD(q[j], half_to_float(r1[j]), s1);
      s2 = SCAN_MADD(q[j], half_to_float(r2[j]), s2);
      s3 = SCAN_MADD(q[j], half_to_float(r3[j]), s3);
    }
    out[i] = s0, out[i + 1] = s1, out[i + 2] = s2, out[i + 3] = s3;
  }
  for (; i < n; i++) {
    const uint16_t *r0 = x + (size_t)i * d;
    vec a0 = v_zero();
    for (int j = 0; j < dv; j += VW) a0 = v_fma_f16(v_q(q + j), r0 + j, a0);
    float s0 = v_sum(a0);
    for (int j = dv; j < d; j++) s0 = SCAN_MADD(q[j], half_to_float(r0[j]), s0);
    out[i] = s0;
  }
}

void scan_dot(float *scores, const float *q, int d, int dtype, const void *x,
              const float *scales, int n) {
  if (n <= 0) return;
  switch (dtype) {
    case SCAN_F16: dot_uint16_t(scores, q, (const uint16_t *)x, n, d); break;
    case SCAN_I8:
      dot_int8_t(scores, q, (const int8_t *)x, n, d);
      for (int i = 0; i < n; i++) scores[i] *= scales[i];
      break;
    default: dot_float(scores, q, (const float *)x, n, d); break;
  }
}

void scan_widen(float *dst, int dtype, const void *x, size_t n) {
  if (dtype == SCAN_F16) {
    const uint16_t *h = x;
    size_t i = 0;
#if defined(__AVX512F__)
    for (; i + 16 <= n; i += 16)
      _mm512_storeu_ps(dst + i, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(h + i))));
#elif defined(__AVX2__) && defined(__F16C__)
    for (; i + 8 <= n; i += 8)
      _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(h + i))));
#endif
    for (; i < n; i++) dst[i] = half_to_float(h[i]);
  } else if (dtype == SCAN_I8) {
    const int8_t *b = x;
    for (size_t i = 0; i < n; i++) dst[i] = (float)b[i]; /* GCC vectorizes this */
  } else {
    memcpy(dst, x, n * sizeof(float));
  }
}

size_t scan_topk_scratch(int d) {
  return (size_t)SCAN_QTILE * SCAN_ROWS + (size_t)SCAN_ROWS * (size_t)(d > 0 ? d : 0);
}

/* Takes, from one query's sgemm scores s[0..n) of the chunk's rows, every
 * row within margin of the list's worst, rescored by scan_dot. */
static void offer_rescored(float *ts, int64_t *ti, int K, const float *s, int n, float margin,
                           const float *q, int d, int dtype, const void *x, size_t esz,
                           const float *scales, const int64_t *ids, int64_t id_lo, int64_t id_hi,
                           int64_t key0) {
  int filter = id_lo <= id_hi;
  float worst = ts[K - 1];
  int64_t worst_id = ti[K - 1];
  for (int j0 = 0; j0 < n; j0 += 16) {
    int m = n - j0 < 16 ? n - j0 : 16;
    if (!topk_any_ge(s + j0, m, worst - margin)) continue;
    for (int j = j0; j < j0 + m; j++) {
      if (!(s[j] >= worst - margin)) continue;
      int64_t rid = ids[j];
      if (rid < 0 || (filter && (rid < id_lo || rid > id_hi))) continue;
      float v;
      scan_dot(&v, q, d, dtype, (const char *)x + (size_t)j * d * esz, scales ? scales + j : NULL,
               1);
      int64_t key = key0 < 0 ? rid : key0 + j;
      if (!(v >= worst) || !topk_before(v, key, worst, worst_id)) continue;
      topk_insert(ts, ti, K, v, key);
      worst = ts[K - 1];
      worst_id = ti[K - 1];
    }
  }
}

/* ‖x‖ in float32 (all terms positive: relative error below (d+1)·2^-24,
 * which the margin's factor 1.01 covers for d < 80,000). */
static float norm2(const float *x, int d) {
  float s;
  dot_float(&s, x, x, 1, d);
  return sqrtf(s);
}

void scan_topk(float *top_score, int64_t *top_id, int nq, int K, const float *q, int d,
               int dtype, const void *x, const float *scales, const int64_t *ids, int n,
               int64_t id_lo, int64_t id_hi, int64_t row0, float *scratch) {
  kernels_sync_threads();
  if (nq <= 0 || K <= 0 || n <= 0) return;
  size_t esz = dtype == SCAN_F16 ? 2 : dtype == SCAN_I8 ? 1 : 4;
  float *tile = scratch, *wide = scratch + (size_t)SCAN_QTILE * SCAN_ROWS;
  for (int r0 = 0; r0 < n; r0 += SCAN_ROWS) {
    int nr = n - r0 < SCAN_ROWS ? n - r0 : SCAN_ROWS;
    const void *xr = (const char *)x + (size_t)r0 * (size_t)d * esz;
    const float *sc = scales ? scales + r0 : NULL;
    const int64_t *id = ids + r0;
    int64_t key0 = row0 < 0 ? -1 : row0 + r0;
    if (nq <= SCAN_DIRECT_MAX) {
      for (int i = 0; i < nq; i++) {
        scan_dot(tile, q + (size_t)i * d, d, dtype, xr, sc, nr);
        topk_offer(top_score + (size_t)i * K, top_id + (size_t)i * K, K, tile, nr, id, id_lo,
                   id_hi, key0);
      }
      continue;
    }
    const float *xf = xr;
    if (dtype != SCAN_F32) {
      scan_widen(wide, dtype, xr, (size_t)nr * d);
      xf = wide;
    }
    /* the margin's row factor: the chunk's largest ‖x‖ (scaled for int8) */
    float xmax = 0.0f;
    for (int r = 0; r < nr; r++) {
      float nx = norm2(xf + (size_t)r * d, d) * (sc ? fabsf(sc[r]) : 1.0f);
      xmax = nx > xmax ? nx : xmax;
    }
    const float gam = (float)(2.0 * (d + 2) * 0x1p-24 * 1.01) * xmax;
    for (int q0 = 0; q0 < nq; q0 += SCAN_QTILE) {
      int mq = nq - q0 < SCAN_QTILE ? nq - q0 : SCAN_QTILE;
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, mq, nr, d, 1.0f, q + (size_t)q0 * d,
                  d, xf, d, 0.0f, tile, nr);
      for (int i = 0; i < mq; i++) {
        float *s = tile + (size_t)i * nr;
        const float *qi = q + (size_t)(q0 + i) * d;
        if (dtype == SCAN_I8)
          for (int j = 0; j < nr; j++) s[j] *= sc[j];
        /* (1 + 2^-10) covers the roundings of the margin itself */
        float margin = gam * norm2(qi, d) * (1.0f + 0x1p-10f);
        offer_rescored(top_score + (size_t)(q0 + i) * K, top_id + (size_t)(q0 + i) * K, K, s, nr,
                       margin, qi, d, dtype, xr, esz, sc, id, id_lo, id_hi, key0);
      }
    }
  }
}
