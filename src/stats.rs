//! Statistics sets to and from their wire form ([`v1::StatsDelta`]).

use std::collections::HashMap;

use camut_stats::codec::{encode_histogram, CodecError, Encoded, FlatCounts};
use camut_stats::{CallKey, CallStats, Counters, LazyHistogram, OperationCap, StatsSet};

use crate::v1;

/// The wire form of a statistics set.
pub fn to_wire(s: &StatsSet) -> v1::StatsDelta {
    let it = &s.iterations;
    v1::StatsDelta {
        calls: s
            .calls
            .iter()
            .map(|(k, c)| v1::CallSeries {
                operation: k.operation.clone(),
                status_class: k.status_class as u32,
                requests: c.requests,
                errors: c.errors,
                response_time: encode_histogram(&c.response_time).into(),
                response_begin_time: encode_histogram(&c.response_begin_time).into(),
                service_time: encode_histogram(&c.service_time).into(),
                received: encode_histogram(&c.received).into(),
                transmitted: encode_histogram(&c.transmitted).into(),
                tls_handshake_time: encode_histogram(&c.tls_handshake_time).into(),
            })
            .collect(),
        iterations: Some(v1::IterationCounts {
            started: it.started,
            completed: it.completed,
            failed: it.failed,
            timed_out: it.timed_out,
            dropped: it.dropped,
            done_twice: it.done_twice,
            duration: encode_histogram(&it.duration).into(),
        }),
        connections: s.connections,
        connections_open: s.connections_open,
        connections_peak: s.connections_peak,
        errors: s
            .errors
            .iter()
            .map(|(m, e)| v1::ErrorCount {
                message: m.clone(),
                count: e.count,
                stack: e.stack.clone().unwrap_or_default(),
            })
            .collect(),
        tsdb: (!s.tsdb.is_empty()).then_some(v1::TsdbCounts {
            produced: s.tsdb.produced,
            sent: s.tsdb.sent,
            retried: s.tsdb.retried,
            dropped: s.tsdb.dropped,
            rejected: s.tsdb.rejected,
            unsent: s.tsdb.unsent,
        }),
    }
}

/// A statistics set from its wire form.
pub fn from_wire(d: &v1::StatsDelta) -> Result<StatsSet, CodecError> {
    let mut s = StatsSet::default();
    merge_wire(&mut s, d, &mut OperationCap::new(u32::MAX))?;
    Ok(s)
}

/// The plain counters of a wire delta.
pub fn counters(d: &v1::StatsDelta) -> Counters {
    let no_it = v1::IterationCounts::default();
    let it = d.iterations.as_ref().unwrap_or(&no_it);
    Counters {
        started: it.started,
        completed: it.completed,
        failed: it.failed,
        timed_out: it.timed_out,
        dropped: it.dropped,
        done_twice: it.done_twice,
        connections: d.connections,
        connections_open: d.connections_open,
        connections_peak: d.connections_peak,
        tsdb: d
            .tsdb
            .as_ref()
            .map(crate::summary::tsdb_from_wire)
            .unwrap_or_default(),
    }
}

/// A wire delta whose histogram payloads have all been checked (header, layout and every
/// entry, without allocating): it merges without checking again and cannot fail half-way.
pub struct CheckedDelta<'a> {
    delta: &'a v1::StatsDelta,
    /// Per call series: response time, time to first byte, service time, received,
    /// transmitted, TLS handshake time.
    calls: Vec<[Encoded<'a>; 6]>,
    duration: Encoded<'a>,
}

/// Checks every histogram of a wire delta; what a drone sends is checked so on arrival,
/// before it is stored.
pub fn check_wire(d: &v1::StatsDelta) -> Result<CheckedDelta<'_>, CodecError> {
    let calls = d
        .calls
        .iter()
        .map(|c| {
            Ok([
                Encoded::parse(&c.response_time)?,
                Encoded::parse(&c.response_begin_time)?,
                Encoded::parse(&c.service_time)?,
                Encoded::parse(&c.received)?,
                Encoded::parse(&c.transmitted)?,
                Encoded::parse(&c.tls_handshake_time)?,
            ])
        })
        .collect::<Result<Vec<_>, CodecError>>()?;
    let duration = match &d.iterations {
        Some(it) => Encoded::parse(&it.duration)?,
        None => Encoded::parse(&[])?,
    };
    Ok(CheckedDelta {
        delta: d,
        calls,
        duration,
    })
}

impl CheckedDelta<'_> {
    /// The delta itself.
    pub fn delta(&self) -> &v1::StatsDelta {
        self.delta
    }

    /// Adds the delta into `into`, as [`StatsSet::merge`] would add its decoded set: each
    /// histogram is merged straight from its encoded counts, at the cost of the values
    /// it holds. Operations past `ops`' bound are merged under its overflow operation.
    /// (Recording a value checked by [`check_wire`] does not fail with an auto-resizing
    /// histogram; the error is passed on all the same.)
    pub fn merge_into(
        &self,
        into: &mut StatsSet,
        ops: &mut OperationCap,
    ) -> Result<(), CodecError> {
        self.merge(into, false, ops).map(drop)
    }

    /// The first half of a merge by index: as [`CheckedDelta::merge_into`], except that
    /// histograms of the standard layout are left out (every other one still goes into
    /// `into`). Returns the key of each call series, for [`CheckedDelta::add_counts`],
    /// which adds the rest by index into a [`FlatSet`] — possibly later and under
    /// another lock; [`FlatSet::drain_into`] records them into `into` once for many
    /// deltas.
    pub fn merge_counters(
        &self,
        into: &mut StatsSet,
        ops: &mut OperationCap,
    ) -> Result<Vec<CallKey>, CodecError> {
        self.merge(into, true, ops)
    }

    /// The second half of a merge by index: the counts of the standard-layout
    /// histograms, under the keys [`CheckedDelta::merge_counters`] gave.
    pub fn add_counts(&self, keys: &[CallKey], flat: &mut FlatSet) {
        for (key, encoded) in keys.iter().zip(&self.calls) {
            let counts = match flat.calls.get_mut(key) {
                Some(counts) => counts,
                None => flat.calls.entry(key.clone()).or_default(),
            };
            for (e, c) in encoded.iter().zip(counts.iter_mut()) {
                // `false` for another layout, which `merge_counters` merged.
                c.add(e);
            }
        }
        flat.duration.add(&self.duration);
    }

    fn merge(
        &self,
        into: &mut StatsSet,
        by_index: bool,
        ops: &mut OperationCap,
    ) -> Result<Vec<CallKey>, CodecError> {
        let left_out = |e: &Encoded<'_>| by_index && e.is_standard();
        let mut keys = Vec::with_capacity(if by_index { self.calls.len() } else { 0 });
        for (c, encoded) in self.delta.calls.iter().zip(&self.calls) {
            let key = CallKey {
                operation: ops.admit(&c.operation).to_string(),
                status_class: c.status_class as u16,
            };
            let s = into.call(&key);
            s.requests = s.requests.saturating_add(c.requests);
            s.errors = s.errors.saturating_add(c.errors);
            for (e, h) in encoded.iter().zip(histograms(s)) {
                if !left_out(e) {
                    e.add_to_lazy(h)?;
                }
            }
            if by_index {
                keys.push(key);
            }
        }
        into.add_counters(&counters(self.delta));
        if !left_out(&self.duration) {
            self.duration.add_to_lazy(&mut into.iterations.duration)?;
        }
        for e in &self.delta.errors {
            into.add_error(
                &e.message,
                e.count,
                (!e.stack.is_empty()).then_some(&*e.stack),
            );
        }
        Ok(keys)
    }
}

/// A call series' histograms, in the order of [`CheckedDelta`]'s encoded ones.
fn histograms(s: &mut CallStats) -> [&mut LazyHistogram; 6] {
    [
        &mut s.response_time,
        &mut s.response_begin_time,
        &mut s.service_time,
        &mut s.received,
        &mut s.transmitted,
        &mut s.tls_handshake_time,
    ]
}

/// Histogram counts of many deltas added by index ([`FlatCounts`]), waiting to be
/// recorded into a [`StatsSet`]: a server merging thousands of deltas a second records
/// each distinct value once a tick instead of once per delta.
#[derive(Debug, Default, Clone)]
pub struct FlatSet {
    calls: HashMap<CallKey, [FlatCounts; 6]>,
    duration: FlatCounts,
}

impl FlatSet {
    /// Whether no counts wait.
    pub fn is_empty(&self) -> bool {
        self.duration.is_empty()
            && self
                .calls
                .values()
                .all(|c| c.iter().all(FlatCounts::is_empty))
    }

    /// Records every waiting count into `into`, leaving the counts where they are.
    pub fn record_into(&self, into: &mut StatsSet) -> Result<(), CodecError> {
        for (key, counts) in &self.calls {
            let s = into.call(key);
            for (c, h) in counts.iter().zip(histograms(s)) {
                c.record_into(h)?;
            }
        }
        self.duration.record_into(&mut into.iterations.duration)
    }

    /// Records every waiting count into `into`, then forgets them (freeing their arrays).
    pub fn drain_into(&mut self, into: &mut StatsSet) -> Result<(), CodecError> {
        let recorded = self.record_into(into);
        self.calls.clear();
        self.duration.clear();
        recorded
    }
}

/// Checks a wire delta, then adds it into `into` ([`CheckedDelta::merge_into`]); a delta
/// that fails the check merges nothing.
pub fn merge_wire(
    into: &mut StatsSet,
    d: &v1::StatsDelta,
    ops: &mut OperationCap,
) -> Result<(), CodecError> {
    check_wire(d)?.merge_into(into, ops)
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 300, ..Default::default() })]

        /// Any bytes a drone sends as a delta merge, or are refused, without a panic
        /// (twice: counts that add past u64 saturate).
        #[test]
        fn any_delta_bytes_merge_or_are_refused(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300),
        ) {
            use prost::Message;
            if let Ok(d) = v1::StatsDelta::decode(&bytes[..]) {
                let mut into = StatsSet::default();
                let mut ops = OperationCap::new(3);
                let _ = merge_wire(&mut into, &d, &mut ops);
                let _ = merge_wire(&mut into, &d, &mut ops);
                let _ = from_wire(&d);
                let _ = into.request_totals();
            }
        }
    }

    /// Every histogram of a set, with its name, for comparisons.
    fn all_histograms(s: &StatsSet) -> Vec<(String, &LazyHistogram)> {
        let mut out: Vec<(String, &LazyHistogram)> = s
            .calls
            .iter()
            .flat_map(|(k, c)| {
                [
                    ("response_time", &c.response_time),
                    ("response_begin_time", &c.response_begin_time),
                    ("service_time", &c.service_time),
                    ("received", &c.received),
                    ("transmitted", &c.transmitted),
                    ("tls_handshake_time", &c.tls_handshake_time),
                ]
                .map(|(n, h)| (format!("{} {} {n}", k.operation, k.status_class), h))
            })
            .collect();
        out.push(("duration".into(), &s.iterations.duration));
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    #[test]
    fn merging_by_index_then_draining_equals_merging_each_delta() {
        // Deltas of two series with values from 1 µs to about 10⁹, a non-standard
        // layout among them (merged value by value all the same).
        let mut deltas = Vec::new();
        for d in 0..40u64 {
            let mut s = StatsSet::default();
            for (op, scale) in [("GET /", 1u64), ("POST /login", 997)] {
                let c = s.call(&CallKey {
                    operation: op.into(),
                    status_class: 200,
                });
                for i in 1..=200u64 {
                    let v = (i * i * scale + d * 13) % 1_000_000_007 + 1;
                    c.requests += 1;
                    c.response_time.record(v).unwrap();
                    c.service_time.record(v / 2 + 1).unwrap();
                    c.received.record(100 + i % 7).unwrap();
                }
                if d % 3 == 0 {
                    c.tls_handshake_time.record(5_000 + d).unwrap();
                }
            }
            s.iterations.completed = 200;
            s.iterations.duration.record(1_000 + d * d).unwrap();
            deltas.push(to_wire(&s));
        }
        let mut odd = StatsSet::default();
        let mut h = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 1 << 40, 2).unwrap();
        h.record(123_456).unwrap();
        odd.call(&CallKey {
            operation: "GET /".into(),
            status_class: 200,
        })
        .response_time = h.into();
        deltas.push(to_wire(&odd));

        let (mut each, mut by_index, mut flat) =
            (StatsSet::default(), StatsSet::default(), FlatSet::default());
        let mut ops = (OperationCap::default(), OperationCap::default());
        for (i, d) in deltas.iter().enumerate() {
            let checked = check_wire(d).unwrap();
            checked.merge_into(&mut each, &mut ops.0).unwrap();
            let keys = checked.merge_counters(&mut by_index, &mut ops.1).unwrap();
            checked.add_counts(&keys, &mut flat);
            if i == 20 {
                // A tick in the middle: what waits is recorded, the rest comes after.
                flat.drain_into(&mut by_index).unwrap();
                assert!(flat.is_empty());
            }
        }
        assert!(!flat.is_empty());
        let mut peek = by_index.clone();
        flat.record_into(&mut peek).unwrap();
        flat.drain_into(&mut by_index).unwrap();
        assert_eq!(each.request_totals(), by_index.request_totals());
        for set in [&by_index, &peek] {
            let (a, b) = (all_histograms(&each), all_histograms(set));
            assert_eq!(a.len(), b.len());
            for ((name, x), (_, y)) in a.iter().zip(&b) {
                assert_eq!(x.len(), y.len(), "{name}");
                assert_eq!((x.min(), x.max()), (y.min(), y.max()), "{name}");
                for q in [0.0, 0.5, 0.9, 0.99, 0.999, 1.0] {
                    assert_eq!(x.value_at_quantile(q), y.value_at_quantile(q), "{name} {q}");
                }
                assert_eq!(
                    x.iter_recorded()
                        .map(|v| (v.value_iterated_to(), v.count_at_value()))
                        .collect::<Vec<_>>(),
                    y.iter_recorded()
                        .map(|v| (v.value_iterated_to(), v.count_at_value()))
                        .collect::<Vec<_>>(),
                    "{name}"
                );
            }
        }
    }

    #[test]
    fn round_trip() {
        let mut s = StatsSet::default();
        let c = s.call(&CallKey {
            operation: "GET /".into(),
            status_class: 200,
        });
        c.requests = 3;
        c.response_time.record(1234).unwrap();
        s.iterations.completed = 3;
        s.iterations.duration.record(99).unwrap();
        s.error("boom", Some("at x"));
        s.connections = 2;
        s.connections_peak = 5;
        s.tsdb.produced = 7;
        s.tsdb.dropped = 3;
        let back = from_wire(&to_wire(&s)).unwrap();
        let (r, e) = back.request_totals();
        assert_eq!((r, e), (3, 0));
        assert_eq!(back.iterations.completed, 3);
        assert_eq!(back.iterations.duration.len(), 1);
        assert_eq!(back.errors["boom"].stack.as_deref(), Some("at x"));
        assert_eq!(back.connections, 2);
        assert_eq!(back.connections_peak, 5);
        assert_eq!((back.tsdb.produced, back.tsdb.dropped), (7, 3));
        assert_eq!(
            back.calls.values().next().unwrap().response_time.max(),
            s.calls.values().next().unwrap().response_time.max()
        );
    }

    #[test]
    fn merging_the_wire_form_equals_merging_the_set() {
        let mut base = StatsSet::default();
        let mut delta = StatsSet::default();
        let key = CallKey {
            operation: "GET /".into(),
            status_class: 200,
        };
        for i in 1..=500u64 {
            let c = base.call(&key);
            c.requests += 1;
            c.response_time.record(i * 11).unwrap();
            let d = delta.call(&key);
            d.requests += 1;
            d.errors += i % 2;
            d.response_time.record(i * i).unwrap();
            d.received.record(100 + i).unwrap();
        }
        delta.iterations.started = 9;
        delta.iterations.duration.record(77).unwrap();
        delta.connections_peak = 4;
        delta.tsdb.sent = 3;
        delta.error("boom", None);
        let mut by_set = base.clone();
        by_set.merge(&delta);
        let mut by_wire = base.clone();
        merge_wire(&mut by_wire, &to_wire(&delta), &mut OperationCap::default()).unwrap();
        assert_eq!(by_wire.request_totals(), by_set.request_totals());
        assert_eq!(by_wire.counters(), by_set.counters());
        assert_eq!(by_wire.errors["boom"].count, 1);
        let (a, b) = (&by_wire.calls[&key], &by_set.calls[&key]);
        for q in [0.0, 0.5, 0.99, 1.0] {
            assert_eq!(
                a.response_time.value_at_quantile(q),
                b.response_time.value_at_quantile(q)
            );
        }
        assert_eq!(a.response_time.len(), b.response_time.len());
        assert_eq!(a.received.len(), 500);
        assert_eq!(by_wire.iterations.duration.len(), 1);
    }

    #[test]
    fn a_delta_with_a_bad_histogram_merges_nothing() {
        let mut s = StatsSet::default();
        s.call(&CallKey {
            operation: "GET /".into(),
            status_class: 200,
        })
        .requests = 1;
        s.iterations.completed = 1;
        let mut wire = to_wire(&s);
        wire.calls[0].received = b"not a histogram at all, not at all".to_vec().into();
        let mut into = StatsSet::default();
        assert!(merge_wire(&mut into, &wire, &mut OperationCap::default()).is_err());
        assert!(into.is_empty(), "nothing merged: {into:?}");
    }
}
