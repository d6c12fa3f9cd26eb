//! The `byok-flow` binary: parse the command line, run, map the result to an exit code.

use std::io::IsTerminal;
use std::process::ExitCode;

use byok_flow::cli::{Cli, Global};
use byok_flow::commands;
use clap::Parser;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let terminal = std::io::stderr().is_terminal();
    let global = Global {
        quiet: cli.quiet,
        terminal,
        color: terminal && std::env::var_os("NO_COLOR").is_none(),
    };
    byok_flow::logging::init(cli.verbose);
    match commands::dispatch(cli.command, global) {
        Ok(exit) => ExitCode::from(exit.code()),
        Err(error) => {
            if !error.reported {
                eprintln!("{error}");
            }
            ExitCode::from(error.exit.code())
        }
    }
}
