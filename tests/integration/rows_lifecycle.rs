//! A dataset run's life (SPEC §8): split over shards and merged back byte for
//! byte, killed with `kill -9` and resumed with only what had not finished, and
//! interrupted with Ctrl-C keeping what had; and map agents fed by a planner
//! whose list is too long, not a list, empty, or just right.

use std::io::Read as _;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::rows::{INPUTS, calls, command, flow, lines, run_rows, setup};
use crate::support::byok_flow_process;
use crate::support::fake::{FakeServer, Fault};

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

#[test]
fn shards_merged_equal_the_unsharded_run() {
    let server = FakeServer::start();
    let dir = setup(&server, 11);
    // Each run calls every agent: the cache would make later runs cost $0.
    let whole = run_rows(dir.path(), &server, &["--no-cache", "--out", "whole"]);
    assert_eq!(whole.status.code(), Some(0));
    let shards = 3;
    for k in 1..=shards {
        let out = run_rows(
            dir.path(),
            &server,
            &[
                "--no-cache",
                "--shard",
                &format!("{k}/{shards}"),
                "--out",
                &format!("s{k}"),
            ],
        );
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let rows: Vec<u64> = lines(&read(&dir.path().join(format!("s{k}/results.jsonl"))))
            .iter()
            .map(|r| r["row"].as_u64().unwrap())
            .collect();
        let expected: Vec<u64> = (0..11).filter(|i| i % shards == k - 1).collect();
        assert_eq!(rows, expected, "shard {k}/{shards} runs i % N == K - 1");
    }
    let merge = |dirs: &[&str], out: &str| {
        byok_flow_process(dir.path())
            .arg("merge")
            .args(dirs)
            .args(["--out", out])
            .output()
            .unwrap()
    };
    // In any order of the folders.
    let out = merge(&["s3", "s1", "s2"], "merged");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Each row's seconds are its calls' and differ from run to run.
    let timeless = |path: &str| -> Vec<Value> {
        let mut rows = lines(&read(&dir.path().join(path)));
        for row in &mut rows {
            assert!(row["seconds"].as_f64().is_some(), "{row}");
            row.as_object_mut().unwrap().remove("seconds");
        }
        rows
    };
    assert_eq!(
        timeless("merged/results.jsonl"),
        timeless("whole/results.jsonl"),
        "the merge is the unsharded run's results, but for each row's seconds"
    );
    let record =
        |path: &str| -> Value { serde_json::from_str(&read(&dir.path().join(path))).unwrap() };
    let (merged, unsharded) = (record("merged/run.json"), record("whole/run.json"));
    assert_eq!(merged["rows"], unsharded["rows"]);
    assert_eq!(merged["usage"], unsharded["usage"]);
    assert!(
        (merged["cost_usd"].as_f64().unwrap() - unsharded["cost_usd"].as_f64().unwrap()).abs()
            < 1e-6,
        "costs summed: {} vs {}",
        merged["cost_usd"],
        unsharded["cost_usd"]
    );
    for (m, u) in merged["agents"]
        .as_array()
        .unwrap()
        .iter()
        .zip(unsharded["agents"].as_array().unwrap())
    {
        assert_eq!(m["calls"], u["calls"]);
        assert_eq!(m["usage"], u["usage"]);
    }
    assert!(merged.get("shard").is_none());

    let out = merge(&["s1", "s3"], "bad");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("shard 2/3 is missing"));
    let out = merge(&["s1", "s2", "s3", "s2"], "bad");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("shard 2/3 is given twice: s2 and s2"));
    // A shard that stopped short, or lost a row on the way.
    let s2 = dir.path().join("s2/results.jsonl");
    let text = read(&s2);
    let kept: Vec<&str> = text.lines().collect();
    std::fs::write(&s2, kept[..kept.len() - 1].join("\n") + "\n").unwrap();
    let out = merge(&["s1", "s2", "s3"], "bad");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("the shards hold 10 rows; the file has 11: shard 2/3 (s2) has 3 of its 4"),
        "{err}"
    );
    std::fs::write(&s2, [kept[0], kept[2], kept[3]].join("\n") + "\n").unwrap();
    let out = merge(&["s1", "s2", "s3"], "bad");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("row 4 is missing (shard 2/3, s2)"), "{err}");
    assert!(
        !dir.path().join("bad/results.jsonl").exists(),
        "nothing half-merged"
    );
}

/// Waits until `path` has at least `n` lines, or fails the test after a while.
fn wait_for_lines(path: &Path, n: usize, child: &mut std::process::Child) {
    let start = Instant::now();
    while read(path).lines().count() < n {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the run ended ({status}) before {n} rows were written");
        }
        assert!(start.elapsed() < Duration::from_mins(1), "rows never came");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Killed with `kill -9` at a random point and run again with the same command:
/// every line written is whole, and only the agents of rows that had not finished
/// are called again.
#[test]
fn a_killed_dataset_run_resumes_with_only_what_had_not_finished() {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as usize;
    for point in [1 + seed % 4, 5 + seed % 5] {
        let server = FakeServer::start();
        let dir = setup(&server, 16);
        server.set_latency(Duration::from_millis(120));
        let results = dir.path().join("out/results.jsonl");
        let mut child = command(
            dir.path(),
            &server,
            &[
                "run",
                "flow.yaml",
                "--each",
                "rows.jsonl",
                "--out",
                "out",
                "--concurrency",
                "3",
            ],
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
        wait_for_lines(&results, point, &mut child);
        child.kill().unwrap(); // SIGKILL: no clean-up runs
        child.wait().unwrap();
        let text = read(&results);
        assert!(
            text.is_empty() || text.ends_with('\n'),
            "a torn last line: {text:?}"
        );
        let written: Vec<u64> = lines(&text)
            .iter()
            .map(|r| r["row"].as_u64().unwrap())
            .collect();
        assert!(written.len() >= point);
        assert_eq!(written, (0..written.len() as u64).collect::<Vec<_>>());
        assert!(
            !dir.path().join("out/run.json").exists(),
            "killed before its end"
        );
        // A request the killed run had sent may still be on its way into the
        // server's log: wait until the log stops growing.
        let mut before = calls(&server);
        loop {
            std::thread::sleep(Duration::from_millis(200));
            let now = calls(&server);
            if now.len() == before.len() {
                break;
            }
            before = now;
        }
        let cached = crate::cache::cached_keys(&dir.path().join("cache"));

        server.set_latency(Duration::ZERO);
        let out = run_rows(dir.path(), &server, &["--out", "out"]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let again: Vec<(String, u64)> = calls(&server).split_off(before.len());
        for (marker, row) in &again {
            assert!(
                !written.contains(row),
                "row {row} had finished, yet {marker} was called again"
            );
        }
        let mut unique = again.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), again.len(), "each agent once: {again:?}");
        assert_eq!(
            again.len(),
            32 - cached,
            "exactly the agents whose answers were not kept are called: {again:?}"
        );
        let rows = lines(&read(&results));
        assert_eq!(rows.len(), 16);
        assert!(rows.iter().all(|r| r["status"] == "succeeded"));
    }
}

/// Ctrl-C mid-dataset: the calls in flight are cancelled, the finished rows are
/// kept in `results.jsonl`, every line whole, and the run exits 130.
#[test]
fn ctrl_c_keeps_the_rows_that_had_finished() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("flow.yaml"),
        format!("version: 1\n{INPUTS}providers:\n  mock: {{latency: 150ms}}\nagents:\n  a:\n    model: mock/echo\n    prompt: \"Row {{{{inputs.n}}}}\"\n"),
    )
    .unwrap();
    crate::rows::write_rows(dir.path(), 40);
    let mut child = byok_flow_process(dir.path())
        .args([
            "run",
            "flow.yaml",
            "--each",
            "rows.jsonl",
            "--mock",
            "--out",
            "out",
            "--concurrency",
            "2",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let results = dir.path().join("out/results.jsonl");
    wait_for_lines(&results, 3, &mut child);
    let pid = child.id().to_string();
    let kill = std::process::Command::new("/bin/kill")
        .args(["-INT", &pid])
        .status()
        .unwrap();
    assert!(kill.success());
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    let kept = lines(&read(&results));
    assert_eq!(kept, lines(&stdout), "stdout and the file agree");
    assert!(kept.len() >= 3 && kept.len() < 40, "{}", kept.len());
    let first_interrupted = kept.iter().position(|r| r["status"] == "interrupted");
    let done = first_interrupted.unwrap_or(kept.len());
    assert!(done >= 3);
    assert!(kept[..done].iter().all(|r| r["status"] == "succeeded"));
    assert!(kept[done..].iter().all(|r| r["status"] == "interrupted"));
    for (i, r) in kept.iter().enumerate() {
        assert_eq!(r["row"], i);
    }
    let record: Value = serde_json::from_str(&read(&dir.path().join("out/run.json"))).unwrap();
    assert_eq!(record["status"], "interrupted");
    assert_eq!(record["rows"]["total"], kept.len());
}

/// A planner returns a list; a map agent writes one section per item; an editor
/// joins them.
const MAP: &str = "  planner:
    model: openai/gpt-4o
    output: json
    prompt: \"marker-planner row 0 plan {{inputs.topic}}\"
    max_tokens: 100
  writer:
    model: anthropic/claude-sonnet-4-5
    for_each: agents.planner.json.sections
    max_items: 3
    prompt: \"marker-writer row {{item_index}} write {{item.title}}\"
    max_tokens: 100
  editor:
    model: openai/gpt-4o
    prompt: \"marker-editor row 0 join {{#each agents.writer.outputs}}<{{this}}>{{/each}}\"
    max_tokens: 100
";

fn run_map(reply: &str) -> (Value, Vec<(String, u64)>, i32, Vec<String>) {
    run_map_with(reply, &[], |_| {})
}

/// `run_map` with more arguments, and faults scripted on the server first.
fn run_map_with(
    reply: &str,
    args: &[&str],
    script: impl FnOnce(&FakeServer),
) -> (Value, Vec<(String, u64)>, i32, Vec<String>) {
    let server = FakeServer::start();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("flow.yaml"), flow(&server, INPUTS, MAP)).unwrap();
    server.script("marker-planner", [Fault::Reply(reply.to_string())]);
    script(&server);
    let out = command(
        dir.path(),
        &server,
        &[
            "run",
            "flow.yaml",
            "--json",
            "--input",
            "n=0",
            "--input",
            "topic=otters",
        ],
    )
    .args(args)
    .output()
    .unwrap();
    let record: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("{e}: {}", String::from_utf8_lossy(&out.stderr));
    });
    let prompts = server
        .requests()
        .iter()
        .filter_map(|r| r.body["messages"][0]["content"].as_str().map(String::from))
        .collect();
    (
        record,
        calls(&server),
        out.status.code().unwrap_or(-1),
        prompts,
    )
}

fn agent<'a>(record: &'a Value, name: &str) -> &'a Value {
    record["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == name)
        .unwrap_or_else(|| panic!("no `{name}` in {record}"))
}

#[test]
fn a_map_agent_runs_once_per_item_of_the_planners_list() {
    let (record, called, code, prompts) =
        run_map(r#"{"sections": [{"title": "Rivers"}, {"title": "Food"}, {"title": "Play"}]}"#);
    assert_eq!(code, 0, "{record}");
    let writers: Vec<&str> = record["agents"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["name"].as_str().filter(|n| n.starts_with("writer")))
        .collect();
    assert_eq!(
        writers,
        ["writer[0]", "writer[1]", "writer[2]"],
        "a line each"
    );
    assert_eq!(agent(&record, "writer[1]")["item"], 1);
    let mut items_called: Vec<u64> = called
        .iter()
        .filter(|(m, _)| m == "marker-writer")
        .map(|(_, i)| *i)
        .collect();
    items_called.sort_unstable();
    assert_eq!(items_called, [0, 1, 2], "each item its own call");
    assert_eq!(agent(&record, "editor")["status"], "succeeded");
    assert!(
        prompts.contains(
            &"marker-editor row 0 join <fake reply to: marker-writer row 0 write Rivers><fake reply to: marker-writer row 1 write Food><fake reply to: marker-writer row 2 write Play>"
                .to_string()
        ),
        "downstream reads the items' outputs in order: {prompts:?}"
    );
}

#[test]
fn a_map_agent_fed_too_many_items_fails_before_any_call() {
    let (record, called, code, _) = run_map(
        r#"{"sections": [{"title": "a"}, {"title": "b"}, {"title": "c"}, {"title": "d"}]}"#,
    );
    assert_eq!(code, 1);
    let writer = agent(&record, "writer");
    assert_eq!(writer["status"], "failed");
    assert_eq!(
        writer["reason"],
        "`for_each: agents.planner.json.sections` holds 4 items, more than `max_items: 3`; none was run (raise `max_items`, or ask for fewer)"
    );
    assert!(
        called.iter().all(|(m, _)| m != "marker-writer"),
        "{called:?}"
    );
    assert_eq!(agent(&record, "editor")["status"], "skipped");
}

#[test]
fn a_map_agent_fed_something_else_than_a_list_fails() {
    let (record, called, code, _) = run_map(r#"{"sections": "three sections"}"#);
    assert_eq!(code, 1);
    assert_eq!(
        agent(&record, "writer")["reason"],
        "`for_each: agents.planner.json.sections` is a string, not a list: `planner` did not reply with an array there"
    );
    assert!(called.iter().all(|(m, _)| m != "marker-writer"));
    let (record, _, code, _) = run_map(r#"{"parts": []}"#);
    assert_eq!(code, 1);
    assert_eq!(
        agent(&record, "writer")["reason"],
        "`for_each: agents.planner.json.sections`: `planner`'s reply has no `sections`"
    );
}

#[test]
fn a_map_agent_fed_an_empty_list_makes_no_call_and_its_dependents_run() {
    let (record, called, code, _) = run_map(r#"{"sections": []}"#);
    assert_eq!(code, 0, "{record}");
    let writer = agent(&record, "writer");
    assert_eq!(writer["status"], "succeeded");
    assert!(called.iter().all(|(m, _)| m != "marker-writer"));
    assert_eq!(
        agent(&record, "editor")["output"],
        "fake reply to: marker-editor row 0 join"
    );
}

/// A failed item fails the map agent and skips what reads it; with
/// `--keep-going` the other items still run, each its own call and record.
#[test]
fn a_failed_item_fails_the_map_agent_and_keep_going_runs_the_others() {
    let three = r#"{"sections": [{"title": "Rivers"}, {"title": "Food"}, {"title": "Play"}]}"#;
    let (record, called, code, _) = run_map_with(three, &["--keep-going"], |server| {
        server.script("write Food", [Fault::status(400)]);
    });
    assert_eq!(code, 1, "{record}");
    assert_eq!(agent(&record, "writer[1]")["status"], "failed");
    assert!(
        agent(&record, "writer[1]")["reason"]
            .as_str()
            .unwrap()
            .contains("400"),
        "{record}"
    );
    assert_eq!(agent(&record, "writer[0]")["status"], "succeeded");
    assert_eq!(agent(&record, "writer[2]")["status"], "succeeded");
    assert_eq!(agent(&record, "editor")["status"], "skipped");
    let mut items: Vec<u64> = called
        .iter()
        .filter(|(m, _)| m == "marker-writer")
        .map(|(_, i)| *i)
        .collect();
    items.sort_unstable();
    assert_eq!(items, [0, 1, 2], "every item was called once: {called:?}");
    assert!(called.iter().all(|(m, _)| m != "marker-editor"));
}

/// `estimate` counts a map agent's calls: the real items of an input list, and
/// `max_items` for a list an agent replies with.
#[test]
fn the_estimate_counts_the_items_of_a_map_agent() {
    let server = FakeServer::start();
    let dir = tempfile::tempdir().unwrap();
    let agents = format!(
        "{MAP}  each_topic:
    model: openai/gpt-4o
    for_each: inputs.topic
    prompt: \"marker-t item {{{{item_index}}}}: {{{{item}}}}\"
    max_tokens: 50
"
    );
    std::fs::write(dir.path().join("flow.yaml"), flow(&server, INPUTS, &agents)).unwrap();
    std::fs::write(
        dir.path().join("topics.json"),
        r#"["otters", "beavers", "voles", "moles", "shrews"]"#,
    )
    .unwrap();
    let out = command(
        dir.path(),
        &server,
        &[
            "estimate",
            "flow.yaml",
            "--json",
            "--input",
            "n=0",
            "--input",
            "topic=@topics.json",
        ],
    )
    .output()
    .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let estimate: Value = serde_json::from_slice(&out.stdout).unwrap();
    let items = |name: &str| {
        estimate["agents"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["name"] == name)
            .unwrap_or_else(|| panic!("no `{name}` in {estimate}"))["items"]
            .clone()
    };
    assert_eq!(items("each_topic"), 5, "the input list's real items");
    assert_eq!(items("writer"), 3, "`max_items` of the planner's list");
    assert_eq!(items("planner"), Value::Null, "one call, not a map agent");
    assert!(server.requests().is_empty(), "an estimate sends nothing");
}

/// `graph` draws a map agent as a stack, labelled with its list: in Mermaid, DOT
/// and SVG.
#[test]
fn graph_draws_a_map_agent_as_a_stack() {
    let server = FakeServer::start();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("flow.yaml"), flow(&server, INPUTS, MAP)).unwrap();
    let graph = |format: &str| {
        let out = byok_flow_process(dir.path())
            .args(["graph", "flow.yaml", "--format", format])
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
    let mermaid = graph("mermaid");
    assert!(
        mermaid.contains("a_writer@{ shape: processes, label: \"writer<br/>anthropic/claude-sonnet-4-5<br/>for each agents.planner.json.sections (at most 3)\" }"),
        "{mermaid}"
    );
    assert!(mermaid.contains("a_planner[\""), "{mermaid}");
    let dot = graph("dot");
    assert!(
        dot.contains("\"writer\" [label=\"writer\\nanthropic/claude-sonnet-4-5\\nfor each agents.planner.json.sections (at most 3)\", shape=box3d];"),
        "{dot}"
    );
    assert!(
        dot.contains("\"editor\" [label=\"editor\\nopenai/gpt-4o\"];"),
        "{dot}"
    );
    let svg = graph("svg");
    let boxes = |agent: &str| {
        let start = svg.find(&format!("data-agent=\"{agent}\"")).unwrap();
        let end = svg[start + 1..]
            .find("data-agent=")
            .map_or(svg.len(), |e| start + 1 + e);
        svg[start..end].matches("<rect").count()
    };
    assert_eq!(
        (boxes("planner"), boxes("writer"), boxes("editor")),
        (1, 3, 1),
        "{svg}"
    );
}

#[test]
fn a_map_agent_over_an_input_list_in_each_row() {
    let server = FakeServer::start();
    let dir = tempfile::tempdir().unwrap();
    let agents = "  t:
    model: openai/gpt-4o
    for_each: inputs.topic
    prompt: \"marker-t row {{inputs.n}} item {{item_index}} {{item}}\"
    max_tokens: 50
";
    std::fs::write(dir.path().join("flow.yaml"), flow(&server, INPUTS, agents)).unwrap();
    std::fs::write(
        dir.path().join("rows.jsonl"),
        "{\"n\": 0, \"topic\": [\"a\", \"b\"]}\n{\"n\": 1, \"topic\": []}\n{\"n\": 2, \"topic\": \"not a list\"}\n",
    )
    .unwrap();
    let out = run_rows(dir.path(), &server, &[]);
    assert_eq!(out.status.code(), Some(1));
    let rows = lines(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(rows[0]["status"], "succeeded");
    assert_eq!(
        rows[0]["outputs"]["t"],
        "fake reply to: marker-t row 0 item 0 a\n\nfake reply to: marker-t row 0 item 1 b"
    );
    assert_eq!(rows[1]["status"], "succeeded");
    assert_eq!(rows[2]["status"], "failed");
    assert_eq!(rows[2]["error"]["agent"], "t");
    assert!(
        rows[2]["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("`for_each: inputs.topic` is not JSON"),
        "{}",
        rows[2]
    );
}
