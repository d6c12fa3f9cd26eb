//! `keys add` and `keys rm`: write a key file from stdin, or delete one.

use std::io::{IsTerminal, Read};

use secrecy::zeroize::Zeroizing;

use super::{Context, note};
use crate::catalog;
use crate::error::{Error, Exit, Result};
use crate::keys::atomic::{self, PUBLIC};
use crate::keys::{HostPattern, KeyError, KeyRef, keyfile};
use crate::settings::Global;

/// The most bytes `keys add` reads from stdin.
const MAX_INPUT_BYTES: u64 = 64 * 1024;

pub(super) fn add(
    ctx: &Context,
    name: &str,
    provider: Option<&str>,
    allow_hosts: &[String],
    replace: bool,
    global: Global,
) -> Result<Exit> {
    KeyRef::file(name)?;
    let hosts: Vec<HostPattern> = allow_hosts
        .iter()
        .map(|h| h.parse().map_err(KeyError::BadHostPattern))
        .collect::<Result<_, _>>()?;
    let provider = match provider {
        Some(p) => {
            keyfile::check_provider(p, !hosts.is_empty(), "`--allow-host HOST`").map_err(|reason| {
                Error::usage(format!("`--provider {p}` {reason}")).hint(
                    "pass a built-in provider's name, like `anthropic` or `openai`; for another endpoint, add `--allow-host HOST` for each host the key may go to",
                )
            })?;
            Some(p.to_string())
        }
        None => catalog::builtin_base_url(name).map(|_| name.to_string()),
    };
    let dir = ctx.dir()?;
    let recipients = dir.recipients()?;
    let path = dir.key_path(name);
    if path.exists() && !replace {
        return Err(KeyError::KeyFileExists {
            name: name.to_string(),
            path,
        }
        .into());
    }
    let key = read_key_input(name)?;
    let plain = keyfile::render_plaintext(&key, provider.as_deref(), &hosts);
    let sealed = keyfile::encrypt(&recipients, plain.as_bytes())
        .map_err(|reason| Error::new(Exit::Keys, format!("cannot encrypt the key: {reason}")))?;
    let keys_path = dir.keys_path();
    atomic::create_dir(&keys_path, 0o755)
        .map_err(|e| KeyError::io("create the folder", &keys_path, e))?;
    dir.check_keys_folder()?;
    dir.ignore_temp_files()?;
    atomic::replace(&path, &sealed, PUBLIC).map_err(|e| KeyError::io("write", &path, e))?;
    let what = match &provider {
        Some(p) => format!("key `{name}` (provider `{p}`)"),
        None => format!("key `{name}`"),
    };
    note(
        global,
        &format!(
            "Encrypted {what} to {} recipient(s): `{}`. Commit it; only the recipients can open it.",
            recipients.len(),
            path.display()
        ),
    );
    if provider.is_none() {
        note(
            global,
            "No provider recorded: the key will go to the host of whichever built-in provider uses it. Pin it with `--provider`.",
        );
    }
    Ok(Exit::Success)
}

/// The key from stdin: asked for without echo on a terminal, else read whole;
/// surrounding white space (the trailing newline) stripped; empty refused.
fn read_key_input(name: &str) -> Result<Zeroizing<String>, KeyError> {
    let stdin = std::io::stdin();
    let (text, source_name) = if stdin.is_terminal() {
        let typed = rpassword::prompt_password(format!("API key for `{name}` (input hidden): "))
            .map_err(|e| KeyError::io("read the key from", "the terminal", e))?;
        (Zeroizing::new(typed), "the terminal")
    } else {
        let mut bytes = Zeroizing::new(Vec::with_capacity(4096));
        stdin
            .lock()
            .take(MAX_INPUT_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| KeyError::io("read the key from", "stdin", e))?;
        if bytes.len() as u64 > MAX_INPUT_BYTES {
            return Err(KeyError::BadInput {
                source_name: "stdin",
                reason: "it is far too long to be an API key".into(),
            });
        }
        let text = std::str::from_utf8(&bytes).map_err(|_| KeyError::BadInput {
            source_name: "stdin",
            reason: "it is not UTF-8 text".into(),
        })?;
        (Zeroizing::new(text.to_string()), "stdin")
    };
    // Only ASCII white space (the newline): an invisible character is refused by name.
    let key = text.trim_matches(|c: char| c.is_ascii_whitespace());
    if key.is_empty() {
        return Err(KeyError::BadInput {
            source_name,
            reason: "it is empty".into(),
        });
    }
    crate::keys::secret::check_key_text(key).map_err(|reason| KeyError::BadInput {
        source_name,
        reason,
    })?;
    Ok(Zeroizing::new(key.to_string()))
}

pub(super) fn remove(ctx: &Context, name: &str, global: Global) -> Result<Exit> {
    let dir = ctx.dir()?;
    // A link is removed itself (never what it points to); a folder is not removed.
    let path = match dir.existing_key(name) {
        Err(KeyError::NotAKeyFile {
            path, link: true, ..
        }) if path.is_symlink() => path,
        other => other?,
    };
    std::fs::remove_file(&path).map_err(|e| KeyError::io("remove", &path, e))?;
    note(
        global,
        &format!(
            "Removed `{}`. Its old versions stay in git history, readable by every past recipient: if the key is no longer needed, revoke it at the provider.",
            path.display()
        ),
    );
    Ok(Exit::Success)
}
