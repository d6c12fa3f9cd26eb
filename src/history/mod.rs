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
mod write;

use std::path::{Path, PathBuf};
use std::time::Duration;

use indexmap::IndexMap;
use rusqlite::Connection;
use sha2::{Digest, Sha256};

pub use read::{Group, RowsSummary, RunSummary, SpendRow, UNFINISHED};
pub use recorder::Recorder;
pub use write::RunStart;

/// How long a writer waits for another to finish before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// The schema's version, in `PRAGMA user_version`.
const SCHEMA_VERSION: i64 = 2;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    workflow TEXT NOT NULL,
    file TEXT NOT NULL,
    inputs_hash TEXT NOT NULL,
    -- running (until it ends; forever if it was killed), or the record's status
    status TEXT NOT NULL,
    started_at TEXT NOT NULL,
    started_unix INTEGER NOT NULL,
    seconds REAL,
    mock INTEGER NOT NULL,
    agents INTEGER NOT NULL,
    cost_micro_usd INTEGER NOT NULL DEFAULT 0,
    budget_usd REAL
);
CREATE INDEX IF NOT EXISTS runs_by_start ON runs (started_unix);
CREATE TABLE IF NOT EXISTS agents (
    run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    name TEXT NOT NULL,
    provider TEXT NOT NULL,
    model TEXT NOT NULL,
    -- provider/model, when a fallback answered
    answered_by TEXT,
    status TEXT NOT NULL,
    reason TEXT,
    cached INTEGER NOT NULL,
    seconds REAL NOT NULL,
    stop_reason TEXT,
    input_tokens INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    cache_read_tokens INTEGER NOT NULL,
    cache_write_tokens INTEGER NOT NULL,
    -- NULL: the model is unpriced
    cost_micro_usd INTEGER,
    PRIMARY KEY (run_id, position)
);
";

/// Columns added since the first schema (table, column, declaration), each added
/// to a file that lacks it. Dataset runs (SPEC §8): a run may have rows; an
/// agent's line may stand for many calls (one agent over every row), some
/// failed, some cached.
const COLUMNS: &[(&str, &str, &str)] = &[
    ("runs", "rows_total", "INTEGER"),
    ("runs", "rows_succeeded", "INTEGER"),
    ("runs", "rows_failed", "INTEGER"),
    ("agents", "calls", "INTEGER NOT NULL DEFAULT 1"),
    ("agents", "failures", "INTEGER NOT NULL DEFAULT 0"),
    ("agents", "cached_calls", "INTEGER NOT NULL DEFAULT 0"),
];

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
        "the run history {path} was written by a newer byok-flow (schema {found}, this one knows {SCHEMA_VERSION})"
    )]
    Newer { path: PathBuf, found: i64 },
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
    /// Opens the history, making the file (and its folder) if there is none.
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
        let open = |source| HistoryError::Open {
            path: path.to_path_buf(),
            source,
        };
        let conn = Connection::open(path).map_err(open)?;
        let store = Store {
            conn,
            path: path.to_path_buf(),
        };
        store.prepare().map_err(open)?;
        let found: i64 = store
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(open)?;
        if found > SCHEMA_VERSION {
            return Err(HistoryError::Newer {
                path: path.to_path_buf(),
                found,
            });
        }
        Ok(store)
    }

    /// Opens an existing history read-only; `None` when there is no file yet.
    pub fn open_existing(path: &Path) -> Result<Option<Store>, HistoryError> {
        if !path.exists() {
            return Ok(None);
        }
        Store::open(path).map(Some)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn prepare(&self) -> rusqlite::Result<()> {
        self.conn.busy_timeout(BUSY_TIMEOUT)?;
        // Readers never wait for a writer, and writers queue behind each other.
        self.conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |_| Ok(()))?;
        self.conn.pragma_update(None, "synchronous", "NORMAL")?;
        self.conn.pragma_update(None, "foreign_keys", true)?;
        if self.version()? < SCHEMA_VERSION || !self.missing_columns()?.is_empty() {
            // IMMEDIATE: two runs making or upgrading the file take turns, and the
            // second finds it done.
            self.conn.execute_batch("BEGIN IMMEDIATE")?;
            match self.upgrade() {
                Ok(()) => self.conn.execute_batch("COMMIT")?,
                Err(e) => {
                    let _ = self.conn.execute_batch("ROLLBACK");
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    fn version(&self) -> rusqlite::Result<i64> {
        self.conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
    }

    /// Makes the tables, and adds the columns a file written by an older version
    /// lacks (by looking for each, so that upgrades from any version meet).
    fn upgrade(&self) -> rusqlite::Result<()> {
        let found = self.version()?;
        if found < 1 {
            self.conn.execute_batch(SCHEMA)?;
        }
        for (table, column, declaration) in self.missing_columns()? {
            self.conn.execute_batch(&format!(
                "ALTER TABLE {table} ADD COLUMN {column} {declaration}"
            ))?;
        }
        if found < SCHEMA_VERSION {
            self.conn
                .execute_batch(&format!("PRAGMA user_version = {SCHEMA_VERSION}"))?;
        }
        Ok(())
    }

    /// The columns of [`COLUMNS`] the file lacks.
    fn missing_columns(&self) -> rusqlite::Result<Vec<(&'static str, &'static str, &'static str)>> {
        let mut missing = Vec::new();
        for table in ["runs", "agents"] {
            let mut stmt = self.conn.prepare(&format!("PRAGMA table_info({table})"))?;
            let have: Vec<String> = stmt
                .query_map([], |r| r.get::<_, String>(1))?
                .collect::<rusqlite::Result<_>>()?;
            if have.is_empty() {
                // No table yet: the schema makes it, and then its columns.
                continue;
            }
            missing.extend(
                COLUMNS
                    .iter()
                    .filter(|(t, c, _)| *t == table && !have.iter().any(|h| h == c))
                    .copied(),
            );
        }
        Ok(missing)
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
