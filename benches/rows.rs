//! Datasets (issue 9) as a user runs them: the release binary over generated rows
//! files, one agent a row, against the fake provider server in this process at
//! zero latency, with `--concurrency 64`. Each measurement is a whole process under
//! `/usr/bin/time -v`: wall time, CPU time (user + system) and peak RSS.
//!
//! - `run --each` over 1,000, 10,000 and 100,000 rows, without the cache (the
//!   runner's own cost), and over 10,000 rows with it (an answer appended to the
//!   cache a call), in turn with the same run without it; peak RSS over 1,000 and
//!   100,000 rows with the cache on (its index grows by an entry a row);
//! - `estimate --each` over 100,000 rows.
//!
//! Targets: 10,000 rows in at most 3 s wall and 1.5 s CPU; peak RSS at 100,000 rows
//! within 1.3 times that at 1,000 rows, and at most 60 MB; the estimate of 100,000
//! rows in at most 3 s. The machine is shared: compare ratios, run it twice.
//!
//! Run: `cargo bench --bench rows`, or only some parts: `cargo bench --bench rows --
//! rows cache local estimate` (`rows`: without the cache, 1,000 to 100,000 rows, and
//! peak RSS; `cache`: 10,000 rows with the cache on and off, in turn, and peak RSS
//! with it on; `local`: no counting; `estimate`).
//!
//! `cargo bench --bench rows -- serve` measures nothing: it writes the squads and
//! the rows files, starts the fake server, prints the commands that run them (to
//! time two builds of byok-flow against each other by hand, or to profile one) and
//! serves until it is stopped.

use std::path::Path;
use std::process::Command;

#[path = "../tests/integration/support/fake.rs"]
#[allow(dead_code)]
mod fake;

const CONCURRENCY: &str = "64";

/// One agent a row on `model`: `openai/gpt-4o-mini` (whose context window is
/// known, so each prompt is counted before it is sent) or `local/model`, an
/// OpenAI-compatible server the price table knows nothing of (no counting).
fn squad(url: &str, model: &str) -> String {
    format!(
        "version: 1\nname: bench-rows\ninputs:\n  ticket: {{required: true}}\n  customer: {{default: someone}}\nproviders:\n  openai: {{base_url: \"{url}/v1\", key: \"env:BENCH_KEY\"}}\n  local: {{type: openai-compatible, base_url: \"{url}/local/v1\", key: none}}\nagents:\n  triage:\n    model: {model}\n    prompt: \"Triage this ticket from {{{{inputs.customer}}}}: {{{{inputs.ticket}}}}\"\n    max_tokens: 200\n"
    )
}

fn rows(path: &Path, n: usize) {
    let mut text = String::with_capacity(n * 96);
    for i in 0..n {
        text.push_str(&format!(
            "{{\"ticket\": \"Ticket {i}: the export to CSV fails with error {} after the last update.\", \"customer\": \"customer {}\"}}\n",
            i % 977,
            i % 131
        ));
    }
    std::fs::write(path, text).expect("write the rows");
}

/// What `/usr/bin/time -v` saw of one run.
struct Measured {
    wall: f64,
    cpu: f64,
    rss_mb: f64,
    ok: bool,
}

fn measure(binary: &Path, dir: &Path, args: &[&str]) -> Measured {
    let out = Command::new("/usr/bin/time")
        .arg("-v")
        .arg(binary)
        .args(args)
        .current_dir(dir)
        .env("BENCH_KEY", "bench-key")
        .env("BYOK_FLOW_HISTORY", dir.join("history.sqlite"))
        .env("BYOK_FLOW_CACHE_DIR", dir.join("cache"))
        .env_remove("HTTPS_PROXY")
        .env_remove("HTTP_PROXY")
        .stdout(std::process::Stdio::null())
        .output()
        .expect("/usr/bin/time runs");
    let report = String::from_utf8_lossy(&out.stderr);
    let field = |name: &str| {
        report
            .lines()
            .find_map(|l| l.trim().strip_prefix(name))
            .map(|v| v.trim().to_string())
            .unwrap_or_default()
    };
    let seconds = |name: &str| field(name).parse::<f64>().unwrap_or(0.0);
    let wall = field("Elapsed (wall clock) time (h:mm:ss or m:ss):")
        .rsplit(':')
        .next()
        .and_then(|s| s.parse::<f64>().ok())
        .unwrap_or(0.0);
    Measured {
        wall,
        cpu: seconds("User time (seconds):") + seconds("System time (seconds):"),
        rss_mb: field("Maximum resident set size (kbytes):")
            .parse::<f64>()
            .unwrap_or(0.0)
            / 1024.0,
        ok: report.contains("Exit status: 0") || !report.contains("Exit status:"),
    }
}

fn median(mut runs: Vec<Measured>) -> Measured {
    assert!(runs.iter().all(|m| m.ok), "a run failed");
    let pick = |f: fn(&Measured) -> f64, runs: &mut Vec<Measured>| {
        runs.sort_by(|a, b| f(a).total_cmp(&f(b)));
        f(&runs[runs.len() / 2])
    };
    let wall = pick(|m| m.wall, &mut runs);
    let cpu = pick(|m| m.cpu, &mut runs);
    let rss_mb = pick(|m| m.rss_mb, &mut runs);
    Measured {
        wall,
        cpu,
        rss_mb,
        ok: true,
    }
}

fn verdict(ok: bool) -> &'static str {
    if ok { "ok" } else { "MISSED" }
}

/// Writes the rows files into `dir`, prints how to run them against `server`, and
/// serves until the process is stopped.
fn serve(dir: tempfile::TempDir, server: &fake::FakeServer) -> ! {
    for n in [1_000usize, 10_000, 100_000] {
        rows(&dir.path().join(format!("rows-{n}.jsonl")), n);
    }
    let dir = dir.keep();
    println!(
        "the fake server is at {}; in {}:",
        server.url(),
        dir.display()
    );
    println!(
        "BENCH_KEY=bench-key BYOK_FLOW_HISTORY=history.sqlite BYOK_FLOW_CACHE_DIR=cache byok-flow run flow.yaml --each rows-10000.jsonl -q --concurrency {CONCURRENCY} --allow-host {}",
        server.addr
    );
    println!(
        "(each run with the cache on wants an empty cache folder: `sh -c 'BYOK_FLOW_CACHE_DIR=cache/$$ exec byok-flow ...'`; or add `--no-cache`)"
    );
    loop {
        std::thread::park();
    }
}

/// One line of the table: `n` rows run `how`, and what the target says of it.
fn print_run(n: usize, how: &str, m: &Measured, target: &str) {
    println!(
        "run --each {n:>7} rows, {how}: wall {:6.2} s  CPU {:6.2} s ({:.3} ms a row)  peak RSS {:5.1} MB  {target}",
        m.wall,
        m.cpu,
        m.cpu * 1000.0 / n as f64,
        m.rss_mb
    );
}

fn main() {
    let binary = std::path::PathBuf::from(env!("CARGO_BIN_EXE_byok-flow"));
    let dir = tempfile::tempdir().expect("a temp dir");
    let server = fake::FakeServer::start();
    std::fs::write(
        dir.path().join("flow.yaml"),
        squad(&server.url(), "openai/gpt-4o-mini"),
    )
    .expect("write the squad");
    std::fs::write(
        dir.path().join("local.yaml"),
        squad(&server.url(), "local/model"),
    )
    .expect("write the squad");
    let host = server.addr.to_string();
    let runs = 3;
    let only: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let wants = |part: &str| only.is_empty() || only.iter().any(|o| o == part);
    if wants("serve") && !only.is_empty() {
        serve(dir, &server);
    }
    println!(
        "one agent a row against the fake server (0 ms), --concurrency {CONCURRENCY}; median of {runs} whole-process runs"
    );
    for n in [1_000usize, 10_000, 100_000] {
        rows(&dir.path().join(format!("rows-{n}.jsonl")), n);
    }
    if wants("rows") {
        let mut rss = Vec::new();
        for n in [1_000usize, 10_000, 100_000] {
            let file = format!("rows-{n}.jsonl");
            let args = [
                "run",
                "flow.yaml",
                "--each",
                &file,
                "-q",
                "--no-cache",
                "--concurrency",
                CONCURRENCY,
                "--allow-host",
                &host,
            ];
            let m = median(
                (0..runs)
                    .map(|_| measure(&binary, dir.path(), &args))
                    .collect(),
            );
            let target = match n {
                10_000 => format!(
                    "wall <= 3 s: {}, CPU <= 1.5 s: {}",
                    verdict(m.wall <= 3.0),
                    verdict(m.cpu <= 1.5)
                ),
                _ => String::new(),
            };
            print_run(n, "no cache", &m, &target);
            rss.push(m.rss_mb);
        }
        let (small, large) = (rss[0], rss[2]);
        println!(
            "peak RSS 100,000 rows / 1,000 rows: {:.2} (<= 1.3: {}), {large:.1} MB (<= 60 MB: {})",
            large / small,
            verdict(large / small <= 1.3),
            verdict(large <= 60.0)
        );
    }
    if wants("cache") {
        let cached = [
            "run",
            "flow.yaml",
            "--each",
            "rows-10000.jsonl",
            "-q",
            "--concurrency",
            CONCURRENCY,
            "--allow-host",
            &host,
        ];
        let uncached = [&cached[..5], &["--no-cache"], &cached[5..]].concat();
        // In turn, so that both see the same load on the machine.
        let (mut on, mut off) = (Vec::new(), Vec::new());
        for _ in 0..runs {
            let _ = std::fs::remove_dir_all(dir.path().join("cache"));
            on.push(measure(&binary, dir.path(), &cached));
            off.push(measure(&binary, dir.path(), &uncached));
        }
        let ratios: Vec<f64> = on.iter().zip(&off).map(|(a, b)| a.cpu / b.cpu).collect();
        let (on, off) = (median(on), median(off));
        let mut ratios = ratios;
        ratios.sort_by(f64::total_cmp);
        println!(
            "run --each   10000 rows, cache on: wall {:6.2} s  CPU {:6.2} s ({:.3} ms a row)  peak RSS {:5.1} MB (an answer appended to the cache a call)  wall <= 3 s: {}, CPU <= 1.5 s: {}",
            on.wall,
            on.cpu,
            on.cpu * 1000.0 / 10_000.0,
            on.rss_mb,
            verdict(on.wall <= 3.0),
            verdict(on.cpu <= 1.5)
        );
        println!(
            "run --each   10000 rows, no cache, in turn with it: wall {:6.2} s  CPU {:6.2} s; CPU cache on / off: median {:.2} (min {:.2}, max {:.2})",
            off.wall,
            off.cpu,
            ratios[ratios.len() / 2],
            ratios[0],
            ratios[ratios.len() - 1]
        );
        // Memory with the cache on: its index holds an entry a row.
        let mut rss = Vec::new();
        for n in [1_000usize, 100_000] {
            let file = format!("rows-{n}.jsonl");
            let args = [&cached[..3], &[file.as_str()], &cached[4..]].concat();
            let m = median(
                (0..runs)
                    .map(|_| {
                        let _ = std::fs::remove_dir_all(dir.path().join("cache"));
                        measure(&binary, dir.path(), &args)
                    })
                    .collect(),
            );
            print_run(n, "cache on", &m, "");
            rss.push(m.rss_mb);
        }
        println!(
            "peak RSS with the cache on, 100,000 rows / 1,000 rows: {:.2} (<= 1.3: {}), {:.1} MB (<= 60 MB: {})",
            rss[1] / rss[0],
            verdict(rss[1] / rss[0] <= 1.3),
            rss[1],
            verdict(rss[1] <= 60.0)
        );
    }
    if wants("local") {
        let args = [
            "run",
            "local.yaml",
            "--each",
            "rows-10000.jsonl",
            "-q",
            "--no-cache",
            "--concurrency",
            CONCURRENCY,
            "--allow-host",
            &host,
        ];
        let local = median(
            (0..runs)
                .map(|_| measure(&binary, dir.path(), &args))
                .collect(),
        );
        println!(
            "run --each   10000 rows, no counting: wall {:6.2} s  CPU {:6.2} s  peak RSS {:5.1} MB (a model with no known context window: no tokenizer)",
            local.wall, local.cpu, local.rss_mb
        );
    }
    if wants("estimate") {
        let args = [
            "estimate",
            "flow.yaml",
            "--each",
            "rows-100000.jsonl",
            "--no-cache",
        ];
        let m = median(
            (0..runs)
                .map(|_| measure(&binary, dir.path(), &args))
                .collect(),
        );
        println!(
            "estimate --each 100000 rows:      wall {:6.2} s  CPU {:6.2} s  peak RSS {:5.1} MB  wall <= 3 s: {}",
            m.wall,
            m.cpu,
            m.rss_mb,
            verdict(m.wall <= 3.0)
        );
    }
    println!(
        "requests seen by the fake server: {}",
        server.requests().len()
    );
}
