//! Reading a file someone named: only a regular file (a FIFO would block
//! forever, `/dev/zero` never ends, a folder is not text), and never more
//! than a limit. Every file byok-flow reads goes through here: the workflow,
//! `--input NAME=@FILE` (and `@-`, stdin, when asked for), prices files,
//! identities, key files, recipients and cache entries.

use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

/// The largest value `--input NAME=@FILE` reads unless `--max-input-size` says more.
pub const DEFAULT_MAX_INPUT: u64 = 32 * 1024 * 1024;

/// Why a file could not be read.
#[derive(Debug)]
pub enum ReadError {
    /// Not a regular file: what it is instead ("a FIFO (named pipe)", "a folder").
    NotAFile(&'static str),
    /// Longer than the limit, in bytes.
    TooLarge(u64),
    Io(io::Error),
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::NotAFile(what) => write!(f, "it is {what}, not a regular file"),
            ReadError::TooLarge(limit) => write!(f, "it is larger than {}", size(*limit)),
            ReadError::Io(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for ReadError {}

impl From<io::Error> for ReadError {
    fn from(e: io::Error) -> Self {
        ReadError::Io(e)
    }
}

impl From<ReadError> for io::Error {
    fn from(e: ReadError) -> Self {
        match e {
            ReadError::Io(e) => e,
            other => io::Error::new(io::ErrorKind::InvalidInput, other.to_string()),
        }
    }
}

impl ReadError {
    pub fn is_not_found(&self) -> bool {
        matches!(self, ReadError::Io(e) if e.kind() == io::ErrorKind::NotFound)
    }
}

/// The whole of the regular file at `path`, at most `limit` bytes.
pub fn file(path: &Path, limit: u64) -> Result<Vec<u8>, ReadError> {
    let mut bytes = Vec::new();
    into(open(path)?, limit, &mut bytes)?;
    Ok(bytes)
}

/// Opens the regular file at `path` (following symlinks) without waiting: a
/// FIFO is opened non-blocking, then refused for what it is.
pub fn open(path: &Path) -> Result<File, ReadError> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NONBLOCK);
    }
    let file = options.open(path)?;
    let kind = file.metadata()?.file_type();
    if !kind.is_file() {
        return Err(ReadError::NotAFile(describe(kind)));
    }
    Ok(file)
}

/// Reads all of `reader` into `bytes` (a buffer the caller chooses, say one that
/// is zeroed on drop), refusing more than `limit` bytes.
pub fn into(reader: impl Read, limit: u64, bytes: &mut Vec<u8>) -> Result<(), ReadError> {
    reader.take(limit.saturating_add(1)).read_to_end(bytes)?;
    if bytes.len() as u64 > limit {
        return Err(ReadError::TooLarge(limit));
    }
    Ok(())
}

/// All of stdin, at most `limit` bytes.
pub fn stdin(limit: u64) -> Result<Vec<u8>, ReadError> {
    let mut bytes = Vec::new();
    into(io::stdin().lock(), limit, &mut bytes)?;
    Ok(bytes)
}

/// Fills `buffer` from `offset` of an open file, without moving its cursor (so
/// threads may share the file).
pub fn exact_at(file: &File, buffer: &mut [u8], offset: u64) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileExt;
        file.read_exact_at(buffer, offset)
    }
    #[cfg(windows)]
    {
        use std::os::windows::fs::FileExt;
        let mut done = 0;
        while done < buffer.len() {
            match file.seek_read(&mut buffer[done..], offset + done as u64)? {
                0 => return Err(io::ErrorKind::UnexpectedEof.into()),
                n => done += n,
            }
        }
        Ok(())
    }
}

fn describe(kind: std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if kind.is_fifo() {
            return "a FIFO (named pipe)";
        }
        if kind.is_char_device() {
            return "a character device";
        }
        if kind.is_block_device() {
            return "a block device";
        }
        if kind.is_socket() {
            return "a socket";
        }
    }
    if kind.is_dir() {
        "a folder"
    } else {
        "not a file"
    }
}

/// A size in bytes as people write it: `32 MiB`, `512 KiB`, `100 bytes`.
pub fn size(bytes: u64) -> String {
    const UNITS: [(u64, &str); 3] = [(1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")];
    for (unit, name) in UNITS {
        if bytes >= unit && bytes.is_multiple_of(unit) {
            return format!("{} {name}", bytes / unit);
        }
    }
    for (unit, name) in UNITS {
        if bytes >= unit {
            return format!("{:.1} {name}", bytes as f64 / unit as f64);
        }
    }
    format!("{bytes} bytes")
}

/// A size as `--max-input-size` takes it: `64MiB`, or a number of bytes.
pub fn size_arg(bytes: u64) -> String {
    let shown = size(bytes);
    if shown.contains('.') {
        bytes.to_string()
    } else {
        shown.replace(' ', "").replace("bytes", "")
    }
}

/// Parses a size: a whole number of bytes, or with a unit, `K`/`KiB`, `M`/`MiB`,
/// `G`/`GiB` (all powers of 1,024; `KB`, `MB`, `GB` too).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        _ => {
            return Err(format!(
                "`{text}` is not a size; write it like `64MiB`, `512K` or `1G`"
            ));
        }
    };
    number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(1 << shift))
        .ok_or_else(|| format!("`{text}` is not a size; write it like `64MiB`, `512K` or `1G`"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_regular_files_within_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.txt");
        std::fs::write(&path, "hello").unwrap();
        assert_eq!(file(&path, 5).unwrap(), b"hello");
        assert!(matches!(file(&path, 4), Err(ReadError::TooLarge(4))));
        assert!(matches!(
            file(dir.path(), 10),
            Err(ReadError::NotAFile("a folder"))
        ));
        assert!(
            file(&dir.path().join("nope"), 10)
                .unwrap_err()
                .is_not_found()
        );
    }

    #[cfg(unix)]
    #[test]
    fn devices_and_fifos_are_refused_without_blocking() {
        let e = file(Path::new("/dev/zero"), 10).unwrap_err();
        assert_eq!(
            e.to_string(),
            "it is a character device, not a regular file"
        );
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        if made.is_ok_and(|s| s.success()) {
            let e = file(&fifo, 10).unwrap_err();
            assert_eq!(
                e.to_string(),
                "it is a FIFO (named pipe), not a regular file"
            );
        }
    }

    #[test]
    fn sizes_read_and_print_like_people_write_them() {
        assert_eq!(parse_size("32MiB"), Ok(32 << 20));
        assert_eq!(parse_size("512k"), Ok(512 << 10));
        assert_eq!(parse_size("1 G"), Ok(1 << 30));
        assert_eq!(parse_size("100"), Ok(100));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("99999999999999999999G").is_err());
        assert_eq!(size(DEFAULT_MAX_INPUT), "32 MiB");
        assert_eq!(size(1536), "1.5 KiB");
        assert_eq!(size(10), "10 bytes");
        assert_eq!(size_arg(64 << 20), "64MiB");
        assert_eq!(size_arg(1536), "1536");
        assert_eq!(parse_size(&size_arg(10)), Ok(10));
    }
}
