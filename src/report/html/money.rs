//! Where the dollars and tokens went: the total against the budget (with the
//! estimate made before the run, where there was one), dollars per agent and per
//! model as horizontal bars, and a table of every agent's tokens, seconds and
//! dollars beside its estimate.

use indexmap::IndexMap;
use maud::{Markup, html};

use super::{Status, dollars, px, seconds};
use crate::record::{AgentRecord, RunRecord};

const LABEL_WIDTH: f64 = 230.0;
const PLOT_WIDTH: f64 = 560.0;
const VALUE_WIDTH: f64 = 170.0;
const ROW: f64 = 20.0;

/// The total, per agent and per model.
pub fn section(record: &RunRecord) -> Markup {
    let priced: Vec<(usize, &AgentRecord, f64)> = record
        .agents
        .iter()
        .enumerate()
        .filter_map(|(i, a)| a.cost_usd.filter(|c| *c > 0.0).map(|c| (i, a, c)))
        .collect();
    let unpriced: Vec<&AgentRecord> = record
        .agents
        .iter()
        .filter(|a| a.cost_usd.is_none())
        .collect();
    let mut per_agent: Vec<Bar> = priced
        .iter()
        .map(|(i, a, c)| Bar {
            label: a.name.clone(),
            link: Some(super::anchor(*i)),
            value: *c,
            marker: a.estimate.and_then(|e| e.expected_usd),
        })
        .collect();
    per_agent.sort_by(|a, b| b.value.total_cmp(&a.value));
    let mut models: IndexMap<String, f64> = IndexMap::new();
    for (_, a, c) in &priced {
        let model = a
            .answered_by
            .clone()
            .unwrap_or_else(|| format!("{}/{}", a.provider, a.model));
        *models.entry(model).or_default() += c;
    }
    let mut per_model: Vec<Bar> = models
        .into_iter()
        .map(|(label, value)| Bar {
            label,
            link: None,
            value,
            marker: None,
        })
        .collect();
    per_model.sort_by(|a, b| b.value.total_cmp(&a.value));
    html! {
        (total(record))
        @if per_agent.is_empty() {
            p.note {
                @if record.mock { "A mock run: every agent cost $0." }
                @else if unpriced.is_empty() { "No agent spent anything (answers from the cache, or no call made)." }
                @else { "Every agent that spent tokens used an unpriced model." }
            }
        } @else {
            h3 { "Dollars per agent" }
            @if per_agent.iter().any(|b| b.marker.is_some()) {
                p.legend { "The tick on a bar is what the estimate expected that agent to cost." }
            }
            (bars(&per_agent, "per agent"))
            h3 { "Dollars per model" }
            (bars(&per_model, "per model"))
        }
        @if !unpriced.is_empty() {
            p.warning {
                "Unpriced (their tokens are in the table below, their dollars are not in any total): "
                @for (k, a) in unpriced.iter().enumerate() {
                    @if k > 0 { ", " }
                    code { (a.name) } " (" (a.provider) "/" (a.model) ")"
                }
            }
        }
        h3 { "Tokens, time and dollars per agent" }
        (table(record))
    }
}

/// One horizontal bar.
struct Bar {
    label: String,
    link: Option<String>,
    value: f64,
    /// A tick at another value on the same scale (the estimate).
    marker: Option<f64>,
}

fn bars(bars: &[Bar], what: &str) -> Markup {
    let scale = bars
        .iter()
        .flat_map(|b| [Some(b.value), b.marker])
        .flatten()
        .fold(0.0, f64::max)
        .max(1e-12);
    let total: f64 = bars.iter().map(|b| b.value).sum();
    let height = ROW * bars.len() as f64 + 4.0;
    let width = LABEL_WIDTH + PLOT_WIDTH + VALUE_WIDTH;
    let x = |v: f64| px(LABEL_WIDTH + v / scale * PLOT_WIDTH);
    html! {
        div.scroll {
            svg xmlns="http://www.w3.org/2000/svg" class="bars" width=(width) height=(px(height))
                viewBox={ "0 0 " (width) " " (px(height)) }
                font-family="system-ui, -apple-system, 'Segoe UI', sans-serif" font-size="12" {
                title { "Dollars " (what) }
                @for (row, bar) in bars.iter().enumerate() {
                    @let top = ROW * row as f64;
                    g.bar {
                        @let label = super::text::first_chars(&bar.label, 34);
                        @if let Some(link) = &bar.link {
                            a href={ "#" (link) } {
                                text x="4" y=(px(top + 14.0)) fill="#1a73e8" { (label) }
                            }
                        } @else {
                            text x="4" y=(px(top + 14.0)) fill="#202124" { (label) }
                        }
                        rect x=(LABEL_WIDTH) y=(px(top + 3.0)) width=(px((x(bar.value) - LABEL_WIDTH).max(1.0)))
                            height="14" rx="2" fill="#1a73e8" {
                            title { (bar.label) ": " (dollars(Some(bar.value))) }
                        }
                        @if let Some(m) = bar.marker {
                            line x1=(x(m)) x2=(x(m)) y1=(px(top + 1.0)) y2=(px(top + 19.0))
                                stroke="#202124" stroke-width="2" {
                                title { "estimated " (dollars(Some(m))) }
                            }
                        }
                        text x=(px(LABEL_WIDTH + PLOT_WIDTH + 8.0)) y=(px(top + 14.0)) fill="#3c4043" {
                            (dollars(Some(bar.value)))
                            @if total > 0.0 { " (" (format!("{:.0}", bar.value / total * 100.0)) "%)" }
                        }
                    }
                }
            }
        }
    }
}

/// The run's total against its budget and its estimate.
fn total(record: &RunRecord) -> Markup {
    let spent = record.priced_usd();
    let budget = record.budget_usd.filter(|_| !record.mock);
    let expected = record.estimate.and_then(|e| e.expected_usd);
    let most = record.estimate.and_then(|e| e.max_usd);
    let scale = [Some(spent), budget, expected, most]
        .into_iter()
        .flatten()
        .fold(0.0, f64::max)
        .max(1e-12);
    let width = LABEL_WIDTH + PLOT_WIDTH + VALUE_WIDTH;
    let x = |v: f64| px(LABEL_WIDTH + v / scale * PLOT_WIDTH);
    let spent_text = super::run_dollars(record);
    html! {
        p.total {
            "Spent " strong { (spent_text) }
            @if let Some(b) = budget {
                " of a " (dollars(Some(b))) " budget"
                @if b > 0.0 { " (" (format!("{:.1}", spent / b * 100.0)) "%)" }
            }
            "."
            @if expected.is_some() || most.is_some() {
                " The estimate before the run: " (dollars(expected)) " expected, "
                (most.map_or_else(|| "no bound".to_string(), |m| dollars(Some(m)))) " at most."
            }
        }
        @if let Some(line) = crate::report::cache_line(record) {
            p.cache { (line) }
        }
        svg xmlns="http://www.w3.org/2000/svg" class="budget" width=(width) height="46"
            viewBox={ "0 0 " (width) " 46" }
            font-family="system-ui, -apple-system, 'Segoe UI', sans-serif" font-size="12" {
            title { "Total spend against the budget" }
            text x="4" y="24" fill="#202124" font-weight="600" { "total" }
            rect x=(LABEL_WIDTH) y="12" width=(PLOT_WIDTH) height="18" rx="3" fill="#f1f3f4" {}
            rect x=(LABEL_WIDTH) y="12" width=(px((x(spent) - LABEL_WIDTH).max(1.0))) height="18" rx="3"
                fill=(if budget.is_some_and(|b| spent > b) { "#d93025" } else { "#1a73e8" }) {
                title { "spent " (spent_text) }
            }
            @if let Some(e) = expected {
                line x1=(x(e)) x2=(x(e)) y1="8" y2="34" stroke="#202124" stroke-width="2" stroke-dasharray="3 2" {
                    title { "expected " (dollars(Some(e))) }
                }
            }
            @if let Some(m) = most {
                line x1=(x(m)) x2=(x(m)) y1="8" y2="34" stroke="#5f6368" stroke-width="2" stroke-dasharray="1 2" {
                    title { "at most " (dollars(Some(m))) }
                }
            }
            @if let Some(b) = budget {
                line x1=(x(b)) x2=(x(b)) y1="4" y2="40" stroke="#d93025" stroke-width="2.5" {
                    title { "budget " (dollars(Some(b))) }
                }
                text x=(px(x(b) + 4.0)) y="44" fill="#d93025" font-size="10" { "budget" }
            }
            text x=(px(LABEL_WIDTH + PLOT_WIDTH + 8.0)) y="25" fill="#3c4043" { (spent_text) }
        }
        @if expected.is_some() || most.is_some() {
            p.legend {
                "Dashed: the expected cost; dotted: the most the run could cost"
                @if budget.is_some() { "; red: the budget" }
                "."
            }
        }
    }
}

/// Every agent's tokens, seconds and dollars, beside its estimate.
fn table(record: &RunRecord) -> Markup {
    let estimated = record.agents.iter().any(|a| a.estimate.is_some());
    html! {
        div.scroll {
            table.numbers {
                thead {
                    tr {
                        th { "agent" } th { "model" } th { "status" } th { "seconds" }
                        th { "tokens in" } th { "tokens out" } th { "cache read" } th { "cache write" }
                        th { "dollars" }
                        @if estimated { th { "expected" } th { "at most" } }
                    }
                }
                tbody {
                    @for (i, a) in record.agents.iter().enumerate() {
                        @let status = Status::of(a);
                        tr {
                            td { a href={ "#" (super::anchor(i)) } { (a.name) } }
                            td { (a.answered_by.clone().unwrap_or_else(|| format!("{}/{}", a.provider, a.model))) }
                            td { span class={ "pill " (pill(status)) } { (status.label()) } }
                            td { (seconds(a.seconds)) }
                            td { (a.usage.input) } td { (a.usage.output) }
                            td { (a.usage.cache_read) } td { (a.usage.cache_write) }
                            td { (super::agent_dollars(a)) }
                            @if estimated {
                                td { (a.estimate.map_or_else(String::new, |e| dollars(e.expected_usd))) }
                                td { (a.estimate.map_or_else(String::new, |e| e.max_usd.map_or_else(|| "no bound".into(), |m| dollars(Some(m))))) }
                            }
                        }
                    }
                }
                tfoot {
                    tr {
                        th { "total" } td {} td {} td { (seconds(record.seconds)) }
                        td { (record.usage.input) } td { (record.usage.output) }
                        td { (record.usage.cache_read) } td { (record.usage.cache_write) }
                        td { (super::run_dollars(record)) }
                        @if estimated {
                            td { (record.estimate.map_or_else(String::new, |e| dollars(e.expected_usd))) }
                            td { (record.estimate.map_or_else(String::new, |e| e.max_usd.map_or_else(|| "no bound".into(), |m| dollars(Some(m))))) }
                        }
                    }
                }
            }
        }
    }
}

/// The CSS class of a status pill.
pub fn pill(status: Status) -> &'static str {
    match status {
        Status::Planned | Status::Skipped => "skipped",
        Status::Succeeded => "ok",
        Status::Cached => "cached",
        Status::Failed => "failed",
        Status::SkippedForBudget => "budget",
        Status::Cancelled => "cancelled",
    }
}
