//! Load + validate + plan of generated 1,000- and 10,000-agent workflows, in
//! process through the library: the median time of each phase over several
//! runs, and the peak memory of one load + validate + plan, measured in a fresh
//! child process (this benchmark re-executed) from its `VmHWM`.
//!
//! "Plan" is what a run does before its first call: resolve every agent's
//! provider and lane and compile every template (`runner::prepare`).
//!
//! Run: `cargo bench --bench load`. Targets (issue 2): under 1 s and under
//! 200 MB for 10,000 agents.

mod support;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use byok_flow::cost::prices::PriceTable;
use byok_flow::events::Bus;
use byok_flow::runner::{self, RunSettings};
use byok_flow::workflow::{load, validate};
use indexmap::IndexMap;

/// Set in the child process: the workflow to load once before reporting memory.
const CHILD: &str = "BYOK_FLOW_BENCH_PEAK_OF";

/// One load, validate and plan: the wall time of each phase, then the CPU time of all three.
fn load_validate_plan(path: &Path) -> [Duration; 4] {
    let cpu = thread_cpu();
    let t0 = Instant::now();
    let (loaded, report) = load::load_file(path).unwrap_or_else(|r| panic!("{}", r.render(false)));
    let t1 = Instant::now();
    let (checked, _) =
        validate::check(loaded, report).unwrap_or_else(|r| panic!("{}", r.render(false)));
    let t2 = Instant::now();
    let settings = RunSettings {
        file: path.display().to_string(),
        inputs: IndexMap::from([("topic".to_string(), "benchmarks".to_string())]),
        mock: true,
        concurrency: 8,
        keep_going: false,
        prices: Arc::new(PriceTable::builtin()),
        max_usd: None,
        cache: None,
        refresh: Vec::new(),
        estimate: None,
        run_id: None,
        busy: None,
    };
    let planned =
        runner::prepare(Arc::new(checked), &settings, None, &Bus::default()).expect("plan the run");
    let t3 = Instant::now();
    let cpu = thread_cpu()
        .zip(cpu)
        .and_then(|(after, before)| after.checked_sub(before))
        .unwrap_or_default();
    drop(planned);
    [t1 - t0, t2 - t1, t3 - t2, cpu]
}

/// The CPU time this thread has used, from `/proc/thread-self/schedstat` (in ns):
/// steadier than wall time on a shared machine, where other work takes turns.
fn thread_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    Some(Duration::from_nanos(
        stat.split_whitespace().next()?.parse().ok()?,
    ))
}

/// A line of `/proc/self/status`, in kB.
fn status_kb(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The child: report the peak RSS before and after one load + validate + plan.
fn child(path: &Path) {
    let before = status_kb("VmHWM:").unwrap_or_default();
    load_validate_plan(path);
    let after = status_kb("VmHWM:").unwrap_or_default();
    println!("{before} {after}");
}

/// Peak RSS in kB (at start-up, and after one load + validate + plan), in a fresh process.
fn peak_rss_kb(path: &Path) -> Option<(u64, u64)> {
    let out = Command::new(std::env::current_exe().ok()?)
        .env(CHILD, path)
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    let mut fields = text.split_whitespace().map(str::parse::<u64>);
    Some((fields.next()?.ok()?, fields.next()?.ok()?))
}

fn main() {
    if let Some(path) = std::env::var_os(CHILD) {
        child(Path::new(&path));
        return;
    }
    let files = support::write_workflows(&support::workflow_dir());
    println!(
        "load + validate + plan, in process (median of the runs; 2 shared cores: expect noise)"
    );
    println!(
        "{:>7} {:>8} {:>5} {:>11} {:>11} {:>11} {:>11} {:>11} {:>10} {:>7}",
        "agents",
        "file",
        "runs",
        "load",
        "validate",
        "plan",
        "total",
        "total cpu",
        "peak RSS",
        "target"
    );
    for (agents, path) in files {
        let runs = if agents >= 10_000 { 7 } else { 15 };
        let mut phases: [Vec<Duration>; 5] = Default::default();
        for _ in 0..runs {
            let [load, validate, plan, cpu] = load_validate_plan(&path);
            let total = load + validate + plan;
            for (samples, t) in phases.iter_mut().zip([load, validate, plan, total, cpu]) {
                samples.push(t);
            }
        }
        let [load, validate, plan, total, cpu] = phases.map(|mut s| support::median(&mut s));
        let size = std::fs::metadata(&path).map_or(0, |m| m.len());
        let peak = peak_rss_kb(&path);
        let peak_text = peak.map_or("n/a".to_string(), |(_, after)| {
            format!("{:.1} MB", after as f64 / 1024.0)
        });
        let ok = total < Duration::from_secs(1) && peak.is_none_or(|(_, kb)| kb < 200 * 1024);
        println!(
            "{agents:>7} {:>8} {runs:>5} {:>11} {:>11} {:>11} {:>11} {:>11} {peak_text:>10} {:>7}",
            format!("{:.1} MB", size as f64 / 1e6),
            support::ms(load),
            support::ms(validate),
            support::ms(plan),
            support::ms(total),
            support::ms(cpu),
            if agents >= 10_000 {
                support::verdict(ok)
            } else {
                "-"
            },
        );
        if let Some((before, _)) = peak {
            println!(
                "{:>7} (the child's peak RSS before loading: {:.1} MB)",
                "",
                before as f64 / 1024.0
            );
        }
    }
    println!(
        "load = read + parse with positions + schema check + typed model; plan = runner::prepare"
    );
}
