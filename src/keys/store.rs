//! [`KeyStore`]: the keys of one run. A key is read (a file decrypted, or an
//! environment variable taken) once per run: by [`KeyStore::preflight`], before
//! the first request, which checks every destination it will go to; `--mock`,
//! `--dry-run`, `validate` and `graph` never make a store, so they never read an
//! identity. Every key is handed out only with a destination check
//! ([`KeyStore::key_for`]), and given to the run's redactor as it is read.

use std::collections::HashMap;
use std::ffi::OsString;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::OnceCell;

use super::error::KeyError;
use super::hosts::{AllowHosts, HostPattern, check_destination};
use super::identity::{Identity, IdentitySource};
use super::keyfile::{self, Key};
use super::layout::KeysDir;
use super::plan::{KeyProblem, KeyUse};
use super::redact;
use super::reference::KeyRef;
use super::secret::{ApiKey, check_key_text};
use crate::catalog;

type Slot<T> = Arc<OnceCell<Result<T, KeyError>>>;
type Lookup = Arc<dyn Fn(&str) -> Option<OsString> + Send + Sync>;
type OnRead = Box<dyn Fn(&ApiKey) + Send + Sync>;

/// The keys of one run, read lazily and at most once each.
pub struct KeyStore {
    dir: Result<KeysDir, KeyError>,
    env: Lookup,
    identity_source: IdentitySource,
    allow_hosts: AllowHosts,
    identity: OnceCell<Result<Arc<Identity>, KeyError>>,
    keys: Mutex<HashMap<KeyRef, Slot<Arc<Key>>>>,
    /// Called with each key right after it is read, before it is used or anything
    /// about it is printed (GitHub Actions masks it here).
    on_read: Option<OnRead>,
    /// The checks that allowed a destination, by its URL: a check parses URLs,
    /// and a run's many calls (a dataset run's, two a call) go to few places.
    passed: Mutex<HashMap<String, Vec<Passed>>>,
}

/// What a check that allowed a URL was given (the rest of its input, the
/// hosts the person running allows, is the store's and does not change).
struct Passed {
    key: KeyRef,
    owner: String,
    hosts: Vec<HostPattern>,
}

impl std::fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyStore")
            .field("dir", &self.dir)
            .field("allow_hosts", &self.allow_hosts)
            .finish_non_exhaustive()
    }
}

impl KeyStore {
    /// A store over `dir` (from [`KeysDir::locate`]; its error is reported only
    /// when a key file is needed), the identity's source, and the hosts the
    /// person running allows (`--allow-host`, `BYOK_FLOW_ALLOW_HOSTS`).
    pub fn new(
        dir: Result<KeysDir, KeyError>,
        identity: IdentitySource,
        allow_hosts: AllowHosts,
    ) -> Self {
        Self::with_env(dir, identity, allow_hosts, |name| std::env::var_os(name))
    }

    /// A store that reads `env:` keys from `env` instead of the process environment.
    pub fn with_env(
        dir: Result<KeysDir, KeyError>,
        identity: IdentitySource,
        allow_hosts: AllowHosts,
        env: impl Fn(&str) -> Option<OsString> + Send + Sync + 'static,
    ) -> Self {
        KeyStore {
            dir,
            env: Arc::new(env),
            identity_source: identity,
            allow_hosts,
            identity: OnceCell::new(),
            keys: Mutex::new(HashMap::new()),
            on_read: None,
            passed: Mutex::default(),
        }
    }

    /// Calls `hook` with each key the moment it is decrypted or taken from the
    /// environment, once per key, before the key is used.
    #[must_use]
    pub fn on_read(mut self, hook: impl Fn(&ApiKey) + Send + Sync + 'static) -> Self {
        self.on_read = Some(Box::new(hook));
        self
    }

    /// The key `key` holds: decrypted (or read from the environment) on the first
    /// call, shared afterwards. A failure is remembered too, so it is reported
    /// once per key and an SSH passphrase is asked for at most once.
    pub async fn get(&self, key: &KeyRef) -> Result<Arc<Key>, KeyError> {
        let slot = {
            let mut keys = self
                .keys
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            keys.entry(key.clone()).or_default().clone()
        };
        slot.get_or_init(|| async {
            let read = self.read(key).await;
            if let Ok(opened) = &read {
                // From now on, no text this process keeps or shows may hold it.
                redact::register(&key.to_string(), &opened.api_key);
                if let Some(hook) = &self.on_read {
                    hook(&opened.api_key);
                }
            }
            read
        })
        .await
        .clone()
    }

    /// The API key to send to `target_url` for a call to `provider` (the
    /// workflow's provider name): [`KeyStore::get`] plus [`check_destination`]
    /// against the built-in home of the key file's `provider` (else of
    /// `provider`), the file's `allow_hosts` and the run's allowed hosts.
    pub async fn key_for(
        &self,
        key: &KeyRef,
        provider: &str,
        target_url: &str,
    ) -> Result<ApiKey, KeyError> {
        if let KeyRef::Env(_) = key {
            // Nothing in the environment can widen the rule: check before reading.
            self.check(key, None, &[], provider, target_url)?;
        }
        let opened = self.get(key).await?;
        self.check(
            key,
            opened.provider.as_deref(),
            &opened.allow_hosts,
            provider,
            target_url,
        )?;
        Ok(opened.api_key.clone())
    }

    fn check(
        &self,
        key: &KeyRef,
        file_provider: Option<&str>,
        file_hosts: &[HostPattern],
        provider: &str,
        target_url: &str,
    ) -> Result<(), KeyError> {
        let owner = file_provider.unwrap_or(provider);
        let passed = || -> std::sync::MutexGuard<'_, _> {
            self.passed.lock().unwrap_or_else(PoisonError::into_inner)
        };
        let same = |p: &Passed| p.key == *key && p.owner == owner && p.hosts == file_hosts;
        if passed()
            .get(target_url)
            .is_some_and(|list| list.iter().any(same))
        {
            return Ok(());
        }
        check_destination(
            catalog::builtin_base_url(owner),
            file_hosts,
            &self.allow_hosts,
            target_url,
        )
        .map_err(|error| KeyError::HostRefused {
            key: key.to_string(),
            provider: owner.to_string(),
            error,
        })?;
        passed()
            .entry(target_url.to_string())
            .or_default()
            .push(Passed {
                key: key.clone(),
                owner: owner.to_string(),
                hosts: file_hosts.to_vec(),
            });
        Ok(())
    }

    /// Before a run's first request: every (agent, model, key, destination) the
    /// run may use is checked as it will be when the call is made, so a refusal
    /// never comes after money was spent on earlier agents. That opens every key
    /// file the run needs (kept for the run; its `provider` decides where the key
    /// may go, and only the file says it) and reads every `env:` variable, after
    /// checking its destination. Every problem is returned, each key's once.
    pub async fn preflight(&self, uses: &[KeyUse]) -> Result<(), Vec<KeyProblem>> {
        let mut problems: Vec<KeyProblem> = Vec::new();
        // Every file's presence first, without the identity, so a missing file is
        // named even when there is no identity to open the others.
        let mut present = Vec::new();
        for u in uses {
            let found = match &u.key {
                KeyRef::File(name) => self
                    .dir
                    .clone()
                    .and_then(|d| d.existing_key(name).map(drop)),
                KeyRef::Env(_) => Ok(()),
            };
            match found {
                Ok(()) => present.push(u),
                Err(error) => push_once(&mut problems, KeyProblem::new(u, error)),
            }
        }
        // Then each key in the order the agents use them.
        for u in present {
            let result = match &u.key {
                // Nothing in the environment can widen the rule: the host first.
                KeyRef::Env(_) => match self.check(&u.key, None, &[], &u.provider, &u.base_url) {
                    Ok(()) => self.get(&u.key).await.map(drop),
                    Err(e) => Err(e),
                },
                KeyRef::File(_) => match self.get(&u.key).await {
                    Ok(opened) => self.check(
                        &u.key,
                        opened.provider.as_deref(),
                        &opened.allow_hosts,
                        &u.provider,
                        &u.base_url,
                    ),
                    Err(e) => Err(e),
                },
            };
            if let Err(error) = result {
                push_once(&mut problems, KeyProblem::new(u, error));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }

    async fn identity(&self) -> Result<Arc<Identity>, KeyError> {
        self.identity
            .get_or_init(|| async { self.identity_source.load().map(Arc::new) })
            .await
            .clone()
    }

    async fn read(&self, key: &KeyRef) -> Result<Arc<Key>, KeyError> {
        match key {
            KeyRef::Env(var) => {
                // The variable's name, never its value.
                tracing::info!("key `{key}`: read from the environment variable {var}");
                env_key(&self.env, var).map(Arc::new)
            }
            KeyRef::File(name) => {
                let dir = self.dir.clone()?;
                let path = dir.existing_key(name)?;
                let identity = self.identity().await?;
                let listed = dir
                    .read_recipients()
                    .ok()
                    .map(|list| identity.is_among(&list.recipients()));
                tracing::info!("key `{name}`: decrypting {}", path.display());
                keyfile::open(&identity, &path, listed).map(Arc::new)
            }
        }
    }
}

/// Adds a problem, unless the same key already has the same one (a file that
/// does not open, for each agent that uses it), or it is an identity problem
/// another key already reported (one missing identity is one problem, however
/// many files it cannot open).
fn push_once(problems: &mut Vec<KeyProblem>, problem: KeyProblem) {
    let identity = |e: &KeyError| {
        matches!(
            e,
            KeyError::NoIdentity { .. } | KeyError::BadIdentity { .. }
        )
    };
    let repeated = problems.iter().any(|p| {
        (p.key == problem.key && p.error.to_string() == problem.error.to_string())
            || (identity(&p.error) && identity(&problem.error))
    });
    if !repeated {
        problems.push(problem);
    }
}

/// A key from the environment variable `var`.
fn env_key(env: &Lookup, var: &str) -> Result<Key, KeyError> {
    let Some(value) = env(var) else {
        return Err(KeyError::EnvMissing { var: var.into() });
    };
    let value = value.into_string().map_err(|_| KeyError::EnvInvalid {
        var: var.into(),
        reason: "it is not UTF-8 text".into(),
    })?;
    let value = secrecy::zeroize::Zeroizing::new(value);
    // Only ASCII white space: an invisible character around a key is refused by name.
    let trimmed = value.trim_matches(|c: char| c.is_ascii_whitespace());
    if trimmed.is_empty() {
        return Err(KeyError::EnvMissing { var: var.into() });
    }
    check_key_text(trimmed).map_err(|reason| KeyError::EnvInvalid {
        var: var.into(),
        reason,
    })?;
    Ok(Key {
        api_key: ApiKey::new(trimmed.to_string()),
        provider: None,
        allow_hosts: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use secrecy::ExposeSecret;

    use super::*;
    use crate::keys::identity::generate;
    use crate::keys::recipients::Recipient;

    struct Fixture {
        _tmp: tempfile::TempDir,
        dir: KeysDir,
        identity: String,
        recipient: Recipient,
    }

    fn fixture() -> Fixture {
        let tmp = tempfile::tempdir().unwrap();
        let dir = KeysDir::at(&tmp.path().join(".byok"));
        std::fs::create_dir_all(dir.keys_path()).unwrap();
        let (identity, public) = generate();
        std::fs::write(dir.recipients_path(), format!("{public}\n")).unwrap();
        Fixture {
            _tmp: tmp,
            dir,
            identity: identity.expose_secret().to_string(),
            recipient: public.parse().unwrap(),
        }
    }

    impl Fixture {
        fn write_key(&self, name: &str, plain: &str) {
            let sealed =
                keyfile::encrypt(std::slice::from_ref(&self.recipient), plain.as_bytes()).unwrap();
            std::fs::write(self.dir.key_path(name), sealed).unwrap();
        }

        fn store(&self, vars: &[(&str, &str)], allow: &[&str]) -> KeyStore {
            let mut map: HashMap<String, OsString> = vars
                .iter()
                .map(|(k, v)| ((*k).to_string(), OsString::from(v)))
                .collect();
            map.insert("BYOK_FLOW_AGE_KEY".into(), self.identity.clone().into());
            let ids = map.clone();
            let allow: Vec<String> = allow.iter().map(|s| (*s).to_string()).collect();
            KeyStore::with_env(
                Ok(self.dir.clone()),
                IdentitySource::with_env(None, move |k| ids.get(k).cloned()),
                AllowHosts::parse(&allow, None).unwrap(),
                move |k| map.get(k).cloned(),
            )
        }
    }

    fn file(name: &str) -> KeyRef {
        KeyRef::File(name.into())
    }

    #[tokio::test]
    async fn decrypts_once_and_checks_the_host() {
        let f = fixture();
        f.write_key(
            "anthropic",
            "provider = \"anthropic\"\nkey = \"sk-ant-1\"\n",
        );
        let store = f.store(&[], &[]);
        let key = store
            .key_for(
                &file("anthropic"),
                "anthropic",
                "https://api.anthropic.com/v1/messages",
            )
            .await
            .unwrap();
        assert_eq!(key.expose_secret(), "sk-ant-1");
        // Cached: the file is no longer read.
        std::fs::remove_file(f.dir.key_path("anthropic")).unwrap();
        assert!(store.get(&file("anthropic")).await.is_ok());
        // The file's provider wins over the caller's: an Anthropic key never goes to OpenAI.
        let err = store
            .key_for(&file("anthropic"), "openai", "https://api.openai.com/v1")
            .await
            .unwrap_err();
        assert!(matches!(err, KeyError::HostRefused { .. }), "{err}");
        let err = store
            .key_for(&file("anthropic"), "anthropic", "https://evil.example/v1")
            .await
            .unwrap_err();
        assert!(err.to_string().contains("`evil.example`"), "{err}");
        assert!(
            err.hint().unwrap().contains("--allow-host evil.example"),
            "{:?}",
            err.hint()
        );
    }

    /// A destination allowed once is not parsed again for the same key, but
    /// every other key, provider and URL is checked on its own.
    #[tokio::test]
    async fn an_allowed_destination_is_remembered_only_for_what_allowed_it() {
        let f = fixture();
        f.write_key(
            "anthropic",
            "provider = \"anthropic\"\nkey = \"sk-ant-1\"\n",
        );
        let store = f.store(&[("OPENAI_KEY", "sk-env")], &["gateway.example"]);
        let env = KeyRef::Env("OPENAI_KEY".into());
        let allowed = [
            (
                env.clone(),
                "openai",
                "https://api.openai.com/v1/chat/completions",
            ),
            (
                env.clone(),
                "openai",
                "https://gateway.example/v1/chat/completions",
            ),
            (
                file("anthropic"),
                "anthropic",
                "https://api.anthropic.com/v1/messages",
            ),
            (
                file("anthropic"),
                "openai",
                "https://gateway.example/v1/chat/completions",
            ),
        ];
        for _ in 0..3 {
            for (key, provider, url) in &allowed {
                store.key_for(key, provider, url).await.unwrap();
            }
        }
        assert_eq!(store.passed.lock().unwrap().len(), 3);
        for (key, provider, url) in [
            // The URL an OpenAI key went to, for the Anthropic key: refused.
            (
                &file("anthropic"),
                "anthropic",
                "https://api.openai.com/v1/chat/completions",
            ),
            // The same key to the same provider's host, over plain HTTP.
            (&env, "openai", "http://api.openai.com/v1/chat/completions"),
            (
                &env,
                "anthropic",
                "https://api.openai.com/v1/chat/completions",
            ),
        ] {
            for _ in 0..2 {
                let err = store.key_for(key, provider, url).await.unwrap_err();
                assert!(matches!(err, KeyError::HostRefused { .. }), "{url}: {err}");
            }
        }
    }

    #[tokio::test]
    async fn the_read_hook_sees_each_key_once_before_it_is_used() {
        let f = fixture();
        f.write_key("openai", "sk-hooked");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let store = f
            .store(&[("MY_KEY", "sk-env-hooked")], &[])
            .on_read(move |key| {
                log.lock().unwrap().push(key.expose_secret().to_string());
            });
        for _ in 0..2 {
            store.get(&file("openai")).await.unwrap();
            store.get(&KeyRef::Env("MY_KEY".into())).await.unwrap();
        }
        assert!(store.get(&file("missing")).await.is_err());
        assert_eq!(*seen.lock().unwrap(), ["sk-hooked", "sk-env-hooked"]);
    }

    #[tokio::test]
    async fn one_store_serves_concurrent_tasks() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<KeyStore>();
        let f = fixture();
        f.write_key("openai", "sk-o");
        let store = Arc::new(f.store(&[], &[]));
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let store = store.clone();
                tokio::spawn(async move {
                    store
                        .key_for(&file("openai"), "openai", "https://api.openai.com/v1")
                        .await
                        .map(|k| k.expose_secret().to_string())
                })
            })
            .collect();
        for task in tasks {
            assert_eq!(task.await.unwrap().unwrap(), "sk-o");
        }
    }

    #[tokio::test]
    async fn file_allow_hosts_and_cli_hosts_widen_the_rule() {
        let f = fixture();
        f.write_key(
            "proxy",
            "key = \"sk-p\"\nallow_hosts = [\"proxy.example\"]\n",
        );
        f.write_key("bare", "sk-bare\n");
        let store = f.store(&[], &["cli.example"]);
        assert!(
            store
                .key_for(&file("proxy"), "corp", "https://proxy.example/v1")
                .await
                .is_ok()
        );
        assert!(
            store
                .key_for(&file("bare"), "corp", "https://cli.example/v1")
                .await
                .is_ok()
        );
        assert!(
            store
                .key_for(&file("bare"), "corp", "https://proxy.example/v1")
                .await
                .is_err()
        );
        // A bare key goes to the calling built-in provider's own host.
        assert!(
            store
                .key_for(&file("bare"), "groq", "https://api.groq.com/openai/v1")
                .await
                .is_ok()
        );
    }

    #[tokio::test]
    async fn env_keys_need_no_identity_and_follow_the_host_rule() {
        let f = fixture();
        let store = KeyStore::with_env(
            Err(KeyError::NoKeysDir { start: "/x".into() }),
            IdentitySource::with_env(None, |_| None),
            AllowHosts::default(),
            |k| (k == "MY_KEY").then(|| OsString::from("sk-env-1\n")),
        );
        let key = store
            .key_for(
                &KeyRef::Env("MY_KEY".into()),
                "openai",
                "https://api.openai.com/v1",
            )
            .await
            .unwrap();
        assert_eq!(key.expose_secret(), "sk-env-1");
        let err = store
            .key_for(
                &KeyRef::Env("MY_KEY".into()),
                "local",
                "http://127.0.0.1:9/v1",
            )
            .await
            .unwrap_err();
        assert!(matches!(err, KeyError::HostRefused { .. }), "{err}");
        let err = store.get(&KeyRef::Env("NOPE".into())).await.unwrap_err();
        assert!(matches!(err, KeyError::EnvMissing { .. }), "{err}");
        let err = store.get(&file("anthropic")).await.unwrap_err();
        assert!(matches!(err, KeyError::NoKeysDir { .. }), "{err}");
        drop(f);
    }

    #[tokio::test]
    async fn preflight_checks_every_use_as_the_call_will() {
        let f = fixture();
        f.write_key("anthropic", "provider = \"anthropic\"\nkey = \"sk-a\"\n");
        f.write_key(
            "proxy",
            "key = \"sk-p\"\nallow_hosts = [\"proxy.example\"]\n",
        );
        std::fs::write(f.dir.key_path("broken"), "not age").unwrap();
        let uses = |key: KeyRef, provider: &str, url: &str| KeyUse {
            key,
            provider: provider.into(),
            base_url: url.into(),
            agents: vec!["agent".into()],
            pointer: "/agents/agent/model".into(),
        };
        let all = vec![
            uses(file("anthropic"), "anthropic", "https://api.anthropic.com"),
            uses(file("missing"), "openai", "https://api.openai.com/v1"),
            uses(
                KeyRef::Env("UNSET".into()),
                "openai",
                "https://api.openai.com/v1",
            ),
            uses(KeyRef::Env("SET".into()), "local", "http://127.0.0.1:1/v1"),
            // Pinned to Anthropic by its file, called by OpenAI at OpenAI's own host.
            uses(file("anthropic"), "openai", "https://api.openai.com/v1"),
            uses(file("broken"), "corp", "https://proxy.example/v1"),
            uses(file("broken"), "other", "https://proxy.example/v1"),
        ];
        let store = f.store(&[("SET", "sk-set")], &[]);
        let problems = store.preflight(&all).await.unwrap_err();
        let kinds: Vec<String> = problems
            .iter()
            .map(|p| format!("{}: {}", p.key, p.error))
            .collect();
        assert_eq!(problems.len(), 5, "{kinds:#?}");
        assert!(matches!(problems[0].error, KeyError::KeyFileMissing { .. }));
        assert!(matches!(problems[1].error, KeyError::EnvMissing { .. }));
        assert!(matches!(problems[2].error, KeyError::HostRefused { .. }));
        assert!(
            matches!(&problems[3].error, KeyError::HostRefused { provider, .. } if provider == "anthropic"),
            "{kinds:#?}"
        );
        assert!(matches!(problems[4].error, KeyError::Corrupt { .. }));

        let ok = vec![
            uses(file("anthropic"), "anthropic", "https://api.anthropic.com"),
            uses(file("proxy"), "corp", "https://proxy.example/v1"),
        ];
        f.store(&[], &[]).preflight(&ok).await.unwrap();
    }

    #[tokio::test]
    async fn one_missing_identity_is_one_problem() {
        let f = fixture();
        f.write_key("a", "sk-aaaaaaaa");
        f.write_key("b", "sk-bbbbbbbb");
        let store = KeyStore::with_env(
            Ok(f.dir.clone()),
            IdentitySource::with_env(None, |_| None),
            AllowHosts::default(),
            |_| None,
        );
        let uses: Vec<KeyUse> = ["a", "b"]
            .iter()
            .map(|k| KeyUse {
                key: file(k),
                provider: "openai".into(),
                base_url: "https://api.openai.com/v1".into(),
                agents: vec![(*k).into()],
                pointer: String::new(),
            })
            .collect();
        let problems = store.preflight(&uses).await.unwrap_err();
        assert_eq!(problems.len(), 1);
        assert!(matches!(problems[0].error, KeyError::NoIdentity { .. }));
    }
}
