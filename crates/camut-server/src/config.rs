//! `camut.toml`: the server's configuration. With no file at all the server starts on
//! loopback with a ./ data dir and the local deployer.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::ServerError;

/// Default listen address: loopback only.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7200";

/// The server's configuration.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// One address for gRPC, /healthz, /metrics and the UI (default 127.0.0.1:7200).
    pub listen: Option<SocketAddr>,
    /// Where the store lives (default: the current directory).
    pub data_dir: Option<PathBuf>,
    /// Bearer token of the control API; required when listening beyond loopback.
    pub token: Option<String>,
    /// The URL drones dial (default: http://LISTEN, https:// with TLS); the console
    /// answers to its host too.
    pub public_url: Option<String>,
    /// More `Host` values (`host[:port]`) the console answers to, besides the listen
    /// address, `localhost` and `public_url`'s host (e.g. behind a reverse proxy).
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
    /// TLS on the one port: certificate and key (PEM files).
    pub tls: Option<TlsConfig>,
    /// Deployer used when a campaign names none (default: local).
    pub default_deployer: Option<String>,
    /// Deployers by name: built-in (`kind = "local" | "dummy"`) or external (`address`).
    #[serde(default)]
    pub deployers: BTreeMap<String, DeployerConfig>,
    /// A drone silent for this long is lost (seconds, default 10).
    pub drone_timeout_s: Option<f64>,
    /// Where the web console is served on the listen address (default `/ui`; `""`
    /// turns it off).
    pub ui_path: Option<String>,
    /// This server's id, put on every cloud instance it asks for (tag `camut:server`) so
    /// that servers sharing a cloud account tell their instances apart (default:
    /// `camut-<hostname>`).
    pub server_id: Option<String>,
    /// The TSDB of campaigns whose file has no `tsdb` section: the same keys as the
    /// campaign's section (`host`, `port`, `protocol`, `precision`, `mode`, …).
    pub tsdb: Option<toml::Table>,
}

/// The `[tls]` table: the server's certificate and key, and what drones trust.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// The certificate chain, PEM (the server's certificate first).
    pub cert: PathBuf,
    /// Its private key, PEM.
    pub key: PathBuf,
    /// The CA certificate (PEM) that the deployers hand to the drones they configure,
    /// when the server's certificate does not chain to the system roots.
    pub ca: Option<PathBuf>,
}

/// Default path of the web console.
pub const DEFAULT_UI_PATH: &str = "/ui";

/// One deployer entry.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeployerConfig {
    /// Built-in kind: `local`, `dummy` or `ec2`.
    pub kind: Option<String>,
    /// Address of an external Deployer service (`http://host:port`).
    pub address: Option<String>,
    /// For `dummy`: how many instances it can make.
    pub capacity: Option<u32>,
    /// The built-in kind's own settings (for `ec2`: region, image, ssh, … as in
    /// examples/camut.toml), read by the binary that builds the deployer.
    pub settings: Option<toml::Table>,
}

impl ServerConfig {
    /// Reads a config file.
    pub fn load(path: &Path) -> Result<ServerConfig, ServerError> {
        let text = std::fs::read_to_string(path).map_err(|e| ServerError::InvalidArgument {
            field: "config".into(),
            message: format!("cannot read {}: {e}", path.display()),
        })?;
        toml::from_str(&text).map_err(|e| ServerError::InvalidArgument {
            field: "config".into(),
            message: format!("{}: {e}", path.display()),
        })
    }

    /// The listen address.
    pub fn listen(&self) -> SocketAddr {
        self.listen
            .unwrap_or_else(|| DEFAULT_LISTEN.parse().expect("default address parses"))
    }

    /// The data dir.
    pub fn data_dir(&self) -> PathBuf {
        self.data_dir.clone().unwrap_or_else(|| PathBuf::from("."))
    }

    /// This server's id: the configured one, else `camut-<hostname>`.
    pub fn server_id(&self) -> String {
        if let Some(id) = self.server_id.as_ref().filter(|s| !s.is_empty()) {
            return id.clone();
        }
        let host = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
        let host = host.trim();
        format!("camut-{}", if host.is_empty() { "server" } else { host })
    }

    /// The default TSDB section (checked), if any.
    pub fn default_tsdb(&self) -> Result<Option<camut_tsdb::TsdbConfig>, ServerError> {
        let Some(table) = &self.tsdb else {
            return Ok(None);
        };
        let json = serde_json::to_value(table).map_err(|e| ServerError::InvalidArgument {
            field: "tsdb".into(),
            message: e.to_string(),
        })?;
        let map = json.as_object().cloned().unwrap_or_default();
        let config = camut_tsdb::TsdbConfig::from_options(&map).map_err(|e| {
            ServerError::InvalidArgument {
                field: e.option.clone(),
                message: e.message.clone(),
            }
        })?;
        if !config.has_host() {
            return Err(ServerError::InvalidArgument {
                field: "tsdb.host".into(),
                message: "is required in the server's default TSDB".into(),
            });
        }
        Ok(Some(config))
    }

    /// The deployer a campaign without one uses.
    pub fn default_deployer(&self) -> String {
        self.default_deployer
            .clone()
            .unwrap_or_else(|| "local".into())
    }

    /// The web console's path (`/ui` by default), without a trailing slash; empty
    /// when the console is off.
    pub fn ui_path(&self) -> String {
        let path = self.ui_path.as_deref().unwrap_or(DEFAULT_UI_PATH);
        path.trim_end_matches('/').to_string()
    }

    /// Refuses a config that would expose the control API without a token, a bad
    /// console path or a bad default TSDB.
    pub fn check(&self) -> Result<(), ServerError> {
        self.default_tsdb()?;
        if let Some(token) = self.token.as_deref().filter(|t| !t.is_empty()) {
            crate::auth::check_strength(token).map_err(|message| ServerError::InvalidArgument {
                field: "token".into(),
                message,
            })?;
        }
        if !self.listen().ip().is_loopback() && self.token.as_deref().unwrap_or("").is_empty() {
            return Err(ServerError::InvalidArgument {
                field: "token".into(),
                message: format!("listening on {} (beyond loopback) needs an API token: set `token` in camut.toml", self.listen()),
            });
        }
        let ui = self.ui_path();
        let reserved = ui.starts_with("/camut.")
            || ui.starts_with("/grpc.")
            || ui == "/healthz"
            || ui == "/metrics";
        let plain = ui
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/-_.".contains(c));
        let given = self.ui_path.as_deref().unwrap_or(DEFAULT_UI_PATH);
        if !given.is_empty() && (!ui.starts_with('/') || ui.len() < 2 || reserved || !plain) {
            return Err(ServerError::InvalidArgument {
                field: "ui_path".into(),
                message: format!("{given:?} cannot hold the console: use a path such as \"/ui\" (or \"\" to turn it off)"),
            });
        }
        Ok(())
    }
}

/// The plaintext rule: listening beyond loopback needs TLS, unless the operator allows
/// plaintext explicitly (behind a TLS-terminating proxy, say).
pub fn check_plaintext(
    listen: SocketAddr,
    tls: bool,
    allow_plaintext: bool,
) -> Result<(), ServerError> {
    if listen.ip().is_loopback() || tls || allow_plaintext {
        return Ok(());
    }
    Err(ServerError::InvalidArgument {
        field: "tls".into(),
        message: format!(
            "listening on {listen} (beyond loopback) without TLS is refused: give a certificate (--tls-cert/--tls-key or [tls] in camut.toml) or --tls-self-signed, or say --allow-plaintext when a TLS-terminating proxy is in front"
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plaintext_beyond_loopback_needs_consent() {
        let any: SocketAddr = "0.0.0.0:7200".parse().unwrap();
        let e = check_plaintext(any, false, false).unwrap_err().to_string();
        assert!(
            e.contains("without TLS is refused") && e.contains("--allow-plaintext"),
            "{e}"
        );
        assert!(check_plaintext(any, true, false).is_ok());
        assert!(check_plaintext(any, false, true).is_ok());
        assert!(check_plaintext("127.0.0.1:7200".parse().unwrap(), false, false).is_ok());
        assert!(check_plaintext("[::1]:7200".parse().unwrap(), false, false).is_ok());
        let c: ServerConfig =
            toml::from_str("[tls]\ncert = \"/c.pem\"\nkey = \"/k.pem\"\nca = \"/ca.pem\"\n")
                .unwrap();
        assert_eq!(c.tls.unwrap().ca.unwrap(), PathBuf::from("/ca.pem"));
    }

    #[test]
    fn defaults_and_token_rule() {
        let c = ServerConfig::default();
        assert_eq!(c.listen().to_string(), DEFAULT_LISTEN);
        assert!(c.check().is_ok());
        let c: ServerConfig = toml::from_str("listen = \"0.0.0.0:7200\"").unwrap();
        assert!(c.check().unwrap_err().to_string().contains("token"));
        let c: ServerConfig = toml::from_str(
            "listen = \"0.0.0.0:7200\"\ntoken = \"sixteen-chars-ok\"\n[deployers.aws]\naddress = \"http://127.0.0.1:7300\"\n[deployers.d]\nkind = \"dummy\"\ncapacity = 2\n",
        )
        .unwrap();
        assert!(c.check().is_ok());
        for weak in [" ", "a"] {
            let c: ServerConfig = toml::from_str(&format!("token = {weak:?}")).unwrap();
            let e = c.check().unwrap_err().to_string();
            assert!(e.contains("at least 16 characters"), "{e}");
        }
        assert_eq!(c.deployers["d"].capacity, Some(2));
        assert_eq!(c.ui_path(), "/ui");
        let c: ServerConfig = toml::from_str("ui_path = \"/console/\"").unwrap();
        assert_eq!(
            (c.ui_path().as_str(), c.check().is_ok()),
            ("/console", true)
        );
        let c: ServerConfig = toml::from_str("ui_path = \"\"").unwrap();
        assert_eq!((c.ui_path().as_str(), c.check().is_ok()), ("", true));
        for bad in ["/", "ui", "/healthz", "/a b"] {
            let c: ServerConfig = toml::from_str(&format!("ui_path = {bad:?}")).unwrap();
            assert!(c.check().is_err(), "{bad}");
        }
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/camut.toml");
        let c = ServerConfig::load(&example).unwrap();
        assert_eq!((c.ui_path().as_str(), c.check().is_ok()), ("/ui", true));
        assert!(
            toml::from_str::<ServerConfig>("lissten = 1").is_err(),
            "typos are refused"
        );
    }
}
