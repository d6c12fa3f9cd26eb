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

/// A whole record of a cache segment (README, "The cache, and resuming a run"):
/// where it is, and the entry it holds.
pub struct Record {
    pub segment: PathBuf,
    /// Its bytes in the segment, header first.
    pub bytes: std::ops::Range<usize>,
    pub key: [u8; 32],
    pub entry: Value,
}

/// The length of a record's header: magic, key, when, length, SHA-256 of the
/// entry, check of the header.
const HEADER: usize = 8 + 32 + 8 + 4 + 32 + 8;

/// Every whole record of the segments in the cache folder `cache`, in order,
/// each checked as byok-flow checks it: a segment is read up to its first record
/// that is not whole.
pub fn records(cache: &Path) -> Vec<Record> {
    use sha2::{Digest, Sha256};
    let mut out = Vec::new();
    for segment in files(&cache.join("v1/segments")) {
        let name = segment.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            !name.starts_with('.') && segment.extension().is_some_and(|e| e == "seg"),
            "{name}"
        );
        let bytes = std::fs::read(&segment).unwrap();
        let mut at = 0;
        while let Some(header) = bytes.get(at..at + HEADER) {
            let len = u32::from_le_bytes(header[48..52].try_into().unwrap()) as usize;
            let check = Sha256::digest(&header[..HEADER - 8]);
            let Some(entry) = bytes.get(at + HEADER..at + HEADER + len) else {
                break;
            };
            if &header[..8] != b"byokflw1"
                || header[HEADER - 8..] != check[..8]
                || header[52..84] != Sha256::digest(entry)[..]
            {
                break;
            }
            out.push(Record {
                segment: segment.clone(),
                bytes: at..at + HEADER + len,
                key: header[8..40].try_into().unwrap(),
                entry: serde_json::from_slice(entry).unwrap(),
            });
            at += HEADER + len;
        }
    }
    out
}

/// How many keys the cache folder `cache` has a whole entry for.
pub fn cached_keys(cache: &Path) -> usize {
    let keys: std::collections::HashSet<[u8; 32]> = records(cache).iter().map(|r| r.key).collect();
    keys.len()
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
    let cache = dir.path().join("cache");
    assert_eq!(records(&cache).len(), 4, "one entry per agent");
    assert_eq!(
        files(&cache).len(),
        1,
        "one file of entries a run: {:?}",
        files(&cache)
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
    assert_eq!(records(&dir.path().join("cache")).len(), 2);

    let rec = ok(&run(dir.path(), &server, &[]));
    assert_eq!(called_since(&server, 3), ["marker-c", "marker-d"]);
    assert_eq!(cached(&rec), ["a", "b"]);
}

#[test]
fn a_corrupted_entry_is_a_miss_with_a_warning_and_is_replaced() {
    let server = FakeServer::start();
    let dir = setup(&server, CHAIN);
    ok(&run(dir.path(), &server, &[]));
    let entries = records(&dir.path().join("cache"));
    assert_eq!(entries.len(), 4);
    // Each entry damaged in place, its header whole: half of it zeroed, all of it
    // blanks, one bit flipped, JSON of another shape.
    let segment = &entries[0].segment;
    let mut bytes = std::fs::read(segment).unwrap();
    for (n, record) in entries.iter().enumerate() {
        assert_eq!(&record.segment, segment);
        let entry = &mut bytes[record.bytes.start + HEADER..record.bytes.end];
        let len = entry.len();
        match n {
            0 => entry[len / 2..].fill(0),
            1 => entry.fill(b' '),
            2 => entry[len / 3] ^= 0x01,
            _ => {
                entry.fill(b' ');
                entry[..9].copy_from_slice(b"[1, 2, 3]");
            }
        }
    }
    std::fs::write(segment, &bytes).unwrap();
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
    assert!(
        stderr.contains(&segment.display().to_string()),
        "where: {stderr}"
    );
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
    let cache = dir.path().join("cache");
    let d: Vec<Record> = records(&cache)
        .into_iter()
        .filter(|r| r.entry["text"].as_str().unwrap().contains("marker-d"))
        .collect();
    assert_eq!(d.len(), 1);
    let mut bytes = std::fs::read(&d[0].segment).unwrap();
    bytes.drain(d[0].bytes.clone());
    std::fs::write(&d[0].segment, bytes).unwrap();
    assert_eq!(records(&cache).len(), 3);
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
    // Each run appended whole entries to a file of its own; no temporary file.
    let cache = dir.path().join("cache");
    let all = files(&cache);
    assert!(!all.is_empty() && all.len() <= 2, "{all:?}");
    let entries = records(&cache);
    assert_eq!(
        entries.iter().map(|r| r.bytes.len()).sum::<usize>(),
        all.iter()
            .map(|f| std::fs::read(f).unwrap().len())
            .sum::<usize>(),
        "nothing but whole entries"
    );
    assert_eq!(cached_keys(&cache), 4);
    for record in entries {
        assert_eq!(record.entry["format"], 1);
    }
    // And both runs are in the history.
    let mut list = byok_flow_process(dir.path());
    list.args(["runs", "list", "--json"]);
    let runs: Value = serde_json::from_slice(&list.output().unwrap().stdout).unwrap();
    assert_eq!(runs.as_array().unwrap().len(), 3);
}
