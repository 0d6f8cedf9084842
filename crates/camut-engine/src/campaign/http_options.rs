//! The campaign's HTTP defaults: `tls`, `cookies`, `followRedirects`, `compressed` and
//! `keepAlive` (each call may override them, except `cookies`).

use serde::Serialize;
use serde_json::{Map, Value};

use super::options::invalid;
use super::CampaignError;
use crate::http::tls::{TlsSettings, TlsVersion};
use crate::http::BodyPolicy;

/// Most redirects a call may follow.
pub const MAX_REDIRECTS: u32 = 20;
/// Default `maxResponseBytes`: 16 MiB, more than any page or API answer, little enough
/// that a thousand VUs each holding one stay within a drone's memory.
pub const DEFAULT_MAX_RESPONSE_BYTES: u64 = 16 << 20;
/// Highest `maxResponseBytes`: 1 GiB (bigger downloads: `discardResponseBodies`).
pub const MAX_RESPONSE_BYTES: u64 = 1 << 30;

/// HTTP defaults of every `camut.http` call of a campaign.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HttpDefaults {
    /// TLS settings of `https://` calls (`tls`).
    pub tls: TlsSettings,
    /// Whether each VU keeps a cookie jar (`cookies`, default true).
    pub cookies: bool,
    /// Redirects followed per call (`followRedirects`, default 0 as in node).
    pub follow_redirects: u32,
    /// Ask for compressed responses and decode them (`compressed`, default false).
    pub compressed: bool,
    /// Reuse connections across calls (`keepAlive`, default true).
    pub keep_alive: bool,
    /// Largest response body kept, in bytes (`maxResponseBytes`, default 16 MiB).
    pub max_response_bytes: u64,
    /// Read response bodies and drop them (`discardResponseBodies`, default false).
    pub discard_response_bodies: bool,
}

impl Default for HttpDefaults {
    fn default() -> Self {
        HttpDefaults {
            tls: TlsSettings::default(),
            cookies: true,
            follow_redirects: 0,
            compressed: false,
            keep_alive: true,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            discard_response_bodies: false,
        }
    }
}

/// The campaign option keys read here.
pub(crate) const KEYS: &[&str] = &[
    "tls",
    "cookies",
    "followRedirects",
    "compressed",
    "keepAlive",
    "maxResponseBytes",
    "discardResponseBodies",
];

const TLS_KEYS: &[&str] = &[
    "insecureSkipVerify",
    "rejectUnauthorized",
    "ca",
    "cert",
    "key",
    "servername",
    "minVersion",
];

impl HttpDefaults {
    /// Reads the HTTP keys of `exports.campaign`.
    pub(crate) fn from_options(obj: &Map<String, Value>) -> Result<Self, CampaignError> {
        let mut d = HttpDefaults::default();
        if let Some(v) = obj.get("cookies") {
            d.cookies = boolean(v, "cookies")?;
        }
        if let Some(v) = obj.get("compressed") {
            d.compressed = boolean(v, "compressed")?;
        }
        if let Some(v) = obj.get("keepAlive") {
            d.keep_alive = boolean(v, "keepAlive")?;
        }
        if let Some(v) = obj.get("discardResponseBodies") {
            d.discard_response_bodies = boolean(v, "discardResponseBodies")?;
        }
        if let Some(v) = obj.get("maxResponseBytes") {
            d.max_response_bytes =
                response_bytes(v).map_err(|e| invalid("maxResponseBytes", &e))?;
        }
        if let Some(v) = obj.get("followRedirects") {
            d.follow_redirects = match v.as_f64() {
                Some(n) if n.fract() == 0.0 && (0.0..=MAX_REDIRECTS as f64).contains(&n) => {
                    n as u32
                }
                _ => {
                    return Err(invalid(
                        "followRedirects",
                        &format!("must be a whole number of redirects from 0 to {MAX_REDIRECTS}"),
                    ))
                }
            };
        }
        match obj.get("tls") {
            None | Some(Value::Null) => {}
            Some(Value::Object(m)) => d.tls = tls_settings(m)?,
            Some(_) => {
                return Err(invalid(
                    "tls",
                    "must be an object such as { ca: '-----BEGIN CERTIFICATE-----…' }",
                ))
            }
        }
        Ok(d)
    }
}

impl HttpDefaults {
    /// What becomes of response bodies unless a call says otherwise.
    pub(crate) fn response_body(&self) -> BodyPolicy {
        if self.discard_response_bodies {
            BodyPolicy::Discard
        } else {
            BodyPolicy::Keep(self.max_response_bytes)
        }
    }
}

/// A `maxResponseBytes` value: a whole number of bytes from 1 to [`MAX_RESPONSE_BYTES`].
pub(crate) fn response_bytes(v: &Value) -> Result<u64, String> {
    match v.as_f64() {
        Some(n) if n.fract() == 0.0 && (1.0..=MAX_RESPONSE_BYTES as f64).contains(&n) => {
            Ok(n as u64)
        }
        _ => Err(format!(
            "must be a whole number of bytes from 1 to {MAX_RESPONSE_BYTES} (1 GiB); \
             for bigger downloads set discardResponseBodies: true"
        )),
    }
}

fn boolean(v: &Value, key: &str) -> Result<bool, CampaignError> {
    v.as_bool()
        .ok_or_else(|| invalid(key, "must be true or false"))
}

fn tls_settings(m: &Map<String, Value>) -> Result<TlsSettings, CampaignError> {
    for k in m.keys() {
        if !TLS_KEYS.contains(&k.as_str()) {
            return Err(invalid(
                &format!("tls.{k}"),
                &format!(
                    "is not a TLS option; expected one of: {}",
                    TLS_KEYS.join(", ")
                ),
            ));
        }
    }
    let text = |k: &str| -> Result<Option<String>, CampaignError> {
        match m.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(invalid(&format!("tls.{k}"), "must be a string")),
        }
    };
    let mut s = TlsSettings {
        ca: text("ca")?,
        cert: text("cert")?,
        key: text("key")?,
        servername: text("servername")?,
        ..TlsSettings::default()
    };
    if let Some(v) = m.get("insecureSkipVerify") {
        s.insecure_skip_verify = boolean(v, "tls.insecureSkipVerify")?;
    }
    if let Some(v) = m.get("rejectUnauthorized") {
        s.insecure_skip_verify = !boolean(v, "tls.rejectUnauthorized")?;
    }
    if let Some(v) = text("minVersion")? {
        s.min_version = TlsVersion::parse(&v).map_err(|e| invalid("tls.minVersion", &e))?;
    }
    s.validate().map_err(|e| invalid("tls", &e))?;
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn defaults_and_overrides() {
        let d = HttpDefaults::from_options(json!({}).as_object().unwrap()).unwrap();
        assert_eq!(d, HttpDefaults::default());
        assert!(d.cookies && d.keep_alive && !d.compressed);
        let d = HttpDefaults::from_options(
            json!({"cookies": false, "followRedirects": 3, "compressed": true, "keepAlive": false,
                   "tls": {"rejectUnauthorized": false, "minVersion": "TLSv1.3", "servername": "x.test"}})
            .as_object()
            .unwrap(),
        )
        .unwrap();
        assert!(!d.cookies && d.compressed && !d.keep_alive);
        assert_eq!(d.follow_redirects, 3);
        assert!(d.tls.insecure_skip_verify);
        assert_eq!(d.tls.min_version, TlsVersion::Tls13);
        assert_eq!(d.tls.servername.as_deref(), Some("x.test"));
    }

    #[test]
    fn bad_values_are_refused() {
        for (bad, says) in [
            (json!({"followRedirects": -1}), "followRedirects"),
            (json!({"cookies": "yes"}), "cookies"),
            (json!({"tls": {"ca": "nope"}}), "no PEM certificate"),
            (json!({"tls": {"minVersion": "TLSv1.0"}}), "minVersion"),
            (json!({"tls": {"verify": false}}), "tls.verify"),
        ] {
            let e = HttpDefaults::from_options(bad.as_object().unwrap())
                .unwrap_err()
                .to_string();
            assert!(e.contains(says), "{e}");
        }
    }
}
