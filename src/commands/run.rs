//! `byok-flow run`: run a workflow, results on stdout, progress and the closing
//! table on stderr.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use indexmap::IndexMap;

use crate::batch::{self, Batcher};
use crate::cache::{self, Cache};
use crate::cost::estimate::Estimate;
use crate::cost::prices::Pricing;
use crate::cost::{self, Usd};
use crate::error::{Error, Exit, Result};
use crate::events::Bus;
use crate::history;
use crate::keys::{self, KeyStore};
use crate::providers::client::Keys;
use crate::read::{self, ReadError};
use crate::record::RunStatus;
use crate::report::{estimate_table, github, html, output, progress, table};
use crate::runner::{self, RunSettings};
use crate::settings::GitHub;
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
    let batched = checked
        .workflow
        .agents
        .values()
        .any(|a| a.batched(&checked.workflow.defaults));
    let checked = Arc::new(checked);
    let inputs = resolve_inputs(&checked, &args.inputs, args.max_input_size)?;
    check_refresh(&checked, args)?;
    let cache = resolve_cache(args, global);
    let max_usd = args
        .max_usd
        .or(checked.workflow.budget.as_ref().map(|b| b.max_usd));
    let pricing = Pricing {
        table: &table,
        workflow: &checked.workflow,
        mock: args.mock,
    };
    let mut settings = RunSettings {
        file: args.file.display().to_string(),
        inputs: inputs.clone(),
        mock: args.mock,
        // Batched calls wait on batches, not connections: `--concurrency` would
        // split a wave into several batches.
        concurrency: if batched && !args.dry_run {
            BATCH_CONCURRENCY
        } else {
            args.concurrency as usize
        },
        keep_going: args.keep_going,
        prices: table.clone(),
        max_usd,
        cache,
        refresh: args.refresh.clone(),
        estimate: None,
    };
    // The agents the cache will answer: they cost nothing, are not refused for the
    // budget, and need no key.
    let cached = match &settings.cache {
        Some(_) => runner::prepare_offline(checked.clone(), &settings)
            .map(|probe| probe.cached_agents())
            .unwrap_or_default(),
        None => Vec::new(),
    };
    // A `--mock` run is free and has no context windows: nothing to estimate.
    if args.dry_run || !args.mock {
        // A run first checks with counts that need no tokenizer, which are at least
        // the exact ones: only when they do not settle it is the exact estimate made.
        let fits = |estimate: &Estimate| {
            check_windows(estimate, &args.file).is_ok()
                && max_usd.and_then(|max| refuse(estimate, max)).is_none()
        };
        // The HTML report shows the estimate beside the actual, so `--report` asks
        // for the exact one.
        let upper = (!args.dry_run && args.report.is_none()).then(|| {
            let mut upper = cost::estimate::upper_estimate(&checked, &inputs, &pricing, max_usd);
            upper.mark_cached(&cached);
            upper
        });
        if !upper.as_ref().is_some_and(fits) {
            let mut estimate = cost::estimate::estimate(&checked, &inputs, &pricing, max_usd);
            estimate.mark_cached(&cached);
            check_windows(&estimate, &args.file)?;
            let refusal = max_usd.and_then(|max| refuse(&estimate, max));
            if args.dry_run {
                if batched {
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
            settings.estimate = Some(estimate);
        }
    }
    let runtime = tokio::runtime::Runtime::new().map_err(|e| {
        Error::new(
            Exit::AgentFailed,
            format!("cannot start the async runtime: {e}"),
        )
    })?;
    // Keys are read and checked (files present, hosts allowed) before the progress
    // view starts, so a refusal costs nothing and an SSH passphrase prompt has the
    // terminal to itself.
    let keys = if args.mock {
        None
    } else {
        Some(key_store(args, &checked, &cached, global, &runtime)?)
    };
    let bus = Bus::default();
    let workflow_name = runner::workflow_name(&checked, &settings.file);
    let waves = batched.then(|| batcher(args, global)).transpose()?;
    let (agent_runner, limits) = match &waves {
        Some(waves) => {
            let clients = batch::clients(waves, args.mock, keys.clone()).map_err(Error::usage)?;
            bus.subscribe(Box::new(batch::RunIdSubscriber(waves.clone())));
            runner::prepare_batched(checked.clone(), &settings, keys, Some(&*clients), &bus)
        }
        None => runner::prepare(checked.clone(), &settings, keys, &bus),
    }
    .map_err(Error::usage)?;
    let mut gate = agent_runner.gate();
    if let Some(github) = global.github {
        for subscriber in github::subscribers(github, &checked, &args.file, global.quiet) {
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
    if let Some(recorder) = recorder(args, &settings, &workflow_name, global) {
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
        runner::execute(agent_runner, limits, &settings, gate.as_mut(), &bus, cancel).await
    });
    if let Some(e) = bus.finish() {
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            return Err(Error::new(
                Exit::AgentFailed,
                format!("cannot write the results: {e}"),
            ));
        }
    }
    if let Some(waves) = &waves {
        waves.finish();
        let pending = waves.pending();
        if waves.did_detach() {
            println!("{}", record.run_id);
            if !global.quiet {
                eprintln!(
                    "detached: {pending} batch{} submitted; collect the results with the same command again, or `byok-flow runs resume {}`",
                    if pending == 1 { "" } else { "es" },
                    record.run_id
                );
            }
            return Ok(Exit::Success);
        }
        if pending > 0 && !global.quiet {
            eprintln!(
                "{pending} batch{} left running at the provider; collect the results with the same command again, or `byok-flow runs resume {}` (`byok-flow runs cancel {}` cancels them)",
                if pending == 1 { " is" } else { "es are" },
                record.run_id,
                record.run_id
            );
        }
    }
    Ok(match record.status {
        RunStatus::Succeeded => Exit::Success,
        // A key that could not be read or sent says more than "an agent failed".
        RunStatus::Failed if record.agents.iter().any(|a| a.key_failure) => Exit::Keys,
        RunStatus::Failed => Exit::AgentFailed,
        RunStatus::Interrupted => Exit::Interrupted,
        RunStatus::BudgetReached => Exit::Budget,
    })
}

/// The subscriber writing `--report FILE`, its folder made now so that a path
/// that cannot be written fails before any spend.
fn report_file(file: &Path) -> Result<html::ReportFile> {
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
    Ok(html::ReportFile::new(file.to_path_buf()))
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

/// The answer cache of this run, if it has one: none with `--no-cache` or `--mock`
/// (mock replies are free and deterministic, so they are not kept), nor when no
/// folder can be found for it.
fn resolve_cache(args: &Args, global: Global) -> Option<Cache> {
    if args.no_cache || args.mock {
        return None;
    }
    let Some(dir) = args.cache_dir.clone().or_else(cache::default_dir) else {
        if !global.quiet {
            eprintln!(
                "warning: no cache folder (no home folder to put it in); every agent is called. Pass `--cache-dir DIR` to keep answers."
            );
        }
        return None;
    };
    Some(Cache::new(dir))
}

/// The subscriber that records the run in the history, unless the history cannot
/// be opened (a warning: a run is never refused for it).
fn recorder(
    args: &Args,
    settings: &RunSettings,
    workflow: &str,
    global: Global,
) -> Option<history::Recorder> {
    let path = args.history.clone().or_else(history::default_file)?;
    let opened = history::Recorder::new(
        &path,
        workflow,
        &settings.file,
        history::inputs_hash(&settings.inputs),
        settings.mock,
        global.quiet,
    );
    match opened {
        Ok(recorder) => Some(
            recorder.with_record_path(args.out.as_ref().map(|d| d.join("run.json")).as_deref()),
        ),
        Err(e) => {
            if !global.quiet {
                eprintln!("warning: this run is not recorded in the history: {e}");
            }
            None
        }
    }
}

/// The run's keys: `.byok/` found from the workflow's folder (or `--keys`), the
/// identity as SPEC §4 orders it, and the hosts allowed beyond each provider's own.
/// Every key the run will use (none for agents the cache answers) is read and
/// checked against every destination it will be sent to, for every agent and
/// fallback model, before the first request: a refusal never comes after money
/// was spent. A problem is shown at the YAML that chose the key; the run exits 4.
fn key_store(
    args: &Args,
    checked: &Checked,
    cached: &[bool],
    global: Global,
    runtime: &tokio::runtime::Runtime,
) -> Result<Arc<dyn Keys>> {
    let env_hosts = std::env::var(keys::ENV_ALLOW_HOSTS).ok();
    let allow = keys::AllowHosts::parse(&args.allow_hosts, env_hosts.as_deref())
        .map_err(|e| Error::usage(e.to_string()))?;
    let start = keys::KeysDir::start_for_workflow(&args.file);
    let dir = keys::KeysDir::locate(args.keys_dir.as_deref(), &start);
    let mut store = KeyStore::new(dir, keys::IdentitySource::new(args.identity.clone()), allow);
    if global.github.is_some_and(GitHub::masks_keys) {
        // Masked the moment it is read, before anything about it is printed.
        store = store.on_read(|key| {
            let _ = github::command::add_mask(key);
        });
    }
    let mut uses = keys::plan(&checked.workflow);
    // A key only cached agents would use is not needed (should one of them be called
    // after all, its key is still checked and its host rule applied when it is sent).
    let is_cached = |name: &String| {
        checked
            .workflow
            .agents
            .get_index_of(name)
            .is_some_and(|i| cached.get(i).copied().unwrap_or(false))
    };
    uses.retain(|u| !u.agents.iter().all(is_cached));
    if let Err(problems) = runtime.block_on(store.preflight(&uses)) {
        let diagnostics = problems
            .iter()
            .map(|p| p.diagnostic(&checked.index))
            .collect();
        let report = FileReport::new(&args.file, checked.source.clone(), diagnostics);
        super::show_report(&report, global);
        return Err(Error::reported(Exit::Keys));
    }
    Ok(Arc::new(store))
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

/// Why a run with this budget must not start, if it must not.
fn refuse(estimate: &Estimate, max_usd: f64) -> Option<Error> {
    let total = &estimate.total;
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
        let why: Vec<String> = estimate
            .agents
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
    let assumed: Vec<String> = estimate
        .agents
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

/// The run's inputs: `--input` values over declared defaults; every required one present.
pub(crate) fn resolve_inputs(
    checked: &Checked,
    given: &[String],
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
            None if input.required => missing.push(name.clone()),
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

/// The most batched calls waiting at once: every agent of a wave.
const BATCH_CONCURRENCY: usize = 1 << 20;

/// `--batch` with an agent on a provider that has no batch API is an error at that
/// agent's model (unless it says `batch: false`); `--detach` needs a batched agent.
fn check_batch(checked: &Checked, args: &Args, global: Global) -> Result<()> {
    let diagnostics = batch::problems(checked);
    if !diagnostics.is_empty() {
        let report = FileReport::new(&args.file, checked.source.clone(), diagnostics);
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
    Ok(())
}

/// The batcher of a batch run: its state beside the cache.
fn batcher(args: &Args, global: Global) -> Result<Batcher> {
    let Some(dir) = args.cache_dir.clone().or_else(cache::default_dir) else {
        return Err(Error::usage(
            "a batch run keeps its state beside the cache, and there is no home folder to put it in",
        )
        .hint("pass `--cache-dir DIR`"));
    };
    let workflow = std::fs::canonicalize(&args.file)
        .unwrap_or_else(|_| args.file.clone())
        .display()
        .to_string();
    let gather = std::env::var("BYOK_FLOW_BATCH_GATHER")
        .ok()
        .and_then(|v| humantime::parse_duration(&v).ok())
        .unwrap_or(std::time::Duration::from_millis(100));
    let quiet = global.quiet;
    Ok(Batcher::new(batch::Options {
        states: batch::state::StateDir::in_cache(&dir),
        detach: args.detach,
        gather,
        backoff: batch::backoff::Backoff::from_env(),
        run: batch::state::RunState {
            version: batch::state::VERSION,
            workflow,
            cwd: std::env::current_dir()
                .map(|d| d.display().to_string())
                .unwrap_or_default(),
            args: std::env::args()
                .skip(1)
                .filter(|a| a != "--detach")
                .collect(),
            started_at: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
            ..batch::state::RunState::default()
        },
        note: std::sync::Arc::new(move |line: &str| {
            if quiet {
                tracing::info!("{line}");
            } else {
                eprintln!("{line}");
            }
        }),
    }))
}
