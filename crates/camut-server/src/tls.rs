//! TLS on the server's one port (rustls): the certificate from PEM files or made at
//! start (self-signed, rcgen), and the accepting side that hands finished TLS
//! connections to the gRPC server, so that the API, the drone stream, the console,
//! `/metrics` and `/healthz` are all served over TLS.
//!
//! Handshakes run in tasks of their own with a deadline, so a client that stalls in
//! its handshake holds up no one else. ALPN offers `h2` (gRPC, browsers) and
//! `http/1.1` (the console and `/healthz` for HTTP/1.1 clients).

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::{Connected, TcpConnectInfo};

use crate::error::ServerError;

/// How long a client has to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Handshaken connections waiting for the server to take them.
const ACCEPT_QUEUE: usize = 128;

fn tls_error(message: String) -> ServerError {
    ServerError::InvalidArgument {
        field: "tls".into(),
        message,
    }
}

/// A server certificate and its key, PEM.
#[derive(Clone)]
pub struct Identity {
    /// The certificate chain, PEM, the server's own first.
    pub cert_pem: String,
    /// The private key, PEM.
    pub key_pem: String,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity").finish_non_exhaustive()
    }
}

impl Identity {
    /// Reads a certificate chain and its key from PEM files.
    pub fn load(cert: &Path, key: &Path) -> Result<Identity, ServerError> {
        let read = |p: &Path, what: &str| {
            std::fs::read_to_string(p)
                .map_err(|e| tls_error(format!("cannot read the {what} {}: {e}", p.display())))
        };
        Ok(Identity {
            cert_pem: read(cert, "certificate")?,
            key_pem: read(key, "key")?,
        })
    }

    /// A self-signed certificate for `names` (DNS names or IP addresses), made now.
    pub fn self_signed(names: Vec<String>) -> Result<Identity, ServerError> {
        let ck = rcgen::generate_simple_self_signed(names)
            .map_err(|e| tls_error(format!("cannot make a certificate: {e}")))?;
        Ok(Identity {
            cert_pem: ck.cert.pem(),
            key_pem: ck.signing_key.serialize_pem(),
        })
    }

    /// The server's own certificate, DER (the first of the chain).
    fn leaf(&self) -> Result<CertificateDer<'static>, ServerError> {
        CertificateDer::pem_slice_iter(self.cert_pem.as_bytes())
            .next()
            .ok_or_else(|| tls_error("the certificate file holds no certificate".into()))?
            .map_err(|e| tls_error(format!("bad certificate PEM: {e}")))
    }

    /// The SHA-256 fingerprint of the server's certificate, as `AB:CD:…`.
    pub fn fingerprint(&self) -> Result<String, ServerError> {
        let leaf = self.leaf()?;
        let digest = ring::digest::digest(&ring::digest::SHA256, leaf.as_ref());
        Ok(digest
            .as_ref()
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect::<Vec<_>>()
            .join(":"))
    }

    /// The rustls configuration serving this identity: TLS 1.2 and 1.3, ALPN `h2` and
    /// `http/1.1`.
    pub fn server_config(&self) -> Result<Arc<rustls::ServerConfig>, ServerError> {
        let certs = CertificateDer::pem_slice_iter(self.cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| tls_error(format!("bad certificate PEM: {e}")))?;
        if certs.is_empty() {
            return Err(tls_error(
                "the certificate file holds no certificate".into(),
            ));
        }
        let key = PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes())
            .map_err(|e| tls_error(format!("bad key PEM: {e}")))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| tls_error(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|e| tls_error(format!("the certificate and key do not make a pair: {e}")))?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

/// A TLS connection as the gRPC server takes it; its connect info is the TCP
/// connection's, so handlers see the peer's address as they do without TLS.
pub struct TlsConnection(tokio_rustls::server::TlsStream<TcpStream>);

impl Connected for TlsConnection {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        self.0.get_ref().0.connect_info()
    }
}

impl AsyncRead for TlsConnection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsConnection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }
}

/// Accepts TCP connections on `listener` and yields those whose TLS handshake
/// succeeded; a failed handshake (a plaintext client, an untrusting one) is logged and
/// dropped. The accepting task ends when the stream is dropped.
pub fn incoming(
    listener: TcpListener,
    config: Arc<rustls::ServerConfig>,
) -> ReceiverStream<io::Result<TlsConnection>> {
    let (tx, rx) = tokio::sync::mpsc::channel(ACCEPT_QUEUE);
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    tokio::spawn(async move {
        loop {
            let (tcp, peer) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of descriptors and the like: wait a moment, as hyper does.
                        tracing::warn!("accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                () = tx.closed() => return,
            };
            let _ = tcp.set_nodelay(true);
            let acceptor = acceptor.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                    Ok(Ok(tls)) => {
                        let _ = tx.send(Ok(TlsConnection(tls))).await;
                    }
                    Ok(Err(e)) => handshake_failed(peer, &e.to_string()),
                    Err(_) => handshake_failed(peer, "no handshake within 10 s"),
                }
            });
        }
    });
    ReceiverStream::new(rx)
}

fn handshake_failed(peer: SocketAddr, why: &str) {
    tracing::info!(%peer, "TLS handshake failed: {why}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_self_signed_identity_serves_and_has_a_fingerprint() {
        let id = Identity::self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
        let config = id.server_config().unwrap();
        assert_eq!(
            config.alpn_protocols,
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        );
        let fp = id.fingerprint().unwrap();
        assert_eq!(fp.len(), 32 * 3 - 1, "{fp}");
        assert_ne!(
            fp,
            Identity::self_signed(vec!["localhost".into()])
                .unwrap()
                .fingerprint()
                .unwrap()
        );
        let bad = Identity {
            cert_pem: id.cert_pem.clone(),
            key_pem: Identity::self_signed(vec!["x".into()]).unwrap().key_pem,
        };
        let e = bad.server_config().unwrap_err().to_string();
        assert!(e.contains("do not make a pair"), "{e}");
    }
}
