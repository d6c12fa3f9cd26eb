//! `byok-flow run`: run a workflow, results on stdout, progress and the closing
//! table on stderr.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use indexmap::IndexMap;

use crate::batch;
use crate::cost::estimate::{AgentEstimate, Estimate, Total};
use crate::cost::prices::Pricing;
use crate::cost::{self, Usd};
use crate::dataset::Shard;
use crate::error::{Error, Exit, Result};
use crate::events::Bus;
use crate::providers::client::Keys;
use crate::read::{self, ReadError};
use crate::record::RunStatus;
use crate::report::{estimate_table, github, html, output, progress, table};
use crate::runner;
use crate::session::{self, KeysRefused, Session};
use crate::settings::Global;
use crate::suggest::Names;
use crate::workflow::{Checked, FileReport};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The workflow file.
    #[arg(value_name = "WORKFLOW.yaml")]
    pub file: PathBuf,

    /// An input value: NAME=VALUE, NAME=@FILE to read a file, NAME=@- to read stdin.
    #[arg(short, long = "input", value_name = "NAME=VALUE")]
    pub inputs: Vec<String>,

    /// The most an input read from a file or stdin (`NAME=@FILE`, `NAME=@-`) may
    /// hold, like `64MiB` or `1G`.
    #[arg(long, value_name = "SIZE", default_value = "32MiB", value_parser = read::parse_size, env = "BYOK_FLOW_MAX_INPUT_SIZE")]
    pub max_input_size: u64,

    /// Answer every agent with the built-in mock: no network, no keys, $0.
    #[arg(long)]
    pub mock: bool,

    /// The most agents running at once.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..), env = "BYOK_FLOW_CONCURRENCY")]
    pub concurrency: u32,

    /// After an agent fails, go on with the agents that do not depend on it.
    #[arg(long)]
    pub keep_going: bool,

    /// Print one JSON run record on stdout instead of the outputs.
    #[arg(long)]
    pub json: bool,

    /// Also write DIR/AGENT.md (or .json) for each agent and DIR/run.json.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,

    /// Also write the run's HTML report to FILE (one self-contained page: graph,
    /// timeline, dollars, outputs; see `byok-flow report`).
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,

    /// Only say what the run would cost: no keys, no network (`byok-flow estimate`).
    #[arg(long)]
    pub dry_run: bool,

    /// The most this run may spend, in US dollars (overrides `budget.max_usd`).
    #[arg(long, value_name = "USD", value_parser = parse_usd, env = "BYOK_FLOW_MAX_USD")]
    pub max_usd: Option<f64>,

    /// Price models from this file instead of the built-in table (format: data/prices.json).
    #[arg(long, value_name = "FILE", env = "BYOK_FLOW_PRICES")]
    pub prices: Option<PathBuf>,

    /// The `.byok` folder [default: the first `.byok/` in the workflow's folder or above].
    #[arg(long = "keys", value_name = "DIR")]
    pub keys_dir: Option<PathBuf>,

    /// The age identity file [default: `BYOK_FLOW_AGE_KEY`, `BYOK_FLOW_AGE_KEY_FILE`,
    /// `SOPS_AGE_KEY`, `SOPS_AGE_KEY_FILE`, then `~/.config/byok-flow/identity.txt`].
    #[arg(long, value_name = "FILE")]
    pub identity: Option<PathBuf>,

    /// Also let keys go to HOST (a `base_url` the key's provider does not own), e.g. a proxy.
    /// Repeatable; `BYOK_FLOW_ALLOW_HOSTS` adds a comma-separated list.
    #[arg(long = "allow-host", value_name = "HOST")]
    pub allow_hosts: Vec<String>,

    /// Call a model the price table lists as retired (an error otherwise): for a
    /// gateway that still serves it.
    #[arg(long, env = "BYOK_FLOW_ALLOW_RETIRED", value_parser = clap::builder::BoolishValueParser::new())]
    pub allow_retired: bool,

    /// Neither read nor write the answer cache: call every agent.
    #[arg(long, env = "BYOK_FLOW_NO_CACHE", value_parser = clap::builder::BoolishValueParser::new())]
    pub no_cache: bool,

    /// Call AGENT again whatever the cache holds, and every agent downstream of it;
    /// their fresh answers replace the cached ones. Repeatable.
    #[arg(long, value_name = "AGENT")]
    pub refresh: Vec<String>,

    /// The answer cache [default: `$XDG_CACHE_HOME/byok-flow` or `~/.cache/byok-flow`
    /// (`~/Library/Caches/byok-flow` on macOS)]; a folder in the workspace lets
    /// `actions/cache` keep it between CI runs.
    #[arg(long, value_name = "DIR", env = "BYOK_FLOW_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,

    /// Send the agents through the providers' batch APIs, at their batch price
    /// (about half; answers within 24 hours): agents ready at the same time go as
    /// one batch per provider, key and model. An agent with `batch: false` is called as usual.
    #[arg(long)]
    pub batch: bool,

    /// With `--batch`: once the batches are submitted, print the run id and exit 0.
    /// Collect the results with the same command again, or `byok-flow runs resume RUN_ID`.
    #[arg(long)]
    pub detach: bool,

    /// The run history this run is recorded in [default: `history.sqlite` in
    /// `$XDG_DATA_HOME/byok-flow` or `~/.local/share/byok-flow`].
    #[arg(long, value_name = "FILE", env = "BYOK_FLOW_HISTORY")]
    pub history: Option<PathBuf>,

    /// Run the squad once per row of FILE: `.jsonl` (a JSON object a line), `.json`
    /// (an array of objects), `.csv` (a header row, then a record a row), or `-`
    /// for JSON Lines on stdin. Each row's fields fill the inputs of their names.
    #[arg(long, value_name = "FILE")]
    pub each: Option<PathBuf>,

    /// With `--each`, run only shard K of N: the rows whose 0-based index i has
    /// i % N == K - 1 (for a CI matrix; `byok-flow merge` joins the shards).
    #[arg(long, value_name = "K/N", requires = "each", value_parser = parse_shard)]
    pub shard: Option<Shard>,
}

fn parse_shard(text: &str) -> std::result::Result<Shard, String> {
    text.parse()
}

/// A dollar amount: a finite number, 0 or more (`0.50`, `$2`).
fn parse_usd(text: &str) -> std::result::Result<f64, String> {
    let number = text.trim().trim_start_matches('$');
    match number.parse::<f64>() {
        Ok(usd) if usd.is_finite() && usd >= 0.0 => Ok(usd),
        _ => Err(format!(
            "`{text}` is not an amount of dollars; write a number like 0.50"
        )),
    }
}

pub fn run(args: &Args, global: Global) -> Result<Exit> {
    let table = Arc::new(super::load_prices(args.prices.as_deref())?);
    let mut checked = super::load_priced(&args.file, global, &table, args.allow_retired)?;
    batch::apply_flag(&mut checked.workflow, args.batch);
    check_batch(&checked, args, global)?;
    let checked = Arc::new(checked);
    if args.each.as_deref().is_some_and(|e| e.as_os_str() == "-")
        && args.inputs.iter().any(|i| i.ends_with("=@-"))
    {
        return Err(Error::usage(
            "`--each -` reads the rows from stdin, and an `--input NAME=@-` reads stdin too",
        )
        .hint("pass that input from a file (`--input NAME=@FILE`), or the rows from a file"));
    }
    // With `--each`, a required input may come from each row.
    let inputs = resolve_inputs(
        &checked,
        &args.inputs,
        args.each.is_none(),
        args.max_input_size,
    )?;
    check_refresh(&checked, args)?;
    let mut session = Session::new(checked.clone(), table, options(args), inputs, global);
    if let Some(each) = &args.each {
        return super::each::run(args, each, &session, global);
    }
    let max_usd = session.max_usd();
    let inputs = session.settings.inputs.clone();
    // The agents the cache will answer: they cost nothing, are not refused for the
    // budget, and need no key.
    let cached = session.cached_agents();
    // A `--mock` run is free and has no context windows: nothing to estimate.
    if args.dry_run || !args.mock {
        let pricing = session.pricing();
        // A run first checks with counts that need no tokenizer, which are at least
        // the exact ones: only when they do not settle it is the exact estimate made.
        let fits = |estimate: &Estimate| {
            check_windows(estimate, &args.file).is_ok()
                && max_usd
                    .and_then(|max| refuse(&estimate.agents, &estimate.total, max))
                    .is_none()
        };
        // The HTML report shows the estimate beside the actual, so `--report` asks
        // for the exact one.
        let upper = (!args.dry_run && args.report.is_none()).then(|| {
            let mut upper = cost::estimate::upper_estimate(&checked, &inputs, &pricing, max_usd);
            upper.mark_cached(&cached);
            upper
        });
        // An estimate never shows a cost for a run that cannot happen: a map
        // agent's input list that `run` refuses is refused here too.
        if args.dry_run
            && let Some((agent, why)) =
                cost::failing_list(&checked.workflow, &cost::estimate::inputs_json(&inputs))
        {
            return Err(Error::usage(format!(
                "agent `{agent}` would fail before any of its calls, so this run cannot happen: {why}"
            )));
        }
        if !upper.as_ref().is_some_and(fits) {
            let mut estimate = cost::estimate::estimate(&checked, &inputs, &pricing, max_usd);
            estimate.mark_cached(&cached);
            check_windows(&estimate, &args.file)?;
            let refusal = max_usd.and_then(|max| refuse(&estimate.agents, &estimate.total, max));
            if args.dry_run {
                if session.batched() {
                    // What the same run would cost called directly, for the saving.
                    let mut regular = (*checked).clone();
                    for agent in regular.workflow.agents.values_mut() {
                        agent.batch = Some(false);
                    }
                    let pricing = Pricing {
                        workflow: &regular.workflow,
                        ..pricing
                    };
                    let mut direct = cost::estimate::estimate(&regular, &inputs, &pricing, max_usd);
                    direct.mark_cached(&cached);
                    estimate.batch = Some(cost::estimate::BatchSaving::of(&estimate, &direct));
                }
                print_estimate(&estimate, args.json)?;
                return match refusal {
                    Some(e) => Err(e),
                    None => Ok(Exit::Success),
                };
            }
            if let Some(refusal) = refusal {
                if !global.quiet {
                    eprint!("{}", estimate_table::render(&estimate));
                }
                return Err(refusal);
            }
            session.settings.estimate = Some(estimate);
        }
    }
    let runtime = Session::runtime()?;
    // Keys are read and checked (files present, hosts allowed) before the progress
    // view starts, so a refusal costs nothing and an SSH passphrase prompt has the
    // terminal to itself.
    let keys = keys_or_exit(&session, &runtime, &cached, global)?;
    let bus = Bus::default();
    let workflow_name = runner::workflow_name(&checked, &session.settings.file);
    let waves = session.batcher(if args.detach {
        batch::Detach::Stop
    } else {
        batch::Detach::No
    })?;
    if let Some(waves) = &waves {
        bus.subscribe(Box::new(batch::RunIdSubscriber(waves.clone())));
        // Collecting a detached or interrupted run: it goes on under its id.
        session.settings.run_id = waves.resumes();
        session.settings.busy = Some(waves.busy());
    }
    let settings = &session.settings;
    // Made before the runner, which lets go of the file's places they point at.
    let annotations = global
        .github
        .map(|github| github::subscribers(github, &checked, &args.file, global.quiet));
    let (agent_runner, limits) = session.runner(keys, &bus, waves.as_ref())?;
    let mut gate = agent_runner.gate();
    if let Some(subscribers) = annotations {
        for subscriber in subscribers {
            bus.subscribe(subscriber);
        }
    } else if !global.quiet {
        if global.terminal {
            bus.subscribe(Box::new(progress::Live::default()));
        } else {
            bus.subscribe(Box::new(progress::Plain::default()));
        }
    }
    if !global.quiet {
        bus.subscribe(Box::new(table::ClosingTable));
    }
    if let Some(dir) = &args.out {
        let out = output::OutDir::new(dir)
            .map_err(|e| Error::usage(format!("cannot create `{}`: {e}", dir.display())))?;
        bus.subscribe(Box::new(out));
    }
    if let Some(file) = &args.report {
        bus.subscribe(Box::new(report_file(file)?));
    }
    let stdout = Box::new(output::Stdout {
        json: args.json,
        fence: global.github.is_some_and(|g| !g.stdout_is_file),
    });
    match &waves {
        Some(waves) => bus.subscribe(Box::new(batch::UnlessDetached {
            batcher: waves.clone(),
            inner: stdout,
        })),
        None => bus.subscribe(stdout),
    }
    let record_path = args.out.as_ref().map(|d| d.join("run.json"));
    if let Some(recorder) = session.recorder(&workflow_name, record_path.as_deref()) {
        bus.subscribe(Box::new(recorder));
    }

    let record = runtime.block_on(async {
        let cancel = async {
            let ctrl_c = async {
                if tokio::signal::ctrl_c().await.is_err() {
                    std::future::pending::<()>().await;
                }
            };
            match &waves {
                Some(waves) => tokio::select! {
                    () = ctrl_c => {}
                    () = waves.detached() => {}
                },
                None => ctrl_c.await,
            }
        };
        runner::execute(agent_runner, limits, settings, gate.as_mut(), &bus, cancel).await
    });
    if let Some(e) = bus.finish()
        && e.kind() != std::io::ErrorKind::BrokenPipe
    {
        return Err(Error::new(
            Exit::AgentFailed,
            format!("cannot write the results: {e}"),
        ));
    }
    if let Some(waves) = &waves
        && let Some(exit) =
            super::close_batches(waves, &session, &record.run_id, "results", global.quiet)
    {
        return Ok(exit);
    }
    let exit = match record.status {
        RunStatus::Succeeded => Exit::Success,
        // A key that could not be read or sent says more than "an agent failed".
        RunStatus::Failed if record.agents.iter().any(|a| a.key_failure) => Exit::Keys,
        RunStatus::Failed => Exit::AgentFailed,
        RunStatus::Interrupted => Exit::Interrupted,
        RunStatus::BudgetReached => Exit::Budget,
    };
    // The process ends next: freeing a record of 100,000 agents piece by piece
    // is time the user waits for and nobody needs (it holds no file or lock).
    std::mem::forget(record);
    Ok(exit)
}

/// The subscriber writing `--report FILE`, its folder made now so that a path
/// that cannot be written fails before any spend.
fn report_file(file: &Path) -> Result<html::ReportFile> {
    report_folder(file)?;
    Ok(html::ReportFile::new(file.to_path_buf()))
}

/// Makes the folder of `--report FILE`, and refuses a FILE that is a folder.
pub(super) fn report_folder(file: &Path) -> Result<()> {
    if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| {
            Error::usage(format!(
                "`--report {}`: cannot create its folder: {e}",
                file.display()
            ))
        })?;
    }
    if file.is_dir() {
        return Err(
            Error::usage(format!("`--report {}` is a folder", file.display()))
                .hint("name the HTML file to write, like `--report report.html`"),
        );
    }
    Ok(())
}

/// The session's options, from the command line.
fn options(args: &Args) -> session::Options {
    session::Options {
        file: args.file.clone(),
        mock: args.mock,
        concurrency: args.concurrency as usize,
        keep_going: args.keep_going,
        max_usd: args.max_usd,
        no_cache: args.no_cache,
        cache_dir: args.cache_dir.clone(),
        refresh: args.refresh.clone(),
        history: args.history.clone(),
        keys_dir: args.keys_dir.clone(),
        identity: args.identity.clone(),
        allow_hosts: args.allow_hosts.clone(),
    }
}

/// The session's keys, or the problems with them shown in the workflow file and
/// exit 4.
pub(super) fn keys_or_exit(
    session: &Session,
    runtime: &tokio::runtime::Runtime,
    cached: &[bool],
    global: Global,
) -> Result<Option<Arc<dyn Keys>>> {
    match session.keys(runtime, cached) {
        Ok(keys) => Ok(keys),
        Err(KeysRefused::Usage(e)) => Err(e),
        Err(KeysRefused::Report(report)) => {
            super::show_report(&report, global);
            Err(Error::reported(Exit::Keys))
        }
    }
}

/// Every `--refresh` names an agent of the workflow.
fn check_refresh(checked: &Checked, args: &Args) -> Result<()> {
    let agents = &checked.workflow.agents;
    for name in &args.refresh {
        if !agents.contains_key(name) {
            let hint =
                Names::new(agents.keys().map(String::as_str)).hint(name, "agents in this workflow");
            return Err(Error::usage(format!(
                "`--refresh {name}`: the workflow has no agent `{name}`"
            ))
            .hint(hint));
        }
    }
    if !args.refresh.is_empty() && args.no_cache {
        return Err(Error::usage(
            "`--refresh` writes fresh answers to the cache, which `--no-cache` (or BYOK_FLOW_NO_CACHE) turns off",
        )
        .hint("drop one of them: `--no-cache` alone already calls every agent"));
    }
    Ok(())
}

/// A prompt over its model's context window fails the run before any spend.
fn check_windows(estimate: &Estimate, file: &Path) -> Result<()> {
    let over: Vec<String> = estimate
        .agents
        .iter()
        .filter(|a| a.over_window())
        .map(|a| {
            format!(
                "agent `{}`: its prompt is about {} tokens, over the {}-token context window of `{}`",
                a.name,
                a.input_tokens,
                a.context_window.unwrap_or_default(),
                a.model
            )
        })
        .collect();
    if over.is_empty() {
        return Ok(());
    }
    Err(Error::usage(format!(
        "{}: {}",
        file.display(),
        over.join("; ")
    ))
    .hint("shorten the inputs, lower the `expected_output_tokens` of the agents it reads, or use a model with a larger context window; nothing was sent"))
}

/// Why a run with this budget must not start, if it must not: from the totals,
/// and the agents' estimates (what bounds each one's cost; the tools' uses).
pub(super) fn refuse(agents: &[AgentEstimate], total: &Total, max_usd: f64) -> Option<Error> {
    let budget = Usd::from_dollars(max_usd);
    if !total.unpriced.is_empty() {
        return Some(
            Error::new(
                Exit::Budget,
                format!(
                    "the budget of {budget} cannot be enforced: nothing prices the model of {}",
                    listed(&total.unpriced)
                ),
            )
            .hint("add each model's prices under its provider's `pricing:` in the workflow (dollars per million tokens), pass `--prices FILE`, or run without a budget"),
        );
    }
    if !total.unbounded.is_empty() {
        let why: Vec<String> = agents
            .iter()
            .filter(|a| total.unbounded.contains(&a.name))
            .map(|a| {
                let reason = a.unbounded.as_deref().unwrap_or("its cost has no bound");
                format!("`{}`: {reason}", a.name)
            })
            .collect();
        return Some(
            Error::new(
                Exit::Budget,
                format!(
                    "the budget of {budget} cannot be enforced: nothing bounds the cost of {}",
                    why.join("; ")
                ),
            )
            .hint("set `max_tokens` on those agents (or under `defaults:`); for a tool billed per use with no cap, use a model billed per request (Gemini 2.5) or one that takes `max_uses` (Anthropic), or run without a budget"),
        );
    }
    // A budget counts every use a tool may make: the number must be the user's.
    let assumed: Vec<String> = agents
        .iter()
        .filter(|a| !a.cached)
        .flat_map(|a| {
            a.tools
                .iter()
                .filter(|t| t.default_uses)
                .map(move |t| format!("`{}` on `{}`", t.tool, a.name))
        })
        .collect();
    if !assumed.is_empty() {
        return Some(
            Error::new(
                Exit::Budget,
                format!(
                    "with a budget, every tool needs its own `max_uses`: {} has none (byok-flow would send and reserve {})",
                    assumed.join(", "),
                    crate::tools::DEFAULT_MAX_USES
                ),
            )
            .hint("set it, like `tools: [{web_search: {max_uses: 3}}]`: each use is paid for, and the budget reserves every one"),
        );
    }
    (total.expected_usd > budget).then(|| {
        Error::new(
            Exit::Budget,
            format!(
                "the expected cost, {}, is over the budget of {budget}; nothing was run",
                total.expected_usd
            ),
        )
        .hint("raise `budget.max_usd` or pass a larger `--max-usd`, or lower `max_tokens` / `expected_output_tokens`, or choose cheaper models (`byok-flow estimate` shows each agent's share)")
    })
}

/// "`a`", "`a`, `b`".
fn listed(names: &[String]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The estimate on stdout: a table, or JSON with `--json`.
fn print_estimate(estimate: &Estimate, json: bool) -> Result<()> {
    let text = if json {
        let mut text = serde_json::to_string_pretty(estimate).map_err(|e| {
            Error::new(Exit::AgentFailed, format!("cannot write the estimate: {e}"))
        })?;
        text.push('\n');
        text
    } else {
        estimate_table::render(estimate)
    };
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(Error::new(
            Exit::AgentFailed,
            format!("cannot write the estimate: {e}"),
        )),
        _ => Ok(()),
    }
}

/// The run's inputs: `--input` values over declared defaults; every required one
/// present when `require` (else a required input with no value is left out).
pub(crate) fn resolve_inputs(
    checked: &Checked,
    given: &[String],
    require: bool,
    max_size: u64,
) -> Result<IndexMap<String, String>> {
    let declared = &checked.workflow.inputs;
    let mut values = IndexMap::new();
    for arg in given {
        let Some((name, value)) = arg.split_once('=') else {
            return Err(Error::usage(format!("`--input {arg}` has no `=`"))
                .hint("write `--input NAME=VALUE` or `--input NAME=@FILE`"));
        };
        if !declared.contains_key(name) {
            let hint = Names::new(declared.keys().map(String::as_str))
                .hint(name, "inputs in this workflow");
            return Err(Error::usage(format!(
                "`--input {name}`: the workflow has no input `{name}`"
            ))
            .hint(hint));
        }
        let value = match value.strip_prefix('@') {
            Some(source) => read_input(name, source, max_size)?,
            None => value.to_string(),
        };
        values.insert(name.to_string(), value);
    }
    let mut missing = Vec::new();
    for (name, input) in declared {
        if values.contains_key(name) {
            continue;
        }
        match &input.default {
            Some(default) => {
                values.insert(name.clone(), default.clone());
            }
            None if input.required => {
                if require {
                    missing.push(name.clone());
                }
            }
            None => {
                values.insert(name.clone(), String::new());
            }
        }
    }
    if !missing.is_empty() {
        let flags: Vec<String> = missing
            .iter()
            .map(|n| format!("--input {n}=VALUE"))
            .collect();
        let list = missing
            .iter()
            .map(|n| format!("`{n}`"))
            .collect::<Vec<_>>()
            .join(", ");
        return Err(Error::usage(format!("missing required input {list}"))
            .hint(format!("pass {}", flags.join(" "))));
    }
    values.sort_by_cached_key(|k, _| declared.get_index_of(k));
    Ok(values)
}

/// The text of `--input NAME=@SOURCE`: a regular file, or stdin for `-`, at
/// most `max_size` bytes of UTF-8.
fn read_input(name: &str, source: &str, max_size: u64) -> Result<String> {
    let bytes = if source == "-" {
        read::stdin(max_size)
    } else {
        read::file(Path::new(source), max_size)
    };
    let what = if source == "-" {
        "cannot read stdin"
    } else {
        "cannot read the file"
    };
    let bytes = bytes.map_err(|e| {
        let error = Error::usage(format!("`--input {name}=@{source}`: {what}: {e}"));
        match e {
            ReadError::TooLarge(_) => error.hint(format!(
                "if the input is meant to be that long, raise the limit, like `--max-input-size {}`",
                read::size_arg(max_size.saturating_mul(2))
            )),
            ReadError::NotAFile(_) => error.hint(format!(
                "give a regular file; to read from a pipe or a device, send it to stdin: `--input {name}=@- < SOURCE`"
            )),
            ReadError::Io(_) => error.hint("check the path"),
        }
    })?;
    String::from_utf8(bytes).map_err(|_| {
        let what = if source == "-" { "stdin" } else { "the file" };
        Error::usage(format!(
            "`--input {name}=@{source}`: {what} is not UTF-8 text"
        ))
        .hint("inputs are text; convert it to UTF-8 (`iconv -t UTF-8`)")
    })
}

/// `--batch` with an agent on a provider that has no batch API is an error at that
/// agent's model (unless it says `batch: false`); `--detach` needs a batched agent.
fn check_batch(checked: &Checked, args: &Args, global: Global) -> Result<()> {
    let diagnostics = batch::problems(checked);
    if !diagnostics.is_empty() {
        let report = FileReport::new(&args.file, checked.source(), diagnostics);
        super::show_report(&report, global);
        return Err(Error::reported(Exit::Invalid));
    }
    let any = checked
        .workflow
        .agents
        .values()
        .any(|a| a.batched(&checked.workflow.defaults));
    if args.detach && !any {
        return Err(Error::usage(
            "`--detach` leaves batches running, and no agent of this run is batched",
        )
        .hint("add `--batch` (or `batch: true` in the workflow's `defaults`)"));
    }
    // An agent that is not batched runs now; the run that collects the batches
    // finds its answer in the cache, or calls (and pays for) it again.
    let direct = checked
        .workflow
        .agents
        .iter()
        .find(|(_, a)| !a.batched(&checked.workflow.defaults));
    // `--refresh` skips the cache too, and the same command collects the batches.
    let skips_cache = if args.no_cache {
        Some("`--no-cache`")
    } else {
        (!args.refresh.is_empty()).then_some("`--refresh`")
    };
    if let (true, Some(flag), Some((name, _))) = (args.detach, skips_cache, direct) {
        return Err(Error::usage(format!(
            "`--detach` with {flag} would pay for agent `{name}` twice: it is not batched, so it is called now, and the run that collects the batches gets its answer only from the cache"
        ))
        .hint(format!(
            "drop {flag}, or batch `{name}` too (remove its `batch: false`)"
        )));
    }
    Ok(())
}
