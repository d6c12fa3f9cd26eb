//! Keys in real runs against the fake provider server: a canary key goes only to
//! its provider's host, in its header, and appears nowhere else (stdout, stderr at
//! `-vvv`, `--json`, `--out`, any file), whether the run succeeds, is refused
//! (401), times out or drops its stream; a workflow that points a keyed provider
//! elsewhere, or a reply that redirects, never gets the key there.

use std::process::Output;

use super::Project;
use crate::support::fake::{FakeServer, Fault};

/// The canary: a key no output may ever contain.
const CANARY: &str = "sk-ant-CANARY-6c1f0e9d2b";

fn workflow(base_url: &str, prompt: &str) -> String {
    format!(
        "version: 1\nproviders:\n  anthropic: {{base_url: \"{base_url}\"}}\nagents:\n  a:\n    model: anthropic/claude-sonnet-4-5\n    prompt: \"{prompt}\"\n    timeout: 1s\n    retries: 1\n  b:\n    model: anthropic/claude-sonnet-4-5\n    prompt: \"then {{{{agents.a.output}}}}\"\n"
    )
}

fn project() -> Project {
    let p = Project::new();
    p.init();
    p.add("anthropic", CANARY);
    p
}

fn run(p: &Project, yaml: &str, allow: &str, extra: &[&str]) -> Output {
    std::fs::write(p.path().join("flow.yaml"), yaml).unwrap();
    let mut args = vec![
        "run",
        "flow.yaml",
        "-vvv",
        "--out",
        "out",
        "--allow-host",
        allow,
    ];
    args.extend_from_slice(extra);
    p.cmd(&args)
        .env("BYOK_FLOW_BACKOFF_SCALE", "0")
        .timeout(std::time::Duration::from_mins(1))
        .output()
        .unwrap()
}

fn assert_no_canary(p: &Project, out: &Output) {
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains(CANARY),
        "the key is on stdout"
    );
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains(CANARY),
        "the key is on stderr"
    );
    for (path, bytes) in p.files() {
        assert!(
            !String::from_utf8_lossy(&bytes).contains(CANARY),
            "the key is in {}",
            path.display()
        );
    }
}

#[test]
fn the_key_reaches_only_its_provider_in_its_header() {
    let server = FakeServer::start();
    let p = project();
    let host = server.addr.to_string();
    let cases: [(&str, Vec<Fault>, i32); 4] = [
        ("succeeds", vec![], 0),
        ("refused", vec![Fault::status(401)], 1),
        (
            "times-out",
            vec![Fault::SlowFirstByte(std::time::Duration::from_secs(3)); 2],
            1,
        ),
        ("drops", vec![Fault::DropMidStream; 2], 1),
    ];
    for (name, faults, code) in cases {
        for json in [false, true] {
            let marker = format!("canary-{name}-{json}");
            server.script(&marker, faults.clone());
            let extra: &[&str] = if json { &["--json"] } else { &[] };
            let out = run(
                &p,
                &workflow(&server.url(), &format!("{marker} hello")),
                &host,
                extra,
            );
            assert_eq!(
                out.status.code(),
                Some(code),
                "{name}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert_no_canary(&p, &out);
        }
    }
    let requests = server.requests();
    assert!(!requests.is_empty());
    for r in &requests {
        assert_eq!(r.host, host);
        assert_eq!(
            r.header("x-api-key"),
            Some(CANARY),
            "only in the provider's own header"
        );
        let elsewhere = r
            .headers
            .iter()
            .any(|(n, v)| n != "x-api-key" && v.contains(CANARY));
        assert!(!elsewhere && !r.body.to_string().contains(CANARY) && !r.query.contains(CANARY));
    }
}

#[test]
fn a_workflow_cannot_send_the_key_to_another_host() {
    let allowed = FakeServer::start();
    let thief = FakeServer::start_on("127.0.0.2");
    let p = project();
    let out = run(
        &p,
        &workflow(&thief.url(), "exfiltrate"),
        &allowed.addr.to_string(),
        &[],
    );
    assert_eq!(
        out.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("127.0.0.2"),
        "the message names the host: {stderr}"
    );
    assert!(
        stderr.contains("--allow-host"),
        "and says how to allow it: {stderr}"
    );
    assert!(
        thief.requests().is_empty(),
        "the other host received a request"
    );
    assert!(allowed.requests().is_empty());
    assert_no_canary(&p, &out);
}

#[test]
fn an_env_key_obeys_the_same_host_rule() {
    let thief = FakeServer::start_on("127.0.0.2");
    let p = Project::new();
    let yaml = format!(
        "version: 1\nproviders:\n  openai: {{base_url: \"{}/v1\", key: \"env:OPENAI_API_KEY\"}}\nagents:\n  a: {{model: openai/gpt-4o, prompt: hi}}\n",
        thief.url()
    );
    std::fs::write(p.path().join("flow.yaml"), yaml).unwrap();
    let out = p
        .cmd(&["run", "flow.yaml"])
        .env("OPENAI_API_KEY", CANARY)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(thief.requests().is_empty());
    assert_no_canary(&p, &out);
}

#[test]
fn a_redirect_never_carries_the_key() {
    let server = FakeServer::start();
    let thief = FakeServer::start_on("127.0.0.2");
    server.script(
        "redirected",
        [Fault::Redirect(format!("{}/v1/messages", thief.url()))],
    );
    let p = project();
    let out = run(
        &p,
        &workflow(&server.url(), "redirected"),
        &server.addr.to_string(),
        &[],
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("never follows redirects"));
    assert!(thief.requests().is_empty(), "the redirect was followed");
    assert_no_canary(&p, &out);
}

#[test]
fn a_key_that_cannot_be_decrypted_exits_4_without_a_request() {
    let server = FakeServer::start();
    let p = project();
    // Someone else's identity: the key file was not encrypted to it.
    let other = Project::new();
    other.init();
    std::fs::write(
        p.path().join("flow.yaml"),
        workflow(&server.url(), "undecryptable"),
    )
    .unwrap();
    let before = p.files();
    let out = p
        .cmd(&[
            "run",
            "flow.yaml",
            "--identity",
            other.identity().to_str().unwrap(),
            "--allow-host",
            &server.addr.to_string(),
        ])
        // The run is recorded in the history; keep that file out of the project.
        .env("BYOK_FLOW_HISTORY", other.path().join("history.sqlite"))
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("anthropic"),
        "the message names the key file: {stderr}"
    );
    assert!(server.requests().is_empty());
    let after = p.files();
    assert_eq!(before, after, "a failed run changed files");
}
