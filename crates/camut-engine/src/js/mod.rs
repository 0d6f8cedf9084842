//! Everything that touches QuickJS: the module, the VU scope and its host functions.

pub(crate) mod error;
pub(crate) mod http;
pub(crate) mod module;
pub(crate) mod scope;

pub use error::ScriptError;

use rquickjs::context::intrinsic;
use rquickjs::{Context, Runtime};

/// A slim context for one VU: only the intrinsics test code needs.
/// (A full context costs ~55 KB; see docs/PERFORMANCE.md for what a VU costs.)
pub(crate) fn vu_context(rt: &Runtime) -> rquickjs::Result<Context> {
    Context::builder()
        .with::<intrinsic::Date>()
        .with::<intrinsic::RegExp>()
        .with::<intrinsic::RegExpCompiler>()
        .with::<intrinsic::Json>()
        .with::<intrinsic::MapSet>()
        .with::<intrinsic::Promise>()
        .build(rt)
}
