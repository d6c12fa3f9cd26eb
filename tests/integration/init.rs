//! `byok-flow init` (SPEC §10): a git repository gets an identity (if it has
//! none), `.byok/recipients`, an example squad on priced, current models, a GitHub
//! workflow, and `.gitignore` lines; nothing is ever overwritten.

use std::path::Path;
use std::process::Output;

use serde_json::Value;

use crate::github::{problems, schemastore, yaml};
use crate::run::TIMEOUT;
use crate::support::{byok_flow, transcript};

/// A git repository (a `.git` folder is all init looks for) with a home beside it.
fn repository() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("repo/.git")).unwrap();
    std::fs::create_dir_all(dir.path().join("home")).unwrap();
    dir
}

fn init(dir: &Path, args: &[&str]) -> Output {
    byok_flow(&dir.join("home"))
        .current_dir(dir.join("repo"))
        .arg("init")
        .args(args)
        .timeout(TIMEOUT)
        .output()
        .unwrap()
}

fn in_repo(dir: &Path, args: &[&str]) -> Output {
    byok_flow(&dir.join("home"))
        .current_dir(dir.join("repo"))
        .args(args)
        .timeout(TIMEOUT)
        .output()
        .unwrap()
}

fn snapshot(name: &str, out: &Output) {
    let mut settings = insta::Settings::clone_current();
    for (from, to) in crate::support::filters(&[
        (r"age1[0-9a-z]{58}", "[RECIPIENT]"),
        (r"/tmp/\.tmp[A-Za-z0-9]+", "[TMP]"),
    ]) {
        settings.add_filter(&from, to.as_str());
    }
    settings.set_prepend_module_to_snapshot(false);
    settings.bind(|| insta::assert_snapshot!(name, transcript(out)));
}

/// Every file under `root`, with its bytes.
fn files(root: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let name = path.strip_prefix(root).unwrap().display().to_string();
                out.push((name, std::fs::read(&path).unwrap()));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn init_scaffolds_a_repository_whose_files_pass_validate_and_the_schema() {
    let dir = repository();
    let out = init(
        dir.path(),
        &["--yes", "--action", "someone/byok-flow@v0.1.0"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
    snapshot("init_fresh", &out);
    let repo = dir.path().join("repo");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let identity = dir.path().join("home/.config/byok-flow/identity.txt");
        let mode = std::fs::metadata(&identity).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // The squad passes `validate` with every model priced, none retired, and one
    // warning only: GPT-4o, the writer of the project's example, whose retirement
    // OpenAI has announced (as in `workflows/`). It runs with the mock.
    let validate = in_repo(
        dir.path(),
        &["validate", "workflows/research.yaml", "--json"],
    );
    assert_eq!(validate.status.code(), Some(0), "{}", transcript(&validate));
    let report: Value = serde_json::from_slice(&validate.stdout).unwrap();
    let codes: Vec<(&str, &str)> = report["files"][0]["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["code"].as_str().unwrap(), d["message"].as_str().unwrap()))
        .collect();
    assert_eq!(codes.len(), 1, "{codes:?}");
    assert_eq!(codes[0].0, "workflow::deprecated-model", "{codes:?}");
    assert!(
        codes[0].1.starts_with("`openai/gpt-4o` is deprecated"),
        "{codes:?}"
    );
    let estimate = in_repo(
        dir.path(),
        &[
            "estimate",
            "workflows/research.yaml",
            "--input",
            "topic=x",
            "--json",
        ],
    );
    assert_eq!(estimate.status.code(), Some(0), "{}", transcript(&estimate));
    let estimate: Value = serde_json::from_slice(&estimate.stdout).unwrap();
    for agent in estimate["agents"].as_array().unwrap() {
        assert!(!agent["priced_as"].is_null(), "unpriced: {agent}");
    }
    let run = in_repo(
        dir.path(),
        &[
            "run",
            "workflows/research.yaml",
            "--mock",
            "--input",
            "topic=x",
        ],
    );
    assert_eq!(run.status.code(), Some(0), "{}", transcript(&run));
    // The GitHub workflow is valid, runs the mock on pull requests and real keys by hand.
    let workflow = yaml(&repo.join(".github/workflows/byok-flow.yml"));
    let validator = schemastore("github-workflow.json");
    assert_eq!(problems(&validator, &workflow), Vec::<String>::new());
    let mock = &workflow["jobs"]["mock"];
    assert_eq!(mock["if"], "github.event_name == 'pull_request'");
    assert_eq!(mock["steps"][1]["uses"], "someone/byok-flow@v0.1.0");
    assert_eq!(mock["steps"][1]["with"]["mock"], "true");
    assert!(
        mock["steps"][1]["with"].get("age-key").is_none(),
        "no secret for pull requests"
    );
    let real = &workflow["jobs"]["run"];
    assert_eq!(real["if"], "github.event_name == 'workflow_dispatch'");
    assert_eq!(
        real["steps"][1]["with"]["age-key"],
        "${{ secrets.BYOK_FLOW_AGE_KEY }}"
    );
    let text = std::fs::read_to_string(repo.join(".github/workflows/byok-flow.yml")).unwrap();
    assert!(!text.contains("pull_request_target"));
    // The identity init made opens what is encrypted to the recipients it listed.
    let add = byok_flow(&dir.path().join("home"))
        .current_dir(&repo)
        .args(["keys", "add", "anthropic"])
        .write_stdin("sk-ant-init-test-key\n")
        .timeout(TIMEOUT)
        .output()
        .unwrap();
    assert_eq!(add.status.code(), Some(0), "{}", transcript(&add));
    let check = in_repo(dir.path(), &["keys", "check"]);
    assert_eq!(check.status.code(), Some(0), "{}", transcript(&check));

    // Run again: nothing changes.
    let before = files(dir.path());
    let again = init(
        dir.path(),
        &["--yes", "--action", "someone/byok-flow@v0.1.0"],
    );
    assert_eq!(again.status.code(), Some(0), "{}", transcript(&again));
    assert!(String::from_utf8_lossy(&again.stdout).contains("nothing to do"));
    assert_eq!(files(dir.path()), before);
}

#[test]
fn init_keeps_what_exists_and_adds_only_missing_lines() {
    let dir = repository();
    let repo = dir.path().join("repo");
    std::fs::create_dir_all(repo.join("workflows")).unwrap();
    std::fs::write(repo.join("workflows/research.yaml"), "# mine\n").unwrap();
    std::fs::write(repo.join(".gitignore"), "target/\n/out/\n").unwrap();
    let out = init(
        dir.path(),
        &["--yes", "--action", "someone/byok-flow@v0.1.0"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
    snapshot("init_keeps", &out);
    assert_eq!(
        std::fs::read_to_string(repo.join("workflows/research.yaml")).unwrap(),
        "# mine\n"
    );
    assert_eq!(
        std::fs::read_to_string(repo.join(".gitignore")).unwrap(),
        "target/\n/out/\n"
    );
}

#[test]
fn init_uses_the_identity_run_would_use() {
    let dir = repository();
    let made = byok_flow(dir.path())
        .args(["keys", "init", "--identity", "ci.txt"])
        .timeout(TIMEOUT)
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", transcript(&made));
    let recipient = String::from_utf8_lossy(&made.stdout).trim().to_string();
    let text = std::fs::read_to_string(dir.path().join("ci.txt")).unwrap();
    let identity = text
        .lines()
        .find(|l| l.starts_with("AGE-SECRET-KEY-1"))
        .unwrap();
    let out = byok_flow(&dir.path().join("home"))
        .current_dir(dir.path().join("repo"))
        .args(["init", "--yes"])
        .env("BYOK_FLOW_AGE_KEY", identity)
        .timeout(TIMEOUT)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
    assert!(
        !dir.path()
            .join("home/.config/byok-flow/identity.txt")
            .exists(),
        "no second identity"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("the identity in `BYOK_FLOW_AGE_KEY`"),
        "{stdout}"
    );
    let listed = std::fs::read_to_string(dir.path().join("repo/.byok/recipients")).unwrap();
    assert!(listed.contains(&recipient), "{listed}");
    assert!(!stdout.contains(identity) && !String::from_utf8_lossy(&out.stderr).contains(identity));
    // No `--action` and no repository known at build time: the user is told.
    assert!(stdout.contains("replace OWNER"), "{stdout}");
}

#[test]
fn init_asks_first_and_needs_a_repository() {
    let dir = repository();
    let out = init(dir.path(), &[]);
    assert_eq!(out.status.code(), Some(2), "{}", transcript(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("pass `--yes`"));
    assert_eq!(
        files(&dir.path().join("repo")),
        Vec::new(),
        "nothing was made"
    );
    assert!(!dir.path().join("home/.config").exists());

    let plain = tempfile::tempdir().unwrap();
    let out = byok_flow(plain.path())
        .args(["init", "--yes"])
        .timeout(TIMEOUT)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", transcript(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("run `git init` first"));

    let out = init(dir.path(), &["--yes", "--action", "not an action"]);
    assert_eq!(out.status.code(), Some(2), "{}", transcript(&out));
}
