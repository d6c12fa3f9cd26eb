//! Tokens a call used, by kind: what a provider reports, what the price table
//! prices, what the cache, the run record and the history keep. Plain data on the
//! ground floor, so that pricing never has to reach into the providers.

use serde::{Deserialize, Serialize};

/// Tokens a call used, by kind, as the provider reports them. Each kind is billed at
/// its own price (`cost::Price::cost`), so the kinds must not overlap.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Input tokens billed at the plain input price: neither read from nor written to
    /// a cache. Anthropic's `input_tokens`; `OpenAI`'s `prompt_tokens` minus
    /// `cached_tokens`; Gemini's `promptTokenCount` minus `cachedContentTokenCount`.
    pub input: u64,
    /// Output tokens, reasoning ("thinking") tokens included.
    pub output: u64,
    /// Input tokens read from the provider's prompt cache.
    pub cache_read: u64,
    /// Input tokens written to the provider's prompt cache (Anthropic's
    /// `cache_creation_input_tokens`).
    pub cache_write: u64,
}

/// Saturates: the counts come from the provider's reply, and a reply that says
/// `u64::MAX` must not crash the tally.
impl std::ops::AddAssign for Usage {
    fn add_assign(&mut self, other: Usage) {
        self.input = self.input.saturating_add(other.input);
        self.output = self.output.saturating_add(other.output);
        self.cache_read = self.cache_read.saturating_add(other.cache_read);
        self.cache_write = self.cache_write.saturating_add(other.cache_write);
    }
}
