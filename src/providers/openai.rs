//! OpenAI's Chat Completions API (`POST /v1/chat/completions`, `Authorization:
//! Bearer`), also spoken by OpenRouter, Groq, Mistral, DeepSeek, Together, xAI,
//! Ollama and any `type: openai-compatible` endpoint. Streams are `data:` chunks
//! ending with `data: [DONE]`; usage comes in a last chunk (`include_usage`).
//!
//! `web_search` is `web_search_options` on `OpenAI`'s search models, which search
//! once per request and cite with `url_citation` annotations; they take no
//! sampling parameters. A prompt-cache plan sends a `prompt_cache_key` (`OpenAI`
//! itself only), so requests sharing a prefix reach the same cache; cached
//! prompt tokens come back in `prompt_tokens_details.cached_tokens`.

use std::borrow::Cow;
use std::fmt::Write as _;

use serde::Deserialize;
use serde_json::{Value as Json, json};

use sha2::{Digest, Sha256};

use super::http::{Auth, SseEvent};
use super::wire::{self, ApiError, StreamFault, StreamParser, Wire, join};
use super::{Reply, Reported, Request};
use crate::catalog::{self, ProviderKind};
use crate::keys::redact;
use crate::tools::{Citation, ToolName, add_citation};
use crate::usage::Usage;
use crate::workflow::model::OutputKind;

/// Chat Completions, from OpenAI itself or from a compatible endpoint.
pub struct OpenAi {
    /// OpenAI's own API: `max_completion_tokens`, and no sampling parameters for reasoning models.
    pub first_party: bool,
}

impl Wire for OpenAi {
    fn auth(&self) -> Auth {
        Auth::Bearer
    }

    fn url(&self, base_url: &str, _model: &str, _stream: bool) -> String {
        join(base_url, "/chat/completions")
    }

    fn body(&self, request: &Request, stream: bool) -> Json {
        let mut messages = Vec::new();
        if let Some(system) = &request.system {
            messages.push(json!({"role": "system", "content": system}));
        }
        messages.push(json!({"role": "user", "content": request.prompt}));
        if let Some((previous, correction)) = &request.correction {
            messages.push(json!({"role": "assistant", "content": previous}));
            messages.push(json!({"role": "user", "content": correction}));
        }
        let mut body = json!({"model": request.model, "messages": messages});
        let map = body.as_object_mut().expect("a JSON object");
        let searching = !request.tools.is_empty();
        if let Some(max) = request.max_tokens {
            let field = if self.first_party {
                "max_completion_tokens"
            } else {
                "max_tokens"
            };
            map.insert(field.into(), json!(max));
        }
        // A compatible server's models are its own: it gets what the workflow sets.
        let kind = if self.first_party {
            ProviderKind::Openai
        } else {
            ProviderKind::OpenaiCompatible
        };
        let (temperature, top_p) = wire::sampling(request, catalog::sampling(kind, &request.model));
        if let Some(t) = temperature {
            map.insert("temperature".into(), json!(t));
        }
        if let Some(p) = top_p {
            map.insert("top_p".into(), json!(p));
        }
        if !request.stop.is_empty() {
            map.insert("stop".into(), json!(request.stop));
        }
        if request.output == OutputKind::Json {
            let format = match &request.schema {
                Some(schema) => {
                    json!({"type": "json_schema", "json_schema": {"name": "output", "schema": schema, "strict": false}})
                }
                None => json!({"type": "json_object"}),
            };
            map.insert("response_format".into(), format);
        }
        if searching {
            map.insert("web_search_options".into(), web_search_options(request));
        }
        if self.first_party
            && let Some(key) = prompt_cache_key(request)
        {
            map.insert("prompt_cache_key".into(), json!(key));
        }
        if stream {
            map.insert("stream".into(), json!(true));
            map.insert("stream_options".into(), json!({"include_usage": true}));
        }
        body
    }

    fn parse(&self, request: &Request, body: &str) -> Result<Reply, String> {
        let reply: Json =
            serde_json::from_str(body).map_err(|e| format!("the reply is not valid JSON: {e}"))?;
        if let Some(error) = wire::error_in_reply(&reply) {
            return Err(error);
        }
        let choice = reply
            .pointer("/choices/0")
            .ok_or("the reply has no `choices`")?;
        let message = choice
            .get("message")
            .ok_or("the reply's choice has no `message`")?;
        let text = match (
            message.get("content").and_then(Json::as_str),
            message.get("refusal").and_then(Json::as_str),
        ) {
            (Some(text), _) => text.to_string(),
            (None, Some(refusal)) => return Err(format!("the model refused: {refusal}")),
            (None, None) => String::new(),
        };
        let (mut usage, reported) = read_usage(reply.get("usage"));
        usage.web_search = searches(request);
        let stop_reason = choice
            .get("finish_reason")
            .and_then(Json::as_str)
            .map(stop_reason);
        let mut citations = Vec::new();
        annotations(message.get("annotations"), &text, &mut citations);
        Ok(Reply {
            text,
            json: None,
            usage,
            reported,
            stop_reason,
            citations,
        })
    }

    fn stream(&self, request: &Request) -> Box<dyn StreamParser> {
        Box::new(Stream {
            text: String::new(),
            usage: Usage::default(),
            reported: Reported::default(),
            stop_reason: None,
            annotations: Vec::new(),
            searches: searches(request),
        })
    }

    fn error(&self, status: u16, body: &str) -> ApiError {
        let json: Json = serde_json::from_str(body).unwrap_or_default();
        let field = |name: &str| {
            json.pointer(&format!("/error/{name}"))
                .and_then(Json::as_str)
        };
        // Out of credit: waiting will not help.
        let quota = field("code") == Some("insufficient_quota")
            || field("type") == Some("insufficient_quota");
        ApiError {
            retryable: quota.then_some(false),
            ..ApiError::read(status, body)
        }
    }

    fn usage_key(&self) -> &'static str {
        "usage"
    }

    fn usage(&self, value: &Json) -> (Usage, Reported) {
        read_usage(Some(value))
    }
}

/// `web_search_options`: `{}`, or the searcher's location.
fn web_search_options(request: &Request) -> Json {
    let location = request
        .tools
        .iter()
        .find(|t| t.name == ToolName::WebSearch)
        .and_then(|t| t.user_location.as_ref());
    match location {
        Some(location) => json!({"user_location": {
            "type": "approximate",
            "approximate": serde_json::to_value(location).unwrap_or_else(|_| json!({})),
        }}),
        None => json!({}),
    }
}

/// The searches a reply to `request` made: a search model searches once per request.
fn searches(request: &Request) -> u64 {
    u64::from(request.tools.iter().any(|t| t.name == ToolName::WebSearch))
}

/// A key shared by the requests whose cacheable prefix is the same, so `OpenAI`
/// routes them to the same cache: a hash of the model and that prefix.
fn prompt_cache_key(request: &Request) -> Option<String> {
    let plan = request.cache.filter(crate::prompt_cache::Plan::marks)?;
    let system = request.system.as_deref().unwrap_or_default();
    let system_head = plan
        .system
        .map_or(system, |n| system.get(..n).unwrap_or(system));
    let prompt_head = plan
        .prompt
        .and_then(|n| request.prompt.get(..n))
        .unwrap_or_default();
    let mut hasher = Sha256::new();
    for part in [request.model.as_str(), system_head, prompt_head] {
        hasher.update(part.as_bytes());
        hasher.update([0]);
    }
    let digest = hasher.finalize();
    let hex = digest.iter().take(8).fold(String::new(), |mut hex, b| {
        let _ = write!(hex, "{b:02x}");
        hex
    });
    Some(format!("byok-flow-{hex}"))
}

/// Takes the `url_citation` annotations of a reply's `text` into `citations`;
/// the quoted text is the span of the reply each one annotates.
fn annotations(value: Option<&Json>, text: &str, citations: &mut Vec<Citation>) {
    for annotation in value.and_then(Json::as_array).into_iter().flatten() {
        let Some(cite) = annotation.get("url_citation") else {
            continue;
        };
        let field = |name: &str| cite.get(name).and_then(Json::as_str).unwrap_or_default();
        let index = |name: &str| {
            cite.get(name)
                .and_then(Json::as_u64)
                .and_then(|i| usize::try_from(i).ok())
        };
        // The span is cut out of the reply, which may quote a key: it is
        // redacted as it reads in the whole reply, so a cut through a key shows
        // the marker, not a piece of it.
        let byte = |chars: usize| {
            text.char_indices()
                .nth(chars)
                .map_or(text.len(), |(at, _)| at)
        };
        let quoted = match (index("start_index"), index("end_index")) {
            (Some(start), Some(end)) if start < end => redact::part(text, byte(start)..byte(end)),
            _ => String::new(),
        };
        add_citation(
            citations,
            Citation {
                url: field("url").to_string(),
                title: field("title").to_string(),
                quoted,
            },
        );
    }
}

/// `length` means the reply was cut at `max_tokens`; call it that, as the other APIs do.
fn stop_reason(finish: &str) -> String {
    if finish == "length" {
        "max_tokens".to_string()
    } else {
        finish.to_string()
    }
}

/// Usage with cached prompt tokens taken out of `input`, so every kind is priced
/// once; and which counts the server reported (`prompt_tokens`, `completion_tokens`).
fn read_usage(value: Option<&Json>) -> (Usage, Reported) {
    let Some(u) = value.filter(|u| !u.is_null()) else {
        return (Usage::default(), Reported::default());
    };
    let get = |path: &[&str]| {
        path.iter()
            .try_fold(u, |v, name| v.get(name))
            .and_then(Json::as_u64)
    };
    let n = |path: &[&str]| get(path).unwrap_or(0);
    let prompt = n(&["prompt_tokens"]);
    // DeepSeek reports cache hits its own way.
    let cached =
        n(&["prompt_tokens_details", "cached_tokens"]).max(n(&["prompt_cache_hit_tokens"]));
    let written = n(&["prompt_tokens_details", "cache_write_tokens"]);
    let usage = Usage {
        input: prompt.saturating_sub(cached.saturating_add(written)),
        output: n(&["completion_tokens"]),
        cache_read: cached,
        cache_write: written,
        ..Usage::default()
    };
    let reported = Reported {
        input: get(&["prompt_tokens"]).is_some(),
        output: get(&["completion_tokens"]).is_some(),
    };
    (usage, reported)
}

/// What a stream chunk says, as far as it is read.
#[derive(Deserialize)]
struct Chunk<'a> {
    #[serde(default, borrow)]
    choices: Option<Vec<Choice<'a>>>,
    #[serde(default)]
    usage: Option<Json>,
    /// Whether the chunk has an `error` field (`null` included).
    #[serde(default, deserialize_with = "present")]
    error: bool,
}

#[derive(Deserialize)]
struct Choice<'a> {
    #[serde(default, borrow)]
    delta: Option<Delta<'a>>,
    #[serde(default, borrow)]
    finish_reason: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Delta<'a> {
    #[serde(default, borrow)]
    content: Option<Cow<'a, str>>,
    #[serde(default)]
    annotations: Option<Vec<Json>>,
}

fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    serde::de::IgnoredAny::deserialize(d).map(|_| true)
}

struct Stream {
    text: String,
    usage: Usage,
    reported: Reported,
    stop_reason: Option<String>,
    /// `url_citation` annotations, as the chunks bring them.
    annotations: Vec<Json>,
    /// The searches the request makes.
    searches: u64,
}

impl Stream {
    /// What one chunk brought.
    fn take(
        &mut self,
        content: Option<&str>,
        annotations: Option<&[Json]>,
        finish: Option<&str>,
        usage: Option<&Json>,
    ) {
        if let Some(content) = content {
            self.text.push_str(content);
        }
        if let Some(found) = annotations {
            self.annotations.extend(found.iter().cloned());
        }
        if let Some(finish) = finish {
            self.stop_reason = Some(stop_reason(finish));
        }
        if usage.is_some() {
            (self.usage, self.reported) = read_usage(usage);
        }
    }
}

impl StreamParser for Stream {
    fn event(&mut self, event: &SseEvent) -> Result<bool, StreamFault> {
        let data = event.data.trim();
        if data.is_empty() {
            return Ok(false);
        }
        if data == "[DONE]" {
            return Ok(true);
        }
        // Most chunks carry a token or two: read them into borrowed fields, not a
        // tree of values (that and its look-ups were a quarter of a dataset run's
        // CPU). A chunk of another shape (an error, a field of another type) is
        // read as a value, as it always was.
        if let Ok(chunk) = serde_json::from_str::<Chunk<'_>>(data)
            && !chunk.error
        {
            let choice = chunk.choices.as_deref().and_then(<[Choice]>::first);
            let delta = choice.and_then(|c| c.delta.as_ref());
            self.take(
                delta.and_then(|d| d.content.as_deref()),
                delta.and_then(|d| d.annotations.as_deref()),
                choice.and_then(|c| c.finish_reason.as_deref()),
                chunk.usage.as_ref(),
            );
            return Ok(false);
        }
        let chunk: Json = serde_json::from_str(data).map_err(|e| {
            StreamFault::Malformed(format!("a stream chunk is not valid JSON: {e}"))
        })?;
        if chunk.get("error").is_some() {
            return Err(StreamFault::Error(ApiError::from_event(&chunk)));
        }
        let choice = chunk
            .get("choices")
            .and_then(|c| c.get(0))
            .filter(|c| c.is_object());
        let delta = choice.and_then(|c| c.get("delta"));
        self.take(
            delta.and_then(|d| d.get("content")).and_then(Json::as_str),
            delta
                .and_then(|d| d.get("annotations"))
                .and_then(Json::as_array)
                .map(Vec::as_slice),
            choice
                .and_then(|c| c.get("finish_reason"))
                .and_then(Json::as_str),
            chunk.get("usage").filter(|u| !u.is_null()),
        );
        Ok(false)
    }

    fn received(&self) -> usize {
        self.text.len()
    }

    fn reply(&mut self) -> Reply {
        let text = std::mem::take(&mut self.text);
        let mut citations = Vec::new();
        annotations(
            Some(&Json::Array(std::mem::take(&mut self.annotations))),
            &text,
            &mut citations,
        );
        let mut usage = self.usage;
        usage.web_search = self.searches;
        Reply {
            text,
            json: None,
            usage,
            reported: self.reported,
            stop_reason: self.stop_reason.take(),
            citations,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn streamed(chunks: &[&str]) -> Result<Reply, StreamFault> {
        let request = Request::default();
        let mut stream = OpenAi { first_party: true }.stream(&request);
        for data in chunks {
            let event = SseEvent {
                name: String::new(),
                data: (*data).into(),
            };
            if stream.event(&event)? {
                break;
            }
        }
        Ok(stream.reply())
    }

    /// Chunks read into borrowed fields, and those of other shapes read as
    /// values, say the same.
    #[test]
    fn stream_chunks_of_every_shape_are_read() {
        let reply = streamed(&[
            r#"{"id": "c", "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": null}], "usage": null}"#,
            r#"{"choices": [{"delta": {"content": "caf\u00e9 \"a\""}}]}"#,
            // Fields of other types than a chunk's are not read, and not an error.
            r#"{"choices": [{"delta": {"content": 7}}]}"#,
            r#"{"choices": [{"delta": {"content": " b", "annotations": {}}, "finish_reason": 3}]}"#,
            r#"{"choices": null}"#,
            r#"{"choices": [], "usage": {"prompt_tokens": 12, "completion_tokens": 5, "prompt_tokens_details": {"cached_tokens": 2}}}"#,
            r#"{"choices": [{"delta": {"content": "!"}, "finish_reason": "length"}, 1]}"#,
            r#"{"choices": [{"delta": {"content": "?"}}], "choices": [{"delta": {"content": "."}}]}"#,
            "[DONE]",
            r#"{"choices": [{"delta": {"content": "after the end"}}]}"#,
        ])
        .unwrap();
        assert_eq!(reply.text, "café \"a\" b!.");
        assert_eq!(reply.stop_reason.as_deref(), Some("max_tokens"));
        assert_eq!(
            (
                reply.usage.input,
                reply.usage.output,
                reply.usage.cache_read
            ),
            (10, 5, 2)
        );
        assert!(reply.reported.all());

        // An `error` field, even `null`, is the provider's error.
        for error in [
            r#"{"error": {"message": "overloaded", "type": "server_error"}}"#,
            r#"{"choices": [], "error": null}"#,
        ] {
            assert!(
                matches!(streamed(&[error]), Err(StreamFault::Error(_))),
                "{error}"
            );
        }
        assert!(matches!(
            streamed(&[r#"{"choices": [{"delta": {"content": "cut"#]),
            Err(StreamFault::Malformed(_))
        ));
    }
}
