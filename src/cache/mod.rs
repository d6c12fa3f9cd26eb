//! The answer cache (SPEC §5): an agent whose call matches a cached success is not
//! called again; its reply comes from here, at $0. An entry is a small JSON object
//! under a key, the SHA-256 of everything that decides the answer: the models the
//! call may go to (provider, model, base URL, API, in fallback order), every
//! request parameter (its server-side tools and their options included), and the
//! fully rendered system prompt and prompt. How the prompt is cached at the
//! provider (`cache:`) does not change an answer and is left out. Settings
//! that do not change the answer (`stream`, `timeout`, `retries`, the key) are left
//! out, and so a key is never part of a key, nor of an entry.
//!
//! Entries are appended to segments (`ROOT/v1/segments/*.seg`, see `segment.rs`
//! for a record's framing and `store.rs` for the index and compaction): each
//! process appends to a file of its own, so writing an entry is one `write` to a
//! file that is already open, not a file made and renamed. An entry is written as
//! soon as its agent succeeds, so a run killed at any point (`kill -9` included)
//! keeps every entry it finished, and a second run resumes from them. Two
//! processes writing the same key each append a whole record; the newest is
//! served.
//!
//! An entry is not synced to the disk: it only saves a call, and syncing each one
//! cost a dataset run of 10,000 rows more than the run itself. A process killed
//! loses nothing (what it wrote is the kernel's); a machine that loses power may
//! lose the entries of the last few seconds, or leave the end of a segment cut
//! short or zeroed. Such a record is not served: its header and its payload each
//! carry a checksum, a segment is read up to its first record that is not whole,
//! and an entry that parses but names another key is not believed. An entry that
//! cannot be read or used is a miss, reported to the caller, never a crash, and
//! the next success replaces it.
//!
//! Entries of the layout before segments (one file per entry, `ROOT/v1/ab/ab….json`)
//! are still read when a key is not in a segment; nothing writes them any more.
//!
//! The runner decides when to read and write (`--no-cache`, `--refresh`); this
//! module only owns the key, the layout and the file format.

mod segment;
mod store;

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

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

/// The largest entry file of the old layout read; a bigger file is not one this
/// cache wrote.
const MAX_ENTRY_BYTES: u64 = segment::MAX_PAYLOAD as u64;

/// Where the cache lives unless `--cache-dir` or `BYOK_FLOW_CACHE_DIR` says:
/// `$XDG_CACHE_HOME/byok-flow` or `~/.cache/byok-flow` on Linux,
/// `~/Library/Caches/byok-flow` on macOS, `%LOCALAPPDATA%\byok-flow` on Windows.
pub fn default_dir() -> Option<PathBuf> {
    dirs::cache_dir().map(|d| d.join("byok-flow"))
}

/// A cache folder. Clones share one index and one segment to append to.
#[derive(Clone)]
pub struct Cache {
    root: PathBuf,
    state: Arc<Mutex<State>>,
}

impl fmt::Debug for Cache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cache")
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

/// What is read of the folder the first time it is used.
#[derive(Default)]
struct State {
    segments: Option<store::Store>,
    /// Whether there are entries of the old layout to look in.
    legacy: bool,
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
    /// The cache in `root`. Nothing is read until it is used; temporary files
    /// that a killed run left there are removed.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        let cache = Cache {
            root: root.into(),
            state: Arc::default(),
        };
        crate::keys::atomic::sweep(&cache.root.join("tmp"), |t| {
            Path::new(t).extension().is_some_and(|e| e == "json")
        });
        crate::keys::atomic::sweep(&cache.segments_dir(), |t| t == "compacted.seg");
        cache
    }

    /// The folder given to [`Cache::new`].
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `ROOT/v1/segments`: a folder per format.
    fn segments_dir(&self) -> PathBuf {
        self.root.join(format!("v{FORMAT}")).join("segments")
    }

    /// `ROOT/v1/ab/abcdef….json`: where the old layout kept an entry.
    fn legacy_path(&self, key: &Key) -> PathBuf {
        let hex = key.to_string();
        self.root
            .join(format!("v{FORMAT}"))
            .join(&hex[..2])
            .join(format!("{hex}.json"))
    }

    /// Runs `f` on the state, the index read the first time.
    fn with<T>(&self, f: impl FnOnce(&mut store::Store, bool) -> T) -> T {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if state.segments.is_none() {
            state.legacy = has_legacy_entries(&self.root.join(format!("v{FORMAT}")));
            state.segments = Some(store::Store::open(self.segments_dir()));
        }
        let legacy = state.legacy;
        let segments = state.segments.as_mut().expect("opened above");
        f(segments, legacy)
    }

    /// How many entries the segments hold (the old layout's not counted).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.with(|segments, _| segments.len())
    }

    /// The entry for `key`, if there is a whole, matching one.
    pub fn get(&self, key: &Key) -> Lookup {
        let (found, legacy) = self.with(|segments, legacy| (segments.find(key), legacy));
        let short = || key.to_string().chars().take(12).collect::<String>();
        match found {
            Some(store::Found::Payload(bytes)) => parse(&bytes, key, || {
                format!(
                    "the cache entry {} in {}",
                    short(),
                    self.segments_dir().display()
                )
            }),
            Some(store::Found::Damaged(why)) => Lookup::Unreadable(format!(
                "the cache entry {} {why}; calling the model again, and replacing it",
                short()
            )),
            None if legacy => self.get_legacy(key),
            None => Lookup::Miss,
        }
    }

    /// The entry for `key` in the old layout, one file per entry.
    fn get_legacy(&self, key: &Key) -> Lookup {
        let path = self.legacy_path(key);
        match crate::read::file(&path, MAX_ENTRY_BYTES) {
            Ok(bytes) => parse(&bytes, key, || {
                format!("the cache entry {}", path.display())
            }),
            Err(e) if e.is_not_found() => Lookup::Miss,
            Err(e) => Lookup::Unreadable(format!(
                "cannot read the cache entry {}: {e}",
                path.display()
            )),
        }
    }

    /// Writes the entry for `key`, whole or not at all (not synced: see the
    /// module's notes). The folders are made the first time a write needs them.
    pub fn put(&self, key: &Key, entry: &Entry) -> io::Result<()> {
        let text = serde_json::to_string(entry).map_err(io::Error::other)?;
        // The last guard: a reply is redacted when it arrives; nothing else may
        // bring a key into the cache either.
        let text = crate::keys::redact::text(&text);
        self.with(|segments, _| segments.append(key, text.as_bytes()))
    }
}

/// The entry in `bytes`, if it is one of this format for `key`; `what` names it
/// in a message.
fn parse(bytes: &[u8], key: &Key, what: impl Fn() -> String) -> Lookup {
    let unusable = |why: String| {
        Lookup::Unreadable(format!(
            "{} is {why}; calling the model again, and replacing it",
            what()
        ))
    };
    match serde_json::from_slice::<Entry>(bytes) {
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

/// Whether `dir` (`ROOT/v1`) has a folder of the old layout (`ab/`).
fn has_legacy_entries(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|entries| {
        entries.flatten().any(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.len() == 2 && n.bytes().all(|b| b.is_ascii_hexdigit()))
        })
    })
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
    use std::process::Command;

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

    /// The segments of `cache`, sorted.
    fn segments(cache: &Cache) -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = std::fs::read_dir(cache.segments_dir())
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        out.sort();
        out
    }

    /// The only segment of `cache`, once it has written.
    fn segment(cache: &Cache) -> PathBuf {
        let all = segments(cache);
        assert_eq!(all.len(), 1, "{all:?}");
        all[0].clone()
    }

    #[test]
    fn an_entry_written_is_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path());
        let k = key_of(&[endpoint()], &request());
        assert!(matches!(cache.get(&k), Lookup::Miss));
        assert!(segments(&cache).is_empty(), "a look-up writes nothing");
        cache.put(&k, &entry(&k)).unwrap();
        match cache.get(&k) {
            Lookup::Hit(found) => assert_eq!(*found, entry(&k)),
            other => panic!("{other:?}"),
        }
        // Written again (`--refresh`): the newer one is served, by this process
        // and by the next.
        let mut newer = entry(&k);
        newer.text = "Hello again.".into();
        cache.put(&k, &newer).unwrap();
        let hit = |cache: &Cache| match cache.get(&k) {
            Lookup::Hit(found) => found.text,
            other => panic!("{other:?}"),
        };
        assert_eq!(hit(&cache), "Hello again.");
        let next = Cache::new(dir.path());
        assert_eq!(hit(&next), "Hello again.");
        assert_eq!(next.len(), 1);
        // One segment for the process, and nothing else in the folder.
        let files: Vec<_> = std::fs::read_dir(cache.segments_dir()).unwrap().collect();
        assert_eq!(files.len(), 1, "{files:?}");
        // A clone shares the index and the segment.
        let other = key_of(
            &[endpoint()],
            &Request {
                prompt: "Other.".into(),
                ..request()
            },
        );
        cache.clone().put(&other, &entry(&other)).unwrap();
        assert!(matches!(cache.get(&other), Lookup::Hit(_)));
        assert_eq!(segments(&cache).len(), 1);
    }

    #[test]
    fn processes_each_append_to_their_own_segment_and_see_each_other() {
        let dir = tempfile::tempdir().unwrap();
        let keys: Vec<Key> = (0..4)
            .map(|n| {
                key_of(
                    &[endpoint()],
                    &Request {
                        prompt: format!("Prompt {n}."),
                        ..request()
                    },
                )
            })
            .collect();
        let (one, two) = (Cache::new(dir.path()), Cache::new(dir.path()));
        one.put(&keys[0], &entry(&keys[0])).unwrap();
        two.put(&keys[1], &entry(&keys[1])).unwrap();
        assert_eq!(segments(&one).len(), 2);
        // What the other wrote after this one read the folder is found once a
        // look-up misses (the folder is read again at most once a second).
        std::thread::sleep(store::RESCAN);
        assert!(matches!(one.get(&keys[1]), Lookup::Hit(_)));
        assert!(matches!(two.get(&keys[0]), Lookup::Hit(_)));
        one.put(&keys[2], &entry(&keys[2])).unwrap();
        std::thread::sleep(store::RESCAN);
        assert!(
            matches!(two.get(&keys[2]), Lookup::Hit(_)),
            "appended to a segment already read"
        );
        assert!(matches!(two.get(&keys[3]), Lookup::Miss));
        assert_eq!(Cache::new(dir.path()).len(), 3);
    }

    #[test]
    fn many_segments_are_compacted_into_one_keeping_the_newest_of_each_key() {
        let dir = tempfile::tempdir().unwrap();
        let prompt = |p: String| {
            key_of(
                &[endpoint()],
                &Request {
                    prompt: p,
                    ..request()
                },
            )
        };
        // A live process's segment is not compacted: it still appends to it.
        let live = Cache::new(dir.path());
        let first = prompt("First.".into());
        live.put(&first, &entry(&first)).unwrap();
        let live_segment = segment(&live);
        let k = key_of(&[endpoint()], &request());
        let mut keys = vec![first];
        // A process per entry, as many one-agent runs leave.
        for n in 0..20 {
            let cache = Cache::new(dir.path());
            let key = prompt(format!("Prompt {n}."));
            cache.put(&key, &entry(&key)).unwrap();
            let mut again = entry(&k);
            again.text = format!("Answer {n}.");
            cache.put(&k, &again).unwrap();
            keys.push(key);
        }
        let now = segments(&live);
        assert!(now.len() < 10, "{now:?}");
        assert!(now.contains(&live_segment), "{now:?}");
        let next = Cache::new(dir.path());
        assert_eq!(next.len(), 22);
        for key in &keys {
            assert!(matches!(next.get(key), Lookup::Hit(_)));
        }
        match next.get(&k) {
            Lookup::Hit(found) => assert_eq!(found.text, "Answer 19."),
            other => panic!("{other:?}"),
        }
        // The live one goes on appending where others can read it.
        let last = prompt("Last.".into());
        live.put(&last, &entry(&last)).unwrap();
        assert!(matches!(Cache::new(dir.path()).get(&last), Lookup::Hit(_)));
        assert_eq!(Cache::new(dir.path()).len(), 23);
        let all: Vec<_> = std::fs::read_dir(live.segments_dir())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert!(
            all.iter().all(
                |n| !n.starts_with('.') && Path::new(n).extension().is_some_and(|e| e == "seg")
            ),
            "{all:?}"
        );
        #[cfg(unix)]
        for segment in segments(&next) {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&segment).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{}", segment.display());
        }
    }

    #[test]
    fn a_corrupted_or_truncated_entry_is_a_miss_with_a_reason() {
        let dir = tempfile::tempdir().unwrap();
        let k = key_of(&[endpoint()], &request());
        Cache::new(dir.path()).put(&k, &entry(&k)).unwrap();
        let path = segment(&Cache::new(dir.path()));
        let whole = std::fs::read(&path).unwrap();
        // A changed byte of the entry: the header still checks, the entry does not.
        let mut changed = whole.clone();
        *changed.last_mut().unwrap() ^= 0x20;
        std::fs::write(&path, &changed).unwrap();
        match Cache::new(dir.path()).get(&k) {
            Lookup::Unreadable(why) => {
                assert!(why.contains("is corrupted"), "{why}");
                assert!(why.contains(&path.display().to_string()), "{why}");
                assert!(why.contains("calling the model again"), "{why}");
            }
            other => panic!("{other:?}"),
        }
        // Writing replaces it, for this process and the next.
        let cache = Cache::new(dir.path());
        cache.put(&k, &entry(&k)).unwrap();
        assert!(matches!(cache.get(&k), Lookup::Hit(_)));
        assert!(matches!(Cache::new(dir.path()).get(&k), Lookup::Hit(_)));

        // A whole record whose entry is of another key, or another format, or
        // not an entry: not believed.
        let other = key_of(
            &[endpoint()],
            &Request {
                prompt: "Another prompt.".into(),
                ..request()
            },
        );
        let mut old = entry(&k);
        old.format = 0;
        for payload in [
            serde_json::to_vec(&entry(&other)).unwrap(),
            serde_json::to_vec(&old).unwrap(),
            b"{\"format\": 1}".to_vec(),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let cache = Cache::new(dir.path());
            cache.with(|s, _| s.append(&k, &payload)).unwrap();
            assert!(matches!(cache.get(&k), Lookup::Unreadable(_)));
        }
    }

    #[test]
    fn an_entry_cut_short_or_with_zeroed_bytes_is_never_served() {
        // What a power cut can leave of a segment that was not synced: any prefix,
        // or a run of zero bytes where its data did not reach the disk.
        let dir = tempfile::tempdir().unwrap();
        let k = key_of(&[endpoint()], &request());
        let first = key_of(
            &[endpoint()],
            &Request {
                prompt: "First.".into(),
                ..request()
            },
        );
        let cache = Cache::new(dir.path());
        cache.put(&first, &entry(&first)).unwrap();
        let start = std::fs::read(segment(&cache)).unwrap().len();
        cache.put(&k, &entry(&k)).unwrap();
        let path = segment(&cache);
        let whole = std::fs::read(&path).unwrap();
        let mut damaged: Vec<Vec<u8>> = (start..whole.len()).map(|n| whole[..n].to_vec()).collect();
        for at in (start..whole.len()).step_by(7) {
            let mut bytes = whole.clone();
            let end = (at + 16).min(bytes.len());
            bytes[at..end].fill(0);
            damaged.push(bytes);
        }
        let mut zeroed = whole.clone();
        zeroed[start..].fill(0);
        damaged.push(zeroed);
        for bytes in damaged {
            std::fs::write(&path, &bytes).unwrap();
            let cache = Cache::new(dir.path());
            assert!(
                !matches!(cache.get(&k), Lookup::Hit(_)),
                "served {:?}",
                String::from_utf8_lossy(&bytes)
            );
            assert!(
                matches!(cache.get(&first), Lookup::Hit(_)),
                "the whole one before it is kept"
            );
        }
        // And an entry of the old layout, one file each, cut short or zeroed.
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path());
        let path = cache.legacy_path(&k);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let whole = serde_json::to_vec(&entry(&k)).unwrap();
        std::fs::write(&path, &whole).unwrap();
        assert!(matches!(Cache::new(dir.path()).get(&k), Lookup::Hit(_)));
        let mut damaged: Vec<Vec<u8>> = (0..whole.len()).map(|n| whole[..n].to_vec()).collect();
        for at in (0..whole.len()).step_by(7) {
            let mut bytes = whole.clone();
            let end = (at + 16).min(bytes.len());
            bytes[at..end].fill(0);
            damaged.push(bytes);
        }
        for bytes in damaged {
            std::fs::write(&path, &bytes).unwrap();
            assert!(
                matches!(Cache::new(dir.path()).get(&k), Lookup::Unreadable(_)),
                "served {:?}",
                String::from_utf8_lossy(&bytes)
            );
        }
    }

    #[test]
    fn an_entry_of_the_old_layout_is_still_read_and_never_written() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path());
        let k = key_of(&[endpoint()], &request());
        let path = cache.legacy_path(&k);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, serde_json::to_vec(&entry(&k)).unwrap()).unwrap();
        assert!(matches!(Cache::new(dir.path()).get(&k), Lookup::Hit(_)));
        let cache = Cache::new(dir.path());
        let mut newer = entry(&k);
        newer.text = "Newer.".into();
        cache.put(&k, &newer).unwrap();
        match Cache::new(dir.path()).get(&k) {
            Lookup::Hit(found) => assert_eq!(found.text, "Newer.", "the segment's comes first"),
            other => panic!("{other:?}"),
        }
        // A FIFO, or a link, where a file of entries should be: refused, not waited on.
        #[cfg(unix)]
        {
            let fifo = path.with_extension("fifo");
            assert!(
                Command::new("mkfifo")
                    .arg(&fifo)
                    .status()
                    .unwrap()
                    .success()
            );
            std::fs::rename(&fifo, &path).unwrap();
            let other = key_of(
                &[endpoint()],
                &Request {
                    prompt: "Other.".into(),
                    ..request()
                },
            );
            std::os::unix::fs::symlink(&path, cache.segments_dir().join("0-0-link.seg")).unwrap();
            let fifo_seg = cache.segments_dir().join("0-0-fifo.seg");
            assert!(
                Command::new("mkfifo")
                    .arg(&fifo_seg)
                    .status()
                    .unwrap()
                    .success()
            );
            let fresh = Cache::new(dir.path());
            assert!(matches!(fresh.get(&other), Lookup::Miss));
            assert!(matches!(fresh.get(&k), Lookup::Hit(_)));
            std::fs::remove_file(cache.segments_dir().join("0-0-link.seg")).unwrap();
            std::fs::remove_file(&fifo_seg).unwrap();
            std::fs::remove_file(segment(&cache)).unwrap();
            match Cache::new(dir.path()).get(&k) {
                Lookup::Unreadable(why) => assert!(why.contains("FIFO"), "{why}"),
                other => panic!("{other:?}"),
            }
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
        assert!(matches!(
            Cache::new(dir.path().join("new")).get(&k),
            Lookup::Hit(_)
        ));
        let all: Vec<_> = std::fs::read_dir(dir.path().join("new"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(all, ["v1"]);
        assert_eq!(segments(&cache).len(), 1);
    }

    /// The index keeps 8 bytes of a key; two keys that share them are both
    /// served, each its own entry, and a third that shares them is a miss.
    #[test]
    fn keys_that_share_their_first_8_bytes_are_never_confused() {
        let dir = tempfile::tempdir().unwrap();
        let base = key_of(&[endpoint()], &request()).0;
        let twin = |last: u8| {
            let mut bytes = base;
            bytes[31] = last;
            bytes[8] ^= 0xff;
            Key(bytes)
        };
        let (a, b, c) = (Key(base), twin(1), twin(2));
        let answer = |k: &Key, text: &str| Entry {
            text: text.into(),
            ..entry(k)
        };
        let text = |cache: &Cache, k: &Key| match cache.get(k) {
            Lookup::Hit(found) => Some(found.text),
            Lookup::Miss => None,
            unreadable @ Lookup::Unreadable(_) => panic!("{unreadable:?}"),
        };
        // In one process, and in two: each key's own entry, newest first.
        let one = Cache::new(dir.path());
        one.put(&a, &answer(&a, "A")).unwrap();
        one.put(&b, &answer(&b, "B")).unwrap();
        assert_eq!(text(&one, &a).as_deref(), Some("A"));
        assert_eq!(text(&one, &b).as_deref(), Some("B"));
        assert_eq!(text(&one, &c), None);
        let two = Cache::new(dir.path());
        two.put(&b, &answer(&b, "B2")).unwrap();
        two.put(&c, &answer(&c, "C")).unwrap();
        two.put(&a, &answer(&a, "A2")).unwrap();
        assert_eq!(text(&two, &b).as_deref(), Some("B2"));
        let next = Cache::new(dir.path());
        assert_eq!(next.len(), 3);
        for (k, want) in [(&a, "A2"), (&b, "B2"), (&c, "C")] {
            assert_eq!(text(&next, k).as_deref(), Some(want));
        }
        // Compacted: still each its own.
        for n in 0..20 {
            let k = key_of(
                &[endpoint()],
                &Request {
                    prompt: format!("Prompt {n}."),
                    ..request()
                },
            );
            Cache::new(dir.path()).put(&k, &entry(&k)).unwrap();
        }
        let compacted = Cache::new(dir.path());
        assert!(segments(&compacted).len() < 10);
        assert_eq!(compacted.len(), 23);
        for (k, want) in [(&a, "A2"), (&b, "B2"), (&c, "C")] {
            assert_eq!(text(&compacted, k).as_deref(), Some(want));
        }
        // A record under the first key, zeroed: the other two are still served.
        let d = twin(3);
        let fresh = tempfile::tempdir().unwrap();
        let cache = Cache::new(fresh.path());
        cache.put(&d, &answer(&d, "D")).unwrap();
        cache.put(&a, &answer(&a, "A")).unwrap();
        let path = segment(&cache);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[..segment::HEADER].fill(0);
        std::fs::write(&path, &bytes).unwrap();
        let reread = Cache::new(fresh.path());
        assert_eq!(text(&reread, &d), None);
        assert_eq!(
            text(&reread, &a),
            None,
            "after the first record, nothing is believed"
        );
        reread.put(&a, &answer(&a, "A3")).unwrap();
        reread.put(&d, &answer(&d, "D3")).unwrap();
        assert_eq!(text(&reread, &a).as_deref(), Some("A3"));
        assert_eq!(text(&reread, &d).as_deref(), Some("D3"));
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
            let mode = std::fs::metadata(segment(&cache))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
