//! The answer cache (SPEC §5): an agent whose call matches a cached success is not
//! called again; its reply comes from here, at $0. Each entry is one small JSON
//! file named by the SHA-256 of everything that decides the answer: the models the
//! call may go to (provider, model, base URL, API, in fallback order), every
//! request parameter (its server-side tools and their options included), and the
//! fully rendered system prompt and prompt. How the prompt is cached at the
//! provider (`cache:`) does not change an answer and is left out. Settings
//! that do not change the answer (`stream`, `timeout`, `retries`, the key) are left
//! out, and so a key is never part of a key, nor of an entry.
//!
//! An entry is written as soon as its agent succeeds, through a temporary file (in
//! `ROOT/tmp/`) and a rename, so a run killed at any point (`kill -9` included)
//! leaves only whole entries, and a second run resumes from them (and removes the
//! temporary files the killed one left). Two processes writing the same key both
//! write a whole, equivalent file; the last rename wins.
//!
//! An entry is not synced to the disk: it only saves a call, and syncing each one
//! cost a dataset run of 10,000 rows more than the run itself. A process killed
//! loses nothing (what it wrote is the kernel's); a machine that loses power may
//! lose the entries of the last few seconds, or leave one empty or cut short. Such
//! a file is not served: an entry is one JSON object, so one cut anywhere, or with
//! a run of zero bytes where its data did not reach the disk, does not parse, and
//! one that parses but names another key is not believed. A file that cannot be
//! read or used is a miss, reported to the caller, never a crash, and the next
//! success replaces it.
//!
//! The runner decides when to read and write (`--no-cache`, `--refresh`); this
//! module only owns the key, the layout and the file format.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use sha2::{Digest, Sha256};

use crate::catalog::ProviderKind;
use crate::providers::Request;
use crate::tools::{Citation, Tool};
use crate::usage::Usage;
use crate::workflow::model::OutputKind;

/// The entry format. It is part of every key and of the folder entries live in, so
/// changing what a key covers or what an entry holds starts a fresh cache.
pub const FORMAT: u32 = 1;

/// Mode 0600: replies can be as private as the prompts that asked for them.
const ENTRY_MODE: u32 = 0o600;

/// The largest cache entry read; a bigger file is not one this cache wrote.
const MAX_ENTRY_BYTES: u64 = 256 * 1024 * 1024;

/// Where the cache lives unless `--cache-dir` or `BYOK_FLOW_CACHE_DIR` says:
/// `$XDG_CACHE_HOME/byok-flow` or `~/.cache/byok-flow` on Linux,
/// `~/Library/Caches/byok-flow` on macOS, `%LOCALAPPDATA%\byok-flow` on Windows.
pub fn default_dir() -> Option<PathBuf> {
    dirs::cache_dir().map(|d| d.join("byok-flow"))
}

/// A cache folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cache {
    root: PathBuf,
}

/// The SHA-256 that names an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Key([u8; 32]);

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

/// One model a call may go to, as far as its answer is concerned.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Endpoint {
    /// The provider's name in the workflow.
    pub provider: String,
    pub model: String,
    pub base_url: String,
    pub api: ProviderKind,
}

/// What the key hashes, in a fixed order.
#[derive(Serialize)]
struct Parts<'a> {
    format: u32,
    targets: &'a [Endpoint],
    system: Option<&'a str>,
    prompt: &'a str,
    max_tokens: Option<u32>,
    temperature: Option<f64>,
    top_p: Option<f64>,
    stop: &'a [String],
    output: OutputKind,
    schema: Option<&'a Json>,
    /// Left out when there are none, so keys made before tools existed still match.
    #[serde(skip_serializing_if = "<[Tool]>::is_empty")]
    tools: &'a [Tool],
}

/// The key of `request` sent to `targets` (the agent's model, then its fallbacks).
/// `None` only if the parts cannot be serialized, which leaves the call uncached.
pub fn key(targets: &[Endpoint], request: &Request) -> Option<Key> {
    let parts = Parts {
        format: FORMAT,
        targets,
        system: request.system.as_deref(),
        prompt: &request.prompt,
        max_tokens: request.max_tokens,
        temperature: request.temperature,
        top_p: request.top_p,
        stop: &request.stop,
        output: request.output,
        schema: request.schema.as_ref(),
        tools: &request.tools,
    };
    let mut hasher = Sha256::new();
    serde_json::to_writer(&mut hasher, &parts).ok()?;
    Some(Key(hasher.finalize().into()))
}

/// A cached success: what the dependents of the agent and its record need.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub format: u32,
    /// The key, again, so a file moved or copied under the wrong name is not believed.
    pub key: String,
    /// `provider/model` that answered.
    pub model: String,
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json: Option<Json>,
    /// What the call used when it was made (a hit costs nothing).
    pub usage: Usage,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_reason: Option<String>,
    /// The sources the reply cites.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub citations: Vec<Citation>,
    /// When the entry was written (RFC 3339).
    pub written_at: String,
}

/// What a look-up found.
#[derive(Debug)]
pub enum Lookup {
    Hit(Box<Entry>),
    Miss,
    /// There is a file, but it cannot be used; the message says why. A miss.
    Unreadable(String),
}

impl Cache {
    /// The cache in `root`. Temporary files that a killed run left there are
    /// removed (see [`Cache::put`]).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        let cache = Cache { root: root.into() };
        crate::keys::atomic::sweep(&cache.temp_dir(), |t| {
            Path::new(t).extension().is_some_and(|e| e == "json")
        });
        cache
    }

    /// Where entries are written before they are renamed into place: one folder,
    /// so that what a `kill -9` leaves is found without reading the whole cache.
    fn temp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// The folder given to [`Cache::new`].
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `ROOT/v1/ab/abcdef….json`: a folder per format and per first byte, so no
    /// folder grows past a few thousand files.
    pub fn path(&self, key: &Key) -> PathBuf {
        let hex = key.to_string();
        self.root
            .join(format!("v{FORMAT}"))
            .join(&hex[..2])
            .join(format!("{hex}.json"))
    }

    /// The entry for `key`, if there is a whole, matching one.
    pub fn get(&self, key: &Key) -> Lookup {
        let path = self.path(key);
        let bytes = match crate::read::file(&path, MAX_ENTRY_BYTES) {
            Ok(bytes) => bytes,
            Err(e) if e.is_not_found() => return Lookup::Miss,
            Err(e) => {
                return Lookup::Unreadable(format!(
                    "cannot read the cache entry {}: {e}",
                    path.display()
                ));
            }
        };
        let unusable = |why: String| {
            Lookup::Unreadable(format!(
                "the cache entry {} is {why}; calling the model again, and replacing it",
                path.display()
            ))
        };
        match serde_json::from_slice::<Entry>(&bytes) {
            Ok(entry) if entry.format != FORMAT => {
                unusable(format!("of format {}, not {FORMAT}", entry.format))
            }
            Ok(entry) if entry.key != key.to_string() => {
                unusable("another request's (its key does not match its name)".into())
            }
            Ok(entry) => Lookup::Hit(Box::new(entry)),
            Err(e) => unusable(format!("corrupted ({e})")),
        }
    }

    /// Writes the entry for `key`, whole or not at all (not synced: see the
    /// module's notes). The folders are made the first time a write needs them.
    pub fn put(&self, key: &Key, entry: &Entry) -> io::Result<()> {
        let path = self.path(key);
        let text = serde_json::to_string(entry).map_err(io::Error::other)?;
        // The last guard: a reply is redacted when it arrives; nothing else may
        // bring a key into the cache either.
        let text = crate::keys::redact::text(&text);
        let temp = self.temp_dir();
        let mut file = match staged(&temp, text.as_bytes()) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                std::fs::create_dir_all(&temp)?;
                staged(&temp, text.as_bytes())?
            }
            other => other?,
        };
        file = match file.persist(&path) {
            Ok(_) => return Ok(()),
            Err(e) if e.error.kind() == io::ErrorKind::NotFound => e.file,
            Err(e) => return Err(e.error),
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        file.persist(&path).map(drop).map_err(|e| e.error)
    }
}

/// A temporary file in `dir` (`.entry.json.XXXXXX.tmp`, what [`Cache::new`] sweeps),
/// private to its owner, holding `bytes`.
fn staged(dir: &Path, bytes: &[u8]) -> io::Result<tempfile::NamedTempFile> {
    use std::io::Write;
    let mut builder = tempfile::Builder::new();
    builder.prefix(".entry.json.").suffix(".tmp");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(ENTRY_MODE));
    }
    #[cfg(not(unix))]
    let _ = ENTRY_MODE;
    let mut file = builder.tempfile_in(dir)?;
    file.write_all(bytes)?;
    Ok(file)
}

impl Entry {
    /// An entry for a reply to the call named `key`.
    pub fn new(key: &Key, model: String, text: String, json: Option<Json>) -> Self {
        Entry {
            format: FORMAT,
            key: key.to_string(),
            model,
            text,
            json,
            usage: Usage::default(),
            stop_reason: None,
            citations: Vec::new(),
            written_at: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::Progress;
    use serde_json::json;

    fn endpoint() -> Endpoint {
        Endpoint {
            provider: "anthropic".into(),
            model: "claude-sonnet-4-5".into(),
            base_url: "https://api.anthropic.com".into(),
            api: ProviderKind::Anthropic,
        }
    }

    fn request() -> Request {
        Request {
            provider: "anthropic".into(),
            model: "claude-sonnet-4-5".into(),
            system: Some("You are terse.".into()),
            prompt: "Say hello.".into(),
            max_tokens: Some(100),
            temperature: Some(0.3),
            top_p: None,
            stop: Vec::new(),
            output: OutputKind::Text,
            schema: None,
            tools: Vec::new(),
            cache: None,
            stream: true,
            timeout: None,
            key: None,
            progress: Progress::default(),
            correction: None,
            label: None,
        }
    }

    type Change<T> = Box<dyn Fn(&mut T)>;

    fn key_of(targets: &[Endpoint], request: &Request) -> Key {
        key(targets, request).unwrap()
    }

    #[test]
    fn the_key_is_stable() {
        // A change here empties every user's cache: bump FORMAT instead.
        assert_eq!(
            key_of(&[endpoint()], &request()).to_string(),
            key_of(&[endpoint()], &request()).to_string()
        );
        assert_eq!(
            key_of(&[endpoint()], &request()).to_string(),
            "5c208a2cd908919760d022e238b0ee1d2fde546af93904a917ec967635b912c2"
        );
    }

    #[test]
    fn every_part_that_decides_the_answer_changes_the_key() {
        let base = key_of(&[endpoint()], &request());
        let changed_requests: Vec<(&str, Change<Request>)> = vec![
            ("prompt", Box::new(|r| r.prompt.push('!'))),
            ("system", Box::new(|r| r.system = None)),
            (
                "system text",
                Box::new(|r| r.system = Some("You are verbose.".into())),
            ),
            ("max_tokens", Box::new(|r| r.max_tokens = Some(101))),
            ("no max_tokens", Box::new(|r| r.max_tokens = None)),
            ("temperature", Box::new(|r| r.temperature = Some(0.31))),
            ("top_p", Box::new(|r| r.top_p = Some(0.9))),
            ("stop", Box::new(|r| r.stop = vec!["END".into()])),
            ("output", Box::new(|r| r.output = OutputKind::Json)),
            (
                "schema",
                Box::new(|r| r.schema = Some(json!({"type": "object"}))),
            ),
        ];
        for (what, change) in changed_requests {
            let mut r = request();
            change(&mut r);
            assert_ne!(key_of(&[endpoint()], &r), base, "{what}");
        }
        let changed_targets: Vec<(&str, Change<Endpoint>)> = vec![
            ("provider", Box::new(|e| e.provider = "claude".into())),
            ("model", Box::new(|e| e.model = "claude-opus-4-1".into())),
            (
                "base_url",
                Box::new(|e| e.base_url = "https://proxy.example.com".into()),
            ),
            ("api", Box::new(|e| e.api = ProviderKind::OpenaiCompatible)),
        ];
        for (what, change) in changed_targets {
            let mut e = endpoint();
            change(&mut e);
            assert_ne!(key_of(&[e], &request()), base, "{what}");
        }
        let fallback = Endpoint {
            model: "claude-haiku-4-5".into(),
            ..endpoint()
        };
        assert_ne!(
            key_of(&[endpoint(), fallback], &request()),
            base,
            "fallback"
        );
    }

    #[test]
    fn what_does_not_change_the_answer_keeps_the_key() {
        let base = key_of(&[endpoint()], &request());
        let mut r = request();
        r.stream = false;
        r.timeout = Some(std::time::Duration::from_secs(5));
        r.key = Some(crate::keys::KeyRef::Env("OTHER_KEY".into()));
        assert_eq!(key_of(&[endpoint()], &r), base);
    }

    fn entry(key: &Key) -> Entry {
        Entry {
            usage: Usage {
                input: 12,
                output: 34,
                ..Usage::default()
            },
            stop_reason: Some("end_turn".into()),
            ..Entry::new(
                key,
                "anthropic/claude-sonnet-4-5".into(),
                "Hello.".into(),
                None,
            )
        }
    }

    #[test]
    fn an_entry_written_is_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path());
        let k = key_of(&[endpoint()], &request());
        assert!(matches!(cache.get(&k), Lookup::Miss));
        cache.put(&k, &entry(&k)).unwrap();
        match cache.get(&k) {
            Lookup::Hit(found) => assert_eq!(*found, entry(&k)),
            other => panic!("{other:?}"),
        }
        // Written again (another process, the same key): still one whole entry.
        cache.put(&k, &entry(&k)).unwrap();
        assert!(matches!(cache.get(&k), Lookup::Hit(_)));
        let files: Vec<_> = std::fs::read_dir(cache.path(&k).parent().unwrap())
            .unwrap()
            .collect();
        assert_eq!(files.len(), 1, "no temporary file is left behind");
    }

    #[test]
    fn a_corrupted_or_truncated_entry_is_a_miss_with_a_reason() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path());
        let k = key_of(&[endpoint()], &request());
        cache.put(&k, &entry(&k)).unwrap();
        let path = cache.path(&k);
        let whole = std::fs::read(&path).unwrap();
        for bad in [
            whole[..whole.len() / 2].to_vec(),
            Vec::new(),
            b"\xff\xfe not json".to_vec(),
            b"{\"format\": 1}".to_vec(),
        ] {
            std::fs::write(&path, &bad).unwrap();
            match cache.get(&k) {
                Lookup::Unreadable(why) => {
                    assert!(why.contains("corrupted"), "{why}");
                    assert!(why.contains(&path.display().to_string()), "{why}");
                }
                other => panic!("{other:?}"),
            }
        }
        // An entry of another key under this name is not believed.
        let other = key_of(
            &[endpoint()],
            &Request {
                prompt: "Another prompt.".into(),
                ..request()
            },
        );
        std::fs::write(&path, serde_json::to_vec(&entry(&other)).unwrap()).unwrap();
        assert!(matches!(cache.get(&k), Lookup::Unreadable(_)));
        // Nor one of another format.
        let mut old = entry(&k);
        old.format = 0;
        std::fs::write(&path, serde_json::to_vec(&old).unwrap()).unwrap();
        assert!(matches!(cache.get(&k), Lookup::Unreadable(_)));
        // Writing replaces it.
        cache.put(&k, &entry(&k)).unwrap();
        assert!(matches!(cache.get(&k), Lookup::Hit(_)));
    }

    #[test]
    fn an_entry_cut_short_or_with_zeroed_bytes_is_never_served() {
        // What a power cut can leave of an entry that was not synced: any prefix,
        // or a run of zero bytes where its data did not reach the disk.
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path());
        let k = key_of(&[endpoint()], &request());
        cache.put(&k, &entry(&k)).unwrap();
        let path = cache.path(&k);
        let whole = std::fs::read(&path).unwrap();
        let mut damaged: Vec<Vec<u8>> = (0..whole.len()).map(|n| whole[..n].to_vec()).collect();
        for start in (0..whole.len()).step_by(7) {
            let mut bytes = whole.clone();
            let end = (start + 16).min(bytes.len());
            bytes[start..end].fill(0);
            damaged.push(bytes);
        }
        damaged.push(vec![0; whole.len()]);
        for bytes in damaged {
            std::fs::write(&path, &bytes).unwrap();
            assert!(
                matches!(cache.get(&k), Lookup::Unreadable(_)),
                "served {:?}",
                String::from_utf8_lossy(&bytes)
            );
        }
    }

    #[test]
    fn a_write_makes_the_folders_it_needs_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path().join("new"));
        let k = key_of(&[endpoint()], &request());
        cache.put(&k, &entry(&k)).unwrap();
        // Another run, or `rm -rf`, empties the cache while this one writes.
        std::fs::remove_dir_all(dir.path().join("new")).unwrap();
        cache.put(&k, &entry(&k)).unwrap();
        assert!(matches!(cache.get(&k), Lookup::Hit(_)));
        let temp: Vec<_> = std::fs::read_dir(cache.temp_dir()).unwrap().collect();
        assert!(temp.is_empty(), "{temp:?}");
    }

    #[test]
    fn entries_are_private_to_their_owner() {
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let dir = tempfile::tempdir().unwrap();
            let cache = Cache::new(dir.path());
            let k = key_of(&[endpoint()], &request());
            cache.put(&k, &entry(&k)).unwrap();
            let mode = std::fs::metadata(cache.path(&k))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
