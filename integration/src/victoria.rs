//! A real VictoriaMetrics (Debian's `victoria-metrics`) with its OpenTSDB listeners, on
//! free loopback ports, killed on drop.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use crate::cloud::free_port;
use crate::{http_request, wait_for};

/// One exported series: its labels (`__name__` is the metric) and its samples.
#[derive(Debug, Clone)]
pub struct Series {
    /// Labels, with the metric name under `__name__`.
    pub labels: serde_json::Map<String, serde_json::Value>,
    /// Sample values.
    pub values: Vec<f64>,
    /// Sample timestamps, ms.
    pub timestamps: Vec<u64>,
}

impl Series {
    /// A label's value.
    pub fn label(&self, k: &str) -> Option<&str> {
        self.labels.get(k).and_then(|v| v.as_str())
    }
}

/// A `victoria-metrics` process.
pub struct Victoria {
    child: Option<Child>,
    dir: PathBuf,
    /// Telnet `put` listener, `127.0.0.1:PORT`.
    pub telnet: String,
    /// HTTP `/api/put` listener.
    pub http_put: String,
    /// Query API.
    pub http: String,
    dedup: bool,
}

impl Victoria {
    /// Starts one in a fresh data dir named after `name`. It keeps every sample, also
    /// several of one series with the same timestamp (second-precision telnet points).
    pub fn start(name: &str) -> Victoria {
        Self::start_with(name, false)
    }

    /// Like [`Victoria::start`], but samples with the same series and millisecond are
    /// kept once (`-dedup.minScrapeInterval=1ms`), so that an HTTP batch sent again
    /// after a lost answer counts once.
    pub fn start_dedup(name: &str) -> Victoria {
        Self::start_with(name, true)
    }

    fn start_with(name: &str, dedup: bool) -> Victoria {
        let dir = std::env::temp_dir().join(format!("camut-vm-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut vm = Victoria {
            child: None,
            dir,
            telnet: format!("127.0.0.1:{}", free_port()),
            http_put: format!("127.0.0.1:{}", free_port()),
            http: format!("127.0.0.1:{}", free_port()),
            dedup,
        };
        vm.resume();
        vm
    }

    /// Starts the process again (same ports and data) after [`Victoria::stop`].
    pub fn resume(&mut self) {
        assert!(self.child.is_none(), "already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("vm.log"))
            .unwrap();
        let mut cmd = Command::new("victoria-metrics");
        if self.dedup {
            cmd.arg("-dedup.minScrapeInterval=1ms");
        }
        let child = cmd
            .arg(format!("-opentsdbListenAddr={}", self.telnet))
            .arg(format!("-opentsdbHTTPListenAddr={}", self.http_put))
            .arg(format!("-httpListenAddr={}", self.http))
            .arg(format!(
                "-storageDataPath={}",
                self.dir.join("data").display()
            ))
            .arg("-retentionPeriod=100y")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start victoria-metrics: {e} (scripts/test.sh installs it)")
            });
        self.child = Some(child);
        let up = wait_for(20, || {
            std::net::TcpStream::connect(&self.http).is_ok()
                && std::net::TcpStream::connect(&self.telnet).is_ok()
                && std::net::TcpStream::connect(&self.http_put).is_ok()
        });
        assert!(up, "victoria-metrics did not start: {}", self.log());
    }

    /// Stops the process gracefully (SIGTERM) and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: kill(2) on a child we own and have not waited for.
            unsafe {
                libc::kill(c.id() as libc::pid_t, libc::SIGTERM);
            }
            let _ = c.wait();
        }
    }

    /// Its log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("vm.log")).unwrap_or_default()
    }

    /// Every sample of the series matching `selector` (e.g. `{campaign="x"}`).
    pub fn export(&self, selector: &str) -> Vec<Series> {
        let (status, _) = http_request(&self.http, "POST", "/internal/force_flush", "");
        assert!(status < 300, "force_flush: HTTP {status}");
        let path = format!("/api/v1/export?match[]={}", encode(selector));
        let (status, body) = http_request(&self.http, "GET", &path, "");
        assert_eq!(status, 200, "export {selector}: {body}");
        body.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                let v: serde_json::Value =
                    serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
                Series {
                    labels: v["metric"].as_object().cloned().unwrap_or_default(),
                    values: v["values"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|x| x.as_f64().unwrap())
                        .collect(),
                    timestamps: v["timestamps"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|x| x.as_u64().unwrap())
                        .collect(),
                }
            })
            .collect()
    }

    /// Samples (not series) matching `selector`.
    pub fn count(&self, selector: &str) -> usize {
        self.export(selector).iter().map(|s| s.values.len()).sum()
    }

    /// The series of `selector` once at least `samples` samples are there (ingestion is
    /// asynchronous), or what is there after 15 s.
    pub fn export_at_least(&self, selector: &str, samples: u64) -> Vec<Series> {
        let mut last = Vec::new();
        wait_for(15, || {
            last = self.export(selector);
            last.iter().map(|s| s.values.len() as u64).sum::<u64>() >= samples
        });
        last
    }
}

/// Percent-encodes a query value.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl Drop for Victoria {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
