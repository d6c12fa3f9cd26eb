//! Batch mode (SPEC §9) against the fake server's three batch APIs: waves, the
//! `custom_id` map, results in any order, failures inside a batch, limits, prices,
//! the budget, state and resume (kill -9 at every phase), detach, cancel, the
//! host rule on results URLs, and the canary keys.

mod budget;
mod resume;
mod rows;
mod tools;
mod waves;

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;

use crate::providers::{ANTHROPIC_KEY, GEMINI_KEY, OPENAI_KEY, workflow};
use crate::support::fake::FakeServer;

/// Polls and gathering in milliseconds, back-off waits at zero.
pub const FAST: &[(&str, &str)] = &[
    ("BYOK_FLOW_BATCH_POLL", "20ms"),
    ("BYOK_FLOW_BATCH_GATHER", "50ms"),
    ("BYOK_FLOW_BACKOFF_SCALE", "0"),
];

/// A test's folder: the workflow, the cache (and the batch state beside it), the history.
pub struct Place {
    pub dir: tempfile::TempDir,
}

impl Place {
    pub fn new() -> Self {
        Place {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn states(&self) -> PathBuf {
        self.path().join("cache/batches")
    }

    /// The state files left.
    pub fn state_files(&self) -> Vec<PathBuf> {
        std::fs::read_dir(self.states())
            .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
            .unwrap_or_default()
    }

    /// `byok-flow ARGS` in this place, with the keys, the fast timings and `env`.
    pub fn command(&self, args: &[&str], env: &[(&str, &str)]) -> std::process::Command {
        let mut cmd = crate::support::byok_flow_process(self.path());
        cmd.args(args)
            .env("ANTHROPIC_KEY", ANTHROPIC_KEY)
            .env("OPENAI_KEY", OPENAI_KEY)
            .env("GEMINI_KEY", GEMINI_KEY)
            .env("BYOK_FLOW_CACHE_DIR", self.path().join("cache"))
            .env("BYOK_FLOW_HISTORY", self.path().join("history.sqlite"));
        for (k, v) in FAST.iter().chain(env) {
            cmd.env(k, v);
        }
        cmd
    }

    /// `run flow.yaml --batch --json -vvv` (and `extra`) against `server`; no key
    /// may show in what it prints, the state files or the cache.
    pub fn run(
        &self,
        server: &FakeServer,
        agents: &str,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Output {
        let yaml = workflow(server, agents);
        std::fs::write(self.path().join("flow.yaml"), &yaml).unwrap();
        let host = server.url().trim_start_matches("http://").to_string();
        let mut args = vec![
            "run",
            "flow.yaml",
            "--batch",
            "--json",
            "-vvv",
            "--allow-host",
            &host,
        ];
        args.extend(extra);
        let out = assert_cmd::Command::from_std(self.command(&args, env))
            .timeout(std::time::Duration::from_mins(1))
            .output()
            .unwrap();
        self.assert_no_key(&out);
        out
    }

    /// No key in the output, the state files, the cache or the history.
    pub fn assert_no_key(&self, out: &Output) {
        let mut texts = vec![
            (
                "stdout".to_string(),
                String::from_utf8_lossy(&out.stdout).into_owned(),
            ),
            (
                "stderr".to_string(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            ),
        ];
        for file in walk(self.path()) {
            let bytes = std::fs::read(&file).unwrap_or_default();
            texts.push((
                file.display().to_string(),
                String::from_utf8_lossy(&bytes).into_owned(),
            ));
        }
        for (place, text) in texts {
            for key in [ANTHROPIC_KEY, OPENAI_KEY, GEMINI_KEY] {
                assert!(!text.contains(key), "a key in {place}:\n{text}");
            }
        }
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

pub fn record(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not a run record ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

pub fn agent<'a>(record: &'a Value, name: &str) -> &'a Value {
    record["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == name)
        .unwrap_or_else(|| panic!("no agent {name} in {record}"))
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// What a detached run prints on stdout: its run id.
pub fn run_id(out: &Output) -> String {
    String::from_utf8(out.stdout.clone())
        .expect("the run id is UTF-8")
        .trim()
        .to_string()
}
