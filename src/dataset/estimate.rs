//! `estimate --each FILE` (SPEC §8): what a dataset run will cost, offline and
//! with no keys. Every row is read, every agent's prompt rendered with the row's
//! inputs and counted, as `estimate` does for one run; the result is the total
//! (expected and at most), the cheapest, median and dearest row, and every agent's
//! share over all rows. The rows are estimated on every core.
//!
//! With the cache on, an agent whose answer the cache holds for that row costs
//! nothing, as in `estimate`, so a dataset run stopped half-way is estimated at
//! what is left.
//!
//! An agent whose calls share a prefix in the provider's prompt cache (its system
//! prompt and the static start of its prompt, the same in every row) is expected
//! to write it once, with the first row, and read it in every later call: its
//! expected dollars count that, and the estimate says what it saves. The maximum
//! (and so the budget) is priced as if nothing were cached.

use std::sync::mpsc;

use serde::Serialize;

use super::read::{FileError, Place, RawRow};
use super::run::Dataset;
use crate::cost::Usd;
use crate::cost::call::CacheEstimate;
use crate::cost::estimate::{Estimate, Estimator, Total};
use crate::runner::AgentRunner;

/// How many bad rows (and rows over a context window) are named.
const NAMED: usize = 10;

/// Rows handed to a worker at once.
const BATCH: usize = 256;

/// The estimate of a dataset run.
#[derive(Debug, Clone, Serialize)]
pub struct RowsEstimate {
    /// Where prices come from.
    pub prices: String,
    /// Rows estimated (bad rows not counted).
    pub rows: u64,
    /// Rows that cannot be run (they would fail), and the first of them.
    pub bad_rows: u64,
    pub first_bad_rows: Vec<Noted>,
    /// Rows with a prompt over its model's context window (the agent would fail).
    pub over_window: u64,
    pub first_over_window: Vec<Noted>,
    pub total: Total,
    pub cheapest: Option<RowCost>,
    pub median: Option<RowCost>,
    pub dearest: Option<RowCost>,
    /// Every agent over every row.
    pub agents: Vec<AgentTotal>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub budget_usd: Option<f64>,
    /// With batched agents: what the rows would cost called directly, and the saving.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch: Option<crate::cost::estimate::BatchSaving>,
}

/// A row named in the estimate, and why.
#[derive(Debug, Clone, Serialize)]
pub struct Noted {
    pub row: u64,
    pub place: Place,
    pub message: String,
}

/// One row's cost.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct RowCost {
    pub row: u64,
    pub place: Place,
    pub expected_usd: Usd,
    pub max_usd: Usd,
}

/// One agent over every row.
#[derive(Debug, Clone, Serialize)]
pub struct AgentTotal {
    pub name: String,
    pub model: String,
    /// Calls it would make, a map agent's items each one (rows the cache
    /// answers left out).
    pub calls: u64,
    /// Rows whose answer for it the cache holds.
    pub cached: u64,
    pub input_tokens: u64,
    pub expected_output_tokens: u64,
    /// `null` when unpriced.
    pub expected_usd: Option<Usd>,
    /// `null` when unpriced or unbounded.
    pub max_usd: Option<Usd>,
    /// What the provider's prompt cache is expected to do over the rows, when
    /// its calls share a prefix long enough to be cached.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt_cache: Option<RowsCache>,
    /// Rows it is called in (its per-row estimates each write the prefix once).
    #[serde(skip)]
    rows_called: u64,
    #[serde(skip)]
    cache: Option<CacheEstimate>,
}

/// The prompt cache over every row: the prefix written by the first call, read
/// by every later one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RowsCache {
    pub prefix_tokens: u64,
    /// What the one write costs on top of sending the prefix uncached.
    pub write_usd: Usd,
    /// Calls that read it.
    pub reads: u64,
    /// What those reads save against sending the prefix uncached, less the write.
    pub saving_usd: Usd,
}

/// What one worker adds up.
struct Part {
    costs: Vec<RowCost>,
    agents: Vec<AgentTotal>,
    total: Total,
    over_window: u64,
    first_over_window: Vec<Noted>,
}

impl Part {
    fn new(agents: &[AgentTotal]) -> Self {
        Part {
            costs: Vec::new(),
            agents: agents.to_vec(),
            total: empty_total(),
            over_window: 0,
            first_over_window: Vec::new(),
        }
    }

    fn add(&mut self, row: u64, place: Place, estimate: &Estimate) {
        let total = &estimate.total;
        self.costs.push(RowCost {
            row,
            place,
            expected_usd: total.expected_usd,
            max_usd: total.max_usd,
        });
        let sum = &mut self.total;
        sum.input_tokens = sum.input_tokens.saturating_add(total.input_tokens);
        sum.expected_output_tokens = sum
            .expected_output_tokens
            .saturating_add(total.expected_output_tokens);
        sum.expected_usd += total.expected_usd;
        sum.max_usd += total.max_usd;
        for name in &total.unpriced {
            if !sum.unpriced.contains(name) {
                sum.unpriced.push(name.clone());
            }
        }
        for name in &total.unbounded {
            if !sum.unbounded.contains(name) {
                sum.unbounded.push(name.clone());
            }
        }
        for (agent, a) in self.agents.iter_mut().zip(&estimate.agents) {
            if a.cached {
                agent.cached += 1;
                continue;
            }
            let calls = a.items.unwrap_or(1);
            agent.calls += calls;
            if calls > 0 {
                agent.rows_called += 1;
                agent.cache = agent.cache.or(a.prompt_cache);
            }
            agent.input_tokens = agent.input_tokens.saturating_add(a.input_tokens);
            agent.expected_output_tokens = agent
                .expected_output_tokens
                .saturating_add(a.expected_output_tokens);
            agent.expected_usd = agent.expected_usd.zip(a.expected_usd).map(|(x, y)| x + y);
            agent.max_usd = agent.max_usd.zip(a.max_usd).map(|(x, y)| x + y);
        }
        if let Some(over) = estimate.agents.iter().find(|a| a.over_window()) {
            self.over_window += 1;
            if self.first_over_window.len() < NAMED {
                self.first_over_window.push(Noted {
                    row,
                    place,
                    message: format!(
                        "agent `{}`: its prompt is about {} tokens, over the {}-token context window of `{}`",
                        over.name,
                        over.largest_input,
                        over.context_window.unwrap_or_default(),
                        over.model
                    ),
                });
            }
        }
    }

    fn merge(&mut self, other: Part) {
        self.costs.extend(other.costs);
        let (sum, add) = (&mut self.total, other.total);
        sum.input_tokens = sum.input_tokens.saturating_add(add.input_tokens);
        sum.expected_output_tokens = sum
            .expected_output_tokens
            .saturating_add(add.expected_output_tokens);
        sum.expected_usd += add.expected_usd;
        sum.max_usd += add.max_usd;
        for name in add.unpriced {
            if !sum.unpriced.contains(&name) {
                sum.unpriced.push(name);
            }
        }
        for name in add.unbounded {
            if !sum.unbounded.contains(&name) {
                sum.unbounded.push(name);
            }
        }
        for (agent, a) in self.agents.iter_mut().zip(other.agents) {
            agent.calls += a.calls;
            agent.cached += a.cached;
            agent.rows_called += a.rows_called;
            agent.cache = agent.cache.or(a.cache);
            agent.input_tokens = agent.input_tokens.saturating_add(a.input_tokens);
            agent.expected_output_tokens = agent
                .expected_output_tokens
                .saturating_add(a.expected_output_tokens);
            agent.expected_usd = agent.expected_usd.zip(a.expected_usd).map(|(x, y)| x + y);
            agent.max_usd = agent.max_usd.zip(a.max_usd).map(|(x, y)| x + y);
        }
        self.over_window += other.over_window;
        self.first_over_window.extend(other.first_over_window);
    }
}

fn empty_total() -> Total {
    Total {
        input_tokens: 0,
        expected_output_tokens: 0,
        expected_usd: Usd::ZERO,
        max_usd: Usd::ZERO,
        unpriced: Vec::new(),
        unbounded: Vec::new(),
    }
}

/// Estimates every row of `dataset` (this shard's); `cached` is a runner that
/// reads the cache, to leave out what it holds.
pub fn estimate(
    dataset: &Dataset,
    estimator: &Estimator<'_>,
    cached: Option<&AgentRunner>,
    names: &[(String, String)],
) -> Result<RowsEstimate, FileError> {
    let agents: Vec<AgentTotal> = names
        .iter()
        .map(|(name, model)| AgentTotal {
            name: name.clone(),
            model: model.clone(),
            calls: 0,
            cached: 0,
            input_tokens: 0,
            expected_output_tokens: 0,
            expected_usd: Some(Usd::ZERO),
            max_usd: Some(Usd::ZERO),
            prompt_cache: None,
            rows_called: 0,
            cache: None,
        })
        .collect();
    let workers = std::thread::available_parallelism().map_or(1, usize::from);
    let mut bad_rows = 0;
    let mut first_bad_rows = Vec::new();
    let mut failure = None;
    let mut whole = Part::new(&agents);
    std::thread::scope(|scope| {
        let (tx, rx) = mpsc::sync_channel::<Vec<(u64, Place, serde_json::Value)>>(workers * 2);
        let rx = std::sync::Arc::new(std::sync::Mutex::new(rx));
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                let rx = rx.clone();
                let agents = &agents;
                scope.spawn(move || {
                    let mut part = Part::new(agents);
                    loop {
                        let batch = match rx.lock() {
                            Ok(rx) => rx.recv(),
                            Err(_) => break,
                        };
                        let Ok(batch) = batch else { break };
                        for (row, place, inputs) in batch {
                            let mut estimate = estimator.estimate(&inputs);
                            if let Some(runner) = cached {
                                estimate.mark_cached(&runner.cached_agents_of(&inputs));
                            }
                            part.add(row, place, &estimate);
                        }
                    }
                    part
                })
            })
            .collect();
        let mut batch = Vec::with_capacity(BATCH);
        match dataset.source.rows(dataset.shard) {
            Err(e) => failure = Some(e),
            Ok(rows) => {
                for read in rows {
                    let RawRow {
                        index,
                        place,
                        fields,
                    } = match read {
                        Ok(raw) => raw,
                        Err(e) => {
                            failure = Some(e);
                            break;
                        }
                    };
                    // A row whose input list fails its map agent (as `run` fails
                    // it) cannot be run either.
                    let inputs = fields
                        .and_then(|fields| dataset.inputs.inputs(fields))
                        .map_err(|problem| problem.message)
                        .and_then(|inputs| match estimator.failing_list(&inputs) {
                            Some((agent, why)) => Err(format!(
                                "agent `{agent}` would fail before any of its calls: {why}"
                            )),
                            None => Ok(inputs),
                        });
                    match inputs {
                        Ok(inputs) => batch.push((index, place, inputs)),
                        Err(message) => {
                            bad_rows += 1;
                            if first_bad_rows.len() < NAMED {
                                first_bad_rows.push(Noted {
                                    row: index,
                                    place,
                                    message,
                                });
                            }
                        }
                    }
                    if batch.len() == BATCH
                        && tx
                            .send(std::mem::replace(&mut batch, Vec::with_capacity(BATCH)))
                            .is_err()
                    {
                        break;
                    }
                }
            }
        }
        if !batch.is_empty() {
            let _ = tx.send(batch);
        }
        drop(tx);
        for handle in handles {
            if let Ok(part) = handle.join() {
                whole.merge(part);
            }
        }
    });
    if let Some(e) = failure {
        return Err(e);
    }
    let Part {
        mut costs,
        mut agents,
        mut total,
        over_window,
        mut first_over_window,
    } = whole;
    for agent in &mut agents {
        let Some(cache) = agent.cache.filter(|_| agent.rows_called > 0) else {
            continue;
        };
        // Each row's estimate writes the prefix once and sends every call's
        // uncached: over the rows, one write, and every later call reads it.
        let times = |usd: Usd, n: u64| Usd::from_pico(usd.pico().saturating_mul(n));
        let reads = agent.calls.saturating_sub(1);
        let less = times(cache.first_call_extra, agent.rows_called - 1)
            + times(cache.later_call_saving, reads);
        if let Some(expected) = &mut agent.expected_usd {
            *expected = expected.saturating_sub(less);
        }
        total.expected_usd = total.expected_usd.saturating_sub(less);
        agent.prompt_cache = Some(RowsCache {
            prefix_tokens: cache.prefix_tokens,
            write_usd: cache.first_call_extra,
            reads,
            saving_usd: times(cache.later_call_saving, reads)
                .saturating_sub(cache.first_call_extra),
        });
    }
    first_over_window.sort_by_key(|n| n.row);
    first_over_window.truncate(NAMED);
    costs.sort_by_key(|c| (c.expected_usd, c.row));
    let median = (!costs.is_empty()).then(|| costs[(costs.len() - 1) / 2]);
    Ok(RowsEstimate {
        prices: estimator.prices().to_string(),
        rows: costs.len() as u64,
        bad_rows,
        first_bad_rows,
        over_window,
        first_over_window,
        total,
        cheapest: costs.first().copied(),
        median,
        dearest: costs.last().copied(),
        agents,
        budget_usd: estimator.budget_usd(),
        batch: None,
    })
}
