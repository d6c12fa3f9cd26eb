//! Anthropic's Messages API: `POST /v1/messages` with `x-api-key` and
//! `anthropic-version: 2023-06-01`; streamed as named SSE events
//! (`message_start`, `content_block_delta`, `message_delta`, `message_stop`, …).
//! `output: json` is a forced tool call whose input is the JSON.
//!
//! Server tools go in `tools` as `web_search_20250305` and `web_fetch_20250910`
//! (the latter a beta, named in `anthropic-beta`), always with `max_uses`, so a
//! call never searches more than the budget reserved for. A prompt-cache plan
//! becomes `cache_control` breakpoints: the system prompt and the prompt are sent
//! as text blocks split where their static heads end. Reading replies, whole or
//! streamed, with their citations and server-tool usage, is `reply.rs`.

mod reply;

use serde_json::{Value as Json, json};

use super::http::{Auth, SseEvent};
use super::wire::{self, ApiError, StreamFault, StreamParser, Wire, join};
use super::{Reply, Reported, Request};
use crate::catalog::{self, ProviderKind};
use crate::prompt_cache::Ttl;
use crate::tools::{FETCH_MAX_CONTENT_TOKENS, Tool, ToolName};
use crate::usage::Usage;
use crate::workflow::model::OutputKind;

/// The API version byok-flow speaks.
pub const VERSION: &str = "2023-06-01";
/// The `max_tokens` sent when a workflow sets none (the API requires one).
pub const DEFAULT_MAX_TOKENS: u32 = 4096;
/// The tool whose input carries an `output: json` reply.
const TOOL: &str = "emit_output";
/// The beta `web_fetch` needs.
pub const WEB_FETCH_BETA: &str = "web-fetch-2025-09-10";

pub struct Anthropic;

/// The tool schema for a JSON reply: an object schema as is, anything else wrapped in `value`.
fn tool_schema(schema: Option<&Json>) -> (Json, bool) {
    match schema {
        Some(s) if s.get("type").and_then(Json::as_str) == Some("object") => (s.clone(), false),
        Some(s) => (
            json!({"type": "object", "properties": {"value": s}, "required": ["value"]}),
            true,
        ),
        None => (json!({"type": "object"}), false),
    }
}

/// `cache_control` for a breakpoint.
fn cache_control(ttl: Ttl) -> Json {
    match ttl {
        Ttl::FiveMinutes => json!({"type": "ephemeral"}),
        Ttl::OneHour => json!({"type": "ephemeral", "ttl": "1h"}),
    }
}

/// `text` as content: a plain string, or, with a breakpoint `mark` bytes in, two
/// text blocks, the first marked (the second left out when empty).
fn marked(text: &str, mark: Option<usize>, ttl: Ttl) -> Json {
    match mark.filter(|&m| m > 0 && m <= text.len() && text.is_char_boundary(m)) {
        None => json!(text),
        Some(m) => {
            let mut blocks = vec![
                json!({"type": "text", "text": &text[..m], "cache_control": cache_control(ttl)}),
            ];
            if m < text.len() {
                blocks.push(json!({"type": "text", "text": &text[m..]}));
            }
            Json::Array(blocks)
        }
    }
}

fn messages(request: &Request) -> Json {
    let (mark, ttl) = request
        .cache
        .map_or((None, Ttl::FiveMinutes), |p| (p.prompt, p.ttl));
    let mut messages = vec![json!({"role": "user", "content": marked(&request.prompt, mark, ttl)})];
    if let Some((previous, correction)) = &request.correction {
        messages.push(json!({"role": "assistant", "content": previous}));
        messages.push(json!({"role": "user", "content": correction}));
    }
    Json::Array(messages)
}

/// A server tool as the Messages API takes it.
fn server_tool(tool: &Tool) -> Json {
    let mut spec = match tool.name {
        ToolName::WebSearch => json!({"type": "web_search_20250305", "name": "web_search"}),
        ToolName::WebFetch => json!({
            "type": "web_fetch_20250910",
            "name": "web_fetch",
            "max_content_tokens": FETCH_MAX_CONTENT_TOKENS,
            "citations": {"enabled": true},
        }),
    };
    let map = spec.as_object_mut().expect("a JSON object");
    map.insert("max_uses".into(), json!(tool.uses()));
    if !tool.allowed_domains.is_empty() {
        map.insert("allowed_domains".into(), json!(tool.allowed_domains));
    }
    if !tool.blocked_domains.is_empty() {
        map.insert("blocked_domains".into(), json!(tool.blocked_domains));
    }
    if let Some(location) = &tool.user_location {
        let mut l = serde_json::to_value(location).unwrap_or_else(|_| json!({}));
        if let Some(l) = l.as_object_mut() {
            l.insert("type".into(), json!("approximate"));
        }
        map.insert("user_location".into(), l);
    }
    spec
}

impl Wire for Anthropic {
    fn auth(&self) -> Auth {
        Auth::Header("x-api-key")
    }

    fn url(&self, base_url: &str, _model: &str, _stream: bool) -> String {
        join(base_url, "/v1/messages")
    }

    fn headers(&self, request: &Request) -> Vec<(&'static str, String)> {
        let mut headers = vec![("anthropic-version", VERSION.to_string())];
        if request.tools.iter().any(|t| t.name == ToolName::WebFetch) {
            headers.push(("anthropic-beta", WEB_FETCH_BETA.to_string()));
        }
        headers
    }

    fn body(&self, request: &Request, stream: bool) -> Json {
        let mut body = json!({
            "model": request.model,
            "max_tokens": request.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS),
            "messages": messages(request),
        });
        let map = body.as_object_mut().expect("a JSON object");
        if let Some(system) = &request.system {
            let (mark, ttl) = request
                .cache
                .map_or((None, Ttl::FiveMinutes), |p| (p.system, p.ttl));
            map.insert("system".into(), marked(system, mark, ttl));
        }
        let rule = catalog::sampling(ProviderKind::Anthropic, &request.model);
        let (temperature, top_p) = wire::sampling(request, rule);
        if let Some(t) = temperature {
            map.insert("temperature".into(), json!(t));
        }
        if let Some(p) = top_p {
            map.insert("top_p".into(), json!(p));
        }
        if !request.stop.is_empty() {
            map.insert("stop_sequences".into(), json!(request.stop));
        }
        let mut tools: Vec<Json> = request.tools.iter().map(server_tool).collect();
        if request.output == OutputKind::Json {
            let (schema, _) = tool_schema(request.schema.as_ref());
            tools.push(json!({"name": TOOL, "description": "Return the answer as JSON that matches this schema.", "input_schema": schema}));
            map.insert("tool_choice".into(), json!({"type": "tool", "name": TOOL}));
        }
        if !tools.is_empty() {
            map.insert("tools".into(), Json::Array(tools));
        }
        if stream {
            map.insert("stream".into(), json!(true));
        }
        body
    }

    fn announces_tools(&self) -> bool {
        true
    }

    fn parse(&self, request: &Request, body: &str) -> Result<Reply, String> {
        reply::parse(request, body)
    }

    fn stream(&self, request: &Request) -> Box<dyn StreamParser> {
        Box::new(reply::Stream::new(request))
    }

    fn error(&self, status: u16, body: &str) -> ApiError {
        ApiError::read(status, body)
    }

    fn usage_key(&self) -> &'static str {
        "usage"
    }

    fn usage(&self, value: &Json) -> (Usage, Reported) {
        let mut usage = Usage::default();
        let reported = reply::read_usage(value, &mut usage, false);
        (usage, reported)
    }
}

/// The error a stream's `error` event carries.
fn stream_error(data: &Json) -> StreamFault {
    StreamFault::Error(ApiError::from_event(data))
}

/// Reads the event of an SSE stream as JSON.
fn event_json(event: &SseEvent) -> Result<Option<Json>, StreamFault> {
    if event.name == "ping" || event.data.trim().is_empty() {
        return Ok(None);
    }
    serde_json::from_str(&event.data).map(Some).map_err(|e| {
        StreamFault::Malformed(format!("a `{}` event is not valid JSON: {e}", event.name))
    })
}

#[cfg(test)]
mod tests;
