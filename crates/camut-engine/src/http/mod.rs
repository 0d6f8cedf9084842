//! The HTTP client behind `camut.http`: hyper with pooled keep-alive connections,
//! one pool per worker thread, measuring each call.

mod connector;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Method, Request, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use connector::CountingConnector;

/// One call to make.
#[derive(Debug, Clone)]
pub(crate) struct HttpRequest {
    pub method: Method,
    pub uri: Uri,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: Bytes,
    pub timeout: Duration,
}

/// What happened to a call.
#[derive(Debug)]
pub(crate) struct HttpOutcome {
    /// Response status, when a response head arrived.
    pub status: Option<u16>,
    /// Response headers (lowercase names).
    pub headers: Vec<(String, String)>,
    /// Response body.
    pub body: Bytes,
    /// Time to the response head.
    pub begin: Duration,
    /// Time to the end of the body (or the error).
    pub total: Duration,
    /// Bytes received (head estimated from its serialized size).
    pub received: u64,
    /// Bytes sent (head estimated from its serialized size).
    pub transmitted: u64,
    /// Transport error or timeout; statuses ≥ 400 are judged by the caller.
    pub error: Option<String>,
}

/// A pooled client and the count of connections it opened.
pub(crate) struct HttpClient {
    client: Client<CountingConnector, Full<Bytes>>,
    connections: Arc<AtomicU64>,
}

impl HttpClient {
    pub fn new() -> Self {
        let connections = Arc::new(AtomicU64::new(0));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .build(CountingConnector::new(connections.clone()));
        HttpClient {
            client,
            connections,
        }
    }

    /// Connections opened since the last call (the count is then reset).
    pub fn take_connections(&self) -> u64 {
        self.connections.swap(0, Ordering::Relaxed)
    }

    pub async fn send(&self, req: HttpRequest) -> HttpOutcome {
        let start = Instant::now();
        let transmitted = request_size(&req);
        let timeout = req.timeout;
        let mut builder = Request::builder().method(req.method).uri(req.uri);
        for (k, v) in req.headers {
            builder = builder.header(k, v);
        }
        let request = match builder.body(Full::new(req.body)) {
            Ok(r) => r,
            Err(e) => return failed(start, 0, format!("invalid request: {e}")),
        };
        let work = async {
            let response = self.client.request(request).await.map_err(describe)?;
            let begin = start.elapsed();
            let (parts, body) = response.into_parts();
            let body = body
                .collect()
                .await
                .map_err(|e| describe_hyper(&e))?
                .to_bytes();
            Ok::<_, String>((parts, body, begin))
        };
        match tokio::time::timeout(timeout, work).await {
            Err(_) => failed(start, transmitted, "timeout".to_string()),
            Ok(Err(e)) => failed(start, transmitted, e),
            Ok(Ok((parts, body, begin))) => {
                let mut head = 17u64; // "HTTP/1.1 200 OK\r\n"
                let headers = parts
                    .headers
                    .iter()
                    .map(|(k, v)| {
                        head += (k.as_str().len() + v.len() + 4) as u64;
                        (
                            k.as_str().to_string(),
                            String::from_utf8_lossy(v.as_bytes()).into_owned(),
                        )
                    })
                    .collect();
                HttpOutcome {
                    status: Some(parts.status.as_u16()),
                    headers,
                    received: head + 2 + body.len() as u64,
                    body,
                    begin,
                    total: start.elapsed(),
                    transmitted,
                    error: None,
                }
            }
        }
    }
}

fn failed(start: Instant, transmitted: u64, error: String) -> HttpOutcome {
    let t = start.elapsed();
    HttpOutcome {
        status: None,
        headers: Vec::new(),
        body: Bytes::new(),
        begin: t,
        total: t,
        received: 0,
        transmitted,
        error: Some(error),
    }
}

fn request_size(req: &HttpRequest) -> u64 {
    let line =
        req.method.as_str().len() + req.uri.path_and_query().map_or(1, |p| p.as_str().len()) + 12;
    let host = req.uri.authority().map_or(0, |a| a.as_str().len() + 8);
    let headers: usize = req
        .headers
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum();
    (line + host + headers + 2 + req.body.len()) as u64
}

/// A short, node-like description of a transport error.
fn describe(e: hyper_util::client::legacy::Error) -> String {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(&e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            return match io.kind() {
                std::io::ErrorKind::ConnectionRefused => format!("ECONNREFUSED: {io}"),
                std::io::ErrorKind::ConnectionReset => format!("ECONNRESET: {io}"),
                std::io::ErrorKind::TimedOut => "timeout".to_string(),
                _ => io.to_string(),
            };
        }
        if let Some(h) = s.downcast_ref::<hyper::Error>() {
            return describe_hyper(h);
        }
        source = s.source();
    }
    e.to_string()
}

fn describe_hyper(e: &hyper::Error) -> String {
    if e.is_incomplete_message() {
        "ECONNRESET: connection closed before the message completed".to_string()
    } else {
        format!("http error: {e}")
    }
}
