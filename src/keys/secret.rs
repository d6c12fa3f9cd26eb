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

/// Checks that text can be an API key: one line, no spaces or control characters
/// (which could split an HTTP header), not empty. The error never quotes the text.
pub(crate) fn check_key_text(key: &str) -> Result<(), &'static str> {
    if key.is_empty() {
        return Err("it is empty");
    }
    if key.contains(['\n', '\r']) {
        return Err("it has more than one line; an API key is a single line");
    }
    if key.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err("it contains spaces or control characters");
    }
    Ok(())
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
}
