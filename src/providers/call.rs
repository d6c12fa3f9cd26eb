//! One agent's call, start to finish: each model in turn (the agent's own, then
//! its `fallback` models), each tried up to its retry budget with back-off, and a
//! JSON reply checked against the agent's schema, with one more try that feeds the
//! validation errors back. Every attempt is recorded, and a [`Meter`] hears of each
//! one before it is sent (to reserve what it may cost, or refuse it) and after it
//! ends (to count what it did cost): retries, fallbacks and JSON corrections are
//! each paid for.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::retry::Policy;
use super::wire::parse_json_text;
use super::{AttemptError, BoxFuture, ErrorKind, Provider, Reply, Request};
use crate::workflow::model::OutputKind;

/// A model to try: its client, and its `provider/model` name.
#[derive(Clone)]
pub struct Target {
    pub client: Arc<dyn Provider>,
    pub provider: String,
    pub model: String,
    /// The key a call to this model sends, if any.
    pub key: Option<crate::keys::KeyRef>,
    /// What the price table says of this model's retirement, told when the server
    /// refuses the model.
    pub retirement: Option<Retirement>,
}

/// A model's retirement as the price table has it, for the error when a server
/// refuses the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retirement {
    /// Past its retirement date: that is why the server refuses it.
    pub retired: bool,
    /// One sentence: when, and what to use instead.
    pub note: String,
}

/// One attempt, as the run record keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    /// `provider/model`.
    pub model: String,
    /// When it started, in seconds since the agent's call began (so a report can
    /// place it, and the real wait before it, on a timeline).
    #[serde(default)]
    pub at: f64,
    /// The HTTP status, when there was a response.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// `ok`, or what went wrong.
    pub outcome: String,
    pub seconds: f64,
    /// How long byok-flow waited after this attempt before the next, in milliseconds.
    pub delay_ms: u64,
}

/// Hears of every attempt of a call, so what each may cost is reserved before it
/// is sent and what it did cost is counted after.
pub trait Meter: Send + Sync {
    /// Before `request` goes to `targets[target]`: `Ok` to send it, or the error
    /// that ends the call without sending it (no room in the budget). It may wait.
    /// The request is shared, so an attempt in flight can be billed (Ctrl-C)
    /// without a copy of it.
    fn before<'a>(
        &'a self,
        target: usize,
        request: &'a Arc<Request>,
    ) -> BoxFuture<'a, Result<(), AttemptError>>;
    /// After the attempt: its reply (a reply that failed the JSON check included),
    /// or its error (with what arrived, when it was cut off after it was sent).
    fn after(&self, target: usize, request: &Request, outcome: Result<&Reply, &AttemptError>);
}

/// A meter that counts nothing: every attempt may go.
pub struct Unmetered;

impl Meter for Unmetered {
    fn before<'a>(
        &'a self,
        _: usize,
        _: &'a Arc<Request>,
    ) -> BoxFuture<'a, Result<(), AttemptError>> {
        Box::pin(async { Ok(()) })
    }

    fn after(&self, _: usize, _: &Request, _: Result<&Reply, &AttemptError>) {}
}

/// How a call ended.
pub struct Called {
    pub result: Result<Answer, AttemptError>,
    pub attempts: Vec<Attempt>,
}

/// A successful call.
#[derive(Debug, Clone)]
pub struct Answer {
    pub reply: Reply,
    /// `provider/model` that answered.
    pub model: String,
}

/// Runs the call through `targets` in order. `on_failure` hears of every failed
/// attempt that another attempt (a retry or the next fallback model) follows.
/// The request is changed in place for each model (and for a JSON correction),
/// not copied, and stays on the heap: a batched call waits hours with this
/// future, one per request, and a request held in it would be laid out in it
/// once per await that keeps it. It is shared with the meter while an attempt
/// is in flight (no attempt is, when it changes: it is not copied then either).
///
/// What is awaited here and in [`with_retries`] ends boxed (the call, each
/// model's tries, each attempt): a future keeps room for what an await returns
/// across that await, and a batched call waits with this future (see [`Boxed`]).
pub async fn call(
    targets: &[Target],
    mut request: Arc<Request>,
    policy: &Policy,
    on_failure: &(dyn Fn(&Attempt) + Send + Sync),
    meter: &dyn Meter,
) -> Box<Called> {
    // Most calls are answered at the first attempt; a run keeps every call's list.
    let mut attempts = Vec::with_capacity(1);
    let begun = Instant::now();
    let mut last: Option<Box<AttemptError>> = None;
    for (i, target) in targets.iter().enumerate() {
        let this = Arc::make_mut(&mut request);
        this.model.clone_from(&target.model);
        this.provider.clone_from(&target.provider);
        this.key.clone_from(&target.key);
        // Each model is asked the agent's own request, not a correction of another's reply.
        this.correction = None;
        let how = Try {
            target,
            index: i,
            begun,
            policy,
            on_failure,
            meter,
        };
        match with_retries(&how, &mut request, &mut attempts).await {
            Ok(answer) => {
                return Box::new(Called {
                    result: Ok(*answer),
                    attempts,
                });
            }
            // No room in the budget for this model: none for the next either.
            // Left in a batch for the run that collects it: nothing more is tried.
            Err(e) if matches!(e.kind, ErrorKind::Budget | ErrorKind::Detached) => {
                last = Some(e);
                break;
            }
            Err(e) => {
                // The next fallback model follows: say so.
                if let Some(next) = targets.get(i + 1) {
                    tracing::info!(
                        "falling back from {}/{} to {}/{}",
                        target.provider,
                        target.model,
                        next.provider,
                        next.model
                    );
                    if let Some(attempt) = attempts.last() {
                        on_failure(attempt);
                    }
                }
                last = Some(e);
            }
        }
    }
    let last = last.map_or_else(
        || AttemptError::permanent("no model to call".into(), None),
        |e| *e,
    );
    Box::new(Called {
        result: Err(last),
        attempts,
    })
}

/// Awaits a future with its output boxed as it is made: the future that awaits
/// it keeps a pointer across the wait, not room for the output (a reply, an
/// error) in its own layout.
struct Boxed<'a, F: ?Sized>(Pin<&'a mut F>);

impl<F: Future + ?Sized> Future for Boxed<'_, F> {
    type Output = Box<F::Output>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.0.as_mut().poll(cx).map(Box::new)
    }
}

/// How to try one model.
struct Try<'a> {
    target: &'a Target,
    /// Its index in the call's targets.
    index: usize,
    /// When the call began: attempts are placed from here.
    begun: Instant,
    policy: &'a Policy,
    on_failure: &'a (dyn Fn(&Attempt) + Send + Sync),
    meter: &'a dyn Meter,
}

/// Tries one model until it answers, fails for good, or its retries are spent.
/// What an attempt ended with is handled by [`settle`], a plain function: the
/// values it makes (a reply, an error, the attempt's record) are then never laid
/// out in this future, which a batched call keeps while it waits.
async fn with_retries(
    how: &Try<'_>,
    request: &mut Arc<Request>,
    attempts: &mut Vec<Attempt>,
) -> Result<Box<Answer>, Box<AttemptError>> {
    let name = format!("{}/{}", how.target.provider, how.target.model);
    let mut retry = 0;
    loop {
        how.meter.before(how.index, request).await?;
        let start = Instant::now();
        let mut attempt = how.target.client.attempt(request);
        // A client that keeps its own deadline (a batch's) is not timed here; a
        // timer is on the heap, as a batched call waits without one.
        let timeout = request
            .timeout
            .filter(|_| !how.target.client.own_deadline());
        let outcome = match timeout {
            Some(total) => Box::pin(tokio::time::timeout(total, Boxed(attempt.as_mut())))
                .await
                .unwrap_or_else(|_| {
                    // It may have been sent, and billed, before the time ran out.
                    Box::new(Err(AttemptError::cut_off(
                        None,
                        format!("timed out after {}", humantime::format_duration(total)),
                        Reply::default(),
                    )))
                }),
            None => Boxed(attempt.as_mut()).await,
        };
        drop(attempt);
        let ended = Ended {
            name: &name,
            start,
            retry,
        };
        let delay = match settle(how, &ended, request, attempts, outcome) {
            Step::Done(result) => return result,
            Step::Correct => continue,
            Step::Retry(delay) => delay,
        };
        Box::pin(tokio::time::sleep(how.policy.sleep_for(delay))).await;
        retry += 1;
    }
}

/// An attempt that ended: its model's name, when it started, and its retry number.
struct Ended<'a> {
    name: &'a str,
    start: Instant,
    retry: u32,
}

/// What follows an attempt.
enum Step {
    /// The model answered, or failed for good.
    Done(Result<Box<Answer>, Box<AttemptError>>),
    /// Its reply did not match the schema: ask again with the errors.
    Correct,
    /// Try it again after this wait.
    Retry(Duration),
}

/// Bills and records an attempt that ended with `outcome`, and says what follows.
fn settle(
    how: &Try<'_>,
    ended: &Ended<'_>,
    request: &mut Arc<Request>,
    attempts: &mut Vec<Attempt>,
    outcome: Box<Result<Reply, AttemptError>>,
) -> Step {
    let Try {
        target,
        index,
        begun,
        policy,
        on_failure,
        meter,
    } = *how;
    let Ended { name, start, retry } = *ended;
    let at = start.duration_since(begun).as_secs_f64();
    let seconds = start.elapsed().as_secs_f64();
    let outcome = *outcome;
    meter.after(index, request, outcome.as_ref());
    let error = match outcome {
        Ok(reply) => match check_json(request, reply) {
            Ok(reply) => {
                attempts.push(Attempt {
                    model: name.to_string(),
                    at,
                    status: None,
                    outcome: "ok".into(),
                    seconds,
                    delay_ms: 0,
                });
                return Step::Done(Ok(Box::new(Answer {
                    reply,
                    model: name.to_string(),
                })));
            }
            Err(bad) if request.correction.is_none() => {
                let (reply, problem) = *bad;
                attempts.push(Attempt {
                    model: name.to_string(),
                    at,
                    status: None,
                    outcome: format!("reply did not match the schema: {problem}"),
                    seconds,
                    delay_ms: 0,
                });
                on_failure(attempts.last().expect("just pushed"));
                Arc::make_mut(request).correction = Some((
                    reply.text,
                    format!(
                        "Your reply did not match the required JSON Schema: {problem}. Reply again with only JSON that matches the schema."
                    ),
                ));
                return Step::Correct;
            }
            Err(bad) => AttemptError::permanent(
                format!("the reply did not match the JSON Schema twice: {}", bad.1),
                Some("loosen `schema`, or make the prompt say what to return".into()),
            ),
        },
        Err(e) => e,
    };
    let give_up = error.kind != ErrorKind::Transient
        || retry >= policy.retries
        || error
            .retry_after
            .is_some_and(|d| d > policy.max_retry_after);
    let delay = if give_up {
        Duration::ZERO
    } else {
        policy.delay(retry, error.retry_after)
    };
    attempts.push(Attempt {
        model: name.to_string(),
        at,
        status: error.status,
        outcome: error.message.clone(),
        seconds,
        delay_ms: u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
    });
    if !give_up {
        on_failure(attempts.last().expect("just pushed"));
    }
    if give_up {
        tracing::info!(
            "giving up on {name} after {} attempt(s): {}",
            retry + 1,
            match error.kind {
                ErrorKind::Transient => "retries spent, or the wait asked for is too long",
                ErrorKind::Budget => "no room in the budget for another attempt",
                ErrorKind::Detached => "left in its batch for the run that collects it",
                _ => "not worth retrying",
            }
        );
        let mut error = error;
        if let (true, Some(r)) = (error.unknown_model, &target.retirement) {
            // A retired model explains the refusal; a deprecated one may.
            error.hint = Some(match error.hint.take() {
                Some(hint) if !r.retired => format!("{hint}; {}", r.note),
                _ => r.note.clone(),
            });
        }
        if let Some(wait) = error.retry_after.filter(|d| *d > policy.max_retry_after) {
            error.hint = Some(format!(
                "the provider asked to wait {}; try again later",
                humantime::format_duration(wait)
            ));
        }
        return Step::Done(Err(Box::new(error)));
    }
    // The status and kind only: the message may quote what the server wrote.
    tracing::info!(
        "retry {} of {} for {name} in {} ms (after {})",
        retry + 1,
        policy.retries,
        u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
        error
            .status
            .map_or_else(|| "no response".to_string(), |s| format!("status {s}")),
    );
    Step::Retry(delay)
}

/// For `output: json`: the reply's JSON, checked against the schema.
fn check_json(request: &Request, mut reply: Reply) -> Result<Reply, Box<(Reply, String)>> {
    if request.output != OutputKind::Json {
        return Ok(reply);
    }
    let value = match reply
        .json
        .take()
        .map_or_else(|| parse_json_text(&reply.text), Ok)
    {
        Ok(value) => value,
        Err(problem) => return Err(Box::new((reply, problem))),
    };
    if let Some(schema) = &request.schema {
        let problems: Vec<String> = match jsonschema::validator_for(schema) {
            Ok(validator) => validator
                .iter_errors(&value)
                .take(5)
                .map(|e| format!("{} at `{}`", e, e.instance_path()))
                .collect(),
            Err(e) => vec![format!("the schema does not compile: {e}")],
        };
        if !problems.is_empty() {
            return Err(Box::new((reply, problems.join("; "))));
        }
    }
    reply.text = value.to_string();
    reply.json = Some(value);
    Ok(reply)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A provider whose attempts never end: a call to it waits, as a batched
    /// call waits on its batch.
    struct Waits;

    impl Provider for Waits {
        fn attempt<'a>(
            &'a self,
            _: &'a Arc<Request>,
        ) -> BoxFuture<'a, Result<Reply, AttemptError>> {
            Box::pin(std::future::pending())
        }
    }

    /// A provider that answers after a minute, timed by the request's timeout or,
    /// with `own`, by a deadline of its own (a batch's).
    struct Slow {
        own: bool,
    }

    impl Provider for Slow {
        fn attempt<'a>(
            &'a self,
            _: &'a Arc<Request>,
        ) -> BoxFuture<'a, Result<Reply, AttemptError>> {
            Box::pin(async {
                tokio::time::sleep(Duration::from_mins(1)).await;
                Ok(Reply {
                    text: "late".into(),
                    ..Reply::default()
                })
            })
        }

        fn own_deadline(&self) -> bool {
            self.own
        }
    }

    fn target(client: Arc<dyn Provider>) -> Target {
        Target {
            client,
            provider: "anthropic".into(),
            model: "claude-sonnet-4-5".into(),
            key: None,
            retirement: None,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_with_its_own_deadline_is_not_timed_by_the_request() {
        let policy = Policy::new(0);
        let on_failure = |_: &Attempt| {};
        for own in [false, true] {
            let target = target(Arc::new(Slow { own }));
            let request = Arc::new(Request {
                timeout: Some(Duration::from_secs(1)),
                ..Request::default()
            });
            let called = call(
                std::slice::from_ref(&target),
                request,
                &policy,
                &on_failure,
                &Unmetered,
            )
            .await;
            match (own, called.result) {
                (true, Ok(answer)) => assert_eq!(answer.reply.text, "late"),
                (false, Err(e)) => assert_eq!(e.message, "timed out after 1s"),
                (own, other) => panic!("own deadline {own}: {:?}", other.map(|a| a.reply)),
            }
        }
    }

    /// A batch run keeps one waiting call per request (tens of thousands): what
    /// the call's future lays out beside the wait (a reply, an error, a timer,
    /// the attempt's record) is kept as long, so it is boxed or made after it.
    #[test]
    fn a_waiting_call_keeps_little() {
        let target = target(Arc::new(Waits));
        let policy = Policy::new(3);
        let on_failure = |_: &Attempt| {};
        let request = Arc::new(Request {
            timeout: Some(Duration::from_hours(25)),
            ..Request::default()
        });
        let call = call(
            std::slice::from_ref(&target),
            request,
            &policy,
            &on_failure,
            &Unmetered,
        );
        let size = std::mem::size_of_val(&call);
        eprintln!("call future: {size} bytes");
        assert!(size <= 600, "a waiting call's future is {size} bytes");
    }
}
