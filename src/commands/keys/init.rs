//! `keys init`: make an age identity (never overwriting one), print its
//! recipient, and optionally list it in `.byok/recipients`.

use std::path::Path;

use secrecy::ExposeSecret;
use secrecy::zeroize::Zeroizing;

use super::{Context, note, read_or_new_recipients};
use crate::error::{Error, Exit, Result};
use crate::keys::atomic::{self, PUBLIC, SECRET};
use crate::keys::identity::{self, Identity, Place};
use crate::keys::{KeyError, KeysDir, Recipient, layout};
use crate::settings::Global;

pub(super) fn init(ctx: &Context, add_recipient: bool, global: Global) -> Result<Exit> {
    let path = match &ctx.identity_flag {
        Some(p) => p.clone(),
        None => ctx.identity.default_path().ok_or_else(|| {
            Error::usage("cannot find your home folder (HOME is not set)")
                .hint("pass `--identity FILE`")
        })?,
    };
    let public = if path.exists() {
        let existing = read_existing_identity(&path)?;
        note(
            global,
            &format!(
                "Using the existing identity `{}` (it is never overwritten).",
                path.display()
            ),
        );
        existing.public()[0].clone()
    } else {
        create_identity(&path)?;
        note(
            global,
            &format!(
                "Created the age identity `{}` (mode 600). Keep it private and back it up: it opens every key encrypted to it.",
                path.display()
            ),
        );
        let created = read_existing_identity(&path)?;
        created.public()[0].clone()
    };
    println!("{public}");
    if add_recipient {
        add_own_recipient(ctx, &public, global)?;
    } else {
        note(
            global,
            "Your public recipient is above. List it with `byok-flow keys init --add-recipient`, or send it to a teammate to add with `byok-flow keys recipients add`.",
        );
    }
    Ok(Exit::Success)
}

fn read_existing_identity(path: &Path) -> Result<Identity> {
    let mut bytes = Zeroizing::new(Vec::new());
    crate::read::open(path)
        .and_then(|file| crate::read::into(file, 64 * 1024, &mut bytes))
        .map_err(|e| KeyError::io("read the identity file", path, e.into()))?;
    let text = Zeroizing::new(String::from_utf8_lossy(&bytes).into_owned());
    Identity::parse(&text, Place::Flag(path.to_path_buf())).map_err(|e| {
        let reason = match e {
            KeyError::BadIdentity { reason, .. } => reason,
            other => other.to_string(),
        };
        Error::from(KeyError::IdentityExists {
            path: path.to_path_buf(),
            reason,
        })
    })
}

fn create_identity(path: &Path) -> Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        atomic::create_dir(parent, 0o700)
            .map_err(|e| KeyError::io("create the folder", parent, e))?;
        // A `keys init` killed before its rename left a whole identity there.
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        atomic::sweep(parent, |t| Some(t) == name.as_deref());
    }
    let (text, _) = identity::generate();
    atomic::write_new(path, text.expose_secret().as_bytes(), SECRET).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            Error::from(KeyError::IdentityExists {
                path: path.to_path_buf(),
                reason: "it appeared while byok-flow was making one".into(),
            })
        } else {
            Error::from(KeyError::io("write the identity file", path, e))
        }
    })
}

fn add_own_recipient(ctx: &Context, public: &str, global: Global) -> Result<()> {
    let dir = match &ctx.keys_dir {
        Some(d) => KeysDir::at(d),
        None => KeysDir::find(Path::new("."))
            .unwrap_or_else(|| KeysDir::at(Path::new(layout::DIR_NAME))),
    };
    let keys_path = dir.keys_path();
    atomic::create_dir(&keys_path, 0o755)
        .map_err(|e| KeyError::io("create the folder", &keys_path, e))?;
    dir.sweep();
    dir.ignore_temp_files()?;
    let mut list = read_or_new_recipients(&dir)?;
    let recipient: Recipient = public.parse().map_err(|error| KeyError::BadRecipientArg {
        text: public.to_string(),
        error,
    })?;
    let path = dir.recipients_path();
    if list.contains(&recipient) {
        note(
            global,
            &format!("`{}` already lists this recipient.", path.display()),
        );
        return Ok(());
    }
    list.add(&recipient, public, None);
    atomic::replace(&path, list.render().as_bytes(), PUBLIC)
        .map_err(|e| KeyError::io("write", &path, e))?;
    note(global, &format!("Added it to `{}`.", path.display()));
    let count = dir.key_names()?.len();
    if count > 0 {
        note(
            global,
            &format!(
                "The {count} existing key file(s) are not encrypted to you yet: commit this change, then someone who can open them runs `byok-flow keys recipients sync`."
            ),
        );
    }
    Ok(())
}
