//! `OpenAI`'s Batch API, through the Files API: the requests uploaded as a JSONL
//! file (`POST /v1/files`, multipart, `purpose=batch`), `POST /v1/batches`
//! (`completion_window: 24h`), `GET /v1/batches/{id}` to poll, the output and
//! error files from `GET /v1/files/{id}/content`, `POST /v1/batches/{id}/cancel`;
//! the uploaded input file is deleted once the results are read.

use serde_json::{Value as Json, json};

use super::api::{
    BatchApi, Conn, Counts, Handle, Item, Limits, Outcome, Phase, Status, count, item_error,
    read_lines, retryable_kind, server_id,
};
use crate::keys::KeyRef;
use crate::providers::http::{Method, Payload};
use crate::providers::retry;
use crate::providers::{AttemptError, BoxFuture, Reply, Request};

/// 50,000 requests or 200 MB a batch.
pub const LIMITS: Limits = Limits {
    requests: 50_000,
    bytes: 200 * 1000 * 1000,
};

pub struct OpenAiBatches {
    pub conn: Conn,
    pub limits: Limits,
}

/// One line of the input file; its parameters moved in, not copied.
pub fn line(custom_id: &str, params: Json) -> Json {
    let mut line = serde_json::Map::new();
    line.insert("custom_id".into(), custom_id.into());
    line.insert("method".into(), "POST".into());
    line.insert("url".into(), "/v1/chat/completions".into());
    line.insert("body".into(), params);
    Json::Object(line)
}

impl BatchApi for OpenAiBatches {
    fn provider(&self) -> &str {
        &self.conn.provider
    }

    fn limits(&self) -> Limits {
        self.limits
    }

    fn params(&self, request: &Request) -> Json {
        self.conn.wire.body(request, false)
    }

    fn upload<'a>(
        &'a self,
        key: Option<&'a KeyRef>,
        items: &'a [Item],
    ) -> BoxFuture<'a, Result<Option<String>, AttemptError>> {
        Box::pin(async move {
            let mut bytes = Vec::new();
            for item in items {
                let line = line(&item.custom_id, self.params(&item.request));
                serde_json::to_writer(&mut bytes, &line).map_err(|e| {
                    AttemptError::permanent(format!("cannot write the batch file: {e}"), None)
                })?;
                bytes.push(b'\n');
            }
            let fields = [("purpose", "batch".to_string())];
            let payload = Payload::File {
                fields: &fields,
                name: "byok-flow-batch.jsonl",
                bytes,
            };
            let file = self
                .conn
                .json(Method::Post, &self.conn.url("/files"), key, payload)
                .await?;
            server_id("openai files API: the uploaded file", file["id"].as_str()).map(Some)
        })
    }

    fn create<'a>(
        &'a self,
        key: Option<&'a KeyRef>,
        _model: &'a str,
        _items: &'a [Item],
        file: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Handle, AttemptError>> {
        Box::pin(async move {
            let file = file.unwrap_or_default();
            let body = json!({
                "input_file_id": file,
                "endpoint": "/v1/chat/completions",
                "completion_window": "24h",
                "metadata": {"created_by": "byok-flow"},
            });
            let batch = self
                .conn
                .json(
                    Method::Post,
                    &self.conn.url("/batches"),
                    key,
                    Payload::Json(&body),
                )
                .await?;
            let id = server_id("openai batch API: the created batch", batch["id"].as_str())?;
            Ok(Handle {
                id,
                file: Some(file.to_string()),
            })
        })
    }

    fn poll<'a>(
        &'a self,
        key: Option<&'a KeyRef>,
        handle: &'a Handle,
    ) -> BoxFuture<'a, Result<Status, AttemptError>> {
        Box::pin(async move {
            let url = self.conn.url(&format!("/batches/{}", handle.id));
            let batch = self
                .conn
                .json(Method::Get, &url, key, Payload::Empty)
                .await?;
            let counts = &batch["request_counts"];
            let total = count(counts.get("total"));
            let failed = count(counts.get("failed"));
            let counts = Counts {
                total,
                succeeded: count(counts.get("completed")),
                failed,
            };
            let phase = match batch["status"].as_str().unwrap_or_default() {
                "completed" | "expired" | "cancelled" => Phase::Ended,
                "failed" => {
                    let errors: Vec<String> = batch
                        .pointer("/errors/data")
                        .and_then(Json::as_array)
                        .into_iter()
                        .flatten()
                        .take(3)
                        .map(|e| {
                            format!(
                                "{}: {}",
                                e["code"].as_str().unwrap_or("error"),
                                e["message"].as_str().unwrap_or_default()
                            )
                        })
                        .collect();
                    Phase::Failed(if errors.is_empty() {
                        "the batch failed".into()
                    } else {
                        errors.join("; ")
                    })
                }
                _ => Phase::Running,
            };
            Ok(Status {
                phase,
                counts,
                results: file_id(&batch["output_file_id"], "output")?,
                errors: file_id(&batch["error_file_id"], "error")?,
                inline: None,
            })
        })
    }

    fn results<'a>(
        &'a self,
        key: Option<&'a KeyRef>,
        _handle: &'a Handle,
        status: &'a Status,
    ) -> BoxFuture<'a, Result<Vec<(String, Outcome)>, AttemptError>> {
        Box::pin(async move {
            let mut out = Vec::new();
            for file in [&status.results, &status.errors].into_iter().flatten() {
                let url = self.conn.url(&format!("/files/{file}/content"));
                let text = self
                    .conn
                    .call(Method::Get, &url, key, Payload::Empty)
                    .await?;
                out.extend(read_lines(text, |line| {
                    let Ok(value) = serde_json::from_str::<Json>(line) else {
                        tracing::warn!("openai batch results: a line is not JSON");
                        return None;
                    };
                    let id = value["custom_id"].as_str()?;
                    Some((id.to_string(), self.outcome(&value)))
                }));
            }
            Ok(out)
        })
    }

    fn cancel<'a>(
        &'a self,
        key: Option<&'a KeyRef>,
        handle: &'a Handle,
    ) -> BoxFuture<'a, Result<(), AttemptError>> {
        Box::pin(async move {
            let url = self.conn.url(&format!("/batches/{}/cancel", handle.id));
            self.conn
                .call(Method::Post, &url, key, Payload::Empty)
                .await
                .map(|_| ())
        })
    }

    fn clean_up<'a>(&'a self, key: Option<&'a KeyRef>, handle: &'a Handle) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            if let Some(file) = &handle.file {
                let url = self.conn.url(&format!("/files/{file}"));
                if let Err(e) = self
                    .conn
                    .call(Method::Delete, &url, key, Payload::Empty)
                    .await
                {
                    tracing::info!("openai batch: the input file was not deleted: {e}");
                }
            }
        })
    }

    fn parse(&self, request: &Request, body: &str) -> Result<Reply, String> {
        self.conn.wire.parse(request, body)
    }

    fn salvage(&self, body: &str) -> Reply {
        self.conn.salvage(body)
    }
}

impl OpenAiBatches {
    /// One line of an output or error file.
    fn outcome(&self, line: &Json) -> Outcome {
        if let Some(error) = line.get("error").filter(|e| !e.is_null()) {
            let kind = error["code"].as_str().unwrap_or("error");
            let message = error["message"].as_str().unwrap_or("no message");
            let retryable = kind == "batch_expired" || retryable_kind(kind);
            return Outcome::Error(item_error("openai", kind, message, retryable));
        }
        let response = &line["response"];
        let status = response["status_code"]
            .as_u64()
            .and_then(|s| u16::try_from(s).ok())
            .unwrap_or(200);
        if (200..300).contains(&status) {
            return Outcome::Body(response["body"].to_string());
        }
        let api = self.conn.wire.error(status, &response["body"].to_string());
        let retryable = api
            .retryable
            .unwrap_or_else(|| retry::retryable_status(status));
        let mut error = item_error(
            "openai",
            &format!("{status} {}", api.kind.as_deref().unwrap_or("error")),
            &api.message,
            retryable,
        );
        error.status = Some(status);
        Outcome::Error(error)
    }
}

/// A batch's output or error file, when it has one.
fn file_id(value: &Json, which: &str) -> Result<Option<String>, AttemptError> {
    match value {
        Json::Null => Ok(None),
        Json::String(s) if s.is_empty() => Ok(None),
        id => server_id(
            &format!("openai batch API: the batch's {which} file"),
            id.as_str(),
        )
        .map(Some),
    }
}
