//! The HTTP hops under way in a worker, driven by one task of the worker instead of a
//! task each: a tokio task is a cache-line-aligned allocation plus a scheduler entry,
//! which showed as a few percent of a worker's CPU at one call per iteration.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Weak;
use std::task::{Context, Poll, Waker};

use futures_util::future::{AbortHandle, Abortable, Aborted};
use futures_util::stream::{FuturesUnordered, StreamExt};

use super::worker::Worker;
use crate::http::HttpOutcome;

/// One hop's exchange: its call id and outcome.
pub(crate) type Hop = Pin<Box<dyn Future<Output = (u64, HttpOutcome)>>>;

/// Hops after this many answered in a row, the driver lets the worker's other tasks run.
const ANSWERS_PER_TURN: usize = 64;

/// The set of hops under way and the waker of the task that drives them.
#[derive(Default)]
pub(crate) struct Hops {
    set: RefCell<FuturesUnordered<Abortable<Hop>>>,
    /// The driver, parked while no hop was ready: a new hop must wake it, since
    /// `FuturesUnordered::push` does not.
    parked: RefCell<Option<Waker>>,
    /// Answers handed over since the worker's driver was last woken.
    unannounced: std::cell::Cell<bool>,
}

impl Hops {
    /// Adds a hop; its handle aborts it (the exchange is dropped, its connection closed).
    pub(crate) fn push(&self, hop: Hop) -> AbortHandle {
        let (handle, registration) = AbortHandle::new_pair();
        self.set
            .borrow_mut()
            .push(Abortable::new(hop, registration));
        if let Some(w) = self.parked.borrow_mut().take() {
            w.wake();
        }
        handle
    }

    /// Drops every hop (they hold the worker).
    pub(crate) fn clear(&self) {
        self.set.borrow_mut().clear();
        self.parked.borrow_mut().take();
    }

    fn poll_answer(
        &self,
        worker: &Worker,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(u64, HttpOutcome), Aborted>> {
        match self.set.borrow_mut().poll_next_unpin(cx) {
            Poll::Ready(Some(answer)) => Poll::Ready(answer),
            // Empty, or nothing ready: parked until a hop is ready or a new one comes.
            _ => {
                *self.parked.borrow_mut() = Some(cx.waker().clone());
                self.announce(worker);
                Poll::Pending
            }
        }
    }

    /// Wakes the worker's driver once for the answers handed over since the last time
    /// (their iterations may have ended); it runs only when this task yields anyway.
    fn announce(&self, worker: &Worker) {
        if self.unannounced.replace(false) {
            worker.wake.notify_one();
        }
    }
}

/// The task that drives a worker's hops and hands each answer to the worker.
pub(crate) async fn drive(worker: Weak<Worker>) {
    loop {
        for _ in 0..ANSWERS_PER_TURN {
            let answer = std::future::poll_fn(|cx| match worker.upgrade() {
                Some(w) => w.hops.poll_answer(&w, cx).map(Some),
                None => Poll::Ready(None),
            })
            .await;
            let Some(w) = worker.upgrade() else {
                return;
            };
            // An aborted hop was answered by `abort()` already.
            if let Some(Ok((call_id, outcome))) = answer {
                w.hop_done(call_id, outcome);
                w.hops.unannounced.set(true);
            }
        }
        if let Some(w) = worker.upgrade() {
            w.hops.announce(&w);
        }
        tokio::task::yield_now().await;
    }
}
