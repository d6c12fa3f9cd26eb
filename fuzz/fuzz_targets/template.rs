//! A prompt template: the reference scan validation runs (`template::references`)
//! and, for a template it accepts, a strict render against a small context, as the
//! runner does.

#![no_main]

use std::sync::OnceLock;

use byok_flow::template::{Renderer, references};
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};

fn context() -> &'static Value {
    static CONTEXT: OnceLock<Value> = OnceLock::new();
    CONTEXT.get_or_init(|| {
        json!({
            "inputs": {"topic": "fuzzing", "audience": "engineers", "flag": ""},
            "agents": {
                "a": {"output": "some text", "json": {"items": [1, "two", {"name": "n"}], "ok": true}},
                "b": {"output": "", "json": null}
            }
        })
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match references(text) {
        Ok(refs) => {
            for r in &refs {
                assert!(r.offset <= text.len(), "{r:?} is past the end");
            }
            let mut renderer = Renderer::default();
            if renderer.add("t", text).is_ok() {
                let _ = renderer.render("t", context());
            }
        }
        Err(problem) => {
            assert!(!problem.message.is_empty());
            if let Some((line, column)) = problem.at {
                assert!(line >= 1 && column >= 1, "{problem:?}");
            }
        }
    }
});
