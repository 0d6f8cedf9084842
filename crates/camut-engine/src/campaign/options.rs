//! The options of a campaign (`exports.campaign`), validated into typed form.

use std::time::Duration;

use serde::Serialize;
use serde_json::{Map, Value};

use super::http_options::{HttpDefaults, KEYS as HTTP_KEYS};
use super::CampaignError;
use camut_stats::threshold::Threshold;

/// What to do when a drone is lost mid-run (used by the server).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DroneLossPolicy {
    /// The other drones finish; results are marked degraded.
    Continue,
    /// Every drone is stopped; results are kept.
    Abort,
}

/// Where per-call or aggregated points go (OpenTSDB): the `tsdb` section.
pub use camut_tsdb::TsdbConfig as TsdbOptions;

/// The `deploy` section, kept for the server and its deployers.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct DeployOptions {
    /// Name of the deployer (`local`, `dummy`, `ec2`, …).
    pub deployer: Option<String>,
    /// Availability zone or region the instances go to.
    pub zone: Option<String>,
    /// Cloud instance type.
    pub instance_type: Option<String>,
    /// Any further keys, kept verbatim for the deployer.
    pub extra: Map<String, Value>,
}

/// The settings of `browserEmulation` (an object, or `true` for the defaults).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BrowserOptions {
    /// `navigator.userAgent`, also sent as `User-Agent` by page requests.
    pub user_agent: String,
    /// Whether the inline `<script>`s of loaded pages run (default false).
    pub run_scripts: bool,
    /// Whether `$` and `jQuery` are defined (made on first use; default true).
    pub jquery: bool,
    /// Largest HTML text parsed into a document, in bytes.
    pub max_document_bytes: usize,
    /// Most nodes one document may hold.
    pub max_document_nodes: usize,
}

/// Default `navigator.userAgent`.
pub const DEFAULT_USER_AGENT: &str =
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Camut/0.1";
/// Default `browserEmulation.maxDocumentBytes`: 8 MiB.
pub const DEFAULT_MAX_DOCUMENT_BYTES: u64 = 8 << 20;
/// Default `browserEmulation.maxDocumentNodes`.
pub const DEFAULT_MAX_DOCUMENT_NODES: u64 = 1_000_000;

impl Default for BrowserOptions {
    fn default() -> Self {
        BrowserOptions {
            user_agent: DEFAULT_USER_AGENT.into(),
            run_scripts: false,
            jquery: true,
            max_document_bytes: DEFAULT_MAX_DOCUMENT_BYTES as usize,
            max_document_nodes: DEFAULT_MAX_DOCUMENT_NODES as usize,
        }
    }
}

impl BrowserOptions {
    fn from_options(m: &Map<String, Value>) -> Result<Self, CampaignError> {
        const BROWSER_KEYS: &[&str] = &[
            "userAgent",
            "runScripts",
            "jquery",
            "maxDocumentBytes",
            "maxDocumentNodes",
        ];
        if let Some(k) = m.keys().find(|k| !BROWSER_KEYS.contains(&k.as_str())) {
            return Err(invalid(
                &format!("browserEmulation.{k}"),
                &format!("is not known; known settings: {}", BROWSER_KEYS.join(", ")),
            ));
        }
        let mut o = BrowserOptions::default();
        match m.get("userAgent") {
            None => {}
            Some(Value::String(s)) if !s.is_empty() && !s.contains(['\r', '\n']) => {
                o.user_agent = s.clone()
            }
            Some(_) => {
                return Err(invalid(
                    "browserEmulation.userAgent",
                    "must be a non-empty string on one line",
                ))
            }
        }
        for (key, slot) in [
            ("runScripts", &mut o.run_scripts),
            ("jquery", &mut o.jquery),
        ] {
            match m.get(key) {
                None => {}
                Some(Value::Bool(b)) => *slot = *b,
                Some(_) => {
                    return Err(invalid(
                        &format!("browserEmulation.{key}"),
                        "must be true or false",
                    ))
                }
            }
        }
        o.max_document_bytes = uint(
            m,
            "maxDocumentBytes",
            DEFAULT_MAX_DOCUMENT_BYTES,
            1024,
            1 << 30,
        )
        .map_err(|e| prefixed(e, "browserEmulation."))? as usize;
        o.max_document_nodes = uint(
            m,
            "maxDocumentNodes",
            DEFAULT_MAX_DOCUMENT_NODES,
            100,
            100_000_000,
        )
        .map_err(|e| prefixed(e, "browserEmulation."))? as usize;
        Ok(o)
    }
}

fn prefixed(e: CampaignError, prefix: &str) -> CampaignError {
    match e {
        CampaignError::InvalidOption { option, message } => CampaignError::InvalidOption {
            option: format!("{prefix}{option}"),
            message,
        },
        other => other,
    }
}

/// How long each VU runs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunLength {
    /// A number of iterations: per VU in the closed model, per drone with `arrivalRate`.
    Iterations(u64),
    /// A wall-clock duration from the start of the run.
    Duration(#[serde(with = "secs")] Duration),
}

mod secs {
    use std::time::Duration;
    pub fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }
}

/// The validated options of a campaign file.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CampaignOptions {
    /// Unique campaign id.
    pub id: String,
    /// Instances asked for.
    pub drones: u32,
    /// Fewest instances the campaign may run with.
    pub min_drones: u32,
    /// Virtual users per drone.
    pub users: u32,
    /// Iterations or duration.
    pub length: RunLength,
    /// Seconds over which VU starts (or the arrival rate) are spread.
    #[serde(with = "secs")]
    pub rampup: Duration,
    /// Open model: iterations started per second per drone.
    pub arrival_rate: Option<f64>,
    /// An iteration not done within this is counted as an error and the VU goes on.
    #[serde(with = "secs")]
    pub iteration_timeout: Duration,
    /// Memory limit of each worker's QuickJS runtime, in bytes.
    pub memory_limit: usize,
    /// Drone-loss policy for the server.
    pub on_drone_loss: DroneLossPolicy,
    /// Browser-like `window` with `document` and `$` (`browserEmulation`), if on.
    pub browser_emulation: Option<BrowserOptions>,
    /// Deploy section.
    pub deploy: DeployOptions,
    /// TSDB target, if any.
    pub tsdb: Option<TsdbOptions>,
    /// Pass/fail criteria evaluated on the summary.
    pub thresholds: Vec<Threshold>,
    /// Defaults of `camut.http` calls: TLS, cookies, redirects, compression, keep-alive.
    pub http: HttpDefaults,
    /// Distinct operation tags recorded per drone (and per campaign on the server);
    /// calls past them are counted under one overflow operation.
    pub max_operations: u32,
    /// A drone whose statistics the server has not acknowledged for this long (or that
    /// has heard nothing from it) stops its run by itself (`cutOffTimeout`).
    #[serde(with = "secs")]
    pub cut_off_timeout: Duration,
}

const KEYS: &[&str] = &[
    "id",
    "drones",
    "minDrones",
    "users",
    "iterations",
    "duration",
    "rampup",
    "arrivalRate",
    "iterationTimeout",
    "memoryLimit",
    "onDroneLoss",
    "browserEmulation",
    "deploy",
    "tsdb",
    "thresholds",
    "maxOperations",
    "cutOffTimeout",
];

/// Lowest `arrivalRate`: one iteration a million seconds.
pub const MIN_ARRIVAL_RATE: f64 = 0.000_001;
/// Highest `arrivalRate` per drone.
pub const MAX_ARRIVAL_RATE: f64 = 10_000_000.0;

/// Default `iterationTimeout`, as in DESIGN: 60 s.
pub const DEFAULT_ITERATION_TIMEOUT: Duration = Duration::from_secs(60);
/// Default `cutOffTimeout`: 30 s.
pub const DEFAULT_CUT_OFF_TIMEOUT: Duration = Duration::from_secs(30);

/// Default worker runtime memory limit: 1 GiB.
pub const DEFAULT_MEMORY_LIMIT_MB: u64 = 1024;

impl CampaignOptions {
    /// Validates the JSON form of `exports.campaign`.
    pub fn from_json(value: &Value) -> Result<Self, CampaignError> {
        let obj = value.as_object().ok_or_else(|| {
            invalid(
                "campaign",
                "must be an object: exports.campaign = { id: '…', users: …, iterations: … }",
            )
        })?;
        for key in obj.keys() {
            if !KEYS.contains(&key.as_str()) && !HTTP_KEYS.contains(&key.as_str()) {
                let all: Vec<&str> = KEYS.iter().chain(HTTP_KEYS).copied().collect();
                let hint = closest(key, &all)
                    .map(|k| format!(" (did you mean `{k}`?)"))
                    .unwrap_or_default();
                return Err(invalid(
                    key,
                    &format!(
                        "is not a campaign option{hint}; expected one of: {}",
                        all.join(", ")
                    ),
                ));
            }
        }
        let id = match obj.get("id") {
            Some(Value::String(s)) if valid_id(s) => s.clone(),
            Some(Value::String(_)) => {
                return Err(invalid(
                    "id",
                    "must be 1–128 characters of letters, digits, '-', '_' or '.', not starting with '.'",
                ))
            }
            Some(_) => return Err(invalid("id", "must be a string")),
            None => {
                return Err(invalid(
                    "id",
                    "is required: a unique campaign id such as 'shop-checkout'",
                ))
            }
        };
        let drones = uint(obj, "drones", 1, 1, 100_000)? as u32;
        let min_drones = uint(obj, "minDrones", drones as u64, 1, 100_000)? as u32;
        if min_drones > drones {
            return Err(invalid(
                "minDrones",
                &format!("must be at most drones ({drones})"),
            ));
        }
        let users = uint(obj, "users", 1, 1, 10_000_000)? as u32;
        let length = match (obj.get("iterations"), obj.get("duration")) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "iterations",
                    "and `duration` are exclusive: give one of them",
                ))
            }
            (None, Some(d)) => RunLength::Duration(duration(d, "duration")?),
            (_, None) => RunLength::Iterations(uint(obj, "iterations", 1, 0, u64::MAX / 2)?),
        };
        let rampup = match obj.get("rampup") {
            None => Duration::ZERO,
            Some(v) => duration(v, "rampup")?,
        };
        let arrival_rate = match obj.get("arrivalRate") {
            None | Some(Value::Null) => None,
            Some(v) => match v.as_f64() {
                Some(r) if (MIN_ARRIVAL_RATE..=MAX_ARRIVAL_RATE).contains(&r) => Some(r),
                _ => {
                    return Err(invalid(
                        "arrivalRate",
                        &format!("must be a number of iterations per second from {MIN_ARRIVAL_RATE} to {MAX_ARRIVAL_RATE}, got {v}"),
                    ))
                }
            },
        };
        let iteration_timeout = match obj.get("iterationTimeout") {
            None => DEFAULT_ITERATION_TIMEOUT,
            Some(v) => duration(v, "iterationTimeout")?,
        };
        if iteration_timeout.is_zero() {
            return Err(invalid("iterationTimeout", "must be more than 0 seconds"));
        }
        let memory_limit =
            uint(obj, "memoryLimit", DEFAULT_MEMORY_LIMIT_MB, 16, 1 << 20)? as usize * 1024 * 1024;
        let on_drone_loss = match obj.get("onDroneLoss") {
            None => DroneLossPolicy::Continue,
            Some(Value::String(s)) if s == "continue" => DroneLossPolicy::Continue,
            Some(Value::String(s)) if s == "abort" => DroneLossPolicy::Abort,
            Some(_) => return Err(invalid("onDroneLoss", "must be 'continue' or 'abort'")),
        };
        let browser_emulation = match obj.get("browserEmulation") {
            None | Some(Value::Null) | Some(Value::Bool(false)) => None,
            Some(Value::Bool(true)) => Some(BrowserOptions::default()),
            Some(Value::Object(m)) => Some(BrowserOptions::from_options(m)?),
            Some(_) => return Err(invalid(
                "browserEmulation",
                "must be true, false or an object such as { userAgent: '…', runScripts: false }",
            )),
        };
        let deploy = match obj.get("deploy") {
            None => DeployOptions::default(),
            Some(Value::Object(m)) => {
                let mut extra = m.clone();
                DeployOptions {
                    deployer: take_string(&mut extra, "deploy.deployer", "deployer")?,
                    zone: take_string(&mut extra, "deploy.zone", "zone")?,
                    instance_type: take_string(&mut extra, "deploy.instanceType", "instanceType")?,
                    extra,
                }
            }
            Some(_) => {
                return Err(invalid(
                    "deploy",
                    "must be an object such as { deployer: 'local' }",
                ))
            }
        };
        let tsdb = match obj.get("tsdb") {
            None | Some(Value::Null) => None,
            Some(Value::Object(m)) => {
                Some(TsdbOptions::from_options(m).map_err(|e| invalid(&e.option, &e.message))?)
            }
            Some(_) => {
                return Err(invalid(
                    "tsdb",
                    "must be an object such as { host: 'tsdb', port: 4242 }",
                ))
            }
        };
        let thresholds = match obj.get("thresholds") {
            None | Some(Value::Null) => Vec::new(),
            Some(v) => Threshold::parse_all(v).map_err(|e| invalid(&e.option, &e.message))?,
        };
        let http = HttpDefaults::from_options(obj)?;
        let max_operations = uint(
            obj,
            "maxOperations",
            camut_stats::cap::DEFAULT_MAX_OPERATIONS.into(),
            1,
            camut_stats::cap::MAX_MAX_OPERATIONS.into(),
        )? as u32;
        let cut_off_timeout = match obj.get("cutOffTimeout") {
            None => DEFAULT_CUT_OFF_TIMEOUT,
            Some(v) => duration(v, "cutOffTimeout")?,
        };
        if cut_off_timeout < Duration::from_secs(1) {
            return Err(invalid("cutOffTimeout", "must be at least 1 second"));
        }
        Ok(CampaignOptions {
            id,
            drones,
            min_drones,
            users,
            length,
            rampup,
            arrival_rate,
            iteration_timeout,
            memory_limit,
            on_drone_loss,
            browser_emulation,
            deploy,
            tsdb,
            thresholds,
            http,
            max_operations,
            cut_off_timeout,
        })
    }
}

pub(crate) fn invalid(option: &str, message: &str) -> CampaignError {
    CampaignError::InvalidOption {
        option: option.to_string(),
        message: message.to_string(),
    }
}

fn valid_id(s: &str) -> bool {
    // Not `.`, `..` or a hidden name: ids name paths in the console and on disk.
    !s.is_empty()
        && !s.starts_with('.')
        && s.len() <= 128
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn uint(
    obj: &Map<String, Value>,
    key: &str,
    default: u64,
    min: u64,
    max: u64,
) -> Result<u64, CampaignError> {
    let Some(v) = obj.get(key) else {
        return Ok(default);
    };
    match v.as_f64() {
        Some(n) if n.fract() == 0.0 && n >= min as f64 && n <= max as f64 => Ok(n as u64),
        Some(n) if n < min as f64 => Err(invalid(key, &format!("must be at least {min}, got {n}"))),
        _ => Err(invalid(
            key,
            &format!("must be a whole number from {min} to {max}, got {v}"),
        )),
    }
}

fn take_string(
    m: &mut Map<String, Value>,
    name: &str,
    key: &str,
) -> Result<Option<String>, CampaignError> {
    match m.remove(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(invalid(name, "must be a string")),
    }
}

/// The longest duration any option takes: 365 days.
pub const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);

/// Parses a duration: a number of seconds, or a string such as `'90s'`, `'5m'`, `'1h30m'`,
/// `'250ms'`; at most [`MAX_DURATION`].
pub fn duration(v: &Value, key: &str) -> Result<Duration, CampaignError> {
    let err = || {
        invalid(
            key,
            "must be seconds (a number from 0 to 31536000, i.e. 365 days) or a string such as '30s', '5m', '1h30m', '250ms'",
        )
    };
    match v {
        Value::Number(n) => n.as_f64().and_then(seconds).ok_or_else(err),
        Value::String(s) => parse_duration(s).ok_or_else(err),
        _ => Err(err()),
    }
}

/// A number of seconds as a duration, when it is from 0 to [`MAX_DURATION`].
fn seconds(s: f64) -> Option<Duration> {
    (s >= 0.0 && s <= MAX_DURATION.as_secs_f64()).then(|| Duration::from_secs_f64(s))
}

/// Parses `'90s'`, `'5m'`, `'1h30m'`, `'250ms'` or a bare number of seconds, up to
/// [`MAX_DURATION`].
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    if let Ok(n) = s.parse::<f64>() {
        return seconds(n);
    }
    let mut total = 0.0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let num_end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        if num_end == 0 {
            return None;
        }
        let n: f64 = rest[..num_end].parse().ok()?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let factor = match &rest[..unit_end] {
            "ms" => 0.001,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        total += n * factor;
        rest = &rest[unit_end..];
    }
    if s.is_empty() {
        return None;
    }
    seconds(total)
}

/// The known word closest to `word`, if it is a plausible typo of it.
fn closest<'a>(word: &str, known: &[&'a str]) -> Option<&'a str> {
    known
        .iter()
        .map(|k| (edit_distance(&word.to_lowercase(), &k.to_lowercase()), *k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur.push((prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn minimal_campaign_gets_defaults() {
        let o = CampaignOptions::from_json(&json!({"id": "a"})).unwrap();
        assert_eq!(o.users, 1);
        assert_eq!(o.length, RunLength::Iterations(1));
        assert_eq!(o.iteration_timeout, Duration::from_secs(60));
        assert_eq!(o.on_drone_loss, DroneLossPolicy::Continue);
    }

    #[test]
    fn typo_is_refused_with_suggestion() {
        let e = CampaignOptions::from_json(&json!({"id": "a", "user": 3}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("`user`"), "{e}");
        assert!(e.contains("did you mean `users`"), "{e}");
    }

    #[test]
    fn huge_or_tiny_numbers_are_refused_by_name_not_panicked_on() {
        for (key, value, says) in [
            ("duration", json!(1e20), "365 days"),
            ("duration", json!(1e19), "365 days"),
            ("rampup", json!(1e20), "365 days"),
            ("iterationTimeout", json!("1e30"), "365 days"),
            ("iterationTimeout", json!(1e19), "365 days"),
            ("duration", json!("99999999h"), "365 days"),
            ("arrivalRate", json!(1e-300), "from 0.000001"),
            ("arrivalRate", json!(1e300), "to 10000000"),
        ] {
            let mut o = json!({"id": "a", "users": 1});
            o[key] = value.clone();
            if key == "iterationTimeout" || key == "rampup" || key == "arrivalRate" {
                o["duration"] = json!(10);
            }
            let e = CampaignOptions::from_json(&o).unwrap_err().to_string();
            assert!(e.contains(key) && e.contains(says), "{key}={value}: {e}");
        }
        let o = CampaignOptions::from_json(&json!({"id": "a", "duration": "365d"}));
        assert!(o.is_err(), "days are not a unit");
        let o = CampaignOptions::from_json(&json!({"id": "a", "duration": 31_536_000})).unwrap();
        assert_eq!(o.length, RunLength::Duration(MAX_DURATION));
    }

    #[test]
    fn ids_starting_with_a_dot_are_refused() {
        for id in [".", "..", ".hidden"] {
            let e = CampaignOptions::from_json(&json!({ "id": id }))
                .unwrap_err()
                .to_string();
            assert!(e.contains("not starting with '.'"), "{id}: {e}");
        }
        assert!(CampaignOptions::from_json(&json!({ "id": "a.b" })).is_ok());
    }

    #[test]
    fn negative_users_refused() {
        let e = CampaignOptions::from_json(&json!({"id": "a", "users": -5}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("users") && e.contains("at least 1"), "{e}");
    }

    #[test]
    fn missing_id_refused() {
        let e = CampaignOptions::from_json(&json!({"users": 5}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("id") && e.contains("required"), "{e}");
    }

    #[test]
    fn iterations_and_duration_exclusive() {
        let e = CampaignOptions::from_json(&json!({"id": "a", "iterations": 3, "duration": "1m"}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("exclusive"), "{e}");
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("2.5"), Some(Duration::from_millis(2500)));
        assert_eq!(parse_duration("5x"), None);
        assert_eq!(parse_duration(""), None);
    }

    #[test]
    fn deploy_and_tsdb_are_kept() {
        let o = CampaignOptions::from_json(&json!({"id": "a", "drones": 3, "minDrones": 2,
            "deploy": {"deployer": "ec2", "zone": "eu-west-1a", "instanceType": "t3.large", "keyName": "k"},
            "tsdb": {"host": "tsdb", "port": 4242, "protocol": "http"}}))
        .unwrap();
        assert_eq!(o.deploy.zone.as_deref(), Some("eu-west-1a"));
        assert_eq!(o.deploy.extra["keyName"], "k");
        assert_eq!(o.tsdb.as_ref().unwrap().port, 4242);
        assert_eq!(o.min_drones, 2);
    }

    #[test]
    fn min_drones_above_drones_refused() {
        assert!(
            CampaignOptions::from_json(&json!({"id": "a", "drones": 1, "minDrones": 2})).is_err()
        );
    }
}

#[cfg(test)]
mod proptests;
