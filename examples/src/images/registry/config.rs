//! Which registries speak plain HTTP, and the TLS client (rustls, ring)
//! for the others.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

use super::{Credentials, RegistryError, RegistryResult};

/// The CA bundle of Debian-like systems (ca-certificates).
const CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// How to reach registries: which ones speak plain HTTP, and which CAs
/// the others' certificates may chain to.
///
/// Loopback registries (`localhost`, `127.0.0.0/8`, `::1`) speak plain
/// HTTP. Those listed with [`RegistryConfig::insecure`] (berthd's
/// `--insecure-registry`) are tried as dockerd does: HTTPS without
/// checking the certificate, then plain HTTP. Every other registry is
/// HTTPS, checked against the system's CA bundle plus, as Docker's
/// `/etc/docker/certs.d/<host:port>/*.crt`, the CA files of
/// [`RegistryConfig::certs_dir`].
///
/// ```
/// use examples::images::RegistryConfig;
/// let c = RegistryConfig::new()
///     .insecure("registry.lan:5000")
///     .certs_dir("/etc/docker/certs.d");
/// assert!(c.plain_http("registry.lan:5000") && c.plain_http("127.0.0.1:5000"));
/// assert!(!c.plain_http("quay.io"));
/// ```
#[derive(Debug, Clone, Default)]
pub struct RegistryConfig {
    insecure: Vec<String>,
    certs_dir: Option<PathBuf>,
    credentials: Option<Credentials>,
}

impl RegistryConfig {
    /// Only loopback registries over plain HTTP.
    pub fn new() -> Self {
        Self::default()
    }

    /// Treat `host[:port]` (a host alone matches any port) as insecure:
    /// HTTPS without certificate checks, else plain HTTP.
    pub fn insecure(mut self, registry: impl Into<String>) -> Self {
        self.insecure.push(registry.into());
        self
    }

    /// Trust the CA files `<dir>/<host[:port]>/*.crt` for that registry
    /// besides the system's CAs (berthd: `--registry-certs-dir`, by
    /// default Docker's `/etc/docker/certs.d`).
    pub fn certs_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.certs_dir = Some(dir.into());
        self
    }

    /// Send `credentials` to the registry (Basic auth, or to its token
    /// endpoint): what `docker pull` passes after a `docker login`.
    pub fn credentials(mut self, credentials: Credentials) -> Self {
        self.credentials = Some(credentials);
        self
    }

    /// The credentials to send, if any.
    pub(super) fn credentials_for(&self) -> Option<&Credentials> {
        self.credentials.as_ref()
    }

    /// The extra CA certificates configured for `domain` (none when
    /// there is no directory for it).
    pub(super) fn extra_cas(&self, domain: &str) -> RegistryResult<Vec<CertificateDer<'static>>> {
        let Some(dir) = &self.certs_dir else {
            return Ok(Vec::new());
        };
        let dir = dir.join(domain);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return Ok(Vec::new());
        };
        let mut cas = Vec::new();
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "crt") {
                let certs = CertificateDer::pem_file_iter(&path).map_err(|e| {
                    RegistryError::Unsupported(format!("reading {}: {e}", path.display()))
                })?;
                for cert in certs {
                    cas.push(cert.map_err(|e| {
                        RegistryError::Unsupported(format!("reading {}: {e}", path.display()))
                    })?);
                }
            }
        }
        Ok(cas)
    }

    /// Whether `domain` (`host[:port]`) may be reached over plain HTTP.
    pub fn plain_http(&self, domain: &str) -> bool {
        self.transport(domain) != Transport::Https
    }

    /// How `domain` is reached.
    pub(super) fn transport(&self, domain: &str) -> Transport {
        let host = host_of(domain);
        let loopback = host == "localhost"
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        if loopback {
            Transport::Http
        } else if self
            .insecure
            .iter()
            .any(|i| i == domain || (!i.contains(':') && i == host))
        {
            Transport::UnverifiedHttpsThenHttp
        } else {
            Transport::Https
        }
    }
}

/// How a registry is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Transport {
    /// Plain HTTP (loopback registries).
    Http,
    /// HTTPS, the certificate checked.
    Https,
    /// Insecure registries, as dockerd: HTTPS without checking the
    /// certificate, then plain HTTP if the TLS handshake fails.
    UnverifiedHttpsThenHttp,
}

/// The host of `host[:port]` (brackets of IPv6 literals removed).
fn host_of(domain: &str) -> &str {
    if let Some(rest) = domain.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    domain.rsplit_once(':').map_or(domain, |(h, _)| h)
}

/// A TLS connector trusting the system's CA bundle and `extra` CAs
/// (rustls, ring). The one without extra CAs is made once.
pub(super) fn tls_connector(
    extra: Vec<CertificateDer<'static>>,
) -> RegistryResult<tokio_rustls::TlsConnector> {
    static CONNECTOR: std::sync::OnceLock<tokio_rustls::TlsConnector> = std::sync::OnceLock::new();
    if extra.is_empty() {
        if let Some(c) = CONNECTOR.get() {
            return Ok(c.clone());
        }
    }
    let tls_err = |reason: String| RegistryError::Unsupported(format!("TLS setup: {reason}"));
    let mut roots = rustls::RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(CA_BUNDLE)
        .map_err(|e| tls_err(format!("reading {CA_BUNDLE}: {e}")))?;
    for cert in certs.flatten() {
        // A bundle may hold certificates rustls cannot use: skip those.
        let _ = roots.add(cert);
    }
    let own = !extra.is_empty();
    for cert in extra {
        roots
            .add(cert)
            .map_err(|e| tls_err(format!("a registry CA certificate: {e}")))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_err(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    if own {
        return Ok(connector);
    }
    Ok(CONNECTOR.get_or_init(|| connector).clone())
}

/// A TLS connector that accepts any certificate (insecure registries
/// only); handshake signatures are still checked.
pub(super) fn unverified_tls_connector() -> RegistryResult<tokio_rustls::TlsConnector> {
    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
    use rustls::pki_types::{ServerName, UnixTime};
    use rustls::{DigitallySignedStruct, SignatureScheme};

    #[derive(Debug)]
    struct AnyCertificate(Arc<CryptoProvider>);

    impl ServerCertVerifier for AnyCertificate {
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
            verify_tls12_signature(
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
            verify_tls13_signature(
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

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| RegistryError::Unsupported(format!("TLS setup: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_for_loopback_and_insecure_only() {
        let c = RegistryConfig::new().insecure("lan:5000").insecure("other");
        assert!(c.plain_http("localhost:5000"));
        assert!(c.plain_http("127.0.0.2"));
        assert!(c.plain_http("[::1]:5000"));
        assert!(c.plain_http("lan:5000"));
        assert!(!c.plain_http("lan:5001"));
        assert!(c.plain_http("other:1234"));
        assert!(!c.plain_http("docker.io"));
    }
}
