//! Anthropic's Message Batches: `POST /v1/messages/batches` with every request's
//! `custom_id` and `params`, `GET /v1/messages/batches/{id}` to poll, the results
//! JSONL from `results_url` (fetched only if that host is allowed for the key),
//! `POST /v1/messages/batches/{id}/cancel`.

use serde_json::Value as Json;

use super::api::{
    BatchApi, Conn, Counts, Handle, Item, Limits, Outcome, Phase, Status, count, item_error,
    json_list, read_lines, retryable_kind, server_id,
};
use crate::keys::KeyRef;
use crate::providers::http::{Method, Payload};
use crate::providers::{AttemptError, BoxFuture, Reply, Request};

/// 100,000 requests or 256 MB a batch.
pub const LIMITS: Limits = Limits {
    requests: 100_000,
    bytes: 256 * 1000 * 1000,
};

pub struct AnthropicBatches {
    pub conn: Conn,
    pub limits: Limits,
}

impl BatchApi for AnthropicBatches {
    fn provider(&self) -> &str {
        &self.conn.provider
    }

    fn limits(&self) -> Limits {
        self.limits
    }

    fn params(&self, request: &Request) -> Json {
        self.conn.wire.body(request, false)
    }

    fn create<'a>(
        &'a self,
        key: Option<&'a KeyRef>,
        _model: &'a str,
        items: &'a [Item],
        _file: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Handle, AttemptError>> {
        Box::pin(async move {
            let body = json_list(
                r#"{"requests":["#,
                items.iter().map(|i| {
                    // The parameters moved in, not copied.
                    let mut entry = serde_json::Map::new();
                    entry.insert("custom_id".into(), i.custom_id.as_str().into());
                    entry.insert("params".into(), self.params(&i.request));
                    Json::Object(entry)
                }),
                "]}",
            )?;
            let url = self.conn.url("/v1/messages/batches");
            // A server tool's beta (`web_fetch`) goes on the batch that holds it.
            let default = Request::default();
            let like = items
                .iter()
                .map(|i| &*i.request)
                .find(|r| !r.tools.is_empty())
                .unwrap_or(&default);
            let batch = self
                .conn
                .json_as(Method::Post, &url, key, Payload::JsonText(body), like)
                .await?;
            let id = server_id(
                "anthropic batch API: the created batch",
                batch["id"].as_str(),
            )?;
            Ok(Handle { id, file: None })
        })
    }

    fn poll<'a>(
        &'a self,
        key: Option<&'a KeyRef>,
        handle: &'a Handle,
    ) -> BoxFuture<'a, Result<Status, AttemptError>> {
        Box::pin(async move {
            let url = self
                .conn
                .url(&format!("/v1/messages/batches/{}", handle.id));
            let batch = self
                .conn
                .json(Method::Get, &url, key, Payload::Empty)
                .await?;
            let counts = &batch["request_counts"];
            let failed = ["errored", "canceled", "expired"]
                .iter()
                .map(|k| count(counts.get(*k)))
                .sum();
            let succeeded = count(counts.get("succeeded"));
            let counts = Counts {
                total: succeeded + failed + count(counts.get("processing")),
                succeeded,
                failed,
            };
            let phase = if batch["processing_status"] == "ended" {
                Phase::Ended
            } else {
                Phase::Running
            };
            Ok(Status {
                phase,
                counts,
                results: batch["results_url"].as_str().map(str::to_string),
                errors: None,
                inline: None,
            })
        })
    }

    fn results<'a>(
        &'a self,
        key: Option<&'a KeyRef>,
        handle: &'a Handle,
        status: &'a Status,
    ) -> BoxFuture<'a, Result<Vec<(String, Outcome)>, AttemptError>> {
        Box::pin(async move {
            let url = status.results.clone().unwrap_or_else(|| {
                self.conn
                    .url(&format!("/v1/messages/batches/{}/results", handle.id))
            });
            let text = self
                .conn
                .call(Method::Get, &url, key, Payload::Empty)
                .await?;
            Ok(read_lines(text, |line| {
                let Ok(value) = serde_json::from_str::<Json>(line) else {
                    tracing::warn!("anthropic batch results: a line is not JSON");
                    return None;
                };
                let id = value["custom_id"].as_str()?.to_string();
                Some((id, outcome(&value["result"])))
            }))
        })
    }

    fn cancel<'a>(
        &'a self,
        key: Option<&'a KeyRef>,
        handle: &'a Handle,
    ) -> BoxFuture<'a, Result<(), AttemptError>> {
        Box::pin(async move {
            let url = self
                .conn
                .url(&format!("/v1/messages/batches/{}/cancel", handle.id));
            self.conn
                .call(Method::Post, &url, key, Payload::Empty)
                .await
                .map(|_| ())
        })
    }

    fn parse(&self, request: &Request, body: &str) -> Result<Reply, String> {
        self.conn.wire.parse(request, body)
    }

    fn salvage(&self, body: &str) -> Reply {
        self.conn.salvage(body)
    }
}

/// One result line's `result`.
fn outcome(result: &Json) -> Outcome {
    match result["type"].as_str().unwrap_or_default() {
        "succeeded" => Outcome::Body(result["message"].to_string()),
        "errored" => {
            // `error` is an ErrorResponse: `{"type": "error", "error": {type, message}}`.
            let error = result["error"].get("error").unwrap_or(&result["error"]);
            let kind = error["type"].as_str().unwrap_or("error");
            let message = error["message"].as_str().unwrap_or("no message");
            Outcome::Error(item_error("anthropic", kind, message, retryable_kind(kind)))
        }
        "expired" => Outcome::Error(item_error(
            "anthropic",
            "expired",
            "the request was not processed within 24 hours",
            true,
        )),
        "canceled" => Outcome::Error(item_error(
            "anthropic",
            "canceled",
            "the batch was canceled",
            false,
        )),
        other => Outcome::Error(item_error(
            "anthropic",
            "unknown result",
            &format!("result type `{other}`"),
            true,
        )),
    }
}
