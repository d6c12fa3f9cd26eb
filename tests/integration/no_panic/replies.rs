//! What providers send back: whole replies, streams of events and error bodies
//! for every API, near-valid and not, and the retry hints in headers and bodies.

use std::time::Duration;

use byok_flow::cost::prices::PriceTable;
use byok_flow::providers::anthropic::Anthropic;
use byok_flow::providers::gemini::Gemini;
use byok_flow::providers::http::{Headers, SseEvent};
use byok_flow::providers::openai::OpenAi;
use byok_flow::providers::retry::{self, Policy};
use byok_flow::providers::wire::{Wire, parse_json_text};
use byok_flow::providers::{Reply, Request};
use byok_flow::usage::Usage;
use byok_flow::workflow::OutputKind;
use proptest::prelude::*;
use proptest::sample::{Index, select};
use serde_json::{Value as Json, json};

use super::config;

const JSON_KEYS: &[&str] = &[
    "type",
    "content",
    "text",
    "delta",
    "usage",
    "input_tokens",
    "output_tokens",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
    "message",
    "stop_reason",
    "partial_json",
    "input",
    "error",
    "choices",
    "finish_reason",
    "refusal",
    "prompt_tokens",
    "completion_tokens",
    "prompt_tokens_details",
    "cached_tokens",
    "cache_write_tokens",
    "prompt_cache_hit_tokens",
    "candidates",
    "parts",
    "thought",
    "finishReason",
    "usageMetadata",
    "promptTokenCount",
    "candidatesTokenCount",
    "thoughtsTokenCount",
    "cachedContentTokenCount",
    "promptFeedback",
    "blockReason",
    "code",
    "status",
    "details",
    "retryDelay",
    "value",
    "0",
];

const JSON_STRINGS: &[&str] = &[
    "text",
    "text_delta",
    "input_json_delta",
    "tool_use",
    "message_start",
    "content_block_delta",
    "message_delta",
    "message_stop",
    "error",
    "length",
    "MAX_TOKENS",
    "STOP",
    "RESOURCE_EXHAUSTED",
    "PerDay",
    "insufficient_quota",
    "34s",
    "1h2m3s",
    "99999999999999999999h",
    "1e300s",
    "{\"a\":",
    "```json\n{}\n```",
    "",
];

fn json_value() -> BoxedStrategy<Json> {
    let leaf = prop_oneof![
        Just(Json::Null),
        any::<bool>().prop_map(Json::from),
        prop_oneof![
            Just(u64::MAX),
            Just(u64::MAX / 2 + 1),
            Just(i64::MAX as u64),
            0u64..5_000
        ]
        .prop_map(Json::from),
        any::<i64>().prop_map(Json::from),
        any::<f64>().prop_map(Json::from),
        select(JSON_STRINGS).prop_map(Json::from),
        "\\PC{0,8}".prop_map(Json::from),
    ];
    leaf.prop_recursive(5, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Json::Array),
            prop::collection::vec((select(JSON_KEYS), inner), 0..6).prop_map(|entries| {
                Json::Object(
                    entries
                        .into_iter()
                        .map(|(k, v)| (k.to_string(), v))
                        .collect(),
                )
            }),
        ]
    })
    .boxed()
}

/// A token count as a provider might report it, the absurd ones included.
fn count() -> BoxedStrategy<Json> {
    prop_oneof![
        3 => (0u64..100_000).prop_map(Json::from),
        1 => Just(json!(u64::MAX)),
        1 => Just(json!(u64::MAX / 2 + 1)),
        1 => Just(json!(-1)),
        1 => Just(json!(1.5)),
        1 => Just(json!("12")),
        1 => Just(Json::Null),
    ]
    .boxed()
}

/// Well-formed replies of each API, with arbitrary counts and text.
fn reply_shape() -> BoxedStrategy<Json> {
    let text = || {
        prop_oneof![
            select(JSON_STRINGS).prop_map(Json::from),
            "\\PC{0,8}".prop_map(Json::from)
        ]
    };
    prop_oneof![
        (text(), count(), count(), count(), count()).prop_map(|(t, a, b, c, d)| json!({
            "type": "message",
            "content": [{"type": "text", "text": t}, {"type": "tool_use", "input": {"value": [1]}}],
            "stop_reason": "end_turn",
            "usage": {"input_tokens": a, "output_tokens": b, "cache_read_input_tokens": c, "cache_creation_input_tokens": d},
        })),
        (text(), count(), count(), count(), count(), count()).prop_map(|(t, a, b, c, d, e)| json!({
            "choices": [{"message": {"content": t}, "delta": {"content": t}, "finish_reason": "length"}],
            "usage": {"prompt_tokens": a, "completion_tokens": b, "prompt_tokens_details": {"cached_tokens": c, "cache_write_tokens": d}, "prompt_cache_hit_tokens": e},
        })),
        (text(), count(), count(), count(), count()).prop_map(|(t, a, b, c, d)| json!({
            "candidates": [{"content": {"parts": [{"text": t}, {"text": "x", "thought": true}]}, "finishReason": "MAX_TOKENS"}],
            "usageMetadata": {"promptTokenCount": a, "candidatesTokenCount": b, "thoughtsTokenCount": c, "cachedContentTokenCount": d},
        })),
        (select(&["message_start", "message_delta"][..]), count(), count(), count(), count()).prop_map(|(kind, a, b, c, d)| {
            let usage = json!({"input_tokens": a, "output_tokens": b, "cache_read_input_tokens": c, "cache_creation_input_tokens": d});
            json!({"type": kind, "message": {"usage": usage}, "usage": usage, "delta": {"stop_reason": "max_tokens"}})
        }),
    ]
    .boxed()
}

/// Replaces the `at`-th value (counting in pre-order) of `value` with `with`.
fn replace_nth(value: &mut Json, at: &mut usize, with: &Json) -> bool {
    if *at == 0 {
        *value = with.clone();
        return true;
    }
    *at -= 1;
    match value {
        Json::Array(items) => items.iter_mut().any(|v| replace_nth(v, at, with)),
        Json::Object(map) => map.values_mut().any(|v| replace_nth(v, at, with)),
        _ => false,
    }
}

/// A well-formed reply with one part replaced by something else.
fn near_reply() -> BoxedStrategy<Json> {
    (reply_shape(), prop::option::of((0usize..24, json_value())))
        .prop_map(|(mut reply, edit)| {
            if let Some((mut at, with)) = edit {
                replace_nth(&mut reply, &mut at, &with);
            }
            reply
        })
        .boxed()
}

/// A reply body or event data: JSON, JSON cut short, or not JSON at all.
fn body() -> BoxedStrategy<String> {
    prop_oneof![
        4 => near_reply().prop_map(|v| v.to_string()),
        2 => json_value().prop_map(|v| v.to_string()),
        1 => (json_value(), any::<Index>()).prop_map(|(v, cut)| {
            let text = v.to_string();
            let boundaries: Vec<usize> = text.char_indices().map(|(b, _)| b).collect();
            text[..boundaries.get(cut.index(boundaries.len().max(1))).copied().unwrap_or(0)]
                .to_string()
        }),
        1 => Just("[DONE]".to_string()),
        1 => "\\PC{0,16}",
    ]
    .boxed()
}

const EVENT_NAMES: &[&str] = &[
    "",
    "message_start",
    "content_block_start",
    "content_block_delta",
    "content_block_stop",
    "message_delta",
    "message_stop",
    "ping",
    "error",
    "completion",
];

fn event() -> BoxedStrategy<SseEvent> {
    (
        prop_oneof![4 => select(EVENT_NAMES).prop_map(str::to_string), 1 => "\\PC{0,8}"],
        body(),
    )
        .prop_map(|(name, data)| SseEvent { name, data })
        .boxed()
}

fn wires() -> [(&'static str, Box<dyn Wire>); 4] {
    [
        ("anthropic", Box::new(Anthropic)),
        ("openai", Box::new(OpenAi { first_party: true })),
        ("compatible", Box::new(OpenAi { first_party: false })),
        ("gemini", Box::new(Gemini)),
    ]
}

fn request(output: OutputKind, schema: Option<Json>) -> Request {
    Request {
        provider: "p".into(),
        model: "m".into(),
        system: None,
        prompt: "hi".into(),
        max_tokens: Some(100),
        temperature: None,
        top_p: None,
        stop: Vec::new(),
        output,
        schema,
        tools: Vec::new(),
        cache: None,
        stream: false,
        timeout: None,
        key: None,
        progress: byok_flow::providers::Progress::default(),
        correction: None,
        label: None,
    }
}

fn requests() -> [Request; 3] {
    [
        request(OutputKind::Text, None),
        request(OutputKind::Json, Some(json!({"type": "object"}))),
        request(OutputKind::Json, Some(json!({"type": "array"}))),
    ]
}

/// What a run does with a reply: price its usage, add it to the tally, read its JSON.
fn use_reply(reply: &Reply) {
    let _ = priced().cost(&reply.usage);
    let mut tally = Usage::default();
    tally += reply.usage;
    tally += reply.usage;
    if reply.json.is_none() {
        let _ = parse_json_text(&reply.text);
    }
}

/// A model's price, read from the built-in table once (reading it for every case
/// took most of these tests' time in debug builds).
fn priced() -> &'static byok_flow::cost::Price {
    static PRICE: std::sync::OnceLock<byok_flow::cost::Price> = std::sync::OnceLock::new();
    PRICE.get_or_init(|| {
        PriceTable::builtin()
            .get("anthropic/claude-sonnet-4-5")
            .expect("a priced model")
            .1
            .price()
    })
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn whole_replies_are_read_or_refused(text in body()) {
        for (_, wire) in wires() {
            for request in requests() {
                if let Ok(reply) = wire.parse(&request, &text) {
                    use_reply(&reply);
                }
            }
        }
    }

    #[test]
    fn streams_are_read_or_refused(events in prop::collection::vec(event(), 0..12)) {
        for (_, wire) in wires() {
            for request in requests() {
                let mut parser = wire.stream(&request);
                let mut done = false;
                let mut failed = false;
                for event in &events {
                    match parser.event(event) {
                        Ok(true) => {
                            done = true;
                            break;
                        }
                        Ok(false) => {
                            let _ = parser.received();
                        }
                        Err(_) => {
                            failed = true;
                            break;
                        }
                    }
                }
                if !failed && (done || parser.whole_at_close()) {
                    use_reply(&parser.reply());
                }
            }
        }
    }

    #[test]
    fn error_bodies_always_give_a_message_and_a_kind_only_when_it_is_a_word(status in any::<u16>(), text in body()) {
        for (name, wire) in wires() {
            let error = wire.error(status, &text);
            if let Some(kind) = &error.kind {
                prop_assert!(
                    kind.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                        && kind.chars().all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c)),
                    "{name}: {error:?}"
                );
            }
            prop_assert!(!error.message.is_empty(), "{name}: {error:?}");
            prop_assert!(!error.message.chars().any(char::is_control), "{name}: {error:?}");
            prop_assert!(error.message.chars().count() <= 501, "{name}: {error:?}");
        }
    }
}

const HEADER_NAMES: &[&str] = &[
    "retry-after",
    "retry-after-ms",
    "x-ratelimit-reset-requests",
    "x-ratelimit-reset-tokens",
    "anthropic-ratelimit-requests-reset",
    "anthropic-ratelimit-requests-remaining",
    "anthropic-ratelimit-tokens-reset",
    "anthropic-ratelimit-tokens-remaining",
];

fn header_value() -> BoxedStrategy<String> {
    prop_oneof![
        "[0-9]{0,25}(\\.[0-9]{0,4})?(e[0-9]{1,3})?",
        "([0-9.]{1,22}(h|m|s|ms|us|µs|ns|x)){1,4}",
        Just("0".to_string()),
        Just("Wed, 21 Oct 2015 07:28:00 GMT".to_string()),
        Just("Fri, 31 Dec 9999 23:59:59 GMT".to_string()),
        Just("2999-01-01T00:00:00Z".to_string()),
        Just("-1".to_string()),
        Just("NaN".to_string()),
        Just("inf".to_string()),
        "\\PC{0,12}",
    ]
    .boxed()
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn retry_hints_are_read_or_ignored(
        headers in prop::collection::vec((select(HEADER_NAMES), header_value()), 0..6),
        delay in prop_oneof![Just(None), header_value().prop_map(Some)],
    ) {
        let pairs: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        for (_, value) in &pairs {
            let _ = retry::go_duration(value);
        }
        let body = delay.map_or_else(String::new, |d| {
            json!({"error": {"details": [{"retryDelay": d}]}}).to_string()
        });
        let hint = retry::hint(&Headers::from_pairs(&pairs), &body);
        let policy = Policy {
            retries: 3,
            base: Duration::from_millis(500),
            cap: Duration::from_secs(30),
            max_retry_after: Duration::from_mins(2),
            scale: 0.0,
        };
        let _ = policy.sleep_for(policy.delay(0, hint));
    }
}
