//! The step's outputs (`$GITHUB_OUTPUT`): every output of the workflow under
//! its own name, then `outputs_json` (all of them as one JSON object),
//! `cost_usd`, `run_id` and `status`, so later steps read
//! `steps.ID.outputs.review` or `steps.ID.outputs.cost_usd`. `cost_usd` is a plain
//! number, or `unpriced` when an agent's model has no price (never `0` for that).
//!
//! A value with a line break is written `NAME<<DELIMITER`, the value, then
//! `DELIMITER` on a line of its own, with a random delimiter that the value is
//! checked not to contain: otherwise a reply could end the value early and set
//! other outputs. See <https://docs.github.com/en/actions/reference/workflow-commands-for-github-actions#multiline-strings>.

use std::fs::OpenOptions;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use super::command::{self, Level};
use crate::events::{Event, Subscriber};
use crate::record::RunRecord;

/// The outputs byok-flow sets besides the workflow's own; they are written last,
/// so they win over a workflow output of the same name.
pub const OWN: [&str; 4] = ["outputs_json", "cost_usd", "run_id", "status"];

/// Appends the run's outputs to `$GITHUB_OUTPUT` when it ends.
pub struct StepOutputs {
    path: PathBuf,
}

impl StepOutputs {
    pub fn new(path: &Path) -> Self {
        StepOutputs {
            path: path.to_path_buf(),
        }
    }
}

/// The lines for `$GITHUB_OUTPUT`.
pub fn render(record: &RunRecord) -> String {
    let mut out = String::new();
    for (name, value) in &record.outputs {
        out.push_str(&entry(name, value));
    }
    let json = serde_json::to_string(&record.outputs).unwrap_or_else(|_| "{}".into());
    let status = serde_json::to_value(record.status)
        .ok()
        .and_then(|s| s.as_str().map(String::from))
        .unwrap_or_default();
    for (name, value) in OWN.iter().zip([
        json,
        record
            .cost_usd
            .map_or_else(|| "unpriced".to_string(), dollars),
        record.run_id.clone(),
        status,
    ]) {
        out.push_str(&entry(name, &value));
    }
    out
}

/// `NAME=VALUE`, or the delimiter form for a value with a line break.
pub(super) fn entry(name: &str, value: &str) -> String {
    if !value.contains(['\n', '\r']) {
        return format!("{name}={value}\n");
    }
    let delimiter = command::token("ghadelimiter_", value);
    format!("{name}<<{delimiter}\n{value}\n{delimiter}\n")
}

/// Dollars as a plain number: `0.0123`, `0`.
pub(super) fn dollars(usd: f64) -> String {
    let text = format!("{usd:.6}");
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

impl Subscriber for StepOutputs {
    fn on_event(&mut self, event: &Event<'_>) -> std::io::Result<()> {
        if let Event::RunFinished { record } = event {
            let shadowed: Vec<&str> = OWN
                .into_iter()
                .filter(|own| record.outputs.contains_key(*own))
                .collect();
            for name in shadowed {
                eprint!(
                    "{}",
                    command::annotation(
                        Level::Warning,
                        None,
                        "byok-flow",
                        &format!(
                            "the workflow's output `{name}` has the name of one byok-flow sets itself; the step output `{name}` is byok-flow's (rename the output, or read it from `outputs_json`)"
                        ),
                    )
                );
            }
            let mut file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)?;
            file.write_all(render(record).as_bytes())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_line_values_get_a_delimiter_they_do_not_contain() {
        assert_eq!(entry("a", "one line"), "a=one line\n");
        let text = entry("review", "line 1\nghadelimiter_x\nline 3\n");
        let (head, rest) = text.split_once('\n').unwrap();
        let delimiter = head.strip_prefix("review<<").unwrap();
        assert!(delimiter.starts_with("ghadelimiter_") && delimiter.len() == 45);
        assert_eq!(
            rest,
            format!("line 1\nghadelimiter_x\nline 3\n\n{delimiter}\n")
        );
    }

    #[test]
    fn dollars_are_plain_numbers() {
        assert_eq!(dollars(0.0), "0");
        assert_eq!(dollars(0.012_3), "0.0123");
        assert_eq!(dollars(2.5), "2.5");
    }
}
