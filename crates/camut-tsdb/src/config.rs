//! The campaign's `tsdb` section.

use std::time::Duration;

use serde::Serialize;
use serde_json::{Map, Value};
use thiserror::Error;

/// Wire protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// `put metric ts value k=v…` lines over TCP; fire and forget.
    Telnet,
    /// JSON arrays POSTed to `/api/put`; every batch acknowledged.
    Http,
}

/// Timestamp precision on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// 13-digit milliseconds: points of one series within a second stay distinct.
    Ms,
    /// Seconds, for servers that take nothing finer (VictoriaMetrics' telnet listener).
    S,
}

/// What is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Per interval and drone: count, rate, p50, p90, p99, max of each metric and
    /// operation, and `camut.tsdb` points aggregated by metric and the test's tags.
    Aggregate,
    /// Every HTTP call as points tagged with url, call id, VU…, and every
    /// `camut.tsdb` point as it is.
    Call,
}

/// Where and how points go.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TsdbConfig {
    /// Host name or address; empty when the section leaves it to `camut run --tsdb`
    /// or to the server's default TSDB (see [`TsdbConfig::has_host`]).
    pub host: String,
    /// Port of the telnet listener, or of the HTTP API with `protocol: 'http'`.
    pub port: u16,
    /// Wire protocol.
    pub protocol: Protocol,
    /// Timestamp precision.
    pub precision: Precision,
    /// Per-call points or per-interval aggregates.
    pub mode: Mode,
    /// Most points held in memory; beyond it the oldest are dropped and counted.
    pub queue: usize,
    /// Most points per write (one telnet write or one HTTP request).
    pub batch: usize,
    /// Aggregation interval.
    #[serde(serialize_with = "millis")]
    pub interval: Duration,
    /// At the end of a run, how long unsent points may take to go out.
    #[serde(serialize_with = "millis")]
    pub flush_timeout: Duration,
}

fn millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_millis() as u64)
}

impl TsdbConfig {
    /// Defaults for `host:port`: telnet, millisecond stamps, aggregates.
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        TsdbConfig {
            host: host.into(),
            port,
            protocol: Protocol::Telnet,
            precision: Precision::Ms,
            mode: Mode::Aggregate,
            queue: 100_000,
            batch: 1_000,
            interval: Duration::from_secs(1),
            flush_timeout: Duration::from_secs(10),
        }
    }

    /// Whether a host is set. A section without one only gives the way of sending
    /// (protocol, precision, mode, queue…): `camut run --tsdb HOST:PORT` or the
    /// server's default TSDB gives the address.
    pub fn has_host(&self) -> bool {
        !self.host.is_empty()
    }

    /// Sets the address (host and port), keeping this section's way of sending.
    pub fn set_address(&mut self, host: impl Into<String>, port: u16) {
        self.host = host.into();
        self.port = port;
    }

    /// `host:port`.
    pub fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// Reads the campaign's `tsdb` object, e.g.
    /// `{ host: 'tsdb', port: 4242, protocol: 'http', precision: 's', mode: 'call' }`.
    /// `host` may be left out (see [`TsdbConfig::has_host`]).
    pub fn from_options(obj: &Map<String, Value>) -> Result<Self, ConfigError> {
        let host = match obj.get("host") {
            Some(Value::String(h)) if !h.is_empty() => h.clone(),
            None => String::new(),
            Some(_) => return Err(err("tsdb.host", "must be a non-empty string")),
        };
        let port = match obj.get("port") {
            None => 4242,
            Some(v) => match v.as_u64() {
                Some(p) if (1..=65535).contains(&p) => p as u16,
                _ => return Err(err("tsdb.port", "must be a port number 1–65535")),
            },
        };
        let mut c = TsdbConfig::new(host, port);
        for (key, v) in obj {
            match key.as_str() {
                "host" | "port" => {}
                "protocol" => {
                    c.protocol = match v.as_str() {
                        Some("telnet") => Protocol::Telnet,
                        Some("http") => Protocol::Http,
                        _ => return Err(err("tsdb.protocol", "must be 'telnet' or 'http'")),
                    }
                }
                "precision" => {
                    c.precision = match v.as_str() {
                        Some("ms") => Precision::Ms,
                        Some("s") => Precision::S,
                        _ => return Err(err("tsdb.precision", "must be 'ms' or 's'")),
                    }
                }
                "mode" => {
                    c.mode = match v.as_str() {
                        Some("aggregate") => Mode::Aggregate,
                        Some("call") => Mode::Call,
                        _ => return Err(err("tsdb.mode", "must be 'aggregate' or 'call'")),
                    }
                }
                "queue" => c.queue = count(v, "tsdb.queue", 1, 100_000_000)? as usize,
                "batch" => c.batch = count(v, "tsdb.batch", 1, 100_000)? as usize,
                "interval" => {
                    c.interval = Duration::from_millis(count(v, "tsdb.interval", 100, 3_600_000)?)
                }
                "flushTimeout" => {
                    c.flush_timeout =
                        Duration::from_millis(count(v, "tsdb.flushTimeout", 0, 3_600_000)?)
                }
                other => {
                    return Err(err(
                        &format!("tsdb.{other}"),
                        "is not a tsdb option (host, port, protocol, precision, mode, queue, batch, interval, flushTimeout)",
                    ))
                }
            }
        }
        Ok(c)
    }
}

fn count(v: &Value, option: &str, min: u64, max: u64) -> Result<u64, ConfigError> {
    match v.as_u64() {
        Some(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(err(
            option,
            &format!("must be a whole number from {min} to {max}"),
        )),
    }
}

fn err(option: &str, message: &str) -> ConfigError {
    ConfigError {
        option: option.to_string(),
        message: message.to_string(),
    }
}

/// A `tsdb` option that cannot be used.
#[derive(Debug, Clone, Error, PartialEq)]
#[error("{option} {message}")]
pub struct ConfigError {
    /// The option, e.g. `tsdb.protocol`.
    pub option: String,
    /// What is wrong with it.
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(v: Value) -> Result<TsdbConfig, ConfigError> {
        TsdbConfig::from_options(v.as_object().unwrap())
    }

    #[test]
    fn defaults_and_options() {
        let c = parse(serde_json::json!({"host": "tsdb"})).unwrap();
        assert_eq!(c, TsdbConfig::new("tsdb", 4242));
        assert_eq!(c.mode, Mode::Aggregate);
        let c = parse(
            serde_json::json!({"host": "h", "port": 4243, "protocol": "http",
            "precision": "s", "mode": "call", "queue": 10, "batch": 5, "interval": 500}),
        )
        .unwrap();
        assert_eq!(
            (c.protocol, c.precision, c.mode, c.queue, c.batch),
            (Protocol::Http, Precision::S, Mode::Call, 10, 5)
        );
        assert_eq!(c.interval, Duration::from_millis(500));
        assert_eq!(c.address(), "h:4243");
    }

    #[test]
    fn bad_options_name_the_option() {
        let e = parse(serde_json::json!({"host": 1})).unwrap_err();
        assert_eq!(e.option, "tsdb.host");
        let c = parse(serde_json::json!({"protocol": "http", "mode": "call"})).unwrap();
        assert!(!c.has_host(), "the address may come from --tsdb");
        let e = parse(serde_json::json!({"host": "h", "protocol": "udp"})).unwrap_err();
        assert_eq!(e.to_string(), "tsdb.protocol must be 'telnet' or 'http'");
        let e = parse(serde_json::json!({"host": "h", "queue": 0})).unwrap_err();
        assert_eq!(e.option, "tsdb.queue");
        let e = parse(serde_json::json!({"host": "h", "modes": "call"})).unwrap_err();
        assert_eq!(e.option, "tsdb.modes");
    }
}
