//! Key files and recipients: a decrypted key file's plaintext, `.byok/recipients`
//! and the header of an age file.

use byok_flow::keys::keyfile::{parse_plaintext, recipient_count};
use byok_flow::keys::recipients::RecipientsFile;
use proptest::prelude::*;
use proptest::sample::select;

use super::config;

const RECIPIENT: &str = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p";
const SSH: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHsKLqeplhpW+uObz5dvMgjz1OxfM/XXUB+VHtZ6isGN alice@example";

const KEY_PARTS: &[&str] = &[
    "key = ",
    "provider = ",
    "allow_hosts = [",
    "]",
    "\"sk-ant-abc\"",
    "\"anthropic\"",
    "\"*.example.com\"",
    "\"127.0.0.1:8080\"",
    "\"[::1]:443\"",
    "\"https://x\"",
    "\"*.\"",
    "'''",
    "\"\"\"",
    "\\u0000",
    "=",
    ",",
    "\n",
    "\r\n",
    " ",
    "#",
    "[table]",
    "sk-bare-key",
    "é",
    RECIPIENT,
    SSH,
    "ssh-rsa AAAA",
    "age1yubikey1qabc",
    "age1",
    "-----BEGIN AGE ENCRYPTED FILE-----\n",
    "-----END AGE ENCRYPTED FILE-----\n",
    "age-encryption.org/v1\n",
    "-> X25519 abc\n",
    "-> x-grease\n",
    "--- ",
    "YWdlLWVuY3J5cHRpb24ub3JnL3YxCg==\n",
];

fn key_text() -> BoxedStrategy<Vec<u8>> {
    prop_oneof![
        5 => prop::collection::vec(
            prop_oneof![6 => select(KEY_PARTS).prop_map(str::to_string), 1 => "\\PC{1,6}"],
            0..24,
        )
        .prop_map(|parts| parts.concat().into_bytes()),
        1 => prop::collection::vec(any::<u8>(), 0..256),
    ]
    .boxed()
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn key_files_and_recipients_are_read_or_refused(bytes in key_text()) {
        let _ = parse_plaintext(&bytes);
        if let Ok(file) = RecipientsFile::parse(&String::from_utf8_lossy(&bytes)) {
            let _ = file.recipients();
            let _ = file.labelled();
        }
        let _ = recipient_count(&bytes);
    }
}
