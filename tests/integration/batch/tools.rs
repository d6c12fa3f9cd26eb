//! Server tools (`web_search`, `web_fetch`) in batched agents: Anthropic's Message
//! Batches take every Messages API feature (the `web_fetch` beta named on the
//! batch), Gemini's Batch Mode takes Google Search grounding; `OpenAI`'s Batch API
//! does not serve the search models, so a batched `OpenAI` agent with tools is an
//! error at validation naming it.

use super::{Place, agent, record, stderr};
use crate::support::fake::FakeServer;

const SEARCHERS: &str = "  a:
    model: anthropic/claude-sonnet-4-5
    prompt: Find the latest Rust release.
    tools:
      - web_search: {max_uses: 2, allowed_domains: [rust-lang.org]}
      - web_fetch: {max_uses: 1}
  g:
    model: gemini/gemini-2.5-flash
    prompt: Find the latest Zig release.
    tools: [web_search]
";

#[test]
fn anthropic_and_gemini_batches_carry_the_server_tools_and_the_beta() {
    let server = FakeServer::start();
    let place = Place::new();
    let out = place.run(&server, SEARCHERS, &["--no-cache"], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let run = record(&out);
    for name in ["a", "g"] {
        assert_eq!(agent(&run, name)["status"], "succeeded", "{run}");
    }
    let creates: Vec<_> = server
        .requests()
        .into_iter()
        .filter(|r| {
            r.method == "POST"
                && (r.path.ends_with("/batches") || r.path.contains(":batchGenerateContent"))
        })
        .collect();
    assert_eq!(creates.len(), 2, "{:?}", server.batch_log());
    let anthropic = creates
        .iter()
        .find(|r| r.path.contains("/messages/"))
        .unwrap();
    let params = &anthropic.body["requests"][0]["params"];
    let tools: Vec<&str> = params["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(tools, ["web_search", "web_fetch"], "{params}");
    assert!(
        anthropic
            .header("anthropic-beta")
            .is_some_and(|b| b.contains("web-fetch")),
        "{:?}",
        anthropic.headers
    );
    let gemini = creates.iter().find(|r| r.path.contains(":batch")).unwrap();
    let request = &gemini.body["batch"]["inputConfig"]["requests"]["requests"][0]["request"];
    assert!(
        request["tools"][0].get("googleSearch").is_some(),
        "{request}"
    );
}

#[test]
fn a_batched_openai_agent_with_tools_is_an_error_naming_it() {
    let server = FakeServer::start();
    let place = Place::new();
    let agents = "  o:\n    model: openai/gpt-4o-search-preview\n    prompt: Find the latest Python release.\n    tools: [web_search]\n";
    let out = place.run(&server, agents, &[], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("agent `o`: `openai`'s Batch API does not run server tools")
            && err.contains("set `batch: false` on agent `o`")
            && err.contains("flow.yaml:"),
        "{err}"
    );
    assert!(server.requests().is_empty());
    // `batch: false` on it: called directly, the rest of the squad batched.
    let agents = format!("{agents}    batch: false\n");
    let out = place.run(&server, &agents, &[], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(server.batch_count("create"), 0);
}
