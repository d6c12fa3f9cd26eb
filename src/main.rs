//! The `byok-flow` binary: parse the command line, run, map the result to an exit code.

use std::io::IsTerminal;
use std::process::ExitCode;

use byok_flow::cli::Cli;
use byok_flow::keys::redact;
use byok_flow::report::github;
use byok_flow::settings::{self, GitHub, Global};
use clap::Parser;

fn main() -> ExitCode {
    byok_flow::memory::tune();
    let cli = Cli::parse();
    let terminal = std::io::stderr().is_terminal();
    let github = GitHub::detect(
        |name| std::env::var_os(name),
        settings::std_streams_are_files(),
    )
    .map(|g| &*Box::leak(Box::new(g)));
    let global = Global {
        quiet: cli.quiet,
        terminal,
        color: terminal && std::env::var_os("NO_COLOR").is_none(),
        github,
    };
    byok_flow::logging::init(cli.verbose);
    match cli.command.run(global) {
        Ok(exit) => ExitCode::from(exit.code()),
        Err(error) => {
            if !error.reported {
                // The last guard: no error shown may hold a key the run read.
                eprintln!("{}", redact::text(&error.to_string()));
                if github.is_some() {
                    let message = redact::text(&error.message);
                    let hint = error.hint.as_deref().map(redact::text);
                    eprint!("{}", github::command::error(&message, hint.as_deref()));
                }
            }
            ExitCode::from(error.exit.code())
        }
    }
}
