//! What a run emits as it goes. Every output (the live view, the closing table,
//! `--json`, `--out`) is a [`Subscriber`]; a new output format is a new subscriber,
//! not an edit to the scheduler.

use crate::record::{AgentRecord, RunRecord};

/// Something that happened in a run.
#[derive(Debug)]
pub enum Event<'a> {
    /// The run is about to start these agents (name, `provider/model`).
    RunStarted {
        agents: &'a [(String, String)],
    },
    AgentStarted {
        agent: &'a str,
        model: &'a str,
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
}

/// Listens to a run.
pub trait Subscriber {
    fn on_event(&mut self, event: &Event<'_>) -> std::io::Result<()>;
}

/// Sends each event to every subscriber; the first I/O error is kept and returned at the end.
#[derive(Default)]
pub struct Bus {
    subscribers: Vec<Box<dyn Subscriber>>,
    error: Option<std::io::Error>,
}

impl Bus {
    pub fn subscribe(&mut self, subscriber: Box<dyn Subscriber>) {
        self.subscribers.push(subscriber);
    }

    pub fn emit(&mut self, event: &Event<'_>) {
        for s in &mut self.subscribers {
            if let Err(e) = s.on_event(event) {
                self.error.get_or_insert(e);
            }
        }
    }

    /// The first error any subscriber hit.
    pub fn finish(self) -> Option<std::io::Error> {
        self.error
    }
}
