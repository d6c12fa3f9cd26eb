//! The run's log in GitHub Actions: each agent's lines folded in a
//! `::group::`, with its output, inside a `::stop-commands::` fence, and an
//! `::error` annotation at the agent's place in the workflow file when it fails.
//!
//! Agents run at once, and GitHub's groups cannot interleave, so an agent's
//! lines are kept until it settles and then written as one group; nothing is
//! printed for an agent before its key is read, so a key's `::add-mask::` always
//! comes first. This replaces the plain progress lines in GitHub Actions.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::Path;
use std::time::Instant;

use super::command::{self, Level, Place};
use crate::events::{Event, Subscriber};
use crate::record::{AgentRecord, AgentStatus, RunRecord, RunStatus};
use crate::report::{agent_tokens, agent_usd, progress, table};
use crate::settings::GitHub;
use crate::workflow::Checked;
use crate::workflow::tree::escape;

/// Groups and annotations on stderr.
pub struct Log {
    start: Instant,
    /// Whether to write the groups (not with `-q`; annotations are always written).
    groups: bool,
    file: Place,
    agents: HashMap<String, Place>,
    /// Where `budget.max_usd` is written, when the file sets the run's ceiling.
    budget: Option<(f64, Place)>,
    lines: HashMap<String, Vec<String>>,
}

impl Log {
    pub fn new(github: &GitHub, checked: &Checked, file: &Path, quiet: bool) -> Self {
        let place = Place::file(file, github.workspace.as_deref());
        let index = checked.index();
        let at = |pointer: &str, key: bool| {
            let (pos, _) = if key {
                index.key(pointer)
            } else {
                index.value(pointer)
            };
            pos.map_or_else(|| place.clone(), |p| place.at(p.line, p.column))
        };
        let agents = checked
            .workflow
            .agents
            .keys()
            .map(|name| (name.clone(), at(&format!("/agents/{}", escape(name)), true)))
            .collect();
        let budget = checked
            .workflow
            .budget
            .as_ref()
            .map(|b| (b.max_usd, at("/budget/max_usd", false)));
        Log {
            start: Instant::now(),
            groups: !quiet,
            file: place,
            agents,
            budget,
            lines: HashMap::new(),
        }
    }

    fn line(&self, text: &str) -> String {
        format!("[{:7.2}s] {text}", self.start.elapsed().as_secs_f64())
    }

    fn push(&mut self, agent: &str, text: &str) {
        let line = self.line(text);
        self.lines.entry(agent.to_string()).or_default().push(line);
    }

    /// The group of an agent that ran, and its annotation if it failed.
    fn settled(&mut self, record: &AgentRecord) -> String {
        let mut out = String::new();
        let mut lines = self.lines.remove(&record.name).unwrap_or_default();
        lines.push(self.line(&progress::settled_line(record)));
        if self.groups {
            // Everything in the group is fenced, not only the output: a provider's
            // error message is remote text too.
            let mut body = lines.join("\n");
            body.push('\n');
            if let Some(text) = record.output.as_deref().filter(|t| !t.is_empty()) {
                body.push_str("output:\n");
                body.push_str(text);
            }
            out.push_str(&command::group(&title(record)));
            out.push_str(&command::fenced(&body));
            out.push_str(command::END_GROUP);
        }
        if record.status == AgentStatus::Failed {
            let place = self.agents.get(&record.name).unwrap_or(&self.file);
            out.push_str(&command::annotation(
                Level::Error,
                Some(place),
                &format!("agent `{}` failed", record.name),
                record.reason.as_deref().unwrap_or("unknown error"),
            ));
        }
        out
    }

    /// What the run as a whole needs said: why it stopped at its budget, or that
    /// it was interrupted.
    fn finished(&self, record: &RunRecord) -> String {
        let Some(outcome) = table::outcome(record) else {
            return String::new();
        };
        match record.status {
            RunStatus::BudgetReached => {
                let place = match &self.budget {
                    Some((max, place)) if Some(*max) == record.budget_usd => place,
                    _ => &self.file,
                };
                command::annotation(Level::Error, Some(place), "budget", &outcome)
            }
            RunStatus::Interrupted => {
                command::annotation(Level::Warning, Some(&self.file), "interrupted", &outcome)
            }
            RunStatus::Failed | RunStatus::Succeeded => String::new(),
        }
    }
}

/// A group's title: the agent, its model, and how it ended.
fn title(record: &AgentRecord) -> String {
    let model = format!("{}/{}", record.provider, record.model);
    match record.status {
        AgentStatus::Succeeded => {
            let (tokens_in, tokens_out) = agent_tokens(record);
            format!(
                "{} ({model}): ok, {tokens_in} in, {tokens_out} out, {:.2}s, {}",
                record.name,
                record.seconds,
                agent_usd(record)
            )
        }
        status => format!("{} ({model}): {}", record.name, status.as_str()),
    }
}

impl Subscriber for Log {
    fn on_event(&mut self, event: &Event<'_>) -> std::io::Result<()> {
        let text = match event {
            Event::AgentStarted { agent, model } => {
                self.push(agent, &format!("started  {agent} ({model})"));
                return Ok(());
            }
            Event::AttemptFailed { agent, attempt } => {
                self.push(agent, &progress::attempt_line(agent, attempt));
                return Ok(());
            }
            Event::AgentTool { agent, tool } => {
                self.push(agent, &progress::tool_line(agent, *tool));
                return Ok(());
            }
            Event::AgentFinished { record } => self.settled(record),
            // A skipped agent never ran: one line, no group.
            Event::AgentSkipped { record } if self.groups => {
                self.line(&progress::settled_line(record)) + "\n"
            }
            Event::RunFinished { record } => self.finished(record),
            Event::Warning { message } => {
                command::annotation(Level::Warning, None, "byok-flow", message)
            }
            Event::AgentSkipped { .. }
            | Event::RunStarted { .. }
            | Event::AgentProgress { .. }
            | Event::RowsStarted { .. }
            | Event::RowFinished { .. }
            | Event::RowsFinished { .. } => {
                return Ok(());
            }
        };
        let mut err = std::io::stderr().lock();
        err.write_all(text.as_bytes())?;
        err.flush()
    }
}
