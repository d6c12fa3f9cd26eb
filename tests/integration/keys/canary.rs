//! A key with a unique marker goes through every `keys` command and error path
//! at `-vvv`: the marker appears in no stdout, stderr or file written (key
//! files are encrypted; nothing else may hold it). The same for an identity.

use std::process::Output;

use super::{Project, stderr};

const CANARY: &str = "sk-CANARY-5c1e0f9a";

fn assert_clean(out: &Output, what: &str) {
    for (stream, text) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
        let text = String::from_utf8_lossy(text);
        assert!(
            !text.contains("CANARY"),
            "`{what}` printed the marker on {stream}:\n{text}"
        );
    }
}

fn assert_no_file_holds_it(p: &Project) {
    for (path, bytes) in p.files() {
        let text = String::from_utf8_lossy(&bytes);
        assert!(
            !text.contains("CANARY"),
            "{} holds the marker",
            path.display()
        );
    }
}

#[test]
fn the_key_never_leaks_from_any_command() {
    let p = Project::new();
    let run = |args: &[&str], stdin: &[u8]| {
        let mut all = vec!["-vvv"];
        all.extend_from_slice(args);
        let out = p.run_stdin(&all, stdin);
        assert_clean(&out, &args.join(" "));
        out
    };
    run(&["keys", "init", "--add-recipient"], b"");
    let key = format!("{CANARY}\n");
    run(&["keys", "add", "anthropic"], key.as_bytes());
    run(
        &[
            "keys",
            "add",
            "proxy",
            "--provider",
            "corp",
            "--allow-host",
            "proxy.example",
        ],
        key.as_bytes(),
    );
    run(&["keys", "list"], b"");
    run(&["keys", "check"], b"");
    let (_, other) = byok_flow::keys::identity::generate();
    run(&["keys", "recipients", "add", &other], b"");
    run(&["keys", "recipients", "list"], b"");
    run(&["keys", "recipients", "rm", &other], b"");
    run(&["keys", "recipients", "sync"], b"");

    // Error paths that see the key: refused input, an existing name, a plaintext
    // that is not a key, a plaintext with the marker in an unknown field.
    run(
        &["keys", "add", "twice"],
        format!("{CANARY}\n{CANARY}\n").as_bytes(),
    );
    run(
        &["keys", "add", "spaced"],
        format!("{CANARY} {CANARY}").as_bytes(),
    );
    run(&["keys", "add", "anthropic"], key.as_bytes());
    let recipients = byok_flow::keys::KeysDir::at(&p.path().join(".byok"))
        .recipients()
        .unwrap();
    for (name, plain) in [
        ("multi", format!("{CANARY} one\n{CANARY} two\n")),
        ("field", format!("{CANARY} = \"x\"\nkey = \"{CANARY}\"\n")),
        (
            "hosts",
            format!("key = \"{CANARY}\"\nallow_hosts = [\"https://{CANARY}\"]\n"),
        ),
        ("typed", format!("key = [\"{CANARY}\"]\n")),
    ] {
        let sealed = byok_flow::keys::keyfile::encrypt(&recipients, plain.as_bytes()).unwrap();
        std::fs::write(p.key_file(name), sealed).unwrap();
    }
    let out = run(&["keys", "check"], b"");
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    run(&["keys", "list"], b"");
    assert_no_file_holds_it(&p);
}

#[test]
fn a_broken_identity_is_never_quoted() {
    let p = Project::new();
    p.init();
    p.add("anthropic", "sk-a");
    let fake = "AGE-SECRET-KEY-1CANARYCANARYCANARYCANARY";
    for (var, value) in [
        ("BYOK_FLOW_AGE_KEY", fake.to_string()),
        ("BYOK_FLOW_AGE_KEY", format!("# a comment\n{fake}\n")),
        (
            "BYOK_FLOW_AGE_KEY",
            format!(
                "-----BEGIN OPENSSH PRIVATE KEY-----\n{fake}\n-----END OPENSSH PRIVATE KEY-----\n"
            ),
        ),
    ] {
        let out = p
            .cmd(&["-vvv", "keys", "check"])
            .env(var, &value)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(4));
        assert_clean(&out, "keys check with a broken identity");
    }
}
