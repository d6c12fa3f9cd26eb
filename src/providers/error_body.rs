//! What a server's error body says, whatever shape it comes in: the three
//! providers' own envelopes, and what proxies, gateways and local servers send
//! instead (a `message` that is an object, an `error` that is a string, a string
//! that holds JSON or a Python dict, a `detail` list, an HTML page). The one place
//! server error text is read, so the one place it can be cleaned: every byte is
//! untrusted, so the reading is bounded in depth and length and control characters
//! never reach a terminal.

use serde_json::Value as Json;

use crate::keys::redact;

/// The most a message keeps, in characters.
const MAX_MESSAGE: usize = 500;
/// How deep the reading follows nested errors and strings holding JSON.
const MAX_DEPTH: usize = 6;

/// What an error body says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Said {
    /// The provider's error type or code, when it is a word worth showing: never
    /// `None`, a number, the status again, or a JSON dump.
    pub kind: Option<String>,
    /// The message, on one line, at most 500 characters; never empty.
    pub message: String,
}

/// Reads an error body of an HTTP `status`.
pub fn read(status: u16, body: &str) -> Said {
    let text = body.trim();
    if text.is_empty() {
        return Said {
            kind: None,
            message: format!("HTTP {status} with an empty body"),
        };
    }
    if let Ok(json) = serde_json::from_str::<Json>(text) {
        return read_json(Some(status), &json);
    }
    if looks_like_html(text) {
        let title = between(text, "<title>", "</title>").map(clean);
        return Said {
            kind: None,
            message: match title {
                Some(t) if !t.is_empty() => format!("HTTP {status}: an HTML page, \"{t}\""),
                _ => format!("HTTP {status}: an HTML page, not an API reply"),
            },
        };
    }
    let (kind, message) = dig_text(text, 0);
    finish(Some(status), kind, message)
}

/// Reads an error already parsed as JSON (an error event in a stream, say).
pub fn read_json(status: Option<u16>, json: &Json) -> Said {
    let (kind, message) = dig(json, 0);
    finish(status, kind, message)
}

fn finish(status: Option<u16>, kind: Option<String>, message: Option<String>) -> Said {
    let kind = kind.filter(|k| worth_showing(k, status));
    let message = message
        .map(|m| clean(&m))
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| match status {
            Some(status) => format!("HTTP {status}, and the body gives no message"),
            None => "an error, and it gives no message".to_string(),
        });
    Said { kind, message }
}

/// The error's kind and message in a JSON value: the innermost message found, and
/// the kind at its level or the nearest one above it.
fn dig(value: &Json, depth: usize) -> (Option<String>, Option<String>) {
    if depth > MAX_DEPTH {
        return (None, None);
    }
    match value {
        Json::String(s) => dig_text(s, depth + 1),
        Json::Array(items) => items
            .iter()
            .take(4)
            .map(|item| dig(item, depth + 1))
            .find(|(_, m)| m.is_some())
            .unwrap_or((None, None)),
        Json::Object(map) => {
            let kind = ["code", "type", "status", "error_type", "name"]
                .iter()
                .filter_map(|f| map.get(*f).and_then(word))
                .find(|w| worth_showing(w, None));
            // OpenRouter passes the upstream provider's own error in `metadata.raw`.
            if let Some(raw) = map.get("metadata").and_then(|m| m.get("raw"))
                && let (inner_kind, Some(message)) = dig(raw, depth + 1)
            {
                return (inner_kind.or(kind), Some(message));
            }
            // A nested error object first (it is the more specific), then the
            // message fields; `error` as a plain string is often only a status
            // phrase ("Bad Request") beside a real `message`.
            let nested = map.get("error").filter(|e| e.is_object() || e.is_array());
            let fields = [
                "message",
                "detail",
                "errors",
                "msg",
                "error_description",
                "error",
                "title",
            ];
            let found = nested
                .into_iter()
                .chain(fields.iter().filter_map(|f| map.get(*f)))
                .map(|inner| dig(inner, depth + 1))
                .find(|(_, m)| m.is_some());
            match found {
                Some((inner_kind, message)) => (inner_kind.or(kind), message),
                None => (kind, None),
            }
        }
        Json::Number(_) | Json::Bool(_) | Json::Null => (None, None),
    }
}

/// A message string, which may itself hold the real error: JSON, a Python dict
/// (`{'error': '...'}`, as `LiteLLM`'s proxy writes), or either after a prefix
/// (`AnthropicException - b'{"type":"error",...}'`).
fn dig_text(text: &str, depth: usize) -> (Option<String>, Option<String>) {
    let trimmed = text.trim();
    if depth <= MAX_DEPTH
        && let Some(start) = trimmed.find('{')
    {
        // The last `}` after the first `{` (a body like `} … {` has none).
        if let Some(end) = trimmed[start..].rfind('}').map(|end| start + end) {
            let inner = &trimmed[start..=end];
            if let Ok(json) = serde_json::from_str::<Json>(inner)
                && let (kind, Some(message)) = dig(&json, depth + 1)
            {
                return (kind, Some(message));
            }
            if let Some(message) = python_dict_message(inner) {
                return (None, Some(message));
            }
        }
    }
    (None, Some(trimmed.to_string()))
}

/// The `'error'` or `'message'` value of a Python dict's repr: `{'error': 'x'}`.
fn python_dict_message(text: &str) -> Option<String> {
    for key in ["'message': ", "'error': ", "'detail': "] {
        let Some(at) = text.find(key) else { continue };
        let rest = &text[at + key.len()..];
        let quote = rest.chars().next().filter(|c| *c == '\'' || *c == '"')?;
        let body = &rest[1..];
        let end = body.find(quote).unwrap_or(body.len());
        let value = &body[..end];
        if !value.trim().is_empty() {
            return Some(value.to_string());
        }
    }
    None
}

/// A scalar as a word: a string as is, a number as digits.
fn word(value: &Json) -> Option<String> {
    match value {
        Json::String(s) => Some(s.trim().to_string()),
        Json::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Whether an error type adds something to the status and the message: one word
/// of letters, digits, `_`, `-` or `.`, starting with a letter, and not a
/// placeholder (`None`, `null`, `error`) or the status again.
fn worth_showing(kind: &str, status: Option<u16>) -> bool {
    const EMPTY: [&str; 7] = [
        "none",
        "null",
        "nil",
        "undefined",
        "unknown",
        "error",
        "nan",
    ];
    let lower = kind.to_ascii_lowercase();
    kind.len() <= 64
        && kind.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && kind
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        && !EMPTY.contains(&lower.as_str())
        && !status.is_some_and(|s| lower == format!("http_{s}") || lower == format!("http{s}"))
}

/// One line, no control characters (a server's text must not drive the terminal),
/// at most [`MAX_MESSAGE`] characters. The run's keys are taken out first: a cut
/// through a key would leave a piece of it (its first characters, say) that the
/// redaction of the whole message no longer recognises.
fn clean(text: &str) -> String {
    let text = redact::text(text);
    let mut out = String::with_capacity(text.len().min(MAX_MESSAGE + 3));
    let mut space = false;
    for c in text.trim().chars() {
        if c.is_whitespace() || c.is_control() {
            space = !out.is_empty();
            continue;
        }
        if out.chars().count() >= MAX_MESSAGE {
            out.push('…');
            break;
        }
        if space {
            out.push(' ');
            space = false;
        }
        out.push(c);
    }
    out
}

fn looks_like_html(text: &str) -> bool {
    let head: String = text
        .chars()
        .take(64)
        .collect::<String>()
        .to_ascii_lowercase();
    head.starts_with("<!doctype html") || head.starts_with("<html") || head.contains("<head")
}

fn between<'a>(text: &'a str, open: &str, close: &str) -> Option<&'a str> {
    let lower = text.to_ascii_lowercase();
    let start = lower.find(open)? + open.len();
    let end = start + lower[start..].find(close)?;
    text.get(start..end)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn said(status: u16, body: &str) -> (Option<String>, String) {
        let s = read(status, body);
        (s.kind, s.message)
    }

    #[test]
    fn the_providers_own_envelopes() {
        assert_eq!(
            said(
                404,
                r#"{"type":"error","error":{"type":"not_found_error","message":"model: claude-3-5-sonnet-latest"},"request_id":"req_1"}"#
            ),
            (
                Some("not_found_error".into()),
                "model: claude-3-5-sonnet-latest".into()
            )
        );
        assert_eq!(
            said(
                404,
                r#"{"error":{"message":"The model `gpt-9` does not exist or you do not have access to it.","type":"invalid_request_error","param":null,"code":"model_not_found"}}"#
            ),
            (
                Some("model_not_found".into()),
                "The model `gpt-9` does not exist or you do not have access to it.".into()
            )
        );
        assert_eq!(
            said(
                429,
                r#"{"error":{"code":429,"message":"Quota exceeded.","status":"RESOURCE_EXHAUSTED"}}"#
            ),
            (Some("RESOURCE_EXHAUSTED".into()), "Quota exceeded.".into())
        );
    }

    /// Issue 14 item 4: `srv 400 400: …`, `srv 400 None: …`, `srv 401 None: {…}`.
    #[test]
    fn placeholders_numbers_and_dumps_are_not_kinds() {
        let litellm = r#"{"error":{"message":"{'error': '/chat/completions: Invalid model name passed in model=gpt-9. Call `/v1/models` to view available models for your key.'}","type":"None","param":"None","code":"400"}}"#;
        assert_eq!(
            said(400, litellm),
            (None, "/chat/completions: Invalid model name passed in model=gpt-9. Call `/v1/models` to view available models for your key.".into())
        );
        let object_message = r#"{"error":{"message":{"error":"/chat/completions: Invalid model name passed in model=x."},"type":"None","param":"None","code":"400"}}"#;
        assert_eq!(
            said(400, object_message),
            (
                None,
                "/chat/completions: Invalid model name passed in model=x.".into()
            )
        );
        let auth = r#"{"error":{"message":"{\"error\": {\"message\": \"Authentication Error, Invalid proxy server token passed.\", \"type\": \"auth_error\"}}","type":"None","param":"None","code":401}}"#;
        assert_eq!(
            said(401, auth),
            (
                Some("auth_error".into()),
                "Authentication Error, Invalid proxy server token passed.".into()
            )
        );
        assert_eq!(said(500, r#"{"error": 17}"#).0, None);
        assert_eq!(
            said(400, r#"{"detail": {"nested": {"deeper": 1}}}"#).1,
            "HTTP 400, and the body gives no message"
        );
    }

    #[test]
    fn upstream_errors_inside_gateway_messages() {
        let litellm = r#"{"error":{"message":"litellm.BadRequestError: AnthropicException - b'{\"type\":\"error\",\"error\":{\"type\":\"invalid_request_error\",\"message\":\"`temperature` and `top_p` cannot both be specified for this model. Please use only one.\"}}'. Received Model Group=claude-sonnet-4-5\nAvailable Model Group Fallbacks=None","type":null,"param":null,"code":"400"}}"#;
        assert_eq!(
            said(400, litellm),
            (Some("invalid_request_error".into()), "`temperature` and `top_p` cannot both be specified for this model. Please use only one.".into())
        );
        let openrouter = r#"{"error":{"message":"Provider returned error","code":400,"metadata":{"raw":"{\"error\":{\"message\":\"max_tokens is too large\",\"type\":\"invalid_request_error\"}}","provider_name":"OpenAI"}}}"#;
        assert_eq!(
            said(400, openrouter),
            (
                Some("invalid_request_error".into()),
                "max_tokens is too large".into()
            )
        );
        let ollama = r#"{"error":"model \"llama9\" not found, try pulling it first"}"#;
        assert_eq!(
            said(
                404,
                r#"{"statusCode":404,"error":"Not Found","message":"model x is not available"}"#
            )
            .1,
            "model x is not available"
        );
        assert_eq!(
            said(404, ollama).1,
            "model \"llama9\" not found, try pulling it first"
        );
        let fastapi = r#"{"detail":[{"loc":["body","model"],"msg":"field required","type":"value_error.missing"}]}"#;
        assert_eq!(
            said(422, fastapi),
            (Some("value_error.missing".into()), "field required".into())
        );
    }

    /// A closing brace before the first opening one: no JSON to dig, no panic
    /// (found by the property test).
    #[test]
    fn braces_in_the_wrong_order() {
        for body in ["} then {", "\u{a836}ゆTȺ\\}Nv{Ѩ", "}{", "x}y{z}"] {
            let (_, message) = said(400, body);
            assert!(!message.is_empty(), "{body}");
        }
        assert_eq!(said(400, "} then {").1, "} then {");
    }

    #[test]
    fn untrusted_text_is_bounded_and_inert() {
        let (_, m) = said(
            502,
            "<html><head><title>502 Bad\nGateway</title></head><body>…</body></html>",
        );
        assert_eq!(m, "HTTP 502: an HTML page, \"502 Bad Gateway\"");
        let (_, m) = said(500, "boom\u{1b}[2J\u{7}  now\r\nplease");
        assert_eq!(m, "boom [2J now please");
        let (_, m) = said(500, &"x".repeat(10_000));
        assert_eq!(m.chars().count(), MAX_MESSAGE + 1);
        // Strings that hold strings that hold JSON, deeper than the bound (each
        // level doubles the escapes, so a body can only hold a few).
        let mut deep = r#"{"error":{"message":"bottom"}}"#.to_string();
        for _ in 0..10 {
            deep = serde_json::json!({ "error": { "message": deep } }).to_string();
        }
        let (_, m) = said(400, &deep);
        assert!(!m.is_empty() && m.chars().count() <= MAX_MESSAGE + 1);
        // Nested past serde_json's own limit: read as text, never a stack overflow.
        let nested = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        let (_, m) = said(400, &nested);
        assert!(m.chars().count() <= MAX_MESSAGE + 1);
        assert_eq!(said(400, "  ").1, "HTTP 400 with an empty body");
    }

    #[test]
    fn kinds_worth_showing() {
        for good in [
            "rate_limit_error",
            "model_not_found",
            "RESOURCE_EXHAUSTED",
            "NotFoundError",
        ] {
            assert!(worth_showing(good, Some(400)), "{good}");
        }
        for bad in [
            "None",
            "null",
            "400",
            "error",
            "",
            "two words",
            "{\"a\":1}",
            "http_400",
        ] {
            assert!(!worth_showing(bad, Some(400)), "{bad}");
        }
    }
}
