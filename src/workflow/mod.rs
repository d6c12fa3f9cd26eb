//! The workflow file: its types, loading with positions, and every check SPEC §2
//! names that needs neither keys nor prices.

pub mod diagnostic;
pub mod duration;
pub mod lines;
pub mod load;
pub mod map;
pub mod model;
pub mod providers;
pub mod repair;
pub mod schema;
pub mod snippet;
pub mod tree;
pub mod validate;
pub mod yaml;

pub use diagnostic::{Diagnostic, FileReport, Severity, Span};
pub use model::{Agent, OutputKind, Workflow};
pub use validate::Checked;

/// Loads a file and runs every check; the report carries warnings too.
pub fn check_file(path: &std::path::Path) -> Result<(Checked, FileReport), FileReport> {
    let (loaded, report) = load::load_file(path)?;
    // The trees the file was read through are gone: their memory goes back.
    crate::memory::give_back();
    validate::check(loaded, report)
}
