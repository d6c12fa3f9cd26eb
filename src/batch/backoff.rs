//! How long to wait between two polls of a batch: 5 s doubling to 60 s, each
//! wait jittered by up to ±20% so many waiting runs do not poll in step.
//! `BYOK_FLOW_BATCH_POLL` sets the first wait (tests and the mock use
//! milliseconds); the cap is twelve times it.

use std::time::Duration;

/// The first wait between polls.
pub const FIRST: Duration = Duration::from_secs(5);
/// The longest wait between polls.
pub const MOST: Duration = Duration::from_mins(1);

/// The waits between the polls of one batch.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
    most: Duration,
}

impl Backoff {
    pub fn new(first: Duration) -> Self {
        Backoff {
            next: first,
            most: if first == FIRST { MOST } else { first * 12 },
        }
    }

    /// The first wait from `BYOK_FLOW_BATCH_POLL` (`250ms`, `5s`), else 5 s.
    pub fn from_env() -> Self {
        let first = std::env::var("BYOK_FLOW_BATCH_POLL")
            .ok()
            .and_then(|v| humantime::parse_duration(&v).ok())
            .unwrap_or(FIRST);
        Backoff::new(first)
    }

    /// The next wait, jittered.
    pub fn next_wait(&mut self) -> Duration {
        let base = self.next;
        self.next = (self.next * 2).min(self.most);
        let jitter = rand::random_range(0.8..1.2);
        base.mul_f64(jitter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_from_5s_to_60s_with_jitter() {
        let mut backoff = Backoff::new(FIRST);
        let waits: Vec<f64> = (0..8).map(|_| backoff.next_wait().as_secs_f64()).collect();
        let bases = [5.0, 10.0, 20.0, 40.0, 60.0, 60.0, 60.0, 60.0];
        for (wait, base) in waits.iter().zip(bases) {
            assert!(*wait >= base * 0.8 && *wait <= base * 1.2, "{waits:?}");
        }
        // Jittered: eight waits are not all on their base.
        assert!(waits.iter().zip(bases).any(|(w, b)| (*w - b).abs() > 1e-9));
    }
}
