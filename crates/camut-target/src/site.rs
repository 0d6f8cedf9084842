//! A small HTML site with a login form, a CSRF token and a session, for campaigns
//! that drive pages the way a browser does (`browserEmulation`, examples/browser.js):
//!
//! | path | answer |
//! |---|---|
//! | `GET /site/login` | a page with a login form whose hidden `csrf` input holds a fresh token |
//! | `POST /site/login` (form `user`, `password`, `csrf`) | a token given out and not used yet, and password `secret`: 303 to `/site/account` with a session cookie `site_sid`; a bad token: 403; a bad password: 401 |
//! | `GET /site/account` | with a session: a page naming the user with a link to the orders; else 401 |
//! | `GET /site/orders` | with a session: a page listing three orders; else 401 |
//! | `GET /site/api/profile` | with a session: `{"user": …, "orders": 3}` as JSON; else 401 |
//! | `GET /site/broken` | a page whose inline script throws (for `runScripts`) |
//!
//! Tokens and sessions are counted in the target's stats (`/_camut/stats` paths
//! `site.csrf.issued`, `site.csrf.rejected`, `site.logins`).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Response, StatusCode};

use crate::endpoints::PathCounts;

/// Most tokens and sessions kept; past it the oldest generation is forgotten (a load
/// test that only reads the form must not grow the target without bound).
pub const MAX_SITE_ENTRIES: usize = 100_000;

/// Tokens given out and sessions opened.
#[derive(Default)]
pub struct SiteState {
    csrf: Mutex<HashSet<String>>,
    sessions: Mutex<HashMap<String, String>>,
    next: AtomicU64,
}

/// Whether `path` is a page of the site.
pub fn is_site(path: &str) -> bool {
    path.starts_with("/site/")
}

fn html(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "text/html; charset=utf-8")
        .body(Full::new(Bytes::from(body)))
        .expect("response parts are valid")
}

fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{title}</title>\n\
         <script>window.pageScriptRan = true;</script>\n</head>\n<body>\n<h1>{title}</h1>\n{body}\n</body>\n</html>\n"
    )
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

impl SiteState {
    fn token(&self) -> String {
        format!(
            "t{:016x}",
            (self.next.fetch_add(1, Ordering::Relaxed) + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15)
        )
    }

    fn session_user(&self, cookie: &str) -> Option<String> {
        let sid = cookie
            .split(';')
            .filter_map(|c| c.trim().strip_prefix("site_sid="))
            .next()?;
        self.sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(sid)
            .cloned()
    }

    /// Answers a page of the site; `form` is the decoded request body.
    pub fn handle(
        &self,
        method: &Method,
        path: &str,
        cookie: &str,
        form: &[(String, String)],
        counts: &PathCounts,
    ) -> Response<Full<Bytes>> {
        let field = |k: &str| {
            form.iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.as_str())
                .unwrap_or("")
        };
        match (method, path) {
            (&Method::GET, "/site/login") => {
                let token = self.token();
                let mut csrf = self.csrf.lock().unwrap_or_else(|p| p.into_inner());
                if csrf.len() >= MAX_SITE_ENTRIES {
                    csrf.clear();
                }
                csrf.insert(token.clone());
                counts.count("site.csrf.issued");
                html(
                    StatusCode::OK,
                    page(
                        "Sign in",
                        &format!(
                            "<form id=\"login\" method=\"post\" action=\"/site/login\">\n\
                             <input type=\"hidden\" name=\"csrf\" value=\"{token}\">\n\
                             <label>User <input type=\"text\" name=\"user\" required></label>\n\
                             <label>Password <input type=\"password\" name=\"password\"></label>\n\
                             <label><input type=\"checkbox\" name=\"remember\" value=\"yes\"> Remember me</label>\n\
                             <select name=\"lang\"><option value=\"en\" selected>English</option><option value=\"fr\">Français</option></select>\n\
                             <button type=\"submit\" name=\"go\" value=\"1\">Sign in</button>\n\
                             </form>\n<p class=\"help\">Password: <code>secret</code>"
                        ),
                    ),
                )
            }
            (&Method::POST, "/site/login") => {
                let known = self
                    .csrf
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(field("csrf"));
                if !known {
                    counts.count("site.csrf.rejected");
                    return html(
                        StatusCode::FORBIDDEN,
                        page("Forbidden", "<p class=\"error\">invalid or reused CSRF token</p>"),
                    );
                }
                if field("password") != "secret" || field("user").is_empty() {
                    return html(
                        StatusCode::UNAUTHORIZED,
                        page("Sign in failed", "<p class=\"error\">bad credentials</p>"),
                    );
                }
                let sid = format!("ss{}", self.next.fetch_add(1, Ordering::Relaxed) + 1);
                let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
                if sessions.len() >= MAX_SITE_ENTRIES {
                    sessions.clear();
                }
                sessions.insert(sid.clone(), field("user").to_string());
                counts.count("site.logins");
                Response::builder()
                    .status(StatusCode::SEE_OTHER)
                    .header("location", "/site/account")
                    .header("set-cookie", format!("site_sid={sid}; Path=/site; HttpOnly"))
                    .body(Full::new(Bytes::new()))
                    .expect("response parts are valid")
            }
            (&Method::GET, "/site/broken") => html(
                StatusCode::OK,
                page(
                    "Broken",
                    "<p>before</p>\n<script>\n  window.beforeBroken = true;\n  notAFunction();\n</script>",
                ),
            ),
            (&Method::GET, "/site/account" | "/site/orders" | "/site/api/profile") => {
                let Some(user) = self.session_user(cookie) else {
                    return html(
                        StatusCode::UNAUTHORIZED,
                        page("Not signed in", "<p class=\"error\">sign in first</p>"),
                    );
                };
                let user = escape(&user);
                match path {
                    "/site/account" => html(
                        StatusCode::OK,
                        page(
                            "Account",
                            &format!(
                                "<p id=\"welcome\" data-user=\"{user}\">Welcome, <b>{user}</b>!</p>\n\
                                 <nav><a href=\"/site/login\">Sign in again</a> \
                                 <a class=\"next\" href=\"orders?page=1\">Your orders</a></nav>"
                            ),
                        ),
                    ),
                    "/site/orders" => html(
                        StatusCode::OK,
                        page(
                            "Orders",
                            "<table id=\"orders\"><tr><th>id</th><th>total</th></tr>\
                             <tr class=\"order\"><td>1</td><td>10.50</td></tr>\
                             <tr class=\"order\"><td>2</td><td>3.20</td></tr>\
                             <tr class=\"order\"><td>3</td><td>99.00</td></tr></table>",
                        ),
                    ),
                    _ => Response::builder()
                        .header("content-type", "application/json")
                        .body(Full::new(Bytes::from(format!(
                            "{{\"user\": \"{}\", \"orders\": 3}}",
                            user.replace('\\', "\\\\")
                        ))))
                        .expect("response parts are valid"),
                }
            }
            _ => html(StatusCode::NOT_FOUND, page("Not found", "<p>no such page</p>")),
        }
    }
}
