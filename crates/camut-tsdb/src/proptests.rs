//! Property tests: any point or call, whatever its text and numbers, is written as
//! lines and JSON without a panic, one line per point.

use std::sync::Arc;

use proptest::prelude::*;

use crate::config::Precision;
use crate::encode::{json, put_line, telnet, Base};
use crate::point::{CallPoint, Entry, Point};

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        ".{0,12}",
        Just(String::new()),
        Just("a b\n=\"\\".to_string())
    ]
}

fn point() -> impl Strategy<Value = Point> {
    (
        text(),
        any::<u64>(),
        any::<f64>(),
        prop::collection::vec((text(), text()), 0..5),
    )
        .prop_map(|(metric, timestamp_ms, value, tags)| Point {
            metric,
            timestamp_ms,
            value,
            tags,
        })
}

fn call() -> impl Strategy<Value = CallPoint> {
    (
        (any::<u64>(), any::<u64>(), any::<u64>(), text(), text()),
        (any::<u16>(), text(), any::<u64>(), any::<u64>()),
        (any::<u64>(), any::<u64>(), any::<u64>()),
    )
        .prop_map(
            |(
                (timestamp_ms, vu, call_id, url, operation),
                (status, error_kind, response_time_us, response_begin_time_us),
                (received, transmitted, connections),
            )| CallPoint {
                timestamp_ms,
                vu,
                call_id,
                url: Arc::from(url.as_str()),
                operation,
                status,
                error_kind,
                response_time_us,
                response_begin_time_us,
                received,
                transmitted,
                connections,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn any_point_is_written(p in point(), campaign in text(), client in text(), seconds in any::<bool>()) {
        let precision = if seconds { Precision::S } else { Precision::Ms };
        let base = Base::new(&campaign, &client);
        let line = put_line(&p);
        prop_assert!(line.starts_with("put "));
        let entry = Entry::Point(p);
        let mut lines = String::new();
        telnet(&mut lines, &entry, precision, &base);
        prop_assert!(lines.ends_with('\n'));
        let mut body = String::from("[");
        json(&mut body, &entry, precision, &base);
    }

    #[test]
    fn any_call_is_written(c in call(), campaign in text(), client in text(), seconds in any::<bool>()) {
        let precision = if seconds { Precision::S } else { Precision::Ms };
        let base = Base::new(&campaign, &client);
        let points = c.points();
        let entry = Entry::Call(c);
        let mut lines = String::new();
        telnet(&mut lines, &entry, precision, &base);
        // Tags are sanitized: a newline in a URL or a tag cannot split a line.
        prop_assert_eq!(lines.matches('\n').count(), points);
        let mut body = String::from("[");
        json(&mut body, &entry, precision, &base);
        body.push(']');
        let parsed: Result<serde_json::Value, _> = serde_json::from_str(&body);
        prop_assert!(parsed.is_ok(), "{}", body);
    }
}
