//! The segments of a cache folder: an index of every whole record in them (key
//! to segment and offset; the entries themselves stay on the disk), this
//! process's own segment, which it alone appends to, and compaction.
//!
//! Each process that writes makes its own segment (created new, never one that
//! exists, mode 0600) and holds a lock on it while it lives, so processes never
//! write to the same file and need no lock to append. The index is built the
//! first time the cache is used, from the segments there are then; a key not in
//! it is looked for again in what other processes have written since, at most
//! once every [`RESCAN`].
//!
//! Compaction keeps the number of files (and so the work of building the index)
//! small: when a folder has more than [`COMPACT_AT`] segments, the small ones no
//! live process holds are rewritten as one (only the newest whole record of each
//! key; synced, then renamed into place), and then removed. A process that had
//! opened one of them still reads it (a file removed while open stays readable
//! on Unix); one that lists the folder in between may miss some entries, and
//! calls again.

use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::Key;
use super::segment::{self, HEADER, Header};

/// Mode 0600: replies can be as private as the prompts that asked for them.
pub const ENTRY_MODE: u32 = 0o600;

/// More segments than this in a folder, and the small ones are compacted.
const COMPACT_AT: usize = 16;

/// A segment this large is left as it is by compaction.
const SMALL: u64 = 64 * 1024 * 1024;

/// How often, at most, a miss looks for what other processes wrote since.
pub(super) const RESCAN: Duration = Duration::from_secs(1);

/// Where a record is, in 8 bytes: the segment's number (in `segments`) in the
/// high [`SEGMENT_BITS`], the record's offset in the rest. What the header says
/// (the whole key, when it was written, the payload's length) is read from the
/// disk when it is needed.
#[derive(Debug, Clone, Copy)]
struct Loc(u64);

const SEGMENT_BITS: u32 = 24;
const OFFSET_BITS: u32 = u64::BITS - SEGMENT_BITS;

impl Loc {
    /// `None` past 16 million segments or 1 TiB into one: such a record is not
    /// indexed (a miss), never misplaced.
    fn new(segment: usize, offset: u64) -> Option<Loc> {
        let segment = u64::try_from(segment).ok()?;
        (segment >> SEGMENT_BITS == 0 && offset >> OFFSET_BITS == 0)
            .then_some(Loc(segment << OFFSET_BITS | offset))
    }

    fn segment(self) -> usize {
        (self.0 >> OFFSET_BITS) as usize
    }

    fn offset(self) -> u64 {
        self.0 & ((1 << OFFSET_BITS) - 1)
    }
}

/// The first 8 bytes of a key: what the index is keyed by.
fn prefix(key: &Key) -> u64 {
    let mut bytes = [0; 8];
    bytes.copy_from_slice(&key.0[..8]);
    u64::from_le_bytes(bytes)
}

/// Every indexed key's newest record, in 16 bytes an entry, not the 56 a whole
/// key and its place took. A key is found by its first 8 bytes; the record
/// there is served only if its header names the whole key. Two keys that share
/// their first 8 bytes (one pair in about 10^10 among 100,000 entries, or made
/// on purpose) are both kept: the first by its prefix, the others whole in
/// `collided`, looked in first.
///
/// Most entries are in `sorted`, an array with no slack in use (a hash table
/// has up to half its slots empty, and holds its old table and its new one
/// while it grows); new prefixes go to `recent`, merged into `sorted` when it
/// holds [`RECENT`].
#[derive(Default)]
struct Index {
    sorted: Vec<(u64, Loc)>,
    recent: HashMap<u64, Loc>,
    collided: HashMap<Key, Loc>,
}

/// How many new prefixes wait in a hash table before they are merged.
const RECENT: usize = 4096;

impl Index {
    #[cfg(test)]
    fn len(&self) -> usize {
        self.sorted.len() + self.recent.len() + self.collided.len()
    }

    /// Where the newest record of `key` may be (its header, read, says whether
    /// it is `key`'s).
    fn get(&self, key: &Key) -> Option<Loc> {
        self.collided
            .get(key)
            .copied()
            .or_else(|| self.by_prefix(prefix(key)))
    }

    fn by_prefix(&self, short: u64) -> Option<Loc> {
        self.recent.get(&short).copied().or_else(|| {
            let at = self.sorted.binary_search_by_key(&short, |e| e.0).ok()?;
            Some(self.sorted[at].1)
        })
    }

    /// Every place indexed.
    fn locs(&self) -> impl Iterator<Item = Loc> + '_ {
        self.sorted
            .iter()
            .map(|e| &e.1)
            .chain(self.recent.values())
            .chain(self.collided.values())
            .copied()
    }

    /// Indexes the record of `key` written at `written`, at `loc`, unless the
    /// index has a newer one of the same key (of two written at the same
    /// moment, the one indexed last wins).
    fn insert(&mut self, segments: &[Segment], key: &Key, written: u64, loc: Loc) {
        let newer = |old: Loc| match header_at(segments, old) {
            Some(h) if h.key == *key => Some(written >= h.written),
            Some(_) => None,
            // The record there can no longer be read: it would not be served.
            None => Some(true),
        };
        if let Some(old) = self.collided.get_mut(key) {
            if newer(*old) != Some(false) {
                *old = loc;
            }
            return;
        }
        let short = prefix(key);
        let Some(old) = self.by_prefix(short) else {
            self.recent.insert(short, loc);
            if self.recent.len() >= RECENT {
                self.merge();
            }
            return;
        };
        match newer(old) {
            Some(true) => {
                if let Some(slot) = self.recent.get_mut(&short) {
                    *slot = loc;
                } else if let Ok(at) = self.sorted.binary_search_by_key(&short, |e| e.0) {
                    self.sorted[at].1 = loc;
                }
            }
            Some(false) => {}
            // Another key's, with the same first 8 bytes.
            None => {
                self.collided.insert(*key, loc);
            }
        }
    }

    /// Moves `recent` into `sorted`, in place from its end (no prefix is in both).
    fn merge(&mut self) {
        let mut recent: Vec<(u64, Loc)> = self.recent.drain().collect();
        recent.sort_unstable_by_key(|e| e.0);
        let mut old = self.sorted.len();
        self.sorted.resize(old + recent.len(), (0, Loc(0)));
        for at in (0..self.sorted.len()).rev() {
            let Some(&last) = recent.last() else {
                break;
            };
            if old > 0 && self.sorted[old - 1].0 > last.0 {
                self.sorted[at] = self.sorted[old - 1];
                old -= 1;
            } else {
                self.sorted[at] = last;
                recent.pop();
            }
        }
    }
}

/// The header of the record at `loc`, if it can be read and checks.
fn header_at(segments: &[Segment], loc: Loc) -> Option<Header> {
    let segment = segments.get(loc.segment())?;
    let bytes = segment::read_at(&segment.file, loc.offset(), HEADER).ok()?;
    Header::decode(&bytes)
}

struct Segment {
    path: PathBuf,
    file: File,
    /// Where its last scan stopped.
    scanned: u64,
}

/// What a look-up found in the segments.
pub enum Found {
    Payload(Vec<u8>),
    /// A record there, that cannot be served: why, and where it is.
    Damaged(String),
}

pub struct Store {
    dir: PathBuf,
    index: Index,
    segments: Vec<Segment>,
    /// The names of the segments read, so a rescan reads only new ones.
    known: HashSet<OsString>,
    /// This process's segment, once it has written.
    own: Option<usize>,
    rescanned: Instant,
}

impl Store {
    /// The index of the segments in `dir` (none when it does not exist yet),
    /// compacted first when there are many of them.
    pub fn open(dir: PathBuf) -> Store {
        let mut store = Store::read(dir);
        if store.segments.len() > COMPACT_AT && store.compact() {
            // Read again, what is there now; the old files go (and their locks).
            return Store::read(store.dir.clone());
        }
        store
    }

    fn read(dir: PathBuf) -> Store {
        let mut store = Store {
            dir,
            index: Index::default(),
            segments: Vec::new(),
            known: HashSet::new(),
            own: None,
            rescanned: Instant::now(),
        };
        store.rescan();
        store
    }

    /// How many entries the index holds.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// The newest whole record of `key`, its payload checked.
    pub fn find(&mut self, key: &Key) -> Option<Found> {
        let (loc, header) = if let Some(found) = self.locate(key) {
            found
        } else {
            if self.rescanned.elapsed() < RESCAN {
                return None;
            }
            self.rescan();
            self.locate(key)?
        };
        let Ok(header) = header else {
            return Some(Found::Damaged(self.corrupted(loc)));
        };
        let segment = &self.segments[loc.segment()];
        let payload = match segment::read_at(
            &segment.file,
            loc.offset() + HEADER as u64,
            header.len as usize,
        ) {
            Ok(bytes) => bytes,
            Err(e) => {
                return Some(Found::Damaged(format!(
                    "{} cannot be read ({e})",
                    self.at(loc)
                )));
            }
        };
        if header.holds(&payload) {
            Some(Found::Payload(payload))
        } else {
            Some(Found::Damaged(self.corrupted(loc)))
        }
    }

    /// Where the index has a record of `key`, and its header: `Err` when that
    /// header cannot be read or does not check, `None` when the index has none
    /// (or only another key's that shares its first 8 bytes).
    fn locate(&self, key: &Key) -> Option<(Loc, Result<Header, ()>)> {
        let loc = self.index.get(key)?;
        match header_at(&self.segments, loc) {
            Some(header) if header.key == *key => Some((loc, Ok(header))),
            Some(_) => None,
            None => Some((loc, Err(()))),
        }
    }

    fn at(&self, loc: Loc) -> String {
        format!(
            "at byte {} of {}",
            loc.offset(),
            self.segments[loc.segment()].path.display()
        )
    }

    fn corrupted(&self, loc: Loc) -> String {
        format!(
            "{} is corrupted (its checksum does not match)",
            self.at(loc)
        )
    }

    /// Appends `payload` as the entry of `key` to this process's segment (made
    /// the first time), in one write: a process killed after it returns loses
    /// nothing (what it wrote is the kernel's).
    pub fn append(&mut self, key: &Key, payload: &[u8]) -> io::Result<()> {
        let written = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
        let record = segment::encode(key, written, payload)?;
        let own = match self.own.filter(|&own| self.still_there(own)) {
            Some(own) => own,
            None => self.create()?,
        };
        let segment = &mut self.segments[own];
        if let Err(e) = (&segment.file).write_all(&record) {
            // What follows a write cut short would not be read: the next entry
            // goes to a new segment.
            self.own = None;
            return Err(e);
        }
        let loc = Loc::new(own, segment.scanned);
        segment.scanned += record.len() as u64;
        if let Some(loc) = loc {
            self.index.insert(&self.segments, key, written, loc);
        }
        Ok(())
    }

    /// Whether this process's segment is still in its folder (someone may have
    /// emptied the cache while the run went on).
    fn still_there(&self, own: usize) -> bool {
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            self.segments[own]
                .file
                .metadata()
                .is_ok_and(|m| m.nlink() > 0)
        }
        #[cfg(not(unix))]
        {
            self.segments[own].path.exists()
        }
    }

    /// Makes this process's segment, and the folders it needs: a new file (never
    /// one that is there, nor a link), named for when and by whom, locked.
    fn create(&mut self) -> io::Result<usize> {
        let file = match new_segment(&self.dir) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                std::fs::create_dir_all(&self.dir)?;
                new_segment(&self.dir)?
            }
            other => other?,
        };
        let (file, path) = file.keep().map_err(|e| e.error)?;
        #[cfg(unix)]
        if let Err(e) = file.try_lock() {
            tracing::debug!("cannot lock {}: {e}", path.display());
        }
        if let Some(name) = path.file_name() {
            self.known.insert(name.to_owned());
        }
        self.segments.push(Segment {
            path,
            file,
            scanned: 0,
        });
        self.own = Some(self.segments.len() - 1);
        Ok(self.segments.len() - 1)
    }

    /// Reads what other processes appended since the last scan, and the segments
    /// they made.
    fn rescan(&mut self) {
        self.rescanned = Instant::now();
        for n in 0..self.segments.len() {
            if Some(n) != self.own {
                self.scan(n);
            }
        }
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        let mut new: Vec<OsString> = entries
            .flatten()
            .map(|e| e.file_name())
            .filter(|name| is_segment(name) && !self.known.contains(name))
            .collect();
        // Oldest first: of two records of a key written at the same moment, the
        // later file's wins.
        new.sort();
        for name in new {
            let path = self.dir.join(&name);
            self.known.insert(name);
            match open_segment(&path) {
                Ok(file) => {
                    self.segments.push(Segment {
                        path,
                        file,
                        scanned: 0,
                    });
                    self.scan(self.segments.len() - 1);
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => tracing::warn!("the cache segment {} is skipped: {e}", path.display()),
            }
        }
    }

    /// Indexes the records of segment `n` from where its last scan stopped.
    fn scan(&mut self, n: usize) {
        let (segments, index) = (&self.segments, &mut self.index);
        let segment = &segments[n];
        let Ok(size) = segment.file.metadata().map(|m| m.len()) else {
            return;
        };
        if size <= segment.scanned {
            return;
        }
        let scanned = segment::scan(&segment.file, segment.scanned, size, |header, offset| {
            if let Some(loc) = Loc::new(n, offset) {
                index.insert(segments, &header.key, header.written, loc);
            }
        });
        match scanned {
            Ok(end) => self.segments[n].scanned = end,
            Err(e) => tracing::warn!(
                "cannot read the cache segment {}: {e}",
                segment.path.display()
            ),
        }
    }

    /// Rewrites the small segments no live process holds as one, keeping the
    /// newest whole record of each key. Whether it did (the index is then stale).
    fn compact(&mut self) -> bool {
        #[cfg(unix)]
        {
            match self.compact_unix() {
                Ok(done) => done,
                Err(e) => {
                    tracing::warn!("cannot compact the cache in {}: {e}", self.dir.display());
                    false
                }
            }
        }
        #[cfg(not(unix))]
        false
    }

    #[cfg(unix)]
    fn compact_unix(&mut self) -> io::Result<bool> {
        use std::os::unix::fs::MetadataExt;
        // A lock taken is held until these files are dropped, after their removal.
        let taken: Vec<bool> = self
            .segments
            .iter()
            .map(|s| {
                s.file.metadata().is_ok_and(|m| m.len() < SMALL)
                    && s.file.try_lock().is_ok()
                    // Removed by another process's compaction while we looked.
                    && s.file.metadata().is_ok_and(|m| m.nlink() > 0)
            })
            .collect();
        if taken.iter().filter(|&&t| t).count() < 2 {
            return Ok(false);
        }
        let mut builder = tempfile::Builder::new();
        builder.prefix(".compacted.seg.").suffix(".tmp");
        {
            use std::os::unix::fs::PermissionsExt;
            builder.permissions(std::fs::Permissions::from_mode(ENTRY_MODE));
        }
        let temp = builder.tempfile_in(&self.dir)?;
        let mut out = io::BufWriter::new(temp.as_file());
        let mut locs: Vec<Loc> = self
            .index
            .locs()
            .filter(|loc| taken[loc.segment()])
            .collect();
        // By segment, then offset.
        locs.sort_by_key(|loc| loc.0);
        for loc in locs {
            let segment = &self.segments[loc.segment()];
            let Some(header) = header_at(&self.segments, loc) else {
                continue;
            };
            let Ok(record) =
                segment::read_at(&segment.file, loc.offset(), HEADER + header.len as usize)
            else {
                continue;
            };
            if Header::decode(&record).is_some_and(|h| h.holds(&record[HEADER..])) {
                out.write_all(&record)?;
            }
        }
        out.flush()?;
        drop(out);
        temp.as_file().sync_all()?;
        let random = temp
            .path()
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".tmp")?.rsplit('.').next())
            .unwrap_or("c")
            .to_string();
        let name = format!("{}-{random}.seg", segment_stem());
        temp.persist_noclobber(self.dir.join(name))
            .map_err(|e| e.error)?;
        for (segment, _) in self.segments.iter().zip(&taken).filter(|(_, t)| **t) {
            if let Err(e) = std::fs::remove_file(&segment.path) {
                tracing::warn!(
                    "cannot remove the compacted segment {}: {e}",
                    segment.path.display()
                );
            }
        }
        if let Ok(dir) = File::open(&self.dir) {
            let _ = dir.sync_all();
        }
        tracing::info!(
            "compacted {} cache segments in {}",
            taken.iter().filter(|&&t| t).count(),
            self.dir.display()
        );
        Ok(true)
    }
}

/// `NANOS-PID`: segments sort by when they were made.
fn segment_stem() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{nanos:020}-{}", std::process::id())
}

fn is_segment(name: &OsString) -> bool {
    !name.to_string_lossy().starts_with('.')
        && Path::new(name).extension().is_some_and(|e| e == "seg")
}

/// A new segment in `dir`: `NANOS-PID-RANDOM.seg`, created (never opened if it
/// is there), private, for reading and appending.
fn new_segment(dir: &Path) -> io::Result<tempfile::NamedTempFile> {
    let mut builder = tempfile::Builder::new();
    let prefix = format!("{}-", segment_stem());
    builder.prefix(&prefix).suffix(".seg").append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(ENTRY_MODE));
    }
    builder.tempfile_in(dir)
}

/// Opens another process's segment to read: only a regular file, not through a
/// link, and without waiting on a FIFO.
fn open_segment(path: &Path) -> io::Result<File> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK);
    }
    let file = options.open(path)?;
    if !file.metadata()?.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "it is not a regular file",
        ));
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    fn key(n: usize) -> Key {
        Key(Sha256::digest(n.to_le_bytes()).into())
    }

    fn payload(store: &mut Store, key: &Key) -> Option<Vec<u8>> {
        match store.find(key)? {
            Found::Payload(bytes) => Some(bytes),
            Found::Damaged(why) => panic!("{why}"),
        }
    }

    /// Past the entries a hash table holds before they are merged into the
    /// sorted array: every key found, rewritten in place, or kept whole when
    /// its first 8 bytes are another's.
    #[test]
    fn many_entries_are_merged_and_still_found() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path().to_path_buf());
        let n = 3 * RECENT + 5;
        for i in 0..n {
            store.append(&key(i), format!("{i}").as_bytes()).unwrap();
        }
        assert!(store.index.sorted.len() >= 3 * RECENT);
        assert!(store.index.sorted.windows(2).all(|w| w[0].0 < w[1].0));
        // A key of the sorted array written again, and a key sharing the first 8
        // bytes of one there.
        store.append(&key(7), b"again").unwrap();
        let mut twin = key(9).0;
        twin[31] ^= 1;
        let twin = Key(twin);
        store.append(&twin, b"twin").unwrap();
        let mut next = Store::open(dir.path().to_path_buf());
        for store in [&mut store, &mut next] {
            assert_eq!(store.len(), n + 1);
            for i in (0..n).step_by(97).chain([7, 9, n - 1]) {
                let want = if i == 7 {
                    "again".into()
                } else {
                    format!("{i}")
                };
                assert_eq!(payload(store, &key(i)), Some(want.into_bytes()), "{i}");
            }
            assert_eq!(payload(store, &twin).as_deref(), Some(&b"twin"[..]));
            assert_eq!(payload(store, &key(n)), None);
        }
    }
}
