//! The closing table of a dataset run on stderr: one line per agent with its calls
//! over every row (failed and cached among them), tokens, seconds and dollars, the
//! total, and how the rows ended. When a provider's prompt cache was used, two
//! more columns show the cache-read and cache-write tokens, and a line under the
//! table what caching saved, as under a single run's table.

use std::io::Write;

use crate::dataset::record::{AgentAggregate, DatasetRecord, RowCounts};
use crate::events::{Event, Subscriber};
use crate::record::RunStatus;
use crate::report::{Align, grid, prompt_cache_line, prompt_cache_used, usd};
use crate::usage::Usage;

/// Renders the table of a dataset run, with the line that says how its rows ended.
pub fn render(record: &DatasetRecord) -> String {
    let spent = dollars(record);
    let mut out = aggregates(
        &record.agents,
        &record.usage,
        record.seconds,
        &spent,
        record.cache_saved_usd,
        record.mock,
    );
    if let Some(budget) = record.budget_usd {
        out.push_str(&format!("budget {}: {spent} spent\n", usd(Some(budget))));
    }
    out.push_str(&outcome(&record.rows, record.status));
    out.push('\n');
    out
}

/// One line per agent aggregate, and the total (`cost`, as shown); with the
/// cache columns and the line of what caching `saved` when the prompt cache was
/// used (see [`prompt_cache_line`]).
pub fn aggregates(
    agents: &[AgentAggregate],
    usage: &Usage,
    seconds: f64,
    cost: &str,
    saved: Option<f64>,
    mock: bool,
) -> String {
    let cache = prompt_cache_used(usage);
    let mut header = vec![
        "agent",
        "model",
        "calls",
        "failed",
        "cached",
        "tokens in",
        "tokens out",
    ];
    if cache {
        header.extend(["cache read", "cache write"]);
    }
    header.extend(["seconds", "cost"]);
    let mut align = vec![Align::Right; header.len()];
    align[0] = Align::Left;
    align[1] = Align::Left;
    let cache_cells = |usage: &Usage| {
        if cache {
            vec![
                usage.cache_read.to_string(),
                usage.cache_writes().to_string(),
            ]
        } else {
            Vec::new()
        }
    };
    let rows: Vec<Vec<String>> = agents
        .iter()
        .map(|a| {
            let mut row = vec![
                a.name.clone(),
                format!("{}/{}", a.provider, a.model),
                a.calls.to_string(),
                a.failed.to_string(),
                a.cached.to_string(),
                a.usage.input.to_string(),
                a.usage.output.to_string(),
            ];
            row.extend(cache_cells(&a.usage));
            row.extend([format!("{:.2}", a.seconds), usd(a.cost_usd)]);
            row
        })
        .collect();
    let sum = |count: fn(&AgentAggregate) -> u64| agents.iter().map(count).sum::<u64>().to_string();
    let mut footer = vec![
        "total".to_string(),
        String::new(),
        sum(|a| a.calls),
        sum(|a| a.failed),
        sum(|a| a.cached),
        usage.input.to_string(),
        usage.output.to_string(),
    ];
    footer.extend(cache_cells(usage));
    footer.extend([format!("{seconds:.2}"), cost.to_string()]);
    let mut out = grid(&header, &align, &rows, Some(&footer));
    if let Some(line) = prompt_cache_line(usage, saved, mock) {
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// The run's dollars: `$0.0123`, or `>= $0.0123` (what the priced calls cost)
/// when a call was to an unpriced model.
pub fn dollars(record: &DatasetRecord) -> String {
    match record.cost_usd {
        Some(cost) => usd(Some(cost)),
        None => format!(">= {}", usd(Some(record.priced_cost_usd))),
    }
}

/// How the rows ended, in words.
pub fn counts(rows: &RowCounts) -> String {
    let mut parts = vec![format!("{} succeeded", rows.succeeded)];
    if rows.failed > 0 {
        parts.push(format!("{} failed", rows.failed));
    }
    if rows.budget_reached > 0 {
        parts.push(format!("{} stopped at the budget", rows.budget_reached));
    }
    if rows.interrupted > 0 {
        parts.push(format!("{} interrupted", rows.interrupted));
    }
    let noun = if rows.total == 1 { "row" } else { "rows" };
    format!("{} {noun}: {}", rows.total, parts.join(", "))
}

/// The line under the table.
fn outcome(rows: &RowCounts, status: RunStatus) -> String {
    let then = match status {
        RunStatus::Succeeded => "",
        RunStatus::Failed => "; each failed row's `error` in the results says why",
        RunStatus::BudgetReached => {
            "; raise the budget to run the rest (finished rows come from the cache)"
        }
        RunStatus::Interrupted => {
            "; run the same command again to finish (finished rows come from the cache)"
        }
    };
    format!("{}{then}.", counts(rows))
}

/// Prints the closing table on stderr when a dataset run ends.
pub struct ClosingTable;

impl Subscriber for ClosingTable {
    fn on_event(&mut self, event: &Event<'_>) -> std::io::Result<()> {
        if let Event::RowsFinished { record } = event {
            let mut err = std::io::stderr().lock();
            writeln!(err)?;
            err.write_all(render(record).as_bytes())?;
        }
        Ok(())
    }
}
