//! The campaign list and the create form (upload or paste).

use std::fmt::Write as _;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use camut::v1::{self, campaigns_server::Campaigns, Campaign};
use serde::Deserialize;

use super::html::{
    badge, esc, failure, notice_html, page, page_no, pager, progress, query, time, Notice,
    PageQuery, PER_PAGE,
};
use super::{Peer, Ui};

/// The create form's fields.
#[derive(Deserialize)]
pub(crate) struct SourceForm {
    /// The file's name, for error messages.
    #[serde(default)]
    pub file: String,
    /// The campaign's source.
    #[serde(default)]
    pub source: String,
}

pub(crate) async fn list(State(ui): State<Ui>, Query(q): Query<PageQuery>) -> Response {
    campaigns_page(&ui, page_no(q.page), None, None)
}

pub(crate) fn campaigns_page(
    ui: &Ui,
    page_no: u32,
    notice: Notice,
    form: Option<&SourceForm>,
) -> Response {
    let core = &ui.core;
    let (states, rows) = match (
        core.store.campaigns_by_state(),
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
        "<p class=\"summary\" id=\"campaign-counts\">{total} campaign{}",
        if total == 1 { "" } else { "s" }
    );
    for (state, n) in &states {
        let _ = write!(body, " · {} {n}", badge(state.as_str()));
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
            state = badge(c.state().label()),
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
            use camut::v1::DroneState::*;
            matches!(d.state(), Ready | Running | Finished | Connected)
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
            env: Vec::new(),
        },
        peer,
    );
    match ui.api.create_campaign(req).await {
        Ok(c) => Redirect::to(&format!("{}/campaigns/{}", ui.base, query(&c.get_ref().id)))
            .into_response(),
        Err(s) => campaigns_page(&ui, 1, Some((false, s.message().to_string())), Some(&f)),
    }
}
