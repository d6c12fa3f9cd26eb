//! [`ApiKey`]: a provider API key in memory. The type makes leaking hard: the
//! bytes are zeroed when the last copy is dropped, `Debug` prints `ApiKey(****)`,
//! and there is no `Display` or `Serialize`. Reading the key takes an explicit
//! [`ExposeSecret::expose_secret`], which belongs only where the auth header is built.

use std::fmt;
use std::sync::Arc;

use secrecy::{ExposeSecret, SecretString};

/// One provider API key, decrypted. Cloning shares one zeroed-on-drop buffer.
#[derive(Clone)]
pub struct ApiKey(Arc<SecretString>);

impl ApiKey {
    /// Wraps a key. The `String` is moved, not copied, so no stray copy is left behind.
    pub(crate) fn new(key: String) -> Self {
        ApiKey(Arc::new(SecretString::from(key)))
    }
}

impl ExposeSecret<str> for ApiKey {
    fn expose_secret(&self) -> &str {
        self.0.expose_secret()
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(****)")
    }
}

/// Checks that text can be an API key, and says why not: not an identity or a
/// private key (whatever variable or file it came from), one line, printable
/// ASCII with no spaces (an invisible or look-alike character pasted with a key
/// is named with its position, so it can be found), not empty. The reason never
/// quotes the text.
pub(crate) fn check_key_text(key: &str) -> Result<(), String> {
    if key.is_empty() {
        return Err("it is empty".into());
    }
    if let Some(what) = private_key_kind(key) {
        return Err(format!(
            "it is {what}, not an API key; byok-flow never sends one to a provider"
        ));
    }
    if key.contains(['\n', '\r']) {
        return Err("it has more than one line; an API key is a single line".into());
    }
    if let Some((at, c)) = key.chars().enumerate().find(|(_, c)| !c.is_ascii()) {
        return Err(format!(
            "character {} is {}; API keys are plain ASCII, so it was probably pasted along with the key: type or copy the key again",
            at + 1,
            describe_char(c)
        ));
    }
    if key.chars().any(|c| c.is_ascii_control() || c == ' ') {
        return Err("it contains spaces or control characters".into());
    }
    Ok(())
}

/// What kind of secret that is not an API key `text` holds, if any: an age
/// identity, a PEM or OpenSSH private key (also base64-encoded, as CI secrets
/// often hold them), a `PuTTY` key.
pub(crate) fn private_key_kind(text: &str) -> Option<&'static str> {
    let upper = text.to_ascii_uppercase();
    if upper.contains("AGE-SECRET-KEY-1") || upper.contains("AGE-PLUGIN-") {
        return Some("an age identity (`AGE-SECRET-KEY-1…`), the secret that opens the key files");
    }
    if upper.contains("PRIVATE KEY-----") || upper.contains("-----BEGIN OPENSSH") {
        return Some("a private key (PEM or OpenSSH)");
    }
    // base64 of "openssh-key-v1" (an OpenSSH key's body) and of "-----BEGIN".
    if text.contains("b3BlbnNzaC1rZXktdjE") || text.contains("LS0tLS1CRUdJTi") {
        return Some("a base64-encoded private key");
    }
    if upper.contains("PUTTY-USER-KEY-FILE") {
        return Some("a PuTTY private key");
    }
    None
}

/// A character for a message: its code point, and a name for the usual suspects.
pub(crate) fn describe_char(c: char) -> String {
    let name = match c {
        '\u{feff}' => " (a byte-order mark, added by some editors at the start of a file)",
        '\u{200b}' => " (a zero-width space)",
        '\u{200c}' | '\u{200d}' => " (a zero-width joiner)",
        '\u{2060}' => " (a word joiner)",
        '\u{00a0}' | '\u{202f}' => " (a no-break space)",
        '\u{2010}'..='\u{2015}' | '\u{2212}' => " (a dash that looks like `-`)",
        '\u{2018}' | '\u{2019}' | '\u{201c}' | '\u{201d}' => " (a curly quote)",
        c if c.is_whitespace() => " (a space)",
        c if c.is_control() || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}') => {
            " (an invisible control character)"
        }
        _ => "",
    };
    format!("U+{:04X}{name}", u32::from(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_key() {
        let key = ApiKey::new("sk-canary-123".to_string());
        assert_eq!(format!("{key:?}"), "ApiKey(****)");
        assert_eq!(format!("{:?}", Some(key.clone())), "Some(ApiKey(****))");
        assert_eq!(key.expose_secret(), "sk-canary-123");
    }

    #[test]
    fn key_text_rules() {
        assert!(check_key_text("sk-ant-abc_DEF=").is_ok());
        assert!(check_key_text("").is_err());
        assert!(check_key_text("a\nb").is_err());
        assert!(check_key_text("a b").is_err());
        assert!(check_key_text("a\u{7}b").is_err());
    }

    #[test]
    fn invisible_and_look_alike_characters_are_named_with_their_position() {
        for (key, want) in [
            ("\u{feff}sk-abc", "character 1 is U+FEFF (a byte-order mark"),
            (
                "sk-\u{200b}abc",
                "character 4 is U+200B (a zero-width space)",
            ),
            ("sk-abc\u{a0}", "character 7 is U+00A0 (a no-break space)"),
            (
                "sk\u{2010}abc",
                "character 3 is U+2010 (a dash that looks like `-`)",
            ),
            ("sk-é", "character 4 is U+00E9;"),
        ] {
            let reason = check_key_text(key).unwrap_err();
            assert!(reason.contains(want), "{key:?}: {reason}");
        }
    }

    #[test]
    fn identities_and_private_keys_are_not_api_keys() {
        let (identity, _) = super::super::identity::generate();
        let line = identity.expose_secret().lines().last().unwrap().to_string();
        let (ssh, _) = super::super::recipients::tests::ed25519_keypair("c");
        let body: String = ssh.lines().nth(1).unwrap().to_string();
        for (text, want) in [
            (line.clone(), "an age identity"),
            (line.to_ascii_lowercase(), "an age identity"),
            (ssh.clone(), "a private key (PEM or OpenSSH)"),
            (ssh.replace('\n', "\\n"), "a private key"),
            (body, "a base64-encoded private key"),
            (
                "LS0tLS1CRUdJTiBSU0EgUFJJVkFURSBLRVktLS0tLQo=".into(),
                "base64-encoded",
            ),
        ] {
            let reason = check_key_text(&text).unwrap_err();
            assert!(reason.contains(want), "{reason}");
            assert!(
                !reason.contains(&text[20..30]),
                "the text is quoted: {reason}"
            );
        }
    }
}
