//! The bounded queue between the VUs and the sender thread.

use std::collections::VecDeque;

use camut_stats::TsdbCounts;

use crate::point::Entry;

/// Entries waiting to be sent, bounded in points; the oldest go first when full.
pub(crate) struct Queue {
    entries: VecDeque<Entry>,
    points: usize,
    cap: usize,
    pub counts: TsdbCounts,
}

impl Queue {
    pub fn new(cap: usize) -> Self {
        Queue {
            entries: VecDeque::new(),
            points: 0,
            cap,
            counts: TsdbCounts::default(),
        }
    }

    /// Queues an entry; returns whether the queue now holds `batch` points while it
    /// held fewer before (the moment to wake the sender).
    pub fn push(&mut self, e: Entry, batch: usize) -> bool {
        let before = self.points;
        let n = e.points();
        self.counts.produced += n as u64;
        self.points += n;
        self.entries.push_back(e);
        self.trim();
        before < batch && self.points >= batch
    }

    fn trim(&mut self) {
        while self.points > self.cap {
            let Some(old) = self.entries.pop_front() else {
                break;
            };
            let n = old.points();
            self.points -= n;
            self.counts.dropped += n as u64;
        }
    }

    /// Takes the oldest entries, up to `max_points` points (at least one entry).
    pub fn take(&mut self, max_points: usize) -> Vec<Entry> {
        let mut out = Vec::new();
        let mut n = 0;
        while let Some(front) = self.entries.front() {
            let p = front.points();
            if !out.is_empty() && n + p > max_points {
                break;
            }
            n += p;
            self.points -= p;
            out.push(self.entries.pop_front().expect("front exists"));
        }
        out
    }

    /// Puts a batch whose write failed back in front, oldest first.
    pub fn requeue(&mut self, batch: Vec<Entry>) {
        for e in batch.into_iter().rev() {
            self.points += e.points();
            self.entries.push_front(e);
        }
        self.trim();
    }

    /// Counts everything still queued as unsent and empties the queue.
    pub fn abandon(&mut self) {
        self.counts.unsent += self.points as u64;
        self.points = 0;
        self.entries.clear();
    }

    /// Points queued.
    pub fn points(&self) -> usize {
        self.points
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::point::Point;

    fn p(v: f64) -> Entry {
        Entry::Point(Point {
            metric: "m".into(),
            timestamp_ms: 1,
            value: v,
            tags: vec![],
        })
    }

    #[test]
    fn full_queue_drops_the_oldest_and_counts_them() {
        let mut q = Queue::new(3);
        assert!(!q.push(p(1.0), 2));
        assert!(q.push(p(2.0), 2), "a full batch wakes the sender");
        for v in 3..=5 {
            assert!(!q.push(p(v as f64), 2));
        }
        assert_eq!((q.counts.produced, q.counts.dropped), (5, 2));
        let batch = q.take(2);
        assert_eq!(batch, vec![p(3.0), p(4.0)]);
        q.push(p(6.0), 2);
        q.push(p(7.0), 2);
        // Requeued entries are the oldest: they go first when the queue is full.
        q.requeue(batch);
        assert_eq!(q.counts.dropped, 4);
        assert_eq!(q.take(10), vec![p(5.0), p(6.0), p(7.0)]);
        assert_eq!(q.points(), 0);
        q.push(p(8.0), 2);
        q.abandon();
        assert_eq!(q.counts.unsent, 1);
        assert_eq!(q.counts.produced, 8);
    }
}
