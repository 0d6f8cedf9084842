//! Property tests: any bytes from a server give a response or a clear error, never a
//! panic, and never a body past its limit.

use bytes::BytesMut;
use proptest::prelude::*;

use super::body;
use super::wire::{decode_chunks, parse_head, ChunkState};
use super::*;

/// Bytes that look like a response often enough to reach the body framings.
fn response_bytes() -> impl Strategy<Value = Vec<u8>> {
    let heads = prop::sample::select(vec![
        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 18446744073709551615\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n",
        "HTTP/1.1 100 Continue\r\n\r\n",
        "HTTP/1.0 204 No Content\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 10\r\n\r\n",
        "",
    ]);
    let tails = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..200),
        prop::sample::select(vec![
            "ffffffffffffffff\r\nx\r\n".as_bytes().to_vec(),
            b"5\r\nhello\r\n0\r\n\r\n".to_vec(),
            b"5;x=y\r\nhel".to_vec(),
            b"0\r\nTrailer: x\r\n\r\n".to_vec(),
        ]),
    ];
    (heads, tails).prop_map(|(h, t)| {
        let mut v = h.as_bytes().to_vec();
        v.extend(t);
        v
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 500, ..ProptestConfig::default() })]

    #[test]
    fn any_bytes_parse_as_a_head_or_an_error(bytes in response_bytes(), is_head in any::<bool>()) {
        let _ = parse_head(&bytes, is_head);
    }

    #[test]
    fn any_bytes_decode_as_chunks_or_an_error(bytes in response_bytes(), split in 0usize..64) {
        let mut state = ChunkState::Size;
        let mut body = Vec::new();
        let cut = split.min(bytes.len());
        let mut buf = BytesMut::from(&bytes[..cut]);
        if let Ok(false) = decode_chunks(&mut buf, &mut body, &mut state) {
            buf.extend_from_slice(&bytes[cut..]);
            let _ = decode_chunks(&mut buf, &mut body, &mut state);
        }
    }

    #[test]
    fn any_bytes_decode_by_encoding_within_the_limit(
        bytes in prop::collection::vec(any::<u8>(), 0..200),
        encoding in prop::sample::select(vec!["gzip", "deflate", "br", "identity", "gzip, br", "zstd", ""]),
    ) {
        if let Ok(out) = body::decode(encoding, &bytes, 1000) {
            prop_assert!(out.len() <= 1000);
        }
    }
}

proptest! {
    // Each case is a real exchange on loopback: fewer of them.
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn any_server_answer_gives_a_response_or_an_error(bytes in response_bytes()) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let answer = bytes.clone();
            let server = tokio::spawn(async move {
                let (mut s, _) = listener.accept().await.unwrap();
                let mut req = [0u8; 1024];
                let _ = s.read(&mut req).await;
                let _ = s.write_all(&answer).await;
            });
            let client = HttpClient::new(TlsSettings::default(), Arc::default());
            let out = client
                .send(HttpRequest {
                    method: Method::GET,
                    uri: format!("http://{addr}/").parse().unwrap(),
                    headers: Default::default(),
                    body: Bytes::new(),
                    timeout: Duration::from_secs(5),
                    tls: 0,
                    keep_alive: true,
                    response_body: BodyPolicy::Keep(64),
                })
                .await;
            let _ = server.await;
            assert!(out.body.len() <= 64, "a body past its limit was kept");
            assert!(out.error.is_some() || out.status.is_some());
        });
    }
}
