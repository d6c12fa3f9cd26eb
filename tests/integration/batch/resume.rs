//! State and resume: detach, rerun, `runs resume`, kill -9 at every phase,
//! `runs list` and `runs cancel`, and the same offline with `--mock --batch`.

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use super::{Place, record, run_id, stderr};
use crate::providers::workflow;
use crate::support::fake::FakeServer;
use crate::support::fake::batch::BatchKnobs;

/// Two providers in the first wave, a third agent after both.
const SQUAD: &str = "  a: {model: anthropic/claude-haiku-4-5, prompt: \"alpha\"}\n  b: {model: openai/gpt-4o-mini, prompt: \"beta\"}\n  c: {model: gemini/gemini-3.5-flash, prompt: \"gamma {{agents.a.output}} {{agents.b.output}}\"}\n";

fn args(server: &FakeServer, extra: &[&str]) -> Vec<String> {
    let host = server.url().trim_start_matches("http://").to_string();
    let mut args: Vec<String> = ["run", "flow.yaml", "--batch", "--allow-host", &host]
        .iter()
        .map(ToString::to_string)
        .collect();
    args.extend(extra.iter().map(ToString::to_string));
    args
}

fn run(
    place: &Place,
    server: &FakeServer,
    extra: &[&str],
    env: &[(&str, &str)],
) -> std::process::Output {
    let args = args(server, extra);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = place.command(&args, env).output().unwrap();
    place.assert_no_key(&out);
    out
}

fn write(place: &Place, server: &FakeServer, agents: &str) {
    std::fs::write(place.path().join("flow.yaml"), workflow(server, agents)).unwrap();
}

/// A detached run calls an agent that is not batched at once; the run that
/// collects the batches gets its answer from the cache. Without the cache
/// (`--no-cache`, or `--refresh`, which the same command repeats) it would be
/// called and paid for again, so that is refused before any call.
#[test]
fn detach_without_the_cache_is_refused_when_an_agent_runs_directly() {
    let server = FakeServer::start();
    let place = Place::new();
    write(
        &place,
        &server,
        &SQUAD.replace("prompt: \"beta\"}", "prompt: \"beta\", batch: false}"),
    );
    let out = run(&place, &server, &["--detach", "--no-cache"], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("`--detach` with `--no-cache` would pay for agent `b` twice"),
        "{}",
        stderr(&out)
    );
    let out = run(&place, &server, &["--detach", "--refresh", "a"], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("`--detach` with `--refresh` would pay for agent `b` twice"),
        "{}",
        stderr(&out)
    );
    assert!(server.requests().is_empty(), "nothing is called");
    // With every agent batched, nothing runs now: `--no-cache` is fine.
    write(&place, &server, SQUAD);
    let out = run(&place, &server, &["--detach", "--no-cache"], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn detach_prints_the_run_id_and_the_same_command_collects_without_submitting_again() {
    let server = FakeServer::start();
    server.set_batch_knobs(BatchKnobs {
        delay: Duration::from_millis(1500),
        ..BatchKnobs::default()
    });
    let place = Place::new();
    write(&place, &server, SQUAD);
    let out = run(&place, &server, &["--detach"], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let run_id = run_id(&out);
    let run_id = run_id.as_str();
    assert!(!run_id.is_empty() && !run_id.contains(' '), "{run_id}");
    assert!(
        stderr(&out).contains("detached: 2 batches submitted"),
        "{}",
        stderr(&out)
    );
    assert_eq!(server.batch_count("create"), 2);
    // The state: one file, named for the run, readable only by its owner.
    let files = place.state_files();
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(files[0].ends_with(format!("{run_id}.json")));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&files[0]).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // `runs list` shows the pending batches.
    let list = place.command(&["runs", "list"], &[]).output().unwrap();
    let text = String::from_utf8_lossy(&list.stdout);
    assert!(
        text.contains("pending batches") && text.contains(run_id),
        "{text}"
    );
    assert!(
        text.contains("anthropic/claude-haiku-4-5") && text.contains("openai/gpt-4o-mini"),
        "{text}"
    );
    let line = text.lines().find(|l| l.starts_with(run_id)).unwrap();
    assert!(line.contains("submitted"), "{text}");

    // The same command again waits on those batches and submits only the next wave.
    let out = run(&place, &server, &["--json"], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let done = record(&out);
    assert_eq!(done["status"], "succeeded");
    assert_eq!(server.batch_count("create"), 3, "{:?}", server.batch_log());
    assert_eq!(server.batch_count("upload"), 1);
    assert!(place.state_files().is_empty(), "{:?}", place.state_files());
    let list = place.command(&["runs", "list"], &[]).output().unwrap();
    let list = String::from_utf8_lossy(&list.stdout);
    assert!(!list.contains("pending batches"));
    // One run in the history: the detached one, collected under its id.
    assert_eq!(done["run_id"], run_id, "{list}");
    let line = list.lines().find(|l| l.starts_with(run_id)).unwrap();
    assert!(line.contains("succeeded"), "{list}");
    let json = place
        .command(&["runs", "list", "--json"], &[])
        .output()
        .unwrap();
    let runs: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(runs.as_array().unwrap().len(), 1, "{runs}");
}

#[test]
fn runs_resume_collects_a_detached_run() {
    let server = FakeServer::start();
    server.set_batch_knobs(BatchKnobs {
        delay: Duration::from_millis(500),
        ..BatchKnobs::default()
    });
    let place = Place::new();
    write(&place, &server, SQUAD);
    let out = run(&place, &server, &["--detach"], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let run_id = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let out = place
        .command(&["runs", "resume", &run_id], &[])
        .output()
        .unwrap();
    place.assert_no_key(&out);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("fake reply to: gamma"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(server.batch_count("create"), 3, "{:?}", server.batch_log());
    assert!(place.state_files().is_empty());
    let out = place
        .command(&["runs", "resume", &run_id], &[])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("runs list"), "{}", stderr(&out));
}

#[test]
fn runs_cancel_cancels_the_pending_batches_at_the_provider() {
    let server = FakeServer::start();
    server.set_batch_knobs(BatchKnobs {
        delay: Duration::from_mins(1),
        ..BatchKnobs::default()
    });
    let place = Place::new();
    write(&place, &server, SQUAD);
    let out = run(&place, &server, &["--detach"], &[]);
    let run_id = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let out = place
        .command(&["runs", "cancel", &run_id], &[])
        .output()
        .unwrap();
    place.assert_no_key(&out);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(server.batch_count("cancel"), 2, "{:?}", server.batch_log());
    assert!(
        stderr(&out).contains("2 batches cancelled"),
        "{}",
        stderr(&out)
    );
    assert!(place.state_files().is_empty());
}

/// When a phase has been reached.
type Ready = Box<dyn Fn(&FakeServer) -> bool>;

/// Starts the run and kills it (SIGKILL) once `ready` holds for the server.
fn kill_when(place: &Place, server: &FakeServer, ready: impl Fn(&FakeServer) -> bool) {
    let args = args(server, &[]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut child: Child = place
        .command(&args, &[])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while !ready(server) {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "never got there: {:?}",
            server.batch_log()
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "it ended first: {:?}",
            server.batch_log()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // The state is written right after the step the server saw.
    std::thread::sleep(Duration::from_millis(300));
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn killed_at_every_phase_a_rerun_never_submits_again() {
    let one_openai = "  b: {model: openai/gpt-4o-mini, prompt: \"beta\"}\n";
    let one_anthropic = "  a: {model: anthropic/claude-haiku-4-5, prompt: \"alpha\"}\n";
    // Far longer than the kill takes, however busy the machine: the run must
    // still be inside the stalled step when it is killed. (The killed client
    // never waits it out, and a stall happens once, so the rerun is not held.)
    let stall = |phase: &str| BatchKnobs {
        stall: vec![(phase.to_string(), Duration::from_mins(1))],
        ..BatchKnobs::default()
    };
    let phases: Vec<(&str, &str, BatchKnobs, Ready)> = vec![
        // After the upload, before the batch exists: created from the same file.
        (
            "after upload",
            one_openai,
            stall("create"),
            Box::new(|s: &FakeServer| s.batch_count("upload") == 1),
        ),
        (
            "after create",
            one_anthropic,
            stall("poll"),
            Box::new(|s: &FakeServer| s.batch_count("create") == 1),
        ),
        (
            "while polling",
            one_anthropic,
            BatchKnobs {
                delay: Duration::from_secs(2),
                ..BatchKnobs::default()
            },
            Box::new(|s: &FakeServer| s.batch_count("poll") >= 2),
        ),
        (
            "while downloading the results",
            one_anthropic,
            stall("results"),
            Box::new(|s: &FakeServer| s.requests().iter().any(|r| r.path.ends_with("/results"))),
        ),
    ];
    for (phase, agents, knobs, ready) in phases {
        let server = FakeServer::start();
        server.set_batch_knobs(knobs);
        let place = Place::new();
        write(&place, &server, agents);
        kill_when(&place, &server, ready);
        assert_eq!(
            place.state_files().len(),
            1,
            "{phase}: the state was not written"
        );
        let out = run(&place, &server, &["--json"], &[]);
        assert!(out.status.success(), "{phase}: {}", stderr(&out));
        assert_eq!(record(&out)["status"], "succeeded", "{phase}");
        assert_eq!(
            server.batch_count("create"),
            1,
            "{phase}: {:?}",
            server.batch_log()
        );
        assert!(
            server.batch_count("upload") <= 1,
            "{phase}: {:?}",
            server.batch_log()
        );
        assert!(place.state_files().is_empty(), "{phase}");
    }
}

#[test]
fn mock_batches_detach_and_resume_offline() {
    let place = Place::new();
    let squad = "version: 1\nagents:\n  a: {model: anthropic/claude-haiku-4-5, prompt: \"alpha\"}\n  b: {model: openai/gpt-4o-mini, prompt: \"beta {{agents.a.output}}\"}\n";
    std::fs::write(place.path().join("flow.yaml"), squad).unwrap();
    let delay = [("BYOK_FLOW_MOCK_BATCH_DELAY", "700ms")];
    let out = place
        .command(
            &["run", "flow.yaml", "--mock", "--batch", "--detach"],
            &delay,
        )
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("detached: 1 batch submitted"),
        "{}",
        stderr(&out)
    );
    let run_id = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert_eq!(place.state_files().len(), 1);
    let out = place
        .command(&["runs", "resume", &run_id], &delay)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("[mock openai/gpt-4o-mini]"), "{text}");
    // Two waves: the first adopted from the detached run, the second submitted now.
    let submitted = stderr(&out).matches("submitted to").count();
    assert_eq!(submitted, 1, "{}", stderr(&out));
    assert!(place.state_files().is_empty());
}

#[test]
fn ctrl_c_while_waiting_leaves_the_batches_running_and_says_how_to_resume() {
    let server = FakeServer::start();
    server.set_batch_knobs(BatchKnobs {
        delay: Duration::from_mins(1),
        ..BatchKnobs::default()
    });
    let place = Place::new();
    write(&place, &server, SQUAD);
    let args = args(&server, &[]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let child = place
        .command(&args, &[])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while server.batch_count("poll") < 2 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{:?}",
            server.batch_log()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let out = child.wait_with_output().unwrap();
    place.assert_no_key(&out);
    assert_eq!(out.status.code(), Some(130), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("2 batches are left running") && err.contains("runs resume"),
        "{err}"
    );
    assert_eq!(
        server.batch_count("cancel"),
        0,
        "Ctrl-C does not cancel the batches"
    );
    assert_eq!(place.state_files().len(), 1);
}
