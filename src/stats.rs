//! Statistics sets to and from their wire form ([`v1::StatsDelta`]).

use camut_stats::codec::{decode_histogram, encode_histogram, CodecError};
use camut_stats::set::ErrorCount;
use camut_stats::{CallKey, CallStats, IterationStats, StatsSet, TsdbCounts};

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
                response_time: encode_histogram(&c.response_time),
                response_begin_time: encode_histogram(&c.response_begin_time),
                service_time: encode_histogram(&c.service_time),
                received: encode_histogram(&c.received),
                transmitted: encode_histogram(&c.transmitted),
                tls_handshake_time: encode_histogram(&c.tls_handshake_time),
            })
            .collect(),
        iterations: Some(v1::IterationCounts {
            started: it.started,
            completed: it.completed,
            failed: it.failed,
            timed_out: it.timed_out,
            dropped: it.dropped,
            done_twice: it.done_twice,
            duration: encode_histogram(&it.duration),
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
    for c in &d.calls {
        let key = CallKey {
            operation: c.operation.clone(),
            status_class: c.status_class as u16,
        };
        s.calls.insert(
            key,
            CallStats {
                requests: c.requests,
                errors: c.errors,
                response_time: decode_histogram(&c.response_time)?,
                response_begin_time: decode_histogram(&c.response_begin_time)?,
                service_time: decode_histogram(&c.service_time)?,
                received: decode_histogram(&c.received)?,
                transmitted: decode_histogram(&c.transmitted)?,
                tls_handshake_time: decode_histogram(&c.tls_handshake_time)?,
            },
        );
    }
    if let Some(it) = &d.iterations {
        s.iterations = IterationStats {
            started: it.started,
            completed: it.completed,
            failed: it.failed,
            timed_out: it.timed_out,
            dropped: it.dropped,
            done_twice: it.done_twice,
            duration: decode_histogram(&it.duration)?,
        };
    }
    s.connections = d.connections;
    s.connections_open = d.connections_open;
    s.connections_peak = d.connections_peak;
    if let Some(t) = &d.tsdb {
        s.tsdb = TsdbCounts {
            produced: t.produced,
            sent: t.sent,
            retried: t.retried,
            dropped: t.dropped,
            rejected: t.rejected,
            unsent: t.unsent,
        };
    }
    for e in &d.errors {
        s.errors.insert(
            e.message.clone(),
            ErrorCount {
                count: e.count,
                stack: (!e.stack.is_empty()).then(|| e.stack.clone()),
            },
        );
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
