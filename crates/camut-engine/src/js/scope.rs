//! The globals each VU sees: `camut`, `context`, `window`, `console` and the timers.

use std::rc::Weak;

use rquickjs::function::{Opt, Rest};
use rquickjs::{Ctx, Function, Object, Value};

use crate::run::worker::Worker;
use crate::run::ConsoleLevel;

/// Ids a VU shows to its test.
pub(crate) struct VuIds {
    /// Index of the VU in its worker.
    pub slot: u32,
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

/// Installs the VU scope into the globals of `ctx`.
pub(crate) fn install<'js>(ctx: &Ctx<'js>, worker: &Weak<Worker>, ids: &VuIds) -> rquickjs::Result<Installed<'js>> {
    let g = ctx.globals();
    let shared = worker.upgrade().expect("worker outlives its VUs").shared.clone();
    let slot = ids.slot;

    let camut = Object::new(ctx.clone())?;
    let w = worker.clone();
    let http = Function::new(ctx.clone(), move |ctx: Ctx<'js>, options: Value<'js>, cb: Opt<Value<'js>>| {
        match w.upgrade() {
            Some(w) => w.http_call(&ctx, slot, options, cb.0),
            None => Ok(Value::new_undefined(ctx)),
        }
    })?
    .with_name("http")?;
    http.set_constructor(true);
    camut.set("http", http)?;
    let w = worker.clone();
    camut.set(
        "tsdb",
        Function::new(ctx.clone(), move |ctx: Ctx<'js>, metric: Value<'js>, value: Value<'js>, tags: Opt<Value<'js>>| {
            match w.upgrade() {
                Some(w) => w.tsdb_call(&ctx, slot, metric, value, tags.0),
                None => Ok(()),
            }
        })?
        .with_name("tsdb")?,
    )?;
    let vu = Object::new(ctx.clone())?;
    vu.set("id", ids.id as f64)?;
    vu.set("index", ids.index)?;
    vu.set("iteration", 0)?;
    camut.set("vu", vu.clone())?;
    let drone = Object::new(ctx.clone())?;
    drone.set("id", shared.config.drone.id.as_str())?;
    drone.set("index", shared.config.drone.index)?;
    drone.set("count", shared.config.drone.count)?;
    camut.set("drone", drone)?;
    let campaign = Object::new(ctx.clone())?;
    campaign.set("id", shared.campaign.options.id.as_str())?;
    campaign.set("users", shared.users)?;
    match shared.length {
        crate::campaign::RunLength::Iterations(n) => campaign.set("iterations", n as f64)?,
        crate::campaign::RunLength::Duration(d) => campaign.set("duration", d.as_secs_f64())?,
    }
    camut.set("campaign", campaign)?;
    let env = Object::new(ctx.clone())?;
    for (k, v) in &shared.config.env {
        env.set(k.as_str(), v.as_str())?;
    }
    camut.set("env", env)?;
    g.set("camut", camut)?;

    let console = Object::new(ctx.clone())?;
    for (name, level) in [
        ("log", ConsoleLevel::Info),
        ("info", ConsoleLevel::Info),
        ("warn", ConsoleLevel::Warn),
        ("error", ConsoleLevel::Error),
        ("debug", ConsoleLevel::Debug),
    ] {
        let w = worker.clone();
        console.set(
            name,
            Function::new(ctx.clone(), move |ctx: Ctx<'js>, args: Rest<Value<'js>>| {
                if let Some(w) = w.upgrade() {
                    w.console_call(&ctx, slot, level, &args.0);
                }
            })?
            .with_name(name)?,
        )?;
    }
    g.set("console", console)?;

    for (name, repeat) in [("setTimeout", false), ("setInterval", true)] {
        let w = worker.clone();
        g.set(
            name,
            Function::new(
                ctx.clone(),
                move |ctx: Ctx<'js>, f: Value<'js>, ms: Opt<f64>, args: Rest<Value<'js>>| match w.upgrade() {
                    Some(w) => w.set_timer(&ctx, slot, f, ms.0.unwrap_or(0.0), args.0, repeat),
                    None => Ok(0),
                },
            )?
            .with_name(name)?,
        )?;
    }
    for name in ["clearTimeout", "clearInterval"] {
        let w = worker.clone();
        g.set(
            name,
            Function::new(ctx.clone(), move |id: Opt<Value<'js>>| {
                if let (Some(w), Some(id)) = (w.upgrade(), id.0.and_then(|v| v.as_number())) {
                    w.clear_timer(slot, id as u32);
                }
            })?
            .with_name(name)?,
        )?;
    }

    let window = Object::new(ctx.clone())?;
    g.set("window", window.clone())?;
    g.set("context", Value::new_null(ctx.clone()))?;
    Ok(Installed { window, vu })
}
