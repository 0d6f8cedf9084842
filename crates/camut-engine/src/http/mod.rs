//! The HTTP/1.1 client behind `camut.http`: keep-alive connections pooled per worker
//! thread, plain or TLS, measuring each call.
//!
//! It is a small client on tokio and httparse (hyper's parser) rather than hyper's own
//! client: everything happens inside the calling task, with no connection task, channel
//! or shared pool in between — that machinery cost more CPU per request than the rest
//! of the engine (see docs/PERFORMANCE.md). The built-in target still serves with hyper.

pub(crate) mod body;
pub(crate) mod cookies;
#[cfg(test)]
mod proptests;
mod stream;
pub mod tls;
mod wire;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use http::header::{HeaderName, HeaderValue};
use http::{Method, Uri};
use rustls::ClientConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use stream::{Counted, Stream};
use tls::TlsSettings;
pub(crate) use wire::ResponseHeaders;
use wire::{decode_chunks, parse_head, request_bytes, ChunkState, Framing};

/// One call to make.
#[derive(Debug, Clone)]
pub(crate) struct HttpRequest {
    pub method: Method,
    pub uri: Uri,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: Bytes,
    pub timeout: Duration,
    /// TLS settings for `https://` URLs: an index from [`HttpClient::tls_index`]
    /// (0 is the campaign's `tls` option).
    pub tls: u32,
    /// Whether the connection may be kept for later calls (`keepAlive: false` sends
    /// `Connection: close` and opens a connection per call).
    pub keep_alive: bool,
    /// What becomes of the response body: kept up to a size, or read and dropped.
    pub response_body: BodyPolicy,
}

/// What becomes of a response body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyPolicy {
    /// Kept for the test, up to this many bytes (`maxResponseBytes`); a larger body
    /// fails the call and closes its connection.
    Keep(u64),
    /// Read off the wire and dropped as it comes (`discardResponseBodies`,
    /// `responseType: 'none'`): memory stays flat whatever the size; the bytes still
    /// count in `http.received`.
    Discard,
}

/// The error of a call whose response body is past `maxResponseBytes`.
pub(crate) fn too_large(size: u64, limit: u64) -> String {
    format!(
        "response body of {size} bytes or more is larger than maxResponseBytes ({limit} bytes): \
         raise maxResponseBytes (in the call or the campaign), or set discardResponseBodies / \
         responseType: 'none' if the body is not needed"
    )
}

/// What happened to a call.
#[derive(Debug)]
pub(crate) struct HttpOutcome {
    /// Response status, when a response head arrived.
    pub status: Option<u16>,
    /// Response headers (lowercase names).
    pub headers: ResponseHeaders,
    /// Response body.
    pub body: Bytes,
    /// Time to the response head.
    pub begin: Duration,
    /// Time to the end of the body (or the error).
    pub total: Duration,
    /// Bytes received on the wire for this response.
    pub received: u64,
    /// Bytes sent on the wire for this request.
    pub transmitted: u64,
    /// Transport error or timeout; statuses ≥ 400 are judged by the caller.
    pub error: Option<String>,
    /// How long the TLS handshake took, when this call made one.
    pub tls_handshake: Option<Duration>,
}

impl HttpOutcome {
    /// Whether the call failed: no response, or a status of 400 or more.
    pub fn failed(&self) -> bool {
        self.error.is_some() || self.status.is_some_and(|s| s >= 400)
    }

    /// Why it failed, as a short tag value: `timeout`, a node-like code
    /// (`ECONNREFUSED`, `ECONNRESET`, …), `HTTP_<status>`, or `error` for anything
    /// else; `None` when it succeeded.
    pub fn error_kind(&self) -> Option<String> {
        match (&self.error, self.status) {
            (Some(e), _) => {
                let code = e.split(':').next().unwrap_or_default();
                let is_code = code.len() > 1
                    && code.starts_with('E')
                    && code
                        .chars()
                        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit());
                Some(if is_code || code == "timeout" {
                    code.to_string()
                } else {
                    "error".to_string()
                })
            }
            (None, Some(s)) if s >= 400 => Some(format!("HTTP_{s}")),
            _ => None,
        }
    }
}

/// An idle connection is checked for a close by the server before reuse after this long.
const PROBE_IDLE_AFTER: Duration = Duration::from_secs(1);
/// Idle connections kept per authority.
const MAX_IDLE_PER_HOST: usize = 1024;

struct Conn {
    stream: Stream,
    buf: BytesMut,
    /// The buffer grew for a message larger than it: given back before the connection
    /// waits in the pool, where a thousand idle connections would otherwise each keep
    /// the largest response they read.
    grown: bool,
    idle_since: Instant,
    _open: OpenConnection,
}

/// How many connections the workers of one drone hold open, in use or idle.
#[derive(Debug, Default)]
pub(crate) struct OpenConnections(AtomicU64);

impl OpenConnections {
    /// Connections open now.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Counts one connection as open until dropped (with the connection).
struct OpenConnection(Arc<OpenConnections>);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0 .0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Connections opened by one worker and the drone's open ones, since the last reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ConnectionCounts {
    /// Connections this worker opened.
    pub opened: u64,
    /// Connections of the drone open now.
    pub open: u64,
    /// Most connections of the drone open at once that this worker saw.
    pub peak: u64,
}

/// TLS settings in use and their rustls configuration, built on first use.
struct TlsConfig {
    settings: TlsSettings,
    config: Option<Result<Arc<ClientConfig>, String>>,
}

/// Keep-alive connections of one worker, by pool (0: plain HTTP; n + 1: HTTPS with the
/// TLS settings n) and URL authority, and how many connections it opened.
pub(crate) struct HttpClient {
    idle: RefCell<HashMap<u32, HashMap<String, Vec<Conn>>>>,
    opened: Cell<u64>,
    tls: RefCell<Vec<TlsConfig>>,
    open: Arc<OpenConnections>,
    peak: Cell<u64>,
}

/// A response read off a connection.
struct Exchanged {
    status: u16,
    headers: ResponseHeaders,
    body: Bytes,
    begin: Duration,
    received: u64,
    transmitted: u64,
    tls_handshake: Option<Duration>,
}

enum ReadError {
    /// The server closed the connection; `early` when not one byte of the response came.
    Closed {
        early: bool,
    },
    Other(String),
}

impl HttpClient {
    /// A client whose index-0 TLS settings are `default_tls` (the campaign's `tls`).
    /// Its connections count in the drone-wide `open`.
    pub fn new(default_tls: TlsSettings, open: Arc<OpenConnections>) -> Self {
        HttpClient {
            idle: RefCell::new(HashMap::new()),
            opened: Cell::new(0),
            open,
            peak: Cell::new(0),
            tls: RefCell::new(vec![TlsConfig {
                settings: default_tls,
                config: None,
            }]),
        }
    }

    /// The index of `settings` for [`HttpRequest::tls`], added on first use.
    pub fn tls_index(&self, settings: TlsSettings) -> u32 {
        let mut tls = self.tls.borrow_mut();
        if let Some(i) = tls.iter().position(|t| t.settings == settings) {
            return i as u32;
        }
        tls.push(TlsConfig {
            settings,
            config: None,
        });
        (tls.len() - 1) as u32
    }

    fn tls_config(&self, index: u32) -> Result<(Arc<ClientConfig>, Option<String>), String> {
        let mut tls = self.tls.borrow_mut();
        let t = tls
            .get_mut(index as usize)
            .ok_or("internal: unknown TLS settings")?;
        let config = t
            .config
            .get_or_insert_with(|| t.settings.client_config())
            .clone()?;
        Ok((config, t.settings.servername.clone()))
    }

    /// Connections of the drone open now.
    pub fn open_connections(&self) -> u64 {
        self.open.get()
    }

    /// The counts since the last call; the opened count and the peak start again.
    pub fn take_connections(&self) -> ConnectionCounts {
        let open = self.open.get();
        ConnectionCounts {
            opened: self.opened.replace(0),
            open,
            peak: self.peak.replace(open).max(open),
        }
    }

    pub async fn send(&self, req: HttpRequest) -> HttpOutcome {
        let start = Instant::now();
        let deadline = start + req.timeout;
        let https = req.uri.scheme_str() == Some("https");
        let mut headers = req.headers;
        if !req.keep_alive {
            headers.push((http::header::CONNECTION, HeaderValue::from_static("close")));
        }
        let wire = request_bytes(&req.method, &req.uri, &headers, &req.body);
        let transmitted = wire.len() as u64;
        let Some(authority) = req.uri.authority().map(|a| a.as_str()) else {
            return failed(start, 0, format!("invalid url '{}': no host", req.uri));
        };
        let target = Target {
            pool: if https { req.tls + 1 } else { 0 },
            authority,
            host: req.uri.host().unwrap_or(authority),
            port: req.uri.port_u16().unwrap_or(if https { 443 } else { 80 }),
            keep_alive: req.keep_alive,
        };
        let is_head = req.method == Method::HEAD;
        let idempotent = !matches!(req.method, Method::POST | Method::PATCH);
        match tokio::time::timeout_at(
            deadline.into(),
            // Boxed apart: this future and the hop's each stay under 1 KB, where glibc
            // serves them from its per-thread cache; a single larger one took its slow
            // path (and a consolidation of its fast bins) on every call.
            Box::pin(self.exchange(
                &target,
                &wire,
                (is_head, req.response_body),
                idempotent,
                start,
                deadline,
            )),
        )
        .await
        {
            Err(_) => failed(start, transmitted, "timeout".to_string()),
            Ok(Err(e)) => failed(start, transmitted, e),
            Ok(Ok(x)) => HttpOutcome {
                status: Some(x.status),
                headers: x.headers,
                body: x.body,
                begin: x.begin,
                total: start.elapsed(),
                received: x.received,
                transmitted: x.transmitted,
                error: None,
                tls_handshake: x.tls_handshake,
            },
        }
    }

    async fn exchange(
        &self,
        target: &Target<'_>,
        wire: &[u8],
        (is_head, policy): (bool, BodyPolicy),
        idempotent: bool,
        start: Instant,
        deadline: Instant,
    ) -> Result<Exchanged, String> {
        let mut retried = false;
        loop {
            let checked_out = if target.keep_alive {
                self.checkout(target.pool, target.authority)
            } else {
                None
            };
            let (mut conn, reused, handshake) = match checked_out {
                Some(c) => (c, true, None),
                None => {
                    // Boxed: the connect and handshake state is most of this future's
                    // size, and only new connections need it.
                    let (c, h) = Box::pin(self.connect(target, deadline)).await?;
                    (c, false, h)
                }
            };
            let counts_before = conn.stream.socket_counts();
            // A reused connection the server had closed is retried once on a fresh one.
            let may_retry = reused && !retried && idempotent;
            let written = match conn.stream.write_all(wire).await {
                Ok(()) => conn.stream.flush().await,
                Err(e) => Err(e),
            };
            if let Err(e) = written {
                if may_retry {
                    retried = true;
                    continue;
                }
                return Err(io_message(&e));
            }
            match read_response(&mut conn, is_head, policy, start).await {
                Ok((mut x, keep_alive)) => {
                    x.transmitted = wire.len() as u64;
                    x.tls_handshake = handshake.map(|h| h.duration);
                    if let Some((read, written)) = conn.stream.socket_counts() {
                        // HTTPS: the bytes on the socket, handshake included.
                        let (read0, written0) = match (&handshake, counts_before) {
                            (Some(_), _) => (0, 0),
                            (None, Some(c)) => c,
                            (None, None) => (0, 0),
                        };
                        x.received = read - read0;
                        x.transmitted = written - written0;
                    }
                    if keep_alive && target.keep_alive && conn.buf.is_empty() {
                        // The head's arrival: the body follows at once, and an earlier
                        // mark only makes the pool probe the connection sooner.
                        conn.idle_since = start + x.begin;
                        if std::mem::take(&mut conn.grown) {
                            conn.buf = BytesMut::new();
                        }
                        let mut idle = self.idle.borrow_mut();
                        let pool = idle.entry(target.pool).or_default();
                        match pool.get_mut(target.authority) {
                            Some(list) if list.len() < MAX_IDLE_PER_HOST => list.push(conn),
                            Some(_) => {}
                            None => {
                                pool.insert(target.authority.to_string(), vec![conn]);
                            }
                        }
                    }
                    return Ok(x);
                }
                Err(ReadError::Closed { early: true }) if may_retry => retried = true,
                Err(ReadError::Closed { .. }) => {
                    return Err("ECONNRESET: connection closed before the message completed".into())
                }
                Err(ReadError::Other(e)) => return Err(e),
            }
        }
    }

    /// An idle connection of `pool` to `authority`, skipping those the server closed
    /// meanwhile.
    fn checkout(&self, pool: u32, authority: &str) -> Option<Conn> {
        let mut idle = self.idle.borrow_mut();
        let list = idle.get_mut(&pool)?.get_mut(authority)?;
        while let Some(conn) = list.pop() {
            if conn.idle_since.elapsed() < PROBE_IDLE_AFTER {
                return Some(conn);
            }
            let mut probe = [0u8; 1];
            match conn.stream.tcp().try_read(&mut probe) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Some(conn),
                _ => continue, // closed, or unexpected bytes: not reusable
            }
        }
        None
    }

    /// Opens a connection (and runs the TLS handshake for HTTPS pools).
    async fn connect(
        &self,
        target: &Target<'_>,
        deadline: Instant,
    ) -> Result<(Conn, Option<Handshake>), String> {
        let host = target.host.trim_start_matches('[').trim_end_matches(']');
        let tcp = TcpStream::connect((host, target.port))
            .await
            .map_err(|e| io_message(&e))?;
        let _ = tcp.set_nodelay(true);
        self.opened.set(self.opened.get() + 1);
        let now_open = self.open.0.fetch_add(1, Ordering::Relaxed) + 1;
        self.peak.set(self.peak.get().max(now_open));
        let (stream, handshake) = if target.pool == 0 {
            (Stream::Plain(tcp), None)
        } else {
            let (config, servername) = self.tls_config(target.pool - 1)?;
            let (tls, duration) = tls::handshake(
                config,
                servername.as_deref(),
                host,
                Counted::new(tcp),
                deadline,
            )
            .await?;
            (Stream::Tls(Box::new(tls)), Some(Handshake { duration }))
        };
        let conn = Conn {
            stream,
            buf: BytesMut::with_capacity(8 * 1024),
            grown: false,
            idle_since: Instant::now(),
            _open: OpenConnection(self.open.clone()),
        };
        Ok((conn, handshake))
    }
}

/// Where a call goes: its pool, authority and socket address.
struct Target<'a> {
    pool: u32,
    authority: &'a str,
    host: &'a str,
    port: u16,
    keep_alive: bool,
}

/// A TLS handshake made for a call.
#[derive(Debug, Clone, Copy)]
struct Handshake {
    duration: Duration,
}

/// Reads one response; returns it and whether the connection may be reused.
async fn read_response(
    conn: &mut Conn,
    is_head: bool,
    policy: BodyPolicy,
    start: Instant,
) -> Result<(Exchanged, bool), ReadError> {
    let mut read_total = conn.buf.len() as u64;
    let head = loop {
        match parse_head(&conn.buf, is_head).map_err(ReadError::Other)? {
            // Interim responses (100 Continue, …) come before the real one.
            Some(h) if (100..200).contains(&h.status) && h.status != 101 => conn.buf.advance(h.len),
            Some(h) => break h,
            None => {
                let early = read_total == 0;
                if read_more(conn, &mut read_total).await? == 0 {
                    return Err(ReadError::Closed { early });
                }
            }
        }
    };
    let begin = start.elapsed();
    conn.buf.advance(head.len);
    let body = read_body(conn, head.framing, policy, &mut read_total).await?;
    let received = read_total - conn.buf.len() as u64;
    let x = Exchanged {
        status: head.status,
        headers: head.headers,
        body,
        begin,
        received,
        transmitted: 0,
        tls_handshake: None,
    };
    Ok((x, head.keep_alive))
}

/// Reads a body framed by `framing`: kept up to its limit, or dropped as it comes.
async fn read_body(
    conn: &mut Conn,
    framing: Framing,
    policy: BodyPolicy,
    read_total: &mut u64,
) -> Result<Bytes, ReadError> {
    let limit = match policy {
        BodyPolicy::Keep(limit) => Some(limit),
        BodyPolicy::Discard => None,
    };
    let over = |size: u64| limit.is_some_and(|l| size > l);
    match framing {
        Framing::Empty => Ok(Bytes::new()),
        Framing::Length(n) => {
            if over(n as u64) {
                // Refused before reading it: the connection is dropped with the rest.
                return Err(ReadError::Other(too_large(n as u64, limit.unwrap_or(0))));
            }
            let mut left = n;
            while limit.is_none() && left > 0 {
                let take = left.min(conn.buf.len());
                conn.buf.advance(take);
                left -= take;
                if left > 0 && read_more(conn, read_total).await? == 0 {
                    return Err(ReadError::Closed { early: false });
                }
            }
            while conn.buf.len() < left {
                if read_more(conn, read_total).await? == 0 {
                    return Err(ReadError::Closed { early: false });
                }
            }
            Ok(conn.buf.split_to(left).freeze())
        }
        Framing::Chunked => {
            let mut body = Vec::new();
            let mut size = 0u64;
            let mut state = ChunkState::Size;
            loop {
                let before = body.len();
                let done = decode_chunks(&mut conn.buf, &mut body, &mut state)
                    .map_err(ReadError::Other)?;
                size += (body.len() - before) as u64;
                if over(size) {
                    return Err(ReadError::Other(too_large(size, limit.unwrap_or(0))));
                }
                if limit.is_none() {
                    body.clear();
                }
                if done {
                    return Ok(Bytes::from(body));
                }
                if read_more(conn, read_total).await? == 0 {
                    return Err(ReadError::Closed { early: false });
                }
            }
        }
        Framing::UntilClose => {
            let mut size = conn.buf.len() as u64;
            loop {
                if over(size) {
                    return Err(ReadError::Other(too_large(size, limit.unwrap_or(0))));
                }
                if limit.is_none() {
                    conn.buf.clear();
                }
                let n = read_more(conn, read_total).await?;
                if n == 0 {
                    return Ok(conn.buf.split().freeze());
                }
                size += n as u64;
            }
        }
    }
}

async fn read_more(conn: &mut Conn, total: &mut u64) -> Result<usize, ReadError> {
    if conn.buf.capacity() - conn.buf.len() < 4096 {
        conn.grown |= !conn.buf.is_empty();
        conn.buf.reserve(8 * 1024);
    }
    let n = conn
        .stream
        .read_buf(&mut conn.buf)
        .await
        .map_err(|e| ReadError::Other(io_message(&e)))?;
    *total += n as u64;
    Ok(n)
}

/// The outcome of a call that failed `start.elapsed()` after it started.
pub(crate) fn failed(start: Instant, transmitted: u64, error: String) -> HttpOutcome {
    let t = start.elapsed();
    HttpOutcome {
        status: None,
        headers: ResponseHeaders::default(),
        body: Bytes::new(),
        begin: t,
        total: t,
        received: 0,
        transmitted,
        error: Some(error),
        tls_handshake: None,
    }
}

/// A short, node-like description of a transport error.
pub(crate) fn io_message(e: &std::io::Error) -> String {
    use std::io::ErrorKind::*;
    match e.kind() {
        ConnectionRefused => format!("ECONNREFUSED: {e}"),
        ConnectionReset | BrokenPipe => format!("ECONNRESET: {e}"),
        TimedOut => "timeout".to_string(),
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpListener;

    /// A raw server on loopback: for each accepted connection, reads one request per
    /// canned answer and writes the answer; closes the connection after its answers.
    fn raw_server(connections: Vec<Vec<&'static str>>) -> (String, std::thread::JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let h = std::thread::spawn(move || {
            for answers in connections {
                let (mut s, _) = listener.accept().unwrap();
                for answer in answers {
                    let mut req = Vec::new();
                    let mut b = [0u8; 1024];
                    while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                        let n = s.read(&mut b).unwrap();
                        if n == 0 {
                            return;
                        }
                        req.extend_from_slice(&b[..n]);
                    }
                    s.write_all(answer.as_bytes()).unwrap();
                }
            }
        });
        (addr, h)
    }

    fn request(method: Method, addr: &str) -> HttpRequest {
        HttpRequest {
            method,
            uri: format!("http://{addr}/x").parse().unwrap(),
            headers: Vec::new(),
            body: Bytes::new(),
            timeout: Duration::from_secs(5),
            tls: 0,
            keep_alive: true,
            response_body: BodyPolicy::Keep(1 << 20),
        }
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn chunked_and_until_close_bodies() {
        let (addr, h) = raw_server(vec![
            vec!["HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n1\r\n!\r\n0\r\n\r\n"],
            vec!["HTTP/1.1 201 Created\r\nConnection: close\r\n\r\nuntil close"],
        ]);
        let client = HttpClient::new(TlsSettings::default(), Arc::default());
        block_on(async {
            let a = client.send(request(Method::GET, &addr)).await;
            assert_eq!(
                (a.status, a.error.as_deref(), &a.body[..]),
                (Some(200), None, &b"hello!"[..])
            );
            assert_eq!(a.received, 68, "every byte of the chunked response");
            // The first connection is closed by the server after one answer: the second
            // GET is retried on a fresh connection.
            let b = client.send(request(Method::GET, &addr)).await;
            assert_eq!(
                (b.status, &b.body[..]),
                (Some(201), &b"until close"[..]),
                "{:?}",
                b.error
            );
        });
        // Each connection was closed by the server and dropped before the next opened.
        assert_eq!(
            client.take_connections(),
            ConnectionCounts {
                opened: 2,
                open: 0,
                peak: 1
            }
        );
        h.join().unwrap();
    }

    #[test]
    fn keep_alive_reuses_one_connection() {
        let ok = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
        let (addr, h) = raw_server(vec![vec![ok, ok, ok]]);
        let client = HttpClient::new(TlsSettings::default(), Arc::default());
        block_on(async {
            for _ in 0..3 {
                let r = client.send(request(Method::GET, &addr)).await;
                assert_eq!((r.status, &r.body[..]), (Some(200), &b"ok"[..]));
                assert_eq!(
                    r.transmitted as usize,
                    format!("GET /x HTTP/1.1\r\nhost: {addr}\r\n\r\n").len()
                );
            }
        });
        assert_eq!(
            client.take_connections(),
            ConnectionCounts {
                opened: 1,
                open: 1,
                peak: 1
            }
        );
        drop(client);
        h.join().unwrap();
    }

    #[test]
    fn post_on_a_closed_connection_is_not_replayed() {
        let ok = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
        let (addr, h) = raw_server(vec![vec![ok]]);
        let client = HttpClient::new(TlsSettings::default(), Arc::default());
        block_on(async {
            assert_eq!(
                client.send(request(Method::GET, &addr)).await.status,
                Some(200)
            );
            let r = client.send(request(Method::POST, &addr)).await;
            let err = r.error.expect("the server closed the connection");
            assert!(err.starts_with("ECONNRESET"), "{err}");
        });
        h.join().unwrap();
    }

    #[test]
    fn a_body_past_its_limit_fails_the_call_and_closes_the_connection() {
        let huge = "HTTP/1.1 200 OK\r\nContent-Length: 4000000000\r\n\r\nxx";
        let chunked = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n8\r\n12345678\r\n8\r\n12345678\r\n0\r\n\r\n";
        let ok = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
        let (addr, h) = raw_server(vec![vec![huge], vec![chunked], vec![ok]]);
        let client = HttpClient::new(TlsSettings::default(), Arc::default());
        block_on(async {
            let mut req = request(Method::GET, &addr);
            req.response_body = BodyPolicy::Keep(1000);
            let r = client.send(req.clone()).await;
            let err = r.error.expect("4 GB is past 1000 bytes");
            assert!(
                err.contains("4000000000") && err.contains("maxResponseBytes (1000 bytes)"),
                "{err}"
            );
            // The connection is not kept: nothing of it is open any more.
            assert_eq!(client.open_connections(), 0);
            req.response_body = BodyPolicy::Keep(10);
            let r = client.send(req.clone()).await;
            let err = r.error.expect("16 chunked bytes are past 10");
            assert!(err.contains("maxResponseBytes (10 bytes)"), "{err}");
            assert_eq!(client.open_connections(), 0);
            let r = client.send(req).await;
            assert_eq!((r.status, &r.body[..]), (Some(200), &b"ok"[..]));
        });
        assert_eq!(client.take_connections().opened, 3);
        drop(client);
        h.join().unwrap();
    }

    #[test]
    fn discarded_bodies_are_counted_not_kept() {
        let length = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789";
        let chunked =
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
        let ok = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
        let (addr, h) = raw_server(vec![vec![length, chunked, ok]]);
        let client = HttpClient::new(TlsSettings::default(), Arc::default());
        block_on(async {
            let mut req = request(Method::GET, &addr);
            req.response_body = BodyPolicy::Discard;
            let a = client.send(req.clone()).await;
            assert_eq!((a.status, a.body.len()), (Some(200), 0));
            assert_eq!(a.received, length.len() as u64);
            let b = client.send(req).await;
            assert_eq!((b.status, b.body.len()), (Some(200), 0));
            assert_eq!(b.received, chunked.len() as u64);
            // The same connection served all three: each body was read to its end.
            let c = client.send(request(Method::GET, &addr)).await;
            assert_eq!(&c.body[..], b"ok");
        });
        assert_eq!(client.take_connections().opened, 1);
        drop(client);
        h.join().unwrap();
    }
}
