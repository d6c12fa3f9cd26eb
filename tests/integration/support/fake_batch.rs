//! The fake server's batch APIs: Anthropic's Message Batches, `OpenAI`'s Files +
//! Batch, Gemini's inline `batchGenerateContent`. A batch ends a configurable
//! delay after it is created; each request's result is made when the batch is
//! created (and billed then, once), with the faults scripted for its body: a
//! `Fault::Status` makes it an errored result, `Fault::Expired` an expired one,
//! `Fault::NoResult` leaves it out, `Fault::EchoKey` makes it an error quoting the
//! key, and a `Fault::Reply` text has `{KEY}` replaced by the key. Results come back in reverse order, and
//! knobs add a result nobody asked for, point Anthropic's `results_url` at
//! another host, refuse the creation, fail a batch whole, or stall a phase.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use axum::response::Response;
use serde_json::{Value, json};

use super::{Api, Bill, Fault, Shared, check_auth, error, json_response, raw};

/// One request's result: the reply body, or the error's (kind, message).
pub type ItemResult = Result<Value, (String, String)>;

/// One batch at the fake.
#[derive(Debug, Clone)]
pub struct FakeBatch {
    pub id: String,
    pub api: Api,
    pub created: Instant,
    /// (`custom_id`, result), in the order submitted; `None` for a request left
    /// without a result. Shared: a poll looks a batch up by cloning it, and a
    /// batch of 10,000 results is not copied for each poll.
    pub results: Arc<Vec<(String, Option<ItemResult>)>>,
    pub cancelled: bool,
    /// The input file it was made from (`OpenAI`).
    pub input_file: Option<String>,
    /// The model its requests are for.
    pub model: String,
}

/// The knobs of the batch APIs.
#[derive(Debug, Default, Clone)]
pub struct BatchKnobs {
    /// How long a batch takes.
    pub delay: Duration,
    /// Add a result with a `custom_id` that was never sent.
    pub stray_result: bool,
    /// Anthropic's `results_url` on this base (`http://127.0.0.2:PORT`) instead of the server's own.
    pub results_base: Option<String>,
    /// Refuse the creation of batches with this status and error kind.
    pub refuse_create: Option<(u16, String)>,
    /// Refuse the creation with a 401 whose message quotes the key sent.
    pub echo_key_on_create: bool,
    /// Batches end as failed, whole, with this message.
    pub fail_batch: Option<String>,
    /// Make the next this many batches, then lose the reply to their create (the
    /// connection drops after the head): made, and billed, but unknown to the client.
    pub lose_created: usize,
    /// Phases (`upload`, `create`, `poll`, `results`) whose next request waits this long
    /// first (a stalled `create` then fails without making its batch).
    pub stall: Vec<(String, Duration)>,
}

#[derive(Default)]
pub struct Batches {
    pub list: Mutex<Vec<FakeBatch>>,
    pub files: Mutex<HashMap<String, String>>,
    /// Every file ever uploaded, deleted ones too.
    pub uploaded: Mutex<HashMap<String, String>>,
    pub knobs: Mutex<BatchKnobs>,
    /// What happened, in order: `upload file-1`, `create msgbatch_1`, `poll …`, `results …`,
    /// `cancel …`, `delete file-1`.
    pub log: Mutex<Vec<String>>,
    pub seq: Mutex<u64>,
    /// `http://IP:PORT` of the server itself.
    pub base: Mutex<String>,
}

impl super::FakeServer {
    pub fn set_batch_knobs(&self, knobs: BatchKnobs) {
        *self.shared.batches.knobs.lock().unwrap() = knobs;
    }

    /// The batch APIs' log: one line per upload, create, poll, results, cancel, delete.
    pub fn batch_log(&self) -> Vec<String> {
        self.shared.batches.log.lock().unwrap().clone()
    }

    /// How many log lines start with `what` (`create`, `upload`, …).
    pub fn batch_count(&self, what: &str) -> usize {
        self.batch_log()
            .iter()
            .filter(|l| l.split(' ').next() == Some(what))
            .count()
    }

    /// The batch `id` as a poll shows it now.
    pub fn batch_view(&self, id: &str) -> Value {
        let batch = find(&self.shared, &format!("/{id}")).expect("a batch of that id");
        let knobs = self.shared.batches.knobs.lock().unwrap().clone();
        view(&self.shared, &batch, &knobs)
    }

    /// The uploaded input file `id`'s lines.
    pub fn batch_file(&self, id: &str) -> Vec<Value> {
        self.shared
            .batches
            .uploaded
            .lock()
            .unwrap()
            .get(id)
            .map_or_else(Vec::new, |text| {
                text.lines()
                    .filter_map(|l| serde_json::from_str(l).ok())
                    .collect()
            })
    }

    pub fn batches(&self) -> Vec<FakeBatch> {
        self.shared.batches.list.lock().unwrap().clone()
    }
}

fn log(shared: &Shared, line: String) {
    shared.batches.log.lock().unwrap().push(line);
}

fn next_id(shared: &Shared) -> u64 {
    let mut seq = shared.batches.seq.lock().unwrap();
    *seq += 1;
    *seq
}

/// Waits first if the phase is stalled (once).
async fn stall(shared: &Shared, phase: &str) {
    let wait = {
        let mut knobs = shared.batches.knobs.lock().unwrap();
        let found = knobs.stall.iter().position(|(p, _)| p == phase);
        found.map(|i| knobs.stall.remove(i).1)
    };
    if let Some(wait) = wait {
        tokio::time::sleep(wait).await;
    }
}

/// Waits if `create` is stalled, and says so.
async fn stall_create(shared: &Shared) -> bool {
    let stalled = shared
        .batches
        .knobs
        .lock()
        .unwrap()
        .stall
        .iter()
        .any(|(p, _)| p == "create");
    stall(shared, "create").await;
    stalled
}

/// The batch routes; `None` for any other request.
pub(super) async fn route(
    shared: &Shared,
    method: &str,
    path: &str,
    headers: &HeaderMap,
    bytes: &[u8],
) -> Option<Response> {
    let body: Value = serde_json::from_slice(bytes).unwrap_or(Value::Null);
    let api = if path.contains("/messages/batches") {
        Api::Anthropic
    } else if path.contains(":batchGenerateContent") || path.contains("/v1beta/batches") {
        Api::Gemini
    } else if path.ends_with("/files")
        || path.contains("/files/")
        || path.ends_with("/batches")
        || path.contains("/batches/")
    {
        Api::OpenAi
    } else {
        return None;
    };
    if let Some(refused) = check_auth(api, headers) {
        return Some(refused);
    }
    Some(match (api, method) {
        (Api::OpenAi, "POST") if path.ends_with("/files") => upload(shared, bytes).await,
        (Api::OpenAi, "GET") if path.ends_with("/content") => file_content(shared, path),
        (Api::OpenAi, "DELETE") if path.contains("/files/") => {
            let id = path.rsplit('/').next().unwrap_or_default();
            log(shared, format!("delete {id}"));
            shared.batches.files.lock().unwrap().remove(id);
            json_response(
                200,
                &json!({"id": id, "object": "file", "deleted": true}),
                &[],
            )
        }
        (_, "POST") if path.ends_with("/cancel") || path.ends_with(":cancel") => {
            cancel(shared, api, path)
        }
        (Api::Anthropic, "GET") if path.ends_with("/results") => results_jsonl(shared, path).await,
        (Api::Anthropic | Api::OpenAi | Api::Gemini, "POST") => {
            create(shared, api, path, &body, &key_of(headers)).await
        }
        (_, "GET") => poll(shared, api, path).await,
        _ => error(api, 404, "not_found_error", "no such batch route"),
    })
}

/// The key a request carried, as sent.
fn key_of(headers: &HeaderMap) -> String {
    ["x-api-key", "x-goog-api-key", "authorization"]
        .iter()
        .find_map(|n| headers.get(*n).and_then(|v| v.to_str().ok()))
        .map(|v| v.strip_prefix("Bearer ").unwrap_or(v).to_string())
        .unwrap_or_default()
}

async fn upload(shared: &Shared, bytes: &[u8]) -> Response {
    stall(shared, "upload").await;
    let text = String::from_utf8_lossy(bytes);
    if !text.contains("name=\"purpose\"\r\n\r\nbatch") {
        return error(
            Api::OpenAi,
            400,
            "invalid_request_error",
            "purpose must be batch",
        );
    }
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("{\"custom_id\""))
        .collect();
    let id = format!("file-{}", next_id(shared));
    shared
        .batches
        .files
        .lock()
        .unwrap()
        .insert(id.clone(), lines.join("\n"));
    shared
        .batches
        .uploaded
        .lock()
        .unwrap()
        .insert(id.clone(), lines.join("\n"));
    log(shared, format!("upload {id} {}", lines.len()));
    json_response(
        200,
        &json!({"id": id, "object": "file", "purpose": "batch", "bytes": bytes.len()}),
        &[],
    )
}

/// Each request's result, made now (and billed now).
fn result_of(shared: &Shared, api: Api, body: &Value, key: &str) -> Option<ItemResult> {
    let fault = {
        let mut scripts = shared.scripts.lock().unwrap();
        // The body as text only when a fault is scripted for some body.
        let text = if scripts.is_empty() {
            String::new()
        } else {
            body.to_string()
        };
        scripts
            .iter_mut()
            .find(|(m, _)| text.contains(m.as_str()))
            .and_then(|(_, faults)| faults.pop_front())
    };
    match fault {
        Some(Fault::Status { kind, .. }) => {
            return Some(Err((kind.to_string(), format!("fake {kind}"))));
        }
        Some(Fault::Expired) => return Some(Err(("expired".into(), String::new()))),
        Some(Fault::NoResult) => return None,
        Some(Fault::EchoKey(_)) => {
            return Some(Err((
                "invalid_request_error".into(),
                format!("Incorrect API key provided: {key}"),
            )));
        }
        _ => {}
    }
    let json = super::wanted_json(api, body);
    let reply_text = match &fault {
        Some(Fault::Reply(t)) => t.replace("{KEY}", key),
        _ => json
            .as_ref()
            .map_or_else(|| super::reply_text(api, body), Value::to_string),
    };
    let billing = *shared.billing.lock().unwrap();
    let input = billing.input_percent.map_or_else(
        || super::input_tokens(body),
        |p| (super::counted_input(api, body) * p).div_ceil(100),
    );
    let output = match super::max_tokens_of(body) {
        Some(max) if billing.output_at_max => max,
        _ => (reply_text.len() as u64).div_ceil(4),
    };
    shared.billed.lock().unwrap().push((
        super::model_of(body),
        Bill {
            input,
            output,
            cache_read: 0,
            cache_write: 0,
            cache_write_1h: 0,
            searches: 0,
            fetches: 0,
        },
    ));
    match fault {
        // Billed, and its result is not a reply byok-flow can read.
        Some(Fault::Malformed) => Some(Ok(json!("{\"id\": \"broken\", \"content\": ["))),
        // Billed, and its line of the results is cut off (not JSON).
        Some(Fault::TruncateStream) => Some(Ok(json!(TRUNCATED))),
        _ => Some(Ok(super::whole(
            api,
            body,
            &reply_text,
            json.as_ref(),
            (input, output, 0, 0),
        ))),
    }
}

/// A result written as a line cut off before its end.
const TRUNCATED: &str = "truncated line";

async fn create(shared: &Shared, api: Api, path: &str, body: &Value, key: &str) -> Response {
    // A stalled create never makes its batch: the answer is lost, like a dropped connection.
    if stall_create(shared).await {
        return error(api, 503, "api_error", "fake: the create was lost");
    }
    let knobs = shared.batches.knobs.lock().unwrap().clone();
    if knobs.echo_key_on_create {
        return error(
            api,
            401,
            "authentication_error",
            &format!("invalid key {key}"),
        );
    }
    if let Some((code, kind)) = &knobs.refuse_create {
        log(shared, "refused".into());
        return error(api, *code, kind, &format!("fake {kind}: batch refused"));
    }
    let (requests, input_file): (Vec<(String, Value)>, Option<String>) = match api {
        Api::Anthropic => (
            body["requests"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|r| {
                    (
                        r["custom_id"].as_str().unwrap_or_default().to_string(),
                        r["params"].clone(),
                    )
                })
                .collect(),
            None,
        ),
        Api::OpenAi => {
            if body["completion_window"] != "24h" || body["endpoint"] != "/v1/chat/completions" {
                return error(
                    api,
                    400,
                    "invalid_request_error",
                    "bad completion_window or endpoint",
                );
            }
            let file = body["input_file_id"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let Some(content) = shared.batches.files.lock().unwrap().get(&file).cloned() else {
                return error(api, 404, "not_found_error", "no such file");
            };
            (
                content
                    .lines()
                    .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                    .map(|l| {
                        (
                            l["custom_id"].as_str().unwrap_or_default().to_string(),
                            l["body"].clone(),
                        )
                    })
                    .collect(),
                Some(file),
            )
        }
        Api::Gemini => {
            let model = path
                .rsplit('/')
                .next()
                .and_then(|m| m.split(':').next())
                .unwrap_or_default()
                .to_string();
            (
                body.pointer("/batch/inputConfig/requests/requests")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .map(|r| {
                        let mut request = r["request"].clone();
                        request["model"] = json!(model);
                        (
                            r.pointer("/metadata/key")
                                .and_then(Value::as_str)
                                .unwrap_or_default()
                                .to_string(),
                            request,
                        )
                    })
                    .collect(),
                None,
            )
        }
    };
    let n = next_id(shared);
    let id = match api {
        Api::Anthropic => format!("msgbatch_{n:04}"),
        Api::OpenAi => format!("batch_{n:04}"),
        Api::Gemini => format!("batches/{n:04}"),
    };
    let results = requests
        .iter()
        .map(|(custom_id, body)| (custom_id.clone(), result_of(shared, api, body, key)))
        .collect::<Vec<_>>()
        .into();
    let model = requests
        .first()
        .and_then(|(_, b)| b["model"].as_str())
        .unwrap_or_default()
        .to_string();
    let batch = FakeBatch {
        model,
        id: id.clone(),
        api,
        created: Instant::now(),
        results,
        cancelled: false,
        input_file,
    };
    log(shared, format!("create {id} {}", requests.len()));
    let view = view(shared, &batch, &knobs);
    shared.batches.list.lock().unwrap().push(batch);
    {
        let mut knobs = shared.batches.knobs.lock().unwrap();
        if knobs.lose_created > 0 {
            knobs.lose_created -= 1;
            let dropped = futures_util::stream::iter([Err::<axum::body::Bytes, _>(
                std::io::Error::other("connection dropped"),
            )]);
            return Response::builder()
                .status(200)
                .header("content-type", "application/json")
                .body(axum::body::Body::from_stream(dropped))
                .unwrap();
        }
    }
    json_response(200, &view, &[])
}

fn find(shared: &Shared, path: &str) -> Option<FakeBatch> {
    let batches = shared.batches.list.lock().unwrap();
    batches
        .iter()
        .find(|b| {
            path.ends_with(&b.id)
                || path.contains(&format!("{}/", b.id))
                || path.contains(&format!("{}:", b.id))
        })
        .cloned()
}

fn ended(batch: &FakeBatch, knobs: &BatchKnobs) -> bool {
    batch.cancelled || batch.created.elapsed() >= knobs.delay
}

/// The results of an ended batch, in reverse order, with a stray one if asked;
/// borrowed, not copied (a batch holds 10,000 in the batch benchmark).
fn results<'a>(batch: &'a FakeBatch, knobs: &BatchKnobs) -> Vec<(&'a str, Cow<'a, ItemResult>)> {
    let mut out: Vec<_> = batch
        .results
        .iter()
        .rev()
        .filter_map(|(id, r)| {
            let r = if batch.cancelled {
                Cow::Owned(Err(("canceled".to_string(), String::new())))
            } else {
                Cow::Borrowed(r.as_ref()?)
            };
            Some((id.as_str(), r))
        })
        .collect();
    if knobs.stray_result {
        let stray = batch.results.iter().find_map(|(_, r)| r.clone()?.ok());
        if let Some(stray) = stray {
            out.push(("never-sent-1", Cow::Owned(Ok(stray))));
        }
    }
    out
}

/// The batch as a poll (or the create) shows it.
fn view(shared: &Shared, batch: &FakeBatch, knobs: &BatchKnobs) -> Value {
    let done = ended(batch, knobs);
    let total = batch.results.len() as u64;
    let failed = batch
        .results
        .iter()
        .filter(|(_, r)| !matches!(r, Some(Ok(_))))
        .count() as u64;
    let succeeded = if done { total - failed } else { 0 };
    let failed = if done { failed } else { 0 };
    let id = &batch.id;
    match batch.api {
        Api::Anthropic => {
            let base = knobs
                .results_base
                .clone()
                .unwrap_or_else(|| shared_addr(shared));
            json!({
                "id": id, "type": "message_batch",
                "processing_status": if done { "ended" } else if batch.cancelled { "canceling" } else { "in_progress" },
                "request_counts": {"processing": total - succeeded - failed, "succeeded": succeeded, "errored": failed, "canceled": 0, "expired": 0},
                "results_url": if done { json!(format!("{base}/v1/messages/batches/{id}/results")) } else { Value::Null },
                "created_at": "2026-01-01T00:00:00Z", "expires_at": "2026-01-02T00:00:00Z",
                "ended_at": if done { json!("2026-01-01T00:10:00Z") } else { Value::Null },
                "archived_at": null,
                "cancel_initiated_at": if batch.cancelled { json!("2026-01-01T00:05:00Z") } else { Value::Null },
            })
        }
        Api::OpenAi => {
            let status = match (&knobs.fail_batch, done, batch.cancelled) {
                (Some(_), true, _) => "failed",
                (_, true, true) => "cancelled",
                (_, true, false) => "completed",
                _ => "in_progress",
            };
            let (output, errors) = if done && knobs.fail_batch.is_none() {
                (json!(format!("out-{id}")), json!(format!("err-{id}")))
            } else {
                (Value::Null, Value::Null)
            };
            let errors_list = knobs.fail_batch.as_ref().map_or(
                Value::Null,
                |m| json!({"object": "list", "data": [{"code": "invalid_request", "message": m}]}),
            );
            let mut view = json!({
                "id": id, "object": "batch", "endpoint": "/v1/chat/completions",
                "input_file_id": batch.input_file, "completion_window": "24h", "status": status,
                "output_file_id": output, "error_file_id": errors,
                "request_counts": {"total": total, "completed": succeeded, "failed": failed},
                "created_at": 1_767_225_600u64,
            });
            if !errors_list.is_null() {
                view["errors"] = errors_list;
            }
            view
        }
        Api::Gemini => {
            let state = match (&knobs.fail_batch, done, batch.cancelled) {
                (Some(_), true, _) => "BATCH_STATE_FAILED",
                (_, true, true) => "BATCH_STATE_CANCELLED",
                (_, true, false) => "BATCH_STATE_SUCCEEDED",
                _ => "BATCH_STATE_RUNNING",
            };
            let meta = json!({
                "@type": "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatch",
                "name": id, "state": state,
                "batchStats": {"requestCount": total.to_string(), "successfulRequestCount": succeeded.to_string(), "failedRequestCount": failed.to_string()},
            });
            let mut op = json!({"name": id, "metadata": meta, "done": done});
            if done {
                if let Some(m) = &knobs.fail_batch {
                    op["error"] = json!({"code": 400, "message": m});
                } else {
                    let responses: Vec<Value> = results(batch, knobs)
                        .into_iter()
                        .map(|(key, r)| match &*r {
                            Ok(response) => json!({"response": response, "metadata": {"key": key}}),
                            Err((kind, message)) => json!({"error": {"code": 500, "status": kind, "message": message}, "metadata": {"key": key}}),
                        })
                        .collect();
                    op["response"] = json!({
                        "@type": "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatch",
                        "name": id, "state": state, "displayName": "byok-flow",
                        "model": format!("models/{}", batch.model),
                        "inputConfig": {"requests": {"requests": []}},
                        "output": {"inlinedResponses": {"inlinedResponses": responses}},
                    });
                }
            }
            op
        }
    }
}

fn shared_addr(shared: &Shared) -> String {
    shared.batches.base.lock().unwrap().clone()
}

async fn poll(shared: &Shared, api: Api, path: &str) -> Response {
    let Some(batch) = find(shared, path) else {
        return error(api, 404, "not_found_error", "no such batch");
    };
    stall(shared, "poll").await;
    log(shared, format!("poll {}", batch.id));
    let knobs = shared.batches.knobs.lock().unwrap().clone();
    json_response(200, &view(shared, &batch, &knobs), &[])
}

async fn results_jsonl(shared: &Shared, path: &str) -> Response {
    let Some(batch) = find(shared, path) else {
        return error(Api::Anthropic, 404, "not_found_error", "no such batch");
    };
    stall(shared, "results").await;
    log(shared, format!("results {}", batch.id));
    let knobs = shared.batches.knobs.lock().unwrap().clone();
    let lines: Vec<String> = results(&batch, &knobs)
        .into_iter()
        .map(|(id, r)| {
            let result = match &*r {
                // Written out, not copied into a new tree.
                Ok(message) if message == TRUNCATED => {
                    return format!("{{\"custom_id\":{},\"result\":{{\"type\":\"succ", Value::from(id));
                }
                Ok(message) => {
                    let id = Value::from(id);
                    return format!(
                        "{{\"custom_id\":{id},\"result\":{{\"type\":\"succeeded\",\"message\":{message}}}}}"
                    );
                }
                Err((kind, _)) if kind == "expired" || kind == "canceled" => json!({"type": kind}),
                Err((kind, message)) => json!({"type": "errored", "error": {"type": "error", "error": {"type": kind, "message": message}}}),
            };
            json!({"custom_id": id, "result": result}).to_string()
        })
        .collect();
    raw(200, "application/binary", &(lines.join("\n") + "\n"), &[])
}

fn file_content(shared: &Shared, path: &str) -> Response {
    let id = path
        .trim_end_matches("/content")
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_string();
    let batch_id = id
        .strip_prefix("out-")
        .or_else(|| id.strip_prefix("err-"))
        .map(str::to_string);
    let Some(batch) = batch_id.and_then(|b| find(shared, &format!("/{b}"))) else {
        return match shared.batches.files.lock().unwrap().get(&id) {
            Some(content) => raw(200, "application/jsonl", content, &[]),
            None => error(Api::OpenAi, 404, "not_found_error", "no such file"),
        };
    };
    log(shared, format!("results {id}"));
    let knobs = shared.batches.knobs.lock().unwrap().clone();
    let want_errors = id.starts_with("err-");
    let lines: Vec<String> = results(&batch, &knobs)
        .into_iter()
        .filter(|(_, r)| r.is_err() == want_errors)
        .map(|(custom_id, r)| match &*r {
            // Written out, not copied into a new tree.
            Ok(body) if body == TRUNCATED => {
                return format!("{{\"id\":\"batch_req_x\",\"custom_id\":{},\"response\":{{\"status_co", Value::from(custom_id));
            }
            Ok(body) => {
                let custom_id = Value::from(custom_id);
                return format!(
                    "{{\"id\":\"batch_req_x\",\"custom_id\":{custom_id},\"response\":{{\"status_code\":200,\"request_id\":\"req_x\",\"body\":{body}}},\"error\":null}}"
                );
            }
            Err((kind, _)) if kind == "expired" => json!({"id": "batch_req_x", "custom_id": custom_id, "response": null, "error": {"code": "batch_expired", "message": "This request could not be executed before the completion window expired."}}),
            Err((kind, message)) => {
                let code = match kind.as_str() {
                    "invalid_request_error" => 400,
                    "rate_limit_error" => 429,
                    _ => 500,
                };
                json!({"id": "batch_req_x", "custom_id": custom_id, "response": {"status_code": code, "request_id": "req_x", "body": {"error": {"type": kind, "message": message}}}, "error": null})
            }
        }.to_string())
        .collect();
    raw(200, "application/jsonl", &(lines.join("\n") + "\n"), &[])
}

fn cancel(shared: &Shared, api: Api, path: &str) -> Response {
    let id = {
        let mut batches = shared.batches.list.lock().unwrap();
        let Some(batch) = batches.iter_mut().find(|b| path.contains(&b.id)) else {
            return error(api, 404, "not_found_error", "no such batch");
        };
        batch.cancelled = true;
        batch.id.clone()
    };
    log(shared, format!("cancel {id}"));
    json_response(200, &json!({"id": id, "name": id}), &[])
}
