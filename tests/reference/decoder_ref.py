#!/usr/bin/python3
"""PyTorch reference for foil's GPT-2-style decoder (model/decoder.h).

A GPT-2 written here in plain torch ops (no foil code): token + position
embeddings, pre-LN blocks with causal multi-head attention that also hides
padded keys, exact GELU (F.gelu, as nn.GELU()), final LayerNorm, LM head tied
to wte, no dropout. Run in float64 from float32 weights drawn here; the C test
(tests/reference/test_decoder_ref.c) reads one HDF5 file:

  /<case>            attributes: the model config
  /<case>/ids        int32 [B,T]   token ids, right-padded (pad id 0)
  /<case>/mask       uint8 [B,T]   1 real token, 0 padding
  /<case>/targets    int32 [B,T]   next token, -1 at the last real and padded positions
  /<case>/dhidden    float32 [B,T,C] extra gradient on the last-layer states
  /<case>/params/<n> float32       weights, foil's names and shapes
  /<case>/logits     float64 [B,T,V]
  /<case>/hidden     float64 [B,T,C]  LNF(x)
  /<case>/nll        float64 [B,T]    -log p(target), 0 where ignored
  /<case>/loss       float64 []       mean nll over targets >= 0
  /<case>/grads/<n>  float64       d(loss + <dhidden, hidden>) / d parameter

Usage: decoder_ref.py OUT.h5     (run with Debian's /usr/bin/python3)
"""
import math
import os
import sys

import h5py
import numpy as np
import torch
import torch.nn.functional as F

from encoder_ref import BfLinear  # noqa: E402  (the bf16 linear layer, shared with the encoder's reference)

CASES = {
    # padded batch, rows of different lengths
    "l2_d32_h4": dict(n_layers=2, d_model=32, n_heads=4, d_ff=64, vocab=67, max_len=16, T=12, B=3),
    # deeper, two heads, d_ff = 4·d, a longer batch
    "l3_d24_h2": dict(n_layers=3, d_model=24, n_heads=2, d_ff=96, vocab=101, max_len=20, T=16, B=4),
    # one layer, every row full length
    "l1_d16_h4_full": dict(n_layers=1, d_model=16, n_heads=4, d_ff=48, vocab=50, max_len=8, T=8,
                           B=2, full=1),
    # mixed precision (decoder_set_precision ENC_BF16): every linear layer
    # and the tied LM head multiply bf16-rounded operands (encoder_ref's
    # BfLinear: the backward rounds the output gradient too)
    "l2_d32_h4_bf16": dict(n_layers=2, d_model=32, n_heads=4, d_ff=64, vocab=67, max_len=16, T=12, B=3,
                           bf16=1),
}
LN_EPS = 1e-5


def shapes(c):
    L, C, Fd, V = c["n_layers"], c["d_model"], c["d_ff"], c["vocab"]
    return {"wte": (V, C), "wpe": (c["max_len"], C), "ln1_w": (L, C), "ln1_b": (L, C),
            "qkv_w": (L, 3 * C, C), "qkv_b": (L, 3 * C), "atto_w": (L, C, C), "atto_b": (L, C),
            "ln2_w": (L, C), "ln2_b": (L, C), "fc1_w": (L, Fd, C), "fc1_b": (L, Fd),
            "fc2_w": (L, C, Fd), "fc2_b": (L, C), "lnf_w": (C,), "lnf_b": (C,)}


def init_params(c, rng):
    out = {}
    for n, shp in shapes(c).items():
        if "ln" in n and n.endswith("_w"):
            a = 1.0 + 0.1 * rng.standard_normal(shp)
        elif n.endswith("_w") or n in ("wte", "wpe"):
            a = 0.15 * rng.standard_normal(shp)
        else:
            a = 0.05 * rng.standard_normal(shp)
        out[n] = a.astype(np.float32)
    return out


def gpt2(P, c, ids, mask):
    """Returns (hidden = LNF(x) [B,T,C], logits [B,T,V])."""
    B, T = ids.shape
    C, NH = c["d_model"], c["n_heads"]
    hs = C // NH
    if c.get("bf16"):
        lin = BfLinear.apply
    else:
        def lin(x, W, b):
            return x @ W.T + b
    ln = lambda x, w, b: F.layer_norm(x, (C,), w, b, LN_EPS)
    x = P["wte"][ids] + P["wpe"][:T]
    causal = torch.tril(torch.ones(T, T, dtype=torch.bool))
    visible = causal[None, None] & mask.bool()[:, None, None, :]
    for l in range(c["n_layers"]):
        h = ln(x, P["ln1_w"][l], P["ln1_b"][l])
        qkv = lin(h, P["qkv_w"][l], P["qkv_b"][l])
        q, k, v = (t.reshape(B, T, NH, hs).transpose(1, 2) for t in qkv.split(C, dim=-1))
        s = (q @ k.transpose(-1, -2)) / math.sqrt(hs)
        a = torch.softmax(s.masked_fill(~visible, float("-inf")), dim=-1)
        y = (a @ v).transpose(1, 2).reshape(B, T, C)
        x = x + lin(y, P["atto_w"][l], P["atto_b"][l])
        h2 = ln(x, P["ln2_w"][l], P["ln2_b"][l])
        x = x + lin(F.gelu(lin(h2, P["fc1_w"][l], P["fc1_b"][l])), P["fc2_w"][l], P["fc2_b"][l])
    hidden = ln(x, P["lnf_w"], P["lnf_b"])
    return hidden, lin(hidden, P["wte"], torch.zeros(c["vocab"], dtype=hidden.dtype))


def run_case(name, c, grp, seed):
    rng = np.random.default_rng(seed)
    p32 = init_params(c, rng)
    B, T, V, C = c["B"], c["T"], c["vocab"], c["d_model"]
    ids = rng.integers(0, V, size=(B, T)).astype(np.int32)
    lens = np.full(B, T) if c.get("full") else rng.integers(max(2, T // 3), T + 1, size=B)
    lens[0] = T
    mask = (np.arange(T)[None, :] < lens[:, None]).astype(np.uint8)
    ids[mask == 0] = 0
    targets = np.full((B, T), -1, dtype=np.int32)
    for b in range(B):
        targets[b, : lens[b] - 1] = ids[b, 1 : lens[b]]
    dhidden = (0.5 * rng.standard_normal((B, T, C))).astype(np.float32)
    for k in ("n_layers", "d_model", "n_heads", "d_ff", "vocab", "max_len"):
        grp.attrs[k] = np.int32(c[k])
    grp.attrs["ln_eps"] = np.float64(LN_EPS)
    grp.attrs["bf16"] = np.int32(c.get("bf16", 0))
    grp["ids"], grp["mask"], grp["targets"], grp["dhidden"] = ids, mask, targets, dhidden
    for n, a in p32.items():
        grp[f"params/{n}"] = a

    P = {n: torch.tensor(a, dtype=torch.float64, requires_grad=True) for n, a in p32.items()}
    tid, tmask = torch.tensor(ids, dtype=torch.long), torch.tensor(mask)
    ttg = torch.tensor(targets, dtype=torch.long)
    hidden, logits = gpt2(P, c, tid, tmask)
    nll = F.cross_entropy(logits.reshape(-1, V), ttg.reshape(-1), ignore_index=-1,
                          reduction="none").reshape(B, T)
    loss = F.cross_entropy(logits.reshape(-1, V), ttg.reshape(-1), ignore_index=-1)
    obj = loss + (torch.tensor(dhidden, dtype=torch.float64) * hidden).sum()
    obj.backward()
    grp["logits"] = logits.detach().numpy()
    grp["hidden"] = hidden.detach().numpy()
    grp["nll"] = nll.detach().numpy()
    grp["loss"] = loss.item()
    for n, t in P.items():
        grp[f"grads/{n}"] = t.grad.numpy()
    print(f"{name}: B {B} T {T} lens {list(lens)} loss {loss.item():.6f}")


def main():
    torch.set_num_threads(1)
    out = sys.argv[1] if len(sys.argv) > 1 else "decoder_ref.h5"
    with h5py.File(out + ".tmp", "w") as f:
        for i, (name, c) in enumerate(CASES.items()):
            run_case(name, c, f.create_group(name), seed=4321 + i)
    os.replace(out + ".tmp", out)


if __name__ == "__main__":
    main()
