//! One agent's call, start to finish: each model in turn (the agent's own, then
//! its `fallback` models), each tried up to its retry budget with back-off, and a
//! JSON reply checked against the agent's schema, with one more try that feeds the
//! validation errors back. Every attempt is recorded.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::retry::Policy;
use super::wire::parse_json_text;
use super::{AttemptError, ErrorKind, Provider, Reply, Request};
use crate::usage::Usage;
use crate::workflow::model::OutputKind;

/// A model to try: its client, and its `provider/model` name.
#[derive(Clone)]
pub struct Target {
    pub client: Arc<dyn Provider>,
    pub provider: String,
    pub model: String,
    /// The key a call to this model sends, if any.
    pub key: Option<crate::keys::KeyRef>,
}

/// One attempt, as the run record keeps it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Attempt {
    /// `provider/model`.
    pub model: String,
    /// The HTTP status, when there was a response.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// `ok`, or what went wrong.
    pub outcome: String,
    pub seconds: f64,
    /// How long byok-flow waited after this attempt before the next, in milliseconds.
    pub delay_ms: u64,
}

/// How a call ended.
pub struct Called {
    pub result: Result<Answer, AttemptError>,
    pub attempts: Vec<Attempt>,
    /// Tokens the provider reported for each target (by index in `targets`): every
    /// reply it gave, the one that did not match the JSON schema included.
    pub usage: Vec<Usage>,
    /// Whether an attempt may have been billed without a report: it was cut off
    /// after the request went out (a time-out, a dropped or broken stream).
    pub unreported: bool,
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
pub async fn call(
    targets: &[Target],
    request: &Request,
    policy: &Policy,
    on_failure: &(dyn Fn(&Attempt) + Send + Sync),
) -> Called {
    let mut tally = Tally {
        attempts: Vec::new(),
        usage: vec![Usage::default(); targets.len()],
        unreported: false,
    };
    let mut last = AttemptError::permanent("no model to call".into(), None);
    for (i, target) in targets.iter().enumerate() {
        let mut request = request.clone();
        request.model.clone_from(&target.model);
        request.provider.clone_from(&target.provider);
        request.key.clone_from(&target.key);
        match with_retries(target, i, &request, policy, &mut tally, on_failure).await {
            Ok(answer) => return tally.into_called(Ok(answer)),
            Err(e) => {
                // The next fallback model follows: say so.
                if i + 1 < targets.len() {
                    if let Some(attempt) = tally.attempts.last() {
                        on_failure(attempt);
                    }
                }
                last = e;
            }
        }
    }
    tally.into_called(Err(last))
}

/// What the attempts of one call add up to.
struct Tally {
    attempts: Vec<Attempt>,
    usage: Vec<Usage>,
    unreported: bool,
}

impl Tally {
    fn into_called(self, result: Result<Answer, AttemptError>) -> Called {
        Called {
            result,
            attempts: self.attempts,
            usage: self.usage,
            unreported: self.unreported,
        }
    }
}

async fn with_retries(
    target: &Target,
    index: usize,
    request: &Request,
    policy: &Policy,
    tally: &mut Tally,
    on_failure: &(dyn Fn(&Attempt) + Send + Sync),
) -> Result<Answer, AttemptError> {
    let name = format!("{}/{}", target.provider, target.model);
    let mut request = request.clone();
    let attempts = &mut tally.attempts;
    let mut retry = 0;
    loop {
        let start = Instant::now();
        let outcome = match request.timeout {
            Some(total) => tokio::time::timeout(total, target.client.attempt(&request))
                .await
                .unwrap_or_else(|_| {
                    Err(AttemptError {
                        unreported: true,
                        ..AttemptError::transient(
                            None,
                            format!("timed out after {}", humantime::format_duration(total)),
                        )
                    })
                }),
            None => target.client.attempt(&request).await,
        };
        let seconds = start.elapsed().as_secs_f64();
        let error = match outcome {
            Ok(reply) => {
                tally.usage[index] += reply.usage;
                match check_json(&request, reply) {
                    Ok(reply) => {
                        attempts.push(Attempt {
                            model: name.clone(),
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
                            status: None,
                            outcome: format!("reply did not match the schema: {problem}"),
                            seconds,
                            delay_ms: 0,
                        });
                        on_failure(attempts.last().expect("just pushed"));
                        request.correction = Some((
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
                }
            }
            Err(e) => {
                tally.unreported |= e.unreported;
                e
            }
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
            status: error.status,
            outcome: error.message.clone(),
            seconds,
            delay_ms: u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
        });
        if !give_up {
            on_failure(attempts.last().expect("just pushed"));
        }
        if give_up {
            let mut error = error;
            if let Some(wait) = error.retry_after.filter(|d| *d > policy.max_retry_after) {
                error.hint = Some(format!(
                    "the provider asked to wait {}; try again later",
                    humantime::format_duration(wait)
                ));
            }
            return Err(error);
        }
        tracing::info!(model = %name, retry = retry + 1, delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX), "retrying after: {}", error.message);
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
