//! What is at a path in `.byok/`, said in words, without following links: a
//! regular file, or a link (and where it leads: nowhere, round in a loop), a
//! folder, a pipe, a device. `.byok/` is committed, so whatever is in it may have
//! been put there by someone else; only regular files are read.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// What a path is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    Missing,
    /// A regular file.
    File,
    /// A symbolic link, described: "a symbolic link to `x`, which does not exist".
    Link(String),
    /// Anything else, described: "a folder", "a named pipe (FIFO)".
    Other(String),
}

/// Looks at `path` without following a link at its end.
pub fn inspect(path: &Path) -> Entry {
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Entry::Missing,
        Err(e) => return Entry::Other(format!("unreadable ({e})")),
    };
    let kind = meta.file_type();
    if kind.is_file() {
        Entry::File
    } else if kind.is_symlink() {
        Entry::Link(describe_link(path))
    } else {
        Entry::Other(describe_special(&meta))
    }
}

/// "a folder", "a named pipe (FIFO)", a device, a socket.
pub fn describe_special(meta: &fs::Metadata) -> String {
    let kind = meta.file_type();
    if kind.is_dir() {
        return "a folder".into();
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if kind.is_fifo() {
            return "a named pipe (FIFO)".into();
        }
        if kind.is_socket() {
            return "a socket".into();
        }
        if kind.is_block_device() || kind.is_char_device() {
            return "a device".into();
        }
    }
    "not a regular file".into()
}

fn describe_link(path: &Path) -> String {
    let target = fs::read_link(path).map_or_else(|_| "?".into(), |t| t.display().to_string());
    match fs::metadata(path) {
        Ok(meta) if meta.is_file() => format!("a symbolic link to `{target}`"),
        Ok(meta) => format!(
            "a symbolic link to `{target}`, which is {}",
            describe_special(&meta)
        ),
        Err(_) if loops(path) => {
            format!("a symbolic link that loops (`{target}` leads back round to it)")
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            format!("a symbolic link to `{target}`, which does not exist")
        }
        Err(e) => format!("a symbolic link to `{target}` that cannot be followed ({e})"),
    }
}

/// Whether following the links from `path` comes back to one already seen (or
/// goes on longer than any system allows).
fn loops(path: &Path) -> bool {
    let mut seen: Vec<PathBuf> = Vec::new();
    let mut at = path.to_path_buf();
    for _ in 0..64 {
        let Ok(target) = fs::read_link(&at) else {
            return false;
        };
        let next = match at.parent() {
            Some(dir) => dir.join(&target),
            None => target,
        };
        if seen.contains(&next) {
            return true;
        }
        seen.push(at);
        at = next;
    }
    true
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    #[test]
    fn says_what_a_path_is() {
        let tmp = tempfile::tempdir().unwrap();
        let at = |name: &str| tmp.path().join(name);
        fs::write(at("file"), "x").unwrap();
        fs::create_dir(at("dir")).unwrap();
        symlink("file", at("to-file")).unwrap();
        symlink("nowhere", at("dangling")).unwrap();
        symlink("loop-b", at("loop-a")).unwrap();
        symlink("loop-a", at("loop-b")).unwrap();
        symlink("dir", at("to-dir")).unwrap();
        assert_eq!(inspect(&at("file")), Entry::File);
        assert_eq!(inspect(&at("none")), Entry::Missing);
        assert_eq!(inspect(&at("dir")), Entry::Other("a folder".into()));
        assert_eq!(
            inspect(&at("to-file")),
            Entry::Link("a symbolic link to `file`".into())
        );
        assert_eq!(
            inspect(&at("dangling")),
            Entry::Link("a symbolic link to `nowhere`, which does not exist".into())
        );
        assert_eq!(
            inspect(&at("loop-a")),
            Entry::Link("a symbolic link that loops (`loop-b` leads back round to it)".into())
        );
        assert_eq!(
            inspect(&at("to-dir")),
            Entry::Link("a symbolic link to `dir`, which is a folder".into())
        );
        assert_eq!(
            inspect(Path::new("/dev/null")),
            Entry::Other("a device".into())
        );
    }
}
