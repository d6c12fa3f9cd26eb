//! Issue 14: the servers people point byok-flow at (proxies, gateways, local
//! servers) and the models the providers serve today. Each test configures the
//! fake server to behave as the real deployment does.

use std::path::Path;
use std::process::Output;

use crate::keys::Project;
use crate::providers::{OPENAI_KEY, agent, record, run, workflow};
use crate::support::fake::{FakeServer, Fault, Refusal};
use crate::support::{byok_flow, example};

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn validate(dir: &Path, yaml: &str, extra: &[&str]) -> Output {
    let file = dir.join("flow.yaml");
    std::fs::write(&file, yaml).unwrap();
    byok_flow(dir)
        .arg("validate")
        .arg(&file)
        .args(extra)
        .output()
        .unwrap()
}

fn reason(out: &Output, name: &str) -> String {
    agent(&record(out), name)["reason"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Item 1: a proxy serves Anthropic's API under its own alias. With a `base_url`
/// of the workflow's, an id that is not `claude-…` is a warning (and unpriced),
/// and the run goes through; the same for `type: gemini` and `type: openai`.
#[test]
fn issue14_gateway_alias_on_anthropic_api_runs() {
    let server = FakeServer::start();
    let dir = tempfile::tempdir().unwrap();
    let url = server.url();
    let yaml = format!(
        "version: 1\nproviders:\n  gw: {{type: anthropic, base_url: \"{url}\", key: \"env:ANTHROPIC_KEY\"}}\n  gm: {{type: gemini, base_url: \"{url}/v1beta\", key: \"env:GEMINI_KEY\"}}\n  oa: {{type: openai, base_url: \"{url}/v1\", key: \"env:OPENAI_KEY\"}}\nagents:\n  a:\n    model: gw/sonnet-fast\n    prompt: \"alias one\"\n  b:\n    model: gm/fast-flash\n    prompt: \"alias two\"\n  c:\n    model: oa/house-model\n    prompt: \"alias three\"\n"
    );
    let out = validate(dir.path(), &yaml, &[]);
    let text = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("`sonnet-fast` is not one of Anthropic's model ids"),
        "{text}"
    );
    assert!(
        text.contains("`fast-flash` is not one of Gemini's model ids"),
        "{text}"
    );
    assert!(
        text.contains("cost::unpriced"),
        "an alias is unpriced: {text}"
    );
    assert!(!text.contains("× "), "no errors: {text}");

    let out = run(dir.path(), &yaml, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let rec = record(&out);
    for name in ["a", "b", "c"] {
        assert_eq!(agent(&rec, name)["status"], "succeeded", "{name}");
    }
    let requests = server.requests();
    assert!(requests.iter().any(|r| r.body["model"] == "sonnet-fast"));
    assert!(
        requests
            .iter()
            .any(|r| r.path.contains("/models/fast-flash:"))
    );

    // Against the provider's own host the same id is still an error.
    let yaml = "version: 1\nagents:\n  a:\n    model: anthropic/sonnet-fast\n    prompt: x\n";
    let out = validate(dir.path(), yaml, &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}

/// Item 3: a refused key's fix depends on where the key came from.
#[test]
fn issue14_401_advice_per_key_source() {
    let server = FakeServer::start();
    let dir = tempfile::tempdir().unwrap();
    // An environment variable: fix the variable, never `keys add`.
    server.script("env-key", [Fault::status(401)]);
    let agents = "  a:\n    model: openai/gpt-4o\n    prompt: \"env-key hello\"\n";
    let out = run(dir.path(), &workflow(&server, agents), &[]);
    let why = reason(&out, "a");
    assert!(
        why.contains("set `OPENAI_KEY` to a valid openai key"),
        "{why}"
    );
    assert!(!why.contains("keys add"), "{why}");
    assert!(!why.contains(OPENAI_KEY));

    // No key, to a server that wants one.
    let url = server.url();
    let yaml = format!(
        "version: 1\nproviders:\n  lab: {{type: openai-compatible, base_url: \"{url}/v1\", key: none}}\nagents:\n  a:\n    model: lab/house\n    prompt: \"no key\"\n"
    );
    let out = run(dir.path(), &yaml, &[]);
    let why = reason(&out, "a");
    assert!(
        why.contains("lab wants a key, and none is sent") && why.contains("key: env:VARIABLE"),
        "{why}"
    );

    // A key file: replace it.
    let p = Project::new();
    p.init();
    p.add("anthropic", "sk-ant-refused-5e1");
    server.script("file-key", [Fault::status(401)]);
    std::fs::write(
        p.path().join("flow.yaml"),
        format!(
            "version: 1\nproviders:\n  anthropic: {{base_url: \"{url}\"}}\nagents:\n  a:\n    model: anthropic/claude-sonnet-4-6\n    prompt: \"file-key hello\"\n"
        ),
    )
    .unwrap();
    let out = p
        .cmd(&[
            "run",
            "flow.yaml",
            "--json",
            "-q",
            "--allow-host",
            &server.addr.to_string(),
        ])
        .output()
        .unwrap();
    let why = reason(&out, "a");
    assert!(
        why.contains(".byok/keys/anthropic.age")
            && why.contains("byok-flow keys add anthropic --provider anthropic --replace"),
        "{why}"
    );
}

/// Item 4: the provider's error type only when it is a word that adds something;
/// the message out of nested objects and strings holding JSON.
#[test]
fn issue14_error_kinds_are_words_and_messages_are_unwrapped() {
    let server = FakeServer::start();
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        // LiteLLM's proxy: `type: "None"`, `code` the status, the message a Python dict.
        (
            r#"{"error":{"message":"{'error': 'Budget exceeded for key. Spend 5.1, budget 5.0'}","type":"None","param":"None","code":"400"}}"#,
            "local 400: Budget exceeded for key. Spend 5.1, budget 5.0",
        ),
        // A proxy that wraps the upstream provider's JSON in its own message.
        (
            r#"{"error":{"message":"litellm.BadRequestError: AnthropicException - b'{\"type\":\"error\",\"error\":{\"type\":\"invalid_request_error\",\"message\":\"prompt is too long\"}}'. Received Model Group=x","type":null,"param":null,"code":"400"}}"#,
            "local 400 invalid_request_error: prompt is too long",
        ),
        // A message that is an object, not a string.
        (
            r#"{"error":{"message":{"error":"quota exhausted for this team"},"type":"None","code":400}}"#,
            "local 400: quota exhausted for this team",
        ),
        // OpenRouter's upstream error in `metadata.raw`.
        (
            r#"{"error":{"message":"Provider returned error","code":400,"metadata":{"raw":"{\"error\":{\"message\":\"context_length_exceeded\"}}","provider_name":"X"}}}"#,
            "local 400: context_length_exceeded",
        ),
    ];
    for (i, (body, expected)) in cases.into_iter().enumerate() {
        let marker = format!("kind-{i}");
        server.script(
            &marker,
            [Fault::Body {
                code: 400,
                body: body.to_string(),
            }],
        );
        let agents = format!("  a:\n    model: local/house\n    prompt: \"{marker}\"\n");
        let out = run(dir.path(), &workflow(&server, &agents), &[]);
        assert_eq!(out.status.code(), Some(1));
        let why = reason(&out, "a");
        assert!(why.starts_with(expected), "{why}");
        for bad in ["None", "400 400", "{"] {
            assert!(!why.contains(bad), "{bad} in {why}");
        }
    }
    // A 200 that carries an error: read as that error, and retried.
    server.script(
        "error-200",
        [Fault::Body {
            code: 200,
            body: r#"{"error":{"message":"upstream connect error","type":"None","code":"503"}}"#
                .into(),
        }],
    );
    let agents = "  a:\n    model: local/house\n    prompt: \"error-200\"\n";
    let out = run(dir.path(), &workflow(&server, agents), &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let attempts = agent(&record(&out), "a")["attempts"].clone();
    assert_eq!(
        attempts[0]["outcome"],
        "malformed reply: the reply is an error: upstream connect error"
    );

    // A proxy's HTML error page is named as such, and retried like any 502.
    server.script(
        "html-page",
        [Fault::Body {
            code: 502,
            body: "<html><head><title>502 Bad Gateway</title></head><body><center>nginx</center></body></html>".into(),
        }],
    );
    let agents = "  a:\n    model: local/house\n    prompt: \"html-page\"\n";
    let out = run(dir.path(), &workflow(&server, agents), &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let attempts = agent(&record(&out), "a")["attempts"].clone();
    assert_eq!(
        attempts[0]["outcome"],
        "local 502: HTTP 502: an HTML page, \"502 Bad Gateway\""
    );
}

/// Item 5: gateways answer 400 (or their own 404) for a model they do not know;
/// each gets the "check the model id" help.
#[test]
fn issue14_gateway_unknown_model_gets_the_model_id_help() {
    let dir = tempfile::tempdir().unwrap();
    for (refusal, status) in [
        (Refusal::LiteLlm, 400),
        (Refusal::OpenRouter, 400),
        (Refusal::Vllm, 404),
        (Refusal::Ollama, 404),
        (Refusal::OpenAi, 404),
    ] {
        let server = FakeServer::start();
        server.serve_only(&["house"], refusal);
        let agents =
            "  a:\n    model: local/hose\n    prompt: \"typo\"\n    fallback: [local/house]\n";
        let out = run(dir.path(), &workflow(&server, agents), &["--no-cache"]);
        assert_eq!(out.status.code(), Some(0), "{refusal:?}: {}", stderr(&out));
        let rec = record(&out);
        let a = agent(&rec, "a");
        let attempts = a["attempts"].as_array().unwrap();
        assert_eq!(
            attempts.len(),
            2,
            "{refusal:?}: not retried, then the fallback"
        );
        assert_eq!(attempts[0]["status"], status);
        assert_eq!(a["answered_by"], "local/house");

        let agents = "  a:\n    model: local/hose\n    prompt: \"typo\"\n";
        let out = run(dir.path(), &workflow(&server, agents), &["--no-cache"]);
        let why = reason(&out, "a");
        assert!(
            why.contains("check the model id `hose`"),
            "{refusal:?}: {why}"
        );
        assert!(
            !why.contains("None") && !why.contains('{'),
            "{refusal:?}: {why}"
        );
    }
}

/// Item 7: a retired model is refused by `validate`, naming its retirement date
/// and successor; `--allow-retired` lets a gateway that still serves it run.
#[test]
fn issue14_retired_model_is_refused_with_its_successor() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = "version: 1\nagents:\n  researcher:\n    model: anthropic/claude-3-5-sonnet-latest\n    prompt: Research Rust.\n";
    let out = validate(dir.path(), yaml, &[]);
    crate::snapshot!("issue14_validate_retired_model", out);
    assert_eq!(out.status.code(), Some(2));

    let out = validate(dir.path(), yaml, &["--allow-retired"]);
    let text = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("called anyway"), "{text}");

    // `run` and `estimate` refuse it too, before any call.
    let file = dir.path().join("flow.yaml");
    for command in ["run", "estimate"] {
        let out = byok_flow(dir.path())
            .arg(command)
            .arg(&file)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{command}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("was retired on 2025-10-28"),
            "{command}"
        );
    }
}

/// Item 7: deprecation dates from a prices file: a warning before the date, an
/// error after it, a fallback's too, and a successor chain followed past a
/// successor that is retired itself.
#[test]
fn issue14_deprecated_model_warns_until_its_retirement_date() {
    let dir = tempfile::tempdir().unwrap();
    let prices = dir.path().join("prices.json");
    std::fs::write(
        &prices,
        r#"{"models": {
            "openai/soon": {"input": 1, "output": 2, "deprecated": "2001-01-01", "retired": "2999-01-01", "successor": "openai/next"},
            "openai/gone": {"input": 1, "output": 2, "retired": "2001-01-01", "successor": "openai/soon"},
            "openai/next": {"input": 1, "output": 2}
        }}"#,
    )
    .unwrap();
    let yaml = "version: 1\nagents:\n  a:\n    model: openai/soon\n    prompt: x\n    fallback: [openai/gone]\n";
    let out = validate(dir.path(), yaml, &["--prices", prices.to_str().unwrap()]);
    let text = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(
        text.contains("`openai/soon` is deprecated and retires on 2999-01-01"),
        "{text}"
    );
    assert!(
        text.contains("use `openai/next`, its successor, before then"),
        "{text}"
    );
    assert!(
        text.contains("`openai/gone` was retired on 2001-01-01"),
        "{text}"
    );
    assert!(text.contains("use `openai/soon`, its successor"), "{text}");
}

/// Item 7: a provider's 404 for a retired model says it is retired, with the
/// successor (here run with `--allow-retired`, as against a gateway).
#[test]
fn issue14_provider_404_for_a_retired_model_says_so() {
    let server = FakeServer::start();
    server.serve_only(&["claude-sonnet-4-6"], Refusal::Anthropic);
    let dir = tempfile::tempdir().unwrap();
    let agents = "  a:\n    model: anthropic/claude-3-5-sonnet-latest\n    prompt: \"old model\"\n";
    let out = run(dir.path(), &workflow(&server, agents), &["--allow-retired"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let why = reason(&out, "a");
    assert!(
        why.starts_with("anthropic 404 not_found_error: model: claude-3-5-sonnet-latest"),
        "{why}"
    );
    assert!(
        why.contains("`anthropic/claude-3-5-sonnet-latest` was retired on 2025-10-28: use `anthropic/claude-sonnet-4-6`, its successor"),
        "{why}"
    );

    // Gemini's own 404, for a model it shut down.
    let gemini = FakeServer::start();
    gemini.serve_only(&["gemini-3.5-flash"], Refusal::Gemini);
    let agents = "  a:\n    model: gemini/gemini-2.0-flash\n    prompt: \"old model\"\n";
    let out = run(dir.path(), &workflow(&gemini, agents), &["--allow-retired"]);
    let why = reason(&out, "a");
    assert!(
        why.starts_with("gemini 404 NOT_FOUND: models/gemini-2.0-flash is not found")
            && why.contains("`gemini/gemini-2.0-flash` was retired on 2026-06-01: use `gemini/"),
        "{why}"
    );

    // A retirement the table does not know yet: the server's words say so.
    let groq = FakeServer::start();
    groq.serve_only(&["house"], Refusal::GroqDecommissioned);
    let agents = "  a:\n    model: local/llama-old\n    prompt: \"old model\"\n";
    let out = run(dir.path(), &workflow(&groq, agents), &[]);
    let why = reason(&out, "a");
    assert!(
        why.starts_with(
            "local 400 model_decommissioned: The model `llama-old` has been decommissioned"
        ) && why.contains("local says `llama-old` is retired"),
        "{why}"
    );
}

/// Item 7, done when: the examples name models served today. GPT-4o stays the
/// writer (the project's example), so the one warning left is its announced
/// retirement; nothing in them is retired. When this fails because a model
/// retired, move the examples (and `src/init/research.yaml`) to its successor.
#[test]
fn issue14_examples_name_no_retired_model() {
    let dir = tempfile::tempdir().unwrap();
    let mut files = ["research.yaml", "pr-review.yaml", "market-scan.yaml"]
        .map(example)
        .to_vec();
    // What `byok-flow init` writes into people's repositories.
    files.push(crate::support::repo().join("src/init/research.yaml"));
    // On the real date, not the tests' pinned one: this is the test that fails
    // when a model of the examples retires.
    let out = byok_flow(dir.path())
        .env_remove("BYOK_FLOW_TODAY")
        .args(["validate", "--json"])
        .args(&files)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    let report: serde_json::Value = serde_json::from_str(&text).unwrap();
    for file in report["files"].as_array().unwrap() {
        assert_eq!(file["errors"], 0, "{file}");
        for d in file["diagnostics"].as_array().unwrap() {
            assert_eq!(d["code"], "workflow::deprecated-model", "{d}");
            assert!(
                d["message"]
                    .as_str()
                    .unwrap()
                    .starts_with("`openai/gpt-4o` is deprecated"),
                "{d}"
            );
        }
    }
}

/// Item 8: Opus 4.1 and the 4.5 and 4.6 families take `temperature` or `top_p`,
/// not both: byok-flow sends `temperature`, says so at `-v`, and `validate` warns.
#[test]
fn issue14_anthropic_temperature_and_top_p_are_not_sent_together() {
    let server = FakeServer::start();
    let dir = tempfile::tempdir().unwrap();
    let agents = "  a:\n    model: anthropic/claude-sonnet-4-5\n    prompt: \"both params\"\n    temperature: 0.3\n    top_p: 0.9\n  b:\n    model: anthropic/claude-3-7-sonnet-20250219\n    prompt: \"older model\"\n    temperature: 0.3\n    top_p: 0.9\n  c:\n    model: anthropic/claude-opus-4-7\n    prompt: \"no sampling\"\n    temperature: 0.3\n";
    let yaml = workflow(&server, agents);
    let out = validate(dir.path(), &yaml, &["--allow-retired"]);
    let text = stderr(&out);
    // (Diagnostics wrap at the terminal's width: short fragments.)
    assert!(
        text.contains("`claude-sonnet-4-5` takes `temperature` or `top_p`, not both"),
        "{text}"
    );
    assert!(
        text.contains("12 │     top_p: 0.9"),
        "points at `top_p`: {text}"
    );
    assert!(
        text.contains("`claude-opus-4-7` takes no `temperature` or `top_p`"),
        "{text}"
    );
    assert_eq!(text.matches("workflow::sampling").count(), 2, "{text}");

    let file = dir.path().join("flow.yaml");
    std::fs::write(&file, &yaml).unwrap();
    let out = byok_flow(dir.path())
        .args(["run", "--json", "-v", "--allow-retired", "--allow-host"])
        .arg(server.addr.to_string())
        .arg(&file)
        .env("ANTHROPIC_KEY", crate::providers::ANTHROPIC_KEY)
        .env("OPENAI_KEY", OPENAI_KEY)
        .env("GEMINI_KEY", crate::providers::GEMINI_KEY)
        .output()
        .unwrap();
    let log = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{log}");
    assert!(
        log.contains("anthropic/claude-sonnet-4-5: left out `top_p`: it takes `temperature` or `top_p`, not both"),
        "{log}"
    );
    assert!(
        log.contains(
            "anthropic/claude-opus-4-7: left out `temperature`: it takes no sampling parameters"
        ),
        "{log}"
    );
    let body = |prompt: &str| {
        server
            .requests()
            .into_iter()
            .find(|r| r.body.to_string().contains(prompt))
            .unwrap()
            .body
    };
    let a = body("both params");
    assert_eq!(a["temperature"], 0.3);
    assert!(a.get("top_p").is_none(), "{a}");
    let b = body("older model");
    assert_eq!(
        (b["temperature"].clone(), b["top_p"].clone()),
        (0.3.into(), 0.9.into())
    );
    let c = body("no sampling");
    assert!(c.get("temperature").is_none(), "{c}");
}

/// Item 7: `prices` shows a model's dates and successor.
#[test]
fn issue14_prices_show_retirement_and_successor() {
    let dir = tempfile::tempdir().unwrap();
    let out = byok_flow(dir.path())
        .args(["prices", "anthropic/claude-3-5-sonnet-latest"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .map(|l| l[name.len()..].trim().to_string())
    };
    assert_eq!(field("deprecated").as_deref(), Some("2025-08-13"), "{text}");
    assert_eq!(field("retired").as_deref(), Some("2025-10-28"), "{text}");
    assert_eq!(
        field("successor").as_deref(),
        Some("anthropic/claude-sonnet-4-6"),
        "{text}"
    );
    let out = byok_flow(dir.path())
        .args(["prices", "anthropic"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let row = text
        .lines()
        .find(|l| l.starts_with("anthropic/claude-3-7-sonnet-20250219 "))
        .unwrap();
    assert!(row.ends_with("2026-02-19"), "{row}");
}

/// Item 7: `data/prices.json` is what `scripts/build-prices.py` builds from the
/// `LiteLLM` snapshot and `data/lifecycle.json` (so an edit of the lifecycle list
/// cannot be forgotten in the table), and a lifecycle entry the build cannot
/// trust stops it.
#[test]
#[ignore = "needs python3"]
fn issue14_price_table_is_what_the_script_builds_from_the_lifecycle_list() {
    let root = crate::support::repo();
    let script = root.join("scripts/build-prices.py");
    let out = std::process::Command::new("python3")
        .arg(&script)
        .output()
        .expect("python3 (install it: this test is ignored without it)");
    assert!(out.status.success(), "{}", stderr(&out));
    let built = String::from_utf8_lossy(&out.stdout);
    let committed = std::fs::read_to_string(root.join("data/prices.json")).unwrap();
    assert!(
        built == committed,
        "data/prices.json is stale: run `python3 scripts/build-prices.py > data/prices.json`"
    );
    let log = stderr(&out);
    assert!(
        log.contains(
            "corrected anthropic/claude-3-5-sonnet-20241022: retired 2025-10-01 -> 2025-10-28"
        ),
        "the lifecycle list wins over the map, and the change is listed: {log}"
    );

    let lifecycle: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("data/lifecycle.json")).unwrap())
            .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let bad = [
        (
            r#"{"retired": "28 Oct 2025", "source": "anthropic"}"#,
            "anthropic/claude-3-5-sonnet-20241022",
            "is not YYYY-MM-DD",
        ),
        (
            r#"{"deprecated": "2026-01-02", "retired": "2026-01-01", "source": "anthropic"}"#,
            "anthropic/claude-3-5-sonnet-20241022",
            "deprecated after it is retired",
        ),
        (
            r#"{"retired": "2026-01-01", "source": "anthropic"}"#,
            "anthropic/claude-no-such-model",
            "is not a model of the table",
        ),
        (
            r#"{"retired": "2026-01-01", "source": "a-rumour"}"#,
            "anthropic/claude-3-5-sonnet-20241022",
            "names no source",
        ),
    ];
    for (facts, model, expected) in bad {
        let mut edited = lifecycle.clone();
        edited["models"][model] = serde_json::from_str(facts).unwrap();
        let file = dir.path().join("lifecycle.json");
        std::fs::write(&file, edited.to_string()).unwrap();
        let out = std::process::Command::new("python3")
            .arg(&script)
            .arg(root.join("data/upstream/model_prices_and_context_window.json"))
            .arg(root.join("data/upstream/prices-core.json"))
            .arg(&file)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{model} {facts}");
        assert!(
            stderr(&out).contains(expected),
            "{expected}: {}",
            stderr(&out)
        );
    }
}

/// Item 7: retirements are judged as of `BYOK_FLOW_TODAY` when it is set: what
/// breaks on a day to come (GPT-4o, the examples' writer, on its retirement day),
/// and what was only deprecated the day before; a value that is not a day is
/// refused, not ignored.
#[test]
fn issue14_retirements_are_judged_as_of_byok_flow_today() {
    let dir = tempfile::tempdir().unwrap();
    let research = example("research.yaml");
    let on = |day: &str| {
        byok_flow(dir.path())
            .env("BYOK_FLOW_TODAY", day)
            .arg("validate")
            .arg(&research)
            .output()
            .unwrap()
    };
    let out = on("2027-01-14");
    let text = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(
        text.contains("`openai/gpt-4o` was retired on 2027-01-14: requests to it fail"),
        "{text}"
    );
    let out = on("2027-01-13");
    let text = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("`openai/gpt-4o` is deprecated and retires on 2027-01-14"),
        "{text}"
    );
    for bad in ["tomorrow", "2027-1-14", ""] {
        let out = on(bad);
        let text = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{bad}: {text}");
        assert!(
            text.contains(&format!("BYOK_FLOW_TODAY={bad} is not a day"))
                && text.contains("YYYY-MM-DD"),
            "{bad}: {text}"
        );
    }
    // `prices` reads the dates as of the same day.
    let out = byok_flow(dir.path())
        .env("BYOK_FLOW_TODAY", "2027-02-01")
        .args(["prices", "openai/gpt-4o"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines()
            .any(|l| l.starts_with("retired ") && l.trim_end().ends_with("2027-01-14")),
        "{text}"
    );
}
