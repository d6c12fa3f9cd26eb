//! What a run emits as it goes. Every output (the live view, the closing table,
//! `--json`, `--out`) is a [`Subscriber`]; a new output format is a new subscriber,
//! not an edit to the scheduler.

use std::sync::{Arc, Mutex, PoisonError};

use crate::dataset::record::{AgentAggregate, DatasetRecord, RowResult};
use crate::keys::redact;
use crate::providers::call::Attempt;
use crate::record::{AgentRecord, RunRecord};
use crate::tools::ToolName;

/// Something that happened in a run.
#[derive(Debug, Clone, Copy)]
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
    /// The provider started running a server-side tool for the agent (a web search).
    AgentTool {
        agent: &'a str,
        tool: ToolName,
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

    /// Sends `event` to every subscriber. The last guard of SPEC §4: whatever it
    /// carries passes through the run's redactor first, so no output (the
    /// terminal, `--json`, `--out`, the history, GitHub annotations and summary)
    /// can show or keep a key, whatever path the text took.
    pub fn emit(&self, event: &Event<'_>) {
        match Redacted::of(event) {
            Some(clean) => self.dispatch(&clean.event()),
            None => self.dispatch(event),
        }
    }

    fn dispatch(&self, event: &Event<'_>) {
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

/// An event's data with the run's secrets taken out, when it held one.
enum Redacted<'a> {
    Attempt(&'a str, Attempt),
    Finished(AgentRecord),
    Skipped(AgentRecord),
    Run(RunRecord),
    Warning(String),
    Row(RowResult, &'a [AgentAggregate]),
    Rows(DatasetRecord),
}

impl<'a> Redacted<'a> {
    fn of(event: &Event<'a>) -> Option<Self> {
        if !redact::active() {
            return None;
        }
        match *event {
            Event::AttemptFailed { agent, attempt } => {
                redact_attempt(attempt).map(|a| Redacted::Attempt(agent, a))
            }
            Event::AgentFinished { record } => redact_agent(record).map(Redacted::Finished),
            Event::AgentSkipped { record } => redact_agent(record).map(Redacted::Skipped),
            Event::RunFinished { record } => redact_run(record).map(Redacted::Run),
            Event::Warning { message } => match redact::text(message) {
                std::borrow::Cow::Owned(clean) => Some(Redacted::Warning(clean)),
                std::borrow::Cow::Borrowed(_) => None,
            },
            Event::RowFinished { result, agents } => {
                redact_row(result).map(|r| Redacted::Row(r, agents))
            }
            Event::RowsFinished { record } => redact_rows(record).map(Redacted::Rows),
            Event::RunStarted { .. }
            | Event::AgentStarted { .. }
            | Event::AgentProgress { .. }
            | Event::AgentTool { .. }
            | Event::RowsStarted { .. } => None,
        }
    }

    fn event(&self) -> Event<'_> {
        match self {
            Redacted::Attempt(agent, attempt) => Event::AttemptFailed { agent, attempt },
            Redacted::Finished(record) => Event::AgentFinished { record },
            Redacted::Skipped(record) => Event::AgentSkipped { record },
            Redacted::Run(record) => Event::RunFinished { record },
            Redacted::Warning(message) => Event::Warning { message },
            Redacted::Row(result, agents) => Event::RowFinished { result, agents },
            Redacted::Rows(record) => Event::RowsFinished { record },
        }
    }
}

/// A row's result with its secrets taken out (outputs and error); `None` when it
/// holds none.
fn redact_row(result: &RowResult) -> Option<RowResult> {
    let error = result.error.as_ref();
    let dirty = result.outputs.values().any(|v| redact::holds_secret(v))
        || error.is_some_and(|e| {
            redact::holds_secret(&e.message) || e.hint.as_deref().is_some_and(redact::holds_secret)
        });
    if !dirty {
        return None;
    }
    let mut clean = result.clone();
    for value in clean.outputs.values_mut() {
        redact::in_place(value);
    }
    if let Some(error) = &mut clean.error {
        redact::in_place(&mut error.message);
        if let Some(hint) = &mut error.hint {
            redact::in_place(hint);
        }
    }
    Some(clean)
}

/// A dataset run's record with its secrets taken out (its inputs and the failed
/// rows it keeps); `None` when it holds none.
fn redact_rows(record: &DatasetRecord) -> Option<DatasetRecord> {
    let rows: Vec<Option<RowResult>> = record.failed_rows.iter().map(redact_row).collect();
    let dirty =
        rows.iter().any(Option::is_some) || record.inputs.values().any(|v| redact::holds_secret(v));
    if !dirty {
        return None;
    }
    let mut clean = record.clone();
    for (row, redacted) in clean.failed_rows.iter_mut().zip(rows) {
        if let Some(redacted) = redacted {
            *row = redacted;
        }
    }
    for value in clean.inputs.values_mut() {
        redact::in_place(value);
    }
    Some(clean)
}

fn redact_attempt(attempt: &Attempt) -> Option<Attempt> {
    let mut clean = attempt.clone();
    redact::in_place(&mut clean.outcome).then_some(clean)
}

/// The record with its secrets taken out; `None` (and no copy made) when it
/// holds none.
pub fn redact_agent(record: &AgentRecord) -> Option<AgentRecord> {
    let mut texts = [
        record.reason.as_deref(),
        record.output.as_deref(),
        record.stop_reason.as_deref(),
    ]
    .into_iter()
    .flatten()
    .chain(record.attempts.iter().map(|a| a.outcome.as_str()))
    .chain(
        record
            .citations
            .iter()
            .flat_map(|c| [c.url.as_str(), c.title.as_str(), c.quoted.as_str()]),
    );
    let dirty = texts.any(redact::holds_secret)
        || record.json.as_ref().is_some_and(redact::json_holds_secret);
    if !dirty {
        return None;
    }
    let mut clean = record.clone();
    for text in [
        clean.reason.as_mut(),
        clean.output.as_mut(),
        clean.stop_reason.as_mut(),
    ]
    .into_iter()
    .flatten()
    {
        redact::in_place(text);
    }
    if let Some(json) = &mut clean.json {
        redact::json(json);
    }
    for attempt in &mut clean.attempts {
        redact::in_place(&mut attempt.outcome);
    }
    for c in &mut clean.citations {
        for text in [&mut c.url, &mut c.title, &mut c.quoted] {
            redact::in_place(text);
        }
    }
    Some(clean)
}

fn redact_run(record: &RunRecord) -> Option<RunRecord> {
    let agents: Vec<Option<AgentRecord>> = record.agents.iter().map(redact_agent).collect();
    let dirty = agents.iter().any(Option::is_some)
        || record
            .outputs
            .values()
            .chain(record.inputs.values())
            .any(|v| redact::holds_secret(v));
    if !dirty {
        return None;
    }
    let mut clean = record.clone();
    for (agent, redacted) in clean.agents.iter_mut().zip(agents) {
        if let Some(redacted) = redacted {
            *agent = redacted;
        }
    }
    for value in clean.outputs.values_mut().chain(clean.inputs.values_mut()) {
        redact::in_place(value);
    }
    Some(clean)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::AgentStatus;

    struct Keep(Arc<Mutex<Vec<String>>>);

    impl Subscriber for Keep {
        fn on_event(&mut self, event: &Event<'_>) -> std::io::Result<()> {
            if let Event::AgentFinished { record } = event {
                let mut seen = self.0.lock().unwrap();
                seen.extend(record.reason.clone());
                seen.extend(record.attempts.iter().map(|a| a.outcome.clone()));
            }
            Ok(())
        }
    }

    #[test]
    fn subscribers_never_see_a_secret_the_run_read() {
        redact::register_text("bus-test", "sk-BUS-CANARY-41f7");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let bus = Bus::default();
        bus.subscribe(Box::new(Keep(seen.clone())));
        let attempt = Attempt {
            model: "p/m".into(),
            at: 0.0,
            status: Some(401),
            outcome: "bad key sk-BUS-CANARY-41f7".into(),
            seconds: 0.0,
            delay_ms: 0,
        };
        let record = AgentRecord {
            name: "a".into(),
            item: None,
            provider: "p".into(),
            model: "m".into(),
            status: AgentStatus::Failed,
            reason: Some("p 401: key sk-BUS-CANARY%2D41f7 refused".into()),
            seconds: 0.0,
            usage: crate::usage::Usage::default(),
            counted_locally: false,
            cost_usd: None,
            bill_unknown: false,
            max_cost_usd: None,
            stop_reason: None,
            output: None,
            json: None,
            answered_by: None,
            attempts: vec![attempt],
            cached: false,
            depends_on: Vec::new(),
            timing: None,
            estimate: None,
            key_failure: false,
            citations: Vec::new(),
            cache_saved_usd: None,
        };
        bus.emit(&Event::AgentFinished { record: &record });
        assert_eq!(
            *seen.lock().unwrap(),
            [
                "p 401: key [redacted key bus-test] refused",
                "bad key [redacted key bus-test]"
            ]
        );
    }
}
