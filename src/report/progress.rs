//! Progress on stderr: a live per-agent view on a terminal (indicatif), plain
//! lines elsewhere (CI logs, pipes), nothing with `-q`.

use std::collections::HashMap;
use std::io::Write;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::events::{Event, Subscriber};
use crate::printable;
use crate::providers::call::Attempt;
use crate::record::{AgentRecord, AgentStatus};
use crate::tools::ToolName;

/// One line per agent event, for logs.
pub struct Plain {
    start: Instant,
}

impl Default for Plain {
    fn default() -> Self {
        Plain {
            start: Instant::now(),
        }
    }
}

/// The line that says how an agent ended.
pub fn settled_line(record: &AgentRecord) -> String {
    match record.status {
        AgentStatus::Succeeded if record.cached => format!(
            "cached   {}  from the cache, no call  {}",
            record.name,
            super::agent_usd(record)
        ),
        AgentStatus::Succeeded => {
            let (tokens_in, tokens_out) = super::agent_tokens(record);
            format!(
                "ok       {}  {tokens_in} in, {tokens_out} out  {:.2}s  {}",
                record.name,
                record.seconds,
                super::agent_usd(record)
            )
        }
        AgentStatus::Failed => format!(
            "failed   {}: {}{}",
            record.name,
            printable::escape(record.reason.as_deref().unwrap_or("unknown error")),
            spent_note(record)
        ),
        AgentStatus::Skipped => format!(
            "skipped  {}: {}",
            record.name,
            printable::escape(record.reason.as_deref().unwrap_or("not run"))
        ),
        AgentStatus::Cancelled => format!("cancelled {}{}", record.name, spent_note(record)),
    }
}

/// What an agent that did not succeed cost anyway, if anything: `; cost ~$0.0012
/// (up to $0.0303: its bill is unknown)`, `; cost unpriced`.
fn spent_note(record: &AgentRecord) -> String {
    let money = |usd: Option<f64>| usd.is_none_or(|c| c > 0.0);
    let unknown = record.bill_unknown && money(record.max_cost_usd);
    if !money(record.cost_usd) && !unknown {
        return String::new();
    }
    let most = match record.max_cost_usd {
        _ if !unknown => String::new(),
        Some(most) => format!(" (up to {}: its bill is unknown)", super::usd(Some(most))),
        None => " (its bill is unknown)".to_string(),
    };
    format!("; cost {}{most}", super::agent_usd(record))
}

/// The line that says the provider is running a tool for an agent.
pub fn tool_line(agent: &str, tool: ToolName) -> String {
    format!("tool     {agent}: {} ({tool})", tool.doing())
}

/// The line that says an attempt failed and what happens next.
pub fn attempt_line(agent: &str, attempt: &Attempt) -> String {
    let then = if attempt.delay_ms > 0 {
        format!("; retrying in {:.1}s", attempt.delay_ms as f64 / 1000.0)
    } else {
        "; trying again".to_string()
    };
    format!(
        "retry    {agent} ({}): {}{then}",
        attempt.model,
        printable::escape(&attempt.outcome)
    )
}

impl Subscriber for Plain {
    fn on_event(&mut self, event: &Event<'_>) -> std::io::Result<()> {
        let elapsed = self.start.elapsed().as_secs_f64();
        let line = match event {
            Event::AgentStarted { agent, model } => {
                format!("started  {agent} ({})", printable::escape_line(model))
            }
            Event::AgentFinished { record } | Event::AgentSkipped { record } => {
                settled_line(record)
            }
            Event::AttemptFailed { agent, attempt } => attempt_line(agent, attempt),
            Event::AgentTool { agent, tool } => tool_line(agent, *tool),
            Event::Warning { message } => format!("warning  {}", printable::escape(message)),
            Event::RunStarted { .. }
            | Event::RunFinished { .. }
            | Event::AgentProgress { .. }
            | Event::RowsStarted { .. }
            | Event::RowFinished { .. }
            | Event::RowsFinished { .. } => {
                return Ok(());
            }
        };
        writeln!(std::io::stderr().lock(), "[{elapsed:7.2}s] {line}")
    }
}

/// A spinner per running agent; settled agents scroll above them.
pub struct Live {
    multi: MultiProgress,
    bars: HashMap<String, ProgressBar>,
    style: ProgressStyle,
}

impl Default for Live {
    fn default() -> Self {
        let style = ProgressStyle::with_template("{spinner} {prefix:.bold} {msg} {elapsed:.dim}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner());
        Live {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
            bars: HashMap::new(),
            style,
        }
    }
}

impl Subscriber for Live {
    fn on_event(&mut self, event: &Event<'_>) -> std::io::Result<()> {
        match event {
            Event::AgentStarted { agent, model } => {
                let bar = self.multi.add(ProgressBar::new_spinner());
                bar.set_style(self.style.clone());
                bar.set_prefix((*agent).to_string());
                bar.set_message(format!("running on {}", printable::escape_line(model)));
                bar.enable_steady_tick(Duration::from_millis(100));
                self.bars.insert((*agent).to_string(), bar);
            }
            Event::AgentFinished { record } | Event::AgentSkipped { record } => {
                if let Some(bar) = self.bars.remove(&record.name) {
                    bar.finish_and_clear();
                    self.multi.remove(&bar);
                }
                let mark = match record.status {
                    AgentStatus::Succeeded => "✓",
                    AgentStatus::Failed => "✗",
                    AgentStatus::Skipped | AgentStatus::Cancelled => "-",
                };
                self.multi
                    .println(format!("{mark} {}", settled_line(record)))?;
            }
            Event::RunFinished { .. } => {
                for (_, bar) in self.bars.drain() {
                    bar.finish_and_clear();
                }
                self.multi.clear()?;
            }
            Event::AttemptFailed { agent, attempt } => {
                if let Some(bar) = self.bars.get(*agent) {
                    bar.set_message(format!(
                        "{} failed: {}",
                        attempt.model,
                        printable::escape(&attempt.outcome)
                    ));
                }
            }
            Event::AgentProgress { agent, chars } => {
                if let Some(bar) = self.bars.get(*agent) {
                    bar.set_message(format!("receiving, ~{} tokens", chars.div_ceil(4)));
                }
            }
            Event::AgentTool { agent, tool } => {
                if let Some(bar) = self.bars.get(*agent) {
                    bar.set_message(format!("{}…", tool.doing()));
                }
            }
            Event::Warning { message } => self
                .multi
                .println(format!("warning: {}", printable::escape(message)))?,
            Event::RunStarted { .. }
            | Event::RowsStarted { .. }
            | Event::RowFinished { .. }
            | Event::RowsFinished { .. } => {}
        }
        Ok(())
    }
}
