//! The key files' texts: a decrypted key file's plaintext (`parse_plaintext`), the
//! same bytes as `.byok/recipients` (`RecipientsFile::parse`), and as an age file
//! (`recipient_count`, which reads the header without a key, and `decrypt`).

#![no_main]

use std::sync::OnceLock;

use byok_flow::keys::Identity;
use byok_flow::keys::identity::{Place, generate};
use byok_flow::keys::keyfile::{decrypt, parse_plaintext, recipient_count};
use byok_flow::keys::recipients::RecipientsFile;
use libfuzzer_sys::fuzz_target;
use secrecy::ExposeSecret;

fn identity() -> &'static Identity {
    static IDENTITY: OnceLock<Identity> = OnceLock::new();
    IDENTITY.get_or_init(|| {
        let (secret, _) = generate();
        Identity::parse(secret.expose_secret(), Place::Flag("fuzz".into()))
            .expect("a generated identity parses")
    })
}

fuzz_target!(|data: &[u8]| {
    if let Ok(key) = parse_plaintext(data) {
        for host in &key.allow_hosts {
            let _ = host.to_string();
        }
    }
    if let Ok(file) = RecipientsFile::parse(&String::from_utf8_lossy(data)) {
        let _ = file.recipients();
        let _ = file.labelled();
    }
    let _ = recipient_count(data);
    let _ = decrypt(identity(), data);
});
