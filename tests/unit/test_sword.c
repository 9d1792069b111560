/* test_sword.c — SWORD zText reader and OSIS-to-prose: a tiny module written
 * here, damaged copies of it, markup snippets, and known verses of the
 * installed World English Bible when present. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "storage/sword.h"
#include "tests/test.h"

static char dir[512];

static void le32(unsigned char *p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}

static const char *verses[2][3] = {{"<w lemma=\"strong:H1\">Alpha</w> one.", "Beta two.", ""},
                                   {"Gamma<note>a footnote</note> three.", "Delta &amp; four.", "Epsilon"}};

/* writes <d>/ot.* with two blocks; damage: 0 none, 1 cut .bzz, 2 corrupt
 * block bytes, 3 odd .bzv size, 4 verse outside its block, 5 a block's
 * recorded size 4 GiB (found by fuzz_foreign: it was allocated) */
static void write_module(const char *d, int damage) {
  mkdir(d, 0755);
  char path[700];
  unsigned char bzs[24], bzv[7 * 10 + 1];
  unsigned char zall[4096];
  size_t zpos = 0, nv = 0;
  memset(bzv, 0, sizeof bzv);
  nv = 1; /* entry 0 empty */
  for (int b = 0; b < 2; b++) {
    char block[256] = "";
    for (int v = 0; v < 3; v++) {
      size_t off = strlen(block), sz = strlen(verses[b][v]);
      strcat(block, verses[b][v]);
      le32(bzv + 10 * nv, (uint32_t)b);
      le32(bzv + 10 * nv + 4, (uint32_t)off);
      bzv[10 * nv + 8] = (unsigned char)sz;
      bzv[10 * nv + 9] = 0;
      if (damage == 4 && b == 1 && v == 2) le32(bzv + 10 * nv + 4, 200);
      nv++;
    }
    uLongf zl = sizeof zall - zpos;
    compress(zall + zpos, &zl, (const Bytef *)block, strlen(block));
    le32(bzs + 12 * b, (uint32_t)zpos);
    le32(bzs + 12 * b + 4, (uint32_t)zl);
    le32(bzs + 12 * b + 8, damage == 5 && b == 1 ? 0xFFFFFFF0u : (uint32_t)strlen(block));
    if (damage == 2 && b == 1) zall[zpos + zl / 2] ^= 0xFF, zall[zpos + 2] ^= 0x55;
    zpos += zl;
  }
  FILE *f;
  snprintf(path, sizeof path, "%s/ot.bzs", d);
  f = fopen(path, "wb");
  fwrite(bzs, 1, 24, f);
  fclose(f);
  snprintf(path, sizeof path, "%s/ot.bzv", d);
  f = fopen(path, "wb");
  fwrite(bzv, 1, 10 * nv + (damage == 3), f);
  fclose(f);
  snprintf(path, sizeof path, "%s/ot.bzz", d);
  f = fopen(path, "wb");
  fwrite(zall, 1, damage == 1 ? zpos - 5 : zpos, f);
  fclose(f);
}

static char *prose(const char *markup) {
  char *buf = NULL;
  size_t len = 0, cap = 0;
  foil_err err = {0};
  sword_osis_text(markup, strlen(markup), &buf, &len, &cap, &err);
  return buf;
}

static void test_synthetic(void) {
  char d[600];
  snprintf(d, sizeof d, "%s/good", dir);
  write_module(d, 0);
  foil_err err = {0};
  sword_mod *m;
  CHECKF(sword_open(&m, d, &err) == 0, "%s", err.msg);
  if (!m) return;
  CHECK(sword_count(m, SWORD_OT) == 7 && sword_count(m, SWORD_NT) == 0);
  const char *x;
  size_t n;
  uint32_t b;
  CHECK(sword_verse(m, SWORD_OT, 0, &x, &n, &b, &err) == 0 && n == 0);
  CHECK(sword_verse(m, SWORD_OT, 2, &x, &n, &b, &err) == 0 && n == 9 && !memcmp(x, "Beta two.", 9) && b == 0);
  CHECK(sword_verse(m, SWORD_OT, 5, &x, &n, &b, &err) == 0 && b == 1 && !memcmp(x, "Delta &amp; four.", n));
  CHECK(sword_verse(m, SWORD_OT, 1, &x, &n, &b, &err) == 0 && !memcmp(x, verses[0][0], n));
  CHECK(sword_verse(m, SWORD_OT, 7, &x, &n, &b, &err) == FOIL_EINVAL);
  /* the whole testament as prose */
  char *buf = NULL;
  size_t len = 0, cap = 0;
  for (size_t i = 0; i < 7; i++) {
    sword_verse(m, SWORD_OT, i, &x, &n, &b, &err);
    sword_osis_text(x, n, &buf, &len, &cap, &err);
  }
  CHECKF(buf && !strcmp(buf, "Alpha one. Beta two. Gamma three. Delta & four. Epsilon"), "[%s]", buf);
  free(buf);
  sword_close(&m);
  CHECK(m == NULL);
}

static void test_damaged(void) {
  const char *expect[] = {NULL, "ot.bzz", "ot.bzz", "ot.bzv", "ot.bzv", "more than zlib can"};
  for (int dmg = 1; dmg <= 5; dmg++) {
    char d[600];
    snprintf(d, sizeof d, "%s/bad%d", dir, dmg);
    write_module(d, dmg);
    foil_err err = {0};
    sword_mod *m;
    int rc = sword_open(&m, d, &err);
    for (size_t i = 0; !rc && i < sword_count(m, SWORD_OT); i++) {
      const char *x;
      size_t n;
      uint32_t b;
      rc = sword_verse(m, SWORD_OT, i, &x, &n, &b, &err);
    }
    sword_close(&m);
    CHECKF(rc == FOIL_EINVAL && strstr(err.msg, expect[dmg]), "damage %d: rc %d: %s", dmg, rc, err.msg);
  }
  foil_err err = {0};
  sword_mod *m;
  char d[600];
  snprintf(d, sizeof d, "%s/none", dir);
  mkdir(d, 0755);
  CHECK(sword_open(&m, d, &err) == FOIL_ENOTFOUND && m == NULL);
}

static void test_osis(void) {
  struct {
    const char *in, *out;
  } cases[] = {
      {"<w lemma=\"strong:H0430\">God</w><note placement=\"foot\"><reference type=\"annotateRef\">1:1 "
       "</reference>The Hebrew word</note><w lemma=\"strong:H1254\">created</w> it.",
       "God created it."},
      {"Christ,<note placement=\"foot\">Messiah</note><w>the</w> son", "Christ, the son"},
      {"light<note>n</note>, and", "light, and"},
      {"<title type=\"psalm\">A Psalm.</title><l level=\"1\" sID=\"a\"/>Line one<l eID=\"a\"/>"
       "<l level=\"1\" sID=\"b\"/>line two<l eID=\"b\"/>",
       "Line one\nline two\n"},
      {"end.<div sID=\"x\" type=\"x-p\"/>Next", "end.\n\nNext"},
      {"<q who=\"Jesus\">Follow me</q> &lt;ok&gt; &#x263A; &#65;", "Follow me <ok> \xE2\x98\xBA A"},
      {"a<div type=\"x-milestone\" subType=\"x-preverse\" sID=\"pv1\"/>b", "ab"},
      {"broken <w", "broken "},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char *got = prose(cases[i].in);
    CHECKF(got && !strcmp(got, cases[i].out), "case %zu: [%s]", i, got ? got : "(null)");
    free(got);
  }
}

static void test_installed(void) {
  const char *conf = "/usr/share/sword/mods.d/engWEB2015eb.conf";
  struct stat st;
  if (stat(conf, &st) != 0) {
    printf("(sword-text-web not installed: skipped)\n");
    return;
  }
  foil_err err = {0};
  char *dp;
  CHECKF(sword_conf_datapath(conf, &dp, &err) == 0, "%s", err.msg);
  if (!dp) return;
  CHECK(!strcmp(dp, "/usr/share/sword/modules/texts/ztext/engWEB2015eb"));
  sword_mod *m;
  CHECKF(sword_open(&m, dp, &err) == 0, "%s", err.msg);
  free(dp);
  if (!m) return;
  struct {
    int t;
    size_t i;
    const char *want;
  } known[] = {
      {SWORD_OT, 4, "In the beginning, God created the heavens and the earth."},
      {SWORD_OT, 6, "God said, \xE2\x80\x9CLet there be light,\xE2\x80\x9D and there was light."},
      {SWORD_NT, 4, "The book of the genealogy of Jesus Christ, the son of David, the son of Abraham."},
  };
  for (size_t k = 0; k < 3; k++) {
    const char *x;
    size_t n;
    uint32_t b;
    CHECKF(sword_verse(m, known[k].t, known[k].i, &x, &n, &b, &err) == 0, "%s", err.msg);
    char *buf = NULL;
    size_t len = 0, cap = 0;
    sword_osis_text(x, n, &buf, &len, &cap, &err);
    while (len && (buf[len - 1] == ' ' || buf[len - 1] == '\n')) buf[--len] = '\0';
    CHECKF(buf && !strcmp(buf, known[k].want), "[%s]", buf ? buf : "");
    free(buf);
  }
  /* every entry of both testaments reads */
  int rc = 0;
  for (int t = 0; t < 2 && !rc; t++)
    for (size_t i = 0; i < sword_count(m, t) && !rc; i++) {
      const char *x;
      size_t n;
      uint32_t b;
      rc = sword_verse(m, t, i, &x, &n, &b, &err);
    }
  CHECKF(rc == 0, "%s", err.msg);
  sword_close(&m);
  /* a module whose ModDrv is not zText is refused */
  char other[600];
  snprintf(other, sizeof other, "%s/mods.d", dir);
  mkdir(other, 0755);
  snprintf(other, sizeof other, "%s/mods.d/raw.conf", dir);
  FILE *f = fopen(other, "w");
  fputs("[raw]\nDataPath=./modules/texts/rawtext/raw/\nModDrv=RawText\n", f);
  fclose(f);
  CHECK(sword_conf_datapath(other, &dp, &err) == FOIL_EINVAL && strstr(err.msg, "zText"));
}

int main(void) {
  const char *t = getenv("FOIL_TEST_TMP");
  snprintf(dir, sizeof dir, "%s/sword-%ld", t ? t : "/tmp", (long)getpid());
  mkdir(t ? t : "/tmp", 0755);
  mkdir(dir, 0755);
  RUN(test_synthetic);
  RUN(test_damaged);
  RUN(test_osis);
  RUN(test_installed);
  TEST_EXIT();
}
