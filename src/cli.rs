//! The command line as the user types it (clap derive). Each subcommand's
//! arguments live beside its handler in `commands/`; nothing below the commands
//! reads these types.

use clap::{Parser, Subcommand};

use crate::commands::{
    estimate, graph, init, keys, merge, prices, report, run, runs, schema, validate,
};
use crate::error::{Exit, Result};
use crate::settings::Global;

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
    /// Say what a run would cost, offline and without keys (same as `run --dry-run`);
    /// with `--diff REF`, what a change to the workflow does to that cost.
    Estimate(estimate::Args),
    /// Check workflow files and report every problem; exit 0 or 2.
    Validate(validate::Args),
    /// Draw a workflow's agents and their edges (Mermaid, Graphviz DOT or SVG).
    Graph(graph::Args),
    /// Print the workflow JSON Schema (for editors and CI).
    Schema(schema::Args),
    /// Show the pricing table in use (or one model's prices), with its source and date.
    Prices(prices::Args),
    /// Manage API keys: age-encrypted files in `.byok/`, and who can open them.
    Keys(keys::Args),
    /// Past runs from the history: list them, show one, and what was spent.
    Runs(runs::Args),
    /// Set up this git repository: an identity, `.byok/recipients`, an example squad,
    /// a GitHub workflow and `.gitignore` lines; never overwrites a file.
    Init(init::Args),
    /// Write a run's report: one self-contained HTML page (graph, timeline, dollars, outputs).
    Report(report::Args),
    /// Join the shards of a dataset run (`run --each … --shard K/N --out DIR`) into one.
    Merge(merge::Args),
}

impl Command {
    /// Runs the chosen subcommand.
    pub fn run(self, global: Global) -> Result<Exit> {
        match self {
            Command::Run(args) => run::run(&args, global),
            Command::Estimate(mut args) => estimate::run(&mut args, global),
            Command::Prices(args) => prices::run(&args),
            Command::Validate(args) => validate::run(&args, global),
            Command::Graph(args) => graph::run(&args, global),
            Command::Schema(args) => schema::run(&args),
            Command::Keys(args) => keys::run(&args, global),
            Command::Runs(args) => runs::run(&args),
            Command::Report(args) => report::run(&args, global),
            Command::Init(args) => init::run(&args, global),
            Command::Merge(args) => merge::run(&args, global),
        }
    }
}
