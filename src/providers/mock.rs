//! The built-in mock provider (SPEC §5): no network, no keys, $0. Its reply is
//! deterministic: it quotes the first words of the prompt and a hash of the whole
//! request, with token counts, so a workflow's wiring can be tested for free.
//!
//! The model id `fail` (as in `mock/fail`) always fails, for testing what a
//! workflow does when an agent fails.
//!
//! An agent with `web_search` gets canned search results: one search (two with
//! `web_fetch` too, which fetches the first result), two sources cited, each
//! quoting the prompt. A request with a prompt-cache plan is answered as
//! Anthropic would: the first time a run sends a marked prefix it is written to
//! the cache, later requests read it, so a simulated run (a `type: mock` provider
//! with `pricing:`) shows what caching saves.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::{AttemptError, BoxFuture, Provider, Reply, Reported, Request};
use crate::tools::{Citation, ToolName};
use crate::usage::Usage;
use crate::workflow::model::OutputKind;

/// How many words of the prompt the reply quotes.
const QUOTED_WORDS: usize = 8;

/// The mock provider, with an optional simulated latency per call.
#[derive(Debug, Clone, Default)]
pub struct Mock {
    pub latency: Option<Duration>,
}

impl Provider for Mock {
    fn attempt<'a>(
        &'a self,
        request: &'a std::sync::Arc<Request>,
    ) -> BoxFuture<'a, Result<Reply, AttemptError>> {
        Box::pin(async move {
            if let Some(tool) = request.tools.first() {
                request.progress.tool(tool.name);
            }
            if let Some(latency) = self.latency {
                tokio::time::sleep(latency).await;
            }
            let mut reply = reply(request)?;
            reply.usage = cached(request, reply.usage);
            Ok(reply)
        })
    }
}

/// The prefixes this process has "cached", as Anthropic would: by a hash of
/// the model and the marked text.
static CACHED: Mutex<Option<HashSet<[u8; 32]>>> = Mutex::new(None);

/// `usage` with the request's marked prefix written to or read from the cache.
fn cached(request: &Request, mut usage: Usage) -> Usage {
    let Some(plan) = request.cache.filter(crate::prompt_cache::Plan::marks) else {
        return usage;
    };
    let system = request.system.as_deref().unwrap_or_default();
    let system_head = plan
        .system
        .and_then(|n| system.get(..n))
        .unwrap_or_default();
    let prompt_head = plan
        .prompt
        .and_then(|n| request.prompt.get(..n))
        .unwrap_or_default();
    let tokens = estimate_tokens(system_head) + estimate_tokens(prompt_head);
    let mut hasher = Sha256::new();
    for part in [request.model.as_str(), system_head, prompt_head] {
        hasher.update(part.as_bytes());
        hasher.update([0]);
    }
    let key: [u8; 32] = hasher.finalize().into();
    let seen = !CACHED
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get_or_insert_with(HashSet::new)
        .insert(key);
    usage.input = usage.input.saturating_sub(tokens);
    if seen {
        usage.cache_read = tokens;
    } else if plan.ttl == crate::prompt_cache::Ttl::OneHour {
        usage.cache_write_1h = tokens;
    } else {
        usage.cache_write = tokens;
    }
    usage
}

/// The mock's answer to a request.
pub fn reply(request: &Request) -> Result<Reply, AttemptError> {
    if request.model == "fail" {
        return Err(AttemptError::permanent(
            "the mock model `fail` always fails".into(),
            Some("use another model id to get a reply".into()),
        ));
    }
    let mut hasher = Sha256::new();
    for part in [
        request.system.as_deref().unwrap_or_default(),
        "\u{0}",
        &request.prompt,
    ] {
        hasher.update(part.as_bytes());
    }
    let digest = hasher.finalize();
    let hash = digest.iter().take(6).fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    });
    // The first words, and whether there are more (not every word of a long prompt).
    let words: Vec<&str> = request
        .prompt
        .split_whitespace()
        .take(QUOTED_WORDS + 1)
        .collect();
    let mut quote = words[..words.len().min(QUOTED_WORDS)].join(" ");
    if words.len() > QUOTED_WORDS {
        quote.push_str(" …");
    }
    let mut text = format!(
        "[mock {}/{}] reply to \"{quote}\" (prompt sha256:{hash})",
        request.provider, request.model
    );
    let (citations, searches, fetches) = search(request, &hash, &quote);
    if !citations.is_empty() {
        text.push_str(&format!(", citing {} sources", citations.len()));
    }
    let json = (request.output == OutputKind::Json).then(|| {
        let value = request
            .schema
            .as_ref()
            .map_or_else(|| json!({ "reply": text }), |s| example(s, &text));
        text = value.to_string();
        value
    });
    let mut output = estimate_tokens(&text);
    let mut stop_reason = "end_turn";
    if let Some(max) = request.max_tokens.map(u64::from)
        && output > max
    {
        output = max;
        stop_reason = "max_tokens";
    }
    // Each search's results are read as input, as the providers bill them.
    let results: u64 = citations
        .iter()
        .map(|c| estimate_tokens(&c.quoted) + estimate_tokens(&c.title))
        .sum();
    let input = estimate_tokens(request.system.as_deref().unwrap_or_default())
        + estimate_tokens(&request.prompt)
        + results;
    Ok(Reply {
        text,
        json,
        usage: Usage {
            input,
            output,
            web_search: searches,
            web_fetch: fetches,
            ..Usage::default()
        },
        reported: Reported::ALL,
        stop_reason: Some(stop_reason.into()),
        citations,
    })
}

/// The mock's canned search: two sources, quoting the prompt; the searches and
/// fetches it made.
fn search(request: &Request, hash: &str, quote: &str) -> (Vec<Citation>, u64, u64) {
    let has = |name| request.tools.iter().any(|t| t.name == name);
    if !has(ToolName::WebSearch) && !has(ToolName::WebFetch) {
        return (Vec::new(), 0, 0);
    }
    let citations = (1..=2)
        .map(|i| Citation {
            url: format!("https://example.com/mock/{hash}/{i}"),
            title: format!("Mock source {i} on \"{quote}\""),
            quoted: format!("A passage of mock source {i} about \"{quote}\"."),
        })
        .collect();
    (
        citations,
        u64::from(has(ToolName::WebSearch)),
        u64::from(has(ToolName::WebFetch)),
    )
}

/// The mock's token count: one token per four bytes, rounded up.
pub fn estimate_tokens(text: &str) -> u64 {
    (text.len() as u64).div_ceil(4)
}

/// A value that matches a JSON Schema's basic shape, for `output: json` agents.
pub fn example(schema: &Value, text: &str) -> Value {
    if let Some(c) = schema.get("const") {
        return c.clone();
    }
    if let Some(first) = schema
        .get("enum")
        .and_then(Value::as_array)
        .and_then(|a| a.first())
    {
        return first.clone();
    }
    for key in ["anyOf", "oneOf", "allOf"] {
        if let Some(first) = schema
            .get(key)
            .and_then(Value::as_array)
            .and_then(|a| a.first())
        {
            return example(first, text);
        }
    }
    let kind = match schema.get("type") {
        Some(Value::Array(types)) => types.iter().find_map(Value::as_str).unwrap_or("object"),
        Some(Value::String(t)) => t.as_str(),
        _ if schema.get("properties").is_some() => "object",
        _ => "string",
    };
    match kind {
        "object" => {
            let mut map = serde_json::Map::new();
            if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                for (name, sub) in props {
                    map.insert(name.clone(), example(sub, text));
                }
            }
            Value::Object(map)
        }
        "array" => {
            let count = schema
                .get("minItems")
                .and_then(Value::as_u64)
                .unwrap_or(1)
                .max(1);
            let item = schema
                .get("items")
                .map_or(Value::String(text.into()), |s| example(s, text));
            Value::Array(std::iter::repeat_n(item, usize::try_from(count).unwrap_or(1)).collect())
        }
        "integer" | "number" => schema.get("minimum").cloned().unwrap_or(json!(0)),
        "boolean" => json!(true),
        "null" => Value::Null,
        _ => Value::String(text.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(prompt: &str) -> Request {
        Request {
            provider: "openai".into(),
            model: "gpt-4o".into(),
            prompt: prompt.into(),
            ..Request::default()
        }
    }

    #[test]
    fn deterministic_and_quotes_the_prompt() {
        let a = reply(&request("one two three four five six seven eight nine ten")).unwrap();
        let b = reply(&request("one two three four five six seven eight nine ten")).unwrap();
        assert_eq!(a, b);
        assert!(
            a.text
                .contains("\"one two three four five six seven eight …\""),
            "{}",
            a.text
        );
        assert_ne!(a.text, reply(&request("something else")).unwrap().text);
        assert!(a.usage.input > 0 && a.usage.output > 0);
    }

    #[test]
    fn json_output_follows_the_schema() {
        let mut r = request("list things");
        r.output = OutputKind::Json;
        r.schema = Some(
            json!({"type": "object", "properties": {"items": {"type": "array", "items": {"type": "string"}}, "n": {"type": "integer"}}, "required": ["items"]}),
        );
        let reply = reply(&r).unwrap();
        let v = reply.json.unwrap();
        assert!(v["items"].is_array() && v["n"].is_number(), "{v}");
        assert!(jsonschema::is_valid(r.schema.as_ref().unwrap(), &v));
    }

    #[test]
    fn max_tokens_cuts_and_says_so() {
        let mut r = request("hello");
        r.max_tokens = Some(2);
        let reply = reply(&r).unwrap();
        assert_eq!(reply.usage.output, 2);
        assert_eq!(reply.stop_reason.as_deref(), Some("max_tokens"));
    }

    #[test]
    fn the_fail_model_fails() {
        let mut r = request("x");
        r.model = "fail".into();
        assert!(reply(&r).is_err());
    }
}
