//! The one wall clock of the project: Unix time in milliseconds.

use std::time::{SystemTime, UNIX_EPOCH};

/// Now, as milliseconds since the Unix epoch (0 on a clock set before 1970).
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    #[test]
    fn after_2020() {
        assert!(super::now_ms() > 1_577_836_800_000);
    }
}
