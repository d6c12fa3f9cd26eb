//! `.byok/recipients`: who can open the key files. One recipient a line, `age1…`
//! or an SSH `ssh-ed25519` public key; `#` comments and blank lines allowed: the
//! same format `age -R` reads, so the file works with the real `age` CLI too.
//!
//! `ssh-rsa` is refused on purpose (see the README, "Threat model"): decrypting
//! with an RSA key goes through the `rsa` crate, which carries RUSTSEC-2023-0071.

use std::fmt;
use std::str::FromStr;

/// One recipient: a public key a key file is encrypted to.
#[derive(Clone)]
pub enum Recipient {
    /// A native age X25519 recipient (`age1…`).
    X25519(age::x25519::Recipient),
    /// An SSH `ssh-ed25519` public key.
    SshEd25519(age::ssh::Recipient),
}

impl Recipient {
    /// The `age` crate's view, for encryption.
    pub(crate) fn as_age(&self) -> &dyn age::Recipient {
        match self {
            Recipient::X25519(r) => r,
            Recipient::SshEd25519(r) => r,
        }
    }

    /// The canonical text: `age1…`, or `ssh-ed25519 AAAA…` without a comment.
    pub fn canonical(&self) -> String {
        match self {
            Recipient::X25519(r) => r.to_string(),
            Recipient::SshEd25519(r) => r.to_string(),
        }
    }
}

impl PartialEq for Recipient {
    fn eq(&self, other: &Self) -> bool {
        self.canonical() == other.canonical()
    }
}

impl fmt::Debug for Recipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Recipient({})", self.canonical())
    }
}

impl fmt::Display for Recipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.canonical())
    }
}

/// Why a line is not a recipient we take.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecipientError {
    #[error(
        "`ssh-rsa` keys are not accepted (RUSTSEC-2023-0071: RSA decryption in Rust has a timing side channel)"
    )]
    Rsa,
    #[error("`{0}` keys are not supported; use an `ssh-ed25519` key or an `age1…` recipient")]
    UnsupportedSsh(String),
    #[error(
        "age plugin recipients (`{0}…`) are not supported; use an `age1…` recipient from `byok-flow keys init`"
    )]
    Plugin(String),
    #[error("an `age1…` recipient must be alone on its line (put a comment on the line above)")]
    Trailing,
    #[error("not a valid age recipient: {0}")]
    Invalid(&'static str),
    /// A character no recipient has, such as an invisible one pasted along.
    #[error("character {at} is {what}, which no recipient contains")]
    Character { at: usize, what: String },
}

impl FromStr for Recipient {
    type Err = RecipientError;

    fn from_str(line: &str) -> Result<Self, RecipientError> {
        let line = line.trim();
        if let Some((at, c)) = line.chars().enumerate().find(|(_, c)| !c.is_ascii()) {
            return Err(RecipientError::Character {
                at: at + 1,
                what: super::secret::describe_char(c),
            });
        }
        if line.starts_with("age1") {
            if line.contains(char::is_whitespace) {
                return Err(RecipientError::Trailing);
            }
            if let Ok(r) = line.parse::<age::x25519::Recipient>() {
                return Ok(Recipient::X25519(r));
            }
            // A bech32 string with a longer prefix (`age1yubikey1…`) is a plugin's.
            let hrp_len = line.rfind('1').unwrap_or(0);
            if hrp_len > 3 {
                return Err(RecipientError::Plugin(line[..hrp_len].to_string()));
            }
            return Err(RecipientError::Invalid(
                "a bad `age1…` string (a typo, or cut short?)",
            ));
        }
        let kind = line.split_whitespace().next().unwrap_or_default();
        match kind {
            "ssh-rsa" => Err(RecipientError::Rsa),
            "ssh-ed25519" => match line.parse::<age::ssh::Recipient>() {
                Ok(r @ age::ssh::Recipient::SshEd25519(..)) => Ok(Recipient::SshEd25519(r)),
                _ => Err(RecipientError::Invalid("a bad `ssh-ed25519` public key")),
            },
            k if k.starts_with("ssh-") || k.starts_with("ecdsa-") || k.starts_with("sk-") => {
                Err(RecipientError::UnsupportedSsh(k.to_string()))
            }
            _ => Err(RecipientError::Invalid(
                "expected `age1…` or `ssh-ed25519 AAAA…`",
            )),
        }
    }
}

/// One line of a recipients file, kept as written so edits preserve comments.
#[derive(Debug, Clone)]
pub struct Line {
    pub text: String,
    pub recipient: Option<Recipient>,
}

/// A parsed recipients file.
#[derive(Debug, Clone, Default)]
pub struct RecipientsFile {
    pub lines: Vec<Line>,
}

/// A bad line in a recipients file: its number (from 1) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadLine {
    pub line: usize,
    pub error: RecipientError,
}

impl RecipientsFile {
    /// Parses the file's text; every line must be a comment, blank, or a recipient.
    pub fn parse(text: &str) -> Result<RecipientsFile, BadLine> {
        let mut lines = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let trimmed = raw.trim();
            let recipient = if trimmed.is_empty() || trimmed.starts_with('#') {
                None
            } else {
                Some(
                    trimmed
                        .parse()
                        .map_err(|error| BadLine { line: i + 1, error })?,
                )
            };
            lines.push(Line {
                text: raw.to_string(),
                recipient,
            });
        }
        Ok(RecipientsFile { lines })
    }

    /// The recipients in file order, without duplicates.
    pub fn recipients(&self) -> Vec<Recipient> {
        let mut out: Vec<Recipient> = Vec::new();
        for r in self.lines.iter().filter_map(|l| l.recipient.as_ref()) {
            if !out.contains(r) {
                out.push(r.clone());
            }
        }
        out
    }

    /// The recipients with a label each: an SSH key's comment, or the comment line
    /// just above an `age1…` line.
    pub fn labelled(&self) -> Vec<(Recipient, Option<String>)> {
        let mut out: Vec<(Recipient, Option<String>)> = Vec::new();
        for (i, line) in self.lines.iter().enumerate() {
            let Some(r) = &line.recipient else { continue };
            if out.iter().any(|(o, _)| o == r) {
                continue;
            }
            let label = match r {
                Recipient::SshEd25519(_) => {
                    let comment: Vec<&str> = line.text.split_whitespace().skip(2).collect();
                    (!comment.is_empty()).then(|| comment.join(" "))
                }
                Recipient::X25519(_) => i
                    .checked_sub(1)
                    .and_then(|p| self.lines[p].text.trim().strip_prefix('#'))
                    .map(|c| c.trim().to_string())
                    .filter(|c| !c.is_empty()),
            };
            out.push((r.clone(), label));
        }
        out
    }

    pub fn contains(&self, recipient: &Recipient) -> bool {
        self.lines
            .iter()
            .any(|l| l.recipient.as_ref() == Some(recipient))
    }

    /// Appends a recipient, with an optional comment line above it.
    pub fn add(&mut self, recipient: &Recipient, text: &str, comment: Option<&str>) {
        if let Some(comment) = comment {
            self.lines.push(Line {
                text: format!("# {}", comment.replace(['\n', '\r'], " ")),
                recipient: None,
            });
        }
        self.lines.push(Line {
            text: text.trim().to_string(),
            recipient: Some(recipient.clone()),
        });
    }

    /// Removes every line with this recipient; returns how many were removed.
    pub fn remove(&mut self, recipient: &Recipient) -> usize {
        let before = self.lines.len();
        self.lines
            .retain(|l| l.recipient.as_ref() != Some(recipient));
        before - self.lines.len()
    }

    /// The file's text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for line in &self.lines {
            out.push_str(&line.text);
            out.push('\n');
        }
        out
    }
}

/// The header comment of a new recipients file.
pub const NEW_FILE_HEADER: &str = "\
# byok-flow recipients: who can open the key files in keys/ (one per line).
# `age1…` recipients from `byok-flow keys init`, or `ssh-ed25519` public keys.
# Edit with `byok-flow keys recipients add|rm`, which re-encrypts every key file.
";

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A fresh SSH ed25519 key pair, as `ssh-keygen` writes it: the private key
    /// file's text and the public key line.
    pub(crate) fn ed25519_keypair(comment: &str) -> (String, String) {
        use ssh_key::{Algorithm, LineEnding, PrivateKey, rand_core::OsRng};
        let key = PrivateKey::random(&mut OsRng, Algorithm::Ed25519).unwrap();
        let private = key.to_openssh(LineEnding::LF).unwrap().to_string();
        let public = format!("{} {comment}", key.public_key().to_openssh().unwrap());
        (private, public)
    }

    pub(crate) fn ed25519_public_line(comment: &str) -> String {
        ed25519_keypair(comment).1
    }

    #[test]
    fn parses_age_and_ssh_lines_with_comments() {
        let age = age::x25519::Identity::generate().to_public().to_string();
        let ssh = ed25519_public_line("alice@laptop");
        let text = format!("# the team\n\n# bob\n{age}\n{ssh}\n{age}\n");
        let file = RecipientsFile::parse(&text).unwrap();
        assert_eq!(file.recipients().len(), 2);
        let labelled = file.labelled();
        assert_eq!(labelled[0].1.as_deref(), Some("bob"));
        assert_eq!(labelled[1].1.as_deref(), Some("alice@laptop"));
        assert_eq!(file.render(), text);
    }

    #[test]
    fn refuses_what_it_does_not_take() {
        let cases = [
            (
                "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQ== bob",
                RecipientError::Rsa,
            ),
            (
                "ecdsa-sha2-nistp256 AAAA x",
                RecipientError::UnsupportedSsh("ecdsa-sha2-nistp256".into()),
            ),
            (
                "age1yubikey1qwertyuiop",
                RecipientError::Plugin("age1yubikey".into()),
            ),
            (
                "hello",
                RecipientError::Invalid("expected `age1…` or `ssh-ed25519 AAAA…`"),
            ),
        ];
        for (line, want) in cases {
            let got = RecipientsFile::parse(&format!("# c\n{line}\n")).unwrap_err();
            assert_eq!(
                got,
                BadLine {
                    line: 2,
                    error: want
                },
                "{line}"
            );
        }
        let age = age::x25519::Identity::generate().to_public().to_string();
        assert_eq!(
            format!("{age} # me").parse::<Recipient>().unwrap_err(),
            RecipientError::Trailing
        );
        let err = format!("\u{feff}{age}").parse::<Recipient>().unwrap_err();
        assert!(
            err.to_string()
                .starts_with("character 1 is U+FEFF (a byte-order mark"),
            "{err}"
        );
        let cut = &age[..age.len() - 2];
        assert!(matches!(
            cut.parse::<Recipient>(),
            Err(RecipientError::Invalid(_))
        ));
    }

    #[test]
    fn add_and_remove_keep_other_lines() {
        let a = age::x25519::Identity::generate().to_public().to_string();
        let b = age::x25519::Identity::generate().to_public().to_string();
        let mut file = RecipientsFile::parse(&format!("# header\n{a}\n")).unwrap();
        let rb: Recipient = b.parse().unwrap();
        file.add(&rb, &b, Some("carol"));
        assert_eq!(file.render(), format!("# header\n{a}\n# carol\n{b}\n"));
        assert_eq!(file.remove(&a.parse().unwrap()), 1);
        assert_eq!(file.render(), format!("# header\n# carol\n{b}\n"));
        assert!(file.contains(&rb));
    }
}
