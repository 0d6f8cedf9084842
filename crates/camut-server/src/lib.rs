//! Camut's server: the control API (Campaigns, Jobs, Logs), the drone hub (Drones), the
//! job queue, the durable store, the merged results and the web console ([`ui`]) — on
//! one listener that also answers `/healthz` and `/metrics` (OpenMetrics for Prometheus).
//!
//! It knows nothing of QuickJS: campaign files are read through an [`Inspector`] that
//! the binary provides, and deployers are any implementation of the `Deployer` service,
//! in-process or remote.
//!
//! The rooms, and who owns what, are described in [`core`]: `core` holds the state
//! (one lock per campaign), `campaigns` creates and shows campaigns, `jobs` is the
//! queue, `flows` the spawn/deploy/start/stop/kill flows, `results` the merged
//! results, `hub` the drone sessions, `store` the durable store and its writer thread.

#![warn(missing_docs)]

pub mod api;
pub mod auth;
pub mod campaign;
pub mod campaigns;
pub mod config;
pub mod core;
pub mod env;
pub mod error;
pub mod flows;
pub mod hub;
pub mod instances;
pub mod jobs;
pub mod logs;
pub mod metrics;
mod pending;
pub mod results;
pub mod state;
pub mod store;
#[cfg(test)]
mod testing;
pub mod tls;
pub mod ui;

use std::future::Future;
use std::sync::Arc;

use camut::v1::{
    campaigns_server::CampaignsServer, drones_server::DronesServer,
    instances_server::InstancesServer, jobs_server::JobsServer, logs_server::LogsServer,
};
use tokio::net::TcpListener;
use tonic::service::Routes;
use tonic::{Request, Status};

pub use auth::ApiToken;
pub use campaign::{CampaignInfo, Inspector};
pub use config::ServerConfig;
pub use core::{Core, CoreParts};
pub use error::ServerError;
pub use store::Store;

/// `GET /metrics`, behind the API token when the server has one (Prometheus sends it
/// with `authorization: { credentials: … }`).
fn metrics_route(core: Arc<Core>, token: ApiToken) -> axum::routing::MethodRouter {
    use axum::http::{header, HeaderMap, StatusCode};
    axum::routing::get(move |headers: HeaderMap| {
        let core = core.clone();
        let token = token.clone();
        async move {
            let given = headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok());
            if token.check_bearer(given).is_err() {
                return (
                    StatusCode::UNAUTHORIZED,
                    [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                    "this server needs its API token: header `Authorization: Bearer <token>`\n"
                        .to_string(),
                );
            }
            let body = tokio::task::spawn_blocking(move || metrics::render(&core))
                .await
                .unwrap_or_default();
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, metrics::CONTENT_TYPE)],
                body,
            )
        }
    })
}

/// How long `/healthz` waits for its probe write before it says the store is stuck.
const HEALTH_PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// `GET /healthz`: 200 `ok` when a probe row can be written to the store now, 503 with
/// the store's error otherwise (a full disk, an I/O error, a writer that is stuck).
fn healthz_route(core: Arc<Core>) -> axum::routing::MethodRouter {
    use axum::http::{header, StatusCode};
    axum::routing::get(move || {
        let core = core.clone();
        async move {
            let probe = tokio::time::timeout(HEALTH_PROBE_TIMEOUT, core.store.probe()).await;
            let failure = match probe {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(format!("store: cannot write: {e}")),
                Err(_) => Some(format!(
                    "store: a write did not commit within {} s",
                    HEALTH_PROBE_TIMEOUT.as_secs()
                )),
            };
            let text = [(header::CONTENT_TYPE, "text/plain; charset=utf-8")];
            match failure {
                None => (StatusCode::OK, text, "ok\n".to_string()),
                Some(why) => {
                    let failed = core.store.health().failed_writes();
                    (
                        StatusCode::SERVICE_UNAVAILABLE,
                        text,
                        format!("{why} ({failed} writes failed since the server started)\n"),
                    )
                }
            }
        }
    })
}

/// Checks the bearer token of a control call (when the server has one).
fn check_token(token: ApiToken) -> impl Fn(Request<()>) -> Result<Request<()>, Status> + Clone {
    move |req: Request<()>| {
        let given = req
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok());
        match token.check_bearer(given) {
            Ok(()) => Ok(req),
            Err(auth::Refusal::Wrong) => Err(Status::unauthenticated("wrong API token")),
            Err(auth::Refusal::Missing) => Err(Status::unauthenticated(
                "this server needs an API token: pass --token or set CAMUT_TOKEN (header `authorization: Bearer <token>`)",
            )),
        }
    }
}

/// How [`serve_with`] serves: the API token, the console's path and who may reach it.
#[derive(Debug, Clone, Default)]
pub struct ServeOptions {
    /// The API token (none, or empty: the API is open — loopback only).
    pub token: Option<String>,
    /// Where the console is served (`/ui`); empty: no console.
    pub ui_path: String,
    /// The URL users and drones reach the server at, when it differs from the listen
    /// address: the console answers to its host too.
    pub public_url: Option<String>,
    /// More `Host` values (`host[:port]`) the console answers to (behind a proxy).
    pub allowed_hosts: Vec<String>,
    /// TLS on the port (see [`tls::Identity::server_config`]); none: plaintext.
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

/// Serves everything on `listener` until `shutdown` completes: gRPC, `/healthz`,
/// `/metrics` and the web console under `ui_path` (none when empty). Call
/// [`Core::resume`] first after a restart (and [`Core::reconcile_in_background`] to
/// reap zombies).
pub async fn serve(
    core: Arc<Core>,
    token: Option<String>,
    ui_path: &str,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let options = ServeOptions {
        token,
        ui_path: ui_path.to_string(),
        ..ServeOptions::default()
    };
    serve_with(core, options, listener, shutdown).await
}

/// [`serve`] with every option.
pub async fn serve_with(
    core: Arc<Core>,
    options: ServeOptions,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let bound = listener
        .local_addr()
        .map_err(|e| ServerError::Store(format!("listener: {e}")))?;
    let api = api::Api(core.clone());
    let token = ApiToken::new(options.token.clone());
    let auth = check_token(token.clone());
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(camut::v1::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|e| ServerError::Store(format!("reflection: {e}")))?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(camut::v1::FILE_DESCRIPTOR_SET)
        .build_v1alpha()
        .map_err(|e| ServerError::Store(format!("reflection: {e}")))?;
    let mut builder = Routes::builder();
    builder
        .add_service(CampaignsServer::with_interceptor(api.clone(), auth.clone()))
        .add_service(JobsServer::with_interceptor(api.clone(), auth.clone()))
        .add_service(LogsServer::with_interceptor(api.clone(), auth.clone()))
        .add_service(InstancesServer::with_interceptor(api.clone(), auth))
        .add_service(DronesServer::new(api))
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha);
    let routes = builder.routes();
    let router = routes
        .into_axum_router()
        .route("/healthz", healthz_route(core.clone()))
        .route("/metrics", metrics_route(core.clone(), token.clone()))
        .layer(axum::middleware::map_response(
            undecodable_is_invalid_argument,
        ));
    let access = ui::Access::new(
        bound,
        options.tls.is_some(),
        options.public_url.as_deref(),
        &options.allowed_hosts,
    );
    let router = ui::mount(router, core.clone(), token, &options.ui_path, access);
    let ticker = tokio::spawn(core.clone().tick_forever());
    let server = tonic::transport::Server::builder()
        .accept_http1(true)
        .add_routes(Routes::from(router));
    let r = match options.tls {
        Some(config) => {
            let incoming = tls::incoming(listener, config);
            server
                .serve_with_incoming_shutdown(incoming, shutdown)
                .await
        }
        None => {
            let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
            server
                .serve_with_incoming_shutdown(incoming, shutdown)
                .await
        }
    };
    ticker.abort();
    r.map_err(|e| ServerError::Store(format!("server stopped: {e}")))
}

/// tonic answers INTERNAL to a request whose protobuf does not decode — a campaign
/// source that is not UTF-8, say — though the fault is the client's: the answer becomes
/// INVALID_ARGUMENT, with what to fix.
async fn undecodable_is_invalid_argument(
    mut response: axum::response::Response,
) -> axum::response::Response {
    let Some(status) = tonic::Status::from_header_map(response.headers()) else {
        return response;
    };
    if status.code() != tonic::Code::Internal
        || !status
            .message()
            .starts_with("failed to decode Protobuf message")
    {
        return response;
    }
    let fixed = tonic::Status::invalid_argument(format!(
        "the request is not a valid message: {}; text fields (a campaign's source and \
         file name, ids) must be UTF-8",
        status.message()
    ));
    let _ = fixed.add_header(response.headers_mut());
    response
}
