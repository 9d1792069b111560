"""generate_ref.py — whole generations of model/generate.h's methods,
re-implemented as the reference loops do them, on small random GPT-2s.

The model: a minimal GPT-2 in plain PyTorch with foil's layout (pre-LN,
exact GELU, tied wte, learned positions), float64 from float32 weights drawn
here. Every loop re-runs the whole sequence each step (no cache), one prompt
at a time, so it shares nothing with foil's batched, cached driver:
  greedy     argmax of the last logits
  cs         SimCTG / HF contrastive search: top-k of softmax, each
             candidate's last-layer state, (1-α)p - α·max cos over the
             states of the whole sequence so far (prompt included)
  cd         the ContrastiveDecoding repo's beam search: expert + amateur
             (ignore_prefix: the amateur sees the last prompt token and the
             beam's generated tokens), decode_ref.beam_run's scorer
  beam       HF beam search (the same scorer, one model)
  cad/adacad CAD (1+α)z(y|c,x) - α z(y|x), AdaCAD α = get_jsd, greedy
  dola       HF _dola_decoding: candidate layers, early exit through the LM
             head without the final norm, JSD layer choice, relative top 0.1,
             repetition penalty 1.2, greedy
  *_skip     beam_rep and dola with the penalty's history past each
             prompt's first 9/3/6 ids (prompts 0 and 2 whole; generate_opts.penalty_skip)
Writes weights, prompts and expected outputs to HDF5 for
test_generate_ref.c. Usage: generate_ref.py OUT.h5
"""
import math
import os
import sys

import h5py
import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from decode_ref import Hyps, adacad_jsd, dola_layers  # noqa: E402

LN_EPS = 1e-5
NEG = -float("inf")


def shapes(c):
    L, C, Fd, V = c["n_layers"], c["d_model"], c["d_ff"], c["vocab"]
    return {"wte": (V, C), "wpe": (c["max_len"], C), "ln1_w": (L, C), "ln1_b": (L, C),
            "qkv_w": (L, 3 * C, C), "qkv_b": (L, 3 * C), "atto_w": (L, C, C), "atto_b": (L, C),
            "ln2_w": (L, C), "ln2_b": (L, C), "fc1_w": (L, Fd, C), "fc1_b": (L, Fd),
            "fc2_w": (L, C, Fd), "fc2_b": (L, C), "lnf_w": (C,), "lnf_b": (C,)}


def init(c, rng):
    out = {}
    for n, shp in shapes(c).items():
        if n.startswith("ln") and n.endswith("_w"):
            a = 1.0 + 0.1 * rng.standard_normal(shp)
        elif n.endswith("_w") or n in ("wte", "wpe"):
            a = c.get("scale", 0.3) * rng.standard_normal(shp)
        else:
            a = 0.05 * rng.standard_normal(shp)
        out[n] = a.astype(np.float32)
    return out


class GPT2:
    def __init__(self, c, p32):
        self.c = c
        self.P = {n: torch.tensor(a, dtype=torch.float64) for n, a in p32.items()}

    def run(self, ids):
        """ids: list of tokens. Returns (layer states [L+1, T, C] with the last
        replaced by LNF(x), logits [T, V])."""
        c, P = self.c, self.P
        T, C, NH = len(ids), c["d_model"], c["n_heads"]
        hs = C // NH
        ln = lambda x, w, b: F.layer_norm(x, (C,), w, b, LN_EPS)
        x = P["wte"][torch.tensor([int(i) for i in ids], dtype=torch.long)] + P["wpe"][:T]
        states = [x]
        causal = torch.tril(torch.ones(T, T, dtype=torch.bool))
        for l in range(c["n_layers"]):
            h = ln(x, P["ln1_w"][l], P["ln1_b"][l])
            qkv = h @ P["qkv_w"][l].T + P["qkv_b"][l]
            q, k, v = (t.reshape(T, NH, hs).transpose(0, 1) for t in qkv.split(C, dim=-1))
            s = (q @ k.transpose(-1, -2)) / math.sqrt(hs)
            a = torch.softmax(s.masked_fill(~causal, NEG), dim=-1)
            y = (a @ v).transpose(0, 1).reshape(T, C)
            x = x + y @ P["atto_w"][l].T + P["atto_b"][l]
            h2 = ln(x, P["ln2_w"][l], P["ln2_b"][l])
            x = x + F.gelu(h2 @ P["fc1_w"][l].T + P["fc1_b"][l]) @ P["fc2_w"][l].T + P["fc2_b"][l]
            states.append(x)
        hid = ln(x, P["lnf_w"], P["lnf_b"])
        states[-1] = hid
        return torch.stack(states), hid @ P["wte"].T

    def head(self, h):
        return h @ self.P["wte"].T


def argmax(x):
    return int(torch.argmax(x))  # first maximum, as foil


def greedy(m, prompt, n, eos):
    seq, out = list(prompt), []
    for _ in range(n):
        t = argmax(m.run(seq)[1][-1])
        out.append(t)
        seq.append(t)
        if t == eos:
            break
    return out


def contrastive_search(m, prompt, n, eos, k, alpha):
    seq, out = list(prompt), []
    for _ in range(n):
        st, lg = m.run(seq)
        ctx = st[-1]  # [S, C] last-layer states of the sequence so far
        p = F.softmax(lg[-1], -1)
        order = sorted(range(p.shape[0]), key=lambda v: (-float(p[v]), v))[:k]
        best, bs = None, None
        for v in order:
            h = m.run(seq + [v])[0][-1][-1]
            cos = (ctx @ h) / (ctx.norm(dim=1) * h.norm())
            s = (1 - alpha) * float(p[v]) - alpha * float(cos.max())
            if bs is None or s > bs:
                best, bs = v, s
        out.append(best)
        seq.append(best)
        if best == eos:
            break
    return out


def beam_search(m, ama, prompt, n, eos, nb, lp, early, cd, pen=1.0, skip=0):
    """The scorer of decode_ref.beam_run driven by real models. The penalty's history leaves out the
    prompt's first `skip` ids (generate_opts.penalty_skip; 0 is HF's processor over input_ids)."""
    V = m.c["vocab"]
    hyps = Hyps(nb, lp, early)
    beams = [list(prompt) for _ in range(nb)]
    bs = torch.zeros(nb, dtype=torch.float64)
    bs[1:] = -1e9
    done = False
    for t in range(n):
        e = torch.stack([F.log_softmax(m.run(b)[1][-1], -1) for b in beams])
        if pen != 1.0:  # HF's RepetitionPenaltyLogitsProcessor on the log-probs
            for i, b in enumerate(beams):
                for tok in set(b[skip:]):
                    e[i, tok] = e[i, tok] * pen if e[i, tok] < 0 else e[i, tok] / pen
        if cd is None:
            tot = (e + bs[:, None]).view(-1)
            idx = sorted(range(nb * V), key=lambda i: (-float(tot[i]), i))[: 2 * nb]
            sc = [float(tot[i]) for i in idx]
        else:
            alpha, beta, tau, min_keep, ignore_prefix = cd
            # ignore_prefix: the amateur sees the last prompt token + the beam's tokens
            a = torch.stack([F.log_softmax(ama.run(b[len(prompt) - 1:] if ignore_prefix else b)[1][-1], -1)
                             for b in beams]) / tau
            srt, _ = torch.sort(e, descending=True)
            th = torch.min(srt[:, min_keep - 1], e.max(-1).values + np.log(alpha)).unsqueeze(-1)
            full = e.masked_fill(e < th, NEG) + bs[:, None]
            keep = full.view(-1) if t == 0 else e.view(-1)
            idx = sorted(range(nb * V), key=lambda i: (-float(keep[i]), i))[: 2 * nb]
            sc0 = [float(full.view(-1)[i] - beta * a.view(-1)[i]) for i in idx]
            order = sorted(range(2 * nb), key=lambda r: -sc0[r])
            idx, sc = [idx[r] for r in order], [sc0[r] for r in order]
        nbs, src, nxt = [], [], []
        for r in range(2 * nb):
            b, tok = idx[r] // V, idx[r] % V
            if tok == eos:
                if r >= nb:
                    continue
                hyps.add(beams[b], sc[r], True)
            else:
                nbs.append(sc[r])
                src.append(b)
                nxt.append(tok)
            if len(nbs) == nb:
                break
        done = hyps.is_done(sc[0], len(beams[0]))
        beams = [beams[src[i]] + [nxt[i]] for i in range(nb)]
        bs = torch.tensor(nbs, dtype=torch.float64)
        if done:
            break
    if not done:
        for i in range(nb):
            hyps.add(beams[i], float(bs[i]), False)
    best = sorted(hyps.beams, key=lambda x: x[0])[-1]
    return best[1][len(prompt):] + ([eos] if best[2] else [])


def cad(m, pc, pn, n, eos, alpha, adaptive, floor):
    sc, sn, out, alphas = list(pc), list(pn), [], []
    for _ in range(n):
        zc, zn = m.run(sc)[1][-1], m.run(sn)[1][-1]
        a = alpha
        if adaptive:
            a = adacad_jsd(zc.numpy(), zn.numpy())
            if floor > 0:
                a = max(a, floor)
        t = argmax((1 + a) * zc - a * zn)
        alphas.append(a)
        out.append(t)
        sc.append(t)
        sn.append(t)
        if t == eos:
            break
    return out, alphas


def dola(m, prompt, n, eos, kind, pen, skip=0):
    L = m.c["n_layers"]
    layers = dola_layers(L, kind)
    seq, out = list(prompt), []
    for _ in range(n):
        st, lg = m.run(seq)
        fin = lg[-1][None]
        cands = {j: m.head(st[j][-1])[None] for j in layers}
        if len(layers) == 1:
            sel = layers[0]
        else:
            stack = torch.stack([cands[j] for j in layers])
            avg = 0.5 * (F.softmax(fin, -1)[None] + F.softmax(stack, -1))
            kl1 = F.kl_div(F.log_softmax(fin, -1)[None], avg, reduction="none").mean(-1)
            kl2 = F.kl_div(F.log_softmax(stack, -1), avg, reduction="none").mean(-1)
            sel = layers[int((0.5 * (kl1 + kl2)).mean(-1).argmax())]
        f = fin.log_softmax(-1)
        b = cands[sel].log_softmax(-1)
        th = f.max(-1).values + np.log(0.1)
        b[f < th] = -1e-3
        f[f < th] = NEG
        x = (f - b)[0]
        for tok in set(seq[skip:]):  # skip: generate_opts.penalty_skip
            x[tok] = x[tok] * pen if x[tok] < 0 else x[tok] / pen
        t = argmax(x)
        out.append(t)
        seq.append(t)
        if t == eos:
            break
    return out


def write_model(g, c, p32):
    for k in ("n_layers", "d_model", "n_heads", "d_ff", "vocab", "max_len"):
        g.attrs[k] = np.int32(c[k])
    for nme, a in p32.items():
        g[f"params/{nme}"] = a


def write_out(g, name, outs, n):
    arr = np.full((len(outs), n), -1, dtype=np.int32)
    for i, o in enumerate(outs):
        arr[i, : len(o)] = o
    g[f"{name}/out"] = arr
    g[f"{name}/len"] = np.array([len(o) for o in outs], dtype=np.int32)


def main(path):
    torch.set_num_threads(1)
    rng = np.random.default_rng(77)
    EXP = dict(n_layers=4, d_model=32, n_heads=4, d_ff=64, vocab=61, max_len=40)
    AMA = dict(n_layers=1, d_model=16, n_heads=2, d_ff=32, vocab=61, max_len=40, scale=0.4)
    pe, pa = init(EXP, rng), init(AMA, rng)
    me, ma = GPT2(EXP, pe), GPT2(AMA, pa)
    P, T, N, EOS = 3, 9, 12, 6
    lens = np.array([9, 4, 6], dtype=np.int32)
    ids = np.zeros((P, T), dtype=np.int32)
    for p in range(P):
        ids[p, : lens[p]] = rng.integers(6, EXP["vocab"], lens[p])
    prompts = [list(map(int, ids[p, : lens[p]])) for p in range(P)]
    # CAD variants: row 2p = context + query, row 2p+1 = query alone
    cT = 12
    cids = np.zeros((2 * P, cT), dtype=np.int32)
    clens = np.zeros(2 * P, dtype=np.int32)
    for p in range(P):
        ctxt = list(map(int, rng.integers(6, EXP["vocab"], 3 + p)))
        q = prompts[p][-min(len(prompts[p]), 5):]
        for i, s in enumerate([(ctxt + q)[:cT], q]):
            cids[2 * p + i, : len(s)] = s
            clens[2 * p + i] = len(s)
    with h5py.File(path + ".tmp", "w") as f:
        write_model(f.create_group("expert"), EXP, pe)
        write_model(f.create_group("amateur"), AMA, pa)
        f["ids"], f["lens"], f["cids"], f["clens"] = ids, lens, cids, clens
        f.attrs["max_new"], f.attrs["eos"] = N, EOS
        f.attrs["P"], f.attrs["T"], f.attrs["cT"] = P, T, cT
        write_out(f, "greedy", [greedy(me, pr, N, EOS) for pr in prompts], N)
        write_out(f, "cs", [contrastive_search(me, pr, N, EOS, 5, 0.6) for pr in prompts], N)
        write_out(f, "cs4", [contrastive_search(me, pr, N, EOS, 4, 0.4) for pr in prompts], N)
        write_out(f, "beam", [beam_search(me, None, pr, N, EOS, 3, 1.0, False, None) for pr in prompts], N)
        # beam_rep: no EOS (every beam runs the full length), penalty 2.0
        write_out(f, "beam_rep", [beam_search(me, None, pr, N, -1, 2, 0.8, False, None, 2.0)
                                  for pr in prompts], N)
        write_out(f, "cd", [beam_search(me, ma, pr, N, EOS, 3, 1.0, False, (0.1, 1.0, 0.5, 2, True))
                            for pr in prompts], N)
        # the amateur sees the whole prompt; β 0.5, τ 1, α 0.2, 2 beams
        write_out(f, "cd_full", [beam_search(me, ma, pr, N, EOS, 2, 1.0, False, (0.2, 0.5, 1.0, 2, False))
                                 for pr in prompts], N)
        for name, a, ad, fl in [("cad", 0.5, False, 0.0), ("adacad", 0.0, True, 0.0),
                                ("adacad_floor", 0.0, True, 0.3)]:
            res = [cad(me, [int(t) for t in cids[2 * p, : clens[2 * p]]], [int(t) for t in cids[2 * p + 1, : clens[2 * p + 1]]],
                       N, EOS, a, ad, fl) for p in range(P)]
            write_out(f, name, [r[0] for r in res], N)
            al = np.zeros((P, N))
            for p, r in enumerate(res):
                al[p, : len(r[1])] = r[1]
            f[f"{name}/alpha"] = al
        write_out(f, "dola_high", [dola(me, pr, N, EOS, "high", 1.2) for pr in prompts], N)
        write_out(f, "dola_list", [dola(me, pr, N, EOS, [0, 1, 2, 3], 1.2) for pr in prompts], N)
        # the penalty's history without each prompt's first SKIP[p] ids (generate_opts.penalty_skip)
        SKIP = [9, 3, 6]
        write_out(f, "beam_rep_skip", [beam_search(me, None, pr, N, -1, 2, 0.8, False, None, 2.0, SKIP[p])
                                       for p, pr in enumerate(prompts)], N)
        write_out(f, "dola_skip", [dola(me, pr, N, EOS, "high", 1.2, SKIP[p]) for p, pr in enumerate(prompts)], N)
    os.replace(path + ".tmp", path)
    with h5py.File(path) as f:
        for k in f:
            if isinstance(f[k], h5py.Group) and "out" in f[k]:
                print(k, [list(r[: n]) for r, n in zip(f[k]["out"][:], f[k]["len"][:])])


if __name__ == "__main__":
    main(sys.argv[1])
