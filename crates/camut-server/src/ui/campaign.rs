//! One campaign: its state and actions, live charts, summary, drones, jobs, options,
//! update and delete.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::Form;
use camut::v1::{self, campaigns_server::Campaigns, DroneStatus};

use super::campaigns::SourceForm;
use super::html::{
    badge, esc, failure, notice_html, page, post_button, progress, query, status_code, time,
    Notice, REFRESH_MS,
};
use super::queue::jobs_rows;
use super::{chart, Peer, Ui};
use crate::state::{CampaignState, Command};

/// Drones listed one by one on a campaign page; the rest are counted.
pub(crate) const DRONE_ROWS: usize = 50;

pub(crate) async fn show(State(ui): State<Ui>, Path(id): Path<String>) -> Response {
    campaign_page(&ui, &id, None, None)
}

pub(crate) fn campaign_page(ui: &Ui, id: &str, notice: Notice, source: Option<&str>) -> Response {
    let row = match ui.core.campaign_row(id) {
        Ok(r) => r,
        Err(e) => return failure(ui, StatusCode::NOT_FOUND, &e.to_string()),
    };
    let info = match ui.core.info(&row) {
        Ok(i) => i,
        Err(e) => return failure(ui, StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    };
    let base = &ui.base;
    let q = query(id);
    let mut body = format!("<h1>Campaign <code>{}</code></h1>", esc(id));
    body.push_str(&notice_html(&notice));
    let _ = write!(
        body,
        "<div id=\"live\" data-refresh=\"{base}/campaigns/{q}/live\" data-every=\"{REFRESH_MS}\">{}</div>",
        live_html(ui, id)
    );
    body.push_str("<h2>Options</h2><table class=\"kv\" id=\"options\">");
    let thresholds = if info.thresholds.is_empty() {
        "none".to_string()
    } else {
        info.thresholds
            .iter()
            .map(|t| {
                format!(
                    "<code>{}: {}</code>{}",
                    esc(&t.metric),
                    esc(&t.expr),
                    if t.abort_on_fail {
                        " (abortOnFail)"
                    } else {
                        ""
                    }
                )
            })
            .collect::<Vec<_>>()
            .join("<br>")
    };
    let iterations = if info.iterations_per_drone == 0 {
        "by duration".to_string()
    } else {
        format!("{} per drone", info.iterations_per_drone)
    };
    for (k, v) in [
        ("file", esc(&row.file)),
        (
            "drones",
            format!("{} (at least {})", info.drones, info.min_drones),
        ),
        ("VUs per drone", info.users.to_string()),
        ("iterations", iterations),
        (
            "deployer",
            esc(info.deployer.as_deref().unwrap_or("(server default)")),
        ),
        ("zone", esc(info.zone.as_deref().unwrap_or("(default)"))),
        (
            "instance type",
            esc(info.instance_type.as_deref().unwrap_or("(default)")),
        ),
        (
            "on drone loss",
            if info.abort_on_drone_loss {
                "abort"
            } else {
                "continue"
            }
            .to_string(),
        ),
        ("thresholds", thresholds),
        ("created", time(row.created_ms)),
    ] {
        let _ = write!(body, "<tr><th>{k}</th><td>{v}</td></tr>");
    }
    body.push_str("</table>");
    let _ = write!(
        body,
        "<h2>Update</h2><form method=\"post\" action=\"{base}/campaigns/{q}/update\" id=\"update-form\" class=\"source-form\">\
         <p class=\"muted\">The id in the file names the campaign; the number of drones and the zone cannot change.</p>\
         <input type=\"hidden\" name=\"file\" value=\"{file}\">\
         <textarea name=\"source\" id=\"source\" rows=\"14\" spellcheck=\"false\">{source}</textarea>\
         <p><button id=\"update\">Update</button></p></form>",
        file = esc(&row.file),
        source = esc(source.unwrap_or(&row.source)),
    );
    let _ = write!(
        body,
        "<h2>Delete</h2><p class=\"muted\">A campaign that may hold instances must be killed first.</p>{}",
        post_button(
            &format!("{base}/campaigns/{q}/delete"),
            "Delete campaign",
            "danger",
            Some("Delete this campaign and its results?")
        )
    );
    let status = match &notice {
        Some((false, _)) => StatusCode::CONFLICT,
        _ => StatusCode::OK,
    };
    (status, page(ui, id, "campaigns", &body)).into_response()
}

/// The campaign's HTML report, as a download (`camut results --html` writes the same).
/// `?run=N` names a finished run; without it, the latest.
pub(crate) async fn report(
    State(ui): State<Ui>,
    Path(id): Path<String>,
    Query(q): Query<RunQuery>,
) -> Response {
    let run = q.run.unwrap_or(0);
    let (results, series) = match (ui.core.results(&id, run), ui.core.series(&id, run)) {
        (Ok(r), Ok(s)) => (r, s),
        (Err(e), _) | (_, Err(e)) => {
            let status = tonic::Status::from(e);
            return failure(&ui, status_code(&status), status.message());
        }
    };
    let html = super::report::Report::from_results(&results, series.points())
        .render(crate::store::now_ms());
    let file: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    (
        [
            (
                axum::http::header::CONTENT_TYPE,
                "text/html; charset=utf-8".to_string(),
            ),
            (
                axum::http::header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"camut-{file}.html\""),
            ),
        ],
        html,
    )
        .into_response()
}

pub(crate) async fn live(State(ui): State<Ui>, Path(id): Path<String>) -> Response {
    if ui.core.campaign_row(&id).is_err() {
        return (
            StatusCode::NOT_FOUND,
            Html(format!(
                "<p class=\"notice error\">campaign {} is gone</p>",
                esc(&id)
            )),
        )
            .into_response();
    }
    Html(live_html(&ui, &id)).into_response()
}

/// The parts of a campaign page that change: state, actions, charts, drones, summary, jobs.
pub(crate) fn live_html(ui: &Ui, id: &str) -> String {
    let base = &ui.base;
    let q = query(id);
    let row = match ui.core.campaign_row(id) {
        Ok(r) => r,
        Err(e) => return format!("<p class=\"notice error\">{}</p>", esc(&e.to_string())),
    };
    let c = match ui.core.campaign_view(&row) {
        Ok(c) => c,
        Err(e) => return format!("<p class=\"notice error\">{}</p>", esc(&e.to_string())),
    };
    let mut out = format!(
        "<p class=\"state-line\">State <span id=\"state\" data-state=\"{}\">{}</span> · iterations {}",
        c.state().label(),
        badge(c.state().label()),
        progress(c.iterations_done, c.iterations_planned)
    );
    if !c.error.is_empty() {
        let _ = write!(out, " · <span class=\"error\">{}</span>", esc(&c.error));
    }
    out.push_str("</p><div class=\"actions\" id=\"actions\">");
    for cmd in [
        Command::Spawn,
        Command::Deploy,
        Command::Start,
        Command::Stop,
        Command::Kill,
    ] {
        if cmd.check(id, row.state).is_ok() {
            let confirm = (cmd == Command::Kill).then_some("Free every instance of this campaign?");
            let class = if cmd == Command::Kill {
                "danger"
            } else {
                "primary"
            };
            out.push_str(&post_button(
                &format!("{base}/campaigns/{q}/{}", cmd.name()),
                cmd.name(),
                class,
                confirm,
            ));
        }
    }
    out.push_str("</div>");
    // Live charts while running (and the last run's afterwards).
    let history = ui.core.live_history(id);
    if !history.is_empty() || row.state == CampaignState::Running {
        let _ = write!(
            out,
            "<h2>Live</h2><div class=\"charts\" id=\"charts\" data-points=\"{}\">",
            history.len()
        );
        for (key, _, svg) in chart::run_charts(&history) {
            let _ = write!(
                out,
                "<figure class=\"chart\" id=\"chart-{key}\">{svg}</figure>"
            );
        }
        out.push_str("</div>");
        if let Some(last) = history.last() {
            let s = &last.total;
            let (requests, errors) = ui.core.live_request_totals(id);
            let _ = write!(
                out,
                "<p class=\"summary\" id=\"live-figures\">last second: {} requests/s · p50 {:.1} ms · p90 {:.1} ms · p99 {:.1} ms · {} errors/s · {} active VUs · {requests} requests, {errors} errors so far</p>",
                s.requests, s.p50_ms, s.p90_ms, s.p99_ms, s.errors, last.active_vus
            );
        }
    }
    if matches!(
        row.state,
        CampaignState::Finished | CampaignState::Stopped | CampaignState::Killed
    ) {
        out.push_str(&summary_html(ui, id));
    }
    out.push_str(&drones_html(&c.drone_status));
    out.push_str(&campaign_jobs_html(ui, id));
    out
}

fn summary_html(ui: &Ui, id: &str) -> String {
    let r = match ui.core.results(id, 0) {
        Ok(r) if r.finished => r,
        Ok(_) => return String::new(),
        Err(e) => return format!("<p class=\"error\">{}</p>", esc(&e.to_string())),
    };
    let summary = r
        .summary
        .as_ref()
        .map(camut::summary::from_wire)
        .unwrap_or_default();
    let rt = summary
        .metrics
        .get("http.response_time")
        .cloned()
        .unwrap_or_default();
    let mut out = format!(
        "<section id=\"summary\"><h2>Summary of run {} {}</h2>",
        r.run,
        if r.thresholds_ok {
            "<span class=\"badge s-finished\" id=\"verdict\">thresholds held</span>"
        } else {
            "<span class=\"badge s-failed\" id=\"verdict\">thresholds broken</span>"
        }
    );
    let _ = write!(
        out,
        "<table class=\"kv\"><tr><th>duration</th><td>{:.1} s</td></tr>\
         <tr><th>iterations</th><td>{} completed, {} failed</td></tr>\
         <tr><th>requests</th><td>{} ({:.1}/s), {} errors</td></tr>\
         <tr><th>response time</th><td>p50 {:.1} ms · p90 {:.1} ms · p99 {:.1} ms · max {:.1} ms</td></tr></table>",
        summary.duration_s,
        summary.iterations.completed,
        summary.iterations.failed,
        summary.requests,
        summary.requests_per_s,
        summary.errors,
        rt.p50,
        rt.p90,
        rt.p99,
        rt.max,
    );
    if r.degraded {
        let _ = write!(
            out,
            "<p class=\"error\">degraded: {}</p>",
            esc(&r.lost.join("; "))
        );
    }
    let verdicts: Vec<_> = r
        .thresholds
        .iter()
        .map(camut::summary::verdict_from_wire)
        .collect();
    out.push_str(&super::report::thresholds_table(&verdicts));
    let _ = write!(
        out,
        "<p><a id=\"report-download\" href=\"{}/campaigns/{}/report.html\" download>Download the HTML report</a></p>",
        ui.base,
        query(id)
    );
    if r.runs.len() > 1 {
        out.push_str("<h3>Runs</h3><table id=\"runs\"><tr><th>run</th><th>finished</th><th>requests</th><th>thresholds</th><th></th></tr>");
        for run in r.runs.iter().rev() {
            let _ = write!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td><a href=\"{}/campaigns/{}/report.html?run={}\" download>report</a></td></tr>",
                run.run,
                time(run.finished_ms),
                run.requests,
                if run.thresholds_ok { "held" } else { "broken" },
                ui.base,
                query(id),
                run.run
            );
        }
        out.push_str("</table>");
    }
    out.push_str("</section>");
    out
}

/// Which run a report is of.
#[derive(serde::Deserialize)]
pub(crate) struct RunQuery {
    run: Option<u32>,
}

/// Counts by state, then the drones with problems first, at most [`DRONE_ROWS`] rows.
fn drones_html(drones: &[DroneStatus]) -> String {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for d in drones {
        *counts.entry(d.state().label()).or_default() += 1;
    }
    let mut out = format!(
        "<h2>Drones</h2><p class=\"summary\" id=\"drone-counts\">{} drones",
        drones.len()
    );
    for (state, n) in &counts {
        let _ = write!(out, " · {} {n}", badge(state));
    }
    let (iterations, errors) = drones
        .iter()
        .fold((0, 0), |a, d| (a.0 + d.iterations_done, a.1 + d.errors));
    let _ = write!(out, " · {iterations} iterations, {errors} errors</p>");
    if drones.is_empty() {
        return out;
    }
    let mut order: Vec<&DroneStatus> = drones.iter().collect();
    order.sort_by_key(|d| {
        (
            d.error.is_empty() && d.state() != v1::DroneState::Lost,
            d.errors == 0,
            d.index,
        )
    });
    out.push_str("<table id=\"drones\"><thead><tr><th>#</th><th>Drone</th><th>State</th><th>Iterations</th><th>Errors</th><th>Last seen</th><th>Problem</th></tr></thead><tbody>");
    for d in order.iter().take(DRONE_ROWS) {
        let _ = write!(
            out,
            "<tr><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"error\">{}</td></tr>",
            d.index,
            esc(&d.id),
            badge(d.state().label()),
            d.iterations_done,
            d.errors,
            time(d.last_seen_ms),
            esc(&d.error)
        );
    }
    out.push_str("</tbody></table>");
    if drones.len() > DRONE_ROWS {
        let _ = write!(
            out,
            "<p class=\"muted\">{} more drones not listed (counted above); drones with errors come first.</p>",
            drones.len() - DRONE_ROWS
        );
    }
    out
}

fn campaign_jobs_html(ui: &Ui, id: &str) -> String {
    let jobs = ui.core.store.jobs(id, None, 10).unwrap_or_default();
    let mut out = format!(
        "<h2>Jobs <a class=\"small\" href=\"{}/jobs?campaign={}\">all</a></h2>",
        ui.base,
        query(id)
    );
    out.push_str(&jobs_rows(ui, &jobs, false));
    out
}

/// An action button's post.
pub(crate) async fn act(
    State(ui): State<Ui>,
    peer: Peer,
    Path((id, action)): Path<(String, String)>,
    Form(form): Form<SourceForm>,
) -> Response {
    let r = || ui.request(v1::CampaignRef { id: id.clone() }, peer);
    let result: Result<String, tonic::Status> = match action.as_str() {
        "spawn" => ui
            .api
            .spawn(r())
            .await
            .map(|j| job_started(&j.into_inner())),
        "deploy" => ui
            .api
            .deploy(r())
            .await
            .map(|j| job_started(&j.into_inner())),
        "start" => ui
            .api
            .start(r())
            .await
            .map(|j| job_started(&j.into_inner())),
        "stop" => ui.api.stop(r()).await.map(|j| job_started(&j.into_inner())),
        "kill" => ui.api.kill(r()).await.map(|j| job_started(&j.into_inner())),
        "delete" => {
            return match ui.api.delete_campaign(r()).await {
                Ok(_) => Redirect::to(&format!("{}/campaigns", ui.base)).into_response(),
                Err(s) => campaign_page(&ui, &id, Some((false, s.message().into())), None),
            }
        }
        "update" => {
            let f = form;
            let req = ui.request(
                // The console edits the source; the environment stays as stored.
                v1::UpdateCampaignRequest {
                    file: f.file.clone(),
                    source: f.source.clone(),
                    env: Vec::new(),
                    replace_env: false,
                },
                peer,
            );
            match ui.api.update_campaign(req).await {
                Ok(c) => Ok(format!(
                    "updated: the campaign is {}",
                    c.get_ref().state().label()
                )),
                Err(s) => {
                    return campaign_page(
                        &ui,
                        &id,
                        Some((false, s.message().into())),
                        Some(&f.source),
                    )
                }
            }
        }
        other => {
            return failure(&ui, StatusCode::NOT_FOUND, &format!("no action {other:?}"));
        }
    };
    match result {
        Ok(_) => Redirect::to(&format!("{}/campaigns/{}", ui.base, query(&id))).into_response(),
        Err(s) => {
            let mut res = campaign_page(&ui, &id, Some((false, s.message().into())), None);
            *res.status_mut() = status_code(&s);
            res
        }
    }
}

fn job_started(j: &v1::Job) -> String {
    format!("job {} ({}) is {}", j.id, j.kind, j.state().label())
}
