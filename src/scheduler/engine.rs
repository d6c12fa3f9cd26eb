//! The scheduling loop: rows come in on a channel, their ready tasks wait in one
//! queue per lane (ordered by row, then agent, then item), and the earliest task
//! of any lane with room starts whenever fewer than `concurrency` run. When a task
//! settles, its row's dependents become ready; when nothing of a row is queued or
//! running, the row is handed back with every agent's end state.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::ops::Bound;
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::task::{Id, JoinError, JoinSet};
use tracing::Instrument;

use super::busy::{Counted, Guard};
use super::row::{MapState, RowState};
use super::{
    Admission, Event, Gate, Options, RowDone, RowIn, Runner, Settled, SkipReason, State, Task,
};
use crate::dag::Dag;

/// A task, how its run ended, and its count of busy work (see `busy.rs`), if any.
/// How it ended is boxed: a task's output is laid out in its spawned task beside
/// its future, for as long as the task waits (a batched call, hours).
type Joined<R> = (
    Task,
    Box<Result<<R as Runner>::Output, <R as Runner>::Error>>,
    Option<Guard>,
);

/// What the loop waits for next.
enum Next<R: Runner, T> {
    Cancel,
    Joined(Result<(Id, Joined<R>), JoinError>),
    Row(Option<RowIn<R::Row, T>>),
}

/// Runs every row that arrives on `rows` until the channel closes and every row
/// has ended, or until `cancel` completes. Returns whether it was cancelled.
pub async fn run_rows<R: Runner, T: Send>(
    dag: &Dag,
    runner: Arc<R>,
    options: &Options,
    gate: &mut dyn Gate<R>,
    mut rows: mpsc::Receiver<RowIn<R::Row, T>>,
    cancel: impl Future<Output = ()>,
    mut on_event: impl FnMut(Event<'_, R, T>),
) -> bool {
    let mut engine = Engine::new(dag, runner, options);
    let ev: Ev<'_, R, T> = &mut on_event;
    tokio::pin!(cancel);
    let mut rows_open = true;
    loop {
        engine.start_ready(gate, ev);
        // What arrived has started what it made ready.
        engine.arrived.clear();
        if engine.tasks.is_empty() {
            engine.end_stuck_rows(ev);
            if !rows_open {
                break;
            }
        }
        let next: Next<R, T> = tokio::select! {
            biased;
            () = &mut cancel => Next::Cancel,
            Some(joined) = engine.tasks.join_next_with_id(), if !engine.tasks.is_empty() => {
                Next::Joined(joined)
            }
            row = rows.recv(), if rows_open => Next::Row(row),
        };
        match next {
            Next::Cancel => {
                engine.interrupt(ev);
                return true;
            }
            Next::Joined(joined) => engine.joined(joined, gate, ev),
            Next::Row(Some(mut row)) => {
                engine.arrived.extend(row.arriving.take());
                engine.admit_row(row, ev);
            }
            Next::Row(None) => rows_open = false,
        }
    }
    false
}

pub(super) struct Engine<'d, R: Runner, T> {
    pub(super) dag: &'d Dag,
    pub(super) runner: Arc<R>,
    pub(super) concurrency: usize,
    pub(super) keep_going: bool,
    /// Each agent's lane.
    pub(super) lane_of: Vec<usize>,
    /// Each lane's limit.
    pub(super) limits: Vec<usize>,
    pub(super) lane_running: Vec<usize>,
    /// Each agent's number of dependencies, and the agents with none.
    pub(super) indegree: Vec<usize>,
    /// Each agent's number of dependents.
    pub(super) outdegree: Vec<u32>,
    /// See [`Options::keep`].
    pub(super) keep: Option<Vec<bool>>,
    pub(super) roots: Vec<usize>,
    /// Tasks ready to start, per lane.
    pub(super) ready: Vec<BTreeSet<Task>>,
    /// Boxed: a batch run holds tens of thousands of rows, and the map's spare
    /// room would hold a whole row state each.
    pub(super) rows: HashMap<u64, Box<RowState<R, T>>>,
    /// Tasks prepared but not yet admitted by the gate.
    pub(super) prepared: HashMap<Task, R::Prepared>,
    pub(super) tasks: JoinSet<Joined<R>>,
    /// Running tasks.
    pub(super) running: HashMap<Id, Task>,
    /// Counts the work that may still start a call (see `busy.rs`).
    busy: Option<super::Busy>,
    /// The counts of rows and task ends taken since tasks were last started.
    arrived: Vec<Guard>,
}

/// Where the engine tells its caller what happened.
pub(super) type Ev<'e, R, T> = &'e mut dyn for<'a> FnMut(Event<'a, R, T>);

impl<'d, R: Runner, T: Send> Engine<'d, R, T> {
    fn new(dag: &'d Dag, runner: Arc<R>, options: &Options) -> Self {
        let n = dag.len();
        let lane_of: Vec<usize> = (0..n).map(|i| runner.lane(i)).collect();
        let lanes = lane_of
            .iter()
            .map(|l| l + 1)
            .max()
            .unwrap_or(0)
            .max(options.lane_limits.len());
        let limits = (0..lanes)
            .map(|l| {
                options
                    .lane_limits
                    .get(l)
                    .copied()
                    .unwrap_or(usize::MAX)
                    .max(1)
            })
            .collect();
        let indegree: Vec<usize> = (0..n).map(|i| dag.dependencies(i).count()).collect();
        let roots = (0..n).filter(|&i| indegree[i] == 0).collect();
        let outdegree = (0..n)
            .map(|i| u32::try_from(dag.dependents(i).count()).unwrap_or(u32::MAX))
            .collect();
        Engine {
            dag,
            runner,
            concurrency: options.concurrency.max(1),
            keep_going: options.keep_going,
            lane_of,
            limits,
            lane_running: vec![0; lanes],
            indegree,
            outdegree,
            keep: options.keep.clone(),
            roots,
            ready: (0..lanes).map(|_| BTreeSet::new()).collect(),
            rows: HashMap::new(),
            prepared: HashMap::new(),
            tasks: JoinSet::new(),
            running: HashMap::new(),
            busy: options.busy.clone(),
            arrived: Vec::new(),
        }
    }

    fn admit_row(&mut self, row: RowIn<R::Row, T>, ev: Ev<'_, R, T>) {
        let Some(data) = row.row else {
            ev(Event::RowDone(RowDone {
                index: row.index,
                row: None,
                tag: row.tag,
                states: None,
                interrupted: false,
            }));
            return;
        };
        let state = RowState::new(data, row.tag, self.indegree.clone(), self.outdegree.clone());
        self.rows.insert(row.index, Box::new(state));
        self.make_ready(row.index, self.roots.clone(), ev);
        self.finish_if_done(row.index, ev);
    }

    /// Queues `agents` of `row`, whose dependencies have all finished: one task, or
    /// one per item of a map agent.
    pub(super) fn make_ready(&mut self, row: u64, agents: Vec<usize>, ev: Ev<'_, R, T>) {
        let mut stack = agents;
        while let Some(agent) = stack.pop() {
            let Some(r) = self.rows.get_mut(&row) else {
                return;
            };
            if r.stopped || !matches!(r.states[agent], State::Waiting) {
                continue;
            }
            let upstream = r.upstream(self.dag.dependencies(agent));
            let lane = self.lane_of[agent];
            match self.runner.items(&r.row, agent, &upstream) {
                Ok(None) => {
                    let task = Task::agent(row, agent);
                    ev(Event::Ready(task));
                    self.ready[lane].insert(task);
                    r.queued += 1;
                }
                Ok(Some(items)) if items.is_empty() => {
                    ev(Event::Expanded {
                        row,
                        agent,
                        items: 0,
                    });
                    let output = Arc::new(self.runner.gather(agent, Vec::new()));
                    ev(Event::Gathered {
                        row,
                        agent,
                        output: &output,
                    });
                    r.states[agent] = State::Done(output);
                    for d in self.dag.dependents(agent) {
                        r.remaining[d] -= 1;
                        if r.remaining[d] == 0 {
                            stack.push(d);
                        }
                    }
                    if let Some(keep) = &self.keep {
                        r.release(agent, keep);
                    }
                    self.read_upstream(row, agent);
                }
                Ok(Some(items)) => {
                    let n = items.len();
                    ev(Event::Expanded {
                        row,
                        agent,
                        items: n,
                    });
                    r.states[agent] = State::Running;
                    r.maps.insert(agent, MapState::new(items));
                    r.queued += n;
                    for item in 0..n {
                        let task = Task {
                            row,
                            agent,
                            item: Some(item),
                        };
                        ev(Event::Ready(task));
                        self.ready[lane].insert(task);
                    }
                }
                Err(error) => self.fail_agent(row, agent, error, ev),
            }
        }
    }

    /// Starts ready tasks, earliest first, while there is room.
    fn start_ready(&mut self, gate: &mut dyn Gate<R>, ev: Ev<'_, R, T>) {
        // Per lane, the last task the gate told to wait: the next try starts after it.
        let mut waited: Vec<Option<Task>> = vec![None; self.ready.len()];
        while self.tasks.len() < self.concurrency {
            let mut best: Option<(Task, usize)> = None;
            for (lane, queue) in self.ready.iter().enumerate() {
                if self.lane_running[lane] >= self.limits[lane] {
                    continue;
                }
                let next = match waited[lane] {
                    None => queue.first(),
                    Some(after) => queue
                        .range((Bound::Excluded(after), Bound::Unbounded))
                        .next(),
                };
                if let Some(&task) = next
                    && best.is_none_or(|(b, _)| task < b)
                {
                    best = Some((task, lane));
                }
            }
            let Some((task, lane)) = best else {
                break;
            };
            let span = self.runner.span(task);
            let _entered = span.enter();
            if !self.prepared.contains_key(&task) {
                let Some(r) = self.rows.get(&task.row) else {
                    self.ready[lane].remove(&task);
                    continue;
                };
                let upstream = r.upstream(self.dag.dependencies(task.agent));
                let item = task
                    .item
                    .and_then(|i| r.maps.get(&task.agent).map(|m| &m.items[i]));
                ev(Event::Preparing(task));
                let prepared = self.runner.prepare(&r.row, task, item, &upstream);
                drop(upstream);
                // Its prompt is rendered: a map agent's items read on until it settles.
                if task.item.is_none() {
                    self.read_upstream(task.row, task.agent);
                }
                match prepared {
                    Ok(prepared) => {
                        self.prepared.insert(task, prepared);
                    }
                    Err(error) => {
                        self.unqueue(task, lane);
                        self.task_failed(task, error, ev);
                        self.finish_if_done(task.row, ev);
                        continue;
                    }
                }
            }
            let admission = gate.admit(task, &self.prepared[&task], self.tasks.len());
            match admission {
                Admission::Wait => {
                    ev(Event::Held(task));
                    waited[lane] = Some(task);
                }
                Admission::Skip(why) => {
                    self.unqueue(task, lane);
                    self.prepared.remove(&task);
                    self.task_skipped(task, SkipReason::Budget(why), ev);
                    self.finish_if_done(task.row, ev);
                }
                Admission::Start => {
                    self.unqueue(task, lane);
                    let Some(prepared) = self.prepared.remove(&task) else {
                        continue;
                    };
                    if let Some(r) = self.rows.get_mut(&task.row) {
                        r.running += 1;
                        if task.item.is_none() {
                            r.states[task.agent] = State::Running;
                        }
                    }
                    self.lane_running[lane] += 1;
                    ev(Event::Started(task));
                    let run = Counted::new(
                        self.runner.clone().run(task, prepared),
                        self.busy.as_ref().map(super::Busy::guard),
                    );
                    let handle = self.tasks.spawn(
                        async move {
                            let (result, guard) = run.await;
                            (task, Box::new(result), guard)
                        }
                        .instrument(span.clone()),
                    );
                    self.running.insert(handle.id(), task);
                }
            }
        }
    }

    /// Takes a task out of its lane's queue.
    fn unqueue(&mut self, task: Task, lane: usize) {
        if self.ready[lane].remove(&task)
            && let Some(r) = self.rows.get_mut(&task.row)
        {
            r.queued -= 1;
        }
    }

    fn joined(
        &mut self,
        joined: Result<(Id, Joined<R>), JoinError>,
        gate: &mut dyn Gate<R>,
        ev: Ev<'_, R, T>,
    ) {
        let (id, result) = match joined {
            Ok((id, (_, result, guard))) => {
                self.arrived.extend(guard);
                (id, Some(*result))
            }
            Err(e) => (e.id(), None),
        };
        let Some(task) = self.running.remove(&id) else {
            return;
        };
        self.lane_running[self.lane_of[task.agent]] -= 1;
        if let Some(r) = self.rows.get_mut(&task.row) {
            r.running -= 1;
        }
        match result {
            Some(Ok(output)) => {
                gate.settled(task, Settled::Finished(&output));
                self.task_done(task, output, ev);
            }
            Some(Err(error)) => {
                gate.settled(task, Settled::Failed(&error));
                self.task_failed(task, error, ev);
            }
            // A panicking task is a bug; the run goes on without it.
            None => {
                gate.settled(task, Settled::Lost);
                self.task_lost(task, ev);
            }
        }
        self.finish_if_done(task.row, ev);
    }

    /// Hands `row` back if nothing of it is queued or running; agents still
    /// waiting were stopped.
    pub(super) fn finish_if_done(&mut self, row: u64, ev: Ev<'_, R, T>) {
        if !self.rows.get(&row).is_some_and(|r| r.idle()) {
            return;
        }
        let Some(r) = self.rows.remove(&row) else {
            return;
        };
        let done = end_row(*r, row, &SkipReason::RunStopped, false, ev);
        ev(Event::RowDone(done));
    }

    /// Ends rows whose queued tasks nothing will start (the gate keeps them
    /// waiting with nothing running).
    fn end_stuck_rows(&mut self, ev: Ev<'_, R, T>) {
        let mut stuck: Vec<u64> = self
            .rows
            .iter()
            .filter(|(_, r)| r.queued > 0)
            .map(|(&i, _)| i)
            .collect();
        stuck.sort_unstable();
        for row in stuck {
            self.stop_row(row, ev);
            self.finish_if_done(row, ev);
        }
    }

    /// Ctrl-C: aborts what runs (cancelled), skips what waits (interrupted), and
    /// hands back every row, earliest first.
    fn interrupt(&mut self, ev: Ev<'_, R, T>) {
        self.tasks.abort_all();
        let mut running: Vec<Task> = self.running.drain().map(|(_, t)| t).collect();
        running.sort_unstable();
        for task in running {
            ev(Event::Cancelled(task));
            let Some(r) = self.rows.get_mut(&task.row) else {
                continue;
            };
            match task.item {
                None => r.states[task.agent] = State::Cancelled,
                Some(_) => {
                    if let Some(map) = r.maps.get_mut(&task.agent) {
                        map.cancelled = true;
                        map.unsettled -= 1;
                    }
                }
            }
        }
        let reason = SkipReason::Interrupted;
        let mut rows: Vec<u64> = self.rows.keys().copied().collect();
        rows.sort_unstable();
        for row in rows {
            let Some(mut r) = self.rows.remove(&row) else {
                continue;
            };
            for task in take_row(&mut self.ready, row) {
                if task.item.is_some() {
                    ev(Event::Skipped(task, &reason));
                }
            }
            for (agent, map) in std::mem::take(&mut r.maps) {
                r.states[agent] = match map.error {
                    Some(error) => State::Failed(Box::new(error)),
                    None if map.cancelled => State::Cancelled,
                    None => State::Skipped(reason.clone()),
                };
            }
            let done = end_row(*r, row, &reason, true, ev);
            ev(Event::RowDone(done));
        }
        self.prepared.clear();
    }
}

/// The row's end: every agent still waiting is skipped for `reason`.
fn end_row<R: Runner, T>(
    mut r: RowState<R, T>,
    row: u64,
    reason: &SkipReason,
    interrupted: bool,
    ev: Ev<'_, R, T>,
) -> RowDone<R, T> {
    for (agent, state) in r.states.iter_mut().enumerate() {
        if matches!(state, State::Waiting | State::Running) {
            ev(Event::Skipped(Task::agent(row, agent), reason));
            *state = State::Skipped(reason.clone());
        }
    }
    RowDone {
        index: row,
        row: Some(r.row),
        tag: r.tag,
        states: Some(r.states),
        interrupted,
    }
}

/// Takes every queued task of `row` out of the lane queues.
pub(super) fn take_row(ready: &mut [BTreeSet<Task>], row: u64) -> Vec<Task> {
    let from = Bound::Included(Task::agent(row, 0));
    let to = match row.checked_add(1) {
        Some(next) => Bound::Excluded(Task::agent(next, 0)),
        None => Bound::Unbounded,
    };
    let mut taken = Vec::new();
    for queue in ready {
        let tasks: Vec<Task> = queue.range((from, to)).copied().collect();
        for task in &tasks {
            queue.remove(task);
        }
        taken.extend(tasks);
    }
    taken
}
