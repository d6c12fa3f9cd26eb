//! The step summary (`$GITHUB_STEP_SUMMARY`): Markdown that GitHub shows on the
//! run's page: how the run ended, the cost table with its total, the budget, each
//! output in a collapsible block, and the squad as a Mermaid graph.
//!
//! Outputs are shown as code, never rendered as Markdown: a reply is text a
//! model wrote, perhaps steered by what it read (a pull request's diff), and
//! rendered Markdown would load its images, whose addresses can carry data out.

use std::fs::OpenOptions;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use super::command::Place;
use crate::events::{Event, Subscriber};
use crate::record::{AgentStatus, RunRecord, RunStatus};
use crate::report::{
    agent_tokens, agent_usd, approx, budget_line, cache_used, cost_notes, run_usd, sources_text,
    table,
};
use crate::settings::GitHub;
use crate::workflow::Checked;

/// Appends the run's summary to `$GITHUB_STEP_SUMMARY` when it ends.
pub struct StepSummary {
    path: PathBuf,
    file: String,
    graph: String,
}

impl StepSummary {
    pub fn new(path: &Path, github: &GitHub, checked: &Checked, file: &Path) -> Self {
        let models: Vec<&str> = checked
            .workflow
            .agents
            .values()
            .map(|a| a.model.as_str())
            .collect();
        let graph = checked.dag.to_mermaid(
            |i| format!("{}<br/>{}", checked.dag.name(i), models[i]),
            |i| checked.workflow.agents[i].for_each.is_some(),
        );
        StepSummary {
            path: path.to_path_buf(),
            file: Place::file(file, github.workspace.as_deref()).file,
            graph,
        }
    }
}

/// The summary of a run, as Markdown.
pub fn render(record: &RunRecord, file: &str, graph: &str) -> String {
    let ended = match record.status {
        RunStatus::Succeeded => "succeeded",
        RunStatus::Failed => "failed",
        RunStatus::BudgetReached => "stopped at its budget",
        RunStatus::Interrupted => "was interrupted",
    };
    let mut out = format!(
        "## byok-flow: `{}` {ended}\n\n`{}` · run `{}` · {} · {:.2}s{}\n\n",
        record.workflow,
        file,
        record.run_id,
        crate::workflow::diagnostic::counted(record.agents.len(), "agent"),
        record.seconds,
        if record.mock {
            " · every agent answered by the mock provider"
        } else {
            ""
        }
    );
    out.push_str(&cost_table(record));
    let notes = cost_notes(record);
    if !notes.is_empty() {
        out.push('\n');
        for note in notes {
            out.push_str(&format!("{}  \n", cell(&note)));
        }
    }
    if let Some(budget) = record.budget_usd {
        let line = budget_line(record, budget);
        let line = line.strip_prefix("budget ").unwrap_or(&line);
        out.push_str(&format!("\n**Budget** {line}.\n"));
    }
    if let Some(outcome) = table::outcome(record) {
        out.push_str(&format!("\n{outcome}\n"));
        for a in &record.agents {
            if a.status == AgentStatus::Failed {
                out.push_str(&format!(
                    "- `{}`: {}\n",
                    a.name,
                    one_line(a.reason.as_deref().unwrap_or("unknown error"))
                ));
            }
        }
    }
    if !record.outputs.is_empty() {
        out.push_str("\n### Outputs\n");
        for (name, text) in &record.outputs {
            out.push_str(&details(&format!("<code>{name}</code>"), text));
        }
    }
    let cited: Vec<_> = record
        .agents
        .iter()
        .filter(|a| !a.citations.is_empty())
        .collect();
    if !cited.is_empty() {
        out.push_str("\n### Sources\n");
        for a in cited {
            out.push_str(&details(
                &format!(
                    "<code>{}</code> cites {}",
                    a.name,
                    crate::workflow::diagnostic::counted(a.citations.len(), "source")
                ),
                &sources_text(&a.citations),
            ));
        }
    }
    out.push_str(&format!("\n### Squad\n\n```mermaid\n{graph}```\n\n"));
    out
}

/// A collapsible block holding `text` as code, never rendered.
fn details(summary: &str, text: &str) -> String {
    let fence = "`".repeat(longest_run(text, '`').max(2) + 1);
    format!(
        "\n<details>\n<summary>{summary}</summary>\n\n{fence}text\n{}\n{fence}\n\n</details>\n",
        text.trim_end_matches('\n')
    )
}

/// The closing table as a Markdown table (with cache columns when the prompt
/// cache was used).
fn cost_table(record: &RunRecord) -> String {
    let cache = cache_used(record);
    let (cache_head, cache_rule) = if cache {
        (" cache read | cache write |", " ---: | ---: |")
    } else {
        ("", "")
    };
    let mut out = format!(
        "| agent | model | status | tokens in | tokens out |{cache_head} seconds | cost |\n\
         | --- | --- | --- | ---: | ---: |{cache_rule} ---: | ---: |\n",
    );
    let cache_cells = |usage: &crate::usage::Usage, bold: bool| {
        if !cache {
            return String::new();
        }
        let b = if bold { "**" } else { "" };
        format!(
            " {b}{}{b} | {b}{}{b} |",
            usage.cache_read,
            usage.cache_writes()
        )
    };
    for a in &record.agents {
        let mut status = a.status.as_str().to_string();
        if a.stop_reason.as_deref() == Some("max_tokens") {
            status.push_str(" (cut at max_tokens)");
        }
        let (tokens_in, tokens_out) = agent_tokens(a);
        out.push_str(&format!(
            "| {} | {} | {status} | {} | {} |{} {:.2} | {} |\n",
            a.name,
            cell(&format!("{}/{}", a.provider, a.model)),
            cell(&tokens_in),
            cell(&tokens_out),
            cache_cells(&a.usage, false),
            a.seconds,
            cell(&agent_usd(a))
        ));
    }
    let mark = approx(record.counted_locally());
    let total = run_usd(record).replace(">=", "≥");
    out.push_str(&format!(
        "| **total** | | | **{mark}{}** | **{mark}{}** |{} **{:.2}** | **{}** |\n",
        record.usage.input,
        record.usage.output,
        cache_cells(&record.usage, true),
        record.seconds,
        cell(&total)
    ));
    out
}

/// Text for a table cell: no line breaks, `|` escaped.
pub(super) fn cell(text: &str) -> String {
    one_line(text).replace('|', "\\|")
}

pub(super) fn one_line(text: &str) -> String {
    text.split(['\r', '\n'])
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The longest run of `c` in `text`, so a code fence can be longer than any inside it.
pub(super) fn longest_run(text: &str, c: char) -> usize {
    let (mut longest, mut run) = (0, 0);
    for ch in text.chars() {
        run = if ch == c { run + 1 } else { 0 };
        longest = longest.max(run);
    }
    longest
}

impl Subscriber for StepSummary {
    fn on_event(&mut self, event: &Event<'_>) -> std::io::Result<()> {
        if let Event::RunFinished { record } = event {
            let text = render(record, &self.file, &self.graph);
            let mut file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)?;
            file.write_all(text.as_bytes())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fence_is_longer_than_any_run_of_backticks_inside() {
        assert_eq!(longest_run("a ``` b `` c", '`'), 3);
        assert_eq!(longest_run("none", '`'), 0);
        assert_eq!(cell("a|b\nc"), "a\\|b c");
    }
}
