#!/usr/bin/env python3
"""`foil model import/export` against sentence-transformers 2.7 on tiny
random BERTs made here with transformers (hidden 32, 2 layers; a few
seconds in all), one per layout the real all-MiniLM-L6-v2 (hfmodel_ref.py)
does not have:

  maxlen16   no sentence_bert_config.json, tokenizer model_max_length 16:
             sentence-transformers truncates at min(positions, 16)
  subdir     the model in 0_Transformer/ (modules.json "path"), as older
             sentence-transformers folders keep it; a decoy config.json
             and weights of another model at the top
  padded     vocab_size 7 above vocab.txt's lines (a padded matrix)
  mlm_fp16   a BertForMaskedLM checkpoint in float16: the export is a
             float32 BertModel and says so in config.json
  decoder    is_decoder true (causal attention in transformers): refused

For each model that imports: `foil-data model encode` of the texts (some
past 16 tokens) must equal SentenceTransformer(MODEL).encode (normalized;
max |diff| <= 1e-5), and SentenceTransformer on foil's export must equal
it on the original (the same truncation length included), and every
exported tensor must equal the original's.
Usage: hfmodel_tiny_ref.py FOIL_DATA OUT_DIR (run in .venv-st)
"""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import torch
from safetensors.numpy import load_file
from sentence_transformers import SentenceTransformer
from transformers import AutoConfig, BertConfig, BertForMaskedLM, BertModel, BertTokenizer

WORDS = ("the a of and to in is was for on that with as by it be at from this an are or his her "
         "quick brown fox jumps over lazy dog river bank money water tree green house music").split()
TEXTS = ["the quick brown fox", "a", "money in the bank",
         " ".join(WORDS),                               # ~40 tokens: past 16 and 20
         "the river bank was green and the water was quick " * 3,
         "Café naïve zebra xylophone"]                  # word pieces and [UNK]


def vocab_file(d):
    toks = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS
    toks += [c for c in "bcdefghijklmnopqrstuvwxyz"] + ["##" + c for c in "abcdefghijklmnopqrstuvwxyz"]
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "vocab.txt"), "w") as f:
        f.write("\n".join(toks) + "\n")
    return len(toks)


def st_modules(d, tr_path="", normalize=True, max_seq=None, sb_dir=None):
    mods = [{"idx": 0, "name": "0", "path": tr_path, "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]
    if normalize:
        mods.append({"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"})
        os.makedirs(os.path.join(d, "2_Normalize"), exist_ok=True)
    json.dump(mods, open(os.path.join(d, "modules.json"), "w"))
    os.makedirs(os.path.join(d, "1_Pooling"), exist_ok=True)
    json.dump({"word_embedding_dimension": 32, "pooling_mode_cls_token": False, "pooling_mode_mean_tokens": True,
               "pooling_mode_max_tokens": False, "pooling_mode_mean_sqrt_len_tokens": False},
              open(os.path.join(d, "1_Pooling", "config.json"), "w"))
    if max_seq is not None:
        json.dump({"max_seq_length": max_seq, "do_lower_case": False},
                  open(os.path.join(sb_dir or d, "sentence_bert_config.json"), "w"))


def bert(d, cls=BertModel, dtype=torch.float32, tok_max=512, vocab_pad=0, seed=0, **kw):
    n = vocab_file(d)
    torch.manual_seed(seed)
    cfg = BertConfig(vocab_size=n + vocab_pad, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                     intermediate_size=64, max_position_embeddings=64, **kw)
    m = cls(cfg)
    with torch.no_grad():
        for name, p in m.named_parameters():
            p.copy_(torch.randn_like(p) * (0.3 if p.dim() > 1 else 0.5) + (1.0 if "LayerNorm.weight" in name else 0.0))
    m.to(dtype).save_pretrained(d, safe_serialization=True)
    BertTokenizer(os.path.join(d, "vocab.txt"), do_lower_case=True, model_max_length=tok_max).save_pretrained(d)


def make(out):
    ms = {}
    d = ms["maxlen16"] = os.path.join(out, "maxlen16")
    bert(d, tok_max=16)
    st_modules(d)
    d = ms["subdir"] = os.path.join(out, "subdir")
    bert(os.path.join(d, "0_Transformer"), seed=1)
    bert(d, seed=2)                                  # the decoy at the top
    st_modules(d, tr_path="0_Transformer", max_seq=20, sb_dir=os.path.join(d, "0_Transformer"))
    d = ms["padded"] = os.path.join(out, "padded")
    bert(d, vocab_pad=7, seed=3)
    st_modules(d, max_seq=20)
    d = ms["mlm_fp16"] = os.path.join(out, "mlm_fp16")
    bert(d, cls=BertForMaskedLM, dtype=torch.float16, seed=4)
    st_modules(d, max_seq=20)
    d = ms["decoder"] = os.path.join(out, "decoder")
    bert(d, is_decoder=True, seed=5)
    st_modules(d)
    return ms


def foil(foil_data, *args):
    r = subprocess.run([foil_data, "model", *args], capture_output=True, text=True)
    return r.returncode, r.stderr.strip()


def main():
    foil_data, out = sys.argv[1:3]
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    ms = make(out)
    tf = os.path.join(out, "texts.txt")
    with open(tf, "w") as f:
        f.write("\n".join(TEXTS) + "\n")
    bad = []

    rc, msg = foil(foil_data, "import", ms["decoder"], "--out", os.path.join(out, "decoder.h5"))
    print(f"decoder: rc {rc}: {msg}")
    if rc == 0 or "is_decoder" not in msg:
        bad.append("decoder: not refused by name")

    for name in ("maxlen16", "subdir", "padded", "mlm_fp16"):
        d, ck, npy, ex = ms[name], os.path.join(out, name + ".h5"), os.path.join(out, name + ".npy"), \
            os.path.join(out, name + "_export")
        for args in (("import", d, "--out", ck), ("encode", ck, "--file", tf, "--out", npy), ("export", ck, ex)):
            rc, msg = foil(foil_data, *args)
            if rc:
                bad.append(f"{name}: foil model {args[0]} failed: {msg}")
                break
        if rc:
            continue
        st = SentenceTransformer(d, device="cpu")
        e_orig = st.encode(TEXTS, convert_to_numpy=True)
        e_orig /= np.linalg.norm(e_orig, axis=1, keepdims=True)
        e_foil = np.load(npy)
        st2 = SentenceTransformer(ex, device="cpu")
        e_exp = st2.encode(TEXTS, convert_to_numpy=True)
        e_exp /= np.linalg.norm(e_exp, axis=1, keepdims=True)
        d1, d2 = np.abs(e_foil - e_orig).max(), np.abs(e_exp - e_orig).max()
        print(f"{name}: max_seq_length ST {st.max_seq_length}, export {st2.max_seq_length}; "
              f"foil vs ST {d1:.3g}, ST(export) vs ST(original) {d2:.3g}")
        if d1 > 1e-5:
            bad.append(f"{name}: foil vs sentence-transformers max |diff| {d1:.3g} > 1e-5")
        if d2 > 1e-5 or st.max_seq_length != st2.max_seq_length:
            bad.append(f"{name}: the export encodes differently (max |diff| {d2:.3g}, "
                       f"max_seq_length {st2.max_seq_length} vs {st.max_seq_length})")
        # every exported tensor is the original's (prefix "bert." dropped,
        # float16 widened exactly; the padded rows included)
        src = os.path.join(d, "0_Transformer") if name == "subdir" else d
        a = {k[5:] if k.startswith("bert.") else k: v for k, v in load_file(os.path.join(src, "model.safetensors")).items()}
        b = load_file(os.path.join(ex, "model.safetensors"))
        diff = [k for k in b if k not in a or a[k].shape != b[k].shape or
                (a[k].astype(b[k].dtype) != b[k]).any()]
        if diff:
            bad.append(f"{name}: exported tensors differ from the original: {diff[:5]}")
        if name == "mlm_fp16":
            c = AutoConfig.from_pretrained(ex)
            if c.architectures != ["BertModel"] or c.torch_dtype != torch.float32:
                bad.append(f"mlm_fp16: export's config.json says {c.architectures} {c.torch_dtype}")
    for b in bad:
        print("FAIL:", b)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
