//! A provider reached over HTTP: one attempt of one call, in whatever API the
//! provider speaks, with its failures sorted into retryable and not.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;

use super::http::{Body, Http, Post, Timeouts, TransportError};
use super::retry;
use super::wire::{StreamFault, Wire, salvage_usage};
use super::{AttemptError, BoxFuture, ErrorKind, Provider, Reply, Request};
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
    fn attempt<'a>(&'a self, request: &'a Request) -> BoxFuture<'a, Result<Reply, AttemptError>> {
        Box::pin(async move { redacted(self.send(request).await) })
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
    async fn send(&self, request: &Request) -> Result<Reply, AttemptError> {
        let url = self
            .wire
            .url(&self.base_url, &request.model, request.stream);
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
        let headers = self.wire.headers();
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
        let response = self.http.post(post).await.map_err(|e| {
            // Once the request is out, a lost reply may still be billed.
            let sent = matches!(e, TransportError::FirstByte(_) | TransportError::Body(_));
            if sent {
                AttemptError::cut_off(None, e.to_string(), Reply::default())
            } else {
                AttemptError::transient(None, e.to_string())
            }
        })?;
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
                                        format!("{} (mid-stream): {}", e.kind, e.message),
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
        let key_file = request
            .key
            .as_ref()
            .map_or_else(|| "the key".to_string(), describe_key);
        let key_name = match &request.key {
            Some(KeyRef::File(name)) => name.clone(),
            _ => self.name.clone(),
        };
        let hint = match status {
            401 | 403 => Some(format!("{key_file} was refused by {}; replace it with `byok-flow keys add {key_name} --provider {} --replace`", self.name, self.name)),
            400 if api.message.contains("API key") => Some(format!("{key_file} was refused by {}; replace it with `byok-flow keys add`", self.name)),
            404 => Some(format!("check the model id `{}`: list the models {} serves in its console or API", request.model, self.name)),
            429 if !retryable => Some(format!("{} needs you to act (quota or billing) before it will answer", self.name)),
            429 => Some("still rate-limited after every retry: lower `--concurrency` or the provider's `max_concurrency`".to_string()),
            300..=399 => Some("byok-flow never follows redirects with a key; point `base_url` at the final address".to_string()),
            _ => None,
        };
        AttemptError {
            status: Some(status),
            kind: if retryable {
                ErrorKind::Transient
            } else {
                ErrorKind::Permanent
            },
            message: format!("{} {status} {}: {}", self.name, api.kind, api.message),
            hint,
            retry_after: retry::hint(headers, body),
            cut_off: None,
        }
    }
}

fn describe_key(key: &KeyRef) -> String {
    match key {
        KeyRef::Env(var) => format!("the key in ${var}"),
        KeyRef::File(name) => format!("the key in .byok/keys/{name}.age"),
    }
}

/// The default time-outs, shortened for a call with its own total.
pub fn timeouts_for(total: Option<Duration>) -> Timeouts {
    let mut t = Timeouts::default();
    if let Some(total) = total {
        t.first_byte = t.first_byte.min(total);
        t.idle = t.idle.min(total);
    }
    t
}
