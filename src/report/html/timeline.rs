//! The timeline: one row per agent, on one time axis for the run, with a bar for
//! each phase: waiting for a free slot, waiting for the budget, each attempt
//! (green when it answered, red when it failed), the wait before each retry, and a
//! cached answer. The critical path (the chain of agents each of which the next
//! waited for, ending with the agent that finished last) is marked, so what made
//! the run as long as it was is visible at a glance.

use std::collections::HashMap;

use maud::{Markup, html};

use super::{Status, px, seconds};
use crate::record::{AgentRecord, RunRecord, Timing};

const LABEL_WIDTH: f64 = 190.0;
const PLOT_WIDTH: f64 = 770.0;
const ROW: f64 = 18.0;
const BAR: f64 = 12.0;
const AXIS: f64 = 22.0;

/// One phase of an agent, as a bar.
#[derive(Debug, Clone, PartialEq)]
struct Phase {
    kind: Kind,
    from: f64,
    to: f64,
    title: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    SlotWait,
    Preparing,
    BudgetWait,
    Answered,
    AttemptFailed,
    RetryWait,
    Cached,
    Running,
}

impl Kind {
    const ALL: [Kind; 8] = [
        Kind::SlotWait,
        Kind::Preparing,
        Kind::BudgetWait,
        Kind::Answered,
        Kind::AttemptFailed,
        Kind::RetryWait,
        Kind::Cached,
        Kind::Running,
    ];

    fn label(self) -> &'static str {
        match self {
            Kind::SlotWait => "waiting for a slot",
            Kind::Preparing => "rendering and counting the prompt",
            Kind::BudgetWait => "waiting for the budget",
            Kind::Answered => "attempt that answered",
            Kind::AttemptFailed => "failed attempt",
            Kind::RetryWait => "wait before a retry",
            Kind::Cached => "answer from the cache",
            Kind::Running => "running (no call made)",
        }
    }

    fn fill(self) -> &'static str {
        match self {
            Kind::SlotWait => "#dadce0",
            Kind::Preparing => "#a8c7fa",
            Kind::BudgetWait => "#f9ab00",
            Kind::Answered => "#1e8e3e",
            Kind::AttemptFailed => "#d93025",
            Kind::RetryWait => "#f6aea9",
            Kind::Cached => "#1a73e8",
            Kind::Running => "#80868b",
        }
    }
}

/// The timeline section.
pub fn section(record: &RunRecord) -> Markup {
    let timed: Vec<(usize, &AgentRecord, Timing)> = record
        .agents
        .iter()
        .enumerate()
        .filter_map(|(i, a)| a.timing.map(|t| (i, a, t)))
        .collect();
    if timed.is_empty() {
        return html! {
            p.note { "This record has no timings (it was written by the run history, or by an older byok-flow), so there is no timeline." }
        };
    }
    let span = record
        .agents
        .iter()
        .filter_map(|a| a.timing.and_then(|t| t.ended.or(t.started)))
        .fold(record.seconds, f64::max)
        .max(1e-3);
    let critical = critical_path(record);
    let mut rows = timed;
    rows.sort_by(|a, b| {
        let start = |t: &Timing| t.started.unwrap_or(t.ready);
        start(&a.2).total_cmp(&start(&b.2)).then(a.0.cmp(&b.0))
    });
    let untimed: Vec<&AgentRecord> = record
        .agents
        .iter()
        .filter(|a| a.timing.is_none())
        .collect();
    let x = |t: f64| px(LABEL_WIDTH + t.clamp(0.0, span) / span * PLOT_WIDTH);
    let height = AXIS + ROW * rows.len() as f64 + 4.0;
    let width = LABEL_WIDTH + PLOT_WIDTH + 10.0;
    let step = tick_step(span);
    let ticks: Vec<f64> = (0..)
        .map(|k| f64::from(k) * step)
        .take_while(|t| *t <= span + 1e-9)
        .take(40)
        .collect();
    html! {
        (legend())
        div.scroll {
            svg xmlns="http://www.w3.org/2000/svg" class="timeline" width=(px(width)) height=(px(height))
                viewBox={ "0 0 " (px(width)) " " (px(height)) }
                font-family="system-ui, -apple-system, 'Segoe UI', sans-serif" font-size="11" {
                title { "Timeline of " (rows.len()) " agents over " (seconds(span)) }
                @for t in &ticks {
                    line x1=(x(*t)) x2=(x(*t)) y1=(AXIS - 4.0) y2=(px(height)) stroke="#e8eaed" {}
                    text x=(x(*t)) y="12" text-anchor="middle" fill="#5f6368" { (seconds(*t)) }
                }
                @for (row, (i, agent, timing)) in rows.iter().enumerate() {
                    @let top = AXIS + ROW * row as f64;
                    @let on_path = critical.contains(i);
                    g class={ "row" @if on_path { " critical" } } data-agent=(agent.name) {
                        @if on_path {
                            rect x="0" y=(px(top)) width=(px(width)) height=(ROW) fill="#fef7e0" {}
                        }
                        text x="4" y=(px(top + 13.0)) fill="#202124"
                            font-weight=[on_path.then_some("600")] {
                            (super::text::first_chars(&agent.name, 26))
                        }
                        @for phase in phases(agent, timing) {
                            rect x=(x(phase.from)) y=(px(top + (ROW - BAR) / 2.0))
                                width=(px((x(phase.to) - x(phase.from)).max(1.5))) height=(BAR)
                                fill=(phase.kind.fill()) {
                                title { (phase.title) }
                            }
                        }
                    }
                }
            }
        }
        @if !critical.is_empty() {
            p {
                "Critical path (highlighted): "
                @for (k, i) in critical.iter().enumerate() {
                    @if k > 0 { " → " }
                    a href={ "#" (super::anchor(*i)) } { code { (record.agents[*i].name) } }
                }
                @if let Some(end) = critical.last().and_then(|i| record.agents[*i].timing).and_then(|t| t.ended) {
                    ", ending at " (seconds(end)) "."
                }
            }
        }
        @if !untimed.is_empty() {
            p.note {
                @if untimed.len() == 1 { "1 agent never became ready (an agent it needs did not succeed): " }
                @else { (untimed.len()) " agents never became ready (an agent they need did not succeed): " }
                @for (k, a) in untimed.iter().take(20).enumerate() {
                    @if k > 0 { ", " }
                    code { (a.name) }
                }
                @if untimed.len() > 20 { ", …" }
            }
        }
    }
}

fn legend() -> Markup {
    html! {
        p.legend {
            @for kind in Kind::ALL {
                span.key {
                    svg width="12" height="12" { rect width="12" height="12" rx="2" fill=(kind.fill()) {} }
                    " " (kind.label())
                }
            }
        }
    }
}

/// An agent's bars, in seconds since the run started.
fn phases(agent: &AgentRecord, t: &Timing) -> Vec<Phase> {
    let mut out = Vec::new();
    let name = &agent.name;
    let held_or_started = t.held.or(t.started).or(t.ended);
    let waited_until = t.preparing.or(held_or_started).unwrap_or(t.ready);
    if waited_until > t.ready {
        out.push(Phase {
            kind: Kind::SlotWait,
            from: t.ready,
            to: waited_until,
            title: format!(
                "{name}: waited {} for a free slot (--concurrency or the provider's max_concurrency)",
                seconds(waited_until - t.ready)
            ),
        });
    }
    if let Some(preparing) = t.preparing {
        let until = held_or_started.unwrap_or(preparing);
        out.push(Phase {
            kind: Kind::Preparing,
            from: preparing,
            to: until,
            title: format!(
                "{name}: {} rendering its prompt and counting its tokens",
                seconds(until - preparing)
            ),
        });
    }
    if let Some(held) = t.held {
        let until = t.started.or(t.ended).unwrap_or(held);
        out.push(Phase {
            kind: Kind::BudgetWait,
            from: held,
            to: until,
            title: format!(
                "{name}: waited {} for running agents to settle so its worst case fit the budget",
                seconds(until - held)
            ),
        });
    }
    let Some(started) = t.started else {
        return out;
    };
    let ended = t.ended.unwrap_or(started + agent.seconds);
    if agent.cached {
        out.push(Phase {
            kind: Kind::Cached,
            from: started,
            to: ended,
            title: format!("{name}: answered from the cache"),
        });
        return out;
    }
    if agent.attempts.is_empty() {
        out.push(Phase {
            kind: Kind::Running,
            from: started,
            to: ended,
            title: format!(
                "{name}: {} ({})",
                seconds(ended - started),
                Status::of(agent).label()
            ),
        });
        return out;
    }
    // Records from before attempts had `at` get them from durations and delays.
    let placed = agent.attempts.iter().any(|a| a.at > 0.0) || agent.attempts.len() == 1;
    let mut next = started;
    let count = agent.attempts.len();
    for (k, attempt) in agent.attempts.iter().enumerate() {
        let from = if placed { started + attempt.at } else { next };
        let to = from + attempt.seconds;
        let answered = attempt.outcome == "ok";
        let status = attempt
            .status
            .map(|s| format!("HTTP {s}: "))
            .unwrap_or_default();
        out.push(Phase {
            kind: if answered {
                Kind::Answered
            } else {
                Kind::AttemptFailed
            },
            from,
            to,
            title: format!(
                "{name}: attempt {} of {count} on {}, {}: {status}{}",
                k + 1,
                attempt.model,
                seconds(attempt.seconds),
                super::text::first_chars(&attempt.outcome, 200)
            ),
        });
        next = to + attempt.delay_ms as f64 / 1000.0;
        if let Some(following) = agent.attempts.get(k + 1) {
            let resume = if placed { started + following.at } else { next };
            if resume > to {
                out.push(Phase {
                    kind: Kind::RetryWait,
                    from: to,
                    to: resume,
                    title: format!(
                        "{name}: waited {} before trying again",
                        seconds(resume - to)
                    ),
                });
            }
        }
    }
    out
}

/// The agents on the critical path, first to last: the agent that ended last,
/// the agent it waited for that ended last, and so on back to the start.
pub fn critical_path(record: &RunRecord) -> Vec<usize> {
    let ended = |i: usize| record.agents[i].timing.and_then(|t| t.ended);
    let index: HashMap<&str, usize> = record
        .agents
        .iter()
        .enumerate()
        .rev()
        .map(|(i, a)| (a.name.as_str(), i))
        .collect();
    let Some(mut current) = (0..record.agents.len())
        .filter(|&i| ended(i).is_some())
        .max_by(|&a, &b| ended(a).unwrap_or(0.0).total_cmp(&ended(b).unwrap_or(0.0)))
    else {
        return Vec::new();
    };
    let mut path = vec![current];
    // At most one step per agent, whatever a hand-edited record says.
    for _ in 0..record.agents.len() {
        let before = record.agents[current]
            .depends_on
            .iter()
            .filter_map(|d| index.get(d.agent.as_str()).copied())
            .filter(|&d| ended(d).is_some() && !path.contains(&d))
            .max_by(|&a, &b| ended(a).unwrap_or(0.0).total_cmp(&ended(b).unwrap_or(0.0)));
        let Some(before) = before else { break };
        path.push(before);
        current = before;
    }
    path.reverse();
    path
}

/// A round step for about eight ticks over `span` seconds.
fn tick_step(span: f64) -> f64 {
    let raw = span / 8.0;
    let magnitude = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|step| *step >= raw)
        .unwrap_or(10.0 * magnitude)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::call::Attempt;

    fn attempt(at: f64, seconds: f64, outcome: &str, delay_ms: u64) -> Attempt {
        Attempt {
            model: "openai/gpt-4o".into(),
            at,
            status: (outcome != "ok").then_some(429),
            outcome: outcome.into(),
            seconds,
            delay_ms,
        }
    }

    #[test]
    fn an_agent_waits_then_retries_then_answers() {
        let mut agent = super::super::tests::agent("writer", 3.0, Some(0.01));
        agent.attempts = vec![
            attempt(0.0, 0.5, "rate limited", 1000),
            attempt(1.6, 1.0, "ok", 0),
        ];
        let timing = Timing {
            ready: 1.0,
            preparing: Some(1.5),
            held: Some(2.0),
            started: Some(3.0),
            ended: Some(5.6),
        };
        let kinds: Vec<(Kind, f64, f64)> = phases(&agent, &timing)
            .into_iter()
            .map(|p| (p.kind, p.from, p.to))
            .collect();
        assert_eq!(
            kinds,
            [
                (Kind::SlotWait, 1.0, 1.5),
                (Kind::Preparing, 1.5, 2.0),
                (Kind::BudgetWait, 2.0, 3.0),
                (Kind::AttemptFailed, 3.0, 3.5),
                (Kind::RetryWait, 3.5, 4.6),
                (Kind::Answered, 4.6, 5.6),
            ]
        );
    }

    #[test]
    fn old_records_place_attempts_from_durations_and_delays() {
        let mut agent = super::super::tests::agent("writer", 3.0, Some(0.01));
        agent.attempts = vec![
            attempt(0.0, 0.5, "rate limited", 1000),
            attempt(0.0, 1.0, "ok", 0),
        ];
        let timing = Timing {
            ready: 0.0,
            preparing: None,
            held: None,
            started: Some(0.0),
            ended: Some(2.5),
        };
        let p = phases(&agent, &timing);
        assert_eq!(p[1].kind, Kind::RetryWait);
        assert_eq!((p[2].from, p[2].to), (1.5, 2.5));
    }

    #[test]
    fn the_critical_path_follows_what_ended_last() {
        let record = super::super::tests::research();
        let names: Vec<&str> = critical_path(&record)
            .iter()
            .map(|&i| record.agents[i].name.as_str())
            .collect();
        assert_eq!(names, ["researcher", "writer", "editor"]);
    }

    #[test]
    fn ticks_are_round() {
        assert!((tick_step(10.0) - 2.0).abs() < 1e-9);
        assert!((tick_step(0.07) - 0.01).abs() < 1e-9);
        assert!((tick_step(300.0) - 50.0).abs() < 1e-9);
    }
}
