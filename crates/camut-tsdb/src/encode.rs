//! Points on the wire: telnet `put` lines and `/api/put` JSON.

use std::fmt::Write as _;

use crate::config::Precision;
use crate::point::{allowed, CallPoint, Entry, Point};

/// Replaces every character OpenTSDB does not allow in names and tags by `_`.
pub fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| if allowed(c) { c } else { '_' })
        .collect()
}

fn push_sanitized(out: &mut String, s: &str) {
    if s.chars().all(allowed) {
        out.push_str(s);
    } else {
        out.extend(s.chars().map(|c| if allowed(c) { c } else { '_' }));
    }
}

/// A value as written: integers and microseconds-as-milliseconds without float
/// formatting, which is most of the cost of a per-call line.
enum Num {
    Float(f64),
    Int(u64),
    /// Microseconds written as milliseconds with three decimals.
    Micros(u64),
}

impl Num {
    fn push_to(&self, out: &mut String) {
        match self {
            Num::Float(v) => {
                let _ = write!(out, "{v}");
            }
            Num::Int(v) => push_u64(out, *v),
            Num::Micros(us) => {
                push_u64(out, us / 1000);
                let frac = us % 1000;
                out.push('.');
                out.push(char::from(b'0' + (frac / 100) as u8));
                out.push(char::from(b'0' + (frac / 10 % 10) as u8));
                out.push(char::from(b'0' + (frac % 10) as u8));
            }
        }
    }
}

fn push_u64(out: &mut String, v: u64) {
    out.push_str(itoa::Buffer::new().format(v));
}

/// One point, flattened for writing.
struct Flat<'a> {
    metric: &'a str,
    timestamp_ms: u64,
    value: Num,
}

/// The tags every call point of one connector shares, written once.
pub(crate) struct Base {
    telnet: String,
    json: String,
}

impl Base {
    /// `campaign` and `client` tags.
    pub fn new(campaign: &str, client: &str) -> Base {
        let (campaign, client) = (sanitize(campaign), sanitize(client));
        Base {
            telnet: format!(" campaign={campaign} client={client}"),
            json: format!("\"campaign\":\"{campaign}\",\"client\":\"{client}\""),
        }
    }
}

/// Tags of a call point after the base ones, in the order written: 8 in all
/// (OpenTSDB's default limit) for a success or a call without response, 9 for a
/// failed status (`status` and `errorKind`). Empty values are left out.
fn call_tags(c: &CallPoint) -> [(&'static str, TagValue<'_>); 7] {
    let failed = !c.error_kind.is_empty();
    [
        ("vu", TagValue::Num(c.vu)),
        ("callId", TagValue::Num(c.call_id)),
        ("url", TagValue::Str(&c.url)),
        ("operation", TagValue::Str(&c.operation)),
        (
            "status",
            match c.status {
                0 => TagValue::Str(""),
                s => TagValue::Num(s as u64),
            },
        ),
        (
            "error",
            TagValue::Str(if failed { "true" } else { "false" }),
        ),
        ("errorKind", TagValue::Str(&c.error_kind)),
    ]
}

enum TagValue<'a> {
    Str(&'a str),
    Num(u64),
}

fn call_points(c: &CallPoint) -> impl Iterator<Item = Flat<'_>> {
    let t = c.timestamp_ms;
    [
        Flat {
            metric: "http.response_time",
            timestamp_ms: t,
            value: Num::Micros(c.response_time_us),
        },
        Flat {
            metric: "http.response_begin_time",
            timestamp_ms: t,
            value: Num::Micros(c.response_begin_time_us),
        },
        Flat {
            metric: "http.received",
            timestamp_ms: t,
            value: Num::Int(c.received),
        },
        Flat {
            metric: "http.transmitted",
            timestamp_ms: t,
            value: Num::Int(c.transmitted),
        },
        Flat {
            metric: "http.connections",
            timestamp_ms: t,
            value: Num::Int(c.connections),
        },
        Flat {
            metric: "http.errors",
            timestamp_ms: t,
            value: Num::Int(1),
        },
    ]
    .into_iter()
    .take(c.points())
}

fn stamp(ms: u64, p: Precision) -> u64 {
    match p {
        Precision::Ms => ms,
        Precision::S => ms / 1000,
    }
}

/// An OpenTSDB telnet `put` line (no newline), millisecond stamp.
pub fn put_line(p: &Point) -> String {
    let mut s = String::new();
    point_line(&mut s, p, Precision::Ms);
    s.pop();
    s
}

fn point_line(out: &mut String, p: &Point, precision: Precision) {
    let _ = write!(
        out,
        "put {} {} {}",
        p.metric,
        stamp(p.timestamp_ms, precision),
        p.value
    );
    for (k, v) in &p.tags {
        if !k.is_empty() && !v.is_empty() {
            out.push(' ');
            push_sanitized(out, k);
            out.push('=');
            push_sanitized(out, v);
        }
    }
    out.push('\n');
}

/// Appends the telnet lines of an entry.
pub(crate) fn telnet(out: &mut String, e: &Entry, precision: Precision, base: &Base) {
    match e {
        Entry::Point(p) => point_line(out, p, precision),
        Entry::Call(c) => {
            // The tags are the same for every point of a call: written once.
            let mut tags = String::with_capacity(160);
            tags.push_str(&base.telnet);
            for (k, v) in call_tags(c) {
                match v {
                    TagValue::Str("") => {}
                    TagValue::Str(s) => {
                        tags.push(' ');
                        tags.push_str(k);
                        tags.push('=');
                        push_sanitized(&mut tags, s);
                    }
                    TagValue::Num(n) => {
                        tags.push(' ');
                        tags.push_str(k);
                        tags.push('=');
                        push_u64(&mut tags, n);
                    }
                }
            }
            for f in call_points(c) {
                out.push_str("put ");
                out.push_str(f.metric);
                out.push(' ');
                push_u64(out, stamp(f.timestamp_ms, precision));
                out.push(' ');
                f.value.push_to(out);
                out.push_str(&tags);
                out.push('\n');
            }
        }
    }
}

/// Appends the JSON objects of an entry to an `/api/put` array being written in `out`
/// (empty, or open with `[`).
pub(crate) fn json(out: &mut String, e: &Entry, precision: Precision, base: &Base) {
    let open = |out: &mut String, metric: &str, ts: u64, value: &Num| {
        // Objects follow one another in an array: a comma unless first (after `[`).
        if !out.is_empty() && !out.ends_with('[') {
            out.push(',');
        }
        out.push_str("{\"metric\":\"");
        out.push_str(metric);
        out.push_str("\",\"timestamp\":");
        push_u64(out, stamp(ts, precision));
        out.push_str(",\"value\":");
        value.push_to(out);
        out.push_str(",\"tags\":{");
    };
    match e {
        Entry::Point(p) => {
            open(out, &p.metric, p.timestamp_ms, &Num::Float(p.value));
            let mut first = true;
            for (k, v) in &p.tags {
                if !k.is_empty() && !v.is_empty() {
                    if !first {
                        out.push(',');
                    }
                    first = false;
                    out.push('"');
                    push_sanitized(out, k);
                    out.push_str("\":\"");
                    push_sanitized(out, v);
                    out.push('"');
                }
            }
            out.push_str("}}");
        }
        Entry::Call(c) => {
            let mut tags = String::with_capacity(200);
            tags.push_str(&base.json);
            for (k, v) in call_tags(c) {
                match v {
                    TagValue::Str("") => continue,
                    TagValue::Str(s) => {
                        let _ = write!(tags, ",\"{k}\":\"");
                        push_sanitized(&mut tags, s);
                        tags.push('"');
                    }
                    TagValue::Num(n) => {
                        let _ = write!(tags, ",\"{k}\":\"");
                        push_u64(&mut tags, n);
                        tags.push('"');
                    }
                }
            }
            for f in call_points(c) {
                open(out, f.metric, f.timestamp_ms, &f.value);
                out.push_str(&tags);
                out.push_str("}}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn call(error_kind: &str) -> Entry {
        Entry::Call(CallPoint {
            timestamp_ms: 1_735_000_000_123,
            vu: 3,
            call_id: 17,
            url: Arc::from("http://127.0.0.1:8080/a?b=1"),
            operation: "GET /a".into(),
            status: if error_kind.is_empty() { 200 } else { 500 },
            error_kind: error_kind.into(),
            response_time_us: 1500,
            response_begin_time_us: 1200,
            received: 512,
            transmitted: 80,
            connections: 7,
        })
    }

    #[test]
    fn telnet_lines_of_a_call() {
        let mut s = String::new();
        telnet(&mut s, &call(""), Precision::Ms, &Base::new("shop", "d-1"));
        let lines: Vec<&str> = s.lines().collect();
        assert_eq!(lines.len(), 5);
        assert_eq!(
            lines[0],
            "put http.response_time 1735000000123 1.500 campaign=shop client=d-1 vu=3 callId=17 \
             url=http_//127.0.0.1_8080/a_b_1 operation=GET_/a status=200 error=false"
        );
        assert!(lines[4].starts_with("put http.connections 1735000000123 7 "));
        let mut s = String::new();
        telnet(
            &mut s,
            &call("HTTP_500"),
            Precision::S,
            &Base::new("shop", "d-1"),
        );
        assert_eq!(s.lines().count(), 6);
        assert!(s
            .lines()
            .last()
            .unwrap()
            .starts_with("put http.errors 1735000000 1 "));
        assert!(s.contains(" status=500 error=true errorKind=HTTP_500\n"));
    }

    #[test]
    fn json_of_points_and_calls_parses() {
        let mut s = String::new();
        json(&mut s, &call(""), Precision::Ms, &Base::new("shop", "d-1"));
        let p = Point {
            metric: "shop.cart".into(),
            timestamp_ms: 5_000,
            value: 2.5,
            tags: vec![
                ("page".into(), "a b".into()),
                ("empty".into(), String::new()),
            ],
        };
        json(
            &mut s,
            &Entry::Point(p.clone()),
            Precision::S,
            &Base::new("shop", "d-1"),
        );
        let v: serde_json::Value = serde_json::from_str(&format!("[{s}]")).unwrap();
        let a = v.as_array().unwrap();
        assert_eq!(a.len(), 6);
        assert_eq!(a[0]["metric"], "http.response_time");
        assert_eq!(a[0]["timestamp"], 1_735_000_000_123u64);
        assert_eq!(a[0]["tags"]["callId"], "17");
        assert_eq!(a[0]["tags"]["error"], "false");
        assert_eq!(a[4]["metric"], "http.connections");
        assert_eq!(a[5]["timestamp"], 5);
        assert_eq!(a[5]["tags"], serde_json::json!({"page": "a_b"}));
        assert_eq!(put_line(&p), "put shop.cart 5000 2.5 page=a_b");
    }
}
