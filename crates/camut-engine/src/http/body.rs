//! Bodies: `form` URL-encoding, Basic credentials, and decoding of compressed responses.

use std::io::Read;

use base64::Engine as _;

/// `Accept-Encoding` sent when a call asks for `compressed: true`.
pub(crate) const ACCEPT_ENCODING: &str = "gzip, deflate, br";

/// `application/x-www-form-urlencoded` of `pairs`.
pub(crate) fn form_urlencoded(pairs: &[(String, String)]) -> String {
    let mut out = String::new();
    for (k, v) in pairs {
        if !out.is_empty() {
            out.push('&');
        }
        encode_component(k, &mut out);
        out.push('=');
        encode_component(v, &mut out);
    }
    out
}

fn encode_component(s: &str, out: &mut String) {
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'*' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => {
                const HEX: &[u8; 16] = b"0123456789ABCDEF";
                out.push('%');
                out.push(HEX[(b >> 4) as usize] as char);
                out.push(HEX[(b & 15) as usize] as char);
            }
        }
    }
}

/// The `Authorization` value for node's `auth: 'user:password'`.
pub(crate) fn basic_auth(user_password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(user_password)
    )
}

/// Decodes `body` by its `Content-Encoding` (gzip, deflate, br; `identity` or none:
/// unchanged). Unknown encodings are an error, as is a body that does not decode, or one
/// that decodes past `limit` bytes (`maxResponseBytes`: a small "zip bomb" cannot
/// exhaust memory).
pub(crate) fn decode(encoding: &str, body: &[u8], limit: u64) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let mut data = body.to_vec();
    // Encodings are listed in the order they were applied: undo them from the last.
    for coding in encoding.rsplit(',').map(|c| c.trim().to_ascii_lowercase()) {
        out.clear();
        let r = match coding.as_str() {
            "" | "identity" => continue,
            "gzip" | "x-gzip" => flate2::read::MultiGzDecoder::new(&data[..])
                .take(limit + 1)
                .read_to_end(&mut out),
            // "deflate" is zlib-wrapped by the standard, raw deflate by some servers.
            "deflate" if data.first().is_some_and(|b| b & 0x0f == 8) => {
                flate2::read::ZlibDecoder::new(&data[..])
                    .take(limit + 1)
                    .read_to_end(&mut out)
            }
            "deflate" => flate2::read::DeflateDecoder::new(&data[..])
                .take(limit + 1)
                .read_to_end(&mut out),
            "br" => brotli_decompressor::Decompressor::new(&data[..], 4096)
                .take(limit + 1)
                .read_to_end(&mut out),
            other => return Err(format!("unsupported content-encoding '{other}'")),
        };
        r.map_err(|e| format!("cannot decode the {coding} body: {e}"))?;
        if out.len() as u64 > limit {
            return Err(format!(
                "decoded {}",
                super::too_large(out.len() as u64, limit)
            ));
        }
        std::mem::swap(&mut data, &mut out);
    }
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn form_and_auth() {
        let pairs = vec![
            ("user".to_string(), "a b".to_string()),
            ("p&w".to_string(), "é=1".to_string()),
        ];
        assert_eq!(form_urlencoded(&pairs), "user=a+b&p%26w=%C3%A9%3D1");
        assert_eq!(
            basic_auth("aladdin:opensesame"),
            "Basic YWxhZGRpbjpvcGVuc2VzYW1l"
        );
    }

    #[test]
    fn gzip_and_deflate_decode() {
        let text = b"hello hello hello hello".repeat(10);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&text).unwrap();
        let gz = gz.finish().unwrap();
        assert_eq!(decode("gzip", &gz, 1 << 20).unwrap(), text);
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(&text).unwrap();
        assert_eq!(
            decode("deflate", &z.finish().unwrap(), 1 << 20).unwrap(),
            text
        );
        assert_eq!(decode("identity", b"x", 10).unwrap(), b"x");
        assert!(decode("gzip", b"not gzip", 10).is_err());
        assert!(decode("zstd", b"x", 10)
            .unwrap_err()
            .contains("unsupported"));
    }
}
