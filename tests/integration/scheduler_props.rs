//! Properties of the scheduler over random DAGs, in virtual time.
//!
//! A fake [`Runner`] sleeps each agent's latency under tokio's paused clock, so
//! time only moves when every task waits on a timer and every start and finish
//! lands on an exact millisecond: the assertions compare instants exactly and
//! never depend on how fast the machine is.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use byok_flow::dag::{Dag, EdgeKind};
use byok_flow::providers::BoxFuture;
use byok_flow::scheduler::{self, Event, Open, Options, Runner, SkipReason, State, Task};
use proptest::prelude::*;
use proptest::sample::Index;
use tokio::time::Instant;

/// A random DAG: `order` is a topological order, and every edge goes forward in it.
#[derive(Debug, Clone)]
struct Case {
    order: Vec<usize>,
    edges: Vec<(usize, usize)>,
    /// Each agent's latency in whole milliseconds.
    latency: Vec<u64>,
    /// Each agent's lane (provider), `0..LANES`.
    lanes: Vec<usize>,
}

const LANES: usize = 3;

fn case(max_agents: usize) -> impl Strategy<Value = Case> {
    (1..=max_agents).prop_flat_map(|n| {
        (
            Just((0..n).collect::<Vec<_>>()).prop_shuffle(),
            prop::collection::vec(prop::bool::weighted(0.25), n * (n - 1) / 2),
            prop::collection::vec(0u64..=40, n),
            prop::collection::vec(0..LANES, n),
        )
            .prop_map(|(order, bits, latency, lanes)| {
                let n = order.len();
                let pairs =
                    (1..n).flat_map(|later| (0..later).map(move |earlier| (earlier, later)));
                let edges = pairs
                    .zip(bits)
                    .filter(|&(_, keep)| keep)
                    .map(|((earlier, later), _)| (order[earlier], order[later]))
                    .collect();
                Case {
                    order,
                    edges,
                    latency,
                    lanes,
                }
            })
    })
}

impl Case {
    fn len(&self) -> usize {
        self.order.len()
    }

    fn dag(&self) -> Dag {
        let names: Vec<String> = (0..self.len()).map(|i| format!("a{i}")).collect();
        Dag::new(
            &names,
            self.edges.iter().map(|&(a, b)| (a, b, EdgeKind::Data)),
        )
    }

    fn work(&self) -> Duration {
        Duration::from_millis(self.latency.iter().sum())
    }

    /// The longest latency-weighted path.
    fn critical_path(&self) -> Duration {
        let mut finish = vec![0u64; self.len()];
        for &v in &self.order {
            let ready = self
                .edges
                .iter()
                .filter(|&&(_, to)| to == v)
                .map(|&(from, _)| finish[from])
                .max()
                .unwrap_or(0);
            finish[v] = ready + self.latency[v];
        }
        Duration::from_millis(finish.into_iter().max().unwrap_or(0))
    }

    /// Everything that depends on `agent`, directly or not.
    fn dependents_of(&self, agent: usize) -> BTreeSet<usize> {
        let mut found = BTreeSet::new();
        let mut stack = vec![agent];
        while let Some(a) = stack.pop() {
            for &(from, to) in &self.edges {
                if from == a && found.insert(to) {
                    stack.push(to);
                }
            }
        }
        found
    }
}

/// What the fake runner saw, in virtual time since the run began.
#[derive(Debug, Default)]
struct Log {
    start: Vec<Option<Duration>>,
    finish: Vec<Option<Duration>>,
    running: usize,
    max_running: usize,
    lane_running: [usize; LANES],
    lane_max: [usize; LANES],
}

/// Agents that sleep their latency; `fail` returns an error instead of an output.
struct Fake {
    latency: Vec<u64>,
    lanes: Vec<usize>,
    fail: Option<usize>,
    t0: Instant,
    log: Mutex<Log>,
}

impl Runner for Fake {
    type Output = ();
    type Error = String;
    type Prepared = ();
    type Row = ();
    type Item = ();

    fn lane(&self, agent: usize) -> usize {
        self.lanes[agent]
    }

    fn prepare(
        &self,
        (): &(),
        _task: Task,
        _item: Option<&()>,
        _upstream: &[(usize, Arc<()>)],
    ) -> Result<(), String> {
        Ok(())
    }

    fn run(self: Arc<Self>, task: Task, (): ()) -> BoxFuture<'static, Result<(), String>> {
        let agent = task.agent;
        {
            let mut log = self.log.lock().unwrap();
            let lane = self.lanes[agent];
            log.start[agent] = Some(self.t0.elapsed());
            log.running += 1;
            log.max_running = log.max_running.max(log.running);
            log.lane_running[lane] += 1;
            log.lane_max[lane] = log.lane_max[lane].max(log.lane_running[lane]);
        }
        Box::pin(async move {
            tokio::time::sleep(Duration::from_millis(self.latency[agent])).await;
            let mut log = self.log.lock().unwrap();
            log.finish[agent] = Some(self.t0.elapsed());
            log.running -= 1;
            log.lane_running[self.lanes[agent]] -= 1;
            if self.fail == Some(agent) {
                Err(format!("agent {agent} failed"))
            } else {
                Ok(())
            }
        })
    }

    fn gather(&self, _agent: usize, _items: Vec<Arc<()>>) {}
}

/// One simulated run.
struct Trace {
    log: Log,
    states: Vec<State<(), String>>,
    /// Agents the scheduler reported as started.
    started: BTreeSet<usize>,
    makespan: Duration,
}

fn simulate(case: &Case, options: &Options, fail: Option<usize>) -> Trace {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    runtime.block_on(async {
        let n = case.len();
        let fake = Arc::new(Fake {
            latency: case.latency.clone(),
            lanes: case.lanes.clone(),
            fail,
            t0: Instant::now(),
            log: Mutex::new(Log {
                start: vec![None; n],
                finish: vec![None; n],
                ..Log::default()
            }),
        });
        let mut started = BTreeSet::new();
        let outcome = scheduler::run(
            &case.dag(),
            fake.clone(),
            (),
            options,
            &mut Open,
            std::future::pending::<()>(),
            |event| {
                if let Event::Started(task) = event {
                    started.insert(task.agent);
                }
            },
        )
        .await;
        let makespan = fake.t0.elapsed();
        let fake =
            Arc::try_unwrap(fake).unwrap_or_else(|_| panic!("a task still holds the runner"));
        Trace {
            log: fake.log.into_inner().unwrap(),
            states: outcome.states,
            started,
            makespan,
        }
    })
}

fn options(concurrency: usize, lane_limits: Vec<usize>) -> Options {
    Options {
        concurrency,
        lane_limits,
        keep_going: false,
        busy: None,
        keep: None,
    }
}

/// Every agent finished, each after its dependencies and exactly its latency after it started.
fn assert_ordered(case: &Case, trace: &Trace) -> Result<(), TestCaseError> {
    for (agent, state) in trace.states.iter().enumerate() {
        prop_assert!(matches!(state, State::Done(_)), "agent {agent}: {state:?}");
    }
    let (start, finish) = (&trace.log.start, &trace.log.finish);
    for agent in 0..case.len() {
        let (Some(s), Some(f)) = (start[agent], finish[agent]) else {
            return Err(TestCaseError::fail(format!("agent {agent} never ran")));
        };
        prop_assert_eq!(s + Duration::from_millis(case.latency[agent]), f);
    }
    for &(from, to) in &case.edges {
        prop_assert!(
            start[to] >= finish[from],
            "agent {to} started at {:?}, before its dependency {from} finished at {:?}",
            start[to],
            finish[from]
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// (a) Every agent starts only after all of its dependencies finished,
    /// whatever the concurrency and lane limits.
    #[test]
    fn agents_start_after_their_dependencies(
        case in case(24),
        concurrency in 1usize..=8,
        limits in prop::collection::vec(1usize..=3, LANES),
    ) {
        let trace = simulate(&case, &options(concurrency, limits), None);
        assert_ordered(&case, &trace)?;
    }

    /// (b) With room for every agent at once, the makespan is the critical path exactly.
    #[test]
    fn makespan_is_the_critical_path_when_concurrency_is_ample(
        case in case(24),
        extra in 0usize..4,
    ) {
        let concurrency = case.len() + extra;
        let trace = simulate(&case, &options(concurrency, Vec::new()), None);
        assert_ordered(&case, &trace)?;
        prop_assert_eq!(trace.makespan, case.critical_path());
    }

    /// (c) With `m` slots the makespan is within Graham's list-scheduling bound
    /// `W/m + (1 - 1/m)·CP`, and no better than `max(CP, W/m)`. Multiplied
    /// through by `m` so it stays in whole milliseconds.
    #[test]
    fn makespan_is_within_the_list_scheduling_bound(case in case(24), m in any::<Index>()) {
        let m = 1 + m.index(case.len());
        let trace = simulate(&case, &options(m, Vec::new()), None);
        assert_ordered(&case, &trace)?;
        let (work, cp) = (case.work(), case.critical_path());
        let slots = u32::try_from(m).unwrap();
        prop_assert!(trace.makespan >= cp, "makespan {:?} < critical path {cp:?}", trace.makespan);
        prop_assert!(trace.makespan * slots >= work, "makespan {:?} < W/m", trace.makespan);
        prop_assert!(
            trace.makespan * slots <= work + cp * (slots - 1),
            "makespan {:?} over the bound: W {work:?}, CP {cp:?}, m {m}",
            trace.makespan
        );
    }

    /// (d) Neither the overall concurrency nor any lane's limit is ever exceeded.
    #[test]
    fn concurrency_and_lane_limits_are_never_exceeded(
        case in case(24),
        concurrency in 1usize..=8,
        limits in prop::collection::vec(1usize..=3, LANES),
    ) {
        let trace = simulate(&case, &options(concurrency, limits.clone()), None);
        assert_ordered(&case, &trace)?;
        prop_assert!(trace.log.max_running <= concurrency);
        for (lane, (&ran, &limit)) in trace.log.lane_max.iter().zip(&limits).enumerate() {
            prop_assert!(ran <= limit, "lane {lane} ran {ran} at once, limit {limit}");
        }
    }

    /// (e) Every transitive dependent of a failed agent is skipped because of a
    /// dependency on that failure, and none of them ever starts. With
    /// `keep_going`, everything else still succeeds.
    #[test]
    fn dependents_of_a_failure_never_start(
        case in case(24),
        failing in any::<Index>(),
        concurrency in 1usize..=8,
        keep_going in any::<bool>(),
    ) {
        let failed = failing.index(case.len());
        let options = Options { keep_going, ..options(concurrency, Vec::new()) };
        let trace = simulate(&case, &options, Some(failed));
        let doomed = case.dependents_of(failed);
        prop_assert!(matches!(trace.states[failed], State::Failed(_)), "{:?}", trace.states[failed]);
        for &d in &doomed {
            prop_assert!(trace.log.start[d].is_none(), "dependent {d} of {failed} ran");
            prop_assert!(!trace.started.contains(&d), "dependent {d} of {failed} was reported started");
            match &trace.states[d] {
                State::Skipped(SkipReason::Dependency(cause)) => {
                    prop_assert!(*cause == failed || doomed.contains(cause), "{d} skipped for {cause}");
                    prop_assert!(case.edges.contains(&(*cause, d)), "{cause} is not a dependency of {d}");
                }
                other => return Err(TestCaseError::fail(format!("dependent {d} of {failed}: {other:?}"))),
            }
        }
        if keep_going {
            for agent in (0..case.len()).filter(|a| *a != failed && !doomed.contains(a)) {
                prop_assert!(matches!(trace.states[agent], State::Done(_)), "agent {agent}: {:?}", trace.states[agent]);
            }
        }
    }
}

/// Holds agent `held` back while anything else runs.
struct HoldWhileBusy {
    held: usize,
}

impl scheduler::Gate<Fake> for HoldWhileBusy {
    fn admit(&mut self, task: Task, (): &(), running: usize) -> scheduler::Admission {
        if task.agent == self.held && running > 0 {
            scheduler::Admission::Wait
        } else {
            scheduler::Admission::Start
        }
    }
}

/// The events a report's timeline is made of: ready when its dependencies are
/// done, preparing when a slot is free, held while the gate says wait.
#[test]
fn each_agent_is_ready_then_prepared_then_held_or_started() {
    // a0 (30 ms) and a1 (10 ms) are independent; a2 needs a1, and the gate holds
    // it while anything runs.
    let case = Case {
        order: vec![0, 1, 2],
        edges: vec![(1, 2)],
        latency: vec![30, 10, 5],
        lanes: vec![0, 1, 2],
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    let events = runtime.block_on(async {
        let fake = Arc::new(Fake {
            latency: case.latency.clone(),
            lanes: case.lanes.clone(),
            fail: None,
            t0: Instant::now(),
            log: Mutex::new(Log {
                start: vec![None; 3],
                finish: vec![None; 3],
                ..Log::default()
            }),
        });
        let t0 = Instant::now();
        let mut events: Vec<(&'static str, usize, u128)> = Vec::new();
        let options = Options {
            concurrency: 2,
            lane_limits: vec![usize::MAX; LANES],
            keep_going: false,
            busy: None,
            keep: None,
        };
        scheduler::run(
            &case.dag(),
            fake,
            (),
            &options,
            &mut HoldWhileBusy { held: 2 },
            std::future::pending::<()>(),
            |event| {
                let at = t0.elapsed().as_millis();
                let seen = match event {
                    Event::Ready(t) => ("ready", t),
                    Event::Preparing(t) => ("preparing", t),
                    Event::Held(t) => ("held", t),
                    Event::Started(t) => ("started", t),
                    Event::Finished(t, _) => ("finished", t),
                    _ => return,
                };
                events.push((seen.0, seen.1.agent, at));
            },
        )
        .await;
        events
    });
    let of = |agent: usize| -> Vec<(&str, u128)> {
        let mut seen: Vec<(&str, u128)> = events
            .iter()
            .filter(|e| e.1 == agent)
            .map(|e| (e.0, e.2))
            .collect();
        seen.dedup();
        seen
    };
    assert_eq!(
        of(0),
        [
            ("ready", 0),
            ("preparing", 0),
            ("started", 0),
            ("finished", 30)
        ]
    );
    // a2: ready when a1 ends, held while a0 runs, started when a0 ends.
    assert_eq!(
        of(2),
        [
            ("ready", 10),
            ("preparing", 10),
            ("held", 10),
            ("started", 30),
            ("finished", 35)
        ]
    );
}
