//! Browser emulation (campaign option `browserEmulation`): each VU's global object
//! becomes a browser-like `window` with a real HTML5 DOM and the real jQuery.
//!
//! The costly parts are made once per worker, in a context of their own, and shared by
//! all its VUs: `window.js` (the DOM classes with every method and accessor, events,
//! URL, XHR, `fetch`), the bytecode of jQuery, and the native functions over the Rust
//! documents. Per VU there are only its window's own objects (document, location,
//! history, storages, a few constructors), its documents (a Rust arena each) and, from
//! the first read of `$`, its jQuery instance. Functions made in the shared context run
//! in its realm: the code never names a VU global directly, it finds the VU through the
//! objects it is called on.

mod natives;

use std::rc::Rc;

use rquickjs::context::intrinsic;
use rquickjs::context::{EvalOptions, Intrinsic};
use rquickjs::{Context, Ctx, Function, Object, Persistent, Runtime, Value};

use crate::campaign::BrowserOptions;

/// The DOM bindings, events, storage, URL, XHR and `fetch`.
const WINDOW_JS: &str = include_str!("window.js");
/// jQuery, as released (see scripts/fetch-jquery.sh and vendor/jquery/SHA256SUMS).
const JQUERY_JS: &str = include_str!("../../../vendor/jquery/jquery.js");
/// The jQuery release vendored.
pub(crate) const JQUERY_VERSION: &str = "3.7.1";

/// What a worker's VUs share: the context the shared code lives in and its entry points.
pub(crate) struct BrowserShared {
    /// Keeps the shared realm alive; dropped with the worker.
    _ctx: Context,
    /// `function (window, evalScript)`: makes a VU's window over the shared classes.
    make_window: Persistent<Function<'static>>,
    options: Rc<BrowserOptions>,
}

impl BrowserShared {
    /// Compiles the window code and jQuery into a context of `rt`, and makes the window
    /// classes the worker's VUs share.
    pub(crate) fn new(rt: &Runtime, options: &BrowserOptions) -> Result<Self, String> {
        let ctx =
            Context::full(rt).map_err(|e| format!("cannot create the browser context: {e}"))?;
        let options = Rc::new(options.clone());
        let made = ctx.with(|ctx| -> Result<_, String> {
            let fail = |what: &str, e: rquickjs::Error| {
                format!("cannot load {what}: {}", super::ScriptError::catch(&ctx, e))
            };
            let classes: Function = ctx
                .eval_with_options(WINDOW_JS, eval_options("camut:browser/window.js"))
                .map_err(|e| fail("the browser window", e))?;
            // jQuery's module wrapper hands back `function (window)` when the global
            // object has no document: exactly the factory each VU calls with its window.
            let jq = format!("jQuery {JQUERY_VERSION}");
            let module = Object::new(ctx.clone()).map_err(|e| fail(&jq, e))?;
            let exports = Object::new(ctx.clone()).map_err(|e| fail(&jq, e))?;
            module.set("exports", exports).map_err(|e| fail(&jq, e))?;
            ctx.globals()
                .set("module", module.clone())
                .map_err(|e| fail(&jq, e))?;
            ctx.eval_with_options::<(), _>(JQUERY_JS, eval_options("jquery.js"))
                .map_err(|e| fail(&jq, e))?;
            let jquery: Function = module.get("exports").map_err(|e| fail(&jq, e))?;
            ctx.globals().remove("module").map_err(|e| fail(&jq, e))?;
            let natives =
                natives::make(&ctx, options.clone()).map_err(|e| fail("the DOM natives", e))?;
            let settings = (|| {
                let settings = Object::new(ctx.clone())?;
                settings.set("userAgent", options.user_agent.as_str())?;
                settings.set("runScripts", options.run_scripts)?;
                settings.set("jquery", options.jquery)?;
                Ok(settings)
            })()
            .map_err(|e| fail("the browser settings", e))?;
            let make_window: Function = classes
                .call((natives, settings, jquery))
                .map_err(|e| fail("the browser window", e))?;
            Ok(Persistent::save(&ctx, make_window))
        })?;
        Ok(BrowserShared {
            _ctx: ctx,
            make_window: made,
            options,
        })
    }

    /// Turns the global object of a VU context into its window.
    pub(crate) fn install<'js>(&self, ctx: &Ctx<'js>) -> rquickjs::Result<Object<'js>> {
        let g = ctx.globals();
        // What a browser has and page scripts use: cheap intrinsics, added only to the
        // contexts of campaigns that ask for a browser.
        // SAFETY: the context is alive (we run in it); these intrinsics add globals
        // that the slim VU context does not have yet.
        unsafe {
            intrinsic::Proxy::add_intrinsic(ctx.as_raw());
            if self.options.run_scripts {
                intrinsic::Eval::add_intrinsic(ctx.as_raw());
            }
        }
        g.set("window", g.clone())?;
        let eval_script: Value = if self.options.run_scripts {
            // A Rust function is called with the caller's context, here the shared
            // realm; page scripts must run in the VU's own.
            let vu_ctx = ctx.as_raw();
            Function::new(
                ctx.clone(),
                move |code: String, name: String| -> rquickjs::Result<()> {
                    // SAFETY: this function lives in the VU's context and is only called
                    // by its window code while the VU runs, under the runtime's lock:
                    // the context is alive. `from_raw` takes a reference of its own.
                    let vu = unsafe { Ctx::from_raw(vu_ctx) };
                    vu.eval_with_options::<(), _>(code, eval_options(&name))
                },
            )?
            .into_value()
        } else {
            Value::new_undefined(ctx.clone())
        };
        let make_window = self.make_window.clone().restore(ctx)?;
        make_window.call::<_, Value>((g.clone(), eval_script))?;
        Ok(g)
    }
}

fn eval_options(file: &str) -> EvalOptions {
    let mut o = EvalOptions::default();
    o.global = true;
    o.strict = false;
    o.filename = Some(file.to_string());
    o
}

/// The globals a browser has and a bare VU does not: a `ReferenceError` naming one of
/// them gets a hint about the option.
const BROWSER_GLOBALS: &[&str] = &[
    "document",
    "$",
    "jQuery",
    "navigator",
    "location",
    "history",
    "localStorage",
    "sessionStorage",
    "XMLHttpRequest",
    "fetch",
    "DOMParser",
    "atob",
    "btoa",
    "URL",
    "URLSearchParams",
    "Event",
    "CustomEvent",
    "HTMLElement",
    "Node",
];

/// `ReferenceError: document is not defined` → the same, saying which option defines it.
pub(crate) fn hint_missing_global(message: &str) -> Option<String> {
    let name = message
        .strip_prefix("ReferenceError: ")?
        .strip_suffix(" is not defined")?;
    BROWSER_GLOBALS.contains(&name).then(|| {
        format!(
            "{message}: `{name}` exists only with browser emulation; set the campaign option `browserEmulation: true`"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_vendored_jquery_is_the_pinned_release_with_its_checksums() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/vendor/jquery");
        let sums = std::fs::read_to_string(format!("{dir}/SHA256SUMS")).unwrap();
        let mut checked = 0;
        for line in sums.lines() {
            let (want, file) = line.split_once("  ").unwrap();
            let bytes = std::fs::read(format!("{dir}/{file}")).unwrap();
            let got = ring::digest::digest(&ring::digest::SHA256, &bytes);
            let hex: String = got.as_ref().iter().map(|b| format!("{b:02x}")).collect();
            assert_eq!(hex, want, "{file}: run scripts/fetch-jquery.sh");
            checked += 1;
        }
        assert_eq!(checked, 2);
        assert!(JQUERY_JS.contains(&format!("jQuery JavaScript Library v{JQUERY_VERSION}")));
        assert!(std::fs::read_to_string(format!("{dir}/LICENSE.txt"))
            .unwrap()
            .contains("Permission is hereby granted, free of charge"));
    }

    #[test]
    fn reference_errors_of_browser_globals_name_the_option() {
        assert_eq!(
            hint_missing_global("ReferenceError: $ is not defined").as_deref(),
            Some("ReferenceError: $ is not defined: `$` exists only with browser emulation; set the campaign option `browserEmulation: true`")
        );
        assert_eq!(
            hint_missing_global("ReferenceError: foo is not defined"),
            None
        );
        assert_eq!(
            hint_missing_global("TypeError: document is not defined"),
            None
        );
    }
}
