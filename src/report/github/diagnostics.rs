//! Problems in a workflow file as annotations on it: each error or warning at its
//! line and column, titled by its stable code, so GitHub shows it on the file in
//! the pull request and on the run's summary page.

use std::path::Path;

use super::command::{Level, Place, annotation};
use crate::workflow::diagnostic::MAX_SHOWN;
use crate::workflow::{Diagnostic, FileReport, Severity};

/// One `::error` or `::warning` line per diagnostic in `report`.
pub fn annotations(report: &FileReport, workspace: Option<&Path>) -> String {
    let file = Place::file(&report.path, workspace);
    let mut out = String::new();
    // As on the terminal, the first 200; GitHub shows only the first few anyway.
    for d in report.diagnostics.iter().take(MAX_SHOWN) {
        let place = d
            .span
            .pos
            .map_or_else(|| file.clone(), |p| file.at(p.line, p.column));
        let level = match d.severity {
            Severity::Error => Level::Error,
            Severity::Warning => Level::Warning,
        };
        let mut message = d.full_message();
        if let Some(help) = &d.help {
            message.push_str("\nhelp: ");
            message.push_str(help);
        }
        out.push_str(&annotation(level, Some(&place), d.code, &message));
    }
    let hidden = report.diagnostics.len().saturating_sub(MAX_SHOWN);
    if hidden > 0 {
        let message = format!(
            "{hidden} more problems in this file; `byok-flow validate --json {}` lists every one",
            report.path.display()
        );
        let level = if report.diagnostics[MAX_SHOWN..]
            .iter()
            .any(Diagnostic::is_error)
        {
            Level::Error
        } else {
            Level::Warning
        };
        out.push_str(&annotation(level, Some(&file), "byok-flow", &message));
    }
    out
}
