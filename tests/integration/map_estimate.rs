//! A map agent's input list longer than its `max_items` (SPEC §8): `run` fails the
//! agent before any of its calls, so `estimate` (and `run --dry-run`) refuse the
//! run instead of showing a cost for it, and `estimate --each` counts such a row
//! as one that cannot be run.

use serde_json::Value;

use crate::rows::{INPUTS, command, flow, lines};
use crate::support::fake::FakeServer;

/// One map agent over the `topic` input, at most three items.
const OVER_TOPICS: &str = "  t:
    model: openai/gpt-4o
    for_each: inputs.topic
    max_items: 3
    prompt: \"marker-t row {{inputs.n}} item {{item_index}} {{item}}\"
    max_tokens: 50
";

const REASON: &str = "`for_each: inputs.topic` holds 5 items, more than `max_items: 3`";

fn folder(server: &FakeServer) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("flow.yaml"),
        flow(server, INPUTS, OVER_TOPICS),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("five.json"),
        r#"["otters", "beavers", "voles", "moles", "shrews"]"#,
    )
    .unwrap();
    std::fs::write(
        dir.path().join("three.json"),
        r#"["otters", "beavers", "voles"]"#,
    )
    .unwrap();
    dir
}

#[test]
fn estimate_refuses_an_input_list_over_max_items_as_run_fails_it() {
    let server = FakeServer::start();
    let dir = folder(&server);
    let given = ["--input", "n=0", "--input", "topic=@five.json"];

    // The contract: `run` fails the agent before any of its calls.
    let out = command(dir.path(), &server, &["run", "flow.yaml", "--json"])
        .args(given)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let record: Value = serde_json::from_slice(&out.stdout).unwrap();
    let t = &record["agents"][0];
    assert_eq!(t["status"], "failed", "{record}");
    assert_eq!(
        t["reason"],
        format!("{REASON}; none was run (raise `max_items`, or ask for fewer)")
    );
    assert!(server.requests().is_empty());

    // So the estimate shows no cost: it says why the run cannot happen.
    for args in [
        &["estimate", "flow.yaml"][..],
        &["estimate", "flow.yaml", "--json"],
        &["run", "flow.yaml", "--dry-run"],
    ] {
        let out = command(dir.path(), &server, args)
            .args(given)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{args:?}: no cost is shown");
        assert!(
            stderr.contains(&format!(
                "agent `t` would fail before any of its calls, so this run cannot happen: {REASON}; raise `max_items`, or pass fewer items"
            )),
            "{args:?}: {stderr}"
        );
    }
    assert!(server.requests().is_empty(), "an estimate sends nothing");

    // At `max_items` exactly, the list runs and is counted item by item.
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
            "topic=@three.json",
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
    assert_eq!(estimate["agents"][0]["items"], 3, "{estimate}");
}

/// An input list that is not a list fails its agent in `run` too: refused alike.
#[test]
fn estimate_refuses_an_input_list_that_is_not_a_list() {
    let server = FakeServer::start();
    let dir = folder(&server);
    let out = command(
        dir.path(),
        &server,
        &[
            "estimate",
            "flow.yaml",
            "--input",
            "n=0",
            "--input",
            "topic={\"a\": 1}",
        ],
    )
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(out.stdout.is_empty());
    assert!(
        stderr.contains("agent `t` would fail before any of its calls, so this run cannot happen: `for_each: inputs.topic` is an object, not a list"),
        "{stderr}"
    );
}

/// `estimate --each`: a row whose list is over `max_items` (or not a list) is a row
/// that cannot be run, named with its line, and left out of the totals; the
/// others are estimated.
#[test]
fn estimate_each_names_the_rows_whose_input_list_would_fail() {
    let server = FakeServer::start();
    let dir = folder(&server);
    std::fs::write(
        dir.path().join("rows.jsonl"),
        "{\"n\": 0, \"topic\": [\"a\", \"b\"]}\n{\"n\": 1, \"topic\": [\"a\", \"b\", \"c\", \"d\", \"e\"]}\n{\"n\": 2, \"topic\": \"not a list\"}\n",
    )
    .unwrap();
    let out = command(
        dir.path(),
        &server,
        &["estimate", "flow.yaml", "--each", "rows.jsonl", "--json"],
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
    assert_eq!(estimate["rows"], 1, "{estimate}");
    assert_eq!(estimate["bad_rows"], 2, "{estimate}");
    assert_eq!(
        estimate["agents"][0]["calls"], 2,
        "row 0's two items: {estimate}"
    );
    let bad = &estimate["first_bad_rows"];
    assert_eq!(bad[0]["row"], 1, "{estimate}");
    assert_eq!(
        bad[0]["message"],
        format!(
            "agent `t` would fail before any of its calls: {REASON}; raise `max_items`, or pass fewer items"
        )
    );
    assert_eq!(bad[1]["row"], 2, "{estimate}");
    assert!(
        bad[1]["message"].as_str().unwrap().starts_with(
            "agent `t` would fail before any of its calls: `for_each: inputs.topic` is not JSON"
        ),
        "{estimate}"
    );

    // And the run agrees: those two rows fail, the first succeeds.
    let out = command(
        dir.path(),
        &server,
        &["run", "flow.yaml", "--each", "rows.jsonl"],
    )
    .output()
    .unwrap();
    let rows = lines(&String::from_utf8_lossy(&out.stdout));
    let statuses: Vec<&str> = rows.iter().map(|r| r["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["succeeded", "failed", "failed"]);
}
