//! The job queue: every command's job with its progress, log and error; cancel and
//! delete.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use camut::v1::{self, jobs_server::Jobs};
use serde::Deserialize;

use super::html::{
    badge, esc, failure, notice_html, page, page_no, pager, post_button, progress, query,
    status_code, time, Notice, PER_PAGE, REFRESH_MS,
};
use super::{Peer, Ui};
use crate::state::JobState;

/// Filters of the job queue.
#[derive(Deserialize, Default)]
pub(crate) struct JobsQuery {
    #[serde(default)]
    state: String,
    #[serde(default)]
    campaign: String,
    page: Option<u32>,
}

/// The state filter of a jobs query: none when empty or unknown.
fn state_filter(q: &JobsQuery) -> Option<JobState> {
    q.state.parse().ok()
}

pub(crate) async fn jobs(State(ui): State<Ui>, Query(q): Query<JobsQuery>) -> Response {
    jobs_page(&ui, &q, None)
}

fn jobs_filter_query(q: &JobsQuery) -> String {
    format!("state={}&campaign={}", query(&q.state), query(&q.campaign))
}

fn jobs_page(ui: &Ui, q: &JobsQuery, notice: Notice) -> Response {
    let base = &ui.base;
    let counts: BTreeMap<JobState, u64> = ui
        .core
        .store
        .jobs_by_state()
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
    for s in JobState::ALL {
        let _ = write!(
            body,
            " <a href=\"{base}/jobs?state={s}{campaign_q}\"{}>{s} {}</a>",
            if state_filter(q) == Some(*s) {
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

pub(crate) async fn table(State(ui): State<Ui>, Query(q): Query<JobsQuery>) -> Html<String> {
    Html(jobs_table_html(&ui, &q))
}

fn jobs_table_html(ui: &Ui, q: &JobsQuery) -> String {
    let page_no = page_no(q.page);
    let jobs = ui
        .core
        .store
        .jobs_page(
            &q.campaign,
            state_filter(q),
            PER_PAGE,
            (page_no - 1) * PER_PAGE,
        )
        .unwrap_or_default();
    let total = if q.campaign.is_empty() {
        let counts = ui.core.store.jobs_by_state().unwrap_or_default();
        let filter = state_filter(q);
        counts
            .iter()
            .filter(|(s, _)| filter.is_none_or(|f| f == *s))
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

pub(crate) fn jobs_rows(ui: &Ui, jobs: &[crate::store::JobRow], with_campaign: bool) -> String {
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
            state = j.state
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
                "<details><summary>{} line{} · {}</summary><pre>{}</pre></details>",
                j.log.len(),
                if j.log.len() == 1 { "" } else { "s" },
                esc(last),
                esc(&j.log.join("\n"))
            );
        }
        let mut actions = String::new();
        if j.state.is_open() {
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
            j.kind,
            badge(j.state.as_str()),
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

pub(crate) async fn act(
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
