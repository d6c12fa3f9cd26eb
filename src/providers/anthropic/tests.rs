use serde_json::json;

use super::*;
use crate::prompt_cache::Plan;
use crate::providers::http::SseEvent;
use crate::tools::Citation;

fn request() -> Request {
    Request {
        provider: "anthropic".into(),
        model: "claude-sonnet-4-5".into(),
        system: Some("You are a researcher.".into()),
        prompt: "Rules first. Topic: tides".into(),
        ..Request::default()
    }
}

fn searching(max_uses: Option<u32>) -> Tool {
    Tool {
        max_uses,
        allowed_domains: vec!["noaa.gov".into()],
        ..Tool::named(ToolName::WebSearch)
    }
}

#[test]
fn server_tools_and_cache_breakpoints_in_the_body() {
    let mut r = request();
    r.tools = vec![searching(None), Tool::named(ToolName::WebFetch)];
    r.cache = Some(Plan {
        ttl: Ttl::OneHour,
        system: Some("You are a researcher.".len()),
        prompt: Some("Rules first. ".len()),
    });
    let body = Anthropic.body(&r, false);
    assert_eq!(
        body["tools"],
        json!([
            {"type": "web_search_20250305", "name": "web_search", "max_uses": 5, "allowed_domains": ["noaa.gov"]},
            {"type": "web_fetch_20250910", "name": "web_fetch", "max_uses": 5, "max_content_tokens": 10000, "citations": {"enabled": true}},
        ])
    );
    assert_eq!(
        body["system"],
        json!([{"type": "text", "text": "You are a researcher.", "cache_control": {"type": "ephemeral", "ttl": "1h"}}])
    );
    assert_eq!(
        body["messages"][0]["content"],
        json!([
            {"type": "text", "text": "Rules first. ", "cache_control": {"type": "ephemeral", "ttl": "1h"}},
            {"type": "text", "text": "Topic: tides"},
        ])
    );
    let headers = Anthropic.headers(&r);
    assert!(headers.contains(&("anthropic-beta", WEB_FETCH_BETA.to_string())));
    // No tools, no plan: the body is as before.
    let plain = Anthropic.body(&request(), false);
    assert_eq!(plain["system"], json!("You are a researcher."));
    assert!(plain.get("tools").is_none());
    assert_eq!(Anthropic.headers(&request()).len(), 1);
}

#[test]
fn a_whole_reply_keeps_its_text_citations_and_tool_usage() {
    let body = json!({
        "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
        "content": [
            {"type": "text", "text": "I'll search. "},
            {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {"query": "tides"}},
            {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_1", "content": [
                {"type": "web_search_result", "url": "https://noaa.gov/tides", "title": "Tides", "encrypted_content": "x", "page_age": null}
            ]},
            {"type": "text", "text": "Tides follow the moon.", "citations": [
                {"type": "web_search_result_location", "url": "https://noaa.gov/tides", "title": "Tides", "cited_text": "The moon pulls the sea.", "encrypted_index": "e"}
            ]},
        ],
        "stop_reason": "end_turn", "stop_sequence": null,
        "usage": {"input_tokens": 900, "output_tokens": 80, "cache_read_input_tokens": 100,
                  "cache_creation_input_tokens": 300,
                  "cache_creation": {"ephemeral_5m_input_tokens": 100, "ephemeral_1h_input_tokens": 200},
                  "server_tool_use": {"web_search_requests": 1}}
    });
    let reply = Anthropic.parse(&request(), &body.to_string()).unwrap();
    assert_eq!(reply.text, "I'll search. Tides follow the moon.");
    assert_eq!(
        reply.citations,
        [Citation {
            url: "https://noaa.gov/tides".into(),
            title: "Tides".into(),
            quoted: "The moon pulls the sea.".into(),
        }]
    );
    let u = reply.usage;
    assert_eq!(
        (u.input, u.cache_read, u.cache_write, u.cache_write_1h),
        (900, 100, 100, 200)
    );
    assert_eq!(u.web_search, 1);
}

#[test]
fn cache_writes_of_a_one_hour_request_without_a_split_count_as_one_hour() {
    let mut r = request();
    r.cache = Some(Plan {
        ttl: Ttl::OneHour,
        system: Some(3),
        prompt: None,
    });
    let body = json!({"content": [{"type": "text", "text": "x"}], "usage": {"input_tokens": 1, "output_tokens": 1, "cache_creation_input_tokens": 500}});
    let u = Anthropic.parse(&r, &body.to_string()).unwrap().usage;
    assert_eq!((u.cache_write, u.cache_write_1h), (0, 500));
    let u = Anthropic
        .parse(&request(), &body.to_string())
        .unwrap()
        .usage;
    assert_eq!((u.cache_write, u.cache_write_1h), (500, 0));
}

#[test]
fn fetched_pages_are_sources_with_their_quoted_passages() {
    let body = json!({
        "content": [
            {"type": "server_tool_use", "id": "srvtoolu_2", "name": "web_fetch", "input": {"url": "https://a.example/doc"}},
            {"type": "web_fetch_tool_result", "tool_use_id": "srvtoolu_2", "content": {
                "type": "web_fetch_result", "url": "https://a.example/doc", "retrieved_at": null,
                "content": {"type": "document", "title": "The doc", "source": {"type": "text", "media_type": "text/plain", "data": "..."}}}},
            {"type": "text", "text": "It says so.", "citations": [
                {"type": "char_location", "document_index": 0, "document_title": "The doc", "cited_text": "so", "start_char_index": 0, "end_char_index": 2}
            ]},
        ],
        "usage": {"input_tokens": 10, "output_tokens": 5, "server_tool_use": {"web_search_requests": 0, "web_fetch_requests": 1}}
    });
    let reply = Anthropic.parse(&request(), &body.to_string()).unwrap();
    assert_eq!(reply.citations.len(), 1);
    assert_eq!(reply.citations[0].url, "https://a.example/doc");
    assert_eq!(reply.citations[0].quoted, "so");
    assert_eq!(reply.usage.web_fetch, 1);
}

fn event(name: &str, data: &serde_json::Value) -> SseEvent {
    SseEvent {
        name: name.into(),
        data: data.to_string(),
    }
}

#[test]
fn a_stream_with_server_tools_and_citation_deltas() {
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut r = request();
    let log = seen.clone();
    r.progress =
        crate::providers::Progress::default().on_tool(move |tool| log.lock().unwrap().push(tool));
    let mut stream = Anthropic.stream(&r);
    let events = [
        event(
            "message_start",
            &json!({"type": "message_start", "message": {"usage": {"input_tokens": 50, "output_tokens": 1}}}),
        ),
        event(
            "content_block_start",
            &json!({"type": "content_block_start", "index": 0, "content_block": {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {}}}),
        ),
        // The search's query is JSON too: it must not become the reply.
        event(
            "content_block_delta",
            &json!({"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": "{\"query\": \"tides\"}"}}),
        ),
        event(
            "content_block_stop",
            &json!({"type": "content_block_stop", "index": 0}),
        ),
        event(
            "content_block_start",
            &json!({"type": "content_block_start", "index": 1, "content_block": {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_1", "content": []}}),
        ),
        event(
            "content_block_start",
            &json!({"type": "content_block_start", "index": 2, "content_block": {"type": "text", "text": "", "citations": []}}),
        ),
        event(
            "content_block_delta",
            &json!({"type": "content_block_delta", "index": 2, "delta": {"type": "citations_delta", "citation": {"type": "web_search_result_location", "url": "https://noaa.gov/tides", "title": "Tides", "cited_text": "The moon.", "encrypted_index": "e"}}}),
        ),
        event(
            "content_block_delta",
            &json!({"type": "content_block_delta", "index": 2, "delta": {"type": "text_delta", "text": "Moon."}}),
        ),
        event(
            "message_delta",
            &json!({"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 30, "server_tool_use": {"web_search_requests": 1}}}),
        ),
        event("message_stop", &json!({"type": "message_stop"})),
    ];
    let mut done = false;
    for e in &events {
        done = stream.event(e).unwrap();
    }
    assert!(done);
    let reply = stream.reply();
    assert_eq!(reply.text, "Moon.");
    assert_eq!(reply.json, None);
    assert_eq!(reply.citations[0].quoted, "The moon.");
    assert_eq!(
        (
            reply.usage.input,
            reply.usage.output,
            reply.usage.web_search
        ),
        (50, 30, 1)
    );
    assert_eq!(*seen.lock().unwrap(), [ToolName::WebSearch]);
}
