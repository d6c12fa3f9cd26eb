//! Every request body byok-flow sends, and every reply the fake server gives, is
//! checked against the providers' published OpenAPI schemas (extracted into
//! tests/fixtures/specs by scripts/extract-api-schemas.py); and the exact request
//! bodies for the example workflows are snapshotted.

use serde_json::{Value, json};

use crate::providers::{run, workflow};
use crate::support::fake::{Api, FakeServer, Fault, events, whole};
use crate::support::repo;

pub fn validator(api: &str, root: &str) -> jsonschema::Validator {
    let mut doc: Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join(format!("tests/fixtures/specs/{api}.schema.json")))
            .unwrap(),
    )
    .unwrap();
    let root_ref = doc["roots"][root].clone();
    let object = doc.as_object_mut().unwrap();
    object.insert("$ref".into(), root_ref["$ref"].clone());
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .should_validate_formats(false)
        .build(&doc)
        .unwrap()
}

pub fn assert_valid(validator: &jsonschema::Validator, value: &Value, what: &str) {
    let errors: Vec<String> = validator
        .iter_errors(value)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{what} does not match the spec: {errors:#?}\n{value:#}"
    );
}

/// Agents that use every request feature: system, sampling, stop, JSON with a schema, the correction turn.
fn feature_agents(model: &str, tag: &str) -> String {
    format!(
        "  plain-{tag}:\n    model: {model}\n    system: You are terse.\n    prompt: \"Say hi\"\n    max_tokens: 64\n    temperature: 0.2\n    top_p: 0.9\n    stop: [END]\n    stream: false\n\
         \x20 streamed-{tag}:\n    model: {model}\n    prompt: \"Say hi slowly\"\n\
         \x20 json-{tag}:\n    model: {model}\n    prompt: \"wrong-first-{tag} list facts\"\n    output: json\n    schema: {{type: object, properties: {{facts: {{type: array, items: {{type: string}}}}}}, required: [facts]}}\n"
    )
}

#[test]
fn request_bodies_match_the_published_specs() {
    let server = FakeServer::start();
    let dir = tempfile::tempdir().unwrap();
    let mut agents = String::new();
    for (tag, model) in [
        ("a", "anthropic/claude-sonnet-4-5"),
        ("o", "openai/gpt-4o"),
        ("g", "gemini/gemini-3.5-flash"),
        ("r", "openai/gpt-5.4-mini"),
    ] {
        server.script(&format!("wrong-first-{tag}"), [Fault::WrongJson]);
        agents.push_str(&feature_agents(model, tag));
    }
    let out = run(dir.path(), &workflow(&server, &agents), &[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (anthropic, openai, gemini) = (
        validator("anthropic", "request"),
        validator("openai", "request"),
        validator("gemini", "request"),
    );
    let requests = server.requests();
    assert_eq!(requests.len(), 16);
    for r in &requests {
        let v = if r.path.ends_with("/messages") {
            &anthropic
        } else if r.path.ends_with("/chat/completions") {
            &openai
        } else {
            &gemini
        };
        assert_valid(v, &r.body, &r.path);
    }
    let o3 = requests.iter().find(|r| {
        r.body["model"] == "gpt-5.4-mini"
            && r.body.get("temperature").is_none()
            && r.body["messages"][0]["content"] == "You are terse."
    });
    assert!(
        o3.is_some_and(|r| r.body.get("max_completion_tokens").is_some()),
        "reasoning models get max_completion_tokens and no sampling parameters"
    );
}

#[test]
fn the_fake_servers_replies_match_the_published_specs() {
    let body = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "contents": [{"role": "user", "parts": [{"text": "hi"}]}]});
    let usage = (10, 5, 3, 2);
    for (api, name) in [
        (Api::Anthropic, "anthropic"),
        (Api::OpenAi, "openai"),
        (Api::Gemini, "gemini"),
    ] {
        let (response, event) = (validator(name, "response"), validator(name, "stream_event"));
        assert_valid(&response, &whole(api, &body, "hello", None, usage), name);
        for e in events(api, &body, "hello there, a streamed reply", None, usage) {
            let data = e
                .lines()
                .find_map(|l| l.strip_prefix("data: "))
                .unwrap_or_default()
                .trim();
            // `[DONE]` ends OpenAI's streams; Anthropic documents `ping` but its spec omits it.
            if data.is_empty() || data == "[DONE]" || data.contains("\"ping\"") {
                continue;
            }
            assert_valid(
                &event,
                &serde_json::from_str(data).unwrap(),
                &format!("{name} event {data}"),
            );
        }
    }
}

/// An example workflow with every provider it uses pointed at the fake server.
/// JSON is YAML, so the result is written as JSON (anchors and merges expanded).
fn pointed_at(server: &FakeServer, example: &std::path::Path) -> String {
    let mut doc: Value =
        serde_saphyr::from_str(&std::fs::read_to_string(example).unwrap()).unwrap();
    let url = server.url();
    let mut providers = serde_json::Map::new();
    for agent in doc["agents"].as_object().unwrap().values() {
        let models = std::iter::once(&agent["model"])
            .chain(agent["fallback"].as_array().into_iter().flatten());
        for model in models {
            let provider = model.as_str().unwrap().split('/').next().unwrap();
            let (base_url, key) = match provider {
                "anthropic" => (url.clone(), "env:ANTHROPIC_KEY"),
                "gemini" => (format!("{url}/v1beta"), "env:GEMINI_KEY"),
                _ => (format!("{url}/v1"), "env:OPENAI_KEY"),
            };
            providers.insert(
                provider.to_string(),
                json!({"base_url": base_url, "key": key}),
            );
        }
    }
    doc["providers"] = Value::Object(providers);
    // An agent's own `key:` names a key file; the providers' `env:` keys stand in.
    for agent in doc["agents"].as_object_mut().unwrap().values_mut() {
        agent.as_object_mut().unwrap().remove("key");
    }
    serde_json::to_string_pretty(&doc).unwrap()
}

/// The exact bodies each provider receives for the example workflows.
#[test]
fn request_bodies_for_the_examples() {
    let mut examples: Vec<_> = std::fs::read_dir(repo().join("workflows"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    examples.sort();
    for example in examples {
        let name = example.file_stem().unwrap().to_string_lossy().to_string();
        let server = FakeServer::start();
        let dir = tempfile::tempdir().unwrap();
        let diff = dir.path().join("changes.diff");
        std::fs::write(
            &diff,
            "--- a/src/lib.rs\n+++ b/src/lib.rs\n@@ -1 +1 @@\n-fn a() {}\n+fn a() -> u8 { 1 }\n",
        )
        .unwrap();
        let doc: Value =
            serde_saphyr::from_str(&std::fs::read_to_string(&example).unwrap()).unwrap();
        let mut args = Vec::new();
        for (input, spec) in doc["inputs"].as_object().into_iter().flatten() {
            if spec["required"] == true {
                let value = if input == "diff" {
                    format!("@{}", diff.display())
                } else {
                    format!("an example {input}")
                };
                args.extend(["--input".to_string(), format!("{input}={value}")]);
            }
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = run(dir.path(), &pointed_at(&server, &example), &args);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut bodies: Vec<Value> = server.requests().into_iter().map(|r| json!({"path": r.path, "anthropic-version": r.header("anthropic-version"), "body": r.body})).collect();
        bodies.sort_by_key(Value::to_string);
        insta::assert_json_snapshot!(format!("request_bodies_{name}"), bodies);
    }
}
