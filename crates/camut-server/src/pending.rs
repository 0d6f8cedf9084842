//! A campaign's histogram counts of the current tick, added by index from the runtime's
//! threads side by side.
//!
//! At thousands of deltas a second, adding a delta's counts is most of the cost of
//! merging it. Done under the campaign's lock, the runtime's threads queued behind each
//! other on it (futex waits and wake-ups) and pulled the same count arrays back and
//! forth between their caches. So the counts live in shards of their own, outside that
//! lock: each thread keeps to one shard (another if its own is busy), and the tick
//! records all of them.

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, TryLockError};

use camut::stats::{CheckedDelta, FlatSet};
use camut_stats::codec::CodecError;
use camut_stats::{CallKey, StatsSet};

use crate::core::lock;

/// Shards at most, whatever the number of CPUs.
const MAX_SHARDS: usize = 16;

/// This tick's counts, in shards.
pub(crate) struct Pending {
    shards: Box<[Mutex<FlatSet>]>,
}

impl Default for Pending {
    fn default() -> Self {
        let n = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .clamp(1, MAX_SHARDS);
        Pending {
            shards: (0..n).map(|_| Mutex::default()).collect(),
        }
    }
}

/// The shard a thread tries first: threads are numbered as they first add.
fn home_shard() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static HOME: Cell<Option<usize>> = const { Cell::new(None) };
    }
    HOME.with(|home| {
        home.get().unwrap_or_else(|| {
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            home.set(Some(n));
            n
        })
    })
}

impl Pending {
    /// Adds a delta's counts under `keys` (from [`CheckedDelta::merge_counters`]).
    pub fn add(&self, delta: &CheckedDelta<'_>, keys: &[CallKey]) {
        let n = self.shards.len();
        let home = home_shard() % n;
        for i in 0..n {
            match self.shards[(home + i) % n].try_lock() {
                Ok(mut shard) => return delta.add_counts(keys, &mut shard),
                Err(TryLockError::Poisoned(p)) => {
                    return delta.add_counts(keys, &mut p.into_inner())
                }
                Err(TryLockError::WouldBlock) => {}
            }
        }
        delta.add_counts(keys, &mut lock(&self.shards[home]));
    }

    /// Whether no counts wait.
    pub fn is_empty(&self) -> bool {
        self.shards.iter().all(|s| lock(s).is_empty())
    }

    /// Records every waiting count into `into`, leaving them where they are.
    pub fn record_into(&self, into: &mut StatsSet) -> Result<(), CodecError> {
        self.shards
            .iter()
            .try_for_each(|s| lock(s).record_into(into))
    }

    /// Records every waiting count into `into`, then forgets them.
    pub fn drain_into(&self, into: &mut StatsSet) -> Result<(), CodecError> {
        let mut first_error = Ok(());
        for s in self.shards.iter() {
            let drained = lock(s).drain_into(into);
            first_error = first_error.and(drained);
        }
        first_error
    }
}

/// The second half of merging a delta, to do once the campaign's lock is released:
/// adding its histogram counts (see [`crate::core::Live::merge_counters`]).
#[must_use = "the delta's histogram counts are added by `add`"]
pub(crate) struct PendingAdd {
    pub(crate) keys: Vec<CallKey>,
    pub(crate) into: Arc<Pending>,
}

impl PendingAdd {
    /// Adds the delta's counts.
    pub fn add(self, delta: &CheckedDelta<'_>) {
        self.into.add(delta, &self.keys);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use camut_stats::OperationCap;

    /// Deltas added from several threads at once, then drained, give the same totals
    /// and histograms as the same deltas merged one by one.
    #[test]
    fn counts_added_from_many_threads_equal_a_plain_merge() {
        let mut one = StatsSet::default();
        let mut h = camut_stats::histogram();
        for v in [3u64, 70, 900, 12_000, 5_000_000] {
            h.record_n(v, v % 7 + 1).unwrap();
        }
        one.call(&CallKey {
            operation: "GET /".into(),
            status_class: 200,
        })
        .response_time = h.into();
        one.iterations.completed = 1;
        let wire = camut::stats::to_wire(&one);

        let pending = Arc::new(Pending {
            shards: (0..3).map(|_| Mutex::default()).collect(),
        });
        let counters = Mutex::new((StatsSet::default(), OperationCap::default()));
        std::thread::scope(|scope| {
            for _ in 0..4 {
                scope.spawn(|| {
                    let checked = camut::stats::check_wire(&wire).unwrap();
                    for _ in 0..250 {
                        let keys = {
                            let (set, ops) = &mut *lock(&counters);
                            checked.merge_counters(set, ops).unwrap()
                        };
                        pending.add(&checked, &keys);
                    }
                });
            }
        });
        let (mut by_shards, _) = counters.into_inner().unwrap();
        assert!(!pending.is_empty());
        pending.drain_into(&mut by_shards).unwrap();
        assert!(pending.is_empty());

        let mut plain = StatsSet::default();
        let checked = camut::stats::check_wire(&wire).unwrap();
        for _ in 0..1000 {
            checked
                .merge_into(&mut plain, &mut OperationCap::default())
                .unwrap();
        }
        assert_eq!(by_shards.request_totals(), plain.request_totals());
        assert_eq!(by_shards.iterations.completed, 1000);
        let key = CallKey {
            operation: "GET /".into(),
            status_class: 200,
        };
        let (a, b) = (
            &plain.calls[&key].response_time,
            &by_shards.calls[&key].response_time,
        );
        assert_eq!(a.len(), b.len());
        for q in [0.0, 0.5, 0.9, 0.999, 1.0] {
            assert_eq!(a.value_at_quantile(q), b.value_at_quantile(q));
        }
    }
}
