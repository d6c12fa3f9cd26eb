//! Turning what the scheduler says into results: each row's cost and first error
//! while it runs, its [`RowResult`] when it ends, and every agent's aggregate. Rows
//! end in any order; results are told in row order, each as soon as it and every
//! row before it have ended. The rows waiting for an earlier one are the reorder
//! buffer: each holds a permit of the run's window, released when it is told, so
//! the buffer (and the rows in flight) never pass the window. When a run is
//! interrupted, the rows after the last one that had started are left out: the
//! results stay a prefix of the rows, each row told once.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde_json::Value as Json;
use tokio::sync::OwnedSemaphorePermit;

use super::read::{Place, RowProblem};
use super::record::{
    AgentAggregate, FAILED_ROWS_KEPT, RowCounts, RowError, RowResult, RowStatus, add_cost,
};
use crate::cost::Usd;
use crate::cost::bill::{Bill, cache_saved};
use crate::events::{Bus, Event as BusEvent};
use crate::runner::{AgentFailure, AgentOutput, AgentRunner};
use crate::scheduler::{Event, RowDone, SkipReason, State, Task};
use crate::usage::Usage;
use crate::workflow::Checked;

/// What travels with a row through the scheduler.
pub struct RowTag {
    /// The row's index in its file.
    pub row: u64,
    pub place: Place,
    /// Why the row cannot be run, when it cannot.
    pub problem: Option<RowProblem>,
    /// The row's share of the window, held until its result is told.
    pub permit: Option<OwnedSemaphorePermit>,
}

/// A row that ended, waiting for the rows before it.
struct Waiting {
    result: RowResult,
    /// Interrupted before any of it started: told only if a later row had started
    /// (so the results stay a prefix of the rows), else left out.
    untouched: bool,
    /// Left in batches for the run that collects it (`--detach`): not told, and
    /// its place in the window is given back.
    detached: bool,
    permit: Option<OwnedSemaphorePermit>,
}

/// A row under way.
struct Open {
    cost: Option<Usd>,
    /// The first agent that failed, and why.
    error: Option<(String, String)>,
    /// An agent was skipped for the budget.
    budget: bool,
    /// Seconds spent in the row's calls, summed.
    seconds: f64,
    /// A call of the row was left in a batch for the run that collects it.
    detached: bool,
}

/// Collects a dataset run's results.
pub struct Collector {
    runner: Arc<AgentRunner>,
    bus: Bus,
    /// The next row (in the order rows were handed to the scheduler) to tell.
    next: u64,
    waiting: BTreeMap<u64, Waiting>,
    open: HashMap<u64, Open>,
    pub agents: Vec<AgentAggregate>,
    /// Each agent's cost so far (`None` once one was unknown).
    costs: Vec<Option<Usd>>,
    /// What each agent's calls would have cost with no prompt cache.
    uncached: Vec<Option<Usd>>,
    pub counts: RowCounts,
    pub usage: Usage,
    /// What every priced call cost.
    pub priced: Usd,
    /// The most every call may have cost, unknown bills at their worst case
    /// (`None` when one of those is unknown too).
    pub most: Option<Usd>,
    pub failed_rows: Vec<RowResult>,
    /// An agent failed for its key.
    pub key_failure: bool,
}

impl Collector {
    pub fn new(runner: Arc<AgentRunner>, checked: &Checked, bus: Bus) -> Self {
        let agents = checked
            .workflow
            .agents
            .iter()
            .map(|(name, a)| AgentAggregate {
                name: name.clone(),
                provider: a.provider().to_string(),
                model: a.model_id().to_string(),
                calls: 0,
                succeeded: 0,
                failed: 0,
                cached: 0,
                skipped: 0,
                usage: Usage::default(),
                cost_usd: Some(0.0),
                unknown_bills: 0,
                seconds: 0.0,
                cache_saved_usd: None,
            })
            .collect::<Vec<_>>();
        let costs = vec![Some(Usd::ZERO); agents.len()];
        let uncached = costs.clone();
        Collector {
            runner,
            bus,
            next: 0,
            waiting: BTreeMap::new(),
            open: HashMap::new(),
            agents,
            costs,
            uncached,
            counts: RowCounts::default(),
            usage: Usage::default(),
            priced: Usd::ZERO,
            most: Some(Usd::ZERO),
            failed_rows: Vec::new(),
            key_failure: false,
        }
    }

    /// Takes in one event of the scheduler.
    pub fn on_event(&mut self, event: Event<'_, AgentRunner, RowTag>) {
        match event {
            Event::Finished(task, out) => {
                self.settled(task, &out.bill, out.seconds);
                let agent = &mut self.agents[task.agent];
                agent.succeeded += 1;
                agent.cached += u64::from(out.cached);
            }
            Event::Failed(task, failure) => self.failed(task, failure),
            Event::Skipped(task, reason) => {
                self.agents[task.agent].skipped += 1;
                if matches!(reason, SkipReason::Budget(_)) {
                    self.open.entry(task.row).or_default().budget = true;
                }
            }
            // Its call was cut off: what it may have cost is still counted.
            Event::Cancelled(task) => {
                self.agents[task.agent].skipped += 1;
                let bill = self.runner.cancelled_bill(task);
                self.bill(task, &bill);
            }
            Event::RowDone(done) => self.row_done(done),
            Event::Started(task) => {
                self.open.entry(task.row).or_default();
            }
            Event::Ready(_)
            | Event::Preparing(_)
            | Event::Held(_)
            | Event::Expanded { .. }
            | Event::Gathered { .. } => {}
        }
    }

    /// A call that settled, and what it cost.
    fn settled(&mut self, task: Task, bill: &Bill, seconds: f64) {
        self.bill(task, bill);
        self.open.entry(task.row).or_default().seconds += seconds;
        let agent = &mut self.agents[task.agent];
        agent.calls += 1;
        agent.seconds += seconds;
    }

    /// What a task's attempts used and cost, added to its row, its agent and the
    /// run.
    fn bill(&mut self, task: Task, bill: &Bill) {
        let row = self.open.entry(task.row).or_default();
        add_cost(&mut row.cost, bill.cost);
        add_cost(&mut self.costs[task.agent], bill.cost);
        add_cost(&mut self.uncached[task.agent], bill.uncached);
        self.priced += bill.cost.unwrap_or_default();
        self.most = self.most.zip(bill.max_cost).map(|(a, b)| a + b);
        self.usage += bill.usage;
        let agent = &mut self.agents[task.agent];
        agent.usage += bill.usage;
        agent.unknown_bills += u64::from(bill.unknown);
        agent.cost_usd = self.costs[task.agent].map(Usd::micro_dollars);
        agent.cache_saved_usd = cache_saved(
            &agent.usage,
            self.uncached[task.agent],
            self.costs[task.agent],
        );
    }

    fn failed(&mut self, task: Task, failure: &AgentFailure) {
        // Not an end: the run that collects its batch tells the row.
        if failure.detached {
            self.open.entry(task.row).or_default().detached = true;
            return;
        }
        // A failure before any call (a template that cannot be rendered, a list
        // that is not one) is not a call.
        if !failure.attempts.is_empty() {
            self.settled(task, &failure.bill, failure.seconds);
        }
        self.agents[task.agent].failed += 1;
        self.key_failure |= failure.key_failure;
        let name = self.runner.task_name(task);
        let row = self.open.entry(task.row).or_default();
        row.error
            .get_or_insert_with(|| (name, failure.message.clone()));
    }

    fn row_done(&mut self, done: RowDone<AgentRunner, RowTag>) {
        let tag = done.tag;
        let touched = self.open.contains_key(&done.index);
        let open = self.open.remove(&done.index).unwrap_or_default();
        let detached = open.detached;
        let result = if let (Some(inputs), Some(states)) = (done.row, done.states) {
            self.result(tag.row, tag.place, &inputs, &states, open, done.interrupted)
        } else {
            let problem = tag
                .problem
                .unwrap_or_else(|| RowProblem::new("the row was not run", "run it again"));
            let mut error = RowError::at(tag.place, problem.message);
            error.hint = Some(problem.hint);
            RowResult {
                row: tag.row,
                status: RowStatus::Failed,
                outputs: indexmap::IndexMap::new(),
                cost_usd: Some(0.0),
                seconds: 0.0,
                error: Some(error),
            }
        };
        let waiting = Waiting {
            result,
            untouched: done.interrupted && !touched,
            detached,
            permit: tag.permit,
        };
        self.waiting.insert(done.index, waiting);
        self.tell_ready();
    }

    /// Tells the rows that are next in order, each once.
    fn tell_ready(&mut self) {
        while let Some(head) = self.waiting.get(&self.next) {
            if head.untouched && !self.waiting.values().any(|w| !w.untouched) {
                return;
            }
            let Some(waiting) = self.waiting.remove(&self.next) else {
                return;
            };
            if waiting.detached {
                drop(waiting.permit);
                self.next += 1;
                continue;
            }
            let result = waiting.result;
            self.counts.add(result.status);
            if result.status == RowStatus::Failed && self.failed_rows.len() < FAILED_ROWS_KEPT {
                self.failed_rows.push(result.clone());
            }
            self.bus.emit(&BusEvent::RowFinished {
                result: &result,
                agents: &self.agents,
            });
            drop(waiting.permit);
            self.next += 1;
        }
    }

    /// At the end of an interrupted run: the rows after the last that had started
    /// are left out of the results (they were never run).
    pub fn finish(&mut self) {
        self.waiting.clear();
    }

    fn result(
        &self,
        row: u64,
        place: Place,
        inputs: &Json,
        states: &[State<AgentOutput, AgentFailure>],
        open: Open,
        interrupted: bool,
    ) -> RowResult {
        let outputs = crate::runner::render_outputs(&self.runner, inputs, states);
        let (ended, error) = if interrupted {
            (RowStatus::Interrupted, None)
        } else if let Some((agent, message)) = open.error {
            let mut error = RowError::at(place, message);
            error.agent = Some(agent);
            (RowStatus::Failed, Some(error))
        } else if open.budget {
            let error = RowError::at(
                place,
                "agents were skipped so that spend stays under the budget".into(),
            );
            (RowStatus::BudgetReached, Some(error))
        } else if states
            .iter()
            .all(|s| matches!(s, State::Done(_) | State::Released))
        {
            (RowStatus::Succeeded, None)
        } else {
            let error = RowError::at(place, "not every agent ran".into());
            (RowStatus::Failed, Some(error))
        };
        RowResult {
            row,
            status: ended,
            outputs,
            cost_usd: open.cost.map(Usd::micro_dollars),
            seconds: open.seconds,
            error,
        }
    }
}

impl Default for Open {
    /// A row that has cost nothing yet.
    fn default() -> Self {
        Open {
            cost: Some(Usd::ZERO),
            error: None,
            budget: false,
            seconds: 0.0,
            detached: false,
        }
    }
}
