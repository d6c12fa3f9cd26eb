//! Whole runs of the release binary against the fake provider server (issue 11):
//! each command is a subprocess, timed from spawn to exit, with its CPU time and
//! peak RSS from `/usr/bin/time`, and the span the server saw (first request to
//! last reply). Replies are whole (not streamed) and about 64 tokens long.
//!
//! - W1: researcher -> writer -> editor, 200 ms a call: bound 0.6 s.
//! - W2: 100 researchers -> 100 writers -> 1 summary, 200 ms a call,
//!   `--concurrency 32`: 200 calls on 32 slots take 7 rounds, then the summary,
//!   so the bound is 8 x 200 ms = 1.6 s.
//! - W3: W2 with no latency: what the run itself costs.
//! - `estimate`, `validate` and `run --mock` of W2.
//!
//! Run: `cargo bench --bench providers` (set `BENCH_RUNS` for more than 5 runs, and
//! `BENCH_BIN=path/to/byok-flow` to measure another build against the same server).
//! The machine's other work shows in the wall times: compare medians, and the
//! min-max spread says how noisy the run was.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

#[path = "../tests/integration/support/fake.rs"]
#[allow(dead_code)]
mod fake;

const RESEARCHERS: usize = 100;
const CONCURRENCY: usize = 32;
const LATENCY: Duration = Duration::from_millis(200);
/// About 64 tokens.
const REPLY_CHARS: usize = 256;

fn header(url: &str) -> String {
    format!(
        "version: 1\ndefaults: {{stream: false, max_tokens: 256}}\nproviders:\n  openai: {{base_url: \"{url}/v1\", key: \"env:BENCH_KEY\"}}\n  anthropic: {{base_url: \"{url}\", key: \"env:BENCH_KEY\"}}\nagents:\n"
    )
}

/// W1: three agents in a chain.
fn chain(url: &str) -> String {
    header(url)
        + "  researcher:\n    model: anthropic/claude-sonnet-4-5\n    prompt: \"Research the topic and list the key facts.\"\n"
        + "  writer:\n    model: openai/gpt-4o\n    prompt: \"Write an article from: {{agents.researcher.output}}\"\n"
        + "  editor:\n    model: openai/gpt-4o-mini\n    prompt: \"Tighten: {{agents.writer.output}}\"\n"
}

/// W2: a wide squad.
fn wide(url: &str) -> String {
    let mut yaml = header(url);
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

/// One run of a command, as the operating system and the server saw it.
struct Measured {
    wall: Duration,
    cpu: Duration,
    rss_kb: u64,
    span: Option<Duration>,
}

/// Runs `byok-flow args` once under `/usr/bin/time`.
fn measure(binary: &Path, args: &[&str], dir: &Path, server: &fake::FakeServer) -> Measured {
    let times = dir.join("time.txt");
    server.reset_span();
    let start = Instant::now();
    let out = Command::new("/usr/bin/time")
        .arg("-o")
        .arg(&times)
        .args(["-f", "%U %S %M"])
        .arg(binary)
        .args(args)
        .current_dir(dir)
        .env("BENCH_KEY", "bench-key")
        // Retirements judged on a fixed day: GPT-4o's would end the measured runs.
        .env("BYOK_FLOW_TODAY", "2026-11-30")
        .env("BYOK_FLOW_HISTORY", dir.join("history.sqlite"))
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
    let fields: Vec<&str> = text.split_whitespace().collect();
    let (Some(user), Some(system), Some(rss_kb)) = (
        fields.first().and_then(|f| f.parse::<f64>().ok()),
        fields.get(1).and_then(|f| f.parse::<f64>().ok()),
        fields.get(2).and_then(|f| f.parse::<u64>().ok()),
    ) else {
        panic!("unexpected /usr/bin/time report: {text}");
    };
    Measured {
        wall,
        cpu: Duration::from_secs_f64(user + system),
        rss_kb,
        span: server.span(),
    }
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn median<T: Copy + Ord>(mut values: Vec<T>) -> T {
    values.sort_unstable();
    values[values.len() / 2]
}

fn secs(d: Duration) -> String {
    format!("{:.3} s", d.as_secs_f64())
}

/// One row: medians over `runs` runs, the wall time's range, and the goals.
#[allow(clippy::too_many_arguments)]
fn row(
    what: &str,
    bound: &str,
    binary: &Path,
    args: &[&str],
    dir: &Path,
    server: &fake::FakeServer,
    runs: usize,
    goal: &str,
) {
    let _warm_up = measure(binary, args, dir, server);
    let all: Vec<Measured> = (0..runs)
        .map(|_| measure(binary, args, dir, server))
        .collect();
    let wall = median(all.iter().map(|m| m.wall).collect());
    let (lo, hi) = (
        all.iter().map(|m| m.wall).min().unwrap_or_default(),
        all.iter().map(|m| m.wall).max().unwrap_or_default(),
    );
    let span = all
        .iter()
        .map(|m| m.span)
        .collect::<Option<Vec<_>>>()
        .map_or_else(|| "-".to_string(), |s| secs(median(s)));
    let cpu = median(all.iter().map(|m| m.cpu).collect());
    let rss = median(all.iter().map(|m| m.rss_kb).collect());
    println!(
        "| {what} | {bound} | {} ({}-{}) | {span} | {} | {:.1} MB | {goal} |",
        secs(wall),
        secs(lo),
        secs(hi),
        secs(cpu),
        rss as f64 / 1024.0
    );
}

fn main() {
    // BENCH_BIN measures another build (an older one, say) with the same server.
    let binary = std::env::var_os("BENCH_BIN").map_or_else(
        || std::path::PathBuf::from(env!("CARGO_BIN_EXE_byok-flow")),
        std::path::PathBuf::from,
    );
    let runs = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(5);
    let dir = tempfile::tempdir().unwrap();
    let server = fake::FakeServer::start();
    server.set_reply_chars(REPLY_CHARS);
    let url = server.url();
    let w1 = dir.path().join("w1.yaml");
    let w2 = dir.path().join("w2.yaml");
    std::fs::write(&w1, chain(&url)).unwrap();
    std::fs::write(&w2, wide(&url)).unwrap();
    let (w1, w2) = (w1.to_str().unwrap(), w2.to_str().unwrap());
    let host = server.addr.to_string();
    let concurrency = CONCURRENCY.to_string();
    let run = |file: &'static str| -> Vec<String> {
        let file = if file == "w1" { w1 } else { w2 };
        [
            "run",
            file,
            "-q",
            "--no-cache",
            "--concurrency",
            &concurrency,
            "--allow-host",
            &host,
        ]
        .map(String::from)
        .to_vec()
    };

    println!("release binary {}", binary.display());
    println!(
        "median of {runs} runs after one warm-up (wall: median (min-max)); replies whole, {} tokens; CPU and peak RSS from /usr/bin/time",
        REPLY_CHARS / 4
    );
    println!();
    println!("| workload | bound | wall | span at server | CPU | peak RSS | goal |");
    println!("|---|---|---|---|---|---|---|");
    server.set_latency(LATENCY);
    row(
        "W1: researcher -> writer -> editor, 200 ms each",
        "0.6 s",
        &binary,
        &strs(&run("w1")),
        dir.path(),
        &server,
        runs,
        "wall <= 0.63 s",
    );
    row(
        "W2: 100 -> 100 -> 1, 200 ms each, --concurrency 32",
        "1.6 s",
        &binary,
        &strs(&run("w2")),
        dir.path(),
        &server,
        runs,
        "wall <= 1.68 s, CPU <= 0.10 s, RSS <= 25 MB",
    );
    server.set_latency(Duration::ZERO);
    row(
        "W3: W2 at 0 ms",
        "0",
        &binary,
        &strs(&run("w2")),
        dir.path(),
        &server,
        runs,
        "wall <= 0.10 s",
    );
    row(
        "`estimate` of W2",
        "-",
        &binary,
        &["estimate", w2],
        dir.path(),
        &server,
        runs,
        "<= 0.05 s, <= 25 MB",
    );
    row(
        "`validate` of W2",
        "-",
        &binary,
        &["validate", w2],
        dir.path(),
        &server,
        runs,
        "keep (0.019 s, 13 MB)",
    );
    row(
        "`run --mock` of W2",
        "-",
        &binary,
        &["run", w2, "--mock", "-q", "--concurrency", &concurrency],
        dir.path(),
        &server,
        runs,
        "keep (0.040 s, 18 MB)",
    );
    println!();
    println!(
        "requests the fake server answered: {}",
        server.requests().len()
    );
}
