//! Reading rows, streamed: JSON Lines (`.jsonl`, and `-` for stdin), a JSON array
//! (`.json`), or CSV with a header row (`.csv`, RFC 4180 quoting, read by the `csv`
//! crate). Only one row is held at a time, and no row may be longer than
//! [`MAX_ROW_BYTES`].
//!
//! A row that cannot be used (not JSON, not an object, too long, not UTF-8) comes
//! out as a [`RawRow`] with a [`RowProblem`]: a failed row, the others run. A file
//! whose structure is broken (a JSON array that is not one, a CSV header with a
//! column twice) is a [`FileError`]: nothing after it can be trusted.

use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read as _};
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::{Map, Value as Json};

use super::csv_rows::CsvRows;
use super::json_array::{Elements, Piece};
use super::shard::Shard;

/// The most bytes one row may have (a JSON line, an array element, a CSV record).
pub const MAX_ROW_BYTES: usize = 4 << 20;

/// How a rows file is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// One JSON object a line (`.jsonl`, `.ndjson`, and stdin).
    Jsonl,
    /// One JSON array of objects (`.json`).
    Json,
    /// A header row naming the fields, then one record a row (`.csv`).
    Csv,
}

/// Where a row is in its file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Place {
    /// A JSON line, or the line where an array element starts (1-based).
    Line(u64),
    /// A CSV record (1-based, the header not counted), and the line it starts on.
    Record { record: u64, line: u64 },
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Place::Line(line) => write!(f, "line {line}"),
            Place::Record { record, line } => write!(f, "record {record} (line {line})"),
        }
    }
}

/// What is wrong with one row, and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RowProblem {
    pub message: String,
    pub hint: String,
}

impl RowProblem {
    pub fn new(message: impl Into<String>, hint: impl Into<String>) -> Self {
        RowProblem {
            message: message.into(),
            hint: hint.into(),
        }
    }
}

/// One row as read.
#[derive(Debug, Clone, PartialEq)]
pub struct RawRow {
    /// Its 0-based index among the file's rows (what `--shard` divides).
    pub index: u64,
    pub place: Place,
    /// Its fields (a CSV record's empty fields left out), or why it cannot be used.
    pub fields: Result<Map<String, Json>, RowProblem>,
}

/// A rows file that cannot be read as rows at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileError {
    pub message: String,
    pub hint: String,
}

impl FileError {
    pub(super) fn new(message: impl Into<String>, hint: impl Into<String>) -> Self {
        FileError {
            message: message.into(),
            hint: hint.into(),
        }
    }
}

/// What to do about a row that is not an object.
const OBJECT_HINT: &str =
    "each row is a JSON object whose fields are the workflow's inputs, like {\"ticket\": \"…\"}";

/// A rows file (or stdin), and how it is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// The file; `None` for stdin.
    pub path: Option<PathBuf>,
    pub format: Format,
}

impl Source {
    /// The rows named by `--each`: `-` for JSON Lines on stdin, else a regular
    /// file whose extension says its format.
    pub fn new(arg: &Path) -> Result<Source, FileError> {
        if arg.as_os_str() == "-" {
            return Ok(Source {
                path: None,
                format: Format::Jsonl,
            });
        }
        let shown = arg.display();
        let ext = arg
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        let format = match ext.as_deref() {
            Some("jsonl" | "ndjson") => Format::Jsonl,
            Some("json") => Format::Json,
            Some("csv") => Format::Csv,
            _ => {
                return Err(FileError::new(
                    format!(
                        "`--each {shown}`: cannot tell how the rows are written from the file's name"
                    ),
                    "name it `.jsonl` (a JSON object a line), `.json` (an array of objects) or `.csv` (a header row, then a record a row); `--each -` reads JSON Lines from stdin",
                ));
            }
        };
        let meta = std::fs::metadata(arg).map_err(|e| {
            FileError::new(
                format!("`--each {shown}`: cannot read the file: {e}"),
                "check the path",
            )
        })?;
        if !meta.is_file() {
            return Err(FileError::new(
                format!("`--each {shown}` is not a regular file"),
                "rows are read twice from a file (checked, then run); pipe anything else as JSON Lines into `--each -`",
            ));
        }
        Ok(Source {
            path: Some(arg.to_path_buf()),
            format,
        })
    }

    /// The name to show: the path, or `stdin`.
    pub fn name(&self) -> String {
        self.path
            .as_ref()
            .map_or_else(|| "stdin".to_string(), |p| p.display().to_string())
    }

    /// The rows, from the start; with a shard, only the rows whose index it takes
    /// (the others are counted, not parsed).
    pub fn rows(&self, shard: Option<Shard>) -> Result<Rows, FileError> {
        let reader: Box<dyn BufRead + Send> = match &self.path {
            None => Box::new(BufReader::with_capacity(1 << 16, io::stdin())),
            Some(path) => {
                let file = File::open(path).map_err(|e| {
                    FileError::new(
                        format!("cannot read {}: {e}", path.display()),
                        "check the path and its permissions",
                    )
                })?;
                Box::new(BufReader::with_capacity(1 << 16, file))
            }
        };
        let kind = match self.format {
            Format::Jsonl => Kind::Lines {
                reader,
                line: 0,
                buf: Vec::new(),
            },
            Format::Json => Kind::Array(Elements::new(reader, MAX_ROW_BYTES)),
            Format::Csv => Kind::Csv(CsvRows::new(reader, &self.name())?),
        };
        Ok(Rows {
            kind,
            index: 0,
            shard,
            done: false,
        })
    }
}

/// The rows of a source, in order.
pub struct Rows {
    kind: Kind,
    index: u64,
    shard: Option<Shard>,
    done: bool,
}

enum Kind {
    Lines {
        reader: Box<dyn BufRead + Send>,
        line: u64,
        buf: Vec<u8>,
    },
    Array(Elements<Box<dyn BufRead + Send>>),
    Csv(CsvRows),
}

impl Rows {
    /// The CSV header's field names; none for JSON.
    pub fn header(&self) -> Option<&[String]> {
        match &self.kind {
            Kind::Csv(csv) => Some(&csv.header),
            _ => None,
        }
    }

    fn wanted(&self, index: u64) -> bool {
        self.shard.is_none_or(|s| s.takes(index))
    }
}

impl Iterator for Rows {
    type Item = Result<RawRow, FileError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        loop {
            let index = self.index;
            let wanted = self.wanted(index);
            let read = match &mut self.kind {
                Kind::Lines { reader, line, buf } => next_line(reader, line, buf, wanted),
                Kind::Array(elements) => next_element(elements, wanted),
                Kind::Csv(csv) => csv.next(wanted),
            };
            match read {
                Ok(None) => {
                    self.done = true;
                    return None;
                }
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
                Ok(Some((place, fields))) => {
                    self.index += 1;
                    if wanted {
                        return Some(Ok(RawRow {
                            index,
                            place,
                            fields,
                        }));
                    }
                }
            }
        }
    }
}

pub(super) type Read1 = Result<Option<(Place, Result<Map<String, Json>, RowProblem>)>, FileError>;

fn io_error(e: &io::Error) -> FileError {
    FileError::new(
        format!("cannot read the rows: {e}"),
        "check that the file is readable",
    )
}

/// The next JSON line that is not blank.
fn next_line(
    reader: &mut Box<dyn BufRead + Send>,
    line: &mut u64,
    buf: &mut Vec<u8>,
    wanted: bool,
) -> Read1 {
    loop {
        buf.clear();
        let limit = MAX_ROW_BYTES as u64 + 1;
        let n = reader
            .by_ref()
            .take(limit)
            .read_until(b'\n', buf)
            .map_err(|e| io_error(&e))?;
        if n == 0 {
            return Ok(None);
        }
        *line += 1;
        let place = Place::Line(*line);
        let complete = buf.last() == Some(&b'\n') || n as u64 <= MAX_ROW_BYTES as u64;
        if !complete {
            let size = n + skip_line(reader).map_err(|e| io_error(&e))?;
            return Ok(Some((place, Err(too_long(size)))));
        }
        if *line == 1 && buf.starts_with(b"\xEF\xBB\xBF") {
            buf.drain(..3);
        }
        if buf.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        if !wanted {
            return Ok(Some((place, Ok(Map::new()))));
        }
        let fields = match serde_json::from_slice::<Json>(buf) {
            Ok(Json::Object(map)) => Ok(map),
            Ok(other) => Err(not_an_object(&other)),
            Err(e) => Err(RowProblem::new(
                format!("it is not JSON: {}", strip_position(&e)),
                "each line holds one JSON object, like {\"ticket\": \"…\"}; escape newlines inside strings as \\n",
            )),
        };
        return Ok(Some((place, fields)));
    }
}

/// Reads to the end of the line; how many bytes that was.
fn skip_line(reader: &mut Box<dyn BufRead + Send>) -> io::Result<usize> {
    let mut skipped = 0;
    loop {
        let (used, done) = {
            let available = reader.fill_buf()?;
            if available.is_empty() {
                return Ok(skipped);
            }
            match available.iter().position(|&b| b == b'\n') {
                Some(i) => (i + 1, true),
                None => (available.len(), false),
            }
        };
        reader.consume(used);
        skipped += used;
        if done {
            return Ok(skipped);
        }
    }
}

pub(super) fn too_long(size: usize) -> RowProblem {
    RowProblem::new(
        format!(
            "it is {:.1} MiB, over the {} MiB a row may have",
            size as f64 / f64::from(1 << 20),
            MAX_ROW_BYTES >> 20
        ),
        "rows are capped so that the rows in flight fit in memory; shorten the row, or split its text over several rows",
    )
}

fn not_an_object(value: &Json) -> RowProblem {
    let kind = match value {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    };
    RowProblem::new(format!("it is {kind}, not an object"), OBJECT_HINT)
}

/// `serde_json`'s message without its "at line 1 column 5" (the row says where).
fn strip_position(e: &serde_json::Error) -> String {
    let text = e.to_string();
    match text.rfind(" at line ") {
        Some(i) => format!("{} (column {})", &text[..i], e.column()),
        None => text,
    }
}

/// The next element of a JSON array.
fn next_element(elements: &mut Elements<Box<dyn BufRead + Send>>, wanted: bool) -> Read1 {
    let piece = elements.next_piece().map_err(|e| io_error(&e))?;
    let (bytes, size, line, column) = match piece {
        None => return Ok(None),
        Some(Piece::Broken(why)) => {
            return Err(FileError::new(
                format!("it is not a JSON array: {why}"),
                "a `.json` rows file is one array of objects, like [{\"ticket\": \"…\"}, {\"ticket\": \"…\"}]; for one object a line, name the file `.jsonl`",
            ));
        }
        Some(Piece::Element {
            bytes,
            size,
            line,
            column,
        }) => (bytes, size, line, column),
    };
    let place = Place::Line(line);
    if size > MAX_ROW_BYTES {
        return Ok(Some((place, Err(too_long(size)))));
    }
    match serde_json::from_slice::<Json>(&bytes) {
        Ok(_) if !wanted => Ok(Some((place, Ok(Map::new())))),
        Ok(Json::Object(map)) => Ok(Some((place, Ok(map)))),
        Ok(other) => Ok(Some((place, Err(not_an_object(&other))))),
        Err(e) => {
            let (at_line, at_column) = if e.line() <= 1 {
                (line, column + e.column() as u64 - 1)
            } else {
                (line + e.line() as u64 - 1, e.column() as u64)
            };
            Err(FileError::new(
                format!(
                    "it is not a JSON array: line {at_line} column {at_column}: {}",
                    strip_position(&e)
                        .split(" (column")
                        .next()
                        .unwrap_or_default()
                ),
                "fix the JSON there; every element must be valid JSON",
            ))
        }
    }
}

/// Reads all of `reader` (a test helper for sources in memory).
#[cfg(test)]
pub(super) fn rows_of(format: Format, text: &str) -> Result<Vec<RawRow>, FileError> {
    let reader: Box<dyn BufRead + Send> = Box::new(io::Cursor::new(text.as_bytes().to_vec()));
    let kind = match format {
        Format::Jsonl => Kind::Lines {
            reader,
            line: 0,
            buf: Vec::new(),
        },
        Format::Json => Kind::Array(Elements::new(reader, MAX_ROW_BYTES)),
        Format::Csv => Kind::Csv(CsvRows::new(reader, "test.csv")?),
    };
    Rows {
        kind,
        index: 0,
        shard: None,
        done: false,
    }
    .collect()
}
