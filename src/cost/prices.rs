//! The pricing table and how a workflow's models are priced.
//!
//! The built-in table is `data/prices.json`, compiled into the binary and built by
//! `scripts/build-prices.py` from a dated snapshot of the `LiteLLM` model cost map.
//! `--prices FILE` replaces it with a file of the same format. Keys are
//! `PROVIDER/MODEL` as a workflow names them (`anthropic/claude-sonnet-4-5-20250929`,
//! `together/meta-llama/Llama-3.3-70B-Instruct-Turbo`); aliases map other ids to
//! them. A provider's `pricing:` in the workflow adds or overrides models for that
//! provider. Prices in files are dollars per million tokens.

use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use super::{Price, Rates, ToolFee, ToolFees, Usd, rate_per_million};
use crate::catalog::ProviderKind;
use crate::workflow::Workflow;
use crate::workflow::model::ModelPrice;
use crate::workflow::providers;

/// The table compiled into the binary.
const BUILTIN: &str = include_str!("../../data/prices.json");

/// A pricing table: where it comes from, and a row per model.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PriceTable {
    /// Where the prices come from.
    #[serde(default)]
    pub source: Option<String>,
    /// When the prices were published (`YYYY-MM-DD`).
    #[serde(default)]
    pub date: Option<String>,
    /// The exact upstream revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream: Option<String>,
    /// Always "USD per million tokens"; checked when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub units: Option<String>,
    /// Upstream values the build script overruled, and why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub corrections: Vec<String>,
    /// Prices by `PROVIDER/MODEL`.
    pub models: IndexMap<String, Entry>,
    /// Other ids, `PROVIDER/MODEL` -> a key of `models`.
    #[serde(default)]
    pub aliases: IndexMap<String, String>,
    /// The file it was read from; `None` for the built-in table.
    #[serde(skip)]
    pub file: Option<PathBuf>,
}

/// One model's row, in dollars per million tokens.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    pub input: f64,
    pub output: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_read: Option<f64>,
    /// A write to the prompt cache (Anthropic: the 5-minute cache).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_write: Option<f64>,
    /// A write to Anthropic's 1-hour cache (`cache: 1h`); twice the input price when
    /// absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_write_1h: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_window: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_output: Option<u64>,
    /// Dearer rates for a request whose input is over `above` tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub long_context: Option<Tier>,
    /// What a web search costs (the provider runs it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub web_search: Option<ToolPrice>,
    /// What a web page fetch costs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub web_fetch: Option<ToolPrice>,
    /// The fewest prompt tokens the provider caches (Anthropic).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_min_tokens: Option<u64>,
    /// Input and output through the provider's batch API (`*_batches` in the
    /// `LiteLLM` map); half the regular price where the table has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_input: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_output: Option<f64>,
    /// When the provider announced the model's retirement (`YYYY-MM-DD`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deprecated: Option<String>,
    /// When the provider stops serving the model: requests fail from that day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retired: Option<String>,
    /// The model the provider recommends instead, as a workflow names it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub successor: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// What a server-side tool costs, in dollars per 1,000 uses.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ToolPrice {
    pub per_1k: f64,
    /// Billed once per request that used the tool, however many times (Gemini 2's
    /// grounding: per grounded prompt).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub per_request: bool,
}

impl ToolPrice {
    fn fee(self) -> ToolFee {
        ToolFee {
            per_use: Usd::from_dollars(self.per_1k / 1_000.0),
            per_request: self.per_request,
        }
    }

    const fn per_use(per_1k: f64) -> Self {
        ToolPrice {
            per_1k,
            per_request: false,
        }
    }
}

/// The fees of a model whose row lacks them, by the API it speaks, as the
/// providers publish them (and `data/tool-prices.json` lists them for the build
/// script): Anthropic's web search $10 per 1,000 searches, its web fetch free (the
/// page's tokens are billed); `OpenAI`'s search models $35 per 1,000 requests (the
/// dearest of them, `gpt-4o-search-preview`); Gemini's grounding $35 per 1,000
/// grounded prompts up to Gemini 2.5, $14 per 1,000 search queries from Gemini 3.
pub fn default_tool_prices(
    kind: ProviderKind,
    model: &str,
) -> (Option<ToolPrice>, Option<ToolPrice>) {
    match kind {
        ProviderKind::Anthropic => (
            Some(ToolPrice::per_use(10.0)),
            Some(ToolPrice::per_use(0.0)),
        ),
        ProviderKind::Openai => (Some(ToolPrice::per_use(35.0)), None),
        ProviderKind::Gemini if gemini_generation(model) >= 3 => {
            (Some(ToolPrice::per_use(14.0)), None)
        }
        ProviderKind::Gemini => (
            Some(ToolPrice {
                per_1k: 35.0,
                per_request: true,
            }),
            None,
        ),
        // The mock's tools are canned and free, unless `pricing:` says otherwise.
        ProviderKind::Mock => (Some(ToolPrice::per_use(0.0)), Some(ToolPrice::per_use(0.0))),
        ProviderKind::OpenaiCompatible => (None, None),
    }
}

/// The major version of a Gemini model id (`gemini-2.5-flash`: 2), 0 when unknown.
fn gemini_generation(model: &str) -> u32 {
    let model = model.strip_prefix("models/").unwrap_or(model);
    model
        .strip_prefix("gemini-")
        .and_then(|rest| rest.split(['.', '-']).next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Long-context rates, in dollars per million tokens.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Tier {
    pub above: u64,
    pub input: f64,
    pub output: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_read: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_write: Option<f64>,
    /// A write to Anthropic's 1-hour cache in this tier; twice the tier's input
    /// price when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_write_1h: Option<f64>,
}

/// Why a prices file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TableError {
    #[error("cannot read the prices file `{path}`: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the prices file `{path}` is not a valid pricing table: {message}")]
    Invalid { path: PathBuf, message: String },
}

/// The largest prices file read (the whole `LiteLLM` map is about 1.5 MiB).
const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;

impl PriceTable {
    /// The table compiled into the binary.
    pub fn builtin() -> Self {
        // The file is checked by a unit test; failing here is a build bug.
        serde_json::from_str(BUILTIN).expect("data/prices.json is a valid pricing table")
    }

    /// The table of `--prices FILE`, or the built-in one.
    pub fn load(file: Option<&Path>) -> Result<Self, TableError> {
        file.map_or_else(|| Ok(PriceTable::builtin()), PriceTable::from_file)
    }

    /// Reads and checks a prices file.
    pub fn from_file(path: &Path) -> Result<Self, TableError> {
        let read = |source: std::io::Error| TableError::Read {
            path: path.to_path_buf(),
            source,
        };
        let bytes = crate::read::file(path, MAX_FILE_BYTES).map_err(|e| read(e.into()))?;
        let text = String::from_utf8(bytes).map_err(|_| TableError::Invalid {
            path: path.to_path_buf(),
            message: "it is not UTF-8 text".into(),
        })?;
        let mut table = PriceTable::parse(&text).map_err(|message| TableError::Invalid {
            path: path.to_path_buf(),
            message,
        })?;
        table.file = Some(path.to_path_buf());
        Ok(table)
    }

    /// Reads and checks a prices file's text; the error says what is wrong.
    pub fn parse(text: &str) -> Result<Self, String> {
        let table: PriceTable = serde_json::from_str(text).map_err(|e| e.to_string())?;
        table.check()?;
        Ok(table)
    }

    /// Every price finite and not negative, every alias pointing at a model.
    fn check(&self) -> Result<(), String> {
        if let Some(units) = &self.units
            && units != "USD per million tokens"
        {
            return Err(format!(
                "`units` is `{units}`; byok-flow reads \"USD per million tokens\""
            ));
        }
        for (key, e) in &self.models {
            if !key.contains('/') {
                return Err(format!(
                    "model `{key}` is not `PROVIDER/MODEL`, like `openai/gpt-4o`"
                ));
            }
            let tier = e.long_context.as_ref();
            let prices = [
                Some(e.input),
                Some(e.output),
                e.cache_read,
                e.cache_write,
                e.cache_write_1h,
            ]
            .into_iter()
            .chain([tier.map(|t| t.input), tier.map(|t| t.output)])
            .chain(tier.map_or([None; 3], |t| {
                [t.cache_read, t.cache_write, t.cache_write_1h]
            }))
            .chain([
                e.web_search.map(|t| t.per_1k),
                e.web_fetch.map(|t| t.per_1k),
            ])
            .flatten();
            for p in prices {
                if !p.is_finite() || p < 0.0 {
                    return Err(format!(
                        "model `{key}` has the price {p}; prices are dollars per million tokens, 0 or more"
                    ));
                }
            }
        }
        for (key, e) in &self.models {
            for (field, date) in [("deprecated", &e.deprecated), ("retired", &e.retired)] {
                if let Some(date) = date
                    && !super::lifecycle::is_date(date)
                {
                    return Err(format!(
                        "model `{key}` has `{field}: {date}`; dates are YYYY-MM-DD"
                    ));
                }
            }
        }
        for (alias, target) in &self.aliases {
            if !self.models.contains_key(target) {
                return Err(format!(
                    "alias `{alias}` points to `{target}`, which is not in `models`"
                ));
            }
        }
        Ok(())
    }

    /// Where the table comes from, as `prices` and `estimate` print it.
    pub fn describe(&self) -> String {
        let source = self.source.as_deref().unwrap_or("no source given");
        let date = self.date.as_deref().unwrap_or("undated");
        match &self.file {
            Some(file) => format!("{} ({source}, {date})", file.display()),
            None => format!("built-in table: {source}, {date}"),
        }
    }

    /// The row for `PROVIDER/MODEL` or an alias of it, with the key it is stored under.
    pub fn get(&self, key: &str) -> Option<(&str, &Entry)> {
        let key = self.aliases.get(key).map_or(key, String::as_str);
        self.models.get_key_value(key).map(|(k, e)| (k.as_str(), e))
    }
}

impl Entry {
    /// The entry as rates and limits.
    pub fn price(&self) -> Price {
        let rates = Rates {
            input: rate_per_million(self.input),
            output: rate_per_million(self.output),
            cache_read: self.cache_read.map(rate_per_million),
            cache_write: self.cache_write.map(rate_per_million),
            cache_write_1h: self.cache_write_1h.map(rate_per_million),
        };
        Price {
            rates,
            long_context: self.long_context.as_ref().map(|t| {
                (
                    t.above,
                    Rates {
                        input: rate_per_million(t.input),
                        output: rate_per_million(t.output),
                        cache_read: t.cache_read.map(rate_per_million).or(rates.cache_read),
                        cache_write: t.cache_write.map(rate_per_million).or(rates.cache_write),
                        // Never the base tier's: a 1-hour write is priced
                        // from the tier's own input price.
                        cache_write_1h: t.cache_write_1h.map(rate_per_million),
                    },
                )
            }),
            context_window: self.context_window,
            max_output: self.max_output,
            tools: ToolFees {
                web_search: self.web_search.map(ToolPrice::fee),
                web_fetch: self.web_fetch.map(ToolPrice::fee),
            },
            cache_min_tokens: self.cache_min_tokens,
        }
    }
}

impl From<&ModelPrice> for Price {
    fn from(p: &ModelPrice) -> Self {
        let per_use = |per_1k: Option<f64>| per_1k.map(|f| ToolPrice::per_use(f).fee());
        Price {
            rates: Rates {
                input: rate_per_million(p.input),
                output: rate_per_million(p.output),
                cache_read: p.cache_read.map(rate_per_million),
                cache_write: p.cache_write.map(rate_per_million),
                cache_write_1h: p.cache_write_1h.map(rate_per_million),
            },
            long_context: None,
            context_window: p.context_window,
            max_output: p.max_output,
            tools: ToolFees {
                web_search: per_use(p.web_search),
                web_fetch: per_use(p.web_fetch),
            },
            cache_min_tokens: None,
        }
    }
}

/// `price` with the fees its row lacks taken from the defaults of `kind`.
fn with_default_fees(mut price: Price, kind: ProviderKind, model: &str) -> Price {
    let (search, fetch) = default_tool_prices(kind, model);
    if price.tools.web_search.is_none() {
        price.tools.web_search = search.map(ToolPrice::fee);
    }
    if price.tools.web_fetch.is_none() {
        price.tools.web_fetch = fetch.map(ToolPrice::fee);
    }
    price
}

/// Where a model's price came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "from", rename_all = "snake_case")]
pub enum PriceSource {
    /// The pricing table, under this key.
    Table { key: String },
    /// The workflow's `providers.NAME.pricing`.
    Workflow { provider: String },
    /// The mock provider (or `--mock`): free, unless a `type: mock` provider
    /// declares `pricing:` to simulate a cost.
    Mock,
}

/// A model's price and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub price: Price,
    pub source: PriceSource,
}

/// How a batch price was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BatchRate {
    /// The table's own batch prices.
    Table,
    /// Half the regular price: the table has no batch prices for the model.
    Half,
}

impl Price {
    /// This price with every rate halved: the batch discount of all three providers.
    #[must_use]
    pub fn halved(&self) -> Price {
        let half = |r: Rates| Rates {
            input: r.input / 2,
            output: r.output / 2,
            cache_read: r.cache_read.map(|c| c / 2),
            cache_write: r.cache_write.map(|c| c / 2),
            cache_write_1h: r.cache_write_1h.map(|c| c / 2),
        };
        Price {
            rates: half(self.rates),
            long_context: self.long_context.map(|(above, r)| (above, half(r))),
            ..self.clone()
        }
    }
}

/// Prices the models of one workflow: its `pricing:` first, then the table.
#[derive(Debug, Clone, Copy)]
pub struct Pricing<'a> {
    pub table: &'a PriceTable,
    pub workflow: &'a Workflow,
    /// `--mock`: every agent is answered by the mock, for free.
    pub mock: bool,
}

impl<'a> Pricing<'a> {
    /// The price of `PROVIDER/MODEL` through its provider's batch API: the table's
    /// batch rates where it has them, else half the regular price (a workflow's
    /// `pricing:` and the mock are halved too).
    pub fn resolve_batch(&self, model: &str) -> Option<(Resolved, BatchRate)> {
        let resolved = self.resolve(model)?;
        let entry = match &resolved.source {
            PriceSource::Table { key } => self.table.get(key).map(|(_, e)| e),
            _ => None,
        };
        if let Some((entry, input, output)) =
            entry.and_then(|e| Some((e, e.batch_input?, e.batch_output?)))
        {
            let regular = resolved.price.clone();
            let ratio = |batch: f64, full: f64| if full > 0.0 { batch / full } else { 0.5 };
            let (ri, ro) = (ratio(input, entry.input), ratio(output, entry.output));
            let scale = |rate: u64, by: f64| {
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                let scaled = (rate as f64 * by).round() as u64;
                scaled
            };
            let rates = |r: Rates| Rates {
                input: scale(r.input, ri),
                output: scale(r.output, ro),
                cache_read: r.cache_read.map(|c| scale(c, ri)),
                cache_write: r.cache_write.map(|c| scale(c, ri)),
                cache_write_1h: r.cache_write_1h.map(|c| scale(c, ri)),
            };
            let mut price = regular;
            price.rates = Rates {
                input: rate_per_million(input),
                output: rate_per_million(output),
                ..rates(price.rates)
            };
            price.long_context = price.long_context.map(|(above, r)| (above, rates(r)));
            return Some((
                Resolved {
                    price,
                    source: resolved.source,
                },
                BatchRate::Table,
            ));
        }
        Some((
            Resolved {
                price: resolved.price.halved(),
                source: resolved.source,
            },
            BatchRate::Half,
        ))
    }

    /// The price an agent's call to `model` is billed at: the batch price when the
    /// agent goes through a batch API (`batch: true` on it or in `defaults`, which
    /// `--batch` sets).
    pub fn resolve_for(
        &self,
        agent: &crate::workflow::model::Agent,
        model: &str,
    ) -> Option<Resolved> {
        if agent.batched(&self.workflow.defaults) {
            self.resolve_batch(model).map(|(r, _)| r)
        } else {
            self.resolve(model)
        }
    }

    /// The price of `PROVIDER/MODEL`, or `None` when nothing prices it.
    pub fn resolve(&self, model: &str) -> Option<Resolved> {
        let (provider, id) = model.split_once('/')?;
        let kind = providers::kind(self.workflow, provider).ok()?;
        if self.mock {
            return Some(Resolved {
                price: Price::free(),
                source: PriceSource::Mock,
            });
        }
        // Checked before the mock's $0, so a `type: mock` provider with `pricing:`
        // simulates a priced model (to try a budget offline).
        let declared = self.workflow.providers.get(provider);
        if let Some(p) = declared.and_then(|d| d.pricing.get(id)) {
            return Some(Resolved {
                price: with_default_fees(p.into(), kind, id),
                source: PriceSource::Workflow {
                    provider: provider.to_string(),
                },
            });
        }
        if kind == ProviderKind::Mock {
            return Some(Resolved {
                price: Price::free(),
                source: PriceSource::Mock,
            });
        }
        let (key, entry) = self.table_row(model)?;
        Some(Resolved {
            price: with_default_fees(entry.price(), kind, id),
            source: PriceSource::Table {
                key: key.to_string(),
            },
        })
    }

    /// The table's row for `PROVIDER/MODEL`: under the provider's own name, or
    /// under its API's first party for a provider declared with that `type:` (a
    /// proxy serves that API's models). The workflow's `pricing:` is not consulted.
    pub fn table_row(&self, model: &str) -> Option<(&'a str, &'a Entry)> {
        let (provider, id) = model.split_once('/')?;
        let kind = providers::kind(self.workflow, provider).ok()?;
        let id = match kind {
            ProviderKind::Gemini => id.strip_prefix("models/").unwrap_or(id),
            _ => id,
        };
        let family = match kind {
            ProviderKind::Anthropic => Some("anthropic"),
            ProviderKind::Openai => Some("openai"),
            ProviderKind::Gemini => Some("gemini"),
            ProviderKind::OpenaiCompatible | ProviderKind::Mock => None,
        };
        let table = self.table;
        table
            .get(&format!("{provider}/{id}"))
            .or_else(|| family.and_then(|f| table.get(&format!("{f}/{id}"))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cost::Usd;

    fn workflow(yaml: &str) -> Workflow {
        serde_saphyr::from_str(yaml).unwrap()
    }

    #[test]
    fn builtin_table_is_valid_and_covers_the_issue() {
        let table = PriceTable::builtin();
        table.check().unwrap();
        for key in [
            "anthropic/claude-3-5-sonnet-latest",
            "anthropic/claude-3-5-haiku-latest",
            "anthropic/claude-3-7-sonnet-latest",
            "anthropic/claude-sonnet-4-5",
            "anthropic/claude-opus-4-1",
            "anthropic/claude-haiku-4-5",
            "anthropic/claude-sonnet-4-6",
            "openai/gpt-4o",
            "openai/gpt-4o-mini",
            "openai/gpt-4.1",
            "openai/gpt-4.1-mini",
            "openai/o3",
            "openai/o4-mini",
            "openai/gpt-5",
            "openai/gpt-5-mini",
            "gemini/gemini-1.5-pro",
            "gemini/gemini-1.5-flash",
            "gemini/gemini-2.0-flash",
            "gemini/gemini-2.5-pro",
            "gemini/gemini-2.5-flash",
            "mistral/mistral-large-latest",
            "mistral/mistral-small-latest",
            "groq/llama-3.3-70b-versatile",
            "together/meta-llama/Llama-3.3-70B-Instruct-Turbo",
            "deepseek/deepseek-chat",
            "xai/grok-4",
            "openrouter/anthropic/claude-3.5-sonnet",
        ] {
            assert!(table.get(key).is_some(), "{key} is not priced");
        }
    }

    fn table_price(key: &str) -> Price {
        PriceTable::builtin().get(key).unwrap().1.price()
    }

    /// The worked example of the BYOK guide: 50,000 input and 50,000 output tokens on
    /// Claude Sonnet 4.6 at $3 and $15 per million cost $0.15 + $0.75 = $0.90.
    #[test]
    fn worked_example_claude_sonnet_4_6() {
        let price = table_price("anthropic/claude-sonnet-4-6");
        let usage = |input, output| crate::usage::Usage {
            input,
            output,
            ..Default::default()
        };
        assert_eq!(price.cost(&usage(50_000, 0)), Usd::from_dollars(0.15));
        assert_eq!(price.cost(&usage(0, 50_000)), Usd::from_dollars(0.75));
        assert_eq!(price.cost(&usage(50_000, 50_000)), Usd::from_dollars(0.90));
        assert_eq!(price.expected(50_000, 50_000).to_string(), "$0.9000");
    }

    /// GPT-4o's published price: $2.50 per million input tokens, $1.25 cached, $10 output.
    #[test]
    fn worked_example_gpt_4o() {
        let price = table_price("openai/gpt-4o");
        let usage = crate::usage::Usage {
            input: 40_000,
            cache_read: 10_000,
            output: 50_000,
            cache_write: 0,
            ..Default::default()
        };
        // 40,000 × $2.50 + 10,000 × $1.25 + 50,000 × $10, per million.
        assert_eq!(price.cost(&usage), Usd::from_dollars(0.1 + 0.0125 + 0.5));
        assert_eq!(price.expected(50_000, 50_000), Usd::from_dollars(0.625));
    }

    #[test]
    fn corrects_the_one_hour_cache_price_of_claude_3() {
        let table = PriceTable::builtin();
        let (_, haiku) = table.get("anthropic/claude-3-haiku-20240307").unwrap();
        assert_eq!(haiku.cache_write_1h, Some(0.5));
        let (_, opus) = table.get("anthropic/claude-3-opus-20240229").unwrap();
        assert_eq!(opus.cache_write_1h, Some(30.0));
    }

    #[test]
    fn long_context_one_hour_writes_are_priced_from_the_tiers_input() {
        let table = PriceTable::builtin();
        let (_, sonnet) = table.get("anthropic/claude-sonnet-4-20250514").unwrap();
        let price = sonnet.price();
        let (above, tier) = price.long_context.unwrap();
        assert_eq!(above, 200_000);
        assert_eq!(tier.cache_write_1h(), rate_per_million(12.0));
        assert_eq!(price.rates.cache_write_1h(), rate_per_million(6.0));
    }

    #[test]
    fn workflow_pricing_comes_first_then_the_table_then_the_api_family() {
        let w = workflow(
            "version: 1\nproviders:\n  openai:\n    pricing:\n      gpt-9: {input: 1, output: 2}\n  proxy:\n    type: openai\n    base_url: https://proxy.example/v1\nagents:\n  a: {model: openai/gpt-9, prompt: x}\n",
        );
        let table = PriceTable::builtin();
        let pricing = Pricing {
            table: &table,
            workflow: &w,
            mock: false,
        };
        let custom = pricing.resolve("openai/gpt-9").unwrap();
        assert_eq!(custom.price.rates.input, 1_000_000);
        assert!(matches!(custom.source, PriceSource::Workflow { .. }));
        let proxied = pricing.resolve("proxy/gpt-4o").unwrap();
        assert_eq!(
            proxied.source,
            PriceSource::Table {
                key: "openai/gpt-4o-2024-08-06".into()
            }
        );
        assert!(pricing.resolve("openai/gpt-10").is_none());
        assert_eq!(pricing.resolve("mock/x").unwrap().source, PriceSource::Mock);
        assert!(pricing.resolve("gemini/models/gemini-2.5-pro").is_some());
    }

    /// The fees a row without its own take (`pricing:`, `--prices FILE`) are the
    /// ones the documented list gives the build script.
    #[test]
    fn default_tool_fees_match_the_documented_list() {
        let list: serde_json::Value =
            serde_json::from_str(include_str!("../../data/tool-prices.json")).unwrap();
        let listed = |family: &str, tool: &str| {
            let fee = &list["defaults"][family][tool];
            (!fee.is_null()).then(|| ToolPrice {
                per_1k: fee["per_1k"].as_f64().unwrap(),
                per_request: fee["per_request"].as_bool().unwrap_or(false),
            })
        };
        for (kind, model, family) in [
            (ProviderKind::Anthropic, "claude-sonnet-4-5", "anthropic"),
            (
                ProviderKind::Openai,
                "gpt-4o-search-preview",
                "openai-search",
            ),
            (ProviderKind::Gemini, "gemini-2.5-flash", "gemini"),
            (ProviderKind::Gemini, "gemini-3-pro-preview", "gemini-3"),
        ] {
            let (search, fetch) = default_tool_prices(kind, model);
            assert_eq!(search, listed(family, "web_search"), "{model}");
            assert_eq!(fetch, listed(family, "web_fetch"), "{model}");
        }
        // And the built table carries them, per model.
        let table = PriceTable::builtin();
        let sonnet = table.get("anthropic/claude-sonnet-4-5").unwrap().1;
        assert_eq!(sonnet.web_search.map(|t| t.per_1k), Some(10.0));
        assert_eq!(sonnet.cache_min_tokens, Some(1_024));
        let search = table.get("openai/gpt-4o-mini-search-preview").unwrap().1;
        assert_eq!(search.web_search.map(|t| t.per_1k), Some(27.5));
        let flash = table.get("gemini/gemini-2.5-flash").unwrap().1;
        assert!(flash.web_search.unwrap().per_request);
    }

    #[test]
    fn rejects_bad_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.json");
        std::fs::write(
            &path,
            r#"{"models": {"x/y": {"input": -1, "output": 1}}, "aliases": {}}"#,
        )
        .unwrap();
        let e = PriceTable::from_file(&path).unwrap_err().to_string();
        assert!(e.contains("has the price -1"), "{e}");
        std::fs::write(&path, r#"{"models": {}, "aliases": {"a/b": "c/d"}}"#).unwrap();
        assert!(PriceTable::from_file(&path).is_err());
        std::fs::write(
            &path,
            r#"{"models": {"x/y": {"input": 1, "output": 2, "cache_reed": 1}}}"#,
        )
        .unwrap();
        let e = PriceTable::from_file(&path).unwrap_err().to_string();
        assert!(e.contains("cache_reed"), "{e}");
    }

    /// SPEC §9: the table's batch prices where it has them, else half the regular price.
    #[test]
    fn batch_prices_come_from_the_table_or_are_half() {
        let table = PriceTable::builtin();
        let w = workflow("version: 1\nagents: {}\n");
        let pricing = Pricing {
            table: &table,
            workflow: &w,
            mock: false,
        };
        let (listed, how) = pricing.resolve_batch("openai/gpt-4o-2024-08-06").unwrap();
        assert_eq!(how, BatchRate::Table);
        assert_eq!(listed.price.rates.input, rate_per_million(1.25));
        assert_eq!(listed.price.rates.output, rate_per_million(5.0));
        let (halved, how) = pricing
            .resolve_batch("anthropic/claude-sonnet-4-5")
            .unwrap();
        let regular = pricing
            .resolve("anthropic/claude-sonnet-4-5")
            .unwrap()
            .price;
        assert_eq!(how, BatchRate::Half);
        assert_eq!(halved.price.rates.input * 2, regular.rates.input);
        assert_eq!(halved.price.rates.output * 2, regular.rates.output);
        assert_eq!(
            halved.price.rates.cache_read.map(|r| r * 2),
            regular.rates.cache_read
        );
    }
}
