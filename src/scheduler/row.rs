//! One row in the scheduler: each agent's state, how many of its dependencies are
//! still to finish, the map agents whose items are under way, and how many of the
//! row's tasks are queued or running, so the engine knows when the row is done.

use std::collections::HashMap;
use std::sync::Arc;

use super::{Runner, SkipReason, State};

/// A row being run.
pub(super) struct RowState<R: Runner, T> {
    pub row: R::Row,
    pub tag: T,
    pub states: Vec<State<R::Output, R::Error>>,
    /// Dependencies of each agent not yet finished.
    pub remaining: Vec<usize>,
    /// Dependents of each agent that have yet to read its output.
    pub readers: Vec<u32>,
    /// Map agents whose items are queued or running.
    pub maps: HashMap<usize, MapState<R>>,
    /// Tasks of this row in the ready queues.
    pub queued: usize,
    /// Tasks of this row running.
    pub running: usize,
    /// A failure stopped the row: nothing more of it starts.
    pub stopped: bool,
}

/// A map agent's items under way.
pub(super) struct MapState<R: Runner> {
    pub items: Vec<R::Item>,
    pub outputs: Vec<Option<Arc<R::Output>>>,
    /// Items neither finished, failed nor skipped.
    pub unsettled: usize,
    /// The first item that failed.
    pub error: Option<R::Error>,
    /// Why items were skipped (the first reason), when some were.
    pub skipped: Option<SkipReason>,
    /// An item was running when the run was interrupted.
    pub cancelled: bool,
}

impl<R: Runner> MapState<R> {
    pub fn new(items: Vec<R::Item>) -> Self {
        let n = items.len();
        MapState {
            items,
            outputs: (0..n).map(|_| None).collect(),
            unsettled: n,
            error: None,
            skipped: None,
            cancelled: false,
        }
    }

    /// Marks one item settled without an output.
    pub fn skip(&mut self, reason: &SkipReason) {
        self.unsettled -= 1;
        self.skipped.get_or_insert_with(|| reason.clone());
    }
}

impl<R: Runner, T> RowState<R, T> {
    pub fn new(row: R::Row, tag: T, remaining: Vec<usize>, readers: Vec<u32>) -> Self {
        RowState {
            row,
            tag,
            states: remaining.iter().map(|_| State::Waiting).collect(),
            remaining,
            readers,
            maps: HashMap::new(),
            queued: 0,
            running: 0,
            stopped: false,
        }
    }

    /// The outputs of `agents` that are done, for preparing one that reads them.
    pub fn upstream(&self, agents: impl Iterator<Item = usize>) -> Vec<(usize, Arc<R::Output>)> {
        agents
            .filter_map(|d| match &self.states[d] {
                State::Done(out) => Some((d, out.clone())),
                _ => None,
            })
            .collect()
    }

    /// Lets go of `agent`'s output when it is done, nothing is left to read it,
    /// and `keep` does not hold it.
    pub fn release(&mut self, agent: usize, keep: &[bool]) {
        if self.readers[agent] == 0
            && !keep.get(agent).copied().unwrap_or(true)
            && matches!(self.states[agent], State::Done(_))
        {
            self.states[agent] = State::Released;
        }
    }

    /// Whether nothing of the row is queued or running.
    pub fn idle(&self) -> bool {
        self.queued == 0 && self.running == 0
    }
}
