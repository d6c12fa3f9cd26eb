//! The history file's shape: its tables, the schema version in `PRAGMA
//! user_version`, bringing a file of an older (or oddly labelled) shape up to date,
//! and what this byok-flow does with a file a newer one wrote. Reading and
//! writing runs is left to `read.rs` and `write.rs`.
//!
//! A file's shape is checked, not trusted from its version: a development build
//! of another branch, or a downgrade and upgrade, can leave a file whose version
//! says one thing and whose columns another. So an upgrade creates the tables
//! that are missing and adds the columns that are missing, whatever the version
//! says, in one transaction with the version bump: a failed upgrade leaves the
//! file as it was.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, params};

use super::HistoryError;

/// How long a writer waits for another to finish before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// The schema's version, in `PRAGMA user_version`. 2 added the agents'
/// `counted_locally`, `bill_unknown` and `max_cost_micro_usd`; 3 the runs'
/// `record_path`; 4 dataset runs (SPEC §8): a run's rows, and an agent's line
/// standing for many calls (one agent over every row), some failed, some cached;
/// 5 the `meta` table (which byok-flow wrote the file).
pub(super) const SCHEMA_VERSION: i64 = 5;

/// This byok-flow's version, kept in the file when it sets the schema version.
const WRITER: &str = env!("CARGO_PKG_VERSION");

/// Every table at [`SCHEMA_VERSION`]. Each is created only if missing: a table
/// that exists gains its missing columns from [`ADDED`]. A new column goes both
/// here and in [`ADDED`]; a new table only here.
pub(super) const SCHEMA: &str = "
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
-- what byok-flow keeps about the file itself: `written_by`, the version of
-- byok-flow that brought it to its schema version (from schema 5 on)
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
";

/// Indexes, made after the columns they may name exist.
const INDEXES: &str = "CREATE INDEX IF NOT EXISTS runs_by_start ON runs (started_unix);";

/// The columns added since the first schema (table, column, definition): what a
/// table that exists may lack. Each definition has a default, as SQLite needs.
const ADDED: [(&str, &str, &str); 10] = [
    // 2
    ("agents", "counted_locally", "INTEGER NOT NULL DEFAULT 0"),
    ("agents", "bill_unknown", "INTEGER NOT NULL DEFAULT 0"),
    ("agents", "max_cost_micro_usd", "INTEGER"),
    // 3
    ("runs", "record_path", "TEXT"),
    // 4
    ("runs", "rows_total", "INTEGER"),
    ("runs", "rows_succeeded", "INTEGER"),
    ("runs", "rows_failed", "INTEGER"),
    ("agents", "calls", "INTEGER NOT NULL DEFAULT 1"),
    ("agents", "failures", "INTEGER NOT NULL DEFAULT 0"),
    ("agents", "cached_calls", "INTEGER NOT NULL DEFAULT 0"),
];

/// What the caller means to do with the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Access {
    /// Record runs: the file is brought up to this schema, and a newer one is refused.
    Write,
    /// Read runs: a newer file is read as it is when it has every column this
    /// byok-flow reads, and then nothing is written to it.
    Read,
}

/// Makes `conn` ready for `access`: the file brought up to [`SCHEMA_VERSION`], or
/// a newer one checked and opened for reading only.
pub(super) fn prepare(conn: &Connection, path: &Path, access: Access) -> Result<(), HistoryError> {
    let open = |source| HistoryError::Open {
        path: path.to_path_buf(),
        source,
    };
    conn.busy_timeout(BUSY_TIMEOUT).map_err(open)?;
    conn.pragma_update(None, "foreign_keys", true)
        .map_err(open)?;
    if version(conn).map_err(open)? <= SCHEMA_VERSION {
        // Readers never wait for a writer, and writers queue behind each other.
        conn.pragma_update_and_check(None, "journal_mode", "WAL", |_| Ok(()))
            .map_err(open)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(open)?;
        if version(conn).map_err(open)? < SCHEMA_VERSION || !missing(conn).map_err(open)?.is_empty()
        {
            upgrade(conn).map_err(open)?;
        }
    }
    // Another byok-flow may have upgraded the file in the meantime.
    let found = version(conn).map_err(open)?;
    if found <= SCHEMA_VERSION {
        return Ok(());
    }
    let newer = |refused: String| HistoryError::Newer {
        path: path.to_path_buf(),
        found,
        by: written_by(conn).map_or_else(
            || "a newer byok-flow".to_owned(),
            |v| format!("byok-flow {v}"),
        ),
        refused,
    };
    if access == Access::Write {
        return Err(newer("does not add runs to it".to_owned()));
    }
    if let Some((table, column)) = unreadable(conn).map_err(open)? {
        return Err(newer(format!(
            "cannot read it (its table `{table}` has no column `{column}`)"
        )));
    }
    // Read as it is; any write is refused by SQLite, so nothing of it is lost.
    conn.pragma_update(None, "query_only", true).map_err(open)?;
    Ok(())
}

/// The file's schema version.
fn version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.pragma_query_value(None, "user_version", |r| r.get(0))
}

/// The columns this byok-flow reads that the file's tables lack (all of a missing
/// table's).
fn missing(conn: &Connection) -> rusqlite::Result<Vec<(&'static str, &'static str)>> {
    let mut absent = Vec::new();
    for (table, column, _) in ADDED {
        if !has_column(conn, table, column)? {
            absent.push((table, column));
        }
    }
    Ok(absent)
}

fn has_column(conn: &Connection, table: &str, column: &str) -> rusqlite::Result<bool> {
    conn.prepare_cached("SELECT 1 FROM pragma_table_info(?1) WHERE name = ?2")?
        .exists(params![table, column])
}

/// The first column of the tables this byok-flow reads (every one at this
/// schema, not only those [`ADDED`] since the first) that a newer file lacks.
fn unreadable(conn: &Connection) -> rusqlite::Result<Option<(String, String)>> {
    let ours = Connection::open_in_memory()?;
    ours.execute_batch(SCHEMA)?;
    let mut columns = ours.prepare(
        "SELECT m.name, c.name FROM sqlite_master AS m, pragma_table_info(m.name) AS c
         WHERE m.name IN ('runs', 'agents') ORDER BY m.name DESC, c.cid",
    )?;
    let columns = columns
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    for (table, column) in columns {
        if !has_column(conn, &table, &column)? {
            return Ok(Some((table, column)));
        }
    }
    Ok(None)
}

/// Which byok-flow set the file's schema version, when it says (from schema 5 on).
/// The file may say anything: only a short run of printable ASCII is shown.
fn written_by(conn: &Connection) -> Option<String> {
    let said: String = conn
        .query_row("SELECT value FROM meta WHERE key = 'written_by'", [], |r| {
            r.get(0)
        })
        .ok()?;
    let shown: String = said.chars().take(40).collect();
    (!shown.is_empty() && shown.chars().all(|c| c.is_ascii_graphic())).then_some(shown)
}

/// Brings the file up to [`SCHEMA_VERSION`] in one write transaction, or leaves it
/// as it was. IMMEDIATE: two runs making or upgrading the file take turns, and the
/// second sees what the first did.
fn upgrade(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let upgraded = upgrade_within(conn);
    let end = if upgraded.is_ok() {
        "COMMIT"
    } else {
        "ROLLBACK"
    };
    conn.execute_batch(end)?;
    upgraded
}

/// Inside the write transaction: the missing tables, the missing columns, the
/// indexes, the version and who set it.
fn upgrade_within(conn: &Connection) -> rusqlite::Result<()> {
    let version = version(conn)?;
    if version > SCHEMA_VERSION {
        return Ok(());
    }
    conn.execute_batch(SCHEMA)?;
    for (table, column, definition) in ADDED {
        if !has_column(conn, table, column)? {
            conn.execute_batch(&format!(
                "ALTER TABLE {table} ADD COLUMN {column} {definition}"
            ))?;
        }
    }
    conn.execute_batch(INDEXES)?;
    if version < SCHEMA_VERSION {
        conn.pragma_update(None, "user_version", SCHEMA_VERSION)?;
        conn.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('written_by', ?1)",
            params![WRITER],
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
