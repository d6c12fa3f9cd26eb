//! `byok-flow run`: run a workflow, results on stdout, progress and the closing
//! table on stderr.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use indexmap::IndexMap;

use crate::cli::Global;
use crate::error::{Error, Exit, Result};
use crate::events::Bus;
use crate::record::RunStatus;
use crate::report::{output, progress, table};
use crate::runner::{self, RunSettings};
use crate::scheduler::Open;
use crate::suggest;
use crate::workflow::Checked;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The workflow file.
    #[arg(value_name = "WORKFLOW.yaml")]
    pub file: PathBuf,

    /// An input value: NAME=VALUE, NAME=@FILE to read a file, NAME=@- to read stdin.
    #[arg(short, long = "input", value_name = "NAME=VALUE")]
    pub inputs: Vec<String>,

    /// Answer every agent with the built-in mock: no network, no keys, $0.
    #[arg(long)]
    pub mock: bool,

    /// The most agents running at once.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..), env = "BYOK_FLOW_CONCURRENCY")]
    pub concurrency: u32,

    /// After an agent fails, go on with the agents that do not depend on it.
    #[arg(long)]
    pub keep_going: bool,

    /// Print one JSON run record on stdout instead of the outputs.
    #[arg(long)]
    pub json: bool,

    /// Also write DIR/AGENT.md (or .json) for each agent and DIR/run.json.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

pub fn run(args: &Args, global: Global) -> Result<Exit> {
    let checked = Arc::new(super::load_checked(&args.file, global)?);
    let inputs = resolve_inputs(&checked, &args.inputs)?;
    let settings = RunSettings {
        file: args.file.display().to_string(),
        inputs,
        mock: args.mock,
        concurrency: args.concurrency as usize,
        keep_going: args.keep_going,
    };
    let (agent_runner, limits) = runner::prepare(checked, &settings).map_err(Error::usage)?;
    let mut bus = Bus::default();
    if !global.quiet {
        if global.terminal {
            bus.subscribe(Box::new(progress::Live::default()));
        } else {
            bus.subscribe(Box::new(progress::Plain::default()));
        }
        bus.subscribe(Box::new(table::ClosingTable));
    }
    if let Some(dir) = &args.out {
        let out = output::OutDir::new(dir)
            .map_err(|e| Error::usage(format!("cannot create `{}`: {e}", dir.display())))?;
        bus.subscribe(Box::new(out));
    }
    bus.subscribe(Box::new(output::Stdout { json: args.json }));

    let runtime = tokio::runtime::Runtime::new().map_err(|e| {
        Error::new(
            Exit::AgentFailed,
            format!("cannot start the async runtime: {e}"),
        )
    })?;
    let record = runtime.block_on(async {
        let cancel = async {
            if tokio::signal::ctrl_c().await.is_err() {
                std::future::pending::<()>().await;
            }
        };
        runner::execute(agent_runner, limits, &settings, &mut Open, &mut bus, cancel).await
    });
    if let Some(e) = bus.finish() {
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            return Err(Error::new(
                Exit::AgentFailed,
                format!("cannot write the results: {e}"),
            ));
        }
    }
    Ok(match record.status {
        RunStatus::Succeeded => Exit::Success,
        RunStatus::Failed => Exit::AgentFailed,
        RunStatus::Interrupted => Exit::Interrupted,
    })
}

/// The run's inputs: `--input` values over declared defaults; every required one present.
fn resolve_inputs(checked: &Checked, given: &[String]) -> Result<IndexMap<String, String>> {
    let declared = &checked.workflow.inputs;
    let mut values = IndexMap::new();
    for arg in given {
        let Some((name, value)) = arg.split_once('=') else {
            return Err(Error::usage(format!("`--input {arg}` has no `=`"))
                .hint("write `--input NAME=VALUE` or `--input NAME=@FILE`"));
        };
        if !declared.contains_key(name) {
            let hint = suggest::did_you_mean(name, declared.keys().map(String::as_str))
                .unwrap_or_else(|| {
                    format!("this workflow's inputs: {}", names_or_none(declared.keys()))
                });
            return Err(Error::usage(format!(
                "`--input {name}`: the workflow has no input `{name}`"
            ))
            .hint(hint));
        }
        let value = match value.strip_prefix('@') {
            Some("-") => {
                let mut text = String::new();
                std::io::stdin().read_to_string(&mut text).map_err(|e| {
                    Error::usage(format!("`--input {name}=@-`: cannot read stdin: {e}"))
                })?;
                text
            }
            Some(file) => read_input_file(name, Path::new(file))?,
            None => value.to_string(),
        };
        values.insert(name.to_string(), value);
    }
    let mut missing = Vec::new();
    for (name, input) in declared {
        if values.contains_key(name) {
            continue;
        }
        match &input.default {
            Some(default) => {
                values.insert(name.clone(), default.clone());
            }
            None if input.required => missing.push(name.clone()),
            None => {
                values.insert(name.clone(), String::new());
            }
        }
    }
    if !missing.is_empty() {
        let flags: Vec<String> = missing
            .iter()
            .map(|n| format!("--input {n}=VALUE"))
            .collect();
        let list = missing
            .iter()
            .map(|n| format!("`{n}`"))
            .collect::<Vec<_>>()
            .join(", ");
        return Err(Error::usage(format!("missing required input {list}"))
            .hint(format!("pass {}", flags.join(" "))));
    }
    values.sort_by_cached_key(|k, _| declared.get_index_of(k));
    Ok(values)
}

fn read_input_file(name: &str, path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|e| {
        Error::usage(format!(
            "`--input {name}=@{}`: cannot read the file: {e}",
            path.display()
        ))
    })?;
    String::from_utf8(bytes).map_err(|_| {
        Error::usage(format!(
            "`--input {name}=@{}`: the file is not UTF-8 text",
            path.display()
        ))
    })
}

fn names_or_none<'a>(names: impl Iterator<Item = &'a String>) -> String {
    let list: Vec<&str> = names.map(String::as_str).collect();
    if list.is_empty() {
        "none".into()
    } else {
        list.join(", ")
    }
}
