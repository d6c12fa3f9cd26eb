//! Building a run's [`AgentRunner`]: a client per provider (the mock, or HTTP in
//! the provider's API with the run's keys), each agent's models in the order to
//! try them with the key each sends, the compiled templates, prices, tokenizers and
//! the cache's view of each agent.

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use indexmap::IndexMap;
use serde_json::Value as Json;

use crate::cache::Endpoint;
use crate::catalog::ProviderKind;
use crate::cost::Price;
use crate::cost::budget::Budget;
use crate::cost::call::cache_minimum;
use crate::cost::lifecycle;
use crate::cost::prices::Pricing;
use crate::cost::ratio::Ratios;
use crate::cost::tokens::Tokenizer;
use crate::events::Bus;
use crate::keys;
use crate::providers::anthropic::Anthropic;
use crate::providers::call::{Retirement, Target};
use crate::providers::client::{HttpProvider, Keys};
use crate::providers::gemini::Gemini;
use crate::providers::http::{Http, Timeouts};
use crate::providers::mock::Mock;
use crate::providers::openai::OpenAi;
use crate::providers::wire::Wire;
use crate::providers::{AttemptError, BoxFuture, Provider, Reply, Request};
use crate::template::Renderer;
use crate::tools;
use crate::workflow::Checked;
use crate::workflow::providers::{self as workflow_providers, ProviderInfo};

use super::{AgentRunner, Call, DEFAULT_RETRIES, RunSettings};

/// Makes the client of a provider that is not the mock.
pub type Connect = dyn Fn(&ProviderInfo) -> Result<Arc<dyn Provider>, String>;

/// Builds the providers and templates of a run. Fails with a message when a
/// provider cannot be set up.
///
/// `keys` hands out API keys: `None` for a run that calls no keyed provider
/// (`--mock`), so no identity is ever read.
pub fn prepare(
    checked: Arc<Checked>,
    settings: &RunSettings,
    keys: Option<Arc<dyn Keys>>,
    bus: &Bus,
) -> Result<(AgentRunner, Vec<usize>), String> {
    prepare_batched(checked, settings, keys, None, bus)
}

/// Stands for the lane of batched calls until every provider's lane is known.
const BATCH_LANE: usize = usize::MAX;

/// Makes the client of a batched agent's model from its provider, the agent's
/// name and the provider's direct client (`--batch`, `batch: true`).
pub type Batcher = dyn Fn(&ProviderInfo, &str, Arc<dyn Provider>) -> Arc<dyn Provider>;

/// [`prepare`], with the agents that go through batch APIs given their clients by `batcher`.
pub fn prepare_batched(
    checked: Arc<Checked>,
    settings: &RunSettings,
    keys: Option<Arc<dyn Keys>>,
    batcher: Option<&Batcher>,
    bus: &Bus,
) -> Result<(AgentRunner, Vec<usize>), String> {
    let http = Http::new(Timeouts::default())?;
    let connect = move |info: &ProviderInfo| Ok(connect(info, &http, keys.clone()));
    plan(checked, settings, &connect, batcher, bus)
}

/// [`prepare`] with the client of each provider that is not the mock made by
/// `connect` (tests pass their own providers here).
pub fn prepare_with(
    checked: Arc<Checked>,
    settings: &RunSettings,
    connect: &Connect,
    bus: &Bus,
) -> Result<(AgentRunner, Vec<usize>), String> {
    plan(checked, settings, connect, None, bus)
}

fn plan(
    checked: Arc<Checked>,
    settings: &RunSettings,
    connect: &Connect,
    batcher: Option<&Batcher>,
    bus: &Bus,
) -> Result<(AgentRunner, Vec<usize>), String> {
    let w = &checked.workflow;
    let mut clients: IndexMap<String, (Arc<dyn Provider>, usize)> = IndexMap::new();
    let mut limits = Vec::new();
    let mock_latency = workflow_providers::resolve(w, "mock")
        .ok()
        .and_then(|p| p.latency);
    let mut client_for = |provider: &str| -> Result<(Arc<dyn Provider>, usize), String> {
        if let Some(found) = clients.get(provider) {
            return Ok(found.clone());
        }
        let info = workflow_providers::resolve(w, provider)
            .map_err(|_| format!("unknown provider `{provider}`"))?;
        let client: Arc<dyn Provider> = if settings.mock || info.kind == ProviderKind::Mock {
            Arc::new(Mock {
                latency: info.latency.or(mock_latency),
            })
        } else {
            connect(&info)?
        };
        limits.push(info.max_concurrency.map_or(usize::MAX, |m| m as usize));
        let entry = (client, limits.len() - 1);
        clients.insert(provider.to_string(), entry.clone());
        Ok(entry)
    };
    // What the price table knows of each model's retirement, for the hint when a
    // server refuses one (run with `--allow-retired`, or retired since the table).
    let today = lifecycle::today();
    let lookup = Pricing {
        table: &settings.prices,
        workflow: w,
        mock: false,
    };
    let retirement = |model: &str| {
        lifecycle::of(&lookup, model, &today).map(|r| Retirement {
            retired: r.status == lifecycle::Status::Retired,
            note: r.note(),
        })
    };
    let mut calls = Vec::new();
    let mut targets = Vec::new();
    let mut retries = Vec::new();
    let mut endpoints = Vec::new();
    for (name, agent) in &w.agents {
        let batcher = batcher.filter(|_| agent.batched(&w.defaults));
        let through = |provider: &str, client: Arc<dyn Provider>| match batcher {
            Some(make) => workflow_providers::resolve(w, provider)
                .map(|info| make(&info, name, client))
                .map_err(|_| format!("unknown provider `{provider}`")),
            None => Ok(client),
        };
        let (client, mut lane) = client_for(agent.provider())?;
        let client = through(agent.provider(), client)?;
        if batcher.is_some() {
            lane = BATCH_LANE;
        }
        calls.push(Call {
            provider: agent.provider().to_string(),
            model: agent.model_id().to_string(),
            lane,
        });
        let key_of = |provider: &str| {
            if settings.mock {
                return Ok(None);
            }
            keys::call_key(w, agent, provider).map_err(|e| e.to_string())
        };
        let mut chain = vec![Target {
            client,
            provider: agent.provider().to_string(),
            model: agent.model_id().to_string(),
            key: key_of(agent.provider())?,
            retirement: retirement(&agent.model),
        }];
        for fallback in &agent.fallback {
            if let Some((provider, model)) = fallback.split_once('/') {
                let (client, _) = client_for(provider)?;
                let client = through(provider, client)?;
                chain.push(Target {
                    client,
                    provider: provider.to_string(),
                    model: model.to_string(),
                    key: key_of(provider)?,
                    retirement: retirement(fallback),
                });
            }
        }
        endpoints.push(cache_endpoints(w, settings, &chain));
        targets.push(chain);
        retries.push(
            agent
                .retries
                .or(w.defaults.retries)
                .unwrap_or(DEFAULT_RETRIES),
        );
    }
    // Batched calls wait on a batch, not on a connection: one lane with no limit.
    if calls.iter().any(|c| c.lane == BATCH_LANE) {
        limits.push(usize::MAX);
        for call in calls.iter_mut().filter(|c| c.lane == BATCH_LANE) {
            call.lane = limits.len() - 1;
        }
    }
    // The agents' templates are rendered from the workflow's own texts (checked
    // when the workflow was); the renderer keeps only the outputs'.
    let mut renderer = Renderer::default();
    for (name, text) in &w.outputs {
        renderer.add(&format!("output.{name}"), text.as_str())?;
    }
    let inputs = Json::Object(
        settings
            .inputs
            .iter()
            .map(|(k, v)| (k.clone(), Json::String(v.clone())))
            .collect(),
    );
    let names = w.agents.keys().cloned().collect();
    let pricing = Pricing {
        table: &settings.prices,
        workflow: w,
        mock: settings.mock,
    };
    // One price per model (and whether it is batched), shared by its agents.
    let mut prices: HashMap<(bool, &str), Option<Arc<Price>>> = HashMap::new();
    let candidates = w
        .agents
        .values()
        .map(|a| {
            std::iter::once(&a.model)
                .chain(&a.fallback)
                .map(|m| {
                    let id = m.split_once('/').map_or(m.as_str(), |(_, id)| id);
                    let price = prices
                        .entry((a.batched(&w.defaults), m))
                        .or_insert_with(|| pricing.resolve_for(a, m).map(|r| Arc::new(r.price)));
                    (Tokenizer::for_model(id), price.clone())
                })
                .collect()
        })
        .collect();
    let lists = w
        .agents
        .values()
        .map(|a| {
            let source = crate::workflow::map::parse(a.for_each.as_deref()?).ok()?;
            let from = match &source {
                crate::workflow::map::Source::Agent { name, .. } => w.agents.get_index_of(name),
                crate::workflow::map::Source::Input(_) => None,
            };
            Some(super::map::List {
                source,
                from,
                max_items: a.max_items,
            })
        })
        .collect();
    let kind_of = |model: &str| {
        if settings.mock {
            return ProviderKind::Mock;
        }
        let provider = model.split_once('/').map_or(model, |(p, _)| p);
        workflow_providers::kind(w, provider).unwrap_or(ProviderKind::Mock)
    };
    let kinds = w
        .agents
        .values()
        .map(|a| {
            std::iter::once(&a.model)
                .chain(&a.fallback)
                .map(|m| kind_of(m))
                .collect()
        })
        .collect();
    let tools = w
        .agents
        .values()
        .map(|a| {
            a.tools
                .iter()
                .map(|entry| tools::parse_entry(&entry.0))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|problems| {
                    let first = problems
                        .into_iter()
                        .next()
                        .map(|p| p.message)
                        .unwrap_or_default();
                    format!("a `tools:` entry cannot be read: {first}")
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let price = |model: &str| pricing.resolve(model).map(|r| r.price);
    let caching = w
        .agents
        .values()
        .map(|a| {
            let mode = a.cache.or(w.defaults.cache).unwrap_or_default();
            let price = price(&a.model);
            let minimum = cache_minimum(kind_of(&a.model), a.model_id(), price.as_ref());
            (mode, minimum)
        })
        .collect();
    let refresh = downstream_of(&checked_refresh(&checked, &settings.refresh), &checked);
    Ok((
        AgentRunner {
            checked,
            names,
            inputs,
            renderer,
            calls,
            targets,
            retries,
            bus: bus.clone(),
            candidates,
            kinds,
            tools,
            caching,
            mock: settings.mock,
            budget: settings.budget().map(Budget::new),
            ratios: Ratios::default(),
            output_ratios: Ratios::default(),
            unreported_warned: Mutex::default(),
            tabs: Mutex::default(),
            cache: settings.cache.clone(),
            endpoints,
            refresh,
            write_warned: AtomicBool::new(false),
            lists,
            rows: None,
        },
        limits,
    ))
}

/// The models of an agent's call as its cache key sees them, or `None` when its
/// answers are not cached: a `--mock` run, or an agent of the mock provider.
fn cache_endpoints(
    w: &crate::workflow::Workflow,
    settings: &RunSettings,
    chain: &[Target],
) -> Option<Vec<Endpoint>> {
    if settings.mock || settings.cache.is_none() {
        return None;
    }
    let endpoints: Vec<Endpoint> = chain
        .iter()
        .map(|t| {
            let info = workflow_providers::resolve(w, &t.provider).ok()?;
            Some(Endpoint {
                provider: t.provider.clone(),
                model: t.model.clone(),
                base_url: info.base_url,
                api: info.kind,
            })
        })
        .collect::<Option<_>>()?;
    (endpoints.first()?.api != ProviderKind::Mock).then_some(endpoints)
}

/// The indices of the agents named.
fn checked_refresh(checked: &Checked, names: &[String]) -> Vec<usize> {
    names
        .iter()
        .filter_map(|n| checked.workflow.agents.get_index_of(n))
        .collect()
}

/// Which agents are `agents` or downstream of one of them.
fn downstream_of(agents: &[usize], checked: &Checked) -> Vec<bool> {
    let mut marked = vec![false; checked.dag.len()];
    let mut stack = agents.to_vec();
    while let Some(i) = stack.pop() {
        if !std::mem::replace(&mut marked[i], true) {
            stack.extend(checked.dag.dependents(i));
        }
    }
    marked
}

/// [`prepare`] for a run that calls nothing (the estimate's look at the cache):
/// every provider's client refuses.
pub fn prepare_offline(
    checked: Arc<Checked>,
    settings: &RunSettings,
) -> Result<AgentRunner, String> {
    let offline = |_: &ProviderInfo| -> Result<Arc<dyn Provider>, String> { Ok(Arc::new(Offline)) };
    prepare_with(checked, settings, &offline, &Bus::default()).map(|(runner, _)| runner)
}

/// A provider that is never called.
struct Offline;

impl Provider for Offline {
    fn attempt<'a>(
        &'a self,
        _: &'a std::sync::Arc<Request>,
    ) -> BoxFuture<'a, Result<Reply, AttemptError>> {
        Box::pin(async {
            Err(AttemptError::permanent(
                "no call is made while estimating".into(),
                None,
            ))
        })
    }
}

/// A client for a provider reached over HTTP.
fn connect(info: &ProviderInfo, http: &Http, keys: Option<Arc<dyn Keys>>) -> Arc<dyn Provider> {
    let wire: Box<dyn Wire> = match info.kind {
        ProviderKind::Anthropic => Box::new(Anthropic),
        ProviderKind::Gemini => Box::new(Gemini),
        ProviderKind::Openai => Box::new(OpenAi { first_party: true }),
        ProviderKind::OpenaiCompatible | ProviderKind::Mock => {
            Box::new(OpenAi { first_party: false })
        }
    };
    Arc::new(HttpProvider {
        name: info.name.clone(),
        wire,
        base_url: info.base_url.clone(),
        keys,
        http: http.clone(),
        timeouts: Timeouts::default(),
    })
}
