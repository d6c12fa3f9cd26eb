//! How entries are framed in a segment, and how a segment is read and written.
//!
//! A segment is a file of records, appended one after the other by the one
//! process that created it. A record is a header of [`HEADER`] bytes, then its
//! payload (the entry, as JSON):
//!
//! | bytes | what |
//! | ----- | ---- |
//! | 8     | `byokflw1`, the magic |
//! | 32    | the key |
//! | 8     | when it was written, nanoseconds since 1970 (little-endian) |
//! | 4     | the payload's length in bytes (little-endian) |
//! | 32    | the SHA-256 of the payload |
//! | 8     | the first 8 bytes of the SHA-256 of the 84 bytes above |
//!
//! The header's own check lets a segment be indexed without reading its payloads;
//! the payload's is checked each time an entry is served. A segment is read up to
//! its first record that is not whole (a header that does not check, or a payload
//! that runs past the end): what a process killed mid-write, or a machine that
//! lost its power, can leave at the end of a file. The rest of that file is not
//! believed.

use std::fs::File;
use std::io::{self, BufReader, Read};

use sha2::{Digest, Sha256};

use super::Key;

const MAGIC: [u8; 8] = *b"byokflw1";

/// The length of a record's header.
pub const HEADER: usize = 8 + 32 + 8 + 4 + 32 + 8;

/// The largest payload written or read; a longer one is not one this cache wrote.
pub const MAX_PAYLOAD: u32 = 256 * 1024 * 1024;

/// The bytes of a header its check covers.
const CHECKED: usize = HEADER - 8;

/// A record's header, checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub key: Key,
    /// Nanoseconds since 1970: the latest record of a key is the one served.
    pub written: u64,
    pub len: u32,
    digest: [u8; 32],
}

impl Header {
    /// The header at the start of `bytes`, if it is whole and checks.
    pub fn decode(bytes: &[u8]) -> Option<Header> {
        let bytes = bytes.get(..HEADER)?;
        if bytes[..8] != MAGIC || bytes[CHECKED..] != check(&bytes[..CHECKED]) {
            return None;
        }
        let field = |at: usize, n: usize| &bytes[at..at + n];
        let len = u32::from_le_bytes(field(48, 4).try_into().ok()?);
        (len <= MAX_PAYLOAD).then_some(())?;
        Some(Header {
            key: Key(field(8, 32).try_into().ok()?),
            written: u64::from_le_bytes(field(40, 8).try_into().ok()?),
            len,
            digest: field(52, 32).try_into().ok()?,
        })
    }

    /// Whether `payload` is the one this header was written for.
    pub fn holds(&self, payload: &[u8]) -> bool {
        payload.len() == self.len as usize
            && <[u8; 32]>::from(Sha256::digest(payload)) == self.digest
    }
}

fn check(bytes: &[u8]) -> [u8; 8] {
    let digest = Sha256::digest(bytes);
    let mut out = [0; 8];
    out.copy_from_slice(&digest[..8]);
    out
}

/// The record of `payload` under `key`, written at `written`: its header, then it.
pub fn encode(key: &Key, written: u64, payload: &[u8]) -> io::Result<Vec<u8>> {
    let len = u32::try_from(payload.len())
        .ok()
        .filter(|&len| len <= MAX_PAYLOAD)
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "the entry is larger than {}",
                    crate::read::size(MAX_PAYLOAD.into())
                ),
            )
        })?;
    let mut record = Vec::with_capacity(HEADER + payload.len());
    record.extend_from_slice(&MAGIC);
    record.extend_from_slice(&key.0);
    record.extend_from_slice(&written.to_le_bytes());
    record.extend_from_slice(&len.to_le_bytes());
    record.extend_from_slice(&Sha256::digest(payload));
    let checked = check(&record);
    record.extend_from_slice(&checked);
    record.extend_from_slice(payload);
    Ok(record)
}

/// Calls `each(header, offset)` for every whole record of `file` from `from`
/// (the offset of a record) to its first record that is not whole, or `size`;
/// returns where that is (where the next scan starts). Payloads are skipped,
/// not read.
pub fn scan(
    file: &File,
    from: u64,
    size: u64,
    mut each: impl FnMut(Header, u64),
) -> io::Result<u64> {
    use std::io::{Seek, SeekFrom};
    let mut reader = BufReader::with_capacity(64 * 1024, file);
    reader.seek(SeekFrom::Start(from))?;
    let mut at = from;
    let mut header = [0; HEADER];
    while at + HEADER as u64 <= size {
        reader.read_exact(&mut header)?;
        let Some(found) = Header::decode(&header) else {
            break;
        };
        let end = at + HEADER as u64 + u64::from(found.len);
        if end > size {
            break;
        }
        each(found, at);
        reader.seek_relative(i64::from(found.len))?;
        at = end;
    }
    Ok(at)
}

/// Reads `len` bytes at `offset` of `file`, without moving anything a scan shares.
pub fn read_at(file: &File, offset: u64, len: usize) -> io::Result<Vec<u8>> {
    let mut bytes = vec![0; len];
    crate::read::exact_at(file, &mut bytes, offset)?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> Key {
        Key([n; 32])
    }

    #[test]
    fn a_record_is_read_back_and_a_damaged_header_is_not() {
        let record = encode(&key(7), 42, b"{\"a\": 1}").unwrap();
        let header = Header::decode(&record).unwrap();
        assert_eq!((header.key, header.written, header.len), (key(7), 42, 8));
        assert!(header.holds(&record[HEADER..]));
        assert!(!header.holds(b"{\"a\": 2}"));
        for at in 0..HEADER {
            let mut bad = record.clone();
            bad[at] ^= 1;
            assert_eq!(Header::decode(&bad), None, "byte {at}");
        }
        assert_eq!(Header::decode(&record[..HEADER - 1]), None);
    }

    #[test]
    fn a_scan_stops_at_the_first_record_that_is_not_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.seg");
        let mut bytes = Vec::new();
        for n in 0..3 {
            bytes.extend(encode(&key(n), u64::from(n), &vec![b'x'; 100 * usize::from(n)]).unwrap());
        }
        let whole = bytes.len() as u64;
        let second = (HEADER + HEADER) as u64;
        bytes.extend(&encode(&key(9), 9, b"cut short").unwrap()[..HEADER + 3]);
        std::fs::write(&path, &bytes).unwrap();
        let file = File::open(&path).unwrap();
        let mut seen = Vec::new();
        let end = scan(&file, 0, bytes.len() as u64, |h, at| seen.push((h.key, at))).unwrap();
        assert_eq!(end, whole);
        assert_eq!(
            seen,
            [(key(0), 0), (key(1), HEADER as u64), (key(2), second + 100)]
        );
        // From where a scan stopped, once the rest has arrived.
        seen.clear();
        let end = scan(&file, HEADER as u64, whole, |h, at| seen.push((h.key, at))).unwrap();
        assert_eq!((end, seen.len()), (whole, 2));
        assert_eq!(read_at(&file, second + HEADER as u64, 4).unwrap(), b"xxxx");
    }
}
