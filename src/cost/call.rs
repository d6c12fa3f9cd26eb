//! What one call may cost beyond its prompt and its reply: the server-side tools
//! it may use (a fee per use, and their results read as input) and the cache
//! writes it may make (Anthropic's 1-hour cache is dearer).
//!
//! The model reads its whole context once per pass, and it makes one more pass
//! after each tool use, so a call with `U` uses reads its prompt `U + 1` times,
//! what it wrote so far up to `U` times, and the results of its k-th use
//! `U + 1 - k` times. The budget counts all of that at the dearest input rate
//! (providers bill those re-reads partly as cache reads, which is cheaper): a call
//! with tools reserves
//!
//! ```text
//! prompt × (U + 1) + max_tokens × U + result bound × U × (U + 1) / 2   input tokens
//! + max_tokens output tokens + U × the fee per use
//! ```
//!
//! and the estimate expects `prompt + U × a typical result`, each use's fee, and
//! its expected output. `U` is the tool's `max_uses` (default 5) where the
//! provider enforces it, one for `OpenAI`'s search models. Gemini's grounding takes
//! no cap: its results are bounded as if it made `max_uses` queries, and a model
//! billed per query cannot be bounded at all.

use serde::Serialize;

use super::{Price, Usd};
use crate::catalog::ProviderKind;
use crate::prompt_cache;
use crate::tools::{self, Tool, ToolName, Uses};

/// One tool a call may use, and how many times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ToolUse {
    pub tool: ToolName,
    /// The most uses one call makes, or, where the provider takes no cap, the
    /// number its results are bounded by.
    pub uses: u32,
    /// Whether the provider stops at `uses` (or makes exactly that many).
    pub capped: bool,
}

/// What a call may do beyond a prompt and a reply.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Shape {
    pub tools: Vec<ToolUse>,
    /// It may write to Anthropic's 1-hour cache.
    pub one_hour: bool,
}

impl Shape {
    /// The shape of a call with `tools` to a provider of `kind`.
    pub fn new(kind: ProviderKind, tools: &[Tool], one_hour: bool) -> Self {
        let tools = tools
            .iter()
            .map(|t| match tools::uses(kind, t.name) {
                Uses::Capped => ToolUse {
                    tool: t.name,
                    uses: t.uses(),
                    capped: true,
                },
                Uses::One => ToolUse {
                    tool: t.name,
                    uses: 1,
                    capped: true,
                },
                Uses::Uncapped => ToolUse {
                    tool: t.name,
                    uses: t.uses(),
                    capped: false,
                },
            })
            .collect();
        Shape { tools, one_hour }
    }

    /// Every tool use one call may make.
    fn uses(&self) -> u64 {
        self.tools.iter().map(|t| u64::from(t.uses)).sum()
    }

    /// The most input tokens a call whose prompt is at most `prompt` tokens and
    /// whose reply is at most `output` tokens may be billed.
    pub fn input_bound(&self, prompt: u64, output: u64) -> u64 {
        let uses = self.uses();
        if uses == 0 {
            return prompt;
        }
        let result = self
            .tools
            .iter()
            .map(|t| t.tool.result_tokens().bound)
            .max()
            .unwrap_or(0);
        let reads = uses.saturating_mul(uses.saturating_add(1)) / 2;
        prompt
            .saturating_mul(uses.saturating_add(1))
            .saturating_add(output.saturating_mul(uses))
            .saturating_add(result.saturating_mul(reads))
    }

    /// The input tokens a call whose prompt is `prompt` tokens is expected to be billed.
    pub fn input_expected(&self, prompt: u64) -> u64 {
        self.tools.iter().fold(prompt, |sum, t| {
            sum.saturating_add(u64::from(t.uses).saturating_mul(t.tool.result_tokens().expected))
        })
    }
}

/// The fewest prompt tokens a provider of `kind` caches for `model`, or `None`
/// when byok-flow does nothing with a cacheable prefix there (Gemini caches on
/// its own with no key; OpenAI-compatible servers are left alone).
pub fn cache_minimum(kind: ProviderKind, model: &str, price: Option<&Price>) -> Option<u64> {
    match kind {
        ProviderKind::Anthropic => Some(
            price
                .and_then(|p| p.cache_min_tokens)
                .unwrap_or_else(|| prompt_cache::default_minimum(model)),
        ),
        ProviderKind::Mock => Some(prompt_cache::default_minimum(model)),
        ProviderKind::Openai => Some(prompt_cache::OPENAI_MINIMUM),
        ProviderKind::Gemini | ProviderKind::OpenaiCompatible => None,
    }
}

/// What caching a call's shared prefix is expected to do to its cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CacheEstimate {
    /// The tokens of the prefix every call of the agent shares.
    pub prefix_tokens: u64,
    /// What the first call pays on top for writing it (Anthropic's write premium;
    /// nothing where the provider caches on its own).
    pub first_call_extra: Usd,
    /// What each later call saves by reading it instead.
    pub later_call_saving: Usd,
}

impl CacheEstimate {
    /// What caching `prefix_tokens` costs the first call and saves each later one,
    /// for a provider of `kind`.
    pub fn new(price: &Price, kind: ProviderKind, prefix_tokens: u64, one_hour: bool) -> Self {
        let rates = price.rates;
        let at = |rate: u64| Usd::of_tokens(prefix_tokens, rate);
        let plain = at(rates.input);
        // Anthropic (and the mock standing in for it) bill the write; `OpenAI` does not.
        let marks = matches!(kind, ProviderKind::Anthropic | ProviderKind::Mock);
        let write = if !marks {
            plain
        } else if one_hour {
            at(rates.cache_write_1h())
        } else {
            at(rates.cache_write())
        };
        CacheEstimate {
            prefix_tokens,
            first_call_extra: write.saturating_sub(plain),
            later_call_saving: plain.saturating_sub(at(rates.cache_read())),
        }
    }
}

impl Price {
    /// What the tool uses of a call of this shape cost at most: `None` when a fee
    /// is unknown, or charged per use with no cap on the uses.
    pub fn worst_fees(&self, shape: &Shape) -> Option<Usd> {
        shape.tools.iter().try_fold(Usd::ZERO, |sum, t| {
            let fee = self.tools.get(t.tool)?;
            if !t.capped && !fee.per_request && fee.per_use > Usd::ZERO {
                return None;
            }
            Some(sum + fee.cost(u64::from(t.uses)))
        })
    }

    /// The most a call of this shape can cost, with a prompt of at most `prompt`
    /// tokens and `output` output tokens at most; `None` when it has no bound.
    pub fn worst_call(&self, shape: &Shape, prompt: u64, output: u64) -> Option<Usd> {
        let input = shape.input_bound(prompt, output);
        Some(self.worst_tokens(input, output, shape.one_hour) + self.worst_fees(shape)?)
    }

    /// What a call of this shape is expected to cost, with a prompt of `prompt`
    /// tokens and a reply of `output` tokens, every tool used as often as it may.
    pub fn expected_call(&self, shape: &Shape, prompt: u64, output: u64) -> Usd {
        let fees: Usd = shape
            .tools
            .iter()
            .filter_map(|t| Some(self.tools.get(t.tool)?.cost(u64::from(t.uses))))
            .sum();
        self.expected(shape.input_expected(prompt), output) + fees
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cost::{Rates, ToolFee, ToolFees, rate_per_million};
    use crate::usage::Usage;

    fn sonnet() -> Price {
        Price {
            rates: Rates {
                input: rate_per_million(3.0),
                output: rate_per_million(15.0),
                cache_read: Some(rate_per_million(0.3)),
                cache_write: Some(rate_per_million(3.75)),
                cache_write_1h: Some(rate_per_million(6.0)),
            },
            tools: ToolFees {
                web_search: Some(ToolFee {
                    per_use: Usd::from_dollars(0.01),
                    per_request: false,
                }),
                web_fetch: Some(ToolFee::default()),
            },
            ..Price::default()
        }
    }

    fn search(max_uses: u32) -> Tool {
        Tool {
            max_uses: Some(max_uses),
            ..Tool::named(ToolName::WebSearch)
        }
    }

    #[test]
    fn a_call_with_searches_reserves_every_pass_and_fee() {
        let shape = Shape::new(ProviderKind::Anthropic, &[search(2)], false);
        // 1,000 × 3 passes + 500 × 2 + 10,000 × (2 + 1) = 34,000 input tokens.
        assert_eq!(shape.input_bound(1_000, 500), 34_000);
        let worst = sonnet().worst_call(&shape, 1_000, 500).unwrap();
        assert_eq!(
            worst,
            Usd::from_dollars(34_000.0 * 3.75e-6 + 500.0 * 15e-6 + 0.02)
        );
        // Whatever the provider reports within those bounds costs no more.
        let used = Usage {
            input: 20_000,
            cache_write: 10_000,
            cache_read: 4_000,
            output: 500,
            web_search: 2,
            ..Usage::default()
        };
        assert!(sonnet().cost(&used) <= worst);
        assert_eq!(shape.input_expected(1_000), 11_000);
        assert_eq!(
            sonnet().expected_call(&shape, 1_000, 500),
            Usd::from_dollars(11_000.0 * 3e-6 + 500.0 * 15e-6 + 0.02)
        );
    }

    #[test]
    fn search_models_search_once_and_uncapped_per_query_fees_have_no_bound() {
        let shape = Shape::new(
            ProviderKind::Openai,
            &[Tool::named(ToolName::WebSearch)],
            false,
        );
        assert_eq!(shape.tools[0].uses, 1);
        let gemini = Shape::new(
            ProviderKind::Gemini,
            &[Tool::named(ToolName::WebSearch)],
            false,
        );
        let mut per_query = sonnet();
        assert_eq!(per_query.worst_call(&gemini, 10, 10), None);
        per_query.tools.web_search = Some(ToolFee {
            per_use: Usd::from_dollars(0.035),
            per_request: true,
        });
        let worst = per_query.worst_call(&gemini, 10, 10).unwrap();
        assert!(worst >= Usd::from_dollars(0.035));
        assert_eq!(
            per_query.cost(&Usage {
                web_search: 4,
                ..Usage::default()
            }),
            Usd::from_dollars(0.035),
            "one fee per grounded prompt"
        );
    }

    #[test]
    fn one_hour_writes_reserve_at_their_own_rate() {
        let plain = Shape::default();
        let hour = Shape {
            one_hour: true,
            ..Shape::default()
        };
        assert_eq!(
            sonnet().worst_call(&plain, 1_000, 0),
            Some(Usd::from_dollars(0.00375))
        );
        assert_eq!(
            sonnet().worst_call(&hour, 1_000, 0),
            Some(Usd::from_dollars(0.006))
        );
        let written = Usage {
            cache_write_1h: 1_000,
            ..Usage::default()
        };
        assert_eq!(sonnet().cost(&written), Usd::from_dollars(0.006));
        assert_eq!(sonnet().uncached_cost(&written), Usd::from_dollars(0.003));
    }
}
