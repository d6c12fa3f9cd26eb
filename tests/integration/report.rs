//! The HTML report (SPEC §10): `run --report FILE`, `byok-flow report RUN_ID |
//! run.json`, `graph --format svg`; runs that fail, retry and stop at their
//! budget. The tests that open it in a real browser are in `browser.rs`.

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;

use crate::run::{TIMEOUT, run_mock, text, write};
use crate::support::fake::{FakeServer, Fault};
use crate::support::{byok_flow, example, transcript};

const TOPIC: &str = "topic=Rust async runtimes";

/// `byok-flow ARGS...` from `home`, with its history in `home`.
pub fn cmd(home: &Path, args: &[&str]) -> Output {
    byok_flow(home)
        .args(args)
        .env("BYOK_FLOW_HISTORY", home.join("history.sqlite"))
        .timeout(TIMEOUT)
        .output()
        .unwrap()
}

/// Runs `file` with the mock, its history in `home`.
fn mock_run(home: &Path, file: &Path, args: &[&str]) -> Output {
    byok_flow(home)
        .arg("run")
        .arg(file)
        .arg("--mock")
        .args(args)
        .env("BYOK_FLOW_HISTORY", home.join("history.sqlite"))
        .timeout(TIMEOUT)
        .output()
        .unwrap()
}

/// A workflow of `n` agents: a planner, `n - 2` workers it feeds (every tenth
/// also waiting for the one before it, with `needs:`), and a summary that reads
/// every tenth worker.
pub fn wide_workflow(n: usize) -> String {
    let workers = n - 2;
    let mut yaml = String::from(
        "version: 1\nname: wide\nproviders:\n  mock:\n    latency: 5ms\nagents:\n  planner:\n    model: mock/planner\n    prompt: Plan the work.\n",
    );
    for i in 0..workers {
        yaml.push_str(&format!(
            "  worker-{i:03}:\n    model: mock/worker\n    prompt: \"Item {i}: {{{{agents.planner.output}}}}\"\n"
        ));
        if i % 10 == 5 {
            yaml.push_str(&format!("    needs: [worker-{:03}]\n", i - 1));
        }
    }
    let read: Vec<String> = (0..workers)
        .step_by(10)
        .map(|i| format!("{{{{agents.worker-{i:03}.output}}}}"))
        .collect();
    yaml.push_str(&format!(
        "  summary:\n    model: mock/summary\n    prompt: \"Sum up: {}\"\n",
        read.join(" ")
    ));
    yaml
}

/// The page, read from `path`.
fn page(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap()
}

/// Each agent box's `x,y` in a squad drawing, by agent name.
fn boxes(svg: &str) -> Vec<(String, String)> {
    svg.split("<g class=\"node\" data-agent=\"")
        .skip(1)
        .map(|part| {
            let name = part.split('"').next().unwrap().to_string();
            let rect = part.split("<rect ").nth(1).unwrap();
            let attr = |a: &str| {
                rect.split(&format!("{a}=\""))
                    .nth(1)
                    .unwrap()
                    .split('"')
                    .next()
                    .unwrap()
                    .to_string()
            };
            (name, format!("{},{}", attr("x"), attr("y")))
        })
        .collect()
}

#[test]
fn run_report_and_report_of_its_record_are_the_same_page() {
    let home = tempfile::tempdir().unwrap();
    let out = mock_run(
        home.path(),
        &example("research.yaml"),
        &[
            "--input",
            TOPIC,
            "--out",
            "out",
            "--report",
            "pages/run.html",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
    let written = page(&home.path().join("pages/run.html"));
    assert!(written.contains("<h1><code>research</code> succeeded</h1>"));
    assert_eq!(written.matches("<g class=\"node\"").count(), 3);
    assert!(
        written.contains("Rust async runtimes"),
        "the input is shown"
    );

    // From the record file, and from the run id (the history keeps where it is).
    let from_file = cmd(home.path(), &["report", "out/run.json", "-o", "a.html"]);
    assert_eq!(
        from_file.status.code(),
        Some(0),
        "{}",
        transcript(&from_file)
    );
    assert_eq!(page(&home.path().join("a.html")), written);
    let record: Value = serde_json::from_str(&page(&home.path().join("out/run.json"))).unwrap();
    let id = record["run_id"].as_str().unwrap();
    let from_id = cmd(home.path(), &["report", &id[..12], "-o", "b.html"]);
    assert_eq!(from_id.status.code(), Some(0), "{}", transcript(&from_id));
    assert_eq!(page(&home.path().join("b.html")), written);
    assert!(
        text(&from_id.stderr).contains("wrote b.html ("),
        "{}",
        transcript(&from_id)
    );
    // No argument: the latest run; no `-o`: stdout.
    let latest = cmd(home.path(), &["report"]);
    assert_eq!(text(&latest.stdout), written);
}

#[test]
fn a_run_without_a_record_is_reported_from_the_history() {
    let home = tempfile::tempdir().unwrap();
    let out = mock_run(home.path(), &example("research.yaml"), &["--input", TOPIC]);
    assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
    let report = cmd(home.path(), &["report", "-o", "r.html"]);
    assert_eq!(report.status.code(), Some(0), "{}", transcript(&report));
    assert!(
        text(&report.stderr).contains("kept no record (it ran without `--out DIR`)"),
        "{}",
        transcript(&report)
    );
    let html = page(&home.path().join("r.html"));
    assert!(html.contains("Made from the run history"));
    assert!(
        !html.contains("Rust async runtimes"),
        "no input value is kept"
    );
    assert_eq!(html.matches("<g class=\"node\"").count(), 3);

    // A record that now holds another run is not taken for this one.
    let first = mock_run(
        home.path(),
        &example("research.yaml"),
        &["--input", TOPIC, "--out", "out"],
    );
    assert!(first.status.success());
    let first: Value = serde_json::from_str(&page(&home.path().join("out/run.json"))).unwrap();
    let second = mock_run(
        home.path(),
        &example("research.yaml"),
        &["--input", TOPIC, "--out", "out"],
    );
    assert!(second.status.success());
    let report = cmd(
        home.path(),
        &["report", first["run_id"].as_str().unwrap(), "-o", "r.html"],
    );
    assert!(
        text(&report.stderr).contains("now holds run"),
        "{}",
        transcript(&report)
    );
}

#[test]
fn a_bad_argument_says_what_and_how() {
    let home = tempfile::tempdir().unwrap();
    write(home.path(), "bad.json", "{\"run_id\": 3}\n");
    let out = cmd(home.path(), &["report", "bad.json"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("bad.json:1:"), "{stderr}");
    assert!(stderr.contains("not a byok-flow run record"), "{stderr}");
    assert!(stderr.contains("run --out DIR"), "{stderr}");

    let out = cmd(home.path(), &["report", "1234"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("no run history at"),
        "{}",
        transcript(&out)
    );

    let out = cmd(home.path(), &["report", "missing/run.json"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("cannot read missing/run.json"));
}

#[test]
fn graph_svg_is_the_drawing_the_report_shows() {
    let home = tempfile::tempdir().unwrap();
    let file = write(home.path(), "wide.yaml", &wide_workflow(40));
    let graph = cmd(home.path(), &["graph", "wide.yaml", "--format", "svg"]);
    assert_eq!(graph.status.code(), Some(0), "{}", transcript(&graph));
    let svg = text(&graph.stdout);
    assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"squad\""));
    assert_eq!(svg.matches("<g class=\"node\"").count(), 40);
    assert_eq!(svg.matches("class=\"edge order\"").count(), 4);
    let out = mock_run(home.path(), &file, &["--report", "r.html"]);
    assert!(out.status.success(), "{}", transcript(&out));
    let html = page(&home.path().join("r.html"));
    let drawn = boxes(&html[html.find("<svg xmlns").unwrap()..]);
    assert_eq!(boxes(&svg), drawn, "the same boxes in the same places");
}

#[test]
fn a_run_that_retried_and_failed_shows_its_waits_and_the_providers_message() {
    let server = FakeServer::start();
    server.script("marker-retry", [Fault::status(429)]);
    server.script("marker-broken", [Fault::status(400)]);
    let home = tempfile::tempdir().unwrap();
    let file = write(
        home.path(),
        "flow.yaml",
        &format!(
            "version: 1\nname: shaky\nproviders:\n  local: {{type: openai-compatible, base_url: \"{}/local/v1\", key: none, pricing: {{llama3.2: {{input: 1, output: 2}}}}}}\ndefaults: {{max_tokens: 100}}\nagents:\n  flaky:\n    model: local/llama3.2\n    prompt: marker-retry Say hello.\n  broken:\n    model: local/llama3.2\n    prompt: marker-broken Say hello.\n  after:\n    model: local/llama3.2\n    prompt: \"Go on from {{{{agents.broken.output}}}}\"\n",
            server.url()
        ),
    );
    let out = byok_flow(home.path())
        .arg("run")
        .arg(&file)
        .args(["--keep-going", "--no-cache", "--report", "r.html", "--json"])
        .env("BYOK_FLOW_HISTORY", home.path().join("history.sqlite"))
        .timeout(TIMEOUT)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", transcript(&out));
    let record: Value = serde_json::from_slice(&out.stdout).unwrap();
    let flaky = &record["agents"][0];
    assert_eq!(flaky["attempts"].as_array().unwrap().len(), 2);
    let timing = &flaky["timing"];
    for field in ["ready", "preparing", "started", "ended"] {
        assert!(timing[field].as_f64().is_some(), "{field}: {flaky}");
    }
    assert!(
        flaky["attempts"][1]["at"].as_f64().unwrap()
            >= flaky["attempts"][0]["seconds"].as_f64().unwrap()
    );
    let html = page(&home.path().join("r.html"));
    assert!(html.contains("1 agent failed"), "{html}");
    assert!(
        html.contains("flaky: waited"),
        "a retry wait on the timeline"
    );
    assert!(html.contains("before trying again"));
    let errors = &html[html.find("id=\"errors\"").unwrap()..html.find("id=\"agents\"").unwrap()];
    assert!(errors.contains("HTTP 400"), "{errors}");
    assert!(
        errors.contains("recovered"),
        "the retried agent is listed: {errors}"
    );
    assert!(
        errors.contains("did not succeed"),
        "the skipped one: {errors}"
    );
}

#[test]
fn a_budget_stopped_run_shows_the_budget_line_and_what_was_given_up() {
    let home = tempfile::tempdir().unwrap();
    let file = home.path().join("talk.yaml");
    std::fs::copy(
        crate::support::repo().join("tests/fixtures/cost/simulated-budget.yaml"),
        &file,
    )
    .unwrap();
    let out = byok_flow(home.path())
        .arg("run")
        .arg(&file)
        .args(["--concurrency", "1", "--report", "r.html"])
        .env("BYOK_FLOW_HISTORY", home.path().join("history.sqlite"))
        .timeout(TIMEOUT)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", transcript(&out));
    let html = page(&home.path().join("r.html"));
    assert!(html.contains("stopped at its budget</h1>"), "{html}");
    assert!(html.contains("The run stopped at its budget</strong> of $0.25"));
    assert!(
        html.contains("<title>budget $0.25</title>"),
        "the budget line"
    );
    assert!(html.contains("The estimate before the run:"));
    assert_eq!(
        html.matches("data-status=\"skipped for the budget\"")
            .count(),
        2
    );
}

#[test]
fn waiting_for_a_slot_is_on_the_timeline() {
    let home = tempfile::tempdir().unwrap();
    let file = write(
        home.path(),
        "two.yaml",
        "version: 1\nproviders:\n  mock:\n    latency: 60ms\nagents:\n  a:\n    model: mock/a\n    prompt: one\n  b:\n    model: mock/b\n    prompt: two\n",
    );
    let out = run_mock(home.path(), &file, &["--concurrency", "1", "--json"]);
    assert!(out.status.success(), "{}", transcript(&out));
    let record: Value = serde_json::from_slice(&out.stdout).unwrap();
    let second = &record["agents"][1]["timing"];
    let waited = second["preparing"].as_f64().unwrap() - second["ready"].as_f64().unwrap();
    assert!(waited >= 0.05, "b waited for a's slot: {second}");
}

/// Where a test keeps what a person may want to look at (screenshots, logs).
pub fn artifacts(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("report")
        .join(name);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[cfg(unix)]
#[test]
fn an_interrupted_run_still_writes_its_report() {
    let home = tempfile::tempdir().unwrap();
    write(
        home.path(),
        "slow.yaml",
        "version: 1\nname: slow\nproviders:\n  snail:\n    type: mock\n    latency: 60s\nagents:\n  fast:\n    model: mock/echo\n    prompt: hello\n  slow:\n    model: snail/echo\n    prompt: take your time\n",
    );
    let mut child = crate::support::byok_flow_process(home.path())
        .args(["run", "slow.yaml", "--out", "out", "--report", "r.html"])
        .env("BYOK_FLOW_HISTORY", home.path().join("history.sqlite"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + TIMEOUT;
    // The fast agent has finished, the slow one is running: the handler is in place.
    while !home.path().join("out/fast.md").exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the fast agent never finished"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::thread::sleep(std::time::Duration::from_millis(200));
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(child.wait().unwrap().code(), Some(130));
    let html = page(&home.path().join("r.html"));
    assert!(
        html.contains("<h1><code>slow</code> was interrupted</h1>"),
        "{html}"
    );
    assert!(html.contains("The run was interrupted."));
    assert!(html.contains("data-agent=\"slow\" data-status=\"interrupted\""));
    assert!(html.contains("data-agent=\"fast\" data-status=\"succeeded\""));
}
