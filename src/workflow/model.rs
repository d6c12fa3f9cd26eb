//! The workflow file's types (SPEC §2): what serde fills in once the structure has
//! been checked against the schema generated from these same types.
//!
//! Every struct rejects unknown fields, so the JSON Schema says
//! `additionalProperties: false` and a typo is an error, never silently ignored.

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

use super::duration::Duration;
use crate::catalog::ProviderKind;
use crate::prompt_cache::CacheMode;
use crate::tools::{ToolName, UserLocation};

/// A byok-flow workflow: a squad of agents, each one call to one model.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(
    title = "byok-flow workflow",
    extend("patternProperties" = { "^x-": {} })
)]
pub struct Workflow {
    /// The format version. Always `1`.
    pub version: Version,
    /// A short name, used in run records and summaries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// What the workflow does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Values the person running the workflow passes with `--input NAME=VALUE`.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    #[schemars(with = "IndexMap<Identifier, Input>")]
    pub inputs: IndexMap<String, Input>,
    /// Settings every agent gets unless it sets its own.
    #[serde(default)]
    pub defaults: Defaults,
    /// A ceiling on what one run may spend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<Budget>,
    /// Providers to add, or built-in ones to override.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    #[schemars(with = "IndexMap<Identifier, Provider>")]
    pub providers: IndexMap<String, Provider>,
    /// The agents, by name. Each is one call to one model.
    #[schemars(with = "IndexMap<Identifier, Agent>", extend("minProperties" = 1))]
    pub agents: IndexMap<String, Agent>,
    /// What the run prints on stdout: each a template over `inputs` and `agents`.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    #[schemars(with = "IndexMap<Identifier, String>")]
    pub outputs: IndexMap<String, String>,
}

/// The format version; only `1` exists.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[schemars(extend("const" = 1))]
pub struct Version(pub u32);

/// A name of an agent, input, provider or key: letters, digits, `_` and `-`.
#[derive(JsonSchema)]
#[schemars(extend("pattern" = "^[A-Za-z0-9_-]+$"))]
#[allow(dead_code)]
pub struct Identifier(String);

/// A model as `PROVIDER/MODEL`, like `anthropic/claude-sonnet-4-6`.
#[derive(JsonSchema)]
#[schemars(extend("pattern" = "^[^/]+/.+$"))]
#[allow(dead_code)]
pub struct ModelId(String);

/// One declared input.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Input {
    /// What the input is for (shown in errors and `--help`-like listings).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Whether a run must be given a value.
    #[serde(default)]
    pub required: bool,
    /// The value used when none is given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
}

/// Settings shared by every agent (each may override).
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    /// The most tokens a reply may have.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// Sampling temperature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 2.0))]
    pub temperature: Option<f64>,
    /// Nucleus sampling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub top_p: Option<f64>,
    /// How long one call may take, like `90s` or `2m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    /// How many times a failed call is retried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<u32>,
    /// Whether replies are streamed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    /// Prompt caching: `auto` (the default), `off`, or `1h` for Anthropic's 1-hour cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<CacheMode>,
    /// Send calls through the provider's batch API, at its batch price (answers
    /// within 24 hours); `--batch` turns it on for every agent that does not say `false`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<bool>,
}

/// A spending ceiling.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Budget {
    /// The most one run may spend, in US dollars.
    #[schemars(range(min = 0.0))]
    pub max_usd: f64,
}

/// A provider entry: a new endpoint, or changes to a built-in one.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Provider {
    /// Which API it speaks. Defaults to the built-in provider's of the same name.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<ProviderKind>,
    /// Where requests go, like `http://127.0.0.1:11434/v1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// The key file name, `env:VAR`, or `none` for no key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The most calls to this provider at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_concurrency: Option<u32>,
    /// Prices, in US dollars per million tokens, of models the built-in table lacks.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub pricing: IndexMap<String, ModelPrice>,
    /// For `mock`: how long each simulated call takes, like `200ms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency: Option<Duration>,
}

/// Prices of one model, in US dollars per million tokens.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ModelPrice {
    /// Input (prompt) tokens.
    pub input: f64,
    /// Output (completion) tokens.
    pub output: f64,
    /// Input tokens read from the provider's prompt cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_read: Option<f64>,
    /// Input tokens written to the provider's prompt cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_write: Option<f64>,
    /// Input tokens written to Anthropic's 1-hour cache (default: twice `input`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_write_1h: Option<f64>,
    /// A web search, in US dollars per 1,000 searches (default: the provider API's published fee).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub web_search: Option<f64>,
    /// A web page fetch, in US dollars per 1,000 fetches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub web_fetch: Option<f64>,
    /// The model's context window, in tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_window: Option<u64>,
    /// The most output tokens the model produces (the worst case when `max_tokens` is unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_output: Option<u64>,
}

/// One agent: one call to one model.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Agent {
    /// `PROVIDER/MODEL`, split at the first `/`, like `anthropic/claude-sonnet-4-6`.
    #[schemars(extend("pattern" = "^[^/]+/.+$"))]
    pub model: String,
    /// The key to use: a key file name, `env:VAR`, or `none`. Default: the provider's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The system prompt (a template).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<Arc<str>>,
    /// The prompt (a Handlebars template over `inputs` and `agents`).
    pub prompt: Arc<str>,
    /// Agents that must finish first, beyond those the templates reference.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(with = "Vec<Identifier>")]
    pub needs: Vec<String>,
    /// The most tokens the reply may have.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_tokens: Option<u32>,
    /// How many tokens the reply is expected to have, for estimates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_output_tokens: Option<u32>,
    /// Sampling temperature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 2.0))]
    pub temperature: Option<f64>,
    /// Nucleus sampling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub top_p: Option<f64>,
    /// Sequences that end the reply.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stop: Vec<String>,
    /// How long one call may take, like `90s` or `2m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    /// How many times a failed call is retried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<u32>,
    /// Whether the reply is streamed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    /// Send this agent's calls through its provider's batch API, at its batch price;
    /// `false` keeps it out of `--batch` (a provider without a batch API needs it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<bool>,
    /// Other models (`PROVIDER/MODEL`) to try, in order, when this one keeps failing.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(with = "Vec<ModelId>")]
    pub fallback: Vec<String>,
    /// What the reply is: `text`, or `json` (checked against `schema` when given).
    #[serde(default)]
    pub output: OutputKind,
    /// A JSON Schema the reply must match when `output: json`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<serde_json::Value>,
    /// Run once per item of a list (a map agent): `inputs.NAME` (an input holding a
    /// JSON array) or `agents.NAME.json.FIELD` (an array in an upstream `output:
    /// json` agent's reply). Its templates read `{{item}}` and `{{item_index}}`;
    /// agents downstream read `agents.THIS.outputs` (and `agents.THIS.json`) as lists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub for_each: Option<String>,
    /// The most items a map agent may run over; required for a list from an
    /// agent (more items fail the agent), so estimates and the budget have a bound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_items: Option<u32>,
    /// Tools the provider runs on its side: `web_search`, `web_fetch`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<ToolSpec>,
    /// Prompt caching: `auto` (the default), `off`, or `1h` for Anthropic's 1-hour cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<CacheMode>,
}

/// One entry of `tools:` as written: a tool's name, or a name with its options.
/// It is read by `tools::parse_entry` when the workflow is checked, so every
/// mistake in it gets its own message and place.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(transparent)]
pub struct ToolSpec(#[schemars(with = "ToolEntry")] pub serde_json::Value);

/// The forms of a `tools:` entry, for the schema.
#[derive(JsonSchema)]
#[serde(untagged)]
#[allow(dead_code, clippy::large_enum_variant)] // never built: the schema's shape only
enum ToolEntry {
    /// A tool with no options: `web_search` or `web_fetch`.
    Name(ToolName),
    /// A tool with options, like `web_search: {max_uses: 3}`.
    WithOptions(ToolWithOptions),
}

/// A tool name and its options.
#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(extend("minProperties" = 1, "maxProperties" = 1))]
#[allow(dead_code)]
struct ToolWithOptions {
    web_search: Option<WebSearchOptions>,
    web_fetch: Option<WebFetchOptions>,
}

/// Options of `web_search`; which ones a provider takes is checked per provider.
#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct WebSearchOptions {
    /// The most searches one call may make (default 5; sent to Anthropic).
    #[schemars(range(min = 1))]
    max_uses: Option<u32>,
    /// Only results from these domains, like `[docs.rs, example.com/blog]`.
    allowed_domains: Option<Vec<String>>,
    /// Never results from these domains.
    blocked_domains: Option<Vec<String>>,
    /// Where the searcher is, roughly, to localize results.
    user_location: Option<UserLocation>,
}

/// Options of `web_fetch` (Anthropic only).
#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct WebFetchOptions {
    /// The most pages one call may fetch (default 5).
    #[schemars(range(min = 1))]
    max_uses: Option<u32>,
    /// Only pages on these domains.
    allowed_domains: Option<Vec<String>>,
    /// Never pages on these domains.
    blocked_domains: Option<Vec<String>>,
}

/// The kind of reply an agent produces.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OutputKind {
    /// Free text.
    #[default]
    Text,
    /// A JSON value, readable downstream as `agents.NAME.json`.
    Json,
}

impl Agent {
    /// The provider part of `model` (before the first `/`).
    pub fn provider(&self) -> &str {
        self.model.split_once('/').map_or("", |(p, _)| p)
    }

    /// The model part of `model` (after the first `/`).
    pub fn model_id(&self) -> &str {
        self.model.split_once('/').map_or("", |(_, m)| m)
    }

    /// Whether this agent's calls go through its provider's batch API: its own
    /// `batch`, else `defaults.batch` (which `--batch` sets when the file does not).
    pub fn batched(&self, defaults: &Defaults) -> bool {
        self.batch.or(defaults.batch).unwrap_or(false)
    }
}
