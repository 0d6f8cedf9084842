//! The figures of a run, as a markdown table, and the results file.

use std::path::Path;

use anyhow::{Context, Result};

use crate::util::{percentile, Machine};

/// Goal: every drone receives Start within this many ms of the Start call (up to
/// [`SMALL_FLEET`] drones; beyond, 99 % of them).
pub const START_GOAL_MS: f64 = 250.0;
/// Goal: statistics ingestion uses fewer server cores than this, up to
/// [`SMALL_FLEET`] drones.
pub const CPU_GOAL_CORES: f64 = 0.5;
/// Goal beyond [`SMALL_FLEET`] drones (10,000 drone-seconds a second under one core).
pub const LARGE_CPU_GOAL_CORES: f64 = 1.0;
/// Fleets up to this size are held to the stricter goals.
pub const SMALL_FLEET: u32 = 1000;

/// Markers around the generated part of the results file.
pub const BEGIN: &str = "<!-- camut-server-bench:begin -->";
/// End marker.
pub const END: &str = "<!-- camut-server-bench:end -->";

/// What one run measured.
pub struct Figures {
    pub drones: u32,
    pub seconds: u32,
    pub channels: u32,
    pub command: String,
    pub machine: Machine,
    pub date: String,
    /// From spawning the drones process to every drone having answered Ready (drone side).
    pub connect_ms: u64,
    /// From spawning the drones process to the deploy job's end.
    pub deploy_ms: u64,
    /// Server CPU seconds over that time.
    pub deploy_cpu_s: f64,
    /// Duration of the Start call itself.
    pub start_rpc_ms: f64,
    /// Per drone: Start call → Start received, ms, sorted.
    pub start_ms: Vec<f64>,
    /// Drones that received Start after the start time it carries.
    pub start_late: u64,
    /// Ingestion window (first deltas sent → end of the last second, or the last
    /// acknowledgement when later), seconds.
    pub ingest_wall_s: f64,
    /// Server CPU seconds in the window, and of them in the kernel.
    pub ingest_cpu_s: f64,
    pub ingest_sys_s: f64,
    /// CPU seconds of the drones process in the window.
    pub drones_cpu_s: f64,
    /// Deltas sent and acknowledged.
    pub deltas_sent: u64,
    pub deltas_acked: u64,
    /// Stats → Ack latency, µs.
    pub ack_p50_us: u64,
    pub ack_p99_us: u64,
    pub ack_max_us: u64,
    /// Last acknowledgement past the end of the last second, ms.
    pub ack_lag_ms: u64,
    /// Encoded size of one Stats message, bytes (mean over the pool).
    pub delta_bytes: u64,
    /// Server VmHWM at the end of the ingestion and at the end, kB.
    pub hwm_ingest_kb: u64,
    pub hwm_end_kb: u64,
    /// Last Finished sent → start job complete (results written), ms, and CPU seconds.
    pub finalize_ms: u64,
    pub finalize_cpu_s: f64,
    /// Requests and iterations the drones sent, and what the results count.
    pub requests_sent: u64,
    pub requests_merged: u64,
    pub iterations_sent: u64,
    pub iterations_merged: u64,
}

impl Figures {
    fn start_max(&self) -> f64 {
        self.start_ms.last().copied().unwrap_or(f64::INFINITY)
    }

    fn start_pct(&self, q: f64) -> f64 {
        // Nearest rank on µs, the values being sorted.
        let us: Vec<u64> = self.start_ms.iter().map(|v| (v * 1000.0) as u64).collect();
        percentile(&us, q) as f64 / 1000.0
    }

    /// Every drone received Start within the goal.
    pub fn start_goal_met(&self) -> bool {
        self.start_ms.len() == self.drones as usize && self.start_goal_figure() <= START_GOAL_MS
    }

    /// The Start figure held to the goal: the max for a small fleet, else the p99.
    pub fn start_goal_figure(&self) -> f64 {
        if self.drones <= SMALL_FLEET {
            self.start_max()
        } else {
            self.start_pct(0.99)
        }
    }

    /// What the Start goal bounds, in words.
    fn start_goal_words(&self) -> &'static str {
        if self.drones <= SMALL_FLEET {
            "all within 250 ms"
        } else {
            "p99 within 250 ms"
        }
    }

    /// The server-core goal for this fleet.
    pub fn cpu_goal(&self) -> f64 {
        if self.drones <= SMALL_FLEET {
            CPU_GOAL_CORES
        } else {
            LARGE_CPU_GOAL_CORES
        }
    }

    /// Server cores used while ingesting.
    pub fn cores(&self) -> f64 {
        self.ingest_cpu_s / self.ingest_wall_s.max(1e-9)
    }

    /// Drone-seconds of statistics merged per wall second.
    pub fn merged_per_s(&self) -> f64 {
        self.deltas_acked as f64 / self.ingest_wall_s.max(1e-9)
    }

    /// The server kept up: every delta acknowledged, the last within a second of the end
    /// of the last second.
    pub fn kept_up(&self) -> bool {
        self.deltas_acked == self.deltas_sent && self.ack_lag_ms < 1000
    }

    /// Ingestion within the CPU goal, keeping up.
    pub fn cpu_goal_met(&self) -> bool {
        self.kept_up() && self.cores() < self.cpu_goal()
    }

    /// The merged results count exactly what the drones sent.
    pub fn results_match(&self) -> bool {
        self.requests_sent == self.requests_merged && self.iterations_sent == self.iterations_merged
    }
}

fn yes(b: bool) -> &'static str {
    if b {
        "**yes**"
    } else {
        "**NO**"
    }
}

fn mb(kb: u64) -> String {
    format!("{:.1} MB", kb as f64 / 1024.0)
}

fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The generated markdown: machine, command, table and verdicts.
pub fn markdown(f: &Figures) -> String {
    let m = &f.machine;
    let n = f.drones;
    let mut s = String::new();
    s.push_str(&format!("Run of {} — `{}`\n\n", f.date, f.command));
    s.push_str(&format!(
        "Machine: {} CPUs (`nproc`), {}, {:.1} GiB, Linux {}; store on {}. \
         Server and simulated drones share these CPUs (two processes).\n\n",
        m.nproc, m.cpu, m.mem_gib, m.kernel, m.data_fs
    ));
    s.push_str("| figure | value | goal |\n|---|---:|---|\n");
    let mut row = |a: &str, b: String, c: &str| s.push_str(&format!("| {a} | {b} | {c} |\n"));
    row(
        "drones (streams over HTTP/2 connections)",
        format!("{n} over {}", f.channels),
        "",
    );
    row(
        "connect: every drone Hello → Configure → Ready sent",
        format!("{:.2} s", f.connect_ms as f64 / 1000.0),
        "",
    );
    row(
        "deploy job done (server saw every Ready)",
        format!(
            "{:.2} s, server CPU {:.2} s",
            f.deploy_ms as f64 / 1000.0,
            f.deploy_cpu_s
        ),
        "",
    );
    row(
        "Start call (RPC) returned",
        format!("{:.1} ms", f.start_rpc_ms),
        "",
    );
    row(
        "Start call → Start received, first / p50 / p99",
        format!(
            "{:.1} / {:.1} / {:.1} ms",
            f.start_ms.first().copied().unwrap_or(0.0),
            f.start_pct(0.5),
            f.start_pct(0.99)
        ),
        "",
    );
    row(
        "Start call → Start received, max",
        format!("{:.1} ms", f.start_max()),
        "≤ 250 ms",
    );
    row(
        &format!("all {n} received Start, {}", f.start_goal_words()),
        format!(
            "{} ({} of {n} received it)",
            yes(f.start_goal_met()),
            f.start_ms.len()
        ),
        "yes",
    );
    row(
        "received Start after the start time it carries (call + 300 ms)",
        f.start_late.to_string(),
        "0",
    );
    row(
        "ingestion: deltas sent / acknowledged",
        format!(
            "{} / {} ({n} drones × {} s, 1 Stats a second each)",
            thousands(f.deltas_sent),
            thousands(f.deltas_acked),
            f.seconds
        ),
        "",
    );
    row(
        "one Stats message on the wire",
        format!("{} bytes", thousands(f.delta_bytes)),
        "",
    );
    row(
        "ingestion window (first delta → end of the last second, or last Ack if later)",
        format!(
            "{:.2} s (last ack {} ms after the last second)",
            f.ingest_wall_s, f.ack_lag_ms
        ),
        "",
    );
    row(
        "drone-seconds merged per second",
        format!("{:.0}", f.merged_per_s()),
        &format!("{n} (keeps up)"),
    );
    row(
        "Stats → Ack latency p50 / p99 / max",
        format!(
            "{:.1} / {:.1} / {:.1} ms",
            f.ack_p50_us as f64 / 1000.0,
            f.ack_p99_us as f64 / 1000.0,
            f.ack_max_us as f64 / 1000.0
        ),
        "",
    );
    row(
        "server CPU during ingestion",
        format!(
            "{:.2} s ({:.2} s system) in {:.2} s = **{:.2} cores**",
            f.ingest_cpu_s,
            f.ingest_sys_s,
            f.ingest_wall_s,
            f.cores()
        ),
        &format!("< {} core", f.cpu_goal()),
    );
    row(
        "drones process CPU during ingestion (not counted above)",
        format!(
            "{:.2} s = {:.2} cores",
            f.drones_cpu_s,
            f.drones_cpu_s / f.ingest_wall_s.max(1e-9)
        ),
        "",
    );
    row(
        &format!(
            "ingestion of {n} drones under {} core, keeping up",
            f.cpu_goal()
        ),
        yes(f.cpu_goal_met()).to_string(),
        "yes",
    );
    row(
        "server peak RSS (VmHWM) after ingestion / at the end",
        format!("{} / {}", mb(f.hwm_ingest_kb), mb(f.hwm_end_kb)),
        "",
    );
    row(
        "last Finished → start job complete (results merged and stored)",
        format!(
            "{:.2} s, server CPU {:.2} s",
            f.finalize_ms as f64 / 1000.0,
            f.finalize_cpu_s
        ),
        "",
    );
    row(
        "results: requests merged / sent",
        format!(
            "{} / {} {}",
            thousands(f.requests_merged),
            thousands(f.requests_sent),
            if f.requests_merged == f.requests_sent {
                "(equal)"
            } else {
                "(**DIFFER**)"
            }
        ),
        "equal",
    );
    row(
        "results: iterations merged / sent",
        format!(
            "{} / {} {}",
            thousands(f.iterations_merged),
            thousands(f.iterations_sent),
            if f.iterations_merged == f.iterations_sent {
                "(equal)"
            } else {
                "(**DIFFER**)"
            }
        ),
        "equal",
    );
    s.push('\n');
    let mut verdict = |ok: bool, good: String, bad: String| {
        s.push_str(&format!("- {}\n", if ok { good } else { bad }));
    };
    verdict(
        f.start_goal_met(),
        format!(
            "Start fan-out: goal met — all {n} drones had Start, p99 {:.1} ms and max {:.1} ms \
             after the call.",
            f.start_pct(0.99),
            f.start_max()
        ),
        format!(
            "Start fan-out: **goal not met** — {} of {n} drones received Start, the last {:.1} ms \
             after the call, p99 {:.1} ms (goal: {}).",
            f.start_ms.len(),
            f.start_max(),
            f.start_pct(0.99),
            f.start_goal_words()
        ),
    );
    verdict(
        f.cpu_goal_met(),
        format!(
            "Statistics ingestion: goal met — {:.2} cores for {:.0} drone-seconds a second.",
            f.cores(),
            f.merged_per_s()
        ),
        format!(
            "Statistics ingestion: **goal not met** — {:.2} cores for {:.0} drone-seconds a \
             second{} (goal: {n} drones under {} core).",
            f.cores(),
            f.merged_per_s(),
            if f.kept_up() {
                String::new()
            } else {
                format!(
                    ", and the server fell behind: the last acknowledgement came {} ms after the \
                     last second",
                    f.ack_lag_ms
                )
            },
            f.cpu_goal()
        ),
    );
    verdict(
        f.results_match(),
        "Results: the merged summary counts exactly the requests and iterations the drones sent."
            .into(),
        "Results: **the merged summary does not count what the drones sent** (see the table)."
            .into(),
    );
    s
}

/// Writes `generated` between the markers of the results file, or creates the file.
pub fn write_doc(path: &Path, generated: &str) -> Result<()> {
    let block = format!("{BEGIN}\n{generated}{END}\n");
    let text = match std::fs::read_to_string(path) {
        Ok(old) => match (old.find(BEGIN), old.find(END)) {
            (Some(b), Some(e)) if b < e => {
                let after = old[e + END.len()..].trim_start_matches('\n');
                format!(
                    "{}{block}{}{after}",
                    &old[..b],
                    if after.is_empty() { "" } else { "\n" }
                )
            }
            _ => format!("{}\n\n{block}", old.trim_end()),
        },
        Err(_) => format!(
            "# Server performance\n\nMeasured with `camut-server-bench` \
             (`cargo run --release -p camut-server-bench -- --drones 1000 --seconds 10`).\n\n\
             {block}"
        ),
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generated_block_is_replaced_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("doc.md");
        std::fs::write(&p, format!("intro\n\n{BEGIN}\nold\n{END}\n\nnotes\n")).unwrap();
        write_doc(&p, "new\n").unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert_eq!(text, format!("intro\n\n{BEGIN}\nnew\n{END}\n\nnotes\n"));
    }

    #[test]
    fn numbers_get_separators() {
        assert_eq!(thousands(2_000_000), "2,000,000");
        assert_eq!(thousands(999), "999");
    }
}
