//! A run's per-second series to and from their wire form ([`v1::SeriesPoint`]).

use camut_stats::series::{OperationPoint, SeriesPoint};

use crate::v1;

fn operation_to_wire(o: &OperationPoint) -> v1::OperationPoint {
    v1::OperationPoint {
        operation: o.operation.clone(),
        requests: o.requests,
        errors: o.errors,
        p50_ms: o.p50_ms,
        p90_ms: o.p90_ms,
        p99_ms: o.p99_ms,
        max_ms: o.max_ms,
    }
}

fn operation_from_wire(o: &v1::OperationPoint) -> OperationPoint {
    OperationPoint {
        operation: o.operation.clone(),
        requests: o.requests,
        errors: o.errors,
        p50_ms: o.p50_ms,
        p90_ms: o.p90_ms,
        p99_ms: o.p99_ms,
        max_ms: o.max_ms,
    }
}

/// A series point's wire form.
pub fn to_wire(p: &SeriesPoint) -> v1::SeriesPoint {
    v1::SeriesPoint {
        time_ms: p.time_ms,
        active_vus: p.active_vus,
        total: Some(operation_to_wire(&p.total)),
        operations: p.operations.iter().map(operation_to_wire).collect(),
    }
}

/// A series point from its wire form.
pub fn from_wire(p: &v1::SeriesPoint) -> SeriesPoint {
    SeriesPoint {
        time_ms: p.time_ms,
        active_vus: p.active_vus,
        total: p
            .total
            .as_ref()
            .map(operation_from_wire)
            .unwrap_or_default(),
        operations: p.operations.iter().map(operation_from_wire).collect(),
    }
}

impl v1::CampaignSeries {
    /// The points, typed.
    pub fn points(&self) -> Vec<SeriesPoint> {
        self.points.iter().map(from_wire).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let op = |name: &str| OperationPoint {
            operation: name.into(),
            requests: 7,
            errors: 1,
            p50_ms: 1.5,
            p90_ms: 2.5,
            p99_ms: 3.5,
            max_ms: 4.5,
        };
        let p = SeriesPoint {
            time_ms: 1_000,
            active_vus: 3,
            total: op(""),
            operations: vec![op("home"), op("cart")],
        };
        assert_eq!(from_wire(&to_wire(&p)), p);
    }
}
