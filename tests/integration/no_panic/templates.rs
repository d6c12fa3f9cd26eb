//! Prompt templates: Handlebars-ish text, read for references as validation
//! does and, when accepted, rendered strictly as a run does.

use byok_flow::template::{Renderer, references};
use proptest::prelude::*;
use proptest::sample::select;
use serde_json::{Value as Json, json};

use super::config;

const TEMPLATE_PARTS: &[&str] = &[
    "{{",
    "}}",
    "{{{",
    "}}}",
    "{{~",
    "~}}",
    "{{#each ",
    "{{/each}}",
    "{{#if ",
    "{{/if}}",
    "{{#with ",
    "{{/with}}",
    "{{#unless ",
    "{{/unless}}",
    "{{else}}",
    "{{^}}",
    "{{!-- ",
    " --}}",
    "{{! ",
    "{{> ",
    "{{#> ",
    "{{* ",
    "{{#* ",
    "inputs.topic",
    "inputs",
    "agents.a.output",
    "agents.a.json.items",
    "agents.a.json",
    "agents.",
    "@root.",
    "@index",
    "this",
    "../",
    "./",
    ".",
    "/",
    "[",
    "]",
    "(",
    ")",
    "lookup ",
    "eq ",
    "readFile ",
    "=",
    "\"",
    "'",
    " ",
    "\n",
    "\t",
    "é",
    "\u{1f600}",
    "x",
    "0",
    "as |i|",
    "\\{{",
];

fn template_text() -> BoxedStrategy<String> {
    prop::collection::vec(
        prop_oneof![6 => select(TEMPLATE_PARTS).prop_map(str::to_string), 1 => "\\PC{1,4}"],
        0..48,
    )
    .prop_map(|parts| parts.concat())
    .boxed()
}

fn template_context() -> Json {
    json!({
        "inputs": {"topic": "fuzzing", "audience": "engineers", "flag": ""},
        "agents": {
            "a": {"output": "text", "json": {"items": [1, "two", {"name": "n"}], "ok": true}},
            "b": {"output": "", "json": null}
        }
    })
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn templates_are_read_or_explained(text in template_text()) {
        match references(&text) {
            Ok(refs) => {
                for r in &refs {
                    prop_assert!(r.offset <= text.len(), "{r:?}");
                }
                let mut renderer = Renderer::default();
                if renderer.add("t", text.as_str()).is_ok() {
                    let _ = renderer.render("t", &template_context().into());
                }
            }
            Err(problem) => {
                prop_assert!(!problem.message.is_empty());
                if let Some((line, column)) = problem.at {
                    prop_assert!(line >= 1 && column >= 1, "{problem:?}");
                }
            }
        }
    }
}
