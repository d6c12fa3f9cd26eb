//! Datasets (SPEC §8), the real binary against the fake provider server: one squad
//! per row of JSON Lines, JSON, CSV and stdin; results in row order; every kind of
//! bad row failed with its place while the others run; files refused before any
//! call; the budget, the keys, the estimate, the history and GitHub Actions.

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

use crate::providers::{ANTHROPIC_KEY, GEMINI_KEY, OPENAI_KEY};
use crate::snapshot;
use crate::support::byok_flow_process;
use crate::support::fake::FakeServer;

/// Two agents a row: `a` on Anthropic, `b` on OpenAI reading `a`. Each prompt
/// starts with its marker and the row's number.
pub const PAIR: &str = "  a:
    model: anthropic/claude-sonnet-4-5
    prompt: \"marker-a row {{inputs.n}} about {{inputs.topic}}\"
    max_tokens: 100
  b:
    model: openai/gpt-4o
    prompt: \"marker-b row {{inputs.n}} from {{agents.a.output}}\"
    max_tokens: 100
";

/// Inputs of the test squads: a row number, a required topic, an optional tone.
pub const INPUTS: &str = "inputs:
  n: {required: true}
  topic: {required: true}
  tone: {default: plain}
";

/// A workflow with the providers pointed at `server`, these inputs and agents.
pub fn flow(server: &FakeServer, inputs: &str, agents: &str) -> String {
    let url = server.url();
    format!(
        "version: 1\nname: rows\n{inputs}providers:\n  anthropic: {{base_url: \"{url}\", key: \"env:ANTHROPIC_KEY\"}}\n  openai: {{base_url: \"{url}/v1\", key: \"env:OPENAI_KEY\"}}\n  gemini: {{base_url: \"{url}/v1beta\", key: \"env:GEMINI_KEY\"}}\nagents:\n{agents}"
    )
}

/// A folder with `flow.yaml` (the pair over `server`) and `rows.jsonl` of `n` rows.
pub fn setup(server: &FakeServer, rows: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("flow.yaml"), flow(server, INPUTS, PAIR)).unwrap();
    write_rows(dir.path(), rows);
    dir
}

pub fn write_rows(dir: &Path, rows: usize) {
    let mut text = String::new();
    for n in 0..rows {
        text.push_str(&format!("{{\"n\": {n}, \"topic\": \"topic {n}\"}}\n"));
    }
    std::fs::write(dir.join("rows.jsonl"), text).unwrap();
}

/// `byok-flow ARGS` in `dir` against `server`: keys in the environment, the cache
/// and the history in `dir`, back-off waits scaled to zero.
pub fn command(dir: &Path, server: &FakeServer, args: &[&str]) -> Command {
    let mut cmd = byok_flow_process(dir);
    cmd.args(args)
        .args(["--allow-host", &server.addr.to_string()])
        .env("BYOK_FLOW_CACHE_DIR", dir.join("cache"))
        .env("BYOK_FLOW_HISTORY", dir.join("history.sqlite"))
        .env("ANTHROPIC_KEY", ANTHROPIC_KEY)
        .env("OPENAI_KEY", OPENAI_KEY)
        .env("GEMINI_KEY", GEMINI_KEY)
        .env("BYOK_FLOW_BACKOFF_SCALE", "0")
        .stdin(Stdio::null());
    cmd
}

/// `byok-flow run flow.yaml --each rows.jsonl ARGS`, to the end.
pub fn run_rows(dir: &Path, server: &FakeServer, args: &[&str]) -> Output {
    let out = command(dir, server, &["run", "flow.yaml", "--each", "rows.jsonl"])
        .args(args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    out
}

/// Each line of `text` as JSON; every line must be whole.
pub fn lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("a torn line ({e}): {l:?}")))
        .collect()
}

/// `(marker, row)` of each request the server got, in order.
pub fn calls(server: &FakeServer) -> Vec<(String, u64)> {
    server
        .requests()
        .iter()
        .filter_map(|r| {
            let prompt = r.body["messages"]
                .as_array()
                .and_then(|m| m.iter().rev().find(|m| m["role"] == "user"))
                .and_then(|m| m["content"].as_str())?;
            let mut words = prompt.split_whitespace();
            let marker = words.next()?.to_string();
            let _ = words.next();
            let row = words.next()?.parse().ok()?;
            Some((marker, row))
        })
        .collect()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn each_row_runs_the_squad_and_results_come_in_row_order() {
    let server = FakeServer::start();
    let dir = setup(&server, 6);
    let out = run_rows(dir.path(), &server, &["--concurrency", "3"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let results = lines(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(results.len(), 6);
    for (i, r) in results.iter().enumerate() {
        assert_eq!(r["row"], i);
        assert_eq!(r["status"], "succeeded");
        assert!(r.get("error").is_none());
        let b = r["outputs"]["b"].as_str().unwrap();
        assert!(
            b.starts_with(&format!("fake reply to: marker-b row {i} from")),
            "{b}"
        );
        assert!(r["cost_usd"].as_f64().unwrap() > 0.0);
    }
    let mut called = calls(&server);
    called.sort();
    let mut expected: Vec<(String, u64)> = (0..6)
        .flat_map(|n| [("marker-a".to_string(), n), ("marker-b".to_string(), n)])
        .collect();
    expected.sort();
    assert_eq!(called, expected, "every row's agents, once each");
    assert!(server.max_in_flight() <= 3, "rows share --concurrency");
}

/// A provider's `max_concurrency` holds across rows, as `--concurrency` does: the
/// rows overlap up to it and never beyond.
#[test]
fn a_providers_max_concurrency_holds_across_rows() {
    let server = FakeServer::start();
    let dir = setup(&server, 12);
    let one = "  a:
    model: anthropic/claude-sonnet-4-5
    prompt: \"marker-a row {{inputs.n}} about {{inputs.topic}}\"
    max_tokens: 100
";
    let yaml = flow(&server, INPUTS, one).replace(
        "key: \"env:ANTHROPIC_KEY\"}",
        "key: \"env:ANTHROPIC_KEY\", max_concurrency: 2}",
    );
    assert!(yaml.contains("max_concurrency: 2"), "{yaml}");
    std::fs::write(dir.path().join("flow.yaml"), yaml).unwrap();
    server.set_latency(std::time::Duration::from_millis(40));
    let out = run_rows(dir.path(), &server, &["--concurrency", "8"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(lines(&String::from_utf8_lossy(&out.stdout)).len(), 12);
    assert_eq!(calls(&server).len(), 12);
    assert_eq!(
        server.max_in_flight(),
        2,
        "rows overlap up to the provider's limit"
    );
}

#[test]
fn every_kind_of_bad_row_fails_with_its_place_and_the_others_run() {
    let server = FakeServer::start();
    let dir = setup(&server, 0);
    let long = "x".repeat((4 << 20) + 1);
    let rows = [
        "{\"n\": 0, \"topic\": \"fine\"}".to_string(),
        "{\"n\": 1, \"topic\": ".to_string(),
        "[\"not\", \"an\", \"object\"]".to_string(),
        "{\"n\": 3, \"topic\": \"x\", \"tonee\": \"warm\"}".to_string(),
        "{\"n\": 4}".to_string(),
        format!("{{\"n\": 5, \"topic\": \"{long}\"}}"),
        String::new(),
        "{\"n\": 6, \"topic\": \"fine too\", \"tone\": \"warm\"}".to_string(),
    ];
    std::fs::write(dir.path().join("rows.jsonl"), rows.join("\n") + "\n").unwrap();
    let out = run_rows(dir.path(), &server, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let results = lines(&String::from_utf8_lossy(&out.stdout));
    let status: Vec<&str> = results
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        status,
        [
            "succeeded",
            "failed",
            "failed",
            "failed",
            "failed",
            "failed",
            "succeeded"
        ]
    );
    let error = |i: usize| &results[i]["error"];
    assert_eq!(error(1)["line"], 2);
    assert!(
        error(1)["message"]
            .as_str()
            .unwrap()
            .starts_with("it is not JSON")
    );
    assert_eq!(error(2)["line"], 3);
    assert_eq!(error(2)["message"], "it is an array, not an object");
    assert_eq!(
        error(3)["message"],
        "its field `tonee` is not an input of the workflow"
    );
    assert_eq!(error(3)["hint"], "did you mean `tone`?");
    assert_eq!(
        error(4)["message"],
        "it has no value for the required input `topic`"
    );
    assert!(
        error(4)["hint"]
            .as_str()
            .unwrap()
            .contains("--input topic=VALUE")
    );
    assert!(
        error(5)["message"]
            .as_str()
            .unwrap()
            .contains("over the 4 MiB a row may have")
    );
    assert_eq!(results[6]["row"], 6, "a blank line is not a row");
    assert_eq!(results[6]["error"], Value::Null);
    let mut rows_called: Vec<u64> = calls(&server).iter().map(|(_, r)| *r).collect();
    rows_called.sort_unstable();
    rows_called.dedup();
    assert_eq!(rows_called, [0, 6], "only the good rows were run");
    let shown = stderr(&out);
    assert!(
        shown.contains("row 2 (line 3) failed: it is an array, not an object"),
        "{shown}"
    );
    assert!(shown.contains("7 rows: 2 succeeded, 5 failed"), "{shown}");
}

#[test]
fn csv_rows_with_quotes_line_breaks_and_empty_fields_run() {
    let server = FakeServer::start();
    let dir = setup(&server, 0);
    std::fs::write(
        dir.path().join("rows.csv"),
        "\u{feff}n,topic,tone\r\n0,\"otters, \"\"river\"\" ones\",\r\n1,\"two\r\nlines\",warm\r\n2,only two\r\n",
    )
    .unwrap();
    let out = command(
        dir.path(),
        &server,
        &["run", "flow.yaml", "--each", "rows.csv"],
    )
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let results = lines(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(results.len(), 3);
    assert!(
        results[0]["outputs"]["b"]
            .as_str()
            .unwrap()
            .contains("row 0")
    );
    let prompts: Vec<String> = server
        .requests()
        .iter()
        .filter_map(|r| r.body["messages"][0]["content"].as_str().map(String::from))
        .filter(|p| p.starts_with("marker-a"))
        .collect();
    assert!(
        prompts.contains(&"marker-a row 0 about otters, \"river\" ones".to_string()),
        "{prompts:?}"
    );
    assert!(
        prompts.contains(&"marker-a row 1 about two\r\nlines".to_string()),
        "{prompts:?}"
    );
    assert_eq!(results[2]["status"], "failed");
    assert_eq!(results[2]["error"]["record"], 3);
    assert_eq!(results[2]["error"]["line"], 5);
    assert_eq!(
        results[2]["error"]["message"],
        "it has 2 fields, the header 3"
    );
}

#[test]
fn json_array_rows_and_stdin_rows_run() {
    let server = FakeServer::start();
    let dir = setup(&server, 0);
    std::fs::write(
        dir.path().join("rows.json"),
        "[\n  {\"n\": 0, \"topic\": \"a\"},\n  {\"n\": 1, \"topic\": \"b\"}\n]\n",
    )
    .unwrap();
    let out = command(
        dir.path(),
        &server,
        &["run", "flow.yaml", "--each", "rows.json"],
    )
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(lines(&String::from_utf8_lossy(&out.stdout)).len(), 2);

    let mut child = command(dir.path(), &server, &["run", "flow.yaml", "--each", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"{\"n\": 7, \"topic\": \"piped\"}\n{\"n\": 8, \"topic\": \"too\"}\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let results = lines(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(results.len(), 2);
    assert!(
        results[1]["outputs"]["b"]
            .as_str()
            .unwrap()
            .contains("row 8")
    );
}

/// A file that cannot be read as rows at all is refused before any call, exit 2,
/// with what is wrong and how to fix it.
#[test]
fn files_that_cannot_be_rows_are_refused_before_any_call() {
    let server = FakeServer::start();
    let dir = setup(&server, 0);
    std::fs::create_dir(dir.path().join("folder.jsonl")).unwrap();
    let cases: &[(&str, &str, &str)] = &[
        ("empty.jsonl", "\n\n", "empty.jsonl has no rows"),
        ("empty.json", "[]", "empty.json has no rows"),
        (
            "none.jsonl",
            "oops\n[1]\n",
            "no row can be used; the first, at line 1: it is not JSON",
        ),
        (
            "broken.json",
            "[{\"n\": 1}, {\"n\": }]",
            "it is not a JSON array: line 1 column 18",
        ),
        (
            "object.json",
            "{\"n\": 1}",
            "expected `[`: the file is not a JSON array",
        ),
        (
            "twice.csv",
            "n,topic,n\n1,a,2\n",
            "the CSV header names `n` twice (columns 1 and 3)",
        ),
        (
            "extra.csv",
            "n,topic,tonne\n1,a,b\n",
            "the CSV header's column `tonne` is not an input",
        ),
        (
            "short.csv",
            "n,tone\n1,warm\n",
            "no column gives the required input `topic`",
        ),
        ("header.csv", "n,topic\n", "header.csv has no rows"),
        ("rows.txt", "{}", "cannot tell how the rows are written"),
        ("folder.jsonl", "", "is not a regular file"),
        ("missing.jsonl", "", "cannot read the file"),
    ];
    for (file, text, message) in cases {
        let path = dir.path().join(file);
        if !text.is_empty() || *file == "rows.txt" {
            std::fs::write(&path, text).unwrap();
        }
        let out = command(dir.path(), &server, &["run", "flow.yaml", "--each", file])
            .output()
            .unwrap();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{file}: {err}");
        assert!(
            err.contains(message),
            "{file}: expected {message:?} in {err}"
        );
        assert!(err.contains("help: "), "{file}: says what to do: {err}");
        assert!(out.stdout.is_empty(), "{file}");
    }
    let out = command(dir.path(), &server, &["run", "flow.yaml", "--each", "-"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("no rows came on stdin"));
    let out = command(dir.path(), &server, &["run", "flow.yaml", "--shard", "1/2"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "--shard needs --each: {}",
        stderr(&out)
    );
    let out = command(
        dir.path(),
        &server,
        &["run", "flow.yaml", "--each", "-", "--input", "tone=@-"],
    )
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("reads stdin too"), "{}", stderr(&out));
    write_rows(dir.path(), 2);
    let out = command(
        dir.path(),
        &server,
        &[
            "estimate",
            "flow.yaml",
            "--each",
            "rows.jsonl",
            "--diff",
            "HEAD",
        ],
    )
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("drop `--each`"), "{}", stderr(&out));
    assert!(server.requests().is_empty(), "nothing was sent");
}

#[test]
fn a_dataset_expected_to_cost_more_than_its_budget_never_starts() {
    let server = FakeServer::start();
    let dir = setup(&server, 50);
    let out = run_rows(dir.path(), &server, &["--max-usd", "0.001"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("50 rows of rows.jsonl"),
        "the estimate is shown: {err}"
    );
    assert!(
        err.contains("is over the budget of $0.0010; nothing was run"),
        "{err}"
    );
    assert!(server.requests().is_empty());
}

/// A budget needs every tool's `max_uses` in a dataset run as in one run: the
/// rows never start.
#[test]
fn a_dataset_with_a_tool_of_unset_uses_is_refused_under_a_budget() {
    let server = FakeServer::start();
    let dir = setup(&server, 3);
    let searching = PAIR.replacen(
        "    max_tokens: 100\n",
        "    max_tokens: 100\n    tools: [web_search]\n",
        1,
    );
    std::fs::write(
        dir.path().join("flow.yaml"),
        flow(&server, INPUTS, &searching),
    )
    .unwrap();
    let out = run_rows(dir.path(), &server, &["--max-usd", "5"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("every tool needs its own `max_uses`: `web_search` on `a` has none"),
        "{}",
        stderr(&out)
    );
    assert!(server.requests().is_empty(), "no row started");
}

/// Rows share one budget: expected to fit, but costing more than expected, the
/// last rows are given up (`budget_reached`), spend stays under it, and the run
/// exits 3.
#[test]
fn rows_share_one_budget_and_the_rest_wait_for_a_bigger_one() {
    let server = FakeServer::start();
    let dir = setup(&server, 12);
    // Each reply is longer than the one token it is expected to be.
    let frugal = PAIR.replace(
        "max_tokens: 100",
        "max_tokens: 100\n    expected_output_tokens: 1",
    );
    std::fs::write(dir.path().join("flow.yaml"), flow(&server, INPUTS, &frugal)).unwrap();
    let estimate = command(
        dir.path(),
        &server,
        &["estimate", "flow.yaml", "--each", "rows.jsonl", "--json"],
    )
    .output()
    .unwrap();
    let estimate: Value = serde_json::from_slice(&estimate.stdout).unwrap();
    let budget = estimate["total"]["expected_usd"].as_f64().unwrap() * 1.2;
    let out = run_rows(
        dir.path(),
        &server,
        &[
            "--max-usd",
            &format!("{budget:.6}"),
            "--out",
            "out",
            "--concurrency",
            "2",
        ],
    );
    let record: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("out/run.json")).unwrap())
            .unwrap();
    assert!(record["cost_usd"].as_f64().unwrap() <= budget, "{record}");
    assert!(
        record["rows"]["budget_reached"].as_u64().unwrap() > 0,
        "{record}"
    );
    assert!(
        record["rows"]["succeeded"].as_u64().unwrap() > 0,
        "{record}"
    );
    assert_eq!(record["status"], "budget_reached");
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let results = lines(&std::fs::read_to_string(dir.path().join("out/results.jsonl")).unwrap());
    let given_up = results
        .iter()
        .find(|r| r["status"] == "budget_reached")
        .unwrap();
    assert!(
        given_up["error"]["message"]
            .as_str()
            .unwrap()
            .contains("budget"),
        "{given_up}"
    );
}

#[test]
fn every_key_is_checked_before_the_first_row() {
    let server = FakeServer::start();
    let dir = setup(&server, 3);
    let out = command(
        dir.path(),
        &server,
        &["run", "flow.yaml", "--each", "rows.jsonl"],
    )
    .env_remove("OPENAI_KEY")
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(stderr(&out).contains("OPENAI_KEY"), "{}", stderr(&out));
    assert!(server.requests().is_empty(), "no row started");
}

#[test]
fn no_key_reaches_the_results_the_record_or_the_history() {
    let server = FakeServer::start();
    let dir = setup(&server, 4);
    let out = run_rows(dir.path(), &server, &["--out", "out"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let history = std::fs::read(dir.path().join("history.sqlite")).unwrap();
    let files = [
        out.stdout.clone(),
        out.stderr.clone(),
        std::fs::read(dir.path().join("out/results.jsonl")).unwrap(),
        std::fs::read(dir.path().join("out/run.json")).unwrap(),
        history,
    ];
    for bytes in files {
        let text = String::from_utf8_lossy(&bytes);
        for key in [ANTHROPIC_KEY, OPENAI_KEY, GEMINI_KEY] {
            assert!(!text.contains(key), "a key leaked");
        }
    }
}

#[test]
fn the_run_record_has_every_agents_aggregate_and_the_history_one_run() {
    let server = FakeServer::start();
    let dir = setup(&server, 5);
    let out = run_rows(dir.path(), &server, &["--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let record: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(record["kind"], "dataset");
    assert_eq!(record["rows"]["total"], 5);
    assert_eq!(record["rows"]["succeeded"], 5);
    assert_eq!(record["rows_in_file"], 5);
    let agents = record["agents"].as_array().unwrap();
    assert_eq!(agents.len(), 2, "one aggregate per agent, not per row");
    assert_eq!(agents[0]["name"], "a");
    assert_eq!(agents[0]["calls"], 5);
    let sum: f64 = agents.iter().map(|a| a["cost_usd"].as_f64().unwrap()).sum();
    assert!((sum - record["cost_usd"].as_f64().unwrap()).abs() < 1e-6);

    let runs = |args: &[&str]| -> Value {
        let out = byok_flow_process(dir.path())
            .arg("runs")
            .args(args)
            .env("BYOK_FLOW_HISTORY", dir.path().join("history.sqlite"))
            .output()
            .unwrap();
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let list = runs(&["list", "--json"]);
    assert_eq!(list.as_array().unwrap().len(), 1, "one run per dataset run");
    assert_eq!(list[0]["rows"]["total"], 5);
    assert_eq!(list[0]["rows"]["succeeded"], 5);
    let shown = runs(&["show", record["run_id"].as_str().unwrap(), "--json"]);
    assert_eq!(shown["agents"][1]["calls"], 5);
    let report = byok_flow_process(dir.path())
        .args([
            "report",
            record["run_id"].as_str().unwrap(),
            "-o",
            "report.html",
        ])
        .env("BYOK_FLOW_HISTORY", dir.path().join("history.sqlite"))
        .output()
        .unwrap();
    assert_eq!(report.status.code(), Some(0), "{}", stderr(&report));
    assert!(
        stderr(&report).contains("ran the squad over 5 rows (`--each`) without `--out DIR`"),
        "{}",
        stderr(&report)
    );
    let page = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
    assert!(page.contains("data-agent=\"b\""), "each agent drawn");
    std::fs::write(dir.path().join("run.json"), &out.stdout).unwrap();
    let report = byok_flow_process(dir.path())
        .args(["report", "run.json"])
        .output()
        .unwrap();
    // A run.json with no results.jsonl beside it: the totals, and why no rows.
    assert_eq!(report.status.code(), Some(0), "{}", stderr(&report));
    let page = String::from_utf8_lossy(&report.stdout);
    assert!(page.contains("Agents over the rows"), "{page}");
    assert!(
        page.contains("The rows are not shown: cannot read"),
        "{page}"
    );
    let spend = runs(&["spend", "--json", "--by", "workflow"]);
    assert_eq!(spend["groups"][0]["runs"], 1, "counted once");
    assert_eq!(spend["groups"][0]["calls"], 10);
    assert!(
        (spend["groups"][0]["cost_usd"].as_f64().unwrap() - record["cost_usd"].as_f64().unwrap())
            .abs()
            < 1e-6
    );
}

/// What a person sees, with `--mock`: a result line per row on stdout, progress
/// lines, the first failed rows and the closing table on stderr.
#[test]
fn a_mock_dataset_run_as_the_person_running_sees_it() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("flow.yaml"),
        format!("version: 1\nname: rows\n{INPUTS}agents:\n  a:\n    model: openai/gpt-4o-mini\n    prompt: \"Row {{{{inputs.n}}}} about {{{{inputs.topic}}}} ({{{{inputs.tone}}}})\"\n"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("rows.jsonl"),
        "{\"n\": 0, \"topic\": \"otters\"}\n{\"n\": 1}\n{\"n\": 2, \"topic\": \"beavers\", \"tone\": \"warm\"}\n",
    )
    .unwrap();
    let out = byok_flow_process(dir.path())
        .args(["run", "flow.yaml", "--each", "rows.jsonl", "--mock"])
        .output()
        .unwrap();
    snapshot!("rows_mock_run", out);
    let out = byok_flow_process(dir.path())
        .args([
            "estimate",
            "flow.yaml",
            "--each",
            "rows.jsonl",
            "--no-cache",
        ])
        .output()
        .unwrap();
    snapshot!("rows_estimate", out);
}

#[test]
fn in_github_actions_the_summary_has_the_counts_and_the_first_failed_rows() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("flow.yaml"),
        format!("version: 1\nname: rows\n{INPUTS}agents:\n  a:\n    model: openai/gpt-4o-mini\n    prompt: \"Row {{{{inputs.n}}}}\"\n"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("rows.jsonl"),
        "{\"n\": 0, \"topic\": \"a\"}\n{\"n\": 1, \"topic\": \"b\", \"oops\": \"`x`|y\"}\n",
    )
    .unwrap();
    let out = byok_flow_process(dir.path())
        .args(["run", "flow.yaml", "--each", "rows.jsonl", "--mock", "-q"])
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_STEP_SUMMARY", dir.path().join("summary.md"))
        .env("GITHUB_OUTPUT", dir.path().join("output"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let summary = std::fs::read_to_string(dir.path().join("summary.md")).unwrap();
    assert!(
        summary.contains("## byok-flow: `rows` over `rows.jsonl` had failed rows"),
        "{summary}"
    );
    assert!(
        summary.contains("**2 rows: 1 succeeded, 1 failed.**"),
        "{summary}"
    );
    assert!(
        summary.contains(
            "- `` row 1 (line 2) failed: its field `oops` is not an input of the workflow ``"
        ),
        "{summary}"
    );
    let output = std::fs::read_to_string(dir.path().join("output")).unwrap();
    for line in [
        "status=failed\n",
        "rows=2\n",
        "rows_succeeded=1\n",
        "rows_failed=1\n",
    ] {
        assert!(output.contains(line), "{output}");
    }
}
