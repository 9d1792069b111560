/* hfmodel.h — pretrained BERT encoders in and out: a sentence-transformers /
 * Hugging Face model folder <-> a foil checkpoint.
 *
 * Import reads a folder as sentence-transformers saves one:
 *   config.json              model_type "bert", hidden_act "gelu", absolute
 *                            positions, not is_decoder / add_cross_attention
 *                            (anything else is refused by name)
 *   model.safetensors        the weights (a pytorch_model.bin alone is
 *                            refused: convert it to safetensors first)
 *   vocab.txt                WordPiece; tokenizer_config.json must not ask
 *                            for a cased or accent-keeping tokenizer
 *   modules.json             Transformer, Pooling, optional Normalize (others
 *                            refused); absent: mean pooling, no normalization,
 *                            as sentence-transformers does for a plain model
 *   1_Pooling/config.json    mean or CLS pooling (others refused)
 *   sentence_bert_config.json  max_seq_length (optional); without it, as
 *                            sentence-transformers 2.7: min(max_position_
 *                            embeddings, tokenizer_config's model_max_length),
 *                            HF's "no limit" (>= 1e29) counting as unset
 * config.json, the weights, vocab.txt, tokenizer_config.json and
 * sentence_bert_config.json are read from the Transformer module's "path"
 * (modules.json; "" for the folder itself, "0_Transformer" in older
 * sentence-transformers folders). A vocab_size above vocab.txt's lines (a
 * padded embedding matrix) imports: the encoder gets one row per token
 * (the tokenizer never emits the others; every foil job expects tokenizer
 * size == vocab), the extra rows are kept under /hf and exported back.
 * and maps BERT's tensors onto foil's (encoder.h): q, k, v are stacked into
 * qkv_w [L,3d,d] / qkv_b in that order; foil has no token-type embedding, so
 * token_type_embeddings[0] is added to every position embedding (exact for
 * single-segment encoding, which is how sentence-transformers encodes).
 *
 * What foil's encoder does not use is kept aside in the checkpoint, group
 * /hf, so export restores the original exactly:
 *   /hf/token_type_embeddings   float32 [type_vocab, d], the original
 *   /hf/position_embeddings     float32 [max_len, d], before folding
 *   /hf/pooler_w, /hf/pooler_b  BERT's pooler (unused by foil; kept)
 *   /hf/word_embeddings_tail  float32 [vocab_size - tokens, d], a padded
 *                             matrix's rows past the tokenizer (or absent)
 *   attrs: normalize, max_seq_length, has_position_ids, config_json (the
 *          original config.json text)
 * Export writes model.safetensors from the encoder's tensors, unfolding
 * wpe - token_type[0] (or the kept original when wpe is unchanged, so an
 * untouched import round-trips bit for bit), plus config.json, vocab.txt,
 * tokenizer_config.json, special_tokens_map.json, modules.json,
 * 1_Pooling/config.json, sentence_bert_config.json,
 * config_sentence_transformers.json and, when normalize, 2_Normalize/;
 * config.json says what is written (architectures ["BertModel"], no task
 * head; torch_dtype float32, F16/BF16 sources widened exactly).
 * A checkpoint foil trained from scratch exports too (zero token types, no
 * pooler, normalize on: foil trains on cosine similarities); a pre-LN model,
 * a projection head or a BPE tokenizer cannot be expressed as BERT and is
 * refused.
 *
 * Ownership: hf_model owns everything it points to; free it with
 * hf_model_destroy. Cost: import holds the safetensors file and the model
 * (about 2x the weights) at once.
 */
#ifndef FOIL_STORAGE_HFMODEL_H
#define FOIL_STORAGE_HFMODEL_H

#include "common/err.h"
#include "model/encoder.h"
#include "model/tokenizer.h"
#include "storage/h5io.h"

typedef struct {
  encoder *enc;        /* weights with token_type[0] folded into wpe */
  tokenizer *tok;      /* WordPiece */
  int normalize;       /* 1: sentence-transformers' Normalize follows pooling */
  int max_seq_length;  /* truncation length when encoding (0: max_len) */
  int type_vocab;      /* rows of token_type (0: none kept) */
  float *token_type;   /* [type_vocab, d] or NULL */
  float *wpe_orig;     /* [max_len, d] position embeddings before folding, or NULL */
  float *pooler_w;     /* [d, d] or NULL */
  float *pooler_b;     /* [d] or NULL */
  float *wte_tail;     /* [wte_tail_rows, d]: word embeddings past the tokenizer, or NULL */
  int wte_tail_rows;
  int has_position_ids;
  char *config_json;   /* the original config.json, or NULL */
} hf_model;

void hf_model_destroy(hf_model **m);

/* Reads a model folder (see above). Errors name the file and what is wrong:
 * FOIL_ENOTFOUND for a missing file, FOIL_EINVAL for anything unsupported
 * or inconsistent (shapes, architecture, pooling). */
int hf_import(const char *dir, hf_model **out, foil_err *err);

/* Writes m as a foil checkpoint at step 0 (ckpt.h) with the tokenizer under
 * /tokenizer and the kept tensors under /hf; atomic. */
int hf_save_ckpt(const hf_model *m, const char *path, foil_err *err);

/* Reads a foil checkpoint's encoder, tokenizer and (when present) /hf. */
int hf_load_ckpt(const char *path, hf_model **out, foil_err *err);

/* The /hf group alone, for a job that fine-tunes an imported model and
 * carries it into its own checkpoints (so export restores the original
 * config, token types, pooler and max_seq_length): hf_read_group fills m's
 * kept fields from path's /hf (normalize 1 and nothing else when the file
 * has none, *found (may be NULL) then 0; m->enc and m->tok are not
 * touched), hf_write_group writes them into an open checkpoint. d_model
 * and max_len are the encoder's. */
int hf_read_group(const char *path, hf_model *m, int d_model, int max_len, int *found, foil_err *err);
int hf_write_group(h5io *f, const hf_model *m, int d_model, int max_len, foil_err *err);

/* Tokens per text when encoding with the checkpoint at path: its /hf
 * max_seq_length (where sentence-transformers truncates an imported model,
 * 256 for all-MiniLM-L6-v2) when it has one below max_len, else max_len
 * (the encoder's positions). Refresh, serving by text, `foil model encode`
 * and coherence all truncate there, so their embeddings are
 * sentence-transformers'. Cost: one open of the file's header. */
int hf_encode_len(const char *path, int max_len);
/* The same for a model already loaded (hf_load_ckpt): no file read. */
int hf_model_encode_len(const hf_model *m);

/* Writes the sentence-transformers folder dir, which must not exist or be
 * an empty folder (FOIL_EEXIST otherwise, naming it: another model's files
 * would mix in). Published whole: written into a temporary sibling
 * (foil_tmp_name), each file fsynced, then renamed onto dir and the parent
 * fsynced; on failure the temporary is removed and dir is untouched.
 * Missing parents are created. */
int hf_export(const hf_model *m, const char *dir, foil_err *err);

#endif
