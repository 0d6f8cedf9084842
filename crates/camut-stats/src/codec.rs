//! Histograms as bytes (HdrHistogram V2 serialization), for shipping between processes.
//!
//! Encoding uses the hdrhistogram crate. Decoding reads the V2 payload here, for two
//! reasons: a header's claims (its highest trackable value, its payload length) are never
//! trusted with an allocation, and [`Encoded::add_to`] merges a payload into a histogram
//! entry by entry, so the server merges a drone's delta at the cost of the values it
//! holds, not of a full-size counts array built and then added.

use hdrhistogram::serialization::{Serializer, V2Serializer};
use hdrhistogram::Histogram;

/// A histogram that could not be decoded.
#[derive(Debug, thiserror::Error)]
#[error("invalid histogram bytes: {0}")]
pub struct CodecError(String);

/// The V2 cookie of an uncompressed histogram of 64-bit counts.
const V2_COOKIE: u32 = 0x1c84_9313;
/// The V2 cookie of a deflate-compressed histogram (not accepted).
const V2_COMPRESSED_COOKIE: u32 = 0x1c84_9314;
/// Bytes before the payload.
const HEADER_LEN: usize = 40;

/// Encodes a histogram in the V2 format (empty bytes for an empty histogram).
pub fn encode_histogram(h: &Histogram<u64>) -> Vec<u8> {
    if h.is_empty() {
        return Vec::new();
    }
    let mut out = Vec::new();
    V2Serializer::new()
        .serialize(h, &mut out)
        .expect("writing to a Vec cannot fail");
    out
}

/// Decodes a V2 histogram; empty bytes give an empty histogram. The result is sized for
/// the values it holds and grows as needed.
pub fn decode_histogram(bytes: &[u8]) -> Result<Histogram<u64>, CodecError> {
    let e = Encoded::parse(bytes)?;
    let mut h = match e.last {
        Some((_, max, _)) => Histogram::new_with_bounds(1, max.max(2), 3)
            .map_err(|err| CodecError(format!("cannot hold values up to {max}: {err:?}")))?,
        None => crate::histogram(),
    };
    h.auto(true);
    e.add_to(&mut h)?;
    Ok(h)
}

/// How a histogram's counts array maps indexes to values (the V2 header's precision and
/// lowest discernible value).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Layout {
    sub_bucket_count_magnitude: u32,
    sub_bucket_half_count_magnitude: u32,
    unit_magnitude: u32,
}

impl Layout {
    fn new(sigfig: u32, lowest: u64) -> Result<Layout, CodecError> {
        if sigfig > 5 {
            return Err(CodecError(format!(
                "{sigfig} significant figures (at most 5)"
            )));
        }
        if lowest == 0 || lowest > u64::MAX / 2 {
            return Err(CodecError(format!("lowest discernible value {lowest}")));
        }
        let largest = 2 * 10u64.pow(sigfig);
        let sub_bucket_count_magnitude = 64 - (largest - 1).leading_zeros();
        let unit_magnitude = 63 - lowest.leading_zeros();
        if unit_magnitude + sub_bucket_count_magnitude > 63 {
            return Err(CodecError(format!(
                "{sigfig} significant figures cannot be kept above {lowest}"
            )));
        }
        Ok(Layout {
            sub_bucket_count_magnitude,
            sub_bucket_half_count_magnitude: sub_bucket_count_magnitude - 1,
            unit_magnitude,
        })
    }

    /// The lowest value counted at `index`, or an error naming it past the largest u64.
    fn checked_value_at(&self, index: u64) -> Result<u64, CodecError> {
        self.value_at(index)
            .ok_or_else(|| CodecError(format!("entry {index} lies beyond the largest value")))
    }

    /// The lowest value counted at `index`, or `None` past the largest u64.
    fn value_at(&self, index: u64) -> Option<u64> {
        let half = 1u64 << self.sub_bucket_half_count_magnitude;
        let bucket = index >> self.sub_bucket_half_count_magnitude;
        let (bucket, sub) = if bucket == 0 {
            (0, index)
        } else {
            (bucket - 1, (index & (half - 1)) + half)
        };
        let shift = bucket.checked_add(u64::from(self.unit_magnitude))?;
        if shift + u64::from(self.sub_bucket_count_magnitude) > 64 {
            return None;
        }
        Some(sub << shift)
    }
}

/// A checked V2 histogram: its counts can be read or merged without allocating.
#[derive(Debug, Clone, Copy)]
pub struct Encoded<'a> {
    layout: Layout,
    payload: &'a [u8],
    /// The last non-zero entry: index, value, count.
    last: Option<(u64, u64, u64)>,
    total: u64,
}

impl<'a> Encoded<'a> {
    /// Checks the header and every entry of `bytes` (empty bytes are an empty histogram).
    pub fn parse(bytes: &'a [u8]) -> Result<Encoded<'a>, CodecError> {
        let mut e = Encoded {
            layout: Layout::new(3, 1)?,
            payload: &[],
            last: None,
            total: 0,
        };
        if bytes.is_empty() {
            return Ok(e);
        }
        if bytes.len() < HEADER_LEN {
            return Err(CodecError(format!(
                "{} bytes is shorter than the {HEADER_LEN}-byte header",
                bytes.len()
            )));
        }
        let u32_at = |i: usize| u32::from_be_bytes(bytes[i..i + 4].try_into().expect("4 bytes"));
        let u64_at = |i: usize| u64::from_be_bytes(bytes[i..i + 8].try_into().expect("8 bytes"));
        match u32_at(0) {
            V2_COOKIE => {}
            V2_COMPRESSED_COOKIE => {
                return Err(CodecError("compressed histograms are not accepted".into()))
            }
            c => return Err(CodecError(format!("unknown cookie {c:#x}"))),
        }
        let payload_len = u32_at(4) as usize;
        if payload_len != bytes.len() - HEADER_LEN {
            return Err(CodecError(format!(
                "the header announces {payload_len} payload bytes, {} follow",
                bytes.len() - HEADER_LEN
            )));
        }
        if u32_at(8) != 0 {
            return Err(CodecError(
                "normalizing index offsets are not accepted".into(),
            ));
        }
        if f64::from_bits(u64_at(32)) != 1.0 {
            return Err(CodecError(
                "integer-to-double ratios other than 1 are not accepted".into(),
            ));
        }
        e.layout = Layout::new(u32_at(12), u64_at(16))?;
        e.payload = &bytes[HEADER_LEN..];
        let mut total = 0u64;
        let mut last = None;
        e.walk_indexes(|index, count| {
            total = total.saturating_add(count);
            last = Some((index, count));
        })?;
        e.total = total;
        e.last = match last {
            Some((index, count)) => Some((index, e.layout.checked_value_at(index)?, count)),
            None => None,
        };
        Ok(e)
    }

    /// Whether its layout is that of [`crate::histogram`], the one [`FlatCounts`] adds.
    pub fn is_standard(&self) -> bool {
        self.layout == STANDARD
    }

    /// Values counted.
    pub fn len(&self) -> u64 {
        self.total
    }

    /// Whether nothing is counted.
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// Adds every count into `into`, which grows as needed (once, to the largest value).
    pub fn add_to(&self, into: &mut Histogram<u64>) -> Result<(), CodecError> {
        let Some((last, max, count)) = self.last else {
            return Ok(());
        };
        // The largest first, so that the counts array grows at most once.
        record(into, max, count)?;
        let mut failed = None;
        self.walk(|index, value, count| {
            if index != last && failed.is_none() {
                failed = record(into, value, count).err();
            }
        })?;
        failed.map_or(Ok(()), Err)
    }

    /// Adds every count into a lazy histogram, which is made only when there is one.
    pub fn add_to_lazy(&self, into: &mut crate::LazyHistogram) -> Result<(), CodecError> {
        if self.last.is_none() {
            return Ok(());
        }
        self.add_to(into.get_mut())
    }

    /// Calls `f(index, count)` for every non-zero entry, in index order, without
    /// working out values (each index is below the next, so the last one alone says
    /// whether they all map to a value).
    fn walk_indexes(&self, mut f: impl FnMut(u64, u64)) -> Result<(), CodecError> {
        let payload = self.payload;
        let mut at = 0usize;
        let mut index = 0u64;
        // One ZigZag LEB128 entry: a count, or (negative) a run of zero counts.
        let mut entry = |raw: u64, index: &mut u64| -> Result<(), CodecError> {
            let n = ((raw >> 1) as i64) ^ -((raw & 1) as i64);
            if n < 0 {
                *index = index
                    .checked_add(n.unsigned_abs())
                    .ok_or_else(|| CodecError("a run of zeros overflows the index".into()))?;
                return Ok(());
            }
            if n > 0 {
                f(*index, n as u64);
            }
            *index = index
                .checked_add(1)
                .ok_or_else(|| CodecError("an entry overflows the index".into()))?;
            Ok(())
        };
        while at < payload.len() {
            let (raw, used) = read_varint(&payload[at..]).ok_or_else(|| {
                CodecError(format!("the payload ends inside a number at byte {at}"))
            })?;
            at += used;
            entry(raw, &mut index)?;
        }
        Ok(())
    }

    /// Calls `f(index, value, count)` for every non-zero entry, in index order.
    fn walk(&self, mut f: impl FnMut(u64, u64, u64)) -> Result<(), CodecError> {
        let layout = self.layout;
        let mut failed = None;
        self.walk_indexes(|index, count| {
            if failed.is_none() {
                match layout.checked_value_at(index) {
                    Ok(value) => f(index, value, count),
                    Err(e) => failed = Some(e),
                }
            }
        })?;
        failed.map_or(Ok(()), Err)
    }
}

/// Counts of histograms of the standard layout (3 significant figures from 1, that of
/// [`crate::histogram`]) added by index: adding an encoded histogram costs one array
/// addition per entry, with no value-to-index conversion nor bounds bookkeeping, and
/// [`FlatCounts::record_into`] records each distinct index once. A server merging
/// thousands of drones' deltas a second adds them here and records once a tick.
///
/// Its array reaches the largest index added (at most 56,320 entries, 440 KB, for
/// values up to 2⁶³; about 14,000 for values up to 10⁷) and is freed by
/// [`FlatCounts::clear`].
#[derive(Debug, Clone, Default)]
pub struct FlatCounts {
    counts: Vec<u64>,
}

impl FlatCounts {
    /// Whether nothing was added since the last [`FlatCounts::clear`].
    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }

    /// Adds `e` when it has the standard layout and returns true; returns false, adding
    /// nothing, when it has another (the caller records it value by value).
    pub fn add(&mut self, e: &Encoded<'_>) -> bool {
        let Some((last, _, _)) = e.last else {
            return true;
        };
        if !e.is_standard() {
            return false;
        }
        // `parse` checked that the last index maps to a value: it is below 56,320.
        let need = last as usize + 1;
        if self.counts.len() < need {
            self.counts.resize(need, 0);
        }
        let counts = &mut self.counts;
        // Checked by `parse`: the walk does not fail here.
        let _ = e.walk_indexes(|index, count| {
            if let Some(c) = counts.get_mut(index as usize) {
                *c = c.saturating_add(count);
            }
        });
        true
    }

    /// Records every count into `into` (the largest index first, so that it grows once).
    pub fn record_into(&self, into: &mut crate::LazyHistogram) -> Result<(), CodecError> {
        let Some(last) = self.counts.iter().rposition(|c| *c > 0) else {
            return Ok(());
        };
        let h = into.get_mut();
        let mut record_at =
            |index: usize, count| record(h, STANDARD.checked_value_at(index as u64)?, count);
        record_at(last, self.counts[last])?;
        for (index, &count) in self.counts[..last].iter().enumerate() {
            if count > 0 {
                record_at(index, count)?;
            }
        }
        Ok(())
    }

    /// Forgets every count and frees the array.
    pub fn clear(&mut self) {
        self.counts = Vec::new();
    }
}

/// The layout of [`crate::histogram`]: 3 significant figures (2,048 sub-buckets), lowest
/// value 1 (`Layout::new(3, 1)`, checked by a test).
const STANDARD: Layout = Layout {
    sub_bucket_count_magnitude: 11,
    sub_bucket_half_count_magnitude: 10,
    unit_magnitude: 0,
};

/// Records `count` values `value` into `h`.
fn record(h: &mut Histogram<u64>, value: u64, count: u64) -> Result<(), CodecError> {
    h.record_n(value, count)
        .map_err(|e| CodecError(format!("cannot record {value}: {e:?}")))
}

/// Reads one LEB128 number of at most 9 bytes (the 9th byte carries 8 bits); returns it
/// and the bytes it took, or `None` when `b` ends first.
#[inline]
fn read_varint(b: &[u8]) -> Option<(u64, usize)> {
    // Most entries of a delta are small counts or short runs of zeros: one byte.
    match b.first() {
        Some(&byte) if byte & 0x80 == 0 => return Some((u64::from(byte), 1)),
        None => return None,
        Some(_) => {}
    }
    let mut value = 0u64;
    for i in 0..8 {
        let byte = *b.get(i)?;
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    Some((value | (u64::from(*b.get(8)?) << 56), 9))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_standard_layout_is_that_of_new_histograms() {
        assert_eq!(STANDARD, Layout::new(3, 1).unwrap());
        let mut h = crate::histogram();
        h.record(1).unwrap();
        let bytes = encode_histogram(&h);
        assert_eq!(Encoded::parse(&bytes).unwrap().layout, STANDARD);
    }

    #[test]
    fn round_trip_is_exact_and_mergeable() {
        let mut h = crate::histogram();
        for v in [1u64, 7, 300, 12_345, 9_999_999] {
            h.record(v).unwrap();
        }
        let back = decode_histogram(&encode_histogram(&h)).unwrap();
        assert_eq!(back.len(), 5);
        assert_eq!(back.max(), h.max());
        assert_eq!(back.value_at_quantile(0.5), h.value_at_quantile(0.5));
        let mut merged = crate::histogram();
        merged.add(&back).unwrap();
        merged.record(50_000_000_000).unwrap();
        assert_eq!(merged.len(), 6);
        assert!(decode_histogram(&[]).unwrap().is_empty());
        assert!(decode_histogram(b"garbage").is_err());
    }

    /// Every recorded value and count, as (value, count) pairs.
    fn entries(h: &Histogram<u64>) -> Vec<(u64, u64)> {
        h.iter_recorded()
            .map(|v| (v.value_iterated_to(), v.count_at_value()))
            .collect()
    }

    #[test]
    fn decoding_matches_the_library_over_the_whole_range() {
        let mut h = crate::histogram();
        let mut v = 1u64;
        let mut n = 1u64;
        // Values across every bucket up to the largest u64, with repeats and zeros.
        while v < u64::MAX / 3 {
            h.record_n(v, n).unwrap();
            v = v * 3 + 1;
            n = n * 7 % 1000 + 1;
        }
        h.record_n(0, 4).unwrap();
        h.record(u64::MAX / 2).unwrap();
        let bytes = encode_histogram(&h);
        let ours = decode_histogram(&bytes).unwrap();
        let theirs: Histogram<u64> = hdrhistogram::serialization::Deserializer::new()
            .deserialize(&mut &bytes[..])
            .unwrap();
        assert_eq!(entries(&ours), entries(&theirs));
        assert_eq!(entries(&ours), entries(&h));
        assert_eq!(
            (ours.len(), ours.min(), ours.max()),
            (h.len(), h.min(), h.max())
        );
    }

    #[test]
    fn add_to_equals_a_histogram_merge() {
        let mut a = crate::histogram();
        let mut b = crate::histogram();
        for i in 1..=5000u64 {
            a.record(i * 13).unwrap();
            b.record_n(i * i, i % 5 + 1).unwrap();
        }
        let mut by_merge = a.clone();
        by_merge.add(&b).unwrap();
        let mut by_bytes = a.clone();
        let bytes = encode_histogram(&b);
        let e = Encoded::parse(&bytes).unwrap();
        assert_eq!(e.len(), b.len());
        e.add_to(&mut by_bytes).unwrap();
        assert_eq!(entries(&by_bytes), entries(&by_merge));
        assert_eq!(by_bytes.len(), by_merge.len());
        assert_eq!(by_bytes.max(), by_merge.max());
        assert_eq!(by_bytes.min(), by_merge.min());
    }

    fn header(payload_len: u32, sigfig: u32, lowest: u64, highest: u64) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend(V2_COOKIE.to_be_bytes());
        b.extend(payload_len.to_be_bytes());
        b.extend(0u32.to_be_bytes());
        b.extend(sigfig.to_be_bytes());
        b.extend(lowest.to_be_bytes());
        b.extend(highest.to_be_bytes());
        b.extend(1.0f64.to_bits().to_be_bytes());
        b
    }

    #[test]
    fn a_header_claim_allocates_nothing() {
        // A 40-byte header claiming the largest range and no payload: an empty histogram,
        // sized for nothing.
        let bytes = header(0, 5, 1, u64::MAX);
        let h = decode_histogram(&bytes).unwrap();
        assert!(h.is_empty());
        assert!(h.distinct_values() < 5000, "{}", h.distinct_values());
    }

    #[test]
    fn malformed_bytes_are_refused_with_a_reason() {
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (vec![1, 2, 3], "shorter than"),
            (header(10, 3, 1, 1000), "announces 10 payload bytes"),
            (
                {
                    let mut b = header(1, 3, 1, 1000);
                    b.push(0x80);
                    b
                },
                "ends inside a number",
            ),
            (header(0, 9, 1, 1000), "significant figures"),
            (header(0, 3, 0, 1000), "lowest discernible"),
            (
                {
                    // a run of 2^62 zeros, then a count: far beyond the largest value
                    let mut b = header(10, 3, 1, 1000);
                    let zz = ((1u64 << 62) << 1) - 1; // zig-zag of -(2^62)
                    let mut v = zz;
                    for _ in 0..8 {
                        b.push((v as u8 & 0x7f) | 0x80);
                        v >>= 7;
                    }
                    b.push(v as u8);
                    b.push(2); // count 1
                    b
                },
                "beyond the largest value",
            ),
        ];
        for (bytes, why) in cases {
            let err = decode_histogram(&bytes).unwrap_err().to_string();
            assert!(err.contains(why), "{err} should say {why}");
        }
        let mut compressed = header(0, 3, 1, 1000);
        compressed[..4].copy_from_slice(&V2_COMPRESSED_COOKIE.to_be_bytes());
        assert!(decode_histogram(&compressed)
            .unwrap_err()
            .to_string()
            .contains("compressed"));
    }
}
