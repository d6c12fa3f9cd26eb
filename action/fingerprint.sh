#!/usr/bin/env bash
# Prints `hash=...` to $GITHUB_OUTPUT: a digest of everything that goes into the
# byok-flow binary, so the action's cache keeps one build per version of the
# source (a tag or branch that moves gets a fresh build, not a stale binary).
set -euo pipefail
cd "$GITHUB_ACTION_PATH"
if command -v sha256sum >/dev/null 2>&1; then
  digest() { sha256sum | cut -c1-32; }
else
  digest() { shasum -a 256 | cut -c1-32; }
fi
hash=$(
  {
    cat Cargo.toml Cargo.lock
    find src data -type f -print | LC_ALL=C sort | while IFS= read -r file; do
      printf '%s\n' "$file"
      cat "$file"
    done
  } | digest
)
echo "hash=$hash" >> "$GITHUB_OUTPUT"
