//! Helpers for Camut's end-to-end tests: the real `camut` binary, a real target process.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};

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

/// A `camut target` process on a free loopback port, killed on drop.
pub struct TargetProcess {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
}

impl TargetProcess {
    /// Starts `camut target --listen 127.0.0.1:0` and reads its address.
    pub fn start() -> TargetProcess {
        let mut child = Command::new(camut_bin())
            .args(["target", "--listen", "127.0.0.1:0", "--threads", "1"])
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
        BufReader::new(child.stdout.take().expect("piped stdout"))
            .read_line(&mut line)
            .expect("first line");
        let url = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_string();
        TargetProcess { child, url }
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
        let addr = self.url.trim_start_matches("http://");
        let mut s = std::net::TcpStream::connect(addr).expect("connect to target");
        use std::io::{Read, Write};
        write!(
            s,
            "GET /_camut/stats HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut body = String::new();
        s.read_to_string(&mut body).unwrap();
        let json = &body[body.find('{').expect("json body")..];
        let v: serde_json::Value = serde_json::from_str(json.trim()).expect("stats json");
        v["requests"].as_u64().expect("requests count")
    }
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
