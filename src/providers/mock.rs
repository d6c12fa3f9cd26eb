//! The built-in mock provider (SPEC §5): no network, no keys, $0. Its reply is
//! deterministic: it quotes the first words of the prompt and a hash of the whole
//! request, with token counts, so a workflow's wiring can be tested for free.
//!
//! The model id `fail` (as in `mock/fail`) always fails, for testing what a
//! workflow does when an agent fails.

use std::time::Duration;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::{AttemptError, BoxFuture, Provider, Reply, Reported, Request};
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
    fn attempt<'a>(&'a self, request: &'a Request) -> BoxFuture<'a, Result<Reply, AttemptError>> {
        Box::pin(async move {
            if let Some(latency) = self.latency {
                tokio::time::sleep(latency).await;
            }
            reply(request)
        })
    }
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
        s.push_str(&format!("{b:02x}"));
        s
    });
    let words: Vec<&str> = request.prompt.split_whitespace().collect();
    let mut quote = words
        .iter()
        .take(QUOTED_WORDS)
        .copied()
        .collect::<Vec<_>>()
        .join(" ");
    if words.len() > QUOTED_WORDS {
        quote.push_str(" …");
    }
    let mut text = format!(
        "[mock {}/{}] reply to \"{quote}\" (prompt sha256:{hash})",
        request.provider, request.model
    );
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
    if let Some(max) = request.max_tokens.map(u64::from) {
        if output > max {
            output = max;
            stop_reason = "max_tokens";
        }
    }
    let input = estimate_tokens(request.system.as_deref().unwrap_or_default())
        + estimate_tokens(&request.prompt);
    Ok(Reply {
        text,
        json,
        usage: Usage {
            input,
            output,
            ..Usage::default()
        },
        reported: Reported::ALL,
        stop_reason: Some(stop_reason.into()),
    })
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
