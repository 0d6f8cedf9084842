//! Property tests: any JSON in any campaign option gives options or a clear error,
//! never a panic.

use proptest::prelude::*;
use serde_json::{Map, Number, Value};

use super::super::http_options::KEYS as HTTP_KEYS;
use super::{CampaignOptions, KEYS};

/// Names an option object may hold: the campaign's, its sections', and a few others.
fn names() -> Vec<&'static str> {
    let mut all: Vec<&'static str> = KEYS.iter().chain(HTTP_KEYS).copied().collect();
    all.extend([
        "host",
        "port",
        "protocol",
        "precision",
        "mode",
        "queue",
        "batch",
        "interval",
        "flushTimeout",
        "deployer",
        "zone",
        "instanceType",
        "ca",
        "cert",
        "key",
        "servername",
        "minVersion",
        "rejectUnauthorized",
        "insecureSkipVerify",
        "expr",
        "abortOnFail",
        "http.response_time",
        "http.errors",
        "iterations.duration",
        "",
    ]);
    all
}

/// Texts options read specially: durations, enums, threshold expressions.
const TEXTS: &[&str] = &[
    "1s",
    "5m",
    "2h",
    "1e30",
    "1e19",
    "-1",
    "0",
    "NaN",
    "Infinity",
    "1e-300",
    "p99 < 500",
    "rate < 0.01",
    "avg > 1e308",
    "count >= 1e19",
    "abort",
    "continue",
    "local",
    "telnet",
    "http",
    "ms",
    "s",
    "call",
    "aggregate",
    "TLSv1.3",
    "x",
];

fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<f64>().prop_map(|f| Number::from_f64(f).map_or(Value::Null, Value::Number)),
        prop::sample::select(vec![
            0.0,
            -0.0,
            1.0,
            -1.0,
            0.5,
            1e-300,
            1e19,
            1e20,
            1e30,
            1e300,
            4294967296.0,
            18446744073709551615.0,
            9007199254740993.0,
            f64::MAX,
            f64::MIN_POSITIVE,
        ])
        .prop_map(|f| Number::from_f64(f).map_or(Value::Null, Value::Number)),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        prop::sample::select(TEXTS).prop_map(|s| Value::String(s.to_string())),
        ".{0,10}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(names()), inner), 0..6).prop_map(|pairs| {
                Value::Object(
                    pairs
                        .into_iter()
                        .map(|(k, v)| (k.to_string(), v))
                        .collect::<Map<_, _>>(),
                )
            }),
        ]
    })
}

/// A campaign object: a valid id (most of the time) and some options with any values.
fn campaign() -> impl Strategy<Value = Value> {
    (
        prop_oneof![
            3 => Just(Value::String("c".into())),
            1 => json(),
        ],
        prop::collection::vec((prop::sample::select(names()), json()), 0..8),
    )
        .prop_map(|(id, pairs)| {
            let mut m = Map::new();
            m.insert("id".into(), id);
            for (k, v) in pairs {
                m.insert(k.to_string(), v);
            }
            Value::Object(m)
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn any_json_in_any_option_is_read_or_refused(value in campaign()) {
        match CampaignOptions::from_json(&value) {
            Ok(o) => {
                // What was accepted is usable: durations and limits are in range.
                prop_assert!(o.iteration_timeout > std::time::Duration::ZERO);
                prop_assert!(o.http.max_response_bytes >= 1);
                prop_assert!(o.cut_off_timeout >= std::time::Duration::from_secs(1));
            }
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }

    #[test]
    fn any_json_as_the_campaign_is_read_or_refused(value in json()) {
        let _ = CampaignOptions::from_json(&value);
    }
}
