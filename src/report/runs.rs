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
                run_cost(r),
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

/// Dollars as listed: `$0.0012`; `~$0.0012` with tokens counted locally; `>= $0.0012`
/// (the priced part) with an unpriced agent.
fn cost(priced_usd: f64, unpriced: bool, counted_locally: bool) -> String {
    if unpriced {
        format!(">= {}", usd(Some(priced_usd)))
    } else {
        format!(
            "{}{}",
            super::approx(counted_locally),
            usd(Some(priced_usd))
        )
    }
}

/// A run's dollars as listed, with the most it may have cost when a bill is unknown.
fn run_cost(run: &RunSummary) -> String {
    let mut text = cost(run.priced_cost_usd, run.unpriced, run.counted_locally);
    if run.bill_unknown {
        match run.max_cost_usd {
            Some(most) => text.push_str(&format!(" (up to {})", usd(Some(most)))),
            None => text.push_str(" (bill unknown)"),
        }
    }
    text
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
    let spent = match summary.cost_usd {
        Some(cost) => usd(Some(cost)),
        None => format!(">= {}", usd(Some(summary.priced_cost_usd))),
    };
    out.push_str(&rows::table::aggregates(
        agents,
        &usage,
        summary.seconds.unwrap_or_default(),
        &spent,
        crate::record::sum_saved(agents.iter().map(|a| a.cache_saved_usd)),
        summary.mock,
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
    let cells = |group: String, runs: String, row: &SpendRow| {
        let mark = super::approx(row.counted_calls > 0);
        vec![
            group,
            runs,
            row.calls.to_string(),
            format!("{mark}{}", row.usage.input),
            format!("{mark}{}", row.usage.output),
            row.usage.cache_read.to_string(),
            row.usage.cache_write.to_string(),
            cost(
                row.priced_cost_usd,
                row.unpriced_calls > 0,
                row.counted_calls > 0,
            ),
        ]
    };
    let body: Vec<Vec<String>> = rows
        .iter()
        .map(|r| cells(r.group.clone(), r.runs.to_string(), r))
        .collect();
    let mut total = SpendRow {
        group: "total".into(),
        runs: 0,
        calls: 0,
        usage: Usage::default(),
        cost_usd: None,
        priced_cost_usd: 0.0,
        unpriced_calls: 0,
        counted_calls: 0,
        unknown_bills: 0,
    };
    for r in rows {
        total.calls += r.calls;
        total.usage += r.usage;
        total.priced_cost_usd += r.priced_cost_usd;
        total.unpriced_calls += r.unpriced_calls;
        total.counted_calls += r.counted_calls;
        total.unknown_bills += r.unknown_bills;
    }
    let footer = cells("total".into(), String::new(), &total);
    out.push_str(&grid(&header, &align, &body, Some(&footer)));
    if total.unpriced_calls > 0 {
        out.push_str(&format!(
            "{} to unpriced models: their cost is unknown and left out, so the dollars are a lower bound (add prices with `pricing:` or `--prices`).\n",
            calls(total.unpriced_calls)
        ));
    }
    if total.counted_calls > 0 {
        out.push_str(&format!(
            "~ {} without reported usage (or cut off): byok-flow counted their tokens itself, so they and their cost are approximate.\n",
            calls(total.counted_calls)
        ));
    }
    if total.unknown_bills > 0 {
        out.push_str(&format!(
            "{} cut off after sending: their bill is unknown (`byok-flow runs show RUN` says the most it may have been).\n",
            calls(total.unknown_bills)
        ));
    }
    out
}

/// "1 call", "3 calls".
fn calls(n: u64) -> String {
    crate::workflow::diagnostic::counted(usize::try_from(n).unwrap_or(usize::MAX), "call")
}
