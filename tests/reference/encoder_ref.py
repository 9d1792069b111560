#!/usr/bin/python3
"""PyTorch reference for foil's transformer encoder, InfoNCE loss and AdamW.

Builds the same model as model/encoder.c in plain torch ops (no foil code),
in float64, from float32 weights drawn here, and writes everything the C test
(tests/reference/test_encoder_ref.c) compares into one HDF5 file:

  /<case>            attributes: the model config, loss and optimizer settings
  /<case>/ids        int32 [R,T]   token ids, right-padded
  /<case>/mask       uint8 [R,T]   1 real token, 0 padding
  /<case>/params/<n> float32       initial weights, foil's names and shapes
  /<case>/emb        float64 [R,D] pooled (and projected) embeddings
  /<case>/loss       float64 []    InfoNCE loss at the initial weights
  /<case>/grads/<n>  float64       d loss / d parameter
  /<case>/step_loss  float64 [S]   loss before each of S AdamW steps

Rows of ids: B queries, B positives, then n_neg extra negatives.
Usage: encoder_ref.py OUT.h5     (run with Debian's /usr/bin/python3)
"""
import math
import sys

import h5py
import numpy as np
import torch
import torch.nn.functional as F

CASES = {
    # BERT-style post-LN, mean pooling over padded sequences, projection
    # head, symmetric InfoNCE with hard negatives, gradient clipping on.
    "post_mean_sym_neg": dict(n_layers=2, d_model=32, n_heads=4, d_ff=64, vocab=97, max_len=16,
                              proj_dim=16, pre_ln=0, pooling=0, ln_eps=1e-12, T=12, B=4, n_neg=3,
                              temperature=0.05, symmetric=1, max_grad_norm=1.0),
    # pre-LN, mean pooling, one-directional InfoNCE, no extra negatives.
    "pre_mean_onedir": dict(n_layers=3, d_model=24, n_heads=2, d_ff=40, vocab=61, max_len=12,
                            proj_dim=0, pre_ln=1, pooling=0, ln_eps=1e-5, T=9, B=5, n_neg=0,
                            temperature=0.1, symmetric=0, max_grad_norm=0.0),
    # pre-LN, first-token pooling, symmetric with negatives.
    "pre_first_sym_neg": dict(n_layers=2, d_model=16, n_heads=4, d_ff=48, vocab=50, max_len=10,
                              proj_dim=8, pre_ln=1, pooling=1, ln_eps=1e-5, T=10, B=3, n_neg=2,
                              temperature=0.07, symmetric=1, max_grad_norm=0.5),
    # DCL (positive out of the denominator), symmetric, hard negatives.
    "post_dcl_sym": dict(n_layers=1, d_model=16, n_heads=2, d_ff=32, vocab=40, max_len=8,
                         proj_dim=0, pre_ln=0, pooling=0, ln_eps=1e-12, T=8, B=4, n_neg=2,
                         temperature=0.1, symmetric=1, max_grad_norm=0.0, dcl=1),
    # MoCo's loss: a queue of unit keys as extra negatives (no gradient).
    "pre_queue": dict(n_layers=1, d_model=16, n_heads=2, d_ff=32, vocab=40, max_len=8,
                      proj_dim=8, pre_ln=1, pooling=0, ln_eps=1e-5, T=8, B=4, n_neg=0,
                      temperature=0.07, symmetric=0, max_grad_norm=0.0, queue=11),
    # mixed precision (encoder_set_precision ENC_BF16): every linear layer
    # multiplies bf16-rounded operands, its backward rounds the output
    # gradient too (BfLinear below); post-LN with a projection head.
    "post_bf16": dict(n_layers=2, d_model=32, n_heads=4, d_ff=64, vocab=97, max_len=16,
                      proj_dim=16, pre_ln=0, pooling=0, ln_eps=1e-12, T=12, B=4, n_neg=3,
                      temperature=0.05, symmetric=1, max_grad_norm=1.0, bf16=1),
}
STEPS, LR, WD, B1, B2, EPS = 10, 2e-4, 0.01, 0.9, 0.999, 1e-8


def shapes(c):
    L, d, f, V, P = c["n_layers"], c["d_model"], c["d_ff"], c["vocab"], c["proj_dim"]
    s = {"wte": (V, d), "wpe": (c["max_len"], d)}
    if not c["pre_ln"]:
        s.update(emb_ln_w=(d,), emb_ln_b=(d,))
    s.update(ln1_w=(L, d), ln1_b=(L, d), qkv_w=(L, 3 * d, d), qkv_b=(L, 3 * d),
             atto_w=(L, d, d), atto_b=(L, d), ln2_w=(L, d), ln2_b=(L, d),
             fc1_w=(L, f, d), fc1_b=(L, f), fc2_w=(L, d, f), fc2_b=(L, d))
    if c["pre_ln"]:
        s.update(lnf_w=(d,), lnf_b=(d,))
    if P:
        s.update(proj_w=(P, d), proj_b=(P,))
    return s


def decays(name):
    return name.endswith("_w") and "ln" not in name or name in ("wte", "wpe")


def init_params(c, rng):
    out = {}
    for n, shp in shapes(c).items():
        if "ln" in n and n.endswith("_w"):
            a = 1.0 + 0.1 * rng.standard_normal(shp)
        elif decays(n):
            a = 0.15 * rng.standard_normal(shp)
        else:
            a = 0.05 * rng.standard_normal(shp)
        out[n] = a.astype(np.float32)
    return out


def bf(t):
    """float64 -> fp32 (foil's activations are fp32) -> bf16, nearest even, -> float64"""
    return t.float().bfloat16().double()


class BfLinear(torch.autograd.Function):
    """x @ W^T + b on bf16-rounded x and W, fp32-exact products summed in
    float64; the backward rounds the output gradient to bf16 for dx and dW,
    the bias gradient sums it unrounded (kernels/cpu/bf16.c's contract)."""

    @staticmethod
    def forward(ctx, x, W, b):
        xb, Wb = bf(x), bf(W)
        ctx.save_for_backward(xb, Wb)
        return xb @ Wb.T + b

    @staticmethod
    def backward(ctx, g):
        xb, Wb = ctx.saved_tensors
        gb = bf(g)
        g2, x2 = gb.reshape(-1, gb.shape[-1]), xb.reshape(-1, xb.shape[-1])
        return gb @ Wb, g2.T @ x2, g.reshape(-1, g.shape[-1]).sum(0)


def encode(P, c, ids, mask):
    R, T = ids.shape
    d, NH = c["d_model"], c["n_heads"]
    hs = d // NH
    if c.get("bf16"):
        lin = BfLinear.apply
    else:
        def lin(x, W, b):
            return x @ W.T + b
    ln = lambda x, w, b: F.layer_norm(x, (d,), w, b, c["ln_eps"])
    x = P["wte"][ids] + P["wpe"][:T]
    if not c["pre_ln"]:
        x = ln(x, P["emb_ln_w"], P["emb_ln_b"])
    keymask = mask.bool()[:, None, None, :]
    for l in range(c["n_layers"]):
        h = ln(x, P["ln1_w"][l], P["ln1_b"][l]) if c["pre_ln"] else x
        qkv = lin(h, P["qkv_w"][l], P["qkv_b"][l])
        q, k, v = (t.reshape(R, T, NH, hs).transpose(1, 2) for t in qkv.split(d, dim=-1))
        s = (q @ k.transpose(-1, -2)) / math.sqrt(hs)
        a = torch.softmax(s.masked_fill(~keymask, float("-inf")), dim=-1)
        y = (a @ v).transpose(1, 2).reshape(R, T, d)
        r1 = x + lin(y, P["atto_w"][l], P["atto_b"][l])
        if c["pre_ln"]:
            h2 = ln(r1, P["ln2_w"][l], P["ln2_b"][l])
        else:
            h2 = ln(r1, P["ln1_w"][l], P["ln1_b"][l])
        ff = lin(F.gelu(lin(h2, P["fc1_w"][l], P["fc1_b"][l])), P["fc2_w"][l], P["fc2_b"][l])
        x = r1 + ff if c["pre_ln"] else ln(h2 + ff, P["ln2_w"][l], P["ln2_b"][l])
    if c["pre_ln"]:
        x = ln(x, P["lnf_w"], P["lnf_b"])
    if c["pooling"] == 0:
        m = mask.to(x.dtype)[:, :, None]
        pooled = (x * m).sum(1) / m.sum(1).clamp(min=1e-9)
    else:
        pooled = x[:, 0]
    if c["proj_dim"]:
        pooled = lin(pooled, P["proj_w"], P["proj_b"])
    return pooled


def xent(logits, labels, dcl):
    """Cross-entropy; DCL removes each row's target from the denominator."""
    if not dcl:
        return F.cross_entropy(logits, labels)
    pos = logits.gather(1, labels[:, None])[:, 0]
    neg = logits.masked_fill(F.one_hot(labels, logits.shape[1]).bool(), float("-inf"))
    return (torch.logsumexp(neg, dim=1) - pos).mean()


def infonce(emb, c, scale, queue=None):
    """InfoNCE on cosine logits times scale (= 1/temperature)."""
    B = c["B"]
    u = F.normalize(emb, dim=-1)
    q, keys = u[:B], u[B:]
    if queue is not None:
        keys = torch.cat([keys, queue])
    labels = torch.arange(B)
    dcl = c.get("dcl", 0)
    loss = xent(q @ keys.T * scale, labels, dcl)
    if c["symmetric"]:
        back = xent(u[B:2 * B] @ q.T * scale, labels, dcl)
        loss = 0.5 * (loss + back)
    return loss


def make_batch(c, rng):
    R, T = 2 * c["B"] + c["n_neg"], c["T"]
    ids = rng.integers(0, c["vocab"], size=(R, T)).astype(np.int32)
    lens = rng.integers(max(1, T // 3), T + 1, size=R)
    lens[0] = T  # at least one full-length row
    mask = (np.arange(T)[None, :] < lens[:, None]).astype(np.uint8)
    ids[mask == 0] = 0  # pad id
    return ids, mask


def run_case(name, c, grp, seed):
    rng = np.random.default_rng(seed)
    p32 = init_params(c, rng)
    ids, mask = make_batch(c, rng)
    for k in ("n_layers", "d_model", "n_heads", "d_ff", "vocab", "max_len", "proj_dim", "pre_ln",
              "pooling", "B", "n_neg", "symmetric"):
        grp.attrs[k] = np.int32(c[k])
    for k in ("ln_eps", "temperature", "max_grad_norm"):
        grp.attrs[k] = np.float64(c[k])
    grp.attrs["dcl"] = np.int32(c.get("dcl", 0))
    grp.attrs["bf16"] = np.int32(c.get("bf16", 0))
    queue = None
    if c.get("queue"):
        qk = rng.standard_normal((c["queue"], c["proj_dim"] or c["d_model"]))
        qk = (qk / np.linalg.norm(qk, axis=1, keepdims=True)).astype(np.float32)
        grp["queue"] = qk
        queue = torch.tensor(qk, dtype=torch.float64)
    grp.attrs.update(dict(steps=np.int32(STEPS), lr=LR, weight_decay=WD, beta1=B1, beta2=B2,
                          eps=EPS))
    grp["ids"], grp["mask"] = ids, mask
    for n, a in p32.items():
        grp[f"params/{n}"] = a

    P = {n: torch.tensor(a, dtype=torch.float64, requires_grad=True) for n, a in p32.items()}
    tid, tmask = torch.tensor(ids, dtype=torch.long), torch.tensor(mask)
    scale = torch.tensor(1.0 / c["temperature"], dtype=torch.float64, requires_grad=True)
    emb = encode(P, c, tid, tmask)
    loss = infonce(emb, c, scale, queue)
    loss.backward()
    grp["emb"] = emb.detach().numpy()
    grp["loss"] = loss.item()
    grp["dscale"] = scale.grad.item()  # d loss / d (1/temperature): a learnable temperature
    for n, t in P.items():
        grp[f"grads/{n}"] = t.grad.numpy()

    # STEPS AdamW steps on the same batch, as torch.optim.AdamW with decay
    # on matrices and embeddings only, clip_grad_norm_ before each step.
    for t in P.values():
        t.grad = None
    params = list(P.values())
    opt = torch.optim.AdamW([
        {"params": [P[n] for n in P if decays(n)], "weight_decay": WD},
        {"params": [P[n] for n in P if not decays(n)], "weight_decay": 0.0},
    ], lr=LR, betas=(B1, B2), eps=EPS)
    losses = []
    for _ in range(STEPS):
        opt.zero_grad()
        loss = infonce(encode(P, c, tid, tmask), c, 1.0 / c["temperature"], queue)
        loss.backward()
        if c["max_grad_norm"] > 0:
            torch.nn.utils.clip_grad_norm_(params, c["max_grad_norm"])
        opt.step()
        losses.append(loss.item())
    grp["step_loss"] = np.array(losses)
    print(f"{name}: loss {losses[0]:.6f} -> {losses[-1]:.6f} after {STEPS} steps")


def main():
    torch.set_num_threads(1)
    out = sys.argv[1] if len(sys.argv) > 1 else "encoder_ref.h5"
    with h5py.File(out + ".tmp", "w") as f:
        for i, (name, c) in enumerate(CASES.items()):
            run_case(name, c, f.create_group(name), seed=1234 + i)
    import os
    os.replace(out + ".tmp", out)


if __name__ == "__main__":
    main()
