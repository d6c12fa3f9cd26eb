//! Issue 11, item 7: what `-v`, `-vv` and `-vvv` log about a run against the fake
//! server: every attempt (agent, provider, host and path, status, time to first
//! byte, bytes), retries and their waits, fallbacks, where each key was read
//! from, budget decisions, cache hits and misses, and at `-vvv` each request's
//! body. Never a key, a header value or anything the server wrote.

use std::path::Path;
use std::process::Output;

use super::providers::{ANTHROPIC_KEY, GEMINI_KEY, OPENAI_KEY, workflow};
use crate::support::byok_flow;
use crate::support::fake::{FakeServer, Fault};

const AGENTS: &str = "  a:
    model: anthropic/claude-sonnet-4-5
    prompt: \"logs-retry hello\"
    max_tokens: 100
  b:
    model: openai/gpt-4o
    prompt: \"logs-fallback hello\"
    max_tokens: 100
    retries: 0
    fallback: [gemini/gemini-3.5-flash]
";

/// Runs the squad at `-v` times `level`, with a budget and its own cache.
fn run(dir: &Path, server: &FakeServer, level: usize) -> Output {
    let file = dir.join("flow.yaml");
    std::fs::write(&file, workflow(server, AGENTS)).unwrap();
    let verbose = format!("-{}", "v".repeat(level));
    byok_flow(dir)
        .arg("run")
        .arg(&file)
        .args([&verbose, "-q", "--max-usd", "5", "--allow-host"])
        .arg(server.addr.to_string())
        .arg("--cache-dir")
        .arg(dir.join("cache"))
        .env("ANTHROPIC_KEY", ANTHROPIC_KEY)
        .env("OPENAI_KEY", OPENAI_KEY)
        .env("GEMINI_KEY", GEMINI_KEY)
        .env("BYOK_FLOW_BACKOFF_SCALE", "0")
        .timeout(std::time::Duration::from_mins(1))
        .output()
        .unwrap()
}

/// Neither stream holds a key or any text the fake server wrote in an error.
fn assert_clean(out: &Output) {
    for (name, bytes) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
        let text = String::from_utf8_lossy(bytes);
        for secret in [ANTHROPIC_KEY, OPENAI_KEY, GEMINI_KEY, "canary"] {
            assert!(!text.contains(secret), "{name} holds `{secret}`:\n{text}");
        }
        assert!(
            !text.contains("fake rate_limit_error") && !text.contains("fake api_error"),
            "{name} quotes the server:\n{text}"
        );
    }
}

#[test]
fn issue11_logs_at_each_verbosity() {
    let server = FakeServer::start();
    let dir = tempfile::tempdir().unwrap();
    let host = server.addr.to_string();
    let mut logs = Vec::new();
    for level in 1..=3 {
        // A fresh cache each time, but the same faults: a 429 then an answer for
        // `a`; a 500 for `b`'s own model, so its fallback answers.
        let _ = std::fs::remove_dir_all(dir.path().join("cache"));
        server.script("logs-retry", [Fault::status(429)]);
        server.script("logs-fallback", [Fault::status(500)]);
        let out = run(dir.path(), &server, level);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_clean(&out);
        logs.push(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let [v, vv, vvv] = [&logs[0], &logs[1], &logs[2]];

    // -v: each attempt with its agent, provider, host and path, status, first byte
    // and bytes; the retry and its wait; the fallback; where each key came from.
    for expected in [
        format!(
            "agent{{name=a}}: attempt: anthropic/claude-sonnet-4-5 POST {host}/v1/messages: 429 failed, retryable in "
        ),
        format!(
            "agent{{name=a}}: attempt: anthropic/claude-sonnet-4-5 POST {host}/v1/messages: 200 ok in "
        ),
        "agent{name=a}: retry 1 of 3 for anthropic/claude-sonnet-4-5 in ".to_string(),
        "(after status 429)".to_string(),
        format!(
            "agent{{name=b}}: attempt: openai/gpt-4o POST {host}/v1/chat/completions: 500 failed, retryable"
        ),
        "agent{name=b}: giving up on openai/gpt-4o after 1 attempt(s)".to_string(),
        "agent{name=b}: falling back from openai/gpt-4o to gemini/gemini-3.5-flash".to_string(),
        format!("POST {host}/v1beta/models/gemini-3.5-flash:streamGenerateContent: 200 ok"),
        "key `env:ANTHROPIC_KEY`: read from the environment variable ANTHROPIC_KEY".to_string(),
        "key `env:GEMINI_KEY`: read from the environment variable GEMINI_KEY".to_string(),
    ] {
        assert!(v.contains(&expected), "-v lacks `{expected}`:\n{v}");
    }
    assert!(v.contains("(first byte 0.") && v.contains(" bytes)"), "{v}");
    assert!(!v.contains("budget:") && !v.contains("cache miss") && !v.contains("request body"));

    // -vv: budget decisions with amounts, and the cache.
    assert!(
        vv.contains("agent{name=a}: budget: admitted, reserving $"),
        "{vv}"
    );
    assert!(vv.contains("input tokens, counted); committed $"), "{vv}");
    assert!(vv.contains("agent{name=a}: cache miss "), "{vv}");
    assert!(!vv.contains("request body"), "{vv}");

    // -vvv: each request's body (the prompt is the user's), never its headers.
    assert!(
        vvv.contains("request body to ") && vvv.contains("logs-retry hello"),
        "{vvv}"
    );
    for header in ["x-api-key", "authorization", "x-goog-api-key", "Bearer"] {
        assert!(
            !vvv.to_lowercase().contains(&header.to_lowercase()),
            "{header}:\n{vvv}"
        );
    }

    // Run again: the cache answers, and says so with the key's first 12 hex digits.
    let out = run(dir.path(), &server, 2);
    assert_clean(&out);
    let again = String::from_utf8_lossy(&out.stderr);
    let hit = again
        .lines()
        .find_map(|l| l.split("cache hit ").nth(1))
        .unwrap_or_else(|| panic!("no cache hit:\n{again}"));
    let hex: String = hit.chars().take_while(char::is_ascii_hexdigit).collect();
    assert_eq!(hex.len(), 12, "{hit}");
}

/// A `base_url` may carry a query (a gateway's token; user info is refused for
/// a keyed provider): no log line, at any verbosity, shows it; each names the
/// host and path only.
#[test]
fn logs_show_no_query_of_a_base_url() {
    let server = FakeServer::start();
    let dir = tempfile::tempdir().unwrap();
    let host = server.addr.to_string();
    let file = dir.path().join("flow.yaml");
    std::fs::write(
        &file,
        format!(
            "version: 1\nproviders:\n  anthropic: {{key: env:ANTHROPIC_KEY, base_url: \"http://{host}/?token=gw-token-9c2d\"}}\nagents:\n  a: {{model: anthropic/claude-sonnet-4-5, prompt: hello, max_tokens: 100}}\n"
        ),
    )
    .unwrap();
    let out = byok_flow(dir.path())
        .arg("run")
        .arg(&file)
        .args(["-vvv", "--allow-host", &host])
        .env("ANTHROPIC_KEY", ANTHROPIC_KEY)
        .timeout(std::time::Duration::from_mins(1))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("POST {host}/")), "{stderr}");
    for secret in ["gw-token-9c2d", "token="] {
        assert!(
            !stderr.contains(secret),
            "stderr holds `{secret}`:\n{stderr}"
        );
    }
    assert_clean(&out);
}
