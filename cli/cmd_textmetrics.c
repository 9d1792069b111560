/* cmd_textmetrics.c — `foil textmetrics`: foil's text metrics of
 * generations made by any system.
 *
 *   foil textmetrics FILE.jsonl [--encoder CKPT] [--scorer CKPT] [--json] [--max-len N]
 *
 * FILE.jsonl: one JSON object per line with "prompt" and "generation"
 * (strings) and optionally "reference". The computation is
 * worker/run/textscore.h's, the same code the decode-eval job calls; the
 * definitions and the reference implementations' quirks are in
 * model/textmetrics.h and model/mauve.h.
 */
#define _POSIX_C_SOURCE 200809L
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "worker/run/textscore.h"

static void usage(FILE *out) {
  fprintf(out,
          "usage: foil textmetrics FILE.jsonl [--encoder CKPT] [--scorer CKPT] [--json] [--max-len N]\n"
          "\n"
          "Scores generations made anywhere. FILE.jsonl holds one JSON object per line with\n"
          "\"prompt\" and \"generation\" (strings) and optionally \"reference\" (the human\n"
          "continuation). Prints, over the generations:\n"
          "  rep-2, rep-3, rep-4   1 - unique/total n-grams of whitespace tokens, counted per\n"
          "                        document and summed (SimCTG's count), in percent\n"
          "  diversity             (1 - rep-2)(1 - rep-3)(1 - rep-4), in percent\n"
          "  length                mean whitespace tokens per generation\n"
          "  coherence             with --encoder CKPT (a foil encoder checkpoint): mean\n"
          "                        cosine of prompt and generation embeddings\n"
          "  perplexity            with --scorer CKPT (a foil decoder checkpoint): of the\n"
          "                        generation's tokens after [EOT] + prompt\n"
          "  MAUVE                 with --scorer and references: P = references, Q =\n"
          "                        generations, features the decoder's last-layer state at\n"
          "                        the final token (mauve-text's procedure, model/mauve.h)\n"
          "--max-len N   tokens per text given to the models (default: the model's).\n"
          "--json        one JSON object instead of the table.\n");
}

static int fail(foil_err *e) { return cli_fail("textmetrics", e); }

int cmd_textmetrics(int argc, char **argv) {
  textscore_opts o;
  textscore_opts_default(&o);
  const char *file = NULL;
  int json = 0;
  foil_err err = {0};
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
      usage(stdout);
      return FOIL_OK;
    } else if (!strcmp(argv[i], "--json")) {
      json = 1;
    } else if (!strcmp(argv[i], "--encoder") || !strcmp(argv[i], "--scorer") ||
               !strcmp(argv[i], "--max-len")) {
      if (i + 1 >= argc) {
        foil_err_set(&err, FOIL_EINVAL, "%s needs a value (see --help)", argv[i]);
        return fail(&err);
      }
      const char *v = argv[++i];
      if (!strcmp(argv[i - 1], "--encoder")) o.encoder_ckpt = v;
      else if (!strcmp(argv[i - 1], "--scorer")) o.scorer_ckpt = v;
      else {
        char *end;
        long n = strtol(v, &end, 10);
        if (*v == 0 || *end || n < 1 || n > 1000000) {
          foil_err_set(&err, FOIL_EINVAL, "--max-len must be an integer 1..1000000, got '%s'", v);
          return fail(&err);
        }
        o.max_len = (int)n;
      }
    } else if (!strncmp(argv[i], "--", 2)) {
      foil_err_set(&err, FOIL_EINVAL, "unknown option '%s' (see --help)", argv[i]);
      return fail(&err);
    } else if (!file) {
      file = argv[i];
    } else {
      foil_err_set(&err, FOIL_EINVAL, "one FILE.jsonl only ('%s' is extra)", argv[i]);
      return fail(&err);
    }
  }
  if (!file) {
    usage(stderr);
    foil_err_set(&err, FOIL_EINVAL, "FILE.jsonl is required");
    return fail(&err);
  }
  textscore_set s;
  int rc = textscore_read_jsonl(file, &s, &err);
  if (rc) return fail(&err);
  if (o.scorer_ckpt && s.n_ref == 0)
    fprintf(stderr, "foil textmetrics: no row has a \"reference\": MAUVE is not computed\n");
  textscore_result r;
  rc = textscore_run(&s, &o, &r, &err);
  if (rc) {
    textscore_set_free(&s);
    return fail(&err);
  }
  if (json) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddNumberToObject(j, "rows", (double)r.n);
    cJSON_AddNumberToObject(j, "rep_2", r.rep[0]);
    cJSON_AddNumberToObject(j, "rep_3", r.rep[1]);
    cJSON_AddNumberToObject(j, "rep_4", r.rep[2]);
    cJSON_AddNumberToObject(j, "diversity", r.diversity);
    cJSON_AddNumberToObject(j, "mean_length", r.mean_length);
    if (r.has_coherence) cJSON_AddNumberToObject(j, "coherence", r.coherence);
    if (r.has_perplexity) {
      cJSON_AddNumberToObject(j, "perplexity", r.perplexity);
      cJSON_AddNumberToObject(j, "perplexity_tokens", (double)r.ppl_tokens);
    }
    if (r.has_mauve) {
      cJSON_AddNumberToObject(j, "mauve", r.mauve);
      cJSON_AddNumberToObject(j, "mauve_star", r.mauve_star);
      cJSON_AddNumberToObject(j, "frontier_integral", r.frontier_integral);
      cJSON_AddNumberToObject(j, "mauve_buckets", r.mauve_buckets);
    }
    char *txt = cJSON_PrintUnformatted(j);
    if (txt) printf("%s\n", txt);
    free(txt);
    cJSON_Delete(j);
  } else {
    printf("%-12s %8s %8s %8s %9s %8s", "rows", "rep-2", "rep-3", "rep-4", "diversity", "length");
    if (r.has_coherence) printf(" %9s", "coherence");
    if (r.has_perplexity) printf(" %10s", "perplexity");
    if (r.has_mauve) printf(" %7s", "MAUVE");
    printf("\n%-12zu %8.2f %8.2f %8.2f %9.2f %8.2f", r.n, 100 * r.rep[0], 100 * r.rep[1],
           100 * r.rep[2], 100 * r.diversity, r.mean_length);
    if (r.has_coherence) printf(" %9.4f", r.coherence);
    if (r.has_perplexity) printf(" %10.3f", r.perplexity);
    if (r.has_mauve) printf(" %7.4f", r.mauve);
    printf("\n");
  }
  textscore_set_free(&s);
  return FOIL_OK;
}
