//! `.byok/keys/NAME.age`: one API key, ASCII-armored age encrypted to every
//! recipient. The plaintext is the bare key (what `age -R .byok/recipients -a`
//! makes from a pasted key) or TOML with `key`, and optional `provider` and
//! `allow_hosts`. Errors describe the file, never its contents.

use std::io::{BufRead, Read, Write};
use std::path::Path;

use age::armor::{ArmoredReader, ArmoredWriter, Format};
use secrecy::zeroize::Zeroizing;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::error::KeyError;
use super::hosts::HostPattern;
use super::identity::Identity;
use super::recipients::Recipient;
use super::secret::{ApiKey, check_key_text, private_key_kind};
use crate::catalog;

/// Key files larger than this are refused before decrypting (a key file is ~400 bytes).
const MAX_FILE_BYTES: u64 = 64 * 1024;

/// What a key file holds, once opened.
#[derive(Debug, Clone)]
pub struct Key {
    pub api_key: ApiKey,
    /// The provider the key belongs to, when the file says.
    pub provider: Option<String>,
    /// Hosts besides the provider's own that this key may be sent to.
    pub allow_hosts: Vec<HostPattern>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TomlKey {
    #[serde(default)]
    provider: Option<String>,
    key: SecretString,
    #[serde(default)]
    allow_hosts: Vec<String>,
}

/// Reads a key file's plaintext. The reason in an error never quotes the text.
pub fn parse_plaintext(plain: &[u8]) -> Result<Key, String> {
    let text = std::str::from_utf8(plain).map_err(|_| "it is not UTF-8 text".to_string())?;
    let trimmed = text.trim_matches(|c: char| c.is_ascii_whitespace());
    if trimmed.is_empty() {
        return Err("it is empty".into());
    }
    if let Some(what) = private_key_kind(trimmed) {
        return Err(format!("it holds {what}, not an API key"));
    }
    match toml::from_str::<TomlKey>(trimmed) {
        Ok(file) => {
            let key = file
                .key
                .expose_secret()
                .trim_matches(|c: char| c.is_ascii_whitespace());
            check_key_text(key).map_err(|r| format!("its `key` cannot be used: {r}"))?;
            let allow_hosts: Vec<HostPattern> = file
                .allow_hosts
                .iter()
                .enumerate()
                .map(|(i, h)| {
                    h.parse::<HostPattern>().map_err(|e| {
                        let reason = match e {
                            super::hosts::HostError::BadPattern { reason, .. } => reason,
                            _ => "it is not a host name",
                        };
                        format!(
                            "entry {} of `allow_hosts` is not a host name: {reason}",
                            i + 1
                        )
                    })
                })
                .collect::<Result<_, _>>()?;
            if let Some(p) = &file.provider {
                check_provider(p, !allow_hosts.is_empty(), "`allow_hosts`")
                    .map_err(|reason| format!("`provider = \"{p}\"` {reason}"))?;
            }
            Ok(Key {
                api_key: ApiKey::new(key.to_string()),
                provider: file.provider,
                allow_hosts,
            })
        }
        // One word with no `=`-separated TOML structure: the bare key.
        Err(_) if !trimmed.contains(['\n', '\r']) => {
            check_key_text(trimmed).map_err(|r| format!("the bare key cannot be used: {r}"))?;
            Ok(Key {
                api_key: ApiKey::new(trimmed.to_string()),
                provider: None,
                allow_hosts: Vec::new(),
            })
        }
        Err(e) => Err(toml_reason(&e, trimmed)),
    }
}

/// Whether `provider` may be a key file's provider: a built-in provider (whose
/// own host the key may go to), or, for a key with hosts of its own
/// (`allow_hosts`), any name that is not a misspelt built-in one. The reason
/// follows the provider's name in a message; `hosts` is what names the hosts
/// where it is said (`allow_hosts`, `--allow-host HOST`).
pub fn check_provider(provider: &str, has_hosts: bool, hosts: &str) -> Result<(), String> {
    if !crate::workflow::validate::is_identifier(provider) {
        return Err("is not a provider name (letters, digits, `_` and `-`)".into());
    }
    if catalog::builtin(provider).is_some() {
        return Ok(());
    }
    let keyed =
        || catalog::builtin_names().filter(|n| catalog::builtin(n).is_some_and(|b| b.keyed));
    if let Some(close) = crate::suggest::closest(provider, keyed()) {
        return Err(format!(
            "is not a built-in provider: did you mean `{close}`?"
        ));
    }
    if has_hosts {
        return Ok(());
    }
    Err(format!(
        "is not a built-in provider ({}), so the key could go nowhere: for another endpoint, also name the hosts it may go to ({hosts})",
        keyed().collect::<Vec<_>>().join(", ")
    ))
}

/// A TOML error's reason, safe to show: field names and a line number only.
fn toml_reason(e: &toml::de::Error, text: &str) -> String {
    let message = e.message();
    let line = e
        .span()
        .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
    let at = line.map(|l| format!(" (line {l})")).unwrap_or_default();
    if message.starts_with("unknown field") {
        // The unknown name is not quoted: it could be a pasted key.
        format!(
            "it is TOML with a field byok-flow does not know{at}; the fields are `provider`, `key` and `allow_hosts`"
        )
    } else if message.starts_with("missing field `key`") {
        format!("it is TOML without a `key` field{at}")
    } else {
        format!("it is neither a bare key nor valid TOML{at}")
    }
}

/// The TOML plaintext `keys add` writes.
pub fn render_plaintext(
    key: &str,
    provider: Option<&str>,
    allow_hosts: &[HostPattern],
) -> Zeroizing<String> {
    // Room for everything up front: a reallocation would leave an unzeroed copy.
    let hosts_len: usize = allow_hosts.iter().map(|h| h.to_string().len() + 4).sum();
    let mut out = Zeroizing::new(String::with_capacity(2 * key.len() + hosts_len + 128));
    if let Some(p) = provider {
        out.push_str("provider = ");
        push_quoted(&mut out, p);
        out.push('\n');
    }
    out.push_str("key = ");
    push_quoted(&mut out, key);
    out.push('\n');
    if !allow_hosts.is_empty() {
        out.push_str("allow_hosts = [");
        for (i, host) in allow_hosts.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            push_quoted(&mut out, &host.to_string());
        }
        out.push_str("]\n");
    }
    out
}

/// Appends a TOML basic string. Keys have no control characters (checked
/// before), so only `\` and `"` need escaping.
fn push_quoted(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        if c == '\\' || c == '"' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
}

/// Encrypts `plaintext` to every recipient, ASCII-armored.
pub fn encrypt(recipients: &[Recipient], plaintext: &[u8]) -> Result<Vec<u8>, String> {
    let encryptor = age::Encryptor::with_recipients(recipients.iter().map(Recipient::as_age))
        .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    let armor =
        ArmoredWriter::wrap_output(&mut out, Format::AsciiArmor).map_err(|e| e.to_string())?;
    let mut writer = encryptor.wrap_output(armor).map_err(|e| e.to_string())?;
    writer.write_all(plaintext).map_err(|e| e.to_string())?;
    writer
        .finish()
        .and_then(ArmoredWriter::finish)
        .map_err(|e| e.to_string())?;
    Ok(out)
}

/// Why a file did not open.
#[derive(Debug)]
pub enum OpenError {
    /// Not encrypted to this identity.
    NotForMe,
    /// Damaged, cut short, or not an age file.
    Corrupt(String),
}

/// Decrypts an age file (armored or binary) with `identity`.
pub fn decrypt(identity: &Identity, ciphertext: &[u8]) -> Result<Zeroizing<Vec<u8>>, OpenError> {
    use age::DecryptError as E;
    let reason = |e: E| match e {
        E::NoMatchingKeys => OpenError::NotForMe,
        E::UnknownFormat => OpenError::Corrupt("it is not an age file".into()),
        E::InvalidHeader => OpenError::Corrupt("its age header is damaged or cut short".into()),
        E::InvalidMac => {
            OpenError::Corrupt("its age header was altered (the MAC does not match)".into())
        }
        E::DecryptionFailed => OpenError::Corrupt("its contents are damaged or cut short".into()),
        E::Io(e) => OpenError::Corrupt(format!(
            "its armor or contents are damaged or cut short ({e})"
        )),
        E::ExcessiveWork { .. } => OpenError::Corrupt(
            "it is encrypted with a passphrase (`age -p`), not to the recipients".into(),
        ),
        other => OpenError::Corrupt(other.to_string()),
    };
    let start = ciphertext.trim_ascii_start();
    if !(start.starts_with(b"-----BEGIN AGE ENCRYPTED FILE-----")
        || start.starts_with(b"age-encryption.org/"))
    {
        return Err(OpenError::Corrupt(
            "it is not an age file (it should start with `-----BEGIN AGE ENCRYPTED FILE-----`)"
                .into(),
        ));
    }
    let decryptor = age::Decryptor::new_buffered(ArmoredReader::new(ciphertext)).map_err(reason)?;
    if decryptor.is_scrypt() {
        return Err(OpenError::Corrupt(
            "it is encrypted with a passphrase (`age -p`), not to the recipients; encrypt it with `age -R .byok/recipients -a`".into(),
        ));
    }
    let mut reader = decryptor
        .decrypt(identity.age_identities())
        .map_err(reason)?;
    let mut plain = Zeroizing::new(Vec::new());
    (&mut reader)
        .take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut plain)
        .map_err(|e| reason(E::Io(e)))?;
    if plain.len() as u64 > MAX_FILE_BYTES {
        return Err(OpenError::Corrupt(
            "its contents are too large to be a key".into(),
        ));
    }
    Ok(plain)
}

/// Reads a key file's bytes, refusing ones too large to be key files.
pub fn read_file(path: &Path) -> Result<Vec<u8>, KeyError> {
    crate::read::file(path, MAX_FILE_BYTES).map_err(|e| match e {
        crate::read::ReadError::TooLarge(_) => KeyError::Corrupt {
            path: path.to_path_buf(),
            reason: "it is too large to be a key file".into(),
        },
        e => KeyError::io("read", path, e.into()),
    })
}

/// Opens a key file with `identity`: decrypts it and reads the key.
pub fn open(identity: &Identity, path: &Path, listed: Option<bool>) -> Result<Key, KeyError> {
    let plain = open_plaintext(identity, path, listed)?;
    parse_plaintext(&plain).map_err(|reason| KeyError::BadPlaintext {
        path: path.to_path_buf(),
        reason,
    })
}

/// Decrypts a key file to its plaintext, as is (for re-encryption).
pub fn open_plaintext(
    identity: &Identity,
    path: &Path,
    listed: Option<bool>,
) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    let bytes = read_file(path)?;
    decrypt(identity, &bytes).map_err(|e| match e {
        OpenError::NotForMe => KeyError::WrongIdentity {
            path: path.to_path_buf(),
            place: identity.place().to_string(),
            public: identity.public().to_vec(),
            listed,
        },
        OpenError::Corrupt(reason) => KeyError::Corrupt {
            path: path.to_path_buf(),
            reason,
        },
    })
}

/// How many recipients a file is encrypted to, read from its header without
/// decrypting (`None` when the header cannot be read).
pub fn recipient_count(ciphertext: &[u8]) -> Option<usize> {
    Some(
        stanza_tags(ciphertext)?
            .iter()
            .filter(|tag| !tag.ends_with(b"-grease"))
            .count(),
    )
}

/// Whether an age file is encrypted with a passphrase (`age -p`), not to recipients.
pub fn is_passphrase_encrypted(ciphertext: &[u8]) -> bool {
    stanza_tags(ciphertext).is_some_and(|tags| tags.iter().any(|t| t == b"scrypt"))
}

/// The type of each stanza in an age file's header (`X25519`, `ssh-ed25519`,
/// `scrypt`, …), read without decrypting.
fn stanza_tags(ciphertext: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut reader = ArmoredReader::new(ciphertext);
    let mut tags = Vec::new();
    let mut line = Vec::new();
    let mut first = true;
    loop {
        line.clear();
        let n = (&mut reader).take(4096).read_until(b'\n', &mut line).ok()?;
        if n == 0 {
            return None;
        }
        if first {
            if !line.starts_with(b"age-encryption.org/") {
                return None;
            }
            first = false;
        } else if line.starts_with(b"--- ") {
            return Some(tags);
        } else if let Some(stanza) = line.strip_prefix(b"-> ") {
            let tag = stanza
                .split(|b| *b == b' ' || *b == b'\n')
                .next()
                .unwrap_or_default();
            tags.push(tag.to_vec());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::identity::{Place, generate};

    fn identity() -> (Identity, Recipient) {
        let (text, public) = generate();
        let id = Identity::parse(text.expose_secret(), Place::Flag("t".into())).unwrap();
        (id, public.parse().unwrap())
    }

    #[test]
    fn bare_and_toml_plaintexts() {
        let bare = parse_plaintext(b"sk-ant-abc123\n").unwrap();
        assert_eq!(bare.api_key.expose_secret(), "sk-ant-abc123");
        assert_eq!(bare.provider, None);
        let toml = b"provider = \"anthropic\"\nkey = \"sk-ant-xyz\"\nallow_hosts = [\"proxy.example.com\"]\n";
        let key = parse_plaintext(toml).unwrap();
        assert_eq!(key.api_key.expose_secret(), "sk-ant-xyz");
        assert_eq!(key.provider.as_deref(), Some("anthropic"));
        assert_eq!(key.allow_hosts[0].to_string(), "proxy.example.com");
        // A base64-looking bare key with padding is still a bare key.
        assert_eq!(
            parse_plaintext(b"abc+/def==")
                .unwrap()
                .api_key
                .expose_secret(),
            "abc+/def=="
        );
    }

    #[test]
    fn a_provider_is_built_in_or_the_key_names_its_hosts() {
        let reason = parse_plaintext(b"provider = \"antropic\"\nkey = \"sk-1\"").unwrap_err();
        assert!(reason.contains("did you mean `anthropic`?"), "{reason}");
        let reason = parse_plaintext(
            b"provider = \"antropic\"\nkey = \"sk-1\"\nallow_hosts = [\"x.example\"]",
        )
        .unwrap_err();
        assert!(reason.contains("did you mean `anthropic`?"), "{reason}");
        let reason = parse_plaintext(b"provider = \"corp\"\nkey = \"sk-1\"").unwrap_err();
        assert!(
            reason.contains("could go nowhere") && reason.contains("allow_hosts"),
            "{reason}"
        );
        let key =
            parse_plaintext(b"provider = \"corp\"\nkey = \"sk-1\"\nallow_hosts = [\"x.example\"]")
                .unwrap();
        assert_eq!(key.provider.as_deref(), Some("corp"));
        assert!(parse_plaintext(b"provider = \"groq\"\nkey = \"sk-1\"").is_ok());
    }

    #[test]
    fn rendered_plaintext_round_trips() {
        let hosts = vec!["*.example.com".parse().unwrap()];
        let text = render_plaintext("sk-\"odd\\key", Some("openai"), &hosts);
        let key = parse_plaintext(text.as_bytes()).unwrap();
        assert_eq!(key.api_key.expose_secret(), "sk-\"odd\\key");
        assert_eq!(key.provider.as_deref(), Some("openai"));
        assert_eq!(key.allow_hosts, hosts);
    }

    #[test]
    fn bad_plaintexts_are_described_not_quoted() {
        let cases: [&[u8]; 6] = [
            b"",
            b"sk-canary one\nsk-canary two",
            b"key = \"sk-canary\"\nallow_host = [\"x\"]",
            b"provider = \"x\"\nkeyy = \"sk-canary\"",
            b"key = \"sk-canary\"\nallow_hosts = [\"https://sk-canary\"]",
            b"\xff\xfe",
        ];
        for case in cases {
            let reason = parse_plaintext(case).unwrap_err();
            assert!(!reason.contains("sk-canary"), "{reason}");
        }
        assert!(
            parse_plaintext(b"key = \"a\"\nallow_host = []")
                .unwrap_err()
                .contains("a field byok-flow does not know (line 2)")
        );
    }

    #[test]
    fn encrypt_then_decrypt_and_count() {
        let (me, my_recipient) = identity();
        let (_, other) = identity();
        let file = encrypt(&[my_recipient, other], b"sk-round-trip").unwrap();
        assert!(file.starts_with(b"-----BEGIN AGE ENCRYPTED FILE-----"));
        assert_eq!(&decrypt(&me, &file).unwrap()[..], b"sk-round-trip");
        assert_eq!(recipient_count(&file), Some(2));
        let (stranger, _) = identity();
        assert!(matches!(
            decrypt(&stranger, &file),
            Err(OpenError::NotForMe)
        ));
        let half = &file[..file.len() / 2];
        assert!(matches!(decrypt(&me, half), Err(OpenError::Corrupt(_))));
        assert!(matches!(decrypt(&me, b"hello"), Err(OpenError::Corrupt(_))));
    }

    #[test]
    fn ssh_recipients_encrypt_for_ssh_identities() {
        let (private, public) = crate::keys::recipients::tests::ed25519_keypair("c");
        let id = Identity::parse(&private, Place::Flag("ssh".into())).unwrap();
        let file = encrypt(&[public.parse().unwrap()], b"sk-ssh").unwrap();
        assert_eq!(&decrypt(&id, &file).unwrap()[..], b"sk-ssh");
    }
}
