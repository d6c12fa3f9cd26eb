//! The closing table of a dataset run on stderr: one line per agent with its calls
//! over every row (failed and cached among them), tokens, seconds and dollars, the
//! total, and how the rows ended.

use std::io::Write;

use crate::dataset::record::{AgentAggregate, DatasetRecord, RowCounts};
use crate::events::{Event, Subscriber};
use crate::record::RunStatus;
use crate::report::{Align, grid, usd};
use crate::usage::Usage;

/// Renders the table of a dataset run, with the line that says how its rows ended.
pub fn render(record: &DatasetRecord) -> String {
    let spent = dollars(record);
    let mut out = aggregates(&record.agents, &record.usage, record.seconds, &spent);
    if let Some(budget) = record.budget_usd {
        out.push_str(&format!("budget {}: {spent} spent\n", usd(Some(budget))));
    }
    out.push_str(&outcome(&record.rows, record.status));
    out.push('\n');
    out
}

/// One line per agent aggregate, and the total (`cost`, as shown).
pub fn aggregates(agents: &[AgentAggregate], usage: &Usage, seconds: f64, cost: &str) -> String {
    let header = [
        "agent",
        "model",
        "calls",
        "failed",
        "cached",
        "tokens in",
        "tokens out",
        "seconds",
        "cost",
    ];
    let mut align = vec![Align::Right; header.len()];
    align[0] = Align::Left;
    align[1] = Align::Left;
    let rows: Vec<Vec<String>> = agents
        .iter()
        .map(|a| {
            vec![
                a.name.clone(),
                format!("{}/{}", a.provider, a.model),
                a.calls.to_string(),
                a.failed.to_string(),
                a.cached.to_string(),
                a.usage.input.to_string(),
                a.usage.output.to_string(),
                format!("{:.2}", a.seconds),
                usd(a.cost_usd),
            ]
        })
        .collect();
    let sum = |count: fn(&AgentAggregate) -> u64| agents.iter().map(count).sum::<u64>().to_string();
    let footer = [
        "total".to_string(),
        String::new(),
        sum(|a| a.calls),
        sum(|a| a.failed),
        sum(|a| a.cached),
        usage.input.to_string(),
        usage.output.to_string(),
        format!("{seconds:.2}"),
        cost.to_string(),
    ];
    grid(&header, &align, &rows, Some(&footer))
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
