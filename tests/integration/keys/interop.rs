//! Interoperability: files the real `age` CLI makes open in byok-flow, files
//! byok-flow makes open with `age -d`, and SSH ed25519 keys as recipients and
//! identities. The `age` tests are ignored by a plain `cargo test` and fail
//! (never skip) when `age` is missing; CI installs it and runs them.
//! SSH keys come from `ssh-keygen` when it is installed, else from the
//! `ssh-key` crate, which writes the same OpenSSH format.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::{Project, fails, ok, stdout};

/// The `age` (or `age-keygen`) binary; panics with how to install it.
fn age_cli(program: &str) -> Command {
    let found = Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    assert!(
        found,
        "the `{program}` CLI is needed for this test: `apt-get install age`"
    );
    Command::new(program)
}

fn run_age(mut cmd: Command, stdin: &[u8]) -> std::process::Output {
    use std::io::Write;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "age failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// An ed25519 SSH key pair in `dir`: `(private key path, public key line)`.
fn ssh_keypair(dir: &Path, name: &str, passphrase: &str) -> (PathBuf, String) {
    let private = dir.join(name);
    let keygen = Command::new("ssh-keygen")
        .args([
            "-q",
            "-t",
            "ed25519",
            "-C",
            "member@laptop",
            "-N",
            passphrase,
            "-f",
        ])
        .arg(&private)
        .stdin(Stdio::null())
        .output();
    match keygen {
        Ok(out) if out.status.success() => {}
        _ => {
            use ssh_key::{Algorithm, LineEnding, PrivateKey, rand_core::OsRng};
            let mut key = PrivateKey::random(&mut OsRng, Algorithm::Ed25519).unwrap();
            key.set_comment("member@laptop");
            if !passphrase.is_empty() {
                key = key.encrypt(&mut OsRng, passphrase).unwrap();
            }
            key.write_openssh_file(&private, LineEnding::LF).unwrap();
            key.public_key()
                .write_openssh_file(&private.with_extension("pub"))
                .unwrap();
        }
    }
    let public = std::fs::read_to_string(private.with_extension("pub")).unwrap();
    (private, public.trim().to_string())
}

#[test]
fn ssh_ed25519_recipients_and_identities() {
    let p = Project::new();
    p.init();
    let (private, public) = ssh_keypair(p.path(), "id_ed25519", "");
    // The `.pub` file itself can be given.
    let out = ok(p.run(&["keys", "recipients", "add", "id_ed25519.pub"]));
    assert!(
        super::stderr(&out).contains("Added `ssh-ed25519 "),
        "{}",
        super::stderr(&out)
    );
    let list = stdout(&ok(p.run(&["keys", "recipients", "list"])));
    assert!(list.contains("# member@laptop"), "{list}");
    p.add("anthropic", "sk-ssh");
    ok(p.run(&["keys", "check", "--identity", private.to_str().unwrap()]));
    // Also given as words, as pasted from the `.pub` file.
    let words: Vec<&str> = public.split_whitespace().collect();
    let mut args = vec!["keys", "recipients", "rm"];
    args.extend(&words);
    ok(p.run(&args));
    fails(
        &p.run(&["keys", "check", "--identity", private.to_str().unwrap()]),
        4,
        &["is not encrypted to"],
    );
    // A private key given as a recipient is refused without echo.
    fails(
        &p.run(&["keys", "recipients", "add", "id_ed25519"]),
        2,
        &["is a private key", ".pub"],
    );
}

#[test]
fn a_passphrase_protected_ssh_key_without_a_terminal() {
    let p = Project::new();
    p.init();
    let (private, _) = ssh_keypair(p.path(), "id_locked", "correct horse");
    ok(p.run(&["keys", "recipients", "add", "id_locked.pub"]));
    p.add("anthropic", "sk-ssh");
    let out = p.run(&["keys", "check", "--identity", private.to_str().unwrap()]);
    fails(
        &out,
        4,
        &[
            "passphrase-protected and there is no terminal",
            "BYOK_FLOW_AGE_KEY",
        ],
    );
}

#[test]
#[ignore = "needs the age CLI"]
fn files_made_by_the_age_cli_open_in_byok_flow() {
    let p = Project::new();
    p.init();
    let (private, _) = ssh_keypair(p.path(), "id_ed25519", "");
    ok(p.run(&["keys", "recipients", "add", "id_ed25519.pub"]));
    // The README's by-hand recipe: a bare key, encrypted to the recipients file.
    let mut age = age_cli("age");
    age.args([
        "-R",
        ".byok/recipients",
        "-a",
        "-o",
        ".byok/keys/openai.age",
    ])
    .current_dir(p.path());
    run_age(age, b"sk-openai-by-hand\n");
    let out = ok(p.run(&["keys", "check"]));
    assert!(
        stdout(&out).contains("ok      openai  2 recipient(s)"),
        "{}",
        stdout(&out)
    );
    ok(p.run(&["keys", "check", "--identity", private.to_str().unwrap()]));
    let list = stdout(&ok(p.run(&["keys", "list"])));
    assert!(
        list.contains("openai  -         -              2"),
        "{list}"
    );
    // And a TOML plaintext made by hand.
    let mut age = age_cli("age");
    age.args(["-R", ".byok/recipients", "-a", "-o", ".byok/keys/corp.age"])
        .current_dir(p.path());
    run_age(
        age,
        b"provider = \"corp\"\nkey = \"sk-corp\"\nallow_hosts = [\"gw.corp.example\"]\n",
    );
    let list = stdout(&ok(p.run(&["keys", "list"])));
    assert!(
        list.contains("corp    corp      gw.corp.example  2"),
        "{list}"
    );
}

#[test]
#[ignore = "needs the age CLI"]
fn files_made_by_byok_flow_open_with_age() {
    let p = Project::new();
    p.init();
    let (private, _) = ssh_keypair(p.path(), "id_ed25519", "");
    ok(p.run(&["keys", "recipients", "add", "id_ed25519.pub"]));
    ok(p.run_stdin(
        &["keys", "add", "anthropic", "--allow-host", "proxy.example"],
        b"sk-ant-for-age\n",
    ));
    let want =
        "provider = \"anthropic\"\nkey = \"sk-ant-for-age\"\nallow_hosts = [\"proxy.example\"]\n";
    for identity in [p.identity(), private] {
        let mut age = age_cli("age");
        age.arg("-d")
            .arg("-i")
            .arg(&identity)
            .arg(p.key_file("anthropic"));
        let out = run_age(age, b"");
        assert_eq!(String::from_utf8_lossy(&out.stdout), want);
    }
}

#[test]
#[ignore = "needs the age CLI"]
fn an_age_keygen_identity_works() {
    let p = Project::new();
    let mut keygen = age_cli("age-keygen");
    keygen.args(["-o", "ci.txt"]).current_dir(p.path());
    run_age(keygen, b"");
    let mut public = age_cli("age-keygen");
    public.args(["-y", "ci.txt"]).current_dir(p.path());
    let recipient = String::from_utf8(run_age(public, b"").stdout).unwrap();
    std::fs::create_dir_all(p.path().join(".byok")).unwrap();
    ok(p.run(&["keys", "recipients", "add", recipient.trim()]));
    p.add("anthropic", "sk-ci");
    let out = p
        .cmd(&["keys", "check"])
        .env("BYOK_FLOW_AGE_KEY_FILE", p.path().join("ci.txt"))
        .output()
        .unwrap();
    ok(out);
}
