//! One run of a checked workflow: renders each agent's prompt from its inputs and
//! upstream outputs, calls its provider through the scheduler, and turns what
//! happened into the run record, emitting events to every subscriber as it goes.
//!
//! Before an agent starts, its request is rendered and counted ([`Prepared`]), so
//! the budget gate sees its real input size, and a prompt over the model's context
//! window fails the agent before any spend. After it finishes, its cost is priced
//! from the usage the provider reported.
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
mod map;
mod plan;

pub use execute::{execute, render_outputs, workflow_name};
pub use plan::{Connect, prepare, prepare_offline, prepare_with};

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use indexmap::IndexMap;
use serde_json::{Map, Value as Json, json};

use crate::cache::{Cache, Endpoint, Entry, Key};
use crate::cost::prices::PriceTable;
use crate::cost::tokens::{Count, Tokenizer};
use crate::cost::{Price, Usd};
use crate::events::{Bus, Event};
use crate::providers::call::{self, Attempt, Target};
use crate::providers::retry::Policy;
use crate::providers::{BoxFuture, ErrorKind, Progress, Request};
use crate::scheduler::{self, Task};
use crate::template::Renderer;
use crate::usage::Usage;
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
    /// Every token the provider reported for the agent (a reply that failed the
    /// JSON check included).
    pub usage: Usage,
    /// What those tokens cost, each at the price of the model that used it; `None`
    /// when a model is unpriced.
    pub cost: Option<Usd>,
    pub stop_reason: Option<String>,
    pub seconds: f64,
    /// `provider/model` that answered (a fallback's, when the agent's own failed).
    pub model: String,
    pub attempts: Vec<Attempt>,
    /// It came from the cache: no call was made, and `usage` and `cost` are zero.
    pub cached: bool,
    /// For a map agent (`for_each`), each item's text, in order; its `json` is then
    /// the list of the items' JSON.
    pub items: Option<Vec<String>>,
}

impl AgentOutput {
    /// An answer from the cache: no call, no tokens, $0.
    fn cached(entry: Entry) -> Self {
        AgentOutput {
            text: entry.text,
            json: entry.json,
            usage: Usage::default(),
            cost: Some(Usd::ZERO),
            stop_reason: entry.stop_reason,
            seconds: 0.0,
            model: entry.model,
            attempts: Vec::new(),
            cached: true,
            items: None,
        }
    }

    /// A map agent's output, from its items' outputs in order: their texts (and,
    /// for `output: json`, their JSON) as lists, their usage and cost summed. The
    /// items keep their own records; this one feeds the agents downstream.
    fn gathered(model: String, json: bool, items: &[Arc<AgentOutput>]) -> Self {
        let mut usage = Usage::default();
        let mut cost = Some(Usd::ZERO);
        for item in items {
            usage += item.usage;
            cost = cost.zip(item.cost).map(|(a, b)| a + b);
        }
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
            usage,
            cost,
            stop_reason: None,
            seconds: items.iter().map(|i| i.seconds).fold(0.0, f64::max),
            model,
            attempts: Vec::new(),
            cached: !items.is_empty() && items.iter().all(|i| i.cached),
            items: Some(texts),
        }
    }
}

/// A failed agent's error.
#[derive(Debug, Clone)]
pub struct AgentFailure {
    pub message: String,
    pub seconds: f64,
    /// What the failed call used, when known. `None` when it may have spent tokens
    /// nobody reported (a time-out or a dropped stream cut a call off): the budget
    /// then counts the agent's worst case as spent.
    pub usage: Option<Usage>,
    /// What `usage` cost; `None` when unknown or unpriced.
    pub cost: Option<Usd>,
    pub attempts: Vec<Attempt>,
    /// It failed because its key could not be read, decrypted or sent (exit 4).
    pub key_failure: bool,
}

impl AgentFailure {
    /// A failure before any call was made: nothing spent.
    fn before_call(message: String) -> Self {
        AgentFailure {
            message,
            seconds: 0.0,
            usage: Some(Usage::default()),
            cost: Some(Usd::ZERO),
            attempts: Vec::new(),
            key_failure: false,
        }
    }
}

/// An agent ready to start: its rendered request, its counted input, and the most
/// it can cost (`None` when no price or no output limit is known; zero for a cache
/// hit).
#[derive(Debug, Clone)]
pub struct Prepared {
    pub request: Request,
    pub input: Count,
    pub worst: Option<Usd>,
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
    /// Whether a budget needs each agent's worst case.
    budgeted: bool,
    cache: Option<Cache>,
    /// Each agent's models as its cache key sees them; `None`: never cached.
    endpoints: Vec<Option<Vec<Endpoint>>>,
    /// Agents whose cached answers are not read (`--refresh` and downstream).
    refresh: Vec<bool>,
    /// Whether a failed cache write was reported (once a run is enough).
    write_warned: AtomicBool,
    /// Each map agent's list; `None` for an agent that is one call.
    lists: Vec<Option<map::List>>,
}

impl AgentRunner {
    /// The workflow this runner runs.
    pub fn checked(&self) -> &Arc<Checked> {
        &self.checked
    }

    /// How a task is named in records, progress and the closing table: the
    /// agent's name, and `NAME[N]` for item N of a map agent.
    pub fn task_name(&self, task: Task) -> String {
        match task.item {
            None => self.names[task.agent].clone(),
            Some(item) => format!("{}[{item}]", self.names[task.agent]),
        }
    }

    /// Dollars for what `agent`'s models used (`usage[k]` on its `k`th model: its
    /// own, then its fallbacks); `None` when a model that used tokens is unpriced.
    pub fn cost(&self, agent: usize, usage: &[Usage]) -> Option<Usd> {
        let mut total = Usd::ZERO;
        for (k, used) in usage.iter().enumerate() {
            if *used == Usage::default() {
                continue;
            }
            total += self.candidates[agent].get(k)?.1.as_ref()?.cost(used);
        }
        Some(total)
    }

    /// The most `request` can cost on `agent`'s model or any of its fallbacks.
    fn worst_case(&self, agent: usize, request: &Request) -> Option<Usd> {
        let mut worst = Usd::ZERO;
        for (tokenizer, price) in &self.candidates[agent] {
            let price = price.as_ref()?;
            let input = tokenizer.count_request(request.system.as_deref(), &request.prompt);
            let output = request.max_tokens.map(u64::from).or(price.max_output)?;
            worst = worst.max(price.worst_case(input.bound, output));
        }
        Some(worst)
    }

    /// The template context for an agent: its row's inputs and its upstream agents' outputs.
    fn context(&self, inputs: &Json, upstream: &[(usize, Arc<AgentOutput>)]) -> Json {
        let mut agents = Map::new();
        for (i, out) in upstream {
            agents.insert(self.names[*i].clone(), map::upstream_entry(out));
        }
        json!({ "inputs": inputs, "agents": agents })
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
    /// A row's inputs, as the template context's `inputs`.
    type Row = Json;
    type Item = Json;

    fn lane(&self, agent: usize) -> usize {
        self.calls[agent].lane
    }

    fn items(
        &self,
        inputs: &Json,
        agent: usize,
        upstream: &[(usize, Arc<AgentOutput>)],
    ) -> Result<Option<Vec<Json>>, AgentFailure> {
        self.list_items(inputs, agent, upstream)
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
        let mut context = self.context(inputs, upstream);
        if let (Some(item), Some(index), Json::Object(map)) = (item, task.item, &mut context) {
            map.insert("item".into(), item.clone());
            map.insert("item_index".into(), Json::from(index));
        }
        let request = self.request(agent, &context).map_err(fail)?;
        let cache_key = self.cache_key(agent, &request);
        if let Some(cached) = self.lookup(agent, cache_key.as_ref(), true) {
            return Ok(Prepared {
                request,
                input: Count::default(),
                worst: Some(Usd::ZERO),
                cached: Some(cached),
                cache_key,
            });
        }
        let (tokenizer, price) = &self.candidates[agent][0];
        let window = price.as_ref().and_then(|p| p.context_window);
        // Counting loads a tokenizer; a run with no budget and no known window needs none.
        if window.is_none() && !self.budgeted {
            return Ok(Prepared {
                request,
                input: Count::default(),
                worst: None,
                cached: None,
                cache_key,
            });
        }
        let input = tokenizer.count_request(request.system.as_deref(), &request.prompt);
        if let Some(window) = window.filter(|w| input.tokens > *w) {
            return Err(fail(format!(
                "the prompt is about {} tokens, over the {window}-token context window of `{}/{}`; nothing was sent (shorten the inputs or upstream outputs it includes, or use a model with a larger window)",
                input.tokens, self.calls[agent].provider, self.calls[agent].model
            )));
        }
        let worst = if self.budgeted {
            self.worst_case(agent, &request)
        } else {
            None
        };
        Ok(Prepared {
            request,
            input,
            worst,
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
        Box::pin(async move {
            if let Some(entry) = prepared.cached {
                return Ok(AgentOutput::cached(entry));
            }
            let start = Instant::now();
            let cache_key = prepared.cache_key;
            let mut request = prepared.request;
            let policy = Policy::new(self.retries[agent]);
            let (name, bus) = (self.task_name(task), self.bus.clone());
            request.progress = Progress::new(move |chars| {
                bus.emit(&Event::AgentProgress {
                    agent: &name,
                    chars,
                });
            });
            let (name, bus) = (self.task_name(task), self.bus.clone());
            let on_failure = move |attempt: &Attempt| {
                bus.emit(&Event::AttemptFailed {
                    agent: &name,
                    attempt,
                });
            };
            let called = call::call(&self.targets[agent], &request, &policy, &on_failure).await;
            let seconds = start.elapsed().as_secs_f64();
            let mut usage = Usage::default();
            for used in &called.usage {
                usage += *used;
            }
            let cost = self.cost(agent, &called.usage);
            match called.result {
                Ok(answer) => {
                    let output = AgentOutput {
                        text: answer.reply.text,
                        json: answer.reply.json,
                        usage,
                        cost,
                        stop_reason: answer.reply.stop_reason,
                        seconds,
                        model: answer.model,
                        attempts: called.attempts,
                        cached: false,
                        items: None,
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
                    // A call cut off mid-way may be billed without a report: unknown.
                    let known = !called.unreported;
                    Err(AgentFailure {
                        message,
                        seconds,
                        usage: known.then_some(usage),
                        cost: cost.filter(|_| known),
                        attempts: called.attempts,
                        key_failure: e.kind == ErrorKind::Key,
                    })
                }
            }
        })
    }
}
