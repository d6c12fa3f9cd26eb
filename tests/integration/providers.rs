//! Real providers against the fake server: every API, JSON and SSE, every fault.

use std::path::Path;
use std::process::Output;

use serde_json::Value;

use crate::support::byok_flow;
use crate::support::fake::{FakeServer, Fault};

/// Keys the fake server must see in the right header; a canary elsewhere.
pub const ANTHROPIC_KEY: &str = "sk-ant-canary-7f3a9c";
pub const OPENAI_KEY: &str = "sk-openai-canary-2b8e1d";
pub const GEMINI_KEY: &str = "gm-canary-5c4d2e";

/// A workflow with the three providers pointed at the fake server.
pub fn workflow(server: &FakeServer, agents: &str) -> String {
    let url = server.url();
    format!(
        "version: 1\nproviders:\n  anthropic: {{base_url: \"{url}\", key: \"env:ANTHROPIC_KEY\"}}\n  openai: {{base_url: \"{url}/v1\", key: \"env:OPENAI_KEY\"}}\n  gemini: {{base_url: \"{url}/v1beta\", key: \"env:GEMINI_KEY\"}}\n  local: {{type: openai-compatible, base_url: \"{url}/local/v1\", key: none}}\nagents:\n{agents}"
    )
}

/// Runs a workflow against the fake server with `--json`; back-off waits are scaled
/// to zero, and keys may go to the fake server's own address (`--allow-host`).
/// Every log is on (`-vvv`), and no key may appear in what it prints.
pub fn run(dir: &Path, yaml: &str, extra: &[&str]) -> Output {
    let file = dir.join("flow.yaml");
    std::fs::write(&file, yaml).unwrap();
    let mut cmd = byok_flow(dir);
    cmd.arg("run").arg(&file).args(["--json", "-q", "-vvv"]);
    for host in fake_hosts(yaml) {
        cmd.args(["--allow-host", &host]);
    }
    let out = cmd
        .args(extra)
        .env("ANTHROPIC_KEY", ANTHROPIC_KEY)
        .env("OPENAI_KEY", OPENAI_KEY)
        .env("GEMINI_KEY", GEMINI_KEY)
        .env("BYOK_FLOW_BACKOFF_SCALE", "0")
        .timeout(std::time::Duration::from_mins(1))
        .output()
        .unwrap();
    for (stream, bytes) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
        let text = String::from_utf8_lossy(bytes);
        for key in [ANTHROPIC_KEY, OPENAI_KEY, GEMINI_KEY] {
            assert!(!text.contains(key), "a key on {stream} at -vvv:\n{text}");
        }
    }
    out
}

/// Every `127.0.0.1:PORT` a workflow's providers point at.
fn fake_hosts(yaml: &str) -> Vec<String> {
    let mut hosts: Vec<String> = yaml
        .match_indices("http://127.0.0.1:")
        .map(|(i, m)| {
            let rest = &yaml[i + m.len()..];
            let port: String = rest.chars().take_while(char::is_ascii_digit).collect();
            format!("127.0.0.1:{port}")
        })
        .collect();
    hosts.sort();
    hosts.dedup();
    hosts
}

pub fn record(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not a run record ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

pub fn agent<'a>(record: &'a Value, name: &str) -> &'a Value {
    record["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == name)
        .unwrap()
}

const MODELS: [(&str, &str); 4] = [
    ("anthropic", "anthropic/claude-sonnet-4-5"),
    ("openai", "openai/gpt-4o"),
    ("gemini", "gemini/gemini-3.5-flash"),
    ("local", "local/llama3.2"),
];

fn one_agent(model: &str, extra: &str) -> String {
    format!(
        "  a:\n    model: {model}\n    prompt: \"marker-a Say hello to the fake server please\"\n    max_tokens: 100\n{extra}"
    )
}

#[test]
fn every_api_answers_streamed_and_whole() {
    let server = FakeServer::start();
    let dir = tempfile::tempdir().unwrap();
    for (_, model) in MODELS {
        for stream in [true, false] {
            let out = run(
                dir.path(),
                &workflow(
                    &server,
                    &one_agent(model, &format!("    stream: {stream}\n")),
                ),
                // `stream` does not change the answer, so the second would be a cache hit.
                &["--no-cache"],
            );
            assert_eq!(
                out.status.code(),
                Some(0),
                "{model} stream={stream}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let rec = record(&out);
            let a = agent(&rec, "a");
            assert_eq!(
                a["output"], "fake reply to: marker-a Say hello to the fake",
                "{model} stream={stream}"
            );
            assert!(
                a["usage"]["input"].as_u64().unwrap() > 0
                    && a["usage"]["output"].as_u64().unwrap() > 0,
                "{a}"
            );
            assert_eq!(a["attempts"].as_array().unwrap().len(), 1);
        }
    }
    let requests = server.requests();
    assert_eq!(requests.len(), 8);
    let paths: Vec<String> = requests
        .iter()
        .map(|r| {
            if r.query.is_empty() {
                r.path.clone()
            } else {
                format!("{}?{}", r.path, r.query)
            }
        })
        .collect();
    assert_eq!(
        paths,
        [
            "/v1/messages",
            "/v1/messages",
            "/v1/chat/completions",
            "/v1/chat/completions",
            "/v1beta/models/gemini-3.5-flash:streamGenerateContent?alt=sse",
            "/v1beta/models/gemini-3.5-flash:generateContent",
            "/local/v1/chat/completions",
            "/local/v1/chat/completions"
        ]
    );
}

#[test]
fn keys_go_in_each_providers_own_header_only() {
    let server = FakeServer::start();
    let dir = tempfile::tempdir().unwrap();
    for (_, model) in MODELS {
        let out = run(
            dir.path(),
            &workflow(&server, &one_agent(model, "")),
            &["-vvv"],
        );
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        for key in [ANTHROPIC_KEY, OPENAI_KEY, GEMINI_KEY] {
            assert!(!all.contains(key), "a key leaked into the output");
        }
    }
    let requests = server.requests();
    let anthropic = &requests[0];
    assert_eq!(anthropic.header("x-api-key"), Some(ANTHROPIC_KEY));
    assert_eq!(anthropic.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(anthropic.header("authorization"), None);
    let openai = &requests[1];
    assert_eq!(
        openai.header("authorization"),
        Some(format!("Bearer {OPENAI_KEY}").as_str())
    );
    assert_eq!(openai.header("x-api-key"), None);
    let gemini = &requests[2];
    assert_eq!(gemini.header("x-goog-api-key"), Some(GEMINI_KEY));
    assert!(
        !gemini.query.contains("key="),
        "a key must never go in a URL"
    );
    for r in &requests {
        assert_eq!(r.host, server.addr.to_string());
    }
    let local = &requests[3];
    assert_eq!(
        local.header("authorization"),
        None,
        "`key: none` sends no key"
    );
    for r in &requests {
        for key in [ANTHROPIC_KEY, OPENAI_KEY, GEMINI_KEY] {
            assert!(!r.body.to_string().contains(key), "a key in a request body");
        }
    }
}

/// Each transient fault, for each API: the run completes on the next attempt.
#[test]
fn transient_faults_are_retried_for_every_api() {
    let faults = [
        Fault::retry_after(429, 2),
        Fault::status(500),
        Fault::status(503),
        Fault::status(529),
        Fault::status(408),
        Fault::DropMidStream,
        Fault::TruncateStream,
        Fault::Malformed,
        Fault::ErrorEvent,
        Fault::SlowFirstByte(std::time::Duration::from_secs(6)),
    ];
    let server = FakeServer::start();
    // One run per API, an agent per fault, all at once, and the runs at once,
    // each in its own folder: the time-outs overlap.
    let check = |model: &str| {
        let dir = tempfile::tempdir().unwrap();
        let mut agents = String::new();
        for (i, fault) in faults.iter().enumerate() {
            let marker = format!("fault-{i}-{}", model.replace('/', "-"));
            server.script(&marker, [fault.clone()]);
            // Only the slow first byte is meant to time out; ten agents at once on a
            // busy machine must not.
            let timeout = if matches!(fault, Fault::SlowFirstByte(_)) {
                "2s"
            } else {
                "60s"
            };
            agents.push_str(&format!(
                "  a{i}:\n    model: {model}\n    prompt: \"{marker} hello\"\n    timeout: {timeout}\n    retries: 2\n"
            ));
        }
        let out = run(
            dir.path(),
            &workflow(&server, &agents),
            &["--concurrency", "16"],
        );
        assert_eq!(
            out.status.code(),
            Some(0),
            "{model}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let rec = record(&out);
        for (i, fault) in faults.iter().enumerate() {
            let attempts = agent(&rec, &format!("a{i}"))["attempts"]
                .as_array()
                .unwrap()
                .clone();
            assert_eq!(attempts.len(), 2, "{model} {fault:?}: {attempts:?}");
            assert_eq!(attempts[1]["outcome"], "ok");
            if let Fault::Status { code, .. } = fault {
                assert_eq!(attempts[0]["status"], *code, "{model}");
            }
            if matches!(
                fault,
                Fault::Status {
                    retry_after: Some(2),
                    ..
                }
            ) {
                assert_eq!(attempts[0]["delay_ms"], 2000, "retry-after is honoured");
            }
        }
    };
    std::thread::scope(|s| {
        for (_, model) in MODELS {
            s.spawn(move || check(model));
        }
    });
}

#[test]
fn permanent_errors_are_not_retried_and_say_what_to_do() {
    let server = FakeServer::start();
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (Fault::status(400), "invalid_request_error"),
        // An `env:` key: fix the variable (issue 14 item 3).
        (Fault::status(401), "set `OPENAI_KEY`"),
        (Fault::status(403), "set `OPENAI_KEY`"),
        (Fault::status(404), "check the model id"),
        (Fault::insufficient_quota(), "needs you to act"),
    ];
    for (i, (fault, expected)) in cases.into_iter().enumerate() {
        let marker = format!("perm-{i}");
        server.script(&marker, [fault.clone()]);
        let agents = format!(
            "  a:\n    model: openai/gpt-4o\n    prompt: \"{marker} hello\"\n  b:\n    model: openai/gpt-4o\n    prompt: \"after {{{{agents.a.output}}}}\"\n"
        );
        let out = run(dir.path(), &workflow(&server, &agents), &[]);
        assert_eq!(out.status.code(), Some(1), "{fault:?}");
        let rec = record(&out);
        let a = agent(&rec, "a");
        assert_eq!(a["status"], "failed");
        assert_eq!(
            a["attempts"].as_array().unwrap().len(),
            1,
            "{fault:?} must not be retried"
        );
        assert!(
            a["reason"].as_str().unwrap().contains(expected),
            "{fault:?}: {}",
            a["reason"]
        );
        assert_eq!(agent(&rec, "b")["status"], "skipped");
    }
    assert_eq!(server.requests().len(), 5);
}

#[test]
fn rate_limits_that_never_clear_fail_after_the_retry_budget() {
    let server = FakeServer::start();
    let dir = tempfile::tempdir().unwrap();
    server.script(
        "always-429",
        std::iter::repeat_n(Fault::retry_after(429, 1), 10),
    );
    let agents = "  a:\n    model: anthropic/claude-sonnet-4-5\n    prompt: \"always-429\"\n    retries: 3\n";
    let out = run(dir.path(), &workflow(&server, agents), &[]);
    assert_eq!(out.status.code(), Some(1));
    let rec = record(&out);
    let a = agent(&rec, "a");
    assert_eq!(a["attempts"].as_array().unwrap().len(), 4);
    assert!(
        a["reason"]
            .as_str()
            .unwrap()
            .contains("lower `--concurrency`"),
        "{}",
        a["reason"]
    );
    assert_eq!(server.requests().len(), 4);
}

#[test]
fn fallback_models_answer_when_the_first_keeps_failing() {
    let server = FakeServer::start();
    let dir = tempfile::tempdir().unwrap();
    server.script("needs-fallback", std::iter::repeat_n(Fault::status(500), 3));
    let agents = "  a:\n    model: anthropic/claude-sonnet-4-5\n    prompt: \"needs-fallback please\"\n    retries: 2\n    fallback: [openai/gpt-4o, gemini/gemini-3.5-flash]\n";
    let out = run(dir.path(), &workflow(&server, agents), &[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rec = record(&out);
    let a = agent(&rec, "a");
    assert_eq!(a["answered_by"], "openai/gpt-4o");
    let models: Vec<&str> = a["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["model"].as_str().unwrap())
        .collect();
    assert_eq!(
        models,
        [
            "anthropic/claude-sonnet-4-5",
            "anthropic/claude-sonnet-4-5",
            "anthropic/claude-sonnet-4-5",
            "openai/gpt-4o"
        ]
    );
}

#[test]
fn json_output_is_requested_per_api_and_checked_against_the_schema() {
    let server = FakeServer::start();
    let dir = tempfile::tempdir().unwrap();
    for (_, model) in MODELS {
        let marker = format!("json-{}", model.replace('/', "-"));
        server.script(&marker, [Fault::WrongJson]);
        let agents = format!(
            "  facts:\n    model: {model}\n    prompt: \"{marker} list facts\"\n    output: json\n    schema: {{type: object, properties: {{facts: {{type: array, items: {{type: string}}}}}}, required: [facts]}}\n  use:\n    model: {model}\n    prompt: \"first fact: {{{{agents.facts.json.facts.[0]}}}}\"\n"
        );
        let out = run(dir.path(), &workflow(&server, &agents), &[]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{model}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let rec = record(&out);
        let facts = agent(&rec, "facts");
        assert_eq!(facts["json"]["facts"][0], "fake", "{model}: {facts}");
        let attempts = facts["attempts"].as_array().unwrap();
        assert_eq!(
            attempts.len(),
            2,
            "{model}: one retry with the validation error fed back"
        );
        assert!(
            attempts[0]["outcome"]
                .as_str()
                .unwrap()
                .contains("did not match the schema")
        );
        assert_eq!(
            agent(&rec, "use")["output"],
            "fake reply to: first fact: fake",
            "{model}"
        );
    }
    let requests = server.requests();
    let anthropic = requests
        .iter()
        .filter(|r| r.path == "/v1/messages")
        .nth(1)
        .unwrap();
    assert_eq!(anthropic.body["tool_choice"]["type"], "tool");
    let messages = anthropic.body["messages"].as_array().unwrap();
    assert_eq!(
        messages.len(),
        3,
        "the correction turn follows the bad reply"
    );
    assert!(
        messages[2]["content"]
            .as_str()
            .unwrap()
            .contains("did not match the required JSON Schema")
    );
    assert!(
        requests
            .iter()
            .any(|r| r.body["response_format"]["type"] == "json_schema")
    );
    assert!(requests.iter().any(|r| {
        r.body
            .pointer("/generationConfig/responseJsonSchema")
            .is_some()
    }));
}

#[test]
fn provider_max_concurrency_is_respected() {
    let server = FakeServer::start();
    let dir = tempfile::tempdir().unwrap();
    server.set_latency(std::time::Duration::from_millis(150));
    let mut agents = String::new();
    for i in 0..6 {
        agents.push_str(&format!(
            "  a{i}:\n    model: local/llama3.2\n    prompt: \"slow-{i} go\"\n"
        ));
    }
    let yaml = workflow(&server, &agents).replace("key: none}", "key: none, max_concurrency: 2}");
    let out = run(dir.path(), &yaml, &["--concurrency", "8"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(server.max_in_flight(), 2);
}

#[test]
fn slow_streams_finish_when_events_keep_coming() {
    let server = FakeServer::start();
    let dir = tempfile::tempdir().unwrap();
    server.script(
        "slowly",
        [Fault::SlowStream(std::time::Duration::from_millis(40))],
    );
    let agents = "  a:\n    model: anthropic/claude-sonnet-4-5\n    prompt: \"slowly now\"\n";
    let out = run(dir.path(), &workflow(&server, agents), &[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        agent(&record(&out), "a")["attempts"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn cache_tokens_are_reported_by_kind() {
    let server = FakeServer::start();
    server.report_cache(2048, 512);
    let dir = tempfile::tempdir().unwrap();
    for (_, model) in MODELS {
        let out = run(dir.path(), &workflow(&server, &one_agent(model, "")), &[]);
        assert_eq!(out.status.code(), Some(0));
        let rec = record(&out);
        let usage = &agent(&rec, "a")["usage"];
        assert_eq!(usage["cache_read"], 2048, "{model}: {usage}");
        if model.starts_with("gemini") {
            assert_eq!(usage["cache_write"], 0);
        } else {
            assert_eq!(usage["cache_write"], 512, "{model}: {usage}");
        }
    }
}

/// 300 agents, a quarter meeting a transient fault: every one completes, and the
/// server saw exactly the attempts the record lists, none beyond its budget.
#[test]
fn soak_300_agents_with_transient_faults() {
    let server = FakeServer::start();
    let dir = tempfile::tempdir().unwrap();
    let kinds = [
        Fault::retry_after(429, 1),
        Fault::status(529),
        Fault::status(500),
        Fault::status(503),
        Fault::DropMidStream,
        Fault::TruncateStream,
        Fault::Malformed,
        Fault::ErrorEvent,
    ];
    let mut agents = String::new();
    for i in 0..300 {
        let model = MODELS[i % MODELS.len()].1;
        if i % 4 == 0 {
            server.script(
                &format!("soak-{i}-"),
                [kinds[(i / 4) % kinds.len()].clone()],
            );
        }
        let needs = if i >= 10 && i % 3 == 0 {
            format!("    needs: [s{}]\n", i - 10)
        } else {
            String::new()
        };
        agents.push_str(&format!(
            "  s{i}:\n    model: {model}\n    prompt: \"soak-{i}- work\"\n    retries: 2\n{needs}"
        ));
    }
    let out = run(
        dir.path(),
        &workflow(&server, &agents),
        &["--concurrency", "16"],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rec = record(&out);
    let mut recorded = 0;
    for (i, a) in rec["agents"].as_array().unwrap().iter().enumerate() {
        assert_eq!(a["status"], "succeeded");
        assert_eq!(a["output"], format!("fake reply to: soak-{i}- work"));
        let attempts = a["attempts"].as_array().unwrap().len();
        assert!(attempts <= 3, "over the retry budget");
        assert_eq!(attempts, if i % 4 == 0 { 2 } else { 1 }, "s{i}");
        recorded += attempts;
    }
    assert_eq!(server.requests().len(), recorded);
}
