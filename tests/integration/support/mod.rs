//! Shared test support: the real binary in a cleared environment, the fake
//! provider server (`fake`), and insta
//! filters that turn times, temp paths, ports and versions into stable tokens.

pub mod chromium;
pub mod fake;

use std::path::{Path, PathBuf};
use std::process::Output;

use assert_cmd::Command;

/// The repository root (where `workflows/` lives).
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// An example workflow's path.
pub fn example(name: &str) -> PathBuf {
    repo().join("workflows").join(name)
}

/// The day every test judges model retirements on (`BYOK_FLOW_TODAY`), so that no
/// test fails on the day a model it names retires; the examples are checked
/// against the real date (`issue14_examples_name_no_retired_model`).
pub const TODAY: &str = "2026-11-30";

/// `byok-flow` with a cleared environment: only what the test sets reaches it
/// (and `BYOK_FLOW_TODAY`, [`TODAY`]).
pub fn byok_flow(home: &Path) -> Command {
    Command::from_std(byok_flow_process(home))
}

/// [`byok_flow`] as a plain `std` command, for tests that need the child's pid
/// (to send it a signal) while it runs.
pub fn byok_flow_process(home: &Path) -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_byok-flow"));
    cmd.env_clear()
        .env("HOME", home)
        .env("NO_COLOR", "1")
        .env("BYOK_FLOW_TODAY", TODAY)
        .current_dir(home);
    cmd
}

/// Exit code, stdout and stderr as one text, for snapshots.
pub fn transcript(output: &Output) -> String {
    format!(
        "exit: {}\n----- stdout -----\n{}----- stderr -----\n{}",
        output
            .status
            .code()
            .map_or_else(|| "signal".to_string(), |c| c.to_string()),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Filters for every snapshot: temp dirs, durations, run ids, ports, the version.
pub fn filters(extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut filters: Vec<(String, String)> = vec![
        (regex_escape(&repo().display().to_string()), "[REPO]".into()),
        (r"/tmp/\.tmp[A-Za-z0-9]+".into(), "[TMP]".into()),
        (r"\[ *\d+\.\d+s\]".into(), "[TIME]".into()),
        (r"\b\d+\.\d\ds\b".into(), "[SECS]".into()),
        (
            r#""seconds": ?\d+(\.\d+)?(e-?\d+)?"#.into(),
            r#""seconds": [SECS]"#.into(),
        ),
        (
            r"(?m)^(total|\S+) ( +\S.*?) +\d+\.\d\d( +\S+)$".into(),
            "$1 $2 [SECS]$3".into(),
        ),
        (
            r#""(at|ready|preparing|held|started|ended)": \d+(\.\d+)?(e-?\d+)?"#.into(),
            r#""$1": [SECS]"#.into(),
        ),
        (
            r#""workflow_sha256": "[0-9a-f]{64}""#.into(),
            r#""workflow_sha256": "[SHA256]""#.into(),
        ),
        (r"127\.0\.0\.1:\d+".into(), "127.0.0.1:[PORT]".into()),
        (r"\b\d{10}-[0-9a-f]{6}\b".into(), "[RUN_ID]".into()),
        (r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ".into(), "[DATE]".into()),
        (regex_escape(env!("CARGO_PKG_VERSION")), "[VERSION]".into()),
    ];
    filters.extend(
        extra
            .iter()
            .map(|(a, b)| ((*a).to_string(), (*b).to_string())),
    );
    filters
}

fn regex_escape(text: &str) -> String {
    text.chars().fold(String::new(), |mut out, c| {
        if "\\.+*?()|[]{}^$#&-~".contains(c) {
            out.push('\\');
        }
        out.push(c);
        out
    })
}

/// Snapshots a command's transcript with the standard filters.
#[macro_export]
macro_rules! snapshot {
    ($name:expr, $output:expr) => {{
        let filters = $crate::support::filters(&[]);
        let mut settings = insta::Settings::clone_current();
        for (from, to) in &filters {
            settings.add_filter(from, to.as_str());
        }
        settings.set_prepend_module_to_snapshot(false);
        settings.bind(|| insta::assert_snapshot!($name, $crate::support::transcript(&$output)));
    }};
}
