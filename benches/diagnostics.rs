//! Reporting many mistakes (issue 11, item 5): the release binary's `validate`
//! of workflows with 10,000 problems each, as a whole process: the median wall
//! time of several runs, and the CPU time and peak RSS of one more from
//! `/usr/bin/time -v` when it is installed.
//!
//! - **typos**: 10,000 agents, each reading a misspelt agent (`writr-0042`), so
//!   each error looks for the closest of 10,000 names of the same length;
//! - **one prompt**: one agent whose prompt holds 10,000 unknown references;
//! - **fields**: 10,000 agents with a misspelt field (`promt:`);
//! - **typos --json**: the first, with every problem as JSON on stdout.
//!
//! Run: `cargo bench --bench diagnostics`. Target (issue 11): 10,000 problems in
//! at most 1 s and 100 MB. Measurements, not tests: nothing fails when a target
//! is missed; on a shared machine compare medians and CPU time.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The binary `cargo bench` built beside this benchmark (release profile).
const BIN: &str = env!("CARGO_BIN_EXE_byok-flow");

const TIME: &str = "/usr/bin/time";

const PROBLEMS: usize = 10_000;

fn typos() -> String {
    let mut text = String::from("version: 1\nagents:\n");
    for i in 0..PROBLEMS {
        let _ = write!(
            text,
            "  writer-{i:04}:\n    model: mock/echo\n    prompt: \"Edit {{{{agents.writr-{:04}.output}}}}\"\n",
            (i + 1) % PROBLEMS
        );
    }
    text
}

fn one_prompt() -> String {
    let mut text =
        String::from("version: 1\nagents:\n  writer:\n    model: mock/echo\n    prompt: |\n");
    for i in 0..PROBLEMS {
        let _ = writeln!(text, "      Part {i}: {{{{agents.part-{i}.output}}}}");
    }
    text
}

fn fields() -> String {
    let mut text = String::from("version: 1\nagents:\n");
    for i in 0..PROBLEMS {
        let _ = write!(
            text,
            "  writer-{i}:\n    model: mock/echo\n    promt: hello\n"
        );
    }
    text
}

/// Spawns `byok-flow args` `runs` times (exit 2 is expected: the files are
/// invalid); the median wall time.
fn median_wall(args: &[&str], runs: usize) -> Duration {
    let mut samples: Vec<Duration> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            let status = Command::new(BIN)
                .args(args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .expect("spawn");
            let elapsed = start.elapsed();
            assert_eq!(status.code(), Some(2), "byok-flow {args:?}: {status}");
            elapsed
        })
        .collect();
    samples.sort();
    samples[samples.len() / 2]
}

/// Peak RSS in kB and CPU time (user + system) of one more run, from `/usr/bin/time -v`.
fn time_v(args: &[&str]) -> Option<(u64, Duration)> {
    if !Path::new(TIME).exists() {
        return None;
    }
    let out = Command::new(TIME)
        .arg("-v")
        .arg(BIN)
        .args(args)
        .stdout(Stdio::null())
        .output()
        .ok()?;
    let report = String::from_utf8_lossy(&out.stderr);
    let field = |name: &str| {
        let line = report.lines().find(|l| l.trim_start().starts_with(name))?;
        line.rsplit(": ").next().map(str::trim)
    };
    let seconds = |name: &str| field(name)?.parse::<f64>().ok();
    let cpu = seconds("User time (seconds)")? + seconds("System time (seconds)")?;
    let rss = field("Maximum resident set size (kbytes)")?.parse().ok()?;
    Some((rss, Duration::from_secs_f64(cpu)))
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn main() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("bench-diagnostics");
    std::fs::create_dir_all(&dir).expect("a folder for the workflows");
    let files = [
        ("typos", typos()),
        ("one prompt", one_prompt()),
        ("fields", fields()),
    ]
    .map(|(name, text)| {
        let path = dir.join(format!("{}.yaml", name.replace(' ', "-")));
        std::fs::write(&path, text).expect("write the workflow");
        (name, path)
    });
    println!("release binary {BIN}; workflows in {}", dir.display());
    println!(
        "median wall time of 5 runs, and the CPU time and peak RSS of one more; shared cores: compare CPU time"
    );
    println!(
        "{:<28} {:>11} {:>11} {:>11} {:>18}",
        "validate, 10,000 problems", "median", "cpu (1 run)", "peak RSS", "target"
    );
    let json = ("typos --json", files[0].1.clone());
    for (name, path) in files.iter().chain(std::iter::once(&json)) {
        let file = path.to_str().expect("a UTF-8 path");
        let args: Vec<&str> = if name.ends_with("--json") {
            vec!["validate", "--json", file]
        } else {
            vec!["validate", file]
        };
        let median = median_wall(&args, 5);
        let once = time_v(&args);
        let ok = median <= Duration::from_secs(1)
            && once.is_none_or(|(kb, cpu)| kb <= 100 * 1024 && cpu <= Duration::from_secs(1));
        let (rss, cpu) = once.map_or(("n/a".into(), "n/a".into()), |(kb, cpu)| {
            (format!("{:.1} MB", kb as f64 / 1024.0), ms(cpu))
        });
        println!(
            "{name:<28} {:>11} {cpu:>11} {rss:>11} {:>18}",
            ms(median),
            format!("1 s, 100 MB: {}", if ok { "ok" } else { "MISSED" })
        );
    }
}
