//! The tokenizer vocabularies are kept compressed in the repository
//! (`data/tokenizers/*.bpe.zst`, written by `scripts/build-vocab.py`) and compiled
//! into the binary front-coded (below), which `estimate` undoes in one pass of
//! about a millisecond: a zstd decompression (about 30 ms of CPU and 2.4 MB for
//! `o200k_base`) at run time would be most of an `estimate`, and the vocabularies
//! as `build-vocab.py` lays them out would be 3.5 MB of the binary instead of 1.8 MB.
//!
//! Layout (`src/cost/bpe.rs` reads it): the tokens in byte order, as
//!     b"BPF1", n (u32 LE), the tokens' total length in bytes (u32 LE),
//!     entries[n]  u32 LE: the token's rank (bits 0-17), how many of its first
//!                 bytes it shares with the token before it (bits 18-24), and
//!                 how many bytes follow those, less one (bits 25-31)
//!     suffixes    those bytes, token after token
//! A token never shares all its bytes with the one before it (that one would be
//! a prefix of it, so sort after it), and tokens are 1 to 128 bytes long.

use std::io::Read;
use std::path::PathBuf;

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    for name in ["o200k_base", "cl100k_base"] {
        let source = format!("data/tokenizers/{name}.bpe.zst");
        println!("cargo::rerun-if-changed={source}");
        let compressed =
            std::fs::read(&source).unwrap_or_else(|e| panic!("cannot read {source}: {e}"));
        let mut data = Vec::new();
        ruzstd::decoding::StreamingDecoder::new(compressed.as_slice())
            .unwrap_or_else(|e| panic!("{source} is not zstd: {e}"))
            .read_to_end(&mut data)
            .unwrap_or_else(|e| panic!("{source} does not decompress: {e}"));
        let target = out.join(format!("{name}.bpf"));
        std::fs::write(&target, front_code(&data, &source))
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", target.display()));
    }
}

/// `build-vocab.py`'s layout (`BPE1`: ranks, lengths, the tokens one after the
/// other) front-coded as described above.
fn front_code(data: &[u8], source: &str) -> Vec<u8> {
    let word = |at: usize| u32::from_le_bytes(data[at..at + 4].try_into().unwrap());
    assert_eq!(&data[..4], b"BPE1", "{source}: the header");
    let (n, arena_len) = (word(4) as usize, word(8) as usize);
    let lengths_at = 12 + 4 * n;
    let arena_at = lengths_at + n;
    assert_eq!(data.len(), arena_at + arena_len, "{source}: the length");
    assert!(
        n < 1 << 18,
        "{source}: more tokens than 18 bits of rank hold"
    );
    let mut out = Vec::with_capacity(data.len());
    out.extend_from_slice(b"BPF1");
    out.extend_from_slice(&data[4..12]);
    let mut suffixes = Vec::new();
    let (mut at, mut previous): (usize, &[u8]) = (arena_at, &[]);
    for i in 0..n {
        let len = usize::from(data[lengths_at + i]);
        let token = &data[at..at + len];
        at += len;
        let rank = word(12 + 4 * i);
        assert!(rank < 1 << 18, "{source}: a rank over 18 bits");
        assert!(
            previous < token,
            "{source}: the tokens are not in byte order"
        );
        let shared = token
            .iter()
            .zip(previous)
            .take_while(|(a, b)| a == b)
            .count();
        let rest = len - shared;
        assert!(
            shared < 128 && (1..=128).contains(&rest),
            "{source}: a token longer than 128 bytes"
        );
        let entry =
            rank | u32::try_from(shared).unwrap() << 18 | u32::try_from(rest - 1).unwrap() << 25;
        out.extend_from_slice(&entry.to_le_bytes());
        suffixes.extend_from_slice(&token[shared..]);
        previous = token;
    }
    out.extend_from_slice(&suffixes);
    out
}
