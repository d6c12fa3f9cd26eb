//! The budget while a run goes (SPEC §6): every attempt of every call (the first,
//! each retry, each fallback model, each `output: json` correction) reserves the
//! most it can cost (its known input plus its output limit, at its price) before it
//! is sent, and none is sent whose reservation could take spend past the ceiling.
//!
//! An agent's first reservation is made before it starts ([`Budget::admit`], the
//! runner's gate): while other agents run it waits for them to settle, since a
//! settled agent usually costs less than it reserved; with nothing running and
//! still no room, it gives the agent up (skipped for budget). A later attempt of a
//! running agent reserves again ([`Budget::reserve`]) and likewise waits while
//! another agent is running; with nothing else running, the attempt is not made
//! and the agent fails.
//!
//! After each attempt its reservation becomes what it cost ([`Budget::charge`]).
//! An attempt whose bill is unknown (a reply cut off or unreadable after the
//! request was sent) keeps its whole reservation as spent.
//!
//! A run that collects batches an earlier run left (`--detach`, or a run killed
//! while it waited) starts with every request of theirs counted as held
//! ([`Budget::hold`]): the provider bills them whatever this run does. When a
//! task comes up whose request one of them holds, that amount becomes the task's
//! reservation, and then what its result cost, once.
//!
//! The arithmetic is exact ([`Usd`]), so "spend + reservations ≤ ceiling" holds to
//! the pico-dollar whenever each attempt costs at most its reservation.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::Notify;

use super::Usd;
use crate::scheduler::{Admission, Task};

/// Money spent and reserved against a ceiling.
#[derive(Debug, Clone)]
pub struct Ledger {
    ceiling: Usd,
    spent: Usd,
    /// What each task's attempt in flight (or about to be sent) may cost.
    reserved: HashMap<Task, Usd>,
    /// Tasks started and not yet settled.
    active: HashSet<Task>,
    /// Active tasks waiting for room for their next attempt.
    waiting: HashSet<Task>,
    /// Tasks whose reservation was taken whatever was left, for an attempt
    /// already sent: an attempt that turns out not to be must fit like any other.
    forced: HashSet<Task>,
    /// What requests earlier runs' batches hold may cost, by fingerprint, until a
    /// task takes each as its own (one entry per request).
    held: HashMap<String, Vec<Usd>>,
    /// The sum of `held`.
    held_sum: Usd,
    /// What each task took from `held`, until its attempt is charged: given back
    /// if the attempt turns out not to be that request's (another task took the
    /// batch's answer), for the provider bills that request all the same.
    taken: HashMap<Task, (String, Usd)>,
}

/// Why an attempt may not be made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No room now, but another agent is running: wait for it to settle.
    Wait,
    /// No room, and waiting will not make any.
    Over(String),
}

impl Ledger {
    pub fn new(ceiling: Usd) -> Self {
        Ledger {
            ceiling,
            spent: Usd::ZERO,
            reserved: HashMap::new(),
            active: HashSet::new(),
            waiting: HashSet::new(),
            forced: HashSet::new(),
            held: HashMap::new(),
            held_sum: Usd::ZERO,
            taken: HashMap::new(),
        }
    }

    /// Counts `worst` for a request an earlier run's batch holds (its fingerprint
    /// `id`) until a task whose attempt it is takes it.
    pub fn hold(&mut self, id: String, worst: Usd) {
        self.held.entry(id).or_default().push(worst);
        self.held_sum += worst;
    }

    /// What is held for request `id`, taken out of the held (to become a task's).
    fn take_held(&mut self, id: &str) -> Option<Usd> {
        let worst = self.held.get_mut(id).and_then(Vec::pop)?;
        if self.held.get(id).is_some_and(Vec::is_empty) {
            self.held.remove(id);
        }
        self.held_sum = self.held_sum.saturating_sub(worst);
        Some(worst)
    }

    /// `worst` for an attempt already `sent`, grown to what the run that sent it
    /// reserved for it, which `agent` takes over (once: its later reservations
    /// for the same attempt take nothing more).
    fn sent_worst(&mut self, agent: Task, worst: Option<Usd>, sent: &str) -> Option<Usd> {
        if self.forced.contains(&agent) {
            return worst;
        }
        let held = self.take_held(sent);
        if let Some(h) = held {
            self.taken.insert(agent, (sent.to_string(), h));
        }
        match (worst, held) {
            (Some(w), Some(h)) => Some(w.max(h)),
            (w, h) => w.or(h),
        }
    }

    /// What settled attempts cost (unknown bills at their whole reservation).
    pub fn spent(&self) -> Usd {
        self.spent
    }

    /// Spent plus what attempts in flight (and requests held for this run's
    /// tasks by earlier runs' batches) could still cost.
    pub fn committed(&self) -> Usd {
        self.spent + self.held_sum + self.reserved.values().copied().sum()
    }

    /// Reserves `worst` for `agent`'s first attempt if it fits under the ceiling. An
    /// unknown worst case never fits. An attempt already `sent` (an earlier run's
    /// batch holds it: its fingerprint) is money spent: it is reserved whatever
    /// is left, at least what was held for it.
    pub fn admit(
        &mut self,
        agent: Task,
        worst: Option<Usd>,
        running: usize,
        sent: Option<&str>,
    ) -> Admission {
        let worst = match sent {
            Some(id) => self.sent_worst(agent, worst, id),
            None => worst,
        };
        let sent = sent.is_some();
        match worst {
            Some(worst) if sent || self.committed() + worst <= self.ceiling => {
                self.reserved.insert(agent, worst);
                self.active.insert(agent);
                if sent {
                    self.forced.insert(agent);
                }
                Admission::Start
            }
            _ if running > 0 => Admission::Wait,
            Some(worst) => Admission::Skip(self.no_room(worst)),
            None => Admission::Skip(
                "its worst case is unknown (no price, or no `max_tokens` and no known output limit)"
                    .into(),
            ),
        }
    }

    /// Makes `agent`'s reservation `worst` (it may hold part of it already, from its
    /// admission), for its next attempt; whatever is left when the attempt was
    /// already `sent` (see [`Ledger::admit`]).
    pub fn reserve(
        &mut self,
        agent: Task,
        worst: Option<Usd>,
        sent: Option<&str>,
    ) -> Result<(), Refusal> {
        let worst = match sent {
            Some(id) => self.sent_worst(agent, worst, id),
            None => worst,
        };
        let sent = sent.is_some();
        // Held whatever was left, for an attempt that is not sent after all:
        // what it took from an earlier run's batch goes back.
        let forced = !sent && self.forced.contains(&agent);
        if forced && let Some((id, h)) = self.taken.remove(&agent) {
            self.hold(id, h);
            if let Some(r) = self.reserved.get_mut(&agent) {
                *r = r.saturating_sub(h);
            }
        }
        let held = self.reserved.get(&agent).copied().unwrap_or_default();
        match worst {
            Some(worst) if !forced && worst <= held => Ok(()),
            Some(worst)
                if sent || self.committed().saturating_sub(held) + worst <= self.ceiling =>
            {
                self.forced.remove(&agent);
                self.reserved.insert(agent, worst);
                Ok(())
            }
            _ if self.others_running(agent) => Err(Refusal::Wait),
            Some(worst) => Err(Refusal::Over(self.no_room(worst.saturating_sub(held)))),
            None => Err(Refusal::Over(
                "what it could cost is unknown (no price, or no output limit)".into(),
            )),
        }
    }

    /// Replaces `agent`'s reservation with what its attempt cost; `None` (unknown)
    /// keeps the whole reservation as spent.
    pub fn charge(&mut self, agent: Task, cost: Option<Usd>) {
        self.forced.remove(&agent);
        self.taken.remove(&agent);
        let reserved = self.reserved.remove(&agent).unwrap_or_default();
        self.spent += cost.unwrap_or(reserved);
    }

    /// `agent` settled: what it still holds is released, or, when what it did is
    /// unknown (its task was lost), kept as spent.
    pub fn finish(&mut self, agent: Task, lost: bool) {
        self.active.remove(&agent);
        self.waiting.remove(&agent);
        self.forced.remove(&agent);
        self.taken.remove(&agent);
        let reserved = self.reserved.remove(&agent).unwrap_or_default();
        if lost {
            self.spent += reserved;
        }
    }

    /// Whether an agent other than `agent` is running and not itself waiting for room.
    fn others_running(&self, agent: Task) -> bool {
        self.active
            .iter()
            .any(|a| *a != agent && !self.waiting.contains(a))
    }

    fn no_room(&self, worst: Usd) -> String {
        let held = if self.held_sum > Usd::ZERO {
            format!(
                " ({} of it held by requests in earlier runs' batches, which the provider bills)",
                self.held_sum
            )
        } else {
            String::new()
        };
        format!(
            "its worst case, {worst}, is more than the {} left of {}{held}",
            self.ceiling.saturating_sub(self.committed()),
            self.ceiling
        )
    }
}

/// A run's ledger, shared by the gate (which starts agents) and the running agents
/// (which reserve and pay for each attempt).
#[derive(Debug)]
pub struct Budget {
    ledger: Mutex<Ledger>,
    /// Told whenever money is released, so waiting attempts look again.
    changed: Notify,
}

impl Budget {
    pub fn new(ceiling: Usd) -> Arc<Budget> {
        Arc::new(Budget {
            ledger: Mutex::new(Ledger::new(ceiling)),
            changed: Notify::new(),
        })
    }

    fn ledger(&self) -> std::sync::MutexGuard<'_, Ledger> {
        // Every change to the ledger is one statement: nothing half-done to guard.
        self.ledger.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// What settled attempts cost, unknown bills at their whole reservation.
    pub fn spent(&self) -> Usd {
        self.ledger().spent()
    }

    /// Counts what requests earlier runs' batches hold, by fingerprint, from
    /// before any task starts (see [`Ledger::hold`]).
    pub fn hold(&self, held: impl IntoIterator<Item = (String, Usd)>) {
        let mut ledger = self.ledger();
        for (id, worst) in held {
            ledger.hold(id, worst);
        }
    }

    /// Reserves `worst` for `agent`'s next attempt, waiting while another agent runs
    /// and there is no room; the reason when there is none to be had. An attempt
    /// already `sent` (an earlier run's batch holds it) is reserved at once.
    pub async fn reserve(
        &self,
        agent: Task,
        worst: Option<Usd>,
        sent: Option<&str>,
    ) -> Result<(), String> {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            {
                // One lock for the look and the mark, so two agents never both wait
                // on each other unseen.
                let mut ledger = self.ledger();
                match ledger.reserve(agent, worst, sent) {
                    Ok(()) => return Ok(()),
                    Err(Refusal::Over(why)) => return Err(why),
                    Err(Refusal::Wait) => ledger.waiting.insert(agent),
                };
            }
            changed.await;
            self.ledger().waiting.remove(&agent);
        }
    }

    /// `agent`'s attempt cost `cost` (`None`: unknown, its reservation is kept).
    pub fn charge(&self, agent: Task, cost: Option<Usd>) {
        self.ledger().charge(agent, cost);
        self.changed.notify_waiters();
    }

    /// Whether `agent` may start now with `worst` reserved for its first attempt
    /// (see [`Ledger::admit`]), and what was committed before and after.
    pub fn admit(
        &self,
        agent: Task,
        worst: Option<Usd>,
        running: usize,
        sent: Option<&str>,
    ) -> Admitted {
        let mut ledger = self.ledger();
        let before = ledger.committed();
        let admission = ledger.admit(agent, worst, running, sent);
        Admitted {
            admission,
            before,
            after: ledger.committed(),
            ceiling: ledger.ceiling,
        }
    }

    /// `agent` settled: what it still holds is let go (`lost`: its task was lost,
    /// and it keeps what it held as spent).
    pub fn finish(&self, agent: Task, lost: bool) {
        self.ledger().finish(agent, lost);
        self.changed.notify_waiters();
    }
}

/// What [`Budget::admit`] decided, with the money committed before and after it
/// against the ceiling.
#[derive(Debug)]
pub struct Admitted {
    pub admission: Admission,
    pub before: Usd,
    pub after: Usd,
    pub ceiling: Usd,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Agent `i`'s one task in a one-row run.
    fn t(i: usize) -> Task {
        Task::agent(0, i)
    }

    #[test]
    fn waits_while_others_run_then_gives_up() {
        let mut ledger = Ledger::new(Usd::from_pico(100));
        assert_eq!(
            ledger.admit(t(0), Some(Usd::from_pico(60)), 0, None),
            Admission::Start
        );
        assert_eq!(
            ledger.admit(t(1), Some(Usd::from_pico(60)), 1, None),
            Admission::Wait
        );
        ledger.charge(t(0), Some(Usd::from_pico(10)));
        ledger.finish(t(0), false);
        assert_eq!(
            ledger.admit(t(1), Some(Usd::from_pico(60)), 0, None),
            Admission::Start
        );
        assert_eq!(ledger.committed(), Usd::from_pico(70));
        assert!(matches!(
            ledger.admit(t(2), Some(Usd::from_pico(31)), 0, None),
            Admission::Skip(_)
        ));
        assert_eq!(
            ledger.admit(t(2), Some(Usd::from_pico(30)), 1, None),
            Admission::Start
        );
        assert_eq!(ledger.committed(), Usd::from_pico(100));
    }

    #[test]
    fn unknown_costs_count_in_full() {
        let mut ledger = Ledger::new(Usd::from_pico(100));
        assert!(matches!(
            ledger.admit(t(0), None, 0, None),
            Admission::Skip(_)
        ));
        assert_eq!(
            ledger.admit(t(0), Some(Usd::from_pico(40)), 0, None),
            Admission::Start
        );
        ledger.charge(t(0), None);
        assert_eq!(ledger.spent(), Usd::from_pico(40));
        ledger.finish(t(0), false);
        assert_eq!(ledger.committed(), Usd::from_pico(40));
    }

    /// Each retry reserves again: an agent whose first attempt's bill is unknown
    /// cannot retry on money it may already have spent.
    #[test]
    fn every_attempt_reserves_its_own_worst_case() {
        let mut ledger = Ledger::new(Usd::from_pico(100));
        assert_eq!(
            ledger.admit(t(0), Some(Usd::from_pico(40)), 0, None),
            Admission::Start
        );
        // The first attempt uses the admission's reservation.
        assert_eq!(ledger.reserve(t(0), Some(Usd::from_pico(40)), None), Ok(()));
        assert_eq!(ledger.committed(), Usd::from_pico(40));
        ledger.charge(t(0), None);
        assert_eq!(ledger.reserve(t(0), Some(Usd::from_pico(40)), None), Ok(()));
        ledger.charge(t(0), None);
        assert_eq!(ledger.spent(), Usd::from_pico(80));
        // No room for a third, and nobody else running to make some.
        assert!(matches!(
            ledger.reserve(t(0), Some(Usd::from_pico(40)), None),
            Err(Refusal::Over(_))
        ));
        // With another agent running, it waits instead.
        assert_eq!(
            ledger.admit(t(1), Some(Usd::from_pico(10)), 1, None),
            Admission::Start
        );
        assert_eq!(
            ledger.reserve(t(0), Some(Usd::from_pico(40)), None),
            Err(Refusal::Wait)
        );
        // A reservation that grew (a larger input seen) takes only the difference.
        ledger.charge(t(1), Some(Usd::ZERO));
        ledger.finish(t(1), false);
        assert_eq!(ledger.reserve(t(0), Some(Usd::from_pico(20)), None), Ok(()));
        assert_eq!(ledger.committed(), Usd::from_pico(100));
    }

    /// An attempt already sent (an earlier run's batch holds it) is spent money:
    /// reserved whatever is left, and then nothing else fits.
    #[test]
    fn an_attempt_already_sent_is_reserved_whatever_is_left() {
        let mut ledger = Ledger::new(Usd::from_pico(100));
        assert_eq!(
            ledger.admit(t(0), Some(Usd::from_pico(150)), 0, Some("a")),
            Admission::Start
        );
        assert_eq!(ledger.committed(), Usd::from_pico(150));
        assert!(matches!(
            ledger.admit(t(1), Some(Usd::from_pico(1)), 0, None),
            Admission::Skip(_)
        ));
        assert_eq!(
            ledger.reserve(t(0), Some(Usd::from_pico(170)), Some("a")),
            Ok(())
        );
        assert_eq!(ledger.committed(), Usd::from_pico(170));
        ledger.charge(t(0), Some(Usd::from_pico(120)));
        assert_eq!(ledger.spent(), Usd::from_pico(120));
        assert!(matches!(
            ledger.reserve(t(0), Some(Usd::from_pico(1)), None),
            Err(Refusal::Over(_))
        ));
        // Admitted as sent, and then not sent (another task took the batch's
        // answer): its attempt must fit like any other.
        let mut ledger = Ledger::new(Usd::from_pico(100));
        ledger.admit(t(0), Some(Usd::from_pico(80)), 0, Some("a"));
        ledger.admit(t(1), Some(Usd::from_pico(60)), 1, Some("a"));
        assert_eq!(
            ledger.reserve(t(1), Some(Usd::from_pico(60)), None),
            Err(Refusal::Wait)
        );
        ledger.charge(t(0), Some(Usd::from_pico(10)));
        ledger.finish(t(0), false);
        assert_eq!(ledger.reserve(t(1), Some(Usd::from_pico(60)), None), Ok(()));
        assert_eq!(ledger.committed(), Usd::from_pico(70));
    }

    /// What earlier runs' batches hold counts from the start; a task whose
    /// request one of them holds takes its amount over (at least its own worst
    /// case), once, and its charge replaces it: never counted twice, never lost.
    #[test]
    fn requests_held_by_earlier_batches_count_from_the_start_and_once() {
        let mut ledger = Ledger::new(Usd::from_pico(100));
        // Two identical requests of two rows, and another.
        ledger.hold("x".into(), Usd::from_pico(30));
        ledger.hold("x".into(), Usd::from_pico(30));
        ledger.hold("y".into(), Usd::from_pico(20));
        assert_eq!(ledger.committed(), Usd::from_pico(80));
        // New work fits only in what they leave, and says why it does not.
        match ledger.admit(t(5), Some(Usd::from_pico(21)), 0, None) {
            Admission::Skip(why) => assert!(why.contains("held by requests"), "{why}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            ledger.admit(t(5), Some(Usd::from_pico(20)), 0, None),
            Admission::Start
        );
        assert_eq!(ledger.committed(), Usd::from_pico(100));
        // A held request comes up: its amount becomes the task's, not added to it.
        assert_eq!(
            ledger.admit(t(0), Some(Usd::from_pico(25)), 1, Some("x")),
            Admission::Start
        );
        assert_eq!(ledger.committed(), Usd::from_pico(100));
        // Its attempt reserves again, as sent: nothing more is taken (the other
        // row's `x` stays held).
        assert_eq!(
            ledger.reserve(t(0), Some(Usd::from_pico(25)), Some("x")),
            Ok(())
        );
        assert_eq!(ledger.committed(), Usd::from_pico(100));
        // Its result is read: the bill replaces the reservation.
        ledger.charge(t(0), Some(Usd::from_pico(4)));
        ledger.finish(t(0), false);
        assert_eq!(ledger.committed(), Usd::from_pico(74));
        // Held for less than its worst case now: it grows, whatever is left.
        assert_eq!(
            ledger.admit(t(1), Some(Usd::from_pico(45)), 1, Some("y")),
            Admission::Start
        );
        assert_eq!(ledger.committed(), Usd::from_pico(99));
        // Its bill unknown: the whole reservation is kept as spent.
        ledger.charge(t(1), None);
        ledger.finish(t(1), false);
        assert_eq!(ledger.spent(), Usd::from_pico(49));
        assert_eq!(ledger.committed(), Usd::from_pico(99));
        // A held request nobody takes stays counted: the provider bills it.
        ledger.charge(t(5), Some(Usd::from_pico(20)));
        ledger.finish(t(5), false);
        assert_eq!(ledger.committed(), Usd::from_pico(99));
    }

    /// Two rows with the same request, both in a detached batch: both took a
    /// held amount; the one whose attempt is not that request after all (the
    /// other took the batch's answer) gives it back, for the provider billed it.
    #[test]
    fn a_held_amount_taken_by_an_attempt_not_sent_after_all_goes_back() {
        let mut ledger = Ledger::new(Usd::from_pico(100));
        ledger.hold("x".into(), Usd::from_pico(30));
        ledger.hold("x".into(), Usd::from_pico(30));
        assert_eq!(
            ledger.admit(t(0), Some(Usd::from_pico(20)), 0, Some("x")),
            Admission::Start
        );
        assert_eq!(
            ledger.admit(t(1), Some(Usd::from_pico(20)), 1, Some("x")),
            Admission::Start
        );
        assert_eq!(ledger.committed(), Usd::from_pico(60));
        // 1 is sent anew: the 30 it took is held again, and its 20 must fit.
        assert_eq!(ledger.reserve(t(1), Some(Usd::from_pico(20)), None), Ok(()));
        assert_eq!(ledger.committed(), Usd::from_pico(80));
        ledger.charge(t(1), Some(Usd::from_pico(20)));
        ledger.charge(t(0), Some(Usd::from_pico(30)));
        // Both bills, and the request nobody read.
        assert_eq!(ledger.committed(), Usd::from_pico(80));
        // Without room, the attempt is refused, and the amount stays held.
        let mut ledger = Ledger::new(Usd::from_pico(50));
        ledger.hold("x".into(), Usd::from_pico(30));
        ledger.admit(t(1), Some(Usd::from_pico(25)), 0, Some("x"));
        assert!(matches!(
            ledger.reserve(t(1), Some(Usd::from_pico(25)), None),
            Err(Refusal::Over(_))
        ));
        ledger.finish(t(1), false);
        assert_eq!(ledger.committed(), Usd::from_pico(30));
    }

    #[test]
    fn agents_waiting_for_each_other_do_not_wait_forever() {
        let mut ledger = Ledger::new(Usd::from_pico(100));
        ledger.admit(t(0), Some(Usd::from_pico(50)), 0, None);
        ledger.admit(t(1), Some(Usd::from_pico(50)), 1, None);
        ledger.charge(t(0), None);
        ledger.charge(t(1), None);
        assert_eq!(
            ledger.reserve(t(0), Some(Usd::from_pico(50)), None),
            Err(Refusal::Wait)
        );
        ledger.waiting.insert(t(0));
        // 1 sees only 0, which waits itself: nobody can make room.
        assert!(matches!(
            ledger.reserve(t(1), Some(Usd::from_pico(50)), None),
            Err(Refusal::Over(_))
        ));
    }

    #[tokio::test]
    async fn a_waiting_attempt_goes_when_another_agent_releases_money() {
        let budget = Budget::new(Usd::from_pico(100));
        budget
            .ledger()
            .admit(t(0), Some(Usd::from_pico(60)), 0, None);
        budget
            .ledger()
            .admit(t(1), Some(Usd::from_pico(40)), 1, None);
        budget.charge(t(0), Some(Usd::from_pico(30)));
        let waiter = {
            let budget = budget.clone();
            tokio::spawn(async move { budget.reserve(t(0), Some(Usd::from_pico(60)), None).await })
        };
        tokio::task::yield_now().await;
        budget.charge(t(1), Some(Usd::from_pico(5)));
        budget.finish(t(1), false);
        assert_eq!(waiter.await.unwrap(), Ok(()));
        assert_eq!(budget.ledger().committed(), Usd::from_pico(95));
    }
}
