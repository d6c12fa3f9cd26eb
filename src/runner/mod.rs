//! One run of a checked workflow: renders each agent's prompt from its inputs and
//! upstream outputs, calls its provider through the scheduler, and turns what
//! happened into the run record, emitting events to every subscriber as it goes.
//!
//! Before an agent starts, its request is rendered and counted ([`Prepared`]), so
//! the budget gate sees its real input size, and a prompt over the model's context
//! window fails the agent before any spend. Each attempt of its call reserves and
//! is billed through its meter (`meter.rs`): priced from the usage the provider
//! reported, counted locally where it reported none, kept at its worst case where
//! its bill is unknown.
//!
//! The cache is read when an agent is prepared (a hit reserves nothing from the
//! budget and sends nothing, so no key is decrypted for it) and written as soon as
//! a call succeeds, so a run killed at any point resumes from what had finished.
//!
//! [`prepare`] (in `plan.rs`) builds the runner: clients, each agent's models and
//! keys, templates, prices, the cache; [`execute`] (in `execute.rs`) drives the
//! scheduler and builds the run record.

mod execute;
mod meter;
mod plan;

pub use execute::{execute, workflow_name};
pub use meter::{input_bound, input_count, output_count};
pub use plan::{Batcher, Connect, prepare, prepare_batched, prepare_offline, prepare_with};

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use indexmap::IndexMap;
use serde_json::{Map, Value as Json, json};

use crate::cache::{self, Cache, Endpoint, Entry, Key, Lookup};
use crate::catalog::ProviderKind;
use crate::cost::bill::Bill;
use crate::cost::budget::{Budget, BudgetGate};
use crate::cost::prices::PriceTable;
use crate::cost::ratio::InputRatios;
use crate::cost::tokens::{Count, Tokenizer};
use crate::cost::{Price, Usd};
use crate::events::{Bus, Event};
use crate::prompt_cache::{self, CacheMode};
use crate::providers::call::{self, Attempt, Target};
use crate::providers::retry::Policy;
use crate::providers::{BoxFuture, ErrorKind, Progress, Request};
use crate::scheduler::{self, Gate, Open};
use crate::template::Renderer;
use crate::tools::{Citation, Tool};
use crate::workflow::Checked;

/// What a run needs beyond the workflow.
#[derive(Debug, Clone)]
pub struct RunSettings {
    pub file: String,
    pub inputs: IndexMap<String, String>,
    pub mock: bool,
    pub concurrency: usize,
    pub keep_going: bool,
    /// The pricing table in use (built in, or `--prices FILE`).
    pub prices: Arc<PriceTable>,
    /// The spending ceiling (`--max-usd`, else `budget.max_usd`).
    pub max_usd: Option<f64>,
    /// The answer cache; `None` with `--no-cache`. A `--mock` run neither reads nor
    /// writes it (mock replies are free), nor do agents of the `mock` provider.
    pub cache: Option<Cache>,
    /// Agents to call again whatever the cache holds (`--refresh`), with everything
    /// downstream of them; their fresh answers replace the cached ones.
    pub refresh: Vec<String>,
    /// What the run was estimated to cost before it started (none for `--mock`);
    /// the run record keeps it beside what was spent.
    pub estimate: Option<crate::cost::estimate::Estimate>,
}

impl RunSettings {
    /// The ceiling the run is held to: none under `--mock`, where every call is free.
    pub fn budget(&self) -> Option<Usd> {
        self.max_usd.filter(|_| !self.mock).map(Usd::from_dollars)
    }
}

/// A finished agent's result.
#[derive(Debug, Clone)]
pub struct AgentOutput {
    pub text: String,
    pub json: Option<Json>,
    /// What every attempt used and cost (a reply that failed the JSON check, a
    /// retry, a fallback included).
    pub bill: Bill,
    pub stop_reason: Option<String>,
    pub seconds: f64,
    /// `provider/model` that answered (a fallback's, when the agent's own failed).
    pub model: String,
    pub attempts: Vec<Attempt>,
    /// It came from the cache: no call was made, and its bill is zero.
    pub cached: bool,
    /// The sources its reply cites (`agents.NAME.citations`).
    pub citations: Vec<Citation>,
}

impl AgentOutput {
    /// An answer from the cache: no call, no tokens, $0.
    fn cached(entry: Entry) -> Self {
        AgentOutput {
            text: entry.text,
            json: entry.json,
            bill: Bill::default(),
            stop_reason: entry.stop_reason,
            seconds: 0.0,
            model: entry.model,
            attempts: Vec::new(),
            cached: true,
            citations: entry.citations,
        }
    }
}

/// A failed agent's error.
#[derive(Debug, Clone)]
pub struct AgentFailure {
    pub message: String,
    pub seconds: f64,
    /// What its attempts used and cost, as far as known.
    pub bill: Bill,
    pub attempts: Vec<Attempt>,
    /// It failed because its key could not be read, decrypted or sent (exit 4).
    pub key_failure: bool,
    /// It failed because the budget had no room for another attempt.
    pub budget: bool,
}

impl AgentFailure {
    /// A failure before any call was made: nothing spent.
    fn before_call(message: String) -> Self {
        AgentFailure {
            message,
            seconds: 0.0,
            bill: Bill::default(),
            attempts: Vec::new(),
            key_failure: false,
            budget: false,
        }
    }
}

/// An agent ready to start: its rendered request, its counted input, and the most
/// it can cost (`None` when no price or no output limit is known; zero for a cache
/// hit).
#[derive(Debug, Clone)]
pub struct Prepared {
    pub request: Request,
    /// Its input: counted exactly (with a budget), or by the bound that needs no BPE.
    pub input: Count,
    pub worst: Option<Usd>,
    pub exact: bool,
    /// The cached answer, when there is one to use.
    pub cached: Option<Entry>,
    /// Where its answer goes in the cache, when it is cached.
    pub cache_key: Option<Key>,
}

/// The model an agent calls: provider name and model id, and its lane.
#[derive(Debug, Clone)]
struct Call {
    provider: String,
    model: String,
    lane: usize,
}

/// Retries per model when neither the agent nor `defaults` says.
pub const DEFAULT_RETRIES: u32 = 3;

/// Runs agents for the scheduler.
pub struct AgentRunner {
    checked: Arc<Checked>,
    names: Vec<String>,
    inputs: Json,
    renderer: Renderer,
    calls: Vec<Call>,
    /// Each agent's models in the order to try them: its own, then its fallbacks.
    targets: Vec<Vec<Target>>,
    retries: Vec<u32>,
    /// Where agents report retries and streamed progress.
    bus: Bus,
    /// Each agent's model, then its fallback models: tokenizer and price (`None`:
    /// unpriced). The first is the agent's own.
    candidates: Vec<Vec<(Tokenizer, Option<Price>)>>,
    /// The API of each of those models, which decides how its tools are used.
    kinds: Vec<Vec<ProviderKind>>,
    /// Each agent's server-side tools.
    tools: Vec<Vec<Tool>>,
    /// Each agent's prompt caching: its mode, and the fewest tokens its provider
    /// caches (`None`: its provider does nothing with a marked prefix).
    caching: Vec<(CacheMode, Option<u64>)>,
    /// A `--mock` run: nothing is ever billed.
    mock: bool,
    /// The run's budget, if it has one: every attempt reserves from it and pays.
    budget: Option<Arc<Budget>>,
    /// What providers were seen to bill for input beyond the count.
    ratios: InputRatios,
    /// Providers already warned about for reporting no usage.
    unreported_warned: Mutex<HashSet<String>>,
    /// The bill of each running agent, so one cancelled mid-call still has one.
    tabs: Mutex<HashMap<usize, Arc<Mutex<meter::Tab>>>>,
    cache: Option<Cache>,
    /// Each agent's models as its cache key sees them; `None`: never cached.
    endpoints: Vec<Option<Vec<Endpoint>>>,
    /// Agents whose cached answers are not read (`--refresh` and downstream).
    refresh: Vec<bool>,
    /// Whether a failed cache write was reported (once a run is enough).
    write_warned: AtomicBool,
}

impl AgentRunner {
    /// The gate that holds this run's agents to its budget (or none).
    pub fn gate(&self) -> Box<dyn Gate<AgentRunner>> {
        match &self.budget {
            Some(budget) => Box::new(BudgetGate::new(budget.clone())),
            None => Box::new(Open),
        }
    }

    /// The run's budget, if it has one.
    pub fn budget(&self) -> Option<&Arc<Budget>> {
        self.budget.as_ref()
    }

    fn tabs_lock(&self) -> std::sync::MutexGuard<'_, HashMap<usize, Arc<Mutex<meter::Tab>>>> {
        self.tabs.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Where `agent`'s answer to `request` is cached, if it is cached at all.
    fn cache_key(&self, agent: usize, request: &Request) -> Option<Key> {
        self.endpoints[agent]
            .as_deref()
            .and_then(|targets| cache::key(targets, request))
    }

    /// Which agents this run would answer from the cache: those with an entry for
    /// the call they would make, given their upstream agents' cached answers. It
    /// reads the cache and sends nothing; an agent downstream of one that must be
    /// called is not known until then, so counts as called.
    pub fn cached_agents(&self) -> Vec<bool> {
        let dag = &self.checked.dag;
        let n = dag.len();
        if self.cache.is_none() {
            return vec![false; n];
        }
        let mut answers: Vec<Option<Arc<AgentOutput>>> = vec![None; n];
        let mut remaining: Vec<usize> = (0..n).map(|i| dag.dependencies(i).count()).collect();
        let mut ready: Vec<usize> = (0..n).filter(|&i| remaining[i] == 0).collect();
        while let Some(agent) = ready.pop() {
            let upstream: Option<Vec<(usize, Arc<AgentOutput>)>> = dag
                .dependencies(agent)
                .map(|d| answers[d].clone().map(|out| (d, out)))
                .collect();
            let entry = upstream.and_then(|upstream| {
                let request = self.request(agent, &self.context(&upstream)).ok()?;
                // No warning here: the run that follows gives it.
                self.lookup(agent, self.cache_key(agent, &request).as_ref(), false)
            });
            answers[agent] = entry.map(|e| Arc::new(AgentOutput::cached(e)));
            for d in dag.dependents(agent) {
                remaining[d] -= 1;
                if remaining[d] == 0 {
                    ready.push(d);
                }
            }
        }
        answers.iter().map(Option::is_some).collect()
    }

    /// The cached answer for `agent`'s call, unless it is not to be read. An entry
    /// that cannot be used is a miss, with a warning if `warn`.
    fn lookup(&self, agent: usize, key: Option<&Key>, warn: bool) -> Option<Entry> {
        let (cache, key) = (self.cache.as_ref()?, key?);
        if self.refresh[agent] {
            return None;
        }
        let short = || key.to_string().chars().take(12).collect::<String>();
        match cache.get(key) {
            Lookup::Hit(entry) => {
                tracing::debug!("cache hit {}: answered by the cache", short());
                Some(*entry)
            }
            Lookup::Miss => {
                tracing::debug!("cache miss {}: will call", short());
                None
            }
            Lookup::Unreadable(_) if !warn => None,
            Lookup::Unreadable(why) => {
                tracing::debug!("cache miss {}: the entry cannot be used", short());
                let message = format!("agent `{}`: {why}", self.names[agent]);
                self.bus.emit(&Event::Warning { message: &message });
                None
            }
        }
    }

    /// Keeps a successful answer (on a blocking thread: the file is synced); a cache
    /// that cannot be written costs only a warning.
    async fn store(&self, key: Key, output: &AgentOutput) {
        let Some(cache) = self.cache.clone() else {
            return;
        };
        let entry = Entry {
            usage: output.bill.usage,
            stop_reason: output.stop_reason.clone(),
            citations: output.citations.clone(),
            ..Entry::new(
                &key,
                output.model.clone(),
                output.text.clone(),
                output.json.clone(),
            )
        };
        let root = cache.root().to_path_buf();
        let written = tokio::task::spawn_blocking(move || cache.put(&key, &entry))
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e)));
        if let Err(e) = written {
            if !self.write_warned.swap(true, Ordering::Relaxed) {
                let message = format!(
                    "cannot write to the cache in {}: {e}; answers of this run will not be reused (pass `--cache-dir DIR` to use another folder, or `--no-cache`)",
                    root.display()
                );
                self.bus.emit(&Event::Warning { message: &message });
            }
        }
    }

    /// The template context for an agent: the inputs and its upstream agents' outputs.
    fn context(&self, upstream: &[(usize, Arc<AgentOutput>)]) -> Json {
        let mut agents = Map::new();
        for (i, out) in upstream {
            let mut entry = Map::new();
            entry.insert("output".into(), Json::String(out.text.clone()));
            if let Some(json) = &out.json {
                entry.insert("json".into(), json.clone());
            }
            entry.insert(
                "citations".into(),
                serde_json::to_value(&out.citations).unwrap_or_default(),
            );
            agents.insert(self.names[*i].clone(), Json::Object(entry));
        }
        json!({ "inputs": self.inputs, "agents": agents })
    }

    fn request(&self, agent: usize, context: &Json) -> Result<Request, String> {
        let name = &self.names[agent];
        let spec = &self.checked.workflow.agents[agent];
        let defaults = &self.checked.workflow.defaults;
        let render = |part: &str| {
            self.renderer
                .render(&format!("{name}.{part}"), context)
                .map_err(|e| format!("cannot render the {part}: {e}"))
        };
        let system = spec.system.as_ref().map(|_| render("system")).transpose()?;
        let prompt = render("prompt")?;
        let call = &self.calls[agent];
        let (mode, minimum) = self.caching[agent];
        let cache = minimum.and_then(|minimum| {
            prompt_cache::plan(
                mode,
                spec.system.as_deref().zip(system.as_deref()),
                (&spec.prompt, &prompt),
                minimum,
                prompt_cache::approx_tokens,
            )
        });
        Ok(Request {
            provider: call.provider.clone(),
            model: call.model.clone(),
            system,
            prompt,
            max_tokens: spec.max_tokens.or(defaults.max_tokens),
            temperature: spec.temperature.or(defaults.temperature),
            top_p: spec.top_p.or(defaults.top_p),
            stop: spec.stop.clone(),
            output: spec.output,
            schema: spec.schema.clone(),
            tools: self.tools[agent].clone(),
            cache,
            stream: spec.stream.or(defaults.stream).unwrap_or(true),
            timeout: spec.timeout.or(defaults.timeout).map(|d| d.0),
            key: None,
            progress: Progress::default(),
            correction: None,
        })
    }
}

impl scheduler::Runner for AgentRunner {
    type Output = AgentOutput;
    type Error = AgentFailure;
    type Prepared = Prepared;

    fn lane(&self, agent: usize) -> usize {
        self.calls[agent].lane
    }

    fn span(&self, agent: usize) -> tracing::Span {
        tracing::info_span!("agent", name = %self.names[agent])
    }

    fn prepare(
        &self,
        agent: usize,
        upstream: &[(usize, Arc<AgentOutput>)],
    ) -> Result<Prepared, AgentFailure> {
        let fail = AgentFailure::before_call;
        let context = self.context(upstream);
        let request = self.request(agent, &context).map_err(fail)?;
        let cache_key = self.cache_key(agent, &request);
        if let Some(cached) = self.lookup(agent, cache_key.as_ref(), true) {
            return Ok(Prepared {
                request,
                input: Count::default(),
                worst: Some(Usd::ZERO),
                exact: true,
                cached: Some(cached),
                cache_key,
            });
        }
        let (tokenizer, price) = &self.candidates[agent][0];
        let window = price.as_ref().and_then(|p| p.context_window);
        // Without a budget no BPE is loaded here: the bound that needs none settles
        // the window unless the prompt is near it. A budget reserves the exact count
        // (what providers bill is learned against it).
        let exact = self.budget.is_some();
        let mut input = if exact {
            self.input_for(agent, 0, &request)
        } else {
            meter::input_bound(tokenizer, &request)
        };
        if !exact && window.is_some_and(|w| input.tokens > w) {
            input = meter::input_count(tokenizer, &request);
        }
        if let Some(window) = window.filter(|w| input.tokens > *w) {
            return Err(fail(format!(
                "the prompt is about {} tokens, over the {window}-token context window of `{}/{}`; nothing was sent (shorten the inputs or upstream outputs it includes, or use a model with a larger window)",
                input.tokens, self.calls[agent].provider, self.calls[agent].model
            )));
        }
        // The first attempt's reservation; each later one makes its own.
        let worst = if self.budget.is_some() {
            self.attempt_worst(agent, 0, &request, input)
        } else {
            None
        };
        Ok(Prepared {
            request,
            input,
            worst,
            exact,
            cached: None,
            cache_key,
        })
    }

    fn run(
        self: Arc<Self>,
        agent: usize,
        prepared: Prepared,
    ) -> BoxFuture<'static, Result<AgentOutput, AgentFailure>> {
        Box::pin(async move {
            if let Some(entry) = prepared.cached {
                return Ok(AgentOutput::cached(entry));
            }
            let start = Instant::now();
            let cache_key = prepared.cache_key;
            let mut request = prepared.request;
            let policy = Policy::new(self.retries[agent]);
            let (name, bus) = (self.names[agent].clone(), self.bus.clone());
            let (tool_name, tool_bus) = (name.clone(), bus.clone());
            request.progress = Progress::new(move |chars| {
                bus.emit(&Event::AgentProgress {
                    agent: &name,
                    chars,
                });
            })
            .on_tool(move |tool| {
                tool_bus.emit(&Event::AgentTool {
                    agent: &tool_name,
                    tool,
                });
            });
            let (name, bus) = (self.names[agent].clone(), self.bus.clone());
            let on_failure = move |attempt: &Attempt| {
                bus.emit(&Event::AttemptFailed {
                    agent: &name,
                    attempt,
                });
            };
            let first_input = self.budget.is_some().then_some(prepared.input);
            let tab = Arc::new(Mutex::new(meter::Tab::new(first_input)));
            self.tabs_lock().insert(agent, tab.clone());
            let meter = meter::AgentMeter {
                runner: &self,
                agent,
                tab: tab.clone(),
            };
            let called =
                call::call(&self.targets[agent], &request, &policy, &on_failure, &meter).await;
            let seconds = start.elapsed().as_secs_f64();
            self.tabs_lock().remove(&agent);
            let bill = tab
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .bill
                .clone();
            match called.result {
                Ok(answer) => {
                    let output = AgentOutput {
                        text: answer.reply.text,
                        json: answer.reply.json,
                        bill,
                        stop_reason: answer.reply.stop_reason,
                        seconds,
                        model: answer.model,
                        attempts: called.attempts,
                        cached: false,
                        citations: answer.reply.citations,
                    };
                    // Written now, not at the end of the run, so a killed run resumes here.
                    if let Some(key) = cache_key {
                        self.store(key, &output).await;
                    }
                    Ok(output)
                }
                Err(e) => {
                    let tries = called.attempts.len();
                    let mut message = e.message;
                    if tries > 1 {
                        message.push_str(&format!(" (after {tries} attempts)"));
                    }
                    if let Some(hint) = e.hint {
                        message.push_str(&format!(" ({hint})"));
                    }
                    Err(AgentFailure {
                        message,
                        seconds,
                        bill,
                        attempts: called.attempts,
                        key_failure: e.kind == ErrorKind::Key,
                        budget: e.kind == ErrorKind::Budget,
                    })
                }
            }
        })
    }
}
