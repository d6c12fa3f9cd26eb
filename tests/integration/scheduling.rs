//! How a `--mock` run schedules its agents: after a failure, with and without
//! `--keep-going`; on Ctrl-C; and under `--concurrency` and a provider's own
//! `max_concurrency`. The order of progress lines is asserted, never wall-clock time.

use std::io::{BufRead, BufReader, Read};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::run::{has, progress, run_mock, text, write};
use crate::snapshot;
use crate::support::byok_flow_process;

/// Two branches: `broken` fails at once (on a fast mock), `slow` takes 500 ms.
const FAILING: &str = "version: 1
providers:
  mock:
    latency: 500ms
  quick:
    type: mock
    latency: 1ms
agents:
  broken:
    model: quick/fail
    prompt: This call fails.
  after-broken:
    model: mock/echo
    prompt: \"Use {{agents.broken.output}}\"
  slow:
    model: mock/echo
    prompt: An independent branch.
  after-slow:
    model: mock/echo
    prompt: \"Then {{agents.slow.output}}\"
";

#[test]
fn after_a_failure_no_new_agent_starts() {
    let home = tempfile::tempdir().unwrap();
    let file = write(home.path(), "failing.yaml", FAILING);
    let output = run_mock(home.path(), &file, &[]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    let events = progress(&stderr);
    assert!(has(&events, "failed", "broken"), "{stderr}");
    assert!(
        stderr.contains("skipped  after-broken: `broken` did not succeed"),
        "{stderr}"
    );
    assert!(
        has(&events, "ok", "slow"),
        "what was running finishes: {stderr}"
    );
    assert!(!has(&events, "started", "after-slow"), "{stderr}");
    assert!(
        stderr.contains("skipped  after-slow: the run stopped after a failure (use --keep-going"),
        "{stderr}"
    );
    assert!(
        stderr.ends_with("The run failed: `broken` failed, 2 agents skipped.\n"),
        "{stderr}"
    );
    assert!(output.stdout.is_empty(), "no sink agent succeeded");
    snapshot!("run_failure", output);
}

#[test]
fn keep_going_finishes_the_independent_branches() {
    let home = tempfile::tempdir().unwrap();
    let file = write(home.path(), "failing.yaml", FAILING);
    let output = run_mock(home.path(), &file, &["--keep-going", "--json"]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    let record: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(record["status"], "failed");
    let status: Vec<(&str, &str)> = record["agents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["name"].as_str().unwrap(), a["status"].as_str().unwrap()))
        .collect();
    assert_eq!(
        status,
        [
            ("broken", "failed"),
            ("after-broken", "skipped"),
            ("slow", "succeeded"),
            ("after-slow", "succeeded"),
        ]
    );
    assert_eq!(
        record["agents"][0]["reason"],
        "the mock model `fail` always fails (use another model id to get a reply)"
    );
    assert_eq!(record["agents"][1]["reason"], "`broken` did not succeed");
    let events = progress(&stderr);
    assert!(
        has(&events, "started", "after-slow") && has(&events, "ok", "after-slow"),
        "{stderr}"
    );
    assert!(!has(&events, "started", "after-broken"), "{stderr}");

    let plain = run_mock(home.path(), &file, &["--keep-going"]);
    snapshot!("run_failure_keep_going", plain);
}

/// Waits for the child to exit, killing it after `limit`.
fn wait(mut child: std::process::Child, limit: Duration) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if start.elapsed() > limit {
            child.kill().unwrap();
            panic!("byok-flow did not exit within {limit:?} of Ctrl-C");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn ctrl_c_cancels_what_runs_and_keeps_what_finished() {
    let home = tempfile::tempdir().unwrap();
    write(
        home.path(),
        "slow.yaml",
        "version: 1
providers:
  mock:
    latency: 10s
  quick:
    type: mock
    latency: 1ms
agents:
  notes:
    model: quick/echo
    prompt: Quick notes.
  draft:
    model: mock/echo
    prompt: A long draft.
  final:
    model: mock/echo
    prompt: \"Merge {{agents.notes.output}} and {{agents.draft.output}}\"
",
    );
    let mut child = byok_flow_process(home.path())
        .args(["run", "slow.yaml", "--mock", "--out", "out"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (lines, seen) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(stderr).lines() {
            let line = line.unwrap();
            all.push_str(&line);
            all.push('\n');
            let _ = lines.send(line);
        }
        all
    });
    // Interrupt once `notes` has finished and `draft` is running.
    let mut notes_done = false;
    let mut draft_running = false;
    while !(notes_done && draft_running) {
        let line = seen
            .recv_timeout(Duration::from_secs(30))
            .expect("the run shows its progress");
        notes_done |= line.contains("ok       notes");
        draft_running |= line.contains("started  draft");
    }
    std::thread::sleep(Duration::from_millis(300));
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
    let status = wait(child, Duration::from_secs(30));
    let stderr = reader.join().unwrap();

    assert_eq!(status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("cancelled draft"), "{stderr}");
    assert!(stderr.contains("skipped  final: interrupted"), "{stderr}");
    assert!(
        stderr.ends_with(
            "The run was interrupted: 1 agent cancelled, 1 agent not started, 1 agent finished.\n"
        ),
        "{stderr}"
    );
    assert_eq!(stdout, "", "no declared or sink output finished");
    let out = home.path().join("out");
    assert!(
        std::fs::read_to_string(out.join("notes.md"))
            .unwrap()
            .contains("Quick notes."),
        "what finished is kept"
    );
    assert!(!out.join("draft.md").exists());
    let record: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("run.json")).unwrap()).unwrap();
    assert_eq!(record["status"], "interrupted");
    let status: Vec<&str> = record["agents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["status"].as_str().unwrap())
        .collect();
    assert_eq!(status, ["succeeded", "cancelled", "skipped"]);
}

/// Four agents that do not depend on each other, 200 ms each.
const FOUR: &str = "version: 1
providers:
  mock:
    latency: 200ms
agents:
  a:
    model: mock/echo
    prompt: One.
  b:
    model: mock/echo
    prompt: Two.
  c:
    model: mock/echo
    prompt: Three.
  d:
    model: mock/echo
    prompt: Four.
";

/// The most agents the progress lines show running at once.
fn most_at_once(stderr: &str) -> usize {
    let mut running = 0usize;
    let mut most = 0;
    for (what, _) in progress(stderr) {
        match what.as_str() {
            "started" => running += 1,
            "ok" | "failed" => running -= 1,
            _ => {}
        }
        most = most.max(running);
    }
    most
}

#[test]
fn concurrency_bounds_the_agents_running_at_once() {
    let home = tempfile::tempdir().unwrap();
    let file = write(home.path(), "four.yaml", FOUR);
    for (args, most) in [
        (&["--concurrency", "2"][..], 2),
        (&["--concurrency", "1"][..], 1),
        (&[][..], 4),
    ] {
        let output = run_mock(home.path(), &file, args);
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(0), "{stderr}");
        assert_eq!(most_at_once(&stderr), most, "{args:?}: {stderr}");
        let events = progress(&stderr);
        assert_eq!(
            events.iter().filter(|(w, _)| w == "ok").count(),
            4,
            "{stderr}"
        );
    }
}

#[test]
fn a_provider_limit_bounds_its_own_agents() {
    let home = tempfile::tempdir().unwrap();
    let file = write(
        home.path(),
        "four.yaml",
        &FOUR.replace(
            "    latency: 200ms\n",
            "    latency: 200ms\n    max_concurrency: 1\n",
        ),
    );
    let output = run_mock(home.path(), &file, &[]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert_eq!(most_at_once(&stderr), 1, "{stderr}");
}
