//! Issue 13, "Keys leave": a key a server quotes back is redacted everywhere it
//! could be kept or shown; a proxy never sees a keyed request in clear; a run
//! that would send a key where it may not go is refused before any request.

use std::process::Output;

use base64::Engine as _;

use super::Project;
use crate::support::fake::{FakeServer, Fault};

/// The canary: `/`, `+` and `=` make its URL-encoded and JSON-escaped forms differ.
const CANARY: &str = "sk-ant-CANARY/7f3a+c9d=e1b42";

/// Every form of the canary that must appear nowhere: as is (any escaping keeps
/// the letters `CANARY`), and base64 at each alignment (the characters that
/// depend on the key alone).
fn forms() -> Vec<String> {
    let mut forms = vec!["CANARY".to_string()];
    for prefix in ["", "u", "us"] {
        for engine in [
            &base64::engine::general_purpose::STANDARD,
            &base64::engine::general_purpose::URL_SAFE,
        ] {
            let encoded = engine.encode(format!("{prefix}{CANARY}"));
            // Skip the characters that mix in the prefix or the padding.
            forms.push(encoded[4..encoded.len() - 4].to_string());
        }
    }
    forms
}

/// Panics if `text` holds any form of the canary.
fn assert_clean(what: &str, text: &str) {
    for form in forms() {
        assert!(
            !text.contains(&form),
            "{what} holds the key ({form}):\n{text}"
        );
    }
}

fn assert_nothing_holds_it(p: &Project, out: &Output) {
    assert_clean("stdout", &String::from_utf8_lossy(&out.stdout));
    // In GitHub Actions the key is handed to the runner to mask, on purpose.
    let stderr = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| !l.starts_with("::add-mask::"))
        .collect::<Vec<_>>()
        .join("\n");
    assert_clean("stderr", &stderr);
    for (path, bytes) in p.files() {
        assert_clean(
            &path.display().to_string(),
            &String::from_utf8_lossy(&bytes),
        );
    }
}

fn project() -> Project {
    let p = Project::new();
    p.init();
    p.add("anthropic", CANARY);
    p
}

#[test]
fn issue13_key_echoed_in_error_is_redacted() {
    let server = FakeServer::start();
    let p = project();
    server.script("echo-json", [Fault::EchoKey(500), Fault::EchoKey(401)]);
    server.script(
        "echo-plain",
        [Fault::EchoKeyPlain(503), Fault::EchoKeyPlain(403)],
    );
    let encoded: String = url::form_urlencoded::byte_serialize(CANARY.as_bytes()).collect();
    server.script(
        "echo-reply",
        [Fault::Reply(format!(
            "Your key is {CANARY}, or {encoded} in a URL."
        ))],
    );
    let yaml = format!(
        "version: 1
providers:
  anthropic: {{base_url: \"{url}\"}}
agents:
  refused: {{model: anthropic/claude-sonnet-4-5, prompt: echo-json hello, retries: 1}}
  proxied: {{model: anthropic/claude-sonnet-4-5, prompt: echo-plain hello, retries: 1}}
  quoted: {{model: anthropic/claude-sonnet-4-5, prompt: echo-reply hello, stream: false}}
  after: {{model: anthropic/claude-sonnet-4-5, prompt: \"then {{{{agents.quoted.output}}}}\"}}
",
        url = server.url()
    );
    std::fs::write(p.path().join("flow.yaml"), yaml).unwrap();
    let out = p
        .cmd(&[
            "-vvv",
            "run",
            "flow.yaml",
            "--keep-going",
            "--json",
            "--out",
            "out",
            "--report",
            "report.html",
            "--cache-dir",
            "cache",
            "--allow-host",
            &server.addr.to_string(),
        ])
        .env("BYOK_FLOW_BACKOFF_SCALE", "0")
        .env("BYOK_FLOW_HISTORY", p.path().join("history.sqlite"))
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_STEP_SUMMARY", p.path().join("summary.md"))
        .env("GITHUB_OUTPUT", p.path().join("outputs.txt"))
        .env("GITHUB_WORKSPACE", p.path())
        .timeout(std::time::Duration::from_mins(1))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_nothing_holds_it(&p, &out);
    // Every path was taken: the retries, both failures, the reply.
    assert!(stderr.contains("retrying"), "{stderr}");
    // (stdout, the same record, is fenced from workflow commands in Actions)
    let run_json = std::fs::read(p.path().join("out/run.json")).unwrap();
    let record: serde_json::Value = serde_json::from_slice(&run_json).unwrap();
    let marker = "[redacted key anthropic]";
    for agent in &record["agents"].as_array().unwrap()[..3] {
        let text = agent.to_string();
        assert!(text.contains(marker), "{text}");
    }
    assert!(stderr.contains("::error"), "{stderr}");
    let summary = std::fs::read_to_string(p.path().join("summary.md")).unwrap();
    assert!(summary.contains(marker), "{summary}");
    // The HTML report (checked with every other file above) shows the redaction.
    let report = std::fs::read_to_string(p.path().join("report.html")).unwrap();
    assert!(
        report.contains(marker),
        "the report shows what the record holds"
    );
    // The quoted reply went on to the next agent's prompt redacted: the key never
    // travels in a body.
    for request in server.requests() {
        assert_clean("a request body", &request.body.to_string());
    }
    assert!(
        server
            .requests()
            .iter()
            .any(|r| r.body.to_string().contains(marker)),
        "the next agent got the redacted reply"
    );
}

/// A dataset run (issue 9) whose server quotes the key, in an error body and in a
/// reply: no result line, no `results.jsonl`, `run.json`, cache entry, history,
/// step summary or log line holds it, and the rows show the redaction.
#[test]
fn issue9_key_quoted_in_a_dataset_run_is_redacted() {
    let server = FakeServer::start();
    let p = project();
    server.script("echo-json", [Fault::EchoKey(500), Fault::EchoKey(401)]);
    server.script(
        "echo-reply",
        [Fault::Reply(format!("Your key is {CANARY}."))],
    );
    let yaml = format!(
        "version: 1
inputs:
  n: {{required: true}}
providers:
  anthropic: {{base_url: \"{url}\"}}
agents:
  refused: {{model: anthropic/claude-sonnet-4-5, prompt: \"echo-json {{{{inputs.n}}}}\", retries: 1}}
  quoted: {{model: anthropic/claude-sonnet-4-5, prompt: \"echo-reply {{{{inputs.n}}}}\", stream: false}}
  after: {{model: anthropic/claude-sonnet-4-5, prompt: \"then {{{{agents.quoted.output}}}}\"}}
",
        url = server.url()
    );
    std::fs::write(p.path().join("flow.yaml"), yaml).unwrap();
    std::fs::write(
        p.path().join("rows.jsonl"),
        "{\"n\": 0}\n{\"n\": 1}\n{\"n\": 2}\n",
    )
    .unwrap();
    let out = p
        .cmd(&[
            "-vvv",
            "run",
            "flow.yaml",
            "--each",
            "rows.jsonl",
            "--keep-going",
            "--concurrency",
            "1",
            "--out",
            "out",
            "--cache-dir",
            "cache",
            "--allow-host",
            &server.addr.to_string(),
        ])
        .env("BYOK_FLOW_BACKOFF_SCALE", "0")
        .env("BYOK_FLOW_HISTORY", p.path().join("history.sqlite"))
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_STEP_SUMMARY", p.path().join("summary.md"))
        .env("GITHUB_OUTPUT", p.path().join("outputs.txt"))
        .env("GITHUB_WORKSPACE", p.path())
        .timeout(std::time::Duration::from_mins(1))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_nothing_holds_it(&p, &out);
    let marker = "[redacted key anthropic]";
    let results = std::fs::read_to_string(p.path().join("out/results.jsonl")).unwrap();
    let rows: Vec<serde_json::Value> = results
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 3, "{results}");
    assert_eq!(rows[0]["status"], "failed", "{results}");
    assert!(
        rows[0]["error"]["message"]
            .as_str()
            .unwrap()
            .contains(marker),
        "the failed row's error shows the redaction: {results}"
    );
    assert!(
        rows[0]["outputs"]["after"]
            .as_str()
            .unwrap()
            .contains("Your key is [redacted key"),
        "the quoted reply is an output, redacted: {results}"
    );
    let summary = std::fs::read_to_string(p.path().join("summary.md")).unwrap();
    assert!(summary.contains(marker), "{summary}");
    for request in server.requests() {
        assert_clean("a request body", &request.body.to_string());
    }
}

/// A proxy on loopback that records what it receives and answers `502`.
struct FakeProxy {
    addr: std::net::SocketAddr,
    seen: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl FakeProxy {
    fn start() -> Self {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let _ = stream.set_read_timeout(Some(std::time::Duration::from_millis(500)));
                let mut received = Vec::new();
                let mut buf = [0u8; 4096];
                while let Ok(n) = stream.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    received.extend_from_slice(&buf[..n]);
                    if received.windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
                log.lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&received).into_owned());
                let _ = stream.write_all(b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\n\r\n");
            }
        });
        FakeProxy { addr, seen }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

#[test]
fn issue13_proxy_never_sees_a_keyed_request_in_clear() {
    let server = FakeServer::start();
    let proxy = FakeProxy::start();
    let p = project();
    let all_proxies = [
        "HTTP_PROXY",
        "http_proxy",
        "ALL_PROXY",
        "all_proxy",
        "HTTPS_PROXY",
        "https_proxy",
    ];
    // A plain-http loopback provider: never through the proxy.
    std::fs::write(
        p.path().join("flow.yaml"),
        format!(
            "version: 1\nproviders:\n  anthropic: {{base_url: \"{}\"}}\nagents:\n  a: {{model: anthropic/claude-sonnet-4-5, prompt: hello}}\n",
            server.url()
        ),
    )
    .unwrap();
    for var in all_proxies {
        let out = p
            .cmd(&[
                "-v",
                "run",
                "flow.yaml",
                "--no-cache",
                "--allow-host",
                &server.addr.to_string(),
            ])
            .env(var, proxy.url())
            .timeout(std::time::Duration::from_mins(1))
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{var}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_nothing_holds_it(&p, &out);
    }
    assert!(proxy.seen().is_empty(), "the proxy got: {:?}", proxy.seen());
    assert_eq!(server.requests().len(), all_proxies.len());

    // An https provider: through the proxy, as a CONNECT tunnel only, and `-v` says so.
    std::fs::write(
        p.path().join("flow.yaml"),
        "version: 1\nagents:\n  a: {model: anthropic/claude-sonnet-4-5, prompt: hello, retries: 0}\n",
    )
    .unwrap();
    let out = p
        .cmd(&["-v", "run", "flow.yaml", "--no-cache"])
        .env("HTTPS_PROXY", proxy.url())
        .env("HTTP_PROXY", proxy.url())
        .timeout(std::time::Duration::from_mins(1))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "https:// requests go through the proxy {}/ (from HTTPS_PROXY) as a CONNECT tunnel",
            proxy.url()
        )),
        "{stderr}"
    );
    assert_nothing_holds_it(&p, &out);
    let seen = proxy.seen();
    assert!(!seen.is_empty());
    for request in seen {
        assert!(
            request.starts_with("CONNECT api.anthropic.com:443 HTTP/1.1\r\n"),
            "{request}"
        );
        assert_clean("what the proxy saw", &request);
        assert!(
            !request.to_ascii_lowercase().contains("x-api-key"),
            "{request}"
        );
    }
}

#[test]
fn issue13_refusal_happens_before_the_first_request() {
    let server = FakeServer::start();
    let p = project();
    let allow = server.addr.to_string();
    // The key file is pinned to Anthropic: it may not go to OpenAI, nor to
    // Ollama's loopback home, whichever agent or fallback would send it, however
    // late in the run.
    let later_agents = [
        "  b: {model: openai/gpt-4o, key: anthropic, prompt: \"{{agents.a.output}}\"}\n",
        "  b: {model: ollama/llama3, key: anthropic, prompt: \"{{agents.a.output}}\"}\n",
        "  b: {model: anthropic/claude-sonnet-4-5, fallback: [openai/gpt-4o], prompt: \"{{agents.a.output}}\"}\n",
    ];
    for b in later_agents {
        let yaml = format!(
            "version: 1\nproviders:\n  anthropic: {{base_url: \"{}\"}}\n  openai: {{key: anthropic}}\nagents:\n  a: {{model: anthropic/claude-sonnet-4-5, prompt: first}}\n{b}",
            server.url()
        );
        std::fs::write(p.path().join("flow.yaml"), yaml).unwrap();
        let out = p
            .cmd(&["run", "flow.yaml", "--no-cache", "--allow-host", &allow])
            .timeout(std::time::Duration::from_mins(1))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(4), "{b}: {stderr}");
        assert!(
            stderr.contains("refusing to send key `anthropic` (provider `anthropic`)"),
            "{stderr}"
        );
        assert!(
            server.requests().is_empty(),
            "{b}: an earlier agent was called (and paid) before the refusal"
        );
        assert_nothing_holds_it(&p, &out);
    }
}

/// `localhost` is loopback by its name: a keyed request goes to it over plain
/// http and past any proxy, so byok-flow takes it for the loopback addresses
/// without asking the system's resolver. (That the resolver is not asked cannot
/// be shown here without changing the system's hosts file.) What this checks:
/// with that override, a run against `http://localhost:PORT` still reaches the
/// server on 127.0.0.1 at the URL's port, with its key, and no proxy sees it.
#[test]
fn a_localhost_base_url_reaches_the_loopback_server_at_its_port() {
    let server = FakeServer::start();
    let proxy = FakeServer::start();
    let p = project();
    let url = server.url().replace("127.0.0.1", "localhost");
    assert!(url.starts_with("http://localhost:"), "{url}");
    let yaml = format!(
        "version: 1\nproviders:\n  anthropic: {{base_url: \"{url}\"}}\nagents:\n  a: {{model: anthropic/claude-sonnet-4-5, prompt: hello}}\n"
    );
    std::fs::write(p.path().join("flow.yaml"), yaml).unwrap();
    let allow = url.trim_start_matches("http://").to_string();
    let out = p
        .cmd(&["run", "flow.yaml", "--no-cache", "--allow-host", &allow])
        .env("HTTP_PROXY", proxy.url())
        .env("ALL_PROXY", proxy.url())
        .timeout(std::time::Duration::from_mins(1))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let requests = server.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert_eq!(requests[0].header("x-api-key"), Some(CANARY));
    assert!(
        proxy.requests().is_empty(),
        "the proxy saw a loopback request"
    );
}
