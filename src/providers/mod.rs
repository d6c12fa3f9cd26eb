//! Model providers: one trait every API implements, the built-in provider table,
//! and the implementations. The scheduler only sees [`Provider`].

pub mod advice;
pub mod anthropic;
pub mod call;
pub mod client;
pub mod error_body;
pub mod gemini;
pub mod http;
pub mod mock;
pub mod openai;
pub mod proxy;
pub mod retry;
pub mod wire;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use serde::Serialize;

use crate::tools::{Citation, ToolName};
use crate::usage::Usage;
use crate::workflow::model::OutputKind;

/// A boxed future, so providers can be trait objects.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One call to a model, with everything rendered.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Request {
    /// The provider's name in the workflow (`anthropic`, `local`, …).
    pub provider: String,
    /// The model id as the provider knows it.
    pub model: String,
    pub system: Option<String>,
    pub prompt: String,
    pub max_tokens: Option<u32>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub stop: Vec<String>,
    pub output: OutputKind,
    pub schema: Option<serde_json::Value>,
    /// Tools the provider runs on its side (`web_search`, `web_fetch`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<crate::tools::Tool>,
    /// Where its cacheable prefix ends, when it is to be marked (Anthropic) or
    /// keyed (`OpenAI`'s `prompt_cache_key`).
    #[serde(skip)]
    pub cache: Option<crate::prompt_cache::Plan>,
    pub stream: bool,
    #[serde(skip)]
    pub timeout: Option<Duration>,
    /// The key this call sends (a key file or `env:` variable), if any.
    #[serde(skip)]
    pub key: Option<crate::keys::KeyRef>,
    /// Told how much of a streamed reply has arrived.
    #[serde(skip)]
    pub progress: Progress,
    /// For a second try at `output: json`: the reply that did not match, and what was wrong.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub correction: Option<(String, String)>,
    /// What asks for it, in a dataset (`r12-writer[3]`: row 12's agent `writer`,
    /// item 3): a batch's `custom_id` and state name it. Never sent.
    #[serde(skip)]
    pub label: Option<String>,
}

/// Reports how a streamed reply is coming along: how many characters have
/// arrived, and which server-side tool the provider started running.
#[derive(Clone, Default)]
pub struct Progress {
    chars: Option<std::sync::Arc<dyn Fn(usize) + Send + Sync>>,
    tool: Option<std::sync::Arc<dyn Fn(ToolName) + Send + Sync>>,
}

impl Progress {
    pub fn new(report: impl Fn(usize) + Send + Sync + 'static) -> Self {
        Progress {
            chars: Some(std::sync::Arc::new(report)),
            tool: None,
        }
    }

    /// Also told when the provider starts running a tool.
    #[must_use]
    pub fn on_tool(mut self, report: impl Fn(ToolName) + Send + Sync + 'static) -> Self {
        self.tool = Some(std::sync::Arc::new(report));
        self
    }

    pub fn report(&self, chars: usize) {
        if let Some(report) = &self.chars {
            report(chars);
        }
    }

    /// The provider started running `tool`.
    pub fn tool(&self, tool: ToolName) {
        if let Some(report) = &self.tool {
            report(tool);
        }
    }
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Progress")
    }
}

/// A model's reply.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Reply {
    pub text: String,
    /// The parsed reply, for `output: json`.
    pub json: Option<serde_json::Value>,
    /// The tokens the provider reported; a count it did not report is zero here
    /// (see `reported`), and the runner counts it locally.
    pub usage: Usage,
    /// Which counts of `usage` the provider reported.
    pub reported: Reported,
    /// Why the model stopped (`end_turn`, `max_tokens`, …).
    pub stop_reason: Option<String>,
    /// The sources the reply cites (with server-side tools), in order of first citation.
    pub citations: Vec<Citation>,
}

/// Which of a reply's token counts the provider reported. Some servers report none
/// (an OpenAI-compatible server that ignores `stream_options.include_usage`), some
/// only the input (an Anthropic-compatible stream without `usage` in
/// `message_delta`); what is missing is never taken as zero.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Reported {
    /// The input counts: plain input, cache reads and cache writes.
    pub input: bool,
    pub output: bool,
}

impl Reported {
    /// Every count reported.
    pub const ALL: Reported = Reported {
        input: true,
        output: true,
    };

    pub fn all(self) -> bool {
        self.input && self.output
    }
}

/// Why one attempt failed, in a way that decides whether to retry.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AttemptError {
    /// The HTTP status, when there was a response.
    pub status: Option<u16>,
    pub kind: ErrorKind,
    /// The provider's own error type and message, or what went wrong in transport.
    pub message: String,
    /// What the person running can do about it.
    pub hint: Option<String>,
    /// How long the provider asked us to wait.
    #[serde(skip)]
    pub retry_after: Option<Duration>,
    /// The request went out and the reply was cut off or unreadable (a time-out, a
    /// dropped, cut or malformed stream, a body that does not parse): what arrived
    /// before it broke off, with any usage it reported. The provider may bill the
    /// whole call. `None` when nothing was billed: the request never left, or the
    /// provider answered with an error status.
    #[serde(skip)]
    pub cut_off: Option<Box<Reply>>,
    /// The server said it does not serve the model (unknown, or retired).
    #[serde(skip)]
    pub unknown_model: bool,
}

impl AttemptError {
    /// A failure worth another try.
    pub fn transient(status: Option<u16>, message: String) -> Self {
        AttemptError {
            status,
            kind: ErrorKind::Transient,
            message,
            hint: None,
            retry_after: None,
            cut_off: None,
            unknown_model: false,
        }
    }

    /// A failure after the request went out, with what arrived before it: worth
    /// another try, and perhaps billed in full.
    pub fn cut_off(status: Option<u16>, message: String, received: Reply) -> Self {
        AttemptError {
            cut_off: Some(Box::new(received)),
            ..AttemptError::transient(status, message)
        }
    }

    /// A failure that will happen again.
    pub fn permanent(message: String, hint: Option<String>) -> Self {
        AttemptError {
            status: None,
            kind: ErrorKind::Permanent,
            message,
            hint,
            retry_after: None,
            cut_off: None,
            unknown_model: false,
        }
    }
}

/// The kinds of failure the retry policy tells apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// Worth another try: rate limits, overload, 5xx, time-outs, dropped connections.
    Transient,
    /// Will fail the same way again: bad request, bad key, unknown model.
    Permanent,
    /// The key could not be read, decrypted or sent where the call goes.
    Key,
    /// Not sent: the budget has no room for what the attempt could cost.
    Budget,
    /// In a batch the provider has taken, left there for the run that collects
    /// it (`--detach`): no outcome yet, and nothing else is to be tried.
    Detached,
}

impl std::fmt::Display for AttemptError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// A model API: one attempt at one call. Retries and fallbacks are `call`'s.
pub trait Provider: Send + Sync {
    /// Sends one request and waits for the whole reply.
    /// The request is the call's own, shared (a batch holds it until it is sent).
    fn attempt<'a>(
        &'a self,
        request: &'a std::sync::Arc<Request>,
    ) -> BoxFuture<'a, Result<Reply, AttemptError>>;

    /// Whether an attempt ends by a deadline of the client's own, not the
    /// request's `timeout` (a batch's: it is taken as expired after 25 hours).
    fn own_deadline(&self) -> bool {
        false
    }

    /// Whether `request` was already sent and is billed whatever happens now (a
    /// batch an earlier run submitted holds it): an attempt of it waits for that
    /// answer, and what it costs is spent, not a choice the budget can refuse.
    /// `Some` names the request in that batch (its fingerprint): the budget may
    /// hold its reservation since the run began (see `Batcher::held`).
    fn holds(&self, _request: &Request) -> Option<String> {
        None
    }

    /// Told, just before `request` is sent, the most its attempt can cost
    /// (`worst`, asked only by a client that keeps it: a batch's state does, so
    /// the run that collects a detached batch counts it from its start).
    fn reserving(&self, _request: &Request, _worst: &dyn Fn() -> Option<crate::cost::Usd>) {}
}

#[cfg(test)]
mod tests {
    use super::wire::Wire;
    use super::*;

    fn request() -> Request {
        Request {
            provider: "p".into(),
            model: "m".into(),
            prompt: "hi".into(),
            ..Request::default()
        }
    }

    /// Found by the `no_panic` property tests: token counts near `u64::MAX` in a
    /// reply overflowed where they were added (a panic in debug builds, a wrapped
    /// count in release): Gemini's output plus thinking tokens, `OpenAI`'s cached
    /// plus written tokens, and a call's tally over its attempts.
    #[test]
    fn absurd_token_counts_in_a_reply_saturate() {
        let max = u64::MAX;
        let gemini = format!(
            r#"{{"usageMetadata": {{"candidatesTokenCount": {max}, "thoughtsTokenCount": 1}}}}"#
        );
        let reply = gemini::Gemini.parse(&request(), &gemini).unwrap();
        assert_eq!(reply.usage.output, max);

        let openai = format!(
            r#"{{"choices": [{{"message": {{"content": "x"}}}}], "usage": {{"prompt_tokens": 5, "prompt_tokens_details": {{"cached_tokens": {max}, "cache_write_tokens": 1}}}}}}"#
        );
        let reply = openai::OpenAi { first_party: true }
            .parse(&request(), &openai)
            .unwrap();
        assert_eq!(reply.usage.input, 0);

        let mut tally = Usage {
            input: max,
            output: 1,
            cache_read: max,
            cache_write: 0,
            ..Default::default()
        };
        tally += tally;
        assert_eq!(
            tally,
            Usage {
                input: max,
                output: 2,
                cache_read: max,
                cache_write: 0,
                ..Default::default()
            }
        );
    }
}
