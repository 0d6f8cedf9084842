//! A campaign's environment: the variables its drones get as `camut.env`, stored with
//! the campaign, with secret values masked in every view and log line.

use camut::v1;
use serde::{Deserialize, Serialize};

use crate::error::ServerError;

/// Most variables a campaign's environment holds.
pub const MAX_ENV_VARS: usize = 1_000;
/// Most bytes of names and values a campaign's environment holds in all.
pub const MAX_ENV_BYTES: usize = 1 << 20;
/// What a secret value shows as.
pub const MASK: &str = "********";

/// One variable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvVar {
    /// Name.
    pub key: String,
    /// Value.
    pub value: String,
    /// Whether the value is masked in views and logs.
    #[serde(default)]
    pub secret: bool,
}

/// A campaign's environment, in the order given (a later variable of the same name wins).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CampaignEnv(pub Vec<EnvVar>);

impl CampaignEnv {
    /// The environment of an API request, checked: names are non-empty, without `=`
    /// or control characters, and the whole stays within [`MAX_ENV_VARS`] and
    /// [`MAX_ENV_BYTES`].
    pub fn from_wire(vars: &[v1::EnvVar]) -> Result<CampaignEnv, ServerError> {
        let bad = |message: String| ServerError::InvalidArgument {
            field: "env".into(),
            message,
        };
        if vars.len() > MAX_ENV_VARS {
            return Err(bad(format!(
                "{} variables, more than the limit of {MAX_ENV_VARS}",
                vars.len()
            )));
        }
        let bytes: usize = vars.iter().map(|v| v.key.len() + v.value.len()).sum();
        if bytes > MAX_ENV_BYTES {
            return Err(bad(format!(
                "{bytes} bytes of names and values, more than the limit of {MAX_ENV_BYTES}"
            )));
        }
        let mut out: Vec<EnvVar> = Vec::with_capacity(vars.len());
        for v in vars {
            if v.key.is_empty() || v.key.contains('=') || v.key.chars().any(char::is_control) {
                return Err(bad(format!(
                    "variable name {:?} is empty or holds '=' or a control character",
                    v.key
                )));
            }
            out.retain(|o| o.key != v.key);
            out.push(EnvVar {
                key: v.key.clone(),
                value: v.value.clone(),
                secret: v.secret,
            });
        }
        Ok(CampaignEnv(out))
    }

    /// The stored form (JSON).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "[]".into())
    }

    /// The environment stored as `json` (empty when it does not read).
    pub fn from_json(json: &str) -> CampaignEnv {
        serde_json::from_str(json).unwrap_or_default()
    }

    /// The API's view: secret values masked.
    pub fn view(&self) -> Vec<v1::EnvVar> {
        self.0
            .iter()
            .map(|v| v1::EnvVar {
                key: v.key.clone(),
                value: if v.secret {
                    MASK.into()
                } else {
                    v.value.clone()
                },
                secret: v.secret,
            })
            .collect()
    }

    /// What a drone gets: every value, secret ones included.
    pub fn for_drone(&self) -> std::collections::HashMap<String, String> {
        self.0
            .iter()
            .map(|v| (v.key.clone(), v.value.clone()))
            .collect()
    }

    /// The secret values (non-empty ones), to mask in log lines.
    pub fn secrets(&self) -> Vec<String> {
        self.0
            .iter()
            .filter(|v| v.secret && !v.value.is_empty())
            .map(|v| v.value.clone())
            .collect()
    }
}

/// `line` with every secret value replaced by [`MASK`].
pub fn mask(line: &str, secrets: &[String]) -> String {
    let mut out = line.to_owned();
    for s in secrets {
        if out.contains(s.as_str()) {
            out = out.replace(s.as_str(), MASK);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn var(key: &str, value: &str, secret: bool) -> v1::EnvVar {
        v1::EnvVar {
            key: key.into(),
            value: value.into(),
            secret,
        }
    }

    #[test]
    fn secrets_are_masked_in_views_and_lines_but_not_for_drones() {
        let env = CampaignEnv::from_wire(&[
            var("TARGET", "http://127.0.0.1:1", false),
            var("TOKEN", "s3cr3t-value", true),
        ])
        .unwrap();
        let view = env.view();
        assert_eq!(view[0].value, "http://127.0.0.1:1");
        assert_eq!(view[1].value, MASK);
        assert_eq!(env.for_drone()["TOKEN"], "s3cr3t-value");
        assert_eq!(
            mask("token=s3cr3t-value;", &env.secrets()),
            "token=********;"
        );
        let back = CampaignEnv::from_json(&env.to_json());
        assert_eq!(back, env);
    }

    #[test]
    fn bad_names_and_sizes_are_refused_naming_the_limit() {
        let e = CampaignEnv::from_wire(&[var("A=B", "x", false)]).unwrap_err();
        assert!(e.to_string().contains("'='"), "{e}");
        let many: Vec<_> = (0..=MAX_ENV_VARS)
            .map(|i| var(&format!("K{i}"), "", false))
            .collect();
        let e = CampaignEnv::from_wire(&many).unwrap_err();
        assert!(e.to_string().contains("1000"), "{e}");
        let big = "x".repeat(MAX_ENV_BYTES + 1);
        let e = CampaignEnv::from_wire(&[var("K", &big, false)]).unwrap_err();
        assert!(e.to_string().contains("limit"), "{e}");
        // A later variable of the same name wins.
        let env = CampaignEnv::from_wire(&[var("K", "1", false), var("K", "2", false)]).unwrap();
        assert_eq!(env.0.len(), 1);
        assert_eq!(env.0[0].value, "2");
    }
}
