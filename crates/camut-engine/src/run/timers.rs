//! The worker's timer queue: JS timers and scheduled VU starts, in one heap.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::time::{Duration, Instant};

use rquickjs::{Function, Persistent, Value};

/// What is due at some instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Due {
    /// A JS timer, by id.
    Timer(u32),
    /// A VU's first iteration (rampup).
    VuStart(u32),
}

/// A JS timer (setTimeout / setInterval).
pub(crate) struct Timer {
    pub vu: u32,
    pub iteration: u64,
    pub func: Persistent<Function<'static>>,
    pub args: Vec<Persistent<Value<'static>>>,
    pub repeat: Option<Duration>,
}

/// A timer taken out to run: its function, arguments, VU and iteration.
pub(crate) struct Fired {
    pub func: Persistent<Function<'static>>,
    pub args: Vec<Persistent<Value<'static>>>,
    pub vu: u32,
    pub iteration: u64,
}

#[derive(Default)]
pub(crate) struct Timers {
    heap: BinaryHeap<Reverse<(Instant, Due)>>,
    timers: HashMap<u32, Timer>,
    next_id: u32,
}

impl Timers {
    pub fn add(&mut self, at: Instant, timer: Timer) -> u32 {
        self.next_id = self.next_id.wrapping_add(1).max(1);
        while self.timers.contains_key(&self.next_id) {
            self.next_id = self.next_id.wrapping_add(1).max(1);
        }
        let id = self.next_id;
        self.timers.insert(id, timer);
        self.heap.push(Reverse((at, Due::Timer(id))));
        id
    }

    pub fn schedule(&mut self, at: Instant, due: Due) {
        self.heap.push(Reverse((at, due)));
    }

    /// Removes timer `id` if VU `vu` owns it.
    pub fn clear(&mut self, vu: u32, id: u32) {
        if self.timers.get(&id).is_some_and(|t| t.vu == vu) {
            self.timers.remove(&id);
        }
    }

    pub fn next_due(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((at, _))| *at)
    }

    /// Pops the next entry due by `now`; cleared timers are skipped.
    pub fn pop_due(&mut self, now: Instant) -> Option<(Instant, Due)> {
        while let Some(Reverse((at, due))) = self.heap.peek().copied() {
            if at > now {
                return None;
            }
            self.heap.pop();
            match due {
                Due::Timer(id) if !self.timers.contains_key(&id) => continue,
                _ => return Some((at, due)),
            }
        }
        None
    }

    /// Takes a due timer out; an interval is put back for its next run.
    pub fn fire(&mut self, id: u32, now: Instant) -> Option<Fired> {
        let t = self.timers.get(&id)?;
        let out = Fired {
            func: t.func.clone(),
            args: t.args.clone(),
            vu: t.vu,
            iteration: t.iteration,
        };
        match t.repeat {
            Some(every) => self.heap.push(Reverse((now + every, Due::Timer(id)))),
            None => {
                self.timers.remove(&id);
            }
        }
        Some(out)
    }

    /// Drops the timers of VU `vu`.
    pub fn clear_vu(&mut self, vu: u32) {
        self.timers.retain(|_, t| t.vu != vu);
    }

    /// Drops every JS timer; scheduled VU starts stay.
    pub fn clear_timers(&mut self) {
        self.timers.clear();
    }

    /// Drops every JS timer (their values must go before the runtime).
    pub fn clear_all(&mut self) {
        self.timers.clear();
        self.heap.clear();
    }
}
