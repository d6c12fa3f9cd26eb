//! One agent's call, start to finish: each model in turn (the agent's own, then
//! its `fallback` models), each tried up to its retry budget with back-off, and a
//! JSON reply checked against the agent's schema, with one more try that feeds the
//! validation errors back. Every attempt is recorded, and a [`Meter`] hears of each
//! one before it is sent (to reserve what it may cost, or refuse it) and after it
//! ends (to count what it did cost): retries, fallbacks and JSON corrections are
//! each paid for.

use std::sync::Arc;
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
pub async fn call(
    targets: &[Target],
    mut request: Arc<Request>,
    policy: &Policy,
    on_failure: &(dyn Fn(&Attempt) + Send + Sync),
    meter: &dyn Meter,
) -> Called {
    // Most calls are answered at the first attempt; a run keeps every call's list.
    let mut attempts = Vec::with_capacity(1);
    let begun = Instant::now();
    let mut last = AttemptError::permanent("no model to call".into(), None);
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
                return Called {
                    result: Ok(answer),
                    attempts,
                };
            }
            // No room in the budget for this model: none for the next either.
            // Left in a batch for the run that collects it: nothing more is tried.
            Err(e) if matches!(e.kind, ErrorKind::Budget | ErrorKind::Detached) => {
                last = e;
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
                last = e;
            }
        }
    }
    Called {
        result: Err(last),
        attempts,
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

async fn with_retries(
    how: &Try<'_>,
    request: &mut Arc<Request>,
    attempts: &mut Vec<Attempt>,
) -> Result<Answer, AttemptError> {
    let Try {
        target,
        index,
        begun,
        policy,
        on_failure,
        meter,
    } = *how;
    let name = format!("{}/{}", target.provider, target.model);
    let mut retry = 0;
    loop {
        meter.before(index, request).await?;
        let start = Instant::now();
        let at = start.duration_since(begun).as_secs_f64();
        let outcome = match request.timeout {
            Some(total) => tokio::time::timeout(total, target.client.attempt(request))
                .await
                .unwrap_or_else(|_| {
                    // It may have been sent, and billed, before the time ran out.
                    Err(AttemptError::cut_off(
                        None,
                        format!("timed out after {}", humantime::format_duration(total)),
                        Reply::default(),
                    ))
                }),
            None => target.client.attempt(request).await,
        };
        let seconds = start.elapsed().as_secs_f64();
        meter.after(index, request, outcome.as_ref());
        let error = match outcome {
            Ok(reply) => match check_json(request, reply) {
                Ok(reply) => {
                    attempts.push(Attempt {
                        model: name.clone(),
                        at,
                        status: None,
                        outcome: "ok".into(),
                        seconds,
                        delay_ms: 0,
                    });
                    return Ok(Answer { reply, model: name });
                }
                Err(bad) if request.correction.is_none() => {
                    let (reply, problem) = *bad;
                    attempts.push(Attempt {
                        model: name.clone(),
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
                    continue;
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
            model: name.clone(),
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
            return Err(error);
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
        tokio::time::sleep(policy.sleep_for(delay)).await;
        retry += 1;
    }
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
