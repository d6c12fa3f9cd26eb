//! Issue 13, "Keys leave", items 2, 3, 6 and 7: what may be taken for a key (never
//! an identity or a private key; never with invisible characters), where it may
//! be read from (never through a link out of `.byok/`), what a bad one is called,
//! and what a killed command leaves behind.

use std::path::Path;
use std::process::Output;
use std::time::{Duration, SystemTime};

use super::{Project, fails, ok, stderr, stdout};
use crate::support::fake::FakeServer;

/// `run flow.yaml` with `yaml`, `--allow-host` for `server`, and `vars`.
fn run(p: &Project, yaml: &str, server: &FakeServer, vars: &[(&str, &str)]) -> Output {
    std::fs::write(p.path().join("flow.yaml"), yaml).unwrap();
    p.cmd(&["run", "flow.yaml", "--allow-host", &server.addr.to_string()])
        .envs(vars.iter().copied())
        .env("BYOK_FLOW_BACKOFF_SCALE", "0")
        .timeout(Duration::from_mins(1))
        .output()
        .unwrap()
}

/// A workflow calling an OpenAI-compatible endpoint on `server` with `key`.
fn local(server: &FakeServer, key: &str) -> String {
    format!(
        "version: 1\nproviders:\n  ollama: {{base_url: \"{}/v1\", key: \"{key}\"}}\nagents:\n  a: {{model: ollama/llama3, prompt: hello}}\n",
        server.url()
    )
}

fn assert_not_shown(out: &Output, secret: &str) {
    for text in [stdout(out), stderr(out)] {
        assert!(
            !text.contains(secret.trim()),
            "the secret is shown:\n{text}"
        );
    }
}

#[test]
fn issue13_identity_env_var_is_refused_as_a_key() {
    let server = FakeServer::start();
    let p = Project::new();
    p.init();
    let identity = std::fs::read_to_string(p.identity()).unwrap();
    let secret_line = identity.lines().last().unwrap().to_string();
    // The variable itself, even to a host the person running allows (holding the
    // one secret line, as CI often sets it).
    for var in [
        "BYOK_FLOW_AGE_KEY",
        "SOPS_AGE_KEY",
        "BYOK_FLOW_AGE_KEY_FILE",
    ] {
        let yaml = local(&server, &format!("env:{var}"));
        let out = run(&p, &yaml, &server, &[(var, &secret_line)]);
        fails(
            &out,
            2,
            &[&format!("`env:{var}` is where your age identity is kept")],
        );
        assert_not_shown(&out, &secret_line);
        let out = p.run(&["validate", "flow.yaml"]);
        fails(&out, 2, &["workflow::key-identity", "env:OPENAI_API_KEY"]);
    }
    // Any variable whose value is an identity or a private key.
    let (ssh, _) = ssh_keypair();
    for (value, why) in [
        (identity.as_str(), "it is an age identity"),
        (secret_line.as_str(), "it is an age identity"),
        (ssh.as_str(), "it is a private key (PEM or OpenSSH)"),
    ] {
        let out = run(
            &p,
            &local(&server, "env:MY_TOKEN"),
            &server,
            &[("MY_TOKEN", value)],
        );
        fails(&out, 4, &["`MY_TOKEN` cannot be used as a key", why]);
        assert_not_shown(&out, value.lines().nth(1).unwrap_or(value));
    }
    assert!(server.requests().is_empty(), "a request was sent");
}

fn ssh_keypair() -> (String, String) {
    use ssh_key::{Algorithm, LineEnding, PrivateKey, rand_core::OsRng};
    let key = PrivateKey::random(&mut OsRng, Algorithm::Ed25519).unwrap();
    let private = key.to_openssh(LineEnding::LF).unwrap().to_string();
    (private, key.public_key().to_openssh().unwrap())
}

#[test]
fn issue13_a_loopback_home_takes_a_key_only_when_allowed() {
    let p = Project::new();
    // Ollama's home is 127.0.0.1:11434: whoever listens there would get the variable.
    std::fs::write(
        p.path().join("flow.yaml"),
        "version: 1\nproviders:\n  ollama: {key: \"env:AWS_SECRET_ACCESS_KEY\"}\nagents:\n  a: {model: ollama/llama3, prompt: hello}\n",
    )
    .unwrap();
    let out = p
        .cmd(&["run", "flow.yaml"])
        .env("AWS_SECRET_ACCESS_KEY", "aws-CANARY-secret-1234")
        .output()
        .unwrap();
    fails(
        &out,
        4,
        &[
            // (the message is wrapped to the terminal's width)
            "`127.0.0.1:11434` is a loopback",
            "where any program on this machine may listen",
            "--allow-host 127.0.0.1:11434",
            "key: none",
        ],
    );
    assert_not_shown(&out, "CANARY");
    // Allowed by the person running, it goes.
    let server = FakeServer::start();
    let out = run(
        &p,
        &local(&server, "env:LOCAL_KEY"),
        &server,
        &[("LOCAL_KEY", "sk-local-CANARY-9")],
    );
    ok(out);
    assert_eq!(
        server.requests()[0].header("authorization"),
        Some("Bearer sk-local-CANARY-9")
    );
}

#[cfg(unix)]
#[test]
fn issue13_symlinked_key_file_is_refused() {
    use std::os::unix::fs::symlink;
    let server = FakeServer::start();
    let p = Project::new();
    p.init();
    p.add("anthropic", "sk-ant-OTHER-PROJECT-KEY");
    // Another project's key file, and a committed link to it.
    let elsewhere = p.path().join("other-project");
    std::fs::create_dir(&elsewhere).unwrap();
    std::fs::rename(p.key_file("anthropic"), elsewhere.join("anthropic.age")).unwrap();
    symlink("../../other-project/anthropic.age", p.key_file("anthropic")).unwrap();
    let yaml = format!(
        "version: 1\nproviders:\n  anthropic: {{base_url: \"{}\"}}\nagents:\n  a: {{model: anthropic/claude-sonnet-4-5, prompt: hello}}\n",
        server.url()
    );
    let why = [
        "is a symbolic link to `../../other-project/anthropic.age`",
        "byok-flow never follows a link in `.byok/`",
        "byok-flow keys add anthropic",
    ];
    fails(&run(&p, &yaml, &server, &[]), 4, &why);
    assert!(server.requests().is_empty());
    let out = p.run(&["keys", "check"]);
    fails(&out, 4, &why);
    assert!(stdout(&out).contains("FAILED  anthropic  not a key file: a symbolic link"));
    // Re-encryption would have copied the other project's key in: refused.
    let before = std::fs::read(elsewhere.join("anthropic.age")).unwrap();
    fails(&p.run(&["keys", "recipients", "sync"]), 4, &why);
    assert_eq!(
        std::fs::read(elsewhere.join("anthropic.age")).unwrap(),
        before
    );
    // `keys rm` removes the link itself.
    ok(p.run(&["keys", "rm", "anthropic"]));
    assert!(elsewhere.join("anthropic.age").exists());

    // A linked `keys` folder leads outside too: nothing is read or written there.
    std::fs::remove_dir(p.path().join(".byok/keys")).unwrap();
    symlink("../other-project", p.path().join(".byok/keys")).unwrap();
    fails(
        &p.run_stdin(&["keys", "add", "openai"], b"sk-proj-1\n"),
        4,
        &[
            "keys` is a link to",
            "make `.byok/keys` a folder of its own",
        ],
    );
    assert!(!elsewhere.join("openai.age").exists());
    fails(
        &run(&p, &yaml, &server, &[]),
        4,
        &["resolves to", "through a linked folder"],
    );
    assert!(server.requests().is_empty());
    std::fs::remove_file(p.path().join(".byok/keys")).unwrap();

    // And the recipients list: a link could list someone else's recipients.
    let recipients = p.path().join(".byok/recipients");
    std::fs::rename(&recipients, elsewhere.join("recipients")).unwrap();
    symlink("../other-project/recipients", &recipients).unwrap();
    for args in [
        &["keys", "recipients", "list"][..],
        &["keys", "recipients", "sync"],
    ] {
        fails(
            &p.run(args),
            4,
            &[
                "recipients` is a symbolic link",
                "put the file itself there, not a link",
            ],
        );
    }
}

#[cfg(unix)]
#[test]
fn issue13_key_material_is_checked() {
    use std::os::unix::fs::{PermissionsExt, symlink};
    let server = FakeServer::start();
    let p = Project::new();
    p.init();
    let before = p.files();
    // Invisible and look-alike characters, named by position, when added...
    for (input, why) in [
        (
            "\u{feff}sk-ant-abc",
            "character 1 is U+FEFF (a byte-order mark",
        ),
        (
            "sk-ant\u{200b}-abc",
            "character 7 is U+200B (a zero-width space)",
        ),
        (
            "sk-ant-abc\u{a0}",
            "character 11 is U+00A0 (a no-break space)",
        ),
    ] {
        let out = p.run_stdin(
            &["keys", "add", "anthropic"],
            format!("{input}\n").as_bytes(),
        );
        fails(&out, 2, &["the key read from stdin cannot be used", why]);
    }
    assert_eq!(p.files(), before, "nothing written");
    // ... and when read, from a key file made by hand or a variable.
    let recipients = byok_flow::keys::KeysDir::at(&p.path().join(".byok"))
        .recipients()
        .unwrap();
    let sealed =
        byok_flow::keys::keyfile::encrypt(&recipients, "sk-ant\u{200b}-abc".as_bytes()).unwrap();
    std::fs::write(p.key_file("pasted"), sealed).unwrap();
    let out = p.run(&["keys", "check"]);
    fails(&out, 4, &["character 7 is U+200B (a zero-width space)"]);
    std::fs::remove_file(p.key_file("pasted")).unwrap();
    let out = run(
        &p,
        &format!(
            "version: 1\nproviders:\n  openai: {{base_url: \"{}/v1\", key: \"env:OPENAI_KEY\"}}\nagents:\n  a: {{model: openai/gpt-4o, prompt: hi}}\n",
            server.url()
        ),
        &server,
        &[("OPENAI_KEY", "sk-proj-abc\u{a0}")],
    );
    fails(
        &out,
        4,
        &["`OPENAI_KEY` cannot be used as a key: character 12 is U+00A0"],
    );

    // An unknown provider, in `keys add` and in a key file, with the closest name.
    let out = p.run_stdin(
        &["keys", "add", "k", "--provider", "antropic"],
        b"sk-ant-1\n",
    );
    fails(
        &out,
        2,
        &["`--provider antropic` is not a built-in provider: did you mean `anthropic`?"],
    );
    let out = p.run_stdin(&["keys", "add", "k", "--provider", "corp"], b"sk-ant-1\n");
    fails(
        &out,
        2,
        &[
            "`--provider corp` is not a built-in provider",
            "--allow-host",
        ],
    );
    ok(p.run_stdin(
        &[
            "keys",
            "add",
            "k",
            "--provider",
            "corp",
            "--allow-host",
            "llm.corp.example",
        ],
        b"sk-corp-1\n",
    ));
    let sealed = byok_flow::keys::keyfile::encrypt(
        &recipients,
        b"provider = \"opnai\"\nkey = \"sk-proj-1\"\n",
    )
    .unwrap();
    std::fs::write(p.key_file("typo"), sealed).unwrap();
    fails(
        &p.run(&["keys", "check"]),
        4,
        &["`provider = \"opnai\"` is not a built-in provider: did you mean `openai`?"],
    );
    std::fs::remove_file(p.key_file("typo")).unwrap();

    // A key file given as the identity.
    let out = p.run(&["keys", "check", "--identity", ".byok/keys/k.age"]);
    fails(
        &out,
        4,
        &[
            "it is an age-encrypted file, like a key file in `.byok/keys/`, not an identity",
            "keys init",
        ],
    );

    // Permission advice: never `chmod` on a device, nor in a folder others share.
    let out = p.run(&["keys", "check", "--identity", "/dev/null"]);
    assert!(!stderr(&out).contains("chmod"), "{}", stderr(&out));
    let shared = p.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::copy(p.identity(), shared.join("id.txt")).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).unwrap();
    std::fs::set_permissions(
        shared.join("id.txt"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let out = ok(p.run(&["keys", "check", "--identity", "shared/id.txt"]));
    let said = stderr(&out);
    assert!(
        said.contains("a folder anyone on this machine can write to") && !said.contains("chmod"),
        "{said}"
    );
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o700)).unwrap();
    let out = ok(p.run(&["keys", "check", "--identity", "shared/id.txt"]));
    assert!(
        stderr(&out).contains("run `chmod 600 shared/id.txt`"),
        "{}",
        stderr(&out)
    );

    // A key name that is a dangling link, a loop, or a folder says what it is.
    symlink("gone.age", p.key_file("dangling")).unwrap();
    symlink("loop-b.age", p.key_file("loop-a")).unwrap();
    symlink("loop-a.age", p.key_file("loop-b")).unwrap();
    std::fs::create_dir(p.key_file("folder")).unwrap();
    for (name, what) in [
        (
            "dangling",
            "is a symbolic link to `gone.age`, which does not exist",
        ),
        ("loop-a", "is a symbolic link that loops"),
        ("folder", "folder.age` is a folder"),
    ] {
        let yaml = format!(
            "version: 1\nproviders:\n  openai: {{base_url: \"{}/v1\", key: \"{name}\"}}\nagents:\n  a: {{model: openai/gpt-4o, prompt: hi}}\n",
            server.url()
        );
        fails(&run(&p, &yaml, &server, &[]), 4, &[what]);
    }
    assert!(server.requests().is_empty());
}

/// Makes a file look as if written an hour ago.
fn age_file(path: &Path) {
    let file = std::fs::File::options().write(true).open(path).unwrap();
    file.set_modified(SystemTime::now() - Duration::from_hours(1))
        .unwrap();
}

#[test]
fn issue13_stale_temp_files_are_removed_and_never_committed() {
    let p = Project::new();
    p.init();
    p.add("anthropic", "sk-ant-1");
    // What `kill -9` during `keys recipients sync` left: whole key files under
    // temporary names, and a recipients list.
    let stale = [
        p.path().join(".byok/keys/.anthropic.age.Xk3v9Q.tmp"),
        p.path().join(".byok/keys/.openai.age.b7Hq2W.tmp"),
        p.path().join(".byok/.recipients.Zp0aL1.tmp"),
    ];
    for path in &stale {
        std::fs::copy(p.key_file("anthropic"), path).unwrap();
        age_file(path);
    }
    // One a command running right now is writing.
    let fresh = p.path().join(".byok/keys/.anthropic.age.Fresh0.tmp");
    std::fs::write(&fresh, "in flight").unwrap();
    ok(p.run(&["keys", "list"]));
    for path in &stale {
        assert!(!path.exists(), "{} was left", path.display());
    }
    assert!(fresh.exists(), "a write in flight was removed");
    let ignore = std::fs::read_to_string(p.path().join(".byok/.gitignore")).unwrap();
    assert!(ignore.lines().any(|l| l == "*.tmp"), "{ignore}");
    // An existing .gitignore keeps its lines and gains the pattern once.
    std::fs::write(p.path().join(".byok/.gitignore"), "notes.txt").unwrap();
    ok(p.run(&["keys", "recipients", "sync"]));
    ok(p.run(&["keys", "recipients", "sync"]));
    let ignore = std::fs::read_to_string(p.path().join(".byok/.gitignore")).unwrap();
    assert!(ignore.starts_with("notes.txt\n"), "{ignore}");
    assert_eq!(
        ignore.lines().filter(|l| *l == "*.tmp").count(),
        1,
        "{ignore}"
    );

    // A killed `keys init` leaves a whole identity under a temporary name.
    std::fs::create_dir(p.path().join("ids")).unwrap();
    let identity_left = p.path().join("ids/.ci.txt.Ab12Cd.tmp");
    std::fs::copy(p.identity(), &identity_left).unwrap();
    age_file(&identity_left);
    ok(p.run(&["keys", "init", "--identity", "ids/ci.txt"]));
    assert!(
        !identity_left.exists(),
        "the identity's temporary file was left"
    );

    // The cache: what a killed run left is removed by the next.
    let cache = p.path().join("cache");
    std::fs::create_dir_all(cache.join("tmp")).unwrap();
    std::fs::create_dir_all(cache.join("v1/ab")).unwrap();
    let left = cache.join("tmp/.ab12.json.Qw3rTy.tmp");
    std::fs::write(&left, "{\"text\": \"half").unwrap();
    age_file(&left);
    std::fs::write(
        p.path().join("flow.yaml"),
        "version: 1\nagents:\n  a: {model: mock/echo, prompt: hi}\n",
    )
    .unwrap();
    // And `--out`: a half-written output.
    std::fs::create_dir(p.path().join("out")).unwrap();
    let out_left = p.path().join("out/.run.json.Zz9Yy8.tmp");
    std::fs::write(&out_left, "{").unwrap();
    age_file(&out_left);
    ok(p.run(&["run", "flow.yaml", "--cache-dir", "cache", "--out", "out"]));
    assert!(!left.exists(), "the cache's temporary file was left");
    assert!(!out_left.exists(), "the output's temporary file was left");
}
