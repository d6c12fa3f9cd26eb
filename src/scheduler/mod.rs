//! The scheduler: runs a squad once per row (one row for a plain run, many for a
//! dataset), starting each agent as soon as every agent it depends on in its row
//! has finished (not layer by layer), at most `concurrency` tasks at once across
//! all rows and at most each lane's (provider's) own limit. A map agent
//! (`for_each`) becomes one task per item, each started, limited, gated and
//! retried like any agent; its output gathers theirs.
//!
//! Within a row it skips the dependents of a failed agent and, unless told to
//! keep going, stops starting that row's agents after a failure; other rows go
//! on. Earlier rows go first, so finished rows can be written in order. On
//! cancellation (Ctrl-C) it aborts what is running and keeps what finished.
//!
//! It knows nothing of prompts, providers or prices: a [`Runner`] prepares and runs
//! one task, and a [`Gate`] (the budget) decides whether a prepared task may start.
//! Rows arrive on a channel; the caller bounds how many are in flight.

pub mod busy;
mod engine;
mod row;
mod settle;
#[cfg(test)]
mod tests;

use std::future::Future;
use std::sync::Arc;

use tokio::sync::mpsc;

use crate::dag::Dag;
use crate::providers::BoxFuture;

pub use busy::Busy;
pub use engine::run_rows;

/// One piece of work: an agent of a row, or one item of a map agent.
/// Ordered by row first, so earlier rows start first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Task {
    pub row: u64,
    pub agent: usize,
    /// The item of a map agent; `None` for an agent's one call.
    pub item: Option<usize>,
}

impl Task {
    /// The one call of `agent` in `row`.
    pub fn agent(row: u64, agent: usize) -> Self {
        Task {
            row,
            agent,
            item: None,
        }
    }
}

/// Prepares and runs one task, given the outputs of the agents it depends on.
pub trait Runner: Send + Sync + 'static {
    type Output: Send + Sync + 'static;
    type Error: Send + Sync + 'static;
    /// What a task needs to start (its rendered request), made before the gate
    /// is asked, so the gate can see it.
    type Prepared: Send + 'static;
    /// What a row gives every agent in it (its inputs).
    type Row: Send + Sync + 'static;
    /// One item of a map agent's list.
    type Item: Send + Sync + 'static;

    /// Which concurrency lane (provider) the agent uses.
    fn lane(&self, agent: usize) -> usize;

    /// The items a map agent runs once each, read from its row and its upstream
    /// outputs; `None` for an agent that is one call. An error fails the agent.
    fn items(
        &self,
        _row: &Self::Row,
        _agent: usize,
        _upstream: &[(usize, Arc<Self::Output>)],
    ) -> Result<Option<Vec<Self::Item>>, Self::Error> {
        Ok(None)
    }

    /// Makes what the task needs to start from its row, its item (for a map
    /// agent) and its upstream outputs. An error fails the task without starting it.
    fn prepare(
        &self,
        row: &Self::Row,
        task: Task,
        item: Option<&Self::Item>,
        upstream: &[(usize, Arc<Self::Output>)],
    ) -> Result<Self::Prepared, Self::Error>;

    /// The log span of a task's work (its agent's name, and item), for the lines
    /// logged while it is prepared, admitted and run; none by default.
    fn span(&self, _task: Task) -> tracing::Span {
        tracing::Span::none()
    }

    /// Runs the prepared task.
    fn run(
        self: Arc<Self>,
        task: Task,
        prepared: Self::Prepared,
    ) -> BoxFuture<'static, Result<Self::Output, Self::Error>>;

    /// A map agent's output, from its items' outputs in order.
    fn gather(&self, agent: usize, items: Vec<Arc<Self::Output>>) -> Self::Output;
}

/// Decides, just before a prepared task would start, whether it may (a budget, say).
pub trait Gate<R: Runner> {
    /// `Start` to start it now, `Wait` to try again when a running task settles,
    /// `Skip` to give up on it. `running` is how many tasks are running.
    fn admit(&mut self, task: Task, prepared: &R::Prepared, running: usize) -> Admission;
    /// Called when a started task settles, so a reservation can be released.
    fn settled(&mut self, _task: Task, _how: Settled<'_, R::Output, R::Error>) {}
}

/// How a started task ended, as a [`Gate`] hears it.
#[derive(Debug, Clone, Copy)]
pub enum Settled<'a, O, E> {
    Finished(&'a O),
    Failed(&'a E),
    /// Its task panicked: what it did is unknown.
    Lost,
}

/// A [`Gate`]'s answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    Start,
    Wait,
    /// Give the task up, and say why.
    Skip(String),
}

/// A gate that admits everything.
pub struct Open;

impl<R: Runner> Gate<R> for Open {
    fn admit(&mut self, _: Task, _: &R::Prepared, _: usize) -> Admission {
        Admission::Start
    }
}

/// How to schedule.
#[derive(Debug, Clone)]
pub struct Options {
    /// The most tasks running at once, over every row.
    pub concurrency: usize,
    /// Each lane's own limit (`usize::MAX` for none), indexed by [`Runner::lane`].
    pub lane_limits: Vec<usize>,
    /// After a failure in a row, go on with that row's independent branches.
    pub keep_going: bool,
    /// Where the work that may still start a call is counted (a batch run's).
    pub busy: Option<Busy>,
    /// The agents whose outputs are kept until their row ends (what the caller
    /// reads from the row's states); any other output is let go as soon as every
    /// agent that depends on it has read it, so a long squad holds its frontier,
    /// not every output. `None`: every output is kept.
    pub keep: Option<Vec<bool>>,
}

/// Why an agent (or an item) did not run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkipReason {
    /// An agent it depends on failed or was skipped.
    Dependency(usize),
    /// Another agent of its row failed and `--keep-going` was not given.
    RunStopped,
    /// The run was interrupted.
    Interrupted,
    /// Its worst-case cost could take spend over the budget (the gate's explanation).
    Budget(String),
}

/// Where an agent ended up.
#[derive(Debug)]
pub enum State<O, E> {
    Waiting,
    /// Running; for a map agent, its items are.
    Running,
    Done(Arc<O>),
    /// Done, and its output let go: nothing left reads it (see [`Options::keep`]).
    Released,
    Failed(Box<E>),
    Skipped(SkipReason),
    /// It was running when the run was interrupted.
    Cancelled,
}

/// A row handed to the scheduler: its index, what its agents are given (`None`
/// for a row that is not run, which ends at once), and the caller's tag, handed
/// back when the row ends.
#[derive(Debug)]
pub struct RowIn<R, T> {
    pub index: u64,
    pub row: Option<R>,
    pub tag: T,
    /// Counts the row as busy (see [`busy`]) until its first ready agents have started.
    pub arriving: Option<busy::Guard>,
}

/// A row that ended.
pub struct RowDone<R: Runner, T> {
    pub index: u64,
    /// What its agents were given; `None` for a row that was not run.
    pub row: Option<R::Row>,
    pub tag: T,
    /// Every agent's end state; `None` for a row that was not run.
    pub states: Option<Vec<State<R::Output, R::Error>>>,
    /// It ended because the run was interrupted.
    pub interrupted: bool,
}

/// What the scheduler tells its caller as it goes.
pub enum Event<'a, R: Runner, T> {
    /// Every agent it depends on has finished: it may start when a slot is free.
    Ready(Task),
    /// A slot is free for it: it is being prepared (its prompt rendered and
    /// counted) before the gate is asked.
    Preparing(Task),
    /// The gate asked it to wait (the budget, until running tasks settle); said
    /// each time it is asked.
    Held(Task),
    Started(Task),
    Finished(Task, &'a Arc<R::Output>),
    Failed(Task, &'a R::Error),
    Skipped(Task, &'a SkipReason),
    Cancelled(Task),
    /// A map agent's list was read: it runs once per item.
    Expanded {
        row: u64,
        agent: usize,
        items: usize,
    },
    /// Every item of a map agent succeeded: its output, gathered from theirs.
    Gathered {
        row: u64,
        agent: usize,
        output: &'a Arc<R::Output>,
    },
    /// A row ended; nothing more is said about it.
    RowDone(RowDone<R, T>),
}

/// The end state of every agent of a one-row run.
#[derive(Debug)]
pub struct Outcome<O, E> {
    pub states: Vec<State<O, E>>,
    pub interrupted: bool,
}

/// Runs every agent of `dag` once, for one row.
pub async fn run<R: Runner>(
    dag: &Dag,
    runner: Arc<R>,
    row: R::Row,
    options: &Options,
    gate: &mut dyn Gate<R>,
    cancel: impl Future<Output = ()>,
    mut on_event: impl FnMut(Event<'_, R, ()>),
) -> Outcome<R::Output, R::Error> {
    let (tx, rx) = mpsc::channel(1);
    let sent = tx.try_send(RowIn {
        index: 0,
        row: Some(row),
        tag: (),
        arriving: options.busy.as_ref().map(Busy::guard),
    });
    debug_assert!(sent.is_ok(), "an empty channel takes one row");
    drop(tx);
    let mut states = None;
    let interrupted = run_rows(
        dag,
        runner,
        options,
        gate,
        rx,
        cancel,
        |event| match event {
            Event::RowDone(done) => states = done.states,
            other => on_event(other),
        },
    )
    .await;
    Outcome {
        states: states.unwrap_or_default(),
        interrupted,
    }
}
