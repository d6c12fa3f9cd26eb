#!/usr/bin/env python3
"""Write tests/data/tokens/counts.json: OpenAI's own tiktoken counts of the corpus.

Usage:
    pip install tiktoken
    python3 scripts/tiktoken-reference.py > tests/data/tokens/counts.json

No network is needed: Python tiktoken looks for each BPE file in
TIKTOKEN_CACHE_DIR under the sha1 hex of its download URL (tiktoken/load.py,
`read_file_cached`) and checks it against the sha256 it expects, so this script
copies the BPE files that the tiktoken-rs crate ships (its `assets/` folder, found
in cargo's registry, or given as ASSETS_DIR; byok-flow no longer depends on that
crate, so fetch it once with `cargo info tiktoken-rs@0.12.1` or any crate that
depends on it) into a temporary cache under those names. A file that differed from OpenAI's would fail that check (and the script
would then try the network and fail), so the counts are the reference ones.

For each corpus file: the `encode_ordinary` count in o200k_base and cl100k_base
(ordinary: text that looks like `<|endoftext|>` is sent and billed as text).
For each chat case: the count of the OpenAI cookbook's `num_tokens_from_messages`
("How to count tokens with tiktoken"): 3 per message, plus role and content, plus 3
to prime the reply.
"""

import glob
import hashlib
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "tests/data/tokens/corpus"
URLS = {
    "o200k_base": "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken",
    "cl100k_base": "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken",
}
# (model, system file or None, prompt file): chat requests whose framing is checked.
CHATS = [
    ("gpt-4o", None, "research-prompt.txt"),
    ("gpt-4o", "english-prose.txt", "research-prompt.txt"),
    ("gpt-4.1-mini", "technical-docs.md", "rust.rs"),
    ("o3", None, "chinese.txt"),
    ("gpt-5", "special-tokens.txt", "emoji-and-symbols.txt"),
    ("gpt-4-turbo", "german.txt", "python.py"),
    ("gpt-3.5-turbo", None, "data.json"),
]


def assets_dir():
    if os.environ.get("ASSETS_DIR"):
        return Path(os.environ["ASSETS_DIR"])
    home = Path(os.environ.get("CARGO_HOME", Path.home() / ".cargo"))
    found = sorted(glob.glob(str(home / "registry/src/*/tiktoken-rs-*/assets")))
    if not found:
        sys.exit("tiktoken-rs is not in cargo's registry: fetch it (see the docstring), or set ASSETS_DIR")
    return Path(found[-1])


def main():
    cache = tempfile.mkdtemp(prefix="tiktoken-cache-")
    for name, url in URLS.items():
        key = hashlib.sha1(url.encode()).hexdigest()
        shutil.copyfile(assets_dir() / f"{name}.tiktoken", os.path.join(cache, key))
    os.environ["TIKTOKEN_CACHE_DIR"] = cache
    import tiktoken  # after the cache dir is set

    encodings = {name: tiktoken.get_encoding(name) for name in URLS}
    files = {}
    for path in sorted(CORPUS.iterdir()):
        text = path.read_bytes().decode("utf-8")
        files[path.name] = {name: len(enc.encode_ordinary(text)) for name, enc in encodings.items()}
    chats = []
    for model, system, prompt in CHATS:
        enc = tiktoken.encoding_for_model(model)
        messages = []
        if system:
            messages.append({"role": "system", "content": (CORPUS / system).read_text("utf-8")})
        messages.append({"role": "user", "content": (CORPUS / prompt).read_text("utf-8")})
        tokens = 3
        for message in messages:
            tokens += 3 + sum(len(enc.encode_ordinary(v)) for v in message.values())
        chats.append({"model": model, "encoding": enc.name, "system": system, "prompt": prompt, "tokens": tokens})
    json.dump(
        {"tiktoken": tiktoken.__version__, "files": files, "chats": chats},
        sys.stdout,
        indent=1,
        ensure_ascii=False,
    )
    sys.stdout.write("\n")
    shutil.rmtree(cache)


if __name__ == "__main__":
    main()
