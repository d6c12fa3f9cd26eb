//! The HTML run report (SPEC §10): one self-contained page made from a run
//! record, that works offline and loads nothing: the squad drawn as SVG, a
//! timeline of every attempt, dollars per agent and per model against the budget,
//! tokens, each output as escaped text, errors, inputs and the run's facts.
//!
//! Everything a model or a user wrote goes through maud's escaping; nothing is
//! rendered as HTML or Markdown, and the page carries a Content-Security-Policy
//! that allows no script, no fetch and no image, and only its own stylesheet (by
//! hash). Long texts are cut, with their full size shown, so a 200-agent report
//! stays small; the full text stays in `--out DIR`.
//!
//! `page.rs` assembles the page; `graph.rs` draws the squad (with `layout.rs`,
//! and alone for `graph --format svg`), `timeline.rs` the timeline, `money.rs`
//! the dollars and tokens, `agents.rs` each agent's output and errors, `text.rs`
//! cuts long texts. [`ReportFile`] writes the report of `run --report FILE`.

mod agents;
pub mod graph;
pub mod layout;
mod money;
mod page;
pub mod rows;
pub mod source;
mod text;
mod timeline;

use std::path::PathBuf;

use crate::dag::EdgeKind;
use crate::events::{Event, Subscriber};
use crate::record::{AgentRecord, AgentStatus, RunRecord};

pub use page::render;

/// Where a report's record came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A run record (`run.json`, or the run itself): everything is known.
    Record,
    /// The run history, which keeps no replies, inputs, attempts, timings or edges.
    History,
}

/// How an agent ended, as the report colours it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Not run: a drawing of the workflow alone.
    Planned,
    Succeeded,
    /// Answered from the cache.
    Cached,
    Failed,
    Skipped,
    /// Given up so that spend stays under the budget (or after one that was).
    SkippedForBudget,
    /// Running when the run was interrupted.
    Cancelled,
}

impl Status {
    pub fn of(agent: &AgentRecord) -> Status {
        match agent.status {
            AgentStatus::Succeeded if agent.cached => Status::Cached,
            AgentStatus::Succeeded => Status::Succeeded,
            AgentStatus::Failed => Status::Failed,
            AgentStatus::Skipped if skipped_for_budget(agent) => Status::SkippedForBudget,
            AgentStatus::Skipped => Status::Skipped,
            AgentStatus::Cancelled => Status::Cancelled,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Status::Planned => "not run",
            Status::Succeeded => "succeeded",
            Status::Cached => "cached",
            Status::Failed => "failed",
            Status::Skipped => "skipped",
            Status::SkippedForBudget => "skipped for the budget",
            Status::Cancelled => "interrupted",
        }
    }

    /// Fill and outline of its box.
    pub fn colours(self) -> (&'static str, &'static str) {
        match self {
            Status::Planned => ("#ffffff", "#5f6368"),
            Status::Succeeded => ("#e6f4ea", "#1e8e3e"),
            Status::Cached => ("#e8f0fe", "#1a73e8"),
            Status::Failed => ("#fce8e6", "#d93025"),
            Status::Skipped => ("#f1f3f4", "#9aa0a6"),
            Status::SkippedForBudget => ("#fef7e0", "#e37400"),
            Status::Cancelled => ("#fff4e5", "#b06000"),
        }
    }

    pub const ALL: [Status; 6] = [
        Status::Succeeded,
        Status::Cached,
        Status::Failed,
        Status::Skipped,
        Status::SkippedForBudget,
        Status::Cancelled,
    ];
}

/// Whether the run gave the agent up for the budget (the runner's wording).
fn skipped_for_budget(agent: &AgentRecord) -> bool {
    agent
        .reason
        .as_deref()
        .is_some_and(|r| r.contains("for the budget"))
}

/// A coordinate rounded to a tenth of a pixel (short and stable markup).
pub(crate) fn px(value: f64) -> f64 {
    if value.is_finite() {
        (value * 10.0).round() / 10.0
    } else {
        0.0
    }
}

/// The squad of a record as drawn: its agents and the edges it recorded. The items
/// of a map agent (`writer[0]`, `writer[1]`, …) are one node, drawn as a stack,
/// named for the agent and linked to its first item's details.
pub fn squad_of(record: &RunRecord) -> (Vec<graph::Node>, Vec<graph::Edge>) {
    // Each node's records (one, or a map agent's items), by the agent's name.
    let mut groups: Vec<(&str, Vec<usize>)> = Vec::new();
    let mut index: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for (i, a) in record.agents.iter().enumerate() {
        let name = match a.item {
            Some(_) => a.name.rsplit_once('[').map_or(a.name.as_str(), |(n, _)| n),
            None => a.name.as_str(),
        };
        match index.get(name) {
            Some(&node) if a.item.is_some() => groups[node].1.push(i),
            _ => {
                index.insert(name, groups.len());
                groups.push((name, vec![i]));
            }
        }
    }
    let nodes = groups
        .iter()
        .map(|(name, members)| {
            let first = &record.agents[members[0]];
            let model = first
                .answered_by
                .clone()
                .unwrap_or_else(|| format!("{}/{}", first.provider, first.model));
            if first.item.is_none() {
                return node_of(first, model, members[0]);
            }
            let items: Vec<&AgentRecord> = members.iter().map(|&i| &record.agents[i]).collect();
            let status = group_status(&items);
            let cost = items
                .iter()
                .try_fold(0.0, |sum, a| a.cost_usd.map(|c| sum + c));
            let slowest = items.iter().map(|a| a.seconds).fold(0.0, f64::max);
            let facts = format!(
                "{} items · {} · {}",
                items.len(),
                seconds(slowest),
                dollars(cost)
            );
            graph::Node {
                name: (*name).to_string(),
                title: format!("{name}: {} items, {}, {model}", items.len(), status.label()),
                model,
                status,
                facts: Some(facts),
                stack: true,
                link: Some(anchor(members[0])),
            }
        })
        .collect();
    let edges = groups
        .iter()
        .enumerate()
        .flat_map(|(to, (_, members))| {
            let index = &index;
            record.agents[members[0]]
                .depends_on
                .iter()
                .filter_map(move |d| {
                    index.get(d.agent.as_str()).map(|&from| graph::Edge {
                        from,
                        to,
                        kind: d.kind,
                    })
                })
        })
        .collect();
    (nodes, edges)
}

/// The node of one agent's record (`i` in the record).
fn node_of(a: &AgentRecord, model: String, i: usize) -> graph::Node {
    let status = Status::of(a);
    let facts = match status {
        Status::Skipped | Status::SkippedForBudget => status.label().to_string(),
        _ => format!("{} · {}", seconds(a.seconds), agent_dollars(a)),
    };
    let mut title = format!("{}: {}, {}", a.name, status.label(), model);
    if let Some(reason) = &a.reason {
        title.push_str(&format!("\n{}", text::first_chars(reason, 300)));
    }
    graph::Node {
        name: a.name.clone(),
        model,
        status,
        facts: Some(facts),
        stack: false,
        link: Some(anchor(i)),
        title,
    }
}

/// How a map agent's items ended, as one status: a failed item fails it, an
/// interrupted one interrupts it, and all alike are that.
fn group_status(items: &[&AgentRecord]) -> Status {
    let statuses: Vec<Status> = items.iter().map(|a| Status::of(a)).collect();
    for worst in [Status::Failed, Status::Cancelled, Status::SkippedForBudget] {
        if statuses.contains(&worst) {
            return worst;
        }
    }
    match statuses.first() {
        Some(&first) if statuses.iter().all(|&s| s == first) => first,
        _ => Status::Succeeded,
    }
}

/// The squad of a checked workflow, as `graph --format svg` draws it.
pub fn squad_of_workflow(
    checked: &crate::workflow::Checked,
) -> (Vec<graph::Node>, Vec<graph::Edge>) {
    let dag = &checked.dag;
    let nodes = checked
        .workflow
        .agents
        .iter()
        .map(|(name, agent)| graph::Node {
            name: name.clone(),
            model: agent.model.clone(),
            status: Status::Planned,
            facts: None,
            stack: agent.for_each.is_some(),
            link: None,
            title: format!("{name}: {}", agent.model),
        })
        .collect();
    let edges = (0..dag.len())
        .flat_map(|to| {
            dag.dependencies_with_kind(to)
                .map(move |(from, kind)| graph::Edge { from, to, kind })
        })
        .collect::<Vec<_>>();
    let mut edges = edges;
    edges.sort_by_key(|e| (e.to, e.from, e.kind == EdgeKind::Order));
    (nodes, edges)
}

/// The id of agent `i`'s details in the page.
pub(crate) fn anchor(i: usize) -> String {
    format!("agent-{i}")
}

/// `850 ms`, `12.3 s`, `4 min 05 s`.
pub(crate) fn seconds(s: f64) -> String {
    if !s.is_finite() || s < 0.0 {
        return "?".into();
    }
    if s < 0.01 {
        format!("{:.1} ms", s * 1000.0)
    } else if s < 1.0 {
        format!("{:.0} ms", s * 1000.0)
    } else if s < 60.0 {
        format!("{s:.1} s")
    } else {
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let whole = s.round() as u64;
        format!("{} min {:02} s", whole / 60, whole % 60)
    }
}

/// `$1.23`, `$0.0123`, `$0.000123`, `$0`, or `unpriced`.
pub(crate) fn dollars(usd: Option<f64>) -> String {
    match usd {
        None => "unpriced".into(),
        Some(0.0) => "$0".into(),
        Some(d) if d >= 1.0 => format!("${d:.2}"),
        Some(d) if d >= 0.01 => {
            // Four decimals, but no trailing zeros past the cents: $0.25, $0.0123.
            let text = format!("{d:.4}");
            let trimmed = text.trim_end_matches('0');
            let cents = text.find('.').map_or(text.len(), |dot| dot + 3);
            format!("${}", &text[..trimmed.len().max(cents)])
        }
        Some(d) => {
            let text = format!("{d:.6}");
            format!("${}", text.trim_end_matches('0').trim_end_matches('.'))
        }
    }
}

/// What a run cost, as the report says it: `$0.0123`; `≈ $0.0123` when tokens
/// were counted locally; `≥ $0.0123` when an agent is unpriced (its dollars are
/// unknown, never $0); with `, up to $0.05` when a bill is unknown.
pub(crate) fn run_dollars(record: &RunRecord) -> String {
    let prefix = if !record.unpriced_agents.is_empty() {
        "≥ "
    } else if record.counted_locally() {
        "≈ "
    } else {
        ""
    };
    let mut text = format!("{prefix}{}", dollars(Some(record.priced_usd())));
    if let Some(most) = record.max_cost_usd {
        text.push_str(&format!(", up to {}", dollars(Some(most))));
    }
    text
}

/// What an agent cost, as the report says it (see [`run_dollars`]).
pub(crate) fn agent_dollars(agent: &AgentRecord) -> String {
    let mut text = match agent.cost_usd {
        Some(c) if agent.counted_locally => format!("≈ {}", dollars(Some(c))),
        cost => dollars(cost),
    };
    if let Some(most) = agent.max_cost_usd.filter(|_| agent.bill_unknown) {
        text.push_str(&format!(", up to {}", dollars(Some(most))));
    }
    text
}

/// Writes the report of `run --report FILE` when the run ends.
pub struct ReportFile {
    path: PathBuf,
}

impl ReportFile {
    pub fn new(path: PathBuf) -> Self {
        ReportFile { path }
    }
}

impl Subscriber for ReportFile {
    fn on_event(&mut self, event: &Event<'_>) -> std::io::Result<()> {
        if let Event::RunFinished { record } = event {
            let html = render(record, Origin::Record);
            super::output::write_atomic(&self.path, html.as_bytes())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod format_tests {
    use super::*;

    #[test]
    fn dollars_and_seconds_read_as_people_write_them() {
        let shown: Vec<String> = [
            None,
            Some(0.0),
            Some(2.5),
            Some(0.25),
            Some(0.0123),
            Some(0.000_123),
        ]
        .into_iter()
        .map(dollars)
        .collect();
        assert_eq!(
            shown,
            ["unpriced", "$0", "$2.50", "$0.25", "$0.0123", "$0.000123"]
        );
        let shown: Vec<String> = [0.0004, 0.25, 12.34, 245.0, f64::NAN]
            .into_iter()
            .map(seconds)
            .collect();
        assert_eq!(shown, ["0.4 ms", "250 ms", "12.3 s", "4 min 05 s", "?"]);
    }
}
