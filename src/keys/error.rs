//! [`KeyError`]: everything that can go wrong with keys, identities and
//! recipients. Each error says what is wrong ([`Display`](std::fmt::Display)) and
//! what to do ([`KeyError::hint`]). No variant ever holds a key or an identity's
//! secret; the exit code for each lives in `crate::error`.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use super::hosts::HostError;
use super::recipients::RecipientError;

/// A key, identity or recipients problem.
#[derive(Debug, Clone, thiserror::Error)]
pub enum KeyError {
    /// No `.byok/` above the starting folder.
    #[error("no `.byok/` folder in `{}` or any folder above it", start.display())]
    NoKeysDir { start: PathBuf },
    /// `--keys DIR` is not a folder.
    #[error("the keys folder `{}` does not exist", path.display())]
    KeysDirMissing { path: PathBuf },
    /// No `.byok/recipients`.
    #[error("`{}` does not exist", path.display())]
    NoRecipientsFile { path: PathBuf },
    /// `.byok/recipients` has only comments.
    #[error("`{}` lists no recipients, so no one could open a key encrypted to it", path.display())]
    NoRecipients { path: PathBuf },
    /// A line of `.byok/recipients` is not a recipient we take.
    #[error("{}:{line}: {error}", path.display())]
    BadRecipientLine {
        path: PathBuf,
        line: usize,
        error: RecipientError,
    },
    /// A recipient given on the command line is not one we take.
    #[error("`{text}` is not a recipient byok-flow takes: {error}")]
    BadRecipientArg { text: String, error: RecipientError },
    /// The recipient to remove is not listed.
    #[error("`{text}` is not in `{}`", path.display())]
    RecipientNotListed { text: String, path: PathBuf },
    /// Removing would leave no recipient.
    #[error("`{text}` is the last recipient in `{}`; without it no one could open the keys", path.display())]
    LastRecipient { text: String, path: PathBuf },
    /// A key name that is not an identifier (could escape `.byok/keys/`).
    #[error("`{name}` is not a key name: use letters, digits, `_` and `-`")]
    BadName { name: String },
    /// A key name that is, by the look of it, an API key itself (pasted where
    /// its name goes). Never quoted: the message must not spread it further.
    #[error("this key name looks like an API key itself, not the name of a key file")]
    LooksLikeKey,
    /// `env:` followed by something that is not a variable name.
    #[error(
        "`{text}` is not a key reference: after `env:` write a variable name (letters, digits, `_`)"
    )]
    BadEnvName { text: String },
    /// `env:` names a variable that holds an age identity.
    #[error(
        "`env:{var}` is where your age identity is kept, not an API key: it opens every key file, and is never sent"
    )]
    IdentityEnv { var: String },
    /// The key file a workflow needs is not there.
    #[error("key `{name}` has no file: `{}` does not exist", path.display())]
    KeyFileMissing {
        name: String,
        path: PathBuf,
        available: Vec<String>,
    },
    /// A path in `.byok/` that is not a regular file inside it (a link, a folder…).
    #[error("`{}` is {what}; byok-flow reads only regular files inside `.byok/`", path.display())]
    NotAKeyFile {
        path: PathBuf,
        /// What it is instead, in words.
        what: String,
        /// It is a link, or leads outside `.byok/` through one.
        link: bool,
    },
    /// `keys add` for a name that exists, without `--replace`.
    #[error("key `{name}` already exists (`{}`)", path.display())]
    KeyFileExists { name: String, path: PathBuf },
    /// `key: env:VAR` and `VAR` is unset or empty.
    #[error("the environment variable `{var}` (from `key: env:{var}`) is not set")]
    EnvMissing { var: String },
    /// `key: env:VAR` and the value cannot be a key.
    #[error("the environment variable `{var}` cannot be used as a key: {reason}")]
    EnvInvalid { var: String, reason: String },
    /// Reading or writing a file failed.
    #[error("cannot {action} `{}`: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: Arc<io::Error>,
    },
    /// No identity in any of the places SPEC §4 lists.
    #[error("{}", no_identity(tried))]
    NoIdentity { tried: Vec<(String, String)> },
    /// The identity that was found cannot be used.
    #[error("the age identity from {place} cannot be used: {reason}")]
    BadIdentity {
        place: String,
        reason: String,
        hint: String,
    },
    /// `keys init` refuses to overwrite an identity (only for an unusable one).
    #[error("`{}` exists and is not an age identity byok-flow can use: {reason}", path.display())]
    IdentityExists { path: PathBuf, reason: String },
    /// The file is not encrypted to the identity in use.
    #[error("{}", wrong_identity(path, place, public))]
    WrongIdentity {
        path: PathBuf,
        place: String,
        /// The identity's public recipients (`age1…`, `ssh-ed25519 …`).
        public: Vec<String>,
        /// Whether one of them is in `.byok/recipients` (`None`: unknown).
        listed: Option<bool>,
    },
    /// The file is damaged, cut short, or not an age file.
    #[error("`{}` cannot be decrypted: {reason}", path.display())]
    Corrupt { path: PathBuf, reason: String },
    /// The file decrypts, but what is inside is not a key.
    #[error("`{}` opened, but it does not hold a key: {reason}", path.display())]
    BadPlaintext { path: PathBuf, reason: String },
    /// `keys add` got unusable input.
    #[error("the key read from {source_name} cannot be used: {reason}")]
    BadInput {
        source_name: &'static str,
        reason: String,
    },
    /// A `--allow-host` / `allow_hosts` entry is malformed.
    #[error("{0}")]
    BadHostPattern(HostError),
    /// A key would go somewhere it may not.
    #[error("refusing to send key `{key}` (provider `{provider}`): {error}")]
    HostRefused {
        key: String,
        provider: String,
        error: HostError,
    },
    /// Re-encryption stopped part way.
    #[error("re-encryption stopped after {done} of {total} key files: {reason}")]
    Interrupted {
        done: usize,
        total: usize,
        reason: String,
    },
}

impl KeyError {
    /// An I/O error on a path.
    pub fn io(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        KeyError::Io {
            action,
            path: path.into(),
            source: Arc::new(source),
        }
    }

    /// What to do about it.
    pub fn hint(&self) -> Option<String> {
        let text = match self {
            KeyError::NoKeysDir { .. } => {
                "run `byok-flow keys init --add-recipient` at the root of your repository, or pass `--keys DIR`".into()
            }
            KeyError::KeysDirMissing { .. } => "pass the path of an existing `.byok` folder".into(),
            KeyError::NoRecipientsFile { .. } | KeyError::NoRecipients { .. } => {
                "run `byok-flow keys init --add-recipient` to make an identity and list it, or `byok-flow keys recipients add age1…`".into()
            }
            KeyError::BadRecipientLine { error, .. } | KeyError::BadRecipientArg { error, .. } => {
                recipient_hint(error).into()
            }
            KeyError::RecipientNotListed { .. } => "see the list with `byok-flow keys recipients list`".into(),
            KeyError::LastRecipient { .. } => "add the new recipient first, then remove this one".into(),
            KeyError::IdentityEnv { .. } => {
                "name the variable that holds the provider's API key, like `env:OPENAI_API_KEY`".into()
            }
            KeyError::BadName { .. } | KeyError::BadEnvName { .. } => {
                "write a key file name like `anthropic`, or `env:VARIABLE`".into()
            }
            KeyError::LooksLikeKey => {
                "a key never goes in a workflow or on the command line: give it a name and add it with `byok-flow keys add NAME` (it reads the key from stdin), then write `key: NAME`; if this file or command was shared, rotate the key at the provider".into()
            }
            KeyError::KeyFileMissing { name, available, .. } => {
                let have = if available.is_empty() {
                    "there are no key files yet".to_string()
                } else {
                    crate::suggest::Names::new(available.iter().map(String::as_str))
                        .hint(name, "key files")
                };
                format!("add it with `byok-flow keys add {name} < key.txt` (or paste it when asked); {have}")
            }
            KeyError::NotAKeyFile { path, link: true, .. } => {
                let fix = if path.file_name().is_some_and(|n| n == "recipients") {
                    "put the file itself there, not a link".to_string()
                } else if path.is_symlink() && path.extension().is_some_and(|e| e == "age") {
                    let name = path.file_stem().map(|n| n.to_string_lossy()).unwrap_or_default();
                    format!("replace the link with the key itself: `byok-flow keys rm {name}` removes the link, then `byok-flow keys add {name}` (a key several projects use is added to each)")
                } else {
                    "make `.byok/keys` a folder of its own, not a link, and add its keys with `byok-flow keys add NAME`".to_string()
                };
                format!("byok-flow never follows a link in `.byok/`: a committed link could send another project's key, or let others list themselves; {fix}")
            }
            KeyError::NotAKeyFile { .. } => {
                "move it away: a key file is a regular file made by `byok-flow keys add NAME`".into()
            }
            KeyError::KeyFileExists { name, .. } => {
                format!("to rotate it, run `byok-flow keys add {name} --replace`")
            }
            KeyError::EnvMissing { var } => format!("set `{var}` to the API key (for example from your CI's secret store)"),
            KeyError::EnvInvalid { var, .. } => format!("set `{var}` to the API key alone, on one line"),
            KeyError::Io { .. } | KeyError::Interrupted { .. } => return self.io_hint(),
            KeyError::NoIdentity { .. } => {
                "run `byok-flow keys init` to make an identity, then ask a teammate to run \
                 `byok-flow keys recipients add <your age1… recipient>`; in CI, put the identity's \
                 text in the `BYOK_FLOW_AGE_KEY` secret"
                    .into()
            }
            KeyError::BadIdentity { hint, .. } => hint.clone(),
            KeyError::IdentityExists { .. } => {
                "byok-flow never overwrites an identity file: move it away, or pass `--identity` with another path".into()
            }
            KeyError::WrongIdentity { public, listed, .. } => {
                let me = public.first().map_or("<your recipient>", String::as_str);
                let hint = match listed {
                    Some(true) => format!(
                        "you are in `.byok/recipients`, but this file was encrypted before you were added: \
                         someone who can open it runs `byok-flow keys recipients add {me}` to re-encrypt every key file"
                    ),
                    _ => format!(
                        "ask someone who can open the keys to run `byok-flow keys recipients add {me}`, \
                         or use the right identity with `--identity FILE` or `BYOK_FLOW_AGE_KEY`"
                    ),
                };
                // age cannot tell a damaged recipient line from someone else's.
                format!("{hint}; if it did open before, the file may be damaged: compare it with git")
            }
            KeyError::Corrupt { .. } => {
                "restore the file from git (`git checkout -- FILE`), or ask its owner to add the key again with `byok-flow keys add NAME --replace`".into()
            }
            KeyError::BadPlaintext { .. } => {
                "a key file holds the bare key, or TOML with `key = \"…\"` and optional `provider` and `allow_hosts`; write it again with `byok-flow keys add NAME --replace`".into()
            }
            KeyError::BadInput { .. } => "pipe the key alone, e.g. `byok-flow keys add NAME < key.txt`, or paste it when asked".into(),
            KeyError::BadHostPattern(_) => "write a host like `api.example.com`, `api.example.com:8443` or `*.example.com`".into(),
            KeyError::HostRefused { key, provider, error } => host_hint(key, provider, error),
        };
        Some(text)
    }

    fn io_hint(&self) -> Option<String> {
        match self {
            KeyError::Interrupted { .. } => Some(
                "every key file is still readable by the old or the new recipients; run the same command again to finish".into(),
            ),
            KeyError::Io { source, .. } if source.kind() == io::ErrorKind::PermissionDenied => {
                Some("check the file's permissions".into())
            }
            _ => None,
        }
    }
}

fn recipient_hint(error: &RecipientError) -> &'static str {
    match error {
        RecipientError::Rsa | RecipientError::UnsupportedSsh(_) => {
            "make an ed25519 key (`ssh-keygen -t ed25519`) or an age identity (`byok-flow keys init`) and list its public key instead"
        }
        RecipientError::Plugin(_) => {
            "make an age identity with `byok-flow keys init` and list its `age1…` recipient"
        }
        RecipientError::Trailing => "write `# name` on the line above the recipient",
        RecipientError::Character { .. } => {
            "delete the line and paste the recipient again, or type it: recipients are plain ASCII"
        }
        RecipientError::Invalid(_) => {
            "a recipient is an `age1…` string (from `byok-flow keys init` or `age-keygen -y`) or an `ssh-ed25519 AAAA…` public key line"
        }
    }
}

fn host_hint(key: &str, provider: &str, error: &HostError) -> String {
    match error {
        HostError::NotAllowed { host, .. } | HostError::Loopback { host } => {
            let file = if key.starts_with("env:") {
                String::new()
            } else {
                format!(
                    ", or let the key's owner record it in the key file: \
                     `byok-flow keys add {key} --replace --provider {provider} --allow-host {host}`"
                )
            };
            let otherwise = if matches!(error, HostError::Loopback { .. }) {
                "a local server that takes no key needs `key: none`"
            } else {
                "otherwise fix the provider's `base_url`"
            };
            format!(
                "if you trust `{host}` with this key, pass `--allow-host {host}` (or set BYOK_FLOW_ALLOW_HOSTS){file}; \
                 {otherwise}"
            )
        }
        HostError::PlainHttp { .. } | HostError::Scheme { .. } => {
            "use an `https://` base URL (plain `http://` is allowed only to 127.0.0.1, ::1 and localhost)".into()
        }
        HostError::UserInfo { .. } => "remove the `user@` part from the provider's `base_url`".into(),
        HostError::InvalidUrl { .. } | HostError::BadPattern { .. } => "fix the provider's `base_url`".into(),
    }
}

/// The "no identity" message: every place tried, in order, and what was there.
fn no_identity(tried: &[(String, String)]) -> String {
    let mut out = String::from("no age identity found to decrypt the key files; tried, in order:");
    let width = tried.iter().map(|(p, _)| p.len()).max().unwrap_or(0);
    for (place, status) in tried {
        out.push_str(&format!("\n    {place:<width$}  {status}"));
    }
    out
}

/// The "wrong identity" message.
fn wrong_identity(path: &std::path::Path, place: &str, public: &[String]) -> String {
    let mut out = format!(
        "`{}` is not encrypted to the age identity from {place}",
        path.display()
    );
    if !public.is_empty() {
        out.push_str(&format!(" (its recipient: {})", public.join(", ")));
    }
    out
}
