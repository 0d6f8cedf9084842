//! HTTP/1.1 on the wire: the request as bytes, the response head, and the body framings.

use bytes::{Buf, BytesMut};
use http::{Method, Uri};

/// Most response-head bytes accepted before giving up.
pub(crate) const MAX_HEAD: usize = 64 * 1024;
/// Most response headers accepted.
const MAX_HEADERS: usize = 100;

/// Serializes a request: request line, `Host`, the caller's headers, `Content-Length`, body.
pub(crate) fn request_bytes(
    method: &Method,
    uri: &Uri,
    headers: &[(http::HeaderName, http::HeaderValue)],
    body: &[u8],
) -> Vec<u8> {
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let mut out = Vec::with_capacity(64 + path.len() + body.len() + headers.len() * 32);
    out.extend_from_slice(method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(path.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let has = |name: &http::HeaderName| headers.iter().any(|(k, _)| k == name);
    if !has(&http::header::HOST) {
        if let Some(a) = uri.authority() {
            out.extend_from_slice(b"host: ");
            out.extend_from_slice(a.as_str().as_bytes());
            out.extend_from_slice(b"\r\n");
        }
    }
    for (k, v) in headers {
        out.extend_from_slice(k.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(v.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    let sends_body =
        !body.is_empty() || matches!(*method, Method::POST | Method::PUT | Method::PATCH);
    if sends_body && !has(&http::header::CONTENT_LENGTH) && !has(&http::header::TRANSFER_ENCODING) {
        out.extend_from_slice(format!("content-length: {}\r\n", body.len()).as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

/// How the response body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// No body (HEAD, 1xx, 204, 304).
    Empty,
    /// `Content-Length: n`.
    Length(usize),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Until the server closes the connection.
    UntilClose,
}

/// A parsed response head.
#[derive(Debug)]
pub(crate) struct Head {
    pub status: u16,
    pub headers: ResponseHeaders,
    pub framing: Framing,
    /// Whether the connection may carry another request.
    pub keep_alive: bool,
    /// Bytes the head took.
    pub len: usize,
}

/// A response's header fields in arrival order, names lowercased, kept in one buffer
/// (two allocations per response instead of two per field).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ResponseHeaders {
    text: String,
    /// Per field: where its name ends and where its value ends in `text`.
    ends: Vec<(u32, u32)>,
}

impl ResponseHeaders {
    /// Appends a field; the name is lowercased.
    pub(crate) fn push(&mut self, name: &str, value: &str) {
        self.text
            .extend(name.chars().map(|c| c.to_ascii_lowercase()));
        let name_end = self.text.len() as u32;
        self.text.push_str(value);
        self.ends.push((name_end, self.text.len() as u32));
    }

    /// The fields, as (lowercase name, value).
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        let mut start = 0usize;
        self.ends.iter().map(move |&(n, v)| {
            let (n, v) = (n as usize, v as usize);
            let field = (&self.text[start..n], &self.text[n..v]);
            start = v;
            field
        })
    }

    /// The values of the fields named `name` (lowercase).
    pub(crate) fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> {
        self.iter().filter(move |(k, _)| *k == name).map(|(_, v)| v)
    }

    /// The first value of the field named `name` (lowercase).
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.iter().find(|(k, _)| *k == name).map(|(_, v)| v)
    }
}

/// Parses a response head at the start of `buf`; `Ok(None)` when more bytes are needed.
pub(crate) fn parse_head(buf: &[u8], is_head_request: bool) -> Result<Option<Head>, String> {
    // Uninitialized: filling 100 empty headers first costs more than parsing a small head.
    let mut raw = [const { std::mem::MaybeUninit::<httparse::Header>::uninit() }; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut []);
    let parsed = httparse::ParserConfig::default()
        .parse_response_with_uninit_headers(&mut resp, buf, &mut raw);
    let len = match parsed {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => {
            return Err("response head too large".into())
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(format!("invalid HTTP response: {e}")),
    };
    let status = resp.code.unwrap_or(0);
    let http11 = resp.version == Some(1);
    let mut keep_alive = http11;
    let mut length = None;
    let mut chunked = false;
    let mut headers = ResponseHeaders {
        text: String::with_capacity(len),
        ends: Vec::with_capacity(resp.headers.len()),
    };
    for h in resp.headers.iter() {
        let value = String::from_utf8_lossy(h.value);
        headers.push(h.name, &value);
        let is = |n: &str| h.name.eq_ignore_ascii_case(n);
        if is("content-length") {
            length = Some(
                value
                    .trim()
                    .parse::<usize>()
                    .map_err(|_| format!("invalid content-length '{value}'"))?,
            )
        } else if is("transfer-encoding") {
            chunked = value.to_ascii_lowercase().contains("chunked");
        } else if is("connection") {
            let v = value.to_ascii_lowercase();
            if v.contains("close") {
                keep_alive = false;
            } else if v.contains("keep-alive") {
                keep_alive = true;
            }
        }
    }
    let framing =
        if is_head_request || (100..200).contains(&status) || status == 204 || status == 304 {
            Framing::Empty
        } else if chunked {
            Framing::Chunked
        } else if let Some(n) = length {
            Framing::Length(n)
        } else {
            keep_alive = false;
            Framing::UntilClose
        };
    Ok(Some(Head {
        status,
        headers,
        framing,
        keep_alive,
        len,
    }))
}

/// Decodes as much of a chunked body as `buf` holds, appending data to `body`.
/// Returns `Ok(true)` once the last chunk and the trailers are consumed.
pub(crate) fn decode_chunks(
    buf: &mut BytesMut,
    body: &mut Vec<u8>,
    state: &mut ChunkState,
) -> Result<bool, String> {
    loop {
        match *state {
            ChunkState::Size => {
                let Some(eol) = find_crlf(buf) else {
                    return Ok(false);
                };
                let line = std::str::from_utf8(&buf[..eol])
                    .map_err(|_| "invalid chunk size".to_string())?;
                let hex = line.split(';').next().unwrap_or("").trim();
                let size = usize::from_str_radix(hex, 16)
                    .map_err(|_| format!("invalid chunk size '{hex}'"))?;
                buf.advance(eol + 2);
                *state = if size == 0 {
                    ChunkState::Trailers
                } else {
                    ChunkState::Data(size)
                };
            }
            ChunkState::Data(left) => {
                if buf.is_empty() {
                    return Ok(false);
                }
                let n = left.min(buf.len());
                body.extend_from_slice(&buf[..n]);
                buf.advance(n);
                *state = if n == left {
                    ChunkState::DataEnd
                } else {
                    ChunkState::Data(left - n)
                };
            }
            ChunkState::DataEnd => {
                if buf.len() < 2 {
                    return Ok(false);
                }
                if &buf[..2] != b"\r\n" {
                    return Err("invalid chunk terminator".into());
                }
                buf.advance(2);
                *state = ChunkState::Size;
            }
            ChunkState::Trailers => {
                let Some(eol) = find_crlf(buf) else {
                    return Ok(false);
                };
                buf.advance(eol + 2);
                if eol == 0 {
                    return Ok(true);
                }
            }
        }
    }
}

/// Where a chunked decoder stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChunkState {
    Size,
    Data(usize),
    DataEnd,
    Trailers,
}

fn find_crlf(buf: &[u8]) -> Option<usize> {
    buf.windows(2).position(|w| w == b"\r\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_has_host_and_length() {
        let uri: Uri = "http://127.0.0.1:8080/a?b=1".parse().unwrap();
        let r = request_bytes(&Method::POST, &uri, &[], b"xy");
        assert_eq!(
            r,
            b"POST /a?b=1 HTTP/1.1\r\nhost: 127.0.0.1:8080\r\ncontent-length: 2\r\n\r\nxy"
        );
        let r = request_bytes(&Method::GET, &uri, &[], b"");
        assert_eq!(r, b"GET /a?b=1 HTTP/1.1\r\nhost: 127.0.0.1:8080\r\n\r\n");
    }

    #[test]
    fn heads_and_framings() {
        let h = parse_head(
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: b\r\n\r\nhello",
            false,
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            (h.status, h.framing, h.keep_alive),
            (200, Framing::Length(5), true)
        );
        assert_eq!(h.headers.iter().nth(1), Some(("x-a", "b")));
        assert_eq!(h.headers.get("content-length"), Some("5"));
        assert_eq!(h.headers.iter().count(), 2);
        assert_eq!(h.len, 46);
        assert!(parse_head(b"HTTP/1.1 200 OK\r\nContent-Le", false)
            .unwrap()
            .is_none());
        let h = parse_head(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n", false)
            .unwrap()
            .unwrap();
        assert_eq!((h.framing, h.keep_alive), (Framing::UntilClose, false));
        let h = parse_head(b"HTTP/1.1 204 No Content\r\n\r\n", false)
            .unwrap()
            .unwrap();
        assert_eq!(h.framing, Framing::Empty);
        let h = parse_head(b"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n", false)
            .unwrap()
            .unwrap();
        assert!(!h.keep_alive);
        assert!(parse_head(b"NOT HTTP\r\n\r\n", false).is_err());
    }

    #[test]
    fn chunked_bodies_decode_across_reads() {
        let wire = b"4\r\nWiki\r\n6;ext=1\r\npedia \r\n0\r\nTrailer: x\r\n\r\n";
        for split in 0..wire.len() {
            let mut buf = BytesMut::from(&wire[..split]);
            let mut body = Vec::new();
            let mut st = ChunkState::Size;
            let done1 = decode_chunks(&mut buf, &mut body, &mut st).unwrap();
            buf.extend_from_slice(&wire[split..]);
            let done2 = done1 || decode_chunks(&mut buf, &mut body, &mut st).unwrap();
            assert!(done2, "split {split}");
            assert_eq!(body, b"Wikipedia ", "split {split}");
            assert!(buf.is_empty());
        }
    }
}
