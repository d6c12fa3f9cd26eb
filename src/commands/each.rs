//! `byok-flow run WORKFLOW --each FILE` (and `estimate --each`): the squad once per
//! row (SPEC §8). The work lives in `crate::dataset`; this wires the session, the
//! outputs and the exit code.

use std::path::Path;

use crate::dataset::{self, Dataset, FileError, RowInputs, Source};
use crate::error::{Error, Exit, Result};
use crate::events::Bus;
use crate::record::RunStatus;
use crate::report::github;
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
    let runtime = Session::runtime()?;
    // Every key the squad uses is checked before the first row starts.
    let keys = super::run::keys_or_exit(session, &runtime, &[], global)?;
    let bus = Bus::default();
    subscribe(&bus, args, global)?;
    let workflow = runner::workflow_name(&session.checked, &session.settings.file);
    if let Some(recorder) = session.recorder(&workflow) {
        bus.subscribe(Box::new(recorder));
    }
    let (runner, limits) = session.runner(keys, &bus)?;
    let mut gate = session.gate();
    let (record, fatal) = runtime.block_on(async {
        let cancel = async {
            if tokio::signal::ctrl_c().await.is_err() {
                std::future::pending::<()>().await;
            }
        };
        dataset::execute(
            &dataset,
            runner,
            limits,
            &session.settings,
            gate.as_mut(),
            &bus,
            cancel,
        )
        .await
    });
    if let Some(e) = bus.finish() {
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            return Err(Error::new(
                Exit::AgentFailed,
                format!("cannot write the results: {e}"),
            ));
        }
    }
    if let Some(e) = fatal {
        return Err(refused(e));
    }
    if record.rows.total == 0 && dataset.source.path.is_none() {
        return Err(Error::usage("no rows came on stdin").hint(
            "`--each -` reads JSON Lines from stdin: pipe one JSON object a line into byok-flow",
        ));
    }
    Ok(match record.status {
        RunStatus::Succeeded => Exit::Success,
        RunStatus::Failed => Exit::AgentFailed,
        RunStatus::Interrupted => Exit::Interrupted,
        RunStatus::BudgetReached => Exit::Budget,
    })
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
