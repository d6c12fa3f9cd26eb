//! What a run emits as it goes. Every output (the live view, the closing table,
//! `--json`, `--out`) is a [`Subscriber`]; a new output format is a new subscriber,
//! not an edit to the scheduler.

use std::sync::{Arc, Mutex, PoisonError};

use crate::dataset::record::{AgentAggregate, DatasetRecord, RowResult};
use crate::providers::call::Attempt;
use crate::record::{AgentRecord, RunRecord};

/// Something that happened in a run.
#[derive(Debug)]
pub enum Event<'a> {
    /// The run is about to start these agents (name, `provider/model`).
    RunStarted {
        /// The id the run record will have.
        run_id: &'a str,
        /// When the run started (RFC 3339, UTC).
        started_at: &'a str,
        agents: &'a [(String, String)],
    },
    AgentStarted {
        agent: &'a str,
        model: &'a str,
    },
    /// An attempt failed; another follows after `attempt.delay_ms` (or a fallback, or nothing).
    AttemptFailed {
        agent: &'a str,
        attempt: &'a Attempt,
    },
    /// A streamed reply has brought this many characters so far.
    AgentProgress {
        agent: &'a str,
        chars: usize,
    },
    /// An agent succeeded or failed.
    AgentFinished {
        record: &'a AgentRecord,
    },
    AgentSkipped {
        record: &'a AgentRecord,
    },
    RunFinished {
        record: &'a RunRecord,
    },
    /// Something the person running should know that does not stop the run (a
    /// cache entry that could not be read or written, say).
    Warning {
        message: &'a str,
    },
    /// A dataset run (SPEC §8) is about to start its rows.
    RowsStarted {
        run_id: &'a str,
        started_at: &'a str,
        /// How many rows it will run, when known (not for stdin).
        rows: Option<u64>,
        /// The agents (name, `provider/model`).
        agents: &'a [(String, String)],
    },
    /// A row of a dataset run ended. Rows are told in order, each as soon as it and
    /// every row before it have ended; `agents` is every agent's aggregate so far.
    RowFinished {
        result: &'a RowResult,
        agents: &'a [AgentAggregate],
    },
    /// A dataset run ended.
    RowsFinished {
        record: &'a DatasetRecord,
    },
}

/// Listens to a run.
pub trait Subscriber: Send {
    fn on_event(&mut self, event: &Event<'_>) -> std::io::Result<()>;
}

/// Sends each event to every subscriber; the first I/O error is kept and returned
/// at the end. Clones share the subscribers, so agents' tasks can report progress.
#[derive(Clone, Default)]
pub struct Bus {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Default)]
struct Inner {
    subscribers: Vec<Box<dyn Subscriber>>,
    error: Option<std::io::Error>,
}

impl Bus {
    pub fn subscribe(&self, subscriber: Box<dyn Subscriber>) {
        self.lock().subscribers.push(subscriber);
    }

    pub fn emit(&self, event: &Event<'_>) {
        let mut inner = self.lock();
        let Inner { subscribers, error } = &mut *inner;
        for s in subscribers.iter_mut() {
            if let Err(e) = s.on_event(event) {
                error.get_or_insert(e);
            }
        }
    }

    /// The first error any subscriber hit.
    pub fn finish(&self) -> Option<std::io::Error> {
        self.lock().error.take()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A subscriber that panicked leaves nothing half-written worth guarding.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
