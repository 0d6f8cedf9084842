//! The console's pages and the fragments their scripts refresh.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::Form;
use camut::v1::{self, campaigns_server::Campaigns, jobs_server::Jobs, Campaign, DroneStatus};
use serde::Deserialize;

use super::html::{badge, esc, page, pager, post_button, progress, query, time};
use super::{chart, cookie_value, Peer, Ui, COOKIE};
use crate::campaign::Command;
use crate::logs::level_rank;

/// Rows of a list page.
const PER_PAGE: u32 = 50;
/// Drones listed one by one on a campaign page; the rest are counted.
const DRONE_ROWS: usize = 50;
/// Log lines shown.
const LOG_LINES: usize = 500;
/// How often the live parts refresh, ms.
const REFRESH_MS: u32 = 1000;

type Notice = Option<(bool, String)>;

fn notice_html(n: &Notice) -> String {
    match n {
        Some((true, m)) => format!("<div class=\"notice ok\" id=\"notice\">{}</div>", esc(m)),
        Some((false, m)) => format!("<div class=\"notice error\" id=\"error\">{}</div>", esc(m)),
        None => String::new(),
    }
}

/// An error page for a failed read.
fn failure(ui: &Ui, status: StatusCode, message: &str) -> Response {
    let body = notice_html(&Some((false, message.to_string())));
    (status, page(ui, "Error", "", &body)).into_response()
}

fn status_code(s: &tonic::Status) -> StatusCode {
    match s.code() {
        tonic::Code::NotFound => StatusCode::NOT_FOUND,
        tonic::Code::InvalidArgument => StatusCode::BAD_REQUEST,
        tonic::Code::FailedPrecondition | tonic::Code::AlreadyExists => StatusCode::CONFLICT,
        tonic::Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// `?page=N`.
#[derive(Deserialize, Default)]
pub(crate) struct PageQuery {
    page: Option<u32>,
}

fn page_no(p: Option<u32>) -> u32 {
    p.unwrap_or(1).max(1)
}

pub(crate) async fn home(State(ui): State<Ui>) -> Redirect {
    Redirect::to(&format!("{}/campaigns", ui.base))
}

/// Any other path under the console: its root goes to the campaigns, the rest is 404.
pub(crate) async fn not_found(State(ui): State<Ui>, uri: axum::http::Uri) -> Response {
    if uri.path().trim_end_matches('/').is_empty() {
        return Redirect::to(&format!("{}/campaigns", ui.base)).into_response();
    }
    failure(
        &ui,
        StatusCode::NOT_FOUND,
        &format!("no page {} in the console", uri.path()),
    )
}

// ----- campaigns -----

/// The create form's fields.
#[derive(Deserialize)]
pub(crate) struct SourceForm {
    #[serde(default)]
    file: String,
    #[serde(default)]
    source: String,
}

pub(crate) async fn campaigns(State(ui): State<Ui>, Query(q): Query<PageQuery>) -> Response {
    campaigns_page(&ui, page_no(q.page), None, None)
}

fn campaigns_page(ui: &Ui, page_no: u32, notice: Notice, form: Option<&SourceForm>) -> Response {
    let core = &ui.core;
    let (states, rows) = match (
        core.store.count_by_state("campaigns"),
        core.store
            .campaigns_page(PER_PAGE, (page_no - 1) * PER_PAGE),
    ) {
        (Ok(s), Ok(r)) => (s, r),
        (Err(e), _) | (_, Err(e)) => {
            return failure(ui, StatusCode::INTERNAL_SERVER_ERROR, &e.to_string())
        }
    };
    let total: u64 = states.iter().map(|s| s.1).sum();
    let base = &ui.base;
    let mut body = String::from("<h1>Campaigns</h1>");
    body.push_str(&notice_html(&notice));
    let _ = write!(
        body,
        "<p class=\"summary\" id=\"campaign-counts\">{total} campaigns"
    );
    for (state, n) in &states {
        let _ = write!(body, " · {} {n}", badge(state));
    }
    body.push_str("</p>");
    body.push_str("<table id=\"campaigns\"><thead><tr><th>Campaign</th><th>State</th><th>Drones</th><th>VUs per drone</th><th>Deployer</th><th>Progress (iterations)</th><th>Updated</th></tr></thead><tbody>");
    for row in &rows {
        let c = match core.campaign_view(row) {
            Ok(c) => c,
            Err(e) => {
                let _ = write!(
                    body,
                    "<tr><td>{}</td><td colspan=\"6\" class=\"error\">{}</td></tr>",
                    esc(&row.id),
                    esc(&e.to_string())
                );
                continue;
            }
        };
        let _ = write!(
            body,
            "<tr data-campaign=\"{id}\"><td><a href=\"{base}/campaigns/{q}\">{id}</a></td><td>{state}</td><td>{drones}</td><td>{users}</td><td>{deployer}</td><td>{progress}</td><td>{updated}</td></tr>",
            id = esc(&c.id),
            q = query(&c.id),
            state = badge(&c.state),
            drones = drone_count(&c),
            users = c.users,
            deployer = esc(&c.deployer),
            progress = progress(c.iterations_done, c.iterations_planned),
            updated = time(c.updated_ms),
        );
    }
    if rows.is_empty() {
        body.push_str(
            "<tr><td colspan=\"7\" class=\"muted\">No campaign yet: create one below.</td></tr>",
        );
    }
    body.push_str("</tbody></table>");
    body.push_str(&pager(
        &format!("{base}/campaigns"),
        page_no,
        PER_PAGE,
        total,
    ));
    let (file, source) = form.map_or(("campaign.js", ""), |f| {
        (f.file.as_str(), f.source.as_str())
    });
    let _ = write!(
        body,
        "<h2>New campaign</h2>\
         <form method=\"post\" action=\"{base}/campaigns\" id=\"create-form\" class=\"source-form\">\
         <p><label>Upload a campaign file <input type=\"file\" id=\"upload\" accept=\".js,.mjs,text/javascript\"></label> \
         or paste it below.</p>\
         <input type=\"hidden\" name=\"file\" id=\"file-name\" value=\"{file}\">\
         <textarea name=\"source\" id=\"source\" rows=\"14\" spellcheck=\"false\" placeholder=\"exports.campaign = {{ id: 'my-campaign', drones: 1, users: 10, iterations: 100 }};&#10;exports.test = function (done) {{ camut.http({{ url: 'http://127.0.0.1:8080/' }}, function () {{ done(); }}); }};\">{source}</textarea>\
         <p><button id=\"create\" class=\"primary\">Create</button></p></form>",
        file = esc(file),
        source = esc(source),
    );
    let status = match &notice {
        Some((false, _)) => StatusCode::BAD_REQUEST,
        _ => StatusCode::OK,
    };
    (status, page(ui, "Campaigns", "campaigns", &body)).into_response()
}

fn drone_count(c: &Campaign) -> String {
    if c.drone_status.is_empty() {
        return format!("{} asked", c.drones);
    }
    let up = c
        .drone_status
        .iter()
        .filter(|d| {
            matches!(
                d.state.as_str(),
                "ready" | "running" | "finished" | "connected"
            )
        })
        .count();
    format!("{up}/{} up ({} asked)", c.drone_status.len(), c.drones)
}

pub(crate) async fn create(
    State(ui): State<Ui>,
    peer: Peer,
    Form(f): Form<SourceForm>,
) -> Response {
    let file = if f.file.trim().is_empty() {
        "campaign.js".to_string()
    } else {
        f.file.clone()
    };
    let req = ui.request(
        v1::CreateCampaignRequest {
            file,
            source: f.source.clone(),
        },
        peer,
    );
    match ui.api.create_campaign(req).await {
        Ok(c) => Redirect::to(&format!("{}/campaigns/{}", ui.base, query(&c.get_ref().id)))
            .into_response(),
        Err(s) => campaigns_page(&ui, 1, Some((false, s.message().to_string())), Some(&f)),
    }
}

pub(crate) async fn campaign(State(ui): State<Ui>, Path(id): Path<String>) -> Response {
    campaign_page(&ui, &id, None, None)
}

fn campaign_page(ui: &Ui, id: &str, notice: Notice, source: Option<&str>) -> Response {
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

pub(crate) async fn campaign_live(State(ui): State<Ui>, Path(id): Path<String>) -> Response {
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
fn live_html(ui: &Ui, id: &str) -> String {
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
        esc(&c.state),
        badge(&c.state),
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
        if cmd.check(id, &c.state).is_ok() {
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
    if !history.is_empty() || c.state == "running" {
        let _ = write!(
            out,
            "<h2>Live</h2><div class=\"charts\" id=\"charts\" data-points=\"{}\">",
            history.len()
        );
        for (key, svg) in chart::live_charts(&history) {
            let _ = write!(
                out,
                "<figure class=\"chart\" id=\"chart-{key}\">{svg}</figure>"
            );
        }
        out.push_str("</div>");
        if let Some(last) = history.last() {
            let s = &last.stats;
            let _ = write!(
                out,
                "<p class=\"summary\" id=\"live-figures\">last second: {:.0} requests/s · p50 {:.1} ms · p90 {:.1} ms · p99 {:.1} ms · {:.0} errors/s · {} active VUs · {} requests, {} errors so far</p>",
                s.requests_per_s, s.p50_ms, s.p90_ms, s.p99_ms, s.errors_per_s, last.active_vus, s.requests, s.errors
            );
        }
    }
    if matches!(c.state.as_str(), "finished" | "stopped" | "killed") {
        out.push_str(&summary_html(ui, id));
    }
    out.push_str(&drones_html(&c.drone_status));
    out.push_str(&campaign_jobs_html(ui, id));
    out
}

fn summary_html(ui: &Ui, id: &str) -> String {
    let Ok(Some(_)) = ui.core.store.results(id) else {
        return String::new();
    };
    let r = match ui.core.results(id) {
        Ok(r) => r,
        Err(e) => return format!("<p class=\"error\">{}</p>", esc(&e.to_string())),
    };
    let v: serde_json::Value = serde_json::from_str(&r.summary_json).unwrap_or_default();
    let rt = &v["metrics"]["http.response_time"];
    let f = |x: &serde_json::Value| x.as_f64().unwrap_or(0.0);
    let mut out = format!(
        "<section id=\"summary\"><h2>Summary {}</h2>",
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
        f(&v["duration_s"]),
        v["iterations"]["completed"].as_u64().unwrap_or(0),
        v["iterations"]["failed"].as_u64().unwrap_or(0),
        v["requests"].as_u64().unwrap_or(0),
        f(&v["requests_per_s"]),
        v["errors"].as_u64().unwrap_or(0),
        f(&rt["p50"]),
        f(&rt["p90"]),
        f(&rt["p99"]),
        f(&rt["max"]),
    );
    if r.degraded {
        let _ = write!(
            out,
            "<p class=\"error\">degraded: {}</p>",
            esc(&r.lost.join("; "))
        );
    }
    out.push_str("<table id=\"thresholds\"><thead><tr><th>Metric</th><th>Threshold</th><th>Value</th><th>Verdict</th></tr></thead><tbody>");
    for t in &r.thresholds {
        let _ = write!(
            out,
            "<tr><td><code>{}</code></td><td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
            esc(&t.metric),
            esc(&t.expr),
            t.value.map_or("—".to_string(), |v| format!("{v:.3}")),
            if t.ok {
                "<span class=\"badge s-finished\">held</span>"
            } else {
                "<span class=\"badge s-failed\">broken</span>"
            }
        );
    }
    if r.thresholds.is_empty() {
        out.push_str("<tr><td colspan=\"4\" class=\"muted\">no thresholds</td></tr>");
    }
    out.push_str("</tbody></table></section>");
    out
}

/// Counts by state, then the drones with problems first, at most [`DRONE_ROWS`] rows.
fn drones_html(drones: &[DroneStatus]) -> String {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for d in drones {
        *counts.entry(d.state.as_str()).or_default() += 1;
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
            d.error.is_empty() && d.state != "lost",
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
            badge(&d.state),
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
    let jobs = ui.core.store.jobs(id, "", 10).unwrap_or_default();
    let mut out = format!(
        "<h2>Jobs <a class=\"small\" href=\"{}/jobs?campaign={}\">all</a></h2>",
        ui.base,
        query(id)
    );
    out.push_str(&jobs_rows(ui, &jobs, false));
    out
}

/// An action button's post.
pub(crate) async fn campaign_action(
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
                v1::UpdateCampaignRequest {
                    file: f.file.clone(),
                    source: f.source.clone(),
                },
                peer,
            );
            match ui.api.update_campaign(req).await {
                Ok(c) => Ok(format!("updated: the campaign is {}", c.get_ref().state)),
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
    format!("job {} ({}) is {}", j.id, j.kind, j.state)
}

// ----- jobs -----

/// Filters of the job queue.
#[derive(Deserialize, Default)]
pub(crate) struct JobsQuery {
    #[serde(default)]
    state: String,
    #[serde(default)]
    campaign: String,
    page: Option<u32>,
}

const JOB_STATES: [&str; 5] = ["queued", "active", "complete", "failed", "cancelled"];

pub(crate) async fn jobs(State(ui): State<Ui>, Query(q): Query<JobsQuery>) -> Response {
    jobs_page(&ui, &q, None)
}

fn jobs_filter_query(q: &JobsQuery) -> String {
    format!("state={}&campaign={}", query(&q.state), query(&q.campaign))
}

fn jobs_page(ui: &Ui, q: &JobsQuery, notice: Notice) -> Response {
    let base = &ui.base;
    let counts: BTreeMap<String, u64> = ui
        .core
        .store
        .count_by_state("jobs")
        .unwrap_or_default()
        .into_iter()
        .collect();
    let total: u64 = counts.values().sum();
    let mut body = String::from("<h1>Job queue</h1>");
    body.push_str(&notice_html(&notice));
    let campaign_q = if q.campaign.is_empty() {
        String::new()
    } else {
        format!("&campaign={}", query(&q.campaign))
    };
    let _ = write!(body, "<p class=\"tabs\" id=\"job-tabs\"><a href=\"{base}/jobs?state={campaign_q}\"{}>all {total}</a>", if q.state.is_empty() { " class=\"active\"" } else { "" });
    for s in JOB_STATES {
        let _ = write!(
            body,
            " <a href=\"{base}/jobs?state={s}{campaign_q}\"{}>{s} {}</a>",
            if q.state == s {
                " class=\"active\""
            } else {
                ""
            },
            counts.get(s).copied().unwrap_or(0)
        );
    }
    body.push_str("</p>");
    if !q.campaign.is_empty() {
        let _ = write!(
            body,
            "<p>Campaign <code>{}</code> · <a href=\"{base}/jobs?state={}\">every campaign</a></p>",
            esc(&q.campaign),
            query(&q.state)
        );
    }
    let _ = write!(
        body,
        "<div id=\"jobs\" data-refresh=\"{base}/jobs/table?{}&page={}\" data-every=\"{REFRESH_MS}\">{}</div>",
        jobs_filter_query(q),
        page_no(q.page),
        jobs_table_html(ui, q)
    );
    let status = match &notice {
        Some((false, _)) => StatusCode::CONFLICT,
        _ => StatusCode::OK,
    };
    (status, page(ui, "Jobs", "jobs", &body)).into_response()
}

pub(crate) async fn jobs_table(State(ui): State<Ui>, Query(q): Query<JobsQuery>) -> Html<String> {
    Html(jobs_table_html(&ui, &q))
}

fn jobs_table_html(ui: &Ui, q: &JobsQuery) -> String {
    let page_no = page_no(q.page);
    let jobs = ui
        .core
        .store
        .jobs_page(&q.campaign, &q.state, PER_PAGE, (page_no - 1) * PER_PAGE)
        .unwrap_or_default();
    let total = if q.campaign.is_empty() {
        let counts = ui.core.store.count_by_state("jobs").unwrap_or_default();
        counts
            .iter()
            .filter(|(s, _)| q.state.is_empty() || *s == q.state)
            .map(|c| c.1)
            .sum()
    } else {
        (page_no as u64 - 1) * PER_PAGE as u64
            + jobs.len() as u64
            + u64::from(jobs.len() == PER_PAGE as usize)
    };
    let mut out = jobs_rows(ui, &jobs, true);
    out.push_str(&pager(
        &format!("{}/jobs?{}", ui.base, jobs_filter_query(q)),
        page_no,
        PER_PAGE,
        total,
    ));
    out
}

fn jobs_rows(ui: &Ui, jobs: &[crate::store::JobRow], with_campaign: bool) -> String {
    let base = &ui.base;
    let mut out = String::from("<table class=\"jobs\"><thead><tr><th>Job</th>");
    if with_campaign {
        out.push_str("<th>Campaign</th>");
    }
    out.push_str("<th>Kind</th><th>State</th><th>Progress</th><th>Created</th><th>Updated</th><th>Log and error</th><th></th></tr></thead><tbody>");
    for j in jobs {
        let _ = write!(
            out,
            "<tr id=\"job-{id}\" data-state=\"{state}\"><td>{id}</td>",
            id = j.id,
            state = esc(&j.state)
        );
        if with_campaign {
            let _ = write!(
                out,
                "<td><a href=\"{base}/campaigns/{}\">{}</a></td>",
                query(&j.campaign),
                esc(&j.campaign)
            );
        }
        let mut log = String::new();
        if !j.error.is_empty() {
            let _ = write!(log, "<div class=\"error\">{}</div>", esc(&j.error));
        }
        if !j.log.is_empty() {
            let last = j.log.last().map(String::as_str).unwrap_or_default();
            let _ = write!(
                log,
                "<details><summary>{} lines · {}</summary><pre>{}</pre></details>",
                j.log.len(),
                esc(last),
                esc(&j.log.join("\n"))
            );
        }
        let mut actions = String::new();
        if j.state == "queued" || j.state == "active" {
            actions.push_str(&post_button(
                &format!("{base}/jobs/{}/cancel", j.id),
                "Cancel",
                "",
                None,
            ));
        } else {
            actions.push_str(&post_button(
                &format!("{base}/jobs/{}/delete", j.id),
                "Delete",
                "danger",
                None,
            ));
        }
        let _ = write!(
            out,
            "<td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"log\">{}</td><td>{}</td></tr>",
            esc(&j.kind),
            badge(&j.state),
            progress(j.progress_done as u64, j.progress_total as u64),
            time(j.created_ms),
            time(j.updated_ms),
            log,
            actions
        );
    }
    if jobs.is_empty() {
        out.push_str("<tr><td colspan=\"9\" class=\"muted\">No job.</td></tr>");
    }
    out.push_str("</tbody></table>");
    out
}

pub(crate) async fn job_action(
    State(ui): State<Ui>,
    peer: Peer,
    Path((id, action)): Path<(u64, String)>,
) -> Response {
    let r = ui.request(v1::JobRef { id }, peer);
    let result = match action.as_str() {
        "cancel" => ui.api.cancel_job(r).await.map(|_| ()),
        "delete" => ui.api.delete_job(r).await.map(|_| ()),
        other => return failure(&ui, StatusCode::NOT_FOUND, &format!("no action {other:?}")),
    };
    match result {
        Ok(()) => Redirect::to(&format!("{}/jobs", ui.base)).into_response(),
        Err(s) => {
            let mut res = jobs_page(
                &ui,
                &JobsQuery::default(),
                Some((false, s.message().into())),
            );
            *res.status_mut() = status_code(&s);
            res
        }
    }
}

// ----- command log -----

pub(crate) async fn commands(State(ui): State<Ui>, Query(q): Query<PageQuery>) -> Response {
    let page_no = page_no(q.page);
    let (total, rows) = match (
        ui.core.store.count_commands(),
        ui.core.store.commands(PER_PAGE, (page_no - 1) * PER_PAGE),
    ) {
        (Ok(t), Ok(r)) => (t, r),
        (Err(e), _) | (_, Err(e)) => {
            return failure(&ui, StatusCode::INTERNAL_SERVER_ERROR, &e.to_string())
        }
    };
    let mut body = format!(
        "<h1>Command log</h1><p class=\"muted\">Every command that changes something, from the command line, any gRPC client or this console: {total} so far. \
         <em>Who</em> is the name the caller gave (<code>x-camut-user</code>; the CLI sends <code>$CAMUT_USER</code> or <code>$USER</code>), <code>ui</code> for this console, or <code>anonymous</code>.</p>"
    );
    body.push_str("<table id=\"commands\"><thead><tr><th>When</th><th>Who</th><th>From</th><th>Command</th><th>On</th><th>Result</th></tr></thead><tbody>");
    for c in &rows {
        let _ = write!(
            body,
            "<tr class=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td><td>{}</td><td>{} {}</td></tr>",
            if c.ok { "ok" } else { "failed" },
            time(c.time_ms),
            esc(&c.who),
            esc(&c.origin),
            esc(&c.action),
            esc(&c.target),
            if c.ok { badge("ok") } else { badge("failed") },
            esc(&c.result)
        );
    }
    if rows.is_empty() {
        body.push_str("<tr><td colspan=\"6\" class=\"muted\">No command yet.</td></tr>");
    }
    body.push_str("</tbody></table>");
    body.push_str(&pager(
        &format!("{}/commands", ui.base),
        page_no,
        PER_PAGE,
        total,
    ));
    page(&ui, "Command log", "commands", &body).into_response()
}

// ----- service logs -----

/// Filters of the log page.
#[derive(Deserialize, Default)]
pub(crate) struct LogQuery {
    #[serde(default)]
    level: String,
    #[serde(default)]
    campaign: String,
}

pub(crate) async fn logs(State(ui): State<Ui>, Query(q): Query<LogQuery>) -> Response {
    let base = &ui.base;
    let mut levels = String::new();
    for l in ["debug", "info", "warn", "error"] {
        let sel = if q.level == l || (q.level.is_empty() && l == "debug") {
            " selected"
        } else {
            ""
        };
        let _ = write!(levels, "<option value=\"{l}\"{sel}>{l} and above</option>");
    }
    let mut campaigns = String::from("<option value=\"\">every campaign</option>");
    for row in ui.core.store.campaigns(1000).unwrap_or_default() {
        let sel = if row.id == q.campaign {
            " selected"
        } else {
            ""
        };
        let _ = write!(
            campaigns,
            "<option value=\"{id}\"{sel}>{id}</option>",
            id = esc(&row.id)
        );
    }
    let body = format!(
        "<h1>Service logs</h1>\
         <p class=\"muted\">The server's, its deployers' and the drones' recent lines, newest last, following live.</p>\
         <form method=\"get\" action=\"{base}/logs\" class=\"filters\" id=\"log-filters\">\
         <label>Level <select name=\"level\" id=\"level\" data-autosubmit>{levels}</select></label> \
         <label>Campaign <select name=\"campaign\" id=\"campaign\" data-autosubmit>{campaigns}</select></label> \
         <noscript><button>Filter</button></noscript></form>\
         <div id=\"log\" class=\"log-lines\" data-refresh=\"{base}/logs/lines?level={}&campaign={}\" data-every=\"{REFRESH_MS}\" data-follow>{}</div>",
        query(&q.level),
        query(&q.campaign),
        log_lines_html(&ui, &q)
    );
    page(&ui, "Logs", "logs", &body).into_response()
}

pub(crate) async fn log_lines(State(ui): State<Ui>, Query(q): Query<LogQuery>) -> Html<String> {
    Html(log_lines_html(&ui, &q))
}

fn log_lines_html(ui: &Ui, q: &LogQuery) -> String {
    let min = level_rank(if q.level.is_empty() {
        "debug"
    } else {
        &q.level
    });
    let lines = ui.core.logs.recent(LOG_LINES, &q.campaign, min);
    let mut out = String::from("<table class=\"log\"><tbody>");
    for l in &lines {
        let _ = write!(
            out,
            "<tr class=\"l-{lvl}\"><td>{}</td><td>{lvl}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            time(l.time_ms),
            esc(&l.source),
            esc(&l.campaign),
            esc(&l.message),
            lvl = esc(&l.level),
        );
    }
    if lines.is_empty() {
        out.push_str("<tr><td class=\"muted\">No line matches.</td></tr>");
    }
    out.push_str("</tbody></table>");
    out
}

// ----- sign-in -----

/// The sign-in form.
#[derive(Deserialize)]
pub(crate) struct LoginForm {
    #[serde(default)]
    token: String,
}

/// The sign-in page, with an optional error.
pub(crate) fn login_form(ui: &Ui, error: Option<&str>) -> Html<String> {
    let error = error.map_or(String::new(), |e| {
        format!("<div class=\"notice error\" id=\"error\">{}</div>", esc(e))
    });
    let body = format!(
        "<h1>Sign in</h1>{error}<p>This server needs its API token (<code>token</code> in camut.toml).</p>\
         <form method=\"post\" action=\"{}/login\" id=\"login-form\"><label>API token <input type=\"password\" name=\"token\" id=\"token\" autocomplete=\"current-password\" autofocus></label> \
         <button class=\"primary\" id=\"sign-in\">Sign in</button></form>",
        ui.base
    );
    page(ui, "Sign in", "", &body)
}

pub(crate) async fn login_page(State(ui): State<Ui>) -> Html<String> {
    login_form(&ui, None)
}

pub(crate) async fn login(State(ui): State<Ui>, Form(f): Form<LoginForm>) -> Response {
    let Some(token) = ui.token.as_deref() else {
        return Redirect::to(&format!("{}/campaigns", ui.base)).into_response();
    };
    if !super::same(&f.token, token) {
        tracing::warn!("console sign-in with a wrong token");
        let mut res = login_form(&ui, Some("wrong token")).into_response();
        *res.status_mut() = StatusCode::UNAUTHORIZED;
        return res;
    }
    let cookie = format!(
        "{COOKIE}={}; Path={}; HttpOnly; SameSite=Strict",
        cookie_value(token),
        ui.base
    );
    (
        [(header::SET_COOKIE, cookie)],
        Redirect::to(&format!("{}/campaigns", ui.base)),
    )
        .into_response()
}

pub(crate) async fn logout(State(ui): State<Ui>) -> Response {
    let cookie = format!(
        "{COOKIE}=; Path={}; HttpOnly; SameSite=Strict; Max-Age=0",
        ui.base
    );
    (
        [(header::SET_COOKIE, cookie)],
        Redirect::to(&format!("{}/login", ui.base)),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use super::*;
    use crate::campaign::{CampaignInfo, Inspector};
    use crate::core::{Core, CoreParts};
    use crate::store::{DroneRow, Store};

    /// Reads `ID DRONES` as a campaign file.
    struct Fake;

    impl Inspector for Fake {
        fn inspect(&self, file: &str, source: &str) -> Result<CampaignInfo, String> {
            let (id, drones) = source
                .split_once(' ')
                .ok_or_else(|| format!("{file}:1:1: expected `ID DRONES`"))?;
            let drones: u32 = drones.parse().map_err(|e| format!("{file}:1:4: {e}"))?;
            Ok(CampaignInfo {
                id: id.into(),
                drones,
                min_drones: drones,
                users: 10,
                deployer: None,
                zone: None,
                instance_type: None,
                abort_on_drone_loss: false,
                thresholds: Vec::new(),
                iterations_per_drone: 100,
            })
        }
    }

    fn console(name: &str) -> Ui {
        let dir = std::env::temp_dir().join(format!("camut-ui-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let core = Core::new(CoreParts {
            store: Store::open(&dir).unwrap(),
            deployers: BTreeMap::new(),
            default_deployer: "local".into(),
            public_url: "http://127.0.0.1:1".into(),
            inspector: Arc::new(Fake),
            drone_timeout: Duration::from_secs(10),
        });
        Ui {
            api: crate::api::Api(core.clone()),
            core,
            token: None,
            base: Arc::from("/ui"),
        }
    }

    fn body(res: Response) -> String {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let bytes = rt
            .block_on(axum::body::to_bytes(res.into_body(), usize::MAX))
            .unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[test]
    fn stays_usable_with_100_campaigns_and_1000_drones() {
        let ui = console("scale");
        for i in 0..100 {
            ui.core.create("c.js", &format!("c{i:03} 1000")).unwrap();
        }
        for i in 0..1000u32 {
            let (state, error) = match i {
                500 => ("lost", "no message for 10s"),
                _ => ("ready", ""),
            };
            ui.core
                .store
                .upsert_drone(&DroneRow {
                    id: format!("d{i:04}"),
                    campaign: "c042".into(),
                    index: i,
                    state: state.into(),
                    error: error.into(),
                })
                .unwrap();
        }
        let began = Instant::now();
        let list = body(campaigns_page(&ui, 1, None, None));
        assert_eq!(list.matches("data-campaign=").count(), PER_PAGE as usize);
        assert!(list.contains("100 campaigns") && list.contains("page 1 of 2"));
        let second = body(campaigns_page(&ui, 2, None, None));
        assert_eq!(second.matches("data-campaign=").count(), 50);
        assert!(second.contains("c000"), "the oldest is on the last page");
        let live = live_html(&ui, "c042");
        assert!(live.contains("1000 drones"), "counted");
        assert_eq!(
            live.matches("<code>d").count(),
            DRONE_ROWS,
            "listed: a page of them"
        );
        assert!(live.contains("950 more drones not listed"));
        let first_row = live.find("<code>d").unwrap();
        assert_eq!(
            &live[first_row..first_row + 11],
            "<code>d0500",
            "problems first"
        );
        assert!(live.len() < 100_000, "{} bytes", live.len());
        assert!(list.len() < 100_000, "{} bytes", list.len());
        assert!(
            began.elapsed() < Duration::from_secs(10),
            "{:?}",
            began.elapsed()
        );
    }

    #[test]
    fn compile_errors_and_escaping() {
        let ui = console("errors");
        let res = campaigns_page(
            &ui,
            1,
            Some((false, "invalid source: x.js:1:4: <bad>".into())),
            None,
        );
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);
        let html = body(res);
        assert!(html.contains("x.js:1:4: &lt;bad&gt;"), "{html}");
        ui.core.create("c.js", "a<b 1").unwrap();
        let html = body(campaigns_page(&ui, 1, None, None));
        assert!(html.contains("a&lt;b") && !html.contains("a<b"));
        assert!(html.contains("/ui/campaigns/a%3Cb"));
    }
}
