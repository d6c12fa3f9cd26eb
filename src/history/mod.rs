//! Run history: every run, its agents, their tokens and dollars, in one SQLite file
//! (`history.sqlite` in the user's data folder), for `byok-flow runs`. This is the
//! only module that touches rusqlite.
//!
//! A run is written as it goes ([`Recorder`], a subscriber): a row when it starts,
//! each agent that spent money as soon as it settles, everything when it ends. A
//! run killed with `kill -9` so stays in the history as unfinished, with what it
//! spent. Writers take turns through SQLite's write-ahead log and a busy timeout,
//! so concurrent runs each record theirs; a failure to record is a warning for the
//! caller, never a failed run.
//!
//! It holds no key, no input value (only their hash) and no reply.

mod read;
mod recorder;
mod schema;
mod write;

use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use rusqlite::Connection;
use sha2::{Digest, Sha256};

pub use read::{Group, RunSummary, SpendRow, UNFINISHED};
pub use recorder::Recorder;
pub use write::RunStart;

use schema::{Access, SCHEMA_VERSION};

/// What can go wrong with the history file.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("cannot open the run history {path}: {source}")]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("cannot create the run history {path}: {source}")]
    Folder {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the run history {path} was written by {by} (history schema {found}); this byok-flow ({version}, schema {SCHEMA_VERSION}) {refused}, and leaves the file as it is: upgrade byok-flow, or pass `--history FILE` (or set BYOK_FLOW_HISTORY) to use another history file",
        version = env!("CARGO_PKG_VERSION")
    )]
    Newer {
        path: PathBuf,
        found: i64,
        /// `byok-flow X.Y.Z` when the file says, or `a newer byok-flow`.
        by: String,
        /// What this byok-flow does not do with it, and why.
        refused: String,
    },
    #[error("the run history {path}: {source}")]
    Query {
        path: PathBuf,
        source: rusqlite::Error,
    },
}

/// The history file unless `--history` or `BYOK_FLOW_HISTORY` says:
/// `$XDG_DATA_HOME/byok-flow/history.sqlite` or `~/.local/share/…` on Linux,
/// `~/Library/Application Support/byok-flow/…` on macOS.
pub fn default_file() -> Option<PathBuf> {
    dirs::data_dir().map(|d| d.join("byok-flow").join("history.sqlite"))
}

/// An open history file.
pub struct Store {
    conn: Connection,
    path: PathBuf,
}

impl Store {
    /// Opens the history to record runs, making the file (and its folder) if there
    /// is none, or bringing an older one up to date.
    pub fn open(path: &Path) -> Result<Store, HistoryError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| HistoryError::Folder {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        create_private(path).map_err(|source| HistoryError::Folder {
            path: path.to_path_buf(),
            source,
        })?;
        Store::connect(path, Access::Write)
    }

    /// Opens an existing history to read it; `None` when there is no file yet. A
    /// history a newer byok-flow wrote is read as it is when it can be.
    pub fn open_existing(path: &Path) -> Result<Option<Store>, HistoryError> {
        if !path.exists() {
            return Ok(None);
        }
        Store::connect(path, Access::Read).map(Some)
    }

    fn connect(path: &Path, access: Access) -> Result<Store, HistoryError> {
        let conn = Connection::open(path).map_err(|source| HistoryError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        schema::prepare(&conn, path, access)?;
        Ok(Store {
            conn,
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn query_error(&self, source: rusqlite::Error) -> HistoryError {
        HistoryError::Query {
            path: self.path.clone(),
            source,
        }
    }
}

/// Makes an empty history file readable only by its owner (mode 0600), unless
/// there is one: what a user ran and spent is theirs. SQLite gives its `-wal` and
/// `-shm` files the same mode. An empty file is an empty database.
fn create_private(path: &Path) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(path) {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        other => other.map(drop),
    }
}

/// A run's inputs as a hash (SHA-256 of their JSON, in declared order): two runs
/// with the same hash had the same inputs, and the values are never stored.
pub fn inputs_hash(inputs: &IndexMap<String, String>) -> String {
    let mut hasher = Sha256::new();
    if serde_json::to_writer(&mut hasher, inputs).is_err() {
        return String::new();
    }
    hasher
        .finalize()
        .iter()
        .take(8)
        .fold(String::new(), |mut hex, b| {
            hex.push_str(&format!("{b:02x}"));
            hex
        })
}

/// Dollars as whole micro-dollars, as the history keeps them (sums stay exact).
#[allow(clippy::cast_possible_truncation)]
fn micro(usd: f64) -> i64 {
    (usd * 1e6).round() as i64
}

/// Whole micro-dollars as dollars.
fn dollars(micro: i64) -> f64 {
    micro as f64 / 1e6
}

#[cfg(test)]
mod tests;
