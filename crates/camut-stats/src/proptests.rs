//! Property tests: any bytes, and any damage to a real histogram's bytes, decode or
//! give an error — never a panic, never an allocation the bytes claim.

use proptest::prelude::*;

use crate::codec::{decode_histogram, encode_histogram, Encoded};

/// The V2 bytes of a histogram holding `values`.
fn encoded(values: &[u64]) -> Vec<u8> {
    let mut h = crate::histogram();
    for v in values {
        let _ = h.record(*v);
    }
    encode_histogram(&h)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 500, ..ProptestConfig::default() })]

    #[test]
    fn any_bytes_decode_or_are_refused(bytes in prop::collection::vec(any::<u8>(), 0..120)) {
        let _ = decode_histogram(&bytes);
    }

    #[test]
    fn damaged_histograms_decode_or_are_refused(
        values in prop::collection::vec(any::<u64>(), 1..20),
        damage in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        let mut bytes = encoded(&values);
        for (at, byte) in damage {
            let i = at.index(bytes.len());
            bytes[i] = byte;
        }
        if truncate {
            bytes.truncate(cut.index(bytes.len()));
        }
        if let Ok(e) = Encoded::parse(&bytes) {
            let mut h = crate::histogram();
            let _ = e.add_to(&mut h);
        }
        let _ = decode_histogram(&bytes);
    }
}
