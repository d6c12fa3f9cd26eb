//! Bring your own key (SPEC §4): API keys kept as age-encrypted files in
//! `.byok/keys/`, the recipients who can open them in `.byok/recipients`, the
//! identity that decrypts, and the rule for where a key may be sent.
//!
//! This is the only module that touches the `age` crate. It decides and
//! decrypts; the `keys` command prints, and the runner asks a [`KeyStore`] for a
//! key right before a call. A key lives only in an [`ApiKey`], which is zeroed on
//! drop and never printed.

pub mod atomic;
pub mod entry;
pub mod error;
pub mod hosts;
pub mod identity;
pub mod keyfile;
pub mod layout;
pub mod plan;
pub mod recipients;
pub mod redact;
pub mod reference;
pub mod rekey;
pub mod secret;
pub mod store;

pub use error::KeyError;
pub use hosts::{AllowHosts, HostError, HostPattern, check_destination};
pub use identity::{Identity, IdentitySource};
pub use keyfile::Key;
pub use layout::KeysDir;
pub use plan::{KeyProblem, KeyUse, call_key, plan};
pub use recipients::Recipient;
pub use reference::KeyRef;
pub use secret::ApiKey;
pub use store::KeyStore;

/// The environment variable that adds allowed hosts, like `--allow-host`.
pub const ENV_ALLOW_HOSTS: &str = "BYOK_FLOW_ALLOW_HOSTS";
