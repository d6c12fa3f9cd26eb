//! Counting a request's input tokens before it is sent, offline (SPEC §6).
//!
//! `OpenAI` models get their real BPE (tiktoken's `o200k_base` or `cl100k_base`,
//! chosen by model id as tiktoken's `model.py` does) and the chat framing of the
//! `OpenAI` cookbook: 3 tokens per message plus its role, and 3 that prime the reply.
//! For the whole request as sent, system and prompt are two messages.
//!
//! Other providers publish no offline tokenizer, so their count is an
//! approximation: the same `o200k_base` count times a factor per model family, with
//! a second, larger factor as the upper bound the budget reserves. The factors and
//! where they come from are in [`CLAUDE`], [`CLAUDE_NEW`], [`OTHER`] and the README ("How input tokens are counted").
//!
//! A BPE is loaded (compiled in, nothing decompressed or built but two small
//! tables and its pattern, see [`super::bpe`]) only when a count is made. A run needs none: [`Tokenizer::bound_request`] bounds a
//! request's tokens by its UTF-8 bytes, since every token of a byte-level BPE (and
//! of a `SentencePiece` vocabulary with byte fallback) holds at least one byte.

use serde::Serialize;

use super::bpe::{Bpe, Vocabulary};

/// A tiktoken encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Encoding {
    /// GPT-4o, GPT-4.1, GPT-4.5, GPT-5, o1, o3, o4-mini.
    O200kBase,
    /// GPT-4, GPT-4 Turbo, GPT-3.5 Turbo.
    Cl100kBase,
    /// gpt-oss.
    O200kHarmony,
}

impl Encoding {
    pub fn name(self) -> &'static str {
        match self {
            Encoding::O200kBase => "o200k_base",
            Encoding::Cl100kBase => "cl100k_base",
            Encoding::O200kHarmony => "o200k_harmony",
        }
    }

    /// The BPE, built on first use. `o200k_harmony` differs from `o200k_base` only
    /// in its special tokens, so ordinary text is counted with `o200k_base`'s.
    fn bpe(self) -> &'static Bpe {
        match self {
            Encoding::O200kBase | Encoding::O200kHarmony => Vocabulary::O200kBase.get(),
            Encoding::Cl100kBase => Vocabulary::Cl100kBase.get(),
        }
    }

    /// Tokens of `text` as ordinary text: `<|endoftext|>` in a prompt is sent, and
    /// billed, as text, not as the special token.
    pub fn count(self, text: &str) -> u64 {
        self.bpe().count(text) as u64
    }
}

/// A family of models whose tokens are estimated from `o200k_base`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Approximation {
    /// Which models, in words.
    pub family: &'static str,
    /// The estimate, in percent of the `o200k_base` count.
    pub expected_percent: u64,
    /// The upper bound the budget reserves, in percent of the `o200k_base` count.
    pub bound_percent: u64,
}

/// Claude up to Opus 4.6, Sonnet 4.6 and Haiku 4.5.
pub const CLAUDE: Approximation = Approximation {
    family: "Claude (up to 4.6)",
    // copilot-api used 1.15 and found it too low; sammcj/ingest calibrated 1.18.
    expected_percent: 120,
    // anthropics/claude-code#22506 measured up to 2.08x tiktoken on source files.
    bound_percent: 210,
};

/// Claude with the tokenizer introduced by Opus 4.7 (Sonnet 5, Opus 5, Fable 5, …).
pub const CLAUDE_NEW: Approximation = Approximation {
    family: "Claude (4.7 and later)",
    // sammcj/ingest#65: 429 o200k tokens -> 656, x1.53.
    expected_percent: 150,
    // the old bound times Anthropic's "up to 1.35x more tokens" for the new tokenizer.
    bound_percent: 280,
};

/// Gemini, Llama, Mistral, `DeepSeek`, Grok and everything else.
pub const OTHER: Approximation = Approximation {
    family: "other models",
    // Mistral's Tekken takes a median 1.13x o200k on the test corpus (0.85 to 1.69;
    // scripts/measure-approximation.py).
    expected_percent: 110,
    // The most any tokenizer measured took over o200k on the test corpus: Mistral's
    // older 32k SentencePiece on Hindi, 3.42x (cl100k_base, the base of Llama 3's
    // vocabulary: 3.28x).
    bound_percent: 350,
};

/// How a model's input is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Tokenizer {
    pub encoding: Encoding,
    /// `None` when `encoding` is the model's own.
    pub approximation: Option<Approximation>,
}

/// A token count: the estimate, and an upper bound for budgets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Count {
    pub tokens: u64,
    pub bound: u64,
}

/// Tokens each chat message adds to its role and content (`OpenAI` cookbook).
const PER_MESSAGE: u64 = 3;
/// Tokens that prime the reply (`OpenAI` cookbook).
const REPLY_PRIMING: u64 = 3;

impl Tokenizer {
    /// The tokenizer for `model` (the part after `PROVIDER/`).
    pub fn for_model(model: &str) -> Tokenizer {
        // `openai/gpt-4o` on OpenRouter, `openai/gpt-oss-120b` on Groq.
        let id = model.rsplit('/').next().unwrap_or(model);
        if let Some(encoding) = openai_encoding(id) {
            return Tokenizer {
                encoding,
                approximation: None,
            };
        }
        let approximation = if id.contains("claude") {
            if claude_has_new_tokenizer(id) {
                CLAUDE_NEW
            } else {
                CLAUDE
            }
        } else {
            OTHER
        };
        Tokenizer {
            encoding: Encoding::O200kBase,
            approximation: Some(approximation),
        }
    }

    /// How counts are made, as the estimate table shows it.
    pub fn label(&self) -> String {
        match self.approximation {
            None => self.encoding.name().to_string(),
            Some(a) => format!(
                "~{} x{}",
                self.encoding.name(),
                percent_text(a.expected_percent)
            ),
        }
    }

    /// Tokens of a piece of text, before any approximation factor.
    pub fn raw(&self, text: &str) -> u64 {
        self.encoding.count(text)
    }

    /// The tokens of a chat request with this system prompt and user prompt.
    pub fn count_request(&self, system: Option<&str>, prompt: &str) -> Count {
        let mut raw = self.message("user", prompt) + REPLY_PRIMING;
        if let Some(system) = system {
            raw += self.message("system", system);
        }
        self.scale(raw)
    }

    fn message(&self, role: &str, content: &str) -> u64 {
        PER_MESSAGE + self.raw(role) + self.raw(content)
    }

    /// A count of the request that needs no BPE. Every text is counted as its
    /// UTF-8 bytes (roles too): a token of a byte-level BPE holds at least one byte,
    /// so the bytes bound the count of every vocabulary built that way or as
    /// `SentencePiece` with byte fallback (`OpenAI`'s, Claude's, Llama's, Mistral's,
    /// Gemini's), not only `o200k_base`'s.
    ///
    /// `tokens` is at least [`Tokenizer::count_request`]'s estimate, so a prompt
    /// whose `tokens` fits a context window fits it. `bound` is the bytes plus the
    /// framing at the family's bound factor (the framing's size is the one thing a
    /// provider does not publish): for exact encodings at least the exact count;
    /// for approximated families a bound that holds by construction, where the
    /// `o200k_base` factor is a measurement (on code and numbers the factor gives
    /// more than the bytes, which no such vocabulary can take).
    ///
    /// The bound is loose (about four times the count of English prose, more for
    /// Hindi or Russian, less for code and numbers), so the run uses it where a
    /// generous bound is enough: budget reservations, and context windows, where
    /// only a bound over the window calls for an exact count.
    pub fn bound_request(&self, system: Option<&str>, prompt: &str) -> Count {
        let bytes = |role: &str, content: &str| (role.len() + content.len()) as u64;
        let mut content = bytes("user", prompt);
        let mut framing = PER_MESSAGE + REPLY_PRIMING;
        if let Some(system) = system {
            content = content.saturating_add(bytes("system", system));
            framing += PER_MESSAGE;
        }
        if self.approximation.is_none() {
            let raw = content.saturating_add(framing);
            return Count {
                tokens: raw,
                bound: raw,
            };
        }
        // The family's factors apply to the framing, whose size the provider does
        // not publish; the bytes alone already bound the text.
        let framing = self.scale(framing);
        let scaled = self.scale(content);
        Count {
            tokens: scaled.tokens.saturating_add(framing.tokens),
            bound: content.saturating_add(framing.bound),
        }
    }

    /// A raw count as an estimate and a bound.
    pub fn scale(&self, raw: u64) -> Count {
        match self.approximation {
            None => Count {
                tokens: raw,
                bound: raw,
            },
            Some(a) => Count {
                tokens: (raw * a.expected_percent).div_ceil(100),
                bound: (raw * a.bound_percent).div_ceil(100),
            },
        }
    }
}

/// `1.2` from `120`.
fn percent_text(percent: u64) -> String {
    let text = format!("{}.{:02}", percent / 100, percent % 100);
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// tiktoken's model table (`tiktoken/model.py`): exact names, then prefixes.
fn openai_encoding(id: &str) -> Option<Encoding> {
    const O200K: &[&str] = &[
        "gpt-5",
        "gpt-4.1",
        "gpt-4.5",
        "gpt-4o",
        "chatgpt-4o",
        "o1",
        "o3",
        "o4-mini",
        "codex-mini",
        "ft:gpt-4o",
        "ft:gpt-4.1",
        "ft:o4-mini",
    ];
    const CL100K: &[&str] = &[
        "gpt-4-",
        "gpt-3.5-turbo",
        "gpt-35-turbo",
        "ft:gpt-4",
        "ft:gpt-3.5-turbo",
        "text-embedding-",
    ];
    if id.starts_with("gpt-oss-") {
        Some(Encoding::O200kHarmony)
    } else if O200K.iter().any(|p| id.starts_with(p)) {
        Some(Encoding::O200kBase)
    } else if id == "gpt-4" || CL100K.iter().any(|p| id.starts_with(p)) {
        Some(Encoding::Cl100kBase)
    } else {
        None
    }
}

/// Whether a Claude model id is 4.7 or later (`claude-opus-4-7`, `claude-sonnet-5`,
/// `anthropic/claude-opus-4.7`), which count about 1.35x more tokens than before.
fn claude_has_new_tokenizer(id: &str) -> bool {
    let numbers: Vec<u64> = id
        .split(['-', '.', '@', ':'])
        .filter(|part| !part.is_empty() && part.len() <= 2)
        .filter_map(|part| part.parse().ok())
        .collect();
    match numbers.as_slice() {
        [] => false,
        [major] => *major >= 5,
        [major, minor, ..] => (*major, *minor) >= (4, 7) || *major >= 5,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openai_encodings_follow_tiktoken() {
        for (model, encoding) in [
            ("gpt-4o", Encoding::O200kBase),
            ("gpt-4o-mini-2024-07-18", Encoding::O200kBase),
            ("gpt-4.1-nano", Encoding::O200kBase),
            ("gpt-5.4", Encoding::O200kBase),
            ("o3-mini", Encoding::O200kBase),
            ("o1", Encoding::O200kBase),
            ("gpt-4", Encoding::Cl100kBase),
            ("gpt-4-turbo", Encoding::Cl100kBase),
            ("gpt-3.5-turbo-0125", Encoding::Cl100kBase),
            ("openai/gpt-oss-120b", Encoding::O200kHarmony),
            ("openai/gpt-4o", Encoding::O200kBase),
        ] {
            let t = Tokenizer::for_model(model);
            assert_eq!((t.encoding, t.approximation), (encoding, None), "{model}");
        }
    }

    #[test]
    fn others_are_approximations() {
        let family = |m: &str| Tokenizer::for_model(m).approximation.map(|a| a.family);
        assert_eq!(family("claude-3-5-sonnet-latest"), Some(CLAUDE.family));
        assert_eq!(family("claude-sonnet-4-5-20250929"), Some(CLAUDE.family));
        assert_eq!(family("claude-opus-4-6"), Some(CLAUDE.family));
        assert_eq!(family("claude-opus-4-7"), Some(CLAUDE_NEW.family));
        assert_eq!(family("claude-sonnet-5"), Some(CLAUDE_NEW.family));
        assert_eq!(family("anthropic/claude-3.5-sonnet"), Some(CLAUDE.family));
        assert_eq!(family("gemini-2.5-pro"), Some(OTHER.family));
        assert_eq!(family("llama-3.3-70b-versatile"), Some(OTHER.family));
    }

    /// The reference counts come from `OpenAI`'s Python tiktoken, made by
    /// scripts/tiktoken-reference.py.
    #[test]
    fn agrees_with_tiktoken_on_the_corpus() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/tokens");
        let counts: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(root.join("counts.json")).unwrap())
                .unwrap();
        let corpus = |name: &str| std::fs::read_to_string(root.join("corpus").join(name)).unwrap();
        let files = counts["files"].as_object().unwrap();
        assert!(files.len() >= 20, "the corpus shrank");
        for (name, expected) in files {
            let text = corpus(name);
            for encoding in [Encoding::O200kBase, Encoding::Cl100kBase] {
                assert_eq!(
                    Some(encoding.count(&text)),
                    expected[encoding.name()].as_u64(),
                    "{name} in {}",
                    encoding.name()
                );
            }
        }
        for chat in counts["chats"].as_array().unwrap() {
            let model = chat["model"].as_str().unwrap();
            let tokenizer = Tokenizer::for_model(model);
            assert_eq!(
                tokenizer.encoding.name(),
                chat["encoding"].as_str().unwrap()
            );
            let system = chat["system"].as_str().map(corpus);
            let prompt = corpus(chat["prompt"].as_str().unwrap());
            let count = tokenizer.count_request(system.as_deref(), &prompt);
            assert_eq!(Some(count.tokens), chat["tokens"].as_u64(), "{chat}");
        }
    }

    /// The bound that needs no BPE is at least the exact estimate, and for exact
    /// encodings at least the exact count, on every text of the corpus.
    #[test]
    fn the_byte_bound_is_above_the_count() {
        let root =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/tokens/corpus");
        let texts: Vec<String> = std::fs::read_dir(root)
            .unwrap()
            .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
            .collect();
        for model in [
            "gpt-4o",
            "gpt-4",
            "claude-sonnet-4-5",
            "claude-opus-4-7",
            "gemini-2.5-pro",
        ] {
            let t = Tokenizer::for_model(model);
            for (i, text) in texts.iter().enumerate() {
                let system = texts.get(i + 1).map(String::as_str);
                let exact = t.count_request(system, text);
                let quick = t.bound_request(system, text);
                assert!(quick.tokens >= exact.tokens, "{model}, text {i}");
                let raw = t.raw(text) + system.map_or(0, |s| t.raw(s));
                assert!(quick.bound >= raw, "{model}, text {i}");
                if t.approximation.is_none() {
                    assert!(quick.bound >= exact.bound, "{model}, text {i}");
                }
            }
        }
        let gpt = Tokenizer::for_model("gpt-4o");
        // "user" (4 bytes) + 3 per message + 3 priming.
        assert_eq!(gpt.bound_request(None, "hello").bound, 3 + 4 + 5 + 3);
    }

    #[test]
    fn framing_and_scaling() {
        let gpt = Tokenizer::for_model("gpt-4o");
        let bare = gpt.raw("hello");
        // user message: 3 + "user" (1) + content; reply priming: 3.
        assert_eq!(gpt.count_request(None, "hello").tokens, 3 + 1 + bare + 3);
        let claude = Tokenizer::for_model("claude-3-5-sonnet-latest");
        assert_eq!(
            claude.scale(100),
            Count {
                tokens: 120,
                bound: 210
            }
        );
        assert_eq!(
            claude.scale(1),
            Count {
                tokens: 2,
                bound: 3
            }
        );
        assert_eq!(claude.label(), "~o200k_base x1.2");
        assert_eq!(gpt.label(), "o200k_base");
    }
}
