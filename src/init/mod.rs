//! `byok-flow init`'s scaffold (SPEC §10): what a new repository gets, and the
//! plan of what to create, add to, or keep. It never overwrites a file: a file
//! that exists is kept as it is, except that `.gitignore` and `.byok/recipients`
//! get the lines they lack appended. The identity is the `keys` module's
//! business; the command makes it, then hands its recipient here.

use std::path::{Path, PathBuf};

use crate::keys::atomic::{self, PUBLIC};
use crate::keys::{KeyError, KeysDir, Recipient};

/// The example squad: models the providers serve today, which the price table prices.
pub const RESEARCH: &str = include_str!("research.yaml");
/// The GitHub workflow, with `{{ACTION}}` for the action's `owner/name@ref`.
const GITHUB_WORKFLOW: &str = include_str!("byok-flow.yml");
/// Where the squad goes, from the repository's root.
pub const RESEARCH_PATH: &str = "workflows/research.yaml";
pub const GITHUB_WORKFLOW_PATH: &str = ".github/workflows/byok-flow.yml";
/// What `.gitignore` should hold: results and reports hold model replies.
pub const GITIGNORE: [&str; 2] = [
    "# byok-flow: what `run --out DIR` and `--report FILE` write (model replies)",
    "/out/",
];

/// The GitHub workflow that uses `action` (`owner/name@ref`).
pub fn github_workflow(action: &str) -> String {
    GITHUB_WORKFLOW.replace("{{ACTION}}", action)
}

/// What init does to one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Make it with this text.
    Create(String),
    /// Append these lines to it.
    Append(Vec<String>),
    /// It exists (and has what it needs): leave it.
    Keep,
}

/// One file of the plan.
#[derive(Debug, Clone)]
pub struct Planned {
    /// From the repository's root.
    pub path: PathBuf,
    pub step: Step,
    /// What it is for, in a few words.
    pub what: &'static str,
}

/// The folder of the git repository `start` is in: the nearest with a `.git`
/// (a folder, or the file a worktree has).
pub fn repository_root(start: &Path) -> Option<PathBuf> {
    let start = std::path::absolute(start).ok()?;
    start
        .ancestors()
        .find(|dir| dir.join(".git").exists())
        .map(Path::to_path_buf)
}

/// What init will do in the repository at `root`, whose `.byok/recipients` must
/// list `recipient` (its text `public`), with the GitHub workflow using `action`.
pub fn plan(
    root: &Path,
    recipient: &Recipient,
    public: &str,
    action: &str,
) -> Result<Vec<Planned>, KeyError> {
    let file = |path: &str, text: String, what| Planned {
        path: PathBuf::from(path),
        step: if root.join(path).exists() {
            Step::Keep
        } else {
            Step::Create(text)
        },
        what,
    };
    Ok(vec![
        recipients(root, recipient, public)?,
        file(
            RESEARCH_PATH,
            RESEARCH.to_string(),
            "a squad: Claude Sonnet 4.5 researches, GPT-4o writes",
        ),
        file(
            GITHUB_WORKFLOW_PATH,
            github_workflow(action),
            "the mock on pull requests, real keys when run by hand",
        ),
        gitignore(root),
    ])
}

/// `.byok/recipients` with the recipient: made, added to, or kept.
fn recipients(root: &Path, recipient: &Recipient, public: &str) -> Result<Planned, KeyError> {
    let dir = KeysDir::at(&root.join(crate::keys::layout::DIR_NAME));
    let path = PathBuf::from(crate::keys::layout::DIR_NAME).join("recipients");
    let what = "who can open the key files: you";
    let line = vec![
        "# added by byok-flow init".to_string(),
        public.trim().to_string(),
    ];
    let step = match dir.read_recipients() {
        Err(KeyError::NoRecipientsFile { .. }) => Step::Create(format!(
            "# Who can open the key files in .byok/keys/: one age recipient (or ssh-ed25519 key) a line.\n# Add a teammate or a CI system with `byok-flow keys recipients add`.\n{}\n",
            line.join("\n")
        )),
        Err(e) => return Err(e),
        Ok(list) if list.contains(recipient) => Step::Keep,
        Ok(_) => Step::Append(line),
    };
    Ok(Planned { path, step, what })
}

/// `.gitignore` with the lines it lacks.
fn gitignore(root: &Path) -> Planned {
    let path = root.join(".gitignore");
    let what = "run results and reports stay out of git";
    let existing = std::fs::read_to_string(&path).ok();
    let missing: Vec<String> = GITIGNORE
        .iter()
        .filter(|line| {
            line.starts_with('#')
                || !existing
                    .as_deref()
                    .is_some_and(|text| text.lines().any(|l| l.trim() == **line))
        })
        .map(|l| (*l).to_string())
        .collect();
    let step = match existing {
        None => Step::Create(missing.join("\n") + "\n"),
        Some(_) if missing.iter().all(|l| l.starts_with('#')) => Step::Keep,
        Some(_) => Step::Append(missing),
    };
    Planned {
        path: PathBuf::from(".gitignore"),
        step,
        what,
    }
}

/// Does one planned step. A file made is made with `create_new`, so one that
/// appeared since the plan is kept, never overwritten: the result says which.
pub fn apply(root: &Path, planned: &Planned) -> std::io::Result<Step> {
    let path = root.join(&planned.path);
    match &planned.step {
        Step::Keep => Ok(Step::Keep),
        Step::Create(text) => {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            match atomic::write_new(&path, text.as_bytes(), PUBLIC) {
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(Step::Keep),
                other => other.map(|()| planned.step.clone()),
            }
        }
        Step::Append(lines) => {
            let mut text = std::fs::read_to_string(&path)?;
            if !text.is_empty() && !text.ends_with('\n') {
                text.push('\n');
            }
            for line in lines {
                text.push_str(line);
                text.push('\n');
            }
            // Written whole and renamed, so a reader never sees half of it.
            atomic::replace(&path, text.as_bytes(), PUBLIC)?;
            Ok(planned.step.clone())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::recipients::RecipientsFile;

    fn recipient() -> (Recipient, String) {
        let (_, public) = crate::keys::identity::generate();
        (public.parse().unwrap(), public)
    }

    #[test]
    fn a_fresh_repository_gets_every_file() {
        let dir = tempfile::tempdir().unwrap();
        let (r, public) = recipient();
        let plan = plan(dir.path(), &r, &public, "someone/byok-flow@v1.0.0").unwrap();
        assert!(
            plan.iter().all(|p| matches!(p.step, Step::Create(_))),
            "{plan:?}"
        );
        for p in &plan {
            apply(dir.path(), p).unwrap();
        }
        let recipients = std::fs::read_to_string(dir.path().join(".byok/recipients")).unwrap();
        let parsed = RecipientsFile::parse(&recipients).unwrap();
        assert!(parsed.contains(&r));
        let workflow = std::fs::read_to_string(dir.path().join(GITHUB_WORKFLOW_PATH)).unwrap();
        assert!(workflow.contains("uses: someone/byok-flow@v1.0.0"));
        assert!(!workflow.contains("{{ACTION}}"));
        // A second plan keeps everything.
        let again = super::plan(dir.path(), &r, &public, "someone/byok-flow@v1.0.0").unwrap();
        assert!(again.iter().all(|p| p.step == Step::Keep), "{again:?}");
    }

    #[test]
    fn existing_files_are_kept_or_added_to() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(".gitignore"), "target/").unwrap();
        std::fs::create_dir_all(dir.path().join("workflows")).unwrap();
        std::fs::write(dir.path().join(RESEARCH_PATH), "mine").unwrap();
        let (r, public) = recipient();
        let plan = plan(dir.path(), &r, &public, "a/b@v1").unwrap();
        for p in &plan {
            apply(dir.path(), p).unwrap();
        }
        assert_eq!(
            std::fs::read_to_string(dir.path().join(RESEARCH_PATH)).unwrap(),
            "mine"
        );
        let ignore = std::fs::read_to_string(dir.path().join(".gitignore")).unwrap();
        assert_eq!(ignore, format!("target/\n{}\n", GITIGNORE.join("\n")));
        // A file that appears after the plan is still not overwritten.
        let late = Planned {
            path: PathBuf::from("late.txt"),
            step: Step::Create("new".into()),
            what: "",
        };
        std::fs::write(dir.path().join("late.txt"), "old").unwrap();
        assert_eq!(apply(dir.path(), &late).unwrap(), Step::Keep);
        assert_eq!(
            std::fs::read_to_string(dir.path().join("late.txt")).unwrap(),
            "old"
        );
    }

    #[test]
    fn the_repository_is_found_from_a_folder_inside_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join(".git")).unwrap();
        std::fs::create_dir_all(dir.path().join("a/b")).unwrap();
        let root = repository_root(&dir.path().join("a/b")).unwrap();
        assert_eq!(root, std::path::absolute(dir.path()).unwrap());
    }
}
