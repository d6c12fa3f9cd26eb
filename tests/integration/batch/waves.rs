//! One run through the batch APIs: waves by DAG depth, prices, failures, limits.

use super::{Place, agent, record, stderr};
use crate::support::fake::batch::BatchKnobs;
use crate::support::fake::{FakeServer, Fault};

/// Three providers in the first wave, one agent downstream of all three in the second.
const SQUAD: &str = "  a: {model: anthropic/claude-haiku-4-5, prompt: \"alpha task\", stream: false, cache: off}\n  b: {model: openai/gpt-4o-mini, prompt: \"beta task\", stream: false, cache: off}\n  c: {model: gemini/gemini-3.5-flash, prompt: \"gamma task\", stream: false, cache: off}\n  d: {model: anthropic/claude-haiku-4-5, prompt: \"join {{agents.a.output}} {{agents.b.output}} {{agents.c.output}}\", stream: false, cache: off}\n";

#[test]
fn a_squad_goes_in_waves_one_batch_per_provider_at_half_price() {
    let server = FakeServer::start();
    let place = Place::new();
    // Long prompts on dear models, so the dollars are far above the record's rounding
    // (prompt caching off: its writes would bill the direct run's first call dearer).
    let long = "word ".repeat(2000);
    let squad = SQUAD
        .replace("task\"", &format!("task {long}\""))
        .replace("claude-haiku-4-5", "claude-sonnet-4-5")
        .replace("gpt-4o-mini", "gpt-4o")
        .replace("gemini-3.5-flash", "gemini-2.5-pro");
    let out = place.run(&server, &squad, &["--no-cache"], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let run = record(&out);
    for name in ["a", "b", "c", "d"] {
        assert_eq!(agent(&run, name)["status"], "succeeded", "{run}");
    }
    // Wave 1: one batch per provider; wave 2: the one agent that needs all three.
    assert_eq!(server.batch_count("create"), 4, "{:?}", server.batch_log());
    assert_eq!(server.batch_count("upload"), 1);
    assert_eq!(
        server.batch_count("delete"),
        1,
        "the OpenAI input file is deleted"
    );
    let steps = server.batch_log();
    let creates: Vec<usize> = (0..steps.len())
        .filter(|i| steps[*i].starts_with("create"))
        .collect();
    // Wave 2 is created after the results of every batch of wave 1 were read.
    let wave1_results = steps[..creates[3]]
        .iter()
        .filter(|l| l.starts_with("results"))
        .count();
    assert!(wave1_results >= 3, "d went before its inputs: {steps:?}");
    // Every request went to a batch endpoint: no direct call.
    assert!(
        server
            .requests()
            .iter()
            .all(|r| r.path.contains("batch") || r.path.contains("/files"))
    );
    // d's prompt holds its inputs' replies.
    let d = &server.batches()[3];
    assert_eq!(d.results.len(), 1);
    // The state of a finished run is removed.
    assert!(place.state_files().is_empty(), "{:?}", place.state_files());

    // The same squad called directly bills the same tokens at twice the price.
    let place2 = Place::new();
    let yaml = crate::providers::workflow(&server, &squad);
    std::fs::write(place2.path().join("flow.yaml"), yaml).unwrap();
    let host = server.url().trim_start_matches("http://").to_string();
    let direct = place2
        .command(
            &[
                "run",
                "flow.yaml",
                "--json",
                "--no-cache",
                "--allow-host",
                &host,
            ],
            &[],
        )
        .output()
        .unwrap();
    assert!(direct.status.success(), "{}", stderr(&direct));
    let direct = record(&direct);
    for name in ["a", "b", "c"] {
        let batch = agent(&run, name)["cost_usd"].as_f64().unwrap();
        let full = agent(&direct, name)["cost_usd"].as_f64().unwrap();
        assert!(full > 0.0);
        assert!(
            (batch / full - 0.5).abs() < 0.01,
            "{name}: {batch} vs {full}"
        );
    }
}

#[test]
fn failures_inside_a_batch_are_retried_in_the_next_batch_then_the_fallback() {
    let server = FakeServer::start();
    server.script("overloaded one", [Fault::status(529)]);
    server.script("expiring one", [Fault::Expired]);
    server.script("missing one", [Fault::NoResult]);
    server.script("hopeless one", [Fault::status(529), Fault::status(529)]);
    server.script("refused one", [Fault::status(400)]);
    let agents = "  o: {model: anthropic/claude-haiku-4-5, prompt: \"overloaded one\"}\n  e: {model: openai/gpt-4o-mini, prompt: \"expiring one\"}\n  m: {model: gemini/gemini-3.5-flash, prompt: \"missing one\"}\n  h: {model: anthropic/claude-haiku-4-5, prompt: \"hopeless one\", retries: 1, fallback: [openai/gpt-4o-mini]}\n  r: {model: anthropic/claude-haiku-4-5, prompt: \"refused one\", retries: 3}\n";
    let place = Place::new();
    let out = place.run(&server, agents, &["--keep-going", "--no-cache"], &[]);
    let run = record(&out);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    for name in ["o", "e", "m"] {
        let a = agent(&run, name);
        assert_eq!(a["status"], "succeeded", "{a}");
        assert_eq!(a["attempts"].as_array().unwrap().len(), 2, "{a}");
    }
    let h = agent(&run, "h");
    assert_eq!(h["status"], "succeeded", "{h}");
    assert_eq!(h["answered_by"], "openai/gpt-4o-mini", "{h}");
    assert_eq!(h["attempts"].as_array().unwrap().len(), 3, "{h}");
    // Not retryable: one attempt, the provider's own message.
    let r = agent(&run, "r");
    assert_eq!(r["status"], "failed");
    assert_eq!(r["attempts"].as_array().unwrap().len(), 1, "{r}");
    assert!(
        r["reason"]
            .as_str()
            .unwrap()
            .contains("invalid_request_error"),
        "{r}"
    );
    // Each retry went into a later batch; no request was ever sent twice in one.
    for batch in server.batches() {
        let mut ids: Vec<_> = batch.results.iter().map(|(id, _)| id.clone()).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), batch.results.len());
    }
    let m = agent(&run, "m")["attempts"][0]["outcome"].to_string();
    assert!(m.contains("no result came back"), "{m}");
}

#[test]
fn results_in_any_order_with_a_stranger_are_matched_by_custom_id() {
    let server = FakeServer::start();
    server.set_batch_knobs(BatchKnobs {
        stray_result: true,
        ..BatchKnobs::default()
    });
    let agents = (0..6).fold(String::new(), |mut s, i| {
        s.push_str(&format!(
            "  w{i}: {{model: anthropic/claude-haiku-4-5, prompt: \"write part {i} now\"}}\n"
        ));
        s
    });
    let place = Place::new();
    let out = place.run(&server, &agents, &["--no-cache"], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let run = record(&out);
    for i in 0..6 {
        let a = agent(&run, &format!("w{i}"));
        // Results come back reversed: each still gets its own.
        assert!(
            a["output"]
                .as_str()
                .unwrap()
                .contains(&format!("write part {i} now")),
            "{a}"
        );
    }
    assert_eq!(server.batch_count("create"), 1);
    assert!(
        stderr(&out).contains("custom_id byok-flow never sent; ignored"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn batches_are_split_at_the_request_and_byte_limits() {
    let server = FakeServer::start();
    let agents = (0..5).fold(String::new(), |mut s, i| {
        s.push_str(&format!(
            "  w{i}: {{model: openai/gpt-4o-mini, prompt: \"item {i}\"}}\n"
        ));
        s
    });
    let place = Place::new();
    let out = place.run(
        &server,
        &agents,
        &["--no-cache"],
        &[("BYOK_FLOW_BATCH_MAX_REQUESTS", "2")],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(server.batch_count("create"), 3, "{:?}", server.batch_log());
    assert_eq!(server.batch_count("upload"), 3);

    let server = FakeServer::start();
    let place = Place::new();
    let out = place.run(
        &server,
        &agents,
        &["--no-cache"],
        &[("BYOK_FLOW_BATCH_MAX_BYTES", "300")],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(server.batch_count("create"), 5, "{:?}", server.batch_log());
}

#[test]
fn the_budget_reserves_at_batch_prices() {
    // Worst case: 4,000 output tokens of claude-sonnet-4-5 at $15/M = $0.06 directly,
    // $0.03 in a batch. A $0.04 ceiling fits it only in a batch.
    let server = FakeServer::start();
    let agents = "  a: {model: anthropic/claude-sonnet-4-5, prompt: \"one\", max_tokens: 4000}\n";
    let place = Place::new();
    let out = place.run(&server, agents, &["--no-cache", "--max-usd", "0.04"], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(server.batch_count("create"), 1);
    let direct = place
        .command(
            &[
                "run",
                "flow.yaml",
                "--json",
                "--no-cache",
                "--max-usd",
                "0.04",
                "--allow-host",
                server.url().trim_start_matches("http://"),
            ],
            &[],
        )
        .output()
        .unwrap();
    assert_eq!(direct.status.code(), Some(3), "{}", stderr(&direct));
}

#[test]
fn a_batch_the_provider_refuses_fails_its_agents_with_its_message() {
    let server = FakeServer::start();
    server.set_batch_knobs(BatchKnobs {
        refuse_create: Some((400, "invalid_request_error".into())),
        ..BatchKnobs::default()
    });
    let place = Place::new();
    let out = place.run(
        &server,
        "  a: {model: anthropic/claude-haiku-4-5, prompt: \"one\"}\n",
        &["--no-cache"],
        &[],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let a = agent(&record(&out), "a").clone();
    let reason = a["reason"].as_str().unwrap();
    assert!(
        reason.contains("the batch was not created") && reason.contains("batch refused"),
        "{reason}"
    );

    let server = FakeServer::start();
    server.set_batch_knobs(BatchKnobs {
        fail_batch: Some("line 1: model not found".into()),
        ..BatchKnobs::default()
    });
    let place = Place::new();
    let out = place.run(
        &server,
        "  a: {model: openai/gpt-4o-mini, prompt: \"one\"}\n",
        &["--no-cache"],
        &[],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let reason = agent(&record(&out), "a")["reason"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        reason.contains("refused batch") && reason.contains("model not found"),
        "{reason}"
    );
}

#[test]
fn a_results_url_on_another_host_is_fetched_only_if_the_key_may_go_there() {
    let server = FakeServer::start();
    let other = FakeServer::start_on("127.0.0.2");
    server.set_batch_knobs(BatchKnobs {
        results_base: Some(other.url()),
        ..BatchKnobs::default()
    });
    let place = Place::new();
    let out = place.run(
        &server,
        "  a: {model: anthropic/claude-haiku-4-5, prompt: \"one\"}\n",
        &["--no-cache"],
        &[],
    );
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(
        other.requests().is_empty(),
        "the key went to the other host"
    );
    let reason = agent(&record(&out), "a")["reason"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(reason.contains("127.0.0.2"), "{reason}");
    // Allowed by the person running: fetched there (the fake there has no such batch).
    let out = place.run(
        &server,
        "  a: {model: anthropic/claude-haiku-4-5, prompt: \"one\"}\n",
        &[
            "--no-cache",
            "--allow-host",
            other.url().trim_start_matches("http://"),
        ],
        &[],
    );
    assert!(!other.requests().is_empty(), "{}", stderr(&out));
}

#[test]
fn a_provider_without_a_batch_api_is_an_error_naming_the_agent_unless_batch_false() {
    let server = FakeServer::start();
    let place = Place::new();
    let agents = "  a: {model: anthropic/claude-haiku-4-5, prompt: \"one\"}\n  l: {model: local/llama3, prompt: \"two\"}\n";
    let out = place.run(&server, agents, &[], &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("agent `l`: provider `local` has no batch API")
            && err.contains("batch: false"),
        "{err}"
    );
    assert!(err.contains("flow.yaml:"), "{err}");
    assert!(server.requests().is_empty());
    // `batch: true` in the file: `validate` says so too, without `--batch`.
    let file = place.path().join("on.yaml");
    let on = "  l: {model: local/llama3, prompt: \"two\", batch: true}\n";
    std::fs::write(&file, crate::providers::workflow(&server, on)).unwrap();
    let out = place
        .command(&["validate", "on.yaml"], &[])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("agent `l`: provider `local` has no batch API"),
        "{}",
        stderr(&out)
    );
    let agents = "  a: {model: anthropic/claude-haiku-4-5, prompt: \"one\"}\n  l: {model: local/llama3, prompt: \"two\", batch: false}\n";
    let out = place.run(&server, agents, &["--no-cache"], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(server.batch_count("create"), 1);
    assert!(
        server
            .requests()
            .iter()
            .any(|r| r.path == "/local/v1/chat/completions")
    );
}

#[test]
fn estimate_batch_shows_the_regular_total_and_the_saving() {
    let server = FakeServer::start();
    let place = Place::new();
    // claude-sonnet-4-5 has no batch prices in the table: half the regular price.
    let agents = "  a: {model: anthropic/claude-sonnet-4-5, prompt: \"summarise the week\", max_tokens: 2000}\n  b: {model: anthropic/claude-sonnet-4-5, prompt: \"edit {{agents.a.output}}\", max_tokens: 1000}\n";
    std::fs::write(
        place.path().join("flow.yaml"),
        crate::providers::workflow(&server, agents),
    )
    .unwrap();
    let out = place
        .command(&["estimate", "flow.yaml", "--batch", "--json"], &[])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let estimate: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let batch = estimate["total"]["expected_usd"].as_f64().unwrap();
    let regular = estimate["batch"]["regular_expected_usd"].as_f64().unwrap();
    assert!(
        (batch / regular - 0.5).abs() <= 0.01,
        "{batch} vs {regular}"
    );
    assert_eq!(estimate["batch"]["saving_percent"], 50.0);
    assert_eq!(estimate["agents"][0]["batch"], true);
    let table = place
        .command(&["estimate", "flow.yaml", "--batch"], &[])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(
        text.contains("anthropic/claude-sonnet-4-5 (batch)") && text.contains("the batch saves"),
        "{text}"
    );
    assert!(server.requests().is_empty());
}

/// The canary keys: a reply, an errored result and a refused create that quote
/// the key reach no output, log (`-vvv`), state file, cache entry or history.
#[test]
fn a_key_quoted_by_a_batch_reaches_no_output_state_cache_or_history() {
    let server = FakeServer::start();
    for marker in ["quote me a", "quote me b", "quote me c"] {
        server.script(marker, [Fault::Reply("your key is {KEY} ok".into())]);
    }
    server.script("echo me", [Fault::EchoKey(400)]);
    let agents = "  a: {model: anthropic/claude-haiku-4-5, prompt: \"quote me a\"}\n  b: {model: openai/gpt-4o-mini, prompt: \"quote me b\"}\n  c: {model: gemini/gemini-3.5-flash, prompt: \"quote me c\"}\n  d: {model: openai/gpt-4o-mini, prompt: \"echo me\", retries: 0}\n";
    let place = Place::new();
    // `Place::run` checks stdout, stderr and every file under the place.
    let out = place.run(&server, agents, &["--keep-going"], &[]);
    let run = record(&out);
    for name in ["a", "b", "c"] {
        let a = agent(&run, name);
        assert_eq!(a["status"], "succeeded", "{a}");
        assert!(a["output"].as_str().unwrap().contains("your key is"), "{a}");
    }
    let d = agent(&run, "d");
    assert_eq!(d["status"], "failed", "{d}");
    assert!(
        d["reason"]
            .as_str()
            .unwrap()
            .contains("Incorrect API key provided"),
        "{d}"
    );
    // A create refused with the key in its message.
    let server = FakeServer::start();
    server.set_batch_knobs(BatchKnobs {
        echo_key_on_create: true,
        ..BatchKnobs::default()
    });
    let out = place.run(&server, agents, &["--keep-going"], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
}
