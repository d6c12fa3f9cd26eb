//! `keys recipients list|add|rm|sync`: edit `.byok/recipients` and re-encrypt
//! every key file to the new list.

use std::path::Path;

use clap::Subcommand;

use super::{Context, note, read_or_new_recipients};
use crate::error::{Error, Exit, Result};
use crate::keys::atomic::{self, PUBLIC};
use crate::keys::recipients::RecipientsFile;
use crate::keys::{KeyError, KeysDir, Recipient, rekey};
use crate::settings::Global;

#[derive(Debug, Subcommand)]
pub enum RecipientsCommand {
    /// Print the recipients, with their labels.
    List,
    /// Add a recipient (`age1…`, an `ssh-ed25519 …` line, or a `.pub` file) and
    /// re-encrypt every key file to the new list.
    Add {
        /// The recipient. An SSH key may be given as several words.
        #[arg(required = true, num_args = 1.., value_name = "RECIPIENT")]
        recipient: Vec<String>,
        /// A label, written as a `# comment` line above it (for `age1…` recipients).
        #[arg(long, value_name = "TEXT")]
        comment: Option<String>,
    },
    /// Remove a recipient and re-encrypt every key file without it.
    Rm {
        /// The recipient, as listed.
        #[arg(required = true, num_args = 1.., value_name = "RECIPIENT")]
        recipient: Vec<String>,
    },
    /// Re-encrypt every key file to exactly the recipients listed (after editing
    /// `.byok/recipients` by hand or merging a new member's change).
    Sync,
}

pub(super) fn run(ctx: &Context, cmd: &RecipientsCommand, global: Global) -> Result<Exit> {
    let dir = ctx.dir()?;
    match cmd {
        RecipientsCommand::List => {
            for (recipient, label) in dir.read_recipients()?.labelled() {
                match label {
                    Some(label) => println!("{recipient}  # {label}"),
                    None => println!("{recipient}"),
                }
            }
            Ok(Exit::Success)
        }
        RecipientsCommand::Add { recipient, comment } => {
            let mut list = read_or_new_recipients(&dir)?;
            let mut added = Vec::new();
            for (text, r) in parse_recipient_args(recipient)? {
                if list.contains(&r) {
                    note(global, &format!("`{r}` is already listed."));
                } else {
                    list.add(&r, &text, comment.as_deref());
                    added.push(r);
                }
            }
            let count = rewrite(ctx, &dir, &list)?;
            for r in &added {
                note(global, &format!("Added `{r}`."));
            }
            note(
                global,
                &format!(
                    "{count} key file(s) are now encrypted to {} recipient(s). Commit `.byok/`.",
                    list.recipients().len()
                ),
            );
            Ok(Exit::Success)
        }
        RecipientsCommand::Rm { recipient } => {
            let mut list = dir.read_recipients()?;
            let path = dir.recipients_path();
            for (text, r) in parse_recipient_args(recipient)? {
                if list.remove(&r) == 0 {
                    return Err(KeyError::RecipientNotListed { text, path }.into());
                }
            }
            if list.recipients().is_empty() {
                return Err(KeyError::LastRecipient {
                    text: recipient.join(" "),
                    path,
                }
                .into());
            }
            let count = rewrite(ctx, &dir, &list)?;
            note(
                global,
                &format!(
                    "Removed. {count} key file(s) are now encrypted to {} recipient(s). Commit `.byok/`.\n\
                     Removing a recipient cannot take back what they could already decrypt (and git history keeps the old files): \
                     rotate every provider key they could open, then `byok-flow keys add NAME --replace`.",
                    list.recipients().len()
                ),
            );
            Ok(Exit::Success)
        }
        RecipientsCommand::Sync => {
            let list = dir.read_recipients()?;
            let count = rewrite(ctx, &dir, &list)?;
            note(
                global,
                &format!(
                    "{count} key file(s) are now encrypted to the {} recipient(s) listed.",
                    list.recipients().len()
                ),
            );
            Ok(Exit::Success)
        }
    }
}

/// Writes the new recipients list and re-encrypts every key file to it.
fn rewrite(ctx: &Context, dir: &KeysDir, list: &RecipientsFile) -> Result<usize> {
    if list.recipients().is_empty() {
        return Err(KeyError::NoRecipients {
            path: dir.recipients_path(),
        }
        .into());
    }
    dir.ignore_temp_files()?;
    if dir.key_names()?.is_empty() {
        let path = dir.recipients_path();
        atomic::replace(&path, list.render().as_bytes(), PUBLIC)
            .map_err(|e| KeyError::io("write", &path, e))?;
        return Ok(0);
    }
    let identity = ctx.identity.load()?;
    let count = rekey::reencrypt_all(dir, &identity, list)?;
    let still_me = identity.is_among(&list.recipients());
    if !still_me {
        eprintln!(
            "warning: your own identity is no longer a recipient: you cannot open these key files any more."
        );
    }
    Ok(count)
}

/// The recipients given on the command line: one joined SSH line, `age1…`
/// strings, or a file of recipients (like `~/.ssh/id_ed25519.pub`).
fn parse_recipient_args(words: &[String]) -> Result<Vec<(String, Recipient)>> {
    if words
        .iter()
        .any(|w| w.to_ascii_uppercase().contains("AGE-SECRET-KEY-"))
    {
        // Never echo it: it is someone's secret identity.
        return Err(Error::usage("that is a secret age identity, not a recipient")
            .hint("give its public `age1…` recipient (printed by `byok-flow keys init`, or `age-keygen -y FILE`); and since it was typed on a command line, consider it exposed"));
    }
    let texts: Vec<String> = if words.len() == 1 && Path::new(&words[0]).is_file() {
        let path = Path::new(&words[0]);
        let bytes = crate::read::file(path, 1024 * 1024)
            .map_err(|e| KeyError::io("read", path, e.into()))?;
        let text = String::from_utf8(bytes).map_err(|e| {
            KeyError::io(
                "read",
                path,
                std::io::Error::new(std::io::ErrorKind::InvalidData, e),
            )
        })?;
        if text.contains("PRIVATE KEY") {
            return Err(
                Error::usage(format!("`{}` is a private key", path.display()))
                    .hint("give the public key: the `.pub` file beside it"),
            );
        }
        text.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(str::to_string)
            .collect()
    } else if words.iter().all(|w| w.starts_with("age1")) {
        words.to_vec()
    } else {
        vec![words.join(" ")]
    };
    texts
        .into_iter()
        .map(|text| match text.parse::<Recipient>() {
            Ok(r) => Ok((text, r)),
            Err(error) => Err(KeyError::BadRecipientArg { text, error }.into()),
        })
        .collect()
}
