//! The answer cache against the fake provider server (SPEC §5): hits cost nothing
//! and still feed dependents, what changes a call's key calls again, `--no-cache`,
//! `--refresh`, corrupted entries, the budget, and resume after `kill -9`, with two
//! runs sharing one cache folder.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::providers::{ANTHROPIC_KEY, GEMINI_KEY, OPENAI_KEY, workflow};
use crate::snapshot;
use crate::support::byok_flow_process;
use crate::support::fake::{FakeServer, Fault};

/// Four agents in a chain, one per API (the last back on Anthropic):
/// a -> b -> c -> d. Each prompt starts with its marker.
const CHAIN: &str = "  a:
    model: anthropic/claude-sonnet-4-5
    prompt: \"marker-a Start the chain\"
    max_tokens: 100
  b:
    model: openai/gpt-4o
    prompt: \"marker-b Go on from {{agents.a.output}}\"
    max_tokens: 100
    temperature: 0.2
  c:
    model: gemini/gemini-3.5-flash
    prompt: \"marker-c Go on from {{agents.b.output}}\"
    max_tokens: 100
  d:
    model: anthropic/claude-sonnet-4-5
    prompt: \"marker-d Finish from {{agents.c.output}}\"
    max_tokens: 100
";

/// `byok-flow run DIR/flow.yaml ARGS` against `server`, keys in the
/// environment, the cache in `DIR/cache` (unless ARGS say otherwise).
fn command(dir: &Path, server: &FakeServer, args: &[&str]) -> Command {
    let mut cmd = byok_flow_process(dir);
    cmd.arg("run")
        .arg(dir.join("flow.yaml"))
        .args(["--allow-host", &server.addr.to_string()])
        .args(args)
        .env("BYOK_FLOW_CACHE_DIR", dir.join("cache"))
        .env("ANTHROPIC_KEY", ANTHROPIC_KEY)
        .env("OPENAI_KEY", OPENAI_KEY)
        .env("GEMINI_KEY", GEMINI_KEY)
        .env("BYOK_FLOW_BACKOFF_SCALE", "0")
        .stdin(Stdio::null());
    cmd
}

fn setup(server: &FakeServer, agents: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("flow.yaml"), workflow(server, agents)).unwrap();
    dir
}

/// [`command`] with `--json`, to the end.
fn run(dir: &Path, server: &FakeServer, args: &[&str]) -> Output {
    let out = command(dir, server, args).arg("--json").output().unwrap();
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("panicked"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn record(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not a run record ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn ok(out: &Output) -> Value {
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    record(out)
}

/// Which agents a record says were cached, in order.
fn cached(record: &Value) -> Vec<&str> {
    record["agents"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["cached"] == true)
        .map(|a| a["name"].as_str().unwrap())
        .collect()
}

/// The marker (`marker-b`) of each request the server got, in order.
fn called(server: &FakeServer) -> Vec<String> {
    server
        .requests()
        .iter()
        .filter_map(|r| {
            let prompt = r.body["messages"]
                .as_array()
                .and_then(|m| m.iter().rev().find(|m| m["role"] == "user"))
                .and_then(|m| m["content"].as_str())
                .or_else(|| r.body.pointer("/contents/0/parts/0/text")?.as_str())?;
            Some(prompt.split_whitespace().next()?.to_string())
        })
        .collect()
}

/// The markers of requests made since `before` of them.
fn called_since(server: &FakeServer, before: usize) -> Vec<String> {
    called(server).split_off(before)
}

/// Every file under `dir`.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files(&path));
        } else {
            out.push(path);
        }
    }
    out.sort();
    out
}

#[test]
fn a_second_run_is_answered_from_the_cache_at_no_cost() {
    let server = FakeServer::start();
    let dir = setup(&server, CHAIN);
    let first = ok(&run(dir.path(), &server, &[]));
    assert_eq!(
        called(&server),
        ["marker-a", "marker-b", "marker-c", "marker-d"]
    );
    assert!(cached(&first).is_empty());
    assert!(first["cost_usd"].as_f64().unwrap() > 0.0);
    assert_eq!(
        files(&dir.path().join("cache")).len(),
        4,
        "one entry per agent"
    );

    let second = ok(&run(dir.path(), &server, &[]));
    assert_eq!(called(&server).len(), 4, "nothing was called again");
    assert_eq!(cached(&second), ["a", "b", "c", "d"]);
    assert_eq!(second["cost_usd"], 0.0);
    assert_eq!(second["usage"]["input"], 0);
    assert_eq!(second["outputs"], first["outputs"], "hits feed dependents");
    for (a, b) in first["agents"]
        .as_array()
        .unwrap()
        .iter()
        .zip(second["agents"].as_array().unwrap())
    {
        assert_eq!(a["output"], b["output"]);
        assert_eq!(b["status"], "succeeded");
        assert_eq!(b["cost_usd"], 0.0);
        assert_eq!(b["stop_reason"], a["stop_reason"]);
        assert!(b.get("attempts").is_none(), "a hit makes no attempt");
    }

    // What the person running sees: "cached" in the progress lines and the table.
    let shown = command(dir.path(), &server, &[])
        .arg("--out")
        .arg(dir.path().join("out"))
        .output()
        .unwrap();
    snapshot!("cache_all_hits", shown);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("out/d.md")).unwrap(),
        second["agents"][3]["output"].as_str().unwrap()
    );
}

#[test]
fn changing_a_parameter_or_an_upstream_answer_calls_again() {
    let server = FakeServer::start();
    let dir = setup(&server, CHAIN);
    ok(&run(dir.path(), &server, &[]));
    let before = called(&server).len();
    // b's temperature changes b's key; c and d are fed b's (identical) reply, so
    // their rendered prompts, and keys, are unchanged.
    std::fs::write(
        dir.path().join("flow.yaml"),
        workflow(
            &server,
            &CHAIN.replace("temperature: 0.2", "temperature: 0.3"),
        ),
    )
    .unwrap();
    let rec = ok(&run(dir.path(), &server, &[]));
    assert_eq!(called_since(&server, before), ["marker-b"]);
    assert_eq!(cached(&rec), ["a", "c", "d"]);

    // A new prompt for a calls a, and b, whose prompt holds a's new reply. b's reply
    // is the same as before (the fake quotes only a prompt's first six words), so c
    // and d, whose prompts are unchanged, are still hits: the key is the rendered
    // call, not the position in the graph.
    let before = called(&server).len();
    std::fs::write(
        dir.path().join("flow.yaml"),
        workflow(
            &server,
            &CHAIN.replace("marker-a Start the chain", "marker-a Start another chain"),
        ),
    )
    .unwrap();
    let rec = ok(&run(dir.path(), &server, &[]));
    assert_eq!(called_since(&server, before), ["marker-a", "marker-b"]);
    assert_eq!(cached(&rec), ["c", "d"]);
}

#[test]
fn no_cache_neither_reads_nor_writes() {
    let server = FakeServer::start();
    let dir = setup(&server, CHAIN);
    ok(&run(dir.path(), &server, &["--no-cache"]));
    assert!(files(&dir.path().join("cache")).is_empty());
    ok(&run(dir.path(), &server, &[]));
    let rec = ok(&run(dir.path(), &server, &["--no-cache"]));
    assert!(cached(&rec).is_empty());
    let rec = ok(&command(dir.path(), &server, &["--json"])
        .env("BYOK_FLOW_NO_CACHE", "1")
        .output()
        .unwrap());
    assert!(cached(&rec).is_empty());
    assert_eq!(called(&server).len(), 16);
}

#[test]
fn refresh_calls_the_agent_and_everything_downstream_again() {
    let server = FakeServer::start();
    let agents = format!(
        "{CHAIN}  side:\n    model: openai/gpt-4o\n    prompt: \"marker-side Independent\"\n    max_tokens: 100\n"
    );
    let dir = setup(&server, &agents);
    ok(&run(dir.path(), &server, &["--concurrency", "1"]));
    let before = called(&server).len();
    let rec = ok(&run(dir.path(), &server, &["--refresh", "b"]));
    let mut again = called_since(&server, before);
    again.sort();
    assert_eq!(again, ["marker-b", "marker-c", "marker-d"]);
    assert_eq!(cached(&rec), ["a", "side"]);
    // The fresh answers were written: a plain run is all hits.
    let rec = ok(&run(dir.path(), &server, &[]));
    assert_eq!(cached(&rec).len(), 5);

    let out = run(
        dir.path(),
        &server,
        &["--refresh", "writter", "--refresh", "b"],
    );
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("`--refresh writter`: the workflow has no agent `writter`"),
        "{stderr}"
    );
    let out = run(dir.path(), &server, &["--refresh", "b", "--no-cache"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn a_failed_agent_is_not_cached_and_a_rerun_redoes_only_what_failed() {
    let server = FakeServer::start();
    let dir = setup(&server, CHAIN);
    server.script("marker-c", [Fault::status(400)]);
    let out = run(dir.path(), &server, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(called(&server), ["marker-a", "marker-b", "marker-c"]);
    assert_eq!(files(&dir.path().join("cache")).len(), 2);

    let rec = ok(&run(dir.path(), &server, &[]));
    assert_eq!(called_since(&server, 3), ["marker-c", "marker-d"]);
    assert_eq!(cached(&rec), ["a", "b"]);
}

#[test]
fn a_corrupted_entry_is_a_miss_with_a_warning_and_is_replaced() {
    let server = FakeServer::start();
    let dir = setup(&server, CHAIN);
    ok(&run(dir.path(), &server, &[]));
    let entries = files(&dir.path().join("cache"));
    // Half of one file, an empty one, bytes that are not JSON, JSON of another shape.
    let whole = std::fs::read(&entries[0]).unwrap();
    std::fs::write(&entries[0], &whole[..whole.len() / 2]).unwrap();
    std::fs::write(&entries[1], b"").unwrap();
    std::fs::write(&entries[2], b"\x00\xff\xfe").unwrap();
    std::fs::write(&entries[3], b"[1, 2, 3]").unwrap();
    let out = run(dir.path(), &server, &[]);
    let rec = ok(&out);
    assert!(cached(&rec).is_empty());
    assert_eq!(called(&server).len(), 8);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.matches("is corrupted").count(),
        4,
        "one warning per entry: {stderr}"
    );
    assert!(stderr.contains("calling the model again"), "{stderr}");
    let rec = ok(&run(dir.path(), &server, &[]));
    assert_eq!(cached(&rec).len(), 4, "the entries were replaced");
}

#[test]
fn a_cache_folder_that_cannot_be_written_is_a_warning() {
    let server = FakeServer::start();
    let dir = setup(&server, CHAIN);
    // A file where the cache folder should be.
    std::fs::write(dir.path().join("cache"), "not a folder").unwrap();
    let out = run(dir.path(), &server, &[]);
    ok(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.matches("cannot write to the cache").count(),
        1,
        "one warning a run: {stderr}"
    );
}

#[test]
fn mock_runs_and_the_mock_provider_do_not_use_the_cache() {
    let server = FakeServer::start();
    let dir = setup(&server, CHAIN);
    let rec = ok(&run(dir.path(), &server, &["--mock"]));
    assert!(cached(&rec).is_empty());
    let mock_agent = "  m:\n    model: mock/echo\n    prompt: \"hello\"\n";
    std::fs::write(dir.path().join("flow.yaml"), workflow(&server, mock_agent)).unwrap();
    ok(&run(dir.path(), &server, &[]));
    let rec = ok(&run(dir.path(), &server, &[]));
    assert!(cached(&rec).is_empty());
    assert!(files(&dir.path().join("cache")).is_empty());
    assert!(server.requests().is_empty());
}

#[test]
fn a_cached_agent_reserves_nothing_from_the_budget() {
    let server = FakeServer::start();
    let dir = setup(&server, CHAIN);
    ok(&run(dir.path(), &server, &[]));
    // A budget far under one call's worst case: refused without the cache...
    let tiny = ["--max-usd", "0.000001"];
    let out = run(dir.path(), &server, &[&tiny[..], &["--no-cache"]].concat());
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // ...but every agent is a hit, so it runs, at $0, and so does its estimate.
    let rec = ok(&run(dir.path(), &server, &tiny));
    assert_eq!(cached(&rec).len(), 4);
    let mut estimate = byok_flow_process(dir.path());
    estimate
        .arg("estimate")
        .arg(dir.path().join("flow.yaml"))
        .args(tiny)
        .env("BYOK_FLOW_CACHE_DIR", dir.path().join("cache"));
    let out = estimate.output().unwrap();
    snapshot!("cache_estimate_all_cached", out);
    assert_eq!(called(&server).len(), 4);
}

#[test]
fn neither_the_cache_nor_the_history_holds_a_key() {
    let server = FakeServer::start();
    let dir = setup(&server, CHAIN);
    ok(&run(dir.path(), &server, &[]));
    ok(&run(dir.path(), &server, &[]));
    let mut all = files(&dir.path().join("cache"));
    all.extend(files(&dir.path().join(".local")));
    assert!(all.iter().any(|f| f.ends_with("history.sqlite")), "{all:?}");
    for file in all {
        let bytes = std::fs::read(&file).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        for key in [ANTHROPIC_KEY, OPENAI_KEY, GEMINI_KEY] {
            assert!(!text.contains(key), "{} holds a key", file.display());
        }
    }
}

#[test]
fn a_run_the_cache_answers_whole_needs_no_key() {
    let server = FakeServer::start();
    let dir = setup(&server, CHAIN);
    ok(&run(dir.path(), &server, &[]));
    let out = command(dir.path(), &server, &["--json"])
        .env_remove("ANTHROPIC_KEY")
        .env_remove("OPENAI_KEY")
        .env_remove("GEMINI_KEY")
        .output()
        .unwrap();
    assert_eq!(cached(&ok(&out)).len(), 4);
    // With one answer missing, that agent's key is needed again, and checked first.
    let entries = files(&dir.path().join("cache"));
    for entry in &entries {
        let text = std::fs::read_to_string(entry).unwrap();
        if text.contains("marker-d") {
            std::fs::remove_file(entry).unwrap();
        }
    }
    assert_eq!(files(&dir.path().join("cache")).len(), 3);
    let out = command(dir.path(), &server, &["--json"])
        .env_remove("ANTHROPIC_KEY")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(called(&server).len(), 4, "nothing was sent");
}

/// Waits until `path` exists, or fails the test after a while.
fn wait_for(path: &Path, child: &mut std::process::Child) {
    let start = Instant::now();
    while !path.exists() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "the run ended ({status}) before {} appeared",
                path.display()
            );
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_run_killed_mid_way_resumes_with_the_agents_that_had_not_finished() {
    let server = FakeServer::start();
    let dir = setup(&server, CHAIN);
    server.set_latency(Duration::from_millis(400));
    let out = dir.path().join("out");
    let mut child = command(
        dir.path(),
        &server,
        &["--json", "--out", out.to_str().unwrap()],
    )
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    // b's file is written after its cache entry: a and b have finished, c is on its way.
    wait_for(&out.join("b.md"), &mut child);
    child.kill().unwrap(); // SIGKILL: no clean-up runs
    child.wait().unwrap();
    assert!(
        !out.join("run.json").exists(),
        "the run was killed before its end"
    );
    let before = called(&server);
    assert_eq!(&before[..2], ["marker-a", "marker-b"]);
    assert!(before.len() <= 3, "{before:?}");

    server.set_latency(Duration::ZERO);
    let rec = ok(&run(dir.path(), &server, &[]));
    assert_eq!(
        called_since(&server, before.len()),
        ["marker-c", "marker-d"],
        "finished agents are not called again"
    );
    assert_eq!(cached(&rec), ["a", "b"]);

    // The history has the killed run, unfinished, with what it spent.
    let mut list = byok_flow_process(dir.path());
    list.args(["runs", "list", "--json"]);
    let runs: Value = serde_json::from_slice(&list.output().unwrap().stdout).unwrap();
    let statuses: Vec<&str> = runs
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["succeeded", "unfinished"]);
    assert!(runs[1]["cost_usd"].as_f64().unwrap() > 0.0);
}

#[test]
fn two_runs_at_once_on_one_cache_folder_both_succeed() {
    let server = FakeServer::start();
    let dir = setup(&server, CHAIN);
    server.set_latency(Duration::from_millis(100));
    let children: Vec<_> = (0..2)
        .map(|_| {
            command(dir.path(), &server, &["--json"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        ok(&out);
    }
    let before = called(&server).len();
    assert!(before >= 4, "{before}");
    server.set_latency(Duration::ZERO);
    let rec = ok(&run(dir.path(), &server, &[]));
    assert_eq!(cached(&rec), ["a", "b", "c", "d"]);
    assert_eq!(called(&server).len(), before);
    let entries = files(&dir.path().join("cache"));
    assert_eq!(
        entries.len(),
        4,
        "whole entries only, no temporary files: {entries:?}"
    );
    for entry in entries {
        let value: Value = serde_json::from_slice(&std::fs::read(&entry).unwrap()).unwrap();
        assert_eq!(value["format"], 1);
    }
    // And both runs are in the history.
    let mut list = byok_flow_process(dir.path());
    list.args(["runs", "list", "--json"]);
    let runs: Value = serde_json::from_slice(&list.output().unwrap().stdout).unwrap();
    assert_eq!(runs.as_array().unwrap().len(), 3);
}
