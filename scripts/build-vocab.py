#!/usr/bin/env python3
"""Write data/tokenizers/ENCODING.bpe.zst: an OpenAI BPE vocabulary in the form
byok-flow reads without building anything (src/cost/bpe.rs). build.rs decompresses
it when byok-flow is built and compiles it in front-coded (build.rs says how).

Usage:
    python3 scripts/build-vocab.py o200k_base.tiktoken[.gz] data/tokenizers/o200k_base.bpe.zst
    python3 scripts/build-vocab.py cl100k_base.tiktoken[.gz] data/tokenizers/cl100k_base.bpe.zst

The input is OpenAI's published file (openaipublic.blob.core.windows.net/encodings/
ENCODING.tiktoken: one `base64(token) rank` a line); the `tiktoken-rs` and `bpe-openai`
crates ship copies. Needs the `zstd` command.

Layout, before zstd: the tokens in byte order (so a lookup is a binary search,
and nothing is built when the file is read), as
    b"BPE1", n (u32 LE), arena length (u32 LE),
    ranks[n]    u32 LE: the rank of each token
    lengths[n]  u8: each token's length in bytes (tokens are 1 to 255 bytes)
    arena       the tokens' bytes, one after the other
"""

import base64
import gzip
import struct
import subprocess
import sys


def main():
    source, target = sys.argv[1], sys.argv[2]
    opener = gzip.open if source.endswith(".gz") else open
    with opener(source, "rb") as f:
        pairs = []
        for line in f.read().splitlines():
            if line.strip():
                token, rank = line.split()
                pairs.append((int(rank), base64.b64decode(token)))
    pairs.sort()
    tokens = [t for _, t in pairs]
    if len(set(tokens)) != len(tokens):
        sys.exit("a token appears twice")
    if not all(1 <= len(t) <= 255 for t in tokens):
        sys.exit("a token is empty or longer than 255 bytes")
    pairs.sort(key=lambda pair: pair[1])
    n = len(pairs)
    arena = b"".join(t for _, t in pairs)
    raw = (
        b"BPE1"
        + struct.pack(f"<II{n}I", n, len(arena), *(r for r, _ in pairs))
        + bytes(len(t) for _, t in pairs)
        + arena
    )
    compressed = subprocess.run(
        ["zstd", "-19", "-q", "-c"], input=raw, check=True, capture_output=True
    ).stdout
    with open(target, "wb") as f:
        f.write(compressed)
    print(f"{target}: {n} tokens, {len(raw)} bytes, {len(compressed)} compressed", file=sys.stderr)


if __name__ == "__main__":
    main()
