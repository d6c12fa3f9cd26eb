//! The subscriber that keeps a run in the history as it goes.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use super::{HistoryError, RunStart, Store};
use crate::events::{Event, Subscriber};
use crate::record::AgentRecord;
use crate::usage::Usage;

/// Writes the run's row when it starts, each agent that spent tokens as soon as it
/// settles (so a killed run's spend is kept), and the whole record when it ends.
/// A failure to write is one warning on stderr; the run goes on unrecorded.
pub struct Recorder {
    store: Option<Store>,
    workflow: String,
    file: String,
    inputs_hash: String,
    mock: bool,
    quiet: bool,
    run_id: String,
    positions: HashMap<String, usize>,
    /// Where the run's record will be written (`--out DIR/run.json`).
    record_path: Option<String>,
    /// When a dataset run's aggregates were last written.
    flushed: Instant,
}

/// How often a dataset run's aggregates are written while it goes: what a run
/// killed with `kill -9` loses from the history at most.
const FLUSH_EVERY: Duration = Duration::from_secs(2);

impl Recorder {
    /// A recorder writing to `path`, for a run of `workflow` (its name) in `file`.
    pub fn new(
        path: &Path,
        workflow: &str,
        file: &str,
        inputs_hash: String,
        mock: bool,
        quiet: bool,
    ) -> Result<Self, HistoryError> {
        Ok(Recorder {
            store: Some(Store::open(path)?),
            workflow: workflow.to_string(),
            file: file.to_string(),
            inputs_hash,
            mock,
            quiet,
            run_id: String::new(),
            positions: HashMap::new(),
            record_path: None,
            flushed: Instant::now(),
        })
    }

    /// Also keeps where the run's record is written, so that `byok-flow report
    /// RUN_ID` can read its replies back.
    #[must_use]
    pub fn with_record_path(mut self, path: Option<&Path>) -> Self {
        self.record_path = path.map(|p| {
            std::path::absolute(p)
                .unwrap_or_else(|_| p.to_path_buf())
                .display()
                .to_string()
        });
        self
    }

    fn write(&mut self, what: impl FnOnce(&mut Store, &Self) -> Result<(), HistoryError>) {
        let Some(mut store) = self.store.take() else {
            return;
        };
        match what(&mut store, self) {
            Ok(()) => self.store = Some(store),
            Err(e) => {
                if !self.quiet {
                    eprintln!("warning: this run is not recorded in the history: {e}");
                }
            }
        }
    }
}

/// Whether an agent cost anything now (not cached, some tokens used).
fn spent(record: &AgentRecord) -> bool {
    !record.cached && (record.usage != Usage::default() || record.cost_usd.is_some_and(|c| c > 0.0))
}

impl Subscriber for Recorder {
    fn on_event(&mut self, event: &Event<'_>) -> std::io::Result<()> {
        match event {
            Event::RunStarted {
                run_id,
                started_at,
                agents,
            } => {
                self.run_id = (*run_id).to_string();
                self.positions = agents
                    .iter()
                    .enumerate()
                    .map(|(i, (name, _))| (name.clone(), i))
                    .collect();
                self.write(|store, me| {
                    store.start(&RunStart {
                        run_id,
                        workflow: &me.workflow,
                        file: &me.file,
                        inputs_hash: &me.inputs_hash,
                        started_at,
                        mock: me.mock,
                        agents: agents.len(),
                        rows: None,
                    })
                });
            }
            Event::RowsStarted {
                run_id,
                started_at,
                rows,
                agents,
            } => {
                self.run_id = (*run_id).to_string();
                self.flushed = Instant::now();
                self.write(|store, me| {
                    store.start(&RunStart {
                        run_id,
                        workflow: &me.workflow,
                        file: &me.file,
                        inputs_hash: &me.inputs_hash,
                        started_at,
                        mock: me.mock,
                        agents: agents.len(),
                        rows: *rows,
                    })
                });
            }
            Event::RowFinished { agents, .. }
                if !self.mock && self.flushed.elapsed() >= FLUSH_EVERY =>
            {
                self.flushed = Instant::now();
                self.write(|store, me| store.aggregates(&me.run_id, agents));
            }
            Event::RowsFinished { record } => self.write(|store, me| {
                store.finish_rows(record)?;
                match &me.record_path {
                    Some(path) => store.keep_record_path(&record.run_id, path),
                    None => Ok(()),
                }
            }),
            Event::AgentFinished { record } if !self.mock && spent(record) => {
                if let Some(&position) = self.positions.get(&record.name) {
                    self.write(|store, me| store.agent(&me.run_id, position, record));
                }
            }
            Event::RunFinished { record } => self.write(|store, me| {
                store.finish(record)?;
                match &me.record_path {
                    Some(path) => store.keep_record_path(&record.run_id, path),
                    None => Ok(()),
                }
            }),
            _ => {}
        }
        Ok(())
    }
}
