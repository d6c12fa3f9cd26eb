//! `byok-flow run --mock`, offline: the results and nothing else on stdout,
//! progress and the closing table on stderr, `--json`, `--out`, inputs, failures
//! with and without `--keep-going`, Ctrl-C, and `--concurrency`.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::snapshot;
use crate::support::{byok_flow, byok_flow_process, example};

/// A run that takes longer has hung: fail it rather than the whole suite.
const TIMEOUT: Duration = Duration::from_secs(60);

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// `byok-flow run FILE --mock ARGS...` from `home`.
fn run_mock(home: &Path, file: &Path, args: &[&str]) -> Output {
    byok_flow(home)
        .arg("run")
        .arg(file)
        .arg("--mock")
        .args(args)
        .timeout(TIMEOUT)
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The progress lines' events, without their times: `("started", "writer")`.
fn progress(stderr: &str) -> Vec<(String, String)> {
    stderr
        .lines()
        .filter_map(|line| line.split_once("s] "))
        .filter_map(|(_, event)| {
            let mut words = event.split_whitespace();
            let what = words.next()?.to_string();
            let agent = words.next()?.trim_end_matches(':').to_string();
            Some((what, agent))
        })
        .collect()
}

fn has(events: &[(String, String)], what: &str, agent: &str) -> bool {
    events.iter().any(|(w, a)| w == what && a == agent)
}

const RESEARCH_TOPIC: &str = "topic=Rust async runtimes";

#[test]
fn research_prints_only_its_output_on_stdout() {
    let home = tempfile::tempdir().unwrap();
    let output = run_mock(
        home.path(),
        &example("research.yaml"),
        &["--input", RESEARCH_TOPIC],
    );
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert_eq!(output.status.code(), Some(0), "{stderr}");

    // stdout is the declared output, `article`, exactly: what --json says it is.
    let json = run_mock(
        home.path(),
        &example("research.yaml"),
        &["--input", RESEARCH_TOPIC, "--json"],
    );
    let record: Value = serde_json::from_slice(&json.stdout).unwrap();
    let article = record["outputs"]["article"].as_str().unwrap();
    assert_eq!(stdout, format!("{article}\n"));
    assert!(article.starts_with("[mock openai/gpt-4o-mini] reply to \"Tighten this text:"));

    // stderr: each agent started, then finished, in dependency order, then the table.
    let events = progress(&stderr);
    let order: Vec<(&str, &str)> = events
        .iter()
        .map(|(w, a)| (w.as_str(), a.as_str()))
        .collect();
    assert_eq!(
        order,
        [
            ("started", "researcher"),
            ("ok", "researcher"),
            ("started", "writer"),
            ("ok", "writer"),
            ("started", "editor"),
            ("ok", "editor"),
        ]
    );
    assert!(stderr.lines().any(|l| l.starts_with("total ")), "{stderr}");
    snapshot!("run_research", output);
}

#[test]
fn json_prints_one_run_record() {
    let home = tempfile::tempdir().unwrap();
    let output = run_mock(
        home.path(),
        &example("research.yaml"),
        &["--input", RESEARCH_TOPIC, "--json"],
    );
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let record: Value = serde_json::from_slice(&output.stdout).expect("stdout is one JSON value");
    assert_eq!(record["status"], "succeeded");
    assert_eq!(record["workflow"], "research");
    assert_eq!(record["mock"], true);
    assert_eq!(record["inputs"]["topic"], "Rust async runtimes");
    assert_eq!(
        record["inputs"]["audience"], "software engineers",
        "the default"
    );
    assert_eq!(record["cost_usd"], 0.0);
    let agents = record["agents"].as_array().unwrap();
    let names: Vec<&str> = agents.iter().map(|a| a["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["researcher", "writer", "editor"]);
    let mut total = (0, 0);
    for agent in agents {
        assert_eq!(agent["status"], "succeeded", "{agent}");
        let (input, output) = (
            agent["usage"]["input"].as_u64().unwrap(),
            agent["usage"]["output"].as_u64().unwrap(),
        );
        assert!(input > 0 && output > 0, "{agent}");
        total = (total.0 + input, total.1 + output);
        assert!(agent["output"].as_str().unwrap().starts_with("[mock "));
    }
    assert_eq!(record["usage"]["input"], total.0);
    assert_eq!(record["usage"]["output"], total.1);
    assert_eq!(
        agents[1]["model"], "gpt-4o",
        "the model id without its provider"
    );
    assert_eq!(agents[1]["provider"], "openai");
    // The writer's prompt quotes the researcher's output: the data flowed.
    assert_eq!(
        record["outputs"]["article"].as_str(),
        agents[2]["output"].as_str()
    );
    snapshot!("run_research_json", output);

    // A second run has another run id, start time and timings; the filters hide
    // them, so it matches the same snapshot.
    std::thread::sleep(Duration::from_millis(1100));
    let again = run_mock(
        home.path(),
        &example("research.yaml"),
        &["--input", RESEARCH_TOPIC, "--json"],
    );
    let second: Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_ne!(record["run_id"], second["run_id"]);
    assert_ne!(record["started_at"], second["started_at"]);
    snapshot!("run_research_json", again);
}

#[test]
fn out_writes_a_file_per_agent_and_the_run_record() {
    let home = tempfile::tempdir().unwrap();
    let out = home.path().join("scan");
    let output = run_mock(
        home.path(),
        &example("market-scan.yaml"),
        &[
            "--input",
            "product=an open-source feature-flag service",
            "--out",
            "scan",
            "--json",
        ],
    );
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let files: BTreeSet<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let expected: BTreeSet<String> = [
        "brief.md",
        "competitors.json",
        "customers.md",
        "pricing.md",
        "regulation.md",
        "run.json",
        "swot.md",
        "trends.md",
    ]
    .map(String::from)
    .into();
    assert_eq!(files, expected);

    let run: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("run.json")).unwrap()).unwrap();
    let printed: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(run, printed, "run.json is the record --json prints");
    for agent in run["agents"].as_array().unwrap() {
        let name = agent["name"].as_str().unwrap();
        if name == "competitors" {
            let written: Value = serde_json::from_str(
                &std::fs::read_to_string(out.join("competitors.json")).unwrap(),
            )
            .unwrap();
            assert_eq!(written, agent["json"]);
            assert!(
                written["competitors"].as_array().unwrap().len() >= 3,
                "{written}"
            );
        } else {
            let written = std::fs::read_to_string(out.join(format!("{name}.md"))).unwrap();
            assert_eq!(
                Some(written.as_str()),
                agent["output"].as_str(),
                "{name}.md"
            );
        }
    }
}

#[test]
fn an_input_can_be_read_from_a_file_or_stdin() {
    let home = tempfile::tempdir().unwrap();
    let diff = "--- a/src/lib.rs\n+++ b/src/lib.rs\n@@ -1 +1 @@\n-fn answer() -> u8 { 41 }\n+fn answer() -> u8 { 42 }\n";
    write(home.path(), "changes.diff", diff);
    let output = run_mock(
        home.path(),
        &example("pr-review.yaml"),
        &["--input", "diff=@changes.diff", "--json"],
    );
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let record: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(record["inputs"]["diff"], diff);

    // The mock quotes the start of its prompt, so a prompt that starts with the
    // input shows that the file's text reached it.
    let file = write(
        home.path(),
        "echo.yaml",
        "version: 1\ninputs:\n  notes:\n    required: true\nagents:\n  echo:\n    model: mock/echo\n    prompt: \"{{inputs.notes}}\"\n",
    );
    write(home.path(), "notes.txt", "alpha beta gamma\n");
    let from_file = run_mock(home.path(), &file, &["--input", "notes=@notes.txt", "-q"]);
    assert!(
        text(&from_file.stdout).contains("reply to \"alpha beta gamma\""),
        "{}",
        text(&from_file.stdout)
    );
    let from_stdin = byok_flow(home.path())
        .args(["run", "echo.yaml", "--mock", "-q", "--input", "notes=@-"])
        .write_stdin("delta epsilon\n")
        .timeout(TIMEOUT)
        .output()
        .unwrap();
    assert!(
        text(&from_stdin.stdout).contains("reply to \"delta epsilon\""),
        "{}",
        text(&from_stdin.stdout)
    );
}

#[test]
fn a_missing_input_file_is_a_usage_error() {
    let home = tempfile::tempdir().unwrap();
    let output = run_mock(
        home.path(),
        &example("pr-review.yaml"),
        &["--input", "diff=@nope.diff"],
    );
    assert_eq!(output.status.code(), Some(2));
    assert!(
        text(&output.stderr).starts_with("error: `--input diff=@nope.diff`: cannot read the file")
    );
}

#[test]
fn a_missing_required_input_is_named_with_the_flag_to_pass() {
    let home = tempfile::tempdir().unwrap();
    let output = run_mock(home.path(), &example("research.yaml"), &[]);
    assert_eq!(output.status.code(), Some(2));
    assert!(output.stdout.is_empty());
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("error: missing required input `topic`"),
        "{stderr}"
    );
    assert!(
        stderr.contains("help: pass --input topic=VALUE"),
        "{stderr}"
    );
    assert!(!stderr.contains("started"), "no agent may start: {stderr}");
    snapshot!("run_missing_input", output);
}

#[test]
fn an_unknown_input_gets_the_closest_name() {
    let home = tempfile::tempdir().unwrap();
    let output = run_mock(
        home.path(),
        &example("research.yaml"),
        &["--input", "topc=Rust"],
    );
    assert_eq!(output.status.code(), Some(2));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("the workflow has no input `topc`"),
        "{stderr}"
    );
    assert!(stderr.contains("did you mean `topic`?"), "{stderr}");
    snapshot!("run_unknown_input", output);
}

#[test]
fn quiet_prints_the_results_and_nothing_else() {
    let home = tempfile::tempdir().unwrap();
    let loud = run_mock(
        home.path(),
        &example("research.yaml"),
        &["--input", RESEARCH_TOPIC],
    );
    let quiet = run_mock(
        home.path(),
        &example("research.yaml"),
        &["--input", RESEARCH_TOPIC, "-q"],
    );
    assert_eq!(quiet.status.code(), Some(0));
    assert_eq!(
        text(&quiet.stderr),
        "",
        "-q prints no progress and no table"
    );
    assert!(!loud.stderr.is_empty());
    assert_eq!(quiet.stdout, loud.stdout);
}

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
