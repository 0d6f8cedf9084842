//! Small HTML helpers: escaping, the page frame, badges, progress bars and pagers.

use std::fmt::Write as _;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::Ui;

/// Escapes text for HTML content and attribute values.
pub(crate) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Escapes a value for a URL query.
pub(crate) fn query(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// A whole page: header, navigation (with `active` marked; none on the sign-in page,
/// `active` = `sign-in`) and `body`.
pub(crate) fn page(ui: &Ui, title: &str, active: &str, body: &str) -> Html<String> {
    let base = &ui.base;
    let mut nav = String::new();
    let links: &[(&str, &str)] = if active == "sign-in" {
        &[]
    } else {
        &[
            ("campaigns", "Campaigns"),
            ("jobs", "Jobs"),
            ("commands", "Command log"),
            ("logs", "Logs"),
        ]
    };
    for &(key, label) in links {
        let class = if key == active {
            " class=\"active\""
        } else {
            ""
        };
        let _ = write!(nav, "<a href=\"{base}/{key}\"{class}>{label}</a>");
    }
    if ui.token.is_set() && !links.is_empty() {
        let _ = write!(
            nav,
            "<form method=\"post\" action=\"{base}/logout\" class=\"logout\"><button>Sign out</button></form>"
        );
    }
    Html(format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title} · Camut</title>\
         <link rel=\"stylesheet\" href=\"{base}/assets/console.css\">\
         <script src=\"{base}/assets/console.js\" defer></script></head>\
         <body><header><a class=\"brand\" href=\"{base}/campaigns\">Camut</a><nav>{nav}</nav></header>\
         <main>{body}</main></body></html>\n",
        title = esc(title),
    ))
}

/// A state badge.
pub(crate) fn badge(state: &str) -> String {
    format!(
        "<span class=\"badge s-{}\">{}</span>",
        esc(state),
        esc(state)
    )
}

/// A progress bar with its figures.
pub(crate) fn progress(done: u64, total: u64) -> String {
    if total == 0 {
        return format!("<span class=\"muted\">{done}</span>");
    }
    // A <progress> element, not a styled span: the console's CSP allows no inline style.
    format!(
        "<span class=\"progress\"><progress class=\"bar\" max=\"{total}\" value=\"{}\"></progress> {done}/{total}</span>",
        done.min(total)
    )
}

/// A Unix-ms time, UTC to the second (with the milliseconds in a tooltip).
pub(crate) fn time(ms: i64) -> String {
    if ms <= 0 {
        return "—".into();
    }
    let full = camut::clock(ms);
    format!(
        "<time title=\"{full} UTC\">{}</time>",
        full.get(..19).unwrap_or(&full)
    )
}

/// Previous/next links for a list shown `per` at a time.
pub(crate) fn pager(url: &str, page: u32, per: u32, total: u64) -> String {
    let pages = total.div_ceil(per as u64).max(1) as u32;
    if pages <= 1 {
        return String::new();
    }
    let sep = if url.contains('?') { '&' } else { '?' };
    let mut out = String::from("<p class=\"pager\">");
    if page > 1 {
        let _ = write!(out, "<a href=\"{url}{sep}page={}\">← newer</a> ", page - 1);
    }
    let _ = write!(out, "page {page} of {pages}");
    if page < pages {
        let _ = write!(out, " <a href=\"{url}{sep}page={}\">older →</a>", page + 1);
    }
    out.push_str("</p>");
    out
}

/// A button that posts to `action` (a form of its own).
pub(crate) fn post_button(action: &str, label: &str, class: &str, confirm: Option<&str>) -> String {
    let confirm = confirm.map_or(String::new(), |c| format!(" data-confirm=\"{}\"", esc(c)));
    format!(
        "<form method=\"post\" action=\"{action}\" class=\"inline\"{confirm}><button class=\"{class}\">{}</button></form>",
        esc(label)
    )
}

/// Rows of a list page.
pub(crate) const PER_PAGE: u32 = 50;
/// How often the live parts refresh, ms.
pub(crate) const REFRESH_MS: u32 = 1000;

pub(crate) type Notice = Option<(bool, String)>;

pub(crate) fn notice_html(n: &Notice) -> String {
    match n {
        Some((true, m)) => format!("<div class=\"notice ok\" id=\"notice\">{}</div>", esc(m)),
        Some((false, m)) => format!("<div class=\"notice error\" id=\"error\">{}</div>", esc(m)),
        None => String::new(),
    }
}

/// An error page for a failed read.
pub(crate) fn failure(ui: &Ui, status: StatusCode, message: &str) -> Response {
    let body = notice_html(&Some((false, message.to_string())));
    (status, page(ui, "Error", "", &body)).into_response()
}

pub(crate) fn status_code(s: &tonic::Status) -> StatusCode {
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
    /// 1-based page number.
    pub page: Option<u32>,
}

pub(crate) fn page_no(p: Option<u32>) -> u32 {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping() {
        assert_eq!(
            esc("<a href=\"x\">&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;&lt;/a&gt;"
        );
        assert_eq!(query("a b&c/é"), "a%20b%26c%2F%C3%A9");
    }

    #[test]
    fn bars_and_pagers() {
        assert!(progress(5, 10).contains("max=\"10\" value=\"5\""));
        assert!(progress(20, 10).contains("max=\"10\" value=\"10\""));
        assert!(
            !progress(5, 10).contains("style="),
            "no inline style under the CSP"
        );
        assert_eq!(pager("/ui/jobs", 1, 50, 50), "");
        let p = pager("/ui/jobs?state=failed", 2, 50, 120);
        assert!(
            p.contains("state=failed&page=1") && p.contains("page=3") && p.contains("page 2 of 3"),
            "{p}"
        );
        assert_eq!(
            time(1_700_000_000_123),
            "<time title=\"2023-11-14 22:13:20.123 UTC\">2023-11-14 22:13:20</time>"
        );
    }
}
