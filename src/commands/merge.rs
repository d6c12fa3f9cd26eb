//! `byok-flow merge DIR... --out DIR`: the shards of a dataset run joined into one
//! (`results.jsonl` in row order, and `run.json`). The work lives in
//! `crate::dataset::merge`.

use std::io::Write;
use std::path::PathBuf;

use crate::dataset::merge;
use crate::error::{Error, Exit, Result};
use crate::report::rows::table;
use crate::settings::Global;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The folders each shard wrote with `run --each FILE --shard K/N --out DIR`.
    #[arg(value_name = "DIR", required = true)]
    pub dirs: Vec<PathBuf>,

    /// Where to write the merged `results.jsonl` and `run.json`.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,

    /// Also print the merged run record on stdout.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: &Args, global: Global) -> Result<Exit> {
    let record =
        merge::merge(&args.dirs, &args.out).map_err(|e| Error::usage(e.message).hint(e.hint))?;
    if !global.quiet {
        eprintln!(
            "merged {} shards into {}: {}; {}",
            args.dirs.len(),
            args.out.display(),
            table::counts(&record.rows),
            table::dollars(&record)
        );
    }
    if args.json {
        let mut text = serde_json::to_string_pretty(&record)
            .map_err(|e| Error::new(Exit::AgentFailed, format!("cannot write JSON: {e}")))?;
        text.push('\n');
        let mut out = std::io::stdout().lock();
        if let Err(e) = out.write_all(text.as_bytes()).and_then(|()| out.flush())
            && e.kind() != std::io::ErrorKind::BrokenPipe
        {
            return Err(Error::new(
                Exit::AgentFailed,
                format!("cannot write the record: {e}"),
            ));
        }
    }
    Ok(Exit::Success)
}
