//! The globals each VU sees: `camut`, `context`, `window`, `console` and the timers.
//!
//! Host functions and the read-only objects (`camut.drone`, `camut.campaign`,
//! `camut.env`, frozen) are created once per worker and shared by all its VU contexts:
//! the worker knows which VU is running, so the functions need not capture it. This
//! keeps a VU near the cost of its bare context.

use std::rc::Weak;

use rquickjs::function::{Opt, Rest, This};
use rquickjs::{Ctx, Function, Object, Persistent, Value};

use crate::run::worker::Worker;
use crate::run::ConsoleLevel;

/// Ids a VU shows to its test.
pub(crate) struct VuIds {
    /// 1-based id across the drone.
    pub id: u64,
    /// 0-based index within the drone.
    pub index: u32,
}

/// What install hands back: objects the worker keeps handles to.
pub(crate) struct Installed<'js> {
    pub window: Object<'js>,
    pub vu: Object<'js>,
}

/// The shared part of the scope, kept by the worker.
pub(crate) struct SharedScope {
    globals: Vec<(&'static str, Persistent<Value<'static>>)>,
    camut: Vec<(&'static str, Persistent<Value<'static>>)>,
    /// `abort()` of the request objects `camut.http` returns (reads `this.callId`).
    pub abort: Persistent<Function<'static>>,
    /// The prototype of the request handles of the callback form
    /// ([`super::call_objects`]).
    pub request_proto: Persistent<Object<'static>>,
    /// The prototype of responses ([`super::call_objects`]).
    pub response_proto: Persistent<Object<'static>>,
    /// The names of a response's own fields ([`super::call_objects`]).
    pub response_keys: super::call_objects::ResponseKeys,
    /// A request handle that keeps the handles' shape alive between calls.
    _request_shape: Persistent<Object<'static>>,
}

/// Installs the VU scope into the globals of `ctx`.
pub(crate) fn install<'js>(
    ctx: &Ctx<'js>,
    worker: &Weak<Worker>,
    ids: &VuIds,
) -> rquickjs::Result<Installed<'js>> {
    super::install_lazy_intrinsics(ctx)?;
    let w = worker.upgrade().expect("worker outlives its VUs");
    if w.shared_scope.borrow().is_none() {
        let made = make_shared(ctx, worker, &w)?;
        *w.shared_scope.borrow_mut() = Some(made);
    }
    let g = ctx.globals();
    let camut = Object::new(ctx.clone())?;
    {
        let scope = w.shared_scope.borrow();
        let scope = scope.as_ref().expect("made above");
        for (name, v) in &scope.globals {
            g.set(*name, v.clone().restore(ctx)?)?;
        }
        for (name, v) in &scope.camut {
            camut.set(*name, v.clone().restore(ctx)?)?;
        }
    }
    let vu = Object::new(ctx.clone())?;
    vu.set("id", ids.id as f64)?;
    vu.set("index", ids.index)?;
    vu.set("iteration", 0)?;
    camut.set("vu", vu.clone())?;
    g.set("camut", camut)?;
    g.set("context", Value::new_null(ctx.clone()))?;
    let window = match w.browser.borrow().as_ref() {
        Some(browser) => browser.install(ctx)?,
        None => {
            let window = Object::new(ctx.clone())?;
            g.set("window", window.clone())?;
            window
        }
    };
    Ok(Installed { window, vu })
}

fn make_shared<'js>(
    ctx: &Ctx<'js>,
    worker: &Weak<Worker>,
    w: &Worker,
) -> rquickjs::Result<SharedScope> {
    let shared = w.shared.clone();
    let save = |v: Value<'js>| Persistent::save(ctx, v);
    let freeze = |o: Object<'js>| -> rquickjs::Result<Value<'js>> {
        let object: Object = ctx.globals().get("Object")?;
        let f: Function = object.get("freeze")?;
        f.call((o,))
    };
    let mut camut = Vec::new();
    let wk = worker.clone();
    let http = Function::new(
        ctx.clone(),
        move |ctx: Ctx<'js>, options: Value<'js>, cb: Opt<Value<'js>>| match wk.upgrade() {
            Some(w) => {
                let slot = w.current.get();
                w.http_call(&ctx, slot, options, cb.0)
            }
            None => Ok(Value::new_undefined(ctx)),
        },
    )?
    .with_name("http")?;
    http.set_constructor(true);
    camut.push(("http", save(http.into_value())));
    let wk = worker.clone();
    let abort = Function::new(ctx.clone(), move |this: This<Value<'js>>| {
        let id = this
            .0
            .as_object()
            .and_then(|o| o.get::<_, f64>("callId").ok());
        if let (Some(w), Some(id)) = (wk.upgrade(), id) {
            w.http_abort(id as u64);
        }
    })?
    .with_name("abort")?;
    let proto = super::call_objects::request_prototype(ctx, abort.clone())?;
    // Kept for its shape, as ResponseKeys keeps a response's (see there).
    let request_shape =
        Persistent::save(ctx, super::call_objects::request_handle(proto.clone(), 0)?);
    let request_proto = Persistent::save(ctx, proto);
    let proto = super::call_objects::response_prototype(ctx)?;
    let response_keys = super::call_objects::ResponseKeys::new(ctx, proto.clone())?;
    let response_proto = Persistent::save(ctx, proto);
    let abort = Persistent::save(ctx, abort);
    camut.push(("cookies", save(freeze(cookies_object(ctx, worker)?)?)));
    let wk = worker.clone();
    let tsdb = Function::new(
        ctx.clone(),
        move |ctx: Ctx<'js>, metric: Value<'js>, value: Value<'js>, tags: Opt<Value<'js>>| match wk
            .upgrade()
        {
            Some(w) => {
                let slot = w.current.get();
                w.tsdb_call(&ctx, slot, metric, value, tags.0)
            }
            None => Ok(()),
        },
    )?
    .with_name("tsdb")?;
    camut.push(("tsdb", save(tsdb.into_value())));
    let drone = Object::new(ctx.clone())?;
    drone.set("id", shared.config.drone.id.as_str())?;
    drone.set("index", shared.config.drone.index)?;
    drone.set("count", shared.config.drone.count)?;
    camut.push(("drone", save(freeze(drone)?)));
    let campaign = Object::new(ctx.clone())?;
    campaign.set("id", shared.campaign.options.id.as_str())?;
    campaign.set("users", shared.users)?;
    match shared.length {
        crate::campaign::RunLength::Iterations(n) => campaign.set("iterations", n as f64)?,
        crate::campaign::RunLength::Duration(d) => campaign.set("duration", d.as_secs_f64())?,
    }
    camut.push(("campaign", save(freeze(campaign)?)));
    let env = Object::new(ctx.clone())?;
    for (k, v) in &shared.config.env {
        env.set(k.as_str(), v.as_str())?;
    }
    camut.push(("env", save(freeze(env)?)));

    let mut globals = Vec::new();
    let console = Object::new(ctx.clone())?;
    for (name, level) in [
        ("log", ConsoleLevel::Info),
        ("info", ConsoleLevel::Info),
        ("warn", ConsoleLevel::Warn),
        ("error", ConsoleLevel::Error),
        ("debug", ConsoleLevel::Debug),
    ] {
        let wk = worker.clone();
        console.set(
            name,
            Function::new(ctx.clone(), move |ctx: Ctx<'js>, args: Rest<Value<'js>>| {
                if let Some(w) = wk.upgrade() {
                    w.console_call(&ctx, w.current.get(), level, &args.0);
                }
            })?
            .with_name(name)?,
        )?;
    }
    globals.push(("console", save(freeze(console)?)));
    for (name, repeat) in [("setTimeout", false), ("setInterval", true)] {
        let wk = worker.clone();
        let f = Function::new(
            ctx.clone(),
            move |ctx: Ctx<'js>, f: Value<'js>, ms: Opt<f64>, args: Rest<Value<'js>>| match wk
                .upgrade()
            {
                Some(w) => {
                    let slot = w.current.get();
                    w.set_timer(&ctx, slot, f, ms.0.unwrap_or(0.0), args.0, repeat)
                }
                None => Ok(0),
            },
        )?
        .with_name(name)?;
        globals.push((name, save(f.into_value())));
    }
    for name in ["clearTimeout", "clearInterval"] {
        let wk = worker.clone();
        let f = Function::new(ctx.clone(), move |id: Opt<Value<'js>>| {
            if let (Some(w), Some(id)) = (wk.upgrade(), id.0.and_then(|v| v.as_number())) {
                w.clear_timer(w.current.get(), id as u32);
            }
        })?
        .with_name(name)?;
        globals.push((name, save(f.into_value())));
    }
    Ok(SharedScope {
        globals,
        camut,
        abort,
        request_proto,
        response_proto,
        response_keys,
        _request_shape: request_shape,
    })
}

/// `camut.cookies`: the running VU's cookie jar.
fn cookies_object<'js>(ctx: &Ctx<'js>, worker: &Weak<Worker>) -> rquickjs::Result<Object<'js>> {
    let cookies = Object::new(ctx.clone())?;
    let wk = worker.clone();
    cookies.set(
        "get",
        Function::new(ctx.clone(), move |ctx: Ctx<'js>, url: String| {
            let o = Object::new(ctx.clone())?;
            if let Some(w) = wk.upgrade() {
                let pairs = w
                    .cookies_for(w.current.get(), &url)
                    .map_err(|m| rquickjs::Exception::throw_type(&ctx, &m))?;
                for (k, v) in pairs {
                    o.set(k, v)?;
                }
            }
            Ok::<_, rquickjs::Error>(o)
        })?
        .with_name("get")?,
    )?;
    let wk = worker.clone();
    cookies.set(
        "set",
        Function::new(
            ctx.clone(),
            move |ctx: Ctx<'js>, url: String, cookie: String| match wk.upgrade() {
                Some(w) => w
                    .cookie_set(w.current.get(), &url, &cookie)
                    .map_err(|m| rquickjs::Exception::throw_type(&ctx, &m)),
                None => Ok(false),
            },
        )?
        .with_name("set")?,
    )?;
    let wk = worker.clone();
    cookies.set(
        "clear",
        Function::new(ctx.clone(), move || {
            if let Some(w) = wk.upgrade() {
                w.cookies_clear(w.current.get());
            }
        })?
        .with_name("clear")?,
    )?;
    let wk = worker.clone();
    cookies.set(
        "all",
        Function::new(ctx.clone(), move |ctx: Ctx<'js>| {
            let list = rquickjs::Array::new(ctx.clone())?;
            if let Some(w) = wk.upgrade() {
                for (i, c) in w.cookies_all(w.current.get()).into_iter().enumerate() {
                    let o = Object::new(ctx.clone())?;
                    o.set("name", c.name)?;
                    o.set("value", c.value)?;
                    o.set("domain", c.domain)?;
                    o.set("path", c.path)?;
                    o.set(
                        "expires",
                        c.expires.and_then(|t| {
                            t.duration_since(std::time::UNIX_EPOCH)
                                .ok()
                                .map(|d| d.as_millis() as f64)
                        }),
                    )?;
                    o.set("secure", c.secure)?;
                    o.set("httpOnly", c.http_only)?;
                    list.set(i, o)?;
                }
            }
            Ok::<_, rquickjs::Error>(list)
        })?
        .with_name("all")?,
    )?;
    Ok(cookies)
}
