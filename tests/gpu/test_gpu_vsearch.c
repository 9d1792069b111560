/* test_gpu_vsearch.c — model/vsearch_dev.h (foil-serve's search on the GPU)
 * against vs_search on the CPU.
 *
 * The device holds every row as float32: a block's exact copy when it has
 * one, else its stored vectors widened. The reference is vs_search over
 * float32 blocks the test builds that way itself. Vectors hold small
 * integers (int8 scales are powers of two, float16 holds them exactly), so
 * every score is an exact integer on both sides, many tie, and the lists
 * must be IDENTICAL: ids and scores, ties by the lower id. Cases: mixed
 * float32/float16/int8 blocks with scrambled ids, an empty block, a block
 * longer than one device tile (CUDA_SCAN_ROWS), batches across the 256-query
 * chunks, the id filter, k above the rows held, k above CUDA_TOPK_MAX (the
 * host fallback), bad arguments, and a second index built on another thread
 * while the first is searched (the lock).
 *
 * Runs as gpu.vsearch on a GPU and as unit.gpu_shim_vsearch everywhere
 * against tests/gpu/cuda_shim.c (which then also checks that every launcher
 * gets device buffers of the right sizes). */
#include <pthread.h>

#include "model/vsearch.h"
#include "model/vsearch_dev.h"
#include "tests/gpu/gpu_test.h"

enum { D = 8, NB = 5 };

typedef struct {
  vs_block b[NB];   /* as stored */
  vs_block ref[NB]; /* float32, what the device must hold */
  void *mem[NB * 5];
  int nmem;
  int64_t rows;
} index_t;

static void *keep(index_t *x, size_t bytes) {
  void *p = calloc(1, bytes ? bytes : 1);
  x->mem[x->nmem++] = p;
  return p;
}
static int small_int(void) { return (int)(frand() * 3.5f); }

/* Block i of n rows in dtype, ids from a scramble shared over blocks. */
static void make_block(index_t *x, int i, vs_dtype dt, int64_t n, int with_exact, int64_t *next_id) {
  vs_block *b = &x->b[i], *r = &x->ref[i];
  size_t nd = (size_t)n * D;
  int64_t *ids = keep(x, (size_t)n * sizeof *ids);
  float *ref = keep(x, nd * sizeof *ref), *exact = with_exact ? keep(x, nd * sizeof *exact) : NULL;
  for (int64_t j = 0; j < n; j++) ids[j] = (*next_id += 1 + (j * 13) % 5) * 7 % 1000003;
  *b = (vs_block){.dtype = dt, .n = n, .d = D, .ids = ids, .exact = exact};
  if (dt == VS_F32) {
    float *v = keep(x, nd * sizeof *v);
    for (size_t j = 0; j < nd; j++) v[j] = (float)small_int();
    b->data = v;
    memcpy(ref, v, nd * sizeof *ref);
  } else if (dt == VS_F16) {
    float *w = malloc(nd * sizeof *w + 1);
    uint16_t *h = keep(x, nd * sizeof *h);
    for (size_t j = 0; j < nd; j++) w[j] = (float)small_int();
    vs_to_f16(h, w, (int64_t)nd);
    b->data = h;
    vs_from_f16(ref, h, (int64_t)nd);
    free(w);
  } else {
    int8_t *v = keep(x, nd);
    float *sc = keep(x, (size_t)n * sizeof *sc);
    for (int64_t j = 0; j < n; j++) {
      sc[j] = (j % 3 == 0) ? 0.5f : (j % 3 == 1) ? 1.0f : 2.0f;
      for (int c = 0; c < D; c++) {
        v[j * D + c] = (int8_t)small_int();
        ref[j * D + c] = sc[j] * (float)v[j * D + c];
      }
    }
    b->data = v, b->scales = sc;
  }
  if (exact) /* an exact copy that differs from the stored rows: the device must use it */
    for (size_t j = 0; j < nd; j++) exact[j] = ref[j] = ref[j] + (float)(small_int() % 2);
  *r = (vs_block){.dtype = VS_F32, .n = n, .d = D, .data = ref, .ids = ids};
  x->rows += n;
}

static void make_index(index_t *x, int big) {
  memset(x, 0, sizeof *x);
  int64_t id = 11;
  make_block(x, 0, VS_F32, big ? CUDA_SCAN_ROWS + 777 : 3000, 0, &id);
  make_block(x, 1, VS_F16, 2500, 0, &id);
  make_block(x, 2, VS_F32, 0, 0, &id); /* empty */
  make_block(x, 3, VS_I8, 4100, 0, &id);
  make_block(x, 4, big ? VS_F16 : VS_I8, 1900, 1, &id);
}
static void free_index(index_t *x) {
  for (int i = 0; i < x->nmem; i++) free(x->mem[i]);
}

static int same_lists(const char *what, const float *gs, const int64_t *gi, const float *cs, const int64_t *ci,
                      size_t n) {
  test_checks++;
  for (size_t i = 0; i < n; i++)
    if (gi[i] != ci[i] || !(gs[i] == cs[i])) {
      test_failures++;
      fprintf(stderr, "%s: slot %zu: device (%g, %lld) cpu (%g, %lld)\n", what, i, gs[i], (long long)gi[i], cs[i],
              (long long)ci[i]);
      return 0;
    }
  return 1;
}

/* One search both ways; the queries are small integers too. */
static void compare(const char *what, index_t *x, vs_dev *dv, int nq, int k, int64_t lo, int64_t hi) {
  float *q = malloc((size_t)nq * D * sizeof *q + 1);
  for (size_t j = 0; j < (size_t)nq * D; j++) q[j] = (float)small_int();
  size_t n = (size_t)nq * (size_t)k;
  float *gs = malloc(n * sizeof *gs + 1), *cs = malloc(n * sizeof *cs + 1);
  int64_t *gi = malloc(n * sizeof *gi + 1), *ci = malloc(n * sizeof *ci + 1);
  foil_err e = {0};
  int rc = vs_search(x->ref, NB, q, nq, k, lo, hi, 0, cs, ci, &e);
  CHECK(rc == FOIL_OK);
  if (rc) fprintf(stderr, "%s: cpu: %s\n", what, e.msg);
  rc = vs_dev_search(dv, q, nq, k, lo, hi, gs, gi, &e);
  CHECK(rc == FOIL_OK);
  if (rc) fprintf(stderr, "%s: device: %s\n", what, e.msg);
  else same_lists(what, gs, gi, cs, ci, n);
  free(q), free(gs), free(cs), free(gi), free(ci);
}

static vs_dev *upload_or_die(index_t *x) {
  foil_err e = {0};
  vs_dev *dv = NULL;
  if (vs_dev_new(x->b, NB, &dv, &e)) gpu_die("vs_dev_new", &e);
  return dv;
}

static void test_results(void) {
  index_t x;
  make_index(&x, 0);
  vs_dev *dv = upload_or_die(&x);
  CHECK(vs_dev_bytes(dv) >= (size_t)x.rows * (D * 4 + 8));
  compare("1 query, k 10", &x, dv, 1, 10, 1, 0);
  compare("7 queries, k 1", &x, dv, 7, 1, 1, 0);
  compare("300 queries (two chunks), k 25", &x, dv, 300, 25, 1, 0);
  compare("k 256", &x, dv, 4, CUDA_TOPK_MAX, 1, 0);
  compare("k 300 (host fallback)", &x, dv, 3, 300, 1, 0);
  compare("id filter", &x, dv, 9, 12, 200000, 600000);
  compare("filter of one id", &x, dv, 2, 3, x.b[3].ids[17], x.b[3].ids[17]);
  compare("filter that matches nothing", &x, dv, 2, 5, -50, -10);
  compare("no queries", &x, dv, 0, 5, 1, 0);
  vs_dev_destroy(&dv);
  CHECK(dv == NULL);
  free_index(&x);
}

static void test_tiles(void) {
  index_t x;
  make_index(&x, 1);
  vs_dev *dv = upload_or_die(&x);
  compare("a block over one tile, f16 with exact copy", &x, dv, 5, 20, 1, 0);
  vs_dev_destroy(&dv);
  free_index(&x);
}

static void test_small(void) {
  index_t x;
  memset(&x, 0, sizeof x);
  int64_t id = 3;
  for (int i = 0; i < NB; i++) make_block(&x, i, VS_F32, i == 2 ? 4 : 0, 0, &id);
  vs_dev *dv = upload_or_die(&x);
  compare("k above the rows held", &x, dv, 3, 10, 1, 0);
  vs_dev_destroy(&dv);
  free_index(&x);
}

static void test_errors(void) {
  index_t x;
  make_index(&x, 0);
  foil_err e = {0};
  vs_dev *dv = NULL;
  int64_t *ids = (int64_t *)x.b[1].ids, saved = ids[5];
  ids[5] = -4;
  CHECK(vs_dev_new(x.b, NB, &dv, &e) == FOIL_EINVAL && dv == NULL && strstr(e.msg, "-4"));
  ids[5] = saved;
  x.b[3].d = D + 1;
  CHECK(vs_dev_new(x.b, NB, &dv, &e) == FOIL_EINVAL && dv == NULL && strstr(e.msg, "dimension"));
  x.b[3].d = D;
  dv = upload_or_die(&x);
  float q[D] = {1}, s[4];
  int64_t i[4];
  CHECK(vs_dev_search(dv, q, 1, 0, 1, 0, s, i, &e) == FOIL_EINVAL && strstr(e.msg, "k must be"));
  CHECK(vs_dev_search(dv, NULL, 1, 4, 1, 0, s, i, &e) == FOIL_EINVAL);
  vs_dev_destroy(&dv);
  vs_dev_destroy(&dv); /* NULL is fine */
  free_index(&x);
}

/* A second index uploaded on another thread while this one searches the first. */
typedef struct {
  index_t *x;
  vs_dev *dv;
  int rc;
} builder;
static void *build_main(void *arg) {
  builder *b = arg;
  foil_err e = {0};
  b->rc = vs_dev_new(b->x->b, NB, &b->dv, &e);
  return NULL;
}
static void test_threads(void) {
  index_t a, b;
  make_index(&a, 0);
  make_index(&b, 1);
  vs_dev *da = upload_or_die(&a);
  builder bl = {.x = &b};
  pthread_t th;
  CHECK(pthread_create(&th, NULL, build_main, &bl) == 0);
  for (int r = 0; r < 20; r++) compare("searching while another index uploads", &a, da, 3, 10, 1, 0);
  pthread_join(th, NULL);
  CHECK(bl.rc == FOIL_OK);
  if (!bl.rc) compare("the index built on the other thread", &b, bl.dv, 6, 15, 1, 0);
  vs_dev_destroy(&bl.dv);
  vs_dev_destroy(&da);
  free_index(&a);
  free_index(&b);
}

int main(void) {
  gpu_require();
  RUN(test_results);
  RUN(test_tiles);
  RUN(test_small);
  RUN(test_errors);
  RUN(test_threads);
  cuda_shutdown();
  TEST_EXIT();
}
