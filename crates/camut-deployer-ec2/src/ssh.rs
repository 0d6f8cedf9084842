//! Configuring a drone on an instance over ssh: two remote commands per instance (each
//! costs a session start-up on the host), one to read the installed version, one to
//! upload the binary when it differs, write the drone's config and start it.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use openssh::{KnownHosts, Session, SessionBuilder, Stdio};
use tokio::sync::OnceCell;
use tracing::{debug, info};

use crate::config::{shell_quote, HostKeyPolicy, SshConfig};
use crate::Error;

/// Pause between connection attempts while an instance boots.
const RETRY_PAUSE: Duration = Duration::from_secs(2);

/// What a drone is told.
pub(crate) struct DroneSettings<'a> {
    /// The URL the drone dials.
    pub server_address: &'a str,
    /// The campaign's join token.
    pub join_token: &'a str,
    /// The drone's id (the instance id).
    pub drone_id: &'a str,
    /// The CA certificate (PEM) the drone checks a TLS server against; empty: the
    /// system's roots.
    pub ca_pem: &'a str,
}

/// How one instance was configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Configured {
    /// Whether the binary was uploaded (the host's version differed).
    pub uploaded: bool,
}

/// Configures drones over ssh with one set of settings.
pub(crate) struct Configurer {
    ssh: SshConfig,
    local_binary: PathBuf,
    local_version: OnceCell<String>,
}

impl Configurer {
    /// A configurer with `ssh`'s settings, uploading `local_binary` when needed.
    pub(crate) fn new(ssh: SshConfig, local_binary: PathBuf) -> Self {
        Self {
            ssh,
            local_binary,
            local_version: OnceCell::new(),
        }
    }

    /// The settings.
    pub(crate) fn settings(&self) -> &SshConfig {
        &self.ssh
    }

    /// `camut --version` of the local binary, read once.
    async fn local_version(&self) -> Result<&str, Error> {
        self.local_version
            .get_or_try_init(|| async {
                let out = tokio::process::Command::new(&self.local_binary)
                    .arg("--version")
                    .output()
                    .await
                    .map_err(|e| self.binary_error(e.to_string()))?;
                if !out.status.success() {
                    return Err(self.binary_error(format!("--version exited with {}", out.status)));
                }
                Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
            })
            .await
            .map(String::as_str)
    }

    fn binary_error(&self, message: String) -> Error {
        Error::LocalBinary {
            path: self.local_binary.display().to_string(),
            message,
        }
    }

    /// Where the instance at `address` is dialled: the test override, or the address
    /// with the configured port.
    pub(crate) fn destination(&self, address: &str) -> Result<String, Error> {
        if let Some(fixed) = &self.ssh.address_override {
            return Ok(fixed.clone());
        }
        if address.is_empty() {
            return Err(Error::Ssh {
                address: "(none)".into(),
                message: "the instance has no address: give it a public address (subnet setting) or set use_private_address".into(),
            });
        }
        let port = self.ssh.port.unwrap_or(22);
        Ok(if address.contains(':') {
            format!("[{address}]:{port}")
        } else {
            format!("{address}:{port}")
        })
    }

    /// Configures and starts the drone on the host at `destination` (`host:port`).
    pub(crate) async fn configure(
        &self,
        destination: &str,
        drone: &DroneSettings<'_>,
    ) -> Result<Configured, Error> {
        for (name, value) in [
            ("server address", drone.server_address),
            ("join token", drone.join_token),
            ("drone id", drone.drone_id),
        ] {
            if value.is_empty() || value.contains(['\'', '\n', '\r']) {
                return Err(Error::InvalidArgument(format!(
                    "{name} {value:?} is empty or holds a quote or a line break"
                )));
            }
        }
        let local_version = self.local_version().await?.to_owned();
        let session = self.connect(destination).await?;
        let result = self
            .configure_on(&session, destination, drone, &local_version)
            .await;
        if let Err(e) = session.close().await {
            debug!(%destination, error = %e, "ssh session did not close cleanly");
        }
        result
    }

    async fn configure_on(
        &self,
        session: &Session,
        destination: &str,
        drone: &DroneSettings<'_>,
        local_version: &str,
    ) -> Result<Configured, Error> {
        let binary = self.ssh.remote_binary();
        let probe = format!("{} --version 2>/dev/null || true", shell_quote(binary));
        let out = run(session, destination, &probe, None).await?;
        let remote_version = String::from_utf8_lossy(&out).trim().to_owned();
        let upload = remote_version != local_version;
        if upload {
            info!(%destination, remote = %remote_version, local = %local_version, "uploading the camut binary");
        }
        let stdin = if upload {
            let file = std::fs::File::open(&self.local_binary)
                .map_err(|e| self.binary_error(format!("cannot open: {e}")))?;
            Some(file)
        } else {
            None
        };
        let script = self.script(upload, drone);
        run(session, destination, &script, stdin).await?;
        Ok(Configured { uploaded: upload })
    }

    /// The shell script of the second command.
    fn script(&self, upload: bool, drone: &DroneSettings<'_>) -> String {
        let sudo = self.ssh.sudo();
        let binary = shell_quote(self.ssh.remote_binary());
        let config = shell_quote(&self.ssh.drone_config(drone.drone_id));
        let mut s = String::from("set -e\n");
        if upload {
            // A temporary name of its own, so that concurrent uploads to one host do not
            // mix; the rename replaces a running binary safely.
            let inner = format!(
                "mkdir -p \"$(dirname {binary})\" && tmp={binary}.new.$$ && cat > \"$tmp\" && chmod 755 \"$tmp\" && mv -f \"$tmp\" {binary}"
            );
            s += &format!("{sudo} sh -c {}\n", shell_quote(&inner));
        }
        let mut env = format!(
            "CAMUT_SERVER='{}'\nCAMUT_TOKEN='{}'\nCAMUT_DRONE_ID='{}'\n",
            drone.server_address, drone.join_token, drone.drone_id
        );
        if !drone.ca_pem.is_empty() {
            // The CA beside the drone's config, named in it as CAMUT_CA.
            let ca_path = format!("{}.ca.pem", self.ssh.drone_config(drone.drone_id));
            let ca = shell_quote(&ca_path);
            let write_ca = format!("mkdir -p \"$(dirname {ca})\" && cat > {ca}");
            s += &format!(
                "printf '%s' {} | {sudo} sh -c {}\n",
                shell_quote(drone.ca_pem),
                shell_quote(&write_ca)
            );
            env += &format!("CAMUT_CA='{ca_path}'\n");
        }
        let write = format!("mkdir -p \"$(dirname {config})\" && umask 077 && cat > {config}");
        s += &format!(
            "printf '%s' {} | {sudo} sh -c {}\n",
            shell_quote(&env),
            shell_quote(&write)
        );
        s += &self.ssh.start_command(drone.drone_id);
        s.push('\n');
        s
    }

    /// Connects, retrying while the host boots (bounded by the retry setting).
    async fn connect(&self, destination: &str) -> Result<Session, Error> {
        let (host, port) = split_host_port(destination);
        let mut builder = SessionBuilder::default();
        builder
            .user(self.ssh.user().to_owned())
            .connect_timeout(self.ssh.connect_timeout())
            .control_directory(std::env::temp_dir())
            .known_hosts_check(match self.ssh.host_key_policy {
                HostKeyPolicy::Strict => KnownHosts::Strict,
                HostKeyPolicy::AcceptNew => KnownHosts::Add,
                HostKeyPolicy::Off => KnownHosts::Accept,
            });
        if let Some(port) = port {
            builder.port(port);
        }
        if let Some(key) = &self.ssh.key_file {
            builder.keyfile(key);
        }
        match (&self.ssh.known_hosts_file, self.ssh.host_key_policy) {
            (Some(file), _) => {
                builder.user_known_hosts_file(file);
            }
            (None, HostKeyPolicy::Off) => {
                builder.user_known_hosts_file(Path::new("/dev/null"));
            }
            (None, _) => {}
        }
        let deadline = tokio::time::Instant::now() + self.ssh.connect_retry();
        loop {
            match builder.connect(host).await {
                Ok(session) => return Ok(session),
                Err(e) => {
                    let message = error_chain(&e);
                    // A host-key refusal will not get better by waiting.
                    let fatal = message.contains("Host key verification failed");
                    if fatal || tokio::time::Instant::now() + RETRY_PAUSE > deadline {
                        let hint = if fatal {
                            " (host key unknown or changed: add it to the known-hosts file, or set ssh.host_key_policy)"
                        } else {
                            ""
                        };
                        return Err(Error::Ssh {
                            address: destination.to_owned(),
                            message: format!("cannot connect: {message}{hint}"),
                        });
                    }
                    debug!(%destination, error = %message, "ssh not up yet, retrying");
                    tokio::time::sleep(RETRY_PAUSE).await;
                }
            }
        }
    }
}

/// Runs `script` with `sh -c` on the host, its stdin from `stdin` (or nothing); returns
/// its stdout, or an error with its stderr when it fails.
async fn run(
    session: &Session,
    destination: &str,
    script: &str,
    stdin: Option<std::fs::File>,
) -> Result<Vec<u8>, Error> {
    let stdin = match stdin {
        Some(file) => Stdio::from(OwnedFd::from(file)),
        None => Stdio::null(),
    };
    let out = session
        .command("sh")
        .arg("-c")
        .arg(script)
        .stdin(stdin)
        .output()
        .await
        .map_err(|e| Error::Ssh {
            address: destination.to_owned(),
            message: format!("remote command failed to run: {}", error_chain(&e)),
        })?;
    if !out.status.success() {
        return Err(Error::Ssh {
            address: destination.to_owned(),
            message: format!(
                "remote command exited with {}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        });
    }
    Ok(out.stdout)
}

/// An error and its causes (ssh's own words are in the cause), joined by `: `.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let s = c.to_string();
        if !s.is_empty() && !text.contains(&s) {
            text.push_str(": ");
            text.push_str(s.trim());
        }
        cause = c.source();
    }
    text
}

/// `host:port` → (host, Some(port)); `[v6]:port` → (v6, Some(port)); a bare host → (host,
/// None).
fn split_host_port(destination: &str) -> (&str, Option<u16>) {
    if let Some(rest) = destination.strip_prefix('[') {
        if let Some((host, port)) = rest.split_once("]:") {
            return (host, port.parse().ok());
        }
    }
    match destination.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => match port.parse() {
            Ok(p) => (host, Some(p)),
            Err(_) => (destination, None),
        },
        _ => (destination, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_ports() {
        assert_eq!(split_host_port("127.0.0.1:2222"), ("127.0.0.1", Some(2222)));
        assert_eq!(split_host_port("[::1]:22"), ("::1", Some(22)));
        assert_eq!(split_host_port("host"), ("host", None));
    }

    #[test]
    fn destinations() {
        let c = Configurer::new(SshConfig::default(), "camut".into());
        assert_eq!(c.destination("10.0.0.1").unwrap(), "10.0.0.1:22");
        assert!(c.destination("").is_err());
        let c = Configurer::new(
            SshConfig {
                address_override: Some("127.0.0.1:2200".into()),
                ..SshConfig::default()
            },
            "camut".into(),
        );
        assert_eq!(c.destination("10.0.0.1").unwrap(), "127.0.0.1:2200");
    }

    #[test]
    fn script_writes_config_then_starts() {
        let c = Configurer::new(
            SshConfig {
                user: Some("root".into()),
                start_command: Some("start {binary}".into()),
                ..SshConfig::default()
            },
            "camut".into(),
        );
        let drone = DroneSettings {
            server_address: "http://s:7200",
            join_token: "t0k",
            drone_id: "i-1",
            ca_pem: "",
        };
        let s = c.script(false, &drone);
        assert!(!s.contains("cat > '/usr/local/bin/camut'.new"));
        assert!(s.contains("CAMUT_TOKEN="));
        assert!(!s.contains("CAMUT_CA="), "no CA: the system's roots");
        let with_ca = DroneSettings {
            ca_pem: "-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n",
            ..drone
        };
        let s = c.script(false, &with_ca);
        // The env file's line, quoted once more for the shell.
        assert!(
            s.contains(r"CAMUT_CA='\''/etc/camut/drone.env.ca.pem'\''"),
            "{s}"
        );
        assert!(
            s.contains("BEGIN CERTIFICATE")
                && s.contains(r"cat > '\''/etc/camut/drone.env.ca.pem'\''"),
            "{s}"
        );
        assert!(s.trim_end().ends_with("start '/usr/local/bin/camut'"));
        let s = c.script(true, &drone);
        assert!(s.contains("mv -f"));
    }
}
