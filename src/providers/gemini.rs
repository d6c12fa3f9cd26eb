//! Google's Gemini API: `models/MODEL:generateContent`, streamed with
//! `:streamGenerateContent?alt=sse` (unnamed `data:` events, each a whole
//! response with cumulative usage; the stream just ends), key in `x-goog-api-key`.
//! `output: json` sets `responseMimeType` and `responseJsonSchema`.
//!
//! `web_search` is grounding with Google Search (`tools: [{googleSearch: {}}]`):
//! the reply's `groundingMetadata` names the pages it used (`groundingChunks`)
//! and which passages of the reply each supports (`groundingSupports`), which
//! become its citations; its `webSearchQueries` are the searches billed. Gemini
//! caches long prefixes on its own and reports `cachedContentTokenCount`.

use serde_json::{Value as Json, json};

use super::http::{Auth, SseEvent};
use super::wire::{self, ApiError, StreamFault, StreamParser, Wire, join};
use super::{Reply, Reported, Request};
use crate::tools::{Citation, add_citation};
use crate::usage::Usage;
use crate::workflow::model::OutputKind;

pub struct Gemini;

impl Wire for Gemini {
    fn auth(&self) -> Auth {
        Auth::Header("x-goog-api-key")
    }

    fn url(&self, base_url: &str, model: &str, stream: bool) -> String {
        let model = model.strip_prefix("models/").unwrap_or(model);
        let method = if stream {
            "streamGenerateContent?alt=sse"
        } else {
            "generateContent"
        };
        join(base_url, &format!("/models/{model}:{method}"))
    }

    fn body(&self, request: &Request, _stream: bool) -> Json {
        let mut contents = vec![json!({"role": "user", "parts": [{"text": request.prompt}]})];
        if let Some((previous, correction)) = &request.correction {
            contents.push(json!({"role": "model", "parts": [{"text": previous}]}));
            contents.push(json!({"role": "user", "parts": [{"text": correction}]}));
        }
        let mut config = serde_json::Map::new();
        if let Some(t) = request.temperature {
            config.insert("temperature".into(), json!(t));
        }
        if let Some(p) = request.top_p {
            config.insert("topP".into(), json!(p));
        }
        if let Some(max) = request.max_tokens {
            config.insert("maxOutputTokens".into(), json!(max));
        }
        if !request.stop.is_empty() {
            config.insert("stopSequences".into(), json!(request.stop));
        }
        if request.output == OutputKind::Json {
            config.insert("responseMimeType".into(), json!("application/json"));
            if let Some(schema) = &request.schema {
                config.insert("responseJsonSchema".into(), schema.clone());
            }
        }
        // The model is in the path too, but the published schema requires it in the body.
        let model = request
            .model
            .strip_prefix("models/")
            .unwrap_or(&request.model);
        let mut body = json!({"model": format!("models/{model}"), "contents": contents});
        let map = body.as_object_mut().expect("a JSON object");
        if !request.tools.is_empty() {
            map.insert("tools".into(), json!([{"googleSearch": {}}]));
        }
        if let Some(system) = &request.system {
            map.insert(
                "systemInstruction".into(),
                json!({"parts": [{"text": system}]}),
            );
        }
        if !config.is_empty() {
            map.insert("generationConfig".into(), Json::Object(config));
        }
        body
    }

    fn parse(&self, _request: &Request, body: &str) -> Result<Reply, String> {
        let reply: Json =
            serde_json::from_str(body).map_err(|e| format!("the reply is not valid JSON: {e}"))?;
        if let Some(error) = wire::error_in_reply(&reply) {
            return Err(error);
        }
        let mut acc = Accumulated::default();
        acc.add(&reply)?;
        Ok(acc.reply())
    }

    fn stream(&self, _request: &Request) -> Box<dyn StreamParser> {
        Box::new(Accumulated::default())
    }

    fn error(&self, status: u16, body: &str) -> ApiError {
        let json: Json = serde_json::from_str(body).unwrap_or_default();
        // Without `alt=sse` errors come wrapped in an array.
        let error = json.get("error").or_else(|| json.pointer("/0/error"));
        let status_name = error.and_then(|e| e.get("status")).and_then(Json::as_str);
        let details = error
            .and_then(|e| e.get("details"))
            .map(Json::to_string)
            .unwrap_or_default();
        // A per-day quota will not come back by waiting a few seconds.
        let per_day = status_name == Some("RESOURCE_EXHAUSTED") && details.contains("PerDay");
        ApiError {
            retryable: per_day.then_some(false),
            ..ApiError::read(status, body)
        }
    }

    fn usage_key(&self) -> &'static str {
        "usageMetadata"
    }

    fn usage(&self, value: &Json) -> (Usage, Reported) {
        read_usage(value)
    }
}

/// `usageMetadata`: cached prompt tokens taken out of `input`, thinking tokens
/// counted as output. Every chunk of a stream reports the prompt; only the last
/// (if any) reports `candidatesTokenCount`.
fn read_usage(u: &Json) -> (Usage, Reported) {
    let n = |name: &str| u.get(name).and_then(Json::as_u64).unwrap_or(0);
    let has = |name: &str| u.get(name).and_then(Json::as_u64).is_some();
    let cached = n("cachedContentTokenCount");
    let usage = Usage {
        // What a tool (grounding) put in the prompt is billed as input too.
        input: n("promptTokenCount")
            .saturating_sub(cached)
            .saturating_add(n("toolUsePromptTokenCount")),
        output: n("candidatesTokenCount").saturating_add(n("thoughtsTokenCount")),
        cache_read: cached,
        cache_write: 0,
        ..Usage::default()
    };
    let reported = Reported {
        input: has("promptTokenCount"),
        output: has("candidatesTokenCount"),
    };
    (usage, reported)
}

/// A reply built from one response or from a stream of them.
#[derive(Default)]
struct Accumulated {
    text: String,
    usage: Usage,
    reported: Reported,
    finish: Option<String>,
    /// The latest `groundingMetadata` (a stream repeats or completes it).
    grounding: Option<Json>,
}

/// The citations and searches of a grounded reply.
fn grounding(metadata: &Json) -> (Vec<Citation>, u64) {
    let chunks = metadata
        .get("groundingChunks")
        .and_then(Json::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let mut quotes: Vec<Vec<&str>> = vec![Vec::new(); chunks.len()];
    for support in metadata
        .get("groundingSupports")
        .and_then(Json::as_array)
        .into_iter()
        .flatten()
    {
        let text = support
            .pointer("/segment/text")
            .and_then(Json::as_str)
            .unwrap_or_default();
        for i in support
            .get("groundingChunkIndices")
            .and_then(Json::as_array)
            .into_iter()
            .flatten()
            .filter_map(Json::as_u64)
        {
            if let Some(list) = usize::try_from(i).ok().and_then(|i| quotes.get_mut(i))
                && !text.is_empty()
            {
                list.push(text);
            }
        }
    }
    let mut citations = Vec::new();
    for (chunk, quoted) in chunks.iter().zip(quotes) {
        let Some(web) = chunk.get("web") else {
            continue;
        };
        let field = |name: &str| web.get(name).and_then(Json::as_str).unwrap_or_default();
        add_citation(
            &mut citations,
            Citation {
                url: field("uri").to_string(),
                title: field("title").to_string(),
                quoted: quoted.join(" … "),
            },
        );
    }
    let queries = metadata
        .get("webSearchQueries")
        .and_then(Json::as_array)
        .map_or(0, |q| q.len() as u64);
    // Grounded with no query listed: still one search billed.
    let searches = if queries == 0 && !chunks.is_empty() {
        1
    } else {
        queries
    };
    (citations, searches)
}

impl Accumulated {
    fn add(&mut self, chunk: &Json) -> Result<(), String> {
        // Fields are looked up one by one, not by JSON pointer (which allocates
        // each segment of its path): a stream has a chunk every few tokens.
        let candidate = chunk.get("candidates").and_then(|c| c.get(0));
        if let Some(reason) = chunk
            .get("promptFeedback")
            .and_then(|f| f.get("blockReason"))
            .and_then(Json::as_str)
        {
            return Err(format!("Gemini blocked the prompt ({reason})"));
        }
        if let Some(parts) = candidate
            .and_then(|c| c.get("content"))
            .and_then(|c| c.get("parts"))
            .and_then(Json::as_array)
        {
            for part in parts {
                if part.get("thought").and_then(Json::as_bool) == Some(true) {
                    continue;
                }
                self.text
                    .push_str(part.get("text").and_then(Json::as_str).unwrap_or_default());
            }
        }
        if let Some(reason) = candidate
            .and_then(|c| c.get("finishReason"))
            .and_then(Json::as_str)
        {
            self.finish = Some(if reason == "MAX_TOKENS" {
                "max_tokens".into()
            } else {
                reason.to_ascii_lowercase()
            });
        }
        if let Some(u) = chunk.get("usageMetadata") {
            (self.usage, self.reported) = read_usage(u);
            // A reply that ended while thinking (its limit spent on thoughts) has
            // no `candidatesTokenCount`: its output is its thoughts, all billed.
            if self.finish.is_some() && u.get("thoughtsTokenCount").is_some() {
                self.reported.output = true;
            }
        }
        if let Some(metadata) = candidate.and_then(|c| c.get("groundingMetadata")) {
            self.grounding = Some(metadata.clone());
        }
        Ok(())
    }

    fn reply(&mut self) -> Reply {
        let (citations, searches) = self
            .grounding
            .take()
            .map(|g| grounding(&g))
            .unwrap_or_default();
        let mut usage = self.usage;
        usage.web_search = searches;
        Reply {
            text: std::mem::take(&mut self.text),
            json: None,
            usage,
            reported: self.reported,
            stop_reason: self.finish.take(),
            citations,
        }
    }
}

impl StreamParser for Accumulated {
    fn event(&mut self, event: &SseEvent) -> Result<bool, StreamFault> {
        if event.data.trim().is_empty() {
            return Ok(false);
        }
        let chunk: Json = serde_json::from_str(&event.data).map_err(|e| {
            StreamFault::Malformed(format!("a stream chunk is not valid JSON: {e}"))
        })?;
        if chunk.get("error").is_some() {
            return Err(StreamFault::Error(ApiError::from_event(&chunk)));
        }
        self.add(&chunk).map_err(|message| {
            StreamFault::Error(ApiError {
                kind: Some("BLOCKED".into()),
                message,
                retryable: Some(false),
            })
        })?;
        Ok(false)
    }

    fn received(&self) -> usize {
        self.text.len()
    }

    /// The stream has no end marker: it is whole when a chunk gave a finish reason.
    fn whole_at_close(&self) -> bool {
        self.finish.is_some()
    }

    fn reply(&mut self) -> Reply {
        Accumulated::reply(self)
    }
}
