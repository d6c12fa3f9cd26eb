//! Tools the providers run on their side (SPEC §11): `web_search` and `web_fetch`,
//! as a workflow names them, with their options; which API and model takes each
//! ([`offer`]); the sources a reply cites ([`Citation`]); and the documented
//! bounds on what a tool use can add to a call's bill. Plain data on the ground
//! floor: the workflow checks read it to refuse what a provider cannot take, each
//! provider module maps a [`Tool`] to its API's own form, and the price table and
//! the budget read the bounds. Nothing here runs on the user's machine: the
//! provider runs the search, billed to the same key.

mod offer;
mod parse;

pub use offer::{Offer, Refusal, Uses, offer, uses};
pub use parse::{EntryProblem, parse_entry, valid_options};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A server-side tool, by its provider-neutral name.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ToolName {
    /// Search the web (Anthropic's `web_search`, `OpenAI`'s search models, Gemini's
    /// grounding with Google Search).
    WebSearch,
    /// Fetch a web page whose address is in the prompt or a search result (Anthropic only).
    WebFetch,
}

impl ToolName {
    pub const ALL: [ToolName; 2] = [ToolName::WebSearch, ToolName::WebFetch];

    pub fn as_str(self) -> &'static str {
        match self {
            ToolName::WebSearch => "web_search",
            ToolName::WebFetch => "web_fetch",
        }
    }

    /// What the live view says while it runs.
    pub fn doing(self) -> &'static str {
        match self {
            ToolName::WebSearch => "searching the web",
            ToolName::WebFetch => "fetching a page",
        }
    }

    pub fn from_name(name: &str) -> Option<ToolName> {
        ToolName::ALL.into_iter().find(|t| t.as_str() == name)
    }
}

impl std::fmt::Display for ToolName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One tool an agent may use, with its options as the workflow gives them.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Tool {
    pub name: ToolName,
    /// The most uses per call; `None`: [`DEFAULT_MAX_USES`], sent where the API takes it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_uses: Option<u32>,
    /// Only these domains (`example.com`, `docs.example.com/blog`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub allowed_domains: Vec<String>,
    /// Never these domains.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub blocked_domains: Vec<String>,
    /// Where the searcher is, roughly, to localize results.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_location: Option<UserLocation>,
}

impl Tool {
    /// The tool with no options.
    pub fn named(name: ToolName) -> Self {
        Tool {
            name,
            max_uses: None,
            allowed_domains: Vec::new(),
            blocked_domains: Vec::new(),
            user_location: None,
        }
    }

    /// The options given, by their workflow names.
    pub fn options(&self) -> Vec<&'static str> {
        let mut given = Vec::new();
        if self.max_uses.is_some() {
            given.push("max_uses");
        }
        if !self.allowed_domains.is_empty() {
            given.push("allowed_domains");
        }
        if !self.blocked_domains.is_empty() {
            given.push("blocked_domains");
        }
        if self.user_location.is_some() {
            given.push("user_location");
        }
        given
    }

    /// The most uses one call may make: `max_uses`, else the default byok-flow sends.
    pub fn uses(&self) -> u32 {
        self.max_uses.unwrap_or(DEFAULT_MAX_USES)
    }
}

/// A searcher's approximate location.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UserLocation {
    /// The city, like `San Francisco`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    /// The region or state, like `California`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// The two-letter ISO country code, like `US`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    /// The IANA time zone, like `America/Los_Angeles`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
}

/// A source a reply cites: what `agents.NAME.citations` holds, and what the run
/// record, `--out` files and the step summary list under an output. Server text:
/// shown as text, never followed or rendered.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Citation {
    pub url: String,
    #[serde(default)]
    pub title: String,
    /// The text of the source the reply relies on, when the provider says.
    #[serde(default)]
    pub quoted: String,
}

/// Adds `citation` to `list` unless a citation of the same page is there: then
/// its quote is added to that one's (the same page cited for two passages).
pub fn add_citation(list: &mut Vec<Citation>, citation: Citation) {
    if citation.url.is_empty() {
        return;
    }
    match list.iter_mut().find(|c| c.url == citation.url) {
        Some(known) => {
            if known.title.is_empty() {
                known.title = citation.title;
            }
            if !citation.quoted.is_empty() && !known.quoted.contains(&citation.quoted) {
                if !known.quoted.is_empty() {
                    known.quoted.push_str(" … ");
                }
                known.quoted.push_str(&citation.quoted);
            }
        }
        None => list.push(citation),
    }
}

/// The uses per call byok-flow sends and reserves when a tool sets no `max_uses`
/// (Anthropic's API alone would let the model search without a limit).
pub const DEFAULT_MAX_USES: u32 = 5;

/// The input tokens one use of a tool is taken to add to a call, for the budget
/// (an upper bound) and the estimate (a typical value). A search returns several
/// results of about 2,500 tokens each; a fetched page is capped at
/// [`FETCH_MAX_CONTENT_TOKENS`], which byok-flow sends. The model reads its whole
/// context again on each pass after a use, so the budget counts each result once
/// per later pass (README, "Tools").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResultTokens {
    pub expected: u64,
    pub bound: u64,
}

/// What one web search adds to the input.
pub const SEARCH_RESULT_TOKENS: ResultTokens = ResultTokens {
    expected: 5_000,
    bound: 10_000,
};

/// The most tokens of a fetched page Anthropic puts in the context
/// (`max_content_tokens`, sent with every `web_fetch`).
pub const FETCH_MAX_CONTENT_TOKENS: u32 = 10_000;

/// What one page fetch adds to the input.
pub const FETCH_RESULT_TOKENS: ResultTokens = ResultTokens {
    expected: 5_000,
    bound: FETCH_MAX_CONTENT_TOKENS as u64,
};

impl ToolName {
    /// What one use adds to the input.
    pub fn result_tokens(self) -> ResultTokens {
        match self {
            ToolName::WebSearch => SEARCH_RESULT_TOKENS,
            ToolName::WebFetch => FETCH_RESULT_TOKENS,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_page_cited_twice_is_one_source_with_both_quotes() {
        let mut list = Vec::new();
        let cite = |url: &str, quoted: &str| Citation {
            url: url.into(),
            title: "T".into(),
            quoted: quoted.into(),
        };
        add_citation(&mut list, cite("https://a.example/", "one"));
        add_citation(&mut list, cite("https://b.example/", ""));
        add_citation(&mut list, cite("https://a.example/", "two"));
        add_citation(&mut list, cite("https://a.example/", "one"));
        add_citation(&mut list, cite("", "nothing"));
        assert_eq!(list.len(), 2);
        assert_eq!(list[0].quoted, "one … two");
    }
}
