//! What each attempt of an agent's call may cost, and did: the runner's
//! [`Meter`]. Before an attempt it reserves the attempt's worst case from the
//! budget (if the run has one); after, it bills the attempt: the usage the provider
//! reported, tokens it did not report counted locally (and marked so, with a
//! warning once per provider), and, for an attempt cut off after it was sent, the
//! whole reservation kept as spent since its bill is unknown.
//!
//! Counting goes through [`input_bound`] (context windows, without a BPE),
//! [`input_count`] and [`output_count`] only, on the `cost::tokens` API, so a change
//! to how tokens are counted applies everywhere.

use std::sync::{Arc, Mutex, PoisonError};

use super::AgentRunner;
use crate::cost::bill::{self, Bill};
use crate::cost::call::Shape;
use crate::cost::tokens::{Count, Tokenizer};
use crate::cost::{Price, Usd};
use crate::events::Event;
use crate::prompt_cache::Ttl;
use crate::providers::call::Meter;
use crate::providers::{AttemptError, BoxFuture, ErrorKind, Reply, Reported, Request};
use crate::scheduler::Task;
use crate::usage::Usage;

/// The tokens of a request's input (system, prompt, and a JSON correction's turns),
/// as an estimate and an upper bound.
pub fn input_count(tokenizer: &Tokenizer, request: &Request) -> Count {
    let mut count = tokenizer.count_request(request.system.as_deref(), &request.prompt);
    if let Some((previous, correction)) = &request.correction {
        // Two more turns: framed as a request of their own, which counts a little over.
        let more = tokenizer.count_request(Some(previous), correction);
        count.tokens = count.tokens.saturating_add(more.tokens);
        count.bound = count.bound.saturating_add(more.bound);
    }
    count
}

/// [`input_count`] by the bound that needs no BPE ([`Tokenizer::bound_request`]):
/// enough to know a prompt fits its context window, so a run without a budget
/// loads no tokenizer.
pub fn input_bound(tokenizer: &Tokenizer, request: &Request) -> Count {
    let mut count = tokenizer.bound_request(request.system.as_deref(), &request.prompt);
    if let Some((previous, correction)) = &request.correction {
        let more = tokenizer.bound_request(Some(previous), correction);
        count.tokens = count.tokens.saturating_add(more.tokens);
        count.bound = count.bound.saturating_add(more.bound);
    }
    count
}

/// The tokens of reply text received, as an estimate and an upper bound.
pub fn output_count(tokenizer: &Tokenizer, text: &str) -> Count {
    tokenizer.scale(tokenizer.raw(text))
}

/// An agent's bill as its attempts go, and the attempt in flight, if any.
#[derive(Debug, Default)]
pub struct Tab {
    pub bill: Bill,
    in_flight: Option<InFlight>,
    /// Its own model's input, as counted when it was prepared (with a budget): the
    /// same for every attempt on that model but a JSON correction.
    first_input: Option<Count>,
}

impl Tab {
    /// A tab for an agent whose first model's input was counted as `first_input`.
    pub fn new(first_input: Option<Count>) -> Self {
        Tab {
            first_input,
            ..Tab::default()
        }
    }
}

/// The attempt being made.
#[derive(Debug)]
struct InFlight {
    target: usize,
    /// The call's own request, shared: a tab is kept for each call in flight.
    request: Arc<Request>,
    /// Its input as the reservation counted it (with a budget only).
    input: Option<Count>,
    /// Its reservation (with a budget only: an attempt is never sent on an
    /// unknown one).
    reserved: Option<Usd>,
}

/// A task's meter for one call (an agent's, or one item's of a map agent).
pub struct AgentMeter<'a> {
    pub runner: &'a AgentRunner,
    pub task: Task,
    pub tab: Arc<Mutex<Tab>>,
}

impl AgentMeter<'_> {
    fn tab(&self) -> std::sync::MutexGuard<'_, Tab> {
        self.tab.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Meter for AgentMeter<'_> {
    fn before<'a>(
        &'a self,
        target: usize,
        request: &'a Arc<Request>,
    ) -> BoxFuture<'a, Result<(), AttemptError>> {
        Box::pin(async move {
            let (mut input, mut reserved) = (None, None);
            if let Some(budget) = &self.runner.budget {
                let known = self.tab().first_input;
                let agent = self.task.agent;
                let count = match known {
                    Some(count) if target == 0 && request.correction.is_none() => count,
                    _ => self.runner.input_for(agent, target, request),
                };
                let worst = self.runner.attempt_worst(agent, target, request, count);
                let client = &self.runner.targets[agent][target].client;
                let sent = client.holds(request);
                let room = budget.reserve(self.task, worst, sent.as_deref()).await;
                room.map_err(|why| AttemptError {
                    kind: ErrorKind::Budget,
                    ..AttemptError::permanent(
                        format!("not sent to {}/{}: {why}", request.provider, request.model),
                        Some("raise the budget, or lower `max_tokens` or `retries`".into()),
                    )
                })?;
                client.reserving(request, &|| worst);
                (input, reserved) = (Some(count), worst);
            } else {
                // No budget here, but a run that collects this attempt's batch
                // may have one: its worst case, by the bound that needs no BPE.
                let agent = self.task.agent;
                self.runner.targets[agent][target]
                    .client
                    .reserving(request, &|| {
                        let tokenizer = &self.runner.candidates[agent][target].0;
                        let count = input_bound(tokenizer, request);
                        self.runner.attempt_worst(agent, target, request, count)
                    });
            }
            self.tab().in_flight = Some(InFlight {
                target,
                request: request.clone(),
                input,
                reserved,
            });
            Ok(())
        })
    }

    fn after(&self, target: usize, request: &Request, outcome: Result<&Reply, &AttemptError>) {
        let in_flight = self.tab().in_flight.take();
        let input = in_flight.as_ref().and_then(|f| f.input);
        let reserved = in_flight.and_then(|f| f.reserved);
        let (received, complete) = match outcome {
            Ok(reply) => (Some(reply), true),
            Err(e) => (e.cut_off.as_deref(), false),
        };
        let charge = self.runner.bill_attempt(
            self.task.agent,
            &Billing {
                target,
                request,
                received,
                complete,
                input,
                reserved,
            },
            &mut self.tab().bill,
        );
        if let Some(budget) = &self.runner.budget {
            budget.charge(self.task, charge);
        }
    }
}

/// One attempt to bill.
struct Billing<'a> {
    target: usize,
    request: &'a Request,
    /// What came back: a whole reply, or what arrived before it broke off; `None`
    /// when nothing was billed (not sent, or an error status).
    received: Option<&'a Reply>,
    /// Whether `received` is a whole reply.
    complete: bool,
    /// The input its reservation counted, when it made one.
    input: Option<Count>,
    reserved: Option<Usd>,
}

impl AgentRunner {
    /// The input of `request` to `agent`'s `target`th model, counted.
    pub(super) fn input_for(&self, agent: usize, target: usize, request: &Request) -> Count {
        input_count(&self.candidates[agent][target].0, request)
    }

    /// The most an attempt of `request` on `agent`'s `target`th model can cost: its
    /// input (at the upper bound) at the dearest input rate, and its output limit,
    /// each scaled by what the provider was seen to bill beyond it. `None` when
    /// unpriced or with no output limit.
    pub(super) fn attempt_worst(
        &self,
        agent: usize,
        target: usize,
        request: &Request,
        input: Count,
    ) -> Option<Usd> {
        let price = self.candidates[agent][target].1.as_deref()?;
        let output = output_limit(request, price)?;
        let output = self
            .output_ratios
            .scale(&request.provider, &request.model, output);
        let input = self
            .ratios
            .scale(&request.provider, &request.model, input.bound);
        price.worst_call(&self.shape(agent, target, request), input, output)
    }

    /// What an attempt of `request` on `agent`'s `target`th model may do beyond
    /// a prompt and a reply: its tools, and 1-hour cache writes.
    pub(super) fn shape(&self, agent: usize, target: usize, request: &Request) -> Shape {
        let one_hour = request.cache.is_some_and(|p| p.ttl == Ttl::OneHour);
        Shape::new(self.kinds[agent][target], &request.tools, one_hour)
    }

    /// The input tokens a reservation of `request` counted, with what its tools
    /// may add: what a reply's billed input is compared with.
    fn reserved_input(&self, agent: usize, target: usize, request: &Request, counted: u64) -> u64 {
        let output = request.max_tokens.map_or(0, u64::from);
        self.shape(agent, target, request)
            .input_bound(counted, output)
    }

    /// Adds an attempt to `bill`; returns what the budget charges for it (`None`:
    /// its bill is unknown, so the whole reservation is kept).
    fn bill_attempt(&self, agent: usize, b: &Billing<'_>, bill: &mut Bill) -> Option<Usd> {
        let (tokenizer, price) = &self.candidates[agent][b.target];
        let price = price.as_deref();
        let Some(received) = b.received else {
            // Never sent, or refused with an error status: nothing billed.
            bill.add(bill::Attempt {
                usage: Usage::default(),
                counted_locally: false,
                price,
                unknown: None,
            });
            return Some(Usd::ZERO);
        };
        let reported = received.reported;
        if reported.input
            && let Some(counted) = b.input
        {
            let billed = received.usage.all_input();
            let counted = self.reserved_input(agent, b.target, b.request, counted.bound);
            self.ratios
                .learn(&b.request.provider, &b.request.model, billed, counted);
        }
        if reported.output
            && b.input.is_some()
            && let Some(limit) = price.and_then(|p| output_limit(b.request, p))
        {
            let billed = received.usage.output;
            self.output_ratios
                .learn(&b.request.provider, &b.request.model, billed, limit);
        }
        if reported.all() {
            bill.add(bill::Attempt {
                usage: received.usage,
                counted_locally: false,
                price,
                unknown: None,
            });
            return Some(price.map_or(Usd::ZERO, |p| p.cost(&received.usage)));
        }
        // Counted here what the provider did not report.
        let input = (!reported.input).then(|| input_count(tokenizer, b.request));
        let output = (!reported.output).then(|| output_count(tokenizer, &received.text));
        let mut usage = received.usage;
        if let Some(input) = input {
            usage.input = input.tokens;
            usage.cache_read = 0;
            usage.cache_write = 0;
            usage.cache_write_1h = 0;
        }
        if let Some(output) = output {
            usage.output = output.tokens;
        }
        if b.complete {
            self.warn_unreported(b.request, reported);
            bill.add(bill::Attempt {
                usage,
                counted_locally: true,
                price,
                unknown: None,
            });
            return Some(price.map_or(Usd::ZERO, |p| {
                let shape = self.shape(agent, b.target, b.request);
                charge_counted(
                    p,
                    &shape,
                    b.request,
                    &received.usage,
                    input,
                    output,
                    self,
                    b.input,
                )
            }));
        }
        // Cut off after it was sent: the provider may bill it whole.
        let worst = b.reserved.or_else(|| {
            let count = b.input.unwrap_or_else(|| input_count(tokenizer, b.request));
            self.attempt_worst(agent, b.target, b.request, count)
        });
        bill.add(bill::Attempt {
            usage,
            counted_locally: true,
            price,
            unknown: Some(worst),
        });
        None
    }

    /// Says once per provider that it reported no usage, so it is counted here.
    fn warn_unreported(&self, request: &Request, reported: Reported) {
        let first = self
            .unreported_warned
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(request.provider.clone());
        if !first {
            return;
        }
        let what = match (reported.input, reported.output) {
            (false, false) => "no token usage",
            (true, false) => "no output tokens",
            _ => "no input tokens",
        };
        let message = format!(
            "`{}` reported {what} for `{}/{}`: byok-flow counts them itself (marked ~ in the results), which is approximate; the budget counts them at their upper bound",
            request.provider, request.provider, request.model
        );
        self.bus.emit(&Event::Warning { message: &message });
    }

    /// The bill of `task` as it stands, for a task cancelled mid-call (Ctrl-C):
    /// an attempt in flight is billed as cut off, with nothing received.
    pub fn cancelled_bill(&self, task: Task) -> Bill {
        let Some(tab) = self
            .tabs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&task)
        else {
            return Bill::default();
        };
        let mut tab = tab.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(f) = tab.in_flight.take().filter(|_| !self.mock) {
            let billing = Billing {
                target: f.target,
                request: &f.request,
                received: Some(&Reply::default()),
                complete: false,
                input: f.input,
                reserved: f.reserved,
            };
            self.bill_attempt(task.agent, &billing, &mut tab.bill);
        }
        tab.bill.clone()
    }
}

/// The output tokens a request may be billed as its reservation counts them: its
/// `max_tokens`, or its model's output limit.
fn output_limit(request: &Request, price: &Price) -> Option<u64> {
    request.max_tokens.map(u64::from).or(price.max_output)
}

/// What the budget charges for a whole reply some of whose counts were not
/// reported: each missing count at its upper bound (the output never above the
/// request's limit), a missing input at the dearest input rate.
#[allow(clippy::too_many_arguments)]
fn charge_counted(
    price: &Price,
    shape: &Shape,
    request: &Request,
    reported: &Usage,
    input: Option<Count>,
    output: Option<Count>,
    runner: &AgentRunner,
    reserved_input: Option<Count>,
) -> Usd {
    let limit = request
        .max_tokens
        .map(u64::from)
        .or(price.max_output)
        .unwrap_or(u64::MAX);
    let output = output.map_or(reported.output, |o| o.bound.min(limit));
    match input {
        Some(input) => {
            let bound = reserved_input.map_or(input.bound, |c| c.bound.max(input.bound));
            let bound = runner
                .ratios
                .scale(&request.provider, &request.model, bound);
            // The tools' uses as reported, their results within the bound.
            let tokens =
                price.worst_tokens(shape.input_bound(bound, output), output, shape.one_hour);
            tokens + price.tool_cost(reported)
        }
        None => price.cost(&Usage {
            output,
            ..*reported
        }),
    }
}
