//! `byok-flow runs list | show | spend`: the run history, filled by real runs against
//! the fake provider server and `--mock` runs, each output snapshotted.

use std::path::Path;
use std::process::Output;

use serde_json::Value;

use crate::providers::{ANTHROPIC_KEY, GEMINI_KEY, OPENAI_KEY, workflow};
use crate::support::fake::{FakeServer, Fault};
use crate::support::{byok_flow_process, filters, transcript};

const FLOW: &str = "  researcher:
    model: anthropic/claude-sonnet-4-5
    prompt: \"marker-r Research the topic\"
    max_tokens: 100
  writer:
    model: openai/gpt-4o
    prompt: \"marker-w Write from {{agents.researcher.output}}\"
    max_tokens: 100
  checker:
    model: gemini/gemini-3.5-flash
    prompt: \"marker-c Check {{agents.writer.output}}\"
    max_tokens: 100
";

fn run(dir: &Path, server: &FakeServer, args: &[&str]) -> Output {
    byok_flow_process(dir)
        .arg("run")
        .arg(dir.join("flow.yaml"))
        .args(["-q", "--allow-host", &server.addr.to_string()])
        .args(args)
        .env("ANTHROPIC_KEY", ANTHROPIC_KEY)
        .env("OPENAI_KEY", OPENAI_KEY)
        .env("GEMINI_KEY", GEMINI_KEY)
        .env("BYOK_FLOW_BACKOFF_SCALE", "0")
        .output()
        .unwrap()
}

fn runs(dir: &Path, args: &[&str]) -> Output {
    byok_flow_process(dir)
        .arg("runs")
        .args(args)
        .output()
        .unwrap()
}

/// Snapshots with the standard filters plus days (`--since` defaults to this month).
fn snap(name: &str, out: &Output) {
    let mut settings = insta::Settings::clone_current();
    for (from, to) in filters(&[(r"\b\d{4}-\d\d-\d\d\b", "[DAY]")]) {
        settings.add_filter(&from, to.as_str());
    }
    settings.set_prepend_module_to_snapshot(false);
    settings.bind(|| insta::assert_snapshot!(name, transcript(out)));
}

/// A history with four runs of one workflow: a paid one, the same again (all
/// cached), one where `checker` fails, and a `--mock` one.
fn history() -> (FakeServer, tempfile::TempDir, Vec<String>) {
    let server = FakeServer::start();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("flow.yaml"), workflow(&server, FLOW)).unwrap();
    assert_eq!(run(dir.path(), &server, &[]).status.code(), Some(0));
    assert_eq!(run(dir.path(), &server, &[]).status.code(), Some(0));
    server.script("marker-c", [Fault::status(400)]);
    assert_eq!(
        run(dir.path(), &server, &["--no-cache"]).status.code(),
        Some(1)
    );
    assert_eq!(run(dir.path(), &server, &["--mock"]).status.code(), Some(0));
    let list: Value =
        serde_json::from_slice(&runs(dir.path(), &["list", "--json"]).stdout).unwrap();
    let ids = list
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["run_id"].as_str().unwrap().to_string())
        .collect();
    (server, dir, ids)
}

#[test]
fn runs_list_show_and_spend() {
    let (_server, dir, ids) = history();
    let out = runs(dir.path(), &["list"]);
    snap("runs_list", &out);
    let out = runs(dir.path(), &["list", "--limit", "1"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 3);

    // Newest first: the mock run, the failed one, the cached one, the first.
    snap("runs_show_paid", &runs(dir.path(), &["show", &ids[3]]));
    snap("runs_show_cached", &runs(dir.path(), &["show", &ids[2]]));
    snap("runs_show_failed", &runs(dir.path(), &["show", &ids[1]]));
    // A unique start of an id is enough.
    let prefix = &ids[1][..ids[1].len() - 2];
    let by_prefix = runs(dir.path(), &["show", prefix]);
    if ids.iter().filter(|id| id.starts_with(prefix)).count() == 1 {
        assert_eq!(
            by_prefix.stdout,
            runs(dir.path(), &["show", &ids[1]]).stdout
        );
    }
    let json: Value =
        serde_json::from_slice(&runs(dir.path(), &["show", &ids[3], "--json"]).stdout).unwrap();
    assert_eq!(json["agents"].as_array().unwrap().len(), 3);
    assert!(json["cost_usd"].as_f64().unwrap() > 0.0);

    snap("runs_spend_by_provider", &runs(dir.path(), &["spend"]));
    snap(
        "runs_spend_by_model_with_mock",
        &runs(dir.path(), &["spend", "--by", "model", "--include-mock"]),
    );
    snap(
        "runs_spend_by_workflow_since",
        &runs(dir.path(), &["spend", "--by", "workflow", "--since", "30d"]),
    );
    let spend: Value =
        serde_json::from_slice(&runs(dir.path(), &["spend", "--json"]).stdout).unwrap();
    let groups: Vec<&str> = spend["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["group"].as_str().unwrap())
        .collect();
    assert_eq!(groups, ["anthropic", "openai", "gemini"]);
    // Nothing spent in the future.
    let out = runs(dir.path(), &["spend", "--since", "2999-01-01"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("Nothing was spent."));
}

#[test]
fn runs_mistakes_and_an_empty_history() {
    let dir = tempfile::tempdir().unwrap();
    snap("runs_list_empty", &runs(dir.path(), &["list"]));
    snap(
        "runs_show_unknown",
        &runs(dir.path(), &["show", "1700000000-abcdef"]),
    );
    snap(
        "runs_spend_bad_since",
        &runs(dir.path(), &["spend", "--since", "last tuesday"]),
    );
    assert!(
        !dir.path().join(".local").exists(),
        "reading an absent history makes no file"
    );
    // A file that is not a history is an error, not a panic.
    let bad = dir.path().join("history.sqlite");
    std::fs::write(
        &bad,
        "not a database, but long enough to look like a header....",
    )
    .unwrap();
    let out = runs(dir.path(), &["list", "--history", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("history.sqlite"));
}

#[test]
fn a_history_that_cannot_be_written_never_fails_a_run() {
    let server = FakeServer::start();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("flow.yaml"), workflow(&server, FLOW)).unwrap();
    // A folder where the history file should be.
    let history = dir.path().join("history.sqlite");
    std::fs::create_dir(&history).unwrap();
    let out = byok_flow_process(dir.path())
        .arg("run")
        .arg(dir.path().join("flow.yaml"))
        .args(["--mock", "--history", history.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("warning: this run is not recorded in the history"),
        "{stderr}"
    );
}
