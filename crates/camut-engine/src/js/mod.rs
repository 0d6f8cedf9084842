//! Everything that touches QuickJS: the module, the VU scope and its host functions.

pub(crate) mod browser;
pub(crate) mod call_objects;
pub(crate) mod error;
pub(crate) mod http;
pub(crate) mod module;
pub(crate) mod scope;

pub use error::ScriptError;

use rquickjs::context::{intrinsic, Intrinsic};
use rquickjs::object::Accessor;
use rquickjs::{Context, Ctx, Runtime, Value};

/// A slim context for one VU: only the intrinsics test code needs at once; `Date` and
/// `Map`/`Set`/`WeakMap`/`WeakSet` are added on first use (see [`install_lazy_intrinsics`]).
/// A full context costs ~50 KB, this one ~30 KB: see docs/PERFORMANCE.md.
pub(crate) fn vu_context(rt: &Runtime) -> rquickjs::Result<Context> {
    Context::builder()
        .with::<intrinsic::RegExp>()
        .with::<intrinsic::RegExpCompiler>()
        .with::<intrinsic::Json>()
        .with::<intrinsic::Promise>()
        .build(rt)
}

/// Defines `Date`, `Map`, `Set`, `WeakMap`, `WeakSet`, `ArrayBuffer` and `Uint8Array`
/// as globals that add their
/// intrinsic to this context the first time one of them is read: ~6 KB per VU saved
/// for the many tests that never use them.
pub(crate) fn install_lazy_intrinsics(ctx: &Ctx<'_>) -> rquickjs::Result<()> {
    lazy::<intrinsic::MapSet>(ctx, &["Map", "Set", "WeakMap", "WeakSet"])?;
    // Two names only: each lazy name costs a getter per VU. Reading either defines all
    // the typed arrays (Int32Array, DataView, …).
    lazy::<intrinsic::TypedArrays>(ctx, &["ArrayBuffer", "Uint8Array"])?;
    lazy::<intrinsic::Date>(ctx, &["Date"])
}

fn lazy<'js, I: Intrinsic + 'static>(
    ctx: &Ctx<'js>,
    names: &'static [&'static str],
) -> rquickjs::Result<()> {
    let g = ctx.globals();
    for &name in names {
        let getter = move |ctx: Ctx<'js>| -> rquickjs::Result<Value<'js>> {
            let g = ctx.globals();
            for n in names {
                g.remove(*n)?;
            }
            // SAFETY: the context is alive (we are called from it) and the intrinsic's
            // globals were removed above, so it defines them afresh.
            unsafe { I::add_intrinsic(ctx.as_raw()) };
            g.get(name)
        };
        g.prop(name, Accessor::new_get(getter).configurable())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lazy_intrinsics_appear_on_first_use() {
        let rt = Runtime::new().unwrap();
        let ctx = Context::builder()
            .with::<intrinsic::Eval>()
            .with::<intrinsic::Json>()
            .build(&rt)
            .unwrap();
        ctx.with(|ctx| {
            install_lazy_intrinsics(&ctx).unwrap();
            let r: String = ctx
                .eval(
                    "var m = new Map([[1, 'a']]); var s = new Set([1, 1, 2]); var w = new WeakMap();\n\
                     var d = new Date(0); var u = new Uint8Array([1, 2, 300]);\n\
                     [m.get(1), s.size, typeof w, d.getTime(), typeof Date.now(), Map === Map, u[2], typeof Int32Array].join(',')",
                )
                .unwrap();
            assert_eq!(r, "a,2,object,0,number,true,44,function");
        });
    }
}
