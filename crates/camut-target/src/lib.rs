//! A small HTTP server to aim campaigns at in examples, tests and benchmarks
//! (`camut target`), over plain HTTP or HTTPS with a certificate made at start.
//!
//! `/` answers a small fixed body; the query shapes the answer: `delay_ms` (wait before
//! answering), `status` (response status), `bytes` (body size). `GET /_camut/stats` answers
//! `{"requests": N, "paths": {…}}`: the requests served so far (stats calls excluded)
//! and, per path, those of the test endpoints in [`endpoints`] (cookies, redirects,
//! gzip, Basic auth, echo, and the HTML site of [`site`] with its login form).
//! `/big?bytes=N` streams a body of N bytes (up to 4 TiB, made as it is sent, with its
//! `Content-Length`; `&chunked=1`: chunked, without it) — for tests of clients facing
//! huge answers.

#![warn(missing_docs)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

pub mod endpoints;
pub mod site;
pub mod tls;

use endpoints::PathCounts;

const BODY: &[u8] = b"hello from the camut target\n";
/// Largest `bytes` answered, so that a typo cannot exhaust memory.
const MAX_BYTES: usize = 64 << 20;

/// Largest `/big` body: 4 TiB (never held: it is made as it is sent).
const MAX_BIG: u64 = 1 << 42;

/// A response body: in memory, or `/big`'s bytes made as they are sent.
pub enum TargetBody {
    /// A body held in memory.
    Full(Full<Bytes>),
    /// `left` more bytes of `x`; `sized`: with a known length (`Content-Length`).
    Repeat {
        /// Bytes still to send.
        left: u64,
        /// Whether the length is announced (else the body goes chunked).
        sized: bool,
    },
}

/// What `/big` sends, one frame at a time.
static BIG_CHUNK: [u8; 64 * 1024] = [b'x'; 64 * 1024];

impl hyper::body::Body for TargetBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            TargetBody::Full(f) => std::pin::Pin::new(f).poll_frame(cx),
            TargetBody::Repeat { left, .. } => {
                if *left == 0 {
                    return std::task::Poll::Ready(None);
                }
                let n = (*left).min(BIG_CHUNK.len() as u64) as usize;
                *left -= n as u64;
                let chunk = Bytes::from_static(&BIG_CHUNK[..n]);
                std::task::Poll::Ready(Some(Ok(hyper::body::Frame::data(chunk))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            TargetBody::Full(f) => f.is_end_stream(),
            TargetBody::Repeat { left, .. } => *left == 0,
        }
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        match self {
            TargetBody::Full(f) => f.size_hint(),
            TargetBody::Repeat { left, sized: true } => hyper::body::SizeHint::with_exact(*left),
            TargetBody::Repeat { .. } => hyper::body::SizeHint::default(),
        }
    }
}

impl From<Full<Bytes>> for TargetBody {
    fn from(f: Full<Bytes>) -> Self {
        TargetBody::Full(f)
    }
}

/// A target running on a background task, for tests: its address and request count.
pub struct Target {
    /// Where it listens.
    pub addr: SocketAddr,
    served: Arc<AtomicU64>,
    paths: Arc<PathCounts>,
    task: tokio::task::JoinHandle<()>,
    /// The certificate (PEM) when it serves HTTPS.
    pub certificate: Option<String>,
}

impl Target {
    /// Starts a target on 127.0.0.1 (free port) on the current tokio runtime.
    pub async fn start() -> std::io::Result<Target> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let served = Arc::new(AtomicU64::new(0));
        let paths = Arc::new(PathCounts::default());
        let (s, p) = (served.clone(), paths.clone());
        let task = tokio::spawn(async move {
            serve_counted(listener, s, p, None).await;
        });
        Ok(Target {
            addr,
            served,
            paths,
            task,
            certificate: None,
        })
    }

    /// Starts a target serving HTTPS with a self-signed certificate for `localhost` and
    /// `127.0.0.1`, made now.
    pub async fn start_tls() -> std::io::Result<Target> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let served = Arc::new(AtomicU64::new(0));
        let identity = tls::Identity::self_signed().map_err(std::io::Error::other)?;
        let acceptor = identity.acceptor().map_err(std::io::Error::other)?;
        let paths = Arc::new(PathCounts::default());
        let (s, p) = (served.clone(), paths.clone());
        let task = tokio::spawn(async move {
            serve_counted(listener, s, p, Some(acceptor)).await;
        });
        Ok(Target {
            addr,
            served,
            paths,
            task,
            certificate: Some(identity.cert_pem),
        })
    }

    /// `http://127.0.0.1:PORT` (or `https://`).
    pub fn url(&self) -> String {
        let scheme = if self.certificate.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}", self.addr)
    }

    /// Requests served so far.
    pub fn served(&self) -> u64 {
        self.served.load(Ordering::Relaxed)
    }

    /// Requests served so far to the test endpoint `path`.
    pub fn served_path(&self, path: &str) -> u64 {
        self.paths.get(path)
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves the target on `listener`, counting requests into `served`, until dropped.
pub async fn serve(listener: TcpListener, served: Arc<AtomicU64>) {
    serve_with(listener, served, None).await
}

/// Serves the target on `listener`, over TLS when an acceptor is given.
pub async fn serve_with(
    listener: TcpListener,
    served: Arc<AtomicU64>,
    tls: Option<tokio_rustls::TlsAcceptor>,
) {
    serve_counted(listener, served, Arc::new(PathCounts::default()), tls).await
}

async fn serve_counted(
    listener: TcpListener,
    served: Arc<AtomicU64>,
    paths: Arc<PathCounts>,
    tls: Option<tokio_rustls::TlsAcceptor>,
) {
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let served = served.clone();
        let paths = paths.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| handle(req, served.clone(), paths.clone()));
            let mut http = http1::Builder::new();
            match tls {
                None => {
                    let _ = http
                        .keep_alive(true)
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                }
                Some(acceptor) => {
                    let Ok(stream) = acceptor.accept(stream).await else {
                        return; // a failed handshake: the client reports it
                    };
                    let _ = http
                        .keep_alive(true)
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                }
            }
        });
    }
}

async fn handle(
    req: Request<Incoming>,
    served: Arc<AtomicU64>,
    paths: Arc<PathCounts>,
) -> Result<Response<TargetBody>, Infallible> {
    if req.uri().path() == "/_camut/stats" {
        let body = format!(
            "{{\"requests\": {}, \"paths\": {}}}\n",
            served.load(Ordering::Relaxed),
            paths.json()
        );
        return Ok(Response::builder()
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)).into())
            .expect("static response is valid"));
    }
    if endpoints::is_endpoint(req.uri().path()) {
        served.fetch_add(1, Ordering::Relaxed);
        paths.count(req.uri().path());
        return Ok(endpoints::handle(req, &paths).await.map(Into::into));
    }
    if req.uri().path() == "/big" {
        served.fetch_add(1, Ordering::Relaxed);
        paths.count("/big");
        let query = req.uri().query().unwrap_or("");
        let param = |name: &str| {
            query
                .split('&')
                .find_map(|p| p.strip_prefix(name)?.strip_prefix('='))
                .and_then(|v| v.parse::<u64>().ok())
        };
        let left = param("bytes").unwrap_or(0).min(MAX_BIG);
        let sized = param("chunked") != Some(1);
        return Ok(Response::builder()
            .header("content-type", "application/octet-stream")
            .body(TargetBody::Repeat { left, sized })
            .expect("response parts are valid"));
    }
    let mut status = StatusCode::OK;
    let mut delay = None;
    let mut size = None;
    for pair in req.uri().query().unwrap_or("").split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "delay_ms" => delay = v.parse::<u64>().ok().map(Duration::from_millis),
            "status" => {
                status = v
                    .parse::<u16>()
                    .ok()
                    .and_then(|s| StatusCode::from_u16(s).ok())
                    .unwrap_or(status)
            }
            "bytes" => size = v.parse::<usize>().ok().map(|n| n.min(MAX_BYTES)),
            _ => {}
        }
    }
    // Read the request body fully so keep-alive connections stay in sync.
    let _ = req.into_body().collect().await;
    if let Some(d) = delay {
        tokio::time::sleep(d).await;
    }
    served.fetch_add(1, Ordering::Relaxed);
    let body = match size {
        Some(n) => Bytes::from(vec![b'x'; n]),
        None => Bytes::from_static(BODY),
    };
    Ok(Response::builder()
        .status(status)
        .header("content-type", "text/plain")
        .body(Full::new(body).into())
        .expect("response parts are valid"))
}
