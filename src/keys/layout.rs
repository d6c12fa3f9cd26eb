//! [`KeysDir`]: the `.byok/` folder and what is in it: `recipients` and
//! `keys/NAME.age`. Found by walking up from a folder, as git finds `.git`, or
//! given with `--keys DIR`.

use std::io;
use std::path::{Path, PathBuf};

use super::atomic;
use super::entry::{self, Entry};
use super::error::KeyError;
use super::recipients::{Recipient, RecipientsFile};
use crate::workflow::validate::is_identifier;

/// The folder's name.
pub const DIR_NAME: &str = ".byok";

/// The names of the temporary files written before a rename.
const TEMP_PATTERN: &str = "*.tmp";

/// What `.byok/.gitignore` says.
const GITIGNORE: &str = "\
# Temporary files byok-flow writes before renaming them into place; a command
# killed half way can leave some (byok-flow removes them later). Never commit them.
*.tmp
";

/// The largest recipients file read: thousands of recipients fit in far less.
const MAX_RECIPIENTS_BYTES: u64 = 1024 * 1024;

/// A `.byok/` folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeysDir {
    root: PathBuf,
}

impl KeysDir {
    /// `--keys DIR` if given (it must exist), else the first `.byok/` in `start`
    /// or a folder above it.
    pub fn locate(explicit: Option<&Path>, start: &Path) -> Result<KeysDir, KeyError> {
        if let Some(dir) = explicit {
            return if dir.is_dir() {
                Ok(KeysDir::at(dir))
            } else {
                Err(KeyError::KeysDirMissing {
                    path: dir.to_path_buf(),
                })
            };
        }
        Self::find(start).ok_or_else(|| KeyError::NoKeysDir {
            start: absolute(&clean(start)),
        })
    }

    /// The first `.byok/` in `start` or above. A relative `start` gives a
    /// relative path (`.byok`, `../.byok`), as messages should show it.
    /// `..` is resolved lexically, as a shell's `cd` does.
    pub fn find(start: &Path) -> Option<KeysDir> {
        let start = clean(start);
        let depth = absolute(&start)
            .ancestors()
            .position(|dir| dir.join(DIR_NAME).is_dir())?;
        let mut root = start;
        for _ in 0..depth {
            root = clean(&root.join(".."));
        }
        Some(KeysDir {
            root: root.join(DIR_NAME),
        })
    }

    /// A `.byok/` folder at `root` (which may not exist yet).
    pub fn at(root: &Path) -> KeysDir {
        KeysDir {
            root: root.to_path_buf(),
        }
    }

    /// The folder where a workflow's keys are looked for: its file's folder.
    pub fn start_for_workflow(workflow_file: &Path) -> PathBuf {
        match workflow_file.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn recipients_path(&self) -> PathBuf {
        self.root.join("recipients")
    }

    pub fn keys_path(&self) -> PathBuf {
        self.root.join("keys")
    }

    /// `.byok/keys/NAME.age`. `NAME` must be an identifier (see [`KeyRef::file`](super::reference::KeyRef::file)).
    pub fn key_path(&self, name: &str) -> PathBuf {
        self.keys_path().join(format!("{name}.age"))
    }

    /// The path of a key file that must exist, as a regular file inside this
    /// folder: never a link (a committed link could send another project's key),
    /// a folder, a pipe or a device.
    pub fn existing_key(&self, name: &str) -> Result<PathBuf, KeyError> {
        // Only a name that stays in `.byok/keys/`: one that looks like a key is
        // refused where it is written (`KeyRef::file`), but a file made under
        // such a name before can still be removed.
        if !is_identifier(name) {
            return Err(KeyError::BadName {
                name: name.to_string(),
            });
        }
        let path = self.key_path(name);
        match entry::inspect(&path) {
            Entry::Missing => Err(KeyError::KeyFileMissing {
                name: name.to_string(),
                path,
                available: self.key_names().unwrap_or_default(),
            }),
            _ => self.regular_file(path),
        }
    }

    /// Refuses to write into a `keys` folder that leads outside this one (a
    /// committed link would put the new key file in someone else's folder).
    pub fn check_keys_folder(&self) -> Result<(), KeyError> {
        let keys = self.keys_path();
        if let (Ok(real), Ok(root)) = (
            std::fs::canonicalize(&keys),
            std::fs::canonicalize(&self.root),
        ) && !real.starts_with(&root)
        {
            return Err(KeyError::NotAKeyFile {
                what: format!(
                    "a link to `{}`, outside `{}`",
                    real.display(),
                    self.root.display()
                ),
                path: keys,
                link: true,
            });
        }
        Ok(())
    }

    /// `path`, if it is a regular file that resolves inside this folder.
    fn regular_file(&self, path: PathBuf) -> Result<PathBuf, KeyError> {
        let not = |what: String, link: bool| KeyError::NotAKeyFile {
            path: path.clone(),
            what,
            link,
        };
        match entry::inspect(&path) {
            Entry::File => {}
            Entry::Missing => return Err(not("missing".into(), false)),
            Entry::Link(what) => return Err(not(what, true)),
            Entry::Other(what) => return Err(not(what, false)),
        }
        // A linked folder on the way (`.byok/keys` -> elsewhere) leads outside too.
        if let (Ok(real), Ok(root)) = (
            std::fs::canonicalize(&path),
            std::fs::canonicalize(&self.root),
        ) && !real.starts_with(&root)
        {
            let what = format!(
                "outside `{}`: it resolves to `{}`, through a linked folder",
                self.root.display(),
                real.display()
            );
            return Err(not(what, true));
        }
        Ok(path)
    }

    /// Removes the temporary files a killed `keys` command left (see
    /// [`atomic::sweep`]) in `.byok/` and `.byok/keys/`.
    pub fn sweep(&self) {
        atomic::sweep(&self.root, |t| t == "recipients" || t == ".gitignore");
        atomic::sweep(&self.keys_path(), |t| {
            Path::new(t).extension().is_some_and(|e| e == "age")
        });
    }

    /// Makes sure `.byok/.gitignore` keeps temporary files out of git (a killed
    /// command's `.NAME.age.XXXX.tmp` is a whole key file, encrypted to the list
    /// it was being written for).
    pub fn ignore_temp_files(&self) -> Result<(), KeyError> {
        let path = self.root.join(".gitignore");
        let old = match std::fs::read_to_string(&path) {
            Ok(text) if text.lines().any(|l| l.trim() == TEMP_PATTERN) => return Ok(()),
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(KeyError::io("read", path, e)),
        };
        let mut text = old;
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(GITIGNORE);
        atomic::replace(&path, text.as_bytes(), atomic::PUBLIC)
            .map_err(|e| KeyError::io("write", path, e))
    }

    /// The names of the key files, sorted.
    pub fn key_names(&self) -> Result<Vec<String>, KeyError> {
        let dir = self.keys_path();
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(KeyError::io("list", dir, e)),
        };
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| KeyError::io("list", &dir, e))?;
            let file_name = entry.file_name();
            let Some(name) = file_name.to_str().and_then(|n| n.strip_suffix(".age")) else {
                continue;
            };
            // Links, folders and the like are listed too, so that `keys check`
            // and `keys recipients sync` say what is wrong with them.
            if is_identifier(name) {
                names.push(name.to_string());
            }
        }
        names.sort();
        Ok(names)
    }

    /// The recipients file, parsed (it must exist).
    pub fn read_recipients(&self) -> Result<RecipientsFile, KeyError> {
        let path = self.recipients_path();
        if entry::inspect(&path) == Entry::Missing {
            return Err(KeyError::NoRecipientsFile { path });
        }
        let path = self.regular_file(path)?;
        let text = match crate::read::file(&path, MAX_RECIPIENTS_BYTES) {
            Ok(bytes) => String::from_utf8(bytes).map_err(|e| {
                KeyError::io("read", &path, io::Error::new(io::ErrorKind::InvalidData, e))
            })?,
            Err(e) if e.is_not_found() => {
                return Err(KeyError::NoRecipientsFile { path });
            }
            Err(e) => return Err(KeyError::io("read", path, e.into())),
        };
        RecipientsFile::parse(&text).map_err(|bad| KeyError::BadRecipientLine {
            path,
            line: bad.line,
            error: bad.error,
        })
    }

    /// The recipients to encrypt to: at least one.
    pub fn recipients(&self) -> Result<Vec<Recipient>, KeyError> {
        let list = self.read_recipients()?.recipients();
        if list.is_empty() {
            return Err(KeyError::NoRecipients {
                path: self.recipients_path(),
            });
        }
        Ok(list)
    }
}

/// `path` without `.` and with `..` applied to the part before it, lexically.
fn clean(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir
                if matches!(out.components().next_back(), Some(Component::Normal(_))) =>
            {
                out.pop();
            }
            Component::ParentDir if out.has_root() => {}
            other => out.push(other),
        }
    }
    out
}

fn absolute(path: &Path) -> PathBuf {
    let path = if path.as_os_str().is_empty() {
        Path::new(".")
    } else {
        path
    };
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_up_like_git() {
        // Under the crate's own folder (the tests' working directory), so a
        // relative start can be tried too.
        let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("target");
        std::fs::create_dir_all(&target).unwrap();
        let tmp = tempfile::tempdir_in(&target).unwrap();
        let deep = tmp.path().join("a/b/c");
        std::fs::create_dir_all(&deep).unwrap();
        assert!(KeysDir::find(&deep).is_none_or(|d| !d.root.starts_with(tmp.path())));
        std::fs::create_dir_all(tmp.path().join("a/.byok/keys")).unwrap();
        let found = KeysDir::find(&deep).unwrap();
        assert_eq!(found.root(), tmp.path().join("a/.byok"));
        let cwd = std::env::current_dir().unwrap();
        let rel = deep.strip_prefix(&cwd).unwrap();
        let a = rel.parent().unwrap().parent().unwrap();
        assert_eq!(KeysDir::find(rel).unwrap().root(), a.join(".byok"));
        let dotted = Path::new(".").join(rel).join("..");
        assert_eq!(KeysDir::find(&dotted).unwrap().root(), a.join(".byok"));
        let explicit = KeysDir::locate(Some(&tmp.path().join("a/.byok")), Path::new("/")).unwrap();
        assert_eq!(explicit, found);
        assert!(matches!(
            KeysDir::locate(Some(&tmp.path().join("nope")), &deep),
            Err(KeyError::KeysDirMissing { .. })
        ));
    }

    #[test]
    fn lists_only_key_files() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = KeysDir::at(tmp.path());
        assert_eq!(dir.key_names().unwrap(), Vec::<String>::new());
        std::fs::create_dir_all(dir.keys_path()).unwrap();
        for f in [
            "b.age",
            "a.age",
            ".a.age.x1.tmp",
            "notes.txt",
            "bad name.age",
        ] {
            std::fs::write(dir.keys_path().join(f), "x").unwrap();
        }
        assert_eq!(dir.key_names().unwrap(), ["a", "b"]);
        let err = dir.existing_key("c").unwrap_err();
        assert!(
            err.hint().unwrap().contains("did you mean `a` or `b`?"),
            "{:?}",
            err.hint()
        );
        assert!(matches!(
            dir.existing_key("../x"),
            Err(KeyError::BadName { .. })
        ));
    }

    #[test]
    fn recipients_must_exist_and_be_non_empty() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = KeysDir::at(tmp.path());
        assert!(matches!(
            dir.recipients(),
            Err(KeyError::NoRecipientsFile { .. })
        ));
        std::fs::write(dir.recipients_path(), "# nobody\n").unwrap();
        assert!(matches!(
            dir.recipients(),
            Err(KeyError::NoRecipients { .. })
        ));
        std::fs::write(dir.recipients_path(), "# x\nnope\n").unwrap();
        assert!(matches!(
            dir.recipients(),
            Err(KeyError::BadRecipientLine { line: 2, .. })
        ));
    }
}
