use rusqlite::Connection;

use super::*;
use crate::history::Store;

/// The current schema with `user_version` set to `version`, and one run.
fn labelled(path: &Path, version: i64) -> Connection {
    let conn = Connection::open(path).unwrap();
    conn.execute_batch(SCHEMA).unwrap();
    conn.execute_batch(
        "INSERT INTO runs (id, workflow, file, inputs_hash, status, started_at, started_unix, mock, agents, cost_micro_usd)
         VALUES ('1000-aaaaaa', 'old', 'old.yaml', '', 'succeeded', '2025-01-01T00:00:00Z', 1735689600, 0, 1, 1500);",
    )
    .unwrap();
    conn.pragma_update(None, "user_version", version).unwrap();
    conn
}

fn columns(path: &Path, table: &str) -> Vec<String> {
    let conn = Connection::open(path).unwrap();
    let mut names = conn
        .prepare("SELECT name FROM pragma_table_info(?1)")
        .unwrap();
    names
        .query_map([table], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

fn version_of(path: &Path) -> i64 {
    version(&Connection::open(path).unwrap()).unwrap()
}

/// The dev database that failed with "duplicate column name: `record_path`": a
/// binary of another branch left the columns of a later schema under an older
/// version. The columns there are skipped, the rest is brought up to date.
#[test]
fn a_column_already_there_is_not_added_again() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("history.sqlite");
    labelled(&path, 2);
    let store = Store::open(&path).unwrap();
    assert_eq!(store.list(10).unwrap().len(), 1);
    drop(store);
    assert_eq!(version_of(&path), SCHEMA_VERSION);
    let conn = Connection::open(&path).unwrap();
    assert_eq!(written_by(&conn).as_deref(), Some(WRITER));
    let runs = columns(&path, "runs");
    assert_eq!(runs.iter().filter(|c| *c == "record_path").count(), 1);
}

/// A file labelled with this schema but lacking some of its columns (another
/// branch's idea of the same version) gains them instead of failing later.
#[test]
fn a_file_labelled_current_but_missing_columns_gains_them() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("history.sqlite");
    let conn = labelled(&path, SCHEMA_VERSION);
    conn.execute_batch(
        "ALTER TABLE runs DROP COLUMN rows_total; ALTER TABLE agents DROP COLUMN calls;",
    )
    .unwrap();
    drop(conn);
    let store = Store::open(&path).unwrap();
    assert_eq!(store.list(10).unwrap()[0].rows, None);
    assert!(columns(&path, "runs").contains(&"rows_total".to_owned()));
    assert!(columns(&path, "agents").contains(&"calls".to_owned()));
}

/// The upgrade and the version bump are one transaction: when a step fails, the
/// file keeps its version, its columns and its runs, and the error names the file.
#[test]
fn a_failed_upgrade_leaves_the_file_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("history.sqlite");
    let conn = labelled(&path, 1);
    conn.execute_batch(
        "ALTER TABLE runs DROP COLUMN record_path;
         DROP TABLE meta;
         -- a `meta` of another shape: the last step of the upgrade fails
         CREATE TABLE meta (other TEXT);",
    )
    .unwrap();
    drop(conn);
    let e = Store::open(&path).err().expect("an error");
    assert!(matches!(e, HistoryError::Open { .. }), "{e:?}");
    assert!(e.to_string().contains("history.sqlite"), "{e}");
    assert_eq!(version_of(&path), 1);
    assert!(!columns(&path, "runs").contains(&"record_path".to_owned()));
    let conn = Connection::open(&path).unwrap();
    let runs: i64 = conn
        .query_row("SELECT count(*) FROM runs", [], |r| r.get(0))
        .unwrap();
    assert_eq!(runs, 1);
}

/// A newer byok-flow's file (one more column, a later version): `runs` and
/// `report` read it; a run does not write to it and says which byok-flow wrote it
/// and what to do; the file is untouched.
#[test]
fn a_newer_history_is_read_as_it_is_and_not_written() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("history.sqlite");
    let conn = labelled(&path, SCHEMA_VERSION + 1);
    conn.execute_batch(
        "ALTER TABLE runs ADD COLUMN tomorrow TEXT NOT NULL DEFAULT 'x';
         INSERT INTO meta (key, value) VALUES ('written_by', '99.1.0');",
    )
    .unwrap();
    drop(conn);

    let mut store = Store::open_existing(&path).unwrap().expect("a store");
    assert_eq!(store.list(10).unwrap().len(), 1);
    let write = store.mark_submitted("1000-aaaaaa").expect_err("no writes");
    assert!(write.to_string().contains("readonly"), "{write}");
    drop(store);

    let e = Store::open(&path).err().expect("refused");
    let message = e.to_string();
    assert!(message.contains("written by byok-flow 99.1.0"), "{message}");
    assert!(
        message.contains(&format!("history schema {}", SCHEMA_VERSION + 1)),
        "{message}"
    );
    assert!(message.contains("does not add runs to it"), "{message}");
    assert!(message.contains("upgrade byok-flow"), "{message}");
    assert!(message.contains("--history FILE"), "{message}");
    assert_eq!(version_of(&path), SCHEMA_VERSION + 1);
    let conn = Connection::open(&path).unwrap();
    let status: String = conn
        .query_row("SELECT status FROM runs", [], |r| r.get(0))
        .unwrap();
    assert_eq!(status, "succeeded");
    assert_eq!(written_by(&conn).as_deref(), Some("99.1.0"));
}

/// A newer file without a column this byok-flow reads is refused with what is
/// missing and what to do, never a raw SQLite error.
#[test]
fn a_newer_history_this_one_cannot_read_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("history.sqlite");
    let conn = labelled(&path, SCHEMA_VERSION + 3);
    conn.execute_batch("ALTER TABLE runs DROP COLUMN record_path; DROP TABLE meta;")
        .unwrap();
    drop(conn);
    let e = Store::open_existing(&path).err().expect("refused");
    let message = e.to_string();
    assert!(
        message.contains("written by a newer byok-flow"),
        "{message}"
    );
    assert!(
        message.contains("cannot read it (its table `runs` has no column `record_path`)"),
        "{message}"
    );
    assert!(message.contains("upgrade byok-flow"), "{message}");
    assert_eq!(version_of(&path), SCHEMA_VERSION + 3);
    assert!(!columns(&path, "runs").contains(&"record_path".to_owned()));
}

/// A fresh file is made at this schema in one go, and opening it again changes nothing.
#[test]
fn a_new_history_is_made_at_this_schema() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("history.sqlite");
    drop(Store::open(&path).unwrap());
    assert_eq!(version_of(&path), SCHEMA_VERSION);
    assert!(
        missing(&Connection::open(&path).unwrap())
            .unwrap()
            .is_empty()
    );
    drop(Store::open(&path).unwrap());
    drop(Store::open_existing(&path).unwrap());
    assert_eq!(version_of(&path), SCHEMA_VERSION);
}

/// A newer file that lost a column of the first schema is refused too, and what
/// it says of its writer is shown only when it is plain text.
#[test]
fn a_newer_history_without_a_first_schema_column_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("history.sqlite");
    let conn = labelled(&path, SCHEMA_VERSION + 1);
    conn.execute_batch(
        "ALTER TABLE agents DROP COLUMN stop_reason;
         INSERT INTO meta (key, value) VALUES ('written_by', char(27) || '[2J9.0');",
    )
    .unwrap();
    drop(conn);
    let message = Store::open_existing(&path)
        .err()
        .expect("refused")
        .to_string();
    assert!(
        message.contains("written by a newer byok-flow"),
        "{message}"
    );
    assert!(
        message.contains("its table `agents` has no column `stop_reason`"),
        "{message}"
    );
    assert!(!message.contains('\u{1b}'), "{message:?}");
}
