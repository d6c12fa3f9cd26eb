//! Batch mode at scale (issue 10): 10,000 pairs of agents (an Anthropic agent and
//! an OpenAI agent that reads it) through `run --batch` against the fake server's
//! batch APIs with a 1 s batch delay: two waves of 10,000 requests each. Until
//! datasets (`--each`) land, the rows are agents of one squad: the same requests,
//! the same waves, the same batches.
//!
//! Goals: wall <= 2 x (waves x delay) + 2 s = 6 s; runner CPU <= 2 s; peak RSS
//! <= 80 MB; the server sees one create per wave and provider (2) and 20,000
//! results. Then `estimate --batch` of the same squad: the batch total at 50%
//! (+-1%) of the regular one (claude-sonnet-4-5 has no batch prices in the table).
//!
//! Run: `cargo bench --bench batch` (`BENCH_RUNS` runs, 3 by default; `BENCH_PAIRS`
//! pairs, 10,000 by default; `BENCH_BIN=path/to/byok-flow` for another build).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

#[path = "../tests/integration/support/fake.rs"]
#[allow(dead_code)]
mod fake;

const DELAY: Duration = Duration::from_secs(1);

fn squad(url: &str, pairs: usize) -> String {
    let mut yaml = format!(
        "version: 1\ndefaults: {{max_tokens: 256, batch: true}}\nproviders:\n  openai: {{base_url: \"{url}/v1\", key: \"env:BENCH_KEY\"}}\n  anthropic: {{base_url: \"{url}\", key: \"env:BENCH_KEY\"}}\nagents:\n"
    );
    for i in 0..pairs {
        yaml.push_str(&format!(
            "  t{i}: {{model: anthropic/claude-sonnet-4-5, prompt: \"Triage ticket {i}: the export button does nothing.\"}}\n  r{i}: {{model: openai/gpt-5.4-mini, prompt: \"Reply to ticket {i} given: {{{{agents.t{i}.output}}}}\"}}\n"
        ));
    }
    yaml
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
    let pairs: usize = std::env::var("BENCH_PAIRS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(10_000);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("squad.yaml");
    println!("| run | wall | runner CPU | peak RSS | creates | uploads | results |");
    println!("|---|---|---|---|---|---|---|");
    for i in 0..runs {
        // A fresh server each run: its log counts that run alone.
        let server = fake::FakeServer::start();
        server.set_batch_knobs(fake::batch::BatchKnobs {
            delay: DELAY,
            ..fake::batch::BatchKnobs::default()
        });
        std::fs::write(&file, squad(&server.url(), pairs)).unwrap();
        let host = server.addr.to_string();
        let args = [
            "run",
            file.to_str().unwrap(),
            "-q",
            "--no-cache",
            "--allow-host",
            &host,
        ];
        let (m, _) = measure(&binary, &args, dir.path());
        let results: usize = server.batches().iter().map(|b| b.results.len()).sum();
        println!(
            "| {} | {:.3} s | {:.3} s | {:.1} MB | {} | {} | {results} |",
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
    std::fs::write(&file, squad(&server.url(), pairs)).unwrap();
    let (m, out) = measure(
        &binary,
        &["estimate", file.to_str().unwrap(), "--json"],
        dir.path(),
    );
    let estimate: serde_json::Value = serde_json::from_str(&out).unwrap();
    let batch = estimate["total"]["expected_usd"].as_f64().unwrap();
    let regular = estimate["batch"]["regular_expected_usd"].as_f64().unwrap();
    println!(
        "\nestimate --batch: batch ${batch:.4}, regular ${regular:.4}, ratio {:.4} (goal 0.50 +-0.01), in {:.3} s wall, {:.3} s CPU",
        batch / regular,
        m.wall.as_secs_f64(),
        m.cpu.as_secs_f64()
    );
}
