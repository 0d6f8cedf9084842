//! `camut.http` calls of a worker's VUs: issuing them, keeping each VU's cookies,
//! following redirects (each hop measured as its own request), aborting, and handing
//! the final response to the callback or promise.

use std::time::{Instant, SystemTime};

use bytes::Bytes;
use camut_stats::CallKey;
use http::header::{HeaderValue, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, COOKIE};
use http::{Method, Uri};
use rquickjs::{Ctx, Function, Object, Persistent, TypedArray, Value};

use super::vu::LastCall;
use super::worker::Worker;
use super::CallPoint;
use crate::http::body;
use crate::http::cookies::{Cookie, CookieJar, Site};
use crate::http::{HttpOutcome, HttpRequest};
use crate::js::call_objects;
use crate::js::http::{error_value, parse_call};
use crate::js::scope::SharedScope;
use crate::js::ScriptError;

/// Where a reply to an HTTP call goes.
pub(crate) enum Reply {
    Callback(Persistent<Function<'static>>),
    Promise {
        resolve: Persistent<Function<'static>>,
        reject: Persistent<Function<'static>>,
    },
}

/// A call under way: everything needed to follow a redirect, record a hop, abort, and
/// answer the test.
pub(crate) struct PendingCall {
    slot: u32,
    seq: u64,
    /// Open model: how late the iteration started (added to the first hop's times).
    delay_us: u64,
    operation: Option<String>,
    /// The current hop's request, kept only while redirects may still be followed.
    redirect_base: Option<HttpRequest>,
    redirects_left: u32,
    url: std::sync::Arc<str>,
    /// The current hop's URL and operation tag.
    hop_uri: Uri,
    hop_operation: String,
    bytes: bool,
    /// Largest decoded body kept (`maxResponseBytes`).
    limit: u64,
    reply: Reply,
    hop_started: Instant,
    abort: Option<futures_util::future::AbortHandle>,
}

/// The calls of one worker under way, by call id (a counter: no need for SipHash).
pub(crate) type PendingCalls = rustc_hash::FxHashMap<u64, PendingCall>;

impl Worker {
    /// `camut.http(options, cb)`: starts the call; returns the request object (callback
    /// form) or a promise, either with `callId` and `abort()`.
    pub(crate) fn http_call<'js>(
        &self,
        ctx: &Ctx<'js>,
        slot: u32,
        options: Value<'js>,
        cb: Option<Value<'js>>,
    ) -> rquickjs::Result<Value<'js>> {
        let defaults = &self.shared.campaign.options.http;
        let call = parse_call(ctx, &options, defaults, &self.http)
            .map_err(|m| rquickjs::Exception::throw_type(ctx, &m))?;
        let call_id = self.next_call_id.get() + 1;
        let step = self.shared.threads as u64;
        self.next_call_id.set(self.next_call_id.get() + step);
        let (reply, handle) = match cb.filter(|v| !v.is_undefined() && !v.is_null()) {
            Some(f) => {
                let f = f.into_function().ok_or_else(|| {
                    rquickjs::Exception::throw_type(
                        ctx,
                        "camut.http: the callback must be a function",
                    )
                })?;
                let handle = self.with_shared_scope(ctx, |s| {
                    call_objects::request_handle(s.request_proto.clone().restore(ctx)?, call_id)
                })?;
                (Reply::Callback(Persistent::save(ctx, f)), handle)
            }
            None => {
                let (promise, resolve, reject) = ctx.promise()?;
                let handle = promise
                    .into_value()
                    .into_object()
                    .expect("a promise is an object");
                handle.set("callId", call_id as f64)?;
                if let Some(abort) = self.abort_function(ctx) {
                    handle.set("abort", abort)?;
                }
                (
                    Reply::Promise {
                        resolve: Persistent::save(ctx, resolve),
                        reject: Persistent::save(ctx, reject),
                    },
                    handle,
                )
            }
        };
        let (seq, delay_us) = {
            let mut vus = self.vus.borrow_mut();
            let vu = &mut vus[slot as usize];
            vu.last_call = Some(LastCall {
                url: call.url.clone(),
                failed: false,
                call_id,
            });
            vu.open.map_or((vu.seq, 0), |o| (o.seq, o.start_delay_us))
        };
        self.inflight.set(self.inflight.get() + 1);
        let pending = PendingCall {
            slot,
            seq,
            delay_us,
            operation: call.operation,
            redirect_base: None,
            redirects_left: call.follow_redirects,
            url: call.url,
            hop_uri: Uri::default(),
            hop_operation: String::new(),
            bytes: call.bytes,
            limit: match call.request.response_body {
                crate::http::BodyPolicy::Keep(limit) => limit,
                crate::http::BodyPolicy::Discard => 0,
            },
            reply,
            hop_started: Instant::now(),
            abort: None,
        };
        self.calls.borrow_mut().insert(call_id, pending);
        self.send_hop(call_id, call.request);
        Ok(handle.into_value())
    }

    fn abort_function<'js>(&self, ctx: &Ctx<'js>) -> Option<Function<'js>> {
        let scope = self.shared_scope.borrow();
        scope.as_ref()?.abort.clone().restore(ctx).ok()
    }

    /// `f` of the worker's shared scope (made when the first VU was), or an error once
    /// the worker is shutting down.
    fn with_shared_scope<'js, T>(
        &self,
        ctx: &Ctx<'js>,
        f: impl FnOnce(&SharedScope) -> rquickjs::Result<T>,
    ) -> rquickjs::Result<T> {
        let scope = self.shared_scope.borrow();
        match scope.as_ref() {
            Some(scope) => f(scope),
            None => Err(rquickjs::Exception::throw_internal(
                ctx,
                "camut.http: the worker is shutting down",
            )),
        }
    }

    /// Sends one hop of call `call_id` on a task of the worker.
    fn send_hop(&self, call_id: u64, mut request: HttpRequest) {
        let Some(me) = self.weak().upgrade() else {
            return;
        };
        let mut calls = self.calls.borrow_mut();
        let Some(pending) = calls.get_mut(&call_id) else {
            return;
        };
        if pending.redirects_left > 0 {
            pending.redirect_base = Some(request.clone());
        }
        pending.hop_operation = match &pending.operation {
            Some(op) => op.clone(),
            None => {
                let (method, path) = (request.method.as_str(), request.uri.path());
                let mut op = String::with_capacity(method.len() + 1 + path.len());
                op.push_str(method);
                op.push(' ');
                op.push_str(path);
                op
            }
        };
        pending.hop_uri = request.uri.clone();
        if self.shared.campaign.options.http.cookies {
            let mut vus = self.vus.borrow_mut();
            if let Some(jar) = vus[pending.slot as usize].jar.as_mut() {
                add_cookies(jar, &mut request);
            }
        }
        let hop = Box::pin(async move {
            let outcome = me.http.send(request).await;
            (call_id, outcome)
        });
        pending.abort = Some(self.hops.push(hop));
    }

    /// A hop ended: cookies kept, the hop recorded, then a redirect followed or the
    /// response handed over.
    pub(super) fn hop_done(&self, call_id: u64, out: HttpOutcome) {
        let Some(mut pending) = self.calls.borrow_mut().remove(&call_id) else {
            return; // aborted meanwhile
        };
        if self.shared.campaign.options.http.cookies {
            self.store_cookies(pending.slot, &pending.hop_uri, &out);
        }
        self.record_hop(&mut pending, call_id, &out);
        pending.delay_us = 0;
        if let Some(next) = redirect(&mut pending, &out) {
            pending.url = next.uri.to_string().into();
            if let Some(l) = self.vus.borrow_mut()[pending.slot as usize]
                .last_call
                .as_mut()
                .filter(|l| l.call_id == call_id)
            {
                l.url = pending.url.clone();
            }
            pending.hop_started = Instant::now();
            self.calls.borrow_mut().insert(call_id, pending);
            self.send_hop(call_id, next);
            return;
        }
        self.inflight.set(self.inflight.get() - 1);
        self.deliver(pending, out);
    }

    /// `request.abort()`: the call ends at once with the error `aborted` (counted).
    pub(crate) fn http_abort(&self, call_id: u64) {
        let Some(mut pending) = self.calls.borrow_mut().remove(&call_id) else {
            return; // already answered
        };
        if let Some(a) = &pending.abort {
            a.abort();
        }
        let out = crate::http::failed(pending.hop_started, 0, "aborted".into());
        self.record_hop(&mut pending, call_id, &out);
        let Some(me) = self.weak().upgrade() else {
            return;
        };
        // Answered from a task of its own: abort() may be called from the callback's JS.
        tokio::task::spawn_local(async move {
            me.inflight.set(me.inflight.get() - 1);
            me.deliver(pending, out);
            me.wake.notify_one();
        });
    }

    fn store_cookies(&self, slot: u32, uri: &Uri, out: &HttpOutcome) {
        let mut set_cookies = out.headers.get_all("set-cookie").peekable();
        if set_cookies.peek().is_none() {
            return;
        }
        let mut vus = self.vus.borrow_mut();
        let jar = vus[slot as usize].jar.get_or_insert_with(Default::default);
        let host = uri.host().unwrap_or("").to_ascii_lowercase();
        let now = SystemTime::now();
        for v in set_cookies {
            jar.store(site(uri, &host), v, now);
        }
    }

    /// The operation a call is counted under: its own while the drone has seen fewer
    /// than `maxOperations`, else the overflow operation (with one warning per drone).
    fn admit_operation(&self, operation: String) -> String {
        // An operation once admitted stays admitted: the worker's last one skips the
        // drone-wide lock (a test mostly repeats its operations).
        if self.last_admitted.borrow().as_deref() == Some(operation.as_str()) {
            return operation;
        }
        let mut cap = self
            .shared
            .operations
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let admitted = cap.admit(&operation);
        if admitted == operation {
            drop(cap);
            *self.last_admitted.borrow_mut() = Some(operation.clone());
            return operation;
        }
        if cap.overflowed() == 1 {
            let warning = cap.warning();
            drop(cap);
            tracing::warn!("{warning}");
            self.shared
                .observer
                .console(0, crate::run::ConsoleLevel::Warn, &warning);
        }
        camut_stats::OVERFLOW_OPERATION.to_string()
    }

    /// Records one hop (a request and its response, or its error).
    fn record_hop(&self, pending: &mut PendingCall, call_id: u64, out: &HttpOutcome) {
        // The next hop, if any, names its own operation.
        let operation = std::mem::take(&mut pending.hop_operation);
        let failed = out.failed();
        let delay_us = pending.delay_us;
        if self.shared.config.call_points {
            self.call_point(pending.slot, call_id, &operation, delay_us, out);
        }
        let operation = self.admit_operation(operation);
        let mut stats = self.stats.borrow_mut();
        let key = CallKey {
            operation,
            status_class: out.status.map_or(0, |s| s / 100 * 100),
        };
        let c = stats.call(&key);
        c.requests += 1;
        let service = (out.total.as_micros() as u64).max(1);
        let _ = c.response_time.record(service + delay_us);
        let _ = c.service_time.record(service);
        let _ = c
            .response_begin_time
            .record((out.begin.as_micros() as u64).max(1) + delay_us);
        let _ = c.received.record(out.received.max(1));
        let _ = c.transmitted.record(out.transmitted.max(1));
        if let Some(h) = out.tls_handshake {
            let _ = c.tls_handshake_time.record((h.as_micros() as u64).max(1));
        }
        if failed {
            c.errors += 1;
            let msg = match (&out.error, out.status) {
                (Some(e), _) => e.clone(),
                (None, Some(s)) => format!("HTTP {s} ({})", key.operation),
                _ => unreachable!("failed calls have an error or a status"),
            };
            stats.error(&msg, None);
        }
        drop(stats);
        let mut vus = self.vus.borrow_mut();
        if let Some(last) = vus[pending.slot as usize]
            .last_call
            .as_mut()
            .filter(|l| l.call_id == call_id)
        {
            last.failed = failed;
        }
    }

    /// Hands the final response (or error) to the test's callback or promise.
    fn deliver(&self, pending: PendingCall, mut out: HttpOutcome) {
        let PendingCall {
            slot,
            seq,
            url,
            bytes,
            reply,
            limit: pending_limit,
            ..
        } = pending;
        if self.is_cut() {
            return; // the stop's grace period is over: the test's code runs no more
        }
        // `data` is the decoded body; `http.received` counted the bytes on the wire.
        if let Some(enc) = out.headers.get("content-encoding") {
            if !out.body.is_empty() {
                match body::decode(enc, &out.body, pending_limit) {
                    Ok(b) => out.body = Bytes::from(b),
                    Err(e) => {
                        self.stats.borrow_mut().error(&e, None);
                        out.error = Some(e);
                    }
                }
            }
        }
        let ctx = self.vus.borrow()[slot as usize].ctx.clone();
        self.current.set(slot);
        ctx.with(|ctx| {
            let r = (|| -> rquickjs::Result<()> {
                let body = if bytes {
                    // Defines the typed arrays in this context first (they are lazy).
                    let _: Value = ctx.globals().get("Uint8Array")?;
                    TypedArray::<u8>::new_copy(ctx.clone(), &out.body[..])?.into_value()
                } else {
                    rquickjs::String::from_str(ctx.clone(), &String::from_utf8_lossy(&out.body))?
                        .into_value()
                };
                let headers = std::mem::take(&mut out.headers);
                let response = self.with_shared_scope(&ctx, |s| {
                    call_objects::response(
                        s.response_proto.clone().restore(&ctx)?,
                        &s.response_keys,
                        out.status,
                        &url,
                        headers,
                        body.clone(),
                    )
                })?;
                let err = error_value(&ctx, &out, &response)?;
                self.slice_clock.begin();
                let r = match reply {
                    Reply::Callback(f) => {
                        let f = f.restore(&ctx)?;
                        let data: Value = if out.status.is_some() {
                            body
                        } else {
                            Value::new_undefined(ctx.clone())
                        };
                        let err = err.unwrap_or_else(|| Value::new_null(ctx.clone()));
                        f.call::<_, Value>((err, data, response)).map(|_| ())
                    }
                    Reply::Promise { resolve, reject } => match err {
                        Some(e) => reject.restore(&ctx)?.call::<_, Value>((e,)).map(|_| ()),
                        None => {
                            let result = Object::new(ctx.clone())?;
                            result.set("data", body)?;
                            result.set("response", response)?;
                            resolve
                                .restore(&ctx)?
                                .call::<_, Value>((result,))
                                .map(|_| ())
                        }
                    },
                };
                self.slice_clock.end();
                r
            })();
            if let Err(e) = r {
                let err = ScriptError::catch(&ctx, e);
                self.script_error(slot, seq, err);
            }
            self.run_jobs(&ctx);
        });
    }

    /// Hands one finished hop to the observer as a per-call TSDB record.
    fn call_point(
        &self,
        slot: u32,
        call_id: u64,
        operation: &str,
        delay_us: u64,
        out: &HttpOutcome,
    ) {
        let (vu, url) = {
            let vus = self.vus.borrow();
            let vu = &vus[slot as usize];
            let url = vu
                .last_call
                .as_ref()
                .filter(|l| l.call_id == call_id)
                .map(|l| l.url.clone())
                .unwrap_or_default();
            (vu.id, url)
        };
        self.shared.observer.call(CallPoint {
            timestamp_ms: camut_stats::clock::now_ms().max(0) as u64,
            vu,
            call_id,
            url,
            operation: operation.to_string(),
            status: out.status.unwrap_or(0),
            error_kind: out.error_kind().unwrap_or_default(),
            response_time_us: (out.total.as_micros() as u64).max(1) + delay_us,
            response_begin_time_us: (out.begin.as_micros() as u64).max(1) + delay_us,
            received: out.received,
            transmitted: out.transmitted,
            connections: self.http.open_connections(),
        });
    }
}

impl Worker {
    /// `camut.cookies.get(url)`: the cookies VU `slot` would send to `url`.
    pub(crate) fn cookies_for(
        &self,
        slot: u32,
        url: &str,
    ) -> Result<Vec<(String, String)>, String> {
        let uri: Uri = url
            .parse()
            .map_err(|e| format!("camut.cookies: bad url '{url}': {e}"))?;
        let host = uri.host().unwrap_or("").to_ascii_lowercase();
        let mut vus = self.vus.borrow_mut();
        let Some(jar) = vus[slot as usize].jar.as_mut() else {
            return Ok(Vec::new());
        };
        Ok(jar.for_site(site(&uri, &host), SystemTime::now()))
    }

    /// `camut.cookies.set(url, 'name=value; Path=/…')`: stores a cookie as if `url`
    /// had sent it; returns whether it was accepted.
    pub(crate) fn cookie_set(&self, slot: u32, url: &str, cookie: &str) -> Result<bool, String> {
        let uri: Uri = url
            .parse()
            .map_err(|e| format!("camut.cookies: bad url '{url}': {e}"))?;
        let host = uri.host().unwrap_or("").to_ascii_lowercase();
        let mut vus = self.vus.borrow_mut();
        let jar = vus[slot as usize].jar.get_or_insert_with(Default::default);
        Ok(jar.store(site(&uri, &host), cookie, SystemTime::now()))
    }

    /// `camut.cookies.clear()`.
    pub(crate) fn cookies_clear(&self, slot: u32) {
        if let Some(jar) = self.vus.borrow_mut()[slot as usize].jar.as_mut() {
            jar.clear();
        }
    }

    /// `camut.cookies.all()`.
    pub(crate) fn cookies_all(&self, slot: u32) -> Vec<Cookie> {
        match self.vus.borrow_mut()[slot as usize].jar.as_mut() {
            Some(jar) => jar.all(SystemTime::now()).to_vec(),
            None => Vec::new(),
        }
    }
}

fn site<'a>(uri: &'a Uri, host: &'a str) -> Site<'a> {
    Site {
        https: uri.scheme_str() == Some("https"),
        host: host.trim_start_matches('[').trim_end_matches(']'),
        path: uri.path(),
    }
}

/// Adds the jar's cookies for the request's URL to its `Cookie` header.
fn add_cookies(jar: &mut CookieJar, request: &mut HttpRequest) {
    if jar.is_empty() {
        return;
    }
    let host = request.uri.host().unwrap_or("").to_ascii_lowercase();
    let Some(cookies) = jar.header(site(&request.uri, &host), SystemTime::now()) else {
        return;
    };
    let value = match request.headers.iter().position(|(k, _)| k == COOKIE) {
        Some(i) => {
            let (_, own) = request.headers.remove(i);
            format!("{}; {cookies}", String::from_utf8_lossy(own.as_bytes()))
        }
        None => cookies,
    };
    if let Ok(v) = HeaderValue::from_str(&value) {
        request.headers.push((COOKIE, v));
    }
}

/// The next hop's request when `out` is a redirect to follow (and one is left).
fn redirect(pending: &mut PendingCall, out: &HttpOutcome) -> Option<HttpRequest> {
    if pending.redirects_left == 0 || !matches!(out.status, Some(301 | 302 | 303 | 307 | 308)) {
        return None;
    }
    let location = out.headers.get("location")?;
    let base = pending.redirect_base.take()?;
    let next_uri = resolve(&base.uri, location)?;
    if !matches!(next_uri.scheme_str(), Some("http" | "https")) {
        return None;
    }
    pending.redirects_left -= 1;
    let mut next = base;
    // 303, and 301/302 after a POST, become a GET without a body (as browsers do).
    let to_get = match out.status {
        Some(303) => next.method != Method::HEAD,
        Some(301 | 302) => next.method == Method::POST,
        _ => false,
    };
    if to_get {
        next.method = Method::GET;
        next.body = Bytes::new();
        next.headers
            .retain(|(k, _)| k != CONTENT_TYPE && k != CONTENT_LENGTH);
    }
    if next_uri.authority() != next.uri.authority() || next_uri.scheme() != next.uri.scheme() {
        // Credentials are not sent to another origin.
        next.headers
            .retain(|(k, _)| k != AUTHORIZATION && k != COOKIE);
    }
    next.uri = next_uri;
    Some(next)
}

/// Resolves a `Location` against the URL it came from.
fn resolve(base: &Uri, location: &str) -> Option<Uri> {
    let location = location.trim();
    if location.starts_with("http://") || location.starts_with("https://") {
        return location.parse().ok();
    }
    let scheme = base.scheme_str()?;
    if let Some(rest) = location.strip_prefix("//") {
        return format!("{scheme}://{rest}").parse().ok();
    }
    let authority = base.authority()?.as_str();
    let path = if location.starts_with('/') {
        location.to_string()
    } else {
        let dir = base.path().rsplit_once('/').map_or("", |(d, _)| d);
        format!("{dir}/{location}")
    };
    format!("{scheme}://{authority}{path}").parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_resolve() {
        let base: Uri = "https://a.test:8443/x/y?z=1".parse().unwrap();
        for (loc, want) in [
            ("/r/1", "https://a.test:8443/r/1"),
            ("r2", "https://a.test:8443/x/r2"),
            ("//b.test/p", "https://b.test/p"),
            ("http://c.test/q?x=1", "http://c.test/q?x=1"),
        ] {
            assert_eq!(resolve(&base, loc).unwrap().to_string(), want);
        }
    }
}
