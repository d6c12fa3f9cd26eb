//! `byok-flow keys`: from nothing to a working key, teams, and every way a key
//! or identity can be wrong. Each test is a fresh temp folder that is both
//! `HOME` and the project.

mod canary;
mod errors;
mod interop;
mod leaks;
mod material;
mod pieces;
mod runs;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;

use crate::support::{byok_flow, filters, transcript};

/// A temp folder used as `HOME` and as the project (the working directory).
pub struct Project {
    dir: tempfile::TempDir,
}

impl Project {
    pub fn new() -> Self {
        Project {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn cmd(&self, args: &[&str]) -> assert_cmd::Command {
        let mut cmd = byok_flow(self.path());
        cmd.args(args);
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    pub fn run_stdin(&self, args: &[&str], stdin: &[u8]) -> Output {
        self.cmd(args).write_stdin(stdin).output().unwrap()
    }

    /// `keys init --add-recipient`; returns the recipient printed.
    pub fn init(&self) -> String {
        let out = ok(self.run(&["keys", "init", "--add-recipient"]));
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    /// `keys add NAME` with the key on stdin.
    pub fn add(&self, name: &str, key: &str) {
        ok(self.run_stdin(&["keys", "add", name], format!("{key}\n").as_bytes()));
    }

    /// The default identity file.
    pub fn identity(&self) -> PathBuf {
        self.path().join(".config/byok-flow/identity.txt")
    }

    pub fn key_file(&self, name: &str) -> PathBuf {
        self.path().join(format!(".byok/keys/{name}.age"))
    }

    /// Every file under the folder, with its bytes.
    pub fn files(&self) -> BTreeMap<PathBuf, Vec<u8>> {
        fn walk(dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    walk(&path, out);
                } else {
                    out.insert(path.clone(), std::fs::read(&path).unwrap());
                }
            }
        }
        let mut out = BTreeMap::new();
        walk(self.path(), &mut out);
        out
    }
}

/// Asserts success and returns the output.
pub fn ok(out: Output) -> Output {
    assert!(
        out.status.success(),
        "expected success:\n{}",
        transcript(&out)
    );
    out
}

/// Asserts the exit code and that stderr has every fragment.
pub fn fails(out: &Output, code: i32, fragments: &[&str]) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "{}", transcript(out));
    for f in fragments {
        assert!(stderr.contains(f), "expected {f:?} in:\n{stderr}");
    }
    assert!(!stderr.contains("panicked"), "{stderr}");
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Snapshots a transcript with the standard filters plus age recipients.
pub fn snapshot(name: &str, out: &Output) {
    let mut settings = insta::Settings::clone_current();
    for (from, to) in filters(&[(r"age1[02-9ac-hj-np-z]{58}", "[RECIPIENT]")]) {
        settings.add_filter(&from, to);
    }
    settings.set_prepend_module_to_snapshot(false);
    settings.bind(|| insta::assert_snapshot!(name, transcript(out)));
}

#[test]
fn from_nothing_to_a_working_key() {
    let p = Project::new();
    let out = ok(p.run(&["keys", "init", "--add-recipient"]));
    snapshot("keys_init", &out);
    let recipient = stdout(&out).trim().to_string();
    assert!(recipient.starts_with("age1"), "{recipient}");
    let recipients = std::fs::read_to_string(p.path().join(".byok/recipients")).unwrap();
    assert!(recipients.lines().any(|l| l == recipient), "{recipients}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(p.identity())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    let out = ok(p.run_stdin(&["keys", "add", "anthropic"], b"sk-ant-test-0001\n"));
    snapshot("keys_add", &out);
    let file = std::fs::read_to_string(p.key_file("anthropic")).unwrap();
    assert!(
        file.starts_with("-----BEGIN AGE ENCRYPTED FILE-----\n"),
        "{file}"
    );
    assert!(!file.contains("sk-ant"));

    snapshot("keys_list", &ok(p.run(&["keys", "list"])));
    snapshot("keys_check", &ok(p.run(&["keys", "check"])));
}

#[test]
fn init_never_overwrites_an_identity() {
    let p = Project::new();
    let first = p.init();
    let before = std::fs::read(p.identity()).unwrap();
    let out = ok(p.run(&["keys", "init"]));
    assert_eq!(stdout(&out).trim(), first, "the same recipient again");
    assert!(
        stderr(&out).contains("never overwritten"),
        "{}",
        stderr(&out)
    );
    assert_eq!(std::fs::read(p.identity()).unwrap(), before);

    // A file that is not an identity is not replaced either.
    std::fs::write(p.path().join("notes.txt"), "my notes\n").unwrap();
    let out = p.run(&["keys", "init", "--identity", "notes.txt"]);
    fails(
        &out,
        4,
        &[
            "is not an age identity byok-flow can use",
            "never overwrites",
        ],
    );
    assert_eq!(
        std::fs::read_to_string(p.path().join("notes.txt")).unwrap(),
        "my notes\n"
    );
}

#[test]
fn add_takes_one_line_from_stdin_and_refuses_the_rest() {
    let p = Project::new();
    p.init();
    let before = p.files();
    for (input, why) in [
        (&b""[..], "it is empty"),
        (b"  \n\n", "it is empty"),
        (b"sk-one\nsk-two\n", "more than one line"),
        (b"sk one", "spaces"),
        (b"\xff\xfe", "not UTF-8"),
    ] {
        let out = p.run_stdin(&["keys", "add", "openai"], input);
        fails(&out, 2, &["the key read from stdin cannot be used", why]);
    }
    assert_eq!(p.files(), before, "nothing written");

    // CRLF and surrounding spaces are trimmed.
    ok(p.run_stdin(&["keys", "add", "openai"], b"  sk-crlf-1\r\n"));
    let out = ok(p.run(&["keys", "check"]));
    assert!(
        stdout(&out).contains("ok      openai  provider openai, 1 recipient(s)"),
        "{}",
        stdout(&out)
    );

    // An existing key is replaced only with --replace (rotation).
    let old = std::fs::read(p.key_file("openai")).unwrap();
    let out = p.run_stdin(&["keys", "add", "openai"], b"sk-crlf-2\n");
    fails(&out, 2, &["key `openai` already exists", "--replace"]);
    assert_eq!(std::fs::read(p.key_file("openai")).unwrap(), old);
    ok(p.run_stdin(&["keys", "add", "openai", "--replace"], b"sk-crlf-2\n"));
    assert_ne!(std::fs::read(p.key_file("openai")).unwrap(), old);

    for (args, why) in [
        (&["keys", "add", "../escape"][..], "is not a key name"),
        (
            &["keys", "add", "x", "--allow-host", "https://x.example"],
            "without `https://`",
        ),
        (
            &["keys", "add", "x", "--provider", "a/b"],
            "is not a provider name",
        ),
    ] {
        fails(&p.run_stdin(args, b"sk-x\n"), 2, &[why]);
    }
}

#[test]
fn add_records_the_provider_and_allowed_hosts() {
    let p = Project::new();
    p.init();
    let out = ok(p.run_stdin(
        &[
            "keys",
            "add",
            "corp",
            "--provider",
            "corp-gateway",
            "--allow-host",
            "gateway.corp.example",
            "--allow-host",
            "*.corp.example:8443",
        ],
        b"sk-corp\n",
    ));
    assert!(!stderr(&out).contains("warning"), "{}", stderr(&out));
    // A provider that is not built in, with no host to go to: the key could go
    // nowhere, so it is refused (issue 13).
    let out = p.run_stdin(
        &["keys", "add", "lonely", "--provider", "lonely"],
        b"sk-l\n",
    );
    fails(
        &out,
        2,
        &[
            "`--provider lonely` is not a built-in provider",
            "--allow-host",
        ],
    );
    assert!(!p.key_file("lonely").exists());
    ok(p.run_stdin(&["keys", "add", "team-key"], b"sk-t\n"));
    snapshot(
        "keys_list_providers_and_hosts",
        &ok(p.run(&["keys", "list"])),
    );
}

#[test]
fn the_keys_folder_is_found_walking_up_or_given() {
    let p = Project::new();
    p.init();
    p.add("anthropic", "sk-a");
    let deep = p.path().join("workflows/team/deep");
    std::fs::create_dir_all(&deep).unwrap();
    let out = ok(p
        .cmd(&["keys", "list"])
        .current_dir(&deep)
        .output()
        .unwrap());
    assert!(stdout(&out).contains("anthropic"), "{}", stdout(&out));

    let elsewhere = tempfile::tempdir().unwrap();
    let keys = p.path().join(".byok");
    let out = ok(byok_flow(p.path())
        .current_dir(elsewhere.path())
        .args(["keys", "list", "--keys"])
        .arg(&keys)
        .output()
        .unwrap());
    assert!(stdout(&out).contains("anthropic"));

    let out = byok_flow(p.path())
        .current_dir(elsewhere.path())
        .args(["keys", "list"])
        .output()
        .unwrap();
    fails(
        &out,
        4,
        &["no `.byok/` folder in", "keys init --add-recipient"],
    );
    let out = p.run(&["keys", "list", "--keys", "nope"]);
    fails(&out, 2, &["the keys folder `nope` does not exist"]);
}

#[test]
fn a_team_adds_a_member_rotates_a_key_and_removes_a_member() {
    let p = Project::new();
    let alice = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--identity", "alice.txt"]);
        p.run(&all)
    };
    let bob = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--identity", "bob.txt"]);
        p.run(&all)
    };
    ok(alice(&["keys", "init", "--add-recipient"]));
    ok(p.run_stdin(&["keys", "add", "anthropic"], b"sk-team-1\n"));

    // Bob makes an identity; he cannot open the keys yet.
    let bob_recipient = stdout(&ok(bob(&["keys", "init"]))).trim().to_string();
    fails(
        &bob(&["keys", "check"]),
        4,
        &[
            "is not encrypted to the age identity",
            &format!("keys recipients add {bob_recipient}"),
        ],
    );

    // Alice adds him: every key file is re-encrypted.
    let out = ok(alice(&[
        "keys",
        "recipients",
        "add",
        &bob_recipient,
        "--comment",
        "bob",
    ]));
    assert!(
        stderr(&out).contains("1 key file(s) are now encrypted to 2 recipient(s)"),
        "{}",
        stderr(&out)
    );
    ok(bob(&["keys", "check"]));
    let list = stdout(&ok(p.run(&["keys", "recipients", "list"])));
    assert!(list.contains(&format!("{bob_recipient}  # bob")), "{list}");

    // Rotation: a new key under the same name, for everyone.
    ok(p.run_stdin(&["keys", "add", "anthropic", "--replace"], b"sk-team-2\n"));
    ok(alice(&["keys", "check"]));
    ok(bob(&["keys", "check"]));

    // Bob leaves: he can no longer open the files, and the reminder says to rotate.
    let out = ok(alice(&["keys", "recipients", "rm", &bob_recipient]));
    assert!(
        stderr(&out).contains("cannot take back what they could already decrypt"),
        "{}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("rotate every provider key"),
        "{}",
        stderr(&out)
    );
    fails(
        &bob(&["keys", "check"]),
        4,
        &["is not encrypted to the age identity"],
    );
    ok(alice(&["keys", "check"]));

    // The last recipient cannot be removed; an unknown one is named.
    let alice_recipient = stdout(&ok(alice(&["keys", "init"]))).trim().to_string();
    fails(
        &alice(&["keys", "recipients", "rm", &alice_recipient]),
        2,
        &["is the last recipient"],
    );
    fails(
        &alice(&["keys", "recipients", "rm", &bob_recipient]),
        2,
        &["is not in"],
    );
}

#[test]
fn a_new_member_lists_themself_and_a_teammate_syncs() {
    let p = Project::new();
    ok(p.run(&["keys", "init", "--identity", "alice.txt", "--add-recipient"]));
    p.add("openai", "sk-o");
    let out = ok(p.run(&["keys", "init", "--identity", "carol.txt", "--add-recipient"]));
    assert!(
        stderr(&out).contains("keys recipients sync"),
        "{}",
        stderr(&out)
    );
    fails(
        &p.run(&["keys", "check", "--identity", "carol.txt"]),
        4,
        &["you are in `.byok/recipients`, but this file was encrypted before you were added"],
    );
    // `keys check` by Alice warns that the files are behind the list.
    let out = ok(p.run(&["keys", "check", "--identity", "alice.txt"]));
    assert!(
        stderr(&out).contains("keys recipients sync"),
        "{}",
        stderr(&out)
    );
    ok(p.run(&["keys", "recipients", "sync", "--identity", "alice.txt"]));
    ok(p.run(&["keys", "check", "--identity", "carol.txt"]));
}

#[test]
fn the_identity_comes_from_the_environment_in_order() {
    let p = Project::new();
    p.init();
    p.add("anthropic", "sk-env");
    let moved = p.path().join("ci-identity.txt");
    std::fs::rename(p.identity(), &moved).unwrap();
    let text = std::fs::read_to_string(&moved).unwrap();
    fails(&p.run(&["keys", "check"]), 4, &["no age identity found"]);
    for (var, value) in [
        ("BYOK_FLOW_AGE_KEY", text.as_str()),
        ("BYOK_FLOW_AGE_KEY_FILE", moved.to_str().unwrap()),
        ("SOPS_AGE_KEY", text.as_str()),
        ("SOPS_AGE_KEY_FILE", moved.to_str().unwrap()),
    ] {
        ok(p.cmd(&["keys", "check"]).env(var, value).output().unwrap());
    }
    // The first place that is set wins, even when a later one would work.
    let out = p
        .cmd(&["keys", "check"])
        .env("BYOK_FLOW_AGE_KEY_FILE", p.path().join("missing.txt"))
        .env("SOPS_AGE_KEY", &text)
        .output()
        .unwrap();
    fails(
        &out,
        4,
        &["BYOK_FLOW_AGE_KEY_FILE", "the file does not exist"],
    );
}

#[test]
fn recipients_refuse_rsa_plugins_and_secrets() {
    let p = Project::new();
    p.init();
    let before = p.files();
    let rsa = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7 bob@host";
    fails(
        &p.run(&["keys", "recipients", "add", rsa]),
        2,
        &[
            "`ssh-rsa` keys are not accepted",
            "RUSTSEC-2023-0071",
            "ssh-keygen -t ed25519",
        ],
    );
    fails(
        &p.run(&["keys", "recipients", "add", "age1yubikey1qqqqqq"]),
        2,
        &["plugin recipients"],
    );
    let secret = "AGE-SECRET-KEY-1QQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ";
    let out = p.run(&["keys", "recipients", "add", secret]);
    fails(&out, 2, &["that is a secret age identity, not a recipient"]);
    assert!(!stderr(&out).contains(secret));
    assert_eq!(p.files(), before);

    // A bad line in the file itself is reported with its number.
    let path = p.path().join(".byok/recipients");
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str(&format!("{rsa}\n"));
    std::fs::write(&path, &text).unwrap();
    fails(
        &p.run_stdin(&["keys", "add", "x"], b"sk-x\n"),
        4,
        &["recipients:5: `ssh-rsa` keys are not accepted"],
    );
}

#[test]
fn rm_deletes_and_reminds_about_history() {
    let p = Project::new();
    p.init();
    p.add("anthropic", "sk-a");
    let out = ok(p.run(&["keys", "rm", "anthropic"]));
    assert!(
        stderr(&out).contains("stay in git history"),
        "{}",
        stderr(&out)
    );
    assert!(!p.key_file("anthropic").exists());
    let out = p.run(&["keys", "list"]);
    assert!(stderr(&out).contains("No key files"), "{}", stderr(&out));
}
