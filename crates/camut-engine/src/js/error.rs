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
