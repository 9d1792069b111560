/* lanes.h — a vector's lanes summed by a fixed tree, for the CPU kernels
 * that accumulate in vector lanes and must give the same bits on every
 * call (matmul.c's few-row kernel, attention.c's cache scores). Internal
 * to the CPU kernels; __builtin_shufflevector needs GCC >= 12 or clang.
 *
 * lanes_load8(p): 8 floats from p (any alignment).
 * lanes_sumW(v): lane i += lane i + W/2, then i + W/4, ... down to one
 * lane (log2(W) shuffles and adds).
 * lanes_sum4xW(a0, a1, a2, a3): [Σa0, Σa1, Σa2, Σa3] by the same tree,
 * the four folded together, halving the width at each step
 * (2·log2(W) + 1 shuffles and adds for all four where four lanes_sumW
 * cost 8·log2(W)); each sum's bits equal lanes_sumW's. */
#ifndef FOIL_KERNELS_CPU_LANES_H
#define FOIL_KERNELS_CPU_LANES_H

#include <string.h>

typedef float lanes_v4 __attribute__((vector_size(16)));
typedef float lanes_v8 __attribute__((vector_size(32)));
typedef float lanes_v16 __attribute__((vector_size(64)));

static inline lanes_v8 lanes_load8(const float *p) {
  lanes_v8 v;
  memcpy(&v, p, sizeof v);
  return v;
}

static inline float lanes_sum4(lanes_v4 v) {
  v += __builtin_shufflevector(v, v, 2, 3, 0, 1);
  v += __builtin_shufflevector(v, v, 1, 0, 3, 2);
  return v[0];
}

static inline float lanes_sum8(lanes_v8 v) {
  v += __builtin_shufflevector(v, v, 4, 5, 6, 7, 0, 1, 2, 3);
  v += __builtin_shufflevector(v, v, 2, 3, 0, 1, 6, 7, 4, 5);
  v += __builtin_shufflevector(v, v, 1, 0, 3, 2, 5, 4, 7, 6);
  return v[0];
}

static inline float lanes_sum16(lanes_v16 v) {
  v += __builtin_shufflevector(v, v, 8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7);
  v += __builtin_shufflevector(v, v, 4, 5, 6, 7, 0, 1, 2, 3, 12, 13, 14, 15, 8, 9, 10, 11);
  v += __builtin_shufflevector(v, v, 2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13);
  v += __builtin_shufflevector(v, v, 1, 0, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10, 13, 12, 15, 14);
  return v[0];
}

static inline lanes_v4 lanes_sum4x4(lanes_v4 a0, lanes_v4 a1, lanes_v4 a2, lanes_v4 a3) {
  lanes_v4 u = __builtin_shufflevector(a0, a1, 0, 1, 4, 5) + __builtin_shufflevector(a0, a1, 2, 3, 6, 7);
  lanes_v4 v = __builtin_shufflevector(a2, a3, 0, 1, 4, 5) + __builtin_shufflevector(a2, a3, 2, 3, 6, 7);
  return __builtin_shufflevector(u, v, 0, 2, 4, 6) + __builtin_shufflevector(u, v, 1, 3, 5, 7);
}

static inline lanes_v4 lanes_sum4x8(lanes_v8 a0, lanes_v8 a1, lanes_v8 a2, lanes_v8 a3) {
  /* 8 -> 4 lanes each: [a0 | a1], [a2 | a3] */
  lanes_v8 u = __builtin_shufflevector(a0, a1, 0, 1, 2, 3, 8, 9, 10, 11) +
               __builtin_shufflevector(a0, a1, 4, 5, 6, 7, 12, 13, 14, 15);
  lanes_v8 v = __builtin_shufflevector(a2, a3, 0, 1, 2, 3, 8, 9, 10, 11) +
               __builtin_shufflevector(a2, a3, 4, 5, 6, 7, 12, 13, 14, 15);
  /* 4 -> 2 lanes each: [a0 | a1 | a2 | a3] */
  lanes_v8 w = __builtin_shufflevector(u, v, 0, 1, 4, 5, 8, 9, 12, 13) +
               __builtin_shufflevector(u, v, 2, 3, 6, 7, 10, 11, 14, 15);
  return __builtin_shufflevector(w, w, 0, 2, 4, 6) + __builtin_shufflevector(w, w, 1, 3, 5, 7);
}

static inline lanes_v4 lanes_sum4x16(lanes_v16 a0, lanes_v16 a1, lanes_v16 a2, lanes_v16 a3) {
  /* 16 -> 8 lanes each: [a0 | a1], [a2 | a3] */
  lanes_v16 u = __builtin_shufflevector(a0, a1, 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23) +
                __builtin_shufflevector(a0, a1, 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31);
  lanes_v16 v = __builtin_shufflevector(a2, a3, 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23) +
                __builtin_shufflevector(a2, a3, 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31);
  /* 8 -> 4 lanes each: [a0 | a1 | a2 | a3] */
  lanes_v16 w = __builtin_shufflevector(u, v, 0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25, 26, 27) +
                __builtin_shufflevector(u, v, 4, 5, 6, 7, 12, 13, 14, 15, 20, 21, 22, 23, 28, 29, 30, 31);
  /* 4 -> 1 within each quarter */
  w += __builtin_shufflevector(w, w, 2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13);
  w += __builtin_shufflevector(w, w, 1, 0, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10, 13, 12, 15, 14);
  return __builtin_shufflevector(w, w, 0, 4, 8, 12);
}

#endif
