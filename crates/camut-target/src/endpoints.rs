//! The target's test endpoints, for cookies, sessions, redirects, compression, Basic
//! auth and bodies:
//!
//! | path | answer |
//! |---|---|
//! | `/cookies/set?k=v&…` | `Set-Cookie: k=v; Path=/` for each pair |
//! | `/cookies/raw?c=SET-COOKIE&…` | each `c` (URL-encoded) as a `Set-Cookie` header |
//! | `/cookies` | the request's `Cookie` header as the body |
//! | `POST /login` (form `user`, `password`) | password `secret`: 200 and a new session cookie `sid`; else 401 |
//! | `/session` | 200 with a session cookie given by `/login`, else 401 |
//! | `/redirect/N?status=S` | `N > 0`: status S (302) to `/redirect/N-1`; `N = 0`: 200 |
//! | `/gzip?bytes=N` | N bytes of text, gzip-encoded (`x-uncompressed-length: N`) |
//! | `/basic-auth/USER/PASS` | 200 with matching Basic credentials, else 401 |
//! | `/echo` | the request body, with its method in `x-method` and type in `content-type` |
//! | `/headers` | the request headers as JSON, each name with the list of its values |
//! | `/site/…` | an HTML site with a login form, a CSRF token and a session: see [`crate::site`] |

use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};

/// Largest gzip body answered.
const MAX_GZIP: usize = 16 << 20;

/// Requests served per test endpoint path, and the sessions given out.
#[derive(Default)]
pub struct PathCounts {
    counts: Mutex<BTreeMap<String, u64>>,
    sessions: Mutex<HashSet<String>>,
    next_session: AtomicU64,
    site: crate::site::SiteState,
}

impl PathCounts {
    /// Counts one request to `path`.
    pub fn count(&self, path: &str) {
        let mut c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        *c.entry(path.to_string()).or_default() += 1;
    }

    /// Requests counted for `path`.
    pub fn get(&self, path: &str) -> u64 {
        let c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        c.get(path).copied().unwrap_or(0)
    }

    /// The counts as a JSON object.
    pub fn json(&self) -> String {
        let c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let fields: Vec<String> = c
            .iter()
            .map(|(k, v)| format!("{}: {v}", json_string(k)))
            .collect();
        format!("{{{}}}", fields.join(", "))
    }
}

/// Whether `path` is one of the test endpoints.
pub fn is_endpoint(path: &str) -> bool {
    path == "/cookies"
        || path.starts_with("/cookies/")
        || path == "/login"
        || path == "/session"
        || path.starts_with("/redirect/")
        || path == "/gzip"
        || path.starts_with("/basic-auth/")
        || path == "/echo"
        || path == "/headers"
        || crate::site::is_site(path)
}

/// Answers a test endpoint.
pub async fn handle(req: Request<Incoming>, state: &PathCounts) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let path = parts.uri.path().to_string();
    let query = query_pairs(parts.uri.query().unwrap_or(""));
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let text = |status: StatusCode, body: String| {
        Response::builder()
            .status(status)
            .header("content-type", "text/plain")
            .body(Full::new(Bytes::from(body)))
            .expect("response parts are valid")
    };
    if crate::site::is_site(&path) {
        let form = query_pairs(&String::from_utf8_lossy(&body));
        return state
            .site
            .handle(&parts.method, &path, &header("cookie"), &form, state);
    }
    if path == "/cookies" {
        return text(StatusCode::OK, header("cookie"));
    }
    if path == "/cookies/set" || path == "/cookies/raw" {
        let mut r = Response::builder().header("content-type", "text/plain");
        for (k, v) in &query {
            let cookie = if path == "/cookies/set" {
                format!("{k}={v}; Path=/")
            } else if k == "c" {
                v.clone()
            } else {
                continue;
            };
            r = r.header("set-cookie", cookie);
        }
        return r
            .body(Full::new(Bytes::from_static(b"cookies set\n")))
            .unwrap_or_else(|_| text(StatusCode::BAD_REQUEST, "bad cookie\n".into()));
    }
    if path == "/login" {
        let form = query_pairs(&String::from_utf8_lossy(&body));
        let password = form.iter().find(|(k, _)| k == "password").map(|(_, v)| v);
        if parts.method != hyper::Method::POST || password.map(String::as_str) != Some("secret") {
            return text(StatusCode::UNAUTHORIZED, "bad credentials\n".into());
        }
        let sid = format!(
            "s{}",
            state.next_session.fetch_add(1, Ordering::Relaxed) + 1
        );
        state
            .sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(sid.clone());
        return Response::builder()
            .header("set-cookie", format!("sid={sid}; Path=/; HttpOnly"))
            .body(Full::new(Bytes::from(format!("welcome {sid}\n"))))
            .expect("response parts are valid");
    }
    if path == "/session" {
        let cookie = header("cookie");
        let sid = cookie
            .split(';')
            .filter_map(|c| c.trim().strip_prefix("sid="))
            .next()
            .unwrap_or("");
        let known = state
            .sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(sid);
        return if known {
            text(StatusCode::OK, format!("session {sid}\n"))
        } else {
            text(StatusCode::UNAUTHORIZED, "no session\n".into())
        };
    }
    if let Some(n) = path.strip_prefix("/redirect/") {
        let n: u32 = n.parse().unwrap_or(0);
        if n == 0 {
            return text(StatusCode::OK, "redirects done\n".into());
        }
        let status = query
            .iter()
            .find(|(k, _)| k == "status")
            .and_then(|(_, v)| v.parse::<u16>().ok())
            .and_then(|s| StatusCode::from_u16(s).ok())
            .unwrap_or(StatusCode::FOUND);
        let q = parts
            .uri
            .query()
            .map(|q| format!("?{q}"))
            .unwrap_or_default();
        return Response::builder()
            .status(status)
            .header("location", format!("/redirect/{}{q}", n - 1))
            .body(Full::new(Bytes::new()))
            .expect("response parts are valid");
    }
    if path == "/gzip" {
        let n = query
            .iter()
            .find(|(k, _)| k == "bytes")
            .and_then(|(_, v)| v.parse::<usize>().ok())
            .unwrap_or(1000)
            .min(MAX_GZIP);
        let plain: Vec<u8> = (0..n).map(|i| b"camut gzip body\n"[i % 16]).collect();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        let _ = gz.write_all(&plain);
        let gz = gz.finish().unwrap_or_default();
        return Response::builder()
            .header("content-type", "text/plain")
            .header("content-encoding", "gzip")
            .header("x-uncompressed-length", n.to_string())
            .body(Full::new(Bytes::from(gz)))
            .expect("response parts are valid");
    }
    if let Some(creds) = path.strip_prefix("/basic-auth/") {
        let want = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(creds.replacen('/', ":", 1))
        );
        return if header("authorization") == want {
            text(StatusCode::OK, "authenticated\n".into())
        } else {
            Response::builder()
                .status(StatusCode::UNAUTHORIZED)
                .header("www-authenticate", "Basic realm=\"camut\"")
                .body(Full::new(Bytes::from_static(b"unauthorized\n")))
                .expect("response parts are valid")
        };
    }
    if path == "/headers" {
        let mut all: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for (k, v) in &parts.headers {
            all.entry(k.as_str())
                .or_default()
                .push(json_string(v.to_str().unwrap_or("")));
        }
        let fields: Vec<String> = all
            .iter()
            .map(|(k, v)| format!("{}: [{}]", json_string(k), v.join(", ")))
            .collect();
        return Response::builder()
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(format!("{{{}}}", fields.join(", ")))))
            .expect("response parts are valid");
    }
    // /echo
    let content_type = header("content-type");
    Response::builder()
        .header("x-method", parts.method.as_str())
        .header(
            "content-type",
            if content_type.is_empty() {
                "application/octet-stream".to_string()
            } else {
                content_type
            },
        )
        .body(Full::new(body))
        .unwrap_or_else(|_| text(StatusCode::BAD_REQUEST, "bad request\n".into()))
}

/// `a=1&b=x%20y` as decoded pairs (`+` is a space).
fn query_pairs(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => match u8::from_str_radix(&s[i + 1..i + 3], 16) {
                Ok(v) => {
                    out.push(v);
                    i += 2;
                }
                Err(_) => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn json_string(s: &str) -> String {
    let mut o = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => o.push_str(&format!("\\u{:04x}", c as u32)),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_decode() {
        assert_eq!(
            query_pairs("a=1&c=sid%3D2%3B%20Path%3D%2F&d=x+y&e=%zz"),
            vec![
                ("a".into(), "1".into()),
                ("c".into(), "sid=2; Path=/".into()),
                ("d".into(), "x y".into()),
                ("e".into(), "%zz".into())
            ]
        );
    }
}
