//! How the manager prints campaigns, jobs, log lines and results, as text and JSON.

use std::fmt::Write as _;
use std::io::Write as _;

use camut::v1;
use camut_engine::stats::Verdict;
use serde_json::{json, Value};

pub use camut_engine::stats::clock::now_ms;

/// How long ago a Unix-ms time was, shortly: `12s ago`, `5m ago`, `3h ago`, `2d ago`.
pub fn ago(ms: i64, now_ms: i64) -> String {
    if ms <= 0 {
        return "-".into();
    }
    let s = ((now_ms - ms).max(0) / 1000) as u64;
    match s {
        0..60 => format!("{s}s ago"),
        60..3600 => format!("{}m ago", s / 60),
        3600..86400 => format!("{}h ago", s / 3600),
        _ => format!("{}d ago", s / 86400),
    }
}

/// `done/total` with the percentage, `done` alone without a total, `-` before any.
pub fn progress(done: u64, total: u64) -> String {
    if total > 0 {
        format!(
            "{done}/{total} ({:.0}%)",
            done as f64 * 100.0 / total as f64
        )
    } else if done > 0 {
        done.to_string()
    } else {
        "-".into()
    }
}

/// Drones in touch over drones asked, e.g. `2/3`.
pub fn drones(c: &v1::Campaign) -> String {
    let live = c
        .drone_status
        .iter()
        .filter(|d| !matches!(d.state().label(), "lost" | "error"))
        .count();
    format!("{live}/{}", c.drones)
}

/// `id (state)`, what `new` and `update` print.
pub fn campaign_line(c: &v1::Campaign) -> String {
    format!(
        "{} ({}): {} drone{}, {} VUs each, deployer {}",
        c.id,
        c.state().label(),
        c.drones,
        if c.drones == 1 { "" } else { "s" },
        c.users,
        if c.deployer.is_empty() {
            "default"
        } else {
            &c.deployer
        }
    )
}

/// Rows under a header, columns padded to their widest cell (the last one is not).
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut l = String::new();
        for (i, cell) in cells.enumerate() {
            if i > 0 {
                l.push_str("  ");
            }
            l.push_str(cell);
            if i + 1 < widths.len() {
                let pad = widths[i].saturating_sub(cell.chars().count());
                l.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(&mut header.iter().copied());
    for row in rows {
        line(&mut row.iter().map(String::as_str));
    }
    out
}

/// The `list` table.
pub fn campaign_table(list: &[v1::Campaign]) -> String {
    if list.is_empty() {
        return "no campaigns\n".into();
    }
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|c| {
            vec![
                c.id.clone(),
                c.state().label().to_string(),
                drones(c),
                progress(c.iterations_done, c.iterations_planned),
            ]
        })
        .collect();
    table(&["ID", "STATE", "DRONES", "PROGRESS"], &rows)
}

/// What `status` prints.
pub fn campaign_status(c: &v1::Campaign, now_ms: i64) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "campaign {} ({})", c.id, c.file);
    let _ = writeln!(o, "  state      {}", c.state().label());
    if !c.error.is_empty() {
        let _ = writeln!(o, "  error      {}", c.error);
    }
    let _ = writeln!(
        o,
        "  drones     {} (asked {}, min {}), {} VUs each",
        drones(c),
        c.drones,
        c.min_drones,
        c.users
    );
    let _ = writeln!(
        o,
        "  deployer   {}{}",
        if c.deployer.is_empty() {
            "default"
        } else {
            &c.deployer
        },
        if c.zone.is_empty() {
            String::new()
        } else {
            format!(", zone {}", c.zone)
        }
    );
    let _ = writeln!(
        o,
        "  progress   {} iterations",
        progress(c.iterations_done, c.iterations_planned)
    );
    let _ = writeln!(
        o,
        "  created    {}, changed {}",
        ago(c.created_ms, now_ms),
        ago(c.updated_ms, now_ms)
    );
    let _ = writeln!(o, "  run        {}", c.run);
    if !c.env.is_empty() {
        let env: Vec<String> = c
            .env
            .iter()
            .map(|e| format!("{}={}", e.key, e.value))
            .collect();
        let _ = writeln!(o, "  env        {}", env.join(" "));
    }
    if !c.instances.is_empty() {
        let _ = writeln!(o, "\n  instances");
        let rows: Vec<Vec<String>> = c
            .instances
            .iter()
            .map(|i| vec![i.id.clone(), i.address.clone(), i.state.clone()])
            .collect();
        for l in table(&["ID", "ADDRESS", "STATE"], &rows).lines() {
            let _ = writeln!(o, "  {l}");
        }
    }
    if !c.drone_status.is_empty() {
        let _ = writeln!(o, "\n  drones");
        let rows: Vec<Vec<String>> = c
            .drone_status
            .iter()
            .map(|d| {
                vec![
                    d.index.to_string(),
                    d.id.clone(),
                    d.state().label().to_string(),
                    d.iterations_done.to_string(),
                    d.errors.to_string(),
                    ago(d.last_seen_ms, now_ms),
                    d.error.clone(),
                ]
            })
            .collect();
        let header = ["#", "ID", "STATE", "ITERATIONS", "ERRORS", "SEEN", "ERROR"];
        for l in table(&header, &rows).lines() {
            let _ = writeln!(o, "  {l}");
        }
    }
    o
}

/// A campaign as JSON (with its source text when asked).
pub fn campaign_json(c: &v1::Campaign, with_source: bool) -> Value {
    let mut v = json!({
        "id": c.id,
        "state": c.state().label(),
        "file": c.file,
        "drones": c.drones,
        "min_drones": c.min_drones,
        "users": c.users,
        "deployer": c.deployer,
        "zone": c.zone,
        "instances": c.instances.iter().map(|i| json!({
            "id": i.id, "address": i.address, "state": i.state,
        })).collect::<Vec<_>>(),
        "drone_status": c.drone_status.iter().map(|d| json!({
            "id": d.id,
            "index": d.index,
            "state": d.state().label(),
            "iterations_done": d.iterations_done,
            "errors": d.errors,
            "last_seen_ms": d.last_seen_ms,
            "error": d.error,
        })).collect::<Vec<_>>(),
        "created_ms": c.created_ms,
        "updated_ms": c.updated_ms,
        "error": c.error,
        "iterations_done": c.iterations_done,
        "iterations_planned": c.iterations_planned,
        "run": c.run,
        "env": c.env.iter().map(|e| json!({
            "key": e.key, "value": e.value, "secret": e.secret,
        })).collect::<Vec<_>>(),
    });
    if with_source {
        v["source"] = Value::String(c.source.clone());
    }
    v
}

/// A job as JSON.
pub fn job_json(j: &v1::Job) -> Value {
    json!({
        "id": j.id,
        "campaign": j.campaign,
        "kind": j.kind,
        "state": j.state().label(),
        "progress_done": j.progress_done,
        "progress_total": j.progress_total,
        "error": j.error,
        "log": j.log,
        "created_ms": j.created_ms,
        "updated_ms": j.updated_ms,
    })
}

/// The `jobs` table.
pub fn job_table(jobs: &[v1::Job], now_ms: i64) -> String {
    if jobs.is_empty() {
        return "no jobs\n".into();
    }
    let rows: Vec<Vec<String>> = jobs
        .iter()
        .map(|j| {
            vec![
                j.id.to_string(),
                j.kind.clone(),
                j.campaign.clone(),
                j.state().label().to_string(),
                steps(j),
                ago(j.created_ms, now_ms),
                j.error.lines().next().unwrap_or_default().to_string(),
            ]
        })
        .collect();
    table(
        &[
            "ID", "KIND", "CAMPAIGN", "STATE", "PROGRESS", "CREATED", "ERROR",
        ],
        &rows,
    )
}

/// `n/m` steps of a job, empty while it has no count.
fn steps(j: &v1::Job) -> String {
    if j.progress_total > 0 {
        format!("{}/{}", j.progress_done, j.progress_total)
    } else {
        String::new()
    }
}

/// The live line of a job: `[kind] state n/m`.
pub fn job_progress(j: &v1::Job) -> String {
    let steps = steps(j);
    if steps.is_empty() {
        format!("[{}] {}", j.kind, j.state().label())
    } else {
        format!("[{}] {} {}", j.kind, j.state().label(), steps)
    }
}

/// The last line of a waited-for job: its progress line and its id and duration.
pub fn job_end_line(j: &v1::Job) -> String {
    let took = if j.updated_ms > 0 && j.created_ms > 0 && j.updated_ms >= j.created_ms {
        format!(", {:.1} s", (j.updated_ms - j.created_ms) as f64 / 1000.0)
    } else {
        String::new()
    };
    format!("{} (job {}{took})", job_progress(j), j.id)
}

/// Why a job did not complete, as the error the command ends with.
pub fn job_failure(j: &v1::Job) -> String {
    if j.error.is_empty() {
        format!(
            "{} job {} of {} {}",
            j.kind,
            j.id,
            j.campaign,
            j.state().label()
        )
    } else {
        format!(
            "{} job {} of {} {}: {}",
            j.kind,
            j.id,
            j.campaign,
            j.state().label(),
            j.error
        )
    }
}

/// The job progress line on stderr, redrawn in place; does nothing off a terminal.
pub struct ProgressLine {
    enabled: bool,
    shown: Option<String>,
}

impl ProgressLine {
    pub fn new(enabled: bool) -> Self {
        ProgressLine {
            enabled,
            shown: None,
        }
    }

    pub fn update(&mut self, j: &v1::Job) {
        if !self.enabled {
            return;
        }
        let line = job_progress(j);
        if self.shown.as_deref() != Some(&line) {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[2K{line}");
            let _ = err.flush();
            self.shown = Some(line);
        }
    }

    pub fn clear(&mut self) {
        if self.shown.take().is_some() {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[2K");
            let _ = err.flush();
        }
    }
}

/// A log line as text: `time level source [campaign] message`.
pub fn log_line(l: &v1::LogLine) -> String {
    let mut s = format!("{} {:<5} {}", clock(l.time_ms), l.level, l.source);
    if !l.campaign.is_empty() {
        let _ = write!(s, " [{}]", l.campaign);
    }
    s.push(' ');
    s.push_str(&l.message);
    s
}

/// A log line as JSON.
pub fn log_json(l: &v1::LogLine) -> Value {
    json!({
        "time_ms": l.time_ms,
        "level": l.level,
        "source": l.source,
        "campaign": l.campaign,
        "message": l.message,
    })
}

pub use camut::clock;

/// What `results` prints: the merged summary (as `camut run` prints its own), the
/// verdicts, lost drones and the overall verdict.
pub fn results_text(r: &v1::CampaignResults) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "{}: {}, run {}{}",
        r.id,
        r.state().label(),
        r.run,
        if r.finished { "" } else { " (in progress)" }
    );
    match &r.summary {
        Some(wire) => {
            let mut summary = camut::summary::from_wire(wire);
            summary.thresholds = r
                .thresholds
                .iter()
                .map(camut::summary::verdict_from_wire)
                .collect::<Vec<Verdict>>();
            o.push_str(&summary.render_text());
        }
        None => {
            let _ = writeln!(o, "  no statistics yet");
        }
    }
    if r.degraded || !r.lost.is_empty() {
        let _ = writeln!(
            o,
            "\n  DEGRADED: drones were lost; these results are partial"
        );
        for l in &r.lost {
            let _ = writeln!(o, "  lost {l}");
        }
    }
    if !r.runs.is_empty() {
        let _ = writeln!(o, "\n  runs (`camut results {} --run N`):", r.id);
        for run in &r.runs {
            let _ = writeln!(
                o,
                "  {} run {:>3}  finished {}  {} requests  thresholds {}",
                if run.run == r.run { "*" } else { " " },
                run.run,
                if run.finished_ms > 0 {
                    clock(run.finished_ms)
                } else {
                    "-".into()
                },
                run.requests,
                if run.thresholds_ok { "ok" } else { "broken" },
            );
        }
    }
    let _ = writeln!(
        o,
        "\n{}",
        match (r.thresholds.is_empty(), r.thresholds_ok) {
            (true, true) => "no thresholds",
            (false, true) => "thresholds ok",
            (_, false) => "THRESHOLDS BROKEN",
        }
    );
    o
}

/// Results as JSON: the summary (the fields of `camut run --summary-json`) with one
/// row per drone.
pub fn results_json(r: &v1::CampaignResults) -> Value {
    let summary = match &r.summary {
        Some(wire) => {
            let mut v =
                serde_json::to_value(camut::summary::from_wire(wire)).unwrap_or(Value::Null);
            v["drones"] = r
                .drones
                .iter()
                .map(|d| {
                    json!({
                        "id": d.id, "index": d.index, "state": d.state().label(),
                        "requests": d.requests, "errors": d.errors,
                        "iterations": d.iterations,
                        "lost": (!d.lost.is_empty()).then_some(&d.lost),
                        "health": d.health.as_ref().map(camut::summary::health_from_wire),
                    })
                })
                .collect();
            v
        }
        None => Value::Null,
    };
    json!({
        "id": r.id,
        "state": r.state().label(),
        "run": r.run,
        "finished": r.finished,
        "runs": r.runs.iter().map(|x| json!({
            "run": x.run, "finished_ms": x.finished_ms, "requests": x.requests,
            "thresholds_ok": x.thresholds_ok,
        })).collect::<Vec<_>>(),
        "thresholds_ok": r.thresholds_ok,
        "thresholds": r.thresholds.iter().map(|t| json!({
            "metric": t.metric, "expr": t.expr, "ok": t.ok, "value": t.value,
        })).collect::<Vec<_>>(),
        "degraded": r.degraded,
        "lost": r.lost,
        "summary": summary,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(state: &str, done: u32, total: u32) -> v1::Job {
        v1::Job {
            id: 7,
            campaign: "shop".into(),
            kind: "deploy".into(),
            state: v1::JobState::from_label(state).map_or(0, |s| s as i32),
            progress_done: done,
            progress_total: total,
            ..Default::default()
        }
    }

    #[test]
    fn job_progress_lines() {
        assert_eq!(job_progress(&job("queued", 0, 0)), "[deploy] queued");
        assert_eq!(job_progress(&job("active", 1, 3)), "[deploy] active 1/3");
        let mut j = job("complete", 3, 3);
        j.created_ms = 1_000;
        j.updated_ms = 3_500;
        assert_eq!(job_end_line(&j), "[deploy] complete 3/3 (job 7, 2.5 s)");
        let mut j = job("failed", 1, 3);
        assert_eq!(job_failure(&j), "deploy job 7 of shop failed");
        j.error = "drone 1: compile error".into();
        assert_eq!(
            job_failure(&j),
            "deploy job 7 of shop failed: drone 1: compile error"
        );
    }

    #[test]
    fn campaign_list_table() {
        let c = |id: &str, state: &str, done, planned| v1::Campaign {
            id: id.into(),
            state: v1::CampaignState::from_label(state).map_or(0, |s| s as i32),
            drones: 2,
            iterations_done: done,
            iterations_planned: planned,
            drone_status: vec![
                v1::DroneStatus {
                    state: v1::DroneState::Running as i32,
                    ..Default::default()
                },
                v1::DroneStatus {
                    state: v1::DroneState::Lost as i32,
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        let t = campaign_table(&[
            c("shop-checkout", "running", 250, 1000),
            c("a", "created", 0, 0),
            c("soak", "running", 42, 0),
        ]);
        assert_eq!(
            t,
            "ID             STATE    DRONES  PROGRESS\n\
             shop-checkout  running  1/2     250/1000 (25%)\n\
             a              created  1/2     -\n\
             soak           running  1/2     42\n"
        );
        assert_eq!(campaign_table(&[]), "no campaigns\n");
    }

    #[test]
    fn times() {
        assert_eq!(clock(0), "1970-01-01 00:00:00.000");
        assert_eq!(clock(1_700_000_000_123), "2023-11-14 22:13:20.123");
        assert_eq!(clock(951_782_400_000), "2000-02-29 00:00:00.000");
        assert_eq!(ago(10_000, 15_500), "5s ago");
        assert_eq!(ago(10_000, 10_000 + 7_200_000), "2h ago");
        assert_eq!(ago(0, 1), "-");
    }

    #[test]
    fn results_use_the_summary_and_the_verdicts() {
        let summary = camut_engine::stats::Summary {
            campaign: "shop".into(),
            vus: 10,
            requests: 100,
            ..Default::default()
        };
        let r = v1::CampaignResults {
            id: "shop".into(),
            state: v1::CampaignState::Finished as i32,
            thresholds_ok: false,
            thresholds: vec![v1::ThresholdVerdict {
                metric: "http.response_time".into(),
                expr: "p99 < 500".into(),
                ok: false,
                value: Some(612.0),
            }],
            summary: Some(camut::summary::to_wire(&summary)),
            degraded: true,
            lost: vec!["drone 1: no heartbeat".into()],
            drones: vec![v1::DroneResult {
                id: "d1".into(),
                requests: 100,
                ..Default::default()
            }],
            run: 2,
            finished: true,
            runs: vec![
                v1::RunInfo {
                    run: 1,
                    finished_ms: 0,
                    requests: 80,
                    thresholds_ok: true,
                },
                v1::RunInfo {
                    run: 2,
                    finished_ms: 0,
                    requests: 100,
                    thresholds_ok: false,
                },
            ],
        };
        let text = results_text(&r);
        assert!(
            text.starts_with("shop: finished, run 2\ncampaign shop: 10 VUs"),
            "{text}"
        );
        assert!(
            text.contains("    run   1  finished -  80 requests  thresholds ok\n  * run   2"),
            "{text}"
        );
        assert!(
            text.contains("✗ http.response_time p99 < 500   (value 612.000)"),
            "{text}"
        );
        assert!(text.contains("lost drone 1: no heartbeat"), "{text}");
        assert!(text.ends_with("THRESHOLDS BROKEN\n"), "{text}");
        let v = results_json(&r);
        assert_eq!(v["summary"]["requests"], 100);
        assert_eq!(v["summary"]["drones"][0]["requests"], 100);
        assert_eq!(v["thresholds"][0]["value"], 612.0);

        let r = v1::CampaignResults {
            id: "x".into(),
            thresholds_ok: true,
            ..Default::default()
        };
        let text = results_text(&r);
        assert!(text.contains("no statistics yet"), "{text}");
        assert!(text.ends_with("no thresholds\n"), "{text}");
        assert_eq!(results_json(&r)["summary"], Value::Null);
    }
}
