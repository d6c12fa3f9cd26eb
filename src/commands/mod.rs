//! One module per subcommand: its arguments and a short handler; the work lives in
//! the domain modules.

pub mod graph;
pub mod keys;
pub mod run;
pub mod schema;
pub mod validate;

use std::path::Path;

use crate::cli::{Command, Global};
use crate::error::{Error, Exit, Result};
use crate::workflow::{self, Checked};

/// Runs the chosen subcommand.
pub fn dispatch(command: Command, global: Global) -> Result<Exit> {
    match command {
        Command::Run(args) => run::run(&args, global),
        Command::Validate(args) => validate::run(&args, global),
        Command::Graph(args) => graph::run(&args, global),
        Command::Schema(args) => schema::run(&args),
        Command::Keys(args) => keys::run(&args, global),
    }
}

/// Loads and checks a workflow, printing its warnings, or every problem and exit 2.
pub fn load_checked(path: &Path, global: Global) -> Result<Checked> {
    match workflow::check_file(path) {
        Ok((checked, report)) => {
            if !report.diagnostics.is_empty() && !global.quiet {
                eprint!("{}", report.render(global.color));
            }
            Ok(checked)
        }
        Err(report) => {
            eprint!("{}", report.render(global.color));
            Err(Error::reported(Exit::Invalid))
        }
    }
}
