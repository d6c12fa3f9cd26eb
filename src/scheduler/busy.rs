//! What may still start a call right now. A batch is submitted once every call
//! that is ready at the same time has joined it; an idle timer alone splits a wave
//! whenever a loaded machine pauses the rows' reader or the scheduler for longer
//! than the timer. So the work that can still produce a call is counted:
//!
//! - a row from the moment it is read until the scheduler has started its ready
//!   agents (the reader also counts while it reads a file);
//! - a task from the moment it is spawned, and again from the moment its call is
//!   answered (the batch hands the answer a [`Guard`]), until it parks waiting on
//!   something (its call in a batch), or until the scheduler has taken its end
//!   and started the agents it made ready.
//!
//! When the count is zero every call that could be made now has been made: what
//! a batcher holds is the whole wave.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::sync::watch;

/// The count of work that may still start a call now; cheap to clone.
#[derive(Debug, Clone)]
pub struct Busy(Arc<watch::Sender<usize>>);

impl Default for Busy {
    fn default() -> Self {
        Busy(Arc::new(watch::Sender::new(0)))
    }
}

impl Busy {
    /// Counts one more piece of work until the guard is dropped.
    pub fn guard(&self) -> Guard {
        self.0.send_modify(|n| *n += 1);
        Guard(Some(self.clone()))
    }

    /// How much work is counted.
    pub fn count(&self) -> usize {
        *self.0.borrow()
    }

    /// A watch that wakes whenever the count changes.
    pub fn watch(&self) -> watch::Receiver<usize> {
        self.0.subscribe()
    }
}

/// One piece of counted work; dropping it ends it.
#[derive(Debug)]
pub struct Guard(Option<Busy>);

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(busy) = self.0.take() {
            busy.0.send_modify(|n| *n = n.saturating_sub(1));
        }
    }
}

/// A counted task being polled: the guard it holds, if any.
struct Polled(Option<Guard>);

thread_local! {
    /// The counted task being polled on this thread, if any.
    static CURRENT: RefCell<Option<Polled>> = const { RefCell::new(None) };
}

/// Gives the task being polled `guard` (the answer to its call): it counts until
/// the task parks again or ends and is taken by the scheduler. Outside a counted
/// task the guard is dropped.
pub fn keep(guard: Guard) {
    CURRENT.with(|current| {
        if let Some(polled) = current.borrow_mut().as_mut() {
            polled.0 = Some(guard);
        }
    });
}

/// A task's future, counted while it runs: its guard is dropped when it parks
/// (returns `Pending`), and handed back with its output when it ends.
pub struct Counted<F> {
    future: F,
    guard: Option<Guard>,
}

impl<F: Future + Unpin> Counted<F> {
    pub fn new(future: F, guard: Option<Guard>) -> Self {
        Counted { future, guard }
    }
}

impl<F: Future + Unpin> Future for Counted<F> {
    type Output = (F::Output, Option<Guard>);

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let outer = CURRENT.with(|c| c.borrow_mut().replace(Polled(this.guard.take())));
        let polled = Pin::new(&mut this.future).poll(cx);
        let guard = CURRENT
            .with(|c| std::mem::replace(&mut *c.borrow_mut(), outer))
            .and_then(|polled| polled.0);
        match polled {
            Poll::Ready(output) => Poll::Ready((output, guard)),
            // Parked: whatever wakes it counts it again (an answer brings a guard).
            Poll::Pending => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_task_counts_until_it_parks_and_again_once_answered_until_taken() {
        let busy = Busy::default();
        let (tx, rx) = tokio::sync::oneshot::channel::<Guard>();
        let task = Counted::new(
            Box::pin(async move {
                let guard = rx.await.unwrap();
                keep(guard);
                7
            }),
            Some(busy.guard()),
        );
        assert_eq!(busy.count(), 1);
        let handle = tokio::spawn(task);
        // It parks on the channel: no longer counted.
        let mut watch = busy.watch();
        watch.wait_for(|n| *n == 0).await.unwrap();
        // Answered: counted again, until whoever takes its end drops the guard.
        tx.send(busy.guard()).unwrap();
        let (out, guard) = handle.await.unwrap();
        assert_eq!(out, 7);
        assert_eq!(busy.count(), 1);
        drop(guard);
        assert_eq!(busy.count(), 0);
    }

    #[test]
    fn a_guard_kept_outside_a_counted_task_ends_at_once() {
        let busy = Busy::default();
        keep(busy.guard());
        assert_eq!(busy.count(), 0);
    }
}
