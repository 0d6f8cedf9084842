//! HTTPS: TLS settings, the rustls client configurations built from them, the TLS
//! handshake and what a failed handshake is called.
//!
//! A configuration is built once per distinct set of settings and kept by the worker's
//! client; its index keys the keep-alive pool, so a connection made with one set of
//! settings (say, a client certificate) is never reused for a call with another.

use std::io;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::stream::Counted;

/// Oldest TLS version a client accepts (`minVersion`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize)]
pub enum TlsVersion {
    /// TLS 1.2 (the default: 1.2 and 1.3 are offered).
    #[default]
    Tls12,
    /// TLS 1.3 only.
    Tls13,
}

impl TlsVersion {
    /// Reads `'TLSv1.2'`, `'1.2'`, `'TLSv1.3'`, `'1.3'`.
    pub fn parse(s: &str) -> Result<TlsVersion, String> {
        match s
            .trim()
            .trim_start_matches("TLSv")
            .trim_start_matches("tlsv")
        {
            "1.2" => Ok(TlsVersion::Tls12),
            "1.3" => Ok(TlsVersion::Tls13),
            _ => Err(format!(
                "minVersion '{s}' is not supported: use 'TLSv1.2' or 'TLSv1.3'"
            )),
        }
    }
}

/// TLS settings of a call: the campaign's `tls` option with a call's own fields over it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, serde::Serialize)]
pub struct TlsSettings {
    /// Accept any server certificate (node's `rejectUnauthorized: false`).
    pub insecure_skip_verify: bool,
    /// Extra trusted CA certificates, PEM, besides the system roots.
    pub ca: Option<String>,
    /// Client certificate chain, PEM (mutual TLS).
    pub cert: Option<String>,
    /// Private key of the client certificate, PEM.
    pub key: Option<String>,
    /// Name sent as SNI and checked against the certificate instead of the URL's host.
    pub servername: Option<String>,
    /// Oldest version accepted.
    pub min_version: TlsVersion,
}

impl TlsSettings {
    /// Checks the PEM fields, so that a bad certificate is reported when the campaign
    /// loads rather than on every call.
    pub fn validate(&self) -> Result<(), String> {
        self.client_config().map(|_| ())
    }

    /// Builds the rustls configuration these settings describe.
    pub(crate) fn client_config(&self) -> Result<Arc<ClientConfig>, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let versions: &[&rustls::SupportedProtocolVersion] = match self.min_version {
            TlsVersion::Tls12 => &[&rustls::version::TLS13, &rustls::version::TLS12],
            TlsVersion::Tls13 => &[&rustls::version::TLS13],
        };
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(versions)
            .map_err(|e| format!("tls: {e}"))?;
        let builder = if self.insecure_skip_verify {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider)))
        } else {
            let mut roots = RootCertStore::empty();
            roots.roots.extend(system_roots().roots.iter().cloned());
            if let Some(pem) = &self.ca {
                let certs = pem_certs(pem, "ca")?;
                for c in certs {
                    roots
                        .add(c)
                        .map_err(|e| format!("tls: `ca` is not a usable CA certificate: {e}"))?;
                }
            }
            builder.with_root_certificates(roots)
        };
        let mut config = match (&self.cert, &self.key) {
            (Some(cert), Some(key)) => {
                let chain = pem_certs(cert, "cert")?;
                let key = PrivateKeyDer::from_pem_slice(key.as_bytes())
                    .map_err(|e| format!("tls: `key` holds no PEM private key: {e}"))?;
                builder.with_client_auth_cert(chain, key).map_err(|e| {
                    format!("tls: `cert` and `key` do not make a client identity: {e}")
                })?
            }
            (None, None) => builder.with_no_client_auth(),
            _ => return Err("tls: `cert` and `key` go together (mutual TLS needs both)".into()),
        };
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

fn pem_certs(pem: &str, field: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("tls: `{field}` is not PEM: {e}"))?;
    if certs.is_empty() {
        return Err(format!(
            "tls: `{field}` holds no PEM certificate (-----BEGIN CERTIFICATE-----)"
        ));
    }
    Ok(certs)
}

/// The system's trusted roots, read once per process.
fn system_roots() -> &'static RootCertStore {
    static ROOTS: OnceLock<RootCertStore> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let found = rustls_native_certs::load_native_certs();
        if !found.errors.is_empty() {
            tracing::warn!(errors = ?found.errors, "some system CA certificates could not be read");
        }
        let mut roots = RootCertStore::empty();
        let (added, ignored) = roots.add_parsable_certificates(found.certs);
        tracing::debug!(added, ignored, "system CA certificates loaded");
        roots
    })
}

/// `insecureSkipVerify`: any certificate is accepted; handshake signatures are still
/// checked, so the connection is encrypted to whoever holds the certificate's key.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A TLS connection over a counted TCP stream.
pub(crate) type TlsStream = tokio_rustls::client::TlsStream<Counted<TcpStream>>;

/// Runs the TLS handshake over `tcp` for `host` (or the configured `servername`);
/// returns the stream and how long the handshake took.
pub(crate) async fn handshake(
    config: Arc<ClientConfig>,
    servername: Option<&str>,
    host: &str,
    tcp: Counted<TcpStream>,
    deadline: Instant,
) -> Result<(TlsStream, Duration), String> {
    let name = servername.unwrap_or(host);
    let name = name.trim_start_matches('[').trim_end_matches(']');
    let server_name = ServerName::try_from(name.to_string())
        .map_err(|_| format!("TLS: '{name}' is not a valid server name"))?;
    let started = Instant::now();
    let connecting = TlsConnector::from(config).connect(server_name, tcp);
    match tokio::time::timeout_at(deadline.into(), connecting).await {
        Err(_) => Err("TLS handshake failed: handshake timeout".into()),
        Ok(Err(e)) => Err(handshake_error(&e, name)),
        Ok(Ok(s)) => Ok((s, started.elapsed())),
    }
}

/// Why a handshake failed, in words: unknown issuer, expired, name mismatch, …
pub(crate) fn handshake_error(e: &io::Error, name: &str) -> String {
    let Some(tls) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) else {
        return format!("TLS handshake failed: {}", super::io_message(e));
    };
    let why = match tls {
        rustls::Error::InvalidCertificate(c) => match c {
            CertificateError::UnknownIssuer => {
                "unknown issuer: the certificate is not signed by a trusted CA (add it with `ca`, or set `insecureSkipVerify`)".to_string()
            }
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                "certificate expired".to_string()
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                "certificate not valid yet".to_string()
            }
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                format!("name mismatch: the certificate is not valid for '{name}'")
            }
            CertificateError::Revoked => "certificate revoked".to_string(),
            other => format!("invalid certificate: {other:?}"),
        },
        rustls::Error::AlertReceived(alert) => format!("the server sent the alert {alert:?}"),
        other => other.to_string(),
    };
    format!("TLS handshake failed: {why}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handshake_errors_say_why() {
        let says = |e: rustls::Error| {
            handshake_error(&io::Error::new(io::ErrorKind::InvalidData, e), "a.test")
        };
        for (cert, why) in [
            (CertificateError::UnknownIssuer, "unknown issuer"),
            (CertificateError::Expired, "certificate expired"),
            (
                CertificateError::NotValidForName,
                "name mismatch: the certificate is not valid for 'a.test'",
            ),
            (CertificateError::NotValidYet, "not valid yet"),
        ] {
            let m = says(rustls::Error::InvalidCertificate(cert));
            assert!(
                m.starts_with("TLS handshake failed: ") && m.contains(why),
                "{m}"
            );
        }
        let refused = io::Error::new(io::ErrorKind::ConnectionReset, "reset by peer");
        assert!(handshake_error(&refused, "a.test").contains("ECONNRESET"));
    }

    #[test]
    fn versions_and_pem_checks() {
        assert_eq!(TlsVersion::parse("TLSv1.3"), Ok(TlsVersion::Tls13));
        assert_eq!(TlsVersion::parse("1.2"), Ok(TlsVersion::Tls12));
        assert!(TlsVersion::parse("TLSv1.1").is_err());
        let bad = TlsSettings {
            ca: Some("not a certificate".into()),
            ..Default::default()
        };
        assert!(bad
            .validate()
            .unwrap_err()
            .contains("`ca` holds no PEM certificate"));
        let half = TlsSettings {
            cert: Some("x".into()),
            ..Default::default()
        };
        assert!(half.validate().unwrap_err().contains("go together"));
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let ok = TlsSettings {
            ca: Some(ck.cert.pem()),
            cert: Some(ck.cert.pem()),
            key: Some(ck.signing_key.serialize_pem()),
            min_version: TlsVersion::Tls13,
            ..Default::default()
        };
        ok.validate().unwrap();
    }
}
