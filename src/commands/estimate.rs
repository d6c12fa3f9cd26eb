//! `byok-flow estimate`: what a run would cost (as `run --dry-run`), and with
//! `--diff REF` what a change to the workflow does to that cost: the file as it
//! is at git `REF` (read with `git show`) against the working tree. The
//! comparison lives in `crate::cost::diff`, its tables in `crate::report::diff_table`.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use indexmap::IndexMap;

use super::run;
use crate::cost::diff::{self, Version};
use crate::cost::estimate::{self, Estimate};
use crate::cost::prices::Pricing;
use crate::error::{Error, Exit, Result};
use crate::report::diff_table;
use crate::settings::Global;
use crate::workflow::{self, Checked, load};

#[derive(Debug, clap::Args)]
#[group(id = "estimate_args")]
pub struct Args {
    #[command(flatten)]
    pub run: run::Args,

    /// Compare the cost with the workflow as it is at this git ref (a branch, tag or
    /// commit): per agent and in total, before and after.
    #[arg(long, value_name = "GIT_REF")]
    pub diff: Option<String>,

    /// How to print `--diff`: a table, Markdown (for a pull-request comment) or JSON.
    #[arg(long, value_enum, requires = "diff")]
    pub format: Option<Format>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Markdown,
    Json,
}

pub fn run(args: &mut Args, global: Global) -> Result<Exit> {
    args.run.dry_run = true;
    let Some(base) = args.diff.clone() else {
        return run::run(&args.run, global);
    };
    if let Some(each) = &args.run.each {
        return Err(Error::usage(format!(
            "`--diff {base}` compares one run's cost before and after, and `--each {}` estimates a run per row",
            each.display()
        ))
        .hint("drop `--each` to compare the workflow's cost (with `--input` for its inputs), or drop `--diff` to estimate the rows"));
    }
    let format = match (args.format, args.run.json) {
        (Some(format), _) => format,
        (None, true) => Format::Json,
        (None, false) => Format::Table,
    };
    let table = super::load_prices(args.run.prices.as_deref())?;
    let file = &args.run.file;
    let now = if file.exists() {
        Some(super::load_priced(
            file,
            global,
            &table,
            args.run.allow_retired,
        )?)
    } else {
        None
    };
    let then = at_ref(file, &base)?
        .map(|text| checked_at(file, &base, text, global))
        .transpose()?;
    if now.is_none() && then.is_none() {
        return Err(Error::usage(format!(
            "{} exists neither in the working tree nor at `{base}`",
            file.display()
        ))
        .hint("check the path: it is the workflow file, relative to here"));
    }
    let mut empty = Vec::new();
    let mut estimate_of = |checked: &Checked| -> Result<Estimate> {
        let inputs = inputs(
            checked,
            &args.run.inputs,
            args.run.max_input_size,
            &mut empty,
        )?;
        let max_usd = args
            .run
            .max_usd
            .or(checked.workflow.budget.as_ref().map(|b| b.max_usd));
        let pricing = Pricing {
            table: &table,
            workflow: &checked.workflow,
            mock: false,
        };
        Ok(estimate::estimate(checked, &inputs, &pricing, max_usd))
    };
    let before = then.as_ref().map(&mut estimate_of).transpose()?;
    let after = now.as_ref().map(&mut estimate_of).transpose()?;
    let version = |checked: &Option<Checked>, estimate: &Option<Estimate>| match (checked, estimate)
    {
        (Some(c), Some(e)) => Some((c.workflow.clone(), e.clone())),
        _ => None,
    };
    let (old, new) = (version(&then, &before), version(&now, &after));
    let diff = diff::diff(
        &file.display().to_string(),
        &base,
        old.as_ref()
            .map(|(workflow, estimate)| Version { workflow, estimate }),
        new.as_ref()
            .map(|(workflow, estimate)| Version { workflow, estimate }),
        table.describe(),
        empty,
    );
    let text = match format {
        Format::Table => diff_table::text(&diff),
        Format::Markdown => diff_table::markdown(&diff),
        Format::Json => {
            let mut text = serde_json::to_string_pretty(&diff).map_err(|e| {
                Error::new(
                    Exit::AgentFailed,
                    format!("cannot write the comparison: {e}"),
                )
            })?;
            text.push('\n');
            text
        }
    };
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(Error::new(
            Exit::AgentFailed,
            format!("cannot write the comparison: {e}"),
        )),
        _ => Ok(Exit::Success),
    }
}

/// The run's inputs for an estimate: `--input` values and defaults; a required
/// input without a value counts as empty (a comment on a pull request has no
/// values to give), and is noted in `empty`.
fn inputs(
    checked: &Checked,
    given: &[String],
    max_size: u64,
    empty: &mut Vec<String>,
) -> Result<IndexMap<String, String>> {
    let named: Vec<&str> = given
        .iter()
        .filter_map(|g| g.split_once('=').map(|(name, _)| name))
        .collect();
    let mut all = given.to_vec();
    for (name, input) in &checked.workflow.inputs {
        if input.required && input.default.is_none() && !named.contains(&name.as_str()) {
            all.push(format!("{name}="));
            if !empty.contains(name) {
                empty.push(name.clone());
            }
        }
    }
    // An `--input` only one side declares is not an error for the other.
    all.retain(|g| {
        g.split_once('=')
            .is_none_or(|(name, _)| checked.workflow.inputs.contains_key(name))
    });
    run::resolve_inputs(checked, &all, true, max_size)
}

/// The workflow at `base`, checked; a file that was invalid there is shown with
/// its problems, at `REF:FILE`.
fn checked_at(file: &Path, base: &str, text: String, global: Global) -> Result<Checked> {
    let shown = PathBuf::from(format!("{base}:{}", file.display()));
    let checked = load::load_source(&shown, Arc::from(text))
        .and_then(|(loaded, report)| workflow::validate::check(loaded, report));
    match checked {
        Ok((checked, _)) => Ok(checked),
        Err(report) => {
            super::show_report(&report, global);
            Err(Error::reported(Exit::Invalid))
        }
    }
}

/// The file's text at git `base`; `None` when it did not exist there.
fn at_ref(file: &Path, base: &str) -> Result<Option<String>> {
    if base.starts_with('-') || base.chars().any(char::is_whitespace) || base.is_empty() {
        return Err(Error::usage(format!("`--diff {base}` is not a git ref"))
            .hint("name a branch, tag or commit, like `--diff main` or `--diff HEAD~1`"));
    }
    let dir = match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let git = |args: &[&str]| {
        Command::new("git")
            .arg("-C")
            .arg(&dir)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                Error::usage(format!("cannot run git (needed by `--diff`): {e}"))
                    .hint("install git, or estimate without `--diff`")
            })
    };
    let commit = git(&[
        "rev-parse",
        "--verify",
        "--quiet",
        &format!("{base}^{{commit}}"),
    ])?
    .wait_with_output()
    .map_err(|e| Error::usage(format!("git: {e}")))?;
    if !commit.status.success() {
        return Err(Error::usage(format!(
            "`{base}` is not a commit git knows in {}",
            dir.display()
        ))
        .hint("fetch it first (`git fetch origin main`); in GitHub Actions, check out with `fetch-depth: 0`"));
    }
    let object = format!("{base}:./{name}");
    let exists = git(&["cat-file", "-e", &object])?
        .wait()
        .map_err(|e| Error::usage(format!("git: {e}")))?;
    if !exists.success() {
        return Ok(None);
    }
    let mut child = git(&["show", &object])?;
    let mut bytes = Vec::new();
    if let Some(stdout) = child.stdout.take() {
        stdout
            .take(load::MAX_FILE_BYTES as u64 + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| Error::usage(format!("git show {object}: {e}")))?;
    }
    let _ = child.kill();
    let _ = child.wait();
    String::from_utf8(bytes)
        .map(Some)
        .map_err(|_| Error::usage(format!("{} at `{base}` is not UTF-8 text", file.display())))
}
