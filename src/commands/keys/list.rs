//! `keys list` and `keys check`: what key files there are, and which ones your
//! identity opens. Never the keys themselves.

use super::{Context, note};
use crate::error::{Error, Exit, Result};
use crate::keys::{Key, KeyError, keyfile};
use crate::report::github;
use crate::settings::GitHub;
use crate::settings::Global;

/// In GitHub Actions, masks a key the moment it is decrypted, though these
/// commands never print one.
fn mask(global: Global, key: &Key) {
    if global.github.is_some_and(GitHub::masks_keys) {
        let _ = github::command::add_mask(&key.api_key);
    }
}

pub(super) fn list(ctx: &Context, global: Global) -> Result<Exit> {
    let dir = ctx.dir()?;
    let names = dir.key_names()?;
    if names.is_empty() {
        note(
            global,
            &format!(
                "No key files in `{}`. Add one with `byok-flow keys add NAME`.",
                dir.keys_path().display()
            ),
        );
        return Ok(Exit::Success);
    }
    let identity = ctx.identity.load();
    if let Err(e) = &identity {
        note(
            global,
            &format!(
                "note: providers and hosts are inside the encrypted files and cannot be shown: {e}"
            ),
        );
    }
    let mut rows = vec![[
        "NAME".to_string(),
        "PROVIDER".to_string(),
        "ALLOWED HOSTS".to_string(),
        "RECIPIENTS".to_string(),
    ]];
    for name in &names {
        let path = dir.existing_key(name);
        let count = path
            .as_ref()
            .ok()
            .and_then(|p| keyfile::read_file(p).ok())
            .and_then(|b| keyfile::recipient_count(&b))
            .map_or_else(|| "?".to_string(), |n| n.to_string());
        let (provider, hosts) = match (&identity, &path) {
            (_, Err(_)) => ("(not a key file)".into(), "?".into()),
            (Ok(id), Ok(path)) => match keyfile::open(id, path, None) {
                Ok(key) => {
                    mask(global, &key);
                    (
                        key.provider.unwrap_or_else(|| "-".into()),
                        if key.allow_hosts.is_empty() {
                            "-".to_string()
                        } else {
                            key.allow_hosts
                                .iter()
                                .map(ToString::to_string)
                                .collect::<Vec<_>>()
                                .join(",")
                        },
                    )
                }
                Err(_) => ("(cannot open)".into(), "?".into()),
            },
            (Err(_), Ok(_)) => ("?".into(), "?".into()),
        };
        rows.push([name.clone(), provider, hosts, count]);
    }
    print!("{}", table(&rows));
    Ok(Exit::Success)
}

fn table(rows: &[[String; 4]]) -> String {
    let mut widths = [0; 4];
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in rows {
        let line = format!(
            "{:<w0$}  {:<w1$}  {:<w2$}  {}",
            row[0],
            row[1],
            row[2],
            row[3],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2]
        );
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

pub(super) fn check(ctx: &Context, global: Global) -> Result<Exit> {
    let dir = ctx.dir()?;
    let listed = dir.recipients()?;
    let names = dir.key_names()?;
    if names.is_empty() {
        eprintln!(
            "No key files in `{}`. Add one with `byok-flow keys add NAME`.",
            dir.keys_path().display()
        );
        return Ok(Exit::Success);
    }
    let identity = ctx.identity.load()?;
    let me_listed = identity.is_among(&listed);
    let mut failures: Vec<KeyError> = Vec::new();
    let mut stale = Vec::new();
    let width = names.iter().map(String::len).max().unwrap_or(0);
    for name in &names {
        let opened = dir.existing_key(name).and_then(|path| {
            keyfile::open(&identity, &path, Some(me_listed)).map(|key| (path, key))
        });
        match opened {
            Ok((path, key)) => {
                mask(global, &key);
                let count = keyfile::read_file(&path)
                    .ok()
                    .and_then(|b| keyfile::recipient_count(&b));
                let provider = key
                    .provider
                    .map(|p| format!("provider {p}, "))
                    .unwrap_or_default();
                let recipients =
                    count.map_or_else(|| "? recipients".into(), |n| format!("{n} recipient(s)"));
                println!("ok      {name:<width$}  {provider}{recipients}");
                if count.is_some_and(|n| n != listed.len()) {
                    stale.push(name.clone());
                }
            }
            Err(e) => {
                println!("FAILED  {name:<width$}  {}", short_reason(&e));
                failures.push(e);
            }
        }
    }
    if !stale.is_empty() {
        eprintln!(
            "warning: {} is encrypted to a different number of recipients than `{}` lists ({}); run `byok-flow keys recipients sync` to re-encrypt",
            stale.join(", "),
            dir.recipients_path().display(),
            listed.len()
        );
    }
    if failures.is_empty() {
        return Ok(Exit::Success);
    }
    let mut message = format!(
        "{} of {} key files cannot be opened with the identity from {}:",
        failures.len(),
        names.len(),
        identity.place()
    );
    for failure in &failures {
        message.push_str(&format!("\n  - {failure}"));
    }
    let mut error = Error::new(Exit::Keys, message);
    if let Some(hint) = failures[0].hint() {
        error = error.hint(hint);
    }
    Err(error)
}

/// A few words on why a file did not open, for the per-file line (the full
/// message follows on stderr).
fn short_reason(e: &KeyError) -> String {
    match e {
        KeyError::WrongIdentity { .. } => "not encrypted to your identity".into(),
        KeyError::Corrupt { reason, .. } => reason.clone(),
        KeyError::BadPlaintext { reason, .. } => format!("does not hold a key: {reason}"),
        KeyError::NotAKeyFile { what, .. } => format!("not a key file: {what}"),
        other => other.to_string(),
    }
}
