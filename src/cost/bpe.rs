//! Exact `OpenAI` token counts, as tiktoken's `encode_ordinary` makes them, with
//! little to build: the vocabulary is compiled in, sorted by bytes and
//! front-coded (build.rs), so loading it is one pass that writes the tokens out
//! one after the other (about a millisecond), and a lookup is a binary search
//! (no hash map of 200,000 tokens to fill, which was most of the time and memory
//! of loading a BPE; no decompression, which was most of the rest).
//! The files come from `OpenAI`'s published ones by `scripts/build-vocab.py`.
//!
//! Counting is tiktoken's: split the text with the encoding's pattern, then merge
//! each piece's adjacent parts, lowest rank first, until no pair is a token.
//! The patterns are tiktoken's, with its `\s+(?!\S)` (a look-ahead the `regex`
//! crates lack) written as `\s+\s` less its last character, or `\s+$`, as the
//! `bpe-openai` crate does (github.com/github/rust-gems, MIT).

use std::sync::OnceLock;

use regex_automata::meta::Regex;
use regex_automata::{Anchored, Input};

const O200K_BASE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/o200k_base.bpf"));
const CL100K_BASE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/cl100k_base.bpf"));

/// An `OpenAI` vocabulary byok-flow counts with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vocabulary {
    O200kBase,
    Cl100kBase,
}

impl Vocabulary {
    /// The tokenizer, built on first use (the tokens written out, its pattern's
    /// compilation, and two tables of the vocabulary's first two bytes: a few
    /// milliseconds).
    pub fn get(self) -> &'static Bpe {
        static O200K: OnceLock<Bpe> = OnceLock::new();
        static CL100K: OnceLock<Bpe> = OnceLock::new();
        match self {
            Vocabulary::O200kBase => O200K.get_or_init(|| {
                let words = [
                    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?",
                    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?",
                    r"\p{N}{1,3}",
                    r" ?[^\s\p{L}\p{N}]+[\r\n/]*",
                    r"\s*[\r\n]+",
                    r"\s+$",
                ]
                .join("|");
                Bpe::new(O200K_BASE, &words)
            }),
            Vocabulary::Cl100kBase => CL100K.get_or_init(|| {
                Bpe::new(
                    CL100K_BASE,
                    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+$",
                )
            }),
        }
    }
}

/// The bits of a vocabulary entry that hold the token's rank (build.rs).
const RANK: u32 = (1 << 18) - 1;

/// A byte-pair encoding with its splitting pattern.
pub struct Bpe {
    /// The tokens' bytes (in byte order), one after the other.
    arena: Vec<u8>,
    /// Where each token (in byte order) starts in `arena`; one more at the end.
    starts: Vec<u32>,
    /// Each token's entry in the compiled-in file (build.rs): its rank is the
    /// low 18 bits.
    entries: &'static [u8],
    /// The tokens (in byte order) of two bytes or more that start with bytes
    /// `a, b` are `prefix[i]..prefix[i + 1]`, where `i` is `a << 8 | b`.
    prefix: Vec<u32>,
    /// The rank of each two-byte token, `u32::MAX` for a pair that is none: most
    /// lookups of a merge are of two bytes.
    pairs: Vec<u32>,
    /// The pattern, then `\s+\s` (whose last character is a look-ahead), then `\s+`.
    split: Regex,
}

impl Bpe {
    /// Reads a vocabulary file compiled into the binary: a bad one is a build
    /// defect, so this panics (the tests read both).
    fn new(data: &'static [u8], pattern: &str) -> Bpe {
        assert_eq!(&data[..4], b"BPF1", "the compiled-in vocabulary's header");
        let word = |at: usize| u32::from_le_bytes(data[at..at + 4].try_into().unwrap());
        let (n, arena_len) = (word(4) as usize, word(8) as usize);
        let entries = &data[12..12 + 4 * n];
        let mut suffixes = &data[12 + 4 * n..];
        let mut arena: Vec<u8> = Vec::with_capacity(arena_len);
        let mut starts = Vec::with_capacity(n + 1);
        let mut prefix = vec![0; (1 << 16) + 1];
        let mut pairs = vec![u32::MAX; 1 << 16];
        let mut previous = 0;
        for (i, end) in (0..n).zip(1..) {
            let entry = u32::from_le_bytes(entries[4 * i..4 * i + 4].try_into().unwrap());
            let shared = (entry >> 18 & 0x7f) as usize;
            let rest = (entry >> 25) as usize + 1;
            let start = arena.len();
            starts.push(u32::try_from(start).expect("a vocabulary under 4 GB"));
            arena.extend_from_within(previous..previous + shared);
            arena.extend_from_slice(&suffixes[..rest]);
            suffixes = &suffixes[rest..];
            previous = start;
            if let [a, b, tail @ ..] = &arena[start..] {
                let two = usize::from(*a) << 8 | usize::from(*b);
                prefix[two + 1] = end;
                if tail.is_empty() {
                    pairs[two] = entry & RANK;
                }
            }
        }
        starts.push(u32::try_from(arena.len()).expect("a vocabulary under 4 GB"));
        assert!(
            suffixes.is_empty() && arena.len() == arena_len,
            "the vocabulary's length"
        );
        // Two bytes no token starts with: an empty range, where the last one ended.
        for i in 1..prefix.len() {
            prefix[i] = prefix[i].max(prefix[i - 1]);
        }
        let split = Regex::new_many(&[pattern, r"\s+\s", r"\s+"]).expect("the pattern compiles");
        Bpe {
            arena,
            starts,
            entries,
            prefix,
            pairs,
            split,
        }
    }

    /// The rank of the token with these bytes, if one has them.
    fn rank(&self, bytes: &[u8]) -> Option<u32> {
        if let [a, b] = bytes {
            let rank = self.pairs[usize::from(*a) << 8 | usize::from(*b)];
            return (rank != u32::MAX).then_some(rank);
        }
        let [a, b, ..] = bytes else {
            return None;
        };
        let two = usize::from(*a) << 8 | usize::from(*b);
        let token = |i: usize| &self.arena[self.starts[i] as usize..self.starts[i + 1] as usize];
        let (mut low, mut high) = (self.prefix[two] as usize, self.prefix[two + 1] as usize);
        while low < high {
            let mid = low + (high - low) / 2;
            match token(mid).cmp(bytes) {
                std::cmp::Ordering::Less => low = mid + 1,
                std::cmp::Ordering::Greater => high = mid,
                std::cmp::Ordering::Equal => {
                    let entry = &self.entries[4 * mid..4 * mid + 4];
                    return Some(u32::from_le_bytes(entry.try_into().unwrap()) & RANK);
                }
            }
        }
        None
    }

    /// Tokens of `text` as ordinary text (`<|endoftext|>` is counted as text).
    pub fn count(&self, text: &str) -> usize {
        let mut count = 0;
        let mut parts = Vec::new();
        let mut at = 0;
        while at < text.len() {
            let input = Input::new(&text[at..]).anchored(Anchored::Yes);
            // Every character is matched by `\s+` or one of the pattern's classes.
            let found = self.split.find(input).expect("the pattern matches");
            let mut end = at + found.end();
            if found.pattern().as_usize() == 1 {
                // `\s+\s`: the last character is the look-ahead of `\s+(?!\S)`.
                end -= text[..end].chars().next_back().map_or(0, char::len_utf8);
            }
            count += self.count_piece(&text.as_bytes()[at..end], &mut parts);
            at = end;
        }
        count
    }

    /// Tokens of one piece: tiktoken's `byte_pair_merge`, merging the adjacent
    /// pair of lowest rank until no pair is a token.
    fn count_piece(&self, piece: &[u8], parts: &mut Vec<(usize, u32)>) -> usize {
        if piece.len() == 1 || self.rank(piece).is_some() {
            return 1;
        }
        // (start of part i, rank of part i joined with part i + 1)
        parts.clear();
        let pair_rank = |parts: &[(usize, u32)], i: usize| -> u32 {
            if i + 2 < parts.len() {
                self.rank(&piece[parts[i].0..parts[i + 2].0])
                    .unwrap_or(u32::MAX)
            } else {
                u32::MAX
            }
        };
        parts.extend((0..=piece.len()).map(|i| (i, u32::MAX)));
        for i in 0..parts.len() - 2 {
            parts[i].1 = pair_rank(parts, i);
        }
        // The first of the lowest, as tiktoken takes it.
        while let Some((i, _)) = parts[..parts.len() - 1]
            .iter()
            .enumerate()
            .min_by_key(|(_, p)| p.1)
            .filter(|(_, p)| p.1 != u32::MAX)
        {
            parts.remove(i + 1);
            parts[i].1 = pair_rank(parts, i);
            if i > 0 {
                parts[i - 1].1 = pair_rank(parts, i - 1);
            }
        }
        parts.len() - 1
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// The `tiktoken` crate agrees with `OpenAI`'s Python tiktoken on the corpus
    /// (the counts in tests/data/tokens/, checked in `tokens.rs`) and on 200,000
    /// random texts; here it is the reference for texts no corpus holds.
    fn reference(vocabulary: Vocabulary) -> &'static tiktoken::CoreBpe {
        let name = match vocabulary {
            Vocabulary::O200kBase => "o200k_base",
            Vocabulary::Cl100kBase => "cl100k_base",
        };
        tiktoken::get_encoding(name).unwrap()
    }

    fn agrees(text: &str) {
        for vocabulary in [Vocabulary::O200kBase, Vocabulary::Cl100kBase] {
            assert_eq!(
                vocabulary.get().count(text),
                reference(vocabulary).count(text),
                "{vocabulary:?} on {text:?}"
            );
        }
    }

    #[test]
    fn the_edges_of_the_pattern() {
        for text in [
            "",
            " ",
            "a",
            "   x",
            "x   ",
            "x  \n\n  y",
            "\t\t\u{a0}\u{3000}z",
            "I'm sure they've said it's 'd' \u{2019}s",
            "HELLO'S WORLD'LL",
            "12345678 1,234.5 \u{0663}\u{0664}\u{0665}\u{0666}",
            "path/to/file.rs\r\n\r\nnext",
            "<|endoftext|><|im_start|>",
            "\u{1f600}\u{1f469}\u{200d}\u{1f4bb} caf\u{e9} cafe\u{301}",
            "\u{65e5}\u{672c}\u{8a9e}\u{306e}\u{6587}\u{7ae0}\u{3002}",
            &"=".repeat(300),
            &"ab".repeat(500),
            &" ".repeat(100),
            "\u{0}\u{1}\u{7f}\u{fffd}",
        ] {
            agrees(text);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        #[test]
        fn agrees_with_tiktoken_on_any_text(text in "\\PC{0,60}") {
            agrees(&text);
        }

        #[test]
        fn agrees_with_tiktoken_on_mixed_text(
            parts in prop::collection::vec(
                prop::sample::select(vec![
                    " ", "  ", "\n", " \n ", "\t", "a", "The", " quick", "'s", "'LL", "123",
                    "4567", ".", "...", "/", "//", "{\"k\": [1, 2]}", "\u{e9}", "e\u{301}",
                    "\u{4e2d}\u{6587}", "\u{0939}\u{093f}\u{0902}", "\u{1f600}", "<|endoftext|>",
                    "fn main()", "\r\n", "\u{a0}",
                ]),
                0..40,
            )
        ) {
            agrees(&parts.concat());
        }
    }
}
