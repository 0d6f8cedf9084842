//! The API token: one check, in constant time, for gRPC calls, `/metrics` and the
//! console; the strength rule every configured token must pass, and a generator of
//! strong ones.

use std::sync::Arc;

/// The server's API token, or none (a loopback server may run without one).
#[derive(Debug, Clone, Default)]
pub struct ApiToken(Option<Arc<str>>);

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The request carries no token.
    Missing,
    /// The request carries another token.
    Wrong,
}

/// Compares without stopping at the first difference.
pub(crate) fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// The shortest API token accepted, in characters.
pub const MIN_TOKEN_LEN: usize = 16;

/// Checks the rule every API token must pass: at least [`MIN_TOKEN_LEN`] characters,
/// all printable ASCII without spaces (it travels in an HTTP header). The error names
/// the rule.
pub fn check_strength(token: &str) -> Result<(), String> {
    let len = token.chars().count();
    if len < MIN_TOKEN_LEN {
        return Err(format!(
            "the API token must be at least {MIN_TOKEN_LEN} characters long (this one has {len}); `camut server --generate-token` makes a strong one"
        ));
    }
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(
            "the API token must be printable ASCII without spaces (it is sent in a header)".into(),
        );
    }
    Ok(())
}

/// A strong random token: 192 bits from the system's generator, as 48 hex digits.
pub fn generate_token() -> std::io::Result<String> {
    use std::io::Read as _;
    let mut bytes = [0u8; 24];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

impl ApiToken {
    /// The token; an empty one means none.
    pub fn new(token: Option<String>) -> ApiToken {
        ApiToken(token.filter(|t| !t.is_empty()).map(Arc::from))
    }

    /// Whether the server has a token.
    pub fn is_set(&self) -> bool {
        self.0.is_some()
    }

    /// Whether `given` is the token (in constant time); true when there is none.
    pub fn admits(&self, given: &str) -> bool {
        self.0.as_deref().is_none_or(|t| same(given, t))
    }

    /// Checks an `Authorization` header value (`Bearer <token>`).
    pub fn check_bearer(&self, header: Option<&str>) -> Result<(), Refusal> {
        if !self.is_set() {
            return Ok(());
        }
        match header.and_then(|v| v.strip_prefix("Bearer ")) {
            Some(t) if self.admits(t) => Ok(()),
            Some(_) => Err(Refusal::Wrong),
            None => Err(Refusal::Missing),
        }
    }

    /// The console cookie's value for this token: the token in hex.
    pub fn cookie_value(&self) -> Option<String> {
        self.0.as_deref().map(hex)
    }
}

/// Hex of a token, as the console's cookie holds it.
pub(crate) fn hex(token: &str) -> String {
    token.bytes().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_bearer_headers() {
        let none = ApiToken::new(Some(String::new()));
        assert!(!none.is_set());
        assert_eq!(none.check_bearer(None), Ok(()));
        let t = ApiToken::new(Some("s3cret".into()));
        assert_eq!(t.check_bearer(Some("Bearer s3cret")), Ok(()));
        assert_eq!(t.check_bearer(Some("Bearer s3cre")), Err(Refusal::Wrong));
        assert_eq!(t.check_bearer(Some("Bearer s3cret2")), Err(Refusal::Wrong));
        assert_eq!(t.check_bearer(Some("s3cret")), Err(Refusal::Missing));
        assert_eq!(t.check_bearer(None), Err(Refusal::Missing));
        assert_eq!(t.cookie_value().as_deref(), Some("733363726574"));
        assert!(t.admits("s3cret") && !t.admits(""));
    }

    #[test]
    fn weak_tokens_are_refused_and_generated_ones_pass() {
        for weak in [" ", "a", "s3cret", "fifteen-chars-x"] {
            let e = check_strength(weak).unwrap_err();
            assert!(e.contains("at least 16 characters"), "{weak:?}: {e}");
        }
        assert!(check_strength("sixteen chars ok")
            .unwrap_err()
            .contains("without spaces"));
        assert!(check_strength("sixteen-chars-ok").is_ok());
        let a = generate_token().unwrap();
        let b = generate_token().unwrap();
        assert_eq!(a.len(), 48);
        assert_ne!(a, b);
        assert!(check_strength(&a).is_ok());
    }
}
