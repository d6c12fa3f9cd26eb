//! A provider reached over HTTP: one attempt of one call, in whatever API the
//! provider speaks, with its failures sorted into retryable and not.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use futures_util::StreamExt;

use super::http::{Body, Http, Post, Timeouts, TransportError};
use super::wire::{StreamFault, Wire, salvage_usage};
use super::{AttemptError, BoxFuture, ErrorKind, Provider, Reply, Request};
use super::{advice, retry};
use crate::keys::{ApiKey, KeyRef, KeyStore, redact};

/// Hands out keys for calls: read once per run, and only for an allowed destination.
pub trait Keys: Send + Sync {
    /// The key `key`, to send to `url` for a call to `provider`.
    fn key_for<'a>(
        &'a self,
        key: &'a KeyRef,
        provider: &'a str,
        url: &'a str,
    ) -> BoxFuture<'a, Result<ApiKey, AttemptError>>;
}

impl Keys for KeyStore {
    fn key_for<'a>(
        &'a self,
        key: &'a KeyRef,
        provider: &'a str,
        url: &'a str,
    ) -> BoxFuture<'a, Result<ApiKey, AttemptError>> {
        Box::pin(async move {
            KeyStore::key_for(self, key, provider, url)
                .await
                .map_err(|e| AttemptError {
                    kind: ErrorKind::Key,
                    hint: e.hint(),
                    ..AttemptError::permanent(e.to_string(), None)
                })
        })
    }
}

/// A provider over HTTP.
pub struct HttpProvider {
    pub name: String,
    pub wire: Box<dyn Wire>,
    pub base_url: String,
    /// Where the keys come from; `None` when this run has no keys (every call keyless).
    pub keys: Option<Arc<dyn Keys>>,
    pub http: Http,
    pub timeouts: Timeouts,
}

impl Provider for HttpProvider {
    fn attempt<'a>(
        &'a self,
        request: &'a std::sync::Arc<Request>,
    ) -> BoxFuture<'a, Result<Reply, AttemptError>> {
        Box::pin(async move {
            let started = Instant::now();
            let mut seen = Seen::default();
            let result = redacted(self.send(request, &mut seen).await);
            seen.log(self, request, started.elapsed(), &result);
            result
        })
    }
}

/// What an attempt's log line says: where it went and what came back, never a
/// header, a key or anything the server wrote.
#[derive(Default)]
struct Seen {
    /// `host[:port]/path`: no query, which could hold a key.
    endpoint: String,
    status: Option<u16>,
    first_byte: Option<Duration>,
    received: Option<Arc<AtomicU64>>,
}

impl Seen {
    fn log(
        &self,
        provider: &HttpProvider,
        request: &Request,
        took: Duration,
        result: &Result<Reply, AttemptError>,
    ) {
        if !tracing::enabled!(tracing::Level::INFO) {
            return;
        }
        let status = self
            .status
            .map_or_else(|| "no response".to_string(), |s| s.to_string());
        let first_byte = self
            .first_byte
            .map_or_else(|| "-".to_string(), |d| format!("{:.3}s", d.as_secs_f64()));
        let bytes = self
            .received
            .as_ref()
            .map_or(0, |r| r.load(std::sync::atomic::Ordering::Relaxed));
        let outcome = match result {
            Ok(_) => "ok",
            Err(e) => match e.kind {
                ErrorKind::Transient => "failed, retryable",
                ErrorKind::Permanent => "failed, not retryable",
                ErrorKind::Key => "failed: its key",
                ErrorKind::Budget => "not sent: the budget",
                ErrorKind::Detached => "left in its batch",
            },
        };
        tracing::info!(
            "attempt: {}/{} POST {}: {status} {outcome} in {:.3}s (first byte {first_byte}, {bytes} bytes)",
            provider.name,
            request.model,
            self.endpoint,
            took.as_secs_f64(),
        );
    }
}

/// Everything a server sent, with every key of the run taken out (SPEC §4): the
/// one door server text comes in by. A reply is a body too: a model or a proxy
/// may quote the key, and the reply goes on into other agents' prompts.
fn redacted(outcome: Result<Reply, AttemptError>) -> Result<Reply, AttemptError> {
    match outcome {
        Ok(mut reply) => {
            redact::in_place(&mut reply.text);
            if let Some(json) = &mut reply.json {
                redact::json(json);
            }
            if let Some(stop) = &mut reply.stop_reason {
                redact::in_place(stop);
            }
            // Sources are server text too: a search result can quote anything.
            for c in &mut reply.citations {
                for text in [&mut c.url, &mut c.title, &mut c.quoted] {
                    redact::in_place(text);
                }
            }
            Ok(reply)
        }
        Err(mut error) => {
            redact::in_place(&mut error.message);
            if let Some(hint) = &mut error.hint {
                redact::in_place(hint);
            }
            Err(error)
        }
    }
}

impl HttpProvider {
    async fn send(&self, request: &Request, seen: &mut Seen) -> Result<Reply, AttemptError> {
        let url = self
            .wire
            .url(&self.base_url, &request.model, request.stream);
        seen.endpoint = super::http::endpoint(&url);
        // The key is read (once per run) and checked against the destination before anything is sent.
        let key = match (&request.key, &self.keys) {
            (None, _) => None,
            (Some(key), Some(keys)) => Some(keys.key_for(key, &self.name, &url).await?),
            (Some(key), None) => {
                return Err(AttemptError {
                    kind: ErrorKind::Key,
                    ..AttemptError::permanent(
                        format!("no keys are available to this run for `{key}`"),
                        None,
                    )
                });
            }
        };
        let body = self.wire.body(request, request.stream);
        // The prompts are the user's own; headers (and so keys) are never logged.
        tracing::trace!("request body to {}: {body}", seen.endpoint);
        let headers = self.wire.headers(request);
        let mut timeouts = self.timeouts;
        if let Some(total) = request.timeout {
            timeouts.first_byte = timeouts.first_byte.min(total);
        }
        let post = Post {
            url: &url,
            headers: &headers,
            auth: self.wire.auth(),
            key: key.as_ref(),
            body: &body,
            stream: request.stream,
            timeouts,
        };
        if !(request.stream && self.wire.announces_tools())
            && let Some(tool) = request.tools.first()
        {
            request.progress.tool(tool.name);
        }
        let response = self.http.post(post).await.map_err(|e| {
            // Once the request is out, a lost reply may still be billed: no head in
            // time, a body that dropped, or one that stalled after its head.
            let sent = matches!(
                e,
                TransportError::FirstByte(_) | TransportError::Idle(_) | TransportError::Body(_)
            );
            if sent {
                AttemptError::cut_off(None, e.to_string(), Reply::default())
            } else {
                AttemptError::transient(None, e.to_string())
            }
        })?;
        seen.status = Some(response.status);
        seen.first_byte = Some(response.first_byte);
        seen.received = Some(response.received.clone());
        if !(200..300).contains(&response.status) {
            let Body::Whole(text) = response.body else {
                unreachable!("error bodies are read whole")
            };
            return Err(self.http_error(response.status, &response.headers, &text, request));
        }
        let status = response.status;
        match response.body {
            Body::Whole(text) => self.wire.parse(request, &text).map_err(|e| {
                // Billed all the same: keep whatever usage it reports.
                let (usage, reported) = salvage_usage(self.wire.as_ref(), &text);
                let received = Reply {
                    usage,
                    reported,
                    ..Reply::default()
                };
                AttemptError::cut_off(Some(status), format!("malformed reply: {e}"), received)
            }),
            Body::Events(mut events) => {
                let mut parser = self.wire.stream(request);
                loop {
                    let message = match events.next().await {
                        None if parser.whole_at_close() => return Ok(parser.reply()),
                        None => "the stream ended before its final event".to_string(),
                        Some(Err(e)) => e.to_string(),
                        Some(Ok(event)) => match parser.event(&event) {
                            Ok(true) => return Ok(parser.reply()),
                            Ok(false) => {
                                request.progress.report(parser.received());
                                continue;
                            }
                            Err(StreamFault::Malformed(e)) => format!("malformed stream: {e}"),
                            Err(StreamFault::Error(e)) => {
                                let kind = if e.retryable == Some(false) {
                                    ErrorKind::Permanent
                                } else {
                                    ErrorKind::Transient
                                };
                                return Err(AttemptError {
                                    kind,
                                    ..AttemptError::cut_off(
                                        Some(status),
                                        match &e.kind {
                                            Some(kind) => {
                                                format!("{kind} (mid-stream): {}", e.message)
                                            }
                                            None => format!("error mid-stream: {}", e.message),
                                        },
                                        parser.reply(),
                                    )
                                });
                            }
                        },
                    };
                    return Err(AttemptError::cut_off(Some(status), message, parser.reply()));
                }
            }
        }
    }

    fn http_error(
        &self,
        status: u16,
        headers: &super::http::Headers,
        body: &str,
        request: &Request,
    ) -> AttemptError {
        let api = self.wire.error(status, body);
        let retryable = api
            .retryable
            .unwrap_or_else(|| retry::retryable_status(status));
        let advice = advice::for_status(
            &advice::Call {
                provider: &self.name,
                model: &request.model,
                key: request.key.as_ref(),
            },
            status,
            &api,
            retryable,
        );
        AttemptError {
            status: Some(status),
            kind: if retryable {
                ErrorKind::Transient
            } else {
                ErrorKind::Permanent
            },
            message: match &api.kind {
                Some(kind) => format!("{} {status} {kind}: {}", self.name, api.message),
                None => format!("{} {status}: {}", self.name, api.message),
            },
            hint: advice.hint,
            retry_after: retry::hint(headers, body),
            cut_off: None,
            unknown_model: advice.unknown_model,
        }
    }
}
