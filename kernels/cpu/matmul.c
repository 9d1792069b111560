/* matmul.c — the linear layer: the forward on a kernel of its own (below),
 * MM_SMALL_N rows at a time; the backward on OpenBLAS sgemm, which outside
 * a parallel region uses every kernel thread (see runtime.c). */
#include <cblas.h>
#include <string.h>

#include "kernels/cpu/lanes.h"
#include "kernels/cpu/threads.h"
#include "kernels/kernels.h"

/* Few rows (decoding steps: one token per sequence; contrastive search's
 * k candidates; CAD's two variants; DoLa's early exits through the LM
 * head): sgemm would copy all of W into packed panels on every call, as
 * much memory traffic as the product itself at N = 8. This path streams W
 * once per group of up to MM_GROUP input rows: a block of 4 rows of W is
 * loaded MM_LANES columns at a time and multiplied into 4 accumulators per
 * input row, so the extra rows of a group cost FMAs on registers, not
 * another pass over W (with every accumulator in a register: 24 + 4 W + 1
 * input vector of AVX-512's 32). While it works on a block it prefetches
 * the next one, so the memory stream does not stall behind the FMAs. A
 * block's 4 accumulators of a row are summed together by a fixed tree
 * (mm_hsum4): a row's bits do not depend on the thread count, nor on which
 * other rows share the call. */
#if defined(__AVX512F__)
#define MM_VBYTES 64
#define MM_GROUP 6
#elif defined(__AVX__)
#define MM_VBYTES 32
#define MM_GROUP 2 /* 8 accumulators + 4 + 1 of 16 registers */
#else
#define MM_VBYTES 16
#define MM_GROUP 2
#endif
#define MM_LANES (MM_VBYTES / 4) /* floats per vector */
/* Up to 64 rows the one-pass kernel beats OpenBLAS 0.3.21's sgemm on
 * GPT-2 small's shapes (1.7x at 16 rows, 1.4x at 64) on this project's CPU
 * machines: decoding steps of a batch, contrastive search's k candidates
 * per prompt, DoLa's exits. Run 64 rows at a time it beats it at any
 * number of rows too (2048 rows of d 256, 384 and 768 layers: 1.35-1.6x
 * on one core, 1.6-1.9x on two; OpenBLAS 0.3.21 has no kernel for this
 * CPU and falls back to an older one), and a row's bits never depend on
 * the rows beside it. */
enum { MM_SMALL_N = 64 };
typedef float mm_vec __attribute__((vector_size(MM_VBYTES)));

static inline mm_vec mm_load(const float *p) {
  mm_vec v;
  memcpy(&v, p, sizeof v);
  return v;
}

/* Keeps v in a register: GCC would otherwise fold a vector's load into each
 * FMA that uses it (an input row's into its 4, a W row's into R: loads, not
 * FMAs, then bound the loop). */
#if defined(__AVX512F__)
#define MM_IN_REG(v) __asm__("" : "+v"(v))
#elif defined(__x86_64__) || defined(__i386__)
#define MM_IN_REG(v) __asm__("" : "+x"(v))
#else
#define MM_IN_REG(v) ((void)0)
#endif

/* A vector's lanes summed by lanes.h's fixed tree, one (mm_hsum) or four
 * at once into [Σa0, Σa1, Σa2, Σa3] (mm_hsum4): a block's four
 * accumulators of a row, 2·log2(MM_LANES) + 1 shuffles and adds for all
 * four. */
#if MM_LANES == 16
#define mm_hsum lanes_sum16
#define mm_hsum4 lanes_sum4x16
#elif MM_LANES == 8
#define mm_hsum lanes_sum8
#define mm_hsum4 lanes_sum4x8
#else
#define mm_hsum lanes_sum4
#define mm_hsum4 lanes_sum4x4
#endif

/* o[4·r + j] += x_r · w_j over columns [c0, c1) for R input rows x (stride
 * C) and the 4 rows w_j of a block (stride C); o is the block's output, 4
 * floats per row. Between two column chunks a group's accumulators wait in
 * acc (R·4 vectors, L1-resident; first: start from zero, last: sum them
 * into o), so every lane sees its FMAs in the same order as in one pass:
 * chunking changes no bit. pf: npf cache lines to prefetch, spread evenly
 * over this call's steps (or NULL). R is a constant at each call site, so
 * a[][] lives in registers. */
static inline __attribute__((always_inline)) void mm_rows(float *o, const float *x,
                                                          const float *w, int C, int c0, int c1,
                                                          mm_vec *acc, int first, int last,
                                                          const char *pf, int npf, const int R) {
  mm_vec a[6][4]; /* 6: the largest MM_GROUP */
  for (int r = 0; r < R; r++)
    for (int j = 0; j < 4; j++) a[r][j] = first ? (mm_vec){0} : acc[4 * r + j];
  const int nsteps = (c1 - c0) / MM_LANES;
  int c = c0, due = 0; /* due: prefetches owed, in units of 1/nsteps line */
  for (; c + MM_LANES <= c1; c += MM_LANES) {
    if (pf)
      for (due += npf; due >= nsteps; due -= nsteps, pf += 64) __builtin_prefetch(pf, 0, 3);
    mm_vec w0 = mm_load(w + c), w1 = mm_load(w + C + c);
    mm_vec w2 = mm_load(w + 2 * C + c), w3 = mm_load(w + 3 * C + c);
    MM_IN_REG(w0);
    MM_IN_REG(w1);
    MM_IN_REG(w2);
    MM_IN_REG(w3);
    for (int r = 0; r < R; r++) {
      mm_vec xv = mm_load(x + (size_t)r * C + c);
      MM_IN_REG(xv);
      a[r][0] += w0 * xv, a[r][1] += w1 * xv, a[r][2] += w2 * xv, a[r][3] += w3 * xv;
    }
  }
  if (!last) {
    for (int r = 0; r < R; r++)
      for (int j = 0; j < 4; j++) acc[4 * r + j] = a[r][j];
    return;
  }
  /* unrolled: the accumulators stay in registers (a loop over r would
   * index a[][] and spill all of them to the stack) */
#pragma GCC unroll 6
  for (int r = 0; r < R; r++) {
    lanes_v4 s = mm_hsum4(a[r][0], a[r][1], a[r][2], a[r][3]);
    if (c < C) /* C not a multiple of MM_LANES: the last columns one by one */
      for (int j = 0; j < 4; j++)
        for (int u = c; u < C; u++) s[j] += w[(size_t)j * C + u] * x[(size_t)r * C + u];
    float *orow = o + 4 * r;
    orow[0] += s[0], orow[1] += s[1], orow[2] += s[2], orow[3] += s[3];
  }
}

static void mm_group(float *o, const float *x, const float *w, int C, int c0, int c1,
                     mm_vec *acc, int first, int last, const char *pf, int npf, int R) {
  switch (R) {
  case 1: mm_rows(o, x, w, C, c0, c1, acc, first, last, pf, npf, 1); break;
  case 2: mm_rows(o, x, w, C, c0, c1, acc, first, last, pf, npf, 2); break;
#if MM_GROUP > 2
  case 3: mm_rows(o, x, w, C, c0, c1, acc, first, last, pf, npf, 3); break;
  case 4: mm_rows(o, x, w, C, c0, c1, acc, first, last, pf, npf, 4); break;
  case 5: mm_rows(o, x, w, C, c0, c1, acc, first, last, pf, npf, 5); break;
  case 6: mm_rows(o, x, w, C, c0, c1, acc, first, last, pf, npf, 6); break;
#endif
  default: break; /* R <= MM_GROUP by construction */
  }
}

/* One output column past the last whole block of 4 (OC % 4 of them). */
static float mm_dot1(const float *x, const float *w, int C) {
  mm_vec a = {0};
  int c = 0;
  for (; c + MM_LANES <= C; c += MM_LANES) a += mm_load(w + c) * mm_load(x + c);
  float s = mm_hsum(a);
  for (; c < C; c++) s += w[c] * x[c];
  return s;
}

/* A block of 4 rows of W meets every input row of a chunk (MM_SMALL_N
 * rows) before the next block: the rows in groups of near-equal size (at most MM_GROUP), the columns in
 * chunks of about MM_KC, so that a chunk of the block (4·MM_KC floats,
 * 12 KB) and of a group's rows (18 KB) share L1 (48 KB) while the other
 * groups pass: at C = 3072 (GPT-2's second MLP layer) the whole block,
 * 48 KB, would be read from L2 once per group. The next block's prefetches
 * are spread over all of a block's calls, so the memory stream keeps going
 * while the FMAs run instead of coming in one burst. A block's outputs
 * gather in ob and are written once. Cost: N·C·OC multiply-adds, one read
 * of W per chunk, a chunk's input rows read once per block (from L2 beyond
 * a few rows). */
enum { MM_KC = 768 };
void matmul_forward(float *out, const float *inp, const float *W, const float *b, int N, int C,
                    int OC) {
  kernels_sync_threads();
  const int nblk = OC / 4;
  const int nvec = C / MM_LANES, nch = nvec * MM_LANES > MM_KC ? (nvec * MM_LANES + MM_KC - 1) / MM_KC : 1;
  const int npf = (int)(4 * (size_t)C * sizeof(float) / 64);
  /* One parallel region for all of N, MM_SMALL_N rows at a time: a thread
   * keeps its blocks of W from chunk to chunk (static schedule), and no
   * barrier between chunks (they write disjoint rows). Each chunk streams
   * W once: from memory for a decoding step, from cache after the first
   * chunk for a layer of training-batch size. */
#pragma omp parallel
  {
    mm_vec acc[(MM_SMALL_N + MM_GROUP - 1) / MM_GROUP][6 * 4];
    float ob[4 * MM_SMALL_N];
    for (int r0 = 0; r0 < N; r0 += MM_SMALL_N) {
      const int M = N - r0 < MM_SMALL_N ? N - r0 : MM_SMALL_N;
      const int ngroups = (M + MM_GROUP - 1) / MM_GROUP, calls = nch * ngroups;
      const float *x = inp + (size_t)r0 * C;
      float *y = out + (size_t)r0 * OC;
#pragma omp for schedule(static) nowait
      for (int blk = 0; blk < nblk; blk++) {
        const int o0 = 4 * blk;
        const char *next = blk + 1 < nblk ? (const char *)(W + (size_t)(o0 + 4) * C) : NULL;
        for (int n = 0; n < M; n++)
          for (int j = 0; j < 4; j++) ob[4 * n + j] = b ? b[o0 + j] : 0.0f;
        for (int k = 0; k < nch; k++) {
          /* products in int64: k·nvec reaches C²/(16·MM_KC) and q·npf
           * C²·ngroups/(4·MM_KC), past int's range from C ~ 7.7e5 (a
           * 64-row chunk on AVX-512; the quotients always fit) */
          const int c0 = (int)((int64_t)k * nvec / nch) * MM_LANES;
          const int c1 = k + 1 == nch ? C : (int)((int64_t)(k + 1) * nvec / nch) * MM_LANES;
          for (int g = 0, n0 = 0; g < ngroups; g++) {
            const int R = (M - n0) / (ngroups - g), q = k * ngroups + g;
            const int l0 = (int)((int64_t)q * npf / calls), l1 = (int)((int64_t)(q + 1) * npf / calls);
            mm_group(ob + 4 * n0, x + (size_t)n0 * C, W + (size_t)o0 * C, C, c0, c1, acc[g],
                     k == 0, k + 1 == nch, next ? next + (size_t)64 * l0 : NULL, l1 - l0, R);
            n0 += R;
          }
        }
        for (int n = 0; n < M; n++)
          memcpy(y + (size_t)n * OC + o0, ob + 4 * n, 4 * sizeof(float));
      }
    }
  }
  for (int o = 4 * nblk; o < OC; o++)
    for (int n = 0; n < N; n++)
      out[(size_t)n * OC + o] = (b ? b[o] : 0.0f) + mm_dot1(inp + (size_t)n * C, W + (size_t)o * C, C);
}

#define MM_COLS 64
void matmul_backward(float *dinp, float *dW, float *db, const float *dout,
                     const float *inp, const float *W, int N, int C, int OC) {
  kernels_sync_threads();
  if (dinp)
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, C, OC, 1.0f,
                dout, OC, W, C, 1.0f, dinp, C);
  if (dW)
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OC, C, N, 1.0f, dout,
                OC, inp, C, 1.0f, dW, C);
  if (db) {
    /* Column sums: each block of columns is summed over rows, in order, by
     * one thread, so the bits do not depend on the thread count. */
    int nblk = (OC + MM_COLS - 1) / MM_COLS;
#pragma omp parallel for schedule(static)
    for (int blk = 0; blk < nblk; blk++) {
      int c0 = blk * MM_COLS, c1 = c0 + MM_COLS < OC ? c0 + MM_COLS : OC;
      float acc[MM_COLS] = {0};
      for (int n = 0; n < N; n++) {
        const float *d = dout + (size_t)n * OC;
        for (int c = c0; c < c1; c++) acc[c - c0] += d[c];
      }
      for (int c = c0; c < c1; c++) db[c] += acc[c - c0];
    }
  }
}
