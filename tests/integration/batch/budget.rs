//! The ceiling in batch mode (SPEC §6, §9): a batched request is billed when the
//! provider processes it, whatever happens to its result on the way back, so a
//! result that cannot be read, or that never comes back from a batch that ran,
//! keeps its whole reservation as spent, exactly as a direct call cut off does.

use byok_flow::cost::{Usd, rate_per_million};
use serde_json::Value;

use super::{Place, agent, record, stderr};
use crate::support::fake::{Billing, FakeServer, Fault};

/// What the fake billed, at these batch prices (dollars per million, in and out).
fn billed_at(server: &FakeServer, input: f64, output: f64) -> Usd {
    server
        .billed()
        .iter()
        .map(|(_, b)| {
            Usd::of_tokens(b.input, rate_per_million(input))
                + Usd::of_tokens(b.output, rate_per_million(output))
        })
        .sum()
}

/// The estimate's worst case of the one agent of flow.yaml, in a batch.
fn worst(place: &Place, server: &FakeServer) -> f64 {
    let host = server.url().trim_start_matches("http://").to_string();
    let out = place
        .command(
            &[
                "estimate",
                "flow.yaml",
                "--batch",
                "--json",
                "--allow-host",
                &host,
            ],
            &[],
        )
        .output()
        .unwrap();
    let estimate: Value = serde_json::from_slice(&out.stdout).unwrap();
    estimate["agents"][0]["max_usd"].as_f64().unwrap()
}

/// Hunt: a batch result that is billed and then unreadable (its message does
/// not parse, or its line of the results file is cut) was charged $0 and its
/// reservation freed, so each retry spent money the ledger never saw: with every
/// request billed at its worst case, three attempts went out under a ceiling of
/// two and a half.
#[test]
fn budget_batch_results_billed_and_unreadable_keep_their_reservation() {
    // Each model with its batch prices: half the regular ones.
    for (api, input, output) in [
        ("anthropic/claude-haiku-4-5", 0.5, 2.5),
        ("openai/gpt-4o-mini", 0.075, 0.3),
    ] {
        let server = FakeServer::start();
        server.set_billing(Billing {
            input_percent: Some(100),
            output_at_max: true,
            omit_usage: false,
            ..Billing::default()
        });
        server.script("marker-a", [Fault::Malformed, Fault::TruncateStream]);
        let place = Place::new();
        let agents = format!(
            "  a: {{model: {api}, prompt: \"marker-a say hello\", max_tokens: 4000, retries: 3, cache: off}}\n"
        );
        std::fs::write(
            place.path().join("flow.yaml"),
            crate::providers::workflow(&server, &agents),
        )
        .unwrap();
        let ceiling = worst(&place, &server) * 2.5;
        let out = place.run(
            &server,
            &agents,
            &["--no-cache", "--max-usd", &format!("{ceiling:.8}")],
            &[],
        );
        let run = record(&out);
        let spent = billed_at(&server, input, output);
        let bills = server.billed().len();
        assert!(
            spent <= Usd::from_dollars(ceiling),
            "{api}: the provider billed {spent} for {bills} requests, over the {ceiling} ceiling\n{run}\n{}",
            stderr(&out)
        );
        assert_eq!(bills, 2, "{api}: {run}");
        let a = agent(&run, "a");
        assert_ne!(a["status"], "succeeded", "{run}");
        // The run says the most it may have cost: never less than was billed.
        let most = run["max_cost_usd"]
            .as_f64()
            .or(run["cost_usd"].as_f64())
            .unwrap();
        // The record's dollars are rounded to the micro-dollar.
        assert!(
            Usd::from_dollars(most + 5e-7) >= spent,
            "{most} < {spent}: {run}"
        );
    }
}

/// Hunt: a detached run's batch is at the provider, which bills it whatever
/// happens next. The run that collects it used to reserve each of its requests
/// again as if it were about to send it, and, finding no room under its ceiling
/// (here: the budget lowered in the file), refused it: "skipped for the budget",
/// counted $0, its result never read, while the provider billed it. A request a
/// submitted batch holds is spent money: it is reserved whatever the ceiling,
/// and collected.
#[test]
fn budget_resumed_batches_count_what_was_already_sent() {
    let server = FakeServer::start();
    server.set_billing(Billing {
        input_percent: Some(100),
        output_at_max: true,
        omit_usage: false,
        ..Billing::default()
    });
    server.set_batch_knobs(crate::support::fake::batch::BatchKnobs {
        delay: std::time::Duration::from_millis(300),
        ..Default::default()
    });
    let place = Place::new();
    let agents = "  a: {model: anthropic/claude-haiku-4-5, prompt: \"alpha\", max_tokens: 4000, expected_output_tokens: 1, cache: off}\n  b: {model: anthropic/claude-haiku-4-5, prompt: \"beta {{agents.a.output}}\", max_tokens: 4000, expected_output_tokens: 1, cache: off}\n";
    let yaml = |budget: f64| {
        format!(
            "{}budget: {{max_usd: {budget:.8}}}\n",
            crate::providers::workflow(&server, agents)
        )
    };
    std::fs::write(place.path().join("flow.yaml"), yaml(1.0)).unwrap();
    let one = worst(&place, &server);
    let host = server.url().trim_start_matches("http://").to_string();
    let args = [
        "run",
        "flow.yaml",
        "--batch",
        "--json",
        "--allow-host",
        &host,
    ];
    let detach: Vec<&str> = args.iter().copied().chain(["--detach"]).collect();
    let out = place.command(&detach, &[]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    // The ceiling is lowered below what the batch already holds.
    let ceiling = one * 0.5;
    std::fs::write(place.path().join("flow.yaml"), yaml(ceiling)).unwrap();
    let out = place.command(&args, &[]).output().unwrap();
    let run = record(&out);
    let spent = billed_at(&server, 0.5, 2.5);
    assert_eq!(server.billed().len(), 1, "{run}");
    // The run counts what the provider billed: never less.
    let most = run["max_cost_usd"]
        .as_f64()
        .or(run["cost_usd"].as_f64())
        .unwrap();
    assert!(
        Usd::from_dollars(most) >= spent,
        "the provider billed {spent}, the run says {most}\n{run}\n{}",
        stderr(&out)
    );
    // What was paid for is collected; nothing more is sent.
    assert_eq!(agent(&run, "a")["status"], "succeeded", "{run}");
    // Nothing else fits: `b` is skipped for the budget.
    assert_eq!(agent(&run, "b")["status"], "skipped", "{run}");
    assert_eq!(run["status"], "budget_reached", "{run}");
}

/// Hunt: a batch the provider made, whose create's reply was lost on the way
/// (the connection dropped after the head), was taken as never made: its
/// requests failed as if nothing were sent, their reservations freed, and they
/// were retried in a new batch, while the provider ran (and billed) the first
/// one too. A create whose reply is lost after it was sent may have made the
/// batch: its requests keep their reservations.
#[test]
fn budget_a_batch_whose_create_reply_was_lost_keeps_its_reservations() {
    for api in ["anthropic/claude-haiku-4-5", "openai/gpt-4o-mini"] {
        let server = FakeServer::start();
        server.set_billing(Billing {
            input_percent: Some(100),
            output_at_max: true,
            ..Billing::default()
        });
        server.set_batch_knobs(crate::support::fake::batch::BatchKnobs {
            lose_created: 2,
            ..Default::default()
        });
        let place = Place::new();
        let agents = format!(
            "  a: {{model: {api}, prompt: \"say hello\", max_tokens: 4000, retries: 3, cache: off}}\n"
        );
        std::fs::write(
            place.path().join("flow.yaml"),
            crate::providers::workflow(&server, &agents),
        )
        .unwrap();
        let ceiling = worst(&place, &server) * 2.5;
        let out = place.run(
            &server,
            &agents,
            &["--no-cache", "--max-usd", &format!("{ceiling:.8}")],
            &[],
        );
        let run = record(&out);
        let (input, output) = if api.starts_with("openai") {
            (0.075, 0.3)
        } else {
            (0.5, 2.5)
        };
        let spent = billed_at(&server, input, output);
        assert!(
            spent <= Usd::from_dollars(ceiling),
            "{api}: the provider billed {spent} for {} batches, over the {ceiling} ceiling\n{run}\n{}",
            server.billed().len(),
            stderr(&out)
        );
        let most = run["max_cost_usd"]
            .as_f64()
            .or(run["cost_usd"].as_f64())
            .unwrap();
        // The record's dollars are rounded to the micro-dollar.
        assert!(
            Usd::from_dollars(most + 5e-7) >= spent,
            "{most} < {spent}: {run}"
        );
    }
}

/// What a collecting run left the provider to bill, against its ceiling.
struct Collected {
    spent: Usd,
    bills: usize,
    out: std::process::Output,
    log: Vec<String>,
}

/// A dataset of `tickets` (two agents each, the same model) detached, then
/// collected under a ceiling with room for every detached request at its worst
/// case and half a call more: with the budget in the file (the same command
/// again; the detached run had no budget) or given as `--max-usd` (another
/// command; the detached run had one). Rows go two at a time, so the first rows'
/// second wave comes up before the last rows' first.
fn detach_then_collect(tickets: &[&str], in_file: bool) -> Collected {
    // A triage's worst case: $0.01 of output, and a little input.
    let ceiling = tickets.len() as f64 * 0.0101 + 0.005;
    let max_usd = format!("{ceiling:.8}");
    let server = FakeServer::start();
    server.set_billing(Billing {
        input_percent: Some(100),
        output_at_max: true,
        omit_usage: false,
        ..Billing::default()
    });
    server.set_batch_knobs(crate::support::fake::batch::BatchKnobs {
        delay: std::time::Duration::from_millis(300),
        ..Default::default()
    });
    let place = Place::new();
    let agents = "  triage: {model: anthropic/claude-haiku-4-5, prompt: \"triage ticket {{inputs.ticket}}\", max_tokens: 4000, expected_output_tokens: 1, cache: off}\n  reply: {model: anthropic/claude-haiku-4-5, prompt: \"reply to {{inputs.ticket}} given {{agents.triage.output}}\", max_tokens: 4000, expected_output_tokens: 1, cache: off}\n";
    let yaml = |budget: Option<f64>| {
        let flow = crate::providers::workflow(&server, agents).replace(
            "agents:\n",
            "inputs:\n  ticket: {required: true}\nagents:\n",
        );
        match budget {
            Some(budget) => format!("{flow}budget: {{max_usd: {budget:.8}}}\n"),
            None => flow,
        }
    };
    let lines = tickets.iter().fold(String::new(), |mut s, t| {
        s.push_str(&format!("{{\"ticket\": \"{t}\"}}\n"));
        s
    });
    std::fs::write(place.path().join("rows.jsonl"), lines).unwrap();
    std::fs::write(place.path().join("flow.yaml"), yaml(None)).unwrap();
    let host = server.url().trim_start_matches("http://").to_string();
    let args = [
        "run",
        "flow.yaml",
        "--each",
        "rows.jsonl",
        "--batch",
        "--no-cache",
        "-vv",
        "--allow-host",
        &host,
    ];
    let env = [("BYOK_FLOW_BATCH_WINDOW", "2")];
    let mut detach: Vec<&str> = args.iter().copied().chain(["--detach"]).collect();
    let mut collect: Vec<&str> = args.to_vec();
    if !in_file {
        detach.extend(["--max-usd", "1"]);
        collect.extend(["--max-usd", &max_usd]);
    }
    let out = place.command(&detach, &env).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let created = server.batch_count("create");
    if in_file {
        std::fs::write(place.path().join("flow.yaml"), yaml(Some(ceiling))).unwrap();
    }
    let out = place.command(&collect, &env).output().unwrap();
    place.assert_no_key(&out);
    // Collected: no state is left to count again.
    assert!(place.state_files().is_empty(), "in_file {in_file}");
    let spent = billed_at(&server, 0.5, 2.5);
    let collected = Collected {
        spent,
        bills: server.billed().len(),
        out,
        log: server.batch_log(),
    };
    assert!(
        collected.spent <= Usd::from_dollars(ceiling),
        "in_file {in_file}: the provider billed {spent} for {} requests, over the {ceiling} ceiling\n{:?}\n{}",
        collected.bills,
        collected.log,
        stderr(&collected.out)
    );
    // The detached requests were not submitted again.
    assert_eq!(server.batch_count("create"), created, "{:?}", collected.log);
    collected
}

/// Hunt: over a dataset, the run that collects a detached run's batches learned
/// what each detached request holds only when its row came up, so the second
/// wave of the first rows was admitted on money later rows' detached requests
/// had already taken, and the provider billed past the ceiling. The collecting
/// run now starts with every detached request's reservation counted: with room
/// for the detached wave and less than one more call, no reply is sent. Both
/// ways a run collects: the same command again, the budget in the file (the
/// detached run had none: its state keeps each request's worst case all the
/// same); and another command, `--max-usd` given (the detached run had a budget).
#[test]
fn budget_a_collecting_run_over_rows_counts_every_detached_request_from_its_start() {
    let tickets = ["T0x", "T1x", "T2x", "T3x", "T4x", "T5x"];
    for in_file in [true, false] {
        let c = detach_then_collect(&tickets, in_file);
        // Every detached request was collected, none submitted again, and no reply fit.
        assert_eq!(c.bills, tickets.len(), "{:?}\n{}", c.log, stderr(&c.out));
        assert_eq!(c.out.status.code(), Some(3), "{}", stderr(&c.out));
        assert!(
            stderr(&c.out).contains("held by requests in earlier runs' batches"),
            "{}",
            stderr(&c.out)
        );
    }
}

/// Hunt: two rows with the same ticket: both requests were in the detached
/// batch (and billed), but the collecting run knew one of them by its
/// fingerprint, so one row read the batch's answer and the other's request was
/// often submitted again, on a reservation taken as if it were already sent,
/// past the ceiling. Each row now reads its own.
#[test]
fn budget_duplicate_rows_each_read_their_own_detached_request() {
    let c = detach_then_collect(&["T0x", "T0x", "T1x", "T2x"], true);
    assert_eq!(c.bills, 4, "{:?}\n{}", c.log, stderr(&c.out));
    assert_eq!(c.out.status.code(), Some(3), "{}", stderr(&c.out));
}
