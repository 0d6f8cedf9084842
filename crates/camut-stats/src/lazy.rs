//! A histogram made on its first value.
//!
//! An HDR histogram of 3 significant figures costs 16 KB before it holds anything, and a
//! call series has six; a drone or a server following thousands of series would pay that
//! for every empty one. A [`LazyHistogram`] costs one pointer until a value arrives, and
//! then grows with the values it holds.

use std::borrow::Borrow;
use std::ops::Deref;
use std::sync::LazyLock;

use hdrhistogram::errors::RecordError;
use hdrhistogram::Histogram;

/// The histogram every empty [`LazyHistogram`] reads as.
static EMPTY: LazyLock<Histogram<u64>> = LazyLock::new(crate::histogram);

/// A histogram (3 significant figures, growing as needed) allocated on its first value.
/// It reads as a [`Histogram`] through `Deref`; it is written through its own methods.
#[derive(Debug, Clone, Default)]
pub struct LazyHistogram(Option<Box<Histogram<u64>>>);

impl LazyHistogram {
    /// The histogram, made now if it was not yet.
    pub fn get_mut(&mut self) -> &mut Histogram<u64> {
        self.0.get_or_insert_with(|| Box::new(crate::histogram()))
    }

    /// Records one value.
    pub fn record(&mut self, value: u64) -> Result<(), RecordError> {
        self.get_mut().record(value)
    }

    /// Records `count` occurrences of a value.
    pub fn record_n(&mut self, value: u64, count: u64) -> Result<(), RecordError> {
        self.get_mut().record_n(value, count)
    }

    /// Adds every value of `other` (exactly: auto-resizing histograms of the same
    /// precision always merge).
    pub fn add(&mut self, other: &Histogram<u64>) {
        if other.is_empty() {
            return;
        }
        match &mut self.0 {
            Some(h) => h
                .add(other)
                .expect("histograms of the same precision merge"),
            None => {
                let mut h = other.clone();
                h.auto(true);
                self.0 = Some(Box::new(h));
            }
        }
    }

    /// Whether a histogram was made (a value was recorded or added).
    pub fn is_made(&self) -> bool {
        self.0.is_some()
    }
}

impl Deref for LazyHistogram {
    type Target = Histogram<u64>;

    fn deref(&self) -> &Histogram<u64> {
        self.0.as_deref().unwrap_or(&EMPTY)
    }
}

/// So that `Histogram::add(&lazy)` reads it as the histogram it stands for.
impl Borrow<Histogram<u64>> for &LazyHistogram {
    fn borrow(&self) -> &Histogram<u64> {
        self
    }
}

impl From<Histogram<u64>> for LazyHistogram {
    fn from(mut h: Histogram<u64>) -> Self {
        h.auto(true);
        LazyHistogram(Some(Box::new(h)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_costs_nothing_and_reads_as_empty() {
        let h = LazyHistogram::default();
        assert!(!h.is_made());
        assert!(h.is_empty());
        assert_eq!((h.len(), h.max(), h.value_at_quantile(0.99)), (0, 0, 0));
        assert_eq!(std::mem::size_of::<LazyHistogram>(), 8);
    }

    #[test]
    fn records_and_adds_exactly() {
        let mut a = LazyHistogram::default();
        a.record(5).unwrap();
        a.record_n(1_000_000, 3).unwrap();
        let mut b = LazyHistogram::default();
        b.add(&a);
        b.add(&crate::histogram());
        assert_eq!(b.len(), 4);
        assert_eq!(b.max(), a.max());
        let mut other = crate::histogram();
        other.record(7).unwrap();
        b.add(&other);
        assert_eq!((b.len(), b.min()), (5, 5));
        // Values far past what was seen still fit: the copy kept auto-resizing.
        b.record(u64::MAX / 4).unwrap();
        assert_eq!(b.len(), 6);
    }
}
