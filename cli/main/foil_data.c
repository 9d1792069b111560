/* foil_data.c — foil-data: `foil data ...`, `foil tokenizer ...` and
 * `foil model ...`, the commands that read and write HDF5 (datasets,
 * tokenizers, checkpoints). `foil` runs it for those commands; it can be run directly the same way:
 *
 *   foil-data data prepare wordnet [--root DIR]
 *   foil-data tokenizer encode --vocab vocab.txt "Hello world"
 *   foil-data model import DIR --out CKPT.h5
 *   foil-data textmetrics generations.jsonl --encoder CKPT.h5
 */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "common/err.h"

int main(int argc, char **argv) {
  int rc;
  if (argc >= 2 && !strcmp(argv[1], "data")) rc = cmd_data(argc - 1, argv + 1);
  else if (argc >= 2 && !strcmp(argv[1], "tokenizer")) rc = cmd_tokenizer(argc - 1, argv + 1);
  else if (argc >= 2 && !strcmp(argv[1], "model")) rc = cmd_model(argc - 1, argv + 1);
  else if (argc >= 2 && !strcmp(argv[1], "textmetrics")) rc = cmd_textmetrics(argc - 1, argv + 1);
  else {
    fprintf(stderr, "usage: foil-data data|tokenizer|model|textmetrics ... (as `foil data`, ...)\n");
    return 2;
  }
  return rc > 0 ? rc : foil_err_exit_code(rc);
}
