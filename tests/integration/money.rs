//! Money under faults (SPEC §6; issues 13 and 14): the real binary against the fake
//! server, whose own log of what it billed is the provider's side of the ledger.
//! Spend never passes the ceiling, whatever the replies look like; a reply without
//! usage is counted locally and marked; unpriced is never $0.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Output, Stdio};
use std::time::Duration;

use byok_flow::cost::{Usd, rate_per_million};
use serde_json::Value;

use crate::providers::{ANTHROPIC_KEY, GEMINI_KEY, OPENAI_KEY, workflow};
use crate::support::byok_flow_process;
use crate::support::fake::{Bill, Billing, FakeServer, Fault};

/// A provider `sim` on the fake server (no key), with two priced models.
fn sim(server: &FakeServer, prices: &str, agents: &str) -> String {
    format!(
        "version: 1\nproviders:\n  sim:\n    type: openai-compatible\n    base_url: \"{}/local/v1\"\n    key: none\n    pricing:\n{prices}agents:\n{agents}",
        server.url()
    )
}

/// `byok-flow run` of `yaml` against the fake server: every key set, back-off
/// waits at zero, keys allowed to the fake's address, the history in `dir`.
fn run(dir: &Path, server: &FakeServer, yaml: &str, args: &[&str]) -> Output {
    let file = dir.join("flow.yaml");
    std::fs::write(&file, yaml).unwrap();
    command(dir, server)
        .arg("run")
        .arg(&file)
        .args(args)
        .output()
        .unwrap()
}

fn command(dir: &Path, server: &FakeServer) -> std::process::Command {
    let mut cmd = byok_flow_process(dir);
    cmd.env("ANTHROPIC_KEY", ANTHROPIC_KEY)
        .env("OPENAI_KEY", OPENAI_KEY)
        .env("GEMINI_KEY", GEMINI_KEY)
        .env("BYOK_FLOW_BACKOFF_SCALE", "0")
        .env("BYOK_FLOW_HISTORY", dir.join("history.sqlite"))
        .env("BYOK_FLOW_ALLOW_HOSTS", server.addr.to_string());
    cmd
}

fn runs(dir: &Path, args: &[&str]) -> Output {
    byok_flow_process(dir)
        .env("BYOK_FLOW_HISTORY", dir.join("history.sqlite"))
        .arg("runs")
        .args(args)
        .output()
        .unwrap()
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn agent<'a>(record: &'a Value, name: &str) -> &'a Value {
    record["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == name)
        .unwrap_or_else(|| panic!("no agent {name}"))
}

/// What the fake billed, at `prices` (dollars per million, in, out) per model.
fn provider_total(bills: &[(String, Bill)], prices: &[(&str, f64, f64)]) -> Usd {
    bills
        .iter()
        .map(|(model, bill)| {
            let (_, input, output) = prices
                .iter()
                .find(|(m, _, _)| m == model)
                .unwrap_or_else(|| panic!("no price for {model}"));
            let input_tokens = bill.input + bill.cache_read + bill.cache_write;
            Usd::of_tokens(input_tokens, rate_per_million(*input))
                + Usd::of_tokens(bill.output, rate_per_million(*output))
        })
        .sum()
}

/// The estimate's `max_usd` of every agent of `yaml`: what its first attempt reserves.
fn reservations(dir: &Path, server: &FakeServer, yaml: &str) -> Vec<f64> {
    let file = dir.join("estimate.yaml");
    std::fs::write(&file, yaml).unwrap();
    let out = command(dir, server)
        .args(["estimate", "--json"])
        .arg(&file)
        .output()
        .unwrap();
    json(&out)["agents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["max_usd"].as_f64().unwrap())
        .collect()
}

/// Issue 13, item 8: a quarter or more of the replies are billed and then break
/// (a whole body cut after its usage, one with none, a truncated stream, a dropped
/// connection), some agents' first JSON does not match their schema (a correction
/// call), some fall back to a dearer model after errors. Whatever the ceiling, what
/// the fake billed, by its own log, never passes it.
#[test]
fn issue13_malformed_billed_replies_never_pass_the_ceiling() {
    let server = FakeServer::start();
    let dir = tempfile::tempdir().unwrap();
    // Every reply bills exactly what its reservation counted: no slack to hide in.
    server.set_billing(Billing {
        input_percent: Some(100),
        output_at_max: true,
        omit_usage: false,
        ..Billing::default()
    });
    let prices = "      m: {input: 40, output: 40}\n      dear: {input: 80, output: 80}\n";
    let faults = [
        (Fault::MalformedWithUsage, false),
        (Fault::TruncateStream, true),
        (Fault::Malformed, false),
        (Fault::DropMidStream, true),
    ];
    let mut agents = String::new();
    for i in 0..24 {
        let (fault, stream) = &faults[i % faults.len()];
        let marker = format!("agent-{i:02}-");
        let mut extra = format!("    stream: {stream}\n");
        match i % 6 {
            0 | 3 => server.script(&marker, [fault.clone()]),
            1 => {
                extra.push_str("    output: json\n    schema: {type: object, required: [answer], properties: {answer: {type: string}}}\n");
                server.script(&marker, [Fault::WrongJson]);
            }
            2 => {
                extra.push_str("    fallback: [sim/dear]\n");
                server.script(&marker, [Fault::status(500), Fault::status(500)]);
            }
            _ => {}
        }
        agents.push_str(&format!(
            "  a{i:02}:\n    model: sim/m\n    prompt: \"{marker} Write three lines about topic {i:02}.\"\n    max_tokens: 300\n    expected_output_tokens: 1\n    retries: 1\n{extra}"
        ));
    }
    let yaml = sim(&server, prices, &agents);
    let one = reservations(dir.path(), &server, &yaml)
        .into_iter()
        .fold(0.0, f64::max);
    let model_prices = [("m", 40.0, 40.0), ("dear", 80.0, 80.0)];
    let mut skipped_some = false;
    for share in [3.5, 6.25, 9.0] {
        let before = server.billed().len();
        let ceiling = one * share;
        let out = run(
            dir.path(),
            &server,
            &yaml,
            &[
                "--json",
                "-q",
                "--no-cache",
                "--keep-going",
                "--concurrency",
                "4",
                "--max-usd",
                &format!("{ceiling:.6}"),
            ],
        );
        let record = json(&out);
        let bills = server.billed()[before..].to_vec();
        let spent = provider_total(&bills, &model_prices);
        let ceiling = Usd::from_dollars(ceiling);
        assert!(
            spent <= ceiling,
            "the provider billed {spent}, over the {ceiling} ceiling\n{}",
            text(&out.stderr)
        );
        // The run says as much as it knows: never less than what was billed.
        let most = record["max_cost_usd"]
            .as_f64()
            .or(record["cost_usd"].as_f64())
            .unwrap();
        assert!(
            Usd::from_dollars(most) >= spent,
            "{most} < {spent}: {record}"
        );
        skipped_some |= record["status"] == "budget_reached";
        // Faults were met and billed: more bills than answers.
        let answered = record["agents"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["status"] == "succeeded")
            .count();
        assert!(bills.len() > answered, "{} bills", bills.len());
    }
    assert!(skipped_some, "no ceiling was tight enough to matter");
}

/// Issue 13, item 8: a 200 whose body does not parse was billed. Its usage, when
/// the body holds it, is used; without it, the bill is unknown and the whole
/// reservation is kept as spent.
#[test]
fn issue13_malformed_billed_reply_keeps_reservation() {
    let server = FakeServer::start();
    let dir = tempfile::tempdir().unwrap();
    server.set_billing(Billing {
        input_percent: Some(100),
        output_at_max: true,
        omit_usage: false,
        ..Billing::default()
    });
    server.script("with-usage", [Fault::MalformedWithUsage]);
    server.script("without-usage", [Fault::Malformed]);
    let yaml = sim(
        &server,
        "      m: {input: 10, output: 20}\n",
        "  readable:\n    model: sim/m\n    prompt: \"with-usage Say hello\"\n    max_tokens: 100\n    stream: false\n  unreadable:\n    model: sim/m\n    prompt: \"without-usage Say hello\"\n    max_tokens: 100\n    stream: false\n",
    );
    let reserved = reservations(dir.path(), &server, &yaml);
    let out = run(
        dir.path(),
        &server,
        &yaml,
        &[
            "--json",
            "--no-cache",
            "--concurrency",
            "1",
            "--max-usd",
            "1",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let record = json(&out);
    let bills = server.billed();
    assert_eq!(
        bills.len(),
        4,
        "each agent: a broken reply, then a good one"
    );
    let price = [("m", 10.0, 20.0)];

    // Its usage was readable: the agent is billed both replies, exactly.
    let readable = agent(&record, "readable");
    assert_eq!(
        Usd::from_dollars(readable["cost_usd"].as_f64().unwrap()),
        provider_total(&bills[..2], &price)
    );
    assert_eq!(readable.get("counted_locally"), None);
    assert_eq!(readable.get("bill_unknown"), None);

    // No usage in it: approximate tokens (marked), and the most it may have cost:
    // the broken attempt's whole reservation plus the good one's bill.
    let unreadable = agent(&record, "unreadable");
    assert_eq!(unreadable["counted_locally"], true);
    assert_eq!(unreadable["bill_unknown"], true);
    let most = Usd::from_dollars(unreadable["max_cost_usd"].as_f64().unwrap());
    let second = provider_total(&bills[3..], &price);
    assert_eq!(most, Usd::from_dollars(reserved[1]) + second);
    assert!(most >= provider_total(&bills[2..], &price));
    let usd = |v: &Value| Usd::from_dollars(v.as_f64().unwrap());
    assert_eq!(
        usd(&record["max_cost_usd"]),
        usd(&readable["cost_usd"]) + usd(&unreadable["max_cost_usd"])
    );
    let stderr = text(&out.stderr);
    assert!(
        stderr
            .contains("`unreadable`: a call was cut off after it was sent, so its bill is unknown"),
        "{stderr}"
    );
    assert!(stderr.contains(", up to $"), "{stderr}");
}

/// Issue 13, item 9: a server that bills 1.3 times the input byok-flow counted.
/// The first reply teaches the ratio and later reservations scale by it, so with
/// one call at a time the ceiling holds at every budget.
#[test]
fn issue13_input_billed_above_the_count_is_learned() {
    let server = FakeServer::start();
    let dir = tempfile::tempdir().unwrap();
    server.set_billing(Billing {
        input_percent: Some(130),
        output_at_max: true,
        omit_usage: false,
        ..Billing::default()
    });
    // Input is all that costs: the overshoot is all in the input.
    let mut agents = String::new();
    for i in 0..6 {
        agents.push_str(&format!(
            "  a{i}:\n    model: sim/m\n    prompt: \"agent-{i}- Summarise the quarterly report for the board in plain words.\"\n    max_tokens: 10\n    expected_output_tokens: 1\n"
        ));
    }
    let yaml = sim(&server, "      m: {input: 100, output: 0}\n", &agents);
    let one = reservations(dir.path(), &server, &yaml)
        .into_iter()
        .fold(0.0, f64::max);
    // Without the ratio, a ceiling a little under 5.2 reservations lets a fourth
    // agent start at 4.9 and bill to 5.2.
    let ceilings = (0..13).map(|step| one * (2.5 + 0.25 * f64::from(step)));
    let skipped = sweep(dir.path(), &server, &yaml, ("m", 100.0, 0.0), ceilings);
    assert!(skipped > 0);
}

/// Runs `yaml` one call at a time under each ceiling in turn, checking that what
/// the server billed for `price` (`model`, input and output per million) never
/// passes it and that the record says what was billed; the agents skipped in all.
fn sweep(
    dir: &Path,
    server: &FakeServer,
    yaml: &str,
    price: (&str, f64, f64),
    ceilings: impl Iterator<Item = f64>,
) -> usize {
    let mut skipped = 0;
    for (step, ceiling) in ceilings.enumerate() {
        let before = server.billed().len();
        let out = run(
            dir,
            server,
            yaml,
            &[
                "--json",
                "-q",
                "--no-cache",
                "--concurrency",
                "1",
                "--max-usd",
                &format!("{ceiling:.6}"),
            ],
        );
        let record = json(&out);
        let spent = provider_total(&server.billed()[before..], &[price]);
        assert!(
            spent <= Usd::from_dollars(ceiling),
            "billed {spent} over {ceiling} ({step})\n{}",
            text(&out.stderr)
        );
        assert_eq!(
            Usd::from_dollars(record["cost_usd"].as_f64().unwrap()),
            spent,
            "the record says what was billed"
        );
        skipped += record["agents"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["status"] == "skipped")
            .count();
    }
    skipped
}

/// Issue 14, item 2: servers that report no usage (an OpenAI-compatible one that
/// ignores `stream_options.include_usage`, an Anthropic-compatible one without
/// `usage` in `message_delta`, a Gemini stream without `usageMetadata`; whole
/// replies too). Their tokens are counted locally, priced and marked in the
/// record, the closing table and the history, with one warning per provider.
#[test]
fn issue14_replies_without_usage_are_counted_locally_and_marked() {
    let server = FakeServer::start();
    let dir = tempfile::tempdir().unwrap();
    server.set_billing(Billing {
        omit_usage: true,
        ..Billing::default()
    });
    let mut agents = String::new();
    for (name, model) in [
        ("claude", "anthropic/claude-sonnet-4-5"),
        ("gpt", "openai/gpt-4o"),
        ("gemini", "gemini/gemini-3.5-flash"),
    ] {
        for stream in [true, false] {
            agents.push_str(&format!(
                "  {name}-{stream}:\n    model: {model}\n    prompt: \"marker-{name}-{stream} Say hello to the fake server please\"\n    max_tokens: 100\n    stream: {stream}\n"
            ));
        }
    }
    let yaml = workflow(&server, &agents);
    let out_dir = dir.path().join("out");
    let out = run(
        dir.path(),
        &server,
        &yaml,
        &[
            "--json",
            "--no-cache",
            "--max-usd",
            "1",
            "--out",
            out_dir.to_str().unwrap(),
        ],
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let record = json(&out);
    let on_disk: Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("run.json")).unwrap()).unwrap();
    assert_eq!(on_disk["agents"], record["agents"]);
    for a in record["agents"].as_array().unwrap() {
        assert_eq!(a["counted_locally"], true, "{a}");
        assert!(a["usage"]["input"].as_u64().unwrap() > 0, "{a}");
        assert!(a["usage"]["output"].as_u64().unwrap() > 0, "{a}");
        assert!(a["cost_usd"].as_f64().unwrap() > 0.0, "{a}");
        assert_eq!(
            a.get("bill_unknown"),
            None,
            "a whole reply's bill is counted"
        );
    }
    // Anthropic's `message_start` reported the input: only the output is counted.
    let claude = agent(&record, "claude-true");
    let billed = server
        .requests()
        .iter()
        .find(|r| r.body.to_string().contains("marker-claude-true"))
        .map(|r| (r.body.to_string().len() as u64).div_ceil(8))
        .unwrap();
    assert_eq!(
        claude["usage"]["input"], billed,
        "the reported input is kept"
    );
    // OpenAI's tokenizer is exact: the counts are tiktoken's.
    let gpt = agent(&record, "gpt-true");
    let tokenizer = byok_flow::cost::tokens::Tokenizer::for_model("gpt-4o");
    let reply = gpt["output"].as_str().unwrap();
    assert_eq!(gpt["usage"]["output"], tokenizer.raw(reply));
    let request = byok_flow::providers::Request {
        prompt: "marker-gpt-true Say hello to the fake server please".into(),
        ..Default::default()
    };
    assert_eq!(
        gpt["usage"]["input"],
        byok_flow::runner::input_count(&tokenizer, &request).tokens
    );
    // One warning per provider, whatever the number of its agents.
    for provider in ["anthropic", "openai", "gemini"] {
        let warning = format!("warning  `{provider}` reported no ");
        assert_eq!(stderr.matches(&warning).count(), 1, "{warning}\n{stderr}");
    }
    // The closing table and the progress lines mark the counts and dollars.
    assert!(stderr.contains("~ counted by byok-flow"), "{stderr}");
    let row = stderr
        .lines()
        .find(|l| l.starts_with("gpt-true ") && l.contains("openai/gpt-4o"))
        .unwrap();
    assert!(row.contains(" ~") && row.contains("~$"), "{row}");
    assert!(stderr.contains("total"), "{stderr}");
    // And the history keeps the mark.
    let id = record["run_id"].as_str().unwrap();
    let list = json(&runs(dir.path(), &["list", "--json"]));
    assert_eq!(list[0]["counted_locally"], true);
    let shown = text(&runs(dir.path(), &["show", id]).stdout);
    assert!(
        shown.contains("~$") && shown.contains("~ counted by byok-flow"),
        "{shown}"
    );
    let spend = text(&runs(dir.path(), &["spend", "--by", "provider"]).stdout);
    assert!(
        spend.contains("~$") && spend.contains("without reported usage"),
        "{spend}"
    );
}

/// Issue 14, item 6: an unpriced agent's cost is null and so is the run's (with the
/// agents named), never 0: in `--json`, `run.json`, the closing table, the
/// progress lines, the history (`runs list`, `show`, `spend`), the step summary
/// and the `cost_usd` step output. An unpriced agent that used nothing (its call
/// refused) shows `unpriced` too, not `$0.0000`.
#[test]
fn issue14_unpriced_is_null_never_zero() {
    let server = FakeServer::start();
    let dir = tempfile::tempdir().unwrap();
    server.script("marker-refused", [Fault::status(400), Fault::status(400)]);
    let yaml = workflow(
        &server,
        "  priced:\n    model: openai/gpt-4o\n    prompt: \"marker-priced Say hello\"\n    max_tokens: 50\n  local:\n    model: local/llama3.2\n    prompt: \"marker-local Say hello\"\n    max_tokens: 50\n  refused:\n    model: local/llama3.2\n    prompt: \"marker-refused Say hello\"\n    max_tokens: 50\n",
    );
    let out_dir = dir.path().join("out");
    let file = dir.path().join("flow.yaml");
    std::fs::write(&file, &yaml).unwrap();
    let out = command(dir.path(), &server)
        .arg("run")
        .arg(&file)
        .args(["--no-cache", "--keep-going", "--concurrency", "1"])
        .arg("--out")
        .arg(&out_dir)
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_STEP_SUMMARY", dir.path().join("summary.md"))
        .env("GITHUB_OUTPUT", dir.path().join("output.txt"))
        .env("GITHUB_WORKSPACE", dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let record: Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("run.json")).unwrap()).unwrap();
    let plain = run(
        dir.path(),
        &server,
        &yaml,
        &["--json", "--no-cache", "--keep-going"],
    );
    for r in [&record, &json(&plain)] {
        assert_eq!(r["cost_usd"], Value::Null, "{r}");
        assert_eq!(
            r["unpriced_agents"],
            serde_json::json!(["local", "refused"])
        );
        assert!(agent(r, "priced")["cost_usd"].as_f64().unwrap() > 0.0);
        assert_eq!(agent(r, "local")["cost_usd"], Value::Null);
        assert_eq!(agent(r, "refused")["cost_usd"], Value::Null);
        assert_eq!(agent(r, "refused")["usage"]["input"], 0);
    }
    let stderr = text(&out.stderr);
    assert!(!stderr.contains("$0.0000"), "{stderr}");
    assert!(
        stderr.contains("ok, ") && stderr.contains("unpriced"),
        "{stderr}"
    );
    let summary = std::fs::read_to_string(dir.path().join("summary.md")).unwrap();
    assert!(summary.contains("| unpriced |"), "{summary}");
    assert!(summary.contains("**≥ $"), "{summary}");
    assert!(!summary.contains("$0.0000"), "{summary}");
    let outputs = std::fs::read_to_string(dir.path().join("output.txt")).unwrap();
    assert!(outputs.contains("cost_usd=unpriced\n"), "{outputs}");

    // Without GitHub: the plain progress lines and the closing table.
    let stderr = text(&plain.stderr);
    let line = stderr
        .lines()
        .find(|l| l.contains("ok       local"))
        .unwrap();
    assert!(line.ends_with("unpriced"), "{line}");
    let row = stderr.lines().find(|l| l.starts_with("refused ")).unwrap();
    assert!(row.ends_with("unpriced"), "{row}");
    let total = stderr.lines().find(|l| l.starts_with("total ")).unwrap();
    assert!(total.contains(">= $"), "{total}");
    assert!(!stderr.contains("$0.0000"), "{stderr}");

    // The history: null, not 0.
    let list = json(&runs(dir.path(), &["list", "--json"]));
    assert_eq!(list[0]["cost_usd"], Value::Null);
    assert_eq!(list[0]["unpriced"], true);
    let spend = json(&runs(dir.path(), &["spend", "--by", "provider", "--json"]));
    let local = spend["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["group"] == "local")
        .unwrap()
        .clone();
    assert_eq!(local["cost_usd"], Value::Null, "{spend}");
    let id = record["run_id"].as_str().unwrap();
    let shown = text(&runs(dir.path(), &["show", id]).stdout);
    assert!(
        !shown.contains("$0.0000") && shown.contains(">= $"),
        "{shown}"
    );
}

/// Issue 14, item 6: an agent cut off mid-stream on a priced model is priced on
/// what it received (marked), with the most it may have cost; not `unpriced`.
#[test]
fn issue14_cut_off_mid_stream_is_priced_on_what_arrived() {
    let server = FakeServer::start();
    let dir = tempfile::tempdir().unwrap();
    server.script("marker-cut", [Fault::DropMidStream]);
    let yaml = workflow(
        &server,
        "  cut:\n    model: openai/gpt-4o\n    prompt: \"marker-cut Say hello to the fake server please\"\n    max_tokens: 100\n    retries: 0\n",
    );
    let out = run(dir.path(), &server, &yaml, &["--json", "--no-cache"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let record = json(&out);
    let cut = agent(&record, "cut");
    assert_eq!(cut["status"], "failed");
    assert_eq!(cut["counted_locally"], true);
    assert_eq!(cut["bill_unknown"], true);
    let cost = cut["cost_usd"].as_f64().unwrap();
    let most = cut["max_cost_usd"].as_f64().unwrap();
    assert!(cost > 0.0 && most > cost, "{cut}");
    assert!(cut["usage"]["input"].as_u64().unwrap() > 0);
    assert_eq!(record["cost_usd"].as_f64(), Some(cost));
    assert_eq!(record["max_cost_usd"].as_f64(), Some(most));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("; cost ~$"), "{stderr}");
}

/// A sibling of issue 13, item 8: Ctrl-C while a call is in flight. The call may be
/// billed, so the record and the history keep what it may have cost.
#[test]
fn issue13_interrupted_call_keeps_what_it_may_cost() {
    let server = FakeServer::start();
    let dir = tempfile::tempdir().unwrap();
    server.script(
        "marker-slow",
        [Fault::SlowFirstByte(Duration::from_secs(20))],
    );
    let yaml = workflow(
        &server,
        "  slow:\n    model: openai/gpt-4o\n    prompt: \"marker-slow Say hello\"\n    max_tokens: 100\n",
    );
    let file = dir.path().join("flow.yaml");
    std::fs::write(&file, &yaml).unwrap();
    let out_dir = dir.path().join("out");
    let mut child = command(dir.path(), &server)
        .arg("run")
        .arg(&file)
        .args(["--no-cache", "--max-usd", "1", "--out"])
        .arg(&out_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    while !seen.contains("started  slow") {
        let mut line = String::new();
        assert!(stderr.read_line(&mut line).unwrap() > 0, "{seen}");
        seen.push_str(&line);
    }
    // Until the request has reached the server.
    while server.requests().is_empty() {
        std::thread::sleep(Duration::from_millis(20));
    }
    let status = std::process::Command::new("/bin/kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    stderr.read_to_string(&mut seen).unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(130), "{seen}");
    let record: Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("run.json")).unwrap()).unwrap();
    let slow = agent(&record, "slow");
    assert_eq!(slow["status"], "cancelled");
    assert_eq!(slow["bill_unknown"], true);
    assert!(slow["max_cost_usd"].as_f64().unwrap() > 0.0, "{slow}");
    assert!(slow["usage"]["input"].as_u64().unwrap() > 0, "{slow}");
    assert!(seen.contains("cancelled slow; cost ~$"), "{seen}");
    let list = json(&runs(dir.path(), &["list", "--json"]));
    assert_eq!(list[0]["bill_unknown"], true, "{list}");
    assert!(list[0]["max_cost_usd"].as_f64().unwrap() > 0.0, "{list}");
}

/// Hunt: a whole (not streamed) 200 whose body stalls after its head is billed,
/// but the time-out that ends the wait was taken as "not sent" (nothing billed,
/// its reservation freed, retried on the same money), unlike the same stall in a
/// stream. Whatever stalls after the response head keeps its reservation.
#[test]
fn budget_a_whole_reply_stalled_after_its_head_may_be_billed() {
    use byok_flow::providers::client::HttpProvider;
    use byok_flow::providers::http::{Http, Timeouts};
    use byok_flow::providers::openai::OpenAi;
    use byok_flow::providers::{Provider, Request};

    let server = FakeServer::start();
    server.script("marker-stall", [Fault::StallBody(Duration::from_secs(5))]);
    // The idle time-out (a minute by default) made short.
    let timeouts = Timeouts {
        idle: Duration::from_millis(300),
        ..Timeouts::default()
    };
    let provider = HttpProvider {
        name: "sim".into(),
        wire: Box::new(OpenAi { first_party: false }),
        base_url: format!("{}/local/v1", server.url()),
        keys: None,
        http: Http::new(timeouts).unwrap(),
        timeouts,
    };
    let request = std::sync::Arc::new(Request {
        provider: "sim".into(),
        model: "m".into(),
        prompt: "marker-stall say hello".into(),
        max_tokens: Some(100),
        stream: false,
        ..Request::default()
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let error = runtime
        .block_on(provider.attempt(&request))
        .expect_err("the body stalled past the idle time-out");
    assert_eq!(server.billed().len(), 1, "the fake billed it");
    assert!(
        error.cut_off.is_some(),
        "a stall after the head was taken as never sent: {error:?}"
    );
}

/// Hunt: a server that bills more output than `max_tokens` (a reasoning model
/// whose server does not count its thinking in the limit: 3 times here). Each
/// call cost three times its reservation, so the last call admitted under the
/// ceiling passed it by up to twice its reservation. The first reply now
/// teaches the ratio of billed output to the limit, as for input, and later
/// reservations scale by it: with one call at a time the ceiling holds at
/// every budget after the first call.
#[test]
fn budget_output_billed_above_max_tokens_is_learned() {
    let server = FakeServer::start();
    let dir = tempfile::tempdir().unwrap();
    server.set_billing(Billing {
        input_percent: Some(100),
        output_percent: Some(300),
        ..Billing::default()
    });
    // Output is all that costs.
    let mut agents = String::new();
    for i in 0..6 {
        agents.push_str(&format!(
            "  a{i}:\n    model: sim/m\n    prompt: \"agent-{i}- Think hard, then answer.\"\n    max_tokens: 100\n    expected_output_tokens: 1\n"
        ));
    }
    let yaml = sim(&server, "      m: {input: 0, output: 100}\n", &agents);
    let one = reservations(dir.path(), &server, &yaml)
        .into_iter()
        .fold(0.0, f64::max);
    // The first call bills 3 reservations: every ceiling from there on.
    let ceilings = (0..13).map(|step| one * (3.0 + 0.5 * f64::from(step)));
    let skipped = sweep(dir.path(), &server, &yaml, ("m", 0.0, 100.0), ceilings);
    assert!(skipped > 0);
}

/// Many calls in flight at once right under the ceiling: a map agent's items
/// over every row of a dataset, eight at a time, each billed its whole worst
/// case. Whatever the ceiling, what the fake billed never passes it.
#[test]
fn budget_map_items_over_rows_in_flight_at_once_never_pass_the_ceiling() {
    let server = FakeServer::start();
    let dir = tempfile::tempdir().unwrap();
    server.set_billing(Billing {
        input_percent: Some(100),
        output_at_max: true,
        ..Billing::default()
    });
    let agents = "  t:\n    model: sim/m\n    for_each: inputs.topics\n    max_items: 10\n    prompt: \"row {{inputs.n}} item {{item_index}} {{item}}\"\n    max_tokens: 200\n    expected_output_tokens: 1\n";
    let yaml = sim(&server, "      m: {input: 40, output: 40}\n", agents)
        .replace("agents:\n", "inputs:\n  n: {}\n  topics: {}\nagents:\n");
    std::fs::write(dir.path().join("flow.yaml"), &yaml).unwrap();
    let mut rows = String::new();
    for n in 0..6 {
        rows.push_str(&format!(
            "{{\"n\": \"{n}\", \"topics\": \"[\\\"otters\\\", \\\"voles\\\", \\\"moles\\\", \\\"shrews\\\", \\\"beavers\\\"]\"}}\n"
        ));
    }
    std::fs::write(dir.path().join("rows.jsonl"), rows).unwrap();
    // One item's worst case: 200 output tokens and a short prompt at $40 per million.
    let one = 200.0 * 40e-6 + 40.0 * 40e-6;
    for share in [2.5, 7.5, 13.0] {
        let ceiling = one * share;
        let before = server.billed().len();
        let out = command(dir.path(), &server)
            .args([
                "run",
                "flow.yaml",
                "--each",
                "rows.jsonl",
                "-q",
                "--no-cache",
            ])
            .args(["--concurrency", "8", "--max-usd", &format!("{ceiling:.6}")])
            .output()
            .unwrap();
        let bills = server.billed()[before..].to_vec();
        let spent = provider_total(&bills, &[("m", 40.0, 40.0)]);
        assert!(
            spent <= Usd::from_dollars(ceiling),
            "billed {spent} over {ceiling} for {} calls\n{}",
            bills.len(),
            text(&out.stderr)
        );
        assert!(!bills.is_empty(), "{}", text(&out.stderr));
    }
}

/// Hunt: a Gemini reply that spent its whole output limit thinking has no text
/// and no `candidatesTokenCount`, only `thoughtsTokenCount`, which Gemini bills
/// as output. Its output was taken as unreported and counted from the (empty)
/// text: the agent cost $0.000003 while Gemini billed $0.0025.
#[test]
fn budget_a_gemini_reply_that_only_thought_is_billed_its_thoughts() {
    let server = FakeServer::start();
    let dir = tempfile::tempdir().unwrap();
    let body = serde_json::json!({
        "candidates": [{"content": {"role": "model", "parts": []}, "finishReason": "MAX_TOKENS", "index": 0}],
        "usageMetadata": {"promptTokenCount": 10, "totalTokenCount": 1010, "thoughtsTokenCount": 1000},
        "modelVersion": "gemini-2.5-flash"
    })
    .to_string();
    for stream in [false, true] {
        let body = if stream {
            format!("data: {body}\r\n\r\n")
        } else {
            body.clone()
        };
        let marker = format!("marker-think-{stream}");
        server.script(&marker, [Fault::Body { code: 200, body }]);
        let yaml = workflow(
            &server,
            &format!(
                "  a: {{model: gemini/gemini-2.5-flash, prompt: \"{marker} hard\", max_tokens: 1000, stream: {stream}}}\n"
            ),
        );
        let out = run(
            dir.path(),
            &server,
            &yaml,
            &["--json", "-q", "--no-cache", "--max-usd", "0.05"],
        );
        let record = json(&out);
        // What Gemini bills: 10 input tokens at $0.30 and 1,000 thoughts at $2.50 per million.
        let billed =
            Usd::of_tokens(10, rate_per_million(0.3)) + Usd::of_tokens(1000, rate_per_million(2.5));
        let a = agent(&record, "a");
        let counted = a["max_cost_usd"]
            .as_f64()
            .or(a["cost_usd"].as_f64())
            .unwrap();
        assert!(
            Usd::from_dollars(counted) >= billed,
            "stream {stream}: counted {counted}, billed {billed}: {record}\n{}",
            text(&out.stderr)
        );
        assert_eq!(a["usage"]["output"], 1000, "{record}");
    }
}
