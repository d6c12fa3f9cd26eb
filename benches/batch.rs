//! Batch mode at scale (issue 10): a dataset of 10,000 rows through a squad of two
//! agents (an Anthropic triage agent and an OpenAI agent that reads it) with
//! `run --each rows.jsonl --batch` against the fake server's batch APIs with a 1 s
//! batch delay: two waves (one per DAG depth) of 10,000 requests each.
//!
//! Goals: wall <= 2 x (waves x delay) + 2 s = 6 s; runner CPU <= 2 s; peak RSS
//! <= 80 MB (the byok-flow process alone: the fake server runs in this one); the
//! server sees one submission per batch (2 creates, 1 upload) and 20,000 results,
//! and every row comes back succeeded, in row order. Then `estimate --each --batch`
//! of the same run: the batch total at 50% (+-1%) of the regular one
//! (claude-sonnet-4-5 has no batch prices in the table: half its regular ones).
//!
//! Run: `cargo bench --bench batch` (`BENCH_RUNS` runs, 3 by default; `BENCH_ROWS`
//! rows, 10,000 by default; `BENCH_BIN=path/to/byok-flow` for another build).
//! `BENCH_SERVE=DIR` writes the squad and rows to DIR, starts the fake server, prints
//! the command that runs them (to time it with any tool, or to profile it) and
//! serves until it is killed.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

#[path = "../tests/integration/support/fake.rs"]
#[allow(dead_code)]
mod fake;

const DELAY: Duration = Duration::from_secs(1);

fn squad(url: &str) -> String {
    format!(
        "version: 1\ndefaults: {{max_tokens: 256, batch: true}}\ninputs:\n  ticket: {{required: true}}\nproviders:\n  openai: {{base_url: \"{url}/v1\", key: \"env:BENCH_KEY\"}}\n  anthropic: {{base_url: \"{url}\", key: \"env:BENCH_KEY\"}}\nagents:\n  triage: {{model: anthropic/claude-sonnet-4-5, prompt: \"Triage ticket {{{{inputs.ticket}}}}: the export button does nothing.\"}}\n  reply: {{model: openai/gpt-5.4-mini, prompt: \"Reply to ticket {{{{inputs.ticket}}}} given: {{{{agents.triage.output}}}}\"}}\n"
    )
}

fn rows_file(path: &Path, rows: usize) {
    use std::fmt::Write as _;
    let mut text = String::new();
    for i in 0..rows {
        let _ = writeln!(text, "{{\"ticket\": \"T-{i}\"}}");
    }
    std::fs::write(path, text).unwrap();
}

struct Measured {
    wall: Duration,
    cpu: Duration,
    rss_kb: u64,
}

fn measure(binary: &Path, args: &[&str], dir: &Path) -> (Measured, String) {
    let times = dir.join("time.txt");
    let start = Instant::now();
    let out = Command::new("/usr/bin/time")
        .arg("-o")
        .arg(&times)
        .args(["-f", "%U %S %M"])
        .arg(binary)
        .args(args)
        .current_dir(dir)
        .env("BENCH_KEY", "bench-key")
        .env("BYOK_FLOW_TODAY", "2026-11-30")
        .env("BYOK_FLOW_HISTORY", dir.join("history.sqlite"))
        .env("BYOK_FLOW_CACHE_DIR", dir.join("cache"))
        .env("BYOK_FLOW_BATCH_POLL", "250ms")
        .env_remove("HTTPS_PROXY")
        .env_remove("HTTP_PROXY")
        .env_remove("ALL_PROXY")
        .output()
        .expect("/usr/bin/time runs (Debian: apt-get install time)");
    let wall = start.elapsed();
    assert!(
        out.status.success(),
        "byok-flow {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&times).expect("/usr/bin/time wrote its report");
    let f: Vec<f64> = text
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let measured = Measured {
        wall,
        cpu: Duration::from_secs_f64(f[0] + f[1]),
        rss_kb: f[2] as u64,
    };
    (measured, String::from_utf8_lossy(&out.stdout).into_owned())
}

fn main() {
    let binary = std::env::var_os("BENCH_BIN").map_or_else(
        || std::path::PathBuf::from(env!("CARGO_BIN_EXE_byok-flow")),
        std::path::PathBuf::from,
    );
    let runs: usize = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3);
    let rows: usize = std::env::var("BENCH_ROWS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(10_000);
    if let Some(place) = std::env::var_os("BENCH_SERVE") {
        serve(Path::new(&place), rows);
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("squad.yaml");
    let rows_path = dir.path().join("rows.jsonl");
    rows_file(&rows_path, rows);
    // Two waves of one batch delay each.
    let goal = 2.0 * (2.0 * DELAY.as_secs_f64()) + 2.0;
    println!(
        "{rows} rows x 2 agents, batch delay {DELAY:?}; goals: wall <= {goal:.0} s, CPU <= 2 s, RSS <= 80 MB\n"
    );
    println!(
        "| run | wall | runner CPU | peak RSS | batches created | uploads | results | rows ok, in order |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for i in 0..runs {
        // A fresh server each run: its log counts that run alone.
        let server = fake::FakeServer::start();
        server.set_batch_knobs(fake::batch::BatchKnobs {
            delay: DELAY,
            ..fake::batch::BatchKnobs::default()
        });
        std::fs::write(&file, squad(&server.url())).unwrap();
        let host = server.addr.to_string();
        let args = [
            "run",
            file.to_str().unwrap(),
            "--each",
            rows_path.to_str().unwrap(),
            "-q",
            "--no-cache",
            "--allow-host",
            &host,
        ];
        let (m, out) = measure(&binary, &args, dir.path());
        let results: usize = server.batches().iter().map(|b| b.results.len()).sum();
        let ok = out
            .lines()
            .enumerate()
            .filter(|(n, line)| {
                let row: serde_json::Value = serde_json::from_str(line).unwrap();
                row["row"] == *n && row["status"] == "succeeded"
            })
            .count();
        println!(
            "| {} | {:.3} s | {:.3} s | {:.1} MB | {} | {} | {results} | {ok} |",
            i + 1,
            m.wall.as_secs_f64(),
            m.cpu.as_secs_f64(),
            m.rss_kb as f64 / 1024.0,
            server.batch_count("create"),
            server.batch_count("upload"),
        );
    }
    // The estimate: batch against regular.
    let server = fake::FakeServer::start();
    std::fs::write(&file, squad(&server.url())).unwrap();
    let (m, out) = measure(
        &binary,
        &[
            "estimate",
            file.to_str().unwrap(),
            "--each",
            rows_path.to_str().unwrap(),
            "--json",
        ],
        dir.path(),
    );
    let estimate: serde_json::Value = serde_json::from_str(&out).unwrap();
    let batch = estimate["total"]["expected_usd"].as_f64().unwrap();
    let regular = estimate["batch"]["regular_expected_usd"].as_f64().unwrap();
    println!(
        "\nestimate --each --batch: batch ${batch:.4}, regular ${regular:.4}, ratio {:.4} (goal 0.50 +-0.01), in {:.3} s wall, {:.3} s CPU",
        batch / regular,
        m.wall.as_secs_f64(),
        m.cpu.as_secs_f64()
    );
}

/// `BENCH_SERVE=DIR`: the squad and rows in DIR, the fake server with its batch
/// delay, and the command that runs them; serves until killed.
fn serve(dir: &Path, rows: usize) -> ! {
    std::fs::create_dir_all(dir).unwrap();
    let server = fake::FakeServer::start();
    server.set_batch_knobs(fake::batch::BatchKnobs {
        delay: DELAY,
        ..fake::batch::BatchKnobs::default()
    });
    std::fs::write(dir.join("squad.yaml"), squad(&server.url())).unwrap();
    rows_file(&dir.join("rows.jsonl"), rows);
    println!(
        "cd {} && BENCH_KEY=bench-key BYOK_FLOW_BATCH_POLL=250ms BYOK_FLOW_CACHE_DIR=cache BYOK_FLOW_HISTORY=history.sqlite byok-flow run squad.yaml --each rows.jsonl -q --no-cache --allow-host {}",
        dir.display(),
        server.addr
    );
    loop {
        std::thread::sleep(Duration::from_hours(1));
    }
}
