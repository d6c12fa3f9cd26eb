//! Cost (SPEC §6): the pricing table and a workflow's prices ([`prices`]), token
//! counting for estimates ([`tokens`]), what a run will cost ([`estimate`]), what
//! a call did cost ([`Price::cost`], added up per agent in [`bill`]), the budget
//! that is never overshot ([`budget`]), and what providers are seen to bill for
//! input beyond the count ([`ratio`]).
//!
//! Dollars are held exactly, as whole pico-dollars ([`Usd`]): a price per token
//! is an integer number of pico-dollars (one millionth of a dollar per million
//! tokens), so tokens × prices, sums and comparisons with a budget are exact
//! integer arithmetic and a ceiling check cannot be fooled by rounding.

pub mod bill;
mod bpe;
pub mod budget;
pub mod call;
pub mod check;
pub mod diff;
pub mod estimate;
mod items;
pub mod lifecycle;
pub mod limits;
pub mod prices;
pub mod ratio;
pub mod tokens;

pub use items::failing_list;

#[cfg(test)]
mod tests_run;

use std::fmt;
use std::iter::Sum;
use std::ops::{Add, AddAssign};

use serde::Serialize;

use crate::usage::Usage;

/// Pico-dollars in a dollar.
const PICO: f64 = 1e12;

/// An amount of US dollars, exact to the pico-dollar (10⁻¹² $). Arithmetic saturates
/// at about $18 million rather than overflowing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Usd(u64);

impl Usd {
    pub const ZERO: Usd = Usd(0);

    pub fn from_pico(pico: u64) -> Self {
        Usd(pico)
    }

    pub fn pico(self) -> u64 {
        self.0
    }

    /// Dollars from a decimal amount, rounded to the pico-dollar; negative or NaN is zero.
    pub fn from_dollars(dollars: f64) -> Self {
        let pico = (dollars * PICO).round();
        if pico.is_nan() || pico <= 0.0 {
            Usd(0)
        } else if pico >= u64::MAX as f64 {
            Usd(u64::MAX)
        } else {
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            Usd(pico as u64)
        }
    }

    /// The amount as a decimal, for records and JSON.
    pub fn dollars(self) -> f64 {
        self.0 as f64 / PICO
    }

    /// The amount, rounded to the micro-dollar, as a decimal.
    pub fn micro_dollars(self) -> f64 {
        (self.0 as f64 / 1e6).round() / 1e6
    }

    /// `self - other`, or zero.
    #[must_use]
    pub fn saturating_sub(self, other: Usd) -> Usd {
        Usd(self.0.saturating_sub(other.0))
    }

    /// The price of `tokens` at `rate` pico-dollars per token.
    pub fn of_tokens(tokens: u64, rate: u64) -> Usd {
        Usd(tokens.saturating_mul(rate))
    }
}

impl Add for Usd {
    type Output = Usd;
    fn add(self, other: Usd) -> Usd {
        Usd(self.0.saturating_add(other.0))
    }
}

impl AddAssign for Usd {
    fn add_assign(&mut self, other: Usd) {
        *self = *self + other;
    }
}

impl Sum for Usd {
    fn sum<I: Iterator<Item = Usd>>(iter: I) -> Usd {
        iter.fold(Usd::ZERO, Add::add)
    }
}

impl fmt::Display for Usd {
    /// `$0.0123`: four decimals, enough for a cent's hundredth.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "${:.4}", self.dollars())
    }
}

impl Serialize for Usd {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(self.micro_dollars())
    }
}

/// A price per token, in pico-dollars (= micro-dollars per million tokens).
pub type Rate = u64;

/// A rate from dollars per million tokens, rounded to the micro-dollar per million.
pub fn rate_per_million(dollars: f64) -> Rate {
    Usd::from_dollars(dollars / 1e6).pico()
}

/// Per-token rates of one kind of use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Rates {
    pub input: Rate,
    pub output: Rate,
    /// Input read from the provider's prompt cache; the input rate when unknown.
    pub cache_read: Option<Rate>,
    /// Input written to the provider's prompt cache; the input rate when unknown.
    pub cache_write: Option<Rate>,
    /// Input written to Anthropic's 1-hour cache; twice the input rate when
    /// unknown (Anthropic's documented price), never below `cache_write`.
    pub cache_write_1h: Option<Rate>,
}

impl Rates {
    pub fn cache_read(&self) -> Rate {
        self.cache_read.unwrap_or(self.input)
    }

    pub fn cache_write(&self) -> Rate {
        self.cache_write.unwrap_or(self.input)
    }

    pub fn cache_write_1h(&self) -> Rate {
        self.cache_write_1h
            .unwrap_or_else(|| self.input.saturating_mul(2))
            .max(self.cache_write())
    }

    /// The dearest rate an input token can be billed at; with `one_hour`, when the
    /// call may write to the 1-hour cache.
    fn dearest_input(&self, one_hour: bool) -> Rate {
        let most = self.input.max(self.cache_read()).max(self.cache_write());
        if one_hour {
            most.max(self.cache_write_1h())
        } else {
            most
        }
    }

    /// Each rate the larger of the two.
    fn max(self, other: Rates) -> Rates {
        Rates {
            input: self.input.max(other.input),
            output: self.output.max(other.output),
            cache_read: Some(self.cache_read().max(other.cache_read())),
            cache_write: Some(self.cache_write().max(other.cache_write())),
            cache_write_1h: Some(self.cache_write_1h().max(other.cache_write_1h())),
        }
    }
}

/// What one use of a server-side tool costs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ToolFee {
    /// Dollars per use.
    pub per_use: Usd,
    /// Billed once per request that used the tool, however many times (Gemini 2's
    /// grounding, billed per grounded prompt), not once per use.
    pub per_request: bool,
}

impl ToolFee {
    /// What `uses` uses in one request cost.
    pub fn cost(self, uses: u64) -> Usd {
        let billed = if self.per_request { uses.min(1) } else { uses };
        Usd::from_pico(self.per_use.pico().saturating_mul(billed))
    }
}

/// The fees of a model's server-side tools; `None`: unknown (unpriced).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ToolFees {
    pub web_search: Option<ToolFee>,
    pub web_fetch: Option<ToolFee>,
}

impl ToolFees {
    pub fn get(&self, tool: crate::tools::ToolName) -> Option<ToolFee> {
        match tool {
            crate::tools::ToolName::WebSearch => self.web_search,
            crate::tools::ToolName::WebFetch => self.web_fetch,
        }
    }
}

/// A model's price and limits, resolved from the table or the workflow.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Price {
    pub rates: Rates,
    /// Rates for a request whose input is over `above` tokens (long-context surcharge).
    pub long_context: Option<(u64, Rates)>,
    /// The most input tokens the model takes.
    pub context_window: Option<u64>,
    /// The most output tokens the model produces.
    pub max_output: Option<u64>,
    /// What its server-side tools cost per use.
    pub tools: ToolFees,
    /// The fewest prompt tokens the provider caches (Anthropic's documented minimum).
    pub cache_min_tokens: Option<u64>,
}

impl Price {
    /// No charge: the mock provider.
    pub fn free() -> Self {
        Price {
            tools: ToolFees {
                web_search: Some(ToolFee::default()),
                web_fetch: Some(ToolFee::default()),
            },
            ..Price::default()
        }
    }

    /// The rates a request with this many input tokens is billed at.
    fn rates_for(&self, input_tokens: u64) -> Rates {
        match self.long_context {
            Some((above, rates)) if input_tokens > above => rates,
            _ => self.rates,
        }
    }

    /// What a call cost, from the usage its provider reported: uncached input, cache
    /// reads, cache writes (5-minute and 1-hour) and output, each at its own rate,
    /// and each use of a server-side tool at its fee (a fee the table lacks counts
    /// as nothing here: such a model is reported unpriced before it runs).
    pub fn cost(&self, usage: &Usage) -> Usd {
        let rates = self.rates_for(usage.all_input());
        Usd::of_tokens(usage.input, rates.input)
            + Usd::of_tokens(usage.cache_read, rates.cache_read())
            + Usd::of_tokens(usage.cache_write, rates.cache_write())
            + Usd::of_tokens(usage.cache_write_1h, rates.cache_write_1h())
            + Usd::of_tokens(usage.output, rates.output)
            + self.tool_cost(usage)
    }

    /// What a call's server-side tool uses cost.
    pub fn tool_cost(&self, usage: &Usage) -> Usd {
        let fee = |fee: Option<ToolFee>, uses: u64| fee.map_or(Usd::ZERO, |f| f.cost(uses));
        fee(self.tools.web_search, usage.web_search) + fee(self.tools.web_fetch, usage.web_fetch)
    }

    /// What the same usage would have cost with no prompt cache: every cached
    /// token (read or written) at the plain input rate.
    pub fn uncached_cost(&self, usage: &Usage) -> Usd {
        self.cost(&Usage {
            input: usage.all_input(),
            cache_read: 0,
            cache_write: 0,
            cache_write_1h: 0,
            ..*usage
        })
    }

    /// The expected cost of `input` uncached input tokens and `output` output tokens.
    pub fn expected(&self, input: u64, output: u64) -> Usd {
        let rates = self.rates_for(input);
        Usd::of_tokens(input, rates.input) + Usd::of_tokens(output, rates.output)
    }

    /// The most a call with at most `input` input and `output` output tokens can cost,
    /// whichever way its input is split between cache reads, writes and plain input.
    pub fn worst_case(&self, input: u64, output: u64) -> Usd {
        self.worst_tokens(input, output, false)
    }

    /// [`Price::worst_case`], with `one_hour` when the call may write to the 1-hour cache.
    pub fn worst_tokens(&self, input: u64, output: u64, one_hour: bool) -> Usd {
        let rates = match self.long_context {
            Some((above, tier)) if input > above => self.rates.max(tier),
            _ => self.rates,
        };
        Usd::of_tokens(input, rates.dearest_input(one_hour)) + Usd::of_tokens(output, rates.output)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sonnet() -> Price {
        Price {
            rates: Rates {
                input: rate_per_million(3.0),
                output: rate_per_million(15.0),
                cache_read: Some(rate_per_million(0.3)),
                cache_write: Some(rate_per_million(3.75)),
                cache_write_1h: Some(rate_per_million(6.0)),
            },
            ..Price::default()
        }
    }

    #[test]
    fn rates_are_exact_integers() {
        assert_eq!(rate_per_million(3.0), 3_000_000);
        assert_eq!(rate_per_million(0.0028), 2_800);
        assert_eq!(rate_per_million(0.075), 75_000);
        assert_eq!(Usd::from_dollars(0.5).pico(), 500_000_000_000);
    }

    /// A reply's usage is the provider's word: `u64::MAX` of each kind must price
    /// (at the saturated maximum), not overflow while picking the rate tier.
    #[test]
    fn cost_of_absurd_usage_saturates() {
        let usage = Usage {
            input: u64::MAX,
            output: u64::MAX,
            cache_read: u64::MAX,
            cache_write: u64::MAX,
            ..Default::default()
        };
        assert_eq!(sonnet().cost(&usage), Usd::from_pico(u64::MAX));
    }

    #[test]
    fn cost_prices_each_kind_of_token() {
        let usage = Usage {
            input: 1_000,
            output: 500,
            cache_read: 2_000,
            cache_write: 3_000,
            ..Default::default()
        };
        // 1000×$3 + 2000×$0.30 + 3000×$3.75 + 500×$15, per million.
        assert_eq!(sonnet().cost(&usage), Usd::from_dollars(0.02235));
    }

    #[test]
    fn missing_cache_rates_fall_back_to_input() {
        let price = Price {
            rates: Rates {
                input: 10,
                output: 20,
                ..Rates::default()
            },
            ..Price::default()
        };
        let usage = Usage {
            input: 1,
            output: 1,
            cache_read: 1,
            cache_write: 1,
            ..Default::default()
        };
        assert_eq!(price.cost(&usage).pico(), 10 + 10 + 10 + 20);
    }

    #[test]
    fn long_context_rates_apply_over_the_threshold() {
        let mut price = sonnet();
        price.long_context = Some((
            200_000,
            Rates {
                input: rate_per_million(6.0),
                output: rate_per_million(22.5),
                cache_read: None,
                cache_write: None,
                cache_write_1h: None,
            },
        ));
        assert_eq!(price.expected(200_000, 0), Usd::from_dollars(0.6));
        assert_eq!(price.expected(200_001, 0), Usd::from_dollars(1.200_006));
    }

    #[test]
    fn five_minute_and_one_hour_writes_are_priced_apart() {
        // 1,000 five-minute writes at 1.25x input and 1,000 one-hour writes at 2x.
        let usage = Usage {
            cache_write: 1_000,
            cache_write_1h: 1_000,
            ..Default::default()
        };
        assert_eq!(sonnet().cost(&usage), Usd::from_dollars(0.003_75 + 0.006));
        // A table without the 1-hour price: twice the input price.
        let mut bare = sonnet();
        bare.rates.cache_write_1h = None;
        assert_eq!(bare.cost(&usage), Usd::from_dollars(0.003_75 + 0.006));
    }

    #[test]
    fn long_context_one_hour_writes_are_twice_the_tiers_input() {
        let mut price = sonnet();
        price.long_context = Some((
            200_000,
            Rates {
                input: rate_per_million(6.0),
                output: rate_per_million(22.5),
                cache_read: Some(rate_per_million(0.6)),
                cache_write: Some(rate_per_million(7.5)),
                cache_write_1h: None,
            },
        ));
        let usage = Usage {
            input: 100_000,
            cache_write_1h: 200_000,
            ..Default::default()
        };
        // 100,000 × $6 + 200,000 × $12, per million: the tier's rates, not the base's $6 write.
        assert_eq!(price.cost(&usage), Usd::from_dollars(0.6 + 2.4));
        assert_eq!(price.worst_tokens(300_000, 0, true), Usd::from_dollars(3.6));
    }

    #[test]
    fn worst_case_bounds_every_split_of_the_input() {
        let price = sonnet();
        let worst = price.worst_case(1_000, 100);
        for (input, cache_read, cache_write) in [(1_000, 0, 0), (0, 1_000, 0), (0, 0, 1_000)] {
            let usage = Usage {
                input,
                output: 100,
                cache_read,
                cache_write,
                ..Default::default()
            };
            assert!(price.cost(&usage) <= worst);
        }
    }

    #[test]
    fn display_and_json() {
        assert_eq!(Usd::from_dollars(0.9).to_string(), "$0.9000");
        assert_eq!(
            serde_json::to_string(&Usd::from_dollars(0.123_456_7)).unwrap(),
            "0.123457"
        );
    }
}
