//! Datasets through batches (`run --each ROWS --batch`): many rows per batch, a
//! wave per DAG depth, results in row order, a failure that stays in its row,
//! resume after kill -9 and `--detach`, the estimate's saving, and `--mock` offline.

use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{Place, run_id, stderr};
use crate::providers::workflow;
use crate::support::fake::batch::BatchKnobs;
use crate::support::fake::{FakeServer, Fault};

/// A triage agent on Anthropic, a reply agent on OpenAI that reads it.
const SQUAD: &str = "  triage: {model: anthropic/claude-haiku-4-5, prompt: \"triage ticket {{inputs.ticket}}\", max_tokens: 100}\n  reply: {model: openai/gpt-4o-mini, prompt: \"reply to {{inputs.ticket}} given {{agents.triage.output}}\", max_tokens: 100}\n";

/// The squad with its input, and `rows` tickets in rows.jsonl.
fn write(place: &Place, server: &FakeServer, rows: usize) {
    let yaml = workflow(server, SQUAD).replace(
        "agents:\n",
        "inputs:\n  ticket: {required: true}\nagents:\n",
    );
    std::fs::write(place.path().join("flow.yaml"), yaml).unwrap();
    let lines: String = (0..rows).fold(String::new(), |mut s, i| {
        s.push_str(&format!("{{\"ticket\": \"T{i}x\"}}\n"));
        s
    });
    std::fs::write(place.path().join("rows.jsonl"), lines).unwrap();
}

fn args<'a>(server: &FakeServer, host: &'a mut String, extra: &[&'a str]) -> Vec<&'a str> {
    *host = server.url().trim_start_matches("http://").to_string();
    let mut args = vec![
        "run",
        "flow.yaml",
        "--each",
        "rows.jsonl",
        "--batch",
        "--no-cache",
        "-vvv",
        "--allow-host",
        host.as_str(),
    ];
    args.extend(extra);
    args
}

fn run(place: &Place, server: &FakeServer, extra: &[&str]) -> Output {
    let mut host = String::new();
    let args = args(server, &mut host, extra);
    let out = place.command(&args, &[]).output().unwrap();
    place.assert_no_key(&out);
    out
}

/// The rows of results.jsonl (or stdout).
fn rows(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// A fake server whose batches take 800 ms (time for a run to detach from them),
/// and a place with the squad and `rows` rows.
fn detachable(rows: usize) -> (FakeServer, Place) {
    let server = FakeServer::start();
    server.set_batch_knobs(BatchKnobs {
        delay: Duration::from_millis(800),
        ..BatchKnobs::default()
    });
    let place = Place::new();
    write(&place, &server, rows);
    (server, place)
}

/// `count` result lines, each row in its place and succeeded.
fn all_succeeded_in_order(told: &[Value], count: usize) {
    assert_eq!(told.len(), count);
    for (i, row) in told.iter().enumerate() {
        assert_eq!(row["row"], i, "{row}");
        assert_eq!(row["status"], "succeeded", "{row}");
    }
}

#[test]
fn rows_go_one_batch_per_wave_and_come_back_in_row_order() {
    let server = FakeServer::start();
    let place = Place::new();
    write(&place, &server, 40);
    let out = run(&place, &server, &["--out", "out"]);
    assert!(out.status.success(), "{}", stderr(&out));
    // Wave 1: every row's triage in one Anthropic batch; wave 2: every reply in
    // one OpenAI batch (one upload, one create).
    assert_eq!(server.batch_count("create"), 2, "{:?}", server.batch_log());
    assert_eq!(server.batch_count("upload"), 1);
    let batches = server.batches();
    assert_eq!(batches[0].results.len(), 40);
    assert_eq!(batches[1].results.len(), 40);
    // Each custom_id names its row and agent.
    for (id, _) in batches[0].results.iter() {
        assert!(id.starts_with('r') && id.contains("-triage-"), "{id}");
    }
    // The fake answers in reverse order; the rows are told in row order, on stdout
    // and in results.jsonl, each with its own ticket.
    let file = std::fs::read_to_string(place.path().join("out/results.jsonl")).unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), file);
    let told = rows(&file);
    assert_eq!(told.len(), 40);
    for (i, row) in told.iter().enumerate() {
        assert_eq!(row["row"], i, "{row}");
        assert_eq!(row["status"], "succeeded", "{row}");
        let reply = row["outputs"]["reply"].as_str().unwrap();
        assert!(reply.contains(&format!("T{i}x")), "row {i}: {reply}");
    }
    // Half price: the batch price of both models.
    let run: Value =
        serde_json::from_str(&std::fs::read_to_string(place.path().join("out/run.json")).unwrap())
            .unwrap();
    assert!(run["cost_usd"].as_f64().unwrap() > 0.0, "{run}");
    // One run in the history, succeeded; no state left.
    let list = place.command(&["runs", "list"], &[]).output().unwrap();
    let list = String::from_utf8_lossy(&list.stdout);
    assert_eq!(list.matches("succeeded").count(), 1, "{list}");
    assert!(place.state_files().is_empty(), "{:?}", place.state_files());
}

#[test]
fn a_wave_goes_as_one_batch_per_provider_however_long_the_rows_take_to_come() {
    // No gathering time at all: a batch waits only for what may still make a
    // request now (rows being read and started, calls being answered), not for a
    // pause without one, so any pause of the reader or the scheduler would
    // otherwise split the wave.
    let server = FakeServer::start();
    let place = Place::new();
    write(&place, &server, 600);
    let host = server.url().trim_start_matches("http://").to_string();
    let args = [
        "run",
        "flow.yaml",
        "--each",
        "rows.jsonl",
        "--batch",
        "--no-cache",
        "-q",
        "--allow-host",
        &host,
    ];
    let out = place
        .command(&args, &[("BYOK_FLOW_BATCH_GATHER", "0s")])
        .output()
        .unwrap();
    place.assert_no_key(&out);
    assert!(out.status.success(), "{}", stderr(&out));
    let log = server.batch_log();
    assert_eq!(server.batch_count("create"), 2, "{log:?}");
    assert_eq!(server.batch_count("upload"), 1, "{log:?}");
    let batches = server.batches();
    assert_eq!(batches[0].results.len(), 600, "{log:?}");
    assert_eq!(batches[1].results.len(), 600, "{log:?}");
    assert_eq!(rows(&String::from_utf8_lossy(&out.stdout)).len(), 600);
}

#[test]
fn a_shards_custom_ids_name_the_rows_by_their_index_in_the_file() {
    let server = FakeServer::start();
    let place = Place::new();
    write(&place, &server, 7);
    // Shard 2 of 3 takes rows 1 and 4 of the file.
    let out = run(&place, &server, &["--shard", "2/3"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let told = rows(&String::from_utf8_lossy(&out.stdout));
    let told: Vec<u64> = told.iter().map(|r| r["row"].as_u64().unwrap()).collect();
    assert_eq!(told, [1, 4], "{}", stderr(&out));
    let batches = server.batches();
    let mut ids: Vec<String> = batches
        .iter()
        .flat_map(|b| b.results.iter().map(|(id, _)| id.clone()))
        .collect();
    ids.sort();
    let rows_named: Vec<&str> = ids.iter().map(|id| id.split('-').next().unwrap()).collect();
    assert_eq!(rows_named, ["r1", "r1", "r4", "r4"], "{ids:?}");
}

#[test]
fn a_failed_request_inside_a_batch_fails_only_its_row_and_retries_go_in_later_batches() {
    let server = FakeServer::start();
    // Row 3's triage is refused (not retryable); row 5's is overloaded once.
    server.script("triage ticket T3x", [Fault::status(400)]);
    server.script("triage ticket T5x", [Fault::status(529)]);
    // Row 6's result quotes the key: redacted before it reaches anything (the run
    // helper checks stdout, stderr, results.jsonl, run.json, the state and the history).
    server.script(
        "triage ticket T6x",
        [Fault::Reply("the key you sent was {KEY}".into())],
    );
    let place = Place::new();
    write(&place, &server, 8);
    let out = run(&place, &server, &["--out", "out"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let told = rows(&std::fs::read_to_string(place.path().join("out/results.jsonl")).unwrap());
    assert_eq!(told.len(), 8);
    for (i, row) in told.iter().enumerate() {
        assert_eq!(row["row"], i);
        if i == 3 {
            assert_eq!(row["status"], "failed", "{row}");
            let error = row["error"].to_string();
            assert!(
                error.contains("triage") && error.contains("invalid_request_error"),
                "{error}"
            );
        } else {
            assert_eq!(row["status"], "succeeded", "{row}");
        }
    }
    // Row 5's retry went into a later Anthropic batch; no batch held a request twice,
    // and row 3's reply was never sent.
    let anthropic: Vec<_> = server
        .batches()
        .into_iter()
        .filter(|b| b.model.contains("claude"))
        .collect();
    assert!(anthropic.len() >= 2, "{:?}", server.batch_log());
    assert!(
        anthropic[1..]
            .iter()
            .any(|b| b.results.iter().any(|(id, _)| id.starts_with("r5-triage-"))),
        "{:?}",
        server.batch_log()
    );
    let replies: usize = server
        .batches()
        .iter()
        .filter(|b| b.model.contains("gpt"))
        .map(|b| b.results.len())
        .sum();
    assert_eq!(replies, 7);
    for batch in server.batches() {
        let mut ids: Vec<_> = batch.results.iter().map(|(id, _)| id.clone()).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), batch.results.len());
    }
}

#[test]
fn rows_killed_while_polling_are_collected_by_a_rerun_without_submitting_again() {
    let server = FakeServer::start();
    server.set_batch_knobs(BatchKnobs {
        delay: Duration::from_secs(2),
        ..BatchKnobs::default()
    });
    let place = Place::new();
    write(&place, &server, 12);
    let mut host = String::new();
    let args = args(&server, &mut host, &[]);
    let mut child: Child = place
        .command(&args, &[])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while server.batch_count("poll") < 2 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{:?}",
            server.batch_log()
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "{:?}",
            server.batch_log()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(server.batch_count("create"), 1);
    let state = std::fs::read_to_string(&place.state_files()[0]).unwrap();
    assert!(state.contains("\"label\":\"r11-triage\""), "{state}");
    let out = run(&place, &server, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    // The triage batch was waited on, not sent again; only the replies' batch is new.
    assert_eq!(server.batch_count("create"), 2, "{:?}", server.batch_log());
    all_succeeded_in_order(&rows(&String::from_utf8_lossy(&out.stdout)), 12);
    assert!(place.state_files().is_empty());
}

#[test]
fn detached_rows_are_collected_by_runs_resume() {
    let (server, place) = detachable(6);
    let out = run(&place, &server, &["--detach", "--out", "out"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let run_id = run_id(&out);
    assert!(!run_id.is_empty() && !run_id.contains('\n'), "{run_id}");
    assert!(
        stderr(&out).contains("detached: 1 batch submitted"),
        "{}",
        stderr(&out)
    );
    // Nothing told yet: the rows are the resumed run's.
    assert!(!place.path().join("out/results.jsonl").exists());
    let list = place.command(&["runs", "list"], &[]).output().unwrap();
    let list = String::from_utf8_lossy(&list.stdout);
    assert!(
        list.contains("pending batches") && list.contains(&run_id),
        "{list}"
    );
    // The history shows the run as submitted, not interrupted.
    let line = list.lines().find(|l| l.starts_with(&run_id)).unwrap();
    assert!(line.contains("submitted"), "{list}");

    let out = place
        .command(&["runs", "resume", &run_id], &[])
        .output()
        .unwrap();
    place.assert_no_key(&out);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(server.batch_count("create"), 2, "{:?}", server.batch_log());
    let told = rows(&std::fs::read_to_string(place.path().join("out/results.jsonl")).unwrap());
    assert_eq!(told.len(), 6);
    assert!(told.iter().all(|r| r["status"] == "succeeded"));
    assert!(place.state_files().is_empty());
    // Collected, the same run is succeeded: one run in the history, under its id.
    let list = place
        .command(&["runs", "list", "--json"], &[])
        .output()
        .unwrap();
    let runs: Value = serde_json::from_slice(&list.stdout).unwrap();
    let runs = runs.as_array().unwrap();
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0]["run_id"], run_id.as_str(), "{runs:?}");
    assert_eq!(runs[0]["status"], "succeeded", "{runs:?}");
    let run: Value =
        serde_json::from_str(&std::fs::read_to_string(place.path().join("out/run.json")).unwrap())
            .unwrap();
    assert_eq!(run["run_id"], run_id.as_str());
}

/// The ids of the triage requests in the fake's batches, every batch's.
fn triage_ids(server: &FakeServer) -> Vec<String> {
    server
        .batches()
        .iter()
        .flat_map(|b| b.results.iter().map(|(id, _)| id.clone()))
        .filter(|id| id.contains("-triage-"))
        .collect()
}

#[test]
fn detach_submits_the_first_wave_of_every_row_however_many_the_window_holds() {
    let (server, place) = detachable(7);
    // A window of 3 rows, batches of at most 2 requests: 7 rows are more than a
    // window, as 50,001 rows are with the real limits.
    let env = [
        ("BYOK_FLOW_BATCH_WINDOW", "3"),
        ("BYOK_FLOW_BATCH_MAX_REQUESTS", "2"),
    ];
    let mut host = String::new();
    let detach = args(&server, &mut host, &["--detach", "--out", "out"]);
    let out = place.command(&detach, &env).output().unwrap();
    place.assert_no_key(&out);
    assert!(out.status.success(), "{}", stderr(&out));
    let run_id = run_id(&out);
    assert!(!run_id.is_empty() && !run_id.contains('\n'), "{run_id}");
    // Every row's first agent is in a batch, each row once, none of the second
    // wave yet, and no batch over the limit.
    let mut submitted = triage_ids(&server);
    submitted.sort();
    let rows: Vec<String> = submitted
        .iter()
        .map(|id| id.split('-').next().unwrap().to_string())
        .collect();
    assert_eq!(
        rows,
        ["r0", "r1", "r2", "r3", "r4", "r5", "r6"],
        "{:?}",
        server.batch_log()
    );
    let batches = server.batches();
    assert_eq!(batches.len(), server.batch_count("create"));
    assert!(batches.len() >= 4, "{:?}", server.batch_log());
    assert!(batches.iter().all(|b| b.results.len() <= 2));
    assert_eq!(server.batch_count("upload"), 0, "{:?}", server.batch_log());
    let detached = stderr(&out);
    assert!(
        detached.contains(&format!("detached: {} batches submitted", batches.len())),
        "{detached}"
    );
    // Nothing told: the rows are the collecting run's.
    assert!(!place.path().join("out/results.jsonl").exists());

    let out = place
        .command(&["runs", "resume", &run_id], &env)
        .output()
        .unwrap();
    place.assert_no_key(&out);
    assert!(out.status.success(), "{}", stderr(&out));
    // The first wave was read from the detached run's batches, never submitted
    // again; the second went now.
    assert_eq!(triage_ids(&server).len(), 7, "{:?}", server.batch_log());
    let replies = server
        .batches()
        .iter()
        .flat_map(|b| b.results.iter())
        .filter(|(id, _)| id.contains("-reply-"))
        .count();
    assert_eq!(replies, 7, "{:?}", server.batch_log());
    all_succeeded_in_order(&rows_of(&place), 7);
    assert!(place.state_files().is_empty());
}

#[test]
fn a_detached_row_keeps_what_its_batch_may_cost_reserved() {
    let (server, place) = detachable(7);
    // A triage's worst case at the batch price is $0.0002675: $0.001 holds 3. A row
    // that gives its place in the window once its batch is taken keeps its
    // reservation, so the rows after the third are not submitted. (Rows on stdin:
    // a file's would be refused whole by their estimate, over the budget.)
    let env = [("BYOK_FLOW_BATCH_WINDOW", "2")];
    let mut host = String::new();
    let mut detach = args(&server, &mut host, &["--detach", "--max-usd", "0.001"]);
    detach[3] = "-";
    let rows = std::fs::read(place.path().join("rows.jsonl")).unwrap();
    let mut child = place
        .command(&detach, &env)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), &rows).unwrap();
    let out = child.wait_with_output().unwrap();
    place.assert_no_key(&out);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(triage_ids(&server).len(), 3, "{:?}", server.batch_log());
}

/// The rows of out/results.jsonl.
fn rows_of(place: &Place) -> Vec<Value> {
    rows(&std::fs::read_to_string(place.path().join("out/results.jsonl")).unwrap())
}

#[test]
fn mock_batches_run_rows_offline() {
    let place = Place::new();
    let squad = "version: 1\ninputs:\n  topic: {required: true}\nagents:\n  a: {model: anthropic/claude-haiku-4-5, prompt: \"about {{inputs.topic}}\"}\n  b: {model: openai/gpt-4o-mini, prompt: \"sum {{agents.a.output}}\"}\n";
    std::fs::write(place.path().join("flow.yaml"), squad).unwrap();
    std::fs::write(
        place.path().join("rows.jsonl"),
        "{\"topic\": \"owls\"}\n{\"topic\": \"bats\"}\n{\"topic\": \"eels\"}\n",
    )
    .unwrap();
    let out = place
        .command(
            &[
                "run",
                "flow.yaml",
                "--mock",
                "--batch",
                "--each",
                "rows.jsonl",
            ],
            &[("BYOK_FLOW_MOCK_BATCH_DELAY", "200ms")],
        )
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let told = rows(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(told.len(), 3);
    for (row, topic) in told.iter().zip(["owls", "bats", "eels"]) {
        let b = row["outputs"]["b"].as_str().unwrap();
        assert!(
            b.contains("[mock openai/gpt-4o-mini]") && b.contains(topic),
            "{b}"
        );
    }
    // Two waves, each one batch for the three rows.
    let err = stderr(&out);
    assert_eq!(err.matches("submitted to").count(), 2, "{err}");
    assert_eq!(err.matches(": 3 requests for").count(), 2, "{err}");
}

#[test]
fn estimate_each_batch_is_half_the_regular_total_for_a_model_without_batch_prices() {
    let server = FakeServer::start();
    let place = Place::new();
    write(&place, &server, 50);
    // Neither Claude model has batch prices in the table: half the regular ones.
    let yaml = std::fs::read_to_string(place.path().join("flow.yaml"))
        .unwrap()
        .replace("openai/gpt-4o-mini", "anthropic/claude-sonnet-4-5");
    std::fs::write(place.path().join("flow.yaml"), yaml).unwrap();
    let out = place
        .command(
            &[
                "estimate",
                "flow.yaml",
                "--each",
                "rows.jsonl",
                "--batch",
                "--json",
            ],
            &[],
        )
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let estimate: Value = serde_json::from_slice(&out.stdout).unwrap();
    let batch = estimate["total"]["expected_usd"].as_f64().unwrap();
    let regular = estimate["batch"]["regular_expected_usd"].as_f64().unwrap();
    assert!(regular > 0.0, "{estimate}");
    assert!((batch / regular - 0.5).abs() <= 0.01, "{batch} / {regular}");
    assert!((estimate["batch"]["saving_percent"].as_f64().unwrap() - 50.0).abs() <= 1.0);
    let out = place
        .command(
            &["estimate", "flow.yaml", "--each", "rows.jsonl", "--batch"],
            &[],
        )
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("Called directly the rows would cost") && text.contains("the batch saves"),
        "{text}"
    );
    assert!(server.requests().is_empty());
}

#[test]
fn the_budget_reserves_every_row_at_batch_prices_across_the_waves() {
    let server = FakeServer::start();
    let place = Place::new();
    write(&place, &server, 10);
    // A triage's worst case is $0.000535 at the regular price and half that at the
    // batch price (`estimate` says so): $0.004 holds every row's triage in the first
    // batch only when reserved at the batch price (at the regular one, 7 would go and
    // 3 would wait for a later batch).
    let out = run(&place, &server, &["--max-usd", "0.004", "--out", "out"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let batches = server.batches();
    assert_eq!(batches.len(), 2, "{:?}", server.batch_log());
    assert_eq!(batches[0].results.len(), 10);
    assert_eq!(batches[1].results.len(), 10);
    let run: Value =
        serde_json::from_str(&std::fs::read_to_string(place.path().join("out/run.json")).unwrap())
            .unwrap();
    let spent = run["cost_usd"].as_f64().unwrap();
    assert!(spent > 0.0 && spent <= 0.004, "{run}");
    assert_eq!(run["rows"]["succeeded"], 10, "{run}");
}
