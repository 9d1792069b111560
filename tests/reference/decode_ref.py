"""decode_ref.py — reference scores of model/decode.h's scoring rules.

Re-implements, in PyTorch/NumPy, what the reference code bases do on fixed
random logits and states, and writes inputs and expected outputs to HDF5
for test_decode_ref.c:
  - Hugging Face's Temperature / TopK / TopP / RepetitionPenalty logits
    processors, argmax, inverse-CDF sampling with given uniforms;
  - SimCTG's ranking_fast with HF's padding mask (contrastive search);
  - AdaCAD's get_jsd (its conditional clamps; also peaked 50257-entry
    rows) and the CAD combination; the weighted N-variant sum;
  - HF's DoLa: candidate layer sets, _dola_select_contrast per row, the
    layers' JSDs, also on large-magnitude early-exit logits;
  - HF's BeamSearchScorer (the version the ContrastiveDecoding repo
    carries) driven by fixed per-step log-probabilities, plain and with
    the contrastive-decoding candidate rule (expert vs amateur).
Usage: decode_ref.py OUT.h5
"""
import math
import sys

import h5py
import numpy as np
import torch
import torch.nn.functional as F

rng = np.random.default_rng(20261128)
NEG = -float("inf")


def logits(n, v, scale=3.0):
    return (rng.standard_normal((n, v)) * scale).astype(np.float32)


# ---- HF processors (re-implemented from their documented semantics) ----------
def hf_top_k(x, k, min_keep=1):
    x = torch.tensor(x)
    k = min(max(k, min_keep), x.shape[-1])
    kth = torch.topk(x, k)[0][..., -1, None]
    return x.masked_fill(x < kth, NEG).numpy()


def hf_top_p(x, p, min_keep=1):
    x = torch.tensor(x)
    s, idx = torch.sort(x, descending=False, stable=True)
    cum = s.double().softmax(-1).cumsum(-1)
    rm = cum <= (1 - p)
    rm[..., -min_keep:] = False
    mask = rm.scatter(1, idx, rm)
    return x.masked_fill(mask, NEG).numpy()


def hf_rep(x, ids, pen):
    x = torch.tensor(x)[None]
    ids = torch.tensor(ids, dtype=torch.long)[None]
    s = torch.gather(x, 1, ids)
    s = torch.where(s < 0, s * pen, s / pen)
    return x.scatter(1, ids, s)[0].numpy()


def sample_ref(x, u):
    p = np.exp(x.astype(np.float64) - x.max())
    c = np.cumsum(p)
    return int(np.searchsorted(c, u * c[-1], side="right"))


# ---- SimCTG ranking with HF's mask ---------------------------------------------
def ranking(ctx_h, cand_h, probs, mask, alpha):
    ch = torch.tensor(ctx_h, dtype=torch.float64)[None]  # [1,S,C]
    nh = torch.tensor(cand_h, dtype=torch.float64)[:, None]  # [K,1,C]
    k = nh.shape[0]
    ch = ch.expand(k, -1, -1)
    nc = ch / ch.norm(dim=2, keepdim=True)
    nn_ = nh / nh.norm(dim=2, keepdim=True)
    cos = torch.matmul(nc, nn_.transpose(1, 2)).squeeze(-1)  # [K,S]
    m = torch.tensor(mask, dtype=torch.float64)[None].expand(k, -1)
    cos = cos + (1 - m) * torch.finfo(torch.float64).min
    pen, _ = cos.max(-1)
    sc = (1.0 - alpha) * torch.tensor(probs, dtype=torch.float64) - alpha * pen
    return sc.numpy(), int(sc.argmax())


# ---- AdaCAD's JSD (get_jsd, natural log, batchmean over one row) ---------------
# get_jsd (HanNight/AdaCAD group_decode_fileio_adacad.py) clamps only when a
# tensor has a zero: m = log(clamp_min(0.5(p+q), 1e-9)) if (p+q == 0).any(),
# p = p.clamp_min(1e-9) if (p <= 0).any(), q likewise. It runs on the
# model's float32 logits; here the math is float64 and the zero tests are
# float32's (p rounded to float32 == 0), as foil's decode_jsd.
def adacad_jsd(a, b):
    p = F.softmax(torch.tensor(a, dtype=torch.float64)[None], -1)
    q = F.softmax(torch.tensor(b, dtype=torch.float64)[None], -1)
    if ((p.float() + q.float()) == 0).any():
        m = (0.5 * (p + q)).clamp_min(1e-9).log()
    else:
        m = (0.5 * (p + q)).log()
    if torch.any(p.float() <= 0):
        p = p.clamp_min(1e-9)
    if torch.any(q.float() <= 0):
        q = q.clamp_min(1e-9)
    return float(0.5 * (F.kl_div(m, p, reduction="batchmean") + F.kl_div(m, q, reduction="batchmean")))


def get_jsd_f32(a, b):
    """get_jsd verbatim, on float32 logits (what the reference computes)."""
    p = F.softmax(torch.tensor(a)[None], dim=-1)
    q = F.softmax(torch.tensor(b)[None], dim=-1)
    if ((p + q) == 0).any():
        m = (0.5 * (p + q)).clamp_min(1e-9).log()
    else:
        m = (0.5 * (p + q)).log()
    if torch.any(p <= 0):
        p = p.clamp_min(1e-9)
    if torch.any(q <= 0):
        q = q.clamp_min(1e-9)
    return float(0.5 * (F.kl_div(m, p, reduction="batchmean", log_target=False)
                        + F.kl_div(m, q, reduction="batchmean", log_target=False)))


# ---- DoLa (HF _dola_decoding's rules) -------------------------------------------
def dola_layers(L, kind):
    start = 2 if L > 2 else (1 if L == 2 else 0)  # tied embeddings
    if kind == "low":
        if start == L // 2:
            return [start]
        return list(range(start, L // 2, 2)) if L <= 40 else list(range(start, 20, 2))
    if kind == "high":
        return list(range(L // 2, L, 2)) if L <= 40 else list(range(L - 20, L, 2))
    return [i for i in kind if i < L]


def relative_top(scores, base, rel=0.1, min_keep=1):
    sn = scores.log_softmax(-1)
    bn = base.log_softmax(-1)
    srt, _ = torch.sort(sn, descending=True)
    min_th = srt[..., min_keep - 1]
    th = torch.min(min_th, sn.max(-1).values + np.log(rel)).unsqueeze(-1)
    bn[sn < th] = -1e-3
    sn[sn < th] = NEG
    return sn, bn


def dola_js64(cands, final):
    """HF's per-layer "JSD" 0.5·(KL(m||p) + KL(m||q)) summed over the
    vocabulary (HF's .mean(-1) divides by V: same argmax), in float64 with
    the exact log_softmax; and w = sum m·(|log p| + |log q|), the scale of
    kernels.h's error bound for softmax_mix_kl."""
    fin = torch.tensor(final, dtype=torch.float64)
    lf = F.log_softmax(fin, -1)
    js, ws = [], []
    for c in cands:
        lc = F.log_softmax(torch.tensor(c, dtype=torch.float64), -1)
        m = 0.5 * (lf.exp() + lc.exp())
        t = torch.where(m > 0, m * (2 * m.log() - lf - lc), torch.zeros_like(m))
        js.append(float(0.5 * t.sum()))
        ws.append(float(torch.where(m > 0, m * (lf.abs() + lc.abs()), torch.zeros_like(m)).sum()))
    return np.array(js), np.array(ws)


def dola_select_floor87(cands, final):
    """The argmax foil took before, with log-probabilities floored at -87."""
    lf = F.log_softmax(torch.tensor(final, dtype=torch.float64), -1).clamp_min(-87)
    js = []
    for c in cands:
        lc = F.log_softmax(torch.tensor(c, dtype=torch.float64), -1).clamp_min(-87)
        m = 0.5 * (lf.exp() + lc.exp())
        js.append(float((m * (2 * m.log() - lf - lc)).sum()))
    return int(np.argmax(js))


def dola_select(cands, final):
    fin = torch.tensor(final)[None]
    st = torch.tensor(cands)[:, None]  # [nc,1,V]
    sm = F.softmax(fin, -1)
    sp = F.softmax(st, -1)
    avg = 0.5 * (sm[None] + sp)
    kl1 = F.kl_div(F.log_softmax(fin, -1)[None], avg, reduction="none").mean(-1)
    kl2 = F.kl_div(F.log_softmax(st, -1), avg, reduction="none").mean(-1)
    js = (0.5 * (kl1 + kl2)).mean(-1)
    sel = int(js.argmax())
    f, b = relative_top(fin.clone(), torch.tensor(cands[sel])[None].clone())
    return sel, (f - b)[0].numpy()


# ---- BeamSearchScorer / BeamHypotheses (ContrastiveDecoding's HF) ---------------
class Hyps:
    def __init__(self, nb, lp, early):
        self.nb, self.lp, self.early = nb, lp, early
        self.beams, self.worst = [], 1e9

    def add(self, hyp, s, eos):
        score = s / (len(hyp) ** self.lp)
        if len(self.beams) < self.nb or score > self.worst:
            self.beams.append((score, hyp, eos))
            if len(self.beams) > self.nb:
                srt = sorted([(x, i) for i, (x, _, _) in enumerate(self.beams)])
                del self.beams[srt[0][1]]
                self.worst = srt[1][0]
            else:
                self.worst = min(score, self.worst)

    def is_done(self, best, cur_len):
        if len(self.beams) < self.nb:
            return False
        if self.early:
            return True
        return self.worst >= best / cur_len ** self.lp


def beam_run(prompt, steps_logits, nb, eos, lp, early, max_gen, cd=None):
    """steps_logits[t][slot] -> expert logits for running beam slot `slot`
    at step t (a 'model' that depends on the slot only). cd: None or
    (ama_logits same shape, alpha, beta, tau)."""
    V = steps_logits.shape[-1]
    hyps = Hyps(nb, lp, early)
    beams = [list(prompt) for _ in range(nb)]
    bs = torch.zeros(nb, dtype=torch.float32)
    bs[1:] = -1e9
    done = False
    log = []
    for t in range(max_gen):
        z = torch.tensor(steps_logits[t])
        e = F.log_softmax(z.double(), -1).float()
        if cd is None:
            tot = (e + bs[:, None]).view(-1)
            sc, idx = torch.topk(tot, 2 * nb, sorted=True)
            # foil orders equal scores by flat index
            order = sorted(range(2 * nb), key=lambda i: (-float(sc[i]), int(idx[i])))
            sc, idx = sc[order], idx[order]
        else:
            za, alpha, beta, tau, min_keep = cd
            a = F.log_softmax(torch.tensor(za[t]).double(), -1).float() / tau
            a[a == NEG] = float("inf")
            srt, _ = torch.sort(e, descending=True)
            th = torch.min(srt[:, min_keep - 1], e.max(-1).values + np.log(alpha)).unsqueeze(-1)
            ep = e.masked_fill(e < th, NEG)
            full = ep + bs[:, None]
            keep = full.view(-1) if t == 0 else e.view(-1)
            kv, idx = torch.topk(keep, 2 * nb, sorted=True)
            order = sorted(range(2 * nb), key=lambda i: (-float(kv[i]), int(idx[i])))
            idx = idx[order]
            sc = full.view(-1)[idx] - beta * a.view(-1)[idx]
            order = sorted(range(2 * nb), key=lambda i: -float(sc[i]))  # stable
            sc, idx = sc[order], idx[order]
        nbs, src, nxt = [], [], []
        for r in range(2 * nb):
            b, tok = int(idx[r]) // V, int(idx[r]) % V
            if tok == eos:
                if r >= nb:
                    continue
                hyps.add(beams[b], float(sc[r]), True)
            else:
                nbs.append(float(sc[r]))
                src.append(b)
                nxt.append(tok)
            if len(nbs) == nb:
                break
        log.append((src[:], nxt[:]))
        done = hyps.is_done(float(sc[0]), len(beams[0]))
        beams = [beams[src[i]] + [nxt[i]] for i in range(nb)]
        bs = torch.tensor(nbs, dtype=torch.float32)
        if done:
            break
    if not done:
        for i in range(nb):
            hyps.add(beams[i], float(bs[i]), False)
    best = sorted(hyps.beams, key=lambda x: x[0])[-1]
    out = best[1][len(prompt):] + ([eos] if best[2] else [])
    return out, best[0], log


def main(path):
    V = 50
    with h5py.File(path, "w") as f:
        # argmax with ties
        x = logits(8, V)
        x[1, 7] = x[1, 30] = x[1].max() + 1
        x[3, :] = 0.0
        g = f.create_group("argmax")
        g["x"] = x
        g["ids"] = np.argmax(x, -1).astype(np.int32)

        # temperature + top-k (ties at the k-th value), top-p
        x = logits(6, V)
        x[2, 10] = x[2, 11] = x[2, 12] = 9.0  # three-way tie, k = 2
        for n, (k, mk) in enumerate([(5, 1), (1, 1), (2, 1), (3, 8), (V + 5, 1), (10, 1)]):
            g = f.create_group(f"topk{n}")
            g["x"] = x[n : n + 1]
            g.attrs["k"], g.attrs["min_keep"], g.attrs["t"] = k, mk, 0.7
            g["y"] = hf_top_k(x[n : n + 1] / np.float32(0.7), k, mk)
        for n, (p, mk) in enumerate([(0.9, 1), (0.5, 1), (0.05, 1), (0.05, 3), (0.999, 1)]):
            xx = logits(4, V, 2.0)
            g = f.create_group(f"topp{n}")
            g["x"] = xx
            g.attrs["p"], g.attrs["min_keep"] = p, mk
            g["y"] = hf_top_p(xx, p, mk)

        # repetition penalty
        x = logits(1, V)[0]
        ids = rng.integers(0, V, 30).astype(np.int32)
        g = f.create_group("rep")
        g["x"], g["ids"], g["y"] = x, ids, hf_rep(x, ids, 1.2)
        g.attrs["penalty"] = 1.2

        # sampling with given uniforms, after top-p
        x = hf_top_p(logits(16, V, 1.5), 0.8)
        u = rng.random(16).astype(np.float32)
        g = f.create_group("sample")
        g["x"], g["u"] = x, u
        g["ids"] = np.array([sample_ref(x[n], float(u[n])) for n in range(16)], dtype=np.int32)

        # contrastive search
        for n, (K, S, C, alpha) in enumerate([(5, 12, 16, 0.6), (4, 9, 8, 0.0), (3, 7, 8, 1.0)]):
            ctx = rng.standard_normal((S, C)).astype(np.float32)
            cand = rng.standard_normal((K, C)).astype(np.float32)
            cand[1] = ctx[3] * 2 + 0.01 * cand[1]  # near-duplicate of a context state
            cand[0] = ctx[S - 1] * 0.5  # duplicate of a PADDED position (masked)
            mask = np.ones(S, dtype=np.uint8)
            mask[S - 1] = 0
            mask[0] = 0
            z = logits(1, V)[0]
            p = F.softmax(torch.tensor(z, dtype=torch.float64), -1).numpy()
            top = np.argsort(-p, kind="stable")[:K]
            probs = p[top].astype(np.float32)
            sc, sel = ranking(ctx, cand, probs, mask, alpha)
            g = f.create_group(f"cs{n}")
            g["ctx"], g["cand"], g["mask"], g["probs"] = ctx, cand, mask, probs
            g["scores"], g.attrs["sel"], g.attrs["alpha"] = sc, sel, alpha

        # JSD, CAD, AdaCAD, combination
        for n in range(4):
            a, b = logits(1, V, 1.0 + n)[0], logits(1, V, 2.0)[0]
            if n == 3:
                a = b.copy()  # identical: JSD 0, the floor decides
            g = f.create_group(f"cad{n}")
            g["zc"], g["zn"] = a, b
            js = adacad_jsd(a, b)
            g.attrs["jsd"] = js
            fl = 0.05 if n >= 2 else 0.0
            al = max(js, fl) if fl > 0 else js
            g.attrs["floor"], g.attrs["alpha_ada"] = fl, al
            g["ada"] = ((1 + al) * a.astype(np.float64) - al * b).astype(np.float32)
            g["cad"] = ((1 + 0.5) * a.astype(np.float64) - 0.5 * b).astype(np.float32)
        # AdaCAD's JSD on peaked 50257-entry rows (the review's case): ~50k
        # probabilities below 1e-9 and none 0, so get_jsd clamps nothing;
        # then -inf logits (zeros: the clamps apply)
        for n in range(3):
            a = (rng.standard_normal(50257) * 3.0).astype(np.float32)
            b = (rng.standard_normal(50257) * 2.0).astype(np.float32)
            a[int(rng.integers(50257))] += 25.0
            if n == 1:
                a[7] = b[7] = NEG
            if n == 2:
                a[rng.integers(0, 50257, 40)] = NEG
            js = adacad_jsd(a, b)
            g = f.create_group(f"jsd_big{n}")
            g["zc"], g["zn"] = a, b
            g.attrs["jsd"], g.attrs["jsd_f32"] = js, get_jsd_f32(a, b)
            g.attrs["tiny"] = int((F.softmax(torch.tensor(a, dtype=torch.float64), -1) < 1e-9).sum())
        z = logits(3, V)
        w = np.array([1.5, -0.25, -0.25], dtype=np.float32)
        g = f.create_group("combine")
        g["z"], g["w"], g["y"] = z, w, (w[:, None].astype(np.float64) * z).sum(0).astype(np.float32)

        # DoLa
        g = f.create_group("dola_layers")
        rows = []
        for L in [1, 2, 3, 4, 5, 6, 12, 24, 48]:
            for kind in ["low", "high"]:
                lay = dola_layers(L, kind)
                rows.append([L, 0 if kind == "low" else 1, len(lay)] + lay + [-1] * (12 - len(lay)))
        g["rows"] = np.array(rows, dtype=np.int32)
        for n, L in enumerate([6, 12]):
            cand_layers = dola_layers(L, "high")
            final = logits(1, V, 3.0)[0]
            cands = np.stack([logits(1, V, 1.0 + 0.5 * i)[0] for i in range(len(cand_layers))])
            sel, contrast = dola_select(cands, final)
            ids = rng.integers(0, V, 12).astype(np.int32)
            g = f.create_group(f"dola{n}")
            g["final"], g["cands"], g["ids"] = final, cands, ids
            g.attrs["sel"] = sel
            g["contrast"] = contrast
            g["penalized"] = hf_rep(contrast, ids, 1.2)
            g["js"], g["w"] = dola_js64(cands, final)
        # large-magnitude early exits (no final norm: log-probabilities far
        # below -87). dola2: the review's case, HF picks layer A (0) where
        # a floor at -87 picked B; dola3/4: V = 1000, layers with logit
        # scales up to 800 (log-probabilities down to ~-5000)
        big = [(np.array([5, 0, 0, 0], np.float32),
                np.array([[0, 1000, 990, 990], [0, 100, 0, 0]], np.float32))]
        for n in range(2):
            final = logits(1, 1000, 3.0)[0]
            cands = np.stack([logits(1, 1000, s)[0] for s in ([1, 50, 200, 400, 800] if n == 0 else [400, 30, 800, 5])])
            big.append((final, cands))
        for n, (final, cands) in enumerate(big):
            sel, contrast = dola_select(cands, final)
            js, w = dola_js64(cands, final)
            assert sel == int(np.argmax(js)), "float32 and float64 HF pick different layers"
            if n == 0:
                assert dola_select_floor87(cands, final) != sel, "the review's case no longer separates"
            g = f.create_group(f"dola{n + 2}")
            g["final"], g["cands"] = final, cands
            g["ids"] = rng.integers(0, len(final), 3).astype(np.int32)
            g.attrs["sel"] = sel
            g["contrast"] = contrast
            g["penalized"] = hf_rep(contrast, g["ids"][()], 1.2)
            g["js"], g["w"] = js, w

        # beam search (plain and contrastive decoding)
        for n, (nb, eos, lp, early, T, cd) in enumerate(
            [(3, 4, 1.0, False, 8, False), (4, 4, 1.0, True, 10, False), (2, 7, 0.6, False, 12, False),
             (3, 4, 1.0, False, 10, True), (2, 4, 1.0, False, 9, True)]):
            prompt = [int(t) for t in rng.integers(0, V, 5)]
            zs = (rng.standard_normal((T, nb, V)) * 2.5).astype(np.float32)
            zs[:, :, eos] += np.linspace(-2, 4, T, dtype=np.float32)[:, None]  # EOS likelier later
            za = (rng.standard_normal((T, nb, V)) * 2.5).astype(np.float32)
            cdargs = (za, 0.1, 1.0, 0.5, 2 if nb > 1 else 1) if cd else None
            out, score, log = beam_run(prompt, zs, nb, eos, lp, early, T, cdargs)
            g = f.create_group(f"beam{n}")
            g["prompt"], g["z"], g["za"] = np.array(prompt, dtype=np.int32), zs, za
            g.attrs["nb"], g.attrs["eos"], g.attrs["lp"], g.attrs["early"] = nb, eos, lp, int(early)
            g.attrs["cd"], g.attrs["score"], g.attrs["steps"] = int(cd), score, len(log)
            g["out"] = np.array(out, dtype=np.int32)
            g["src"] = np.array([s for s, _ in log], dtype=np.int32)
            g["next"] = np.array([t for _, t in log], dtype=np.int32)
    print(f"wrote {path}")


if __name__ == "__main__":
    main(sys.argv[1])
