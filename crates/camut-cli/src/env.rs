//! `--env`, `--env-file` and `--secret-env`: the environment a campaign's test reads as
//! `camut.env`, for `camut run` and for campaigns stored on a server (`new`/`update`).

use std::path::PathBuf;

use anyhow::Context as _;
use camut::v1;

/// The environment options.
#[derive(clap::Args, Default)]
pub struct EnvArgs {
    /// KEY=VALUE the test reads as `camut.env.KEY` (repeatable).
    #[arg(long = "env", value_name = "KEY=VALUE", value_parser = parse_env)]
    env: Vec<(String, String)>,
    /// A file of KEY=VALUE lines (blank lines and lines starting with # skipped), read
    /// before the --env and --secret-env values, which win.
    #[arg(long, value_name = "PATH")]
    env_file: Option<PathBuf>,
    /// KEY=VALUE like --env, whose value the server masks in every view and log line.
    #[arg(long = "secret-env", value_name = "KEY=VALUE", value_parser = parse_env)]
    secret_env: Vec<(String, String)>,
}

/// `KEY=VALUE` → (KEY, VALUE).
fn parse_env(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| format!("'{s}' is not KEY=VALUE"))
}

impl EnvArgs {
    /// As if `--env KEY=VALUE` alone was given.
    pub fn with(key: &str, value: &str) -> EnvArgs {
        EnvArgs {
            env: vec![(key.to_string(), value.to_string())],
            ..EnvArgs::default()
        }
    }

    /// Whether any option was given.
    pub fn given(&self) -> bool {
        !self.env.is_empty() || self.env_file.is_some() || !self.secret_env.is_empty()
    }

    /// The variables, in order: the file's, then --env, then --secret-env.
    pub fn vars(&self) -> anyhow::Result<Vec<v1::EnvVar>> {
        let mut out = Vec::new();
        if let Some(path) = &self.env_file {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the env file {}", path.display()))?;
            for (n, line) in text.lines().enumerate() {
                let line = line.trim();
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                let (key, value) = parse_env(line)
                    .map_err(|e| anyhow::anyhow!("{}:{}: {e}", path.display(), n + 1))?;
                out.push(var(key, value, false));
            }
        }
        out.extend(self.env.iter().cloned().map(|(k, v)| var(k, v, false)));
        out.extend(
            self.secret_env
                .iter()
                .cloned()
                .map(|(k, v)| var(k, v, true)),
        );
        Ok(out)
    }
}

fn var(key: String, value: String, secret: bool) -> v1::EnvVar {
    v1::EnvVar { key, value, secret }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_then_flags_with_secrets_marked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("env");
        std::fs::write(&path, "# comment\n\nA=1\nB=x=y\n").unwrap();
        let args = EnvArgs {
            env: vec![("A".into(), "2".into())],
            env_file: Some(path.clone()),
            secret_env: vec![("S".into(), "p".into())],
        };
        let vars = args.vars().unwrap();
        let flat: Vec<_> = vars
            .iter()
            .map(|v| (v.key.as_str(), v.value.as_str(), v.secret))
            .collect();
        assert_eq!(
            flat,
            [
                ("A", "1", false),
                ("B", "x=y", false),
                ("A", "2", false),
                ("S", "p", true)
            ]
        );
        std::fs::write(&path, "oops\n").unwrap();
        let e = args.vars().unwrap_err().to_string();
        assert!(e.contains(":1:") && e.contains("KEY=VALUE"), "{e}");
        assert!(parse_env("=x").is_err());
    }
}
