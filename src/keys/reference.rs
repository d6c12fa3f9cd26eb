//! [`KeyRef`]: how a workflow names a key: a key file name (`anthropic` for
//! `.byok/keys/anthropic.age`) or `env:VAR` for an environment variable.

use std::fmt;

use super::error::KeyError;
use crate::workflow::validate::{holds_identity, is_identifier, looks_like_a_key};

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
            if looks_like_a_key(var) {
                return Err(KeyError::LooksLikeKey);
            }
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

    /// A key file name, checked so it cannot leave `.byok/keys/`, and so that it
    /// is not a key pasted where its name goes (it would be printed in errors,
    /// and become a file name that is committed).
    pub fn file(name: &str) -> Result<KeyRef, KeyError> {
        if looks_like_a_key(name) {
            return Err(KeyError::LooksLikeKey);
        }
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
    fn a_key_pasted_where_its_name_goes_is_refused_without_quoting_it() {
        for key in [
            "sk-ant-api03-Zx8Qw2Lm9Pk3Rt6Yv1Bn4Hj7Gf5Dc0Sa2Xe8Wq3Er6",
            "sk-proj-Ab3dEf6hIj9kLm2nOp5q",
            "AIzaSyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY",
            "gsk_8x7QmLz0Pq2Rt5Yv8Bn1Hj4Gf7Dc0Sa",
            "Zx8Qw2Lm9Pk3Rt6Yv1Bn4Hj7Gf5Dc0Sa2Xe8Wq3Er6Ty",
        ] {
            for text in [key.to_string(), format!("env:{key}")] {
                let err = KeyRef::parse(&text).unwrap_err();
                assert!(matches!(err, KeyError::LooksLikeKey), "{text}");
                assert!(!err.to_string().contains(&key[..8]), "{err}");
            }
        }
        // Names people give keys, long ones too.
        for name in [
            "anthropic",
            "sk-team",
            "openai-production-2024",
            "anthropic-research-team-billing-account-01",
        ] {
            assert_eq!(
                KeyRef::parse(name).unwrap(),
                Some(KeyRef::File(name.into())),
                "{name}"
            );
        }
    }

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
