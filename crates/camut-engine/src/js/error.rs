//! JavaScript exceptions turned into Rust values.

use std::fmt;

use rquickjs::{Ctx, Exception, Value};
use serde::{Deserialize, Serialize};

/// An exception thrown by campaign code: its message and stack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScriptError {
    /// `Error.message`, or the thrown value as text.
    pub message: String,
    /// `Error.stack` when there is one.
    pub stack: Option<String>,
}

impl ScriptError {
    /// A script error with only a message.
    pub fn new(message: impl Into<String>) -> Self {
        ScriptError {
            message: message.into(),
            stack: None,
        }
    }

    /// Reads the pending exception of `ctx` (after a call returned `Error::Exception`).
    pub fn catch(ctx: &Ctx<'_>, err: rquickjs::Error) -> Self {
        match err {
            rquickjs::Error::Exception => Self::from_value(ctx.catch()),
            other => ScriptError::new(other.to_string()),
        }
    }

    /// Describes a thrown value.
    pub fn from_value(value: Value<'_>) -> Self {
        if let Some(obj) = value.as_object() {
            if let Some(ex) = Exception::from_object(obj.clone()) {
                let name: Option<String> = obj.get("name").ok();
                let message = ex.message().unwrap_or_default();
                let message = match name {
                    Some(n) if !n.is_empty() && n != "Error" => format!("{n}: {message}"),
                    _ => message,
                };
                let message = super::browser::hint_missing_global(&message).unwrap_or(message);
                let stack = ex.stack().filter(|s| !s.trim().is_empty());
                return ScriptError { message, stack };
            }
        }
        if value.is_null() || value.is_undefined() {
            return ScriptError::new(format!("thrown {}", value.type_name()));
        }
        let text = value
            .ctx()
            .json_stringify(value.clone())
            .ok()
            .flatten()
            .and_then(|s| s.to_string().ok())
            .or_else(|| value.as_string().and_then(|s| s.to_string().ok()))
            .unwrap_or_else(|| format!("thrown {}", value.type_name()));
        ScriptError::new(text.trim_matches('"').to_string())
    }
}

impl ScriptError {
    /// The error of an allocation past the runtime's `memoryLimit`, said so with the
    /// option's name. QuickJS throws `InternalError: out of memory`, or `null` when even
    /// that error cannot be made; a test may throw `null` itself, so that one is said
    /// with the doubt.
    pub(crate) fn explain_out_of_memory(mut self, limit_bytes: usize) -> Self {
        let hint = format!(
            "the JavaScript memory of a worker thread, shared by its VUs, is full \
             (memoryLimit: {} MB): raise memoryLimit, or keep less in memory",
            limit_bytes >> 20
        );
        if self.message == "InternalError: out of memory" {
            self.message = format!("out of memory: {hint}");
        } else if self.message == "thrown null" {
            self.message =
                format!("thrown null: out of memory unless the test threw null itself; {hint}");
        }
        self
    }
}

impl fmt::Display for ScriptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(stack) = &self.stack {
            write!(f, "\n{}", stack.trim_end())?;
        }
        Ok(())
    }
}

impl std::error::Error for ScriptError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_memory_names_memory_limit() {
        for thrown in ["InternalError: out of memory", "thrown null"] {
            let e = ScriptError::new(thrown).explain_out_of_memory(16 << 20);
            assert!(
                e.message.contains("out of memory") && e.message.contains("memoryLimit: 16 MB"),
                "{e}"
            );
        }
        let other = ScriptError::new("TypeError: x is undefined").explain_out_of_memory(1 << 20);
        assert_eq!(other.message, "TypeError: x is undefined");
    }
}
