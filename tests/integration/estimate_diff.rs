//! `byok-flow estimate FILE --diff REF`: the workflow at a git ref against the
//! working tree, as a table, Markdown (a pull-request comment) and JSON.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

use crate::run::TIMEOUT;
use crate::support::{byok_flow, example, transcript};

fn git(dir: &Path, args: &[&str]) {
    let status = Command::new("git")
        .current_dir(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
        .status()
        .expect("git (install it: this test is ignored without it)");
    assert!(status.success(), "git {args:?}");
}

/// A repository whose `main` holds the example research workflow, changed in
/// the working tree: the researcher moves to another model, the editor is
/// removed, a summary is added.
fn repository() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    git(root, &["init", "-q", "-b", "main"]);
    std::fs::create_dir_all(root.join("workflows")).unwrap();
    let text = std::fs::read_to_string(example("research.yaml")).unwrap();
    let old = text.replace(
        "model: anthropic/claude-sonnet-4-6",
        "model: anthropic/claude-sonnet-4-5",
    );
    assert_ne!(
        old, text,
        "the example's researcher moved: update this test"
    );
    std::fs::write(root.join("workflows/research.yaml"), &old).unwrap();
    git(root, &["add", "."]);
    git(root, &["commit", "-q", "-m", "research"]);
    let editor = old.find("  editor:").unwrap();
    let outputs = old.find("outputs:").unwrap();
    let new = format!(
        "{}  summary:\n    model: openai/gpt-5.4-mini\n    prompt: \"Sum up: {{{{agents.writer.output}}}}\"\n    max_tokens: 300\n\noutputs:\n  article: \"{{{{agents.summary.output}}}}\"\n",
        &old[..editor]
    )
    .replace("model: anthropic/claude-sonnet-4-5", "model: anthropic/claude-haiku-4-5");
    assert!(new.len() < outputs + 400);
    std::fs::write(root.join("workflows/research.yaml"), new).unwrap();
    dir
}

fn estimate(dir: &Path, args: &[&str]) -> Output {
    byok_flow(dir)
        .arg("estimate")
        .args(args)
        .timeout(TIMEOUT)
        .output()
        .unwrap()
}

#[test]
#[ignore = "needs git"]
fn a_changed_workflow_is_compared_agent_by_agent() {
    let dir = repository();
    let json = estimate(
        dir.path(),
        &[
            "workflows/research.yaml",
            "--diff",
            "main",
            "--format",
            "json",
        ],
    );
    assert_eq!(json.status.code(), Some(0), "{}", transcript(&json));
    let diff: Value = serde_json::from_slice(&json.stdout).unwrap();
    let changes: Vec<(&str, &str)> = diff["agents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["name"].as_str().unwrap(), a["change"].as_str().unwrap()))
        .collect();
    assert_eq!(
        changes,
        [
            ("researcher", "changed"),
            ("writer", "unchanged"),
            ("summary", "added"),
            ("editor", "removed")
        ]
    );
    assert_eq!(
        diff["agents"][0]["before"]["model"],
        "anthropic/claude-sonnet-4-5"
    );
    assert_eq!(
        diff["agents"][0]["after"]["model"],
        "anthropic/claude-haiku-4-5"
    );
    let before = diff["before"]["expected_usd"].as_f64().unwrap();
    let after = diff["after"]["expected_usd"].as_f64().unwrap();
    let delta = diff["expected"]["usd"].as_f64().unwrap();
    assert!((after - before - delta).abs() < 2e-6, "{diff}");
    let percent = diff["expected"]["percent"].as_f64().unwrap();
    assert!((percent - delta / before * 100.0).abs() < 0.1, "{diff}");
    assert_eq!(diff["empty_inputs"], serde_json::json!(["topic"]));

    let table = estimate(dir.path(), &["workflows/research.yaml", "--diff", "main"]);
    assert_eq!(table.status.code(), Some(0), "{}", transcript(&table));
    crate::snapshot!("estimate_diff_table", table);
    let markdown = estimate(
        dir.path(),
        &[
            "workflows/research.yaml",
            "--diff",
            "main",
            "--format",
            "markdown",
            "--input",
            "topic=prompt caching",
        ],
    );
    assert_eq!(markdown.status.code(), Some(0), "{}", transcript(&markdown));
    crate::snapshot!("estimate_diff_markdown", markdown);
}

#[test]
#[ignore = "needs git"]
fn a_new_file_a_bad_ref_and_an_invalid_base() {
    let dir = repository();
    std::fs::copy(
        dir.path().join("workflows/research.yaml"),
        dir.path().join("workflows/new.yaml"),
    )
    .unwrap();
    let out = estimate(
        dir.path(),
        &["workflows/new.yaml", "--diff", "main", "--json"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
    let diff: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(diff["before"].is_null());
    assert!(
        diff["agents"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["change"] == "added")
    );

    let out = estimate(dir.path(), &["workflows/research.yaml", "--diff", "nope"]);
    assert_eq!(out.status.code(), Some(2), "{}", transcript(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("`nope` is not a commit git knows"));
    let out = estimate(
        dir.path(),
        &["workflows/research.yaml", "--diff", "--output=x"],
    );
    assert_eq!(out.status.code(), Some(2), "{}", transcript(&out));

    std::fs::write(
        dir.path().join("workflows/research.yaml"),
        "version: 1\nagents: {}\n",
    )
    .unwrap();
    git(dir.path(), &["commit", "-q", "-am", "broken"]);
    std::fs::copy(
        example("research.yaml"),
        dir.path().join("workflows/research.yaml"),
    )
    .unwrap();
    let out = estimate(dir.path(), &["workflows/research.yaml", "--diff", "HEAD"]);
    assert_eq!(out.status.code(), Some(2), "{}", transcript(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("HEAD:workflows/research.yaml"),
        "{}",
        transcript(&out)
    );
}

#[test]
fn format_goes_with_diff() {
    let dir = tempfile::tempdir().unwrap();
    let out = byok_flow(dir.path())
        .arg("estimate")
        .arg(example("research.yaml"))
        .args(["--format", "markdown"])
        .timeout(TIMEOUT)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", transcript(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--diff"));
}
