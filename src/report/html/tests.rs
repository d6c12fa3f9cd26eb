//! Tests of the whole page, and records to draw them from.

use indexmap::IndexMap;

use super::*;
use crate::dag::EdgeKind;
use crate::providers::call::Attempt;
use crate::record::{CostEstimate, Dependency, RunStatus, Timing};
use crate::usage::Usage;

/// A succeeded agent with one attempt.
pub fn agent(name: &str, seconds: f64, cost: Option<f64>) -> AgentRecord {
    AgentRecord {
        item: None,
        name: name.into(),
        provider: "openai".into(),
        model: "gpt-4o".into(),
        status: AgentStatus::Succeeded,
        reason: None,
        seconds,
        usage: Usage {
            input: 120,
            output: 80,
            ..Usage::default()
        },
        counted_locally: false,
        cost_usd: cost,
        bill_unknown: false,
        max_cost_usd: None,
        stop_reason: Some("stop".into()),
        output: Some(format!("What {name} said.")),
        json: None,
        answered_by: None,
        attempts: vec![Attempt {
            model: "openai/gpt-4o".into(),
            at: 0.0,
            status: None,
            outcome: "ok".into(),
            seconds,
            delay_ms: 0,
        }],
        cached: false,
        depends_on: Vec::new(),
        timing: None,
        estimate: Some(CostEstimate {
            expected_usd: cost,
            max_usd: cost.map(|c| c * 3.0),
        }),
        key_failure: false,
        citations: Vec::new(),
        cache_saved_usd: None,
    }
}

/// A chain of agents, each waiting for the one before.
pub fn chain(names: &[&str]) -> RunRecord {
    let mut clock = 0.0;
    let agents: Vec<AgentRecord> = names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let mut a = agent(name, 1.0 + i as f64, Some(0.001 * (i + 1) as f64));
            if i > 0 {
                a.depends_on = vec![Dependency {
                    agent: names[i - 1].to_string(),
                    kind: EdgeKind::Data,
                }];
            }
            a.timing = Some(Timing {
                ready: clock,
                preparing: None,
                held: None,
                started: Some(clock),
                ended: Some(clock + a.seconds),
            });
            clock += a.seconds;
            a
        })
        .collect();
    let mut record = RunRecord {
        run_id: "1700000000-abcdef".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        workflow: "research".into(),
        file: "workflows/research.yaml".into(),
        workflow_sha256: Some("ab".repeat(32)),
        started_at: "2026-01-01T00:00:00Z".into(),
        seconds: clock,
        status: RunStatus::Succeeded,
        mock: false,
        inputs: IndexMap::from([("topic".to_string(), "Rust".to_string())]),
        cost_usd: None,
        unpriced_agents: Vec::new(),
        max_cost_usd: None,
        outputs: IndexMap::from([(
            "article".to_string(),
            format!("What {} said.", names[names.len() - 1]),
        )]),
        agents,
        usage: Usage::default(),
        budget_usd: Some(0.5),
        cache_saved_usd: None,
        estimate: Some(CostEstimate {
            expected_usd: Some(0.005),
            max_usd: Some(0.02),
        }),
    };
    record.total_agents();
    record
}

pub fn research() -> RunRecord {
    chain(&["researcher", "writer", "editor"])
}

#[test]
fn the_page_has_a_strict_policy_and_loads_nothing() {
    let html = render(&research(), Origin::Record);
    assert!(html.starts_with("<!DOCTYPE html>"));
    let policy = page::content_security_policy();
    assert!(html.contains(&format!("content=\"{policy}\"")), "{html}");
    assert!(policy.starts_with("default-src 'none'; style-src 'sha256-"));
    for forbidden in ["<script", "src=", "<link", "@import", "<img", "<iframe"] {
        assert!(!html.contains(forbidden), "{forbidden}");
    }
    // Every `href` and `url(` points into the page itself.
    for (i, _) in html.match_indices("href=\"") {
        assert_eq!(&html[i + 6..i + 7], "#", "{}", &html[i..i + 40]);
    }
    for (i, _) in html.match_indices("url(") {
        assert_eq!(&html[i + 4..i + 5], "#");
    }
    assert_eq!(html.matches("<g class=\"node\"").count(), 3);
}

#[test]
fn replies_are_text_never_markup() {
    let mut record = research();
    let evil = "<script>alert(1)</script><img src=x onerror=alert(2)></textarea><a href=\"javascript:alert(3)\">x</a>";
    record.agents[1].output = Some(evil.into());
    record.agents[1].reason = Some(evil.into());
    record.agents[1].name = "<b>writer</b>".into();
    record.inputs.insert("topic".into(), evil.into());
    record.outputs.insert("article".into(), evil.into());
    let html = render(&record, Origin::Record);
    assert!(!html.contains("<script"), "a script tag got through");
    assert!(!html.contains("<img"));
    assert!(!html.contains("</textarea>"));
    assert!(!html.contains("href=\"javascript"));
    assert!(!html.contains("<b>writer"));
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
}

#[test]
fn long_replies_are_cut_and_a_200_agent_report_stays_under_two_megabytes() {
    let names: Vec<String> = (0..200).map(|i| format!("agent-{i:03}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut record = chain(&refs);
    let reply = "<&\"> a long reply ".repeat(10_000);
    for a in &mut record.agents {
        a.output = Some(reply.clone());
    }
    let html = render(&record, Origin::Record);
    assert!(html.len() <= 2 * 1024 * 1024, "{} bytes", html.len());
    assert!(html.contains("Cut here: showing"));
    assert!(html.contains(&format!("of {} characters", reply.chars().count())));
    assert_eq!(html.matches("<g class=\"node\"").count(), 200);
}

#[test]
fn every_way_a_run_ends_has_its_banner() {
    let mut record = research();
    record.status = RunStatus::Failed;
    record.agents[2].status = AgentStatus::Failed;
    record.agents[2].reason = Some("HTTP 500 from the provider: overloaded".into());
    let html = render(&record, Origin::Record);
    assert!(html.contains("1 agent failed"), "{html}");
    assert!(html.contains("id=\"errors\""));
    assert!(html.contains("HTTP 500 from the provider: overloaded"));

    record.status = RunStatus::BudgetReached;
    record.agents[2].status = AgentStatus::Skipped;
    record.agents[2].reason = Some("skipped for the budget: its worst case".into());
    let html = render(&record, Origin::Record);
    assert!(html.contains("stopped at its budget"));
    assert!(html.contains("1 agent was given up"));
    assert!(html.contains("data-status=\"skipped for the budget\""));

    record.status = RunStatus::Interrupted;
    record.agents[2].status = AgentStatus::Cancelled;
    let html = render(&record, Origin::Record);
    assert!(html.contains("The run was interrupted."));

    let html = render(&record, Origin::History);
    assert!(html.contains("Made from the run history"));
}

#[test]
fn the_glance_names_the_slowest_and_the_dearest() {
    let mut record = research();
    record.agents[0].cost_usd = Some(0.9);
    let html = render(&record, Origin::Record);
    let glance = &html[html.find("At a glance").unwrap()..html.find("id=\"squad\"").unwrap()];
    assert!(
        glance.contains("Took the most time<span class=\"big\"><a href=\"#agent-2\">editor</a>"),
        "{glance}"
    );
    assert!(
        glance
            .contains("Took the most money<span class=\"big\"><a href=\"#agent-0\">researcher</a>"),
        "{glance}"
    );
}

/// A map agent's items are one node, a stack, between what feeds it and what
/// reads it; one failed item shows the stack as failed.
#[test]
fn a_map_agents_items_are_one_stack_in_the_drawing() {
    let mut record = chain(&["planner", "writer", "editor"]);
    let writer = record.agents.remove(1);
    let items: Vec<AgentRecord> = (0..3)
        .map(|i| {
            let mut item = writer.clone();
            item.name = format!("writer[{i}]");
            item.item = Some(i);
            item
        })
        .collect();
    record.agents.splice(1..1, items);
    let (nodes, edges) = squad_of(&record);
    let names: Vec<&str> = nodes.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["planner", "writer", "editor"]);
    assert!(nodes[1].stack && !nodes[0].stack && !nodes[2].stack);
    assert_eq!(nodes[1].status, Status::Succeeded);
    assert_eq!(nodes[1].link.as_deref(), Some(anchor(1).as_str()));
    assert!(
        nodes[1].facts.as_deref().unwrap().starts_with("3 items"),
        "{:?}",
        nodes[1].facts
    );
    let pairs: Vec<(usize, usize)> = edges.iter().map(|e| (e.from, e.to)).collect();
    assert_eq!(pairs, [(0, 1), (1, 2)]);

    record.agents[2].status = AgentStatus::Failed;
    let (nodes, _) = squad_of(&record);
    assert_eq!(nodes[1].status, Status::Failed);
    let html = render(&record, Origin::Record);
    assert!(html.contains("writer[2]"), "each item keeps its details");
}

/// Issue 15: a searching agent's sources are listed under its output as text (an
/// address is never a link), and what prompt caching saved is in the totals.
#[test]
fn sources_are_text_and_cache_savings_are_shown() {
    let mut record = research();
    record.agents[0].citations = vec![
        crate::tools::Citation {
            url: "https://example.com/a".into(),
            title: "<b>A page</b>".into(),
            quoted: "It says \"so\".".into(),
        },
        crate::tools::Citation {
            url: "javascript:alert(1)".into(),
            title: String::new(),
            quoted: String::new(),
        },
    ];
    record.agents[0].usage.web_search = 2;
    record.agents[1].usage.cache_read = 3_000;
    record.agents[1].cache_saved_usd = Some(0.0081);
    record.total_agents();
    let html = render(&record, Origin::Record);
    assert!(html.contains("Sources (2)"), "{html}");
    assert!(html.contains("<code>https://example.com/a</code>"));
    assert!(html.contains("&lt;b&gt;A page&lt;/b&gt;"));
    assert!(!html.contains("href=\"javascript"));
    assert!(!html.contains("href=\"https://example.com"));
    assert!(html.contains("2 web searches"));
    assert!(
        html.contains(
            "Prompt cache: 3000 tokens read, 0 written; saved $0.0081 against no caching."
        )
    );
    assert!(html.contains("saved $0.0081 against no caching"));
}
