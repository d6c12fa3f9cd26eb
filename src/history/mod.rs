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

pub use read::{Group, RunSummary, SpendRow, UNFINISHED};
pub use recorder::Recorder;
pub use write::RunStart;

/// How long a writer waits for another to finish before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// The schema's version, in `PRAGMA user_version`. 2 added the agents'
/// `counted_locally`, `bill_unknown` and `max_cost_micro_usd`; 3 the runs'
/// `record_path`; 4 dataset runs (SPEC §8): a run's rows, and an agent's line
/// standing for many calls (one agent over every row), some failed, some cached.
const SCHEMA_VERSION: i64 = 4;

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
    -- what its priced agents cost (the whole cost unless an agent is unpriced)
    cost_micro_usd INTEGER NOT NULL DEFAULT 0,
    budget_usd REAL,
    -- where the run's record was written (`--out DIR/run.json`), for `report RUN_ID`
    record_path TEXT,
    -- a dataset run: the rows it was to run (when known), then how they ended
    rows_total INTEGER,
    rows_succeeded INTEGER,
    rows_failed INTEGER
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
    -- NULL: a model it called is unpriced
    cost_micro_usd INTEGER,
    -- 1: some tokens were counted by byok-flow, not reported by the provider
    counted_locally INTEGER NOT NULL DEFAULT 0,
    -- 1: a call was cut off after it was sent; max_cost_micro_usd is the most it may have cost
    bill_unknown INTEGER NOT NULL DEFAULT 0,
    max_cost_micro_usd INTEGER,
    -- in a dataset run, the agent's calls over every row (1 otherwise), how many
    -- failed and how many the cache answered
    calls INTEGER NOT NULL DEFAULT 1,
    failures INTEGER NOT NULL DEFAULT 0,
    cached_calls INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (run_id, position)
);
";

/// What brings a history of each older version up to [`SCHEMA_VERSION`].
const MIGRATIONS: [(i64, &str); 3] = [
    (
        1,
        "ALTER TABLE agents ADD COLUMN counted_locally INTEGER NOT NULL DEFAULT 0;
         ALTER TABLE agents ADD COLUMN bill_unknown INTEGER NOT NULL DEFAULT 0;
         ALTER TABLE agents ADD COLUMN max_cost_micro_usd INTEGER;",
    ),
    (2, "ALTER TABLE runs ADD COLUMN record_path TEXT;"),
    (
        3,
        "ALTER TABLE runs ADD COLUMN rows_total INTEGER;
         ALTER TABLE runs ADD COLUMN rows_succeeded INTEGER;
         ALTER TABLE runs ADD COLUMN rows_failed INTEGER;
         ALTER TABLE agents ADD COLUMN calls INTEGER NOT NULL DEFAULT 1;
         ALTER TABLE agents ADD COLUMN failures INTEGER NOT NULL DEFAULT 0;
         ALTER TABLE agents ADD COLUMN cached_calls INTEGER NOT NULL DEFAULT 0;",
    ),
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
        let version: i64 = self
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))?;
        if version < SCHEMA_VERSION {
            // IMMEDIATE: two runs making or upgrading the file take turns, and the
            // second sees the version the first wrote.
            self.conn.execute_batch("BEGIN IMMEDIATE")?;
            let upgraded = self.upgrade();
            let end = if upgraded.is_ok() {
                "COMMIT"
            } else {
                "ROLLBACK"
            };
            self.conn.execute_batch(end)?;
            upgraded?;
        }
        Ok(())
    }

    /// Inside a write transaction: makes the tables, or brings older ones up to date.
    fn upgrade(&self) -> rusqlite::Result<()> {
        let version: i64 = self
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))?;
        if version == 0 {
            self.conn.execute_batch(SCHEMA)?;
        } else {
            for (from, sql) in MIGRATIONS {
                if version <= from && from < SCHEMA_VERSION {
                    self.conn.execute_batch(sql)?;
                }
            }
        }
        if version < SCHEMA_VERSION {
            self.conn
                .pragma_update(None, "user_version", SCHEMA_VERSION)?;
        }
        Ok(())
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
