//! The scheduler: starts each agent as soon as every agent it depends on has
//! finished (not layer by layer), at most `concurrency` at once and at most each
//! lane's (provider's) own limit; skips the dependents of a failed agent; stops
//! starting new agents after a failure unless told to keep going; and on
//! cancellation (Ctrl-C) aborts what is running and keeps what finished.
//!
//! It knows nothing of prompts, providers or prices: a [`Runner`] prepares and runs
//! one agent, and a [`Gate`] (the budget) decides whether a prepared agent may start.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::ops::Bound;
use std::sync::Arc;

use tokio::task::JoinSet;
use tracing::Instrument;

use crate::dag::Dag;
use crate::providers::BoxFuture;

/// Prepares and runs one agent, given the outputs of the agents it depends on.
pub trait Runner: Send + Sync + 'static {
    type Output: Send + Sync + 'static;
    type Error: Send + Sync + 'static;
    /// What an agent needs to start (its rendered request), made before the gate
    /// is asked, so the gate can see it.
    type Prepared: Send + 'static;

    /// Which concurrency lane (provider) the agent uses.
    fn lane(&self, agent: usize) -> usize;

    /// Makes what the agent needs to start from its upstream outputs. An error fails
    /// the agent without starting it.
    fn prepare(
        &self,
        agent: usize,
        upstream: &[(usize, Arc<Self::Output>)],
    ) -> Result<Self::Prepared, Self::Error>;

    /// The log span of an agent's work (its name, for the lines logged while it is
    /// prepared, admitted and run); none by default.
    fn span(&self, _agent: usize) -> tracing::Span {
        tracing::Span::none()
    }

    /// Runs the prepared agent.
    fn run(
        self: Arc<Self>,
        agent: usize,
        prepared: Self::Prepared,
    ) -> BoxFuture<'static, Result<Self::Output, Self::Error>>;
}

/// Decides, just before a prepared agent would start, whether it may (a budget, say).
pub trait Gate<R: Runner> {
    /// `Start` to start it now, `Wait` to try again when a running agent settles,
    /// `Skip` to give up on it. `running` is how many agents are running.
    fn admit(&mut self, agent: usize, prepared: &R::Prepared, running: usize) -> Admission;
    /// Called when a started agent settles, so a reservation can be released.
    fn settled(&mut self, _agent: usize, _how: Settled<'_, R::Output, R::Error>) {}
}

/// How a started agent ended, as a [`Gate`] hears it.
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
    /// Give the agent up, and say why.
    Skip(String),
}

/// A gate that admits everything.
pub struct Open;

impl<R: Runner> Gate<R> for Open {
    fn admit(&mut self, _: usize, _: &R::Prepared, _: usize) -> Admission {
        Admission::Start
    }
}

/// How to schedule.
#[derive(Debug, Clone)]
pub struct Options {
    /// The most agents running at once.
    pub concurrency: usize,
    /// Each lane's own limit (`usize::MAX` for none), indexed by [`Runner::lane`].
    pub lane_limits: Vec<usize>,
    /// After a failure, go on with independent branches.
    pub keep_going: bool,
}

/// Why an agent did not run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkipReason {
    /// An agent it depends on failed or was skipped.
    Dependency(usize),
    /// Another agent failed and `--keep-going` was not given.
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
    Running,
    Done(Arc<O>),
    Failed(E),
    Skipped(SkipReason),
    /// It was running when the run was interrupted.
    Cancelled,
}

/// What the scheduler tells its caller as it goes.
pub enum Event<'a, O, E> {
    /// Every agent it depends on has finished: it may start when a slot is free.
    Ready(usize),
    /// A slot is free for it: it is being prepared (its prompt rendered and
    /// counted) before the gate is asked.
    Preparing(usize),
    /// The gate asked it to wait (the budget, until running agents settle); said
    /// each time it is asked.
    Held(usize),
    Started(usize),
    Finished(usize, &'a Arc<O>),
    Failed(usize, &'a E),
    Skipped(usize, &'a SkipReason),
    Cancelled(usize),
}

/// The end state of every agent.
#[derive(Debug)]
pub struct Outcome<O, E> {
    pub states: Vec<State<O, E>>,
    pub interrupted: bool,
}

/// An agent's index and how its run ended.
type Joined<R> = (usize, Result<<R as Runner>::Output, <R as Runner>::Error>);

/// Runs every agent of `dag`.
pub async fn run<R: Runner>(
    dag: &Dag,
    runner: Arc<R>,
    options: &Options,
    gate: &mut dyn Gate<R>,
    cancel: impl Future<Output = ()>,
    mut on_event: impl FnMut(Event<'_, R::Output, R::Error>),
) -> Outcome<R::Output, R::Error> {
    let n = dag.len();
    let mut states: Vec<State<R::Output, R::Error>> = (0..n).map(|_| State::Waiting).collect();
    let mut remaining: Vec<usize> = (0..n).map(|i| dag.dependencies(i).count()).collect();
    let lanes: Vec<usize> = (0..n).map(|i| runner.lane(i)).collect();
    let lane_count = lanes.iter().max().map_or(0, |&l| l + 1);
    let lane_limit = |lane: usize| {
        options
            .lane_limits
            .get(lane)
            .copied()
            .unwrap_or(usize::MAX)
            .max(1)
    };
    // Agents whose dependencies are done, by lane: each round starts them in index
    // order across lanes, passing over full lanes without looking at their agents,
    // so a round costs the agents it starts (and those the gate holds back), not
    // every agent that is ready.
    let mut ready: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); lane_count];
    for agent in (0..n).filter(|&i| remaining[i] == 0) {
        on_event(Event::Ready(agent));
        ready[lanes[agent]].insert(agent);
    }
    let mut lane_running: Vec<usize> = vec![0; lane_count];
    let mut tasks: JoinSet<Joined<R>> = JoinSet::new();
    let mut prepared: HashMap<usize, R::Prepared> = HashMap::new();
    let mut task_agent: HashMap<tokio::task::Id, usize> = HashMap::new();
    let mut stopped = false;
    let mut interrupted = false;
    let concurrency = options.concurrency.max(1);
    tokio::pin!(cancel);

    loop {
        if !stopped {
            let mut skipped = Vec::new();
            let mut unprepared = Vec::new();
            // Each lane's next agent to look at this round.
            let mut next: Vec<Option<usize>> = ready.iter().map(|r| r.first().copied()).collect();
            while tasks.len() < concurrency {
                let Some((lane, agent)) = next
                    .iter()
                    .enumerate()
                    .filter(|&(lane, _)| lane_running[lane] < lane_limit(lane))
                    .filter_map(|(lane, a)| a.map(|a| (lane, a)))
                    .min_by_key(|&(_, a)| a)
                else {
                    break;
                };
                next[lane] = ready[lane]
                    .range((Bound::Excluded(agent), Bound::Unbounded))
                    .next()
                    .copied();
                let span = runner.span(agent);
                let _entered = span.enter();
                if let std::collections::hash_map::Entry::Vacant(slot) = prepared.entry(agent) {
                    let upstream: Vec<(usize, Arc<R::Output>)> = dag
                        .dependencies(agent)
                        .filter_map(|d| match &states[d] {
                            State::Done(out) => Some((d, out.clone())),
                            _ => None,
                        })
                        .collect();
                    on_event(Event::Preparing(agent));
                    match runner.prepare(agent, &upstream) {
                        Ok(p) => {
                            slot.insert(p);
                        }
                        Err(error) => {
                            ready[lane].remove(&agent);
                            unprepared.push((agent, error));
                            continue;
                        }
                    }
                }
                let Some(ready_to_run) = prepared.get_mut(&agent) else {
                    continue;
                };
                match gate.admit(agent, ready_to_run, tasks.len()) {
                    Admission::Wait => {
                        on_event(Event::Held(agent));
                        continue;
                    }
                    Admission::Skip(why) => {
                        ready[lane].remove(&agent);
                        skipped.push((agent, why));
                        continue;
                    }
                    Admission::Start => {}
                }
                let Some(ready_to_run) = prepared.remove(&agent) else {
                    continue;
                };
                ready[lane].remove(&agent);
                lane_running[lane] += 1;
                states[agent] = State::Running;
                on_event(Event::Started(agent));
                let fut = runner.clone().run(agent, ready_to_run);
                let handle =
                    tasks.spawn(async move { (agent, fut.await) }.instrument(span.clone()));
                task_agent.insert(handle.id(), agent);
            }
            for (agent, why) in skipped {
                prepared.remove(&agent);
                skip(
                    dag,
                    agent,
                    SkipReason::Budget(why),
                    &mut states,
                    &mut on_event,
                );
            }
            for (agent, error) in unprepared {
                stopped |= !options.keep_going;
                fail(dag, agent, error, &mut states, &mut on_event);
            }
        }
        if tasks.is_empty() {
            break;
        }
        let joined = tokio::select! {
            joined = tasks.join_next_with_id() => joined,
            () = &mut cancel => {
                interrupted = true;
                tasks.abort_all();
                for (_, agent) in task_agent.drain() {
                    states[agent] = State::Cancelled;
                    on_event(Event::Cancelled(agent));
                }
                break;
            }
        };
        let Some(joined) = joined else { break };
        let (agent, result) = match joined {
            Ok((id, (agent, result))) => {
                task_agent.remove(&id);
                (agent, result)
            }
            Err(e) => {
                // A panicking agent task is a bug; the run goes on without that agent.
                let Some(agent) = task_agent.remove(&e.id()) else {
                    continue;
                };
                states[agent] = State::Skipped(SkipReason::Interrupted);
                on_event(Event::Skipped(agent, &SkipReason::Interrupted));
                lane_running[lanes[agent]] -= 1;
                gate.settled(agent, Settled::Lost);
                stopped |= !options.keep_going;
                for d in dag.dependents(agent).collect::<Vec<_>>() {
                    skip(
                        dag,
                        d,
                        SkipReason::Dependency(agent),
                        &mut states,
                        &mut on_event,
                    );
                }
                continue;
            }
        };
        lane_running[lanes[agent]] -= 1;
        match &result {
            Ok(output) => gate.settled(agent, Settled::Finished(output)),
            Err(error) => gate.settled(agent, Settled::Failed(error)),
        }
        match result {
            Ok(output) => {
                let output = Arc::new(output);
                on_event(Event::Finished(agent, &output));
                states[agent] = State::Done(output);
                for d in dag.dependents(agent) {
                    remaining[d] -= 1;
                    if remaining[d] == 0 && matches!(states[d], State::Waiting) {
                        on_event(Event::Ready(d));
                        ready[lanes[d]].insert(d);
                    }
                }
            }
            Err(error) => {
                stopped |= !options.keep_going;
                fail(dag, agent, error, &mut states, &mut on_event);
            }
        }
    }

    let reason = if interrupted {
        SkipReason::Interrupted
    } else {
        SkipReason::RunStopped
    };
    for (agent, state) in states.iter_mut().enumerate() {
        if matches!(state, State::Waiting) {
            on_event(Event::Skipped(agent, &reason));
            *state = State::Skipped(reason.clone());
        }
    }
    Outcome {
        states,
        interrupted,
    }
}

/// Marks `agent` failed and skips everything that depends on it.
fn fail<O, E>(
    dag: &Dag,
    agent: usize,
    error: E,
    states: &mut [State<O, E>],
    on_event: &mut impl FnMut(Event<'_, O, E>),
) {
    on_event(Event::Failed(agent, &error));
    states[agent] = State::Failed(error);
    for d in dag.dependents(agent).collect::<Vec<_>>() {
        skip(dag, d, SkipReason::Dependency(agent), states, on_event);
    }
}

/// Skips `agent` and, transitively, everything that depends on it.
fn skip<O, E>(
    dag: &Dag,
    agent: usize,
    reason: SkipReason,
    states: &mut [State<O, E>],
    on_event: &mut impl FnMut(Event<'_, O, E>),
) {
    let mut stack = vec![(agent, reason)];
    while let Some((a, reason)) = stack.pop() {
        if !matches!(states[a], State::Waiting) {
            continue;
        }
        on_event(Event::Skipped(a, &reason));
        states[a] = State::Skipped(reason);
        for d in dag.dependents(a) {
            stack.push((d, SkipReason::Dependency(a)));
        }
    }
}
