//! Reading the history: recent runs, one run as a run record (for the closing
//! table), and spend grouped by provider, model or workflow.

use indexmap::IndexMap;
use rusqlite::{OptionalExtension, Row, params};
use serde::Serialize;

use super::{HistoryError, Store, dollars};
use crate::dataset::record::AgentAggregate;
use crate::record::{AgentRecord, AgentStatus, RunRecord, RunStatus};
use crate::usage::Usage;

/// One run, as `runs list` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    pub run_id: String,
    pub workflow: String,
    pub file: String,
    /// The record's status, or `unfinished` for a run that never recorded its end
    /// (still running, or killed).
    pub status: String,
    pub started_at: String,
    pub seconds: Option<f64>,
    pub mock: bool,
    pub inputs_hash: String,
    pub agents: u64,
    pub succeeded: u64,
    pub cached: u64,
    /// Dollars spent; `null` when an agent's model is unpriced (`unpriced`).
    pub cost_usd: Option<f64>,
    /// What its priced agents cost: `cost_usd`, or a lower bound of the cost
    /// when an agent is unpriced.
    pub priced_cost_usd: f64,
    /// An agent called an unpriced model: the cost is unknown.
    pub unpriced: bool,
    /// Some tokens were counted by byok-flow, not reported: the cost is approximate.
    pub counted_locally: bool,
    /// When an agent's bill is unknown (a call cut off after it was sent): the
    /// most the run may have cost, if known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_cost_usd: Option<f64>,
    /// An agent's bill is unknown.
    pub bill_unknown: bool,
    /// For a dataset run, its rows.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rows: Option<RowsSummary>,
}

/// A dataset run's rows, as the history keeps them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RowsSummary {
    /// Rows run; before the run ends, those it was to run (when known).
    pub total: Option<u64>,
    /// `None` until the run ends.
    pub succeeded: Option<u64>,
    pub failed: Option<u64>,
}

impl RunSummary {
    /// Whether the run never recorded its end.
    pub fn unfinished(&self) -> bool {
        self.status == UNFINISHED
    }
}

/// The status shown for a run that never recorded its end.
pub const UNFINISHED: &str = "unfinished";

/// What `runs spend` groups by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    /// The provider that answered.
    Provider,
    /// `provider/model` that answered.
    Model,
    /// The workflow's name.
    Workflow,
}

/// The spend of one group.
#[derive(Debug, Clone, Serialize)]
pub struct SpendRow {
    pub group: String,
    pub runs: u64,
    /// Agents that made calls (cached ones made none).
    pub calls: u64,
    pub usage: Usage,
    /// Dollars spent; `null` when some calls were to unpriced models.
    pub cost_usd: Option<f64>,
    /// What the priced calls cost: `cost_usd`, or a lower bound of it.
    pub priced_cost_usd: f64,
    /// Calls to unpriced models: their cost is unknown.
    pub unpriced_calls: u64,
    /// Calls whose tokens byok-flow counted itself: their cost is approximate.
    pub counted_calls: u64,
    /// Calls whose bill is unknown (cut off after they were sent).
    pub unknown_bills: u64,
}

const SUMMARY: &str = "
SELECT r.id, r.workflow, r.file, r.status, r.started_at, r.seconds, r.mock, r.inputs_hash, r.agents,
       (SELECT COUNT(*) FROM agents a WHERE a.run_id = r.id AND a.status = 'succeeded'),
       (SELECT COUNT(*) FROM agents a WHERE a.run_id = r.id AND a.cached),
       CASE WHEN r.status = 'running'
            THEN (SELECT COALESCE(SUM(a.cost_micro_usd), 0) FROM agents a WHERE a.run_id = r.id)
            ELSE r.cost_micro_usd END,
       EXISTS (SELECT 1 FROM agents a WHERE a.run_id = r.id AND a.cost_micro_usd IS NULL),
       EXISTS (SELECT 1 FROM agents a WHERE a.run_id = r.id AND a.counted_locally),
       EXISTS (SELECT 1 FROM agents a WHERE a.run_id = r.id AND a.bill_unknown),
       (SELECT SUM(CASE WHEN a.bill_unknown THEN a.max_cost_micro_usd ELSE a.cost_micro_usd END)
        FROM agents a WHERE a.run_id = r.id),
       r.rows_total, r.rows_succeeded, r.rows_failed,
       EXISTS (SELECT 1 FROM agents a WHERE a.run_id = r.id AND a.calls <> 1)
FROM runs r";

fn summary(row: &Row<'_>) -> rusqlite::Result<RunSummary> {
    let status: String = row.get(3)?;
    let priced: i64 = row.get(11)?;
    let unpriced: bool = row.get(12)?;
    let bill_unknown: bool = row.get(14)?;
    Ok(RunSummary {
        run_id: row.get(0)?,
        workflow: row.get(1)?,
        file: row.get(2)?,
        status: if status == "running" {
            UNFINISHED.into()
        } else {
            status
        },
        started_at: row.get(4)?,
        seconds: row.get(5)?,
        mock: row.get(6)?,
        inputs_hash: row.get(7)?,
        agents: count(row, 8)?,
        succeeded: count(row, 9)?,
        cached: count(row, 10)?,
        cost_usd: (!unpriced).then(|| dollars(priced)),
        priced_cost_usd: dollars(priced),
        unpriced,
        counted_locally: row.get(13)?,
        // SUM is NULL when one of its terms is: a most that is unknown too.
        max_cost_usd: bill_unknown
            .then(|| row.get::<_, Option<i64>>(15))
            .transpose()?
            .flatten()
            .map(dollars),
        bill_unknown,
        rows: rows_summary(row)?,
    })
}

/// A dataset run's rows: it has some when it said how many it would run, or
/// when an agent's line stands for other than one call.
fn rows_summary(row: &Row<'_>) -> rusqlite::Result<Option<RowsSummary>> {
    let total: Option<i64> = row.get(16)?;
    let many: bool = row.get(19)?;
    if total.is_none() && !many {
        return Ok(None);
    }
    let get = |i: usize| -> rusqlite::Result<Option<u64>> {
        Ok(row
            .get::<_, Option<i64>>(i)?
            .map(|n| u64::try_from(n).unwrap_or_default()))
    };
    Ok(Some(RowsSummary {
        total: get(16)?,
        succeeded: get(17)?,
        failed: get(18)?,
    }))
}

impl Store {
    /// The `limit` most recent runs, newest first.
    pub fn list(&self, limit: u32) -> Result<Vec<RunSummary>, HistoryError> {
        let sql = format!("{SUMMARY} ORDER BY r.started_unix DESC, r.rowid DESC LIMIT ?1");
        let run = || -> rusqlite::Result<Vec<RunSummary>> {
            let mut stmt = self.conn.prepare(&sql)?;
            stmt.query_map([limit], summary)?.collect()
        };
        run().map_err(|e| self.query_error(e))
    }

    /// The ids of runs that are `id` or start with it (at most a few).
    pub fn find(&self, id: &str) -> Result<Vec<String>, HistoryError> {
        let run = || -> rusqlite::Result<Vec<String>> {
            if let Some(exact) = self
                .conn
                .query_row("SELECT id FROM runs WHERE id = ?1", [id], |r| r.get(0))
                .optional()?
            {
                return Ok(vec![exact]);
            }
            let escaped = id
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_");
            let mut stmt = self.conn.prepare(
                "SELECT id FROM runs WHERE id LIKE ?1 || '%' ESCAPE '\\' ORDER BY id DESC LIMIT 5",
            )?;
            stmt.query_map([escaped], |r| r.get(0))?.collect()
        };
        run().map_err(|e| self.query_error(e))
    }

    /// One run: its summary, and a run record rebuilt from what was kept (no
    /// inputs, outputs or attempts), for the closing table.
    pub fn show(&self, run_id: &str) -> Result<Option<(RunSummary, RunRecord)>, HistoryError> {
        let run = || -> rusqlite::Result<Option<(RunSummary, RunRecord)>> {
            let Some(summary) = self
                .conn
                .query_row(&format!("{SUMMARY} WHERE r.id = ?1"), [run_id], summary)
                .optional()?
            else {
                return Ok(None);
            };
            let budget_usd: Option<f64> = self.conn.query_row(
                "SELECT budget_usd FROM runs WHERE id = ?1",
                [run_id],
                |r| r.get(0),
            )?;
            let mut stmt = self.conn.prepare(
                "SELECT name, provider, model, answered_by, status, reason, cached, seconds, stop_reason,
                        input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, cost_micro_usd,
                        counted_locally, bill_unknown, max_cost_micro_usd
                 FROM agents WHERE run_id = ?1 ORDER BY position",
            )?;
            let agents: Vec<AgentRecord> = stmt
                .query_map([run_id], agent_record)?
                .collect::<rusqlite::Result<_>>()?;

            let record = RunRecord {
                run_id: summary.run_id.clone(),
                // The history does not keep which byok-flow ran it.
                version: String::new(),
                workflow: summary.workflow.clone(),
                file: summary.file.clone(),
                workflow_sha256: None,
                started_at: summary.started_at.clone(),
                seconds: summary.seconds.unwrap_or_default(),
                // An unfinished run has no status; the caller shows it as such.
                status: parse(&summary.status).unwrap_or(RunStatus::Interrupted),
                mock: summary.mock,
                inputs: IndexMap::new(),
                agents,
                outputs: IndexMap::new(),
                usage: Usage::default(),
                cost_usd: None,
                unpriced_agents: Vec::new(),
                max_cost_usd: None,
                budget_usd,
                estimate: None,
                cache_saved_usd: None,
            };
            let mut record = record;
            record.total_agents();
            Ok(Some((summary, record)))
        };
        run().map_err(|e| self.query_error(e))
    }

    /// Every agent's aggregate of a dataset run (or, for a single run, each
    /// agent as one call).
    pub fn aggregates_of(&self, run_id: &str) -> Result<Vec<AgentAggregate>, HistoryError> {
        let run = || -> rusqlite::Result<Vec<AgentAggregate>> {
            let mut stmt = self.conn.prepare(
                "SELECT name, provider, model, calls, failures, cached_calls, status, seconds,
                        input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, cost_micro_usd,
                        bill_unknown
                 FROM agents WHERE run_id = ?1 ORDER BY position",
            )?;
            stmt.query_map([run_id], |row| {
                let calls = count(row, 3)?;
                let failed = count(row, 4)?;
                let status: String = row.get(6)?;
                Ok(AgentAggregate {
                    name: row.get(0)?,
                    provider: row.get(1)?,
                    model: row.get(2)?,
                    calls: if status == "skipped" { 0 } else { calls },
                    succeeded: calls.saturating_sub(failed),
                    failed,
                    cached: count(row, 5)?,
                    skipped: 0,
                    seconds: row.get(7)?,
                    usage: Usage {
                        input: count(row, 8)?,
                        output: count(row, 9)?,
                        cache_read: count(row, 10)?,
                        cache_write: count(row, 11)?,
                        ..Usage::default()
                    },
                    cost_usd: row.get::<_, Option<i64>>(12)?.map(dollars),
                    // The history keeps whether any was, not how many.
                    unknown_bills: u64::from(row.get::<_, bool>(13)?),
                    // The history keeps the cache's tokens, not what they saved.
                    cache_saved_usd: None,
                })
            })?
            .collect()
        };
        run().map_err(|e| self.query_error(e))
    }

    /// Where the run's record was written, if it was (`--out DIR`).
    pub fn record_path(&self, run_id: &str) -> Result<Option<String>, HistoryError> {
        self.conn
            .query_row(
                "SELECT record_path FROM runs WHERE id = ?1",
                [run_id],
                |r| r.get::<_, Option<String>>(0),
            )
            .optional()
            .map(Option::flatten)
            .map_err(|e| self.query_error(e))
    }

    /// Dollars and tokens per group for runs started at `since_unix` or later.
    /// Mock runs are left out unless `include_mock`.
    pub fn spend(
        &self,
        since_unix: i64,
        group: Group,
        include_mock: bool,
    ) -> Result<Vec<SpendRow>, HistoryError> {
        // What answered: a fallback model when one did; the mock in a `--mock` run.
        let key = match group {
            Group::Provider => {
                "CASE WHEN r.mock THEN 'mock'
                      WHEN a.answered_by IS NULL THEN a.provider
                      ELSE substr(a.answered_by, 1, instr(a.answered_by, '/') - 1) END"
            }
            Group::Model => {
                "CASE WHEN r.mock THEN 'mock (as ' || a.provider || '/' || a.model || ')'
                      ELSE COALESCE(a.answered_by, a.provider || '/' || a.model) END"
            }
            Group::Workflow => "CASE WHEN r.mock THEN r.workflow || ' (mock)' ELSE r.workflow END",
        };
        let sql = format!(
            "SELECT {key}, COUNT(DISTINCT r.id), SUM(a.calls - a.cached_calls),
                    SUM(a.input_tokens), SUM(a.output_tokens), SUM(a.cache_read_tokens), SUM(a.cache_write_tokens),
                    COALESCE(SUM(a.cost_micro_usd), 0), SUM(a.cost_micro_usd IS NULL),
                    SUM(a.counted_locally), SUM(a.bill_unknown)
             FROM agents a JOIN runs r ON r.id = a.run_id
             WHERE r.started_unix >= ?1 AND (?2 OR NOT r.mock) AND NOT a.cached
               AND a.input_tokens + a.output_tokens + a.cache_read_tokens + a.cache_write_tokens > 0
             GROUP BY 1 ORDER BY 8 DESC, 1"
        );
        let run = || -> rusqlite::Result<Vec<SpendRow>> {
            let mut stmt = self.conn.prepare(&sql)?;
            stmt.query_map(params![since_unix, include_mock], |row| {
                let priced: i64 = row.get(7)?;
                Ok(SpendRow {
                    group: row.get(0)?,
                    runs: count(row, 1)?,
                    calls: count(row, 2)?,
                    usage: Usage {
                        input: count(row, 3)?,
                        output: count(row, 4)?,
                        cache_read: count(row, 5)?,
                        cache_write: count(row, 6)?,
                        ..Usage::default()
                    },
                    cost_usd: (count(row, 8)? == 0).then(|| dollars(priced)),
                    priced_cost_usd: dollars(priced),
                    unpriced_calls: count(row, 8)?,
                    counted_calls: count(row, 9)?,
                    unknown_bills: count(row, 10)?,
                })
            })?
            .collect()
        };
        run().map_err(|e| self.query_error(e))
    }
}

fn agent_record(row: &Row<'_>) -> rusqlite::Result<AgentRecord> {
    let status: String = row.get(4)?;
    Ok(AgentRecord {
        name: row.get(0)?,
        item: None,
        provider: row.get(1)?,
        model: row.get(2)?,
        answered_by: row.get(3)?,
        status: parse(&status).unwrap_or(AgentStatus::Skipped),
        reason: row.get(5)?,
        cached: row.get(6)?,
        seconds: row.get(7)?,
        stop_reason: row.get(8)?,
        usage: Usage {
            input: count(row, 9)?,
            output: count(row, 10)?,
            cache_read: count(row, 11)?,
            cache_write: count(row, 12)?,
            ..Usage::default()
        },
        cost_usd: row.get::<_, Option<i64>>(13)?.map(dollars),
        counted_locally: row.get(14)?,
        bill_unknown: row.get(15)?,
        max_cost_usd: row.get::<_, Option<i64>>(16)?.map(dollars),
        output: None,
        json: None,
        attempts: Vec::new(),
        key_failure: false,
        depends_on: Vec::new(),
        timing: None,
        estimate: None,
        citations: Vec::new(),
        cache_saved_usd: None,
    })
}

/// A count: SQLite integers are signed; a negative one (never written) reads as 0.
fn count(row: &Row<'_>, i: usize) -> rusqlite::Result<u64> {
    Ok(u64::try_from(row.get::<_, Option<i64>>(i)?.unwrap_or_default()).unwrap_or_default())
}

/// A status from its JSON name.
fn parse<T: serde::de::DeserializeOwned>(text: &str) -> Option<T> {
    serde_json::from_value(serde_json::Value::String(text.to_string())).ok()
}
