//! Outputs let go once read: every agent still sees each of its dependencies'
//! outputs, and what the caller keeps is there at the end.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use proptest::prelude::*;

use super::*;
use crate::dag::{Dag, EdgeKind};

/// An output that counts how many of its kind are alive.
#[derive(Debug)]
struct Out {
    agent: usize,
    alive: Arc<AtomicUsize>,
}

impl Drop for Out {
    fn drop(&mut self) {
        self.alive.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Answers each agent with its index; map agents (`maps`) run three items.
/// `prepare` fails the test's case when an upstream output is missing.
struct Echo {
    deps: Vec<Vec<usize>>,
    maps: Vec<bool>,
    alive: Arc<AtomicUsize>,
    most_alive: AtomicUsize,
    missing: Mutex<Vec<String>>,
}

impl Echo {
    fn out(&self, agent: usize) -> Out {
        let now = self.alive.fetch_add(1, Ordering::SeqCst) + 1;
        self.most_alive.fetch_max(now, Ordering::SeqCst);
        Out {
            agent,
            alive: self.alive.clone(),
        }
    }

    fn check(&self, agent: usize, upstream: &[(usize, Arc<Out>)]) {
        let mut seen: Vec<usize> = upstream
            .iter()
            .map(|(i, out)| {
                assert_eq!(*i, out.agent);
                *i
            })
            .collect();
        seen.sort_unstable();
        let mut wanted = self.deps[agent].clone();
        wanted.sort_unstable();
        wanted.dedup();
        if seen != wanted {
            self.missing
                .lock()
                .unwrap()
                .push(format!("agent {agent} saw {seen:?}, needs {wanted:?}"));
        }
    }
}

impl Runner for Echo {
    type Output = Out;
    type Error = String;
    type Prepared = ();
    type Row = ();
    type Item = usize;

    fn lane(&self, _: usize) -> usize {
        0
    }

    fn items(
        &self,
        (): &(),
        agent: usize,
        upstream: &[(usize, Arc<Out>)],
    ) -> Result<Option<Vec<usize>>, String> {
        self.check(agent, upstream);
        Ok(self.maps[agent].then(|| vec![0, 1, 2]))
    }

    fn prepare(
        &self,
        (): &(),
        task: Task,
        _: Option<&usize>,
        upstream: &[(usize, Arc<Out>)],
    ) -> Result<(), String> {
        self.check(task.agent, upstream);
        Ok(())
    }

    fn run(self: Arc<Self>, task: Task, (): ()) -> BoxFuture<'static, Result<Out, String>> {
        Box::pin(async move {
            tokio::task::yield_now().await;
            Ok(self.out(task.agent))
        })
    }

    fn gather(&self, agent: usize, items: Vec<Arc<Out>>) -> Out {
        assert!(items.iter().all(|i| i.agent == agent));
        self.out(agent)
    }
}

fn squad(n: usize, edges: &[(usize, usize)], maps: Vec<bool>) -> (Dag, Arc<Echo>) {
    let names: Vec<String> = (0..n).map(|i| format!("a{i}")).collect();
    let dag = Dag::new(&names, edges.iter().map(|&(a, b)| (a, b, EdgeKind::Data)));
    let mut deps = vec![Vec::new(); n];
    for &(a, b) in edges {
        deps[b].push(a);
    }
    let echo = Arc::new(Echo {
        deps,
        maps,
        alive: Arc::new(AtomicUsize::new(0)),
        most_alive: AtomicUsize::new(0),
        missing: Mutex::new(Vec::new()),
    });
    (dag, echo)
}

fn run_squad(
    dag: &Dag,
    echo: &Arc<Echo>,
    keep: Option<Vec<bool>>,
    concurrency: usize,
) -> Outcome<Out, String> {
    let options = Options {
        concurrency,
        lane_limits: vec![usize::MAX],
        keep_going: false,
        busy: None,
        keep,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(run(
        dag,
        echo.clone(),
        (),
        &options,
        &mut Open,
        std::future::pending::<()>(),
        |_| {},
    ))
}

#[test]
fn a_chain_holds_one_output_at_a_time_not_all_of_them() {
    let n = 1000;
    let edges: Vec<(usize, usize)> = (1..n).map(|i| (i - 1, i)).collect();
    let (dag, echo) = squad(n, &edges, vec![false; n]);
    let mut keep = vec![false; n];
    keep[n - 1] = true;
    let outcome = run_squad(&dag, &echo, Some(keep), 4);
    assert!(echo.missing.lock().unwrap().is_empty());
    assert!(
        echo.most_alive.load(Ordering::SeqCst) <= 2,
        "{} outputs were alive at once",
        echo.most_alive.load(Ordering::SeqCst)
    );
    assert!(matches!(&outcome.states[n - 1], State::Done(out) if out.agent == n - 1));
    assert!(
        outcome.states[..n - 1]
            .iter()
            .all(|s| matches!(s, State::Released))
    );
}

#[test]
fn without_keep_every_output_stays() {
    let n = 50;
    let edges: Vec<(usize, usize)> = (1..n).map(|i| (i - 1, i)).collect();
    let (dag, echo) = squad(n, &edges, vec![false; n]);
    let outcome = run_squad(&dag, &echo, None, 4);
    assert!(outcome.states.iter().all(|s| matches!(s, State::Done(_))));
    assert_eq!(echo.alive.load(Ordering::SeqCst), n);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Whatever the squad (map agents included) and the concurrency, every agent
    /// reads all its dependencies' outputs, the kept ones are there at the end,
    /// and the rest are let go.
    #[test]
    fn every_reader_sees_its_outputs_and_the_rest_are_let_go(
        n in 1usize..24,
        bits in prop::collection::vec(prop::bool::weighted(0.2), 24 * 23 / 2),
        maps in prop::collection::vec(prop::bool::weighted(0.2), 24),
        kept in prop::collection::vec(prop::bool::weighted(0.3), 24),
        concurrency in 1usize..6,
    ) {
        let pairs = (1..n).flat_map(|later| (0..later).map(move |earlier| (earlier, later)));
        let edges: Vec<(usize, usize)> = pairs
            .zip(bits)
            .filter(|&(_, on)| on)
            .map(|(pair, _)| pair)
            .collect();
        let (dag, echo) = squad(n, &edges, maps[..n].to_vec());
        let keep = kept[..n].to_vec();
        let outcome = run_squad(&dag, &echo, Some(keep.clone()), concurrency);
        let missing = echo.missing.lock().unwrap().clone();
        prop_assert!(missing.is_empty(), "{missing:?}");
        for (agent, state) in outcome.states.iter().enumerate() {
            if keep[agent] {
                prop_assert!(matches!(state, State::Done(out) if out.agent == agent), "agent {agent} kept");
            } else {
                prop_assert!(matches!(state, State::Released), "agent {agent} let go");
            }
        }
        let kept_count = keep.iter().filter(|k| **k).count();
        prop_assert_eq!(echo.alive.load(Ordering::SeqCst), kept_count);
    }
}
