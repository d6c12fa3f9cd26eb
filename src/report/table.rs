//! The closing table on stderr (SPEC §3): agent, model, status, tokens in and out,
//! seconds, dollars, and the total.

use std::io::Write;

use crate::events::{Event, Subscriber};
use crate::printable;
use crate::record::{AgentStatus, RunRecord, RunStatus};
use crate::workflow::diagnostic::counted;

/// Renders the table of a run. When a provider's prompt cache was used, two more
/// columns show each agent's cache-read and cache-write tokens, and a line under
/// the table what caching saved.
pub fn render(record: &RunRecord) -> String {
    let cache = super::cache_used(record);
    let mut header = vec!["agent", "model", "status", "tokens in", "tokens out"];
    if cache {
        header.extend(["cache read", "cache write"]);
    }
    header.extend(["seconds", "cost"]);
    let mut rows: Vec<Vec<String>> = record
        .agents
        .iter()
        .map(|a| {
            let mut status = if a.cached {
                "cached".to_string()
            } else {
                a.status.as_str().to_string()
            };
            if a.stop_reason.as_deref() == Some("max_tokens") {
                status.push_str(" (cut at max_tokens)");
            }
            let (tokens_in, tokens_out) = super::agent_tokens(a);
            let mut row = vec![
                a.name.clone(),
                // The model may be the one a server said answered: shown, never obeyed.
                printable::escape_line(&format!("{}/{}", a.provider, a.model)).into_owned(),
                status,
                tokens_in,
                tokens_out,
            ];
            if cache {
                row.extend([
                    a.usage.cache_read.to_string(),
                    a.usage.cache_writes().to_string(),
                ]);
            }
            row.extend([format!("{:.2}", a.seconds), super::agent_usd(a)]);
            row
        })
        .collect();
    let mark = super::approx(record.counted_locally());
    let mut total = vec![
        "total".into(),
        String::new(),
        String::new(),
        format!("{mark}{}", record.usage.input),
        format!("{mark}{}", record.usage.output),
    ];
    if cache {
        total.extend([
            record.usage.cache_read.to_string(),
            record.usage.cache_writes().to_string(),
        ]);
    }
    total.extend([format!("{:.2}", record.seconds), super::run_usd(record)]);
    rows.push(total);
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let mut out = String::new();
        for (i, cell) in cells.iter().enumerate() {
            let pad = widths[i] - cell.chars().count();
            if i >= 3 {
                out.push_str(&" ".repeat(pad));
                out.push_str(cell);
            } else {
                out.push_str(cell);
                out.push_str(&" ".repeat(pad));
            }
            out.push_str(if i + 1 < cells.len() { "  " } else { "" });
        }
        out.trim_end().to_string() + "\n"
    };
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    let mut out = line(&header.iter().map(|h| (*h).to_string()).collect::<Vec<_>>());
    out.push_str(&line(&rule));
    let (total, agents) = rows
        .split_last()
        .map_or((None, &rows[..]), |(t, a)| (Some(t), a));
    for row in agents {
        out.push_str(&line(row));
    }
    if let Some(total) = total {
        out.push_str(&line(&rule));
        out.push_str(&line(total));
    }
    for note in super::cost_notes(record) {
        out.push_str(&note);
        out.push('\n');
    }
    if let Some(budget) = record.budget_usd {
        out.push_str(&super::budget_line(record, budget));
        out.push('\n');
    }
    out
}

/// The line under the table for a run that did not succeed: what happened, so the
/// exit code is never the only sign.
pub fn outcome(record: &RunRecord) -> Option<String> {
    let with = |status: AgentStatus| {
        record
            .agents
            .iter()
            .filter(move |a| a.status == status)
            .map(|a| a.name.as_str())
    };
    let skipped = counted(with(AgentStatus::Skipped).count(), "agent");
    match record.status {
        RunStatus::Succeeded => None,
        RunStatus::Failed => {
            let failed: Vec<String> = with(AgentStatus::Failed)
                .map(|n| format!("`{n}`"))
                .collect();
            let skipped_count = with(AgentStatus::Skipped).count();
            Some(match (failed.is_empty(), skipped_count) {
                (true, _) => format!("The run did not finish: {skipped} skipped."),
                (false, 0) => format!("The run failed: {} failed.", failed.join(", ")),
                (false, _) => format!(
                    "The run failed: {} failed, {skipped} skipped.",
                    failed.join(", ")
                ),
            })
        }
        RunStatus::BudgetReached => {
            let names = |status: AgentStatus| {
                with(status)
                    .map(|n| format!("`{n}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            // An agent that failed here was stopped for the budget before a retry.
            let stopped = with(AgentStatus::Failed).count();
            let mut parts = Vec::new();
            if stopped > 0 {
                parts.push(format!(
                    "{} stopped before another call ({})",
                    counted(stopped, "agent"),
                    names(AgentStatus::Failed)
                ));
            }
            if stopped == 0 || with(AgentStatus::Skipped).count() > 0 {
                parts.push(format!(
                    "{skipped} skipped ({})",
                    names(AgentStatus::Skipped)
                ));
            }
            Some(format!(
                "The run kept to its budget: {}; raise the budget or lower their `max_tokens` to run them.",
                parts.join(", ")
            ))
        }
        RunStatus::Interrupted => Some(format!(
            "The run was interrupted: {} cancelled, {skipped} not started, {} finished.",
            counted(with(AgentStatus::Cancelled).count(), "agent"),
            counted(with(AgentStatus::Succeeded).count(), "agent"),
        )),
    }
}

/// Prints the closing table on stderr when the run ends.
pub struct ClosingTable;

impl Subscriber for ClosingTable {
    fn on_event(&mut self, event: &Event<'_>) -> std::io::Result<()> {
        if let Event::RunFinished { record } = event {
            let mut err = std::io::stderr().lock();
            writeln!(err)?;
            err.write_all(render(record).as_bytes())?;
            if let Some(line) = outcome(record) {
                writeln!(err, "{line}")?;
            }
        }
        Ok(())
    }
}
