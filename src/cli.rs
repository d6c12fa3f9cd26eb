//! The command line as the user types it (clap derive). Each subcommand's
//! arguments live beside its handler in `commands/`; nothing below the commands
//! reads these types.

use clap::{Parser, Subcommand};

use crate::commands::{graph, keys, prices, run, runs, schema, validate};
use crate::settings::GitHub;

/// Run declarative LLM workflows ("squads") with your own API keys.
#[derive(Debug, Parser)]
#[command(name = "byok-flow", version, about, max_term_width = 100)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,

    /// Log more on stderr: -v info, -vv debug, -vvv trace.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,

    /// Print only results and errors: no progress, no closing table.
    #[arg(short, long, global = true)]
    pub quiet: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a workflow.
    Run(run::Args),
    /// Say what a run would cost, offline and without keys (same as `run --dry-run`).
    Estimate(run::Args),
    /// Check workflow files and report every problem; exit 0 or 2.
    Validate(validate::Args),
    /// Draw a workflow's agents and their edges (Mermaid or Graphviz DOT).
    Graph(graph::Args),
    /// Print the workflow JSON Schema (for editors and CI).
    Schema(schema::Args),
    /// Show the pricing table in use (or one model's prices), with its source and date.
    Prices(prices::Args),
    /// Manage API keys: age-encrypted files in `.byok/`, and who can open them.
    Keys(keys::Args),
    /// Past runs from the history: list them, show one, and what was spent.
    Runs(runs::Args),
}

/// Options every command shares.
#[derive(Debug, Clone, Copy)]
pub struct Global {
    pub quiet: bool,
    /// Whether stderr is a terminal that takes colour.
    pub color: bool,
    /// Whether stderr is a terminal (for the live view).
    pub terminal: bool,
    /// GitHub Actions mode: annotations, log groups, the step summary and outputs.
    /// Resolved once in `main.rs` and kept for the whole process, so `Global`
    /// stays `Copy`.
    pub github: Option<&'static GitHub>,
}
