//! Re-encrypting every key file when the recipients change, so that a failure
//! part way never leaves a file that neither the old nor the new recipients can
//! open: every file is decrypted first (nothing changes if one fails), every new
//! file is written in full under a temporary name, and only then is each renamed
//! over its old one, the recipients list last.

use super::atomic::{PUBLIC, Staged};
use super::error::KeyError;
use super::identity::Identity;
use super::keyfile;
use super::layout::KeysDir;
use super::recipients::RecipientsFile;

/// Re-encrypts every key file in `dir` to the recipients of `new_list`, then
/// writes `new_list` as `.byok/recipients`. Returns how many key files were
/// re-encrypted.
pub fn reencrypt_all(
    dir: &KeysDir,
    identity: &Identity,
    new_list: &RecipientsFile,
) -> Result<usize, KeyError> {
    let recipients = new_list.recipients();
    if recipients.is_empty() {
        return Err(KeyError::NoRecipients {
            path: dir.recipients_path(),
        });
    }
    let listed = Some(
        dir.read_recipients()
            .is_ok_and(|old| identity.is_among(&old.recipients())),
    );
    let names = dir.key_names()?;
    let mut staged = Vec::with_capacity(names.len());
    for name in &names {
        let path = dir.existing_key(name)?;
        let plain = keyfile::open_plaintext(identity, &path, listed)?;
        let sealed = keyfile::encrypt(&recipients, &plain).map_err(|reason| KeyError::Corrupt {
            path: path.clone(),
            reason: format!("cannot encrypt it again: {reason}"),
        })?;
        let file = Staged::write(&path, &sealed, PUBLIC)
            .map_err(|e| KeyError::io("write a new copy of", &path, e))?;
        staged.push(file);
    }
    let recipients_path = dir.recipients_path();
    let list = Staged::write(&recipients_path, new_list.render().as_bytes(), PUBLIC)
        .map_err(|e| KeyError::io("write", &recipients_path, e))?;
    let total = staged.len();
    for (done, (file, name)) in staged.into_iter().zip(&names).enumerate() {
        // The rest of `staged` is dropped on error, removing its temporary files.
        file.commit().map_err(|e| KeyError::Interrupted {
            done,
            total,
            reason: format!("cannot replace `{}`: {e}", dir.key_path(name).display()),
        })?;
    }
    list.commit().map_err(|e| KeyError::Interrupted {
        done: total,
        total,
        reason: format!("cannot replace `{}`: {e}", recipients_path.display()),
    })?;
    Ok(total)
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;
    use crate::keys::identity::{Place, generate};
    use crate::keys::recipients::Recipient;

    fn person() -> (Identity, String) {
        let (text, public) = generate();
        (
            Identity::parse(text.expose_secret(), Place::Flag("t".into())).unwrap(),
            public,
        )
    }

    fn setup(recipients: &[&str], keys: &[(&str, &[u8])]) -> (tempfile::TempDir, KeysDir) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = KeysDir::at(tmp.path());
        std::fs::create_dir_all(dir.keys_path()).unwrap();
        std::fs::write(dir.recipients_path(), recipients.join("\n")).unwrap();
        let list: Vec<Recipient> = recipients.iter().map(|r| r.parse().unwrap()).collect();
        for (name, plain) in keys {
            std::fs::write(dir.key_path(name), keyfile::encrypt(&list, plain).unwrap()).unwrap();
        }
        (tmp, dir)
    }

    #[test]
    fn adding_a_recipient_lets_them_open_every_file() {
        let (alice, a) = person();
        let (bob, b) = person();
        let (_tmp, dir) = setup(&[&a], &[("k1", b"sk-one"), ("k2", b"key = \"sk-two\"")]);
        let mut list = dir.read_recipients().unwrap();
        list.add(&b.parse().unwrap(), &b, Some("bob"));
        assert_eq!(reencrypt_all(&dir, &alice, &list).unwrap(), 2);
        for (who, name, want) in [(&alice, "k1", "sk-one"), (&bob, "k2", "sk-two")] {
            let key = keyfile::open(who, &dir.key_path(name), None).unwrap();
            assert_eq!(key.api_key.expose_secret(), want);
        }
        assert!(dir.read_recipients().unwrap().render().contains("# bob"));
        // Bare plaintexts stay bare (what `age -R` made stays what it was).
        let plain = keyfile::open_plaintext(&bob, &dir.key_path("k1"), None).unwrap();
        assert_eq!(&plain[..], b"sk-one");
    }

    #[test]
    fn a_file_that_does_not_open_changes_nothing() {
        let (alice, a) = person();
        let (_, c) = person();
        let (_tmp, dir) = setup(&[&a], &[("k1", b"sk-one")]);
        // A second file encrypted to someone else only.
        std::fs::write(
            dir.key_path("k2"),
            keyfile::encrypt(&[c.parse().unwrap()], b"x").unwrap(),
        )
        .unwrap();
        let before: Vec<Vec<u8>> = ["k1", "k2"]
            .iter()
            .map(|n| std::fs::read(dir.key_path(n)).unwrap())
            .collect();
        let mut list = dir.read_recipients().unwrap();
        list.add(&c.parse().unwrap(), &c, None);
        let err = reencrypt_all(&dir, &alice, &list).unwrap_err();
        assert!(
            matches!(
                err,
                KeyError::WrongIdentity {
                    listed: Some(true),
                    ..
                }
            ),
            "{err:?}"
        );
        let after: Vec<Vec<u8>> = ["k1", "k2"]
            .iter()
            .map(|n| std::fs::read(dir.key_path(n)).unwrap())
            .collect();
        assert_eq!(before, after);
        assert_eq!(std::fs::read_to_string(dir.recipients_path()).unwrap(), a);
        assert_eq!(
            std::fs::read_dir(dir.keys_path()).unwrap().count(),
            2,
            "no temp files left"
        );
    }
}
