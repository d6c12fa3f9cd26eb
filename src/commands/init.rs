//! `byok-flow init`: scaffold a git repository for byok-flow: the age identity
//! if there is none, `.byok/recipients` listing it, an example squad, a GitHub
//! workflow, and `.gitignore` lines; never overwriting a file. It shows what it
//! will do and asks first, unless `--yes`. The files come from `crate::init`.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

use secrecy::ExposeSecret;

use crate::error::{Error, Exit, Result};
use crate::init::{self, Planned, Step};
use crate::keys::atomic::{self, SECRET};
use crate::keys::{IdentitySource, KeyError, Recipient, identity};
use crate::settings::Global;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Go ahead without asking (for scripts); without a terminal it is required.
    #[arg(short, long)]
    pub yes: bool,

    /// The age identity to list as a recipient, made there if there is none
    /// [default: the identity `run` would use, else a new `~/.config/byok-flow/identity.txt`].
    #[arg(long, value_name = "FILE")]
    pub identity: Option<PathBuf>,

    /// The action the GitHub workflow uses, `OWNER/NAME@REF` [default: this
    /// version's release of byok-flow's action].
    #[arg(long, value_name = "OWNER/NAME@REF", value_parser = parse_action)]
    pub action: Option<String>,
}

/// Where the action lives unless `--action` says: the crate's repository when it
/// was built with one, else a placeholder the user is told to fill in.
fn default_action() -> (String, bool) {
    let version = env!("CARGO_PKG_VERSION");
    let repository = option_env!("CARGO_PKG_REPOSITORY")
        .and_then(|url| url.strip_prefix("https://github.com/"))
        .map(|slug| slug.trim_end_matches('/').trim_end_matches(".git"))
        .filter(|slug| parse_action(&format!("{slug}@v{version}")).is_ok());
    match repository {
        Some(slug) => (format!("{slug}@v{version}"), false),
        None => (format!("OWNER/byok-flow@v{version}"), true),
    }
}

fn parse_action(text: &str) -> std::result::Result<String, String> {
    let ok = text.split_once('@').is_some_and(|(repo, reference)| {
        let parts: Vec<&str> = repo.split('/').collect();
        parts.len() >= 2
            && parts.iter().all(|p| {
                !p.is_empty()
                    && p.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            })
            && !reference.is_empty()
            && reference
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
    });
    if ok {
        Ok(text.to_string())
    } else {
        Err(format!(
            "`{text}` is not an action reference; write OWNER/NAME@REF, like someone/byok-flow@v0.1.0"
        ))
    }
}

/// The identity whose recipient is listed: found as `run` finds it, or to be made.
enum Own {
    Found {
        public: String,
        place: String,
    },
    New {
        path: PathBuf,
        secret: secrecy::SecretString,
        public: String,
    },
}

impl Own {
    fn public(&self) -> &str {
        match self {
            Own::Found { public, .. } | Own::New { public, .. } => public,
        }
    }
}

pub fn run(args: &Args, global: Global) -> Result<Exit> {
    let cwd = std::env::current_dir()
        .map_err(|e| Error::usage(format!("cannot tell which folder this is: {e}")))?;
    let root = init::repository_root(&cwd).ok_or_else(|| {
        Error::usage(format!("{} is not in a git repository", cwd.display())).hint(
            "run `git init` first: `byok-flow init` sets up a repository (its GitHub workflow and .gitignore belong in one)",
        )
    })?;
    let own = own_identity(args)?;
    let recipient: Recipient = own
        .public()
        .parse()
        .map_err(|error| KeyError::BadRecipientArg {
            text: own.public().to_string(),
            error,
        })?;
    let (action, placeholder) = match &args.action {
        Some(action) => (action.clone(), false),
        None => default_action(),
    };
    let plan = init::plan(&root, &recipient, own.public(), &action)?;
    let mut out = std::io::stdout().lock();
    let nothing_to_do =
        matches!(own, Own::Found { .. }) && plan.iter().all(|p| p.step == Step::Keep);
    if nothing_to_do {
        writeln!(
            out,
            "byok-flow init: {} already has everything; nothing to do.",
            root.display()
        )
        .map_err(write_error)?;
        next_steps(&mut out, &cwd, &root)?;
        return Ok(Exit::Success);
    }
    if !args.yes {
        writeln!(out, "byok-flow init will, in {}:\n", root.display()).map_err(write_error)?;
        show(&mut out, &own, &plan, false)?;
        out.flush().map_err(write_error)?;
        if !confirm()? {
            writeln!(out, "Nothing was made.").map_err(write_error)?;
            return Ok(Exit::Success);
        }
        writeln!(out).map_err(write_error)?;
    }
    let done = apply(&root, own, &plan)?;
    writeln!(out, "byok-flow init, in {}:\n", root.display()).map_err(write_error)?;
    show(&mut out, &done.0, &done.1, true)?;
    if placeholder
        && done.1.iter().any(|p| {
            p.path == Path::new(init::GITHUB_WORKFLOW_PATH) && matches!(p.step, Step::Create(_))
        })
    {
        writeln!(
            out,
            "\nIn {}, replace OWNER with the GitHub owner of byok-flow's action (or run init with `--action OWNER/NAME@REF`).",
            init::GITHUB_WORKFLOW_PATH
        )
        .map_err(write_error)?;
    }
    if !global.quiet {
        eprintln!(
            "note: for GitHub Actions, make an identity for CI, list it with `byok-flow keys recipients add`, and keep it in the repository secret BYOK_FLOW_AGE_KEY (README, \"GitHub Actions\")."
        );
    }
    next_steps(&mut out, &cwd, &root)?;
    Ok(Exit::Success)
}

/// The identity `run` would use, or a new one to make where `keys init` would.
fn own_identity(args: &Args) -> Result<Own> {
    let source = IdentitySource::new(args.identity.clone());
    match source.load() {
        Ok(found) => Ok(Own::Found {
            public: found.public()[0].clone(),
            place: found.place().to_string(),
        }),
        Err(KeyError::NoIdentity { .. }) => {
            let path = match &args.identity {
                Some(path) => path.clone(),
                None => source.default_path().ok_or_else(|| {
                    Error::usage("cannot find your home folder (HOME is not set)")
                        .hint("pass `--identity FILE`")
                })?,
            };
            let (secret, public) = identity::generate();
            Ok(Own::New {
                path,
                secret,
                public,
            })
        }
        Err(e) => Err(e.into()),
    }
}

/// Asks on the terminal; without one, `--yes` is required.
fn confirm() -> Result<bool> {
    if !std::io::stdin().is_terminal() {
        return Err(Error::usage(
            "byok-flow init asks before it makes anything, and stdin is not a terminal",
        )
        .hint("pass `--yes` to make what is listed above without asking"));
    }
    eprint!("Go ahead? [Y/n] ");
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(|e| Error::usage(format!("cannot read the answer: {e}")))?;
    Ok(matches!(
        answer.trim().to_ascii_lowercase().as_str(),
        "" | "y" | "yes"
    ))
}

/// Makes the identity (never over one) and each file; returns what was done.
fn apply(root: &Path, own: Own, plan: &[Planned]) -> Result<(Own, Vec<Planned>)> {
    let own = match own {
        Own::New {
            path,
            secret,
            public,
        } => {
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                atomic::create_dir(parent, 0o700)
                    .map_err(|e| KeyError::io("create the folder", parent, e))?;
            }
            atomic::write_new(&path, secret.expose_secret().as_bytes(), SECRET).map_err(|e| {
                if e.kind() == std::io::ErrorKind::AlreadyExists {
                    Error::from(KeyError::IdentityExists {
                        path: path.clone(),
                        reason:
                            "it appeared while byok-flow was making one; run init again to use it"
                                .into(),
                    })
                } else {
                    Error::from(KeyError::io("write the identity file", &path, e))
                }
            })?;
            Own::New {
                path,
                secret,
                public,
            }
        }
        found @ Own::Found { .. } => found,
    };
    let mut done = Vec::with_capacity(plan.len());
    for planned in plan {
        let step = init::apply(root, planned).map_err(|e| {
            Error::new(
                Exit::Invalid,
                format!("cannot write {}: {e}", root.join(&planned.path).display()),
            )
            .hint("check that the folder can be written; files already made are kept, and init can be run again")
        })?;
        done.push(Planned {
            step,
            ..planned.clone()
        });
    }
    Ok((own, done))
}

/// The plan (or what was done) as aligned lines.
fn show(out: &mut impl Write, own: &Own, plan: &[Planned], done: bool) -> Result<()> {
    let verb = |step: &Step| match (step, done) {
        (Step::Create(_), false) => "create",
        (Step::Create(_), true) => "created",
        (Step::Append(_), false) => "add to",
        (Step::Append(_), true) => "added to",
        (Step::Keep, false) => "keep",
        (Step::Keep, true) => "kept",
    };
    let mut rows: Vec<(&str, String, String)> = Vec::new();
    match own {
        Own::Found { place, public } => rows.push((
            if done { "used" } else { "use" },
            format!("the identity in {place}"),
            format!("its recipient {public}"),
        )),
        Own::New { path, public, .. } => rows.push((
            if done { "created" } else { "create" },
            home_relative(path),
            format!(
                "your age identity (mode 600, never commit it; back it up), recipient {public}"
            ),
        )),
    }
    for p in plan {
        let what = match &p.step {
            Step::Keep if p.path.ends_with(".gitignore") => {
                "(it already has the lines)".to_string()
            }
            Step::Keep if p.path.ends_with("recipients") => "(it already lists you)".to_string(),
            Step::Keep => "(it exists)".to_string(),
            Step::Append(lines) => format!(
                "{}: {}",
                p.what,
                lines
                    .iter()
                    .filter(|l| !l.starts_with('#'))
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Step::Create(_) => p.what.to_string(),
        };
        rows.push((verb(&p.step), p.path.display().to_string(), what));
    }
    let verb_width = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
    let path_width = rows.iter().map(|r| r.1.chars().count()).max().unwrap_or(0);
    for (verb, path, what) in rows {
        writeln!(out, "  {verb:verb_width$}  {path:path_width$}  {what}").map_err(write_error)?;
    }
    Ok(())
}

/// `~/…` for a path in the home folder, as people write it.
fn home_relative(path: &Path) -> String {
    let home = std::env::var_os("HOME").filter(|h| !h.is_empty());
    match home.and_then(|home| path.strip_prefix(home).ok().map(Path::to_path_buf)) {
        Some(inside) => format!("~/{}", inside.display()),
        None => path.display().to_string(),
    }
}

/// The three commands to run next, with paths as seen from here.
fn next_steps(out: &mut impl Write, cwd: &Path, root: &Path) -> Result<()> {
    let up = cwd
        .strip_prefix(root)
        .map_or(0, |inside| inside.components().count());
    let squad = format!("{}{}", "../".repeat(up), init::RESEARCH_PATH);
    let results = format!("{}out/research", "../".repeat(up));
    let topic = "--input topic=\"prompt caching\"";
    writeln!(
        out,
        "\nNext:\n  1. byok-flow keys add anthropic    (then `byok-flow keys add openai`; each reads an API key from stdin)\n  2. byok-flow estimate {squad} {topic}\n  3. byok-flow run {squad} {topic} --out {results} --report {results}/report.html\n\nTo try the squad first, free and offline: byok-flow run {squad} {topic} --mock"
    )
    .map_err(write_error)
}

// By value: it is `map_err`'s argument.
#[allow(clippy::needless_pass_by_value)]
fn write_error(e: std::io::Error) -> Error {
    Error::new(Exit::AgentFailed, format!("cannot write to stdout: {e}"))
}
