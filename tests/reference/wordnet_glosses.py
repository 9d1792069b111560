"""wordnet_glosses.py — real English sentences for the pretrained-model
references and benchmarks: the glosses of WordNet's nouns as Debian's
wordnet-base installs them, in file order.

    noun_glosses(min_chars)  every gloss longer than min_chars
    spread(items, n)         n of them taken every k-th, k = len // n
"""
WORDNET = "/usr/share/wordnet/data.noun"


def noun_glosses(min_chars):
    out = []
    with open(WORDNET, encoding="utf-8") as f:
        for line in f:
            if line.startswith("  ") or "|" not in line:
                continue
            g = line.split("|", 1)[1].strip()
            if len(g) > min_chars:
                out.append(g)
    return out


def spread(items, n):
    return items[::max(1, len(items) // n)][:n]
