//! What providers really bill, against what byok-flow's reservations counted
//! (SPEC §6).
//!
//! A reservation counts a request's input with an upper bound ([`super::tokens`]),
//! but a server may tokenize differently (an approximated family, a proxy, a
//! model behind a gateway) and bill more. Its output is bounded by `max_tokens`,
//! but a server may bill more (a reasoning model whose thinking its server does
//! not count in the limit). Each reply that reports its tokens teaches the
//! largest billed/counted ratio seen for its `(provider, model)`, one for input
//! and one for output, and later reservations for that model scale their counts
//! by them, so the ceiling holds from the first reply on. Only the calls reserved
//! before that first reply rest on the bounds alone (README, "Budgets").
//!
//! The ratio is kept as the pair of counts it came from, so scaling is exact
//! integer arithmetic, and a ratio below 1 never lowers a count.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

/// The largest billed/counted ratio of one kind of token (input, or output)
/// seen per `(provider, model)`.
#[derive(Debug, Default)]
pub struct Ratios {
    seen: Mutex<HashMap<(String, String), Ratio>>,
}

/// `billed / counted`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Ratio {
    billed: u64,
    counted: u64,
}

impl Ratio {
    fn greater_than(self, other: Ratio) -> bool {
        u128::from(self.billed) * u128::from(other.counted)
            > u128::from(other.billed) * u128::from(self.counted)
    }
}

impl Ratios {
    /// A reply to `provider/model` billed `billed` tokens (for input: plain, cache
    /// reads and cache writes) where its reservation counted `counted`.
    pub fn learn(&self, provider: &str, model: &str, billed: u64, counted: u64) {
        if counted == 0 || billed <= counted {
            return;
        }
        let ratio = Ratio { billed, counted };
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = seen
            .entry((provider.to_string(), model.to_string()))
            .or_insert(ratio);
        if ratio.greater_than(*entry) {
            *entry = ratio;
        }
    }

    /// `counted` tokens of a request to `provider/model`, scaled by the
    /// largest ratio seen for it (rounded up); as is when none was above 1.
    pub fn scale(&self, provider: &str, model: &str, counted: u64) -> u64 {
        let seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        match seen.get(&(provider.to_string(), model.to_string())) {
            None => counted,
            Some(r) => {
                let scaled =
                    (u128::from(counted) * u128::from(r.billed)).div_ceil(u128::from(r.counted));
                u64::try_from(scaled).unwrap_or(u64::MAX)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_largest_ratio_per_model_and_never_scales_down() {
        let ratios = Ratios::default();
        assert_eq!(ratios.scale("p", "m", 100), 100);
        ratios.learn("p", "m", 90, 100);
        assert_eq!(ratios.scale("p", "m", 100), 100);
        ratios.learn("p", "m", 130, 100);
        ratios.learn("p", "m", 110, 100);
        assert_eq!(ratios.scale("p", "m", 100), 130);
        assert_eq!(ratios.scale("p", "m", 7), 10, "rounded up");
        assert_eq!(ratios.scale("p", "other", 100), 100);
        assert_eq!(ratios.scale("q", "m", 100), 100);
        ratios.learn("p", "m", u64::MAX, 1);
        assert_eq!(ratios.scale("p", "m", 2), u64::MAX);
        ratios.learn("p", "m", 5, 0);
    }
}
