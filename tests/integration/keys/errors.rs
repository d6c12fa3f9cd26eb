//! Every way a key or identity can be wrong: each exits 4, says what to do, and
//! changes no file: neither the read-only `keys check` nor `keys recipients
//! sync`, which would rewrite every key file.

use super::{Project, fails, snapshot};

/// A project with one identity, two keys, and a broken file made by `damage`.
fn with_damaged_key(damage: impl FnOnce(&Project)) -> Project {
    let p = Project::new();
    p.init();
    p.add("anthropic", "sk-a");
    p.add("openai", "sk-o");
    damage(&p);
    p
}

/// Runs `keys check` and `keys recipients sync`: both fail with exit 4 and
/// `fragments`, and no file changes.
fn both_fail_changing_nothing(p: &Project, fragments: &[&str]) {
    let before = p.files();
    for args in [&["keys", "check"][..], &["keys", "recipients", "sync"]] {
        let out = p.run(args);
        fails(&out, 4, fragments);
        assert_eq!(p.files(), before, "`{}` changed a file", args.join(" "));
    }
}

#[test]
fn wrong_identity() {
    let p = with_damaged_key(|_| {});
    let other = Project::new();
    other.init();
    std::fs::copy(other.identity(), p.identity()).unwrap();
    both_fail_changing_nothing(
        &p,
        &[
            "is not encrypted to the age identity from",
            "keys recipients add age1",
        ],
    );
    snapshot("keys_wrong_identity", &p.run(&["keys", "check"]));
}

/// Decodes an armored age file, lets `edit` change the bytes, and armors it again.
fn tamper(path: &std::path::Path, edit: impl FnOnce(&mut Vec<u8>)) {
    use std::io::{Read, Write};
    let armored = std::fs::read(path).unwrap();
    let mut bytes = Vec::new();
    age::armor::ArmoredReader::new(&armored[..])
        .read_to_end(&mut bytes)
        .unwrap();
    edit(&mut bytes);
    let mut out = Vec::new();
    let mut w =
        age::armor::ArmoredWriter::wrap_output(&mut out, age::armor::Format::AsciiArmor).unwrap();
    w.write_all(&bytes).unwrap();
    w.finish().unwrap();
    std::fs::write(path, out).unwrap();
}

#[test]
fn corrupted_contents() {
    let p = with_damaged_key(|p| {
        tamper(&p.key_file("openai"), |bytes| {
            let last = bytes.len() - 1;
            bytes[last] ^= 1;
        });
    });
    both_fail_changing_nothing(
        &p,
        &[
            "openai.age` cannot be decrypted",
            "contents are damaged",
            "git checkout",
        ],
    );
}

#[test]
fn corrupted_header() {
    let p = with_damaged_key(|p| {
        tamper(&p.key_file("openai"), |bytes| {
            let mac = bytes.windows(4).position(|w| w == b"\n---").unwrap() + 6;
            bytes[mac] = if bytes[mac] == b'A' { b'B' } else { b'A' };
        });
    });
    both_fail_changing_nothing(&p, &["openai.age` cannot be decrypted", "header"]);
}

#[test]
fn a_damaged_recipient_stanza_reads_as_not_for_me_and_says_it_may_be_damaged() {
    // age cannot tell a damaged stanza from one for someone else: the hint says both.
    let p = with_damaged_key(|p| {
        tamper(&p.key_file("openai"), |bytes| {
            let stanza = bytes.windows(9).position(|w| w == b"-> X25519").unwrap();
            let body = stanza + bytes[stanza..].iter().position(|b| *b == b'\n').unwrap() + 3;
            bytes[body] = if bytes[body] == b'A' { b'B' } else { b'A' };
        });
    });
    both_fail_changing_nothing(
        &p,
        &[
            "openai.age` is not encrypted to the age identity",
            "may be damaged",
        ],
    );
}

#[test]
fn truncated_armor() {
    let p = with_damaged_key(|p| {
        let path = p.key_file("openai");
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, &text[..text.len() / 2]).unwrap();
    });
    both_fail_changing_nothing(&p, &["openai.age` cannot be decrypted", "cut short"]);
}

#[test]
fn not_an_age_file() {
    let p =
        with_damaged_key(|p| std::fs::write(p.key_file("openai"), "sk-plaintext-oops\n").unwrap());
    both_fail_changing_nothing(&p, &["it is not an age file"]);
}

#[test]
fn a_file_encrypted_to_someone_else() {
    let p = with_damaged_key(|p| {
        let stranger = Project::new();
        stranger.init();
        stranger.add("openai", "sk-theirs");
        std::fs::copy(stranger.key_file("openai"), p.key_file("openai")).unwrap();
    });
    both_fail_changing_nothing(
        &p,
        &[
            "openai.age` is not encrypted to the age identity",
            "encrypted before you were added",
        ],
    );
}

#[test]
fn an_empty_recipients_file() {
    let p = Project::new();
    p.init();
    std::fs::write(p.path().join(".byok/recipients"), "# everyone left\n\n").unwrap();
    let before = p.files();
    let out = p.run_stdin(&["keys", "add", "anthropic"], b"sk-a\n");
    fails(
        &out,
        4,
        &["lists no recipients", "keys init --add-recipient"],
    );
    fails(&p.run(&["keys", "check"]), 4, &["lists no recipients"]);
    assert_eq!(p.files(), before);
    std::fs::remove_file(p.path().join(".byok/recipients")).unwrap();
    fails(
        &p.run_stdin(&["keys", "add", "anthropic"], b"sk-a\n"),
        4,
        &["recipients` does not exist"],
    );
}

#[test]
fn a_missing_key_file() {
    let p = with_damaged_key(|_| {});
    let before = p.files();
    let out = p.run(&["keys", "rm", "gemini"]);
    fails(
        &out,
        4,
        &[
            "key `gemini` has no file",
            "keys add gemini",
            "the key files: `anthropic`, `openai`",
        ],
    );
    assert_eq!(p.files(), before);
}

#[test]
fn no_identity_anywhere() {
    let p = with_damaged_key(|p| std::fs::remove_file(p.identity()).unwrap());
    both_fail_changing_nothing(
        &p,
        &[
            "no age identity found",
            "BYOK_FLOW_AGE_KEY_FILE",
            "keys init",
        ],
    );
    snapshot("keys_no_identity", &p.run(&["keys", "check"]));
}

#[test]
fn a_damaged_identity() {
    let p = with_damaged_key(|p| {
        let text = std::fs::read_to_string(p.identity()).unwrap();
        std::fs::write(
            p.identity(),
            text.replace("AGE-SECRET-KEY-1", "AGE-SECRET-KEY-X"),
        )
        .unwrap();
    });
    both_fail_changing_nothing(&p, &["cannot be used: line 3 is not an age identity"]);
}

#[test]
fn a_plaintext_that_is_not_a_key() {
    let p = with_damaged_key(|p| {
        let recipients = byok_flow::keys::KeysDir::at(&p.path().join(".byok"))
            .recipients()
            .unwrap();
        let sealed =
            byok_flow::keys::keyfile::encrypt(&recipients, b"key = \"sk-x\"\nallow_host = []\n")
                .unwrap();
        std::fs::write(p.key_file("openai"), sealed).unwrap();
    });
    // `sync` re-encrypts the plaintext as is, so only `check` reads it as a key.
    let before = p.files();
    fails(
        &p.run(&["keys", "check"]),
        4,
        &[
            "opened, but it does not hold a key",
            "a field byok-flow does not know",
        ],
    );
    assert_eq!(p.files(), before);
}
