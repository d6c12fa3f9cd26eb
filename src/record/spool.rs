//! Agent records kept out of memory while a run goes on.
//!
//! A squad of 100,000 agents makes 100,000 records (outputs, attempts, timings),
//! and the run's own state is at its largest while they arrive. Each record is
//! written as one JSON line to an unnamed temporary file (`O_TMPFILE` where the
//! system has it: never visible under a name, gone when the run ends, even on
//! `kill -9`) as soon as its agent ends; only a few bytes per record stay in
//! memory. They are read back, in the record's order, once the run is over and
//! its working state is gone.
//!
//! Records never hold a key (the runner takes out of each whatever a key could
//! be in, as the event bus does, before it is spooled); the file is the user's
//! own outputs, created mode 0600. When no temporary file can be made or
//! written (a full or read-only disk), records stay in memory instead: the run
//! goes on as before.

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, BufWriter, Write};

use super::{AgentRecord, AgentStatus};

/// Where a record is, and what the run's end needs of it without reading it.
struct Slot {
    key: (usize, Option<usize>),
    status: AgentStatus,
    key_failure: bool,
    place: Place,
}

enum Place {
    /// Bytes `offset..offset + len` of the file.
    Spooled {
        offset: u64,
        len: u32,
    },
    Held(Box<AgentRecord>),
}

/// The records of a run, kept by `(agent, item)`.
pub struct Spool {
    file: Option<BufWriter<File>>,
    /// A write to the file failed: later records are held, and those already
    /// written are still read back from it.
    full: bool,
    /// Bytes written to the file so far.
    written: u64,
    slots: Vec<Slot>,
    /// Scratch space for one record's JSON.
    line: Vec<u8>,
    /// The agents whose record (not an item's) says they failed.
    failed: HashSet<usize>,
}

impl Default for Spool {
    fn default() -> Self {
        Spool::new()
    }
}

impl Spool {
    /// A spool on a new temporary file, or in memory when none can be made.
    pub fn new() -> Self {
        Spool {
            file: tempfile::tempfile().ok().map(BufWriter::new),
            ..Spool::in_memory()
        }
    }

    /// A spool that keeps every record in memory.
    pub fn in_memory() -> Self {
        Spool {
            file: None,
            full: false,
            written: 0,
            slots: Vec::new(),
            line: Vec::new(),
            failed: HashSet::new(),
        }
    }

    /// Keeps `record` as the record of `key` (agent, item).
    pub fn push(&mut self, key: (usize, Option<usize>), record: AgentRecord) {
        let (status, key_failure) = (record.status, record.key_failure);
        if key.1.is_none() && status == AgentStatus::Failed {
            self.failed.insert(key.0);
        }
        // When the file fails, records stay in memory from here on; those already
        // written are whole (the writer is flushed before any is read back).
        let place = self.spill(&record).unwrap_or_else(|_| {
            self.full = true;
            Place::Held(Box::new(record))
        });
        self.slots.push(Slot {
            key,
            status,
            key_failure,
            place,
        });
    }

    fn spill(&mut self, record: &AgentRecord) -> io::Result<Place> {
        let Some(file) = self.file.as_mut().filter(|_| !self.full) else {
            return Err(io::ErrorKind::Unsupported.into());
        };
        self.line.clear();
        serde_json::to_writer(&mut self.line, record)?;
        let len = u32::try_from(self.line.len()).map_err(|_| io::ErrorKind::FileTooLarge)?;
        file.write_all(&self.line)?;
        let offset = self.written;
        self.written += u64::from(len);
        Ok(Place::Spooled { offset, len })
    }

    /// Whether `agent` (one call, not an item of a map agent) has failed.
    pub fn failed(&self, agent: usize) -> bool {
        self.failed.contains(&agent)
    }

    /// The records in `(agent, item)` order, read back. A record that cannot be
    /// read back (the temporary file failed under it) is replaced by
    /// `unreadable(key, status, why)`.
    pub fn into_records(
        mut self,
        mut unreadable: impl FnMut((usize, Option<usize>), AgentStatus, String) -> AgentRecord,
    ) -> Vec<AgentRecord> {
        self.slots.sort_by_key(|s| s.key);
        // What a failed write left unwritten is missing from the file: those
        // records alone cannot be read back.
        let file = self.file.take().map(|mut writer| {
            let _ = writer.flush();
            writer.into_parts().0
        });
        let mut buffer = Vec::new();
        let mut records = Vec::with_capacity(self.slots.len());
        for slot in self.slots {
            let record = match slot.place {
                Place::Held(record) => *record,
                Place::Spooled { offset, len } => {
                    match read_back(file.as_ref(), offset, len, &mut buffer) {
                        Ok(mut record) => {
                            record.key_failure = slot.key_failure;
                            // A list read from JSON text grows by doubling (one
                            // attempt takes room for four): 100,000 records at once
                            // are kept at their size.
                            record.attempts.shrink_to_fit();
                            record.depends_on.shrink_to_fit();
                            record.citations.shrink_to_fit();
                            record
                        }
                        Err(e) => unreadable(
                            slot.key,
                            slot.status,
                            format!("its record could not be read back from a temporary file: {e}"),
                        ),
                    }
                }
            };
            records.push(record);
        }
        records
    }
}

fn read_back(
    file: Option<&File>,
    offset: u64,
    len: u32,
    buffer: &mut Vec<u8>,
) -> io::Result<AgentRecord> {
    let file = file.ok_or(io::ErrorKind::NotFound)?;
    buffer.resize(len as usize, 0);
    crate::read::exact_at(file, buffer, offset)?;
    Ok(serde_json::from_slice(buffer)?)
}

#[cfg(test)]
mod tests;
