//! GitHub Actions mode (`GITHUB_ACTIONS=true`, SPEC §7): what a run and a
//! validation tell the runner besides the usual output. Each decrypted key is
//! masked (`command::add_mask`, called by the key store's hook); problems in the
//! workflow file and failed agents become annotations on the file; each agent's
//! log is a group, fenced from workflow commands; the step summary gets the
//! cost table, the outputs and the graph; `$GITHUB_OUTPUT` gets the outputs.
//!
//! Everything here is a [`crate::events::Subscriber`] or a pure function;
//! nothing reads the environment (that is [`crate::settings::GitHub`]'s job).

pub mod command;
pub mod diagnostics;
pub mod log;
pub mod outputs;
pub mod rows;
pub mod summary;

use std::path::Path;

use crate::events::Subscriber;
use crate::settings::GitHub;
use crate::workflow::Checked;

/// The subscribers of a run in GitHub Actions: the log (in place of the plain
/// progress lines), and the step summary and outputs where the runner asks for them.
pub fn subscribers(
    github: &GitHub,
    checked: &Checked,
    file: &Path,
    quiet: bool,
) -> Vec<Box<dyn Subscriber>> {
    let mut subscribers: Vec<Box<dyn Subscriber>> =
        vec![Box::new(log::Log::new(github, checked, file, quiet))];
    if let Some(path) = &github.step_summary {
        subscribers.push(Box::new(summary::StepSummary::new(
            path, github, checked, file,
        )));
    }
    if let Some(path) = &github.output {
        subscribers.push(Box::new(outputs::StepOutputs::new(path)));
    }
    subscribers
}

/// The subscribers of a dataset run in GitHub Actions: the step summary and the
/// outputs, where the runner asks for them.
pub fn rows_subscribers(github: &GitHub, file: &Path) -> Vec<Box<dyn Subscriber>> {
    let mut subscribers: Vec<Box<dyn Subscriber>> = Vec::new();
    if let Some(path) = &github.step_summary {
        subscribers.push(Box::new(rows::RowsSummary::new(path, github, file)));
    }
    if let Some(path) = &github.output {
        subscribers.push(Box::new(rows::RowsOutputs::new(path)));
    }
    subscribers
}
