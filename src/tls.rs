//! TLS for everything that dials a Camut server or deployer (the [`Client`], drones,
//! the server's remote deployers): `https://` URLs verified against the system's roots
//! or a given CA certificate, or — explicitly, and loudly — not verified at all.
//!
//! [`Client`]: crate::Client

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use hyper_util::rt::TokioIo;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::net::TcpStream;
use tonic::codegen::http::Uri;
use tonic::transport::{Channel, Endpoint};

/// The environment variable naming the CA certificate file (PEM) to trust.
pub const CA_ENV: &str = "CAMUT_CA";

/// What can go wrong setting TLS up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The CA file cannot be read or holds no certificate.
    #[error("CA file {path}: {reason}")]
    Ca {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// rustls refused the configuration.
    #[error("TLS: {0}")]
    Config(String),
}

/// How a client checks the server's certificate on `https://` URLs (plain `http://`
/// URLs ignore it).
#[derive(Clone, Default)]
pub struct TlsOptions {
    /// Trust only these CA certificates (DER); none: the system's roots.
    ca: Option<Vec<CertificateDer<'static>>>,
    /// Accept any certificate (no authentication of the server).
    insecure: bool,
}

impl std::fmt::Debug for TlsOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsOptions")
            .field("ca_certificates", &self.ca.as_ref().map(Vec::len))
            .field("insecure", &self.insecure)
            .finish()
    }
}

impl TlsOptions {
    /// Verify against the system's roots.
    pub fn system_roots() -> TlsOptions {
        TlsOptions::default()
    }

    /// Verify against the CA certificates of a PEM text only.
    pub fn with_ca_pem(pem: &str) -> Result<TlsOptions, String> {
        let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("bad PEM: {e}"))?;
        if certs.is_empty() {
            return Err("no certificate in it".into());
        }
        Ok(TlsOptions {
            ca: Some(certs),
            insecure: false,
        })
    }

    /// Verify against the CA certificates of a PEM file only.
    pub fn with_ca_file(path: &Path) -> Result<TlsOptions, TlsError> {
        let fail = |reason: String| TlsError::Ca {
            path: path.to_path_buf(),
            reason,
        };
        let pem = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
        TlsOptions::with_ca_pem(&pem).map_err(fail)
    }

    /// Accept any certificate: the connection is encrypted but the server is not
    /// authenticated, so anyone on the path can stand in for it.
    pub fn insecure() -> TlsOptions {
        TlsOptions {
            ca: None,
            insecure: true,
        }
    }

    /// What a command line asks for: `--insecure`, else `--ca FILE`, else `$CAMUT_CA`,
    /// else the system's roots.
    pub fn from_args(ca: Option<&Path>, insecure: bool) -> Result<TlsOptions, TlsError> {
        if insecure {
            return Ok(TlsOptions::insecure());
        }
        let env = std::env::var_os(CA_ENV).filter(|v| !v.is_empty());
        match ca.map(Path::to_path_buf).or(env.map(PathBuf::from)) {
            Some(path) => TlsOptions::with_ca_file(&path),
            None => Ok(TlsOptions::system_roots()),
        }
    }

    /// Whether certificates go unchecked.
    pub fn is_insecure(&self) -> bool {
        self.insecure
    }

    /// The rustls configuration: TLS 1.2 and 1.3, ALPN `h2`.
    pub fn client_config(&self) -> Result<Arc<rustls::ClientConfig>, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?;
        let mut config = if self.insecure {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
                .with_no_client_auth()
        } else {
            let mut roots = rustls::RootCertStore::empty();
            match &self.ca {
                Some(certs) => {
                    for c in certs {
                        roots
                            .add(c.clone())
                            .map_err(|e| TlsError::Config(format!("unusable CA: {e}")))?;
                    }
                }
                None => {
                    let found = rustls_native_certs::load_native_certs();
                    roots.add_parsable_certificates(found.certs);
                    if roots.is_empty() {
                        return Err(TlsError::Config(
                            "no system root certificates found: give the server's CA (--ca FILE or CAMUT_CA)".into(),
                        ));
                    }
                }
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        };
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Arc::new(config))
    }

    /// A channel to `endpoint`, dialed now: over TLS for an `https://` URL, in
    /// plaintext otherwise.
    pub async fn connect(&self, endpoint: Endpoint) -> Result<Channel, ConnectError> {
        if is_https(endpoint.uri()) {
            let connector = TlsConnector(self.client_config()?);
            Ok(endpoint.connect_with_connector(connector).await?)
        } else {
            Ok(endpoint.connect().await?)
        }
    }

    /// A channel to `endpoint` that dials on first use (and again as needed).
    pub fn connect_lazy(&self, endpoint: Endpoint) -> Result<Channel, TlsError> {
        if is_https(endpoint.uri()) {
            let connector = TlsConnector(self.client_config()?);
            Ok(endpoint.connect_with_connector_lazy(connector))
        } else {
            Ok(endpoint.connect_lazy())
        }
    }
}

/// Why a channel could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// TLS could not be set up.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The connection failed.
    #[error(transparent)]
    Transport(#[from] tonic::transport::Error),
}

fn is_https(uri: &Uri) -> bool {
    uri.scheme_str() == Some("https")
}

/// Dials TCP, then TLS, for tonic's channel.
#[derive(Clone)]
struct TlsConnector(Arc<rustls::ClientConfig>);

type Connecting = Pin<
    Box<
        dyn Future<
                Output = Result<
                    TokioIo<tokio_rustls::client::TlsStream<TcpStream>>,
                    std::io::Error,
                >,
            > + Send,
    >,
>;

impl tower_service::Service<Uri> for TlsConnector {
    type Response = TokioIo<tokio_rustls::client::TlsStream<TcpStream>>;
    type Error = std::io::Error;
    type Future = Connecting;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let config = self.0.clone();
        Box::pin(async move {
            let invalid = |m: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, m);
            let host = uri
                .host()
                .ok_or_else(|| invalid(format!("no host in {uri}")))?
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string();
            let port = uri.port_u16().unwrap_or(443);
            let name =
                ServerName::try_from(host.clone()).map_err(|e| invalid(format!("{host}: {e}")))?;
            let tcp = TcpStream::connect((host.as_str(), port)).await?;
            tcp.set_nodelay(true)?;
            let tls = tokio_rustls::TlsConnector::from(config)
                .connect(name, tcp)
                .await?;
            Ok(TokioIo::new(tls))
        })
    }
}

/// The verifier of `--insecure`: any certificate is taken, though the handshake's
/// signatures are still checked (the connection is encrypted, not authenticated).
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
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

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A hint for a connection error's text: what to do about an untrusted certificate or
/// a plaintext client talking to a TLS server. Empty when there is none.
pub fn hint(url: &str, error: &str) -> &'static str {
    let e = error.to_ascii_lowercase();
    if e.contains("invalid peer certificate") || e.contains("certificate") && e.contains("unknown")
    {
        "the server's certificate is not trusted: give its CA certificate (--ca FILE or CAMUT_CA), or --insecure to skip the check"
    } else if url.starts_with("http://")
        && (e.contains("connection closed")
            || e.contains("connection reset")
            || e.contains("frame with invalid size")
            || e.contains("broken pipe")
            || e.contains("http2 error"))
    {
        "the connection was dropped: if the server serves TLS, use an https:// URL"
    } else {
        ""
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_from_arguments() {
        assert!(TlsOptions::from_args(None, true).unwrap().is_insecure());
        let e = TlsOptions::from_args(Some(Path::new("/nonexistent/ca.pem")), false).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/ca.pem"), "{e}");
        let dir = std::env::temp_dir().join(format!("camut-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let e = TlsOptions::with_ca_file(&empty).unwrap_err();
        assert!(e.to_string().contains("no certificate"), "{e}");
        let insecure = TlsOptions::insecure().client_config().unwrap();
        assert_eq!(insecure.alpn_protocols, vec![b"h2".to_vec()]);
    }

    #[test]
    fn hints_name_the_way_out() {
        assert!(hint("https://h:1", "invalid peer certificate: UnknownIssuer").contains("--ca"));
        assert!(hint("http://h:1", "transport error: connection closed").contains("https://"));
        assert_eq!(hint("http://h:1", "connection refused"), "");
    }
}
