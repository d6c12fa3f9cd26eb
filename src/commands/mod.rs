//! One module per subcommand: its arguments and a short handler; the work lives in
//! the domain modules.

pub mod batches;
mod each;
pub mod estimate;
pub mod graph;
pub mod init;
pub mod keys;
pub mod merge;
pub mod prices;
pub mod report;
pub mod run;
pub mod runs;
pub mod schema;
pub mod validate;

use std::path::Path;

use crate::batch::driver::Batcher;
use crate::cost::{self, check::Retirements, prices::PriceTable};
use crate::error::{Error, Exit, Result};
use crate::report::github;
use crate::session::Session;
use crate::settings::Global;
use crate::workflow::{self, Checked, FileReport};

/// Loads and checks a workflow, printing its warnings, or every problem and exit 2.
pub fn load_checked(path: &Path, global: Global) -> Result<Checked> {
    load_with(path, global, |_| Vec::new())
}

/// [`load_checked`], with what the price table says of its models (see
/// [`priced_checks`]). Deprecated models are `validate`'s to warn about, not
/// every run's.
pub fn load_priced(
    path: &Path,
    global: Global,
    table: &PriceTable,
    allow_retired: bool,
) -> Result<Checked> {
    let which = Retirements {
        allow_retired,
        deprecated: false,
    };
    load_with(path, global, |checked| priced_checks(checked, table, which))
}

/// The checks that need the price table: models it lacks (warnings),
/// `max_tokens` above a model's output limit (errors), and retired models
/// (errors, warnings with `allow_retired`) and, when asked, deprecated ones
/// (warnings).
pub fn priced_checks(
    checked: &Checked,
    table: &PriceTable,
    which: Retirements,
) -> Vec<workflow::Diagnostic> {
    let mut out = cost::check::unpriced(checked, table);
    out.extend(cost::limits::over_output_limit(checked, table));
    out.extend(cost::check::retirements(checked, table, which));
    // Not the table's, but every command that reads it checks the file this far.
    out.extend(crate::batch::problems(checked));
    out
}

/// The pricing table of `--prices FILE`, or the built-in one (once
/// `BYOK_FLOW_TODAY`, the day its retirement dates are read as of, is checked).
pub fn load_prices(file: Option<&Path>) -> Result<PriceTable> {
    cost::lifecycle::check_as_of().map_err(|(message, hint)| Error::usage(message).hint(hint))?;
    PriceTable::load(file).map_err(|e| {
        Error::usage(e.to_string()).hint(
            "a prices file is JSON like data/prices.json: {\"models\": {\"openai/gpt-4o\": {\"input\": 2.5, \"output\": 10}}}, in dollars per million tokens",
        )
    })
}

fn load_with(
    path: &Path,
    global: Global,
    more: impl FnOnce(&Checked) -> Vec<workflow::Diagnostic>,
) -> Result<Checked> {
    match workflow::check_file(path) {
        Ok((checked, mut report)) => {
            report.diagnostics.extend(more(&checked));
            report
                .diagnostics
                .sort_by_key(|d| (d.span.pos.map(|p| p.offset), !d.is_error()));
            if report.has_errors() {
                show_report(&report, global);
                return Err(Error::reported(Exit::Invalid));
            }
            if !report.diagnostics.is_empty() && !global.quiet {
                show_report(&report, global);
            }
            Ok(checked)
        }
        Err(report) => {
            show_report(&report, global);
            Err(Error::reported(Exit::Invalid))
        }
    }
}

/// Prints a file's problems on stderr, and in GitHub Actions also as annotations
/// on the file.
pub fn show_report(report: &FileReport, global: Global) {
    eprint!("{}", report.render(global.color));
    if let Some(github) = global.github {
        eprint!(
            "{}",
            github::diagnostics::annotations(report, github.workspace.as_deref())
        );
    }
}

/// Once a run's batches are in: with `--detach`, marks the run submitted, prints
/// its id and says how to collect `what` (`Some(exit)`: the command ends there);
/// otherwise says how many batches are left running at the provider.
pub fn close_batches(
    waves: &Batcher,
    session: &Session,
    run_id: &str,
    what: &str,
    quiet: bool,
) -> Option<Exit> {
    waves.finish();
    let pending = waves.pending();
    if waves.did_detach() {
        session.mark_submitted(run_id);
        println!("{run_id}");
        if !quiet {
            eprintln!(
                "detached: {pending} batch{} submitted; collect the {what} with the same command again, or `byok-flow runs resume {run_id}`",
                if pending == 1 { "" } else { "es" },
            );
        }
        return Some(Exit::Success);
    }
    if pending > 0 && !quiet {
        eprintln!(
            "{pending} batch{} left running at the provider; collect the {what} with the same command again, or `byok-flow runs resume {run_id}` (`byok-flow runs cancel {run_id}` cancels them)",
            if pending == 1 { " is" } else { "es are" },
        );
    }
    None
}
