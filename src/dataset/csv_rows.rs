//! CSV rows (RFC 4180, read by the `csv` crate): a header row naming the fields,
//! then one record a row. Quoted fields may hold commas, quotes (doubled) and line
//! breaks; a UTF-8 byte order mark is dropped; lines end in LF or CRLF. An empty
//! field leaves its input to `--input` or its default.
//!
//! The `csv` crate places a record after a CRLF on the line before it, so lines are
//! counted here, from the bytes it reads.

use std::collections::VecDeque;
use std::io::{self, BufRead, Read};
use std::sync::{Arc, Mutex, PoisonError};

use serde_json::{Map, Value as Json};

use super::read::{FileError, MAX_ROW_BYTES, Place, Read1, RowProblem, too_long};

/// A CSV file: its header, then its records.
pub(super) struct CsvRows {
    reader: csv::Reader<Logged<Box<dyn BufRead + Send>>>,
    lines: Arc<Mutex<LineLog>>,
    pub header: Vec<String>,
    record: csv::ByteRecord,
    number: u64,
}

impl CsvRows {
    pub fn new(mut reader: Box<dyn BufRead + Send>, name: &str) -> Result<Self, FileError> {
        // Dropped here, so that the crate's byte offsets and the log's agree.
        if reader
            .fill_buf()
            .is_ok_and(|b| b.starts_with(b"\xEF\xBB\xBF"))
        {
            reader.consume(3);
        }
        let lines = Arc::new(Mutex::new(LineLog::default()));
        let logged = Logged {
            inner: reader,
            log: lines.clone(),
        };
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            .flexible(true)
            .from_reader(logged);
        let header = match reader.headers() {
            Ok(h) => h.iter().map(|f| f.trim().to_string()).collect::<Vec<_>>(),
            Err(e) => {
                return Err(FileError::new(
                    format!("{name}: cannot read the CSV header: {e}"),
                    "the first line of a `.csv` rows file names the fields, like `ticket,customer`, in UTF-8",
                ));
            }
        };
        if header.iter().all(String::is_empty) {
            return Err(FileError::new(
                format!("{name}: the file is empty"),
                "a `.csv` rows file starts with a header row naming the fields, then one record a row",
            ));
        }
        for (i, name_i) in header.iter().enumerate() {
            if name_i.is_empty() {
                return Err(FileError::new(
                    format!("column {} of the CSV header has no name", i + 1),
                    "name every column in the header row, or remove the empty one",
                ));
            }
            if let Some(j) = header[..i].iter().position(|h| h == name_i) {
                return Err(FileError::new(
                    format!(
                        "the CSV header names `{name_i}` twice (columns {} and {})",
                        j + 1,
                        i + 1
                    ),
                    "each column fills the input of its name; rename or remove one of them",
                ));
            }
        }
        Ok(CsvRows {
            reader,
            lines,
            header,
            record: csv::ByteRecord::new(),
            number: 0,
        })
    }

    pub fn next(&mut self, wanted: bool) -> Read1 {
        let read = self.reader.read_byte_record(&mut self.record);
        match read {
            Ok(false) => return Ok(None),
            Ok(true) => {}
            Err(e) => {
                return Err(FileError::new(
                    format!("cannot read the CSV: {e}"),
                    "check that the file is readable",
                ));
            }
        }
        self.number += 1;
        let at = self.record.position().map_or(0, csv::Position::byte);
        let line = self
            .lines
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .line_at(at);
        let place = Place::Record {
            record: self.number,
            line,
        };
        if !wanted {
            return Ok(Some((place, Ok(Map::new()))));
        }
        let size: usize = self.record.iter().map(<[u8]>::len).sum();
        if size > MAX_ROW_BYTES {
            return Ok(Some((place, Err(too_long(size)))));
        }
        if self.record.len() != self.header.len() {
            return Ok(Some((
                place,
                Err(RowProblem::new(
                    format!(
                        "it has {} fields, the header {}",
                        self.record.len(),
                        self.header.len()
                    ),
                    "give every record one field per header column (an empty field leaves its input to `--input` or its default); quote fields that hold commas",
                )),
            )));
        }
        let mut fields = Map::new();
        for (name, value) in self.header.iter().zip(self.record.iter()) {
            let Ok(text) = std::str::from_utf8(value) else {
                return Ok(Some((
                    place,
                    Err(RowProblem::new(
                        format!("its field `{name}` is not UTF-8 text"),
                        "save the file as UTF-8",
                    )),
                )));
            };
            if !text.is_empty() {
                fields.insert(name.clone(), Json::String(text.to_string()));
            }
        }
        Ok(Some((place, Ok(fields))))
    }
}

/// Where the line breaks of a stream are, for the lines of records read from it.
#[derive(Default)]
struct LineLog {
    /// Bytes read so far.
    read: u64,
    /// Offsets of line breaks not yet passed by a query.
    breaks: VecDeque<u64>,
    /// Line breaks before the last query's offset.
    passed: u64,
}

impl LineLog {
    /// The 1-based line of the record that starts at byte `at`. (Queries come in
    /// increasing order.) A record never starts with a line break, so a break at
    /// `at` is the end of the CRLF before it, and the record is on the next line.
    fn line_at(&mut self, at: u64) -> u64 {
        while self.breaks.front().is_some_and(|&b| b <= at) {
            self.breaks.pop_front();
            self.passed += 1;
        }
        self.passed + 1
    }
}

/// A reader that logs where its line breaks are.
struct Logged<R> {
    inner: R,
    log: Arc<Mutex<LineLog>>,
}

impl<R: Read> Read for Logged<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let mut log = self.log.lock().unwrap_or_else(PoisonError::into_inner);
        let start = log.read;
        for (i, _) in buf[..n].iter().enumerate().filter(|(_, b)| **b == b'\n') {
            log.breaks.push_back(start + i as u64);
        }
        log.read += n as u64;
        Ok(n)
    }
}
