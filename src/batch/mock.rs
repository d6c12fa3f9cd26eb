//! The mock's batch API (`--mock --batch`): no network, no keys, $0. A batch ends
//! a set delay after it was submitted (the mock provider's `latency`, measured
//! from the submission time kept in the state, so a resumed run waits only for
//! what is left), and its results are the mock's deterministic replies, so a batch
//! squad's waves, state and resume can be tried in CI for free.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value as Json, json};

use super::api::{BatchApi, Counts, Handle, Item, Limits, Outcome, Phase, Status};
use crate::keys::KeyRef;
use crate::providers::{AttemptError, BoxFuture, Reply, Request, mock};

/// A batch's requests: (`custom_id`, the call's request).
pub type Requests = Vec<(String, Arc<Request>)>;

pub struct MockBatches {
    pub provider: String,
    pub delay: Duration,
    pub limits: Limits,
    /// The requests of each batch this process submitted or was told of, by id.
    pub requests: Mutex<HashMap<String, Requests>>,
}

impl MockBatches {
    pub fn new(provider: &str, delay: Duration, limits: Limits) -> Self {
        MockBatches {
            provider: provider.to_string(),
            delay,
            limits,
            requests: Mutex::default(),
        }
    }

    /// A resumed run hands the mock the requests of a batch it did not submit.
    pub fn remember(&self, id: &str, items: Requests) {
        let mut requests = self
            .requests
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        requests.entry(id.to_string()).or_default().extend(items);
    }
}

fn now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

impl BatchApi for MockBatches {
    fn provider(&self) -> &str {
        &self.provider
    }

    fn limits(&self) -> Limits {
        self.limits
    }

    fn params(&self, request: &Request) -> Json {
        json!({
            "model": request.model,
            "system": request.system,
            "prompt": request.prompt,
            "max_tokens": request.max_tokens,
            "output": request.output,
            "schema": request.schema,
            "correction": request.correction,
        })
    }

    fn create<'a>(
        &'a self,
        _key: Option<&'a KeyRef>,
        _model: &'a str,
        items: &'a [Item],
        _file: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Handle, AttemptError>> {
        Box::pin(async move {
            // The id says when the batch ends, so a resumed process knows too.
            let ends = (now() + self.delay).as_millis();
            let id = format!("mockbatch_{ends}_{}", rand::random::<u32>());
            self.remember(
                &id,
                items
                    .iter()
                    .map(|i| (i.custom_id.clone(), i.request.clone()))
                    .collect(),
            );
            Ok(Handle { id, file: None })
        })
    }

    fn poll<'a>(
        &'a self,
        _key: Option<&'a KeyRef>,
        handle: &'a Handle,
    ) -> BoxFuture<'a, Result<Status, AttemptError>> {
        Box::pin(async move {
            let ends: u128 = handle
                .id
                .split('_')
                .nth(1)
                .and_then(|t| t.parse().ok())
                .unwrap_or(0);
            let total = self
                .requests
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .get(&handle.id)
                .map_or(0, Vec::len) as u64;
            let ended = now().as_millis() >= ends;
            Ok(Status {
                phase: if ended { Phase::Ended } else { Phase::Running },
                counts: Counts {
                    total,
                    succeeded: if ended { total } else { 0 },
                    failed: 0,
                },
                results: None,
                errors: None,
                inline: None,
            })
        })
    }

    fn results<'a>(
        &'a self,
        _key: Option<&'a KeyRef>,
        handle: &'a Handle,
        _status: &'a Status,
    ) -> BoxFuture<'a, Result<Vec<(String, Outcome)>, AttemptError>> {
        Box::pin(async move {
            let requests = self
                .requests
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .get(&handle.id)
                .cloned()
                .unwrap_or_default();
            Ok(requests
                .into_iter()
                .map(|(id, request)| {
                    let outcome = match mock::reply(&request) {
                        Ok(reply) => Outcome::Reply(Box::new(reply)),
                        Err(e) => Outcome::Error(e),
                    };
                    (id, outcome)
                })
                .collect())
        })
    }

    fn cancel<'a>(
        &'a self,
        _key: Option<&'a KeyRef>,
        handle: &'a Handle,
    ) -> BoxFuture<'a, Result<(), AttemptError>> {
        Box::pin(async move {
            self.requests
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .remove(&handle.id);
            Ok(())
        })
    }

    fn adopt(&self, handle: &Handle, custom_id: &str, request: &Request) {
        self.remember(
            &handle.id,
            vec![(custom_id.to_string(), Arc::new(request.clone()))],
        );
    }

    fn parse(&self, _request: &Request, _body: &str) -> Result<Reply, String> {
        Err("the mock answers with replies, not bodies".into())
    }
}
