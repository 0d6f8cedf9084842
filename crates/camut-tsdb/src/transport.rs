//! One connection to the TSDB: telnet lines or HTTP `/api/put` requests.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;

use crate::config::{Protocol, TsdbConfig};
use crate::encode;
use crate::point::Entry;

const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a batch did not go out.
pub(crate) enum SendError {
    /// The connection failed: reconnect and send the batch again.
    Io(String),
    /// The server refused the points themselves: sending again would not help.
    Rejected(String),
}

/// Where a printing connector writes its batches of telnet lines (each ends with a
/// newline): `camut run`'s stdout.
pub type LineSink = Arc<dyn Fn(&str) + Send + Sync>;

pub(crate) enum Conn {
    /// No TSDB: the telnet lines go to a sink.
    Lines(LineSink),
    Telnet {
        writer: OwnedWriteHalf,
        closed: Arc<AtomicBool>,
    },
    Http {
        stream: BufReader<TcpStream>,
        host: String,
    },
}

impl Conn {
    pub async fn connect(c: &TsdbConfig, sink: Option<&LineSink>) -> std::io::Result<Conn> {
        if let Some(sink) = sink {
            return Ok(Conn::Lines(sink.clone()));
        }
        let stream = TcpStream::connect((c.host.as_str(), c.port)).await?;
        let _ = stream.set_nodelay(true);
        Ok(match c.protocol {
            Protocol::Telnet => {
                let (read, writer) = stream.into_split();
                let closed = Arc::new(AtomicBool::new(false));
                tokio::task::spawn_local(read_answers(read, closed.clone()));
                Conn::Telnet { writer, closed }
            }
            Protocol::Http => Conn::Http {
                stream: BufReader::new(stream),
                host: c.address(),
            },
        })
    }

    pub async fn send(
        &mut self,
        batch: &[Entry],
        c: &TsdbConfig,
        base: &encode::Base,
        buf: &mut String,
    ) -> Result<(), SendError> {
        buf.clear();
        match self {
            Conn::Lines(sink) => {
                for e in batch {
                    encode::telnet(buf, e, c.precision, base);
                }
                sink(buf);
                Ok(())
            }
            Conn::Telnet { writer, closed } => {
                for e in batch {
                    encode::telnet(buf, e, c.precision, base);
                }
                if closed.load(Ordering::Relaxed) {
                    return Err(SendError::Io("the TSDB closed the connection".into()));
                }
                match tokio::time::timeout(IO_TIMEOUT, writer.write_all(buf.as_bytes())).await {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(e)) => Err(SendError::Io(e.to_string())),
                    Err(_) => Err(SendError::Io("write timed out".into())),
                }
            }
            Conn::Http { stream, host } => {
                buf.push('[');
                for e in batch {
                    encode::json(buf, e, c.precision, base);
                }
                buf.push(']');
                match tokio::time::timeout(IO_TIMEOUT, post(stream, host, buf.as_bytes())).await {
                    Ok(r) => r,
                    Err(_) => Err(SendError::Io("no answer to /api/put within 10 s".into())),
                }
            }
        }
    }
}

/// OpenTSDB answers bad telnet lines with an error line; log the first few.
async fn read_answers(read: tokio::net::tcp::OwnedReadHalf, closed: Arc<AtomicBool>) {
    let mut lines = BufReader::new(read).lines();
    let mut logged = 0u32;
    while let Ok(Some(line)) = lines.next_line().await {
        if logged < 10 {
            tracing::warn!("the TSDB answered: {line}");
            logged += 1;
        }
    }
    closed.store(true, Ordering::Relaxed);
}

async fn post(stream: &mut BufReader<TcpStream>, host: &str, body: &[u8]) -> Result<(), SendError> {
    let io = |e: std::io::Error| SendError::Io(e.to_string());
    let head = format!(
        "POST /api/put HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let w = stream.get_mut();
    w.write_all(head.as_bytes()).await.map_err(io)?;
    w.write_all(body).await.map_err(io)?;
    // Status line and headers.
    let mut head = Vec::new();
    loop {
        let n = stream.read_until(b'\n', &mut head).await.map_err(io)?;
        if n == 0 {
            return Err(SendError::Io("the TSDB closed the connection".into()));
        }
        if head.ends_with(b"\r\n\r\n") || head.ends_with(b"\n\n") {
            break;
        }
        if head.len() > 64 * 1024 {
            return Err(SendError::Io("answer headers over 64 KiB".into()));
        }
    }
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut resp = httparse::Response::new(&mut headers);
    match resp.parse(&head) {
        Ok(httparse::Status::Complete(_)) => {}
        _ => return Err(SendError::Io("the TSDB's answer is not HTTP".into())),
    }
    let status = resp.code.unwrap_or(0);
    let header = |name: &str| {
        resp.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| String::from_utf8_lossy(h.value).trim().to_ascii_lowercase())
    };
    let length: Option<usize> = header("content-length").and_then(|v| v.parse().ok());
    let chunked = header("transfer-encoding").is_some_and(|v| v.contains("chunked"));
    let mut body = Vec::new();
    if let Some(n) = length {
        body.resize(n, 0);
        stream.read_exact(&mut body).await.map_err(io)?;
    } else if chunked {
        loop {
            let mut size = String::new();
            stream.read_line(&mut size).await.map_err(io)?;
            let n = usize::from_str_radix(size.trim(), 16)
                .map_err(|_| SendError::Io("bad chunk in the TSDB's answer".into()))?;
            let mut chunk = vec![0; n + 2];
            stream.read_exact(&mut chunk).await.map_err(io)?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
    }
    let text = String::from_utf8_lossy(&body[..body.len().min(300)]).to_string();
    match status {
        200..=299 => Ok(()),
        400 => Err(SendError::Rejected(format!("HTTP 400: {text}"))),
        s => Err(SendError::Io(format!("HTTP {s}: {text}"))),
    }
}
