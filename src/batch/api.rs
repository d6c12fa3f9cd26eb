//! What every batch API implements (submit, poll, read results, cancel, clean up),
//! and [`Conn`], the one way their requests go out: each through the provider's
//! HTTP door (`providers::http`), with its key checked against the destination
//! first (the host rule), no redirect followed, and every byte that comes back
//! redacted of the run's keys before anything reads it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value as Json;

use crate::keys::{KeyRef, redact};
use crate::providers::client::Keys;
use crate::providers::http::{Body, Call, Http, Method, Payload, Timeouts, TransportError};
use crate::providers::wire::Wire;
use crate::providers::{AttemptError, BoxFuture, ErrorKind, Reply, Request, retry};

/// How much one batch may hold: the provider's documented limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub requests: usize,
    pub bytes: usize,
}

/// One request in a batch: its id there, and the call (shared with the call
/// that waits on it).
#[derive(Debug, Clone)]
pub struct Item {
    pub custom_id: String,
    pub request: Arc<Request>,
}

/// Where a batch is at the provider: what the state file keeps of it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Handle {
    /// The batch's id (`msgbatch_…`, `batch_…`, `batches/…`); empty while only its
    /// input file is uploaded.
    pub id: String,
    /// The uploaded input file (`OpenAI`), deleted when the batch is collected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
}

/// How far along a batch is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    Running,
    /// Every request has its result.
    Ended,
    /// The batch as a whole failed (its input was refused): the provider's message.
    Failed(String),
}

/// Requests of a batch by outcome, as the provider counts them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub total: u64,
    pub succeeded: u64,
    pub failed: u64,
}

/// A poll's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub phase: Phase,
    pub counts: Counts,
    /// Where the results are: a URL (Anthropic), an output file (`OpenAI`).
    pub results: Option<String>,
    /// `OpenAI`'s error file.
    pub errors: Option<String>,
    /// The whole poll response, for the results of an API that returns them inline (Gemini).
    pub inline: Option<Json>,
}

/// One request's result.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// The reply body, as the provider's own API would have answered the call: its
    /// JSON text, read when the call takes it (a tree per result would hold several
    /// times its size while a wave's results are handed out).
    Body(String),
    /// A reply made without a provider (the mock); boxed, as a wave's results
    /// are held together.
    Reply(Box<Reply>),
    Error(AttemptError),
}

/// A batch API of one provider.
pub trait BatchApi: Send + Sync {
    /// The provider's name in the workflow.
    fn provider(&self) -> &str;
    fn limits(&self) -> Limits;
    /// The request's parameters as the batch carries them (without its id): what
    /// its fingerprint and size are taken from.
    fn params(&self, request: &Request) -> Json;
    /// Uploads the input, when the API takes it as a file: the file's id.
    fn upload<'a>(
        &'a self,
        _key: Option<&'a KeyRef>,
        _items: &'a [Item],
    ) -> BoxFuture<'a, Result<Option<String>, AttemptError>> {
        Box::pin(async { Ok(None) })
    }
    /// Creates the batch (from the uploaded file, when there is one).
    fn create<'a>(
        &'a self,
        key: Option<&'a KeyRef>,
        model: &'a str,
        items: &'a [Item],
        file: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Handle, AttemptError>>;
    fn poll<'a>(
        &'a self,
        key: Option<&'a KeyRef>,
        handle: &'a Handle,
    ) -> BoxFuture<'a, Result<Status, AttemptError>>;
    /// Every result of an ended batch, by `custom_id`, in whatever order they come.
    fn results<'a>(
        &'a self,
        key: Option<&'a KeyRef>,
        handle: &'a Handle,
        status: &'a Status,
    ) -> BoxFuture<'a, Result<Vec<(String, Outcome)>, AttemptError>>;
    fn cancel<'a>(
        &'a self,
        key: Option<&'a KeyRef>,
        handle: &'a Handle,
    ) -> BoxFuture<'a, Result<(), AttemptError>>;
    /// After the results are read: deletes what the batch left (`OpenAI`'s input file).
    fn clean_up<'a>(&'a self, _key: Option<&'a KeyRef>, _handle: &'a Handle) -> BoxFuture<'a, ()> {
        Box::pin(async {})
    }
    /// A rerun waits on `handle` for `request`, which it holds as `custom_id`.
    fn adopt(&self, _handle: &Handle, _custom_id: &str, _request: &Request) {}
    /// Reads one result's reply body (JSON text).
    fn parse(&self, request: &Request, body: &str) -> Result<Reply, String>;
    /// The usage a result's reply body that does not parse still shows, if any:
    /// what it was billed.
    fn salvage(&self, _body: &str) -> Reply {
        Reply::default()
    }
}

/// A provider's batch endpoints: where they are, its key, its HTTP client.
pub struct Conn {
    pub provider: String,
    pub base_url: String,
    pub wire: Box<dyn Wire>,
    pub keys: Option<Arc<dyn Keys>>,
    pub http: Http,
}

/// Batch endpoints answer quickly; results files may be large.
fn timeouts() -> Timeouts {
    Timeouts {
        connect: Duration::from_secs(10),
        first_byte: Duration::from_mins(2),
        idle: Duration::from_mins(2),
    }
}

impl Conn {
    /// The usage a reply body that does not parse still shows, if any.
    pub fn salvage(&self, body: &str) -> Reply {
        let (usage, reported) = crate::providers::wire::salvage_usage(self.wire.as_ref(), body);
        Reply {
            usage,
            reported,
            ..Reply::default()
        }
    }

    /// The URL of an endpoint under the provider's base URL.
    pub fn url(&self, path: &str) -> String {
        crate::providers::wire::join(&self.base_url, path)
    }

    /// Sends one request and reads its body, redacted. A refused key, a
    /// destination the key may not go to, an error status: an [`AttemptError`]
    /// with the provider's own message.
    pub async fn call(
        &self,
        method: Method,
        url: &str,
        key: Option<&KeyRef>,
        payload: Payload<'_>,
    ) -> Result<String, AttemptError> {
        self.call_as(method, url, key, payload, &Request::default())
            .await
    }

    /// [`Conn::call`] with the API's headers for requests like `like` (a beta
    /// a server tool needs, for the batch that holds it).
    pub async fn call_as(
        &self,
        method: Method,
        url: &str,
        key: Option<&KeyRef>,
        payload: Payload<'_>,
        like: &Request,
    ) -> Result<String, AttemptError> {
        let started = Instant::now();
        let key = match (key, &self.keys) {
            (None, _) => None,
            (Some(key), Some(keys)) => Some(keys.key_for(key, &self.provider, url).await?),
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
        // The API's own headers (its version, a tool's beta); a batch's are not per request.
        let headers = self.wire.headers(like);
        let call = Call {
            method,
            url,
            headers: &headers,
            auth: self.wire.auth(),
            key: key.as_ref(),
            payload,
            timeouts: timeouts(),
        };
        let endpoint = crate::providers::http::endpoint(url);
        let response = self.http.send(call).await.map_err(|e| {
            let mut message = format!(
                "{} batch {} {endpoint}: {e}",
                self.provider,
                method.as_str()
            );
            redact::in_place(&mut message);
            // Lost after it was sent: the provider may have done what it asked.
            let sent = matches!(
                e,
                TransportError::FirstByte(_) | TransportError::Idle(_) | TransportError::Body(_)
            );
            if sent {
                AttemptError::cut_off(None, message, Reply::default())
            } else {
                AttemptError::transient(None, message)
            }
        })?;
        let Body::Whole(mut text) = response.body else {
            unreachable!("batch responses are read whole")
        };
        redact::in_place(&mut text);
        tracing::info!(
            "batch: {} {} {endpoint}: {} in {:.3}s ({} bytes)",
            self.provider,
            method.as_str(),
            response.status,
            started.elapsed().as_secs_f64(),
            text.len()
        );
        if (200..300).contains(&response.status) {
            return Ok(text);
        }
        let status = response.status;
        let api = self.wire.error(status, &text);
        let retryable = api
            .retryable
            .unwrap_or_else(|| retry::retryable_status(status));
        let hint = match status {
            401 | 403 => Some(format!(
                "the key was refused by {}'s batch API; check it with `byok-flow keys check`",
                self.provider
            )),
            429 if !retryable => Some(format!(
                "{} needs you to act (quota or billing) before it takes batches",
                self.provider
            )),
            300..=399 => Some(
                "byok-flow never follows redirects with a key; point `base_url` at the final address"
                    .into(),
            ),
            _ => None,
        };
        let mut error = AttemptError {
            status: Some(status),
            kind: if retryable {
                ErrorKind::Transient
            } else {
                ErrorKind::Permanent
            },
            message: match &api.kind {
                Some(kind) => format!("{} batch {status} {kind}: {}", self.provider, api.message),
                None => format!("{} batch {status}: {}", self.provider, api.message),
            },
            hint,
            retry_after: retry::hint(&response.headers, &text),
            cut_off: None,
            unknown_model: false,
        };
        redact::in_place(&mut error.message);
        Err(error)
    }

    /// A JSON response, read.
    pub async fn json(
        &self,
        method: Method,
        url: &str,
        key: Option<&KeyRef>,
        payload: Payload<'_>,
    ) -> Result<Json, AttemptError> {
        self.json_as(method, url, key, payload, &Request::default())
            .await
    }

    /// [`Conn::json`] with the API's headers for requests like `like`.
    pub async fn json_as(
        &self,
        method: Method,
        url: &str,
        key: Option<&KeyRef>,
        payload: Payload<'_>,
        like: &Request,
    ) -> Result<Json, AttemptError> {
        let text = self.call_as(method, url, key, payload, like).await?;
        serde_json::from_str(&text).map_err(|e| {
            AttemptError::transient(
                None,
                format!("{} batch API: malformed response: {e}", self.provider),
            )
        })
    }
}

/// An id the server gave (a batch's, a file's), checked before it goes into a
/// URL path, the state file or a line on the terminal: letters, digits and
/// `-_./` (Gemini's are `batches/…`), no `..`, at most 256 bytes. `None`, or
/// anything else, is the error `{what} has no usable id`.
pub fn server_id(what: &str, id: Option<&str>) -> Result<String, AttemptError> {
    match id {
        Some(id)
            if !id.is_empty()
                && id.len() <= 256
                && !id.starts_with('/')
                && !id.contains("..")
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_./".contains(&b)) =>
        {
            Ok(id.to_string())
        }
        _ => Err(AttemptError::transient(
            None,
            format!("{what} has no usable id"),
        )),
    }
}

/// A result the provider reported as an error: retryable unless its type says it
/// will fail again.
pub fn item_error(provider: &str, kind: &str, message: &str, retryable: bool) -> AttemptError {
    let message = format!("{provider} batch: {kind}: {message}");
    if retryable {
        AttemptError::transient(None, message)
    } else {
        AttemptError::permanent(message, None)
    }
}

/// Whether an error type a batch result carries is worth another try.
pub fn retryable_kind(kind: &str) -> bool {
    !matches!(
        kind,
        "invalid_request_error"
            | "authentication_error"
            | "permission_error"
            | "not_found_error"
            | "invalid_request"
            | "INVALID_ARGUMENT"
            | "NOT_FOUND"
            | "PERMISSION_DENIED"
            | "model_not_found"
    )
}

/// A JSON body holding one list of many entries: `open`, the entries written one
/// by one with commas between, then `close` (the JSON text around the list). A
/// wave's batch is never held as one tree of every request.
pub fn json_list(
    open: &str,
    entries: impl Iterator<Item = Json>,
    close: &str,
) -> Result<Vec<u8>, AttemptError> {
    let mut bytes = open.as_bytes().to_vec();
    for (n, entry) in entries.enumerate() {
        if n > 0 {
            bytes.push(b',');
        }
        serde_json::to_writer(&mut bytes, &entry)
            .map_err(|e| AttemptError::permanent(format!("cannot write the batch: {e}"), None))?;
    }
    bytes.extend_from_slice(close.as_bytes());
    Ok(bytes)
}

/// Each non-blank line of a results file (JSONL), in the file's order, each
/// made into a result by `read` (`None`: skipped). The file is read from its end
/// and given back as it goes, so a wave's results file and the results made from
/// it (about its size again) are not held whole at once.
pub fn read_lines<T>(mut text: String, mut read: impl FnMut(&str) -> Option<T>) -> Vec<T> {
    /// How much read text is given back at a time.
    const STEP: usize = 1 << 20;
    let mut out = Vec::new();
    let mut kept = text.len();
    loop {
        let start = text.rfind('\n').map_or(0, |n| n + 1);
        let line = &text[start..];
        let line = line.strip_suffix('\r').unwrap_or(line);
        if !line.trim().is_empty()
            && let Some(item) = read(line)
        {
            out.push(item);
        }
        if start == 0 {
            break;
        }
        text.truncate(start - 1);
        if kept - text.len() >= STEP {
            text.shrink_to_fit();
            kept = text.len();
        }
    }
    out.reverse();
    out
}

/// A count the provider sent as a number or a string (Gemini's int64).
pub fn count(value: Option<&Json>) -> u64 {
    match value {
        Some(Json::Number(n)) => n.as_u64().unwrap_or(0),
        Some(Json::String(s)) => s.parse().unwrap_or(0),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::{Json, read_lines, server_id};

    #[test]
    fn results_files_are_read_line_by_line_in_order() {
        let lines: Vec<String> = (0..200_000).map(|n| format!("{{\"n\":{n}}}")).collect();
        let text = format!("\n{}\n\n", lines.join("\r\n"));
        let read = read_lines(text, |line| {
            let value: Json = serde_json::from_str(line).ok()?;
            value["n"].as_u64().filter(|n| n % 3 != 0)
        });
        let expected: Vec<u64> = (0..200_000).filter(|n| n % 3 != 0).collect();
        assert_eq!(read, expected);
        assert_eq!(read_lines(String::new(), |_| Some(())), vec![]);
        assert_eq!(
            read_lines("one\r\ntwo".into(), |l| Some(l.to_string())),
            ["one", "two"]
        );
    }

    #[test]
    fn server_ids_that_could_reshape_a_url_or_a_terminal_line_are_refused() {
        for good in ["msgbatch_01AbC", "batch_6f2", "file-x1", "batches/abc-123"] {
            assert_eq!(server_id("it", Some(good)).unwrap(), good);
        }
        for bad in [
            "",
            "../../v1/files",
            "/v1/x",
            "a?b",
            "a b",
            "x\u{1b}[2J",
            "é",
        ] {
            assert!(server_id("it", Some(bad)).is_err(), "{bad:?}");
        }
        assert!(server_id("it", None).is_err());
        assert!(server_id("it", Some(&"a".repeat(257))).is_err());
    }
}
