//! The age identity that decrypts key files: where it is looked for (SPEC §4's
//! order), how it is read (age `AGE-SECRET-KEY-1…` lines, or an OpenSSH
//! `ssh-ed25519` private key, asking for its passphrase on a terminal), and how
//! `keys init` makes a new one. The secret text is zeroed once parsed.

use std::ffi::OsString;
use std::fmt;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use secrecy::zeroize::Zeroizing;
use secrecy::{ExposeSecret, SecretString};

use super::error::KeyError;

/// `--identity`'s environment equivalents, in the order they are tried.
pub const ENV_AGE_KEY: &str = "BYOK_FLOW_AGE_KEY";
pub const ENV_AGE_KEY_FILE: &str = "BYOK_FLOW_AGE_KEY_FILE";
pub const ENV_SOPS_AGE_KEY: &str = "SOPS_AGE_KEY";
pub const ENV_SOPS_AGE_KEY_FILE: &str = "SOPS_AGE_KEY_FILE";

/// Identity files larger than this are refused (an identity is ~200 bytes).
const MAX_IDENTITY_BYTES: u64 = 64 * 1024;

type Lookup = Arc<dyn Fn(&str) -> Option<OsString> + Send + Sync>;

/// Where to look for the identity: `--identity`, then the environment, then the
/// default file. Nothing is read until [`IdentitySource::load`].
#[derive(Clone)]
pub struct IdentitySource {
    flag: Option<PathBuf>,
    env: Lookup,
}

impl fmt::Debug for IdentitySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdentitySource")
            .field("flag", &self.flag)
            .finish_non_exhaustive()
    }
}

/// One place an identity can come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// `--identity FILE`.
    Flag(PathBuf),
    /// An environment variable holding the identity's text.
    EnvText(&'static str),
    /// An environment variable holding a file's path.
    EnvFile(&'static str, PathBuf),
    /// `~/.config/byok-flow/identity.txt`.
    Default(PathBuf),
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Place::Flag(p) => write!(f, "`--identity {}`", p.display()),
            Place::EnvText(var) => write!(f, "`{var}`"),
            Place::EnvFile(var, p) => write!(f, "`{var}` (`{}`)", p.display()),
            Place::Default(p) => write!(f, "`{}`", p.display()),
        }
    }
}

impl IdentitySource {
    /// From `--identity` and the process environment.
    pub fn new(flag: Option<PathBuf>) -> Self {
        IdentitySource {
            flag,
            env: Arc::new(|name| std::env::var_os(name)),
        }
    }

    /// From `--identity` and a given environment (for tests).
    pub fn with_env(
        flag: Option<PathBuf>,
        env: impl Fn(&str) -> Option<OsString> + Send + Sync + 'static,
    ) -> Self {
        IdentitySource {
            flag,
            env: Arc::new(env),
        }
    }

    /// `~/.config/byok-flow/identity.txt`, where `keys init` puts a new identity.
    pub fn default_path(&self) -> Option<PathBuf> {
        let home = (self.env)("HOME")
            .or_else(|| (self.env)("USERPROFILE"))
            .filter(|h| !h.is_empty())?;
        Some(
            PathBuf::from(home)
                .join(".config")
                .join("byok-flow")
                .join("identity.txt"),
        )
    }

    /// The place to use (the first that is set) and the report of every place looked at.
    fn resolve(&self) -> (Option<Place>, Vec<(String, String)>) {
        let mut tried = Vec::new();
        let mut chosen = None;
        let mut note = |label: String, status: &str, place: Option<Place>| {
            let status = if chosen.is_some() && place.is_some() {
                format!("{status} (not used: an earlier place is set)")
            } else {
                status.to_string()
            };
            tried.push((label, status));
            if chosen.is_none() {
                chosen = place;
            }
        };
        match &self.flag {
            Some(p) => note("--identity".into(), "given", Some(Place::Flag(p.clone()))),
            None => note("--identity".into(), "not given", None),
        }
        for (text_var, file_var) in [
            (ENV_AGE_KEY, ENV_AGE_KEY_FILE),
            (ENV_SOPS_AGE_KEY, ENV_SOPS_AGE_KEY_FILE),
        ] {
            match (self.env)(text_var).filter(|v| !v.is_empty()) {
                Some(_) => note(text_var.into(), "set", Some(Place::EnvText(text_var))),
                None => note(text_var.into(), "not set", None),
            }
            match (self.env)(file_var).filter(|v| !v.is_empty()) {
                Some(p) => note(
                    file_var.into(),
                    "set",
                    Some(Place::EnvFile(file_var, PathBuf::from(p))),
                ),
                None => note(file_var.into(), "not set", None),
            }
        }
        match self.default_path() {
            Some(p) if p.exists() => {
                note(p.display().to_string(), "exists", Some(Place::Default(p)));
            }
            Some(p) => note(p.display().to_string(), "no such file", None),
            None => note(
                "~/.config/byok-flow/identity.txt".into(),
                "HOME is not set",
                None,
            ),
        }
        (chosen, tried)
    }

    /// Finds and reads the identity.
    pub fn load(&self) -> Result<Identity, KeyError> {
        let (place, tried) = self.resolve();
        let Some(place) = place else {
            return Err(KeyError::NoIdentity { tried });
        };
        let text = match &place {
            Place::EnvText(var) => {
                let value = (self.env)(var).unwrap_or_default();
                let text = value
                    .into_string()
                    .map_err(|_| bad(&place, "it is not UTF-8 text"))?;
                Zeroizing::new(text)
            }
            Place::Flag(path) | Place::EnvFile(_, path) | Place::Default(path) => {
                read_identity_file(&place, path)?
            }
        };
        Identity::parse(&text, place)
    }
}

fn bad(place: &Place, reason: impl Into<String>) -> KeyError {
    KeyError::BadIdentity {
        place: place.to_string(),
        reason: reason.into(),
        hint: "an identity is the `AGE-SECRET-KEY-1…` text from `byok-flow keys init` (or `age-keygen`), or an unencrypted or passphrase-protected `ssh-ed25519` private key".into(),
    }
}

fn read_identity_file(place: &Place, path: &Path) -> Result<Zeroizing<String>, KeyError> {
    use std::io::Read;
    // Not `File::open`: a FIFO would block until something writes to it.
    let file = crate::read::open(path).map_err(|e| match e {
        e if e.is_not_found() => KeyError::BadIdentity {
            place: place.to_string(),
            reason: "the file does not exist".into(),
            hint: "run `byok-flow keys init` to make an identity, or fix the path".into(),
        },
        e => KeyError::io("read the identity file", path, e.into()),
    })?;
    warn_if_readable_by_others(&file, path);
    let mut bytes = Zeroizing::new(Vec::new());
    file.take(MAX_IDENTITY_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| KeyError::io("read the identity file", path, e))?;
    if bytes.len() as u64 > MAX_IDENTITY_BYTES {
        return Err(bad(place, "the file is too large to be an identity"));
    }
    let text = std::str::from_utf8(&bytes).map_err(|_| bad(place, "it is not UTF-8 text"))?;
    Ok(Zeroizing::new(text.to_string()))
}

#[cfg(unix)]
fn warn_if_readable_by_others(file: &std::fs::File, path: &Path) {
    if let Some(advice) = file.metadata().ok().and_then(|m| exposure(&m, path)) {
        tracing::warn!("{advice}");
    }
}

#[cfg(not(unix))]
fn warn_if_readable_by_others(_file: &std::fs::File, _path: &Path) {}

/// What to say about an identity file others may read, if anything: `chmod`
/// only for a regular file the user owns, in a folder that is not shared; a
/// pipe or a device (`--identity <(pass show age)`) gets nothing, and a file
/// the user cannot fix with `chmod` gets told to move.
#[cfg(unix)]
fn exposure(meta: &std::fs::Metadata, path: &Path) -> Option<String> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    if !meta.is_file() {
        return None;
    }
    let mode = meta.permissions().mode() & 0o777;
    let shown = path.display();
    let folder = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let shared = std::fs::metadata(folder).is_ok_and(|m| m.permissions().mode() & 0o002 != 0);
    let move_it =
        "move it to a folder only you can read, such as `~/.config/byok-flow/` (mode 600)";
    if shared {
        return Some(format!(
            "the identity file `{shown}` is in `{}`, a folder anyone on this machine can write to; {move_it}",
            folder.display()
        ));
    }
    if mode.trailing_zeros() >= 6 {
        return None;
    }
    if meta.uid() != rustix::process::getuid().as_raw() {
        return Some(format!(
            "the identity file `{shown}` can be read by others (mode {mode:o}) and belongs to another user; {move_it}"
        ));
    }
    Some(format!(
        "the identity file `{shown}` can be read by others (mode {mode:o}); run `chmod 600 {shown}`"
    ))
}

/// A loaded identity: the keys that can unwrap a file key, and their public sides.
pub struct Identity {
    keys: Vec<Box<dyn age::Identity + Send + Sync>>,
    public: Vec<String>,
    place: Place,
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("public", &self.public)
            .field("place", &self.place)
            .finish_non_exhaustive()
    }
}

impl Identity {
    /// Parses identity text: age identity lines or one OpenSSH private key.
    pub fn parse(text: &str, place: Place) -> Result<Identity, KeyError> {
        if text.contains("-----BEGIN") {
            return parse_ssh(text, place);
        }
        if text.trim_start().starts_with("age-encryption.org/") {
            return Err(encrypted_file(text, &place));
        }
        let mut keys: Vec<Box<dyn age::Identity + Send + Sync>> = Vec::new();
        let mut public = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if line.starts_with("AGE-PLUGIN-") {
                return Err(bad(
                    &place,
                    format!(
                        "line {} is an age plugin identity, which byok-flow does not support",
                        i + 1
                    ),
                ));
            }
            // Never quote the line: it may be a secret.
            let key: age::x25519::Identity = line
                .parse()
                .map_err(|_| bad(&place, not_an_identity(line, i + 1)))?;
            public.push(key.to_public().to_string());
            keys.push(Box::new(key));
        }
        if keys.is_empty() {
            return Err(bad(&place, "it holds no identity"));
        }
        Ok(Identity {
            keys,
            public,
            place,
        })
    }

    /// The identities, for the age decryptor.
    pub(crate) fn age_identities(&self) -> impl Iterator<Item = &dyn age::Identity> {
        self.keys.iter().map(|k| k.as_ref() as &dyn age::Identity)
    }

    /// The public recipients of this identity (`age1…` or `ssh-ed25519 …`).
    pub fn public(&self) -> &[String] {
        &self.public
    }

    /// Whether one of this identity's recipients is in `list`.
    pub fn is_among(&self, list: &[super::recipients::Recipient]) -> bool {
        list.iter().any(|r| self.public.contains(&r.canonical()))
    }

    /// Where it came from.
    pub fn place(&self) -> &Place {
        &self.place
    }
}

fn parse_ssh(text: &str, place: Place) -> Result<Identity, KeyError> {
    use age::ssh::{Identity as Ssh, Recipient as SshRecipient, UnsupportedKey};
    if text.contains("BEGIN RSA PRIVATE KEY") {
        return Err(rsa_refused(&place));
    }
    if text.contains("BEGIN AGE ENCRYPTED FILE") {
        return Err(encrypted_file(text, &place));
    }
    let ssh = Ssh::from_buffer(text.as_bytes(), None)
        .map_err(|_| bad(&place, "it is not a valid OpenSSH private key"))?;
    let public = match SshRecipient::try_from(ssh.clone()) {
        Ok(r @ SshRecipient::SshEd25519(..)) => r.to_string(),
        Ok(SshRecipient::SshRsa(..)) => return Err(rsa_refused(&place)),
        Err(_) => {
            let reason = match &ssh {
                Ssh::Unsupported(UnsupportedKey::Hardware(k) | UnsupportedKey::Type(k)) => {
                    format!("`{k}` SSH keys are not supported; use ssh-ed25519")
                }
                Ssh::Unsupported(UnsupportedKey::EncryptedSsh(c)) => {
                    format!("the SSH key is encrypted with `{c}`, which is not supported")
                }
                _ => "this kind of SSH key is not supported; use ssh-ed25519".into(),
            };
            return Err(bad(&place, reason));
        }
    };
    let key: Box<dyn age::Identity + Send + Sync> = match ssh {
        Ssh::Unencrypted(key) => Box::new(Ssh::Unencrypted(key)),
        Ssh::Encrypted(encrypted) => {
            let passphrase = ask_passphrase(&place)?;
            let key = encrypted
                .decrypt(passphrase)
                .map_err(|_| KeyError::BadIdentity {
                    place: place.to_string(),
                    reason: "the passphrase is wrong".into(),
                    hint: "try again; the passphrase is the one `ssh-keygen` asked for".into(),
                })?;
            Box::new(Ssh::Unencrypted(key))
        }
        Ssh::Unsupported(_) => return Err(bad(&place, "this kind of SSH key is not supported")),
    };
    Ok(Identity {
        keys: vec![key],
        public: vec![public],
        place,
    })
}

/// Why a line is not an age identity, when it is something else we know: the
/// public half of a key (a recipient, an SSH `.pub` line). Never quotes it.
fn not_an_identity(line: &str, number: usize) -> String {
    if let Some((at, c)) = line.chars().enumerate().find(|(_, c)| !c.is_ascii()) {
        return format!(
            "line {number}, character {} is {}; an identity is plain ASCII",
            at + 1,
            super::secret::describe_char(c)
        );
    }
    let public = if line.starts_with("age1") {
        Some(
            "an age recipient (`age1…`): the public half of an identity; give the identity itself (`AGE-SECRET-KEY-1…`, the file `byok-flow keys init` made)",
        )
    } else if line.starts_with("ssh-") || line.starts_with("ecdsa-") {
        Some("an SSH public key (a `.pub` file); give the private key, the file without `.pub`")
    } else {
        None
    };
    match public {
        Some(what) => format!("line {number} is {what}"),
        None => format!("line {number} is not an age identity"),
    }
}

/// An age-encrypted file given as the identity: a passphrase-protected identity
/// (which we do not take), or, usually, a key file from `.byok/keys/`.
fn encrypted_file(text: &str, place: &Place) -> KeyError {
    if super::keyfile::is_passphrase_encrypted(text.as_bytes()) {
        return bad(
            place,
            "it is a passphrase-encrypted age identity, which byok-flow does not support",
        );
    }
    KeyError::BadIdentity {
        place: place.to_string(),
        reason: "it is an age-encrypted file, like a key file in `.byok/keys/`, not an identity".into(),
        hint: "the identity is what opens the key files: the `AGE-SECRET-KEY-1…` file that `byok-flow keys init` made (`~/.config/byok-flow/identity.txt`), or your `ssh-ed25519` private key".into(),
    }
}

fn rsa_refused(place: &Place) -> KeyError {
    KeyError::BadIdentity {
        place: place.to_string(),
        reason: "it is an RSA key; byok-flow does not decrypt with RSA keys (RUSTSEC-2023-0071, a timing side channel)".into(),
        hint: "use an age identity (`byok-flow keys init`) or an ed25519 SSH key (`ssh-keygen -t ed25519`)".into(),
    }
}

/// Asks for an SSH key's passphrase on the terminal, if there is one.
fn ask_passphrase(place: &Place) -> Result<SecretString, KeyError> {
    if !(std::io::stdin().is_terminal() || std::io::stderr().is_terminal()) {
        return Err(KeyError::BadIdentity {
            place: place.to_string(),
            reason: "the SSH key is passphrase-protected and there is no terminal to ask for the passphrase".into(),
            hint: "run in a terminal, or (in CI) use an age identity without a passphrase in `BYOK_FLOW_AGE_KEY`".into(),
        });
    }
    let what = match place {
        Place::Flag(p) | Place::EnvFile(_, p) | Place::Default(p) => p.display().to_string(),
        Place::EnvText(var) => format!("in {var}"),
    };
    let passphrase = rpassword::prompt_password(format!("Passphrase for the SSH key {what}: "))
        .map_err(|e| KeyError::BadIdentity {
            place: place.to_string(),
            reason: format!("cannot read the passphrase: {e}"),
            hint: "run in a terminal".into(),
        })?;
    Ok(SecretString::from(passphrase))
}

/// A new age X25519 identity: the file's text (as `age-keygen` writes it) and its
/// public recipient.
pub fn generate() -> (SecretString, String) {
    let key = age::x25519::Identity::generate();
    let public = key.to_public().to_string();
    let created = humantime::format_rfc3339_seconds(std::time::SystemTime::now());
    let text = format!(
        "# created: {created}\n# public key: {public}\n{}\n",
        key.to_string().expose_secret()
    );
    (SecretString::from(text), public)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::keys::recipients::tests::ed25519_keypair;

    fn source(flag: Option<&str>, vars: &[(&str, &str)]) -> IdentitySource {
        let map: HashMap<String, OsString> = vars
            .iter()
            .map(|(k, v)| ((*k).to_string(), OsString::from(v)))
            .collect();
        IdentitySource::with_env(flag.map(PathBuf::from), move |k| map.get(k).cloned())
    }

    #[test]
    fn order_is_flag_env_sops_default() {
        let (text, _) = generate();
        let secret = text.expose_secret().to_string();
        let all = [
            ("BYOK_FLOW_AGE_KEY", secret.as_str()),
            ("BYOK_FLOW_AGE_KEY_FILE", "/b"),
            ("SOPS_AGE_KEY", "x"),
            ("SOPS_AGE_KEY_FILE", "/d"),
        ];
        assert_eq!(
            source(Some("/a"), &all).resolve().0,
            Some(Place::Flag("/a".into()))
        );
        assert_eq!(
            source(None, &all).resolve().0,
            Some(Place::EnvText(ENV_AGE_KEY))
        );
        assert_eq!(
            source(None, &all[1..]).resolve().0,
            Some(Place::EnvFile(ENV_AGE_KEY_FILE, "/b".into()))
        );
        assert_eq!(
            source(None, &all[2..]).resolve().0,
            Some(Place::EnvText(ENV_SOPS_AGE_KEY))
        );
        assert_eq!(
            source(None, &all[3..]).resolve().0,
            Some(Place::EnvFile(ENV_SOPS_AGE_KEY_FILE, "/d".into()))
        );
        let id = source(None, &all).load().unwrap();
        assert_eq!(id.place(), &Place::EnvText(ENV_AGE_KEY));
        assert!(id.public()[0].starts_with("age1"));
    }

    #[test]
    fn the_default_file_is_last() {
        let home = tempfile::tempdir().unwrap();
        let home_str = home.path().to_str().unwrap();
        let err = source(None, &[("HOME", home_str)]).load().unwrap_err();
        let text = err.to_string();
        for place in [
            "--identity",
            ENV_AGE_KEY,
            ENV_AGE_KEY_FILE,
            ENV_SOPS_AGE_KEY,
            ENV_SOPS_AGE_KEY_FILE,
            "identity.txt",
        ] {
            assert!(text.contains(place), "{place} missing from:\n{text}");
        }
        assert!(err.hint().unwrap().contains("byok-flow keys init"));
        let path = source(None, &[("HOME", home_str)]).default_path().unwrap();
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, generate().0.expose_secret()).unwrap();
        let id = source(None, &[("HOME", home_str)]).load().unwrap();
        assert_eq!(id.place(), &Place::Default(path));
    }

    #[test]
    fn bad_identities_never_echo_their_text() {
        let canary = "AGE-SECRET-KEY-1CANARYCANARYCANARY";
        let err = source(None, &[("BYOK_FLOW_AGE_KEY", canary)])
            .load()
            .unwrap_err();
        let shown = format!("{err} {:?} {}", err, err.hint().unwrap_or_default());
        assert!(!shown.contains("CANARY"), "{shown}");
        assert!(shown.contains("line 1 is not an age identity"), "{shown}");
        let err = source(None, &[("BYOK_FLOW_AGE_KEY", "# only a comment\n")])
            .load()
            .unwrap_err();
        assert!(err.to_string().contains("holds no identity"), "{err}");
    }

    #[test]
    fn ssh_ed25519_identities_load_and_rsa_is_refused() {
        let (private, public) = ed25519_keypair("me@host");
        let id = Identity::parse(&private, Place::EnvText(ENV_AGE_KEY)).unwrap();
        assert_eq!(format!("{} me@host", id.public()[0]), public);
        let rsa = "-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----\n";
        let err = Identity::parse(rsa, Place::EnvText(ENV_AGE_KEY)).unwrap_err();
        assert!(err.to_string().contains("RUSTSEC-2023-0071"), "{err}");
    }

    #[test]
    fn what_is_not_an_identity_is_named() {
        let (_, public) = generate();
        let (_, ssh_public) = ed25519_keypair("me@host");
        let (me, recipient) = {
            let (text, public) = generate();
            (text, public.parse().unwrap())
        };
        let key_file = crate::keys::keyfile::encrypt(&[recipient], b"sk-key-file").unwrap();
        let key_file = String::from_utf8(key_file).unwrap();
        for (text, want) in [
            (public.as_str(), "line 1 is an age recipient"),
            (ssh_public.as_str(), "line 1 is an SSH public key"),
            (
                key_file.as_str(),
                "it is an age-encrypted file, like a key file",
            ),
            (
                "\u{feff}AGE-SECRET-KEY-1QQQ",
                "line 1, character 1 is U+FEFF (a byte-order mark",
            ),
        ] {
            let err = Identity::parse(text, Place::Flag("x".into())).unwrap_err();
            assert!(err.to_string().contains(want), "{err}");
        }
        drop(me);
    }

    #[cfg(unix)]
    #[test]
    fn chmod_is_advised_only_for_a_private_file_of_ones_own() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("identity.txt");
        std::fs::write(&file, "x").unwrap();
        let set = |path: &Path, mode| {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
        };
        let advice = |path: &Path| exposure(&std::fs::metadata(path).unwrap(), path);
        set(&file, 0o600);
        assert_eq!(advice(&file), None);
        set(&file, 0o644);
        assert!(advice(&file).unwrap().contains("run `chmod 600"));
        // A device or a pipe: nothing to advise.
        assert_eq!(advice(Path::new("/dev/null")), None);
        // A folder anyone can write to: move it, whatever its mode.
        set(tmp.path(), 0o777);
        set(&file, 0o600);
        let said = advice(&file).unwrap();
        assert!(
            said.contains("a folder anyone on this machine can write to")
                && !said.contains("chmod"),
            "{said}"
        );
        set(tmp.path(), 0o700);
    }

    #[test]
    fn generated_identities_parse_back() {
        let (text, public) = generate();
        assert!(
            text.expose_secret()
                .contains(&format!("# public key: {public}"))
        );
        let id = Identity::parse(text.expose_secret(), Place::Flag("x".into())).unwrap();
        assert_eq!(id.public(), [public]);
    }
}
