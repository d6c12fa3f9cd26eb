//! The budget as the scheduler's gate: an agent starts only when its first
//! attempt's worst case fits under the ceiling (see [`crate::cost::budget`]).

use std::sync::Arc;

use super::{AgentFailure, AgentOutput, AgentRunner, Prepared};
use crate::cost::budget::Budget;
use crate::scheduler::{Admission, Gate, Settled, Task};

/// The budget gate of a run.
#[derive(Debug, Clone)]
pub struct BudgetGate {
    budget: Arc<Budget>,
}

impl BudgetGate {
    /// The gate of the agents that reserve and pay through `budget`.
    pub fn new(budget: Arc<Budget>) -> Self {
        BudgetGate { budget }
    }
}

impl Gate<AgentRunner> for BudgetGate {
    fn admit(&mut self, agent: Task, prepared: &Prepared, running: usize) -> Admission {
        let admitted = self
            .budget
            .admit(agent, prepared.worst, running, prepared.sent.as_deref());
        let worst = prepared
            .worst
            .map_or_else(|| "unknown".to_string(), |w| w.to_string());
        let counted = if prepared.exact {
            "counted"
        } else {
            "bound, no tokenizer"
        };
        let input = prepared.input.bound;
        match &admitted.admission {
            Admission::Start => tracing::debug!(
                "budget: admitted, reserving {worst} ({input} input tokens, {counted}); committed {} -> {} of {}",
                admitted.before,
                admitted.after,
                admitted.ceiling
            ),
            Admission::Wait => tracing::debug!(
                "budget: waiting for {running} running agent(s) to settle: its worst case {worst} ({input} input tokens, {counted}) does not fit in the {} left",
                admitted.ceiling.saturating_sub(admitted.before)
            ),
            Admission::Skip(why) => tracing::info!("budget: skipped: {why}"),
        }
        match admitted.admission {
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

    fn settled(&mut self, agent: Task, how: Settled<'_, AgentOutput, AgentFailure>) {
        // Each attempt was paid for as it ended; a lost task keeps what it held.
        self.budget.finish(agent, matches!(how, Settled::Lost));
    }
}
