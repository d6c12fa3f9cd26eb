//! `byok-flow validate FILE...`: every problem in every file; exit 0 or 2.

use std::io::Write;
use std::path::PathBuf;

use serde_json::json;

use crate::cost::check::Retirements;
use crate::error::{Error, Exit, Result};
use crate::report::github;
use crate::settings::Global;
use crate::workflow::{self, diagnostic::counted};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Workflow files to check.
    #[arg(required = true, value_name = "WORKFLOW.yaml")]
    pub files: Vec<PathBuf>,

    /// Price models from this file instead of the built-in table (for the unpriced-model
    /// warning and the models' retirement dates).
    #[arg(long, value_name = "FILE", env = "BYOK_FLOW_PRICES")]
    pub prices: Option<PathBuf>,

    /// Print every problem of every file as one JSON document on stdout instead
    /// (none left out: the terminal shows the first 200 of a file).
    #[arg(long)]
    pub json: bool,

    /// A retired model is a warning, not an error: for a gateway that still serves it.
    #[arg(long, env = "BYOK_FLOW_ALLOW_RETIRED", value_parser = clap::builder::BoolishValueParser::new())]
    pub allow_retired: bool,
}

pub fn run(args: &Args, global: Global) -> Result<Exit> {
    let table = super::load_prices(args.prices.as_deref())?;
    let which = Retirements {
        allow_retired: args.allow_retired,
        deprecated: true,
    };
    let mut invalid = 0;
    let mut files = Vec::new();
    for file in &args.files {
        let (report, graph) = match workflow::check_file(file) {
            Ok((checked, mut report)) => {
                report
                    .diagnostics
                    .extend(super::priced_checks(&checked, &table, which));
                report
                    .diagnostics
                    .sort_by_key(|d| (d.span.pos.map(|p| p.offset), !d.is_error()));
                let edges: usize = (0..checked.dag.len())
                    .map(|i| checked.dag.dependencies(i).count())
                    .sum();
                (report, Some((checked.dag.len(), edges)))
            }
            Err(report) => (report, None),
        };
        let valid = graph.is_some() && !report.has_errors();
        if !valid {
            invalid += 1;
        }
        if args.json {
            // Annotations still go to GitHub; the terminal report is the JSON's.
            if let Some(github) = global.github {
                eprint!(
                    "{}",
                    github::diagnostics::annotations(&report, github.workspace.as_deref())
                );
            }
            files.push(json!({
                "path": file.display().to_string(),
                "valid": valid,
                "errors": report.error_count(),
                "warnings": report.diagnostics.len() - report.error_count(),
                "agents": graph.map(|(agents, _)| agents),
                "edges": graph.map(|(_, edges)| edges),
                "diagnostics": report.json(),
            }));
            continue;
        }
        if !report.diagnostics.is_empty() {
            super::show_report(&report, global);
        }
        if let (true, Some((agents, edges))) = (valid, graph) {
            println!(
                "{}: ok ({}, {})",
                file.display(),
                counted(agents, "agent"),
                counted(edges, "edge")
            );
        }
    }
    if args.json {
        let text = serde_json::to_string_pretty(&json!({ "files": files }))
            .map_err(|e| Error::new(Exit::AgentFailed, format!("cannot write JSON: {e}")))?;
        let mut out = std::io::stdout().lock();
        let written = writeln!(out, "{text}").and_then(|()| out.flush());
        if let Err(e) = written
            && e.kind() != std::io::ErrorKind::BrokenPipe
        {
            return Err(Error::new(
                Exit::AgentFailed,
                format!("cannot write JSON: {e}"),
            ));
        }
    } else if invalid > 0 && args.files.len() > 1 {
        eprintln!("{} of {} files are invalid.", invalid, args.files.len());
    }
    if invalid > 0 {
        return Err(Error::reported(Exit::Invalid));
    }
    Ok(Exit::Success)
}
