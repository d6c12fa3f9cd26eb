//! A batch run's state: each submitted batch's id, provider, model, key name and
//! the map from each request's `custom_id` to what it is (its label, attempt,
//! fingerprint and worst case). Written before byok-flow waits on a batch, atomically (a temporary
//! file synced and renamed) with mode 0600, in `batches/` of the cache folder, one
//! file per run. It names keys, never holds one.

use std::io;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::api::Handle;
use crate::keys::atomic;

/// The file format's version.
pub const VERSION: u32 = 1;

/// One run's batches.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RunState {
    pub version: u32,
    pub run_id: String,
    /// The workflow file, as given.
    pub workflow: String,
    /// Where the run was started, and the arguments that collect it (`run … --batch`).
    pub cwd: String,
    pub args: Vec<String>,
    /// When the run started (RFC 3339, UTC).
    pub started_at: String,
    pub batches: Vec<BatchRecord>,
}

/// One batch at a provider.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct BatchRecord {
    pub provider: String,
    /// The key's name (`anthropic`, `env:VAR`), never the key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    pub model: String,
    #[serde(flatten)]
    pub handle: Handle,
    /// Seconds since the Unix epoch.
    pub submitted_at: u64,
    /// Its results were read (they stay downloadable at the provider for weeks,
    /// so a run killed before it saved them reads them again).
    #[serde(default)]
    pub collected: bool,
    /// Cancelled with `runs cancel`.
    #[serde(default)]
    pub cancelled: bool,
    pub requests: Vec<RequestRecord>,
}

impl BatchRecord {
    /// Neither collected nor cancelled: the provider may still be working on it.
    pub fn pending(&self) -> bool {
        let submitted = !self.handle.id.is_empty() || self.handle.file.is_some();
        submitted && !self.collected && !self.cancelled
    }
}

/// One request in a batch.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct RequestRecord {
    pub custom_id: String,
    /// What asked for it: the agent; in a dataset, `rN-AGENT` or `rN-AGENT[ITEM]`
    /// (row N, the item of a map agent).
    pub label: String,
    /// Which batch attempt of that request this is (1 for the first).
    pub attempt: u32,
    /// The hash of the provider, model, key name and request body: a rerun's
    /// identical request is answered by this batch instead of a new one.
    pub fingerprint: String,
    /// The most it can cost, in pico-dollars, as reserved when it was sent (the
    /// worst case of its attempt): a run that collects its batch counts it
    /// against the ceiling from its start. Absent in files of older versions,
    /// and for a request whose worst case is unknown (unpriced).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reserved_pico: Option<u64>,
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The folder of state files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateDir(pub PathBuf);

impl StateDir {
    /// `batches/` in the cache folder.
    pub fn in_cache(cache_dir: &Path) -> Self {
        StateDir(cache_dir.join("batches"))
    }

    pub fn path(&self, run_id: &str) -> PathBuf {
        self.0.join(format!("{run_id}.json"))
    }

    /// Writes a run's state in full, atomically, readable only by its owner.
    pub fn save(&self, state: &RunState) -> io::Result<()> {
        atomic::create_dir(&self.0, 0o700)?;
        // Compact: a dataset's state holds a record per request of every wave, and
        // is written again as each batch is submitted and collected.
        let text = serde_json::to_vec(state).map_err(io::Error::other)?;
        atomic::replace(&self.path(&state.run_id), &text, atomic::SECRET)
    }

    /// A run's state; the error says what is wrong with the file.
    pub fn load(&self, run_id: &str) -> Result<RunState, String> {
        let ok = !run_id.is_empty()
            && run_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !ok {
            return Err(format!("`{run_id}` is not a run id"));
        }
        read(&self.path(run_id))
    }

    /// Every run's state in the folder, oldest first; a file that cannot be read
    /// is skipped with a warning in the log.
    pub fn load_all(&self) -> Vec<RunState> {
        let Ok(entries) = std::fs::read_dir(&self.0) else {
            return Vec::new();
        };
        let mut states: Vec<RunState> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .filter_map(|p| match read(&p) {
                Ok(state) => Some(state),
                Err(e) => {
                    tracing::warn!("{e}");
                    None
                }
            })
            .collect();
        states.sort_by(|a, b| a.run_id.cmp(&b.run_id));
        states
    }

    pub fn remove(&self, run_id: &str) {
        let _ = std::fs::remove_file(self.path(run_id));
    }
}

/// Reads a state file: a regular file (never a FIFO, device or symlink), at most 256 MB.
fn read(path: &Path) -> Result<RunState, String> {
    let shown = path.display();
    let meta = std::fs::symlink_metadata(path)
        .map_err(|e| format!("cannot read the batch state `{shown}`: {e}"))?;
    if !meta.file_type().is_file() {
        return Err(format!(
            "the batch state `{shown}` is not a regular file; remove it"
        ));
    }
    if meta.len() > 256 << 20 {
        return Err(format!("the batch state `{shown}` is too large to be ours"));
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read the batch state `{shown}`: {e}"))?;
    let state: RunState = serde_json::from_str(&text).map_err(|e| {
        format!("the batch state `{shown}` is damaged ({e}); remove it (its batches are still at the provider)")
    })?;
    if state.version != VERSION {
        return Err(format!(
            "the batch state `{shown}` is of version {}, not {VERSION}",
            state.version
        ));
    }
    Ok(state)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_is_written_whole_with_mode_0600_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let states = StateDir::in_cache(dir.path());
        let state = RunState {
            version: VERSION,
            run_id: "123-abc".into(),
            batches: vec![BatchRecord {
                provider: "anthropic".into(),
                key: Some("anthropic".into()),
                model: "claude".into(),
                handle: Handle {
                    id: "msgbatch_1".into(),
                    file: None,
                },
                requests: vec![RequestRecord {
                    custom_id: "writer-1".into(),
                    ..RequestRecord::default()
                }],
                ..BatchRecord::default()
            }],
            ..RunState::default()
        };
        states.save(&state).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(states.path("123-abc"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let back = states.load("123-abc").unwrap();
        assert_eq!(back.batches, state.batches);
        assert_eq!(states.load_all().len(), 1);
        assert!(states.load("../etc").unwrap_err().contains("not a run id"));
        // No temporary file is left beside it.
        assert_eq!(std::fs::read_dir(&states.0).unwrap().count(), 1);
    }

    /// A request's reservation is kept; a file of an older byok-flow, without
    /// it, still loads (the amount is unknown).
    #[test]
    fn a_request_keeps_its_reservation_and_older_files_still_load() {
        let dir = tempfile::tempdir().unwrap();
        let states = StateDir::in_cache(dir.path());
        let state = RunState {
            version: VERSION,
            run_id: "1-a".into(),
            batches: vec![BatchRecord {
                handle: Handle {
                    id: "msgbatch_1".into(),
                    file: None,
                },
                requests: vec![RequestRecord {
                    custom_id: "r0-a-1".into(),
                    reserved_pico: Some(10_000_000_250),
                    ..RequestRecord::default()
                }],
                ..BatchRecord::default()
            }],
            ..RunState::default()
        };
        states.save(&state).unwrap();
        let back = states.load("1-a").unwrap();
        assert_eq!(
            back.batches[0].requests[0].reserved_pico,
            Some(10_000_000_250)
        );
        let older = r#"{"version":1,"run_id":"2-b","workflow":"f.yaml","cwd":"/","args":[],"started_at":"","batches":[{"provider":"anthropic","model":"m","id":"msgbatch_2","submitted_at":1,"requests":[{"custom_id":"a-1","label":"a","attempt":1,"fingerprint":"ff"}]}]}"#;
        std::fs::write(states.path("2-b"), older).unwrap();
        let back = states.load("2-b").unwrap();
        assert_eq!(back.batches[0].requests[0].reserved_pico, None);
        assert!(back.batches[0].pending());
    }

    #[cfg(unix)]
    #[test]
    fn a_fifo_or_symlink_is_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let states = StateDir::in_cache(dir.path());
        std::fs::create_dir_all(&states.0).unwrap();
        std::os::unix::fs::symlink("/dev/zero", states.path("1-a")).unwrap();
        assert!(
            states
                .load("1-a")
                .unwrap_err()
                .contains("not a regular file")
        );
        assert!(states.load_all().is_empty());
    }
}
