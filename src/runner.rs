//! One run of a checked workflow: renders each agent's prompt from its inputs and
//! upstream outputs, calls its provider through the scheduler, and turns what
//! happened into the run record, emitting events to every subscriber as it goes.

use std::future::Future;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use indexmap::IndexMap;
use serde_json::{Map, Value as Json, json};

use crate::events::{Bus, Event};
use crate::providers::mock::Mock;
use crate::providers::registry::{self, ProviderInfo};
use crate::providers::{BoxFuture, Provider, Request, Usage};
use crate::record::{AgentRecord, AgentStatus, RunRecord, RunStatus, new_run_id};
use crate::scheduler::{self, Event as SchedEvent, Gate, SkipReason, State};
use crate::template::Renderer;
use crate::workflow::Checked;
use crate::workflow::model::ProviderKind;

/// What a run needs beyond the workflow.
#[derive(Debug, Clone)]
pub struct RunSettings {
    pub file: String,
    pub inputs: IndexMap<String, String>,
    pub mock: bool,
    pub concurrency: usize,
    pub keep_going: bool,
}

/// A finished agent's result.
#[derive(Debug, Clone)]
pub struct AgentOutput {
    pub text: String,
    pub json: Option<Json>,
    pub usage: Usage,
    pub stop_reason: Option<String>,
    pub seconds: f64,
}

/// A failed agent's error.
#[derive(Debug, Clone)]
pub struct AgentFailure {
    pub message: String,
    pub seconds: f64,
}

/// The model an agent calls: provider name and model id, and its lane.
#[derive(Debug, Clone)]
struct Call {
    provider: String,
    model: String,
    lane: usize,
}

/// Runs agents for the scheduler.
pub struct AgentRunner {
    checked: Arc<Checked>,
    names: Vec<String>,
    inputs: Json,
    renderer: Renderer,
    calls: Vec<Call>,
    lanes: Vec<Arc<dyn Provider>>,
}

/// Builds the providers and templates of a run. Fails with a message when a
/// provider this build cannot call is needed.
pub fn prepare(
    checked: Arc<Checked>,
    settings: &RunSettings,
) -> Result<(AgentRunner, Vec<usize>), String> {
    let w = &checked.workflow;
    let mut lane_of: IndexMap<String, usize> = IndexMap::new();
    let mut lanes: Vec<Arc<dyn Provider>> = Vec::new();
    let mut limits = Vec::new();
    let mut calls = Vec::new();
    let mock_latency = registry::resolve(w, "mock").ok().and_then(|p| p.latency);
    for agent in w.agents.values() {
        let provider = agent.provider().to_string();
        let lane = if let Some(&lane) = lane_of.get(&provider) {
            lane
        } else {
            let info = registry::resolve(w, &provider)
                .map_err(|_| format!("unknown provider `{provider}`"))?;
            let client: Arc<dyn Provider> = if settings.mock || info.kind == ProviderKind::Mock {
                Arc::new(Mock {
                    latency: info.latency.or(mock_latency),
                })
            } else {
                connect(&info)?
            };
            lanes.push(client);
            limits.push(info.max_concurrency.map_or(usize::MAX, |m| m as usize));
            lane_of.insert(provider.clone(), lanes.len() - 1);
            lanes.len() - 1
        };
        calls.push(Call {
            provider,
            model: agent.model_id().to_string(),
            lane,
        });
    }
    let mut renderer = Renderer::default();
    for (name, agent) in &w.agents {
        renderer.add(&format!("{name}.prompt"), &agent.prompt)?;
        if let Some(system) = &agent.system {
            renderer.add(&format!("{name}.system"), system)?;
        }
    }
    for (name, text) in &w.outputs {
        renderer.add(&format!("output.{name}"), text)?;
    }
    let inputs = Json::Object(
        settings
            .inputs
            .iter()
            .map(|(k, v)| (k.clone(), Json::String(v.clone())))
            .collect(),
    );
    let names = w.agents.keys().cloned().collect();
    Ok((
        AgentRunner {
            checked,
            names,
            inputs,
            renderer,
            calls,
            lanes,
        },
        limits,
    ))
}

/// A client for a provider that is not the mock.
fn connect(info: &ProviderInfo) -> Result<Arc<dyn Provider>, String> {
    Err(format!(
        "provider `{}` ({:?} API) cannot be called by this build of byok-flow yet; run with `--mock` to test the workflow offline",
        info.name, info.kind
    ))
}

impl AgentRunner {
    /// The template context for an agent: the inputs and its upstream agents' outputs.
    fn context(&self, upstream: &[(usize, Arc<AgentOutput>)]) -> Json {
        let mut agents = Map::new();
        for (i, out) in upstream {
            let mut entry = Map::new();
            entry.insert("output".into(), Json::String(out.text.clone()));
            if let Some(json) = &out.json {
                entry.insert("json".into(), json.clone());
            }
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
        })
    }
}

impl scheduler::Runner for AgentRunner {
    type Output = AgentOutput;
    type Error = AgentFailure;

    fn lane(&self, agent: usize) -> usize {
        self.calls[agent].lane
    }

    fn run(
        self: Arc<Self>,
        agent: usize,
        upstream: Vec<(usize, Arc<AgentOutput>)>,
    ) -> BoxFuture<'static, Result<AgentOutput, AgentFailure>> {
        Box::pin(async move {
            let start = Instant::now();
            let fail = |message: String| AgentFailure {
                message,
                seconds: start.elapsed().as_secs_f64(),
            };
            let context = self.context(&upstream);
            let request = self.request(agent, &context).map_err(fail)?;
            let provider = &self.lanes[self.calls[agent].lane];
            let call = provider.complete(&request);
            let reply = match request.timeout {
                Some(limit) => tokio::time::timeout(limit, call).await.map_err(|_| {
                    fail(format!(
                        "timed out after {}",
                        humantime::format_duration(limit)
                    ))
                })?,
                None => call.await,
            }
            .map_err(|e| fail(e.to_string()))?;
            Ok(AgentOutput {
                text: reply.text,
                json: reply.json,
                usage: reply.usage,
                stop_reason: reply.stop_reason,
                seconds: start.elapsed().as_secs_f64(),
            })
        })
    }
}

/// Runs the workflow to the end (or to `cancel`), emitting events, and returns its record.
pub async fn execute(
    runner: AgentRunner,
    lane_limits: Vec<usize>,
    settings: &RunSettings,
    gate: &mut dyn Gate,
    bus: &mut Bus,
    cancel: impl Future<Output = ()>,
) -> RunRecord {
    let started_at = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
    let clock = Instant::now();
    let runner = Arc::new(runner);
    let checked = runner.checked.clone();
    let names = runner.names.clone();
    let models: Vec<(String, String)> = checked
        .workflow
        .agents
        .iter()
        .map(|(n, a)| (n.clone(), a.model.clone()))
        .collect();
    bus.emit(&Event::RunStarted { agents: &models });
    let options = scheduler::Options {
        concurrency: settings.concurrency,
        lane_limits,
        keep_going: settings.keep_going,
    };
    let calls = runner.calls.clone();
    let record_of = |i: usize, status: AgentStatus, reason: Option<String>| AgentRecord {
        name: names[i].clone(),
        provider: calls[i].provider.clone(),
        model: calls[i].model.clone(),
        status,
        reason,
        seconds: 0.0,
        usage: Usage::default(),
        cost_usd: Some(0.0),
        stop_reason: None,
        output: None,
        json: None,
    };
    let mut records: Vec<Option<AgentRecord>> = vec![None; names.len()];
    let outcome = scheduler::run(
        &checked.dag,
        runner.clone(),
        &options,
        gate,
        cancel,
        |event| {
            let (i, record) = match event {
                SchedEvent::Started(i) => {
                    bus.emit(&Event::AgentStarted {
                        agent: &names[i],
                        model: &models[i].1,
                    });
                    return;
                }
                SchedEvent::Finished(i, out) => (
                    i,
                    AgentRecord {
                        seconds: out.seconds,
                        usage: out.usage,
                        stop_reason: out.stop_reason.clone(),
                        output: Some(out.text.clone()),
                        json: out.json.clone(),
                        cost_usd: cost(settings, &calls[i], out.usage),
                        ..record_of(i, AgentStatus::Succeeded, None)
                    },
                ),
                SchedEvent::Failed(i, e) => (
                    i,
                    AgentRecord {
                        seconds: e.seconds,
                        ..record_of(i, AgentStatus::Failed, Some(e.message.clone()))
                    },
                ),
                SchedEvent::Skipped(i, reason) => (
                    i,
                    record_of(i, AgentStatus::Skipped, Some(skip_text(reason, &names))),
                ),
                SchedEvent::Cancelled(i) => (
                    i,
                    record_of(i, AgentStatus::Cancelled, Some("interrupted".into())),
                ),
            };
            if record.status == AgentStatus::Skipped || record.status == AgentStatus::Cancelled {
                bus.emit(&Event::AgentSkipped { record: &record });
            } else {
                bus.emit(&Event::AgentFinished { record: &record });
            }
            records[i] = Some(record);
        },
    )
    .await;

    let agents: Vec<AgentRecord> = records
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            r.unwrap_or_else(|| record_of(i, AgentStatus::Skipped, Some("not run".into())))
        })
        .collect();
    let outputs = render_outputs(&runner, &outcome.states);
    let mut usage = Usage::default();
    for a in &agents {
        usage += a.usage;
    }
    let status = if outcome.interrupted {
        RunStatus::Interrupted
    } else if agents.iter().all(|a| a.status == AgentStatus::Succeeded) {
        RunStatus::Succeeded
    } else {
        RunStatus::Failed
    };
    let record = RunRecord {
        run_id: new_run_id(),
        workflow: checked
            .workflow
            .name
            .clone()
            .unwrap_or_else(|| stem(&settings.file)),
        file: settings.file.clone(),
        started_at,
        seconds: clock.elapsed().as_secs_f64(),
        status,
        mock: settings.mock,
        inputs: settings.inputs.clone(),
        cost_usd: agents.iter().filter_map(|a| a.cost_usd).sum(),
        agents,
        outputs,
        usage,
    };
    bus.emit(&Event::RunFinished { record: &record });
    record
}

/// Dollars for one call. The mock costs nothing; real prices come with the cost module.
fn cost(settings: &RunSettings, call: &Call, _usage: Usage) -> Option<f64> {
    (settings.mock || call.provider == "mock").then_some(0.0)
}

fn skip_text(reason: &SkipReason, names: &[String]) -> String {
    match reason {
        SkipReason::Dependency(i) => format!("`{}` did not succeed", names[*i]),
        SkipReason::RunStopped => {
            "the run stopped after a failure (use --keep-going to run independent agents)".into()
        }
        SkipReason::Interrupted => "interrupted".into(),
        SkipReason::Budget => "its worst-case cost could exceed the budget".into(),
    }
}

/// The declared outputs, rendered; or, with none declared, the sink agents' outputs.
fn render_outputs(
    runner: &AgentRunner,
    states: &[State<AgentOutput, AgentFailure>],
) -> IndexMap<String, String> {
    let w = &runner.checked.workflow;
    let done: Vec<(usize, Arc<AgentOutput>)> = states
        .iter()
        .enumerate()
        .filter_map(|(i, s)| match s {
            State::Done(out) => Some((i, out.clone())),
            _ => None,
        })
        .collect();
    if w.outputs.is_empty() {
        return runner
            .checked
            .dag
            .sinks()
            .into_iter()
            .filter_map(|i| match &states[i] {
                State::Done(out) => Some((runner.names[i].clone(), out.text.clone())),
                _ => None,
            })
            .collect();
    }
    let context = runner.context(&done);
    w.outputs
        .keys()
        .filter_map(|name| {
            runner
                .renderer
                .render(&format!("output.{name}"), &context)
                .ok()
                .map(|text| (name.clone(), text))
        })
        .collect()
}

fn stem(file: &str) -> String {
    std::path::Path::new(file)
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or(file)
        .to_string()
}
