//! The HTTP/1.1 client behind `camut.http`: keep-alive connections pooled per worker
//! thread, measuring each call.
//!
//! It is a small client on tokio and httparse (hyper's parser) rather than hyper's own
//! client: everything happens inside the calling task, with no connection task, channel
//! or shared pool in between — that machinery cost more CPU per request than the rest
//! of the engine (see docs/PERFORMANCE.md). The built-in target still serves with hyper.

mod wire;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use http::header::{HeaderName, HeaderValue};
use http::{Method, Uri};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use wire::{decode_chunks, parse_head, request_bytes, ChunkState, Framing};

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
    /// Bytes received on the wire for this response.
    pub received: u64,
    /// Bytes sent on the wire for this request.
    pub transmitted: u64,
    /// Transport error or timeout; statuses ≥ 400 are judged by the caller.
    pub error: Option<String>,
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
    stream: TcpStream,
    buf: BytesMut,
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

/// Keep-alive connections of one worker, by URL authority, and how many it opened.
pub(crate) struct HttpClient {
    idle: RefCell<HashMap<String, Vec<Conn>>>,
    opened: Cell<u64>,
    open: Arc<OpenConnections>,
    peak: Cell<u64>,
}

/// A response read off a connection.
struct Exchanged {
    status: u16,
    headers: Vec<(String, String)>,
    body: Bytes,
    begin: Duration,
    received: u64,
}

enum ReadError {
    /// The server closed the connection; `early` when not one byte of the response came.
    Closed {
        early: bool,
    },
    Other(String),
}

impl HttpClient {
    /// A client whose connections count in the drone-wide `open`.
    pub fn new(open: Arc<OpenConnections>) -> Self {
        HttpClient {
            idle: RefCell::new(HashMap::new()),
            opened: Cell::new(0),
            open,
            peak: Cell::new(0),
        }
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
        let wire = request_bytes(&req.method, &req.uri, &req.headers, &req.body);
        let transmitted = wire.len() as u64;
        let Some(key) = req.uri.authority().map(|a| a.as_str()) else {
            return failed(start, 0, format!("invalid url '{}': no host", req.uri));
        };
        let is_head = req.method == Method::HEAD;
        let idempotent = !matches!(req.method, Method::POST | Method::PATCH);
        match tokio::time::timeout(
            req.timeout,
            self.exchange(key, &wire, is_head, idempotent, start),
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
                transmitted,
                error: None,
            },
        }
    }

    async fn exchange(
        &self,
        key: &str,
        wire: &[u8],
        is_head: bool,
        idempotent: bool,
        start: Instant,
    ) -> Result<Exchanged, String> {
        let mut retried = false;
        loop {
            let (mut conn, reused) = match self.checkout(key) {
                Some(c) => (c, true),
                None => (self.connect(key).await?, false),
            };
            // A reused connection the server had closed is retried once on a fresh one.
            let may_retry = reused && !retried && idempotent;
            if let Err(e) = conn.stream.write_all(wire).await {
                if may_retry {
                    retried = true;
                    continue;
                }
                return Err(io_message(&e));
            }
            match read_response(&mut conn, is_head, start).await {
                Ok((x, keep_alive)) => {
                    if keep_alive && conn.buf.is_empty() {
                        conn.idle_since = Instant::now();
                        let mut idle = self.idle.borrow_mut();
                        match idle.get_mut(key) {
                            Some(list) if list.len() < MAX_IDLE_PER_HOST => list.push(conn),
                            Some(_) => {}
                            None => {
                                idle.insert(key.to_string(), vec![conn]);
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

    /// An idle connection to `key`, skipping those the server closed meanwhile.
    fn checkout(&self, key: &str) -> Option<Conn> {
        let mut idle = self.idle.borrow_mut();
        let list = idle.get_mut(key)?;
        while let Some(conn) = list.pop() {
            if conn.idle_since.elapsed() < PROBE_IDLE_AFTER {
                return Some(conn);
            }
            let mut probe = [0u8; 1];
            match conn.stream.try_read(&mut probe) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Some(conn),
                _ => continue, // closed, or unexpected bytes: not reusable
            }
        }
        None
    }

    async fn connect(&self, authority: &str) -> Result<Conn, String> {
        let stream = match authority.rsplit_once(':') {
            Some((_, port)) if !port.contains(']') => TcpStream::connect(authority).await,
            _ => TcpStream::connect(format!("{authority}:80")).await,
        }
        .map_err(|e| io_message(&e))?;
        let _ = stream.set_nodelay(true);
        self.opened.set(self.opened.get() + 1);
        let now_open = self.open.0.fetch_add(1, Ordering::Relaxed) + 1;
        self.peak.set(self.peak.get().max(now_open));
        Ok(Conn {
            stream,
            buf: BytesMut::with_capacity(8 * 1024),
            idle_since: Instant::now(),
            _open: OpenConnection(self.open.clone()),
        })
    }
}

/// Reads one response; returns it and whether the connection may be reused.
async fn read_response(
    conn: &mut Conn,
    is_head: bool,
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
    let body = match head.framing {
        Framing::Empty => Bytes::new(),
        Framing::Length(n) => {
            while conn.buf.len() < n {
                if read_more(conn, &mut read_total).await? == 0 {
                    return Err(ReadError::Closed { early: false });
                }
            }
            conn.buf.split_to(n).freeze()
        }
        Framing::Chunked => {
            let mut body = Vec::new();
            let mut state = ChunkState::Size;
            while !decode_chunks(&mut conn.buf, &mut body, &mut state).map_err(ReadError::Other)? {
                if read_more(conn, &mut read_total).await? == 0 {
                    return Err(ReadError::Closed { early: false });
                }
            }
            Bytes::from(body)
        }
        Framing::UntilClose => {
            while read_more(conn, &mut read_total).await? > 0 {}
            conn.buf.split().freeze()
        }
    };
    let received = read_total - conn.buf.len() as u64;
    let x = Exchanged {
        status: head.status,
        headers: head.headers,
        body,
        begin,
        received,
    };
    Ok((x, head.keep_alive))
}

async fn read_more(conn: &mut Conn, total: &mut u64) -> Result<usize, ReadError> {
    if conn.buf.capacity() - conn.buf.len() < 4096 {
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

/// A short, node-like description of a transport error.
fn io_message(e: &std::io::Error) -> String {
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
        let client = HttpClient::new(Arc::default());
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
        let client = HttpClient::new(Arc::default());
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
        let client = HttpClient::new(Arc::default());
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
}
