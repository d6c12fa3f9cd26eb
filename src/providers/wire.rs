//! What every model API implements: how to shape a request, where to send it, how
//! to read a reply (whole or streamed), and how to read its errors. One module
//! per API implements it; the call loop in `call.rs` does the rest.

use serde_json::Value as Json;

use super::http::{Auth, SseEvent};
use super::{Reply, Reported, Request};
use crate::catalog::Sampling;
use crate::usage::Usage;

/// A provider's own account of an error: its type and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The provider's error type or code (`rate_limit_error`, `insufficient_quota`, …),
    /// when it is a word worth showing (see `error_body`).
    pub kind: Option<String>,
    pub message: String,
    /// Overrides the status-based retry rule: `Some(false)` for a 429 that needs the user.
    pub retryable: Option<bool>,
}

/// A streamed reply being put together.
pub trait StreamParser: Send {
    /// Takes one event. `Ok(true)` when it was the final one.
    fn event(&mut self, event: &SseEvent) -> Result<bool, StreamFault>;
    /// Characters of reply received so far, for the live view.
    fn received(&self) -> usize;
    /// When the connection closes without a final event: whether the reply is whole
    /// anyway (Gemini's streams have no end marker).
    fn whole_at_close(&self) -> bool {
        false
    }
    /// The reply so far: once the final event arrived, or, when the stream broke
    /// off, what arrived before (its usage counts whatever the stream reported).
    fn reply(&mut self) -> Reply;
}

/// A stream that said something wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamFault {
    /// An event we could not read.
    Malformed(String),
    /// The provider sent an error event.
    Error(ApiError),
}

/// A model API.
pub trait Wire: Send + Sync {
    /// Where the key goes.
    fn auth(&self) -> Auth;
    /// The URL for a call (never carrying the key).
    fn url(&self, base_url: &str, model: &str, stream: bool) -> String;
    /// Headers besides the key and content type.
    fn headers(&self, _request: &Request) -> Vec<(&'static str, String)> {
        Vec::new()
    }
    /// The request body.
    fn body(&self, request: &Request, stream: bool) -> Json;
    /// Whether its streams say when a server-side tool starts (Anthropic's
    /// `server_tool_use` blocks); when not, a call with tools is taken to be using
    /// them from the start, as search models search before they answer.
    fn announces_tools(&self) -> bool {
        false
    }
    /// Reads a whole (non-streamed) successful reply.
    fn parse(&self, request: &Request, body: &str) -> Result<Reply, String>;
    /// A parser for a streamed reply.
    fn stream(&self, request: &Request) -> Box<dyn StreamParser>;
    /// Reads an error body.
    fn error(&self, status: u16, body: &str) -> ApiError;
    /// The key of a whole reply's top-level object that holds its usage.
    fn usage_key(&self) -> &'static str;
    /// Reads a usage object: its counts, and which of them it holds.
    fn usage(&self, value: &Json) -> (Usage, Reported);
}

/// The usage a whole reply reports, even when the reply as a whole does not parse
/// (cut short, or broken after its usage): a billed reply's usage is used if it can
/// be read. Only `wire`'s usage key in the top-level object counts, so a `usage`
/// inside the model's own text or JSON never does.
pub fn salvage_usage(wire: &dyn Wire, body: &str) -> (Usage, Reported) {
    top_level_value(body, wire.usage_key())
        .map_or((Usage::default(), Reported::default()), |value| {
            wire.usage(&value)
        })
}

/// The value of `key` in the top-level object of a JSON text that may be cut short
/// or broken after that value. It scans once, keeping only the nesting depth and
/// whether it is inside a string, so deep or hostile input costs linear time.
pub fn top_level_value(text: &str, key: &str) -> Option<Json> {
    let bytes = text.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'{' | b'[' => depth += 1,
            b'}' | b']' => depth = depth.saturating_sub(1),
            b'"' => {
                let start = i + 1;
                let end = string_end(bytes, start)?;
                i = end + 1;
                if depth == 1 && &text[start..end] == key {
                    let rest = text[i..].trim_start();
                    if let Some(value) = rest.strip_prefix(':') {
                        let mut values =
                            serde_json::Deserializer::from_str(value).into_iter::<Json>();
                        if let Some(Ok(found)) = values.next() {
                            return Some(found);
                        }
                    }
                }
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// Where the JSON string starting at `start` (just after its `"`) ends: the index
/// of its closing quote, or `None` when the text ends first.
fn string_end(bytes: &[u8], start: usize) -> Option<usize> {
    let mut i = start;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => return Some(i),
            _ => i += 1,
        }
    }
    None
}

/// Joins a base URL and a path without doubling or dropping the `/`.
pub fn join(base: &str, path: &str) -> String {
    format!(
        "{}/{}",
        base.trim_end_matches('/'),
        path.trim_start_matches('/')
    )
}

/// The `temperature` and `top_p` to send: what the request sets, less what the
/// model does not take (`rule`, from `catalog::sampling`). What is left out is
/// said at `-v`, so a run that ignores a setting never does so silently.
pub fn sampling(request: &Request, rule: Sampling) -> (Option<f64>, Option<f64>) {
    let (temperature, top_p) = (request.temperature, request.top_p);
    let (kept, dropped, why) = match rule {
        Sampling::OneOf if temperature.is_some() && top_p.is_some() => (
            (temperature, None),
            "`top_p`",
            "it takes `temperature` or `top_p`, not both",
        ),
        Sampling::Both | Sampling::OneOf => return (temperature, top_p),
        Sampling::Neither => (
            (None, None),
            match (temperature, top_p) {
                (None, None) => return (None, None),
                (Some(_), None) => "`temperature`",
                (None, Some(_)) => "`top_p`",
                (Some(_), Some(_)) => "`temperature` and `top_p`",
            },
            "it takes no sampling parameters",
        ),
    };
    tracing::info!(
        "{}/{}: left out {dropped}: {why}",
        request.provider,
        request.model
    );
    kept
}

impl ApiError {
    /// What an error body says (`error_body::read`), with the status-based retry rule.
    pub fn read(status: u16, body: &str) -> Self {
        let said = super::error_body::read(status, body);
        ApiError {
            kind: said.kind,
            message: said.message,
            retryable: None,
        }
    }

    /// What an error event in a stream says (`error_body::read_json`).
    pub fn from_event(event: &Json) -> Self {
        let said = super::error_body::read_json(None, event);
        ApiError {
            kind: said.kind,
            message: said.message,
            retryable: None,
        }
    }
}

/// The error a successful status carries instead of a reply (some gateways answer
/// 200 with `{"error": …}`), as "the reply is an error: …"; `None` for a reply.
pub fn error_in_reply(reply: &Json) -> Option<String> {
    let error = reply.get("error").filter(|e| !e.is_null())?;
    let said = super::error_body::read_json(None, error);
    Some(match said.kind {
        Some(kind) => format!("the reply is an error: {kind}: {}", said.message),
        None => format!("the reply is an error: {}", said.message),
    })
}

/// The JSON reply for `output: json`: parsed from the text, or an error saying why not.
pub fn parse_json_text(text: &str) -> Result<Json, String> {
    let trimmed = text.trim();
    // Models sometimes fence JSON in Markdown despite being told not to.
    let unfenced = trimmed
        .strip_prefix("```json")
        .or_else(|| trimmed.strip_prefix("```"))
        .and_then(|t| t.strip_suffix("```"))
        .map_or(trimmed, str::trim);
    serde_json::from_str(unfenced).map_err(|e| format!("the reply is not valid JSON: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::{anthropic::Anthropic, gemini::Gemini, openai::OpenAi};

    /// Issue 13, item 8: a billed reply that does not parse still says what it used.
    #[test]
    fn usage_is_salvaged_from_a_broken_body_only_at_the_top_level() {
        let openai = OpenAi { first_party: true };
        let broken = r#"{"usage": {"prompt_tokens": 12, "completion_tokens": 30}, "choices": [{"message": {"content": "cut he"#;
        let (usage, reported) = salvage_usage(&openai, broken);
        assert_eq!((usage.input, usage.output), (12, 30));
        assert!(reported.all());
        // A `usage` the model wrote, inside its text or its JSON, never counts.
        let inside = r#"{"choices": [{"message": {"content": "{\"usage\": {\"prompt_tokens\": 1}}", "x": {"usage": {"prompt_tokens": 2}}}}], "id": "\"usage\": 3"#;
        assert_eq!(salvage_usage(&openai, inside).1, Reported::default());
        // Cut inside the usage itself: nothing readable.
        let cut = r#"{"id": "x", "usage": {"input_tokens": 5, "output_"#;
        assert_eq!(salvage_usage(&Anthropic, cut).1, Reported::default());
        let gemini = r#"{"usageMetadata": {"promptTokenCount": 7}, "candidates": ["#;
        let (usage, reported) = salvage_usage(&Gemini, gemini);
        assert_eq!(usage.input, 7);
        assert_eq!(
            reported,
            Reported {
                input: true,
                output: false
            }
        );
        assert_eq!(top_level_value("", "usage"), None);
        assert_eq!(top_level_value(&"[".repeat(100_000), "usage"), None);
    }

    /// Issue 14, item 2: which counts each API reported, so none is taken as zero.
    #[test]
    fn replies_say_which_counts_they_reported() {
        let request = crate::providers::Request::default();
        let openai = OpenAi { first_party: false };
        let reply = openai
            .parse(&request, r#"{"choices": [{"message": {"content": "hi"}}]}"#)
            .unwrap();
        assert_eq!(reply.reported, Reported::default());
        let reply = Anthropic
            .parse(
                &request,
                r#"{"content": [{"type": "text", "text": "hi"}], "usage": {"input_tokens": 3, "output_tokens": 1}}"#,
            )
            .unwrap();
        assert!(reply.reported.all());
        // An Anthropic stream whose `message_delta` has no usage: the input only.
        let mut stream = Anthropic.stream(&request);
        for (name, data) in [
            (
                "message_start",
                r#"{"type": "message_start", "message": {"usage": {"input_tokens": 9, "output_tokens": 1}}}"#,
            ),
            (
                "message_delta",
                r#"{"type": "message_delta", "delta": {"stop_reason": "end_turn"}}"#,
            ),
        ] {
            let event = SseEvent {
                name: name.into(),
                data: data.into(),
            };
            stream.event(&event).unwrap();
        }
        let reply = stream.reply();
        assert_eq!(
            reply.reported,
            Reported {
                input: true,
                output: false
            }
        );
        assert_eq!(reply.usage.input, 9);
    }

    /// Some gateways answer 200 with an error body: it is read as the error it is.
    #[test]
    fn an_error_in_a_successful_reply() {
        let reply: Json = serde_json::from_str(
            r#"{"error": {"message": "upstream timed out", "type": "None", "code": 504}}"#,
        )
        .unwrap();
        assert_eq!(
            error_in_reply(&reply).as_deref(),
            Some("the reply is an error: upstream timed out")
        );
        let ok: Json = serde_json::from_str(r#"{"choices": [], "error": null}"#).unwrap();
        assert_eq!(error_in_reply(&ok), None);
    }
}
