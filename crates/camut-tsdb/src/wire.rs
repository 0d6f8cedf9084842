//! The `tsdb` section on the wire: [`TsdbConfig`] to and from the API's
//! `TsdbSettings`, which carries the server's default section to its drones.

use std::time::Duration;

use camut::v1::{TsdbMode, TsdbPrecision, TsdbProtocol, TsdbSettings};
use serde_json::{Map, Value};

use crate::config::{ConfigError, Mode, Precision, Protocol, TsdbConfig};

impl From<&TsdbConfig> for TsdbSettings {
    fn from(c: &TsdbConfig) -> Self {
        TsdbSettings {
            host: c.host.clone(),
            port: u32::from(c.port),
            protocol: match c.protocol {
                Protocol::Telnet => TsdbProtocol::Telnet,
                Protocol::Http => TsdbProtocol::Http,
            } as i32,
            precision: match c.precision {
                Precision::Ms => TsdbPrecision::Ms,
                Precision::S => TsdbPrecision::S,
            } as i32,
            mode: match c.mode {
                Mode::Aggregate => TsdbMode::Aggregate,
                Mode::Call => TsdbMode::Call,
            } as i32,
            queue: c.queue as u64,
            batch: c.batch as u64,
            interval_ms: millis(c.interval),
            flush_timeout_ms: millis(c.flush_timeout),
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl TsdbConfig {
    /// Reads settings received from the server, with the same checks and defaults as
    /// a campaign's `tsdb` section ([`TsdbConfig::from_options`]): unspecified enums
    /// and zero numbers take the defaults.
    pub fn from_settings(s: &TsdbSettings) -> Result<Self, ConfigError> {
        let mut obj = Map::new();
        obj.insert("host".into(), Value::from(s.host.clone()));
        if s.port != 0 {
            obj.insert("port".into(), Value::from(s.port));
        }
        let mut word = |key: &str, value: Option<&str>| {
            if let Some(v) = value {
                obj.insert(key.into(), Value::from(v));
            }
        };
        word(
            "protocol",
            match s.protocol() {
                TsdbProtocol::Unspecified => None,
                TsdbProtocol::Telnet => Some("telnet"),
                TsdbProtocol::Http => Some("http"),
            },
        );
        word(
            "precision",
            match s.precision() {
                TsdbPrecision::Unspecified => None,
                TsdbPrecision::Ms => Some("ms"),
                TsdbPrecision::S => Some("s"),
            },
        );
        word(
            "mode",
            match s.mode() {
                TsdbMode::Unspecified => None,
                TsdbMode::Aggregate => Some("aggregate"),
                TsdbMode::Call => Some("call"),
            },
        );
        for (key, n) in [
            ("queue", s.queue),
            ("batch", s.batch),
            ("interval", s.interval_ms),
            ("flushTimeout", s.flush_timeout_ms),
        ] {
            if n != 0 {
                obj.insert(key.into(), Value::from(n));
            }
        }
        TsdbConfig::from_options(&obj)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_round_trip() {
        let mut c = TsdbConfig::new("tsdb.example", 4243);
        c.protocol = Protocol::Http;
        c.precision = Precision::S;
        c.mode = Mode::Call;
        c.queue = 5_000;
        c.batch = 50;
        c.interval = Duration::from_millis(2_500);
        c.flush_timeout = Duration::from_millis(700);
        let back = TsdbConfig::from_settings(&TsdbSettings::from(&c)).unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn unset_fields_take_the_defaults() {
        let s = TsdbSettings {
            host: "h".into(),
            ..Default::default()
        };
        assert_eq!(
            TsdbConfig::from_settings(&s).unwrap(),
            TsdbConfig::new("h", 4242)
        );
    }

    #[test]
    fn bad_settings_name_the_option() {
        let s = TsdbSettings {
            host: "h".into(),
            port: 70_000,
            ..Default::default()
        };
        let e = TsdbConfig::from_settings(&s).unwrap_err();
        assert_eq!(e.option, "tsdb.port");
        let empty = TsdbConfig::from_settings(&TsdbSettings::default()).unwrap_err();
        assert_eq!(empty.option, "tsdb.host");
    }
}
