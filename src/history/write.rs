//! Writing a run: its row when it starts, an agent as it settles, all of it when it
//! ends. Each write is one short transaction.

use rusqlite::{Transaction, params};

use super::{HistoryError, Store, micro};
use crate::dataset::record::{AgentAggregate, DatasetRecord};
use crate::record::{AgentRecord, RunRecord};

/// What is known of a run when it starts.
#[derive(Debug, Clone)]
pub struct RunStart<'a> {
    pub run_id: &'a str,
    pub workflow: &'a str,
    pub file: &'a str,
    pub inputs_hash: &'a str,
    pub started_at: &'a str,
    pub mock: bool,
    pub agents: usize,
    /// For a dataset run, how many rows it will run, when known.
    pub rows: Option<u64>,
}

impl Store {
    /// Records that a run started (status `running` until [`Store::finish`]).
    pub fn start(&mut self, run: &RunStart<'_>) -> Result<(), HistoryError> {
        let started_unix = humantime::parse_rfc3339(run.started_at)
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        self.conn
            .execute(
                "INSERT OR REPLACE INTO runs (id, workflow, file, inputs_hash, status, started_at, started_unix, mock, agents, rows_total)
                 VALUES (?1, ?2, ?3, ?4, 'running', ?5, ?6, ?7, ?8, ?9)",
                params![
                    run.run_id,
                    run.workflow,
                    run.file,
                    run.inputs_hash,
                    run.started_at,
                    started_unix,
                    run.mock,
                    i64::try_from(run.agents).unwrap_or(i64::MAX),
                    run.rows.map(|n| i64::try_from(n).unwrap_or(i64::MAX)),
                ],
            )
            .map_err(|e| self.query_error(e))?;
        Ok(())
    }

    /// Records one agent of a started run, as it settles.
    pub fn agent(
        &mut self,
        run_id: &str,
        position: usize,
        agent: &AgentRecord,
    ) -> Result<(), HistoryError> {
        let path = self.path.clone();
        let error = |source| HistoryError::Query {
            path: path.clone(),
            source,
        };
        let tx = self.conn.transaction().map_err(error)?;
        insert_agent(&tx, run_id, position, agent).map_err(error)?;
        tx.commit().map_err(error)
    }

    /// Records how a run ended, with every agent.
    pub fn finish(&mut self, record: &RunRecord) -> Result<(), HistoryError> {
        let path = self.path.clone();
        let error = |source| HistoryError::Query {
            path: path.clone(),
            source,
        };
        let tx = self.conn.transaction().map_err(error)?;
        let status = status_text(&record.status);
        tx.execute(
            "UPDATE runs SET status = ?2, seconds = ?3, cost_micro_usd = ?4, budget_usd = ?5, workflow = ?6, agents = ?7 WHERE id = ?1",
            params![
                record.run_id,
                status,
                record.seconds,
                micro(record.priced_usd()),
                record.budget_usd,
                record.workflow,
                i64::try_from(record.agents.len()).unwrap_or(i64::MAX),
            ],
        )
        .map_err(error)?;
        for (position, agent) in record.agents.iter().enumerate() {
            insert_agent(&tx, &record.run_id, position, agent).map_err(error)?;
        }
        tx.commit().map_err(error)
    }
}

impl Store {
    /// Records that a run left its batches running at the providers (`--detach`):
    /// `submitted` until the run that collects them, under the same id, ends.
    pub fn mark_submitted(&mut self, run_id: &str) -> Result<(), HistoryError> {
        self.conn
            .execute(
                "UPDATE runs SET status = 'submitted' WHERE id = ?1",
                params![run_id],
            )
            .map_err(|e| self.query_error(e))?;
        Ok(())
    }

    /// Keeps where the run's record was written (an absolute path), for
    /// `byok-flow report RUN_ID`.
    pub fn keep_record_path(&mut self, run_id: &str, path: &str) -> Result<(), HistoryError> {
        self.conn
            .execute(
                "UPDATE runs SET record_path = ?2 WHERE id = ?1",
                params![run_id, path],
            )
            .map_err(|e| self.query_error(e))?;
        Ok(())
    }

    /// Records every agent's aggregate of a dataset run so far (as it goes, so a
    /// killed run keeps what it spent).
    pub fn aggregates(
        &mut self,
        run_id: &str,
        agents: &[AgentAggregate],
    ) -> Result<(), HistoryError> {
        let path = self.path.clone();
        let error = |source| HistoryError::Query {
            path: path.clone(),
            source,
        };
        let tx = self.conn.transaction().map_err(error)?;
        for (position, agent) in agents.iter().enumerate() {
            insert_aggregate(&tx, run_id, position, agent).map_err(error)?;
        }
        tx.commit().map_err(error)
    }

    /// Records how a dataset run ended: its rows and every agent's aggregate.
    pub fn finish_rows(&mut self, record: &DatasetRecord) -> Result<(), HistoryError> {
        let path = self.path.clone();
        let error = |source| HistoryError::Query {
            path: path.clone(),
            source,
        };
        let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        let tx = self.conn.transaction().map_err(error)?;
        tx.execute(
            "UPDATE runs SET status = ?2, seconds = ?3, cost_micro_usd = ?4, budget_usd = ?5, workflow = ?6, agents = ?7,
                 rows_total = ?8, rows_succeeded = ?9, rows_failed = ?10 WHERE id = ?1",
            params![
                record.run_id,
                status_text(&record.status),
                record.seconds,
                micro(record.priced_cost_usd),
                record.budget_usd,
                record.workflow,
                count(record.agents.len() as u64),
                count(record.rows.total),
                count(record.rows.succeeded),
                count(record.rows.failed),
            ],
        )
        .map_err(error)?;
        for (position, agent) in record.agents.iter().enumerate() {
            insert_aggregate(&tx, &record.run_id, position, agent).map_err(error)?;
        }
        tx.commit().map_err(error)
    }
}

/// One agent of a dataset run: all its calls as one line.
fn insert_aggregate(
    tx: &Transaction<'_>,
    run_id: &str,
    position: usize,
    a: &AgentAggregate,
) -> rusqlite::Result<()> {
    let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    let (status, reason) = if a.failed > 0 {
        (
            "failed",
            Some(format!("{} of {} calls failed", a.failed, a.calls)),
        )
    } else if a.calls == 0 {
        ("skipped", Some("no call was made".to_string()))
    } else {
        ("succeeded", None)
    };
    tx.execute(
        "INSERT OR REPLACE INTO agents (run_id, position, name, provider, model, answered_by, status, reason, cached, seconds, stop_reason,
             input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, cost_micro_usd, calls, failures, cached_calls,
             bill_unknown)
         VALUES (?1, ?2, ?3, ?4, ?5, NULL, ?6, ?7, ?8, ?9, NULL, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)",
        params![
            run_id,
            i64::try_from(position).unwrap_or(i64::MAX),
            a.name,
            a.provider,
            a.model,
            status,
            reason,
            a.calls > 0 && a.cached == a.calls,
            a.seconds,
            count(a.usage.input),
            count(a.usage.output),
            count(a.usage.cache_read),
            count(a.usage.cache_write),
            a.cost_usd.map(micro),
            count(a.calls),
            count(a.failed),
            count(a.cached),
            a.unknown_bills > 0,
        ],
    )?;
    Ok(())
}

fn insert_agent(
    tx: &Transaction<'_>,
    run_id: &str,
    position: usize,
    a: &AgentRecord,
) -> rusqlite::Result<()> {
    let tokens = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    // Prepared once per connection: a run of 100,000 agents inserts as many rows.
    tx.prepare_cached(
        "INSERT OR REPLACE INTO agents (run_id, position, name, provider, model, answered_by, status, reason, cached, seconds, stop_reason,
             input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, cost_micro_usd,
             counted_locally, bill_unknown, max_cost_micro_usd, calls, failures, cached_calls)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, 1, ?7 = 'failed', ?9)",
    )?
    .execute(params![
        run_id,
        i64::try_from(position).unwrap_or(i64::MAX),
        a.name,
        a.provider,
        a.model,
        a.answered_by,
        status_text(&a.status),
        a.reason,
        a.cached,
        a.seconds,
        a.stop_reason,
        tokens(a.usage.input),
        tokens(a.usage.output),
        tokens(a.usage.cache_read),
        tokens(a.usage.cache_writes()),
        a.cost_usd.map(micro),
        a.counted_locally,
        a.bill_unknown,
        a.max_cost_usd.map(micro),
    ])?;
    Ok(())
}

/// A status as its JSON name (`succeeded`, `budget_reached`, …).
pub(super) fn status_text(status: &impl serde::Serialize) -> String {
    match serde_json::to_value(status) {
        Ok(serde_json::Value::String(s)) => s,
        _ => "unknown".into(),
    }
}
