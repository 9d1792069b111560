/* test_dataset_code.c — the Python source scanner on tricky snippets, and
 * `prepare code` on a hand-written miniature library. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/prepare.h"
#include "cli/prepare_util.h"
#include "storage/dataset.h"

#include <unistd.h>

#include "tests/test.h"

static char dir[512];

static void put(const char *rel, const char *text) {
  char p[1024];
  snprintf(p, sizeof p, "%s/%s", dir, rel);
  foil_err err = {0};
  prep_write_file(p, text, strlen(text), &err);
}

static pyscan_func *fs;
static size_t nf;

static int scan(const char *src) {
  foil_err err = {0};
  pyscan_free(fs, nf);
  fs = NULL;
  nf = 0;
  int rc = pyscan_functions(src, strlen(src), &fs, &nf, &err);
  CHECKF(rc == 0, "%s", err.msg);
  return rc;
}

static pyscan_func *named(const char *name) {
  for (size_t i = 0; i < nf; i++)
    if (!strcmp(fs[i].name, name)) return &fs[i];
  fprintf(stderr, "no function %s\n", name);
  return NULL;
}

static void test_basic_and_methods(void) {
  scan("import os\n"
       "\n"
       "def plain(a, b):\n"
       "    \"\"\"Add two numbers together.\n"
       "\n"
       "    More text that is not in the first paragraph.\n"
       "    \"\"\"\n"
       "    return a + b\n"
       "\n"
       "class K:\n"
       "    '''A class docstring is not a function.'''\n"
       "\n"
       "    def method(self):\n"
       "        '''Return the answer to everything.'''\n"
       "        # a comment inside\n"
       "        return 42\n"
       "    # a trailing comment at class level\n"
       "\n"
       "    async def fetch(self, url):\n"
       "        \"\"\"Fetch one url asynchronously.\"\"\"\n"
       "        await go(url)\n"
       "x = 1\n");
  CHECK(nf == 3);
  pyscan_func *f = named("plain");
  if (f) {
    CHECK(f->doc && !strcmp(f->doc, "Add two numbers together."));
    CHECKF(!strcmp(f->source, "def plain(a, b):\n    return a + b"), "[%s]", f->source);
    CHECK(f->def_line == 3 && f->indent == 0 && !f->body_only_doc);
  }
  f = named("method");
  if (f) {
    CHECK(!strcmp(f->doc, "Return the answer to everything."));
    CHECKF(!strcmp(f->source, "def method(self):\n    # a comment inside\n    return 42"), "[%s]", f->source);
    CHECK(f->indent == 4 && f->def_line == 13);
  }
  f = named("fetch");
  if (f) {
    CHECKF(!strcmp(f->source, "async def fetch(self, url):\n    await go(url)"), "[%s]", f->source);
    CHECK(!strcmp(f->doc, "Fetch one url asynchronously."));
  }
}

static void test_decorators_signatures(void) {
  scan("@functools.lru_cache(maxsize=None)\n"
       "@other\n"
       "def cached(x,\n"
       "           y=(1, 2),\n"
       "           z: dict = {'a': 1}) -> int:\n"
       "    r\"\"\"Raw docstring with \\d+ kept as written.\"\"\"\n"
       "    return x\n"
       "\n"
       "def f(a, b=lambda: 0):  # colon in a lambda, and a comment\n"
       "    'Single quoted docstring here.'\n"
       "    pass\n"
       "\n"
       "def g(): return 1\n"
       "\n"
       "def h(x) -> \\\n"
       "        int:\n"
       "    u'''Unicode-prefixed docstring, continued header.'''\n"
       "    return x\n");
  pyscan_func *f = named("cached");
  if (f) {
    CHECK(!strncmp(f->source, "@functools.lru_cache(maxsize=None)\n@other\ndef cached(x,\n", 55));
    CHECK(strstr(f->source, "return x") && !strstr(f->source, "Raw docstring"));
    CHECKF(f->doc && !strcmp(f->doc, "Raw docstring with \\d+ kept as written."), "[%s]", f->doc);
    CHECK(f->def_line == 3);
  }
  f = named("f");
  if (f) CHECK(f->doc && !strcmp(f->doc, "Single quoted docstring here.") && !strcmp(f->source, "def f(a, b=lambda: 0):  # colon in a lambda, and a comment\n    pass"));
  f = named("g");
  if (f) CHECK(f->doc == NULL && !strcmp(f->source, "def g(): return 1")); /* one-line def: no docstring */
  f = named("h");
  if (f) CHECK(f->doc && !strcmp(f->doc, "Unicode-prefixed docstring, continued header."));
}

static void test_nested_and_strings(void) {
  scan("def outer():\n"
       "    \"\"\"\n"
       "    Outer function that nests one.\n"
       "      indented continuation\n"
       "\n"
       "    second paragraph\n"
       "    \"\"\"\n"
       "    text = '''\n"
       "def not_a_function():\n"
       "    pass\n"
       "'''\n"
       "    def inner(y):\n"
       "        \"Inner helper with a docstring.\"\n"
       "        return y\n"
       "    return inner(text)\n"
       "\n"
       "def nodoc(a):\n"
       "    x = \"\"\"not a docstring\"\"\" if a else 1\n"
       "    return x\n"
       "\n"
       "def bdoc():\n"
       "    b'bytes are not docstrings'\n"
       "    return 1\n"
       "\n"
       "def only_doc():\n"
       "    \"\"\"Nothing but a docstring here.\"\"\"\n"
       "\n"
       "def escaped():\n"
       "    \"Say \\\"hi\\\" to the world.\"\n"
       "    return 'hi'\n");
  CHECK(nf == 6); /* not_a_function lives in a string */
  pyscan_func *f = named("outer");
  if (f) {
    CHECKF(f->doc && !strcmp(f->doc, "Outer function that nests one.\n  indented continuation"), "[%s]", f->doc);
    CHECK(strstr(f->source, "    def inner(y):") && strstr(f->source, "return inner(text)"));
    /* lines inside the string are not dedented: "def not_a_function" stays at column 0 */
    CHECK(strstr(f->source, "\ndef not_a_function():\n    pass\n'''"));
  }
  f = named("inner");
  if (f) {
    CHECK(f->indent == 4 && !strcmp(f->doc, "Inner helper with a docstring."));
    CHECKF(!strcmp(f->source, "def inner(y):\n    return y"), "[%s]", f->source);
  }
  f = named("nodoc");
  if (f) CHECK(f->doc == NULL && strstr(f->source, "not a docstring"));
  f = named("bdoc");
  if (f) CHECK(f->doc == NULL);
  f = named("only_doc");
  if (f) CHECK(f->doc && f->body_only_doc);
  f = named("escaped");
  if (f) CHECKF(f->doc && !strcmp(f->doc, "Say \"hi\" to the world."), "[%s]", f->doc);
}

static void test_edge_cases(void) {
  scan(""); /* empty file */
  CHECK(nf == 0);
  scan("def truncated(a):\n"); /* no body at the end of the file */
  CHECK(nf == 0);
  scan("def open_string():\n    '''never closed\n    return 1\n"); /* tolerated, no crash */
  CHECK(nf <= 1);
  scan("class A:\n\tdef tabbed(self):\n\t\t\"\"\"Tabs indent this method body.\"\"\"\n\t\treturn 1\n");
  pyscan_func *f = named("tabbed");
  if (f) CHECK(f->indent == 8 && !strcmp(f->source, "def tabbed(self):\n\treturn 1"));
  scan("def crlf(a):\r\n    \"\"\"Windows line endings are fine.\"\"\"\r\n    return a\r\n");
  f = named("crlf");
  if (f) CHECKF(f->doc && !strcmp(f->doc, "Windows line endings are fine."), "[%s]", f->doc);
  scan("define = 1\ndefault(x)\nasync_def = 2\n"); /* identifiers that start like def */
  CHECK(nf == 0);
}

static void test_prepare_mini(void) {
  foil_err err = {0};
  char lib[700], root[700], lic[800];
  snprintf(lib, sizeof lib, "%s/lib", dir);
  snprintf(root, sizeof root, "%s/root", dir);
  snprintf(lic, sizeof lic, "%s/LICENSE.txt", lib);
  put("lib/LICENSE.txt", "PSF LICENSE AGREEMENT FOR PYTHON 3.11 (test copy)\n");
  /* 40 modules with two functions each, plus skipped directories and duplicates */
  for (int m = 0; m < 40; m++) {
    char rel[64], src[512];
    snprintf(rel, sizeof rel, "lib/pkg%d/mod%d.py", m % 4, m);
    snprintf(src, sizeof src,
             "def f%d(a):\n    \"\"\"Return module %d's first value doubled.\"\"\"\n    return a * %d\n\n"
             "def g%d(a):\n    \"\"\"Short doc\"\"\"\n    return a - %d\n\n"
             "def dup(a):\n    \"\"\"The same function in every module.\"\"\"\n    return a\n",
             m, m, m, m, m);
    put(rel, src);
  }
  put("lib/test/test_x.py", "def test_x():\n    \"\"\"A test that must not be used.\"\"\"\n    assert 1\n");
  put("lib/pkg0/tests/t.py", "def t():\n    \"\"\"Another test never to be seen.\"\"\"\n    assert 1\n");
  put("lib/site-packages/third.py", "def third():\n    \"\"\"Third-party code is not stdlib.\"\"\"\n    return 1\n");
  put("lib/latin1.py", "def bad():\n    \"\"\"Caf\xe9 is not UTF-8 here.\"\"\"\n    return 1\n");
  code_opts o = {lib, lic, NULL};
  CHECKF(prepare_code_with(root, 3, &o, &err) == 0, "%s", err.msg);
  char p[1024];
  snprintf(p, sizeof p, "%s/datasets/code/pairs.h5", root);
  dataset_pairs sp[3];
  size_t total = 0;
  for (int s = 0; s < 3; s++) {
    CHECK(dataset_pairs_read(p, dataset_splits[s], &sp[s], &err) == 0);
    total += sp[s].n;
    for (size_t i = 0; i < sp[s].n; i++) {
      CHECK(!strstr(sp[s].query[i], "test") && !strstr(sp[s].query[i], "Third") && !strstr(sp[s].query[i], "Short"));
      CHECK(!strstr(sp[s].positive[i], "\"\"\""));
    }
  }
  CHECKF(total == 41, "%zu pairs", total); /* 40 f's + one dup */
  for (int s = 0; s < 3; s++)
    for (int t = s + 1; t < 3; t++)
      for (size_t i = 0; i < sp[s].n; i++)
        for (size_t j = 0; j < sp[t].n; j++) CHECK(sp[s].group[i] != sp[t].group[j]);
  dataset_bench held, all;
  snprintf(p, sizeof p, "%s/datasets/code/benchmarks/heldout.h5", root);
  CHECK(dataset_bench_read(p, &held, &err) == 0);
  snprintf(p, sizeof p, "%s/datasets/code/benchmarks/all.h5", root);
  CHECK(dataset_bench_read(p, &all, &err) == 0);
  CHECK(held.n_queries == sp[2].n && held.n_corpus == sp[2].n && held.n_qrels == sp[2].n);
  CHECK(all.n_queries == sp[2].n && all.n_corpus == total && all.n_qrels == sp[2].n);
  for (size_t k = 0; k < all.n_qrels; k++)
    CHECK(!strcmp(all.corpus_ids[all.qrels[2 * k + 1]], all.query_ids[all.qrels[2 * k]]));
  dataset_bench_free(&held);
  dataset_bench_free(&all);
  for (int s = 0; s < 3; s++) dataset_pairs_free(&sp[s]);
  snprintf(p, sizeof p, "%s/datasets/code/LICENSE", root);
  CHECK(access(p, F_OK) == 0);
  /* a missing library directory names the package */
  code_opts bad = {"/nonexistent/python3.11", lic, NULL};
  CHECK(prepare_code_with(root, 3, &bad, &err) == FOIL_ENOTFOUND && strstr(err.msg, "libpython3.11-stdlib"));
}

int main(void) {
  const char *t = getenv("FOIL_TEST_TMP");
  snprintf(dir, sizeof dir, "%s/dataset-code-%ld", t ? t : "/tmp", (long)getpid());
  RUN(test_basic_and_methods);
  RUN(test_decorators_signatures);
  RUN(test_nested_and_strings);
  RUN(test_edge_cases);
  RUN(test_prepare_mini);
  pyscan_free(fs, nf);
  TEST_EXIT();
}
