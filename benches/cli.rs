//! The release `byok-flow` binary as a user meets it: start-up (`--version`,
//! many spawns), `validate` of the generated 1,000- and 10,000-agent workflows,
//! and a `--mock` run of the 10,000-agent one (zero latency, default
//! concurrency): the median wall time of several spawns, and the peak RSS of one
//! more, read from `/usr/bin/time -v` when it is installed.
//!
//! Run: `cargo bench --bench cli`. Targets (issue 2): `--version` under 10 ms,
//! the 10,000-agent mock run under 2 s.

mod support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The binary `cargo bench` built beside this benchmark (release profile).
const BIN: &str = env!("CARGO_BIN_EXE_byok-flow");

const TIME: &str = "/usr/bin/time";

/// The day the measured runs judge model retirements on (`BYOK_FLOW_TODAY`), so a
/// model of the generated workflows retiring does not turn them into an exit 2.
const TODAY: &str = "2026-11-30";

/// Spawns `program args` `runs` times; the median wall time. Panics if one fails.
fn median_wall(program: &str, args: &[&str], runs: usize) -> Duration {
    let mut samples: Vec<Duration> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            let status = Command::new(program)
                .args(args)
                .env("BYOK_FLOW_TODAY", TODAY)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .expect("spawn");
            let elapsed = start.elapsed();
            assert!(status.success(), "{program} {args:?} failed: {status}");
            elapsed
        })
        .collect();
    support::median(&mut samples)
}

/// What `/usr/bin/time -v` saw of one more run of `byok-flow args`: its peak RSS
/// in kB and the CPU time it used (user + system), when `/usr/bin/time` is there.
fn time_v(args: &[&str]) -> Option<(u64, Duration)> {
    if !Path::new(TIME).exists() {
        return None;
    }
    let out = Command::new(TIME)
        .arg("-v")
        .arg(BIN)
        .args(args)
        .env("BYOK_FLOW_TODAY", TODAY)
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

/// One row of the table.
fn row(what: &str, runs: usize, median: Duration, once: Option<(u64, Duration)>, target: &str) {
    let (rss, cpu) = once.map_or(("n/a".to_string(), "n/a".to_string()), |(kb, cpu)| {
        (format!("{:.1} MB", kb as f64 / 1024.0), support::ms(cpu))
    });
    println!(
        "{what:<34} {runs:>5} {:>11} {cpu:>11} {rss:>11} {target:>14}",
        support::ms(median),
    );
}

fn main() {
    let files = support::write_workflows(&support::workflow_dir());
    println!("release binary {BIN}");
    println!(
        "median wall time of the runs, and the CPU time and peak RSS of one more; 2 shared cores: expect noise, compare ratios"
    );
    println!(
        "{:<34} {:>5} {:>11} {:>11} {:>11} {:>14}",
        "command", "runs", "median", "cpu (1 run)", "peak RSS", "target"
    );

    let floor = median_wall("/bin/true", &[], 200);
    row("/bin/true (spawn floor)", 200, floor, None, "-");
    let version = median_wall(BIN, &["--version"], 200);
    let target = format!(
        "< 10 ms: {}",
        support::verdict(version < Duration::from_millis(10))
    );
    row(
        "byok-flow --version",
        200,
        version,
        time_v(&["--version"]),
        &target,
    );

    for (agents, path) in &files {
        let file = path.to_str().expect("a UTF-8 path");
        let args = ["validate", file];
        let runs = if *agents >= 10_000 { 5 } else { 10 };
        let median = median_wall(BIN, &args, runs);
        let once = time_v(&args);
        let target = if *agents >= 10_000 {
            let ok = median < Duration::from_secs(1) && once.is_none_or(|(kb, _)| kb < 200 * 1024);
            format!("< 1 s, 200 MB: {}", support::verdict(ok))
        } else {
            "-".to_string()
        };
        row(
            &format!("validate ({agents} agents)"),
            runs,
            median,
            once,
            &target,
        );
    }

    for (agents, path) in &files {
        let file = path.to_str().expect("a UTF-8 path");
        let args = ["run", file, "--mock", "-q", "--input", "topic=benchmarks"];
        let runs = if *agents >= 10_000 { 5 } else { 10 };
        let median = median_wall(BIN, &args, runs);
        let target = if *agents >= 10_000 {
            format!(
                "< 2 s: {}",
                support::verdict(median < Duration::from_secs(2))
            )
        } else {
            "-".to_string()
        };
        row(
            &format!("run --mock -q ({agents} agents)"),
            runs,
            median,
            time_v(&args),
            &target,
        );
    }

    // Issue 13, item 15: a squad of 100,000 agents, once (each run takes seconds).
    let path = support::workflow_dir().join("scale-100000.yaml");
    let agents = 100_000;
    std::fs::write(&path, support::workflow(agents, 0x5eed ^ agents as u64))
        .expect("write a workflow");
    let file = path.to_str().expect("a UTF-8 path");
    let args = ["run", file, "--mock", "-q", "--input", "topic=benchmarks"];
    let median = median_wall(BIN, &args, 1);
    let once = time_v(&args);
    // `time -v` counts KiB; the goal is 300 MB (300,000,000 bytes).
    let ok =
        median <= Duration::from_secs(10) && once.is_none_or(|(kb, _)| kb * 1024 <= 300_000_000);
    row(
        "run --mock -q (100000 agents)",
        1,
        median,
        once,
        &format!("<= 10 s, 300 MB: {}", support::verdict(ok)),
    );
}
