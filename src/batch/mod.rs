//! Batch mode (SPEC §9): the agents ready at the same time go to their providers'
//! batch APIs as one batch per (provider, key, model), at the batch price (about
//! half), answered within 24 hours.
//!
//! - `api.rs`: what a batch API implements, and the one HTTP door its requests
//!   take (the host rule, no redirects, redaction);
//! - `anthropic.rs`, `openai.rs`, `gemini.rs`: the three wire protocols; `mock.rs`:
//!   the offline one of `--mock --batch`;
//! - `driver.rs`: the wave driver (gather, split at the limits, submit, poll, hand
//!   the results back by `custom_id`, adopt an earlier run's batches);
//! - `state.rs`: the state file that makes a killed or detached run resumable;
//! - `backoff.rs`: the polling back-off.
//!
//! The scheduler is unaware of any of it: a batched agent's models get clients
//! that put each attempt in a batch, so retries, fallbacks, the budget (reserving
//! at batch prices), the cache and the run record work as for any call.

pub mod anthropic;
pub mod api;
pub mod backoff;
pub mod driver;
pub mod gemini;
pub mod mock;
pub mod openai;
pub mod state;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use api::{BatchApi, Conn, Limits};
pub use driver::{Batcher, Detach, Options};

use crate::catalog::ProviderKind;
use crate::providers::anthropic::Anthropic;
use crate::providers::client::Keys;
use crate::providers::gemini::Gemini;
use crate::providers::http::{Http, Timeouts};
use crate::providers::openai::OpenAi;
use crate::providers::{self, Provider};
use crate::workflow::Workflow;
use crate::workflow::providers::{self as workflow_providers, ProviderInfo};

/// Whether a provider of this kind has a batch API (the mock fakes one).
pub fn has_api(kind: ProviderKind) -> bool {
    !matches!(kind, ProviderKind::OpenaiCompatible)
}

/// `--batch`: every agent that does not say `batch: false` goes through a batch
/// API, as if `defaults.batch` were `true` (a `defaults.batch` in the file wins).
/// Batched agents do not stream, and wait as long as a batch takes.
pub fn apply_flag(workflow: &mut Workflow, flag: bool) {
    if flag && workflow.defaults.batch.is_none() {
        workflow.defaults.batch = Some(true);
    }
    let defaults = workflow.defaults.clone();
    for (name, agent) in &mut workflow.agents {
        if agent.batched(&defaults) {
            if agent.stream.or(defaults.stream).unwrap_or(true) {
                tracing::info!("agent `{name}`: streaming is off in batch mode");
            }
            agent.stream = Some(false);
            // The call's time-out is the batch's 24 hours, not the agent's own.
            agent.timeout = Some(crate::workflow::duration::Duration(driver::EXPIRY));
        }
    }
}

/// The batched agents (or their fallback models) on a provider without a batch
/// API: (agent, provider), for the error that names them.
pub fn without_api(workflow: &Workflow) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for (name, agent) in &workflow.agents {
        if !agent.batched(&workflow.defaults) {
            continue;
        }
        let models = std::iter::once(&agent.model).chain(&agent.fallback);
        for model in models {
            let provider = model.split_once('/').map_or(model.as_str(), |(p, _)| p);
            if let Ok(info) = workflow_providers::resolve(workflow, provider)
                && !has_api(info.kind)
            {
                found.push((name.clone(), provider.to_string()));
            }
        }
    }
    found
}

/// The batched agents with server tools (`web_search`, `web_fetch`) on a model
/// whose batch API does not run them: (agent, provider). Anthropic's Message
/// Batches take every Messages API feature, betas too, and Gemini's Batch Mode
/// takes Google Search grounding; `OpenAI`'s Batch API does not serve the search
/// models that `web_search` needs.
pub fn tools_without_batch(workflow: &Workflow) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for (name, agent) in &workflow.agents {
        if !agent.batched(&workflow.defaults) || agent.tools.is_empty() {
            continue;
        }
        let models = std::iter::once(&agent.model).chain(&agent.fallback);
        for model in models {
            let provider = model.split_once('/').map_or(model.as_str(), |(p, _)| p);
            if let Ok(info) = workflow_providers::resolve(workflow, provider)
                && info.kind == ProviderKind::Openai
                && !found.iter().any(|(a, _)| a == name)
            {
                found.push((name.clone(), provider.to_string()));
            }
        }
    }
    found
}

/// Each batched agent on a provider without a batch API, as an error at its model
/// (SPEC §9), and each with a server tool its batch API does not run, at its
/// tools: `validate` shows them for `batch: true` in the file, `run` for `--batch` too.
pub fn problems(checked: &crate::workflow::Checked) -> Vec<crate::workflow::Diagnostic> {
    let tools = tools_without_batch(&checked.workflow)
        .into_iter()
        .map(|(agent, provider)| {
            let pointer = format!("/agents/{}/tools", crate::workflow::tree::escape(&agent));
            let (pos, len) = checked.index().value(&pointer);
            crate::workflow::Diagnostic::error(
                "batch::tools",
                crate::workflow::Span::at(pos, len),
                format!(
                    "agent `{agent}`: `{provider}`'s Batch API does not run server tools (`web_search`, `web_fetch`), so this agent cannot go in a batch"
                ),
            )
            .agent(&agent)
            .help(format!(
                "set `batch: false` on agent `{agent}` to call it directly, drop its `tools`, or give it an Anthropic or Gemini model, whose batch APIs run them"
            ))
        });
    without_api(&checked.workflow)
        .into_iter()
        .map(|(agent, provider)| {
            let pointer = format!("/agents/{}/model", crate::workflow::tree::escape(&agent));
            let (pos, len) = checked.index().value(&pointer);
            crate::workflow::Diagnostic::error(
                "batch::unsupported",
                crate::workflow::Span::at(pos, len),
                format!(
                    "agent `{agent}`: provider `{provider}` has no batch API, so it cannot run with `--batch` or `batch: true`"
                ),
            )
            .agent(&agent)
            .help(format!(
                "set `batch: false` on agent `{agent}` to call it directly, or use a model of anthropic, openai or gemini"
            ))
        })
        .chain(tools)
        .collect()
}

/// The provider's documented limits, or tighter ones from
/// `BYOK_FLOW_BATCH_MAX_REQUESTS` / `BYOK_FLOW_BATCH_MAX_BYTES`.
fn limits(documented: Limits) -> Limits {
    let read = |name: &str| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
            .filter(|n| *n > 0)
    };
    Limits {
        requests: read("BYOK_FLOW_BATCH_MAX_REQUESTS")
            .map_or(documented.requests, |n| n.min(documented.requests)),
        bytes: read("BYOK_FLOW_BATCH_MAX_BYTES")
            .map_or(documented.bytes, |n| n.min(documented.bytes)),
    }
}

/// How long a mock batch takes: `BYOK_FLOW_MOCK_BATCH_DELAY` (`1s`), else the
/// mock provider's `latency`, else none.
fn mock_delay(info: &ProviderInfo) -> Duration {
    std::env::var("BYOK_FLOW_MOCK_BATCH_DELAY")
        .ok()
        .and_then(|v| humantime::parse_duration(&v).ok())
        .or(info.latency)
        .unwrap_or(Duration::ZERO)
}

/// The batch API of a provider.
pub fn api_for(
    info: &ProviderInfo,
    mock: bool,
    http: &Http,
    keys: Option<&Arc<dyn Keys>>,
) -> Arc<dyn BatchApi> {
    if mock || info.kind == ProviderKind::Mock {
        return Arc::new(mock::MockBatches::new(
            &info.name,
            mock_delay(info),
            limits(openai::LIMITS),
        ));
    }
    let conn = |wire: Box<dyn providers::wire::Wire>| Conn {
        provider: info.name.clone(),
        base_url: info.base_url.clone(),
        wire,
        keys: keys.cloned(),
        http: http.clone(),
    };
    match info.kind {
        ProviderKind::Anthropic => Arc::new(anthropic::AnthropicBatches {
            conn: conn(Box::new(Anthropic)),
            limits: limits(anthropic::LIMITS),
        }),
        ProviderKind::Gemini => Arc::new(gemini::GeminiBatches {
            conn: conn(Box::new(Gemini)),
            limits: limits(gemini::LIMITS),
        }),
        ProviderKind::Openai | ProviderKind::OpenaiCompatible | ProviderKind::Mock => {
            Arc::new(openai::OpenAiBatches {
                conn: conn(Box::new(OpenAi { first_party: true })),
                limits: limits(openai::LIMITS),
            })
        }
    }
}

/// A batched agent's client, from its provider, its name and its direct client.
pub type MakeClient = dyn Fn(&ProviderInfo, &str, Arc<dyn Provider>) -> Arc<dyn Provider>;

/// Makes the batched agents' clients: one batch API per provider, shared.
pub fn clients(
    batcher: &Batcher,
    mock: bool,
    keys: Option<Arc<dyn Keys>>,
) -> Result<Box<MakeClient>, String> {
    let http = Http::new(Timeouts::default())?;
    let apis: Mutex<HashMap<String, Arc<dyn BatchApi>>> = Mutex::default();
    let batcher = batcher.clone();
    Ok(Box::new(
        move |info: &ProviderInfo, agent: &str, _direct: Arc<dyn Provider>| {
            let api = apis
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .entry(info.name.clone())
                .or_insert_with(|| api_for(info, mock, &http, keys.as_ref()))
                .clone();
            batcher.client(api, agent)
        },
    ))
}

/// Tells the batcher the run's id as the run starts (its state file is named for it).
pub struct RunIdSubscriber(pub Batcher);

impl crate::events::Subscriber for RunIdSubscriber {
    fn on_event(&mut self, event: &crate::events::Event<'_>) -> std::io::Result<()> {
        match event {
            crate::events::Event::RunStarted { run_id, .. }
            | crate::events::Event::RowsStarted { run_id, .. } => self.0.set_run_id(run_id),
            _ => {}
        }
        Ok(())
    }
}

/// Passes events on, except the end of a run that detached: its stdout is the run id.
pub struct UnlessDetached {
    pub batcher: Batcher,
    pub inner: Box<dyn crate::events::Subscriber>,
}

impl crate::events::Subscriber for UnlessDetached {
    fn on_event(&mut self, event: &crate::events::Event<'_>) -> std::io::Result<()> {
        if matches!(event, crate::events::Event::RunFinished { .. }) && self.batcher.did_detach() {
            return Ok(());
        }
        self.inner.on_event(event)
    }
}
