//! Prompt caching (issue 15) against the fake server, which caches as the
//! providers do: Anthropic's marked prefix is written the first time and read
//! after; OpenAI's requests with the same `prompt_cache_key` read what they share.
//! The record, the closing table and the estimate show the tokens and the dollars.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Output;

use serde_json::Value;

use crate::providers::{ANTHROPIC_KEY, OPENAI_KEY, agent, record, workflow};
use crate::support::byok_flow;
use crate::support::fake::FakeServer;

/// A long set of rules every ticket is triaged by: the static part of the prompt.
fn rules() -> String {
    (1..=120).fold(String::new(), |mut rules, i| {
        let team = i % 7;
        let _ = writeln!(
            rules,
            "Rule {i}: when a ticket mentions topic number {i}, route it to team {team} and thank the customer."
        );
        rules
    })
}

/// A triage agent on `model` whose system prompt is the rules, and whose prompt
/// holds the ticket.
fn triage(server: &FakeServer, model: &str, extra: &str) -> String {
    let system = rules().lines().fold(String::new(), |mut system, l| {
        let _ = writeln!(system, "      {l}");
        system
    });
    workflow(
        server,
        &format!(
            "  triage:\n    model: {model}\n    system: |\n{system}    prompt: \"Ticket {{{{inputs.ticket}}}}: route it.\"\n    max_tokens: 50\n    expected_output_tokens: 10\n{extra}"
        ),
    )
    .replace("version: 1\n", "version: 1\ninputs: {ticket: {required: true}}\n")
}

/// Runs the workflow in `dir` for one ticket: the record on stdout, the closing table on stderr.
fn run_ticket(dir: &Path, yaml: &str, ticket: &str, extra: &[&str]) -> Output {
    // A file per ticket: several run at once.
    let file = dir.join(format!("flow-{ticket}.yaml"));
    std::fs::write(&file, yaml).unwrap();
    let host = yaml
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split(['"', '/']).next())
        .unwrap()
        .to_string();
    byok_flow(dir)
        .arg("run")
        .arg(&file)
        .args(["--json", "--no-cache", "--allow-host", &host, "--input"])
        .arg(format!("ticket={ticket}"))
        .args(extra)
        .env("ANTHROPIC_KEY", ANTHROPIC_KEY)
        .env("OPENAI_KEY", OPENAI_KEY)
        .timeout(std::time::Duration::from_mins(1))
        .output()
        .unwrap()
}

fn estimate(dir: &Path, yaml: &str, ticket: &str) -> Value {
    let file = dir.join("estimate.yaml");
    std::fs::write(&file, yaml).unwrap();
    let out = byok_flow(dir)
        .args(["estimate", "--json", "--input"])
        .arg(format!("ticket={ticket}"))
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn anthropic_marks_the_shared_prefix_writes_it_once_and_reads_it_after() {
    let server = FakeServer::start();
    let dir = tempfile::tempdir().unwrap();
    let yaml = triage(&server, "anthropic/claude-sonnet-4-5", "");
    let first = run_ticket(dir.path(), &yaml, "T101", &[]);
    let stderr = String::from_utf8_lossy(&first.stderr);
    assert_eq!(first.status.code(), Some(0), "{stderr}");
    let body = &server.requests()[0].body;
    // The system prompt and the prompt's static head are marked: two breakpoints.
    assert_eq!(
        body["system"][0]["cache_control"],
        serde_json::json!({"type": "ephemeral"})
    );
    assert_eq!(body["system"].as_array().unwrap().len(), 1);
    assert_eq!(body["messages"][0]["content"][0]["text"], "Ticket ");
    assert_eq!(
        body["messages"][0]["content"][0]["cache_control"]["type"],
        "ephemeral"
    );
    assert_eq!(body["messages"][0]["content"][1]["text"], "T101: route it.");
    let written = agent(&record(&first), "triage").clone();
    let prefix = written["usage"]["cache_write"].as_u64().unwrap();
    assert!(prefix > 2_000, "{written:#}");
    assert!(
        written["cache_saved_usd"].as_f64().unwrap() < 0.0,
        "a write costs more: {written:#}"
    );
    assert!(stderr.contains("cache read  cache write"), "{stderr}");
    assert!(stderr.contains("cost $"), "{stderr}");

    let second = run_ticket(dir.path(), &yaml, "T102", &[]);
    let stderr = String::from_utf8_lossy(&second.stderr);
    let read = agent(&record(&second), "triage").clone();
    assert_eq!(
        read["usage"]["cache_read"].as_u64(),
        Some(prefix),
        "{read:#}"
    );
    assert_eq!(read["usage"]["cache_write"], 0);
    // Read at $0.30 instead of $3 per million: 90% of the prefix's price saved.
    let saved = read["cache_saved_usd"].as_f64().unwrap();
    let want = prefix as f64 * (3.0 - 0.3) / 1e6;
    assert!((saved - want).abs() < 2e-6, "{saved} vs {want}");
    assert!(
        stderr.contains(&format!(
            "Prompt cache: {prefix} tokens read, 0 written; saved ${want:.4} against no caching."
        )),
        "{stderr}"
    );
}

#[test]
fn one_hour_writes_are_asked_for_priced_and_reserved_at_their_own_rate() {
    let server = FakeServer::start();
    let dir = tempfile::tempdir().unwrap();
    let five = triage(&server, "anthropic/claude-sonnet-4-5", "");
    let hour = triage(&server, "anthropic/claude-sonnet-4-5", "    cache: 1h\n");
    // The budget reserves 1-hour writes at $6 per million, not $3.75.
    let (max_five, max_hour) = (
        estimate(dir.path(), &five, "T1")["agents"][0]["max_usd"]
            .as_f64()
            .unwrap(),
        estimate(dir.path(), &hour, "T1")["agents"][0]["max_usd"]
            .as_f64()
            .unwrap(),
    );
    assert!(max_hour > max_five * 1.4, "{max_five} {max_hour}");
    let between = format!("{:.6}", f64::midpoint(max_five, max_hour));
    let out = run_ticket(dir.path(), &hour, "T1", &["--max-usd", &between]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(server.requests().is_empty());

    let out = run_ticket(dir.path(), &hour, "T1", &[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        server.requests()[0].body["system"][0]["cache_control"]["ttl"],
        "1h"
    );
    let a = agent(&record(&out), "triage").clone();
    let written = a["usage"]["cache_write_1h"].as_u64().unwrap();
    assert!(written > 2_000, "{a:#}");
    let tokens =
        a["usage"]["input"].as_f64().unwrap() * 3.0 + a["usage"]["output"].as_f64().unwrap() * 15.0;
    let want = (tokens + written as f64 * 6.0) / 1e6;
    assert!(
        (a["cost_usd"].as_f64().unwrap() - want).abs() < 2e-6,
        "{a:#}"
    );
}

#[test]
fn cache_off_marks_nothing() {
    let server = FakeServer::start();
    let dir = tempfile::tempdir().unwrap();
    let yaml = triage(&server, "anthropic/claude-sonnet-4-5", "")
        .replace("version: 1\n", "version: 1\ndefaults: {cache: off}\n");
    let out = run_ticket(dir.path(), &yaml, "T1", &[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let body = &server.requests()[0].body;
    assert!(body["system"].is_string(), "{body:#}");
    assert!(!body.to_string().contains("cache_control"));
    assert_eq!(agent(&record(&out), "triage").get("cache_saved_usd"), None);
}

#[test]
fn openai_gets_a_prompt_cache_key_and_reads_the_shared_prefix() {
    let server = FakeServer::start();
    let dir = tempfile::tempdir().unwrap();
    let yaml = triage(&server, "openai/gpt-4o", "");
    let first = run_ticket(dir.path(), &yaml, "T101", &[]);
    assert_eq!(
        first.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let second = run_ticket(dir.path(), &yaml, "T102", &[]);
    let requests = server.requests();
    let key = requests[0].body["prompt_cache_key"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(key.starts_with("byok-flow-"), "{key}");
    assert_eq!(
        requests[1].body["prompt_cache_key"].as_str(),
        Some(key.as_str())
    );
    assert_eq!(agent(&record(&first), "triage")["usage"]["cache_read"], 0);
    let read = agent(&record(&second), "triage").clone();
    let cached = read["usage"]["cache_read"].as_u64().unwrap();
    assert!(cached >= 1_024 && cached.is_multiple_of(128), "{read:#}");
    // GPT-4o reads cached tokens at $1.25 instead of $2.50 per million.
    let saved = read["cache_saved_usd"].as_f64().unwrap();
    assert!(
        (saved - cached as f64 * 1.25 / 1e6).abs() < 2e-6,
        "{read:#}"
    );
}

/// Issue 15, item 9, over separate runs: 100 calls sharing a 3,000-token system
/// prompt (100 runs of one agent, one ticket each; the dataset's test follows)
/// cost what the estimate says, the first writing the prefix and the 99 others
/// reading it, and the saving agrees too, within 1%.
#[test]
fn a_hundred_calls_sharing_a_prefix_cost_and_save_what_the_estimate_said() {
    let server = FakeServer::start();
    server.count_like_the_estimate();
    let dir = tempfile::tempdir().unwrap();
    // Claude Sonnet 4.5's prices, with no context window to check: a run then
    // counts no tokens itself, and a hundred of them stay quick.
    let yaml = triage(&server, "anthropic/claude-sonnet-4-5", "").replace(
        "key: \"env:ANTHROPIC_KEY\"}",
        "key: \"env:ANTHROPIC_KEY\", pricing: {claude-sonnet-4-5: {input: 3, output: 15, cache_read: 0.3, cache_write: 3.75}}}",
    );
    assert!(yaml.contains("pricing:"), "{yaml}");
    let estimate = estimate(dir.path(), &yaml, "T100");
    let a = &estimate["agents"][0];
    let cache = &a["prompt_cache"];
    let prefix = cache["prefix_tokens"].as_u64().unwrap();
    assert!(prefix >= 3_000, "a 3,000-token shared prompt: {cache:#}");
    // The estimate of one call includes its write; every later call reads instead.
    let first_extra = cache["first_call_extra"].as_f64().unwrap();
    let later_saving = cache["later_call_saving"].as_f64().unwrap();
    let one = a["expected_usd"].as_f64().unwrap();
    let calls = 100.0;
    let estimated_total = one + (calls - 1.0) * (one - first_extra - later_saving);
    let estimated_saving = (calls - 1.0) * later_saving - first_extra;

    let cost_of = |i: usize| {
        let out = run_ticket(dir.path(), &yaml, &format!("T{}", 100 + i), &["-q"]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let a = agent(&record(&out), "triage").clone();
        (
            a["cost_usd"].as_f64().unwrap(),
            a["cache_saved_usd"].as_f64().unwrap(),
        )
    };
    // The first call writes the prefix; the 99 others read it, four at a time.
    let mut costs = vec![cost_of(0)];
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..4)
            .map(|w| {
                s.spawn(move || {
                    (1..100)
                        .filter(|i| i % 4 == w)
                        .map(cost_of)
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for w in workers {
            costs.extend(w.join().unwrap());
        }
    });
    let total: f64 = costs.iter().map(|c| c.0).sum();
    let saved: f64 = costs.iter().map(|c| c.1).sum();
    let bills = server.billed();
    assert_eq!(bills.iter().filter(|(_, b)| b.cache_write > 0).count(), 1);
    assert_eq!(bills.iter().filter(|(_, b)| b.cache_read > 0).count(), 99);
    let close = |a: f64, b: f64| (a - b).abs() <= 0.01 * b.abs();
    assert!(
        close(total, estimated_total),
        "spent {total}, estimated {estimated_total}"
    );
    assert!(
        close(saved, estimated_saving),
        "saved {saved}, estimated {estimated_saving}"
    );
    assert!(
        saved > 0.8 * total,
        "caching saved most of it: {saved} of {total}"
    );
}

/// `estimate --each` of 100 tickets sharing the rules: one write with the first
/// row, 99 reads, and the saving said; the maximum assumes nothing is cached.
#[test]
fn a_dataset_estimate_writes_the_prefix_once_and_reads_it_for_the_other_rows() {
    let server = FakeServer::start();
    let dir = tempfile::tempdir().unwrap();
    let yaml = triage(&server, "anthropic/claude-sonnet-4-5", "");
    let one = estimate(dir.path(), &yaml, "7");
    let cache = &one["agents"][0]["prompt_cache"];
    let (extra, saving) = (
        cache["first_call_extra"].as_f64().unwrap(),
        cache["later_call_saving"].as_f64().unwrap(),
    );
    assert!(extra > 0.0 && saving > 0.0, "{one}");
    let rows = (0..100).fold(String::new(), |mut rows, n| {
        let _ = writeln!(rows, "{{\"ticket\": \"{n:03}\"}}");
        rows
    });
    std::fs::write(dir.path().join("tickets.jsonl"), rows).unwrap();
    std::fs::write(
        dir.path().join("off.yaml"),
        triage(&server, "anthropic/claude-sonnet-4-5", "    cache: off\n"),
    )
    .unwrap();
    let each = |file: &str, json: bool| {
        let out = byok_flow(dir.path())
            .args(["estimate", file, "--each", "tickets.jsonl"])
            .args(json.then_some("--json"))
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let all: Value = serde_json::from_str(&each("estimate.yaml", true)).unwrap();
    let off: Value = serde_json::from_str(&each("off.yaml", true)).unwrap();
    assert_eq!(off["agents"][0].get("prompt_cache"), None, "{off}");
    let agent = &all["agents"][0];
    assert_eq!(agent["prompt_cache"]["reads"], 99, "{all}");
    assert_eq!(
        agent["prompt_cache"]["prefix_tokens"],
        cache["prefix_tokens"]
    );
    // Against no caching: one write's premium, 99 reads' saving.
    let uncached = off["total"]["expected_usd"].as_f64().unwrap();
    let want = uncached + extra - 99.0 * saving;
    let got = all["total"]["expected_usd"].as_f64().unwrap();
    // The JSON rounds each dollar figure to the micro-dollar: 99 of them.
    let close = |a: f64, b: f64| (a - b).abs() < 1e-4;
    assert!(close(got, want), "{got} != {want}");
    let said = agent["prompt_cache"]["saving_usd"].as_f64().unwrap();
    assert!(close(said, 99.0 * saving - extra), "{said}");
    assert!(close(uncached - got, said), "{uncached} - {got} != {said}");
    assert!(got < uncached * 0.7, "{got} against {uncached} uncached");
    // The maximum is every row's, as if nothing were cached.
    let row_max = all["dearest"]["max_usd"].as_f64().unwrap();
    assert!(all["total"]["max_usd"].as_f64().unwrap() >= 99.0 * row_max);
    let text = each("estimate.yaml", false);
    assert!(
        text.contains("Prompt cache: `triage` sends a ")
            && text.contains("the other 99 read it: $")
            && text.contains("saved against no caching"),
        "{text}"
    );
}

/// Issue 15, item 9: a 100-row dataset whose rows share a 3,000-token system
/// prompt costs and saves what `estimate --each` said, within 1%, and its closing
/// table shows the cache-read and cache-write tokens and the saving.
#[test]
fn a_hundred_row_dataset_costs_and_saves_what_its_estimate_said_and_its_table_shows_it() {
    let server = FakeServer::start();
    server.count_like_the_estimate();
    let dir = tempfile::tempdir().unwrap();
    let yaml = triage(&server, "anthropic/claude-sonnet-4-5", "").replace(
        "key: \"env:ANTHROPIC_KEY\"}",
        "key: \"env:ANTHROPIC_KEY\", pricing: {claude-sonnet-4-5: {input: 3, output: 15, cache_read: 0.3, cache_write: 3.75}}}",
    );
    std::fs::write(dir.path().join("flow.yaml"), &yaml).unwrap();
    let rows = (0..100).fold(String::new(), |mut rows, n| {
        let _ = writeln!(rows, "{{\"ticket\": \"T{}\"}}", 100 + n);
        rows
    });
    std::fs::write(dir.path().join("tickets.jsonl"), rows).unwrap();
    let host = server.addr.to_string();
    let each = |command: &str, extra: &[&str]| {
        let out = byok_flow(dir.path())
            .args([command, "flow.yaml", "--each", "tickets.jsonl", "--json"])
            .args(extra)
            .env("ANTHROPIC_KEY", ANTHROPIC_KEY)
            .timeout(std::time::Duration::from_mins(2))
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    };
    let estimate: Value = serde_json::from_slice(&each("estimate", &[]).stdout).unwrap();
    let cache = &estimate["agents"][0]["prompt_cache"];
    assert!(
        cache["prefix_tokens"].as_u64().unwrap() >= 3_000,
        "{cache:#}"
    );
    assert_eq!(cache["reads"], 99, "{cache:#}");
    let estimated_total = estimate["total"]["expected_usd"].as_f64().unwrap();
    let estimated_saving = cache["saving_usd"].as_f64().unwrap();

    // One row at a time, so the first writes the prefix before any other reads it.
    let out = each(
        "run",
        &["--no-cache", "--concurrency", "1", "--allow-host", &host],
    );
    let record: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(record["rows"]["succeeded"], 100, "{record:#}");
    let bills = server.billed();
    assert_eq!(bills.iter().filter(|(_, b)| b.cache_write > 0).count(), 1);
    assert_eq!(bills.iter().filter(|(_, b)| b.cache_read > 0).count(), 99);
    let total = record["cost_usd"].as_f64().unwrap();
    let saved = record["cache_saved_usd"].as_f64().unwrap();
    assert_eq!(
        record["agents"][0]["cache_saved_usd"],
        record["cache_saved_usd"]
    );
    let close = |a: f64, b: f64| (a - b).abs() <= 0.01 * b.abs();
    assert!(
        close(total, estimated_total),
        "spent {total}, estimated {estimated_total}"
    );
    assert!(
        close(saved, estimated_saving),
        "saved {saved}, estimated {estimated_saving}"
    );
    assert!(
        saved > 0.8 * total,
        "caching saved most of it: {saved} of {total}"
    );

    let stderr = String::from_utf8_lossy(&out.stderr);
    let table = &stderr[1 + stderr
        .find("\nagent ")
        .unwrap_or_else(|| panic!("{stderr}"))..];
    let mut settings = insta::Settings::clone_current();
    for (from, to) in &crate::support::filters(&[]) {
        settings.add_filter(from, to.as_str());
    }
    settings.set_prepend_module_to_snapshot(false);
    settings.bind(|| insta::assert_snapshot!("prompt_cache_dataset_closing_table", table));
    assert!(
        table.contains(&format!(
            "; saved ${saved:.4} against no caching.\n100 rows: 100 succeeded."
        )),
        "{table}"
    );
}
