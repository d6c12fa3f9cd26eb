//! The page: its head (the Content-Security-Policy and the stylesheet), the run
//! at a glance, then one section each for the squad, the timeline, the money,
//! the outputs, the errors, every agent, the inputs and the run's facts.

use base64::Engine as _;
use maud::{DOCTYPE, Markup, PreEscaped, html};
use sha2::{Digest, Sha256};

use super::{Origin, Status, agents, anchor, dollars, graph, money, seconds, text, timeline};
use crate::record::{AgentStatus, RunRecord, RunStatus};

/// The stylesheet, inline; the policy allows it by its hash and nothing else.
pub(super) const CSS: &str = include_str!("style.css");

/// Bytes of escaped text (outputs, inputs) the whole page may carry: the rest of
/// a 200-agent page (graph, timeline, tables) takes about 400 KB.
const TEXT_BUDGET: usize = 1_300_000;
/// Each text gets at least this much, and at most this much.
const TEXT_FLOOR: usize = 2_000;
const TEXT_CEILING: usize = 100_000;

/// The policy: no script, no request of any kind (no image, font, frame or
/// form), and only the page's own stylesheet.
pub fn content_security_policy() -> String {
    let hash = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(CSS.as_bytes()));
    format!(
        "default-src 'none'; style-src 'sha256-{hash}'; img-src 'none'; font-src 'none'; connect-src 'none'; frame-src 'none'; base-uri 'none'; form-action 'none'"
    )
}

/// The report of a run, as one HTML page.
pub fn render(record: &RunRecord, origin: Origin) -> String {
    let texts = record.outputs.len()
        + record.inputs.len()
        + record.agents.iter().filter(|a| a.output.is_some()).count();
    let budget = text::share(TEXT_BUDGET, texts, TEXT_FLOOR, TEXT_CEILING);
    let (nodes, edges) = super::squad_of(record);
    let errors = agents::errors(record);
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta http-equiv="Content-Security-Policy" content=(content_security_policy());
                meta name="referrer" content="no-referrer";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="generator" content={ "byok-flow " (env!("CARGO_PKG_VERSION")) };
                title { "byok-flow: " (record.workflow) " " (status_text(record.status)) " · " (record.run_id) }
                style { (PreEscaped(CSS)) }
            }
            body {
                header {
                    h1 { code { (record.workflow) } " " (status_text(record.status)) }
                    p.facts {
                        "run " code { (record.run_id) } " · started " (record.started_at)
                        " · " (seconds(record.seconds)) " · " (record.agents.len()) " agents · "
                        (super::run_dollars(record))
                        @if record.mock { " · every agent answered by the mock provider" }
                    }
                    (banner(record, origin))
                    nav {
                        a href="#squad" { "Squad" } a href="#timeline" { "Timeline" }
                        a href="#money" { "Dollars and tokens" } a href="#outputs" { "Outputs" }
                        @if errors.is_some() { a href="#errors" { "Errors" } }
                        a href="#agents" { "Agents" } a href="#inputs" { "Inputs" } a href="#facts" { "Facts" }
                    }
                }
                main {
                    section #glance { (glance(record)) }
                    section #squad {
                        h2 { "Squad" }
                        p.legend {
                            @for status in Status::ALL {
                                span.key {
                                    svg width="12" height="12" {
                                        rect width="12" height="12" rx="2" fill=(status.colours().0) stroke=(status.colours().1) {}
                                    }
                                    " " (status.label())
                                }
                            }
                            span.key { "solid edge: reads its output; dashed: " code { "needs:" } " only; a stack: a map agent" }
                        }
                        @if origin == Origin::History {
                            p.note { "The history keeps no edges: the agents are drawn without them." }
                        }
                        div.squad-box { (graph::svg(&nodes, &edges)) }
                    }
                    section #timeline { h2 { "Timeline" } (timeline::section(record)) }
                    section #money { h2 { "Dollars and tokens" } (money::section(record)) }
                    section #outputs { h2 { "Outputs" } (agents::outputs(record, budget)) }
                    @if let Some(errors) = errors {
                        section #errors { h2 { "Errors" } (errors) }
                    }
                    section #agents { h2 { "Agents" } (agents::details(record, budget)) }
                    section #inputs {
                        h2 { "Inputs" }
                        @if record.inputs.is_empty() {
                            p.note {
                                @if origin == Origin::History { "The history keeps no input values (only their hash)." }
                                @else { "This workflow has no inputs." }
                            }
                        }
                        @for (name, value) in &record.inputs {
                            details open[value.len() < 2_000] {
                                summary { code { (name) } " · " (value.chars().count()) " characters" }
                                (agents::pre(value, budget, "input"))
                            }
                        }
                    }
                    section #facts { h2 { "Facts" } (facts(record)) }
                }
                footer {
                    "Made by byok-flow " (env!("CARGO_PKG_VERSION"))
                    ". This page loads nothing and runs no script; every reply is shown as text."
                }
            }
        }
    };
    page.into_string()
}

pub(super) fn status_text(status: RunStatus) -> &'static str {
    match status {
        RunStatus::Succeeded => "succeeded",
        RunStatus::Failed => "failed",
        RunStatus::Interrupted => "was interrupted",
        RunStatus::BudgetReached => "stopped at its budget",
    }
}

/// What the reader must know first: how the run ended, if not well, and where
/// the record came from.
fn banner(record: &RunRecord, origin: Origin) -> Markup {
    let failed: Vec<(usize, &str)> = record
        .agents
        .iter()
        .enumerate()
        .filter(|(_, a)| a.status == AgentStatus::Failed)
        .map(|(i, a)| (i, a.name.as_str()))
        .collect();
    let budget_skipped = record
        .agents
        .iter()
        .filter(|a| Status::of(a) == Status::SkippedForBudget)
        .count();
    html! {
        @match record.status {
            RunStatus::Failed => div.banner.failed {
                strong { (failed.len()) " agent" @if failed.len() != 1 { "s" } " failed: " }
                @for (k, (i, name)) in failed.iter().take(10).enumerate() {
                    @if k > 0 { ", " }
                    a href={ "#" (anchor(*i)) } { code { (name) } }
                }
                @if failed.len() > 10 { ", …" }
                ". Their errors are under " a href="#errors" { "Errors" } "."
            },
            RunStatus::Interrupted => div.banner.interrupted {
                strong { "The run was interrupted." }
                " What finished is kept; agents that were running are marked interrupted, and the rest did not run."
            },
            RunStatus::BudgetReached => div.banner.budget {
                strong { "The run stopped at its budget" }
                @if let Some(b) = record.budget_usd { " of " (dollars(Some(b))) }
                ": " (budget_skipped) " agent" @if budget_skipped != 1 { "s were" } @else { " was" }
                " given up so that spend stays under it."
            },
            RunStatus::Succeeded => {},
        }
        @if origin == Origin::History {
            div.banner.history {
                strong { "Made from the run history" }
                ", which keeps no replies, inputs, attempts, timings or edges: this page shows each agent's status, model, tokens, seconds and dollars. "
                "A run with " code { "--out DIR" } " keeps its record in " code { "DIR/run.json" }
                ", and " code { "byok-flow report RUN_ID" } " reads it from there while it exists."
            }
        }
    }
}

/// Which agent took the time, which took the money, and what the run said.
fn glance(record: &RunRecord) -> Markup {
    let agents = &record.agents;
    let slowest = (0..agents.len())
        .filter(|&i| agents[i].seconds > 0.0)
        .max_by(|&a, &b| agents[a].seconds.total_cmp(&agents[b].seconds));
    let dearest = (0..agents.len())
        .filter(|&i| agents[i].cost_usd.is_some_and(|c| c > 0.0))
        .max_by(|&a, &b| {
            agents[a]
                .cost_usd
                .unwrap_or(0.0)
                .total_cmp(&agents[b].cost_usd.unwrap_or(0.0))
        });
    let critical = timeline::critical_path(record);
    let count = |s: AgentStatus| agents.iter().filter(|a| a.status == s).count();
    html! {
        h2 { "At a glance" }
        div.glance {
            div {
                "Took the most time"
                @if let Some(i) = slowest {
                    span.big { a href={ "#" (anchor(i)) } { (agents[i].name) } }
                    (seconds(agents[i].seconds))
                    @if record.seconds > 0.0 { ", " (format!("{:.0}", agents[i].seconds / record.seconds * 100.0)) "% of the run's " (seconds(record.seconds)) }
                } @else { span.big { "—" } }
            }
            div {
                "Took the most money"
                @if let Some(i) = dearest {
                    span.big { a href={ "#" (anchor(i)) } { (agents[i].name) } }
                    (dollars(agents[i].cost_usd))
                    @if record.priced_usd() > 0.0 {
                        ", " (format!("{:.0}", agents[i].cost_usd.unwrap_or(0.0) / record.priced_usd() * 100.0)) "% of " (super::run_dollars(record))
                    }
                } @else { span.big { "—" } "no agent spent anything" }
            }
            div {
                "Critical path"
                @if critical.is_empty() { span.big { "—" } } @else {
                    span.big { (critical.len()) " agent" @if critical.len() != 1 { "s" } }
                    @for (k, i) in critical.iter().take(6).enumerate() {
                        @if k > 0 { " → " }
                        a href={ "#" (anchor(*i)) } { (agents[*i].name) }
                    }
                    @if critical.len() > 6 { " → …" }
                }
            }
            div {
                "Agents"
                span.big { (count(AgentStatus::Succeeded)) " of " (agents.len()) " succeeded" }
                (count(AgentStatus::Failed)) " failed, " (count(AgentStatus::Skipped)) " skipped"
                @if count(AgentStatus::Cancelled) > 0 { ", " (count(AgentStatus::Cancelled)) " interrupted" }
                @let cached = agents.iter().filter(|a| a.cached).count();
                @if cached > 0 { ", " (cached) " from the cache" }
            }
        }
        p { "What each agent said: " a href="#outputs" { "the outputs" } ", and every agent's reply under " a href="#agents" { "Agents" } "." }
    }
}

fn facts(record: &RunRecord) -> Markup {
    html! {
        dl {
            dt { "workflow" } dd { code { (record.workflow) } }
            dt { "file" } dd { code { (record.file) } }
            dt { "file's SHA-256" }
            dd { @if let Some(hash) = &record.workflow_sha256 { code { (hash) } } @else { "not recorded" } }
            dt { "run id" } dd { code { (record.run_id) } }
            dt { "started" } dd { (record.started_at) }
            dt { "took" } dd { (seconds(record.seconds)) }
            dt { "status" } dd { (status_text(record.status)) }
            dt { "spent" } dd { (super::run_dollars(record)) }
            @if let Some(b) = record.budget_usd { dt { "budget" } dd { (dollars(Some(b))) } }
            @if let Some(e) = record.estimate {
                dt { "estimate" }
                dd { (dollars(e.expected_usd)) " expected, " (e.max_usd.map_or_else(|| "no bound".into(), |m| dollars(Some(m)))) " at most" }
            }
            dt { "mock" } dd { @if record.mock { "yes: every agent answered by the mock provider, $0" } @else { "no" } }
            dt { "byok-flow" }
            dd {
                @if record.version.is_empty() { "not recorded" } @else { (record.version) }
                @if record.version != env!("CARGO_PKG_VERSION") { " (this report: " (env!("CARGO_PKG_VERSION")) ")" }
            }
        }
    }
}
