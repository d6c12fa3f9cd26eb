//! `byok-flow validate FILE...`: every problem in every file; exit 0 or 2.

use std::path::PathBuf;

use crate::error::{Error, Exit, Result};
use crate::settings::Global;
use crate::workflow::{self, diagnostic::counted};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Workflow files to check.
    #[arg(required = true, value_name = "WORKFLOW.yaml")]
    pub files: Vec<PathBuf>,

    /// Price models from this file instead of the built-in table (for the unpriced-model warning).
    #[arg(long, value_name = "FILE", env = "BYOK_FLOW_PRICES")]
    pub prices: Option<PathBuf>,
}

pub fn run(args: &Args, global: Global) -> Result<Exit> {
    let table = super::load_prices(args.prices.as_deref())?;
    let mut invalid = 0;
    for file in &args.files {
        match workflow::check_file(file) {
            Ok((checked, mut report)) => {
                report
                    .diagnostics
                    .extend(super::priced_checks(&checked, &table));
                report
                    .diagnostics
                    .sort_by_key(|d| (d.span.pos.map(|p| p.offset), !d.is_error()));
                if !report.diagnostics.is_empty() {
                    super::show_report(&report, global);
                }
                if report.has_errors() {
                    invalid += 1;
                    continue;
                }
                let edges: usize = (0..checked.dag.len())
                    .map(|i| checked.dag.dependencies(i).count())
                    .sum();
                println!(
                    "{}: ok ({}, {})",
                    file.display(),
                    counted(checked.dag.len(), "agent"),
                    counted(edges, "edge")
                );
            }
            Err(report) => {
                super::show_report(&report, global);
                invalid += 1;
            }
        }
    }
    if invalid > 0 {
        if args.files.len() > 1 {
            eprintln!("{} of {} files are invalid.", invalid, args.files.len());
        }
        return Err(Error::reported(Exit::Invalid));
    }
    Ok(Exit::Success)
}
