//! `camut.http` options in, responses out: the JS side of the HTTP client.

use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, ACCEPT_ENCODING, AUTHORIZATION, CONTENT_TYPE};
use http::{Method, Uri};
use rquickjs::{Ctx, Exception, Object, TypedArray, Value};

use crate::campaign::http_options::{response_bytes, MAX_REDIRECTS};
use crate::campaign::HttpDefaults;
use crate::http::body;
use crate::http::tls::TlsVersion;
use crate::http::{BodyPolicy, HttpClient, HttpOutcome, HttpRequest};
use crate::run::worker::MAX_TIMER_MS;

/// Default `timeout` of a call, as k6 and node users expect: 60 s.
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// A parsed call: the request, its operation tag and its URL (for tags), and what to do
/// with the response.
pub(crate) struct Call {
    pub request: HttpRequest,
    /// The `operation` option; None: method and path of each request.
    pub operation: Option<String>,
    /// The URL as given (shared with the VU's last call and the response).
    pub url: std::sync::Arc<str>,
    /// Redirects still to follow.
    pub follow_redirects: u32,
    /// `responseType: 'bytes'`: the body goes to JS as a `Uint8Array`.
    pub bytes: bool,
}

/// Per-call TLS fields (node's names, and the campaign `tls` names).
const TLS_FIELDS: &[&str] = &[
    "rejectUnauthorized",
    "insecureSkipVerify",
    "ca",
    "cert",
    "key",
    "servername",
    "minVersion",
];

/// Reads `camut.http` options: a URL string, or node http.request options plus `url`,
/// `body`, `form`, `timeout` (ms), `operation`, `followRedirects`, `compressed`,
/// `keepAlive`, `responseType` (`text`, `bytes`, `none`), `maxResponseBytes` and the
/// TLS fields.
pub(crate) fn parse_call<'js>(
    ctx: &Ctx<'js>,
    options: &Value<'js>,
    defaults: &HttpDefaults,
    client: &HttpClient,
) -> Result<Call, String> {
    let mut compressed = defaults.compressed;
    if let Some(s) = options.as_string() {
        // Borrowed from the JS string: one allocation, the Arc, per call.
        let url = s.clone().to_cstring().map_err(|e| e.to_string())?;
        let url = url.as_str();
        let mut headers = Vec::new();
        if compressed {
            headers.push((
                ACCEPT_ENCODING,
                HeaderValue::from_static(body::ACCEPT_ENCODING),
            ));
        }
        return build(
            url,
            Method::GET,
            headers,
            Bytes::new(),
            DEFAULT_TIMEOUT,
            defaults,
            0,
        )
        .map(|request| Call {
            request,
            operation: None,
            url: url.into(),
            follow_redirects: defaults.follow_redirects,
            bytes: false,
        });
    }
    let obj = options
        .as_object()
        .ok_or("camut.http: expected an options object such as { url: 'http://…', method: 'GET' } or a URL string")?;
    let get_str = |k: &str| -> Result<Option<String>, String> {
        let v: Value = obj.get(k).map_err(|e| e.to_string())?;
        if v.is_undefined() || v.is_null() {
            return Ok(None);
        }
        if let Some(n) = v.as_number() {
            return Ok(Some(if n.fract() == 0.0 {
                format!("{}", n as i64)
            } else {
                n.to_string()
            }));
        }
        v.as_string()
            .map(|s| s.to_string().map_err(|e| e.to_string()))
            .transpose()?
            .map(Some)
            .ok_or_else(|| format!("camut.http: option `{k}` must be a string"))
    };
    let get_bool = |k: &str| -> Result<Option<bool>, String> {
        let v: Value = obj.get(k).map_err(|e| e.to_string())?;
        if v.is_undefined() || v.is_null() {
            return Ok(None);
        }
        v.as_bool()
            .map(Some)
            .ok_or_else(|| format!("camut.http: option `{k}` must be true or false"))
    };
    let url = match get_str("url")? {
        Some(u) => u,
        None => {
            let protocol = get_str("protocol")?.unwrap_or_else(|| "http:".into());
            let host = get_str("hostname")?.or(get_str("host")?).ok_or(
                "camut.http: give `url`, or `hostname` (and `port`, `path`) as in node's http.request",
            )?;
            let port = get_str("port")?
                .map(|p| format!(":{p}"))
                .unwrap_or_default();
            let path = get_str("path")?.unwrap_or_else(|| "/".into());
            format!(
                "{}//{host}{port}{path}",
                protocol.trim_end_matches(':').to_owned() + ":"
            )
        }
    };
    let method = match get_str("method")? {
        None => Method::GET,
        Some(m) => Method::from_bytes(m.to_ascii_uppercase().as_bytes())
            .map_err(|_| format!("camut.http: `method` '{m}' is not an HTTP method"))?,
    };
    let mut headers = Vec::new();
    let hv: Value = obj.get("headers").map_err(|e| e.to_string())?;
    if let Some(h) = hv.as_object() {
        for entry in h.props::<String, Value>() {
            let (k, v) = entry.map_err(|e| e.to_string())?;
            let name = HeaderName::from_bytes(k.as_bytes())
                .map_err(|_| format!("camut.http: bad header name '{k}'"))?;
            // A header may have several values: `{ 'x-a': ['1', '2'] }`.
            let values: Vec<Value> = match v.as_array() {
                Some(a) => a
                    .iter::<Value>()
                    .collect::<rquickjs::Result<_>>()
                    .map_err(|e| e.to_string())?,
                None => vec![v],
            };
            for v in values {
                let value = HeaderValue::from_str(&value_text(ctx, &v))
                    .map_err(|_| format!("camut.http: bad value for header '{k}'"))?;
                headers.push((name.clone(), value));
            }
        }
    }
    let has =
        |headers: &[(HeaderName, HeaderValue)], n: &HeaderName| headers.iter().any(|(k, _)| k == n);
    if let Some(auth) = get_str("auth")? {
        if !has(&headers, &AUTHORIZATION) {
            let value = HeaderValue::from_str(&body::basic_auth(&auth))
                .map_err(|_| "camut.http: bad `auth`".to_string())?;
            headers.push((AUTHORIZATION, value));
        }
    }
    let bv: Value = obj.get("body").map_err(|e| e.to_string())?;
    let fv: Value = obj.get("form").map_err(|e| e.to_string())?;
    let body = if let Some(form) = fv.as_object() {
        let mut pairs = Vec::new();
        for entry in form.props::<String, Value>() {
            let (k, v) = entry.map_err(|e| e.to_string())?;
            pairs.push((k, value_text(ctx, &v)));
        }
        if !has(&headers, &CONTENT_TYPE) {
            headers.push((
                CONTENT_TYPE,
                HeaderValue::from_static("application/x-www-form-urlencoded"),
            ));
        }
        Bytes::from(body::form_urlencoded(&pairs))
    } else if bv.is_undefined() || bv.is_null() {
        Bytes::new()
    } else if let Some(s) = bv.as_string() {
        Bytes::from(s.to_string().map_err(|e| e.to_string())?)
    } else if let Some(bytes) = binary(&bv) {
        Bytes::from(bytes)
    } else {
        if !has(&headers, &CONTENT_TYPE) {
            headers.push((CONTENT_TYPE, HeaderValue::from_static("application/json")));
        }
        Bytes::from(value_text(ctx, &bv))
    };
    let timeout = match obj
        .get::<_, Value>("timeout")
        .map_err(|e| e.to_string())?
        .as_number()
    {
        Some(ms) if ms > 0.0 && ms <= MAX_TIMER_MS => Duration::from_secs_f64(ms / 1000.0),
        Some(ms) => {
            return Err(format!(
                "camut.http: `timeout` must be a number of milliseconds from 1 to {MAX_TIMER_MS} (24.8 days), got {ms}"
            ))
        }
        None => DEFAULT_TIMEOUT,
    };
    if let Some(c) = get_bool("compressed")? {
        compressed = c;
    }
    if compressed && !has(&headers, &ACCEPT_ENCODING) {
        headers.push((
            ACCEPT_ENCODING,
            HeaderValue::from_static(body::ACCEPT_ENCODING),
        ));
    }
    let follow_redirects = match obj
        .get::<_, Value>("followRedirects")
        .map_err(|e| e.to_string())?
    {
        v if v.is_undefined() || v.is_null() => defaults.follow_redirects,
        v => match v.as_number() {
            Some(n) if n.fract() == 0.0 && (0.0..=MAX_REDIRECTS as f64).contains(&n) => n as u32,
            _ => {
                return Err(format!(
                    "camut.http: `followRedirects` must be a whole number from 0 to {MAX_REDIRECTS}"
                ))
            }
        },
    };
    let mut response_body = defaults.response_body();
    let max: Value = obj.get("maxResponseBytes").map_err(|e| e.to_string())?;
    if !max.is_undefined() && !max.is_null() {
        let n = max.as_number().map(serde_json::Value::from);
        let limit = n
            .as_ref()
            .ok_or_else(|| "must be a number".to_string())
            .and_then(response_bytes)
            .map_err(|e| format!("camut.http: `maxResponseBytes` {e}"))?;
        response_body = BodyPolicy::Keep(limit);
    }
    let bytes = match get_str("responseType")?.as_deref() {
        None | Some("text") => false,
        Some("bytes") | Some("arraybuffer") => true,
        Some("none") => {
            response_body = BodyPolicy::Discard;
            false
        }
        Some(other) => {
            return Err(format!(
                "camut.http: `responseType` '{other}' is not 'text', 'bytes' or 'none'"
            ))
        }
    };
    let mut tls = 0;
    let mut own_tls = None;
    for field in TLS_FIELDS {
        let v: Value = obj.get(*field).map_err(|e| e.to_string())?;
        if v.is_undefined() {
            continue;
        }
        let s = own_tls.get_or_insert_with(|| defaults.tls.clone());
        match *field {
            "rejectUnauthorized" => s.insecure_skip_verify = !get_bool(field)?.unwrap_or(true),
            "insecureSkipVerify" => s.insecure_skip_verify = get_bool(field)?.unwrap_or(false),
            "ca" => s.ca = get_str(field)?,
            "cert" => s.cert = get_str(field)?,
            "key" => s.key = get_str(field)?,
            "servername" => s.servername = get_str(field)?,
            _ => {
                if let Some(v) = get_str(field)? {
                    s.min_version =
                        TlsVersion::parse(&v).map_err(|e| format!("camut.http: {e}"))?;
                }
            }
        }
    }
    if let Some(s) = own_tls {
        tls = client.tls_index(s);
    }
    let mut request = build(&url, method, headers, body, timeout, defaults, tls)?;
    if let Some(k) = get_bool("keepAlive")? {
        request.keep_alive = k;
    }
    request.response_body = response_body;
    Ok(Call {
        request,
        operation: get_str("operation")?,
        url: url.into(),
        follow_redirects,
        bytes,
    })
}

/// The bytes of an `ArrayBuffer` or a typed array (a `Uint8Array`, …).
fn binary(v: &Value<'_>) -> Option<Vec<u8>> {
    let obj = v.as_object()?;
    if let Some(ab) = obj.as_array_buffer() {
        // SAFETY: the bytes are copied before any JavaScript runs again.
        return unsafe { ab.as_bytes() }.map(<[u8]>::to_vec);
    }
    if let Ok(t) = TypedArray::<u8>::from_object(obj.clone()) {
        // SAFETY: as above.
        return unsafe { t.as_bytes() }.map(<[u8]>::to_vec);
    }
    let buffer: Value = obj.get("buffer").ok()?;
    let ab = buffer.as_object()?.as_array_buffer()?;
    let offset: usize = obj.get("byteOffset").ok()?;
    let len: usize = obj.get("byteLength").ok()?;
    // SAFETY: as above.
    let all = unsafe { ab.as_bytes() }?;
    all.get(offset..offset + len).map(<[u8]>::to_vec)
}

/// Builds the request of a URL, checking its scheme and host.
pub(crate) fn build(
    url: &str,
    method: Method,
    headers: Vec<(HeaderName, HeaderValue)>,
    body: Bytes,
    timeout: Duration,
    defaults: &HttpDefaults,
    tls: u32,
) -> Result<HttpRequest, String> {
    let uri = parse_uri(url)?;
    match uri.scheme_str() {
        Some("http") | Some("https") => {}
        Some(other) => {
            return Err(format!(
                "camut.http: scheme '{other}' is not supported; use http:// or https://"
            ))
        }
        None => {
            return Err(format!(
                "camut.http: url '{url}' needs a scheme and host, e.g. https://host:port/path"
            ))
        }
    }
    if uri.host().is_none() {
        return Err(format!("camut.http: url '{url}' has no host"));
    }
    Ok(HttpRequest {
        method,
        uri,
        headers,
        body,
        timeout,
        tls,
        keep_alive: defaults.keep_alive,
        response_body: defaults.response_body(),
    })
}

/// URLs longer than this are parsed on every call, not kept in [`URIS`].
const CACHED_URL_MAX: usize = 256;
/// Most URLs kept in [`URIS`]; it is emptied when full.
const CACHED_URLS: usize = 1024;

thread_local! {
    /// The URLs a worker thread parsed lately: a load test calls the same few URLs
    /// over and over, and a parsed `Uri` clones by reference counts.
    static URIS: std::cell::RefCell<rustc_hash::FxHashMap<Box<str>, Uri>> =
        Default::default();
}

/// `url` parsed, from the thread's cache when it was parsed before.
fn parse_uri(url: &str) -> Result<Uri, String> {
    let cacheable = url.len() <= CACHED_URL_MAX;
    if cacheable {
        if let Some(uri) = URIS.with(|c| c.borrow().get(url).cloned()) {
            return Ok(uri);
        }
    }
    let uri: Uri = url
        .parse()
        .map_err(|e| format!("camut.http: bad url '{url}': {e}"))?;
    if cacheable {
        URIS.with(|c| {
            let mut c = c.borrow_mut();
            if c.len() >= CACHED_URLS {
                c.clear();
            }
            c.insert(url.into(), uri.clone());
        });
    }
    Ok(uri)
}

/// A value as text: strings as they are, anything else as JSON.
pub(crate) fn value_text<'js>(ctx: &Ctx<'js>, v: &Value<'js>) -> String {
    if let Some(s) = v.as_string() {
        return s.to_string().unwrap_or_default();
    }
    if v.is_undefined() {
        return "undefined".into();
    }
    if v.is_function() {
        return "[function]".into();
    }
    ctx.json_stringify(v.clone())
        .ok()
        .flatten()
        .and_then(|s| s.to_string().ok())
        .unwrap_or_else(|| format!("[{}]", v.type_name()))
}

/// The error handed to callbacks (or the rejection), or None for a success.
pub(crate) fn error_value<'js>(
    ctx: &Ctx<'js>,
    out: &HttpOutcome,
    response: &Object<'js>,
) -> rquickjs::Result<Option<Value<'js>>> {
    let message = match (&out.error, out.status) {
        (Some(e), _) => e.clone(),
        (None, Some(s)) if s >= 400 => format!("HTTP {s}"),
        _ => return Ok(None),
    };
    let e = Exception::from_message(ctx.clone(), &message)?;
    e.as_object().set("response", response.clone())?;
    if let Some(s) = out.status {
        e.as_object().set("statusCode", s as i32)?;
    }
    Ok(Some(e.into_value()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cached() -> usize {
        URIS.with(|c| c.borrow().len())
    }

    #[test]
    fn parsed_urls_are_kept_up_to_the_bound() {
        let a = parse_uri("http://127.0.0.1:1/a?x=1").unwrap();
        assert_eq!(a.path(), "/a");
        let before = cached();
        assert_eq!(parse_uri("http://127.0.0.1:1/a?x=1").unwrap(), a);
        assert_eq!(cached(), before, "a second parse of a URL is a cache hit");
        let long = format!("http://127.0.0.1:1/{}", "p".repeat(CACHED_URL_MAX));
        assert!(parse_uri(&long).is_ok());
        assert_eq!(
            cached(),
            before,
            "URLs over {CACHED_URL_MAX} bytes are not kept"
        );
        for i in 0..CACHED_URLS * 2 + 7 {
            parse_uri(&format!("http://127.0.0.1:1/{i}")).unwrap();
            assert!(cached() <= CACHED_URLS);
        }
        assert!(parse_uri("http://[::1").is_err());
        assert!(parse_uri("http://[::1").unwrap_err().contains("bad url"));
    }
}
