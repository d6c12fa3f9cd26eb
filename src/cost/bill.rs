//! What one agent's calls cost, attempt by attempt: tokens (as reported, or
//! counted locally where a provider reported none), dollars, and, when an
//! attempt's bill is unknown, the most it may have been.

use super::prices::Pricing;
use super::{Price, Usd};
use crate::usage::Usage;

/// The bill of an agent's attempts so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bill {
    /// Every token its attempts used: as the providers reported them, or counted
    /// locally where they did not.
    pub usage: Usage,
    /// Some of `usage` was counted locally (a reply without usage, or cut off).
    pub counted_locally: bool,
    /// What `usage` cost, each attempt at its model's price; `None` once an attempt
    /// was made on an unpriced model (whatever it used: unpriced is not $0).
    pub cost: Option<Usd>,
    /// Some attempt's bill is unknown: it was cut off, or its reply was unreadable,
    /// after the request went out, and the provider may have billed all of it.
    pub unknown: bool,
    /// The most it may have cost: `cost`, with every unknown bill at its attempt's
    /// worst case. `None` when one of those is unknown too (no price or no limit).
    pub max_cost: Option<Usd>,
    /// What `usage` would have cost with no prompt cache (every cached token at the
    /// input price): `cost` subtracted from it is what caching saved.
    pub uncached: Option<Usd>,
}

impl Default for Bill {
    /// Nothing yet: no tokens, $0.
    fn default() -> Self {
        Bill {
            usage: Usage::default(),
            counted_locally: false,
            cost: Some(Usd::ZERO),
            unknown: false,
            max_cost: Some(Usd::ZERO),
            uncached: Some(Usd::ZERO),
        }
    }
}

/// One attempt, as it adds to a bill.
#[derive(Debug, Clone, Copy)]
pub struct Attempt<'a> {
    /// What it used, reported or counted.
    pub usage: Usage,
    pub counted_locally: bool,
    /// Its model's price; `None`: unpriced.
    pub price: Option<&'a Price>,
    /// When its bill is unknown: the most it may have cost (`None`: unknown too).
    pub unknown: Option<Option<Usd>>,
}

impl Bill {
    /// What prompt caching saved, in dollars: what the tokens would have cost
    /// uncached, less what they cost (below zero when cache writes were not read
    /// back). `None` when unpriced or when nothing was cached.
    pub fn cache_saved(&self) -> Option<f64> {
        cache_saved(&self.usage, self.uncached, self.cost)
    }

    /// Adds an attempt.
    pub fn add(&mut self, attempt: Attempt<'_>) {
        self.usage += attempt.usage;
        self.counted_locally |= attempt.counted_locally;
        let cost = attempt.price.map(|p| p.cost(&attempt.usage));
        self.cost = self.cost.zip(cost).map(|(a, b)| a + b);
        let uncached = attempt.price.map(|p| p.uncached_cost(&attempt.usage));
        self.uncached = self.uncached.zip(uncached).map(|(a, b)| a + b);
        let most = match attempt.unknown {
            Some(worst) => {
                self.unknown = true;
                // Never below what it is known to have used.
                worst.map(|w| cost.map_or(w, |c| w.max(c)))
            }
            None => cost,
        };
        self.max_cost = self.max_cost.zip(most).map(|(a, b)| a + b);
    }
}

/// What prompt caching would save calls of `model` (`PROVIDER/MODEL`) that used
/// `usage`, at the model's own price whatever `--mock` says: under `--mock` every
/// call is free, so this is what a mock run says caching saves. `None` when the
/// model has no price or nothing was cached.
pub fn listed_saving(pricing: Pricing<'_>, model: &str, usage: &Usage) -> Option<f64> {
    let listed = Pricing {
        mock: false,
        ..pricing
    };
    let price = listed.resolve(model)?.price;
    cache_saved(
        usage,
        Some(price.uncached_cost(usage)),
        Some(price.cost(usage)),
    )
}

/// What prompt caching saved calls that used `usage`, cost `cost` and would have
/// cost `uncached` with no prompt cache (see [`Bill::cache_saved`]).
pub fn cache_saved(usage: &Usage, uncached: Option<Usd>, cost: Option<Usd>) -> Option<f64> {
    if usage.cache_read == 0 && usage.cache_writes() == 0 {
        return None;
    }
    let (uncached, cost) = (uncached?, cost?);
    let pico = i128::from(uncached.pico()) - i128::from(cost.pico());
    #[allow(clippy::cast_precision_loss)]
    Some((pico as f64 / 1e6).round() / 1e6)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cost::{Rates, rate_per_million};

    fn price() -> Price {
        Price {
            rates: Rates {
                input: rate_per_million(1.0),
                output: rate_per_million(2.0),
                ..Rates::default()
            },
            ..Price::default()
        }
    }

    #[test]
    fn attempts_add_up_and_unknown_bills_count_at_their_worst() {
        let price = price();
        let mut bill = Bill::default();
        let used = Usage {
            input: 1_000,
            output: 500,
            ..Usage::default()
        };
        bill.add(Attempt {
            usage: used,
            counted_locally: false,
            price: Some(&price),
            unknown: None,
        });
        assert_eq!(bill.cost, Some(Usd::from_dollars(0.002)));
        assert!(!bill.unknown);
        bill.add(Attempt {
            usage: Usage {
                input: 1_000,
                ..Usage::default()
            },
            counted_locally: true,
            price: Some(&price),
            unknown: Some(Some(Usd::from_dollars(0.01))),
        });
        assert_eq!(bill.cost, Some(Usd::from_dollars(0.003)));
        assert_eq!(bill.max_cost, Some(Usd::from_dollars(0.012)));
        assert!(bill.unknown && bill.counted_locally);
        assert_eq!(bill.usage.input, 2_000);
    }

    #[test]
    fn an_attempt_on_an_unpriced_model_makes_the_cost_unknown_even_with_no_tokens() {
        let mut bill = Bill::default();
        bill.add(Attempt {
            usage: Usage::default(),
            counted_locally: false,
            price: None,
            unknown: None,
        });
        assert_eq!(bill.cost, None);
        assert_eq!(bill.max_cost, None);
    }
}
