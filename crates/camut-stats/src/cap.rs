//! A bound on the distinct operations a run records.
//!
//! The default operation tag is the method and path, so a test that puts an id in the
//! path makes one series per id, and every series costs memory on the drone and on the
//! server for the whole run. Past the bound, calls are counted under one overflow
//! operation instead.

use std::collections::HashSet;

/// The operation under which calls past the bound are counted.
pub const OVERFLOW_OPERATION: &str = "(other operations)";

/// The bound when a campaign sets none (campaign option `maxOperations`).
pub const DEFAULT_MAX_OPERATIONS: u32 = 1000;

/// The largest `maxOperations` a campaign may set.
pub const MAX_MAX_OPERATIONS: u32 = 100_000;

/// Admits at most `max` distinct operations; the others become [`OVERFLOW_OPERATION`].
#[derive(Debug, Clone)]
pub struct OperationCap {
    max: usize,
    admitted: HashSet<String>,
    overflowed: u64,
}

impl Default for OperationCap {
    fn default() -> Self {
        OperationCap::new(DEFAULT_MAX_OPERATIONS)
    }
}

impl OperationCap {
    /// A bound of `max` operations.
    pub fn new(max: u32) -> OperationCap {
        OperationCap {
            max: max as usize,
            admitted: HashSet::new(),
            overflowed: 0,
        }
    }

    /// The bound.
    pub fn max(&self) -> u32 {
        self.max as u32
    }

    /// The operation to record `operation` under: itself while it is one of the first
    /// `max` seen, else [`OVERFLOW_OPERATION`].
    pub fn admit<'a>(&mut self, operation: &'a str) -> &'a str {
        if operation == OVERFLOW_OPERATION || self.admitted.contains(operation) {
            return operation;
        }
        if self.admitted.len() < self.max {
            self.admitted.insert(operation.to_string());
            return operation;
        }
        self.overflowed += 1;
        OVERFLOW_OPERATION
    }

    /// How many times an operation was refused so far.
    pub fn overflowed(&self) -> u64 {
        self.overflowed
    }

    /// The warning to show when the bound is first reached.
    pub fn warning(&self) -> String {
        format!(
            "more than {} distinct operations (campaign option maxOperations): further calls are counted under '{OVERFLOW_OPERATION}'. Give calls whose URL varies an `operation` tag, e.g. camut.http({{ url: base + '/item/' + id, operation: 'GET /item/:id' }}), or raise maxOperations (at most {MAX_MAX_OPERATIONS})",
            self.max
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admits_the_first_max_and_overflows_the_rest() {
        let mut cap = OperationCap::new(2);
        assert_eq!(cap.admit("a"), "a");
        assert_eq!(cap.admit("b"), "b");
        assert_eq!(cap.admit("a"), "a");
        assert_eq!(cap.admit("c"), OVERFLOW_OPERATION);
        assert_eq!(cap.admit("d"), OVERFLOW_OPERATION);
        assert_eq!(cap.admit(OVERFLOW_OPERATION), OVERFLOW_OPERATION);
        assert_eq!(cap.admit("b"), "b");
        assert_eq!(cap.overflowed(), 2);
        assert!(cap.warning().contains("maxOperations"));
    }
}
