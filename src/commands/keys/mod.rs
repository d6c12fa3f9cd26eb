//! `byok-flow keys`: make an identity, add, list, check and remove key files, and
//! edit the recipients (re-encrypting every key file). Results go to stdout,
//! notes to stderr; the work lives in `crate::keys`.

mod add;
mod init;
mod list;
mod recipients;

use std::path::{Path, PathBuf};

use clap::Subcommand;

use crate::error::{Exit, Result};
use crate::keys::recipients::{NEW_FILE_HEADER, RecipientsFile};
use crate::keys::{IdentitySource, KeyError, KeysDir};
use crate::settings::Global;

pub use recipients::RecipientsCommand;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: KeysCommand,

    /// The `.byok` folder [default: the first `.byok/` in this folder or above].
    #[arg(long = "keys", value_name = "DIR", global = true)]
    pub keys_dir: Option<PathBuf>,

    /// The age identity file [default: `BYOK_FLOW_AGE_KEY`, `BYOK_FLOW_AGE_KEY_FILE`,
    /// `SOPS_AGE_KEY`, `SOPS_AGE_KEY_FILE`, then `~/.config/byok-flow/identity.txt`].
    #[arg(long, value_name = "FILE", global = true)]
    pub identity: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Make an age identity (never overwriting one) and print its public recipient.
    Init {
        /// Also list the recipient in `.byok/recipients` (made here if there is none).
        #[arg(long)]
        add_recipient: bool,
    },
    /// Read an API key from stdin (no echo on a terminal) and encrypt it to every
    /// recipient as `.byok/keys/NAME.age`.
    Add {
        /// The key's name: `.byok/keys/NAME.age`, and `key: NAME` in a workflow.
        name: String,
        /// The provider the key belongs to [default: NAME, if it is a built-in provider].
        #[arg(long, value_name = "PROVIDER")]
        provider: Option<String>,
        /// Another host this key may be sent to, like `proxy.example.com` (repeatable).
        #[arg(long = "allow-host", value_name = "HOST")]
        allow_hosts: Vec<String>,
        /// Replace an existing key file (to rotate a key).
        #[arg(long)]
        replace: bool,
    },
    /// List the key files: name, provider, allowed hosts, recipients. Never the key.
    List,
    /// Delete a key file.
    Rm {
        /// The key's name.
        name: String,
    },
    /// Decrypt every key file with your identity and report which ones open.
    Check,
    /// List, add or remove recipients; adding or removing re-encrypts every key file.
    #[command(subcommand)]
    Recipients(RecipientsCommand),
}

pub fn run(args: &Args, global: Global) -> Result<Exit> {
    let ctx = Context::new(args);
    match &args.command {
        KeysCommand::Init { add_recipient } => init::init(&ctx, *add_recipient, global),
        KeysCommand::Add {
            name,
            provider,
            allow_hosts,
            replace,
        } => add::add(
            &ctx,
            name,
            provider.as_deref(),
            allow_hosts,
            *replace,
            global,
        ),
        KeysCommand::List => list::list(&ctx, global),
        KeysCommand::Rm { name } => add::remove(&ctx, name, global),
        KeysCommand::Check => list::check(&ctx, global),
        KeysCommand::Recipients(cmd) => recipients::run(&ctx, cmd, global),
    }
}

/// What every `keys` subcommand resolves from its arguments.
pub(crate) struct Context {
    pub(crate) keys_dir: Option<PathBuf>,
    pub(crate) identity: IdentitySource,
    pub(crate) identity_flag: Option<PathBuf>,
}

impl Context {
    fn new(args: &Args) -> Self {
        Context {
            keys_dir: args.keys_dir.clone(),
            identity: IdentitySource::new(args.identity.clone()),
            identity_flag: args.identity.clone(),
        }
    }

    /// The `.byok` folder, rid of what a killed `keys` command left in it.
    pub(crate) fn dir(&self) -> Result<KeysDir, KeyError> {
        let dir = KeysDir::locate(self.keys_dir.as_deref(), Path::new("."))?;
        dir.sweep();
        Ok(dir)
    }
}

pub(crate) fn note(global: Global, text: &str) {
    if !global.quiet {
        eprintln!("{text}");
    }
}

pub(crate) fn read_or_new_recipients(dir: &KeysDir) -> Result<RecipientsFile, KeyError> {
    match dir.read_recipients() {
        Err(KeyError::NoRecipientsFile { .. }) => {
            Ok(RecipientsFile::parse(NEW_FILE_HEADER).unwrap_or_default())
        }
        other => other,
    }
}
