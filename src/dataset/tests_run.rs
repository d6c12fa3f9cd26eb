//! Dataset runs through the real runner, scheduler, budget gate and collector,
//! with a provider that answers after a latency each row chooses, under tokio's
//! paused clock: results come in row order whatever the latencies, no row starts
//! beyond the window, and the budget is never passed across rows.

use std::io::Write as _;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use indexmap::IndexMap;
use proptest::prelude::*;

use super::record::{RowResult, RowStatus};
use super::{Dataset, RowInputs, Source};
use crate::cost::Usd;
use crate::cost::prices::PriceTable;
use crate::cost::tokens::Tokenizer;
use crate::events::{Bus, Event, Subscriber};
use crate::providers::{AttemptError, BoxFuture, Provider, Reply, Reported, Request};
use crate::runner::{self, RunSettings};
use crate::usage::Usage;
use crate::workflow::{Checked, load, validate};

/// One agent a row: its prompt says the row and how long the call takes.
const SQUAD: &str = "version: 1
inputs:
  n: {required: true}
  ms: {required: true}
  out: {default: '0'}
agents:
  a:
    model: openai/gpt-4o-mini
    prompt: 'row {{inputs.n}} sleep {{inputs.ms}} out {{inputs.out}}'
    max_tokens: 200
";

fn checked(yaml: &str) -> Checked {
    let (loaded, report) = load::load_source(Path::new("rows.yaml"), Arc::from(yaml))
        .unwrap_or_else(|r| panic!("{}", r.render(false)));
    validate::check(loaded, report)
        .unwrap_or_else(|r| panic!("{}", r.render(false)))
        .0
}

/// The number after `word` in a prompt.
fn field(prompt: &str, word: &str) -> u64 {
    let mut words = prompt.split_whitespace();
    while let Some(w) = words.next() {
        if w == word {
            return words
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or_default();
        }
    }
    0
}

/// Answers after the row's latency, reporting the prompt's real token count and
/// the output tokens the row asks for; checks that no row starts beyond the window.
struct Sleepy {
    written: Arc<AtomicU64>,
    window: u64,
    violations: Mutex<Vec<String>>,
}

impl Provider for Sleepy {
    fn attempt<'a>(
        &'a self,
        request: &'a std::sync::Arc<Request>,
    ) -> BoxFuture<'a, Result<Reply, AttemptError>> {
        let row = field(&request.prompt, "row");
        let written = self.written.load(Ordering::SeqCst);
        if row >= written + self.window {
            self.violations.lock().unwrap().push(format!(
                "row {row} started with {written} rows written, window {}",
                self.window
            ));
        }
        let latency = Duration::from_millis(field(&request.prompt, "sleep"));
        let input = Tokenizer::for_model("gpt-4o-mini")
            .count_request(request.system.as_deref(), &request.prompt)
            .tokens;
        let output = field(&request.prompt, "out");
        Box::pin(async move {
            tokio::time::sleep(latency).await;
            Ok(Reply {
                text: format!("done {row}"),
                json: None,
                usage: Usage {
                    input,
                    output,
                    ..Usage::default()
                },
                reported: Reported::ALL,
                stop_reason: Some("end_turn".into()),
                citations: Vec::new(),
            })
        })
    }
}

/// Keeps every result as it is told, and counts them for the provider.
struct Results {
    written: Arc<AtomicU64>,
    told: Arc<Mutex<Vec<RowResult>>>,
}

impl Subscriber for Results {
    fn on_event(&mut self, event: &Event<'_>) -> std::io::Result<()> {
        if let Event::RowFinished { result, .. } = event {
            self.told.lock().unwrap().push((*result).clone());
            self.written.fetch_add(1, Ordering::SeqCst);
        }
        Ok(())
    }
}

struct Run {
    told: Vec<RowResult>,
    violations: Vec<String>,
    spent: Option<Usd>,
}

/// Runs one row per `(latency ms, output tokens)` with `concurrency` and `window`.
fn run_rows(rows: &[(u64, u64)], concurrency: usize, window: usize, budget: Option<f64>) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rows.jsonl");
    let mut file = std::fs::File::create(&path).unwrap();
    for (n, (ms, out)) in rows.iter().enumerate() {
        writeln!(file, "{{\"n\": {n}, \"ms\": {ms}, \"out\": {out}}}").unwrap();
    }
    drop(file);
    let checked = Arc::new(checked(SQUAD));
    let settings = RunSettings {
        file: "rows.yaml".into(),
        inputs: IndexMap::new(),
        mock: false,
        concurrency,
        keep_going: false,
        prices: Arc::new(PriceTable::builtin()),
        max_usd: budget,
        cache: None,
        refresh: Vec::new(),
        estimate: None,
        run_id: None,
        busy: None,
    };
    let written = Arc::new(AtomicU64::new(0));
    let provider = Arc::new(Sleepy {
        written: written.clone(),
        window: window as u64,
        violations: Mutex::new(Vec::new()),
    });
    let connect = {
        let provider = provider.clone();
        move |_: &crate::workflow::providers::ProviderInfo| Ok(provider.clone() as Arc<dyn Provider>)
    };
    let bus = Bus::default();
    let told = Arc::new(Mutex::new(Vec::new()));
    bus.subscribe(Box::new(Results {
        written,
        told: told.clone(),
    }));
    let (runner, limits) =
        runner::prepare_with(checked.clone(), &settings, &connect, &bus).unwrap();
    let inputs = RowInputs::new(&checked.workflow.inputs, IndexMap::new());
    let dataset = Dataset::open(Source::new(&path).unwrap(), None, inputs).unwrap();
    let ledger = runner.budget().cloned();
    let mut gate = runner.gate();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    let (record, fatal) = runtime.block_on(super::execute(
        &dataset,
        runner,
        limits,
        window,
        &settings,
        gate.as_mut(),
        &bus,
        std::future::pending(),
    ));
    assert!(fatal.is_none(), "{fatal:?}");
    assert_eq!(record.rows.total, rows.len() as u64);
    let told = told.lock().unwrap().clone();
    let violations = provider.violations.lock().unwrap().clone();
    Run {
        told,
        violations,
        spent: ledger.map(|b| b.spent()),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Whatever each row's latency, results are told in row order, every row once,
    /// and no row starts while `window` rows before it are still untold.
    #[test]
    fn results_come_in_row_order_within_the_window(
        latencies in prop::collection::vec(0u64..60, 1..120),
        concurrency in 1usize..12,
        window in 1usize..24,
    ) {
        let rows: Vec<(u64, u64)> = latencies.iter().map(|&ms| (ms, 10)).collect();
        let run = run_rows(&rows, concurrency, window, None);
        prop_assert_eq!(run.violations, Vec::<String>::new());
        let order: Vec<u64> = run.told.iter().map(|r| r.row).collect();
        prop_assert_eq!(order, (0..rows.len() as u64).collect::<Vec<_>>());
        for result in &run.told {
            prop_assert_eq!(result.status, RowStatus::Succeeded);
            prop_assert_eq!(&result.outputs["a"], &format!("done {}", result.row));
        }
    }

    /// Rows share one budget: whatever the rows' costs and the concurrency, what
    /// was spent never passes it, rows given up say so, and rows told as
    /// succeeded cost what was spent.
    #[test]
    fn the_budget_is_never_passed_across_rows(
        rows in prop::collection::vec((0u64..30, 0u64..=200), 1..60),
        concurrency in 1usize..10,
        budget in 0.0f64..0.004,
    ) {
        let run = run_rows(&rows, concurrency, 16, Some(budget));
        let spent = run.spent.unwrap();
        prop_assert!(spent <= Usd::from_dollars(budget), "spent {spent} of {budget}");
        let mut told = Usd::ZERO;
        for result in &run.told {
            match result.status {
                RowStatus::Succeeded => told += Usd::from_dollars(result.cost_usd.unwrap()),
                RowStatus::BudgetReached => prop_assert_eq!(result.cost_usd, Some(0.0)),
                other => prop_assert!(false, "row {}: {other:?}", result.row),
            }
        }
        // Rows' costs are rounded to the micro-dollar.
        let slack = Usd::from_dollars(1e-6 * run.told.len() as f64);
        prop_assert!(told <= spent + slack && spent <= told + slack, "told {told}, spent {spent}");
    }
}
