//! What a run will cost (`estimate`, `run --dry-run`), the budget, and `prices`, as
//! the user sees them.

use std::path::PathBuf;

use crate::snapshot;
use crate::support::{byok_flow, example, repo};

fn fixture(name: &str) -> PathBuf {
    repo().join("tests/fixtures/cost").join(name)
}

#[test]
fn estimate_research() {
    let home = tempfile::tempdir().unwrap();
    let out = byok_flow(home.path())
        .arg("estimate")
        .arg(example("research.yaml"))
        .args(["--input", "topic=Rust async runtimes"])
        .output()
        .unwrap();
    snapshot!("estimate_research", out);
}

#[test]
fn estimate_research_json() {
    let home = tempfile::tempdir().unwrap();
    let out = byok_flow(home.path())
        .arg("estimate")
        .arg(example("research.yaml"))
        .args(["--input", "topic=Rust async runtimes", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    insta::assert_json_snapshot!("estimate_research_json", json);
}

#[test]
fn dry_run_is_estimate() {
    let home = tempfile::tempdir().unwrap();
    let run = |command: &[&str]| {
        byok_flow(home.path())
            .args(command)
            .arg(example("research.yaml"))
            .args(["--input", "topic=Rust async runtimes", "--max-usd", "0.02"])
            .output()
            .unwrap()
    };
    let estimate = run(&["estimate"]);
    let dry_run = run(&["run", "--dry-run"]);
    assert_eq!(estimate.status.code(), Some(3));
    assert_eq!(estimate.status.code(), dry_run.status.code());
    assert_eq!(estimate.stdout, dry_run.stdout);
    assert_eq!(estimate.stderr, dry_run.stderr);
}

#[test]
fn estimate_with_unpriced_models() {
    let home = tempfile::tempdir().unwrap();
    let out = byok_flow(home.path())
        .arg("estimate")
        .arg(fixture("unpriced.yaml"))
        .output()
        .unwrap();
    snapshot!("estimate_unpriced", out);
}

#[test]
fn unpriced_models_cannot_be_held_to_a_budget() {
    let home = tempfile::tempdir().unwrap();
    let out = byok_flow(home.path())
        .args(["-q", "run"])
        .arg(fixture("unpriced.yaml"))
        .args(["--max-usd", "1"])
        .output()
        .unwrap();
    snapshot!("run_unpriced_with_budget", out);
}

#[test]
fn run_refuses_to_start_over_budget() {
    let home = tempfile::tempdir().unwrap();
    let out = byok_flow(home.path())
        .arg("run")
        .arg(example("research.yaml"))
        .args(["--input", "topic=Rust async runtimes", "--max-usd", "$0.02"])
        .output()
        .unwrap();
    snapshot!("run_over_budget", out);
}

#[test]
fn prompt_over_the_context_window_is_an_error_before_any_spend() {
    let home = tempfile::tempdir().unwrap();
    let out = byok_flow(home.path())
        .arg("run")
        .arg(fixture("context-window.yaml"))
        .args(["--input", &format!("text={}", "word ".repeat(200))])
        .output()
        .unwrap();
    snapshot!("run_context_window", out);
}

#[test]
fn budget_skips_agents_that_could_overshoot_and_their_dependents() {
    let home = tempfile::tempdir().unwrap();
    let out = byok_flow(home.path())
        .arg("run")
        .arg(fixture("simulated-budget.yaml"))
        .args(["--concurrency", "1"])
        .output()
        .unwrap();
    snapshot!("run_simulated_budget", out);
    let estimate = byok_flow(home.path())
        .arg("estimate")
        .arg(fixture("simulated-budget.yaml"))
        .output()
        .unwrap();
    snapshot!("estimate_simulated_budget", estimate);
}

#[test]
fn mock_runs_cost_nothing_whatever_the_budget() {
    let home = tempfile::tempdir().unwrap();
    let out = byok_flow(home.path())
        .args(["run", "--mock", "--json"])
        .arg(fixture("simulated-budget.yaml"))
        .args(["--max-usd", "0"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let record: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(record["cost_usd"], 0.0);
    assert_eq!(record["budget_usd"], 0.0);
}

#[test]
fn validate_warns_about_unpriced_models() {
    let home = tempfile::tempdir().unwrap();
    let out = byok_flow(home.path())
        .arg("validate")
        .arg(fixture("unpriced.yaml"))
        .output()
        .unwrap();
    snapshot!("validate_unpriced", out);
}

#[test]
fn prices_of_one_model() {
    let home = tempfile::tempdir().unwrap();
    let out = byok_flow(home.path())
        .args(["prices", "anthropic/claude-3-5-sonnet-latest"])
        .output()
        .unwrap();
    snapshot!("prices_claude_3_5_sonnet", out);
    let out = byok_flow(home.path())
        .args(["prices", "claude-sonnet-4-20250514"])
        .output()
        .unwrap();
    snapshot!("prices_claude_sonnet_4", out);
}

#[test]
fn prices_of_one_model_as_json() {
    let home = tempfile::tempdir().unwrap();
    let out = byok_flow(home.path())
        .args(["prices", "gpt-4o", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    insta::assert_json_snapshot!("prices_gpt_4o_json", json);
}

#[test]
fn prices_of_an_unknown_model() {
    let home = tempfile::tempdir().unwrap();
    let out = byok_flow(home.path())
        .args(["prices", "gpt4o"])
        .output()
        .unwrap();
    snapshot!("prices_unknown", out);
}

#[test]
fn prices_of_one_provider() {
    let home = tempfile::tempdir().unwrap();
    let out = byok_flow(home.path())
        .args(["prices", "deepseek"])
        .output()
        .unwrap();
    snapshot!("prices_deepseek", out);
}

#[test]
fn prices_from_a_file() {
    let home = tempfile::tempdir().unwrap();
    let out = byok_flow(home.path())
        .arg("prices")
        .arg("--prices")
        .arg(fixture("prices.json"))
        .output()
        .unwrap();
    snapshot!("prices_from_file", out);
    let estimate = byok_flow(home.path())
        .arg("estimate")
        .arg(example("research.yaml"))
        .args(["--input", "topic=Rust async runtimes", "--prices"])
        .arg(fixture("prices.json"))
        .output()
        .unwrap();
    snapshot!("estimate_with_prices_file", estimate);
}

#[test]
fn the_builtin_table_lists_every_model_with_its_source_and_date() {
    let home = tempfile::tempdir().unwrap();
    let out = byok_flow(home.path()).arg("prices").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with(
        "Prices: built-in table: LiteLLM model cost map (BerriAI/litellm model_prices_and_context_window.json), 2026-07-24.\n"
    ));
    for provider in [
        "anthropic",
        "openai",
        "gemini",
        "mistral",
        "groq",
        "deepseek",
        "together",
        "xai",
        "openrouter",
    ] {
        assert!(
            text.lines().any(|l| l.starts_with(&format!("{provider}/"))),
            "no {provider} models"
        );
    }
    assert!(text.lines().count() > 300);
}
