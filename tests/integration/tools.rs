//! Server-side tools (issue 15): `web_search` and `web_fetch` on each provider
//! against the fake server, which runs them as the APIs do. The request bodies are
//! checked against the published schemas and snapshotted; replies with tool blocks
//! and citations (JSON and SSE) give `agents.NAME.citations`, the record's sources,
//! the tool uses and their fees; the budget reserves every search.

use serde_json::{Value, json};

use crate::providers::{ANTHROPIC_KEY, agent, record, run, workflow};
use crate::support::byok_flow;
use crate::support::fake::{Api, Extra, FakeServer, events_with, whole_with};
use crate::wire_specs::{assert_valid, validator};

/// An agent on each provider's searching model, whole and streamed, and one that
/// quotes the first one's sources.
const SEARCHERS: &str = "  a_whole:
    model: anthropic/claude-sonnet-4-5
    prompt: Find the latest Rust release.
    stream: false
    tools:
      - web_search: {max_uses: 2, allowed_domains: [rust-lang.org], user_location: {city: Paris, country: FR, timezone: Europe/Paris}}
      - web_fetch: {max_uses: 1}
  a_stream:
    model: anthropic/claude-sonnet-4-5
    prompt: Find the latest Go release.
    tools:
      - web_search: {max_uses: 1, blocked_domains: [example.net]}
  o_whole:
    model: openai/gpt-4o-search-preview
    prompt: Find the latest Python release.
    stream: false
    tools:
      - web_search: {user_location: {country: FR}}
  o_stream:
    model: openai/gpt-4o-mini-search-preview
    prompt: Find the latest Java release.
    tools: [web_search]
  g_whole:
    model: gemini/gemini-2.5-flash
    prompt: Find the latest Zig release.
    stream: false
    tools: [web_search]
  g_stream:
    model: gemini/gemini-2.5-flash
    prompt: Find the latest Nim release.
    tools: [web_search]
  writer:
    model: openai/gpt-4o
    prompt: |
      Write it up, quoting:
      {{#each agents.a_whole.citations}}
      - {{title}} <{{url}}>: \"{{quoted}}\"
      {{/each}}
";

#[test]
fn tool_request_bodies_match_the_published_specs() {
    let server = FakeServer::start();
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), &workflow(&server, SEARCHERS), &[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let anthropic = validator("anthropic", "request");
    let beta = validator("anthropic", "beta_request");
    let (openai, gemini) = (
        validator("openai", "request"),
        validator("gemini", "request"),
    );
    let requests = server.requests();
    assert_eq!(requests.len(), 7);
    for r in &requests {
        let v = match r.path.as_str() {
            p if p.ends_with("/messages") && r.header("anthropic-beta").is_some() => {
                assert_eq!(r.header("anthropic-beta"), Some("web-fetch-2025-09-10"));
                &beta
            }
            p if p.ends_with("/messages") => &anthropic,
            p if p.ends_with("/chat/completions") => &openai,
            _ => &gemini,
        };
        assert_valid(v, &r.body, &r.path);
    }
    // The exact bodies, per provider.
    for (name, path) in [
        ("anthropic", "/v1/messages"),
        ("openai", "/v1/chat/completions"),
        ("gemini", "/v1beta/models/"),
    ] {
        let mut bodies: Vec<Value> = requests
            .iter()
            .filter(|r| r.path.starts_with(path))
            .map(|r| json!({"path": r.path, "anthropic-beta": r.header("anthropic-beta"), "body": r.body}))
            .collect();
        bodies.sort_by_key(Value::to_string);
        insta::assert_json_snapshot!(format!("tools_request_bodies_{name}"), bodies);
    }
}

#[test]
fn replies_with_tool_blocks_and_citations_whole_and_streamed() {
    let server = FakeServer::start();
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("out");
    let out = run(
        dir.path(),
        &workflow(&server, SEARCHERS),
        &["--out", out_dir.to_str().unwrap()],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let record = record(&out);
    for name in [
        "a_whole", "a_stream", "o_whole", "o_stream", "g_whole", "g_stream",
    ] {
        let a = agent(&record, name);
        let urls: Vec<&str> = a["citations"]
            .as_array()
            .unwrap_or_else(|| panic!("{name} has no citations: {a:#}"))
            .iter()
            .map(|c| c["url"].as_str().unwrap())
            .collect();
        assert_eq!(
            urls,
            ["https://example.com/fake/1", "https://example.com/fake/2"],
            "{name}"
        );
        assert_eq!(a["citations"][0]["title"], "Fake source 1", "{name}");
        assert_eq!(a["usage"]["web_search"], 1, "{name}: {a:#}");
        assert!(!a["output"].as_str().unwrap().is_empty(), "{name}");
    }
    // Anthropic's quotes are the cited text; OpenAI's and Gemini's the span they support.
    let quoted = |name: &str| {
        agent(&record, name)["citations"][0]["quoted"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(
        quoted("a_stream"),
        "A passage of fake source 1 about Find the latest Go release.."
    );
    assert_eq!(quoted("o_stream"), "fake reply t");
    assert_eq!(quoted("g_whole"), "fake reply t");
    let fetched = agent(&record, "a_whole");
    assert_eq!(fetched["usage"]["web_fetch"], 1);
    // Each search's fee on top of the tokens: $10 per 1,000 on Claude Sonnet 4.5
    // ($3 and $15 per million tokens), $35 per 1,000 requests on GPT-4o search.
    let cost = |a: &Value, input: f64, output: f64| {
        a["usage"]["input"].as_f64().unwrap() * input / 1e6
            + a["usage"]["output"].as_f64().unwrap() * output / 1e6
    };
    let a = agent(&record, "a_stream");
    let expected = cost(a, 3.0, 15.0) + 0.01;
    assert!(
        (a["cost_usd"].as_f64().unwrap() - expected).abs() < 1e-6,
        "{a:#}"
    );
    let o = agent(&record, "o_whole");
    let expected = cost(o, 2.5, 10.0) + 0.035;
    assert!(
        (o["cost_usd"].as_f64().unwrap() - expected).abs() < 1e-6,
        "{o:#}"
    );
    // The writer's prompt quotes the researcher's sources.
    let writer = server
        .requests()
        .into_iter()
        .find(|r| r.body["model"] == "gpt-4o")
        .unwrap();
    let prompt = writer.body["messages"][0]["content"].as_str().unwrap();
    assert!(
        prompt.contains("- Fake source 1 <https://example.com/fake/1>: \"A passage of fake source 1 about Find the latest Rust release..\""),
        "{prompt}"
    );
    // `--out` lists the sources under the output.
    let file = std::fs::read_to_string(out_dir.join("a_whole.md")).unwrap();
    assert!(
        file.contains("\n## Sources\n\n1. Fake source 1  \n   https://example.com/fake/1\n"),
        "{file}"
    );
    let run_json: Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("run.json")).unwrap()).unwrap();
    assert_eq!(
        agent(&run_json, "g_stream")["citations"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

#[test]
fn the_fake_servers_tool_replies_match_the_published_specs() {
    let body = json!({"model": "m", "messages": [{"role": "user", "content": "find it"}], "contents": [{"role": "user", "parts": [{"text": "find it"}]}]});
    let usage = (10, 5, 3, 2);
    let search = Extra {
        searches: 1,
        ..Extra::default()
    };
    let fetch = Extra {
        searches: 1,
        fetches: 1,
        cache_write_1h: 4,
    };
    for (api, name, root, extra) in [
        (Api::Anthropic, "anthropic", "", search),
        (Api::Anthropic, "anthropic", "beta_", fetch),
        (Api::OpenAi, "openai", "", search),
        (Api::Gemini, "gemini", "", search),
    ] {
        let response = validator(name, &format!("{root}response"));
        let event = validator(name, &format!("{root}stream_event"));
        let reply = whole_with(api, &body, "found it", None, usage, &extra);
        assert_valid(&response, &reply, name);
        for e in events_with(api, &body, "found it, streamed", None, usage, &extra) {
            let data = e
                .lines()
                .find_map(|l| l.strip_prefix("data: "))
                .unwrap_or_default()
                .trim();
            if data.is_empty() || data == "[DONE]" || data.contains("\"ping\"") {
                continue;
            }
            assert_valid(
                &event,
                &serde_json::from_str(data).unwrap(),
                &format!("{name} event {data}"),
            );
        }
    }
}

/// A researcher on Claude Sonnet 4.5 that may search three times.
fn researcher(server: &FakeServer, budget: f64) -> String {
    workflow(
        server,
        "  researcher:
    model: anthropic/claude-sonnet-4-5
    prompt: Find the latest Rust release.
    max_tokens: 200
    tools:
      - web_search: {max_uses: 3}
",
    )
    .replace(
        "version: 1\n",
        &format!("version: 1\nbudget: {{max_usd: {budget}}}\n"),
    )
}

/// What the estimate says the researcher may cost at most.
fn researcher_max(dir: &std::path::Path, server: &FakeServer) -> f64 {
    let file = dir.join("estimate.yaml");
    std::fs::write(&file, researcher(server, 100.0)).unwrap();
    let out = byok_flow(dir)
        .args(["estimate", "--json"])
        .arg(&file)
        .output()
        .unwrap();
    let estimate: Value = serde_json::from_slice(&out.stdout).unwrap();
    let a = &estimate["agents"][0];
    assert_eq!(a["tools"][0]["uses"], 3, "{a:#}");
    assert_eq!(a["tools"][0]["max_fees_usd"], 0.03, "{a:#}");
    a["max_usd"].as_f64().unwrap()
}

#[test]
fn the_budget_reserves_every_search_and_their_results() {
    let server = FakeServer::start();
    let dir = tempfile::tempdir().unwrap();
    let max = researcher_max(dir.path(), &server);
    // Prompt at its bound × 4 passes + 200 × 3 + 10,000 × 6 result tokens, at the
    // dearest input rate ($3.75), plus 200 output tokens and three $0.01 searches.
    assert!(max > 60_000.0 * 3.75e-6 + 0.03, "{max}");
    // A budget a little under that: the researcher is not started, nothing is sent.
    let out = run(
        dir.path(),
        &researcher(&server, max - 0.001),
        &["--no-cache"],
    );
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(server.requests().is_empty());
    let skipped = record(&out);
    assert!(
        agent(&skipped, "researcher")["reason"]
            .as_str()
            .unwrap()
            .contains("skipped for the budget"),
        "{skipped:#}"
    );
    // At it: it runs, and the fake's own bill (tokens and the search) is what the
    // record says and under the ceiling.
    let out = run(dir.path(), &researcher(&server, max), &["--no-cache"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bills = server.billed();
    assert_eq!(bills.len(), 1);
    let bill = bills[0].1;
    assert_eq!(bill.searches, 1);
    let billed = bill.input as f64 * 3e-6 + bill.output as f64 * 15e-6 + 0.01;
    let recorded = record(&out)["cost_usd"].as_f64().unwrap();
    assert!((recorded - billed).abs() < 1e-6, "{recorded} vs {billed}");
    assert!(billed <= max);
}

#[test]
fn a_budget_needs_each_tools_max_uses_and_a_bounded_fee() {
    let server = FakeServer::start();
    let dir = tempfile::tempdir().unwrap();
    let with_budget = |agents: &str| {
        workflow(&server, agents).replace("version: 1\n", "version: 1\nbudget: {max_usd: 5}\n")
    };
    let out = run(
        dir.path(),
        &with_budget(
            "  r:\n    model: anthropic/claude-sonnet-4-5\n    prompt: x\n    max_tokens: 100\n    tools: [web_search]\n",
        ),
        &[],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("with a budget, every tool needs its own `max_uses`: `web_search` on `r` has none (byok-flow would send and reserve 5)"),
        "{stderr}"
    );
    // Gemini 3 bills each search query, and its API takes no cap.
    let out = run(
        dir.path(),
        &with_budget(
            "  r:\n    model: gemini/gemini-3.1-pro-preview\n    prompt: x\n    max_tokens: 100\n    tools: [web_search]\n",
        ),
        &[],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("cannot be enforced"), "{stderr}");
    assert!(
        stderr.contains("Gemini 3's grounding bills each search query"),
        "{stderr}"
    );
    assert!(server.requests().is_empty());
    // Without a budget, the default is assumed, sent, and said.
    let file = dir.path().join("free.yaml");
    std::fs::write(
        &file,
        workflow(&server, "  r:\n    model: anthropic/claude-sonnet-4-5\n    prompt: x\n    tools: [web_search]\n"),
    )
    .unwrap();
    let out = byok_flow(dir.path())
        .arg("estimate")
        .arg(&file)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("`max_uses` not set: 5 assumed, and sent"),
        "{stdout}"
    );
}

#[test]
fn the_progress_says_when_the_provider_searches_and_citations_are_redacted() {
    let server = FakeServer::start();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("flow.yaml");
    // The search quotes the prompt, which quotes the key: server text that must
    // not carry it into the record.
    std::fs::write(
        &file,
        workflow(
            &server,
            "  researcher:\n    model: anthropic/claude-sonnet-4-5\n    prompt: \"{{inputs.q}}\"\n    tools: [web_search]\n",
        )
        .replace("version: 1\n", "version: 1\ninputs: {q: {required: true}}\n"),
    )
    .unwrap();
    let host = server.url().trim_start_matches("http://").to_string();
    let out = byok_flow(dir.path())
        .arg("run")
        .arg(&file)
        .args(["--json", "--allow-host", &host, "--input"])
        .arg(format!("q={ANTHROPIC_KEY} please"))
        .env("ANTHROPIC_KEY", ANTHROPIC_KEY)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("] tool     researcher: searching the web (web_search)"),
        "{stderr}"
    );
    let record = record(&out);
    let citations = agent(&record, "researcher")["citations"].to_string();
    assert!(!citations.contains(ANTHROPIC_KEY), "{citations}");
    assert!(citations.contains("[redacted key"), "{citations}");
}
