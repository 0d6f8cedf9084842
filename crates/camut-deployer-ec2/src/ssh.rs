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

/// The binary as it is uploaded.
enum Upload {
    /// As it is.
    Plain,
    /// gzip-compressed into a temporary file (when that saves at least a fifth).
    Gzip(tempfile::TempPath),
}

/// Configures drones over ssh with one set of settings.
pub(crate) struct Configurer {
    ssh: SshConfig,
    local_binary: PathBuf,
    local_version: OnceCell<String>,
    upload: OnceCell<Upload>,
}

impl Configurer {
    /// A configurer with `ssh`'s settings, uploading `local_binary` when needed.
    pub(crate) fn new(ssh: SshConfig, local_binary: PathBuf) -> Self {
        Self {
            ssh,
            local_binary,
            local_version: OnceCell::new(),
            upload: OnceCell::new(),
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

    /// The binary's upload form, made once: compressed when that pays.
    async fn upload_form(&self) -> Result<&Upload, Error> {
        self.upload
            .get_or_try_init(|| async {
                let path = self.local_binary.clone();
                let made = tokio::task::spawn_blocking(move || gzip_copy(&path))
                    .await
                    .map_err(|e| self.binary_error(format!("compression failed: {e}")))?
                    .map_err(|e| self.binary_error(format!("cannot compress: {e}")))?;
                let (plain, packed, file) = made;
                info!(binary = %self.local_binary.display(), plain, packed, "upload size of the camut binary");
                Ok(if packed * 5 <= plain * 4 {
                    Upload::Gzip(file)
                } else {
                    Upload::Plain
                })
            })
            .await
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
        // First line: whether the host can unpack gzip; second: its camut's version.
        let probe = format!(
            "v=$({} --version 2>/dev/null); g=no; command -v gzip >/dev/null 2>&1 && g=yes; printf '%s\\n%s\\n' \"$g\" \"$v\"",
            shell_quote(binary)
        );
        let out = run(session, destination, &probe, None).await?;
        let out = String::from_utf8_lossy(&out);
        let mut lines = out.lines();
        let has_gzip = lines.next() == Some("yes");
        let remote_version = lines.next().unwrap_or_default().trim().to_owned();
        let upload = remote_version != local_version;
        let (stdin, gzip) = if upload {
            let (path, gzip) = match self.upload_form().await? {
                Upload::Gzip(packed) if has_gzip => (packed.to_path_buf(), true),
                _ => (self.local_binary.clone(), false),
            };
            let size = std::fs::metadata(&path).map_or(0, |m| m.len());
            info!(%destination, remote = %remote_version, local = %local_version, bytes = size, gzip,
                "uploading the camut binary");
            let file = std::fs::File::open(&path)
                .map_err(|e| self.binary_error(format!("cannot open {}: {e}", path.display())))?;
            (Some(file), gzip)
        } else {
            (None, false)
        };
        let script = self.script(upload.then_some(gzip), drone);
        run(session, destination, &script, stdin).await?;
        Ok(Configured { uploaded: upload })
    }

    /// The shell script of the second command; `upload` is whether the binary comes
    /// on stdin, and then whether gzip-compressed.
    fn script(&self, upload: Option<bool>, drone: &DroneSettings<'_>) -> String {
        let sudo = self.ssh.sudo();
        let binary = shell_quote(self.ssh.remote_binary());
        let config = shell_quote(&self.ssh.drone_config(drone.drone_id));
        let mut s = String::from("set -e\n");
        if let Some(gzip) = upload {
            // A temporary name of its own, so that concurrent uploads to one host do not
            // mix; the rename replaces a running binary safely.
            let unpack = if gzip { "gzip -dc" } else { "cat" };
            let inner = format!(
                "mkdir -p \"$(dirname {binary})\" && tmp={binary}.new.$$ && {unpack} > \"$tmp\" && chmod 755 \"$tmp\" && mv -f \"$tmp\" {binary}"
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
        s += &detached(
            &self.ssh.start_command(drone.drone_id),
            drone.drone_id,
            START_WATCH_TENTHS,
        );
        s
    }

    /// What to do about a connection error that retrying cannot mend (a refused host
    /// key or a refused login); None for errors of a host that is not up yet.
    fn refusal_hint(&self, message: &str) -> Option<String> {
        if message.contains("Host key verification failed") {
            return Some(" (host key unknown or changed: add it to the known-hosts file, or set ssh.host_key_policy)".into());
        }
        let auth = [
            "Permission denied",
            "Too many authentication failures",
            "no matching host key type",
            "Authentication failed",
        ];
        if auth.iter().any(|a| message.contains(a)) {
            return Some(format!(
                " (login refused: check ssh.user = '{}' (the image's login user: ubuntu, ec2-user, admin, …) and ssh.key_file = {} (the key of the instances' key pair))",
                self.ssh.user(),
                self.ssh
                    .key_file
                    .as_ref()
                    .map_or_else(|| "(none: ssh's default keys)".to_owned(), |k| format!("'{}'", k.display()))
            ));
        }
        None
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
                    // Refusals will not get better by waiting: only a host that is not
                    // up yet (refused, unreachable, timed out) is tried again.
                    let hint = self.refusal_hint(&message);
                    let fatal = hint.is_some();
                    if fatal || tokio::time::Instant::now() + RETRY_PAUSE > deadline {
                        let hint = hint.unwrap_or_default();
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

/// Copies the file at `path` gzip-compressed (fast level) into a temporary file:
/// (plain size, compressed size, the temporary file).
fn gzip_copy(path: &Path) -> std::io::Result<(u64, u64, tempfile::TempPath)> {
    let mut input = std::fs::File::open(path)?;
    let plain = input.metadata()?.len();
    let out = tempfile::Builder::new()
        .prefix("camut-upload-")
        .suffix(".gz")
        .tempfile()?;
    let (file, temp) = out.into_parts();
    let mut encoder =
        flate2::write::GzEncoder::new(std::io::BufWriter::new(file), flate2::Compression::fast());
    std::io::copy(&mut input, &mut encoder)?;
    let mut writer = encoder.finish()?;
    std::io::Write::flush(&mut writer)?;
    let packed = std::fs::metadata(&temp)?.len();
    Ok((plain, packed, temp))
}

/// How long (in tenths of a second) the deploy watches a start command for a quick
/// failure before leaving it running on its own.
const START_WATCH_TENTHS: u32 = 30;

/// The shell lines that run `command` detached from the ssh session (stdin from
/// /dev/null, stdout and stderr to a log file of its own, in the background), so that
/// a command that keeps its output attached cannot hang the deploy; then watch it for
/// `tenths` tenths of a second: when it fails in that time, the script fails with its
/// exit code and the end of its output.
fn detached(command: &str, id: &str, tenths: u32) -> String {
    let inner = format!(
        "{command}
echo $? > \"$0\""
    );
    let base = format!(
        "${{TMPDIR:-/tmp}}/camut-start-{}",
        id.replace(['/', '\'', '"', '$', '`', '\\'], "_")
    );
    format!(
        "log=\"{base}.log\"; st=\"{base}.status\"; rm -f \"$st\"\n\
         nohup sh -c {inner} \"$st\" < /dev/null > \"$log\" 2>&1 &\n\
         i=0; while [ ! -s \"$st\" ] && [ $i -lt {tenths} ]; do sleep 0.1; i=$((i+1)); done\n\
         if [ -s \"$st\" ] && [ \"$(cat \"$st\")\" != 0 ]; then\n  \
         echo \"start command exited with $(cat \"$st\"): $(tail -c 2000 \"$log\")\" >&2; exit 3\nfi\n",
        inner = shell_quote(&inner),
    )
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
    // The script's own exit code is reported in its stderr and the command exits with 3:
    // ssh gives codes such as 127 (a missing program) meanings of its own.
    let wrapped = format!(
        "sh -c {} ; rc=$?; if [ $rc -ne 0 ]; then echo \"(exit code $rc)\" >&2; exit 3; fi",
        shell_quote(script)
    );
    let out = session
        .command("sh")
        .arg("-c")
        .arg(&wrapped)
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
                "remote command failed: {}",
                String::from_utf8_lossy(&out.stderr)
                    .trim()
                    .replace('\n', " ")
            ),
        });
    }
    Ok(out.stdout)
}

/// An error and its causes (ssh's own words are in the cause), joined by `: `.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
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

    /// Runs a script with the local `sh`, as the host would.
    fn sh(script: &str) -> (i32, String, std::time::Duration) {
        let started = std::time::Instant::now();
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(script)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stderr).into_owned(),
            started.elapsed(),
        )
    }

    #[test]
    fn a_start_command_runs_detached_and_its_quick_failure_is_reported() {
        let id = format!("unit-{}", std::process::id());
        // Fails at once: the exit code and the shell's own words come back.
        let (code, err, _) = sh(&detached("no-such-program-xyz --flag", &id, 30));
        assert_eq!(code, 3, "{err}");
        assert!(err.contains("exited with 127"), "{err}");
        assert!(err.contains("not found"), "{err}");
        // Keeps stdout attached and never ends: the script returns after its watch
        // (3 s), not when the command ends.
        let (code, err, took) = sh(&detached("echo up; sleep 59", &id, 30));
        assert_eq!(code, 0, "{err}");
        assert!(took < std::time::Duration::from_secs(20), "{took:?}");
        // Succeeds at once: no wait at all beyond the command.
        let (code, err, _) = sh(&detached("true", &id, 30));
        assert_eq!(code, 0, "{err}");
        let _ = std::process::Command::new("pkill")
            .args(["-f", "sleep 59"])
            .status();
    }

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
        let s = c.script(None, &drone);
        assert!(!s.contains("cat > '/usr/local/bin/camut'.new"));
        assert!(s.contains("CAMUT_TOKEN="));
        assert!(!s.contains("CAMUT_CA="), "no CA: the system's roots");
        let with_ca = DroneSettings {
            ca_pem: "-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n",
            ..drone
        };
        let s = c.script(None, &with_ca);
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
        // The start command runs last, detached, its placeholders replaced.
        let start = s.rfind("nohup sh -c").expect("detached start");
        assert!(
            s[start..].contains(r"start '\''/usr/local/bin/camut'\''"),
            "{s}"
        );
        let s = c.script(Some(false), &drone);
        assert!(s.contains("mv -f") && s.contains("&& cat > "));
        let s = c.script(Some(true), &drone);
        assert!(s.contains("gzip -dc > "), "{s}");
    }
}
