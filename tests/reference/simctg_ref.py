#!/usr/bin/python3
"""PyTorch reference for foil's SimCTG contrastive loss (model/simctg.h).

Follows yxuansu/SimCTG's `contrastive_loss` (simctg/lossfunction.py) step by
step, written here in torch: cosine matrix of the L2-normalized last-layer
states, hinge relu(margin - (s_ii - s_ij)), the pair mask built from each
row's count of non-pad tokens (first L_b positions, diagonal excluded), the
row sums multiplied by the input mask, normalized by the pair-mask sum.
States are float32 drawn here, the loss and gradient (autograd) float64.

  /<case>          attrs: margin, pad_id
  /<case>/ids      int32 [B,T]   token ids (pad_id marks padding, as SimCTG)
  /<case>/mask     uint8 [B,T]   ids != pad_id
  /<case>/hidden   float32 [B,T,C]
  /<case>/loss     float64 []
  /<case>/grad     float64 [B,T,C]  d loss / d hidden

Usage: simctg_ref.py OUT.h5     (run with Debian's /usr/bin/python3)
"""
import sys

import h5py
import numpy as np
import torch

PAD = 0


def simctg_reference(hidden, ids, margin, pad_id):
    B, T, _ = hidden.shape
    unit = hidden / hidden.norm(dim=2, keepdim=True)
    scores = unit @ unit.transpose(1, 2)                      # [B,T,T]
    gold = torch.diagonal(scores, dim1=1, dim2=2).unsqueeze(-1)
    hinge = torch.relu(margin - (gold - scores))
    input_mask = (ids != pad_id).to(hidden.dtype)             # [B,T]
    lengths = input_mask.sum(dim=-1).long().tolist()
    pair_mask = torch.zeros(B, T, T, dtype=hidden.dtype)
    for b, n in enumerate(lengths):                           # first n positions, i != j
        pair_mask[b, :n, :n] = 1.0 - torch.eye(n, dtype=hidden.dtype)
    rows = (hinge * pair_mask).sum(dim=-1) * input_mask
    return rows.sum() / pair_mask.sum()


def case(f, name, B, T, C, margin, lengths, holes=(), seed=0, shared=1.2):
    rng = np.random.default_rng(seed)
    base = rng.standard_normal(C)
    h = (shared * base + rng.standard_normal((B, T, C))).astype(np.float32)
    ids = rng.integers(1, 50, size=(B, T)).astype(np.int32)
    for b, n in enumerate(lengths):
        ids[b, n:] = PAD
    for b, t in holes:                                       # a real token equal to the pad id
        ids[b, t] = PAD
    x = torch.tensor(h, dtype=torch.float64, requires_grad=True)
    loss = simctg_reference(x, torch.tensor(ids), margin, PAD)
    loss.backward()
    g = f.create_group(name)
    g.attrs["margin"] = margin
    g.attrs["pad_id"] = PAD
    g["ids"] = ids
    g["mask"] = (ids != PAD).astype(np.uint8)
    g["hidden"] = h
    g["loss"] = loss.item()
    g["grad"] = x.grad.numpy()
    print(f"{name}: B {B} T {T} C {C} margin {margin} loss {loss.item():.6f}")


def main():
    out = sys.argv[1]
    torch.manual_seed(0)
    with h5py.File(out, "w") as f:
        case(f, "full_rows", 3, 16, 24, 0.5, [16, 16, 16], seed=1)
        case(f, "right_padded", 4, 20, 32, 0.5, [20, 13, 7, 2], seed=2)
        case(f, "right_padded_margin_0.8", 2, 12, 16, 0.8, [12, 5], seed=3, shared=1.0)
        case(f, "pad_id_inside", 3, 10, 8, 0.5, [10, 8, 6], holes=[(0, 3), (1, 1)], seed=4)


if __name__ == "__main__":
    main()
