//! A session: what every way of running a workflow shares (one run, its estimate,
//! a dataset run over many rows, and batch runs): the checked workflow and the
//! prices, the run's settings, the answer cache, the keys (every one checked
//! before the first request), the budget gate, and the run history.
//!
//! Commands resolve what the user typed into [`Options`] and open a session; the
//! runner, the scheduler and the outputs take it from there. Nothing here reads
//! the command line or prints results.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use indexmap::IndexMap;

use crate::batch::{self, Batcher};
use crate::cache::{self, Cache};
use crate::cost::Usd;
use crate::cost::prices::{PriceTable, Pricing};
use crate::error::{Error, Exit, Result};
use crate::events::Bus;
use crate::history;
use crate::keys::{self, KeyStore};
use crate::providers::client::Keys;
use crate::report::github;
use crate::runner::{self, AgentRunner, RunSettings};
use crate::settings::{GitHub, Global};
use crate::workflow::{Checked, FileReport};

/// How to run, as the command line said.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The workflow file, as given.
    pub file: PathBuf,
    pub mock: bool,
    pub concurrency: usize,
    pub keep_going: bool,
    /// `--max-usd`; the workflow's `budget.max_usd` when `None`.
    pub max_usd: Option<f64>,
    pub no_cache: bool,
    pub cache_dir: Option<PathBuf>,
    pub refresh: Vec<String>,
    /// `--history FILE`; the default history file when `None`.
    pub history: Option<PathBuf>,
    /// `--keys DIR`.
    pub keys_dir: Option<PathBuf>,
    /// `--identity FILE`.
    pub identity: Option<PathBuf>,
    /// `--allow-host HOST`, repeated.
    pub allow_hosts: Vec<String>,
}

/// Why the keys of a run were refused before any request.
#[derive(Debug)]
pub enum KeysRefused {
    /// Problems at the YAML that chose each key, to be shown in the file (exit 4).
    Report(FileReport),
    /// Something typed on the command line (an `--allow-host`).
    Usage(Error),
}

/// One workflow, about to be run (or estimated) under one set of options.
pub struct Session {
    pub checked: Arc<Checked>,
    pub prices: Arc<PriceTable>,
    /// The settings the runner is built from; `inputs` are the run's own values
    /// (for a dataset, those every row starts from).
    pub settings: RunSettings,
    options: Options,
    global: Global,
}

impl Session {
    /// A session over a checked workflow, with the run's inputs.
    pub fn new(
        checked: Arc<Checked>,
        prices: Arc<PriceTable>,
        options: Options,
        inputs: IndexMap<String, String>,
        global: Global,
    ) -> Session {
        let max_usd = options
            .max_usd
            .or(checked.workflow.budget.as_ref().map(|b| b.max_usd));
        let batched = checked
            .workflow
            .agents
            .values()
            .any(|a| a.batched(&checked.workflow.defaults));
        let settings = RunSettings {
            file: options.file.display().to_string(),
            inputs,
            mock: options.mock,
            // Batched calls wait on batches, not connections: `--concurrency` would
            // split a wave into several batches.
            concurrency: if batched {
                BATCH_CONCURRENCY
            } else {
                options.concurrency
            },
            keep_going: options.keep_going,
            prices: prices.clone(),
            max_usd,
            cache: resolve_cache(&options, global),
            refresh: options.refresh.clone(),
            estimate: None,
            run_id: None,
            busy: None,
        };
        Session {
            checked,
            prices,
            settings,
            options,
            global,
        }
    }

    /// Whether an agent goes through its provider's batch API (`--batch`, `batch: true`).
    pub fn batched(&self) -> bool {
        let w = &self.checked.workflow;
        w.agents.values().any(|a| a.batched(&w.defaults))
    }

    /// The batcher of a session with batched agents (none without): its state
    /// beside the cache. `detach` says what `--detach` does once its batches are submitted.
    pub fn batcher(&self, detach: batch::Detach) -> Result<Option<Batcher>> {
        if !self.batched() {
            return Ok(None);
        }
        let Some(dir) = self.options.cache_dir.clone().or_else(cache::default_dir) else {
            return Err(Error::usage(
                "a batch run keeps its state beside the cache, and there is no home folder to put it in",
            )
            .hint("pass `--cache-dir DIR`"));
        };
        let file = &self.options.file;
        let workflow = std::fs::canonicalize(file)
            .unwrap_or_else(|_| file.clone())
            .display()
            .to_string();
        let gather = std::env::var("BYOK_FLOW_BATCH_GATHER")
            .ok()
            .and_then(|v| humantime::parse_duration(&v).ok())
            .unwrap_or(std::time::Duration::from_millis(100));
        let quiet = self.global.quiet;
        Ok(Some(Batcher::new(batch::Options {
            states: batch::state::StateDir::in_cache(&dir),
            detach,
            gather,
            backoff: batch::backoff::Backoff::from_env(),
            run: batch::state::RunState {
                version: batch::state::VERSION,
                workflow,
                cwd: std::env::current_dir()
                    .map(|d| d.display().to_string())
                    .unwrap_or_default(),
                // The command again (`runs resume`), waiting on the batches.
                args: std::env::args()
                    .skip(1)
                    .filter(|a| a != "--detach")
                    .collect(),
                started_at: humantime::format_rfc3339_seconds(std::time::SystemTime::now())
                    .to_string(),
                ..batch::state::RunState::default()
            },
            note: Arc::new(move |line: &str| {
                if quiet {
                    tracing::info!("{line}");
                } else {
                    eprintln!("{line}");
                }
            }),
        })))
    }

    /// How models are priced in this session.
    pub fn pricing(&self) -> Pricing<'_> {
        Pricing {
            table: &self.prices,
            workflow: &self.checked.workflow,
            mock: self.options.mock,
        }
    }

    /// The spending ceiling (`--max-usd`, else `budget.max_usd`), if any.
    pub fn max_usd(&self) -> Option<f64> {
        self.settings.max_usd
    }

    /// Which agents of a run with the session's inputs the cache would answer:
    /// they cost nothing, are not refused for the budget, and need no key.
    pub fn cached_agents(&self) -> Vec<bool> {
        match &self.settings.cache {
            Some(_) => runner::prepare_offline(self.checked.clone(), &self.settings)
                .map(|probe| probe.cached_agents())
                .unwrap_or_default(),
            None => Vec::new(),
        }
    }

    /// The async runtime the run goes on.
    pub fn runtime() -> Result<tokio::runtime::Runtime> {
        tokio::runtime::Runtime::new().map_err(|e| {
            Error::new(
                Exit::AgentFailed,
                format!("cannot start the async runtime: {e}"),
            )
        })
    }

    /// The run's keys: none for `--mock`; else `.byok/` found from the workflow's
    /// folder (or `--keys`), the identity as SPEC §4 orders it, and the hosts
    /// allowed beyond each provider's own. Every key the run will use (none for
    /// agents marked in `cached`) is checked first (files present, variables set,
    /// destinations allowed), decrypting only what a destination check needs.
    pub fn keys(
        &self,
        runtime: &tokio::runtime::Runtime,
        cached: &[bool],
    ) -> Result<Option<Arc<dyn Keys>>, KeysRefused> {
        if self.options.mock {
            return Ok(None);
        }
        let env_hosts = std::env::var(keys::ENV_ALLOW_HOSTS).ok();
        let allow = keys::AllowHosts::parse(&self.options.allow_hosts, env_hosts.as_deref())
            .map_err(|e| KeysRefused::Usage(Error::usage(e.to_string())))?;
        let start = keys::KeysDir::start_for_workflow(&self.options.file);
        let dir = keys::KeysDir::locate(self.options.keys_dir.as_deref(), &start);
        let identity = keys::IdentitySource::new(self.options.identity.clone());
        let mut store = KeyStore::new(dir, identity, allow);
        if self.global.github.is_some_and(GitHub::masks_keys) {
            // Masked the moment it is read, before anything about it is printed.
            store = store.on_read(|key| {
                let _ = github::command::add_mask(key);
            });
        }
        let checked = &self.checked;
        let mut uses = keys::plan(&checked.workflow);
        // A key only cached agents would use is not needed (should one of them be
        // called after all, its key is still checked and its host rule applied when
        // it is sent).
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
                .map(|p| p.diagnostic(&checked.index()))
                .collect();
            let file = &self.options.file;
            let report = FileReport::new(file, checked.source(), diagnostics);
            return Err(KeysRefused::Report(report));
        }
        Ok(Some(Arc::new(store)))
    }

    /// The runner of this session's agents, and each provider lane's limit. Its
    /// gate ([`AgentRunner::gate`]) holds every agent (of every row) to the one
    /// budget. The batched agents' models are called through `batcher` (see
    /// [`Session::batcher`]), each attempt a request in a batch.
    pub fn runner(
        &self,
        keys: Option<Arc<dyn Keys>>,
        bus: &Bus,
        batcher: Option<&Batcher>,
    ) -> Result<(AgentRunner, Vec<usize>)> {
        // Every problem to show in the file is found by now (keys and hosts were
        // checked): its text and places are let go before the plan is built.
        self.checked.let_go_of_the_file();
        match batcher {
            Some(batcher) => {
                let clients = batch::clients(batcher, self.options.mock, keys.clone())
                    .map_err(Error::usage)?;
                let (runner, limits) = runner::prepare_batched(
                    self.checked.clone(),
                    &self.settings,
                    keys,
                    Some(&*clients),
                    bus,
                )
                .map_err(Error::usage)?;
                if let Some(budget) = runner.budget() {
                    hold_what_batches_hold(budget, batcher);
                }
                Ok((runner, limits))
            }
            None => runner::prepare(self.checked.clone(), &self.settings, keys, bus)
                .map_err(Error::usage),
        }
    }

    /// The subscriber that records the run in the history, with where its record
    /// is written (for `report RUN_ID`), unless the history cannot be opened (a
    /// warning: a run is never refused for it).
    pub fn recorder(&self, workflow: &str, record: Option<&Path>) -> Option<history::Recorder> {
        let path = self
            .options
            .history
            .clone()
            .or_else(history::default_file)?;
        let opened = history::Recorder::new(
            &path,
            workflow,
            &self.settings.file,
            history::inputs_hash(&self.settings.inputs),
            self.settings.mock,
            self.global.quiet,
        );
        match opened {
            Ok(recorder) => Some(recorder.with_record_path(record)),
            Err(e) => {
                self.warn(&format!("this run is not recorded in the history: {e}"));
                None
            }
        }
    }

    /// Marks a detached run `submitted` in the history (its batches are pending;
    /// the run that collects them goes on under its id).
    pub fn mark_submitted(&self, run_id: &str) {
        let Some(path) = self.options.history.clone().or_else(history::default_file) else {
            return;
        };
        let marked = history::Store::open(&path).and_then(|mut s| s.mark_submitted(run_id));
        if let Err(e) = marked {
            self.warn(&format!(
                "the history does not show run {run_id} as submitted: {e}"
            ));
        }
    }

    /// The ceiling the run is held to: none under `--mock`, where every call is free.
    pub fn budget(&self) -> Option<Usd> {
        self.settings.budget()
    }

    fn warn(&self, message: &str) {
        if !self.global.quiet {
            eprintln!("warning: {message}");
        }
    }
}

/// The most batched calls waiting at once: every agent of a wave.
const BATCH_CONCURRENCY: usize = 1 << 20;

/// The answer cache of a run, if it has one: none with `--no-cache` or `--mock`
/// (mock replies are free and deterministic, so they are not kept), nor when no
/// folder can be found for it.
fn resolve_cache(options: &Options, global: Global) -> Option<Cache> {
    if options.no_cache || options.mock {
        return None;
    }
    let Some(dir) = options.cache_dir.clone().or_else(cache::default_dir) else {
        if !global.quiet {
            eprintln!(
                "warning: no cache folder (no home folder to put it in); every agent is called. Pass `--cache-dir DIR` to keep answers."
            );
        }
        return None;
    };
    Some(Cache::new(dir))
}

/// A run that collects batches earlier runs left starts with what each of their
/// requests may cost counted against its ceiling: the provider bills them
/// whatever this run does, and a dataset's later rows must not be admitted on
/// money an earlier row's detached request already took.
fn hold_what_batches_hold(budget: &crate::cost::budget::Budget, batcher: &Batcher) {
    let (held, unknown) = batcher.held();
    if !held.is_empty() {
        let sum: Usd = held.iter().map(|(_, worst)| *worst).sum();
        tracing::info!(
            "budget: {} request(s) in earlier runs' batches may cost {sum}: counted from the start",
            held.len()
        );
    }
    if unknown > 0 {
        tracing::warn!(
            "{unknown} request(s) in batches of an earlier run do not say what they may cost (their state was written by an older byok-flow, or their model has no price): each counts against the budget only when its turn comes, so the run may pass the ceiling by up to what they cost; collect them without a budget first to be sure"
        );
    }
    budget.hold(held);
}
