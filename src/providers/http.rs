//! The one module that touches the HTTP client (reqwest over rustls).
//!
//! It sends one JSON request and hands back the status, the headers and the body,
//! either whole or as server-sent events, enforcing the time-outs on the way:
//! connect, first byte (the response head), idle (between body chunks) and total
//! (the caller's). It never follows a redirect, so a key never travels to wherever
//! a response points, and the key header is built here alone and marked sensitive.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use eventsource_stream::Eventsource;
use futures_util::{Stream, StreamExt};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use secrecy::ExposeSecret;

use super::proxy::{self, Proxies};
use crate::keys::ApiKey;
use crate::keys::hosts::is_loopback;

/// How long to wait for each phase of a call.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub connect: Duration,
    /// From sending to the response head.
    pub first_byte: Duration,
    /// Between two chunks of the body (or two stream events).
    pub idle: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(10),
            first_byte: Duration::from_mins(2),
            idle: Duration::from_mins(1),
        }
    }
}

/// Where the key goes in the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// No key is sent.
    None,
    /// `NAME: KEY`, like Anthropic's `x-api-key` or Gemini's `x-goog-api-key`.
    Header(&'static str),
    /// `Authorization: Bearer KEY`.
    Bearer,
}

/// What went wrong below HTTP: nothing came back, or it stopped coming.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransportError {
    Connect(String),
    /// No response head within the first-byte time-out.
    FirstByte(Duration),
    /// No body chunk within the idle time-out.
    Idle(Duration),
    /// The connection dropped or the body could not be read.
    Body(String),
    /// The request could not be built (bad URL or header).
    Request(String),
}

impl std::fmt::Display for TransportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TransportError::Connect(e) => write!(f, "cannot connect: {e}"),
            TransportError::FirstByte(d) => {
                write!(f, "no response within {}", humantime::format_duration(*d))
            }
            TransportError::Idle(d) => write!(
                f,
                "the reply stalled for {}",
                humantime::format_duration(*d)
            ),
            TransportError::Body(e) => write!(f, "the connection dropped mid-reply: {e}"),
            TransportError::Request(e) => write!(f, "cannot build the request: {e}"),
        }
    }
}

/// Response headers, names lower-case.
#[derive(Debug, Clone, Default)]
pub struct Headers(Vec<(String, String)>);

impl Headers {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every header whose name starts with `prefix`.
    pub fn with_prefix<'a>(
        &'a self,
        prefix: &'a str,
    ) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        self.0
            .iter()
            .filter(move |(n, _)| n.starts_with(prefix))
            .map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// Headers from (name, value) pairs, as a test or a fake response would give them.
    pub fn from_pairs(pairs: &[(&str, &str)]) -> Self {
        Headers(
            pairs
                .iter()
                .map(|(n, v)| (n.to_ascii_lowercase(), (*v).to_string()))
                .collect(),
        )
    }

    fn from_map(map: &HeaderMap) -> Self {
        Headers(
            map.iter()
                .filter_map(|(n, v)| {
                    v.to_str()
                        .ok()
                        .map(|v| (n.as_str().to_string(), v.to_string()))
                })
                .collect(),
        )
    }
}

/// One server-sent event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` name, empty when the stream names none.
    pub name: String,
    pub data: String,
}

/// A response's body.
pub enum Body {
    /// The whole body.
    Whole(String),
    /// Events as they arrive; the stream ends when the connection closes.
    Events(Pin<Box<dyn Stream<Item = Result<SseEvent, TransportError>> + Send>>),
}

/// A response: status, headers, body.
pub struct Response {
    pub status: u16,
    pub headers: Headers,
    pub body: Body,
    /// From sending the request to its response head.
    pub first_byte: Duration,
    /// Bytes of the body read so far (all of a whole body; a stream's as it goes).
    pub received: Arc<AtomicU64>,
}

/// One JSON POST.
pub struct Post<'a> {
    pub url: &'a str,
    pub headers: &'a [(&'static str, String)],
    pub auth: Auth,
    pub key: Option<&'a ApiKey>,
    pub body: &'a serde_json::Value,
    /// Read the body as server-sent events (only when the status is a success).
    pub stream: bool,
    pub timeouts: Timeouts,
}

/// The method of a batch API request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    Delete,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Delete => "DELETE",
        }
    }
}

/// What a batch API request carries.
pub enum Payload<'a> {
    Empty,
    Json(&'a serde_json::Value),
    /// A JSON body already written (a batch of many requests, written one by one
    /// rather than built as one tree).
    JsonText(Vec<u8>),
    /// A `multipart/form-data` upload: text fields, and one JSONL file under `file`.
    File {
        fields: &'a [(&'static str, String)],
        name: &'a str,
        bytes: Vec<u8>,
    },
}

/// One request of a batch API, read whole.
pub struct Call<'a> {
    pub method: Method,
    pub url: &'a str,
    pub headers: &'a [(&'static str, String)],
    pub auth: Auth,
    pub key: Option<&'a ApiKey>,
    pub payload: Payload<'a>,
    pub timeouts: Timeouts,
}

/// The headers of a request: the provider's own, and the key (marked sensitive).
fn request_headers(
    extra: &[(&'static str, String)],
    auth: Auth,
    key: Option<&ApiKey>,
) -> Result<HeaderMap, TransportError> {
    let mut headers = HeaderMap::new();
    for (name, value) in extra {
        let value = HeaderValue::from_str(value)
            .map_err(|e| TransportError::Request(format!("header `{name}`: {e}")))?;
        headers.insert(HeaderName::from_static(name), value);
    }
    if let Some(key) = key {
        let (name, value) = match auth {
            Auth::None => return Ok(headers),
            Auth::Header(name) => (
                HeaderName::from_static(name),
                key.expose_secret().to_string(),
            ),
            Auth::Bearer => (
                reqwest::header::AUTHORIZATION,
                format!("Bearer {}", key.expose_secret()),
            ),
        };
        let mut value = HeaderValue::from_str(&value).map_err(|_| {
            TransportError::Request("the API key contains characters a header cannot carry".into())
        })?;
        value.set_sensitive(true);
        headers.insert(name, value);
    }
    Ok(headers)
}

/// An HTTP client shared by every provider of a run.
#[derive(Clone)]
pub struct Http {
    client: reqwest::Client,
    proxies: Proxies,
}

/// The largest body read from an error response.
const MAX_ERROR_BODY: usize = 64 * 1024;
/// The largest whole body accepted.
const MAX_BODY: usize = 64 * 1024 * 1024;

impl Http {
    /// A client that uses the proxies the environment names, under the rules of
    /// [`super::proxy`]: never for a loopback address, and `https://` only through
    /// a `CONNECT` tunnel. `-v` says which proxy is used for what.
    pub fn new(timeouts: Timeouts) -> Result<Self, String> {
        let proxies = Proxies::from_env(|name| std::env::var(name).ok())?;
        for password in proxies.passwords() {
            crate::keys::redact::register_text("proxy-password", &password);
        }
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(timeouts.connect)
            .user_agent(concat!("byok-flow/", env!("CARGO_PKG_VERSION")))
            // No proxy but the one chosen here: reqwest's own choice would send a
            // loopback request, key and all, through `HTTP_PROXY`.
            .no_proxy()
            // `localhost` is loopback by its name (plain http allowed, no proxy),
            // so it must not be whatever the system's resolver makes of it (a
            // broken hosts file, a search domain): it is the loopback addresses.
            // Port 0: the URL's own port (or its scheme's) is used.
            .resolve_to_addrs(
                "localhost",
                &[
                    SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
                    SocketAddr::from((Ipv6Addr::LOCALHOST, 0)),
                ],
            );
        let said = proxies.describe();
        if said.is_empty() {
            tracing::debug!("no proxy: HTTPS_PROXY, HTTP_PROXY and ALL_PROXY are not set");
        }
        for line in said {
            tracing::info!("{line}");
        }
        if proxies.https.is_some() || proxies.http.is_some() {
            // An `http://` proxy URL for an `https://` target is used as a CONNECT
            // tunnel by the client; a plain `http://` target is forwarded.
            let chosen = proxies.clone();
            let proxy = reqwest::Proxy::custom(move |url| chosen.for_target(url).cloned());
            builder = builder.proxy(proxy);
        }
        let client = builder
            .build()
            .map_err(|e| format!("cannot start the HTTP client: {e}"))?;
        Ok(Http { client, proxies })
    }

    /// One request of a batch API (upload, create, poll, download, cancel, delete):
    /// any method, a JSON, file or empty body, the response read whole. The same
    /// rules as [`Http::post`]: no redirect followed, the key only in its header,
    /// never over plain http except to loopback.
    pub async fn send(&self, call: Call<'_>) -> Result<Response, TransportError> {
        let headers = request_headers(call.headers, call.auth, call.key)?;
        self.check_target(call.url, call.key.is_some(), call.method.as_str())?;
        let method = match call.method {
            Method::Get => reqwest::Method::GET,
            Method::Post => reqwest::Method::POST,
            Method::Delete => reqwest::Method::DELETE,
        };
        let mut request = self.client.request(method, call.url).headers(headers);
        request = match call.payload {
            Payload::Empty => request,
            Payload::Json(body) => request.json(body),
            Payload::JsonText(bytes) => request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(bytes),
            Payload::File {
                fields,
                name,
                bytes,
            } => {
                let mut form = reqwest::multipart::Form::new();
                for (field, value) in fields {
                    form = form.text(*field, value.clone());
                }
                let part = reqwest::multipart::Part::bytes(bytes)
                    .file_name(name.to_string())
                    .mime_str("application/jsonl")
                    .map_err(|e| TransportError::Request(e.to_string()))?;
                request.multipart(form.part("file", part))
            }
        };
        let sent = Instant::now();
        let response = match tokio::time::timeout(call.timeouts.first_byte, request.send()).await {
            Err(_) => return Err(TransportError::FirstByte(call.timeouts.first_byte)),
            Ok(Err(e)) => return Err(classify(&e)),
            Ok(Ok(r)) => r,
        };
        let first_byte = sent.elapsed();
        let received = Arc::new(AtomicU64::new(0));
        let status = response.status().as_u16();
        let headers = Headers::from_map(response.headers());
        let success = (200..300).contains(&status);
        let counter = received.clone();
        let chunks = response.bytes_stream().inspect(move |chunk| {
            if let Ok(chunk) = chunk {
                counter.fetch_add(chunk.len() as u64, Ordering::Relaxed);
            }
        });
        let limit = if success { MAX_BODY } else { MAX_ERROR_BODY };
        let body = Body::Whole(read_body(chunks, call.timeouts.idle, limit).await?);
        Ok(Response {
            status,
            headers,
            body,
            first_byte,
            received,
        })
    }

    /// The key never goes over plain http except to loopback; `-v` says where a
    /// request goes and through which proxy.
    fn check_target(&self, url: &str, keyed: bool, method: &str) -> Result<(), TransportError> {
        if let Ok(url) = url::Url::parse(url) {
            if keyed && url.scheme() == "http" && !is_loopback(&url) {
                return Err(TransportError::Request(
                    "a key is never sent over plain http except to a loopback address".into(),
                ));
            }
            let via = self.proxies.for_target(&url).map_or_else(
                || "direct".to_string(),
                |p| format!("through the proxy {}", proxy::shown(p)),
            );
            tracing::debug!(
                "{method} {}{} ({via})",
                url.host_str().unwrap_or_default(),
                url.path()
            );
        }
        Ok(())
    }

    /// Sends the request and waits for the response head.
    pub async fn post(&self, post: Post<'_>) -> Result<Response, TransportError> {
        let mut headers = HeaderMap::new();
        for (name, value) in post.headers {
            let value = HeaderValue::from_str(value)
                .map_err(|e| TransportError::Request(format!("header `{name}`: {e}")))?;
            headers.insert(HeaderName::from_static(name), value);
        }
        if let Some(key) = post.key {
            let (name, value) = match post.auth {
                Auth::None => (None, String::new()),
                Auth::Header(name) => (
                    Some(HeaderName::from_static(name)),
                    key.expose_secret().to_string(),
                ),
                Auth::Bearer => (
                    Some(reqwest::header::AUTHORIZATION),
                    format!("Bearer {}", key.expose_secret()),
                ),
            };
            if let Some(name) = name {
                let mut value = HeaderValue::from_str(&value).map_err(|_| {
                    TransportError::Request(
                        "the API key contains characters a header cannot carry".into(),
                    )
                })?;
                value.set_sensitive(true);
                headers.insert(name, value);
            }
        }
        if let Ok(url) = url::Url::parse(post.url) {
            // The host rule already keeps keys off plain http except to loopback,
            // which is never proxied; this says so again where it matters.
            if post.key.is_some() && url.scheme() == "http" && !is_loopback(&url) {
                return Err(TransportError::Request(
                    "a key is never sent over plain http except to a loopback address".into(),
                ));
            }
            let via = self.proxies.for_target(&url).map_or_else(
                || "direct".to_string(),
                |p| format!("through the proxy {}", proxy::shown(p)),
            );
            // Not the URL whole: a `base_url` may carry user info or a query.
            tracing::debug!("POST {} ({via})", endpoint(post.url));
        }
        let request = self.client.post(post.url).headers(headers).json(post.body);
        let sent = Instant::now();
        let response = match tokio::time::timeout(post.timeouts.first_byte, request.send()).await {
            Err(_) => return Err(TransportError::FirstByte(post.timeouts.first_byte)),
            Ok(Err(e)) => return Err(classify(&e)),
            Ok(Ok(r)) => r,
        };
        let first_byte = sent.elapsed();
        let received = Arc::new(AtomicU64::new(0));
        let status = response.status().as_u16();
        let headers = Headers::from_map(response.headers());
        let success = (200..300).contains(&status);
        let idle = post.timeouts.idle;
        let counter = received.clone();
        let chunks = response.bytes_stream().inspect(move |chunk| {
            if let Ok(chunk) = chunk {
                counter.fetch_add(chunk.len() as u64, Ordering::Relaxed);
            }
        });
        // A server that answers a stream request with JSON (one that ignores
        // `stream`, or a gateway's error with a 200) is read whole.
        let json = headers
            .get("content-type")
            .is_some_and(|t| t.to_ascii_lowercase().contains("json"));
        let body = if success && post.stream && !json {
            let events = chunks.eventsource().map(|e| {
                e.map(|e| SseEvent {
                    name: if e.event == "message" {
                        String::new()
                    } else {
                        e.event
                    },
                    data: e.data,
                })
                .map_err(|e| TransportError::Body(e.to_string()))
            });
            Body::Events(Box::pin(with_idle_timeout(events, idle)))
        } else {
            let limit = if success { MAX_BODY } else { MAX_ERROR_BODY };
            Body::Whole(read_body(chunks, idle, limit).await?)
        };
        Ok(Response {
            status,
            headers,
            body,
            first_byte,
            received,
        })
    }
}

fn classify(e: &reqwest::Error) -> TransportError {
    // reqwest's messages name the URL, never the headers, and a key never goes in a URL.
    let text = e.to_string();
    if e.is_connect() {
        TransportError::Connect(root_cause(e).unwrap_or(text))
    } else if e.is_builder() {
        TransportError::Request(text)
    } else {
        TransportError::Body(source_chain(e).unwrap_or(text))
    }
}

/// The innermost error, which says what actually happened ("Connection refused").
fn root_cause(e: &dyn std::error::Error) -> Option<String> {
    let mut source = e.source()?;
    while let Some(next) = source.source() {
        source = next;
    }
    Some(source.to_string())
}

fn source_chain(e: &dyn std::error::Error) -> Option<String> {
    let mut parts = Vec::new();
    let mut source = e.source();
    while let Some(s) = source {
        parts.push(s.to_string());
        source = s.source();
    }
    (!parts.is_empty()).then(|| parts.join(": "))
}

async fn read_body(
    stream: impl Stream<Item = reqwest::Result<bytes::Bytes>>,
    idle: Duration,
    limit: usize,
) -> Result<String, TransportError> {
    let mut stream = std::pin::pin!(stream);
    let mut body = Vec::new();
    loop {
        match tokio::time::timeout(idle, stream.next()).await {
            Err(_) => return Err(TransportError::Idle(idle)),
            Ok(None) => break,
            Ok(Some(Err(e))) => {
                return Err(TransportError::Body(
                    source_chain(&e).unwrap_or_else(|| e.to_string()),
                ));
            }
            Ok(Some(Ok(chunk))) => {
                body.extend_from_slice(&chunk);
                if body.len() > limit {
                    body.truncate(limit);
                    break;
                }
            }
        }
    }
    // Valid UTF-8 (nearly always) becomes the text without a copy: a batch's
    // results are megabytes, read while every request of the wave waits.
    Ok(String::from_utf8(body)
        .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()))
}

fn with_idle_timeout<S>(
    stream: S,
    idle: Duration,
) -> impl Stream<Item = Result<SseEvent, TransportError>> + Send
where
    S: Stream<Item = Result<SseEvent, TransportError>> + Send + 'static,
{
    futures_util::stream::unfold(
        (Box::pin(stream), false),
        move |(mut stream, done)| async move {
            if done {
                return None;
            }
            match tokio::time::timeout(idle, stream.next()).await {
                Err(_) => Some((Err(TransportError::Idle(idle)), (stream, true))),
                Ok(None) => None,
                Ok(Some(item)) => {
                    let failed = item.is_err();
                    Some((item, (stream, failed)))
                }
            }
        },
    )
}

/// `host[:port]/path` of a URL, without its query (which could hold a token) or
/// anything else: how a request's URL is logged.
pub fn endpoint(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => format!(
            "{}{}{}",
            u.host_str().unwrap_or_default(),
            u.port().map_or_else(String::new, |p| format!(":{p}")),
            u.path()
        ),
        Err(_) => "(not a URL)".into(),
    }
}
