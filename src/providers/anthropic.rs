//! Anthropic's Messages API: `POST /v1/messages` with `x-api-key` and
//! `anthropic-version: 2023-06-01`; streamed as named SSE events
//! (`message_start`, `content_block_delta`, `message_delta`, `message_stop`, …).
//! `output: json` is a forced tool call whose input is the JSON.

use serde_json::{Value as Json, json};

use super::http::{Auth, SseEvent};
use super::wire::{self, ApiError, StreamFault, StreamParser, Wire, join};
use super::{Reply, Reported, Request};
use crate::catalog::{self, ProviderKind};
use crate::usage::Usage;
use crate::workflow::model::OutputKind;

/// The API version byok-flow speaks.
pub const VERSION: &str = "2023-06-01";
/// The `max_tokens` sent when a workflow sets none (the API requires one).
pub const DEFAULT_MAX_TOKENS: u32 = 4096;
/// The tool whose input carries an `output: json` reply.
const TOOL: &str = "emit_output";

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

fn messages(request: &Request) -> Json {
    let mut messages = vec![json!({"role": "user", "content": request.prompt})];
    if let Some((previous, correction)) = &request.correction {
        messages.push(json!({"role": "assistant", "content": previous}));
        messages.push(json!({"role": "user", "content": correction}));
    }
    Json::Array(messages)
}

impl Wire for Anthropic {
    fn auth(&self) -> Auth {
        Auth::Header("x-api-key")
    }

    fn url(&self, base_url: &str, _model: &str, _stream: bool) -> String {
        join(base_url, "/v1/messages")
    }

    fn headers(&self) -> Vec<(&'static str, String)> {
        vec![("anthropic-version", VERSION.to_string())]
    }

    fn body(&self, request: &Request, stream: bool) -> Json {
        let mut body = json!({
            "model": request.model,
            "max_tokens": request.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS),
            "messages": messages(request),
        });
        let map = body.as_object_mut().expect("a JSON object");
        if let Some(system) = &request.system {
            map.insert("system".into(), json!(system));
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
        if request.output == OutputKind::Json {
            let (schema, _) = tool_schema(request.schema.as_ref());
            map.insert("tools".into(), json!([{"name": TOOL, "description": "Return the answer as JSON that matches this schema.", "input_schema": schema}]));
            map.insert("tool_choice".into(), json!({"type": "tool", "name": TOOL}));
        }
        if stream {
            map.insert("stream".into(), json!(true));
        }
        body
    }

    fn parse(&self, request: &Request, body: &str) -> Result<Reply, String> {
        let message: Json =
            serde_json::from_str(body).map_err(|e| format!("the reply is not valid JSON: {e}"))?;
        if let Some(error) = wire::error_in_reply(&message) {
            return Err(error);
        }
        let content = message
            .get("content")
            .and_then(Json::as_array)
            .ok_or("the reply has no `content`")?;
        let mut text = String::new();
        let mut tool_input = None;
        for block in content {
            match block.get("type").and_then(Json::as_str) {
                Some("text") => {
                    text.push_str(block.get("text").and_then(Json::as_str).unwrap_or_default());
                }
                Some("tool_use") => tool_input = block.get("input").cloned(),
                _ => {}
            }
        }
        let (mut usage, mut reported) = (Usage::default(), Reported::default());
        if let Some(u) = message.get("usage") {
            reported = read_usage(u, &mut usage);
        }
        let stop_reason = message
            .get("stop_reason")
            .and_then(Json::as_str)
            .map(str::to_string);
        let mut reply = finish(request, text, tool_input, usage, stop_reason);
        reply.reported = reported;
        Ok(reply)
    }

    fn stream(&self, request: &Request) -> Box<dyn StreamParser> {
        Box::new(Stream {
            request: request.clone(),
            text: String::new(),
            tool_json: String::new(),
            usage: Usage::default(),
            reported: Reported::default(),
            stop_reason: None,
        })
    }

    fn error(&self, status: u16, body: &str) -> ApiError {
        ApiError::read(status, body)
    }

    fn usage_key(&self) -> &'static str {
        "usage"
    }

    fn usage(&self, value: &Json) -> (Usage, Reported) {
        let mut usage = Usage::default();
        let reported = read_usage(value, &mut usage);
        (usage, reported)
    }
}

/// Takes the counts a usage object holds into `usage`, and says which it held.
fn read_usage(u: &Json, usage: &mut Usage) -> Reported {
    let field = |name: &str| u.get(name).and_then(Json::as_u64);
    let mut reported = Reported::default();
    if let Some(n) = field("input_tokens") {
        usage.input = n;
        reported.input = true;
    }
    if let Some(n) = field("output_tokens") {
        usage.output = n;
        reported.output = true;
    }
    if let Some(n) = field("cache_read_input_tokens") {
        usage.cache_read = n;
    }
    if let Some(n) = field("cache_creation_input_tokens") {
        usage.cache_write = n;
    }
    reported
}

fn finish(
    request: &Request,
    text: String,
    tool_input: Option<Json>,
    usage: Usage,
    stop_reason: Option<String>,
) -> Reply {
    let json = tool_input.map(|input| {
        let (_, wrapped) = tool_schema(request.schema.as_ref());
        if wrapped {
            input.get("value").cloned().unwrap_or(Json::Null)
        } else {
            input
        }
    });
    let text = json.as_ref().map_or(text, Json::to_string);
    Reply {
        text,
        json,
        usage,
        reported: Reported::default(),
        stop_reason,
    }
}

struct Stream {
    request: Request,
    text: String,
    tool_json: String,
    usage: Usage,
    reported: Reported,
    stop_reason: Option<String>,
}

impl StreamParser for Stream {
    fn event(&mut self, event: &SseEvent) -> Result<bool, StreamFault> {
        if event.name == "ping" || event.data.trim().is_empty() {
            return Ok(false);
        }
        let data: Json = serde_json::from_str(&event.data).map_err(|e| {
            StreamFault::Malformed(format!("a `{}` event is not valid JSON: {e}", event.name))
        })?;
        let kind = data
            .get("type")
            .and_then(Json::as_str)
            .unwrap_or(event.name.as_str());
        match kind {
            "message_start" => {
                if let Some(u) = data.pointer("/message/usage") {
                    // Its `output_tokens` is a placeholder (1): only the input counts here.
                    let reported = read_usage(u, &mut self.usage);
                    self.reported.input |= reported.input;
                }
            }
            "content_block_delta" => match data.pointer("/delta/type").and_then(Json::as_str) {
                Some("text_delta") => self.text.push_str(
                    data.pointer("/delta/text")
                        .and_then(Json::as_str)
                        .unwrap_or_default(),
                ),
                Some("input_json_delta") => self.tool_json.push_str(
                    data.pointer("/delta/partial_json")
                        .and_then(Json::as_str)
                        .unwrap_or_default(),
                ),
                _ => {}
            },
            "message_delta" => {
                if let Some(u) = data.get("usage") {
                    let reported = read_usage(u, &mut self.usage);
                    self.reported.input |= reported.input;
                    self.reported.output |= reported.output;
                }
                if let Some(reason) = data.pointer("/delta/stop_reason").and_then(Json::as_str) {
                    self.stop_reason = Some(reason.to_string());
                }
            }
            "message_stop" => return Ok(true),
            "error" => return Err(StreamFault::Error(ApiError::from_event(&data))),
            // Unknown event types are ignored, as Anthropic's versioning policy asks.
            _ => {}
        }
        Ok(false)
    }

    fn received(&self) -> usize {
        self.text.len() + self.tool_json.len()
    }

    fn reply(&mut self) -> Reply {
        let mut tool_input = None;
        if !self.tool_json.is_empty() {
            match serde_json::from_str(&self.tool_json) {
                Ok(input) => tool_input = Some(input),
                // Left as text, so the JSON check reports it and asks again.
                Err(_) => self.text = std::mem::take(&mut self.tool_json),
            }
        }
        let mut reply = finish(
            &self.request,
            std::mem::take(&mut self.text),
            tool_input,
            self.usage,
            self.stop_reason.take(),
        );
        reply.reported = self.reported;
        reply
    }
}
