//! `byok-flow report`: the HTML report of a run, from its `run.json` or its id in
//! the history. The work lives in `crate::report::html`.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::dataset::record::DatasetRecord;
use crate::error::{Error, Exit, Result};
use crate::history::{self, Store};
use crate::report::html::source::Record;
use crate::report::html::{self, Origin, source};
use crate::report::output::write_atomic;
use crate::settings::Global;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// A run record (`run.json`, as `run --out DIR` writes it), or a run id from the
    /// history (or the start of one) [default: the latest run in the history].
    #[arg(value_name = "RUN_ID | run.json")]
    pub run: Option<String>,

    /// Write the page to FILE [default: stdout].
    #[arg(short, long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// The run history to look run ids up in [default: `history.sqlite` in
    /// `$XDG_DATA_HOME/byok-flow` or `~/.local/share/byok-flow`].
    #[arg(long, value_name = "FILE", env = "BYOK_FLOW_HISTORY")]
    pub history: Option<PathBuf>,
}

pub fn run(args: &Args, global: Global) -> Result<Exit> {
    let found = match args.run.as_deref() {
        Some(given) if is_file_argument(given) => source::Found {
            record: source::read_file(Path::new(given)).map_err(|e| {
                Error::usage(e.to_string()).hint(
                    "pass the run.json that `byok-flow run --out DIR` wrote (or `run --json` printed), or a run id from `byok-flow runs list`",
                )
            })?,
            origin: Origin::Record,
            note: None,
        },
        id => from_history(args, id)?,
    };
    if let Some(note) = &found.note
        && !global.quiet
    {
        eprintln!("note: {note}");
    }
    let page = match &found.record {
        Record::Run(record) => html::render(record, found.origin),
        Record::Dataset { record, results } => dataset_page(record, results),
    };
    let Some(path) = &args.output else {
        let mut out = std::io::stdout().lock();
        return match out.write_all(page.as_bytes()).and_then(|()| out.flush()) {
            Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(Error::new(
                Exit::AgentFailed,
                format!("cannot write the report: {e}"),
            )),
            _ => Ok(Exit::Success),
        };
    };
    write_atomic(path, page.as_bytes()).map_err(|e| {
        Error::new(
            Exit::AgentFailed,
            format!("cannot write {}: {e}", path.display()),
        )
        .hint("check that its folder exists and can be written")
    })?;
    if !global.quiet {
        eprintln!(
            "wrote {} ({} KB): the report of run {}",
            path.display(),
            page.len().div_ceil(1024),
            found.record.run_id()
        );
    }
    Ok(Exit::Success)
}

/// The page of a dataset run, its rows read from `results` (the `results.jsonl`
/// beside its `run.json`), when that holds this run's rows.
fn dataset_page(record: &DatasetRecord, results: &Path) -> String {
    let name = results.display().to_string();
    // A regular file only: a FIFO would block the open, a device never end.
    let opened = std::fs::metadata(results).and_then(|meta| {
        if meta.is_file() {
            std::fs::File::open(results)
        } else {
            Err(std::io::Error::other("not a regular file"))
        }
    });
    match opened {
        Ok(file) => {
            let results = html::rows::Results {
                file: &file,
                name: &name,
            };
            html::rows::render(record, Some(&results), None)
        }
        Err(e) => html::rows::render(record, None, Some(&format!("cannot read {name}: {e}"))),
    }
}

/// A path to a file rather than a run id: it exists, or it looks like a path.
fn is_file_argument(given: &str) -> bool {
    Path::new(given).exists()
        || Path::new(given)
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("json"))
        || given.contains('/')
        || given.contains(std::path::MAIN_SEPARATOR)
}

fn from_history(args: &Args, id: Option<&str>) -> Result<source::Found> {
    let path = match &args.history {
        Some(path) => path.clone(),
        None => history::default_file().ok_or_else(|| {
            Error::usage("cannot tell where the run history is: no home folder")
                .hint("pass `--history FILE` or set BYOK_FLOW_HISTORY, or give a run.json")
        })?,
    };
    let store = Store::open_existing(&path)
        .map_err(|e| Error::new(Exit::AgentFailed, e.to_string()))?
        .ok_or_else(|| {
            Error::usage(format!("there is no run history at {}", path.display())).hint(
                "run a workflow first, or give the run.json that `byok-flow run --out DIR` wrote",
            )
        })?;
    source::from_history(&store, id).map_err(|e| {
        let hint = match &e {
            source::SourceError::Ambiguous { .. } => "give more of the id",
            _ => "`byok-flow runs list` shows the runs the history holds; or give a run.json",
        };
        Error::usage(e.to_string()).hint(hint)
    })
}
