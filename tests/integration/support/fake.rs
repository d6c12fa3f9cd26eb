//! A fake model-provider server in the test process. It speaks Anthropic's
//! Messages API, OpenAI's Chat Completions (and so every compatible endpoint) and
//! Gemini's generateContent, as JSON and as SSE, records every request, and
//! injects faults on demand: `server.script("marker", [Fault::Status(429)...])`
//! makes the requests whose body contains "marker" meet those faults in order.
//!
//! It runs the tools the APIs run on their side: a request with Anthropic's
//! `web_search`/`web_fetch`, OpenAI's `web_search_options` or Gemini's
//! `googleSearch` gets a reply that searched (and fetched) once, with its
//! server-tool blocks, citations or grounding metadata, and counts the uses in its
//! usage and its billing log. And it keeps a prompt cache as the providers do:
//! Anthropic's prefix up to the last `cache_control` breakpoint is written the
//! first time and read after; OpenAI's requests with the same `prompt_cache_key`
//! read the prefix they share with the one before (from 1,024 tokens, in steps of
//! 128).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{Value, json};

#[path = "fake_batch.rs"]
pub mod batch;

/// One thing that goes wrong with one request.
#[derive(Debug, Clone)]
pub enum Fault {
    /// An error status with the provider's own error body; `retry_after` in seconds.
    Status {
        code: u16,
        retry_after: Option<u64>,
        kind: &'static str,
    },
    /// The connection drops after a few stream events.
    DropMidStream,
    /// The stream stops without its final event.
    TruncateStream,
    /// A 200 whose body is not valid JSON (or a stream with a broken event).
    Malformed,
    /// A 200 whose whole body breaks off after its usage (billed, and says so).
    MalformedWithUsage,
    /// The response head comes only after this long.
    SlowFirstByte(Duration),
    /// Each stream event comes this long after the one before.
    SlowStream(Duration),
    /// A whole (not streamed) 200 whose body stalls this long halfway, after
    /// its head: billed, and read by a client that may give up waiting.
    StallBody(Duration),
    /// An error event in the middle of a 200 stream.
    ErrorEvent,
    /// A JSON reply that does not match the requested schema.
    WrongJson,
    /// A `307` pointing the client somewhere else.
    Redirect(String),
    /// Not a fault: a 200 whose reply is this text, for tests of what is done
    /// with a reply (say, one that holds GitHub workflow commands).
    Reply(String),
    /// An error status whose JSON body quotes the key the request carried (as
    /// sent, JSON-escaped, URL-encoded, and base64 inside a `Basic` credential),
    /// as do OpenAI-compatible servers and proxies; a response header echoes it too.
    EchoKey(u16),
    /// An error status with a plain-text body quoting the key, as is and
    /// JSON-escaped, as a proxy's page does.
    EchoKeyPlain(u16),
    /// This status with this body, verbatim: what a gateway, proxy or local
    /// server sends instead of the provider's own error envelope (or, as a 200,
    /// a reply the fake would not make; `data:` lines are sent as a stream).
    Body { code: u16, body: String },
    /// In a batch: the request expires unprocessed.
    Expired,
    /// In a batch: the results hold nothing for the request.
    NoResult,
}

/// How a server refuses a model it does not serve, as the real deployments do
/// (bodies as they send them; `{model}` is the model asked for).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Anthropic's API: 404 `not_found_error`, "model: NAME".
    Anthropic,
    /// `OpenAI`'s API: 404 `model_not_found`.
    OpenAi,
    /// Gemini's API: 404 `NOT_FOUND`, "models/NAME is not found …".
    Gemini,
    /// `LiteLLM`'s proxy: 400, a Python dict in the message, `type: "None"`, `code: "400"`.
    LiteLlm,
    /// `OpenRouter`: 400, "NAME is not a valid model ID", a numeric `code`.
    OpenRouter,
    /// `vLLM`'s server: 404 with a flat `NotFoundError` object.
    Vllm,
    /// Ollama's OpenAI-compatible API: 404 "model \"NAME\" not found, try pulling it first".
    Ollama,
    /// Groq for a retired model: 400 `model_decommissioned`.
    GroqDecommissioned,
}

impl Refusal {
    /// The status and body of the refusal of `model`.
    pub fn reply(self, model: &str) -> (u16, String) {
        let body = match self {
            Refusal::Anthropic => {
                json!({"type": "error", "error": {"type": "not_found_error", "message": format!("model: {model}")}, "request_id": "req_fake"})
            }
            Refusal::OpenAi => {
                json!({"error": {"message": format!("The model `{model}` does not exist or you do not have access to it."), "type": "invalid_request_error", "param": null, "code": "model_not_found"}})
            }
            Refusal::Gemini => {
                json!({"error": {"code": 404, "message": format!("models/{model} is not found for API version v1beta, or is not supported for generateContent. Call ListModels to see the list of available models and their supported methods."), "status": "NOT_FOUND"}})
            }
            Refusal::LiteLlm => {
                json!({"error": {"message": format!("{{'error': '/chat/completions: Invalid model name passed in model={model}. Call `/v1/models` to view available models for your key.'}}"), "type": "None", "param": "None", "code": "400"}})
            }
            Refusal::OpenRouter => {
                json!({"error": {"message": format!("{model} is not a valid model ID"), "code": 400}, "user_id": "user_fake"})
            }
            Refusal::Vllm => {
                json!({"object": "error", "message": format!("The model `{model}` does not exist."), "type": "NotFoundError", "param": null, "code": 404})
            }
            Refusal::Ollama => {
                json!({"error": {"message": format!("model \"{model}\" not found, try pulling it first"), "type": "api_error", "param": null, "code": null}})
            }
            Refusal::GroqDecommissioned => {
                json!({"error": {"message": format!("The model `{model}` has been decommissioned and is no longer supported. Please refer to https://console.groq.com/docs/deprecations for a recommendation on which model to use instead."), "type": "invalid_request_error", "code": "model_decommissioned"}})
            }
        };
        let status = match self {
            Refusal::LiteLlm | Refusal::OpenRouter | Refusal::GroqDecommissioned => 400,
            _ => 404,
        };
        (status, body.to_string())
    }
}

impl Fault {
    pub fn status(code: u16) -> Self {
        let kind = match code {
            400 => "invalid_request_error",
            401 => "authentication_error",
            403 => "permission_error",
            404 => "not_found_error",
            429 => "rate_limit_error",
            529 => "overloaded_error",
            _ => "api_error",
        };
        Fault::Status {
            code,
            retry_after: None,
            kind,
        }
    }

    pub fn retry_after(code: u16, seconds: u64) -> Self {
        match Fault::status(code) {
            Fault::Status { kind, .. } => Fault::Status {
                code,
                retry_after: Some(seconds),
                kind,
            },
            other => other,
        }
    }

    /// OpenAI's 429 that needs the user to pay: never retried.
    pub fn insufficient_quota() -> Self {
        Fault::Status {
            code: 429,
            retry_after: None,
            kind: "insufficient_quota",
        }
    }
}

/// A request as the server saw it.
#[derive(Debug, Clone)]
pub struct Recorded {
    #[allow(dead_code)] // read by the batch tests through `Debug`
    pub method: String,
    pub path: String,
    pub query: String,
    pub headers: Vec<(String, String)>,
    pub body: Value,
    /// The host the request was sent to (the `host` header).
    pub host: String,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// How the fake bills, and what its replies report.
#[derive(Debug, Default, Clone, Copy)]
pub struct Billing {
    /// Bill this percentage of the input byok-flow's reservation counts (its upper
    /// bound), instead of the fake's own count: a server that tokenizes differently.
    pub input_percent: Option<u64>,
    /// Bill the request's whole output limit (`max_tokens`), whatever the reply.
    pub output_at_max: bool,
    /// Bill this percentage of the request's output limit, whatever the reply: a
    /// reasoning model whose thinking its server does not count in `max_tokens`.
    pub output_percent: Option<u64>,
    /// Report no usage: an OpenAI-compatible server that ignores
    /// `stream_options.include_usage`, an Anthropic-compatible one without `usage`
    /// in `message_delta` (its `message_start` still reports the input), a Gemini
    /// stream without `usageMetadata`.
    pub omit_usage: bool,
}

/// What the fake billed for one request: its own log, whatever the reply said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bill {
    pub input: u64,
    pub output: u64,
    pub cache_read: u64,
    pub cache_write: u64,
    /// Writes to Anthropic's 1-hour cache.
    pub cache_write_1h: u64,
    /// Web searches and page fetches it ran.
    pub searches: u64,
    pub fetches: u64,
}

#[derive(Default)]
struct Shared {
    requests: Mutex<Vec<Recorded>>,
    billed: Mutex<Vec<(String, Bill)>>,
    billing: Mutex<Billing>,
    scripts: Mutex<Vec<(String, VecDeque<Fault>)>>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    /// Usage reported as cache reads and writes on every reply.
    cache: Mutex<(u64, u64)>,
    /// How long every reply takes before its first byte.
    latency: Mutex<Duration>,
    /// The batch APIs' batches, files and knobs.
    batches: batch::Batches,
    /// Pad each reply's text to this many characters (0: as it is).
    reply_chars: AtomicUsize,
    /// When the first request arrived and the last reply was made, since the
    /// last [`FakeServer::reset_span`]: the span of a run at the server.
    span: Mutex<(Option<Instant>, Option<Instant>)>,
    /// The only models served, and how others are refused; `None` serves any.
    models: Mutex<Option<(Vec<String>, Refusal)>>,
    /// The prompt cache: Anthropic's prefixes seen (by model and text), and the
    /// last prompt of each OpenAI `prompt_cache_key`.
    prefixes: Mutex<std::collections::HashSet<String>>,
    keyed: Mutex<std::collections::HashMap<String, String>>,
    /// Count the input as byok-flow's estimate counts it.
    tokenize: std::sync::atomic::AtomicBool,
}

/// The server; it stops when dropped.
pub struct FakeServer {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeServer {
    pub fn start() -> Self {
        Self::start_on("127.0.0.1")
    }

    /// A server on another loopback address (`127.0.0.2`, …): another host.
    pub fn start_on(ip: &str) -> Self {
        let ip = ip.to_string();
        let shared = Arc::new(Shared::default());
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (shutdown, stop) = tokio::sync::oneshot::channel::<()>();
        let state = shared.clone();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("a runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind(format!("{ip}:0"))
                    .await
                    .expect("a port");
                addr_tx
                    .send(listener.local_addr().expect("an address"))
                    .expect("the test is waiting");
                let app = axum::Router::new().fallback(handle).with_state(state);
                axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = stop.await;
                    })
                    .await
                    .expect("the fake server runs");
            });
        });
        let addr = addr_rx.recv().expect("the server started");
        *shared.batches.base.lock().unwrap() = format!("http://{addr}");
        FakeServer {
            addr,
            shared,
            shutdown: Some(shutdown),
            thread: Some(thread),
        }
    }

    /// `http://IP:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Requests whose body contains `marker` meet `faults`, one each, in order.
    pub fn script(&self, marker: &str, faults: impl IntoIterator<Item = Fault>) {
        self.shared
            .scripts
            .lock()
            .unwrap()
            .push((marker.to_string(), faults.into_iter().collect()));
    }

    /// Every reply reports this many cache-read and cache-write tokens.
    pub fn report_cache(&self, read: u64, write: u64) {
        *self.shared.cache.lock().unwrap() = (read, write);
    }

    /// How to bill from now on.
    pub fn set_billing(&self, billing: Billing) {
        *self.shared.billing.lock().unwrap() = billing;
    }

    /// Every bill so far (model, tokens), in order: every 200 reply, broken ones
    /// included, as a provider bills them.
    pub fn billed(&self) -> Vec<(String, Bill)> {
        self.shared.billed.lock().unwrap().clone()
    }

    /// Serve only `models`: a request for any other meets `refusal`, as a real
    /// deployment refuses a model it does not know or has retired.
    pub fn serve_only(&self, models: &[&str], refusal: Refusal) {
        *self.shared.models.lock().unwrap() =
            Some((models.iter().map(|m| (*m).to_string()).collect(), refusal));
    }

    /// Count every request's input as byok-flow's estimate counts it (its
    /// tokenizer's expected count of the system prompt and prompt), so a test can
    /// compare an estimate with what a run was billed; the fake's own rough count
    /// otherwise.
    pub fn count_like_the_estimate(&self) {
        self.shared.tokenize.store(true, Ordering::SeqCst);
    }

    /// Every reply waits this long before its first byte (on top of any fault).
    pub fn set_latency(&self, latency: Duration) {
        *self.shared.latency.lock().unwrap() = latency;
    }

    /// Pads every reply's text to `chars` characters (a reply of about `chars / 4`
    /// tokens), for benchmarks.
    #[allow(dead_code)] // for benches/providers.rs
    pub fn set_reply_chars(&self, chars: usize) {
        self.shared.reply_chars.store(chars, Ordering::SeqCst);
    }

    /// From the first request to the last reply since the last reset.
    #[allow(dead_code)] // for benches/providers.rs
    pub fn span(&self) -> Option<Duration> {
        match *self.shared.span.lock().unwrap() {
            (Some(first), Some(last)) => Some(last.saturating_duration_since(first)),
            _ => None,
        }
    }

    /// Starts measuring [`FakeServer::span`] afresh.
    #[allow(dead_code)] // for benches/providers.rs
    pub fn reset_span(&self) {
        *self.shared.span.lock().unwrap() = (None, None);
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.requests.lock().unwrap().clone()
    }

    /// The most requests that were being answered at once.
    pub fn max_in_flight(&self) -> usize {
        self.shared.max_in_flight.load(Ordering::SeqCst)
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The three wire protocols the server speaks.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Api {
    Anthropic,
    OpenAi,
    Gemini,
}

struct InFlight(Arc<Shared>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn handle(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    shared
        .span
        .lock()
        .unwrap()
        .0
        .get_or_insert_with(Instant::now);
    let now = shared.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    shared.max_in_flight.fetch_max(now, Ordering::SeqCst);
    let guard = InFlight(shared.clone());
    let path = request.uri().path().to_string();
    let method = request.method().as_str().to_string();
    let query = request.uri().query().unwrap_or_default().to_string();
    let headers = request.headers().clone();
    let bytes = axum::body::to_bytes(request.into_body(), 64 << 20)
        .await
        .unwrap_or_default();
    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let recorded = Recorded {
        method: method.clone(),
        path: path.clone(),
        query: query.clone(),
        headers: headers
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_string(),
                    v.to_str().unwrap_or_default().to_string(),
                )
            })
            .collect(),
        host: headers
            .get("host")
            .and_then(|h| h.to_str().ok())
            .unwrap_or_default()
            .to_string(),
        body: body.clone(),
    };
    shared.requests.lock().unwrap().push(recorded);
    if let Some(response) = batch::route(&shared, &method, &path, &headers, &bytes).await {
        drop(guard);
        return response;
    }
    let api = if path.ends_with("/messages") {
        Api::Anthropic
    } else if path.ends_with("/chat/completions") {
        Api::OpenAi
    } else if path.contains(":generateContent") || path.contains(":streamGenerateContent") {
        Api::Gemini
    } else {
        return json_response(
            404,
            &json!({"error": {"message": format!("no route {path}")}}),
            &[],
        );
    };
    // A local server (Ollama and the like) takes no key.
    let local = path.starts_with("/local/");
    if let Some(refused) = check_auth(api, &headers).filter(|_| !local) {
        return refused;
    }
    let refused = {
        let models = shared.models.lock().unwrap();
        let asked = match api {
            Api::Gemini => path
                .rsplit_once("/models/")
                .and_then(|(_, rest)| rest.split_once(':'))
                .map(|(m, _)| m.to_string()),
            _ => body
                .get("model")
                .and_then(Value::as_str)
                .map(str::to_string),
        }
        .unwrap_or_default();
        models
            .as_ref()
            .filter(|(served, _)| !served.contains(&asked))
            .map(|(_, refusal)| refusal.reply(&asked))
    };
    if let Some((code, body)) = refused {
        return raw(code, "application/json", &body, &[]);
    }
    let text = body.to_string();
    let fault = {
        let mut scripts = shared.scripts.lock().unwrap();
        scripts
            .iter_mut()
            .find(|(m, _)| text.contains(m.as_str()))
            .and_then(|(_, faults)| faults.pop_front())
    };
    let stream = match api {
        Api::Gemini => path.contains(":streamGenerateContent") && query.contains("alt=sse"),
        _ => body.get("stream").and_then(Value::as_bool) == Some(true),
    };
    let cache = *shared.cache.lock().unwrap();
    let latency = *shared.latency.lock().unwrap();
    let billing = *shared.billing.lock().unwrap();
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    if let Some(echo) = fault.as_ref().and_then(|f| echo_key(f, &headers)) {
        return echo;
    }
    let response = respond(api, &body, stream, fault, cache, billing, &shared).await;
    shared.span.lock().unwrap().1 = Some(Instant::now());
    drop(guard);
    response
}

/// The model a request names.
fn model_of(body: &Value) -> String {
    let model = body
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or("gemini");
    model.strip_prefix("models/").unwrap_or(model).to_string()
}

/// The request as byok-flow built it, read back from the body: system, prompt,
/// and a JSON correction's two turns.
fn request_of(api: Api, body: &Value) -> byok_flow::providers::Request {
    let texts: Vec<String> = match api {
        Api::OpenAi => body["messages"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|m| m["role"] != "system")
            .map(|m| m["content"].as_str().unwrap_or_default().to_string())
            .collect(),
        Api::Anthropic => body["messages"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|m| text_of(&m["content"]))
            .collect(),
        Api::Gemini => body["contents"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| {
                c.pointer("/parts/0/text")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string()
            })
            .collect(),
    };
    let system = match api {
        Api::OpenAi => body["messages"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|m| m["role"] == "system")
            .and_then(|m| m["content"].as_str())
            .map(str::to_string),
        Api::Anthropic => (!body["system"].is_null()).then(|| text_of(&body["system"])),
        Api::Gemini => body
            .pointer("/systemInstruction/parts/0/text")
            .and_then(Value::as_str)
            .map(str::to_string),
    };
    byok_flow::providers::Request {
        model: model_of(body),
        system,
        prompt: texts.first().cloned().unwrap_or_default(),
        correction: (texts.len() >= 3).then(|| (texts[1].clone(), texts[2].clone())),
        ..byok_flow::providers::Request::default()
    }
}

/// The text of Anthropic content: a string, or its text blocks joined.
fn text_of(content: &Value) -> String {
    match content {
        Value::String(text) => text.clone(),
        Value::Array(blocks) => blocks.iter().filter_map(|b| b["text"].as_str()).collect(),
        _ => String::new(),
    }
}

/// The server-side tools a request asks for: (web search, web fetch).
fn requested_tools(api: Api, body: &Value) -> (bool, bool) {
    match api {
        Api::Anthropic => {
            let has = |prefix: &str| {
                body["tools"].as_array().into_iter().flatten().any(|t| {
                    t["type"]
                        .as_str()
                        .is_some_and(|kind| kind.starts_with(prefix))
                })
            };
            (has("web_search_"), has("web_fetch_"))
        }
        Api::OpenAi => (body.get("web_search_options").is_some(), false),
        Api::Gemini => (
            body["tools"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|t| t.get("googleSearch").is_some()),
            false,
        ),
    }
}

/// A prompt-cache hit or write: tokens read, written for 5 minutes, for 1 hour.
#[derive(Debug, Default, Clone, Copy)]
struct CacheUse {
    read: u64,
    write: u64,
    write_1h: u64,
}

/// Tokens of `text` as byok-flow's estimate counts them for `model`.
fn tokens_of(model: &str, text: &str) -> u64 {
    let tokenizer = byok_flow::cost::tokens::Tokenizer::for_model(model);
    tokenizer.scale(tokenizer.raw(text)).tokens
}

/// What the provider's prompt cache does with this request.
fn cache_use(api: Api, body: &Value, shared: &Shared) -> CacheUse {
    let model = model_of(body);
    match api {
        Api::Anthropic => {
            // Every block up to the last one marked `cache_control`, system first.
            let mut blocks: Vec<&Value> = Vec::new();
            if let Some(system) = body["system"].as_array() {
                blocks.extend(system);
            }
            if let Some(content) = body
                .pointer("/messages/0/content")
                .and_then(Value::as_array)
            {
                blocks.extend(content);
            }
            let Some(last) = blocks
                .iter()
                .rposition(|b| b.get("cache_control").is_some())
            else {
                return CacheUse::default();
            };
            let prefix: String = blocks[..=last]
                .iter()
                .filter_map(|b| b["text"].as_str())
                .collect();
            let tokens = tokens_of(&model, &prefix);
            let one_hour = blocks[last].pointer("/cache_control/ttl") == Some(&json!("1h"));
            let fresh = shared
                .prefixes
                .lock()
                .unwrap()
                .insert(format!("{model}\u{0}{prefix}"));
            match (fresh, one_hour) {
                (false, _) => CacheUse {
                    read: tokens,
                    ..CacheUse::default()
                },
                (true, false) => CacheUse {
                    write: tokens,
                    ..CacheUse::default()
                },
                (true, true) => CacheUse {
                    write_1h: tokens,
                    ..CacheUse::default()
                },
            }
        }
        Api::OpenAi => {
            let Some(key) = body["prompt_cache_key"].as_str() else {
                return CacheUse::default();
            };
            let request = request_of(api, body);
            let text = format!("{}\n{}", request.system.unwrap_or_default(), request.prompt);
            let previous = shared
                .keyed
                .lock()
                .unwrap()
                .insert(format!("{model}\u{0}{key}"), text.clone())
                .unwrap_or_default();
            let common: String = text
                .chars()
                .zip(previous.chars())
                .take_while(|(a, b)| a == b)
                .map(|(a, _)| a)
                .collect();
            let tokens = tokens_of(&model, &common);
            let read = if tokens >= 1_024 {
                tokens / 128 * 128
            } else {
                0
            };
            CacheUse {
                read,
                ..CacheUse::default()
            }
        }
        Api::Gemini => CacheUse::default(),
    }
}

/// The output limit a request sets.
fn max_tokens_of(body: &Value) -> Option<u64> {
    body.get("max_tokens")
        .or_else(|| body.get("max_completion_tokens"))
        .or_else(|| body.pointer("/generationConfig/maxOutputTokens"))
        .and_then(Value::as_u64)
}

/// The input byok-flow's reservation counts for this request (its upper bound),
/// through the same function the runner uses.
fn counted_input(api: Api, body: &Value) -> u64 {
    let request = request_of(api, body);
    let tokenizer = byok_flow::cost::tokens::Tokenizer::for_model(&request.model);
    byok_flow::runner::input_count(&tokenizer, &request).bound
}

/// The response of an [`Fault::EchoKey`] or [`Fault::EchoKeyPlain`].
fn echo_key(fault: &Fault, headers: &HeaderMap) -> Option<Response> {
    use base64::Engine as _;
    let key = ["x-api-key", "x-goog-api-key", "authorization"]
        .iter()
        .find_map(|n| headers.get(*n).and_then(|v| v.to_str().ok()))
        .map(|v| v.strip_prefix("Bearer ").unwrap_or(v).to_string())
        .unwrap_or_default();
    let encoded: String = url::form_urlencoded::byte_serialize(key.as_bytes()).collect();
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("user:{key}"));
    let (code, content_type, body) = match fault {
        Fault::EchoKey(code) => (
            *code,
            "application/json",
            json!({"error": {
                "message": format!("Incorrect API key provided: {key}. Request: /v1?key={encoded} (Authorization: Basic {basic})"),
                "type": "invalid_request_error", "code": "invalid_api_key"}})
            .to_string(),
        ),
        Fault::EchoKeyPlain(code) => (
            *code,
            "text/plain",
            // JSON written by hand, with `/` escaped as PHP's `json_encode` does.
            format!(
                "proxy refused the credentials {key}; as JSON: {{\"key\": \"{}\"}}",
                key.replace('/', "\\/")
            ),
        ),
        _ => return None,
    };
    Some(raw(
        code,
        content_type,
        &body,
        &[("x-echo-key", key.as_str())],
    ))
}

fn check_auth(api: Api, headers: &HeaderMap) -> Option<Response> {
    let has = |name: &str| headers.get(name).is_some_and(|v| !v.is_empty());
    match api {
        Api::Anthropic if !has("x-api-key") => {
            Some(error(api, 401, "authentication_error", "invalid x-api-key"))
        }
        Api::Anthropic if headers.get("anthropic-version").is_none() => Some(error(
            api,
            400,
            "invalid_request_error",
            "anthropic-version: header is required",
        )),
        Api::OpenAi
            if !headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with("Bearer ") && v.len() > 7) =>
        {
            Some(error(
                api,
                401,
                "invalid_api_key",
                "You didn't provide an API key.",
            ))
        }
        Api::Gemini if !has("x-goog-api-key") => Some(error(
            api,
            400,
            "INVALID_ARGUMENT",
            "API key not valid. Please pass a valid API key.",
        )),
        _ => None,
    }
}

/// What the fake model says: it quotes the first words of the last user turn.
fn reply_text(api: Api, body: &Value) -> String {
    let prompt = match api {
        Api::Anthropic | Api::OpenAi => body
            .get("messages")
            .and_then(Value::as_array)
            .and_then(|m| m.iter().rev().find(|m| m["role"] == "user"))
            .map(|m| text_of(&m["content"])),
        Api::Gemini => body
            .pointer("/contents")
            .and_then(Value::as_array)
            .and_then(|c| c.iter().rev().find(|c| c["role"] == "user"))
            .and_then(|c| c.pointer("/parts/0/text"))
            .and_then(Value::as_str)
            .map(str::to_string),
    }
    .unwrap_or_default();
    let words: Vec<&str> = prompt.split_whitespace().take(6).collect();
    format!("fake reply to: {}", words.join(" "))
}

/// The JSON the request asked for, when it asked for JSON.
fn wanted_json(api: Api, body: &Value) -> Option<Value> {
    let schema = match api {
        Api::Anthropic => body.pointer("/tools/0/input_schema").cloned(),
        Api::OpenAi => match body
            .pointer("/response_format/type")
            .and_then(Value::as_str)
        {
            Some("json_schema") => body.pointer("/response_format/json_schema/schema").cloned(),
            Some("json_object") => Some(json!({"type": "object"})),
            _ => None,
        },
        Api::Gemini => body
            .pointer("/generationConfig/responseMimeType")
            .filter(|m| *m == "application/json")
            .map(|_| {
                body.pointer("/generationConfig/responseJsonSchema")
                    .cloned()
                    .unwrap_or(json!({"type": "object"}))
            }),
    }?;
    Some(byok_flow::providers::mock::example(&schema, "fake"))
}

fn input_tokens(body: &Value) -> u64 {
    (body.to_string().len() as u64).div_ceil(8)
}

async fn respond(
    api: Api,
    body: &Value,
    stream: bool,
    fault: Option<Fault>,
    cache: (u64, u64),
    billing: Billing,
    shared: &Shared,
) -> Response {
    let mut delay = Duration::ZERO;
    match &fault {
        Some(Fault::Status {
            code,
            retry_after,
            kind,
        }) => {
            let mut response = error(api, *code, kind, &format!("fake {kind}"));
            if let Some(secs) = retry_after {
                response
                    .headers_mut()
                    .insert("retry-after", secs.to_string().parse().unwrap());
            }
            return response;
        }
        Some(Fault::Body { code, body }) => {
            let start = body.trim_start();
            let content_type = if start.starts_with('<') {
                "text/html"
            } else if start.starts_with("event:") || start.starts_with("data:") {
                "text/event-stream"
            } else {
                "application/json"
            };
            return raw(*code, content_type, body, &[]);
        }
        Some(Fault::SlowFirstByte(d)) => tokio::time::sleep(*d).await,
        Some(Fault::Redirect(to)) => {
            return raw(307, "text/plain", "moved", &[("location", to.as_str())]);
        }
        Some(Fault::SlowStream(d)) => delay = *d,
        _ => {}
    }
    let mut json = wanted_json(api, body);
    if matches!(fault, Some(Fault::WrongJson)) {
        json = Some(json!({"unexpected": true}));
    }
    let mut text = match &fault {
        Some(Fault::Reply(text)) => text.clone(),
        _ => json
            .as_ref()
            .map_or_else(|| reply_text(api, body), Value::to_string),
    };
    let pad = shared.reply_chars.load(Ordering::SeqCst);
    if json.is_none() {
        while text.len() < pad {
            text.push_str(" and so on");
        }
    }
    let (searches, fetches) = requested_tools(api, body);
    let used = cache_use(api, body, shared);
    let cached = used.read + used.write + used.write_1h;
    let input = if shared.tokenize.load(Ordering::SeqCst) {
        let request = request_of(api, body);
        let tokenizer = byok_flow::cost::tokens::Tokenizer::for_model(&request.model);
        tokenizer
            .count_request(request.system.as_deref(), &request.prompt)
            .tokens
    } else {
        billing.input_percent.map_or_else(
            || input_tokens(body),
            |p| (counted_input(api, body) * p).div_ceil(100),
        )
    }
    .saturating_sub(cached);
    let output = match max_tokens_of(body) {
        Some(max) if billing.output_percent.is_some() => {
            (max * billing.output_percent.unwrap_or(100)).div_ceil(100)
        }
        Some(max) if billing.output_at_max => max,
        _ => (text.len() as u64).div_ceil(4),
    };
    let cache = (cache.0 + used.read, cache.1 + used.write);
    let usage = (input, output, cache.0, cache.1);
    let extra = Extra {
        cache_write_1h: used.write_1h,
        searches: u64::from(searches),
        fetches: u64::from(fetches),
    };
    // Billed, whatever happens to the reply on its way.
    shared.billed.lock().unwrap().push((
        model_of(body),
        Bill {
            input,
            output,
            cache_read: cache.0,
            cache_write: cache.1,
            cache_write_1h: extra.cache_write_1h,
            searches: extra.searches,
            fetches: extra.fetches,
        },
    ));
    if !stream {
        let mut reply = whole_with(api, body, &text, json.as_ref(), usage, &extra);
        if billing.omit_usage {
            strip_usage(api, &mut reply, true);
        }
        return match fault {
            Some(Fault::Malformed) => raw(
                200,
                "application/json",
                "{\"id\": \"broken\", \"content\": [",
                &[],
            ),
            Some(Fault::MalformedWithUsage) => raw(
                200,
                "application/json",
                &broken_after_usage(api, &reply),
                &[],
            ),
            Some(Fault::StallBody(stall)) => {
                use futures_util::StreamExt as _;
                let text = reply.to_string();
                let half = text.len() / 2;
                let (head, tail) = (text[..half].to_string(), text[half..].to_string());
                let parts = futures_util::stream::iter([(head, Duration::ZERO), (tail, stall)])
                    .then(|(part, wait)| async move {
                        tokio::time::sleep(wait).await;
                        Ok::<Bytes, std::io::Error>(Bytes::from(part))
                    });
                Response::builder()
                    .status(200)
                    .header("content-type", "application/json")
                    .body(Body::from_stream(parts))
                    .unwrap()
            }
            _ => json_response(200, &reply, &[]),
        };
    }
    let mut events = events_with(api, body, &text, json.as_ref(), usage, &extra);
    if billing.omit_usage {
        events = events
            .into_iter()
            .filter_map(|event| without_usage(api, &event))
            .collect();
    }
    match fault {
        Some(Fault::TruncateStream) => events.truncate(events.len().saturating_sub(2)),
        Some(Fault::Malformed) => events.insert(
            events.len() / 2,
            sse(
                api,
                "content_block_delta",
                "{\"type\": \"content_block_delta\", \"delta\": {",
            ),
        ),
        Some(Fault::ErrorEvent) => {
            let error_event = match api {
                Api::Anthropic => sse(
                    api,
                    "error",
                    r#"{"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}"#,
                ),
                Api::OpenAi => sse(
                    api,
                    "",
                    r#"{"error": {"message": "The server had an error while processing your request.", "type": "server_error"}}"#,
                ),
                Api::Gemini => sse(
                    api,
                    "",
                    r#"{"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}}"#,
                ),
            };
            events.insert(2.min(events.len()), error_event);
            events.truncate(3);
        }
        _ => {}
    }
    let drop_after = matches!(fault, Some(Fault::DropMidStream)).then_some(2);
    let stream = futures_util::stream::unfold(
        (events.into_iter().enumerate(), delay, drop_after),
        |(mut it, delay, drop_after)| async move {
            let (i, event) = it.next()?;
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            if drop_after == Some(i) {
                return Some((
                    Err(std::io::Error::other("connection dropped")),
                    (it, delay, None),
                ));
            }
            Some((
                Ok::<Bytes, std::io::Error>(Bytes::from(event)),
                (it, delay, drop_after),
            ))
        },
    );
    Response::builder()
        .status(200)
        .header("content-type", "text/event-stream")
        .body(Body::from_stream(stream))
        .unwrap()
}

/// A whole reply's text with its usage first, broken off a little after it.
fn broken_after_usage(api: Api, reply: &Value) -> String {
    let key = if api == Api::Gemini {
        "usageMetadata"
    } else {
        "usage"
    };
    let mut fields = reply.as_object().cloned().unwrap_or_default();
    let usage = fields.remove(key).unwrap_or(Value::Null);
    let head = format!("{{\"{key}\": {usage}, ");
    let rest = Value::Object(fields).to_string();
    let rest = &rest[1..];
    let cut = rest.len() / 2;
    let cut = (0..=cut)
        .rev()
        .find(|i| rest.is_char_boundary(*i))
        .unwrap_or(0);
    format!("{head}{}", &rest[..cut])
}

/// Takes a reply's usage out, as a server that reports none would: a whole reply's
/// (`whole_reply`), or one stream event's (an OpenAI chunk keeps its `usage: null`).
fn strip_usage(api: Api, value: &mut Value, whole_reply: bool) {
    let Some(map) = value.as_object_mut() else {
        return;
    };
    match api {
        Api::Gemini => {
            map.remove("usageMetadata");
        }
        Api::OpenAi => {
            if whole_reply {
                map.remove("usage");
            }
        }
        Api::Anthropic => {
            map.remove("usage");
        }
    }
}

/// A stream event as a server that reports no usage sends it; `None` to drop it.
fn without_usage(api: Api, event: &str) -> Option<String> {
    let Some((head, data)) = event.split_once("data: ") else {
        return Some(event.to_string());
    };
    let data = data.trim_end();
    let Ok(mut value) = serde_json::from_str::<Value>(data) else {
        return Some(event.to_string());
    };
    match api {
        // The last chunk only carries usage: a server that ignores `include_usage` never sends it.
        Api::OpenAi if value["choices"].as_array().is_some_and(Vec::is_empty) => return None,
        Api::Anthropic if value["type"] == "message_delta" => strip_usage(api, &mut value, false),
        Api::Gemini => strip_usage(api, &mut value, false),
        Api::OpenAi | Api::Anthropic => {}
    }
    let name = head.strip_prefix("event: ").map(str::trim);
    Some(sse(api, name.unwrap_or(""), &value.to_string()))
}

fn sse(api: Api, name: &str, data: &str) -> String {
    match api {
        Api::Anthropic => format!("event: {name}\ndata: {data}\n\n"),
        Api::OpenAi => format!("data: {data}\n\n"),
        Api::Gemini => format!("data: {data}\r\n\r\n"),
    }
}

/// What a reply used beyond tokens: 1-hour cache writes, and the tools it ran.
#[derive(Debug, Default, Clone, Copy)]
pub struct Extra {
    pub cache_write_1h: u64,
    pub searches: u64,
    pub fetches: u64,
}

impl Extra {
    fn searched(&self) -> bool {
        self.searches > 0 || self.fetches > 0
    }
}

/// The two pages the fake's search finds, for a query: address, title, and the
/// passage the reply cites.
pub fn sources(query: &str) -> Vec<(String, String, String)> {
    (1..=2)
        .map(|i| {
            (
                format!("https://example.com/fake/{i}"),
                format!("Fake source {i}"),
                format!("A passage of fake source {i} about {query}."),
            )
        })
        .collect()
}

/// What the fake searches for: the start of the last user turn.
fn query_of(api: Api, body: &Value) -> String {
    reply_text(api, body)
        .trim_start_matches("fake reply to: ")
        .to_string()
}

/// Anthropic's content for a reply that used its server tools: a word, the
/// search and its results (and a fetch), then the answer citing the sources.
fn anthropic_tool_blocks(body: &Value, text: &str, extra: &Extra) -> Vec<Value> {
    let query = query_of(Api::Anthropic, body);
    let found = sources(&query);
    let mut blocks =
        vec![json!({"type": "text", "text": "Let me look that up. ", "citations": null})];
    // A beta reply (web fetch) says who called each server tool.
    let caller = |mut block: Value| {
        if extra.fetches > 0 {
            block["caller"] = json!({"type": "direct"});
        }
        block
    };
    if extra.searches > 0 {
        blocks.push(caller(json!({"type": "server_tool_use", "id": "srvtoolu_fake1", "name": "web_search", "input": {"query": query}})));
        let results: Vec<Value> = found
            .iter()
            .map(|(url, title, _)| json!({"type": "web_search_result", "url": url, "title": title, "encrypted_content": "ZmFrZQ==", "page_age": null}))
            .collect();
        blocks.push(json!({"type": "web_search_tool_result", "tool_use_id": "srvtoolu_fake1", "content": results}));
    }
    if extra.fetches > 0 {
        blocks.push(caller(json!({"type": "server_tool_use", "id": "srvtoolu_fake2", "name": "web_fetch", "input": {"url": found[0].0}})));
        blocks.push(
            json!({"type": "web_fetch_tool_result", "tool_use_id": "srvtoolu_fake2", "content": {
            "type": "web_fetch_result", "url": found[0].0, "retrieved_at": null,
            "content": {"type": "document", "title": found[0].1, "citations": null,
                "source": {"type": "text", "media_type": "text/plain", "data": found[0].2}}}}),
        );
    }
    let citations: Vec<Value> = found
        .iter()
        .map(|(url, title, quoted)| json!({"type": "web_search_result_location", "url": url, "title": title, "cited_text": quoted, "encrypted_index": "ZmFrZQ=="}))
        .collect();
    blocks.push(json!({"type": "text", "text": text, "citations": citations}));
    blocks
}

/// A beta message (a reply that used the beta web fetch) has these too.
fn beta_fields(message: &mut Value, extra: &Extra) {
    if extra.fetches > 0 {
        message["container"] = Value::Null;
        message["context_management"] = Value::Null;
    }
}

/// Anthropic's `usage.server_tool_use`.
fn server_tool_use(extra: &Extra) -> Value {
    if !extra.searched() {
        return Value::Null;
    }
    let mut usage = json!({"web_search_requests": extra.searches});
    if extra.fetches > 0 {
        usage["web_fetch_requests"] = json!(extra.fetches);
    }
    usage
}

/// OpenAI's `url_citation` annotations of a reply's text.
fn annotations(body: &Value, text: &str) -> Vec<Value> {
    let end = text.chars().count().min(12);
    sources(&query_of(Api::OpenAi, body))
        .into_iter()
        .map(|(url, title, _)| json!({"type": "url_citation", "url_citation": {"start_index": 0, "end_index": end, "url": url, "title": title}}))
        .collect()
}

/// Gemini's `groundingMetadata` for a reply's text.
fn grounding(body: &Value, text: &str) -> Value {
    let query = query_of(Api::Gemini, body);
    let chunks: Vec<Value> = sources(&query)
        .into_iter()
        .map(|(url, title, _)| json!({"web": {"uri": url, "title": title}}))
        .collect();
    let segment: String = text.chars().take(12).collect();
    json!({"webSearchQueries": [query], "groundingChunks": chunks,
        "groundingSupports": [{"segment": {"startIndex": 0, "endIndex": segment.len(), "text": segment}, "groundingChunkIndices": [0, 1]}]})
}

/// A whole reply in the API's shape.
pub fn whole(
    api: Api,
    body: &Value,
    text: &str,
    json: Option<&Value>,
    usage: (u64, u64, u64, u64),
) -> Value {
    whole_with(api, body, text, json, usage, &Extra::default())
}

/// A whole reply in the API's shape, with what it used beyond tokens.
pub fn whole_with(
    api: Api,
    body: &Value,
    text: &str,
    json: Option<&Value>,
    (input, output, cache_read, cache_write): (u64, u64, u64, u64),
    extra: &Extra,
) -> Value {
    let model = body.get("model").cloned().unwrap_or(json!("gemini"));
    match api {
        Api::Anthropic => {
            let content = match json {
                Some(input_json) => {
                    json!([{"type": "tool_use", "id": "toolu_fake", "name": body.pointer("/tools/0/name").cloned().unwrap_or(json!("tool")), "input": input_json}])
                }
                None if extra.searched() => Value::Array(anthropic_tool_blocks(body, text, extra)),
                None => json!([{"type": "text", "text": text, "citations": null}]),
            };
            let mut message = json!({"id": "msg_fake", "type": "message", "role": "assistant", "model": model, "content": content,
                "stop_reason": if json.is_some() { "tool_use" } else { "end_turn" }, "stop_sequence": null,
                "usage": {"input_tokens": input, "output_tokens": output, "cache_creation_input_tokens": cache_write + extra.cache_write_1h, "cache_read_input_tokens": cache_read,
                    "cache_creation": {"ephemeral_5m_input_tokens": cache_write, "ephemeral_1h_input_tokens": extra.cache_write_1h}, "server_tool_use": server_tool_use(extra), "service_tier": "standard"}});
            beta_fields(&mut message, extra);
            message
        }
        Api::OpenAi => {
            let mut message = json!({"role": "assistant", "content": text, "refusal": null});
            if extra.searched() {
                message["annotations"] = Value::Array(annotations(body, text));
            }
            json!({"id": "chatcmpl-fake", "object": "chat.completion", "created": 1_700_000_000, "model": model,
            "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": input + cache_read + cache_write, "completion_tokens": output, "total_tokens": input + output + cache_read + cache_write,
                "prompt_tokens_details": {"cached_tokens": cache_read, "cache_write_tokens": cache_write}}})
        }
        Api::Gemini => {
            let mut candidate = json!({"content": {"role": "model", "parts": [{"text": text}]}, "finishReason": "STOP", "index": 0});
            if extra.searched() {
                candidate["groundingMetadata"] = grounding(body, text);
            }
            json!({"candidates": [candidate],
            "usageMetadata": {"promptTokenCount": input + cache_read, "cachedContentTokenCount": cache_read, "candidatesTokenCount": output, "totalTokenCount": input + output + cache_read},
            "modelVersion": "fake"})
        }
    }
}

/// A streamed reply in the API's shape, event by event.
pub fn events(
    api: Api,
    body: &Value,
    text: &str,
    json: Option<&Value>,
    usage: (u64, u64, u64, u64),
) -> Vec<String> {
    events_with(api, body, text, json, usage, &Extra::default())
}

/// Anthropic's events for one content block: its start, its deltas, its stop.
fn anthropic_block(index: usize, block: &Value) -> Vec<String> {
    let api = Api::Anthropic;
    let start = |content: Value| {
        sse(
            api,
            "content_block_start",
            &json!({"type": "content_block_start", "index": index, "content_block": content})
                .to_string(),
        )
    };
    let delta = |delta: Value| {
        sse(
            api,
            "content_block_delta",
            &json!({"type": "content_block_delta", "index": index, "delta": delta}).to_string(),
        )
    };
    let mut out = Vec::new();
    match block["type"].as_str() {
        Some("text") => {
            out.push(start(
                json!({"type": "text", "text": "", "citations": null}),
            ));
            for citation in block["citations"].as_array().into_iter().flatten() {
                out.push(delta(
                    json!({"type": "citations_delta", "citation": citation}),
                ));
            }
            let chars: Vec<char> = block["text"].as_str().unwrap_or_default().chars().collect();
            for piece in chars.chunks(8) {
                out.push(delta(
                    json!({"type": "text_delta", "text": piece.iter().collect::<String>()}),
                ));
            }
        }
        Some("server_tool_use") => {
            let mut empty = block.clone();
            empty["input"] = json!({});
            out.push(start(empty));
            out.push(delta(
                json!({"type": "input_json_delta", "partial_json": block["input"].to_string()}),
            ));
        }
        _ => out.push(start(block.clone())),
    }
    out.push(sse(
        api,
        "content_block_stop",
        &json!({"type": "content_block_stop", "index": index}).to_string(),
    ));
    out
}

/// A streamed reply in the API's shape, event by event, with what it used beyond tokens.
pub fn events_with(
    api: Api,
    body: &Value,
    text: &str,
    json: Option<&Value>,
    (input, output, cache_read, cache_write): (u64, u64, u64, u64),
    extra: &Extra,
) -> Vec<String> {
    let model = body.get("model").cloned().unwrap_or(json!("gemini"));
    let pieces: Vec<String> = {
        let chars: Vec<char> = text.chars().collect();
        chars.chunks(8).map(|c| c.iter().collect()).collect()
    };
    match api {
        Api::Anthropic => {
            let mut message = json!({"id": "msg_fake", "type": "message", "role": "assistant", "content": [], "model": model, "stop_reason": null, "stop_sequence": null,
                "usage": {"input_tokens": input, "cache_creation_input_tokens": cache_write + extra.cache_write_1h, "cache_read_input_tokens": cache_read, "output_tokens": 1,
                    "cache_creation": {"ephemeral_5m_input_tokens": cache_write, "ephemeral_1h_input_tokens": extra.cache_write_1h}, "server_tool_use": null, "service_tier": "standard"}});
            beta_fields(&mut message, extra);
            let mut out = vec![sse(
                api,
                "message_start",
                &json!({"type": "message_start", "message": message}).to_string(),
            )];
            if json.is_none() && extra.searched() {
                for (index, block) in anthropic_tool_blocks(body, text, extra).iter().enumerate() {
                    out.extend(anthropic_block(index, block));
                }
            } else {
                let block = if json.is_some() {
                    json!({"type": "tool_use", "id": "toolu_fake", "name": "emit_output", "input": {}})
                } else {
                    json!({"type": "text", "text": "", "citations": null})
                };
                out.push(sse(
                    api,
                    "content_block_start",
                    &json!({"type": "content_block_start", "index": 0, "content_block": block})
                        .to_string(),
                ));
                out.push(sse(api, "ping", r#"{"type": "ping"}"#));
                for piece in &pieces {
                    let delta = if json.is_some() {
                        json!({"type": "input_json_delta", "partial_json": piece})
                    } else {
                        json!({"type": "text_delta", "text": piece})
                    };
                    out.push(sse(
                        api,
                        "content_block_delta",
                        &json!({"type": "content_block_delta", "index": 0, "delta": delta})
                            .to_string(),
                    ));
                }
                out.push(sse(
                    api,
                    "content_block_stop",
                    r#"{"type": "content_block_stop", "index": 0}"#,
                ));
            }
            let mut delta = json!({"type": "message_delta", "delta": {"stop_reason": if json.is_some() { "tool_use" } else { "end_turn" }, "stop_sequence": null},
                "usage": {"input_tokens": input, "cache_creation_input_tokens": cache_write + extra.cache_write_1h, "cache_read_input_tokens": cache_read, "output_tokens": output, "server_tool_use": server_tool_use(extra)}});
            if extra.fetches > 0 {
                delta["context_management"] = Value::Null;
                delta["delta"]["container"] = Value::Null;
            }
            out.push(sse(api, "message_delta", &delta.to_string()));
            out.push(sse(api, "message_stop", r#"{"type": "message_stop"}"#));
            out
        }
        Api::OpenAi => {
            let chunk = |delta: Value, finish: Value| {
                json!({"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1_700_000_000, "model": model, "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}], "usage": null}).to_string()
            };
            let mut out = vec![sse(
                api,
                "",
                &chunk(json!({"role": "assistant", "content": ""}), Value::Null),
            )];
            out.push(": keep-alive\n\n".to_string());
            for piece in &pieces {
                out.push(sse(api, "", &chunk(json!({"content": piece}), Value::Null)));
            }
            if extra.searched() {
                out.push(sse(
                    api,
                    "",
                    &chunk(json!({"annotations": annotations(body, text)}), Value::Null),
                ));
            }
            out.push(sse(api, "", &chunk(json!({}), json!("stop"))));
            out.push(sse(api, "", &json!({"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1_700_000_000, "model": model, "choices": [],
                "usage": {"prompt_tokens": input + cache_read + cache_write, "completion_tokens": output, "total_tokens": input + output + cache_read + cache_write, "prompt_tokens_details": {"cached_tokens": cache_read, "cache_write_tokens": cache_write}}}).to_string()));
            out.push(sse(api, "", "[DONE]"));
            out
        }
        Api::Gemini => {
            let n = pieces.len();
            pieces
                .iter()
                .enumerate()
                .map(|(i, piece)| {
                    let last = i + 1 == n;
                    let mut candidate = json!({"content": {"role": "model", "parts": [{"text": piece}]}, "index": 0});
                    if last {
                        candidate["finishReason"] = json!("STOP");
                        if extra.searched() {
                            candidate["groundingMetadata"] = grounding(body, text);
                        }
                    }
                    let usage = if last {
                        json!({"promptTokenCount": input + cache_read, "cachedContentTokenCount": cache_read, "candidatesTokenCount": output, "totalTokenCount": input + output + cache_read})
                    } else {
                        json!({"promptTokenCount": input + cache_read, "totalTokenCount": input + cache_read})
                    };
                    sse(api, "", &json!({"candidates": [candidate], "usageMetadata": usage, "modelVersion": "fake"}).to_string())
                })
                .collect()
        }
    }
}

fn error(api: Api, code: u16, kind: &str, message: &str) -> Response {
    let body = match api {
        Api::Anthropic => {
            json!({"type": "error", "error": {"type": kind, "message": message}, "request_id": "req_fake"})
        }
        Api::OpenAi => {
            json!({"error": {"message": message, "type": if kind == "insufficient_quota" { "insufficient_quota" } else { "invalid_request_error" }, "param": null, "code": kind}})
        }
        Api::Gemini => {
            let status = match code {
                400 => "INVALID_ARGUMENT",
                403 => "PERMISSION_DENIED",
                404 => "NOT_FOUND",
                429 => "RESOURCE_EXHAUSTED",
                503 => "UNAVAILABLE",
                _ => "INTERNAL",
            };
            json!({"error": {"code": code, "message": message, "status": if kind.chars().all(|c| c.is_ascii_uppercase() || c == '_') { kind } else { status }}})
        }
    };
    json_response(code, &body, &[])
}

fn json_response(code: u16, body: &Value, headers: &[(&str, &str)]) -> Response {
    raw(code, "application/json", &body.to_string(), headers)
}

fn raw(code: u16, content_type: &str, body: &str, headers: &[(&str, &str)]) -> Response {
    let mut builder = Response::builder()
        .status(StatusCode::from_u16(code).unwrap())
        .header("content-type", content_type);
    for (n, v) in headers {
        builder = builder.header(*n, *v);
    }
    builder.body(Body::from(body.to_string())).unwrap()
}
