//! `byok-flow runs` as text: the list of runs, one run (its closing table, as at the
//! end of the run), and spend per group.

use super::{Align, grid, progress, rows, table, usd};
use crate::dataset::record::AgentAggregate;
use crate::history::{RunSummary, SpendRow};
use crate::record::{AgentStatus, RunRecord};
use crate::usage::Usage;

/// The list of runs, newest first.
pub fn list(runs: &[RunSummary]) -> String {
    if runs.is_empty() {
        return "No runs recorded yet: `byok-flow run` records each run here.\n".into();
    }
    let header = [
        "run",
        "started",
        "workflow",
        "status",
        "agents ok",
        "cached",
        "seconds",
        "cost",
    ];
    let align = [
        Align::Left,
        Align::Left,
        Align::Left,
        Align::Left,
        Align::Right,
        Align::Right,
        Align::Right,
        Align::Right,
    ];
    let rows: Vec<Vec<String>> = runs
        .iter()
        .map(|r| {
            vec![
                r.run_id.clone(),
                r.started_at.clone(),
                r.workflow.clone(),
                status(r),
                match r.rows {
                    Some(rows) => format!(
                        "{}/{} rows",
                        rows.succeeded.map_or_else(|| "?".into(), |n| n.to_string()),
                        rows.total.map_or_else(|| "?".into(), |n| n.to_string())
                    ),
                    None => format!("{}/{}", r.succeeded, r.agents),
                },
                r.cached.to_string(),
                r.seconds.map_or_else(|| "-".into(), |s| format!("{s:.2}")),
                cost(r.cost_usd, r.unpriced),
            ]
        })
        .collect();
    grid(&header, &align, &rows, None)
}

/// A run's status as listed: `succeeded`, `failed (mock)`, `unfinished`.
fn status(run: &RunSummary) -> String {
    let mut text = run.status.replace('_', " ");
    if run.mock {
        text.push_str(" (mock)");
    }
    text
}

fn cost(usd_spent: f64, unpriced: bool) -> String {
    if unpriced {
        format!(">= {}", usd(Some(usd_spent)))
    } else {
        usd(Some(usd_spent))
    }
}

/// One run: what it was, how it ended, and its closing table.
pub fn show(summary: &RunSummary, record: &RunRecord) -> String {
    let mut out = format!(
        "run {}: {} ({}), started {}\nstatus: {}\ninputs hash: {}\n\n",
        summary.run_id,
        summary.workflow,
        summary.file,
        summary.started_at,
        status(summary),
        summary.inputs_hash,
    );
    out.push_str(&table::render(record));
    for agent in record
        .agents
        .iter()
        .filter(|a| a.status != AgentStatus::Succeeded)
    {
        out.push_str(&progress::settled_line(agent));
        out.push('\n');
    }
    if summary.unfinished() {
        out.push_str(&format!(
            "The run never recorded its end: it is still running, or it was killed. Agents that spent are shown ({} of {}).\n",
            record.agents.len(),
            summary.agents
        ));
    } else if let Some(line) = table::outcome(record) {
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// One dataset run: what it was, how its rows ended, and every agent's aggregate.
pub fn show_rows(summary: &RunSummary, agents: &[AgentAggregate]) -> String {
    let mut out = format!(
        "run {}: {} ({}) over rows, started {}\nstatus: {}\ninputs hash: {}\n",
        summary.run_id,
        summary.workflow,
        summary.file,
        summary.started_at,
        status(summary),
        summary.inputs_hash,
    );
    if let Some(rows) = summary.rows {
        let n = |v: Option<u64>| v.map_or_else(|| "?".to_string(), |n| n.to_string());
        out.push_str(&format!(
            "rows: {} ({} succeeded, {} failed)\n",
            n(rows.total),
            n(rows.succeeded),
            n(rows.failed)
        ));
    }
    out.push('\n');
    let mut usage = Usage::default();
    for a in agents {
        usage += a.usage;
    }
    out.push_str(&rows::table::aggregates(
        agents,
        &usage,
        summary.seconds.unwrap_or_default(),
        summary.cost_usd,
    ));
    if summary.unfinished() {
        out.push_str("The run never recorded its end: it is still running, or it was killed. What it had spent by its last save is shown.\n");
    }
    out
}

/// Spend per group, with a total.
pub fn spend(rows: &[SpendRow], since: &str, by: &str, include_mock: bool) -> String {
    let mock = if include_mock {
        "mock runs included"
    } else {
        "mock runs left out"
    };
    let mut out = format!("Spend in {since}, by {by} ({mock}):\n\n");
    if rows.is_empty() {
        out.push_str("Nothing was spent.\n");
        return out;
    }
    let header = [
        by,
        "runs",
        "calls",
        "tokens in",
        "tokens out",
        "cache read",
        "cache write",
        "cost",
    ];
    let mut align = vec![Align::Right; header.len()];
    align[0] = Align::Left;
    let cells =
        |group: String, runs: String, calls: u64, usage: &Usage, cost_usd: f64, unpriced: bool| {
            vec![
                group,
                runs,
                calls.to_string(),
                usage.input.to_string(),
                usage.output.to_string(),
                usage.cache_read.to_string(),
                usage.cache_write.to_string(),
                cost(cost_usd, unpriced),
            ]
        };
    let body: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            cells(
                r.group.clone(),
                r.runs.to_string(),
                r.calls,
                &r.usage,
                r.cost_usd,
                r.unpriced_calls > 0,
            )
        })
        .collect();
    let mut usage = Usage::default();
    for r in rows {
        usage += r.usage;
    }
    let unpriced: u64 = rows.iter().map(|r| r.unpriced_calls).sum();
    let total = cells(
        "total".into(),
        String::new(),
        rows.iter().map(|r| r.calls).sum(),
        &usage,
        rows.iter().map(|r| r.cost_usd).sum(),
        unpriced > 0,
    );
    out.push_str(&grid(&header, &align, &body, Some(&total)));
    if unpriced > 0 {
        out.push_str(&format!(
            "{unpriced} calls were to unpriced models: their cost is left out (add prices with `pricing:` or `--prices`).\n"
        ));
    }
    out
}
