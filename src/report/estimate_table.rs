//! The estimate as a table (`estimate`, `run --dry-run`, and on stderr when a run
//! is refused for its budget): per agent, tokens and dollars expected and at most.

use super::{Align, grid};
use crate::cost::Usd;
use crate::cost::estimate::Estimate;
use crate::tools::ToolName;
use crate::workflow::diagnostic::counted;

/// Renders an estimate, with the total, where prices come from, and the budget.
pub fn render(estimate: &Estimate) -> String {
    let header = [
        "agent",
        "model",
        "input counted as",
        "tokens in",
        "expected out",
        "max out",
        "expected",
        "max",
    ];
    let align = [
        Align::Left,
        Align::Left,
        Align::Left,
        Align::Right,
        Align::Right,
        Align::Right,
        Align::Right,
        Align::Right,
    ];
    let usd = |priced: bool, cost: Option<Usd>, missing: &str| match (priced, cost) {
        (false, _) => "unpriced".to_string(),
        (true, Some(c)) => c.to_string(),
        (true, None) => missing.to_string(),
    };
    let rows: Vec<Vec<String>> = estimate
        .agents
        .iter()
        .map(|a| {
            if a.cached {
                let none = || "-".to_string();
                return vec![
                    a.name.clone(),
                    a.model.clone(),
                    "cached: no call".to_string(),
                    none(),
                    none(),
                    none(),
                    Usd::ZERO.to_string(),
                    Usd::ZERO.to_string(),
                ];
            }
            let priced = a.priced_as.is_some();
            vec![
                a.items
                    .map_or_else(|| a.name.clone(), |n| format!("{} (x{n})", a.name)),
                a.model.clone(),
                a.tokenizer.clone(),
                a.input_tokens.to_string(),
                a.expected_output_tokens.to_string(),
                a.max_output_tokens
                    .map_or_else(|| "?".to_string(), |m| m.to_string()),
                usd(priced, a.expected_usd, "?"),
                usd(priced, a.max_usd, "unbounded"),
            ]
        })
        .collect();
    let total = &estimate.total;
    let at_least = |lower: bool, usd: Usd| {
        if lower {
            format!(">= {usd}")
        } else {
            usd.to_string()
        }
    };
    let max_out: Option<u64> = estimate
        .agents
        .iter()
        .filter(|a| !a.cached)
        .map(|a| a.max_output_tokens)
        .sum();
    let footer = vec![
        "total".to_string(),
        String::new(),
        String::new(),
        total.input_tokens.to_string(),
        total.expected_output_tokens.to_string(),
        max_out.map_or_else(|| "?".to_string(), |m| m.to_string()),
        at_least(total.is_lower_bound(), total.expected_usd),
        at_least(
            total.is_lower_bound() || !total.unbounded.is_empty(),
            total.max_usd,
        ),
    ];
    let mut out = grid(&header, &align, &rows, Some(&footer));
    out.push('\n');
    out.push_str(&format!("Prices: {}.\n", estimate.prices));
    if estimate
        .agents
        .iter()
        .any(|a| !a.cached && a.tokenizer.starts_with('~'))
    {
        out.push_str("Counts marked ~ are approximate: o200k_base tokens times a factor for the model family (README: \"How input tokens are counted\").\n");
    }
    for line in tool_notes(estimate)
        .into_iter()
        .chain(cache_notes(estimate))
    {
        out.push_str(&line);
        out.push('\n');
    }
    if !total.unpriced.is_empty() {
        out.push_str(&format!(
            "Unpriced: {}. The totals leave them out and are lower bounds.\n",
            quoted(&total.unpriced)
        ));
    }
    let hits = estimate.agents.iter().filter(|a| a.cached).count();
    if hits > 0 {
        out.push_str(&format!(
            "Cached: {} answered from the cache, at no cost (`--no-cache` or `--refresh AGENT` to call again).\n",
            counted(hits, "agent")
        ));
    }
    if let Some(budget) = estimate.budget_usd.map(Usd::from_dollars) {
        let verdict = if !total.unpriced.is_empty() || !total.unbounded.is_empty() {
            "cannot be enforced: some agents' costs are unknown".to_string()
        } else if total.expected_usd > budget {
            "the expected cost is over it: a run would not start (exit 3)".to_string()
        } else if total.max_usd > budget {
            "the expected cost fits; if every agent used all of its `max_tokens`, agents would be skipped to stay under it".to_string()
        } else {
            "even the maximum fits".to_string()
        };
        out.push_str(&format!("Budget: {budget}; {verdict}.\n"));
    }
    out
}

/// A line per agent with server-side tools: how many uses a call may make, their
/// fees, and that their results are read as input.
fn tool_notes(estimate: &Estimate) -> Vec<String> {
    let mut lines = Vec::new();
    for a in estimate.agents.iter().filter(|a| !a.cached) {
        for t in &a.tools {
            let what = match t.tool {
                ToolName::WebSearch => "search the web",
                ToolName::WebFetch => "fetch a page",
            };
            let times = if t.uses == 1 {
                "once".to_string()
            } else {
                format!("up to {} times", t.uses)
            };
            let cap = match (t.capped, t.default_uses) {
                (true, true) => format!(" (`max_uses` not set: {} assumed, and sent)", t.uses),
                (true, false) => String::new(),
                (false, _) => {
                    " (its provider takes no cap; its results are bounded as if it stopped there)"
                        .to_string()
                }
            };
            let fees = match t.max_fees_usd {
                Some(fees) => format!("{fees} in fees at most"),
                None => "fees without a bound".to_string(),
            };
            let results = t.tool.result_tokens();
            lines.push(format!(
                "Tools: `{}` may {what} {times} a call{cap}: {fees}, and about {} input tokens of results a use (up to {}, read again on each later pass), which the expected and max columns count and `tokens in` does not (README: \"Tools the providers run\").",
                a.name, results.expected, results.bound
            ));
        }
    }
    lines
}

/// A line per agent whose calls share a cached prefix.
fn cache_notes(estimate: &Estimate) -> Vec<String> {
    estimate
        .agents
        .iter()
        .filter(|a| !a.cached)
        .filter_map(|a| {
            let c = a.prompt_cache?;
            let first = if c.first_call_extra > Usd::ZERO {
                format!("the first call writes it to the provider's cache for {} more", c.first_call_extra)
            } else {
                "the first call fills the provider's cache".to_string()
            };
            Some(format!(
                "Prompt cache: `{}` sends a {}-token prefix every call shares: {first}, each later call reads it for {} less (a run of one call saves nothing; rows, items and re-runs within the cache's lifetime do).",
                a.name, c.prefix_tokens, c.later_call_saving
            ))
        })
        .collect()
}

fn quoted(names: &[String]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}
