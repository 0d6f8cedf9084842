//! The objects `camut.http` hands to the test: the request handle and the response.
//!
//! Both are instances of small classes whose prototype is made once per worker and
//! shared by its VU contexts, so that a call costs one object each instead of an object
//! plus a property (an atom and a value) per field: at tens of thousands of calls a
//! second those properties were a tenth of the engine's CPU time.
//!
//! - A request handle carries its call id in Rust; `callId` and `abort()` live on the
//!   prototype.
//! - A response has `statusCode`, `url` and `body` as its own properties; its headers
//!   stay in Rust until the test first reads `response.headers`, which then becomes an
//!   own property. `toJSON` gives all four, so `JSON.stringify(response)` and
//!   `console.log(response)` show what they always did.

use std::cell::RefCell;

use rquickjs::class::{JsClass, Readable, Trace, Tracer};
use rquickjs::function::This;
use rquickjs::object::{Accessor, Property};
use rquickjs::{qjs, Class, Ctx, Function, JsLifetime, Object, Persistent, Value};

use crate::http::ResponseHeaders;

/// The Rust side of a request handle.
pub(crate) struct RequestData {
    call_id: u64,
}

/// The Rust side of a response: its headers until they are read.
pub(crate) struct ResponseData {
    headers: RefCell<ResponseHeaders>,
}

macro_rules! plain_class {
    ($t:ty, $name:literal) => {
        impl<'js> Trace<'js> for $t {
            fn trace<'a>(&self, _: Tracer<'a, 'js>) {}
        }

        // SAFETY: the type holds no JS values, so it lives as long as any lifetime asks.
        unsafe impl<'js> JsLifetime<'js> for $t {
            type Changed<'to> = $t;
        }

        impl<'js> JsClass<'js> for $t {
            const NAME: &'static str = $name;
            type Mutable = Readable;
            fn constructor(
                _: &Ctx<'js>,
            ) -> rquickjs::Result<Option<rquickjs::function::Constructor<'js>>> {
                Ok(None)
            }
        }
    };
}

plain_class!(RequestData, "HttpRequest");
plain_class!(ResponseData, "HttpResponse");

/// The prototype of request handles: `callId`, and `abort` (the worker's function,
/// which reads `this.callId`).
pub(crate) fn request_prototype<'js>(
    ctx: &Ctx<'js>,
    abort: Function<'js>,
) -> rquickjs::Result<Object<'js>> {
    let proto = Object::new(ctx.clone())?;
    proto.prop(
        "callId",
        Accessor::from(|this: This<Class<'js, RequestData>>| this.0.borrow().call_id as f64)
            .enumerable(),
    )?;
    proto.set("abort", abort)?;
    Ok(proto)
}

/// A request handle of call `call_id`.
pub(crate) fn request_handle<'js>(
    proto: Object<'js>,
    call_id: u64,
) -> rquickjs::Result<Object<'js>> {
    Ok(Class::instance_proto(RequestData { call_id }, proto)?.into_inner())
}

/// The prototype of responses: the lazy `headers` and `toJSON`.
pub(crate) fn response_prototype<'js>(ctx: &Ctx<'js>) -> rquickjs::Result<Object<'js>> {
    let proto = Object::new(ctx.clone())?;
    let get = |this: This<Class<'js, ResponseData>>| -> rquickjs::Result<Object<'js>> {
        let headers = Object::new(this.0.ctx().clone())?;
        for (k, v) in this.0.borrow().headers.take().iter() {
            headers.set(k, v)?;
        }
        own_headers(this.0.as_inner(), headers.clone().into_value())?;
        Ok(headers)
    };
    let set = |this: This<Object<'js>>, v: Value<'js>| own_headers(&this.0, v);
    proto.prop("headers", Accessor::new(get, set).configurable())?;
    let to_json = Function::new(
        ctx.clone(),
        |ctx: Ctx<'js>, this: This<Object<'js>>| -> rquickjs::Result<Object<'js>> {
            let plain = Object::new(ctx)?;
            for k in ["statusCode", "url", "headers", "body"] {
                plain.set(k, this.0.get::<_, Value>(k)?)?;
            }
            Ok(plain)
        },
    )?
    .with_name("toJSON")?;
    proto.set("toJSON", to_json)?;
    Ok(proto)
}

/// Makes `headers` an own data property of a response, as it would be on a plain object.
fn own_headers<'js>(response: &Object<'js>, headers: Value<'js>) -> rquickjs::Result<()> {
    response.prop(
        "headers",
        Property::from(headers)
            .writable()
            .enumerable()
            .configurable(),
    )
}

/// The names of a response's own fields as atoms, made once per worker: defining a
/// property by atom skips the atom lookup of a name and the prototype walk of a set.
/// One response is kept alive with them: QuickJS frees an object shape with the last
/// object of that shape, and responses live only through their callback, so without
/// it every response would make its three shapes anew.
pub(crate) struct ResponseKeys {
    rt: *mut qjs::JSRuntime,
    /// `statusCode`, `url`, `body`.
    atoms: [qjs::JSAtom; 3],
    _shape: Option<Persistent<Object<'static>>>,
}

impl ResponseKeys {
    /// The atoms, and a response of prototype `proto` that keeps the shapes.
    pub(crate) fn new<'js>(ctx: &Ctx<'js>, proto: Object<'js>) -> rquickjs::Result<Self> {
        let raw = ctx.as_raw().as_ptr();
        // SAFETY: `raw` is a live context (we run in it); each atom made here is freed
        // once, in `drop`, against the same runtime, which outlives the worker's scope.
        let mut keys = unsafe {
            let atom = |name: &str| qjs::JS_NewAtomLen(raw, name.as_ptr().cast(), name.len() as _);
            ResponseKeys {
                rt: qjs::JS_GetRuntime(raw),
                atoms: [atom("statusCode"), atom("url"), atom("body")],
                _shape: None,
            }
        };
        let body = Value::new_undefined(ctx.clone());
        let kept = response(
            proto,
            &keys,
            Some(200),
            "",
            ResponseHeaders::default(),
            body,
        )?;
        keys._shape = Some(Persistent::save(ctx, kept));
        Ok(keys)
    }
}

impl Drop for ResponseKeys {
    fn drop(&mut self) {
        // The kept response goes first: it holds the atoms through its shape.
        self._shape = None;
        for a in self.atoms {
            // SAFETY: made by `new` in this runtime, which is still alive (see `new`).
            unsafe { qjs::JS_FreeAtomRT(self.rt, a) };
        }
    }
}

/// Defines a new own data property (writable, enumerable, configurable) by atom.
fn define_own<'js>(obj: &Object<'js>, atom: qjs::JSAtom, v: Value<'js>) -> rquickjs::Result<()> {
    let ctx = obj.ctx().as_raw().as_ptr();
    // SAFETY: object and value belong to the live context `ctx`; `atom` is alive
    // (ResponseKeys). The definition takes a reference of its own to the value (the
    // dup), and `v` drops its own as usual.
    let r = unsafe {
        qjs::JS_DefinePropertyValue(
            ctx,
            obj.as_raw(),
            atom,
            qjs::JS_DupValue(ctx, v.as_raw()),
            qjs::JS_PROP_C_W_E as _,
        )
    };
    if r < 0 {
        Err(rquickjs::Error::Exception)
    } else {
        Ok(())
    }
}

/// A response: `statusCode`, `url`, `body` set, `headers` made when read.
pub(crate) fn response<'js>(
    proto: Object<'js>,
    keys: &ResponseKeys,
    status: Option<u16>,
    url: &str,
    headers: ResponseHeaders,
    body: Value<'js>,
) -> rquickjs::Result<Object<'js>> {
    let r = Class::instance_proto(
        ResponseData {
            headers: RefCell::new(headers),
        },
        proto,
    )?
    .into_inner();
    let ctx = r.ctx().clone();
    let status = match status {
        Some(s) => Value::new_int(ctx.clone(), i32::from(s)),
        None => Value::new_undefined(ctx.clone()),
    };
    let [k_status, k_url, k_body] = keys.atoms;
    define_own(&r, k_status, status)?;
    define_own(
        &r,
        k_url,
        rquickjs::String::from_str(ctx, url)?.into_value(),
    )?;
    define_own(&r, k_body, body)?;
    Ok(r)
}
