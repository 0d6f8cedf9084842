//! The campaign as a QuickJS module: CommonJS wrapping, bytecode, per-VU instantiation.

use rquickjs::module::WriteOptions;
use rquickjs::{Ctx, Function, Module, Object, Value};

use super::ScriptError;
use crate::campaign::CampaignError;

/// Put on line 1 (no newline) so that line numbers stay those of the file.
const PREFIX: &str = "var exports = {}, module = { exports: exports };";

/// Whether the source uses ES-module `export` statements.
fn is_es_module(source: &str) -> bool {
    source.lines().any(|l| {
        let l = l.trim_start();
        l.starts_with("export ") || l.starts_with("export{") || l.starts_with("export\t")
    })
}

fn wrap(source: &str) -> String {
    if is_es_module(source) {
        format!("{PREFIX}{source}")
    } else {
        format!("{PREFIX}{source}\n;export default module.exports;")
    }
}

/// Compiles the campaign source to module bytecode (needs a context with the compiler).
pub(crate) fn compile(
    ctx: &rquickjs::Context,
    file: &str,
    source: &str,
) -> Result<Vec<u8>, CampaignError> {
    ctx.with(|ctx| {
        let module = match Module::declare(ctx.clone(), file, wrap(source)) {
            Ok(m) => m,
            Err(e) => return Err(syntax_error(file, ScriptError::catch(&ctx, e))),
        };
        module
            .write(WriteOptions::default())
            .map_err(|e| CampaignError::Engine(format!("cannot write bytecode: {e}")))
    })
}

fn syntax_error(file: &str, err: ScriptError) -> CampaignError {
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
        column.saturating_sub(PREFIX.len() as u32).max(1)
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
    bytecode: &[u8],
) -> Result<Exports<'js>, CampaignError> {
    let top = |error: ScriptError| CampaignError::TopLevel {
        file: file.into(),
        error,
    };
    // SAFETY: the bytes were produced by `compile` with the same QuickJS build.
    let module = unsafe { Module::load(ctx.clone(), bytecode) }
        .map_err(|e| top(ScriptError::catch(ctx, e)))?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_module_syntax() {
        assert!(is_es_module(
            "export const campaign = {};\nexport function test(done) { done(); }"
        ));
        assert!(!is_es_module("exports.campaign = {};\n// export later"));
    }
}
