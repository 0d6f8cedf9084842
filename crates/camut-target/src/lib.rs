//! A small HTTP server to aim campaigns at in examples, tests and benchmarks
//! (`camut target`).
//!
//! `/` answers a small fixed body; the query shapes the answer: `delay_ms` (wait before
//! answering), `status` (response status), `bytes` (body size). `GET /_camut/stats` answers
//! `{"requests": N}`, the requests served so far (stats calls excluded).

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

const BODY: &[u8] = b"hello from the camut target\n";
/// Largest `bytes` answered, so that a typo cannot exhaust memory.
const MAX_BYTES: usize = 64 << 20;

/// A target running on a background task, for tests: its address and request count.
pub struct Target {
    /// Where it listens.
    pub addr: SocketAddr,
    served: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Target {
    /// Starts a target on 127.0.0.1 (free port) on the current tokio runtime.
    pub async fn start() -> std::io::Result<Target> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let served = Arc::new(AtomicU64::new(0));
        let s = served.clone();
        let task = tokio::spawn(async move {
            serve(listener, s).await;
        });
        Ok(Target { addr, served, task })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Requests served so far.
    pub fn served(&self) -> u64 {
        self.served.load(Ordering::Relaxed)
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves the target on `listener`, counting requests into `served`, until dropped.
pub async fn serve(listener: TcpListener, served: Arc<AtomicU64>) {
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
        tokio::spawn(async move {
            let svc = service_fn(move |req| handle(req, served.clone()));
            let _ = http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

async fn handle(
    req: Request<Incoming>,
    served: Arc<AtomicU64>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if req.uri().path() == "/_camut/stats" {
        let body = format!("{{\"requests\": {}}}\n", served.load(Ordering::Relaxed));
        return Ok(Response::builder()
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .expect("static response is valid"));
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
        .body(Full::new(body))
        .expect("response parts are valid"))
}
