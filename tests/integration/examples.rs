//! Every example workflow validates against the committed schema and byok-flow's
//! own checks, and runs end to end with `--mock`.

use std::path::PathBuf;

use crate::support::{byok_flow, repo};

fn examples() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo().join("workflows"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 3,
        "expected the example workflows, found {files:?}"
    );
    files
}

/// Inputs each example needs, written into the temp dir as files where useful.
fn inputs_for(file: &std::path::Path, dir: &std::path::Path) -> Vec<String> {
    let text = std::fs::read_to_string(file).unwrap();
    let mut args = Vec::new();
    if text.contains("inputs.topic") {
        args.push("topic=Rust async runtimes".to_string());
    }
    if text.contains("inputs.ticket") {
        args.push("ticket=My invoice is wrong.".to_string());
    }
    if text.contains("inputs.product") {
        args.push("product=an open-source feature-flag service".to_string());
    }
    if text.contains("inputs.diff") {
        let diff = dir.join("changes.diff");
        std::fs::write(
            &diff,
            "--- a/src/lib.rs\n+++ b/src/lib.rs\n@@ -1 +1 @@\n-fn a() {}\n+fn a() -> u8 { 1 }\n",
        )
        .unwrap();
        args.push(format!("diff=@{}", diff.display()));
    }
    args
}

/// The examples are what users copy: each declares its outputs and gives every
/// agent an expected output size, so `estimate` has something real to add up.
#[test]
fn examples_declare_outputs_and_expected_sizes() {
    for file in examples() {
        let text = std::fs::read_to_string(&file).unwrap();
        let value: serde_json::Value = serde_saphyr::from_str(&text).unwrap();
        let name = file.display();
        assert!(
            value["outputs"].as_object().is_some_and(|o| !o.is_empty()),
            "{name} declares no outputs"
        );
        for (agent, spec) in value["agents"].as_object().unwrap() {
            assert!(
                spec["expected_output_tokens"].is_u64(),
                "{name}: agent `{agent}` has no expected_output_tokens"
            );
        }
    }
}

#[test]
fn examples_match_the_committed_schema() {
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("schemas/workflow.schema.json")).unwrap(),
    )
    .unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    for file in examples() {
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(
            text.starts_with("# yaml-language-server: $schema=../schemas/workflow.schema.json"),
            "{} lacks the schema modeline",
            file.display()
        );
        let value: serde_json::Value = serde_saphyr::from_str(&text).unwrap();
        let errors: Vec<String> = validator
            .iter_errors(&value)
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{}: {errors:?}", file.display());
    }
}

#[test]
fn examples_validate_and_run_with_mock() {
    for file in examples() {
        let home = tempfile::tempdir().unwrap();
        let out = byok_flow(home.path())
            .arg("validate")
            .arg(&file)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}: {}",
            file.display(),
            String::from_utf8_lossy(&out.stderr)
        );

        let mut cmd = byok_flow(home.path());
        cmd.arg("run").arg(&file).arg("--mock");
        for input in inputs_for(&file, home.path()) {
            cmd.arg("--input").arg(input);
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{}: {}",
            file.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            !out.stdout.is_empty(),
            "{} printed no result",
            file.display()
        );
    }
}

/// The README's worked example: `workflows/triage.yaml` over the 20 tickets of
/// `examples/tickets.jsonl`, with `--mock`, one result line per ticket, in order.
#[test]
fn the_triage_example_runs_over_its_tickets() {
    let home = tempfile::tempdir().unwrap();
    let out = byok_flow(home.path())
        .arg("run")
        .arg(repo().join("workflows/triage.yaml"))
        .arg("--each")
        .arg(repo().join("examples/tickets.jsonl"))
        .arg("--mock")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 20);
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(line["row"], i);
        assert_eq!(line["status"], "succeeded");
        assert!(
            line["outputs"]["reply"]
                .as_str()
                .unwrap()
                .contains("Draft a reply to")
        );
    }
}

/// `workflows/support-faq.yaml` shares a long handbook over the tickets: its
/// dataset estimate writes the prefix once and reads it for the other 19.
#[test]
fn the_support_faq_example_estimates_its_prompt_cache_saving() {
    let home = tempfile::tempdir().unwrap();
    let out = byok_flow(home.path())
        .arg("estimate")
        .arg(repo().join("workflows/support-faq.yaml"))
        .arg("--each")
        .arg(repo().join("examples/tickets.jsonl"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("Prompt cache: `answer` sends a ")
            && text.contains("the other 19 read it: $")
            && text.contains("saved against no caching"),
        "{text}"
    );
}

/// `workflows/support-faq.yaml` over the tickets under `--mock`: the closing table
/// has the cache-read and cache-write columns, and the line of what caching would
/// save at the model's prices (a mock run costs nothing).
#[test]
fn the_support_faq_example_shows_its_prompt_cache_saving_in_its_closing_table() {
    let home = tempfile::tempdir().unwrap();
    let out = byok_flow(home.path())
        .arg("run")
        .arg(repo().join("workflows/support-faq.yaml"))
        .arg("--each")
        .arg(repo().join("examples/tickets.jsonl"))
        .args(["--mock", "--concurrency", "1"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let table = &stderr[1 + stderr
        .find("\nagent ")
        .unwrap_or_else(|| panic!("{stderr}"))..];
    let filters = crate::support::filters(&[]);
    let mut settings = insta::Settings::clone_current();
    for (from, to) in &filters {
        settings.add_filter(from, to.as_str());
    }
    settings.set_prepend_module_to_snapshot(false);
    settings.bind(|| insta::assert_snapshot!("support_faq_mock_closing_table", table));
    assert!(
        table.contains("cache read  cache write")
            && table.contains("at the models' prices it would save $"),
        "{table}"
    );
}
