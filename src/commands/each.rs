//! `byok-flow run WORKFLOW --each FILE` (and `estimate --each`): the squad once per
//! row (SPEC §8). The work lives in `crate::dataset`; this wires the session, the
//! outputs and the exit code.

use std::io::Write;
use std::path::Path;

use crate::batch;
use crate::cost::estimate::{Counting, Estimator};
use crate::dataset::estimate::RowsEstimate;
use crate::dataset::{self, Dataset, FileError, RowInputs, Source};
use crate::error::{Error, Exit, Result};
use crate::events::Bus;
use crate::record::RunStatus;
use crate::report::github;
use crate::report::html;
use crate::report::rows::{self, progress, table};
use crate::runner;
use crate::session::Session;
use crate::settings::Global;

use super::run::Args;

/// Runs the squad of `session` once per row of `each`.
pub fn run(args: &Args, each: &Path, session: &Session, global: Global) -> Result<Exit> {
    let source = Source::new(each).map_err(refused)?;
    let inputs = RowInputs::new(
        &session.checked.workflow.inputs,
        session.settings.inputs.clone(),
    );
    let dataset = Dataset::open(source, args.shard, inputs).map_err(refused)?;
    // The budget refuses a run whose rows are expected to cost more than it (a
    // file's rows: stdin's are read only once, as they come).
    let budgeted = session.budget().is_some() && dataset.source.path.is_some();
    if args.dry_run || budgeted {
        let mut estimate = estimate_rows(session, &dataset)?;
        if args.dry_run && session.batched() {
            // What the same rows would cost called directly, for the saving.
            let mut regular = (*session.checked).clone();
            for agent in regular.workflow.agents.values_mut() {
                agent.batch = Some(false);
            }
            let pricing = crate::cost::prices::Pricing {
                workflow: &regular.workflow,
                ..session.pricing()
            };
            let estimator = Estimator::new(&regular, &pricing, session.max_usd(), Counting::Exact);
            let direct = rows_estimate(session, &dataset, &estimator)?;
            estimate.batch = Some(crate::cost::estimate::BatchSaving::of_totals(
                &estimate.total,
                &direct.total,
            ));
        }
        // What bounds each agent's cost, and its tools' uses, are the workflow's,
        // whatever the row.
        let agents = crate::cost::estimate::upper_estimate(
            &session.checked,
            &session.settings.inputs,
            &session.pricing(),
            session.max_usd(),
        )
        .agents;
        let refusal = session
            .max_usd()
            .and_then(|max| super::run::refuse(&agents, &estimate.total, max));
        if args.dry_run {
            print(&estimate, &dataset, args.json)?;
            return refusal.map_or(Ok(Exit::Success), Err);
        }
        if let Some(refusal) = refusal {
            if !global.quiet {
                eprint!(
                    "{}",
                    rows::estimate::render(&estimate, &dataset.source.name())
                );
            }
            return Err(refusal);
        }
    }
    let runtime = Session::runtime()?;
    // Every key the squad uses is checked before the first row starts.
    let keys = super::run::keys_or_exit(session, &runtime, &[], global)?;
    let bus = Bus::default();
    // Rows with batched agents go through the batcher: the requests of every row
    // in the window that are ready at once go as one batch per provider, key and model.
    // Detached, each row's requests, once the provider has their batch, are
    // handed back: the row gives its place in the window to the next, so every
    // row's first wave is submitted, however many rows the file has.
    let waves = session.batcher(if args.detach {
        batch::Detach::HandBack
    } else {
        batch::Detach::No
    })?;
    let mut settings = session.settings.clone();
    if let Some(waves) = &waves {
        bus.subscribe(Box::new(batch::RunIdSubscriber(waves.clone())));
        // Collecting a detached or interrupted run: it goes on under its id.
        settings.run_id = waves.resumes();
        settings.busy = Some(waves.busy());
    }
    // A detached run's stdout is its run id: its rows are told by the run that collects them.
    if !args.detach {
        subscribe(&bus, args, global)?;
    } else if !global.quiet {
        if global.terminal && global.github.is_none() {
            bus.subscribe(Box::new(progress::Live::default()));
        } else {
            bus.subscribe(Box::new(progress::Plain::default()));
        }
    }
    let workflow = runner::workflow_name(&session.checked, &session.settings.file);
    // `report RUN_ID` reads DIR/run.json and DIR/results.jsonl back.
    let record = args.out.as_ref().map(|dir| dir.join("run.json"));
    if let Some(recorder) = session.recorder(&workflow, record.as_deref()) {
        bus.subscribe(Box::new(recorder));
    }
    let (runner, limits) = session.runner(keys, &bus, waves.as_ref())?;
    let mut gate = runner.gate();
    let window = if waves.is_some() {
        dataset::batch_window()
    } else {
        dataset::window(session.settings.concurrency)
    };
    let (record, fatal) = runtime.block_on(async {
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
        dataset::execute(
            &dataset,
            runner,
            limits,
            window,
            &settings,
            gate.as_mut(),
            &bus,
            cancel,
        )
        .await
    });
    if let Some(e) = bus.finish()
        && e.kind() != std::io::ErrorKind::BrokenPipe
    {
        return Err(Error::new(
            Exit::AgentFailed,
            format!("cannot write the results: {e}"),
        ));
    }
    if let Some(e) = fatal {
        return Err(refused(e));
    }
    if let Some(waves) = &waves {
        if let Some(exit) =
            super::close_batches(waves, session, &record.run_id, "rows", global.quiet)
        {
            return Ok(exit);
        }
        if args.detach && !global.quiet {
            // Its rows were not told: they were to be the collecting run's.
            eprintln!(
                "nothing was left to submit: every row ended without a batch (answered from the cache, called directly, or failed); run the same command without `--detach` to see the rows"
            );
        }
    }
    if record.rows.total == 0 && dataset.source.path.is_none() {
        return Err(Error::usage("no rows came on stdin").hint(
            "`--each -` reads JSON Lines from stdin: pipe one JSON object a line into byok-flow",
        ));
    }
    Ok(match record.status {
        RunStatus::Succeeded => Exit::Success,
        // A key that could not be read or sent says more than "an agent failed".
        RunStatus::Failed if record.key_failure => Exit::Keys,
        RunStatus::Failed => Exit::AgentFailed,
        RunStatus::Interrupted => Exit::Interrupted,
        RunStatus::BudgetReached => Exit::Budget,
    })
}

/// Every row of `dataset` estimated, what the cache holds left out.
fn estimate_rows(session: &Session, dataset: &Dataset) -> Result<RowsEstimate> {
    let estimator = Estimator::new(
        &session.checked,
        &session.pricing(),
        session.max_usd(),
        Counting::Exact,
    );
    rows_estimate(session, dataset, &estimator)
}

/// Every row of `dataset` estimated by `estimator`, what the cache holds left out.
fn rows_estimate(
    session: &Session,
    dataset: &Dataset,
    estimator: &Estimator<'_>,
) -> Result<RowsEstimate> {
    let cached = match &session.settings.cache {
        Some(_) => runner::prepare_offline(session.checked.clone(), &session.settings).ok(),
        None => None,
    };
    let names: Vec<(String, String)> = session
        .checked
        .workflow
        .agents
        .iter()
        .map(|(n, a)| (n.clone(), a.model.clone()))
        .collect();
    dataset::estimate::estimate(dataset, estimator, cached.as_ref(), &names).map_err(refused)
}

/// The estimate on stdout: a table, or JSON with `--json`.
fn print(estimate: &RowsEstimate, dataset: &Dataset, json: bool) -> Result<()> {
    let text = if json {
        let mut text = serde_json::to_string_pretty(estimate).map_err(|e| {
            Error::new(Exit::AgentFailed, format!("cannot write the estimate: {e}"))
        })?;
        text.push('\n');
        text
    } else {
        rows::estimate::render(estimate, &dataset.source.name())
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

/// The outputs of a dataset run.
fn subscribe(bus: &Bus, args: &Args, global: Global) -> Result<()> {
    if let Some(github) = global.github {
        for subscriber in github::rows_subscribers(github, &args.file) {
            bus.subscribe(subscriber);
        }
    }
    if !global.quiet {
        if global.terminal && global.github.is_none() {
            bus.subscribe(Box::new(progress::Live::default()));
        } else {
            bus.subscribe(Box::new(progress::Plain::default()));
        }
        bus.subscribe(Box::new(table::ClosingTable));
    }
    if let Some(file) = &args.report {
        super::run::report_folder(file)?;
        let name = match &args.out {
            Some(dir) => dir.join("results.jsonl").display().to_string(),
            None => "stdout (`--out DIR` keeps the rows in DIR/results.jsonl)".to_string(),
        };
        let report = html::rows::RowsReportFile::new(file.clone(), name).map_err(|e| {
            Error::usage(format!(
                "`--report {}`: cannot write in its folder: {e}",
                file.display()
            ))
        })?;
        bus.subscribe(Box::new(report));
    }
    if let Some(dir) = &args.out {
        let out = rows::OutDir::new(dir)
            .map_err(|e| Error::usage(format!("cannot write to `{}`: {e}", dir.display())))?;
        bus.subscribe(Box::new(out));
    }
    bus.subscribe(Box::new(rows::Results { json: args.json }));
    Ok(())
}

/// A rows file refused before any call (exit 2).
fn refused(e: FileError) -> Error {
    Error::usage(e.message).hint(e.hint)
}
