//! The estimate of a dataset run as text (`estimate --each`): every agent over
//! every row, the total, the cheapest, median and dearest row, the budget, and
//! the rows that would fail.

use crate::cost::Usd;
use crate::dataset::estimate::{Noted, RowCost, RowsEstimate};
use crate::dataset::read::Place;
use crate::report::{Align, grid};
use crate::workflow::diagnostic::counted;

/// Renders the estimate of a dataset run.
pub fn render(estimate: &RowsEstimate, rows_file: &str) -> String {
    let total = &estimate.total;
    let lower = !total.unpriced.is_empty();
    let unbounded = lower || !total.unbounded.is_empty();
    let at_least = |lower: bool, usd: Usd| {
        if lower {
            format!(">= {usd}")
        } else {
            usd.to_string()
        }
    };
    let mut out = format!(
        "{} of {rows_file}, each prompt rendered and counted:\n\n",
        counted(usize::try_from(estimate.rows).unwrap_or(usize::MAX), "row")
    );
    let header = [
        "agent",
        "model",
        "calls",
        "cached",
        "tokens in",
        "expected out",
        "expected",
        "max",
    ];
    let mut align = vec![Align::Right; header.len()];
    align[0] = Align::Left;
    align[1] = Align::Left;
    let money = |usd: Option<Usd>, missing: &str| {
        usd.map_or_else(|| missing.to_string(), |u| u.to_string())
    };
    let body: Vec<Vec<String>> = estimate
        .agents
        .iter()
        .map(|a| {
            let unpriced = total.unpriced.contains(&a.name);
            vec![
                a.name.clone(),
                a.model.clone(),
                a.calls.to_string(),
                a.cached.to_string(),
                a.input_tokens.to_string(),
                a.expected_output_tokens.to_string(),
                if unpriced {
                    "unpriced".into()
                } else {
                    money(a.expected_usd, "?")
                },
                if unpriced {
                    "unpriced".into()
                } else {
                    money(a.max_usd, "unbounded")
                },
            ]
        })
        .collect();
    let footer = vec![
        "total".to_string(),
        String::new(),
        estimate
            .agents
            .iter()
            .map(|a| a.calls)
            .sum::<u64>()
            .to_string(),
        estimate
            .agents
            .iter()
            .map(|a| a.cached)
            .sum::<u64>()
            .to_string(),
        total.input_tokens.to_string(),
        total.expected_output_tokens.to_string(),
        at_least(lower, total.expected_usd),
        at_least(unbounded, total.max_usd),
    ];
    out.push_str(&grid(&header, &align, &body, Some(&footer)));
    out.push('\n');
    let rows: Vec<Vec<String>> = [
        ("cheapest row", estimate.cheapest),
        ("median row", estimate.median),
        ("dearest row", estimate.dearest),
    ]
    .into_iter()
    .filter_map(|(what, cost)| cost.map(|c| row_line(what, &c)))
    .collect();
    if !rows.is_empty() {
        out.push_str(&grid(
            &["", "expected", "max", "which"],
            &[Align::Left, Align::Right, Align::Right, Align::Left],
            &rows,
            None,
        ));
        out.push('\n');
    }
    out.push_str(&format!("Prices: {}.\n", estimate.prices));
    if let Some(batch) = &estimate.batch {
        out.push_str(&format!(
            "Batch: the batched agents go through their providers' batch APIs at the table's batch prices (half the regular price where it has none). Called directly the rows would cost {} expected, {} at most: the batch saves {} ({}%).\n",
            batch.regular_expected_usd, batch.regular_max_usd, batch.saving_usd, batch.saving_percent
        ));
    }
    for a in &estimate.agents {
        let Some(c) = a.prompt_cache else { continue };
        out.push_str(&format!(
            "Prompt cache: `{}` sends a {}-token prefix every row shares: the first call writes it{}, the other {} read it: {} saved against no caching (the expected column counts it; max and the budget assume nothing is cached).\n",
            a.name,
            c.prefix_tokens,
            if c.write_usd > Usd::ZERO { format!(" for {} more", c.write_usd) } else { String::new() },
            c.reads,
            c.saving_usd
        ));
    }
    if lower {
        out.push_str(&format!(
            "Unpriced: {}. The totals leave them out and are lower bounds.\n",
            quoted(&total.unpriced)
        ));
    }
    if let Some(budget) = estimate.budget_usd.map(Usd::from_dollars) {
        let verdict = if unbounded {
            "cannot be enforced: some agents' costs are unknown".to_string()
        } else if total.expected_usd > budget {
            "the expected cost of all the rows is over it: a run would not start (exit 3)"
                .to_string()
        } else if total.max_usd > budget {
            "the expected cost fits; if every agent used all of its `max_tokens`, the last rows would be skipped to stay under it".to_string()
        } else {
            "even the maximum of every row fits".to_string()
        };
        out.push_str(&format!("Budget: {budget} for all the rows; {verdict}.\n"));
    }
    noted(
        &mut out,
        estimate.bad_rows,
        &estimate.first_bad_rows,
        (
            "cannot be run (it would fail; the others would run)",
            "cannot be run (they would fail; the others would run)",
        ),
    );
    noted(
        &mut out,
        estimate.over_window,
        &estimate.first_over_window,
        (
            "has a prompt over its model's context window (that agent would fail)",
            "have a prompt over its model's context window (that agent would fail)",
        ),
    );
    out
}

fn row_line(what: &str, cost: &RowCost) -> Vec<String> {
    // A row costs little: six decimals tell rows apart.
    let usd = |u: Usd| format!("${:.6}", u.dollars());
    vec![
        what.to_string(),
        usd(cost.expected_usd),
        usd(cost.max_usd),
        format!("row {} ({})", cost.row, place(cost.place)),
    ]
}

fn place(place: Place) -> String {
    match place {
        Place::Line(line) => format!("line {line}"),
        Place::Record { record, line } => format!("record {record}, line {line}"),
    }
}

/// `what` is said of one row, then of several.
fn noted(out: &mut String, count: u64, first: &[Noted], what: (&str, &str)) {
    if count == 0 {
        return;
    }
    let what = if count == 1 { what.0 } else { what.1 };
    out.push_str(&format!(
        "{} {what}:\n",
        counted(usize::try_from(count).unwrap_or(usize::MAX), "row")
    ));
    for n in first {
        out.push_str(&format!(
            "  row {} ({}): {}\n",
            n.row,
            place(n.place),
            n.message
        ));
    }
    if count > first.len() as u64 {
        out.push_str(&format!("  and {} more\n", count - first.len() as u64));
    }
}

fn quoted(names: &[String]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}
