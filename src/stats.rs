//! Statistics sets to and from their wire form ([`v1::StatsDelta`]).

use camut_stats::codec::{encode_histogram, CodecError, Encoded};
use camut_stats::{CallKey, Counters, OperationCap, StatsSet};

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
        for (c, [rt, rbt, st, rx, tx, tls]) in self.delta.calls.iter().zip(&self.calls) {
            let s = into.call(&CallKey {
                operation: ops.admit(&c.operation).to_string(),
                status_class: c.status_class as u16,
            });
            s.requests = s.requests.saturating_add(c.requests);
            s.errors = s.errors.saturating_add(c.errors);
            rt.add_to_lazy(&mut s.response_time)?;
            rbt.add_to_lazy(&mut s.response_begin_time)?;
            st.add_to_lazy(&mut s.service_time)?;
            rx.add_to_lazy(&mut s.received)?;
            tx.add_to_lazy(&mut s.transmitted)?;
            tls.add_to_lazy(&mut s.tls_handshake_time)?;
        }
        into.add_counters(&counters(self.delta));
        self.duration.add_to_lazy(&mut into.iterations.duration)?;
        for e in &self.delta.errors {
            into.add_error(
                &e.message,
                e.count,
                (!e.stack.is_empty()).then_some(&*e.stack),
            );
        }
        Ok(())
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
