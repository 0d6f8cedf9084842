//! The campaign file in QuickJS: a CommonJS script or an ES module, compiled once to
//! bytecode and instantiated in every VU context.
//!
//! A file with no `import`/`export` statement is a CommonJS module, evaluated the way
//! node evaluates one: a sloppy-mode script wrapped in a function of `exports` and
//! `module`, so that `counter = 1` makes a global as it did in node. A file with
//! `import`/`export` is an ES module, strict as every module is.

use std::ffi::CString;

use rquickjs::module::WriteOptions;
use rquickjs::qjs;
use rquickjs::{Ctx, Function, Module, Object, Value};

use super::ScriptError;
use crate::campaign::CampaignError;

/// Put on line 1 of an ES module (no newline) so that line numbers stay those of the file.
const PREFIX: &str = "var exports = {}, module = { exports: exports };";

/// Node's CommonJS wrapper, on line 1 too; the script's value is the function.
const CJS_PREFIX: &str = "(function (exports, module) {";
const CJS_SUFFIX: &str = "\n})";

/// The compiled file.
#[derive(Debug)]
pub(crate) enum Bytecode {
    /// An ES module.
    Module(Vec<u8>),
    /// A CommonJS file: a script whose value is its wrapper function.
    Script(Vec<u8>),
}

/// Whether the source uses ES-module `import` or `export` statements.
fn is_es_module(source: &str) -> bool {
    source.lines().any(|l| {
        let l = l.trim_start();
        ["export", "import"].iter().any(|kw| {
            l.strip_prefix(kw)
                .is_some_and(|rest| rest.starts_with([' ', '\t', '{', '*', '"', '\'']))
        })
    })
}

/// Compiles the campaign source to bytecode (needs a context with the compiler).
pub(crate) fn compile(
    ctx: &rquickjs::Context,
    file: &str,
    source: &str,
) -> Result<Bytecode, CampaignError> {
    ctx.with(|ctx| {
        if !is_es_module(source) {
            return compile_script(&ctx, file, source).map(Bytecode::Script);
        }
        let module = match Module::declare(ctx.clone(), file, format!("{PREFIX}{source}")) {
            Ok(m) => m,
            Err(e) => return Err(syntax_error(file, PREFIX, ScriptError::catch(&ctx, e))),
        };
        module
            .write(WriteOptions::default())
            .map(Bytecode::Module)
            .map_err(|e| CampaignError::Engine(format!("cannot write bytecode: {e}")))
    })
}

/// Compiles a CommonJS file as a sloppy-mode script to bytecode.
fn compile_script(ctx: &Ctx<'_>, file: &str, source: &str) -> Result<Vec<u8>, CampaignError> {
    let engine = |m: &str| CampaignError::Engine(m.to_string());
    let text = CString::new(format!("{CJS_PREFIX}{source}{CJS_SUFFIX}"))
        .map_err(|_| engine("the campaign file contains a NUL character"))?;
    let name = CString::new(file).map_err(|_| engine("the file name contains a NUL character"))?;
    let len = text.as_bytes().len();
    let flags = (qjs::JS_EVAL_TYPE_GLOBAL | qjs::JS_EVAL_FLAG_COMPILE_ONLY) as i32;
    // SAFETY: `text` is NUL-terminated with `len` bytes before the NUL, as JS_Eval needs;
    // the returned value is owned and handed to `Value::from_raw`, which frees it.
    let compiled = unsafe {
        let raw = qjs::JS_Eval(
            ctx.as_raw().as_ptr(),
            text.as_ptr(),
            len as _,
            name.as_ptr(),
            flags,
        );
        if qjs::JS_IsException(raw) {
            let err = ScriptError::catch(ctx, rquickjs::Error::Exception);
            return Err(syntax_error(file, CJS_PREFIX, err));
        }
        Value::from_raw(ctx.clone(), raw)
    };
    let mut size: qjs::size_t = 0;
    // SAFETY: `compiled` is a live function-bytecode value of this context; the buffer
    // returned is copied, then freed with the context's allocator.
    unsafe {
        let buf = qjs::JS_WriteObject(
            ctx.as_raw().as_ptr(),
            &mut size,
            compiled.as_raw(),
            qjs::JS_WRITE_OBJ_BYTECODE as i32,
        );
        if buf.is_null() {
            return Err(engine("cannot write bytecode"));
        }
        let bytes = std::slice::from_raw_parts(buf, size as usize).to_vec();
        qjs::js_free(ctx.as_raw().as_ptr(), buf.cast());
        Ok(bytes)
    }
}

fn syntax_error(file: &str, prefix: &str, err: ScriptError) -> CampaignError {
    // quickjs-ng reports the position as the first stack frame: "    at FILE:LINE:COL".
    let pos = err.stack.as_deref().and_then(|s| {
        s.lines().find_map(|l| {
            let rest = l.trim().strip_prefix("at ")?;
            let rest = rest.strip_prefix(file).unwrap_or(rest);
            let mut parts = rest.rsplitn(3, ':');
            let col: u32 = parts.next()?.trim_end_matches(')').parse().ok()?;
            let line: u32 = parts.next()?.parse().ok()?;
            Some((line, col))
        })
    });
    let (line, column) = pos.unwrap_or((0, 0));
    let column = if line == 1 {
        column.saturating_sub(prefix.len() as u32).max(1)
    } else {
        column
    };
    let message = err.message.trim_start_matches("SyntaxError: ").to_string();
    CampaignError::Syntax {
        file: file.into(),
        line,
        column,
        message,
    }
}

/// What a campaign module exports.
pub(crate) struct Exports<'js> {
    /// `campaign` options object.
    pub campaign: Option<Value<'js>>,
    /// The test function.
    pub test: Option<Function<'js>>,
}

/// Loads the bytecode into `ctx`, runs its top-level code and finds its exports.
pub(crate) fn instantiate<'js>(
    ctx: &Ctx<'js>,
    file: &str,
    bytecode: &Bytecode,
) -> Result<Exports<'js>, CampaignError> {
    let top = |error: ScriptError| CampaignError::TopLevel {
        file: file.into(),
        error,
    };
    let bytes = match bytecode {
        Bytecode::Module(bytes) => bytes,
        Bytecode::Script(bytes) => {
            return run_script(ctx, bytes).map_err(|e| top(ScriptError::catch(ctx, e)))
        }
    };
    // SAFETY: the bytes were produced by `compile` with the same QuickJS build.
    let module =
        unsafe { Module::load(ctx.clone(), bytes) }.map_err(|e| top(ScriptError::catch(ctx, e)))?;
    let (module, promise) = module.eval().map_err(|e| top(ScriptError::catch(ctx, e)))?;
    while ctx.execute_pending_job() {}
    if let Some(Err(e)) = promise.result::<Value>() {
        return Err(top(ScriptError::catch(ctx, e)));
    }
    let ns = module
        .namespace()
        .map_err(|e| top(ScriptError::catch(ctx, e)))?;
    let default: Option<Object> = ns
        .get::<_, Value>("default")
        .ok()
        .and_then(|v| v.into_object());
    let pick = |name: &str| -> Option<Value<'js>> {
        let own: Value = ns.get(name).ok()?;
        if !own.is_undefined() {
            return Some(own);
        }
        let v: Value = default.as_ref()?.get(name).ok()?;
        (!v.is_undefined()).then_some(v)
    };
    let campaign = pick("campaign").filter(|v| v.is_object());
    let test = pick("test")
        .and_then(|v| v.into_function())
        .or_else(|| default.clone().and_then(|d| d.into_value().into_function()));
    Ok(Exports { campaign, test })
}

/// Runs a CommonJS file: its wrapper is called with `this` = `exports`, as node does,
/// and what it leaves in `module.exports` is read.
fn run_script<'js>(ctx: &Ctx<'js>, bytes: &[u8]) -> rquickjs::Result<Exports<'js>> {
    // SAFETY: the bytes were produced by `compile_script` with the same QuickJS build
    // and outlive the runtime (the campaign holds them); JS_EvalFunction takes
    // ownership of the function read, and its result is handed to `Value::from_raw`.
    let wrapper = unsafe {
        let raw = ctx.as_raw().as_ptr();
        let read = qjs::JS_ReadObject(
            raw,
            bytes.as_ptr(),
            bytes.len() as _,
            (qjs::JS_READ_OBJ_BYTECODE | qjs::JS_READ_OBJ_ROM_DATA) as i32,
        );
        if qjs::JS_IsException(read) {
            return Err(rquickjs::Error::Exception);
        }
        let value = qjs::JS_EvalFunction(raw, read);
        if qjs::JS_IsException(value) {
            return Err(rquickjs::Error::Exception);
        }
        Value::from_raw(ctx.clone(), value)
    };
    let wrapper: Function = wrapper.get()?;
    let exports = Object::new(ctx.clone())?;
    let module = Object::new(ctx.clone())?;
    module.set("exports", exports.clone())?;
    wrapper.call::<_, ()>((
        rquickjs::function::This(exports.clone()),
        exports,
        module.clone(),
    ))?;
    while ctx.execute_pending_job() {}
    let exported: Value = module.get("exports")?;
    let Some(obj) = exported.as_object() else {
        return Ok(Exports {
            campaign: None,
            test: exported.into_function(),
        });
    };
    let campaign = obj
        .get::<_, Value>("campaign")
        .ok()
        .filter(|v| v.is_object());
    let test = obj
        .get::<_, Value>("test")
        .ok()
        .and_then(|v| v.into_function())
        .or_else(|| exported.clone().into_function());
    Ok(Exports { campaign, test })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_module_syntax() {
        assert!(is_es_module(
            "export const campaign = {};\nexport function test(done) { done(); }"
        ));
        assert!(is_es_module("import { x } from 'y';\nexports.a = 1;"));
        assert!(!is_es_module("exports.campaign = {};\n// export later"));
        assert!(!is_es_module("var exported = 1; important();"));
    }
}
