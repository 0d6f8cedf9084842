//! What goes into the queue: custom points and per-call records.

use std::sync::Arc;

use thiserror::Error;

/// A time-series point: one `camut.tsdb` call, or one aggregate of an interval.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// Metric name.
    pub metric: String,
    /// Unix time in milliseconds, taken when recorded.
    pub timestamp_ms: u64,
    /// Value.
    pub value: f64,
    /// Tags (default ones first, then the test's own, which override).
    pub tags: Vec<(String, String)>,
}

/// One HTTP call, recorded in per-call mode. It is written as the points
/// `http.response_time`, `http.response_begin_time` (milliseconds),
/// `http.received`, `http.transmitted` (bytes), `http.connections` (connections of
/// the drone open at the call's end), and `http.errors` (1) when it failed, tagged
/// with the connector's campaign and client, the call's own tags, `error=true|false`
/// and, on failure, `errorKind`.
#[derive(Debug, Clone, PartialEq)]
pub struct CallPoint {
    /// Unix time in milliseconds when the call ended.
    pub timestamp_ms: u64,
    /// VU id.
    pub vu: u64,
    /// Call id, unique within the drone.
    pub call_id: u64,
    /// Requested URL.
    pub url: Arc<str>,
    /// Operation tag.
    pub operation: String,
    /// HTTP status; 0 when no response came.
    pub status: u16,
    /// Why the call failed (`timeout`, `ECONNREFUSED`, `HTTP_500`, …); empty when it
    /// succeeded.
    pub error_kind: String,
    /// Full response time, microseconds.
    pub response_time_us: u64,
    /// Time to the response's first byte, microseconds.
    pub response_begin_time_us: u64,
    /// Bytes received.
    pub received: u64,
    /// Bytes sent.
    pub transmitted: u64,
    /// Connections of the drone open when the call ended.
    pub connections: u64,
}

impl CallPoint {
    /// How many points this call is written as.
    pub fn points(&self) -> usize {
        if self.error_kind.is_empty() {
            5
        } else {
            6
        }
    }
}

/// A queue entry.
#[derive(Debug, Clone, PartialEq)]
pub enum Entry {
    /// A single point.
    Point(Point),
    /// A call, written as several points.
    Call(CallPoint),
}

impl Entry {
    /// How many points this entry is written as.
    pub fn points(&self) -> usize {
        match self {
            Entry::Point(_) => 1,
            Entry::Call(c) => c.points(),
        }
    }
}

/// A metric name OpenTSDB would refuse.
#[derive(Debug, Clone, Error, PartialEq)]
pub enum MetricError {
    /// Empty name.
    #[error("the metric name is empty")]
    Empty,
    /// A character outside OpenTSDB's set.
    #[error("the metric name '{name}' has '{bad}', which OpenTSDB does not allow: use letters, digits and - _ . /")]
    BadChar {
        /// The name.
        name: String,
        /// The first character not allowed.
        bad: char,
    },
}

/// Whether OpenTSDB allows `c` in metric names, tag keys and tag values.
pub(crate) fn allowed(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/')
}

/// Checks a metric name against OpenTSDB's rules (letters, digits, `-_./`).
pub fn validate_metric(name: &str) -> Result<(), MetricError> {
    if name.is_empty() {
        return Err(MetricError::Empty);
    }
    match name.chars().find(|c| !allowed(*c)) {
        Some(bad) => Err(MetricError::BadChar {
            name: name.to_string(),
            bad,
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_names_follow_opentsdb() {
        assert!(validate_metric("shop.cart_size-2/x").is_ok());
        assert_eq!(validate_metric(""), Err(MetricError::Empty));
        let e = validate_metric("cart size").unwrap_err();
        assert_eq!(
            e,
            MetricError::BadChar {
                name: "cart size".into(),
                bad: ' '
            }
        );
        assert!(e.to_string().contains("letters, digits"));
    }
}
