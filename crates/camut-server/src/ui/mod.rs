//! The web console: campaigns, live charts, the job queue, the command log and the
//! service logs, as server-rendered HTML with a little plain JavaScript, served on the
//! server's own port under a configurable path (`/ui` by default).
//!
//! Every action goes through the gRPC services of [`crate::api`] (the very methods a
//! remote client reaches), marked as coming from the console so that the command log
//! tells them apart. Charts are SVG drawn here ([`chart`]); nothing is fetched from
//! elsewhere.
//!
//! When the server has an API token, the console asks for it once and keeps it in an
//! `HttpOnly; SameSite=Strict` cookie scoped to the console's path; it never appears in
//! a URL. Whatever the token, the console answers only to its own `Host` names and
//! refuses form posts from other origins ([`access`]), which together with the
//! `SameSite=Strict` cookie keeps other sites — DNS rebinding included — from reading
//! it or posting on the operator's behalf. Every answer forbids framing and carries a
//! Content-Security-Policy.

pub mod access;
mod campaign;
mod campaigns;
mod chart;
mod html;
mod queue;
mod records;
pub mod report;
mod sign_in;
#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use tonic::metadata::MetadataValue;

pub use access::Access;

use crate::api::{Api, FromConsole, USER_HEADER};
use crate::auth::ApiToken;
use crate::core::Core;

/// The cookie that holds the API token (hex-encoded).
const COOKIE: &str = "camut_token";

/// What every handler of the console shares.
#[derive(Clone)]
pub(crate) struct Ui {
    core: Arc<Core>,
    api: Api,
    token: ApiToken,
    /// The console's path, e.g. `/ui`.
    base: Arc<str>,
    /// Its hosts and origins.
    access: Arc<Access>,
}

impl Ui {
    /// A gRPC request as the console makes it: principal `ui`, marked [`FromConsole`].
    fn request<T>(&self, message: T, peer: Peer) -> tonic::Request<T> {
        let mut r = tonic::Request::new(message);
        r.metadata_mut()
            .insert(USER_HEADER, MetadataValue::from_static("ui"));
        r.extensions_mut().insert(FromConsole { peer: peer.0 });
        r
    }
}

/// The browser's address, when the transport knows it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Peer(Option<SocketAddr>);

impl<S: Send + Sync> FromRequestParts<S> for Peer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Peer(
            parts
                .extensions
                .get::<tonic::transport::server::TcpConnectInfo>()
                .and_then(|i| i.remote_addr()),
        ))
    }
}

/// Adds the console under `base` to the server's router (nothing when `base` is
/// empty), answering to the hosts of `access`; `base/` leads to it too.
pub fn mount(
    server: Router,
    core: Arc<Core>,
    token: ApiToken,
    base: &str,
    access: Access,
) -> Router {
    if base.is_empty() {
        return server;
    }
    let home = format!("{base}/campaigns");
    server.nest(base, router(core, token, base, access)).route(
        &format!("{base}/"),
        get(move || async move { axum::response::Redirect::to(&home) }),
    )
}

/// The console's routes, to be nested under `base` on the server's router.
pub fn router(core: Arc<Core>, token: ApiToken, base: &str, access: Access) -> Router {
    let ui = Ui {
        api: Api(core.clone()),
        core,
        token,
        base: Arc::from(base),
        access: Arc::new(access),
    };
    Router::new()
        .route("/", get(html::home))
        .route("/campaigns", get(campaigns::list).post(campaigns::create))
        .route("/campaigns/{id}", get(campaign::show))
        .route("/campaigns/{id}/live", get(campaign::live))
        .route("/campaigns/{id}/report.html", get(campaign::report))
        .route("/campaigns/{id}/{action}", post(campaign::act))
        .route("/jobs", get(queue::jobs))
        .route("/jobs/table", get(queue::table))
        .route("/jobs/{id}/{action}", post(queue::act))
        .route("/commands", get(records::commands))
        .route("/logs", get(records::logs))
        .route("/logs/lines", get(records::lines))
        .route("/login", get(sign_in::form_page).post(sign_in::sign_in))
        .route("/logout", post(sign_in::sign_out))
        .route("/assets/console.css", get(css))
        .route("/assets/console.js", get(js))
        .fallback(html::not_found)
        .layer(axum::middleware::from_fn_with_state(ui.clone(), guard))
        .with_state(ui)
}

async fn css() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("assets/console.css"),
    )
}

async fn js() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("assets/console.js"),
    )
}

/// Whether the request carries the token (always true when the server has none).
fn signed_in(ui: &Ui, req: &Request) -> bool {
    let Some(want) = ui.token.cookie_value() else {
        return true;
    };
    req.headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .any(|(k, v)| k == COOKIE && crate::auth::same(v, &want))
}

/// Whether a path is served without the token: the sign-in page and the assets. The
/// path may come with or without the console's prefix.
fn open_path(base: &str, path: &str) -> bool {
    let rel = path.strip_prefix(base).unwrap_or(path);
    rel == "/login" || rel == "/assets/console.css" || rel == "/assets/console.js"
}

/// Refuses requests for other hosts, cross-site posts and, when the server has a token,
/// requests without it; adds the security headers to every answer.
async fn guard(State(ui): State<Ui>, req: Request, next: Next) -> Response {
    let mut res = if !ui.access.allows_host(&req) {
        let host = Access::requested_host(&req).unwrap_or_else(|| "(none)".into());
        tracing::warn!(%host, "console request for a foreign Host refused");
        (
            StatusCode::MISDIRECTED_REQUEST,
            format!(
                "this Camut console answers to {}, not to Host {host}: add the name to `public_url` or `allowed_hosts` in camut.toml\n",
                ui.access.hosts().join(", ")
            ),
        )
            .into_response()
    } else if req.method() != Method::GET
        && req.method() != Method::HEAD
        && ui.access.cross_site(&req)
    {
        (
            StatusCode::FORBIDDEN,
            "cross-site form posts are refused by the Camut console\n",
        )
            .into_response()
    } else if open_path(&ui.base, req.uri().path()) || signed_in(&ui, &req) {
        next.run(req).await
    } else {
        let mut res = sign_in::form(&ui, None).into_response();
        *res.status_mut() = StatusCode::UNAUTHORIZED;
        res
    };
    for (name, value) in access::security_headers() {
        res.headers_mut().insert(name, value);
    }
    res
}
