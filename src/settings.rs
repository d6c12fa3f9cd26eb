//! Settings resolved once in `main.rs` and handed to every command: the options
//! all commands share ([`Global`]) and what comes from the environment rather
//! than the command line (GitHub Actions mode). Nothing below the command line
//! reads these variables itself; it is handed a [`GitHub`].

use std::ffi::OsString;
use std::path::PathBuf;

/// Options every command shares.
#[derive(Debug, Clone, Copy)]
pub struct Global {
    pub quiet: bool,
    /// Whether stderr is a terminal that takes colour.
    pub color: bool,
    /// Whether stderr is a terminal (for the live view).
    pub terminal: bool,
    /// GitHub Actions mode: annotations, log groups, the step summary and outputs.
    /// Resolved once in `main.rs` and kept for the whole process, so `Global`
    /// stays `Copy`.
    pub github: Option<&'static GitHub>,
}

/// GitHub Actions mode (`GITHUB_ACTIONS=true`), and the files the runner reads
/// back from a step.
/// See <https://docs.github.com/en/actions/reference/workflow-commands-for-github-actions>.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GitHub {
    /// `$GITHUB_STEP_SUMMARY`: Markdown appended here shows on the run's summary page.
    pub step_summary: Option<PathBuf>,
    /// `$GITHUB_OUTPUT`: `NAME=VALUE` lines here become the step's outputs.
    pub output: Option<PathBuf>,
    /// `$GITHUB_WORKSPACE`: annotation paths are made relative to it, as the
    /// runner wants them.
    pub workspace: Option<PathBuf>,
    /// Whether stdout is redirected to a file (`> review.md`). When it is not, the
    /// results may be read by the runner as log lines, so they are fenced from
    /// workflow commands; a file gets them bare.
    pub stdout_is_file: bool,
    /// Whether stderr is redirected to a file (`2> log.txt`). Then no key is
    /// masked: the runner would never read the `::add-mask::` line, and the file
    /// would hold the key.
    pub stderr_is_file: bool,
}

impl GitHub {
    /// GitHub Actions mode if `GITHUB_ACTIONS` is `true`, reading variables
    /// through `env`; `files` says whether stdout and stderr are regular files.
    pub fn detect(
        env: impl Fn(&str) -> Option<OsString>,
        (stdout_is_file, stderr_is_file): (bool, bool),
    ) -> Option<Self> {
        if env("GITHUB_ACTIONS").is_none_or(|v| v != "true") {
            return None;
        }
        let path = |name: &str| env(name).filter(|v| !v.is_empty()).map(PathBuf::from);
        Some(GitHub {
            step_summary: path("GITHUB_STEP_SUMMARY"),
            output: path("GITHUB_OUTPUT"),
            workspace: path("GITHUB_WORKSPACE"),
            stdout_is_file,
            stderr_is_file,
        })
    }

    /// Whether keys are masked with `::add-mask::` as they are read.
    pub fn masks_keys(&self) -> bool {
        !self.stderr_is_file
    }
}

/// Whether this process's stdout and stderr are regular files (not pipes,
/// terminals or `/dev/null`).
pub fn std_streams_are_files() -> (bool, bool) {
    (
        is_regular_file(&std::io::stdout()),
        is_regular_file(&std::io::stderr()),
    )
}

#[cfg(unix)]
fn is_regular_file(stream: &impl std::os::fd::AsFd) -> bool {
    let Ok(fd) = stream.as_fd().try_clone_to_owned() else {
        return false;
    };
    std::fs::File::from(fd)
        .metadata()
        .is_ok_and(|m| m.file_type().is_file())
}

#[cfg(windows)]
fn is_regular_file(stream: &impl std::os::windows::io::AsHandle) -> bool {
    let Ok(handle) = stream.as_handle().try_clone_to_owned() else {
        return false;
    };
    std::fs::File::from(handle)
        .metadata()
        .is_ok_and(|m| m.file_type().is_file())
}

#[cfg(not(any(unix, windows)))]
fn is_regular_file<T>(_: &T) -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<OsString> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect();
        move |name| {
            vars.iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| OsString::from(v))
        }
    }

    #[test]
    fn only_github_actions_true_turns_it_on() {
        assert_eq!(GitHub::detect(env(&[]), (false, false)), None);
        let one = env(&[("GITHUB_ACTIONS", "1")]);
        assert_eq!(GitHub::detect(one, (false, false)), None);
        let on = GitHub::detect(
            env(&[
                ("GITHUB_ACTIONS", "true"),
                ("GITHUB_OUTPUT", "/o"),
                ("GITHUB_STEP_SUMMARY", ""),
            ]),
            (true, false),
        )
        .unwrap();
        assert_eq!(on.output, Some(PathBuf::from("/o")));
        assert_eq!(on.step_summary, None, "an empty variable is no file");
        assert!(on.stdout_is_file);
        assert!(on.masks_keys());
    }
}
