//! The batches a batch run left at the providers (SPEC §9): listed by `runs list`,
//! collected by `runs resume RUN_ID` (the run's own command, started again where
//! it was started: a submitted batch is never submitted again), cancelled by
//! `runs cancel RUN_ID`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::batch::api::Handle;
use crate::batch::api_for;
use crate::batch::state::{RunState, StateDir, unix_now};
use crate::cache;
use crate::error::{Error, Exit, Result};
use crate::keys::{self, KeyRef, KeyStore};
use crate::providers::client::Keys;
use crate::providers::http::{Http, Timeouts};
use crate::settings::Global;
use crate::workflow::providers as workflow_providers;

/// The state folder beside the cache (`--cache-dir`, else the default).
pub fn states(cache_dir: Option<&Path>) -> Result<StateDir> {
    let dir = cache_dir
        .map(Path::to_path_buf)
        .or_else(cache::default_dir)
        .ok_or_else(|| {
            Error::usage("cannot tell where the cache (and the batch state) is: no home folder")
                .hint("pass `--cache-dir DIR` or set BYOK_FLOW_CACHE_DIR")
        })?;
    Ok(StateDir::in_cache(&dir))
}

/// `runs list`'s section on batches still at the providers; empty when none.
pub fn pending_text(states: &StateDir) -> String {
    let mut out = String::new();
    for state in states.load_all() {
        let pending: Vec<_> = state.batches.iter().filter(|b| b.pending()).collect();
        if pending.is_empty() {
            continue;
        }
        if out.is_empty() {
            out.push_str("\npending batches (collect: `byok-flow runs resume RUN_ID`; cancel: `byok-flow runs cancel RUN_ID`):\n");
        }
        for b in pending {
            let age = humantime::format_duration(std::time::Duration::from_secs(
                unix_now().saturating_sub(b.submitted_at),
            ));
            let id = if b.handle.id.is_empty() {
                format!(
                    "(uploaded {}, not created)",
                    b.handle.file.as_deref().unwrap_or("?")
                )
            } else {
                b.handle.id.clone()
            };
            out.push_str(&format!(
                "  {}  {}  {}/{}  {id}  {} request{}  submitted {age} ago\n",
                state.run_id,
                state.workflow,
                b.provider,
                b.model,
                b.requests.len(),
                if b.requests.len() == 1 { "" } else { "s" },
            ));
        }
    }
    out
}

fn load(states: &StateDir, run_id: &str) -> Result<RunState> {
    states.load(run_id).map_err(|e| {
        Error::usage(format!("run {run_id}: {e}"))
            .hint("`byok-flow runs list` shows the runs with batches still at the providers")
    })
}

/// `runs resume RUN_ID`: the run's own command again, in its folder; it waits on
/// the batches the run submitted and goes on with the agents after them.
pub fn resume(states: &StateDir, run_id: &str, detach: bool) -> Result<Exit> {
    let state = load(states, run_id)?;
    if state.args.first().map(String::as_str) != Some("run") {
        return Err(Error::usage(format!(
            "run {run_id}: its state does not say how it was started"
        )));
    }
    let exe = std::env::current_exe()
        .map_err(|e| Error::usage(format!("cannot find the byok-flow binary: {e}")))?;
    let mut command = std::process::Command::new(exe);
    command.args(&state.args);
    if !state.args.iter().any(|a| a == "--cache-dir") {
        command
            .arg("--cache-dir")
            .arg(states.0.parent().unwrap_or(&states.0));
    }
    if detach {
        command.arg("--detach");
    }
    // The run goes on under its id, whatever other runs of the command left.
    command.env("BYOK_FLOW_RESUME_RUN", run_id);
    if !state.cwd.is_empty() {
        command.current_dir(&state.cwd);
    }
    let ended = command
        .status()
        .map_err(|e| Error::usage(format!("cannot start `byok-flow run` again: {e}")))?;
    Ok(match ended.code() {
        Some(0) => Exit::Success,
        Some(2) => Exit::Invalid,
        Some(3) => Exit::Budget,
        Some(4) => Exit::Keys,
        Some(130) | None => Exit::Interrupted,
        Some(_) => Exit::AgentFailed,
    })
}

/// `runs cancel RUN_ID`: cancels each of the run's pending batches at its provider
/// (with the key that submitted it, under the same host rule) and marks them so.
pub fn cancel(
    states: &StateDir,
    run_id: &str,
    keys_dir: Option<&Path>,
    global: Global,
) -> Result<Exit> {
    let mut state = load(states, run_id)?;
    let file = PathBuf::from(&state.workflow);
    let checked = super::load_checked(&file, global)?;
    let mock = state.args.iter().any(|a| a == "--mock");
    let keys: Option<Arc<dyn Keys>> = if mock {
        None
    } else {
        let env_hosts = std::env::var(keys::ENV_ALLOW_HOSTS).ok();
        let allow = keys::AllowHosts::parse(&allow_hosts(&state.args), env_hosts.as_deref())
            .map_err(|e| Error::usage(e.to_string()))?;
        let start = keys::KeysDir::start_for_workflow(&file);
        let dir = keys::KeysDir::locate(keys_dir, &start);
        Some(Arc::new(KeyStore::new(
            dir,
            keys::IdentitySource::new(None),
            allow,
        )))
    };
    let http = Http::new(Timeouts::default()).map_err(Error::usage)?;
    let runtime = tokio::runtime::Runtime::new().map_err(|e| {
        Error::new(
            Exit::AgentFailed,
            format!("cannot start the async runtime: {e}"),
        )
    })?;
    let mut failed = Vec::new();
    let mut cancelled = 0;
    for batch in state.batches.iter_mut().filter(|b| b.pending()) {
        let info =
            workflow_providers::resolve(&checked.workflow, &batch.provider).map_err(|_| {
                Error::usage(format!(
                    "run {run_id}: provider `{}` is no longer in {}",
                    batch.provider, state.workflow
                ))
            })?;
        let api = api_for(&info, mock, &http, keys.as_ref());
        let key = batch
            .key
            .as_deref()
            .and_then(|k| KeyRef::parse(k).ok().flatten());
        if batch.handle.id.is_empty() {
            // Uploaded, never created: nothing runs; the file is deleted.
            runtime.block_on(api.clean_up(key.as_ref(), &batch.handle));
            batch.cancelled = true;
            continue;
        }
        let handle: Handle = batch.handle.clone();
        match runtime.block_on(api.cancel(key.as_ref(), &handle)) {
            Ok(()) => {
                batch.cancelled = true;
                cancelled += 1;
                if !global.quiet {
                    eprintln!("cancelled batch {} at {}", handle.id, batch.provider);
                }
            }
            Err(e) => failed.push(format!("batch {} at {}: {e}", handle.id, batch.provider)),
        }
    }
    if state.batches.iter().all(|b| !b.pending()) {
        states.remove(&state.run_id);
    } else {
        states.save(&state).map_err(|e| {
            Error::new(
                Exit::AgentFailed,
                format!("cannot update the batch state: {e}"),
            )
        })?;
    }
    if !failed.is_empty() {
        return Err(Error::new(
            Exit::AgentFailed,
            format!("could not cancel {}", failed.join("; ")),
        )
        .hint("run `byok-flow runs cancel` again, or cancel it in the provider's console"));
    }
    if !global.quiet {
        eprintln!(
            "run {run_id}: {cancelled} batch{} cancelled (requests already answered are still billed)",
            if cancelled == 1 { "" } else { "es" }
        );
    }
    Ok(Exit::Success)
}

/// The `--allow-host` values the run was started with.
fn allow_hosts(args: &[String]) -> Vec<String> {
    args.windows(2)
        .filter(|w| w[0] == "--allow-host")
        .map(|w| w[1].clone())
        .collect()
}
