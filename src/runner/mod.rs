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

mod cached;
mod execute;
mod gate;
mod map;
mod meter;
mod plan;
#[cfg(test)]
mod tests;

pub use execute::{execute, render_outputs, workflow_name};
pub use meter::{input_bound, input_count, output_count};
pub use plan::{Batcher, Connect, prepare, prepare_batched, prepare_offline, prepare_with};

use std::collections::{HashMap, HashSet};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use indexmap::IndexMap;
use serde_json::{Map, Value as Json};

use crate::cache::{Cache, Endpoint, Entry, Key};
use crate::catalog::ProviderKind;
use crate::cost::bill::Bill;
use crate::cost::budget::Budget;
use crate::cost::prices::{PriceTable, Pricing};
use crate::cost::ratio::Ratios;
use crate::cost::tokens::{Count, Tokenizer};
use crate::cost::{Price, Usd};
use crate::events::{Bus, Event};
use crate::prompt_cache::{self, CacheMode};
use crate::providers::call::{self, Attempt, Target};
use crate::providers::retry::Policy;
use crate::providers::{BoxFuture, ErrorKind, Progress, Request};
use crate::scheduler::{self, Gate, Open, Task};
use crate::template::{Renderer, Values};
use crate::tools::{Citation, Tool};
use crate::workflow::{Checked, OutputKind};

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
    /// The run's id when it goes on from an earlier one (a batch run collected
    /// again keeps its id); a new one when `None`.
    pub run_id: Option<String>,
    /// Where a batch run counts the work that may still hand its batcher a call.
    pub busy: Option<scheduler::Busy>,
}

impl RunSettings {
    /// How the models of `workflow` are priced in this run.
    pub fn pricing<'a>(&'a self, workflow: &'a crate::workflow::model::Workflow) -> Pricing<'a> {
        Pricing {
            table: &self.prices,
            workflow,
            mock: self.mock,
        }
    }

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
    /// For a map agent (`for_each`), each item's text, in order; its `json` is then
    /// the list of the items' JSON.
    pub items: Option<Vec<String>>,
    /// The sources its reply cites (`agents.NAME.citations`); a map agent's, those
    /// of its items, in order.
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
            items: None,
            citations: entry.citations,
        }
    }

    /// A map agent's output, from its items' outputs in order: their texts (and,
    /// for `output: json`, their JSON) as lists. It carries no bill: its items'
    /// records have theirs; this one feeds the agents downstream.
    fn gathered(model: String, json: bool, items: &[Arc<AgentOutput>]) -> Self {
        let texts: Vec<String> = items.iter().map(|i| i.text.clone()).collect();
        AgentOutput {
            text: texts.join("\n\n"),
            json: json.then(|| {
                Json::Array(
                    items
                        .iter()
                        .map(|i| i.json.clone().unwrap_or(Json::Null))
                        .collect(),
                )
            }),
            bill: Bill::default(),
            stop_reason: None,
            seconds: items.iter().map(|i| i.seconds).fold(0.0, f64::max),
            model,
            attempts: Vec::new(),
            cached: !items.is_empty() && items.iter().all(|i| i.cached),
            items: Some(texts),
            citations: items.iter().flat_map(|i| i.citations.clone()).collect(),
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
    /// Not failed: its call was left in a batch the provider has taken, for the
    /// run that collects it (`--detach`).
    pub detached: bool,
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
            detached: false,
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
    /// Its first attempt was already sent (an earlier run's batch holds it, by
    /// this fingerprint): what it costs is spent, whatever the budget has left.
    pub sent: Option<String>,
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
    candidates: Vec<Vec<(Tokenizer, Option<Arc<Price>>)>>,
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
    ratios: Ratios,
    /// What providers were seen to bill for output beyond the limit.
    output_ratios: Ratios,
    /// Providers already warned about for reporting no usage.
    unreported_warned: Mutex<HashSet<String>>,
    /// The bill of each running task, so one cancelled mid-call still has one.
    tabs: Mutex<HashMap<Task, Arc<Mutex<meter::Tab>>>>,
    cache: Option<Cache>,
    /// Each agent's models as its cache key sees them; `None`: never cached.
    endpoints: Vec<Option<Vec<Endpoint>>>,
    /// Agents whose cached answers are not read (`--refresh` and downstream).
    refresh: Vec<bool>,
    /// Whether a failed cache write was reported (once a run is enough).
    write_warned: AtomicBool,
    /// Each map agent's list; `None` for an agent that is one call.
    lists: Vec<Option<map::List>>,
    /// It runs the rows of a dataset: log lines and batch labels name each task's
    /// row by its index in the file, `stride * N + first` for the scheduler's
    /// N-th row (every row, or one shard's: `--shard K/M` takes every M-th).
    rows: Option<(u64, u64)>,
}

impl AgentRunner {
    /// The gate that holds this run's agents to its budget (or none).
    pub fn gate(&self) -> Box<dyn Gate<AgentRunner>> {
        match &self.budget {
            Some(budget) => Box::new(gate::BudgetGate::new(budget.clone())),
            None => Box::new(Open),
        }
    }

    /// Runs the rows of a dataset (SPEC §8), all of them or one shard's: log
    /// lines and batch labels name each task's row by its index in the file,
    /// which a run of one row leaves out.
    #[must_use]
    pub fn for_rows(mut self, shard: Option<crate::dataset::Shard>) -> Self {
        self.rows = Some(shard.map_or((1, 0), |s| (s.n, s.k - 1)));
        self
    }

    /// The index in the file of the scheduler's `row`-th row.
    fn file_row(&self, row: u64) -> u64 {
        self.rows.map_or(row, |(stride, first)| {
            row.saturating_mul(stride).saturating_add(first)
        })
    }

    /// The run's budget, if it has one.
    pub fn budget(&self) -> Option<&Arc<Budget>> {
        self.budget.as_ref()
    }

    fn tabs_lock(&self) -> std::sync::MutexGuard<'_, HashMap<Task, Arc<Mutex<meter::Tab>>>> {
        self.tabs.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The workflow this runner runs.
    pub fn checked(&self) -> &Arc<Checked> {
        &self.checked
    }

    /// How a task is named in records, progress and the closing table: the
    /// agent's name, and `NAME[N]` for item N of a map agent.
    pub fn task_name(&self, task: Task) -> String {
        execute::task_name(&self.names, task)
    }

    /// The template context for an agent: its row's inputs and its upstream agents' outputs.
    fn context(&self, inputs: &Json, upstream: &[(usize, Arc<AgentOutput>)]) -> Json {
        let mut agents = Map::new();
        for (i, out) in upstream {
            agents.insert(self.names[*i].clone(), map::upstream_entry(out));
        }
        let mut context = Map::new();
        context.insert("inputs".into(), inputs.clone());
        context.insert("agents".into(), Json::Object(agents));
        Json::Object(context)
    }

    /// A plain path's text (`inputs.NAME`, `agents.NAME.output`) as the
    /// template context has it, without building the context.
    fn plain_value<'a>(
        &self,
        inputs: &'a Json,
        upstream: &'a [(usize, Arc<AgentOutput>)],
        path: &str,
    ) -> Option<&'a str> {
        let mut names = path.split('.');
        match (names.next()?, names.next()?, names.next(), names.next()) {
            ("inputs", input, None, None) => inputs.get(input)?.as_str(),
            ("agents", upstream_name, Some("output"), None) => {
                let (_, out) = upstream
                    .iter()
                    .find(|(i, _)| self.names[*i] == upstream_name)?;
                // A map agent's context has `outputs`, not `output`.
                out.items.is_none().then_some(out.text.as_str())
            }
            _ => None,
        }
    }

    /// The request for `agent`, its templates rendered against `inputs`, its
    /// upstream agents' outputs and a map agent's item.
    fn request(
        &self,
        agent: usize,
        inputs: &Json,
        upstream: &[(usize, Arc<AgentOutput>)],
        item: Option<(&Json, usize)>,
    ) -> Result<Request, String> {
        let name = &self.names[agent];
        let spec = &self.checked.workflow.agents[agent];
        let defaults = &self.checked.workflow.defaults;
        // Most templates only read plain paths: the whole context is built for
        // those that need more.
        let values = std::cell::OnceCell::<Values>::new();
        let render = |part: &str, text: &str| {
            if let Some(rendered) =
                Renderer::render_plain(text, |path| self.plain_value(inputs, upstream, path))
            {
                return Ok(rendered);
            }
            let values = values.get_or_init(|| {
                let mut context = self.context(inputs, upstream);
                if let (Some((item, index)), Json::Object(map)) = (item, &mut context) {
                    map.insert("item".into(), item.clone());
                    map.insert("item_index".into(), Json::from(index));
                }
                context.into()
            });
            self.renderer
                .render_text(&format!("{name}.{part}"), text, values)
                .map_err(|e| format!("cannot render the {part}: {e}"))
        };
        let system = spec
            .system
            .as_ref()
            .map(|text| render("system", text))
            .transpose()?;
        let prompt = render("prompt", &spec.prompt)?;
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
            label: None,
        })
    }
}

impl scheduler::Runner for AgentRunner {
    type Output = AgentOutput;
    type Error = AgentFailure;
    type Prepared = Prepared;
    /// A row's inputs, as the template context's `inputs`.
    type Row = Json;
    type Item = Json;

    fn lane(&self, agent: usize) -> usize {
        self.calls[agent].lane
    }

    fn span(&self, task: Task) -> tracing::Span {
        let span = tracing::info_span!(
            "agent",
            name = %self.task_name(task),
            row = tracing::field::Empty
        );
        if self.rows.is_some() {
            span.record("row", self.file_row(task.row));
        }
        span
    }

    fn items(
        &self,
        inputs: &Json,
        agent: usize,
        upstream: &[(usize, Arc<AgentOutput>)],
    ) -> Result<Option<Vec<Json>>, AgentFailure> {
        self.list_items(inputs, agent, upstream)
            .map_err(AgentFailure::before_call)
    }

    fn gather(&self, agent: usize, items: Vec<Arc<AgentOutput>>) -> AgentOutput {
        let spec = &self.checked.workflow.agents[agent];
        let json = spec.output == OutputKind::Json;
        AgentOutput::gathered(spec.model.clone(), json, &items)
    }

    fn prepare(
        &self,
        inputs: &Json,
        task: Task,
        item: Option<&Json>,
        upstream: &[(usize, Arc<AgentOutput>)],
    ) -> Result<Prepared, AgentFailure> {
        let agent = task.agent;
        let fail = AgentFailure::before_call;
        let item = item.zip(task.item);
        let mut request = self.request(agent, inputs, upstream, item).map_err(fail)?;
        let cache_key = self.cache_key(agent, &request);
        if let Some(cached) = self.lookup(agent, cache_key.as_ref(), true) {
            return Ok(Prepared {
                request,
                input: Count::default(),
                worst: Some(Usd::ZERO),
                sent: None,
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
        let (worst, sent) = if self.budget.is_some() {
            // As its first attempt goes (`call::call` sets the same), so an
            // earlier run's batch that holds it is found.
            let first = &self.targets[agent][0];
            request.model.clone_from(&first.model);
            request.provider.clone_from(&first.provider);
            request.key.clone_from(&first.key);
            (
                self.attempt_worst(agent, 0, &request, input),
                first.client.holds(&request),
            )
        } else {
            (None, None)
        };
        Ok(Prepared {
            request,
            input,
            worst,
            sent,
            exact,
            cached: None,
            cache_key,
        })
    }

    fn run(
        self: Arc<Self>,
        task: Task,
        prepared: Prepared,
    ) -> BoxFuture<'static, Result<AgentOutput, AgentFailure>> {
        let agent = task.agent;
        if let Some(entry) = prepared.cached {
            return Box::pin(async move { Ok(AgentOutput::cached(entry)) });
        }
        // What the call's future keeps is taken apart here: it lives as long as the
        // call (hours, for a request in a batch, one per request), and a value it
        // captured whole would be kept whole beside the parts it moved on.
        let Prepared {
            request,
            input,
            cache_key,
            ..
        } = prepared;
        let mut request = request;
        if self.rows.is_some() {
            let row = self.file_row(task.row);
            request.label = Some(format!("r{row}-{}", self.task_name(task)));
        }
        let (name, bus) = (self.task_name(task), self.bus.clone());
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
        // On the heap, and shared with the meter while an attempt is in flight.
        let request = Arc::new(request);
        Box::pin(async move {
            let start = Instant::now();
            let policy = Policy::new(self.retries[agent]);
            let (name, bus) = (self.task_name(task), self.bus.clone());
            let on_failure = move |attempt: &Attempt| {
                bus.emit(&Event::AttemptFailed {
                    agent: &name,
                    attempt,
                });
            };
            let first_input = self.budget.is_some().then_some(input);
            let tab = Arc::new(Mutex::new(meter::Tab::new(first_input)));
            self.tabs_lock().insert(task, tab.clone());
            let meter = meter::AgentMeter {
                runner: &self,
                task,
                tab: tab.clone(),
            };
            let called =
                call::call(&self.targets[agent], request, &policy, &on_failure, &meter).await;
            let seconds = start.elapsed().as_secs_f64();
            self.tabs_lock().remove(&task);
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
                        items: None,
                        citations: answer.reply.citations,
                    };
                    // Written now, not at the end of the run, so a killed run resumes here.
                    if let Some(key) = cache_key {
                        self.store(key, &output);
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
                        detached: e.kind == ErrorKind::Detached,
                    })
                }
            }
        })
    }
}
