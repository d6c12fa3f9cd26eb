//! A dataset run in GitHub Actions: the step summary (how the rows ended, every
//! agent's calls, tokens and dollars, and the first failed rows with their errors)
//! and the step's outputs (`run_id`, `status`, `cost_usd`, `rows`, `rows_succeeded`,
//! `rows_failed`). The results themselves stay in `results.jsonl`.
//!
//! An error can quote a provider's reply, so each is shown as code, never as
//! Markdown.

use std::fs::OpenOptions;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use super::command::Place;
use super::outputs::{dollars, entry};
use super::summary::{cell, longest_run, one_line};
use crate::dataset::record::DatasetRecord;
use crate::events::{Event, Subscriber};
use crate::record::RunStatus;
use crate::report::rows::{progress, table};
use crate::report::usd;
use crate::settings::GitHub;

/// Appends a dataset run's summary to `$GITHUB_STEP_SUMMARY` when it ends.
pub struct RowsSummary {
    path: PathBuf,
    file: String,
}

impl RowsSummary {
    pub fn new(path: &Path, github: &GitHub, file: &Path) -> Self {
        RowsSummary {
            path: path.to_path_buf(),
            file: Place::file(file, github.workspace.as_deref()).file,
        }
    }
}

/// The summary of a dataset run, as Markdown.
pub fn render(record: &DatasetRecord, file: &str) -> String {
    let ended = match record.status {
        RunStatus::Succeeded => "succeeded",
        RunStatus::Failed => "had failed rows",
        RunStatus::BudgetReached => "stopped at its budget",
        RunStatus::Interrupted => "was interrupted",
    };
    let shard = record
        .shard
        .map_or_else(String::new, |s| format!(" · shard {s}"));
    let mut out = format!(
        "## byok-flow: `{}` over `{}` {ended}\n\n`{file}` · run `{}`{shard} · {:.2}s{}\n\n**{}.**\n\n",
        record.workflow,
        cell(&record.rows_file),
        record.run_id,
        record.seconds,
        if record.mock {
            " · every agent answered by the mock provider"
        } else {
            ""
        },
        table::counts(&record.rows),
    );
    out.push_str(
        "| agent | model | calls | failed | cached | tokens in | tokens out | cost |\n\
         | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |\n",
    );
    for a in &record.agents {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} |\n",
            a.name,
            cell(&format!("{}/{}", a.provider, a.model)),
            a.calls,
            a.failed,
            a.cached,
            a.usage.input,
            a.usage.output,
            usd(a.cost_usd)
        ));
    }
    let total = table::dollars(record).replace(">=", "≥");
    out.push_str(&format!(
        "| **total** | | | | | **{}** | **{}** | **{total}** |\n",
        record.usage.input, record.usage.output
    ));
    if let Some(line) =
        crate::report::prompt_cache_line(&record.usage, record.cache_saved_usd, record.mock)
    {
        out.push_str(&format!("\n{line}\n"));
    }
    if let Some(budget) = record.budget_usd {
        out.push_str(&format!(
            "\n**Budget** {}: {total} spent.\n",
            usd(Some(budget)),
        ));
    }
    if !record.failed_rows.is_empty() {
        out.push_str(&format!(
            "\n### First failed rows\n\n{} of {} failed; the results have every row and its error.\n\n",
            record.failed_rows.len(),
            record.rows.failed
        ));
        for row in &record.failed_rows {
            let line = one_line(&progress::failed_line(row));
            let fence = "`".repeat(longest_run(&line, '`') + 1);
            out.push_str(&format!("- {fence} {line} {fence}\n"));
        }
    }
    out.push('\n');
    out
}

impl Subscriber for RowsSummary {
    fn on_event(&mut self, event: &Event<'_>) -> std::io::Result<()> {
        if let Event::RowsFinished { record } = event {
            let mut file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)?;
            file.write_all(render(record, &self.file).as_bytes())?;
        }
        Ok(())
    }
}

/// Appends a dataset run's outputs to `$GITHUB_OUTPUT` when it ends.
pub struct RowsOutputs {
    path: PathBuf,
}

impl RowsOutputs {
    pub fn new(path: &Path) -> Self {
        RowsOutputs {
            path: path.to_path_buf(),
        }
    }
}

/// The lines for `$GITHUB_OUTPUT`.
pub fn outputs(record: &DatasetRecord) -> String {
    let status = serde_json::to_value(record.status)
        .ok()
        .and_then(|s| s.as_str().map(String::from))
        .unwrap_or_default();
    [
        ("run_id", record.run_id.clone()),
        ("status", status),
        (
            "cost_usd",
            record
                .cost_usd
                .map_or_else(|| "unpriced".to_string(), dollars),
        ),
        ("rows", record.rows.total.to_string()),
        ("rows_succeeded", record.rows.succeeded.to_string()),
        ("rows_failed", record.rows.failed.to_string()),
    ]
    .iter()
    .map(|(name, value)| entry(name, value))
    .collect()
}

impl Subscriber for RowsOutputs {
    fn on_event(&mut self, event: &Event<'_>) -> std::io::Result<()> {
        if let Event::RowsFinished { record } = event {
            let mut file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)?;
            file.write_all(outputs(record).as_bytes())?;
        }
        Ok(())
    }
}
