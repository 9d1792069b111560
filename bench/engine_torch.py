#!/usr/bin/python3
"""PyTorch side of the engine benchmark: the same work as bench_engine.c.

  engine_torch.py train|encode small|minilm THREADS [N]

A standard PyTorch text encoder (nn.Embedding + learned positions,
LayerNorm, nn.TransformerEncoder with BERT's post-LN layers, exact GELU,
dropout 0.1, mean pooling), symmetric InfoNCE at temperature 0.05 on
L2-normalized embeddings, torch.optim.AdamW; encoding under
torch.inference_mode() in eval mode, where PyTorch takes its fused fast
path. Prints one line of JSON. The caller sets OMP_NUM_THREADS,
OPENBLAS_NUM_THREADS (and OMP_WAIT_POLICY) for this fresh process.
"""
import json
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

CONFIGS = {
    "small": dict(vocab=8192, d=256, heads=4, ff=1024, layers=4, T=32),
    "minilm": dict(vocab=30522, d=384, heads=12, ff=1536, layers=6, T=64),
}


class Encoder(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.wte = nn.Embedding(c["vocab"], c["d"])
        self.wpe = nn.Embedding(c["T"], c["d"])
        self.ln = nn.LayerNorm(c["d"])
        self.drop = nn.Dropout(0.1)
        layer = nn.TransformerEncoderLayer(c["d"], c["heads"], c["ff"], dropout=0.1,
                                           activation="gelu", batch_first=True)
        self.layers = nn.TransformerEncoder(layer, c["layers"], enable_nested_tensor=False)

    def forward(self, ids, pad):
        x = self.wte(ids) + self.wpe.weight[: ids.shape[1]]
        x = self.layers(self.drop(self.ln(x)), src_key_padding_mask=pad)
        m = (~pad).unsqueeze(-1).to(x.dtype)
        return (x * m).sum(1) / m.sum(1).clamp(min=1e-9)


def flops(c, B):
    d, f, T = c["d"], c["ff"], c["T"]
    return B * T * (2 * (4 * d * d + 2 * d * f) + 4 * T * d) * c["layers"]


def main():
    mode, name, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
    torch.set_num_threads(threads)
    torch.manual_seed(1)
    c = CONFIGS[name]
    train = mode == "train"
    iters = int(sys.argv[4]) if len(sys.argv) > 4 else (10 if train else 4)
    B, T = (128 if train else 256), c["T"]
    model = Encoder(c)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    pad = torch.zeros(B, T, dtype=torch.bool)
    gen = torch.Generator().manual_seed(2)
    loss = torch.zeros(())
    model.train(train)
    t0 = 0.0
    for it in range(-1, iters):  # iteration -1 warms up
        if it == 0:
            t0 = time.perf_counter()
        ids = torch.randint(0, c["vocab"], (B, T), generator=gen)
        if train:
            emb = F.normalize(model(ids, pad), dim=-1)
            q, p = emb[: B // 2], emb[B // 2:]
            s = q @ p.T / 0.05
            labels = torch.arange(B // 2)
            loss = 0.5 * (F.cross_entropy(s, labels) + F.cross_entropy(s.T, labels))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        else:
            with torch.inference_mode():
                model(ids, pad)
    dt = time.perf_counter() - t0
    per = (B // 2 if train else B) * iters / dt
    print(json.dumps(dict(side="torch", mode=mode, config=name, threads=threads,
                          per_s=round(per, 2),
                          gflops=round(flops(c, B) * (3 if train else 1) * iters / dt / 1e9, 2),
                          loss=round(float(loss), 4))))


if __name__ == "__main__":
    main()
