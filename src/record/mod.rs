//! The run record: what happened to each agent and to the run as a whole. It is
//! what `--json` prints, what `--out DIR/run.json` holds, and what every report
//! reads (`byok-flow report` reads `run.json` back through these types, so a
//! field added here reaches it). It never holds a key.
//!
//! Fields added after the first release are optional or defaulted when read, so
//! the report of an older `run.json` still opens.

pub mod spool;

use indexmap::IndexMap;
use serde::{Deserialize, Deserializer, Serialize};

use crate::cost::Usd;
use crate::dag::EdgeKind;
use crate::providers::call::Attempt;
use crate::tools::Citation;
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
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AgentRecord {
    /// The agent's name; `NAME[N]` for item N of a map agent (`for_each`).
    pub name: String,
    /// The item of a map agent this record is (0-based).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item: Option<usize>,
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
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub counted_locally: bool,
    /// Dollars for `usage`; `null` when a model it called has no price (never 0 for
    /// that: unpriced is not free).
    pub cost_usd: Option<f64>,
    /// The bill of one of its calls is unknown: it was cut off (time-out, dropped
    /// stream, Ctrl-C) or unreadable after the request was sent, and the provider
    /// may have billed all of it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub bill_unknown: bool,
    /// With `bill_unknown`: the most it may have cost, each unknown bill at its
    /// call's worst case, as the budget counted it (absent when that is unknown).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_cost_usd: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    pub json: Option<serde_json::Value>,
    /// `provider/model` that answered, when a fallback did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answered_by: Option<String>,
    /// Every call made, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attempts: Vec<Attempt>,
    /// Its reply came from the cache: no call, no tokens, $0.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cached: bool,
    /// The agents it waits for, and why (its templates read their output, or only
    /// `needs:` orders them): the squad's edges, so a report can draw the graph.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<Dependency>,
    /// When it became ready, waited, started and ended; `None` when it never
    /// became ready (an agent it needs did not succeed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timing: Option<Timing>,
    /// What the estimate before the run said it would cost, when there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimate: Option<CostEstimate>,
    /// The sources its reply cites (server-side tools): `{url, title, quoted}`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub citations: Vec<Citation>,
    /// What the provider's prompt cache saved, in dollars, against the same tokens
    /// uncached (below zero when cache writes were not read back); absent when
    /// nothing was cached or the model is unpriced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_saved_usd: Option<f64>,
    /// It failed because its key could not be read, decrypted or sent.
    #[serde(skip)]
    pub key_failure: bool,
}

/// A field that is there, `null` included: `Some`. (Serde reads a `null` as
/// `None` otherwise, and a reply of JSON `null` would not read back as itself.)
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<serde_json::Value>, D::Error> {
    serde_json::Value::deserialize(d).map(Some)
}

/// An edge into an agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dependency {
    /// The agent waited for.
    pub agent: String,
    /// `data` when a template reads its output, `order` when only `needs:` says so.
    pub kind: EdgeKind,
}

/// When things happened to an agent, in seconds since the run started. From
/// `ready` it waited for a free slot (`--concurrency`, a provider's
/// `max_concurrency`) until `preparing`, when its prompt was rendered and counted;
/// from `held` it waited for the budget (running agents to settle) until
/// `started`. Its attempts and retry waits, inside `started`..`ended`, are in
/// `attempts`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Timing {
    /// Every agent it depends on had finished.
    pub ready: f64,
    /// A slot was free: its prompt was being rendered and counted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preparing: Option<f64>,
    /// The budget first held it back: it could have started but for the money
    /// running agents might still spend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held: Option<f64>,
    /// It started (for a cached agent: its answer was read).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started: Option<f64>,
    /// It finished, failed, or was given up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended: Option<f64>,
}

/// Dollars an estimate expected a run or an agent to cost.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct CostEstimate {
    /// `null` when unpriced.
    pub expected_usd: Option<f64>,
    /// The most it could cost (what the budget reserves); `null` when unpriced or
    /// unbounded.
    pub max_usd: Option<f64>,
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
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunRecord {
    pub run_id: String,
    /// The byok-flow that ran it.
    #[serde(default)]
    pub version: String,
    pub workflow: String,
    pub file: String,
    /// SHA-256 of the workflow file's text, in hex: which version of the file ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow_sha256: Option<String>,
    pub started_at: String,
    pub seconds: f64,
    pub status: RunStatus,
    /// Whether every agent was answered by the mock provider.
    pub mock: bool,
    #[serde(default)]
    pub inputs: IndexMap<String, String>,
    pub agents: Vec<AgentRecord>,
    /// The workflow's `outputs`, or the outputs of agents nothing depends on.
    #[serde(default)]
    pub outputs: IndexMap<String, String>,
    pub usage: Usage,
    /// Dollars spent, to the micro-dollar; `null` when an agent's model has no
    /// price (see `unpriced_agents`). Approximate when an agent's usage was
    /// `counted_locally`.
    pub cost_usd: Option<f64>,
    /// Agents whose cost is unknown because their model has no price.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unpriced_agents: Vec<String>,
    /// When an agent's bill is unknown (`bill_unknown`): the most the run may have
    /// cost, as the budget counted it; absent otherwise, or when unknown too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_cost_usd: Option<f64>,
    /// The spending ceiling the run was held to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_usd: Option<f64>,
    /// What the estimate before the run said the whole run would cost (none for
    /// `--mock`, which is free).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimate: Option<CostEstimate>,
    /// What prompt caching saved over the run (the agents' `cache_saved_usd`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_saved_usd: Option<f64>,
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
        self.cache_saved_usd = sum_saved(self.agents.iter().map(|a| a.cache_saved_usd));
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
/// The sum of what prompt caching saved agents (`None` for those it saved nothing),
/// in micro-dollars, so the sum of exact amounts stays exact; `None` when none did.
pub fn sum_saved(saved: impl Iterator<Item = Option<f64>>) -> Option<f64> {
    let saved: Vec<f64> = saved.flatten().collect();
    (!saved.is_empty()).then(|| {
        #[allow(clippy::cast_possible_truncation)]
        let micro: i64 = saved.iter().map(|s| (s * 1e6).round() as i64).sum();
        #[allow(clippy::cast_precision_loss)]
        let dollars = micro as f64 / 1e6;
        dollars
    })
}
