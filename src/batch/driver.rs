//! The wave driver. Every batched agent's call goes to a [`BatchClient`], which
//! hands the request to the [`Batcher`] and waits for its result. The batcher
//! gathers the requests that arrive together (every agent the scheduler found
//! ready at once: a wave of the DAG; with rows, many rows' agents), groups them
//! per (provider, key, model), splits each group at the provider's limits, and
//! submits each part as one batch. Each batch is written to the run's state
//! before it is waited on, polled with jittered back-off, and its results, in
//! whatever order they come, are handed back by `custom_id`. A result that is an
//! error is that attempt's failure: the call loop retries it (into the next
//! batch) and then tries the fallback models, as for any call.
//!
//! A rerun of the same squad, or `runs resume`, finds the batches earlier runs
//! submitted (their state files): a request whose fingerprint (provider, model,
//! key name, body) one of them holds waits on that batch instead of being
//! submitted again.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::sync::{Notify, oneshot};

use super::api::{BatchApi, Item, Outcome, Phase, Status};
use super::backoff::Backoff;
use super::state::{BatchRecord, RequestRecord, RunState, StateDir, unix_now};
use crate::cost::Usd;
use crate::keys::KeyRef;
use crate::providers::{AttemptError, BoxFuture, ErrorKind, Provider, Reply, Request};
use crate::scheduler::Busy;
use crate::scheduler::busy::{self, Guard};

/// How long a batch may run: the providers' 24 hours, and a margin.
pub const EXPIRY: Duration = Duration::from_hours(25);

/// How long a group waits on busy work that makes no progress before it is submitted.
const PATIENCE: Duration = Duration::from_secs(5);

/// How the batcher works.
pub struct Options {
    pub states: StateDir,
    /// What `--detach` does.
    pub detach: Detach,
    /// How long to wait for more requests after the last one arrived.
    pub gather: Duration,
    pub backoff: Backoff,
    /// This run's state, without its run id and batches.
    pub run: RunState,
    /// Progress lines (each batch's counts and age) and warnings.
    pub note: Arc<dyn Fn(&str) + Send + Sync>,
}

/// What `--detach` does once a request is in a batch the provider has taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detach {
    /// Not detaching: every batch is waited on.
    No,
    /// The run stops once every waiting request is in such a batch (a run of
    /// one squad: its agents are all in the waves it has).
    Stop,
    /// Each such request is handed back to its call as left in its batch, so the
    /// call ends and a dataset's row gives its place in the window to the next
    /// row: the run ends once every row's requests are submitted.
    HandBack,
}

/// Collects batched calls into batches.
#[derive(Clone)]
pub struct Batcher {
    shared: Arc<Shared>,
}

/// Where a request's result goes (`None`: its batch returned none for it), with
/// the count that keeps its task busy until it has taken it (see `scheduler::busy`).
/// The waiting call reads the result: it holds the request.
type Answer = oneshot::Sender<(Option<Outcome>, Guard)>;

/// A request waiting for its batch to be made. Once it is in one (or waits on
/// an earlier run's), only its [`Waiter`] is kept.
struct Pending {
    api: Arc<dyn BatchApi>,
    request: Option<Arc<Request>>,
    custom_id: String,
    label: String,
    fingerprint: String,
    size: usize,
    /// The most its attempt can cost, as the run reserved it (kept in the state).
    reserved: Option<Usd>,
    /// Its batch was polled once (or it was answered).
    settled: bool,
    answer: Answer,
}

impl Pending {
    fn waiter(self) -> Waiter {
        Waiter {
            answer: self.answer,
            settled: self.settled,
        }
    }
}

/// A request in a batch: where its result goes. A wave holds one per request
/// until its batch ends.
struct Waiter {
    answer: Answer,
    /// Its batch was polled once (or it was answered).
    settled: bool,
}

/// A batch of an earlier run that holds a request.
#[derive(Clone)]
struct Known {
    owner: String,
    record: Arc<BatchRecord>,
    custom_id: String,
}

/// The requests waiting on one batch, by `custom_id`.
struct Watch {
    joined: HashMap<String, Vec<Waiter>>,
}

type Group = (String, Option<KeyRef>, String);

struct Shared {
    options: Options,
    /// This run's state; its file exists once it has a batch.
    state: Mutex<RunState>,
    /// Earlier runs' states, by run id, as they were read (batches marked collected here).
    earlier: Mutex<HashMap<String, RunState>>,
    /// The requests earlier runs' batches hold, by fingerprint: one entry per
    /// request (two rows that ask the same each read their own).
    known: Mutex<HashMap<String, Vec<Known>>>,
    queues: Mutex<HashMap<Group, Vec<Pending>>>,
    watches: Mutex<HashMap<String, Watch>>,
    /// Results of earlier runs' batches not yet asked for, by fingerprint.
    stash: Mutex<HashMap<String, Vec<Outcome>>>,
    /// How many times each request went into a batch in this run.
    attempts: Mutex<HashMap<u64, u32>>,
    /// The worst cases of attempts about to be enqueued, by fingerprint (one per
    /// attempt: identical requests of two rows each have theirs).
    reserving: Mutex<HashMap<String, Vec<Usd>>>,
    seq: AtomicU64,
    /// Requests not yet in a batch that was polled once.
    unsettled: AtomicUsize,
    detached: AtomicBool,
    detach: Notify,
    /// The work that may still hand this batcher a request now.
    busy: Busy,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Batcher {
    /// A batcher that knows the batches earlier runs of `workflow` left (their
    /// state files in `options.states`).
    pub fn new(options: Options) -> Self {
        let mut earlier = HashMap::new();
        let mut known = HashMap::new();
        let states: Vec<RunState> = options
            .states
            .load_all()
            .into_iter()
            .filter(|s| s.workflow == options.run.workflow)
            .collect();
        // The run this one collects goes on under its id: the history keeps one
        // run, and its state file goes on with the batches it has.
        let resumed = resumed(&states, &options.run.args).map(|s| s.run_id.clone());
        let mut own = options.run.clone();
        for state in states {
            if Some(&state.run_id) == resumed.as_ref() {
                own.run_id.clone_from(&state.run_id);
                own.started_at.clone_from(&state.started_at);
                own.batches.clone_from(&state.batches);
            }
            for record in &state.batches {
                if record.cancelled || record.handle.id.is_empty() && record.handle.file.is_none() {
                    continue;
                }
                let record = Arc::new(record.clone());
                for r in &record.requests {
                    known
                        .entry(r.fingerprint.clone())
                        .or_insert_with(Vec::new)
                        .push(Known {
                            owner: state.run_id.clone(),
                            record: record.clone(),
                            custom_id: r.custom_id.clone(),
                        });
                }
            }
            if Some(&state.run_id) != resumed.as_ref() {
                earlier.insert(state.run_id.clone(), state);
            }
        }
        Batcher {
            shared: Arc::new(Shared {
                options,
                state: Mutex::new(own),
                earlier: Mutex::new(earlier),
                known: Mutex::new(known),
                queues: Mutex::default(),
                watches: Mutex::default(),
                stash: Mutex::default(),
                attempts: Mutex::default(),
                reserving: Mutex::default(),
                seq: AtomicU64::new(0),
                unsettled: AtomicUsize::new(0),
                detached: AtomicBool::new(false),
                detach: Notify::new(),
                busy: Busy::default(),
            }),
        }
    }

    /// The id of the detached or interrupted run this one collects, if any: the
    /// run goes on under it (see [`resumed`]).
    pub fn resumes(&self) -> Option<String> {
        let state = lock(&self.shared.state);
        (!state.run_id.is_empty()).then(|| state.run_id.clone())
    }

    /// The run's id, once the run has one: its state file is named for it.
    pub fn set_run_id(&self, run_id: &str) {
        lock(&self.shared.state).run_id = run_id.to_string();
    }

    pub fn run_id(&self) -> String {
        lock(&self.shared.state).run_id.clone()
    }

    /// Where the scheduler counts the work that may still hand this batcher a
    /// request: a wave is submitted once none is left.
    pub fn busy(&self) -> Busy {
        self.shared.busy.clone()
    }

    /// A client for `label`'s calls through `api`.
    pub fn client(&self, api: Arc<dyn BatchApi>, label: &str) -> Arc<dyn Provider> {
        Arc::new(BatchClient {
            batcher: self.clone(),
            api,
            label: label.to_string(),
        })
    }

    /// Resolves once every waiting request is in a batch the provider has taken
    /// (with `--detach`); never otherwise.
    pub async fn detached(&self) {
        if self.shared.options.detach != Detach::Stop {
            std::future::pending::<()>().await;
        }
        self.shared.detach.notified().await;
    }

    /// Whether the run left batches to the run that collects them (`--detach`).
    pub fn did_detach(&self) -> bool {
        self.shared.detached.load(Ordering::SeqCst)
    }

    /// What the requests of earlier runs' batches not yet collected may cost, by
    /// fingerprint (one entry per request), as they were reserved when sent: the
    /// provider bills them whatever this run does, so its budget counts them from
    /// its start. With how many such requests have no amount (a state written by
    /// an older byok-flow, or an unpriced model): each counts only when its
    /// request comes up, at its worst case computed again.
    pub fn held(&self) -> (Vec<(String, Usd)>, usize) {
        let own = lock(&self.shared.state);
        let earlier = lock(&self.shared.earlier);
        let mut held = Vec::new();
        let mut unknown = 0;
        let pending = own
            .batches
            .iter()
            .chain(earlier.values().flat_map(|s| &s.batches))
            .filter(|b| b.pending());
        for r in pending.flat_map(|b| &b.requests) {
            match r.reserved_pico {
                Some(pico) => held.push((r.fingerprint.clone(), Usd::from_pico(pico))),
                None => unknown += 1,
            }
        }
        (held, unknown)
    }

    /// Batches submitted or adopted that have not been collected: (run id, count).
    pub fn pending(&self) -> usize {
        let own = lock(&self.shared.state)
            .batches
            .iter()
            .filter(|b| b.pending())
            .count();
        let earlier: usize = lock(&self.shared.earlier)
            .values()
            .flat_map(|s| &s.batches)
            .filter(|b| b.pending())
            .count();
        own + earlier
    }

    /// At the end of a run: state files whose batches are all collected are
    /// removed; the rest stay for a rerun or `runs resume`.
    pub fn finish(&self) {
        if self.did_detach() {
            return;
        }
        let states = &self.shared.options.states;
        let own = lock(&self.shared.state);
        if !own.run_id.is_empty() && own.batches.iter().all(|b| !b.pending()) {
            states.remove(&own.run_id);
        }
        for state in lock(&self.shared.earlier).values() {
            if state.batches.iter().all(|b| !b.pending()) {
                states.remove(&state.run_id);
            }
        }
    }
}

/// The client of a batched agent: each attempt is one request in a batch.
struct BatchClient {
    batcher: Batcher,
    api: Arc<dyn BatchApi>,
    label: String,
}

impl Provider for BatchClient {
    /// A batch is taken as expired once it has run [`EXPIRY`]; its calls wait
    /// for it without a timer each.
    fn own_deadline(&self) -> bool {
        true
    }

    /// An earlier run's batch holds it (or its result, read already): its fingerprint.
    fn holds(&self, request: &Request) -> Option<String> {
        let shared = &self.batcher.shared;
        if lock(&shared.known).is_empty() && lock(&shared.stash).is_empty() {
            return None;
        }
        let (fingerprint, _) = fingerprint(self.api.as_ref(), request.key.as_ref(), request);
        let held = lock(&shared.known).contains_key(&fingerprint)
            || lock(&shared.stash).contains_key(&fingerprint);
        held.then_some(fingerprint)
    }

    /// Kept for the request's line in the state (see [`RequestRecord::reserved_pico`]).
    fn reserving(&self, request: &Request, worst: &dyn Fn() -> Option<Usd>) {
        let Some(worst) = worst() else {
            return;
        };
        let (fingerprint, _) = fingerprint(self.api.as_ref(), request.key.as_ref(), request);
        lock(&self.batcher.shared.reserving)
            .entry(fingerprint)
            .or_default()
            .push(worst);
    }

    fn attempt<'a>(
        &'a self,
        request: &'a std::sync::Arc<Request>,
    ) -> BoxFuture<'a, Result<Reply, AttemptError>> {
        Box::pin(async move {
            let (answer, reply) = oneshot::channel();
            // A dataset's request names its row (and item); a run's, its agent.
            let label = request.label.as_deref().unwrap_or(&self.label);
            self.batcher
                .shared
                .clone()
                .enqueue(self.api.clone(), label, request.clone(), answer);
            let Ok((outcome, guard)) = reply.await else {
                return Err(AttemptError::transient(
                    None,
                    "the batch this request was in was dropped".into(),
                ));
            };
            busy::keep(guard);
            // The batch ran: a request without a readable result may have been
            // processed, and billed, all the same (its bill is unknown).
            match outcome {
                None => Err(AttemptError::cut_off(
                    None,
                    format!(
                        "{} batch: no result came back for this request",
                        self.api.provider()
                    ),
                    Reply::default(),
                )),
                Some(Outcome::Reply(reply)) => Ok(*reply),
                Some(Outcome::Error(e)) => Err(e),
                Some(Outcome::Body(body)) => self.api.parse(request, &body).map_err(|e| {
                    AttemptError::cut_off(
                        None,
                        format!("malformed result in the batch: {e}"),
                        self.api.salvage(&body),
                    )
                }),
            }
        })
    }
}

/// One of the entries of `key`, taken out.
fn take_one<T>(map: &mut HashMap<String, Vec<T>>, key: &str) -> Option<T> {
    let taken = map.get_mut(key).and_then(Vec::pop);
    if map.get(key).is_some_and(Vec::is_empty) {
        map.remove(key);
    }
    taken
}

/// The fingerprint of a request as a batch carries it.
fn fingerprint(api: &dyn BatchApi, key: Option<&KeyRef>, request: &Request) -> (String, usize) {
    let params = api.params(request).to_string();
    let mut hasher = Sha256::new();
    for part in [
        api.provider(),
        &request.model,
        &key.map(ToString::to_string).unwrap_or_default(),
        &params,
    ] {
        hasher.update(part.as_bytes());
        hasher.update([0]);
    }
    let hex = hasher.finalize().iter().fold(String::new(), |mut s, b| {
        s.push_str(&format!("{b:02x}"));
        s
    });
    // The id, the method and URL around the parameters in a batch line.
    (hex, params.len() + 128)
}

/// A fingerprint's first 64 bits: what the attempts are counted by.
fn short(fingerprint: &str) -> u64 {
    fingerprint
        .get(..16)
        .and_then(|hex| u64::from_str_radix(hex, 16).ok())
        .unwrap_or(0)
}

/// A `custom_id` the providers take (`^[a-zA-Z0-9_-]{1,64}$`): the label and a number.
fn custom_id(label: &str, seq: u64) -> String {
    let clean: String = label
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(40)
        .collect();
    format!("{clean}-{seq}")
}

impl Shared {
    fn note(&self, line: &str) {
        (self.options.note)(line);
    }

    fn enqueue(
        self: Arc<Self>,
        api: Arc<dyn BatchApi>,
        label: &str,
        request: Arc<Request>,
        answer: Answer,
    ) {
        if request.stream {
            tracing::debug!("`{label}`: streaming is off for calls in a batch");
        }
        let key = request.key.clone();
        let (fingerprint, size) = fingerprint(api.as_ref(), key.as_ref(), &request);
        let provider = api.provider().to_string();
        self.unsettled.fetch_add(1, Ordering::SeqCst);
        let reserved = take_one(&mut lock(&self.reserving), &fingerprint);
        let pending = Pending {
            api,
            custom_id: custom_id(label, self.seq.fetch_add(1, Ordering::SeqCst) + 1),
            label: label.to_string(),
            request: Some(request),
            fingerprint,
            size,
            reserved,
            settled: false,
            answer,
        };
        // A result an earlier run's batch already holds (its request's entry
        // goes with it).
        let stashed = take_one(&mut lock(&self.stash), &pending.fingerprint);
        if let Some(outcome) = stashed {
            take_one(&mut lock(&self.known), &pending.fingerprint);
            self.answer(pending.waiter(), Some(outcome));
            return;
        }
        // A request an earlier run's batch holds: wait on that batch.
        let known = take_one(&mut lock(&self.known), &pending.fingerprint);
        if let Some(known) = known {
            tracing::info!(
                "`{label}`: answered by batch {} of run {}, not submitted again",
                known.record.handle.id,
                known.owner
            );
            self.join(known, pending);
            return;
        }
        let model = pending.request.as_ref().map(|r| r.model.clone());
        let group = (provider, key, model.unwrap_or_default());
        let first = {
            let mut queues = lock(&self.queues);
            let queue = queues.entry(group.clone()).or_default();
            queue.push(pending);
            queue.len() == 1
        };
        if first {
            tokio::spawn(self.flush(group));
        }
    }

    /// Waits until every request that can be made now has been (nothing the
    /// scheduler runs is busy) and none has joined the group for the gathering
    /// time (retries come a back-off apart), then submits what it holds.
    async fn flush(self: Arc<Self>, group: Group) {
        let count = |s: &Self| lock(&s.queues).get(&group).map_or(0, Vec::len);
        let mut busy = self.busy.watch();
        loop {
            // What is busy can be stuck (a file that reads slowly): a long
            // while without a change, and what has come goes.
            let mut seen = (count(&self), self.busy.count());
            let stuck = loop {
                if tokio::time::timeout(PATIENCE, busy.wait_for(|n| *n == 0))
                    .await
                    .is_ok()
                {
                    break false;
                }
                let now = (count(&self), self.busy.count());
                if now == seen {
                    break true;
                }
                seen = now;
            };
            if stuck {
                tracing::info!("batch: work still busy after {PATIENCE:?}; submitting what came");
                break;
            }
            let before = count(&self);
            tokio::time::sleep(self.options.gather).await;
            if count(&self) == before && self.busy.count() == 0 {
                break;
            }
        }
        let pendings = lock(&self.queues).remove(&group).unwrap_or_default();
        let Some(api) = pendings.first().map(|p| p.api.clone()) else {
            return;
        };
        for part in split(pendings, api.limits().requests, api.limits().bytes) {
            let this = self.clone();
            tokio::spawn(this.submit(api.clone(), group.clone(), part));
        }
    }

    /// Submits one batch, writes it to the state, and waits on it.
    async fn submit(self: Arc<Self>, api: Arc<dyn BatchApi>, group: Group, mut part: Vec<Pending>) {
        let (provider, key, model) = group;
        // The bodies go into the batch; the entries keep where the results go.
        let mut items: Vec<Item> = Vec::with_capacity(part.len());
        items.extend(part.iter_mut().filter_map(|p| {
            Some(Item {
                custom_id: p.custom_id.clone(),
                request: p.request.take()?,
            })
        }));
        // Its requests are kept in the state alone, not copied at each write.
        let requests = {
            let mut attempts = lock(&self.attempts);
            part.iter()
                .map(|p| {
                    let attempt = attempts.entry(short(&p.fingerprint)).or_insert(0);
                    *attempt += 1;
                    RequestRecord {
                        custom_id: p.custom_id.clone(),
                        label: p.label.clone(),
                        attempt: *attempt,
                        fingerprint: p.fingerprint.clone(),
                        reserved_pico: p.reserved.map(Usd::pico),
                    }
                })
                .collect()
        };
        let mut record = BatchRecord {
            provider: provider.clone(),
            key: key.as_ref().map(ToString::to_string),
            model: model.clone(),
            submitted_at: unix_now(),
            ..BatchRecord::default()
        };
        // Its place in the state, taken now: batches are submitted side by side.
        let index = {
            let mut state = lock(&self.state);
            state.batches.push(BatchRecord {
                requests,
                ..record.clone()
            });
            state.batches.len() - 1
        };
        let fail = |part: Vec<Pending>, error: &AttemptError| {
            for p in part {
                self.answer(p.waiter(), Some(Outcome::Error(error.clone())));
            }
        };
        let file = match api.upload(key.as_ref(), &items).await {
            Ok(file) => file,
            Err(mut e) => {
                // An uploaded file is billed nothing, whatever became of it.
                e.cut_off = None;
                return fail(part, &whole_batch(&provider, e));
            }
        };
        if let Some(file) = &file {
            // Uploaded: a run killed now creates the batch from this file when rerun.
            record.handle.file = Some(file.clone());
            self.record(index, &record);
        }
        let handle = match api
            .create(key.as_ref(), &model, &items, file.as_deref())
            .await
        {
            Ok(handle) => handle,
            Err(e) => {
                if file.is_some() {
                    api.clean_up(key.as_ref(), &record.handle).await;
                    record.cancelled = true;
                    self.record(index, &record);
                }
                return fail(part, &whole_batch(&provider, e));
            }
        };
        // The requests are at the provider: their copies are not kept while waiting.
        drop(items);
        record.handle = handle;
        // Written before waiting: from here on the batch is never submitted again.
        self.record(index, &record);
        self.note(&format!(
            "batch {} submitted to {provider}: {} request{} for {model}",
            record.handle.id,
            part.len(),
            if part.len() == 1 { "" } else { "s" }
        ));
        let mut joined: HashMap<String, Vec<Waiter>> = HashMap::with_capacity(part.len());
        for mut p in part {
            joined
                .entry(std::mem::take(&mut p.custom_id))
                .or_insert_with(|| Vec::with_capacity(1))
                .push(p.waiter());
        }
        let run_id = lock(&self.state).run_id.clone();
        lock(&self.watches).insert(record.handle.id.clone(), Watch { joined });
        self.wait(api, run_id, Arc::new(record), Some(index)).await;
    }

    /// Writes this run's batch `index` to the state file: `record`, with the
    /// requests the state holds for it.
    fn record(&self, index: usize, record: &BatchRecord) {
        let mut state = lock(&self.state);
        if let Some(slot) = state.batches.get_mut(index) {
            let requests = std::mem::take(&mut slot.requests);
            *slot = BatchRecord {
                requests,
                ..record.clone()
            };
        } else {
            state.batches.push(record.clone());
        }
        self.save(state);
    }

    /// Writes this run's state file.
    fn save(&self, state: MutexGuard<'_, RunState>) {
        if let Err(e) = self.options.states.save(&state) {
            let line = format!(
                "warning: cannot write the batch state in {}: {e}; a killed run cannot be resumed without submitting again",
                self.options.states.0.display()
            );
            drop(state);
            self.note(&line);
        }
    }

    /// Marks a batch collected in whichever state holds it.
    fn collected(&self, owner: &str, own: Option<usize>, id: &str) {
        if let Some(index) = own {
            let mut state = lock(&self.state);
            if let Some(batch) = state.batches.get_mut(index) {
                batch.collected = true;
            }
            self.save(state);
            return;
        }
        self.update_earlier(owner, |b| {
            if b.handle.id == id {
                b.collected = true;
            }
        });
    }

    /// Changes the batches of run `owner` (an earlier run's, or the run this one
    /// goes on from), and writes its state.
    fn update_earlier(&self, owner: &str, change: impl Fn(&mut BatchRecord)) {
        let mut own = lock(&self.state);
        let mut earlier = lock(&self.earlier);
        let state = if own.run_id == owner {
            &mut *own
        } else if let Some(state) = earlier.get_mut(owner) {
            state
        } else {
            return;
        };
        state.batches.iter_mut().for_each(change);
        if let Err(e) = self.options.states.save(state) {
            tracing::warn!("cannot update the batch state of run {owner}: {e}");
        }
    }

    /// Joins the wait on an earlier run's batch, starting it if nobody waits yet.
    fn join(self: Arc<Self>, known: Known, mut pending: Pending) {
        let id = known.record.handle.id.clone();
        let key = if id.is_empty() {
            format!(
                "file:{}",
                known.record.handle.file.clone().unwrap_or_default()
            )
        } else {
            id
        };
        let api = pending.api.clone();
        if let Some(request) = pending.request.take() {
            api.adopt(&known.record.handle, &known.custom_id, &request);
        }
        let mut watches = lock(&self.watches);
        if let Some(watch) = watches.get_mut(&key) {
            watch
                .joined
                .entry(known.custom_id)
                .or_default()
                .push(pending.waiter());
            return;
        }
        let mut joined = HashMap::new();
        joined.insert(known.custom_id.clone(), vec![pending.waiter()]);
        watches.insert(key, Watch { joined });
        drop(watches);
        let this = self.clone();
        tokio::spawn(async move {
            let mut record = (*known.record).clone();
            if record.handle.id.is_empty() {
                // Uploaded, never created: create it from the file, once.
                let model = record.model.clone();
                let key = record
                    .key
                    .as_deref()
                    .and_then(|k| KeyRef::parse(k).ok().flatten());
                let file = record.handle.file.clone();
                match api.create(key.as_ref(), &model, &[], file.as_deref()).await {
                    Ok(handle) => {
                        let watch = lock(&this.watches)
                            .remove(&format!("file:{}", file.unwrap_or_default()));
                        record.handle = handle;
                        this.note(&format!(
                            "batch {} created from the file run {} uploaded",
                            record.handle.id, known.owner
                        ));
                        if let Some(watch) = watch {
                            lock(&this.watches).insert(record.handle.id.clone(), watch);
                        }
                        this.update_earlier(&known.owner, |b| {
                            if b.handle.file == record.handle.file && b.handle.id.is_empty() {
                                b.handle = record.handle.clone();
                            }
                        });
                    }
                    Err(e) => {
                        let key = format!("file:{}", file.unwrap_or_default());
                        let watch = lock(&this.watches).remove(&key);
                        for p in watch
                            .into_iter()
                            .flat_map(|w| w.joined.into_values())
                            .flatten()
                        {
                            this.answer(p, Some(Outcome::Error(e.clone())));
                        }
                        return;
                    }
                }
            }
            this.clone()
                .wait(api, known.owner.clone(), Arc::new(record), None)
                .await;
        });
    }

    /// Polls a batch until it ends, then hands each result to whoever waits on it.
    async fn wait(
        self: Arc<Self>,
        api: Arc<dyn BatchApi>,
        owner: String,
        record: Arc<BatchRecord>,
        own: Option<usize>,
    ) {
        let key = record
            .key
            .as_deref()
            .and_then(|k| KeyRef::parse(k).ok().flatten());
        let id = record.handle.id.clone();
        let mut backoff = self.options.backoff.clone();
        let mut polled = false;
        let status: Result<Status, AttemptError> = loop {
            // Detached: the batch is left to the run that resumes.
            if self.stopped() {
                return;
            }
            match api.poll(key.as_ref(), &record.handle).await {
                Ok(status) if status.phase != Phase::Running => break Ok(status),
                Ok(status) => {
                    let age = unix_now().saturating_sub(record.submitted_at);
                    self.note(&format!(
                        "batch {id} ({}): {}/{} done, {} failed, {} old",
                        record.provider,
                        status.counts.succeeded,
                        status.counts.total,
                        status.counts.failed,
                        humantime::format_duration(Duration::from_secs(age))
                    ));
                }
                Err(e) if e.kind == ErrorKind::Transient => {
                    tracing::info!("batch {id}: poll failed, will poll again: {e}");
                }
                Err(e) => break Err(e),
            }
            // The calls in it wait on this alone (they have no timer of their own).
            let age = unix_now().saturating_sub(record.submitted_at);
            if Duration::from_secs(age) > EXPIRY {
                break Err(AttemptError::transient(
                    None,
                    format!(
                        "{} batch {id} is still running after 25 hours: taken as expired",
                        record.provider
                    ),
                ));
            }
            if !polled {
                polled = true;
                self.settle(&id);
                if self.options.detach == Detach::HandBack {
                    return self.hand_back(&record.provider, &id);
                }
            }
            tokio::time::sleep(backoff.next_wait()).await;
        };
        let results = match status {
            Ok(status) => match &status.phase {
                Phase::Failed(message) => Err(AttemptError::permanent(
                    format!(
                        "{} refused batch {id} as a whole: {message}",
                        record.provider
                    ),
                    Some("fix what the provider names, then run again".into()),
                )),
                _ => self
                    .read_results(api.as_ref(), key.as_ref(), &record, &status)
                    .await
                    .map_err(bill_unknown),
            },
            Err(e) => Err(bill_unknown(e)),
        };
        if self.stopped() {
            return;
        }
        let watch = lock(&self.watches).remove(&id);
        let mut joined = watch.map(|w| w.joined).unwrap_or_default();
        match results {
            Err(e) => {
                for p in joined.into_values().flatten() {
                    self.answer(p, Some(Outcome::Error(e.clone())));
                }
                return;
            }
            Ok(results) => {
                // This run's batches keep their requests in its state alone.
                let state = own.map(|_| lock(&self.state));
                let requests = match (own, &state) {
                    (Some(index), Some(state)) => state
                        .batches
                        .get(index)
                        .map_or(&[][..], |b| b.requests.as_slice()),
                    _ => record.requests.as_slice(),
                };
                let ours: HashMap<&str, &RequestRecord> =
                    requests.iter().map(|r| (r.custom_id.as_str(), r)).collect();
                let mut unknown = 0;
                for (custom_id, outcome) in results {
                    let Some(request) = ours.get(custom_id.as_str()) else {
                        unknown += 1;
                        continue;
                    };
                    match joined.remove(&custom_id) {
                        Some(waiting) => {
                            let mut waiting = waiting.into_iter();
                            if let Some(first) = waiting.next() {
                                for other in waiting {
                                    self.answer(other, Some(outcome.clone()));
                                }
                                self.answer(first, Some(outcome));
                            }
                        }
                        None if own.is_none() => {
                            lock(&self.stash)
                                .entry(request.fingerprint.clone())
                                .or_default()
                                .push(outcome);
                        }
                        None => {}
                    }
                }
                if unknown > 0 {
                    self.note(&format!(
                        "warning: batch {id} returned {unknown} result{} with a custom_id byok-flow never sent; ignored",
                        if unknown == 1 { "" } else { "s" }
                    ));
                }
                drop(ours);
                drop(state);
                // Sent, and no result came back: a failed attempt.
                for p in joined.into_values().flatten() {
                    self.answer(p, None);
                }
            }
        }
        self.collected(&owner, own, &id);
        api.clean_up(key.as_ref(), &record.handle).await;
    }

    async fn read_results(
        &self,
        api: &dyn BatchApi,
        key: Option<&KeyRef>,
        record: &BatchRecord,
        status: &Status,
    ) -> Result<Vec<(String, Outcome)>, AttemptError> {
        let mut backoff = self.options.backoff.clone();
        let mut tries = 0;
        loop {
            match api.results(key, &record.handle, status).await {
                Err(e) if e.kind == ErrorKind::Transient && tries < 5 => {
                    tries += 1;
                    tracing::info!(
                        "batch {}: reading results failed, trying again: {e}",
                        record.handle.id
                    );
                    tokio::time::sleep(backoff.next_wait()).await;
                }
                other => return other,
            }
        }
    }

    /// A batch was polled once: its requests are at the provider. With
    /// `--detach`, once no request is waiting for a batch to be made, the run stops.
    fn settle(&self, id: &str) {
        let mut settled = 0;
        if let Some(watch) = lock(&self.watches).get_mut(id) {
            for p in watch.joined.values_mut().flatten().filter(|p| !p.settled) {
                p.settled = true;
                settled += 1;
            }
        }
        let before = self
            .unsettled
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                Some(n.saturating_sub(settled))
            })
            .unwrap_or(0);
        if before.saturating_sub(settled) == 0
            && self.options.detach == Detach::Stop
            && !self.detached.swap(true, Ordering::SeqCst)
        {
            self.detach.notify_one();
        }
    }

    /// Whether the run stopped waiting (`Detach::Stop`).
    fn stopped(&self) -> bool {
        self.options.detach == Detach::Stop && self.detached.load(Ordering::SeqCst)
    }

    /// `Detach::HandBack`: the provider has batch `id`; each request waiting on it
    /// is handed back as left there. What it may cost stays reserved: its bill
    /// comes with the run that collects it.
    fn hand_back(&self, provider: &str, id: &str) {
        self.detached.store(true, Ordering::SeqCst);
        let watch = lock(&self.watches).remove(id);
        let left = AttemptError {
            kind: ErrorKind::Detached,
            cut_off: Some(Box::default()),
            ..AttemptError::permanent(
                format!("left in {provider} batch {id} for the run that collects it"),
                None,
            )
        };
        for p in watch
            .into_iter()
            .flat_map(|w| w.joined.into_values())
            .flatten()
        {
            self.answer(p, Some(Outcome::Error(left.clone())));
        }
    }

    /// Hands a request its result; `None`: the batch returned none for it.
    fn answer(&self, waiter: Waiter, outcome: Option<Outcome>) {
        if !waiter.settled {
            let _ = self
                .unsettled
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                    Some(n.saturating_sub(1))
                });
        }
        let _ = waiter.answer.send((outcome, self.busy.guard()));
    }
}

/// The run a run with `args` collects: the one `runs resume` names
/// (`BYOK_FLOW_RESUME_RUN`), else the latest of the same command (the same
/// arguments, but for those that only say how results are shown) with batches
/// still pending.
fn resumed<'a>(states: &'a [RunState], args: &[String]) -> Option<&'a RunState> {
    let pending = |s: &&RunState| s.batches.iter().any(BatchRecord::pending);
    if let Ok(id) = std::env::var("BYOK_FLOW_RESUME_RUN") {
        return states.iter().filter(pending).find(|s| s.run_id == id);
    }
    let command = command_of(args);
    states
        .iter()
        .filter(pending)
        .rfind(|s| command_of(&s.args) == command)
}

/// A run's arguments without those that only say how and where its results are
/// shown (`--json`, `-v`, `-q`, `--out DIR`, `--report FILE`, `--detach`).
fn command_of(args: &[String]) -> Vec<&str> {
    let mut kept = Vec::new();
    let mut args = args.iter().map(String::as_str);
    while let Some(arg) = args.next() {
        let shown = matches!(arg, "--json" | "--detach" | "--quiet" | "--verbose")
            || arg.len() > 1
                && arg.starts_with('-')
                && !arg.starts_with("--")
                && arg[1..].chars().all(|c| c == 'v' || c == 'q');
        if shown {
            continue;
        }
        if matches!(arg, "--out" | "--report") {
            args.next();
            continue;
        }
        if arg.starts_with("--out=") || arg.starts_with("--report=") {
            continue;
        }
        kept.push(arg);
    }
    kept
}

/// A batch that was made, and whose results cannot be had: the provider may have
/// processed (and billed) every request in it, so each one's bill is unknown.
fn bill_unknown(mut error: AttemptError) -> AttemptError {
    error.cut_off.get_or_insert_with(Box::default);
    error
}

/// A batch the provider would not take: its requests fail with its error. One
/// whose create was sent and its reply lost may have been made, and may run:
/// its requests' bills are unknown (each keeps its reservation).
fn whole_batch(provider: &str, mut error: AttemptError) -> AttemptError {
    if error.cut_off.is_some() {
        error.message = format!(
            "the batch may have been made, but the reply to its creation was lost: {}",
            error.message
        );
        error.hint = Some(format!(
            "{provider} may still run it and bill it; its console lists the batches it holds"
        ));
        return error;
    }
    error.message = format!("the batch was not created: {}", error.message);
    if error.hint.is_none() && error.kind == ErrorKind::Permanent {
        error.hint = Some(format!(
            "fix what {provider} names, or run the agents without `--batch`"
        ));
    }
    error
}

/// Splits requests into batches of at most `count` requests and `bytes` bytes.
fn split(pendings: Vec<Pending>, count: usize, bytes: usize) -> Vec<Vec<Pending>> {
    let mut parts: Vec<Vec<Pending>> = Vec::new();
    let mut size = 0;
    for p in pendings {
        let full = parts.last().is_none_or(|last| {
            last.len() >= count.max(1) || size + p.size > bytes && !last.is_empty()
        });
        if full {
            parts.push(Vec::new());
            size = 0;
        }
        size += p.size;
        parts.last_mut().expect("a part").push(p);
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(run_id: &str, args: &[&str], pending: bool) -> RunState {
        let batch = BatchRecord {
            handle: super::super::api::Handle {
                id: format!("b-{run_id}"),
                file: None,
            },
            collected: !pending,
            ..BatchRecord::default()
        };
        RunState {
            run_id: run_id.into(),
            args: args.iter().map(ToString::to_string).collect(),
            batches: vec![batch],
            ..RunState::default()
        }
    }

    #[test]
    fn a_run_goes_on_from_the_latest_run_of_its_command_with_pending_batches() {
        let args: Vec<String> = ["run", "a.yaml", "--batch"]
            .iter()
            .map(ToString::to_string)
            .collect();
        let states = [
            state("1", &["run", "a.yaml", "--batch"], true),
            state("2", &["run", "a.yaml", "--batch"], true),
            state("3", &["run", "a.yaml", "--batch"], false),
            state("4", &["run", "a.yaml", "--batch", "--keep-going"], true),
        ];
        assert_eq!(resumed(&states, &args).unwrap().run_id, "2");
        // How the results are shown does not make another command.
        let shown: Vec<String> = [
            "run", "-vv", "a.yaml", "--json", "--out", "o", "--batch", "-q",
        ]
        .iter()
        .map(ToString::to_string)
        .collect();
        assert_eq!(resumed(&states, &shown).unwrap().run_id, "2");
        assert!(resumed(&states[2..3], &args).is_none());
        assert!(resumed(&[], &args).is_none());
    }

    /// A collecting run counts every request of the batches earlier runs left
    /// pending (its own run's and others' of the same workflow), as reserved when
    /// they were sent; a collected or cancelled batch holds nothing more, and a
    /// request of an older state, without its amount, is told apart.
    #[test]
    fn what_earlier_runs_batches_hold_is_counted_from_the_start() {
        let dir = tempfile::tempdir().unwrap();
        let states = StateDir::in_cache(dir.path());
        let request = |fingerprint: &str, pico: Option<u64>| RequestRecord {
            custom_id: format!("{fingerprint}-1"),
            fingerprint: fingerprint.into(),
            reserved_pico: pico,
            ..RequestRecord::default()
        };
        let args = ["run", "a.yaml", "--batch"];
        let mut resumed = state("1", &args, true);
        resumed.batches[0].requests = vec![request("f1", Some(10)), request("f2", None)];
        let mut other = state("2", &["run", "a.yaml", "--batch", "--max-usd", "1"], true);
        other.batches[0].requests = vec![request("f3", Some(5)), request("f3", Some(7))];
        let mut collected = state("3", &args, false);
        collected.batches[0].requests = vec![request("f4", Some(100))];
        let mut cancelled = state("4", &["run", "a.yaml"], true);
        cancelled.batches[0].cancelled = true;
        cancelled.batches[0].requests = vec![request("f5", Some(100))];
        let mut elsewhere = state("5", &args, true);
        elsewhere.workflow = "b.yaml".into();
        elsewhere.batches[0].requests = vec![request("f6", Some(100))];
        elsewhere.version = super::super::state::VERSION;
        for mut s in [resumed, other, collected, cancelled] {
            s.workflow = "a.yaml".into();
            s.version = super::super::state::VERSION;
            states.save(&s).unwrap();
        }
        states.save(&elsewhere).unwrap();
        let batcher = Batcher::new(Options {
            states,
            detach: Detach::No,
            gather: Duration::ZERO,
            backoff: Backoff::new(Duration::from_millis(1)),
            run: RunState {
                workflow: "a.yaml".into(),
                args: args.iter().map(ToString::to_string).collect(),
                ..RunState::default()
            },
            note: Arc::new(|_| {}),
        });
        assert_eq!(batcher.resumes().as_deref(), Some("1"));
        let (mut held, unknown) = batcher.held();
        held.sort();
        let pico = |f: &str, p| (f.to_string(), Usd::from_pico(p));
        assert_eq!(held, [pico("f1", 10), pico("f3", 5), pico("f3", 7)]);
        assert_eq!(unknown, 1);
    }

    #[test]
    fn custom_ids_are_what_the_providers_take() {
        assert_eq!(custom_id("writer", 7), "writer-7");
        assert_eq!(custom_id("a.b c", 1), "a_b_c-1");
        // A dataset's: the row, the agent, the item.
        assert_eq!(custom_id("r12-writer[3]", 9), "r12-writer_3_-9");
        let long = custom_id(&"x".repeat(200), u64::MAX);
        assert!(long.len() <= 64, "{long}");
    }
}
