//! Helpers for Camut's end-to-end tests: the real `camut` binary, a real target process.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

pub mod cloud;
pub mod nginx;
pub mod victoria;

/// Path of the `camut` binary built for this test run.
pub fn camut_bin() -> PathBuf {
    if let Ok(p) = std::env::var("CAMUT_BIN") {
        return PathBuf::from(p);
    }
    // target/<profile>/deps/<test>-hash → target/<profile>/camut
    let mut p = std::env::current_exe().expect("test binary path");
    p.pop();
    if p.ends_with("deps") {
        p.pop();
    }
    p.join("camut")
}

/// A `camut deployer local` process on a free loopback port, its drones' logs in a
/// directory of its own; killed with the drones it started (its process group), and
/// the logs removed, on drop.
pub struct DeployerProcess {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    logs: std::path::PathBuf,
}

impl DeployerProcess {
    /// Starts `camut deployer local --listen 127.0.0.1:0` and reads its address; `name`
    /// names the log directory.
    pub fn start(name: &str) -> DeployerProcess {
        let logs = std::env::temp_dir().join(format!("camut-{name}-{}", std::process::id()));
        let mut cmd = Command::new(camut_bin());
        cmd.args(["deployer", "local", "--listen", "127.0.0.1:0", "--log-dir"])
            .arg(&logs)
            .env_remove("CAMUT_CA")
            .stdout(Stdio::piped());
        // Its drones outlive it by design (instances are not the deployer's process):
        // a group of its own lets the test end them with it.
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let mut child = cmd.spawn().expect("camut deployer starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("piped stdout"))
            .read_line(&mut line)
            .expect("first line");
        let url = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap_or_else(|| panic!("no deployer address in {line:?}"))
            .to_string();
        DeployerProcess { child, url, logs }
    }
}

impl Drop for DeployerProcess {
    fn drop(&mut self) {
        // SAFETY: kill(2) with a negative pid signals the process group made at start.
        unsafe {
            libc::kill(-(self.child.id() as libc::pid_t), libc::SIGKILL);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.logs);
    }
}

/// A `camut target` process on a free loopback port, killed on drop.
pub struct TargetProcess {
    child: Child,
    /// `http://127.0.0.1:PORT` (`https://` with `--tls`).
    pub url: String,
    /// With `--tls`: its self-signed certificate, PEM.
    pub certificate: Option<String>,
}

impl TargetProcess {
    /// Starts `camut target --listen 127.0.0.1:0` and reads its address.
    pub fn start() -> TargetProcess {
        Self::start_with(&[])
    }

    /// Starts `camut target --tls` and reads its address and certificate.
    pub fn start_tls() -> TargetProcess {
        Self::start_with(&["--tls"])
    }

    fn start_with(extra: &[&str]) -> TargetProcess {
        let mut child = Command::new(camut_bin())
            .args(["target", "--listen", "127.0.0.1:0", "--threads", "1"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start {}: {e} (build it with cargo build -p camut-cli)",
                    camut_bin().display()
                )
            });
        let mut line = String::new();
        let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        stdout.read_line(&mut line).expect("first line");
        let url = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_string();
        let certificate = url.starts_with("https://").then(|| {
            let mut line = String::new();
            stdout.read_line(&mut line).expect("certificate line");
            let path = line
                .trim()
                .strip_prefix("certificate ")
                .unwrap_or_else(|| panic!("unexpected second line {line:?}"));
            std::fs::read_to_string(path).expect("the certificate file")
        });
        TargetProcess {
            child,
            url,
            certificate,
        }
    }

    /// `camut run FILE --env TARGET=<this target> EXTRA…`.
    pub fn run(&self, file: &std::path::Path, extra: &[&str]) -> Output {
        let env = format!("TARGET={}", self.url);
        let mut args = vec!["run", file.to_str().expect("utf-8 path"), "--env", &env];
        args.extend_from_slice(extra);
        camut(&args)
    }

    /// Requests the target has served, from `/_camut/stats`.
    pub fn served(&self) -> u64 {
        self.stats()["requests"].as_u64().expect("requests count")
    }

    /// Requests the target has served to the test endpoint `path`.
    pub fn served_path(&self, path: &str) -> u64 {
        self.stats()["paths"][path].as_u64().unwrap_or(0)
    }

    /// `/_camut/stats` as JSON.
    pub fn stats(&self) -> serde_json::Value {
        let (_, body) = match &self.certificate {
            None => http_request(
                self.url.trim_start_matches("http://"),
                "GET",
                "/_camut/stats",
                "",
            ),
            Some(ca) => https_get(self.url.trim_start_matches("https://"), "/_camut/stats", ca),
        };
        serde_json::from_str(body.trim()).expect("stats json")
    }
}

/// One HTTP/1.1 request to `addr` (`host:port`) with `Connection: close`: status and body.
pub fn http_request(addr: &str, method: &str, path: &str, body: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr)
        .unwrap_or_else(|e| panic!("cannot connect to {addr}: {e}"));
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    parse_response(&raw, &format!("{addr}{path}"))
}

/// Status and body (de-chunked) of a raw HTTP/1.1 response.
fn parse_response(raw: &[u8], from: &str) -> (u16, String) {
    let raw = String::from_utf8_lossy(raw).to_string();
    let status = raw
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer from {from}: {raw:?}"));
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    (status, body)
}

/// One HTTPS GET to `addr` (`host:port`), trusting `ca_pem`, with `Connection: close`.
pub fn https_get(addr: &str, path: &str, ca_pem: &str) -> (u16, String) {
    use rustls::pki_types::pem::PemObject;
    use std::io::{Read, Write};
    use std::sync::Arc;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls::pki_types::CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(c.expect("CA PEM")).expect("usable CA");
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("TLS versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h).to_string();
    let name = rustls::pki_types::ServerName::try_from(host).expect("server name");
    let conn = rustls::ClientConnection::new(Arc::new(config), name).expect("TLS client");
    let tcp = std::net::TcpStream::connect(addr)
        .unwrap_or_else(|e| panic!("cannot connect to {addr}: {e}"));
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    write!(
        tls,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    // A server that closes without close_notify ends the read with an error: keep what came.
    let _ = tls.read_to_end(&mut raw);
    parse_response(&raw, &format!("https://{addr}{path}"))
}

fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    while let Some((size, tail)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || tail.len() < n {
            break;
        }
        out.push_str(&tail[..n]);
        rest = tail[n..].trim_start_matches("\r\n");
    }
    out
}

impl Drop for TargetProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `camut ARGS` to completion; prints everything when asked to by a failing assertion.
pub fn camut(args: &[&str]) -> Output {
    let out = Command::new(camut_bin())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", camut_bin().display()));
    out
}

/// stdout and stderr of an output, for assertion messages.
pub fn show(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Writes `source` to a fresh temporary file named `name` and returns its path.
pub fn temp_file(name: &str, source: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "camut-it-{}-{}",
        std::process::id(),
        name.replace('.', "-")
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, source).unwrap();
    p
}

/// The repository root (for examples/).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("integration/ is in the repo")
        .to_path_buf()
}

/// A `camut server` process on a free loopback port with its own data dir. It runs in
/// a process group of its own, which the drones its local deployer starts share: on
/// drop the server and those drones are killed.
pub struct ServerProcess {
    child: Child,
    /// Process groups to kill on drop (one per launch: drones outlive a restart).
    groups: Vec<u32>,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    /// `http://127.0.0.1:PORT`, or `https://…` when it serves TLS.
    pub url: String,
    /// The lines it printed before the listening line (generated token, certificate).
    pub banner: Vec<String>,
    /// Its data dir.
    pub data_dir: PathBuf,
    log_path: PathBuf,
    config: Option<PathBuf>,
    env: Vec<(String, String)>,
    args: Vec<String>,
}

impl ServerProcess {
    /// Starts a server in a fresh data dir named after `name`, with an optional camut.toml body.
    pub fn start(name: &str, config: Option<&str>) -> ServerProcess {
        Self::start_with_env(name, config, &[])
    }

    /// Like [`ServerProcess::start`], with extra environment variables.
    pub fn start_with_env(name: &str, config: Option<&str>, env: &[(&str, &str)]) -> ServerProcess {
        Self::start_with_args(name, config, &[], env)
    }

    /// Like [`ServerProcess::start_with_env`], with extra arguments of `camut server`
    /// (such as `--tls-self-signed`).
    pub fn start_with_args(
        name: &str,
        config: Option<&str>,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> ServerProcess {
        let data_dir =
            std::env::temp_dir().join(format!("camut-server-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&data_dir);
        std::fs::create_dir_all(&data_dir).unwrap();
        let config = config.map(|body| {
            let p = data_dir.join("camut.toml");
            std::fs::write(&p, body).unwrap();
            p
        });
        let env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let args = args.iter().map(|a| a.to_string()).collect();
        let log = data_dir.join("server.log");
        Self::launch(data_dir, log, config, "127.0.0.1:0", env, args)
    }

    /// Starts a server whose store is in `data_dir` (made by the caller, such as a
    /// small tmpfs), with an optional camut.toml body; its log and config are kept
    /// apart, in a fresh directory named after `name`.
    pub fn start_in(name: &str, data_dir: &Path, config: Option<&str>) -> ServerProcess {
        let own = std::env::temp_dir().join(format!("camut-server-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&own);
        std::fs::create_dir_all(&own).unwrap();
        let config = config.map(|body| {
            let p = own.join("camut.toml");
            std::fs::write(&p, body).unwrap();
            p
        });
        let log = own.join("server.log");
        Self::launch(
            data_dir.to_path_buf(),
            log,
            config,
            "127.0.0.1:0",
            Vec::new(),
            Vec::new(),
        )
    }

    fn launch(
        data_dir: PathBuf,
        log_path: PathBuf,
        config: Option<PathBuf>,
        listen: &str,
        env: Vec<(String, String)>,
        args: Vec<String>,
    ) -> ServerProcess {
        let mut cmd = Command::new(camut_bin());
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        cmd.envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        cmd.arg("server");
        if !args.iter().any(|a| a == "--listen") {
            cmd.args(["--listen", listen]);
        }
        cmd.arg("--data-dir").arg(&data_dir).args(&args);
        if let Some(c) = &config {
            cmd.arg("-c").arg(c);
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .unwrap();
        let mut child = cmd
            .env("CAMUT_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", camut_bin().display()));
        // Lines up to the listening line, which the server prints last.
        let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut banner = Vec::new();
        let url = loop {
            let mut line = String::new();
            stdout.read_line(&mut line).expect("a line");
            if let Some(rest) = line.strip_prefix("camut server listening on ") {
                break rest
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_string();
            }
            if line.is_empty() {
                panic!(
                    "the server ended before listening; printed {banner:?}; log: {}",
                    std::fs::read_to_string(&log_path).unwrap_or_default()
                );
            }
            banner.push(line.trim_end().to_string());
        };
        let addr = url
            .split_once("://")
            .map(|(_, a)| a.to_string())
            .unwrap_or_else(|| panic!("unexpected listening URL {url:?}"));
        ServerProcess {
            groups: vec![child.id()],
            child,
            addr,
            url,
            banner,
            data_dir,
            log_path,
            config,
            env,
            args,
        }
    }

    /// Kills the server with SIGKILL (nothing is flushed) and starts it again on the same
    /// address and data dir.
    pub fn kill9_and_restart(&mut self) {
        self.kill9_and_restart_after(std::time::Duration::ZERO);
    }

    /// Kills the server with SIGKILL, waits `down` and starts it again on the same
    /// address and data dir.
    pub fn kill9_and_restart_after(&mut self, down: std::time::Duration) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::thread::sleep(down);
        let mut fresh = Self::launch(
            self.data_dir.clone(),
            self.log_path.clone(),
            self.config.clone(),
            &self.addr.clone(),
            self.env.clone(),
            self.args.clone(),
        );
        // The drones of the first launch go on (they reconnect): killed with the new one.
        fresh.groups.append(&mut self.groups);
        // The old value's drop kills a process that is already gone.
        drop(std::mem::replace(self, fresh));
    }

    /// The API token the server generated and printed (`API token: …`).
    pub fn generated_token(&self) -> String {
        self.banner
            .iter()
            .find_map(|l| l.strip_prefix("API token: "))
            .and_then(|l| l.split_whitespace().next())
            .unwrap_or_else(|| panic!("no generated token in {:?}", self.banner))
            .to_string()
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// `camut -s URL ARGS…`.
    pub fn camut(&self, args: &[&str]) -> Output {
        let mut all = vec!["-s", self.url.as_str()];
        all.extend_from_slice(args);
        camut(&all)
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        for g in &self.groups {
            // SAFETY: kill(2) with a negative pid signals the process group we created.
            unsafe {
                libc::kill(-(*g as libc::pid_t), libc::SIGKILL);
            }
        }
    }
}

/// PIDs of processes whose command line contains every one of `needles`.
pub fn pids_with(needles: &[&str]) -> Vec<u32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmd) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if needles.iter().all(|n| cmd.contains(n)) {
            out.push(pid);
        }
    }
    out
}

/// The NUL-separated strings of a process's `/proc` file (`cmdline`: its arguments,
/// `environ`: its `KEY=value` environment).
pub fn proc_strings(pid: u32, file: &str) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/{file}"))
        .unwrap_or_else(|e| panic!("/proc/{pid}/{file}: {e}"))
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect()
}

/// Polls `f` every 50 ms until it is true or `secs` pass; says whether it became true.
pub fn wait_for(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while std::time::Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::park_timeout(std::time::Duration::from_millis(50));
    }
    f()
}

/// A campaign file for the control-plane tests, aimed at `target`.
pub fn control_campaign(
    id: &str,
    drones: u32,
    users: u32,
    iterations: u64,
    extra: &str,
    target: &str,
) -> String {
    format!(
        "exports.campaign = {{ id: '{id}', drones: {drones}, users: {users}, iterations: {iterations}, deploy: {{ deployer: 'local' }}{extra} }};\n\
         exports.test = function (done) {{\n\
           camut.http({{ url: '{target}/', operation: 'home' }}, function (err) {{ done(); }});\n\
         }};\n"
    )
}

/// The runtime a test drives the async client on: one thread, timers and I/O.
pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime")
}

/// A campaign's results as the JSON the tests assert on: the typed summary's fields
/// (as `camut run --summary-json` writes them) plus `drones`, one row per drone.
pub fn summary_value(r: &camut::v1::CampaignResults) -> serde_json::Value {
    let mut v = serde_json::to_value(r.run_summary()).expect("a summary serializes");
    v["drones"] = r
        .drones
        .iter()
        .map(|d| {
            serde_json::json!({
                "id": d.id, "index": d.index, "state": d.state().label(),
                "requests": d.requests, "errors": d.errors, "iterations": d.iterations,
                "lost": (!d.lost.is_empty()).then_some(&d.lost),
            })
        })
        .collect();
    v
}

/// What `junitparser` (a JUnit XML parser from PyPI) reads in a JUnit file: its totals
/// and, per case, (name, passed, failure message). Panics when it refuses the file.
pub fn junit_cases(path: &Path) -> (serde_json::Value, Vec<(String, bool, String)>) {
    let script = r#"
import json, sys
from junitparser import JUnitXml, Failure
xml = JUnitXml.fromfile(sys.argv[1])
suites = list(xml) if hasattr(xml, '__iter__') else [xml]
cases = []
for suite in suites:
    for case in suite:
        failures = [r for r in case.result if isinstance(r, Failure)]
        cases.append([case.name, case.is_passed, failures[0].message if failures else ''])
print(json.dumps({'tests': xml.tests, 'failures': xml.failures, 'errors': xml.errors,
                  'suites': [s.name for s in suites], 'cases': cases}))
"#;
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(path)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "junitparser refused {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let cases = v["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c[0].as_str().unwrap().to_string(),
                c[1].as_bool().unwrap(),
                c[2].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    (v, cases)
}
