//! Tokens a call used, by kind, and the uses of the tools the provider ran for it:
//! what a provider reports, what the price table prices, what the cache, the run
//! record and the history keep. Plain data on the ground floor, so that pricing
//! never has to reach into the providers.

use serde::{Deserialize, Serialize};

/// Tokens a call used, by kind, as the provider reports them, and how many times
/// each server-side tool ran. Each kind is billed at its own price
/// (`cost::Price::cost`), so the kinds must not overlap.
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
    /// Input tokens written to the provider's prompt cache for its default time
    /// (Anthropic's 5-minute cache: `cache_creation.ephemeral_5m_input_tokens`).
    pub cache_write: u64,
    /// Input tokens written to Anthropic's 1-hour cache
    /// (`cache_creation.ephemeral_1h_input_tokens`), dearer than a 5-minute write.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub cache_write_1h: u64,
    /// Web searches the provider ran (Anthropic's `server_tool_use.web_search_requests`,
    /// one per reply of an `OpenAI` search model, Gemini's grounding queries).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub web_search: u64,
    /// Web pages the provider fetched (Anthropic's `server_tool_use.web_fetch_requests`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub web_fetch: u64,
}

#[allow(clippy::trivially_copy_pass_by_ref)]
fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Usage {
    /// Every input token, however it was billed: plain, read from or written to a cache.
    pub fn all_input(&self) -> u64 {
        self.input
            .saturating_add(self.cache_read)
            .saturating_add(self.cache_write)
            .saturating_add(self.cache_write_1h)
    }

    /// Input tokens written to a cache, for either time.
    pub fn cache_writes(&self) -> u64 {
        self.cache_write.saturating_add(self.cache_write_1h)
    }
}

/// Saturates: the counts come from the provider's reply, and a reply that says
/// `u64::MAX` must not crash the tally.
impl std::ops::AddAssign for Usage {
    fn add_assign(&mut self, other: Usage) {
        self.input = self.input.saturating_add(other.input);
        self.output = self.output.saturating_add(other.output);
        self.cache_read = self.cache_read.saturating_add(other.cache_read);
        self.cache_write = self.cache_write.saturating_add(other.cache_write);
        self.cache_write_1h = self.cache_write_1h.saturating_add(other.cache_write_1h);
        self.web_search = self.web_search.saturating_add(other.web_search);
        self.web_fetch = self.web_fetch.saturating_add(other.web_fetch);
    }
}
