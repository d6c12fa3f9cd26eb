#!/usr/bin/env python3
"""Measure the "other models" approximation (o200k_base x 1.1) against real
tokenizers that can be had offline: Mistral's, shipped inside the
`mistral-common` package (Tekken, and the older SentencePiece vocabulary).

Usage:
    pip install tiktoken "mistral-common[sentencepiece]"
    python3 scripts/measure-approximation.py

Prints, per corpus file, the o200k_base count (from tests/data/tokens/counts.json,
OpenAI's reference) and each Mistral tokenizer's count and ratio to o200k_base,
then the spread. The README quotes the result.
"""

import json
import os
from pathlib import Path

import mistral_common
from mistral_common.tokens.tokenizers.sentencepiece import SentencePieceTokenizer
from mistral_common.tokens.tokenizers.tekken import Tekkenizer

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(os.path.dirname(mistral_common.__file__)) / "data"
TOKENIZERS = {
    "tekken_240911": lambda: Tekkenizer.from_file(DATA / "tekken_240911.json"),
    "spm_v3": lambda: SentencePieceTokenizer(str(DATA / "mistral_instruct_tokenizer_240323.model.v3")),
}


def main():
    counts = json.loads((ROOT / "tests/data/tokens/counts.json").read_text())["files"]
    tokenizers = {name: make() for name, make in TOKENIZERS.items()}
    ratios = {name: [] for name in tokenizers}
    print(f"{'file':24} {'o200k':>6} " + " ".join(f"{n:>14} {'ratio':>5}" for n in tokenizers))
    for name in sorted(counts):
        o200k = counts[name]["o200k_base"]
        if o200k == 0:
            continue
        text = (ROOT / "tests/data/tokens/corpus" / name).read_text("utf-8")
        cells = []
        for tname, tok in tokenizers.items():
            n = len(tok.encode(text, bos=False, eos=False))
            ratios[tname].append((n / o200k, name))
            cells.append(f"{n:>14} {n / o200k:5.2f}")
        print(f"{name:24} {o200k:>6} " + " ".join(cells))
    for tname, rs in ratios.items():
        rs.sort()
        middle = rs[len(rs) // 2][0]
        print(f"{tname}: median {middle:.2f}, min {rs[0][0]:.2f} ({rs[0][1]}), max {rs[-1][0]:.2f} ({rs[-1][1]})")


if __name__ == "__main__":
    main()
