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
pub mod budget;
pub mod check;
pub mod diff;
pub mod estimate;
mod items;
pub mod lifecycle;
pub mod limits;
pub mod prices;
pub mod ratio;
pub mod tokens;

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
}

impl Rates {
    fn cache_read(&self) -> Rate {
        self.cache_read.unwrap_or(self.input)
    }

    fn cache_write(&self) -> Rate {
        self.cache_write.unwrap_or(self.input)
    }

    /// The dearest rate an input token can be billed at.
    fn dearest_input(&self) -> Rate {
        self.input.max(self.cache_read()).max(self.cache_write())
    }

    /// Each rate the larger of the two.
    fn max(self, other: Rates) -> Rates {
        Rates {
            input: self.input.max(other.input),
            output: self.output.max(other.output),
            cache_read: Some(self.cache_read().max(other.cache_read())),
            cache_write: Some(self.cache_write().max(other.cache_write())),
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
}

impl Price {
    /// No charge: the mock provider.
    pub fn free() -> Self {
        Price::default()
    }

    /// The rates a request with this many input tokens is billed at.
    fn rates_for(&self, input_tokens: u64) -> Rates {
        match self.long_context {
            Some((above, rates)) if input_tokens > above => rates,
            _ => self.rates,
        }
    }

    /// What a call cost, from the usage its provider reported: uncached input, cache
    /// reads, cache writes and output, each at its own rate.
    pub fn cost(&self, usage: &Usage) -> Usd {
        let input = usage
            .input
            .saturating_add(usage.cache_read)
            .saturating_add(usage.cache_write);
        let rates = self.rates_for(input);
        Usd::of_tokens(usage.input, rates.input)
            + Usd::of_tokens(usage.cache_read, rates.cache_read())
            + Usd::of_tokens(usage.cache_write, rates.cache_write())
            + Usd::of_tokens(usage.output, rates.output)
    }

    /// The expected cost of `input` uncached input tokens and `output` output tokens.
    pub fn expected(&self, input: u64, output: u64) -> Usd {
        let rates = self.rates_for(input);
        Usd::of_tokens(input, rates.input) + Usd::of_tokens(output, rates.output)
    }

    /// The most a call with at most `input` input and `output` output tokens can cost,
    /// whichever way its input is split between cache reads, writes and plain input.
    pub fn worst_case(&self, input: u64, output: u64) -> Usd {
        let rates = match self.long_context {
            Some((above, tier)) if input > above => self.rates.max(tier),
            _ => self.rates,
        };
        Usd::of_tokens(input, rates.dearest_input()) + Usd::of_tokens(output, rates.output)
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
            },
        ));
        assert_eq!(price.expected(200_000, 0), Usd::from_dollars(0.6));
        assert_eq!(price.expected(200_001, 0), Usd::from_dollars(1.200_006));
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
