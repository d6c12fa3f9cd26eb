//! A dataset run: the rows are read on a thread of their own and handed to the
//! scheduler one by one, each with a permit of the run's window; the scheduler
//! runs every row's squad through one concurrency limit, the providers' lanes and
//! one budget gate; the collector tells each row's result in order and releases
//! its permit. A row past the window waits, unread, until the earliest unfinished
//! row is told, so memory holds at most [`window`] rows whatever the file's size.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Instant, SystemTime};

use serde_json::Value as Json;
use tokio::sync::{Semaphore, TryAcquireError, mpsc};

use super::collect::{Collector, RowTag};
use super::inputs::RowInputs;
use super::read::{FileError, Rows, Source};
use super::record::{DatasetRecord, RowCounts};
use super::shard::Shard;
use crate::cost::Usd;
use crate::events::{Bus, Event};
use crate::record::new_run_id;
use crate::runner::{self, AgentRunner, RunSettings};
use crate::scheduler::{self, Busy, Gate, RowIn};

/// The fewest rows the window holds, however low `--concurrency` is.
pub const MIN_WINDOW: usize = 1024;

/// The rows in flight when agents go through batches: their requests wait on
/// batches, not connections, so as many rows as fill a provider's batch (`OpenAI`
/// takes 50,000 requests) are read at once; more wait for the earliest to be told.
pub const BATCH_WINDOW: usize = 50_000;

/// The rows in flight when agents go through batches: [`BATCH_WINDOW`], or fewer
/// from `BYOK_FLOW_BATCH_WINDOW` (as the batch limits are lowered from
/// `BYOK_FLOW_BATCH_MAX_REQUESTS`).
pub fn batch_window() -> usize {
    std::env::var("BYOK_FLOW_BATCH_WINDOW")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|n| *n > 0)
        .map_or(BATCH_WINDOW, |n| n.min(BATCH_WINDOW))
}

/// How many rows may be in flight or finished and waiting for an earlier one to be
/// written: four per concurrent call, and at least [`MIN_WINDOW`].
pub fn window(concurrency: usize) -> usize {
    concurrency.saturating_mul(4).max(MIN_WINDOW)
}

/// The rows of a dataset run, checked.
#[derive(Debug, Clone)]
pub struct Dataset {
    pub source: Source,
    pub shard: Option<Shard>,
    pub inputs: RowInputs,
    /// The rows this run will run (this shard's), when known: a file's, not stdin's.
    pub rows: Option<u64>,
    /// The rows in the file, every shard's, when known.
    pub file_rows: Option<u64>,
}

impl Dataset {
    /// The rows of `source`, checked before any call: a file that cannot be parsed,
    /// is empty or has no row that can be used, and a CSV header with a column no
    /// input declares or without a required input, are refused. A file's rows are
    /// counted (stdin's cannot be: they are read once, as they come).
    pub fn open(
        source: Source,
        shard: Option<Shard>,
        inputs: RowInputs,
    ) -> Result<Dataset, FileError> {
        let name = source.name();
        let rows = source.rows(None)?;
        if let Some(header) = rows.header() {
            if let Err((message, hint)) = inputs.check_columns(header) {
                return Err(FileError {
                    message: format!("{name}: {message}"),
                    hint,
                });
            }
            let missing = inputs.missing_columns(header);
            if !missing.is_empty() {
                return Err(FileError {
                    message: format!(
                        "{name}: no column gives the required input{} {}",
                        if missing.len() == 1 { "" } else { "s" },
                        missing
                            .iter()
                            .map(|m| format!("`{m}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    hint: "add the column to the CSV, or pass `--input NAME=VALUE` for every row"
                        .into(),
                });
            }
        }
        if source.path.is_none() {
            return Ok(Dataset {
                source,
                shard,
                inputs,
                rows: None,
                file_rows: None,
            });
        }
        let (mut total, mut usable, mut ours) = (0u64, 0u64, 0u64);
        let mut first_problem = None;
        for row in rows {
            let row = row.map_err(|e| FileError {
                message: format!("{name}: {}", e.message),
                hint: e.hint,
            })?;
            total += 1;
            ours += u64::from(shard.is_none_or(|s| s.takes(row.index)));
            match row.fields {
                Ok(_) => usable += 1,
                Err(problem) => {
                    first_problem.get_or_insert((row.place, problem));
                }
            }
        }
        if total == 0 {
            return Err(FileError {
                message: format!("{name} has no rows"),
                hint: "give it at least one row: a JSON object a line (`.jsonl`), objects in an array (`.json`), or records under a header (`.csv`)".into(),
            });
        }
        if usable == 0 {
            let (place, problem) = first_problem.unwrap_or((
                super::read::Place::Line(1),
                super::read::RowProblem::new("it cannot be read", "check the file"),
            ));
            return Err(FileError {
                message: format!(
                    "{name}: no row can be used; the first, at {place}: {}",
                    problem.message
                ),
                hint: problem.hint,
            });
        }
        Ok(Dataset {
            source,
            shard,
            inputs,
            rows: Some(ours),
            file_rows: Some(total),
        })
    }
}

/// Runs the squad of `runner` once per row of `dataset` (to the end, or to
/// `cancel`), at most `window` rows in flight or waiting to be told, telling each
/// row's result on `bus` in order, and returns the run's record, or the file's
/// problem when the rows could not be read to the end.
#[allow(clippy::too_many_arguments)]
pub async fn execute(
    dataset: &Dataset,
    runner: AgentRunner,
    lane_limits: Vec<usize>,
    window: usize,
    settings: &RunSettings,
    gate: &mut dyn Gate<AgentRunner>,
    bus: &Bus,
    cancel: impl std::future::Future<Output = ()>,
) -> (DatasetRecord, Option<FileError>) {
    let started_at = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
    let run_id = settings.run_id.clone().unwrap_or_else(new_run_id);
    let clock = Instant::now();
    let runner = Arc::new(runner.for_rows(dataset.shard));
    let checked = runner.checked().clone();
    let models: Vec<(String, String)> = checked
        .workflow
        .agents
        .iter()
        .map(|(n, a)| (n.clone(), a.model.clone()))
        .collect();
    bus.emit(&Event::RowsStarted {
        run_id: &run_id,
        started_at: &started_at,
        rows: dataset.rows,
        agents: &models,
    });
    let window = window.max(1);
    let permits = Arc::new(Semaphore::new(window));
    let (tx, rx) = mpsc::channel(window);
    let fatal = Arc::new(Mutex::new(None));
    match dataset.source.rows(dataset.shard) {
        Ok(rows) => {
            let feeder = Feeder {
                inputs: dataset.inputs.clone(),
                permits: permits.clone(),
                tx,
                runtime: tokio::runtime::Handle::current(),
                fatal: fatal.clone(),
                busy: settings.busy.clone(),
                // A file's rows were counted: reading one takes no time worth
                // waiting out. Stdin's come when they come.
                steady: dataset.rows.is_some(),
            };
            // Not joined: on Ctrl-C it may be blocked reading stdin; it ends with
            // the process, having nowhere to send.
            std::thread::spawn(move || feeder.feed(rows));
        }
        Err(e) => {
            *fatal.lock().unwrap_or_else(PoisonError::into_inner) = Some(e);
            drop(tx);
        }
    }
    let mut collector = Collector::new(runner.clone(), &checked, bus.clone());
    let options = scheduler::Options {
        concurrency: settings.concurrency,
        lane_limits,
        keep_going: settings.keep_going,
        busy: settings.busy.clone(),
        keep: runner.kept_outputs(),
    };
    let interrupted = scheduler::run_rows(
        &checked.dag,
        runner.clone(),
        &options,
        gate,
        rx,
        cancel,
        |event| collector.on_event(event),
    )
    .await;
    collector.finish();
    permits.close();
    if settings.mock {
        let pricing = settings.pricing(&checked.workflow);
        for a in &mut collector.agents {
            let model = format!("{}/{}", a.provider, a.model);
            a.cache_saved_usd = crate::cost::bill::listed_saving(pricing, &model, &a.usage);
        }
    }
    let fatal = fatal.lock().unwrap_or_else(PoisonError::into_inner).take();
    let counts: RowCounts = collector.counts.clone();
    let record = DatasetRecord {
        kind: "dataset".into(),
        run_id,
        workflow: runner::workflow_name(&checked, &settings.file),
        file: settings.file.clone(),
        rows_file: dataset.source.name(),
        rows_in_file: dataset.file_rows,
        shard: dataset.shard,
        started_at,
        seconds: clock.elapsed().as_secs_f64(),
        status: DatasetRecord::status_of(&counts, interrupted),
        mock: settings.mock,
        inputs: settings.inputs.clone(),
        rows: counts,
        agents: collector.agents.clone(),
        usage: collector.usage,
        cost_usd: collector
            .agents
            .iter()
            .all(|a| a.cost_usd.is_some())
            .then(|| collector.priced.micro_dollars()),
        priced_cost_usd: collector.priced.micro_dollars(),
        unpriced_agents: collector
            .agents
            .iter()
            .filter(|a| a.cost_usd.is_none())
            .map(|a| a.name.clone())
            .collect(),
        max_cost_usd: collector
            .agents
            .iter()
            .any(|a| a.unknown_bills > 0)
            .then_some(collector.most)
            .flatten()
            .map(Usd::micro_dollars),
        budget_usd: settings.max_usd,
        cache_saved_usd: crate::record::sum_saved(
            collector.agents.iter().map(|a| a.cache_saved_usd),
        ),
        failed_rows: std::mem::take(&mut collector.failed_rows),
        key_failure: collector.key_failure,
    };
    bus.emit(&Event::RowsFinished { record: &record });
    (record, fatal)
}

/// Reads rows and hands them to the scheduler, each with a permit of the window.
struct Feeder {
    inputs: RowInputs,
    permits: Arc<Semaphore>,
    tx: mpsc::Sender<RowIn<Json, RowTag>>,
    runtime: tokio::runtime::Handle,
    fatal: Arc<Mutex<Option<FileError>>>,
    /// Where a batch run counts the work that may still hand its batcher a call:
    /// each row until its first agents have started, and the reading of a file
    /// while it is not waiting on the window, so a wave is not submitted between
    /// two rows.
    busy: Option<Busy>,
    steady: bool,
}

impl Feeder {
    fn feed(self, rows: Rows) {
        let reading = || self.busy.as_ref().filter(|_| self.steady).map(Busy::guard);
        let mut busy = reading();
        for (sent, read) in (0u64..).zip(rows) {
            let raw = match read {
                Ok(raw) => raw,
                Err(e) => {
                    *self.fatal.lock().unwrap_or_else(PoisonError::into_inner) = Some(e);
                    return;
                }
            };
            let permit = match self.permits.clone().try_acquire_owned() {
                Ok(permit) => permit,
                // Closed when the run ends (or is interrupted): nothing more to send.
                Err(TryAcquireError::Closed) => return,
                // The window is full: until a row is told, nothing more comes from here.
                Err(TryAcquireError::NoPermits) => {
                    drop(busy.take());
                    let Ok(permit) = self.runtime.block_on(self.permits.clone().acquire_owned())
                    else {
                        return;
                    };
                    busy = reading();
                    permit
                }
            };
            let (row, problem) = match raw.fields.and_then(|f| self.inputs.inputs(f)) {
                Ok(inputs) => (Some(inputs), None),
                Err(problem) => (None, Some(problem)),
            };
            let tag = RowTag {
                row: raw.index,
                place: raw.place,
                problem,
                permit: Some(permit),
            };
            let row = RowIn {
                index: sent,
                row,
                tag,
                arriving: self.busy.as_ref().map(Busy::guard),
            };
            if self.tx.blocking_send(row).is_err() {
                return;
            }
        }
    }
}
