//! What each agent said and what went wrong: the run's outputs, the errors, and
//! each agent's details (its output, attempts, tokens) in a collapsible block.
//! Every text is escaped and shown as preformatted text, never rendered: a reply
//! is untrusted (a model may have been steered by what it read), and rendered
//! HTML or Markdown could run a script or load an image that carries data out.

use maud::{Markup, html};

use super::money::pill;
use super::text::{Clipped, clip};
use super::{Status, anchor, dollars, seconds};
use crate::record::{AgentRecord, AgentStatus, RunRecord};

/// A text in a `<pre>`, cut to `budget` bytes, saying how much was left out.
pub fn pre(text: &str, budget: usize, class: &str) -> Markup {
    let Clipped {
        shown,
        total_chars,
        cut,
    } = clip(text, budget);
    html! {
        pre class=(class) { (shown) }
        @if cut {
            p.cut {
                "Cut here: showing " (shown.chars().count()) " of " (total_chars)
                " characters; the whole text is in the run's " code { "--out" } " folder."
            }
        }
    }
}

/// The run's outputs (declared, or those of the agents nothing depends on).
pub fn outputs(record: &RunRecord, budget: usize) -> Markup {
    html! {
        @if record.outputs.is_empty() {
            p.note { "No outputs: the agents they come from did not all succeed." }
        }
        @for (k, (name, text)) in record.outputs.iter().enumerate() {
            details open[k == 0] {
                summary { code { (name) } " · " (text.chars().count()) " characters" }
                (pre(text, budget, "output"))
            }
        }
    }
}

/// The sources an agent's reply cites: title, address and quoted passage, all as
/// escaped text. An address is never made a link: it is the server's text, and a
/// `javascript:` or look-alike address must not be one click away.
fn sources(agent: &AgentRecord) -> Markup {
    html! {
        p.label { "Sources (" (agent.citations.len()) ")" }
        ol.sources {
            @for c in agent.citations.iter().take(200) {
                li {
                    (super::text::first_chars(if c.title.is_empty() { "(untitled)" } else { &c.title }, 300))
                    br;
                    code { (super::text::first_chars(&c.url, 2_000)) }
                    @if !c.quoted.is_empty() {
                        blockquote { (super::text::first_chars(&c.quoted, 1_000)) }
                    }
                }
            }
        }
    }
}

/// Every failed agent with its error, and each failed attempt.
pub fn errors(record: &RunRecord) -> Option<Markup> {
    let failed: Vec<(usize, &AgentRecord)> = record
        .agents
        .iter()
        .enumerate()
        .filter(|(_, a)| {
            a.status == AgentStatus::Failed || a.attempts.iter().any(|t| t.outcome != "ok")
        })
        .collect();
    let stopped: Vec<(usize, &AgentRecord)> = record
        .agents
        .iter()
        .enumerate()
        .filter(|(_, a)| {
            matches!(Status::of(a), Status::SkippedForBudget | Status::Cancelled)
                || (a.status == AgentStatus::Skipped && a.reason.is_some())
        })
        .collect();
    if failed.is_empty() && stopped.is_empty() {
        return None;
    }
    Some(html! {
        @for (i, a) in &failed {
            div.error {
                p {
                    a href={ "#" (anchor(*i)) } { code { (a.name) } } " "
                    @if a.status == AgentStatus::Failed {
                        span.pill.failed { "failed" }
                    } @else {
                        span.pill.ok { "recovered" }
                    }
                    " on " (a.provider) "/" (a.model)
                }
                @if let Some(reason) = &a.reason {
                    (pre(reason, 8_000, "error"))
                }
                @let failures: Vec<_> = a.attempts.iter().filter(|t| t.outcome != "ok").collect();
                @if !failures.is_empty() {
                    ul {
                        @for t in failures {
                            li {
                                (t.model) ": "
                                @if let Some(status) = t.status { "HTTP " (status) ", " }
                                (super::text::first_chars(&t.outcome, 2_000))
                                @if t.delay_ms > 0 { " (then waited " (seconds(t.delay_ms as f64 / 1000.0)) ")" }
                            }
                        }
                    }
                }
            }
        }
        @if !stopped.is_empty() {
            details {
                summary { (stopped.len()) " agents did not run" }
                ul {
                    @for (i, a) in stopped.iter().take(500) {
                        li {
                            a href={ "#" (anchor(*i)) } { code { (a.name) } } ": "
                            (super::text::first_chars(a.reason.as_deref().unwrap_or("not run"), 500))
                        }
                    }
                    @if stopped.len() > 500 { li { "…and " (stopped.len() - 500) " more" } }
                }
            }
        }
    })
}

/// Each agent in a collapsible block: its facts, attempts, and output.
pub fn details(record: &RunRecord, budget: usize) -> Markup {
    html! {
        @for (i, a) in record.agents.iter().enumerate() {
            @let status = Status::of(a);
            details.agent id=(anchor(i)) open[record.agents.len() <= 5 && a.output.is_some()] {
                summary {
                    code { (a.name) } " "
                    span class={ "pill " (pill(status)) } { (status.label()) }
                    " · " (a.answered_by.clone().unwrap_or_else(|| format!("{}/{}", a.provider, a.model)))
                    " · " (seconds(a.seconds)) " · " (super::agent_dollars(a))
                }
                dl {
                    @if let Some(by) = &a.answered_by {
                        dt { "answered by" } dd { (by) " (a fallback of " (a.provider) "/" (a.model) ")" }
                    }
                    dt { "tokens" }
                    dd {
                        (a.usage.input) " in, " (a.usage.output) " out"
                        @if a.counted_locally { " (some counted by byok-flow: the provider reported none; approximate)" }
                        @if a.usage.cache_read + a.usage.cache_writes() > 0 {
                            ", " (a.usage.cache_read) " read from and " (a.usage.cache_writes()) " written to the provider's cache"
                        }
                    }
                    @if let Some(saved) = a.cache_saved_usd {
                        dt { "prompt cache" }
                        dd {
                            @if saved >= 0.0 { "saved " (dollars(Some(saved))) " against no caching" }
                            @else { "cost " (dollars(Some(-saved))) " more than no caching (its writes were not read back in this run)" }
                        }
                    }
                    @if a.usage.web_search + a.usage.web_fetch > 0 {
                        dt { "tools" }
                        dd {
                            @if a.usage.web_search > 0 { (a.usage.web_search) " web searches" }
                            @if a.usage.web_search > 0 && a.usage.web_fetch > 0 { ", " }
                            @if a.usage.web_fetch > 0 { (a.usage.web_fetch) " pages fetched" }
                            ", run by the provider"
                        }
                    }
                    @if a.bill_unknown {
                        dt { "bill" }
                        dd {
                            "unknown: a call was cut off after it was sent, and the provider may have billed it"
                            @if let Some(most) = a.max_cost_usd { "; at most " (dollars(Some(most))) }
                        }
                    }
                    @if let Some(e) = a.estimate {
                        dt { "estimate" }
                        dd { (dollars(e.expected_usd)) " expected, " (e.max_usd.map_or_else(|| "no bound".into(), |m| dollars(Some(m)))) " at most" }
                    }
                    @if let Some(stop) = &a.stop_reason {
                        dt { "stop reason" }
                        dd { (stop) @if stop == "max_tokens" { " (cut at max_tokens)" } }
                    }
                    @if !a.depends_on.is_empty() {
                        dt { "waited for" }
                        dd {
                            @for (k, d) in a.depends_on.iter().enumerate() {
                                @if k > 0 { ", " }
                                code { (d.agent) }
                            }
                        }
                    }
                    @if let Some(reason) = &a.reason {
                        dt { "why" } dd { (super::text::first_chars(reason, 2_000)) }
                    }
                }
                @if !a.attempts.is_empty() {
                    table.attempts {
                        thead { tr { th { "#" } th { "model" } th { "result" } th { "seconds" } th { "then waited" } } }
                        tbody {
                            @for (k, t) in a.attempts.iter().enumerate() {
                                tr {
                                    td { (k + 1) }
                                    td { (t.model) }
                                    td {
                                        @if let Some(s) = t.status { "HTTP " (s) ": " }
                                        (super::text::first_chars(&t.outcome, 500))
                                    }
                                    td { (seconds(t.seconds)) }
                                    td { @if t.delay_ms > 0 { (seconds(t.delay_ms as f64 / 1000.0)) } }
                                }
                            }
                        }
                    }
                }
                @if let Some(json) = &a.json {
                    (pre(&serde_json::to_string_pretty(json).unwrap_or_default(), budget, "output json"))
                } @else if let Some(output) = &a.output {
                    (pre(output, budget, "output"))
                } @else if a.status == AgentStatus::Succeeded {
                    p.note { "The reply is not in this record." }
                }
                @if !a.citations.is_empty() {
                    (sources(a))
                }
            }
        }
    }
}
