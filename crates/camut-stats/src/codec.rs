//! Histograms as bytes (HdrHistogram V2 serialization), for shipping between processes.

use hdrhistogram::serialization::{Deserializer, Serializer, V2Serializer};
use hdrhistogram::Histogram;

/// A histogram that could not be decoded.
#[derive(Debug, thiserror::Error)]
#[error("invalid histogram bytes: {0}")]
pub struct CodecError(String);

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

/// Decodes a V2 histogram; empty bytes give an empty histogram. The result grows as needed.
pub fn decode_histogram(bytes: &[u8]) -> Result<Histogram<u64>, CodecError> {
    if bytes.is_empty() {
        return Ok(crate::histogram());
    }
    let mut h: Histogram<u64> = Deserializer::new()
        .deserialize(&mut &bytes[..])
        .map_err(|e| CodecError(format!("{e:?}")))?;
    h.auto(true);
    Ok(h)
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
