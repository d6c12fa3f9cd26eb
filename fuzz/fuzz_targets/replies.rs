//! What a provider sends back. The first byte picks the API (Anthropic, `OpenAI`,
//! an OpenAI-compatible endpoint, Gemini), the mode and the request's output kind;
//! the rest is the input:
//!
//! - mode 0: a whole reply body for `Wire::parse`;
//! - mode 1: a stream, events split at blank lines, each event's first line its
//!   `event:` name and the rest its data, fed to the `StreamParser` as the call
//!   loop does (until the final event or an error, then `reply`);
//! - mode 2: an error body for `Wire::error`, its status from the next two bytes;
//! - mode 3: response headers (`name: value` lines), a blank line and a body, for
//!   `retry::hint` and `go_duration`.
//!
//! Every reply's usage is priced and added to a tally, as a run does.

#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use byok_flow::cost::Price;
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
use libfuzzer_sys::fuzz_target;
use serde_json::json;

fn price() -> &'static Price {
    static PRICE: OnceLock<Price> = OnceLock::new();
    PRICE.get_or_init(|| {
        let table = PriceTable::builtin();
        let (_, entry) = table
            .get("anthropic/claude-sonnet-4-5")
            .expect("a priced model");
        entry.price()
    })
}

fn request(output: OutputKind, wrapped_schema: bool) -> Request {
    Request {
        provider: "fuzz".into(),
        model: "model".into(),
        system: None,
        prompt: "prompt".into(),
        max_tokens: Some(100),
        temperature: None,
        top_p: None,
        stop: Vec::new(),
        output,
        schema: (output == OutputKind::Json).then(|| {
            if wrapped_schema {
                json!({"type": "array"})
            } else {
                json!({"type": "object"})
            }
        }),
        stream: false,
        timeout: None,
        key: None,
        progress: Default::default(),
        correction: None,
    }
}

fn use_reply(reply: &Reply, tally: &mut Usage) {
    let _ = price().cost(&reply.usage);
    *tally += reply.usage;
    if reply.json.is_none() {
        let _ = parse_json_text(&reply.text);
    }
}

fn events(text: &str) -> impl Iterator<Item = SseEvent> + '_ {
    text.split("\n\n").map(|event| {
        let (name, data) = event.split_once('\n').unwrap_or(("", event));
        SseEvent {
            name: name.to_string(),
            data: data.to_string(),
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let wire: &dyn Wire = match selector & 3 {
        0 => &Anthropic,
        1 => &OpenAi { first_party: true },
        2 => &OpenAi { first_party: false },
        _ => &Gemini,
    };
    let output = if selector & 0x40 == 0 {
        OutputKind::Text
    } else {
        OutputKind::Json
    };
    let request = request(output, selector & 0x80 != 0);
    let mut tally = Usage::default();
    match (selector >> 2) & 3 {
        0 => {
            if let Ok(reply) = wire.parse(&request, &String::from_utf8_lossy(rest)) {
                use_reply(&reply, &mut tally);
            }
        }
        1 => {
            let text = String::from_utf8_lossy(rest);
            let mut parser = wire.stream(&request);
            let mut done = false;
            for event in events(&text) {
                match parser.event(&event) {
                    Ok(true) => {
                        done = true;
                        break;
                    }
                    Ok(false) => {
                        let _ = parser.received();
                    }
                    Err(_) => return,
                }
            }
            if done || parser.whole_at_close() {
                let reply = parser.reply();
                use_reply(&reply, &mut tally);
            }
        }
        2 => {
            let Some((status, body)) = rest.split_first_chunk::<2>() else {
                return;
            };
            let status = u16::from_be_bytes(*status);
            let error = wire.error(status, &String::from_utf8_lossy(body));
            assert!(
                error.kind.as_ref().is_none_or(|k| !k.is_empty()) && !error.message.is_empty(),
                "{error:?}"
            );
            let _ = retry::retryable_status(status);
        }
        _ => {
            let text = String::from_utf8_lossy(rest);
            let (head, body) = text.split_once("\n\n").unwrap_or((&text, ""));
            let pairs: Vec<(&str, &str)> = head
                .lines()
                .filter_map(|line| line.split_once(':'))
                .collect();
            for (_, value) in &pairs {
                let _ = retry::go_duration(value);
            }
            let hint = retry::hint(&Headers::from_pairs(&pairs), body);
            let policy = Policy {
                retries: 3,
                base: Duration::from_millis(500),
                cap: Duration::from_secs(30),
                max_retry_after: Duration::from_secs(120),
                scale: 0.0,
            };
            let _ = policy.sleep_for(policy.delay(0, hint));
        }
    }
});
