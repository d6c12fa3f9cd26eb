//! What a dataset run writes (SPEC §8): one [`RowResult`] per row (a line of
//! `results.jsonl` and of stdout), and the [`DatasetRecord`] (`run.json`, `--json`)
//! with the totals and one aggregate per agent name. The record never holds a row:
//! it stays the same size whatever the number of rows; the rows are in the results.
//!
//! The shapes are part of the contract (the README's "Datasets" section shows them);
//! `kind: "dataset"` tells a dataset's `run.json` from a single run's.

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use super::read::Place;
use super::shard::Shard;
use crate::cost::Usd;
use crate::record::RunStatus;
use crate::usage::Usage;

/// How a row ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RowStatus {
    Succeeded,
    /// An agent failed, or the row could not be used.
    Failed,
    /// Agents were skipped so that spend stays under the budget.
    BudgetReached,
    /// The run was interrupted before the row ended.
    Interrupted,
}

/// Why a row failed: the row's place in its file, the agent (when one failed),
/// what went wrong and what to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowError {
    /// The line the row is on (for CSV, the line its record starts on).
    pub line: u64,
    /// The CSV record (1-based, the header not counted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<u64>,
    /// The agent that failed (`NAME[N]` for an item of a map agent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

impl RowError {
    pub fn at(place: Place, message: String) -> Self {
        let (line, record) = match place {
            Place::Line(line) => (line, None),
            Place::Record { record, line } => (line, Some(record)),
        };
        RowError {
            line,
            record,
            agent: None,
            message,
            hint: None,
        }
    }
}

/// One row's result: `{"row": N, "status", "outputs", "cost_usd", "seconds"}`, and
/// `"error"` when it failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RowResult {
    /// The row's 0-based index in its file (what `--shard` divides).
    pub row: u64,
    pub status: RowStatus,
    /// The workflow's `outputs`, or the outputs of the agents nothing depends on
    /// (of those that finished).
    pub outputs: IndexMap<String, String>,
    /// What the row's calls cost; `null` when one was to an unpriced model (a call
    /// cut off after it was sent counts what arrived).
    pub cost_usd: Option<f64>,
    /// Seconds spent in the row's calls, summed (calls overlap, so it may be more
    /// than the row took; a cached answer takes none).
    #[serde(default)]
    pub seconds: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<RowError>,
}

impl RowResult {
    /// The result as one line of JSON, newline included.
    pub fn line(&self) -> String {
        let mut line = serde_json::to_string(self).unwrap_or_else(|e| {
            format!("{{\"row\": {}, \"status\": \"failed\", \"outputs\": {{}}, \"cost_usd\": null, \"seconds\": 0, \"error\": {{\"line\": 0, \"message\": \"the result cannot be written: {e}\"}}}}", self.row)
        });
        line.push('\n');
        line
    }
}

/// How many rows ended which way.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowCounts {
    /// Rows run (in this shard), whatever their end.
    pub total: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub budget_reached: u64,
    pub interrupted: u64,
}

impl RowCounts {
    pub fn add(&mut self, status: RowStatus) {
        self.total += 1;
        match status {
            RowStatus::Succeeded => self.succeeded += 1,
            RowStatus::Failed => self.failed += 1,
            RowStatus::BudgetReached => self.budget_reached += 1,
            RowStatus::Interrupted => self.interrupted += 1,
        }
    }
}

/// Every call of one agent (all its items, over all rows).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentAggregate {
    pub name: String,
    pub provider: String,
    pub model: String,
    /// Calls that settled (cached answers included).
    pub calls: u64,
    pub succeeded: u64,
    pub failed: u64,
    /// Answered from the cache: no call, $0.
    pub cached: u64,
    /// Not run (a dependency failed, the budget, Ctrl-C).
    pub skipped: u64,
    pub usage: Usage,
    /// Dollars; `null` when a call was to an unpriced model.
    pub cost_usd: Option<f64>,
    /// Calls whose bill is unknown (cut off after they were sent): the provider
    /// may have billed all of them, and the budget kept their worst case.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub unknown_bills: u64,
    /// Seconds spent in calls, summed (calls overlap, so more than the run's).
    pub seconds: f64,
    /// What the provider's prompt cache saved against no caching (below zero when
    /// its writes were not read back); absent when nothing was cached or unpriced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_saved_usd: Option<f64>,
}

/// A dataset run: `run.json`, and what `--json` prints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetRecord {
    /// Always `dataset`.
    pub kind: String,
    pub run_id: String,
    pub workflow: String,
    pub file: String,
    /// The rows file (`stdin` for `-`).
    pub rows_file: String,
    /// How many rows the file has (every shard's), when known (not for stdin).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows_in_file: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<Shard>,
    pub started_at: String,
    pub seconds: f64,
    pub status: RunStatus,
    pub mock: bool,
    /// The `--input` values and defaults every row starts from.
    pub inputs: IndexMap<String, String>,
    pub rows: RowCounts,
    /// One aggregate per agent, in the workflow's order.
    pub agents: Vec<AgentAggregate>,
    pub usage: Usage,
    /// Dollars spent, to the micro-dollar; `null` when a call was to an unpriced
    /// model (see `unpriced_agents` and `priced_cost_usd`).
    pub cost_usd: Option<f64>,
    /// What the calls to priced models cost: `cost_usd`, or a lower bound of it.
    pub priced_cost_usd: f64,
    /// Agents with a call to an unpriced model.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unpriced_agents: Vec<String>,
    /// When a call's bill is unknown: the most the run may have cost, each such
    /// call at its worst case (absent otherwise, or when that is unknown too).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_cost_usd: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_usd: Option<f64>,
    /// What prompt caching saved over the run (the agents' `cache_saved_usd`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_saved_usd: Option<f64>,
    /// The first failed rows (at most [`FAILED_ROWS_KEPT`]), with their errors.
    pub failed_rows: Vec<RowResult>,
    /// An agent failed because its key could not be read, decrypted or sent (exit 4).
    #[serde(skip)]
    pub key_failure: bool,
}

/// How many failed rows the record keeps (the results have them all).
pub const FAILED_ROWS_KEPT: usize = 10;

impl DatasetRecord {
    /// The status a run with these rows ends with: interrupted, else failed if a
    /// row failed, else budget reached if one was, else succeeded.
    pub fn status_of(rows: &RowCounts, interrupted: bool) -> RunStatus {
        if interrupted {
            RunStatus::Interrupted
        } else if rows.failed > 0 {
            RunStatus::Failed
        } else if rows.budget_reached > 0 {
            RunStatus::BudgetReached
        } else {
            RunStatus::Succeeded
        }
    }
}

#[allow(clippy::trivially_copy_pass_by_ref)]
fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Adds a known cost to a running total that becomes `None` once one is unknown.
pub fn add_cost(total: &mut Option<Usd>, cost: Option<Usd>) {
    *total = total.zip(cost).map(|(a, b)| a + b);
}
