//! [`KeyRef`]: how a workflow names a key: a key file name (`anthropic` for
//! `.byok/keys/anthropic.age`) or `env:VAR` for an environment variable.

use std::fmt;

use super::error::KeyError;
use crate::workflow::validate::{holds_identity, is_identifier};

/// A key a workflow asks for.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KeyRef {
    /// `.byok/keys/NAME.age`.
    File(String),
    /// The environment variable `VAR` (`key: env:VAR`).
    Env(String),
}

impl KeyRef {
    /// Parses a workflow's `key:` value; `none` (no key is sent) is `Ok(None)`.
    pub fn parse(text: &str) -> Result<Option<KeyRef>, KeyError> {
        if text == "none" {
            return Ok(None);
        }
        if let Some(var) = text.strip_prefix("env:") {
            let ok = !var.is_empty() && var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if ok && holds_identity(var) {
                return Err(KeyError::IdentityEnv { var: var.into() });
            }
            return if ok {
                Ok(Some(KeyRef::Env(var.to_string())))
            } else {
                Err(KeyError::BadEnvName {
                    text: text.to_string(),
                })
            };
        }
        KeyRef::file(text).map(Some)
    }

    /// A key file name, checked so it cannot leave `.byok/keys/`.
    pub fn file(name: &str) -> Result<KeyRef, KeyError> {
        if is_identifier(name) {
            Ok(KeyRef::File(name.to_string()))
        } else {
            Err(KeyError::BadName {
                name: name.to_string(),
            })
        }
    }
}

impl fmt::Display for KeyRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyRef::File(name) => f.write_str(name),
            KeyRef::Env(var) => write!(f, "env:{var}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_files_env_and_none() {
        assert_eq!(
            KeyRef::parse("anthropic").unwrap(),
            Some(KeyRef::File("anthropic".into()))
        );
        assert_eq!(
            KeyRef::parse("env:OPENAI_KEY").unwrap(),
            Some(KeyRef::Env("OPENAI_KEY".into()))
        );
        assert_eq!(KeyRef::parse("none").unwrap(), None);
        for bad in [
            "../etc/passwd",
            "a/b",
            "",
            "env:",
            "env:A-B",
            ".hidden",
            "env:BYOK_FLOW_AGE_KEY",
            "env:BYOK_FLOW_AGE_KEY_FILE",
            "env:SOPS_AGE_KEY",
            "env:sops_age_key_file",
        ] {
            assert!(KeyRef::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(KeyRef::Env("X".into()).to_string(), "env:X");
    }
}
