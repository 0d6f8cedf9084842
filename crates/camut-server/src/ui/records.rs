//! The operator's command log and the service logs.

use std::fmt::Write as _;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;

use super::html::{
    badge, esc, failure, page, page_no, pager, query, time, PageQuery, PER_PAGE, REFRESH_MS,
};
use super::Ui;
use crate::logs::level_rank;

/// Log lines shown.
const LOG_LINES: usize = 500;

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

pub(crate) async fn lines(State(ui): State<Ui>, Query(q): Query<LogQuery>) -> Html<String> {
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
