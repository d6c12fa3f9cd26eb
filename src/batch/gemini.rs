//! Gemini's Batch Mode with inline requests: `POST models/{model}:batchGenerateContent`
//! with each request and its `custom_id` in `metadata.key`; the returned
//! operation (`batches/…`) is polled with `GET batches/{id}` and its inline
//! responses read when it is done; `POST batches/{id}:cancel`.

use serde_json::{Value as Json, json};

use super::api::{
    BatchApi, Conn, Counts, Handle, Item, Limits, Outcome, Phase, Status, count, item_error,
    json_list, retryable_kind, server_id,
};
use crate::keys::KeyRef;
use crate::providers::http::{Method, Payload};
use crate::providers::{AttemptError, BoxFuture, Reply, Request};

/// Inline requests: the create request is at most 20 MB.
pub const LIMITS: Limits = Limits {
    requests: 50_000,
    bytes: 20 * 1000 * 1000,
};

pub struct GeminiBatches {
    pub conn: Conn,
    pub limits: Limits,
}

impl BatchApi for GeminiBatches {
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
        model: &'a str,
        items: &'a [Item],
        _file: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Handle, AttemptError>> {
        Box::pin(async move {
            let model = model.strip_prefix("models/").unwrap_or(model);
            let open = format!(
                r#"{{"batch":{{"model":{},"displayName":"byok-flow","inputConfig":{{"requests":{{"requests":["#,
                Json::from(format!("models/{model}"))
            );
            let body = json_list(
                &open,
                items.iter().map(|i| {
                    json!({"request": self.params(&i.request), "metadata": {"key": i.custom_id}})
                }),
                "]}}}}",
            )?;
            let url = self
                .conn
                .url(&format!("/models/{model}:batchGenerateContent"));
            let operation = self
                .conn
                .json(Method::Post, &url, key, Payload::JsonText(body))
                .await?;
            let name = operation["name"]
                .as_str()
                .or_else(|| operation.pointer("/metadata/name").and_then(Json::as_str))
                .unwrap_or_default();
            let name = server_id("gemini batch API: the created batch", Some(name))?;
            if !name.starts_with("batches/") {
                return Err(AttemptError::transient(
                    None,
                    "gemini batch API: the created batch has no `batches/…` name".into(),
                ));
            }
            Ok(Handle {
                id: name,
                file: None,
            })
        })
    }

    fn poll<'a>(
        &'a self,
        key: Option<&'a KeyRef>,
        handle: &'a Handle,
    ) -> BoxFuture<'a, Result<Status, AttemptError>> {
        Box::pin(async move {
            let url = self.conn.url(&format!("/{}", handle.id));
            let operation = self
                .conn
                .json(Method::Get, &url, key, Payload::Empty)
                .await?;
            let batch = operation
                .get("metadata")
                .filter(|m| m.get("state").is_some())
                .or_else(|| operation.get("response"))
                .unwrap_or(&operation);
            let stats = &batch["batchStats"];
            let counts = Counts {
                total: count(stats.get("requestCount")),
                succeeded: count(stats.get("successfulRequestCount")),
                failed: count(stats.get("failedRequestCount")),
            };
            let batch_state = batch["state"].as_str().unwrap_or_default();
            let done = operation["done"].as_bool().unwrap_or(false);
            let phase = match batch_state {
                "BATCH_STATE_FAILED" => Phase::Failed(
                    operation
                        .pointer("/error/message")
                        .and_then(Json::as_str)
                        .unwrap_or("the batch failed")
                        .to_string(),
                ),
                "BATCH_STATE_SUCCEEDED" | "BATCH_STATE_CANCELLED" | "BATCH_STATE_EXPIRED" => {
                    Phase::Ended
                }
                _ if done => Phase::Ended,
                _ => Phase::Running,
            };
            Ok(Status {
                phase,
                counts,
                results: None,
                errors: Some(batch_state.to_string()).filter(|s| s.contains("EXPIRED")),
                inline: Some(operation),
            })
        })
    }

    fn results<'a>(
        &'a self,
        _key: Option<&'a KeyRef>,
        _handle: &'a Handle,
        status: &'a Status,
    ) -> BoxFuture<'a, Result<Vec<(String, Outcome)>, AttemptError>> {
        Box::pin(async move {
            let Some(operation) = &status.inline else {
                return Ok(Vec::new());
            };
            let responses = ["/response/output", "/metadata/output", "/output"]
                .iter()
                .find_map(|p| operation.pointer(p))
                .and_then(|o| o.pointer("/inlinedResponses/inlinedResponses"))
                .and_then(Json::as_array);
            Ok(responses
                .into_iter()
                .flatten()
                .filter_map(|r| {
                    let id = r.pointer("/metadata/key")?.as_str()?.to_string();
                    let outcome = match r.get("error").filter(|e| !e.is_null()) {
                        Some(error) => {
                            let kind = error["status"].as_str().unwrap_or("error");
                            let message = error["message"].as_str().unwrap_or("no message");
                            Outcome::Error(item_error(
                                "gemini",
                                kind,
                                message,
                                retryable_kind(kind),
                            ))
                        }
                        None => Outcome::Body(r["response"].to_string()),
                    };
                    Some((id, outcome))
                })
                .collect())
        })
    }

    fn cancel<'a>(
        &'a self,
        key: Option<&'a KeyRef>,
        handle: &'a Handle,
    ) -> BoxFuture<'a, Result<(), AttemptError>> {
        Box::pin(async move {
            let url = self.conn.url(&format!("/{}:cancel", handle.id));
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
