//! The run record: what happened to each agent and to the run as a whole. It is
//! what `--json` prints, what `--out DIR/run.json` holds, and what every report
//! reads. It never holds a key.

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

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
    pub usage: Usage,
    /// Dollars spent; `None` when the model has no known price.
    pub cost_usd: Option<f64>,
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
    /// Dollars spent, to the micro-dollar; a lower bound when an agent is unpriced.
    pub cost_usd: f64,
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
