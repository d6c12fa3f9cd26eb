//! The budget while a run goes (SPEC §6): a [`Gate`] that, before each agent
//! starts, reserves the most it can cost (its now-known input plus `max_tokens` of
//! output, at its price) and never starts one whose reservation could take spend
//! past the ceiling. While other agents run it waits for them to settle, since a
//! settled agent usually costs less than it reserved; with nothing running and
//! still no room, it gives the agent up (skipped for budget). When an agent
//! settles, its reservation becomes what it really cost.
//!
//! The arithmetic is exact ([`Usd`]), so "spend + reservations ≤ ceiling" holds to
//! the pico-dollar whenever each call costs at most its reservation.

use std::collections::HashMap;

use super::Usd;
use crate::runner::{AgentRunner, Prepared};
use crate::scheduler::{Admission, Gate, Settled};

/// Money spent and reserved against a ceiling.
#[derive(Debug, Clone)]
pub struct Ledger {
    ceiling: Usd,
    spent: Usd,
    reserved: HashMap<usize, Usd>,
}

impl Ledger {
    pub fn new(ceiling: Usd) -> Self {
        Ledger {
            ceiling,
            spent: Usd::ZERO,
            reserved: HashMap::new(),
        }
    }

    /// What settled agents cost.
    pub fn spent(&self) -> Usd {
        self.spent
    }

    /// Spent plus what running agents could still cost.
    pub fn committed(&self) -> Usd {
        self.spent + self.reserved.values().copied().sum()
    }

    /// Reserves `worst` for `agent` if it fits under the ceiling. An unknown worst
    /// case never fits.
    pub fn admit(&mut self, agent: usize, worst: Option<Usd>, running: usize) -> Admission {
        match worst {
            Some(worst) if self.committed() + worst <= self.ceiling => {
                self.reserved.insert(agent, worst);
                Admission::Start
            }
            _ if running > 0 => Admission::Wait,
            Some(worst) => Admission::Skip(format!(
                "its worst case, {worst}, is more than the {} left of {}",
                self.ceiling.saturating_sub(self.committed()),
                self.ceiling
            )),
            None => Admission::Skip(
                "its worst case is unknown (no price, or no `max_tokens` and no known output limit)"
                    .into(),
            ),
        }
    }

    /// Replaces `agent`'s reservation with what it cost; `None` (unknown) keeps the
    /// whole reservation as spent.
    pub fn settle(&mut self, agent: usize, actual: Option<Usd>) {
        let reserved = self.reserved.remove(&agent).unwrap_or_default();
        self.spent += actual.unwrap_or(reserved);
    }
}

/// The budget gate of a run.
#[derive(Debug, Clone)]
pub struct BudgetGate {
    ledger: Ledger,
}

impl BudgetGate {
    /// A gate holding a run's agents to `ceiling`.
    pub fn new(ceiling: Usd) -> Self {
        BudgetGate {
            ledger: Ledger::new(ceiling),
        }
    }

    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }
}

impl Gate<AgentRunner> for BudgetGate {
    fn admit(&mut self, agent: usize, prepared: &Prepared, running: usize) -> Admission {
        match self.ledger.admit(agent, prepared.worst, running) {
            Admission::Skip(why) => Admission::Skip(format!(
                "{why} ({} input tokens at most, `max_tokens` {}); lower its `max_tokens` or raise the budget",
                prepared.input.bound,
                prepared
                    .request
                    .max_tokens
                    .map_or_else(|| "unset".to_string(), |m| m.to_string()),
            )),
            other => other,
        }
    }

    fn settled(
        &mut self,
        agent: usize,
        how: Settled<'_, crate::runner::AgentOutput, crate::runner::AgentFailure>,
    ) {
        // The runner prices what each model used; `None` keeps the reservation.
        let actual = match how {
            Settled::Finished(out) => out.cost,
            Settled::Failed(failure) => failure.cost,
            Settled::Lost => None,
        };
        self.ledger.settle(agent, actual);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_while_others_run_then_gives_up() {
        let mut ledger = Ledger::new(Usd::from_pico(100));
        assert_eq!(
            ledger.admit(0, Some(Usd::from_pico(60)), 0),
            Admission::Start
        );
        assert_eq!(
            ledger.admit(1, Some(Usd::from_pico(60)), 1),
            Admission::Wait
        );
        ledger.settle(0, Some(Usd::from_pico(10)));
        assert_eq!(
            ledger.admit(1, Some(Usd::from_pico(60)), 0),
            Admission::Start
        );
        assert_eq!(ledger.committed(), Usd::from_pico(70));
        assert!(matches!(
            ledger.admit(2, Some(Usd::from_pico(31)), 0),
            Admission::Skip(_)
        ));
        assert_eq!(
            ledger.admit(2, Some(Usd::from_pico(30)), 1),
            Admission::Start
        );
        assert_eq!(ledger.committed(), Usd::from_pico(100));
    }

    #[test]
    fn unknown_costs_count_in_full() {
        let mut ledger = Ledger::new(Usd::from_pico(100));
        assert!(matches!(ledger.admit(0, None, 0), Admission::Skip(_)));
        assert_eq!(
            ledger.admit(0, Some(Usd::from_pico(40)), 0),
            Admission::Start
        );
        ledger.settle(0, None);
        assert_eq!(ledger.spent(), Usd::from_pico(40));
    }
}
