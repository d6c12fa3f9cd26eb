//! What a run will cost, before it starts (`estimate`, `run --dry-run`): offline,
//! with no keys.
//!
//! Per agent: the input tokens of its rendered request, in which each upstream
//! agent's output counts as that agent's expected output size; its expected output
//! ([`expected_output`]); its maximum output (`max_tokens`, else the model's own
//! limit); and the dollars of both. The maximum assumes every upstream reply is as
//! long as it may be, and an approximated input at its upper bound, so it is what
//! the budget reserves for the agent.

use std::collections::HashMap;

use indexmap::IndexMap;
use serde::Serialize;
use serde_json::{Map, Value as Json, json};

use super::call::{CacheEstimate, Shape, cache_minimum};
use super::items::{Items, ListOf};
use super::prices::{PriceSource, Pricing, Resolved};
use super::tokens::{Count, Tokenizer};
use super::{Price, Usd};
use crate::catalog::ProviderKind;
use crate::prompt_cache::{self, Plan, Ttl};
use crate::template::{self, Renderer, Target, Values};
use crate::tools::{Tool, ToolName};
use crate::workflow::map::{self, Source};
use crate::workflow::providers;
use crate::workflow::{Agent, Checked, Workflow};

/// Expected output tokens of an agent that declares no `expected_output_tokens`
/// (about 750 English words), capped by its `max_tokens`.
pub const DEFAULT_EXPECTED_OUTPUT: u64 = 1_000;

/// The estimate of a whole run.
#[derive(Debug, Clone, Serialize)]
pub struct Estimate {
    /// Where prices come from.
    pub prices: String,
    pub agents: Vec<AgentEstimate>,
    pub total: Total,
    /// The run's spending ceiling, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub budget_usd: Option<f64>,
    /// With batched agents: the regular totals and the saving.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch: Option<BatchSaving>,
}

/// One agent's estimate.
#[derive(Debug, Clone, Serialize)]
pub struct AgentEstimate {
    pub name: String,
    /// `PROVIDER/MODEL` as written.
    pub model: String,
    /// Where its price comes from; `null` when unpriced.
    pub priced_as: Option<PriceSource>,
    /// How its input was counted, like `o200k_base` or `~o200k_base x1.2`.
    pub tokenizer: String,
    /// For a map agent, how many calls (items) it makes; the tokens and dollars
    /// are theirs together.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub items: Option<u64>,
    pub input_tokens: u64,
    /// Input with every upstream reply at its maximum and approximations at their
    /// upper bound; `null` when an upstream maximum is unknown.
    pub input_tokens_max: Option<u64>,
    pub expected_output_tokens: u64,
    pub max_output_tokens: Option<u64>,
    pub context_window: Option<u64>,
    /// The input of its largest call (for a map agent, of one item).
    #[serde(skip)]
    pub largest_input: u64,
    /// `null` when unpriced.
    pub expected_usd: Option<Usd>,
    /// `null` when unpriced or unbounded.
    pub max_usd: Option<Usd>,
    /// The cache holds its answer: it costs nothing (SPEC §5).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub cached: bool,
    /// Its server-side tools: the uses one call may make, and their fees at most.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<ToolEstimate>,
    /// The prefix its calls share in the provider's prompt cache, and what caching
    /// it costs the first call and saves each later one (`expected_usd` includes
    /// the first call's write).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt_cache: Option<CacheEstimate>,
    /// Why `max_usd` has no bound, when it has none but the model is priced.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unbounded: Option<String>,
    /// It goes through its provider's batch API: priced at the batch price (SPEC §9).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub batch: bool,
}

/// One server-side tool of an agent, in the estimate.
#[derive(Debug, Clone, Serialize)]
pub struct ToolEstimate {
    pub tool: ToolName,
    /// The most uses one call makes (or, where the provider takes no cap, the
    /// uses its results are bounded by).
    pub uses: u32,
    /// `max_uses` is not set: the default is assumed (and sent).
    pub default_uses: bool,
    /// The provider stops at `uses`.
    pub capped: bool,
    /// Its fees at most, per call; `null` when unknown or unbounded.
    pub max_fees_usd: Option<Usd>,
}

/// A batch run's totals beside what the same run would cost called directly.
#[derive(Debug, Clone, Serialize)]
pub struct BatchSaving {
    /// The same agents at their regular prices.
    pub regular_expected_usd: Usd,
    pub regular_max_usd: Usd,
    /// Regular minus batch, expected.
    pub saving_usd: Usd,
    /// The saving as a percentage of the regular expected total.
    pub saving_percent: f64,
}

impl BatchSaving {
    /// `batch`'s totals against `regular`'s (the same workflow, unbatched).
    pub fn of(batch: &Estimate, regular: &Estimate) -> Self {
        Self::of_totals(&batch.total, &regular.total)
    }

    /// The same from the totals (a dataset's, over every row).
    pub fn of_totals(batch: &Total, regular: &Total) -> Self {
        let (b, r) = (batch.expected_usd, regular.expected_usd);
        let saving = r.saturating_sub(b);
        BatchSaving {
            regular_expected_usd: r,
            regular_max_usd: regular.max_usd,
            saving_usd: saving,
            saving_percent: if r == Usd::ZERO {
                0.0
            } else {
                (saving.pico() as f64 / r.pico() as f64 * 1000.0).round() / 10.0
            },
        }
    }
}

/// The sums over every agent.
#[derive(Debug, Clone, Serialize)]
pub struct Total {
    pub input_tokens: u64,
    pub expected_output_tokens: u64,
    pub expected_usd: Usd,
    pub max_usd: Usd,
    /// Agents whose model has no price: the totals leave them out and are lower bounds.
    pub unpriced: Vec<String>,
    /// Agents whose maximum is unknown (no `max_tokens`, no known model limit).
    pub unbounded: Vec<String>,
}

impl Estimate {
    /// Marks the agents a run would answer from the cache (`cached[i]`): they send
    /// nothing and cost nothing, so they leave the totals.
    pub fn mark_cached(&mut self, cached: &[bool]) {
        for (agent, &hit) in self.agents.iter_mut().zip(cached) {
            if hit {
                agent.cached = true;
                agent.expected_usd = Some(Usd::ZERO);
                agent.max_usd = Some(Usd::ZERO);
            }
        }
        self.total = Total::of(&self.agents);
    }
}

impl Total {
    /// The sums over the agents that will be called.
    fn of(agents: &[AgentEstimate]) -> Total {
        let called = || agents.iter().filter(|a| !a.cached);
        Total {
            // Saturating: a fuzzed workflow can make counts that overflow a sum.
            input_tokens: called().fold(0, |sum, a| sum.saturating_add(a.input_tokens)),
            expected_output_tokens: called()
                .fold(0, |sum, a| sum.saturating_add(a.expected_output_tokens)),
            expected_usd: called().filter_map(|a| a.expected_usd).sum(),
            max_usd: called().filter_map(|a| a.max_usd).sum(),
            unpriced: called()
                .filter(|a| a.priced_as.is_none())
                .map(|a| a.name.clone())
                .collect(),
            unbounded: called()
                .filter(|a| a.priced_as.is_some() && a.max_usd.is_none())
                .map(|a| a.name.clone())
                .collect(),
        }
    }

    /// Whether `expected_usd` leaves out agents.
    pub fn is_lower_bound(&self) -> bool {
        !self.unpriced.is_empty()
    }
}

impl AgentEstimate {
    /// Whether the prompt alone is over the model's context window (a cached
    /// agent sends nothing).
    pub fn over_window(&self) -> bool {
        !self.cached && self.context_window.is_some_and(|w| self.largest_input > w)
    }
}

/// The most output tokens `agent` may produce: `max_tokens`, else the model's limit.
pub fn max_output(checked: &Checked, agent: &Agent, price: Option<&Price>) -> Option<u64> {
    agent
        .max_tokens
        .or(checked.workflow.defaults.max_tokens)
        .map(u64::from)
        .or_else(|| price.and_then(|p| p.max_output))
}

/// The output tokens `agent` is expected to produce: `expected_output_tokens`, else
/// [`DEFAULT_EXPECTED_OUTPUT`], capped by its maximum.
pub fn expected_output(agent: &Agent, max: Option<u64>) -> u64 {
    let expected = agent
        .expected_output_tokens
        .map_or(DEFAULT_EXPECTED_OUTPUT, u64::from);
    max.map_or(expected, |m| expected.min(m))
}

/// What an agent's citations count as in the prompts that quote them, before it
/// has run: one typical source per use its tools may make (an address of 60
/// characters, a title of 10 words, a quote of 40 words).
fn typical_citations(agent: &Agent) -> Json {
    let uses: u32 = agent
        .tools
        .iter()
        .filter_map(|t| crate::tools::parse_entry(&t.0).ok())
        .map(|t| t.uses())
        .sum();
    let one = json!({
        "url": "https://www.example.com/a/typical/address/of/a/cited/page",
        "title": "A typical title of a cited page, about ten words long",
        "quoted": "A typical passage quoted from a source: about forty words of prose, which is what a search result's cited text or a grounding segment usually holds, counted here so that an estimate of a prompt that lists sources is not short.",
    });
    Json::Array(vec![one; uses as usize])
}

/// Marks where an upstream output goes in a rendered prompt: private-use characters
/// that no template produces, around the agent's index.
fn marker(agent: usize) -> String {
    format!("\u{E000}{agent}\u{E001}")
}

/// Splits markers out of rendered text: the text without them, and how many times
/// each agent's output appeared.
fn unmark(text: &str, seen: &mut HashMap<usize, u64>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find('\u{E000}') {
        out.push_str(&rest[..start]);
        let after = &rest[start + '\u{E000}'.len_utf8()..];
        match after.find('\u{E001}') {
            Some(end) => {
                if let Ok(i) = after[..end].parse::<usize>() {
                    *seen.entry(i).or_default() += 1;
                }
                rest = &after[end + '\u{E001}'.len_utf8()..];
            }
            None => {
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Estimates a run of `checked` with these input values.
pub fn estimate(
    checked: &Checked,
    inputs: &IndexMap<String, String>,
    pricing: &Pricing<'_>,
    budget_usd: Option<f64>,
) -> Estimate {
    estimate_by(checked, inputs, pricing, budget_usd, Counting::Exact)
}

/// [`estimate`] with every input counted by [`Tokenizer::bound_request`]: no BPE is
/// loaded, and each agent's input tokens and dollars are at least [`estimate`]'s.
/// So when this estimate fits a budget and every context window, the exact one
/// does too, and `run` needs no tokenizer to know it.
pub fn upper_estimate(
    checked: &Checked,
    inputs: &IndexMap<String, String>,
    pricing: &Pricing<'_>,
    budget_usd: Option<f64>,
) -> Estimate {
    estimate_by(checked, inputs, pricing, budget_usd, Counting::Bound)
}

/// How an estimate counts input tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counting {
    /// With the model's BPE (or the approximation over `o200k_base`).
    Exact,
    /// With the bound that needs no BPE.
    Bound,
}

fn estimate_by(
    checked: &Checked,
    inputs: &IndexMap<String, String>,
    pricing: &Pricing<'_>,
    budget_usd: Option<f64>,
    counting: Counting,
) -> Estimate {
    Estimator::new(checked, pricing, budget_usd, counting).estimate(&inputs_json(inputs))
}

/// A run's inputs as the estimate's template context reads them.
pub fn inputs_json(inputs: &IndexMap<String, String>) -> Json {
    Json::Object(
        inputs
            .iter()
            .map(|(k, v)| (k.clone(), Json::String(v.clone())))
            .collect(),
    )
}

/// Estimates runs of one workflow: prices, output sizes and compiled templates are
/// made once, so each set of inputs (each row of a dataset) costs only a render and
/// a count.
pub struct Estimator<'a> {
    checked: &'a Checked,
    prices: String,
    budget_usd: Option<f64>,
    resolved: Vec<Option<Resolved>>,
    maxima: Vec<Option<u64>>,
    expected: Vec<u64>,
    tokenizers: Vec<Tokenizer>,
    renderer: Renderer,
    /// The context's `agents`: each agent's output as its marker (a map agent's
    /// outputs as a list of one marker).
    agents: Json,
    index_of: HashMap<&'a str, usize>,
    /// Each map agent's list.
    lists: Vec<Option<ListOf>>,
    /// The API of each agent's model, which decides how its tools and prompt cache
    /// are billed.
    kinds: Vec<ProviderKind>,
    counting: Counting,
}

impl<'a> Estimator<'a> {
    pub fn new(
        checked: &'a Checked,
        pricing: &Pricing<'_>,
        budget_usd: Option<f64>,
        counting: Counting,
    ) -> Self {
        let w = &checked.workflow;
        let resolved: Vec<_> = w
            .agents
            .values()
            .map(|a| pricing.resolve_for(a, &a.model))
            .collect();
        let maxima: Vec<Option<u64>> = w
            .agents
            .values()
            .zip(&resolved)
            .map(|(a, r)| max_output(checked, a, r.as_ref().map(|r| &r.price)))
            .collect();
        let expected: Vec<u64> = w
            .agents
            .values()
            .zip(&maxima)
            .map(|(a, max)| expected_output(a, *max))
            .collect();
        let mut renderer = Renderer::default();
        let mut agents = Map::new();
        for (i, (name, agent)) in w.agents.iter().enumerate() {
            let citations = typical_citations(agent);
            let entry = if agent.for_each.is_some() {
                json!({ "outputs": [marker(i)], "json": [marker(i)], "citations": citations })
            } else {
                json!({ "output": marker(i), "json": marker(i), "citations": citations })
            };
            agents.insert(name.clone(), entry);
            // A template that does not compile is counted as its text (see `render`).
            let _ = renderer.add(&format!("{name}.prompt"), agent.prompt.clone());
            if let Some(system) = &agent.system {
                let _ = renderer.add(&format!("{name}.system"), system.clone());
            }
        }
        let kinds = w
            .agents
            .values()
            .map(|a| {
                if pricing.mock {
                    ProviderKind::Mock
                } else {
                    providers::kind(w, a.provider()).unwrap_or(ProviderKind::Mock)
                }
            })
            .collect();
        Estimator {
            checked,
            counting,
            kinds,
            prices: pricing.table.describe(),
            budget_usd,
            tokenizers: w
                .agents
                .values()
                .map(|a| Tokenizer::for_model(a.model_id()))
                .collect(),
            resolved,
            maxima,
            expected,
            renderer,
            agents: Json::Object(agents),
            index_of: w
                .agents
                .keys()
                .enumerate()
                .map(|(i, n)| (n.as_str(), i))
                .collect(),
            lists: w
                .agents
                .values()
                .map(|a| {
                    let source = map::parse(a.for_each.as_deref()?).ok()?;
                    let from = match &source {
                        Source::Agent { name, .. } => w.agents.get_index_of(name),
                        Source::Input(_) => None,
                    };
                    Some(ListOf {
                        source,
                        from,
                        max_items: a.max_items,
                    })
                })
                .collect(),
        }
    }

    fn count(&self, tokenizer: Tokenizer, system: Option<&str>, prompt: &str) -> Count {
        match self.counting {
            Counting::Exact => tokenizer.count_request(system, prompt),
            Counting::Bound => tokenizer.bound_request(system, prompt),
        }
    }

    /// The first map agent whose input list, in a run with `inputs`, fails it
    /// before any call, and why: a run that cannot happen as estimated.
    pub fn failing_list(&self, inputs: &Json) -> Option<(String, String)> {
        super::items::failing_list(&self.checked.workflow, inputs)
    }

    /// Where prices come from.
    pub fn prices(&self) -> &str {
        &self.prices
    }

    /// The spending ceiling estimates are made against.
    pub fn budget_usd(&self) -> Option<f64> {
        self.budget_usd
    }

    /// The estimate of a run whose template context's `inputs` is `inputs`.
    pub fn estimate(&self, inputs: &Json) -> Estimate {
        let w = &self.checked.workflow;
        let context = Values::from(json!({ "inputs": inputs, "agents": self.agents }));
        let lists: Vec<Option<Items>> = self
            .lists
            .iter()
            // A list that fails its agent has no items here; `failing_list` tells
            // the caller the run cannot happen.
            .map(|l| {
                l.as_ref()
                    .map(|l| l.items(inputs).unwrap_or(Items::Known(Vec::new())))
            })
            .collect();
        // A map agent's outputs, as read downstream: every item's.
        let times = |i: usize| lists[i].as_ref().map_or(1, Items::count);
        let expected: Vec<u64> = (0..w.agents.len())
            .map(|i| self.expected[i].saturating_mul(times(i)))
            .collect();
        let maxima: Vec<Option<u64>> = (0..w.agents.len())
            .map(|i| self.maxima[i].map(|m| m.saturating_mul(times(i))))
            .collect();
        let mut agents = Vec::with_capacity(w.agents.len());
        for (i, (name, agent)) in w.agents.iter().enumerate() {
            let tokenizer = self.tokenizers[i];
            let mut calls: Vec<(Count, HashMap<usize, u64>)> = Vec::new();
            // The first call's rendered system and prompt: its prompt-cache prefix.
            let mut first: Option<(Option<String>, String)> = None;
            let mut from_source = (0u64, Some(0u64));
            match &lists[i] {
                None => {
                    let (system, prompt, seen) =
                        render(&self.renderer, name, agent, &context, &self.index_of);
                    calls.push((self.count(tokenizer, system.as_deref(), &prompt), seen));
                    first.get_or_insert((system, prompt));
                }
                Some(Items::Known(items)) => {
                    for (k, item) in items.iter().enumerate() {
                        let mut context = context.json().clone();
                        context["item"] = item.clone();
                        context["item_index"] = Json::from(k);
                        let (system, prompt, seen) =
                            render(&self.renderer, name, agent, &context.into(), &self.index_of);
                        calls.push((self.count(tokenizer, system.as_deref(), &prompt), seen));
                        first.get_or_insert((system, prompt));
                    }
                }
                Some(Items::AtMost { count, from }) => {
                    // Each item's text is a part of `from`'s reply: all of them
                    // together are that reply, counted once.
                    let mut context = context.json().clone();
                    context["item"] = Json::String(String::new());
                    context["item_index"] = Json::from(0);
                    let (system, prompt, seen) =
                        render(&self.renderer, name, agent, &context.into(), &self.index_of);
                    let one = (self.count(tokenizer, system.as_deref(), &prompt), seen);
                    for _ in 0..*count {
                        calls.push(one.clone());
                    }
                    first = Some((system, prompt));
                    if let Some(from) = from {
                        from_source = (expected[*from], maxima[*from]);
                    }
                }
            }
            let resolved = self.resolved[i].as_ref();
            let price = resolved.map(|r| &r.price);
            // A cached prefix's tokens, counted as the request's are.
            let prefix_tokens = |text: &str| match self.counting {
                Counting::Exact => tokenizer.scale(tokenizer.raw(text)).tokens,
                Counting::Bound => tokenizer.scale(text.len() as u64).tokens,
            };
            let (system, prompt) = first.unwrap_or_default();
            let extras = Extras::of(
                w,
                agent,
                self.kinds[i],
                price,
                &prefix_tokens,
                system.as_deref(),
                &prompt,
            );
            let shape = &extras.shape;
            let mut input_tokens = from_source.0;
            let mut input_tokens_max = from_source.1;
            let mut largest = 0u64;
            // Each call is priced on its own (tool fees are per call, and a long
            // prompt may be in a dearer tier); a list's share of its source's reply
            // goes with the first.
            let mut expected_usd = price.map(|_| Usd::ZERO);
            let mut max_usd = price.map(|_| Usd::ZERO);
            let mut bounded = true;
            for (k, (count, seen)) in calls.iter().enumerate() {
                // Saturating: a maximum can be a model's `max_output` from `pricing:`, up to
                // 2^63 - 1 tokens, and an output read three times would overflow.
                let upstream_expected = seen.iter().fold(0u64, |sum, (j, n)| {
                    sum.saturating_add(n.saturating_mul(expected[*j]))
                });
                let upstream_max = seen.iter().try_fold(0u64, |sum, (j, n)| {
                    maxima[*j].map(|m| sum.saturating_add(n.saturating_mul(m)))
                });
                let one = count.tokens.saturating_add(upstream_expected);
                let one_max = upstream_max.map(|m| count.bound.saturating_add(m));
                largest = largest.max(one);
                input_tokens = input_tokens.saturating_add(one);
                input_tokens_max = input_tokens_max
                    .zip(one_max)
                    .map(|(sum, m)| sum.saturating_add(m));
                let (with_share, with_share_max) = if k == 0 {
                    (
                        one.saturating_add(from_source.0),
                        one_max.zip(from_source.1).map(|(a, b)| a.saturating_add(b)),
                    )
                } else {
                    (one, one_max)
                };
                if let Some(p) = price {
                    expected_usd = expected_usd
                        .map(|sum| sum + p.expected_call(shape, with_share, self.expected[i]));
                    let worst = with_share_max
                        .zip(self.maxima[i])
                        .and_then(|(input, output)| p.worst_call(shape, input, output));
                    bounded &= with_share_max.is_some() && self.maxima[i].is_some();
                    max_usd = max_usd.zip(worst).map(|(sum, w)| sum + w);
                }
            }
            if !calls.is_empty() {
                expected_usd = expected_usd
                    .map(|sum| sum + extras.cache.map_or(Usd::ZERO, |c| c.first_call_extra));
            }
            let unbounded = match (price, max_usd) {
                (Some(_), None) if bounded => Some(
                    "a tool of it is billed per use and its provider takes no cap on the uses (Gemini 3's grounding bills each search query)".to_string(),
                ),
                (Some(_), None) => Some("no `max_tokens` and no known output limit".to_string()),
                _ => None,
            };
            let n = calls.len() as u64;
            let out_expected = self.expected[i].saturating_mul(n);
            let out_max = self.maxima[i].map(|m| m.saturating_mul(n));
            agents.push(AgentEstimate {
                name: name.clone(),
                model: agent.model.clone(),
                priced_as: resolved.map(|r| r.source.clone()),
                tokenizer: tokenizer.label(),
                items: lists[i].as_ref().map(|_| n),
                input_tokens,
                input_tokens_max,
                expected_output_tokens: out_expected,
                max_output_tokens: out_max,
                context_window: price.and_then(|p| p.context_window),
                largest_input: largest,
                expected_usd,
                max_usd,
                cached: false,
                tools: extras.tools,
                prompt_cache: extras.cache,
                unbounded,
                batch: agent.batched(&w.defaults),
            });
        }
        let total = Total::of(&agents);
        Estimate {
            prices: self.prices.clone(),
            agents,
            total,
            budget_usd: self.budget_usd,
            batch: None,
        }
    }
}

/// What an agent's calls do beyond a prompt and a reply: their tools, and the
/// prefix they share in the provider's prompt cache.
struct Extras {
    shape: Shape,
    tools: Vec<ToolEstimate>,
    cache: Option<CacheEstimate>,
}

impl Extras {
    fn of(
        w: &Workflow,
        agent: &Agent,
        kind: ProviderKind,
        price: Option<&Price>,
        prefix_tokens: &dyn Fn(&str) -> u64,
        system: Option<&str>,
        prompt: &str,
    ) -> Self {
        // Checked when the workflow was loaded: an entry that does not read is left out.
        let tools: Vec<Tool> = agent
            .tools
            .iter()
            .filter_map(|t| crate::tools::parse_entry(&t.0).ok())
            .collect();
        let mode = agent.cache.or(w.defaults.cache).unwrap_or_default();
        let plan = cache_minimum(kind, agent.model_id(), price).and_then(|minimum| {
            prompt_cache::plan(
                mode,
                agent.system.as_deref().zip(system),
                (&agent.prompt, prompt),
                minimum,
                prompt_cache::approx_tokens,
            )
        });
        let one_hour = plan.is_some_and(|p| p.ttl == Ttl::OneHour);
        let shape = Shape::new(kind, &tools, one_hour);
        let cache = plan.filter(Plan::marks).zip(price).map(|(plan, price)| {
            let system = system.unwrap_or_default();
            let mut prefix = match (plan.system, plan.prompt) {
                (_, Some(_)) => system.to_string(),
                (Some(n), None) => system.get(..n).unwrap_or(system).to_string(),
                (None, None) => String::new(),
            };
            prefix.push_str(
                plan.prompt
                    .and_then(|n| prompt.get(..n))
                    .unwrap_or_default(),
            );
            CacheEstimate::new(price, kind, prefix_tokens(&prefix), one_hour)
        });
        let tools = shape
            .tools
            .iter()
            .zip(&tools)
            .map(|(used, tool)| ToolEstimate {
                tool: used.tool,
                uses: used.uses,
                default_uses: tool.max_uses.is_none() && used.capped && used.uses > 1,
                capped: used.capped,
                max_fees_usd: price.and_then(|p| {
                    p.worst_fees(&Shape {
                        tools: vec![*used],
                        one_hour: false,
                    })
                }),
            })
            .collect();
        Extras {
            shape,
            tools,
            cache,
        }
    }
}

/// An agent's system prompt and prompt with upstream outputs taken out, and how
/// often each upstream output appears. A template that cannot be rendered without
/// the real outputs (it reads into `agents.X.json`) counts as its own text plus
/// one output of each agent it reads.
fn render(
    renderer: &Renderer,
    name: &str,
    agent: &Agent,
    context: &Values,
    index_of: &HashMap<&str, usize>,
) -> (Option<String>, String, HashMap<usize, u64>) {
    let mut seen = HashMap::new();
    let part = |field: &str, text: &str, seen: &mut HashMap<usize, u64>| {
        let key = format!("{name}.{field}");
        let output = renderer.render(&key, context);
        if let Ok(output) = output {
            return unmark(&output, seen);
        }
        for r in template::references(text).unwrap_or_default() {
            if let Ok(Target::Agent { name, .. }) = r.target
                && let Some(&j) = index_of.get(name.as_str())
            {
                *seen.entry(j).or_default() += 1;
            }
        }
        text.to_string()
    };
    let system = agent
        .system
        .as_deref()
        .map(|s| part("system", s, &mut seen));
    let prompt = part("prompt", &agent.prompt, &mut seen);
    (system, prompt, seen)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found while fuzzing `estimate`: a model's `max_output` from `pricing:` (up to
    /// 2^63 - 1) times the three reads of that agent's output overflowed.
    #[test]
    fn a_huge_max_output_read_three_times_saturates() {
        let text = "version: 1
providers:
  sim:
    type: mock
    pricing:
      m: {input: 1, output: 1, max_output: 9223372036854775807}
agents:
  a: {model: sim/m, prompt: x}
  b: {model: sim/m, prompt: '{{agents.a.output}} {{agents.a.output}} {{agents.a.output}}'}
";
        let path = std::path::Path::new("huge.yaml");
        let (loaded, report) = crate::workflow::load::load_source(path, text.into()).unwrap();
        let (checked, _) = crate::workflow::validate::check(loaded, report).unwrap();
        let table = crate::cost::prices::PriceTable::builtin();
        let pricing = Pricing {
            table: &table,
            workflow: &checked.workflow,
            mock: false,
        };
        let estimate = estimate(&checked, &IndexMap::new(), &pricing, None);
        assert_eq!(estimate.agents[1].input_tokens_max, Some(u64::MAX));
    }

    #[test]
    fn markers_are_counted_and_removed() {
        let mut seen = HashMap::new();
        let text = format!("a {} b {} c {}", marker(1), marker(1), marker(12));
        assert_eq!(unmark(&text, &mut seen), "a  b  c ");
        assert_eq!(seen[&1], 2);
        assert_eq!(seen[&12], 1);
    }

    #[test]
    fn expected_output_is_declared_or_default_and_capped() {
        let mut agent = Agent::default();
        assert_eq!(expected_output(&agent, None), DEFAULT_EXPECTED_OUTPUT);
        assert_eq!(expected_output(&agent, Some(300)), 300);
        agent.expected_output_tokens = Some(5_000);
        assert_eq!(expected_output(&agent, Some(4_000)), 4_000);
        assert_eq!(expected_output(&agent, None), 5_000);
    }
}
