//! `camut.http` options in, responses out: the JS side of the HTTP client.

use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use http::{Method, Uri};
use rquickjs::{Ctx, Exception, Object, Value};

use crate::http::{HttpOutcome, HttpRequest};

/// Default `timeout` of a call, as k6 and node users expect: 60 s.
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// A parsed call: the request, its operation tag and its URL (for tags).
pub(crate) struct Call {
    pub request: HttpRequest,
    pub operation: String,
    pub url: String,
}

/// Reads `camut.http` options: a URL string, or node http.request options plus
/// `url`, `body`, `timeout` (ms) and `operation`.
pub(crate) fn parse_call<'js>(ctx: &Ctx<'js>, options: &Value<'js>) -> Result<Call, String> {
    if let Some(s) = options.as_string() {
        let url = s.to_string().map_err(|e| e.to_string())?;
        return build(
            &url,
            Method::GET,
            Vec::new(),
            Bytes::new(),
            DEFAULT_TIMEOUT,
            None,
        );
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
            let v = value_text(ctx, &v);
            let name = HeaderName::from_bytes(k.as_bytes())
                .map_err(|_| format!("camut.http: bad header name '{k}'"))?;
            let value = HeaderValue::from_str(&v)
                .map_err(|_| format!("camut.http: bad value for header '{k}'"))?;
            headers.push((name, value));
        }
    }
    let bv: Value = obj.get("body").map_err(|e| e.to_string())?;
    let body = if bv.is_undefined() || bv.is_null() {
        Bytes::new()
    } else if let Some(s) = bv.as_string() {
        Bytes::from(s.to_string().map_err(|e| e.to_string())?)
    } else {
        if !headers.iter().any(|(k, _)| k == CONTENT_TYPE) {
            headers.push((CONTENT_TYPE, HeaderValue::from_static("application/json")));
        }
        Bytes::from(value_text(ctx, &bv))
    };
    let timeout = match obj
        .get::<_, Value>("timeout")
        .map_err(|e| e.to_string())?
        .as_number()
    {
        Some(ms) if ms > 0.0 => Duration::from_secs_f64(ms / 1000.0),
        Some(_) => {
            return Err("camut.http: `timeout` must be a positive number of milliseconds".into())
        }
        None => DEFAULT_TIMEOUT,
    };
    let operation = get_str("operation")?;
    build(&url, method, headers, body, timeout, operation)
}

fn build(
    url: &str,
    method: Method,
    headers: Vec<(HeaderName, HeaderValue)>,
    body: Bytes,
    timeout: Duration,
    operation: Option<String>,
) -> Result<Call, String> {
    let uri: Uri = url
        .parse()
        .map_err(|e| format!("camut.http: bad url '{url}': {e}"))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some(other) => {
            return Err(format!(
                "camut.http: scheme '{other}' is not supported yet; use http://"
            ))
        }
        None => {
            return Err(format!(
                "camut.http: url '{url}' needs a scheme and host, e.g. http://host:port/path"
            ))
        }
    }
    if uri.host().is_none() {
        return Err(format!("camut.http: url '{url}' has no host"));
    }
    let operation = operation.unwrap_or_else(|| format!("{} {}", method, uri.path()));
    Ok(Call {
        request: HttpRequest {
            method,
            uri,
            headers,
            body,
            timeout,
        },
        operation,
        url: url.to_string(),
    })
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

/// The `response` object handed to callbacks: `{ statusCode, headers, body }`.
pub(crate) fn response_object<'js>(
    ctx: &Ctx<'js>,
    out: &HttpOutcome,
    body: &Value<'js>,
) -> rquickjs::Result<Object<'js>> {
    let r = Object::new(ctx.clone())?;
    r.set("statusCode", out.status.map(i32::from))?;
    let h = Object::new(ctx.clone())?;
    for (k, v) in &out.headers {
        h.set(k.as_str(), v.as_str())?;
    }
    r.set("headers", h)?;
    r.set("body", body.clone())?;
    Ok(r)
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
