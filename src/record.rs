//! The run record: what happened to each agent and to the run as a whole. It is
//! what `--json` prints, what `--out DIR/run.json` holds, and what every report
//! reads. It never holds a key.

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use crate::cost::Usd;
use crate::providers::call::Attempt;
use crate::usage::Usage;

/// How an agent ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentStatus {
    Succeeded,
    Failed,
    Skipped,
    Cancelled,
}

impl AgentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AgentStatus::Succeeded => "ok",
            AgentStatus::Failed => "failed",
            AgentStatus::Skipped => "skipped",
            AgentStatus::Cancelled => "cancelled",
        }
    }
}

/// One agent's part of a run.
#[derive(Debug, Clone, Serialize)]
pub struct AgentRecord {
    pub name: String,
    pub provider: String,
    pub model: String,
    pub status: AgentStatus,
    /// Why it failed or was skipped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub seconds: f64,
    /// Tokens used: as the providers reported them, or, where they did not,
    /// counted by byok-flow (`counted_locally`).
    pub usage: Usage,
    /// Some of `usage` was counted by byok-flow, not reported by the provider (a
    /// server that reports no usage, a reply cut off): it is approximate, and so
    /// is `cost_usd`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub counted_locally: bool,
    /// Dollars for `usage`; `null` when a model it called has no price (never 0 for
    /// that: unpriced is not free).
    pub cost_usd: Option<f64>,
    /// The bill of one of its calls is unknown: it was cut off (time-out, dropped
    /// stream, Ctrl-C) or unreadable after the request was sent, and the provider
    /// may have billed all of it.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub bill_unknown: bool,
    /// With `bill_unknown`: the most it may have cost, each unknown bill at its
    /// call's worst case, as the budget counted it (absent when that is unknown).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_cost_usd: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub json: Option<serde_json::Value>,
    /// `provider/model` that answered, when a fallback did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answered_by: Option<String>,
    /// Every call made, in order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub attempts: Vec<Attempt>,
    /// Its reply came from the cache: no call, no tokens, $0.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub cached: bool,
    /// It failed because its key could not be read, decrypted or sent.
    #[serde(skip)]
    pub key_failure: bool,
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Succeeded,
    Failed,
    Interrupted,
    /// Agents were skipped so that spend stays under the budget.
    BudgetReached,
}

/// A whole run.
#[derive(Debug, Clone, Serialize)]
pub struct RunRecord {
    pub run_id: String,
    pub workflow: String,
    pub file: String,
    pub started_at: String,
    pub seconds: f64,
    pub status: RunStatus,
    /// Whether every agent was answered by the mock provider.
    pub mock: bool,
    pub inputs: IndexMap<String, String>,
    pub agents: Vec<AgentRecord>,
    /// The workflow's `outputs`, or the outputs of agents nothing depends on.
    pub outputs: IndexMap<String, String>,
    pub usage: Usage,
    /// Dollars spent, to the micro-dollar; `null` when an agent's model has no
    /// price (see `unpriced_agents`). Approximate when an agent's usage was
    /// `counted_locally`.
    pub cost_usd: Option<f64>,
    /// Agents whose cost is unknown because their model has no price.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unpriced_agents: Vec<String>,
    /// When an agent's bill is unknown (`bill_unknown`): the most the run may have
    /// cost, as the budget counted it; absent otherwise, or when unknown too.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_cost_usd: Option<f64>,
    /// The spending ceiling the run was held to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub budget_usd: Option<f64>,
}

impl RunRecord {
    /// The exit code the run's outcome maps to (SPEC §3).
    pub fn failed_agents(&self) -> usize {
        self.agents
            .iter()
            .filter(|a| a.status == AgentStatus::Failed)
            .count()
    }

    /// Sets the run's usage and dollars from its agents': the total cost (`None`
    /// with an unpriced agent, which `unpriced_agents` names), and the most it may
    /// have cost when an agent's bill is unknown.
    pub fn total_agents(&mut self) {
        let mut usage = Usage::default();
        for a in &self.agents {
            usage += a.usage;
        }
        self.usage = usage;
        self.unpriced_agents = self
            .agents
            .iter()
            .filter(|a| a.cost_usd.is_none())
            .map(|a| a.name.clone())
            .collect();
        // Summed exactly, as the agents' dollars are exact to the micro-dollar.
        let sum = |costs: &mut dyn Iterator<Item = Option<f64>>| {
            costs
                .map(|c| c.map(Usd::from_dollars))
                .sum::<Option<Usd>>()
                .map(Usd::micro_dollars)
        };
        self.cost_usd = sum(&mut self.agents.iter().map(|a| a.cost_usd));
        self.max_cost_usd = if self.agents.iter().any(|a| a.bill_unknown) {
            sum(&mut self.agents.iter().map(|a| {
                if a.bill_unknown {
                    a.max_cost_usd
                } else {
                    a.cost_usd
                }
            }))
        } else {
            None
        };
    }

    /// What the priced agents cost: the whole cost, or, with unpriced agents, a
    /// lower bound of it.
    pub fn priced_usd(&self) -> f64 {
        self.agents
            .iter()
            .filter_map(|a| a.cost_usd.map(Usd::from_dollars))
            .sum::<Usd>()
            .micro_dollars()
    }

    /// Whether an agent's usage was counted by byok-flow.
    pub fn counted_locally(&self) -> bool {
        self.agents.iter().any(|a| a.counted_locally)
    }
}

/// A fresh run id: time-ordered and unique enough for one user's history.
pub fn new_run_id() -> String {
    use std::time::{SystemTime, UNIX_EPOCH};
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let noise = u64::from(std::process::id()).wrapping_mul(0x9e37_79b9_7f4a_7c15)
        ^ u64::from(now.subsec_nanos());
    format!("{}-{:06x}", now.as_secs(), noise & 0xff_ffff)
}
