//! The run's own overhead against the fake provider server, in release mode:
//! a wide squad (100 researchers -> 100 writers -> 1 summary) at concurrency 32,
//! first with 200 ms of latency per call (wall time against the scheduling lower
//! bound), then with none (pure overhead). Reports wall time, the runner's CPU
//! time and its peak memory (from `/usr/bin/time -v`).
//!
//! Run: `cargo bench --bench providers`

use std::process::Command;
use std::time::{Duration, Instant};

#[path = "../tests/integration/support/fake.rs"]
#[allow(dead_code)]
mod fake;

const RESEARCHERS: usize = 100;
const CONCURRENCY: usize = 32;

fn squad(url: &str) -> String {
    let mut yaml = format!(
        "version: 1\nproviders:\n  openai: {{base_url: \"{url}/v1\", key: \"env:BENCH_KEY\"}}\n  anthropic: {{base_url: \"{url}\", key: \"env:BENCH_KEY\"}}\nagents:\n"
    );
    for i in 0..RESEARCHERS {
        yaml.push_str(&format!("  r{i}:\n    model: anthropic/claude-sonnet-4-5\n    prompt: \"Research angle {i} of the topic and list the key facts.\"\n"));
    }
    for i in 0..RESEARCHERS {
        yaml.push_str(&format!("  w{i}:\n    model: openai/gpt-4o\n    prompt: \"Write section {i} from: {{{{agents.r{i}.output}}}}\"\n"));
    }
    let all: Vec<String> = (0..RESEARCHERS)
        .map(|i| format!("{{{{agents.w{i}.output}}}}"))
        .collect();
    yaml.push_str(&format!(
        "  summary:\n    model: openai/gpt-4o-mini\n    prompt: \"Summarise: {}\"\n",
        all.join(" ")
    ));
    yaml
}

struct Measured {
    wall: Duration,
    cpu: f64,
    max_rss_kb: u64,
}

fn run(binary: &std::path::Path, file: &std::path::Path) -> Measured {
    let start = Instant::now();
    let out = Command::new("/usr/bin/time")
        .arg("-v")
        .arg(binary)
        .args([
            "run",
            file.to_str().unwrap(),
            "-q",
            "--concurrency",
            &CONCURRENCY.to_string(),
        ])
        .env("BENCH_KEY", "bench-key")
        .env_remove("HTTPS_PROXY")
        .env_remove("HTTP_PROXY")
        .output()
        .expect("/usr/bin/time runs");
    let wall = start.elapsed();
    assert!(
        out.status.success(),
        "the run failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = String::from_utf8_lossy(&out.stderr);
    let field = |name: &str| {
        report
            .lines()
            .find_map(|l| l.trim().strip_prefix(name))
            .map(|v| v.trim().to_string())
            .unwrap_or_default()
    };
    let cpu = field("User time (seconds):").parse::<f64>().unwrap_or(0.0)
        + field("System time (seconds):")
            .parse::<f64>()
            .unwrap_or(0.0);
    Measured {
        wall,
        cpu,
        max_rss_kb: field("Maximum resident set size (kbytes):")
            .parse()
            .unwrap_or(0),
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    let binary = std::path::PathBuf::from(env!("CARGO_BIN_EXE_byok-flow"));
    let dir = tempfile::tempdir().unwrap();
    let server = fake::FakeServer::start();
    let file = dir.path().join("wide.yaml");
    std::fs::write(&file, squad(&server.url())).unwrap();
    let latency = Duration::from_millis(200);
    // Researchers and writers are 200 unit tasks on 32 slots, then the summary.
    let waves = u32::try_from((2 * RESEARCHERS).div_ceil(CONCURRENCY)).expect("a small number");
    let bound = latency * (waves + 1);
    println!(
        "wide squad: {RESEARCHERS} researchers -> {RESEARCHERS} writers -> 1 summary, concurrency {CONCURRENCY}, 5 runs each (median)"
    );
    for (label, delay) in [
        ("200 ms latency", latency),
        ("zero latency", Duration::ZERO),
    ] {
        server.set_latency(delay);
        let runs: Vec<Measured> = (0..5).map(|_| run(&binary, &file)).collect();
        let wall = median(runs.iter().map(|m| m.wall.as_secs_f64()).collect());
        let cpu = median(runs.iter().map(|m| m.cpu).collect());
        let rss = median(runs.iter().map(|m| m.max_rss_kb as f64).collect()) / 1024.0;
        print!("{label:>15}: wall {wall:.3} s, runner CPU {cpu:.3} s, peak RSS {rss:.1} MiB");
        if delay.is_zero() {
            println!(
                " (201 calls: {:.2} ms of wall time per call)",
                wall * 1000.0 / 201.0
            );
        } else {
            let b = bound.as_secs_f64();
            println!(
                " | lower bound {b:.3} s, ratio {:.3} (target <= 1.05)",
                wall / b
            );
        }
    }
    println!(
        "requests seen by the fake server: {}",
        server.requests().len()
    );
}
