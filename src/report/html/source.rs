//! Where a report's run record comes from: a `run.json` file, or a run id in the
//! history. The history keeps no replies, so for a run id the record that run's
//! `--out DIR` wrote is read when the history knows its path and the file still
//! holds that run; otherwise the report is made from what the history keeps.

use std::io::Read;
use std::path::{Path, PathBuf};

use super::Origin;
use crate::dataset::record::DatasetRecord;
use crate::history::{HistoryError, Store};
use crate::record::RunRecord;

/// A record read from a file: one run's, or a dataset run's (whose rows are in
/// `results.jsonl` beside its `run.json`).
#[derive(Debug)]
pub enum Record {
    Run(Box<RunRecord>),
    Dataset {
        record: Box<DatasetRecord>,
        results: PathBuf,
    },
}

impl Record {
    pub fn run_id(&self) -> &str {
        match self {
            Record::Run(r) => &r.run_id,
            Record::Dataset { record, .. } => &record.run_id,
        }
    }
}

/// The largest run record read (a dataset run's can be large).
pub const MAX_RECORD_BYTES: u64 = 1 << 30;

/// A record found, and what the reader should be told about it.
#[derive(Debug)]
pub struct Found {
    pub record: Record,
    pub origin: Origin,
    /// Why the history's own record was used instead of a `run.json`.
    pub note: Option<String>,
}

/// Why no record could be read.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a regular file")]
    NotAFile { path: PathBuf },
    #[error("{path} is {size} bytes; a run record of more than 1 GiB is not read")]
    TooLarge { path: PathBuf, size: u64 },
    #[error("{path}:{line}:{column}: not a byok-flow run record: {message}")]
    NotARecord {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error(transparent)]
    History(#[from] HistoryError),
    #[error("the run history has no run `{0}`")]
    NoRun(String),
    #[error("`{id}` is the start of more than one run id: {}", .many.join(", "))]
    Ambiguous { id: String, many: Vec<String> },
    #[error("the run history has no runs yet")]
    Empty,
}

/// Reads a run record file (`--out DIR/run.json`, or `run --json > run.json`).
pub fn read_file(path: &Path) -> Result<Record, SourceError> {
    /// What tells a dataset run's record from one run's.
    #[derive(serde::Deserialize)]
    struct Kind {
        kind: Option<String>,
    }
    let read = |source| SourceError::Read {
        path: path.to_path_buf(),
        source,
    };
    // A FIFO would block the open, a device never end: looked at before opening,
    // and again after (the path may have changed in between).
    if !std::fs::metadata(path).map_err(read)?.is_file() {
        return Err(SourceError::NotAFile {
            path: path.to_path_buf(),
        });
    }
    let file = std::fs::File::open(path).map_err(read)?;
    let meta = file.metadata().map_err(read)?;
    if !meta.is_file() {
        return Err(SourceError::NotAFile {
            path: path.to_path_buf(),
        });
    }
    if meta.len() > MAX_RECORD_BYTES {
        return Err(SourceError::TooLarge {
            path: path.to_path_buf(),
            size: meta.len(),
        });
    }
    let mut bytes = Vec::new();
    file.take(MAX_RECORD_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(read)?;
    let dataset = matches!(
        serde_json::from_slice::<Kind>(&bytes),
        Ok(Kind { kind: Some(kind) }) if kind == "dataset"
    );
    let not_a_record = |e: serde_json::Error| SourceError::NotARecord {
        path: path.to_path_buf(),
        line: e.line(),
        column: e.column(),
        message: e.to_string(),
    };
    if dataset {
        let record = serde_json::from_slice(&bytes).map_err(not_a_record)?;
        let results = path.with_file_name("results.jsonl");
        return Ok(Record::Dataset { record, results });
    }
    serde_json::from_slice(&bytes)
        .map(|record| Record::Run(Box::new(record)))
        .map_err(not_a_record)
}

/// The record of run `id` (or the start of an id; the latest run for `None`).
pub fn from_history(store: &Store, id: Option<&str>) -> Result<Found, SourceError> {
    let id = match id {
        Some(id) => match store.find(id)?.as_slice() {
            [] => return Err(SourceError::NoRun(id.to_string())),
            [one] => one.clone(),
            many => {
                return Err(SourceError::Ambiguous {
                    id: id.to_string(),
                    many: many.to_vec(),
                });
            }
        },
        None => store
            .list(1)?
            .into_iter()
            .next()
            .map(|run| run.run_id)
            .ok_or(SourceError::Empty)?,
    };
    let (summary, record) = store.show(&id)?.ok_or(SourceError::NoRun(id.clone()))?;
    let kept = store.record_path(&id)?;
    if let Some(rows) = summary.rows {
        // A dataset run with `--out DIR` kept DIR/run.json (and DIR/results.jsonl).
        if let Some(Ok(found @ Record::Dataset { .. })) =
            kept.as_deref().map(|path| read_file(Path::new(path)))
            && found.run_id() == id
        {
            return Ok(Found {
                record: found,
                origin: Origin::Record,
                note: None,
            });
        }
        let over = rows
            .total
            .map_or_else(|| "its rows".to_string(), |n| format!("{n} rows"));
        let note = format!(
            "run {id} ran the squad over {over} (`--each`) without `--out DIR` (or its DIR/run.json now holds another run); this report shows each agent's totals over them, as the history keeps them (no rows, no replies)"
        );
        return Ok(Found {
            record: Record::Run(Box::new(record)),
            origin: Origin::History,
            note: Some(note),
        });
    }
    let note = match kept {
        Some(path) => match read_file(Path::new(&path)) {
            Ok(found @ Record::Run(_)) if found.run_id() == id => {
                return Ok(Found {
                    record: found,
                    origin: Origin::Record,
                    note: None,
                });
            }
            Ok(other) => format!(
                "{path} now holds run {}, not {id}; this report shows what the history keeps (no replies)",
                other.run_id()
            ),
            Err(e) => format!("{e}; this report shows what the history keeps (no replies)"),
        },
        None => format!(
            "run {id} kept no record (it ran without `--out DIR`); this report shows what the history keeps (no replies)"
        ),
    };
    Ok(Found {
        record: Record::Run(Box::new(record)),
        origin: Origin::History,
        note: Some(note),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_file_says_where_and_what() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.json");
        std::fs::write(&path, "{\"run_id\": 3}").unwrap();
        let e = read_file(&path).unwrap_err().to_string();
        assert!(e.contains("run.json:1:"), "{e}");
        assert!(e.contains("not a byok-flow run record"), "{e}");
        let deep = "[".repeat(100_000);
        std::fs::write(&path, deep).unwrap();
        assert!(read_file(&path).is_err());
        assert!(matches!(
            read_file(dir.path()),
            Err(SourceError::NotAFile { .. } | SourceError::Read { .. })
        ));
    }

    #[test]
    fn a_dataset_runs_record_reads_with_its_results_beside_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.json");
        std::fs::write(
            &path,
            r#"{"kind": "dataset", "run_id": "1-a", "rows": {"total": 3}, "mock": false}"#,
        )
        .unwrap();
        let e = read_file(&path).unwrap_err().to_string();
        assert!(e.contains("run.json:1:"), "{e}");
        let record = super::super::rows::tests::record();
        std::fs::write(&path, serde_json::to_string_pretty(&record).unwrap()).unwrap();
        match read_file(&path).unwrap() {
            Record::Dataset {
                record: back,
                results,
            } => {
                assert_eq!(*back, record);
                assert_eq!(results, dir.path().join("results.jsonl"));
            }
            Record::Run(_) => panic!("read as one run's record"),
        }
    }

    #[test]
    fn a_record_reads_back_as_written() {
        let record = super::super::tests::research();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.json");
        std::fs::write(&path, serde_json::to_string_pretty(&record).unwrap()).unwrap();
        let Record::Run(back) = read_file(&path).unwrap() else {
            panic!("read as a dataset's record")
        };
        assert_eq!(
            serde_json::to_value(&back).unwrap(),
            serde_json::to_value(&record).unwrap()
        );
    }
}
