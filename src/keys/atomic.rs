//! Writing files so that a crash or a full disk never leaves half a file: the
//! bytes go to a temporary file in the same folder, are synced, and only then
//! renamed over the target (as rage's `file_io.rs` does). New secret files are
//! created with mode 0600 and never replace an existing file.

use std::fs;
#[cfg(unix)]
use std::fs::Permissions;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use tempfile::{Builder, TempPath};

/// Mode 0600: only the owner reads or writes (identities).
pub const SECRET: u32 = 0o600;
/// Mode 0644: encrypted key files and the recipients list, which are committed.
pub const PUBLIC: u32 = 0o644;

/// A file written in full under a temporary name, waiting to be renamed into place.
/// Dropping it without [`Staged::commit`] removes the temporary file.
pub struct Staged {
    temp: TempPath,
    target: PathBuf,
}

impl Staged {
    /// Writes `contents` to a temporary file beside `target`, with `mode`, and syncs it.
    pub fn write(target: &Path, contents: &[u8], mode: u32) -> io::Result<Staged> {
        Self::write_in(parent(target), target, contents, mode)
    }

    /// [`Staged::write`] with the temporary file in `dir` (on the same file system
    /// as `target`), where [`sweep`] can find it if the process is killed.
    pub fn write_in(dir: &Path, target: &Path, contents: &[u8], mode: u32) -> io::Result<Staged> {
        let name = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let prefix = format!(".{name}.");
        let mut builder = Builder::new();
        builder.prefix(&prefix).suffix(".tmp");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            builder.permissions(Permissions::from_mode(mode));
        }
        #[cfg(not(unix))]
        let _ = mode;
        let mut file = builder.tempfile_in(dir)?;
        file.write_all(contents)?;
        file.as_file().sync_all()?;
        Ok(Staged {
            temp: file.into_temp_path(),
            target: target.to_path_buf(),
        })
    }

    /// Renames the file over its target (replacing what is there).
    pub fn commit(self) -> io::Result<()> {
        let target = self.target;
        self.temp.persist(&target).map_err(|e| e.error)?;
        sync_dir(parent(&target));
        Ok(())
    }

    /// Moves the file to its target only if nothing is there yet.
    pub fn commit_new(self) -> io::Result<()> {
        let target = self.target;
        self.temp.persist_noclobber(&target).map_err(|e| e.error)?;
        sync_dir(parent(&target));
        Ok(())
    }
}

/// How old a temporary file must be before [`sweep`] removes it: a write takes
/// milliseconds, so one this old was left by a process that was killed, and the
/// margin keeps a write in flight in another process safe.
pub const STALE: Duration = Duration::from_mins(10);

/// Removes the temporary files [`Staged`] left in `dir` for targets `ours`
/// accepts (`.TARGET.XXXXXX.tmp`) that were last written more than [`STALE`]
/// ago: what a `kill -9` between writing and renaming leaves. Best effort;
/// returns how many were removed.
pub fn sweep(dir: &Path, ours: impl Fn(&str) -> bool) -> usize {
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let target = name
            .to_str()
            .and_then(|n| n.strip_prefix('.')?.strip_suffix(".tmp")?.rsplit_once('.'))
            .filter(|(_, random)| {
                random.len() >= 6 && random.chars().all(|c| c.is_ascii_alphanumeric())
            })
            .map(|(target, _)| target);
        if !target.is_some_and(&ours) {
            continue;
        }
        // `DirEntry::metadata` does not follow a link: only regular files go.
        let stale = entry.metadata().is_ok_and(|m| {
            m.is_file()
                && m.modified()
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .is_some_and(|age| age > STALE)
        });
        if stale && fs::remove_file(entry.path()).is_ok() {
            removed += 1;
        }
    }
    if removed > 0 {
        tracing::info!(
            "removed {removed} temporary file(s) a killed process left in {}",
            dir.display()
        );
    }
    removed
}

/// Writes a new file; fails with `AlreadyExists` rather than replace one.
pub fn write_new(target: &Path, contents: &[u8], mode: u32) -> io::Result<()> {
    if target.exists() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "the file exists",
        ));
    }
    Staged::write(target, contents, mode)?.commit_new()
}

/// Writes a file, replacing any that is there, atomically.
pub fn replace(target: &Path, contents: &[u8], mode: u32) -> io::Result<()> {
    Staged::write(target, contents, mode)?.commit()
}

/// Makes a folder (and its parents) with `mode` for the ones it creates.
pub fn create_dir(dir: &Path, mode: u32) -> io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    builder.create(dir)
}

fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Makes a rename durable: syncs the folder that holds it (best effort).
fn sync_dir(dir: &Path) {
    #[cfg(unix)]
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
    #[cfg(not(unix))]
    let _ = dir;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_new_never_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("identity.txt");
        write_new(&path, b"one", SECRET).unwrap();
        let err = write_new(&path, b"two", SECRET).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(fs::read(&path).unwrap(), b"one");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temp file left"
        );
    }

    #[test]
    fn sweep_removes_only_stale_temporary_files_of_its_targets() {
        let dir = tempfile::tempdir().unwrap();
        let at = |name: &str| dir.path().join(name);
        let old = std::time::SystemTime::now() - STALE - Duration::from_mins(1);
        let names = [
            ".k1.age.AbC123.tmp",
            ".recipients.Zx9k2P.tmp",
            ".other.txt.AbC123.tmp",
            ".k1.age.x.tmp",
            "k1.age",
            "notes.tmp",
        ];
        for name in names {
            fs::write(at(name), "x").unwrap();
            fs::File::options()
                .write(true)
                .open(at(name))
                .unwrap()
                .set_modified(old)
                .unwrap();
        }
        fs::write(at(".k2.age.Fresh1.tmp"), "in flight").unwrap();
        let ours = |target: &str| {
            Path::new(target).extension().is_some_and(|e| e == "age") || target == "recipients"
        };
        assert_eq!(sweep(dir.path(), ours), 2);
        let mut left: Vec<String> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                ".k1.age.x.tmp",
                ".k2.age.Fresh1.tmp",
                ".other.txt.AbC123.tmp",
                "k1.age",
                "notes.tmp"
            ]
        );
        assert_eq!(sweep(&dir.path().join("missing"), ours), 0);
    }

    #[test]
    fn staged_files_vanish_unless_committed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.age");
        replace(&path, b"old", PUBLIC).unwrap();
        let staged = Staged::write(&path, b"new", PUBLIC).unwrap();
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 2);
        drop(staged);
        assert_eq!(fs::read(&path).unwrap(), b"old");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
        Staged::write(&path, b"new", PUBLIC)
            .unwrap()
            .commit()
            .unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"new");
    }
}
