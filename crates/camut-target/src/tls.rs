//! HTTPS for the target: a self-signed certificate made at start (rcgen) and the
//! rustls acceptor that serves it.

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

/// A certificate and its key, PEM.
pub struct Identity {
    /// The certificate, PEM: what clients trust (`ca`) to reach the target.
    pub cert_pem: String,
    /// Its private key, PEM.
    pub key_pem: String,
}

impl Identity {
    /// A self-signed certificate for `localhost` and `127.0.0.1`.
    pub fn self_signed() -> Result<Identity, String> {
        let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
        let ck = rcgen::generate_simple_self_signed(names)
            .map_err(|e| format!("cannot make a certificate: {e}"))?;
        Ok(Identity {
            cert_pem: ck.cert.pem(),
            key_pem: ck.signing_key.serialize_pem(),
        })
    }

    /// A TLS acceptor serving this identity (TLS 1.2 and 1.3, ALPN `http/1.1`).
    pub fn acceptor(&self) -> Result<TlsAcceptor, String> {
        let certs = CertificateDer::pem_slice_iter(self.cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("bad certificate PEM: {e}"))?;
        let key = PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes())
            .map_err(|e| format!("bad key PEM: {e}"))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|e| format!("unusable certificate: {e}"))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(TlsAcceptor::from(Arc::new(config)))
    }
}
