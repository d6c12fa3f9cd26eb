//! What a dataset run (SPEC §8) shows and writes, each a subscriber: the results on
//! stdout (one JSON line per row, in row order, or the run record with `--json`),
//! `--out DIR` (`results.jsonl` and `run.json`), progress on stderr, and the
//! closing table of every agent's aggregate.

pub mod estimate;
pub mod progress;
pub mod table;

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::events::{Event, Subscriber};
use crate::report::output::write_atomic;

/// The results on stdout: each row's line as it is told, or, with `json`, the
/// run record at the end.
pub struct Results {
    pub json: bool,
}

impl Subscriber for Results {
    fn on_event(&mut self, event: &Event<'_>) -> std::io::Result<()> {
        let text = match event {
            Event::RowFinished { result, .. } if !self.json => result.line(),
            Event::RowsFinished { record } if self.json => {
                let mut text =
                    serde_json::to_string_pretty(record).map_err(std::io::Error::other)?;
                text.push('\n');
                text
            }
            _ => return Ok(()),
        };
        // One write a line, flushed: a reader of the pipe sees each row as it ends.
        let mut out = std::io::stdout().lock();
        out.write_all(text.as_bytes())?;
        out.flush()
    }
}

/// `--out DIR` of a dataset run: `DIR/results.jsonl`, a line appended as each row
/// is told (each line one write, so a run killed at any point leaves whole lines),
/// and `DIR/run.json` at the end (through a temporary file and a rename).
pub struct OutDir {
    dir: PathBuf,
    results: File,
}

impl OutDir {
    /// Makes `dir` and starts an empty `results.jsonl` in it (a previous run's is
    /// replaced: a rerun writes every row again, the finished ones from the cache).
    pub fn new(dir: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let results = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(dir.join("results.jsonl"))?;
        Ok(OutDir {
            dir: dir.to_path_buf(),
            results,
        })
    }
}

impl Subscriber for OutDir {
    fn on_event(&mut self, event: &Event<'_>) -> std::io::Result<()> {
        match event {
            Event::RowFinished { result, .. } => self.results.write_all(result.line().as_bytes()),
            Event::RowsFinished { record } => {
                self.results.sync_all()?;
                let mut text =
                    serde_json::to_string_pretty(record).map_err(std::io::Error::other)?;
                text.push('\n');
                write_atomic(&self.dir.join("run.json"), text.as_bytes())
            }
            _ => Ok(()),
        }
    }
}
