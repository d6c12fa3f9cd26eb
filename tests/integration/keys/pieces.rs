//! Siblings of issue 13's first item: a secret that reaches an output in a form
//! the redaction did not know, because the server's text was cut through it, or
//! because it was registered in another spelling than the one that travels.

use std::process::Output;

use base64::Engine as _;

use super::Project;
use crate::support::fake::{FakeServer, Fault};

/// Panics if stdout, stderr or any file of the project holds `piece`.
fn assert_nowhere(p: &Project, out: &Output, piece: &str) {
    for (what, bytes) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
        // In GitHub Actions each key is handed to the runner to mask, on purpose.
        let text = String::from_utf8_lossy(bytes)
            .lines()
            .filter(|l| !l.starts_with("::add-mask::"))
            .collect::<Vec<_>>()
            .join("\n");
        assert!(!text.contains(piece), "{what} holds `{piece}`:\n{text}");
    }
    for (path, bytes) in p.files() {
        let text = String::from_utf8_lossy(&bytes);
        assert!(
            !text.contains(piece),
            "{} holds `{piece}`:\n{text}",
            path.display()
        );
    }
}

/// Panics if a request the server received (a later agent's prompt) holds `piece`.
fn assert_never_sent(server: &FakeServer, piece: &str) {
    for request in server.requests() {
        let body = request.body.to_string();
        assert!(
            !body.contains(piece),
            "a request body holds `{piece}`: {body}"
        );
    }
}

/// A run of `flow.yaml` at `-vvv` that keeps everything it can: `--json`,
/// `--out`, the history, the cache, the report, and GitHub's step summary.
fn run_keeping_everything(p: &Project, allow: &str) -> assert_cmd::Command {
    let mut cmd = p.cmd(&[
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
        allow,
    ]);
    cmd.env("BYOK_FLOW_BACKOFF_SCALE", "0")
        .env("BYOK_FLOW_HISTORY", p.path().join("history.sqlite"))
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_STEP_SUMMARY", p.path().join("summary.md"))
        .env("GITHUB_WORKSPACE", p.path())
        .timeout(std::time::Duration::from_mins(1));
    cmd
}

/// An error message (a body's, or an error event's in a stream) is cut at 500
/// characters; a key that straddles the cut used
/// to leave its first characters (here `sk-ant-PIECE-0d5b`) in every output,
/// since the redaction ran on the cut message and no longer saw a whole key.
#[test]
fn a_key_cut_off_at_the_end_of_an_error_message_leaves_no_piece() {
    const KEY: &str = "sk-ant-PIECE-0d5b9e77c1a4f3";
    let server = FakeServer::start();
    let p = Project::new();
    p.init();
    p.add("anthropic", KEY);
    // Each message is padded so that the cut at 500 characters leaves the key's
    // first 12 characters, `sk-ant-PIECE`: fewer than a piece the redaction
    // finds anywhere (16), so only redacting before the cut keeps them out.
    let padding = |said: &str| "x".repeat(500 - 12 - said.len() - 2);
    let message = format!("bad key {} {KEY} was refused", padding("bad key"));
    let body = serde_json::json!({
        "type": "error",
        "error": {"type": "invalid_request_error", "message": message},
    })
    .to_string();
    server.script("cut-json", [Fault::Body { code: 400, body }]);
    // An error event in the middle of a stream, as Anthropic sends `overloaded_error`.
    let event = serde_json::json!({
        "type": "error",
        "error": {"type": "overloaded_error", "message": format!("overloaded {} {KEY}", padding("overloaded"))},
    });
    server.script(
        "cut-stream",
        [Fault::Body {
            code: 200,
            body: format!(
                "event: message_start\ndata: {}\n\nevent: error\ndata: {event}\n\n",
                serde_json::json!({"type": "message_start", "message": {
                    "id": "msg_1", "type": "message", "role": "assistant",
                    "model": "claude-sonnet-4-5", "content": [],
                    "usage": {"input_tokens": 5, "output_tokens": 1},
                }})
            ),
        }],
    );
    server.script(
        "cut-plain",
        [Fault::Body {
            code: 502,
            body: format!(
                "upstream said: {} {KEY} was refused",
                padding("upstream said:")
            ),
        }],
    );
    std::fs::write(
        p.path().join("flow.yaml"),
        format!(
            "version: 1
providers:
  anthropic: {{base_url: \"{url}\"}}
agents:
  json: {{model: anthropic/claude-sonnet-4-5, prompt: cut-json hello, retries: 0}}
  plain: {{model: anthropic/claude-sonnet-4-5, prompt: cut-plain hello, retries: 0}}
  stream: {{model: anthropic/claude-sonnet-4-5, prompt: cut-stream hello, retries: 0, stream: true}}
",
            url = server.url()
        ),
    )
    .unwrap();
    let out = run_keeping_everything(&p, &server.addr.to_string())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    // Both errors were shown, cut (the marker too, perhaps), and the key's first
    // characters are in none of them.
    assert!(stderr.contains("bad key xxxx"), "{stderr}");
    assert!(stderr.contains("upstream said: xxxx"), "{stderr}");
    assert!(
        stderr.contains("overloaded_error (mid-stream): overloaded xxxx"),
        "{stderr}"
    );
    assert_nowhere(&p, &out, "PIECE");
}

/// A proxy's password is written percent-encoded in `HTTP_PROXY`
/// (`%40` for `@`), and sent decoded (in `Proxy-Authorization: Basic`); a proxy
/// that takes a token takes it as the user name, with no password. Both used to
/// be kept out of outputs only as a password as written, so a proxy that echoes
/// the credential (decoded, or the `Basic` blob) put it in every output.
#[test]
fn a_proxy_password_is_redacted_as_it_is_sent_not_only_as_written() {
    // (the URL's user info, the credential as sent)
    for (written, sent) in [
        ("me:PIECEpass%40w0rd%3A42", "me:PIECEpass@w0rd:42"),
        ("PIECE-token%2F9f3e7a", "PIECE-token/9f3e7a:"),
    ] {
        let server = FakeServer::start();
        let p = Project::new();
        let blob = base64::engine::general_purpose::STANDARD.encode(sent);
        // What a debugging proxy says about a request it will not forward.
        server.script(
            "proxied",
            [Fault::Body {
                code: 502,
                body: format!(
                    "{{\"error\": {{\"message\": \"upstream down; you sent Proxy-Authorization: Basic {blob} ({sent})\"}}}}"
                ),
            }],
        );
        // A plain-http provider that takes no key goes through `HTTP_PROXY`: the
        // fake server plays the proxy (and, under `/local/`, a server that takes no key).
        std::fs::write(
            p.path().join("flow.yaml"),
            "version: 1
providers:
  local: {type: openai-compatible, base_url: \"http://upstream.example/local/v1\", key: none}
agents:
  a: {model: local/llama3, prompt: proxied hello, retries: 0}
",
        )
        .unwrap();
        let out = run_keeping_everything(&p, "upstream.example")
            .env("HTTP_PROXY", format!("http://{written}@{}", server.addr))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        // The request went through the proxy, with the decoded credential.
        let requests = server.requests();
        assert_eq!(requests.len(), 1, "{stderr}");
        assert_eq!(
            requests[0].header("proxy-authorization"),
            Some(format!("Basic {blob}").as_str())
        );
        assert!(stderr.contains("[redacted key proxy-password]"), "{stderr}");
        assert_nowhere(&p, &out, "PIECE");
        // The blob's characters that encode the secret alone (after `me:`, before the padding).
        let skip = if sent.starts_with("me:") { 4 } else { 0 };
        assert_nowhere(&p, &out, &blob[skip..blob.len() - 4]);
    }
}

/// A key holding `&`, `<`, `>` or quotes, quoted by a server that escapes HTML
/// by name (`&amp;`, `&lt;`, `&quot;`), as most escapers do: in an error, and in
/// a reply that goes on into another agent's prompt.
#[test]
fn a_key_quoted_with_named_html_entities_is_redacted() {
    const KEY: &str = "sk-ant-PIECE<b2&c3>d4\"e5'f6";
    let escaped = "sk-ant-PIECE&lt;b2&amp;c3&gt;d4&quot;e5&apos;f6";
    let server = FakeServer::start();
    let p = Project::new();
    p.init();
    p.add("anthropic", KEY);
    server.script(
        "html-error",
        [Fault::Body {
            code: 401,
            body: serde_json::json!({
                "type": "error",
                "error": {"type": "authentication_error", "message": format!("key {escaped} is not valid")},
            })
            .to_string(),
        }],
    );
    server.script(
        "html-reply",
        [Fault::Reply(format!("<p>Your key: {escaped}</p>"))],
    );
    std::fs::write(
        p.path().join("flow.yaml"),
        format!(
            "version: 1
providers:
  anthropic: {{base_url: \"{url}\"}}
agents:
  refused: {{model: anthropic/claude-sonnet-4-5, prompt: html-error hello, retries: 0}}
  quoted: {{model: anthropic/claude-sonnet-4-5, prompt: html-reply hello, stream: false}}
  after: {{model: anthropic/claude-sonnet-4-5, prompt: \"then {{{{agents.quoted.output}}}}\"}}
",
            url = server.url()
        ),
    )
    .unwrap();
    let out = run_keeping_everything(&p, &server.addr.to_string())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("key [redacted key anthropic] is not valid"),
        "{stderr}"
    );
    assert_nowhere(&p, &out, "PIECE");
    assert_never_sent(&server, "PIECE");
}

/// An OpenAI `url_citation` quotes the span of the reply between two indices; a
/// span inside a key (the model repeated it) used to keep that piece of the key,
/// which the redaction of the quote alone could not recognise. The key comes from
/// `env:` here.
#[test]
fn a_citation_span_that_cuts_through_a_key_keeps_no_piece_of_it() {
    const KEY: &str = "sk-proj-PIECE-4b1d7e0a9c";
    let server = FakeServer::start();
    let p = Project::new();
    let text = format!("Your key is {KEY}, says the page.");
    let start = text.find("PIECE").unwrap();
    let reply = serde_json::json!({
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": "gpt-4o-search-preview",
        "choices": [{
            "index": 0,
            "finish_reason": "stop",
            "message": {
                "role": "assistant",
                "content": text,
                "annotations": [{
                    "type": "url_citation",
                    "url_citation": {
                        "url": "https://example.com/page",
                        "title": "A page",
                        "start_index": start,
                        // `PIECE-4b1d`: ten characters, fewer than a piece the
                        // redaction finds anywhere (16).
                        "end_index": start + 10,
                    },
                }],
            },
        }],
        "usage": {"prompt_tokens": 5, "completion_tokens": 9, "total_tokens": 14},
    });
    server.script(
        "cite",
        [Fault::Body {
            code: 200,
            body: reply.to_string(),
        }],
    );
    std::fs::write(
        p.path().join("flow.yaml"),
        format!(
            "version: 1
providers:
  openai: {{base_url: \"{url}/v1\", key: \"env:OPENAI_KEY\"}}
agents:
  searched: {{model: openai/gpt-4o-search-preview, tools: [web_search], prompt: cite hello, stream: false}}
  after:
    model: openai/gpt-4o
    prompt: |
      {{{{#each agents.searched.citations}}}}{{{{quoted}}}}{{{{/each}}}}
",
            url = server.url()
        ),
    )
    .unwrap();
    let out = run_keeping_everything(&p, &server.addr.to_string())
        .env("OPENAI_KEY", KEY)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(p.path().join("out/run.json")).unwrap()).unwrap();
    let citations = record["agents"][0]["citations"].to_string();
    assert!(
        citations.contains("\"quoted\":\"[redacted key env:OPENAI_KEY]\""),
        "{citations}"
    );
    assert_nowhere(&p, &out, "PIECE");
    assert_never_sent(&server, "PIECE");
}

/// A server (a gateway's log line, a proxy's page) that cuts its echo of the key
/// leaves a piece of it: its first 20 characters are as good as secret. A run of
/// 16 characters of a key is redacted wherever it is; fewer are left (a common
/// prefix, OpenAI's masked echo).
#[test]
fn a_piece_of_a_key_cut_by_the_server_is_redacted() {
    const KEY: &str = "sk-ant-PIECE-0d5b9e77c1a4f3";
    let server = FakeServer::start();
    let p = Project::new();
    p.init();
    p.add("anthropic", KEY);
    let masked = format!("{}****{}", &KEY[..8], &KEY[KEY.len() - 4..]);
    server.script(
        "cut-by-server",
        [Fault::Body {
            code: 401,
            body: serde_json::json!({
                "type": "error",
                "error": {
                    "type": "authentication_error",
                    "message": format!("invalid key {}... ({masked})", &KEY[..20]),
                },
            })
            .to_string(),
        }],
    );
    server.script(
        "cut-in-reply",
        [Fault::Reply(format!("It ends in {}.", &KEY[6..]))],
    );
    std::fs::write(
        p.path().join("flow.yaml"),
        format!(
            "version: 1
providers:
  anthropic: {{base_url: \"{url}\"}}
agents:
  refused: {{model: anthropic/claude-sonnet-4-5, prompt: cut-by-server hello, retries: 0}}
  quoted: {{model: anthropic/claude-sonnet-4-5, prompt: cut-in-reply hello, stream: false}}
",
            url = server.url()
        ),
    )
    .unwrap();
    let out = run_keeping_everything(&p, &server.addr.to_string())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "invalid key [redacted key anthropic]... ({masked})"
        )),
        "{stderr}"
    );
    assert_nowhere(&p, &out, "PIECE");
}

/// A key pasted where its name goes, in a workflow's `key:` or as `keys add`'s
/// NAME: it used to pass `validate`, then be quoted by every error (and GitHub
/// annotation) of `run`, and `keys add` made it a file name (committed with
/// `.byok/`). Both are refused, without quoting it.
#[test]
fn a_key_pasted_where_its_name_goes_is_refused_and_never_quoted() {
    const KEY: &str = "sk-ant-api03-PIECEx8Qw2Lm9Pk3Rt6Yv1Bn4Hj7Gf5";
    let p = Project::new();
    p.init();
    std::fs::write(
        p.path().join("flow.yaml"),
        format!(
            "version: 1
providers:
  anthropic: {{key: {KEY}}}
agents:
  a: {{model: anthropic/claude-sonnet-4-5, prompt: hello}}
  b: {{model: anthropic/claude-sonnet-4-5, prompt: hello, key: \"env:{KEY}\"}}
"
        ),
    )
    .unwrap();
    for args in [&["validate", "flow.yaml"][..], &["run", "flow.yaml"]] {
        let out = p
            .cmd(args)
            .env("GITHUB_ACTIONS", "true")
            .env("GITHUB_WORKSPACE", p.path())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(
            stderr
                .matches(
                    "this looks like an API key itself, not the name of a key file or variable"
                )
                .count(),
            4,
            "{args:?}: two problems, each shown and annotated: {stderr}"
        );
        // Only the quoted lines of the file itself show it.
        for line in stderr.lines().filter(|l| l.contains("PIECE")) {
            assert!(line.contains(" │ "), "{args:?}: {line}");
        }
    }

    let before = p.files();
    let out = p.run_stdin(&["-vvv", "keys", "add", KEY], b"sk-ant-the-real-key-0123\n");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("looks like an API key itself"), "{stderr}");
    assert!(!stderr.contains("PIECE") && !String::from_utf8_lossy(&out.stdout).contains("PIECE"));
    assert_eq!(p.files(), before, "no file is written");
}
