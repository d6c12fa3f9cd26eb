//! The run itself: drives the scheduler over a prepared [`AgentRunner`], turns
//! each scheduler event into an agent record and a bus event, renders the
//! workflow's outputs, and builds the run record.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use indexmap::IndexMap;
use serde_json::Value as Json;

use super::{AgentFailure, AgentOutput, AgentRunner, RunSettings};
use crate::cost::Usd;
use crate::cost::bill::{Bill, listed_saving};
use crate::events::{Bus, Event};
use crate::record::spool::Spool;
use crate::record::{
    AgentRecord, AgentStatus, CostEstimate, Dependency, RunRecord, RunStatus, Timing, new_run_id,
};
use crate::scheduler::{self, Event as SchedEvent, Gate, SkipReason, State, Task};
use crate::template::Values;
use crate::usage::Usage;
use crate::workflow::Checked;

/// Runs the workflow to the end (or to `cancel`), emitting events, and returns its record.
pub async fn execute(
    runner: AgentRunner,
    lane_limits: Vec<usize>,
    settings: &RunSettings,
    gate: &mut dyn Gate<AgentRunner>,
    bus: &Bus,
    cancel: impl Future<Output = ()>,
) -> RunRecord {
    let started_at = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
    let run_id = settings.run_id.clone().unwrap_or_else(new_run_id);
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
    bus.emit(&Event::RunStarted {
        run_id: &run_id,
        started_at: &started_at,
        agents: &models,
    });
    drop(models);
    let model = |agent: usize| checked.workflow.agents[agent].model.as_str();
    let options = scheduler::Options {
        concurrency: settings.concurrency,
        lane_limits,
        keep_going: settings.keep_going,
        busy: settings.busy.clone(),
        keep: runner.kept_outputs(),
    };
    // Made for each record as it is made: a squad's edges can outnumber its agents.
    let depends_on = |i: usize| {
        let mut edges: Vec<(usize, Dependency)> = checked
            .dag
            .dependencies_with_kind(i)
            .map(|(d, kind)| {
                let edge = Dependency {
                    agent: names[d].clone(),
                    kind,
                };
                (d, edge)
            })
            .collect();
        edges.sort_by_key(|(d, _)| *d);
        edges.into_iter().map(|(_, e)| e).collect()
    };
    let estimates = agent_estimates(settings);
    let record_of = |task: Task, status: AgentStatus, reason: Option<String>| AgentRecord {
        name: task_name(&names, task),
        item: task.item,
        provider: checked.workflow.agents[task.agent].provider().to_string(),
        model: checked.workflow.agents[task.agent].model_id().to_string(),
        status,
        reason,
        seconds: 0.0,
        usage: Usage::default(),
        counted_locally: false,
        cost_usd: Some(0.0),
        bill_unknown: false,
        max_cost_usd: None,
        stop_reason: None,
        output: None,
        json: None,
        answered_by: None,
        attempts: Vec::new(),
        key_failure: false,
        cached: false,
        depends_on: depends_on(task.agent),
        timing: None,
        // A map agent's estimate is of all its items together.
        estimate: estimates
            .get(task.agent)
            .copied()
            .flatten()
            .filter(|_| task.item.is_none()),
        citations: Vec::new(),
        cache_saved_usd: None,
    };
    // Kept out of memory until the run is over, then read back by agent, then item.
    let mut records = Spool::new();
    // The agents that have a record (those without are "not run").
    let mut recorded = vec![false; names.len()];
    // When each task became ready, was held by the budget, started, ended.
    let mut timings: HashMap<Task, Timing> = HashMap::new();
    let now = || clock.elapsed().as_secs_f64();
    // Agents skipped for the budget, and those skipped because one of them was.
    let mut over_budget: HashSet<usize> = HashSet::new();
    let inputs = runner.inputs.clone();
    let outcome = scheduler::run(
        &checked.dag,
        runner.clone(),
        inputs,
        &options,
        gate,
        cancel,
        |event| {
            let (task, mut record) = match event {
                SchedEvent::Ready(task) => {
                    timings.insert(
                        task,
                        Timing {
                            ready: now(),
                            ..Timing::default()
                        },
                    );
                    return;
                }
                SchedEvent::Preparing(task) => {
                    if let Some(t) = timings.get_mut(&task) {
                        t.preparing.get_or_insert_with(now);
                    }
                    return;
                }
                SchedEvent::Held(task) => {
                    if let Some(t) = timings.get_mut(&task) {
                        t.held.get_or_insert_with(now);
                    }
                    return;
                }
                SchedEvent::Started(task) => {
                    if let Some(t) = timings.get_mut(&task) {
                        t.started = Some(now());
                    }
                    bus.emit(&Event::AgentStarted {
                        agent: &runner.task_name(task),
                        model: model(task.agent),
                    });
                    return;
                }
                SchedEvent::Finished(task, out) => (
                    task,
                    billed(
                        AgentRecord {
                            seconds: out.seconds,
                            stop_reason: out.stop_reason.clone(),
                            output: Some(out.text.clone()),
                            json: out.json.clone(),
                            answered_by: (out.model != model(task.agent))
                                .then(|| out.model.clone()),
                            attempts: out.attempts.clone(),
                            cached: out.cached,
                            citations: out.citations.clone(),
                            ..record_of(task, AgentStatus::Succeeded, None)
                        },
                        &out.bill,
                    ),
                ),
                SchedEvent::Failed(task, e) => {
                    if e.budget {
                        over_budget.insert(task.agent);
                    }
                    (
                        task,
                        billed(
                            AgentRecord {
                                seconds: e.seconds,
                                attempts: e.attempts.clone(),
                                key_failure: e.key_failure,
                                ..record_of(task, AgentStatus::Failed, Some(e.message.clone()))
                            },
                            &e.bill,
                        ),
                    )
                }
                SchedEvent::Skipped(task, reason) => {
                    let budget = match reason {
                        SkipReason::Budget(_) => true,
                        SkipReason::Dependency(d) => over_budget.contains(d),
                        _ => false,
                    };
                    let text = if budget {
                        over_budget.insert(task.agent);
                        let stopped = matches!(
                            reason,
                            SkipReason::Dependency(d)
                                if records.failed(*d)
                        );
                        budget_text(reason, &names, settings.max_usd, stopped)
                    } else {
                        skip_text(reason, &names)
                    };
                    (task, record_of(task, AgentStatus::Skipped, Some(text)))
                }
                // Its call was cut off: what it may have cost is still counted.
                SchedEvent::Cancelled(task) => (
                    task,
                    billed(
                        record_of(task, AgentStatus::Cancelled, Some("interrupted".into())),
                        &runner.cancelled_bill(task),
                    ),
                ),
                // A map agent over an empty list: one line, for no call.
                SchedEvent::Expanded {
                    agent, items: 0, ..
                } => {
                    let task = Task::agent(0, agent);
                    let reason = Some("its list is empty: nothing to call".to_string());
                    (task, record_of(task, AgentStatus::Succeeded, reason))
                }
                SchedEvent::Expanded { .. }
                | SchedEvent::Gathered { .. }
                | SchedEvent::RowDone(_) => return,
            };
            if let Some(t) = timings.get_mut(&task) {
                t.ended = Some(now());
            }
            record.timing = timings.remove(&task);
            if record.status == AgentStatus::Skipped || record.status == AgentStatus::Cancelled {
                bus.emit(&Event::AgentSkipped { record: &record });
            } else {
                bus.emit(&Event::AgentFinished { record: &record });
            }
            recorded[task.agent] = true;
            // Kept on disk until the run ends: with secrets taken out, as for the bus.
            let record = crate::events::redact_agent(&record).unwrap_or(record);
            records.push((task.agent, task.item), record);
        },
    )
    .await;
    let outputs = render_outputs(&runner, &runner.inputs, &outcome.states);
    let interrupted = outcome.interrupted;
    // What ran the agents is no longer needed: freed before the records come back.
    drop((outcome, runner, timings));
    crate::memory::give_back();

    for (i, _) in recorded.iter().enumerate().filter(|(_, r)| !**r) {
        let not_run = record_of(
            Task::agent(0, i),
            AgentStatus::Skipped,
            Some("not run".into()),
        );
        records.push((i, None), not_run);
    }
    let agents = records.into_records(|(agent, item), status, why| {
        record_of(
            Task {
                row: 0,
                agent,
                item,
            },
            status,
            Some(why),
        )
    });
    // Given up for the budget: skipped before starting, or stopped before a retry.
    let index = |a: &AgentRecord| {
        checked
            .workflow
            .agents
            .get_index_of(a.name.split('[').next().unwrap_or_default())
    };
    let status = if interrupted {
        RunStatus::Interrupted
    } else if agents.iter().all(|a| a.status == AgentStatus::Succeeded) {
        RunStatus::Succeeded
    } else if !over_budget.is_empty()
        && agents.iter().all(|a| {
            a.status != AgentStatus::Failed || index(a).is_some_and(|i| over_budget.contains(&i))
        })
    {
        RunStatus::BudgetReached
    } else {
        RunStatus::Failed
    };
    let mut record = RunRecord {
        run_id,
        version: env!("CARGO_PKG_VERSION").to_string(),
        workflow: workflow_name(&checked, &settings.file),
        file: settings.file.clone(),
        workflow_sha256: Some(checked.sha256.clone()),
        started_at,
        seconds: clock.elapsed().as_secs_f64(),
        status,
        mock: settings.mock,
        inputs: settings.inputs.clone(),
        cost_usd: None,
        unpriced_agents: Vec::new(),
        max_cost_usd: None,
        budget_usd: settings.max_usd,
        estimate: settings.estimate.as_ref().map(|e| CostEstimate {
            expected_usd: Some(e.total.expected_usd.micro_dollars())
                .filter(|_| !e.total.is_lower_bound()),
            max_usd: Some(e.total.max_usd.micro_dollars())
                .filter(|_| !e.total.is_lower_bound() && e.total.unbounded.is_empty()),
        }),
        cache_saved_usd: None,
        agents,
        outputs,
        usage: Usage::default(),
    };
    if settings.mock {
        let pricing = settings.pricing(&checked.workflow);
        for a in &mut record.agents {
            let model = a
                .answered_by
                .clone()
                .unwrap_or_else(|| format!("{}/{}", a.provider, a.model));
            a.cache_saved_usd = listed_saving(pricing, &model, &a.usage);
        }
    }
    record.total_agents();
    bus.emit(&Event::RunFinished { record: &record });
    record
}

/// How a task is named: its agent's name, and `NAME[N]` for item N of a map agent.
pub(super) fn task_name(names: &[String], task: Task) -> String {
    match task.item {
        None => names[task.agent].clone(),
        Some(item) => format!("{}[{item}]", names[task.agent]),
    }
}

/// An agent's record with what its attempts used and cost.
fn billed(record: AgentRecord, bill: &Bill) -> AgentRecord {
    AgentRecord {
        usage: bill.usage,
        counted_locally: bill.counted_locally,
        cost_usd: bill.cost.map(Usd::micro_dollars),
        bill_unknown: bill.unknown,
        max_cost_usd: bill
            .max_cost
            .filter(|_| bill.unknown)
            .map(Usd::micro_dollars),
        cache_saved_usd: bill.cache_saved(),
        ..record
    }
}

/// Each agent's estimate, by position, when the run had one.
fn agent_estimates(settings: &RunSettings) -> Vec<Option<CostEstimate>> {
    settings.estimate.as_ref().map_or_else(Vec::new, |e| {
        e.agents
            .iter()
            .map(|a| {
                Some(CostEstimate {
                    expected_usd: a.expected_usd.map(Usd::micro_dollars),
                    max_usd: a.max_usd.map(Usd::micro_dollars),
                })
            })
            .collect()
    })
}

fn skip_text(reason: &SkipReason, names: &[String]) -> String {
    match reason {
        SkipReason::Dependency(i) => format!("`{}` did not succeed", names[*i]),
        SkipReason::RunStopped => {
            "the run stopped after a failure (use --keep-going to run independent agents)".into()
        }
        SkipReason::Interrupted => "interrupted".into(),
        SkipReason::Budget(why) => format!("skipped for the budget: {why}"),
    }
}

/// Why an agent was skipped for the budget, or because an agent it needs was.
/// `stopped`: the agent it needs started, and the budget had no room for a retry.
fn budget_text(
    reason: &SkipReason,
    names: &[String],
    max_usd: Option<f64>,
    stopped: bool,
) -> String {
    let ceiling = max_usd.map_or_else(String::new, |m| format!(" of {}", Usd::from_dollars(m)));
    let what = if stopped { "stopped" } else { "was skipped" };
    match reason {
        SkipReason::Dependency(d) => {
            format!("`{}` {what} for the budget{ceiling}", names[*d])
        }
        other => skip_text(other, names),
    }
}

impl AgentRunner {
    /// The agents whose outputs [`render_outputs`] reads: those the workflow's
    /// `outputs` name, or, with none declared, the agents nothing depends on.
    /// `None` (keep them all) when an output's template cannot be read.
    pub fn kept_outputs(&self) -> Option<Vec<bool>> {
        let w = &self.checked.workflow;
        let mut keep = vec![false; self.names.len()];
        if w.outputs.is_empty() {
            for i in self.checked.dag.sinks() {
                keep[i] = true;
            }
            return Some(keep);
        }
        for text in w.outputs.values() {
            for reference in crate::template::references(text).ok()? {
                match reference.target.ok()? {
                    crate::template::Target::Agent { name, .. }
                    | crate::template::Target::AgentOutputs(name) => {
                        keep[w.agents.get_index_of(&name)?] = true;
                    }
                    crate::template::Target::Input(_) => {}
                    crate::template::Target::Item => return None,
                }
            }
        }
        Some(keep)
    }
}

/// The declared outputs rendered over `inputs` and the agents that finished; or,
/// with none declared, the outputs of the sink agents that finished.
pub fn render_outputs(
    runner: &AgentRunner,
    inputs: &Json,
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
    let context = Values::from(runner.context(inputs, &done));
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

/// The workflow's `name`, else its file's name without the extension.
pub fn workflow_name(checked: &Checked, file: &str) -> String {
    checked.workflow.name.clone().unwrap_or_else(|| stem(file))
}

fn stem(file: &str) -> String {
    std::path::Path::new(file)
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or(file)
        .to_string()
}
