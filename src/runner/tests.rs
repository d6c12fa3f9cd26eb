//! What an agent's call keeps while it waits: a batch run has one waiting call
//! per request of a wave (tens of thousands), each for as long as its batch takes.

use std::path::Path;
use std::sync::Arc;

use indexmap::IndexMap;
use serde_json::json;

use super::{RunSettings, prepare_with};
use crate::cost::prices::PriceTable;
use crate::events::Bus;
use crate::providers::{AttemptError, BoxFuture, Provider, Reply, Request};
use crate::scheduler::{Runner, Task};
use crate::workflow::{load, validate};

/// A provider whose attempts never end, as a batched call waits on its batch.
struct Waits;

impl Provider for Waits {
    fn attempt<'a>(&'a self, _: &'a Arc<Request>) -> BoxFuture<'a, Result<Reply, AttemptError>> {
        Box::pin(std::future::pending())
    }
}

#[test]
fn a_waiting_agent_keeps_little() {
    let yaml = "version: 1\ninputs:\n  ticket: {required: true}\nagents:\n  triage:\n    model: anthropic/claude-sonnet-4-5\n    prompt: \"Triage {{inputs.ticket}}\"\n    max_tokens: 256\n    fallback: [openai/gpt-4o]\n";
    let (loaded, report) = load::load_source(Path::new("test.yaml"), Arc::from(yaml))
        .unwrap_or_else(|r| panic!("{}", r.render(false)));
    let checked = validate::check(loaded, report)
        .unwrap_or_else(|r| panic!("{}", r.render(false)))
        .0;
    let settings = RunSettings {
        file: "test.yaml".into(),
        inputs: IndexMap::new(),
        mock: false,
        concurrency: 1,
        keep_going: true,
        prices: Arc::new(PriceTable::builtin()),
        max_usd: Some(10.0),
        cache: None,
        refresh: Vec::new(),
        estimate: None,
        run_id: None,
        busy: None,
    };
    let provider: Arc<dyn Provider> = Arc::new(Waits);
    let connect = move |_: &crate::workflow::providers::ProviderInfo| Ok(provider.clone());
    let (runner, _) =
        prepare_with(Arc::new(checked), &settings, &connect, &Bus::default()).unwrap();
    let runner = Arc::new(runner.for_rows(None));
    let task = Task::agent(0, 0);
    let prepared = runner
        .prepare(&json!({"ticket": "T-1"}), task, None, &[])
        .unwrap();
    let call = runner.run(task, prepared);
    let size = std::mem::size_of_val(&*call);
    eprintln!("agent future: {size} bytes");
    assert!(size <= 900, "a waiting agent's future is {size} bytes");
}
